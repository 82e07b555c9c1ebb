/*
 * SQLite backend of store.h.
 *
 * A struct sqlite_store is one sqlite3 connection opened with
 * SQLITE_OPEN_NOMUTEX, so only one thread at a time may use it. Every thread
 * and process opens its own connection. The database runs in WAL mode, so
 * reads go on while another connection commits a batch. With
 * synchronous=FULL every COMMIT syncs the WAL before it returns, so a
 * store_apply batch costs one fsync however many ops it has. Checkpoints,
 * which SQLite runs after each 1000 pages of WAL, add their own syncs.
 * sqlite_setup.c sets these pragmas and migrates the schema at open.
 *
 * Write transactions start with BEGIN IMMEDIATE, which takes the write lock
 * at once. A deferred transaction that reads before it writes can fail with
 * SQLITE_BUSY without waiting when another connection commits in between.
 *
 * Every statement is prepared once per connection at open and reused, and
 * apply binds the caller's buffers in place (SQLITE_STATIC), so a batch
 * allocates nothing per op. The one exception is the array of dedupe hits,
 * which grows when a batch has more hits than any batch before it. Bindings
 * are cleared before each function returns, so no statement keeps a pointer
 * into a caller's buffer.
 *
 * This file holds the connection, store_apply for links, single-link reads,
 * settings and id reservations. sqlite_links.c, sqlite_keys.c,
 * sqlite_stats.c and sqlite_bulk.c hold the rest of the backend table
 * (sqlite_internal.h).
 *
 * Connection states and the functions that move between them:
 *   closed --store__sqlite_open--> idle
 *   idle --BEGIN IMMEDIATE in apply, reserve_ids, add_visits,
 *          expire_links or import_links--> writing
 *   writing --COMMIT, or roll_back after a failure--> idle
 *   idle --BEGIN in link_stats--> reading
 *   reading --COMMIT, or roll_back after a failure--> idle
 *   idle --sqlite_close--> closed
 * Every function that returns to the caller leaves the connection idle.
 * list_links, list_keys and scan_links read in autocommit mode and call
 * the caller's function while their statement is open, so that function
 * must not use the same connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/sqlite_setup.h"
#include "store/store.h"

/* Setting that contains the next unreserved id as decimal ASCII digits. */
#define NEXT_ID_SETTING "next_id"

const char *const store__sqlite_core_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_BEGIN_READ] = "BEGIN",
    [STMT_COMMIT] = "COMMIT",
    [STMT_INSERT_LINK] = "INSERT INTO links (id, code, url, url_hash, created_at, expires_at,"
                         " max_visits, visits, redirect_status, owner_key_id, deleted_at,"
                         " cache_max_age, is_alias, expired_at)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    /*
     * The first four terms after url_hash are those of the links_dedupe
     * index, so the lookup reads only the index entries with this hash.
     * url = ?2 compares bytes (BINARY collation), so different URLs with
     * equal hashes never match. expired_at is checked too, although
     * only links with expires_at get it. Of several equal links the oldest
     * wins, so repeated dedupes return the same code.
     */
    [STMT_FIND_DUPLICATE] =
        "SELECT " SQLITE_LINK_COLUMNS " FROM links"
        " WHERE url_hash = ?1 AND deleted_at IS NULL AND is_alias = 0 AND expires_at IS NULL"
        " AND max_visits IS NULL AND expired_at IS NULL AND url = ?2 AND owner_key_id IS ?3"
        " AND redirect_status = ?4 AND cache_max_age IS ?5"
        " ORDER BY id LIMIT 1",
    [STMT_DELETE_LINK] = "UPDATE links SET deleted_at = ?1 WHERE code = ?2 AND deleted_at IS NULL",
    [STMT_FIND_LINK] = "SELECT 1 FROM links WHERE code = ?1",
    [STMT_GET_LINK] = "SELECT " SQLITE_LINK_COLUMNS " FROM links WHERE code = ?1",
    [STMT_GET_SETTING] = "SELECT value FROM settings WHERE name = ?1",
    [STMT_PUT_SETTING] = ("INSERT INTO settings (name, value) VALUES (?1, ?2)"
                          " ON CONFLICT (name) DO UPDATE SET value = excluded.value"),
    [STMT_ADD_SETTING] = "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
    [STMT_PING] = "SELECT count(*) FROM settings",
};

