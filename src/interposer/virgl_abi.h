/* The part of virglrenderer's public API (virglrenderer.h, release 1.1) that QEMU imports,
 * written out so the interposer builds without virglrenderer's headers (Debian 12 has only
 * 0.10). Checked against virglrenderer 1.1.0's virglrenderer.h (Debian 13 libvirglrenderer-dev).
 * Only the layouts the interposer reads or writes are spelled out; everything it merely
 * passes on stays opaque. */
#ifndef VIRGL_ABI_H
#define VIRGL_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iovec;
struct virgl_box;
struct virgl_renderer_gl_ctx_param;
struct virgl_renderer_resource_create_args;
typedef void *virgl_renderer_gl_context;

struct virgl_renderer_callbacks {
    int version;
    void (*write_fence)(void *cookie, uint32_t fence);
    virgl_renderer_gl_context (*create_gl_context)(void *cookie, int scanout_idx,
                                                   struct virgl_renderer_gl_ctx_param *param);
    void (*destroy_gl_context)(void *cookie, virgl_renderer_gl_context ctx);
    int (*make_current)(void *cookie, int scanout_idx, virgl_renderer_gl_context ctx);
    int (*get_drm_fd)(void *cookie);                                                          /* version 2 */
    void (*write_context_fence)(void *cookie, uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id); /* 3 */
    int (*get_server_fd)(void *cookie, uint32_t version);                                     /* version 3 */
    void *(*get_egl_display)(void *cookie);                                                   /* version 4 */
};

/* virgl_renderer_init flags the interposer looks at */
#define VIRGL_RENDERER_ASYNC_FENCE_CB (1 << 8)

/* context_create_with_flags: the low byte of the flags is the capset */
#define VIRGL_RENDERER_CONTEXT_FLAG_CAPSET_ID_MASK 0xff

/* blob_mem / blob_flags (the virtio-gpu values) */
#define VIRGL_RENDERER_BLOB_MEM_GUEST 0x0001
#define VIRGL_RENDERER_BLOB_MEM_HOST3D 0x0002
#define VIRGL_RENDERER_BLOB_MEM_HOST3D_GUEST 0x0003
#define VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE 0x0001

/* resource_get_map_info */
#define VIRGL_RENDERER_MAP_CACHE_CACHED 0x01

struct virgl_renderer_resource_create_blob_args {
    uint32_t res_handle;
    uint32_t ctx_id;
    uint32_t blob_mem;
    uint32_t blob_flags;
    uint64_t blob_id;
    uint64_t size;
    const struct iovec *iovecs;
    uint32_t num_iovs;
};

struct virgl_renderer_resource_info {
    uint32_t handle;
    uint32_t virgl_format;
    uint32_t width;
    uint32_t height;
    uint32_t depth;
    uint32_t flags;
    uint32_t tex_id;
    uint32_t stride;
    int drm_fourcc;
    int fd;
};

struct virgl_renderer_resource_info_ext {
    int version;
    struct virgl_renderer_resource_info base;
    bool has_dmabuf_export;
    int planes;
    uint64_t modifiers;
    void *d3d_tex2d;
};

/* The 28 functions QEMU 10's GL module imports, as X(return type, name, parameters, argument
 * names): one list drives the exported wrappers, the real library's symbol table and its
 * loader. */
#define VIRGL_API_LIST(X)                                                                                    \
    X(int, init, (void *cookie, int flags, struct virgl_renderer_callbacks *cb), (cookie, flags, cb))        \
    X(void, poll, (void), ())                                                                                \
    X(void, cleanup, (void *cookie), (cookie))                                                               \
    X(void, reset, (void), ())                                                                               \
    X(void, force_ctx_0, (void), ())                                                                         \
    X(void, get_cap_set, (uint32_t set, uint32_t *max_ver, uint32_t *max_size), (set, max_ver, max_size))    \
    X(void, fill_caps, (uint32_t set, uint32_t version, void *caps), (set, version, caps))                  \
    X(int, context_create, (uint32_t handle, uint32_t nlen, const char *name), (handle, nlen, name))        \
    X(int, context_create_with_flags, (uint32_t ctx_id, uint32_t ctx_flags, uint32_t nlen, const char *name), \
      (ctx_id, ctx_flags, nlen, name))                                                                       \
    X(void, context_destroy, (uint32_t handle), (handle))                                                    \
    X(int, submit_cmd, (void *buffer, int ctx_id, int ndw), (buffer, ctx_id, ndw))                           \
    X(int, create_fence, (int client_fence_id, uint32_t ctx_id), (client_fence_id, ctx_id))                  \
    X(int, context_create_fence, (uint32_t ctx_id, uint32_t flags, uint32_t ring_idx, uint64_t fence_id),    \
      (ctx_id, flags, ring_idx, fence_id))                                                                   \
    X(void, ctx_attach_resource, (int ctx_id, int res_handle), (ctx_id, res_handle))                        \
    X(void, ctx_detach_resource, (int ctx_id, int res_handle), (ctx_id, res_handle))                        \
    X(int, resource_create, (struct virgl_renderer_resource_create_args *args, struct iovec *iov,            \
                             uint32_t num_iovs), (args, iov, num_iovs))                                      \
    X(int, resource_create_blob, (const struct virgl_renderer_resource_create_blob_args *args), (args))      \
    X(void, resource_unref, (uint32_t res_handle), (res_handle))                                             \
    X(int, resource_attach_iov, (int res_handle, struct iovec *iov, int num_iovs), (res_handle, iov, num_iovs)) \
    X(void, resource_detach_iov, (int res_handle, struct iovec **iov, int *num_iovs), (res_handle, iov, num_iovs)) \
    X(int, resource_get_info, (int res_handle, struct virgl_renderer_resource_info *info), (res_handle, info)) \
    X(int, resource_get_info_ext, (int res_handle, struct virgl_renderer_resource_info_ext *info),           \
      (res_handle, info))                                                                                    \
    X(int, resource_map, (uint32_t res_handle, void **map, uint64_t *out_size), (res_handle, map, out_size)) \
    X(int, resource_unmap, (uint32_t res_handle), (res_handle))                                              \
    X(int, resource_get_map_info, (uint32_t res_handle, uint32_t *map_info), (res_handle, map_info))        \
    X(void *, get_cursor_data, (uint32_t resource_id, uint32_t *width, uint32_t *height),                    \
      (resource_id, width, height))                                                                          \
    X(int, transfer_read_iov, (uint32_t handle, uint32_t ctx_id, uint32_t level, uint32_t stride,            \
                               uint32_t layer_stride, struct virgl_box *box, uint64_t offset,                \
                               struct iovec *iov, int iovec_cnt),                                            \
      (handle, ctx_id, level, stride, layer_stride, box, offset, iov, iovec_cnt))                            \
    X(int, transfer_write_iov, (uint32_t handle, uint32_t ctx_id, int level, uint32_t stride,                \
                                uint32_t layer_stride, struct virgl_box *box, uint64_t offset,               \
                                struct iovec *iovec, unsigned int iovec_cnt),                                \
      (handle, ctx_id, level, stride, layer_stride, box, offset, iovec, iovec_cnt))

#endif
