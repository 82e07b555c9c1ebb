/*
 * Writes through the writer: creating and deleting links, creating and
 * revoking API keys.
 *
 * The I/O thread validates a request completely (framing, type, JSON,
 * fields, URL, key, rate limit) before anything is queued, so a rejected
 * request changes nothing. A valid one becomes a write_job queued on the
 * writer; the response is deferred until the writer's transaction is durable
 * (201, 200 or 204) or has failed (503).
 *
 * A delete first reads the link on the worker pool: the key that asks must
 * own it, and the writer's applied callback needs the owner for the event.
 * The worker then queues the write itself.
 *
 * Job life: allocated by the I/O thread -> owned by the worker or the writer
 * while queued and running -> posted back to the connection's loop by
 * done(), where the response is written and the job freed.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "app/links.h"
#include "app/log.h"
#include "app/writer.h"
#include "core/container_of.h"
#include "net/loop.h"

struct write_job {
    struct write_op op;
    struct loop_task task;
    struct app *app;
    struct http_conn *conn;
    struct auth auth;
    char *url; /* owned: the normalised URL of a create */
    char secret[KEYS_SECRET_SIZE]; /* a key create's secret, shown once */
    bool rate_limited;             /* an anonymous create: send RateLimit headers */
    struct ratelimit_result rate;
    int early_status; /* set by the delete's read when it responds itself */
    char *early_body;
    size_t early_body_len;
};

static void free_job(struct write_job *job)
{
    free(job->url);
    free(job->early_body);
    sodium_memzero(job->secret, sizeof(job->secret));
    free(job);
}

/* Writer thread: hand the outcome to the connection's loop. */
static void write_done(struct write_op *op)
{
    struct write_job *job = container_of(op, struct write_job, op);

    http_conn_post(job->conn, &job->task);
}

static void create_answer(struct loop *loop, struct loop_task *task)
{
    struct write_job *job = container_of(task, struct write_job, task);
    char location[STORE_CODE_MAX + 32], message[160];
    size_t len = 0;
    char *body;
    int status = job->op.result == STORE_DEDUPED ? 200 : 201;

    if (!http_conn_is_open(job->conn)) {
        free_job(job);
        return;
    }

    if (job->op.result == -EEXIST) {
        snprintf(message, sizeof(message), "The alias %s is already taken.", job->op.code);
        app_send_error(job->conn, 409, "alias_taken", message);
        free_job(job);
        return;
    }
    if (job->op.result < 0) {
        log_error("store", "create of a link failed: %s", strerror(-job->op.result));
        app_send_unavailable(job->conn, job->op.result);
        free_job(job);
        return;
    }

    body = link_to_json(&job->op.link, job->app->base_url, &len);
    if (body == NULL) {
        /*
         * The link is stored; only the response could not be built. A
         * retry finds it: a plain create is deduplicated, an alias gets 409.
         */
        app_send_unavailable(job->conn, -ENOMEM);
        free_job(job);
        return;
    }

    snprintf(location, sizeof(location), "/api/v1/links/%s", job->op.link.code);
    http_conn_begin(job->conn, status);
    http_conn_header(job->conn, "Location", location, strlen(location));
    http_conn_header(job->conn, "Cache-Control", "no-store", 8);
    if (job->rate_limited)
        app_add_rate_headers(job->conn, &job->rate);
    http_conn_end(job->conn, "application/json; charset=utf-8", body, len);
    free(body);
    free_job(job);
}

static void delete_answer(struct loop *loop, struct loop_task *task)
{
    struct write_job *job = container_of(task, struct write_job, task);
    char message[160];

    if (!http_conn_is_open(job->conn)) {
        free_job(job);
        return;
    }

    if (job->early_status != 0) {
        app_send_json(job->conn, job->early_status, job->early_body, job->early_body_len);
        free_job(job);
        return;
    }

    switch (job->op.result) {
    case 0:
        http_conn_begin(job->conn, 204);
        http_conn_end(job->conn, NULL, NULL, 0);
        break;
    case -ENOENT:
        snprintf(message, sizeof(message), "No link has the code %s.", job->op.code);
        app_send_error(job->conn, 404, "not_found", message);
        break;
    case -EALREADY:
        snprintf(message, sizeof(message), "The link %s was already deleted.", job->op.code);
        app_send_error(job->conn, 410, "link_gone", message);
        break;
    default:
        log_error("store", "delete of link %s failed: %s", job->op.code,
                  strerror(-job->op.result));
        app_send_unavailable(job->conn, job->op.result);
        break;
    }
    free_job(job);
}

