/* Backends (streams) and graph computation, with the last graph of each backend cached for
 * GRAPH_RECOMPUTE. */
#include "apir_forward.h"
#include "backend_log.h"
#include "commands.h"
#include "graph_decode.h"

#include <stdlib.h>
#include <unistd.h>

/* Backends that take a thread count (the CPU backend) get one per online CPU: ggml's default
 * (4) oversubscribes small hosts, where its spinning barriers then cost milliseconds a node.
 * The CPU backend also gets a threadpool of its own, as llama.cpp gives it natively: without
 * one, every compute starts and joins its threads, which a token pays once per graph part. */
static void set_threads(struct backend_stream *s)
{
    ggml_backend_dev_t dev = ggml_backend_get_device(s->backend);
    ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : NULL;
    if (!reg)
        return;
    ggml_backend_set_n_threads_t set_n_threads =
        (ggml_backend_set_n_threads_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (!set_n_threads || n <= 0)
        return;
    s->n_threads = n > 512 ? 512 : (int)n;
    set_n_threads(s->backend, s->n_threads);
    s->threadpool_new =
        (void *(*)(struct ggml_threadpool_params *))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_new");
    s->threadpool_free = (void (*)(void *))ggml_backend_reg_get_proc_address(reg, "ggml_threadpool_free");
    s->threadpool_set =
        (void (*)(ggml_backend_t, void *))ggml_backend_reg_get_proc_address(reg, "ggml_backend_cpu_set_threadpool");
    if (!s->threadpool_free || !s->threadpool_set)
        s->threadpool_new = NULL;
}

static void ensure_threadpool(struct backend_stream *s)
{
    if (!s->threadpool_new || (s->threadpool && s->threadpool_pid == getpid()))
        return;
    /* one inherited through fork() has no threads here: left as it is (never joined) */
    struct ggml_threadpool_params params = ggml_threadpool_params_default(s->n_threads);
    /* ggml's default polling (threads spin briefly for the next graph before they sleep), as
     * llama.cpp's programs run natively: on a 16-core host, sleeping threads (poll 0) made
     * generation 0.60x of native instead of 0.65x, and 0.38x instead of 0.67x on a MoE model */
    s->threadpool = s->threadpool_new(&params);
    s->threadpool_pid = getpid();
    s->threadpool_set(s->backend, s->threadpool);
    if (!s->threadpool)
        s->threadpool_new = NULL; /* computes start their own threads, as without one */
}

uint32_t cmd_backend_init(struct cmd_call *c)
{
    uint32_t index = apir_get_u32(&c->dec);
    ARGS_DONE(c);
    if (index >= c->ctx->n_devices)
        return APIR_BACKEND_ERR_HANDLE;
    struct backend_stream *s = calloc(1, sizeof *s);
    if (!s)
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    s->device = index;
    s->backend = ggml_backend_dev_init(c->ctx->devices[index].dev, NULL);
    if (!s->backend) {
        backend_log("cannot initialize a backend on device %s", ggml_backend_dev_name(c->ctx->devices[index].dev));
        free(s);
        return APIR_BACKEND_ERR_BACKEND;
    }
    set_threads(s);
    uint32_t h = handle_table_add(&c->ctx->handles, HANDLE_BACKEND, s);
    if (!h) {
        backend_stream_free(s);
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    }
    apir_put_u32(&c->enc, h);
    return APIR_BACKEND_OK;
}

uint32_t cmd_backend_free(struct cmd_call *c)
{
    uint32_t h = apir_get_u32(&c->dec);
    ARGS_DONE(c);
    struct backend_stream *s = handle_table_remove(&c->ctx->handles, h, HANDLE_BACKEND);
    if (!s)
        return APIR_BACKEND_ERR_HANDLE;
    queued_writes_forget(&c->ctx->writes, s);
    backend_stream_free(s);
    return APIR_BACKEND_OK;
}

/* time of one step into t[field], when stats are on */
#define TIMED(field, expr)                                                                         \
    do {                                                                                           \
        uint64_t t0_ = backend_stats_on() ? backend_stats_now() : 0;                               \
        expr;                                                                                      \
        if (t0_)                                                                                   \
            t[field] += backend_stats_now() - t0_;                                                 \
    } while (0)

static void settle_writes(void *q) { queued_writes_settle(q); }

/* The last (or only) part: computed asynchronously with the outputs' reads queued behind it on
 * the same stream, and one synchronization for both, as llama.cpp reads its logits natively
 * (staged[i]: where output i lands, NULL: read after, cmd_outputs_copy) */
static enum ggml_status compute_last(struct backend_ctx *ctx, struct backend_stream *s, struct ggml_cgraph *g,
                                     const struct cmd_outputs *outs, const uint8_t **staged)
{
    enum ggml_status gs = ggml_backend_graph_compute_async(s->backend, g);
    for (uint32_t i = 0; outs && gs == GGML_STATUS_SUCCESS && i < outs->n; i++)
        if (outs->r[i].size)
            staged[i] = queued_writes_read_behind(&ctx->writes, s, outs->r[i].buf, outs->r[i].offset,
                                                  (size_t)outs->r[i].size);
    ggml_backend_synchronize(s->backend);
    return gs;
}

/* The indices may have changed since the last compute (BUFFER_SET): check them each time.
 * Indices the graph computes are checked when they exist: the compute runs up to the node
 * that reads them, they are checked, and it goes on. */
static uint32_t compute_parts(struct backend_stream *s, const struct decoded_graph *dg, struct backend_ctx *ctx,
                              const struct cmd_outputs *outs, const uint8_t **staged, uint64_t *t,
                              enum ggml_status *gs)
{
    const struct index_guard *ig = &dg->indices;
    uint32_t st;
    /* a read-back runs on another CUDA stream than the queued inline writes: settle them first */
    struct index_read_hook hook = {settle_writes, &ctx->writes};
    TIMED(BS_SYNC_NS, st = index_guard_check_static(ig, &ctx->shadow, &hook, &t[BS_IDX_SHADOW], &t[BS_IDX_READ]));
    if (st != APIR_BACKEND_OK)
        return st;
    ensure_threadpool(s);
    uint32_t n_parts = dg->n_parts ? dg->n_parts : 1, cut = 0;
    for (uint32_t p = 0; p < n_parts && *gs == GGML_STATUS_SUCCESS; p++) {
        struct ggml_cgraph *g = dg->n_parts ? dg->parts[p] : dg->graph;
        /* the indices read by this part's first node were computed by the parts before */
        for (; dg->n_parts && cut < ig->n_cuts && ig->cuts[cut] <= dg->part_start[p]; cut++) {
            TIMED(BS_SYNC_NS, st = index_guard_check_cut(ig, cut));
            if (st != APIR_BACKEND_OK)
                return st;
        }
        if (p + 1 < n_parts)
            TIMED(BS_COMPUTE_NS, *gs = ggml_backend_graph_compute(s->backend, g));
        else
            TIMED(BS_COMPUTE_NS, *gs = compute_last(ctx, s, g, outs, staged));
        t[BS_COMPUTE_CALLS]++;
    }
    return APIR_BACKEND_OK;
}

/* computes the graph of slot; reused: GRAPH_RECOMPUTE, which may read outputs back (NULL: none) */
static uint32_t compute(struct cmd_call *c, struct backend_stream *s, uint32_t slot, bool reused,
                        const struct cmd_outputs *outs)
{
    const struct decoded_graph *dg = &s->graphs[slot];
    s->graph_used[slot] = ++s->graph_tick;
    /* t[]: VIRGL_APIR_STATS's BS_* times and counts of this compute, added to the context's
     * only when it ran (a refused graph is counted as its command's time alone) */
    uint64_t t[BS_FIELDS] = {0};
    enum ggml_status gs = GGML_STATUS_SUCCESS;
    struct queued_writes *q = &c->ctx->writes;
    queued_writes_before_compute(q, s);
    if (c->ctx->repacked.any_stale) {
        queued_writes_settle(q); /* the guest's bytes they are repacked from */
        repacked_weights_refresh(&c->ctx->repacked);
    }
    const uint8_t *staged[APIR_MAX_RECOMPUTE_OUTPUTS] = {0};
    uint32_t st = compute_parts(s, dg, c->ctx, outs, staged, t, &gs);
    /* (the stage keeps the staged outputs: it goes only when another stream becomes the target) */
    queued_writes_after_compute(q, s, t[BS_COMPUTE_CALLS] > 0);
    /* after, not before: a node may overwrite indices after reading them (the check trusted
     * the record, the next compute must not); and whatever ran, even cut short */
    write_shadow_invalidate_ranges(&c->ctx->shadow, dg->indices.writes, dg->indices.n_writes);
    repacked_weights_invalidate_ranges(&c->ctx->repacked, dg->indices.writes, dg->indices.n_writes);
    if (st != APIR_BACKEND_OK)
        return st;
    if (outs && gs == GGML_STATUS_SUCCESS && (st = cmd_outputs_copy(c->ctx, outs, staged)) != APIR_BACKEND_OK)
        return st;
    if (backend_stats_on()) {
        struct backend_stats *bs = &c->ctx->stats;
        t[BS_GRAPHS] = 1;
        t[reused ? BS_REUSED : BS_DECODED] = 1;
        for (int f = 0; f < BS_FIELDS; f++)
            bs->total.g[f] += t[f];
        backend_stats_graph_done(bs, c->ctx->id);
    }
    apir_put_u32(&c->enc, (uint32_t)gs);
    return APIR_BACKEND_OK;
}

/* an empty slot, else the least recently computed */
static uint32_t free_slot(const struct backend_stream *s)
{
    uint32_t best = 0;
    for (uint32_t i = 0; i < APIR_GRAPH_SLOTS; i++) {
        if (!s->graphs[i].graph)
            return i;
        if (s->graph_used[i] < s->graph_used[best])
            best = i;
    }
    return best;
}

uint32_t cmd_graph_compute(struct cmd_call *c)
{
    struct backend_stream *s = backend_ctx_stream(c->ctx, apir_get_u32(&c->dec));
    if (c->dec.error)
        return APIR_BACKEND_ERR_DECODE;
    if (!s)
        return APIR_BACKEND_ERR_HANDLE;
    struct buffer_resolver r = backend_ctx_resolver(c->ctx);
    struct decoded_graph g;
    uint32_t st = graph_decode(&c->dec, &r, c->ctx->devices[s->device].dev, &g);
    if (st != APIR_BACKEND_OK)
        return st;
    struct backend_device *d = &c->ctx->devices[s->device];
    repacked_weights_substitute(&c->ctx->repacked, d->dev, d->extra_bufts, g.graph, g.indices.writes,
                                g.indices.n_writes, backend_ctx_room(c->ctx));
    /* the new graph replaces the slot's, whatever the compute status */
    uint32_t slot = free_slot(s);
    decoded_graph_free(&s->graphs[slot]);
    s->graphs[slot] = g;
    if (backend_stats_on()) {
        c->ctx->stats.total.g[BS_DECODE_NS] += g.decode_ns;
        c->ctx->stats.total.g[BS_VALIDATE_NS] += g.validate_ns;
    }
    st = compute(c, s, slot, false, NULL);
    apir_put_u32(&c->enc, slot);
    return st;
}

uint32_t cmd_graph_recompute(struct cmd_call *c)
{
    struct backend_stream *s = backend_ctx_stream(c->ctx, apir_get_u32(&c->dec));
    uint32_t slot = apir_get_u32(&c->dec);
    struct cmd_outputs outs;
    uint32_t st = cmd_outputs_decode(c, &outs);
    if (st != APIR_BACKEND_OK)
        return st;
    ARGS_DONE(c);
    if (slot >= APIR_GRAPH_SLOTS)
        return APIR_BACKEND_ERR_DECODE;
    if (!s)
        return APIR_BACKEND_ERR_HANDLE;
    if (!s->graphs[slot].graph)
        return APIR_BACKEND_ERR_NO_GRAPH;
    return compute(c, s, slot, true, &outs);
}

uint32_t cmd_backend_synchronize(struct cmd_call *c)
{
    struct backend_stream *s = backend_ctx_stream(c->ctx, apir_get_u32(&c->dec));
    ARGS_DONE(c);
    if (!s)
        return APIR_BACKEND_ERR_HANDLE;
    ggml_backend_synchronize(s->backend);
    apir_put_u32(&c->enc, (uint32_t)GGML_STATUS_SUCCESS);
    return APIR_BACKEND_OK;
}
