#!/bin/bash
# The 2-D stability study of RULES.md, as it is run: from a worktree pinned at the commit that added the rules,
#
#   git worktree add --detach ../stability COMMIT && cd ../stability && \
#       PYTHON=/path/to/venv/bin/python bash docs/results/stability-2d/run.sh
#
# Idempotent: finished runs are skipped, stopped ones resumed (run it again after an interruption).
# JOBS (default 2) is how many runs train at once; it never changes what a run trains.
set -eu
PY=${PYTHON:-python3}
JOBS=${JOBS:-2}
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
COMMON="--dataset mixture-grid25 --steps 4000 --k 2000 --eval-every 400 --fid-samples 2048 --log-every 400
        --sample-every 2000 --no-progress --jobs $JOBS"
TUNING="none,sine:k=1000,sine:k=2000,sine:k=3000,noise:noise_sigma=0.25,noise:noise_sigma=0.5,noise:noise_sigma=1"
TUNING="$TUNING,r1:r1_gamma=0.1,r1:r1_gamma=1,r1:r1_gamma=10"
for loss in lsgan gan; do
    out=runs/stability-2d/$loss
    # shellcheck disable=SC2086  # the options are words
    "$PY" -m tempered_gan compare $COMMON --loss "$loss" --lr 5e-3 --beta1 0.5 --critic-steps 1 --seeds 1000-1002 \
        --arms "$TUNING" --fail-fid 1 --fail-modes 20 --out "$out/tuning"
    arms=$("$PY" docs/results/stability-2d/choose_arms.py "$out/tuning")
    echo "$loss: verdict arms $arms"
    # shellcheck disable=SC2086
    "$PY" -m tempered_gan sweep $COMMON --loss "$loss" --grid lr=1e-3,5e-3,2e-2 --grid beta1=0,0.5 \
        --grid critic_steps=1,3 --arms "$arms" --seeds 100-107 --map lr,beta1 --out "$out/verdict"
done
