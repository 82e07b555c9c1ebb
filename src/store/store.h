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

#include <stddef.h>
#include <stdint.h>

struct store;

/* Longest code or alias, in bytes. */
#define STORE_CODE_MAX 64

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
};

/* One write in a batch passed to store_apply. */
struct store_op {
    enum store_op_kind kind;
    struct store_link link; /* the caller owns link.url */
    int64_t now;            /* ms, the time of the write */

    /*
     * Set by store_apply: 0 on success; for CREATE -EEXIST when the code is
     * taken by a live or deleted link; for DELETE -ENOENT when no link has
     * that code and -EALREADY when it is already deleted. -EINVAL means that
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

#endif
