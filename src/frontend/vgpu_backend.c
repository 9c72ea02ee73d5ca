/* ggml backend (stream) interface. graph_compute encodes the graph and sends it, unless the
 * host holds it already (one of its APIR_GRAPH_SLOTS recent graphs: the same ggml graph id,
 * or byte-identical): then GRAPH_RECOMPUTE reuses the host's copy (llama.cpp recomputes an
 * identical graph for every generated token). Buffer handles and
 * data offsets are part of the bytes, so a moved tensor never reuses a stale graph. */
#include "apir_array.h"
#include "guest_log.h"
#include "vgpu_internal.h"
#include "vgpu_outputs.h"
#include "vgpu_stats.h"

#include <ggml-impl.h> /* ggml_cgraph.uid */

#include <stdlib.h>

static struct vgpu_backend *ctx_of(ggml_backend_t backend) { return backend->context; }

static const char *backend_get_name(ggml_backend_t backend) { return ctx_of(backend)->dev->name; }

static void backend_free(ggml_backend_t backend)
{
    struct vgpu_backend *be = ctx_of(backend);
    int rc = vgpu_rpc_backend_free(be->dev->client, be->handle);
    if (rc)
        GUEST_LOG_FAILURE(rc, "%s: BACKEND_FREE failed: %s\n", be->dev->name, vgpu_rpc_status_str(rc));
    GUEST_LOG_DEBUG("%s: %llu graphs sent, %llu recomputed\n", be->dev->name, (unsigned long long)be->n_compute,
                    (unsigned long long)be->n_recompute);
    vgpu_graph_encoder_free(&be->enc);
    free(be->out_nodes);
    for (int i = 0; i < APIR_GRAPH_SLOTS; i++)
        vgpu_graph_cache_free(&be->held[i]);
    pthread_mutex_destroy(&be->lock);
    free(be);
    free(backend);
}

/* what one compute did, for GGML_VIRTGPU_STATS (vgpu_stats.h) */
struct run_info {
    enum vgpu_stats_graph_kind kind;
    uint64_t encode_ns;
    bool outputs_read; /* GRAPH_RECOMPUTE brought the outputs back */
};

/* The graph's outputs (GGML_TENSOR_FLAG_OUTPUT: llama.cpp's logits and embeddings) are read
 * as part of the compute, so that a host lost before the read-back fails the compute (which
 * the application sees) instead of a get_tensor (which cannot fail); vgpu_outputs.h. A
 * GRAPH_RECOMPUTE brings up to APIR_MAX_RECOMPUTE_OUTPUTS of them back in its own round trip. */
struct outputs {
    uint32_t n;
    struct vgpu_rpc_output o[APIR_MAX_RECOMPUTE_OUTPUTS];
};

static bool output_wanted(const struct ggml_tensor *t, uint32_t *buf, uint64_t *off)
{
    return (t->flags & GGML_TENSOR_FLAG_OUTPUT) && ggml_is_contiguous(t) && ggml_nbytes(t) &&
           vgpu_buffer_locate(NULL, t, buf, off) && vgpu_outputs_wanted(*buf, *off, ggml_nbytes(t));
}

static bool in_outputs(const struct outputs *l, uint32_t buf, uint64_t off, uint64_t size)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->o[i].buffer == buf && l->o[i].offset == off && l->o[i].size == size)
            return true;
    return false;
}

/* Lists be->out_nodes for cgraph, unless they are listed for its id already (a graph without
 * an id, uid 0, is listed every time). Out of memory: none listed, and the outputs are read
 * when the application asks. */
