"""The measured results of one benchmarks/gpu_session.sh part, printed before its
summary table: bench_gpu's speed, agreement and concurrency JSON, the command
line's steps/s from each run's metrics.jsonl, and the comparison's FID per arm
at the last step every run evaluated (also when the part's time ran out first).

    python benchmarks/gpu_session_results.py WORK   (the part's working folder)
"""
from __future__ import annotations

import glob
import json
import os
import statistics
import sys


def load(work: str, name: str) -> dict:
    path = os.path.join(work, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else {}


def metric_lines(path: str) -> list[dict]:
    return [json.loads(line) for line in open(path) if line.strip()] if os.path.exists(path) else []


def main(work: str) -> None:
    speed = load(work, "speed").get("speed", [])
    if speed:
        print("bench_gpu, steps/s (median of rounds):")
        by: dict[str, dict[str, float]] = {}
        for r in speed:
            by.setdefault(r["arm"], {})[r["path"]] = r["steps_per_s"]
        for arm, paths in by.items():
            ratio = f"  | graph ÷ eager {paths['graph'] / paths['eager']:.2f}" if {"graph", "eager"} <= set(paths) else ""
            print(f"  {arm:14s} " + "  ".join(f"{p}: {v:.1f}" for p, v in paths.items()) + ratio)
    for r in load(work, "agreement").get("agreement", []):
        print(f"agreement {r['arm']:14s} {r['vs eager']:12s} max |Δ loss| {r['max_abs']:.3g}  max rel {r['max_rel']:.3g}")
    for r in load(work, "concurrent").get("concurrent", []):
        print(f"concurrent {r['arm']} × {r['processes']}: {r['each']:.1f} steps/s each, {r['aggregate']:.1f} in all "
              f"(latest start {r['late_s']:.1f} s)")
    for folder in sorted(glob.glob(os.path.join(work, "cli", "*"))):
        rates = [r["steps_per_s"] for r in metric_lines(os.path.join(folder, "metrics.jsonl")) if r.get("steps_per_s")]
        later = rates[1:] or rates      # the first window holds start-up and capture
        if later:
            print(f"command line {os.path.basename(folder):12s} {statistics.median(later):.1f} steps/s "
                  f"(median of {len(later)} windows of 100 steps after the first)")
    runs = sorted(glob.glob(os.path.join(work, "compare", "runs", "*")))
    if runs:
        fids = {os.path.basename(run): {r["step"]: r["fid"] for r in metric_lines(os.path.join(run, "metrics.jsonl"))
                                        if "fid" in r} for run in runs}
        common = set.intersection(*(set(f) for f in fids.values()))
        print(f"comparison: {len(runs)} runs; steps evaluated in every run: {sorted(common) or 'none'}")
        if common:
            last = max(common)
            arms: dict[str, list[float]] = {}
            for run, f in fids.items():
                arms.setdefault(run.rsplit("-s", 1)[0], []).append(f[last])
            for arm, values in arms.items():
                print(f"  FID at step {last}, {arm}: " + ", ".join(f"{v:.2f}" for v in values)
                      + f" (mean {statistics.mean(values):.2f})")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: gpu_session_results.py WORK (the folder of one gpu_session.sh part)", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
