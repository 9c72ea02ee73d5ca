#include "index_guard.h"

#include "apir_forward.h"
#include "backend_log.h"
#include "ggml-backend.h"

#include <stdlib.h>
#include <string.h>

struct region {
    const void *buffer;
    uint64_t start, end; /* [start, end) from the buffer base */
    int pos;             /* position of the node that reads these indices */
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

static struct region region_of(const struct ggml_tensor *t, int pos)
{
    uint64_t start = (uint64_t)((const char *)t->data - (const char *)ggml_backend_buffer_get_base(t->buffer));
    /* decoding checked that the extent (ggml_nbytes) fits in the buffer */
    return (struct region){t->buffer, start, start + ggml_nbytes(t), pos};
}

static int cmp_region(const void *pa, const void *pb)
{
    const struct region *a = pa, *b = pb;
    if (a->buffer != b->buffer)
        return (uintptr_t)a->buffer < (uintptr_t)b->buffer ? -1 : 1;
    return a->start < b->start ? -1 : a->start > b->start;
}

static int cmp_pos_desc(const void *pa, const void *pb)
{
    const struct region *a = *(const struct region *const *)pa, *b = *(const struct region *const *)pb;
    return a->pos < b->pos ? 1 : a->pos > b->pos ? -1 : 0;
}

/* first region >= (buffer, start) in the sorted array */
static uint32_t lower_bound(const struct region *r, uint32_t n, const void *buffer, uint64_t start)
{
    struct region key = {buffer, start, 0, 0};
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cmp_region(&r[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* range-max tree over the regions' ends; 0 = not active */
struct max_tree {
    uint64_t *v;
    uint32_t n;
};

static void tree_set(struct max_tree *t, uint32_t i, uint64_t value)
{
    i += t->n;
    t->v[i] = value;
    for (i >>= 1; i; i >>= 1)
        t->v[i] = t->v[2 * i] > t->v[2 * i + 1] ? t->v[2 * i] : t->v[2 * i + 1];
}

static uint64_t tree_max(const struct max_tree *t, uint32_t l, uint32_t r)
{
    uint64_t m = 0;
    for (l += t->n, r += t->n; l < r; l >>= 1, r >>= 1) {
        if (l & 1 && t->v[l] > m)
            m = t->v[l];
        if (l & 1)
            l++;
        if (r & 1 && t->v[r - 1] > m)
            m = t->v[r - 1];
    }
    return m;
}

/* Nodes run in graph order, so a node may reuse the memory of indices that were read before
 * it (ggml-alloc does exactly that), but no node at or before a GET_ROWS/SET_ROWS may write
 * its indices. Walking the graph backwards, the indices read at or after the current node are
 * "active"; a writing node must not overlap an active region. O(n log n) in all. */
static bool written_before_read(struct ggml_cgraph *graph, struct region *r, uint32_t n, struct region **by_pos,
                                struct max_tree *tree, const struct ggml_tensor **culprit)
{
    qsort(r, n, sizeof *r, cmp_region);
    for (uint32_t i = 0; i < n; i++)
        by_pos[i] = &r[i];
    qsort(by_pos, n, sizeof *by_pos, cmp_pos_desc);
    uint32_t k = 0;
    for (int q = ggml_graph_n_nodes(graph) - 1; q >= 0; q--) {
        for (; k < n && by_pos[k]->pos == q; k++)
            tree_set(tree, (uint32_t)(by_pos[k] - r), by_pos[k]->end);
        struct ggml_tensor *t = ggml_graph_node(graph, q);
        if (!writes(t))
            continue;
        struct region w = region_of(t, q);
        uint32_t lo = lower_bound(r, n, w.buffer, 0), hi = lower_bound(r, n, w.buffer, w.end);
        if (lo < hi && tree_max(tree, lo, hi) > w.start) {
            *culprit = t;
            return true;
        }
    }
    return false;
}

/* Nodes reading the same index data sit next to each other after sorting, so each distinct
 * index tensor is read once per compute: llama's KV-slot list feeds every layer's SET_ROWS,
 * and on a GPU each read is a device-to-host copy. */
static bool same_indices(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    return a->data == b->data && a->buffer == b->buffer && a->type == b->type && ggml_nelements(a) == ggml_nelements(b);
}

static int cmp_by_indices(const void *pa, const void *pb)
{
    const struct ggml_tensor *a = (*(struct ggml_tensor *const *)pa)->src[1];
    const struct ggml_tensor *b = (*(struct ggml_tensor *const *)pb)->src[1];
    uintptr_t da = (uintptr_t)a->data, db = (uintptr_t)b->data;
    if (da != db)
        return da < db ? -1 : 1;
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    int64_t na = ggml_nelements(a), nb = ggml_nelements(b);
    return na < nb ? -1 : na > nb;
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
    struct region **by_pos = malloc((size_t)n * sizeof *by_pos);
    struct max_tree tree = {calloc(2 * (size_t)n, sizeof(uint64_t)), n};
    out->nodes = malloc((size_t)n * sizeof *out->nodes);
    uint32_t st = APIR_BACKEND_OK;
    const struct ggml_tensor *culprit = NULL;
    if (!r || !by_pos || !tree.v || !out->nodes) {
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
        r[out->n] = region_of(t->src[1], i);
        out->nodes[out->n++] = t;
    }
    if (written_before_read(graph, r, n, by_pos, &tree, &culprit)) {
        blog("graph: node '%s' writes row indices that a later GET_ROWS/SET_ROWS reads", culprit->name);
        st = APIR_BACKEND_ERR_UNSUPPORTED;
    } else {
        qsort(out->nodes, out->n, sizeof *out->nodes, cmp_by_indices);
    }
done:
    free(r);
    free(by_pos);
    free(tree.v);
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

static int64_t rows_of(const struct ggml_tensor *node)
{
    /* GET_ROWS picks rows of src0; SET_ROWS writes rows of its own destination */
    return node->op == GGML_OP_GET_ROWS ? node->src[0]->ne[1] : node->ne[1];
}

uint32_t index_guard_check(const struct index_guard *g)
{
    for (uint32_t i = 0; i < g->n;) {
        const struct ggml_tensor *idx = g->nodes[i]->src[1];
        const struct ggml_tensor *tightest = g->nodes[i];
        uint32_t end = i + 1;
        for (; end < g->n && same_indices(g->nodes[end]->src[1], idx); end++)
            if (rows_of(g->nodes[end]) < rows_of(tightest))
                tightest = g->nodes[end];
        int64_t rows = rows_of(tightest);
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
            blog("graph: a row index of '%s' is out of range (%lld rows)", tightest->name, (long long)rows);
            return APIR_BACKEND_ERR_BOUNDS;
        }
        i = end;
    }
    return APIR_BACKEND_OK;
}

void index_guard_free(struct index_guard *g)
{
    free(g->nodes);
    memset(g, 0, sizeof *g);
}
