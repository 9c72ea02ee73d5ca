/* Handle table: opaque, typed, generation-checked handles; 0 and foreign handles never resolve. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "handle_table.h"

static int a, b, c;

static void test_add_get_remove(void **state)
{
    struct handle_table t;
    handle_table_init(&t, 0);
    uint32_t ha = handle_table_add(&t, HANDLE_BUFFER, &a);
    uint32_t hb = handle_table_add(&t, HANDLE_BACKEND, &b);
    assert_int_not_equal(ha, 0);
    assert_int_not_equal(hb, 0);
    assert_int_not_equal(ha, hb);
    assert_ptr_equal(handle_table_get(&t, ha, HANDLE_BUFFER), &a);
    assert_ptr_equal(handle_table_get(&t, hb, HANDLE_BACKEND), &b);
    /* wrong type, zero, out of range, garbage */
    assert_null(handle_table_get(&t, ha, HANDLE_BACKEND));
    assert_null(handle_table_get(&t, ha, HANDLE_FREE));
    assert_null(handle_table_get(&t, 0, HANDLE_BUFFER));
    assert_null(handle_table_get(&t, 0xffffffffu, HANDLE_BUFFER));
    assert_null(handle_table_get(&t, ha + 7, HANDLE_BUFFER));
    /* stale after remove, even when the slot is reused */
    assert_ptr_equal(handle_table_remove(&t, ha, HANDLE_BUFFER), &a);
    assert_null(handle_table_get(&t, ha, HANDLE_BUFFER));
    assert_null(handle_table_remove(&t, ha, HANDLE_BUFFER));
    uint32_t hc = handle_table_add(&t, HANDLE_BUFFER, &c);
    assert_int_not_equal(hc, ha);
    assert_null(handle_table_get(&t, ha, HANDLE_BUFFER));
    assert_ptr_equal(handle_table_get(&t, hc, HANDLE_BUFFER), &c);
    /* NULL objects and the FREE type are refused */
    assert_int_equal(handle_table_add(&t, HANDLE_BUFFER, NULL), 0);
    assert_int_equal(handle_table_add(&t, HANDLE_FREE, &a), 0);
    handle_table_fini(&t);
}

static void test_foreign_table(void **state)
{
    struct handle_table t1, t2;
    handle_table_init(&t1, 0);
    handle_table_init(&t2, 0);
    uint32_t h1 = handle_table_add(&t1, HANDLE_BUFFER, &a);
    assert_null(handle_table_get(&t2, h1, HANDLE_BUFFER));
    uint32_t h2 = handle_table_add(&t2, HANDLE_BUFFER, &b);
    /* same numeric handle in another table names that table's object only */
    assert_ptr_equal(handle_table_get(&t2, h2, HANDLE_BUFFER), &b);
    assert_ptr_equal(handle_table_get(&t1, h1, HANDLE_BUFFER), &a);
    handle_table_fini(&t1);
    handle_table_fini(&t2);
}

static void test_full_and_iterate(void **state)
{
    struct handle_table t;
    handle_table_init(&t, 4);
    uint32_t h[4];
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(h[i] = handle_table_add(&t, i % 2 ? HANDLE_BUFFER : HANDLE_BACKEND, &a), 0);
    assert_int_equal(handle_table_add(&t, HANDLE_BUFFER, &a), 0);
    uint32_t pos = 0, hh, n = 0;
    while (handle_table_next(&t, &pos, HANDLE_BUFFER, &hh)) {
        assert_ptr_equal(handle_table_get(&t, hh, HANDLE_BUFFER), &a);
        n++;
    }
    assert_int_equal(n, 2);
    handle_table_remove(&t, h[1], HANDLE_BUFFER);
    assert_int_not_equal(handle_table_add(&t, HANDLE_BUFFER, &b), 0);
    handle_table_fini(&t);
}

/* a slot whose generation wraps is retired: an old handle can never name a new object */
static void test_generation_wrap(void **state)
{
    struct handle_table t;
    handle_table_init(&t, 2);
    uint32_t first = handle_table_add(&t, HANDLE_BUFFER, &a);
    uint32_t h = first;
    for (int i = 0; i < 5000; i++) {
        assert_non_null(handle_table_remove(&t, h, HANDLE_BUFFER));
        h = handle_table_add(&t, HANDLE_BUFFER, &b);
        if (!h)
            break;
        assert_int_not_equal(h, first);
    }
    handle_table_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get_remove),
        cmocka_unit_test(test_foreign_table),
        cmocka_unit_test(test_full_and_iterate),
        cmocka_unit_test(test_generation_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
