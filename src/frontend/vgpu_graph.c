#include "vgpu_graph.h"

#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_wire_tensor.h"
#include "vgpu_wire.h"

#include <ggml-impl.h> /* struct ggml_cgraph's use counts */
#include <stdlib.h>
#include <string.h>

#define VISITING UINT32_MAX

#define VIEW_SRC GGML_MAX_SRC /* refs[] slot of view_src */
#define SELF_REF UINT32_MAX   /* a frame's reference to its own tensor, resolved at placement */

/* A DFS frame: the tensor, which dependency to look at next (0..GGML_MAX_SRC-1: src[i],
 * VIEW_SRC: view_src, then done) and the references found so far. A child placed later
 * writes its own reference into its parent's frame, so each dependency costs one lookup. */
struct vgpu_graph_frame {
    const struct ggml_tensor *t;
    int next;
    uint32_t refs[GGML_MAX_SRC + 1];
};

static bool reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return false;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* starts a frame; tensors that are not nodes only depend on their view_src, since the host
 * never computes them */
static enum vgpu_graph_result push(struct vgpu_graph_encoder *ge, size_t *sp, const struct ggml_tensor *t)
{
    if (!reserve((void **)&ge->stack, &ge->cap_stack, *sp + 1, sizeof *ge->stack) ||
        !vgpu_ptrmap_put(&ge->index, t, VISITING))
        return VGPU_GRAPH_NO_MEMORY;
    struct vgpu_graph_frame *f = &ge->stack[(*sp)++];
    uint32_t dummy;
    f->t = t;
    f->next = vgpu_ptrmap_get(&ge->is_node, t, &dummy) ? 0 : VIEW_SRC;
    memset(f->refs, 0, sizeof f->refs);
    return VGPU_GRAPH_OK;
}

/* Post-order DFS from root with an explicit stack; appends to ge->order. */
static enum vgpu_graph_result visit(struct vgpu_graph_encoder *ge, const struct ggml_tensor *root)
{
    uint32_t idx;
    if (vgpu_ptrmap_get(&ge->index, root, &idx))
        return idx == VISITING ? VGPU_GRAPH_CYCLE : VGPU_GRAPH_OK;
    size_t sp = 0;
    enum vgpu_graph_result r = push(ge, &sp, root);
    while (r == VGPU_GRAPH_OK && sp) {
        struct vgpu_graph_frame *f = &ge->stack[sp - 1];
        if (f->next > VIEW_SRC) {
            /* all dependencies placed: place the tensor, tell the parent where it is */
            if (ge->n_order >= APIR_MAX_GRAPH_TENSORS)
                return VGPU_GRAPH_TOO_LARGE;
            uint32_t pos = (uint32_t)ge->n_order;
            if (!reserve((void **)&ge->order, &ge->cap_order, ge->n_order + 1, sizeof *ge->order) ||
                !vgpu_ptrmap_put(&ge->index, f->t, pos))
                return VGPU_GRAPH_NO_MEMORY;
            struct vgpu_graph_entry *e = &ge->order[ge->n_order++];
            e->t = f->t;
            for (int i = 0; i <= VIEW_SRC; i++)
                e->refs[i] = f->refs[i] == SELF_REF ? pos + 1 : f->refs[i];
            if (--sp) {
                struct vgpu_graph_frame *parent = &ge->stack[sp - 1];
                parent->refs[parent->next - 1] = pos + 1;
            }
            continue;
        }
        int slot = f->next++;
        const struct ggml_tensor *d = slot == VIEW_SRC ? f->t->view_src : f->t->src[slot];
        if (!d)
            continue;
        if (d == f->t) {
            /* ggml_cast sets src[1] to the result itself: not a dependency, and the protocol
             * lets a src name its own tensor (apir_forward.h) */
            f->refs[slot] = SELF_REF;
            continue;
        }
        if (vgpu_ptrmap_get(&ge->index, d, &idx)) {
            if (idx == VISITING) {
                ge->bad_tensor = d;
                return VGPU_GRAPH_CYCLE;
            }
            f->refs[slot] = idx + 1;
            continue;
        }
        r = push(ge, &sp, d);
    }
    return r;
}

/* Views compute nothing and ggml's backends skip them: a view is visited only as the source
 * of a node that computes. Visited from a node of its own, it would also drag in its
 * view_src, which ggml's scheduler may have left in another backend's buffer (llama's
 * recurrent-state index views: "a tensor has no VirtGPU buffer"). */
static bool computes(const struct ggml_tensor *t)
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

/* the graph's nodes the host gets, in the graph's order: those that compute, and the view
 * nodes some computing node reaches (so encoded anyway). Sending those views keeps the node
 * sequence the host's backend sees the same as natively, which its fusions look for (CUDA:
 * ROPE, VIEW, SET_ROWS); idx: their positions in the tensor list */
static bool sent_node(struct vgpu_graph_encoder *ge, const struct ggml_tensor *t, uint32_t *idx)
{
    return vgpu_ptrmap_get(&ge->index, t, idx) && *idx != VISITING;
}

