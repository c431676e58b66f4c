"""The two image studies' pre-registered verdicts that the report does not compute itself
(docs/RESULTS.md, "Run until FID stops improving"; rules committed in 18a814c):

- study A (``--study a``): the stability verdict. Failure per run is the report's own
  (NaN/Inf, final FID above 2 × the best FID of any run, fewer than 8 of 10 classes);
  *reproduced* if plain LSGAN fails on at least 5 of 8 seeds and the lens on fewer, with
  the exact two-sided sign test on the seeds where only one arm failed at p < 0.05;
  *contradicted* if the 95 % Wilson interval of plain LSGAN's failure rate lies wholly
  below 50 %; otherwise *cannot tell*.
- study B (``--study b``): late partial collapse. A run *lost modes late* when its modes
  at the last evaluation are more than 10 % below its own maximum over the evaluations
  from step 5000 on; counted per arm.

    PYTHONPATH=. .venv/bin/python docs/results/studies/verdicts.py --study a runs/study-a-lsgan-fashion
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from scipy import stats

from tempered_gan.paired import wilson
from tempered_gan.report import RunResult, failure_threshold, is_failed, read_run

PLAIN, LENS = "none", "sine"


def read_runs(out: Path) -> dict[tuple[str, int], RunResult]:
    runs = {}
    for d in sorted((out / "runs").iterdir()):
        arm, seed = d.name.rsplit("-s", 1)
        runs[arm, int(seed)] = read_run(arm, int(seed), d, None)
    return runs


def stability(runs: dict[tuple[str, int], RunResult], fail_factor: float = 2.0, fail_modes: int = 8) -> list[str]:
    threshold = failure_threshold(list(runs.values()), fail_factor, None)
    seeds = sorted(s for s in {s for _, s in runs} if (PLAIN, s) in runs and (LENS, s) in runs)
    failed = {key: is_failed(r, threshold, fail_modes) for key, r in runs.items()}
    lines = [f"failure threshold: final FID > {threshold:.4g} (2 × the best FID of any run), or < {fail_modes} "
             "classes, or NaN/Inf", "",
             "| seed | no lens: final FID, classes | failed | sine lens: final FID, classes | failed |",
             "|---|---|---|---|---|"]
    for s in seeds:
        cells = []
        for arm in (PLAIN, LENS):
            r = runs[arm, s]
            fid, classes = r.final_fid, r.final("modes")
            cells += [f"{fid:.4g}, {classes:.0f}" if fid is not None and classes is not None else "NaN/Inf",
                      "yes" if failed[arm, s] else "no"]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    n = len(seeds)
    last = {r.fids[-1][0] if r.fids else 0 for r in runs.values()}
    if len(last) > 1 or n < len({s for _, s in runs}):
        lines += ["", f"not final: the runs end at different steps ({', '.join(map(str, sorted(last)))}) "
                      "or a seed lacks an arm"]
    plain = sum(failed[PLAIN, s] for s in seeds)
    lens = sum(failed[LENS, s] for s in seeds)
    only_plain = sum(failed[PLAIN, s] and not failed[LENS, s] for s in seeds)
    only_lens = sum(failed[LENS, s] and not failed[PLAIN, s] for s in seeds)
    discordant = only_plain + only_lens
    p = stats.binomtest(only_plain, discordant).pvalue if discordant else math.nan
    low, high = wilson(plain, n)
    if plain >= 5 and lens < plain and p < 0.05:
        verdict = "reproduced"
    elif high < 0.5:
        verdict = "contradicted"
    else:
        verdict = "cannot tell"
    lines += ["", f"failed: no lens {plain}/{n} (Wilson 95 % {low:.0%}–{high:.0%}), sine lens {lens}/{n} "
                  f"(Wilson 95 % {wilson(lens, n)[0]:.0%}–{wilson(lens, n)[1]:.0%})",
              f"seeds where only one arm failed: {discordant} (only no lens {only_plain}, only the lens {only_lens}); "
              f"exact two-sided sign test p = {p:.3g}" if discordant else
              "seeds where only one arm failed: none (no sign test)",
              f"stability verdict (pre-registered rule): {verdict}"]
    return lines


def late_collapse(runs: dict[tuple[str, int], RunResult], start: int = 5000, drop: float = 0.10) -> list[str]:
    lines = ["| arm | seed | max modes from step 5000 (step) | modes at the last evaluation (step) | drop | lost modes late |",
             "|---|---|---|---|---|---|"]
    counts = {}
    for (arm, seed), r in sorted(runs.items()):
        late = [(e["step"], e["modes"]) for e in r.evals if e["step"] >= start and e.get("modes") is not None]
        if not late:
            lines.append(f"| {arm} | {seed} | – | – | – | no evaluation from step {start} on |")
            continue
        top_step, top = max(late, key=lambda x: (x[1], -x[0]))
        last_step, last = late[-1]
        lost = last < (1 - drop) * top
        counts.setdefault(arm, [0, 0])
        counts[arm][0] += lost
        counts[arm][1] += 1
        lines.append(f"| {arm} | {seed} | {top:.0f} ({top_step}) | {last:.0f} ({last_step}) | "
                     f"{(top - last) / top:.1%} | {'yes' if lost else 'no'} |")
    lines += [""] + [f"{arm}: {k} of {n} runs lost modes late (more than {drop:.0%} below their own maximum "
                     f"from step {start} on)" for arm, (k, n) in counts.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=("a", "b"), required=True)
    parser.add_argument("out", type=Path, help="the study's compare folder")
    args = parser.parse_args()
    runs = read_runs(args.out)
    print("\n".join(stability(runs) if args.study == "a" else late_collapse(runs)))


if __name__ == "__main__":
    main()