static struct write_job *new_job(struct app *app, struct http_conn *conn, loop_task_fn answer)
{
    struct write_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return NULL;
    job->app = app;
    job->conn = conn;
    job->task.callback = answer;
    job->op.done = write_done;
    return job;
}

static void submit(struct app *app, struct http_conn *conn, struct write_job *job)
{
    int rc = writer_submit(app->writer, &job->op);

    if (rc < 0) {
        free_job(job);
        app_send_unavailable(conn, rc);
        return;
    }
    /* The response is written on this loop, after this handler returns. */
    http_conn_defer(conn);
}

/* Returns whether the Content-Type is application/json, parameters allowed. */
static bool is_json(const struct http_request *req)
{
    const struct http_header *type = http_find_header(req, "Content-Type", 12);
    const char *semicolon;
    size_t len;

    if (type == NULL)
        return false;

    /* Header values are not NUL-terminated. */
    semicolon = memchr(type->value, ';', type->value_len);
    len = semicolon != NULL ? (size_t)(semicolon - type->value) : type->value_len;
    while (len > 0 && (type->value[len - 1] == ' ' || type->value[len - 1] == '\t'))
        len--;
    return len == 16 && strncasecmp(type->value, "application/json", 16) == 0;
}

/* Checks the framing and type of a JSON body. Responds with the error and
 * returns false when they are wrong. */
static bool json_body_ok(struct http_conn *conn, const struct http_request *req)
{
    if (req->content_length < 0 && !req->chunked) {
        app_send_error(conn, 411, "length_required",
                       "The request needs a body with Content-Length or chunked encoding.");
        return false;
    }
    if (!is_json(req)) {
        app_send_error(conn, 415, "unsupported_media_type",
                       "The body must be JSON, sent with Content-Type: application/json.");
        return false;
    }
    return true;
}

/* Takes a token for an anonymous create. Responds with 429 when the
 * client's bucket is empty. */
static bool anonymous_allowed(struct app *app, struct http_conn *conn,
                              const struct http_request *req, struct ratelimit_result *result)
{
    struct client_address peer, client;
    uint8_t key[16];
    size_t key_len;

    if (client_from_sockaddr(http_conn_peer(conn), &peer) < 0)
        return true;
    client_resolve(&app->config->trusted_proxies, &peer, req, &client);
    key_len = client_limit_key(&client, key);
    if (ratelimit_take(app->anonymous_limit, key, key_len, NULL, loop_now(http_conn_loop(conn)),
                       result) == -EAGAIN) {
        app_send_rate_limited(conn, result);
        return false;
    }
    return true;
}

