/*
 * Differential test of shortd's request parser against Debian's http-parser
 * 2.9.4 (libhttp-parser-dev) over the corpus in tests/data/http, one raw
 * request or pipeline per file.
 *
 * Both parsers run each file as a server would: parse a request, read its
 * body by Content-Length or chunked framing, and go on with the next
 * request. A run stops when the bytes run out or a request is rejected. It
 * also stops after a request that ends the connection: Connection: close,
 * HTTP/1.0 without keep-alive, CONNECT, or an upgrade. For every request, either both reject it, or
 * both accept it with the same method, target, header fields, body and persistence, or the file is
 * listed in intended_differences with the reason. A listed file that no longer differs fails too,
 * so the list stays true.
 *
 * The corpus folder is tests/data/http relative to the working directory
 * (the repository root under make), or SHORTD_HTTP_CORPUS when set.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

/* Both headers declare enum http_method; rename the one of http-parser. */
#define http_method hp_http_method
#include <http_parser.h>
#undef http_method

#include "net/http_parser.h"

#define CORPUS_MIN_FILES 150
#define MAX_MESSAGES     8
#define MAX_FIELDS       128
#define TEXT_MAX         (64 * 1024)

/*
 * Requests on which shortd and http-parser disagree on purpose. shortd is
 * stricter wherever leniency lets two parsers see different requests, and
 * http-parser 2.9.4 does not check some rules of RFC 9112 and RFC 9110.
 */
static const struct {
    const char *file;
    const char *reason;
} intended_differences[] = {
    /* Line endings: RFC 9112 section 2.2 allows a bare LF, shortd does not. */
    {"bare-lf-request-line.http", "bare LF ends the request line"},
    {"bare-lf-header.http", "bare LF ends a header line"},
    {"bare-lf-end-of-head.http", "bare LF ends the head"},
    {"bare-lf-everywhere.http", "bare LF ends every line"},
    {"leading-bare-lf.http", "bare LF before the request line"},
    {"chunk-trailer-bare-lf.http", "bare LF ends a trailer line"},
    {"chunk-extension-bare-lf.http", "bare LF inside a chunk extension"},

    /* obs-fold and whitespace that RFC 9112 lets a server reject. */
    {"obs-fold-space.http", "obs-fold with SP"},
    {"obs-fold-tab.http", "obs-fold with HTAB"},
    {"te-obs-fold.http", "Transfer-Encoding value folded onto the next line"},
    {"te-hidden-by-fold.http", "Transfer-Encoding hidden in a folded line"},
    {"chunk-trailer-obs-fold.http", "obs-fold in the trailer section"},
    {"first-header-leading-space.http", "whitespace before the first header line"},
    {"te-leading-space-name.http", "whitespace before the first header line"},
    {"leading-crlf-five.http", "more than 4 empty lines before the request line"},
    {"header-space-before-colon.http", "whitespace between field name and colon"},
    {"cl-space-before-colon.http", "whitespace between field name and colon"},
    {"te-space-before-colon.http", "whitespace between field name and colon"},
    {"chunk-trailer-space-before-colon.http", "whitespace between field name and colon"},
    {"request-line-double-space.http", "more than one SP between method and target"},
    {"request-line-space-before-version.http", "more than one SP between target and version"},

    /* Body framing. */
    {"te-gzip-chunked.http", "a transfer coding other than chunked, even before chunked"},
    {"te-duplicate-fields.http", "Transfer-Encoding twice"},
    {"te-in-http10.http", "Transfer-Encoding in an HTTP/1.0 request"},
    {"chunk-size-17-digits-leading-zeros.http", "chunk size of more than 16 hex digits"},
    {"chunk-size-trailing-space.http", "whitespace after a chunk size without extension"},
    {"chunk-extension-control-char.http", "control byte in a chunk extension"},

    /* Request line and target. */
    {"method-lowercase-get.http", "any token is a method for shortd"},
    {"method-unknown-token.http", "any token is a method for shortd"},
    {"request-line-too-long.http", "request line above shortd's max_request_line"},
    {"target-quote.http", "'\"' is not allowed in a URI"},
    {"target-angle-brackets.http", "'<' and '>' are not allowed in a URI"},
    {"target-backslash.http", "'\\' is not allowed in a URI"},
    {"target-caret.http", "'^' is not allowed in a URI"},
    {"target-backtick.http", "'`' is not allowed in a URI"},
    {"target-braces.http", "'{' and '}' are not allowed in a URI"},
    {"target-pipe.http", "'|' is not allowed in a URI"},
    {"target-utf8.http", "bytes above 0x7F are not allowed in a URI"},
    {"target-fragment.http", "a fragment is not allowed in a request target"},
    {"target-bad-percent.http", "'%' not followed by two hex digits"},
    {"target-truncated-percent.http", "'%' not followed by two hex digits"},
    {"target-asterisk-get.http", "asterisk-form with a method other than OPTIONS"},
    {"target-ftp-scheme.http", "absolute-form with a scheme other than http or https"},
    {"target-userinfo.http", "userinfo in the request target"},
    {"connect-origin-form.http", "CONNECT needs host:port"},
    {"connect-no-port.http", "CONNECT needs host:port"},
    {"http09-request.http", "HTTP/0.9 request line without version"},
    {"request-line-missing-version.http", "request line without version"},
    {"target-empty-host.http", "http URL with an empty host"},
    {"version-http12.http", "HTTP/1.2 gets 505"},
    {"version-http09.http", "HTTP/0.9 gets 505"},
    {"version-http2.http", "HTTP/2.0 gets 505"},

    /* Header fields. */
    {"header-too-many-70.http", "more header fields than shortd's max_headers"},
    {"host-missing-http11.http", "HTTP/1.1 request without Host"},
    {"host-duplicate.http", "Host twice"},
    {"host-duplicate-different.http", "Host twice"},
    {"host-duplicate-http10.http", "Host twice"},
    {"host-invalid-space.http", "Host value is not a host"},
    {"host-with-path.http", "Host value is not a host"},
    {"host-with-userinfo.http", "Host value is not a host"},
    {"expect-unknown.http", "an expectation other than 100-continue gets 417"},
    {"expect-200-ok.http", "an expectation other than 100-continue gets 417"},
    {"connection-non-token.http", "Connection value is not a list of tokens"},
    {"escape-char-in-value.http", "ESC at the start of a field value"},
    {"pipeline-second-invalid.http", "control byte at the start of a field value"},
};

