#!/bin/sh
# Installs the Debian packages Rill needs to build, test and benchmark.
# Idempotent: asks dpkg what is present and installs only what is missing.
set -eu
PKGS="build-essential cmake pkg-config clang llvm libclang-rt-14-dev
 librdkafka-dev kcat zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev
 libcmocka-dev libglib2.0-dev libjansson-dev librocksdb-dev python3 python3-pytest python3-confluent-kafka python3-kafka
 python3-snappy python3-lz4 python3-zstandard
 procps iproute2"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
