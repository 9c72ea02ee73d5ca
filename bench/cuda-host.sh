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
#
# CUDA_HOST_STEPS (default "support bench ops") picks and orders the steps; more steps:
#   breakdown  one llama-bench generation run (tg128) through VirtGPU0 (F16) with GGML_VIRTGPU_STATS
#              and VIRGL_APIR_STATS, the host's ggml log at debug level (the CUDA backend says there
#              whether it reused its CUDA graphs), and bench-roundtrip's no-op round trip
#   ppbreakdown  the same for the prompt (pp512), without the round trip
#   decodetimes  bench/decode-times.sh: per llama_decode, natively and through VirtGPU0, the time in
#              tensor_set and in graph computes, and the host's own graph compute next to native's
#   cpubench   bench/llama-bench.sh on the CPU backend (BENCH_BACKEND=cpu): native CPU, VirtGPU0 and
#              RPC0 on this host's cores
#   opsmoe     the ops step for the ops of a mixture-of-experts layer only (TOPK_MOE, MUL_MAT_ID, ARGSORT,
#              TOP_K, GET_ROWS and their fusions)
#   tools      the llama.cpp programs and libraries built here, xz-compressed in parts of 15 MB
#              (llama-tools.tar.xz.*), to carry to the next run as LLAMA_TOOLS_DIR
# LLAMA_TOOLS_DIR: such a folder, unpacked: nothing is built (scripts/build-llama-tools.sh).
set -uo pipefail
pack=$(cd "$1" && pwd) || exit 2
res=$(mkdir -p "$2" && cd "$2" && pwd) || exit 2
deadline=${3:-570}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PATH=/usr/local/cuda/bin:$PATH
log() { echo "[$SECONDS s] $*" | tee -a "$res/summary.txt"; }
log "$(nvidia-smi --query-gpu=name,driver_version,compute_cap --format=csv,noheader) / nvcc $(nvcc --version | sed -n 's/.*release //p') / $(nproc) cores"
work=$(mktemp -d)
export GGML_VIRTGPU_CACHE="$work/cache"
if [ -e "$pack/llama-src.tgz" ]; then
    mkdir -p "$work/src" && tar xzf "$pack/llama-src.tgz" -C "$work/src"
    export LLAMA_SOURCE_DIR="$work/src"
fi
cd "$pack/tree" 2>/dev/null || cd "$(dirname "$0")/.." || exit 2  # the pack's copy, or this clone
build="$pack/build"
t0=$SECONDS
tools=$(bash scripts/build-llama-tools.sh --cuda -j"$(nproc)" test-backend-ops llama-bench ggml-rpc-server \
    2>"$res/llama-build.log" | tail -n1)
log "llama.cpp build with CUDA: $((SECONDS - t0)) s"
[ -e "$tools/libggml-cuda.so" ] || { tail -n 40 "$res/llama-build.log"; log "FAILED: no libggml-cuda.so"; exit 1; }
export CONFORMANCE_TOOLS="$tools" CONFORMANCE_HOST_LIB="$tools/libggml-cuda.so" CONFORMANCE_NATIVE=CUDA0
export CONFORMANCE_OUT="$work/conformance"
export LLAMA_TOOLS_DIR="$tools"   # every later step uses these programs as they are

