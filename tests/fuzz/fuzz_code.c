/*
 * libFuzzer target for link_code_valid and link_code_reserved.
 *
 * Invariants checked on every input:
 *   - a valid code is 1 to STORE_CODE_MAX bytes, each in [A-Za-z0-9_-];
 *   - every input of such bytes and length is valid (the check is exact);
 *   - a code is reserved exactly when it equals one of the server's path
 *     segments ignoring ASCII case, and changing the case of its letters
 *     never changes either result.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/links.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The first path segments of the server's own routes, lowercase. */
static const char *const server_segments[] = {"api", "healthz", "readyz", "metrics", "static"};

static void fail(const char *invariant, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_code: %s: \"%.*s\" (%zu bytes)\n", invariant, (int)size,
            (const char *)data, size);
    abort();
}

static bool is_code_byte(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/* Compares against the segment list without the library's own helper. */
static bool expected_reserved(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof(server_segments) / sizeof(server_segments[0]); i++) {
        const char *segment = server_segments[i];
        size_t j;

        if (strlen(segment) != size)
            continue;
        for (j = 0; j < size && lower(data[j]) == (uint8_t)segment[j]; j++)
            ;
        if (j == size)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so that AddressSanitizer sees a read past the end. */
    char *text = malloc(size > 0 ? size : 1);
    char *swapped = malloc(size > 0 ? size : 1);
    bool valid, reserved, all_code_bytes = true;

    if (text == NULL || swapped == NULL)
        abort();
    if (size > 0)
        memcpy(text, data, size);

    valid = link_code_valid(text, size);
    for (size_t i = 0; i < size; i++) {
        if (!is_code_byte(data[i]))
            all_code_bytes = false;
    }
    if (valid && (size == 0 || size > STORE_CODE_MAX))
        fail("a valid code has a length outside 1 to STORE_CODE_MAX", data, size);
    if (valid && !all_code_bytes)
        fail("a valid code contains a byte outside [A-Za-z0-9_-]", data, size);
    if (!valid && all_code_bytes && size >= 1 && size <= STORE_CODE_MAX)
        fail("a code of [A-Za-z0-9_-] with a valid length is rejected", data, size);

    reserved = link_code_reserved(text, size);
    if (reserved != expected_reserved(data, size))
        fail("reserved does not match the server's path segments", data, size);

    /* Swap the case of every ASCII letter: neither result may change. */
    for (size_t i = 0; i < size; i++) {
        uint8_t c = data[i];

        if (c >= 'a' && c <= 'z')
            c = (uint8_t)(c - 'a' + 'A');
        else if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        swapped[i] = (char)c;
    }
    if (link_code_reserved(swapped, size) != reserved)
        fail("reserved depends on letter case", data, size);
    if (link_code_valid(swapped, size) != valid)
        fail("validity depends on letter case", data, size);

    free(text);
    free(swapped);
    return 0;
}
