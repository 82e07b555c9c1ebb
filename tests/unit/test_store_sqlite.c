/*
 * Tests of store.h with the SQLite backend.
 *
 * Each test runs in its own folder, made by mkdtemp under /tmp and removed
 * afterwards. The database goes into a "data" subfolder that store_open has
 * to create. Some tests read the file through a separate sqlite3 connection
 * to check what the store wrote. The helpers for both are in
 * store_fixture.h, shared with the other test_store_sqlite_*.c programs.
 *
 * Fault injection:
 * - Disk full: an SQLite auto-extension (sqlite3_auto_extension) hands the
 *   test the sqlite3 handle of the store's connection as it opens. The test
 *   lowers PRAGMA max_page_count on that handle, so writes past that size
 *   fail with SQLITE_FULL as they would on a full disk.
 * - Read-only file and unwritable folder: the tests run as root, and root
 *   ignores file modes through CAP_DAC_OVERRIDE. These tests set the mode
 *   and then open the store from a thread that first drops
 *   CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from its effective
 *   set. capset affects only the calling thread, so the mode applies to that
 *   thread as it would to an unprivileged user. Without root the drop
 *   changes nothing and the mode applies anyway.
 */
#include <errno.h>
#include <ftw.h>
#include <linux/capability.h>
#include <pthread.h>
#include <setjmp.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/backend.h"
#include "store/sqlite_setup.h"
#include "store/store.h"

#include "store_fixture.h"

static void store_open_creates_folder_and_file(void **state)
{
    struct fixture *fixture = *state;
    char folder[160];
    struct store *store;
    struct stat info;
    mode_t mask;

    (void)snprintf(folder, sizeof(folder), "%s/data/a/b", fixture->dir);
    (void)snprintf(fixture->path, sizeof(fixture->path), "%s/shortd.db", folder);
    mask = umask(022);
    umask(mask);

    store = open_store(fixture->path);
    assert_string_equal(store_backend_name(store), "sqlite");
    assert_string_equal(store_last_error(store), "");
    assert_int_equal(store_ping(store), 0);
    store_close(store);

    assert_int_equal(stat(folder, &info), 0);
    assert_true(S_ISDIR(info.st_mode));
    assert_int_equal(info.st_mode & 0777, 0755 & ~mask);
    assert_int_equal(stat(fixture->path, &info), 0);
    assert_true(S_ISREG(info.st_mode));
}

static void store_reopen_is_idempotent(void **state)
{
    struct fixture *fixture = *state;
    struct store_link link;
    struct store *store;
    int64_t objects;

    store = open_store(fixture->path);
    create_link(store, 1, "kept", "https://example.com/kept");
    store_close(store);
    objects = query_integer(fixture->path, "SELECT count(*) FROM sqlite_schema");

    store = open_store(fixture->path);
    store_close(store);
    store = open_store(fixture->path);

    assert_int_equal(query_integer(fixture->path, "PRAGMA user_version"),
                     store__sqlite_schema_version());
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM sqlite_schema"), objects);
    assert_int_equal(get_link(store, "kept", &link), 0);
    assert_string_equal(link.url, "https://example.com/kept");
    store_link_clear(&link);
    store_close(store);
}

