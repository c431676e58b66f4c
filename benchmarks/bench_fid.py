"""Cost of one FID evaluation as a share of the training time between two evaluations.

A 4096-sample evaluation (``tempered_gan.metrics.evaluate``, default feature
extractor: for Fashion-MNIST the small classifier trained once on the labels)
of our DCGAN's G, against ``--interval`` training steps of the same run, with
and without the lens. The one-time costs (training and caching the classifier,
the real features) are timed separately, once, in a fresh cache folder (the
user's cache is not touched). Then evaluation and training steps are timed
interleaved; share = t(eval) / (interval × t(step)), per round, median.

    .venv/bin/python benchmarks/bench_fid.py
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import torch
from _timing import interleaved, median, paired_ratio, parse_and_setup, table

from tempered_gan import metrics
from tempered_gan.config.train_config import TrainConfig, resolve
from tempered_gan.data.loaders import load_dataset
from tempered_gan.training.trainer import Trainer


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=4096, help="generated samples per evaluation (default 4096)")
    ap.add_argument("--intervals", type=int, nargs="+", default=[1000, 5000],
                    help="steps between evaluations to report (default: 1000, and 5000 as in the experiment presets)")
    ap.add_argument("--reps", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per timed block (default 5)")
    args = parse_and_setup(ap)

    data = load_dataset("fashion-mnist")
    cache = tempfile.mkdtemp(prefix="bench-fid-cache-")
    trainers = {lens: Trainer.create(resolve(TrainConfig(dataset="fashion-mnist", loss="gan", lens=lens, device="cpu")),
                                     data, torch.device("cpu")) for lens in ("sine", "none")}
    run = trainers["none"]   # G at its initial weights: the cost of scoring does not depend on them

    settings = metrics.EvalSettings("fashion-mnist", features="auto", n_samples=args.samples, cache_dir=cache)

    def evaluate():
        return metrics.evaluate(run.generate, settings)

    # One-time costs, in a fresh cache folder.
    _, t_classifier = timed(lambda: metrics.feature_extractor("auto", "fashion-mnist", cache_dir=cache))
    _, t_real = timed(lambda: metrics.Evaluator(settings))
    _, t_cached = timed(lambda: metrics.Evaluator(settings))
    first, t_first = timed(evaluate)
    print(f"extractor {first['features']}")
    print(f"cache     {cache} (fresh, removed at the end)\n")
    table(["one-time cost", "seconds"],
          [["train and cache the classifier (first use on this machine)", t_classifier],
           [f"set up the evaluator: load the classifier, {args.samples} real features, cache them", t_real],
           ["set up the evaluator from the caches (a new process)", t_cached],
           ["first evaluate() of a process (set-up from the caches + one evaluation)", t_first]])

    def steps(trainer):
        return lambda: [trainer.step() for _ in range(args.steps)]

    t = interleaved({"eval": evaluate, "step lens": steps(trainers["sine"]), "step none": steps(trainers["none"])},
                    reps=args.reps, warmup=1)
    per_step = {k: [v / args.steps for v in t[k]] for k in ("step lens", "step none")}
    print(f"\n{args.reps} interleaved rounds: one evaluation | {args.steps} steps with the lens | {args.steps} "
          f"steps without; DCGAN C = {run.cfg.width}, batch {run.cfg.batch_size}\n")
    rows = [[f"one evaluation, {args.samples} samples", median(t["eval"])] + [""] * len(args.intervals)]
    for key, label in (("step lens", "training step, sine lens (t ≤ K)"), ("step none", "training step, no lens")):
        shares = [paired_ratio(t["eval"], [n * v for v in per_step[key]])[0] for n in args.intervals]
        rows.append([label, median(per_step[key])] + [f"{100 * s:.2f} %" for s in shares])
    table(["", "seconds (median)"] + [f"eval ÷ {n} steps" for n in args.intervals], rows)
    shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
