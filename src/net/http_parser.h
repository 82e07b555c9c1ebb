/*
 * Strict HTTP/1.1 request parser (RFC 9112) for untrusted clients.
 *
 * The parser reads the request head (request line and header section) from a
 * buffer without copying: the request's strings point into that buffer. It
 * rejects every form that lets two parsers disagree about where a request
 * ends (request smuggling): Content-Length together with Transfer-Encoding,
 * duplicate or malformed Content-Length, a transfer coding other than
 * chunked, obs-fold, whitespace before a colon, bare CR, bare LF and NUL.
 *
 * A head arrives in pieces, so the caller calls http_parse_request again on
 * the same growing buffer. The `scan` cursor makes the total work linear in
 * the bytes received, which matters for clients that trickle one byte at a
 * time. Limits are reported as soon as they are exceeded, before the head is
 * complete.
 *
 * Chunked bodies are decoded in place by struct http_chunked, which also
 * works incrementally.
 *
 * No function allocates memory or keeps global state; all are thread-safe.
 */
#ifndef SHORTD_NET_HTTP_PARSER_H
#define SHORTD_NET_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most header fields a request may have; struct http_limits may lower it. */
#define HTTP_MAX_HEADERS 64

enum http_method {
    HTTP_METHOD_OTHER = 0, /* a valid token that shortd does not serve */
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_PATCH,
    HTTP_METHOD_OPTIONS,
    HTTP_METHOD_TRACE,
    HTTP_METHOD_CONNECT,
};

struct http_header {
    const char *name; /* as sent; compare case-insensitively */
    size_t name_len;
    const char *value; /* without leading and trailing whitespace */
    size_t value_len;
};

struct http_limits {
    size_t max_request_line; /* bytes, with CRLF; a longer line gets 414 */
    size_t max_head;         /* bytes of request line and headers; 431 */
    unsigned max_headers;    /* header fields, at most HTTP_MAX_HEADERS; 431 */
    uint64_t max_body;       /* bytes of body, after chunked decoding; 413 */
};

struct http_request {
    enum http_method method;
    const char *method_text;
    size_t method_len;

    /* The request target as sent, and its path and query parts. For the
     * absolute form (http://host/path?q) path and query come from the URL,
     * and path is a static "/" when the URL has no path. For CONNECT, whose
     * target is host:port, path is the whole target and query is NULL. */
    const char *target;
    size_t target_len;
    const char *path; /* starts with '/', or is "*" for OPTIONS * */
    size_t path_len;
    const char *query; /* after '?', NULL when the target has no '?' */
    size_t query_len;

    unsigned version_minor; /* 0 or 1: HTTP/1.0 or HTTP/1.1 */

    struct http_header headers[HTTP_MAX_HEADERS];
    unsigned header_count;

    size_t head_len;        /* bytes from the buffer start through the blank line */
    int64_t content_length; /* -1 when the request has no Content-Length */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* whether the connection persists after this request */
    bool expect_continue;   /* Expect: 100-continue */
};

/* Why a request was rejected: the status to send and a stable reason. */
struct http_error {
    int status;          /* 400, 413, 414, 417, 431, 501 or 505 */
    const char *code;    /* snake_case, such as "invalid_header" */
    const char *message; /* one English sentence for the client */
};

/*
 * Parses the request head at the start of buf[0..len).
 *
 * *scan is the parser's cursor: set it to 0 before the first call for a
 * request and pass the same variable on each later call with the same
 * buffer start and more bytes. Its value is private to the parser. Returns
 * 1 when the head is complete (req is filled and the body starts at
 * req->head_len), 0 when more bytes are needed, or -1 when the request is
 * invalid (err is filled; the caller should answer err->status and close the
 * connection). req may be partly written on -1, so use it only after 1.
 * Whether and why a request is rejected depends only on its bytes, never on
 * how they were split across calls.
 */
int http_parse_request(const char *buf, size_t len, size_t *scan, const struct http_limits *limits,
                       struct http_request *req, struct http_error *err);

/*
 * Returns the first header named name (case-insensitive) or NULL.
 */
const struct http_header *http_find_header(const struct http_request *req, const char *name,
                                           size_t name_len);

/* Returns the last header named name (case-insensitive) or NULL. */
const struct http_header *http_find_last_header(const struct http_request *req, const char *name,
                                                size_t name_len);

/*
 * Incremental in-place decoder of a chunked body. Initialise with
 * http_chunked_init for each body; the fields are read-only for callers.
 */
struct http_chunked {
    int state;
    uint64_t chunk_left; /* data bytes left in the current chunk */
    size_t in_pos;       /* raw bytes consumed from the body start */
    size_t out_len;      /* decoded bytes stored at the body start */
    size_t line_len;     /* bytes of the current size line */
    size_t trailer_len;  /* bytes of the trailer section so far */
};

void http_chunked_init(struct http_chunked *chunked);

/*
 * Decodes the chunked body in buf[0..len), where buf is the first byte after
 * the head. Decoded data is moved to buf[0..out_len), which never passes the
 * raw bytes still to be read, so one buffer serves both. Call again with the
 * same buffer and a larger len when more bytes arrive. Returns 1 when the
 * last chunk and trailer section are complete (in_pos is then the body's raw
 * length, so the next request starts at buf + in_pos), 0 when more bytes are
 * needed, or -1 with err filled (400 for bad framing, 413 when the decoded
 * size passes max_body).
 */
int http_chunked_decode(struct http_chunked *chunked, char *buf, size_t len, uint64_t max_body,
                        struct http_error *err);

/*
 * Moves the raw bytes not decoded yet, buf[in_pos..len), down to just after
 * the decoded ones, so a body sent in many small chunks takes no more buffer
 * than its decoded size plus its unread tail. Returns the new length of buf;
 * decoding continues with it as if nothing had moved.
 */
size_t http_chunked_compact(struct http_chunked *chunked, char *buf, size_t len);

#endif
