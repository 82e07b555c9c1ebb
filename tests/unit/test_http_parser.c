/*
 * Unit tests for the HTTP/1.1 request parser and the chunked decoder.
 *
 * Every rejection is checked twice: with the whole request in one call and
 * with the request fed one byte at a time, which must give the same status
 * and code. Regression cases found by the fuzz target are named after the
 * input they reproduce and sit at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/http_parser.h"

static const struct http_limits default_limits = {
    .max_request_line = 8192,
    .max_head = 16384,
    .max_headers = 64,
    .max_body = 1 << 20,
};

/* Parses s[0..len) in one call. */
static int parse_whole(const char *s, size_t len, const struct http_limits *limits,
                       struct http_request *req, struct http_error *err)
{
    size_t scan = 0;

    return http_parse_request(s, len, &scan, limits, req, err);
}

/*
 * Feeds s[0..len) one more byte per call, from a heap copy of exactly the
 * bytes given so far so that AddressSanitizer catches a read past them.
 * Returns the first non-zero result, or 0 when all bytes gave 0.
 */
static int parse_bytewise(const char *s, size_t len, const struct http_limits *limits,
                          struct http_request *req, struct http_error *err)
{
    size_t scan = 0;
    char *copy = malloc(len + 1);
    int rc = 0;

    assert_non_null(copy);
    for (size_t n = 1; n <= len && rc == 0; n++) {
        char *piece = malloc(n);

        assert_non_null(piece);
        memcpy(piece, s, n);
        rc = http_parse_request(piece, n, &scan, limits, req, err);
        if (rc == 1) {
            /* Keep the request's pointers valid after this copy goes. */
            memcpy(copy, s, len);
            rc = http_parse_request(copy, len, &scan, limits, req, err);
        }
        free(piece);
    }
    free(copy);
    return rc;
}

static void expect_reject_limits(const char *s, size_t len, const struct http_limits *limits,
                                 int status, const char *code)
{
    struct http_request req;
    struct http_error err = {0};
    int rc = parse_whole(s, len, limits, &req, &err);

    if (rc != -1 || err.status != status || strcmp(err.code, code) != 0)
        print_message("request: \"%.*s\"\n", (int)len, s);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);

    memset(&err, 0, sizeof(err));
    rc = parse_bytewise(s, len, limits, &req, &err);
    if (rc != -1 || err.status != status || strcmp(err.code, code) != 0)
        print_message("request fed byte by byte: \"%.*s\"\n", (int)len, s);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);
}

static void expect_reject(const char *s, int status, const char *code)
{
    expect_reject_limits(s, strlen(s), &default_limits, status, code);
}

/* Parses s, which must be accepted both whole and byte by byte. */
static void expect_accept_len(const char *s, size_t len, struct http_request *req)
{
    struct http_request bytewise;
    struct http_error err = {0};
    int rc = parse_whole(s, len, &default_limits, req, &err);

    if (rc != 1)
        print_message("request: \"%.*s\" rc %d: %s\n", (int)len, s, rc,
                      rc < 0 ? err.message : "incomplete");
    assert_int_equal(rc, 1);

    rc = parse_bytewise(s, len, &default_limits, &bytewise, &err);
    assert_int_equal(rc, 1);
    assert_int_equal(bytewise.head_len, req->head_len);
    assert_int_equal(bytewise.header_count, req->header_count);
}

static void expect_accept(const char *s, struct http_request *req)
{
    expect_accept_len(s, strlen(s), req);
}

static void assert_span(const char *actual, size_t actual_len, const char *expected)
{
    char copy[256];

    assert_non_null(actual);
    assert_true(actual_len < sizeof(copy));
    memcpy(copy, actual, actual_len);
    copy[actual_len] = '\0';
    assert_string_equal(copy, expected);
}

/* ---- request line ---- */

static void test_get_request_parsed(void **state)
{
    static const char s[] = "GET /abc1234 HTTP/1.1\r\n"
                            "Host: sho.rt\r\n"
                            "User-Agent: wrk/4.2.0\r\n"
                            "Accept: */*\r\n"
                            "\r\n";
    struct http_request req;

    expect_accept(s, &req);
    assert_int_equal(req.method, HTTP_METHOD_GET);
    assert_span(req.method_text, req.method_len, "GET");
    assert_span(req.target, req.target_len, "/abc1234");
    assert_span(req.path, req.path_len, "/abc1234");
    assert_null(req.query);
    assert_int_equal(req.query_len, 0);
    assert_int_equal(req.version_minor, 1);
    assert_int_equal(req.header_count, 3);
    assert_int_equal(req.head_len, sizeof(s) - 1);
    assert_int_equal(req.content_length, -1);
    assert_false(req.chunked);
    assert_true(req.keep_alive);
    assert_false(req.expect_continue);
    assert_span(req.headers[0].name, req.headers[0].name_len, "Host");
    assert_span(req.headers[0].value, req.headers[0].value_len, "sho.rt");
    assert_span(req.headers[2].name, req.headers[2].name_len, "Accept");
    assert_span(req.headers[2].value, req.headers[2].value_len, "*/*");
}

