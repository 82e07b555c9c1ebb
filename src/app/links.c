/* Link records, create requests and JSON encoding, see links.h. */
#include "app/links.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app/url.h"

static const char *const reserved_segments[] = {"api", "healthz", "readyz", "metrics", "static"};

size_t link_record_encode(enum link_kind kind, int redirect_status, int64_t expires_at,
                          const char *url, size_t url_len, char *out)
{
    uint16_t status = (uint16_t)redirect_status;
    uint64_t expires = (uint64_t)expires_at;
    int i;

    out[0] = (char)kind;
    out[1] = 0;
    out[2] = (char)(status & 0xff);
    out[3] = (char)(status >> 8);
    for (i = 0; i < 8; i++)
        out[4 + i] = (char)((expires >> (8 * i)) & 0xff);
    if (url_len > 0)
        memcpy(out + LINK_RECORD_HEADER, url, url_len);
    return LINK_RECORD_HEADER + url_len;
}

int link_record_decode(const void *data, size_t len, struct link_record *record)
{
    const unsigned char *p = data;
    uint64_t expires = 0;
    int i;

    if (len < LINK_RECORD_HEADER)
        return -EINVAL;

    for (i = 7; i >= 0; i--)
        expires = (expires << 8) | p[4 + i];

    record->kind = (enum link_kind)p[0];
    record->redirect_status = p[2] | (p[3] << 8);
    record->expires_at = (int64_t)expires;
    record->url = (const char *)p + LINK_RECORD_HEADER;
    record->url_len = len - LINK_RECORD_HEADER;
    return 0;
}

bool link_code_valid(const char *text, size_t len)
{
    size_t i;
    char c;

    if (len == 0 || len > STORE_CODE_MAX)
        return false;
    for (i = 0; i < len; i++) {
        c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool link_code_reserved(const char *text, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(reserved_segments) / sizeof(reserved_segments[0]); i++) {
        if (strlen(reserved_segments[i]) == len && strncasecmp(reserved_segments[i], text, len) == 0)
            return true;
    }
    return false;
}

static void set_error(struct link_error *err, const char *code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(struct link_error *err, const char *code, const char *format, ...)
{
    va_list ap;

    err->status = 400;
    err->code = code;
    va_start(ap, format);
    (void)vsnprintf(err->message, sizeof(err->message), format, ap);
    va_end(ap);
}

int link_parse_create(const char *body, size_t len, const struct url_policy *policy,
                      struct link_create_request *request, struct link_error *err)
{
    json_error_t json_err;
    struct url_error url_err;
    json_t *root, *value;
    const char *key;
    json_int_t status;
    int rc = -EINVAL;

    memset(request, 0, sizeof(*request));

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &json_err);
    if (root == NULL) {
        set_error(err, "invalid_json", "The request body is not valid JSON: %s (line %d, column %d).",
                  json_err.text, json_err.line, json_err.column);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        set_error(err, "invalid_json", "The request body must be a JSON object.");
        goto out;
    }

    json_object_foreach(root, key, value) {
        if (strcmp(key, "url") != 0 && strcmp(key, "redirect_status") != 0) {
            set_error(err, "unknown_field",
                      "The field \"%.64s\" is not supported; a link takes url and redirect_status.",
                      key);
            goto out;
        }
    }

    value = json_object_get(root, "redirect_status");
    if (value != NULL && !json_is_null(value)) {
        status = json_is_integer(value) ? json_integer_value(value) : 0;
        if (status != 301 && status != 302 && status != 307 && status != 308) {
            set_error(err, "invalid_redirect_status",
                      "redirect_status must be one of 301, 302, 307 and 308.");
            goto out;
        }
        request->redirect_status = (int)status;
    }

    value = json_object_get(root, "url");
    if (value == NULL || json_is_null(value)) {
        set_error(err, "missing_url", "The field \"url\" is required.");
        goto out;
    }
    if (!json_is_string(value)) {
        set_error(err, "invalid_url", "The field \"url\" must be a string.");
        goto out;
    }

    rc = url_normalize(json_string_value(value), json_string_length(value), policy, &request->url,
                       &request->url_len, &url_err);
    if (rc == -EINVAL) {
        err->status = 400;
        err->code = url_err.code;
        snprintf(err->message, sizeof(err->message), "%s", url_err.message);
    }

out:
    json_decref(root);
    return rc;
}

void link_format_time(int64_t ms, char *out, size_t out_len)
{
    time_t seconds = (time_t)(ms / 1000);
    struct tm tm;

    (void)gmtime_r(&seconds, &tm);
    (void)strftime(out, out_len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *time_or_null(int64_t ms)
{
    char text[32];

    if (ms == 0)
        return json_null();
    link_format_time(ms, text, sizeof(text));
    return json_string(text);
}

char *link_to_json(const struct store_link *link, const char *base_url, size_t *len)
{
    char *short_url, *text;
    json_t *object;
    size_t base_len = strlen(base_url);

    short_url = malloc(base_len + 1 + link->code_len + 1);
    if (short_url == NULL)
        return NULL;
    memcpy(short_url, base_url, base_len);
    short_url[base_len] = '/';
    memcpy(short_url + base_len + 1, link->code, link->code_len + 1);

    object = json_pack("{s:s%, s:s, s:s%, s:o, s:o, s:o, s:I, s:i}", "code", link->code,
                       link->code_len, "short_url", short_url, "url", link->url, link->url_len,
                       "created_at", time_or_null(link->created_at), "expires_at",
                       time_or_null(link->expires_at), "max_visits",
                       link->max_visits > 0 ? json_integer(link->max_visits) : json_null(),
                       "visits", (json_int_t)link->visits, "redirect_status",
                       link->redirect_status);
    free(short_url);
    if (object == NULL)
        return NULL;

    text = json_dumps(object, JSON_COMPACT);
    json_decref(object);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

char *link_error_json(const char *code, const char *message, size_t *len)
{
    char ascii[512];
    json_t *object;
    char *text;
    size_t i;

    object = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    if (object == NULL) {
        /* A message cut inside a UTF-8 sequence: send it as ASCII instead. */
        for (i = 0; message[i] != '\0' && i < sizeof(ascii) - 1; i++)
            ascii[i] = (unsigned char)message[i] < 0x80 ? message[i] : '?';
        ascii[i] = '\0';
        object = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", ascii);
    }
    if (object == NULL)
        return NULL;
    text = json_dumps(object, JSON_COMPACT);
    json_decref(object);
    if (text != NULL)
        *len = strlen(text);
    return text;
}
