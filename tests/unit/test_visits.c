/* Tests of the per-thread visit counters (src/app/visits.c). */
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

/* Returns the count taken for (code, day, referrer), 0 when absent. */
static uint64_t find(const struct store_visit *visits, size_t count, const char *code, int32_t day,
                     const char *referrer)
{
    uint64_t total = 0;
    size_t i;

    for (i = 0; i < count; i++) {
        if (strcmp(visits[i].code, code) == 0 && visits[i].day == day &&
            strcmp(visits[i].referrer, referrer) == 0) {
            assert_int_equal(visits[i].code_len, strlen(code));
            assert_int_equal(visits[i].referrer_len, strlen(referrer));
            total += visits[i].count;
        }
    }
    return total;
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
        visits_record(visits, 0, "abc", 3, 100, "", 0);
    for (i = 0; i < 3; i++)
        visits_record(visits, 1, "abc", 3, 100, "", 0);
    visits_record(visits, 0, "abc", 3, 101, "", 0);
    visits_record(visits, 0, "abc", 3, 100, "example.org", 11);
    visits_record(visits, 1, "xyz", 3, 100, "example.org", 11);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(find(out, count, "abc", 100, ""), 8);
    assert_int_equal(find(out, count, "abc", 101, ""), 1);
    assert_int_equal(find(out, count, "abc", 100, "example.org"), 1);
    assert_int_equal(find(out, count, "xyz", 100, "example.org"), 1);
    free(out);

    /* Taking resets the counters. */
    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 0);
    visits_destroy(visits);
}

static void many_keys_grow_and_recycle(void **state)
{
    struct visits *visits = visits_create(1, 100000, &test_key);
    struct store_visit *out = NULL;
    size_t count = 0;
    char code[16];
    int round, i, len;
    uint64_t sum;

    for (round = 0; round < 3; round++) {
        for (i = 0; i < 20000; i++) {
            len = snprintf(code, sizeof(code), "c%d", i);
            visits_record(visits, 0, code, (size_t)len, 7, "", 0);
            if (i % 2 == 0)
                visits_record(visits, 0, code, (size_t)len, 7, "", 0);
        }
        assert_int_equal(visits_take(visits, &out, &count), 0);
        assert_int_equal(count, 20000);
        sum = 0;
        for (i = 0; i < (int)count; i++)
            sum += out[i].count;
        assert_int_equal(sum, 30000);
        assert_int_equal(find(out, count, "c0", 7, ""), 2);
        assert_int_equal(find(out, count, "c1", 7, ""), 1);
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

    visits_record(visits, 0, "a", 1, 1, "", 0);
    visits_record(visits, 0, "b", 1, 1, "", 0);
    /* Full: the referrer is dropped and the (a, 1, "") entry counts it. */
    visits_record(visits, 0, "a", 1, 1, "example.org", 11);
    /* Full and no entry to merge into: dropped and counted. */
    visits_record(visits, 0, "c", 1, 1, "", 0);

    assert_int_equal(visits_take(visits, &out, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(find(out, count, "a", 1, ""), 2);
    assert_int_equal(find(out, count, "b", 1, ""), 1);
    assert_int_equal(visits_dropped(visits), 1);
    free(out);
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
        cmocka_unit_test(many_keys_grow_and_recycle),
        cmocka_unit_test(full_table_drops_referrer_then_visit),
        cmocka_unit_test(referrer_host_extraction),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
