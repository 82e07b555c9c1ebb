/* Tests of the per-thread visit counters (src/app/visits.c). */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/visits.h"

static struct hash_key test_key = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};

/* Returns the count taken for (link_id, day, referrer), 0 when absent. */
static uint64_t find(const struct store_visit *visits, size_t count, int64_t link_id, int32_t day,
                     const char *referrer)
{
    size_t referrer_len = strlen(referrer);
    uint64_t total = 0;
    size_t i;

    for (i = 0; i < count; i++) {
        if (visits[i].link_id == link_id && visits[i].day == day &&
            visits[i].referrer_len == referrer_len &&
            (referrer_len == 0 || memcmp(visits[i].referrer, referrer, referrer_len) == 0))
            total += visits[i].count;
    }
    return total;
}

/*
 * Checks the layout of a block from visits_take: the entries, then their
 * referrer bytes (referrer_bytes in all), each entry pointing at its own
 * bytes in order, all inside the allocation.
 */
static void assert_block_layout(const struct store_visit *visits, size_t count,
                                size_t referrer_bytes)
{
    const char *bytes = (const char *)(visits + count);
    size_t i, used = 0;

    assert_true(malloc_usable_size((void *)visits) >= count * sizeof(*visits) + referrer_bytes);

    for (i = 0; i < count; i++) {
        if (visits[i].referrer_len == 0) {
            assert_null(visits[i].referrer);
            continue;
        }
        assert_ptr_equal(visits[i].referrer, bytes + used);
        used += visits[i].referrer_len;
    }
    assert_int_equal(used, referrer_bytes);
}

static void take_empty_returns_nothing(void **state)
{
    struct visits *visits = visits_create(2, 100, &test_key);
    struct store_visit *out = (void *)1;
    size_t count = 99;

    assert_non_null(visits);
    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 0);
    assert_null(out);
    visits_destroy(visits);
}

static void counts_aggregate_per_key(void **state)
{
    struct visits *visits = visits_create(2, 100, &test_key);
    struct store_visit *out = NULL;
    size_t count = 0;
    int i;

    for (i = 0; i < 5; i++)
        visits_record(visits, 0, 7, 100, "", 0);
    for (i = 0; i < 3; i++)
        visits_record(visits, 1, 7, 100, "", 0);
    visits_record(visits, 0, 7, 101, "", 0);
    visits_record(visits, 0, 7, 100, "example.org", 11);
    visits_record(visits, 1, 8, 100, "example.org", 11);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    /* Each thread keeps its own entry for (7, 100, ""). */
    assert_int_equal(count, 5);
    assert_int_equal(find(out, count, 7, 100, ""), 8);
    assert_int_equal(find(out, count, 7, 101, ""), 1);
    assert_int_equal(find(out, count, 7, 100, "example.org"), 1);
    assert_int_equal(find(out, count, 8, 100, "example.org"), 1);
    assert_int_equal(find(out, count, 8, 100, ""), 0);
    free(out);

    /* Taking resets the counters. */
    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 0);
    visits_destroy(visits);
}

static void ids_that_share_bytes_stay_apart(void **state)
{
    struct visits *visits = visits_create(1, 100, &test_key);
    struct store_visit *out = NULL;
    size_t count = 0;

    /* Ids and days that only differ in high bytes, and a host that is a
     * prefix of another, are distinct keys. */
    visits_record(visits, 0, 1, 5, "a.example", 9);
    visits_record(visits, 0, INT64_C(1) << 40 | 1, 5, "a.example", 9);
    visits_record(visits, 0, 1, 5 | 1 << 20, "a.example", 9);
    visits_record(visits, 0, 1, 5, "a.example.org", 13);
    visits_record(visits, 0, 1, 5, "a.example.org", 13);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 4);
    assert_int_equal(find(out, count, 1, 5, "a.example"), 1);
    assert_int_equal(find(out, count, INT64_C(1) << 40 | 1, 5, "a.example"), 1);
    assert_int_equal(find(out, count, 1, 5 | 1 << 20, "a.example"), 1);
    assert_int_equal(find(out, count, 1, 5, "a.example.org"), 2);
    free(out);
    visits_destroy(visits);
}

