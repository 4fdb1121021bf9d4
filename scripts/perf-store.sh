#!/usr/bin/env bash
# perf-store.sh: what durability costs (docs/performance.md, "Durable store").
#
# One run, side by side, everything on 127.0.0.1 free ports:
#   memory      trouped on tests/bench/bench.yaml (one noop troupe, 4 actors;
#               store {kind: memory})
#   sqlite      the same with store {kind: sqlite, sync: full} in a temp dir
#   beanstalkd  -f 0 (fsync on every binlog write; -b in a temp dir), driven by
#               tests/bench/beanstalk_load: 64 connections with one put in
#               flight each, 2 more reserving and deleting
# Each round runs every workload on memory, then sqlite, then beanstalkd's put:
#   submit   unary Submit, 64 in flight
#   stream   SubmitStream, 4 streams x 64
#   wait64   Submit wait=true, 64 in flight
#   wait8    Submit wait=true, 8 in flight (p50, p99)
# (64-byte payloads, 2 client channels), with trouped's CPU time (user +
# system, /proc) per call over the measured window. Then recovery: COUNT jobs queued on
# a sqlite trouped (tests/bench/queued.yaml: one actor asleep on the first),
# kill -9, start again: time to ready, to the first dispatch and to all
# queued, store bytes per job, VmRSS once all are queued.
#
# Usage: scripts/perf-store.sh [--rounds N] [--duration D] [--warmup D]
#                              [--count N] [--build-dir DIR] [--out DIR]
# Environment (flags win): ROUNDS (3), DURATION (5s), WARMUP (1s),
# COUNT (1000000), BUILD_DIR (build/release), OUT_DIR (BUILD_DIR/perf/<time>-store).
# Exits 1 when a run had no successful call or recovery lost jobs.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
COUNT="${COUNT:-1000000}"
BUILD_DIR="${BUILD_DIR:-build/release}"
OUT_DIR="${OUT_DIR:-}"
die() { echo "perf-store: $*" >&2; exit 2; }
source "$(dirname "$0")/lib/args.sh"
parse_flags 2,27 rounds=ROUNDS duration=DURATION warmup=WARMUP count=COUNT \
  build-dir=BUILD_DIR out=OUT_DIR -- "$@"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number > 0"
[[ "$COUNT" =~ ^[1-9][0-9]*$ ]] || die "COUNT must be a whole number > 0"

cd "$(dirname "$0")/.."
source scripts/lib/processes.sh
TROUPED="$BUILD_DIR/daemon/trouped"
BENCH="$BUILD_DIR/tools/troupe-bench"
LOAD="$BUILD_DIR/tests/bench/beanstalk_load"
require_built "$BUILD_DIR" daemon/trouped tools/troupe-bench tests/bench/beanstalk_load
command -v beanstalkd >/dev/null || die "beanstalkd not installed (scripts/install-deps.sh installs it)"
OUT_DIR="${OUT_DIR:-$BUILD_DIR/perf/$(date -u +%Y%m%dT%H%M%SZ)-store}"
mkdir -p "$OUT_DIR"

WORK="$(mktemp -d)"
MEM_PID="" SQL_PID="" BS_PID="" REC_PID=""
cleanup() {
  stop_process "$MEM_PID"
  stop_process "$SQL_PID"
  stop_process "$BS_PID"
  [[ -n "$REC_PID" ]] && kill -KILL "$REC_PID" 2>/dev/null && wait "$REC_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# with_store BASE STORE_YAML OUT: BASE with its one-line `store:` section
# (if any) replaced by `store: STORE_YAML`.
with_store() { { grep -v '^store:' "$1"; printf '\nstore: %s\n' "$2"; } >"$3"; }
# start_trouped CONFIG LOG PID_VAR ADDR_VAR: starts trouped, waits for its
# ready line, sets PID_VAR and ADDR_VAR (its gRPC address).
start_trouped() {
  "$TROUPED" --config "$1" >"$2" 2>&1 &
  printf -v "$3" '%s' $!
  local addr
  addr="$(wait_for_line "$2" 'ready, serving grpc=([^ ]+) metrics=' "${!3}")" ||
    die "trouped ($1) did not become ready"
  printf -v "$4" '%s' "$addr"
}
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

mkdir -p "$WORK/store" "$WORK/binlog"
# This disk's fsync, which bounds every sync-full figure below: 200 writes of
# 4 KiB over a file written and synced before (as SQLite rewrites its WAL),
# each fdatasync'ed, in the store's directory.
/usr/bin/python3 - "$WORK/store/fsync-probe" >"$OUT_DIR/fsync.json" <<'PY'
import json, os, statistics, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"\0" * 4096 * 200)
os.fsync(fd)
times = []
for i in range(200):
    os.pwrite(fd, b"x" * 4096, i * 4096)
    t = time.perf_counter()
    os.fdatasync(fd)
    times.append((time.perf_counter() - t) * 1000)
