/*
 * Tests of the link features of the SQLite store beyond create, get and
 * delete: deduplication of creates (store_op.dedupe), the expiry sweep
 * (store_expire_links) and listing (store_list_links), and the query plans
 * that keep them fast on large tables. The fixture and its fault injection
 * are described in store_fixture.h.
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

static void fill_dedupe(struct store_op *op, int64_t id, const char *code, const char *url)
{
    fill_create(op, id, code, url);
    op->dedupe = true;
}

static void apply_batch(struct store *store, struct store_op *ops, size_t count)
{
    int rc = store_apply(store, ops, count);

    if (rc != 0)
        fail_msg("store_apply returned %d: %s", rc, store_last_error(store));
}

/* Creates API keys 1 to count, for links that need an owner. */
static void create_keys(struct store *store, int count)
{
    struct store_op op;
    int i;

    for (i = 1; i <= count; i++) {
        memset(&op, 0, sizeof(op));
        op.kind = STORE_OP_KEY_CREATE;
        op.key.hash[0] = (uint8_t)i;
        op.key.created_at = T0;
        apply_batch(store, &op, 1);
        assert_int_equal(op.result, 0);
        assert_int_equal(op.key.id, i);
    }
}

static void dedupe_within_batch_returns_first_link(void **state)
{
    struct fixture *fixture = *state;
    char url[] = "https://example.com/same";
    struct store_op ops[2];
    struct store_link link;
    struct store *store;

    store = open_store(fixture->path);
    fill_dedupe(&ops[0], 1, "first", url);
    fill_dedupe(&ops[1], 2, "second", url);
    apply_batch(store, ops, 2);

    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, STORE_DEDUPED);
    assert_int_equal(ops[1].link.id, 1);
    assert_string_equal(ops[1].link.code, "first");
    assert_int_equal(ops[1].link.code_len, strlen("first"));
    assert_int_equal(ops[1].link.created_at, ops[0].link.created_at);
    assert_ptr_equal(ops[1].link.url, url);
    assert_int_equal(ops[1].link.url_len, strlen(url));

    assert_int_equal(get_link(store, "second", &link), -ENOENT);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 1);
    store_close(store);
}

static void dedupe_across_batches_returns_oldest_link(void **state)
{
    struct fixture *fixture = *state;
    char url[] = "https://example.com/again";
    struct store_op op;
    struct store *store;

    store = open_store(fixture->path);
    fill_create(&op, 1, "orig", url);
    op.link.visits = 4;
    op.link.redirect_status = 307;
    apply_batch(store, &op, 1);

    fill_dedupe(&op, 2, "copy", url);
    op.link.redirect_status = 307;
    apply_batch(store, &op, 1);
    assert_int_equal(op.result, STORE_DEDUPED);
    assert_int_equal(op.link.id, 1);
    assert_string_equal(op.link.code, "orig");
    assert_int_equal(op.link.created_at, T0 + 1);
    assert_int_equal(op.link.visits, 4);
    assert_int_equal(op.link.redirect_status, 307);
    assert_int_equal(op.link.cache_max_age, -1);
    assert_int_equal(op.link.deleted_at, 0);

    /* Without dedupe the same URL gets a link of its own. */
    fill_create(&op, 3, "own", url);
    op.link.redirect_status = 307;
    apply_batch(store, &op, 1);
    assert_int_equal(op.result, 0);

    fill_dedupe(&op, 4, "copy2", url);
    op.link.redirect_status = 307;
    apply_batch(store, &op, 1);
    assert_int_equal(op.result, STORE_DEDUPED);
    assert_int_equal(op.link.id, 1);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 2);
    store_close(store);
}

