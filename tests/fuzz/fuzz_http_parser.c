/*
 * Fuzz target for the request parser and the chunked decoder.
 *
 * The input is the byte stream of one connection: pipelined requests with
 * Content-Length or chunked bodies. It is fed to a simulated connection
 * three ways: whole, in two pieces split at a point derived from the input,
 * and (for short inputs) one byte at a time. Every way must end with the
 * same digest of what was parsed, or the target aborts. Like a server, the
 * connection grows its receive buffer by reallocation, so each piece is read
 * from an allocation of exactly the bytes received, and AddressSanitizer
 * catches a read past them.
 *
 * Build and run from the repository root:
 *   clang -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
 *       src/net/http_parser.c tests/fuzz/fuzz_http_parser.c -o /tmp/http/fuzz
 *   /tmp/http/fuzz tests/fuzz/corpus/http_parser
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parser.h"

#define BYTEWISE_MAX 256

enum conn_state {
    CONN_HEAD,
    CONN_BODY_LENGTH,
    CONN_BODY_CHUNKED,
    CONN_CLOSED,
};

struct conn {
    const struct http_limits *limits;
    char *buf;
    size_t len;
    size_t request_start; /* offset of the current request's head */
    size_t body_start;
    enum conn_state state;
    size_t scan;
    int64_t content_length;
    bool keep_alive;
    struct http_chunked chunked;
    uint64_t digest; /* FNV-1a over everything parsed so far */
    unsigned requests;
};

static void mix(struct conn *c, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        c->digest ^= p[i];
        c->digest *= 0x100000001b3ULL;
    }
}

static void mix_number(struct conn *c, uint64_t n)
{
    mix(c, &n, sizeof(n));
}

static void check(bool condition)
{
    if (!condition)
        abort();
}

static bool inside(const struct conn *c, const char *p, size_t n, size_t start, size_t end)
{
    return p >= c->buf + start && n <= end - start && (size_t)(p - c->buf) <= end - n;
}

static void mix_error(struct conn *c, const struct http_error *err)
{
    mix_number(c, (uint64_t)err->status);
    mix(c, err->code, strlen(err->code));
    check(err->message != NULL && err->message[0] != '\0');
    c->state = CONN_CLOSED;
}

/* Records a parsed head and checks that every string points into it. */
static void mix_request(struct conn *c, const struct http_request *req)
{
    size_t head_end = c->request_start + req->head_len;

    check(req->head_len <= c->len - c->request_start);
    check(req->head_len <= c->limits->max_head);
    check(req->header_count <= c->limits->max_headers);
    check(req->version_minor <= 1);
    check(req->content_length >= -1);
    check(!(req->chunked && req->content_length >= 0));
    check(inside(c, req->method_text, req->method_len, c->request_start, head_end));
    check(inside(c, req->target, req->target_len, c->request_start, head_end));
    check(req->path_len > 0);
    check(req->path[0] == '/' || req->path[0] == '*' || req->method == HTTP_METHOD_CONNECT);

    mix_number(c, (uint64_t)req->method);
    mix(c, req->method_text, req->method_len);
    mix(c, req->target, req->target_len);
    mix(c, req->path, req->path_len);
    mix_number(c, req->query != NULL ? req->query_len : UINT64_MAX);
    mix_number(c, req->version_minor);
    mix_number(c, req->head_len);
    mix_number(c, (uint64_t)req->content_length);
    mix_number(c, (uint64_t)req->chunked << 2 | (uint64_t)req->keep_alive << 1 |
                      (uint64_t)req->expect_continue);
    for (unsigned i = 0; i < req->header_count; i++) {
        const struct http_header *h = &req->headers[i];

        check(inside(c, h->name, h->name_len, c->request_start, head_end));
        check(h->value_len == 0 || inside(c, h->value, h->value_len, c->request_start, head_end));
        mix(c, h->name, h->name_len);
        mix_number(c, h->value_len);
        mix(c, h->value, h->value_len);
    }
}

static void finish_request(struct conn *c, size_t next)
{
    c->requests++;
    c->request_start = next;
    c->scan = 0;
    c->state = c->keep_alive ? CONN_HEAD : CONN_CLOSED;
}

