#!/usr/bin/env bash
# Builds (once) the Debian 13 chroot that holds the unmodified VMM: Debian's QEMU with its GL
# module, virglrenderer 1.1 + its render server, Mesa (llvmpipe), Xvfb, the guest kernel and
# busybox. Cached outside the clone; rebuilt from scratch when absent or incomplete.
# Needs root (debootstrap, chroot). Prints the chroot's path on stdout.
set -euo pipefail
cache=${GGML_VIRTGPU_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ggml-virtgpu/vm}
root=$cache/trixie
mirror=${GGML_VIRTGPU_VM_MIRROR:-http://deb.debian.org/debian}
stamp=$root/.ggml-virtgpu-complete
pkgs=(qemu-system-x86 qemu-system-modules-opengl qemu-system-gui libvirglrenderer1 virgl-server
      libvirglrenderer-dev mesa-libgallium libgl1-mesa-dri libegl1 xvfb xauth
      linux-image-amd64 busybox-static kmod)

# complete = the stamp and the parts the runner uses (a half-deleted tree is rebuilt)
if [ -f "$stamp" ] && [ -x "$root/usr/bin/qemu-system-x86_64" ] && [ -x "$root/usr/bin/Xvfb" ] &&
   ls "$root"/boot/vmlinuz-* >/dev/null 2>&1; then
    echo "$root"; exit 0
fi
[ "$(id -u)" = 0 ] || { echo "make-chroot.sh: debootstrap and chroot need root: run it as root or with sudo" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
# anything left from an interrupted build is thrown away: a half-made chroot is not trusted
for m in proc sys dev; do umount -l "$root/$m" 2>/dev/null || true; done
rm -rf "$root"
mkdir -p "$cache"
echo "make-chroot.sh: debootstrap trixie into $root" >&2
debootstrap --variant=minbase trixie "$root" "$mirror" >&2
mount -t proc proc "$root/proc"
trap 'umount -l "$root/proc" 2>/dev/null || true' EXIT
echo "make-chroot.sh: installing ${pkgs[*]}" >&2
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
chroot "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
chroot "$root" apt-get clean >&2
touch "$stamp"
echo "$root"
