/* Link records, create requests and JSON encoding, see links.h. */
#include "app/links.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/datetime.h"
#include "app/url.h"

static const char *const reserved_segments[] = {"api", "healthz", "readyz", "metrics", "static"};

static void put_u64(char *out, uint64_t value, int bytes)
{
    int i;

    for (i = 0; i < bytes; i++)
        out[i] = (char)((value >> (8 * i)) & 0xff);
}

static uint64_t get_u64(const unsigned char *in, int bytes)
{
    uint64_t value = 0;
    int i;

    for (i = bytes - 1; i >= 0; i--)
        value = (value << 8) | in[i];
    return value;
}

static unsigned record_flags(const struct link_record *record)
{
    unsigned flags = 0;

    if (record->expires_at != 0)
        flags |= LINK_HAS_EXPIRY;
    if (record->max_visits != 0)
        flags |= LINK_HAS_LIMIT;
    if (record->cache_max_age >= 0)
        flags |= LINK_HAS_CACHE_MAX_AGE;
    if (record->owner_key_id != 0)
        flags |= LINK_HAS_OWNER;
    return flags;
}

static size_t header_size(unsigned flags)
{
    return LINK_RECORD_FIXED + ((flags & LINK_HAS_EXPIRY) ? 8 : 0) +
           ((flags & LINK_HAS_LIMIT) ? 8 : 0) + ((flags & LINK_HAS_CACHE_MAX_AGE) ? 4 : 0) +
           ((flags & LINK_HAS_OWNER) ? 8 : 0);
}

size_t link_record_size(const struct link_record *record)
{
    return header_size(record_flags(record)) + record->url_len;
}

size_t link_record_encode(const struct link_record *record, char *out)
{
    unsigned flags = record_flags(record);
    size_t pos = LINK_RECORD_FIXED;

    out[0] = (char)record->kind;
    out[1] = (char)flags;
    put_u64(out + 2, (uint16_t)record->redirect_status, 2);
    put_u64(out + 4, (uint64_t)record->id, 8);
    if (flags & LINK_HAS_EXPIRY) {
        put_u64(out + pos, (uint64_t)record->expires_at, 8);
        pos += 8;
    }
    if (flags & LINK_HAS_LIMIT) {
        put_u64(out + pos, (uint64_t)record->max_visits, 8);
        pos += 8;
    }
    if (flags & LINK_HAS_CACHE_MAX_AGE) {
        put_u64(out + pos, (uint64_t)record->cache_max_age, 4);
        pos += 4;
    }
    if (flags & LINK_HAS_OWNER) {
        put_u64(out + pos, (uint64_t)record->owner_key_id, 8);
        pos += 8;
    }
    if (record->url_len > 0)
        memcpy(out + pos, record->url, record->url_len);
    return pos + record->url_len;
}

int link_record_decode(const void *data, size_t len, struct link_record *record)
{
    const unsigned char *p = data;
    unsigned flags;
    size_t pos = LINK_RECORD_FIXED;

    if (len < LINK_RECORD_FIXED)
        return -EINVAL;
    flags = p[1];
    if (flags & ~(unsigned)(LINK_HAS_EXPIRY | LINK_HAS_LIMIT | LINK_HAS_CACHE_MAX_AGE |
                            LINK_HAS_OWNER) ||
        len < header_size(flags))
        return -EINVAL;

    record->kind = (enum link_kind)p[0];
    record->redirect_status = (int)get_u64(p + 2, 2);
    record->id = (int64_t)get_u64(p + 4, 8);
    record->expires_at = 0;
    record->max_visits = 0;
    record->cache_max_age = -1;
    record->owner_key_id = 0;
    if (flags & LINK_HAS_EXPIRY) {
        record->expires_at = (int64_t)get_u64(p + pos, 8);
        pos += 8;
    }
    if (flags & LINK_HAS_LIMIT) {
        record->max_visits = (int64_t)get_u64(p + pos, 8);
        pos += 8;
    }
    if (flags & LINK_HAS_CACHE_MAX_AGE) {
        record->cache_max_age = (int64_t)get_u64(p + pos, 4);
        pos += 4;
    }
    if (flags & LINK_HAS_OWNER) {
        record->owner_key_id = (int64_t)get_u64(p + pos, 8);
        pos += 8;
    }
    record->url = (const char *)p + pos;
    record->url_len = len - pos;
    return 0;
}

