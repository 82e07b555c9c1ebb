/*
 * Reads: the redirect from the cache, and store reads on the worker pool.
 *
 * Redirect hit: the cache callback copies the record to the stack under the
 * shard lock, and the answer is written after the lock is released. Nothing
 * is allocated unless the URL is longer than about 4 KB.
 *
 * Redirect miss: a struct lookup is allocated and entered in app->pending
 * under the code. The first request for a code leads: it takes the cache
 * epoch, queues a store read and defers its answer. Requests for the same
 * code that arrive while the read runs join the leader's list of waiters
 * instead of reading again, so a burst of clicks on a cold link costs one
 * store read. When the read ends, the worker fills the cache (unless a
 * write changed the code meanwhile; see cache_fill), removes the pending
 * entry and posts the result to every waiter's connection.
 *
 * Lookup life: created by the I/O thread -> owned by the worker pool while
 * queued or running -> posted to the connection's loop, which answers and
 * frees it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/links.h"
#include "app/log.h"
#include "app/writer.h"
#include "core/container_of.h"
#include "net/loop.h"
#include "store/store.h"

enum lookup_purpose {
    LOOKUP_REDIRECT,
    LOOKUP_READ,
    LOOKUP_READY,
};

struct lookup {
    struct loop_task task;
    struct app *app;
    struct http_conn *conn;
    enum lookup_purpose purpose;
    char code[STORE_CODE_MAX + 1];
    size_t code_len;
    uint64_t epoch;

    struct lookup *waiters; /* leader only: lookups that joined it */
    struct lookup *next;    /* link in the leader's list */

    /* Result, set by the worker. */
    int err;         /* 0, or a negative errno to answer with 503 */
    char *record;    /* LOOKUP_REDIRECT: an encoded link record */
    size_t record_len;
    int status;      /* LOOKUP_READ and LOOKUP_READY: the answer */
    char *body;
    size_t body_len;
};

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

static void answer_record(struct http_conn *conn, const struct link_record *record,
                          const char *code, size_t code_len)
{
    char message[160];

    switch (record->kind) {
    case LINK_LIVE:
        http_conn_begin(conn, record->redirect_status);
        http_conn_header(conn, "Location", record->url, record->url_len);
        http_conn_end(conn, NULL, NULL, 0);
        return;

    case LINK_GONE:
        snprintf(message, sizeof(message), "The link %.*s was deleted.", (int)code_len, code);
        app_send_error(conn, 410, "link_gone", message);
        return;

    case LINK_MISSING:
    default:
        snprintf(message, sizeof(message), "No link has the code %.*s.", (int)code_len, code);
        app_send_error(conn, 404, "not_found", message);
        return;
    }
}

static void free_lookup(struct lookup *lookup)
{
    free(lookup->record);
    free(lookup->body);
    free(lookup);
}

/* ---- worker side ---- */

/*
 * Encodes what the store returned as a cache record. A stored URL that is
 * not header-safe (written by an older version or by hand) is
 * percent-encoded here, so the cache only ever holds safe URLs.
 */
static int encode_link(const struct store_link *link, int found, char **record, size_t *len)
{
    enum link_kind kind = LINK_MISSING;
    size_t url_len = 0;
    char *url = NULL;

    if (found) {
        kind = link->deleted_at != 0 ? LINK_GONE : LINK_LIVE;
        if (kind == LINK_LIVE)
            url_len = link->url_len;
    }

    *record = malloc(LINK_RECORD_HEADER + 3 * url_len + 1);
    if (*record == NULL)
        return -ENOMEM;

    if (kind == LINK_LIVE && !url_is_header_safe(link->url, link->url_len)) {
        url = *record + LINK_RECORD_HEADER + url_len;
        url_len = url_encode_for_header(link->url, link->url_len, url);
        memmove(*record + LINK_RECORD_HEADER, url, url_len);
        url = *record + LINK_RECORD_HEADER;
    } else if (kind == LINK_LIVE) {
        url = link->url;
    }

    *len = link_record_encode(kind, found ? link->redirect_status : 0, found ? link->expires_at : 0,
                              url, url_len, *record);
    return 0;
}

