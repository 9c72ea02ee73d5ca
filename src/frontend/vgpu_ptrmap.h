/* A growable hash map from a pointer to a u32, for indexing the tensors of a graph. */
#ifndef VGPU_PTRMAP_H
#define VGPU_PTRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vgpu_ptrmap_slot {
    const void *key;
    uint32_t value;
};

struct vgpu_ptrmap {
    struct vgpu_ptrmap_slot *slots;
    size_t n_slots; /* power of two, or 0 */
    size_t count;
};

void vgpu_ptrmap_clear(struct vgpu_ptrmap *m); /* keeps the memory */
void vgpu_ptrmap_free(struct vgpu_ptrmap *m);
bool vgpu_ptrmap_get(const struct vgpu_ptrmap *m, const void *key, uint32_t *value);
/* inserts or overwrites; false on out of memory. key must not be NULL. */
bool vgpu_ptrmap_put(struct vgpu_ptrmap *m, const void *key, uint32_t value);

#endif
