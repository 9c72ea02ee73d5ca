#include "guest_script.h"

#include <ggml.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct apir_client *guest_open(void)
{
    char why[512];
    struct apir_client *c = apir_client_open(why, sizeof why);
    if (!c) {
        fprintf(stderr, "guest: cannot connect: %s\n", why);
        exit(1);
    }
    return c;
}

/* runs a call with no reply payload */
static int call_empty(struct apir_client *c)
{
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    apir_client_end(c);
    return rc;
}

int guest_get_info(struct apir_client *c, uint32_t *version, uint32_t *n_devices)
{
    apir_client_begin(c, APIR_CMD_GET_INFO, 0);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0) {
        *version = apir_get_u32(&r);
        *n_devices = apir_get_u32(&r);
    }
    apir_client_end(c);
    return rc;
}

int guest_device_info(struct apir_client *c, uint32_t dev, struct guest_dev *out, char *name, size_t cap)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_DEVICE_GET_INFO, 4);
    apir_put_u32(e, dev);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0) {
        char desc[256];
        apir_get_str(&r, name, cap);
        apir_get_str(&r, desc, sizeof desc);
        apir_get_u32(&r); /* type */
        for (int i = 0; i < 4; i++)
            apir_get_u8(&r);
        out->buft = apir_get_u32(&r);
        out->host_buft = apir_get_u32(&r);
        if (!apir_decoder_done(&r))
            rc = -100;
    }
    apir_client_end(c);
    return rc;
}

int guest_device_memory(struct apir_client *c, uint32_t dev, uint64_t *free_mem, uint64_t *total)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_DEVICE_GET_MEMORY, 4);
    apir_put_u32(e, dev);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0) {
        *free_mem = apir_get_u64(&r);
        *total = apir_get_u64(&r);
    }
    apir_client_end(c);
    return rc;
}

int guest_buft_info(struct apir_client *c, uint32_t buft, uint64_t *alignment, uint64_t *max_size, uint8_t *is_host)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_BUFT_GET_INFO, 4);
    apir_put_u32(e, buft);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0) {
        char name[128];
        apir_get_str(&r, name, sizeof name);
        *alignment = apir_get_u64(&r);
        *max_size = apir_get_u64(&r);
        *is_host = apir_get_u8(&r);
    }
    apir_client_end(c);
    return rc;
}

int guest_alloc(struct apir_client *c, uint32_t buft, uint64_t size, uint32_t *buffer)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_BUFT_ALLOC_BUFFER, 12);
    apir_put_u32(e, buft);
    apir_put_u64(e, size);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0) {
        *buffer = apir_get_u32(&r);
        if (apir_get_u64(&r) < size)
            rc = -101;
    }
    apir_client_end(c);
    return rc;
}

int guest_buffer_free(struct apir_client *c, uint32_t buffer)
{
    apir_put_u32(apir_client_begin(c, APIR_CMD_BUFFER_FREE, 4), buffer);
    return call_empty(c);
}

int guest_clear(struct apir_client *c, uint32_t buffer, uint8_t value)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_BUFFER_CLEAR, 5);
    apir_put_u32(e, buffer);
    apir_put_u8(e, value);
    return call_empty(c);
}

int guest_memset(struct apir_client *c, uint32_t buffer, uint64_t off, uint64_t size, uint8_t value)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_BUFFER_MEMSET, 21);
    apir_put_u32(e, buffer);
    apir_put_u64(e, off);
    apir_put_u64(e, size);
    apir_put_u8(e, value);
    return call_empty(c);
}

static int transfer(struct apir_client *c, uint32_t cmd, uint32_t buffer, uint64_t off, uint64_t size, uint64_t data_off)
{
    struct apir_encoder *e = apir_client_begin(c, cmd, 32);
    apir_put_u32(e, buffer);
    apir_put_u64(e, off);
    apir_put_u64(e, size);
    apir_put_u32(e, c->data.res_id);
    apir_put_u64(e, data_off);
    return call_empty(c);
}

int guest_set(struct apir_client *c, uint32_t buffer, uint64_t off, const void *src, uint64_t size, uint64_t data_off)
{
    memcpy((char *)c->data.ptr + data_off, src, size);
    return transfer(c, APIR_CMD_BUFFER_SET, buffer, off, size, data_off);
}

