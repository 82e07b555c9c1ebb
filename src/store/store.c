/*
 * Backend selection and dispatch for store.h.
 *
 * store_open chooses the backend from the location and every other function
 * checks its arguments and calls through the connection's backend table
 * (backend.h). This file keeps no database state of its own.
 */
#include "store/store.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "store/backend.h"

void store__format_error(char *error, size_t error_len, const char *format, ...)
{
    va_list args;

    if (error == NULL || error_len == 0)
        return;

    va_start(args, format);
    (void)vsnprintf(error, error_len, format, args);
    va_end(args);
}

void store__set_error(struct store *store, const char *format, ...)
{
    va_list args;

    va_start(args, format);
    (void)vsnprintf(store->error, sizeof(store->error), format, args);
    va_end(args);
}

/* URL schemes are case-insensitive (RFC 3986, section 3.1). */
static int is_postgres_url(const char *location)
{
    return strncasecmp(location, "postgres://", strlen("postgres://")) == 0 ||
           strncasecmp(location, "postgresql://", strlen("postgresql://")) == 0;
}

int store_open(const char *location, struct store **store, char *error, size_t error_len)
{
    if (store == NULL)
        return -EINVAL;
    *store = NULL;

    if (location == NULL || location[0] == '\0') {
        store__format_error(error, error_len,
                            "database location is empty: give a SQLite file path");
        return -EINVAL;
    }

    /* The URL is left out of the message because it may contain a password. */
    if (is_postgres_url(location)) {
        store__format_error(error, error_len,
                            "PostgreSQL support is not built into this shortd: use a SQLite "
                            "file path as the database location");
        return -EPROTONOSUPPORT;
    }

    return store__sqlite_open(location, store, error, error_len);
}

void store_close(struct store *store)
{
    if (store == NULL)
        return;

    store->backend->close(store);
}

const char *store_last_error(struct store *store)
{
    return store->error;
}

const char *store_backend_name(struct store *store)
{
    return store->backend->name;
}

void store_link_clear(struct store_link *link)
{
    if (link == NULL)
        return;

    free(link->url);
    memset(link, 0, sizeof(*link));
}

int store_get_link(struct store *store, const char *code, size_t code_len, struct store_link *link)
{
    if (link == NULL)
        return -EINVAL;
    memset(link, 0, sizeof(*link));

    if (code == NULL)
        return -EINVAL;

    /* No stored code is empty or longer than STORE_CODE_MAX. */
    if (code_len == 0 || code_len > STORE_CODE_MAX)
        return -ENOENT;

    return store->backend->get_link(store, code, code_len, link);
}

int store_reserve_ids(struct store *store, uint64_t count, uint64_t *first)
{
    if (first == NULL || count == 0)
        return -EINVAL;

    return store->backend->reserve_ids(store, count, first);
}

int store_apply(struct store *store, struct store_op *ops, size_t count)
{
    if (count == 0)
        return 0;
    if (ops == NULL)
        return -EINVAL;

    return store->backend->apply(store, ops, count);
}

int store_get_setting(struct store *store, const char *name, void *value, size_t value_cap,
                      size_t *value_len)
{
    if (name == NULL || value_len == NULL || (value == NULL && value_cap > 0))
        return -EINVAL;

    return store->backend->get_setting(store, name, value, value_cap, value_len);
}

int store_set_setting_once(struct store *store, const char *name, const void *value,
                           size_t value_len)
{
    if (name == NULL || (value == NULL && value_len > 0))
        return -EINVAL;

    return store->backend->set_setting_once(store, name, value, value_len);
}

int store_ping(struct store *store)
{
    return store->backend->ping(store);
}

int store_set_cache_size(struct store *store, size_t bytes)
{
    return store->backend->set_cache_size(store, bytes);
}

int store_add_visits(struct store *store, struct store_visit *visits, size_t count)
{
    size_t i;

    if (count == 0)
        return 0;
    if (visits == NULL)
        return -EINVAL;

    /* Totals are SQL INTEGERs, so one entry adds at most INT64_MAX. */
    for (i = 0; i < count; i++) {
        const struct store_visit *visit = &visits[i];

        if (visit->link_id <= 0 || visit->count == 0 || visit->count > INT64_MAX ||
            visit->referrer_len > STORE_HOST_MAX ||
            (visit->referrer_len > 0 && visit->referrer == NULL))
            return -EINVAL;
    }

    return store->backend->add_visits(store, visits, count);
}

int store_expire_links(struct store *store, int64_t now, size_t limit,
                       void (*fn)(const struct store_link *link, void *arg), void *arg)
{
    /* expired_at 0 reads back as "not marked", so marking needs a real time. */
    if (now <= 0)
        return -EINVAL;
    if (limit == 0)
        return 0;

    /* The number marked is returned as an int. */
    if (limit > INT_MAX)
        limit = INT_MAX;

    return store->backend->expire_links(store, now, limit, fn, arg);
}

int store_list_links(struct store *store, int64_t owner_key_id, int64_t before_id, size_t limit,
                     int (*fn)(const struct store_link *link, void *arg), void *arg)
{
    /* Key ids start at 1, and 0 is the "no owner" of store_link, which selects no key. */
    if (fn == NULL || owner_key_id == 0 || owner_key_id < -1 || before_id < 0)
        return -EINVAL;
    if (limit == 0)
        return 0;

    if (before_id == 0)
        before_id = INT64_MAX;
    if (limit > INT_MAX)
        limit = INT_MAX;

    return store->backend->list_links(store, owner_key_id, before_id, limit, fn, arg);
}

int store_import_links(struct store *store, struct store_link *links, int *results, size_t count)
{
    if (count == 0)
        return 0;
    if (links == NULL || results == NULL)
        return -EINVAL;

    return store->backend->import_links(store, links, results, count);
}

int store_scan_links(struct store *store, int (*fn)(const struct store_link *link, void *arg),
                     void *arg)
{
    if (fn == NULL)
        return -EINVAL;

    return store->backend->scan_links(store, fn, arg);
}

int store_link_stats(struct store *store, int64_t link_id, int32_t from_day, int32_t to_day,
                     struct store_day_count *days, size_t days_cap, size_t *days_len,
                     struct store_host_count *hosts, size_t hosts_cap, size_t *hosts_len)
{
    if (days_len == NULL || hosts_len == NULL || (days == NULL && days_cap > 0) ||
        (hosts == NULL && hosts_cap > 0))
        return -EINVAL;

    *days_len = 0;
    *hosts_len = 0;
    if (from_day > to_day)
        return 0;

    return store->backend->link_stats(store, link_id, from_day, to_day, days, days_cap, days_len,
                                      hosts, hosts_cap, hosts_len);
}

int store_list_keys(struct store *store, int (*fn)(const struct store_key *key, void *arg),
                    void *arg)
{
    if (fn == NULL)
        return -EINVAL;

    return store->backend->list_keys(store, fn, arg);
}
