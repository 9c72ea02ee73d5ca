#!/usr/bin/env bash
# stats.sh BUILD_DIR
# A short greedy generation through VirtGPU0 with GGML_VIRTGPU_STATS and VIRGL_APIR_STATS set
# (docs/configuration.md), checking that both sides print their counters and that these agree:
# as many graph computes as tokens at least, the same GRAPH_COMPUTE and GRAPH_RECOMPUTE counts
# and the same number of FORWARD commands on the guest and on the host, waits, bytes and host
# compute time above zero, periodic reports on both sides. Presence and consistency, not speed.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
n=16
every=8
model="$build/tests/e2e/tiny-llama-f16.gguf"
# written aside and renamed: e2e_same_tokens, run in parallel by ctest -j, makes the same file
if [ ! -s "$model" ] || [ "$build/bin/make-tiny-llama" -nt "$model" ]; then
    "$build/bin/make-tiny-llama" -o "$model.$$" --type f16 && mv -f "$model.$$" "$model"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apir-stats.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

set +e
# -v: llama-run shows ggml's info lines, where the guest's table goes
GGML_VIRTGPU_STATS=$every VIRGL_APIR_STATS=$every APIR_LLAMA_CPP_LOG_TO_FILE="$tmp/host.log" \
    bash "$here/remote.sh" "$build" -- "$build/bin/llama-run" -m "$model" -p "Once upon a time" -n "$n" \
    --ignore-eos --device VirtGPU0 -v >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
[ $rc -eq 77 ] && { cat "$tmp/err"; exit 77; }
if [ $rc -ne 0 ]; then
    echo "FAIL: llama-run through remoting exited with $rc"; cat "$tmp/out" "$tmp/err"; exit 1
fi
guest=$(sed -n '/ggml-virtgpu: stats, process total:/,/per graph compute:/p' "$tmp/err")
echo "--- guest"; echo "$guest"
echo "--- host"; grep -A40 'stats of context .*, released:' "$tmp/host.log" || true

fail() { echo "FAIL: $*"; exit 1; }
[ -n "$guest" ] || fail "no guest totals (GGML_VIRTGPU_STATS) in llama-run's log"
tokens=$(sed -n 's/^tg_tokens: *//p' "$tmp/out")
[ "${tokens:-0}" -eq "$n" ] || fail "generated ${tokens:-no} tokens, expected $n"

# guest: "N graph computes: S sent (...), R recomputed (...), F recompute refused then sent, ..."
read -r g_graphs g_sent g_re g_fb <<<"$(sed -n \
    's/.*process total: \([0-9]*\) graph computes: \([0-9]*\) sent.*, \([0-9]*\) recomputed.*, \([0-9]*\) recompute refused.*/\1 \2 \3 \4/p' \
    <<<"$guest")"
row() { awk -v name="$1" -v col="$2" '$1 == name { print $col; exit }' <<<"$3"; }
g_gc=$(row GRAPH_COMPUTE 2 "$guest"); g_gr=$(row GRAPH_RECOMPUTE 2 "$guest")
g_calls=$(row total 2 "$guest"); g_waits=$(row total 3 "$guest")
g_sent_b=$(row total 5 "$guest"); g_recv_b=$(row total 6 "$guest")

# host: one "released" report per context that ran a command (the listing's and the run's)
host=$(awk '/stats of context .*, released:/ { on = 1 } on && /^ggml-virtgpu-backend: context/ { on = 0 } on' "$tmp/host.log")
[ -n "$host" ] || fail "no host totals (VIRGL_APIR_STATS) in the backend log"
sum() { awk -v name="$1" -v col="$2" '$1 == name { s += $col } END { print s + 0 }' <<<"$host"; }
h_graphs=$(sed -n 's/.*released: \([0-9]*\) graph computes.*/\1/p' <<<"$host" | awk '{ s += $1 } END { print s + 0 }')
h_gc=$(sum GRAPH_COMPUTE 2); h_gr=$(sum GRAPH_RECOMPUTE 2); h_calls=$(sum total 2)
h_compute_ms=$(sed -n 's/.* compute_ms \([0-9.]*\) .*/\1/p' <<<"$host" | awk '{ s += $1 } END { print s + 0 }')

echo "guest: graphs=$g_graphs sent=$g_sent recomputed=$g_re fallback=$g_fb GRAPH_COMPUTE=$g_gc" \
     "GRAPH_RECOMPUTE=$g_gr commands=$g_calls waits=$g_waits sent_bytes=$g_sent_b recv_bytes=$g_recv_b"
echo "host:  graphs=$h_graphs GRAPH_COMPUTE=$h_gc GRAPH_RECOMPUTE=$h_gr commands=$h_calls compute_ms=$h_compute_ms"

[ "${g_graphs:-0}" -ge "$n" ] || fail "guest counted ${g_graphs:-no} graph computes for $n tokens"
[ "$g_gc" = "$h_gc" ] || fail "GRAPH_COMPUTE: guest sent $g_gc, host ran $h_gc"
[ "$g_gr" = "$h_gr" ] || fail "GRAPH_RECOMPUTE: guest sent $g_gr, host ran $h_gr"
[ $((g_sent + g_fb)) -eq "$g_gc" ] || fail "guest: $g_sent sent + $g_fb refused recomputes != $g_gc GRAPH_COMPUTE"
[ $((g_sent + g_re + g_fb)) -eq "$h_graphs" ] || fail "host ran $h_graphs graph computes, guest asked for $((g_sent + g_re + g_fb))"
[ "$g_calls" = "$h_calls" ] || fail "FORWARD commands: guest sent $g_calls, host ran $h_calls"
[ "${g_waits:-0}" -gt 0 ] && [ "$g_waits" -le "$g_calls" ] || fail "guest waits $g_waits of $g_calls commands"
[ "${g_sent_b:-0}" -gt 0 ] && [ "${g_recv_b:-0}" -gt 0 ] || fail "guest bytes: sent ${g_sent_b:-?}, received ${g_recv_b:-?}"
awk -v v="$h_compute_ms" 'BEGIN { exit !(v > 0) }' || fail "host compute time is $h_compute_ms ms"
# llama.cpp writes its index inputs (token ids, KV slot lists) with BUFFER_SET_INLINE before
# every compute: the host checks them from its write shadow, never reading them back
read -r h_shadow h_read <<<"$(sed -n 's/.*checked before computes: \([0-9]*\) from the write shadow, \([0-9]*\) read.*/\1 \2/p' \
    <<<"$host" | awk '{ s += $1; r += $2 } END { print s + 0, r + 0 }')"
echo "host:  index tensors checked from the write shadow=$h_shadow read from their buffer=$h_read"
[ "$h_shadow" -gt 0 ] && [ "$h_read" -eq 0 ] || fail "index checks: $h_shadow from the write shadow, $h_read read back (want all from the shadow)"
# the periodic reports (every $every graph computes)
grep -q "ggml-virtgpu: stats, graph computes 1 to $every:" "$tmp/err" || fail "no periodic guest report"
grep -q "stats of context [0-9]*, graph computes 1 to $every:" "$tmp/host.log" || fail "no periodic host report"
echo "OK: guest and host counters agree"
