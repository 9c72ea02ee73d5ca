/* libFuzzer target: wire tensors and graphs (graph_decode, op_tensors_decode + op checks) over
 * real ggml CPU buffers. First input byte picks the decoder; the rest is the message.
 * A ggml assertion reached while rebuilding a node with ggml's constructors is not a finding:
 * in the server it ends only the worker of the guest that sent the graph (docs/protocol.md).
 * The harness leaves it through ggml's abort callback and frees what decoding held. */
#include "apir_forward.h"
#include "backend_log.h"
#include "graph_decode.h"
#include "op_checks.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE (1 << 20)
static char mem[2][BUF_SIZE] __attribute__((aligned(64)));
static ggml_backend_buffer_t bufs[2];

/* handles 1 and 2 name two buffers; anything else is unknown */
static ggml_backend_buffer_t resolve(void *user, uint32_t h)
{
    (void)user;
    return h == 1 || h == 2 ? bufs[h - 1] : NULL;
}

static sigjmp_buf on_assert;
static void ggml_assertion(const char *message)
{
    (void)message;
    siglongjmp(on_assert, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!bufs[0]) {
        ggml_set_abort_callback(ggml_assertion);
        setenv("APIR_LLAMA_CPP_LOG_TO_FILE", "/dev/null", 1);
        backend_log_acquire(); /* rejections are logged: keep them off the fuzzer's output */
        bufs[0] = ggml_backend_cpu_buffer_from_ptr(mem[0], BUF_SIZE);
        bufs[1] = ggml_backend_cpu_buffer_from_ptr(mem[1], BUF_SIZE);
    }
    if (size < 1)
        return 0;
    struct buffer_resolver r = {NULL, resolve};
    struct apir_decoder dec;
    static struct decoded_graph g; /* static: still valid after the longjmp */
    memset(&g, 0, sizeof g);
    apir_decoder_init(&dec, data + 1, size - 1);
    if (sigsetjmp(on_assert, 0)) {
        decoded_graph_free(&g);
        return 0;
    }
    uint32_t st = data[0] & 1 ? op_tensors_decode(&dec, &r, &g) : graph_decode(&dec, &r, NULL, &g);
    if (st == APIR_BACKEND_OK && data[0] & 1 && node_rebuild_init(&g.rebuild))
        (void)op_check_node(&g.rebuild, g.last); /* what DEVICE_SUPPORTS_OP asks */
    if (st == APIR_BACKEND_OK)
        decoded_graph_free(&g);
    return 0;
}
