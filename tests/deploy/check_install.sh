#!/usr/bin/env bash
# `cmake --install` into a temporary prefix puts the binaries, the systemd unit
# and the example config in their FHS places.
# usage: check_install.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
errors=0
for f in bin/trouped bin/troupectl bin/troupe-bench; do
  [ -x "$prefix/$f" ] || { echo "FAIL: $f not installed or not executable"; errors=$((errors + 1)); }
done
for f in lib/systemd/system/trouped.service etc/troupe/trouped.yaml; do
  [ -s "$prefix/$f" ] || { echo "FAIL: $f not installed"; errors=$((errors + 1)); }
done
unit="$prefix/lib/systemd/system/trouped.service"
if [ -f "$unit" ]; then
  # The installed unit runs the binary of the configured prefix.
  exec_start=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$unit")
  case "$exec_start" in
    */bin/trouped) ;;
    *) echo "FAIL: installed unit ExecStart is '$exec_start'"; errors=$((errors + 1)) ;;
  esac
fi
"$prefix/bin/troupectl" --help | grep -q "Exit codes" || { echo "FAIL: installed troupectl does not run"; errors=$((errors + 1)); }
[ $errors -eq 0 ] || exit 1
echo "installed: $(cd "$prefix" && find . -type f | sort | tr '\n' ' ')"
