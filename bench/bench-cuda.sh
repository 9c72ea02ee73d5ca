#!/usr/bin/env bash
# bench-cuda.sh DIR CUDA_LIB [MODEL_ARGS...]
# On a CUDA host: native CUDA0 against VirtGPU0 (apir-server running the same libggml-cuda.so)
# in one run. DIR is what pack-portable.sh wrote; CUDA_LIB is libggml-cuda.so of the same
# release (npm @node-llama-cpp/linux-x64-cuda@3.22.1). Prints llama generation speeds and the
# ratio, and bench-ops per-op times and ratios.
set -euo pipefail
dir=$(cd "$1" && pwd); cuda=$(readlink -f "$2"); shift 2
export LD_LIBRARY_PATH="$dir/g${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
work=$(mktemp -d); trap 'kill "$srv" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
model="$work/model.gguf"
margs=("$@"); [ ${#margs[@]} -gt 0 ] || margs=(--type f16 --embd 2048 --layers 16 --ff 5632 --heads 32 --heads-kv 4)
"$dir/g/make-tiny-llama" -o "$model" "${margs[@]}"
prompt="Once upon a time, there was a little girl who lived in a small house near the city. She had a dog and a cat, and every day after school she would"
n=${BENCH_N:-128}

VIRGL_APIR_BACKEND_LIBRARY="$dir/h/libggml-virtgpu-backend.so" APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$cuda" \
VIRGL_ROUTE_VENUS_TO_APIR=1 VIRGL_APIR_LOG_TO_FILE="$work/server.log" APIR_LLAMA_CPP_LOG_TO_FILE="$work/backend.log" \
    "$dir/h/apir-server" --socket-path "$work/s" &
srv=$!
for _ in $(seq 100); do [ -S "$work/s" ] && break; sleep 0.1; done

run() { "$dir/g/llama-run" -m "$model" -p "$prompt" -n "$n" --ignore-eos "$@"; }
echo "== native CUDA0";   nat=$(GGML_BACKEND_PATH="$cuda" run --device CUDA0); echo "$nat" | grep -E 'tok_s|device'
echo "== remote VirtGPU0"; rem=$(GGML_VIRTGPU_SOCKET="$work/s" run --device VirtGPU0 --count-nodes) || { cat "$work"/*.log; exit 1; }
echo "$rem" | grep -E 'tok_s|device|nodes'
ids() { sed -n 's/^ids: *//p' <<<"$1"; }
[ "$(ids "$nat")" = "$(ids "$rem")" ] && echo "same token ids: yes" || echo "same token ids: NO"
for k in pp_tok_s tg_tok_s; do
    a=$(sed -n "s/^$k: *//p" <<<"$nat"); b=$(sed -n "s/^$k: *//p" <<<"$rem")
    awk -v k="$k" -v a="$a" -v b="$b" 'BEGIN { printf "%-10s native %10.2f  remote %10.2f  ratio %.2fx\n", k, a, b, b / a }'
done
echo "== bench-ops (native CUDA0 vs VirtGPU0)"
GGML_BACKEND_PATH="$cuda" GGML_VIRTGPU_SOCKET="$work/s" "$dir/g/bench-ops" --native CUDA0 --device VirtGPU0
