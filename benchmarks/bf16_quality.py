"""Is bf16 autocast on the CPU as good as fp32? Pairs two finished comparisons run seed by seed.

Run the same ``compare`` twice, once with ``--amp none`` and once with
``--amp bf16`` (the same seeds, arms and steps; only the precision differs, so
each pair of runs starts from identical weights, batches and noise), then:

    .venv/bin/python benchmarks/bf16_quality.py runs/q-fp32 runs/q-bf16

For every arm and measure (final FID, modes, KL where the data set has modes):
the per-seed difference bf16 − fp32, its mean with a 95 % t interval
(``tempered_gan.studies.statistics``), and whether bf16 is *not worse* by the margin
written down before the runs (docs/PERFORMANCE.md, "CPU fast path"): the
interval's harmful end stays within ``--margin`` (default 10 %) of the fp32 mean.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from tempered_gan.studies.compare_report import per_seed, read_run
from tempered_gan.studies.statistics import format_interval, paired

MEASURES = (("final_fid", "final FID", True), ("modes", "modes", False), ("kl", "KL", True))


def runs_of(out: Path) -> dict[tuple[str, int], tuple[dict, object]]:
    """{(arm folder, seed): (config, RunResult)} of a comparison folder's finished runs (``grid.status``)."""
    from tempered_gan.config.train_config import TrainConfig
    from tempered_gan.studies.shards import status

    found = {}
    for run_dir in sorted(p for p in (out / "runs").iterdir() if (p / "config.json").exists()):
        cfg = json.loads((run_dir / "config.json").read_text())
        state, failure = status(TrainConfig.load(run_dir / "config.json"), run_dir)
        if state != "finished":
            continue
        arm = run_dir.name.rsplit("-s", 1)[0]
        found[(arm, cfg["seed"])] = (cfg, read_run(arm, cfg["seed"], run_dir, failure))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fp32", type=Path, help="the comparison folder run with --amp none")
    ap.add_argument("bf16", type=Path, help="the same comparison run with --amp bf16")
    ap.add_argument("--margin", type=float, default=0.1, help="non-inferiority margin, relative (default 0.1)")
    args = ap.parse_args()
    a, b = runs_of(args.fp32), runs_of(args.bf16)
    if any(c["amp"] != "none" for c, _ in a.values()) or any(c["amp"] != "bf16" for c, _ in b.values()):
        print("error: the first folder must hold --amp none runs and the second --amp bf16 runs", file=sys.stderr)
        return 2
    precision = ("amp", "channels_last")
    for key in sorted(set(a) & set(b)):
        differ = {k for k, v in a[key][0].items() if k not in precision and b[key][0].get(k) != v}
        if differ:
            print(f"error: {key[0]} seed {key[1]} differs in more than the precision: {', '.join(sorted(differ))}",
                  file=sys.stderr)
            return 2
    rows = []
    for arm in sorted({arm for arm, _ in a} & {arm for arm, _ in b}):
        seeds = sorted(s for x, s in set(a) & set(b) if x == arm)
        failed = {name: [s for s in seeds if runs[(arm, s)][1].failed_early]
                  for name, runs in (("fp32", a), ("bf16", b))}
        print(f"{arm}: {len(seeds)} seeds finished in both; failed (NaN/Inf) fp32 {failed['fp32'] or 'none'}, "
              f"bf16 {failed['bf16'] or 'none'}")
        bf16_only = sorted(set(failed["bf16"]) - set(failed["fp32"]))
        for key, name, lower in MEASURES:
            ref = per_seed([r for (x, _), (_, r) in a.items() if x == arm], key)
            new = per_seed([r for (x, _), (_, r) in b.items() if x == arm], key)
            if not ref or not new:
                continue
            p = paired(ref, new, lower_is_better=lower)
            level = statistics.fmean(ref[s] for s in p.seeds) if p.seeds else float("nan")
            harm = p.high if lower else (None if p.low is None else -p.low)   # worst plausible harm, as a positive number
            ok = harm is not None and harm <= args.margin * abs(level) and not bf16_only   # a bf16-only failure is harm
            rows.append([arm, name, str(p.n), f"{level:.4g}", format_interval(p), f"{p.wins}/{p.losses}",
                         f"{100 * args.margin:g} % = {args.margin * abs(level):.3g}",
                         "not worse" if ok else "worse" if p.verdict.startswith("worse") or bf16_only
                         else "cannot say it is not worse"])
    header = ["arm", "measure", "seeds", "fp32 mean", "Δ bf16 − fp32 [95 % CI]", "bf16 wins/losses", "margin", "verdict"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
