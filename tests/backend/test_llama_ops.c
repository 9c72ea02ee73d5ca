/* A transformer block as llama.cpp builds it (get_rows, rms_norm, quantized mul_mat, rope,
 * permuted views, soft_max with mask, cont/transpose, flash attention, set_rows into a cache,
 * swiglu, gelu, scale), built with ggml itself, computed natively on the CPU backend and
 * through the backend library's GRAPH_COMPUTE / GRAPH_RECOMPUTE: the host's validation must
 * accept every real node, and the results must match the native ones exactly. */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "apir_wire_tensor.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "llama_block.h"
#include "session_fixture.h"
#include "vgpu_graph.h"
#include "wire_util.h"
#include "vgpu_wire.h"

#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTX 11
#define RES 3
#define SHM_SIZE (4u << 20)
static char cpu_path[PATH_MAX];
static uint8_t *shm;
static int failures;
#define FAIL(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr), failures++)

static struct virgl_apir_callbacks *cbs;

static uint8_t *args, reply[4096];
#define ARGS_CAP (1u << 20)
static struct apir_encoder a;
static struct apir_decoder r;
static void begin(void) { apir_encoder_init(&a, args, ARGS_CAP); }
static uint32_t call(uint32_t cmd)
{
    return sf_call(CTX, cbs, cmd, args, a.pos, reply, sizeof reply, &r);
}

static void fill_f32(float *x, size_t n, unsigned *seed, float scale)
{
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1103515245u + 12345u;
        x[i] = ((float)((*seed >> 8) & 0xffff) / 65536.0f - 0.5f) * scale;
    }
}

/* random weights in the tensor's type (quantized through ggml) */
static void set_random(struct ggml_tensor *t, unsigned seed, float scale)
{
    int64_t n = ggml_nelements(t);
    float *f = malloc((size_t)n * sizeof *f);
    fill_f32(f, (size_t)n, &seed, scale);
    void *data = malloc(ggml_nbytes(t));
    if (t->type == GGML_TYPE_F32)
        memcpy(data, f, (size_t)n * 4);
    else if (t->type == GGML_TYPE_F16)
        ggml_fp32_to_fp16_row(f, data, n);
    else
        ggml_quantize_chunk(t->type, f, data, 0, n / t->ne[0], t->ne[0], NULL);
    ggml_backend_tensor_set(t, data, 0, ggml_nbytes(t));
    free(data);
    free(f);
}

static void set_i32(struct ggml_tensor *t, const int32_t *v) { ggml_backend_tensor_set(t, v, 0, ggml_nbytes(t)); }

static void set_inputs(struct model *m, int round)
{
    int32_t ids[N_TOK], pos[N_TOK];
    int64_t kidx[N_TOK];
    float mask[N_TOK * N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        ids[i] = (i * 7 + round * 3) % N_VOCAB;
        pos[i] = i + round;
        kidx[i] = (i + round) % N_KV;
        for (int j = 0; j < N_TOK; j++)
            mask[i * N_TOK + j] = j <= i ? 0.0f : -INFINITY;
    }
    set_i32(m->ids, ids);
    set_i32(m->pos, pos);
    ggml_backend_tensor_set(m->kidx, kidx, 0, sizeof kidx);
    ggml_backend_tensor_set(m->mask, mask, 0, sizeof mask);
}

/* the remote copy of t must equal the native one */
static void compare(uint32_t buf, const char *base, struct ggml_tensor *t, const char *what)
{
    size_t n = ggml_nbytes(t), off = (size_t)((char *)t->data - base);
    begin();
    wt_put_transfer(&a, buf, off, n, RES, 0);
    if (call(APIR_FWD_BUFFER_GET) != APIR_BACKEND_OK) {
        FAIL("%s: GET failed", what);
        return;
    }
    if (memcmp(shm, t->data, n) != 0)
        FAIL("%s: remote result differs from the native one", what);
}

/* the whole native buffer (inputs and weights) to the remote one */
static void upload(uint32_t buf, ggml_backend_buffer_t nbuf)
{
    size_t size = ggml_backend_buffer_get_size(nbuf);
    memcpy(shm, ggml_backend_buffer_get_base(nbuf), size);
    begin();
    wt_put_transfer(&a, buf, 0, size, RES, 0);
    if (call(APIR_FWD_BUFFER_SET) != APIR_BACKEND_OK)
        FAIL("upload failed");
}

