#!/bin/busybox sh
# /init of the test guest: mount the basics, load the kernel's own virtio-gpu driver, wait for
# its render node, run /opt/guest-tests.sh (or, with ggml_vm.mode=probe on the kernel command
# line, only say that the guest is alive), then power off. Everything goes to the serial console.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "GUEST: /init at $(cut -d' ' -f1 /proc/uptime) s"
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m" || echo "GUEST: insmod $m failed"
done
i=0
while [ ! -e /dev/dri/renderD128 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "GUEST: render node $(ls /dev/dri 2>/dev/null | tr '\n' ' ')at $(cut -d' ' -f1 /proc/uptime) s"
rc=0
case "$(cat /proc/cmdline)" in
    *ggml_vm.mode=probe*) echo "GUEST-ALIVE" ;;
    *) sh /opt/guest-tests.sh; rc=$? ;;
esac
echo "GUEST-DONE rc=$rc at $(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