static void dedupe_requires_equal_fields(void **state)
{
    struct fixture *fixture = *state;
    enum { CASES = 9 };
    char url[] = "https://example.com/path";
    char slash[] = "https://example.com/path/";
    char upper[] = "https://example.com/PATH";
    struct store_op ops[CASES];
    struct store *store;
    char code[16];
    int i;

    store = open_store(fixture->path);
    create_keys(store, 2);
    fill_create(&ops[0], 1, "orig", url);
    ops[0].link.owner_key_id = 1;
    ops[0].link.redirect_status = 302;
    ops[0].link.cache_max_age = 60;
    apply_batch(store, ops, 1);

    for (i = 0; i < CASES; i++) {
        (void)snprintf(code, sizeof(code), "case%d", i);
        fill_dedupe(&ops[i], 10 + i, code, url);
        ops[i].link.owner_key_id = 1;
        ops[i].link.redirect_status = 302;
        ops[i].link.cache_max_age = 60;
    }
    ops[0].link.owner_key_id = 2;
    ops[1].link.owner_key_id = 0;
    ops[2].link.redirect_status = 301;
    ops[3].link.cache_max_age = -1;
    ops[4].link.cache_max_age = 0;
    ops[5].link.cache_max_age = 61;
    ops[6].link.url = slash;
    ops[6].link.url_len = strlen(slash);
    ops[7].link.url = upper;
    ops[7].link.url_len = strlen(upper);
    apply_batch(store, ops, CASES);

    for (i = 0; i < CASES - 1; i++) {
        if (ops[i].result != 0)
            fail_msg("case %d: result %d, expected an insert", i, ops[i].result);
    }
    assert_int_equal(ops[CASES - 1].result, STORE_DEDUPED);
    assert_int_equal(ops[CASES - 1].link.id, 1);
    assert_int_equal(ops[CASES - 1].link.owner_key_id, 1);
    assert_int_equal(ops[CASES - 1].link.cache_max_age, 60);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), CASES);
    store_close(store);
}

static void count_expired(const struct store_link *link, void *arg)
{
    (*(int *)arg)++;
}

static void dedupe_skips_links_that_are_not_plain(void **state)
{
    struct fixture *fixture = *state;
    enum { EXISTING = 8, NEW = 3 };
    static char urls[EXISTING][64];
    struct store_op ops[EXISTING];
    struct store_op delete;
    struct store *store;
    char code[16];
    int marked = 0;
    int i;

    store = open_store(fixture->path);
    for (i = 0; i < EXISTING; i++) {
        (void)snprintf(urls[i], sizeof(urls[i]), "https://example.com/case/%d", i);
        (void)snprintf(code, sizeof(code), "old%d", i);
        fill_create(&ops[i], i + 1, code, urls[i]);
    }
    ops[0].link.is_alias = true;
    ops[1].link.expires_at = T0 + 1000000; /* ends later */
    ops[2].link.expires_at = T0 - 1000;    /* ended, not marked yet */
    ops[3].link.max_visits = 10;
    ops[5].link.expires_at = T0 - 2000; /* ended and marked below */
    apply_batch(store, ops, EXISTING);
    fill_delete(&delete, "old4", T0 + 5);
    apply_batch(store, &delete, 1);
    assert_int_equal(delete.result, 0);
    assert_int_equal(store_expire_links(store, T0 - 1500, 10, count_expired, &marked), 1);
    assert_int_equal(marked, 1);
    /* Only the sweep marks links, and only those with an expiry; this checks the query alone. */
    execute_sql(fixture->path, "UPDATE links SET expired_at = 1 WHERE code = 'old6'");

    for (i = 0; i < EXISTING - 1; i++) {
        (void)snprintf(code, sizeof(code), "new%d", i);
        fill_dedupe(&ops[i], 100 + i, code, urls[i]);
        ops[i].now = T0;
    }
    apply_batch(store, ops, EXISTING - 1);
    for (i = 0; i < EXISTING - 1; i++) {
        if (ops[i].result != 0)
            fail_msg("existing link %d: result %d, expected an insert", i, ops[i].result);
    }

    /* A create that has an alias, an expiry or a limit itself never deduplicates. */
    for (i = 0; i < NEW; i++) {
        (void)snprintf(code, sizeof(code), "own%d", i);
        fill_dedupe(&ops[i], 200 + i, code, urls[EXISTING - 1]);
    }
    ops[0].link.is_alias = true;
    ops[1].link.expires_at = T0 + 1000000;
    ops[2].link.max_visits = 5;
    apply_batch(store, ops, NEW);
    for (i = 0; i < NEW; i++) {
        if (ops[i].result != 0)
            fail_msg("new link %d: result %d, expected an insert", i, ops[i].result);
    }
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"),
                     EXISTING + EXISTING - 1 + NEW);
    store_close(store);
}

