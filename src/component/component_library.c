/* The backend library loader: each path is dlopen'ed once per process and shared by the
 * contexts using it; the last release dlcloses it.
 *
 * RTLD_NODELETE: dlclose drops our reference but leaves the code mapped. The backend library
 * keeps process-wide state that outlives its contexts (the GGML libraries it loaded, whose
 * thread pools and registrations in libggml-base point back into it); unmapping it would turn
 * that state into dangling pointers and its bookkeeping into leaks. A later LOADLIBRARY of
 * the same path gets the same, still initialized, library. */
#include "component_internal.h"

#include "apir_array.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t libs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct apir_library **libs;
static size_t libs_count, libs_cap;

static int libs_append(struct apir_library *lib)
{
    struct apir_library **p = apir_array_grow(libs, &libs_cap, libs_count, sizeof *p, 4);
    if (!p)
        return -1;
    libs = p;
    libs[libs_count++] = lib;
    return 0;
}

static int library_open(const char *path, struct apir_library **out)
{
    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle) {
        const char *err = dlerror();
        apir_component_log("LOADLIBRARY: cannot open the backend library %s (%s=%s): %s", path,
                           APIR_ENV_BACKEND_LIBRARY, path, err ? err : "unknown error");
        return APIR_LOAD_LIBRARY_CANNOT_OPEN;
    }
    struct apir_library lib = {.handle = handle};
    lib.initialize = (apir_backend_initialize_fn)dlsym(handle, APIR_BACKEND_SYM_INITIALIZE);
    lib.dispatcher = (apir_backend_dispatcher_fn)dlsym(handle, APIR_BACKEND_SYM_DISPATCHER);
    lib.deinit = (apir_backend_deinit_fn)dlsym(handle, APIR_BACKEND_SYM_DEINIT);
    lib.resource_detach = (apir_backend_resource_detach_fn)dlsym(handle, APIR_BACKEND_SYM_RESOURCE_DETACH);
    lib.computes_off_cpu = (apir_backend_computes_off_cpu_fn)dlsym(handle, APIR_BACKEND_SYM_COMPUTES_OFF_CPU);
    const char *missing = !lib.initialize ? APIR_BACKEND_SYM_INITIALIZE
                          : !lib.dispatcher ? APIR_BACKEND_SYM_DISPATCHER
                          : !lib.deinit ? APIR_BACKEND_SYM_DEINIT
                                        : NULL;
    if (missing) {
        apir_component_log("LOADLIBRARY: %s has no symbol %s: is %s pointing at libggml-virtgpu-backend.so?",
                           path, missing, APIR_ENV_BACKEND_LIBRARY);
        dlclose(handle);
        return APIR_LOAD_LIBRARY_SYMBOL_MISSING;
    }
    struct apir_library *p = malloc(sizeof *p);
    lib.path = strdup(path);
    lib.refcount = 1;
    if (!p || !lib.path || libs_append(p) != 0) {
        apir_component_log("LOADLIBRARY: out of memory");
        free(lib.path);
        free(p);
        dlclose(handle);
        return APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR;
    }
    *p = lib;
    *out = p;
    apir_component_log("LOADLIBRARY: loaded backend library %s", path);
    return APIR_LOAD_LIBRARY_SUCCESS;
}

int apir_library_acquire(const char *path, struct apir_library **out)
{
    pthread_mutex_lock(&libs_lock);
    int rc = APIR_LOAD_LIBRARY_SUCCESS;
    size_t i;
    for (i = 0; i < libs_count; i++)
        if (strcmp(libs[i]->path, path) == 0)
            break;
    if (i < libs_count) {
        libs[i]->refcount++;
        *out = libs[i];
    } else {
        rc = library_open(path, out);
    }
    pthread_mutex_unlock(&libs_lock);
    return rc;
}

void apir_library_release(struct apir_library *lib)
{
    pthread_mutex_lock(&libs_lock);
    if (--lib->refcount == 0) {
        apir_array_remove(libs, &libs_count, sizeof *libs, &lib);
        if (libs_count == 0) {
            free(libs);
            libs = NULL;
            libs_cap = 0;
        }
        dlclose(lib->handle);
        free(lib->path);
        free(lib);
    }
    pthread_mutex_unlock(&libs_lock);
}
