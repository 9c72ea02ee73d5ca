#include "index_guard.h"

#include "apir_forward.h"
#include "backend_log.h"
#include "ggml-backend.h"

#include <stdlib.h>
#include <string.h>

struct region {
    const void *buffer;
    uint64_t start, end; /* [start, end) from the buffer base */
};

static bool is_index_node(const struct ggml_tensor *t) { return t->op == GGML_OP_GET_ROWS || t->op == GGML_OP_SET_ROWS; }

/* ops that write their own data region (all but the view-like ones) */
static bool writes(const struct ggml_tensor *t)
{
    switch (t->op) {
    case GGML_OP_NONE:
    case GGML_OP_VIEW:
    case GGML_OP_RESHAPE:
    case GGML_OP_PERMUTE:
    case GGML_OP_TRANSPOSE:
        return false;
    default:
        return true;
    }
}

static struct region region_of(const struct ggml_tensor *t)
{
    uint64_t start = (uint64_t)((const char *)t->data - (const char *)ggml_backend_buffer_get_base(t->buffer));
    /* decoding checked that the extent (ggml_nbytes) fits in the buffer */
    return (struct region){t->buffer, start, start + ggml_nbytes(t)};
}

static int cmp_region(const void *pa, const void *pb)
{
    const struct region *a = pa, *b = pb;
    if (a->buffer != b->buffer)
        return (uintptr_t)a->buffer < (uintptr_t)b->buffer ? -1 : 1;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* does w overlap any of the n sorted regions r (max_end[i]: the largest end among the
 * regions of r[i]'s buffer up to i)? O(log n) */
static bool overlaps(const struct region *r, const uint64_t *max_end, uint32_t n, struct region w)
{
    /* last region with (buffer, start) < (w.buffer, w.end) */
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        struct region key = {w.buffer, w.end, 0};
        if (cmp_region(&r[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && r[lo - 1].buffer == w.buffer && max_end[lo - 1] > w.start;
}

uint32_t index_guard_build(struct ggml_cgraph *graph, struct index_guard *out)
{
    memset(out, 0, sizeof *out);
    int n_nodes = ggml_graph_n_nodes(graph);
    uint32_t n = 0;
    for (int i = 0; i < n_nodes; i++)
        n += is_index_node(ggml_graph_node(graph, i));
    if (!n)
        return APIR_BACKEND_OK;

    struct region *r = malloc((size_t)n * sizeof *r);
    uint64_t *max_end = malloc((size_t)n * sizeof *max_end);
    out->nodes = malloc((size_t)n * sizeof *out->nodes);
    uint32_t st = APIR_BACKEND_OK;
    if (!r || !max_end || !out->nodes) {
        st = APIR_BACKEND_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (int i = 0; i < n_nodes; i++) {
        struct ggml_tensor *t = ggml_graph_node(graph, i);
        if (!is_index_node(t))
            continue;
        if (!ggml_is_contiguous(t->src[1])) {
            blog("graph: row indices of '%s' are not contiguous", t->name);
            st = APIR_BACKEND_ERR_UNSUPPORTED;
            goto done;
        }
        r[out->n] = region_of(t->src[1]);
        out->nodes[out->n++] = t;
    }
    qsort(r, n, sizeof *r, cmp_region);
    for (uint32_t i = 0; i < n; i++)
        max_end[i] = (i > 0 && r[i - 1].buffer == r[i].buffer && max_end[i - 1] > r[i].end) ? max_end[i - 1] : r[i].end;
    for (int i = 0; i < n_nodes; i++) {
        struct ggml_tensor *t = ggml_graph_node(graph, i);
        if (writes(t) && overlaps(r, max_end, n, region_of(t))) {
            blog("graph: node '%s' writes row indices read by GET_ROWS/SET_ROWS in the same graph", t->name);
            st = APIR_BACKEND_ERR_UNSUPPORTED;
            goto done;
        }
    }
done:
    free(r);
    free(max_end);
    if (st != APIR_BACKEND_OK)
        index_guard_free(out);
    return st;
}

/* element by element with memcpy: the guest chooses the offset, so the data may be
 * misaligned */
static bool in_range(const struct ggml_tensor *idx, const void *data, int64_t rows)
{
    int64_t n = ggml_nelements(idx);
    const char *p = data;
    for (int64_t i = 0; i < n; i++) {
        int64_t v;
        if (idx->type == GGML_TYPE_I32) {
            int32_t v32;
            memcpy(&v32, p + i * 4, 4);
            v = v32;
        } else {
            memcpy(&v, p + i * 8, 8);
        }
        if (v < 0 || v >= rows)
            return false;
    }
    return true;
}

uint32_t index_guard_check(const struct index_guard *g)
{
    for (uint32_t i = 0; i < g->n; i++) {
        const struct ggml_tensor *node = g->nodes[i], *idx = node->src[1];
        /* GET_ROWS picks rows of src0; SET_ROWS writes rows of its own destination */
        int64_t rows = node->op == GGML_OP_GET_ROWS ? node->src[0]->ne[1] : node->ne[1];
        bool ok;
        if (ggml_backend_buffer_is_host(idx->buffer)) {
            ok = in_range(idx, idx->data, rows);
        } else {
            void *copy = malloc(ggml_nbytes(idx));
            if (!copy)
                return APIR_BACKEND_ERR_OUT_OF_MEMORY;
            ggml_backend_tensor_get(idx, copy, 0, ggml_nbytes(idx));
            ok = in_range(idx, copy, rows);
            free(copy);
        }
        if (!ok) {
            blog("graph: a row index of '%s' is out of range (%lld rows)", node->name, (long long)rows);
            return APIR_BACKEND_ERR_BOUNDS;
        }
    }
    return APIR_BACKEND_OK;
}

void index_guard_free(struct index_guard *g)
{
    free(g->nodes);
    memset(g, 0, sizeof *g);
}
