/*
 * libFuzzer target for import_parse_line. Every input must be skipped (only
 * when it is empty or a comment), rejected with one of the documented
 * reasons and a message without control bytes, or accepted as a valid,
 * unreserved code and a URL that url_normalize returns unchanged. A broken
 * invariant aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/import.h"
#include "app/links.h"
#include "app/url.h"
#include "web_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *invariant, const char *text, size_t len)
{
    fprintf(stderr, "fuzz_import_line: %s: \"%.*s\"\n", invariant, (int)len, text);
    abort();
}

static void check_rejection(const struct import_error *err, const char *line, size_t len)
{
    static const char *const reasons[] = {
        "malformed_line",     "invalid_code", "reserved_code", "invalid_url",
        "unsupported_scheme", "url_too_long", "invalid_host",  "redirect_loop",
    };
    size_t message_len = strnlen(err->message, sizeof(err->message));
    bool known = false;
    size_t i;

    for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (err->reason != NULL && strcmp(err->reason, reasons[i]) == 0)
            known = true;
    }
    if (!known)
        fail("reason is not documented", line, len);
    if (message_len == 0 || message_len == sizeof(err->message))
        fail("message is empty or not terminated", line, len);
    for (i = 0; i < message_len; i++) {
        unsigned char c = (unsigned char)err->message[i];

        if (c < 0x20 || c == 0x7F)
            fail("message contains a control byte", err->message, message_len);
    }
}

static void check_link(const struct import_line *parsed, const char *line, size_t len)
{
    struct url_error err = {0};
    size_t again_len = 0;
    char *again = NULL;

    if (!link_code_valid(parsed->code, parsed->code_len) ||
        link_code_reserved(parsed->code, parsed->code_len) ||
        strlen(parsed->code) != parsed->code_len)
        fail("accepted code is invalid or reserved", line, len);
    if (parsed->url == NULL || strlen(parsed->url) != parsed->url_len)
        fail("accepted URL is missing or has a NUL byte", line, len);
    if (parsed->url_len > web_policy.max_length)
        fail("accepted URL is too long", line, len);

    /* What the API would store for this URL is the URL itself. */
    if (url_normalize(parsed->url, parsed->url_len, &web_policy, &again, &again_len, &err) != 0)
        fail("accepted URL is rejected when normalised again", parsed->url, parsed->url_len);
    if (again_len != parsed->url_len || memcmp(again, parsed->url, again_len) != 0)
        fail("accepted URL changes when normalised again", parsed->url, parsed->url_len);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct import_error err = {.reason = NULL};
    struct import_line parsed;
    size_t content_len = size;
    int rc;

    rc = import_parse_line(line, size, &web_policy, &parsed, &err);
    if (size > 0 && line[size - 1] == '\r')
        content_len--;

    switch (rc) {
    case IMPORT_LINE_SKIP:
        if (content_len != 0 && line[0] != '#')
            fail("skipped a line that is neither empty nor a comment", line, size);
        break;
    case IMPORT_LINE_LINK:
        check_link(&parsed, line, size);
        free(parsed.url);
        break;
    case -EINVAL:
        check_rejection(&err, line, size);
        if (parsed.url != NULL)
            fail("rejected line left a URL to free", line, size);
        break;
    case -ENOMEM:
        break;
    default:
        fail("unexpected return value", line, size);
    }
    return 0;
}
