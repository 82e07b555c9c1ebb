/*
 * Tests of bulk import (store_import_links) and the scan for export
 * (store_scan_links) in the SQLite store: ids from the shared counter,
 * stored fields, taken codes, invalid links, a failed batch that leaves no
 * trace, id order and the snapshot of a scan. The fixture and its fault
 * injection are described in store_fixture.h.
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

#include "store/sqlite_internal.h"
#include "store/store.h"

#include "store_fixture.h"

#define T0 1700000000000 /* ms, a time in 2023 that the tests count from */

/* Fills an imported link: an alias without an id. url must outlive the link. */
static void fill_import(struct store_link *link, const char *code, const char *url)
{
    fill_link(link, 0, code, url, strlen(url));
    link->created_at = T0;
    link->is_alias = true;
}

static void import_batch(struct store *store, struct store_link *links, int *results, size_t count)
{
    size_t i;
    int rc;

    for (i = 0; i < count; i++)
        results[i] = 1; /* neither 0 nor an errno, so a result left unset fails the checks */
    rc = store_import_links(store, links, results, count);
    if (rc != 0)
        fail_msg("store_import_links returned %d: %s", rc, store_last_error(store));
}

static void import_takes_ids_from_counter(void **state)
{
    struct fixture *fixture = *state;
    struct store_link links[3];
    int results[3];
    struct store *store;
    uint64_t first = 0;

    store = open_store(fixture->path);
    assert_int_equal(store_reserve_ids(store, 5, &first), 0);
    assert_int_equal(first, 1);

    fill_import(&links[0], "one", "https://example.com/1");
    fill_import(&links[1], "two", "https://example.com/2");
    fill_import(&links[2], "three", "https://example.com/3");
    import_batch(store, links, results, 3);

    assert_int_equal(results[0], 0);
    assert_int_equal(results[1], 0);
    assert_int_equal(results[2], 0);
    assert_int_equal(links[0].id, 6);
    assert_int_equal(links[1].id, 7);
    assert_int_equal(links[2].id, 8);

    /* The next reservation starts after the imported ids. */
    assert_int_equal(store_reserve_ids(store, 1, &first), 0);
    assert_int_equal(first, 9);
    store_close(store);
}

static void import_stores_fields_and_url_hash(void **state)
{
    struct fixture *fixture = *state;
    const char url[] = "https://example.com/a?b=c";
    struct store_link link;
    struct store *store;
    int result;

    store = open_store(fixture->path);
    fill_import(&link, "Alias_1", url);
    link.redirect_status = 302;
    import_batch(store, &link, &result, 1);
    assert_int_equal(result, 0);

    assert_int_equal(get_link(store, "Alias_1", &link), 0);
    assert_string_equal(link.url, url);
    assert_int_equal(link.url_len, strlen(url));
    assert_int_equal(link.created_at, T0);
    assert_int_equal(link.redirect_status, 302);
    assert_true(link.is_alias);
    assert_int_equal(link.expires_at, 0);
    assert_int_equal(link.max_visits, 0);
    assert_int_equal(link.owner_key_id, 0);
    assert_int_equal(link.deleted_at, 0);
    assert_int_equal(link.cache_max_age, -1);
    store_link_clear(&link);

    assert_int_equal(query_integer(fixture->path, "SELECT url_hash FROM links"),
                     expected_url_hash(url, strlen(url)));
    store_close(store);
}

static void import_rejects_taken_codes(void **state)
{
    struct fixture *fixture = *state;
    struct store_link links[5];
    struct store_op op;
    int results[5];
    struct store *store;
    uint64_t first = 0;

    store = open_store(fixture->path);
    assert_int_equal(store_reserve_ids(store, 2, &first), 0);
    create_link(store, 1, "live", "https://example.com/live");
    create_link(store, 2, "gone", "https://example.com/gone");
    fill_delete(&op, "gone", T0);
    assert_int_equal(store_apply(store, &op, 1), 0);
    assert_int_equal(op.result, 0);

    fill_import(&links[0], "live", "https://example.com/new-live");
    fill_import(&links[1], "gone", "https://example.com/new-gone");
    fill_import(&links[2], "twice", "https://example.com/first");
    fill_import(&links[3], "twice", "https://example.com/second");
    fill_import(&links[4], "Twice", "https://example.com/other-case");
    import_batch(store, links, results, 5);

    assert_int_equal(results[0], -EEXIST);
    assert_int_equal(results[1], -EEXIST);
    assert_int_equal(results[2], 0);
    assert_int_equal(results[3], -EEXIST);
    assert_int_equal(results[4], 0);

    /* The first of two equal codes won, and the existing links are unchanged. */
    assert_int_equal(get_link(store, "twice", &links[0]), 0);
    assert_string_equal(links[0].url, "https://example.com/first");
    store_link_clear(&links[0]);
    assert_int_equal(get_link(store, "live", &links[0]), 0);
    assert_string_equal(links[0].url, "https://example.com/live");
    store_link_clear(&links[0]);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 4);
    store_close(store);
}

