#include "index_guard.h"

#include "apir_forward.h"
#include "backend_log.h"
#include "ggml-backend.h"
#include "node_rebuild.h"

#include <stdlib.h>
#include <string.h>

/* the index tensor op reads and the bound of its values; false when op reads none */
static bool index_of(const struct ggml_tensor *t, const struct ggml_tensor **idx, int64_t *bound)
{
    switch (t->op) {
    case GGML_OP_GET_ROWS: *idx = t->src[1]; *bound = t->src[0]->ne[1]; return true;
    case GGML_OP_SET_ROWS:
    case GGML_OP_GET_ROWS_BACK: *idx = t->src[1]; *bound = t->ne[1]; return true;
    case GGML_OP_MUL_MAT_ID: *idx = t->src[2]; *bound = t->src[0]->ne[2]; return true;
    case GGML_OP_ADD_ID: *idx = t->src[2]; *bound = t->src[1]->ne[1]; return true;
    case GGML_OP_SSM_SCAN: *idx = t->src[6]; *bound = t->src[0]->ne[3]; return true;
    default: return false;
    }
}

struct region {
    const void *buffer;
    uint64_t start, end; /* [start, end) from the buffer base */
    int pos;
};

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

/* range-max tree over the writers' ends; 0 = not inserted yet */
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

static int cmp_pos(const void *pa, const void *pb)
{
    const struct region *a = *(const struct region *const *)pa, *b = *(const struct region *const *)pb;
    return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static bool same_indices(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    if (a->data != b->data || a->buffer != b->buffer || a->type != b->type)
        return false;
    for (int i = 0; i < GGML_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i] || a->nb[i] != b->nb[i])
            return false;
    return true;
}

/* static reads sorted so that reads of the same index tensor are adjacent: llama's KV-slot
 * list feeds every layer's SET_ROWS, and on a GPU each read is a device-to-host copy */
static int cmp_by_indices(const void *pa, const void *pb)
{
    const struct ggml_tensor *a = ((const struct index_read *)pa)->idx, *b = ((const struct index_read *)pb)->idx;
    uintptr_t da = (uintptr_t)a->data, db = (uintptr_t)b->data;
    if (da != db)
        return da < db ? -1 : 1;
    return memcmp(a->ne, b->ne, sizeof a->ne) ? (memcmp(a->ne, b->ne, sizeof a->ne) < 0 ? -1 : 1)
                                             : memcmp(a->nb, b->nb, sizeof a->nb) < 0 ? -1
                                                                                     : memcmp(a->nb, b->nb, sizeof a->nb) > 0;
}

/* marks dynamic[k] when a node before read k writes bytes of its indices: writers are
 * inserted in graph order and each read asks for a writer overlapping its region.
 * O((nodes + reads) log nodes). */