static const struct store_backend sqlite_backend;

int store__sqlite_fail(struct sqlite_store *s, int code, const char *format, ...)
{
    char operation[STORE_ERROR_MAX];
    va_list args;

    va_start(args, format);
    (void)vsnprintf(operation, sizeof(operation), format, args);
    va_end(args);

    store__set_error(&s->base, "%s failed: %s", operation, store__sqlite_message(s->db, code));
    return store__sqlite_errno(s->db, code);
}

const char *store__sqlite_printable_code(const char *code, size_t code_len,
                                         char out[STORE_CODE_MAX + 1])
{
    size_t i;

    if (code_len > STORE_CODE_MAX)
        code_len = STORE_CODE_MAX;
    for (i = 0; i < code_len; i++)
        out[i] = code[i] > ' ' && code[i] < 0x7f ? code[i] : '?';
    out[code_len] = '\0';
    return out;
}

int64_t store__sqlite_url_hash(const char *url, size_t url_len)
{
    unsigned char digest[crypto_generichash_BYTES];
    uint64_t value = 0;
    int i;

    /* It fails only for an output or key length out of range, and both are fixed here. */
    (void)crypto_generichash(digest, sizeof(digest), (const unsigned char *)url, url_len, NULL, 0);
    for (i = 7; i >= 0; i--)
        value = value << 8 | digest[i];
    return (int64_t)value;
}

int store__sqlite_bind_optional(sqlite3_stmt *stmt, int index, int64_t value)
{
    if (value == 0)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_int64(stmt, index, value);
}

/* Binds a BLOB, which may be empty; a NULL pointer would bind SQL NULL. */
static int bind_blob(sqlite3_stmt *stmt, int index, const void *value, size_t value_len)
{
    if (value_len == 0)
        return sqlite3_bind_zeroblob(stmt, index, 0);
    return sqlite3_bind_blob64(stmt, index, value, value_len, SQLITE_STATIC);
}

int store__sqlite_run(struct sqlite_store *s, enum statement_id statement)
{
    sqlite3_stmt *stmt = s->stmt[statement];
    int rc = sqlite3_step(stmt);

    (void)sqlite3_reset(stmt); /* would repeat the error that rc already has */
    return rc;
}

/*
 * Ends a failed write transaction. SQLite rolls back by itself after some
 * errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY, SQLITE_NOMEM), and
 * sqlite3_get_autocommit reports whether it did. ROLLBACK is run with
 * sqlite3_exec because it is rare and has no prepared statement.
 */
