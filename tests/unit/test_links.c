/*
 * Tests of app/links: the cache record encoding, code validation, decoding
 * of create requests (with the real url.c behind it) and the JSON of links
 * and errors, which the tests parse back with jansson.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/links.h"
#include "app/url.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define assert_contains(text, part)                                                                \
    do {                                                                                           \
        if (strstr((text), (part)) == NULL)                                                        \
            fail_msg("\"%s\" does not contain \"%s\"", (text), (part));                            \
    } while (0)

static const char *const web_schemes[] = {"http", "https"};

/* The time create requests are parsed at: 2026-12-04T20:22:23Z. */
#define NOW_MS INT64_C(1796415743000)

static const struct url_policy policy = {
    .schemes = web_schemes,
    .scheme_count = 2,
    .max_length = 100,
    .own_host = "sho.rt",
};

static void record_round_trips_every_field(void **state)
{
    const enum link_kind kinds[] = {LINK_LIVE, LINK_GONE, LINK_MISSING, LINK_EXPIRED};
    const int statuses[] = {0, 301, 302, 307, 308, 65535};
    const int64_t ids[] = {0, 1, 0x0102030405060708, INT64_MAX};
    const int64_t expiries[] = {0, 1, -1, 1700000000000, INT64_MAX, INT64_MIN, -1700000000000};
    const int64_t limits[] = {0, 1, 5, INT64_MAX};
    const int64_t ages[] = {-1, 0, 3600, LINK_CACHE_MAX_AGE_MAX};
    const int64_t owners[] = {0, 1, INT64_MAX};
    const struct {
        const char *bytes;
        size_t len;
    } urls[] = {
        {"", 0},
        {"https://example.com/a?b=c#d", 27},
        {"x\0y\xff", 4},
    };
    char buffer[LINK_RECORD_HEADER_MAX + 64];
    struct link_record in, out;
    size_t k, s, i, e, m, a, o, u, len;

    for (k = 0; k < ARRAY_SIZE(kinds); k++)
    for (s = 0; s < ARRAY_SIZE(statuses); s++)
    for (i = 0; i < ARRAY_SIZE(ids); i++)
    for (e = 0; e < ARRAY_SIZE(expiries); e++)
    for (m = 0; m < ARRAY_SIZE(limits); m++)
    for (a = 0; a < ARRAY_SIZE(ages); a++)
    for (o = 0; o < ARRAY_SIZE(owners); o++)
    for (u = 0; u < ARRAY_SIZE(urls); u++) {
        in.kind = kinds[k];
        in.redirect_status = statuses[s];
        in.id = ids[i];
        in.expires_at = expiries[e];
        in.max_visits = limits[m];
        in.cache_max_age = ages[a];
        in.owner_key_id = owners[o];
        in.url = urls[u].bytes;
        in.url_len = urls[u].len;

        memset(buffer, 0xee, sizeof(buffer));
        len = link_record_encode(&in, buffer);
        assert_int_equal(len, link_record_size(&in));
        assert_true(len <= LINK_RECORD_HEADER_MAX + urls[u].len);
        assert_int_equal((unsigned char)buffer[len], 0xee); /* no byte past the record */

        memset(&out, 0, sizeof(out));
        assert_int_equal(link_record_decode(buffer, len, &out), 0);
        assert_int_equal(out.kind, kinds[k]);
        assert_int_equal(out.redirect_status, statuses[s]);
        assert_int_equal(out.id, ids[i]);
        assert_int_equal(out.expires_at, expiries[e]);
        assert_int_equal(out.max_visits, limits[m]);
        assert_int_equal(out.cache_max_age, ages[a]);
        assert_int_equal(out.owner_key_id, owners[o]);
        assert_int_equal(out.url_len, urls[u].len);
        assert_ptr_equal(out.url, buffer + len - urls[u].len);
        assert_memory_equal(out.url, urls[u].bytes, urls[u].len);
    }
}

static void record_of_plain_link_costs_twelve_bytes(void **state)
{
    const unsigned char expected[] = {
        LINK_LIVE, 0, 0x34, 0x01,                       /* 308 */
        0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* id 42 */
        'a', 'b', 'c'};
    struct link_record record = {.kind = LINK_LIVE, .redirect_status = 308, .id = 42,
                                 .cache_max_age = -1, .url = "abc", .url_len = 3};
    char buffer[sizeof(expected)];

    assert_int_equal(link_record_encode(&record, buffer), sizeof(expected));
    assert_memory_equal(buffer, expected, sizeof(expected));
}

