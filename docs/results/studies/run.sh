#!/bin/bash
# The two image studies of docs/results/studies/README.md and the bf16 check of
# docs/PERFORMANCE.md §6, as they are run: from a worktree pinned at the rules' commit, e.g.
#
#   git worktree add --detach ../study 18a814c && cd ../study && PYTHON=/path/to/venv/bin/python bash ../main/docs/results/studies/run.sh
#
# Idempotent: finished runs are skipped, stopped ones resumed (run it again after an interruption).
# Extension rule, written down before the runs: if at the cap any run of a study is still improving (the
# report's rule), every run continues once to twice the cap; the report at the cap is kept as report-cap.md.
# Study A runs beside the bf16 check and then study B, one thread each (two cores).
set -u
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
A="--dataset fashion-mnist --loss lsgan --width 16 --lens-width 8 --lens-blocks 2 --k 2500 --eval-every 500
   --fid-samples 4096 --log-every 100 --sample-every 2500 --seeds 300-307 --arms none,sine --fail-modes 8
   --jobs 1 --no-progress --out runs/study-a-lsgan-fashion"
B="--dataset color-fashion-mnist --loss gan --width 16 --lens-width 8 --lens-blocks 2 --k 750 --eval-every 1000
   --fid-samples 4096 --log-every 200 --sample-every 5000 --seeds 400-404 --arms none,sine --jobs 1 --no-progress
   --out runs/study-b-color-fashion"
Q="--dataset color-fashion-mnist --loss gan --width 16 --lens-width 8 --lens-blocks 2 --k 750 --steps 2000
   --eval-every 500 --fid-samples 4096 --log-every 100 --sample-every 1000 --seeds 500-507 --arms none,sine
   --jobs 1 --no-progress"

any_improving() {   # any_improving OUT: exit 0 when some run of the comparison is still improving
    "$PY" - "$1" <<'PYEOF'
import sys
from pathlib import Path
from tempered_gan.studies.statistics import IMPROVING
from tempered_gan.studies.compare_report import read_run
runs = sorted((Path(sys.argv[1]) / "runs").iterdir())
states = [read_run(d.name.rsplit("-s", 1)[0], int(d.name.rsplit("-s", 1)[1]), d, None).trend.state for d in runs]
print(f"{sys.argv[1]}: " + ", ".join(f"{d.name} {s}" for d, s in zip(runs, states)))
sys.exit(0 if IMPROVING in states else 1)
PYEOF
}

study() {   # study "OPTIONS" CAP
    local out
    out=${1##*--out }
    # shellcheck disable=SC2086  # the options are words
    "$PY" -m tempered_gan compare $1 --steps "$2" || return $?
    if [ -f "$out/report-cap.md" ] || any_improving "$out"; then
        [ -f "$out/report-cap.md" ] || cp "$out/report.md" "$out/report-cap.md"
        # shellcheck disable=SC2086
        "$PY" -m tempered_gan compare $1 --steps $((2 * $2))
    fi
}

study "$A" 10000 > study-a.log 2>&1 &
{
    # shellcheck disable=SC2086
    "$PY" -m tempered_gan compare $Q --out runs/q-fp32 &&
        "$PY" -m tempered_gan compare $Q --amp bf16 --channels-last --out runs/q-bf16
    study "$B" 20000
} > study-b.log 2>&1 &
wait
