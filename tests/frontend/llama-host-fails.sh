#!/usr/bin/env bash
# llama-host-fails.sh BUILD_DIR [LLAMA_BIN_DIR [RUNS]]
# Host failures under llama.cpp applications (docs/frontend.md, "Device lost"):
# 1. llama-serve (tests/frontend/llama_serve.c: llama-server's request loop on libllama, one
#    slot, a prompt length of its own per request) while apir-server is sent SIGTERM, SIGKILL
#    or SIGSTOP: no abort; requests finished before are the reference's text, the request in
#    flight printed a prefix of its reference text, every later request fails at once.
# 2. With LLAMA_BIN_DIR (llama.cpp v0.5.0's programs):
# llama.cpp's own llama-completion on VirtGPU0 while apir-server is sent SIGTERM, SIGKILL or
# SIGSTOP at a random moment of a seeded-sampling generation.
# Each run must end without a crash (no SIGABRT/SIGSEGV: llama-completion reports the failed
# decode and exits 1), within one GGML_VIRTGPU_TIMEOUT for a stopped host, and the text it
# printed must be a prefix of the text of an uninterrupted run on VirtGPU0 (the reference:
# native generation on this machine's CPU backend build may differ in the last bits, which
# seeded sampling turns into other tokens; the script says whether they agree).
# Also measures: loading with a silent (stopped) host, and what a `-dev none` process costs
# the host. Needs llama-completion in LLAMA_BIN_DIR (built from the llama.cpp v0.5.0 source).
set -u
build=$(cd "$1" && pwd) || exit 2
bin=
[ $# -ge 2 ] && { bin=$(cd "$2" && pwd) || exit 2; }
runs=${3:-4}
completion="$bin/llama-completion"
[ -z "$bin" ] || [ -x "$completion" ] || { echo "no $completion" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apir-llama-fails.XXXXXX") || exit 2
model="$tmp/tiny.gguf"
"$build/bin/make-tiny-llama" -o "$model" --type f16 --embd 256 --layers 2 --ff 512 >/dev/null || exit 2
sock="$tmp/sock"
export VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so"
APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$("$build/bin/ggml-pick-cpu") || exit 2
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH VIRGL_ROUTE_VENUS_TO_APIR=1 VIRGL_APIR_LOG_TO_FILE="$tmp/apir.log"
export GGML_BACKEND_PATH="$build/bin/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$sock"
export GGML_VIRTGPU_TIMEOUT=${GGML_VIRTGPU_TIMEOUT:-10}
export GGML_VIRTGPU_DEVICE_CACHE="$tmp/device-cache" # not the user's
n=${LLAMA_FAILS_TOKENS:-48}
args=(-m "$model" -p "Once upon a time" -n "$n" --seed 42 --temp 0.8 -no-cnv --no-warmup)

log="$tmp/apir.log"
# shellcheck source-path=SCRIPTDIR source=../lib/host-control.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/host-control.sh"
cleanup() { host_stop; rm -rf "$tmp"; }
trap cleanup EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; } # seconds since $1

fail=0

# --- 1. llama-serve: requests in flight, and the ones after
serve=("$build/bin/llama-serve" -m "$model" -r 5 -n 12)
host_start || exit 1
t0=$(now)
"${serve[@]}" >"$tmp/serve-ref.out" 2>"$tmp/serve-ref.err" || { echo "llama-serve reference failed"; cat "$tmp/serve-ref.err"; exit 1; }

serve_s=$(since "$t0")
host_stop
grep -c '\[ok' "$tmp/serve-ref.out" | grep -qx 5 || { echo "reference requests failed"; cat "$tmp/serve-ref.out"; exit 1; }
echo "llama-serve reference: 5 requests in ${serve_s}s"
for sig in TERM KILL STOP; do
    host_start || exit 1
    # emptied here, not by the child's redirection: the wait below could otherwise still find
    # the previous run's "ready" and signal the host while this one is loading
    rm -f "$tmp/serve.out" "$tmp/serve.err"
    "${serve[@]}" >"$tmp/serve.out" 2>"$tmp/serve.err" &
    cpid=$!
    for _ in $(seq 1 600); do grep -qs ready "$tmp/serve.err" && break; sleep 0.05; done
    delay=$(awk -v s="$serve_s" -v r="$RANDOM" 'BEGIN {printf "%.2f", (s * 0.7) * r / 32768}')
    sleep "$delay"
    host_signal "$sig"
    wait "$cpid"; rc=$?
    verdict=$(awk -v ref="$tmp/serve-ref.out" '
        BEGIN { while ((getline l < ref) > 0) { split(l, p, " \\[ok"); want[++n] = p[1] } }
        { i++; line = $0 }
        /\[ok / { split(line, p, " \\[ok"); if (p[1] != want[i] || failed) bad = bad " ok-but-different:" i; next }
        /\[error / { split(line, p, " \\[error"); text = p[1]
                     if (substr(want[i], 1, length(text)) != text) bad = bad " not-a-prefix:" i
                     if (failed && line !~ / after 0\.0[0-9]* s\]$/) bad = bad " slow-failure:" i
                     failed = 1; nerr++ ; next }
        { bad = bad " garbled:" i }
        END { if (i != n) bad = bad " requests:" i "/" n; print (bad == "" ? "ok" : bad), nerr + 0 }' "$tmp/serve.out")
    echo "llama-serve, SIG$sig at ${delay}s after ready: exit $rc, $(grep -c '\[ok' "$tmp/serve.out") requests ok, then ${verdict#* } failed; check: ${verdict% *}"
    if [ $rc -ne 0 ] || [ "${verdict% *}" != ok ]; then
        echo "FAIL"; cat "$tmp/serve.out"; grep -v '^ggml-virtgpu: BUFFER_FREE' "$tmp/serve.err" | tail -5; fail=1
    fi
    host_stop
done
[ -n "$bin" ] || exit $fail

# --- 2. llama.cpp's llama-completion
host_start || exit 1
t0=$(now)
"$completion" "${args[@]}" -dev VirtGPU0 -ngl 99 >"$tmp/ref.out" 2>"$tmp/ref.err" || { echo "reference run failed"; tail "$tmp/ref.err"; exit 1; }
ref_s=$(since "$t0")
"$completion" "${args[@]}" -dev none >"$tmp/native.out" 2>/dev/null
cmp -s "$tmp/ref.out" "$tmp/native.out" && same=yes || same="no (other CPU backend build)"
echo "reference: $n tokens on VirtGPU0 in ${ref_s}s; same text as native: $same"

# What a process that never uses VirtGPU0 costs the host: connections (a worker forked for
# each), contexts it opened and how long it held them. The reference run above has written
# the device cache for this server, so the answer must be none at all. llama-completion built without GGML_BACKEND_DL loads no backend library with
# `-dev none` (its CPU backend is built in), so the processes measured are ones that do load
# it: `llama-completion --list-devices`, and this project's llama-run --native (linked to the
# release bundle's libllama, a GGML_BACKEND_DL build: llama_backend_init loads every backend).
host_cost() {
    : >"$tmp/apir.log"
    "$@" >/dev/null 2>&1
    local created destroyed held conns
    conns=$(grep -c 'connected (uid' "$tmp/apir.log")
    created=$(grep -c 'created (capset' "$tmp/apir.log"); destroyed=$(grep -c 'destroyed' "$tmp/apir.log")
    held=$(awk -F'[][]' '/created \(capset/ {c=$2} /destroyed/ {d=$2} END {if (c) printf "%.0f", (d-c)*1000}' "$tmp/apir.log")
    echo "$conns connection(s), $created host context(s) opened, $destroyed given back before exit, held ${held:-0} ms"
    [ "$created" = "$destroyed" ] || { echo "FAIL: the process kept a host context"; fail=1; }
    [ "$conns" = 0 ] || { echo "FAIL: with a warm device cache the process connected"; fail=1; }
}
# (host_cost runs in a subshell: its FAIL lines are what fails the test)
out=$(host_cost "$completion" --list-devices)
echo "llama-completion --list-devices: $out"
case $out in *FAIL*) fail=1 ;; esac
out=$(host_cost "$build/bin/llama-run" -m "$model" -p "Once upon a time" -n 4 --native)
echo "llama-run --native: $out"
case $out in *FAIL*) fail=1 ;; esac
host_stop

for sig in TERM KILL STOP; do
    for r in $(seq 1 "$runs"); do
        host_start || exit 1
        "$completion" "${args[@]}" -dev VirtGPU0 -ngl 99 >"$tmp/run.out" 2>"$tmp/run.err" &
        cpid=$!
        # a moment within the generation (the reference run's duration)
        delay=$(awk -v s="$ref_s" -v r="$RANDOM" 'BEGIN {printf "%.2f", 0.3 + (s * 0.8) * r / 32768}')
        sleep "$delay"
        host_signal "$sig"; ts=$(now)
        wait "$cpid"; rc=$?
        dt=$(since "$ts")
        printed=$(stat -c %s "$tmp/run.out")
        prefix=no; [ "$(head -c "$printed" "$tmp/ref.out" | cmp -s - "$tmp/run.out" && echo y)" = y ] && prefix=yes
        echo "SIG$sig at ${delay}s: exit $rc after ${dt}s, printed $printed bytes, prefix of reference: $prefix"
        if [ $rc -gt 128 ]; then echo "FAIL: llama-completion died of signal $((rc - 128))"; fail=1; fi
        [ $prefix = yes ] || { echo "FAIL: printed text is not a prefix of the reference"; fail=1; }
        # llama.cpp's logger writes from a thread and may drop the last lines of a process that
        # exits at once, so a missing line is reported, not failed
        lost=$(grep -c 'VirtGPU device lost' "$tmp/run.err")
        [ "$rc" -eq 0 ] || [ "$lost" -eq 1 ] || echo "  (device-lost lines in the log: $lost, log $(stat -c %s "$tmp/run.err") bytes)"
        [ "$lost" -le 1 ] || { echo "FAIL: the loss was logged $lost times"; fail=1; }
        [ $fail = 0 ] || { grep -v '^0\.00' "$tmp/run.err" | tail -20; }
        host_stop
    done
done

# loading with a silent host: the server is stopped before the process starts
timed() { local t0; t0=$(now); "$@" >/dev/null 2>>"$tmp/silent.err"; since "$t0"; }
host_start || exit 1
host_signal STOP
a=$(timed "$completion" --list-devices)
a0=$(GGML_VIRTGPU_SOCKET=/nonexistent timed "$completion" --list-devices)
b=$(timed "$build/bin/llama-run" -m "$model" -p "Once upon a time" -n 4 --native)
b0=$(GGML_VIRTGPU_SOCKET=/nonexistent timed "$build/bin/llama-run" -m "$model" -p "Once upon a time" -n 4 --native)
echo "stopped host: llama-completion --list-devices ${a}s (${a0}s with no host at all), llama-run --native ${b}s (${b0}s)"
# the same with the device cache warm: the stopped host is not asked at all
host_signal CONT
"$completion" --list-devices >/dev/null 2>&1
host_signal STOP
aw=$(timed "$completion" --list-devices)
bw=$(timed "$build/bin/llama-run" -m "$model" -p "Once upon a time" -n 4 --native)
echo "stopped host, warm device cache: llama-completion --list-devices ${aw}s, llama-run --native ${bw}s"
grep -o 'no VirtGPU device: .*' "$tmp/silent.err" | head -1
over=$(awk -v a="$a" -v b="$a0" 'BEGIN {print (a - b > 1.0) ? 1 : 0}')
[ "$over" = 0 ] || { echo "FAIL: a silent host made loading take more than its bound"; fail=1; }
host_stop
exit $fail
