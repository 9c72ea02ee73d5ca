#!/bin/sh
# check_exports.sh LIB LIST: the interposer exports exactly the virgl_renderer_* functions QEMU
# 10's GL module imports (LIST, taken from Debian 13's hw-display-virtio-gpu-gl.so with
# nm -D --undefined-only): one missing and QEMU cannot load it; one more (a component symbol
# leaking out) could clash with QEMU's own.
set -eu
lib=$1 list=$2
got=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWi]$/ {print $3}' | sort)
if [ "$got" != "$(sort "$list")" ]; then
    echo "FAIL: $lib exports differ from $list:"
    printf '%s\n' "$got" | diff - "$list" || true
    exit 1
fi
echo "ok: $(printf '%s\n' "$got" | wc -l) functions, exactly QEMU 10's virglrenderer imports"
