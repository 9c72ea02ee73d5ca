/* FORWARD-level attacks on the host's node validation, one per memory-safety class (listed in
 * docs/protocol.md, "Validation rules"): each graph goes through GRAPH_COMPUTE (or
 * DEVICE_SUPPORTS_OP) of the real backend library on the real CPU backend, in a child process
 * as a guest's worker would run it. A case passes when the host refuses it with a status — or,
 * where docs/protocol.md ("Limits of host-side validation") allows it, when a ggml assertion
 * ends the worker (SIGABRT). Any other signal, a sanitizer report (exit status 1 under
 * ASan/UBSan) or a graph computed that must not be fails.
 * The tensors an attack would read past sit at the end of the guest's buffer, so that an
 * out-of-bounds access leaves the allocation and the sanitizer build sees it. */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "apir_wire_tensor.h"
#include "ggml.h"
#include "session_fixture.h"
#include "wire_util.h"

#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTX 41
#define RES 9
#define SHM_SIZE (1u << 16)
#define BUF_SIZE (1u << 20)

static uint8_t *args, reply[256];
static struct apir_encoder a;
static struct apir_decoder r;
static struct virgl_apir_callbacks *cbs;
static uint32_t backend_h, buf_h;
static int failures;

static uint32_t call(uint32_t cmd) { return sf_call(CTX, cbs, cmd, args, a.pos, reply, sizeof reply, &r); }

enum expect {
    REFUSED,           /* an error status, the graph not computed */
    REFUSED_OR_ASSERT, /* or a ggml assertion ends the worker */
    SAFE,              /* any of these, or computed: the kernel has the case after all */
    BOUNDS,            /* ERR_BOUNDS: an index out of range, caught before the kernel */
    COMPUTED,          /* a valid graph: computed */
};

#define EXIT_BASE 100

static void check_child(const char *name, enum expect want, int ws)
{
    if (WIFSIGNALED(ws)) {
        if (WTERMSIG(ws) == SIGABRT && (want == REFUSED_OR_ASSERT || want == SAFE))
            return;
        fprintf(stderr, "FAIL %s: worker killed by signal %d\n", name, WTERMSIG(ws));
        failures++;
        return;
    }
    int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    if (code < EXIT_BASE) {
        fprintf(stderr, "FAIL %s: worker exited with %d (a sanitizer report?)\n", name, code);
        failures++;
        return;
    }
    uint32_t st = (uint32_t)(code - EXIT_BASE);
    bool ok = want == SAFE       ? true
              : want == COMPUTED ? st == APIR_BACKEND_OK
              : want == BOUNDS ? st == APIR_BACKEND_ERR_BOUNDS
                               : st != APIR_BACKEND_OK;
    if (!ok) {
        fprintf(stderr, "FAIL %s: status %u\n", name, st);
        failures++;
    }
}

/* GRAPH_COMPUTE of t[0..n) with the last tensor as the only node, unless nodes are given */
static void graph_case(const char *name, enum expect want, struct apir_wire_tensor *t, uint32_t n,
                       const uint32_t *nodes, uint32_t n_nodes)
{
    uint32_t last = n - 1;
    if (!nodes) {
        nodes = &last;
        n_nodes = 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        apir_encoder_init(&a, args, 1u << 20);
        apir_put_u32(&a, backend_h);
        wt_put_graph(&a, t, n, nodes, n_nodes);
        uint32_t st = call(APIR_FWD_GRAPH_COMPUTE);
        if (st == APIR_BACKEND_OK && apir_get_u32(&r) != GGML_STATUS_SUCCESS)
            st = APIR_BACKEND_ERR_BACKEND;
        _exit(EXIT_BASE + (int)st);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid) {
        fprintf(stderr, "FAIL %s: fork/wait\n", name);
        failures++;
        return;
    }
    check_child(name, want, ws);
}

static void set_bytes(uint64_t offset, const void *data, uint32_t size)
{
    apir_encoder_init(&a, args, 1u << 20);
    apir_put_u32(&a, buf_h);
    apir_put_u64(&a, offset);
    apir_put_u32(&a, size);
    apir_put_bytes(&a, data, size);
    if (call(APIR_FWD_BUFFER_SET_INLINE) != APIR_BACKEND_OK) {
        fprintf(stderr, "FAIL: BUFFER_SET_INLINE\n");
        failures++;
    }
}