/* Parses as far as the bytes received allow. */
static void conn_read(struct conn *c)
{
    for (;;) {
        struct http_request req;
        struct http_error err;
        int rc;

        switch (c->state) {
        case CONN_HEAD:
            if (c->request_start == c->len)
                return;
            rc = http_parse_request(c->buf + c->request_start, c->len - c->request_start, &c->scan,
                                    c->limits, &req, &err);
            if (rc == 0)
                return;
            if (rc < 0) {
                mix_error(c, &err);
                return;
            }
            mix_request(c, &req);
            c->body_start = c->request_start + req.head_len;
            c->content_length = req.content_length;
            c->keep_alive = req.keep_alive;
            if (req.chunked) {
                http_chunked_init(&c->chunked);
                c->state = CONN_BODY_CHUNKED;
            } else {
                c->state = CONN_BODY_LENGTH;
            }
            break;

        case CONN_BODY_LENGTH: {
            size_t body_len = c->content_length > 0 ? (size_t)c->content_length : 0;

            if (body_len > c->len - c->body_start)
                return;
            mix(c, c->buf + c->body_start, body_len);
            finish_request(c, c->body_start + body_len);
            break;
        }

        case CONN_BODY_CHUNKED:
            rc = http_chunked_decode(&c->chunked, c->buf + c->body_start, c->len - c->body_start,
                                     c->limits->max_body, &err);
            check(c->chunked.out_len <= c->chunked.in_pos);
            check(c->chunked.in_pos <= c->len - c->body_start);
            check(c->chunked.out_len <= c->limits->max_body);
            if (rc == 0)
                return;
            if (rc < 0) {
                mix_error(c, &err);
                return;
            }
            mix(c, c->buf + c->body_start, c->chunked.out_len);
            finish_request(c, c->body_start + c->chunked.in_pos);
            break;

        case CONN_CLOSED:
            return;
        }
    }
}

/* Appends data[0..n) to the connection's buffer, which is reallocated to
 * exactly the bytes received so far. */
static void conn_receive(struct conn *c, const uint8_t *data, size_t n)
{
    char *grown = malloc(c->len + n + 1);

    check(grown != NULL);
    if (c->len > 0)
        memcpy(grown, c->buf, c->len);
    memcpy(grown + c->len, data, n);
    free(c->buf);
    c->buf = grown;
    c->len += n;
}

/* Feeds data in pieces that end at the offsets in ends[], the last of which
 * is the input size, and returns the final digest. */
static uint64_t run(const uint8_t *data, const struct http_limits *limits, const size_t *ends,
                    size_t end_count, unsigned *requests)
{
    struct conn c = {.limits = limits, .digest = 0xcbf29ce484222325ULL};
    size_t received = 0;

    for (size_t i = 0; i < end_count; i++) {
        conn_receive(&c, data + received, ends[i] - received);
        received = ends[i];
        conn_read(&c);
    }

    /* The final state matters too: waiting for more bytes at the same
     * point, or closed. */
    mix_number(&c, (uint64_t)c.state);
    mix_number(&c, c.request_start);
    free(c.buf);
    *requests = c.requests;
    return c.digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits so that the fuzzer reaches every limit error. */
    static const struct http_limits limit_sets[] = {
        {.max_request_line = 8192, .max_head = 16384, .max_headers = 64, .max_body = 1 << 20},
        {.max_request_line = 64, .max_head = 256, .max_headers = 4, .max_body = 32},
    };
    const struct http_limits *limits;
    size_t whole_end[1] = {size};
    size_t split_ends[2];
    unsigned requests_whole;
    unsigned requests_other;
    uint64_t whole;

    if (size == 0)
        return 0;
    limits = &limit_sets[data[size - 1] & 1];

    whole = run(data, limits, whole_end, 1, &requests_whole);

    split_ends[0] = ((size_t)data[0] * 251 + (size_t)data[size / 2] * 7) % (size + 1);
    split_ends[1] = size;
    if (run(data, limits, split_ends, 2, &requests_other) != whole ||
        requests_other != requests_whole)
        abort();

    if (size <= BYTEWISE_MAX) {
        size_t ends[BYTEWISE_MAX];

        for (size_t i = 0; i < size; i++)
            ends[i] = i + 1;
        if (run(data, limits, ends, size, &requests_other) != whole ||
            requests_other != requests_whole)
            abort();
    }
    return 0;
}
