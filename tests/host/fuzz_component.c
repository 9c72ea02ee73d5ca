/* libFuzzer target: arbitrary command buffers into an APIR context (command parsing, the
 * Venus offset, reply writing). With APIR_FUZZ_BACKEND_LIB and APIR_FUZZ_CPU_LIB set, the
 * context loads the real backend library first, so FORWARD reaches its dispatcher too. */
#include "apir_component.h"
#include "apir_protocol.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct apir_context *ctx;
static uint8_t reply_page[4096];
static uint8_t data_page[65536];

static void setup(void)
{
    ctx = apir_context_create(1, APIR_CAPSET_ID_APIR);
    if (!ctx)
        abort();
    apir_context_attach_resource(ctx, 1, reply_page, sizeof reply_page);
    apir_context_attach_resource(ctx, 2, data_page, sizeof data_page);
    apir_context_attach_resource(ctx, 3, reply_page, 4); /* too small for a reply */
    const char *backend = getenv("APIR_FUZZ_BACKEND_LIB");
    const char *cpu = getenv("APIR_FUZZ_CPU_LIB");
    if (backend && cpu) {
        apir_context_configure(ctx, APIR_KEY_LOAD_LIBRARY_PATH, backend);
        apir_context_configure(ctx, APIR_KEY_GGML_LIBRARY_PATH, cpu);
        struct apir_command_header h = {APIR_COMMAND_TYPE_LOADLIBRARY, 0, 1};
        apir_context_submit(ctx, &h, sizeof h);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx)
        setup();
    apir_context_submit(ctx, data, size);
    return 0;
}