static enum vgpu_graph_result write_bytes(struct vgpu_graph_encoder *ge, struct ggml_cgraph *g, int n_graph,
                                          vgpu_locate_fn locate, void *user)
{
    uint32_t n_nodes = 0, idx;
    for (int i = 0; i < n_graph; i++)
        n_nodes += sent_node(ge, ggml_graph_node(g, i), &idx);
    size_t need = 4 + ge->n_order * (size_t)APIR_WIRE_TENSOR_SIZE + 4 + 8 * (size_t)n_nodes;
    if (!reserve((void **)&ge->bytes, &ge->cap, need, 1))
        return VGPU_GRAPH_NO_MEMORY;
    uint8_t *p = ge->bytes;
    uint32_t n_tensors = (uint32_t)ge->n_order;
    memcpy(p, &n_tensors, 4); /* little-endian, as vgpu_wire_pack_tensor */
    p += 4;
    for (size_t i = 0; i < ge->n_order; i++) {
        const struct vgpu_graph_entry *e = &ge->order[i];
        uint32_t buffer;
        uint64_t offset;
        if (!locate(user, e->t, &buffer, &offset)) {
            ge->bad_tensor = e->t;
            return VGPU_GRAPH_NO_BUFFER;
        }
        vgpu_wire_pack_tensor(p, e->t, e->refs, e->refs[VIEW_SRC], buffer, offset);
        p += APIR_WIRE_TENSOR_SIZE;
    }
    memcpy(p, &n_nodes, 4);
    p += 4;
    for (int i = 0; i < n_graph; i++) {
        if (!sent_node(ge, ggml_graph_node(g, i), &idx))
            continue;
        /* uses in the whole graph the scheduler split this one from (a split is a view of
         * it): a node read by a later split must not be fused away here */
        int32_t uses = g->visited_hash_set.size ? ggml_node_get_use_count(g, i) : 0;
        uint32_t u = uses > 0 ? (uint32_t)uses : 0;
        memcpy(p, &idx, 4);
        memcpy(p + 4, &u, 4);
        p += 8;
    }
    ge->len = (size_t)(p - ge->bytes);
    return VGPU_GRAPH_OK;
}

enum vgpu_graph_result vgpu_graph_encode(struct vgpu_graph_encoder *ge, struct ggml_cgraph *g,
                                         vgpu_locate_fn locate, void *user)
{
    ge->n_order = 0;
    ge->len = 0;
    ge->bad_tensor = NULL;
    vgpu_ptrmap_clear(&ge->index);
    vgpu_ptrmap_clear(&ge->is_node);
    int n_graph = ggml_graph_n_nodes(g);
    if ((size_t)n_graph > APIR_MAX_GRAPH_TENSORS)
        return VGPU_GRAPH_TOO_LARGE;
    uint32_t n_computing = 0;
    for (int i = 0; i < n_graph; i++) {
        if (!vgpu_ptrmap_put(&ge->is_node, ggml_graph_node(g, i), 1))
            return VGPU_GRAPH_NO_MEMORY;
        n_computing += computes(ggml_graph_node(g, i));
    }
    if (n_computing == 0)
        return VGPU_GRAPH_EMPTY; /* nothing to compute (views only) */
    for (int i = 0; i < n_graph; i++) {
        const struct ggml_tensor *t = ggml_graph_node(g, i);
        if (!computes(t))
            continue;
        enum vgpu_graph_result r = visit(ge, t);
        if (r != VGPU_GRAPH_OK)
            return r;
    }
    return write_bytes(ge, g, n_graph, locate, user);
}

void vgpu_graph_encoder_free(struct vgpu_graph_encoder *ge)
{
    vgpu_ptrmap_free(&ge->index);
    vgpu_ptrmap_free(&ge->is_node);
    free(ge->order);
    free(ge->stack);
    free(ge->bytes);
    memset(ge, 0, sizeof *ge);
}

bool vgpu_graph_cache_matches(const struct vgpu_graph_cache *gc, const uint8_t *bytes, size_t len)
{
    return gc->valid && gc->len == len && memcmp(gc->bytes, bytes, len) == 0;
}

bool vgpu_graph_cache_matches_uid(const struct vgpu_graph_cache *gc, uint64_t uid)
{
    return gc->valid && uid != 0 && gc->uid == uid;
}

void vgpu_graph_cache_store(struct vgpu_graph_cache *gc, const uint8_t *bytes, size_t len)
{
    gc->valid = false;
    gc->uid = 0;
    if (!reserve((void **)&gc->bytes, &gc->cap, len ? len : 1, 1))
        return;
    memcpy(gc->bytes, bytes, len);
    gc->len = len;
    gc->valid = true;
}

void vgpu_graph_cache_invalidate(struct vgpu_graph_cache *gc)
{
    gc->valid = false;
    gc->uid = 0;
}

void vgpu_graph_cache_free(struct vgpu_graph_cache *gc)
{
    free(gc->bytes);
    memset(gc, 0, sizeof *gc);
}

const char *vgpu_graph_result_str(enum vgpu_graph_result r)
{
    switch (r) {
    case VGPU_GRAPH_OK: return "ok";
    case VGPU_GRAPH_EMPTY: return "empty graph";
    case VGPU_GRAPH_NO_BUFFER: return "a tensor has no VirtGPU buffer";
    case VGPU_GRAPH_CYCLE: return "the graph has a cycle";
    case VGPU_GRAPH_TOO_LARGE: return "the graph has too many tensors";
    case VGPU_GRAPH_NO_MEMORY: return "out of memory";
    }
    return "unknown";
}
