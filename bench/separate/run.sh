#!/usr/bin/env bash
# bench/separate/run.sh: speed of `demix separate` on one model and one
# synthetic stereo track, next to the official PyTorch Demucs (official.py:
# the official apply_model) on the same machine in the same run, and a check
# that the two compute the same stems.
#
#   CPU, full-size model, side by side (2 torch threads, as demix's 2 cores):
#     bench/separate/run.sh --full --seconds 45 --device cpu --threads 2 --record
#   GPU host (torch there; the official code travels as a folder, DEMUCS_PY):
#     bench/separate/run.sh --full --seconds 180 --device cuda
#   no torch at all: bench/separate/run.sh --seconds 30 --device cpu
#     (the kit's htdemucs_tiny, demix only)
#
# Steps: (1) with shifts 0, both implementations separate the track and the
# stems are compared (relative L2 over all stems, and per source; the two
# agree within 2e-3 when they compute the same function); shifts draw random
# offsets, so only shifts 0 can be compared. (2) Timing runs with --shifts
# (default 1) and --overlap (0.25): wall seconds of the whole process, the
# separation alone, x-realtime, peak RSS (/usr/bin/time -f %M, or Python's
# getrusage where there is no GNU time) and, on a GPU,
# peak GPU memory. One JSON line per run; --record appends a dated section
# (machine, date, commands, table) to bench/RESULTS.md.
#
# Options: --build DIR (default build), --model NAME (default htdemucs_tiny,
# or htdemucs_full_random with --full), --seconds S (180), --device
# cpu|cuda|auto, --shifts N (1), --overlap F (0.25), --threads N (torch
# threads of the official run; default 2 on the CPU), --jobs N (demix -j, 1),
# --no-official, --no-check, --record, --out DIR (/tmp/demix-bench-separate),
# --profile (one more demix run, exact, with DEMIX_PROFILE=1: the time of
# each backend op, into the recorded section), --time-limit S (the whole
# script's seconds: each run is stopped at the limit, a run that would start
# after it is left out, and what was measured is still recorded; for a
# device call of fixed length).
# A run that fails or is stopped shows as a line with its error (and in the
# recorded section); the others go on.
# On a GPU the timing runs demix exact float32, with TF32 convolutions
# (DEMIX_CUDA_TF32=conv, as torch's defaults) and with TF32 everywhere
# (DEMIX_CUDA_TF32=1), and the official with no TF32 (exact) and with
# torch's defaults (TF32 convolutions), in the order demix exact, official
# exact, official default, demix conv, demix TF32, demix exact -j 2 (two
# forwards at once; the exact pair first, so a time limit cuts the
# variants). The agreement check runs both exact.
# --full takes htdemucs_full_random from $DEMIX_REFERENCE/demucs or
# .ref/reference/demucs (tools/make-reference), else makes it with the kit's
# make_kit.py FULL=1 into OUT/kit (torch + the official demucs needed).
# Python: $PYTHON, else .venv-ref/bin/python, else .venv/bin/python, else
# python3 (numpy for the track and the check, WAV files through wavio.py
# beside this script; torch for the official run).
# DEMUCS_PY defaults to .ref/demucs_py when that folder exists.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build SECONDS_=180 DEVICE=auto FULL=0 SHIFTS=1 OVERLAP=0.25 MODEL="" OUT=/tmp/demix-bench-separate
THREADS="" JOBS=1 OFFICIAL=1 CHECK=1 RECORD=0 PROFILE=0 DEADLINE=""
CMDLINE="bench/separate/run.sh $*"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg 2> /dev/null || true)
KIT=${DEMIX_REFERENCE:-$ROOT/../shared/reference}/demucs # the reference kit (tiny models, make_kit.py)
PY=${PYTHON:-}
for p in "$ROOT/.venv-ref/bin/python" "$ROOT/.venv/bin/python" python3; do
  [ -n "$PY" ] && break
  if [ -x "$p" ] || command -v "$p" > /dev/null; then PY=$p; fi
done
if [ -z "${DEMUCS_PY:-}" ] && [ -d "$ROOT/.ref/demucs_py/demucs" ]; then export DEMUCS_PY=$ROOT/.ref/demucs_py; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --full) FULL=1; shift ;;
    --model) MODEL=$2; shift 2 ;;
    --shifts) SHIFTS=$2; shift 2 ;;
    --overlap) OVERLAP=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --no-official) OFFICIAL=0; shift ;;
    --no-check) CHECK=0; shift ;;
    --record) RECORD=1; shift ;;
    --profile) PROFILE=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --time-limit) DEADLINE=$(($(date +%s) + $2)); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$BUILD/demix" ] || { echo "no $BUILD/demix (--build DIR)" >&2; exit 2; }
