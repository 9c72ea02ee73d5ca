/* Resources attached to a context: res_id -> host mapping. A small array; a context has a
 * handful of resources (reply page, data page, a few buffers). */
#include "component_internal.h"

#include "apir_array.h"

#include <stdlib.h>

const struct apir_resource *apir_resources_find(const struct apir_resource_table *t, uint32_t res_id)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->items[i].res_id == res_id)
            return &t->items[i];
    return NULL;
}

int apir_resources_attach(struct apir_resource_table *t, uint32_t res_id, void *ptr, size_t size)
{
    if (res_id == 0 || !ptr || apir_resources_find(t, res_id))
        return -1;
    struct apir_resource *items = apir_array_grow(t->items, &t->cap, t->count, sizeof *items, 8);
    if (!items)
        return -1;
    t->items = items;
    t->items[t->count++] = (struct apir_resource){res_id, ptr, size};
    t->bytes += size;
    return 0;
}

void apir_resources_detach(struct apir_resource_table *t, uint32_t res_id)
{
    for (size_t i = 0; i < t->count; i++) {
        if (t->items[i].res_id == res_id) {
            t->bytes -= t->items[i].size;
            t->items[i] = t->items[--t->count];
            return;
        }
    }
}

void apir_resources_free(struct apir_resource_table *t)
{
    free(t->items);
    t->items = NULL;
    t->count = t->cap = 0;
    t->bytes = 0;
}
