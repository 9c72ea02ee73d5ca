/* libFuzzer target: the backend library's dispatcher on a real, initialized ggml CPU
 * context. An input is a session: a sequence of [u8 command][u16 length][arguments]
 * records run in one fresh context, which is then deinitialized (LeakSanitizer checks that
 * nothing the session created survives). Handles are small and deterministic in a fresh
 * context (buffer types first), so the fuzzer reaches objects it created. */
#include "apir_forward.h"
#include "apir_protocol.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t apir_backend_initialize(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs);
uint32_t apir_backend_dispatcher(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_index,
                                 char *dec_cur, const char *dec_end, char *enc_cur, const char *enc_end,
                                 char **enc_cur_after);
void apir_backend_deinit(uint32_t virgl_ctx_id);

#define SHM_SIZE 65536
#define MAX_ALLOC (16u << 20) /* keep the fuzzer under its RSS limit */
static char cpu_lib[PATH_MAX];
static uint8_t shm[SHM_SIZE];

static const char *get_config(uint32_t ctx, const char *key)
{
    return strcmp(key, APIR_KEY_GGML_LIBRARY_PATH) == 0 ? cpu_lib : NULL;
}
static void *get_shmem_ptr(uint32_t ctx, uint32_t res) { return res == 1 ? shm : NULL; }
static uint64_t get_shmem_size(uint32_t ctx, uint32_t res) { return res == 1 ? SHM_SIZE : 0; }
static struct virgl_apir_callbacks cbs = {get_config, get_shmem_ptr, get_shmem_size};

static void pick_cpu(void)
{
    DIR *d = opendir(GGML_LIB_DIR);
    int best = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "libggml-cpu-", 12) || n < 4 || strcmp(e->d_name + n - 3, ".so"))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", GGML_LIB_DIR, e->d_name);
        void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
        int (*score)(void) = NULL;
        if (h)
            *(void **)&score = dlsym(h, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best) {
            best = s;
            snprintf(cpu_lib, sizeof cpu_lib, "%s", p);
        }
    }
    if (d)
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t reply[4096];
    if (!cpu_lib[0]) {
        setenv("APIR_LLAMA_CPP_LOG_TO_FILE", "/dev/null", 1);
        pick_cpu();
    }
    if (apir_backend_initialize(7, &cbs) != APIR_BACKEND_INIT_SUCCESS)
        abort(); /* the harness itself is broken */
    size_t pos = 0;
    while (pos + 3 <= size) {
        uint32_t cmd = data[pos] % (APIR_CMD_COUNT + 1);
        size_t len = (size_t)data[pos + 1] | (size_t)data[pos + 2] << 8;
        pos += 3;
        if (len > size - pos)
            len = size - pos;
        /* a private copy, as the component gives the backend */
        char *args = malloc(len ? len : 1);
        memcpy(args, data + pos, len);
        pos += len;
        if (cmd == APIR_CMD_BUFT_ALLOC_BUFFER && len >= 12) {
            uint64_t want;
            memcpy(&want, args + 4, 8);
            if (want > MAX_ALLOC) {
                free(args);
                continue;
            }
        }
        char *end;
        apir_backend_dispatcher(7, &cbs, cmd, args, args + len, (char *)reply, (char *)reply + sizeof reply, &end);
        free(args);
    }
    apir_backend_deinit(7);
    return 0;
}
