#!/usr/bin/env bash
# bench-llm.sh [BUILD_DIR] [MODEL]
# Runs llama-run natively (CPU) and through remoting (VirtGPU0) on the same model and prints
# prompt-processing and generation speeds and the ratio remote/native.
# If GGML_VIRTGPU_SOCKET is set, the apir-server already listening there is used; otherwise one
# is started for the remote run with tests/lib/with-server.sh.
# Environment: BENCH_N (tokens to generate, default 128), BENCH_PROMPT, BENCH_THREADS,
#              BENCH_REPEAT (runs of each, alternating; the best speed of each is kept; default 3).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
model=${2:-$build/tiny-llama-bench.gguf}
n=${BENCH_N:-128}
repeat=${BENCH_REPEAT:-3}
prompt=${BENCH_PROMPT:-"Once upon a time, there was a little girl who lived in a small house near the city. She had a dog and a cat, and every day after school she would"}
threads=(); [ -n "${BENCH_THREADS:-}" ] && threads=(-t "$BENCH_THREADS")

if [ ! -s "$model" ]; then
    # about 54 MB of f16 weights: big enough that compute dominates per-call overhead
    "$build/bin/make-tiny-llama" -o "$model" --type f16 --embd 768 --layers 4 --ff 2048 \
        --heads 12 --heads-kv 4 >&2
fi
run=("$build/bin/llama-run" -m "$model" -p "$prompt" -n "$n" --ignore-eos "${threads[@]}")

remote_run() {
    if [ -n "${GGML_VIRTGPU_SOCKET:-}" ]; then
        "${run[@]}" --device VirtGPU0
    else
        bash "$root/tests/lib/with-server.sh" "$build" -- "${run[@]}" --device VirtGPU0
    fi
}
# keep the run with the best generation speed: other load on the machine only slows runs down
best() { # $1 previous output, $2 new output
    local a b
    a=$(sed -n 's/^tg_tok_s: *//p' <<<"$1"); b=$(sed -n 's/^tg_tok_s: *//p' <<<"$2")
    if [ -z "$1" ] || awk -v a="$a" -v b="$b" 'BEGIN { exit !(b > a) }'; then echo "$2"; else echo "$1"; fi
}
native=; remote=
for _ in $(seq 1 "$repeat"); do
    native=$(best "$native" "$("${run[@]}" --native)")
    remote=$(best "$remote" "$(remote_run)")
done

get() { sed -n "s/^$1: *//p" <<<"$2"; }
printf '%-22s %12s %12s %8s\n' "llama ($(basename "$model"))" native "remote" ratio
for k in pp_tok_s tg_tok_s; do
    a=$(get $k "$native"); b=$(get $k "$remote")
    label=$([ $k = pp_tok_s ] && echo "prompt tok/s" || echo "generation tok/s")
    printf '%-22s %12s %12s %7sx\n' "$label" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')"
done
echo "ratio = remote speed / native speed (1.00x = native speed)"
if [ "$(get ids "$native")" = "$(get ids "$remote")" ]; then
    echo "generated token ids: identical ($(get tg_tokens "$native") tokens)"
else
    echo "generated token ids: DIFFERENT"; exit 1
fi
