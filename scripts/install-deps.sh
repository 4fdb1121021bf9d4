#!/usr/bin/env bash
# Installs every Debian 12 package that building, testing and running Troupe
# needs. Idempotent: when everything is present it prints nothing and does not
# touch apt. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git clang clang-format clang-tidy
  libclang-rt-14-dev
  # libraries
  libboost-dev libboost-program-options-dev libboost-system-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libyaml-cpp-dev libspdlog-dev libfmt-dev
  prometheus-cpp-dev libsystemd-dev libsqlite3-dev libpq-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus yamllint python3-grpcio python3-yaml systemd
  libssl-dev openssl curl procps
  postgresql  # the cluster tests start a real server (tests/support)
  beanstalkd  # scripts/perf-store.sh: the durable-queue reference (fsync per write)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