static void dedupe_compares_url_bytes_after_hash(void **state)
{
    struct fixture *fixture = *state;
    char first[] = "https://example.com/first";
    char second[] = "https://example.com/second";
    struct store_op op;
    struct store *store;
    char sql[128];

    store = open_store(fixture->path);
    create_link(store, 1, "first", first);

    /* Give the first link the hash of the second URL, as a collision would. */
    (void)snprintf(sql, sizeof(sql), "UPDATE links SET url_hash = %" PRId64 " WHERE id = 1",
                   expected_url_hash(second, strlen(second)));
    execute_sql(fixture->path, sql);

    fill_dedupe(&op, 2, "second", second);
    apply_batch(store, &op, 1);
    assert_int_equal(op.result, 0);

    fill_dedupe(&op, 3, "third", second);
    apply_batch(store, &op, 1);
    assert_int_equal(op.result, STORE_DEDUPED);
    assert_int_equal(op.link.id, 2);
    assert_string_equal(op.link.code, "second");
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 2);
    store_close(store);
}

static void dedupe_failed_batch_keeps_caller_links(void **state)
{
    struct fixture *fixture = *state;
    enum { BATCH = 20 };
    char url[] = "https://example.com/kept";
    struct store_op ops[BATCH];
    char codes[BATCH][16];
    struct store *store;
    char *long_url;
    sqlite3 *db;
    int i;

    long_url = malloc(4001);
    assert_non_null(long_url);
    memset(long_url, 'u', 4000);
    memcpy(long_url, "https://example.com/", 20);
    long_url[4000] = '\0';
    store = open_store_with_handle(fixture->path, &db);
    create_link(store, 1, "orig", url);

    fill_dedupe(&ops[0], 2, "dup", url);
    for (i = 1; i < BATCH; i++) {
        (void)snprintf(codes[i], sizeof(codes[i]), "long%d", i);
        fill_create(&ops[i], 10 + i, codes[i], long_url);
    }
    limit_pages(db, 2);
    assert_int_equal(store_apply(store, ops, BATCH), -ENOSPC);
    for (i = 0; i < BATCH; i++)
        assert_int_equal(ops[i].result, -ENOSPC);
    assert_int_equal(ops[0].link.id, 2);
    assert_string_equal(ops[0].link.code, "dup");
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 1);

    /* The same ops apply once there is room. */
    unlimit_pages(db);
    apply_batch(store, ops, BATCH);
    assert_int_equal(ops[0].result, STORE_DEDUPED);
    assert_int_equal(ops[0].link.id, 1);
    assert_string_equal(ops[0].link.code, "orig");
    for (i = 1; i < BATCH; i++)
        assert_int_equal(ops[i].result, 0);
    store_close(store);
    free(long_url);
}

/* Returns the details of the query plan of sql, joined by " | ". */
static void explain(sqlite3 *db, const char *sql, char *plan, size_t plan_cap)
{
    char query[2048];
    sqlite3_stmt *stmt;
    size_t len = 0;

    (void)snprintf(query, sizeof(query), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_prepare_v2(db, query, -1, &stmt, NULL), SQLITE_OK);
    plan[0] = '\0';
    while (sqlite3_step(stmt) == SQLITE_ROW && len < plan_cap) {
        len += (size_t)snprintf(plan + len, plan_cap - len, "%s | ",
                                (const char *)sqlite3_column_text(stmt, 3));
    }
    assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
}