int guest_get(struct apir_client *c, uint32_t buffer, uint64_t off, void *dst, uint64_t size, uint64_t data_off)
{
    int rc = transfer(c, APIR_CMD_BUFFER_GET, buffer, off, size, data_off);
    if (rc == 0)
        memcpy(dst, (char *)c->data.ptr + data_off, size);
    return rc;
}

int guest_copy(struct apir_client *c, uint32_t src, uint64_t src_off, uint32_t dst, uint64_t dst_off, uint64_t size)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_BUFFER_COPY, 32);
    apir_put_u32(e, src);
    apir_put_u64(e, src_off);
    apir_put_u32(e, dst);
    apir_put_u64(e, dst_off);
    apir_put_u64(e, size);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0 && apir_get_u8(&r) != 1)
        rc = -102;
    apir_client_end(c);
    return rc;
}

int guest_backend_init(struct apir_client *c, uint32_t dev, uint32_t *backend)
{
    apir_put_u32(apir_client_begin(c, APIR_CMD_BACKEND_INIT, 4), dev);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0)
        *backend = apir_get_u32(&r);
    apir_client_end(c);
    return rc;
}

int guest_backend_free(struct apir_client *c, uint32_t backend)
{
    apir_put_u32(apir_client_begin(c, APIR_CMD_BACKEND_FREE, 4), backend);
    return call_empty(c);
}

static int call_status(struct apir_client *c, uint32_t *ggml_status)
{
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0)
        *ggml_status = apir_get_u32(&r);
    apir_client_end(c);
    return rc;
}

int guest_graph_compute(struct apir_client *c, uint32_t backend, const struct apir_wire_tensor *t, uint32_t n,
                        const uint32_t *nodes, uint32_t n_nodes, uint32_t *ggml_status)
{
    struct apir_encoder *e =
        apir_client_begin(c, APIR_CMD_GRAPH_COMPUTE, 12 + (size_t)n * APIR_WIRE_TENSOR_SIZE + 4 * (size_t)n_nodes);
    apir_put_u32(e, backend);
    apir_put_u32(e, n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(e, &t[i]);
    apir_put_u32(e, n_nodes);
    for (uint32_t i = 0; i < n_nodes; i++)
        apir_put_u32(e, nodes[i]);
    return call_status(c, ggml_status);
}

int guest_graph_recompute(struct apir_client *c, uint32_t backend, uint32_t *ggml_status)
{
    apir_put_u32(apir_client_begin(c, APIR_CMD_GRAPH_RECOMPUTE, 4), backend);
    return call_status(c, ggml_status);
}

int guest_synchronize(struct apir_client *c, uint32_t backend, uint32_t *ggml_status)
{
    apir_put_u32(apir_client_begin(c, APIR_CMD_BACKEND_SYNCHRONIZE, 4), backend);
    return call_status(c, ggml_status);
}

int guest_supports_op(struct apir_client *c, uint32_t dev, const struct apir_wire_tensor *t, uint32_t n, uint8_t *ok)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_DEVICE_SUPPORTS_OP, 8 + (size_t)n * APIR_WIRE_TENSOR_SIZE);
    apir_put_u32(e, dev);
    apir_put_u32(e, n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(e, &t[i]);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0)
        *ok = apir_get_u8(&r);
    apir_client_end(c);
    return rc;
}

int guest_alloc_size(struct apir_client *c, uint32_t buft, const struct apir_wire_tensor *t, uint32_t n, uint64_t *size)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_CMD_BUFT_GET_ALLOC_SIZE, 8 + (size_t)n * APIR_WIRE_TENSOR_SIZE);
    apir_put_u32(e, buft);
    apir_put_u32(e, n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(e, &t[i]);
    struct apir_decoder r;
    int rc = apir_client_call(c, &r);
    if (rc == 0)
        *size = apir_get_u64(&r);
    apir_client_end(c);
    return rc;
}

struct apir_wire_tensor guest_f32(const char *name, int64_t ne0, int64_t ne1, uint32_t buffer, uint64_t offset)
{
    struct apir_wire_tensor t;
    memset(&t, 0, sizeof t);
    t.type = GGML_TYPE_F32;
    t.op = GGML_OP_NONE;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = t.ne[3] = 1;
    t.nb[0] = sizeof(float);
    t.nb[1] = t.nb[0] * (uint64_t)ne0;
    t.nb[2] = t.nb[3] = t.nb[1] * (uint64_t)ne1;
    t.buffer = buffer;
    t.data_offset = offset;
    snprintf(t.name, sizeof t.name, "%s", name);
    return t;
}
