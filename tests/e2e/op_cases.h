/* The graphs the op-consistency test runs on both the native CPU backend and VirtGPU0. */
#ifndef E2E_OP_CASES_H
#define E2E_OP_CASES_H

#include <ggml.h>
#include <stddef.h>

/* Inputs are the graph's leaves (op NONE). The fill (tools/common/tensor_fill.c) reads their names:
 *   "idx:N"  integers in [0, N) (i32/i64); distinct when the tensor has at most N elements
 *   "pos"    positions 0, 1, 2, ... (i32)
 *   "mask"   causal attention mask (0 or -inf), last row sees everything
 *   other    uniform values in [-1, 1], converted or quantized to the tensor's type */
struct op_case {
    const char *name;
    double max_nmse; /* ggml's test-backend-ops tolerance for this op */
    /* builds the graph's output; it must be contiguous */
    struct ggml_tensor *(*build)(struct ggml_context *ctx);
};

extern const struct op_case op_cases[];
extern const size_t op_cases_count;

#endif
