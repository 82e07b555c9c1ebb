/*
 * Durable storage of links: one interface, one backend per database.
 *
 * A struct store is one connection to the database and belongs to one thread
 * at a time: shortd opens one per worker thread and one for the writer
 * thread. store_open picks the backend from the location: a path selects
 * SQLite (sqlite.c); other backends register the URL schemes they serve.
 *
 * Every function returns 0 or a negative errno. The errno says what kind of
 * failure it was (-ENOSPC disk full, -EROFS read-only, -EBUSY locked, -EIO
 * anything else from the database), and store_last_error() returns the
 * backend's own message for the log.
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
    int64_t created_at;    /* ms */
    int64_t expires_at;    /* ms, 0 when the link never expires */
    int64_t max_visits;    /* 0 when unlimited */
    int64_t visits;        /* visits counted in the store */
    int redirect_status;   /* 301, 302, 307 or 308 */
    int64_t deleted_at;    /* ms, 0 while the link is live */
    int64_t owner_key_id;  /* API key that created it, 0 for none */
};

/* Frees the URL of a record filled by the store and zeroes the record. */
void store_link_clear(struct store_link *link);

enum store_op_kind {
    STORE_OP_CREATE, /* insert op->link; id, code and url are required */
    STORE_OP_DELETE, /* mark the live link op->link.code deleted at op->now */
};

/* One write in a batch passed to store_apply. */
struct store_op {
    enum store_op_kind kind;
    struct store_link link; /* the caller owns link.url */
    int64_t now;            /* ms, the time of the write */

    /*
     * Set by store_apply: 0 on success; for CREATE -EEXIST when the code is
     * taken; for DELETE -ENOENT when no link has that code and -EALREADY
     * when it is already deleted.
     */
    int result;
};

/*
 * Opens a connection to the store at location, creating the database, its
 * parent folder and its schema when they do not exist and applying pending
 * schema migrations. On failure returns a negative errno and writes a
 * sentence into error (when error_len > 0).
 */
int store_open(const char *location, struct store **store, char *error, size_t error_len);

/* Closes the connection. NULL is allowed. */
void store_close(struct store *store);

/* Returns the backend's message for the last failure on this connection. */
const char *store_last_error(struct store *store);

/* Returns a short name of the backend, such as "sqlite". */
const char *store_backend_name(struct store *store);

/*
 * Reads the link with this code, live or deleted, into *link (release it with
 * store_link_clear). Returns 0, -ENOENT when no link has the code, or an
 * error.
 */
int store_get_link(struct store *store, const char *code, size_t code_len,
                   struct store_link *link);

/*
 * Reserves count ids and stores the first in *first; the caller may use
 * [*first, *first + count). The reservation is durable before this returns,
 * so after a crash the ids are skipped, never handed out again. Ids start at
 * 1. Returns 0 or an error.
 */
int store_reserve_ids(struct store *store, uint64_t count, uint64_t *first);

/*
 * Applies ops in one transaction and makes it durable before returning.
 * Returns 0 when the transaction committed: each op's result says whether
 * that op took effect (a failed op leaves no trace). Returns a negative errno
 * when the transaction as a whole failed: nothing was written and every op's
 * result is set to that error.
 */
int store_apply(struct store *store, struct store_op *ops, size_t count);

/*
 * Reads setting name into value (value_cap bytes; the value is not
 * NUL-terminated) and stores its length in *value_len. Returns 0, -ENOENT
 * when unset, -ENOBUFS when value_cap is too small, or an error.
 */
int store_get_setting(struct store *store, const char *name, void *value, size_t value_cap,
                      size_t *value_len);

/*
 * Stores setting name = value durably unless it is already set. Returns 0
 * when stored, -EEXIST when it was already set (unchanged), or an error.
 * Two processes racing to set the same setting both succeed in reading one
 * value afterwards.
 */
int store_set_setting_once(struct store *store, const char *name, const void *value,
                           size_t value_len);

/*
 * Checks that the database answers a trivial read. Returns 0 or an error.
 */
int store_ping(struct store *store);

#endif