void store__sqlite_roll_back(struct sqlite_store *s)
{
    if (sqlite3_get_autocommit(s->db))
        return;

    /*
     * The caller reports the failure that led here. If ROLLBACK fails too,
     * the transaction stays open and begin_write retries the rollback.
     */
    (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store__sqlite_begin_write(struct sqlite_store *s)
{
    store__sqlite_roll_back(s); /* a transaction left open by a failed ROLLBACK */
    return store__sqlite_run(s, STMT_BEGIN);
}

static void sqlite_close(struct store *store)
{
    struct sqlite_store *s = store__sqlite_from(store);
    int i;

    for (i = 0; i < STMT_COUNT; i++)
        (void)sqlite3_finalize(s->stmt[i]); /* returns the last step's error, if any */

    /* Succeeds because every statement of the connection is finalized. */
    (void)sqlite3_close(s->db);
    free(s->hits);
    free(s);
}

int store__sqlite_check_link(const struct store_link *link)
{
    if (link->id <= 0 || link->code_len == 0 || link->code_len > STORE_CODE_MAX ||
        link->url == NULL || link->cache_max_age < -1)
        return -EINVAL;

    switch (link->redirect_status) {
    case 301:
    case 302:
    case 307:
    case 308:
        return 0;
    default:
        return -EINVAL;
    }
}

/* Binds cache_max_age, stored as NULL when unset (-1). */
static int bind_cache_max_age(sqlite3_stmt *stmt, int index, int64_t cache_max_age)
{
    if (cache_max_age < 0)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_int64(stmt, index, cache_max_age);
}

int store__sqlite_insert_link(struct sqlite_store *s, const struct store_link *link, int64_t hash)
{
    sqlite3_stmt *stmt = s->stmt[STMT_INSERT_LINK];
    int rc;

    rc = sqlite3_bind_int64(stmt, 1, link->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 2, link->code, (int)link->code_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text64(stmt, 3, link->url, link->url_len, SQLITE_STATIC, SQLITE_UTF8);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 4, hash);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 5, link->created_at);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_optional(stmt, 6, link->expires_at);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_optional(stmt, 7, link->max_visits);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 8, link->visits);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 9, link->redirect_status);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_optional(stmt, 10, link->owner_key_id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_optional(stmt, 11, link->deleted_at);
    if (rc == SQLITE_OK)
        rc = bind_cache_max_age(stmt, 12, link->cache_max_age);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 13, link->is_alias ? 1 : 0);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_optional(stmt, 14, link->expired_at);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_INSERT_LINK);
    return rc;
}

/*
 * Returns whether a CREATE may resolve to an existing link. Only a plain
 * link, with no alias, expiry, visit limit or state of its own, qualifies.
 * A link with a limit or an expiry ends on its own schedule, so sharing it
 * would change what its creator requested.
 */
static bool may_dedupe(const struct store_op *op)
{
    const struct store_link *link = &op->link;

    return op->dedupe && !link->is_alias && link->expires_at == 0 && link->max_visits == 0 &&
           link->deleted_at == 0 && link->expired_at == 0;
}

/* Returns a zeroed hit at the end of s->hits, or NULL when out of memory. */
static struct dedupe_hit *append_hit(struct sqlite_store *s)
{
    struct dedupe_hit *grown;
    size_t cap;

    if (s->hits_len == s->hits_cap) {
        cap = s->hits_cap == 0 ? 16 : s->hits_cap * 2;
        grown = realloc(s->hits, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        s->hits = grown;
        s->hits_cap = cap;
    }

    memset(&s->hits[s->hits_len], 0, sizeof(s->hits[0]));
    return &s->hits[s->hits_len++];
}

/*
 * Looks for a live link equal to op->link (see store_op.dedupe) and, when
 * one exists, adds it to s->hits. Returns 1 when found, 0 when none exists,
 * or a negative errno with the connection's error set.
 */
static int find_duplicate(struct sqlite_store *s, const struct store_op *op, int64_t hash,
                          size_t index, size_t count)
{
    const struct store_link *link = &op->link;
    sqlite3_stmt *stmt = s->stmt[STMT_FIND_DUPLICATE];
    char code[STORE_CODE_MAX + 1];
    struct dedupe_hit *hit;
    int err;
    int rc;

    rc = sqlite3_bind_int64(stmt, 1, hash);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text64(stmt, 2, link->url, link->url_len, SQLITE_STATIC, SQLITE_UTF8);
    if (rc == SQLITE_OK)
        rc = store__sqlite_bind_optional(stmt, 3, link->owner_key_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 4, link->redirect_status);
    if (rc == SQLITE_OK)
        rc = bind_cache_max_age(stmt, 5, link->cache_max_age);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        hit = append_hit(s);
        if (hit == NULL) {
            store__set_error(&s->base, "lookup of a duplicate of link %s failed: out of memory",
                             store__sqlite_printable_code(link->code, link->code_len, code));
            err = -ENOMEM;
        } else {
            hit->index = index;
            err = store__sqlite_read_link(s, stmt, &hit->link);
            if (err == 0)
                err = 1;
        }
    } else if (rc == SQLITE_DONE) {
        err = 0;
    } else {
        err = store__sqlite_fail(s, rc, "lookup of a duplicate of link %s (write %zu of %zu)",
                                 store__sqlite_printable_code(link->code, link->code_len, code),
                                 index + 1, count);
    }

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    return err;
}