static void record_layout_is_little_endian(void **state)
{
    const unsigned char expected[] = {
        LINK_GONE, LINK_HAS_EXPIRY | LINK_HAS_OWNER, 0x34, 0x01,   /* 308 */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,            /* id */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,            /* expires_at */
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,            /* owner */
        'a', 'b', 'c'};
    struct link_record record = {.kind = LINK_GONE, .redirect_status = 308,
                                 .id = 0x1112131415161718, .expires_at = 0x0102030405060708,
                                 .cache_max_age = -1, .owner_key_id = 2, .url = "abc",
                                 .url_len = 3};
    char buffer[sizeof(expected)];

    assert_int_equal(link_record_encode(&record, buffer), sizeof(expected));
    assert_memory_equal(buffer, expected, sizeof(expected));
}

static void record_decode_rejects_short_input(void **state)
{
    struct link_record record = {.kind = LINK_LIVE, .redirect_status = 301, .id = 77,
                                 .expires_at = 5, .max_visits = 3, .cache_max_age = 60,
                                 .owner_key_id = 9};
    char buffer[LINK_RECORD_HEADER_MAX];
    size_t full, len;

    full = link_record_encode(&record, buffer);
    assert_int_equal(full, LINK_RECORD_HEADER_MAX);
    for (len = 0; len < full; len++) {
        if (link_record_decode(buffer, len, &record) != -EINVAL)
            fail_msg("decoding %zu bytes did not return -EINVAL", len);
    }

    memset(&record, 0, sizeof(record));
    assert_int_equal(link_record_decode(buffer, full, &record), 0);
    assert_int_equal(record.kind, LINK_LIVE);
    assert_int_equal(record.redirect_status, 301);
    assert_int_equal(record.id, 77);
    assert_int_equal(record.expires_at, 5);
    assert_int_equal(record.max_visits, 3);
    assert_int_equal(record.cache_max_age, 60);
    assert_int_equal(record.owner_key_id, 9);
    assert_int_equal(record.url_len, 0);

    /* Unknown flag bits are rejected. */
    buffer[1] = (char)0x80;
    assert_int_equal(link_record_decode(buffer, full, &record), -EINVAL);
}

/* The negative record that a store read without a link caches. */
static void record_of_missing_link_has_id_zero(void **state)
{
    const unsigned char expected[LINK_RECORD_FIXED] = {LINK_MISSING};
    struct link_record record = {.kind = LINK_MISSING, .cache_max_age = -1};
    char buffer[LINK_RECORD_HEADER_MAX];

    assert_int_equal(link_record_size(&record), LINK_RECORD_FIXED);
    assert_int_equal(link_record_encode(&record, buffer), LINK_RECORD_FIXED);
    assert_memory_equal(buffer, expected, sizeof(expected));

    record.id = -1;
    assert_int_equal(link_record_decode(buffer, LINK_RECORD_FIXED, &record), 0);
    assert_int_equal(record.kind, LINK_MISSING);
    assert_int_equal(record.id, 0);
}

static void record_from_store_copies_id_and_fields(void **state)
{
    struct store_link link;
    struct link_record record;

    memset(&link, 0, sizeof(link));
    link.id = INT64_C(0x123456789a);
    link.url = (char *)"https://example.com/x";
    link.url_len = 21;
    link.redirect_status = 307;
    link.expires_at = 1700000000000;
    link.max_visits = 10;
    link.cache_max_age = 60;
    link.owner_key_id = 4;

    link_record_from_store(&link, &record);
    assert_int_equal(record.kind, LINK_LIVE);
    assert_int_equal(record.id, INT64_C(0x123456789a));
    assert_int_equal(record.redirect_status, 307);
    assert_int_equal(record.expires_at, 1700000000000);
    assert_int_equal(record.max_visits, 10);
    assert_int_equal(record.cache_max_age, 60);
    assert_int_equal(record.owner_key_id, 4);
    assert_ptr_equal(record.url, link.url);
    assert_int_equal(record.url_len, 21);

    /* Deleted and expired links keep their id but not their URL. */
    link.expired_at = 1700000000001;
    link_record_from_store(&link, &record);
    assert_int_equal(record.kind, LINK_EXPIRED);
    assert_int_equal(record.id, INT64_C(0x123456789a));
    assert_int_equal(record.url_len, 0);

    link.deleted_at = 1700000000002;
    link_record_from_store(&link, &record);
    assert_int_equal(record.kind, LINK_GONE);
    assert_int_equal(record.id, INT64_C(0x123456789a));
    assert_int_equal(record.url_len, 0);
}

