/*
 * Structures shared by server.c (threads, listeners, timeouts, shutdown) and
 * conn.c (one connection's reads, parsing and responses). Not for callers of
 * server.h.
 */
#ifndef SHORTD_NET_SERVER_INTERNAL_H
#define SHORTD_NET_SERVER_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core/container_of.h"
#include "net/server.h"

/* A growable byte buffer. data is NULL while cap is 0. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

/* The timeout lists. A connection is in at most one. */
enum conn_timer {
    CONN_TIMER_NONE = -1,
    CONN_TIMER_HEADER = 0,
    CONN_TIMER_BODY,
    CONN_TIMER_IDLE,
    CONN_TIMER_WRITE,
    CONN_TIMER_LINGER,
    CONN_TIMER_STREAM, /* streaming with nothing pending: never expires */
    CONN_TIMER_COUNT
};

/*
 * Connection states:
 *
 *   READING  --handler defers-->        DEFERRED --task ran--> READING
 *   READING  --error response sent-->   LINGER (half-closed, discarding input)
 *   READING  --http_conn_stream_start-> STREAMING (discarding input)
 *   any      --conn__close-->           closed, and freed once no posted task
 *                                       of the connection is pending
 *
 * While READING the connection may be waiting for a head, for a body or for
 * the client to read output. The timeout list it is in shows which.
 */
enum conn_state {
    CONN_READING,
    CONN_DEFERRED,
    CONN_LINGER,
    CONN_STREAMING,
};

struct server_thread;

struct http_conn {
    struct loop_watch watch;
    struct server_thread *thread;
    enum conn_state state;

    /* Links in the thread's list of every open connection, for shutdown. */
    struct http_conn *all_prev, *all_next;

    /* Timeout list links. deadline is loop time in ms. */
    struct http_conn *timer_prev, *timer_next;
    enum conn_timer timer;
    uint64_t deadline;

    bool readable;        /* the kernel reported input we have not read yet */
    bool peer_closed;     /* the client shut down its side or reset */
    bool closed;          /* fd closed, freed once no deferred task is pending */
    bool keep_alive;      /* persist after the current response */
    bool responding;      /* between http_conn_begin and http_conn_end */
    bool sent_continue;   /* 100 Continue written for the current request */
    bool draining;        /* the server is shutting down */
    bool http10;          /* the current request is HTTP/1.0 */
    bool served;          /* at least one request got a response */
    bool close_sent;      /* a response carried Connection: close */
    bool in_stalled;      /* in holds requests not processed for lack of room
                             or because a response is deferred */
    enum http_method method; /* of the current request */
    int status;              /* of the response being written */
    uint8_t tag;             /* set by the handler, for on_response */
    uint64_t start_ns;       /* when the current request's head was complete */

    /* Input the connection owns: the start of a request not yet complete. */
    struct buf in;
    size_t parse_scan; /* http_parse_request cursor for the request at in.data */

    /* Body framing of the request whose head is complete but body is not. */
    size_t head_len;      /* 0 while no head is complete */
    uint64_t body_need;   /* Content-Length, for a length-framed body */
    bool body_chunked;
    struct http_chunked chunked;

    /* Output the socket has not taken yet. */
    struct buf out;
    /* Current destination of responses: &out, or the thread's scratch output. */
    struct buf *out_target;

    struct loop_task resume;   /* posted by http_conn_post */
    struct loop_task *deferred_task; /* the handler's task to run on resume */
    struct loop_task close_task;     /* posted when a stream write fails */
    struct loop_task continue_task;  /* posted when a turn ended with work left */
    bool continue_posted;            /* continue_task is pending */
    bool more_input;                 /* the turn ended before the input did */
    unsigned tasks_pending;          /* posted tasks that point at the connection */
    bool close_posted;               /* close_task is pending */
    bool in_pass;                    /* conn_run or on_resume is running */
    bool stream_ending;              /* close once queued stream output is sent */

    const struct http_stream_handler *stream; /* set while STREAMING */
    void *stream_arg;

    struct sockaddr_storage peer;
};

struct server_thread {
    struct server *server;
    unsigned index;
    pthread_t thread;
    bool started;
    struct loop *loop;

    struct loop_watch listener;
    bool listening;
    struct loop_timer sweep;    /* timeouts, every 250 ms */
    struct loop_timer accept_retry; /* after accept failed for lack of fds */
    struct loop_timer grace;    /* end of the shutdown grace period */
    struct loop_task shutdown;  /* posted by server_shutdown */
    bool shutting_down;

    struct http_conn *all_conns; /* every connection not yet freed */
    struct http_conn *timer_head[CONN_TIMER_COUNT];
    struct http_conn *timer_tail[CONN_TIMER_COUNT];
    unsigned connections; /* open on this thread, deferred ones included */

    /* Scratch space reused by every connection of the thread. */
    struct buf scratch_in;
    struct buf scratch_out;
    struct http_request request;

    /* "Date: ...\r\n" for the current second. */
    char date_line[64];
    size_t date_len;
    int64_t date_second;
};

struct server {
    struct server_config config;
    char host[256];
    char port[16];
    uint16_t bound_port;
    struct server_thread *threads;
    _Atomic unsigned connections; /* relaxed: a count, orders nothing */
    uint32_t grace_ms;
    uint32_t timeout_ms[CONN_TIMER_COUNT];
};

/* Thread of a connection's loop: the scratch buffers belong to it. */
void conn__accepted(struct server_thread *thread, int fd, const struct sockaddr_storage *peer);
void conn__close(struct http_conn *conn);
void conn__timer_set(struct http_conn *conn, enum conn_timer timer);
void conn__timed_out(struct http_conn *conn);
void conn__start_draining(struct http_conn *conn);

/* Grows buf to hold at least `need` more bytes. Returns 0 or -ENOMEM. */
int buf__reserve(struct buf *buf, size_t need);
void buf__free(struct buf *buf);

#endif