static void queries_use_partial_indexes(void **state)
{
    struct fixture *fixture = *state;
    char plan[1024];
    sqlite3 *db;

    store_close(open_store(fixture->path));
    assert_int_equal(sqlite3_open_v2(fixture->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);

    explain(db, store__sqlite_core_sql[STMT_FIND_DUPLICATE], plan, sizeof(plan));
    assert_contains(plan, "USING INDEX links_dedupe (url_hash=?)");
    explain(db, store__sqlite_links_sql[STMT_SELECT_EXPIRED], plan, sizeof(plan));
    assert_contains(plan, "USING INDEX links_expiry");
    assert_not_contains(plan, "TEMP B-TREE"); /* the index yields the expiry order */
    explain(db, store__sqlite_links_sql[STMT_LIST_OWNER_LINKS], plan, sizeof(plan));
    assert_contains(plan, "USING INDEX links_owner (owner_key_id=? AND id<?)");
    assert_not_contains(plan, "TEMP B-TREE");
    explain(db, store__sqlite_links_sql[STMT_LIST_LINKS], plan, sizeof(plan));
    assert_contains(plan, "INTEGER PRIMARY KEY (rowid<?)");
    assert_not_contains(plan, "TEMP B-TREE");

    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Links seen by a store_expire_links or store_list_links callback. */
struct seen_links {
    int count;
    int stop_after; /* list callbacks return 1 after this many, 0 for never */
    int64_t ids[64];
    int64_t expired_at[64];
    int64_t owners[64];
    char urls[64][64];
    struct store *reader; /* a second connection, or NULL */
    int64_t reader_expired_at[64];
};

static void record_link(const struct store_link *link, struct seen_links *seen)
{
    struct store_link stored;
    int i = seen->count++;

    assert_true(i < 64);
    seen->ids[i] = link->id;
    seen->expired_at[i] = link->expired_at;
    seen->owners[i] = link->owner_key_id;
    assert_int_equal(link->url_len, strlen(link->url));
    (void)snprintf(seen->urls[i], sizeof(seen->urls[i]), "%s", link->url);

    if (seen->reader != NULL) {
        assert_int_equal(get_link(seen->reader, link->code, &stored), 0);
        seen->reader_expired_at[i] = stored.expired_at;
        store_link_clear(&stored);
    }
}

static void record_expired(const struct store_link *link, void *arg)
{
    record_link(link, arg);
}

static int record_listed(const struct store_link *link, void *arg)
{
    struct seen_links *seen = arg;

    record_link(link, seen);
    return seen->stop_after > 0 && seen->count >= seen->stop_after;
}

static void create_expiring(struct store *store, int64_t id, int64_t expires_at)
{
    char code[16];
    char url[64];
    struct store_op op;

    (void)snprintf(code, sizeof(code), "x%" PRId64, id);
    (void)snprintf(url, sizeof(url), "https://example.com/expiring/%" PRId64, id);
    fill_create(&op, id, code, url);
    op.link.expires_at = expires_at;
    apply_batch(store, &op, 1);
    assert_int_equal(op.result, 0);
}

static void expire_links_marks_due_links_oldest_first(void **state)
{
    struct fixture *fixture = *state;
    const int64_t now = T0 + 1000;
    const int64_t expected_first[] = {2, 7, 1};
    struct seen_links seen = {0};
    struct store_link link;
    struct store_op op;
    struct store *store;
    int i;

    store = open_store(fixture->path);
    create_expiring(store, 1, T0 + 500);
    create_expiring(store, 2, T0 + 100);
    create_expiring(store, 3, now); /* due: expiry at or before now */
    create_expiring(store, 4, now + 1000);
    create_expiring(store, 5, 0);
    create_expiring(store, 6, T0 + 50);
    create_expiring(store, 7, T0 + 100); /* same expiry as 2, later id */
    fill_delete(&op, "x6", T0 + 60);
    apply_batch(store, &op, 1);

    assert_int_equal(store_expire_links(store, now, 3, record_expired, &seen), 3);
    assert_int_equal(seen.count, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(seen.ids[i], expected_first[i]);
        assert_int_equal(seen.expired_at[i], now);
    }
    assert_string_equal(seen.urls[0], "https://example.com/expiring/2");

    /* A second sweep returns only the link left, and a third none. */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_expire_links(store, now + 1, 10, record_expired, &seen), 1);
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.ids[0], 3);
    assert_int_equal(seen.expired_at[0], now + 1);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_expire_links(store, now + 2, 10, record_expired, &seen), 0);
    assert_int_equal(seen.count, 0);

    assert_int_equal(get_link(store, "x1", &link), 0);
    assert_int_equal(link.expired_at, now);
    assert_int_equal(link.deleted_at, 0);
    store_link_clear(&link);
    assert_int_equal(get_link(store, "x3", &link), 0);
    assert_int_equal(link.expired_at, now + 1);
    store_link_clear(&link);
    assert_int_equal(
        query_integer(fixture->path, "SELECT count(*) FROM links WHERE expired_at IS NOT NULL"), 4);
    assert_int_equal(
        query_integer(fixture->path,
                      "SELECT count(*) FROM links WHERE id IN (4, 5, 6) AND expired_at IS NULL"),
        3);
    store_close(store);
}