/* Sends the leader's result to itself and every waiter. */
static void finish_chain(struct lookup *leader)
{
    struct lookup *waiter, *next;

    for (waiter = leader->waiters; waiter != NULL; waiter = next) {
        next = waiter->next;
        waiter->err = leader->err;
        if (leader->record != NULL) {
            waiter->record = malloc(leader->record_len);
            if (waiter->record == NULL) {
                waiter->err = -ENOMEM;
            } else {
                memcpy(waiter->record, leader->record, leader->record_len);
                waiter->record_len = leader->record_len;
            }
        }
        http_conn_post(waiter->conn, &waiter->task);
    }
    http_conn_post(leader->conn, &leader->task);
}

static void redirect_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    struct app *app = lookup->app;
    struct store_link link;
    struct link_record decoded;
    void *removed = NULL;
    int rc;

    memset(&link, 0, sizeof(link));
    rc = store_get_link(thread_state, lookup->code, lookup->code_len, &link);
    if (rc == 0 || rc == -ENOENT) {
        lookup->err = encode_link(&link, rc == 0, &lookup->record, &lookup->record_len);
        if (lookup->err == 0 && link_record_decode(lookup->record, lookup->record_len, &decoded) == 0)
            (void)cache_fill(app->cache, lookup->code, lookup->code_len, lookup->record,
                             lookup->record_len,
                             decoded.kind == LINK_MISSING ? app->config->negative_ttl_ms : 0,
                             loop_clock_ms(), lookup->epoch);
    } else {
        lookup->err = rc;
        log_error("store", "read of link %s failed: %s", lookup->code, store_last_error(thread_state));
    }
    store_link_clear(&link);

    /* After the fill, so that a request arriving now finds the cache. */
    (void)shardmap_remove(app->pending, lookup->code, lookup->code_len, &removed);
    finish_chain(lookup);
}

static void read_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    struct store_link link;
    char message[160];
    int rc;

    memset(&link, 0, sizeof(link));
    rc = store_get_link(thread_state, lookup->code, lookup->code_len, &link);
    if (rc == 0 && link.deleted_at == 0) {
        lookup->status = 200;
        lookup->body = link_to_json(&link, lookup->app->base_url, &lookup->body_len);
    } else if (rc == 0 || rc == -ENOENT) {
        lookup->status = rc == 0 ? 410 : 404;
        snprintf(message, sizeof(message),
                 rc == 0 ? "The link %s was deleted." : "No link has the code %s.", lookup->code);
        lookup->body = link_error_json(rc == 0 ? "link_gone" : "not_found", message,
                                       &lookup->body_len);
    } else {
        lookup->err = rc;
        log_error("store", "read of link %s failed: %s", lookup->code, store_last_error(thread_state));
    }
    store_link_clear(&link);
    http_conn_post(lookup->conn, &lookup->task);
}

static void ready_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    char message[400];
    int rc, writer_err;

    rc = store_ping(thread_state);
    writer_err = writer_health(lookup->app->writer);

    if (rc < 0) {
        snprintf(message, sizeof(message), "The store does not answer reads: %s.",
                 store_last_error(thread_state));
    } else if (writer_err < 0) {
        snprintf(message, sizeof(message), "The last write to the store failed: %s.",
                 strerror(-writer_err));
    }

    if (rc < 0 || writer_err < 0) {
        lookup->status = 503;
        lookup->body = link_error_json("not_ready", message, &lookup->body_len);
    } else {
        lookup->status = 200;
        lookup->body = strdup("{\"status\":\"ready\"}");
        lookup->body_len = lookup->body != NULL ? strlen(lookup->body) : 0;
    }
    http_conn_post(lookup->conn, &lookup->task);
}

/* ---- loop side ---- */

