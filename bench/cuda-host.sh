#!/usr/bin/env bash
# cuda-host.sh PACK RESULTS_DIR [SECONDS]
# On a CUDA host without network, from a folder made by bench/pack-cuda-host.sh: builds
# llama.cpp with CUDA for this GPU from the carried release source, then
#   1. the conformance support step (test-backend-ops support, CUDA0 against VirtGPU0 with
#      libggml-cuda.so behind apir-server),
#   2. bench/llama-bench.sh (CUDA0 vs VirtGPU0 vs RPC0, F16 and Q4_0 1B-class models),
#   3. the conformance ops step (test-backend-ops test -b VirtGPU0, representative filter) in
#      the time left of SECONDS (default 570),
# and writes each one's output and summary.txt into RESULTS_DIR.
set -uo pipefail
pack=$(cd "$1" && pwd) || exit 2
res=$(mkdir -p "$2" && cd "$2" && pwd) || exit 2
deadline=${3:-570}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PATH=/usr/local/cuda/bin:$PATH
log() { echo "[$SECONDS s] $*" | tee -a "$res/summary.txt"; }
log "$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader) / nvcc $(nvcc --version | sed -n 's/.*release //p') / $(nproc) cores"
work=$(mktemp -d)
mkdir -p "$work/src" && tar xzf "$pack/llama-src.tgz" -C "$work/src"
export LLAMA_SOURCE_DIR="$work/src" GGML_VIRTGPU_CACHE="$work/cache"
cd "$pack/tree" || exit 2
build="$pack/build"
t0=$SECONDS
tools=$(bash scripts/build-llama-tools.sh --cuda -j"$(nproc)" 2>"$res/llama-build.log" | tail -n1)
log "llama.cpp build with CUDA: $((SECONDS - t0)) s"
[ -e "$tools/libggml-cuda.so" ] || { tail -n 40 "$res/llama-build.log"; log "FAILED: no libggml-cuda.so"; exit 1; }
export CONFORMANCE_TOOLS="$tools" CONFORMANCE_HOST_LIB="$tools/libggml-cuda.so" CONFORMANCE_NATIVE=CUDA0
export CONFORMANCE_OUT="$work/conformance"
t0=$SECONDS
bash tests/conformance/run.sh --skip ops --skip archs "$build" >"$res/conformance-support.txt" 2>&1
log "support ($((SECONDS - t0)) s): $(tail -n1 "$res/conformance-support.txt")"
t0=$SECONDS
BENCH_OUT="$work/bench" bash bench/llama-bench.sh "$build" >"$res/bench.txt" 2>&1
log "bench ($((SECONDS - t0)) s):"; tee -a "$res/summary.txt" <"$res/bench.txt"
cp "$work/bench/llama-bench.csv" "$res/" 2>/dev/null
left=$((deadline - SECONDS))
if [ $left -gt 60 ]; then
    t0=$SECONDS
    timeout -k 5 $((left - 15)) bash tests/conformance/run.sh --skip support --skip archs "$build" >"$res/conformance-ops.txt" 2>&1
    log "ops (exit $?, $((SECONDS - t0)) s): $(tail -n1 "$res/conformance-ops.txt")"
fi
tar czf "$res/conformance-logs.tgz" -C "$work" conformance 2>/dev/null
log "finished"
