/*
 * Request routing, authentication and the JSON answers shared by handlers.
 *
 *   GET|HEAD  /{code}                  redirect            lookup.c
 *   GET|HEAD  /healthz                 liveness            here
 *   GET|HEAD  /readyz                  readiness           lookup.c
 *   POST      /api/v1/links            create              create.c
 *   GET|HEAD  /api/v1/links/{code}     read                lookup.c
 *   DELETE    /api/v1/links/{code}     delete (admin key)  create.c
 *
 * The redirect is checked first and costs one pass over the path: a path of
 * one segment made of code characters that is not a reserved word.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "app/links.h"
#include "app/log.h"
#include "net/loop.h"

#define LINKS_PREFIX     "/api/v1/links"
#define LINKS_PREFIX_LEN (sizeof(LINKS_PREFIX) - 1)
#define JSON_TYPE        "application/json; charset=utf-8"

static const char fallback_error[] =
    "{\"error\":{\"code\":\"internal_error\",\"message\":\"The server ran out of memory.\"}}";

void app_send_json(struct http_conn *conn, int status, const char *body, size_t len)
{
    if (body == NULL) {
        status = 500;
        body = fallback_error;
        len = sizeof(fallback_error) - 1;
    }

    http_conn_begin(conn, status);
    http_conn_header(conn, "Cache-Control", "no-store", 8);
    http_conn_end(conn, JSON_TYPE, body, len);
}

void app_send_error(struct http_conn *conn, int status, const char *code, const char *message)
{
    size_t len = 0;
    char *body = link_error_json(code, message, &len);

    app_send_json(conn, status, body, len);
    free(body);
}

void app_send_unavailable(struct http_conn *conn, int err)
{
    char message[200];
    size_t len = 0;
    char *body;

    switch (err) {
    case -EAGAIN:
        snprintf(message, sizeof(message), "The server is overloaded; retry in a second.");
        break;
    case -ENOSPC:
        snprintf(message, sizeof(message),
                 "The store is full and cannot accept writes; retry later.");
        break;
    case -ESHUTDOWN:
        snprintf(message, sizeof(message), "The server is shutting down; retry on another one.");
        break;
    default:
        snprintf(message, sizeof(message), "The store failed (%s); retry later.", strerror(-err));
        break;
    }

    body = link_error_json(err == -EAGAIN ? "overloaded" : "store_unavailable", message, &len);
    http_conn_begin(conn, body != NULL ? 503 : 500);
    http_conn_header(conn, "Retry-After", "1", 1);
    http_conn_header(conn, "Cache-Control", "no-store", 8);
    http_conn_end(conn, JSON_TYPE, body != NULL ? body : fallback_error,
                  body != NULL ? len : sizeof(fallback_error) - 1);
    free(body);
}

static void send_method_not_allowed(struct http_conn *conn, const char *allow)
{
    char message[128];
    size_t len = 0;
    char *body;

    snprintf(message, sizeof(message), "This path accepts only %s.", allow);
    body = link_error_json("method_not_allowed", message, &len);
    http_conn_begin(conn, body != NULL ? 405 : 500);
    http_conn_header(conn, "Allow", allow, strlen(allow));
    http_conn_end(conn, JSON_TYPE, body != NULL ? body : fallback_error,
                  body != NULL ? len : sizeof(fallback_error) - 1);
    free(body);
}

int app_require_admin(struct app *app, struct http_conn *conn, const struct http_request *req)
{
    const struct http_header *auth = http_find_header(req, "Authorization", 13);
    uint8_t hash[APP_KEY_HASH_BYTES];
    const char *key;
    size_t key_len;

    if (auth == NULL || auth->value_len < 7 || strncasecmp(auth->value, "Bearer ", 7) != 0) {
        http_conn_begin(conn, 401);
        http_conn_header(conn, "WWW-Authenticate", "Bearer", 6);
        {
            size_t len = 0;
            char *body = link_error_json(
                "missing_key", "This request needs the admin key as \"Authorization: Bearer KEY\".",
                &len);
            http_conn_end(conn, JSON_TYPE, body != NULL ? body : fallback_error,
                          body != NULL ? len : sizeof(fallback_error) - 1);
            free(body);
        }
        return -EACCES;
    }

    key = auth->value + 7;
    key_len = auth->value_len - 7;
    while (key_len > 0 && *key == ' ') {
        key++;
        key_len--;
    }

    /* Hashing first makes the comparison independent of the key's length. */
    (void)crypto_generichash(hash, sizeof(hash), (const unsigned char *)key, key_len, NULL, 0);
    if (!app->has_admin_key || sodium_memcmp(hash, app->admin_key_hash, sizeof(hash)) != 0) {
        app_send_error(conn, 403, "invalid_key",
                       app->has_admin_key
                           ? "The key is not allowed to do this."
                           : "No admin key is configured; set SHORTD_ADMIN_KEY to enable this.");
        return -EACCES;
    }
    return 0;
}

static void send_health(struct http_conn *conn)
{
    static const char body[] = "{\"status\":\"ok\"}";

    app_send_json(conn, 200, body, sizeof(body) - 1);
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

/* Routes /api/v1/links and below; rest is the path after the prefix. */
static void route_links(struct app *app, struct http_conn *conn, const struct http_request *req,
                        const char *rest, size_t rest_len, char *body, size_t body_len)
{
    const char *code;
    size_t code_len;

    if (rest_len == 0 || (rest_len == 1 && rest[0] == '/')) {
        if (req->method == HTTP_METHOD_POST)
            app_create_link(app, conn, req, body, body_len);
        else
            send_method_not_allowed(conn, "POST");
        return;
    }

    if (rest[0] != '/') {
        send_not_found(conn, req);
        return;
    }
    code = rest + 1;
    code_len = rest_len - 1;
    if (memchr(code, '/', code_len) != NULL || !link_code_valid(code, code_len)) {
        send_not_found(conn, req);
        return;
    }

    if (is_read(req->method))
        app_read_link(app, conn, code, code_len);
    else if (req->method == HTTP_METHOD_DELETE) {
        if (app_require_admin(app, conn, req) == 0)
            app_delete_link(app, conn, code, code_len);
    }
    else
        send_method_not_allowed(conn, "GET, HEAD, DELETE");
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
            if (is_read(req->method))
                app_redirect(app, conn, path + 1, len - 1);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }

        if (len == 8 && memcmp(path, "/healthz", 8) == 0) {
            if (is_read(req->method))
                send_health(conn);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }
        if (len == 7 && memcmp(path, "/readyz", 7) == 0) {
            if (is_read(req->method))
                app_ready(app, conn);
            else
                send_method_not_allowed(conn, "GET, HEAD");
            return;
        }
    }

    if (len >= LINKS_PREFIX_LEN && memcmp(path, LINKS_PREFIX, LINKS_PREFIX_LEN) == 0) {
        route_links(app, conn, req, path + LINKS_PREFIX_LEN, len - LINKS_PREFIX_LEN, body,
                    body_len);
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