/* Copies the links found by dedupe lookups into their ops, keeping each op's url. */
static void fill_dedupe_hits(struct sqlite_store *s, struct store_op *ops)
{
    struct store_link *link;
    size_t i;

    for (i = 0; i < s->hits_len; i++) {
        link = &ops[s->hits[i].index].link;
        s->hits[i].link.url = link->url;
        s->hits[i].link.url_len = link->url_len;
        *link = s->hits[i].link;
    }
}

/*
 * Inserts the link of a CREATE op, or finds its duplicate when op->dedupe
 * is set. Sets op->result and returns 0 when the op succeeded or failed
 * alone; returns a negative errno when the whole batch must fail.
 */
static int insert_link(struct sqlite_store *s, struct store_op *op, size_t index, size_t count)
{
    const struct store_link *link = &op->link;
    char code[STORE_CODE_MAX + 1];
    int64_t hash;
    int rc;

    op->result = store__sqlite_check_link(link);
    if (op->result < 0)
        return 0;

    hash = store__sqlite_url_hash(link->url, link->url_len);
    if (may_dedupe(op)) {
        rc = find_duplicate(s, op, hash, index, count);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            op->result = STORE_DEDUPED;
            return 0;
        }
    }

    rc = store__sqlite_insert_link(s, link, hash);

    if (rc == SQLITE_DONE)
        return 0;

    /*
     * code is the only UNIQUE column of links (a duplicate id reports
     * SQLITE_CONSTRAINT_PRIMARYKEY). The default ABORT conflict resolution
     * undoes this statement alone and keeps the transaction open.
     */
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        op->result = -EEXIST;
        return 0;
    }

    return store__sqlite_fail(s, rc, "insert of link %s (write %zu of %zu)",
                              store__sqlite_printable_code(link->code, link->code_len, code),
                              index + 1, count);
}

