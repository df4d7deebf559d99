#!/usr/bin/env bash
# bench/analysis/run.sh: seconds per track and x-realtime of demix's analysis
# (every feature group) on the CPU backend and, where a GPU is present, the
# CUDA backend, with librosa computing the same features on the same files
# in the same run. Decoding is timed apart (demix: libsndfile; librosa:
# load = decode + resample); the demix line also shows resampling, host <->
# device transfer, feature computation and loudness.
#
#   bench/analysis/run.sh [--tracks 100] [--seconds 180] [--build DIR]
#                         [--devices "cpu cuda"] [--no-librosa] [--out DIR]
#                         [--results bench/RESULTS.md] [--no-build]
# Builds the C driver (bench_analysis.c, CMake target bench_analysis) in
# BUILD (--no-build: use BUILD/bench_analysis as it is, e.g. binaries carried
# to a GPU host), synthesises the tracks once into OUT (44.1 kHz stereo
# 16-bit WAV), prints one JSON line per implementation and appends a dated
# section with the machine and the command to RESULTS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build TRACKS=100 SECS=180 DEVICES="" LIBROSA=1 OUT=/tmp/demix-bench-analysis NOBUILD=0
RESULTS=$ROOT/bench/RESULTS.md
PY=${PYTHON:-$ROOT/.venv/bin/python}
CMD="bench/analysis/run.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --tracks) TRACKS=$2; shift 2 ;;
    --seconds) SECS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --devices) DEVICES=$2; shift 2 ;;
    --no-librosa) LIBROSA=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --results) RESULTS=$2; shift 2 ;;
    --no-build) NOBUILD=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$NOBUILD" = 1 ] || cmake --build "$BUILD" --target bench_analysis -j2 >/dev/null
DRV=$BUILD/bench_analysis
[ -x "$DRV" ] || { echo "no $DRV (build the bench_analysis target)" >&2; exit 2; }
TDIR=$OUT/tracks_${TRACKS}x${SECS}
if [ ! -f "$TDIR/track_$(printf %03d $((TRACKS - 1))).wav" ]; then
  rm -rf "$TDIR"
  echo "synthesising $TRACKS tracks of $SECS s into $TDIR" >&2
  "$DRV" make "$TDIR" "$TRACKS" "$SECS"
fi
FILES=$(ls "$TDIR"/track_*.wav | head -n "$TRACKS")
if [ -z "$DEVICES" ]; then
  DEVICES=cpu
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then DEVICES="cpu cuda"; fi
fi
LINES=()
NPROC=$(nproc)
for d in $DEVICES; do
  for j in 1 $NPROC; do
    [ "$d" = cuda ] && [ $j != 1 ] && j=4  # batch on the GPU: 4 workers (streams) on one device
    l=$("$DRV" run "$d" -j $j $FILES); echo "$l"; LINES+=("$l")
    [ $NPROC = 1 ] && break
  done
done
if [ $LIBROSA = 1 ]; then
  l=$("$PY" "$ROOT/bench/analysis/librosa_bench.py" $FILES); echo "$l"; LINES+=("$l")
fi
# speed-up of each demix backend over librosa (whole per-track time after decoding for demix vs librosa's features)
SUMMARY=$(printf '%s\n' "${LINES[@]}" | "$PY" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
lib = next((r for r in rows if r["impl"].startswith("librosa")), None)
for r in rows:
    if r["impl"] != "demix": continue
    n = r["tracks"]
    # per track, loudness left out (librosa measures none): the batch wall
    # time share without loudness is wall * (1 - loudness / summed parts)
    parts = r["decode_s"] + r["resample_s"] + r["transfer_s"] + r["features_s"] + r["loudness_s"]
    share = 1.0 - r["loudness_s"] / parts if r["jobs"] > 1 else 1.0
    if r["jobs"] > 1:
        e2e = r["s_per_track"] * share
        feat = (r["features_s"] + r["transfer_s"]) / n / r["jobs"]
    else:
        # one worker: loudness runs on a helper thread beside the resampling and
        # the features, so nothing is subtracted: the wall time of the features, and
        # the wall time of the whole track with the loudness in it
        e2e = r["s_per_track"]
        feat = (r["features_s"] + r["transfer_s"]) / n
    s = "| demix %s, %d worker%s (%s) | %d | %.1f | %.4f | %.4f | %.3f / %.3f / %.3f / %.3f / %.3f | %.0fx |" % (
        r["device"], r["jobs"], "s" if r["jobs"] > 1 else "", r["device_desc"], n, r["audio_s"], r["s_per_track"],
        r["s_per_track_after_decode"], r["decode_s"], r["resample_s"], r["transfer_s"], r["features_s"],
        r["loudness_s"], r["x_realtime"])
    if lib:
        s += " %.1fx | %.1fx |" % (lib["features_s_per_track"] / feat, lib["s_per_track"] / e2e)
    else:
        s += " - | - |"
    print(s)
if lib:
    n = lib["tracks"]
    print("| %s, 1 process (cpu) | %d | %.1f | %.4f | - | %.3f / %.3f / - / %.3f / - | %.0fx | 1x | 1x |" % (
        lib["impl"], n, lib["audio_s"], lib["s_per_track"], lib["decode_s"], lib["resample_s"], lib["features_s"],
        lib["x_realtime"]))
')
echo "$SUMMARY"
{
  echo
  echo "## Analysis: $(date -u +%Y-%m-%d) — $TRACKS tracks x $SECS s"
  echo
  echo "Machine: $(uname -m), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))$( [ "${DEVICES#*cuda}" != "$DEVICES" ] && echo ", GPU $(nvidia-smi -L | head -1)" )"
  echo "Command: \`$CMD\`; load average before the run: $LOAD"
  echo
  echo "| implementation | tracks | audio s | s/track (wall) | s/track after decode | decode / resample / transfer / features / loudness (s, summed) | x-realtime | features vs librosa features | decode+resample+features vs librosa load+features |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  echo "$SUMMARY"
} >> "$RESULTS"
echo "appended to $RESULTS" >&2
