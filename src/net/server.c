/*
 * Server threads, listeners, the connection limit, timeouts and shutdown.
 * Per-connection work is in conn.c.
 *
 * Each I/O thread binds its own listening socket to the same address with
 * SO_REUSEPORT. The first listener is bound before the others so that a
 * request for port 0 gives every thread the same kernel-chosen port.
 *
 * The connection limit is one atomic counter over all threads. A thread
 * that accepts past the limit writes a short 503 response and closes, which
 * tells the client why and frees the descriptor at once.
 *
 * Shutdown: server_shutdown posts a task to every loop. Each loop closes its
 * listener, closes its idle connections, marks the rest to close after their
 * current response, and stops once its last connection is gone. A grace
 * timer closes whatever is still open when it ends, except connections
 * waiting for a deferred response, which close as soon as it is written.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/server_internal.h"

#define SWEEP_INTERVAL_MS   250
#define ACCEPT_RETRY_MS     100
#define LISTEN_BACKLOG      4096
#define LINGER_TIMEOUT_MS   2000
#define SCRATCH_INPUT_BYTES (64 * 1024)

static const char overload_response[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n"
    "Content-Length: 96\r\n"
    "\r\n"
    "{\"error\":{\"code\":\"too_many_connections\",\"message\":\"The server has too many open "
    "connections.\"}}\n";

static void report(struct server *server, const char *operation, int err)
{
    if (server->config.on_error != NULL)
        server->config.on_error(server->config.context, operation, err);
}

/* Opens, binds and listens on one socket for address ai. */
static int open_listener(const struct addrinfo *ai, int *fd_out)
{
    int fd, one = 1, err;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        err = -errno;
        (void)close(fd);
        return err;
    }

    *fd_out = fd;
    return 0;
}

/*
 * Fails with -EADDRINUSE when another socket holds the address. Listeners
 * use SO_REUSEPORT, which would let a second shortd (or anything else with
 * that option) share the port silently; a probe bound without the option
 * detects that.
 */
static int probe_address(const struct addrinfo *ai)
{
    int fd, one = 1, err = 0;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        err = -errno;
    (void)close(fd);
    return err;
}

static int resolve(const char *host, const char *port, struct addrinfo **result)
{
    struct addrinfo hints;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    return getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, result);
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- accepting ---- */

static void accept_ready(struct loop *loop, struct loop_watch *watch, uint32_t events);

static void accept_retry(struct loop *loop, struct loop_timer *timer)
{
    struct server_thread *thread =
        container_of(timer, struct server_thread, accept_retry);

    if (thread->listening)
        accept_ready(loop, &thread->listener, EPOLLIN);
}

static void accept_ready(struct loop *loop, struct loop_watch *watch, uint32_t events)
{
    struct server_thread *thread =
        container_of(watch, struct server_thread, listener);
    struct server *server = thread->server;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned open;
    int fd, one = 1;

    /* Edge-triggered: accept until the backlog is empty. */
    while (thread->listening) {
        peer_len = sizeof(peer);
        fd = accept4(watch->fd, (struct sockaddr *)&peer, &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            switch (errno) {
            case EAGAIN:
            case ECONNABORTED:
            case EINTR:
                if (errno == EAGAIN)
                    return;
                continue;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                /*
                 * Out of descriptors or memory. The pending connections stay
                 * in the backlog; retrying on a timer, not in a loop, keeps
                 * the thread from spinning until something is freed.
                 */
                report(server, "accept", -errno);
                loop_timer_start(loop, &thread->accept_retry, ACCEPT_RETRY_MS, 0, accept_retry);
                return;
            default:
                report(server, "accept", -errno);
                return;
            }
        }

        open = atomic_fetch_add_explicit(&server->connections, 1, memory_order_relaxed);
        if (open >= server->config.max_connections) {
            atomic_fetch_sub_explicit(&server->connections, 1, memory_order_relaxed);
            (void)send(fd, overload_response, sizeof(overload_response) - 1,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)close(fd);
            continue;
        }

        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn__accepted(thread, fd, &peer);
    }
}

