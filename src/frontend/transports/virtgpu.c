/* The virtio-gpu DRM transport: the guest side of API remoting inside a VM, shaped like Mesa's
 * Venus renderer (vn_renderer_virtgpu.c): find a virtio_gpu render node, check it can do
 * context init and mappable host blobs, init a context on the APIR or Venus capset, then
 * create/map blob resources and submit command buffers with EXECBUFFER. */
#include "transport.h"
#include "virtgpu_uapi.h"

#include "apir_protocol.h"
#include "guest_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define RENDER_NODE_FIRST 128
#define RENDER_NODE_LAST 191
#define DRIVER_NAME "virtio_gpu"

struct virtgpu_transport {
    struct apir_transport base;
    int fd;
    char node[64];
    atomic_bool lost;               /* an ioctl failed with ENODEV: the device is gone */
    _Atomic uint64_t next_blob_id;  /* blob ids are unique per context */
};

static struct virtgpu_transport *vt(struct apir_transport *t) { return (struct virtgpu_transport *)t; }

/* ioctl that restarts when interrupted, as drmIoctl does; 0 or -errno */
static int xioctl(int fd, unsigned long req, void *arg)
{
    int r;
    do {
        r = ioctl(fd, req, arg);
    } while (r == -1 && (errno == EINTR || errno == EAGAIN));
    return r == -1 ? -errno : 0;
}

static int vt_ioctl(struct virtgpu_transport *t, unsigned long req, void *arg)
{
    int r = xioctl(t->fd, req, arg);
    if (r == -ENODEV)
        atomic_store(&t->lost, true);
    return r;
}

/* true if fd is a virtio_gpu DRM device (DRM_IOCTL_VERSION names the driver) */
static bool is_virtio_gpu(int fd)
{
    char name[32] = "";
    struct drm_version v;
    memset(&v, 0, sizeof v);
    v.name = name;
    v.name_len = sizeof name - 1;
    if (xioctl(fd, DRM_IOCTL_VERSION, &v) != 0)
        return false;
    size_t n = v.name_len < sizeof name - 1 ? v.name_len : sizeof name - 1;
    name[n] = '\0';
    return strcmp(name, DRIVER_NAME) == 0;
}

/* A node we may not open can still be recognised: sysfs names the driver of the device behind
 * it (/sys/class/drm/renderDN/device/driver -> .../virtio_gpu) and is readable by anyone. */
static bool sysfs_says_virtio_gpu(int minor)
{
    char link[96], target[256];
    snprintf(link, sizeof link, "/sys/class/drm/renderD%d/device/driver", minor);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
        return false;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    return strcmp(base ? base + 1 : target, DRIVER_NAME) == 0;
}

/* What the scan found: the first virtio_gpu render node we could open, or the first one we
 * were not allowed to open (so the user hears about permissions, not "no device"). Nodes are
 * tried by name rather than by listing /dev/dri: a missing node costs one failed open(), and
 * the test emulation only has to intercept open(). */
struct node_scan {
    int fd;             /* -1 if none could be opened */
    char path[64];
    int denied_errno;   /* EACCES/EPERM on a virtio_gpu node, when fd is -1 */
    char denied_path[64];
};

static void scan_render_nodes(struct node_scan *s)
{
    s->fd = -1;
    s->denied_errno = 0;
    for (int i = RENDER_NODE_FIRST; i <= RENDER_NODE_LAST; i++) {
        snprintf(s->path, sizeof s->path, "/dev/dri/renderD%d", i);
        int fd = open(s->path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            if ((errno == EACCES || errno == EPERM) && !s->denied_errno && sysfs_says_virtio_gpu(i)) {
                s->denied_errno = errno;
                snprintf(s->denied_path, sizeof s->denied_path, "%s", s->path);
            }
            continue;
        }
        if (is_virtio_gpu(fd)) {
            s->fd = fd;
            return;
        }
        close(fd);
    }
}

bool apir_transport_virtgpu_present(void)
{
    struct node_scan s;
    scan_render_nodes(&s);
    if (s.fd >= 0)
        close(s.fd);
    /* a node we may not open counts: opening it will then say why it fails */
    return s.fd >= 0 || s.denied_errno;
}

