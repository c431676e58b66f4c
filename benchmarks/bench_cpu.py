"""CPU fast path: steps/s of bf16 autocast, channels-last and torch.compile against fp32.

For each setting (the studies' reduced nets and the paper's nets), one
``Trainer`` per variant is built from the same seed (identical weights, data
order and noise) and their ``step`` calls are timed interleaved in one process
(``_timing.interleaved``), so every figure is a ratio to fp32 measured side by
side under the same load. Variants:

  fp32          the default (``--amp none``)
  bf16          ``--amp bf16``: autocast to bfloat16 for the forward passes
  cl            ``--channels-last`` in fp32
  bf16+cl       both
  compile       G, D (and the lens) wrapped in ``torch.compile`` (inductor), fp32
  bf16+compile  the same under bf16 autocast

``compile`` is not a training option (``--compile`` was removed after inductor
crashed in the convolution backward on CUDA); it is measured here to see
whether bringing it back for the CPU would pay. Compilation happens in the
untimed warm-up step and its time is printed separately.

    .venv/bin/python benchmarks/bench_cpu.py                       # study nets, all variants
    .venv/bin/python benchmarks/bench_cpu.py --settings paper --reps 6
"""
from __future__ import annotations

import argparse
import time

import torch
from _timing import interleaved, median, paired_ratio, parse_and_setup, table

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.training.trainer import Trainer

# name: (dataset, loss, C, lens maps, lens blocks)
SETTINGS = {
    "study-gan": ("color-fashion-mnist", "gan", 16, 8, 2),       # study B's nets (DCGAN C = 16, lens 8 × 2)
    "study-lsgan": ("fashion-mnist", "lsgan", 16, 8, 2),         # study A's nets
    "paper": ("fashion-mnist", "gan", 64, 32, 8),                # the paper's DCGAN and lens
}
VARIANTS = ("fp32", "bf16", "cl", "bf16+cl", "compile", "bf16+compile")


def make_trainer(setting: str, variant: str, batch: int, lens: bool) -> Trainer:
    dataset, loss, width, lens_width, lens_blocks = SETTINGS[setting]
    cfg = resolve(TrainConfig(dataset=dataset, loss=loss, schedule="sine" if lens else "none", k=10_000,
                              width=width, lens_width=lens_width, lens_blocks=lens_blocks, batch_size=batch,
                              device="cpu", amp="bf16" if "bf16" in variant else "none",
                              channels_last="cl" in variant.split("+")))
    trainer = Trainer.create(cfg, load_dataset(dataset), torch.device("cpu"))
    if "compile" in variant:
        trainer.G = torch.compile(trainer.G)
        trainer.D = torch.compile(trainer.D)
        if trainer.lens is not None:
            trainer.tempering.lens = torch.compile(trainer.tempering.lens)
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", nargs="+", default=["study-gan", "study-lsgan"], choices=list(SETTINGS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--no-lens", action="store_true", help="time the nets without the lens (after K)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed block (default 5)")
    ap.add_argument("--reps", type=int, default=12, help="interleaved blocks per variant (default 12)")
    args = parse_and_setup(ap)
    print(f"cpu      oneDNN bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}, AVX512-BF16: "
          f"{torch.cpu._is_avx512_bf16_supported()}, AMX tiles: {torch.cpu._is_amx_tile_supported()}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}; batch {args.batch_size}, "
          f"{'no lens' if args.no_lens else 'with the lens (before K)'}")
    rows = []
    for setting in args.settings:
        trainers, warm = {}, {}
        for variant in args.variants:
            trainers[variant] = make_trainer(setting, variant, args.batch_size, not args.no_lens)
            start = time.perf_counter()
            trainers[variant].step()                    # compiles here for the compile variants
            warm[variant] = time.perf_counter() - start
        t = interleaved({v: trainers[v].step for v in args.variants}, reps=args.reps, warmup=1, inner=args.steps)
        for v in args.variants:
            ratio, lo, hi = paired_ratio(t["fp32"], t[v]) if v != "fp32" else (1.0, 1.0, 1.0)
            rows.append([setting, v, f"{1 / median(t[v]):.2f}", f"{ratio:.2f}", f"{lo:.2f}–{hi:.2f}",
                         f"{warm[v]:.1f}"])
        print(f"{setting}: done", flush=True)
    print()
    table(["setting", "variant", "steps/s", "speed ÷ fp32 (median)", "range over blocks", "first step, s"], rows)


if __name__ == "__main__":
    main()