mkdir -p "$OUT/repo"
export PYTHONPATH=$ROOT/bench/separate${PYTHONPATH:+:$PYTHONPATH} # wavio.py, official_env.py
if [ "$FULL" = 1 ]; then
  MODEL=${MODEL:-htdemucs_full_random}
  SRC=""
  for d in "${DEMIX_REFERENCE:-/nonexistent}/demucs" "$ROOT/.ref/reference/demucs" "$OUT/kit"; do
    if [ -f "$d/$MODEL.th" ]; then SRC=$d/$MODEL.th; break; fi
  done
  if [ -z "$SRC" ]; then
    mkdir -p "$OUT/kit"
    echo "making $MODEL with make_kit.py FULL=1 (log: $OUT/make_kit.log)" >&2
    # through official_env, as official.py: DEMUCS_PY, and a Python without torchaudio
    if ! (cd "$OUT/kit" && FULL=1 "$PY" -c '
import sys, runpy, official_env
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$KIT/make_kit.py" "$OUT/kit" > "$OUT/make_kit.log" 2>&1); then
      tail -n 5 "$OUT/make_kit.log" >&2
      echo "bench/separate: make_kit.py could not make $MODEL (needs torch and the official demucs)" >&2
      exit 1
    fi
    SRC=$OUT/kit/$MODEL.th
  fi
  ln -sfn "$SRC" "$OUT/repo/$MODEL.th"
else
  MODEL=${MODEL:-htdemucs_tiny}
  [ "$MODEL" = hpss ] || ln -sfn "$KIT/$MODEL.th" "$OUT/repo/$MODEL.th"
fi
if [ "$DEVICE" = auto ]; then
  DEVICE=cpu
  command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 && DEVICE=cuda
fi
[ -z "$THREADS" ] && [ "$DEVICE" = cpu ] && THREADS=2
HAVE_OFFICIAL=0
if [ "$OFFICIAL" = 1 ] && [ "$MODEL" != hpss ]; then
  if why=$("$PY" -c 'import official_env, torch, demucs.apply' 2>&1); then HAVE_OFFICIAL=1
  else echo "bench/separate: the official demucs does not import with $PY (tools/official-demucs sets it up): ${why##*$'\n'}" >&2
  fi
fi
# a synthetic stereo track: tones, noise bursts and clicks
"$PY" - "$OUT/track.wav" "$SECONDS_" <<'PYEOF'
import sys, numpy as np, wavio
path, sec, sr = sys.argv[1], float(sys.argv[2]), 44100
t = np.arange(int(sec * sr)) / sr
rng = np.random.default_rng(1)
x = 0.2 * np.sin(2 * np.pi * 110 * t) + 0.1 * np.sin(2 * np.pi * 440 * t * (1 + 0.01 * np.sin(t)))
x += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.7)
x[:: sr // 2] += 0.5
wavio.write_float(path, np.stack([x, 0.9 * x], 1).astype(np.float32), sr)
PYEOF

RUNS=$OUT/runs.jsonl CMDS=$OUT/commands.txt
: > "$RUNS"
: > "$CMDS"

# maxrss FILE CMD...: run CMD (stdout passes through), its peak RSS in KiB into FILE
maxrss() {
  local out=$1
  shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o "$out" "$@"
  else
    "$PY" -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:]).returncode
open(sys.argv[1], "w").write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)' "$out" "$@"
  fi
}

# limit: LIMIT=(the prefix that stops a command at the time limit: exit
# 124), empty without one; returns 125 when less than 10 s are left
limit() {
  LIMIT=()
  [ -z "$DEADLINE" ] && return 0
  local left=$((DEADLINE - $(date +%s)))
  ((left >= 10)) || return 125
  LIMIT=(timeout -k 5 "$left")
}

# failed_run IMPL PRECISION STATUS LOG: the JSON line of a run that did not finish
failed_run() {
  local why="failed (exit $3)"
  { [ "$3" = 124 ] || [ "$3" = 137 ]; } && why="stopped at the time limit"
  [ "$3" = 125 ] && why="left out: the time limit was near"
  [ -n "$4" ] && [ -s "$4" ] && tail -5 "$4" >&2
  printf '{"impl": "%s", "precision": "%s", "error": "%s"}\n' "$1" "$2" "$why" | tee -a "$RUNS"
}

