#!/usr/bin/env bash
# host-dies.sh BUILD_DIR MODE: starts apir-server, runs test-vgpu-host-dies MODE against it;
# the test kills or stops the server (so this does not use with-server.sh, which expects a
# clean stop). The server is continued and killed at the end whatever happened.
set -u
build=$(cd "$1" && pwd) || exit 2
mode=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apir-dies.XXXXXX") || exit 2
export VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so"
APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$("$build/bin/ggml-pick-cpu") || exit 2
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH VIRGL_ROUTE_VENUS_TO_APIR=1 VIRGL_APIR_LOG_TO_FILE="$tmp/apir.log"
export APIR_SERVER_LOG="$tmp/apir.log"
export GGML_VIRTGPU_DEVICE_CACHE="$tmp/device-cache" # not the user's
"$build/bin/apir-server" --socket-path "$tmp/sock" >>"$tmp/apir.log" 2>&1 &
pid=$!
cleanup() {
    kill -CONT $pid 2>/dev/null
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 1 200); do [ -S "$tmp/sock" ] && break; sleep 0.05; done
[ -S "$tmp/sock" ] || { echo "apir-server did not start"; cat "$tmp/apir.log"; exit 1; }
GGML_VIRTGPU_SOCKET="$tmp/sock" "$build/bin/test-vgpu-host-dies" "$mode" "$build/bin/libggml-virtgpu.so" "$pid"
rc=$?
[ $rc -eq 0 ] || { echo "----- apir-server log -----"; cat "$tmp/apir.log"; }
exit $rc
