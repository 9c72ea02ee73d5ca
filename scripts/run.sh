#!/usr/bin/env bash
# The main command (Debian 12, from a fresh clone):
#   1. installs the build dependencies (scripts/install-deps.sh),
#   2. configures and builds everything into build/,
#   3. generates two small llama models with random weights (tools/make-tiny-llama): a dense
#      one and a mixture-of-experts one (8 experts, 2 used per token),
#   4. starts apir-server in the background on this host's CPU backend,
#   5. runs the same greedy generation natively and through remoting (VirtGPU0), on each model,
#   6. prints the generated tokens, both speeds and the ratio, and stops the server.
# It fails when native and remote tokens differ on either model.
# Options: --ops       also run bench-ops (per-op timings, native vs remoting)
#          --no-build  skip steps 1 and 2 (use what is already built in BUILD_DIR)
# Environment: BUILD_DIR (default build), RUN_N (tokens to generate, default 64),
#              RUN_PROMPT, RUN_MODEL (use this GGUF instead of the generated dense one),
#              RUN_MOE_MODEL (instead of the generated MoE one; RUN_MOE_MODEL=none skips it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
n=${RUN_N:-64}
prompt=${RUN_PROMPT:-"Once upon a time, there was a little girl who lived in a small house near the city."}
with_ops=0
do_build=1
for a in "$@"; do
    case "$a" in
    --ops) with_ops=1 ;;
    --no-build) do_build=0 ;;
    *) echo "usage: scripts/run.sh [--ops] [--no-build]" >&2; exit 2 ;;
    esac
done

step() { printf '\n==> %s\n' "$*"; }

if [ $do_build = 1 ]; then
    step "installing dependencies"
    bash scripts/install-deps.sh

    step "configuring and building ($build)"
    cmake -S . -B "$build" >/dev/null
    cmake --build "$build" -j2
fi
build=$(cd "$build" && pwd)

model=${RUN_MODEL:-$build/tiny-llama.gguf}
if [ ! -s "$model" ]; then
    step "generating $model"
    "$build/bin/make-tiny-llama" -o "$model" --type f16 --embd 768 --layers 4 --ff 2048 \
        --heads 12 --heads-kv 4
fi
moe_model=${RUN_MOE_MODEL:-$build/tiny-llama-moe.gguf}
if [ "$moe_model" != none ] && [ ! -s "$moe_model" ]; then
    step "generating $moe_model"
    "$build/bin/make-tiny-llama" -o "$moe_model" --type f16 --embd 512 --layers 2 --ff 1024 \
        --heads 8 --heads-kv 4 --experts 8 --experts-used 2
fi

step "starting apir-server (host side, CPU backend)"
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/ggml-virtgpu-run.XXXXXX")
sock="$run_dir/vtest.sock"
log="$run_dir/apir-server.log"
export VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so"
APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$("$build/bin/ggml-pick-cpu")
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH
export VIRGL_ROUTE_VENUS_TO_APIR=1 # the guest uses the Venus capset unless GGML_REMOTING_USE_APIR_CAPSET is set
echo "VIRGL_APIR_BACKEND_LIBRARY=$VIRGL_APIR_BACKEND_LIBRARY"
echo "APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$APIR_LLAMA_CPP_GGML_LIBRARY_PATH"
"$build/bin/apir-server" --socket-path "$sock" >"$log" 2>&1 &
server_pid=$!

stop_server() {
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$server_pid" 2>/dev/null; then
            echo "apir-server did not stop on SIGTERM; killing it" >&2
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
    fi
    wait "$server_pid" 2>/dev/null || true
}
# shellcheck disable=SC2317 # called from the ERR trap
failed() {
    echo "----- apir-server log ($log) -----" >&2
    cat "$log" >&2 || true
}
trap 'stop_server; rm -rf "$run_dir"' EXIT
trap 'failed' ERR

# shellcheck source-path=SCRIPTDIR source=../tests/lib/wait-listening.sh
. "$root/tests/lib/wait-listening.sh"
if ! wait_listening "$sock" "$server_pid"; then
    echo "apir-server did not start" >&2
    exit 1
fi
echo "apir-server listening on $sock (pid $server_pid)"

get() { sed -n "s/^$1: *//p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }'; }

status=0
# run_model LABEL MODEL: the same greedy generation natively and through VirtGPU0, speeds,
# ratio, and whether the tokens are identical (status=1 when they are not)
run_model() {
    local label=$1 m=$2 native remote
    local run=("$build/bin/llama-run" -m "$m" -p "$prompt" -n "$n" --ignore-eos)

    step "$label: native run (CPU)"
    native=$("${run[@]}" --native)
    echo "$native"

    step "$label: remote run (VirtGPU0 through apir-server)"
    if ! remote=$(GGML_VIRTGPU_SOCKET="$sock" "${run[@]}" --device VirtGPU0); then
        echo "$remote"
        echo "----- apir-server log (last 20 lines) -----" >&2
        tail -n 20 "$log" >&2 || true
        echo "FAILED: $label: the remote run failed (llama-run's errors and the server log are above)" >&2
        status=1
        return 0
    fi
    echo "$remote"

    step "$label: summary ($(basename "$m"), $n tokens, greedy)"
    printf '%-18s %12s %12s %8s\n' "" native remote ratio
    local k a b lbl
    for k in pp_tok_s tg_tok_s; do
        a=$(get $k "$native"); b=$(get $k "$remote")
        lbl=$([ $k = pp_tok_s ] && echo "prompt tok/s" || echo "generation tok/s")
        printf '%-18s %12s %12s %7sx\n' "$lbl" "$a" "$b" "$(ratio "$a" "$b")"
    done
    echo "ratio = remote speed / native speed (1.00x = native speed)"
    echo "generated ids: $(get ids "$native")"
    echo "generated text: $(get text "$native")"
    if [ -n "$(get ids "$native")" ] && [ "$(get ids "$native")" = "$(get ids "$remote")" ]; then
        echo "$label: native and remote generated the same tokens"
    else
        echo "MISMATCH: $label: native and remote generated different tokens" >&2
        status=1
    fi
}

run_model "dense model" "$model"
if [ "$moe_model" != none ]; then
    run_model "MoE model" "$moe_model"
fi

if [ $with_ops = 1 ]; then
    step "bench-ops (native vs VirtGPU0)"
    GGML_VIRTGPU_SOCKET="$sock" "$build/bin/bench-ops" 2>/dev/null
fi

step "stopping apir-server"
trap - ERR
stop_server
echo "done"
exit $status
