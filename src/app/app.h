/*
 * The daemon's shared state and the request handlers built on it.
 *
 * main.c creates one struct app, starts the components it points to, and
 * hands app_handle_request to the server. After start the struct is only
 * read, so I/O threads, workers and the writer share it without a lock; the
 * components it points to do their own locking.
 *
 * Request paths:
 *   routes.c   picks the handler from method and path; authentication;
 *              JSON error answers.
 *   lookup.c   GET /{code} from the cache, and everything that reads the
 *              store on the worker pool: cache misses (coalesced per code),
 *              GET /api/v1/links/{code} and /readyz.
 *   create.c   POST and DELETE on links, through the writer.
 */
#ifndef SHORTD_APP_APP_H
#define SHORTD_APP_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/config.h"
#include "app/url.h"
#include "core/cache.h"
#include "core/codegen.h"
#include "core/shardmap.h"
#include "core/workpool.h"
#include "net/server.h"

struct writer;

#define APP_KEY_HASH_BYTES 32

struct app {
    const struct config *config;
    char base_url[1024];
    struct url_policy url_policy;
    char own_host[256];

    struct cache *cache;
    struct shardmap *pending; /* code -> struct lookup leading a store read */
    struct workpool *workers;
    struct writer *writer;
    struct codegen codegen;
    struct server *server;

    bool has_admin_key;
    uint8_t admin_key_hash[APP_KEY_HASH_BYTES]; /* BLAKE2b of the admin key */
};

/* The server's handler: routes one request. */
void app_handle_request(void *context, struct http_conn *conn, const struct http_request *req,
                        char *body, size_t body_len);

/* The server's error callback: logs with a rate limit. */
void app_report_server_error(void *context, const char *operation, int err);

/* Opens a store connection for a worker thread (workpool init). */
int app_worker_init(void *context, unsigned index, void **thread_state);

/* Closes a worker's store connection (workpool fini). */
void app_worker_fini(void *context, void *thread_state);

/* ---- answers, routes.c ---- */

/* Answers with a JSON error object. message is one sentence. */
void app_send_error(struct http_conn *conn, int status, const char *code, const char *message);

/* Answers with a JSON body (NUL-terminated text), or 500 when body is NULL. */
void app_send_json(struct http_conn *conn, int status, const char *body, size_t len);

/* Answers 503 with Retry-After for a store or queue failure. */
void app_send_unavailable(struct http_conn *conn, int err);

/*
 * Checks "Authorization: Bearer <key>" against the admin key. Returns 0
 * when it matches; otherwise answers 401 (no key) or 403 (wrong key) and
 * returns -EACCES.
 */
int app_require_admin(struct app *app, struct http_conn *conn, const struct http_request *req);

/* ---- lookup.c ---- */

/* GET or HEAD /{code}: the redirect. */
void app_redirect(struct app *app, struct http_conn *conn, const char *code, size_t code_len);

/* GET or HEAD /api/v1/links/{code}. */
void app_read_link(struct app *app, struct http_conn *conn, const char *code, size_t code_len);

/* GET or HEAD /readyz. */
void app_ready(struct app *app, struct http_conn *conn);

/* ---- create.c ---- */

/* POST /api/v1/links. */
void app_create_link(struct app *app, struct http_conn *conn, const struct http_request *req,
                     const char *body, size_t body_len);

/* DELETE /api/v1/links/{code}. */
void app_delete_link(struct app *app, struct http_conn *conn, const char *code, size_t code_len);

#endif
