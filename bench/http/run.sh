#!/usr/bin/env bash
# bench/http/run.sh: HTTP throughput and latency through nginx -> demix-fcgi
# -> MariaDB, measured with wrk on loopback:
#   GET /health                (no token; the responder's cached answer)
#   GET /api/tracks            (token auth, rate-limit counter, one page of
#                               20 tracks from MariaDB)
# Starts its own stack under var/bench (HTTP 18081, MariaDB 13308, api_auth
# limit raised so the limiter counts but never refuses), runs wrk, stops the
# stack, prints the figures and appends a dated section to bench/RESULTS.md.
#
# With --stalled N both are measured again while N clients hold stems-archive
# downloads open without reading (bench/http/stall.py; each holds a sender
# process, not a responder).
#
#   bench/http/run.sh [--duration S] [--connections N] [--threads N] [--stalled N] [--no-record] [--keep]
#                     [--no-build] [--fast-db] [--fcgi-keepalive N]   (passed to tools/up)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
duration=10 conns=64 threads=2 record=1 keep=0 stalled=0 upargs=()
while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --stalled) stalled=$2; shift 2 ;;
    --no-record) record=0; shift ;;
    --keep) keep=1; shift ;;
    --no-build) upargs+=(--no-build); shift ;;
    --fast-db) upargs+=(--fast-db); shift ;;
    --fcgi-keepalive) upargs+=(--fcgi-keepalive "$2"); shift 2 ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
VAR=var/bench PORT=${DEMIX_BENCH_PORT:-18081} DBPORT=${DEMIX_BENCH_DB_PORT:-13308}
URL=http://127.0.0.1:$PORT
stop() { ((keep)) || tools/down --var "$VAR" >/dev/null 2>&1 || true; }
trap stop EXIT
tools/up --var "$VAR" --port "$PORT" --db-port "$DBPORT" --quiet "${upargs[@]+"${upargs[@]}"}" \
  --set rate_auth_per_min=1000000000 --set rate_heavy_per_min=1000000000
export DEMIX_CONFIG=$ROOT/$VAR/demix.conf DEMIX_HOME=$ROOT
export DEMIX_BENCH_TOKEN
DEMIX_BENCH_TOKEN=$(build/demix token create --user bench --name bench 2>/dev/null)

# Twenty short tracks so the list endpoint returns a full page.
tmp=$(mktemp -d)
have=$(curl -fsS -H "Authorization: Bearer $DEMIX_BENCH_TOKEN" "$URL/api/tracks?page_size=1" |
  sed -n 's/.*"total_count":[[:space:]]*\([0-9]*\).*/\1/p')
for ((i = ${have:-0}; i < 20; i++)); do
  sox -n -r 44100 -c 2 -b 16 "$tmp/t$i.wav" synth 0.5 sine $((200 + 20 * i))
  curl -fsS -o /dev/null -H "Authorization: Bearer $DEMIX_BENCH_TOKEN" -F "file=@$tmp/t$i.wav" -F "title=bench $i" \
    "$URL/api/tracks"
done
rm -rf "$tmp"

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
# run_wrk NAME PATH [SCRIPT]: warm up, measure, keep the wrk output.
declare -A OUT
run_wrk() {
  local name=$1 path=$2 script=${3:-}
  local args=(-t"$threads" -c"$conns" --latency --timeout 5s)
  [[ -n "$script" ]] && args+=(-s "$script")
  wrk "${args[@]}" -d2s "$URL$path" >/dev/null
  OUT[$name]=$(wrk "${args[@]}" -d"${duration}s" "$URL$path")
  OUT[$name.cmd]="wrk ${args[*]} -d${duration}s $URL$path"
}
run_wrk health /health
run_wrk tracks "/api/tracks?page_size=20" bench/http/auth.lua

