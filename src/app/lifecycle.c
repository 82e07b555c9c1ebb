/*
 * What the writer thread runs besides its batches: the effects of committed
 * writes (applied) and the periodic work (tick).
 *
 * applied, after each commit and before any client hears of it:
 *   - a created link goes into the cache, so its first redirect is a hit;
 *   - a deleted link becomes a "gone" cache record;
 *   - a created or revoked key updates the in-memory key registry;
 *   - link.created and link.deleted events are published.
 *
 * tick, every --flush-interval and once more at stop:
 *   - visit counts collected by the I/O threads are added to the store; a
 *     failed flush is kept and retried on the next tick, so a disk that is
 *     full for a while loses no counts (up to UNFLUSHED_MAX entries);
 *   - links whose expiry passed are marked expired in the store, become
 *     "expired" cache records, and link.expired events are published;
 *   - idle rate-limit buckets are dropped.
 *
 * Everything here runs on the writer thread, which owns the unflushed
 * visits; no lock is needed for them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/log.h"
#include "app/writer.h"
#include "net/loop.h"

#define EXPIRE_BATCH   1000
#define UNFLUSHED_MAX  (4u * 1024 * 1024)

/*
 * Visit counts that failed to reach the store, retried on each tick: one
 * block in the layout of visits_take, NULL when nothing waits.
 */
static struct store_visit *unflushed;
static size_t unflushed_count;

static void put_record(struct app *app, const struct link_record *record, const char *code,
                       size_t code_len)
{
    char stack[1024], *buffer = stack;
    size_t size = link_record_size(record);

    if (size > sizeof(stack)) {
        buffer = malloc(size);
        if (buffer == NULL) {
            /* Without a fresh entry the old one must not survive. */
            (void)cache_remove(app->cache, code, code_len);
            return;
        }
    }
    (void)link_record_encode(record, buffer);
    if (cache_put(app->cache, code, code_len, buffer, size, 0, loop_clock_ms()) < 0)
        (void)cache_remove(app->cache, code, code_len);
    if (buffer != stack)
        free(buffer);
}

void app_write_applied(void *context, const struct write_op *op)
{
    struct app *app = context;
    struct link_record record;
    struct store_link link;

    switch (op->kind) {
    case WRITE_CREATE:
        if (op->result == STORE_DEDUPED)
            return;
        link_record_from_store(&op->link, &record);
        put_record(app, &record, op->link.code, op->link.code_len);
        app_publish_link_event(app, "link.created", &op->link);
        return;

    case WRITE_DELETE:
        memset(&record, 0, sizeof(record));
        record.kind = LINK_GONE;
        record.cache_max_age = -1;
        put_record(app, &record, op->code, op->code_len);
        memset(&link, 0, sizeof(link));
        memcpy(link.code, op->code, op->code_len + 1);
        link.code_len = op->code_len;
        link.owner_key_id = op->owner_key_id;
        app_publish_link_event(app, "link.deleted", &link);
        return;

    case WRITE_KEY_CREATE:
        if (keys_put(app->keys, &op->key) < 0)
            log_error("keys", "key %lld is stored but could not be loaded: out of memory",
                      (long long)op->key.id);
        return;

    case WRITE_KEY_REVOKE:
        if (keys_revoke(app->keys, op->key.id) < 0)
            log_warn("keys", "revoked key %lld was not loaded", (long long)op->key.id);
        return;
    }
}

/*
 * Adds a block from visits_take to the counts waiting for a retry and takes
 * it over, so it is kept or freed. A block that would make more than
 * UNFLUSHED_MAX counts wait is dropped, unless none wait: then it is kept
 * whatever its size, because one take is bounded by --threads tables of at
 * most VISIT_ENTRIES_MAX entries. Returns 0 or -ENOMEM.
 */
static int keep_unflushed(struct store_visit *visits, size_t count)
{
    struct store_visit *joined;

    if (unflushed == NULL) {
        unflushed = visits;
        unflushed_count = count;
        return 0;
    }
    if (unflushed_count + count > UNFLUSHED_MAX) {
        log_error("visits", "dropping %zu visit counts that could not be stored", count);
        free(visits);
        return -ENOMEM;
    }
    joined = visits_join(unflushed, unflushed_count, visits, count);
    free(visits);
    if (joined == NULL) {
        log_error("visits", "dropping %zu visit counts: out of memory", count);
        return -ENOMEM;
    }
    free(unflushed);
    unflushed = joined;
    unflushed_count += count;
    return 0;
}

static void flush_visits(struct app *app, struct store *store)
{
    struct store_visit *visits = NULL;
    uint64_t started;
    size_t count = 0;
    int rc;

    rc = visits_take(app->visits, &visits, &count);
    if (rc < 0) {
        log_error("visits", "taking visit counts failed: %s", strerror(-rc));
        return;
    }
    if (count > 0)
        (void)keep_unflushed(visits, count);
    if (unflushed_count == 0)
        return;

    started = metrics_now_ns();
    rc = store_add_visits(store, unflushed, unflushed_count);
    metrics_visit_flush(app->metrics, unflushed_count, metrics_now_ns() - started, rc);
    writer_set_health(app->writer, rc);
    if (rc < 0) {
        log_error("store", "flush of %zu visit counts failed, retrying: %s", unflushed_count,
                  store_last_error(store));
        return;
    }
    free(unflushed);
    unflushed = NULL;
    unflushed_count = 0;
}

static void link_expired(const struct store_link *link, void *arg)
{
    struct app *app = arg;
    struct link_record record;

    link_record_from_store(link, &record);
    record.kind = LINK_EXPIRED;
    record.url_len = 0;
    put_record(app, &record, link->code, link->code_len);
    app_publish_link_event(app, "link.expired", link);
}

static void expire_links(struct app *app, struct store *store)
{
    int rc;

    do {
        rc = store_expire_links(store, app_wall_ms(), EXPIRE_BATCH, link_expired, app);
        if (rc < 0)
            log_error("store", "marking expired links failed: %s", store_last_error(store));
    } while (rc == EXPIRE_BATCH);
}

void app_write_tick(void *context, struct store *store, bool final)
{
    struct app *app = context;
    uint64_t now = loop_clock_ms();

    flush_visits(app, store);
    if (final) {
        if (unflushed_count > 0)
            log_error("visits", "%zu visit counts could not be stored before stopping",
                      unflushed_count);
        free(unflushed);
        unflushed = NULL;
        unflushed_count = 0;
        return;
    }

    expire_links(app, store);
    (void)ratelimit_evict_idle(app->anonymous_limit, now);
    (void)ratelimit_evict_idle(app->key_limit, now);
    if (app->redirect_limit != NULL)
        (void)ratelimit_evict_idle(app->redirect_limit, now);
}

void app_count_commit(void *context, size_t ops, uint64_t duration_ns, int err)
{
    struct app *app = context;

    metrics_commit(app->metrics, ops, duration_ns, err);
}
