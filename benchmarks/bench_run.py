"""Whole-run wall-clock: the sine lens (K = 10% of the steps) against no lens.

Arms of ``tempered_gan.training.loop.train`` (each in a fresh temporary run folder,
``progress=False``), the same in everything but the lens:

* ``none``  — ``tempering="none"``;
* ``sine``  — ``schedule="sine"``, ``k = steps // 10``, the default exit (drop:
  the lens is gone right after step K);
* ``blend`` — the same lens faded out over K/2 steps after K, then gone;
* ``converge`` (``--with-converge``) — the paper's exit: trained on
  ‖X − L(X)‖² alone until it stays within ``--lens-exit-tolerance`` for
  ``--lens-exit-patience`` steps.

Whole runs are interleaved (the order rotates every round). In the same
process, r = (one iteration with the lens) / (one without) is measured by
interleaved blocks of ``Trainer.step`` before K. Target (after K the lens
costs next to nothing): sine / none ≤ 1 + 0.15·(r − 1). Samples and the checkpoint are written once,
at the end, so the figure is about training.

    .venv/bin/python benchmarks/bench_run.py                     # Fashion-MNIST, the paper's nets and lens
    .venv/bin/python benchmarks/bench_run.py --dataset mixture-ring8 --steps 2000
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import tempfile
from pathlib import Path

import torch
from _timing import interleaved, median, paired_ratio, parse_and_setup, table

from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.training.loop import train
from tempered_gan.training.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mixture-ring8", "mixture-grid25"])
    ap.add_argument("--data-dir")
    ap.add_argument("--steps", type=int, default=200, help="generator steps per run (default 200)")
    ap.add_argument("--log-every", type=int, default=20, help="log interval (default 20)")
    ap.add_argument("--with-converge", action="store_true", help="also the paper's converge exit")
    ap.add_argument("--lens-exit-tolerance", type=float, default=1e-3, help="converge (default 1e-3; the package's is 1e-4)")
    ap.add_argument("--lens-exit-patience", type=int, default=100, help="converge (default 100; the package's is 1000)")
    ap.add_argument("--reps", type=int, default=3, help="interleaved rounds of the arms (default 3)")
    args = parse_and_setup(ap)

    data = load_dataset(args.dataset, args.data_dir)
    steps = args.steps
    base = dict(dataset=args.dataset, data_dir=args.data_dir, device="cpu", steps=steps, log_every=args.log_every,
                sample_every=steps, checkpoint_every=steps)
    lens = dict(schedule="sine", k=max(1, steps // 10))
    cfgs = {"none": resolve(TrainConfig(tempering="none", **base)),
            "sine": resolve(TrainConfig(**lens, **base)),
            "blend": resolve(TrainConfig(**lens, lens_exit="blend", **base))}
    if args.with_converge:
        cfgs["converge"] = resolve(TrainConfig(**lens, lens_exit="converge", lens_exit_tolerance=args.lens_exit_tolerance,
                                               lens_exit_patience=args.lens_exit_patience, **base))
    c = cfgs["sine"]
    print(f"runs     {args.dataset}, loss {c.loss}, arch {c.arch}, C = {c.width}, batch {c.batch_size}, "
          f"{steps} steps, K = {c.k}, lens {c.lens_width} × {c.lens_blocks} blocks, exit {c.lens_exit} over "
          f"{c.lens_exit_steps} steps; samples/checkpoint at the end only")

    # r: one iteration with the lens (before K) over one without, interleaved blocks of steps.
    probe = {name: Trainer.create(dataclasses.replace(cfgs[name], k=10 ** 9), data, torch.device("cpu"))
             for name in ("sine", "none")}
    block = max(2, 20 // (1 if args.dataset.startswith("mixture") else 4))
    t_step = interleaved({name: (lambda tr=tr: [tr.step() for _ in range(block)]) for name, tr in probe.items()},
                         reps=5, warmup=1)
    r = paired_ratio(t_step["sine"], t_step["none"])[0]
    print(f"r        one iteration with the lens / one without: {r:.3f} "
          f"(median of 5 interleaved blocks of {block} steps)")
    print(f"         {args.reps} interleaved rounds of the arms; after two short warm-up runs, not timed")

    gone: dict[str, list] = {name: [] for name in cfgs}

    def arm(name):
        def run():
            with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(io.StringIO()):
                train(cfgs[name], data, Path(d), progress=False)
                lines = [json.loads(line) for line in open(Path(d) / "metrics.jsonl")]
            gone[name].append(next((r["step"] for r in lines if r.get("lens_exited")), None))
        return run

    for name in ("sine", "none"):   # warm-up: one-time costs (imports, first writer and plot)
        short = dataclasses.replace(cfgs[name], steps=2 * args.log_every, k=args.log_every,
                                    sample_every=args.log_every, checkpoint_every=args.log_every)
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(io.StringIO()):
            train(short, data, Path(d), progress=False)
    t = interleaved({name: arm(name) for name in cfgs}, reps=args.reps, warmup=0)
    rows = []
    for name in cfgs:
        ratio, lo, hi = paired_ratio(t[name], t["none"])
        rows.append([name, median(t[name]), ratio, f"{lo:.3f}–{hi:.3f}",
                     "—" if name == "none" else (gone[name][0] or "never")])
    print()
    table(["arm", "seconds per run (median)", "÷ none (median)", "range", "lens gone after step"], rows)
    sine = paired_ratio(t["sine"], t["none"])[0]
    bound = 1 + 0.15 * (r - 1)
    print(f"\nexpected sine/none if only the K lens steps cost r: 1 + {c.k}/{steps} × (r − 1) = "
          f"{1 + c.k / steps * (r - 1):.3f}")
    print(f"target sine/none ≤ 1 + 0.15·(r − 1) = {bound:.3f}: {'met' if sine <= bound else 'NOT met'} ({sine:.3f})")


def _span(values: list[float]) -> str:
    return f"{min(values):.1e}–{max(values):.1e}" if values else "—"


if __name__ == "__main__":
    main()
