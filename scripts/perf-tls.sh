#!/usr/bin/env bash
# perf-tls.sh: what TLS and token checks cost (docs/performance.md, "TLS and
# tokens"). troupe-bench against trouped three ways, alternating, ROUNDS
# rounds: plaintext, TLS (certificate made here by openssl), and TLS with a
# bearer token checked on every call; unary submit and stream, DURATION each.
#
# Usage: scripts/perf-tls.sh [--rounds N] [--duration D] [--build-dir DIR]
# Environment (flags win): ROUNDS (3), DURATION (5s), BUILD_DIR (build/release).
# Servers listen on 127.0.0.1 only and are stopped on exit, whatever happens.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
BUILD_DIR="${BUILD_DIR:-build/release}"
die() { echo "perf-tls: $*" >&2; exit 2; }
source "$(dirname "$0")/lib/args.sh"
parse_flags 2,9 rounds=ROUNDS duration=DURATION build-dir=BUILD_DIR -- "$@"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number > 0"

cd "$(dirname "$0")/.."
source scripts/lib/processes.sh
TROUPED="$BUILD_DIR/daemon/trouped"
BENCH="$BUILD_DIR/tools/troupe-bench"
require_built "$BUILD_DIR" daemon/trouped tools/troupe-bench

work="$(mktemp -d)"
pid=""
trap 'stop_process "$pid"; rm -rf "$work"' EXIT

quiet() { "$@" >/dev/null 2>&1; }
quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/ca.key" -out "$work/ca.crt" -days 1 -subj /CN=perf-ca
quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/server.key" -out "$work/server.csr" -subj /CN=trouped
printf 'subjectAltName=IP:127.0.0.1\n' > "$work/server.ext"
quiet openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -out "$work/server.crt" -days 1 -extfile "$work/server.ext"
echo "perf-tls-token" > "$work/token"
hash="$("$TROUPED" hash-token < "$work/token")"

server="server:
  grpc_address: 127.0.0.1:0
  metrics_address: 127.0.0.1:0
  threads: 2"
tls="  tls: {cert_file: $work/server.crt, key_file: $work/server.key}"
troupes="troupes:
  - {name: noop, mode: fixed, actors: 2, mailbox: 100000, handler: {kind: builtin, name: noop}}"
printf '%s\n%s\n' "$server" "$troupes" > "$work/plain.yaml"
printf '%s\n%s\n%s\n' "$server" "$tls" "$troupes" > "$work/tls.yaml"
printf '%s\n%s\nauth:\n  identities:\n    - {name: bench, token_sha256: %s, permissions: {"*": [submit]}}\n%s\n' \
  "$server" "$tls" "$hash" "$troupes" > "$work/tls-token.yaml"

printf '%-6s %-10s %-7s %10s %9s %9s\n' round side mode jobs/s p50_us p99_us
for round in $(seq "$ROUNDS"); do
  for side in plain tls tls-token; do
    "$TROUPED" --config "$work/$side.yaml" > "$work/log" 2>&1 &
    pid=$!
    address="$(wait_for_line "$work/log" 'serving grpc=([^ ]+)' "$pid")"
    extra=()
    [[ "$side" != plain ]] && extra+=(--ca "$work/ca.crt")
    [[ "$side" == tls-token ]] && extra+=(--token-file "$work/token")
    for mode in submit stream; do
      "$BENCH" --address "$address" --troupe noop --mode "$mode" --duration "$DURATION" \
        --warmup 1s --concurrency 16 --streams 2 --output json "${extra[@]}" |
        /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
if r["errors"]: sys.exit("perf-tls: errors: %s" % r["errors"])
print("%-6s %-10s %-7s %10.0f %9.0f %9.0f" % (sys.argv[1], sys.argv[2], sys.argv[3],
      r["throughput_rps"], r["latency_us"]["p50"], r["latency_us"]["p99"]))' "$round" "$side" "$mode"
    done
    stop_process "$pid"
    pid=""
  done
done