/* t placed so that it ends exactly at the end of the buffer */
static struct apir_wire_tensor at_end(enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3)
{
    struct apir_wire_tensor t = wt_make(type, ne0, ne1, ne2, ne3, 0, 0);
    t.buffer = buf_h;
    t.data_offset = BUF_SIZE - t.nb[3] * (uint64_t)ne3;
    return t;
}

static struct apir_wire_tensor at(enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3,
                                  uint64_t offset)
{
    return wt_make(type, ne0, ne1, ne2, ne3, buf_h, offset);
}

/* a node as ggml_build_forward_expand leaves it (backends skip nodes without COMPUTE) */
static void op(struct apir_wire_tensor *t, enum ggml_op o, uint32_t s0, uint32_t s1, uint32_t s2)
{
    t->op = (uint32_t)o;
    t->flags = GGML_TENSOR_FLAG_COMPUTE;
    t->src[0] = s0;
    t->src[1] = s1;
    t->src[2] = s2;
}

/* t[2] = OP(t[0], t[1]) as the only node, computed (the three tensors stay in t for cases
 * that change one of them) */
static void binary_case(const char *name, enum expect want, struct apir_wire_tensor *t, enum ggml_op o,
                        struct apir_wire_tensor src0, struct apir_wire_tensor src1, struct apir_wire_tensor dst)
{
    t[0] = src0;
    t[1] = src1;
    t[2] = dst;
    op(&t[2], o, 1, 2, 0);
    graph_case(name, want, t, 3, NULL, 0);
}

/* types with no CPU kernel as row types: a kernel would call a NULL decoder */
static void no_kernel_types(void)
{
    struct apir_wire_tensor t[4];
    binary_case("GET_ROWS of Q8_1 rows", REFUSED, t, GGML_OP_GET_ROWS, at(GGML_TYPE_Q8_1, 64, 4, 1, 1, 0),
                at(GGML_TYPE_I32, 2, 1, 1, 1, 4096), at(GGML_TYPE_F32, 64, 2, 1, 1, 8192));

    binary_case("MUL_MAT of Q8_K weights", REFUSED, t, GGML_OP_MUL_MAT, at(GGML_TYPE_Q8_K, 256, 4, 1, 1, 0),
                at(GGML_TYPE_F32, 256, 2, 1, 1, 4096), at(GGML_TYPE_F32, 4, 2, 1, 1, 16384));

    binary_case("MUL_MAT of I32 weights", REFUSED, t, GGML_OP_MUL_MAT, at(GGML_TYPE_I32, 64, 4, 1, 1, 0),
                at(GGML_TYPE_F32, 64, 2, 1, 1, 4096), at(GGML_TYPE_F32, 4, 2, 1, 1, 16384));

    t[0] = at(GGML_TYPE_Q8_1, 64, 2, 1, 1, 0);
    t[1] = at(GGML_TYPE_F32, 64, 2, 1, 1, 4096);
    t[2] = t[1];
    op(&t[2], GGML_OP_CPY, 1, 2, 0);
    t[2].view_src = 2;
    graph_case("CPY Q8_1 -> f32", REFUSED, t, 3, NULL, 0);
}

/* copy kernels given shapes or types ggml's constructors never produce */
static void copy_kernels(void)
{
    struct apir_wire_tensor t[3];
    t[0] = at(GGML_TYPE_Q4_0, 64, 2, 1, 1, 0);
    t[1] = at(GGML_TYPE_F32, 64, 2, 1, 1, 4096);
    op(&t[1], GGML_OP_DUP, 1, 0, 0);
    graph_case("DUP q4_0 -> f32 (NULL src[1])", REFUSED, t, 2, NULL, 0);
    op(&t[1], GGML_OP_CONT, 1, 0, 0);
    graph_case("CONT q4_0 -> f32", REFUSED, t, 2, NULL, 0);

    t[0] = at(GGML_TYPE_F32, 64, 2, 1, 1, 0);
    t[1] = at(GGML_TYPE_Q8_0, 64, 2, 1, 1, 4096);
    op(&t[1], GGML_OP_CONT, 1, 0, 0);
    graph_case("CONT f32 -> q8_0 (no work buffer)", REFUSED, t, 2, NULL, 0);

    t[0] = at(GGML_TYPE_F32, 4096, 1, 1, 1, 0);
    t[1] = at_end(GGML_TYPE_F16, 64, 64, 1, 1);
    op(&t[1], GGML_OP_DUP, 1, 0, 0);
    graph_case("DUP with source rows longer than the destination's", REFUSED, t, 2, NULL, 0);
}