static void expire_links_calls_fn_after_commit(void **state)
{
    struct fixture *fixture = *state;
    struct seen_links seen = {0};
    struct store *store;
    int i;

    store = open_store(fixture->path);
    seen.reader = open_store(fixture->path);
    for (i = 1; i <= 3; i++)
        create_expiring(store, i, T0 + i);

    /* The other connection reads only committed data. */
    assert_int_equal(store_expire_links(store, T0 + 10, 10, record_expired, &seen), 3);
    for (i = 0; i < 3; i++)
        assert_int_equal(seen.reader_expired_at[i], T0 + 10);

    /* Without a function the sweep still marks. */
    create_expiring(store, 4, T0 + 4);
    assert_int_equal(store_expire_links(store, T0 + 20, 10, NULL, NULL), 1);
    assert_int_equal(query_integer(fixture->path, "SELECT expired_at FROM links WHERE id = 4"),
                     T0 + 20);
    store_close(seen.reader);
    store_close(store);
}

static void expire_links_full_disk_marks_nothing(void **state)
{
    struct fixture *fixture = *state;
    enum { LINKS = 2000 };
    static struct store_op ops[LINKS];
    static char codes[LINKS][16];
    static char urls[LINKS][48];
    struct store *store;
    int called = 0;
    sqlite3 *db;
    int i;

    store = open_store_with_handle(fixture->path, &db);
    for (i = 0; i < LINKS; i++) {
        (void)snprintf(codes[i], sizeof(codes[i]), "x%d", i);
        (void)snprintf(urls[i], sizeof(urls[i]), "https://example.com/%d", i);
        fill_create(&ops[i], i + 1, codes[i], urls[i]);
        ops[i].link.expires_at = T0 + i;
    }
    apply_batch(store, ops, LINKS);

    /* Setting expired_at makes each row longer, so the table needs pages it cannot get. */
    limit_pages(db, 0);
    assert_int_equal(store_expire_links(store, T0 + LINKS, LINKS, count_expired, &called), -ENOSPC);
    assert_int_equal(called, 0);
    assert_contains(store_last_error(store), "database or disk is full");
    assert_int_equal(
        query_integer(fixture->path, "SELECT count(*) FROM links WHERE expired_at IS NOT NULL"), 0);

    unlimit_pages(db);
    assert_int_equal(store_expire_links(store, T0 + LINKS, LINKS, count_expired, &called), LINKS);
    assert_int_equal(called, LINKS);
    store_close(store);
}

