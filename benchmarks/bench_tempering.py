"""Cost of one iteration with each way of tempering the real data, side by side.

``Trainer.step`` before K with no tempering, the learned sine lens, instance
noise and the blur (``--tempering``), on the same nets and batch, interleaved
in one process (the order rotates every round); medians of per-round ratios
to the no-tempering step. After K every one of them costs nothing more: they
are gone (the lens with the default ``--lens-exit drop``).

    .venv/bin/python benchmarks/bench_tempering.py                         # Fashion-MNIST, the paper's nets and lens
    .venv/bin/python benchmarks/bench_tempering.py --width 32 --lens-width 16 --lens-blocks 4   # the baselines study's scale
"""
from __future__ import annotations

import argparse

import torch
from _timing import interleaved, median, paired_ratio, parse_and_setup, table

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.training.trainer import Trainer

ARMS = {"none": dict(tempering="none"), "sine lens": dict(schedule="sine"),
        "instance noise": dict(schedule="sine", tempering="noise"), "blur": dict(schedule="sine", tempering="blur")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--data-dir")
    ap.add_argument("--loss", default="gan")
    ap.add_argument("--width", type=int)
    ap.add_argument("--lens-width", type=int, default=32)
    ap.add_argument("--lens-blocks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="steps per timed block (default 5)")
    ap.add_argument("--reps", type=int, default=5, help="interleaved rounds (default 5)")
    args = parse_and_setup(ap)
    data = load_dataset(args.dataset, args.data_dir)
    arms = {name: arm for name, arm in ARMS.items() if not (name == "blur" and data.kind == "points")}
    trainers = {name: Trainer.create(resolve(TrainConfig(dataset=args.dataset, data_dir=args.data_dir, loss=args.loss,
                                                         width=args.width, lens_width=args.lens_width,
                                                         lens_blocks=args.lens_blocks, k=10 ** 9, device="cpu",
                                                         **arm)), data, torch.device("cpu"))
                for name, arm in arms.items()}
    c = trainers["sine lens"].cfg
    print(f"runs     {args.dataset}, loss {c.loss}, arch {c.arch}, C = {c.width}, batch {c.batch_size}, "
          f"lens {c.lens_width} × {c.lens_blocks} blocks; noise σ₀ = {trainers['instance noise'].cfg.noise_sigma}"
          + (f", blur σ₀ = {trainers['blur'].cfg.blur_sigma} px" if "blur" in trainers else "")
          + f"; {args.reps} rounds of {args.steps} steps each, before K")
    t = interleaved({name: (lambda tr=tr: [tr.step() for _ in range(args.steps)]) for name, tr in trainers.items()},
                    reps=args.reps, warmup=1)
    rows = []
    for name in trainers:
        ratio, lo, hi = paired_ratio(t[name], t["none"])
        rows.append([name, median(t[name]) / args.steps * 1000, ratio, f"{lo:.2f}–{hi:.2f}"])
    table(["tempering", "ms per step (median)", "÷ none (median)", "range"], rows)


if __name__ == "__main__":
    main()
