/* LD_PRELOAD shim: makes /dev/dri/renderD128 (or VIRTGPU_EMU_NODE) a virtio-gpu render node
 * backed by emu_device. open*() of that path returns a placeholder fd (a memfd) that is
 * remembered as emulated; ioctl(), mmap() and close() on it go to the emulation, and every
 * other call is forwarded to the next definition (libc) found with dlsym(RTLD_NEXT).
 * readlink() of the node's sysfs driver link names virtio_gpu, and VIRTGPU_EMU_DENY=1 makes
 * open() fail with EACCES, as for a user outside the 'render' group. */
#include "emu_device.h"
#include "emu_stats.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_FD 4096
#define DEFAULT_NODE "/dev/dri/renderD128"

/* fd -> emulated device; read without a lock so that the forwarding paths (taken by the
 * emulated host itself, inside an ioctl) never wait */
static _Atomic(struct emu_device *) devices[MAX_FD];

static struct {
    int (*open)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    void *(*mmap)(void *, size_t, int, int, int, off_t);
    int (*close)(int);
    ssize_t (*readlink)(const char *, char *, size_t);
} real;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void resolve_real(void)
{
    real.open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    real.openat = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    real.ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    real.mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    real.close = (int (*)(int))dlsym(RTLD_NEXT, "close");
    real.readlink = (ssize_t(*)(const char *, char *, size_t))dlsym(RTLD_NEXT, "readlink");
}

static void init_real(void) { pthread_once(&real_once, resolve_real); }

static struct emu_device *device_of(int fd)
{
    return fd >= 0 && fd < MAX_FD ? atomic_load(&devices[fd]) : NULL;
}

static bool is_node(const char *path)
{
    const char *node = getenv("VIRTGPU_EMU_NODE");
    return path && strcmp(path, node ? node : DEFAULT_NODE) == 0;
}

/* a new emulated file: a memfd stands in for the kernel's file so the fd number is real */
static int open_node(int flags)
{
    if (getenv("VIRTGPU_EMU_DENY")) {
        emu_stats_count("OPEN_DENIED");
        errno = EACCES;
        return -1;
    }
    int fd = memfd_create("virtgpu-emu-node", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
    if (fd < 0)
        return -1;
    struct emu_device *d = fd < MAX_FD ? emu_device_create() : NULL;
    if (!d) {
        real.close(fd);
        errno = ENOMEM;
        return -1;
    }
    atomic_store(&devices[fd], d);
    emu_stats_event("OPEN");
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...)
{
    init_real();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return is_node(path) ? open_node(flags) : real.open(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    init_real();
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return is_node(path) ? open_node(flags) : real.openat(dirfd, path, flags, mode);
}

/* the large-file and fortified entry points all end up in the two above */
int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return open(path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return openat(dirfd, path, flags, mode);
}

int __open_2(const char *path, int flags) { return open(path, flags); }
int __open64_2(const char *path, int flags) { return open(path, flags); }
int __openat_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }
int __openat64_2(int dirfd, const char *path, int flags) { return openat(dirfd, path, flags); }

/* /sys/class/drm/<node name>/device/driver for the emulated node */
static bool is_node_driver_link(const char *path)
{
    const char *node = getenv("VIRTGPU_EMU_NODE");
    const char *name = strrchr(node ? node : DEFAULT_NODE, '/');
    char link[128];
    snprintf(link, sizeof link, "/sys/class/drm/%s/device/driver", name ? name + 1 : DEFAULT_NODE);
    return path && strcmp(path, link) == 0;
}

ssize_t readlink(const char *path, char *buf, size_t size)
{
    init_real();
    if (!is_node_driver_link(path))
        return real.readlink(path, buf, size);
    static const char target[] = "../../../../bus/virtio/drivers/virtio_gpu";
    size_t n = strlen(target) < size ? strlen(target) : size; /* readlink does not terminate */
    memcpy(buf, target, n);
    return (ssize_t)n;
}

int ioctl(int fd, unsigned long request, ...)
{
    init_real();
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct emu_device *d = device_of(fd);
    if (!d)
        return real.ioctl(fd, request, arg);
    int r = emu_device_ioctl(d, request, arg);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    init_real();
    struct emu_device *d = device_of(fd);
    return d ? emu_device_mmap(d, addr, len, prot, flags, offset) : real.mmap(addr, len, prot, flags, fd, offset);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    return mmap(addr, len, prot, flags, fd, offset);
}

int close(int fd)
{
    init_real();
    struct emu_device *d = fd >= 0 && fd < MAX_FD ? atomic_exchange(&devices[fd], NULL) : NULL;
    if (d) {
        emu_device_destroy(d);
        emu_stats_event("CLOSE");
        emu_stats_dump();
    }
    return real.close(fd);
}
