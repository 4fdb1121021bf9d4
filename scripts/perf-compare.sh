#!/usr/bin/env bash
# perf-compare.sh: trouped against the bare gRPC baseline, side by side.
#
# Starts tests/bench/echo_server and trouped (tests/bench/bench.yaml: one noop
# troupe, 4 actors) on 127.0.0.1 free ports, runs four workloads with
# `troupe-bench --baseline`, each alternating baseline and daemon for ROUNDS
# rounds, writes each workload's JSON to the output directory and prints a
# summary table. Both servers are stopped on exit, whatever happens.
#
#   (a) submit       unary Submit, 64 in flight      vs unary Echo, 64 in flight
#   (b) submit-wait  Submit wait=true, 64 in flight  vs unary Echo, 64 in flight
#   (c) stream       SubmitStream 4 streams x 64     vs EchoStream 4 x 64
#   (d) p99@8        Submit wait=true, 8 in flight   vs unary Echo, 8 in flight (p99)
# All with a 64-byte payload over 2 client channels.
#
# Usage: scripts/perf-compare.sh [--style callback|cq] [--rounds N] [--duration D]
#                                [--warmup D] [--build-dir DIR] [--out DIR]
# Environment (flags win): ROUNDS (5), DURATION (5s), WARMUP (1s),
# BUILD_DIR (build/release), STYLE (callback), OUT_DIR (BUILD_DIR/perf/<time>).
# `--style cq` runs the baseline on the completion-queue echo server: that
# compares gRPC server styles rather than trouped.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-1s}"
BUILD_DIR="${BUILD_DIR:-build/release}"
STYLE="${STYLE:-callback}"
OUT_DIR="${OUT_DIR:-}"

die() { echo "perf-compare: $*" >&2; exit 2; }
source "$(dirname "$0")/lib/args.sh"
parse_flags 2,22 style=STYLE rounds=ROUNDS duration=DURATION warmup=WARMUP \
  build-dir=BUILD_DIR out=OUT_DIR -- "$@"
[[ "$STYLE" == callback || "$STYLE" == cq ]] || die "--style must be callback or cq"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number > 0"

cd "$(dirname "$0")/.."
source scripts/lib/processes.sh
TROUPED="$BUILD_DIR/daemon/trouped"
BENCH="$BUILD_DIR/tools/troupe-bench"
ECHO_SERVER="$BUILD_DIR/tests/bench/echo_server"
require_built "$BUILD_DIR" daemon/trouped tools/troupe-bench tests/bench/echo_server
OUT_DIR="${OUT_DIR:-$BUILD_DIR/perf/$(date -u +%Y%m%dT%H%M%SZ)-$STYLE}"
mkdir -p "$OUT_DIR"

# Seconds in a duration like 5s, 500ms or 2m (rounded up); 60 when unknown.
seconds_of() {
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *) echo 60 ;;
  esac
}
run_secs=$(( ($(seconds_of "$DURATION") + $(seconds_of "$WARMUP")) * 2 * ROUNDS ))
# Each troupe-bench run gets twice its nominal time plus a minute; the echo
# server stops by itself once all four could have run.
BENCH_BOUND=$(( run_secs * 2 + 60 ))
ECHO_LIFETIME=$(( BENCH_BOUND * 4 + 60 ))

