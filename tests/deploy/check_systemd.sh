#!/usr/bin/env bash
# systemd-analyze verify on deploy/systemd/trouped.service, with ExecStart
# pointed at the built trouped (verify checks that the binary exists and is
# executable). verify exits 0 on many problems it only warns about ("Unknown
# key", "Failed to parse ... ignoring"), so any line it prints about the unit
# fails the test too. Also checks the settings the deployment promises.
# usage: check_systemd.sh UNIT TROUPED_BINARY
set -euo pipefail
unit=$1
trouped=$(realpath "$2")

command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze not installed (scripts/install-deps.sh installs systemd)"; exit 1; }
[ -x "$trouped" ] || { echo "FAIL: $trouped is not built"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed -e "s|/usr/bin/trouped|$trouped|g" "$unit" > "$work/trouped.service"

set +e
out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --generators=no "$work/trouped.service" 2>&1)
rc=$?
set -e
echo "$out"
if [ $rc -ne 0 ] || echo "$out" | grep -q "trouped.service"; then
  if echo "$out" | grep -qiE "Failed to (connect|initialize|setup)|not booted|Operation not permitted|No such file or directory.*/run/systemd"; then
    echo "FAIL: systemd-analyze cannot run in this environment (see above); the unit was NOT verified"
  else
    echo "FAIL: systemd-analyze verify found problems in the unit"
  fi
  exit 1
fi

errors=0
expect() {
  if ! grep -qxE "$1" "$unit"; then
    echo "FAIL: $unit lacks a line matching: $1"
    errors=$((errors + 1))
  fi
}
expect 'Type=notify'
expect 'ExecStart=/usr/bin/trouped --config /etc/troupe/trouped.yaml'
expect 'ExecReload=/bin/kill -HUP \$MAINPID'
expect 'Restart=on-failure'
expect '(DynamicUser=yes|User=troupe)'
expect 'NoNewPrivileges=yes'
expect 'ProtectSystem=strict'
expect 'ProtectHome=yes'
expect 'PrivateTmp=yes'
expect 'ReadWritePaths=/var/lib/troupe'
expect 'StateDirectory=troupe'
expect 'CapabilityBoundingSet='
expect 'SystemCallFilter=@system-service'

# TimeoutStopSec must exceed the drain_timeout of the config the unit runs.
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$unit")
config=${3:-}
drain=30
if [ -n "$config" ] && [ -f "$config" ]; then
  d=$(sed -n 's/^ *drain_timeout: *\([0-9]*\)s.*/\1/p' "$config" | head -1)
  [ -n "$d" ] && drain=$d
fi
if [ -z "$stop" ] || [ "$stop" -le "$drain" ]; then
  echo "FAIL: TimeoutStopSec=${stop:-unset}s must be above drain_timeout ${drain}s"
  errors=$((errors + 1))
fi
[ $errors -eq 0 ] || exit 1
echo "verified: systemd-analyze verify clean, hardening present, TimeoutStopSec ${stop}s > drain ${drain}s"