/* Marks the link of a DELETE op deleted; returns like insert_link. */
static int delete_link(struct sqlite_store *s, struct store_op *op, size_t index, size_t count)
{
    const struct store_link *link = &op->link;
    sqlite3_stmt *update = s->stmt[STMT_DELETE_LINK];
    sqlite3_stmt *find = s->stmt[STMT_FIND_LINK];
    char code[STORE_CODE_MAX + 1];
    int rc;

    /* deleted_at 0 reads back as "live", so a delete needs a real time. */
    if (link->code_len == 0 || link->code_len > STORE_CODE_MAX || op->now <= 0) {
        op->result = -EINVAL;
        return 0;
    }

    rc = sqlite3_bind_int64(update, 1, op->now);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(update, 2, link->code, (int)link->code_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_DELETE_LINK);
    if (rc != SQLITE_DONE)
        goto fail;

    if (sqlite3_changes(s->db) > 0) {
        op->result = 0;
        return 0;
    }

    /* No live link has the code: tell a deleted link from a missing one. */
    rc = sqlite3_bind_text(find, 1, link->code, (int)link->code_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(find);
    (void)sqlite3_reset(find); /* would repeat the error that rc already has */
    if (rc == SQLITE_ROW) {
        op->result = -EALREADY;
        return 0;
    }
    if (rc == SQLITE_DONE) {
        op->result = -ENOENT;
        return 0;
    }

fail:
    return store__sqlite_fail(s, rc, "delete of link %s (write %zu of %zu)",
                              store__sqlite_printable_code(link->code, link->code_len, code),
                              index + 1, count);
}

/* Statements that sqlite_apply binds to the caller's buffers. */
static const enum statement_id apply_statements[] = {
    STMT_INSERT_LINK, STMT_FIND_DUPLICATE, STMT_DELETE_LINK, STMT_FIND_LINK,
    STMT_INSERT_KEY,  STMT_REVOKE_KEY,     STMT_FIND_KEY,
};

static int sqlite_apply(struct store *store, struct store_op *ops, size_t count)
{
    struct sqlite_store *s = store__sqlite_from(store);
    int err = 0;
    size_t i;
    int rc;

    s->hits_len = 0;
    rc = store__sqlite_begin_write(s);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "begin of a batch of %zu writes", count);
        goto done;
    }

    for (i = 0; i < count && err == 0; i++) {
        switch (ops[i].kind) {
        case STORE_OP_CREATE:
            err = insert_link(s, &ops[i], i, count);
            break;
        case STORE_OP_DELETE:
            err = delete_link(s, &ops[i], i, count);
            break;
        case STORE_OP_KEY_CREATE:
            err = store__sqlite_create_key(s, &ops[i], i, count);
            break;
        case STORE_OP_KEY_REVOKE:
            err = store__sqlite_revoke_key(s, &ops[i], i, count);
            break;
        default:
            ops[i].result = -EINVAL;
            break;
        }
    }
    if (err < 0)
        goto done;

    rc = store__sqlite_run(s, STMT_COMMIT);
    if (rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "commit of %zu writes", count);
    else
        fill_dedupe_hits(s, ops);

done:
    for (i = 0; i < sizeof(apply_statements) / sizeof(apply_statements[0]); i++)
        (void)sqlite3_clear_bindings(s->stmt[apply_statements[i]]); /* always SQLITE_OK */
    if (err < 0) {
        store__sqlite_roll_back(s);
        for (i = 0; i < count; i++)
            ops[i].result = err;
    }
    return err;
}

int store__sqlite_read_link(struct sqlite_store *s, sqlite3_stmt *stmt, struct store_link *link)
{
    const unsigned char *code = sqlite3_column_text(stmt, 1);
    size_t code_len = (size_t)sqlite3_column_bytes(stmt, 1);

    if (code == NULL || code_len == 0 || code_len > STORE_CODE_MAX) {
        store__set_error(&s->base,
                         "read of link %" PRId64 " failed: stored code is empty "
                         "or longer than %d bytes",
                         (int64_t)sqlite3_column_int64(stmt, 0), STORE_CODE_MAX);
        return -EILSEQ;
    }

    memcpy(link->code, code, code_len);
    link->code[code_len] = '\0';
    link->code_len = code_len;

    /* Columns that are NULL read as 0, which store.h uses for "none". */
    link->id = sqlite3_column_int64(stmt, 0);
    link->created_at = sqlite3_column_int64(stmt, 3);
    link->expires_at = sqlite3_column_int64(stmt, 4);
    link->max_visits = sqlite3_column_int64(stmt, 5);
    link->visits = sqlite3_column_int64(stmt, 6);
    link->redirect_status = sqlite3_column_int(stmt, 7);
    link->owner_key_id = sqlite3_column_int64(stmt, 8);
    link->deleted_at = sqlite3_column_int64(stmt, 9);
    link->is_alias = sqlite3_column_int(stmt, 11) != 0;
    link->expired_at = sqlite3_column_int64(stmt, 12);

    /* cache_max_age alone uses -1 for "unset", because 0 s is a valid lifetime. */
    if (sqlite3_column_type(stmt, 10) == SQLITE_NULL)
        link->cache_max_age = -1;
    else
        link->cache_max_age = sqlite3_column_int64(stmt, 10);
    return 0;
}

