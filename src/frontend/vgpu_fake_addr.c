#include "vgpu_fake_addr.h"

#include <pthread.h>

/* stay below the top of the 64-bit space so base + size never wraps */
#define FAKE_ADDR_END 0xff00000000000000ull

uint64_t vgpu_fake_addr_alloc(struct vgpu_fake_addr *fa, uint64_t size, uint64_t align)
{
    if (align == 0)
        align = 1;
    if (align & (align - 1))
        return 0;
    if (align < 4096)
        align = 4096; /* page-aligned bases read well in logs */
    uint64_t cur = fa->next ? fa->next : VGPU_FAKE_ADDR_START;
    if (cur > FAKE_ADDR_END - (align - 1))
        return 0;
    uint64_t base = (cur + align - 1) & ~(align - 1);
    if (size > FAKE_ADDR_END - base || FAKE_ADDR_END - base - size < VGPU_FAKE_ADDR_GUARD)
        return 0;
    /* a zero-size buffer still gets a distinct base */
    fa->next = base + (size ? size : 1) + VGPU_FAKE_ADDR_GUARD;
    return base;
}

static struct vgpu_fake_addr global_fa;
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;

void *vgpu_fake_addr_global_alloc(uint64_t size, uint64_t align)
{
    pthread_mutex_lock(&global_lock);
    uint64_t base = vgpu_fake_addr_alloc(&global_fa, size, align);
    pthread_mutex_unlock(&global_lock);
    return (void *)(uintptr_t)base;
}
