#!/usr/bin/env bash
# vmm.sh CHROOT BUILD_DIR WORK ACCEL MODE TIMEOUT_S
# Runs inside a private mount namespace (run-vm.sh starts it with unshare), so every mount
# made here goes away with it. Mounts /proc, /sys, /dev and the build tree (at the same path)
# into the Debian 13 chroot, starts Xvfb there, and boots the guest with the chroot's
# unmodified QEMU; QEMU finds our libvirglrenderer.so.1 through LD_LIBRARY_PATH. The serial
# console goes to stdout. WORK is a folder inside the chroot.
set -euo pipefail
root=$1 build=$2 work=$3 accel=$4 mode=$5 limit=$6
repo=$(cd "$(dirname "$0")/../.." && pwd)
in_root=${work#"$root"}

mount --make-rprivate /
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
for d in "$repo" "$build"; do
    mkdir -p "$root$d"
    mount --bind "$d" "$root$d"
done

xvfb_pid=
stop_xvfb() { [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null && wait "$xvfb_pid" 2>/dev/null; true; }
trap stop_xvfb EXIT
# -displayfd: Xvfb picks a free display itself and writes its number once it accepts clients
chroot "$root" /usr/bin/Xvfb -displayfd 3 -nolisten tcp -screen 0 1024x768x24 3>"$work/display" \
    >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.1; done
[ -s "$work/display" ] || { echo "vmm.sh: Xvfb did not start:" >&2; cat "$work/xvfb.log" >&2; exit 1; }
display=$(tr -d '\n' < "$work/display")

cpu=max; [ "$accel" = kvm ] && cpu=host
cpu_lib=$("$build/bin/ggml-pick-cpu")
set +e
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp DISPLAY=":$display" \
    LD_LIBRARY_PATH="$build/interposer" \
    VIRGL_ROUTE_VENUS_TO_APIR=1 \
    VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so" \
    APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$cpu_lib" \
    ${APIR_LLAMA_CPP_GGML_LIBRARY_REG:+APIR_LLAMA_CPP_GGML_LIBRARY_REG="$APIR_LLAMA_CPP_GGML_LIBRARY_REG"} \
    VIRGL_APIR_LOG_TO_FILE="$in_root/apir.log" \
    timeout -k 10 "$limit" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -m "${GGML_VIRTGPU_VM_MEM:-2G}" \
        -smp "${GGML_VIRTGPU_VM_SMP:-1}" -vga none -nodefaults \
        -kernel "$in_root/vmlinuz" -initrd "$in_root/initrd.cpio" \
        -append "console=ttyS0 panic=-1 quiet ggml_vm.mode=$mode" \
        -device virtio-gpu-gl-pci,hostmem=256M,blob=true,venus=true \
        -display gtk,gl=on -serial stdio -monitor none -no-reboot </dev/null 2>"$work/qemu.stderr"
rc=$?
set -e
[ $rc -eq 124 ] && echo "vmm.sh: the guest did not power off within ${limit} s (QEMU stopped)" >&2
exit $rc