static void expire_links_rejects_invalid_arguments(void **state)
{
    struct fixture *fixture = *state;
    struct store *store;
    int called = 0;

    store = open_store(fixture->path);
    create_expiring(store, 1, T0);
    assert_int_equal(store_expire_links(store, 0, 10, count_expired, &called), -EINVAL);
    assert_int_equal(store_expire_links(store, -1, 10, count_expired, &called), -EINVAL);
    assert_int_equal(store_expire_links(store, T0, 0, count_expired, &called), 0);
    assert_int_equal(called, 0);
    assert_int_equal(
        query_integer(fixture->path, "SELECT count(*) FROM links WHERE expired_at IS NOT NULL"), 0);
    store_close(store);
}

enum { LISTED_LINKS = 30 };

/* Owner of link id in the listing tests: key 1, key 2 or none, in turn. */
static int64_t owner_of(int64_t id)
{
    return id % 3 == 0 ? 0 : id % 3;
}

/* Creates links 1 to LISTED_LINKS and deletes every seventh. */
static struct store *open_listing_store(const char *path)
{
    static char codes[LISTED_LINKS + 1][16];
    static char urls[LISTED_LINKS + 1][64];
    struct store_op ops[LISTED_LINKS];
    struct store *store;
    int64_t id;

    store = open_store(path);
    create_keys(store, 2);
    for (id = 1; id <= LISTED_LINKS; id++) {
        (void)snprintf(codes[id], sizeof(codes[id]), "l%" PRId64, id);
        (void)snprintf(urls[id], sizeof(urls[id]), "https://example.com/listed/%" PRId64, id);
        fill_create(&ops[id - 1], id, codes[id], urls[id]);
        ops[id - 1].link.owner_key_id = owner_of(id);
    }
    apply_batch(store, ops, LISTED_LINKS);
    for (id = 7; id <= LISTED_LINKS; id += 7)
        fill_delete(&ops[id / 7 - 1], codes[id], T0 + 100);
    apply_batch(store, ops, LISTED_LINKS / 7);
    return store;
}

/* Lists every page of size page for owner and checks the ids against the live links. */
static void check_pages(struct store *store, int64_t owner, size_t page)
{
    struct seen_links seen;
    int64_t expected[LISTED_LINKS];
    int64_t listed[LISTED_LINKS];
    int64_t before = 0;
    int expected_len = 0;
    int listed_len = 0;
    int pages = 0;
    int64_t id;
    int rc;
    int i;

    for (id = LISTED_LINKS; id >= 1; id--) {
        if (id % 7 != 0 && (owner == -1 || owner_of(id) == owner))
            expected[expected_len++] = id;
    }

    do {
        memset(&seen, 0, sizeof(seen));
        rc = store_list_links(store, owner, before, page, record_listed, &seen);
        assert_int_equal(rc, seen.count);
        assert_true(rc <= (int)page);
        for (i = 0; i < seen.count; i++) {
            char url[64];

            assert_true(listed_len < LISTED_LINKS);
            listed[listed_len++] = seen.ids[i];
            assert_int_equal(seen.owners[i], owner_of(seen.ids[i]));
            (void)snprintf(url, sizeof(url), "https://example.com/listed/%" PRId64, seen.ids[i]);
            assert_string_equal(seen.urls[i], url);
        }
        if (seen.count > 0)
            before = seen.ids[seen.count - 1];
        assert_true(++pages <= LISTED_LINKS + 1);
    } while (rc > 0);

    assert_int_equal(listed_len, expected_len);
    for (i = 0; i < expected_len; i++) {
        if (listed[i] != expected[i])
            fail_msg("owner %" PRId64 ", page size %zu: link %d listed is %" PRId64
                     ", expected %" PRId64,
                     owner, page, i, listed[i], expected[i]);
    }
}

static void list_links_pages_without_gaps_or_repeats(void **state)
{
    struct fixture *fixture = *state;
    const size_t pages[] = {1, 4, 7, 100};
    struct store *store;
    size_t i;

    store = open_listing_store(fixture->path);
    for (i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        check_pages(store, -1, pages[i]);
        check_pages(store, 1, pages[i]);
        check_pages(store, 2, pages[i]);
    }
    store_close(store);
}

