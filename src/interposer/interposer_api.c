/* The exported virgl_renderer_* functions QEMU calls. Each either serves an APIR context or
 * resource (interposer_routes.c) or forwards to the real virglrenderer unchanged. */
#include "interposer.h"

#include "apir_component.h"

#include <errno.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* the real function, or the given failure value when the real library is missing (logged
 * once by interposer_real) */
#define REAL(name, ...) (interposer_real() ? interposer_real()->name(__VA_ARGS__) : 0)
#define REAL_OR(fail, name, ...) (interposer_real() ? interposer_real()->name(__VA_ARGS__) : (fail))
#define REAL_VOID(name, ...)                                                                                 \
    do {                                                                                                     \
        if (interposer_real())                                                                               \
            interposer_real()->name(__VA_ARGS__);                                                           \
    } while (0)

EXPORT int virgl_renderer_init(void *cookie, int flags, struct virgl_renderer_callbacks *cb)
{
    routes_set_callbacks(cookie, flags, cb);
    apir_component_log("interposer: init (flags 0x%x); Venus contexts %s", flags,
                       routes_wants_capset(4) ? "go to the APIR component when their first command is APIR's "
                                                "(VIRGL_ROUTE_VENUS_TO_APIR set)"
                                              : "stay with virglrenderer (VIRGL_ROUTE_VENUS_TO_APIR unset)");
    return REAL_OR(-1, init, cookie, flags, cb);
}

EXPORT void virgl_renderer_poll(void)
{
    REAL_VOID(poll);
    routes_signal_fences();
}

EXPORT void virgl_renderer_cleanup(void *cookie)
{
    routes_reset();
    REAL_VOID(cleanup, cookie);
}

EXPORT void virgl_renderer_reset(void)
{
    routes_reset();
    REAL_VOID(reset);
}

EXPORT void virgl_renderer_force_ctx_0(void) { REAL_VOID(force_ctx_0); }

EXPORT void virgl_renderer_get_cap_set(uint32_t set, uint32_t *max_ver, uint32_t *max_size)
{
    *max_ver = 0;
    *max_size = 0;
    REAL_VOID(get_cap_set, set, max_ver, max_size);
}

EXPORT void virgl_renderer_fill_caps(uint32_t set, uint32_t version, void *caps)
{
    REAL_VOID(fill_caps, set, version, caps);
}

EXPORT int virgl_renderer_context_create(uint32_t handle, uint32_t nlen, const char *name)
{
    return REAL_OR(EINVAL, context_create, handle, nlen, name);
}

EXPORT int virgl_renderer_context_create_with_flags(uint32_t ctx_id, uint32_t ctx_flags, uint32_t nlen,
                                                    const char *name)
{
    uint32_t capset = ctx_flags & VIRGL_RENDERER_CONTEXT_FLAG_CAPSET_ID_MASK;
    if (!routes_wants_capset(capset))
        return REAL_OR(EINVAL, context_create_with_flags, ctx_id, ctx_flags, nlen, name);
    if (capset != 4) /* the APIR capset itself: nothing for virglrenderer to do */
        return routes_context_create(ctx_id, capset, false);
    /* Venus: both, until the first command decides (enum route_state) */
    int real_rc = REAL_OR(EINVAL, context_create_with_flags, ctx_id, ctx_flags, nlen, name);
    int rc = routes_context_create(ctx_id, capset, true);
    if (rc && real_rc == 0)
        return 0; /* the component refused it: a plain Venus context */
    if (real_rc)
        apir_component_log("interposer: ctx %u: virglrenderer could not create the Venus context (%d): only an "
                           "APIR guest can use it", ctx_id, real_rc);
    return rc;
}

EXPORT void virgl_renderer_context_destroy(uint32_t handle)
{
    if (routes_context_destroy(handle) != ROUTE_APIR) /* NONE or UNDECIDED: Venus has it too */
        REAL_VOID(context_destroy, handle);
}

EXPORT int virgl_renderer_submit_cmd(void *buffer, int ctx_id, int ndw)
{
    bool decided;
    if (routes_decide((uint32_t)ctx_id, buffer, ndw, &decided) != ROUTE_APIR)
        return REAL_OR(EINVAL, submit_cmd, buffer, ctx_id, ndw);
    if (decided) /* an APIR guest: its Venus twin is not needed */
        REAL_VOID(context_destroy, (uint32_t)ctx_id);
    return routes_submit((uint32_t)ctx_id, buffer, ndw);
}

EXPORT int virgl_renderer_create_fence(int client_fence_id, uint32_t ctx_id)
{
    return REAL_OR(EINVAL, create_fence, client_fence_id, ctx_id);
}

EXPORT int virgl_renderer_context_create_fence(uint32_t ctx_id, uint32_t flags, uint32_t ring_idx, uint64_t fence_id)
{
    /* undecided: nothing was submitted yet, so nothing is pending in either */
    if (routes_context_state(ctx_id) != ROUTE_NONE) {
        routes_fence(ctx_id, ring_idx, fence_id);
        return 0;
    }
    return REAL_OR(-EINVAL, context_create_fence, ctx_id, flags, ring_idx, fence_id);
}

/* attaching or detaching a resource: an APIR context only sees APIR blobs (routed), and
 * virglrenderer never sees them (real, when loaded, gets the others) */
