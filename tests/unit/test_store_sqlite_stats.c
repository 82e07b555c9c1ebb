/*
 * Tests of visit counts in the SQLite store: store_add_visits, which adds
 * totals, daily counts and referrer counts, and store_link_stats, which
 * reads them back. The fixture and its fault injection are described in
 * store_fixture.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"

#include "store_fixture.h"

#define DAY0 19700 /* days since 1970, in 2023 */

/* Fills an entry whose referrer points at the caller's string, NULL for "". */
static void fill_visit(struct store_visit *visit, int64_t link_id, int32_t day, uint64_t count,
                       const char *referrer)
{
    memset(visit, 0xee, sizeof(*visit));
    visit->link_id = link_id;
    visit->day = day;
    visit->count = count;
    visit->referrer_len = (uint32_t)strlen(referrer);
    visit->referrer = visit->referrer_len > 0 ? referrer : NULL;
}

static void add_visits(struct store *store, struct store_visit *visits, size_t count)
{
    int rc = store_add_visits(store, visits, count);

    if (rc != 0)
        fail_msg("store_add_visits returned %d: %s", rc, store_last_error(store));
}

static int64_t visits_of(struct store *store, const char *code)
{
    struct store_link link;
    int64_t visits;

    assert_int_equal(get_link(store, code, &link), 0);
    visits = link.visits;
    store_link_clear(&link);
    return visits;
}

/* Statistics of one link read by read_stats. */
struct stats {
    struct store_day_count days[16];
    size_t days_len;
    struct store_host_count hosts[16];
    size_t hosts_len;
};

static void read_stats(struct store *store, int64_t link_id, int32_t from_day, int32_t to_day,
                       size_t days_cap, size_t hosts_cap, struct stats *stats)
{
    int rc;

    memset(stats, 0xee, sizeof(*stats));
    rc = store_link_stats(store, link_id, from_day, to_day, stats->days, days_cap, &stats->days_len,
                          stats->hosts, hosts_cap, &stats->hosts_len);
    if (rc != 0)
        fail_msg("store_link_stats returned %d: %s", rc, store_last_error(store));
}

static void add_visits_accumulates_across_calls_and_days(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[3];
    struct stats stats;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");
    create_link(store, 2, "b", "https://example.com/b");

    fill_visit(&visits[0], 1, DAY0, 2, "");
    fill_visit(&visits[1], 1, DAY0 + 1, 3, "");
    fill_visit(&visits[2], 2, DAY0, 1, "");
    add_visits(store, visits, 3);
    fill_visit(&visits[0], 1, DAY0, 5, "");
    fill_visit(&visits[1], 1, DAY0, 1, ""); /* the same day twice in one call */
    add_visits(store, visits, 2);

    assert_int_equal(visits_of(store, "a"), 11);
    assert_int_equal(visits_of(store, "b"), 1);
    read_stats(store, 1, DAY0, DAY0 + 1, 16, 16, &stats);
    assert_int_equal(stats.days_len, 2);
    assert_int_equal(stats.days[0].day, DAY0);
    assert_int_equal(stats.days[0].count, 8);
    assert_int_equal(stats.days[1].day, DAY0 + 1);
    assert_int_equal(stats.days[1].count, 3);
    assert_int_equal(stats.hosts_len, 0);

    assert_int_equal(store_add_visits(store, visits, 0), 0);
    assert_int_equal(visits_of(store, "a"), 11);
    store_close(store);
}

static void add_visits_skips_unknown_ids(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[6];
    struct store_op op;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "live", "https://example.com/live");
    create_link(store, 3, "gone", "https://example.com/gone");
    fill_delete(&op, "gone", 1700000000000);
    assert_int_equal(store_apply(store, &op, 1), 0);

    /* Unknown ids before, between and after the known ones, with and
     * without a referrer, in one transaction with the known ones. */
    fill_visit(&visits[0], 99, DAY0, 7, "example.org");
    fill_visit(&visits[1], 1, DAY0, 2, "example.org");
    fill_visit(&visits[2], 2, DAY0, 9, "");
    fill_visit(&visits[3], 3, DAY0, 4, "example.org");
    fill_visit(&visits[4], INT64_MAX, DAY0, 5, "example.org");
    fill_visit(&visits[5], 2, DAY0 + 1, 1, "example.net");
    add_visits(store, visits, 6);

    assert_int_equal(visits_of(store, "live"), 2);
    assert_int_equal(visits_of(store, "gone"), 4);
    assert_int_equal(query_integer(fixture->path, "SELECT sum(count) FROM visits_daily"), 6);
    assert_int_equal(query_integer(fixture->path, "SELECT sum(count) FROM visits_referrers"), 6);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_daily"), 2);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_daily"
                                                  " WHERE link_id NOT IN (1, 3)"),
                     0);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"
                                                  " WHERE link_id NOT IN (1, 3)"),
                     0);

    /* Only unknown ids: the flush commits and adds nothing. */
    fill_visit(&visits[0], 2, DAY0, 7, "example.org");
    fill_visit(&visits[1], 4, DAY0, 7, "");
    add_visits(store, visits, 2);
    assert_int_equal(query_integer(fixture->path, "SELECT sum(count) FROM visits_daily"), 6);
    store_close(store);
}