static uint32_t classify(struct ggml_cgraph *graph, const struct index_read *reads, uint32_t n_reads, bool *dynamic)
{
    int n_nodes = ggml_graph_n_nodes(graph);
    struct region *w = malloc((size_t)n_nodes * sizeof *w);
    struct region **by_pos = malloc((size_t)n_nodes * sizeof *by_pos);
    struct max_tree tree = {calloc(2 * (size_t)n_nodes, sizeof(uint64_t)), (uint32_t)n_nodes};
    uint32_t st = APIR_BACKEND_OK, nw = 0;
    if (!w || !by_pos || !tree.v) {
        st = APIR_BACKEND_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (int i = 0; i < n_nodes; i++) {
        struct ggml_tensor *t = ggml_graph_node(graph, i);
        if (!node_is_view_op(t->op))
            w[nw++] = region_of(t, i);
    }
    qsort(w, nw, sizeof *w, cmp_region);
    for (uint32_t i = 0; i < nw; i++)
        by_pos[i] = &w[i];
    qsort(by_pos, nw, sizeof *by_pos, cmp_pos);
    uint32_t k = 0;
    for (uint32_t r = 0; r < n_reads; r++) { /* reads are in graph order */
        for (; k < nw && by_pos[k]->pos < reads[r].pos; k++)
            tree_set(&tree, (uint32_t)(by_pos[k] - w), by_pos[k]->end);
        struct region ir = region_of(reads[r].idx, reads[r].pos);
        uint32_t lo = lower_bound(w, nw, ir.buffer, 0), hi = lower_bound(w, nw, ir.buffer, ir.end);
        dynamic[r] = lo < hi && tree_max(&tree, lo, hi) > ir.start;
        struct region own = region_of(reads[r].node, reads[r].pos);
        if (own.buffer == ir.buffer && own.start < ir.end && ir.start < own.end) {
            backend_log("graph: node '%s' overwrites the indices it reads", reads[r].node->name);
            st = APIR_BACKEND_ERR_INVALID_TENSOR;
            break;
        }
    }
done:
    free(w);
    free(by_pos);
    free(tree.v);
    return st;
}

/* true when a node in [from, to) writes bytes of idx (or the scan ran out of *budget: then
 * the caller cuts anew, which is always safe) */
static bool written_between(struct ggml_cgraph *graph, int from, int to, const struct ggml_tensor *idx,
                            size_t *budget)
{
    struct region ir = region_of(idx, 0);
    for (int k = from; k < to; k++) {
        if (!*budget)
            return true;
        --*budget;
        const struct ggml_tensor *t = ggml_graph_node(graph, k);
        if (node_is_view_op(t->op))
            continue;
        struct region r = region_of(t, k);
        if (r.buffer == ir.buffer && r.start < ir.end && ir.start < r.end)
            return true;
    }
    return false;
}

/* the bytes t's kernel may write: its extent, or what the buffer type allocates for it when
 * more (a GPU pads quantized rows), within its buffer */
static struct write_range written_by(const struct ggml_tensor *t)
{
    uint64_t start = (uint64_t)((const char *)t->data - (const char *)ggml_backend_buffer_get_base(t->buffer));
    uint64_t size = ggml_nbytes(t), alloc = ggml_backend_buffer_get_alloc_size(t->buffer, t);
    uint64_t buf_size = ggml_backend_buffer_get_size(t->buffer);
    if (alloc > size)
        size = alloc;
    /* decoding checked that start + ggml_nbytes fits in the buffer */
    uint64_t end = size > buf_size - start ? buf_size : start + size;
    return (struct write_range){t->buffer, start, end};
}

static int cmp_range(const void *pa, const void *pb)
{
    const struct write_range *a = pa, *b = pb;
    if (a->buffer != b->buffer)
        return (uintptr_t)a->buffer < (uintptr_t)b->buffer ? -1 : 1;
    return a->start < b->start ? -1 : a->start > b->start;
}

/* g->writes: each node's output (views write nothing), and the sources the optimizer steps
 * update in place; sorted and merged */
static uint32_t collect_writes(struct ggml_cgraph *graph, struct index_guard *g)
{
    int n_nodes = ggml_graph_n_nodes(graph);
    size_t cap = (size_t)n_nodes;
    for (int i = 0; i < n_nodes; i++) {
        enum ggml_op op = ggml_graph_node(graph, i)->op;
        if (op == GGML_OP_OPT_STEP_ADAMW || op == GGML_OP_OPT_STEP_SGD)
            cap += GGML_MAX_SRC;
    }
    if (!cap)
        return APIR_BACKEND_OK;
    struct write_range *w = malloc(cap * sizeof *w);
    if (!w)
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    uint32_t n = 0;
    for (int i = 0; i < n_nodes; i++) {
        const struct ggml_tensor *t = ggml_graph_node(graph, i);
        if (node_is_view_op(t->op))
            continue;
        w[n++] = written_by(t);
        if (t->op == GGML_OP_OPT_STEP_ADAMW || t->op == GGML_OP_OPT_STEP_SGD)
            for (int j = 0; j < GGML_MAX_SRC; j++)
                if (t->src[j] && t->src[j]->buffer)
                    w[n++] = written_by(t->src[j]);
    }
    qsort(w, n, sizeof *w, cmp_range);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (m && w[m - 1].buffer == w[i].buffer && w[i].start <= w[m - 1].end) {
            if (w[i].end > w[m - 1].end)
                w[m - 1].end = w[i].end;
        } else {
            w[m++] = w[i];
        }
    }
    g->writes = w;
    g->n_writes = m;
    return APIR_BACKEND_OK;
}

