#!/usr/bin/env bash
# Installs the Debian 12 / Ubuntu packages leandiff builds and tests with.
#   tools/install-deps.sh          build + test dependencies
#   tools/install-deps.sh --ci     also what CI's extra checks use (fuzzing, browser test)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs="build-essential cmake pkg-config libjansson-dev libpng-dev libjpeg-dev libwebp-dev libutf8proc-dev libmicrohttpd-dev libhiredis-dev redis-server libopenmpi-dev openmpi-bin python3"
if [ "${1:-}" = "--ci" ]; then pkgs="$pkgs clang chromium curl ca-certificates"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
echo "installed: $pkgs"