/* strides inside each tensor's extent that make a kernel leave it */
static void strides(void)
{
    struct apir_wire_tensor t[5];
    /* flash attention writing rows by a dst->nb[1] ggml would never give */
    t[0] = at(GGML_TYPE_F32, 64, 1, 2, 1, 0);     /* q */
    t[1] = at(GGML_TYPE_F16, 64, 8, 2, 1, 4096);  /* k */
    t[2] = at(GGML_TYPE_F16, 64, 8, 2, 1, 16384); /* v */
    t[3] = at_end(GGML_TYPE_F32, 64, 2, 1, 1);    /* out [D, n_head, n_q] */
    t[3].nb[1] = 4;
    t[3].nb[2] = t[3].nb[3] = 512;
    op(&t[3], GGML_OP_FLASH_ATTN_EXT, 1, 2, 3);
    graph_case("FLASH_ATTN_EXT dst nb[1]", REFUSED, t, 4, NULL, 0);

    /* flash attention with V heads that do not divide Q's: ggml leaves V to the kernel */
    t[0] = at(GGML_TYPE_F32, 64, 1, 4, 1, 0);     /* q: 4 heads */
    t[1] = at(GGML_TYPE_F16, 64, 8, 1, 1, 4096);  /* k: 1 head */
    t[2] = at_end(GGML_TYPE_F16, 64, 8, 3, 1);    /* v: 3 heads */
    t[3] = at(GGML_TYPE_F32, 64, 4, 1, 1, 16384); /* out [D, n_head, n_q] */
    op(&t[3], GGML_OP_FLASH_ATTN_EXT, 1, 2, 3);
    graph_case("FLASH_ATTN_EXT V heads not dividing Q heads", REFUSED, t, 4, NULL, 0);
    t[2] = at(GGML_TYPE_F16, 64, 8, 8, 1, 32768);
    graph_case("FLASH_ATTN_EXT more V heads than Q heads (a division by zero)", REFUSED, t, 4, NULL, 0);
    /* K and V of an integer type: the kernel calls its dot product, which is NULL (found by
     * backend_mutations: a jump to address 0) */
    t[1] = at(GGML_TYPE_I16, 64, 8, 1, 1, 4096);
    t[2] = at(GGML_TYPE_F16, 64, 8, 1, 1, 32768);
    graph_case("FLASH_ATTN_EXT K of type I16", REFUSED, t, 4, NULL, 0);
    t[1] = at(GGML_TYPE_F16, 64, 8, 1, 1, 4096);
    t[2] = at(GGML_TYPE_I16, 64, 8, 1, 1, 32768);
    graph_case("FLASH_ATTN_EXT V of type I16", REFUSED, t, 4, NULL, 0);

    t[0] = at(GGML_TYPE_F32, 64, 1, 1, 1, 0);
    t[1] = at_end(GGML_TYPE_I32, 64, 1, 1, 1);
    t[1].nb[1] = 1u << 19; /* one row: the extent ignores nb[1] */
    op(&t[1], GGML_OP_ARGSORT, 1, 0, 0);
    graph_case("ARGSORT nb[1] with one row", REFUSED, t, 2, NULL, 0);

    /* CPY q4_0 -> f32 whose result is laid out unlike src[1] */
    t[0] = at(GGML_TYPE_Q4_0, 64, 4, 1, 1, 0);
    t[1] = at(GGML_TYPE_F32, 64, 4, 1, 1, 4096);
    t[1].nb[1] = 64 * 4 * 8;
    t[2] = at(GGML_TYPE_F32, 64, 4, 1, 1, 4096);
    op(&t[2], GGML_OP_CPY, 1, 2, 0);
    t[2].view_src = 2;
    graph_case("CPY q4_0 -> f32 laid out by other strides than src[1]", REFUSED, t, 3, NULL, 0);

    /* ROPE over an odd ne[0]: the kernel rotates a pair past the row */
    t[0] = at_end(GGML_TYPE_F32, 15, 1, 2, 1);
    t[1] = at(GGML_TYPE_I32, 2, 1, 1, 1, 0);
    t[2] = at(GGML_TYPE_F32, 15, 1, 2, 1, 4096);
    op(&t[2], GGML_OP_ROPE, 1, 2, 0);
    t[2].op_params[1] = 14;
    graph_case("ROPE odd ne[0]", REFUSED, t, 3, NULL, 0);

    /* ROPE with a negative n_dims: the kernel copies the "unrotated" rest of each row from
     * n_dims on, i.e. from before the row */
    t[0] = at(GGML_TYPE_F32, 16, 1, 2, 1, 4096);
    t[1] = at(GGML_TYPE_I32, 2, 1, 1, 1, 0);
    t[2] = at(GGML_TYPE_F32, 16, 1, 2, 1, 8192);
    op(&t[2], GGML_OP_ROPE, 1, 2, 0);
    t[2].op_params[1] = -2;
    graph_case("ROPE negative n_dims", REFUSED, t, 3, NULL, 0);
    t[2].op_params[1] = 0; /* the kernel's copy loop steps by n_dims - 2 + 2: forever */
    graph_case("ROPE n_dims = 0 (a hang)", REFUSED, t, 3, NULL, 0);

    /* GET_ROWS with a->ne[3] smaller than the index's ne[2] */
    t[0] = at_end(GGML_TYPE_F32, 16, 4, 1, 1);
    t[1] = at(GGML_TYPE_I32, 2, 1, 3, 1, 0);
    t[2] = at(GGML_TYPE_F32, 16, 2, 1, 3, 4096);
    op(&t[2], GGML_OP_GET_ROWS, 1, 2, 0);
    graph_case("GET_ROWS a->ne[3] < idx->ne[2]", REFUSED_OR_ASSERT, t, 3, NULL, 0);

    /* a negative stride (2^64 - n on the wire) */
    t[0] = at(GGML_TYPE_F32, 16, 4, 1, 2, 0);
    t[0].nb[3] = (uint64_t)-256;
    t[1] = at(GGML_TYPE_I32, 2, 1, 2, 1, 4096);
    t[2] = at(GGML_TYPE_F32, 16, 2, 1, 2, 8192);
    op(&t[2], GGML_OP_GET_ROWS, 1, 2, 0);
    graph_case("GET_ROWS negative nb[3]", REFUSED, t, 3, NULL, 0);

    /* a packed size that overflows: ne[0] = 2^62 elements at stride 0 */
    t[0] = at(GGML_TYPE_F32, (int64_t)1 << 62, 1, 1, 1, 0);
    t[0].nb[0] = 0;
    t[0].nb[1] = t[0].nb[2] = t[0].nb[3] = 4;
    t[1] = at(GGML_TYPE_F32, 1, 1, 1, 1, 4096);
    op(&t[1], GGML_OP_SUM, 1, 0, 0);
    graph_case("packed size 2^64 (ne[0] = 2^62, nb[0] = 0)", REFUSED, t, 2, NULL, 0);
}

