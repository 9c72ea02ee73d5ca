#include "pinned_blobs.h"

#include "backend_log.h"

#include <stdlib.h>
#include <string.h>

/* ggml-cuda pins only when this is set (it is llama.cpp's switch for pinning model files) */
#define CUDA_REGISTER_ENV "GGML_CUDA_REGISTER_HOST"

static void probe(struct pinned_blobs *p, ggml_backend_reg_t reg)
{
    p->probed = true;
    if (!reg)
        return;
    p->reg = (bool (*)(void *, size_t))ggml_backend_reg_get_proc_address(reg, "ggml_backend_register_host_buffer");
    p->unreg = (void (*)(void *))ggml_backend_reg_get_proc_address(reg, "ggml_backend_unregister_host_buffer");
    if (!p->reg || !p->unreg) {
        p->reg = NULL;
        return;
    }
    setenv(CUDA_REGISTER_ENV, "1", 0);
}

static struct pinned_blob *find(struct pinned_blobs *p, uint32_t res_id)
{
    for (uint32_t i = 0; i < p->n; i++)
        if (p->items[i].res_id == res_id)
            return &p->items[i];
    return NULL;
}

bool pinned_blobs_use(struct pinned_blobs *p, ggml_backend_reg_t reg, uint32_t res_id, void *ptr, uint64_t size,
                      uint64_t write_bytes)
{
    /* smaller writes keep the stage: queued, they cost the guest no wait */
    if (write_bytes < PINNED_BLOBS_MIN_WRITE)
        return false;
    struct pinned_blob *b = find(p, res_id);
    if (b) {
        if (b->ptr == ptr && b->size == size)
            return true;
        pinned_blobs_forget(p, res_id); /* the same id mapped anew: should not happen, cheap to handle */
    }
    if (p->n == PINNED_BLOBS_MAX || size > PINNED_BLOBS_BYTES - p->bytes)
        return false;
    if (!p->probed)
        probe(p, reg);
    if (!p->reg)
        return false;
    if (!p->reg(ptr, (size_t)size)) {
        /* (ggml-cuda says why at debug level) a platform that refuses once refuses again:
         * do not pay the attempt at every write */
        backend_log("pinning a %llu-byte resource failed: its writes, and later ones, copy through the stage",
                    (unsigned long long)size);
        p->reg = NULL;
        return false;
    }
    p->items[p->n++] = (struct pinned_blob){res_id, ptr, size};
    p->bytes += size;
    backend_log("resource %u (%llu bytes) pinned for the device's copies (%u of %d, %llu of %llu bytes)", res_id,
                (unsigned long long)size, p->n, PINNED_BLOBS_MAX, (unsigned long long)p->bytes,
                (unsigned long long)PINNED_BLOBS_BYTES);
    return true;
}

bool pinned_blobs_overlap(const struct pinned_blobs *p, const void *ptr, uint64_t size)
{
    uintptr_t a = (uintptr_t)ptr;
    for (uint32_t i = 0; i < p->n; i++) {
        uintptr_t lo = (uintptr_t)p->items[i].ptr;
        if (a < lo + p->items[i].size && lo < a + size)
            return true;
    }
    return false;
}

void pinned_blobs_forget(struct pinned_blobs *p, uint32_t res_id)
{
    struct pinned_blob *b = find(p, res_id);
    if (!b)
        return;
    p->unreg(b->ptr);
    p->bytes -= b->size;
    *b = p->items[--p->n];
}

void pinned_blobs_fini(struct pinned_blobs *p)
{
    while (p->n)
        pinned_blobs_forget(p, p->items[0].res_id);
    memset(p, 0, sizeof *p);
}