/* ggml-cuda (v0.5.0, ggml_cuda_topk_moe_fusion) runs a MoE router - ARGSORT, a VIEW of its
 * first columns, GET_ROWS, then optional norm and scale nodes - as one kernel that writes, in
 * each of the sort's rows, only the first n_expert_used ids: the final weights node's ne[1].
 * The rest of the rows keep whatever the guest left there, and an n_expert_used wider than the
 * view writes past it (into the next row) and picks padding lanes, ids past the experts. So
 * when a view of the sort follows it (the shape every such fusion starts with), each node
 * that may be the weights - at +2 a GET_ROWS of the view, at +3/+8 a SCALE and at +5/+7 a
 * RESHAPE of the node before, as the matcher links them - must be no wider than the view and
 * hold all its rows, and only indices read as the view lies (2D, from each row's start, no
 * more columns than the narrowest such node) are trusted. */
static bool fused_router_covers(struct ggml_cgraph *graph, int k, const struct ggml_tensor *idx)
{
    const struct ggml_tensor *s = ggml_graph_node(graph, k), *v;
    int n = ggml_graph_n_nodes(graph);
    if (k + 1 >= n || (v = ggml_graph_node(graph, k + 1))->op != GGML_OP_VIEW || (v->src[0] != s && v->view_src != s))
        return true; /* no fusion starts here: the sort itself writes every element */
    static const struct {
        int at;
        enum ggml_op op;
    } weights_at[] = {{2, GGML_OP_GET_ROWS}, {3, GGML_OP_SCALE}, {5, GGML_OP_RESHAPE}, {7, GGML_OP_RESHAPE},
                      {8, GGML_OP_SCALE}};
    int64_t cols = v->ne[0];
    for (size_t i = 0; i < sizeof weights_at / sizeof weights_at[0]; i++) {
        int at = k + weights_at[i].at;
        const struct ggml_tensor *w = at < n ? ggml_graph_node(graph, at) : NULL;
        if (!w || w->op != weights_at[i].op ||
            (weights_at[i].op == GGML_OP_GET_ROWS ? w->src[1] != v : w->src[0] != ggml_graph_node(graph, at - 1)))
            continue;
        int64_t need;
        if (w->ne[1] > v->ne[0] || __builtin_mul_overflow(w->ne[1], s->ne[1], &need) || ggml_nelements(w) < need)
            return false;
        if (w->ne[1] < cols)
            cols = w->ne[1];
    }
    return v->data == s->data && v->nb[1] == s->nb[1] && s->ne[2] == 1 && s->ne[3] == 1 && idx->data == s->data &&
           idx->nb[1] == s->nb[1] && idx->ne[0] <= cols && idx->ne[1] <= s->ne[1] && idx->ne[2] == 1 && idx->ne[3] == 1;
}

/* idx reads whole int32 slots of the sort's output s: I32, at a multiple of 4 bytes from its
 * start, strides of whole slots */
static bool reads_whole_slots(const struct ggml_tensor *idx, const struct ggml_tensor *s)
{
    return idx->type == GGML_TYPE_I32 && ((const char *)idx->data - (const char *)s->data) % 4 == 0 &&
           idx->nb[0] == 4 && idx->nb[1] % 4 == 0 && idx->nb[2] % 4 == 0 && idx->nb[3] % 4 == 0;
}

/* the last node before r that writes bytes of its indices is an ARGSORT or TOP_K the backend
 * runs (COMPUTE flag), unbiased (ggml-cuda's fused router does not sanitise a NaN bias), whose
 * output holds them all in whole slots and whose rows are at most r's bound long, and a fused
 * router would have written them too (false too when the scan runs out of *budget) */