static void import_rejects_invalid_links_alone(void **state)
{
    struct fixture *fixture = *state;
    struct store_link links[5];
    int results[5];
    struct store *store;

    store = open_store(fixture->path);
    fill_import(&links[0], "ok", "https://example.com/ok");
    fill_import(&links[1], "nourl", "https://example.com/x");
    links[1].url = NULL;
    fill_import(&links[2], "status", "https://example.com/x");
    links[2].redirect_status = 200;
    fill_import(&links[3], "empty", "https://example.com/x");
    links[3].code_len = 0;
    fill_import(&links[4], "age", "https://example.com/x");
    links[4].cache_max_age = -2;
    import_batch(store, links, results, 5);

    assert_int_equal(results[0], 0);
    assert_int_equal(results[1], -EINVAL);
    assert_int_equal(results[2], -EINVAL);
    assert_int_equal(results[3], -EINVAL);
    assert_int_equal(results[4], -EINVAL);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 1);
    store_close(store);
}

static void import_failure_leaves_no_trace(void **state)
{
    struct fixture *fixture = *state;
    enum { BATCH = 20 };
    struct store_link links[BATCH];
    char codes[BATCH][16];
    int results[BATCH];
    struct store_link link;
    struct store *store;
    uint64_t first = 0;
    sqlite3 *db;
    char *url;
    size_t i;

    url = malloc(4001);
    assert_non_null(url);
    memset(url, 'u', 4000);
    memcpy(url, "https://example.com/", 20);
    url[4000] = '\0';
    store = open_store_with_handle(fixture->path, &db);
    assert_int_equal(store_reserve_ids(store, 1, &first), 0);

    /* Room for two more pages, while the batch needs one per URL. */
    limit_pages(db, 2);
    for (i = 0; i < BATCH; i++) {
        (void)snprintf(codes[i], sizeof(codes[i]), "full%zu", i);
        fill_import(&links[i], codes[i], url);
        results[i] = 1;
    }
    assert_int_equal(store_import_links(store, links, results, BATCH), -ENOSPC);
    for (i = 0; i < BATCH; i++) {
        assert_int_equal(results[i], -ENOSPC);
        assert_int_equal(links[i].id, 0);
    }
    assert_contains(store_last_error(store), "database or disk is full");
    assert_int_equal(get_link(store, codes[0], &link), -ENOENT);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 0);
    unlimit_pages(db);

    /* The failed batch took no ids, and the same connection imports once there is room. */
    import_batch(store, links, results, BATCH);
    for (i = 0; i < BATCH; i++)
        assert_int_equal(results[i], 0);
    assert_int_equal(links[0].id, 2);
    assert_int_equal(links[BATCH - 1].id, BATCH + 1);

    store_close(store);
    free(url);
}

static void import_enlarges_page_cache(void **state)
{
    struct fixture *fixture = *state;
    struct store_link link;
    struct store *store;
    sqlite3 *db;
    int result;

    store = open_store_with_handle(fixture->path, &db);
    assert_int_equal(query_connection(db, "PRAGMA cache_size"), -2000);
    fill_import(&link, "cache", "https://example.com/");
    import_batch(store, &link, &result, 1);
    assert_int_equal(result, 0);
    assert_int_equal(query_connection(db, "PRAGMA cache_size"), -65536);

    /* The store's own writes stay durable: synchronous stays FULL (2). */
    assert_int_equal(query_connection(db, "PRAGMA synchronous"), 2);
    store_close(store);
}

static void import_rejects_invalid_arguments(void **state)
{
    struct fixture *fixture = *state;
    struct store_link link;
    struct store *store;
    int result = 1;

    store = open_store(fixture->path);
    fill_import(&link, "x", "https://example.com/");
    assert_int_equal(store_import_links(store, &link, &result, 0), 0);
    assert_int_equal(result, 1);
    assert_int_equal(store_import_links(store, NULL, &result, 1), -EINVAL);
    assert_int_equal(store_import_links(store, &link, NULL, 1), -EINVAL);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 0);
    store_close(store);
}

/* Links seen by a scan, and what the scan's function does. */
struct scan_record {
    int64_t ids[16];
    char codes[16][STORE_CODE_MAX + 1];
    char urls[16][64];
    size_t count;
    size_t stop_after;    /* 0 for never */
    struct store *writer; /* when set, changes the table during the first call */
};

