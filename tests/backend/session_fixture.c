#include "session_fixture.h"


#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

void sf_pick_cpu(const char *dir, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    int best = 0;
    struct dirent *e;
    out[0] = 0;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "libggml-cpu-", 12) || n < 4 || strcmp(e->d_name + n - 3, ".so"))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        void *h = dlopen(p, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            continue;
        int (*score)(void);
        *(void **)&score = dlsym(h, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best) {
            best = s;
            snprintf(out, cap, "%s", p);
        }
    }
    if (d)
        closedir(d);
}

/* the callbacks carry no user pointer, hence one session setup per process */
static const char *sf_cpu_path;
static uint32_t sf_res;
static void *sf_shm;
static uint64_t sf_shm_size;

const char *sf_get_config(uint32_t ctx, const char *key)
{
    (void)ctx;
    return strcmp(key, APIR_KEY_GGML_LIBRARY_PATH) ? NULL : sf_cpu_path;
}
static void *get_shmem_ptr(uint32_t ctx, uint32_t res)
{
    (void)ctx;
    return res == sf_res ? sf_shm : NULL;
}
static uint64_t get_shmem_size(uint32_t ctx, uint32_t res)
{
    (void)ctx;
    return res == sf_res ? sf_shm_size : 0;
}
static struct virgl_apir_callbacks sf_cbs = {sf_get_config, get_shmem_ptr, get_shmem_size};

struct virgl_apir_callbacks *sf_single_resource(const char *cpu_path, uint32_t res, void *shm, uint64_t size)
{
    sf_cpu_path = cpu_path;
    sf_res = res;
    sf_shm = shm;
    sf_shm_size = size;
    return &sf_cbs;
}

uint32_t sf_call(uint32_t ctx, struct virgl_apir_callbacks *cbs, uint32_t cmd, uint8_t *args, size_t args_len,
                 uint8_t *reply, size_t reply_cap, struct apir_decoder *r)
{
    char *end = NULL;
    uint32_t st = apir_backend_dispatcher(ctx, cbs, cmd, (char *)args, (char *)args + args_len, (char *)reply,
                                          (char *)reply + reply_cap, &end);
    apir_decoder_init(r, reply, end ? (size_t)(end - (char *)reply) : 0);
    return st;
}
