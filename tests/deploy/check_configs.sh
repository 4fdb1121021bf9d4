#!/usr/bin/env bash
# The configs the deployment ships pass `trouped --check-config`: the Docker
# image's here; the Kubernetes ConfigMap's trouped.yaml names files from
# mounted Secrets, so check_k8s.py checks it with made-up ones. Exits 77
# (ctest: skipped, not passed) while the built trouped has no --check-config.
# usage: check_configs.sh TROUPED REPO_ROOT
set -euo pipefail
trouped=$1
root=$2
if ! "$trouped" --help 2>&1 | grep -q -- "--check-config"; then
  echo "SKIP: $trouped has no --check-config yet"
  exit 77
fi
status=0
for f in "$root/deploy/docker/trouped.yaml"; do
  if ! "$trouped" --check-config "$f"; then
    echo "FAIL: $f is not a valid trouped config"
    status=1
  fi
done
exit $status
