#!/usr/bin/env bash
# same-tokens.sh BUILD_DIR [f16|f32|q8_0]
# Generates the tiny llama model, runs greedy generation natively (CPU) and through remoting
# (VirtGPU0 via apir-server), and checks that both produce the same, non-empty token ids.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
type=${2:-f16}
model="$build/tests/e2e/tiny-llama-$type.gguf"
n=${SAME_TOKENS_N:-24}
prompt="Once upon a time, there was a little girl who"

# the model only changes if the generator does
if [ ! -s "$model" ] || [ "$build/bin/make-tiny-llama" -nt "$model" ]; then
    "$build/bin/make-tiny-llama" -o "$model" --type "$type"
fi

native=$("$build/bin/llama-run" -m "$model" -p "$prompt" -n "$n" --ignore-eos --native)
echo "--- native"
echo "$native"

set +e
remote=$(bash "$here/remote.sh" "$build" -- "$build/bin/llama-run" -m "$model" -p "$prompt" -n "$n" \
         --ignore-eos --device VirtGPU0)
rc=$?
set -e
echo "--- remote (VirtGPU0)"
echo "$remote"
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "FAIL: llama-run through remoting exited with $rc"; exit 1; }

ids() { sed -n 's/^ids: *//p' <<<"$1"; }
a=$(ids "$native"); b=$(ids "$remote")
count=$(wc -w <<<"$a")
if [ -z "$a" ] || [ "$count" -ne "$n" ]; then
    echo "FAIL: native run produced $count tokens, expected $n"; exit 1
fi
if [ "$a" != "$b" ]; then
    echo "FAIL: token ids differ"; echo " native: $a"; echo " remote: $b"; exit 1
fi
echo "OK: $count identical token ids"
