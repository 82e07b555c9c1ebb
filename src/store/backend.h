/*
 * Private interface between store.c and the storage backends.
 *
 * Each backend defines its own connection struct whose first member is a
 * struct store, fills one struct store_backend with its functions, and
 * exports one open function that store_open calls for the locations it
 * serves. store.c checks arguments that every backend would check the same
 * way and then calls through the table, so callers of store.h never see
 * which backend they use. Adding a backend (a later postgres.c) means one
 * new file, one open function declared here and one line in store_open.
 *
 * Only store.c and the backend files include this header.
 */
#ifndef SHORTD_STORE_BACKEND_H
#define SHORTD_STORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Size of the message buffer of a connection, terminating NUL included. */
#define STORE_ERROR_MAX 512

/*
 * Operations of one backend, one per store.h function. Each has the contract
 * of the store.h function of the same name. store.c has already checked
 * that pointers the contract requires are not NULL, that counts and limits
 * are not 0 and that the values in them are in range. A backend therefore
 * receives only these:
 * - add_visits: every entry has a link_id > 0, a count from 1 to INT64_MAX
 *   and a referrer of at most STORE_HOST_MAX bytes, not NULL when its length
 *   is not 0.
 * - expire_links: now > 0 and limit <= INT_MAX.
 * - list_links: owner_key_id is -1 or > 0, before_id > 0 (store.c turns 0
 *   into INT64_MAX) and limit <= INT_MAX.
 * - link_stats: from_day <= to_day, and *days_len and *hosts_len are 0.
 * - import_links: count > 0 and links and results are not NULL.
 * - scan_links: fn is not NULL.
 */
struct store_backend {
    const char *name;
    void (*close)(struct store *store);
    int (*get_link)(struct store *store, const char *code, size_t code_len,
                    struct store_link *link);
    int (*reserve_ids)(struct store *store, uint64_t count, uint64_t *first);
    int (*apply)(struct store *store, struct store_op *ops, size_t count);
    int (*get_setting)(struct store *store, const char *name, void *value, size_t value_cap,
                       size_t *value_len);
    int (*set_setting_once)(struct store *store, const char *name, const void *value,
                            size_t value_len);
    int (*ping)(struct store *store);
    int (*set_cache_size)(struct store *store, size_t bytes);
    int (*add_visits)(struct store *store, struct store_visit *visits, size_t count);
    int (*expire_links)(struct store *store, int64_t now, size_t limit,
                        void (*fn)(const struct store_link *link, void *arg), void *arg);
    int (*list_links)(struct store *store, int64_t owner_key_id, int64_t before_id, size_t limit,
                      int (*fn)(const struct store_link *link, void *arg), void *arg);
    int (*import_links)(struct store *store, struct store_link *links, int *results, size_t count);
    int (*scan_links)(struct store *store, int (*fn)(const struct store_link *link, void *arg),
                      void *arg);
    int (*link_stats)(struct store *store, int64_t link_id, int32_t from_day, int32_t to_day,
                      struct store_day_count *days, size_t days_cap, size_t *days_len,
                      struct store_host_count *hosts, size_t hosts_cap, size_t *hosts_len);
    int (*list_keys)(struct store *store, int (*fn)(const struct store_key *key, void *arg),
                     void *arg);
};

/* The part of a connection that every backend shares. */
struct store {
    const struct store_backend *backend;
    char error[STORE_ERROR_MAX]; /* message of the last failure, "" before any */
};

/*
 * Formats the message of a failure into store->error, replacing the previous
 * one. Messages name the operation and the object and end with the cause,
 * for example "commit of 128 writes failed: database or disk is full".
 */
void store__set_error(struct store *store, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Formats a message into a caller's buffer of error_len bytes. Does nothing
 * when error is NULL or error_len is 0. Used by open functions, which have no
 * connection yet.
 */
void store__format_error(char *error, size_t error_len, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Opens the SQLite database at path (see store_open). On success sets *store
 * to a connection whose backend is the SQLite one.
 */
int store__sqlite_open(const char *path, struct store **store, char *error, size_t error_len);

#endif
