/*
 * The URL policy that the fuzz targets of URLs, create bodies and import
 * lines share: http and https URLs of at most 8192 bytes, with
 * short.example as the server's own host.
 */
#ifndef SHORTD_TESTS_FUZZ_WEB_POLICY_H
#define SHORTD_TESTS_FUZZ_WEB_POLICY_H

#include "app/url.h"

static const char *const web_schemes[] = {"http", "https"};

static const struct url_policy web_policy = {
    .schemes = web_schemes,
    .scheme_count = 2,
    .max_length = 8192,
    .own_host = "short.example",
};

#endif
