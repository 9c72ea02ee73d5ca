/* Device decisions made in the guest: the device type shown to applications and whether an
 * op is worth offloading. */
#ifndef VGPU_POLICY_H
#define VGPU_POLICY_H

#include <ggml-backend.h>
#include <ggml.h>
#include <stdbool.h>
#include <stdint.h>

enum ggml_backend_dev_type vgpu_device_type_from_host(uint32_t host_type);
bool vgpu_offload_op_heuristic(const struct ggml_tensor *op);

#endif
