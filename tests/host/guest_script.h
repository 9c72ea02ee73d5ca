/* Helpers for scripted guests. Every FORWARD command goes through the shipped guest encoders
 * (vgpu_rpc_*, vgpu_graph_encode, vgpu_op_signature); these only adapt them to the tests:
 * connecting, the device's buffer type, and ggml graphs placed at chosen offsets of one host
 * buffer. */
#ifndef TEST_GUEST_SCRIPT_H
#define TEST_GUEST_SCRIPT_H

#include "apir_client.h"
#include "apir_forward.h"
#include "vgpu_graph.h"
#include "vgpu_rpc.h"

#include <ggml.h>

#include <stdint.h>

struct guest_dev {
    uint32_t buft, host_buft;
};

struct apir_client *guest_open(void); /* fails the test (exit 1) if it cannot connect */
int guest_device_info(struct apir_client *c, uint32_t dev, struct guest_dev *out, char *name, size_t cap);
/* BUFT_ALLOC_BUFFER that also checks the host gave at least size bytes (-101 if not) */
int guest_alloc(struct apir_client *c, uint32_t buft, uint64_t size, uint32_t *buffer);

/* A connected guest with device 0's buffer type, one buffer and one backend. */
struct guest_session {
    struct apir_client *c;
    struct guest_dev dev;
    uint32_t buffer, backend;
};
/* connects (exit 1 if it cannot) and sets up; 0 or the first failing command's status */
int guest_session_open(struct guest_session *s, uint64_t buffer_size);

/* A guest-side ggml graph (no data: tensors are placed in one host buffer), encoded by the
 * shipped graph encoder. */
struct guest_graph {
    struct ggml_context *ctx;
    struct ggml_cgraph *g;
    uint32_t buffer;
    struct vgpu_graph_encoder enc;
    uint32_t slot; /* where the host keeps it after guest_graph_compute (GRAPH_RECOMPUTE's slot) */
};
void guest_graph_init(struct guest_graph *gg, uint32_t buffer);
void guest_graph_free(struct guest_graph *gg);
/* puts t at offset of the graph's buffer; returns t */
struct ggml_tensor *guest_place(struct ggml_tensor *t, uint64_t offset);
/* a contiguous ne0 x ne1 tensor of the given type at offset */
struct ggml_tensor *guest_tensor(struct guest_graph *gg, enum ggml_type type, const char *name, int64_t ne0,
                                 int64_t ne1, uint64_t offset);
/* marks t as an output and adds it (with what it needs) to the graph */
void guest_graph_add(struct guest_graph *gg, struct ggml_tensor *t);
/* GRAPH_COMPUTE of the graph; *ggml_status as the host returns it */
int guest_graph_compute(struct apir_client *c, uint32_t backend, struct guest_graph *gg, int32_t *ggml_status);

#endif