static void ids_below_one_are_ignored(void **state)
{
    struct visits *visits = visits_create(1, 100, &test_key);
    struct store_visit *out = (void *)1;
    size_t count = 99;

    visits_record(visits, 0, 0, 5, "", 0);
    visits_record(visits, 0, -3, 5, "example.org", 11);
    visits_record(visits, 0, INT64_MIN, 5, "", 0);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 0);
    assert_null(out);
    assert_int_equal(visits_dropped(visits), 0);
    visits_destroy(visits);
}

static void take_returns_one_block_with_referrers(void **state)
{
    struct visits *visits = visits_create(3, 100, &test_key);
    struct store_visit *out = NULL;
    char host[STORE_HOST_MAX + 1];
    size_t count = 0;

    /* The caller's buffer is reused after each call, as redirect.c does. */
    strcpy(host, "news.example.org");
    visits_record(visits, 0, 1, 9, host, strlen(host));
    strcpy(host, "mail.example.net");
    visits_record(visits, 1, 2, 9, host, strlen(host));
    visits_record(visits, 2, 3, 9, "", 0);
    strcpy(host, "x.example");
    visits_record(visits, 2, 4, 9, host, strlen(host));
    memset(host, '!', sizeof(host));

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 4);
    assert_block_layout(out, count, 16 + 16 + 9);
    assert_int_equal(find(out, count, 1, 9, "news.example.org"), 1);
    assert_int_equal(find(out, count, 2, 9, "mail.example.net"), 1);
    assert_int_equal(find(out, count, 3, 9, ""), 1);
    assert_int_equal(find(out, count, 4, 9, "x.example"), 1);
    free(out);

    /* A recycled table lays out its block the same way. */
    visits_record(visits, 1, 5, 9, "b.example", 9);
    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 1);
    assert_block_layout(out, count, 9);
    assert_int_equal(find(out, count, 5, 9, "b.example"), 1);
    free(out);
    visits_destroy(visits);
}

static void long_referrer_is_cut_to_host_max(void **state)
{
    struct visits *visits = visits_create(1, 100, &test_key);
    char host[STORE_HOST_MAX + 20];
    struct store_visit *out = NULL;
    size_t count = 0;

    memset(host, 'h', sizeof(host));
    visits_record(visits, 0, 1, 9, host, sizeof(host));
    /* The same first STORE_HOST_MAX bytes: the same key. */
    visits_record(visits, 0, 1, 9, host, STORE_HOST_MAX);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(out[0].referrer_len, STORE_HOST_MAX);
    assert_memory_equal(out[0].referrer, host, STORE_HOST_MAX);
    assert_int_equal(out[0].count, 2);
    assert_block_layout(out, count, STORE_HOST_MAX);
    free(out);
    visits_destroy(visits);
}

static void many_keys_grow_and_recycle(void **state)
{
    struct visits *visits = visits_create(1, 100000, &test_key);
    struct store_visit *out = NULL;
    size_t count = 0;
    char host[32];
    int round, i, len;
    uint64_t sum;

    for (round = 0; round < 3; round++) {
        for (i = 0; i < 20000; i++) {
            visits_record(visits, 0, i + 1, 7, "", 0);
            if (i % 2 == 0)
                visits_record(visits, 0, i + 1, 7, "", 0);
            if (i % 100 == 0) {
                len = snprintf(host, sizeof(host), "h%d.example", i);
                visits_record(visits, 0, i + 1, 7, host, (size_t)len);
            }
        }
        assert_int_equal(visits_take(visits, &out, &count), 0);
        assert_int_equal(count, 20200);
        sum = 0;
        for (i = 0; i < (int)count; i++)
            sum += out[i].count;
        assert_int_equal(sum, 30200);
        assert_int_equal(find(out, count, 1, 7, ""), 2);
        assert_int_equal(find(out, count, 2, 7, ""), 1);
        assert_int_equal(find(out, count, 19901, 7, "h19900.example"), 1);
        free(out);
    }
    assert_int_equal(visits_dropped(visits), 0);
    visits_destroy(visits);
}

