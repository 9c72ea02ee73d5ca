#!/usr/bin/env bash
# Install the Debian packages the project needs (Debian 12). Safe to run again.
set -euo pipefail
pkgs=(cmake make gcc g++ clang libclang-rt-14-dev pkg-config git libdrm-dev libcmocka-dev libseccomp-dev nodejs npm ca-certificates
      debootstrap xz-utils util-linux) # the last three: the VM stage (scripts/vm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# nodejs from another source (e.g. nodesource) brings its own npm
if command -v npm >/dev/null 2>&1; then
    tmp=(); for p in "${missing[@]}"; do [ "$p" = npm ] || [ "$p" = nodejs ] || tmp+=("$p"); done; missing=("${tmp[@]}")
fi
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
