/* Write shadow: a record serves only reads it fully covers, and only until something changes
 * its bytes; memory stays bounded (oldest records dropped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "write_shadow.h"

#include <stdlib.h>
#include <string.h>

static int buf_a, buf_b; /* two buffers (only their addresses matter) */

static void test_cover_and_overlap(void **state)
{
    (void)state;
    static struct write_shadow s;
    uint8_t data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (uint8_t)i;
    write_shadow_record(&s, &buf_a, 100, data, 64, UINT64_MAX);
    const uint8_t *p = write_shadow_find(&s, &buf_a, 110, 120);
    assert_non_null(p);
    assert_int_equal(p[0], 10);
    assert_non_null(write_shadow_find(&s, &buf_a, 100, 164));
    assert_null(write_shadow_find(&s, &buf_a, 99, 120)); /* not covered */
    assert_null(write_shadow_find(&s, &buf_a, 150, 165));
    assert_null(write_shadow_find(&s, &buf_b, 110, 120)); /* another buffer */
    assert_null(write_shadow_find(&s, &buf_a, 110, 110)); /* empty */
    /* a write over part of a record drops it: the rest is not trusted either */
    uint8_t x = 0xee;
    write_shadow_record(&s, &buf_a, 130, &x, 1, UINT64_MAX);
    assert_null(write_shadow_find(&s, &buf_a, 110, 120));
    p = write_shadow_find(&s, &buf_a, 130, 131);
    assert_non_null(p);
    assert_int_equal(p[0], 0xee);
    /* the same range written again: the new bytes */
    x = 0x11;
    write_shadow_record(&s, &buf_a, 130, &x, 1, UINT64_MAX);
    assert_int_equal(write_shadow_find(&s, &buf_a, 130, 131)[0], 0x11);
    assert_int_equal(s.n, 1);
    /* invalidation: touching ranges only */
    write_shadow_record(&s, &buf_b, 0, data, 16, UINT64_MAX);
    write_shadow_invalidate(&s, &buf_a, 131, 10); /* adjacent, not overlapping */
    assert_non_null(write_shadow_find(&s, &buf_a, 130, 131));
    write_shadow_invalidate(&s, &buf_a, 0, UINT64_MAX); /* the whole buffer (CLEAR, FREE) */
    assert_null(write_shadow_find(&s, &buf_a, 130, 131));
    assert_non_null(write_shadow_find(&s, &buf_b, 0, 16));
    write_shadow_invalidate(&s, &buf_b, UINT64_MAX - 1, UINT64_MAX); /* no overflow */
    assert_non_null(write_shadow_find(&s, &buf_b, 0, 16));
    /* a write too large to keep only invalidates */
    uint8_t *big = calloc(1, WRITE_SHADOW_MAX_RECORD + 1);
    assert_non_null(big);
    write_shadow_record(&s, &buf_b, 8, big, WRITE_SHADOW_MAX_RECORD + 1, UINT64_MAX);
    assert_null(write_shadow_find(&s, &buf_b, 0, 16));
    assert_int_equal(s.n, 0);
    free(big);
    write_shadow_free(&s);
}

/* a graph's written ranges (sorted, disjoint) drop exactly the records they touch */
static void test_invalidate_ranges(void **state)
{
    (void)state;
    static struct write_shadow s;
    uint8_t data[16] = {0};
    const void *lo = (uintptr_t)&buf_a < (uintptr_t)&buf_b ? (const void *)&buf_a : (const void *)&buf_b;
    const void *hi = lo == (const void *)&buf_a ? (const void *)&buf_b : (const void *)&buf_a;
    for (uint64_t off = 0; off < 160; off += 16) {
        write_shadow_record(&s, lo, off, data, 16, UINT64_MAX);
        write_shadow_record(&s, hi, off, data, 16, UINT64_MAX);
    }
    struct write_range w[] = {{lo, 20, 30}, {lo, 64, 65}, {lo, 150, 400}, {hi, 0, 1}, {hi, 47, 48}};
    write_shadow_invalidate_ranges(&s, w, 5);
    for (uint64_t off = 0; off < 160; off += 16) {
        int lo_gone = off == 16 || off == 64 || off == 144;
        int hi_gone = off == 0 || off == 32;
        assert_int_equal(write_shadow_find(&s, lo, off, off + 16) == NULL, lo_gone);
        assert_int_equal(write_shadow_find(&s, hi, off, off + 16) == NULL, hi_gone);
    }
    write_shadow_invalidate_ranges(&s, NULL, 0);
    assert_int_equal(s.n, 20 - 5);
    write_shadow_free(&s);
}