# run_demix SHIFTS STEMS_DIR [PRECISION [JOBS]]: one timed `demix separate`
# (exact; conv: DEMIX_CUDA_TF32=conv; tf32: DEMIX_CUDA_TF32=1; -j JOBS,
# default --jobs), one JSON line
run_demix() {
  local shifts=$1 stems=$2 prec=${3:-exact} jobs=${4:-$JOBS} gpu_log=$OUT/gpu-mem.log poll="" base=0 peak=null
  local tf=0
  [ "$prec" = tf32 ] && tf=1
  [ "$prec" = conv ] && tf=conv
  local cmd=(env DEMIX_CUDA_TF32=$tf "$BUILD/demix" separate --repo "$OUT/repo" -n "$MODEL" --shifts "$shifts" --overlap "$OVERLAP"
             -j "$jobs" -d "$DEVICE" --float32 --overwrite -o "$stems" "$OUT/track.wav")
  limit || { failed_run demix "$prec" 125 ""; return 1; }
  echo "${cmd[*]}" >> "$CMDS"
  : > "$gpu_log"
  if [ "$DEVICE" != cpu ] && command -v nvidia-smi > /dev/null; then
    base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
    (while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >> "$gpu_log" 2>/dev/null; sleep 0.1; done) &
    poll=$!
  fi
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  maxrss "$OUT/rss.txt" "${LIMIT[@]}" "${cmd[@]}" 2> "$OUT/demix.log" || rc=$?
  t1=$(date +%s.%N)
  if [ -n "$poll" ]; then kill "$poll" 2> /dev/null || true; wait "$poll" 2> /dev/null || true; fi
  if [ "$rc" != 0 ]; then failed_run demix "$prec" "$rc" "$OUT/demix.log"; return 1; fi
  if [ -s "$gpu_log" ]; then peak=$(($(sort -n "$gpu_log" | tail -1) - base)); fi
  local sep_s
  sep_s=$(sed -n 's/.* stems in .* (\([0-9.]*\) s)$/\1/p' "$OUT/demix.log" | tail -1)
  "$PY" - "$t0" "$t1" "$SECONDS_" "$(tail -1 "$OUT/rss.txt")" "$peak" "$DEVICE" "$MODEL" "$shifts" "${sep_s:-null}" "$jobs" "$prec" <<'PYEOF' | tee -a "$RUNS"
import json, sys
t0, t1, sec, rss, gpu, dev, model, shifts, sep, jobs, prec = sys.argv[1:]
dt, sec = float(t1) - float(t0), float(sec)
print(json.dumps({"impl": "demix", "model": model, "device": dev, "shifts": int(shifts), "jobs": int(jobs),
                  "track_s": sec, "wall_s": round(dt, 3), "x_realtime": round(sec / dt, 3),
                  "separate_s": None if sep == "null" else float(sep),
                  "peak_rss_mib": round(int(rss) / 1024, 1),
                  "peak_gpu_mib_over_idle": None if gpu == "null" else int(gpu), "precision": prec}))
PYEOF
}

# run_official SHIFTS [SAVE] [PRECISION]: one timed official.py (exact, or
# default: torch's own TF32 settings), one JSON line
run_official() {
  local shifts=$1 save=${2:-} prec=${3:-exact}
  local cmd=("$PY" "$ROOT/bench/separate/official.py" "$OUT/repo/$MODEL.th" "$OUT/track.wav" "$DEVICE" "$shifts"
             "$OVERLAP" --precision "$prec")
  [ -n "$THREADS" ] && cmd+=(--threads "$THREADS")
  [ -n "$save" ] && cmd+=(--save "$save")
  limit || { failed_run official "$prec" 125 ""; return 1; }
  echo "DEMUCS_PY=${DEMUCS_PY:-} ${cmd[*]}" >> "$CMDS"
  local t0 t1 line rc=0
  t0=$(date +%s.%N)
  line=$(maxrss "$OUT/rss-official.txt" "${LIMIT[@]}" "${cmd[@]}" 2> "$OUT/official.log") || rc=$?
  if [ "$rc" != 0 ]; then failed_run official "$prec" "$rc" "$OUT/official.log"; return 1; fi
  t1=$(date +%s.%N)
  "$PY" - "$t0" "$t1" "$SECONDS_" "$(tail -1 "$OUT/rss-official.txt")" "$line" "$MODEL" <<'PYEOF' | tee -a "$RUNS"
import json, sys
t0, t1, sec, rss, line, model = sys.argv[1:]
r = json.loads(line)
dt, sec = float(t1) - float(t0), float(sec)
print(json.dumps({"impl": "official", "model": model, "device": r["device"], "shifts": r["shifts"],
                  "threads": r["threads"], "track_s": sec, "wall_s": round(dt, 3), "x_realtime": round(sec / dt, 3),
                  "separate_s": r["seconds"], "peak_rss_mib": round(int(rss) / 1024, 1),
                  "peak_gpu_mib": r["peak_gpu_mib"], "torch": r["torch"], "precision": r.get("precision"),
                  "tf32": r.get("tf32")}))
PYEOF
}