/* ROPE frequency factors: the kernel reads ne[0]/2 of them */
static void rope_freq_factors(void)
{
    struct apir_wire_tensor t[4];
    t[0] = at(GGML_TYPE_F32, 128, 1, 2, 1, 0);
    t[1] = at(GGML_TYPE_I32, 2, 1, 1, 1, 4096);
    t[2] = at_end(GGML_TYPE_F32, 4, 1, 1, 1); /* n_dims/2 = 4 factors, the kernel reads 64 */
    t[3] = at(GGML_TYPE_F32, 128, 1, 2, 1, 8192);
    op(&t[3], GGML_OP_ROPE, 1, 2, 3);
    t[3].op_params[1] = 8;
    graph_case("ROPE frequency factors read past the buffer", REFUSED, t, 4, NULL, 0);
}

/* ggml assertions the old checks let through: the worker may end (or the kernel may have
 * the case after all), nothing else */
static void assertions(void)
{
    struct apir_wire_tensor t[3];
    t[0] = at(GGML_TYPE_F32, 16, 1, 2, 1, 0);
    t[1] = at(GGML_TYPE_I32, 2, 1, 1, 1, 4096);
    t[2] = at(GGML_TYPE_F32, 16, 1, 2, 1, 8192);
    op(&t[2], GGML_OP_ROPE, 1, 2, 0);
    t[2].op_params[1] = 8;
    t[2].op_params[15] = 3;
    graph_case("ROPE odd n_offs", SAFE, t, 3, NULL, 0);
    t[2].op_params[15] = 0;
    t[2].op_params[2] = GGML_ROPE_TYPE_VISION;
    t[2].op_params[11] = 2;
    graph_case("ROPE sections in vision mode", SAFE, t, 3, NULL, 0);
    t[1] = at(GGML_TYPE_I32, 8, 1, 1, 1, 4096);
    t[2].op_params[2] = GGML_ROPE_TYPE_MROPE;
    t[2].op_params[11] = 0;
    t[2].op_params[14] = 4;
    graph_case("ROPE only the fourth m-rope section", SAFE, t, 3, NULL, 0);

    binary_case("ADD f16 + f16 -> f32", SAFE, t, GGML_OP_ADD, at(GGML_TYPE_F16, 16, 2, 1, 1, 0),
                at(GGML_TYPE_F16, 16, 2, 1, 1, 4096), at(GGML_TYPE_F32, 16, 2, 1, 1, 8192));

    t[0] = at(GGML_TYPE_BF16, 16, 2, 1, 1, 0);
    t[1] = at(GGML_TYPE_BF16, 16, 2, 1, 1, 4096);
    op(&t[1], GGML_OP_UNARY, 1, 0, 0);
    t[1].op_params[0] = GGML_UNARY_OP_GELU;
    graph_case("bf16 GELU", SAFE, t, 2, NULL, 0);

    t[0] = at(GGML_TYPE_F16, 32, 2, 1, 1, 0);
    t[1] = at(GGML_TYPE_F16, 16, 2, 1, 1, 4096);
    op(&t[1], GGML_OP_GLU, 1, 0, 0);
    t[1].op_params[0] = GGML_GLU_OP_SWIGLU_OAI;
    graph_case("SWIGLU_OAI f16", SAFE, t, 2, NULL, 0);
}

