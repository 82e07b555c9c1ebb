/*
 * The daemon's shared state and the request handlers built on it.
 *
 * main.c creates one struct app, starts the components it points to, and
 * hands app_handle_request to the server. After start the struct is only
 * read, so I/O threads, workers and the writer share it without a lock; the
 * components it points to do their own locking.
 *
 * Request paths:
 *   routes.c     picks the handler from method and path; authentication,
 *                rate limits and JSON error responses.
 *   redirect.c   GET /{code}: the cache, expiry, visit limits, visit counts.
 *   lookup.c     everything that reads the store on the worker pool: cache
 *                misses (coalesced per code), link reads, statistics,
 *                listings, readiness.
 *   create.c     writes through the writer: links and API keys.
 *   events.c     GET /api/v1/events, server-sent events from the broker.
 *   lifecycle.c  what the writer runs after commits and on its ticks:
 *                cache updates, events, visit flushes, the expiry sweep.
 */
#ifndef SHORTD_APP_APP_H
#define SHORTD_APP_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/config.h"
#include "app/keys.h"
#include "app/links.h"
#include "app/metrics.h"
#include "app/url.h"
#include "app/visits.h"
#include "core/broker.h"
#include "core/cache.h"
#include "core/codegen.h"
#include "core/ratelimit.h"
#include "core/shardmap.h"
#include "core/workpool.h"
#include "net/server.h"

struct json_t;
struct store;
struct write_op;
struct writer;

#define APP_KEY_HASH_BYTES 32

/* Broker topics. */
enum app_topic {
    APP_TOPIC_LINKS = 0,
    APP_TOPIC_VISITS = 1,
    APP_TOPIC_COUNT
};

struct app {
    const struct config *config;
    char base_url[1024];
    struct url_policy url_policy;
    char own_host[256];

    struct cache *cache;
    struct shardmap *pending; /* code -> struct lookup leading a store read */
    struct shardmap *limits;  /* code -> struct visit_limit, for links with max_visits */
    struct workpool *workers;
    struct writer *writer;
    struct codegen codegen;
    struct server *server;
    struct keys *keys;
    struct visits *visits;
    struct broker *broker;
    struct metrics *metrics;

    struct ratelimit *anonymous_limit; /* creates without a key, per client address */
    struct ratelimit *key_limit;       /* requests with a non-admin key, per key */
    struct ratelimit *redirect_limit;  /* redirects per client address, NULL when off */

    bool has_admin_key;
    uint8_t admin_key_hash[APP_KEY_HASH_BYTES]; /* BLAKE2b of the admin key */
};

/* Who sent a request. */
enum auth_kind {
    AUTH_ANONYMOUS,
    AUTH_ADMIN,
    AUTH_KEY,
};

struct auth {
    enum auth_kind kind;
    struct key_info key; /* AUTH_KEY only */
};

/* Returns the owner id a request's links get: the key's id, or 0. */
static inline int64_t auth_owner(const struct auth *auth)
{
    return auth->kind == AUTH_KEY ? auth->key.id : 0;
}

/* Returns whether auth may read, delete or watch a link of owner. */
static inline bool auth_may_manage(const struct auth *auth, int64_t owner)
{
    return auth->kind == AUTH_ADMIN || (auth->kind == AUTH_KEY && auth->key.id == owner);
}

/* The server's handler: routes one request. */
void app_handle_request(void *context, struct http_conn *conn, const struct http_request *req,
                        char *body, size_t body_len);

/* The server's response callback: counts the response in app->metrics. */
void app_count_response(void *context, unsigned thread, unsigned tag, int status,
                        uint64_t duration_ns);

/* The writer's commit callback: counts the transaction in app->metrics. */
void app_count_commit(void *context, size_t ops, uint64_t duration_ns, int err);

/* The server's error callback: logs with a rate limit. */
void app_report_server_error(void *context, const char *operation, int err);

/* Opens a store connection for a worker thread (workpool init). */
int app_worker_init(void *context, unsigned index, void **thread_state);

/* Closes a worker's store connection (workpool fini). */
void app_worker_fini(void *context, void *thread_state);

/* Returns the wall-clock time in ms. */
int64_t app_wall_ms(void);

/* ---- responses, routes.c ---- */

/* Responds with a JSON error object. message is one sentence. */
void app_send_error(struct http_conn *conn, int status, const char *code, const char *message);

/*
 * Responds with a JSON body (NUL-terminated text), or with 503 overloaded
 * when body is NULL because building it ran out of memory.
 */
void app_send_json(struct http_conn *conn, int status, const char *body, size_t len);

