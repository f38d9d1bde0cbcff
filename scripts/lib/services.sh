# Sourced by scripts that run ltf servers in the background (scripts/demo, scripts/bench):
#   svc_dir=<dir for logs>            set before use
#   port_free <port> <hint>           fail if something listens on 127.0.0.1:<port>
#   svc_start <name> <cmd...>         start in the background, log to $svc_dir/<name>.log
#   svc_wait_ready <name> <url>       wait until <url> answers 2xx (60 s), or show the log
#   svc_stop_all                      SIGTERM every started server, wait for them
#   svc_logs_tail                     last lines of every log (for a failed run)
svc_pids=()
svc_names=()

port_free() { # port hint
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "port $1 is in use ($2)" >&2
    return 1
  fi
}

svc_start() { # name cmd...
  local name="$1"
  shift
  "$@" >"$svc_dir/$name.log" 2>&1 &
  svc_pids+=("$!")
  svc_names+=("$name")
}

svc_pid() { # name
  local i
  for i in "${!svc_names[@]}"; do
    [ "${svc_names[$i]}" = "$1" ] && { echo "${svc_pids[$i]}"; return 0; }
  done
  return 1
}

svc_wait_ready() { # name url
  local pid
  pid="$(svc_pid "$1")"
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$1 exited before it was ready; its log:" >&2
      tail -n 30 "$svc_dir/$1.log" >&2
      return 1
    fi
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "$1 not ready after 60 s at $2; its log:" >&2
  tail -n 30 "$svc_dir/$1.log" >&2
  return 1
}

svc_stop_all() {
  local pid
  for pid in "${svc_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${svc_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  svc_pids=()
  svc_names=()
}

svc_logs_tail() {
  local f
  for f in "$svc_dir"/*.log; do
    [ -s "$f" ] && { echo "--- last lines of $(basename "$f")" >&2; tail -n 20 "$f" >&2; }
  done
  return 0
}
