/* The contexts and resources the interposer serves with the APIR component instead of the
 * real virglrenderer. Each context runs in a worker process of its own
 * (apir_remote_context_*): a ggml assertion, a crash or a hang there ends that worker, never
 * the VMM; the context then reports its device lost. The VMM's process never loads the
 * backend or a GGML library.
 *
 * Blob memory is a sealed memfd (apir_shared_memory_create) owned here, not by a context: QEMU
 * maps our view into the guest and may keep it mapped after the context is gone, so it lives
 * until the resource is both unreferenced and unmapped; each worker maps its own view from the
 * descriptor. All state sits behind one lock: QEMU drives virglrenderer from its main loop, so
 * contention is not a concern, only correctness. */
#include "interposer.h"

#include "apir_array.h"
#include "apir_component.h"
#include "apir_protocol.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Limits on what guests may reserve (the client uses 1 MiB + 32 MiB per process). Blob memory
 * is backed lazily, so these bound address space, descriptors and bookkeeping, not RAM: what
 * a guest can touch is bounded by QEMU's hostmem window. */
#define ROUTES_MAX_BLOB_BYTES (1ull << 32)
#define ROUTES_MAX_TOTAL_BYTES (1ull << 38)
#define ROUTES_MAX_BLOBS 4096
#define ROUTES_MAX_SUBMIT_BYTES (64u << 20) /* what a worker accepts in one message */
#define ROUTES_FENCE_POLL_NS 1000000       /* the async fence thread, while fences wait */

struct route_ctx {
    uint32_t ctx_id;
    struct apir_remote_context *worker;
    uint64_t submissions; /* queued to the worker; logged at destroy */
    enum route_state state;
    bool lost;                       /* the worker is gone: the guest's device is lost */
    uint64_t max_blobs, max_bytes;   /* the component's per-context limits (0: none) */
    uint64_t command_ns;             /* apir.limit.command_seconds (0: none) */
    uint32_t *attached;              /* resource ids the worker has mapped */
    size_t n_attached, cap_attached;
    uint64_t attached_bytes;
};

struct route_res {
    uint32_t res_id;
    int fd; /* the sealed memfd every worker maps */
    void *ptr;
    size_t size;
    bool mapped;
    bool unreferenced; /* freed at unmap */
};