static void add_visits_counts_referrers_only_when_given(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[4];
    struct stats stats;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");
    fill_visit(&visits[0], 1, DAY0, 10, "");
    fill_visit(&visits[1], 1, DAY0, 3, "news.example.org");
    fill_visit(&visits[2], 1, DAY0 + 1, 2, "news.example.org");
    fill_visit(&visits[3], 1, DAY0 + 1, 1, "mail.example.net");
    add_visits(store, visits, 4);

    assert_int_equal(visits_of(store, "a"), 16);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"), 3);
    assert_int_equal(
        query_integer(fixture->path, "SELECT count(*) FROM visits_referrers WHERE host = ''"), 0);

    read_stats(store, 1, DAY0, DAY0 + 1, 16, 16, &stats);
    assert_int_equal(stats.days_len, 2);
    assert_int_equal(stats.days[0].count, 13);
    assert_int_equal(stats.days[1].count, 3);
    assert_int_equal(stats.hosts_len, 2);
    assert_string_equal(stats.hosts[0].host, "news.example.org");
    assert_int_equal(stats.hosts[0].count, 5);
    assert_string_equal(stats.hosts[1].host, "mail.example.net");
    assert_int_equal(stats.hosts[1].count, 1);
    store_close(store);
}

static void add_visits_reads_referrer_by_length(void **state)
{
    struct fixture *fixture = *state;
    /* Hosts packed without separators, as in a block from visits_take. */
    const char packed[] = "a.example.orgb.example.neta.example.org.evil";
    struct store_visit visits[3];
    struct stats stats;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");
    fill_visit(&visits[0], 1, DAY0, 1, "");
    visits[0].referrer = packed;
    visits[0].referrer_len = 13;
    fill_visit(&visits[1], 1, DAY0, 2, "");
    visits[1].referrer = packed + 13;
    visits[1].referrer_len = 13;
    fill_visit(&visits[2], 1, DAY0, 4, "");
    visits[2].referrer = packed + 26; /* the first 13 bytes of "a.example.org.evil" */
    visits[2].referrer_len = 13;
    add_visits(store, visits, 3);

    read_stats(store, 1, DAY0, DAY0, 16, 16, &stats);
    assert_int_equal(stats.hosts_len, 2);
    assert_string_equal(stats.hosts[0].host, "a.example.org");
    assert_int_equal(stats.hosts[0].count, 5);
    assert_string_equal(stats.hosts[1].host, "b.example.net");
    assert_int_equal(stats.hosts[1].count, 2);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"), 2);
    store_close(store);
}

/* Entries for add_visits_ignores_entry_order, all for one link. */
static const struct {
    int32_t day_offset;
    uint64_t count;
    const char *referrer;
} order_cases[] = {
    {1, 3, "b.example"}, {0, 1, ""},          {1, 2, ""},          {0, 5, "a.example.org"},
    {0, 4, "a.example"}, {1, 6, "b.example"}, {0, 7, "a.example"}, {2, 1, "a.example"},
    {0, 2, ""},          {1, 9, "b"},
};

#define ORDER_CASES (sizeof(order_cases) / sizeof(order_cases[0]))

