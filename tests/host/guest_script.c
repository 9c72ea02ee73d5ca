#include "guest_script.h"

#include "vgpu_wire.h"

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

int guest_device_info(struct apir_client *c, uint32_t dev, struct guest_dev *out, char *name, size_t cap)
{
    struct vgpu_host_device_info info;
    int rc = vgpu_rpc_device_info(c, dev, &info);
    if (rc == APIR_BACKEND_OK) {
        snprintf(name, cap, "%s", info.name);
        out->buft = info.buft;
        out->host_buft = info.host_buft;
    }
    return rc;
}

int guest_alloc(struct apir_client *c, uint32_t buft, uint64_t size, uint32_t *buffer)
{
    uint64_t got = 0;
    int rc = vgpu_rpc_buft_alloc(c, buft, size, buffer, &got);
    if (rc == APIR_BACKEND_OK && got < size)
        rc = -101;
    return rc;
}

int guest_session_open(struct guest_session *s, uint64_t buffer_size)
{
    s->c = guest_open();
    char name[128];
    int rc = guest_device_info(s->c, 0, &s->dev, name, sizeof name);
    if (rc == APIR_BACKEND_OK)
        rc = guest_alloc(s->c, s->dev.buft, buffer_size, &s->buffer);
    if (rc == APIR_BACKEND_OK)
        rc = vgpu_rpc_backend_init(s->c, 0, &s->backend);
    return rc;
}

/* Placed tensors carry a fake data address: PLACED + their offset in the graph's buffer
 * (never dereferenced: the context allocates no data). */
#define PLACED ((uintptr_t)1 << 40)

void guest_graph_init(struct guest_graph *gg, uint32_t buffer)
{
    memset(gg, 0, sizeof *gg);
    struct ggml_init_params p = {.mem_size = 256 * ggml_tensor_overhead() + ggml_graph_overhead(), .no_alloc = true};
    gg->ctx = ggml_init(p);
    gg->g = ggml_new_graph(gg->ctx);
    gg->buffer = buffer;
}

void guest_graph_free(struct guest_graph *gg)
{
    vgpu_graph_encoder_free(&gg->enc);
    ggml_free(gg->ctx);
}

struct ggml_tensor *guest_place(struct ggml_tensor *t, uint64_t offset)
{
    t->data = (void *)(PLACED + (uintptr_t)offset);
    return t;
}

struct ggml_tensor *guest_tensor(struct guest_graph *gg, enum ggml_type type, const char *name, int64_t ne0,
                                 int64_t ne1, uint64_t offset)
{
    struct ggml_tensor *t = ggml_new_tensor_2d(gg->ctx, type, ne0, ne1);
    ggml_set_name(t, name);
    return guest_place(t, offset);
}

void guest_graph_add(struct guest_graph *gg, struct ggml_tensor *t)
{
    ggml_set_output(t);
    ggml_build_forward_expand(gg->g, t);
}

static bool locate(void *user, const struct ggml_tensor *t, uint32_t *buffer, uint64_t *offset)
{
    const struct guest_graph *gg = user;
    if ((uintptr_t)t->data < PLACED)
        return false;
    *buffer = gg->buffer;
    *offset = (uint64_t)((uintptr_t)t->data - PLACED);
    return true;
}

int guest_graph_compute(struct apir_client *c, uint32_t backend, struct guest_graph *gg, int32_t *ggml_status)
{
    enum vgpu_graph_result r = vgpu_graph_encode(&gg->enc, gg->g, locate, gg);
    if (r != VGPU_GRAPH_OK) {
        fprintf(stderr, "guest: cannot encode the graph: %s\n", vgpu_graph_result_str(r));
        return -102;
    }
    return vgpu_rpc_graph_compute(c, backend, gg->enc.bytes, gg->enc.len, ggml_status, &gg->slot);
}
