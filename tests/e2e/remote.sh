#!/usr/bin/env bash
# remote.sh BUILD_DIR -- CMD [ARGS...]
# Runs CMD through tests/lib/with-server.sh (apir-server on a temporary socket, CPU backend on
# the host side, GGML_VIRTGPU_SOCKET set for CMD). Exits 77 (CTest "skipped") when a part it
# needs is not built, naming it.
set -euo pipefail
build=$1; shift
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
with_server="$here/../lib/with-server.sh"
missing=()
for f in "$with_server" "$build/bin/apir-server" "$build/bin/libggml-virtgpu.so" \
         "$build/host/libggml-virtgpu-backend.so"; do
    [ -e "$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "skipped: not built yet: ${missing[*]}" >&2
    exit 77
fi
exec bash "$with_server" "$build" -- "$@"