enum outcome {
    OUTCOME_ACCEPTED,
    OUTCOME_REJECTED,
    OUTCOME_INCOMPLETE,
};

/* One request as a parser saw it. Strings are offsets into text. */
struct message {
    enum outcome outcome;
    char method[32];
    size_t url, url_len;
    unsigned field_count;
    size_t names[MAX_FIELDS], name_lens[MAX_FIELDS];
    size_t values[MAX_FIELDS], value_lens[MAX_FIELDS];
    size_t body, body_len;
    bool keep_alive;
    char reason[160];
    char text[TEXT_MAX];
    size_t text_len;
};

struct run {
    struct message messages[MAX_MESSAGES];
    unsigned count;
};

static struct run shortd_run;
static struct run http_parser_run;

/* Whether the comparison prints what differs; off for the first pass. */
static bool print_differences;

/* Requests that both parsers accepted with the same result. */
static unsigned requests_equal;

#define report(...)                                                                                \
    do {                                                                                           \
        if (print_differences)                                                                     \
            print_message(__VA_ARGS__);                                                            \
    } while (0)

static size_t append_text(struct message *m, const char *at, size_t len)
{
    size_t offset = m->text_len;

    assert_true(len <= TEXT_MAX - m->text_len);
    memcpy(m->text + offset, at, len);
    m->text_len += len;
    return offset;
}

static struct message *start_message(struct run *run)
{
    struct message *m;

    assert_true(run->count < MAX_MESSAGES);
    m = &run->messages[run->count++];
    memset(m, 0, offsetof(struct message, text));
    m->text_len = 0;
    m->outcome = OUTCOME_INCOMPLETE;
    return m;
}

/* ---- shortd ---- */

static bool has_upgrade(const struct http_request *req)
{
    const struct http_header *connection = http_find_header(req, "Connection", 10);

    if (http_find_header(req, "Upgrade", 7) == NULL || connection == NULL)
        return false;
    for (size_t i = 0; i + 7 <= connection->value_len; i++) {
        if (strncasecmp(connection->value + i, "upgrade", 7) == 0)
            return true;
    }
    return false;
}

