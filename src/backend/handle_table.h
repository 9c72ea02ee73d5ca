/* Per-context table of host objects named by opaque u32 handles. A handle is
 * (generation << HANDLE_INDEX_BITS) | (index + 1): 0 never names anything, and freeing a slot
 * bumps its generation so that a stale handle no longer resolves. Each context owns its own
 * table, so another context's handle cannot name our objects. Not thread-safe: a context is
 * used by one thread at a time. */
#ifndef APIR_HANDLE_TABLE_H
#define APIR_HANDLE_TABLE_H

#include <stdint.h>

enum handle_type {
    HANDLE_FREE = 0,
    HANDLE_BUFT = 1,
    HANDLE_BUFFER = 2,
    HANDLE_BACKEND = 3,
};

#define HANDLE_INDEX_BITS 20
#define HANDLE_MAX_ENTRIES ((1u << HANDLE_INDEX_BITS) - 1) /* index + 1 must fit the bits */

struct handle_entry {
    enum handle_type type;
    uint32_t generation; /* 12 bits used */
    void *obj;
    int32_t next_free; /* index of the next free slot, -1 = none */
};

struct handle_table {
    struct handle_entry *entries;
    uint32_t count;    /* slots in use or on the free list */
    uint32_t cap;
    uint32_t max;      /* limit on slots (HANDLE_MAX_ENTRIES or less, for tests) */
    int32_t free_head; /* -1 = none */
};

void handle_table_init(struct handle_table *t, uint32_t max_entries);
/* frees the table's memory (not the objects: walk with handle_table_next first) */
void handle_table_fini(struct handle_table *t);
/* returns a new handle for obj, 0 when the table is full or out of memory */
uint32_t handle_table_add(struct handle_table *t, enum handle_type type, void *obj);
/* the object of the given type named by h, or NULL (unknown, stale, wrong type) */
void *handle_table_get(const struct handle_table *t, uint32_t h, enum handle_type type);
/* forgets h (which must resolve to type); returns its object or NULL */
void *handle_table_remove(struct handle_table *t, uint32_t h, enum handle_type type);
/* iteration: start with *pos = 0; returns the next live object of type (and its handle in
 * *h) or NULL at the end */
void *handle_table_next(const struct handle_table *t, uint32_t *pos, enum handle_type type, uint32_t *h);

#endif
