/*
 * Links as the API and the cache see them: decoding create requests,
 * encoding link objects and errors as JSON, and the compact record that the
 * cache keeps per code.
 *
 * Cache record layout (little-endian, no padding):
 *
 *   byte 0      kind: LINK_LIVE, LINK_GONE (deleted) or LINK_MISSING
 *   byte 1      reserved, 0
 *   bytes 2-3   redirect status
 *   bytes 4-11  expires_at, Unix ms, 0 for never
 *   bytes 12-   the URL, already safe for a Location header
 *
 * A LINK_MISSING record is stored with a time to live, so that a code
 * created later (by another instance, for example) is found soon after.
 */
#ifndef SHORTD_APP_LINKS_H
#define SHORTD_APP_LINKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum link_kind {
    LINK_LIVE = 1,
    LINK_GONE = 2,
    LINK_MISSING = 3,
};

#define LINK_RECORD_HEADER 12

struct link_record {
    enum link_kind kind;
    int redirect_status;
    int64_t expires_at;
    const char *url; /* points into the encoded record */
    size_t url_len;
};

/*
 * Encodes a record into out (LINK_RECORD_HEADER + url_len bytes). Returns
 * the encoded length.
 */
size_t link_record_encode(enum link_kind kind, int redirect_status, int64_t expires_at,
                          const char *url, size_t url_len, char *out);

/* Decodes an encoded record. Returns 0, or -EINVAL when it is too short. */
int link_record_decode(const void *data, size_t len, struct link_record *record);

/*
 * Returns whether text[0..len) can be a code or alias: 1 to STORE_CODE_MAX
 * characters of [A-Za-z0-9_-].
 */
bool link_code_valid(const char *text, size_t len);

/*
 * Returns whether a first path segment is reserved for the server's own
 * paths (api, healthz, readyz, metrics, static), compared case-insensitively
 * so that no code looks like one of them to a human either.
 */
bool link_code_reserved(const char *text, size_t len);

/* A decoded and validated create request. */
struct link_create_request {
    char *url; /* normalised, malloc'd; the caller frees it */
    size_t url_len;
    int redirect_status; /* 0 when the request did not set one */
};

/* Why a request body was rejected. */
struct link_error {
    int status;        /* HTTP status to answer */
    const char *code;  /* snake_case error code */
    char message[320]; /* one sentence */
};

struct url_policy;

/*
 * Decodes and validates a JSON create request body. Returns 0 and fills
 * request, -EINVAL and fills err (status 400), or -ENOMEM.
 */
int link_parse_create(const char *body, size_t len, const struct url_policy *policy,
                      struct link_create_request *request, struct link_error *err);

/*
 * Encodes a link as the API's JSON object, malloc'd and NUL-terminated
 * (the caller frees it). base_url prefixes short_url. Returns NULL on
 * allocation failure.
 */
char *link_to_json(const struct store_link *link, const char *base_url, size_t *len);

/*
 * Encodes {"error": {"code": ..., "message": ...}} into a malloc'd string.
 * Returns NULL on allocation failure.
 */
char *link_error_json(const char *code, const char *message, size_t *len);

/* Writes a Unix time in ms as RFC 3339 UTC with second precision. */
void link_format_time(int64_t ms, char *out, size_t out_len);

#endif