step_support() {
    bash tests/conformance/run.sh --skip ops --skip archs "$build" >"$res/conformance-support.txt" 2>&1
    log "support: $(tail -n1 "$res/conformance-support.txt")"
}
step_bench() {
    BENCH_OUT="$work/bench" bash bench/llama-bench.sh "$build" >"$res/bench.txt" 2>&1
    log "bench:"; tee -a "$res/summary.txt" <"$res/bench.txt"
    cp "$work/bench/llama-bench.jsonl" "$res/" 2>/dev/null
}
step_cpubench() {
    BENCH_BACKEND=cpu BENCH_OUT="$work/bench-cpu" bash bench/llama-bench.sh "$build" >"$res/bench-cpu.txt" 2>&1
    log "bench, CPU backend:"; tee -a "$res/summary.txt" <"$res/bench-cpu.txt"
}
step_ops() {
    local left=$((deadline - SECONDS))
    [ $left -gt 60 ] || { log "ops: skipped, $left s left"; return; }
    timeout -k 5 $((left - 15)) bash tests/conformance/run.sh --skip support --skip archs "$build" >"$res/conformance-ops.txt" 2>&1
    log "ops (exit $?): $(tail -n1 "$res/conformance-ops.txt")"
    tar czf "$res/conformance-logs.tgz" -C "$work" conformance 2>/dev/null
}
# the ops a mixture-of-experts router and its experts run (a quick conformance check after a change there)
step_opsmoe() {
    bash tests/conformance/run.sh --skip support --skip archs --ops TOPK_MOE,MUL_MAT_ID,MUL_MAT_ID_FUSION,ARGSORT,TOP_K,GET_ROWS \
        "$build" >"$res/conformance-opsmoe.txt" 2>&1
    log "opsmoe (exit $?): $(tail -n1 "$res/conformance-opsmoe.txt")"
    grep -E '^  [A-Z0-9_]+\(.*FAIL|^Failing tests:|^  [A-Z0-9_]+\(' "$CONFORMANCE_OUT/ops.txt" | grep -v ': OK' |
        grep -v 'not supported' | head -n 40 >>"$res/conformance-opsmoe.txt"
}
# breakdown NAME TEST LLAMA_BENCH_ARGS...: one llama-bench run of TEST through VirtGPU0 with both
# sides' statistics, into RESULTS/NAME-{guest.txt,host.log}
breakdown() {
    local name=$1 test=$2; shift 2
    local m="$work/breakdown-f16.gguf" host_log="$res/$name-host.log"
    [ -s "$m" ] || LD_LIBRARY_PATH="$tools" "$build/bin/make-tiny-llama" -o "$m" --type f16 --embd 2048 --layers 16 \
        --ff 5632 --heads 16 --heads-kv 16 --vocab 32000 >/dev/null 2>&1 || { log "$name: make-tiny-llama failed"; return; }
    rm -f "$host_log"
    export APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$tools/libggml-cuda.so"
    GGML_VIRTGPU_STATS=1 VIRGL_APIR_STATS=1 APIR_LLAMA_CPP_LOG_TO_FILE="$host_log" \
        GGML_BACKEND_PATH="$build/bin/libggml-virtgpu.so" LD_LIBRARY_PATH="$tools" \
        bash tests/lib/with-server.sh "$build" -- "$tools/llama-bench" -m "$m" -dev VirtGPU0 -ngl 99 \
        "$@" -r 2 -v >"$res/$name-guest.txt" 2>&1
    log "$name (exit $?): $test through VirtGPU0, guest statistics:"
    grep -A12 'ggml-virtgpu: stats, process total' "$res/$name-guest.txt" | tee -a "$res/summary.txt"
    grep -B1 -A12 'stats of context .*released' "$host_log" | tee -a "$res/summary.txt"
    log "host ggml debug lines on CUDA graphs: $(grep -c 'CUDA Graph id .* reused' "$host_log") uid reuses, $(grep -c 'warmup complete' "$host_log") warmups, $(grep -c 'warmup reset' "$host_log") resets"
    grep -E "$test|model" "$res/$name-guest.txt" | tail -n 3 | tee -a "$res/summary.txt"
}
step_ppbreakdown() { breakdown ppbreakdown pp512 -p 512 -n 0; }
step_breakdown() {
    breakdown breakdown tg128 -p 0 -n 128
    LD_LIBRARY_PATH="$tools" bash tests/lib/with-server.sh "$build" -- "$build/bin/bench-roundtrip" \
        >"$res/breakdown-roundtrip.txt" 2>&1
    log "bench-roundtrip (exit $?): $(tail -n 1 "$res/breakdown-roundtrip.txt")"
}
step_decodetimes() {
    bash bench/decode-times.sh "$build" >"$res/decode-times.txt" 2>&1
    log "decode times:"; grep -v '^build-llama-tools' "$res/decode-times.txt" | tee -a "$res/summary.txt"
}
step_tools() {
    tar cf - -C "$tools" --exclude='*.a' . | xz -T0 -6 | split -b 15M -d - "$res/llama-tools.tar.xz."
    log "tools: $(du -ch "$res"/llama-tools.tar.xz.* | tail -n1)"
}
for step in ${CUDA_HOST_STEPS:-support bench ops}; do
    t0=$SECONDS
    "step_$step"
    log "$step: $((SECONDS - t0)) s"
done
log "finished"
