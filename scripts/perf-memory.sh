#!/usr/bin/env bash
# perf-memory.sh: trouped's resident memory (docs/performance.md, "Memory").
#
#   idle     trouped on config/trouped.yaml (its ports moved to free ones),
#            after startup and one health check: VmRSS.
#   queued   trouped on tests/bench/queued.yaml (one actor asleep for an hour),
#            after COUNT 64-byte jobs were submitted over SubmitStream and all
#            accepted: VmRSS and VmHWM, with the mailbox depth from /metrics.
#
# Usage: scripts/perf-memory.sh [--count N] [--build-dir DIR]
# Environment (flags win): COUNT (1000000), BUILD_DIR (build/release).
# Servers listen on 127.0.0.1 only and are stopped on exit, whatever happens.
set -euo pipefail

COUNT="${COUNT:-1000000}"
BUILD_DIR="${BUILD_DIR:-build/release}"
die() { echo "perf-memory: $*" >&2; exit 2; }
source "$(dirname "$0")/lib/args.sh"
parse_flags 2,12 count=COUNT build-dir=BUILD_DIR -- "$@"
[[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || die "COUNT must be a whole number > 0"

cd "$(dirname "$0")/.."
source scripts/lib/processes.sh
TROUPED="$BUILD_DIR/daemon/trouped"
BENCH="$BUILD_DIR/tools/troupe-bench"
CTL="$BUILD_DIR/tools/troupectl"
require_built "$BUILD_DIR" daemon/trouped tools/troupe-bench tools/troupectl

WORK="$(mktemp -d)"
PID=""
stop() { stop_process "$PID"; PID=""; }
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# start CONFIG: starts trouped, waits (at most 30s) for its ready line, sets
# PID, GRPC and METRICS.
start() {
  "$TROUPED" --config "$1" >"$WORK/trouped.log" 2>&1 &
  PID=$!
  local line
  line="$(wait_for_line "$WORK/trouped.log" '(ready, serving grpc=[^ ]+ metrics=[^ ]+)' "$PID")" ||
    die "trouped did not become ready"
  GRPC="$(sed -E 's/.*grpc=([^ ]+).*/\1/' <<<"$line")"
  METRICS="$(sed -E 's/.*metrics=([^ ]+).*/\1/' <<<"$line")"
}
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$PID/status"; }
mib() { awk -v v="$1" 'BEGIN {printf "%.1f MiB", v / 1024}'; }

# Idle: the shipped example config, on free ports.
sed -E 's/(grpc_address|metrics_address): .*/\1: 127.0.0.1:0/' config/trouped.yaml \
  >"$WORK/trouped.yaml"
start "$WORK/trouped.yaml"
"$CTL" --address "$GRPC" health >/dev/null
idle_rss="$(kib VmRSS)"
stop

# Queued: COUNT jobs parked behind one sleeping actor.
start tests/bench/queued.yaml
base_rss="$(kib VmRSS)"
timeout 600 "$BENCH" --address "$GRPC" --troupe parked --mode stream --streams 4 --window 64 \
  --payload-size 64 --count "$COUNT" --output json >"$WORK/bench.json"
depth="$(/usr/bin/python3 - "$METRICS" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
print(int(float(re.search(r'^troupe_mailbox_depth\{troupe="parked"\} (\S+)$', text, re.M).group(1))))
PY
)"
ok="$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$WORK/bench.json")"
queued_rss="$(kib VmRSS)"
queued_hwm="$(kib VmHWM)"
stop

echo "idle (config/trouped.yaml):        VmRSS $(mib "$idle_rss")"
echo "queued: $ok of $COUNT jobs accepted, mailbox depth $depth (one more running)"
echo "  before submitting:               VmRSS $(mib "$base_rss")"
echo "  with them queued:                VmRSS $(mib "$queued_rss"), VmHWM $(mib "$queued_hwm")"
echo "  per queued job (RSS growth):     $(( (queued_rss - base_rss) * 1024 / COUNT )) bytes"
[[ "$ok" == "$COUNT" ]] || die "only $ok of $COUNT jobs were accepted"
