/*
 * Queries over many links in the SQLite backend: the expiry sweep
 * (store_expire_links) and listing (store_list_links).
 *
 * Both read through partial indexes created by schema migration 2.
 * links_expiry contains the live links with an expiry that are not marked
 * yet, so a sweep reads only links that are due or nearly due. links_owner
 * orders each owner's links by id. A query uses a partial index only when
 * its WHERE clause repeats every term of the index's WHERE clause, which is
 * why the SQL below contains terms that look redundant.
 *
 * The sweep copies the links it marks into memory inside its transaction
 * and calls the caller's function only after COMMIT succeeded, so that
 * function never sees a mark that a failed commit undid, and a failure
 * after the commit cannot leave marks the caller was not told about.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

const char *const store__sqlite_links_sql[STMT_COUNT] = {
    [STMT_SELECT_EXPIRED] =
        "SELECT " SQLITE_LINK_COLUMNS " FROM links"
        " WHERE deleted_at IS NULL AND expires_at IS NOT NULL AND expired_at IS NULL"
        " AND expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2",
    [STMT_MARK_EXPIRED] = "UPDATE links SET expired_at = ?1 WHERE id = ?2",
    [STMT_LIST_LINKS] = "SELECT " SQLITE_LINK_COLUMNS " FROM links"
                        " WHERE deleted_at IS NULL AND id < ?1 ORDER BY id DESC LIMIT ?2",
    [STMT_LIST_OWNER_LINKS] =
        "SELECT " SQLITE_LINK_COLUMNS " FROM links"
        " WHERE owner_key_id = ?1 AND deleted_at IS NULL AND id < ?2 ORDER BY id DESC LIMIT ?3",
};

/* Links copied by a sweep; each url is owned by its record. */
struct link_list {
    struct store_link *links;
    size_t len;
    size_t cap;
};

static void free_link_list(struct link_list *list)
{
    size_t i;

    for (i = 0; i < list->len; i++)
        store_link_clear(&list->links[i]);
    free(list->links);
}

/* Returns a zeroed record at the end of list, or NULL when out of memory. */
static struct store_link *append_link(struct link_list *list, size_t limit)
{
    struct store_link *grown;
    size_t cap;

    if (list->len == list->cap) {
        /* Start small: most sweeps find few links, whatever the limit. */
        cap = list->cap == 0 ? 16 : list->cap * 2;
        if (cap > limit)
            cap = limit;
        grown = realloc(list->links, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        list->links = grown;
        list->cap = cap;
    }

    memset(&list->links[list->len], 0, sizeof(list->links[0]));
    return &list->links[list->len++];
}

/*
 * Reads up to limit links that are due at now into list. Returns 0 or a
 * negative errno with the connection's error set.
 */
static int select_expired(struct sqlite_store *s, int64_t now, size_t limit, struct link_list *list)
{
    sqlite3_stmt *stmt = s->stmt[STMT_SELECT_EXPIRED];
    struct store_link *link;
    int err = 0;
    int rc;

    rc = sqlite3_bind_int64(stmt, 1, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 2, (int64_t)limit);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            break;

        link = append_link(list, limit);
        if (link == NULL) {
            store__set_error(&s->base, "expiry of links failed: out of memory after %zu links",
                             list->len);
            err = -ENOMEM;
            break;
        }
        err = store__sqlite_read_link_copy(s, stmt, link);
        if (err < 0)
            break;
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "search of expired links");

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    return err;
}

int store__sqlite_expire_links(struct store *store, int64_t now, size_t limit,
                               void (*fn)(const struct store_link *link, void *arg), void *arg)
{
    struct sqlite_store *s = store__sqlite_from(store);
    sqlite3_stmt *mark = s->stmt[STMT_MARK_EXPIRED];
    struct link_list list = {0};
    int err = 0;
    size_t i;
    int rc;

    rc = store__sqlite_begin_write(s);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "begin of an expiry sweep");
        goto done;
    }

    /* Reading every row before the first UPDATE keeps the scan off rows it changes. */
    err = select_expired(s, now, limit, &list);
    if (err < 0)
        goto done;

    for (i = 0; i < list.len; i++) {
        rc = sqlite3_bind_int64(mark, 1, now);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(mark, 2, list.links[i].id);
        if (rc == SQLITE_OK)
            rc = store__sqlite_run(s, STMT_MARK_EXPIRED);
        if (rc != SQLITE_DONE) {
            err =
                store__sqlite_fail(s, rc, "marking of link %" PRId64 " expired", list.links[i].id);
            goto done;
        }
    }

    rc = store__sqlite_run(s, STMT_COMMIT);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "commit of %zu expired links", list.len);
        goto done;
    }

    for (i = 0; i < list.len; i++) {
        list.links[i].expired_at = now;
        if (fn != NULL)
            fn(&list.links[i], arg);
    }

done:
    if (err < 0)
        store__sqlite_roll_back(s);
    free_link_list(&list);
    return err < 0 ? err : (int)list.len;
}

int store__sqlite_list_links(struct store *store, int64_t owner_key_id, int64_t before_id,
                             size_t limit, int (*fn)(const struct store_link *link, void *arg),
                             void *arg)
{
    struct sqlite_store *s = store__sqlite_from(store);
    enum statement_id statement = owner_key_id == -1 ? STMT_LIST_LINKS : STMT_LIST_OWNER_LINKS;
    sqlite3_stmt *stmt = s->stmt[statement];
    struct store_link link;
    int listed = 0;
    int err = 0;
    int next = 1;
    int rc = SQLITE_OK;

    if (statement == STMT_LIST_OWNER_LINKS)
        rc = sqlite3_bind_int64(stmt, next++, owner_key_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, next++, before_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, next, (int64_t)limit);

    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            break;

        memset(&link, 0, sizeof(link));
        err = store__sqlite_read_link(s, stmt, &link);
        if (err < 0)
            break;

        /* The caller's function reads the URL in SQLite's buffer, valid until the next step. */
        link.url = (char *)sqlite3_column_text(stmt, 2);
        link.url_len = (size_t)sqlite3_column_bytes(stmt, 2);
        if (link.url == NULL) {
            store__set_error(&s->base, "listing of links failed: out of memory");
            err = -ENOMEM;
            break;
        }

        listed++;
        if (fn(&link, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "listing of links");

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    return err < 0 ? err : listed;
}
