"""What the lens adds to one iteration, and how fast the arithmetic runs.

(a) Extra cost of the lens, in units of one lens forward+backward on the same
    batch: (our step with lens − our step without lens) / (lens fwd+bwd).
    Target <= 1.1. The parts of the extra cost are timed too: D forward and
    backward on L(X) down to its input (D frozen, as in the lens step), the
    lens's Adam step and, for wgan-gp, the graph-free lens forwards of the
    first critic_steps − 1 critic batches.
(b) Achieved GFLOP/s of the lens fwd+bwd and of the whole iteration (FLOPs
    counted by torch.utils.flop_counter.FlopCounterMode: convolutions and
    matmuls only), against a measured peak: an N×N float32 matmul.

All arms of one loss, the matmul included, run interleaved in one process.

    .venv/bin/python benchmarks/bench_lens.py
"""
from __future__ import annotations

import argparse
import copy

import torch
from _timing import interleaved, median, paired_ratio, parse_and_setup, table
from torch.utils.flop_counter import FlopCounterMode

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.method.losses import reconstruction
from tempered_gan.method.tempering import frozen
from tempered_gan.training.trainer import Trainer


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker, whose backward hooks make
    torch.autograd.grad (the gradient penalty) fail: every FLOP goes to "Global"."""
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def bench(loss: str, width: int | None, data, args) -> None:
    def trainer(lens: str) -> Trainer:
        cfg = resolve(TrainConfig(dataset="fashion-mnist", loss=loss, lens=lens, k=10_000, width=width,
                                  lens_width=args.lens_width, lens_blocks=args.lens_blocks, device="cpu"))
        return Trainer.create(cfg, data, torch.device("cpu"))

    with_lens, without = trainer("sine"), trainer("none")
    cfg = with_lens.cfg
    x = data.batch(torch.arange(cfg.batch_size))
    lens = copy.deepcopy(with_lens.lens)            # a copy: the trainer's lens is left alone
    lens_opt = torch.optim.Adam(lens.parameters(), cfg.lens_lr, betas=(cfg.beta1, cfg.beta2))
    D = copy.deepcopy(with_lens.D)
    with torch.no_grad():
        lensed = lens(x)
    n = args.matmul
    a, b = torch.randn(n, n), torch.randn(n, n)

    def lens_fb():
        lens.zero_grad(set_to_none=True)
        reconstruction(x, lens(x)).backward()

    def d_fb():
        inp = lensed.clone().requires_grad_(True)
        with frozen(D):
            D(inp).mean().backward()

    def lens_fwd_nograd():
        with torch.no_grad():
            lens(x)

    arms = {"with lens": with_lens.step, "without": without.step, "lens f+b": lens_fb,
            "D f+b on L(X)": d_fb, "lens Adam": lens_opt.step, "matmul": lambda: a @ b}
    if cfg.critic_steps > 1:
        arms["lens fwd, no graph"] = lens_fwd_nograd
    lens_fb()   # so that the Adam arm has gradients to apply
    reps, inner = (args.wgan_reps, 1) if loss == "wgan-gp" else (args.reps, args.steps)
    t = interleaved(arms, reps=reps, warmup=1, inner=inner)

    # --- (a) extra cost in units of one lens forward+backward ----------------
    extra = [w - o for w, o in zip(t["with lens"], t["without"])]
    unit = paired_ratio(extra, t["lens f+b"])
    parts = [("lens forward+backward (the unit)", "lens f+b", 1)]
    if cfg.critic_steps > 1:
        parts.append((f"{cfg.critic_steps - 1} × lens forward without graph (critic batches 1–{cfg.critic_steps - 1})",
                      "lens fwd, no graph", cfg.critic_steps - 1))
    parts += [("D forward+backward on L(X), to the input only (D frozen)", "D f+b on L(X)", 1),
              ("lens Adam step", "lens Adam", 1)]
    rows = [["our step, no lens", median(t["without"]), ""],
            ["our step, with lens", median(t["with lens"]), ""],
            ["**extra = with − without**", median(extra), f"**{unit[0]:.2f}** ({unit[1]:.2f}–{unit[2]:.2f})"]]
    total = [0.0] * reps
    for label, arm, count in parts:
        ratio = paired_ratio([count * v for v in t[arm]], t["lens f+b"])[0]
        total = [s + count * v for s, v in zip(total, t[arm])]
        rows.append([label, count * median(t[arm]), f"{ratio:.2f}"])
    rows.append(["sum of the parts above", median(total), f"{paired_ratio(total, t['lens f+b'])[0]:.2f}"])
    rest = [e - s for e, s in zip(extra, total)]
    rows.append(["rest (extra − sum of parts)", median(rest), f"{paired_ratio(rest, t['lens f+b'])[0]:.2f}"])
    print(f"\n{loss}: C = {cfg.width}, lens {cfg.lens_width} channels × {cfg.lens_blocks} blocks, batch "
          f"{cfg.batch_size}, critic steps {cfg.critic_steps}; {reps} interleaved rounds × {inner} calls\n")
    table(["", "seconds (median)", "units of lens f+b (median, range)"], rows)
    print(f"\ntarget extra ≤ 1.1 units: {'met' if unit[0] <= 1.1 else 'NOT met'}")
    slow = paired_ratio(t["with lens"], t["without"])[0]
    print(f"step with lens ÷ step without: {slow:.2f}; so a whole run whose lens exits exactly at K = 10% "
          f"of the steps takes at least 1 + 0.1 × ({slow:.2f} − 1) = {1 + 0.1 * (slow - 1):.2f}× a run without")

    # --- (b) GFLOP/s against the matmul peak -----------------------------------
    counted = {"lens f+b": flops(lens_fb), "with lens": flops(with_lens.step), "without": flops(without.step),
               "D f+b on L(X)": flops(d_fb), "matmul": 2 * n ** 3}
    g = {arm: v / 1e9 for arm, v in counted.items()}
    extra_g, parts = g["with lens"] - g["without"], f"lens f+b {g['lens f+b']:.2f}"
    parts_g = g["lens f+b"] + g["D f+b on L(X)"]
    if cfg.critic_steps > 1:
        fwd = flops(lens_fwd_nograd) / 1e9
        parts_g += (cfg.critic_steps - 1) * fwd
        parts += f" + {cfg.critic_steps - 1} × lens forward {fwd:.2f}"
    print(f"\nextra FLOPs of the lens iteration: {extra_g:.2f} GFLOP = {extra_g / g['lens f+b']:.3f} units of lens f+b; "
          f"the parts above count {parts_g:.2f} GFLOP ({parts} + D f+b {g['D f+b on L(X)']:.2f})")
    rows = []
    for label, arm in [(f"matmul {n}×{n} (peak)", "matmul"), ("lens forward+backward", "lens f+b"),
                       ("D forward+backward on L(X)", "D f+b on L(X)"),
                       ("whole iteration, with lens", "with lens"), ("whole iteration, no lens", "without")]:
        rate = [counted[arm] / s for s in t[arm]]
        peak = [counted["matmul"] / s for s in t["matmul"]]
        rows.append([label, counted[arm] / 1e9, median(rate) / 1e9, paired_ratio(rate, peak)[0]])
    print()
    table(["", "GFLOP per call", "GFLOP/s (median)", "achieved / peak (median)"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--losses", nargs="+", default=["gan", "wgan-gp"], choices=["gan", "lsgan", "wgan-gp"])
    ap.add_argument("--width", type=int, default=64, help="C for gan/lsgan (default 64, the preset)")
    ap.add_argument("--wgan-width", type=int, default=64,
                    help="C for wgan-gp (default 64 to stay affordable on CPU; the preset is 128)")
    ap.add_argument("--lens-width", type=int, default=32)
    ap.add_argument("--lens-blocks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1, help="calls per timed block, gan/lsgan (default 1)")
    ap.add_argument("--reps", type=int, default=20, help="interleaved rounds, gan/lsgan (default 20)")
    ap.add_argument("--wgan-reps", type=int, default=6, help="interleaved rounds (1 call each), wgan-gp (default 6)")
    ap.add_argument("--matmul", type=int, default=2048, help="N of the N×N float32 matmul measuring the peak")
    args = parse_and_setup(ap)

    data = load_dataset("fashion-mnist")
    print(f"data     {data}; one warm-up call of every arm, not timed")
    for loss in args.losses:
        bench(loss, args.wgan_width if loss == "wgan-gp" else args.width, data, args)


if __name__ == "__main__":
    main()
