#!/usr/bin/env bash
# Installs labloop's build and test dependencies on Debian (12 "bookworm" or later).
# Idempotent and quiet when everything is present; needs root (or sudo) only when
# something is missing. Used by the README's commands and by .ci/run.
set -euo pipefail

packages=(
    # build
    build-essential cmake pkg-config clang libclang-rt-14-dev clang-format clang-tidy cppcheck
    # libraries
    libmodbus-dev libserialport-dev libzmq3-dev libsqlite3-dev libgsl-dev
    libjansson-dev libconfig-dev libcmocka-dev libsystemd-dev
    # tests: peers that are not ours, and tools the integration tests use
    python3 python3-pymodbus python3-serial python3-zmq sqlite3 procps faketime
    strace systemd
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
