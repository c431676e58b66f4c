#!/usr/bin/env bash
# The project's GPU checks, one call per part (docs/PERFORMANCE.md §6 has the exact calls).
#
#   benchmarks/gpu_session.sh 1   part 1, ≤ 7 min: (a) device, driver, torch; (b) every command eagerly on
#                                 CUDA as a user runs it, a few seconds each, its tensors on the GPU
#                                 (benchmarks/cuda_commands.py); (c) tests/training/test_cuda_graphs.py; (d) bench_gpu.py:
#                                 eager against CUDA graphs for gan, lsgan, wgan-gp with and without the paper's
#                                 lens, then the 200-step loss agreement; (e) the command line as a user runs it,
#                                 eager against --cuda-graphs; then, if time is left, aggregate steps/s of 1, 3
#                                 and 6 concurrent runs
#   benchmarks/gpu_session.sh 2   part 2, ≤ 5 min: the Fashion-MNIST comparison (DCGAN, paper nets and lens,
#                                 K = 10 000, seeds 0-2 × {none, sine, noise}, FID every 2000 steps on 4096
#                                 samples, all nine runs at once on the one GPU: compare --jobs 9)
#   STAGES=tests,cli-graphs-lens benchmarks/gpu_session.sh 1    only the named stages (a rerun after a fix)
#
# It runs the package from this source tree (PYTHONPATH=.) with the device's python3 (torch 2.11, no venv).
# Each stage has its own time limit (`timeout`), cut to what is left of the part's budget; a failed or
# timed-out stage never stops the next. Logs and results go to $OUT (at most 8 files come back: the
# summary, session.log, the JSON results and one tar.gz of the rest); a summary table is printed last.
#
# Data (git-ignored, carried with the call; about 30 MB):
#   mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*-ubyte.gz data/fashion-mnist/
# Optional, part 2: the FID classifier trained here on the CPU (deterministic there), so that FIDs are on
# the scale of docs/RESULTS.md's CPU runs; without it the GPU trains its own in the first seconds:
#   TEMPERED_GAN_CACHE=data/cache PYTHONPATH=. python -c "from tempered_gan.metrics import feature_extractor; \
#       feature_extractor('classifier', 'fashion-mnist', 'data/fashion-mnist')"
#   and carry data/cache/metrics only (data/cache also gets the decoded images, too large to travel).
#
# Settings (environment): COMPARE_STEPS (part 2 steps per run, default 12000; set it from part 1's
# aggregate steps/s), COMPARE_JOBS (default 9), BUDGET (seconds for the part; default 405 and 300),
# PYTHON (default python3), STAGES (see above). GPU_SESSION_FAKE=1 replaces every stage by a tiny
# CPU stand-in (tests of this script: tests/benchmarks/test_gpu_session.py); GPU_SESSION_FAKE_FAIL and
# GPU_SESSION_FAKE_SLOW name stand-ins that fail or overrun their limit.
set -u -o pipefail

PART=${1:-}
case "$PART" in
    1 | 2) ;;
    *) echo "gpu_session.sh: usage: benchmarks/gpu_session.sh 1|2 (see the header)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
FAKE=${GPU_SESSION_FAKE:-0}
DATA=data/fashion-mnist
export PYTHONPATH=. PYTHONUNBUFFERED=1
if [ "$FAKE" != 1 ]; then
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        echo "gpu_session.sh: needs a CUDA GPU; $PY finds none (no torch, or torch.cuda.is_available() is false)" >&2
        exit 2
    fi
    if ! ls "$DATA"/train-images-idx3-ubyte* >/dev/null 2>&1; then
        echo "gpu_session.sh: $DATA/ is missing; fill it from /usr/share/datasets/fashion-mnist and carry it (see the header)" >&2
        exit 2
    fi
fi
if [ -d data/cache ]; then
    export TEMPERED_GAN_CACHE="$PWD/data/cache"
fi
OUT=${OUT:-$(mktemp -d)}
WORK=$(mktemp -d)
LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
exec > >(tee -a "$OUT/session.log") 2>&1
TEE_PID=$!
trap 'exec 1>&- 2>&-; wait "$TEE_PID"' EXIT   # session.log is complete when the call returns
if [ "$PART" = 1 ]; then BUDGET=${BUDGET:-405}; else BUDGET=${BUDGET:-300}; fi
RESERVE=15          # seconds kept for a stage to stop after its limit (8), the summary and the tar
START=$SECONDS
SUMMARY=$WORK/summary.tsv
: >"$SUMMARY"
echo "gpu_session.sh part $PART: $(date -u '+%Y-%m-%d %H:%M UTC'); budget ${BUDGET}s; results in $OUT"