/* t[0..n) with the index bytes at 8192 set to bad (refused with ERR_BOUNDS), then to good
 * (computed) */
static void bad_then_good(const char *what, struct apir_wire_tensor *t, uint32_t n, const int32_t bad[4],
                          const int32_t good[4])
{
    char name[128];
    set_bytes(8192, bad, 4 * sizeof bad[0]);
    snprintf(name, sizeof name, "%s out of range", what);
    graph_case(name, BOUNDS, t, n, NULL, 0);
    set_bytes(8192, good, 4 * sizeof good[0]);
    snprintf(name, sizeof name, "%s in range", what);
    graph_case(name, COMPUTED, t, n, NULL, 0);
}

/* indices read from tensor data, checked before the kernel that reads them */
static void indices(void)
{
    struct apir_wire_tensor t[8];
    int32_t bad[4] = {0, 1, 7, 0}, good[4] = {1, 0, 1, 0};

    /* MUL_MAT_ID: 2 experts, ids name expert 7; the CPU kernel does not check (assert() only) */
    t[0] = at(GGML_TYPE_F32, 16, 4, 2, 1, 0);    /* as: [cols, rows, n_expert] */
    t[1] = at(GGML_TYPE_F32, 16, 2, 2, 1, 4096); /* b: [cols, n_used, n_tokens] */
    t[2] = at(GGML_TYPE_I32, 2, 2, 1, 1, 8192);  /* ids: [n_used, n_tokens] */
    t[3] = at(GGML_TYPE_F32, 4, 2, 2, 1, 12288);
    op(&t[3], GGML_OP_MUL_MAT_ID, 1, 2, 3);
    bad_then_good("MUL_MAT_ID expert ids", t, 4, bad, good);

    /* ADD_ID: rows of b picked by ids */
    t[0] = at(GGML_TYPE_F32, 16, 2, 2, 1, 0);
    t[1] = at(GGML_TYPE_F32, 16, 2, 1, 1, 4096);
    t[2] = at(GGML_TYPE_I32, 2, 2, 1, 1, 8192);
    t[3] = at(GGML_TYPE_F32, 16, 2, 2, 1, 12288);
    op(&t[3], GGML_OP_ADD_ID, 1, 2, 3);
    set_bytes(8192, bad, sizeof bad);
    graph_case("ADD_ID id out of range", BOUNDS, t, 4, NULL, 0);

    /* GET_ROWS with indices a view with strides (test-backend-ops v=1): checked by strides */
    t[0] = at(GGML_TYPE_F32, 16, 2, 1, 1, 0);
    t[1] = at(GGML_TYPE_I32, 2, 1, 1, 1, 8192);
    t[1].nb[0] = 8; /* every other int32 of {0, 1, 7, 0}: 0 and 7 */
    t[1].nb[1] = t[1].nb[2] = t[1].nb[3] = 16;
    t[2] = at(GGML_TYPE_F32, 16, 2, 1, 1, 12288);
    op(&t[2], GGML_OP_GET_ROWS, 1, 2, 0);
    bad_then_good("GET_ROWS strided index view", t, 3, bad, good);

    /* indices the graph computes (a MoE router's ARGSORT): checked when they exist */
    float logits[8] = {0, 5, 1, 4, 2, 3, 7, 6};
    set_bytes(16384, logits, sizeof logits);
    t[0] = at(GGML_TYPE_F32, 8, 1, 1, 1, 16384);
    t[1] = at(GGML_TYPE_I32, 8, 1, 1, 1, 20480);
    op(&t[1], GGML_OP_ARGSORT, 1, 0, 0);
    t[1].op_params[0] = GGML_SORT_ORDER_DESC;
    t[2] = at(GGML_TYPE_F32, 16, 4, 1, 1, 0); /* 4 rows: ids 4..7 out of range */
    t[3] = at(GGML_TYPE_F32, 16, 8, 1, 1, 24576);
    op(&t[3], GGML_OP_GET_ROWS, 3, 2, 0);
    uint32_t nodes[2] = {1, 3};
    graph_case("GET_ROWS of indices the graph computes, out of range", BOUNDS, t, 4, nodes, 2);
    t[2] = at(GGML_TYPE_F32, 16, 8, 1, 1, 0);
    graph_case("GET_ROWS of indices the graph computes, in range", COMPUTED, t, 4, nodes, 2);

    /* later readers of the same computed indices are checked at the first reader's cut */
    t[4] = at(GGML_TYPE_F32, 16, 4, 1, 1, 28672); /* 4 rows: the second reader is out of range */
    t[5] = at(GGML_TYPE_F32, 16, 8, 1, 1, 32768);
    op(&t[5], GGML_OP_GET_ROWS, 5, 2, 0);
    uint32_t two_readers[3] = {1, 3, 5};
    graph_case("second GET_ROWS of computed indices, out of range", BOUNDS, t, 6, two_readers, 3);
    t[4] = at(GGML_TYPE_F32, 16, 8, 1, 1, 28672);
    graph_case("second GET_ROWS of computed indices, in range", COMPUTED, t, 6, two_readers, 3);
    /* ... unless a node between them rewrites the indices: then they are checked anew (here
     * an ARGSORT of 16 values over the same memory leaves ids 8..15 for an 8-row source) */
    float wide[16] = {0, 5, 1, 4, 2, 3, 7, 6, 15, 14, 13, 12, 11, 10, 9, 8};
    set_bytes(36864, wide, sizeof wide);
    t[4] = at(GGML_TYPE_F32, 16, 1, 1, 1, 36864);
    t[5] = at(GGML_TYPE_I32, 16, 1, 1, 1, 20480);
    op(&t[5], GGML_OP_ARGSORT, 5, 0, 0);
    t[5].op_params[0] = GGML_SORT_ORDER_DESC;
    t[6] = at(GGML_TYPE_I32, 8, 1, 1, 1, 20480); /* a view of the first 8 ids */
    t[6].view_src = 6;
    t[6].view_offs = 0;
    t[7] = at(GGML_TYPE_F32, 16, 8, 1, 1, 40960);
    op(&t[7], GGML_OP_GET_ROWS, 3, 7, 0);
    uint32_t rewritten[4] = {1, 3, 5, 7};
    graph_case("GET_ROWS of indices rewritten after the last cut", BOUNDS, t, 8, rewritten, 4);
}

