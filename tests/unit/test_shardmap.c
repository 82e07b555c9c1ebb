/* Unit tests for the sharded hash map (src/core/shardmap.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/shardmap.h"

static const struct hash_key test_key = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};

/* Values stored in tests: distinct non-NULL pointers without allocation. */
static char values[64];

static struct shardmap *map_new(unsigned shard_bits)
{
    struct shardmap *map = shardmap_create(shard_bits, &test_key);

    assert_non_null(map);
    return map;
}

static void *increment(void *value, void *arg)
{
    int *calls = arg;

    (*calls)++;
    return (void *)((uintptr_t)value + 1);
}

static void *remove_value(void *value, void *arg)
{
    int *calls = arg;

    (*calls)++;
    return NULL;
}

static void *record_and_keep(void *value, void *arg)
{
    void **seen = arg;

    *seen = value;
    return value;
}

static void count_visit(void *value, void *arg)
{
    int *visits = arg;

    (*visits)++;
}

static void test_create_rejects_bad_shard_bits(void **state)
{
    assert_null(shardmap_create(13, &test_key));
    assert_null(shardmap_create(1000, &test_key));

    struct shardmap *map = shardmap_create(12, &test_key);
    assert_non_null(map);
    shardmap_destroy(map, NULL);
}

static void test_insert_then_get(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = NULL;
    int visits = 0;

    assert_int_equal(shardmap_insert(map, "abc", 3, &values[1]), 0);
    assert_int_equal(shardmap_get(map, "abc", 3, count_visit, &visits, &value), 0);
    assert_ptr_equal(value, &values[1]);
    assert_int_equal(visits, 1);

    /* NULL visit and NULL value_out are allowed. */
    assert_int_equal(shardmap_get(map, "abc", 3, NULL, NULL, NULL), 0);
    shardmap_destroy(map, NULL);
}

static void test_get_missing_key(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = &values[9];
    int visits = 0;

    assert_int_equal(shardmap_get(map, "nope", 4, count_visit, &visits, &value), -ENOENT);
    assert_int_equal(visits, 0);
    assert_ptr_equal(value, &values[9]);
    shardmap_destroy(map, NULL);
}