static int record_scanned(const struct store_link *link, void *arg)
{
    struct scan_record *record = arg;
    struct store_op ops[2];

    assert_true(record->count < 16);
    record->ids[record->count] = link->id;
    (void)snprintf(record->codes[record->count], sizeof(record->codes[0]), "%s", link->code);
    (void)snprintf(record->urls[record->count], sizeof(record->urls[0]), "%.*s", (int)link->url_len,
                   link->url);
    record->count++;

    if (record->writer != NULL && record->count == 1) {
        fill_create(&ops[0], 100, "later", "https://example.com/later");
        fill_delete(&ops[1], "c3", T0);
        assert_int_equal(store_apply(record->writer, ops, 2), 0);
        assert_int_equal(ops[0].result, 0);
        assert_int_equal(ops[1].result, 0);
    }
    if (record->stop_after != 0 && record->count == record->stop_after)
        return 7;
    return 0;
}

/* Creates links c1 to c5 with ids 5, 1, 4, 2, 3 and deletes c4. */
static struct store *open_scan_store(const char *path)
{
    static const int64_t ids[] = {5, 1, 4, 2, 3};
    char code[8], url[64];
    struct store_op op;
    struct store *store;
    uint64_t first = 0;
    size_t i;

    store = open_store(path);
    assert_int_equal(store_reserve_ids(store, 5, &first), 0);
    for (i = 0; i < 5; i++) {
        (void)snprintf(code, sizeof(code), "c%zu", i + 1);
        (void)snprintf(url, sizeof(url), "https://example.com/%zu", i + 1);
        create_link(store, ids[i], code, url);
    }
    fill_delete(&op, "c4", T0);
    assert_int_equal(store_apply(store, &op, 1), 0);
    assert_int_equal(op.result, 0);
    return store;
}

static void scan_lists_live_links_by_id(void **state)
{
    struct fixture *fixture = *state;
    struct scan_record record = {0};
    struct store *store;

    store = open_scan_store(fixture->path);
    assert_int_equal(store_scan_links(store, record_scanned, &record), 0);

    assert_int_equal(record.count, 4);
    assert_int_equal(record.ids[0], 1);
    assert_string_equal(record.codes[0], "c2");
    assert_string_equal(record.urls[0], "https://example.com/2");
    assert_int_equal(record.ids[1], 3);
    assert_string_equal(record.codes[1], "c5");
    assert_int_equal(record.ids[2], 4);
    assert_string_equal(record.codes[2], "c3");
    assert_int_equal(record.ids[3], 5);
    assert_string_equal(record.codes[3], "c1");
    assert_string_equal(record.urls[3], "https://example.com/1");
    store_close(store);
}

static void scan_returns_value_that_stopped_it(void **state)
{
    struct fixture *fixture = *state;
    struct scan_record record = {.stop_after = 2};
    struct store *store;

    store = open_scan_store(fixture->path);
    assert_int_equal(store_scan_links(store, record_scanned, &record), 7);
    assert_int_equal(record.count, 2);

    /* The statement was reset, so a second scan starts from the first link. */
    record.count = 0;
    record.stop_after = 0;
    assert_int_equal(store_scan_links(store, record_scanned, &record), 0);
    assert_int_equal(record.count, 4);
    assert_int_equal(record.ids[0], 1);
    store_close(store);
}

static void scan_reads_one_snapshot(void **state)
{
    struct fixture *fixture = *state;
    struct scan_record record = {0};
    struct store *store;

    store = open_scan_store(fixture->path);
    record.writer = open_store(fixture->path);
    assert_int_equal(store_scan_links(store, record_scanned, &record), 0);

    /* The link created and the one deleted during the scan are seen as they were at its start. */
    assert_int_equal(record.count, 4);
    assert_string_equal(record.codes[2], "c3");
    assert_int_equal(record.ids[3], 5);

    store_close(record.writer);
    record.writer = NULL;
    record.count = 0;
    assert_int_equal(store_scan_links(store, record_scanned, &record), 0);
    assert_int_equal(record.count, 4);
    assert_string_equal(record.codes[2], "c1");
    assert_string_equal(record.codes[3], "later");
    store_close(store);
}

static void scan_rejects_missing_function(void **state)
{
    struct fixture *fixture = *state;
    struct store *store;

    store = open_store(fixture->path);
    assert_int_equal(store_scan_links(store, NULL, NULL), -EINVAL);
    store_close(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(import_takes_ids_from_counter, setup, teardown),
        cmocka_unit_test_setup_teardown(import_stores_fields_and_url_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(import_rejects_taken_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(import_rejects_invalid_links_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(import_failure_leaves_no_trace, setup, teardown),
        cmocka_unit_test_setup_teardown(import_enlarges_page_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(import_rejects_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_lists_live_links_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_returns_value_that_stopped_it, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_reads_one_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(scan_rejects_missing_function, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
