/*
 * Durable storage of links: one interface, one backend per database.
 *
 * A struct store is one connection to the database and belongs to one thread
 * at a time: shortd opens one per worker thread and one for the writer
 * thread. Connections to the same database, in one process or several, see
 * each other's committed writes. store_open picks the backend from the
 * location: a "postgres://" or "postgresql://" URL is reserved for a
 * PostgreSQL backend (not built yet), and any other location is the path of
 * a SQLite file (sqlite.c).
 *
 * Every function returns 0 or a negative errno and never logs. The errno
 * identifies the kind of failure: -ENOSPC disk full, -EROFS read-only,
 * -EBUSY locked by another connection for longer than the backend waits,
 * -ENOMEM out of memory, -EILSEQ not a database or corrupt, -EINVAL invalid
 * argument, -EIO anything else from the database. store_last_error()
 * returns the backend's own message for the log.
 *
 * Times are Unix time in milliseconds.
 */
#ifndef SHORTD_STORE_STORE_H
#define SHORTD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Longest code or alias, in bytes. */
#define STORE_CODE_MAX 64

/* Longest referrer host name kept for statistics, in bytes. */
#define STORE_HOST_MAX 253

/* Longest API key name, in bytes. */
#define STORE_KEY_NAME_MAX 128

/* Bytes of the hash by which an API key is stored (BLAKE2b-256). */
#define STORE_KEY_HASH_BYTES 32

struct store_link {
    int64_t id;
    char code[STORE_CODE_MAX + 1]; /* NUL-terminated */
    size_t code_len;
    char *url; /* NUL-terminated, owned by the record; see store_link_clear */
    size_t url_len;
    int64_t created_at;   /* ms */
    int64_t expires_at;   /* ms, 0 when the link never expires */
    int64_t max_visits;   /* 0 when unlimited */
    int64_t visits;       /* visits counted in the store */
    int redirect_status;  /* 301, 302, 307 or 308 */
    int64_t deleted_at;   /* ms, 0 while the link is live */
    int64_t owner_key_id; /* API key that created it, 0 for none */
    int64_t cache_max_age; /* seconds for Cache-Control on redirects, -1 when unset */
    bool is_alias;         /* the code was chosen by the client */
    int64_t expired_at;    /* ms when store_expire_links marked it, 0 before */
};

/* Frees the URL of a record filled by the store and zeroes the record. */
void store_link_clear(struct store_link *link);

enum store_op_kind {
    /*
     * Insert op->link with every field as given. id (> 0), code (1 to
     * STORE_CODE_MAX bytes), url and a redirect_status of 301, 302, 307 or
     * 308 are required.
     */
    STORE_OP_CREATE,
    /* Mark the live link op->link.code deleted at op->now (> 0). */
    STORE_OP_DELETE,
    /*
     * Insert op->key (hash, name, created_at, rate and burst) and set
     * op->key.id to the new id.
     */
    STORE_OP_KEY_CREATE,
    /* Mark the key op->key.id revoked at op->now. */
    STORE_OP_KEY_REVOKE,
};

/* An API key as stored: only a hash of the secret is kept. */
struct store_key {
    int64_t id;
    uint8_t hash[STORE_KEY_HASH_BYTES];
    char name[STORE_KEY_NAME_MAX + 1]; /* NUL-terminated, may be empty */
    int64_t created_at;                /* ms */
    int64_t revoked_at;                /* ms, 0 while the key is valid */
    uint32_t rate;  /* thousandths of a request per second, 0 for the server default */
    uint32_t burst; /* requests allowed at once, 0 for the server default */
};

/* Result of a CREATE with dedupe set that found an existing link. */
#define STORE_DEDUPED 1

/* One write in a batch passed to store_apply. */
struct store_op {
    enum store_op_kind kind;
    struct store_link link; /* the caller owns link.url */
    struct store_key key;   /* KEY_CREATE and KEY_REVOKE */
    int64_t now;            /* ms, the time of the write */

    /*
     * CREATE only. When set, and op->link has no alias, expiry or visit
     * limit, a live link that also has none and has the same url (byte for
     * byte), owner_key_id, redirect_status and cache_max_age is looked up
     * first, inside the transaction, so creates earlier in the same batch
     * count. If one exists nothing is inserted, result is STORE_DEDUPED and
     * op->link is filled with the existing link (link.url keeps pointing at
     * the caller's equal bytes). The lookup uses an index on url_hash, so
     * it stays fast at millions of links.
     */
    bool dedupe;

    /*
     * Set by store_apply: 0 on success; for CREATE STORE_DEDUPED (see
     * dedupe) or -EEXIST when the code is taken by a live or deleted link;
     * for DELETE -ENOENT when no link has that code and -EALREADY when it is
     * already deleted; for KEY_CREATE -EEXIST when a key has the same hash;
     * for KEY_REVOKE -ENOENT and -EALREADY as for DELETE. -EINVAL means that
     * the op lacks a required field. An op that fails in one of these ways
     * leaves no trace, and the other ops of the batch still commit.
     */
    int result;
};

