/* Small helpers for scripted guests: one FORWARD call each, through apir_client. */
#ifndef TEST_GUEST_SCRIPT_H
#define TEST_GUEST_SCRIPT_H

#include "apir_client.h"
#include "apir_forward.h"
#include "apir_wire_tensor.h"

#include <stdint.h>

struct guest_dev {
    uint32_t buft, host_buft;
    uint64_t alignment;
};

struct apir_client *guest_open(void); /* fails the test (exit 1) if it cannot connect */
int guest_get_info(struct apir_client *c, uint32_t *version, uint32_t *n_devices);
int guest_device_info(struct apir_client *c, uint32_t dev, struct guest_dev *out, char *name, size_t cap);
int guest_device_memory(struct apir_client *c, uint32_t dev, uint64_t *free_mem, uint64_t *total);
int guest_buft_info(struct apir_client *c, uint32_t buft, uint64_t *alignment, uint64_t *max_size, uint8_t *is_host);
int guest_alloc(struct apir_client *c, uint32_t buft, uint64_t size, uint32_t *buffer);
int guest_buffer_free(struct apir_client *c, uint32_t buffer);
int guest_clear(struct apir_client *c, uint32_t buffer, uint8_t value);
int guest_memset(struct apir_client *c, uint32_t buffer, uint64_t off, uint64_t size, uint8_t value);
/* SET/GET through the client's data page at data_off */
int guest_set(struct apir_client *c, uint32_t buffer, uint64_t off, const void *src, uint64_t size, uint64_t data_off);
int guest_get(struct apir_client *c, uint32_t buffer, uint64_t off, void *dst, uint64_t size, uint64_t data_off);
int guest_copy(struct apir_client *c, uint32_t src, uint64_t src_off, uint32_t dst, uint64_t dst_off, uint64_t size);
int guest_backend_init(struct apir_client *c, uint32_t dev, uint32_t *backend);
int guest_backend_free(struct apir_client *c, uint32_t backend);
int guest_graph_compute(struct apir_client *c, uint32_t backend, const struct apir_wire_tensor *t, uint32_t n,
                        const uint32_t *nodes, uint32_t n_nodes, uint32_t *ggml_status);
int guest_graph_recompute(struct apir_client *c, uint32_t backend, uint32_t *ggml_status);
int guest_synchronize(struct apir_client *c, uint32_t backend, uint32_t *ggml_status);
int guest_supports_op(struct apir_client *c, uint32_t dev, const struct apir_wire_tensor *t, uint32_t n, uint8_t *ok);
int guest_alloc_size(struct apir_client *c, uint32_t buft, const struct apir_wire_tensor *t, uint32_t n, uint64_t *size);

/* a contiguous F32 tensor ne0 x ne1 in buffer at offset */
struct apir_wire_tensor guest_f32(const char *name, int64_t ne0, int64_t ne1, uint32_t buffer, uint64_t offset);

#endif