static void run_shortd(char *buf, size_t len, struct run *run)
{
    static const struct http_limits limits = {
        .max_request_line = 8192,
        .max_head = 64 * 1024,
        .max_headers = HTTP_MAX_HEADERS,
        .max_body = 1 << 20,
    };
    size_t offset = 0;

    run->count = 0;
    while (offset < len) {
        struct message *m = start_message(run);
        struct http_request req;
        struct http_error err;
        size_t scan = 0;
        size_t body_raw_len = 0;
        int rc = http_parse_request(buf + offset, len - offset, &scan, &limits, &req, &err);

        if (rc == 0)
            return;
        if (rc < 0) {
            m->outcome = OUTCOME_REJECTED;
            snprintf(m->reason, sizeof(m->reason), "%d %s", err.status, err.code);
            return;
        }

        snprintf(m->method, sizeof(m->method), "%.*s", (int)req.method_len, req.method_text);
        m->url = append_text(m, req.target, req.target_len);
        m->url_len = req.target_len;
        for (unsigned i = 0; i < req.header_count; i++) {
            const struct http_header *h = &req.headers[i];

            m->names[i] = append_text(m, h->name, h->name_len);
            m->name_lens[i] = h->name_len;
            m->values[i] = append_text(m, h->value, h->value_len);
            m->value_lens[i] = h->value_len;
        }
        m->field_count = req.header_count;
        m->keep_alive = req.keep_alive;

        char *body = buf + offset + req.head_len;
        size_t available = len - offset - req.head_len;

        if (req.chunked) {
            struct http_chunked chunked;

            http_chunked_init(&chunked);
            rc = http_chunked_decode(&chunked, body, available, limits.max_body, &err);
            if (rc == 0)
                return;
            if (rc < 0) {
                m->outcome = OUTCOME_REJECTED;
                snprintf(m->reason, sizeof(m->reason), "%d %s", err.status, err.code);
                return;
            }
            m->body = append_text(m, body, chunked.out_len);
            m->body_len = chunked.out_len;
            body_raw_len = chunked.in_pos;
        } else if (req.content_length > 0) {
            if ((uint64_t)req.content_length > available)
                return;
            m->body = append_text(m, body, (size_t)req.content_length);
            m->body_len = (size_t)req.content_length;
            body_raw_len = (size_t)req.content_length;
        }

        m->outcome = OUTCOME_ACCEPTED;
        offset += req.head_len + body_raw_len;
        if (!req.keep_alive || req.method == HTTP_METHOD_CONNECT || has_upgrade(&req))
            return;
    }
}

/* ---- http-parser ---- */

struct http_parser_state {
    struct run *run;
    struct message *current;
    bool in_value;
    bool in_trailers; /* http-parser reports trailer fields like header fields */
    bool stopped;
};

static struct message *current_message(http_parser *parser)
{
    struct http_parser_state *state = parser->data;

    if (state->current == NULL) {
        state->current = start_message(state->run);
        state->in_value = false;
        state->in_trailers = false;
    }
    return state->current;
}

static int on_message_begin(http_parser *parser)
{
    (void)current_message(parser);
    return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len)
{
    struct message *m = current_message(parser);
    size_t offset = append_text(m, at, len);

    if (m->url_len == 0)
        m->url = offset;
    m->url_len += len;
    return 0;
}

static int on_header_field(http_parser *parser, const char *at, size_t len)
{
    struct http_parser_state *state = parser->data;
    struct message *m = current_message(parser);
    size_t offset;

    if (state->in_trailers)
        return 0;
    if (state->in_value || m->field_count == 0) {
        assert_true(m->field_count < MAX_FIELDS);
        m->field_count++;
        m->names[m->field_count - 1] = m->text_len;
        state->in_value = false;
    }
    offset = append_text(m, at, len);
    (void)offset;
    m->name_lens[m->field_count - 1] += len;
    return 0;
}

static int on_header_value(http_parser *parser, const char *at, size_t len)
{
    struct http_parser_state *state = parser->data;
    struct message *m = current_message(parser);
    size_t offset;

    if (state->in_trailers)
        return 0;
    offset = append_text(m, at, len);
    if (!state->in_value) {
        m->values[m->field_count - 1] = offset;
        state->in_value = true;
    }
    m->value_lens[m->field_count - 1] += len;
    return 0;
}

static int on_headers_complete(http_parser *parser)
{
    struct http_parser_state *state = parser->data;
    struct message *m = current_message(parser);

    /* http-parser 2.9.4 keeps the whitespace after a field value, which
     * RFC 9110 section 5.5 excludes from the value, as shortd does. */
    for (unsigned i = 0; i < m->field_count; i++) {
        while (m->value_lens[i] > 0 && (m->text[m->values[i] + m->value_lens[i] - 1] == ' ' ||
                                        m->text[m->values[i] + m->value_lens[i] - 1] == '\t'))
            m->value_lens[i]--;
    }
    state->in_trailers = true;
    snprintf(m->method, sizeof(m->method), "%s",
             http_method_str((enum hp_http_method)parser->method));
    return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
    struct message *m = current_message(parser);
    size_t offset = append_text(m, at, len);

    if (m->body_len == 0)
        m->body = offset;
    m->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *parser)
{
    struct http_parser_state *state = parser->data;
    struct message *m = current_message(parser);

    m->outcome = OUTCOME_ACCEPTED;
    m->keep_alive = http_should_keep_alive(parser) != 0;
    state->current = NULL;

    /* Stop where run_shortd stops, after a request that ends the
     * connection. Returning non-zero makes http-parser stop here. */
    if (!m->keep_alive || parser->upgrade) {
        state->stopped = true;
        return 1;
    }
    return 0;
}