/* Responds with 503 and Retry-After for a store, queue or memory failure. */
void app_send_unavailable(struct http_conn *conn, int err);

/* Responds with 401 missing_key and WWW-Authenticate: Bearer. */
void app_send_unauthorized(struct http_conn *conn, const char *message);

/*
 * Finds query parameter name in req and writes its percent-decoded value
 * (NUL-terminated) into value. Returns 1 when found, 0 when absent, -1 when
 * the value is malformed or longer than value_cap - 1.
 */
int app_query_param(const struct http_request *req, const char *name, char *value,
                    size_t value_cap, size_t *len);

/* Adds the RateLimit-* headers of a rate limit decision. */
void app_add_rate_headers(struct http_conn *conn, const struct ratelimit_result *result);

/* Responds with 429, Retry-After and the RateLimit-* headers. */
void app_send_rate_limited(struct http_conn *conn, const struct ratelimit_result *result);

/*
 * Reads the Authorization header. Returns 0 with auth filled (anonymous
 * when there is no header), or responds with 401 (malformed) or 403 (unknown or
 * revoked key) and returns -EACCES.
 */
int app_authenticate(struct app *app, struct http_conn *conn, const struct http_request *req,
                     struct auth *auth);

/* ---- redirect.c ---- */

/* GET or HEAD /{code}: the redirect. */
void app_redirect(struct app *app, struct http_conn *conn, const struct http_request *req,
                  const char *code, size_t code_len);

/* ---- lookup.c ---- */

/*
 * Responds to a redirect from a link record (the cache's, or one just read from
 * the store): expiry, visit limit, counting and the response. May defer
 * when the visit limit state of the link must be loaded.
 */
void app_answer_redirect(struct app *app, struct http_conn *conn, const struct link_record *record,
                         const char *code, size_t code_len, const char *referrer,
                         size_t referrer_len);

/* Starts a store read for a redirect whose code is not cached. */
void app_redirect_miss(struct app *app, struct http_conn *conn, const char *code, size_t code_len,
                       const char *referrer, size_t referrer_len);

/* GET or HEAD /api/v1/links/{code}. */
void app_read_link(struct app *app, struct http_conn *conn, const struct auth *auth,
                   const char *code, size_t code_len);

/* GET /api/v1/links/{code}/stats?from=&to=. */
void app_link_stats(struct app *app, struct http_conn *conn, const struct auth *auth,
                    const struct http_request *req, const char *code, size_t code_len);

/* GET /api/v1/links?limit=&cursor=. */
void app_list_links(struct app *app, struct http_conn *conn, const struct auth *auth,
                    const struct http_request *req);

/* GET /api/v1/keys. */
void app_list_keys(struct app *app, struct http_conn *conn);

/* Builds the JSON object of a key, without its secret (a new reference). */
struct json_t *app_key_to_object(const struct store_key *key);

/* GET or HEAD /readyz. */
void app_ready(struct app *app, struct http_conn *conn);

/* ---- create.c ---- */

/* POST /api/v1/links. */
void app_create_link(struct app *app, struct http_conn *conn, const struct auth *auth,
                     const struct http_request *req, const char *body, size_t body_len);

/* DELETE /api/v1/links/{code}. */
void app_delete_link(struct app *app, struct http_conn *conn, const struct auth *auth,
                     const char *code, size_t code_len);

/* POST /api/v1/keys. */
void app_create_key(struct app *app, struct http_conn *conn, const struct http_request *req,
                    const char *body, size_t body_len);

/* DELETE /api/v1/keys/{id}. */
void app_revoke_key(struct app *app, struct http_conn *conn, int64_t id);

/* ---- events.c ---- */

/* GET /api/v1/events?topics=. */
void app_events(struct app *app, struct http_conn *conn, const struct auth *auth,
                const struct http_request *req);

/*
 * Builds and publishes an event (JSON with a version field). type is
 * "link.created", "link.deleted", "link.expired" or "visit". Does nothing
 * when no stream wants the topic. Any thread.
 */
void app_publish_link_event(struct app *app, const char *type, const struct store_link *link);
void app_publish_visit(struct app *app, const char *code, size_t code_len, int64_t owner,
                       const char *referrer, size_t referrer_len);

/* ---- lifecycle.c ---- */

/* The writer's applied callback: cache, key registry and events. */
void app_write_applied(void *context, const struct write_op *op);

/* The writer's tick: visit flush, expiry sweep, idle rate-limit buckets. */
void app_write_tick(void *context, struct store *store, bool final);

#endif