static void add_visits_ignores_entry_order(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[ORDER_CASES];
    size_t order[ORDER_CASES];
    int64_t link_id, orders = 0;
    struct stats first, stats;
    struct store *store;
    char code[32];
    size_t i, j;

    store = open_store(fixture->path);
    for (link_id = 1; link_id <= 2 * (int64_t)ORDER_CASES; link_id++) {
        (void)snprintf(code, sizeof(code), "c%" PRId64, link_id);
        create_link(store, link_id, code, "https://example.com/c");
    }

    /* Every rotation of the entries, forwards and backwards, each for its own link. */
    link_id = 0;
    for (i = 0; i < 2 * ORDER_CASES; i++) {
        link_id++;
        for (j = 0; j < ORDER_CASES; j++) {
            order[j] = (i + j) % ORDER_CASES;
            if (i >= ORDER_CASES)
                order[j] = ORDER_CASES - 1 - order[j];
        }
        for (j = 0; j < ORDER_CASES; j++)
            fill_visit(&visits[j], link_id, DAY0 + order_cases[order[j]].day_offset,
                       order_cases[order[j]].count, order_cases[order[j]].referrer);
        add_visits(store, visits, ORDER_CASES);
        orders++;
    }

    read_stats(store, 1, DAY0, DAY0 + 2, 16, 16, &first);
    assert_int_equal(first.days_len, 3);
    assert_int_equal(first.days[0].count, 19);
    assert_int_equal(first.days[1].count, 20);
    assert_int_equal(first.days[2].count, 1);
    assert_int_equal(first.hosts_len, 4);
    assert_string_equal(first.hosts[0].host, "a.example");
    assert_int_equal(first.hosts[0].count, 12);
    assert_string_equal(first.hosts[1].host, "b");
    assert_int_equal(first.hosts[1].count, 9);
    assert_string_equal(first.hosts[2].host, "b.example");
    assert_int_equal(first.hosts[2].count, 9);
    assert_string_equal(first.hosts[3].host, "a.example.org");
    assert_int_equal(first.hosts[3].count, 5);
    for (link_id = 2; link_id <= orders; link_id++) {
        read_stats(store, link_id, DAY0, DAY0 + 2, 16, 16, &stats);
        assert_int_equal(stats.days_len, first.days_len);
        assert_memory_equal(stats.days, first.days, first.days_len * sizeof(first.days[0]));
        assert_int_equal(stats.hosts_len, first.hosts_len);
        for (i = 0; i < first.hosts_len; i++) {
            assert_string_equal(stats.hosts[i].host, first.hosts[i].host);
            assert_int_equal(stats.hosts[i].count, first.hosts[i].count);
        }
    }

    /* One row per key, whatever the order: 3 days, 5 (day, host) pairs. */
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_daily"), 3 * orders);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"),
                     5 * orders);
    store_close(store);
}

static void add_visits_merges_equal_keys(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[6];
    struct stats stats;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");

    /* Two I/O threads count the same key separately. */
    fill_visit(&visits[0], 1, DAY0, 2, "");
    fill_visit(&visits[1], 1, DAY0, 3, "h.example");
    fill_visit(&visits[2], 1, DAY0, 4, "");
    fill_visit(&visits[3], 1, DAY0, 1, "h.example");
    /* Counts that add up to exactly the largest SQL INTEGER. */
    fill_visit(&visits[4], 1, DAY0 + 1, (uint64_t)INT64_MAX - 5, "");
    fill_visit(&visits[5], 1, DAY0 + 1, 5, "");
    add_visits(store, visits, 6);

    read_stats(store, 1, DAY0, DAY0 + 1, 16, 16, &stats);
    assert_int_equal(stats.days_len, 2);
    assert_int_equal(stats.days[0].count, 10);
    assert_int_equal(stats.days[1].count, INT64_MAX);
    assert_int_equal(stats.hosts_len, 1);
    assert_string_equal(stats.hosts[0].host, "h.example");
    assert_int_equal(stats.hosts[0].count, 4);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"), 1);
    store_close(store);
}

static void add_visits_never_wraps_a_sum(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[3];
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");
    fill_visit(&visits[0], 1, DAY0 + 1, 3, "");
    /* A sum past INT64_MAX cannot be stored: the flush fails as a whole
     * instead of adding a wrapped, negative count. */
    fill_visit(&visits[1], 1, DAY0, (uint64_t)INT64_MAX, "h.example");
    fill_visit(&visits[2], 1, DAY0, 1, "h.example");
    assert_int_equal(store_add_visits(store, visits, 3), -EINVAL);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_daily"), 0);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"), 0);

    /* The connection still works. The failed call sorted the entries, so
     * the first one is filled again. */
    fill_visit(&visits[0], 1, DAY0 + 1, 3, "");
    add_visits(store, visits, 1);
    assert_int_equal(visits_of(store, "a"), 3);
    store_close(store);
}

