#!/bin/sh
# Installs the Debian packages memdex needs to build and test, only when some are missing.
# Usage: scripts/deps.sh [extra-package ...]
set -eu

PKGS="build-essential cmake pkg-config libuv1-dev libxxhash-dev libmsgpack-dev \
libjemalloc-dev libcmocka-dev libedit-dev libjansson-dev libhiredis-dev $*"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

echo "memdex: installing Debian packages:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
