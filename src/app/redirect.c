/*
 * GET and HEAD /{code}: the redirect, the hot path of the server.
 *
 * A cache hit copies the link record to the stack under the shard lock and
 * responds after the lock is released. Then, in order: an expired link gets
 * 410; a link with a visit limit takes one visit from its counter (below);
 * the redirect is written; a GET is counted for statistics (visits.c) and
 * published on the visits topic when a stream listens. Nothing on this path
 * allocates, except for URLs longer than about 4 KB and the first visit of a
 * limited link.
 *
 * Visit limits are exact across I/O threads: app->limits maps each limited
 * code to a struct visit_limit whose used count is checked and incremented
 * under one shard lock. The first visit in this process reads the count
 * flushed to the store (lookup.c) before the counter exists. The counter is
 * never evicted while the process runs, so it never has to be rebuilt from a
 * store that lags behind by a flush interval. A crash can lose up to one
 * flush interval of visits, which that many extra visits could then use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/datetime.h"
#include "app/links.h"
#include "app/log.h"
#include "app/redirect.h"
#include "net/loop.h"

/*
 * A copy of a cache record taken under the shard lock. Records up to the
 * size of the inline buffer (URLs of about 4 KB) are copied to the stack;
 * only longer ones cost an allocation.
 */
struct copy {
    char inline_data[4096];
    char *data;
    size_t len;
};

static void copy_record(const void *value, size_t len, void *arg)
{
    struct copy *copy = arg;

    copy->data = len <= sizeof(copy->inline_data) ? copy->inline_data : malloc(len);
    if (copy->data == NULL)
        return;
    memcpy(copy->data, value, len);
    copy->len = len;
}

static void copy_release(struct copy *copy)
{
    if (copy->data != copy->inline_data)
        free(copy->data);
}

/* Context of a visit_limit update. */
struct limit_update {
    bool count;    /* take a visit (GET), or only check (HEAD) */
    bool create;   /* create the counter when absent, from base */
    int64_t base;  /* visits in the store, for create */
    int64_t max;
    struct visit_limit *fresh; /* allocated by the caller for create */
    bool fresh_used;
    enum limit_outcome outcome;
};

static void *update_limit(void *value, void *arg)
{
    struct limit_update *update = arg;
    struct visit_limit *limit = value;

    if (limit == NULL) {
        if (!update->create) {
            update->outcome = LIMIT_UNKNOWN;
            return NULL;
        }
        limit = update->fresh;
        limit->used = update->base;
        limit->max = update->max;
        update->fresh_used = true;
    }

    if (limit->used >= limit->max) {
        update->outcome = LIMIT_EXHAUSTED;
    } else {
        if (update->count)
            limit->used++;
        update->outcome = LIMIT_ALLOWED;
    }
    return limit;
}

enum limit_outcome app_limit_take(struct app *app, const char *code, size_t code_len,
                                  int64_t max_visits, bool count, const int64_t *base)
{
    struct limit_update update = {.count = count, .max = max_visits};
    int rc;

    if (base != NULL) {
        update.create = true;
        update.base = *base;
        update.fresh = malloc(sizeof(*update.fresh));
        if (update.fresh == NULL)
            return LIMIT_ERROR;
    }

    rc = shardmap_update(app->limits, code, code_len, update_limit, &update);
    if (update.fresh != NULL && !update.fresh_used)
        free(update.fresh);
    if (rc < 0)
        return LIMIT_ERROR;
    return update.outcome;
}

/* Writes the redirect response of a live link. */
static void send_redirect(struct app *app, struct http_conn *conn,
                          const struct link_record *record)
{
    int64_t max_age = record->cache_max_age >= 0 ? record->cache_max_age
                                                 : app->config->cache_max_age;

    http_conn_begin(conn, record->redirect_status);
    http_conn_header(conn, "Location", record->url, record->url_len);
    if (max_age >= 0)
        http_conn_headerf(conn, "Cache-Control", "private, max-age=%lld", (long long)max_age);
    http_conn_end(conn, NULL, NULL, 0);
}

static void send_gone(struct http_conn *conn, const char *code, size_t code_len,
                      const char *error, const char *what)
{
    char message[160];

    snprintf(message, sizeof(message), "The link %.*s %s.", (int)code_len, code, what);
    app_send_error(conn, 410, error, message);
}

