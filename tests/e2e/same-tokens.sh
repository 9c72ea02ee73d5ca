#!/usr/bin/env bash
# same-tokens.sh BUILD_DIR [f16|f32|q8_0] [--count-nodes]
# Generates the tiny llama model, runs greedy generation natively (CPU) and through remoting
# (VirtGPU0 via apir-server), and checks that both produce the same, non-empty token ids.
# --count-nodes: also check that most graph nodes of the remote run were computed in
# VirtGPU0's buffers (the work really was offloaded, not silently run on the guest's CPU).
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
type=${2:-f16}
count=(); [ "${3:-}" = "--count-nodes" ] && count=(--count-nodes)
model="$build/tests/e2e/tiny-llama-$type.gguf"
n=${SAME_TOKENS_N:-24}
prompt="Once upon a time, there was a little girl who"

# the model only changes if the generator does
# (written aside and renamed: e2e_stats, run in parallel by ctest -j, makes the same file)
if [ ! -s "$model" ] || [ "$build/bin/make-tiny-llama" -nt "$model" ]; then
    "$build/bin/make-tiny-llama" -o "$model.$$" --type "$type" && mv -f "$model.$$" "$model"
fi

native=$("$build/bin/llama-run" -m "$model" -p "$prompt" -n "$n" --ignore-eos --native "${count[@]}")
echo "--- native"
echo "$native"

set +e
remote=$(bash "$here/remote.sh" "$build" -- "$build/bin/llama-run" -m "$model" -p "$prompt" -n "$n" \
         --ignore-eos --device VirtGPU0 "${count[@]}")
rc=$?
set -e
echo "--- remote (VirtGPU0)"
echo "$remote"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "FAIL: llama-run through remoting exited with $rc"; exit 1; }

ids() { sed -n 's/^ids: *//p' <<<"$1"; }
a=$(ids "$native"); b=$(ids "$remote")
ntok=$(wc -w <<<"$a")
if [ -z "$a" ] || [ "$ntok" -ne "$n" ]; then
    echo "FAIL: native run produced $ntok tokens, expected $n"; exit 1
fi
if [ "$a" != "$b" ]; then
    echo "FAIL: token ids differ"; echo " native: $a"; echo " remote: $b"; exit 1
fi
if [ ${#count[@]} -gt 0 ]; then
    nodes=$(sed -n 's/^nodes_on_device: *//p' <<<"$remote")
    on=${nodes%/*}; total=${nodes#*/}
    if [ -z "$nodes" ] || [ $((on * 2)) -le "$total" ]; then
        echo "FAIL: only ${nodes:-?} graph nodes ran on VirtGPU0"; exit 1
    fi
    echo "OK: $nodes graph nodes ran on VirtGPU0"
fi
echo "OK: $ntok identical token ids"