# (1) agreement, shifts 0
AGREE=""
if [ "$CHECK" = 1 ] && [ "$HAVE_OFFICIAL" = 1 ] &&
   run_demix 0 "$OUT/stems0" > /dev/null && run_official 0 "$OUT/official0.f32" > /dev/null; then
  AGREE=$("$PY" - "$OUT/official0.f32" "$OUT/stems0/$MODEL/track" <<'PYEOF'
import json, sys, numpy as np, wavio
ref_path, stem_dir = sys.argv[1:]
meta = json.load(open(ref_path + ".json"))
ref = np.fromfile(ref_path, dtype="<f4").reshape(meta["shape"]).astype(np.float64)
ours = np.stack([wavio.read(f"{stem_dir}/{s}.wav")[0].T for s in meta["sources"]])
ours = ours.astype(np.float64)
rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
per = {s: round(rel(ours[k], ref[k]), 9) for k, s in enumerate(meta["sources"])}
e = rel(ours, ref)
print(json.dumps({"check": "demix vs official, shifts 0", "rel_l2": e, "per_source": per, "ok": e < 2e-3}))
PYEOF
)
  echo "$AGREE" | tee -a "$RUNS"
elif [ "$CHECK" = 1 ] && [ "$HAVE_OFFICIAL" = 1 ]; then
  echo '{"check": "not made: a run above did not finish"}' | tee -a "$RUNS"
elif [ "$CHECK" = 1 ]; then
  echo '{"check": "skipped: torch/official demucs not importable (or --no-official)"}'
fi

# (2) timing (on a GPU: both precisions of each side), the exact pair first
run_demix "$SHIFTS" "$OUT/stems" || true
if [ "$HAVE_OFFICIAL" = 1 ]; then
  run_official "$SHIFTS" || true
  if [ "$DEVICE" = cuda ]; then run_official "$SHIFTS" "" default || true; fi
elif [ "$MODEL" = hpss ]; then
  echo '{"impl": "official", "skipped": "hpss is not a Demucs model"}'
else
  echo '{"impl": "official", "skipped": "torch/demucs not importable (or --no-official)"}'
fi
if [ "$DEVICE" = cuda ]; then
  run_demix "$SHIFTS" "$OUT/stems-conv" conv || true
  run_demix "$SHIFTS" "$OUT/stems-tf32" tf32 || true
  # two forwards at once, each on its own stream: how much of the GPU one leaves idle
  if [ "$JOBS" = 1 ]; then run_demix "$SHIFTS" "$OUT/stems-j2" exact 2 || true; fi
fi

# (3) where demix's time goes: every backend op timed (a slower run of its own)
: > "$OUT/profile.txt"
if [ "$PROFILE" = 1 ] && [ "$MODEL" != hpss ]; then
  pcmd=(env DEMIX_PROFILE=1 DEMIX_CUDA_TF32=0 "$BUILD/demix" separate --repo "$OUT/repo" -n "$MODEL" --shifts "$SHIFTS"
        --overlap "$OVERLAP" -j "$JOBS" -d "$DEVICE" --float32 --overwrite -o "$OUT/stems-profile" "$OUT/track.wav")
  prc=0
  if limit; then
    echo "${pcmd[*]}" >> "$CMDS"
    "${LIMIT[@]}" "${pcmd[@]}" 2> "$OUT/profile.log" || prc=$?
  else prc=125
  fi
  if [ "$prc" = 0 ]; then
    sed -n '/^profile (DEMIX_PROFILE)/,$p' "$OUT/profile.log" | tee "$OUT/profile.txt" >&2
  else
    failed_run "demix (DEMIX_PROFILE=1)" exact "$prc" "$OUT/profile.log" > /dev/null
  fi
