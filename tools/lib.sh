# shellcheck shell=bash disable=SC2034
# tools/lib.sh: shared by tools/up, tools/down and tools/test (sourced, not run).
#
# A stack lives in one var directory (default <root>/var; --var DIR or the
# DEMIX_VAR_DIR environment variable choose another, e.g. var/test). Inside:
#   demix.conf        configuration every program reads (DEMIX_CONFIG)
#   run/              pid files, unix sockets, admin.token
#   log/              one log per program
#   mariadb/          private MariaDB (my.cnf, data/)
#   nginx/            generated nginx.conf and nginx's temp folders
#   tmp/body/         upload bodies (same filesystem as storage/)
#   storage/          audio, stems, exports

DX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

dx_say() { printf '%s: %s\n' "${DX_PROG:-demix}" "$*"; }
dx_die() { printf '%s: error: %s\n' "${DX_PROG:-demix}" "$*" >&2; exit 1; }

# dx_paths VAR_DIR: set the path variables for a stack rooted at VAR_DIR.
dx_paths() {
  local v=$1
  [[ "$v" = /* ]] || v="$DX_ROOT/$v"
  DX_VAR=$v
  DX_RUN=$v/run
  DX_LOG=$v/log
  DX_CONF=$v/demix.conf
  DX_DBDIR=$v/mariadb
  DX_NGINX_DIR=$v/nginx
  DX_STORAGE=$v/storage
  DX_BODY_TMP=$v/tmp/body
  export DEMIX_HOME=$DX_ROOT DEMIX_CONFIG=$DX_CONF DEMIX_VAR_DIR=$DX_VAR
}

# dx_conf_get KEY [DEFAULT]: the value of KEY in demix.conf, else DEFAULT.
dx_conf_get() {
  local val=""
  if [[ -f "$DX_CONF" ]]; then
    val=$(sed -n -e 's/#.*//' -e "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$DX_CONF" | tail -n 1 |
      sed -e 's/[[:space:]]*$//')
  fi
  printf '%s' "${val:-${2:-}}"
}

# dx_conf_set KEY VALUE: replace KEY's line in demix.conf or append one.
dx_conf_set() {
  local k=$1 v=$2
  [[ -f "$DX_CONF" && "$(dx_conf_get "$k")" == "$v" ]] && return 0
  if grep -q "^[[:space:]]*${k}[[:space:]]*=" "$DX_CONF" 2>/dev/null; then
    local esc=${v//\\/\\\\}
    esc=${esc//|/\\|}
    esc=${esc//&/\\&}
    sed -i "s|^[[:space:]]*${k}[[:space:]]*=.*|$k = $esc|" "$DX_CONF"
  else
    printf '%s = %s\n' "$k" "$v" >>"$DX_CONF"
  fi
}

# dx_pid_of NAME PIDFILE: print the pid in PIDFILE if that process is alive
# and its command name is NAME (so a reused pid is never taken for ours).
dx_pid_of() {
  local name=$1 file=$2 pid comm
  [[ -s "$file" ]] || return 1
  pid=$(tr -dc 0-9 <"$file")
  [[ -n "$pid" ]] || return 1
  comm=$(ps -o comm= -p "$pid" 2>/dev/null) || return 1
  [[ "$comm" == "$name" || "$comm" == "${name:0:15}" ]] || return 1
  printf '%s' "$pid"
}

# dx_wait_gone PID SECONDS: wait until PID has exited; 1 on timeout.
dx_wait_gone() {
  local pid=$1 n=$(($2 * 10))
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie child of this shell counts as gone.
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]] && return 0
    ((n-- > 0)) || return 1
    sleep 0.1
  done
  return 0
}

# dx_stop NAME PIDFILE [SECONDS]: SIGTERM the process, wait, SIGKILL after
# SECONDS (default 20). Removes the pid file. Quiet when not running.
dx_stop() {
  local name=$1 file=$2 secs=${3:-20} pid
  if pid=$(dx_pid_of "$name" "$file"); then
    kill -TERM "$pid" 2>/dev/null || true
    if dx_wait_gone "$pid" "$secs"; then
      dx_say "stopped $name (pid $pid)"
    else
      dx_say "$name (pid $pid) did not stop in ${secs}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      dx_wait_gone "$pid" 5 || dx_say "$name (pid $pid) is still there"
    fi
  fi
  rm -f "$file"
}

# dx_wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.1 s.
dx_wait_for() {
  local n=$(($1 * 10)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((n-- > 0)) || { dx_say "timed out waiting for $what"; return 1; }
    sleep 0.1
  done
}

# dx_sql_root SQL...: run SQL as the MariaDB root user on the private socket.
dx_sql_root() { mariadb --no-defaults --protocol=socket --socket="${DB_SOCK:-$DX_RUN/mariadb.sock}" -uroot -N -B -e "$*"; }
