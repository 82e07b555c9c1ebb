/*
 * Tests of app/import's line parser (import_parse_line) and message quoting
 * (import_quote): accepted lines, skipped lines, and each reason for a
 * rejection with its exact message.
 *
 * The URL policy allows http and https, URLs of up to 64 bytes, and treats
 * short.test as the service's own host, so that the URL checks of url.c
 * show through with small inputs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "app/import.h"
#include "app/url.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const schemes[] = {"http", "https"};

static const struct url_policy policy = {
    .schemes = schemes,
    .scheme_count = 2,
    .max_length = 64,
    .own_host = "short.test",
};

/* Parses a line of len bytes that is expected to be accepted, and checks its code and URL. */
static void expect_link(const char *line, size_t len, const char *code, const char *url)
{
    struct import_error err = {.reason = NULL};
    struct import_line parsed;
    int rc;

    rc = import_parse_line(line, len, &policy, &parsed, &err);
    if (rc != IMPORT_LINE_LINK)
        fail_msg("line \"%.*s\" returned %d (%s: %s), expected a link", (int)len, line, rc,
                 err.reason != NULL ? err.reason : "-", err.reason != NULL ? err.message : "-");
    assert_string_equal(parsed.code, code);
    assert_int_equal(parsed.code_len, strlen(code));
    assert_string_equal(parsed.url, url);
    assert_int_equal(parsed.url_len, strlen(url));
    free(parsed.url);
}

/* Parses a line of len bytes that is expected to be rejected with reason and message. */
static void expect_rejection(const char *line, size_t len, const char *reason, const char *message)
{
    struct import_error err = {.reason = NULL};
    struct import_line parsed;
    int rc;

    rc = import_parse_line(line, len, &policy, &parsed, &err);
    if (rc != -EINVAL)
        fail_msg("line \"%.*s\" returned %d, expected -EINVAL", (int)len, line, rc);
    assert_string_equal(err.reason, reason);
    assert_string_equal(err.message, message);
    assert_null(parsed.url);
}

static void parse_accepts_code_and_url(void **state)
{
    const char line[] = "abc\thttps://example.com/a?b=c#d";

    expect_link(line, strlen(line), "abc", "https://example.com/a?b=c#d");
}

static void parse_accepts_longest_code(void **state)
{
    char line[128], code[STORE_CODE_MAX + 1];

    memset(code, 'x', STORE_CODE_MAX);
    code[STORE_CODE_MAX] = '\0';
    code[0] = 'A';
    code[1] = '9';
    code[2] = '-';
    code[3] = '_';
    (void)snprintf(line, sizeof(line), "%s\thttp://example.com/", code);
    expect_link(line, strlen(line), code, "http://example.com/");
}

static void parse_strips_one_trailing_cr(void **state)
{
    const char line[] = "crlf\thttps://example.com/path\r";
    const char twice[] = "crlf\thttps://example.com/path\r\r";

    expect_link(line, strlen(line), "crlf", "https://example.com/path");
    expect_rejection(twice, strlen(twice), "invalid_url",
                     "URL contains the control character \\x0D at byte offset 24, which must be "
                     "removed or percent-encoded as %0D");
}

static void parse_normalises_url_like_api(void **state)
{
    const char line[] = "uni\thttps://b\xc3\xbc"
                        "cher.example/\xc3\xa4?q=a b";
    const char encoded[] = "uni\thttps://b\xc3\xbc"
                           "cher.example/\xc3\xa4?q=a|b";

    /* A space is rejected as by the API, and other bytes outside URI syntax are encoded. */
    expect_rejection(line, strlen(line), "invalid_url",
                     "URL contains a space at byte offset 30, which must be percent-encoded as "
                     "%20");
    expect_link(encoded, strlen(encoded), "uni", "https://xn--bcher-kva.example/%C3%A4?q=a%7Cb");
}