/* VIRTGPU_PARAM_* value, or -errno */
static long long get_param(struct virtgpu_transport *t, uint64_t param)
{
    uint64_t value = 0; /* the kernel writes an int: keep the upper half zero */
    struct drm_virtgpu_getparam args = {.param = param, .value = (uintptr_t)&value};
    int r = vt_ioctl(t, DRM_IOCTL_VIRTGPU_GETPARAM, &args);
    return r ? r : (long long)value;
}

/* The features API remoting cannot work without, each with what it means for the user. */
static const struct {
    uint64_t param;
    const char *name;
    const char *why;
} required_params[] = {
    {VIRTGPU_PARAM_3D_FEATURES, "3D_FEATURES", "start the VM with a 3D-enabled virtio-gpu (virgl/venus)"},
    {VIRTGPU_PARAM_RESOURCE_BLOB, "RESOURCE_BLOB", "enable blob resources on the virtio-gpu device (blob=true)"},
    {VIRTGPU_PARAM_HOST_VISIBLE, "HOST_VISIBLE",
     "give the virtio-gpu device a host-visible memory window (hostmem=...)"},
    {VIRTGPU_PARAM_CONTEXT_INIT, "CONTEXT_INIT", "use a guest kernel and hypervisor with virtio-gpu context init"},
};

static bool check_params(struct virtgpu_transport *t, char *why, size_t why_len)
{
    for (size_t i = 0; i < sizeof required_params / sizeof required_params[0]; i++) {
        long long v = get_param(t, required_params[i].param);
        if (v < 0) {
            snprintf(why, why_len, "virtgpu: GETPARAM %s on %s failed: %s (errno %d)", required_params[i].name,
                     t->node, strerror((int)-v), (int)-v);
            return false;
        }
        if (v == 0) {
            snprintf(why, why_len, "virtgpu: %s lacks %s: %s", t->node, required_params[i].name,
                     required_params[i].why);
            return false;
        }
    }
    return true;
}

static const char *capset_hint(uint32_t capset_id)
{
    return capset_id == APIR_CAPSET_ID_APIR
               ? "the hypervisor has no APIR support: unset GGML_REMOTING_USE_APIR_CAPSET to use the Venus "
                 "capset with VIRGL_ROUTE_VENUS_TO_APIR on the host"
               : "the hypervisor offers no Venus capset: start it with venus=true, or set "
                 "GGML_REMOTING_USE_APIR_CAPSET=1 if it supports APIR";
}

/* The capset must be offered (when the kernel can tell) and readable. */
static bool check_capset(struct virtgpu_transport *t, uint32_t capset_id, char *why, size_t why_len)
{
    long long mask = get_param(t, VIRTGPU_PARAM_SUPPORTED_CAPSET_IDs);
    if (mask >= 0 && capset_id < 64 && !((unsigned long long)mask & (1ull << capset_id))) {
        snprintf(why, why_len, "virtgpu: %s does not offer capset %u: %s", t->node, capset_id, capset_hint(capset_id));
        return false;
    }
    union {
        struct apir_virtgpu_capset_apir apir;
        uint8_t raw[256];
    } caps;
    memset(&caps, 0, sizeof caps);
    struct drm_virtgpu_get_caps args = {
        .cap_set_id = capset_id, .cap_set_ver = 0, .addr = (uintptr_t)&caps, .size = sizeof caps};
    int r = vt_ioctl(t, DRM_IOCTL_VIRTGPU_GET_CAPS, &args);
    if (r) {
        snprintf(why, why_len, "virtgpu: GET_CAPS capset %u on %s failed: %s (errno %d): %s", capset_id, t->node,
                 strerror(-r), -r, capset_hint(capset_id));
        return false;
    }
    if (capset_id == APIR_CAPSET_ID_APIR && !caps.apir.supports_blob_resources) {
        snprintf(why, why_len, "virtgpu: the APIR capset on %s says the host has no blob resources", t->node);
        return false;
    }
    return true;
}