static void user_version_counts_migrations(void **state)
{
    struct fixture *fixture = *state;
    const char *tables[] = {"links", "visits_daily", "visits_referrers", "api_keys", "settings"};
    char sql[160];
    size_t i;

    store_close(open_store(fixture->path));

    assert_true(store__sqlite_schema_version() >= 1);
    assert_int_equal(query_integer(fixture->path, "PRAGMA user_version"),
                     store__sqlite_schema_version());
    assert_int_equal(
        query_integer(fixture->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        (void)snprintf(sql, sizeof(sql), "SELECT strict FROM pragma_table_list WHERE name = '%s'",
                       tables[i]);
        assert_int_equal(query_integer(fixture->path, sql), 1);
    }
}

enum { RACING_OPENERS = 4 };

struct racing_open {
    const char *path;
    pthread_barrier_t *start;
    int rc;
    char error[STORE_ERROR_MAX];
};

static void *open_after_barrier(void *arg)
{
    struct racing_open *open = arg;
    struct store *store = NULL;

    (void)pthread_barrier_wait(open->start);
    open->rc = store_open(open->path, &store, open->error, sizeof(open->error));
    store_close(store);
    return NULL;
}

static void concurrent_first_opens_all_succeed(void **state)
{
    struct fixture *fixture = *state;
    struct racing_open opens[RACING_OPENERS];
    pthread_t threads[RACING_OPENERS];
    pthread_barrier_t start;
    int i;

    assert_int_equal(pthread_barrier_init(&start, NULL, RACING_OPENERS), 0);
    for (i = 0; i < RACING_OPENERS; i++) {
        opens[i].path = fixture->path;
        opens[i].start = &start;
        opens[i].rc = 1;
        opens[i].error[0] = '\0';
        assert_int_equal(pthread_create(&threads[i], NULL, open_after_barrier, &opens[i]), 0);
    }
    for (i = 0; i < RACING_OPENERS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_int_equal(pthread_barrier_destroy(&start), 0);

    for (i = 0; i < RACING_OPENERS; i++) {
        if (opens[i].rc != 0)
            fail_msg("opener %d: store_open returned %d: %s", i, opens[i].rc, opens[i].error);
    }
    assert_int_equal(query_integer(fixture->path, "PRAGMA user_version"),
                     store__sqlite_schema_version());
}

static void connection_uses_durable_settings(void **state)
{
    struct fixture *fixture = *state;
    struct store *store;
    sqlite3 *db;

    store = open_store_with_handle(fixture->path, &db);
    assert_int_equal(query_connection(db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"),
                     1);
    assert_int_equal(query_connection(db, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(query_connection(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_connection(db, "PRAGMA busy_timeout"), 5000);
    store_close(store);
}

static void sqlite_special_names_stay_paths(void **state)
{
    struct fixture *fixture = *state;
    const char *names[] = {"file:links.db", ":memory:"};
    char saved_cwd[4096];
    struct store *store;
    struct stat info;
    size_t i;

    assert_non_null(getcwd(saved_cwd, sizeof(saved_cwd)));
    assert_int_equal(chdir(fixture->dir), 0);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        store = open_store(names[i]);
        create_link(store, 1, "kept", "https://example.com/kept");
        store_close(store);
        if (stat(names[i], &info) != 0)
            fail_msg("%s was not created as a file in %s", names[i], fixture->dir);
    }
    assert_int_equal(chdir(saved_cwd), 0);
}

static void newer_schema_is_rejected(void **state)
{
    struct fixture *fixture = *state;
    char error[STORE_ERROR_MAX] = "";
    struct store *store = (struct store *)fixture; /* any non-NULL value */
    char sql[64];
    char expected[64];
    int newer = store__sqlite_schema_version() + 1;

    store_close(open_store(fixture->path));
    (void)snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", newer);
    execute_sql(fixture->path, sql);

    assert_int_equal(store_open(fixture->path, &store, error, sizeof(error)), -ENOTSUP);
    assert_null(store);
    (void)snprintf(expected, sizeof(expected), "has schema version %d", newer);
    assert_contains(error, expected);
    assert_contains(error, "newer shortd");
    assert_int_equal(query_integer(fixture->path, "PRAGMA user_version"), newer);
}

/*
 * The schema of version 1 as shortd created it, kept here unchanged so that
 * the upgrade test starts from the tables that databases in use have.
 */
static const char version_1_schema[] = "CREATE TABLE api_keys ("
                                       " id INTEGER PRIMARY KEY,"
                                       " key_hash BLOB NOT NULL UNIQUE,"
                                       " name TEXT,"
                                       " created_at INTEGER NOT NULL,"
                                       " revoked_at INTEGER"
                                       ") STRICT;"
                                       "CREATE TABLE links ("
                                       " id INTEGER PRIMARY KEY,"
                                       " code TEXT NOT NULL UNIQUE,"
                                       " url TEXT NOT NULL,"
                                       " url_hash INTEGER NOT NULL,"
                                       " created_at INTEGER NOT NULL,"
                                       " expires_at INTEGER,"
                                       " max_visits INTEGER,"
                                       " visits INTEGER NOT NULL DEFAULT 0,"
                                       " redirect_status INTEGER NOT NULL,"
                                       " owner_key_id INTEGER REFERENCES api_keys (id),"
                                       " deleted_at INTEGER"
                                       ") STRICT;"
                                       "CREATE TABLE visits_daily ("
                                       " link_id INTEGER NOT NULL REFERENCES links (id),"
                                       " day INTEGER NOT NULL,"
                                       " count INTEGER NOT NULL,"
                                       " PRIMARY KEY (link_id, day)"
                                       ") STRICT, WITHOUT ROWID;"
                                       "CREATE TABLE settings ("
                                       " name TEXT NOT NULL PRIMARY KEY,"
                                       " value BLOB NOT NULL"
                                       ") STRICT;"
                                       "PRAGMA user_version = 1;";

static int copy_first_key(const struct store_key *key, void *arg)
{
    *(struct store_key *)arg = *key;
    return 1;
}

static void version_1_database_upgrades_in_place(void **state)
{
    struct fixture *fixture = *state;
    const char *plain_url = "https://example.com/plain";
    struct store_day_count days[4];
    struct store_host_count hosts[2];
    struct store_key key;
    struct store_link link;
    struct store_op op;
    struct store *store;
    char folder[96];
    char sql[512];
    size_t days_len = 99;
    size_t hosts_len = 99;
    sqlite3 *db;
    int i;

    (void)snprintf(folder, sizeof(folder), "%s/data", fixture->dir);
    assert_int_equal(mkdir(folder, 0755), 0);
    assert_int_equal(sqlite3_open(fixture->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, version_1_schema, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    execute_sql(fixture->path, "INSERT INTO api_keys (id, key_hash, name, created_at)"
                               " VALUES (3, zeroblob(32), 'ops', 1600000000000);"
                               "INSERT INTO links (id, code, url, url_hash, created_at, expires_at,"
                               " max_visits, visits, redirect_status, owner_key_id, deleted_at)"
                               " VALUES (1, 'owned', 'https://example.com/owned', 11,"
                               " 1600000000001, 1900000000000, 50, 5, 302, 3, 1600000000009);"
                               "INSERT INTO visits_daily (link_id, day, count)"
                               " VALUES (1, 19000, 4), (1, 19001, 1);");
    (void)snprintf(sql, sizeof(sql),
                   "INSERT INTO links (id, code, url, url_hash, created_at, redirect_status)"
                   " VALUES (2, 'plain', '%s', %lld, 1600000000002, 301)",
                   plain_url, (long long)expected_url_hash(plain_url, strlen(plain_url)));
    execute_sql(fixture->path, sql);
    assert_int_equal(query_integer(fixture->path, "PRAGMA user_version"), 1);

    store = open_store(fixture->path);
    assert_int_equal(query_integer(fixture->path, "PRAGMA user_version"), 3);
    assert_int_equal(query_integer(fixture->path,
                                   "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND"
                                   " name IN ('links_dedupe', 'links_owner', 'links_expiry')"),
                     3);
    assert_int_equal(
        query_integer(
            fixture->path,
            "SELECT strict AND wr FROM pragma_table_list WHERE name = 'visits_referrers'"),
        1);

    /* The old rows keep every value and read the new columns' defaults. */
    assert_int_equal(get_link(store, "owned", &link), 0);
    assert_int_equal(link.id, 1);
    assert_string_equal(link.url, "https://example.com/owned");
    assert_int_equal(link.created_at, 1600000000001);
    assert_int_equal(link.expires_at, 1900000000000);
    assert_int_equal(link.max_visits, 50);
    assert_int_equal(link.visits, 5);
    assert_int_equal(link.redirect_status, 302);
    assert_int_equal(link.owner_key_id, 3);
    assert_int_equal(link.deleted_at, 1600000000009);
    assert_int_equal(link.cache_max_age, -1);
    assert_false(link.is_alias);
    assert_int_equal(link.expired_at, 0);
    store_link_clear(&link);

    memset(&key, 0xff, sizeof(key));
    assert_int_equal(store_list_keys(store, copy_first_key, &key), 1);
    assert_int_equal(key.id, 3);
    assert_string_equal(key.name, "ops");
    assert_int_equal(key.created_at, 1600000000000);
    assert_int_equal(key.revoked_at, 0);
    assert_int_equal(key.rate, 0);
    assert_int_equal(key.burst, 0);
    for (i = 0; i < STORE_KEY_HASH_BYTES; i++)
        assert_int_equal(key.hash[i], 0);

    assert_int_equal(
        store_link_stats(store, 1, 19000, 19001, days, 4, &days_len, hosts, 2, &hosts_len), 0);
    assert_int_equal(days_len, 2);
    assert_int_equal(days[0].day, 19000);
    assert_int_equal(days[0].count, 4);
    assert_int_equal(days[1].day, 19001);
    assert_int_equal(days[1].count, 1);
    assert_int_equal(hosts_len, 0);

    /* The url_hash written by the old code finds the old link. */
    fill_create(&op, 10, "new", plain_url);
    op.link.cache_max_age = -1;
    op.dedupe = true;
    assert_int_equal(store_apply(store, &op, 1), 0);
    assert_int_equal(op.result, STORE_DEDUPED);
    assert_int_equal(op.link.id, 2);
    assert_string_equal(op.link.code, "plain");
    store_close(store);
}

static void non_database_file_is_rejected(void **state)
{
    struct fixture *fixture = *state;
    const char text[] = "this is a text file, not an SQLite database\n";
    char error[STORE_ERROR_MAX] = "";
    struct store *store = NULL;
    char folder[96];
    char content[8192];
    FILE *file;
    int i;

    (void)snprintf(folder, sizeof(folder), "%s/data", fixture->dir);
    assert_int_equal(mkdir(folder, 0755), 0);
    file = fopen(fixture->path, "w");
    assert_non_null(file);
    for (i = 0; i < 100; i++)
        assert_int_equal(fputs(text, file) >= 0, 1);
    assert_int_equal(fclose(file), 0);

    assert_int_equal(store_open(fixture->path, &store, error, sizeof(error)), -EILSEQ);
    assert_null(store);
    assert_contains(error, fixture->path);
    assert_contains(error, "not a database");

    /* The file is left as it was. */
    file = fopen(fixture->path, "r");
    assert_non_null(file);
    assert_int_equal(fread(content, 1, sizeof(content), file), 100 * strlen(text));
    assert_int_equal(fclose(file), 0);
    assert_memory_equal(content, text, strlen(text));
}

static void postgres_url_is_not_supported(void **state)
{
    const char *locations[] = {"postgres://shortd:secret@127.0.0.1/shortd",
                               "postgresql://shortd:secret@127.0.0.1/shortd",
                               "POSTGRES://shortd:secret@127.0.0.1/shortd"};
    char error[STORE_ERROR_MAX];
    struct store *store;
    size_t i;

    for (i = 0; i < sizeof(locations) / sizeof(locations[0]); i++) {
        error[0] = '\0';
        store = (struct store *)locations; /* any non-NULL value */
        assert_int_equal(store_open(locations[i], &store, error, sizeof(error)), -EPROTONOSUPPORT);
        assert_null(store);
        assert_contains(error, "PostgreSQL support is not built");
        assert_not_contains(error, "secret");
    }
}

static void empty_location_is_invalid(void **state)
{
    char error[STORE_ERROR_MAX] = "";
    struct store *store = NULL;

    assert_int_equal(store_open("", &store, error, sizeof(error)), -EINVAL);
    assert_null(store);
    assert_contains(error, "empty");
}

static void create_then_get_returns_every_byte(void **state)
{
    struct fixture *fixture = *state;
    char printable[128] = "https://example.com/";
    size_t printable_len = strlen(printable);
    char percent[] = "https://example.com/%00%25%2F%E2%82%AC?q=%20%0D%0A#%23";
    char non_utf8[] = "https://example.com/\xff\xfe\xc3";
    char code_max[STORE_CODE_MAX + 1];
    char *long_url;
    char *urls[4];
    size_t url_lens[4];
    struct store_op ops[4];
    struct store_link link;
    struct store *store;
    char sql[160];
    size_t i;
    int c;

    for (c = 0x20; c < 0x7f; c++)
        printable[printable_len++] = (char)c;
    printable[printable_len] = '\0';
    long_url = malloc(8193);
    assert_non_null(long_url);
    memcpy(long_url, "https://example.com/", 20);
    for (i = 20; i < 8192; i++)
        long_url[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36];
    long_url[8192] = '\0';
    memset(code_max, 'z', STORE_CODE_MAX);
    code_max[STORE_CODE_MAX] = '\0';

    urls[0] = printable;
    urls[1] = percent;
    urls[2] = long_url;
    urls[3] = non_utf8;
    for (i = 0; i < 4; i++)
        url_lens[i] = strlen(urls[i]);
    assert_int_equal(url_lens[0], 20 + 95);
    assert_int_equal(url_lens[2], 8192);

    store = open_store(fixture->path);
    execute_sql(fixture->path, "INSERT INTO api_keys (id, key_hash, created_at)"
                               " VALUES (7, x'0102', 1)");

    fill_create(&ops[0], 11, "printable", urls[0]);
    fill_create(&ops[1], 12, "percent_escapes", urls[1]);
    fill_create(&ops[2], 13, code_max, urls[2]);
    fill_create(&ops[3], 14, "non-utf8", urls[3]);
    ops[0].link.expires_at = 1800000000123;
    ops[0].link.max_visits = 1000;
    ops[0].link.visits = 3;
    ops[0].link.redirect_status = 308;
    ops[0].link.owner_key_id = 7;
    ops[1].link.redirect_status = 302;
    ops[2].link.redirect_status = 307;
    assert_int_equal(store_apply(store, ops, 4), 0);

    for (i = 0; i < 4; i++) {
        const struct store_link *expected = &ops[i].link;

        assert_int_equal(ops[i].result, 0);
        assert_int_equal(store_get_link(store, expected->code, expected->code_len, &link), 0);
        assert_int_equal(link.id, expected->id);
        assert_int_equal(link.code_len, expected->code_len);
        assert_string_equal(link.code, expected->code);
        assert_int_equal(link.url_len, url_lens[i]);
        assert_memory_equal(link.url, urls[i], url_lens[i]);
        assert_int_equal(link.url[link.url_len], '\0');
        assert_int_equal(link.created_at, expected->created_at);
        assert_int_equal(link.expires_at, expected->expires_at);
        assert_int_equal(link.max_visits, expected->max_visits);
        assert_int_equal(link.visits, expected->visits);
        assert_int_equal(link.redirect_status, expected->redirect_status);
        assert_int_equal(link.owner_key_id, expected->owner_key_id);
        assert_int_equal(link.deleted_at, 0);
        store_link_clear(&link);
        assert_null(link.url);

        (void)snprintf(sql, sizeof(sql), "SELECT url_hash FROM links WHERE id = %d",
                       (int)expected->id);
        assert_int_equal(query_integer(fixture->path, sql),
                         expected_url_hash(urls[i], url_lens[i]));
    }

    /* Zero fields are stored as NULL, the schema's "none". */
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links WHERE id = 12 AND"
                                                  " expires_at IS NULL AND max_visits IS NULL AND"
                                                  " owner_key_id IS NULL AND deleted_at IS NULL"),
                     1);

    store_close(store);
    free(long_url);
}

static void create_then_get_returns_new_fields(void **state)
{
    struct fixture *fixture = *state;
    const int64_t cache_max_ages[] = {-1, 0, 3600};
    struct store_op ops[4];
    struct store_link link;
    struct store *store;
    char sql[128];
    size_t i;

    store = open_store(fixture->path);
    fill_create(&ops[0], 1, "unset", "https://example.com/a");
    fill_create(&ops[1], 2, "zero", "https://example.com/b");
    fill_create(&ops[2], 3, "alias", "https://example.com/c");
    fill_create(&ops[3], 4, "negative", "https://example.com/d");
    for (i = 0; i < 3; i++)
        ops[i].link.cache_max_age = cache_max_ages[i];
    ops[2].link.is_alias = true;
    ops[2].link.expires_at = 1700000001000;
    ops[2].link.expired_at = 1700000002000;
    ops[3].link.cache_max_age = -2;
    assert_int_equal(store_apply(store, ops, 4), 0);
    assert_int_equal(ops[3].result, -EINVAL);

    for (i = 0; i < 3; i++) {
        assert_int_equal(ops[i].result, 0);
        assert_int_equal(get_link(store, ops[i].link.code, &link), 0);
        assert_int_equal(link.cache_max_age, cache_max_ages[i]);
        assert_int_equal(link.is_alias, i == 2);
        assert_int_equal(link.expired_at, i == 2 ? 1700000002000 : 0);
        store_link_clear(&link);
    }

    /* An unset cache_max_age (-1) is stored as NULL, while 0 s is a value of its own. */
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links WHERE id = 1 AND"
                                                  " cache_max_age IS NULL AND is_alias = 0 AND"
                                                  " expired_at IS NULL"),
                     1);
    for (i = 2; i <= 3; i++) {
        (void)snprintf(sql, sizeof(sql), "SELECT cache_max_age FROM links WHERE id = %zu", i);
        assert_int_equal(query_integer(fixture->path, sql), cache_max_ages[i - 1]);
    }
    assert_int_equal(query_integer(fixture->path, "SELECT is_alias FROM links WHERE id = 3"), 1);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links WHERE id = 4"), 0);
    store_close(store);
}

static void get_unknown_code_returns_enoent(void **state)
{
    struct fixture *fixture = *state;
    char too_long[STORE_CODE_MAX + 2];
    struct store_link link;
    struct store *store;

    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    store = open_store(fixture->path);
    create_link(store, 1, "known", "https://example.com/");

    memset(&link, 0xff, sizeof(link));
    assert_int_equal(get_link(store, "unknown", &link), -ENOENT);
    assert_null(link.url);
    assert_int_equal(link.url_len, 0);
    assert_int_equal(get_link(store, "Known", &link), -ENOENT);
    assert_int_equal(get_link(store, too_long, &link), -ENOENT);
    assert_int_equal(store_get_link(store, "known", 0, &link), -ENOENT);
    store_close(store);
}

static void apply_reports_duplicate_codes_alone(void **state)
{
    struct fixture *fixture = *state;
    struct store_op ops[5];
    struct store_link link;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "taken", "https://example.com/first");

    fill_create(&ops[0], 2, "a", "https://example.com/a");
    fill_create(&ops[1], 3, "taken", "https://example.com/second");
    fill_create(&ops[2], 4, "b", "https://example.com/b");
    fill_create(&ops[3], 5, "a", "https://example.com/a-again");
    fill_create(&ops[4], 6, "c", "https://example.com/c");
    assert_int_equal(store_apply(store, ops, 5), 0);

    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, -EEXIST);
    assert_int_equal(ops[2].result, 0);
    assert_int_equal(ops[3].result, -EEXIST);
    assert_int_equal(ops[4].result, 0);

    assert_int_equal(get_link(store, "a", &link), 0);
    assert_string_equal(link.url, "https://example.com/a");
    assert_int_equal(link.id, 2);
    store_link_clear(&link);
    assert_int_equal(get_link(store, "taken", &link), 0);
    assert_string_equal(link.url, "https://example.com/first");
    assert_int_equal(link.id, 1);
    store_link_clear(&link);
    assert_int_equal(get_link(store, "b", &link), 0);
    store_link_clear(&link);
    assert_int_equal(get_link(store, "c", &link), 0);
    store_link_clear(&link);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 4);
    store_close(store);
}

