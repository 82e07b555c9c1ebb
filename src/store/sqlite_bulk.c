/*
 * Bulk import (store_import_links) and the scan for export
 * (store_scan_links) in the SQLite backend.
 *
 * An import batch is one write transaction: it takes its ids from the
 * next_id setting, inserts every link through the prepared INSERT of
 * sqlite.c, and commits with the connection's synchronous=FULL, so one
 * fsync of the write-ahead log covers the whole batch. The caller chooses
 * the batch size; with tens of thousands of links a batch costs little more
 * than the page writes themselves.
 *
 * The first import on a connection enlarges its page cache to
 * IMPORT_CACHE_KIB. Imported codes come in no particular order, so each
 * insert into the UNIQUE index on code lands on a random leaf page. Once
 * that index outgrows SQLite's default cache of 2 MB, its pages are read
 * back from the file again and again. Storing the million links that
 * bench/import.py generates, in batches of 65536 and without parsing them,
 * took 4.9 s with the default cache and 3.8 s with this one (three runs
 * each on a 2-core machine).
 *
 * Links are inserted in the caller's order, so the table only grows at its
 * end and its pages stay full. Inserting each batch in code order instead
 * was slower with the larger cache and left the table 10% larger. Turning
 * synchronous down to NORMAL, or the WAL auto-checkpoint off until the end,
 * changed the time by less than the spread between runs (about 10%), so
 * each batch stays durable when store_import_links returns.
 *
 * The scan reads every live link with one SELECT in autocommit mode, which
 * SQLite runs as one read transaction, so it sees one snapshot however long
 * it takes and whatever other connections commit meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

/*
 * Page cache of a connection that imports, in KiB. The index on code takes
 * about 17 MB per million links with 7-character codes (measured with the
 * dbstat table of SQLite 3.40), so 64 MiB keeps it in memory up to about
 * three million such links.
 */
#define IMPORT_CACHE_KIB 65536

const char *const store__sqlite_bulk_sql[STMT_COUNT] = {
    [STMT_SCAN_LINKS] = "SELECT " SQLITE_LINK_COLUMNS " FROM links"
                        " WHERE deleted_at IS NULL ORDER BY id",
};

/* Enlarges the page cache on the first import of this connection. Returns 0 or a negative errno. */
static int enlarge_cache(struct sqlite_store *s)
{
    char sql[64];
    int rc;

    if (s->import_cache_set)
        return 0;

    (void)snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d", IMPORT_CACHE_KIB);
    rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store__sqlite_fail(s, rc, "setting the page cache for an import");
    s->import_cache_set = true;
    return 0;
}

/*
 * Inserts links[0..count) inside the open transaction. Sets each result;
 * returns 0, or a negative errno with the connection's error set when the
 * whole batch must fail.
 */
static int insert_links(struct sqlite_store *s, struct store_link *links, int *results,
                        size_t count)
{
    char code[STORE_CODE_MAX + 1];
    struct store_link *link;
    size_t i;
    int rc;

    for (i = 0; i < count; i++) {
        link = &links[i];
        results[i] = store__sqlite_check_link(link);
        if (results[i] < 0)
            continue;

        rc = store__sqlite_insert_link(s, link, store__sqlite_url_hash(link->url, link->url_len));
        if (rc == SQLITE_DONE)
            continue;

        /* As in store_apply: ABORT undoes this insert alone and the transaction goes on. */
        if (rc == SQLITE_CONSTRAINT_UNIQUE) {
            results[i] = -EEXIST;
            continue;
        }
        return store__sqlite_fail(s, rc, "import of link %s (%zu of %zu)",
                                  store__sqlite_printable_code(link->code, link->code_len, code),
                                  i + 1, count);
    }
    return 0;
}

int store__sqlite_import_links(struct store *store, struct store_link *links, int *results,
                               size_t count)
{
    struct sqlite_store *s = store__sqlite_from(store);
    uint64_t first = 0;
    size_t i;
    int err;
    int rc;

    err = enlarge_cache(s);
    if (err < 0)
        goto done;

    rc = store__sqlite_begin_write(s);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "begin of an import of %zu links", count);
        goto done;
    }

    err = store__sqlite_take_ids(s, count, &first);
    if (err < 0)
        goto done;
    for (i = 0; i < count; i++)
        links[i].id = (int64_t)(first + i);

    err = insert_links(s, links, results, count);
    if (err < 0)
        goto done;

    rc = store__sqlite_run(s, STMT_COMMIT);
    if (rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "commit of an import of %zu links", count);

done:
    (void)sqlite3_clear_bindings(s->stmt[STMT_INSERT_LINK]); /* always SQLITE_OK */
    if (err < 0) {
        store__sqlite_roll_back(s);
        for (i = 0; i < count; i++) {
            results[i] = err;
            links[i].id = 0;
        }
    }
    return err;
}

int store__sqlite_scan_links(struct store *store,
                             int (*fn)(const struct store_link *link, void *arg), void *arg)
{
    struct sqlite_store *s = store__sqlite_from(store);
    sqlite3_stmt *stmt = s->stmt[STMT_SCAN_LINKS];
    struct store_link link;
    int stop = 0;
    int err = 0;
    int rc;

    for (;;) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            break;

        memset(&link, 0, sizeof(link));
        err = store__sqlite_read_link(s, stmt, &link);
        if (err < 0)
            break;

        /* fn reads the URL in SQLite's buffer, valid until the next step. */
        link.url = (char *)sqlite3_column_text(stmt, 2);
        link.url_len = (size_t)sqlite3_column_bytes(stmt, 2);
        if (link.url == NULL) {
            store__set_error(&s->base, "scan of links failed: out of memory at link %" PRId64,
                             link.id);
            err = -ENOMEM;
            break;
        }

        stop = fn(&link, arg);
        if (stop != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "scan of links");

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    if (err < 0)
        return err;
    return stop;
}