static void code_valid_checks_every_byte(void **state)
{
    static const char allowed[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    char single[1], inner[7] = "abcXdef";
    bool expected;
    int byte;

    for (byte = 0; byte < 256; byte++) {
        expected = byte != 0 && memchr(allowed, byte, sizeof(allowed) - 1) != NULL;
        single[0] = (char)byte;
        if (link_code_valid(single, 1) != expected)
            fail_msg("byte 0x%02x alone: expected %s", (unsigned)byte,
                     expected ? "valid" : "invalid");
        inner[3] = (char)byte;
        if (link_code_valid(inner, sizeof(inner)) != expected)
            fail_msg("byte 0x%02x inside a code: expected %s", (unsigned)byte,
                     expected ? "valid" : "invalid");
    }
}

static void code_valid_checks_length(void **state)
{
    char code[STORE_CODE_MAX + 2];

    memset(code, 'a', sizeof(code));
    assert_false(link_code_valid(code, 0));
    assert_true(link_code_valid(code, 1));
    assert_true(link_code_valid(code, STORE_CODE_MAX));
    assert_int_equal(STORE_CODE_MAX, 64);
    assert_false(link_code_valid(code, STORE_CODE_MAX + 1));

    /* The last byte of a 64-byte code is checked too. */
    code[STORE_CODE_MAX - 1] = '/';
    assert_false(link_code_valid(code, STORE_CODE_MAX));
}

static void code_reserved_ignores_case(void **state)
{
    const char *reserved[] = {"api",    "API",    "Api",     "healthz", "HEALTHZ", "HealthZ",
                              "readyz", "READYZ", "metrics", "Metrics", "static",  "STATIC"};
    const char *free_codes[] = {"apis",    "ap",   "healthz2", "health", "readyz_",  "metric",
                                "statics", "xapi", "a-p-i",    "api-",   "metrics-", "0api"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(reserved); i++) {
        if (!link_code_reserved(reserved[i], strlen(reserved[i])))
            fail_msg("\"%s\" is not reported as reserved", reserved[i]);
    }
    for (i = 0; i < ARRAY_SIZE(free_codes); i++) {
        if (link_code_reserved(free_codes[i], strlen(free_codes[i])))
            fail_msg("\"%s\" is reported as reserved", free_codes[i]);
    }
}

static void code_reserved_uses_exact_length(void **state)
{
    assert_true(link_code_reserved("apifoo", 3));
    assert_true(link_code_reserved("healthzzz", 7));
    assert_false(link_code_reserved("api", 2));
    assert_false(link_code_reserved("healthz", 6));
    assert_false(link_code_reserved("", 0));
    assert_false(link_code_reserved("ap\0", 3));
}

/* Parses body into the caller's request and err and returns the result. */
static int parse(const char *body, struct link_create_request *request, struct link_error *err)
{
    memset(err, 0, sizeof(*err));
    return link_parse_create(body, strlen(body), &policy, NOW_MS, request, err);
}

/* Parses body, expects a rejection with code and returns the message. */
static const char *expect_rejection(const char *body, const char *code, struct link_error *err)
{
    struct link_create_request request;
    int rc = parse(body, &request, err);

    if (rc != -EINVAL)
        fail_msg("body %s: link_parse_create returned %d, expected %d", body, rc, -EINVAL);
    if (err->code == NULL || strcmp(err->code, code) != 0)
        fail_msg("body %s: error code %s, expected %s", body, err->code ? err->code : "(null)",
                 code);
    assert_int_equal(err->status, 400);
    assert_null(request.url);
    assert_true(strlen(err->message) > 0);
    return err->message;
}

static void parse_create_accepts_valid_bodies(void **state)
{
    const struct {
        const char *body;
        const char *url;
        int redirect_status;
    } cases[] = {
        {"{\"url\": \"https://example.com/a\"}", "https://example.com/a", 0},
        {"{\"url\":\"http://example.com\",\"redirect_status\":302}", "http://example.com", 302},
        {"{\"redirect_status\": 301, \"url\": \"http://a.example/\"}", "http://a.example/", 301},
        {"{\"url\": \"http://a.example/\", \"redirect_status\": 307}", "http://a.example/", 307},
        {"{\"url\": \"http://a.example/\", \"redirect_status\": 308}", "http://a.example/", 308},
        {" \n{ \"url\" : \"http://a.example/\" }\n ", "http://a.example/", 0},
        {"{\"url\": \"http://a.example/\", \"redirect_status\": null}", "http://a.example/", 0},
    };
    struct link_create_request request;
    struct link_error err;
    size_t i;
    int rc;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        rc = parse(cases[i].body, &request, &err);
        if (rc != 0)
            fail_msg("body %s: returned %d with %s: %s", cases[i].body, rc,
                     err.code ? err.code : "(null)", err.message);
        assert_non_null(request.url);
        assert_string_equal(request.url, cases[i].url);
        assert_int_equal(request.url_len, strlen(cases[i].url));
        assert_int_equal(request.redirect_status, cases[i].redirect_status);
        free(request.url);
    }
}