static void apply_delete_reports_each_case(void **state)
{
    struct fixture *fixture = *state;
    struct store_op ops[4];
    struct store_link link;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "live", "https://example.com/live");
    create_link(store, 2, "gone", "https://example.com/gone");
    fill_delete(&ops[0], "gone", 1700000000500);
    assert_int_equal(store_apply(store, ops, 1), 0);
    assert_int_equal(ops[0].result, 0);

    fill_delete(&ops[0], "live", 1700000000999);
    fill_delete(&ops[1], "missing", 1700000000999);
    fill_delete(&ops[2], "gone", 1700000000999);
    fill_delete(&ops[3], "live", 1700000001000);
    assert_int_equal(store_apply(store, ops, 4), 0);

    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, -ENOENT);
    assert_int_equal(ops[2].result, -EALREADY);
    assert_int_equal(ops[3].result, -EALREADY);

    /* Deleted links stay readable, with the time of the first delete. */
    assert_int_equal(get_link(store, "live", &link), 0);
    assert_int_equal(link.deleted_at, 1700000000999);
    assert_string_equal(link.url, "https://example.com/live");
    store_link_clear(&link);
    assert_int_equal(get_link(store, "gone", &link), 0);
    assert_int_equal(link.deleted_at, 1700000000500);
    store_link_clear(&link);
    store_close(store);
}

