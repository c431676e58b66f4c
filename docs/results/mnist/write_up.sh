#!/usr/bin/env bash
# The reports and pictures of the MNIST studies, written by this checkout's code (`--report-only`) from
# the runs that run.sh made in its pinned worktree, and copied here beside the rules. Whatever has not
# run yet, or is still running (its folder's lock is held), is skipped with a line saying so; running it
# again after more runs finish brings them in.
#   bash docs/results/mnist/write_up.sh ../mnist-study/runs/mnist
# The options below are run.sh's: `--report-only` refuses a comparison whose options differ from the
# ones its runs were trained with, so a drift between the two files is an error, never a wrong report.
set -eu
runs=${1:?usage: write_up.sh RUNS_FOLDER (run.sh\'s runs/mnist)}
here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
export TEMPERED_GAN_DATA=${TEMPERED_GAN_DATA:-$(cd "$here/../../../../shared/data" && pwd)}
TG() { "$PY" -m tempered_gan "$@"; }
NETS="--width 16 --lens-width 8 --lens-blocks 2 --batch-size 64 --beta1 0.5"
EVAL="--eval-every 1000 --fid-features classifier --fid-samples 4096 --log-every 500 --no-progress"
TUNE_ARMS="sine:k=2500,sine:k=5000,sine:k=10000,r1:r1_gamma=0.1,r1:r1_gamma=1,r1:r1_gamma=10"
combined() { echo "none,$1,$2,$1:${2#r1:}"; }

# keep FOLDER NAME: copy a comparison's (or sweep's) report and figures to docs/results/mnist/NAME/
keep() {
    mkdir -p "$here/$2"
    cp "$1/report.md" "$here/$2/report.md"
    for figure in "$1"/*.png; do [ -e "$figure" ] && cp "$figure" "$here/$2/"; done
    echo "kept: docs/results/mnist/$2"
}
# started FOLDER: whether a comparison or sweep has runs to report on
started() { [ -d "$1/runs" ] || [ -d "$1/cells" ]; }
# trained_arms FOLDER: the arms a comparison or sweep was trained with, in its manifest's order (a sweep's
# cells prefix them with their grid values, which are dropped); for a stage whose tuning has no runs here
trained_arms() {
    "$PY" -c 'import json, sys
arms = [arm.split("/")[-1] for arm in json.load(open(sys.argv[1] + "/grid.json"))["arms"]]
print(",".join(dict.fromkeys(arms)))' "$1"
}
# running FOLDER NAME: whether a process still holds the folder's lock (it is still training); says so
running() {
    local who
    who=$("$PY" -c 'import sys; from tempered_gan.util.locks import holder; print(holder(sys.argv[1]) or "")' "$1")
    [ -n "$who" ] || return 1
    echo "write_up.sh: $2 is still running ($who); its report waits for it"
}

[ -s "$runs/plan" ] || { echo "write_up.sh: no plan yet in $runs (the pilot has not finished)"; exit 0; }
eval "$(cat "$runs/plan")"      # C_STEPS C_TUNING D_STEPS D_TUNING LSGAN
cp "$runs/plan.txt" "$here/plan.txt"

# The pilot (no arm is compared; its curves and channels are the lengths' evidence).
P="--loss gan --lr 1e-4 $NETS $EVAL --steps 30000 --sample-every 10000 --seeds 900-900 --jobs 1"
if started "$runs/pilot/color" && started "$runs/pilot/color-slow" && started "$runs/pilot/grey"; then
    # shellcheck disable=SC2086  # the options are words
    TG compare --dataset color-mnist $P --arms none --out "$runs/pilot/color" --report-only
    # shellcheck disable=SC2086
    TG compare --dataset color-mnist $P --arms "sine:k=10000:r1_gamma=1" --out "$runs/pilot/color-slow" --report-only
    # shellcheck disable=SC2086
    TG compare --dataset mnist $P --arms none --out "$runs/pilot/grey" --report-only
    for pilot in color color-slow grey; do keep "$runs/pilot/$pilot" "pilot/$pilot"; done
    for pilot in color color-slow; do
        "$PY" "$here/collapse_history.py" "$runs/pilot/$pilot" > "$here/pilot/$pilot/collapse-history.md"
    done
else
    echo "write_up.sh: the pilot has no runs in $runs; its committed reports are kept"
fi

# Study C.
C="--dataset color-mnist --loss gan --lr 1e-4 $NETS $EVAL --jobs 2"
if started "$runs/color/tuning" && ! running "$runs/color/tuning" "study C's tuning"; then
    # shellcheck disable=SC2086
    TG compare $C --steps "$C_TUNING" --sample-every "$C_TUNING" --seeds 1000-1002 --arms "$TUNE_ARMS" \
        --out "$runs/color/tuning" --report-only
    keep "$runs/color/tuning" color/tuning
elif ! started "$runs/color/tuning"; then
    echo "write_up.sh: study C's tuning has no runs in $runs; its committed report is kept"
fi
if started "$runs/color/verdict" && running "$runs/color/verdict" "study C's verdict"; then
    :
elif started "$runs/color/verdict"; then
    if started "$runs/color/tuning"; then
        chosen=$("$PY" "$here/../stability-2d/choose_arms.py" "$runs/color/tuning" color-mnist inf sine,r1)
        IFS=, read -r _ sine r1 <<< "$chosen"
        arms=$(combined "$sine" "$r1")
    else
        arms=$(trained_arms "$runs/color/verdict")
        r1=$(tr , '\n' <<< "$arms" | grep '^r1:')
    fi
    # The lens with R1 against R1 alone first (its report is kept under another name), then every arm
    # against no lens, the report the folder keeps.
    # shellcheck disable=SC2086
    TG compare $C --steps "$C_STEPS" --sample-every 5000 --seeds 100-105 --arms "$arms" --reference "$r1" \
        --out "$runs/color/verdict" --report-only
    mkdir -p "$here/color/verdict"
    cp "$runs/color/verdict/report.md" "$here/color/verdict/report-against-r1.md"
    # shellcheck disable=SC2086
    TG compare $C --steps "$C_STEPS" --sample-every 5000 --seeds 100-105 --arms "$arms" \
        --out "$runs/color/verdict" --report-only
    keep "$runs/color/verdict" color/verdict
    "$PY" "$here/typical_runs.py" "$runs/color/verdict" "$here/color/verdict/typical.png"
    "$PY" "$here/collapse_history.py" "$runs/color/verdict" > "$here/color/verdict/collapse-history.md"
else
    echo "write_up.sh: study C's verdict has not started"
fi

# Study D, per loss.
[ -s "$runs/fid-bound" ] || { echo "write_up.sh: study D has not started"; exit 0; }
bound=$(cat "$runs/fid-bound")
losses=gan
[ "$LSGAN" = 1 ] && losses="gan lsgan"
for loss in $losses; do
    D="--dataset mnist --loss $loss $NETS $EVAL --jobs 2 --fail-fid $bound --fail-modes 8"
    if ! started "$runs/map-$loss/tuning"; then
        echo "write_up.sh: study D's ($loss) tuning has no runs in $runs; its committed report is kept"
    elif running "$runs/map-$loss/tuning" "study D's ($loss) tuning"; then
        continue
    else
        # shellcheck disable=SC2086
        TG compare $D --lr 5e-4 --steps "$D_TUNING" --sample-every "$D_TUNING" --seeds 1000-1002 --arms "$TUNE_ARMS" \
            --out "$runs/map-$loss/tuning" --report-only
        keep "$runs/map-$loss/tuning" "map-$loss/tuning"
    fi
    started "$runs/map-$loss/verdict" || { echo "write_up.sh: study D's ($loss) verdict has not started"; continue; }
    running "$runs/map-$loss/verdict" "study D's ($loss) verdict" && continue
    if started "$runs/map-$loss/tuning"; then
        arms=$("$PY" "$here/../stability-2d/choose_arms.py" "$runs/map-$loss/tuning" mnist "$bound" sine,r1)
    else
        arms=$(trained_arms "$runs/map-$loss/verdict")
    fi
    # shellcheck disable=SC2086
    TG sweep $D --grid lr=1e-4,5e-4,2e-3 --steps "$D_STEPS" --sample-every 5000 --seeds 100-107 --arms "$arms" \
        --map lr --out "$runs/map-$loss/verdict" --report-only
    keep "$runs/map-$loss/verdict" "map-$loss/verdict"
    # The paper's lr: the cell its claims are about.
    "$PY" "$here/typical_runs.py" "$runs/map-$loss/verdict/cells/lr=0.0001" "$here/map-$loss/verdict/typical.png"
done