STALLED_NOTE=""
if ((stalled > 0)); then
  # a 40-second track separated with hpss: a 14 MB archive, more than nginx
  # and the sockets hold for a client that reads nothing
  tmp=$(mktemp -d)
  sox -n -r 44100 -c 2 -b 16 "$tmp/long.wav" synth 40 pinknoise vol 0.3
  auth="Authorization: Bearer $DEMIX_BENCH_TOKEN"
  tid=$(curl -fsS -H "$auth" -F "file=@$tmp/long.wav" -F "title=bench archive" "$URL/api/tracks" |
    sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | head -n 1)
  rm -rf "$tmp"
  job=$(curl -fsS -H "$auth" -H 'Content-Type: application/json' -d "{\"track_id\":\"$tid\",\"model\":\"hpss\"}" \
    "$URL/api/processing/separate" | sed -n 's/.*"job_id":"\([^"]*\)".*/\1/p')
  for ((i = 0; i < 300; i++)); do
    curl -fsS -H "$auth" "$URL/api/processing/job/$job" | grep -q '"status":"completed"' && break
    sleep 0.2
  done
  .venv/bin/python bench/http/stall.py "$URL" "$DEMIX_BENCH_TOKEN" "/export/stems/$tid" "$stalled" >"$VAR/stall.out" &
  stall_pid=$!
  for ((i = 0; i < 600; i++)); do [[ -s "$VAR/stall.out" ]] && break; sleep 0.1; done
  STALLED_NOTE=$(cat "$VAR/stall.out")
  [[ -n "$STALLED_NOTE" ]] || { echo "bench/http/run.sh: the stalled downloads did not start" >&2; exit 1; }
  run_wrk health_stalled /health
  run_wrk tracks_stalled "/api/tracks?page_size=20" bench/http/auth.lua
  kill "$stall_pid" 2>/dev/null || true
  wait "$stall_pid" 2>/dev/null || true
fi

field() { sed -n "s#^[[:space:]]*$2[[:space:]]\{1,\}\([^[:space:]]*\).*#\1#p" <<<"${OUT[$1]}" | head -n 1; }
errors() { grep -E "Non-2xx|Socket errors" <<<"${OUT[$1]}" | tr -s ' ' | paste -sd ';' - || true; }
row() {
  printf '| `%s` | %s | %s | %s | %s | %s | %s |\n' "$2" "$(field "$1" 'Requests/sec:')" "$(field "$1" '50%')" \
    "$(field "$1" '90%')" "$(field "$1" '99%')" "$(field "$1" 'Latency')" "$(errors "$1")"
}
CPU=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
CORES=$(nproc)
MEM=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')
NGINX=$(nginx -v 2>&1 | sed 's/.*nginx\///')
MARIADB=$(mariadbd --version | sed -n 's/.*Ver \([^ ]*\).*/\1/p')
FCGI_WORKERS=$(sed -n 's/^fcgi_workers[[:space:]]*=[[:space:]]*//p' "$VAR/demix.conf")
KEEPALIVE=$(sed -n 's/^[[:space:]]*keepalive \([0-9]*\);.*/\1/p' "$VAR/nginx/nginx.conf")
FLUSH=$(sed -n 's/^innodb_flush_log_at_trx_commit = //p' "$VAR/mariadb/my.cnf")
section=$(cat <<MD

### HTTP run $(date -u +%Y-%m-%dT%H:%MZ)

- machine: $CPU, $CORES cores, $MEM RAM; load average before the run: $LOAD; nginx $NGINX, MariaDB $MARIADB; $FCGI_WORKERS demix-fcgi workers, nginx workers auto ($CORES), FastCGI keepalive ${KEEPALIVE:-off}, innodb_flush_log_at_trx_commit $FLUSH
- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with local changes)')
- command: \`bench/http/run.sh --duration $duration --connections $conns --threads $threads$( ((stalled)) && echo " --stalled $stalled")${upargs[*]+ ${upargs[*]}}\` (wrk on the same machine, loopback)
  - ${OUT[health.cmd]}
  - ${OUT[tracks.cmd]} (Authorization: Bearer, 20 tracks per page)

| request | requests/s | p50 | p90 | p99 | mean latency | errors |
| --- | --- | --- | --- | --- | --- | --- |
$(row health "GET /health")
$(row tracks "GET /api/tracks?page_size=20")
$( ((stalled)) && row health_stalled "GET /health, $stalled stalled archive downloads")
$( ((stalled)) && row tracks_stalled "GET /api/tracks?page_size=20, $stalled stalled archive downloads")
$( ((stalled)) && printf '\nThe last two rows: %s (bench/http/stall.py), held open while wrk ran.\n' "$STALLED_NOTE")
MD
)
printf '%s\n' "${OUT[health]}" "" "${OUT[tracks]}"
printf '%s\n' "$section"
if ((record)); then
  [[ -f bench/RESULTS.md ]] || printf '# demix benchmark results\n\nEvery figure with its machine, date and command.\n' >bench/RESULTS.md
  printf '%s\n' "$section" >>bench/RESULTS.md
  echo "appended to bench/RESULTS.md"
fi