static void test_methods_mapped(void **state)
{
    static const struct {
        const char *text;
        enum http_method method;
    } cases[] = {
        {"GET", HTTP_METHOD_GET},         {"HEAD", HTTP_METHOD_HEAD},
        {"POST", HTTP_METHOD_POST},       {"PUT", HTTP_METHOD_PUT},
        {"DELETE", HTTP_METHOD_DELETE},   {"PATCH", HTTP_METHOD_PATCH},
        {"OPTIONS", HTTP_METHOD_OPTIONS}, {"TRACE", HTTP_METHOD_TRACE},
        {"get", HTTP_METHOD_OTHER},       {"PURGE", HTTP_METHOD_OTHER},
        {"M-SEARCH", HTTP_METHOD_OTHER},  {"G!#$%&'*+-.^_`|~T", HTTP_METHOD_OTHER},
        {"GOT", HTTP_METHOD_OTHER},       {"HEAP", HTTP_METHOD_OTHER},
        {"PATCHY", HTTP_METHOD_OTHER},    {"DELETES", HTTP_METHOD_OTHER},
        {"TRACK", HTTP_METHOD_OTHER},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char s[128];
        struct http_request req;

        snprintf(s, sizeof(s), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", cases[i].text);
        expect_accept(s, &req);
        assert_int_equal(req.method, cases[i].method);
        assert_span(req.method_text, req.method_len, cases[i].text);
    }
}

static void test_connect_method_mapped(void **state)
{
    struct http_request req;

    expect_accept("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", &req);
    assert_int_equal(req.method, HTTP_METHOD_CONNECT);
    assert_span(req.target, req.target_len, "example.com:443");
    assert_span(req.path, req.path_len, "example.com:443");
    assert_null(req.query);
}

static void test_invalid_method_rejected(void **state)
{
    expect_reject("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_method");
    expect_reject("GET\xc3\xa9 / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_method");
    expect_reject(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
}

static void test_request_line_spacing_strict(void **state)
{
    struct http_request req;

    expect_accept("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    expect_reject("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET /\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
}

static void test_versions_checked(void **state)
{
    struct http_request req;

    expect_accept("GET / HTTP/1.0\r\n\r\n", &req);
    assert_int_equal(req.version_minor, 0);
    expect_accept("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_int_equal(req.version_minor, 1);

    expect_reject("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "unsupported_version");
    expect_reject("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "unsupported_version");
    expect_reject("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "unsupported_version");
    expect_reject("GET / http/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET / HTTP/1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET / HTTP/a.b\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
}

static void test_leading_empty_lines_skipped(void **state)
{
    static const char one[] = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    static const char four[] = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct http_request req;

    expect_accept(one, &req);
    assert_int_equal(req.head_len, sizeof(one) - 1);
    assert_span(req.method_text, req.method_len, "GET");
    expect_accept(four, &req);
    assert_int_equal(req.head_len, sizeof(four) - 1);

    expect_reject("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                  "invalid_request_line");
    expect_reject("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
}

/* ---- request target ---- */

static void test_origin_form_split(void **state)
{
    struct http_request req;

    expect_accept("GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_span(req.target, req.target_len, "/a/b?x=1&y=%20");
    assert_span(req.path, req.path_len, "/a/b");
    assert_span(req.query, req.query_len, "x=1&y=%20");

    expect_accept("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_span(req.path, req.path_len, "/a");
    assert_non_null(req.query);
    assert_int_equal(req.query_len, 0);

    expect_accept("GET /a?b?c/d HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_span(req.path, req.path_len, "/a");
    assert_span(req.query, req.query_len, "b?c/d");

    expect_accept("GET /~user/[x]:@!$&'()*+,;=-._ HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_span(req.path, req.path_len, "/~user/[x]:@!$&'()*+,;=-._");
}

static void test_target_bytes_outside_uri_rejected(void **state)
{
    static const char *const bad[] = {"\"", "<", ">", "\\",   "^",   "`",
                                      "{",  "|", "}", "\x80", "\xff"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char s[64];

        snprintf(s, sizeof(s), "GET /a%sb HTTP/1.1\r\nHost: a\r\n\r\n", bad[i]);
        expect_reject(s, 400, "invalid_target");
    }
    expect_reject("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_request_line");
}

static void test_target_fragment_rejected(void **state)
{
    expect_reject("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET /a?q#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
}

static void test_target_percent_escape_checked(void **state)
{
    struct http_request req;

    expect_accept("GET /%41%2f%aF HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    expect_reject("GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET /% HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET /a?%g0 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
}

static void test_absolute_form_split(void **state)
{
    struct http_request req;

    expect_accept("GET http://example.com/a/b?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", &req);
    assert_span(req.target, req.target_len, "http://example.com/a/b?q=1");
    assert_span(req.path, req.path_len, "/a/b");
    assert_span(req.query, req.query_len, "q=1");

    expect_accept("GET https://example.com:8443 HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    assert_span(req.path, req.path_len, "/");
    assert_null(req.query);

    expect_accept("GET HTTP://[::1]:80?x HTTP/1.1\r\nHost: x\r\n\r\n", &req);
    assert_span(req.path, req.path_len, "/");
    assert_span(req.query, req.query_len, "x");
}

static void test_absolute_form_invalid_rejected(void **state)
{
    expect_reject("GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET http://user@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                  "invalid_target");
    expect_reject("GET http://a:b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("GET example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
}

static void test_asterisk_form_only_options(void **state)
{
    struct http_request req;

    expect_accept("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_int_equal(req.method, HTTP_METHOD_OPTIONS);
    assert_span(req.path, req.path_len, "*");
    assert_null(req.query);

    expect_reject("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("OPTIONS *a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
}

static void test_authority_form_only_connect(void **state)
{
    struct http_request req;

    expect_accept("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", &req);
    assert_span(req.path, req.path_len, "[::1]:8443");

    expect_reject("GET example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("CONNECT /a HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("CONNECT http://a:1/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
    expect_reject("CONNECT :443 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid_target");
}

/* ---- header fields ---- */

static void test_header_values_trimmed(void **state)
{
    struct http_request req;

    expect_accept("GET / HTTP/1.1\r\n"
                  "Host: a\r\n"
                  "X-Spaces: \t  inner  value \t \r\n"
                  "X-Empty:\r\n"
                  "X-Blank:   \r\n"
                  "X-Tight:v\r\n"
                  "X-Obs: caf\xc3\xa9\xff\r\n"
                  "\r\n",
                  &req);
    assert_int_equal(req.header_count, 6);
    assert_span(req.headers[1].value, req.headers[1].value_len, "inner  value");
    assert_int_equal(req.headers[2].value_len, 0);
    assert_int_equal(req.headers[3].value_len, 0);
    assert_span(req.headers[4].value, req.headers[4].value_len, "v");
    assert_span(req.headers[5].value, req.headers[5].value_len, "caf\xc3\xa9\xff");
}

static void test_header_syntax_errors_rejected(void **state)
{
    expect_reject("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nNa(me: x\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nN\xc3\xa4me: x\r\n\r\n", 400, "invalid_header");
}

static void test_header_control_bytes_rejected(void **state)
{
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";

    expect_reject_limits(nul, sizeof(nul) - 1, &default_limits, 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1f\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, "invalid_header");
}

static void test_bare_lf_rejected(void **state)
{
    expect_reject("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "invalid_request_line");
    expect_reject("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\n\n", 400, "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nX: b\nc\r\n\r\n", 400, "invalid_header");
}

/* ---- framing ---- */

static void test_content_length_accepted(void **state)
{
    struct http_request req;

    expect_accept("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", &req);
    assert_int_equal(req.content_length, 42);
    assert_false(req.chunked);
    expect_accept("POST / HTTP/1.1\r\nHost: a\r\ncontent-length:0\r\n\r\n", &req);
    assert_int_equal(req.content_length, 0);
    expect_accept("POST / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH:  007 \r\n\r\n", &req);
    assert_int_equal(req.content_length, 7);
}

static void test_content_length_malformed_rejected(void **state)
{
    static const char *const values[] = {
        "-1",
        "+1",
        "1 2",
        "0x10",
        "",
        "1,1",
        "1, 1",
        "12a",
        "1.0",
        "99999999999999999999",
        "9999999999999999999",
        "9223372036854775808",
    };

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char s[128];

        snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n",
                 values[i]);
        expect_reject(s, 400, "invalid_content_length");
    }
}

static void test_content_length_max_int64_accepted(void **state)
{
    static const char s[] =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n";
    struct http_limits limits = default_limits;
    struct http_request req;
    struct http_error err;

    limits.max_body = UINT64_MAX;
    assert_int_equal(parse_whole(s, sizeof(s) - 1, &limits, &req, &err), 1);
    assert_int_equal(req.content_length, INT64_MAX);
}

static void test_duplicate_content_length_rejected(void **state)
{
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                  400, "invalid_content_length");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n",
                  400, "invalid_content_length");
}

static void test_content_length_over_max_body(void **state)
{
    struct http_limits limits = default_limits;
    static const char s[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n";
    static const char exact[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n";
    struct http_request req;
    struct http_error err;

    limits.max_body = 100;
    assert_int_equal(parse_whole(exact, sizeof(exact) - 1, &limits, &req, &err), 1);
    assert_int_equal(req.content_length, 100);
    expect_reject_limits(s, sizeof(s) - 1, &limits, 413, "body_too_large");
}

static void test_chunked_transfer_encoding_accepted(void **state)
{
    static const char *const values[] = {"chunked", "Chunked", "CHUNKED", "  chunked\t"};

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char s[128];
        struct http_request req;

        snprintf(s, sizeof(s), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:%s\r\n\r\n",
                 values[i]);
        expect_accept(s, &req);
        assert_true(req.chunked);
        assert_int_equal(req.content_length, -1);
    }
}

static void test_other_transfer_encoding_rejected(void **state)
{
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                  "unsupported_transfer_encoding");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
                  "unsupported_transfer_encoding");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501,
                  "unsupported_transfer_encoding");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n",
                  501, "unsupported_transfer_encoding");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
                  "unsupported_transfer_encoding");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501,
                  "unsupported_transfer_encoding");
}

static void test_transfer_encoding_with_content_length(void **state)
{
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 5\r\n\r\n",
                  400, "conflicting_framing");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n",
                  400, "conflicting_framing");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                  "Transfer-Encoding: gzip\r\n\r\n",
                  400, "conflicting_framing");
}

static void test_transfer_encoding_in_http10_rejected(void **state)
{
    expect_reject("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                  "invalid_transfer_encoding");
}

static void test_no_framing_header_means_no_body(void **state)
{
    struct http_request req;

    expect_accept("POST / HTTP/1.1\r\nHost: a\r\n\r\nbody bytes", &req);
    assert_int_equal(req.content_length, -1);
    assert_false(req.chunked);
    assert_int_equal(req.head_len, strlen("POST / HTTP/1.1\r\nHost: a\r\n\r\n"));
}

/* ---- Host, Connection, Expect ---- */

static void test_host_required_in_http11(void **state)
{
    struct http_request req;

    expect_accept("GET / HTTP/1.0\r\n\r\n", &req);
    expect_accept("GET / HTTP/1.1\r\nhost:\r\n\r\n", &req);
    expect_accept("GET / HTTP/1.1\r\nHOST: [2001:db8::1]:8080\r\n\r\n", &req);
    expect_accept("GET / HTTP/1.1\r\nHost: xn--caf-dma.example%2D1:80\r\n\r\n", &req);
    expect_reject("GET / HTTP/1.1\r\n\r\n", 400, "missing_host");
    expect_reject("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n", 400, "missing_host");
}

static void test_duplicate_host_rejected(void **state)
{
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "duplicate_host");
    expect_reject("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "duplicate_host");
}

static void test_invalid_host_rejected(void **state)
{
    expect_reject("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400, "invalid_host");
    expect_reject("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, "invalid_host");
}

static void test_connection_persistence(void **state)
{
    static const struct {
        const char *request;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: , Keep-Alive ,\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_request req;

        expect_accept(cases[i].request, &req);
        if (req.keep_alive != cases[i].keep_alive)
            print_message("request: \"%s\"\n", cases[i].request);
        assert_int_equal(req.keep_alive, cases[i].keep_alive);
    }
}

static void test_connection_non_token_rejected(void **state)
{
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep alive\r\n\r\n", 400,
                  "invalid_header");
    expect_reject("GET / HTTP/1.1\r\nHost: a\r\nConnection: \"close\"\r\n\r\n", 400,
                  "invalid_header");
}

static void test_expect_continue(void **state)
{
    struct http_request req;

    expect_accept("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                  "Content-Length: 3\r\n\r\n",
                  &req);
    assert_true(req.expect_continue);
    expect_accept("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n", &req);
    assert_true(req.expect_continue);
    expect_accept("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &req);
    assert_false(req.expect_continue);
    expect_accept("POST / HTTP/1.1\r\nHost: a\r\n\r\n", &req);
    assert_false(req.expect_continue);
}

static void test_other_expectation_rejected(void **state)
{
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417,
                  "unsupported_expectation");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n", 417,
                  "unsupported_expectation");
    expect_reject("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue;a=b\r\n\r\n", 417,
                  "unsupported_expectation");
}

/* ---- limits ---- */

static void test_request_line_limit(void **state)
{
    struct http_limits limits = default_limits;
    char s[256];
    struct http_request req;
    struct http_error err;
    size_t scan = 0;

    /* "GET /aaaa HTTP/1.1\r\n" with the path padded to a 64-byte line. */
    limits.max_request_line = 64;
    memset(s, 0, sizeof(s));
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', 64 - 5 - 11);
    strcat(s, " HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_int_equal(parse_whole(s, strlen(s), &limits, &req, &err), 1);

    /* One more byte in the path makes the line 65 bytes long. */
    memmove(s + 6, s + 5, strlen(s + 5) + 1);
    s[5] = 'a';
    expect_reject_limits(s, strlen(s), &limits, 414, "request_line_too_long");

    /* The error comes as soon as 64 bytes arrive without a line end. */
    assert_int_equal(http_parse_request(s, 63, &scan, &limits, &req, &err), 0);
    assert_int_equal(http_parse_request(s, 64, &scan, &limits, &req, &err), -1);
    assert_int_equal(err.status, 414);
}

static void test_request_line_limit_counts_leading_lines_apart(void **state)
{
    struct http_limits limits = default_limits;
    static const char s[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct http_request req;
    struct http_error err;

    limits.max_request_line = strlen("GET / HTTP/1.1\r\n");
    assert_int_equal(parse_whole(s, sizeof(s) - 1, &limits, &req, &err), 1);
}

static void test_head_size_limit(void **state)
{
    struct http_limits limits = default_limits;
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
    size_t len = sizeof(s) - 1;
    struct http_request req;
    struct http_error err;
    size_t scan = 0;

    limits.max_head = len;
    assert_int_equal(parse_whole(s, len, &limits, &req, &err), 1);

    limits.max_head = len - 1;
    expect_reject_limits(s, len, &limits, 431, "header_too_large");

    /* Reported once max_head bytes have arrived without the blank line. */
    limits.max_head = 30;
    assert_int_equal(http_parse_request(s, 29, &scan, &limits, &req, &err), 0);
    assert_int_equal(http_parse_request(s, 30, &scan, &limits, &req, &err), -1);
    assert_int_equal(err.status, 431);
    assert_string_equal(err.code, "header_too_large");
}

static void test_header_count_limit(void **state)
{
    struct http_limits limits = default_limits;
    char s[512] = "GET / HTTP/1.1\r\nHost: a\r\n";
    struct http_request req;
    struct http_error err;
    size_t scan = 0;

    for (int i = 1; i < 4; i++)
        strcat(s, "X-A: b\r\n");
    strcat(s, "\r\n");
    limits.max_headers = 4;
    assert_int_equal(parse_whole(s, strlen(s), &limits, &req, &err), 1);
    assert_int_equal(req.header_count, 4);

    limits.max_headers = 3;
    expect_reject_limits(s, strlen(s), &limits, 431, "too_many_headers");

    /* Reported before the blank line arrives. */
    assert_int_equal(http_parse_request(s, strlen(s) - 2, &scan, &limits, &req, &err), -1);
    assert_int_equal(err.status, 431);
    assert_string_equal(err.code, "too_many_headers");
}

static void test_header_count_clamped_to_array(void **state)
{
    struct http_limits limits = default_limits;
    char s[2048] = "GET / HTTP/1.1\r\nHost: a\r\n";
    struct http_request req;
    struct http_error err;

    for (int i = 1; i < HTTP_MAX_HEADERS + 1; i++)
        strcat(s, "X: b\r\n");
    strcat(s, "\r\n");
    limits.max_headers = 1000;
    assert_int_equal(parse_whole(s, strlen(s), &limits, &req, &err), -1);
    assert_int_equal(err.status, 431);
    assert_string_equal(err.code, "too_many_headers");
}

static void test_limit_error_before_grammar_error(void **state)
{
    struct http_limits limits = default_limits;
    char s[200];

    /* An invalid method and a line that is too long: the limit wins, because
     * it is known before the line ends. */
    limits.max_request_line = 32;
    memset(s, 'a', sizeof(s));
    memcpy(s, "G(T /", 5);
    memcpy(s + 150, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
    expect_reject_limits(s, 173, &limits, 414, "request_line_too_long");
}

/* ---- incremental parsing ---- */

static void test_bytewise_matches_whole(void **state)
{
    static const char s[] = "\r\nPOST http://example.com/x?y=1 HTTP/1.1\r\n"
                            "Host: example.com\r\n"
                            "Content-Length: 5\r\n"
                            "Connection: close\r\n"
                            "Expect: 100-continue\r\n"
                            "X-Tab:\tv\tw\t\r\n"
                            "\r\nhello";
    struct http_request whole;
    struct http_request bytewise;
    struct http_error err;

    assert_int_equal(parse_whole(s, sizeof(s) - 1, &default_limits, &whole, &err), 1);
    assert_int_equal(parse_bytewise(s, sizeof(s) - 1, &default_limits, &bytewise, &err), 1);
    assert_int_equal(bytewise.method, whole.method);
    assert_int_equal(bytewise.target_len, whole.target_len);
    assert_int_equal(bytewise.path_len, whole.path_len);
    assert_int_equal(bytewise.query_len, whole.query_len);
    assert_int_equal(bytewise.head_len, whole.head_len);
    assert_int_equal(bytewise.header_count, whole.header_count);
    assert_int_equal(bytewise.content_length, 5);
    assert_int_equal(bytewise.keep_alive, whole.keep_alive);
    assert_int_equal(bytewise.expect_continue, whole.expect_continue);
    for (unsigned i = 0; i < whole.header_count; i++) {
        assert_int_equal(bytewise.headers[i].name_len, whole.headers[i].name_len);
        assert_int_equal(bytewise.headers[i].value_len, whole.headers[i].value_len);
    }
    assert_span(whole.headers[4].value, whole.headers[4].value_len, "v\tw");
}

static void test_incomplete_head_needs_more(void **state)
{
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct http_request req;
    struct http_error err;
    size_t scan = 0;

    for (size_t n = 0; n < sizeof(s) - 1; n++)
        assert_int_equal(http_parse_request(s, n, &scan, &default_limits, &req, &err), 0);
    assert_int_equal(http_parse_request(s, sizeof(s) - 1, &scan, &default_limits, &req, &err), 1);

    /* Calling again after success finds the same head. */
    assert_int_equal(http_parse_request(s, sizeof(s) - 1, &scan, &default_limits, &req, &err), 1);
    assert_int_equal(req.head_len, sizeof(s) - 1);
}

static void test_large_head_trickled(void **state)
{
    static const char prefix[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ";
    size_t prefix_len = sizeof(prefix) - 1;
    size_t len = 16000;
    char *s = malloc(len);
    struct http_request req;
    struct http_error err;
    size_t scan = 0;
    int rc = 0;

    assert_non_null(s);
    memcpy(s, prefix, prefix_len);
    memset(s + prefix_len, 'v', len - prefix_len - 4);
    memcpy(s + len - 4, "\r\n\r\n", 4);
    for (size_t n = 1; n <= len && rc == 0; n++)
        rc = http_parse_request(s, n, &scan, &default_limits, &req, &err);
    assert_int_equal(rc, 1);
    assert_int_equal(req.head_len, len);
    assert_int_equal(req.headers[1].value_len, len - prefix_len - 4);
    free(s);
}

static void test_pipelined_requests(void **state)
{
    static const char s[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                            "POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "3\r\nabc\r\n0\r\n\r\n"
                            "GET /c?d HTTP/1.1\r\nHost: a\r\n\r\n";
    char buf[sizeof(s)];
    size_t offset = 0;
    struct http_request req;
    struct http_error err;
    struct http_chunked chunked;
    size_t scan = 0;

    memcpy(buf, s, sizeof(s));

    assert_int_equal(http_parse_request(buf, sizeof(s) - 1, &scan, &default_limits, &req, &err), 1);
    assert_span(req.path, req.path_len, "/a");
    assert_int_equal(req.content_length, 5);
    assert_memory_equal(buf + req.head_len, "hello", 5);
    offset = req.head_len + 5;

    scan = 0;
    assert_int_equal(http_parse_request(buf + offset, sizeof(s) - 1 - offset, &scan,
                                        &default_limits, &req, &err),
                     1);
    assert_span(req.path, req.path_len, "/b");
    assert_true(req.chunked);
    offset += req.head_len;
    http_chunked_init(&chunked);
    assert_int_equal(http_chunked_decode(&chunked, buf + offset, sizeof(s) - 1 - offset,
                                         default_limits.max_body, &err),
                     1);
    assert_int_equal(chunked.out_len, 3);
    assert_memory_equal(buf + offset, "abc", 3);
    offset += chunked.in_pos;

    scan = 0;
    assert_int_equal(http_parse_request(buf + offset, sizeof(s) - 1 - offset, &scan,
                                        &default_limits, &req, &err),
                     1);
    assert_span(req.path, req.path_len, "/c");
    assert_span(req.query, req.query_len, "d");
    assert_int_equal(offset + req.head_len, sizeof(s) - 1);
}

static void test_find_header_ignores_case(void **state)
{
    struct http_request req;
    const struct http_header *h;

    expect_accept("GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: 42\r\nx-request-id: 43\r\n\r\n",
                  &req);
    h = http_find_header(&req, "x-REQUEST-id", 12);
    assert_non_null(h);
    assert_span(h->value, h->value_len, "42");
    assert_null(http_find_header(&req, "X-Request", 9));
    assert_null(http_find_header(&req, "Accept", 6));
}

/* ---- chunked decoding ---- */

/* Decodes s whole into out; returns the decoder's result. */
static int decode_whole(const char *s, size_t len, uint64_t max_body, char *out,
                        struct http_chunked *chunked, struct http_error *err)
{
    memcpy(out, s, len);
    http_chunked_init(chunked);
    return http_chunked_decode(chunked, out, len, max_body, err);
}

/* Decodes s fed one byte per call, in place in out. */
static int decode_bytewise(const char *s, size_t len, uint64_t max_body, char *out,
                           struct http_chunked *chunked, struct http_error *err)
{
    int rc = 0;

    http_chunked_init(chunked);
    for (size_t n = 1; n <= len && rc == 0; n++) {
        out[n - 1] = s[n - 1];
        rc = http_chunked_decode(chunked, out, n, max_body, err);
    }
    return rc;
}

static void expect_decoded(const char *s, const char *expected, size_t raw_len)
{
    size_t len = strlen(s);
    char *out = malloc(len);
    struct http_chunked chunked;
    struct http_error err;

    assert_non_null(out);
    assert_int_equal(decode_whole(s, len, 1 << 20, out, &chunked, &err), 1);
    assert_int_equal(chunked.out_len, strlen(expected));
    assert_memory_equal(out, expected, chunked.out_len);
    assert_int_equal(chunked.in_pos, raw_len);

    assert_int_equal(decode_bytewise(s, len, 1 << 20, out, &chunked, &err), 1);
    assert_int_equal(chunked.out_len, strlen(expected));
    assert_memory_equal(out, expected, chunked.out_len);
    assert_int_equal(chunked.in_pos, raw_len);
    free(out);
}

static void expect_chunk_error(const char *s, size_t len, uint64_t max_body, int status,
                               const char *code)
{
    char *out = malloc(len);
    struct http_chunked chunked;
    struct http_error err = {0};
    int rc;

    assert_non_null(out);
    rc = decode_whole(s, len, max_body, out, &chunked, &err);
    if (rc != -1)
        print_message("chunked body: \"%.*s\"\n", (int)len, s);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);

    memset(&err, 0, sizeof(err));
    rc = decode_bytewise(s, len, max_body, out, &chunked, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.status, status);
    assert_string_equal(err.code, code);
    free(out);
}

static void expect_bad_chunk(const char *s)
{
    expect_chunk_error(s, strlen(s), 1 << 20, 400, "invalid_chunk");
}

static void test_chunked_simple_body(void **state)
{
    static const char s[] = "5\r\nhello\r\n0\r\n\r\n";

    expect_decoded(s, "hello", sizeof(s) - 1);
    expect_decoded("0\r\n\r\n", "", 5);
}

static void test_chunked_several_chunks(void **state)
{
    static const char s[] = "3\r\nabc\r\na\r\n0123456789\r\nA\r\nABCDEFGHIJ\r\n1\r\n\n\r\n"
                            "000\r\n\r\n";

    expect_decoded(s, "abc0123456789ABCDEFGHIJ\n", sizeof(s) - 1);
}

static void test_chunked_extensions_ignored(void **state)
{
    static const char s[] = "3;name=value\r\nabc\r\n"
                            "2 ; a ; b=\"quoted; \\\"x\\\"\"\r\nde\r\n"
                            "1\t;x\r\nf\r\n"
                            "0;last\r\n\r\n";

    expect_decoded(s, "abcdef", sizeof(s) - 1);
}

static void test_chunked_trailers_ignored(void **state)
{
    static const char s[] = "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n";

    expect_decoded(s, "hi", sizeof(s) - 1);
}

static void test_chunked_stops_at_body_end(void **state)
{
    static const char s[] = "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n";

    expect_decoded(s, "hi", strlen("2\r\nhi\r\n0\r\n\r\n"));
}

static void test_chunked_bad_sizes_rejected(void **state)
{
    expect_bad_chunk("\r\nabc\r\n0\r\n\r\n");
    expect_bad_chunk("g\r\nabc\r\n0\r\n\r\n");
    expect_bad_chunk("-1\r\na\r\n0\r\n\r\n");
    expect_bad_chunk("+1\r\na\r\n0\r\n\r\n");
    expect_bad_chunk("0x1\r\na\r\n0\r\n\r\n");
    expect_bad_chunk("1 \r\na\r\n0\r\n\r\n");
    expect_bad_chunk(" 1\r\na\r\n0\r\n\r\n");
    expect_bad_chunk(";x\r\na\r\n0\r\n\r\n");
    expect_bad_chunk("10000000000000000\r\n");
    expect_bad_chunk("00000000000000001\r\na\r\n0\r\n\r\n");
}

static void test_chunked_size_overflow_rejected(void **state)
{
    static const char s[] = "fffffffffffffffff\r\n";

    expect_chunk_error(s, sizeof(s) - 1, UINT64_MAX, 400, "invalid_chunk");
}

static void test_chunked_framing_errors_rejected(void **state)
{
    expect_bad_chunk("3\r\nabcd\r\n0\r\n\r\n");
    expect_bad_chunk("3\r\nabc\n0\r\n\r\n");
    expect_bad_chunk("3\nabc\r\n0\r\n\r\n");
    expect_bad_chunk("3\r\rabc\r\n0\r\n\r\n");
    expect_bad_chunk("3;a\nb\r\nabc\r\n0\r\n\r\n");
    expect_bad_chunk("3;a\x01\r\nabc\r\n0\r\n\r\n");
    expect_bad_chunk("0\r\n\n");
    expect_bad_chunk("0\r\n\rx");
    expect_bad_chunk("1\r\na\r\r0\r\n\r\n");
    expect_bad_chunk("0\r\nT: v\rx\r\n\r\n");
}

static void test_chunked_bad_trailers_rejected(void **state)
{
    expect_bad_chunk("0\r\nX: a\r\n b\r\n\r\n");
    expect_bad_chunk("0\r\n X: a\r\n\r\n");
    expect_bad_chunk("0\r\nX : a\r\n\r\n");
    expect_bad_chunk("0\r\nNo colon\r\n\r\n");
    expect_bad_chunk("0\r\n: a\r\n\r\n");
    expect_bad_chunk("0\r\nX: a\x01\r\n\r\n");
    expect_bad_chunk("0\r\nX: a\nY: b\r\n\r\n");
}

static void test_chunked_size_line_limit(void **state)
{
    char s[4200];
    size_t n;

    memset(s, 0, sizeof(s));
    strcpy(s, "1;");
    memset(s + 2, 'x', 4096 - 2);
    n = strlen(s);
    memcpy(s + n, "\r\na\r\n0\r\n\r\n", 10);
    expect_decoded(s, "a", n + 10);

    memmove(s + 3, s + 2, strlen(s + 2) + 1);
    s[2] = 'x';
    expect_bad_chunk(s);
}

static void test_chunked_trailer_limit(void **state)
{
    char s[9000] = "0\r\n";

    while (strlen(s) < 8200)
        strcat(s, "X-Pad: 0123456789012345678901234567890123456789\r\n");
    strcat(s, "\r\n");
    expect_bad_chunk(s);
}

static void test_chunked_body_over_max(void **state)
{
    static const char s[] = "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n";
    char out[64];
    struct http_chunked chunked;
    struct http_error err;

    assert_int_equal(decode_whole(s, sizeof(s) - 1, 11, out, &chunked, &err), 1);
    assert_int_equal(chunked.out_len, 11);
    expect_chunk_error(s, sizeof(s) - 1, 10, 413, "body_too_large");

    /* Reported when the byte after the size arrives, before the data. */
    http_chunked_init(&chunked);
    memcpy(out, s, sizeof(s));
    assert_int_equal(http_chunked_decode(&chunked, out, 11, 10, &err), 0);
    assert_int_equal(http_chunked_decode(&chunked, out, 12, 10, &err), -1);
    assert_int_equal(err.status, 413);
}

static void test_chunked_max_size_over_max_body(void **state)
{
    static const char s[] = "ffffffffffffffff\r\n";

    expect_chunk_error(s, sizeof(s) - 1, UINT64_MAX - 1, 413, "body_too_large");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_request_parsed),
        cmocka_unit_test(test_methods_mapped),
        cmocka_unit_test(test_connect_method_mapped),
        cmocka_unit_test(test_invalid_method_rejected),
        cmocka_unit_test(test_request_line_spacing_strict),
        cmocka_unit_test(test_versions_checked),
        cmocka_unit_test(test_leading_empty_lines_skipped),
        cmocka_unit_test(test_origin_form_split),
        cmocka_unit_test(test_target_bytes_outside_uri_rejected),
        cmocka_unit_test(test_target_fragment_rejected),
        cmocka_unit_test(test_target_percent_escape_checked),
        cmocka_unit_test(test_absolute_form_split),
        cmocka_unit_test(test_absolute_form_invalid_rejected),
        cmocka_unit_test(test_asterisk_form_only_options),
        cmocka_unit_test(test_authority_form_only_connect),
        cmocka_unit_test(test_header_values_trimmed),
        cmocka_unit_test(test_header_syntax_errors_rejected),
        cmocka_unit_test(test_header_control_bytes_rejected),
        cmocka_unit_test(test_bare_lf_rejected),
        cmocka_unit_test(test_content_length_accepted),
        cmocka_unit_test(test_content_length_malformed_rejected),
        cmocka_unit_test(test_content_length_max_int64_accepted),
        cmocka_unit_test(test_duplicate_content_length_rejected),
        cmocka_unit_test(test_content_length_over_max_body),
        cmocka_unit_test(test_chunked_transfer_encoding_accepted),
        cmocka_unit_test(test_other_transfer_encoding_rejected),
        cmocka_unit_test(test_transfer_encoding_with_content_length),
        cmocka_unit_test(test_transfer_encoding_in_http10_rejected),
        cmocka_unit_test(test_no_framing_header_means_no_body),
        cmocka_unit_test(test_host_required_in_http11),
        cmocka_unit_test(test_duplicate_host_rejected),
        cmocka_unit_test(test_invalid_host_rejected),
        cmocka_unit_test(test_connection_persistence),
        cmocka_unit_test(test_connection_non_token_rejected),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_other_expectation_rejected),
        cmocka_unit_test(test_request_line_limit),
        cmocka_unit_test(test_request_line_limit_counts_leading_lines_apart),
        cmocka_unit_test(test_head_size_limit),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_header_count_clamped_to_array),
        cmocka_unit_test(test_limit_error_before_grammar_error),
        cmocka_unit_test(test_bytewise_matches_whole),
        cmocka_unit_test(test_incomplete_head_needs_more),
        cmocka_unit_test(test_large_head_trickled),
        cmocka_unit_test(test_pipelined_requests),
        cmocka_unit_test(test_find_header_ignores_case),
        cmocka_unit_test(test_chunked_simple_body),
        cmocka_unit_test(test_chunked_several_chunks),
        cmocka_unit_test(test_chunked_extensions_ignored),
        cmocka_unit_test(test_chunked_trailers_ignored),
        cmocka_unit_test(test_chunked_stops_at_body_end),
        cmocka_unit_test(test_chunked_bad_sizes_rejected),
        cmocka_unit_test(test_chunked_size_overflow_rejected),
        cmocka_unit_test(test_chunked_framing_errors_rejected),
        cmocka_unit_test(test_chunked_bad_trailers_rejected),
        cmocka_unit_test(test_chunked_size_line_limit),
        cmocka_unit_test(test_chunked_trailer_limit),
        cmocka_unit_test(test_chunked_body_over_max),
        cmocka_unit_test(test_chunked_max_size_over_max_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
