/*
 * Live events: publishing to the broker, and GET /api/v1/events, which
 * streams them as server-sent events.
 *
 * A broker payload is a ready SSE frame without its id line
 * ("event: TYPE\ndata: JSON\n\n"), so a stream only prepends "id: N\n" and
 * copies it. Every event's JSON has "version": 1 and "type"; docs/events.md
 * describes them.
 *
 * A stream is a broker subscription bound to one streaming connection. The
 * broker calls notify on the publisher's thread when the subscription's
 * queue becomes non-empty; notify posts the stream's task to the
 * connection's loop, where the queue is drained into the socket while the
 * socket keeps up. When more than STREAM_HIGH_WATER bytes wait, the stream
 * stops reading the queue; it fills, the broker drops and counts, and the
 * client gets a "dropped" event with the count once output drains.
 *
 * Stream life: created by the handler -> lives while the connection
 * streams -> freed on the loop after the connection's closed callback, or,
 * when a posted task is still pending then, by that task.
 */
#include <errno.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/datetime.h"
#include "app/log.h"
#include "core/container_of.h"
#include "net/loop.h"

#define STREAM_HIGH_WATER   (64 * 1024)
#define RETRY_MS            3000
#define VISIT_FRAME_MAX     (STORE_CODE_MAX + STORE_HOST_MAX + 256)

struct stream {
    struct app *app;
    int64_t key_id;        /* the API key that opened it, 0 for the admin key */
    uint64_t written;       /* bytes written to the connection */
    uint64_t acked;         /* bytes the client had acknowledged at the last tick */
    uint64_t stalled_since; /* loop time since which nothing was acknowledged, 0 if flowing */
    struct http_conn *conn;
    struct loop *loop;
    struct broker_subscription *subscription;
    struct loop_task task;
    struct loop_timer keepalive;
    /*
     * Set by notify on the publisher's thread before it posts the task, and
     * cleared by the task on the loop. Release and acquire make the flag's
     * last value visible to the loop once broker_unsubscribe has returned,
     * after which notify never runs again.
     */
    atomic_bool task_pending;
    bool closed;
};

/* ---- publishing ---- */

static void publish_frame(struct app *app, enum app_topic topic, uint64_t owner, const char *type,
                          json_t *object)
{
    char *json, *frame;
    size_t len;
    int rc;

    if (object == NULL)
        return;
    json = link_json_dump(object);
    json_decref(object);
    if (json == NULL)
        return;

    len = strlen("event: ") + strlen(type) + strlen("\ndata: ") + strlen(json) + 2;
    frame = malloc(len + 1);
    if (frame != NULL) {
        snprintf(frame, len + 1, "event: %s\ndata: %s\n\n", type, json);
        rc = broker_publish(app->broker, topic, (uint64_t)owner, frame, len, NULL);
        if (rc < 0)
            log_warn("events", "publish of %s failed: %s", type, strerror(-rc));
    }
    free(frame);
    free(json);
}

void app_publish_link_event(struct app *app, const char *type, const struct store_link *link)
{
    char time[DATETIME_TIMESTAMP_SIZE];
    json_t *object;

    if (!broker_wants(app->broker, APP_TOPIC_LINKS))
        return;

    datetime_format_timestamp(app_wall_ms(), time);
    if (strcmp(type, "link.created") == 0)
        object = json_pack("{s:i, s:s, s:s, s:o}", "version", 1, "type", type, "time", time,
                           "link", link_to_object(link, app->base_url));
    else
        object = json_pack("{s:i, s:s, s:s, s:s%}", "version", 1, "type", type, "time", time,
                           "code", link->code, link->code_len);
    publish_frame(app, APP_TOPIC_LINKS, (uint64_t)link->owner_key_id, type, object);
}

void app_publish_visit(struct app *app, const char *code, size_t code_len, int64_t owner,
                       const char *referrer, size_t referrer_len)
{
    char frame[VISIT_FRAME_MAX], time[DATETIME_TIMESTAMP_SIZE];
    int len;
    int rc;

    /*
     * Built without a JSON library: codes are [A-Za-z0-9_-] and referrer
     * hosts have no quote, backslash or control byte (visits.c), so neither
     * needs escaping.
     */
    datetime_format_timestamp(app_wall_ms(), time);
    if (referrer_len > 0)
        len = snprintf(frame, sizeof(frame),
                       "event: visit\ndata: {\"version\":1,\"type\":\"visit\",\"time\":\"%s\","
                       "\"code\":\"%.*s\",\"referrer_host\":\"%.*s\"}\n\n",
                       time, (int)code_len, code, (int)referrer_len, referrer);
    else
        len = snprintf(frame, sizeof(frame),
                       "event: visit\ndata: {\"version\":1,\"type\":\"visit\",\"time\":\"%s\","
                       "\"code\":\"%.*s\",\"referrer_host\":null}\n\n",
                       time, (int)code_len, code);
    if (len < 0 || (size_t)len >= sizeof(frame))
        return;
    rc = broker_publish(app->broker, APP_TOPIC_VISITS, (uint64_t)owner, frame, (size_t)len, NULL);
    if (rc < 0)
        log_warn("events", "publish of a visit failed: %s", strerror(-rc));
}

