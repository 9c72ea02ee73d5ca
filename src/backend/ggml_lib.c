#include "ggml_lib.h"

#include "apir_protocol.h"
#include "backend_log.h"
#include "ggml-backend-impl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Loaded libraries, by path. They are never dlclose'd: a ggml backend keeps process-wide
 * state that outlives its last user (the CPU backend's OpenMP/thread pools and its
 * registration object, which libggml-base may still point to), and unloading code that
 * such state points into crashes later. Loading stays idempotent, so a new context reuses
 * the handle instead of stacking dlopen references. */
struct loaded_lib {
    char *path;
    void *dl;
    struct loaded_lib *next;
};

static pthread_mutex_t libs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct loaded_lib *libs;

static void *open_lib(const char *path)
{
    void *dl = NULL;
    pthread_mutex_lock(&libs_lock);
    for (struct loaded_lib *l = libs; l; l = l->next) {
        if (strcmp(l->path, path) == 0) {
            dl = l->dl;
            goto out;
        }
    }
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *err = dlerror();
        backend_log("cannot open the GGML library '%s': %s", path, err ? err : "unknown error");
        goto out;
    }
    struct loaded_lib *l = calloc(1, sizeof *l);
    char *p = strdup(path);
    if (!l || !p) {
        /* still usable: just not remembered */
        free(l);
        free(p);
        goto out;
    }
    l->path = p;
    l->dl = dl;
    l->next = libs;
    libs = l;
out:
    pthread_mutex_unlock(&libs_lock);
    return dl;
}

uint32_t apir_ggml_lib_load(const char *path, const char *reg_symbol, ggml_backend_reg_t *reg_out)
{
    *reg_out = NULL;
    if (!path || !*path) {
        backend_log("cannot open the GGML library: env var '" APIR_ENV_GGML_LIBRARY_PATH "' not defined");
        return APIR_BACKEND_INIT_GGML_PATH_MISSING;
    }
    void *dl = open_lib(path);
    if (!dl)
        return APIR_BACKEND_INIT_GGML_CANNOT_OPEN;

    bool named = reg_symbol && *reg_symbol;
    const char *sym = named ? reg_symbol : APIR_DEFAULT_REG_SYMBOL;
    ggml_backend_reg_t (*reg_fn)(void);
    *(void **)&reg_fn = dlsym(dl, sym);
    if (!reg_fn) {
        if (!named) {
            backend_log("cannot register the GGML library: env var '" APIR_ENV_GGML_LIBRARY_REG "' not defined");
            return APIR_BACKEND_INIT_REG_SYMBOL_MISSING;
        }
        backend_log("cannot register the GGML library: symbol '%s' (from " APIR_ENV_GGML_LIBRARY_REG
             ") not found in '%s'",
             sym, path);
        return APIR_BACKEND_INIT_REG_NAMED_MISSING;
    }
    ggml_backend_reg_t reg = reg_fn();
    if (!reg) {
        backend_log("cannot register the GGML library: %s() in '%s' returned no backend", sym, path);
        return APIR_BACKEND_INIT_REG_FAILED;
    }
    if (reg->api_version != GGML_BACKEND_API_VERSION) {
        backend_log("cannot use the GGML library '%s': it implements ggml backend API version %d, this backend "
             "library needs version %d (llama.cpp / ggml release v0.5.0)",
             path, reg->api_version, GGML_BACKEND_API_VERSION);
        return APIR_BACKEND_INIT_API_VERSION;
    }
    if (ggml_backend_reg_dev_count(reg) == 0) {
        backend_log("the GGML library '%s' (%s) exposes no device", path, ggml_backend_reg_name(reg));
        return APIR_BACKEND_INIT_NO_DEVICE;
    }
    *reg_out = reg;
    return APIR_BACKEND_INIT_SUCCESS;
}
