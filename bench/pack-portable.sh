#!/usr/bin/env bash
# pack-portable.sh BUILD_DIR OUT_DIR
# Copies what bench-cuda.sh needs on another machine into OUT_DIR/g (guest programs, the
# guest backend and the ggml libraries) and OUT_DIR/h (apir-server and the backend library),
# to be run there with LD_LIBRARY_PATH=OUT_DIR/g. The CUDA backend comes separately.
set -euo pipefail
build=$(cd "$1" && pwd); out=$2
mkdir -p "$out/g" "$out/h"
cp "$build"/bin/{llama-run,make-tiny-llama,bench-ops,libggml-virtgpu.so} "$out/g/"
cp "$build"/ggml-v0.5.0/lib/{libggml-base.so,libggml.v0.5.0.so,libllama.v0.5.0.so} "$out/g/"
for v in x64 haswell skylakex icelake sapphirerapids zen4; do
    cp "$build/ggml-v0.5.0/lib/libggml-cpu-$v.so" "$out/g/"
done
cp "$build/bin/apir-server" "$build/host/libggml-virtgpu-backend.so" "$out/h/"