WORK="$(mktemp -d)"
ECHO_PID=""
TROUPED_PID=""
cleanup() {
  stop_process "$ECHO_PID"
  stop_process "$TROUPED_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ECHO_SERVER" --address 127.0.0.1:0 --style "$STYLE" --max-lifetime "${ECHO_LIFETIME}s" \
  >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
"$TROUPED" --config tests/bench/bench.yaml >"$WORK/trouped.log" 2>&1 &
TROUPED_PID=$!
ECHO_ADDR="$(wait_for_line "$WORK/echo.log" 'echo_server listening on ([^ ]+) style=' "$ECHO_PID")"
DAEMON_ADDR="$(wait_for_line "$WORK/trouped.log" 'ready, serving grpc=([^ ]+) metrics=' "$TROUPED_PID")"
METRICS_ADDR="$(wait_for_line "$WORK/trouped.log" 'ready, serving grpc=[^ ]+ metrics=([^ ]+)' "$TROUPED_PID")"
echo "baseline: echo_server style=$STYLE at $ECHO_ADDR; daemon: trouped at $DAEMON_ADDR" >&2
echo "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP; JSON in $OUT_DIR" >&2

COMMON=(--address "$DAEMON_ADDR" --baseline "$ECHO_ADDR" --troupe noop --payload-size 64
        --threads 2 --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" --output json)
run() {  # run NAME troupe-bench-args...
  local name="$1"; shift
  echo "running $name ..." >&2
  timeout "$BENCH_BOUND" "$BENCH" "${COMMON[@]}" "$@" >"$OUT_DIR/$name.json"
}
# The noop troupe's counters and mailbox depth, as one JSON object.
scrape() {
  /usr/bin/python3 - "$METRICS_ADDR" <<'PY'
import json, re, sys, urllib.request
text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode()
def value(series):
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0
print(json.dumps({
    "submitted": value('troupe_jobs_submitted_total{troupe="noop"}'),
    "succeeded": value('troupe_jobs_completed_total{outcome="succeeded",troupe="noop"}'),
    "mailbox_depth": value('troupe_mailbox_depth{troupe="noop"}'),
}))
PY
}
# (a) is answered at acceptance: check that the jobs' completions kept pace
# (mailbox depth sampled twice a second during the run, counters after it).
depth_log="$OUT_DIR/a-submit.depth"
: >"$depth_log"
( while kill -0 "$TROUPED_PID" 2>/dev/null; do scrape >>"$depth_log" || true; sleep 0.5; done ) &
SAMPLER_PID=$!
run a-submit --mode submit --concurrency 64
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
scrape >"$OUT_DIR/a-submit.after"
run b-submit-wait --mode submit-wait --concurrency 64
run c-stream --mode stream --streams 4 --window 64
run d-submit-wait-8 --mode submit-wait --concurrency 8

/usr/bin/python3 - "$OUT_DIR" "$STYLE" <<'PY'
import json, sys, pathlib
out, style = pathlib.Path(sys.argv[1]), sys.argv[2]
rows = [
    ("(a) submit 64 vs echo 64", "a-submit", ["throughput", "p99"]),
    ("(b) submit-wait 64 vs echo 64", "b-submit-wait", ["throughput", "p99"]),
    ("(c) stream 4x64 vs echo-stream 4x64", "c-stream", ["throughput", "p99"]),
    ("(d) submit-wait 8 vs echo 8", "d-submit-wait-8", ["p99"]),
]
keys = {"throughput": "throughput_rps", "p50": "p50_us", "p99": "p99_us"}
def fmt(fig, v):
    if fig == "throughput":
        return f"{v:,.0f}/s"
    return f"{v / 1000:.2f}ms" if v >= 1000 else f"{v:.0f}us"
print(f"baseline style={style}; daemon/baseline ratio over {{}} rounds".format(
    len(json.loads((out / "a-submit.json").read_text())["rounds"])))
head = f"{'workload':<37} {'figure':<10} {'baseline med':>13} {'daemon med':>13}  ratio min / median / max"
print(head)
print("-" * len(head))
for label, name, figs in rows:
    data = json.loads((out / f"{name}.json").read_text())
    for fig in figs:
        r = data["ratio"][fig]
        b = data["median"]["baseline"][keys[fig]]
        d = data["median"]["daemon"][keys[fig]]
        print(f"{label:<37} {fig:<10} {fmt(fig, b):>13} {fmt(fig, d):>13}  "
              f"{r['min']:.2f} / {r['median']:.2f} / {r['max']:.2f}")
        label = ""
samples = [json.loads(l) for l in (out / "a-submit.depth").read_text().splitlines() if l.strip()]
after = json.loads((out / "a-submit.after").read_text())
print(f"(a) completions: {after['succeeded']:,.0f} of {after['submitted']:,.0f} submitted jobs "
      f"succeeded; mailbox depth max {max((s['mailbox_depth'] for s in samples), default=0):,.0f} "
      f"over {len(samples)} samples, {after['mailbox_depth']:,.0f} at the end")
errors = [(name, side, i) for _, name, _ in rows
          for i, rnd in enumerate(json.loads((out / f"{name}.json").read_text())["rounds"])
          for side in ("baseline", "daemon") if rnd[side]["ok"] != rnd[side]["requests"]]
for name, side, i in errors:
    print(f"note: {name} round {i + 1} {side} had errors (see its JSON)")
# Figures from runs with errors, or from a daemon whose jobs fell behind, are
# not the figures of a healthy run: say so in the exit status.
if errors or after["succeeded"] != after["submitted"]:
    sys.exit(1)
PY