void link_record_from_store(const struct store_link *link, struct link_record *record)
{
    record->kind = link->deleted_at != 0   ? LINK_GONE
                   : link->expired_at != 0 ? LINK_EXPIRED
                                           : LINK_LIVE;
    record->redirect_status = link->redirect_status;
    record->id = link->id;
    record->expires_at = link->expires_at;
    record->max_visits = link->max_visits;
    record->cache_max_age = link->cache_max_age;
    record->owner_key_id = link->owner_key_id;
    record->url = link->url;
    record->url_len = record->kind == LINK_LIVE ? link->url_len : 0;
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

/*
 * State of a link_json_load or link_json_dump on this thread. jansson 2.14
 * reports some allocation failures inside its lexer as syntax errors, so its
 * error code alone cannot tell them from invalid JSON.
 */
static _Thread_local bool json_guarded;
static _Thread_local bool json_allocation_failed;

static void *json_allocate(size_t size)
{
    void *memory;

    /*
     * jansson 2.14 ignores some failed allocations and goes on. Its lexer
     * ignores a failed growth of its text buffer: when the closing quote of
     * a string was not saved, the copy of the string, allocated next, runs
     * past both buffers until it meets a quote. Its encoder ignores a failed
     * write of an object key and returns text without the key. So after one
     * failure, every later allocation of the same parse or encoding fails
     * too, and the caller gets no result rather than a corrupt one.
     */
    if (json_guarded && json_allocation_failed)
        return NULL;

    memory = malloc(size);
    if (memory == NULL)
        json_allocation_failed = true;
    return memory;
}

void link_json_setup(void)
{
    json_set_alloc_funcs(json_allocate, free);
}

json_t *link_json_load(const char *body, size_t len, json_error_t *err, bool *out_of_memory)
{
    json_t *root;

    json_guarded = true;
    json_allocation_failed = false;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, err);
    json_guarded = false;
    if (root != NULL && json_allocation_failed) {
        /* A value may be missing a part that could not be allocated. */
        json_decref(root);
        root = NULL;
    }
    /* A failure to set up the lexer returns before writing any error text. */
    *out_of_memory =
        root == NULL && (json_allocation_failed ||
                         json_error_code(err) == json_error_out_of_memory || err->text[0] == '\0');
    return root;
}

