/* Per-guest-context state of the backend library, and the process-wide registry of contexts
 * keyed by virgl ctx_id. */
#ifndef APIR_BACKEND_CONTEXT_H
#define APIR_BACKEND_CONTEXT_H

#include "apir_forward.h"
#include "apir_protocol.h"
#include "backend_stats.h"
#include "ggml-backend.h"
#include "graph_decode.h"
#include "handle_table.h"
#include "pinned_blobs.h"
#include "queued_writes.h"
#include "repacked_weights.h"
#include "write_shadow.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

struct backend_device {
    ggml_backend_dev_t dev;
    uint32_t buft;      /* handle of the device's buffer type */
    uint32_t host_buft; /* handle of its host buffer type, 0 if none */
    ggml_backend_buffer_type_t *extra_bufts; /* a CPU device's, for repacked weights; NULL: none */
};

/* a BACKEND handle names one of these */
struct backend_stream {
    ggml_backend_t backend;
    uint32_t device;            /* index into backend_ctx.devices */
    /* the last graphs computed, for GRAPH_RECOMPUTE (graph NULL = empty slot); a new one takes
     * an empty slot or the least recently computed */
    struct decoded_graph graphs[APIR_GRAPH_SLOTS];
    uint64_t graph_used[APIR_GRAPH_SLOTS], graph_tick;
    /* the CPU backend's own threads, kept between computes; made at the first compute by the
     * process that computes (a forked child has none of its parent's threads) */
    void *threadpool;
    pid_t threadpool_pid;
    int n_threads;
    void *(*threadpool_new)(struct ggml_threadpool_params *);
    void (*threadpool_free)(void *);
    void (*threadpool_set)(ggml_backend_t, void *);
};

/* frees the cached graph, the backend and its threads */
void backend_stream_free(struct backend_stream *s);

struct backend_ctx {
    uint32_t id;
    ggml_backend_reg_t reg;
    uint32_t n_devices;
    struct backend_device *devices;
    struct handle_table handles;
    pthread_mutex_t call_lock; /* one FORWARD command at a time per context */
    /* first failure of a command run without a reply (APIR_BACKEND_OK: none); returned by
     * the next command that waits (apir_forward.h, fire-and-forget). Under call_lock. */
    uint32_t deferred_error;
    /* per-guest limits (apir.limit.buffer_bytes, apir.limit.handles; 0: none) and usage;
     * buffer_bytes counts the buffers, backend_ctx_room adds the shadow and the stage */
    uint64_t buffer_bytes_limit, buffer_bytes;
    struct backend_stats stats; /* VIRGL_APIR_STATS; under call_lock */
    struct queued_writes writes; /* BUFFER_SET_INLINE queued on a stream; under call_lock */
    /* bytes written by BUFFER_SET_INLINE into this context's buffers, for index checks
     * without a read-back; under call_lock */
    struct write_shadow shadow;
    struct pinned_blobs pinned; /* resources the device copies from directly; under call_lock */
    struct repacked_weights repacked; /* the CPU backend's copies of weights; under call_lock */
    /* registry bookkeeping */
    unsigned users; /* dispatch calls running */
    pthread_cond_t idle;
    struct backend_ctx *next;
};

/* a buffer type handle (BUFT entries point here: the pointer is ggml's, never sent) */
ggml_backend_buffer_type_t backend_ctx_buft(struct backend_ctx *ctx, uint32_t h);
ggml_backend_buffer_t backend_ctx_buffer(struct backend_ctx *ctx, uint32_t h);
struct backend_stream *backend_ctx_stream(struct backend_ctx *ctx, uint32_t h);
/* drops every cached graph (buffers they point into may be going away) */
void backend_ctx_drop_graphs(struct backend_ctx *ctx);
/* bytes [offset, offset+size) of buf change other than by BUFFER_SET_INLINE's record (size
 * UINT64_MAX: to the end): the write shadow's records and the repacked weights there are stale */
void backend_ctx_bytes_changed(struct backend_ctx *ctx, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size);
/* a kept graph of ctx checks indices it does not compute in [offset, offset+size) of buf */
bool backend_ctx_reads_indices(struct backend_ctx *ctx, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size);
/* What apir.limit.buffer_bytes leaves after the context's buffers, write shadow, staging
 * buffer and repacked weights: those only take what the buffers leave (UINT64_MAX: no limit) */
uint64_t backend_ctx_room(const struct backend_ctx *ctx);
/* a buffer of size bytes the limit allows is about to be allocated: the shadow, then the
 * stage, then the repacked weights (with the graphs reading them) give way so that all
 * together stay within the limit */
void backend_ctx_make_room(struct backend_ctx *ctx, uint64_t size);
/* resolver over this context's buffer handles */
struct buffer_resolver backend_ctx_resolver(struct backend_ctx *ctx);

/* Registry. acquire returns the live context for id (and marks it in use) or NULL;
 * release must follow. */
uint32_t backend_ctx_create(uint32_t id, ggml_backend_reg_t reg);
struct backend_ctx *backend_ctx_acquire(uint32_t id);
void backend_ctx_release(struct backend_ctx *ctx);
/* removes the context, waits for calls in flight, frees everything it owns; false if none */
bool backend_ctx_destroy(uint32_t id);

#endif