int store__sqlite_read_link_copy(struct sqlite_store *s, sqlite3_stmt *stmt,
                                 struct store_link *link)
{
    const unsigned char *url;
    size_t url_len;
    int err;

    err = store__sqlite_read_link(s, stmt, link);
    if (err < 0)
        return err;

    url = sqlite3_column_text(stmt, 2);
    url_len = (size_t)sqlite3_column_bytes(stmt, 2);
    if (url == NULL && sqlite3_errcode(s->db) == SQLITE_NOMEM) {
        store__set_error(&s->base, "read of link failed: out of memory");
        return -ENOMEM;
    }

    link->url = malloc(url_len + 1);
    if (link->url == NULL) {
        store__set_error(&s->base, "read of link failed: out of memory for a %zu-byte URL",
                         url_len);
        return -ENOMEM;
    }
    if (url_len > 0)
        memcpy(link->url, url, url_len);
    link->url[url_len] = '\0';
    link->url_len = url_len;
    return 0;
}

static int sqlite_get_link(struct store *store, const char *code, size_t code_len,
                           struct store_link *link)
{
    struct sqlite_store *s = store__sqlite_from(store);
    sqlite3_stmt *stmt = s->stmt[STMT_GET_LINK];
    char printable[STORE_CODE_MAX + 1];
    int err;
    int rc;

    rc = sqlite3_bind_text(stmt, 1, code, (int)code_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW)
        err = store__sqlite_read_link_copy(s, stmt, link);
    else if (rc == SQLITE_DONE)
        err = -ENOENT;
    else
        err = store__sqlite_fail(s, rc, "read of link %s",
                                 store__sqlite_printable_code(code, code_len, printable));

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    (void)sqlite3_clear_bindings(stmt);
    if (err < 0)
        store_link_clear(link);
    return err;
}

/*
 * Runs STMT_GET_SETTING for name and, when the setting exists, leaves the
 * statement on its row. The caller reads the value and resets the statement.
 * Returns SQLITE_ROW, SQLITE_DONE when unset, or an error code.
 */
static int find_setting(struct sqlite_store *s, const char *name)
{
    sqlite3_stmt *stmt = s->stmt[STMT_GET_SETTING];
    int rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);

    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    return rc;
}

static void finish_setting(struct sqlite_store *s)
{
    sqlite3_stmt *stmt = s->stmt[STMT_GET_SETTING];

    (void)sqlite3_reset(stmt); /* would repeat an error the caller already has */
    (void)sqlite3_clear_bindings(stmt);
}

static int sqlite_get_setting(struct store *store, const char *name, void *value, size_t value_cap,
                              size_t *value_len)
{
    struct sqlite_store *s = store__sqlite_from(store);
    sqlite3_stmt *stmt = s->stmt[STMT_GET_SETTING];
    const void *blob;
    size_t len;
    int err;
    int rc;

    rc = find_setting(s, name);
    if (rc == SQLITE_DONE) {
        finish_setting(s);
        return -ENOENT;
    }
    if (rc != SQLITE_ROW) {
        err = store__sqlite_fail(s, rc, "read of setting %s", name);
        finish_setting(s);
        return err;
    }

    blob = sqlite3_column_blob(stmt, 0);
    len = (size_t)sqlite3_column_bytes(stmt, 0);
    *value_len = len;
    if (len > value_cap) {
        err = -ENOBUFS;
    } else {
        if (len > 0)
            memcpy(value, blob, len);
        err = 0;
    }

    finish_setting(s);
    return err;
}

static int sqlite_set_setting_once(struct store *store, const char *name, const void *value,
                                   size_t value_len)
{
    struct sqlite_store *s = store__sqlite_from(store);
    sqlite3_stmt *stmt = s->stmt[STMT_ADD_SETTING];
    int err = 0;
    int rc;

    rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_blob(stmt, 2, value, value_len);

    /* Outside BEGIN, the statement commits (and syncs) by itself. */
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_ADD_SETTING);

    if (rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "write of setting %s", name);
    else if (sqlite3_changes(s->db) == 0)
        err = -EEXIST;

    (void)sqlite3_clear_bindings(stmt);
    return err;
}