static void resource_use(int ctx_id, int res_handle, void (*routed)(uint32_t, uint32_t), void (*real)(int, int))
{
    enum route_state state = routes_context_state((uint32_t)ctx_id);
    bool ours = routes_has_resource((uint32_t)res_handle);
    if (state == ROUTE_APIR || (state == ROUTE_UNDECIDED && ours))
        routed((uint32_t)ctx_id, (uint32_t)res_handle);
    else if (!ours && real)
        real(ctx_id, res_handle);
}

EXPORT void virgl_renderer_ctx_attach_resource(int ctx_id, int res_handle)
{
    const struct virgl_real *r = interposer_real();
    resource_use(ctx_id, res_handle, routes_attach, r ? r->ctx_attach_resource : NULL);
}

EXPORT void virgl_renderer_ctx_detach_resource(int ctx_id, int res_handle)
{
    const struct virgl_real *r = interposer_real();
    resource_use(ctx_id, res_handle, routes_detach, r ? r->ctx_detach_resource : NULL);
}

EXPORT int virgl_renderer_resource_create(struct virgl_renderer_resource_create_args *args, struct iovec *iov,
                                          uint32_t num_iovs)
{
    return REAL_OR(EINVAL, resource_create, args, iov, num_iovs);
}

EXPORT int virgl_renderer_resource_create_blob(const struct virgl_renderer_resource_create_blob_args *args)
{
    enum route_state state = routes_context_state(args->ctx_id);
    /* undecided: a blob with an id is APIR's (Venus names no object before a command) */
    if (state == ROUTE_APIR || (state == ROUTE_UNDECIDED && args->blob_id != 0))
        return routes_create_blob(args);
    return REAL_OR(-EINVAL, resource_create_blob, args);
}

EXPORT void virgl_renderer_resource_unref(uint32_t res_handle)
{
    if (routes_has_resource(res_handle))
        routes_resource_unref(res_handle);
    else
        REAL_VOID(resource_unref, res_handle);
}

EXPORT int virgl_renderer_resource_attach_iov(int res_handle, struct iovec *iov, int num_iovs)
{
    if (routes_has_resource((uint32_t)res_handle))
        return EINVAL; /* host memory: no guest backing to attach */
    return REAL_OR(EINVAL, resource_attach_iov, res_handle, iov, num_iovs);
}

EXPORT void virgl_renderer_resource_detach_iov(int res_handle, struct iovec **iov, int *num_iovs)
{
    if (routes_has_resource((uint32_t)res_handle)) {
        if (iov)
            *iov = NULL;
        if (num_iovs)
            *num_iovs = 0;
        return;
    }
    REAL_VOID(resource_detach_iov, res_handle, iov, num_iovs);
}

EXPORT int virgl_renderer_resource_get_info(int res_handle, struct virgl_renderer_resource_info *info)
{
    if (routes_has_resource((uint32_t)res_handle))
        return routes_resource_info((uint32_t)res_handle, info);
    return REAL_OR(-EINVAL, resource_get_info, res_handle, info);
}

EXPORT int virgl_renderer_resource_get_info_ext(int res_handle, struct virgl_renderer_resource_info_ext *info)
{
    if (routes_has_resource((uint32_t)res_handle))
        return -EINVAL; /* no texture, no dma-buf: nothing to scan out */
    return REAL_OR(-EINVAL, resource_get_info_ext, res_handle, info);
}

EXPORT int virgl_renderer_resource_map(uint32_t res_handle, void **map, uint64_t *out_size)
{
    if (routes_has_resource(res_handle))
        return routes_resource_map(res_handle, map, out_size);
    return REAL_OR(-EINVAL, resource_map, res_handle, map, out_size);
}

EXPORT int virgl_renderer_resource_unmap(uint32_t res_handle)
{
    if (routes_has_resource(res_handle))
        return routes_resource_unmap(res_handle);
    return REAL_OR(-EINVAL, resource_unmap, res_handle);
}

EXPORT int virgl_renderer_resource_get_map_info(uint32_t res_handle, uint32_t *map_info)
{
    if (routes_has_resource(res_handle)) {
        *map_info = VIRGL_RENDERER_MAP_CACHE_CACHED; /* plain host memory */
        return 0;
    }
    return REAL_OR(-EINVAL, resource_get_map_info, res_handle, map_info);
}

EXPORT void *virgl_renderer_get_cursor_data(uint32_t resource_id, uint32_t *width, uint32_t *height)
{
    if (routes_has_resource(resource_id))
        return NULL;
    return REAL_OR(NULL, get_cursor_data, resource_id, width, height);
}

EXPORT int virgl_renderer_transfer_read_iov(uint32_t handle, uint32_t ctx_id, uint32_t level, uint32_t stride,
                                            uint32_t layer_stride, struct virgl_box *box, uint64_t offset,
                                            struct iovec *iov, int iovec_cnt)
{
    if (routes_has_resource(handle))
        return EINVAL;
    return REAL_OR(EINVAL, transfer_read_iov, handle, ctx_id, level, stride, layer_stride, box, offset, iov,
                   iovec_cnt);
}

EXPORT int virgl_renderer_transfer_write_iov(uint32_t handle, uint32_t ctx_id, int level, uint32_t stride,
                                             uint32_t layer_stride, struct virgl_box *box, uint64_t offset,
                                             struct iovec *iovec, unsigned int iovec_cnt)
{
    if (routes_has_resource(handle))
        return EINVAL;
    return REAL_OR(EINVAL, transfer_write_iov, handle, ctx_id, level, stride, layer_stride, box, offset, iovec,
                   iovec_cnt);
}
