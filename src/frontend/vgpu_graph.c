#include "vgpu_graph.h"

#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_wire_tensor.h"
#include "vgpu_wire.h"

#include <stdlib.h>
#include <string.h>

#define VISITING UINT32_MAX

/* a DFS frame: the tensor and which of its dependencies to look at next
 * (0..GGML_MAX_SRC-1: src[i], GGML_MAX_SRC: view_src, then done) */
struct vgpu_graph_frame {
    const struct ggml_tensor *t;
    int next;
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

static const struct ggml_tensor *dep_of(const struct vgpu_graph_encoder *ge, const struct ggml_tensor *t, int i)
{
    if (i == GGML_MAX_SRC)
        return t->view_src;
    uint32_t dummy;
    if (!vgpu_ptrmap_get(&ge->is_node, t, &dummy))
        return NULL; /* not a node: its sources are not needed */
    return t->src[i];
}

/* Post-order DFS from t with an explicit stack; appends to ge->order. */
static enum vgpu_graph_result visit(struct vgpu_graph_encoder *ge, const struct ggml_tensor *root)
{
    uint32_t idx;
    if (vgpu_ptrmap_get(&ge->index, root, &idx))
        return idx == VISITING ? VGPU_GRAPH_CYCLE : VGPU_GRAPH_OK;
    size_t sp = 0;
    if (!reserve((void **)&ge->stack, &ge->cap_stack, 1, sizeof *ge->stack) ||
        !vgpu_ptrmap_put(&ge->index, root, VISITING))
        return VGPU_GRAPH_NO_MEMORY;
    ge->stack[sp++] = (struct vgpu_graph_frame){root, 0};
    while (sp) {
        struct vgpu_graph_frame *f = &ge->stack[sp - 1];
        if (f->next > GGML_MAX_SRC) {
            /* all dependencies placed: place the tensor */
            if (ge->n_order >= APIR_MAX_GRAPH_TENSORS)
                return VGPU_GRAPH_TOO_LARGE;
            if (!reserve((void **)&ge->order, &ge->cap_order, ge->n_order + 1, sizeof *ge->order) ||
                !vgpu_ptrmap_put(&ge->index, f->t, (uint32_t)ge->n_order))
                return VGPU_GRAPH_NO_MEMORY;
            ge->order[ge->n_order++] = f->t;
            sp--;
            continue;
        }
        const struct ggml_tensor *d = dep_of(ge, f->t, f->next++);
        if (!d)
            continue;
        if (vgpu_ptrmap_get(&ge->index, d, &idx)) {
            if (idx == VISITING) {
                ge->bad_tensor = d;
                return VGPU_GRAPH_CYCLE;
            }
            continue;
        }
        if (!reserve((void **)&ge->stack, &ge->cap_stack, sp + 1, sizeof *ge->stack) ||
            !vgpu_ptrmap_put(&ge->index, d, VISITING))
            return VGPU_GRAPH_NO_MEMORY;
        ge->stack[sp++] = (struct vgpu_graph_frame){d, 0};
    }
    return VGPU_GRAPH_OK;
}

static uint32_t ref_of(const struct vgpu_graph_encoder *ge, const struct ggml_tensor *t)
{
    uint32_t idx;
    if (!t || !vgpu_ptrmap_get(&ge->index, t, &idx))
        return 0;
    return idx + 1;
}

static enum vgpu_graph_result write_bytes(struct vgpu_graph_encoder *ge, struct ggml_cgraph *g, int n_nodes,
                                          vgpu_locate_fn locate, void *user)
{
    size_t need = 4 + ge->n_order * (size_t)APIR_WIRE_TENSOR_SIZE + 4 + 4 * (size_t)n_nodes;
    if (!reserve((void **)&ge->bytes, &ge->cap, need, 1))
        return VGPU_GRAPH_NO_MEMORY;
    struct apir_encoder enc;
    apir_encoder_init(&enc, ge->bytes, need);
    apir_put_u32(&enc, (uint32_t)ge->n_order);
    struct apir_wire_tensor w;
    for (size_t i = 0; i < ge->n_order; i++) {
        const struct ggml_tensor *t = ge->order[i];
        vgpu_wire_from_tensor(&w, t);
        if (!locate(user, t, &w.buffer, &w.data_offset)) {
            ge->bad_tensor = t;
            return VGPU_GRAPH_NO_BUFFER;
        }
        uint32_t dummy;
        if (vgpu_ptrmap_get(&ge->is_node, t, &dummy))
            for (int s = 0; s < GGML_MAX_SRC; s++)
                w.src[s] = ref_of(ge, t->src[s]);
        w.view_src = ref_of(ge, t->view_src);
        apir_wire_tensor_encode(&enc, &w);
    }
    apir_put_u32(&enc, (uint32_t)n_nodes);
    for (int i = 0; i < n_nodes; i++)
        apir_put_u32(&enc, ref_of(ge, ggml_graph_node(g, i)) - 1);
    if (enc.error)
        return VGPU_GRAPH_NO_MEMORY; /* cannot happen: need was computed above */
    ge->len = enc.pos;
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
    int n_nodes = ggml_graph_n_nodes(g);
    if (n_nodes <= 0)
        return VGPU_GRAPH_EMPTY;
    if ((size_t)n_nodes > APIR_MAX_GRAPH_TENSORS)
        return VGPU_GRAPH_TOO_LARGE;
    for (int i = 0; i < n_nodes; i++)
        if (!vgpu_ptrmap_put(&ge->is_node, ggml_graph_node(g, i), 1))
            return VGPU_GRAPH_NO_MEMORY;
    for (int i = 0; i < n_nodes; i++) {
        enum vgpu_graph_result r = visit(ge, ggml_graph_node(g, i));
        if (r != VGPU_GRAPH_OK)
            return r;
    }
    return write_bytes(ge, g, n_nodes, locate, user);
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

void vgpu_graph_cache_store(struct vgpu_graph_cache *gc, const uint8_t *bytes, size_t len)
{
    gc->valid = false;
    if (!reserve((void **)&gc->bytes, &gc->cap, len ? len : 1, 1))
        return;
    memcpy(gc->bytes, bytes, len);
    gc->len = len;
    gc->valid = true;
}

void vgpu_graph_cache_invalidate(struct vgpu_graph_cache *gc) { gc->valid = false; }

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