/*
 * Opens a connection to the store at location, creating the database, its
 * parent folder and its schema when they do not exist and applying pending
 * schema migrations. On success sets *store; on failure sets it to NULL,
 * returns a negative errno and writes a sentence into error (when error_len
 * > 0). Failures beyond those listed for the whole interface:
 * -EPROTONOSUPPORT for a PostgreSQL URL while that backend is not built,
 * -ENOTSUP when the database was written by a newer shortd (its schema
 * version is higher than this build supports), -EACCES or -ENOENT (or another
 * errno from open(2) or mkdir(2)) when the file or its folder cannot be
 * opened or created. The message never contains a URL, which may carry a
 * password. Any thread may call it.
 */
int store_open(const char *location, struct store **store, char *error, size_t error_len);

/* Closes the connection and frees it. NULL is allowed. */
void store_close(struct store *store);

/*
 * Returns the backend's message for the last failure on this connection, or
 * "" when nothing failed yet. A later success does not clear it. The string
 * belongs to the connection and changes with its next failure.
 */
const char *store_last_error(struct store *store);

/* Returns a short name of the backend, such as "sqlite". */
const char *store_backend_name(struct store *store);

/*
 * Reads the link with this code, live or deleted, into *link (release it with
 * store_link_clear). Returns 0, -ENOENT when no link has the code (including
 * a code of 0 or more than STORE_CODE_MAX bytes), or an error; on failure
 * *link is zeroed and owns nothing.
 */
int store_get_link(struct store *store, const char *code, size_t code_len, struct store_link *link);

/*
 * Reserves count ids and stores the first in *first; the caller may use
 * [*first, *first + count). The reservation is durable before this returns,
 * so after a crash the ids are skipped, never handed out again. Ids start at
 * 1 and never pass INT64_MAX. Returns 0, -EINVAL when count is 0, -EOVERFLOW
 * when the ids would pass INT64_MAX, or an error.
 */
int store_reserve_ids(struct store *store, uint64_t count, uint64_t *first);

/*
 * Applies ops in one transaction and makes it durable before returning.
 * Returns 0 when the transaction committed: each op's result says whether
 * that op took effect (a failed op leaves no trace). Returns a negative errno
 * when the transaction as a whole failed: nothing was written and every op's
 * result is set to that error. That error is -EINVAL when an op carries a
 * value the database rejects as a whole, such as an id already in use.
 * count 0 returns 0 and touches nothing.
 */
int store_apply(struct store *store, struct store_op *ops, size_t count);

/*
 * Reads setting name into value (value_cap bytes; the value is not
 * NUL-terminated) and stores its length in *value_len. Returns 0, -ENOENT
 * when unset, -ENOBUFS when value_cap is too small (*value_len then contains
 * the length needed), or an error. value may be NULL when value_cap is 0.
 */
int store_get_setting(struct store *store, const char *name, void *value, size_t value_cap,
                      size_t *value_len);

/*
 * Stores setting name = value durably unless it is already set. Returns 0
 * when stored, -EEXIST when it was already set (unchanged), or an error.
 * Two processes racing to set the same setting both succeed in reading one
 * value afterwards. The setting "next_id" belongs to store_reserve_ids.
 */
int store_set_setting_once(struct store *store, const char *name, const void *value,
                           size_t value_len);

/*
 * Reads a table of the database to check that it is reachable, for
 * readiness probes. Returns 0 or an error.
 */
int store_ping(struct store *store);

/*
 * Sets how many bytes of database pages this connection keeps in memory.
 * A connection that writes to many places of a large database (the writer)
 * needs far fewer disk reads with a larger cache. Returns 0 or an error.
 */
int store_set_cache_size(struct store *store, size_t bytes);

/*
 * Visits to one link on one day from one referrer host, to add to the store.
 * A flush has one entry per distinct (link, day, referrer host) of its
 * interval, so the entry is kept small: 32 bytes on 64-bit machines.
 */
struct store_visit {
    int64_t link_id;
    uint64_t count; /* visits to add, 1 to INT64_MAX */

    /* Host of the Referer, not NUL-terminated: referrer_len bytes, at most
     * STORE_HOST_MAX. referrer_len 0 means no host, and referrer may then be
     * NULL. The bytes belong to the caller. */
    const char *referrer;
    uint32_t referrer_len;

    int32_t day; /* days since 1970-01-01 in UTC */
};

