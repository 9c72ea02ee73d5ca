/* Copies a test backend's set_tensor_async defers until its stream synchronizes or computes,
 * as a GPU stream's do (fake_ggml_lib.c's fake_reg_async, async_cpu_lib.c). One list per
 * process: one backend per worker. */
#ifndef TESTS_BACKEND_DEFERRED_COPIES_H
#define TESTS_BACKEND_DEFERRED_COPIES_H

#include <stdlib.h>
#include <string.h>

static struct deferred_copy {
    void *dst;
    const void *src; /* read when the copies run: the caller keeps it until then */
    size_t n;
} *deferred;
static size_t n_deferred, cap_deferred;

static void deferred_run(void)
{
    for (size_t i = 0; i < n_deferred; i++)
        memcpy(deferred[i].dst, deferred[i].src, deferred[i].n);
    n_deferred = 0;
}

static void deferred_add(void *dst, const void *src, size_t n)
{
    if (n_deferred == cap_deferred) {
        size_t cap = cap_deferred ? 2 * cap_deferred : 64;
        struct deferred_copy *p = realloc(deferred, cap * sizeof *p);
        if (!p) { /* no memory: this copy lands now, still after the ones before it */
            deferred_run();
            memcpy(dst, src, n);
            return;
        }
        deferred = p;
        cap_deferred = cap;
    }
    deferred[n_deferred++] = (struct deferred_copy){dst, src, n};
}

#endif
