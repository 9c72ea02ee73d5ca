#include "graph_decode.h"

#include "apir_forward.h"
#include "apir_wire_tensor.h"
#include "backend_log.h"
#include "backend_stats.h"
#include "op_checks.h"
#include "tensor_validate.h"

#include "ggml-impl.h" /* the graph's hash set, use counts and id */

#include <stdlib.h>
#include <string.h>

void decoded_graph_free(struct decoded_graph *g)
{
    index_guard_free(&g->indices);
    free(g->part_graphs);
    free(g->part_nodes);
    free(g->parts);
    free(g->part_start);
    free(g->scratch_tensors);
    node_rebuild_fini(&g->rebuild);
    if (g->ctx)
        ggml_free(g->ctx);
    free(g->mem);
    memset(g, 0, sizeof *g);
}

/* Slots after a graph's last node that hold a sentinel (no op, no sources). ggml-cuda's fusion
 * matchers read a few nodes past the last without a bound check (ggml_cuda_topk_moe_fusion
 * after DIV and RESHAPE); natively they meet a leaf or a later node, here they would read
 * uninitialised memory (the graph's leaf array) or, for a part, the next part's nodes. */
#define GRAPH_SENTINELS 4

static uint32_t make_ctx(struct decoded_graph *g, uint32_t n_tensors, uint32_t n_nodes)
{
    /* n_tensors is bounded by the message size, so this cannot overflow on 64-bit */
    size_t size = (size_t)(n_tensors + 1) * ggml_tensor_overhead() + 1024;
    if (n_nodes)
        size += ggml_graph_overhead_custom(n_nodes + GRAPH_SENTINELS, false);
    memset(g, 0, sizeof *g);
    g->ctx = owned_ctx_new(size, &g->mem);
    return g->ctx ? APIR_BACKEND_OK : APIR_BACKEND_ERR_OUT_OF_MEMORY;
}

/* places t inside its buffer (if any) and checks the view relation ggml relies on:
 * data == view_src->data + view_offs, in the same buffer */