static void list_output_nodes(struct vgpu_backend *be, struct ggml_cgraph *cgraph)
{
    if (cgraph->uid != 0 && cgraph->uid == be->out_uid)
        return;
    be->out_uid = cgraph->uid;
    be->n_out = 0;
    int n = ggml_graph_n_nodes(cgraph);
    for (int i = 0; i < n; i++) {
        struct ggml_tensor *t = ggml_graph_node(cgraph, i);
        if (!(t->flags & GGML_TENSOR_FLAG_OUTPUT))
            continue;
        struct ggml_tensor **v = apir_array_grow(be->out_nodes, &be->out_cap, be->n_out, sizeof *v, 4);
        if (!v) {
            be->out_uid = 0;
            be->n_out = 0;
            return;
        }
        be->out_nodes = v;
        v[be->n_out++] = t;
    }
}

/* the outputs one GRAPH_RECOMPUTE can bring back (the rest: fetch_outputs) */
static void collect_outputs(const struct vgpu_backend *be, struct outputs *l)
{
    l->n = 0;
    size_t total = 0;
    for (size_t i = 0; i < be->n_out && l->n < APIR_MAX_RECOMPUTE_OUTPUTS; i++) {
        const struct ggml_tensor *t = be->out_nodes[i];
        uint32_t buf;
        uint64_t off;
        if (!output_wanted(t, &buf, &off) || total + ggml_nbytes(t) > APIR_CLIENT_DATA_PAGE_SIZE ||
            in_outputs(l, buf, off, ggml_nbytes(t)))
            continue;
        l->o[l->n++] = (struct vgpu_rpc_output){buf, off, ggml_nbytes(t), NULL};
        total += ggml_nbytes(t);
    }
}

/* encodes cgraph into be->enc; GGML_STATUS_SUCCESS with *empty set when there is nothing to
 * compute */
static enum ggml_status encode(struct vgpu_backend *be, struct ggml_cgraph *cgraph, bool *empty)
{
    enum vgpu_graph_result r = vgpu_graph_encode(&be->enc, cgraph, vgpu_buffer_locate, NULL);
    *empty = r == VGPU_GRAPH_EMPTY;
    if (r == VGPU_GRAPH_OK || r == VGPU_GRAPH_EMPTY)
        return GGML_STATUS_SUCCESS;
    const struct ggml_tensor *t = be->enc.bad_tensor;
    GUEST_LOG_ERROR("%s: cannot send the graph: %s%s%s%s\n", be->dev->name, vgpu_graph_result_str(r),
                    t ? " (tensor '" : "", t ? t->name : "", t ? "')" : "");
    return r == VGPU_GRAPH_NO_MEMORY ? GGML_STATUS_ALLOC_FAILED : GGML_STATUS_FAILED;
}

/* GRAPH_RECOMPUTE's outputs, kept where the reply left them (vgpu_outputs_page_changing copies
 * them out before the page changes): registered while the reply is read, before another
 * thread's command can claim the page */
static void keep_in_page(const struct vgpu_rpc_output *o, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        vgpu_outputs_put_in_page(o[i].buffer, o[i].offset, o[i].src, o[i].size);
}