/*
 * Adds visits in one durable transaction: each entry adds count to the
 * link's total, to its count for the day and, when referrer_len is not 0, to
 * its count for that day and referrer host. Entries whose link_id matches no
 * link are skipped (deleted links still match). Entries with the same link,
 * day and host add up. The referrer bytes are read only during the call.
 * The entries may be reordered (the SQLite backend sorts them by link, day
 * and host, so that it writes its tables in key order). Returns 0 or an
 * error, and on error nothing was added. -EINVAL means that an entry has a
 * link_id below 1, a count of 0 or above INT64_MAX, a referrer_len above
 * STORE_HOST_MAX, or a NULL referrer with a referrer_len above 0. It also
 * means that a stored count would pass INT64_MAX.
 */
int store_add_visits(struct store *store, struct store_visit *visits, size_t count);

/*
 * Marks live links whose expires_at is at or before now and that are not
 * marked yet, at most limit of them, oldest expiry first, by setting
 * expired_at to now, in one durable transaction. Calls fn for each marked
 * link after the commit (link.url is valid only during the call). Returns
 * the number marked, or an error (then nothing was marked and fn was not
 * called).
 */
int store_expire_links(struct store *store, int64_t now, size_t limit,
                       void (*fn)(const struct store_link *link, void *arg), void *arg);

/*
 * Calls fn for up to limit live links, newest first (descending id),
 * starting below before_id (0 to start with the newest). owner_key_id selects
 * the links of one key, or every link when it is -1. fn returns 0 to go on
 * or non-zero to stop; link.url is valid only during the call. fn runs while
 * the read is in progress, so it must not use this connection. Returns the
 * number of links passed to fn, or an error.
 */
int store_list_links(struct store *store, int64_t owner_key_id, int64_t before_id, size_t limit,
                     int (*fn)(const struct store_link *link, void *arg), void *arg);

/*
 * Inserts links for a bulk import, in one transaction that is durable before
 * this returns, like a store_apply batch of CREATE ops without dedupe. Each
 * link is stored with its fields as given, except the id: the store takes
 * count ids from the counter of store_reserve_ids inside the same
 * transaction and sets links[i].id to the first of them plus i, so ids
 * follow the order of links, and a link generated later never gets an id
 * or code that an import used. Ids of rejected links stay unused. Each link
 * needs a code of 1 to STORE_CODE_MAX bytes, a url and a redirect_status of
 * 301, 302, 307 or 308.
 *
 * results[i] is set to 0 when links[i] was inserted, -EEXIST when its code
 * is taken by a link in the store (live or deleted) or by links[j] for some
 * j < i, or -EINVAL when a required field is missing. Returns 0 when the
 * transaction committed, or a negative errno when it failed as a whole:
 * then nothing was written, every result is set to that error and every id
 * to 0. count 0 returns 0 and touches nothing. The backend may keep memory
 * and settings between calls that make later calls on the same connection
 * faster (the SQLite backend enlarges the connection's page cache).
 */
int store_import_links(struct store *store, struct store_link *links, int *results, size_t count);

/*
 * Calls fn for every live link, in ascending id order, as one consistent
 * snapshot: writes that other connections commit during the scan are not
 * seen. link.url is valid only during the call. fn returns 0 to go on; any
 * other value stops the scan, and store_scan_links returns that value. fn
 * runs while the read is in progress, so it must not use this connection,
 * and a slow fn keeps the snapshot open (for SQLite, the write-ahead log
 * cannot be checkpointed past it and grows meanwhile). Returns 0 after the
 * last link, fn's value, or an error.
 */
int store_scan_links(struct store *store, int (*fn)(const struct store_link *link, void *arg),
                     void *arg);

/* Visits on one day. */
struct store_day_count {
    int32_t day; /* days since 1970-01-01 in UTC */
    uint64_t count;
};

/* Visits from one referrer host. */
struct store_host_count {
    char host[STORE_HOST_MAX + 1]; /* NUL-terminated */
    uint64_t count;
};

/*
 * Reads the statistics of link_id for the days from_day to to_day
 * inclusive: the days that have visits, ascending, into days (at most
 * days_cap, the number in *days_len), and the referrer hosts with the most
 * visits over those days, descending by count and then by host, into hosts
 * (at most hosts_cap, the number in *hosts_len). Returns 0 or an error.
 */
int store_link_stats(struct store *store, int64_t link_id, int32_t from_day, int32_t to_day,
                     struct store_day_count *days, size_t days_cap, size_t *days_len,
                     struct store_host_count *hosts, size_t hosts_cap, size_t *hosts_len);

/*
 * Calls fn for every API key, revoked ones included, in ascending id order.
 * fn returns 0 to go on or non-zero to stop. fn runs while the read is in
 * progress, so it must not use this connection. Returns the number of keys
 * passed to fn, or an error.
 */
int store_list_keys(struct store *store, int (*fn)(const struct store_key *key, void *arg),
                    void *arg);

#endif