struct route_fence {
    uint32_t ctx_id;
    uint32_t ring_idx;
    uint64_t fence_id;
    uint64_t after; /* the context's submissions the worker must have run first */
    bool gone;      /* its context was destroyed (a new one may reuse the id): ready */
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
static pthread_cond_t fence_wake = PTHREAD_COND_INITIALIZER;
static bool fence_thread_started;
static pthread_cond_t reapers_done = PTHREAD_COND_INITIALIZER;
#if defined(__SANITIZE_ADDRESS__)
#define ROUTES_FORK_UNSAFE_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ROUTES_FORK_UNSAFE_ALLOCATOR 1
#endif
#endif
static unsigned reapers; /* workers being stopped by a reaper thread */

/* grow_NAME(): makes room for one more item in ARRAY; false when out of memory */
#define DEFINE_GROW(name, T, array)                                                                          \
    static bool grow_##name(void)                                                                            \
    {                                                                                                        \
        T *p = apir_array_grow(array.items, &array.cap, array.count, sizeof *p, 8);                          \
        if (!p)                                                                                              \
            return false;                                                                                    \
        array.items = p;                                                                                     \
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

/* --- workers --- */

struct reaper_arg {
    uint32_t ctx_id;
    pid_t pid;
    struct apir_remote_context *worker;
};

static void *reap(void *p)
{
    struct reaper_arg *a = p;
    apir_remote_context_destroy(a->worker); /* logs an unclean end itself */
    apir_component_log_always("interposer: ctx %u: worker %d ended, its context freed", a->ctx_id, (int)a->pid);
    free(a);
    pthread_mutex_lock(&lock);
    reapers--;
    pthread_cond_broadcast(&reapers_done);
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Stops a worker without blocking the VMM: the worker finishes the command in progress, then
 * frees its context (SIGKILL after 5 s), in a thread of its own. The lock is held. */
static void stop_worker(uint32_t ctx_id, struct apir_remote_context *w)
{
    struct reaper_arg *a = malloc(sizeof *a);
    pthread_attr_t attr;
    pthread_t t;
    bool started = false;
    if (a && pthread_attr_init(&attr) == 0) {
        *a = (struct reaper_arg){ctx_id, apir_remote_context_pid(w), w};
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, reap, a) == 0;
        pthread_attr_destroy(&attr);
    }
    if (started) {
        reapers++;
        return;
    }
    free(a); /* no thread: stop it here, blocking */
    apir_remote_context_destroy(w);
}

/* the guest's device is lost: said once, in the log every hypervisor line goes to */
static void mark_lost(struct route_ctx *c, const char *why)
{
    if (c->lost)
        return;
    c->lost = true;
    apir_component_log_always("interposer: ctx %u: %s (worker %d): the guest's device is lost; its commands fail "
                              "from now on (it must destroy the context and open a new one); QEMU and other "
                              "contexts carry on",
                              c->ctx_id, why, (int)apir_remote_context_pid(c->worker));
}

/* notices a worker that ended (logged by the component: signal, last command) or one whose
 * command has run past apir.limit.command_seconds (killed here, as apir-server's watchdog
 * does). The lock is held. */
static void check_worker(struct route_ctx *c)
{
    if (c->lost)
        return;
    if (apir_remote_context_poll(c->worker, NULL)) {
        mark_lost(c, "its worker ended");
        return;
    }
    const struct apir_activity *a = apir_remote_context_activity(c->worker);
    uint64_t since = atomic_load(&a->since_ns);
    if (c->command_ns && atomic_load(&a->busy) && apir_monotonic_ns() - since > c->command_ns) {
        char what[96];
        apir_command_describe(atomic_load(&a->type), atomic_load(&a->forward_index), what, sizeof what);
        apir_component_log_always("interposer: ctx %u: command %s has run longer than %s=%llu s: worker %d killed",
                                  c->ctx_id, what, APIR_KEY_LIMIT_COMMAND_SECONDS,
                                  (unsigned long long)(c->command_ns / 1000000000ull),
                                  (int)apir_remote_context_pid(c->worker));
        kill(apir_remote_context_pid(c->worker), SIGKILL);
        mark_lost(c, "its worker was killed by the command watchdog");
    }
}

static uint64_t worker_done(const struct route_ctx *c)
{
    return atomic_load_explicit(&apir_remote_context_activity(c->worker)->submits_done, memory_order_acquire);
}

/* --- contexts --- */

int routes_context_create(uint32_t ctx_id, uint32_t capset_id, bool undecided)
{
    struct apir_limits lim;
    if (apir_limits_from_env(&lim) != 0) /* logged: which variable */
        return EINVAL;
    pthread_mutex_lock(&lock);
    bool exists = find_ctx(ctx_id) != NULL;
    pthread_mutex_unlock(&lock);
    if (exists) {
        apir_component_log("interposer: ctx %u already exists: creation refused", ctx_id);
        return EEXIST;
    }
#ifdef ROUTES_FORK_UNSAFE_ALLOCATOR
    /* GCC's AddressSanitizer allocator is not fork-safe: a fork while a reaper thread frees
     * leaves the worker's allocator locked for good (glibc's malloc is, so release builds
     * fork at once) */
    pthread_mutex_lock(&lock);
    while (reapers)
        pthread_cond_wait(&reapers_done, &lock);
    pthread_mutex_unlock(&lock);
#endif
    /* forked outside the lock: the reaper and fence threads need it meanwhile */
    struct apir_remote_context *w = apir_remote_context_create(ctx_id, capset_id); /* logs why on failure */
    if (!w)
        return EINVAL;
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (find_ctx(ctx_id)) { /* QEMU runs this from one thread; a race would be its bug */
        rc = EEXIST;
    } else if (!grow_ctxs()) {
        rc = ENOMEM;
    } else {
        ctxs.items[ctxs.count++] = (struct route_ctx){
            .ctx_id = ctx_id,
            .worker = w,
            .state = undecided ? ROUTE_UNDECIDED : ROUTE_APIR,
            .max_blobs = lim.blobs,
            .max_bytes = lim.blob_bytes,
            .command_ns = lim.command_seconds * 1000000000ull,
        };
        apir_component_log("interposer: ctx %u: served by worker %d", ctx_id, (int)apir_remote_context_pid(w));
    }
    if (rc)
        stop_worker(ctx_id, w);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* drops the table entry and stops the worker; the lock is held */
static void remove_ctx(struct route_ctx *c)
{
    struct route_ctx gone = *c;
    *c = ctxs.items[--ctxs.count];
    free(gone.attached);
    stop_worker(gone.ctx_id, gone.worker);
    for (size_t i = 0; i < fences.count; i++) /* nothing more will run: they signal now */
        if (fences.items[i].ctx_id == gone.ctx_id)
            fences.items[i].gone = true;
    pthread_cond_broadcast(&fence_wake);
}

enum route_state routes_context_destroy(uint32_t ctx_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    enum route_state state = c ? c->state : ROUTE_NONE;
    if (c) {
        apir_component_log("interposer: ctx %u: the VMM destroys it after %llu submissions%s", ctx_id,
                           (unsigned long long)c->submissions, c->lost ? " (its device was lost)" : "");
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

pid_t routes_context_worker(uint32_t ctx_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    pid_t pid = c ? apir_remote_context_pid(c->worker) : -1;
    pthread_mutex_unlock(&lock);
    return pid;
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
    if (ndw <= 0 || !buf || (size_t)ndw > ROUTES_MAX_SUBMIT_BYTES / 4) {
        apir_component_log("interposer: ctx %u: submission of %d words refused", ctx_id, ndw);
        return EINVAL;
    }
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    int rc = EINVAL;
    if (c) {
        check_worker(c);
        if (c->lost) {
            apir_component_log("interposer: ctx %u: command refused: the device is lost (its worker ended)", ctx_id);
        } else if (apir_remote_context_submit(c->worker, buf, (size_t)ndw * 4) != 0) {
            /* the socket broke: the worker is gone, or going */
            apir_remote_context_poll(c->worker, NULL);
            mark_lost(c, "its worker stopped taking commands");
        } else {
            c->submissions++;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* --- resources --- */

static bool is_attached(const struct route_ctx *c, uint32_t res_id, size_t *index)
{
    for (size_t i = 0; i < c->n_attached; i++) {
        if (c->attached[i] == res_id) {
            if (index)
                *index = i;
            return true;
        }
    }
    return false;
}

/* gives the worker the resource; 0 (also if it had it), or -1 (logged). The lock is held. */
static int attach(struct route_ctx *c, const struct route_res *r)
{
    if (is_attached(c, r->res_id, NULL))
        return 0;
    const char *why = NULL;
    if (c->lost)
        why = "the device is lost";
    else if (c->max_blobs && c->n_attached >= c->max_blobs)
        why = "the context has " APIR_KEY_LIMIT_BLOBS " resources attached already";
    else if (c->max_bytes && c->attached_bytes + r->size > c->max_bytes)
        why = "it would pass " APIR_KEY_LIMIT_BLOB_BYTES;
    if (!why) {
        uint32_t *p = apir_array_grow(c->attached, &c->cap_attached, c->n_attached, sizeof *p, 8);
        if (!p)
            why = "out of memory";
        else
            c->attached = p;
    }
    if (!why && apir_remote_context_attach_resource(c->worker, r->res_id, r->fd, r->size) != 0) {
        apir_remote_context_poll(c->worker, NULL);
        mark_lost(c, "its worker stopped taking resources");
        why = "the device is lost";
    }
    if (why) {
        apir_component_log("interposer: ctx %u: resource %u (%zu bytes) not attached: %s (limits: "
                           "VIRGL_APIR_MAX_BLOBS, VIRGL_APIR_MAX_BLOB_BYTES)",
                           c->ctx_id, r->res_id, r->size, why);
        return -1;
    }
    c->attached[c->n_attached++] = r->res_id;
    c->attached_bytes += r->size;
    return 0;
}

/* the lock is held */
static void detach(struct route_ctx *c, uint32_t res_id)
{
    size_t i;
    if (!is_attached(c, res_id, &i))
        return;
    struct route_res *r = find_res(res_id);
    c->attached_bytes -= r ? r->size : 0;
    c->attached[i] = c->attached[--c->n_attached];
    /* in order on the socket: the worker unmaps its view before anything later runs */
    if (!c->lost)
        apir_remote_context_detach_resource(c->worker, res_id);
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

static void free_res(struct route_res *r)
{
    munmap(r->ptr, r->size);
    close(r->fd);
    reserved_bytes -= r->size;
    *r = ress.items[--ress.count];
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
    struct route_res r = {.res_id = a->res_handle, .fd = -1, .size = (size_t)a->size};
    if (!rc) {
        /* a sealed memfd: the worker maps it, and no holder can resize it under another */
        r.fd = apir_shared_memory_create("apir-blob", r.size, &r.ptr);
        if (r.fd < 0) {
            rc = -errno;
            apir_component_log("interposer: ctx %u: blob %u: shared memory of %zu bytes: %s%s", a->ctx_id,
                               a->res_handle, r.size, strerror(errno),
                               errno == EMFILE ? " (raise the VMM's open-file limit, ulimit -n)" : "");
        } else {
            /* workers forked later must not see other guests' memory */
            madvise(r.ptr, r.size, MADV_DONTFORK);
        }
    }
    if (!rc && attach(c, &r) != 0) {
        munmap(r.ptr, r.size);
        close(r.fd);
        rc = -EINVAL;
    }
    if (!rc) {
        ress.items[ress.count++] = r;
        reserved_bytes += r.size;
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
            detach(&ctxs.items[i], res_id);
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
        attach(c, r); /* logs a refusal */
    else if (c)
        apir_component_log("interposer: ctx %u: attach of resource %u ignored: not an APIR blob", ctx_id, res_id);
    pthread_mutex_unlock(&lock);
}

void routes_detach(uint32_t ctx_id, uint32_t res_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    if (c)
        detach(c, res_id);
    pthread_mutex_unlock(&lock);
}

/* --- fences --- */

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

/* Moves the fences whose work is done (the worker has run every submission before them, or
 * the context is gone or lost: nothing more will run) to *out. The lock is held. */
static size_t take_ready_fences(struct route_fence **out)
{
    for (size_t i = 0; i < ctxs.count; i++)
        check_worker(&ctxs.items[i]);
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < fences.count;) {
        struct route_fence *f = &fences.items[i];
        struct route_ctx *c = find_ctx(f->ctx_id);
        if (!f->gone && c && !c->lost && worker_done(c) < f->after) {
            i++;
            continue;
        }
        if (!*out && !(*out = malloc(fences.count * sizeof **out)))
            return 0; /* out of memory: they stay pending for the next call */
        (*out)[n++] = *f;
        *f = fences.items[--fences.count];
    }
    return n;
}

static void signal_fences(const struct route_fence *list, size_t n, const struct virgl_renderer_callbacks *c,
                          void *cookie)
{
    for (size_t i = 0; i < n; i++)
        if (c && c->version >= 3 && c->write_context_fence)
            c->write_context_fence(cookie, list[i].ctx_id, list[i].ring_idx, list[i].fence_id);
}

/* With ASYNC_FENCE_CB the VMM takes write_context_fence from any thread, at the time the work
 * completes, and does not poll: this thread watches the pending fences while there are any. */
/* signals the fences whose work is done; returns how many */
static size_t signal_ready_fences(void)
{
    pthread_mutex_lock(&lock);
    struct route_fence *list;
    size_t n = take_ready_fences(&list);
    const struct virgl_renderer_callbacks *c = cb;
    void *cookie = cb_cookie;
    pthread_mutex_unlock(&lock);
    signal_fences(list, n, c, cookie);
    free(list);
    return n;
}

static void *fence_thread(void *unused)
{
    (void)unused;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (fences.count == 0 || !async_fence_cb)
            pthread_cond_wait(&fence_wake, &lock);
        pthread_mutex_unlock(&lock);
        if (!signal_ready_fences()) {
            struct timespec ts = {0, ROUTES_FENCE_POLL_NS};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

void routes_fence(uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id)
{
    pthread_mutex_lock(&lock);
    struct route_ctx *c = find_ctx(ctx_id);
    uint64_t after = c ? c->submissions : 0;
    /* mergeable fences: only the newest per (context, ring) matters; it signals once the work
     * before it is done, which covers the older one's */
    struct route_fence *f = NULL;
    for (size_t i = 0; i < fences.count && !f; i++)
        if (fences.items[i].ctx_id == ctx_id && fences.items[i].ring_idx == ring_idx && !fences.items[i].gone)
            f = &fences.items[i];
    bool now = false;
    if (f) {
        if (fence_id > f->fence_id)
            f->fence_id = fence_id;
        if (after > f->after)
            f->after = after;
    } else if (grow_fences()) {
        fences.items[fences.count++] = (struct route_fence){ctx_id, ring_idx, fence_id, after, false};
    } else {
        now = true; /* out of memory: signal at once rather than never */
    }
    if (async_fence_cb && !fence_thread_started) {
        pthread_t t;
        fence_thread_started = pthread_create(&t, NULL, fence_thread, NULL) == 0 && pthread_detach(t) == 0;
        if (!fence_thread_started)
            apir_component_log("interposer: no fence thread: APIR fences signal at virgl_renderer_poll only");
    }
    pthread_cond_broadcast(&fence_wake);
    const struct virgl_renderer_callbacks *callbacks = cb;
    void *cookie = cb_cookie;
    pthread_mutex_unlock(&lock);
    if (now) {
        struct route_fence one = {ctx_id, ring_idx, fence_id, 0, false};
        signal_fences(&one, 1, callbacks, cookie);
    }
}

void routes_signal_fences(void) { (void)signal_ready_fences(); }

void routes_reset(void)
{
    pthread_mutex_lock(&lock);
    while (ctxs.count) {
        apir_component_log("interposer: ctx %u: destroyed by a renderer reset", ctxs.items[0].ctx_id);
        remove_ctx(&ctxs.items[0]);
    }
    /* a mapped blob stays: the guest's pages must not vanish under it */
    for (size_t i = 0; i < ress.count;) {
        if (ress.items[i].mapped) {
            ress.items[i++].unreferenced = true;
        } else {
            free_res(&ress.items[i]);
        }
    }
    fences.count = 0;
    /* a reset is rare: wait for the workers to be gone, so none outlives what it served */
    while (reapers)
        pthread_cond_wait(&reapers_done, &lock);
    pthread_mutex_unlock(&lock);
}
