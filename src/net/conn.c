/*
 * One client connection: reading, request framing, dispatch and responses.
 *
 * conn_run() is the driver. It runs after every event on the socket, after
 * a deferred response was written, and after output drained. Each pass:
 *
 *   1. processes input the connection already owns (the rest of a pipeline
 *      left behind by a deferred response or by back-pressure);
 *   2. reads while the kernel has input, into the connection's own buffer
 *      when it holds a partial request, else into the thread's scratch
 *      buffer, and processes every complete request in what it read;
 *   3. sends the responses built during the pass with one send();
 *   4. keeps what is left (a partial request, unsent output) in buffers the
 *      connection owns, files the connection under the timeout that now
 *      applies, and closes it when it is done.
 *
 * Processing stops early while a response is deferred (the order of
 * responses must follow the order of requests) and while more than
 * OUTPUT_HIGH_WATER bytes wait for a client that does not read.
 *
 * After an invalid request the server sends its error response with
 * "Connection: close", shuts down its sending side and discards input until
 * the client closes or the linger timeout ends (lingering close). Closing
 * at once with unread input would make the kernel send a reset, which can
 * destroy the error response before the client reads it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/server_internal.h"

#define OUTPUT_HIGH_WATER (64 * 1024)
#define READS_PER_PASS    16 /* reads of one connection before others get a turn */
#define PASSES_PER_RUN    4  /* output flushes of one connection per turn */
#define READ_CHUNK_MIN    4096

static void conn_run(struct http_conn *conn);

int buf__reserve(struct buf *buf, size_t need)
{
    size_t cap;
    char *data;

    if (buf->cap - buf->len >= need)
        return 0;

    cap = buf->cap ? buf->cap : 4096;
    while (cap - buf->len < need)
        cap *= 2;

    data = realloc(buf->data, cap);
    if (data == NULL)
        return -ENOMEM;
    buf->data = data;
    buf->cap = cap;
    return 0;
}

