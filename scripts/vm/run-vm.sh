#!/usr/bin/env bash
# run-vm.sh [BUILD_DIR]
# Boots the test guest in Debian 13's unmodified QEMU with the APIR component inside it (via
# our libvirglrenderer.so.1), runs tests/vm/guest-tests.sh there and prints the serial console.
# Builds (once) the Debian 13 chroot and (each time) the initramfs. Needs root.
#   GGML_VIRTGPU_VM_ACCEL   tcg | kvm | auto (default: kvm only if a probe boot under KVM works)
#   GGML_VIRTGPU_VM_TIMEOUT seconds before QEMU is stopped (default 420)
#   GGML_VIRTGPU_VM_OUT     where serial.log, apir.log and qemu.stderr are kept (default BUILD_DIR/vm)
#   GGML_VIRTGPU_VM_MODE    tests (default) | probe (boot, say GUEST-ALIVE, power off)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
[ "$(id -u)" = 0 ] || { echo "run-vm.sh: needs root (debootstrap, chroot, mount namespaces): run it with sudo" >&2; exit 1; }
for f in interposer/libvirglrenderer.so.1 host/libggml-virtgpu-backend.so bin/ggml-pick-cpu; do
    [ -e "$build/$f" ] || { echo "run-vm.sh: $build/$f is not built: run cmake --build $build" >&2; exit 1; }
done
out=${GGML_VIRTGPU_VM_OUT:-$build/vm}
mkdir -p "$out"
rm -f "$out"/{serial.log,apir.log,qemu.stderr,xvfb.log} # a failed boot must not be judged by an old log
limit=${GGML_VIRTGPU_VM_TIMEOUT:-420}
mode=${GGML_VIRTGPU_VM_MODE:-tests}

root=$(bash "$here/make-chroot.sh")
work=$(mktemp -d "$root/tmp/ggml-vm.XXXXXX")
trap 'cp -f "$work"/{apir.log,qemu.stderr,xvfb.log} "$out/" 2>/dev/null || true; rm -rf "$work"' EXIT
bash "$here/make-initramfs.sh" "$build" "$root" "$work"

boot() { # $1 accel, $2 mode, $3 timeout
    unshare --mount --propagation private bash "$here/vmm.sh" "$root" "$build" "$work" "$1" "$2" "$3"
}

# KVM only where it really works: this kind of machine can have a /dev/kvm that a stock
# guest kernel does not survive, so a short probe boot decides, once per host kernel
accel=${GGML_VIRTGPU_VM_ACCEL:-auto}
if [ "$accel" = auto ]; then
    accel=tcg
    probe="${root%/*}/kvm-probe-$(uname -r)"
    if [ -w /dev/kvm ]; then
        if [ ! -s "$probe" ]; then
            echo "run-vm.sh: probing KVM (one boot, at most 30 s)" >&2
            if boot kvm probe 30 2>/dev/null | grep -q GUEST-ALIVE; then echo kvm > "$probe"; else echo tcg > "$probe"; fi
        fi
        accel=$(cat "$probe")
    fi
fi
echo "run-vm.sh: booting under $accel (timeout ${limit} s); host log: $out/apir.log" >&2
start=$(date +%s.%N)
set +e
boot "$accel" "$mode" "$limit" | tr -d '\r' | tee "$out/serial.log"
rc=${PIPESTATUS[0]}
set -e
echo "run-vm.sh: QEMU exited $rc after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $start}") s" >&2
exit $rc