static void parse_create_returns_normalised_url(void **state)
{
    const struct {
        const char *body;
        const char *url;
    } cases[] = {
        {"{\"url\": \"https://example.com/\\u00fc\"}", "https://example.com/%C3%BC"},
        {"{\"url\": \"http://b\\u00fccher.example/\"}", "http://xn--bcher-kva.example/"},
        {"{\"url\": \"http://a.example/<b>\"}", "http://a.example/%3Cb%3E"},
    };
    struct link_create_request request;
    struct link_error err;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        if (parse(cases[i].body, &request, &err) != 0)
            fail_msg("body %s: rejected with %s: %s", cases[i].body, err.code, err.message);
        assert_string_equal(request.url, cases[i].url);
        assert_int_equal(request.url_len, strlen(cases[i].url));
        free(request.url);
    }
}

static void parse_create_rejects_invalid_json(void **state)
{
    const char *bodies[] = {"",
                            "{",
                            "{\"url\": }",
                            "{\"url\": \"http://a.example/\",}",
                            "{\"url\": \"http://a.example/\"} x",
                            "{'url': 'http://a.example/'}",
                            "{\"url\": \"http://a.example/\\u0000\"}",
                            "{\"url\": \"http://a.example/\xff\"}",
                            "\"http://a.example/\"",
                            "42",
                            "null",
                            "{\"url\": \"http://a.example/\", \"redirect_status\": "
                            "99999999999999999999999}"};
    struct link_error err;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bodies); i++)
        assert_contains(expect_rejection(bodies[i], "invalid_json", &err), "not valid JSON");
}

static void parse_create_rejects_non_object(void **state)
{
    const char *bodies[] = {"[]", "[\"http://a.example/\"]", "[{\"url\": \"http://a.example/\"}]"};
    struct link_error err;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bodies); i++)
        assert_contains(expect_rejection(bodies[i], "invalid_json", &err), "must be a JSON object");
}

static void parse_create_rejects_duplicate_keys(void **state)
{
    struct link_error err;

    assert_contains(
        expect_rejection("{\"url\": \"http://a.example/\", \"url\": \"http://b.example/\"}",
                         "invalid_json", &err),
        "duplicate");
    assert_contains(expect_rejection("{\"url\": \"http://a.example/\", \"redirect_status\": 301, "
                                     "\"redirect_status\": 302}",
                                     "invalid_json", &err),
                    "duplicate");
}

static void parse_create_requires_url(void **state)
{
    const char *bodies[] = {"{}", "{\"url\": null}", "{\"redirect_status\": 301}"};
    struct link_error err;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bodies); i++)
        assert_contains(expect_rejection(bodies[i], "missing_url", &err), "\"url\"");
}

