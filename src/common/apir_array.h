/* The growable arrays the component, the server, the interposer and the guest keep (items,
 * count, cap): one place for the doubling, its overflow check and the unordered removal. */
#ifndef APIR_ARRAY_H
#define APIR_ARRAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* items, or items moved to a larger block (first_cap elements, then twice *cap) when count
 * has reached *cap, *cap updated; NULL when out of memory, items then left as they were */
static inline void *apir_array_grow(void *items, size_t *cap, size_t count, size_t elem_size, size_t first_cap)
{
    if (count < *cap)
        return items;
    size_t n = *cap ? *cap * 2 : first_cap;
    if (n < *cap || n > SIZE_MAX / elem_size)
        return NULL;
    void *p = realloc(items, n * elem_size);
    if (p)
        *cap = n;
    return p;
}

/* removes the first element whose bytes equal *value, the last one taking its place (order
 * is not kept); false when there is none */
static inline bool apir_array_remove(void *items, size_t *count, size_t elem_size, const void *value)
{
    char *a = items;
    for (size_t i = 0; i < *count; i++) {
        if (memcmp(a + i * elem_size, value, elem_size) == 0) {
            --*count;
            memmove(a + i * elem_size, a + *count * elem_size, elem_size);
            return true;
        }
    }
    return false;
}

#endif