static uint32_t place(struct ggml_tensor *t, const struct apir_wire_tensor *w, uint64_t extent,
                      const struct buffer_resolver *bufs, bool need_buffer)
{
    if (!w->buffer)
        return need_buffer ? APIR_BACKEND_ERR_INVALID_TENSOR : APIR_BACKEND_OK;
    ggml_backend_buffer_t buf = bufs ? bufs->resolve(bufs->user, w->buffer) : NULL;
    if (!buf)
        return APIR_BACKEND_ERR_HANDLE;
    if (!range_ok(w->data_offset, extent, ggml_backend_buffer_get_size(buf)))
        return APIR_BACKEND_ERR_BOUNDS;
    char *base = ggml_backend_buffer_get_base(buf);
    t->buffer = buf;
    t->data = base + w->data_offset;
    if (t->view_src) {
        uint64_t want;
        if (t->view_src->buffer != buf ||
            __builtin_add_overflow((uint64_t)((char *)t->view_src->data - base), w->view_offs, &want) ||
            want != w->data_offset)
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    return APIR_BACKEND_OK;
}

static uint32_t decode_tensors(struct apir_decoder *dec, uint32_t n, struct ggml_context *ctx, struct ggml_tensor **out,
                               const struct buffer_resolver *bufs, bool need_buffer)
{
    for (uint32_t i = 0; i < n; i++) {
        struct apir_wire_tensor w;
        uint64_t extent;
        apir_wire_tensor_decode(dec, &w);
        if (dec->error)
            return APIR_BACKEND_ERR_DECODE;
        uint32_t st = tensor_validate(&w, i, &extent);
        if (st != APIR_BACKEND_OK) {
            backend_log("tensor %u of %u ('%s', %s, type %u, ne %lld %lld %lld %lld, nb %llu %llu %llu %llu): invalid", i, n,
                 w.name, w.op < GGML_OP_COUNT ? ggml_op_name((enum ggml_op)w.op) : "unknown op", w.type,
                 (long long)w.ne[0], (long long)w.ne[1], (long long)w.ne[2], (long long)w.ne[3],
                 (unsigned long long)w.nb[0], (unsigned long long)w.nb[1], (unsigned long long)w.nb[2],
                 (unsigned long long)w.nb[3]);
            return st;
        }
        struct ggml_tensor *t = ggml_new_tensor(ctx, (enum ggml_type)w.type, GGML_MAX_DIMS, w.ne);
        for (int d = 0; d < GGML_MAX_DIMS; d++)
            t->nb[d] = (size_t)w.nb[d];
        t->op = (enum ggml_op)w.op;
        memcpy(t->op_params, w.op_params, sizeof w.op_params);
        t->flags = w.flags;
        for (int j = 0; j < APIR_WIRE_MAX_SRC; j++)
            t->src[j] = !w.src[j] ? NULL : w.src[j] == i + 1 ? t : out[w.src[j] - 1];
        t->view_src = w.view_src ? out[w.view_src - 1] : NULL;
        t->view_offs = (size_t)w.view_offs;
        memcpy(t->name, w.name, sizeof t->name);
        st = place(t, &w, extent, bufs, need_buffer);
        if (st != APIR_BACKEND_OK)
            return st;
        out[i] = t;
    }
    return APIR_BACKEND_OK;
}

static uint32_t check_node(struct node_rebuild *rb, struct ggml_tensor *node, ggml_backend_dev_t dev)
{
    uint32_t st = op_check_node(rb, node);
    if (st != APIR_BACKEND_OK) {
        backend_log("graph: node '%s' (%s) %s", node->name, ggml_op_desc(node),
             st == APIR_BACKEND_ERR_UNSUPPORTED ? "is not run for a guest by this host"
                                                 : "is not what ggml builds from its sources and parameters");
        return st;
    }
    if (dev) {
        for (int j = -1; j < GGML_MAX_SRC; j++) {
            const struct ggml_tensor *t = j < 0 ? node : node->src[j];
            if (t && !ggml_backend_dev_supports_buft(dev, ggml_backend_buffer_get_type(t->buffer)))
                return APIR_BACKEND_ERR_UNSUPPORTED;
        }
        if (!ggml_backend_dev_supports_op(dev, node)) {
            backend_log("graph: node '%s' (%s) is not supported by %s", node->name, ggml_op_desc(node), ggml_backend_dev_name(dev));
            return APIR_BACKEND_ERR_UNSUPPORTED;
        }
    }
    return APIR_BACKEND_OK;
}

static void end_with_sentinels(struct ggml_tensor **nodes, int n, struct ggml_tensor *sentinel)
{
    for (int i = 0; i < GRAPH_SENTINELS; i++)
        nodes[n + i] = sentinel;
}

/* one graph per stretch between index cuts, built once per decoded graph: views of the whole
 * graph, so they share its use counts, each with its own copy of its node list ending in the
 * whole graph's sentinels (a matcher reading past a part's end must not meet the next part) */
static uint32_t build_parts(struct decoded_graph *g)
{
    const struct index_guard *ig = &g->indices;
    int n_nodes = ggml_graph_n_nodes(g->graph);
    struct ggml_tensor *sentinel = g->graph->nodes[n_nodes];
    uint32_t max_parts = ig->n_cuts + 1;
    g->part_graphs = calloc(max_parts, sizeof *g->part_graphs);
    g->part_nodes = calloc((size_t)n_nodes + (size_t)max_parts * GRAPH_SENTINELS, sizeof *g->part_nodes);
    g->parts = calloc(max_parts, sizeof *g->parts);
    g->part_start = calloc(max_parts, sizeof *g->part_start);
    if (!g->part_graphs || !g->part_nodes || !g->parts || !g->part_start)
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    struct ggml_tensor **own = g->part_nodes;
    int prev = 0;
    for (uint32_t i = 0; i <= ig->n_cuts; i++) {
        int end = i < ig->n_cuts ? ig->cuts[i] : n_nodes;
        if (end > prev) {
            struct ggml_cgraph *part = &g->part_graphs[g->n_parts];
            *part = ggml_graph_view(g->graph, prev, end);
            memcpy(own, part->nodes, (size_t)(end - prev) * sizeof *own);
            end_with_sentinels(own, end - prev, sentinel);
            part->nodes = own;
            own += end - prev + GRAPH_SENTINELS;
            part->uid = ggml_graph_next_uid();
            g->part_start[g->n_parts] = prev;
            g->parts[g->n_parts++] = part;
        }
        prev = end;
    }
    return APIR_BACKEND_OK;
}

/* ggml's backends fuse a node into its consumer only when it has as many uses as they replace
 * (ggml_node_has_n_uses: CUDA's RMS_NORM+MUL, ROPE+SET_ROWS...), counted in the graph's hash
 * set, which ggml_graph_add_node leaves empty. The counts are the guest's: uses in the whole
 * graph its scheduler split this one from, which only it knows. A wrong count can only make
 * the backend skip writing one of the guest's own intermediate tensors, inside its buffer. */
static void set_use_count(struct ggml_cgraph *graph, struct ggml_tensor *node, uint32_t uses)
{
    size_t pos = ggml_hash_find_or_insert(&graph->visited_hash_set, node);
    graph->use_counts[pos] = uses > INT32_MAX ? INT32_MAX : (int32_t)uses;
}

/* index_guard's trust in sorted indices holds for ggml-cuda only (index_guard.h) */
static bool runs_cuda(ggml_backend_dev_t dev)
{
    ggml_backend_reg_t reg = dev ? ggml_backend_dev_backend_reg(dev) : NULL;
    return reg && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_GPU &&
           strcmp(ggml_backend_reg_name(reg), "CUDA") == 0;
}

uint32_t graph_decode(struct apir_decoder *dec, const struct buffer_resolver *bufs, ggml_backend_dev_t dev,
                      struct decoded_graph *out)
{
    memset(out, 0, sizeof *out);
    uint32_t n_tensors = apir_get_u32(dec);
    if (dec->error)
        return APIR_BACKEND_ERR_DECODE;
    /* size everything from the message before allocating: tensors have a fixed encoded size,
     * so n_nodes can be read ahead and the message length checked exactly */
    size_t left = apir_decoder_left(dec);
    if (n_tensors == 0 || n_tensors > APIR_MAX_GRAPH_TENSORS || (size_t)n_tensors * APIR_WIRE_TENSOR_SIZE + 4 > left)
        return APIR_BACKEND_ERR_DECODE;
    struct apir_decoder peek;
    size_t tensors_bytes = (size_t)n_tensors * APIR_WIRE_TENSOR_SIZE;
    apir_decoder_init(&peek, dec->buf + dec->pos + tensors_bytes, 4);
    uint32_t n_nodes = apir_get_u32(&peek);
    if (n_nodes == 0 || n_nodes > n_tensors || left != tensors_bytes + 4 + (size_t)n_nodes * 8)
        return APIR_BACKEND_ERR_DECODE;

    uint64_t t0 = backend_stats_on() ? backend_stats_now() : 0, t1 = 0;
    uint32_t st = make_ctx(out, n_tensors, n_nodes);
    struct ggml_tensor **tensors = NULL;
    if (st == APIR_BACKEND_OK) {
        tensors = out->scratch_tensors = malloc((size_t)n_tensors * sizeof *tensors);
        if (!tensors || !node_rebuild_init(&out->rebuild))
            st = APIR_BACKEND_ERR_OUT_OF_MEMORY;
    }
    if (st == APIR_BACKEND_OK)
        st = decode_tensors(dec, n_tensors, out->ctx, tensors, bufs, true);
    if (t0)
        t1 = backend_stats_now();
    if (st == APIR_BACKEND_OK) {
        (void)apir_get_u32(dec); /* n_nodes, read ahead above */
        out->graph = ggml_new_graph_custom(out->ctx, n_nodes + GRAPH_SENTINELS, false);
        /* a new id: the backend's per-graph state (CUDA graphs) is checked against it */
        out->graph->uid = ggml_graph_next_uid();
        for (uint32_t i = 0; i < n_nodes && st == APIR_BACKEND_OK; i++) {
            uint32_t idx = apir_get_u32(dec);
            uint32_t uses = apir_get_u32(dec);
            if (dec->error || idx >= n_tensors)
                st = APIR_BACKEND_ERR_DECODE;
            else if ((st = check_node(&out->rebuild, tensors[idx], dev)) == APIR_BACKEND_OK) {
                ggml_graph_add_node(out->graph, tensors[idx]);
                set_use_count(out->graph, tensors[idx], uses);
            }
        }
        out->last = tensors[n_tensors - 1];
        if (st == APIR_BACKEND_OK)
            end_with_sentinels(out->graph->nodes, ggml_graph_n_nodes(out->graph),
                               ggml_new_tensor_1d(out->ctx, GGML_TYPE_F32, 1));
    }
    node_rebuild_fini(&out->rebuild);
    if (st == APIR_BACKEND_OK)
        st = index_guard_build(out->graph, runs_cuda(dev), &out->indices);
    if (st == APIR_BACKEND_OK && out->indices.n_cuts)
        st = build_parts(out);
    if (st == APIR_BACKEND_OK && !apir_decoder_done(dec))
        st = APIR_BACKEND_ERR_DECODE;
    free(out->scratch_tensors);
    out->scratch_tensors = NULL;
    if (st != APIR_BACKEND_OK)
        decoded_graph_free(out);
    if (t0 && st == APIR_BACKEND_OK) {
        out->decode_ns = t1 - t0;
        out->validate_ns = backend_stats_now() - t1;
    }
    return st;
}

uint32_t op_tensors_decode(struct apir_decoder *dec, const struct buffer_resolver *bufs, struct decoded_graph *out)
{
    struct ggml_tensor *tensors[APIR_MAX_OP_TENSORS];
    memset(out, 0, sizeof *out);
    uint32_t n = apir_get_u32(dec);
    if (dec->error || n == 0 || n > APIR_MAX_OP_TENSORS || apir_decoder_left(dec) != (size_t)n * APIR_WIRE_TENSOR_SIZE)
        return APIR_BACKEND_ERR_DECODE;
    uint32_t st = make_ctx(out, n, 0);
    if (st == APIR_BACKEND_OK)
        st = decode_tensors(dec, n, out->ctx, tensors, bufs, false);
    if (st == APIR_BACKEND_OK && !apir_decoder_done(dec))
        st = APIR_BACKEND_ERR_DECODE;
    if (st != APIR_BACKEND_OK) {
        decoded_graph_free(out);
        return st;
    }
    out->last = tensors[n - 1];
    return APIR_BACKEND_OK;
}