static void parse_create_reads_lifecycle_fields(void **state)
{
    struct link_create_request request;
    struct link_error err;

    assert_int_equal(parse("{\"url\": \"http://a.example/\"}", &request, &err), 0);
    assert_string_equal(request.alias, "");
    assert_int_equal(request.alias_len, 0);
    assert_int_equal(request.expires_at, 0);
    assert_int_equal(request.max_visits, 0);
    assert_int_equal(request.cache_max_age, -1);
    free(request.url);

    assert_int_equal(parse("{\"url\": \"http://a.example/\", \"alias\": \"Spring-Sale_26\", "
                           "\"expires_at\": \"2030-01-31T13:00:00.250+01:00\", "
                           "\"max_visits\": 5, \"cache_max_age\": 0}",
                           &request, &err),
                     0);
    assert_string_equal(request.alias, "Spring-Sale_26");
    assert_int_equal(request.alias_len, 14);
    assert_int_equal(request.expires_at, INT64_C(1896091200250));
    assert_int_equal(request.max_visits, 5);
    assert_int_equal(request.cache_max_age, 0);
    free(request.url);

    /* null is the same as absent. */
    assert_int_equal(parse("{\"url\": \"http://a.example/\", \"alias\": null, \"expires_at\": "
                           "null, \"max_visits\": null, \"cache_max_age\": null}",
                           &request, &err),
                     0);
    assert_int_equal(request.alias_len, 0);
    assert_int_equal(request.cache_max_age, -1);
    free(request.url);
}

static void parse_create_rejects_bad_lifecycle_fields(void **state)
{
    const struct {
        const char *body;
        const char *code;
    } cases[] = {
        {"{\"url\": \"http://a.example/\", \"alias\": \"\"}", "invalid_alias"},
        {"{\"url\": \"http://a.example/\", \"alias\": \"a b\"}", "invalid_alias"},
        {"{\"url\": \"http://a.example/\", \"alias\": \"a/b\"}", "invalid_alias"},
        {"{\"url\": \"http://a.example/\", \"alias\": 7}", "invalid_alias"},
        {"{\"url\": \"http://a.example/\", \"alias\": "
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         "invalid_alias"},
        {"{\"url\": \"http://a.example/\", \"alias\": \"API\"}", "reserved_alias"},
        {"{\"url\": \"http://a.example/\", \"alias\": \"healthz\"}", "reserved_alias"},
        {"{\"url\": \"http://a.example/\", \"expires_at\": \"2030-01-31\"}", "invalid_expires_at"},
        {"{\"url\": \"http://a.example/\", \"expires_at\": \"2030-02-30T00:00:00Z\"}",
         "invalid_expires_at"},
        {"{\"url\": \"http://a.example/\", \"expires_at\": 1896177600}", "invalid_expires_at"},
        {"{\"url\": \"http://a.example/\", \"expires_at\": \"2020-01-01T00:00:00Z\"}",
         "invalid_expires_at"},
        {"{\"url\": \"http://a.example/\", \"expires_at\": \"2026-12-04T20:22:23Z\"}",
         "invalid_expires_at"},
        {"{\"url\": \"http://a.example/\", \"max_visits\": 0}", "invalid_max_visits"},
        {"{\"url\": \"http://a.example/\", \"max_visits\": -3}", "invalid_max_visits"},
        {"{\"url\": \"http://a.example/\", \"max_visits\": 2.5}", "invalid_max_visits"},
        {"{\"url\": \"http://a.example/\", \"max_visits\": \"5\"}", "invalid_max_visits"},
        {"{\"url\": \"http://a.example/\", \"cache_max_age\": -1}", "invalid_cache_max_age"},
        {"{\"url\": \"http://a.example/\", \"cache_max_age\": 31536001}", "invalid_cache_max_age"},
        {"{\"url\": \"http://a.example/\", \"cache_max_age\": true}", "invalid_cache_max_age"},
    };
    struct link_error err;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++)
        (void)expect_rejection(cases[i].body, cases[i].code, &err);
}