static void parse_skips_empty_lines_and_comments(void **state)
{
    static const char *const lines[] = {"", "\r", "#", "# a comment", "#x\thttps://example.com/"};
    struct import_error err = {.reason = NULL};
    struct import_line parsed;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(lines); i++) {
        assert_int_equal(import_parse_line(lines[i], strlen(lines[i]), &policy, &parsed, &err),
                         IMPORT_LINE_SKIP);
        assert_null(parsed.url);
    }
}

static void parse_rejects_line_without_tab(void **state)
{
    const char line[] = "abc https://example.com/";

    expect_rejection(line, strlen(line), "malformed_line",
                     "expected code<TAB>url, but the line has no tab");
    expect_rejection(" ", 1, "malformed_line", "expected code<TAB>url, but the line has no tab");
}

static void parse_rejects_second_tab(void **state)
{
    const char line[] = "abc\thttps://example.com/\t";
    const char three[] = "a\tb\tc\td";

    expect_rejection(line, strlen(line), "malformed_line",
                     "expected code<TAB>url, but the line has 2 tabs");
    expect_rejection(three, strlen(three), "malformed_line",
                     "expected code<TAB>url, but the line has 3 tabs");
}

static void parse_rejects_empty_code(void **state)
{
    const char line[] = "\thttps://example.com/";

    expect_rejection(line, strlen(line), "invalid_code", "the code before the tab is empty");
}

static void parse_rejects_code_too_long(void **state)
{
    char line[128], code[STORE_CODE_MAX + 2], message[256];

    memset(code, 'y', STORE_CODE_MAX + 1);
    code[STORE_CODE_MAX + 1] = '\0';
    (void)snprintf(line, sizeof(line), "%s\thttp://example.com/", code);
    (void)snprintf(message, sizeof(message),
                   "code \"%s\" is 65 bytes long, longer than the maximum of 64 bytes", code);
    expect_rejection(line, strlen(line), "invalid_code", message);
}

static void parse_rejects_code_characters(void **state)
{
    const char slash[] = "a/b\thttps://example.com/";
    const char control[] = "ab\x01\thttps://example.com/";
    const char utf8[] = "caf\xc3\xa9\thttps://example.com/";
    const char quote[] = "a\"b\thttps://example.com/";

    expect_rejection(slash, strlen(slash), "invalid_code",
                     "code \"a/b\" contains the byte \"/\" at offset 1, but a code may contain "
                     "only letters, digits, '-' and '_'");
    expect_rejection(control, strlen(control), "invalid_code",
                     "code \"ab\\x01\" contains the byte \"\\x01\" at offset 2, but a code may "
                     "contain only letters, digits, '-' and '_'");
    expect_rejection(utf8, strlen(utf8), "invalid_code",
                     "code \"caf\\xc3\\xa9\" contains the byte \"\\xc3\" at offset 3, but a code "
                     "may contain only letters, digits, '-' and '_'");
    expect_rejection(quote, strlen(quote), "invalid_code",
                     "code \"a\\\"b\" contains the byte \"\\\"\" at offset 1, but a code may "
                     "contain only letters, digits, '-' and '_'");
}

static void parse_rejects_nul_bytes(void **state)
{
    const char in_code[] = "a\0b\thttps://example.com/";
    const char in_url[] = "ab\thttps://example.com/\0";

    expect_rejection(in_code, sizeof(in_code) - 1, "invalid_code",
                     "code \"a\\x00b\" contains the byte \"\\x00\" at offset 1, but a code may "
                     "contain only letters, digits, '-' and '_'");
    expect_rejection(in_url, sizeof(in_url) - 1, "invalid_url",
                     "URL contains the control character \\x00 at byte offset 20, which must be "
                     "removed or percent-encoded as %00");
}

