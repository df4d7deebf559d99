#!/usr/bin/env bash
# tests/gpu/run.sh: the GPU tier (and, with --bench, the GPU benchmarks) from
# a pack made by tools/gpu-pack, on a GPU host without demix's build
# dependencies. Run from the source tree:
#
#   tests/gpu/run.sh PACK [--bench | --bench-only] [--seconds 180] [--tracks 100]
#
# Each program in PACK/bin/gpu_* compares the CUDA backend with the CPU
# reference (see tests/gpu/*.c); one with no GPU to run on counts as failed,
# so a green run always means the CUDA code ran. Logs and the arrays of a
# failing comparison go to $DEMIX_BUILD (default /tmp/demix-gpu). --bench
# (--bench-only: without the tier, for a second call) then runs
# bench/analysis (CPU and CUDA backends, librosa beside them when the
# host's python has it) and bench/separate on htdemucs_full_random with
# the official Demucs beside it (its python needs torch and numpy, and
# the official code: DEMUCS_PY, else the pack's official/), both writing into
# bench/RESULTS.md. The last line is "N passed, N failed" for the tier.
# DEMIX_GPU_TEST_DEVICE=cpu runs the programs with the CPU backend standing
# in for CUDA (tests/gpu/gpu_side.h): a check of a pack and of the programs
# on a host without a GPU, not of the CUDA code.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PACK="" BENCH=0 TIER=1 SECS=180 TRACKS=100
while [ $# -gt 0 ]; do
  case $1 in
    --bench) BENCH=1; shift ;;
    --bench-only) BENCH=1 TIER=0; shift ;;
    --seconds) SECS=$2; shift 2 ;;
    --tracks) TRACKS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) PACK=$(cd "$1" && pwd); shift ;;
  esac
done
[ -n "$PACK" ] && [ -d "$PACK/bin" ] || { echo "usage: tests/gpu/run.sh PACK [--bench | --bench-only] (a folder made by tools/gpu-pack)" >&2; exit 2; }
export LD_LIBRARY_PATH=$PACK/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export DEMIX_REFERENCE=${DEMIX_REFERENCE:-$PACK/ref} DEMIX_SOURCE=$ROOT DEMIX_BUILD=${DEMIX_BUILD:-/tmp/demix-gpu}
# the official Demucs for bench/separate: the pack's, unless DEMUCS_PY names one
[ -z "${DEMUCS_PY:-}" ] && [ -d "$PACK/official/demucs" ] && export DEMUCS_PY=$PACK/official
mkdir -p "$DEMIX_BUILD/tests"
command -v nvidia-smi > /dev/null && nvidia-smi -L

passed=0 failed=0
for t in "$PACK"/bin/gpu_*; do
  [ $TIER = 1 ] || break
  name=$(basename "$t")
  start=$(date +%s)
  timeout 1200 "$t" > "$DEMIX_BUILD/$name.log" 2>&1
  rc=$?
  case $rc in
    0) passed=$((passed + 1)); verdict=passed ;;
    77) failed=$((failed + 1)); verdict="skipped (no GPU): counted as failed" ;;
    *) failed=$((failed + 1)); verdict="FAILED (exit $rc)" ;;
  esac
  printf '== %s: %s in %d s\n' "$name" "$verdict" $(($(date +%s) - start))
  grep -iE 'fail|error|skipped' "$DEMIX_BUILD/$name.log" | head -n 40
  tail -n 1 "$DEMIX_BUILD/$name.log"
done

if [ $BENCH = 1 ]; then
  librosa=--no-librosa
  PY=${PYTHON:-python3}
  "$PY" -c 'import librosa' 2> /dev/null && librosa=""
  PYTHON=$PY "$ROOT/bench/analysis/run.sh" --build "$PACK/bin" --no-build $librosa --tracks "$TRACKS" --seconds "$SECS" ||
    echo "bench/analysis failed (exit $?)"
  PYTHON=$PY "$ROOT/bench/separate/run.sh" --build "$PACK/bin" --full --seconds "$SECS" --device cuda --record --profile ||
    echo "bench/separate failed (exit $?)"
fi
printf '%d passed, %d failed\n' "$passed" "$failed"
[ $failed = 0 ]