fi

if [ "$RECORD" = 1 ]; then
  "$PY" - "$ROOT/bench/RESULTS.md" "$RUNS" "$CMDS" "$CMDLINE" "$BUILD" "$LOAD0" "$OUT/profile.txt" "$MODEL" "$DEVICE" <<'PYEOF'
import datetime, json, os, platform, subprocess, sys
results, runs, cmds, cmdline, build, load, profile, model, device = sys.argv[1:]
rows = [json.loads(l) for l in open(runs) if l.strip()]
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
cpu = sh("lscpu | sed -n 's/^Model name: *//p' | head -1") or platform.processor()
cores = os.cpu_count()
gpu = sh("nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1")
mem = sh("free -g | awk '/^Mem:/{print $2}'")
commit = sh(f"git -C '{os.path.dirname(results)}' rev-parse --short HEAD")
dirty = sh(f"git -C '{os.path.dirname(results)}' status --porcelain --untracked-files=no")
load_after = sh("cut -d' ' -f1-3 /proc/loadavg")
btype = sh(f"sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' '{build}/CMakeCache.txt'")
now = datetime.datetime.now(datetime.timezone.utc)
timed = [r for r in rows if "impl" in r and "wall_s" in r]
out = [f"\n## Stem separation run {now:%Y-%m-%dT%H:%MZ} ({model}, {device})\n"]
out.append(f"- machine: {cpu}, {cores} cores, {mem} GiB RAM" + (f", GPU {gpu}" if gpu else "") +
           f"; load average before the run: {load}, after: {load_after}")
out.append(f"- date: {now:%Y-%m-%dT%H:%M:%SZ}; commit {commit}" + (" (with local changes)" if dirty else "") +
           f"; demix build type {btype or '?'}")
out.append(f"- command: `{cmdline}`, which ran:")
for c in open(cmds):
    out.append(f"  - `{c.strip()}`")
for r in rows:
    if "check" in r and "rel_l2" in r:
        out.append(f"- agreement (shifts 0, same track): relative L2 demix vs official {r['rel_l2']:.3g} over all stems "
                   f"({', '.join(f'{k} {v:.3g}' for k, v in r['per_source'].items())}); "
                   f"{'within' if r['ok'] else 'NOT within'} 2e-3")
for r in rows:
    if "error" in r:
        out.append(f"- not measured: {r['impl']} ({r.get('precision') or 'exact'}): {r['error']}")
    elif "check" in r and "rel_l2" not in r:
        out.append(f"- agreement check {r['check']}")
out.append("")
out.append("| implementation | precision | shifts | track | wall (process) | separation alone | x-realtime (process) | peak RSS | peak GPU |")
out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in timed:
    if r["impl"] == "demix":
        name = f"demix {r['device']}" + (f" -j {r['jobs']}" if r.get("jobs", 1) != 1 else "")
        gpu_m = r.get("peak_gpu_mib_over_idle")
    else:
        name = f"official (torch {r['torch']}, {r['device']}, {r['threads']} threads)"
        gpu_m = r.get("peak_gpu_mib")
    sep = f"{r['separate_s']:.1f} s" if r.get("separate_s") is not None else "-"
    prec = r.get("precision") or "exact"
    if r["impl"] == "demix" and prec == "tf32":
        prec = "TF32 in convolutions and products (DEMIX_CUDA_TF32=1)"
    elif r["impl"] == "demix" and prec == "conv":
        prec = "TF32 in convolutions (DEMIX_CUDA_TF32=conv)"
    elif r["impl"] != "demix" and r.get("tf32") and r["device"] == "cuda":
        on = [k for k, v in r["tf32"].items() if v]
        prec = f"{prec}: TF32 in {', '.join(on)}" if on else f"{prec}: no TF32"
    out.append(f"| {name} | {prec} | {r['shifts']} | {r['track_s']:.0f} s | {r['wall_s']:.1f} s | {sep} | "
               f"{r['x_realtime']:.2f} | {r['peak_rss_mib']:.0f} MiB | {'-' if gpu_m is None else f'{gpu_m:.0f} MiB'} |")
prof = open(profile).read().strip() if os.path.isfile(profile) else ""
if prof:
    out += ["", "Where demix's time goes (the DEMIX_PROFILE=1 run above; each op between two syncs):", "",
            "```", prof, "```"]
with open(results, "a") as f:
    f.write("\n".join(out) + "\n")
print(f"appended to {results}")
PYEOF
fi
