#include "handle_table.h"

#include <stdlib.h>

#define GEN_MASK ((1u << (32 - HANDLE_INDEX_BITS)) - 1)
#define INDEX_MASK ((1u << HANDLE_INDEX_BITS) - 1)

void handle_table_init(struct handle_table *t, uint32_t max_entries)
{
    t->entries = NULL;
    t->count = t->cap = 0;
    t->max = (max_entries && max_entries < HANDLE_MAX_ENTRIES) ? max_entries : HANDLE_MAX_ENTRIES;
    t->free_head = -1;
}

void handle_table_fini(struct handle_table *t)
{
    free(t->entries);
    handle_table_init(t, t->max);
}

static uint32_t make_handle(uint32_t index, uint32_t gen) { return (gen << HANDLE_INDEX_BITS) | (index + 1); }

uint32_t handle_table_add(struct handle_table *t, enum handle_type type, void *obj)
{
    uint32_t index;
    if (type == HANDLE_FREE || !obj)
        return 0;
    if (t->free_head >= 0) {
        index = (uint32_t)t->free_head;
        t->free_head = t->entries[index].next_free;
    } else {
        if (t->count >= t->max)
            return 0;
        if (t->count == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 16;
            if (cap > t->max)
                cap = t->max;
            struct handle_entry *e = realloc(t->entries, (size_t)cap * sizeof *e);
            if (!e)
                return 0;
            t->entries = e;
            t->cap = cap;
        }
        index = t->count++;
        t->entries[index].generation = 0;
    }
    struct handle_entry *e = &t->entries[index];
    e->type = type;
    e->obj = obj;
    e->next_free = -1;
    return make_handle(index, e->generation);
}

static struct handle_entry *lookup(const struct handle_table *t, uint32_t h, enum handle_type type)
{
    uint32_t idx1 = h & INDEX_MASK;
    if (idx1 == 0 || idx1 > t->count || type == HANDLE_FREE)
        return NULL;
    struct handle_entry *e = &t->entries[idx1 - 1];
    if (e->type != type || e->generation != (h >> HANDLE_INDEX_BITS))
        return NULL;
    return e;
}

void *handle_table_get(const struct handle_table *t, uint32_t h, enum handle_type type)
{
    struct handle_entry *e = lookup(t, h, type);
    return e ? e->obj : NULL;
}

void *handle_table_remove(struct handle_table *t, uint32_t h, enum handle_type type)
{
    struct handle_entry *e = lookup(t, h, type);
    if (!e)
        return NULL;
    void *obj = e->obj;
    e->type = HANDLE_FREE;
    e->obj = NULL;
    e->generation = (e->generation + 1) & GEN_MASK;
    /* a slot whose generation would wrap is retired, so an old handle can never come back */
    if (e->generation != 0) {
        e->next_free = t->free_head;
        t->free_head = (int32_t)(e - t->entries);
    }
    return obj;
}

void *handle_table_next(const struct handle_table *t, uint32_t *pos, enum handle_type type, uint32_t *h)
{
    while (*pos < t->count) {
        uint32_t i = (*pos)++;
        const struct handle_entry *e = &t->entries[i];
        if (e->type == type) {
            if (h)
                *h = make_handle(i, e->generation);
            return e->obj;
        }
    }
    return NULL;
}