/* ---- timeouts ---- */

static void sweep(struct loop *loop, struct loop_timer *timer)
{
    struct server_thread *thread =
        container_of(timer, struct server_thread, sweep);
    uint64_t now = loop_now(loop);
    struct http_conn *conn;
    int t;

    for (t = 0; t < CONN_TIMER_COUNT; t++) {
        while ((conn = thread->timer_head[t]) != NULL && conn->deadline <= now)
            conn__timed_out(conn);
    }
}

/* ---- shutdown ---- */

static void close_listener(struct server_thread *thread)
{
    if (!thread->listening)
        return;

    (void)loop_watch_remove(thread->loop, &thread->listener);
    (void)close(thread->listener.fd);
    thread->listener.fd = -1;
    thread->listening = false;
    loop_timer_stop(thread->loop, &thread->accept_retry);
}

/*
 * Calls fn on every connection of the thread. fn may close and free the
 * connection it is given, but no other.
 */
static void for_each_conn(struct server_thread *thread, void (*fn)(struct http_conn *conn))
{
    struct http_conn *conn, *next;

    for (conn = thread->all_conns; conn != NULL; conn = next) {
        next = conn->all_next;
        fn(conn);
    }
}

/* Closes a connection at the end of the grace period, unless it waits for a
 * deferred response: that one closes as soon as the response is sent. */
static void close_unless_deferred(struct http_conn *conn)
{
    if (conn->state != CONN_DEFERRED && !conn->closed)
        conn__close(conn);
}

static void grace_ended(struct loop *loop, struct loop_timer *timer)
{
    struct server_thread *thread =
        container_of(timer, struct server_thread, grace);

    for_each_conn(thread, close_unless_deferred);
    if (thread->connections == 0)
        loop_stop(loop);
}

static void begin_shutdown(struct loop *loop, struct loop_task *task)
{
    struct server_thread *thread =
        container_of(task, struct server_thread, shutdown);
    thread->shutting_down = true;
    close_listener(thread);
    for_each_conn(thread, conn__start_draining);

    if (thread->connections == 0) {
        loop_stop(loop);
        return;
    }
    loop_timer_start(loop, &thread->grace, thread->server->grace_ms, 0, grace_ended);
}

/* ---- threads ---- */

static void *thread_main(void *arg)
{
    struct server_thread *thread = arg;
    sigset_t all;

    /* Signals go to the main thread, which owns shutdown. */
    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_BLOCK, &all, NULL);

    loop_timer_start(thread->loop, &thread->sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS, sweep);
    if (loop_run(thread->loop) < 0)
        report(thread->server, "epoll_wait", -errno);

    /* Tasks posted after the last iteration free what they own. */
    loop_run_posted(thread->loop);

    close_listener(thread);
    return NULL;
}