int main(void)
{
    sf_pick_cpu(GGML_LIB_DIR, cpu_path, sizeof cpu_path);
    if (!cpu_path[0])
        return 1;
    setenv(APIR_ENV_BACKEND_LOG, "/dev/null", 1);
    shm = calloc(1, SHM_SIZE);
    cbs = sf_single_resource(cpu_path, RES, shm, SHM_SIZE);
    args = malloc(ARGS_CAP);

    /* native CPU backend, from the same library file the backend library will load */
    void *dl = dlopen(cpu_path, RTLD_NOW | RTLD_LOCAL);
    ggml_backend_reg_t (*init)(void);
    *(void **)&init = dlsym(dl, "ggml_backend_init");
    ggml_backend_dev_t dev = ggml_backend_reg_dev_get(init(), 0);
    ggml_backend_t backend = ggml_backend_dev_init(dev, NULL);

    struct ggml_init_params ip = {MAX_T * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    struct model m;
    struct ggml_cgraph *gf = build(ctx, &m);
    ggml_backend_buffer_t nbuf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    const char *base = ggml_backend_buffer_get_base(nbuf);
    size_t size = ggml_backend_buffer_get_size(nbuf);
    if (size > SHM_SIZE) {
        FAIL("model too large for the test's shared resource");
        return 1;
    }
    struct ggml_tensor *weights[] = {m.tok, m.norm_w, m.wq, m.wk, m.wv, m.wg, m.wu, m.wd, m.kcache};
    for (unsigned i = 0; i < sizeof weights / sizeof *weights; i++)
        set_random(weights[i], 17 + i, i == 1 ? 2.0f : 0.5f);
    set_inputs(&m, 0);

    /* remote: context, buffer of the same layout, backend */
    if (apir_backend_initialize(CTX, cbs) != 0)
        return 1;
    begin();
    apir_put_u32(&a, 0);
    call(APIR_FWD_DEVICE_GET_INFO);
    char name[256];
    apir_get_str(&r, name, sizeof name);
    apir_get_str(&r, name, sizeof name);
    apir_get_u32(&r);
    apir_get_u32(&r);
    uint32_t buft = apir_get_u32(&r);
    begin();
    apir_put_u32(&a, buft);
    apir_put_u64(&a, size);
    if (call(APIR_FWD_BUFT_ALLOC_BUFFER) != APIR_BACKEND_OK)
        return 1;
    uint32_t buf = apir_get_u32(&r);
    begin();
    apir_put_u32(&a, 0);
    call(APIR_FWD_BACKEND_INIT);
    uint32_t be = apir_get_u32(&r);
    upload(buf, nbuf);

    /* encode the graph with the guest's own encoder */
    int n_nodes = ggml_graph_n_nodes(gf);
    struct vgpu_graph_encoder ge = {0};
    struct block_place pl = {buf, base};
    if (vgpu_graph_encode(&ge, gf, block_locate, &pl) != VGPU_GRAPH_OK) {
        FAIL("the guest cannot encode the transformer block");
        return 1;
    }
    begin();
    apir_put_u32(&a, be);
    apir_put_bytes(&a, ge.bytes, ge.len);
    uint32_t st = call(APIR_FWD_GRAPH_COMPUTE);
    if (st != APIR_BACKEND_OK || apir_get_u32(&r) != GGML_STATUS_SUCCESS)
        FAIL("GRAPH_COMPUTE of a real transformer block refused: status %u", st);

    /* supports_op agrees node by node, with the guest's op signatures */
    for (int i = 0; i < n_nodes; i++) {
        struct ggml_tensor *node = ggml_graph_node(gf, i);
        uint8_t sig[VGPU_OP_SIG_MAX];
        begin();
        apir_put_u32(&a, 0);
        apir_put_bytes(&a, sig, vgpu_op_signature(node, sig));
        if (call(APIR_FWD_DEVICE_SUPPORTS_OP) != APIR_BACKEND_OK || apir_get_u8(&r) != 1)
            FAIL("supports_op says no to node %d (%s)", i, ggml_op_desc(node));
    }

    if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS)
        FAIL("native compute failed");
    compare(buf, base, m.out, "block output");
    compare(buf, base, m.fa, "flash attention");
    compare(buf, base, m.kcache, "k cache after set_rows");

    /* new inputs, same graph: RECOMPUTE on the host, compute natively, compare again */
    set_inputs(&m, 1);
    upload(buf, nbuf);
    begin();
    wt_put_recompute(&a, be, 0); /* slot 0: the only graph sent */
    if (call(APIR_FWD_GRAPH_RECOMPUTE) != APIR_BACKEND_OK || apir_get_u32(&r) != GGML_STATUS_SUCCESS)
        FAIL("GRAPH_RECOMPUTE failed");
    ggml_backend_graph_compute(backend, gf);
    compare(buf, base, m.out, "block output (recompute)");
    compare(buf, base, m.kcache, "k cache (recompute)");

    apir_backend_deinit(CTX);
    ggml_backend_buffer_free(nbuf);
    ggml_free(ctx);
    ggml_backend_free(backend);
    free(args);
    free(shm);
    if (!failures)
        printf("transformer block: %d nodes, %zu tensors, remote == native\n", n_nodes, ge.n_order);
    vgpu_graph_encoder_free(&ge);
    return failures ? 1 : 0;
}
