/*
 * Request routing, authentication, rate limits and the JSON responses shared
 * by handlers.
 *
 *   GET|HEAD  /{code}                       redirect            redirect.c
 *   GET|HEAD  /healthz                      liveness            here
 *   GET|HEAD  /readyz                       readiness           lookup.c
 *   POST      /api/v1/links                 create              create.c
 *   GET|HEAD  /api/v1/links                 list (a key)        lookup.c
 *   GET|HEAD  /api/v1/links/{code}          read                lookup.c
 *   DELETE    /api/v1/links/{code}          delete (owner)      create.c
 *   GET|HEAD  /api/v1/links/{code}/stats    statistics          lookup.c
 *   POST      /api/v1/keys                  create key (admin)  create.c
 *   GET|HEAD  /api/v1/keys                  list keys (admin)   lookup.c
 *   DELETE    /api/v1/keys/{id}             revoke key (admin)  create.c
 *   GET       /api/v1/events                event stream (key)  events.c
 *
 * The redirect is checked first and costs one pass over the path: a path of
 * one segment made of code characters that is not a reserved word. Every
 * /api/ request with a non-admin key takes a token from that key's bucket;
 * the admin key is never limited.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app/app.h"
#include "app/links.h"
#include "app/log.h"
#include "net/loop.h"

#define API_PREFIX       "/api/v1/"
#define API_PREFIX_LEN   (sizeof(API_PREFIX) - 1)
#define JSON_TYPE        "application/json; charset=utf-8"

static const char fallback_error[] =
    "{\"error\":{\"code\":\"internal_error\",\"message\":\"The server ran out of memory.\"}}";

int64_t app_wall_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void app_send_json(struct http_conn *conn, int status, const char *body, size_t len)
{
    if (body == NULL) {
        /* Building the body ran out of memory: a retry may well succeed. */
        app_send_unavailable(conn, -ENOMEM);
        return;
    }

    http_conn_begin(conn, status);
    http_conn_header(conn, "Cache-Control", "no-store", 8);
    http_conn_end(conn, JSON_TYPE, body, len);
}

/* Finishes a response begun by the caller with a JSON error body. */
static void end_error(struct http_conn *conn, const char *code, const char *message)
{
    size_t len = 0;
    char *body = link_error_json(code, message, &len);

    http_conn_header(conn, "Cache-Control", "no-store", 8);
    http_conn_end(conn, JSON_TYPE, body != NULL ? body : fallback_error,
                  body != NULL ? len : sizeof(fallback_error) - 1);
    free(body);
}

void app_send_error(struct http_conn *conn, int status, const char *code, const char *message)
{
    http_conn_begin(conn, status);
    end_error(conn, code, message);
}

void app_send_unavailable(struct http_conn *conn, int err)
{
    char message[200];

    switch (err) {
    case -EAGAIN:
        snprintf(message, sizeof(message), "The server is overloaded; retry in a second.");
        break;
    case -ENOMEM:
        snprintf(message, sizeof(message), "The server ran out of memory; retry in a second.");
        break;
    case -ENOSPC:
        snprintf(message, sizeof(message),
                 "The store is full and cannot accept writes; retry later.");
        break;
    case -EROFS:
    case -EACCES:
        snprintf(message, sizeof(message), "The store cannot be written; retry later.");
        break;
    case -EILSEQ:
        snprintf(message, sizeof(message), "The store holds data this server cannot read.");
        break;
    case -ERANGE:
        snprintf(message, sizeof(message),
                 "Every code of the configured length is used; the server needs a longer "
                 "--code-length.");
        break;
    case -ESHUTDOWN:
        snprintf(message, sizeof(message), "The server is shutting down; retry on another one.");
        break;
    default:
        snprintf(message, sizeof(message), "The store failed (%s); retry later.", strerror(-err));
        break;
    }

    http_conn_begin(conn, 503);
    http_conn_header(conn, "Retry-After", "1", 1);
    end_error(conn, err == -EAGAIN || err == -ENOMEM ? "overloaded" : "store_unavailable", message);
}

void app_add_rate_headers(struct http_conn *conn, const struct ratelimit_result *result)
{
    http_conn_headerf(conn, "RateLimit-Limit", "%u", (unsigned)result->limit);
    http_conn_headerf(conn, "RateLimit-Remaining", "%u", (unsigned)result->remaining);
    http_conn_headerf(conn, "RateLimit-Reset", "%u", (unsigned)result->reset_s);
}