void app_create_link(struct app *app, struct http_conn *conn, const struct auth *auth,
                     const struct http_request *req, const char *body, size_t body_len)
{
    struct link_create_request request;
    struct ratelimit_result rate;
    struct link_error err;
    struct write_job *job;
    int rc;

    if (auth->kind == AUTH_ANONYMOUS) {
        if (!app->config->anonymous_create) {
            app_send_unauthorized(conn, "Creating links needs an API key.");
            return;
        }
        if (!anonymous_allowed(app, conn, req, &rate))
            return;
    }

    if (!json_body_ok(conn, req))
        return;

    rc = link_parse_create(body, body_len, &app->url_policy, loop_wall_ms(http_conn_loop(conn)),
                           &request, &err);
    if (rc == -ENOMEM) {
        app_send_unavailable(conn, rc);
        return;
    }
    if (rc < 0) {
        app_send_error(conn, err.status, err.code, err.message);
        return;
    }

    job = new_job(app, conn, create_answer);
    if (job == NULL) {
        free(request.url);
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    job->url = request.url;
    job->auth = *auth;
    if (auth->kind == AUTH_ANONYMOUS) {
        job->rate_limited = true;
        job->rate = rate;
    }
    job->op.kind = WRITE_CREATE;
    job->op.url = request.url;
    job->op.url_len = request.url_len;
    job->op.redirect_status =
        request.redirect_status != 0 ? request.redirect_status : app->config->redirect_status;
    job->op.expires_at = request.expires_at;
    job->op.max_visits = request.max_visits;
    job->op.cache_max_age = request.cache_max_age;
    job->op.owner_key_id = auth_owner(auth);
    memcpy(job->op.code, request.alias, request.alias_len + 1);
    job->op.code_len = request.alias_len;
    job->op.dedupe = request.alias_len == 0 && request.expires_at == 0 && request.max_visits == 0;
    submit(app, conn, job);
}

/* Worker: reads the link to delete, checks its owner, then queues the delete. */
static void delete_read_job(void *thread_state, void *arg)
{
    struct write_job *job = arg;
    struct store_link link;
    char message[160];
    int rc;

    memset(&link, 0, sizeof(link));
    rc = store_get_link(thread_state, job->op.code, job->op.code_len, &link);
    if (rc == -ENOENT) {
        snprintf(message, sizeof(message), "No link has the code %s.", job->op.code);
        job->early_status = 404;
        job->early_body = link_error_json("not_found", message, &job->early_body_len);
    } else if (rc < 0) {
        job->op.result = rc;
        log_error("store", "read of link %s failed: %s", job->op.code,
                  store_last_error(thread_state));
    } else if (!auth_may_manage(&job->auth, link.owner_key_id)) {
        job->early_status = 403;
        job->early_body = link_error_json(
            "not_owner",
            link.owner_key_id == 0 ? "Only the admin key may delete links created without a key."
                                   : "The link belongs to another key.",
            &job->early_body_len);
    } else {
        job->op.owner_key_id = link.owner_key_id;
        store_link_clear(&link);
        rc = writer_submit(job->app->writer, &job->op);
        /* Queued: the job is the writer's now, which posts the response. */
        if (rc == 0)
            return;
        job->op.result = rc;
    }
    store_link_clear(&link);
    http_conn_post(job->conn, &job->task);
}

void app_delete_link(struct app *app, struct http_conn *conn, const struct auth *auth,
                     const char *code, size_t code_len)
{
    struct write_job *job;
    int rc;

    if (auth->kind == AUTH_ANONYMOUS) {
        app_send_unauthorized(conn, "Deleting a link needs its owner's key or the admin key.");
        return;
    }

    job = new_job(app, conn, delete_answer);
    if (job == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    job->auth = *auth;
    job->op.kind = WRITE_DELETE;
    memcpy(job->op.code, code, code_len);
    job->op.code[code_len] = '\0';
    job->op.code_len = code_len;

    rc = workpool_submit(app->workers, delete_read_job, job);
    if (rc < 0) {
        free_job(job);
        app_send_unavailable(conn, rc);
        return;
    }
    http_conn_defer(conn);
}

/* ---- API keys ---- */

static void key_create_answer(struct loop *loop, struct loop_task *task)
{
    struct write_job *job = container_of(task, struct write_job, task);
    json_t *object;
    char *body;

    if (!http_conn_is_open(job->conn)) {
        free_job(job);
        return;
    }
    if (job->op.result < 0) {
        log_error("store", "create of an API key failed: %s", strerror(-job->op.result));
        app_send_unavailable(job->conn, job->op.result);
        free_job(job);
        return;
    }

    object = app_key_to_object(&job->op.key);
    if (object != NULL && json_object_set_new(object, "key", json_string(job->secret)) < 0) {
        json_decref(object);
        object = NULL;
    }
    body = link_json_dump(object);
    json_decref(object);
    if (body == NULL) {
        /*
         * The key is stored but its secret cannot be sent, which leaves it
         * unusable: it shows in the key list and can be revoked. A 201
         * without the secret would look like success.
         */
        app_send_unavailable(job->conn, -ENOMEM);
        free_job(job);
        return;
    }

    http_conn_begin(job->conn, 201);
    http_conn_header(job->conn, "Cache-Control", "no-store", 8);
    http_conn_end(job->conn, "application/json; charset=utf-8", body, strlen(body));
    free(body);
    free_job(job);
}

void app_create_key(struct app *app, struct http_conn *conn, const struct http_request *req,
                    const char *body, size_t body_len)
{
    json_error_t json_err;
    struct write_job *job;
    bool out_of_memory;
    json_t *root, *name, *rate, *burst;
    const char *key;
    json_t *value;
    double per_second = 0;

    if (!json_body_ok(conn, req))
        return;

    root = link_json_load(body, body_len, &json_err, &out_of_memory);
    if (out_of_memory) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        app_send_error(conn, 400, "invalid_json", "The request body must be a JSON object.");
        return;
    }
    json_object_foreach(root, key, value) {
        if (strcmp(key, "name") != 0 && strcmp(key, "rate") != 0 && strcmp(key, "burst") != 0) {
            json_decref(root);
            app_send_error(conn, 400, "unknown_field",
                           "A key takes the fields name, rate and burst.");
            return;
        }
    }
    name = json_object_get(root, "name");
    rate = json_object_get(root, "rate");
    burst = json_object_get(root, "burst");
    if (name != NULL && !json_is_null(name) &&
        (!json_is_string(name) || json_string_length(name) > STORE_KEY_NAME_MAX ||
         strlen(json_string_value(name)) != json_string_length(name))) {
        json_decref(root);
        app_send_error(conn, 400, "invalid_name", "name must be a string of at most 128 bytes.");
        return;
    }
    if (rate != NULL && !json_is_null(rate)) {
        per_second = json_is_number(rate) ? json_number_value(rate) : -1;
        if (!(per_second >= 0.001 && per_second <= 1000000)) {
            json_decref(root);
            app_send_error(conn, 400, "invalid_rate",
                           "rate must be requests per second from 0.001 to 1000000.");
            return;
        }
    }
    if (burst != NULL && !json_is_null(burst) &&
        (!json_is_integer(burst) || json_integer_value(burst) < 1 ||
         json_integer_value(burst) > 1000000)) {
        json_decref(root);
        app_send_error(conn, 400, "invalid_burst", "burst must be a whole number from 1 to 1000000.");
        return;
    }

    job = new_job(app, conn, key_create_answer);
    if (job == NULL) {
        json_decref(root);
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    job->op.kind = WRITE_KEY_CREATE;
    if (name != NULL && json_is_string(name))
        memcpy(job->op.key.name, json_string_value(name), json_string_length(name) + 1);
    job->op.key.rate = (uint32_t)(per_second * 1000.0 + 0.5);
    job->op.key.burst = burst != NULL && json_is_integer(burst) ? (uint32_t)json_integer_value(burst)
                                                                : 0;
    keys_generate(job->secret, job->op.key.hash);
    json_decref(root);
    submit(app, conn, job);
}

static void key_revoke_answer(struct loop *loop, struct loop_task *task)
{
    struct write_job *job = container_of(task, struct write_job, task);
    char message[96];

    if (!http_conn_is_open(job->conn)) {
        free_job(job);
        return;
    }

    switch (job->op.result) {
    case 0:
        http_conn_begin(job->conn, 204);
        http_conn_end(job->conn, NULL, NULL, 0);
        break;
    case -ENOENT:
        snprintf(message, sizeof(message), "No key has the id %lld.", (long long)job->op.key.id);
        app_send_error(job->conn, 404, "not_found", message);
        break;
    case -EALREADY:
        snprintf(message, sizeof(message), "The key %lld was already revoked.",
                 (long long)job->op.key.id);
        app_send_error(job->conn, 410, "key_revoked", message);
        break;
    default:
        log_error("store", "revoke of API key %lld failed: %s", (long long)job->op.key.id,
                  strerror(-job->op.result));
        app_send_unavailable(job->conn, job->op.result);
        break;
    }
    free_job(job);
}

void app_revoke_key(struct app *app, struct http_conn *conn, int64_t id)
{
    struct write_job *job = new_job(app, conn, key_revoke_answer);

    if (job == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    job->op.kind = WRITE_KEY_REVOKE;
    job->op.key.id = id;
    submit(app, conn, job);
}