static void run_http_parser(const char *buf, size_t len, struct run *run)
{
    http_parser_settings settings;
    http_parser parser;
    struct http_parser_state state = {.run = run};

    run->count = 0;
    http_parser_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;

    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &state;
    (void)http_parser_execute(&parser, &settings, buf, len);
    if (state.stopped || parser.upgrade)
        return;

    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK) {
        struct message *m = current_message(&parser);

        m->outcome = OUTCOME_REJECTED;
        snprintf(m->reason, sizeof(m->reason), "%s", http_errno_name(HTTP_PARSER_ERRNO(&parser)));
    }
}

/* ---- comparison ---- */

static const char *outcome_name(enum outcome outcome)
{
    switch (outcome) {
    case OUTCOME_ACCEPTED:
        return "accepted";
    case OUTCOME_REJECTED:
        return "rejected";
    case OUTCOME_INCOMPLETE:
        return "incomplete";
    }
    return "?";
}

static bool same_span(const struct message *a, size_t a_off, size_t a_len, const struct message *b,
                      size_t b_off, size_t b_len)
{
    return a_len == b_len && memcmp(a->text + a_off, b->text + b_off, a_len) == 0;
}

static void print_span(const char *label, const struct message *m, size_t off, size_t len)
{
    report("      %s: \"", label);
    for (size_t i = 0; i < len && i < 200; i++) {
        unsigned char c = (unsigned char)m->text[off + i];

        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            report("%c", c);
        else
            report("\\x%02x", c);
    }
    report("%s\"\n", len > 200 ? "..." : "");
}

/* Compares two accepted messages. Returns the number of differing fields
 * and prints each one when print_differences is set. */
static int compare_accepted(const struct message *ours, const struct message *theirs)
{
    int differences = 0;

    if (strcmp(ours->method, theirs->method) != 0) {
        report("    method: shortd \"%s\", http-parser \"%s\"\n", ours->method, theirs->method);
        differences++;
    }
    if (!same_span(ours, ours->url, ours->url_len, theirs, theirs->url, theirs->url_len)) {
        report("    target differs\n");
        print_span("shortd", ours, ours->url, ours->url_len);
        print_span("http-parser", theirs, theirs->url, theirs->url_len);
        differences++;
    }
    if (ours->field_count != theirs->field_count) {
        report("    header count: shortd %u, http-parser %u\n", ours->field_count,
               theirs->field_count);
        differences++;
    }
    for (unsigned i = 0; i < ours->field_count && i < theirs->field_count; i++) {
        if (!same_span(ours, ours->names[i], ours->name_lens[i], theirs, theirs->names[i],
                       theirs->name_lens[i])) {
            report("    header %u name differs\n", i);
            print_span("shortd", ours, ours->names[i], ours->name_lens[i]);
            print_span("http-parser", theirs, theirs->names[i], theirs->name_lens[i]);
            differences++;
        }
        if (!same_span(ours, ours->values[i], ours->value_lens[i], theirs, theirs->values[i],
                       theirs->value_lens[i])) {
            report("    header %u value differs\n", i);
            print_span("shortd", ours, ours->values[i], ours->value_lens[i]);
            print_span("http-parser", theirs, theirs->values[i], theirs->value_lens[i]);
            differences++;
        }
    }
    if (!same_span(ours, ours->body, ours->body_len, theirs, theirs->body, theirs->body_len)) {
        report("    body differs\n");
        print_span("shortd", ours, ours->body, ours->body_len);
        print_span("http-parser", theirs, theirs->body, theirs->body_len);
        differences++;
    }
    if (ours->keep_alive != theirs->keep_alive) {
        report("    keep-alive: shortd %d, http-parser %d\n", ours->keep_alive, theirs->keep_alive);
        differences++;
    }
    return differences;
}

/*
 * Compares the two runs of one file. Returns the number of differences and
 * prints each one when print_differences is set.
 */
