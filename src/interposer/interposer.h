/* The libvirglrenderer.so.1 interposer: QEMU loads it in place of virglrenderer. Every call
 * goes to the real virglrenderer (interposer_real.c), except those that belong to contexts the
 * interposer routes to the APIR component (interposer_routes.c): Venus-capset contexts when
 * VIRGL_ROUTE_VENUS_TO_APIR is set, and the blob resources those contexts create. */
#ifndef INTERPOSER_H
#define INTERPOSER_H

#include "virgl_abi.h"

#include <sys/types.h>

/* Where the real virglrenderer is; the default is the distribution's path. */
#define INTERPOSER_ENV_REAL_LIBRARY "VIRGL_APIR_VIRGLRENDERER_PATH"
#ifndef INTERPOSER_DEFAULT_REAL_LIBRARY
#define INTERPOSER_DEFAULT_REAL_LIBRARY "/usr/lib/x86_64-linux-gnu/libvirglrenderer.so.1"
#endif

/* --- the real library (interposer_real.c) --- */
struct virgl_real {
#define VIRGL_REAL_MEMBER(ret, name, params, args) ret(*name) params;
    VIRGL_API_LIST(VIRGL_REAL_MEMBER)
#undef VIRGL_REAL_MEMBER
};
/* Loaded on first use; NULL (logged once, with what to set) if it cannot be. */
const struct virgl_real *interposer_real(void);

/* --- APIR routing (interposer_routes.c); every function is thread-safe ---
 * Each APIR context is served by a worker process of its own (apir_remote_context_*): what a
 * guest makes ggml do can end its worker, never the VMM. A context whose worker has ended is
 * lost: its commands fail (logged) until the guest destroys it. */
/* How a context is served. With VIRGL_ROUTE_VENUS_TO_APIR set, a Venus-capset context starts
 * UNDECIDED: it exists both in the real virglrenderer (Venus) and in the APIR component until
 * its first command decides. An APIR command (type 331 + n) makes it APIR and the real Venus
 * context goes; anything else leaves it to Venus (NONE) and the component's context goes. So
 * ggml guests and Vulkan guests share one VMM. Until then its blobs with a blob id are the
 * component's (Venus has no object for an id before a command made one) and those without
 * (Venus's shared memory) are Venus's. */
enum route_state { ROUTE_NONE, ROUTE_UNDECIDED, ROUTE_APIR };
/* true if a context of this capset may go to the APIR component */
bool routes_wants_capset(uint32_t capset_id);
/* 0, or a positive errno (as virglrenderer returns); undecided: see enum route_state */
int routes_context_create(uint32_t ctx_id, uint32_t capset_id, bool undecided);
/* the context's state before it was destroyed (NONE: not ours) */
enum route_state routes_context_destroy(uint32_t ctx_id);
enum route_state routes_context_state(uint32_t ctx_id);
/* the pid of the worker serving the context, -1 if none */
pid_t routes_context_worker(uint32_t ctx_id);
/* the context's state for this submission: the first one of an UNDECIDED context decides
 * (*decided set): APIR (the caller destroys the real Venus context) or NONE (forward) */
enum route_state routes_decide(uint32_t ctx_id, const void *buf, int ndw, bool *decided);
bool routes_has_resource(uint32_t res_id);
/* submit_cmd of an APIR context, queued to its worker: 0, or EINVAL (also once the worker is
 * gone) */
int routes_submit(uint32_t ctx_id, const void *buf, int ndw);
/* blob creation for an APIR context: 0 or -errno (virglrenderer's convention here) */
int routes_create_blob(const struct virgl_renderer_resource_create_blob_args *args);
int routes_resource_map(uint32_t res_id, void **map, uint64_t *size);
int routes_resource_unmap(uint32_t res_id);
int routes_resource_info(uint32_t res_id, struct virgl_renderer_resource_info *info);
void routes_resource_unref(uint32_t res_id);
void routes_attach(uint32_t ctx_id, uint32_t res_id);
void routes_detach(uint32_t ctx_id, uint32_t res_id);
/* a fence on an APIR context: it signals once the worker has run every command submitted
 * before it (or has ended): at a routes_signal_fences() (virgl_renderer_poll), or, when the
 * VMM asked for VIRGL_RENDERER_ASYNC_FENCE_CB, from the interposer's fence thread */
void routes_fence(uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id);
/* notices ended workers, calls write_context_fence for every APIR fence whose work is done */
void routes_signal_fences(void);
/* remembers QEMU's callbacks (write_context_fence) */
void routes_set_callbacks(void *cookie, int flags, const struct virgl_renderer_callbacks *cb);
/* the VMM resets or cleans up the renderer: every APIR context and resource goes (waits for
 * the workers to end) */
void routes_reset(void);

#endif