static void lookup_done(struct loop *loop, struct loop_task *task)
{
    struct lookup *lookup = container_of(task, struct lookup, task);
    struct link_record record;

    if (!http_conn_is_open(lookup->conn)) {
        free_lookup(lookup);
        return;
    }

    if (lookup->err != 0) {
        app_send_unavailable(lookup->conn, lookup->err);
    } else if (lookup->purpose == LOOKUP_REDIRECT) {
        if (link_record_decode(lookup->record, lookup->record_len, &record) == 0)
            answer_record(lookup->conn, &record, lookup->code, lookup->code_len);
        else
            app_send_unavailable(lookup->conn, -EIO);
    } else if (lookup->status == 503) {
        http_conn_begin(lookup->conn, 503);
        http_conn_header(lookup->conn, "Retry-After", "1", 1);
        http_conn_header(lookup->conn, "Cache-Control", "no-store", 8);
        http_conn_end(lookup->conn, "application/json; charset=utf-8", lookup->body,
                      lookup->body_len);
    } else {
        app_send_json(lookup->conn, lookup->status, lookup->body, lookup->body_len);
    }
    free_lookup(lookup);
}

static struct lookup *new_lookup(struct app *app, struct http_conn *conn,
                                 enum lookup_purpose purpose, const char *code, size_t code_len)
{
    struct lookup *lookup = calloc(1, sizeof(*lookup));

    if (lookup == NULL)
        return NULL;
    lookup->task.callback = lookup_done;
    lookup->app = app;
    lookup->conn = conn;
    lookup->purpose = purpose;
    memcpy(lookup->code, code, code_len);
    lookup->code[code_len] = '\0';
    lookup->code_len = code_len;
    return lookup;
}

static void *join_or_lead(void *value, void *arg)
{
    struct lookup *lookup = arg, *leader = value;

    if (leader == NULL)
        return lookup;

    lookup->next = leader->waiters;
    leader->waiters = lookup;
    return leader;
}

void app_redirect(struct app *app, struct http_conn *conn, const char *code, size_t code_len)
{
    struct link_record record;
    struct copy copy;
    struct lookup *lookup;
    void *removed = NULL;
    int rc;

    copy.data = NULL;
    if (cache_get(app->cache, code, code_len, loop_now(http_conn_loop(conn)), copy_record, &copy) ==
            0 &&
        copy.data != NULL) {
        if (link_record_decode(copy.data, copy.len, &record) == 0) {
            answer_record(conn, &record, code, code_len);
            copy_release(&copy);
            return;
        }
        copy_release(&copy);
    }

    lookup = new_lookup(app, conn, LOOKUP_REDIRECT, code, code_len);
    if (lookup == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    lookup->epoch = cache_epoch(app->cache, code, code_len);

    rc = shardmap_update(app->pending, code, code_len, join_or_lead, lookup);
    if (rc < 0) {
        free_lookup(lookup);
        app_send_unavailable(conn, rc);
        return;
    }

    http_conn_defer(conn);
    if (rc == 0)
        return; /* joined a read in progress */

    rc = workpool_submit(app->workers, redirect_job, lookup);
    if (rc < 0) {
        /* Nobody will read the store: answer the leader and its waiters. */
        (void)shardmap_remove(app->pending, code, code_len, &removed);
        lookup->err = rc;
        finish_chain(lookup);
    }
}

static void submit_or_answer(struct app *app, struct http_conn *conn, struct lookup *lookup,
                             workpool_job_fn job)
{
    int rc;

    if (lookup == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    rc = workpool_submit(app->workers, job, lookup);
    if (rc < 0) {
        free_lookup(lookup);
        app_send_unavailable(conn, rc);
        return;
    }
    http_conn_defer(conn);
}

void app_read_link(struct app *app, struct http_conn *conn, const char *code, size_t code_len)
{
    submit_or_answer(app, conn, new_lookup(app, conn, LOOKUP_READ, code, code_len), read_job);
}

void app_ready(struct app *app, struct http_conn *conn)
{
    submit_or_answer(app, conn, new_lookup(app, conn, LOOKUP_READY, "", 0), ready_job);
}

int app_worker_init(void *context, unsigned index, void **thread_state)
{
    struct app *app = context;
    struct store *store;
    char error[512];
    int rc;

    rc = store_open(app->config->db, &store, error, sizeof(error));
    if (rc < 0) {
        log_error("store", "worker %u cannot open %s: %s", index, app->config->db, error);
        return rc;
    }
    *thread_state = store;
    return 0;
}

void app_worker_fini(void *context, void *thread_state)
{
    store_close(thread_state);
}
