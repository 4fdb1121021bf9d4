# Shared by the perf scripts (perf-compare, perf-memory, perf-store,
# perf-cluster): checking that the binaries they run are built, stopping the
# servers they start, waiting for a server's readiness line and reading the
# CPU time processes used. Source it.

# stop_process PID: SIGTERM, then SIGKILL after 10s; reaps it. No-op when
# PID is empty or already gone.
stop_process() {
  local pid="$1"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# wait_for_line FILE PATTERN PID: waits (at most 30s, while PID lives) for a
# line matching the extended regex PATTERN in FILE, written by PID; prints the
# first capture group. On failure prints FILE to stderr and returns 1.
wait_for_line() {
  local file="$1" pattern="$2" pid="$3" match
  for _ in $(seq 300); do
    match="$(sed -nE "s/.*${pattern}.*/\\1/p" "$file" | head -n1)"
    if [[ -n "$match" ]]; then echo "$match"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "no readiness line from pid $pid; its output:" >&2
  cat "$file" >&2
  return 1
}

# require_built BUILD_DIR PATH...: each PATH (relative to BUILD_DIR) must be
# an executable; otherwise exits 2 with the cmake command that builds them all.
require_built() {
  local dir="$1" path targets=""
  shift
  for path in "$@"; do targets+=" $(basename "$path")"; done
  for path in "$@"; do
    if [[ ! -x "$dir/$path" ]]; then
      echo "$(basename "$0"): $dir/$path not built; run: cmake --build $dir --target$targets" >&2
      exit 2
    fi
  done
}

# cpu_ticks PID...: their CPU time (user + system) so far, in clock ticks.
cpu_ticks() {
  local pid total=0 stat
  local -a f
  for pid in "$@"; do
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    stat="${stat##*) }"  # past the command name, which may hold spaces
    read -r -a f <<<"$stat"
    total=$((total + f[11] + f[12]))  # utime, stime (fields 14 and 15)
  done
  echo "$total"
}

# to_seconds DURATION: 300ms, 1s, 1.5s -> seconds for sleep.
to_seconds() {
  case "$1" in
    *ms) awk -v ms="${1%ms}" 'BEGIN { print ms / 1000 }' ;;
    *s) echo "${1%s}" ;;
    *) echo "$1" ;;
  esac
}