void buf__free(struct buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

/* Appends bytes to the current output. On allocation failure it drops them
 * and closes the connection after this pass. */
static void out_append(struct http_conn *conn, const void *data, size_t len)
{
    struct buf *out = conn->out_target;

    if (buf__reserve(out, len) < 0) {
        conn->keep_alive = false;
        conn->peer_closed = true;
        return;
    }
    memcpy(out->data + out->len, data, len);
    out->len += len;
}

static void out_append_str(struct http_conn *conn, const char *text)
{
    out_append(conn, text, strlen(text));
}

/* ---- timeouts ---- */

static void timer_unlink(struct http_conn *conn)
{
    struct server_thread *thread = conn->thread;
    enum conn_timer t = conn->timer;

    if (t == CONN_TIMER_NONE)
        return;

    if (conn->timer_prev != NULL)
        conn->timer_prev->timer_next = conn->timer_next;
    else
        thread->timer_head[t] = conn->timer_next;
    if (conn->timer_next != NULL)
        conn->timer_next->timer_prev = conn->timer_prev;
    else
        thread->timer_tail[t] = conn->timer_prev;

    conn->timer_prev = conn->timer_next = NULL;
    conn->timer = CONN_TIMER_NONE;
}

/*
 * Files conn under timer with a fresh deadline. Every connection in a list
 * has the same timeout, so appending keeps the list sorted by deadline.
 */
void conn__timer_set(struct http_conn *conn, enum conn_timer timer)
{
    struct server_thread *thread = conn->thread;

    timer_unlink(conn);
    if (timer == CONN_TIMER_NONE)
        return;

    conn->timer = timer;
    conn->deadline = loop_now(thread->loop) + thread->server->timeout_ms[timer];
    conn->timer_prev = thread->timer_tail[timer];
    conn->timer_next = NULL;
    if (thread->timer_tail[timer] != NULL)
        thread->timer_tail[timer]->timer_next = conn;
    else
        thread->timer_head[timer] = conn;
    thread->timer_tail[timer] = conn;
}

/* Like conn__timer_set, but keeps the deadline when already in that list, so
 * a client that trickles bytes cannot extend its header or body time. */
static void timer_keep(struct http_conn *conn, enum conn_timer timer)
{
    if (conn->timer != timer)
        conn__timer_set(conn, timer);
}

/* ---- responses ---- */

static uint64_t monotonic_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reports a finished response to the server's on_response callback. */
static void report_response(struct http_conn *conn)
{
    struct server *server = conn->thread->server;

    if (server->config.on_response != NULL)
        server->config.on_response(server->config.context, conn->thread->index, conn->tag,
                                   conn->status, monotonic_ns() - conn->start_ns);
}


const char *http_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static void update_date(struct server_thread *thread)
{
    int64_t now = loop_wall_seconds(thread->loop);
    time_t seconds = (time_t)now;
    struct tm tm;

    if (now == thread->date_second)
        return;

    (void)gmtime_r(&seconds, &tm);
    thread->date_len = strftime(thread->date_line, sizeof(thread->date_line),
                                "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    thread->date_second = now;
}

/* Writes value in decimal at the end of out[0..] and returns its length. */
static size_t format_decimal(uint64_t value, char *out)
{
    char digits[20];
    size_t len = 0, i;

    do {
        digits[len++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (i = 0; i < len; i++)
        out[i] = digits[len - 1 - i];
    return len;
}

void http_conn_begin(struct http_conn *conn, int status)
{
    const char *reason = http_status_reason(status);
    size_t reason_len = strlen(reason);
    char line[64];

    /* Built by hand: snprintf costs more than the rest of a redirect's head. */
    memcpy(line, "HTTP/1.1 ", 9);
    line[9] = (char)('0' + status / 100 % 10);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    line[12] = ' ';
    memcpy(line + 13, reason, reason_len);
    memcpy(line + 13 + reason_len, "\r\n", 2);
    out_append(conn, line, 15 + reason_len);

    update_date(conn->thread);
    out_append(conn, conn->thread->date_line, conn->thread->date_len);
    conn->responding = true;
    conn->status = status;
}

void http_conn_header(struct http_conn *conn, const char *name, const char *value,
                      size_t value_len)
{
    out_append_str(conn, name);
    out_append(conn, ": ", 2);
    out_append(conn, value, value_len);
    out_append(conn, "\r\n", 2);
}

void http_conn_headerf(struct http_conn *conn, const char *name, const char *format, ...)
{
    char value[512];
    va_list ap;
    int len;

    va_start(ap, format);
    len = vsnprintf(value, sizeof(value), format, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof(value))
        len = sizeof(value) - 1;
    http_conn_header(conn, name, value, (size_t)len);
}

void http_conn_end(struct http_conn *conn, const char *content_type, const void *body,
                   size_t body_len)
{
    char line[64];
    size_t len;

    if (content_type != NULL) {
        out_append(conn, "Content-Type: ", 14);
        out_append_str(conn, content_type);
        out_append(conn, "\r\n", 2);
    }

    /* RFC 9110 forbids Content-Length in 204 and 304 responses. */
    if (conn->status != 204 && conn->status != 304) {
        memcpy(line, "Content-Length: ", 16);
        len = 16 + format_decimal(body_len, line + 16);
        memcpy(line + len, "\r\n", 2);
        out_append(conn, line, len + 2);
    }

    if (!conn->keep_alive) {
        out_append(conn, "Connection: close\r\n", 19);
        conn->close_sent = true;
    }
    else if (conn->http10)
        out_append(conn, "Connection: keep-alive\r\n", 24);
    out_append(conn, "\r\n", 2);

    if (conn->method != HTTP_METHOD_HEAD && body_len > 0)
        out_append(conn, body, body_len);
    conn->responding = false;
    report_response(conn);
}

void http_conn_set_tag(struct http_conn *conn, unsigned tag)
{
    conn->tag = (uint8_t)tag;
}

void http_conn_close_after(struct http_conn *conn)
{
    conn->keep_alive = false;
}

const struct sockaddr *http_conn_peer(const struct http_conn *conn)
{
    return (const struct sockaddr *)&conn->peer;
}

struct loop *http_conn_loop(const struct http_conn *conn)
{
    return conn->thread->loop;
}

unsigned http_conn_thread_index(const struct http_conn *conn)
{
    return conn->thread->index;
}

enum http_method http_conn_method(const struct http_conn *conn)
{
    return conn->method;
}

bool http_conn_is_open(const struct http_conn *conn)
{
    return !conn->closed;
}

/* Copies text into out as the inside of a JSON string. Returns the length. */
static size_t json_escape(const char *text, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = 0;
    unsigned char c;

    for (; *text != '\0' && len + 7 < cap; text++) {
        c = (unsigned char)*text;
        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + len, "\\u00", 4);
            out[len + 4] = hex[c >> 4];
            out[len + 5] = hex[c & 15];
            len += 6;
        } else {
            out[len++] = (char)c;
        }
    }
    out[len] = '\0';
    return len;
}

/* Writes a JSON error response. code is snake_case; message is escaped. */
static void send_error(struct http_conn *conn, int status, const char *code, const char *message)
{
    char body[600], escaped[400];
    int len;

    (void)json_escape(message, escaped, sizeof(escaped));
    len = snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                   escaped);
    if (len < 0 || (size_t)len >= sizeof(body))
        len = 0;

    http_conn_begin(conn, status);
    http_conn_end(conn, "application/json; charset=utf-8", body, (size_t)len);
}

/* ---- deferral ---- */

void http_conn_defer(struct http_conn *conn)
{
    conn->state = CONN_DEFERRED;
    conn->tasks_pending++;
}

static void on_resume(struct loop *loop, struct loop_task *task)
{
    struct http_conn *conn = container_of(task, struct http_conn, resume);
    struct server_thread *thread = conn->thread;
    struct loop_task *app_task = conn->deferred_task;

    conn->tasks_pending--;
    conn->state = CONN_READING;
    conn->deferred_task = NULL;
    conn->out_target = conn->out.len > 0 ? &conn->out : &thread->scratch_out;

    conn->in_pass = true;
    app_task->callback(loop, app_task);
    conn->in_pass = false;

    if (conn->closed) {
        /* The client left while it waited, so discard the response and free it. */
        thread->scratch_out.len = 0;
        conn__close(conn);
        return;
    }
    conn_run(conn);
}

void http_conn_post(struct http_conn *conn, struct loop_task *task)
{
    conn->deferred_task = task;
    conn->resume.callback = on_resume;
    loop_post(conn->thread->loop, &conn->resume);
}

/* ---- closing ---- */

void conn__close(struct http_conn *conn)
{
    struct server_thread *thread = conn->thread;

    if (!conn->closed) {
        timer_unlink(conn);
        (void)loop_watch_remove(thread->loop, &conn->watch);
        (void)close(conn->watch.fd);
        conn->closed = true;
        atomic_fetch_sub_explicit(&thread->server->connections, 1, memory_order_relaxed);
    }

    if (conn->stream != NULL) {
        const struct http_stream_handler *stream = conn->stream;

        conn->stream = NULL;
        stream->closed(conn, conn->stream_arg);
    }

    /* A posted task still points at the connection: free it when it ran. */
    if (conn->tasks_pending > 0)
        return;

    buf__free(&conn->in);
    buf__free(&conn->out);
    if (conn->all_prev != NULL)
        conn->all_prev->all_next = conn->all_next;
    else
        thread->all_conns = conn->all_next;
    if (conn->all_next != NULL)
        conn->all_next->all_prev = conn->all_prev;
    thread->connections--;
    free(conn);

    if (thread->shutting_down && thread->connections == 0)
        loop_stop(thread->loop);
}

static void on_close_task(struct loop *loop, struct loop_task *task)
{
    struct http_conn *conn = container_of(task, struct http_conn, close_task);

    conn->tasks_pending--;
    conn->close_posted = false;
    conn__close(conn);
}

/* Closes the connection from the loop soon, not from inside the caller. */
static void post_close(struct http_conn *conn)
{
    if (conn->close_posted || conn->closed)
        return;
    conn->close_posted = true;
    conn->tasks_pending++;
    conn->close_task.callback = on_close_task;
    loop_post(conn->thread->loop, &conn->close_task);
}

/* ---- streaming ---- */

void http_conn_stream_start(struct http_conn *conn, const char *content_type,
                            const struct http_stream_handler *handler, void *arg)
{
    if (content_type != NULL) {
        out_append(conn, "Content-Type: ", 14);
        out_append_str(conn, content_type);
        out_append(conn, "\r\n", 2);
    }
    out_append_str(conn, "Connection: close\r\n\r\n");

    conn->keep_alive = false;
    conn->responding = false;
    conn->in_stalled = false;
    conn->state = CONN_STREAMING;
    report_response(conn);
    conn->stream = handler;
    conn->stream_arg = arg;
}

/* Sends the connection's own output without closing on failure. Returns 0,
 * or -1 when the connection must close (a close is posted). */
static int stream_send(struct http_conn *conn)
{
    size_t sent = 0;
    ssize_t n;

    while (sent < conn->out.len) {
        n = send(conn->watch.fd, conn->out.data + sent, conn->out.len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0) {
            post_close(conn);
            return -1;
        }
        sent += (size_t)n;
    }

    if (sent > 0) {
        memmove(conn->out.data, conn->out.data + sent, conn->out.len - sent);
        conn->out.len -= sent;
        conn__timer_set(conn, conn->out.len > 0 ? CONN_TIMER_WRITE : CONN_TIMER_STREAM);
    }
    return 0;
}

int http_conn_stream_write(struct http_conn *conn, const void *data, size_t len)
{
    if (conn->closed || conn->close_posted || conn->state != CONN_STREAMING)
        return -EPIPE;

    /* Inside a pass the output is sent when the pass ends. */
    if (conn->in_pass) {
        out_append(conn, data, len);
        return 0;
    }

    if (buf__reserve(&conn->out, len) < 0) {
        post_close(conn);
        return -EPIPE;
    }
    memcpy(conn->out.data + conn->out.len, data, len);
    conn->out.len += len;
    if (stream_send(conn) < 0)
        return -EPIPE;
    if (conn->out.len > 0)
        timer_keep(conn, CONN_TIMER_WRITE);
    return 0;
}

size_t http_conn_stream_pending(const struct http_conn *conn)
{
    size_t pending = conn->out.len;

    if (conn->in_pass && conn->out_target != &conn->out)
        pending += conn->out_target->len;
    return pending;
}

size_t http_conn_stream_unacked(const struct http_conn *conn)
{
    int queued = 0;

    if (conn->closed || ioctl(conn->watch.fd, SIOCOUTQ, &queued) < 0 || queued < 0)
        return 0;
    return (size_t)queued;
}

void http_conn_stream_end(struct http_conn *conn)
{
    conn->stream_ending = true;
    if (conn->out.len == 0 && !conn->in_pass)
        post_close(conn);
}

/* Half-closes the connection and discards input until the client closes. */
static void start_linger(struct http_conn *conn)
{
    conn->state = CONN_LINGER;
    conn->keep_alive = false;
    conn->in_stalled = false;
    buf__free(&conn->in);
    conn->head_len = 0;
}

void conn__timed_out(struct http_conn *conn)
{
    struct server_thread *thread = conn->thread;

    switch (conn->timer) {
    case CONN_TIMER_HEADER:
    case CONN_TIMER_BODY:
        /* A client that sent part of a request learns why it is cut off. */
        if (conn->in.len > 0 && conn->out.len == 0 && conn->state == CONN_READING) {
            conn->out_target = &thread->scratch_out;
            conn->keep_alive = false;
            conn->method = HTTP_METHOD_OTHER;
            conn->tag = 0;
            conn->start_ns = monotonic_ns();
            send_error(conn, 408, "request_timeout",
                       "The request was not received completely in time.");
            (void)send(conn->watch.fd, thread->scratch_out.data, thread->scratch_out.len,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
            thread->scratch_out.len = 0;
        }
        break;
    case CONN_TIMER_IDLE:
        /*
         * A busy thread may sweep before it read input that arrived after
         * its last epoll_wait: a connection with a request waiting is not
         * idle, so it gets the header timeout and its request is read now.
         */
        if (conn->state == CONN_READING && conn->in.len == 0 && conn->out.len == 0) {
            char byte;

            if (recv(conn->watch.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
                conn->readable = true;
                conn__timer_set(conn, CONN_TIMER_HEADER);
                conn_run(conn);
                return;
            }
        }
        break;
    default:
        break;
    }
    conn__close(conn);
}

void conn__start_draining(struct http_conn *conn)
{
    conn->draining = true;
    conn->keep_alive = false;

    /* Idle: no partial request, no output, no deferred response. */
    if (conn->state == CONN_READING && conn->in.len == 0 && conn->out.len == 0 &&
        conn->head_len == 0)
        conn__close(conn);
    else if (conn->state == CONN_STREAMING)
        conn__close(conn);
}

/* ---- input ---- */

static bool can_process(const struct http_conn *conn)
{
    return conn->state == CONN_READING && !conn->closed && conn->out.len < OUTPUT_HIGH_WATER &&
           conn->out_target->len < OUTPUT_HIGH_WATER;
}

static void reject(struct http_conn *conn, const struct http_error *err)
{
    conn->tag = 0;
    conn->start_ns = monotonic_ns();
    conn->keep_alive = false;
    conn->method = HTTP_METHOD_OTHER;
    send_error(conn, err->status, err->code, err->message);
    start_linger(conn);
}

static void dispatch(struct http_conn *conn, struct http_request *req, char *body,
                     size_t body_len)
{
    struct server *server = conn->thread->server;

    conn->method = req->method;
    conn->tag = 0;
    conn->start_ns = monotonic_ns();
    conn->http10 = req->version_minor == 0;
    conn->served = true;
    if (!req->keep_alive || conn->draining)
        conn->keep_alive = false;

    server->config.handler(server->config.context, conn, req, body, body_len);

    if (conn->state == CONN_DEFERRED)
        return;
    if (conn->responding) {
        /* A handler bug: it started a response and did not finish it. */
        conn->keep_alive = false;
        http_conn_end(conn, NULL, NULL, 0);
    }
}

/*
 * Handles the complete requests at the start of data[0..len), which begins
 * at a request boundary or inside the request whose head conn->head_len
 * records. Returns the bytes consumed; what remains is an incomplete request
 * or input left for later because processing had to stop, in which case
 * *stalled is set.
 */
static size_t process(struct http_conn *conn, char *data, size_t *len_inout, bool *stalled)
{
    size_t len = *len_inout;
    struct server_thread *thread = conn->thread;
    const struct http_limits *limits = &thread->server->config.limits;
    struct http_request *req = &thread->request;
    struct http_error err;
    size_t pos = 0, avail, body_avail, raw_len, body_len;
    bool head_fresh;
    char *body;
    int r;

    *stalled = false;
    while (pos < len) {
        /* After "Connection: close" no further request gets a response. */
        if (conn->close_sent)
            return len;
        if (!can_process(conn)) {
            *stalled = true;
            break;
        }
        avail = len - pos;
        head_fresh = false;

        if (conn->head_len == 0) {
            r = http_parse_request(data + pos, avail, &conn->parse_scan, limits, req, &err);
            if (r == 0)
                break;
            if (r < 0) {
                reject(conn, &err);
                return len;
            }
            head_fresh = true;
            conn->head_len = req->head_len;
            conn->body_chunked = req->chunked;
            conn->body_need = req->content_length > 0 ? (uint64_t)req->content_length : 0;
            if (req->chunked)
                http_chunked_init(&conn->chunked);
        }

        body = data + pos + conn->head_len;
        body_avail = avail - conn->head_len;

        if (conn->body_chunked) {
            r = http_chunked_decode(&conn->chunked, body, body_avail, limits->max_body, &err);
            if (r < 0) {
                reject(conn, &err);
                return len;
            }
            if (r == 0) {
                /* Drop the framing already decoded: tiny chunks cost no room. */
                len = pos + conn->head_len +
                      http_chunked_compact(&conn->chunked, body, body_avail);
                *len_inout = len;
            }
            body_len = conn->chunked.out_len;
            raw_len = conn->chunked.in_pos;
        } else {
            r = body_avail >= conn->body_need;
            body_len = raw_len = (size_t)conn->body_need;
        }

        if (r == 0) {
            if (head_fresh && req->expect_continue && !conn->sent_continue) {
                out_append_str(conn, "HTTP/1.1 100 Continue\r\n\r\n");
                conn->sent_continue = true;
            }
            break;
        }

        /*
         * The thread's request struct may describe another connection's
         * request by now, so a head parsed in an earlier pass is parsed again.
         */
        if (!head_fresh) {
            conn->parse_scan = 0;
            if (http_parse_request(data + pos, conn->head_len, &conn->parse_scan, limits, req,
                                   &err) != 1) {
                reject(conn, &err);
                return len;
            }
        }

        dispatch(conn, req, body, body_len);

        pos += conn->head_len + raw_len;
        conn->head_len = 0;
        conn->parse_scan = 0;
        conn->body_need = 0;
        conn->body_chunked = false;
        conn->sent_continue = false;

        if (!conn->keep_alive) {
            /* No request after a closing one gets a response. */
            return len;
        }
    }
    return pos;
}

/* Keeps data[consumed..len) for the next pass, in the connection's buffer. */
static int keep_input(struct http_conn *conn, char *data, size_t len, size_t consumed)
{
    size_t rest = len - consumed;

    if (data == conn->in.data) {
        if (rest > 0 && consumed > 0)
            memmove(conn->in.data, conn->in.data + consumed, rest);
        conn->in.len = rest;
        if (rest == 0)
            buf__free(&conn->in);
        return 0;
    }

    if (rest == 0)
        return 0;
    if (buf__reserve(&conn->in, rest) < 0)
        return -ENOMEM;
    memcpy(conn->in.data + conn->in.len, data + consumed, rest);
    conn->in.len += rest;
    return 0;
}

/* Largest input a connection may hold: a full head and a full body, with
 * room for chunked framing. */
static size_t input_limit(const struct server *server)
{
    const struct http_limits *limits = &server->config.limits;

    return limits->max_head + 2 * (size_t)limits->max_body + 4096;
}

/*
 * Reads once. Returns the bytes read, 0 at end of input or when the kernel
 * has nothing (readable is then cleared), or -1 after a fatal error (the
 * connection is closed).
 */
static ssize_t read_once(struct http_conn *conn, char **data, size_t *len)
{
    struct server_thread *thread = conn->thread;
    struct buf *target;
    size_t room;
    ssize_t n;

    if (conn->in.len > 0) {
        target = &conn->in;
        if (conn->in.len >= input_limit(thread->server)) {
            /* The parser and chunked compaction keep input below this. */
            struct http_error too_large = {413, "body_too_large",
                                           "The request is larger than the server accepts."};

            reject(conn, &too_large);
            conn->readable = false;
            return 0;
        }
        if (buf__reserve(target, READ_CHUNK_MIN) < 0) {
            conn__close(conn);
            return -1;
        }
    } else {
        target = &thread->scratch_in;
        target->len = 0;
    }

    room = target->cap - target->len;
    n = recv(conn->watch.fd, target->data + target->len, room, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            conn->readable = false;
            return 0;
        }
        if (errno == EINTR)
            return 0;
        conn__close(conn);
        return -1;
    }
    if (n == 0) {
        conn->readable = false;
        conn->peer_closed = true;
        return 0;
    }

    /* A short read drained the socket, so the next edge reports new input. */
    if ((size_t)n < room)
        conn->readable = false;

    *data = target->data;
    *len = target->len + (size_t)n;
    if (target == &conn->in)
        conn->in.len = *len;
    return n;
}

/*
 * Discards input of a lingering or streaming connection and closes it at
 * end of input. Returns -1 when the connection was closed (and may be
 * freed), else 0.
 */
static int linger_read(struct http_conn *conn)
{
    struct buf *scratch = &conn->thread->scratch_in;
    ssize_t n;

    while (conn->readable) {
        n = recv(conn->watch.fd, scratch->data, scratch->cap, 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn->readable = false;
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        conn__close(conn);
        return -1;
    }
    return 0;
}

/* ---- output ---- */

/*
 * Sends the current output. Keeps what the socket did not take in the
 * connection's own buffer. Returns 0, or -1 when the connection was closed.
 */
static int flush(struct http_conn *conn)
{
    struct server_thread *thread = conn->thread;
    struct buf *out = conn->out_target;
    size_t sent = 0;
    ssize_t n;

    while (sent < out->len) {
        n = send(conn->watch.fd, out->data + sent, out->len - sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (out == &thread->scratch_out)
                out->len = 0;
            conn->out_target = &conn->out;
            conn__close(conn);
            return -1;
        }
        sent += (size_t)n;
    }

    if (out == &thread->scratch_out) {
        if (sent < out->len) {
            if (buf__reserve(&conn->out, out->len - sent) < 0) {
                out->len = 0;
                conn__close(conn);
                return -1;
            }
            memcpy(conn->out.data, out->data + sent, out->len - sent);
            conn->out.len = out->len - sent;
        }
        out->len = 0;
    } else if (sent > 0) {
        memmove(out->data, out->data + sent, out->len - sent);
        out->len -= sent;
        if (out->len == 0)
            buf__free(out);
        else
            conn__timer_set(conn, CONN_TIMER_WRITE);
    }
    conn->out_target = &conn->out;
    return 0;
}

/* ---- driver ---- */

/* Files the connection under the timeout of what it waits for, or closes
 * it when it waits for nothing. */
static void settle(struct http_conn *conn)
{
    if (conn->state == CONN_DEFERRED) {
        conn__timer_set(conn, CONN_TIMER_NONE);
        return;
    }

    if (conn->state == CONN_STREAMING) {
        if (conn->peer_closed || (conn->stream_ending && conn->out.len == 0)) {
            conn__close(conn);
            return;
        }
        if (conn->out.len > 0)
            timer_keep(conn, CONN_TIMER_WRITE);
        else
            timer_keep(conn, CONN_TIMER_STREAM);
        if (conn->readable)
            (void)linger_read(conn);
        return;
    }

    if (conn->out.len > 0) {
        timer_keep(conn, CONN_TIMER_WRITE);
        return;
    }

    if (conn->state != CONN_LINGER && (!conn->keep_alive || conn->peer_closed)) {
        if (conn->peer_closed || (conn->in.len == 0 && !conn->readable)) {
            conn__close(conn);
            return;
        }
        /* Unread input: close gently so the last response survives. */
        start_linger(conn);
    }

    if (conn->state == CONN_LINGER) {
        if (conn->timer != CONN_TIMER_LINGER) {
            (void)shutdown(conn->watch.fd, SHUT_WR);
            conn__timer_set(conn, CONN_TIMER_LINGER);
        }
        if (linger_read(conn) == 0 && conn->peer_closed)
            conn__close(conn);
        return;
    }

    if (conn->head_len > 0)
        timer_keep(conn, CONN_TIMER_BODY);
    else if (conn->in.len > 0 || !conn->served)
        timer_keep(conn, CONN_TIMER_HEADER);
    else
        conn__timer_set(conn, CONN_TIMER_IDLE);
}

/*
 * Processes owned input that waited, then reads and processes while the
 * kernel has input and there is room. Returns -1 when the connection was
 * closed, else 0.
 */
static int pump(struct http_conn *conn)
{
    size_t consumed, len = 0;
    unsigned reads = 0;
    char *data = NULL;
    bool stalled;
    ssize_t n;

    /* Input left over from an earlier pass comes first. */
    if (conn->in_stalled && can_process(conn)) {
        consumed = process(conn, conn->in.data, &conn->in.len, &stalled);
        if (conn->state == CONN_LINGER)
            return 0;
        conn->in_stalled = stalled;
        if (keep_input(conn, conn->in.data, conn->in.len, consumed) < 0)
            conn->peer_closed = true;
    }

    while (conn->readable && can_process(conn) && !conn->in_stalled) {
        /* A client that keeps the socket full yields to the others. */
        if (++reads > READS_PER_PASS) {
            conn->more_input = true;
            break;
        }
        n = read_once(conn, &data, &len);
        if (n < 0)
            return -1;
        if (n == 0)
            break;

        consumed = process(conn, data, &len, &stalled);
        if (conn->state == CONN_LINGER)
            return 0;
        conn->in_stalled = stalled;
        if (data == conn->in.data)
            conn->in.len = len;
        if (keep_input(conn, data, len, consumed) < 0) {
            conn->peer_closed = true;
            break;
        }
    }
    return 0;
}

static void on_continue(struct loop *loop, struct loop_task *task)
{
    struct http_conn *conn = container_of(task, struct http_conn, continue_task);

    conn->tasks_pending--;
    conn->continue_posted = false;
    if (conn->closed) {
        conn__close(conn);
        return;
    }
    conn_run(conn);
}

/* Lets the other connections of the thread go first, then runs conn again. */
static void post_continue(struct http_conn *conn)
{
    if (conn->continue_posted)
        return;
    conn->continue_posted = true;
    conn->tasks_pending++;
    conn->continue_task.callback = on_continue;
    loop_post(conn->thread->loop, &conn->continue_task);
}

static void conn_run(struct http_conn *conn)
{
    struct server_thread *thread = conn->thread;
    unsigned passes = 0;

    if (conn->state == CONN_LINGER || conn->state == CONN_STREAMING) {
        (void)linger_read(conn);
        return;
    }

    conn->more_input = false;
    for (;;) {
        conn->out_target = conn->out.len > 0 ? &conn->out : &thread->scratch_out;

        conn->in_pass = true;
        if (pump(conn) < 0) {
            thread->scratch_out.len = 0;
            return;
        }
        conn->in_pass = false;
        if (flush(conn) < 0)
            return;

        /* The socket took all output and requests wait, so process them now. */
        if (conn->in_stalled && conn->out.len == 0 && conn->state == CONN_READING &&
            ++passes < PASSES_PER_RUN)
            continue;
        if (conn->in_stalled && conn->out.len == 0 && conn->state == CONN_READING)
            conn->more_input = true;
        break;
    }

    if (conn->more_input)
        post_continue(conn);
    settle(conn);
}

static void on_event(struct loop *loop, struct loop_watch *watch, uint32_t events)
{
    struct http_conn *conn = container_of(watch, struct http_conn, watch);
    bool drained = false;

    if (events & EPOLLERR) {
        conn__close(conn);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
        conn->readable = true;
    /*
     * The client shut down its sending side. Its last bytes may arrive in
     * the same read as the end of input, which a short read would not
     * report, so remember it here and close after the responses.
     */
    if (events & (EPOLLRDHUP | EPOLLHUP))
        conn->peer_closed = true;

    if (conn->state == CONN_DEFERRED) {
        /* Keep the readiness for when the response is written. */
        if (events & EPOLLHUP)
            conn__close(conn);
        return;
    }

    if (conn->state == CONN_STREAMING) {
        if ((events & EPOLLOUT) && conn->out.len > 0) {
            if (stream_send(conn) < 0)
                return;
            if (conn->out.len == 0 && conn->stream_ending) {
                conn__close(conn);
                return;
            }
            if (conn->out.len == 0 && conn->stream != NULL)
                conn->stream->writable(conn, conn->stream_arg);
        }
        if (conn->readable)
            (void)linger_read(conn);
        return;
    }

    if ((events & EPOLLOUT) && conn->out.len > 0) {
        conn->out_target = &conn->out;
        if (flush(conn) < 0)
            return;
        if (conn->out.len > 0)
            return;
        drained = true;
    }

    if (conn->readable || (drained && conn->in_stalled))
        conn_run(conn);
    else if (drained)
        settle(conn);
}

void conn__accepted(struct server_thread *thread, int fd, const struct sockaddr_storage *peer)
{
    struct http_conn *conn;

    conn = calloc(1, sizeof(*conn));
    if (conn == NULL) {
        (void)close(fd);
        atomic_fetch_sub_explicit(&thread->server->connections, 1, memory_order_relaxed);
        return;
    }

    conn->watch.fd = fd;
    conn->watch.callback = on_event;
    conn->thread = thread;
    conn->state = CONN_READING;
    conn->timer = CONN_TIMER_NONE;
    conn->keep_alive = true;
    conn->peer = *peer;
    conn->out_target = &conn->out;

    if (loop_watch_add(thread->loop, &conn->watch, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
        (void)close(fd);
        atomic_fetch_sub_explicit(&thread->server->connections, 1, memory_order_relaxed);
        free(conn);
        return;
    }

    conn->all_next = thread->all_conns;
    if (thread->all_conns != NULL)
        thread->all_conns->all_prev = conn;
    thread->all_conns = conn;
    thread->connections++;
    conn__timer_set(conn, CONN_TIMER_HEADER);
}