int server_create(const struct server_config *config, struct server **out, char *error,
                  size_t error_len)
{
    struct addrinfo *ai = NULL;
    struct server *server;
    struct server_thread *thread;
    char port[16];
    unsigned i;
    int err, gai;

    if (config->threads == 0 || config->max_connections == 0 || config->handler == NULL) {
        snprintf(error, error_len, "invalid server configuration");
        return -EINVAL;
    }

    server = calloc(1, sizeof(*server));
    if (server == NULL)
        return -ENOMEM;
    server->config = *config;
    snprintf(server->host, sizeof(server->host), "%s", config->host);
    snprintf(server->port, sizeof(server->port), "%s", config->port);
    server->config.host = server->host;
    server->config.port = server->port;
    atomic_init(&server->connections, 0);

    server->timeout_ms[CONN_TIMER_HEADER] = config->header_timeout_ms;
    server->timeout_ms[CONN_TIMER_BODY] = config->body_timeout_ms;
    server->timeout_ms[CONN_TIMER_IDLE] = config->idle_timeout_ms;
    server->timeout_ms[CONN_TIMER_WRITE] = config->write_timeout_ms;
    server->timeout_ms[CONN_TIMER_LINGER] = LINGER_TIMEOUT_MS;
    server->timeout_ms[CONN_TIMER_STREAM] = UINT32_MAX;

    server->threads = calloc(config->threads, sizeof(*server->threads));
    if (server->threads == NULL) {
        free(server);
        return -ENOMEM;
    }
    for (i = 0; i < config->threads; i++)
        server->threads[i].listener.fd = -1;

    for (i = 0; i < config->threads; i++) {
        thread = &server->threads[i];
        thread->server = server;
        thread->index = i;

        err = loop_create(&thread->loop);
        if (err < 0) {
            snprintf(error, error_len, "cannot create event loop: %s", strerror(-err));
            goto fail;
        }
        if (buf__reserve(&thread->scratch_in, SCRATCH_INPUT_BYTES) < 0 ||
            buf__reserve(&thread->scratch_out, SCRATCH_INPUT_BYTES) < 0) {
            err = -ENOMEM;
            snprintf(error, error_len, "cannot allocate buffers");
            goto fail;
        }

        /* Every thread after the first binds the port the first one got. */
        snprintf(port, sizeof(port), "%s", i == 0 ? server->port : "");
        if (i > 0)
            snprintf(port, sizeof(port), "%u", (unsigned)server->bound_port);

        if (ai != NULL)
            freeaddrinfo(ai);
        ai = NULL;
        gai = resolve(server->host, port, &ai);
        if (gai != 0) {
            err = -EINVAL;
            snprintf(error, error_len, "cannot resolve listen address %s:%s: %s", server->host,
                     server->port, gai_strerror(gai));
            goto fail;
        }

        err = 0;
        if (i == 0 && strcmp(server->port, "0") != 0)
            err = probe_address(ai);
        if (err == 0)
            err = open_listener(ai, &thread->listener.fd);
        if (err < 0) {
            snprintf(error, error_len, "cannot listen on %s:%s: %s", server->host, server->port,
                     strerror(-err));
            goto fail;
        }
        if (i == 0)
            server->bound_port = bound_port(thread->listener.fd);

        thread->listener.callback = accept_ready;
        err = loop_watch_add(thread->loop, &thread->listener, EPOLLIN);
        if (err < 0) {
            snprintf(error, error_len, "cannot watch listener: %s", strerror(-err));
            goto fail;
        }
        thread->listening = true;
        thread->shutdown.callback = begin_shutdown;
    }

    freeaddrinfo(ai);
    *out = server;
    return 0;

fail:
    if (ai != NULL)
        freeaddrinfo(ai);
    server_destroy(server);
    return err;
}

int server_start(struct server *server)
{
    struct server_thread *thread;
    unsigned i;
    int err;

    for (i = 0; i < server->config.threads; i++) {
        thread = &server->threads[i];
        err = pthread_create(&thread->thread, NULL, thread_main, thread);
        if (err != 0)
            return -err;
        thread->started = true;
    }
    return 0;
}

uint16_t server_port(const struct server *server)
{
    return server->bound_port;
}

unsigned server_connection_count(const struct server *server)
{
    return atomic_load_explicit(&server->connections, memory_order_relaxed);
}

void server_shutdown(struct server *server, uint32_t grace_ms)
{
    struct server_thread *thread;
    unsigned i;

    server->grace_ms = grace_ms;
    for (i = 0; i < server->config.threads; i++) {
        thread = &server->threads[i];
        if (thread->started)
            loop_post(thread->loop, &thread->shutdown);
    }

    for (i = 0; i < server->config.threads; i++) {
        thread = &server->threads[i];
        if (thread->started) {
            (void)pthread_join(thread->thread, NULL);
            thread->started = false;
        }
    }
}

void server_destroy(struct server *server)
{
    struct server_thread *thread;
    unsigned i;

    if (server == NULL)
        return;

    for (i = 0; i < server->config.threads; i++) {
        thread = &server->threads[i];
        if (thread->listening)
            close_listener(thread);
        else if (thread->listener.fd >= 0)
            (void)close(thread->listener.fd);
        loop_destroy(thread->loop);
        buf__free(&thread->scratch_in);
        buf__free(&thread->scratch_out);
    }
    free(server->threads);
    free(server);
}