/* runs one graph; caller holds be->lock */
static enum ggml_status run_locked(struct vgpu_backend *be, struct ggml_cgraph *cgraph, struct outputs *outs,
                                   struct run_info *ri)
{
    struct apir_client *c = be->dev->client;
    uint64_t t0 = vgpu_stats_on() ? vgpu_stats_now() : 0;
    enum ggml_status est;
    bool empty = false;
    /* a graph the host holds, known by ggml's id: no encoding (llama.cpp's token loop) */
    uint32_t slot = 0;
    bool encoded = false, same = false;
    for (; slot < APIR_GRAPH_SLOTS && !same; slot += !same)
        same = vgpu_graph_cache_matches_uid(&be->held[slot], cgraph->uid);
    if (!same) {
        if ((est = encode(be, cgraph, &empty)) != GGML_STATUS_SUCCESS)
            return est;
        if (empty) {
            ri->kind = VGPU_STATS_GRAPH_EMPTY;
            return GGML_STATUS_SUCCESS;
        }
        encoded = true;
        for (slot = 0; slot < APIR_GRAPH_SLOTS && !same; slot += !same)
            same = vgpu_graph_cache_matches(&be->held[slot], be->enc.bytes, be->enc.len);
        if (same)
            be->held[slot].uid = cgraph->uid; /* a new id for the same bytes (the scheduler split again) */
    }
    int32_t status = GGML_STATUS_FAILED;
    int rc;
    if (t0)
        ri->encode_ns = vgpu_stats_now() - t0;
    if (same) {
        rc = vgpu_rpc_graph_recompute(c, be->handle, slot, outs->o, outs->n, keep_in_page, &status);
        if (rc == APIR_BACKEND_OK) {
            be->n_recompute++;
            ri->kind = VGPU_STATS_GRAPH_RECOMPUTE;
            ri->outputs_read = status == GGML_STATUS_SUCCESS;
            return (enum ggml_status)status;
        }
        if (rc != APIR_BACKEND_ERR_NO_GRAPH) {
            /* not "no copy": e.g. the deferred error of an earlier fire-and-forget write,
             * which the host has now handed over and cleared; sending the graph would hide it */
            GUEST_LOG_FAILURE(rc, "%s: GRAPH_RECOMPUTE failed: %s\n", be->dev->name, vgpu_rpc_status_str(rc));
            return GGML_STATUS_FAILED;
        }
        /* the host lost its copy (or never kept one): fall back to sending the graph */
        GUEST_LOG_DEBUG("%s: GRAPH_RECOMPUTE failed (%s), sending the graph\n", be->dev->name,
                        vgpu_rpc_status_str(rc));
        ri->kind = VGPU_STATS_GRAPH_FALLBACK;
        vgpu_graph_cache_invalidate(&be->held[slot]);
        if (!encoded && ((est = encode(be, cgraph, &empty)) != GGML_STATUS_SUCCESS || empty))
            return est; /* (empty cannot be: the same id was not empty before) */
    }
    rc = vgpu_rpc_graph_compute(c, be->handle, be->enc.bytes, be->enc.len, &status, &slot);
    if (rc) {
        /* the host may have put the graph in a slot it did not tell: trust none */
        for (int i = 0; i < APIR_GRAPH_SLOTS; i++)
            vgpu_graph_cache_invalidate(&be->held[i]);
        GUEST_LOG_FAILURE(rc, "%s: GRAPH_COMPUTE of %d nodes failed: %s\n", be->dev->name,
                          ggml_graph_n_nodes(cgraph), vgpu_rpc_status_str(rc));
        return GGML_STATUS_FAILED;
    }
    be->n_compute++;
    if (ri->kind != VGPU_STATS_GRAPH_FALLBACK)
        ri->kind = VGPU_STATS_GRAPH_SENT;
    /* the host put it in slot, in place of whatever that slot held */
    vgpu_graph_cache_store(&be->held[slot], be->enc.bytes, be->enc.len);
    be->held[slot].uid = cgraph->uid;
    return (enum ggml_status)status;
}

/* reads the outputs GRAPH_RECOMPUTE did not bring back (done: those it did) */
static enum ggml_status fetch_outputs(struct vgpu_backend *be, const struct outputs *done)
{
    for (size_t i = 0; i < be->n_out; i++) {
        struct ggml_tensor *t = be->out_nodes[i];
        uint32_t buf;
        uint64_t off;
        size_t size = ggml_nbytes(t);
        if (!output_wanted(t, &buf, &off) || in_outputs(done, buf, off, size))
            continue;
        void *bytes = vgpu_outputs_alloc(size);
        if (!bytes)
            continue; /* read on demand instead */
        int rc = vgpu_rpc_buffer_get(be->dev->client, buf, off, bytes, size);
        if (rc) {
            vgpu_outputs_release(bytes, size);
            GUEST_LOG_FAILURE(rc, "%s: reading the output '%s' of the graph failed: %s\n", be->dev->name, t->name,
                              vgpu_rpc_status_str(rc));
            return GGML_STATUS_FAILED;
        }
        vgpu_outputs_put(buf, off, bytes, size);
    }
    return GGML_STATUS_SUCCESS;
}

