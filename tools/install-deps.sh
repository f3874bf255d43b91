#!/usr/bin/env bash
# Installs the Debian 12 / Ubuntu packages leandiff builds and tests with.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --ci     also what CI's extra checks use (fuzzing, browser test)
# Runs apt-get only when a package is missing (so tools/demo.sh works on a
# machine that has them, without root and whatever else holds the apt lock).
set -euo pipefail
pkgs="build-essential cmake pkg-config libjansson-dev libpng-dev libjpeg-dev libwebp-dev libutf8proc-dev libmicrohttpd-dev libhiredis-dev libssl-dev openssl redis-server libopenmpi-dev openmpi-bin python3"
if [ "${1:-}" = "--ci" ]; then pkgs="$pkgs clang chromium curl ca-certificates"; fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "packages present: $pkgs"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "installed:$missing"