static bool init_context(struct virtgpu_transport *t, uint32_t capset_id, char *why, size_t why_len)
{
    struct drm_virtgpu_context_set_param params[] = {
        {VIRTGPU_CONTEXT_PARAM_CAPSET_ID, capset_id},
        {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 1},
        {VIRTGPU_CONTEXT_PARAM_POLL_RINGS_MASK, 0}, /* no DRM events: replies come through memory */
    };
    struct drm_virtgpu_context_init args = {
        .num_params = sizeof params / sizeof params[0], .ctx_set_params = (uintptr_t)params};
    int r = vt_ioctl(t, DRM_IOCTL_VIRTGPU_CONTEXT_INIT, &args);
    if (r) {
        snprintf(why, why_len, "virtgpu: CONTEXT_INIT capset %u on %s failed: %s (errno %d)", capset_id, t->node,
                 strerror(-r), -r);
        return false;
    }
    return true;
}

static void gem_close(struct virtgpu_transport *t, uint32_t handle)
{
    struct drm_gem_close args = {.handle = handle};
    vt_ioctl(t, DRM_IOCTL_GEM_CLOSE, &args);
}

static int vt_create_blob(struct apir_transport *base, size_t size, struct apir_shmem *shm)
{
    struct virtgpu_transport *t = vt(base);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size == 0 || size > SIZE_MAX - page)
        return -EINVAL;
    size = (size + page - 1) / page * page;
    struct drm_virtgpu_resource_create_blob create = {
        .blob_mem = VIRTGPU_BLOB_MEM_HOST3D,
        .blob_flags = VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
        .size = size,
        .blob_id = atomic_fetch_add(&t->next_blob_id, 1),
    };
    int r = vt_ioctl(t, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &create);
    if (r) {
        GUEST_LOG_ERROR("virtgpu: RESOURCE_CREATE_BLOB of %zu bytes on %s failed: %s (errno %d)\n", size, t->node,
                        strerror(-r), -r);
        return r;
    }
    struct drm_virtgpu_map map = {.handle = create.bo_handle};
    r = vt_ioctl(t, DRM_IOCTL_VIRTGPU_MAP, &map);
    if (r) {
        GUEST_LOG_ERROR("virtgpu: VIRTGPU_MAP of a %zu-byte blob on %s failed: %s (errno %d)\n", size, t->node,
                        strerror(-r), -r);
        gem_close(t, create.bo_handle);
        return r;
    }
    void *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, (off_t)map.offset);
    if (ptr == MAP_FAILED) {
        r = -errno;
        GUEST_LOG_ERROR("virtgpu: mmap of a %zu-byte blob on %s failed: %s (errno %d)\n", size, t->node,
                        strerror(-r), -r);
        gem_close(t, create.bo_handle);
        return r;
    }
    shm->res_id = create.res_handle;
    shm->ptr = ptr;
    shm->size = size;
    shm->priv = create.bo_handle;
    return 0;
}

static void vt_destroy_blob(struct apir_transport *base, struct apir_shmem *shm)
{
    if (!shm->ptr)
        return;
    munmap(shm->ptr, shm->size);
    gem_close(vt(base), shm->priv);
    memset(shm, 0, sizeof *shm);
}

/* QEMU hands virglrenderer size / 4 words of a SUBMIT_3D, so a buffer that does not fill
 * whole words would lose its tail: pad it with zeros and say so in the command's flags (the
 * client sends one command per submission, so the header at the start is the last one). */
static void *pad_to_words(const void *cmd, size_t size, size_t *padded)
{
    size_t pad = (4 - size % 4) % 4;
    *padded = size + pad;
    if (!pad)
        return NULL;
    uint8_t *copy = calloc(1, size + pad);
    if (!copy)
        return NULL;
    memcpy(copy, cmd, size);
    struct apir_command_header h;
    memcpy(&h, copy, sizeof h);
    h.cmd_flags = (int32_t)(((uint32_t)h.cmd_flags & ~(uint32_t)APIR_CMD_FLAG_PAD_MASK) | (uint32_t)pad);
    memcpy(copy, &h, sizeof h);
    return copy;
}

