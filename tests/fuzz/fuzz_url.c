/*
 * libFuzzer target for url_normalize. Every input must either be rejected
 * with one of the documented error codes and a message without control
 * bytes, or be accepted with an output that is header-safe, free of control
 * bytes, within max_length, and returned unchanged when normalised again.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/url.h"
#include "web_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *invariant, const char *text, size_t len)
{
    fprintf(stderr, "fuzz_url: %s: \"%.*s\"\n", invariant, (int)len, text);
    abort();
}

static void check_error(int rc, const struct url_error *err, const char *input, size_t len)
{
    static const char *const codes[] = {"invalid_url", "unsupported_scheme", "url_too_long",
                                        "invalid_host", "redirect_loop"};
    bool known = false;
    size_t message_len = strnlen(err->message, sizeof(err->message));

    if (rc != -EINVAL)
        fail("return value is neither 0 nor -EINVAL", input, len);
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (err->code != NULL && strcmp(err->code, codes[i]) == 0)
            known = true;
    }
    if (!known)
        fail("error code is not documented", input, len);
    if (message_len == 0 || message_len == sizeof(err->message))
        fail("message is empty or not terminated", input, len);
    for (size_t i = 0; i < message_len; i++) {
        unsigned char c = (unsigned char)err->message[i];

        if (c < 0x20 || c == 0x7F)
            fail("message contains a control byte", err->message, message_len);
    }
}

static void check_output(const char *out, size_t out_len)
{
    struct url_error err = {0};
    char *again = NULL;
    size_t again_len = 0;
    int rc;

    if (out_len > web_policy.max_length)
        fail("output is longer than max_length", out, out_len);
    if (strlen(out) != out_len)
        fail("output length does not match its NUL", out, out_len);
    for (size_t i = 0; i < out_len; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c < 0x20 || c == 0x7F)
            fail("output contains a control byte", out, out_len);
    }
    if (!url_is_header_safe(out, out_len))
        fail("output is not header-safe", out, out_len);

    rc = url_normalize(out, out_len, &web_policy, &again, &again_len, &err);
    if (rc != 0) {
        fprintf(stderr, "fuzz_url: %s\n", err.message);
        fail("normalising the output rejects it", out, out_len);
    }
    if (again_len != out_len || memcmp(again, out, out_len) != 0)
        fail("normalising the output changes it", out, out_len);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct url_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    int rc;

    rc = url_normalize((const char *)data, size, &web_policy, &out, &out_len, &err);
    if (rc == -ENOMEM)
        return 0;
    if (rc != 0) {
        check_error(rc, &err, (const char *)data, size);
        return 0;
    }
    check_output(out, out_len);
    free(out);
    return 0;
}