static bool sorted_in_range(struct ggml_cgraph *graph, const struct index_read *r, size_t *budget)
{
    struct region ir = region_of(r->idx, 0);
    for (int k = r->pos - 1; k >= 0; k--) {
        if (!*budget)
            return false;
        --*budget;
        const struct ggml_tensor *t = ggml_graph_node(graph, k);
        if (t->op == GGML_OP_OPT_STEP_ADAMW || t->op == GGML_OP_OPT_STEP_SGD)
            return false; /* writes its sources: not worth telling apart */
        if (node_is_view_op(t->op))
            continue;
        struct write_range w = written_by(t);
        if (w.buffer != ir.buffer || w.end <= ir.start || ir.end <= w.start)
            continue;
        struct region own = region_of(t, k);
        return (t->op == GGML_OP_ARGSORT || t->op == GGML_OP_TOP_K) && (t->flags & GGML_TENSOR_FLAG_COMPUTE) &&
               t->type == GGML_TYPE_I32 && ggml_is_contiguous(t) && t->src[0] && t->src[0]->op != GGML_OP_ADD &&
               t->src[0]->ne[0] <= r->bound && own.start <= ir.start && ir.end <= own.end &&
               reads_whole_slots(r->idx, t) && fused_router_covers(graph, k, r->idx);
    }
    return false;
}

uint32_t index_guard_build(struct ggml_cgraph *graph, bool trust_sorts, struct index_guard *out)
{
    memset(out, 0, sizeof *out);
    uint32_t st = collect_writes(graph, out);
    if (st != APIR_BACKEND_OK)
        return st;
    int n_nodes = ggml_graph_n_nodes(graph);
    uint32_t n = 0;
    const struct ggml_tensor *idx;
    int64_t bound;
    for (int i = 0; i < n_nodes; i++)
        n += index_of(ggml_graph_node(graph, i), &idx, &bound);
    if (!n)
        return APIR_BACKEND_OK;

    struct index_read *all = malloc((size_t)n * sizeof *all);
    bool *dynamic = calloc(n, sizeof *dynamic);
    out->reads = malloc((size_t)n * sizeof *out->reads);
    out->cuts = malloc((size_t)n * sizeof *out->cuts);
    if (!all || !dynamic || !out->reads || !out->cuts) {
        st = APIR_BACKEND_ERR_OUT_OF_MEMORY;
        goto done;
    }
    uint32_t k = 0;
    for (int i = 0; i < n_nodes; i++) {
        struct ggml_tensor *t = ggml_graph_node(graph, i);
        if (index_of(t, &idx, &bound))
            all[k++] = (struct index_read){t, idx, bound, i, i};
    }
    if ((st = classify(graph, all, n, dynamic)) != APIR_BACKEND_OK)
        goto done;
    for (uint32_t i = 0; i < n; i++)
        if (!dynamic[i])
            out->reads[out->n_static++] = all[i];
    out->n = out->n_static;
    /* fewest cuts: reads come in graph order, and a read may be checked at the last cut when
     * no node between that cut and the read writes its indices (greedy interval stabbing) */
    size_t budget = (size_t)1 << 22; /* node visits: a hostile graph gets a cut per read */
    for (uint32_t i = 0; i < n; i++) {
        if (!dynamic[i] || (trust_sorts && sorted_in_range(graph, &all[i], &budget)))
            continue;
        int last = out->n_cuts ? out->cuts[out->n_cuts - 1] : -1;
        if (last < 0 || written_between(graph, last, all[i].pos, all[i].idx, &budget))
            out->cuts[out->n_cuts++] = last = all[i].pos;
        all[i].check_at = last;
        out->reads[out->n++] = all[i];
    }
    qsort(out->reads, out->n_static, sizeof *out->reads, cmp_by_indices);
done:
    free(all);
    free(dynamic);
    if (st != APIR_BACKEND_OK)
        index_guard_free(out);
    return st;
}

