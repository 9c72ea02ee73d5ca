/* Graph encoding for APIR_FWD_GRAPH_COMPUTE (apir_forward.h), and the decision to send
 * GRAPH_RECOMPUTE instead when the encoding is byte-identical to the last one sent. */
#ifndef VGPU_GRAPH_H
#define VGPU_GRAPH_H

#include "vgpu_ptrmap.h"

#include <ggml.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a tensor's data lives on the host: its buffer handle and the offset of its data from
 * the buffer's start. Returns false when the tensor has no usable remote buffer. */
typedef bool (*vgpu_locate_fn)(void *user, const struct ggml_tensor *t, uint32_t *buffer, uint64_t *offset);

enum vgpu_graph_result {
    VGPU_GRAPH_OK = 0,
    VGPU_GRAPH_EMPTY,      /* no nodes: nothing to send */
    VGPU_GRAPH_NO_BUFFER,  /* a tensor has no remote buffer (see bad_tensor) */
    VGPU_GRAPH_CYCLE,      /* a tensor depends on itself */
    VGPU_GRAPH_TOO_LARGE,  /* more than APIR_MAX_GRAPH_TENSORS tensors */
    VGPU_GRAPH_NO_MEMORY,
};

struct vgpu_graph_frame;

/* a tensor in encoding order, with its references (index + 1, 0 = none): src[0..9], view_src */
struct vgpu_graph_entry {
    const struct ggml_tensor *t;
    uint32_t refs[GGML_MAX_SRC + 1];
};

/* Reusable encoder state; zero-initialize, then call vgpu_graph_encode as often as needed. */
struct vgpu_graph_encoder {
    struct vgpu_ptrmap index;       /* tensor -> position in order[], or VISITING */
    struct vgpu_ptrmap is_node;     /* tensors that are graph nodes */
    struct vgpu_graph_entry *order; /* every tensor after its sources and view_src */
    size_t n_order, cap_order;
    struct vgpu_graph_frame *stack; /* explicit DFS stack: no recursion on graph depth */
    size_t cap_stack;
    uint8_t *bytes;                 /* the encoding */
    size_t len, cap;
    const struct ggml_tensor *bad_tensor; /* the culprit of the last error */
};

/* Encodes the graph into ge->bytes/ge->len. A node's sources and view_src are all encoded;
 * for tensors that are not nodes of this graph (inputs, weights) only view_src is followed,
 * because the host never computes them and their own sources may live anywhere (another
 * backend, a previous graph). */
enum vgpu_graph_result vgpu_graph_encode(struct vgpu_graph_encoder *ge, struct ggml_cgraph *g,
                                         vgpu_locate_fn locate, void *user);
void vgpu_graph_encoder_free(struct vgpu_graph_encoder *ge);

/* Per-backend memory of the last graph the host holds. */
struct vgpu_graph_cache {
    uint8_t *bytes;
    size_t len, cap;
    bool valid;
    /* ggml's id of the graph these bytes encode (ggml_cgraph.uid: the scheduler gives each
     * split graph a new one whenever it splits or allocates again), 0 if none */
    uint64_t uid;
};

/* true if [bytes, len) equals what the host already holds, so RECOMPUTE suffices */
bool vgpu_graph_cache_matches(const struct vgpu_graph_cache *gc, const uint8_t *bytes, size_t len);
/* true if graph uid (not 0) is the one whose encoding the host holds: the graph need not be
 * encoded to know (ggml-rpc skips sending on the same rule) */
bool vgpu_graph_cache_matches_uid(const struct vgpu_graph_cache *gc, uint64_t uid);
/* remember what was just sent (on failure to copy, the cache is invalidated) */
void vgpu_graph_cache_store(struct vgpu_graph_cache *gc, const uint8_t *bytes, size_t len);
void vgpu_graph_cache_invalidate(struct vgpu_graph_cache *gc);
void vgpu_graph_cache_free(struct vgpu_graph_cache *gc);

const char *vgpu_graph_result_str(enum vgpu_graph_result r);

#endif