/* SUPPORTS_OP carries tensors without buffers, so shapes are unbounded there */
static void supports_op_overflow(void)
{
    struct apir_wire_tensor t[3];
    int64_t big = (int64_t)1 << 61;
    t[0] = wt_make(GGML_TYPE_I8, big, 1, 1, 1, 0, 0);
    t[1] = wt_make(GGML_TYPE_I8, big, 1, 1, 1, 0, 0);
    t[2] = wt_make(GGML_TYPE_I8, big, 1, 1, 1, 0, 0);
    t[2].ne[0] = INT64_MAX; /* what a wrapped 2^61 + 2^61 ... would have to match */
    op(&t[2], GGML_OP_CONCAT, 1, 2, 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        apir_encoder_init(&a, args, 1u << 20);
        apir_put_u32(&a, 0);
        apir_put_u32(&a, 3);
        for (int i = 0; i < 3; i++)
            apir_wire_tensor_encode(&a, &t[i]);
        uint32_t st = call(APIR_FWD_DEVICE_SUPPORTS_OP);
        if (st == APIR_BACKEND_OK && apir_get_u8(&r) != 0)
            st = APIR_BACKEND_OK; /* supported: a failure below */
        else
            st = APIR_BACKEND_ERR_INVALID_TENSOR;
        _exit(EXIT_BASE + (int)st);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    check_child("SUPPORTS_OP CONCAT of 2^61-element tensors", REFUSED, ws);
}

/* constructors that divide by a source's extent (found by fuzz_graph_decode: SIGFPE in
 * ggml_mul_mat): an empty source there is refused before ggml is asked */
static void empty_divisors(void)
{
    struct apir_wire_tensor t[3];
    binary_case("MUL_MAT of a weight with ne[2] = 0", REFUSED, t, GGML_OP_MUL_MAT, at(GGML_TYPE_F32, 16, 2, 0, 1, 0),
                at(GGML_TYPE_F32, 16, 2, 1, 1, 4096), at(GGML_TYPE_F32, 2, 2, 1, 1, 8192));
    t[0].ne[2] = 1;
    t[0].ne[3] = 0;
    graph_case("MUL_MAT of a weight with ne[3] = 0", REFUSED, t, 3, NULL, 0);
    t[2].op = GGML_OP_OUT_PROD;
    graph_case("OUT_PROD of a source with ne[3] = 0", REFUSED, t, 3, NULL, 0);

    /* op_params divide too: ggml_im2col's output size by the stride (fuzz_graph_decode) */
    t[0] = at(GGML_TYPE_F32, 3, 3, 2, 1, 0);  /* kernel */
    t[1] = at(GGML_TYPE_F32, 8, 8, 2, 1, 4096); /* input */
    t[2] = at(GGML_TYPE_F32, 18, 6, 6, 1, 8192);
    op(&t[2], GGML_OP_IM2COL, 1, 2, 0);
    int32_t im2col[7] = {0 /* s0 */, 1, 0, 0, 1, 1, 1 /* 2D */};
    memcpy(t[2].op_params, im2col, sizeof im2col);
    graph_case("IM2COL with stride 0", REFUSED, t, 3, NULL, 0);
}

int main(void)
{
    char cpu_path[PATH_MAX];
    sf_pick_cpu(GGML_LIB_DIR, cpu_path, sizeof cpu_path);
    if (!cpu_path[0])
        return 1;
    setenv(APIR_ENV_BACKEND_LOG, "/dev/null", 1);
    setenv("GGML_NO_BACKTRACE", "1", 1);
    void *shm = calloc(1, SHM_SIZE);
    cbs = sf_single_resource(cpu_path, RES, shm, SHM_SIZE);
    args = malloc(1u << 20);
    if (apir_backend_initialize(CTX, cbs) != 0)
        return 1;
    apir_encoder_init(&a, args, 1u << 20);
    apir_put_u32(&a, 0);
    if (call(APIR_FWD_BACKEND_INIT) != APIR_BACKEND_OK)
        return 1;
    backend_h = apir_get_u32(&r);
    apir_encoder_init(&a, args, 1u << 20);
    apir_put_u32(&a, 1); /* the CPU buffer type: first handle of a fresh context */
    apir_put_u64(&a, BUF_SIZE);
    if (call(APIR_FWD_BUFT_ALLOC_BUFFER) != APIR_BACKEND_OK)
        return 1;
    buf_h = apir_get_u32(&r);

    no_kernel_types();
    copy_kernels();
    strides();
    rope_freq_factors();
    assertions();
    indices();
    supports_op_overflow();
    empty_divisors();

    apir_backend_deinit(CTX);
    free(args);
    free(shm);
    if (failures) {
        fprintf(stderr, "%d case(s) failed\n", failures);
        return 1;
    }
    printf("hostile ops: every case refused, bounded or ended by a ggml assertion\n");
    return 0;
}