static void add_visits_rejects_invalid_entries(void **state)
{
    struct fixture *fixture = *state;
    char long_host[STORE_HOST_MAX + 2];
    struct store_visit visits[2];
    struct store *store;
    int i;

    memset(long_host, 'h', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");

    /* The first entry is valid, and the call adds nothing because of the second. */
    for (i = 0; i < 7; i++) {
        fill_visit(&visits[0], 1, DAY0, 1, "");
        fill_visit(&visits[1], 1, DAY0, 1, "");
        switch (i) {
        case 0:
            visits[1].count = 0;
            break;
        case 1:
            visits[1].count = (uint64_t)INT64_MAX + 1;
            break;
        case 2:
            visits[1].link_id = 0;
            break;
        case 3:
            visits[1].link_id = -1;
            break;
        case 4:
            visits[1].link_id = INT64_MIN;
            break;
        case 5:
            visits[1].referrer = long_host;
            visits[1].referrer_len = STORE_HOST_MAX + 1;
            break;
        case 6:
            visits[1].referrer = NULL;
            visits[1].referrer_len = 1;
            break;
        }
        if (store_add_visits(store, visits, 2) != -EINVAL)
            fail_msg("case %d: store_add_visits did not return -EINVAL", i);
    }
    assert_int_equal(store_add_visits(store, NULL, 1), -EINVAL);

    assert_int_equal(visits_of(store, "a"), 0);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_daily"), 0);

    /* The limits themselves are valid. */
    fill_visit(&visits[0], 1, DAY0, (uint64_t)INT64_MAX, long_host + 1);
    add_visits(store, visits, 1);
    assert_int_equal(visits_of(store, "a"), INT64_MAX);
    store_close(store);
}

static void add_visits_full_disk_adds_nothing(void **state)
{
    struct fixture *fixture = *state;
    enum { ENTRIES = 400 };
    static struct store_visit visits[ENTRIES];
    static char hosts[ENTRIES][64];
    struct store *store;
    sqlite3 *db;
    int i;

    store = open_store_with_handle(fixture->path, &db);
    create_link(store, 1, "a", "https://example.com/a");
    create_link(store, 2, "b", "https://example.com/b");
    for (i = 0; i < ENTRIES; i++) {
        (void)snprintf(hosts[i], sizeof(hosts[i]), "host-%d.subdomain.example.org", i);
        fill_visit(&visits[i], i % 2 == 0 ? 1 : 2, DAY0 + i, 1, hosts[i]);
    }

    limit_pages(db, 1);
    assert_int_equal(store_add_visits(store, visits, ENTRIES), -ENOSPC);
    assert_contains(store_last_error(store), "database or disk is full");
    assert_int_equal(visits_of(store, "a"), 0);
    assert_int_equal(visits_of(store, "b"), 0);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_daily"), 0);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"), 0);

    /* The failed call may have reordered the entries; the retry adds them all. */
    unlimit_pages(db);
    add_visits(store, visits, ENTRIES);
    assert_int_equal(visits_of(store, "a"), ENTRIES / 2);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM visits_referrers"),
                     ENTRIES);
    store_close(store);
}

static void link_stats_returns_days_in_range(void **state)
{
    struct fixture *fixture = *state;
    const int32_t days[] = {DAY0 + 10, DAY0 + 12, DAY0 + 15, DAY0 + 20};
    struct store_visit visits[5];
    struct stats stats;
    struct store *store;
    size_t i;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");
    create_link(store, 2, "b", "https://example.com/b");
    for (i = 0; i < 4; i++)
        fill_visit(&visits[i], 1, days[i], i + 1, "");
    fill_visit(&visits[4], 2, DAY0 + 13, 50, "");
    add_visits(store, visits, 5);

    /* Days without visits are left out, and so are other links' days. */
    read_stats(store, 1, DAY0 + 11, DAY0 + 15, 16, 16, &stats);
    assert_int_equal(stats.days_len, 2);
    assert_int_equal(stats.days[0].day, DAY0 + 12);
    assert_int_equal(stats.days[0].count, 2);
    assert_int_equal(stats.days[1].day, DAY0 + 15);
    assert_int_equal(stats.days[1].count, 3);

    read_stats(store, 1, DAY0 + 12, DAY0 + 12, 16, 16, &stats);
    assert_int_equal(stats.days_len, 1);
    assert_int_equal(stats.days[0].count, 2);

    read_stats(store, 1, DAY0 + 16, DAY0 + 19, 16, 16, &stats);
    assert_int_equal(stats.days_len, 0);
    assert_int_equal(stats.hosts_len, 0);

    read_stats(store, 1, DAY0 + 20, DAY0 + 10, 16, 16, &stats); /* from after to */
    assert_int_equal(stats.days_len, 0);
    assert_int_equal(stats.hosts_len, 0);

    read_stats(store, 99, DAY0, DAY0 + 30, 16, 16, &stats);
    assert_int_equal(stats.days_len, 0);

    /* A short array gets the earliest days. */
    read_stats(store, 1, DAY0, DAY0 + 30, 3, 16, &stats);
    assert_int_equal(stats.days_len, 3);
    assert_int_equal(stats.days[2].day, DAY0 + 15);
    read_stats(store, 1, DAY0, DAY0 + 30, 0, 16, &stats);
    assert_int_equal(stats.days_len, 0);
    store_close(store);
}