static int vt_submit(struct apir_transport *base, const void *cmd, size_t size)
{
    if (size < APIR_COMMAND_HEADER_SIZE || size > UINT32_MAX - 3)
        return -EINVAL;
    size_t padded;
    void *copy = pad_to_words(cmd, size, &padded);
    if (!copy && padded != size)
        return -ENOMEM;
    /* No bo list: the host finds the reply resource by the id inside the command. */
    struct drm_virtgpu_execbuffer args = {
        .flags = VIRTGPU_EXECBUF_RING_IDX,
        .size = (uint32_t)padded,
        .command = (uintptr_t)(copy ? copy : cmd),
        .fence_fd = -1,
        .ring_idx = 0,
    };
    int r = vt_ioctl(vt(base), DRM_IOCTL_VIRTGPU_EXECBUFFER, &args);
    free(copy);
    if (r)
        GUEST_LOG_ERROR("virtgpu: EXECBUFFER of %zu bytes on %s failed: %s (errno %d)%s\n", size, vt(base)->node,
                        strerror(-r), -r, r == -ENODEV ? ": the device is gone" : "");
    return r;
}

static bool vt_alive(struct apir_transport *base) { return !atomic_load(&vt(base)->lost); }

static void vt_destroy(struct apir_transport *base)
{
    struct virtgpu_transport *t = vt(base);
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

static const struct apir_transport_ops virtgpu_ops = {
    .create_blob = vt_create_blob,
    .destroy_blob = vt_destroy_blob,
    .submit = vt_submit,
    .alive = vt_alive,
    .destroy = vt_destroy,
};

struct apir_transport *apir_transport_virtgpu_open(const char *node_path, uint32_t capset_id, char *why,
                                                   size_t why_len)
{
    if (capset_id != APIR_CAPSET_ID_APIR && capset_id != APIR_CAPSET_ID_VENUS) {
        snprintf(why, why_len, "virtgpu: capset %u is neither APIR (%d) nor Venus (%d)", capset_id,
                 APIR_CAPSET_ID_APIR, APIR_CAPSET_ID_VENUS);
        return NULL;
    }
    struct virtgpu_transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(why, why_len, "virtgpu: out of memory");
        return NULL;
    }
    t->base.ops = &virtgpu_ops;
    t->base.name = "virtgpu";
    t->base.capset_id = capset_id;
    t->base.host_futex_wake = false; /* a futex cannot cross the VM boundary */
    atomic_init(&t->lost, false);
    atomic_init(&t->next_blob_id, 1);
    if (node_path) {
        snprintf(t->node, sizeof t->node, "%s", node_path);
        t->fd = open(node_path, O_RDWR | O_CLOEXEC);
        if (t->fd < 0) {
            snprintf(why, why_len, "virtgpu: open %s failed: %s (errno %d)", node_path, strerror(errno), errno);
            goto fail;
        }
        if (!is_virtio_gpu(t->fd)) {
            snprintf(why, why_len, "virtgpu: %s is not a virtio_gpu device (DRM_IOCTL_VERSION)", node_path);
            goto fail;
        }
    } else {
        struct node_scan scan;
        scan_render_nodes(&scan);
        t->fd = scan.fd;
        snprintf(t->node, sizeof t->node, "%s", scan.path);
        if (t->fd < 0 && scan.denied_errno) {
            snprintf(why, why_len, "virtgpu: cannot open %s: %s (errno %d): give this user access to it "
                     "(usually the 'render' group)", scan.denied_path, strerror(scan.denied_errno),
                     scan.denied_errno);
            goto fail;
        }
        if (t->fd < 0) {
            snprintf(why, why_len, "virtgpu: no virtio_gpu render node in /dev/dri/renderD%d..%d",
                     RENDER_NODE_FIRST, RENDER_NODE_LAST);
            goto fail;
        }
    }
    if (!check_params(t, why, why_len) || !check_capset(t, capset_id, why, why_len) ||
        !init_context(t, capset_id, why, why_len))
        goto fail;
    return &t->base;
fail:
    if (t->fd >= 0)
        close(t->fd);
    free(t);
    return NULL;
}
