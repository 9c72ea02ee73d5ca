#include "vgpu_wire.h"

#include <string.h>

_Static_assert(GGML_MAX_DIMS == APIR_WIRE_MAX_DIMS, "wire dims");
_Static_assert(GGML_MAX_SRC == APIR_WIRE_MAX_SRC, "wire srcs");
_Static_assert(GGML_MAX_OP_PARAMS / sizeof(int32_t) == APIR_WIRE_OP_PARAMS, "wire op params");
_Static_assert(GGML_MAX_NAME == APIR_WIRE_MAX_NAME, "wire name");
_Static_assert(APIR_MAX_OP_TENSORS == GGML_MAX_SRC + 1, "op tensor list");

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "vgpu_wire_pack_tensor copies integers as they are in memory: little-endian hosts only"
#endif
_Static_assert(sizeof(((struct ggml_tensor *)0)->nb[0]) == 8, "nb is 64-bit");

static uint8_t *put(uint8_t *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

void vgpu_wire_pack_tensor(uint8_t *out, const struct ggml_tensor *t, const uint32_t src[APIR_WIRE_MAX_SRC],
                           uint32_t view_src, uint32_t buffer, uint64_t data_offset)
{
    uint32_t type = (uint32_t)t->type, op = (uint32_t)t->op;
    uint64_t view_offs = t->view_offs;
    uint8_t *p = out;
    p = put(p, &type, 4);
    p = put(p, &op, 4);
    p = put(p, t->ne, 8 * APIR_WIRE_MAX_DIMS);
    p = put(p, t->nb, 8 * APIR_WIRE_MAX_DIMS);
    p = put(p, t->op_params, 4 * APIR_WIRE_OP_PARAMS);
    p = put(p, &t->flags, 4);
    p = put(p, src, 4 * APIR_WIRE_MAX_SRC);
    p = put(p, &view_src, 4);
    p = put(p, &view_offs, 8);
    p = put(p, &buffer, 4);
    p = put(p, &data_offset, 8);
    size_t n = strnlen(t->name, APIR_WIRE_MAX_NAME - 1);
    memcpy(p, t->name, n);
    memset(p + n, 0, APIR_WIRE_MAX_NAME - n);
}

void vgpu_wire_from_tensor(struct apir_wire_tensor *w, const struct ggml_tensor *t)
{
    memset(w, 0, sizeof *w);
    w->type = (uint32_t)t->type;
    w->op = (uint32_t)t->op;
    for (int i = 0; i < GGML_MAX_DIMS; i++) {
        w->ne[i] = t->ne[i];
        w->nb[i] = t->nb[i];
    }
    memcpy(w->op_params, t->op_params, sizeof w->op_params);
    w->flags = t->flags;
    w->view_offs = t->view_offs;
    memcpy(w->name, t->name, sizeof w->name);
    w->name[sizeof w->name - 1] = '\0';
}

/* what does not change whether or how an op runs: names, views, graph flags (input, output,
 * compute...), so that equal ops share one cache entry */
/* field offsets in an encoded wire tensor (apir_wire_tensor.h) */
#define OFF_FLAGS (4 + 4 + 8 * APIR_WIRE_MAX_DIMS * 2 + 4 * APIR_WIRE_OP_PARAMS)
#define OFF_VIEW_OFFS (OFF_FLAGS + 4 + 4 * APIR_WIRE_MAX_SRC + 4)
#define OFF_NAME (OFF_VIEW_OFFS + 8 + 4 + 8)
_Static_assert(OFF_NAME + APIR_WIRE_MAX_NAME == APIR_WIRE_TENSOR_SIZE, "wire tensor layout");

/* packs t, then blanks what does not change whether or how an op runs: names, views, graph
 * flags (input, output, compute...), so that equal ops share one cache entry */
static void pack_blank(uint8_t *out, const struct ggml_tensor *t, const uint32_t src[APIR_WIRE_MAX_SRC])
{
    vgpu_wire_pack_tensor(out, t, src, 0, 0, 0);
    /* PARAM stays: ggml's optimizer-step constructors require it of their target */
    int32_t flags = t->flags & GGML_TENSOR_FLAG_PARAM;
    memcpy(out + OFF_FLAGS, &flags, 4);
    memset(out + OFF_VIEW_OFFS, 0, 8);
    memset(out + OFF_NAME, 0, APIR_WIRE_MAX_NAME);
}

size_t vgpu_op_signature(const struct ggml_tensor *op, uint8_t *out)
{
    const struct ggml_tensor *list[APIR_MAX_OP_TENSORS];
    uint32_t src_idx[GGML_MAX_SRC] = {0};
    uint32_t n = 0;
    bool self[GGML_MAX_SRC] = {false};
    for (int s = 0; s < GGML_MAX_SRC; s++) {
        const struct ggml_tensor *src = op->src[s];
        if (!src)
            continue;
        if (src == op) { /* ggml_cast/ggml_cpy: src[1] is the result itself; names the op below */
            self[s] = true;
            continue;
        }
        uint32_t j = 0;
        while (j < n && list[j] != src) /* an op may use one tensor twice: list it once */
            j++;
        if (j == n)
            list[n++] = src;
        src_idx[s] = j + 1;
    }
    list[n++] = op;
    for (int s = 0; s < GGML_MAX_SRC; s++)
        if (self[s])
            src_idx[s] = n;

    static const uint32_t no_src[APIR_WIRE_MAX_SRC];
    memcpy(out, &n, 4); /* little-endian (checked above) */
    for (uint32_t i = 0; i < n; i++)
        pack_blank(out + 4 + (size_t)i * APIR_WIRE_TENSOR_SIZE, list[i], i == n - 1 ? src_idx : no_src);
    /* An in-place result (ggml_cpy, ggml_set_rows, *_inplace) is a view of one of its sources:
     * its view_src names that source in the list and view_offs is relative to it, so the
     * host rebuilds the same in-place node (docs/protocol.md). The sources' own views are
     * blanked: only their shapes and strides matter. */
    if (op->view_src) {
        for (uint32_t j = 0; j + 1 < n; j++) {
            const struct ggml_tensor *s = list[j];
            size_t base;
            if (s == op->view_src)
                base = 0;
            else if (s->view_src == op->view_src)
                base = s->view_offs;
            else
                continue;
            if (op->view_offs < base)
                continue;
            uint32_t ref = j + 1;
            uint64_t offs = op->view_offs - base;
            uint8_t *rec = out + 4 + (size_t)(n - 1) * APIR_WIRE_TENSOR_SIZE;
            memcpy(rec + OFF_VIEW_OFFS - 4, &ref, 4);
            memcpy(rec + OFF_VIEW_OFFS, &offs, 8);
            break;
        }
    }
    return 4 + (size_t)n * APIR_WIRE_TENSOR_SIZE;
}
