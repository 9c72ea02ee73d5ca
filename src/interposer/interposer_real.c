/* Loads the real virglrenderer by path (VIRGL_APIR_VIRGLRENDERER_PATH, default the
 * distribution's) and resolves the functions QEMU uses. RTLD_DEEPBIND: the real library's
 * calls to its own exported functions must reach itself, not our wrappers of the same name. */
#include "interposer.h"

#include "apir_component.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

static struct virgl_real real;
static bool real_ok;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void load_real(void)
{
    const char *path = getenv(INTERPOSER_ENV_REAL_LIBRARY);
    if (!path || !*path)
        path = INTERPOSER_DEFAULT_REAL_LIBRARY;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) {
        apir_component_log("interposer: cannot load the real virglrenderer '%s': %s: set %s to its path", path,
                           dlerror(), INTERPOSER_ENV_REAL_LIBRARY);
        return;
    }
    bool ok = true;
#define VIRGL_REAL_LOAD(ret, name, params, args)                                                            \
    *(void **)&real.name = dlsym(h, "virgl_renderer_" #name);                                               \
    if (!real.name) {                                                                                        \
        apir_component_log("interposer: '%s' has no virgl_renderer_" #name ": it is not a virglrenderer 1.x", \
                           path);                                                                            \
        ok = false;                                                                                          \
    }
    VIRGL_API_LIST(VIRGL_REAL_LOAD)
#undef VIRGL_REAL_LOAD
    if (!ok) {
        dlclose(h);
        return;
    }
    apir_component_log("interposer: forwarding to %s", path);
    real_ok = true;
}

const struct virgl_real *interposer_real(void)
{
    pthread_once(&real_once, load_real);
    return real_ok ? &real : NULL;
}