char *link_json_dump(const json_t *value)
{
    char *text;

    if (value == NULL)
        return NULL;
    json_guarded = true;
    json_allocation_failed = false;
    text = json_dumps(value, JSON_COMPACT);
    json_guarded = false;
    if (text != NULL && json_allocation_failed) {
        free(text);
        text = NULL;
    }
    return text;
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

/* Reads an optional integer field. Returns 1 when present, 0 when absent
 * or null, -1 when it is not an integer within [min, max]. */
static int optional_integer(json_t *root, const char *name, int64_t min, int64_t max,
                            int64_t *value)
{
    json_t *field = json_object_get(root, name);

    if (field == NULL || json_is_null(field))
        return 0;
    if (!json_is_integer(field) || json_integer_value(field) < min ||
        json_integer_value(field) > max)
        return -1;
    *value = json_integer_value(field);
    return 1;
}

static int parse_alias(json_t *root, struct link_create_request *request, struct link_error *err)
{
    json_t *field = json_object_get(root, "alias");
    const char *alias;
    size_t len;

    if (field == NULL || json_is_null(field))
        return 0;
    if (!json_is_string(field)) {
        set_error(err, "invalid_alias", "The field \"alias\" must be a string.");
        return -EINVAL;
    }
    alias = json_string_value(field);
    len = json_string_length(field);
    if (!link_code_valid(alias, len)) {
        set_error(err, "invalid_alias",
                  "An alias is 1 to %d characters of letters, digits, '-' and '_'.",
                  STORE_CODE_MAX);
        return -EINVAL;
    }
    if (link_code_reserved(alias, len)) {
        set_error(err, "reserved_alias",
                  "The alias \"%s\" is reserved for a path of the server; choose another.", alias);
        return -EINVAL;
    }
    memcpy(request->alias, alias, len + 1);
    request->alias_len = len;
    return 0;
}

static int parse_expiry(json_t *root, int64_t now, struct link_create_request *request,
                        struct link_error *err)
{
    json_t *field = json_object_get(root, "expires_at");

    if (field == NULL || json_is_null(field))
        return 0;
    if (!json_is_string(field) ||
        datetime_parse_rfc3339(json_string_value(field), json_string_length(field),
                               &request->expires_at) < 0) {
        set_error(err, "invalid_expires_at",
                  "expires_at must be an RFC 3339 time such as 2030-01-31T12:00:00Z.");
        return -EINVAL;
    }
    if (request->expires_at <= now) {
        set_error(err, "invalid_expires_at", "expires_at is in the past.");
        return -EINVAL;
    }
    return 0;
}

int link_parse_create(const char *body, size_t len, const struct url_policy *policy, int64_t now,
                      struct link_create_request *request, struct link_error *err)
{
    static const char *const known[] = {"url",        "alias",           "expires_at",
                                        "max_visits", "redirect_status", "cache_max_age"};
    json_error_t json_err;
    struct url_error url_err;
    bool out_of_memory;
    json_t *root, *value;
    const char *key;
    int64_t number;
    size_t i;
    int rc = -EINVAL;

    memset(request, 0, sizeof(*request));
    request->cache_max_age = -1;

    root = link_json_load(body, len, &json_err, &out_of_memory);
    if (out_of_memory)
        return -ENOMEM;
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
        for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (strcmp(key, known[i]) == 0)
                break;
        }
        if (i == sizeof(known) / sizeof(known[0])) {
            set_error(err, "unknown_field",
                      "The field \"%.64s\" is not supported; a link takes url, alias, "
                      "expires_at, max_visits, redirect_status and cache_max_age.",
                      key);
            goto out;
        }
    }

    number = 0;
    switch (optional_integer(root, "redirect_status", 301, 308, &number)) {
    case 1:
        if (number == 301 || number == 302 || number == 307 || number == 308) {
            request->redirect_status = (int)number;
            break;
        }
        /* fall through */
    case -1:
        set_error(err, "invalid_redirect_status",
                  "redirect_status must be one of 301, 302, 307 and 308.");
        goto out;
    default:
        break;
    }

    if (optional_integer(root, "max_visits", 1, INT64_MAX, &request->max_visits) < 0) {
        set_error(err, "invalid_max_visits", "max_visits must be a whole number of at least 1.");
        goto out;
    }
    if (optional_integer(root, "cache_max_age", 0, LINK_CACHE_MAX_AGE_MAX,
                         &request->cache_max_age) < 0) {
        set_error(err, "invalid_cache_max_age",
                  "cache_max_age must be a whole number of seconds from 0 to %d.",
                  LINK_CACHE_MAX_AGE_MAX);
        goto out;
    }
    if (parse_alias(root, request, err) < 0 || parse_expiry(root, now, request, err) < 0)
        goto out;

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
    char text[DATETIME_TIMESTAMP_SIZE];

    datetime_format_timestamp(ms, text);
    snprintf(out, out_len, "%s", text);
}

static json_t *time_or_null(int64_t ms)
{
    char text[DATETIME_TIMESTAMP_SIZE];

    if (ms == 0)
        return json_null();
    datetime_format_timestamp(ms, text);
    return json_string(text);
}

json_t *link_to_object(const struct store_link *link, const char *base_url)
{
    size_t base_len = strlen(base_url);
    char *short_url;
    json_t *object;

    short_url = malloc(base_len + 1 + link->code_len + 1);
    if (short_url == NULL)
        return NULL;
    memcpy(short_url, base_url, base_len);
    short_url[base_len] = '/';
    memcpy(short_url + base_len + 1, link->code, link->code_len + 1);

    object = json_pack("{s:s%, s:s, s:s%, s:o, s:o, s:o, s:I, s:i, s:o}", "code", link->code,
                       link->code_len, "short_url", short_url, "url", link->url, link->url_len,
                       "created_at", time_or_null(link->created_at), "expires_at",
                       time_or_null(link->expires_at), "max_visits",
                       link->max_visits > 0 ? json_integer(link->max_visits) : json_null(),
                       "visits", (json_int_t)link->visits, "redirect_status",
                       link->redirect_status, "cache_max_age",
                       link->cache_max_age >= 0 ? json_integer(link->cache_max_age)
                                                : json_null());
    free(short_url);
    return object;
}

char *link_to_json(const struct store_link *link, const char *base_url, size_t *len)
{
    json_t *object = link_to_object(link, base_url);
    char *text;

    if (object == NULL)
        return NULL;
    text = link_json_dump(object);
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
    text = link_json_dump(object);
    json_decref(object);
    if (text != NULL)
        *len = strlen(text);
    return text;
}