static void parse_create_rejects_unknown_field(void **state)
{
    char body[256], long_name[101];
    struct link_error err;
    const char *message;

    message = expect_rejection("{\"url\": \"http://a.example/\", \"expires_in\": 60}",
                               "unknown_field", &err);
    assert_contains(message, "\"expires_in\"");

    message = expect_rejection("{\"URL\": \"http://a.example/\"}", "unknown_field", &err);
    assert_contains(message, "\"URL\"");

    /* A long field name is cut to 64 bytes in the message. */
    memset(long_name, 'f', 100);
    long_name[100] = '\0';
    (void)snprintf(body, sizeof(body), "{\"%s\": 1, \"url\": \"http://a.example/\"}", long_name);
    message = expect_rejection(body, "unknown_field", &err);
    long_name[64] = '\0';
    assert_contains(message, long_name);
    long_name[64] = 'f';
    long_name[65] = '\0';
    if (strstr(message, long_name) != NULL)
        fail_msg("message \"%s\" contains more than 64 bytes of the field name", message);
}

static void parse_create_rejects_non_string_url(void **state)
{
    const char *bodies[] = {"{\"url\": 42}", "{\"url\": true}", "{\"url\": [\"http://a/\"]}",
                            "{\"url\": {\"href\": \"http://a/\"}}", "{\"url\": 1.5}"};
    struct link_error err;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(bodies); i++)
        assert_contains(expect_rejection(bodies[i], "invalid_url", &err), "must be a string");
}

static void parse_create_rejects_redirect_status(void **state)
{
    const char *values[] = {"\"301\"", "301.0", "true", "false", "[301]", "{\"code\": 301}",
                            "300",     "303",   "0",    "-301",  "200",   "4294967597",
                            "3010",    "1e3"};
    struct link_error err;
    char body[128];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(values); i++) {
        (void)snprintf(body, sizeof(body),
                       "{\"url\": \"http://a.example/\", \"redirect_status\": %s}", values[i]);
        assert_contains(expect_rejection(body, "invalid_redirect_status", &err),
                        "301, 302, 307 and 308");
    }
}

static void parse_create_passes_url_errors_through(void **state)
{
    const struct {
        const char *url_json; /* the url as a JSON string */
        const char *url;      /* the same url as C text, for url_normalize */
        const char *code;
    } cases[] = {
        {"\"\"", "", "invalid_url"},
        {"\"example.com/path\"", "example.com/path", "invalid_url"},
        {"\"http://a b/\"", "http://a b/", "invalid_url"},
        {"\"http://a/\\r\\nSet-Cookie: x\"", "http://a/\r\nSet-Cookie: x", "invalid_url"},
        {"\"ftp://example.com/\"", "ftp://example.com/", "unsupported_scheme"},
        {"\"javascript:alert(1)\"", "javascript:alert(1)", "unsupported_scheme"},
        {"\"http://\\u2603.net/\"", "http://\xe2\x98\x83.net/", "invalid_host"},
        {"\"https://sho.rt/abc\"", "https://sho.rt/abc", "redirect_loop"},
        {"\"https://example.com/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
         "https://example.com/"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "url_too_long"},
    };
    struct url_error url_err;
    struct link_error err;
    char body[256];
    char *normalised;
    size_t i, len;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        memset(&url_err, 0, sizeof(url_err));
        assert_int_equal(
            url_normalize(cases[i].url, strlen(cases[i].url), &policy, &normalised, &len, &url_err),
            -EINVAL);
        assert_string_equal(url_err.code, cases[i].code);

        (void)snprintf(body, sizeof(body), "{\"url\": %s}", cases[i].url_json);
        (void)expect_rejection(body, cases[i].code, &err);
        assert_string_equal(err.message, url_err.message);
    }
}

/* Parses text as a JSON object, failing the test when it is not one. */
static json_t *load_object(const char *text, size_t len)
{
    json_error_t error;
    json_t *root;

    assert_int_equal(len, strlen(text));
    root = json_loads(text, 0, &error);
    if (root == NULL)
        fail_msg("output %s is not JSON: %s", text, error.text);
    assert_true(json_is_object(root));
    return root;
}

static void assert_string_member(json_t *object, const char *key, const char *expected)
{
    json_t *value = json_object_get(object, key);

    if (!json_is_string(value))
        fail_msg("member %s is missing or not a string", key);
    assert_string_equal(json_string_value(value), expected);
}

static void assert_integer_member(json_t *object, const char *key, json_int_t expected)
{
    json_t *value = json_object_get(object, key);

    if (!json_is_integer(value))
        fail_msg("member %s is missing or not an integer", key);
    assert_int_equal(json_integer_value(value), expected);
}