static void apply_rejects_invalid_ops_alone(void **state)
{
    struct fixture *fixture = *state;
    struct store_op ops[6];
    struct store_link link;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "live", "https://example.com/live");

    fill_create(&ops[0], 2, "no-status", "https://example.com/");
    ops[0].link.redirect_status = 200;
    fill_create(&ops[1], 3, "no-url", "https://example.com/");
    ops[1].link.url = NULL;
    fill_create(&ops[2], 0, "no-id", "https://example.com/");
    fill_create(&ops[3], 5, "", "https://example.com/");
    fill_delete(&ops[4], "live", 0);
    fill_create(&ops[5], 6, "valid", "https://example.com/valid");
    assert_int_equal(store_apply(store, ops, 6), 0);

    assert_int_equal(ops[0].result, -EINVAL);
    assert_int_equal(ops[1].result, -EINVAL);
    assert_int_equal(ops[2].result, -EINVAL);
    assert_int_equal(ops[3].result, -EINVAL);
    assert_int_equal(ops[4].result, -EINVAL);
    assert_int_equal(ops[5].result, 0);
    assert_int_equal(get_link(store, "live", &link), 0);
    assert_int_equal(link.deleted_at, 0);
    store_link_clear(&link);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 2);

    assert_int_equal(store_apply(store, ops, 0), 0);
    store_close(store);
}

