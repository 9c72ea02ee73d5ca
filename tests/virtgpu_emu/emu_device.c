/* The emulated virtio-gpu driver (the guest kernel's part): ioctl decoding (request number, direction and struct size
 * checked against the kernel ABI written out below), the device-level ioctls (VERSION,
 * GETPARAM, GET_CAPS, CONTEXT_INIT) and the lifetime of a file. */
#include "emu_internal.h"
#include "emu_stats.h"

#include "emu_host.h"
#include "apir_protocol.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define DRIVER_NAME "virtio_gpu"
#define MAX_RINGS 64         /* the kernel's VIRTGPU_MAX_RINGS */
#define MAX_CONTEXT_PARAMS 8 /* more than the driver knows: a confused caller */

static _Atomic uint32_t next_ctx_id = 1;

static void copy_field(char *dst, __kernel_size_t *len, const char *value)
{
    /* as the kernel's drm_copy_field: copy what fits, report the full length */
    size_t n = strlen(value);
    if (dst && *len)
        memcpy(dst, value, n < *len ? n : *len);
    *len = n;
}

static int do_version(struct emu_device *d, void *arg)
{
    struct drm_version *v = arg;
    v->version_major = 0;
    v->version_minor = 1;
    v->version_patchlevel = 0;
    copy_field(v->name, &v->name_len, DRIVER_NAME);
    copy_field(v->date, &v->date_len, "0");
    copy_field(v->desc, &v->desc_len, "virtio GPU (userspace emulation)");
    return 0;
}

static int do_getparam(struct emu_device *d, void *arg)
{
    struct drm_virtgpu_getparam *p = arg;
    int value;
    switch (p->param) {
    case VIRTGPU_PARAM_3D_FEATURES: value = 1; break;
    case VIRTGPU_PARAM_CAPSET_QUERY_FIX: value = 1; break;
    case VIRTGPU_PARAM_RESOURCE_BLOB: value = d->blob_support; break;
    case VIRTGPU_PARAM_HOST_VISIBLE: value = d->blob_support; break;
    case VIRTGPU_PARAM_CROSS_DEVICE: value = 0; break;
    case VIRTGPU_PARAM_CONTEXT_INIT: value = 1; break;
    case VIRTGPU_PARAM_SUPPORTED_CAPSET_IDs: value = (int)d->capset_mask; break;
    default: return -EINVAL;
    }
    if (!p->value)
        return -EFAULT;
    *(int *)(uintptr_t)p->value = value; /* the kernel writes an int */
    return 0;
}

static bool capset_offered(const struct emu_device *d, uint64_t id)
{
    return id < 64 && (d->capset_mask & (1ull << id));
}

static int do_get_caps(struct emu_device *d, void *arg)
{
    struct drm_virtgpu_get_caps *c = arg;
    if (!capset_offered(d, c->cap_set_id) || c->cap_set_ver != 0)
        return -EINVAL;
    /* APIR: the layout APIR hosts report. Venus: a Venus-sized block of placeholders (the
     * guest does not read Venus capset fields). */
    uint32_t data[16] = {0};
    size_t size;
    if (c->cap_set_id == APIR_CAPSET_ID_APIR) {
        struct apir_virtgpu_capset_apir apir = {.apir_version = APIR_PROTOCOL_MAJOR, .supports_blob_resources = 1};
        memcpy(data, &apir, sizeof apir);
        size = sizeof apir;
    } else {
        data[0] = 1; /* wire format version */
        size = sizeof data;
    }
    if (c->size && !c->addr)
        return -EFAULT;
    if (c->size)
        memcpy((void *)(uintptr_t)c->addr, data, c->size < size ? c->size : size);
    return 0;
}

static int do_context_init(struct emu_device *d, void *arg)
{
    struct drm_virtgpu_context_init *ci = arg;
    if (d->context_initialized)
        return -EEXIST;
    if (ci->num_params == 0 || ci->num_params > MAX_CONTEXT_PARAMS)
        return -EINVAL;
    const struct drm_virtgpu_context_set_param *p = (const void *)(uintptr_t)ci->ctx_set_params;
    if (!p)
        return -EFAULT;
    uint64_t capset = 0, rings = 0;
    bool have_capset = false, have_rings = false;
    for (uint32_t i = 0; i < ci->num_params; i++) {
        switch (p[i].param) {
        case VIRTGPU_CONTEXT_PARAM_CAPSET_ID:
            if (have_capset || !capset_offered(d, p[i].value))
                return -EINVAL;
            capset = p[i].value;
            have_capset = true;
            break;
        case VIRTGPU_CONTEXT_PARAM_NUM_RINGS:
            if (have_rings || p[i].value > MAX_RINGS)
                return -EINVAL;
            rings = p[i].value;
            have_rings = true;
            break;
        case VIRTGPU_CONTEXT_PARAM_POLL_RINGS_MASK:
            break;
        default:
            return -EINVAL;
        }
    }
    if (!have_capset)
        return -EINVAL; /* the kernel would fall back to a virgl context: not emulated */
    uint32_t ctx_id = atomic_fetch_add(&next_ctx_id, 1);
    /* The kernel queues the context creation and returns without the host's answer, so a host
     * that refuses still looks like a success here; the guest finds out when nothing replies. */
    d->host = emu_host_create(ctx_id, (uint32_t)capset);
    if (!d->host)
        return -ENOMEM;
    d->ctx_id = ctx_id;
    d->capset_id = (uint32_t)capset;
    d->num_rings = (uint32_t)rings;
    d->context_initialized = true;
    return 0;
}

