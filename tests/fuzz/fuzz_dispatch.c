/* libFuzzer target: the backend library's dispatcher on a real, initialized ggml CPU
 * context. An input is a session: a sequence of [u8 command][u16 length][arguments]
 * records run in one fresh context, which is then deinitialized (LeakSanitizer checks that
 * nothing the session created survives). Handles are small and deterministic in a fresh
 * context (buffer types first), so the fuzzer reaches objects it created. */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "ggml.h"
#include "preflight.h"
#include "session_fixture.h"

#include <stdbool.h>
#include <unistd.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHM_SIZE 65536
#define MAX_ALLOC (16u << 20) /* keep the fuzzer under its RSS limit */
static char cpu_lib[PATH_MAX];
static uint8_t shm[SHM_SIZE];

static struct virgl_apir_callbacks *cbs;

/* A ggml assertion is not a finding: in the server it ends only the worker of the guest that
 * sent the input (docs/protocol.md). The ones ggml's constructors raise are found first and
 * not dispatched (preflight.h). One a kernel raises while computing ends the run the way it
 * ends a worker; with APIR_FUZZ_KERNEL_ASSERT=report it leaves through exit() instead, which
 * libFuzzer records as "fuzz target exited" with the input and its statistics, so a long
 * `-fork=N -ignore_crashes=1` campaign counts every execution and goes on past it (each such
 * artifact is then replayed: only ones that print the line below are kernel assertions). */
static void ggml_assertion(const char *message)
{
    preflight_on_abort();
    fprintf(stderr, "ggml assertion while computing (ends this guest's worker): %s\n", message);
    const char *mode = getenv("APIR_FUZZ_KERNEL_ASSERT");
    if (mode && !strcmp(mode, "report"))
        exit(0);
    _exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t reply[4096];
    if (!cpu_lib[0]) {
        setenv("APIR_LLAMA_CPP_LOG_TO_FILE", "/dev/null", 1);
        sf_pick_cpu(GGML_LIB_DIR, cpu_lib, sizeof cpu_lib);
        cbs = sf_single_resource(cpu_lib, 1, shm, SHM_SIZE);
        ggml_set_abort_callback(ggml_assertion);
        preflight_init();
    }
    if (apir_backend_initialize(7, cbs) != APIR_BACKEND_INIT_SUCCESS)
        abort(); /* the harness itself is broken */
    size_t pos = 0;
    while (pos + 3 <= size) {
        uint32_t cmd = data[pos] % (APIR_FWD_COUNT + 1);
        size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        /* a private copy, as the component gives the backend */
        char *args = malloc(len ? len : 1);
        memcpy(args, data + pos, len);
        pos += len;
        if (cmd == APIR_FWD_BUFT_ALLOC_BUFFER && len >= 12) {
            uint64_t want;
            memcpy(&want, args + 4, 8);
            if (want > MAX_ALLOC) {
                free(args);
                continue;
            }
        }
        if (preflight_asserts(cmd, args, len)) {
            free(args);
            continue;
        }
        char *end;
        apir_backend_dispatcher(7, cbs, cmd, args, args + len, (char *)reply, (char *)reply + sizeof reply, &end);
        free(args);
    }
    apir_backend_deinit(7);
    return 0;
}