# stage NAME LIMIT CMD [ARGS...]: run CMD under `timeout`, its output in $LOGS/NAME.log, one summary row.
stage() {
    local name=$1 limit=$2 left rc t0 status
    shift 2
    if [ -n "${STAGES:-}" ] && [[ ",$STAGES," != *",$name,"* ]]; then
        return 0
    fi
    left=$((BUDGET - (SECONDS - START) - RESERVE))
    if [ "$left" -lt 5 ]; then
        printf '%s\t%s\t%s\n' "$name" "skipped: no time left" 0 >>"$SUMMARY"
        echo "=== $name: skipped, no time left"
        return 0
    fi
    if [ "$limit" -gt "$left" ]; then limit=$left; fi
    echo "=== $name (limit ${limit}s, $((SECONDS - START))s into the part)"
    t0=$SECONDS
    if [ "$FAKE" = 1 ]; then
        # shellcheck disable=SC2016   # expanded by the stand-in's own bash
        set -- bash -c 'if [[ ",${GPU_SESSION_FAKE_SLOW:-}," == *",$1,"* ]]; then sleep 30; fi
                        if [[ ",${GPU_SESSION_FAKE_FAIL:-}," == *",$1,"* ]]; then echo "stand-in $1 fails"; exit 1; fi
                        echo "stand-in $1 ran"' fake "$name"
    fi
    timeout --kill-after=8 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status="timed out at ${limit}s" ;;
        *) status="failed (exit $rc)" ;;
    esac
    tail -n 25 "$LOGS/$name.log"
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" >>"$SUMMARY"
    return 0
}

# shellcheck disable=SC2317   # run by stage through `bash -c` (exported)
device_info() {
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
    "$PY" -c 'import torch, sys; p = torch.cuda.get_device_properties(0)
print(f"python {sys.version.split()[0]}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
      f"cuDNN {torch.backends.cudnn.version()}; {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB")'
    git log -1 --format='source: %h %s' 2>/dev/null || true
}
export -f device_info
export PY

BENCH=(benchmarks/bench_gpu.py --dataset fashion-mnist --data-dir "$DATA")
# The command line as a user runs it: the paper's DCGAN and lens (K beyond the run: the lens stays), log every 100 steps.
# shellcheck disable=SC2317   # likewise
cli_train() {   # cli_train NAME STEPS [OPTIONS...]
    local name=$1 steps=$2
    shift 2
    "$PY" -m tempered_gan train --dataset fashion-mnist --data-dir "$DATA" --loss gan --k 100000 --steps "$steps" \
        --log-every 100 --sample-every "$steps" --checkpoint-every "$steps" --out "$WORK/cli/$name" "$@"
}
export -f cli_train
export DATA WORK

if [ "$PART" = 1 ]; then
    stage device 30 bash -c device_info
    stage commands 120 "$PY" benchmarks/cuda_commands.py --data-dir "$DATA" --workdir "$WORK/commands"
    stage tests 120 "$PY" -m pytest -q -p no:cacheprovider tests/training/test_cuda_graphs.py
    stage bench-speed 100 "$PY" "${BENCH[@]}" --parts ceilings,speed --rounds 3 --seconds 0.3 --json "$WORK/speed.json"
    stage bench-agreement 90 "$PY" "${BENCH[@]}" --parts agreement --agree-steps 200 --json "$WORK/agreement.json"
    stage cli-eager-lens 45 bash -c 'cli_train eager-lens 600'
    stage cli-graphs-lens 45 bash -c 'cli_train graphs-lens 2000 --cuda-graphs'
    stage cli-eager-none 40 bash -c 'cli_train eager-none 600 --tempering none'
    stage cli-graphs-none 40 bash -c 'cli_train graphs-none 3000 --tempering none --cuda-graphs'
    stage bench-concurrent 100 "$PY" "${BENCH[@]}" --parts concurrent --jobs 1,3,6 --concurrent-arms gan+lens \
        --start-delay 20 --window 8 --json "$WORK/concurrent.json"
else
    COMPARE_STEPS=${COMPARE_STEPS:-12000}
    COMPARE_JOBS=${COMPARE_JOBS:-9}
    stage device 30 bash -c device_info
    stage compare $((BUDGET - 40)) "$PY" -m tempered_gan compare --dataset fashion-mnist --data-dir "$DATA" \
        --loss gan --arms none,sine,noise --seeds 3 --k 10000 --steps "$COMPARE_STEPS" --eval-every 2000 \
        --fid-samples 4096 --checkpoint-every "$COMPARE_STEPS" --cuda-graphs --jobs "$COMPARE_JOBS" \
        --out "$WORK/compare"
fi

# --- results -------------------------------------------------------------------
for f in speed agreement concurrent; do
    if [ -f "$WORK/$f.json" ]; then cp "$WORK/$f.json" "$OUT/"; fi
done
if [ -f "$WORK/compare/report.md" ]; then cp "$WORK/compare/report.md" "$OUT/"; fi
# Everything else (logs, run folders' metrics, configs, reports, last samples), without checkpoints.
(cd "$WORK" && tar czf "$OUT/session-part$PART.tar.gz" --exclude='checkpoint.pt' --exclude='events.out.*' .) ||
    echo "tar of $WORK failed"

echo
echo "=== results"
"$PY" benchmarks/gpu_session_results.py "$WORK" || echo "(the results could not be summarised)"
echo
echo "=== summary: part $PART, $((SECONDS - START))s of ${BUDGET}s"
{
    printf 'stage\tstatus\tseconds\n'
    cat "$SUMMARY"
} | awk -F'\t' '{ printf "%-18s %-26s %s\n", $1, $2, $3 }' | tee "$OUT/summary.txt"
if grep -q -v $'\tok\t' "$SUMMARY"; then exit 1; fi
exit 0