static void apply_duplicate_id_fails_whole_batch(void **state)
{
    struct fixture *fixture = *state;
    struct store_op ops[3];
    struct store_link link;
    struct store *store;

    store = open_store(fixture->path);
    create_link(store, 1, "first", "https://example.com/first");

    fill_create(&ops[0], 2, "second", "https://example.com/second");
    fill_create(&ops[1], 1, "same-id", "https://example.com/same-id");
    fill_create(&ops[2], 3, "third", "https://example.com/third");
    assert_int_equal(store_apply(store, ops, 3), -EINVAL);

    assert_int_equal(ops[0].result, -EINVAL);
    assert_int_equal(ops[1].result, -EINVAL);
    assert_int_equal(ops[2].result, -EINVAL);
    assert_contains(store_last_error(store), "insert of link same-id (write 2 of 3) failed");
    assert_int_equal(get_link(store, "second", &link), -ENOENT);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 1);

    /* The connection is out of the failed transaction. */
    create_link(store, 2, "second", "https://example.com/second");
    store_close(store);
}

static void reserve_ids_never_overlap(void **state)
{
    struct fixture *fixture = *state;
    struct store *first_store;
    struct store *second_store;
    uint64_t first = 0;

    first_store = open_store(fixture->path);
    assert_int_equal(store_reserve_ids(first_store, 10, &first), 0);
    assert_int_equal(first, 1);
    assert_int_equal(store_reserve_ids(first_store, 5, &first), 0);
    assert_int_equal(first, 11);
    assert_int_equal(store_reserve_ids(first_store, 0, &first), -EINVAL);
    store_close(first_store);

    first_store = open_store(fixture->path);
    second_store = open_store(fixture->path);
    assert_int_equal(store_reserve_ids(first_store, 1, &first), 0);
    assert_int_equal(first, 16);
    assert_int_equal(store_reserve_ids(second_store, 3, &first), 0);
    assert_int_equal(first, 17);
    assert_int_equal(store_reserve_ids(first_store, 2, &first), 0);
    assert_int_equal(first, 20);
    store_close(second_store);
    store_close(first_store);
}