static int do_create_blob(struct emu_device *d, void *arg) { return emu_blob_create(d, arg); }
static int do_map(struct emu_device *d, void *arg) { return emu_blob_map(d, arg); }
static int do_gem_close(struct emu_device *d, void *arg) { return emu_blob_gem_close(d, arg); }
static int do_execbuffer(struct emu_device *d, void *arg) { return emu_execbuffer(d, arg); }

#define RW (_IOC_READ | _IOC_WRITE)
/* Request layouts of the kernel ABI (LP64), written out as numbers rather than taken from
 * virtgpu_uapi.h, so that a wrong struct in that header shows up here as BAD_IOCTL_LAYOUT. */
static const struct {
    unsigned nr, dir, size;
    const char *name;
    int (*run)(struct emu_device *d, void *arg);
} ioctls[] = {
    {0x00, RW, 64, "VERSION", do_version},
    {0x09, _IOC_WRITE, 8, "GEM_CLOSE", do_gem_close},
    {0x41, RW, 16, "MAP", do_map},
    {0x42, RW, 64, "EXECBUFFER", do_execbuffer},
    {0x43, RW, 16, "GETPARAM", do_getparam},
    {0x49, RW, 24, "GET_CAPS", do_get_caps},
    {0x4a, RW, 48, "RESOURCE_CREATE_BLOB", do_create_blob},
    {0x4b, RW, 16, "CONTEXT_INIT", do_context_init},
};

int emu_device_ioctl(struct emu_device *d, unsigned long request, void *arg)
{
    size_t i = 0;
    if (_IOC_TYPE(request) == DRM_IOCTL_BASE)
        while (i < sizeof ioctls / sizeof ioctls[0] && ioctls[i].nr != _IOC_NR(request))
            i++;
    if (_IOC_TYPE(request) != DRM_IOCTL_BASE || i == sizeof ioctls / sizeof ioctls[0]) {
        emu_stats_event("UNKNOWN_IOCTL");
        return -ENOTTY;
    }
    if (_IOC_DIR(request) != ioctls[i].dir || _IOC_SIZE(request) != ioctls[i].size) {
        emu_stats_event("BAD_IOCTL_LAYOUT");
        return -EINVAL;
    }
    if (!arg)
        return -EFAULT;
    emu_stats_event(ioctls[i].name);

    /* copy_from_user / copy_to_user: the handler works on a private copy */
    union {
        uint64_t align;
        uint8_t bytes[64];
    } k;
    memcpy(k.bytes, arg, ioctls[i].size);
    pthread_mutex_lock(&d->lock);
    if (ioctls[i].run == do_execbuffer && d->lose_at && ++d->n_execbuffer >= d->lose_at)
        d->lost = true;
    int r = d->lost ? -ENODEV : ioctls[i].run(d, k.bytes);
    pthread_mutex_unlock(&d->lock);
    if (r == -ENODEV)
        emu_stats_count("DEVICE_LOST");
    if (r == 0 && (ioctls[i].dir & _IOC_READ))
        memcpy(arg, k.bytes, ioctls[i].size);
    return r;
}

/* VIRTGPU_EMU_CAPSETS="4,10" (default): the capset ids the emulated host offers */
static uint64_t capset_mask_from_env(void)
{
    const char *s = getenv("VIRTGPU_EMU_CAPSETS");
    if (!s)
        return (1ull << APIR_CAPSET_ID_VENUS) | (1ull << APIR_CAPSET_ID_APIR);
    uint64_t mask = 0;
    while (*s) {
        char *end;
        unsigned long id = strtoul(s, &end, 10);
        if (end == s)
            break;
        if (id < 64)
            mask |= 1ull << id;
        s = *end == ',' ? end + 1 : end;
    }
    return mask;
}

struct emu_device *emu_device_create(void)
{
    struct emu_device *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    pthread_mutex_init(&d->lock, NULL);
    d->capset_mask = capset_mask_from_env();
    d->blob_support = getenv("VIRTGPU_EMU_NO_BLOB") == NULL;
    const char *lose = getenv("VIRTGPU_EMU_LOSE_AT");
    d->lose_at = lose ? strtoul(lose, NULL, 10) : 0;
    d->next_bo_handle = 1;
    return d;
}

void emu_device_destroy(struct emu_device *d)
{
    if (!d)
        return;
    emu_blob_free_all(d);
    emu_host_destroy(d->host);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
