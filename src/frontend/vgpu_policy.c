/* Decisions the device makes without asking the host. */
#include "vgpu_policy.h"

#define OFFLOAD_MIN_BATCH 32

/* llama.cpp never offloads layers to a CPU-type device (it treats it as the host CPU), but a
 * host CPU reached through VirtGPU is a remote device like any GPU: report it as GPU. An
 * integrated GPU stays IGPU (llama.cpp then knows its memory is shared with the host). */
enum ggml_backend_dev_type vgpu_device_type_from_host(uint32_t host_type)
{
    switch (host_type) {
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return GGML_BACKEND_DEVICE_TYPE_IGPU;
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return GGML_BACKEND_DEVICE_TYPE_ACCEL;
    default: return GGML_BACKEND_DEVICE_TYPE_GPU; /* CPU, GPU, META and unknown values */
    }
}

/* Like ggml's GPU backends: an op is worth moving to the device (and its weights across)
 * when it processes a large batch; GET_ROWS only gathers a few rows whatever the batch. */
bool vgpu_offload_op_heuristic(const struct ggml_tensor *op)
{
    /* MUL_MAT_ID keeps its tokens in dimension 2 (dimension 1 is the experts used) */
    int64_t batch = op->op == GGML_OP_MUL_MAT_ID ? op->ne[2] : op->ne[1];
    return batch >= OFFLOAD_MIN_BATCH && op->op != GGML_OP_GET_ROWS;
}