static void assert_null_member(json_t *object, const char *key)
{
    json_t *value = json_object_get(object, key);

    if (!json_is_null(value))
        fail_msg("member %s is missing or not null", key);
}

static void fill_link(struct store_link *link, const char *code, const char *url)
{
    memset(link, 0, sizeof(*link));
    link->id = 77;
    link->code_len = strlen(code);
    memcpy(link->code, code, link->code_len + 1);
    link->url = (char *)url;
    link->url_len = strlen(url);
    link->redirect_status = 301;
    link->owner_key_id = 5;
    link->cache_max_age = -1;
}

static void link_json_has_every_field(void **state)
{
    struct store_link link;
    json_t *object;
    size_t len = 0;
    char *text;

    fill_link(&link, "Myoudrf", "https://www.debian.org/releases/bookworm/?a=b&c=%22d%22#top");
    link.created_at = 1700000000123;
    link.redirect_status = 302;

    text = link_to_json(&link, "http://127.0.0.1:8080", &len);
    assert_non_null(text);
    object = load_object(text, len);
    assert_int_equal(json_object_size(object), 9);
    assert_string_member(object, "code", "Myoudrf");
    assert_string_member(object, "short_url", "http://127.0.0.1:8080/Myoudrf");
    assert_string_member(object, "url",
                         "https://www.debian.org/releases/bookworm/?a=b&c=%22d%22#top");
    assert_string_member(object, "created_at", "2023-11-14T22:13:20Z");
    assert_null_member(object, "expires_at");
    assert_null_member(object, "max_visits");
    assert_integer_member(object, "visits", 0);
    assert_integer_member(object, "redirect_status", 302);
    assert_null_member(object, "cache_max_age");
    json_decref(object);
    free(text);
}

static void link_json_fills_optional_fields(void **state)
{
    struct store_link link;
    json_t *object;
    size_t len = 0;
    char *text;

    fill_link(&link, "a-b_c", "http://a.example/");
    link.created_at = 951782400000;  /* 2000-02-29, a leap day */
    link.expires_at = 4102444799999; /* the last second of 2099 */
    link.max_visits = 10;
    link.visits = 1234567890123;
    link.redirect_status = 308;
    link.cache_max_age = 600;

    text = link_to_json(&link, "https://sho.rt/s", &len);
    assert_non_null(text);
    object = load_object(text, len);
    assert_int_equal(json_object_size(object), 9);
    assert_string_member(object, "code", "a-b_c");
    assert_string_member(object, "short_url", "https://sho.rt/s/a-b_c");
    assert_string_member(object, "url", "http://a.example/");
    assert_string_member(object, "created_at", "2000-02-29T00:00:00Z");
    assert_string_member(object, "expires_at", "2099-12-31T23:59:59Z");
    assert_integer_member(object, "max_visits", 10);
    assert_integer_member(object, "visits", 1234567890123);
    assert_integer_member(object, "redirect_status", 308);
    assert_integer_member(object, "cache_max_age", 600);
    json_decref(object);
    free(text);
}

/* Encodes an error and returns a copy of its message member, parsed back. The caller frees it. */
static char *error_message_of(const char *code, const char *message, char **raw)
{
    json_t *object, *error;
    size_t len = 0;
    char *text, *copy;

    text = link_error_json(code, message, &len);
    assert_non_null(text);
    object = load_object(text, len);
    assert_int_equal(json_object_size(object), 1);
    error = json_object_get(object, "error");
    assert_true(json_is_object(error));
    assert_int_equal(json_object_size(error), 2);
    assert_string_member(error, "code", code);
    assert_true(json_is_string(json_object_get(error, "message")));
    copy = strdup(json_string_value(json_object_get(error, "message")));
    assert_non_null(copy);
    json_decref(object);
    *raw = text;
    return copy;
}

static void error_json_escapes_special_characters(void **state)
{
    const char *message = "a \"quoted\" C:\\path\nline two\ttab \x01\x1f\x7f end";
    char *raw, *decoded;

    decoded = error_message_of("invalid_url", message, &raw);
    assert_string_equal(decoded, message);
    assert_contains(raw, "\\\"quoted\\\"");
    assert_contains(raw, "C:\\\\path");
    assert_contains(raw, "\\nline two\\ttab");
    assert_contains(raw, "\\u0001\\u001F");
    free(decoded);
    free(raw);
}

