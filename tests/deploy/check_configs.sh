#!/usr/bin/env bash
# The configs the deployment ships pass `trouped --check-config`: the Docker
# image's and the Kubernetes ConfigMap's trouped.yaml. Exits 77 (ctest: skipped,
# not passed) while the built trouped has no --check-config.
# usage: check_configs.sh TROUPED REPO_ROOT
set -euo pipefail
trouped=$1
root=$2
if ! "$trouped" --help 2>&1 | grep -q -- "--check-config"; then
  echo "SKIP: $trouped has no --check-config yet"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["trouped.yaml"])' \
  "$root/deploy/k8s/configmap.yaml" > "$work/configmap-trouped.yaml"
status=0
for f in "$root/deploy/docker/trouped.yaml" "$work/configmap-trouped.yaml"; do
  if ! "$trouped" --check-config "$f"; then
    echo "FAIL: $f is not a valid trouped config"
    status=1
  fi
done
exit $status
