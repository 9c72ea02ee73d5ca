#!/usr/bin/env bash
# apir-server as a program: --help/--version, stale socket handling, SIGINT/SIGTERM shutdown
# with clients connected (exit 0, socket removed, clients see the host go).
#   test_server_cli.sh BUILD_DIR PROBE SLOW_LISTEN_SHIM
set -u
build=$(cd "$1" && pwd)
probe=$2
slow_listen=$3
server="$build/bin/apir-server"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; shift; [ $# -gt 0 ] && echo "$@"; failures=$((failures + 1)); }
export VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so"
APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$("$build/bin/ggml-pick-cpu"); export APIR_LLAMA_CPP_GGML_LIBRARY_PATH
export VIRGL_ROUTE_VENUS_TO_APIR=1

wait_sock() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
# waits (bounded) for pid to exit and returns its status
wait_exit() {
    for _ in $(seq 400); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$1" 2>/dev/null && { kill -KILL "$1"; wait "$1"; return 124; }
    wait "$1"
}

help=$("$server" --help)
ok=1
for word in --socket-path --help --version /tmp/.ggml_virtgpu VIRGL_APIR_BACKEND_LIBRARY \
    APIR_LLAMA_CPP_GGML_LIBRARY_PATH APIR_LLAMA_CPP_GGML_LIBRARY_REG VIRGL_ROUTE_VENUS_TO_APIR \
    VIRGL_APIR_LOG_TO_FILE APIR_LLAMA_CPP_LOG_TO_FILE; do
    grep -qF -- "$word" <<<"$help" || { ok=0; echo "help lacks $word"; }
done
[ $ok -eq 1 ] && pass help || fail help "$help"
"$server" --version | grep -q "apir-server" && pass version || fail version
"$server" --bogus >/dev/null 2>&1; [ $? -eq 2 ] && pass bad_option || fail bad_option

# SIGTERM and SIGINT with a guest connected: exit 0, socket removed, the guest sees it
for sig in TERM INT; do
    sock="$tmp/$sig.sock"
    VIRGL_APIR_LOG_TO_FILE="$tmp/$sig.log" "$server" --socket-path "$sock" 2>>"$tmp/$sig.log" &
    pid=$!
    wait_sock "$sock" || fail "start_$sig"
    GGML_VIRTGPU_SOCKET="$sock" "$probe" --hold >"$tmp/$sig.probe" &
    ppid=$!
    for _ in $(seq 100); do grep -q connected "$tmp/$sig.probe" && break; sleep 0.05; done
    kill -"$sig" $pid
    wait_exit $pid; rc=$?
    wait_exit $ppid; prc=$?
    if [ $rc -eq 0 ] && [ ! -e "$sock" ] && [ $prc -eq 0 ] && grep -q "host gone" "$tmp/$sig.probe" &&
        ! grep -qE "LeakSanitizer|ERROR: AddressSanitizer|runtime error:" "$tmp/$sig.log"; then
        pass "shutdown_$sig"
    else
        fail "shutdown_$sig" "server rc=$rc probe rc=$prc; $(cat "$tmp/$sig.probe" "$tmp/$sig.log")"
    fi
done

# a live server's socket is not taken over; a stale one is replaced; a non-socket is kept
sock="$tmp/s.sock"
VIRGL_APIR_LOG_TO_FILE="$tmp/a.log" "$server" --socket-path "$sock" &
a=$!
wait_sock "$sock"
VIRGL_APIR_LOG_TO_FILE="$tmp/b.log" "$server" --socket-path "$sock" 2>/dev/null
brc=$?
if [ $brc -ne 0 ] && grep -q "another server is listening" "$tmp/b.log" &&
    GGML_VIRTGPU_SOCKET="$sock" "$probe" >/dev/null; then
    pass live_socket_kept
else
    fail live_socket_kept "rc=$brc $(cat "$tmp/b.log")"
fi
kill -KILL $a; wait $a 2>/dev/null
[ -S "$sock" ] || fail "stale socket precondition"
VIRGL_APIR_LOG_TO_FILE="$tmp/c.log" "$server" --socket-path "$sock" &
c=$!
wait_sock "$sock"
sleep 0.2
if GGML_VIRTGPU_SOCKET="$sock" "$probe" >/dev/null && grep -q "removing stale socket" "$tmp/c.log"; then
    pass stale_socket_replaced
else
    fail stale_socket_replaced "$(cat "$tmp/c.log")"
fi
kill -TERM $c; wait_exit $c || fail "stop c"
echo data >"$tmp/file"
VIRGL_APIR_LOG_TO_FILE="$tmp/d.log" "$server" --socket-path "$tmp/file" 2>/dev/null
if [ $? -ne 0 ] && [ "$(cat "$tmp/file")" = data ]; then pass non_socket_kept; else fail non_socket_kept; fi

# the socket file appears only once the server listens: a guest that sees it connects at once
# (the shutdown tests above wait for the file the same way); and of servers started on one
# path at the same moment exactly one keeps it, the others say so and exit 1. The shim makes
# each listen() wait 300 ms, so that a socket named before it listens would be met.
# (An ASan build's runtime must come first; the shim is only a listen() in front of libc.)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
ok=1
for round in 1 2 3; do
    sock="$tmp/race$round.sock"
    pids=()
    for i in 1 2 3 4; do
        LD_PRELOAD="$slow_listen" VIRGL_APIR_LOG_TO_FILE="$tmp/race$round.$i.log" \
            "$server" --socket-path "$sock" 2>/dev/null &
        pids+=($!)
    done
    wait_sock "$sock"
    GGML_VIRTGPU_SOCKET="$sock" "$probe" >"$tmp/race$round.probe" || { ok=0; cat "$tmp/race$round.probe"; }
    sleep 1
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
    refused=$(cat "$tmp"/race$round.*.log | grep -c "another server is listening")
    [ $alive -eq 1 ] && [ "$refused" -eq 3 ] || { ok=0; echo "round $round: $alive running, $refused refused"; }
    ls "$tmp" | grep -q "^race$round\.sock\." && { ok=0; echo "round $round: private name left"; }
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait_exit "$p"; done
done
[ $ok -eq 1 ] && pass concurrent_start || fail concurrent_start

# no server at all: the guest fails fast and says what to do
start=$(date +%s%N)
out=$(GGML_VIRTGPU_SOCKET="$tmp/none.sock" "$probe")
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ $rc -eq 1 ] && [ $ms -lt 1000 ] && grep -q "start apir-server" <<<"$out" && grep -q "$tmp/none.sock" <<<"$out"; then
    pass "no_server_fails_fast (${ms} ms)"
else
    fail no_server_fails_fast "rc=$rc ${ms}ms $out"
fi

echo "$failures failure(s)"
[ $failures -eq 0 ]
