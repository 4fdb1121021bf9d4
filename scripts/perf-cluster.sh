#!/usr/bin/env bash
# perf-cluster.sh: 1 vs 3 trouped replicas on one PostgreSQL (issue 14;
# docs/performance.md, "Cluster").
#
# One run, everything on 127.0.0.1 free ports: a PostgreSQL 15 from the
# Debian package (initdb in a temp dir, as the postgres user when root,
# fsync on), then trouped replicas on tests/bench/bench.yaml (one noop
# troupe, 4 actors) with store {kind: postgres}. Each round runs, on 1
# replica and then on 3 (one troupe-bench per replica, all at once):
#   complete   Submit wait=true, 64 in flight per replica: submit->complete
#   submit     unary Submit, 64 in flight per replica: acknowledgement
#              after the commit (p50, p99)
# (64-byte payloads, 2 client channels per bench). The figures are summed
# over the benches that ran at once; latency is the median of theirs. CPU
# per job: the replicas' and PostgreSQL's CPU time (user + system, from
# /proc) over the measured window, divided by the calls measured.
#
# With --profile 1, `perf record -a` samples the whole machine for 3 s of
# the first 3-replica `complete` round: the CPU split between PostgreSQL,
# the replicas and the load generators, and the top symbols of each
# (profile-*.txt).
#
# Usage: scripts/perf-cluster.sh [--rounds N] [--duration D] [--warmup D]
#                                [--profile 0|1] [--build-dir DIR] [--out DIR]
# Environment (flags win): ROUNDS (2), DURATION (5s), WARMUP (1s), PROFILE (0),
# BUILD_DIR (build/release), OUT_DIR (BUILD_DIR/perf/<time>-cluster).
# Exits 1 when a run had no successful call.
set -euo pipefail

ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
PROFILE="${PROFILE:-0}"
BUILD_DIR="${BUILD_DIR:-build/release}"
OUT_DIR="${OUT_DIR:-}"
die() { echo "perf-cluster: $*" >&2; exit 2; }
source "$(dirname "$0")/lib/args.sh"
parse_flags 2,25 rounds=ROUNDS duration=DURATION warmup=WARMUP profile=PROFILE \
  build-dir=BUILD_DIR out=OUT_DIR -- "$@"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number > 0"

cd "$(dirname "$0")/.."
source scripts/lib/processes.sh
TROUPED="$BUILD_DIR/daemon/trouped"
BENCH="$BUILD_DIR/tools/troupe-bench"
require_built "$BUILD_DIR" daemon/trouped tools/troupe-bench
PG_BIN=/usr/lib/postgresql/15/bin
[[ "$PROFILE" != 1 ]] || command -v perf >/dev/null ||
  die "--profile 1 needs perf (Debian package linux-perf)"
