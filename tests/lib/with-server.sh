#!/usr/bin/env bash
# Runs a command against a fresh apir-server:
#   with-server.sh BUILD_DIR -- cmd args...
# Starts BUILD_DIR/bin/apir-server on a new socket in a temp dir (CPU backend, Venus routed,
# log in the temp dir), waits for the socket, runs the command with GGML_VIRTGPU_SOCKET set,
# stops the server with SIGTERM and checks that it exited 0 and removed its socket. Prints
# the server log on failure. Exits with the command's status (or 1 if the server misbehaved).
# Extra server options can be given in APIR_SERVER_ARGS; variables already set by the caller
# are kept (so a test can point one elsewhere), WITH_SERVER_UNSET="VAR ..." removes some from
# the server's environment, APIR_SERVER_LOG tells the command where the log is, and
# APIR_SERVER_PID the listener's pid (its children are the guests' workers).
set -u

if [ $# -lt 3 ] || [ "$2" != "--" ]; then
    echo "usage: $0 BUILD_DIR -- cmd args..." >&2
    exit 2
fi
build=$(cd "$1" && pwd) || exit 2
shift 2

server="$build/bin/apir-server"
[ -x "$server" ] || { echo "with-server: $server not built" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/apir-test.XXXXXX") || exit 2
sock="$tmp/vtest.sock"
log="$tmp/apir.log"

export VIRGL_APIR_BACKEND_LIBRARY="${VIRGL_APIR_BACKEND_LIBRARY-$build/host/libggml-virtgpu-backend.so}"
if [ -z "${APIR_LLAMA_CPP_GGML_LIBRARY_PATH+x}" ]; then
    APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$("$build/bin/ggml-pick-cpu") || { echo "with-server: ggml-pick-cpu failed" >&2; exit 2; }
    export APIR_LLAMA_CPP_GGML_LIBRARY_PATH
fi
export VIRGL_ROUTE_VENUS_TO_APIR="${VIRGL_ROUTE_VENUS_TO_APIR-1}"
export VIRGL_APIR_LOG_TO_FILE="$log"
export APIR_SERVER_LOG="$log"   # for commands that want to inspect it
# the guest's device cache in the temp dir: tests neither read nor leave entries in the user's
export GGML_VIRTGPU_DEVICE_CACHE="${GGML_VIRTGPU_DEVICE_CACHE-$tmp/device-cache}"

# WITH_SERVER_UNSET: names of variables to remove from the server's environment only
# shellcheck disable=SC2086
(
    for v in ${WITH_SERVER_UNSET:-}; do unset "$v"; done
    exec "$server" --socket-path "$sock" ${APIR_SERVER_ARGS:-}
) >>"$log" 2>&1 &
pid=$!

fail() {
    echo "with-server: $*" >&2
    echo "----- apir-server log ($log) -----" >&2
    cat "$log" >&2
    echo "-----" >&2
}

# shellcheck source-path=SCRIPTDIR source=wait-listening.sh
. "$(dirname "${BASH_SOURCE[0]}")/wait-listening.sh"
if ! wait_listening "$sock" "$pid"; then
    fail "apir-server did not create $sock"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -rf "$tmp"
    exit 1
fi

GGML_VIRTGPU_SOCKET="$sock" APIR_SERVER_PID="$pid" "$@"
status=$?

kill -TERM "$pid" 2>/dev/null
server_rc=0
# bounded stop: 20 s, then SIGKILL
for _ in $(seq 1 400); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    fail "apir-server did not stop on SIGTERM"
    server_rc=1
fi
wait "$pid"
rc=$?
if [ "$server_rc" -eq 0 ] && [ "$rc" -ne 0 ]; then
    fail "apir-server exited with $rc"
    server_rc=1
fi
if [ "$server_rc" -eq 0 ] && [ -e "$sock" ]; then
    fail "apir-server left its socket $sock behind"
    server_rc=1
fi
if [ "$server_rc" -eq 0 ] && grep -qE "LeakSanitizer|ERROR: AddressSanitizer|runtime error:" "$log"; then
    fail "sanitizer report in the server log"
    server_rc=1
fi
if [ "$status" -ne 0 ] && [ "$server_rc" -eq 0 ]; then
    fail "command failed with status $status"
fi
rm -rf "$tmp"
if [ "$status" -eq 0 ] && [ "$server_rc" -ne 0 ]; then
    exit 1
fi
exit "$status"