static void test_insert_existing_key(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = NULL;

    assert_int_equal(shardmap_insert(map, "k", 1, &values[1]), 0);
    assert_int_equal(shardmap_insert(map, "k", 1, &values[2]), -EEXIST);
    assert_int_equal(shardmap_get(map, "k", 1, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[1]);
    assert_int_equal(shardmap_count(map), 1);
    shardmap_destroy(map, NULL);
}

static void test_insert_null_value(void **state)
{
    struct shardmap *map = map_new(0);

    assert_int_equal(shardmap_insert(map, "k", 1, NULL), -EINVAL);
    assert_int_equal(shardmap_count(map), 0);
    shardmap_destroy(map, NULL);
}

static void test_overlong_key(void **state)
{
    struct shardmap *map = map_new(1);
    char key[SHARDMAP_KEY_MAX + 1];
    void *value = NULL;
    int calls = 0;

    memset(key, 'x', sizeof(key));

    assert_int_equal(shardmap_insert(map, key, SHARDMAP_KEY_MAX + 1, &values[1]), -EINVAL);
    assert_int_equal(shardmap_get(map, key, SHARDMAP_KEY_MAX + 1, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(shardmap_update(map, key, SHARDMAP_KEY_MAX + 1, increment, &calls), -EINVAL);
    assert_int_equal(calls, 0);
    assert_int_equal(shardmap_remove(map, key, SHARDMAP_KEY_MAX + 1, NULL), -ENOENT);

    /* The longest allowed key works, and differs from its prefix. */
    assert_int_equal(shardmap_insert(map, key, SHARDMAP_KEY_MAX, &values[2]), 0);
    assert_int_equal(shardmap_get(map, key, SHARDMAP_KEY_MAX, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[2]);
    assert_int_equal(shardmap_get(map, key, SHARDMAP_KEY_MAX - 1, NULL, NULL, NULL), -ENOENT);
    shardmap_destroy(map, NULL);
}

static void test_empty_key(void **state)
{
    struct shardmap *map = map_new(1);
    void *value = NULL;

    assert_int_equal(shardmap_insert(map, "", 0, &values[3]), 0);
    assert_int_equal(shardmap_get(map, "", 0, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[3]);
    assert_int_equal(shardmap_remove(map, "", 0, NULL), 0);
    shardmap_destroy(map, NULL);
}

static void test_keys_with_nul_bytes(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = NULL;

    assert_int_equal(shardmap_insert(map, "a\0b", 3, &values[1]), 0);
    assert_int_equal(shardmap_insert(map, "a\0c", 3, &values[2]), 0);
    assert_int_equal(shardmap_insert(map, "a", 1, &values[3]), 0);
    assert_int_equal(shardmap_insert(map, "a\0", 2, &values[4]), 0);

    assert_int_equal(shardmap_get(map, "a\0b", 3, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[1]);
    assert_int_equal(shardmap_get(map, "a\0c", 3, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[2]);
    assert_int_equal(shardmap_get(map, "a", 1, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[3]);
    assert_int_equal(shardmap_get(map, "a\0", 2, NULL, NULL, &value), 0);
    assert_ptr_equal(value, &values[4]);
    assert_int_equal(shardmap_count(map), 4);
    shardmap_destroy(map, NULL);
}

static void test_binary_keys(void **state)
{
    struct shardmap *map = map_new(3);
    unsigned char key[2];

    /* 256 two-byte keys; together they hold every byte value in each position. */
    for (unsigned b = 0; b < 256; b++) {
        key[0] = (unsigned char)b;
        key[1] = (unsigned char)(255 - b);
        assert_int_equal(shardmap_insert(map, key, 2, (void *)(uintptr_t)(b + 1)), 0);
    }

    for (unsigned b = 0; b < 256; b++) {
        void *value = NULL;

        key[0] = (unsigned char)b;
        key[1] = (unsigned char)(255 - b);
        assert_int_equal(shardmap_get(map, key, 2, NULL, NULL, &value), 0);
        assert_int_equal((uintptr_t)value, b + 1);
    }
    assert_int_equal(shardmap_count(map), 256);
    shardmap_destroy(map, NULL);
}

static void test_update_inserts_absent_key(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = NULL;
    int calls = 0;

    assert_int_equal(shardmap_update(map, "n", 1, increment, &calls), 1);
    assert_int_equal(calls, 1);
    assert_int_equal(shardmap_get(map, "n", 1, NULL, NULL, &value), 0);
    assert_int_equal((uintptr_t)value, 1);
    shardmap_destroy(map, NULL);
}

static void test_update_changes_present_key(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = NULL;
    void *seen = &values[0];
    int calls = 0;

    assert_int_equal(shardmap_insert(map, "n", 1, (void *)(uintptr_t)41), 0);
    assert_int_equal(shardmap_update(map, "n", 1, increment, &calls), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(shardmap_get(map, "n", 1, NULL, NULL, &value), 0);
    assert_int_equal((uintptr_t)value, 42);

    assert_int_equal(shardmap_update(map, "n", 1, record_and_keep, &seen), 0);
    assert_int_equal((uintptr_t)seen, 42);

    /* The callback sees NULL for an absent key. */
    assert_int_equal(shardmap_update(map, "m", 1, record_and_keep, &seen), 1);
    assert_null(seen);
    assert_int_equal(shardmap_get(map, "m", 1, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(shardmap_count(map), 1);
    shardmap_destroy(map, NULL);
}

static void test_update_returning_null_removes(void **state)
{
    struct shardmap *map = map_new(2);
    int calls = 0;

    assert_int_equal(shardmap_insert(map, "gone", 4, &values[1]), 0);
    assert_int_equal(shardmap_update(map, "gone", 4, remove_value, &calls), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(shardmap_get(map, "gone", 4, NULL, NULL, NULL), -ENOENT);
    assert_int_equal(shardmap_count(map), 0);

    /* On an absent key the callback runs, returns NULL, and nothing is stored. */
    assert_int_equal(shardmap_update(map, "gone", 4, remove_value, &calls), 1);
    assert_int_equal(calls, 2);
    assert_int_equal(shardmap_count(map), 0);
    shardmap_destroy(map, NULL);
}

static void test_remove_returns_value(void **state)
{
    struct shardmap *map = map_new(2);
    void *value = NULL;

    assert_int_equal(shardmap_insert(map, "r", 1, &values[5]), 0);
    assert_int_equal(shardmap_remove(map, "r", 1, &value), 0);
    assert_ptr_equal(value, &values[5]);
    assert_int_equal(shardmap_remove(map, "r", 1, &value), -ENOENT);
    assert_int_equal(shardmap_get(map, "r", 1, NULL, NULL, NULL), -ENOENT);

    /* The key can be inserted again after removal. */
    assert_int_equal(shardmap_insert(map, "r", 1, &values[6]), 0);
    assert_int_equal(shardmap_remove(map, "r", 1, NULL), 0);
    shardmap_destroy(map, NULL);
}

static size_t format_key(char *buffer, size_t size, unsigned i)
{
    return (size_t)snprintf(buffer, size, "key-%u", i);
}

static void test_growth_keeps_every_key(void **state)
{
    enum { KEYS = 100000 };
    struct shardmap *map = map_new(2);
    char key[32];

    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = format_key(key, sizeof(key), i);

        assert_int_equal(shardmap_insert(map, key, len, (void *)(uintptr_t)(i + 1)), 0);
    }
    assert_int_equal(shardmap_count(map), KEYS);

    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = format_key(key, sizeof(key), i);
        void *value = NULL;

        assert_int_equal(shardmap_get(map, key, len, NULL, NULL, &value), 0);
        assert_int_equal((uintptr_t)value, i + 1);
    }
    shardmap_destroy(map, NULL);
}

static void test_removal_keeps_other_keys(void **state)
{
    enum { KEYS = 20000 };
    struct shardmap *map = map_new(0);
    char key[32];

    /* One shard, so that removals shift long clusters of the same table. */
    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = format_key(key, sizeof(key), i);

        assert_int_equal(shardmap_insert(map, key, len, (void *)(uintptr_t)(i + 1)), 0);
    }

    for (unsigned i = 0; i < KEYS; i += 3) {
        size_t len = format_key(key, sizeof(key), i);

        assert_int_equal(shardmap_remove(map, key, len, NULL), 0);
    }

    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = format_key(key, sizeof(key), i);
        void *value = NULL;
        int rc = shardmap_get(map, key, len, NULL, NULL, &value);

        if (i % 3 == 0) {
            assert_int_equal(rc, -ENOENT);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal((uintptr_t)value, i + 1);
        }
    }
    assert_int_equal(shardmap_count(map), KEYS - (KEYS + 2) / 3);
    shardmap_destroy(map, NULL);
}

struct foreach_totals {
    size_t calls;
    uintptr_t value_sum;
    size_t key_bytes;
};

static void sum_entry(const void *key, size_t key_len, void *value, void *arg)
{
    struct foreach_totals *totals = arg;
    char expected[32];
    size_t expected_len = format_key(expected, sizeof(expected), (unsigned)(uintptr_t)value);

    /* Each key must arrive with the value it was stored with. */
    assert_int_equal(key_len, expected_len);
    assert_memory_equal(key, expected, key_len);
    totals->calls++;
    totals->value_sum += (uintptr_t)value;
    totals->key_bytes += key_len;
}

static void test_foreach_visits_each_entry_once(void **state)
{
    enum { KEYS = 1000 };
    struct shardmap *map = map_new(3);
    struct foreach_totals totals = {0};
    uintptr_t expected_sum = 0;
    size_t expected_bytes = 0;
    char key[32];

    for (unsigned i = 1; i <= KEYS; i++) {
        size_t len = format_key(key, sizeof(key), i);

        assert_int_equal(shardmap_insert(map, key, len, (void *)(uintptr_t)i), 0);
        expected_sum += i;
        expected_bytes += len;
    }

    shardmap_foreach(map, sum_entry, &totals);
    assert_int_equal(totals.calls, KEYS);
    assert_int_equal(totals.value_sum, expected_sum);
    assert_int_equal(totals.key_bytes, expected_bytes);
    assert_int_equal(shardmap_count(map), KEYS);
    shardmap_destroy(map, NULL);
}

static void test_count_tracks_changes(void **state)
{
    struct shardmap *map = map_new(4);
    int calls = 0;

    assert_int_equal(shardmap_count(map), 0);
    assert_int_equal(shardmap_insert(map, "a", 1, &values[1]), 0);
    assert_int_equal(shardmap_insert(map, "b", 1, &values[2]), 0);
    assert_int_equal(shardmap_update(map, "c", 1, increment, &calls), 1);
    assert_int_equal(shardmap_count(map), 3);
    assert_int_equal(shardmap_remove(map, "a", 1, NULL), 0);
    assert_int_equal(shardmap_update(map, "b", 1, remove_value, &calls), 0);
    assert_int_equal(shardmap_count(map), 1);
    shardmap_destroy(map, NULL);
}

static int freed_values;

static void free_counted(void *value)
{
    freed_values++;
    free(value);
}

static void test_destroy_frees_values(void **state)
{
    struct shardmap *map = map_new(2);

    freed_values = 0;
    for (int i = 0; i < 10; i++) {
        char key[16];
        int *value = malloc(sizeof(*value));

        assert_non_null(value);
        *value = i;
        (void)snprintf(key, sizeof(key), "%d", i);
        assert_int_equal(shardmap_insert(map, key, strlen(key), value), 0);
    }
    shardmap_destroy(map, free_counted);
    assert_int_equal(freed_values, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_shard_bits),
        cmocka_unit_test(test_insert_then_get),
        cmocka_unit_test(test_get_missing_key),
        cmocka_unit_test(test_insert_existing_key),
        cmocka_unit_test(test_insert_null_value),
        cmocka_unit_test(test_overlong_key),
        cmocka_unit_test(test_empty_key),
        cmocka_unit_test(test_keys_with_nul_bytes),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_update_inserts_absent_key),
        cmocka_unit_test(test_update_changes_present_key),
        cmocka_unit_test(test_update_returning_null_removes),
        cmocka_unit_test(test_remove_returns_value),
        cmocka_unit_test(test_growth_keeps_every_key),
        cmocka_unit_test(test_removal_keeps_other_keys),
        cmocka_unit_test(test_foreach_visits_each_entry_once),
        cmocka_unit_test(test_count_tracks_changes),
        cmocka_unit_test(test_destroy_frees_values),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