[[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL 15 not installed (scripts/install-deps.sh installs it)"
OUT_DIR="${OUT_DIR:-$BUILD_DIR/perf/$(date -u +%Y%m%dT%H%M%SZ)-cluster}"
mkdir -p "$OUT_DIR"

WORK="$(mktemp -d)"
chmod 755 "$WORK"
PIDS=()
as_pg() { if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for pid in "${PIDS[@]}"; do stop_process "$pid"; done
  [[ -f "$WORK/pg/postmaster.pid" ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# PostgreSQL: max_connections covers 3 replicas' pools with room to spare.
[[ "$(id -u)" -eq 0 ]] && chown postgres "$WORK"
as_pg "$PG_BIN/initdb" -D "$WORK/pg" -U postgres -A trust >"$WORK/initdb.log" 2>&1 ||
  die "initdb failed: $(cat "$WORK/initdb.log")"
PG_PORT="$(free_port)"
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c max_connections=100" start >/dev/null ||
  die "PostgreSQL did not start: $(cat "$WORK/pg.log")"
as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres troupe
DSN="host=127.0.0.1 port=$PG_PORT dbname=troupe user=postgres"
echo "PostgreSQL 15 at 127.0.0.1:$PG_PORT; JSON in $OUT_DIR" >&2

# start_replicas N: N trouped replicas on the database; sets ADDRS.
ADDRS=()
start_replicas() {
  ADDRS=()
  local i pid addr
  for i in $(seq "$1"); do
    { grep -v '^store:' tests/bench/bench.yaml
      printf '\nstore: {kind: postgres, dsn: "%s", replica: r%s}\n' "$DSN" "$i"; } >"$WORK/r$i.yaml"
    "$TROUPED" --config "$WORK/r$i.yaml" >"$WORK/r$i-$1.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    addr="$(wait_for_line "$WORK/r$i-$1.log" 'ready, serving grpc=([^ ]+) metrics=' "$pid")" ||
      die "replica r$i did not become ready"
    ADDRS+=("$addr")
  done
}
stop_replicas() {
  for pid in "${PIDS[@]}"; do stop_process "$pid"; done
  PIDS=()
}

COMMON=(--troupe noop --payload-size 64 --threads 2 --duration "$DURATION" --warmup "$WARMUP"
        --concurrency 64 --output json)
postgres_pids() { pgrep -u postgres -f "postgres" | tr '\n' ' '; }
for n in 1 3; do
  start_replicas "$n"
  for round in $(seq "$ROUNDS"); do
    for workload in complete submit; do
      mode=submit; [[ "$workload" == complete ]] && mode=submit-wait
      echo "round $round: $workload on $n replica(s) ..." >&2
      bench_pids=()
      for i in $(seq "$n"); do
        timeout 600 "$BENCH" --address "${ADDRS[$((i - 1))]}" --mode "$mode" "${COMMON[@]}" \
          >"$OUT_DIR/$round-$workload-$n-r$i.json" &
        bench_pids+=($!)
      done
      # CPU per job over the measured window: the replicas' and PostgreSQL's
      # ticks from the end of the warm-up to the end of the run, over the
      # calls the benches measured (steadier than jobs/s on a VM that drifts).
      sleep "$(to_seconds "$WARMUP")"
      pg_pids="$(postgres_pids)"
      # shellcheck disable=SC2086
      cpu_before=("$(cpu_ticks "${PIDS[@]}")" "$(cpu_ticks $pg_pids)")
      if [[ "$PROFILE" == 1 && "$n" == 3 && "$round" == 1 && "$workload" == complete ]]; then
        sleep 1
        perf record -F 499 -a -g -o "$OUT_DIR/perf.data" -- sleep 3 2>"$OUT_DIR/perf-record.log" ||
          echo "perf-cluster: perf record failed (see perf-record.log)" >&2
      fi
      for pid in "${bench_pids[@]}"; do wait "$pid"; done
      # shellcheck disable=SC2086
      echo "$(($(cpu_ticks "${PIDS[@]}") - cpu_before[0])) $(($(cpu_ticks $pg_pids) - cpu_before[1]))" \
        >"$OUT_DIR/$round-$workload-$n.cpu"
    done
  done
  stop_replicas
done

if [[ -s "$OUT_DIR/perf.data" ]]; then
  { perf report -i "$OUT_DIR/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9]' | head -12 || true; } >"$OUT_DIR/profile-comm.txt"
  { perf report -i "$OUT_DIR/perf.data" --no-children --sort comm,dso,sym --stdio -g none \
      2>/dev/null | grep -E '^ +[0-9]' | head -40 || true; } >"$OUT_DIR/profile-symbols.txt"
  echo "CPU by process over 3 s of 3-replica complete (perf, all CPUs):"
  cat "$OUT_DIR/profile-comm.txt"
  echo "top symbols: $OUT_DIR/profile-symbols.txt"
fi

/usr/bin/python3 - "$OUT_DIR" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
out, rounds, tick_us = sys.argv[1], int(sys.argv[2]), 1e6 / int(sys.argv[3])
med = statistics.median
failed = []
table = {}
print(f"{'workload':<10} {'replicas':>8} {'jobs/s (median of ' + str(rounds) + ')':>24} {'p50':>9} {'p99':>9}"
      f"   errors   CPU us/job: trouped  postgres")
for workload in ("complete", "submit"):
    for n in (1, 3):
        totals, p50s, p99s, errors, cpu_trouped, cpu_pg = [], [], [], 0, [], []
        for r in range(1, rounds + 1):
            rs = [json.load(open(f"{out}/{r}-{workload}-{n}-r{i}.json")) for i in range(1, n + 1)]
            for i, x in enumerate(rs, 1):
                if x["ok"] == 0:
                    failed.append(f"round {r} {workload} on {n} replicas, bench {i}: no successful call")
                errors += sum(x["errors"].values()) if isinstance(x["errors"], dict) else x["errors"]
            totals.append(sum(x["throughput_rps"] for x in rs))
            p50s.append(med(x["latency_us"]["p50"] for x in rs) / 1000)
            p99s.append(med(x["latency_us"]["p99"] for x in rs) / 1000)
            calls = max(1, sum(x["ok"] for x in rs))
            ticks = [int(t) for t in open(f"{out}/{r}-{workload}-{n}.cpu").read().split()]
            cpu_trouped.append(ticks[0] * tick_us / calls)
            cpu_pg.append(ticks[1] * tick_us / calls)
        table[workload, n] = med(totals)
        print(f"{workload:<10} {n:>8} {med(totals):>24,.0f} {med(p50s):>7.2f}ms {med(p99s):>7.2f}ms"
              f"   {errors:>6} {med(cpu_trouped):>19.1f} {med(cpu_pg):>9.1f}")
print()
print(f"3 replicas / 1: complete {table['complete', 3] / table['complete', 1]:.2f}x, "
      f"submit {table['submit', 3] / table['submit', 1]:.2f}x")
g = table["complete", 3]
print(f"goal (issue 14): >= 20,000 jobs/s submit->complete with 3 replicas: {g:,.0f} ({'met' if g >= 20000 else 'MISSED'})")
for f in failed:
    print("FAILED:", f)
sys.exit(1 if failed else 0)
PY
