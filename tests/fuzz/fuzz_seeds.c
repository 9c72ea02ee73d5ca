/* Writes seed inputs for the fuzzers into DIR/dispatch and DIR/graph: real sessions and real
 * graphs (a llama.cpp-style transformer block built with ggml), so that fuzzing starts from
 * messages the host accepts and mutates them from there.
 * Usage: fuzz_seeds DIR */
#include "apir_codec.h"
#include "apir_forward.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "llama_block.h"
#include "vgpu_graph.h"
#include "wire_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* handles in a fresh CPU context: buffer type 1 (the CPU device has no host buffer type),
 * then the first buffer 2 and the first backend 3 */
#define H_BUFT 1
#define H_BUF 2
#define H_BACKEND 3

static uint8_t out[1 << 20];
static struct apir_encoder seed;
static uint8_t args[1 << 19];
static struct apir_encoder a;

static void rec_begin(void) { apir_encoder_init(&a, args, sizeof args); }
static void rec_end(uint32_t cmd)
{
    apir_put_u8(&seed, (uint8_t)cmd);
    apir_put_bytes(&seed, &(uint16_t){(uint16_t)(a.pos > 0xffff ? 0xffff : a.pos)}, 2);
    apir_put_bytes(&seed, args, a.pos);
}

static void save(const char *dir, const char *name, const void *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* the graph as the guest encodes it (vgpu_graph_encode) */
static void put_graph(struct apir_encoder *e, struct ggml_cgraph *gf, uint32_t buf, const char *base)
{
    struct vgpu_graph_encoder ge = {0};
    struct block_place p = {buf, base};
    if (vgpu_graph_encode(&ge, gf, block_locate, &p) != VGPU_GRAPH_OK) {
        fprintf(stderr, "fuzz_seeds: the guest cannot encode the graph\n");
        exit(1);
    }
    apir_put_bytes(e, ge.bytes, ge.len);
    vgpu_graph_encoder_free(&ge);
}

/* a BUFFER_SET or BUFFER_GET record: size bytes at offset of H_BUF, through resource 1 at data_off */
/* GRAPH_RECOMPUTE of slot 0 (the session's only graph), no outputs read back */
static void rec_recompute(void)
{
    rec_begin();
    wt_put_recompute(&a, H_BACKEND, 0);
    rec_end(APIR_FWD_GRAPH_RECOMPUTE);
}

static void rec_transfer(uint32_t cmd, uint64_t offset, uint64_t size, uint64_t data_off)
{
    rec_begin();
    apir_put_u32(&a, H_BUF);
    apir_put_u64(&a, offset);
    apir_put_u64(&a, size);
    apir_put_u32(&a, 1);
    apir_put_u64(&a, data_off);
    rec_end(cmd);
}

static void session_mul_mat(const char *dir)
{
    apir_encoder_init(&seed, out, sizeof out);
    rec_begin();
    apir_put_u32(&a, H_BUFT);
    apir_put_u64(&a, 4096);
    rec_end(APIR_FWD_BUFT_ALLOC_BUFFER);
    rec_begin();
    apir_put_u32(&a, 0);
    rec_end(APIR_FWD_BACKEND_INIT);
    rec_transfer(APIR_FWD_BUFFER_SET, 0, 80, 0);
    struct apir_wire_tensor t[3];
    wt_mul_mat(t, H_BUF);
    uint32_t node = 2;
    rec_begin();
    apir_put_u32(&a, H_BACKEND);
    wt_put_graph(&a, t, 3, &node, 1);
    rec_end(APIR_FWD_GRAPH_COMPUTE);
    rec_recompute();
    rec_transfer(APIR_FWD_BUFFER_GET, 128, 24, 1024);
    rec_begin();
    apir_put_u32(&a, 0);
    apir_put_u32(&a, 3);
    for (int i = 0; i < 3; i++)
        apir_wire_tensor_encode(&a, &t[i]);
    rec_end(APIR_FWD_DEVICE_SUPPORTS_OP);
    rec_begin();
    apir_put_u32(&a, H_BUF);
    apir_put_u64(&a, 8);
    apir_put_u32(&a, H_BUF);
    apir_put_u64(&a, 512);
    apir_put_u64(&a, 64);
    rec_end(APIR_FWD_BUFFER_COPY);
    rec_begin();
    apir_put_u32(&a, H_BUF);
    rec_end(APIR_FWD_BUFFER_FREE);
    rec_recompute();
    save(dir, "session_mul_mat", out, seed.pos);

    /* the same graph alone for the decoder fuzzer (buffer handle 1 there) */
    for (int i = 0; i < 3; i++)
        t[i].buffer = 1;
    apir_encoder_init(&seed, out, sizeof out);
    apir_put_u8(&seed, 0);
    wt_put_graph(&seed, t, 3, &node, 1);
    save(dir, "graph_mul_mat", out, seed.pos);
}

static void block(const char *dir)
{
    struct ggml_init_params ip = {MAX_T * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    struct model m;
    struct ggml_cgraph *gf = build(ctx, &m);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
    const char *base = ggml_backend_buffer_get_base(buf);
    size_t size = ggml_backend_buffer_get_size(buf);

    apir_encoder_init(&seed, out, sizeof out);
    rec_begin();
    apir_put_u32(&a, H_BUFT);
    apir_put_u64(&a, size);
    rec_end(APIR_FWD_BUFT_ALLOC_BUFFER);
    rec_begin();
    apir_put_u32(&a, 0);
    rec_end(APIR_FWD_BACKEND_INIT);
    rec_begin();
    apir_put_u32(&a, H_BACKEND);
    put_graph(&a, gf, H_BUF, base);
    if (a.pos > 0xffff) {
        fprintf(stderr, "block graph too large for a seed record (%zu bytes)\n", a.pos);
        exit(1);
    }
    rec_end(APIR_FWD_GRAPH_COMPUTE);
    rec_recompute();
    save(dir, "session_block", out, seed.pos);

    apir_encoder_init(&seed, out, sizeof out);
    apir_put_u8(&seed, 0);
    put_graph(&seed, gf, 1, base);
    save(dir, "graph_block", out, seed.pos);
    printf("block: %zu bytes of buffer, %d nodes\n", size, ggml_graph_n_nodes(gf));
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    mkdir(argv[1], 0755);
    session_mul_mat(argv[1]);
    block(argv[1]);
    return 0;
}