static void error_json_keeps_valid_utf8(void **state)
{
    const char *message = "caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x92\xa9";
    char *raw, *decoded;

    decoded = error_message_of("invalid_host", message, &raw);
    assert_string_equal(decoded, message);
    free(decoded);
    free(raw);
}

static void error_json_replaces_cut_utf8(void **state)
{
    const struct {
        const char *message;
        const char *expected;
    } cases[] = {
        {"cut after caf\xc3", "cut after caf?"},
        {"caf\xc3\xa9 then \xe2\x98", "caf?? then ??"},
        {"stray \xff byte", "stray ? byte"},
    };
    char *raw, *decoded;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        decoded = error_message_of("invalid_json", cases[i].message, &raw);
        assert_string_equal(decoded, cases[i].expected);
        free(decoded);
        free(raw);
    }
}

static void error_json_of_cut_field_name(void **state)
{
    char body[256], name[80];
    struct link_error err;
    char *raw, *decoded;

    /* The 64-byte cut splits the two-byte character after 63 ASCII bytes. */
    memset(name, 'n', 63);
    memcpy(name + 63, "\xc3\xa9", 3);
    (void)snprintf(body, sizeof(body), "{\"%s\": 1}", name);
    (void)expect_rejection(body, "unknown_field", &err);

    decoded = error_message_of(err.code, err.message, &raw);
    assert_contains(decoded, "nnnnnnnnnn?\"");
    free(decoded);
    free(raw);
}

static void format_time_writes_rfc3339(void **state)
{
    const struct {
        int64_t ms;
        const char *expected;
    } cases[] = {
        {0, "1970-01-01T00:00:00Z"},
        {999, "1970-01-01T00:00:00Z"},
        {1000, "1970-01-01T00:00:01Z"},
        {1700000000000, "2023-11-14T22:13:20Z"},
        {1700000000999, "2023-11-14T22:13:20Z"},
        {951782400000, "2000-02-29T00:00:00Z"},
        {4102444800000, "2100-01-01T00:00:00Z"},
    };
    char out[32];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        memset(out, 'x', sizeof(out));
        link_format_time(cases[i].ms, out, sizeof(out));
        assert_string_equal(out, cases[i].expected);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_round_trips_every_field),
        cmocka_unit_test(record_of_plain_link_costs_twelve_bytes),
        cmocka_unit_test(record_of_missing_link_has_id_zero),
        cmocka_unit_test(record_from_store_copies_id_and_fields),
        cmocka_unit_test(parse_create_reads_lifecycle_fields),
        cmocka_unit_test(parse_create_rejects_bad_lifecycle_fields),
        cmocka_unit_test(record_layout_is_little_endian),
        cmocka_unit_test(record_decode_rejects_short_input),
        cmocka_unit_test(code_valid_checks_every_byte),
        cmocka_unit_test(code_valid_checks_length),
        cmocka_unit_test(code_reserved_ignores_case),
        cmocka_unit_test(code_reserved_uses_exact_length),
        cmocka_unit_test(parse_create_accepts_valid_bodies),
        cmocka_unit_test(parse_create_returns_normalised_url),
        cmocka_unit_test(parse_create_rejects_invalid_json),
        cmocka_unit_test(parse_create_rejects_non_object),
        cmocka_unit_test(parse_create_rejects_duplicate_keys),
        cmocka_unit_test(parse_create_requires_url),
        cmocka_unit_test(parse_create_rejects_unknown_field),
        cmocka_unit_test(parse_create_rejects_non_string_url),
        cmocka_unit_test(parse_create_rejects_redirect_status),
        cmocka_unit_test(parse_create_passes_url_errors_through),
        cmocka_unit_test(link_json_has_every_field),
        cmocka_unit_test(link_json_fills_optional_fields),
        cmocka_unit_test(error_json_escapes_special_characters),
        cmocka_unit_test(error_json_keeps_valid_utf8),
        cmocka_unit_test(error_json_replaces_cut_utf8),
        cmocka_unit_test(error_json_of_cut_field_name),
        cmocka_unit_test(format_time_writes_rfc3339),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
