/* The virtio-gpu DRM uAPI (Linux include/uapi/drm/virtgpu_drm.h) as of kernel 6.x.
 * Debian's libdrm-dev ships an old copy without blob resources and context init, so the
 * definitions we need are written out here, after libdrm's generic <drm.h>. The layout
 * asserts at the bottom pin the kernel ABI; the transport and the test emulation
 * (tests/virtgpu_emu) both include this file, and the emulation also checks the size encoded
 * in each ioctl request against its own table. Never include libdrm's virtgpu_drm.h with it. */
#ifndef APIR_VIRTGPU_UAPI_H
#define APIR_VIRTGPU_UAPI_H

#include <drm.h>
#include <stddef.h>

#ifndef VIRTGPU_DRM_H
#define VIRTGPU_DRM_H

#define DRM_VIRTGPU_MAP 0x01
#define DRM_VIRTGPU_EXECBUFFER 0x02
#define DRM_VIRTGPU_GETPARAM 0x03
#define DRM_VIRTGPU_GET_CAPS 0x09
#define DRM_VIRTGPU_RESOURCE_CREATE_BLOB 0x0a
#define DRM_VIRTGPU_CONTEXT_INIT 0x0b

#define VIRTGPU_EXECBUF_FENCE_FD_IN 0x01
#define VIRTGPU_EXECBUF_FENCE_FD_OUT 0x02
#define VIRTGPU_EXECBUF_RING_IDX 0x04

struct drm_virtgpu_map {
    __u64 offset; /* out: the offset to give mmap() on the DRM fd */
    __u32 handle;
    __u32 pad;
};

struct drm_virtgpu_execbuffer {
    __u32 flags;
    __u32 size;
    __u64 command; /* user pointer */
    __u64 bo_handles;
    __u32 num_bo_handles;
    __s32 fence_fd;
    __u32 ring_idx;
    __u32 syncobj_stride;
    __u32 num_in_syncobjs;
    __u32 num_out_syncobjs;
    __u64 in_syncobjs;
    __u64 out_syncobjs;
};

#define VIRTGPU_PARAM_3D_FEATURES 1
#define VIRTGPU_PARAM_CAPSET_QUERY_FIX 2
#define VIRTGPU_PARAM_RESOURCE_BLOB 3
#define VIRTGPU_PARAM_HOST_VISIBLE 4
#define VIRTGPU_PARAM_CROSS_DEVICE 5
#define VIRTGPU_PARAM_CONTEXT_INIT 6
#define VIRTGPU_PARAM_SUPPORTED_CAPSET_IDs 7

struct drm_virtgpu_getparam {
    __u64 param;
    __u64 value; /* user pointer to an int the kernel writes */
};

struct drm_virtgpu_get_caps {
    __u32 cap_set_id;
    __u32 cap_set_ver;
    __u64 addr; /* user pointer */
    __u32 size;
    __u32 pad;
};

#define VIRTGPU_BLOB_MEM_GUEST 0x0001
#define VIRTGPU_BLOB_MEM_HOST3D 0x0002
#define VIRTGPU_BLOB_MEM_HOST3D_GUEST 0x0003

#define VIRTGPU_BLOB_FLAG_USE_MAPPABLE 0x0001
#define VIRTGPU_BLOB_FLAG_USE_SHAREABLE 0x0002
#define VIRTGPU_BLOB_FLAG_USE_CROSS_DEVICE 0x0004

struct drm_virtgpu_resource_create_blob {
    __u32 blob_mem;
    __u32 blob_flags;
    __u32 bo_handle;  /* out */
    __u32 res_handle; /* out */
    __u64 size;
    __u32 pad;
    __u32 cmd_size;
    __u64 cmd;
    __u64 blob_id;
};

#define VIRTGPU_CONTEXT_PARAM_CAPSET_ID 0x0001
#define VIRTGPU_CONTEXT_PARAM_NUM_RINGS 0x0002
#define VIRTGPU_CONTEXT_PARAM_POLL_RINGS_MASK 0x0003

struct drm_virtgpu_context_set_param {
    __u64 param;
    __u64 value;
};

struct drm_virtgpu_context_init {
    __u32 num_params;
    __u32 pad;
    __u64 ctx_set_params; /* user pointer to num_params drm_virtgpu_context_set_param */
};

#define DRM_IOCTL_VIRTGPU_MAP DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_MAP, struct drm_virtgpu_map)
#define DRM_IOCTL_VIRTGPU_EXECBUFFER \
    DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_EXECBUFFER, struct drm_virtgpu_execbuffer)
#define DRM_IOCTL_VIRTGPU_GETPARAM DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_GETPARAM, struct drm_virtgpu_getparam)
#define DRM_IOCTL_VIRTGPU_GET_CAPS DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_GET_CAPS, struct drm_virtgpu_get_caps)
#define DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB \
    DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_RESOURCE_CREATE_BLOB, struct drm_virtgpu_resource_create_blob)
#define DRM_IOCTL_VIRTGPU_CONTEXT_INIT \
    DRM_IOWR(DRM_COMMAND_BASE + DRM_VIRTGPU_CONTEXT_INIT, struct drm_virtgpu_context_init)

#endif /* VIRTGPU_DRM_H */

/* The APIR capset (id 10) as APIR hosts report it through GET_CAPS. */
struct apir_virtgpu_capset_apir {
    __u32 apir_version;
    __u32 supports_blob_resources;
    __u32 reserved[4];
};

/* Kernel ABI (x86_64 and every LP64 target): sizes and the offsets that differ between
 * uAPI revisions. A mistake here would be a mistake in both the transport and the emulation. */
_Static_assert(sizeof(struct drm_virtgpu_map) == 16, "drm_virtgpu_map ABI");
_Static_assert(sizeof(struct drm_virtgpu_execbuffer) == 64, "drm_virtgpu_execbuffer ABI");
_Static_assert(offsetof(struct drm_virtgpu_execbuffer, ring_idx) == 32, "execbuffer.ring_idx ABI");
_Static_assert(offsetof(struct drm_virtgpu_execbuffer, in_syncobjs) == 48, "execbuffer.in_syncobjs ABI");
_Static_assert(sizeof(struct drm_virtgpu_getparam) == 16, "drm_virtgpu_getparam ABI");
_Static_assert(sizeof(struct drm_virtgpu_get_caps) == 24, "drm_virtgpu_get_caps ABI");
_Static_assert(sizeof(struct drm_virtgpu_resource_create_blob) == 48, "resource_create_blob ABI");
_Static_assert(offsetof(struct drm_virtgpu_resource_create_blob, size) == 16, "create_blob.size ABI");
_Static_assert(offsetof(struct drm_virtgpu_resource_create_blob, blob_id) == 40, "create_blob.blob_id ABI");
_Static_assert(sizeof(struct drm_virtgpu_context_init) == 16, "drm_virtgpu_context_init ABI");
_Static_assert(sizeof(struct drm_virtgpu_context_set_param) == 16, "context_set_param ABI");
_Static_assert(sizeof(struct drm_gem_close) == 8, "drm_gem_close ABI");
_Static_assert(sizeof(struct drm_version) == 64, "drm_version ABI (LP64)");

#endif
