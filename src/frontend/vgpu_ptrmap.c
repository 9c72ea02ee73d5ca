#include "vgpu_ptrmap.h"

#include <stdlib.h>
#include <string.h>

static size_t slot_of(const void *key, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)key;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull; /* murmur3 finalizer: pointers share low/high bits */
    h ^= h >> 33;
    return (size_t)h & mask;
}

void vgpu_ptrmap_clear(struct vgpu_ptrmap *m)
{
    if (m->slots)
        memset(m->slots, 0, m->n_slots * sizeof *m->slots);
    m->count = 0;
}

void vgpu_ptrmap_free(struct vgpu_ptrmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

bool vgpu_ptrmap_get(const struct vgpu_ptrmap *m, const void *key, uint32_t *value)
{
    if (!m->n_slots)
        return false;
    size_t mask = m->n_slots - 1;
    for (size_t i = slot_of(key, mask);; i = (i + 1) & mask) {
        if (!m->slots[i].key)
            return false;
        if (m->slots[i].key == key) {
            *value = m->slots[i].value;
            return true;
        }
    }
}

static void insert(struct vgpu_ptrmap_slot *slots, size_t n_slots, const void *key, uint32_t value, bool *added)
{
    size_t mask = n_slots - 1;
    size_t i = slot_of(key, mask);
    while (slots[i].key && slots[i].key != key)
        i = (i + 1) & mask;
    *added = slots[i].key == NULL;
    slots[i].key = key;
    slots[i].value = value;
}

static bool grow(struct vgpu_ptrmap *m)
{
    size_t n = m->n_slots ? m->n_slots * 2 : 256;
    if (n < m->n_slots || n > SIZE_MAX / sizeof *m->slots)
        return false;
    struct vgpu_ptrmap_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return false;
    bool added;
    for (size_t i = 0; i < m->n_slots; i++)
        if (m->slots[i].key)
            insert(slots, n, m->slots[i].key, m->slots[i].value, &added);
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
    return true;
}

bool vgpu_ptrmap_put(struct vgpu_ptrmap *m, const void *key, uint32_t value)
{
    if ((m->count + 1) * 2 > m->n_slots && !grow(m)) /* load factor <= 1/2 */
        return false;
    bool added;
    insert(m->slots, m->n_slots, key, value, &added);
    if (added)
        m->count++;
    return true;
}