static int compare_runs(const char *file, const struct run *ours, const struct run *theirs)
{
    unsigned count = ours->count > theirs->count ? ours->count : theirs->count;
    int differences = 0;

    for (unsigned i = 0; i < count; i++) {
        static const struct message missing = {.outcome = OUTCOME_INCOMPLETE};
        const struct message *a = i < ours->count ? &ours->messages[i] : &missing;
        const struct message *b = i < theirs->count ? &theirs->messages[i] : &missing;

        if (a->outcome == OUTCOME_ACCEPTED && b->outcome == OUTCOME_ACCEPTED) {
            int n;

            report("%s request %u:\n", file, i + 1);
            n = compare_accepted(a, b);
            if (n == 0 && !print_differences)
                requests_equal++;
            differences += n;
        } else if (a->outcome == OUTCOME_ACCEPTED || b->outcome == OUTCOME_ACCEPTED) {
            report("%s request %u: shortd %s%s%s, http-parser %s%s%s\n", file, i + 1,
                   outcome_name(a->outcome), a->reason[0] ? " " : "", a->reason,
                   outcome_name(b->outcome), b->reason[0] ? " " : "", b->reason);
            differences++;
        }
    }
    return differences;
}

static const char *intended_reason(const char *file)
{
    for (size_t i = 0; i < sizeof(intended_differences) / sizeof(intended_differences[0]); i++) {
        if (strcmp(intended_differences[i].file, file) == 0)
            return intended_differences[i].reason;
    }
    return NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long size;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    data = malloc((size_t)size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return data;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_corpus_matches_http_parser(void **state)
{
    const char *folder = getenv("SHORTD_HTTP_CORPUS");
    char *files[1024];
    size_t file_count = 0;
    int unexpected = 0;
    int stale = 0;
    DIR *dir;
    struct dirent *entry;

    if (folder == NULL)
        folder = "tests/data/http";
    dir = opendir(folder);
    if (dir == NULL)
        print_message("cannot open corpus folder %s; run from the repository root or set "
                      "SHORTD_HTTP_CORPUS\n",
                      folder);
    assert_non_null(dir);
    while ((entry = readdir(dir)) != NULL) {
        size_t n = strlen(entry->d_name);

        if (n > 5 && strcmp(entry->d_name + n - 5, ".http") == 0) {
            assert_true(file_count < sizeof(files) / sizeof(files[0]));
            files[file_count] = strdup(entry->d_name);
            assert_non_null(files[file_count]);
            file_count++;
        }
    }
    closedir(dir);
    qsort(files, file_count, sizeof(files[0]), compare_names);
    print_message("corpus: %zu files in %s\n", file_count, folder);
    assert_true(file_count >= CORPUS_MIN_FILES);

    for (size_t i = 0; i < file_count; i++) {
        char path[4096];
        size_t len;
        char *data;
        char *copy;
        const char *reason = intended_reason(files[i]);
        int differences;

        snprintf(path, sizeof(path), "%s/%s", folder, files[i]);
        data = read_file(path, &len);
        copy = malloc(len + 1);
        assert_non_null(copy);
        memcpy(copy, data, len);

        /* shortd decodes chunked bodies in place, so it gets its own copy. */
        run_http_parser(data, len, &http_parser_run);
        run_shortd(copy, len, &shortd_run);
        print_differences = false;
        differences = compare_runs(files[i], &shortd_run, &http_parser_run);
        if (differences > 0) {
            print_differences = true;
            (void)compare_runs(files[i], &shortd_run, &http_parser_run);
        }

        if (differences > 0 && reason != NULL) {
            print_message("  intended: %s\n", reason);
        } else if (differences > 0) {
            print_message("  UNEXPECTED difference in %s\n", files[i]);
            unexpected++;
        } else if (reason != NULL) {
            print_message("  STALE: %s is listed as a difference (%s) but both agree\n", files[i],
                          reason);
            stale++;
        }
        free(copy);
        free(data);
    }

    for (size_t i = 0; i < sizeof(intended_differences) / sizeof(intended_differences[0]); i++) {
        bool found = false;

        for (size_t j = 0; j < file_count && !found; j++)
            found = strcmp(files[j], intended_differences[i].file) == 0;
        if (!found) {
            print_message("  STALE: %s is listed but not in the corpus\n",
                          intended_differences[i].file);
            stale++;
        }
    }
    for (size_t i = 0; i < file_count; i++)
        free(files[i]);
    print_message("%u requests accepted by both parsers with equal results\n", requests_equal);

    assert_int_equal(unexpected, 0);
    assert_int_equal(stale, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_matches_http_parser),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
