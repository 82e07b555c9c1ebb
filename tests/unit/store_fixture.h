/*
 * Helpers shared by the tests of the SQLite store (test_store_sqlite*.c).
 *
 * Each test runs in its own folder, made by mkdtemp under /tmp by setup and
 * removed by teardown. The database goes into a "data" subfolder that
 * store_open has to create. Tests read the file through a separate sqlite3
 * connection to check what the store wrote.
 *
 * For fault injection, open_store_with_handle returns the store's own
 * sqlite3 handle. Lowering PRAGMA max_page_count on it (limit_pages) makes
 * writes past that size fail with SQLITE_FULL, as on a full disk.
 *
 * The functions are static inline so that a program that uses only some of
 * them builds without unused-function warnings.
 */
#ifndef SHORTD_TESTS_STORE_FIXTURE_H
#define SHORTD_TESTS_STORE_FIXTURE_H

#include <ftw.h>
#include <setjmp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "store/backend.h"
#include "store/store.h"

#define assert_contains(text, part)                                                                \
    do {                                                                                           \
        if (strstr((text), (part)) == NULL)                                                        \
            fail_msg("\"%s\" does not contain \"%s\"", (text), (part));                            \
    } while (0)

#define assert_not_contains(text, part)                                                            \
    do {                                                                                           \
        if (strstr((text), (part)) != NULL)                                                        \
            fail_msg("\"%s\" contains \"%s\"", (text), (part));                                    \
    } while (0)

struct fixture {
    char dir[64];   /* the test's own folder */
    char path[256]; /* the database file, in a subfolder not yet created */
};

static inline int remove_entry(const char *path, const struct stat *info, int type,
                               struct FTW *walk)
{
    return remove(path);
}

static inline int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));

    if (fixture == NULL)
        return -1;
    strcpy(fixture->dir, "/tmp/shortd-store-test-XXXXXX");
    if (mkdtemp(fixture->dir) == NULL) {
        free(fixture);
        return -1;
    }
    (void)snprintf(fixture->path, sizeof(fixture->path), "%s/data/shortd.db", fixture->dir);
    *state = fixture;
    return 0;
}

static inline int teardown(void **state)
{
    struct fixture *fixture = *state;
    int rc = nftw(fixture->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

    free(fixture);
    return rc;
}

static inline struct store *open_store(const char *path)
{
    char error[STORE_ERROR_MAX] = "";
    struct store *store = NULL;
    int rc = store_open(path, &store, error, sizeof(error));

    if (rc != 0)
        fail_msg("store_open(%s) returned %d: %s", path, rc, error);
    return store;
}

/* Fills link with the fields a create needs; url must outlive the link. */
static inline void fill_link(struct store_link *link, int64_t id, const char *code, const char *url,
                             size_t url_len)
{
    memset(link, 0, sizeof(*link));
    link->id = id;
    link->code_len = strlen(code);
    memcpy(link->code, code, link->code_len + 1);
    link->url = (char *)url;
    link->url_len = url_len;
    link->created_at = 1700000000000 + id;
    link->redirect_status = 301;
    link->cache_max_age = -1;
}

static inline void fill_create(struct store_op *op, int64_t id, const char *code, const char *url)
{
    memset(op, 0, sizeof(*op));
    op->kind = STORE_OP_CREATE;
    fill_link(&op->link, id, code, url, strlen(url));
    op->now = op->link.created_at;
    op->result = 1; /* neither 0 nor an errno, so a result left unset fails the checks */
}

static inline void fill_delete(struct store_op *op, const char *code, int64_t now)
{
    memset(op, 0, sizeof(*op));
    op->kind = STORE_OP_DELETE;
    op->link.code_len = strlen(code);
    memcpy(op->link.code, code, op->link.code_len + 1);
    op->now = now;
    op->result = 1;
}

static inline void create_link(struct store *store, int64_t id, const char *code, const char *url)
{
    struct store_op op;

    fill_create(&op, id, code, url);
    assert_int_equal(store_apply(store, &op, 1), 0);
    assert_int_equal(op.result, 0);
}

static inline int get_link(struct store *store, const char *code, struct store_link *link)
{
    return store_get_link(store, code, strlen(code), link);
}

/* Runs a one-value query on the database through its own raw connection. */
static inline int64_t query_integer(const char *path, const char *sql)
{
    sqlite3_stmt *stmt;
    sqlite3 *db;
    int64_t value;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    value = sqlite3_column_int64(stmt, 0);
    assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return value;
}

static inline void execute_sql(const char *path, const char *sql)
{
    char *message = NULL;
    sqlite3 *db;
    int rc;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    rc = sqlite3_exec(db, sql, NULL, NULL, &message);
    if (rc != SQLITE_OK)
        fail_msg("%s failed: %s", sql, message != NULL ? message : sqlite3_errstr(rc));
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* The connection most recently opened in this process, set by capture_connection. */
static sqlite3 *captured_db;

static inline int capture_connection(sqlite3 *db, char **message, const sqlite3_api_routines *api)
{
    captured_db = db;
    return SQLITE_OK;
}

/* Opens a store and returns the sqlite3 handle of its connection in *db. */
static inline struct store *open_store_with_handle(const char *path, sqlite3 **db)
{
    struct store *store;

    captured_db = NULL;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))capture_connection), SQLITE_OK);
    store = open_store(path);
    assert_int_equal(sqlite3_cancel_auto_extension((void (*)(void))capture_connection), 1);
    assert_non_null(captured_db);
    *db = captured_db;
    return store;
}

/* Runs a one-value query on an open connection. */
static inline int64_t query_connection(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    int64_t value;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    value = sqlite3_column_int64(stmt, 0);
    assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
    return value;
}

/* Returns the url_hash that the schema defines: BLAKE2b-256, first 8 bytes, little-endian. */
static inline int64_t expected_url_hash(const char *url, size_t url_len)
{
    unsigned char digest[32];
    uint64_t value = 0;
    int i;

    assert_int_equal(
        crypto_generichash(digest, sizeof(digest), (const unsigned char *)url, url_len, NULL, 0),
        0);
    for (i = 7; i >= 0; i--)
        value = value << 8 | digest[i];
    return (int64_t)value;
}

/*
 * Lets the database of the store's connection db grow by extra pages at
 * most, so that a write that needs more fails with SQLITE_FULL.
 */
static inline void limit_pages(sqlite3 *db, int extra)
{
    char sql[64];

    (void)snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d",
                   (int)query_connection(db, "PRAGMA page_count") + extra);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
}

/* Lifts the limit that limit_pages set. */
static inline void unlimit_pages(sqlite3 *db)
{
    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1000000000", NULL, NULL, NULL),
                     SQLITE_OK);
}

#endif
