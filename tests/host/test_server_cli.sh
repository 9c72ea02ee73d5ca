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

# shellcheck source-path=SCRIPTDIR source=../lib/wait-listening.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/wait-listening.sh"
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
    wait_listening "$sock" "$pid" || fail "start_$sig"
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
wait_listening "$sock" "$a"
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
wait_listening "$sock" "$c"
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

# The socket file exists from the server's bind, a moment before its listen (CI once met that
# moment: "Connection refused" right after the file appeared). The shim makes listen() wait
# 300 ms; the scripts' wait (tests/lib/wait-listening.sh) must still hand over only a socket
# that accepts. (An ASan build's runtime must come first; the shim is a listen() before libc's.)
sock="$tmp/slow.sock"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" LD_PRELOAD="$slow_listen" \
    VIRGL_APIR_LOG_TO_FILE="$tmp/slow.log" "$server" --socket-path "$sock" 2>/dev/null &
s=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.01; done
socket_listening "$sock"; early=$?
if [ -S "$sock" ] && [ $early -ne 0 ] && wait_listening "$sock" "$s" &&
    GGML_VIRTGPU_SOCKET="$sock" "$probe" >"$tmp/slow.probe"; then
    pass wait_until_listening
else
    fail wait_until_listening "file: $([ -S "$sock" ] && echo yes || echo no), listening before listen(): \
$([ $early -eq 0 ] && echo yes || echo no); $(cat "$tmp/slow.probe" 2>/dev/null)"
fi
kill -TERM $s; wait_exit $s || fail "stop slow"

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
