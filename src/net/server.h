/*
 * HTTP/1.1 server: listeners, connections, request framing and responses.
 *
 * The server runs `threads` I/O threads, each with its own event loop and
 * its own SO_REUSEPORT listener, so the kernel spreads connections over the
 * threads and a connection stays on the thread that accepted it. Requests
 * are parsed by http_parser.c and handed to one handler function; the
 * handler responds on the spot with the http_conn_* response functions, or
 * defers the response and finishes it later from the connection's loop (see
 * http_conn_defer).
 *
 * Connections persist (keep-alive) and may pipeline: the server responds to
 * requests in order, handles every complete request found in a read, and
 * writes all their responses with one send. It stops reading from a
 * connection while a response is deferred or while more than a high-water
 * mark of output waits for the client, so a client that does not read its
 * responses cannot make the server buffer without limit.
 *
 * Memory: a connection owns no buffer while it has no partial request and no
 * unsent output. Reads go into a per-thread scratch buffer and responses are
 * built in a per-thread output buffer; only leftovers (the start of a
 * request, output the socket did not take) are copied into buffers the
 * connection owns. The redirect path therefore allocates nothing.
 *
 * Timeouts: header (first byte to end of head), body, idle (between
 * requests on a persistent connection), write (output waiting without
 * progress) and linger (draining a client after an error response).
 * Connections sit in one list per timeout kind, ordered by deadline because
 * every entry of a list has the same timeout; a sweep every 250 ms closes
 * the expired ones.
 */
#ifndef SHORTD_NET_SERVER_H
#define SHORTD_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/http_parser.h"
#include "net/loop.h"

struct server;
struct http_conn;

/*
 * Handles one request. body is the request body (chunked bodies already
 * decoded), writable, valid only during the call; req's strings likewise.
 * The handler must either write a complete response (http_conn_begin ...
 * http_conn_end) or call http_conn_defer before returning.
 */
typedef void (*server_handler_fn)(void *context, struct http_conn *conn,
                                  const struct http_request *req, char *body, size_t body_len);

/*
 * Called on an I/O thread when the server meets an error it handles by
 * itself (accept failures, for example): operation names what failed and
 * err is a negative errno. The callback decides whether to log.
 */
typedef void (*server_error_fn)(void *context, const char *operation, int err);

/*
 * Called on an I/O thread when a response is complete (for a streaming
 * response, when its headers are), with the I/O thread's index, the tag the
 * handler set with http_conn_set_tag (0 when none), the status and the time
 * since the request head was complete, in nanoseconds.
 */
typedef void (*server_response_fn)(void *context, unsigned thread, unsigned tag, int status,
                                   uint64_t duration_ns);

struct server_config {
    const char *host; /* numeric address or name to listen on */
    const char *port; /* service, "0" picks a free port */
    unsigned threads;
    unsigned max_connections; /* all threads together */
    struct http_limits limits;
    uint32_t header_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t write_timeout_ms;
    server_handler_fn handler;
    server_error_fn on_error; /* optional */
    server_response_fn on_response; /* optional */
    void *context;            /* passed to handler and on_error */
};

/*
 * Creates the server and binds its listeners, so that a busy port is
 * reported before anything starts. Returns 0, or a negative errno with a
 * sentence in error.
 */
int server_create(const struct server_config *config, struct server **server, char *error,
                  size_t error_len);

/* Starts the I/O threads. Returns 0 or a negative errno. */
int server_start(struct server *server);

/* Returns the bound port, useful when the configuration asked for port 0. */
uint16_t server_port(const struct server *server);

/* Returns the number of open client connections over all threads. */
unsigned server_connection_count(const struct server *server);

/*
 * Stops gracefully: closes the listeners, closes idle connections, lets
 * requests in progress finish and closes each connection after its current
 * response. After grace_ms, closes the rest, except connections waiting for
 * a deferred response, which close as soon as it is written. Returns when every
 * I/O thread has exited. Called once, from a thread that is not an I/O
 * thread.
 */
void server_shutdown(struct server *server, uint32_t grace_ms);

/* Frees a server that is shut down or was never started. */
void server_destroy(struct server *server);

/*
 * Response functions. They may only be called on the connection's own loop
 * thread: inside the handler, or inside a task posted with http_conn_post.
 * A response is http_conn_begin, any number of headers, then http_conn_end.
 */