/*
 * Parses the next_id setting: 1 to 20 decimal digits, at most limit.
 * Returns 0 or -EILSEQ.
 */
static int parse_next_id(const unsigned char *text, size_t len, uint64_t limit, uint64_t *next)
{
    uint64_t value = 0;
    size_t i;

    if (text == NULL || len == 0 || len > 20)
        return -EILSEQ;

    for (i = 0; i < len; i++) {
        unsigned digit = (unsigned)text[i] - '0';

        if (digit > 9 || value > (limit - digit) / 10)
            return -EILSEQ;
        value = value * 10 + digit;
    }

    *next = value;
    return 0;
}

int store__sqlite_take_ids(struct sqlite_store *s, uint64_t count, uint64_t *first)
{
    sqlite3_stmt *put = s->stmt[STMT_PUT_SETTING];
    /* Ids are SQLite INTEGERs, so the last usable one is INT64_MAX. */
    const uint64_t limit = (uint64_t)INT64_MAX + 1;
    char digits[24];
    uint64_t next = 1;
    int err = 0;
    int rc;

    rc = find_setting(s, NEXT_ID_SETTING);
    if (rc == SQLITE_ROW) {
        sqlite3_stmt *get = s->stmt[STMT_GET_SETTING];

        err = parse_next_id(sqlite3_column_blob(get, 0), (size_t)sqlite3_column_bytes(get, 0),
                            limit, &next);
        if (err < 0 || next == 0) {
            store__set_error(&s->base,
                             "reservation of %" PRIu64 " ids failed: setting %s is "
                             "not a decimal id between 1 and 2^63",
                             count, NEXT_ID_SETTING);
            err = -EILSEQ;
        }
    } else if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "reservation of %" PRIu64 " ids", count);
    }
    finish_setting(s);
    if (err < 0)
        return err;

    if (count > limit - next) {
        store__set_error(&s->base,
                         "reservation of %" PRIu64 " ids failed: only %" PRIu64
                         " ids are left before the 64-bit limit",
                         count, limit - next);
        return -EOVERFLOW;
    }

    (void)snprintf(digits, sizeof(digits), "%" PRIu64, next + count);
    rc = sqlite3_bind_text(put, 1, NEXT_ID_SETTING, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = bind_blob(put, 2, digits, strlen(digits));
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_PUT_SETTING);
    (void)sqlite3_clear_bindings(put); /* digits is about to go out of scope */
    if (rc != SQLITE_DONE)
        return store__sqlite_fail(s, rc, "reservation of %" PRIu64 " ids", count);

    *first = next;
    return 0;
}

static int sqlite_reserve_ids(struct store *store, uint64_t count, uint64_t *first)
{
    struct sqlite_store *s = store__sqlite_from(store);
    uint64_t taken;
    int err;
    int rc;

    rc = store__sqlite_begin_write(s);
    if (rc != SQLITE_DONE)
        return store__sqlite_fail(s, rc, "reservation of %" PRIu64 " ids", count);

    err = store__sqlite_take_ids(s, count, &taken);
    if (err < 0)
        goto fail;

    rc = store__sqlite_run(s, STMT_COMMIT);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "reservation of %" PRIu64 " ids", count);
        goto fail;
    }

    *first = taken;
    return 0;

fail:
    store__sqlite_roll_back(s);
    return err;
}

static int sqlite_ping(struct store *store)
{
    struct sqlite_store *s = store__sqlite_from(store);
    int rc = store__sqlite_run(s, STMT_PING);

    if (rc != SQLITE_ROW)
        return store__sqlite_fail(s, rc, "read of the settings table");
    return 0;
}

