#!/usr/bin/env bash
# make-initramfs.sh BUILD_DIR CHROOT OUT_DIR
# Builds the guest: OUT_DIR/vmlinuz (the chroot's Debian kernel) and OUT_DIR/initrd.cpio (an
# uncompressed initramfs: TCG decompresses slowly) holding busybox (static), the kernel's
# virtio-gpu module and its dependencies, the guest library libggml-virtgpu.so, the ggml/llama
# libraries from npm, llama-run, op-consistency, venus-smoke, a tiny llama model, the C library of the
# build machine, and tests/vm's /init and guest test script.
set -euo pipefail
build=$(cd "$1" && pwd); root=$2; out=$3
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

kver=$(ls "$root/usr/lib/modules" | sort -V | tail -1)
[ -n "$kver" ] && [ -f "$root/boot/vmlinuz-$kver" ] || { echo "make-initramfs: no kernel in $root: rebuild the chroot (rm -rf $root)" >&2; exit 1; }
for f in llama-run op-consistency venus-smoke libggml-virtgpu.so make-tiny-llama; do
    [ -e "$build/bin/$f" ] || { echo "make-initramfs: $build/bin/$f is not built: run cmake --build $build" >&2; exit 1; }
done
ggml_lib=$(sed -n 's/^GGML_LIB_DIR:[A-Z]*=//p' "$build/CMakeCache.txt")
[ -d "$ggml_lib" ] || ggml_lib="$build/ggml-v0.5.0/lib"

stage=$(mktemp -d "${TMPDIR:-/tmp}/ggml-vm-initrd.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,opt/ggml,lib/modules,lib64,lib/x86_64-linux-gnu}
cp "$root/usr/bin/busybox" "$stage/bin/busybox"

# the virtio-gpu module and what it needs, dependencies first (modules.dep lists them)
moddir=$root/usr/lib/modules/$kver
declare -A seen=()
order=()
add_module() { # $1: path relative to $moddir
    [ -n "${seen[$1]:-}" ] && return
    seen[$1]=1
    local deps
    deps=$(sed -n "s#^$1: *##p" "$moddir/modules.dep")
    for d in $deps; do add_module "$d"; done
    order+=("$1")
}
add_module "$(grep -o '^kernel/drivers/gpu/drm/virtio/virtio-gpu\.ko[.a-z]*' "$moddir/modules.dep")"
: > "$stage/lib/modules/order"
for m in "${order[@]}"; do
    name=$(basename "$m"); name=${name%.xz}; name=${name%.zst}
    case "$m" in
        *.xz) xz -dc "$moddir/$m" > "$stage/lib/modules/$name" ;;
        *.zst) zstd -qdc "$moddir/$m" > "$stage/lib/modules/$name" ;;
        *) cp "$moddir/$m" "$stage/lib/modules/$name" ;;
    esac
    echo "$name" >> "$stage/lib/modules/order"
done

# the guest's programs and libraries: one folder, so ggml finds its backends next to the
# executables; the C/C++ runtime of the build machine, found with ldd
cp "$build/bin/llama-run" "$build/bin/op-consistency" "$build/bin/venus-smoke" "$build/bin/libggml-virtgpu.so" "$stage/opt/ggml/"
cp -L "$ggml_lib"/libggml-base.so "$ggml_lib"/libggml*.so "$ggml_lib"/libllama*.so "$stage/opt/ggml/" 2>/dev/null || true
for f in "$stage"/opt/ggml/*; do
    ldd "$f" 2>/dev/null | awk '/=> \//{print $3} /^\t\/lib/{print $1}'
done | sort -u | while read -r lib; do
    case "$lib" in "$build"/*|"$ggml_lib"/*) continue ;; esac
    case "$lib" in
        /lib64/*) cp -L "$lib" "$stage/lib64/" ;;
        *) cp -L "$lib" "$stage/lib/x86_64-linux-gnu/" ;;
    esac
done

# the model: small, so that TCG spends its time on the path under test, not on arithmetic
# shellcheck source=../../tests/vm/params.sh
. "$repo/tests/vm/params.sh"
"$build/bin/make-tiny-llama" -o "$stage/opt/model.gguf" $VM_MODEL_ARGS >/dev/null
cp "$repo/tests/vm/params.sh" "$stage/opt/params.sh"
cp "$repo/tests/vm/guest-init.sh" "$stage/init"
cp "$repo/tests/vm/guest-tests.sh" "$stage/opt/guest-tests.sh"
chmod +x "$stage/init" "$stage/opt/guest-tests.sh"

cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
(cd "$stage" && find . | LC_ALL=C sort | "$root/usr/bin/busybox" cpio -o -H newc 2>/dev/null) > "$out/initrd.cpio"
echo "make-initramfs: $out/initrd.cpio ($(du -h "$out/initrd.cpio" | cut -f1)), kernel $kver, modules: ${order[*]##*/}" >&2
