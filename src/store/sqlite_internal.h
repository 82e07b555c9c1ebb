/*
 * Private interface between the files of the SQLite backend: sqlite.c (the
 * connection, store_apply for links, single-link reads, settings and ids),
 * sqlite_links.c (expiry sweep and listing), sqlite_keys.c (API keys),
 * sqlite_stats.c (visit counts and statistics) and sqlite_bulk.c (bulk
 * import and the scan for export).
 *
 * Every statement of a connection is prepared once at open and kept in
 * struct sqlite_store. Each file defines the SQL of its own statements in a
 * table indexed by enum statement_id, so the SQL stays beside the code that
 * binds its parameters. sqlite.c prepares the entries of all five tables.
 *
 * Only the backend files and the tests include this header.
 */
#ifndef SHORTD_STORE_SQLITE_INTERNAL_H
#define SHORTD_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/backend.h"
#include "store/store.h"

/*
 * Columns of links in the order store__sqlite_read_link expects. Every
 * statement that returns links selects exactly these.
 */
/*
 * A link's visits are the sum of its days: flushes add to visits_daily only,
 * because one more row update per visited link would dirty a page of the
 * large links table for every link visited in a flush.
 */
#define SQLITE_LINK_COLUMNS                                                                        \
    "id, code, url, created_at, expires_at, max_visits,"                                           \
    " visits + (SELECT coalesce(sum(count), 0) FROM visits_daily WHERE link_id = links.id),"       \
    " redirect_status, owner_key_id, deleted_at, cache_max_age, is_alias, expired_at"

enum statement_id {
    /* sqlite.c */
    STMT_BEGIN,
    STMT_BEGIN_READ,
    STMT_COMMIT,
    STMT_INSERT_LINK,
    STMT_FIND_DUPLICATE,
    STMT_DELETE_LINK,
    STMT_FIND_LINK,
    STMT_GET_LINK,
    STMT_GET_SETTING,
    STMT_PUT_SETTING,
    STMT_ADD_SETTING,
    STMT_PING,
    /* sqlite_links.c */
    STMT_SELECT_EXPIRED,
    STMT_MARK_EXPIRED,
    STMT_LIST_LINKS,
    STMT_LIST_OWNER_LINKS,
    /* sqlite_keys.c */
    STMT_INSERT_KEY,
    STMT_REVOKE_KEY,
    STMT_FIND_KEY,
    STMT_LIST_KEYS,
    /* sqlite_stats.c */
    STMT_LINK_EXISTS,
    STMT_ADD_DAY_VISITS,
    STMT_ADD_REFERRER_VISITS,
    STMT_SELECT_DAYS,
    STMT_SELECT_HOSTS,
    /* sqlite_bulk.c */
    STMT_SCAN_LINKS,
    STMT_COUNT,
};

/* SQL of the statements each file runs; the other entries are NULL. */
extern const char *const store__sqlite_core_sql[STMT_COUNT];
extern const char *const store__sqlite_links_sql[STMT_COUNT];
extern const char *const store__sqlite_keys_sql[STMT_COUNT];
extern const char *const store__sqlite_stats_sql[STMT_COUNT];
extern const char *const store__sqlite_bulk_sql[STMT_COUNT];

/* A CREATE of the current batch that found an equal link (see store_op.dedupe). */
struct dedupe_hit {
    size_t index;           /* of the op in the batch */
    struct store_link link; /* the existing link; url is unused */
};

struct sqlite_store {
    struct store base; /* first, so that a struct store * converts to this type */
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];

    /*
     * The dedupe hits of the batch being applied, copied into the ops only
     * after COMMIT, so that the ops of a failed batch keep the caller's
     * links. The array is kept between batches and grows to the largest
     * number of hits in one batch.
     */
    struct dedupe_hit *hits;
    size_t hits_len;
    size_t hits_cap;

    bool import_cache_set; /* the page cache is enlarged for imports (sqlite_bulk.c) */
};

static inline struct sqlite_store *store__sqlite_from(struct store *store)
{
    return (struct sqlite_store *)store;
}

/*
 * Records "<operation> failed: <SQLite's message>" as the connection's last
 * error and returns the errno for code. Call it before any other call on the
 * connection, which would replace SQLite's message.
 */