static int sqlite_set_cache_size(struct store *store, size_t bytes)
{
    struct sqlite_store *s = store__sqlite_from(store);
    char sql[64];
    int rc;

    /* A negative cache_size is in KiB rather than in pages. */
    (void)snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%zu", bytes / 1024);
    rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return store__sqlite_fail(s, rc, "setting the page cache to %zu bytes", bytes);
    return 0;
}

static const struct store_backend sqlite_backend = {
    .name = "sqlite",
    .close = sqlite_close,
    .get_link = sqlite_get_link,
    .reserve_ids = sqlite_reserve_ids,
    .apply = sqlite_apply,
    .get_setting = sqlite_get_setting,
    .set_setting_once = sqlite_set_setting_once,
    .ping = sqlite_ping,
    .add_visits = store__sqlite_add_visits,
    .set_cache_size = sqlite_set_cache_size,
    .expire_links = store__sqlite_expire_links,
    .list_links = store__sqlite_list_links,
    .link_stats = store__sqlite_link_stats,
    .list_keys = store__sqlite_list_keys,
    .import_links = store__sqlite_import_links,
    .scan_links = store__sqlite_scan_links,
};

static int prepare_statements(struct sqlite_store *s, const char *path, char *error,
                              size_t error_len)
{
    const char *const *const tables[] = {store__sqlite_core_sql, store__sqlite_links_sql,
                                         store__sqlite_keys_sql, store__sqlite_stats_sql,
                                         store__sqlite_bulk_sql};
    const char *sql;
    size_t t;
    int rc;
    int i;

    for (i = 0; i < STMT_COUNT; i++) {
        sql = NULL;
        for (t = 0; t < sizeof(tables) / sizeof(tables[0]) && sql == NULL; t++)
            sql = tables[t][i];
        if (sql == NULL) {
            store__format_error(error, error_len,
                                "preparing statements for database %s failed: statement %d "
                                "has no SQL",
                                path, i);
            return -EIO;
        }

        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            store__format_error(error, error_len, "preparing statements for database %s failed: %s",
                                path, store__sqlite_message(s->db, rc));
            return store__sqlite_errno(s->db, rc);
        }
    }
    return 0;
}

int store__sqlite_open(const char *path, struct store **store, char *error, size_t error_len)
{
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    struct sqlite_store *s;
    char *file = NULL;
    int err;
    int rc;

    /* libsodium picks its fastest BLAKE2b code here; safe to call repeatedly. */
    if (sodium_init() < 0) {
        store__format_error(error, error_len, "initialising libsodium failed");
        return -EIO;
    }

    err = store__sqlite_prepare_file(path, &file, error, error_len);
    if (err < 0)
        return err;

    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        free(file);
        store__format_error(error, error_len, "opening database %s failed: out of memory", path);
        return -ENOMEM;
    }
    s->base.backend = &sqlite_backend;

    rc = sqlite3_open_v2(file, &s->db, flags, NULL);
    free(file);
    if (s->db == NULL) {
        free(s);
        store__format_error(error, error_len, "opening database %s failed: out of memory", path);
        return -ENOMEM;
    }
    (void)sqlite3_extended_result_codes(s->db, 1); /* returns an error only for a NULL db */
    if (rc != SQLITE_OK) {
        rc = sqlite3_extended_errcode(s->db);
        err = store__sqlite_errno(s->db, rc);
        store__format_error(error, error_len, "opening database %s failed: %s (%s)", path,
                            sqlite3_errmsg(s->db), strerror(-err));
        goto fail;
    }

    err = store__sqlite_configure(s->db, path, error, error_len);
    if (err == 0)
        err = prepare_statements(s, path, error, error_len);
    if (err < 0)
        goto fail;

    *store = &s->base;
    return 0;

fail:
    sqlite_close(&s->base);
    return err;
}
