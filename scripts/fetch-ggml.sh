#!/usr/bin/env bash
# Fetch the pinned ggml release (llama.cpp v0.5.0) from npm into a cache folder and extract
# the prebuilt libraries and the headers (from the release's git bundle) into DEST.
# Usage: fetch-ggml.sh CACHE_DIR DEST_DIR
set -euo pipefail
cache=$1; dest=$2
libpkg="@node-llama-cpp/linux-x64@3.22.1"
srcpkg="node-llama-cpp@3.22.1"
mkdir -p "$cache" "$dest"
cache=$(cd "$cache" && pwd); dest=$(cd "$dest" && pwd)

fetch() { # $1 package spec, $2 expected tarball name
    if [ ! -s "$cache/$2" ]; then
        command -v npm >/dev/null || { echo "fetch-ggml: npm not found; run scripts/install-deps.sh" >&2; exit 1; }
        (cd "$cache" && npm pack --silent "$1" >/dev/null)
    fi
}
fetch "$libpkg" node-llama-cpp-linux-x64-3.22.1.tgz
fetch "$srcpkg" node-llama-cpp-3.22.1.tgz

# .done-<n>: the header set; a new one (ggml-impl.h added for the graph's use counts) re-extracts
marker="$dest/.done-2"
if [ ! -f "$marker" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    tar xzf "$cache/node-llama-cpp-linux-x64-3.22.1.tgz" -C "$tmp" package/bins/linux-x64
    mkdir -p "$dest/lib" "$dest/include"
    cp "$tmp"/package/bins/linux-x64/*.so "$dest/lib/"
    tar xzf "$cache/node-llama-cpp-3.22.1.tgz" -C "$tmp" package/llama/gitRelease.bundle
    git init -q "$tmp/src"
    git -C "$tmp/src" fetch -q "$tmp/package/llama/gitRelease.bundle" HEAD
    git -C "$tmp/src" archive FETCH_HEAD ggml/include ggml/src/ggml-backend-impl.h ggml/src/ggml-impl.h \
        include/llama.h | tar x -C "$tmp/src"
    cp "$tmp"/src/ggml/include/*.h "$tmp/src/ggml/src/ggml-backend-impl.h" "$tmp/src/ggml/src/ggml-impl.h" \
        "$tmp/src/include/llama.h" "$dest/include/"
    touch "$marker"
fi
