#!/usr/bin/env bash
# The MNIST studies of RULES.md, in their order: the pilot, plan.py's lengths and cuts, study C (tuning,
# verdict), then study D's GAN half and its LSGAN half (tuning, verdict each). Run from a worktree pinned at
# the commit that adds RULES.md; running it again resumes it (finished runs are kept, stopped ones continue).
#   git worktree add --detach ../mnist-study <commit> && cd ../mnist-study
#   PYTHON=../main/.venv/bin/python bash docs/results/mnist/run.sh
set -eu
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
export TEMPERED_GAN_DATA=${TEMPERED_GAN_DATA:-$(cd ../shared/data && pwd)}
out=runs/mnist
mkdir -p "$out"
TG() { "$PY" -m tempered_gan "$@"; }
NETS="--width 16 --lens-width 8 --lens-blocks 2 --batch-size 64 --beta1 0.5"
EVAL="--eval-every 1000 --fid-features classifier --fid-samples 4096 --log-every 500 --no-progress"

# Pilot: seed 900 (no study uses it), the paper's lr, 30 000 steps; two runs at a time.
P="--loss gan --lr 1e-4 $NETS $EVAL --steps 30000 --sample-every 10000 --seeds 900-900 --jobs 1"
# shellcheck disable=SC2086  # the options are words
{ TG compare --dataset color-mnist $P --arms "sine:k=10000:r1_gamma=1" --out "$out/pilot/color-slow"; } &
slow=$!
# shellcheck disable=SC2086
TG compare --dataset color-mnist $P --arms none --out "$out/pilot/color"
# shellcheck disable=SC2086
TG compare --dataset mnist $P --arms none --out "$out/pilot/grey"
wait $slow
[ -s "$out/plan" ] || "$PY" docs/results/mnist/plan.py "$out/pilot" > "$out/plan" 2> "$out/plan.txt"
cat "$out/plan.txt" "$out/plan"
eval "$(cat "$out/plan")"      # C_STEPS C_TUNING D_STEPS D_TUNING LSGAN

TUNE_ARMS="sine:k=2500,sine:k=5000,sine:k=10000,r1:r1_gamma=0.1,r1:r1_gamma=1,r1:r1_gamma=10"
combined() { echo "none,$1,$2,$1:${2#r1:}"; }   # none,sine:k=K,r1:r1_gamma=G,sine:k=K:r1_gamma=G

# Study C: DCGAN, GAN loss, Colour MNIST, lr 1e-4.
C="--dataset color-mnist --loss gan --lr 1e-4 $NETS $EVAL --jobs 2"
# shellcheck disable=SC2086
TG compare $C --steps "$C_TUNING" --sample-every "$C_TUNING" --seeds 1000-1002 --arms "$TUNE_ARMS" \
    --out "$out/color/tuning"
chosen=$("$PY" docs/results/stability-2d/choose_arms.py "$out/color/tuning" color-mnist inf sine,r1)
IFS=, read -r _ sine r1 <<< "$chosen"
echo "study C arms: $(combined "$sine" "$r1")"
# shellcheck disable=SC2086
TG compare $C --steps "$C_STEPS" --sample-every 5000 --seeds 100-105 --arms "$(combined "$sine" "$r1")" \
    --out "$out/color/verdict"

# Study D: real MNIST, the paper's nets per loss (batch norm for GAN, none for LSGAN), lr cells.
[ -s "$out/fid-bound" ] || "$PY" docs/results/stability-fashion/anchor.py mnist | tail -1 > "$out/fid-bound"
bound=$(cat "$out/fid-bound")
echo "study D's success rule: final FID <= $bound and >= 8 of 10 classes"
losses=gan
[ "$LSGAN" = 1 ] && losses="gan lsgan"
for loss in $losses; do
    D="--dataset mnist --loss $loss $NETS $EVAL --jobs 2 --fail-fid $bound --fail-modes 8"
    # shellcheck disable=SC2086
    TG compare $D --lr 5e-4 --steps "$D_TUNING" --sample-every "$D_TUNING" --seeds 1000-1002 --arms "$TUNE_ARMS" \
        --out "$out/map-$loss/tuning"
    arms=$("$PY" docs/results/stability-2d/choose_arms.py "$out/map-$loss/tuning" mnist "$bound" sine,r1)
    echo "study D ($loss) arms: $arms"
    # shellcheck disable=SC2086
    TG sweep $D --grid lr=1e-4,5e-4,2e-3 --steps "$D_STEPS" --sample-every 5000 --seeds 100-107 --arms "$arms" \
        --map lr --out "$out/map-$loss/verdict"
done