/*
 * Starts a response with its status line and the Date and Server headers.
 * Do not add Content-Length, Connection or Date: http_conn_end does.
 */
void http_conn_begin(struct http_conn *conn, int status);

/* Adds "name: value". The value must already be safe for a header. */
void http_conn_header(struct http_conn *conn, const char *name, const char *value,
                      size_t value_len);

/* Adds a header whose value is printf-formatted. */
void http_conn_headerf(struct http_conn *conn, const char *name, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Finishes the response: Content-Type (when content_type is not NULL),
 * Content-Length, Connection when the connection will close, the blank line
 * and the body (omitted for HEAD requests, which keep the Content-Length the
 * GET would have had).
 */
void http_conn_end(struct http_conn *conn, const char *content_type, const void *body,
                   size_t body_len);

/* Labels the current request for on_response, such as a route number. */
void http_conn_set_tag(struct http_conn *conn, unsigned tag);

/* Makes the connection close after the current response. */
void http_conn_close_after(struct http_conn *conn);

/* Returns the address of the client's end of the connection. */
const struct sockaddr *http_conn_peer(const struct http_conn *conn);

/* Returns the loop of the connection, for loop_now() and posting. */
struct loop *http_conn_loop(const struct http_conn *conn);

/* Returns the index of the connection's I/O thread, 0 to threads - 1. */
unsigned http_conn_thread_index(const struct http_conn *conn);

/*
 * Deferred responses. The handler calls http_conn_defer and returns; the
 * server then reads no further requests from the connection. Later, any
 * thread calls http_conn_post with a task; its callback runs on the
 * connection's loop, must write the complete response, and then returns.
 * The connection stays allocated until the task has run, even if the client
 * disconnects meanwhile, so the pointer stays valid. Exactly one
 * http_conn_post per http_conn_defer.
 */
void http_conn_defer(struct http_conn *conn);
void http_conn_post(struct http_conn *conn, struct loop_task *task);

/*
 * Called by a task's callback, before writing, to learn whether the client
 * is still there. Writing to a gone client is harmless but wasted.
 */
bool http_conn_is_open(const struct http_conn *conn);

/*
 * Streaming responses, for server-sent events. The handler writes the status
 * line and headers with http_conn_begin and http_conn_header, then calls
 * http_conn_stream_start instead of http_conn_end. The response has no
 * length: its body ends when the connection closes, so the server reads no
 * further requests from the connection and discards what the client sends.
 * Writes may come from the handler or later from tasks on the connection's
 * loop. The connection has no idle timeout while it streams; the write
 * timeout still closes it when the client stops reading.
 */
struct http_stream_handler {
    /* Called when unsent output fell to zero after having been pending. */
    void (*writable)(struct http_conn *conn, void *arg);
    /*
     * Called once when the connection closes for any reason (the client
     * left, a write failed, a timeout, server shutdown, http_conn_stream_end).
     * After it returns the connection pointer is invalid.
     */
    void (*closed)(struct http_conn *conn, void *arg);
};

/* Ends the header section and switches the connection to streaming. */
void http_conn_stream_start(struct http_conn *conn, const char *content_type,
                            const struct http_stream_handler *handler, void *arg);

/*
 * Queues data on a streaming connection and sends what the socket takes.
 * Returns 0, or -EPIPE when the connection is closing (the data is dropped;
 * closed() follows from the loop, never from inside this call).
 */
int http_conn_stream_write(struct http_conn *conn, const void *data, size_t len);

/* Returns the bytes queued on the connection that the socket has not taken. */
size_t http_conn_stream_pending(const struct http_conn *conn);

/*
 * Returns the bytes in the kernel's send queue that the client has not
 * acknowledged, to tell a client that stopped reading. One system call.
 */
size_t http_conn_stream_unacked(const struct http_conn *conn);

/* Closes a streaming connection after its queued output is sent. */
void http_conn_stream_end(struct http_conn *conn);

/* Returns the method of the current request (for HEAD handling). */
enum http_method http_conn_method(const struct http_conn *conn);

/* Returns the text of a status code's reason phrase ("Not Found"). */
const char *http_status_reason(int status);

#endif
