#include "write_shadow.h"

#include <stdlib.h>
#include <string.h>

static int overlaps(const struct write_range *a, const void *buffer, uint64_t start, uint64_t end)
{
    return a->buffer == buffer && a->start < end && start < a->end;
}

static void drop(struct write_shadow *s, uint32_t i)
{
    s->bytes -= s->rec[i].r.end - s->rec[i].r.start;
    free(s->rec[i].bytes);
    memmove(&s->rec[i], &s->rec[i + 1], (s->n - i - 1) * sizeof s->rec[0]);
    s->n--;
}

void write_shadow_invalidate(struct write_shadow *s, const void *buffer, uint64_t offset, uint64_t size)
{
    uint64_t end = size > UINT64_MAX - offset ? UINT64_MAX : offset + size;
    for (uint32_t i = 0; i < s->n;) {
        if (overlaps(&s->rec[i].r, buffer, offset, end))
            drop(s, i);
        else
            i++;
    }
}

static const uint8_t *record(struct write_shadow *s, const void *buffer, uint64_t offset, const void *data,
                             uint64_t size, uint64_t max, uint64_t room)
{
    /* llama.cpp rewrites the same inputs every token: the record's memory is reused, and it
     * becomes the newest (records never overlap, so it is the only one the write touches) */
    for (uint32_t i = 0; i < s->n && size; i++) {
        struct shadow_record *r = &s->rec[i];
        if (r->r.buffer == buffer && r->r.start == offset && r->r.end - r->r.start == size) {
            struct shadow_record keep = *r;
            memcpy(keep.bytes, data, size);
            memmove(r, r + 1, (s->n - i - 1) * sizeof *r);
            s->rec[s->n - 1] = keep;
            return keep.bytes;
        }
    }
    write_shadow_invalidate(s, buffer, offset, size);
    uint64_t cap = room < WRITE_SHADOW_MAX_BYTES - s->bytes ? s->bytes + room : WRITE_SHADOW_MAX_BYTES;
    if (!size || size > max || size > cap)
        return NULL;
    /* room first, so that the peak stays within the bound */
    while (s->n && (s->n == WRITE_SHADOW_MAX_RECORDS || s->bytes + size > cap))
        drop(s, 0);
    uint8_t *copy = malloc(size);
    if (!copy)
        return NULL; /* the overlapped records are gone: the range is read back from the buffer */
    memcpy(copy, data, size);
    s->rec[s->n++] = (struct shadow_record){{buffer, offset, offset + size}, copy};
    s->bytes += size;
    return copy;
}

void write_shadow_record(struct write_shadow *s, const void *buffer, uint64_t offset, const void *data,
                         uint64_t size, uint64_t room)
{
    record(s, buffer, offset, data, size, WRITE_SHADOW_MAX_RECORD, room);
}

const uint8_t *write_shadow_keep(struct write_shadow *s, const void *buffer, uint64_t offset, const void *data,
                                 uint64_t size, uint64_t room)
{
    return record(s, buffer, offset, data, size, WRITE_SHADOW_MAX_INDEX_RECORD, room);
}

void write_shadow_shrink(struct write_shadow *s, uint64_t max_bytes)
{
    while (s->n && s->bytes > max_bytes)
        drop(s, 0);
}

/* the first range of w at or after (buffer, start) ends after start of the record's range:
 * w is sorted and its ranges disjoint, so only that one and the next need a look */
static int hit(const struct write_range *w, uint32_t n, const struct write_range *r)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) { /* first range with (buffer, end) > (r->buffer, r->start) */
        uint32_t mid = lo + (hi - lo) / 2;
        const struct write_range *m = &w[mid];
        int before = (uintptr_t)m->buffer != (uintptr_t)r->buffer ? (uintptr_t)m->buffer < (uintptr_t)r->buffer
                                                                   : m->end <= r->start;
        if (before)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && overlaps(&w[lo], r->buffer, r->start, r->end);
}

void write_shadow_invalidate_ranges(struct write_shadow *s, const struct write_range *w, uint32_t n)
{
    for (uint32_t i = 0; i < s->n;) {
        if (hit(w, n, &s->rec[i].r))
            drop(s, i);
        else
            i++;
    }
}

const uint8_t *write_shadow_find(const struct write_shadow *s, const void *buffer, uint64_t start, uint64_t end)
{
    if (start >= end)
        return NULL;
    for (uint32_t i = s->n; i-- > 0;) { /* records do not overlap: at most one covers */
        const struct write_range *r = &s->rec[i].r;
        if (r->buffer == buffer && r->start <= start && end <= r->end)
            return s->rec[i].bytes + (start - r->start);
    }
    return NULL;
}

void write_shadow_free(struct write_shadow *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        free(s->rec[i].bytes);
    s->n = 0;
    s->bytes = 0;
}