void app_send_rate_limited(struct http_conn *conn, const struct ratelimit_result *result)
{
    char message[128];
    unsigned retry = result->retry_after_s > 0 ? (unsigned)result->retry_after_s : 1;

    snprintf(message, sizeof(message), "Too many requests; retry in %u seconds.", retry);
    http_conn_begin(conn, 429);
    http_conn_headerf(conn, "Retry-After", "%u", retry);
    app_add_rate_headers(conn, result);
    end_error(conn, "rate_limited", message);
}

static void send_method_not_allowed(struct http_conn *conn, const char *allow)
{
    char message[128];

    snprintf(message, sizeof(message), "This path accepts only %s.", allow);
    http_conn_begin(conn, 405);
    http_conn_header(conn, "Allow", allow, strlen(allow));
    end_error(conn, "method_not_allowed", message);
}

int app_authenticate(struct app *app, struct http_conn *conn, const struct http_request *req,
                     struct auth *auth)
{
    const struct http_header *header = http_find_header(req, "Authorization", 13);
    uint8_t hash[APP_KEY_HASH_BYTES];
    const char *key;
    size_t key_len;

    auth->kind = AUTH_ANONYMOUS;
    if (header == NULL)
        return 0;

    /* Two keys could mean two things to a proxy and to shortd: reject. */
    if (header != http_find_last_header(req, "Authorization", 13)) {
        app_send_error(conn, 400, "duplicate_authorization",
                       "The request has more than one Authorization header.");
        return -EACCES;
    }

    if (header->value_len < 7 || strncasecmp(header->value, "Bearer ", 7) != 0) {
        http_conn_begin(conn, 401);
        http_conn_header(conn, "WWW-Authenticate", "Bearer", 6);
        end_error(conn, "invalid_authorization",
                  "The Authorization header must be \"Bearer\" followed by a key.");
        return -EACCES;
    }
    key = header->value + 7;
    key_len = header->value_len - 7;
    while (key_len > 0 && *key == ' ') {
        key++;
        key_len--;
    }

    /* Hashing first makes the comparison independent of the key's length. */
    (void)crypto_generichash(hash, sizeof(hash), (const unsigned char *)key, key_len, NULL, 0);
    if (app->has_admin_key && sodium_memcmp(hash, app->admin_key_hash, sizeof(hash)) == 0) {
        auth->kind = AUTH_ADMIN;
        return 0;
    }

    if (keys_lookup(app->keys, key, key_len, &auth->key) == 0) {
        if (auth->key.revoked) {
            app_send_error(conn, 403, "key_revoked", "The key was revoked.");
            return -EACCES;
        }
        auth->kind = AUTH_KEY;
        return 0;
    }

    app_send_error(conn, 403, "invalid_key", "The key is not valid.");
    return -EACCES;
}

