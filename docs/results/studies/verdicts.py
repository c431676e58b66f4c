"""The two image studies' pre-registered verdicts that the report does not compute itself
(docs/results/studies/README.md; rules committed in 18a814c):

- study A (``--study a``): the stability verdict. Failure per run is the report's own
  (NaN/Inf, final FID above 2 × the best FID of any run, fewer than 8 of 10 classes);
  *reproduced* if plain LSGAN fails on at least 5 of 8 seeds and the lens on fewer, with
  the exact two-sided sign test on the seeds where only one arm failed at p < 0.05;
  *contradicted* if the 95 % Wilson interval of plain LSGAN's failure rate lies wholly
  below 50 %; otherwise *cannot tell*.
- study B (``--study b``): late partial collapse. A run *lost modes late* when its modes
  at the last evaluation are more than 10 % below its own maximum over the evaluations
  from step 5000 on; counted per arm.

A verdict is printed only when every run has finished at ``--steps`` (the step the rules
end at) or failed before it, and every seed has both arms.

    PYTHONPATH=. .venv/bin/python docs/results/studies/verdicts.py --study a --steps 20000 runs/study-a-lsgan-fashion
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from scipy import stats

from tempered_gan.studies.compare_report import RunResult, failure_threshold, is_failed, read_run
from tempered_gan.studies.statistics import wilson
from tempered_gan.training.run_folder import recorded_failure

PLAIN, LENS = "none", "sine"


def read_runs(out: Path) -> dict[tuple[str, int], RunResult]:
    """Every run of a comparison folder, with the failure ``compare`` recorded when a run
    stopped on a NaN/Inf loss."""
    runs = {}
    for d in sorted((out / "runs").iterdir()):
        arm, seed = d.name.rsplit("-s", 1)
        runs[arm, int(seed)] = read_run(arm, int(seed), d, recorded_failure(d))
    return runs


def not_final(runs: dict[tuple[str, int], RunResult], steps: int) -> list[str]:
    """Why no verdict may be given yet: runs neither at ``steps`` nor failed, seeds lacking an arm."""
    why = [f"{arm}-s{seed} at step {r.fids[-1][0] if r.fids else 0}" for (arm, seed), r in sorted(runs.items())
           if not r.failed_early and not (r.fids and r.fids[-1][0] == steps)]
    seeds = {s for _, s in runs}
    why += [f"seed {s} lacks the {arm} arm" for s in sorted(seeds) for arm in (PLAIN, LENS) if (arm, s) not in runs]
    return why


def _no_verdict(why: list[str], steps: int) -> list[str]:
    return ["", f"no verdict yet: not every run has finished at step {steps} ({'; '.join(why)})"]


def stability(runs: dict[tuple[str, int], RunResult], steps: int, fail_factor: float = 2.0,
              fail_modes: int = 8) -> list[str]:
    threshold = failure_threshold(list(runs.values()), fail_factor, None)
    seeds = sorted(s for s in {s for _, s in runs} if (PLAIN, s) in runs and (LENS, s) in runs)
    failed = {key: is_failed(r, threshold, fail_modes) for key, r in runs.items()}
    lines = [f"failure threshold: final FID > {threshold:.4g} ({fail_factor:g} × the best FID of any run), or < {fail_modes} "
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
    why = not_final(runs, steps) or ([] if seeds else ["no runs"])
    if why:
        return lines + _no_verdict(why, steps)
    n = len(seeds)
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


def late_collapse(runs: dict[tuple[str, int], RunResult], steps: int, start: int = 5000,
                  drop: float = 0.10) -> list[str]:
    lines = ["| arm | seed | max modes from step 5000 (step) | modes at the last evaluation (step) | drop | lost modes late |",
             "|---|---|---|---|---|---|"]
    counts: dict[str, list[int]] = {}
    for (arm, seed), r in sorted(runs.items()):
        judged = counts.setdefault(arm, [0, 0, 0])     # lost, judged, not judged
        late = [(e["step"], float(e["modes"])) for e in r.evals if e["step"] >= start and e.get("modes") is not None]
        last = r.final("modes")
        if r.failed_early or last is None or not math.isfinite(last) or not late:
            reason = ("failed (NaN/Inf)" if r.failed_early else f"no evaluation from step {start} on" if not late
                      else "no modes value at the last evaluation")
            lines.append(f"| {arm} | {seed} | – | – | – | not judged: {reason} |")
            judged[2] += 1
            continue
        top_step, top = max(((st, m) for st, m in late if math.isfinite(m)), key=lambda x: (x[1], -x[0]))
        lost = last < (1 - drop) * top
        judged[0] += lost
        judged[1] += 1
        share = f"{(top - last) / top:.1%}" if top > 0 else "–"
        lines.append(f"| {arm} | {seed} | {top:.0f} ({top_step}) | {last:.0f} ({r.evals[-1]['step']}) | {share} | "
                     f"{'yes' if lost else 'no'} |")
    why = not_final(runs, steps)
    if why:
        return lines + _no_verdict(why, steps)
    return lines + [""] + [f"{arm}: {k} of {n} runs lost modes late (more than {drop:.0%} below their own maximum "
                           f"from step {start} on)" + (f"; {skipped} not judged" if skipped else "")
                           for arm, (k, n, skipped) in counts.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", choices=("a", "b"), required=True)
    parser.add_argument("--steps", type=int, required=True, help="the step at which the study's rules end")
    parser.add_argument("out", type=Path, help="the study's compare folder")
    args = parser.parse_args()
    runs = read_runs(args.out)
    print("\n".join(stability(runs, args.steps) if args.study == "a" else late_collapse(runs, args.steps)))


if __name__ == "__main__":
    main()