static void full_table_drops_referrer_then_visit(void **state)
{
    struct visits *visits = visits_create(1, 2, &test_key);
    struct store_visit *out = NULL;
    size_t count = 0;

    visits_record(visits, 0, 1, 1, "", 0);
    visits_record(visits, 0, 2, 1, "", 0);
    /* Full: the referrer is dropped and the (1, 1, "") entry counts it. */
    visits_record(visits, 0, 1, 1, "example.org", 11);
    /* Full and no entry to merge into: dropped and counted. */
    visits_record(visits, 0, 3, 1, "", 0);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(find(out, count, 1, 1, ""), 2);
    assert_int_equal(find(out, count, 2, 1, ""), 1);
    assert_block_layout(out, count, 0);
    assert_int_equal(visits_dropped(visits), 1);
    free(out);
    visits_destroy(visits);
}

static void join_copies_entries_and_referrers(void **state)
{
    struct visits *visits = visits_create(2, 100, &test_key);
    struct store_visit *first = NULL, *second = NULL, *joined;
    struct store_visit outside[2];
    size_t first_count = 0, second_count = 0;
    char host[] = "c.example";

    visits_record(visits, 0, 1, 9, "a.example", 9);
    visits_record(visits, 1, 2, 9, "", 0);
    assert_int_equal(visits_take(visits, &first, &first_count), 0);
    visits_record(visits, 0, 1, 9, "a.example", 9);
    visits_record(visits, 1, 3, 10, "bb.example", 10);
    assert_int_equal(visits_take(visits, &second, &second_count), 0);
    assert_int_equal(first_count, 2);
    assert_int_equal(second_count, 2);

    joined = visits_join(first, first_count, second, second_count);
    assert_non_null(joined);
    /* The joined block has its own copy of the bytes, so the sources can be freed. */
    memset(first, 0, first_count * sizeof(*first) + 9);
    free(first);
    free(second);
    assert_block_layout(joined, 4, 9 + 9 + 10);
    assert_int_equal(find(joined, 4, 1, 9, "a.example"), 2);
    assert_int_equal(find(joined, 4, 2, 9, ""), 1);
    assert_int_equal(find(joined, 4, 3, 10, "bb.example"), 1);

    /* Entries from anywhere, joined onto an earlier join, keep their order. */
    outside[0] = (struct store_visit){
        .link_id = 4, .count = 5, .referrer = host, .referrer_len = 9, .day = 11};
    outside[1] = (struct store_visit){.link_id = 5, .count = 6, .day = 11};
    first = visits_join(joined, 4, outside, 2);
    assert_non_null(first);
    host[0] = 'x';
    free(joined);
    assert_block_layout(first, 6, 9 + 9 + 10 + 9);
    assert_int_equal(first[4].link_id, 4);
    assert_memory_equal(first[4].referrer, "c.example", 9);
    assert_int_equal(first[5].link_id, 5);
    assert_int_equal(first[5].count, 6);
    assert_int_equal(find(first, 6, 1, 9, "a.example"), 2);
    free(first);

    /* Joining nothing returns nothing. */
    assert_null(visits_join(NULL, 0, NULL, 0));
    visits_destroy(visits);
}

static void referrer_host_extraction(void **state)
{
    static const struct {
        const char *value;
        const char *host;
    } cases[] = {
        {"https://Example.ORG/path?q=1", "example.org"},
        {"http://example.org", "example.org"},
        {"http://user:pw@example.org:8080/x", "example.org"},
        {"https://[2001:db8::1]:443/", "[2001:db8::1]"},
        {"HTTPS://www.Example.com#frag", "www.example.com"},
        {"android-app://com.example", ""},
        {"https://", ""},
        {"https:///path", ""},
        {"", ""},
        {"https://exa mple.org/", ""},
    };
    char host[STORE_HOST_MAX + 1];
    size_t i, len;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = visits_referrer_host(cases[i].value, strlen(cases[i].value), host);
        if (len == 0)
            host[0] = '\0';
        assert_string_equal(host, cases[i].host);
        assert_int_equal(len, strlen(cases[i].host));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(take_empty_returns_nothing),
        cmocka_unit_test(counts_aggregate_per_key),
        cmocka_unit_test(ids_that_share_bytes_stay_apart),
        cmocka_unit_test(ids_below_one_are_ignored),
        cmocka_unit_test(take_returns_one_block_with_referrers),
        cmocka_unit_test(long_referrer_is_cut_to_host_max),
        cmocka_unit_test(many_keys_grow_and_recycle),
        cmocka_unit_test(full_table_drops_referrer_then_visit),
        cmocka_unit_test(join_copies_entries_and_referrers),
        cmocka_unit_test(referrer_host_extraction),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
