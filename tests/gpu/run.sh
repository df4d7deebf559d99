#!/usr/bin/env bash
# tests/gpu/run.sh: the GPU tier (and, with --bench, the GPU benchmarks) from
# a pack made by tools/gpu-pack, on a GPU host without demix's build
# dependencies. Run from the source tree:
#
#   tests/gpu/run.sh PACK [--bench | --bench-only] [--seconds 180] [--tracks 100]
#                    [--time S] [--out DIR]
#
# Each program in PACK/bin/gpu_* compares the CUDA backend with the CPU
# reference (see tests/gpu/*.c); one with no GPU to run on counts as failed,
# so a green run always means the CUDA code ran. Logs and the arrays of a
# failing comparison go to $DEMIX_BUILD (default /tmp/demix-gpu). --bench
# (--bench-only: without the tier, for a second call) then runs
# bench/analysis (CPU and CUDA backends, librosa beside them) and
# bench/separate on htdemucs_full_random with the official Demucs beside it
# (its python needs torch and numpy, and the official code: DEMUCS_PY, else
# the pack's official/), both writing into bench/RESULTS.md. librosa comes
# from the pack's wheels/ when the host's python lacks it (installed under
# $DEMIX_BUILD/site, only the packages that do not import already). The last
# line is "N passed, N failed" for the tier.
# --time S: the whole run's seconds (a device call of fixed length): each
# program and benchmark is stopped at the limit, the analysis benchmark
# leaves the separation benchmark at least a third of what is left, and the
# separation benchmark records what it measured (bench/separate --time-limit).
# Libraries the binaries need that neither PACK/lib nor the loader's path
# has (a host whose cuDNN, cuBLAS... came with its Python's nvidia-*
# packages, or sit in /usr/local/cuda) are looked up there and their
# folders put on LD_LIBRARY_PATH; tier.txt says what was found where.
# Where the host's python has torch and the pack has the official Demucs,
# tools/make-reference first makes the full-size cases (and
# htdemucs_full_random for the separation benchmark) into
# $DEMIX_BUILD/ref, which then serves as the kit: gpu_models compares them
# too (at most 4 minutes, or a quarter of --time; without them the pack's
# kit serves).
# A program that fails (not by the limit) runs once more under
# compute-sanitizer's memcheck when the host has it (at most 3 minutes, or a
# third of what is left), its report in $DEMIX_BUILD/<name>.memcheck.log:
# an out-of-bounds or misaligned access is named by kernel and address.
# --out DIR: after every step, DIR gets RESULTS.md (bench/RESULTS.md as it
# stands), tier.txt (each program's verdict and failing lines) and logs.tgz
# (the logs, and the arrays of failing comparisons while they fit 15 MiB), so
# a call stopped early still brings back what was done.
# DEMIX_GPU_TEST_DEVICE=cpu runs the programs with the CPU backend standing
# in for CUDA (tests/gpu/gpu_side.h): a check of a pack and of the programs
# on a host without a GPU, not of the CUDA code.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PACK="" BENCH=0 TIER=1 SECS=180 TRACKS=100 DEADLINE="" OUTDIR=""
START=$(date +%s)
while [ $# -gt 0 ]; do
  case $1 in
    --time) DEADLINE=$((START + $2)); shift 2 ;;
    --out) OUTDIR=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
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
: > "$DEMIX_BUILD/tier.txt"
command -v nvidia-smi > /dev/null && nvidia-smi -L | tee -a "$DEMIX_BUILD/tier.txt"
PY=${PYTHON:-python3}

