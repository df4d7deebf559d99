#!/bin/sh
# tests/fuzz/run.sh [SECONDS]: build the libFuzzer targets with clang in
# build-fuzz (address and undefined sanitizers everywhere) and run each one
# for SECONDS (default 10) from its seed corpus in tests/fuzz/corpus/<target>.
# New inputs go to build-fuzz/fuzz/corpus/<target>; a crash fails the run and
# leaves its input in build-fuzz/fuzz/crashes/<target>. Ends with
# "N passed, N failed".
set -u
SECONDS_EACH=${1:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build-fuzz
JOBS=${JOBS:-2}
cmake -S "$ROOT" -B "$BUILD" -DDEMIX_FUZZ=ON -DDEMIX_CUDA=OFF -DCMAKE_C_COMPILER=clang -DBUILD_TESTING=ON \
  -DDEMIX_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.cmake.log" 2>&1 || {
  cat "$BUILD.cmake.log"; echo "0 passed, 1 failed"; exit 1; }
targets=$(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "$JOBS" --target $targets || { echo "0 passed, 1 failed"; exit 1; }
export LSAN_OPTIONS="suppressions=$ROOT/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
passed=0
failed=0
for t in $targets; do
  seeds=$ROOT/tests/fuzz/corpus/$t
  work=$BUILD/fuzz/corpus/$t
  crashes=$BUILD/fuzz/crashes/$t
  mkdir -p "$work" "$crashes"
  [ -d "$seeds" ] || seeds=
  echo "== $t (${SECONDS_EACH}s)"
  if "$BUILD/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
      -artifact_prefix="$crashes/" "$work" $seeds >"$BUILD/fuzz/$t.log" 2>&1; then
    echo "ok   $t: $(grep -a -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$BUILD/fuzz/$t.log" | tail -1 | cut -c1-100)"
    passed=$((passed + 1))
  else
    echo "FAIL $t: see $BUILD/fuzz/$t.log and $crashes"
    grep -a -E 'ERROR|SUMMARY|==[0-9]+==' "$BUILD/fuzz/$t.log" | head -5
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
