/*
 * libFuzzer target for the incremental chunked decoder.
 *
 * Input layout: byte 0 picks the limit on the decoded size and whether the
 * piecewise run compacts; bytes 1 to 8 give the sizes of the first pieces;
 * the rest is the raw chunked body. The body is decoded twice: whole, in
 * one call, and arriving in pieces, with a call after each piece and, when
 * byte 0 asks for it, http_chunked_compact after each call that wants more
 * bytes, as the server does. Both runs must agree on the result, the
 * error, the decoded bytes and the raw length of the body. As in a server,
 * each piece grows the buffer by reallocation to exactly the bytes
 * received, so AddressSanitizer catches a read past them.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONTROL_BYTES 9

struct outcome {
    int rc;
    int status;
    const char *code;
    char *decoded; /* malloc'd copy of the decoded bytes */
    size_t decoded_len;
    size_t raw_len; /* raw bytes consumed from the body start */
};

static void fail(const char *invariant)
{
    fprintf(stderr, "fuzz_chunked: %s\n", invariant);
    abort();
}

static void check_state(const struct http_chunked *chunked, size_t len, uint64_t max_body)
{
    if (chunked->out_len > chunked->in_pos)
        fail("decoded bytes overtook the raw bytes read");
    if (chunked->in_pos > len)
        fail("the decoder read past the bytes it was given");
    if (chunked->out_len > max_body)
        fail("the decoded size passed max_body");
}

static void record(struct outcome *out, int rc, const struct http_error *err, const char *buf,
                   const struct http_chunked *chunked, size_t removed)
{
    out->rc = rc;
    out->status = rc < 0 ? err->status : 0;
    out->code = rc < 0 ? err->code : NULL;
    out->decoded_len = chunked->out_len;
    out->decoded = malloc(chunked->out_len + 1);
    if (out->decoded == NULL)
        abort();
    memcpy(out->decoded, buf, chunked->out_len);
    out->raw_len = chunked->in_pos + removed;
    if (rc < 0 && (err->status != 400 && err->status != 413))
        fail("an error status is neither 400 nor 413");
    if (rc < 0 && (err->code == NULL || err->message == NULL || err->message[0] == '\0'))
        fail("an error has no code or message");
}

static void decode_whole(const uint8_t *body, size_t len, uint64_t max_body, struct outcome *out)
{
    struct http_chunked chunked;
    struct http_error err;
    char *buf = malloc(len > 0 ? len : 1);
    int rc;

    if (buf == NULL)
        abort();
    if (len > 0)
        memcpy(buf, body, len);
    http_chunked_init(&chunked);
    rc = http_chunked_decode(&chunked, buf, len, max_body, &err);
    check_state(&chunked, len, max_body);
    record(out, rc, &err, buf, &chunked, 0);
    free(buf);
}

static void decode_pieces(const uint8_t *body, size_t len, const uint8_t *sizes, uint64_t max_body,
                          bool compact, struct outcome *out)
{
    struct http_chunked chunked;
    struct http_error err;
    char *buf = NULL;
    size_t buf_len = 0, received = 0, removed = 0, piece = 0, step;
    int rc = 0;

    http_chunked_init(&chunked);
    while (received < len || (received == 0 && len == 0)) {
        char *grown;

        /* The first pieces have the sizes from the control bytes, the rest
         * are one byte each, which is the slowest client. */
        step = piece < CONTROL_BYTES - 1 ? (size_t)sizes[piece] % 17 : 1;
        piece++;
        if (step > len - received)
            step = len - received;

        grown = malloc(buf_len + step > 0 ? buf_len + step : 1);
        if (grown == NULL)
            abort();
        if (buf_len > 0)
            memcpy(grown, buf, buf_len);
        if (step > 0)
            memcpy(grown + buf_len, body + received, step);
        free(buf);
        buf = grown;
        buf_len += step;
        received += step;

        rc = http_chunked_decode(&chunked, buf, buf_len, max_body, &err);
        check_state(&chunked, buf_len, max_body);
        if (rc != 0 || len == 0)
            break;
        if (compact) {
            size_t before = buf_len;

            buf_len = http_chunked_compact(&chunked, buf, buf_len);
            if (buf_len > before)
                fail("compaction grew the buffer");
            removed += before - buf_len;
            if (chunked.in_pos != chunked.out_len)
                fail("compaction left a gap between decoded and raw bytes");
        }
    }
    record(out, rc, &err, buf != NULL ? buf : "", &chunked, removed);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t limits[4] = {0, 16, 4096, UINT64_MAX};
    struct outcome whole, pieces;
    uint64_t max_body;
    const uint8_t *body;
    size_t len;
    bool compact;

    if (size < CONTROL_BYTES)
        return 0;
    max_body = limits[data[0] & 3];
    compact = (data[0] & 4) != 0;
    body = data + CONTROL_BYTES;
    len = size - CONTROL_BYTES;

    decode_whole(body, len, max_body, &whole);
    decode_pieces(body, len, data + 1, max_body, compact, &pieces);

    if (whole.rc != pieces.rc)
        fail("whole and piecewise decoding return different results");
    if (whole.rc < 0 && (whole.status != pieces.status || strcmp(whole.code, pieces.code) != 0))
        fail("whole and piecewise decoding report different errors");
    if (whole.rc == 1 && whole.raw_len != pieces.raw_len)
        fail("whole and piecewise decoding end the body at different bytes");
    if (whole.rc == 1 && (whole.decoded_len != pieces.decoded_len ||
                          memcmp(whole.decoded, pieces.decoded, whole.decoded_len) != 0))
        fail("whole and piecewise decoding produce different bytes");
    if (whole.rc == 0 && whole.decoded_len != pieces.decoded_len)
        fail("an incomplete body decodes to different sizes whole and piecewise");

    free(whole.decoded);
    free(pieces.decoded);
    return 0;
}