static void reserve_ids_stop_at_int64_max(void **state)
{
    struct fixture *fixture = *state;
    struct store *store;
    uint64_t first = 0;

    store = open_store(fixture->path);
    assert_int_equal(store_reserve_ids(store, 1, &first), 0);
    execute_sql(fixture->path, "UPDATE settings SET value = CAST('9223372036854775806' AS BLOB)"
                               " WHERE name = 'next_id'");

    assert_int_equal(store_reserve_ids(store, 3, &first), -EOVERFLOW);
    assert_contains(store_last_error(store), "only 2 ids are left");
    assert_int_equal(store_reserve_ids(store, 2, &first), 0);
    assert_int_equal(first, INT64_MAX - 1);
    assert_int_equal(store_reserve_ids(store, 1, &first), -EOVERFLOW);

    execute_sql(fixture->path, "UPDATE settings SET value = CAST('12x' AS BLOB)"
                               " WHERE name = 'next_id'");
    assert_int_equal(store_reserve_ids(store, 1, &first), -EILSEQ);
    assert_contains(store_last_error(store), "next_id");
    store_close(store);
}

static void second_connection_sees_commits(void **state)
{
    struct fixture *fixture = *state;
    struct store *writer;
    struct store *reader;
    struct store_link link;
    struct store_op op;

    writer = open_store(fixture->path);
    reader = open_store(fixture->path);
    assert_int_equal(get_link(reader, "shared", &link), -ENOENT);

    create_link(writer, 1, "shared", "https://example.com/shared");
    assert_int_equal(get_link(reader, "shared", &link), 0);
    assert_string_equal(link.url, "https://example.com/shared");
    store_link_clear(&link);

    fill_delete(&op, "shared", 1700000002000);
    assert_int_equal(store_apply(reader, &op, 1), 0);
    assert_int_equal(op.result, 0);
    assert_int_equal(get_link(writer, "shared", &link), 0);
    assert_int_equal(link.deleted_at, 1700000002000);
    store_link_clear(&link);

    store_close(reader);
    store_close(writer);
}

static void setting_is_set_once(void **state)
{
    struct fixture *fixture = *state;
    const unsigned char key[16] = {0, 1, 2, 0xff, 0, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0};
    const unsigned char other[4] = {9, 9, 9, 9};
    unsigned char value[32];
    struct store *first_store;
    struct store *second_store;
    size_t value_len = 0;

    first_store = open_store(fixture->path);
    second_store = open_store(fixture->path);
    assert_int_equal(
        store_get_setting(first_store, "codegen_key", value, sizeof(value), &value_len), -ENOENT);

    assert_int_equal(store_set_setting_once(first_store, "codegen_key", key, sizeof(key)), 0);
    assert_int_equal(store_set_setting_once(first_store, "codegen_key", other, sizeof(other)),
                     -EEXIST);
    assert_int_equal(store_set_setting_once(second_store, "codegen_key", other, sizeof(other)),
                     -EEXIST);

    assert_int_equal(
        store_get_setting(second_store, "codegen_key", value, sizeof(value), &value_len), 0);
    assert_int_equal(value_len, sizeof(key));
    assert_memory_equal(value, key, sizeof(key));
    assert_int_equal(store_get_setting(second_store, "codegen_key", value, 8, &value_len),
                     -ENOBUFS);
    assert_int_equal(value_len, sizeof(key));

    assert_int_equal(store_set_setting_once(first_store, "empty", NULL, 0), 0);
    value_len = 99;
    assert_int_equal(store_get_setting(first_store, "empty", NULL, 0, &value_len), 0);
    assert_int_equal(value_len, 0);

    store_close(second_store);
    store_close(first_store);
}

static void full_disk_fails_whole_batch(void **state)
{
    struct fixture *fixture = *state;
    enum { BATCH = 20 };
    struct store_op ops[BATCH];
    char codes[BATCH][16];
    struct store_link link;
    struct store *store;
    sqlite3 *db;
    char *url;
    char sql[64];
    int64_t pages;
    size_t i;

    url = malloc(4001);
    assert_non_null(url);
    memset(url, 'u', 4000);
    memcpy(url, "https://example.com/", 20);
    url[4000] = '\0';
    store = open_store_with_handle(fixture->path, &db);

    /* Room for two more pages, while the batch needs one per URL. */
    pages = query_integer(fixture->path, "PRAGMA page_count");
    (void)snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %d", (int)pages + 2);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);

    for (i = 0; i < BATCH; i++) {
        (void)snprintf(codes[i], sizeof(codes[i]), "full%zu", i);
        fill_create(&ops[i], (int64_t)i + 1, codes[i], url);
    }
    assert_int_equal(store_apply(store, ops, BATCH), -ENOSPC);
    for (i = 0; i < BATCH; i++)
        assert_int_equal(ops[i].result, -ENOSPC);
    assert_contains(store_last_error(store), "database or disk is full");
    for (i = 0; i < BATCH; i++)
        assert_int_equal(get_link(store, codes[i], &link), -ENOENT);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 0);

    /* Once there is room again the same connection commits the batch. */
    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(store_ping(store), 0);
    assert_int_equal(store_apply(store, ops, BATCH), 0);
    for (i = 0; i < BATCH; i++)
        assert_int_equal(ops[i].result, 0);
    assert_int_equal(get_link(store, codes[BATCH - 1], &link), 0);
    assert_int_equal(link.url_len, 4000);
    store_link_clear(&link);

    store_close(store);
    free(url);
}

