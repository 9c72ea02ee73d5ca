/* One open of the emulated virtio-gpu render node: the kernel driver's per-file state (context,
 * GEM handles, mmap offsets) and, behind it, the emulated host: an APIR component context
 * created in this process at CONTEXT_INIT, as a hypervisor hosting virglrenderer would. */
#ifndef EMU_DEVICE_H
#define EMU_DEVICE_H

#include <stddef.h>
#include <sys/types.h>

struct emu_device;

struct emu_device *emu_device_create(void);
/* Runs one DRM ioctl the way the kernel does (copy in, handle, copy out): 0 or -errno;
 * -ENOTTY for an ioctl the virtio-gpu driver does not have or the emulation does not do. */
int emu_device_ioctl(struct emu_device *d, unsigned long request, void *arg);
/* mmap() of the node at an offset DRM_IOCTL_VIRTGPU_MAP returned: maps the blob's memory.
 * MAP_FAILED with errno set on error. */
void *emu_device_mmap(struct emu_device *d, void *addr, size_t len, int prot, int flags, off_t offset);
/* close() of the node: frees every blob and the host context. */
void emu_device_destroy(struct emu_device *d);

#endif