static void list_links_starts_below_before_id(void **state)
{
    struct fixture *fixture = *state;
    struct seen_links seen = {0};
    struct store *store;

    store = open_listing_store(fixture->path);

    /* 14 is deleted, so the three live links below 16 are 15, 13 and 12. */
    assert_int_equal(store_list_links(store, -1, 16, 3, record_listed, &seen), 3);
    assert_int_equal(seen.ids[0], 15);
    assert_int_equal(seen.ids[1], 13);
    assert_int_equal(seen.ids[2], 12);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(store_list_links(store, 1, 1, 10, record_listed, &seen), 0);
    assert_int_equal(store_list_links(store, 3, 0, 10, record_listed, &seen), 0);
    assert_int_equal(seen.count, 0);
    store_close(store);
}

static void list_links_stops_when_fn_returns_nonzero(void **state)
{
    struct fixture *fixture = *state;
    struct seen_links seen = {.stop_after = 2};
    struct store *store;

    store = open_listing_store(fixture->path);
    assert_int_equal(store_list_links(store, -1, 0, 10, record_listed, &seen), 2);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.ids[0], 30);
    assert_int_equal(seen.ids[1], 29);
    store_close(store);
}

static void list_links_includes_expired_links(void **state)
{
    struct fixture *fixture = *state;
    struct seen_links seen = {0};
    struct store *store;

    store = open_store(fixture->path);
    create_expiring(store, 1, T0);
    create_expiring(store, 2, 0);
    assert_int_equal(store_expire_links(store, T0 + 1, 10, NULL, NULL), 1);

    assert_int_equal(store_list_links(store, -1, 0, 10, record_listed, &seen), 2);
    assert_int_equal(seen.ids[0], 2);
    assert_int_equal(seen.expired_at[0], 0);
    assert_int_equal(seen.ids[1], 1);
    assert_int_equal(seen.expired_at[1], T0 + 1);
    store_close(store);
}

static void list_links_rejects_invalid_arguments(void **state)
{
    struct fixture *fixture = *state;
    struct seen_links seen = {0};
    struct store *store;

    store = open_listing_store(fixture->path);
    assert_int_equal(store_list_links(store, -1, 0, 10, NULL, NULL), -EINVAL);
    assert_int_equal(store_list_links(store, 0, 0, 10, record_listed, &seen), -EINVAL);
    assert_int_equal(store_list_links(store, -2, 0, 10, record_listed, &seen), -EINVAL);
    assert_int_equal(store_list_links(store, -1, -1, 10, record_listed, &seen), -EINVAL);
    assert_int_equal(store_list_links(store, -1, 0, 0, record_listed, &seen), 0);
    assert_int_equal(seen.count, 0);
    store_close(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(dedupe_within_batch_returns_first_link, setup, teardown),
        cmocka_unit_test_setup_teardown(dedupe_across_batches_returns_oldest_link, setup, teardown),
        cmocka_unit_test_setup_teardown(dedupe_requires_equal_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(dedupe_skips_links_that_are_not_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(dedupe_compares_url_bytes_after_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(dedupe_failed_batch_keeps_caller_links, setup, teardown),
        cmocka_unit_test_setup_teardown(queries_use_partial_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(expire_links_marks_due_links_oldest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(expire_links_calls_fn_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(expire_links_full_disk_marks_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(expire_links_rejects_invalid_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(list_links_pages_without_gaps_or_repeats, setup, teardown),
        cmocka_unit_test_setup_teardown(list_links_starts_below_before_id, setup, teardown),
        cmocka_unit_test_setup_teardown(list_links_stops_when_fn_returns_nonzero, setup, teardown),
        cmocka_unit_test_setup_teardown(list_links_includes_expired_links, setup, teardown),
        cmocka_unit_test_setup_teardown(list_links_rejects_invalid_arguments, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