int store__sqlite_fail(struct sqlite_store *s, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Steps a statement once and resets it; returns SQLITE_DONE, SQLITE_ROW or an error code. */
int store__sqlite_run(struct sqlite_store *s, enum statement_id statement);

/* Starts a write transaction with BEGIN IMMEDIATE; returns SQLITE_DONE or an error code. */
int store__sqlite_begin_write(struct sqlite_store *s);

/* Ends a failed transaction, if SQLite has not ended it already. */
void store__sqlite_roll_back(struct sqlite_store *s);

/* Binds value, or NULL when value is 0, the "none" of store.h. */
int store__sqlite_bind_optional(sqlite3_stmt *stmt, int index, int64_t value);

/*
 * Copies a code for a log message, with every byte outside printable ASCII
 * replaced by '?', so that a code from a request cannot forge log lines.
 */
const char *store__sqlite_printable_code(const char *code, size_t code_len,
                                         char out[STORE_CODE_MAX + 1]);

/*
 * Copies the current row of a statement that selects SQLITE_LINK_COLUMNS
 * into *link, except url and url_len, which it leaves as they are. Returns 0,
 * or -EILSEQ with the connection's error set when the stored code is empty or
 * too long.
 */
int store__sqlite_read_link(struct sqlite_store *s, sqlite3_stmt *stmt, struct store_link *link);

/*
 * Like store__sqlite_read_link, and also copies the URL into link->url,
 * which the caller frees with store_link_clear. Returns 0, -EILSEQ or
 * -ENOMEM.
 */
int store__sqlite_read_link_copy(struct sqlite_store *s, sqlite3_stmt *stmt,
                                 struct store_link *link);

/*
 * Returns the url_hash column's value for url: the first 8 bytes of its
 * BLAKE2b-256 digest as a signed integer, decoded little-endian so that it
 * is the same on every machine.
 */
int64_t store__sqlite_url_hash(const char *url, size_t url_len);

/* Returns 0, or -EINVAL when link lacks a field that an insert needs. */
int store__sqlite_check_link(const struct store_link *link);

/*
 * Runs STMT_INSERT_LINK for link with the given url_hash, leaving its
 * parameters bound to the link's buffers. Returns SQLITE_DONE, or the error
 * code, such as SQLITE_CONSTRAINT_UNIQUE for a code already taken.
 */
int store__sqlite_insert_link(struct sqlite_store *s, const struct store_link *link, int64_t hash);

/*
 * Takes count ids from the next_id setting inside the caller's write
 * transaction, storing the first in *first. Returns 0 or a negative errno
 * with the connection's error set: -EILSEQ for a malformed setting,
 * -EOVERFLOW when the ids would pass INT64_MAX.
 */
int store__sqlite_take_ids(struct sqlite_store *s, uint64_t count, uint64_t *first);

/*
 * Apply KEY_CREATE and KEY_REVOKE ops inside store_apply's transaction
 * (sqlite_keys.c). Each sets op->result and returns 0 when the op succeeded
 * or failed alone, or returns a negative errno when the whole batch must
 * fail. index and count place the op in its batch for the error message.
 */
int store__sqlite_create_key(struct sqlite_store *s, struct store_op *op, size_t index,
                             size_t count);
int store__sqlite_revoke_key(struct sqlite_store *s, struct store_op *op, size_t index,
                             size_t count);

/* Backend functions with the contracts of the store.h functions of the same names. */
int store__sqlite_expire_links(struct store *store, int64_t now, size_t limit,
                               void (*fn)(const struct store_link *link, void *arg), void *arg);
int store__sqlite_list_links(struct store *store, int64_t owner_key_id, int64_t before_id,
                             size_t limit, int (*fn)(const struct store_link *link, void *arg),
                             void *arg);
int store__sqlite_list_keys(struct store *store, int (*fn)(const struct store_key *key, void *arg),
                            void *arg);
int store__sqlite_add_visits(struct store *store, struct store_visit *visits, size_t count);
int store__sqlite_link_stats(struct store *store, int64_t link_id, int32_t from_day, int32_t to_day,
                             struct store_day_count *days, size_t days_cap, size_t *days_len,
                             struct store_host_count *hosts, size_t hosts_cap, size_t *hosts_len);
int store__sqlite_import_links(struct store *store, struct store_link *links, int *results,
                               size_t count);
int store__sqlite_scan_links(struct store *store,
                             int (*fn)(const struct store_link *link, void *arg), void *arg);

#endif
