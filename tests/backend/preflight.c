#include "preflight.h"

#include "apir_codec.h"
#include "apir_forward.h"
#include "ggml-backend.h"
#include "graph_decode.h"
#include "op_checks.h"

#include <setjmp.h>
#include <string.h>

static sigjmp_buf on_assert;
static volatile int running;
static ggml_backend_buffer_t dummy;

static ggml_backend_buffer_t resolve_any(void *user, uint32_t h)
{
    (void)user;
    return h ? dummy : NULL;
}

void preflight_init(void)
{
    dummy = ggml_backend_cpu_buffer_from_ptr((void *)(uintptr_t)4096, (size_t)1 << 40);
}

void preflight_on_abort(void)
{
    if (running)
        siglongjmp(on_assert, 1);
}

bool preflight_asserts(uint32_t cmd, const void *args, size_t len)
{
    if (cmd != APIR_FWD_GRAPH_COMPUTE && cmd != APIR_FWD_DEVICE_SUPPORTS_OP)
        return false;
    static struct decoded_graph g;
    memset(&g, 0, sizeof g);
    struct buffer_resolver r = {NULL, resolve_any};
    struct apir_decoder dec;
    apir_decoder_init(&dec, args, len);
    (void)apir_get_u32(&dec); /* backend or device */
    running = 1;
    if (sigsetjmp(on_assert, 0)) {
        running = 0;
        decoded_graph_free(&g);
        return true;
    }
    if (cmd == APIR_FWD_GRAPH_COMPUTE) {
        if (graph_decode(&dec, &r, NULL, &g) == APIR_BACKEND_OK)
            decoded_graph_free(&g);
    } else if (op_tensors_decode(&dec, &r, &g) == APIR_BACKEND_OK) {
        if (node_rebuild_init(&g.rebuild))
            (void)op_check_node(&g.rebuild, g.last);
        decoded_graph_free(&g);
    }
    running = 0;
    return false;
}
