/* The contexts and resources the interposer serves with the APIR component instead of the
 * real virglrenderer. Blob memory is owned here, not by a context: QEMU maps it into the
 * guest and may keep it mapped after the context is gone, so it lives until the resource is
 * both unreferenced and unmapped. All state sits behind one lock: QEMU drives virglrenderer
 * from its main loop, so contention is not a concern, only correctness. */
#include "interposer.h"

#include "apir_component.h"
#include "apir_protocol.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Limits on what guests may reserve (the client uses 1 MiB + 32 MiB per process). Blob memory
 * is reserved lazily, so these bound address space and bookkeeping, not RAM: what a guest
 * can touch is bounded by QEMU's hostmem window. */
#define ROUTES_MAX_BLOB_BYTES (1ull << 32)
#define ROUTES_MAX_TOTAL_BYTES (1ull << 38)
#define ROUTES_MAX_BLOBS 4096

struct route_ctx {
    uint32_t ctx_id;
    struct apir_context *ctx;
    uint64_t submissions; /* logged at destroy: tells a killed guest's context from an idle one */
    enum route_state state;
};

struct route_res {
    uint32_t res_id;
    uint32_t owner_ctx;
    void *ptr;
    size_t size;
    bool mapped;
    bool unreferenced; /* freed at unmap */
};

struct route_fence {
    uint32_t ctx_id;
    uint32_t ring_idx;
    uint64_t fence_id;
};

/* a growable array of T */
#define ARRAY(T)                                                                                              \
    struct {                                                                                                 \
        T *items;                                                                                            \
        size_t count, cap;                                                                                   \
    }

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ARRAY(struct route_ctx) ctxs;
static ARRAY(struct route_res) ress;
static ARRAY(struct route_fence) fences;
static uint64_t reserved_bytes; /* sum of the sizes in ress */
static void *cb_cookie;
static const struct virgl_renderer_callbacks *cb;
static bool async_fence_cb;

/* grow_NAME(): makes room for one more item in ARRAY; false when out of memory */
#define DEFINE_GROW(name, T, array)                                                                          \
    static bool grow_##name(void)                                                                            \
    {                                                                                                        \
        if (array.count < array.cap)                                                                         \
            return true;                                                                                     \
        size_t n = array.cap ? array.cap * 2 : 8;                                                            \
        T *p = realloc(array.items, n * sizeof *p);                                                          \
        if (!p)                                                                                              \
            return false;                                                                                    \
        array.items = p;                                                                                     \
        array.cap = n;                                                                                       \
        return true;                                                                                         \
    }
DEFINE_GROW(ctxs, struct route_ctx, ctxs)
DEFINE_GROW(ress, struct route_res, ress)
DEFINE_GROW(fences, struct route_fence, fences)

static struct route_ctx *find_ctx(uint32_t ctx_id)
{
    for (size_t i = 0; i < ctxs.count; i++)
        if (ctxs.items[i].ctx_id == ctx_id)
            return &ctxs.items[i];
    return NULL;
}

static struct route_res *find_res(uint32_t res_id)
{
    for (size_t i = 0; i < ress.count; i++)
        if (ress.items[i].res_id == res_id)
            return &ress.items[i];
    return NULL;
}

bool routes_wants_capset(uint32_t capset_id)
{
    if (capset_id == APIR_CAPSET_ID_APIR)
        return true;
    const char *route = getenv(APIR_ENV_ROUTE_VENUS);
    return capset_id == APIR_CAPSET_ID_VENUS && route && *route;
}

