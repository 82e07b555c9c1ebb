/*
 * Runs url_normalize on 100,000 real URLs from Debian package metadata
 * (tests/data/urls-debian.txt.xz, one URL a line) under the default policy.
 * Every accepted URL must come back byte for byte, except the lines listed
 * in rewritten_lines, and the rejected lines must be exactly those listed in
 * rejected_lines with their error code. The test reads the file through
 * "xz -dc", from the repository root, where the tests run.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/url.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CORPUS_PATH  "tests/data/urls-debian.txt.xz"
#define CORPUS_LINES 100000

/* Mismatches printed in full before the test fails, so one run shows the pattern. */
#define MISMATCHES_SHOWN 20

struct rejected_line {
    long line;
    const char *code;
};

struct rewritten_line {
    long line;
    const char *output;
};

/*
 * The malformed lines of the corpus. Each is a template, a pattern or a typo
 * rather than an address a browser could open.
 */
static const struct rejected_line rejected_lines[] = {
    /* "http://": scheme without a host. */
    {10529, "invalid_url"},
    /* "https://pypi.org/project/%s/": printf placeholder, '%' without two hex digits. */
    {14054, "invalid_url"},
    /* "https://translationproject.or)-.35": ')' in the host, a truncated and garbled name. */
    {21336, "invalid_host"},
    /* https:// and "*.example.com.proxy": wildcard pattern, '*' cannot be in a host. */
    {32542, "invalid_host"},
    /* "https://github.com/pypa/pip/issues/%s": printf placeholder. */
    {36152, "invalid_url"},
    /* "http://host:port/json/list": documentation template, the port "port" is not a number. */
    {55703, "invalid_url"},
    /* "http://.+": regular expression, empty first label and '+' in the host. */
    {65544, "invalid_host"},
    /* "http://www.zlib.org,http://www.zlib.org": two URLs joined by a comma, ',' in the host. */
    {67624, "invalid_host"},
    /* "http://127.0.0.1:$": shell template, the port "$" is not a number. */
    {76175, "invalid_url"},
    /* "http://$host:$server_port$request_uri": nginx variables, the port is not a number. */
    {85936, "invalid_url"},
    /* "http://.*cairographics.org": regular expression, '*' in the host. */
    {91190, "invalid_host"},
    /* "http://$URL": shell variable, '$' in the host. */
    {91192, "invalid_host"},
    /* "https://github.com/pypa/pip/pull/%s": printf placeholder. */
    {92807, "invalid_url"},
    /* "http://.*freedesktop.org": regular expression, '*' in the host. */
    {97675, "invalid_host"},
    /* "https://example.org$": regular expression anchor, '$' in the host. */
    {98313, "invalid_host"},
};

/*
 * The accepted lines whose normalised form differs from the input: only an
 * internationalised host. Lines 35 and 93853 (matrix.to links with a second
 * '#') stay byte for byte as they are, because '#' is safe in a header and
 * browsers keep it.
 */
static const struct rewritten_line rewritten_lines[] = {
    /* Percent-encoded UTF-8 host (U+03C0), converted to its A-label. */
    {47704, "https://xn--1xa.example.com/foo"},
};

static const char *const web_schemes[] = {"http", "https"};

static const struct url_policy web_policy = {
    .schemes = web_schemes,
    .scheme_count = 2,
    .max_length = 8192,
    .own_host = "short.example",
};

static const struct rejected_line *find_rejected(long line)
{
    for (size_t i = 0; i < ARRAY_SIZE(rejected_lines); i++) {
        if (rejected_lines[i].line == line)
            return &rejected_lines[i];
    }
    return NULL;
}

static const struct rewritten_line *find_rewritten(long line)
{
    for (size_t i = 0; i < ARRAY_SIZE(rewritten_lines); i++) {
        if (rewritten_lines[i].line == line)
            return &rewritten_lines[i];
    }
    return NULL;
}

/*
 * Returns whether line `number`, url[0..len), gets its expected result, and
 * prints the difference if it does not and verbose is set.
 */
static bool check_line(long number, const char *url, size_t len, bool verbose,
                       size_t *rejected_count)
{
    const struct rejected_line *rejected = find_rejected(number);
    const struct rewritten_line *rewritten = find_rewritten(number);
    const char *expected = rewritten != NULL ? rewritten->output : url;
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    bool ok;
    int rc;

    rc = url_normalize(url, len, &web_policy, &out, &out_len, &err);
    if (rc == -EINVAL)
        (*rejected_count)++;

    if (rejected != NULL) {
        ok = rc == -EINVAL && strcmp(err.code, rejected->code) == 0;
        if (!ok && verbose)
            print_error("line %ld \"%s\": expected %s, got %s\n", number, url, rejected->code,
                        rc == 0 ? out : err.code);
    } else {
        ok = rc == 0 && out_len == strlen(expected) && memcmp(out, expected, out_len) == 0;
        if (!ok && verbose)
            print_error("line %ld \"%s\": expected \"%s\", got %s: %s\n", number, url, expected,
                        rc == 0 ? "output" : err.code, rc == 0 ? out : err.message);
    }
    free(out);
    return ok;
}

static void test_corpus_round_trips(void **state)
{
    FILE *corpus = popen("xz -dc " CORPUS_PATH, "r");
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    long number = 0;
    size_t mismatches = 0;
    size_t rejected_count = 0;

    assert_non_null(corpus);
    while ((length = getline(&line, &capacity, corpus)) > 0) {
        number++;
        if (line[length - 1] == '\n')
            line[--length] = '\0';

        if (!check_line(number, line, (size_t)length, mismatches < MISMATCHES_SHOWN,
                        &rejected_count))
            mismatches++;
    }
    free(line);
    assert_int_equal(pclose(corpus), 0);

    assert_int_equal(number, CORPUS_LINES);
    assert_int_equal(mismatches, 0);
    assert_int_equal(rejected_count, ARRAY_SIZE(rejected_lines));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_round_trips),
    };

    return cmocka_run_group_tests_name("url_corpus", tests, NULL, NULL);
}
