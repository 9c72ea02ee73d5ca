#include "repacked_weights.h"

#include "apir_array.h"
#include "backend_log.h"
#include "node_rebuild.h"

#include <stdlib.h>
#include <string.h>

ggml_backend_buffer_type_t *repacked_weights_bufts(ggml_backend_dev_t dev)
{
    if (!dev || ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_CPU)
        return NULL;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    ggml_backend_dev_get_extra_bufts_t get =
        reg ? (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts")
            : NULL;
    ggml_backend_buffer_type_t *bufts = get ? get(dev) : NULL;
    return bufts && *bufts ? bufts : NULL;
}

/* What ggml-cpu's repacked kernels assert beyond their supports_op: activations they
 * quantize row by row as contiguous F32 (forward_mul_mat reads 4 rows as one block), at most
 * 3 dimensions everywhere, an F32 result with ordered strides. */
static bool kernels_hold(const struct ggml_tensor *node)
{
    const struct ggml_tensor *w = node->src[0], *x = node->src[1];
    if (node->op != GGML_OP_MUL_MAT && node->op != GGML_OP_MUL_MAT_ID)
        return false;
    if (!w || !x || !w->buffer || !w->data || !ggml_is_contiguous(w) || w->ne[3] != 1)
        return false;
    if (!ggml_is_quantized(w->type) || !ggml_backend_buffer_is_host(w->buffer))
        return false;
    if (x->type != GGML_TYPE_F32 || !ggml_is_contiguous(x) || x->ne[3] != 1)
        return false;
    return node->type == GGML_TYPE_F32 && node->ne[3] == 1 && node->nb[0] == sizeof(float) &&
           node->nb[0] <= node->nb[1] && node->nb[1] <= node->nb[2] && node->nb[2] <= node->nb[3];
}

static bool written(const struct write_range *w, uint32_t n, const void *buffer, uint64_t start, uint64_t end)
{
    for (uint32_t i = 0; i < n; i++)
        if (w[i].buffer == buffer && w[i].start < end && start < w[i].end)
            return true;
    return false;
}

static uint64_t offset_of(const struct ggml_tensor *w)
{
    return (uint64_t)((const char *)w->data - (const char *)ggml_backend_buffer_get_base(w->buffer));
}

static struct repacked_weight *find(struct repacked_weights *rw, const struct ggml_tensor *w)
{
    uint64_t offset = offset_of(w);
    for (size_t i = 0; i < rw->n; i++) {
        struct repacked_weight *e = &rw->w[i];
        if (e->buffer == w->buffer && e->offset == offset && e->type == w->type &&
            memcmp(e->ne, w->ne, sizeof e->ne) == 0)
            return e;
    }
    return NULL;
}

static void release(struct repacked_weight *e)
{
    if (e->copy)
        ggml_backend_buffer_free(e->copy);
    if (e->ctx)
        ggml_free(e->ctx);
    free(e->ctx_mem);
    memset(e, 0, sizeof *e);
}

static bool holds(const struct repacked_weights *rw, const void *buffer)
{
    for (size_t i = 0; i < rw->n_bufs; i++)
        if (rw->bufs[i] == buffer)
            return true;
    return false;
}

/* a copy was made from e->buffer: false when that buffer cannot be listed (no copy then) */
static bool list_buffer(struct repacked_weights *rw, ggml_backend_buffer_t buffer)
{
    if (holds(rw, buffer))
        return true;
    ggml_backend_buffer_t *grown = apir_array_grow(rw->bufs, &rw->bufs_cap, rw->n_bufs, sizeof *grown, 4);
    if (!grown)
        return false;
    rw->bufs = grown;
    rw->bufs[rw->n_bufs++] = buffer;
    return true;
}

static void set_copy(struct repacked_weight *e)
{
    const char *bytes = (const char *)ggml_backend_buffer_get_base(e->buffer) + e->offset;
    ggml_backend_tensor_set(e->t, bytes, 0, (size_t)e->size); /* the extra type repacks here */
    e->stale = false;
}

/* Tries each extra buffer type for node's weight; e keeps the first the device accepts the
 * node with (ggml's supports_op: the repacked kernels hold for this shape and type). */
static void make_copy(struct repacked_weights *rw, struct repacked_weight *e, ggml_backend_dev_t dev,
                      ggml_backend_buffer_type_t *bufts, struct ggml_tensor *node, uint64_t room)
{
    struct ggml_tensor *w = node->src[0];
    e->ctx = owned_ctx_new(ggml_tensor_overhead() + 64, &e->ctx_mem);
    if (!e->ctx)
        return;
    struct ggml_tensor *t = ggml_new_tensor(e->ctx, w->type, GGML_MAX_DIMS, w->ne);
    ggml_set_name(t, w->name); /* ggml-cpu logs it when it repacks */
    for (; *bufts; bufts++) {
        size_t need = ggml_backend_buft_get_alloc_size(*bufts, t);
        if (need > room) {
            if (!rw->logged_limit)
                backend_log("weights are not repacked for %s beyond %llu bytes: apir.limit.buffer_bytes leaves no room "
                            "(raise it for the CPU backend's faster kernels)",
                            ggml_backend_buft_name(*bufts), (unsigned long long)rw->bytes);
            rw->logged_limit = true;
            continue;
        }
        ggml_backend_buffer_t copy = ggml_backend_buft_alloc_buffer(*bufts, need);
        if (!copy)
            continue;
        /* ggml-cpu's extra types keep the kernel choice in extra (init_tensor); none: not for
         * this type or shape, and their compute would read a NULL trait */
        if (ggml_backend_tensor_alloc(copy, t, ggml_backend_buffer_get_base(copy)) == GGML_STATUS_SUCCESS && t->extra) {
            node->src[0] = t;
            bool ok = ggml_backend_dev_supports_op(dev, node);
            node->src[0] = w;
            if (ok && list_buffer(rw, e->buffer)) {
                e->copy = copy;
                e->t = t;
                rw->bytes += ggml_backend_buffer_get_size(copy);
                set_copy(e);
                if (!rw->logged_first)
                    backend_log("weights multiplied on %s are repacked into %s copies, as ggml-cpu loads them natively",
                                ggml_backend_dev_name(dev), ggml_backend_buft_name(*bufts));
                rw->logged_first = true;
                return;
            }
        }
        ggml_backend_buffer_free(copy);
        t->buffer = NULL;
        t->data = NULL;
        t->extra = NULL;
    }
}

uint32_t repacked_weights_substitute(struct repacked_weights *rw, ggml_backend_dev_t dev,
                                     ggml_backend_buffer_type_t *bufts, struct ggml_cgraph *graph,
                                     const struct write_range *writes, uint32_t n_writes, uint64_t room)
{
    uint32_t used = 0;
    uint64_t bytes_before = rw->bytes; /* room is what was left before this graph's copies */
    if (!bufts)
        return 0;
    for (int i = 0; i < ggml_graph_n_nodes(graph); i++) {
        struct ggml_tensor *node = ggml_graph_node(graph, i);
        if (!kernels_hold(node))
            continue;
        struct ggml_tensor *w = node->src[0];
        uint64_t offset = offset_of(w), size = ggml_nbytes(w);
        if (written(writes, n_writes, w->buffer, offset, offset + size))
            continue; /* the copy would miss what the graph writes before this node */
        struct repacked_weight *e = find(rw, w);
        if (!e) {
            if (rw->n == REPACKED_WEIGHTS_MAX)
                continue;
            struct repacked_weight *grown = apir_array_grow(rw->w, &rw->cap, rw->n, sizeof *grown, 64);
            if (!grown)
                continue;
            rw->w = grown;
            e = &rw->w[rw->n++];
            memset(e, 0, sizeof *e);
            e->buffer = w->buffer;
            e->offset = offset;
            e->size = size;
            e->type = w->type;
            memcpy(e->ne, w->ne, sizeof e->ne);
            uint64_t made = rw->bytes - bytes_before;
            make_copy(rw, e, dev, bufts, node, room == UINT64_MAX ? UINT64_MAX : room > made ? room - made : 0);
        }
        if (e->copy) {
            /* the copy was made for another node: this one may be another op on it (a 3-D
             * weight of MUL_MAT_ID in a MUL_MAT, whose repacked kernel asserts 2-D) */
            node->src[0] = e->t;
            if (ggml_backend_dev_supports_op(dev, node))
                used++;
            else
                node->src[0] = w;
        }
    }
    return used;
}

void repacked_weights_invalidate(struct repacked_weights *rw, const void *buffer, uint64_t offset, uint64_t size)
{
    if (!holds(rw, buffer))
        return;
    uint64_t end = size > UINT64_MAX - offset ? UINT64_MAX : offset + size;
    for (size_t i = 0; i < rw->n; i++) {
        struct repacked_weight *e = &rw->w[i];
        if (e->copy && e->buffer == buffer && e->offset < end && offset < e->offset + e->size) {
            e->stale = true;
            rw->any_stale = true;
        }
    }
}

void repacked_weights_invalidate_ranges(struct repacked_weights *rw, const struct write_range *w, uint32_t n)
{
    for (uint32_t i = 0; i < n && rw->n_bufs; i++)
        repacked_weights_invalidate(rw, w[i].buffer, w[i].start, w[i].end - w[i].start);
}

void repacked_weights_refresh(struct repacked_weights *rw)
{
    if (!rw->any_stale)
        return;
    for (size_t i = 0; i < rw->n; i++)
        if (rw->w[i].stale)
            set_copy(&rw->w[i]);
    rw->any_stale = false;
}

void repacked_weights_forget(struct repacked_weights *rw, const void *buffer)
{
    uint32_t kept = 0;
    for (size_t i = 0; i < rw->n; i++) {
        struct repacked_weight *e = &rw->w[i];
        if (e->buffer == buffer) {
            if (e->copy)
                rw->bytes -= ggml_backend_buffer_get_size(e->copy);
            release(e);
        } else {
            rw->w[kept++] = *e;
        }
    }
    rw->n = kept;
    apir_array_remove(rw->bufs, &rw->n_bufs, sizeof *rw->bufs, &buffer); /* listed once */
}

void repacked_weights_free(struct repacked_weights *rw)
{
    for (size_t i = 0; i < rw->n; i++)
        release(&rw->w[i]);
    free(rw->w);
    free(rw->bufs);
    memset(rw, 0, sizeof *rw);
}
