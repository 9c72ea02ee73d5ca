#!/usr/bin/env bash
# pack-cuda-host.sh BUILD_DIR OUT_DIR
# Puts into OUT_DIR what bench/cuda-host.sh needs on a CUDA host that has no network (nvcc,
# cmake and g++ are enough there): this clone's scripts, tests and bench (tree/), the built
# apir-server, libggml-virtgpu.so, libggml-virtgpu-backend.so, make-tiny-llama and the decode
# timer of bench/decode-times.sh (build/), and
# the llama.cpp release source from the npm bundle (llama-src.tgz, ~9 MB, without the vocab
# models and docs the programs do not need). Then, there: bash OUT_DIR/tree/bench/cuda-host.sh OUT_DIR RESULTS
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd); out=$2
rm -rf "$out"; mkdir -p "$out/tree" "$out/build/bin" "$out/build/host"
git -C "$root" ls-files -co --exclude-standard | tar cf - -C "$root" -T - | tar xf - -C "$out/tree"
cp "$build"/bin/{apir-server,libggml-virtgpu.so,make-tiny-llama,bench-ops,bench-roundtrip} "$out/build/bin/"
cp "$build/host/libggml-virtgpu-backend.so" "$out/build/host/"
mkdir -p "$out/build/bench" && cp "$build/bench/libapir-decode-timer.so" "$out/build/bench/"
src=$(bash "$root/scripts/build-llama-tools.sh" --print-source | tail -n1)
tar czf "$out/llama-src.tgz" -C "$src" --exclude=./models --exclude=./docs --exclude=./media \
    --exclude=./tools/ui --exclude=./benches --exclude=./.done .
du -sh "$out"