static enum ggml_status compute_locked(struct vgpu_backend *be, struct ggml_cgraph *cgraph)
{
    vgpu_outputs_reset(); /* a compute may change any buffer */
    uint64_t t0 = vgpu_stats_on() ? vgpu_stats_now() : 0;
    struct run_info ri = {VGPU_STATS_GRAPH_FAILED, 0, false};
    struct outputs outs;
    list_output_nodes(be, cgraph);
    collect_outputs(be, &outs);
    enum ggml_status st = run_locked(be, cgraph, &outs, &ri);
    if (!ri.outputs_read)
        outs.n = 0;
    if (st == GGML_STATUS_SUCCESS)
        st = fetch_outputs(be, &outs);
    if (t0)
        vgpu_stats_graph(st == GGML_STATUS_SUCCESS ? ri.kind : VGPU_STATS_GRAPH_FAILED, ri.encode_ns,
                         vgpu_stats_now() - t0);
    return st;
}

static enum ggml_status backend_graph_compute(ggml_backend_t backend, struct ggml_cgraph *cgraph)
{
    struct vgpu_backend *be = ctx_of(backend);
    pthread_mutex_lock(&be->lock);
    enum ggml_status st = compute_locked(be, cgraph);
    pthread_mutex_unlock(&be->lock);
    return st;
}

/* Writes already travel without a round trip when small (vgpu_rpc_buffer_set); the same path
 * serves the async variant, whose caller may reuse data at once. */
static void backend_set_tensor_async(ggml_backend_t backend, struct ggml_tensor *tensor, const void *data,
                                     size_t offset, size_t size)
{
    (void)backend;
    ggml_backend_tensor_set(tensor, data, offset, size);
}

/* Members left out are NULL. synchronize among them, on purpose: every command with a reply
 * has finished on the host when the reply arrives, and fire-and-forget writes need no waiting
 * (their bytes were copied at submit, and the host runs them before anything later). ggml's
 * scheduler calls synchronize before EVERY input copy, so a BACKEND_SYNCHRONIZE after pending
 * writes (tried: see vgpu_rpc_synchronize_pending) cost one round trip per input and undid the
 * gain; a failed write is still reported by the next GRAPH_COMPUTE/RECOMPUTE/BUFFER_GET. */
static const struct ggml_backend_i vgpu_backend_iface = {
    .get_name = backend_get_name,
    .free = backend_free,
    .set_tensor_async = backend_set_tensor_async,
    .graph_compute = backend_graph_compute,
};

static ggml_guid_t vgpu_guid(void)
{
    static ggml_guid guid = {0x76, 0x69, 0x72, 0x74, 0x67, 0x70, 0x75, 0x2d,
                             0x61, 0x70, 0x69, 0x72, 0x2d, 0x63, 0x31, 0x31}; /* "virtgpu-apir-c11" */
    return &guid;
}

ggml_backend_t vgpu_backend_init(struct vgpu_device *d)
{
    uint32_t handle = 0;
    int rc = vgpu_rpc_backend_init(d->client, d->index, &handle);
    if (rc) {
        GUEST_LOG_FAILURE(rc, "%s: BACKEND_INIT failed: %s\n", d->name, vgpu_rpc_status_str(rc));
        return NULL;
    }
    struct vgpu_backend *be = calloc(1, sizeof *be);
    ggml_backend_t backend = calloc(1, sizeof *backend);
    if (!be || !backend) {
        free(be);
        free(backend);
        vgpu_rpc_backend_free(d->client, handle);
        GUEST_LOG_ERROR("%s: out of memory\n", d->name);
        return NULL;
    }
    be->dev = d;
    be->handle = handle;
    pthread_mutex_init(&be->lock, NULL);
    backend->guid = vgpu_guid();
    backend->iface = vgpu_backend_iface;
    backend->device = &d->dev;
    backend->context = be;
    return backend;
}
