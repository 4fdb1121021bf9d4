#!/usr/bin/env bash
# `cmake --install` puts the binaries, the systemd unit and the example config
# in their FHS places, and the installed unit runs the installed binary with
# the installed config -- for a prefix given at install time, and for
# --prefix /usr under DESTDIR (config in /etc/troupe), as docs/deploy.md says.
# usage: check_install.sh BUILD_DIR
set -euo pipefail
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
errors=0
fail() { echo "FAIL: $*"; errors=$((errors + 1)); }

# check_layout ROOT PREFIX CONFIG_DIR: files under ROOT (the DESTDIR, or empty)
check_layout() {
  local root=$1 prefix=$2 config_dir=$3
  for f in bin/trouped bin/troupectl bin/troupe-bench; do
    [ -x "$root$prefix/$f" ] || fail "$prefix/$f not installed or not executable"
  done
  [ -s "$root$config_dir/trouped.yaml" ] || fail "$config_dir/trouped.yaml not installed"
  local unit="$root$prefix/lib/systemd/system/trouped.service"
  [ -s "$unit" ] || { fail "$prefix/lib/systemd/system/trouped.service not installed"; return; }
  local want="ExecStart=$prefix/bin/trouped --config $config_dir/trouped.yaml"
  grep -qxF "$want" "$unit" || fail "unit for prefix $prefix: want '$want', got '$(grep '^ExecStart=' "$unit")'"
  want="ExecStartPre=$prefix/bin/trouped --check-config $config_dir/trouped.yaml"
  grep -qxF "$want" "$unit" || fail "unit for prefix $prefix: want '$want'"
}

prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
check_layout "" "$prefix" "$prefix/etc/troupe"
"$prefix/bin/troupectl" --help | grep -q "Exit codes" || fail "installed troupectl does not run"
"$prefix/bin/trouped" --check-config "$prefix/etc/troupe/trouped.yaml" >/dev/null ||
  fail "installed trouped refuses the installed config"
# Under the unit (StateDirectory=troupe, ProtectSystem=strict) the store must
# be in /var/lib/troupe: the default $STATE_DIRECTORY/jobs.db, or a path there.
store=$(/usr/bin/python3 -c 'import sys, yaml; s = (yaml.safe_load(open(sys.argv[1])) or {}).get("store") or {}
print(s.get("kind", "sqlite"), s.get("path", "$STATE_DIRECTORY/jobs.db"))' "$prefix/etc/troupe/trouped.yaml")
case "$store" in
  "sqlite \$STATE_DIRECTORY/jobs.db" | "sqlite /var/lib/troupe/"*) ;;
  *) fail "installed config keeps its store as '$store': the unit can only write /var/lib/troupe" ;;
esac
if command -v systemd-analyze >/dev/null; then
  out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --generators=no \
    "$prefix/lib/systemd/system/trouped.service" 2>&1) || fail "systemd-analyze verify: $out"
  if echo "$out" | grep -q "trouped.service"; then fail "systemd-analyze verify: $out"; fi
fi

DESTDIR="$work/root" cmake --install "$build" --prefix /usr >/dev/null
check_layout "$work/root" /usr /etc/troupe

[ $errors -eq 0 ] || exit 1
echo "installed: $(cd "$work" && find . -type f | sort | tr '\n' ' ')"
