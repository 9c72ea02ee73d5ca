#!/bin/sh
# An unmodified llama.cpp program over the emulated virtio-gpu render node: greedy generation
# with the tiny llama model natively and on VirtGPU0 (APIR capset, no socket), which must give
# the same token ids with most graph nodes computed on the device, and the emulation must have
# seen the context.
# usage: llama_same_tokens.sh MAKE_TINY_LLAMA LLAMA_RUN MODEL SHIM PRELOAD_FIRST PICK_CPU BACKEND_LIB
set -eu
make_model=$1 run=$2 model=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
n=4
prompt="Once upon a time"
if [ ! -s "$model" ] || [ "$make_model" -nt "$model" ]; then
    "$make_model" -o "$model" --type f16 >/dev/null
fi
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT

native=$("$run" -m "$model" -p "$prompt" -n $n --ignore-eos --native)
remote=$(env -u GGML_VIRTGPU_SOCKET -u VTEST_SOCKET_NAME GGML_REMOTING_USE_APIR_CAPSET=1 \
         VIRTGPU_EMU_STATS="$stats" "$here/run_emu_test.sh" "$@" \
         "$run" -m "$model" -p "$prompt" -n $n --ignore-eos --device VirtGPU0 --count-nodes)
a=$(echo "$native" | sed -n 's/^ids: *//p')
b=$(echo "$remote" | sed -n 's/^ids: *//p')
nodes=$(echo "$remote" | sed -n 's/^nodes_on_device: *//p')
echo "native: $a"
echo "remote: $b (nodes on VirtGPU0: $nodes)"
fail=0
[ -n "$a" ] && [ "$a" = "$b" ] || { echo "FAIL: token ids differ or are empty"; fail=1; }
on=${nodes%/*} total=${nodes#*/}
[ -n "$nodes" ] && [ $((on * 2)) -gt "$total" ] || { echo "FAIL: too few nodes on VirtGPU0"; fail=1; }
# two contexts: the device listing at load (given back at once), then the lazy connection
grep -q '^CONTEXT_INIT 2$' "$stats" || { echo "FAIL: the emulated render node was not used"; cat "$stats"; fail=1; }
exit $fail
