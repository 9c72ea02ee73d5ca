#include "emu_host.h"
#include "emu_stats.h"

#include "apir_component.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

enum op_kind { OP_CREATE, OP_ATTACH, OP_RELEASE, OP_SUBMIT };

struct emu_host_op {
    struct emu_host_op *next;
    enum op_kind kind;
    uint32_t res_id;
    void *ptr; /* host mapping, or the command copy */
    size_t size;
    int memfd;
};

struct emu_host {
    uint32_t ctx_id, capset_id;
    struct apir_context *ctx; /* NULL: refused (or not created yet) */
    bool async;
    long delay_us; /* VIRTGPU_EMU_HOST_DELAY_US: the host takes this long to pick up a command */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct emu_host_op *head, *tail;
    bool stopping;
};

static void run_op(struct emu_host *h, struct emu_host_op *o)
{
    switch (o->kind) {
    case OP_CREATE:
        h->ctx = apir_context_create(h->ctx_id, h->capset_id);
        if (!h->ctx)
            emu_stats_count("HOST_CONTEXT_REFUSED");
        break;
    case OP_ATTACH:
        if (h->ctx && apir_context_attach_resource(h->ctx, o->res_id, o->ptr, o->size) != 0)
            emu_stats_count("HOST_ATTACH_FAILED");
        break;
    case OP_RELEASE:
        if (h->ctx)
            apir_context_detach_resource(h->ctx, o->res_id);
        munmap(o->ptr, o->size);
        close(o->memfd);
        break;
    case OP_SUBMIT:
        if (h->delay_us > 0)
            usleep((useconds_t)h->delay_us);
        if (!h->ctx)
            emu_stats_count("EXECBUFFER_DROPPED"); /* no host context: nobody will answer */
        else if (apir_context_submit(h->ctx, o->ptr, o->size) != 0)
            emu_stats_count("HOST_SUBMIT_ERROR"); /* the kernel never hears of it either */
        free(o->ptr);
        break;
    }
    free(o);
}

static void *host_thread(void *arg)
{
    struct emu_host *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->head && !h->stopping)
            pthread_cond_wait(&h->wake, &h->lock);
        struct emu_host_op *o = h->head;
        if (!o)
            break; /* stopping and drained */
        h->head = o->next;
        if (!h->head)
            h->tail = NULL;
        pthread_mutex_unlock(&h->lock);
        run_op(h, o);
        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

static void queue(struct emu_host *h, struct emu_host_op *o)
{
    if (!h->async) {
        run_op(h, o);
        return;
    }
    pthread_mutex_lock(&h->lock);
    if (h->tail)
        h->tail->next = o;
    else
        h->head = o;
    h->tail = o;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

struct emu_host_op *emu_host_op_alloc(void) { return calloc(1, sizeof(struct emu_host_op)); }
void emu_host_op_free(struct emu_host_op *op) { free(op); }

struct emu_host *emu_host_create(uint32_t ctx_id, uint32_t capset_id)
{
    struct emu_host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ctx_id = ctx_id;
    h->capset_id = capset_id;
    h->async = getenv("VIRTGPU_EMU_ASYNC") != NULL;
    const char *delay = getenv("VIRTGPU_EMU_HOST_DELAY_US");
    h->delay_us = delay ? strtol(delay, NULL, 10) : 0;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->wake, NULL);
    if (h->async && pthread_create(&h->thread, NULL, host_thread, h) != 0)
        h->async = false;
    struct emu_host_op *op = emu_host_op_alloc();
    if (!op) {
        emu_host_destroy(h);
        return NULL;
    }
    op->kind = OP_CREATE;
    queue(h, op);
    return h;
}

void emu_host_attach(struct emu_host *h, struct emu_host_op *op, uint32_t res_id, void *ptr, size_t size)
{
    *op = (struct emu_host_op){.kind = OP_ATTACH, .res_id = res_id, .ptr = ptr, .size = size};
    queue(h, op);
}

void emu_host_release(struct emu_host *h, struct emu_host_op *op, uint32_t res_id, void *host_ptr, size_t size,
                      int memfd)
{
    *op = (struct emu_host_op){.kind = OP_RELEASE, .res_id = res_id, .ptr = host_ptr, .size = size, .memfd = memfd};
    queue(h, op);
}

void emu_host_submit(struct emu_host *h, struct emu_host_op *op, void *cmd, size_t size)
{
    *op = (struct emu_host_op){.kind = OP_SUBMIT, .ptr = cmd, .size = size};
    queue(h, op);
}

void emu_host_destroy(struct emu_host *h)
{
    if (!h)
        return;
    if (h->async) {
        pthread_mutex_lock(&h->lock);
        h->stopping = true;
        pthread_cond_signal(&h->wake);
        pthread_mutex_unlock(&h->lock);
        pthread_join(h->thread, NULL);
    }
    apir_context_destroy(h->ctx);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
