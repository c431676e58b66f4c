"""The tuning rule of RULES.md: each method's value with the most runs that train, ties to the lower
mean final FID. Prints the verdict sweep's --arms (none first). The Fashion-MNIST study
(docs/results/stability-fashion) uses it with its data set, FID bound and methods.

    python docs/results/stability-2d/choose_arms.py runs/stability-2d/lsgan/tuning
    python docs/results/stability-2d/choose_arms.py TUNING fashion-mnist FID_BOUND sine,r1
"""
import math
import statistics
import sys
from pathlib import Path

from tempered_gan.studies.arms import arm_of_folder
from tempered_gan.studies.compare_report import read_run
from tempered_gan.studies.success import success_rule, trains
from tempered_gan.training.run_folder import recorded_failure

METHODS = ("sine", "noise", "r1")


def main(folder: Path, dataset: str = "mixture-grid25", fail_fid: float | None = None,
         methods: tuple[str, ...] = METHODS) -> str:
    fid_max, modes_min = success_rule(dataset, fail_fid, None)
    runs = {}
    for run_dir in sorted((folder / "runs").iterdir()):
        stem, seed = run_dir.name.rsplit("-s", 1)
        arm = arm_of_folder(stem).name
        runs.setdefault(arm, []).append(read_run(arm, int(seed), run_dir, recorded_failure(run_dir)))
    finite = [r.final_fid for rs in runs.values() for r in rs if r.final_fid is not None and math.isfinite(r.final_fid)]
    worst = max(finite, default=math.inf)
    chosen = ["none"]
    for method in methods:
        candidates = {arm: rs for arm, rs in runs.items() if arm.split(":")[0] == method}
        if len(candidates) != 3 or any(len(rs) != 3 for rs in candidates.values()):
            raise SystemExit(f"{folder}: {method} has {len(candidates)} values, not 3 × 3 finished runs")
        score = {arm: (-sum(trains(r, fid_max, modes_min) for r in rs),
                       statistics.mean(r.final_fid if r.final_fid is not None else worst for r in rs))
                 for arm, rs in candidates.items()}
        for arm in sorted(score, key=score.get):
            print(f"{arm}: {-score[arm][0]}/3 train, mean final FID {score[arm][1]:.3g}", file=sys.stderr)
        chosen.append(min(score, key=score.get))
    return ",".join(chosen)


if __name__ == "__main__":
    folder, *rest = sys.argv[1:]
    if rest:
        print(main(Path(folder), rest[0], float(rest[1]), tuple(rest[2].split(","))))
    else:
        print(main(Path(folder)))