# missing: the libraries the pack's binaries need that the loader does not find
missing() { ldd "$PACK"/bin/* 2> /dev/null | awk '/=> not found/ {print $1}' | sort -u; }
# lib_path_add DIR: DIR at the end of LD_LIBRARY_PATH, once
lib_path_add() { case ":$LD_LIBRARY_PATH:" in *":$1:"*) ;; *) LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$1 ;; esac; }
libs=$(missing)
if [ -n "$libs" ]; then
  dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64 /usr/lib/x86_64-linux-gnu)
  for sp in $("$PY" -c 'import site; print(" ".join(site.getsitepackages()))' 2> /dev/null); do
    [ -d "$sp/nvidia" ] && while read -r d; do dirs+=("$d"); done < <(find "$sp/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u)
  done
  for lib in $libs; do
    found=""
    for d in "${dirs[@]}"; do [ -e "$d/$lib" ] && { found=$d; break; }; done
    [ -z "$found" ] && found=$(timeout 60 find / -xdev -name "$lib" -printf '%h\n' 2> /dev/null | head -n 1)
    [ -n "$found" ] || continue
    lib_path_add "$found"
    echo "libraries: $lib from $found" >> "$DEMIX_BUILD/tier.txt"
  done
  # a library from the nvidia-* wheels loads others of them at run time
  # (cuDNN its sub-libraries, cuBLASLt, NVRTC): all their folders then
  if grep -q "^libraries: .* from .*/nvidia/" "$DEMIX_BUILD/tier.txt"; then
    for d in "${dirs[@]}"; do
      case $d in */nvidia/*) lib_path_add "$d" ;; esac
    done
  fi
  export LD_LIBRARY_PATH
  still=$(missing)
  [ -n "$still" ] && echo "libraries not found anywhere:" $still >> "$DEMIX_BUILD/tier.txt"
  grep '^libraries' "$DEMIX_BUILD/tier.txt"
fi

# left: seconds to the --time limit (a day without one)
left() { if [ -n "$DEADLINE" ]; then echo $((DEADLINE - $(date +%s))); else echo 86400; fi; }
# save: what is done so far into --out
save() {
  [ -n "$OUTDIR" ] || return 0
  cp "$ROOT/bench/RESULTS.md" "$OUTDIR/RESULTS.md"
  cp "$DEMIX_BUILD/tier.txt" "$OUTDIR/tier.txt"
  tar czf "$OUTDIR/logs.tgz" -C "$DEMIX_BUILD" --exclude=./site --exclude=./bench --exclude=./ref . 2> /dev/null
  if [ "$(stat -c %s "$OUTDIR/logs.tgz")" -gt $((15 << 20)) ]; then # the arrays do not fit: logs alone
    tar czf "$OUTDIR/logs.tgz" -C "$DEMIX_BUILD" --exclude=./site --exclude=./bench --exclude=./ref --exclude='*.f32' . 2> /dev/null
  fi
}

# the full-size cases, made here by the official code (tools/make-reference)
if [ -d "$PACK/official/demucs" ] && [ -f "$PACK/ref/demucs/make_kit.py" ] && "$PY" -c 'import torch, numpy' 2> /dev/null; then
  limit=$(($(left) / 4))
  ((limit > 240)) && limit=240
  start=$(date +%s)
  if ((limit >= 30)) && timeout -k 5 "$limit" "$ROOT/tools/make-reference" --python "$PY" --demucs-py "$PACK/official" \
    --kit "$PACK/ref/demucs" --out "$DEMIX_BUILD/ref" > "$DEMIX_BUILD/make-reference.log" 2>&1; then
    export DEMIX_REFERENCE=$DEMIX_BUILD/ref
    echo "reference: the full-size cases made in $(($(date +%s) - start)) s; kit $DEMIX_REFERENCE" | tee -a "$DEMIX_BUILD/tier.txt"
  else
    { echo "reference: tools/make-reference did not finish (the pack's kit serves; log make-reference.log):"
      tail -n 3 "$DEMIX_BUILD/make-reference.log"; } 2> /dev/null | tee -a "$DEMIX_BUILD/tier.txt"
  fi
fi

passed=0 failed=0
for t in "$PACK"/bin/gpu_*; do
  [ $TIER = 1 ] || break
  name=$(basename "$t")
  start=$(date +%s)
  limit=$(left)
  ((limit > 1200)) && limit=1200
  if ((limit < 10)); then rc=124; else timeout -k 5 "$limit" "$t" > "$DEMIX_BUILD/$name.log" 2>&1; rc=$?; fi
  case $rc in
    0) passed=$((passed + 1)); verdict=passed ;;
    77) failed=$((failed + 1)); verdict="skipped (no GPU): counted as failed" ;;
    124 | 137) failed=$((failed + 1)); verdict="STOPPED at the time limit" ;;
    *) failed=$((failed + 1)); verdict="FAILED (exit $rc)" ;;
  esac
  {
    printf '== %s: %s in %d s\n' "$name" "$verdict" $(($(date +%s) - start))
    grep -iE 'fail|error|skipped' "$DEMIX_BUILD/$name.log" 2> /dev/null | head -n 40
    tail -n 1 "$DEMIX_BUILD/$name.log" 2> /dev/null
  } | tee -a "$DEMIX_BUILD/tier.txt"
  save
  case $rc in 0 | 77 | 124 | 137) continue ;; esac
  sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2> /dev/null) || continue
  limit=$(($(left) / 3))
  ((limit > 180)) && limit=180
  ((limit >= 20)) || continue
  timeout -k 5 "$limit" "$sanitizer" --tool memcheck --print-limit 20 "$t" > "$DEMIX_BUILD/$name.memcheck.log" 2>&1
  {
    printf '== %s under memcheck (exit %d):\n' "$name" $?
    grep -E '^=+ (Invalid|Program hit|Misaligned|Out-of-range|ERROR SUMMARY)|^=+ +at ' \
      "$DEMIX_BUILD/$name.memcheck.log" | head -n 20
  } | tee -a "$DEMIX_BUILD/tier.txt"
  save
done

if [ $BENCH = 1 ]; then
  librosa=--no-librosa
  if ! "$PY" -c 'import librosa' 2> /dev/null && [ -d "$PACK/wheels" ]; then
    # only what the host's python lacks: its own numpy, scipy, numba... stay
    need=()
    for w in "$PACK"/wheels/*.whl; do
      m=$(basename "$w" | cut -d- -f1)
      "$PY" -c "import $m" 2> /dev/null || need+=("$w")
    done
    if ((${#need[@]})); then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$DEMIX_BUILD/site" "${need[@]}"
    fi
    export PYTHONPATH=$DEMIX_BUILD/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  "$PY" -c 'import librosa' 2> /dev/null && librosa=""
  [ -n "$librosa" ] && echo "bench/analysis: librosa does not import with $PY; demix alone" | tee -a "$DEMIX_BUILD/tier.txt"
  # the analysis leaves the separation at least a third of what is left
  limit=$(($(left) * 2 / 3))
  if ((limit >= 30)); then
    PYTHON=$PY timeout -k 5 "$limit" "$ROOT/bench/analysis/run.sh" --build "$PACK/bin" --no-build $librosa \
      --tracks "$TRACKS" --seconds "$SECS" --out "$DEMIX_BUILD/bench/analysis" 2>&1 | tee "$DEMIX_BUILD/bench-analysis.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || echo "bench/analysis failed (exit $rc)" | tee -a "$DEMIX_BUILD/tier.txt"
  else
    echo "bench/analysis left out: the time limit was near" | tee -a "$DEMIX_BUILD/tier.txt"
  fi
  save
  limit=$(($(left) - 15)) # the rest, less the final copy
  if ((limit >= 30)); then
    PYTHON=$PY "$ROOT/bench/separate/run.sh" --build "$PACK/bin" --full --seconds "$SECS" --device cuda --record \
      --profile --time-limit "$limit" --out "$DEMIX_BUILD/bench/separate" 2>&1 | tee "$DEMIX_BUILD/bench-separate.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || echo "bench/separate failed (exit $rc)" | tee -a "$DEMIX_BUILD/tier.txt"
  else
    echo "bench/separate left out: the time limit was near" | tee -a "$DEMIX_BUILD/tier.txt"
  fi
fi
printf '%d passed, %d failed\n' "$passed" "$failed" | tee -a "$DEMIX_BUILD/tier.txt"
save
[ $failed = 0 ]
