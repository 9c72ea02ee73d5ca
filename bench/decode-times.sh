#!/usr/bin/env bash
# decode-times.sh [BUILD_DIR]
# Where a llama_decode's time goes, natively and through VirtGPU0, with llama.cpp's llama-bench
# (one F16 model: 1B class on a GPU, 46 M parameters on the CPU, as bench/llama-bench.sh) and
# build/bench/libapir-decode-timer.so preloaded into llama-bench and into apir-server's worker
# (bench/decode_timer.c). For the prompt (pp512, or pp128 on the CPU) and for generation, the
# median over the measured decodes (the first two are warm-ups) of: the whole decode, the time
# in ggml_backend_tensor_set (the batch's inputs), in the backends' graph computes, and the
# host's own graph compute (the worker's, from an idle to a finished stream) next to native's.
# Environment: LLAMA_TOOLS_DIR as scripts/build-llama-tools.sh, BENCH_BACKEND=cpu.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
timer="$build/bench/libapir-decode-timer.so"
[ -e "$timer" ] || { echo "decode-times.sh: $timer is not built; run cmake --build $build" >&2; exit 2; }
tools=$(bash "$root/scripts/build-llama-tools.sh" llama-bench | tail -n1)
if [ -e "$tools/libggml-cuda.so" ] && [ "${BENCH_BACKEND:-}" != cpu ]; then
    host_lib="$tools/libggml-cuda.so"; native=CUDA0; p=512
    args=(--embd 2048 --layers 16 --ff 5632 --heads 16 --heads-kv 16 --vocab 32000)
else
    host_lib="$tools/libggml-cpu.so"; native=none; p=128
    args=(--embd 512 --layers 4 --ff 1536 --heads 8 --heads-kv 8 --vocab 32000)
fi
export LD_LIBRARY_PATH="$tools${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$host_lib"
work=$(mktemp -d "${TMPDIR:-/tmp}/decode-times.XXXXXX")
trap 'rm -rf "$work"' EXIT
model="$work/f16.gguf"
"$build/bin/make-tiny-llama" -o "$model" --type f16 "${args[@]}" >/dev/null

# median of field F (name=us/...) of the DECODE lines of files $2..., after the first two
med_field() {
    local f=$1; shift
    cat "$@" | awk -v f="$f" '/^DECODE/ { if (++n <= 2) next; v = 0
        for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) { split(kv[2], x, "/"); v = x[1] } }
        print v }' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'
}
# median of the worker's COMPUTE lines for its largest graph, after the first two (the worker
# writes none where its sandbox refuses the file: a CPU host's seccomp filter)
med_compute() {
    local lines big
    lines=$(cat "$@" 2>/dev/null | awk '/^COMPUTE/ { print $3, $4 }')
    [ -n "$lines" ] || { echo -; return; }
    big=$(awk '{ print $1 }' <<<"$lines" | sort -g | tail -n1)
    awk -v b="$big" '$1 == b { if (++n > 2) print $2 }' <<<"$lines" | sort -g |
        awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)]; else print "-" }'
}
printf '%-12s %-9s %10s %10s %12s %14s\n' test run "decode us" "set us" "compute us" "host graph us"
for t in "pp$p -p $p -n 0" "tg64 -p 0 -n 64"; do
    read -r name rest <<<"$t"
    read -r -a bargs <<<"$rest"
    for run in native remote; do
        pre="$work/$name-$run"
        if [ $run = native ]; then
            DECODE_TIMER_OUT=$pre LD_PRELOAD=$timer "$tools/llama-bench" -m "$model" -dev "$native" -ngl 99 \
                "${bargs[@]}" -r 5 >/dev/null 2>&1
        else
            DECODE_TIMER_OUT=$pre LD_PRELOAD=$timer GGML_BACKEND_PATH="$build/bin/libggml-virtgpu.so" \
                bash "$root/tests/lib/with-server.sh" "$build" -- "$tools/llama-bench" -m "$model" -dev VirtGPU0 \
                -ngl 99 "${bargs[@]}" -r 5 >/dev/null 2>&1
        fi
        decode_files=$(grep -l '^DECODE' "$pre".* 2>/dev/null || true)
        worker_files=$(grep -L '^DECODE' "$pre".* 2>/dev/null || true)
        [ -n "$decode_files" ] || { echo "decode-times.sh: no decode timed ($name, $run)" >&2; exit 1; }
        # shellcheck disable=SC2086 # lists of files
        printf '%-12s %-9s %10s %10s %12s %14s\n' "$name" "$run" "$(med_field total $decode_files)" \
            "$(med_field set $decode_files)" "$(med_field be_compute $decode_files)" \
            "$( [ $run = remote ] && med_compute $worker_files || echo -)"
    done
done
echo "native compute is asynchronous on a GPU: its decode returns before the GPU is done (llama-bench"
echo "then synchronizes); through VirtGPU0 the compute waits for the host, whose own graph time is the last column"
