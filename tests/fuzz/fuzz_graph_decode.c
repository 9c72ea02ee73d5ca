/* libFuzzer target: wire tensors and graphs (graph_decode, op_tensors_decode) over real ggml
 * CPU buffers. First input byte picks the decoder; the rest is the message. */
#include "backend_log.h"
#include "graph_decode.h"

#include <stdint.h>
#include <stdlib.h>

#define BUF_SIZE (1 << 20)
static char mem[2][BUF_SIZE] __attribute__((aligned(64)));
static ggml_backend_buffer_t bufs[2];

/* handles 1 and 2 name two buffers; anything else is unknown */
static ggml_backend_buffer_t resolve(void *user, uint32_t h)
{
    (void)user;
    return h == 1 || h == 2 ? bufs[h - 1] : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!bufs[0]) {
        setenv("APIR_LLAMA_CPP_LOG_TO_FILE", "/dev/null", 1);
        backend_log_acquire(); /* rejections are logged: keep them off the fuzzer's output */
        bufs[0] = ggml_backend_cpu_buffer_from_ptr(mem[0], BUF_SIZE);
        bufs[1] = ggml_backend_cpu_buffer_from_ptr(mem[1], BUF_SIZE);
    }
    if (size < 1)
        return 0;
    struct buffer_resolver r = {NULL, resolve};
    struct apir_decoder dec;
    struct decoded_graph g;
    apir_decoder_init(&dec, data + 1, size - 1);
    uint32_t st = data[0] & 1 ? op_tensors_decode(&dec, &r, &g) : graph_decode(&dec, &r, NULL, &g);
    if (st == 0)
        decoded_graph_free(&g);
    return 0;
}
