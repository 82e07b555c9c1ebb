/*
 * libFuzzer target for link_parse_create, the decoder of create request
 * bodies, with every field: url, alias, expires_at, max_visits,
 * redirect_status and cache_max_age.
 *
 * Invariants checked on every input:
 *   - the result is 0, -EINVAL or -ENOMEM;
 *   - on -EINVAL the error has status 400, a known snake_case code and a
 *     terminated, non-empty message, and link_error_json turns it into a
 *     JSON document that jansson reads back with the same code;
 *   - on 0 the URL is NUL-terminated, of the stated length, within the
 *     policy's maximum and safe for a Location header; the alias is empty
 *     or a valid, unreserved code; expires_at is 0 or after now; max_visits
 *     is 0 or positive; redirect_status is 0, 301, 302, 307 or 308; and
 *     cache_max_age is -1 or within 0 to LINK_CACHE_MAX_AGE_MAX.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/links.h"
#include "app/url.h"
#include "web_policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* jansson allocates through the same wrapper as in shortd. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    link_json_setup();
    return 0;
}

/* 2026-12-04T00:00:00Z: a fixed now keeps findings reproducible. */
#define NOW_MS INT64_C(1796342400000)

static const char *const error_codes[] = {
    "invalid_json",          "unknown_field", "invalid_redirect_status", "invalid_max_visits",
    "invalid_cache_max_age", "invalid_alias", "reserved_alias",          "invalid_expires_at",
    "missing_url",           "invalid_url",   "unsupported_scheme",      "url_too_long",
    "invalid_host",          "redirect_loop",
};

static void fail(const char *invariant, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_json_create: %s: \"%.*s\"\n", invariant, (int)size, (const char *)data);
    abort();
}

static void check_error(const struct link_error *err, const uint8_t *data, size_t size)
{
    size_t message_len = strnlen(err->message, sizeof(err->message));
    json_t *document, *code;
    json_error_t json_err;
    bool known = false;
    char *text;
    size_t len = 0;

    if (err->status != 400)
        fail("a rejected body does not get 400", data, size);
    for (size_t i = 0; i < sizeof(error_codes) / sizeof(error_codes[0]); i++) {
        if (err->code != NULL && strcmp(err->code, error_codes[i]) == 0)
            known = true;
    }
    if (!known)
        fail("the error code is not one of the documented codes", data, size);
    if (message_len == 0 || message_len == sizeof(err->message))
        fail("the error message is empty or not terminated", data, size);

    text = link_error_json(err->code, err->message, &len);
    if (text == NULL)
        return; /* out of memory */
    document = json_loadb(text, len, 0, &json_err);
    if (document == NULL)
        fail("the error body is not JSON", data, size);
    code = json_object_get(json_object_get(document, "error"), "code");
    if (!json_is_string(code) || strcmp(json_string_value(code), err->code) != 0)
        fail("the error body lost its code", data, size);
    json_decref(document);
    free(text);
}

static void check_request(const struct link_create_request *request, const uint8_t *data,
                          size_t size)
{
    if (request->url == NULL || strlen(request->url) != request->url_len)
        fail("the URL is missing or its length is wrong", data, size);
    if (request->url_len > web_policy.max_length)
        fail("the URL is longer than the policy allows", data, size);
    if (!url_is_header_safe(request->url, request->url_len))
        fail("the URL is not safe for a Location header", data, size);

    if (strlen(request->alias) != request->alias_len)
        fail("the alias length is wrong", data, size);
    if (request->alias_len > 0 && (!link_code_valid(request->alias, request->alias_len) ||
                                   link_code_reserved(request->alias, request->alias_len)))
        fail("an accepted alias is invalid or reserved", data, size);

    if (request->expires_at != 0 && request->expires_at <= NOW_MS)
        fail("an accepted expires_at is not in the future", data, size);
    if (request->max_visits < 0)
        fail("max_visits is negative", data, size);
    if (request->redirect_status != 0 && request->redirect_status != 301 &&
        request->redirect_status != 302 && request->redirect_status != 307 &&
        request->redirect_status != 308)
        fail("redirect_status is not a redirect", data, size);
    if (request->cache_max_age != -1 &&
        (request->cache_max_age < 0 || request->cache_max_age > LINK_CACHE_MAX_AGE_MAX))
        fail("cache_max_age is out of range", data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct link_create_request request;
    struct link_error err;
    char *body = malloc(size > 0 ? size : 1);
    int rc;

    if (body == NULL)
        abort();
    if (size > 0)
        memcpy(body, data, size);
    memset(&err, 0, sizeof(err));

    rc = link_parse_create(body, size, &web_policy, NOW_MS, &request, &err);
    if (rc == 0)
        check_request(&request, data, size);
    else if (rc == -EINVAL)
        check_error(&err, data, size);
    else if (rc != -ENOMEM)
        fail("the result is neither 0, -EINVAL nor -ENOMEM", data, size);

    if (rc == 0)
        free(request.url);
    free(body);
    return 0;
}
