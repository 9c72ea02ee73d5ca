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
sock="$tmp/sock" log="$tmp/apir.log"
# shellcheck source-path=SCRIPTDIR source=../lib/host-control.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/host-control.sh"
cleanup() { host_stop; rm -rf "$tmp"; }
trap cleanup EXIT
host_start || exit 1
GGML_VIRTGPU_SOCKET="$sock" "$build/bin/test-vgpu-host-dies" "$mode" "$build/bin/libggml-virtgpu.so" "$host_pid"
rc=$?
[ $rc -eq 0 ] || { echo "----- apir-server log -----"; cat "$tmp/apir.log"; }
exit $rc