void app_send_unauthorized(struct http_conn *conn, const char *message)
{
    http_conn_begin(conn, 401);
    http_conn_header(conn, "WWW-Authenticate", "Bearer", 6);
    end_error(conn, "missing_key", message);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int app_query_param(const struct http_request *req, const char *name, char *value,
                    size_t value_cap, size_t *len)
{
    size_t name_len = strlen(name), pos = 0, end, i, out;
    const char *query = req->query;

    if (query == NULL)
        return 0;

    while (pos <= req->query_len) {
        end = pos;
        while (end < req->query_len && query[end] != '&')
            end++;
        if (end - pos > name_len && memcmp(query + pos, name, name_len) == 0 &&
            query[pos + name_len] == '=') {
            out = 0;
            for (i = pos + name_len + 1; i < end; i++) {
                int high, low;
                char c = query[i];

                if (c == '%') {
                    if (i + 2 >= end)
                        return -1;
                    high = hex_value(query[i + 1]);
                    low = hex_value(query[i + 2]);
                    if (high < 0 || low < 0)
                        return -1;
                    c = (char)(high * 16 + low);
                    i += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (out + 1 >= value_cap || c == '\0')
                    return -1;
                value[out++] = c;
            }
            value[out] = '\0';
            *len = out;
            return 1;
        }
        pos = end + 1;
    }
    return 0;
}

/* Responds with 401 or 403 unless the request carries the admin key. */
static bool require_admin(struct http_conn *conn, const struct auth *auth)
{
    if (auth->kind == AUTH_ADMIN)
        return true;
    if (auth->kind == AUTH_ANONYMOUS) {
        app_send_unauthorized(conn,
                              "This request needs the admin key as \"Authorization: Bearer KEY\".");
    } else {
        app_send_error(conn, 403, "admin_only", "This request needs the admin key.");
    }
    return false;
}

/* Takes a token from the bucket of a non-admin key. Responds with 429 when
 * the bucket is empty. */
static bool key_allowed(struct app *app, struct http_conn *conn, const struct auth *auth)
{
    struct ratelimit_limit limit;
    struct ratelimit_result result;

    if (auth->kind != AUTH_KEY)
        return true;

    limit.burst = auth->key.burst != 0 ? auth->key.burst : app->config->key_burst;
    limit.refill_tokens = auth->key.rate != 0 ? auth->key.rate : app->config->key_rate;
    limit.refill_period_ms = 1000000; /* rates are in thousandths per second */
    if (ratelimit_take(app->key_limit, &auth->key.id, sizeof(auth->key.id), &limit,
                       loop_now(http_conn_loop(conn)), &result) == -EAGAIN) {
        app_send_rate_limited(conn, &result);
        return false;
    }
    return true;
}

static void send_health(struct http_conn *conn)
{
    static const char body[] = "{\"status\":\"ok\"}";

    app_send_json(conn, 200, body, sizeof(body) - 1);
}

static void send_metrics(struct app *app, struct http_conn *conn)
{
    size_t len = 0;
    char *text = metrics_render(app->metrics, app, &len);

    if (text == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    http_conn_begin(conn, 200);
    http_conn_header(conn, "Cache-Control", "no-store", 8);
    http_conn_end(conn, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

void app_count_response(void *context, unsigned thread, unsigned tag, int status,
                        uint64_t duration_ns)
{
    struct app *app = context;

    metrics_response(app->metrics, thread, tag, status, duration_ns);
}

static void send_not_found(struct http_conn *conn, const struct http_request *req)
{
    char message[160];

    snprintf(message, sizeof(message), "Nothing is served at %.*s.",
             req->path_len > 100 ? 100 : (int)req->path_len, req->path);
    app_send_error(conn, 404, "not_found", message);
}

static bool is_read(enum http_method method)
{
    return method == HTTP_METHOD_GET || method == HTTP_METHOD_HEAD;
}

/* Returns whether segment (of len bytes) equals the literal. */
static bool segment_is(const char *segment, size_t len, const char *literal)
{
    return strlen(literal) == len && memcmp(segment, literal, len) == 0;
}

/* Routes /api/v1/links and below; rest is the path after "links". */
static void route_links(struct app *app, struct http_conn *conn, const struct http_request *req,
                        const struct auth *auth, const char *rest, size_t rest_len, char *body,
                        size_t body_len)
{
    const char *code, *slash;
    size_t code_len;

    if (rest_len == 0 || (rest_len == 1 && rest[0] == '/')) {
        if (req->method == HTTP_METHOD_POST) {
            http_conn_set_tag(conn, ROUTE_LINK_CREATE);
            app_create_link(app, conn, auth, req, body, body_len);
        } else if (is_read(req->method)) {
            http_conn_set_tag(conn, ROUTE_LINK_LIST);
            app_list_links(app, conn, auth, req);
        } else {
            send_method_not_allowed(conn, "GET, HEAD, POST");
        }
        return;
    }
    if (rest[0] != '/') {
        send_not_found(conn, req);
        return;
    }

    code = rest + 1;
    slash = memchr(code, '/', rest_len - 1);
    code_len = slash != NULL ? (size_t)(slash - code) : rest_len - 1;
    if (!link_code_valid(code, code_len)) {
        send_not_found(conn, req);
        return;
    }

    if (slash != NULL) {
        if (!segment_is(slash, rest_len - 1 - code_len, "/stats")) {
            send_not_found(conn, req);
            return;
        }
        http_conn_set_tag(conn, ROUTE_LINK_STATS);
        if (is_read(req->method))
            app_link_stats(app, conn, auth, req, code, code_len);
        else
            send_method_not_allowed(conn, "GET, HEAD");
        return;
    }

    if (is_read(req->method)) {
        http_conn_set_tag(conn, ROUTE_LINK_READ);
        app_read_link(app, conn, auth, code, code_len);
    } else if (req->method == HTTP_METHOD_DELETE) {
        http_conn_set_tag(conn, ROUTE_LINK_DELETE);
        app_delete_link(app, conn, auth, code, code_len);
    } else {
        send_method_not_allowed(conn, "GET, HEAD, DELETE");
    }
}

/* Routes /api/v1/keys and below; rest is the path after "keys". */
static void route_keys(struct app *app, struct http_conn *conn, const struct http_request *req,
                       const struct auth *auth, const char *rest, size_t rest_len, char *body,
                       size_t body_len)
{
    int64_t id = 0;
    size_t i;

    http_conn_set_tag(conn, ROUTE_KEYS);
    if (rest_len == 0 || (rest_len == 1 && rest[0] == '/')) {
        if (req->method != HTTP_METHOD_POST && !is_read(req->method)) {
            send_method_not_allowed(conn, "GET, HEAD, POST");
            return;
        }
        if (!require_admin(conn, auth))
            return;
        if (req->method == HTTP_METHOD_POST)
            app_create_key(app, conn, req, body, body_len);
        else
            app_list_keys(app, conn);
        return;
    }

    if (rest[0] != '/' || rest_len < 2 || rest_len > 19) {
        send_not_found(conn, req);
        return;
    }
    for (i = 1; i < rest_len; i++) {
        if (rest[i] < '0' || rest[i] > '9') {
            send_not_found(conn, req);
            return;
        }
        id = id * 10 + (rest[i] - '0');
    }
    if (req->method != HTTP_METHOD_DELETE) {
        send_method_not_allowed(conn, "DELETE");
        return;
    }
    if (require_admin(conn, auth))
        app_revoke_key(app, conn, id);
}

static void route_api(struct app *app, struct http_conn *conn, const struct http_request *req,
                      const char *rest, size_t rest_len, char *body, size_t body_len)
{
    struct auth auth;

    if (app_authenticate(app, conn, req, &auth) < 0 || !key_allowed(app, conn, &auth))
        return;

    if (rest_len >= 5 && memcmp(rest, "links", 5) == 0) {
        route_links(app, conn, req, &auth, rest + 5, rest_len - 5, body, body_len);
    } else if (rest_len >= 4 && memcmp(rest, "keys", 4) == 0) {
        route_keys(app, conn, req, &auth, rest + 4, rest_len - 4, body, body_len);
    } else if (segment_is(rest, rest_len, "events")) {
        http_conn_set_tag(conn, ROUTE_EVENTS);
        if (req->method == HTTP_METHOD_GET)
            app_events(app, conn, &auth, req);
        else
            send_method_not_allowed(conn, "GET");
    } else {
        send_not_found(conn, req);
    }
}

void app_handle_request(void *context, struct http_conn *conn, const struct http_request *req,
                        char *body, size_t body_len)
{
    struct app *app = context;
    const char *path = req->path;
    size_t len = req->path_len;

    /* The hot path: one segment that is a code. */
    if (len > 1 && link_code_valid(path + 1, len - 1)) {
        if (!link_code_reserved(path + 1, len - 1)) {
            http_conn_set_tag(conn, ROUTE_REDIRECT);
            if (is_read(req->method))
                app_redirect(app, conn, req, path + 1, len - 1);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }

        if (len == 8 && memcmp(path, "/healthz", 8) == 0) {
            http_conn_set_tag(conn, ROUTE_HEALTH);
            if (is_read(req->method))
                send_health(conn);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }
        if (len == 7 && memcmp(path, "/readyz", 7) == 0) {
            http_conn_set_tag(conn, ROUTE_READY);
            if (is_read(req->method))
                app_ready(app, conn);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }
        if (len == 8 && memcmp(path, "/metrics", 8) == 0) {
            http_conn_set_tag(conn, ROUTE_METRICS);
            if (is_read(req->method))
                send_metrics(app, conn);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }
    }

    if (len > API_PREFIX_LEN && memcmp(path, API_PREFIX, API_PREFIX_LEN) == 0) {
        route_api(app, conn, req, path + API_PREFIX_LEN, len - API_PREFIX_LEN, body, body_len);
        return;
    }

    send_not_found(conn, req);
}

void app_report_server_error(void *context, const char *operation, int err)
{
    static struct log_limit limit = {.interval_ms = 1000};
    uint64_t suppressed = 0;

    if (!log_limit_allow(&limit, loop_clock_ms(), &suppressed))
        return;
    if (suppressed > 0)
        log_error("server", "%s failed: %s (%llu similar errors suppressed)", operation,
                  strerror(-err), (unsigned long long)suppressed);
    else
        log_error("server", "%s failed: %s", operation, strerror(-err));
}
