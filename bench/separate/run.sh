#!/usr/bin/env bash
# bench/separate/run.sh: x-realtime (and peak GPU memory) of `demix separate`
# on one model and one synthetic track, next to the official PyTorch Demucs on
# the same machine in the same run when torch + demucs are importable.
#
#   GPU host:  bench/separate/run.sh --full --seconds 180 --device cuda
#              (makes htdemucs_full_random with the kit's make_kit.py FULL=1,
#              needs torch + the official demucs; DEMUCS_PY may point at it)
#   here:      bench/separate/run.sh --seconds 30 --device cpu
#              (the kit's htdemucs_tiny; no torch needed)
# Options: --build DIR (default build), --model NAME, --shifts N (1),
# --overlap F (0.25), --out DIR (default /tmp/demix-bench-separate).
# Prints one JSON line per implementation; add the figures to bench/RESULTS.md
# with the date, machine and this command.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build SECONDS_=180 DEVICE=auto FULL=0 SHIFTS=1 OVERLAP=0.25 MODEL="" OUT=/tmp/demix-bench-separate
KIT=${DEMIX_REFERENCE:-$ROOT/../shared/reference}/demucs
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --full) FULL=1; shift ;;
    --model) MODEL=$2; shift 2 ;;
    --shifts) SHIFTS=$2; shift 2 ;;
    --overlap) OVERLAP=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT/repo"
if [ "$FULL" = 1 ]; then
  MODEL=${MODEL:-htdemucs_full_random}
  if [ ! -f "$OUT/kit/htdemucs_full_random.th" ]; then
    mkdir -p "$OUT/kit"
    (cd "$OUT/kit" && FULL=1 "$PY" "$KIT/make_kit.py" "$OUT/kit" > "$OUT/make_kit.log" 2>&1)
  fi
  ln -sfn "$OUT/kit/$MODEL.th" "$OUT/repo/$MODEL.th"
else
  MODEL=${MODEL:-htdemucs_tiny}
  [ "$MODEL" = hpss ] || ln -sfn "$KIT/$MODEL.th" "$OUT/repo/$MODEL.th"
fi

# a synthetic stereo track: tones, noise bursts and clicks
"$PY" - "$OUT/track.wav" "$SECONDS_" <<'PYEOF'
import sys, numpy as np, soundfile as sf
path, sec, sr = sys.argv[1], float(sys.argv[2]), 44100
t = np.arange(int(sec * sr)) / sr
rng = np.random.default_rng(1)
x = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(t)))
x += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.7)
x[:: sr // 2] += 0.5
sf.write(path, np.stack([x, 0.9 * x], 1).astype(np.float32), sr, subtype="FLOAT")
PYEOF

# demix: wall time, peak RSS, and peak GPU memory by polling nvidia-smi
GPU_LOG=$OUT/gpu-mem.log
: > "$GPU_LOG"
POLL=""
if [ "$DEVICE" != cpu ] && command -v nvidia-smi > /dev/null; then
  (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >> "$GPU_LOG" 2>/dev/null; sleep 0.1; done) &
  POLL=$!
  BASE_MIB=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
fi
T0=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$OUT/rss.txt" "$BUILD/demix" separate --repo "$OUT/repo" -n "$MODEL" --shifts "$SHIFTS" \
  --overlap "$OVERLAP" -d "$DEVICE" --float32 --overwrite -o "$OUT/stems" "$OUT/track.wav" 2> "$OUT/demix.log"
T1=$(date +%s.%N)
[ -n "$POLL" ] && kill "$POLL" 2>/dev/null || true
PEAK_GPU=null
if [ -s "$GPU_LOG" ]; then PEAK_GPU=$(sort -n "$GPU_LOG" | tail -1); PEAK_GPU=$((PEAK_GPU - ${BASE_MIB:-0})); fi
"$PY" - "$T0" "$T1" "$SECONDS_" "$(cat "$OUT/rss.txt")" "$PEAK_GPU" "$DEVICE" "$MODEL" <<'PYEOF'
import json, sys
t0, t1, sec, rss, gpu, dev, model = sys.argv[1:]
dt = float(t1) - float(t0)
print(json.dumps({"impl": "demix", "model": model, "device": dev, "track_s": float(sec), "seconds": round(dt, 3),
                  "x_realtime": round(float(sec) / dt, 2), "peak_rss_mib": round(int(rss) / 1024, 1),
                  "peak_gpu_mib_over_idle": None if gpu == "null" else int(gpu)}))
PYEOF

# the official implementation on the same machine, when it is importable
if [ "$MODEL" = hpss ]; then
  echo '{"impl": "official", "skipped": "hpss is not a Demucs model"}'
elif "$PY" -c 'import torch, demucs' 2> /dev/null || [ -n "${DEMUCS_PY:-}" ]; then
  ODEV=$DEVICE
  [ "$ODEV" = auto ] && ODEV=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
  "$PY" "$ROOT/bench/separate/official.py" "$OUT/repo/$MODEL.th" "$OUT/track.wav" "$ODEV" "$SHIFTS" "$OVERLAP" ||
    echo '{"impl": "official", "error": "failed; see above"}'
else
  echo '{"impl": "official", "skipped": "torch/demucs not importable"}'
fi