int routes_context_create(uint32_t ctx_id, uint32_t capset_id, bool undecided)
{
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (find_ctx(ctx_id)) {
        apir_component_log("interposer: ctx %u already exists: creation refused", ctx_id);
        rc = EEXIST;
    } else if (!grow_ctxs()) {
        rc = ENOMEM;
    } else {
        struct apir_context *c = apir_context_create(ctx_id, capset_id); /* logs why on failure */
        if (!c)
            rc = EINVAL;
        else
            ctxs.items[ctxs.count++] =
                (struct route_ctx){ctx_id, c, 0, undecided ? ROUTE_UNDECIDED : ROUTE_APIR};
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* drops the table entry and destroys the component's context; the lock is held */
static void remove_ctx(struct route_ctx *c)
{
    struct apir_context *ctx = c->ctx;
    *c = ctxs.items[--ctxs.count];
    apir_context_destroy(ctx);
}

enum route_state routes_context_destroy(uint32_t ctx_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    enum route_state state = c ? c->state : ROUTE_NONE;
    if (c) {
        apir_component_log("interposer: ctx %u: the VMM destroys it after %llu submissions", ctx_id,
                           (unsigned long long)c->submissions);
        remove_ctx(c);
    }
    pthread_mutex_unlock(&lock);
    return state;
}

enum route_state routes_context_state(uint32_t ctx_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    enum route_state state = c ? c->state : ROUTE_NONE;
    pthread_mutex_unlock(&lock);
    return state;
}

enum route_state routes_decide(uint32_t ctx_id, const void *buf, int ndw, bool *decided)
{
    *decided = false;
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    enum route_state state = c ? c->state : ROUTE_NONE;
    if (state == ROUTE_UNDECIDED) {
        int32_t type = -1;
        if (ndw >= 1 && buf)
            memcpy(&type, buf, sizeof type);
        bool apir = type >= APIR_VENUS_CMD_OFFSET && type < APIR_VENUS_CMD_OFFSET + APIR_COMMAND_TYPE_COUNT;
        apir_component_log("interposer: ctx %u: first command type %d: %s", ctx_id, (int)type,
                           apir ? "an APIR command: served by the APIR component from now on"
                                : "not APIR: the context stays with virglrenderer's Venus");
        *decided = true;
        if (apir) {
            c->state = state = ROUTE_APIR;
        } else {
            remove_ctx(c);
            state = ROUTE_NONE;
        }
    }
    pthread_mutex_unlock(&lock);
    return state;
}

bool routes_has_resource(uint32_t res_id)
{
    pthread_mutex_lock(&lock);
    bool r = find_res(res_id) != NULL;
    pthread_mutex_unlock(&lock);
    return r;
}

int routes_submit(uint32_t ctx_id, const void *buf, int ndw)
{
    if (ndw <= 0 || !buf) {
        apir_component_log("interposer: ctx %u: submission of %d words refused", ctx_id, ndw);
        return EINVAL;
    }
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    /* QEMU's buffer is its private copy of the guest's: apir_context_submit's contract */
    if (c)
        c->submissions++;
    int rc = c && apir_context_submit(c->ctx, buf, (size_t)ndw * 4) == 0 ? 0 : EINVAL;
    pthread_mutex_unlock(&lock);
    return rc;
}

static int check_blob_args(const struct virgl_renderer_resource_create_blob_args *a)
{
    long page = sysconf(_SC_PAGESIZE);
    const char *why = NULL;
    if (a->res_handle == 0)
        why = "resource id 0";
    else if (a->blob_mem != VIRGL_RENDERER_BLOB_MEM_HOST3D)
        why = "only host memory blobs (HOST3D) are served";
    else if (!(a->blob_flags & VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE))
        why = "the blob is not mappable";
    else if (a->num_iovs != 0)
        why = "a host memory blob has no guest pages";
    else if (a->size == 0 || a->size % (uint64_t)page != 0)
        why = "the size is not a positive multiple of the page size";
    else if (a->size > ROUTES_MAX_BLOB_BYTES)
        why = "the size is over 4 GiB";
    else if (find_res(a->res_handle))
        why = "the resource id is in use";
    else if (ress.count >= ROUTES_MAX_BLOBS)
        why = "4096 APIR blobs exist already";
    else if (reserved_bytes + a->size > ROUTES_MAX_TOTAL_BYTES)
        why = "APIR blobs would reserve more than 256 GiB";
    if (!why)
        return 0;
    apir_component_log("interposer: ctx %u: blob %u of %llu bytes refused: %s", a->ctx_id, a->res_handle,
                       (unsigned long long)a->size, why);
    return -EINVAL;
}

int routes_create_blob(const struct virgl_renderer_resource_create_blob_args *a)
{
    pthread_mutex_lock(&lock);
    int rc = check_blob_args(a);
    struct route_ctx *c = find_ctx(a->ctx_id);
    if (!rc && !c)
        rc = -EINVAL;
    if (!rc && !grow_ress())
        rc = -ENOMEM;
    void *p = MAP_FAILED;
    if (!rc) {
        /* lazily backed: the guest's hostmem window bounds what can be touched */
        p = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
            apir_component_log("interposer: ctx %u: blob %u: mmap of %llu bytes failed: %s", a->ctx_id,
                               a->res_handle, (unsigned long long)a->size, strerror(errno));
        }
    }
    if (!rc && apir_context_attach_resource(c->ctx, a->res_handle, p, a->size) != 0) {
        munmap(p, a->size);
        rc = -EINVAL;
    }
    if (!rc) {
        ress.items[ress.count++] = (struct route_res){a->res_handle, a->ctx_id, p, a->size, false, false};
        reserved_bytes += a->size;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int routes_resource_map(uint32_t res_id, void **map, uint64_t *size)
{
    pthread_mutex_lock(&lock);
    struct route_res *r = find_res(res_id);
    int rc = -EINVAL;
    if (r && !r->mapped && !r->unreferenced) {
        r->mapped = true;
        *map = r->ptr;
        *size = r->size;
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static void free_res(struct route_res *r)
{
    munmap(r->ptr, r->size);
    reserved_bytes -= r->size;
    *r = ress.items[--ress.count];
}

int routes_resource_unmap(uint32_t res_id)
{
    pthread_mutex_lock(&lock);
    struct route_res *r = find_res(res_id);
    int rc = r && r->mapped ? 0 : -EINVAL;
    if (!rc) {
        r->mapped = false;
        if (r->unreferenced)
            free_res(r);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int routes_resource_info(uint32_t res_id, struct virgl_renderer_resource_info *info)
{
    pthread_mutex_lock(&lock);
    struct route_res *r = find_res(res_id);
    if (r) {
        memset(info, 0, sizeof *info);
        info->handle = res_id;
        info->fd = -1; /* no dma-buf: it cannot be scanned out */
    }
    pthread_mutex_unlock(&lock);
    return r ? 0 : -EINVAL;
}

void routes_resource_unref(uint32_t res_id)
{
    pthread_mutex_lock(&lock);
    struct route_res *r = find_res(res_id);
    if (r) {
        for (size_t i = 0; i < ctxs.count; i++)
            apir_context_detach_resource(ctxs.items[i].ctx, res_id);
        if (r->mapped) /* QEMU unmaps first; if not, the guest still sees the pages */
            r->unreferenced = true;
        else
            free_res(r);
    }
    pthread_mutex_unlock(&lock);
}

void routes_attach(uint32_t ctx_id, uint32_t res_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    struct route_res *r = find_res(res_id);
    if (c && r && !r->unreferenced)
        apir_context_attach_resource(c->ctx, res_id, r->ptr, r->size); /* -1: already attached */
    else if (c)
        apir_component_log("interposer: ctx %u: attach of resource %u ignored: not an APIR blob", ctx_id, res_id);
    pthread_mutex_unlock(&lock);
}

void routes_detach(uint32_t ctx_id, uint32_t res_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    if (c)
        apir_context_detach_resource(c->ctx, res_id);
    pthread_mutex_unlock(&lock);
}

void routes_set_callbacks(void *cookie, int flags, const struct virgl_renderer_callbacks *callbacks)
{
    pthread_mutex_lock(&lock);
    cb_cookie = cookie;
    cb = callbacks;
    async_fence_cb = (flags & VIRGL_RENDERER_ASYNC_FENCE_CB) != 0;
    if (!cb || cb->version < 3 || !cb->write_context_fence)
        apir_component_log("interposer: the VMM's callbacks (version %d) have no write_context_fence: APIR "
                           "contexts' fences will not signal", cb ? cb->version : -1);
    pthread_mutex_unlock(&lock);
}

void routes_fence(uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id)
{
    pthread_mutex_lock(&lock);
    bool now = async_fence_cb;
    if (!now) {
        /* mergeable fences: only the newest per (context, ring) matters */
        struct route_fence *f = NULL;
        for (size_t i = 0; i < fences.count && !f; i++)
            if (fences.items[i].ctx_id == ctx_id && fences.items[i].ring_idx == ring_idx)
                f = &fences.items[i];
        if (f) {
            if (fence_id > f->fence_id)
                f->fence_id = fence_id;
        } else if (grow_fences()) {
            fences.items[fences.count++] = (struct route_fence){ctx_id, ring_idx, fence_id};
        } else {
            now = true; /* out of memory: signal at once rather than never */
        }
    }
    const struct virgl_renderer_callbacks *c = cb;
    void *cookie = cb_cookie;
    pthread_mutex_unlock(&lock);
    /* with ASYNC_FENCE_CB the VMM defers the callback's work itself; otherwise it expects it
     * from virgl_renderer_poll(), after the fenced command is queued */
    if (now && c && c->version >= 3 && c->write_context_fence)
        c->write_context_fence(cookie, ctx_id, ring_idx, fence_id);
}

void routes_signal_fences(void)
{
    pthread_mutex_lock(&lock);
    size_t n = fences.count;
    struct route_fence *list = n ? malloc(n * sizeof *list) : NULL;
    if (list) {
        memcpy(list, fences.items, n * sizeof *list);
        fences.count = 0;
    } else {
        n = 0;
    }
    const struct virgl_renderer_callbacks *c = cb;
    void *cookie = cb_cookie;
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < n; i++)
        if (c && c->version >= 3 && c->write_context_fence)
            c->write_context_fence(cookie, list[i].ctx_id, list[i].ring_idx, list[i].fence_id);
    free(list);
}

void routes_reset(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ctxs.count; i++) {
        apir_component_log("interposer: ctx %u: destroyed by a renderer reset", ctxs.items[i].ctx_id);
        apir_context_destroy(ctxs.items[i].ctx);
    }
    ctxs.count = 0;
    /* a mapped blob stays: the guest's pages must not vanish under it */
    for (size_t i = 0; i < ress.count;) {
        if (ress.items[i].mapped) {
            ress.items[i++].unreferenced = true;
        } else {
            free_res(&ress.items[i]);
        }
    }
    fences.count = 0;
    pthread_mutex_unlock(&lock);
}