struct read_only_run {
    const char *path;
    int capset_rc;
    int open_rc;
    char open_error[STORE_ERROR_MAX];
    int get_rc;
    char get_url[64];
    int apply_rc;
    int apply_result;
    char apply_error[STORE_ERROR_MAX];
    int reserve_rc;
    int setting_rc;
    int ping_rc;
};

/* Drops the capabilities that let root ignore file modes, for this thread only. */
static int drop_file_mode_override(void)
{
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    const int capabilities[] = {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER};
    size_t i;

    if (syscall(SYS_capget, &header, data) != 0)
        return -errno;
    for (i = 0; i < sizeof(capabilities) / sizeof(capabilities[0]); i++)
        data[capabilities[i] / 32].effective &= ~(1u << (capabilities[i] % 32));
    if (syscall(SYS_capset, &header, data) != 0)
        return -errno;
    return 0;
}

static void *use_read_only_store(void *arg)
{
    struct read_only_run *run = arg;
    struct store *store = NULL;
    struct store_link link;
    struct store_op op;
    uint64_t first;

    run->capset_rc = drop_file_mode_override();
    if (run->capset_rc < 0)
        return NULL;

    run->open_rc = store_open(run->path, &store, run->open_error, sizeof(run->open_error));
    if (run->open_rc < 0)
        return NULL;

    run->get_rc = get_link(store, "kept", &link);
    if (run->get_rc == 0)
        (void)snprintf(run->get_url, sizeof(run->get_url), "%s", link.url);
    store_link_clear(&link);

    memset(&op, 0, sizeof(op));
    op.kind = STORE_OP_CREATE;
    op.link.id = 2;
    op.link.code_len = 3;
    memcpy(op.link.code, "new", 4);
    op.link.url = "https://example.com/new";
    op.link.url_len = strlen(op.link.url);
    op.link.redirect_status = 301;
    run->apply_rc = store_apply(store, &op, 1);
    run->apply_result = op.result;
    (void)snprintf(run->apply_error, sizeof(run->apply_error), "%s", store_last_error(store));

    run->reserve_rc = store_reserve_ids(store, 1, &first);
    run->setting_rc = store_set_setting_once(store, "codegen_key", "k", 1);
    run->ping_rc = store_ping(store);
    store_close(store);
    return NULL;
}

static void read_only_file_rejects_writes(void **state)
{
    struct fixture *fixture = *state;
    struct read_only_run run = {.path = fixture->path, .open_rc = 1};
    struct store *store;
    pthread_t thread;

    store = open_store(fixture->path);
    create_link(store, 1, "kept", "https://example.com/kept");
    store_close(store);
    assert_int_equal(chmod(fixture->path, 0444), 0);

    assert_int_equal(pthread_create(&thread, NULL, use_read_only_store, &run), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);

    assert_int_equal(run.capset_rc, 0);
    if (run.open_rc != 0)
        fail_msg("store_open returned %d: %s", run.open_rc, run.open_error);
    assert_int_equal(run.get_rc, 0);
    assert_string_equal(run.get_url, "https://example.com/kept");
    assert_int_equal(run.apply_rc, -EROFS);
    assert_int_equal(run.apply_result, -EROFS);
    assert_contains(run.apply_error, "readonly database");
    assert_int_equal(run.reserve_rc, -EROFS);
    assert_int_equal(run.setting_rc, -EROFS);
    assert_int_equal(run.ping_rc, 0);

    assert_int_equal(chmod(fixture->path, 0644), 0);
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM links"), 1);
}

struct unwritable_folder_run {
    char paths[2][256];
    int capset_rc;
    int open_rc[2];
    char open_error[2][STORE_ERROR_MAX];
};

static void *open_in_unwritable_folder(void *arg)
{
    struct unwritable_folder_run *run = arg;
    struct store *store;
    int i;

    run->capset_rc = drop_file_mode_override();
    if (run->capset_rc < 0)
        return NULL;

    for (i = 0; i < 2; i++) {
        store = NULL;
        run->open_rc[i] =
            store_open(run->paths[i], &store, run->open_error[i], sizeof(run->open_error[i]));
        store_close(store);
    }
    return NULL;
}

static void unwritable_folder_returns_eacces(void **state)
{
    struct fixture *fixture = *state;
    struct unwritable_folder_run run = {.open_rc = {1, 1}};
    char folder[160];
    pthread_t thread;

    (void)snprintf(folder, sizeof(folder), "%s/locked", fixture->dir);
    assert_int_equal(mkdir(folder, 0555), 0);
    (void)snprintf(run.paths[0], sizeof(run.paths[0]), "%s/new/shortd.db", folder);
    (void)snprintf(run.paths[1], sizeof(run.paths[1]), "%s/shortd.db", folder);

    assert_int_equal(pthread_create(&thread, NULL, open_in_unwritable_folder, &run), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);

    assert_int_equal(run.capset_rc, 0);
    assert_int_equal(run.open_rc[0], -EACCES);
    assert_contains(run.open_error[0], "creating folder");
    assert_contains(run.open_error[0], "Permission denied");
    assert_int_equal(run.open_rc[1], -EACCES);
    assert_contains(run.open_error[1], run.paths[1]);
    assert_contains(run.open_error[1], "Permission denied");
    assert_int_equal(chmod(folder, 0755), 0);
}

enum { CONCURRENT_BATCHES = 40, CONCURRENT_BATCH_SIZE = 100 };
#define CONCURRENT_LINKS (CONCURRENT_BATCHES * CONCURRENT_BATCH_SIZE)