/* ---- streams ---- */

static void stream_free(struct stream *stream)
{
    free(stream);
}

/* Writes to the stream's connection and counts the bytes. */
static int stream_write(struct stream *stream, const void *data, size_t len)
{
    int rc = http_conn_stream_write(stream->conn, data, len);

    if (rc == 0)
        stream->written += len;
    return rc;
}

static void write_dropped(struct stream *stream, uint64_t dropped)
{
    char frame[160];
    int len;

    if (dropped == BROKER_DROPPED_UNKNOWN)
        len = snprintf(frame, sizeof(frame),
                       "event: dropped\ndata: {\"version\":1,\"type\":\"dropped\",\"count\":null}"
                       "\n\n");
    else
        len = snprintf(frame, sizeof(frame),
                       "event: dropped\ndata: {\"version\":1,\"type\":\"dropped\",\"count\":%llu}"
                       "\n\n",
                       (unsigned long long)dropped);
    (void)stream_write(stream, frame, (size_t)len);
}

/* Ends the stream of a key that was revoked since it opened. */
static bool stream_key_revoked(struct stream *stream)
{
    if (stream->key_id == 0 || !keys_is_revoked(stream->app->keys, stream->key_id))
        return false;
    http_conn_stream_end(stream->conn);
    return true;
}

/* Copies queued events into the connection while it keeps up. */
static void stream_pump(struct stream *stream)
{
    const struct broker_event *event;
    uint64_t dropped;
    char id[40];
    int rc, len;

    if (stream->closed || stream_key_revoked(stream))
        return;
    while (!stream->closed && http_conn_stream_pending(stream->conn) < STREAM_HIGH_WATER) {
        rc = broker_poll(stream->subscription, &event, &dropped);
        if (dropped != 0)
            write_dropped(stream, dropped);
        if (rc < 0)
            return;

        len = snprintf(id, sizeof(id), "id: %llu\n", (unsigned long long)event->id);
        if (stream_write(stream, id, (size_t)len) < 0 ||
            stream_write(stream, event->data, event->size) < 0) {
            broker_event_release(event);
            return;
        }
        broker_event_release(event);
    }
}

/* Publisher's thread, broker lock held: wake the stream's loop. */
static void stream_notify(void *arg)
{
    struct stream *stream = arg;

    atomic_store_explicit(&stream->task_pending, true, memory_order_release);
    loop_post(stream->loop, &stream->task);
}

static void stream_task(struct loop *loop, struct loop_task *task)
{
    struct stream *stream = container_of(task, struct stream, task);

    atomic_store_explicit(&stream->task_pending, false, memory_order_relaxed);
    if (stream->closed) {
        stream_free(stream);
        return;
    }
    stream_pump(stream);
}

static void stream_keepalive(struct loop *loop, struct loop_timer *timer)
{
    struct stream *stream = container_of(timer, struct stream, keepalive);
    static const char comment[] = ": keep-alive\n\n";
    uint64_t unacked, acked;

    if (stream_key_revoked(stream))
        return;

    /*
     * A client that stopped reading: the kernel keeps accepting small
     * keep-alives into a growing send buffer, so the server's write timeout
     * would take very long to notice. A stream whose client acknowledged
     * nothing for --write-timeout while output waited is ended; a slow
     * client that still makes progress is kept (it gets dropped events).
     */
    unacked = http_conn_stream_pending(stream->conn) + http_conn_stream_unacked(stream->conn);
    /* The response headers are not in written, so unacked may exceed it. */
    acked = stream->written > unacked ? stream->written - unacked : 0;
    if (unacked == 0 || acked > stream->acked) {
        stream->stalled_since = 0;
    } else if (stream->stalled_since == 0) {
        stream->stalled_since = loop_now(loop);
    } else if (loop_now(loop) - stream->stalled_since >= stream->app->config->write_timeout_ms) {
        http_conn_stream_end(stream->conn);
        return;
    }
    stream->acked = acked;
    (void)stream_write(stream, comment, sizeof(comment) - 1);
}