static void link_stats_orders_hosts_by_count_then_host(void **state)
{
    struct fixture *fixture = *state;
    struct store_visit visits[7];
    struct stats stats;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "a", "https://example.com/a");
    fill_visit(&visits[0], 1, DAY0, 3, "b.example");
    fill_visit(&visits[1], 1, DAY0 + 1, 2, "b.example");
    fill_visit(&visits[2], 1, DAY0, 5, "a.example");
    fill_visit(&visits[3], 1, DAY0 + 2, 9, "c.example");
    fill_visit(&visits[4], 1, DAY0 + 2, 1, "d.example");
    fill_visit(&visits[5], 1, DAY0 + 3, 100, "d.example"); /* outside the range */
    fill_visit(&visits[6], 1, DAY0 - 1, 100, "a.example"); /* outside the range */
    add_visits(store, visits, 7);

    read_stats(store, 1, DAY0, DAY0 + 2, 16, 16, &stats);
    assert_int_equal(stats.hosts_len, 4);
    assert_string_equal(stats.hosts[0].host, "c.example");
    assert_int_equal(stats.hosts[0].count, 9);
    assert_string_equal(stats.hosts[1].host, "a.example");
    assert_int_equal(stats.hosts[1].count, 5);
    assert_string_equal(stats.hosts[2].host, "b.example");
    assert_int_equal(stats.hosts[2].count, 5);
    assert_string_equal(stats.hosts[3].host, "d.example");
    assert_int_equal(stats.hosts[3].count, 1);

    read_stats(store, 1, DAY0, DAY0 + 2, 16, 2, &stats);
    assert_int_equal(stats.hosts_len, 2);
    assert_string_equal(stats.hosts[0].host, "c.example");
    assert_string_equal(stats.hosts[1].host, "a.example");

    read_stats(store, 1, DAY0 + 3, DAY0 + 3, 16, 16, &stats);
    assert_int_equal(stats.hosts_len, 1);
    assert_string_equal(stats.hosts[0].host, "d.example");
    assert_int_equal(stats.hosts[0].count, 100);
    store_close(store);
}

static void link_stats_rejects_invalid_arguments(void **state)
{
    struct fixture *fixture = *state;
    struct store_day_count days[1];
    struct store_host_count hosts[1];
    size_t days_len = 7;
    size_t hosts_len = 7;
    struct store *store;

    store = open_store(fixture->path);
    assert_int_equal(store_link_stats(store, 1, DAY0, DAY0, days, 1, NULL, hosts, 1, &hosts_len),
                     -EINVAL);
    assert_int_equal(store_link_stats(store, 1, DAY0, DAY0, days, 1, &days_len, hosts, 1, NULL),
                     -EINVAL);
    assert_int_equal(
        store_link_stats(store, 1, DAY0, DAY0, NULL, 1, &days_len, hosts, 1, &hosts_len), -EINVAL);
    assert_int_equal(
        store_link_stats(store, 1, DAY0, DAY0, days, 1, &days_len, NULL, 1, &hosts_len), -EINVAL);

    /* No arrays at all is a valid request for nothing. */
    assert_int_equal(
        store_link_stats(store, 1, DAY0, DAY0, NULL, 0, &days_len, NULL, 0, &hosts_len), 0);
    assert_int_equal(days_len, 0);
    assert_int_equal(hosts_len, 0);
    store_close(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(add_visits_accumulates_across_calls_and_days, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(add_visits_skips_unknown_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(add_visits_counts_referrers_only_when_given, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(add_visits_reads_referrer_by_length, setup, teardown),
        cmocka_unit_test_setup_teardown(add_visits_ignores_entry_order, setup, teardown),
        cmocka_unit_test_setup_teardown(add_visits_merges_equal_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(add_visits_never_wraps_a_sum, setup, teardown),
        cmocka_unit_test_setup_teardown(add_visits_rejects_invalid_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(add_visits_full_disk_adds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(link_stats_returns_days_in_range, setup, teardown),
        cmocka_unit_test_setup_teardown(link_stats_orders_hosts_by_count_then_host, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(link_stats_rejects_invalid_arguments, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