static int64_t load_index(const struct ggml_tensor *idx, const char *p)
{
    if (idx->type == GGML_TYPE_I32) {
        int32_t v;
        memcpy(&v, p, 4); /* the guest chooses the offset: the data may be misaligned */
        return v;
    }
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* walks idx by its strides over base (its data, or a host copy of its extent) */
static bool in_range(const struct ggml_tensor *idx, const char *base, int64_t bound)
{
    for (int64_t i3 = 0; i3 < idx->ne[3]; i3++)
        for (int64_t i2 = 0; i2 < idx->ne[2]; i2++)
            for (int64_t i1 = 0; i1 < idx->ne[1]; i1++) {
                const char *row = base + i1 * idx->nb[1] + i2 * idx->nb[2] + i3 * idx->nb[3];
                for (int64_t i0 = 0; i0 < idx->ne[0]; i0++) {
                    int64_t v = load_index(idx, row + i0 * idx->nb[0]);
                    if (v < 0 || v >= bound)
                        return false;
                }
            }
    return true;
}

/* shadow: the context's write shadow, or NULL (indices the graph computes are never there) */
static uint32_t check_one(const struct index_read *r, int64_t bound, const struct write_shadow *shadow,
                          const struct index_read_hook *hook, uint64_t *from_shadow, uint64_t *read_back)
{
    const struct ggml_tensor *idx = r->idx;
    if (idx->type != GGML_TYPE_I32 && idx->type != GGML_TYPE_I64)
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    bool ok;
    const uint8_t *recorded = NULL;
    if (shadow) {
        uint64_t start = (uint64_t)((const char *)idx->data - (const char *)ggml_backend_buffer_get_base(idx->buffer));
        recorded = write_shadow_find(shadow, idx->buffer, start, start + ggml_nbytes(idx));
        ++*(recorded ? from_shadow : read_back);
    }
    if (!recorded && hook)
        hook->before_read(hook->user);
    if (recorded) {
        ok = in_range(idx, (const char *)recorded, bound);
    } else if (ggml_backend_buffer_is_host(idx->buffer)) {
        ok = in_range(idx, idx->data, bound);
    } else {
        void *copy = malloc(ggml_nbytes(idx));
        if (!copy)
            return APIR_BACKEND_ERR_OUT_OF_MEMORY;
        ggml_backend_tensor_get(idx, copy, 0, ggml_nbytes(idx));
        ok = in_range(idx, copy, bound);
        free(copy);
    }
    if (!ok) {
        backend_log("graph: an index read by '%s' (%s) is out of range [0, %lld)", r->node->name, ggml_op_desc(r->node),
             (long long)bound);
        return APIR_BACKEND_ERR_BOUNDS;
    }
    return APIR_BACKEND_OK;
}

bool index_guard_reads_static(const struct index_guard *g, const void *buffer, uint64_t start, uint64_t end)
{
    for (uint32_t i = 0; i < g->n_static; i++) {
        const struct ggml_tensor *idx = g->reads[i].idx;
        if (idx->buffer != buffer)
            continue;
        uint64_t at = (uint64_t)((const char *)idx->data - (const char *)ggml_backend_buffer_get_base(idx->buffer));
        if (at < end && start < at + ggml_nbytes(idx))
            return true;
    }
    return false;
}

uint32_t index_guard_check_static(const struct index_guard *g, const struct write_shadow *shadow,
                                  const struct index_read_hook *hook, uint64_t *from_shadow, uint64_t *read_back)
{
    for (uint32_t i = 0; i < g->n_static;) {
        int64_t bound = g->reads[i].bound;
        uint32_t tightest = i, end = i + 1;
        for (; end < g->n_static && same_indices(g->reads[end].idx, g->reads[i].idx); end++)
            if (g->reads[end].bound < bound) {
                bound = g->reads[end].bound;
                tightest = end;
            }
        uint32_t st = check_one(&g->reads[tightest], bound, shadow, hook, from_shadow, read_back);
        if (st != APIR_BACKEND_OK)
            return st;
        i = end;
    }
    return APIR_BACKEND_OK;
}

uint32_t index_guard_check_cut(const struct index_guard *g, uint32_t cut)
{
    for (uint32_t i = g->n_static; i < g->n; i++) {
        if (g->reads[i].check_at != g->cuts[cut])
            continue;
        uint32_t st = check_one(&g->reads[i], g->reads[i].bound, NULL, NULL, NULL, NULL);
        if (st != APIR_BACKEND_OK)
            return st;
    }
    return APIR_BACKEND_OK;
}

void index_guard_free(struct index_guard *g)
{
    free(g->reads);
    free(g->cuts);
    free(g->writes);
    memset(g, 0, sizeof *g);
}