static void stream_writable(struct http_conn *conn, void *arg)
{
    stream_pump(arg);
}

static void stream_closed(struct http_conn *conn, void *arg)
{
    struct stream *stream = arg;

    stream->closed = true;
    loop_timer_stop(stream->loop, &stream->keepalive);
    broker_unsubscribe(stream->subscription);
    stream->subscription = NULL;

    /* Notify never runs again, so the flag is final. */
    if (!atomic_load_explicit(&stream->task_pending, memory_order_acquire))
        stream_free(stream);
}

static const struct http_stream_handler stream_handler = {
    .writable = stream_writable,
    .closed = stream_closed,
};

/* Parses topics=links,visits into a mask. Returns 0 or -EINVAL. */
static int parse_topics(const struct http_request *req, uint32_t *mask)
{
    char value[64], *item, *save = NULL, *cursor;
    size_t len;
    int found;

    found = app_query_param(req, "topics", value, sizeof(value), &len);
    if (found < 0)
        return -EINVAL;
    if (found == 0) {
        *mask = (1u << APP_TOPIC_LINKS) | (1u << APP_TOPIC_VISITS);
        return 0;
    }

    *mask = 0;
    for (cursor = value; (item = strtok_r(cursor, ",", &save)) != NULL; cursor = NULL) {
        if (strcmp(item, "links") == 0)
            *mask |= 1u << APP_TOPIC_LINKS;
        else if (strcmp(item, "visits") == 0)
            *mask |= 1u << APP_TOPIC_VISITS;
        else
            return -EINVAL;
    }
    return *mask != 0 ? 0 : -EINVAL;
}

/* Reads Last-Event-ID. Returns 1 and sets *id when present and valid. */
static int last_event_id(const struct http_request *req, uint64_t *id)
{
    const struct http_header *header = http_find_header(req, "Last-Event-ID", 13);
    uint64_t value = 0;
    size_t i;

    if (header == NULL || header->value_len == 0 || header->value_len > 19)
        return 0;
    for (i = 0; i < header->value_len; i++) {
        if (header->value[i] < '0' || header->value[i] > '9')
            return 0;
        value = value * 10 + (uint64_t)(header->value[i] - '0');
    }
    *id = value;
    return 1;
}

void app_events(struct app *app, struct http_conn *conn, const struct auth *auth,
                const struct http_request *req)
{
    struct broker_subscribe_options options;
    struct stream *stream;
    char retry[32];
    int rc, len;

    if (auth->kind == AUTH_ANONYMOUS) {
        app_send_unauthorized(conn, "Event streams need an API key or the admin key.");
        return;
    }

    memset(&options, 0, sizeof(options));
    if (parse_topics(req, &options.topics) < 0) {
        app_send_error(conn, 400, "invalid_topics",
                       "topics must be a comma-separated list of links and visits.");
        return;
    }

    stream = calloc(1, sizeof(*stream));
    if (stream == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    stream->app = app;
    stream->key_id = auth->kind == AUTH_KEY ? auth->key.id : 0;
    stream->conn = conn;
    stream->loop = http_conn_loop(conn);
    stream->task.callback = stream_task;
    atomic_init(&stream->task_pending, false);

    options.filter_owner = auth->kind == AUTH_KEY;
    options.owner = auth->kind == AUTH_KEY ? (uint64_t)auth->key.id : 0;
    options.resume = last_event_id(req, &options.last_event_id) == 1;
    options.notify = stream_notify;
    options.notify_arg = stream;

    rc = broker_subscribe(app->broker, &options, &stream->subscription);
    if (rc < 0) {
        free(stream);
        /* -EAGAIN: --max-subscribers streams are open. */
        app_send_unavailable(conn, rc);
        return;
    }

    http_conn_begin(conn, 200);
    http_conn_header(conn, "Cache-Control", "no-store", 8);
    http_conn_header(conn, "X-Accel-Buffering", "no", 2);
    http_conn_stream_start(conn, "text/event-stream; charset=utf-8", &stream_handler, stream);

    len = snprintf(retry, sizeof(retry), "retry: %d\n\n", RETRY_MS);
    (void)stream_write(stream, retry, (size_t)len);
    stream_pump(stream);
    loop_timer_start(stream->loop, &stream->keepalive, app->config->event_keepalive_ms,
                     app->config->event_keepalive_ms, stream_keepalive);
}