/* bounded: at most WRITE_SHADOW_MAX_RECORDS records and WRITE_SHADOW_MAX_BYTES bytes, the
 * oldest dropped first */
static void test_bounded(void **state)
{
    (void)state;
    static struct write_shadow s;
    uint8_t v[4] = {1, 2, 3, 4};
    for (uint32_t i = 0; i < WRITE_SHADOW_MAX_RECORDS + 10; i++)
        write_shadow_record(&s, &buf_a, (uint64_t)i * 4, v, 4, UINT64_MAX);
    assert_int_equal(s.n, WRITE_SHADOW_MAX_RECORDS);
    assert_null(write_shadow_find(&s, &buf_a, 0, 4)); /* the oldest */
    assert_null(write_shadow_find(&s, &buf_a, 36, 40));
    assert_non_null(write_shadow_find(&s, &buf_a, 40, 44));
    assert_non_null(write_shadow_find(&s, &buf_a, (WRITE_SHADOW_MAX_RECORDS + 9) * 4, (WRITE_SHADOW_MAX_RECORDS + 10) * 4));
    /* a rewrite of the same range makes its record the newest */
    write_shadow_record(&s, &buf_a, 40, v, 4, UINT64_MAX);
    write_shadow_record(&s, &buf_a, 2000000, v, 4, UINT64_MAX);
    assert_non_null(write_shadow_find(&s, &buf_a, 40, 44));
    assert_null(write_shadow_find(&s, &buf_a, 44, 48));
    write_shadow_free(&s);
    /* large records only through write_shadow_keep (index writes), and still bounded */
    uint8_t *big = calloc(1, WRITE_SHADOW_MAX_INDEX_RECORD + 1);
    assert_non_null(big);
    write_shadow_record(&s, &buf_b, 0, big, WRITE_SHADOW_MAX_RECORD + 1, UINT64_MAX);
    assert_int_equal(s.n, 0);
    assert_null(write_shadow_keep(&s, &buf_b, 0, big, WRITE_SHADOW_MAX_INDEX_RECORD + 1, UINT64_MAX));
    assert_int_equal(s.n, 0);
    uint64_t size = WRITE_SHADOW_MAX_INDEX_RECORD;
    uint32_t fit = (uint32_t)(WRITE_SHADOW_MAX_BYTES / size);
    for (uint32_t i = 0; i <= fit; i++) {
        big[0] = (uint8_t)(i + 1);
        const uint8_t *kept = write_shadow_keep(&s, &buf_b, (uint64_t)i * size, big, size, UINT64_MAX);
        assert_non_null(kept);
        assert_true(kept != big && kept[0] == i + 1); /* the shadow's own copy */
    }
    assert_true(s.bytes <= WRITE_SHADOW_MAX_BYTES);
    assert_int_equal(s.n, fit);
    assert_null(write_shadow_find(&s, &buf_b, 0, 1));
    assert_non_null(write_shadow_find(&s, &buf_b, (uint64_t)fit * size, (uint64_t)fit * size + 1));
    free(big);
    write_shadow_free(&s);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.bytes, 0);
}

/* room (what the guest's buffer limit leaves): nothing is recorded beyond it, older records
 * go first, and shrinking drops the oldest */
static void test_room(void **state)
{
    (void)state;
    static struct write_shadow s;
    uint8_t v[64] = {1};
    write_shadow_record(&s, &buf_a, 0, v, 64, 0);
    assert_int_equal(s.n, 0);
    write_shadow_record(&s, &buf_a, 0, v, 64, 100);
    assert_int_equal(s.bytes, 64);
    write_shadow_record(&s, &buf_a, 64, v, 64, 36); /* 100 bytes at most: the first goes */
    assert_null(write_shadow_find(&s, &buf_a, 0, 64));
    assert_non_null(write_shadow_find(&s, &buf_a, 64, 128));
    assert_int_equal(s.bytes, 64);
    write_shadow_record(&s, &buf_a, 128, v, 32, UINT64_MAX);
    write_shadow_shrink(&s, 40);
    assert_int_equal(s.n, 1);
    assert_non_null(write_shadow_find(&s, &buf_a, 128, 160));
    write_shadow_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room),
        cmocka_unit_test(test_cover_and_overlap),
        cmocka_unit_test(test_invalidate_ranges),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
