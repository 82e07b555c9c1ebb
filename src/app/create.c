/*
 * Writes: POST /api/v1/links and DELETE /api/v1/links/{code}.
 *
 * The I/O thread validates the request completely (framing, type, JSON,
 * URL, key) before anything is queued, so a rejected request changes
 * nothing. A valid one becomes a write_job queued on the writer; the answer
 * is deferred until the writer's transaction is durable (201 or 204) or has
 * failed (503).
 *
 * Job life: allocated by the I/O thread -> owned by the writer while queued
 * and committing -> posted back to the connection's loop by done(), where
 * the answer is written and the job freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/app.h"
#include "app/links.h"
#include "app/log.h"
#include "app/writer.h"
#include "core/container_of.h"

struct write_job {
    struct write_op op;
    struct loop_task task;
    struct app *app;
    struct http_conn *conn;
    char *url; /* owned: the normalised URL of a create */
};

static void free_job(struct write_job *job)
{
    free(job->url);
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
    char location[STORE_CODE_MAX + 32];
    size_t len = 0;
    char *body;

    if (!http_conn_is_open(job->conn)) {
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
        /* The link is stored; only the answer could not be built. */
        app_send_error(job->conn, 500, "internal_error",
                       "The link was created but the answer could not be built.");
        free_job(job);
        return;
    }

    snprintf(location, sizeof(location), "/api/v1/links/%s", job->op.link.code);
    http_conn_begin(job->conn, 201);
    http_conn_header(job->conn, "Location", location, strlen(location));
    http_conn_header(job->conn, "Cache-Control", "no-store", 8);
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
    /* The answer runs on this loop, after this handler returns. */
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

void app_create_link(struct app *app, struct http_conn *conn, const struct http_request *req,
                     const char *body, size_t body_len)
{
    struct link_create_request request;
    struct link_error err;
    struct write_job *job;
    int rc;

    if (http_find_header(req, "Authorization", 13) != NULL &&
        app_require_admin(app, conn, req) < 0)
        return;

    if (req->content_length < 0 && !req->chunked) {
        app_send_error(conn, 411, "length_required",
                       "A create request needs a body with Content-Length or chunked encoding.");
        return;
    }
    if (!is_json(req)) {
        app_send_error(conn, 415, "unsupported_media_type",
                       "The body must be JSON, sent with Content-Type: application/json.");
        return;
    }

    rc = link_parse_create(body, body_len, &app->url_policy, &request, &err);
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
    job->op.kind = WRITE_CREATE;
    job->op.url = request.url;
    job->op.url_len = request.url_len;
    job->op.redirect_status =
        request.redirect_status != 0 ? request.redirect_status : app->config->redirect_status;
    submit(app, conn, job);
}

void app_delete_link(struct app *app, struct http_conn *conn, const char *code, size_t code_len)
{
    struct write_job *job;

    job = new_job(app, conn, delete_answer);
    if (job == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    job->op.kind = WRITE_DELETE;
    memcpy(job->op.code, code, code_len);
    job->op.code[code_len] = '\0';
    job->op.code_len = code_len;
    submit(app, conn, job);
}