/* Fields of link id, derived from the id alone so the reader can check them. */
static void concurrent_link(int64_t id, char *code, char *url)
{
    size_t len;

    (void)snprintf(code, 16, "c%05d", (int)id);
    len = (size_t)snprintf(url, 600, "https://example.com/%d/", (int)id);
    memset(url + len, 'a' + (int)(id % 26), (size_t)(id % 500));
    url[len + (size_t)(id % 500)] = '\0';
}

struct concurrent_run {
    struct store *writer;
    struct store *reader;
    atomic_int writer_done;
    int apply_rc;
    int read_errors;     /* reads that failed with something other than -ENOENT */
    int incomplete_rows; /* rows read whose fields differ from what was written */
    int rows_read;
    int missing_at_end; /* links not found after the writer finished */
    char first_problem[256];
};

static void note_problem(struct concurrent_run *run, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void note_problem(struct concurrent_run *run, const char *format, ...)
{
    va_list args;

    if (run->first_problem[0] != '\0')
        return;
    va_start(args, format);
    (void)vsnprintf(run->first_problem, sizeof(run->first_problem), format, args);
    va_end(args);
}

static void *write_batches(void *arg)
{
    struct concurrent_run *run = arg;
    static char urls[CONCURRENT_BATCH_SIZE][600];
    struct store_op ops[CONCURRENT_BATCH_SIZE];
    int batch;
    int i;

    for (batch = 0; batch < CONCURRENT_BATCHES && run->apply_rc == 0; batch++) {
        for (i = 0; i < CONCURRENT_BATCH_SIZE; i++) {
            int64_t id = (int64_t)batch * CONCURRENT_BATCH_SIZE + i + 1;
            char code[16];

            concurrent_link(id, code, urls[i]);
            fill_create(&ops[i], id, code, urls[i]);
            ops[i].link.visits = id * 3;
            ops[i].link.max_visits = id * 7;
        }
        run->apply_rc = store_apply(run->writer, ops, CONCURRENT_BATCH_SIZE);
    }
    atomic_store(&run->writer_done, 1);
    return NULL;
}

/* Reads link id and checks every field; returns 0, -ENOENT or another error. */
static int check_concurrent_link(struct concurrent_run *run, int64_t id)
{
    char code[16];
    char url[600];
    struct store_link link;
    int rc;

    concurrent_link(id, code, url);
    rc = get_link(run->reader, code, &link);
    if (rc == -ENOENT)
        return rc;
    if (rc != 0) {
        run->read_errors++;
        note_problem(run, "reading %s returned %d: %s", code, rc, store_last_error(run->reader));
        return rc;
    }

    run->rows_read++;
    if (link.id != id || link.url_len != strlen(url) || memcmp(link.url, url, link.url_len) ||
        link.visits != id * 3 || link.max_visits != id * 7 ||
        link.created_at != 1700000000000 + id || link.redirect_status != 301) {
        run->incomplete_rows++;
        note_problem(run, "link %s read back with id %lld and url length %zu", code,
                     (long long)link.id, link.url_len);
    }
    store_link_clear(&link);
    return 0;
}

static void reader_sees_only_complete_rows(void **state)
{
    struct fixture *fixture = *state;
    struct concurrent_run run = {0};
    pthread_t writer;
    int64_t id = 1;
    int64_t i;

    run.writer = open_store(fixture->path);
    run.reader = open_store(fixture->path);
    atomic_init(&run.writer_done, 0);

    assert_int_equal(pthread_create(&writer, NULL, write_batches, &run), 0);
    while (!atomic_load(&run.writer_done)) {
        (void)check_concurrent_link(&run, id);
        id = id % CONCURRENT_LINKS + 1;
    }
    assert_int_equal(pthread_join(writer, NULL), 0);

    for (i = 1; i <= CONCURRENT_LINKS; i++) {
        if (check_concurrent_link(&run, i) == -ENOENT)
            run.missing_at_end++;
    }

    if (run.first_problem[0] != '\0')
        print_message("first problem: %s\n", run.first_problem);
    assert_int_equal(run.apply_rc, 0);
    assert_int_equal(run.read_errors, 0);
    assert_int_equal(run.incomplete_rows, 0);
    assert_int_equal(run.missing_at_end, 0);
    assert_true(run.rows_read >= CONCURRENT_LINKS);

    store_close(run.reader);
    store_close(run.writer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(store_open_creates_folder_and_file, setup, teardown),
        cmocka_unit_test_setup_teardown(store_reopen_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(user_version_counts_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_first_opens_all_succeed, setup, teardown),
        cmocka_unit_test_setup_teardown(connection_uses_durable_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(sqlite_special_names_stay_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(newer_schema_is_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(version_1_database_upgrades_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(non_database_file_is_rejected, setup, teardown),
        cmocka_unit_test(postgres_url_is_not_supported),
        cmocka_unit_test(empty_location_is_invalid),
        cmocka_unit_test_setup_teardown(create_then_get_returns_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(create_then_get_returns_new_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(get_unknown_code_returns_enoent, setup, teardown),
        cmocka_unit_test_setup_teardown(apply_reports_duplicate_codes_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(apply_delete_reports_each_case, setup, teardown),
        cmocka_unit_test_setup_teardown(apply_rejects_invalid_ops_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(apply_duplicate_id_fails_whole_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(reserve_ids_never_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(reserve_ids_stop_at_int64_max, setup, teardown),
        cmocka_unit_test_setup_teardown(second_connection_sees_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(setting_is_set_once, setup, teardown),
        cmocka_unit_test_setup_teardown(full_disk_fails_whole_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(read_only_file_rejects_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_folder_returns_eacces, setup, teardown),
        cmocka_unit_test_setup_teardown(reader_sees_only_complete_rows, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