static void parse_rejects_reserved_codes(void **state)
{
    static const char *const lines[] = {"api\thttps://example.com/",
                                        "HealthZ\thttps://example.com/",
                                        "metrics\thttps://example.com/"};
    static const char *const messages[] = {
        "code \"api\" is reserved for a path of the server",
        "code \"HealthZ\" is reserved for a path of the server",
        "code \"metrics\" is reserved for a path of the server",
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(lines); i++)
        expect_rejection(lines[i], strlen(lines[i]), "reserved_code", messages[i]);
}

static void parse_rejects_invalid_urls(void **state)
{
    static const struct {
        const char *line;
        const char *reason;
        const char *message;
    } cases[] = {
        {"a\t", "invalid_url",
         "URL is empty, but an absolute URL such as https://example.com/ is required"},
        {"a\tftp://example.com/", "unsupported_scheme",
         "URL scheme \"ftp\" is not allowed because only http and https URLs are accepted"},
        {"a\thttps://example.com/012345678901234567890123456789012345678901234", "url_too_long",
         "URL is 65 bytes long, longer than the maximum of 64 bytes"},
        {"a\thttp://SHORT.test/x", "redirect_loop",
         "URL host \"SHORT.test\" is the host of this service, so the link would redirect to "
         "itself"},
        {"a\thttps://user:pw@example.com/", "invalid_url",
         "URL contains user information before an '@' in its authority, which is not allowed "
         "because it can disguise the real host"},
        {"a\thttp://exa mple.com/", "invalid_url",
         "URL contains a space at byte offset 10, which must be percent-encoded as %20"},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++)
        expect_rejection(cases[i].line, strlen(cases[i].line), cases[i].reason, cases[i].message);
}

static void parse_rejects_invalid_host(void **state)
{
    const char line[] = "a\thttp://exa_mple$.com/";
    struct import_error err = {.reason = NULL};
    struct import_line parsed;

    assert_int_equal(import_parse_line(line, strlen(line), &policy, &parsed, &err), -EINVAL);
    assert_string_equal(err.reason, "invalid_host");
    assert_non_null(strstr(err.message, "exa_mple$.com"));
}

static void quote_escapes_unprintable_bytes(void **state)
{
    char out[64];

    assert_string_equal(import_quote("plain-text_1", 12, out, sizeof(out)), "plain-text_1");
    assert_string_equal(import_quote("a\"b\\c", 5, out, sizeof(out)), "a\\\"b\\\\c");
    assert_string_equal(import_quote("\t\n\x7f\xff", 4, out, sizeof(out)), "\\x09\\x0a\\x7f\\xff");
    assert_string_equal(import_quote("", 0, out, sizeof(out)), "");
}

static void quote_truncates_with_ellipsis(void **state)
{
    char out[12];

    /* A character is written while 8 bytes are left: 4 for its escape, 4 for "..." and NUL. */
    assert_string_equal(import_quote("abcdefghij", 10, out, sizeof(out)), "abcde...");
    assert_string_equal(import_quote("abcd", 4, out, sizeof(out)), "abcd");
    assert_string_equal(import_quote("\x01\x02", 2, out, sizeof(out)), "\\x01\\x02");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_accepts_code_and_url),
        cmocka_unit_test(parse_accepts_longest_code),
        cmocka_unit_test(parse_strips_one_trailing_cr),
        cmocka_unit_test(parse_normalises_url_like_api),
        cmocka_unit_test(parse_skips_empty_lines_and_comments),
        cmocka_unit_test(parse_rejects_line_without_tab),
        cmocka_unit_test(parse_rejects_second_tab),
        cmocka_unit_test(parse_rejects_empty_code),
        cmocka_unit_test(parse_rejects_code_too_long),
        cmocka_unit_test(parse_rejects_code_characters),
        cmocka_unit_test(parse_rejects_nul_bytes),
        cmocka_unit_test(parse_rejects_reserved_codes),
        cmocka_unit_test(parse_rejects_invalid_urls),
        cmocka_unit_test(parse_rejects_invalid_host),
        cmocka_unit_test(quote_escapes_unprintable_bytes),
        cmocka_unit_test(quote_truncates_with_ellipsis),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