os.close(fd)
os.unlink(sys.argv[1])
times.sort()
print(json.dumps({"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}))
PY
with_store tests/bench/bench.yaml '{kind: memory}' "$WORK/memory.yaml"
with_store tests/bench/bench.yaml "{kind: sqlite, sync: full, path: $WORK/store/jobs.db}" "$WORK/sqlite.yaml"
start_trouped "$WORK/memory.yaml" "$WORK/memory.log" MEM_PID MEM_ADDR
start_trouped "$WORK/sqlite.yaml" "$WORK/sqlite.log" SQL_PID SQL_ADDR
BS_PORT="$(free_port)"
beanstalkd -l 127.0.0.1 -p "$BS_PORT" -b "$WORK/binlog" -f 0 >"$WORK/beanstalkd.log" 2>&1 &
BS_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$BS_PORT") 2>/dev/null && break
  kill -0 "$BS_PID" 2>/dev/null || die "beanstalkd did not start: $(cat "$WORK/beanstalkd.log")"
  sleep 0.1
done
echo "memory: trouped at $MEM_ADDR; sqlite: trouped at $SQL_ADDR (store in $WORK/store);" \
  "beanstalkd -f 0 at 127.0.0.1:$BS_PORT" >&2
echo "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP; JSON in $OUT_DIR" >&2

COMMON=(--troupe noop --payload-size 64 --threads 2 --duration "$DURATION" --warmup "$WARMUP"
        --output json)
declare -A WORKLOADS=(
  [submit]="--mode submit --concurrency 64"
  [stream]="--mode stream --streams 4 --window 64"
  [wait64]="--mode submit-wait --concurrency 64"
  [wait8]="--mode submit-wait --concurrency 8"
)
for round in $(seq "$ROUNDS"); do
  for workload in submit stream wait64 wait8; do
    for target in memory sqlite; do
      addr="$MEM_ADDR" pid="$MEM_PID"
      [[ "$target" == sqlite ]] && addr="$SQL_ADDR" pid="$SQL_PID"
      echo "round $round: $workload on $target ..." >&2
      # shellcheck disable=SC2086 # WORKLOADS values are word lists
      timeout 600 "$BENCH" --address "$addr" "${COMMON[@]}" ${WORKLOADS[$workload]} \
        >"$OUT_DIR/$round-$workload-$target.json" &
      bench=$!
      # trouped's CPU time over the measured window (after the warm-up).
      sleep "$(to_seconds "$WARMUP")"
      ticks="$(cpu_ticks "$pid")"
      wait "$bench"
      echo "$(($(cpu_ticks "$pid") - ticks))" >"$OUT_DIR/$round-$workload-$target.cpu"
    done
  done
  echo "round $round: beanstalkd put ..." >&2
  timeout 600 "$LOAD" --address "127.0.0.1:$BS_PORT" --concurrency 64 --consumers 2 \
    --duration "$DURATION" --payload-size 64 >"$OUT_DIR/$round-submit-beanstalkd.json"
done
store_bytes="$(du -sb "$WORK/store" | cut -f1)"
# The sqlite trouped's own view of its commits over every workload.
SQL_METRICS="$(wait_for_line "$WORK/sqlite.log" 'ready, serving grpc=[^ ]+ metrics=([^ ]+)' "$SQL_PID")"
curl -s --max-time 5 "http://$SQL_METRICS/metrics" >"$OUT_DIR/sqlite-metrics.txt" || true
stop_process "$MEM_PID"; MEM_PID=""
stop_process "$SQL_PID"; SQL_PID=""
stop_process "$BS_PID"; BS_PID=""

# Recovery: COUNT queued jobs, kill -9, start again on the same store.
mkdir -p "$WORK/recovery"
with_store tests/bench/queued.yaml "{kind: sqlite, sync: full, path: $WORK/recovery/jobs.db}" \
  "$WORK/queued.yaml"
start_trouped "$WORK/queued.yaml" "$WORK/queued-1.log" REC_PID REC_ADDR
echo "recovery: submitting $COUNT jobs to $REC_ADDR ..." >&2
timeout 1200 "$BENCH" --address "$REC_ADDR" --troupe parked --mode stream --streams 4 --window 64 \
  --payload-size 64 --count "$COUNT" --output json >"$OUT_DIR/recovery-submit.json"
{ kill -KILL "$REC_PID"; wait "$REC_PID"; } 2>/dev/null || true
REC_PID=""
disk_bytes="$(du -sb "$WORK/recovery" | cut -f1)"
# Start again; poll /metrics from the moment of the exec (every 20 ms) for
# the first dispatch (an actor busy) and all queued (mailbox depth + the
# running one >= COUNT - 1: the job that ran at the kill counts a crashed
# attempt and waits out its retry backoff).
launched="$(date +%s.%N)"
"$TROUPED" --config "$WORK/queued.yaml" >"$WORK/queued-2.log" 2>&1 &
REC_PID=$!
/usr/bin/python3 - "$WORK/queued-2.log" "$REC_PID" "$COUNT" "$launched" >"$OUT_DIR/recovery.json" <<'PY'
import json, re, sys, time, urllib.request
log, pid, count, t0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
ready = first = everything = metrics = None
busy = depth = 0
while time.time() - t0 < 120 and alive():
    if metrics is None:
        m = re.search(r"ready, serving grpc=\S+ metrics=(\S+)", open(log).read())
        if m:
            metrics, ready = m.group(1), time.time() - t0
        else:
            time.sleep(0.005)
            continue
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=5).read().decode()
    def value(series):
        m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0
    busy = value('troupe_actors_busy{troupe="parked"}')
    depth = value('troupe_mailbox_depth{troupe="parked"}')
    now = time.time() - t0
    if first is None and busy >= 1:
        first = now
    if depth + busy >= count - 1:
        everything = now
        break
    time.sleep(0.02)
rss = 0
if alive():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
print(json.dumps({"ready_s": ready, "first_dispatch_s": first, "all_queued_s": everything,
                  "rss_bytes": rss, "queued": int(depth), "running": int(busy)}))
PY
grep -iE 'recover' "$WORK/queued-2.log" | head -3 | sed 's/^/trouped: /' >&2 || true
{ kill -KILL "$REC_PID"; wait "$REC_PID"; } 2>/dev/null || true
REC_PID=""

/usr/bin/python3 - "$OUT_DIR" "$ROUNDS" "$COUNT" "$disk_bytes" "$store_bytes" "$(getconf CLK_TCK)" <<'PY'
import json, os, re, statistics, sys
out, rounds, count, disk, store = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
tick_us = 1e6 / int(sys.argv[6])
def load(name):
    return json.load(open(f"{out}/{name}.json"))
failed = []
def runs(workload, target):
    rs = [load(f"{r}-{workload}-{target}") for r in range(1, rounds + 1)]
    for i, r in enumerate(rs, 1):
        if r.get("ok", r.get("puts", 0)) == 0:
            failed.append(f"round {i} {workload} on {target}: no successful call")
    return rs
med = statistics.median
print(f"{'workload':<14} {'target':<11} {'req/s (median of ' + str(rounds) + ')':>22} {'p50':>9} {'p99':>9}"
      f"   errors   trouped CPU us/call")
table = {}
def cpu_per_call(workload, target, rs):
    per = []
    for r, x in enumerate(rs, 1):
        path = f"{out}/{r}-{workload}-{target}.cpu"
        if os.path.exists(path) and x.get("ok"):
            per.append(int(open(path).read()) * tick_us / x["ok"])
    return f"{med(per):>20.1f}" if per else ""

for workload in ("submit", "stream", "wait64", "wait8"):
    for target in ("memory", "sqlite") + (("beanstalkd",) if workload == "submit" else ()):
        rs = runs(workload, target)
        rps = med(r["throughput_rps"] for r in rs)
        p50 = med(r["latency_us"]["p50"] for r in rs) / 1000
        p99 = med(r["latency_us"]["p99"] for r in rs) / 1000
        errors = sum(sum(r["errors"].values()) if isinstance(r["errors"], dict) else r["errors"] for r in rs)
        table[workload, target] = (rps, p50, p99)
        name = "beanstalkd put" if target == "beanstalkd" else workload
        print(f"{name:<14} {target:<11} {rps:>22,.0f} {p50:>7.2f}ms {p99:>7.2f}ms   {errors:>6}"
              f" {cpu_per_call(workload, target, rs)}")
def ratio(w):
    return table[w, "sqlite"][0] / table[w, "memory"][0]
fsync = load("fsync")
print(f"this disk's fdatasync (4 KiB rewrites): p50 {fsync['p50_ms']:.2f} ms, p99 {fsync['p99_ms']:.2f} ms")
print()
print("targets (issue 13):")
for w in ("submit", "stream"):
    print(f"  {w}: sqlite/memory = {ratio(w):.2f} (target >= 0.8): {'met' if ratio(w) >= 0.8 else 'MISSED'}")
print(f"  wait64: sqlite/memory = {ratio('wait64'):.2f} (no target)")
d = table["wait8", "sqlite"][2] - table["wait8", "memory"][2]
print(f"  wait8 p99: sqlite {table['wait8', 'sqlite'][2]:.2f} ms vs memory {table['wait8', 'memory'][2]:.2f} ms "
      f"(+{d:.2f} ms; target <= +2 ms): {'met' if d <= 2 else 'MISSED'}")
x = table["submit", "sqlite"][0] / table["submit", "beanstalkd"][0]
print(f"  submit: sqlite/beanstalkd -f 0 = {x:.1f}x (target >= 15x): {'met' if x >= 15 else 'MISSED'}")
print(f"  sqlite store after the workloads: {store / 2**20:.1f} MiB")
try:
    metrics = open(f"{out}/sqlite-metrics.txt").read()
    def metric(name):
        m = re.search(r"^" + name + r" (\S+)$", metrics, re.M)
        return float(m.group(1)) if m else 0.0
    commits = metric("troupe_store_commit_seconds_count")
    if commits:
        print(f"  sqlite commits: {commits:,.0f}, mean {metric('troupe_store_commit_seconds_sum') / commits * 1000:.2f} ms, "
              f"{metric('troupe_store_jobs_per_commit_sum') / metric('troupe_store_jobs_per_commit_count'):.1f} entries "
              f"per commit (3 per job: accepted, started, terminal)")
except OSError:
    pass
sub = load("recovery-submit")
rec = load("recovery")
print(f"recovery of {count:,} queued jobs ({sub['ok']:,} accepted at {sub['throughput_rps']:,.0f}/s over SubmitStream 4 x 64):")
fmt = lambda v: "never" if v is None else f"{v:.2f} s"
print(f"  ready {fmt(rec['ready_s'])}, first dispatch {fmt(rec['first_dispatch_s'])}, "
      f"all queued {fmt(rec['all_queued_s'])} (target <= 10 s) after the exec")
print(f"  on disk {disk / 2**20:.1f} MiB = {disk / count:.0f} bytes per job (jobs.db + WAL); "
      f"VmRSS after recovery {rec['rss_bytes'] / 2**20:.1f} MiB")
if sub["ok"] != count:
    failed.append(f"only {sub['ok']} of {count} jobs were accepted")
if rec["queued"] + rec["running"] < count - 1:
    failed.append(f"after recovery {rec['queued']} queued + {rec['running']} running of {count}")
for f in failed:
    print("FAILED:", f)
sys.exit(1 if failed else 0)
PY