void app_answer_redirect(struct app *app, struct http_conn *conn, const struct link_record *record,
                         const char *code, size_t code_len, const char *referrer,
                         size_t referrer_len)
{
    struct loop *loop = http_conn_loop(conn);
    bool is_get = http_conn_method(conn) == HTTP_METHOD_GET;
    char message[160];

    switch (record->kind) {
    case LINK_LIVE:
        break;
    case LINK_GONE:
        send_gone(conn, code, code_len, "link_gone", "was deleted");
        return;
    case LINK_EXPIRED:
        send_gone(conn, code, code_len, "link_expired", "has expired");
        return;
    case LINK_MISSING:
    default:
        snprintf(message, sizeof(message), "No link has the code %.*s.", (int)code_len, code);
        app_send_error(conn, 404, "not_found", message);
        return;
    }

    if (record->expires_at != 0 && loop_wall_ms(loop) >= record->expires_at) {
        send_gone(conn, code, code_len, "link_expired", "has expired");
        return;
    }

    if (record->max_visits > 0) {
        switch (app_limit_take(app, code, code_len, record->max_visits, is_get, NULL)) {
        case LIMIT_ALLOWED:
            break;
        case LIMIT_EXHAUSTED:
            send_gone(conn, code, code_len, "link_exhausted", "has reached its visit limit");
            return;
        case LIMIT_UNKNOWN:
            /* First visit in this process: read the stored count first. */
            app_redirect_miss(app, conn, code, code_len, referrer, referrer_len);
            return;
        case LIMIT_ERROR:
        default:
            app_send_unavailable(conn, -ENOMEM);
            return;
        }
    }

    send_redirect(app, conn, record);

    /* A limited link's visits are stored even without tracking: the limit
     * must hold across restarts. */
    if (is_get && (app->config->track_visits || record->max_visits > 0)) {
        visits_record(app->visits, http_conn_thread_index(conn), record->id,
                      datetime_day_of(loop_wall_ms(loop)), referrer, referrer_len);
        if (app->config->track_visits && broker_wants(app->broker, APP_TOPIC_VISITS))
            app_publish_visit(app, code, code_len, record->owner_key_id, referrer,
                              referrer_len);
    }
}

/* Takes a token for the client's address from the redirect limit. */
static bool redirect_allowed(struct app *app, struct http_conn *conn,
                             const struct http_request *req)
{
    struct client_address peer, client;
    struct ratelimit_result result;
    uint8_t key[16];
    size_t key_len;

    if (app->redirect_limit == NULL)
        return true;
    if (client_from_sockaddr(http_conn_peer(conn), &peer) < 0)
        return true;
    client_resolve(&app->config->trusted_proxies, &peer, req, &client);
    key_len = client_limit_key(&client, key);
    if (ratelimit_take(app->redirect_limit, key, key_len, NULL, loop_now(http_conn_loop(conn)),
                       &result) == -EAGAIN) {
        app_send_rate_limited(conn, &result);
        return false;
    }
    return true;
}

void app_redirect(struct app *app, struct http_conn *conn, const struct http_request *req,
                  const char *code, size_t code_len)
{
    const struct http_header *referer;
    char referrer[STORE_HOST_MAX + 1];
    size_t referrer_len = 0;
    struct link_record record;
    struct copy copy;

    if (!redirect_allowed(app, conn, req))
        return;

    if (req->method == HTTP_METHOD_GET) {
        referer = http_find_header(req, "Referer", 7);
        if (referer != NULL)
            referrer_len = visits_referrer_host(referer->value, referer->value_len, referrer);
    }
    referrer[referrer_len] = '\0';

    copy.data = NULL;
    if (cache_get(app->cache, code, code_len, loop_now(http_conn_loop(conn)), copy_record, &copy) ==
            0 &&
        copy.data != NULL) {
        if (link_record_decode(copy.data, copy.len, &record) == 0) {
            app_answer_redirect(app, conn, &record, code, code_len, referrer, referrer_len);
            copy_release(&copy);
            return;
        }
        copy_release(&copy);
    }

    app_redirect_miss(app, conn, code, code_len, referrer, referrer_len);
}
