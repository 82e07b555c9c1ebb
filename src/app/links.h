/*
 * Links as the API and the cache see them: decoding create requests,
 * encoding link objects and errors as JSON, and the compact record that the
 * cache keeps per code.
 *
 * Cache record layout (little-endian, no padding), sized to the link so that
 * a plain link costs 12 bytes beyond its URL:
 *
 *   byte 0      kind: enum link_kind
 *   byte 1      flags: which optional fields follow
 *   bytes 2-3   redirect status
 *   bytes 4-11  link id, by which visits are counted. It is 0 in a
 *               LINK_MISSING record and in the LINK_GONE record that a
 *               delete writes, and visits to either are never counted.
 *   then, in this order, each only when its flag is set:
 *     8 bytes   expires_at, Unix ms              (LINK_HAS_EXPIRY)
 *     8 bytes   max_visits                       (LINK_HAS_LIMIT)
 *     4 bytes   cache_max_age, seconds           (LINK_HAS_CACHE_MAX_AGE)
 *     8 bytes   owner_key_id                     (LINK_HAS_OWNER)
 *   then the URL, already safe for a Location header
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
    LINK_GONE = 2,    /* deleted */
    LINK_MISSING = 3, /* no link has the code */
    LINK_EXPIRED = 4, /* marked expired by the sweep */
};

#define LINK_HAS_EXPIRY        0x01
#define LINK_HAS_LIMIT         0x02
#define LINK_HAS_CACHE_MAX_AGE 0x04
#define LINK_HAS_OWNER         0x08

/* Bytes of the fixed part of a record: kind, flags, status and id. */
#define LINK_RECORD_FIXED 12

/* Largest record header: the fixed part and every optional field. */
#define LINK_RECORD_HEADER_MAX (LINK_RECORD_FIXED + 8 + 8 + 4 + 8)

struct link_record {
    enum link_kind kind;
    int redirect_status;
    int64_t id;            /* 0 in MISSING records and in the GONE records of deletes */
    int64_t expires_at;    /* ms, 0 for never */
    int64_t max_visits;    /* 0 for unlimited */
    int64_t cache_max_age; /* seconds, -1 when unset */
    int64_t owner_key_id;  /* 0 for none */
    const char *url;       /* decoded: points into the encoded record */
    size_t url_len;
};

/* Returns the bytes link_record_encode writes for record. */
size_t link_record_size(const struct link_record *record);

/* Encodes record into out (link_record_size bytes). Returns the length. */
size_t link_record_encode(const struct link_record *record, char *out);

/* Decodes an encoded record. Returns 0, or -EINVAL when it is malformed. */
int link_record_decode(const void *data, size_t len, struct link_record *record);

/* Fills a record describing a stored link (live, deleted or expired), its id included. */
void link_record_from_store(const struct store_link *link, struct link_record *record);

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
    char alias[STORE_CODE_MAX + 1]; /* "" when the request has no alias */
    size_t alias_len;
    int64_t expires_at;    /* ms, 0 when the link never expires */
    int64_t max_visits;    /* 0 when unlimited */
    int redirect_status;   /* 0 when the request did not set one */
    int64_t cache_max_age; /* seconds, -1 when the request did not set one */
};

/* Why a request body was rejected. */
struct link_error {
    int status;        /* HTTP status of the response */
    const char *code;  /* snake_case error code */
    char message[320]; /* one sentence */
};

/* Longest cache_max_age accepted, in seconds: one year. */
#define LINK_CACHE_MAX_AGE_MAX (365 * 24 * 3600)

struct url_policy;

/*
 * Decodes and validates a JSON create request body at time now (Unix ms,
 * for the expiry check). Fields: url (required), alias, expires_at,
 * max_visits, redirect_status and cache_max_age; null is the same as
 * absent. Returns 0 and fills request, -EINVAL and fills err (status 400),
 * or -ENOMEM.
 */
int link_parse_create(const char *body, size_t len, const struct url_policy *policy, int64_t now,
                      struct link_create_request *request, struct link_error *err);

struct json_t;
struct json_error_t;

/*
 * Makes jansson allocate through a wrapper that notes failures, for
 * link_json_load. Call once at start, before any thread uses jansson:
 * json_set_alloc_funcs changes process-wide state.
 */
void link_json_setup(void);

/*
 * Parses a request body, rejecting duplicate keys. Returns the value (a new
 * reference), or NULL with err filled and *out_of_memory telling a lack of
 * memory (answer 503) from invalid JSON (answer 400). Any thread; without
 * link_json_setup some allocation failures read as invalid JSON.
 */
struct json_t *link_json_load(const char *body, size_t len, struct json_error_t *err,
                              bool *out_of_memory);

/*
 * Encodes value as compact JSON, NUL-terminated and malloc'd (the caller
 * frees it). Returns NULL when value is NULL or memory ran out, never a
 * partial text. Any thread.
 */
char *link_json_dump(const struct json_t *value);

/*
 * Builds a link as the API's JSON object (a new reference). base_url
 * prefixes short_url. Returns NULL on allocation failure.
 */
struct json_t *link_to_object(const struct store_link *link, const char *base_url);

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
