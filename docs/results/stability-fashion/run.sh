#!/usr/bin/env bash
# The Fashion-MNIST stability study of RULES.md: the FID bound from real data, tuning in the central
# cell on seeds 1000-1002, then the verdict sweep. Run from a worktree pinned at the commit that adds
# RULES.md; running it again resumes it (finished runs are kept).
#   JOBS=2 bash docs/results/stability-fashion/run.sh
set -eu
PY=${PYTHON:-python3}
JOBS=${JOBS:-2}
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
out=runs/stability-fashion
mkdir -p "$out"
[ -s "$out/fid-bound" ] || "$PY" docs/results/stability-fashion/anchor.py | tail -1 > "$out/fid-bound"
bound=$(cat "$out/fid-bound")
echo "success rule: final FID <= $bound and >= 8 of 10 classes"
COMMON="--dataset fashion-mnist --loss lsgan --width 16 --lens-width 8 --lens-blocks 2 --steps 5000
        --eval-every 500 --fid-features classifier --fid-samples 4096 --log-every 500 --sample-every 2500
        --no-progress --jobs $JOBS --fail-fid $bound --fail-modes 8"
# shellcheck disable=SC2086  # the options are words
"$PY" -m tempered_gan compare $COMMON --lr 5e-4 --beta1 0.5 --seeds 1000-1002 \
    --arms "none,sine:k=1250,sine:k=2500,sine:k=3750,r1:r1_gamma=0.1,r1:r1_gamma=1,r1:r1_gamma=10" \
    --out "$out/tuning"
arms=$("$PY" docs/results/stability-2d/choose_arms.py "$out/tuning" fashion-mnist "$bound" sine,r1)
echo "verdict arms $arms"
# shellcheck disable=SC2086
"$PY" -m tempered_gan sweep $COMMON --grid lr=1e-4,5e-4,2e-3 --grid beta1=0,0.5 --arms "$arms" \
    --seeds 100-107 --map lr,beta1 --out "$out/verdict"
