/*
 * Strict HTTP/1.1 request parser, see http_parser.h.
 *
 * http_parse_request works in two passes over the head:
 *
 *   scan_head    runs on every call and reads each new byte once. It rejects
 *                bytes that may not appear in a head (NUL, other control
 *                bytes except HTAB, DEL, bare CR, bare LF), enforces the size
 *                and field-count limits and finds the blank line. Its state
 *                between calls is packed into *scan (see SCAN_LINES_SHIFT).
 *   parse_head   runs once, when the head is complete, on bytes that
 *                scan_head has already checked. It checks the grammar of the
 *                request line and the field lines and fills the request.
 *
 * scan_head decides each error from the bytes up to that point, never from
 * whether later bytes have arrived, and parse_head only runs on a complete
 * head. So the result depends only on the bytes, never on how they were
 * split across calls, and a limit error takes precedence over any grammar
 * error in the same head.
 *
 * Stricter than RFC 9112 on purpose, to leave less room for two parsers to
 * disagree:
 *   - a bare LF ends no line and is rejected, although RFC 9112 section 2.2
 *     lets a recipient accept it;
 *   - at most LEADING_EMPTY_LINES_MAX empty lines may precede the request line;
 *   - a Content-Length field may appear only once, even with equal values;
 *   - a '%' in the request target must start a %XX escape.
 *
 * The chunked decoder is a byte-driven state machine (enum chunked_state)
 * whose whole state lives in struct http_chunked, so it can stop and resume
 * at any byte. Data bytes are copied in runs with memmove.
 */
#include "net/http_parser.h"

#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Empty lines (CRLF) skipped before the request line. Per RFC 9112 section
 * 2.2 a server SHOULD skip at least one, because old clients send a CRLF
 * after a POST body. */
#define LEADING_EMPTY_LINES_MAX 4

/* Bytes of a chunk-size line, extensions included, and of the trailer
 * section. Real clients send a few bytes of each, so these only stop a client
 * from sending unbounded framing that decodes to nothing. */
#define CHUNK_SIZE_LINE_MAX 4096
#define CHUNK_TRAILER_MAX   8192

/* At most 16 hex digits, so a chunk size always fits uint64_t. */
#define CHUNK_SIZE_DIGITS_MAX 16

/*
 * *scan packs the number of bytes scan_head has examined (low bits) and the
 * number of complete lines after the leading empty lines, the request line
 * included (top 8 bits). The line count never passes HTTP_MAX_HEADERS + 1,
 * and a head can never be longer than SCAN_POS_MASK bytes because max_head
 * is clamped to it.
 */
#define SCAN_LINES_SHIFT (sizeof(size_t) * CHAR_BIT - 8)
#define SCAN_POS_MASK    (((size_t)1 << SCAN_LINES_SHIFT) - 1)

/*
 * Byte classes, one bit each in char_class[]:
 *   C_TCHAR  tchar of RFC 9110 section 5.6.2: ALPHA, DIGIT and !#$%&'*+-.^_`|~
 *   C_PATH   bytes of a request target that need no special handling:
 *            RFC 3986 unreserved and reserved characters except '?', which
 *            starts the query, and '#', which starts a fragment. '%' is
 *            checked apart because it must start a %XX escape.
 *   C_FIELD  bytes of a field value: VCHAR, obs-text (0x80-0xFF), SP, HTAB
 *   C_HEX    hexadecimal digits
 *   C_REGNAME  bytes of an RFC 3986 reg-name or IPv4 address that need
 *            no special handling: unreserved and sub-delims
 */
enum {
    C_TCHAR = 1,
    C_PATH = 2,
    C_FIELD = 4,
    C_HEX = 8,
    C_REGNAME = 16,
};

static const unsigned char char_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    4,  23, 4,  5,  23, 5,  23, 23, 22, 22, 23, 23, 22, 23, 23, 6,  /* 0x20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 6,  22, 4,  22, 4,  4,  /* 0x30 */
    6,  31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23, /* 0x40 */
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 6,  4,  6,  5,  23, /* 0x50 */
    5,  31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23, /* 0x60 */
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 4,  5,  4,  23, 0,  /* 0x70 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0x80 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0x90 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xA0 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xB0 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xC0 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xD0 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xE0 */
    4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  4,  /* 0xF0 */
};

static inline int has_class(unsigned char c, int cls)
{
    return char_class[c] & cls;
}

/*
 * Returns the first byte at or after p that is not in class cls. The caller
 * guarantees such a byte exists before the buffer ends (every line of a
 * scanned head ends in a CR, which is in no class that is skipped this way).
 * Unrolled because names and paths are short and this loop is hot.
 */
static inline const char *skip_class(const char *p, int cls)
{
    for (;;) {
        if (!has_class((unsigned char)p[0], cls))
            return p;
        if (!has_class((unsigned char)p[1], cls))
            return p + 1;
        if (!has_class((unsigned char)p[2], cls))
            return p + 2;
        if (!has_class((unsigned char)p[3], cls))
            return p + 3;
        p += 4;
    }
}

static inline bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static inline int hex_value(unsigned char c)
{
    if (c <= '9')
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

static inline unsigned char to_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Compares s[0..n) with the lowercase string lower, ignoring ASCII case. */
static bool equals_lower(const char *s, size_t n, const char *lower, size_t lower_len)
{
    if (n != lower_len)
        return false;

    for (size_t i = 0; i < n; i++) {
        if (to_lower((unsigned char)s[i]) != (unsigned char)lower[i])
            return false;
    }
    return true;
}

#define EQUALS_LOWER(s, n, lit) equals_lower((s), (n), lit, sizeof(lit) - 1)

static int fail(struct http_error *err, int status, const char *code, const char *message)
{
    err->status = status;
    err->code = code;
    err->message = message;
    return -1;
}

/* Rejects a byte that may not appear where it is: in the request line when
 * in_request_line is set, else in a header line. */
static int fail_bad_byte(struct http_error *err, unsigned char c, bool in_request_line)
{
    const char *code = in_request_line ? "invalid_request_line" : "invalid_header";

    if (c == '\n')
        return fail(err, 400, code, "A line in the request head ends in LF without CR.");
    if (c == '\r')
        return fail(err, 400, code, "A CR in the request head is not followed by LF.");
    return fail(err, 400, code, "The request head contains a control character.");
}

#ifdef __SSE2__
/* Returns a bit mask of the control bytes and DEL among the 16 bytes at p. */
static inline unsigned control_mask(const char *p)
{
    const __m128i bytes = _mm_loadu_si128((const __m128i *)p);

    /* As signed bytes, 0x80-0xFF are negative, so "below 0x20 and not
     * negative" selects exactly the control bytes. */
    __m128i control = _mm_and_si128(_mm_cmplt_epi8(bytes, _mm_set1_epi8(0x20)),
                                    _mm_cmpgt_epi8(bytes, _mm_set1_epi8(-1)));
    __m128i stop = _mm_or_si128(control, _mm_cmpeq_epi8(bytes, _mm_set1_epi8(0x7f)));

    return (unsigned)_mm_movemask_epi8(stop);
}
#endif

/*
 * Returns the first byte in [p, end) that is a control byte (HTAB, CR and LF
 * included) or DEL, or end when there is none. Every other byte may appear
 * anywhere in a field value. base is the start of the buffer, so that the
 * bytes in [base, end) may be read.
 */
static inline const char *skip_field_bytes(const char *base, const char *p, const char *end)
{
#ifdef __SSE2__
    while (end - p >= 16) {
        unsigned mask = control_mask(p);

        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }

    /* For the last few bytes, read the 16 bytes that end at end, which are
     * inside the buffer, and drop the bits of the bytes before p. */
    if (p < end && end - base >= 16) {
        const char *window = end - 16;
        unsigned mask = control_mask(window) >> (p - window);

        return mask != 0 ? p + __builtin_ctz(mask) : end;
    }
#else
    (void)base;
#endif
    while (p < end) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c == 0x7f)
            return p;
        p++;
    }
    return end;
}

/*
 * Skips the empty lines before the request line. Returns 1 with *start at
 * the request line's first byte, 0 when more bytes are needed, or -1.
 */
static int find_request_line(const char *buf, size_t len, size_t *start, struct http_error *err)
{
    size_t pos = 0;
    unsigned empty_lines = 0;

    while (pos < len && buf[pos] == '\r') {
        if (pos + 1 == len)
            return 0;
        if (buf[pos + 1] != '\n')
            return fail_bad_byte(err, '\r', true);
        if (++empty_lines > LEADING_EMPTY_LINES_MAX)
            return fail(err, 400, "invalid_request_line",
                        "Too many empty lines precede the request line.");
        pos += 2;
    }
    if (pos == len)
        return 0;

    *start = pos;
    return 1;
}

/* Line positions of a complete head, as scan_head found them. */
struct head_scan {
    size_t start;    /* first byte of the request line */
    size_t head_len; /* bytes through the blank line */

    /* line_ends[i] is the index of the CR ending line first_line + i, where
     * line 0 is the request line, for the line_count lines scanned by the
     * call that completed the head. */
    unsigned first_line;
    unsigned line_count;
    size_t line_ends[HTTP_MAX_HEADERS + 1];
};

/*
 * Finds the end of the head, reading from where the previous call stopped.
 * Returns 1 with *found filled, 0 when more bytes are needed, or -1. *scan
 * changes only on 0 and 1, so a call after an error returns the same error,
 * and a call after success finds the same end again.
 */
static int scan_head(const char *buf, size_t len, size_t *scan, const struct http_limits *limits,
                     struct head_scan *found, struct http_error *err)
{
    size_t pos = *scan & SCAN_POS_MASK;
    unsigned lines = (unsigned)(*scan >> SCAN_LINES_SHIFT);
    size_t max_head = limits->max_head < SCAN_POS_MASK ? limits->max_head : SCAN_POS_MASK;
    unsigned max_headers =
        limits->max_headers < HTTP_MAX_HEADERS ? limits->max_headers : HTTP_MAX_HEADERS;
    size_t start = 0;
    int rc = find_request_line(buf, len, &start, err);

    if (rc <= 0)
        return rc;
    if (pos < start)
        pos = start;
    found->first_line = lines;

    /* stop is the first index that must not be reached before the current
     * line, or the head, has ended. */
    size_t stop = max_head;
    bool line_limited = false;

    if (lines == 0 && start < max_head && limits->max_request_line <= max_head - start) {
        stop = start + limits->max_request_line;
        line_limited = true;
    }

    for (;;) {
        if (pos >= stop) {
            if (line_limited)
                return fail(err, 414, "request_line_too_long",
                            "The request line is longer than the server accepts.");
            return fail(err, 431, "header_too_large",
                        "The request head is larger than the server accepts.");
        }
        if (pos >= len)
            break;

        size_t end = len < stop ? len : stop;

        pos = (size_t)(skip_field_bytes(buf, buf + pos, buf + end) - buf);
        if (pos == end)
            continue;

        unsigned char c = (unsigned char)buf[pos];

        if (c == '\t') {
            pos++;
            continue;
        }
        if (c != '\r')
            return fail_bad_byte(err, c, lines == 0);

        /* The limits are checked before the byte after the CR is read, so
         * the result does not depend on whether that byte has arrived. */
        bool blank_line = lines > 0 && buf[pos - 1] == '\n';

        if (lines == 0 && pos + 2 - start > limits->max_request_line)
            return fail(err, 414, "request_line_too_long",
                        "The request line is longer than the server accepts.");
        if (pos + 2 > max_head)
            return fail(err, 431, "header_too_large",
                        "The request head is larger than the server accepts.");
        if (!blank_line && lines > max_headers)
            return fail(err, 431, "too_many_headers",
                        "The request has more header fields than the server accepts.");
        if (pos + 1 == len)
            break;
        if (buf[pos + 1] != '\n')
            return fail_bad_byte(err, '\r', lines == 0);

        if (blank_line) {
            found->start = start;
            found->head_len = pos + 2;
            found->line_count = lines - found->first_line;
            *scan = pos | ((size_t)lines << SCAN_LINES_SHIFT);
            return 1;
        }
        found->line_ends[lines - found->first_line] = pos;
        lines++;
        pos += 2;
        stop = max_head;
        line_limited = false;
    }

    *scan = pos | ((size_t)lines << SCAN_LINES_SHIFT);
    return 0;
}

static enum http_method classify_method(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return HTTP_METHOD_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return HTTP_METHOD_PUT;
        break;
    case 4:
        if (memcmp(m, "HEAD", 4) == 0)
            return HTTP_METHOD_HEAD;
        if (memcmp(m, "POST", 4) == 0)
            return HTTP_METHOD_POST;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0)
            return HTTP_METHOD_PATCH;
        if (memcmp(m, "TRACE", 5) == 0)
            return HTTP_METHOD_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return HTTP_METHOD_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return HTTP_METHOD_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0)
            return HTTP_METHOD_CONNECT;
        break;
    }
    return HTTP_METHOD_OTHER;
}

/*
 * Checks uri-host [ ":" port ] of RFC 3986: an IP literal in brackets, or a
 * reg-name or IPv4 address, then an optional port of digits. An empty value
 * passes unless require_port is set; require_port also demands a non-empty
 * host and at least one port digit, as CONNECT's authority-form does.
 */
static bool is_valid_host(const char *s, size_t n, bool require_port)
{
    size_t i = 0;

    if (n > 0 && s[0] == '[') {
        for (i = 1; i < n && s[i] != ']'; i++) {
            unsigned char c = (unsigned char)s[i];

            if (!has_class(c, C_HEX) && c != ':' && c != '.')
                return false;
        }
        if (i == n || i == 1)
            return false;
        i++;
    } else {
        while (i < n) {
            if (has_class((unsigned char)s[i], C_REGNAME)) {
                i++;
                continue;
            }
            if (s[i] != '%')
                break;
            if (n - i < 3 || !has_class((unsigned char)s[i + 1], C_HEX) ||
                !has_class((unsigned char)s[i + 2], C_HEX))
                return false;
            i += 3;
        }
    }
    if (require_port && i == 0)
        return false;
    if (i == n)
        return !require_port;
    if (s[i] != ':')
        return false;

    size_t port_start = ++i;

    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return !require_port || i > port_start;
}

/*
 * Sets path and query from the target [t, t + n) whose first '?' is at q, or
 * q is NULL. Checks the form of the target against the method.
 */
static int split_target(struct http_request *req, const char *t, size_t n, const char *q,
                        struct http_error *err)
{
    const char *end = t + n;
    const char *path = t;

    if (req->method == HTTP_METHOD_CONNECT) {
        if (!is_valid_host(t, n, true))
            return fail(err, 400, "invalid_target", "A CONNECT request target must be host:port.");
        req->path = t;
        req->path_len = n;
        req->query = NULL;
        req->query_len = 0;
        return 0;
    }

    if (t[0] == '*' && n == 1) {
        if (req->method != HTTP_METHOD_OPTIONS)
            return fail(err, 400, "invalid_target",
                        "The request target \"*\" is only allowed with OPTIONS.");
    } else if (t[0] != '/') {
        size_t scheme_len;

        if (n > 7 && EQUALS_LOWER(t, 7, "http://"))
            scheme_len = 7;
        else if (n > 8 && EQUALS_LOWER(t, 8, "https://"))
            scheme_len = 8;
        else
            return fail(err, 400, "invalid_target",
                        "The request target must be a path or an http or https URL.");

        const char *authority = t + scheme_len;
        const char *authority_end = authority;

        while (authority_end < end && *authority_end != '/' && *authority_end != '?')
            authority_end++;
        /* is_valid_host also rejects userinfo ("user@host"), which a
         * recipient should treat as an error (RFC 9110 section 4.2.4). */
        if (authority_end == authority ||
            !is_valid_host(authority, (size_t)(authority_end - authority), false))
            return fail(err, 400, "invalid_target",
                        "The host in the request target is missing or invalid.");

        path = authority_end;
    }

    const char *path_end = q != NULL ? q : end;

    if (path == path_end) {
        /* http://host and http://host?q ask for the root path. */
        req->path = "/";
        req->path_len = 1;
    } else {
        req->path = path;
        req->path_len = (size_t)(path_end - path);
    }
    req->query = q != NULL ? q + 1 : NULL;
    req->query_len = q != NULL ? (size_t)(end - q - 1) : 0;
    return 0;
}

/*
 * Parses the request line at p, which ends in the CRLF at cr. Returns the
 * first byte after the CRLF, or NULL with err set.
 */
static const char *parse_request_line(const char *p, const char *cr, struct http_request *req,
                                      struct http_error *err)
{
    const char *method = p;

    p = skip_class(p, C_TCHAR);
    if (p == method || *p != ' ') {
        if (p == method || *p == '\r' || *p == '\t')
            fail(err, 400, "invalid_request_line",
                 "The request line must be: method, space, target, space, version.");
        else
            fail(err, 400, "invalid_method", "The request method is not a valid token.");
        return NULL;
    }
    req->method_text = method;
    req->method_len = (size_t)(p - method);
    req->method = classify_method(method, req->method_len);

    const char *target = ++p;
    const char *query = NULL;

    for (;;) {
        p = skip_class(p, C_PATH);
        if (*p == '?') {
            if (query == NULL)
                query = p;
            p++;
        } else if (*p == '%') {
            if (!has_class((unsigned char)p[1], C_HEX) || !has_class((unsigned char)p[2], C_HEX)) {
                fail(err, 400, "invalid_target",
                     "A '%' in the request target must start a %XX escape.");
                return NULL;
            }
            p += 3;
        } else {
            break;
        }
    }
    if (p == target || *p != ' ') {
        if (*p == '#')
            fail(err, 400, "invalid_target", "The request target must not contain a fragment.");
        else if (p == target || *p == '\r')
            fail(err, 400, "invalid_request_line",
                 "The request line must be: method, space, target, space, version.");
        else
            fail(err, 400, "invalid_target",
                 "The request target contains a character not allowed in a URI.");
        return NULL;
    }
    req->target = target;
    req->target_len = (size_t)(p - target);
    if (split_target(req, target, req->target_len, query, err) < 0)
        return NULL;

    const char *version = ++p;

    if (cr - version == 8) {
        if (memcmp(version, "HTTP/1.1", 8) == 0 || memcmp(version, "HTTP/1.0", 8) == 0) {
            req->version_minor = (unsigned)(version[7] - '0');
            return cr + 2;
        }
        if (memcmp(version, "HTTP/", 5) == 0 && is_digit(version[5]) && version[6] == '.' &&
            is_digit(version[7])) {
            fail(err, 505, "unsupported_version", "Only HTTP/1.0 and HTTP/1.1 are supported.");
            return NULL;
        }
    }
    fail(err, 400, "invalid_request_line", "The HTTP version in the request line is invalid.");
    return NULL;
}

/* Facts from the framing, connection and expectation fields of a head. */
struct field_summary {
    unsigned host_count;
    unsigned transfer_encoding_count;
    bool transfer_encoding_chunked;
    bool connection_close;
    bool connection_keep_alive;
    bool connection_invalid;
    bool expect_continue;
    bool expect_other;
};

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * Calls visit on each element of the comma-separated list v[0..n) with its
 * surrounding whitespace removed. Empty elements are skipped, as RFC 9110
 * section 5.6.1 requires of recipients.
 */
static void for_each_element(const char *v, size_t n, struct field_summary *fields,
                             void (*visit)(const char *, size_t, struct field_summary *))
{
    const char *end = v + n;

    while (v < end) {
        const char *comma = memchr(v, ',', (size_t)(end - v));
        const char *element_end = comma != NULL ? comma : end;
        const char *last = element_end;

        while (v < last && is_ows(*v))
            v++;
        while (last > v && is_ows(last[-1]))
            last--;
        if (last > v)
            visit(v, (size_t)(last - v), fields);
        v = comma != NULL ? comma + 1 : end;
    }
}

static bool is_token(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!has_class((unsigned char)s[i], C_TCHAR))
            return false;
    }
    return n > 0;
}

static void visit_connection_option(const char *s, size_t n, struct field_summary *fields)
{
    if (EQUALS_LOWER(s, n, "close"))
        fields->connection_close = true;
    else if (EQUALS_LOWER(s, n, "keep-alive"))
        fields->connection_keep_alive = true;
    else if (!is_token(s, n))
        fields->connection_invalid = true;
}

static void visit_expectation(const char *s, size_t n, struct field_summary *fields)
{
    if (EQUALS_LOWER(s, n, "100-continue"))
        fields->expect_continue = true;
    else
        fields->expect_other = true;
}

static int parse_content_length(const char *v, size_t n, int64_t *out, struct http_error *err)
{
    uint64_t value = 0;

    if (n == 0 || n > 19)
        return fail(err, 400, "invalid_content_length",
                    "Content-Length must be one decimal number of at most 19 digits.");
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return fail(err, 400, "invalid_content_length",
                        "Content-Length must be one decimal number without sign or spaces.");
        value = value * 10 + (uint64_t)(v[i] - '0');
    }
    if (value > INT64_MAX)
        return fail(err, 400, "invalid_content_length",
                    "Content-Length is larger than the server can represent.");

    *out = (int64_t)value;
    return 0;
}

/* Records a field that affects framing, persistence or expectations. */
static int note_field(const struct http_header *h, struct http_request *req,
                      struct field_summary *fields, struct http_error *err)
{
    char first = (char)(h->name[0] | 0x20);

    switch (h->name_len) {
    case 4:
        if (first == 'h' && EQUALS_LOWER(h->name, 4, "host")) {
            if (++fields->host_count > 1)
                return fail(err, 400, "duplicate_host",
                            "The request has more than one Host field.");
            if (!is_valid_host(h->value, h->value_len, false))
                return fail(err, 400, "invalid_host", "The Host field value is not a valid host.");
        }
        break;
    case 6:
        if (first == 'e' && EQUALS_LOWER(h->name, 6, "expect"))
            for_each_element(h->value, h->value_len, fields, visit_expectation);
        break;
    case 10:
        if (first == 'c' && EQUALS_LOWER(h->name, 10, "connection"))
            for_each_element(h->value, h->value_len, fields, visit_connection_option);
        break;
    case 14:
        if (first == 'c' && EQUALS_LOWER(h->name, 14, "content-length")) {
            if (req->content_length >= 0)
                return fail(err, 400, "invalid_content_length",
                            "The request has more than one Content-Length field.");
            return parse_content_length(h->value, h->value_len, &req->content_length, err);
        }
        break;
    case 17:
        if (first == 't' && EQUALS_LOWER(h->name, 17, "transfer-encoding")) {
            fields->transfer_encoding_count++;
            fields->transfer_encoding_chunked = EQUALS_LOWER(h->value, h->value_len, "chunked");
        }
        break;
    }
    return 0;
}

/*
 * Returns the CR that ends the line containing p, in a head that scan_head
 * checked. Among the bytes that stop skip_field_bytes, scan_head let only
 * HTAB and CRLF through, so the loop ends at that CR before head_end.
 */
static const char *find_line_end(const char *buf, const char *head_end, const char *p)
{
    for (;; p++) {
        p = skip_field_bytes(buf, p, head_end);
        if (*p == '\r')
            return p;
    }
}

/*
 * Parses the field line at p into h. The line ends in CRLF before head_end
 * and its bytes passed scan_head. cr is the line's CR, or NULL when scan_head did not
 * record it. Returns the first byte after the CRLF, or NULL with err set.
 */
static const char *parse_field_line(const char *buf, const char *head_end, const char *p,
                                    const char *cr, struct http_header *h, struct http_error *err)
{
    const char *name = p;

    p = skip_class(p, C_TCHAR);
    if (*p != ':' || p == name) {
        if (p == name && is_ows(*p))
            fail(err, 400, "invalid_header",
                 "A header line starts with whitespace (obs-fold), which is not allowed.");
        else if (is_ows(*p))
            fail(err, 400, "invalid_header",
                 "Whitespace between a header field name and the colon is not allowed.");
        else
            fail(err, 400, "invalid_header", "A header field name is missing or not a token.");
        return NULL;
    }
    h->name = name;
    h->name_len = (size_t)(p - name);

    p++;
    while (is_ows(*p))
        p++;
    h->value = p;

    if (cr == NULL)
        cr = find_line_end(buf, head_end, p);

    const char *value_end = cr;

    while (value_end > h->value && is_ows(value_end[-1]))
        value_end--;
    h->value_len = (size_t)(value_end - h->value);
    return cr + 2;
}

/*
 * Parses the complete head that scan_head found and checked. Returns 1, or
 * -1 with err set.
 */
static int parse_head(const char *buf, const struct head_scan *found,
                      const struct http_limits *limits, struct http_request *req,
                      struct http_error *err)
{
    const char *head_end = buf + found->head_len;
    struct field_summary fields = {0};
    const char *request_line = buf + found->start;
    const char *cr = found->first_line == 0 ? buf + found->line_ends[0]
                                            : find_line_end(buf, head_end, request_line);
    const char *p = parse_request_line(request_line, cr, req, err);

    if (p == NULL)
        return -1;

    req->header_count = 0;
    req->content_length = -1;
    while (*p != '\r') {
        struct http_header *h = &req->headers[req->header_count];
        unsigned line = req->header_count + 1; /* the request line is line 0 */

        /* scan_head already limited the count; this guards the array. */
        if (req->header_count == HTTP_MAX_HEADERS)
            return fail(err, 431, "too_many_headers",
                        "The request has more header fields than the server accepts.");
        cr = NULL;
        if (line >= found->first_line && line - found->first_line < found->line_count)
            cr = buf + found->line_ends[line - found->first_line];
        p = parse_field_line(buf, head_end, p, cr, h, err);
        if (p == NULL)
            return -1;
        req->header_count++;
        if (note_field(h, req, &fields, err) < 0)
            return -1;
    }

    if (fields.transfer_encoding_count > 0) {
        if (req->version_minor == 0)
            return fail(err, 400, "invalid_transfer_encoding",
                        "Transfer-Encoding is not allowed in an HTTP/1.0 request.");
        if (req->content_length >= 0)
            return fail(err, 400, "conflicting_framing",
                        "A request must not have both Content-Length and Transfer-Encoding.");
        if (fields.transfer_encoding_count > 1 || !fields.transfer_encoding_chunked)
            return fail(err, 501, "unsupported_transfer_encoding",
                        "The only supported Transfer-Encoding is chunked.");
    }
    if (fields.connection_invalid)
        return fail(err, 400, "invalid_header",
                    "The Connection field must be a comma-separated list of tokens.");
    if (req->version_minor == 1 && fields.host_count == 0)
        return fail(err, 400, "missing_host", "An HTTP/1.1 request must have a Host field.");
    if (fields.expect_other)
        return fail(err, 417, "unsupported_expectation",
                    "The only supported expectation is 100-continue.");
    if (req->content_length > 0 && (uint64_t)req->content_length > limits->max_body)
        return fail(err, 413, "body_too_large",
                    "The request body is larger than the server accepts.");

    req->head_len = found->head_len;
    req->chunked = fields.transfer_encoding_count > 0;
    if (req->version_minor == 1)
        req->keep_alive = !fields.connection_close;
    else
        req->keep_alive = fields.connection_keep_alive && !fields.connection_close;
    /* RFC 9110 section 10.1.1: a server ignores 100-continue from HTTP/1.0. */
    req->expect_continue = fields.expect_continue && req->version_minor == 1;
    return 1;
}

int http_parse_request(const char *buf, size_t len, size_t *scan, const struct http_limits *limits,
                       struct http_request *req, struct http_error *err)
{
    struct head_scan found;
    int rc = scan_head(buf, len, scan, limits, &found, err);

    if (rc <= 0)
        return rc;
    return parse_head(buf, &found, limits, req, err);
}

static bool header_named(const struct http_header *h, const char *name, size_t name_len)
{
    size_t j = 0;

    if (h->name_len != name_len)
        return false;
    while (j < name_len && to_lower((unsigned char)h->name[j]) == to_lower((unsigned char)name[j]))
        j++;
    return j == name_len;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name,
                                           size_t name_len)
{
    for (unsigned i = 0; i < req->header_count; i++) {
        if (header_named(&req->headers[i], name, name_len))
            return &req->headers[i];
    }
    return NULL;
}

const struct http_header *http_find_last_header(const struct http_request *req, const char *name,
                                                size_t name_len)
{
    for (unsigned i = req->header_count; i > 0; i--) {
        if (header_named(&req->headers[i - 1], name, name_len))
            return &req->headers[i - 1];
    }
    return NULL;
}

/*
 * States of struct http_chunked, in the order a body passes through them.
 * A chunk is size [BWS ";" extensions] CRLF data CRLF; the last chunk has
 * size 0 and is followed by trailer field lines and a blank line.
 */
enum chunked_state {
    CHUNK_SIZE = 0,  /* hex digits; line_len counts them */
    CHUNK_SIZE_BWS,  /* whitespace after the size, which only ';' may follow */
    CHUNK_EXTENSION, /* from ';' to the CR ending the size line */
    CHUNK_SIZE_LF,   /* the LF ending the size line */
    CHUNK_DATA,      /* chunk_left data bytes still to copy */
    CHUNK_DATA_CR,   /* the CRLF after the data */
    CHUNK_DATA_LF,
    CHUNK_TRAILER_START, /* first byte of a trailer line, or CR of the blank line */
    CHUNK_TRAILER_NAME,
    CHUNK_TRAILER_VALUE,
    CHUNK_TRAILER_LF,
    CHUNK_LAST_LF, /* the LF of the blank line that ends the body */
    CHUNK_DONE,
};

void http_chunked_init(struct http_chunked *chunked)
{
    memset(chunked, 0, sizeof(*chunked));
    chunked->state = CHUNK_SIZE;
}

static int fail_chunk(struct http_error *err, const char *message)
{
    return fail(err, 400, "invalid_chunk", message);
}

/* Handles one byte outside chunk data. Returns 0, or -1 with err set. */
static int decode_framing_byte(struct http_chunked *chunked, unsigned char c, uint64_t max_body,
                               struct http_error *err)
{
    bool expects_lf = chunked->state == CHUNK_SIZE_LF || chunked->state == CHUNK_DATA_LF ||
                      chunked->state == CHUNK_TRAILER_LF || chunked->state == CHUNK_LAST_LF;

    if (c == '\n' && !expects_lf)
        return fail_chunk(err, "A line in the chunked body ends in LF without CR.");
    if (chunked->state >= CHUNK_TRAILER_START && ++chunked->trailer_len > CHUNK_TRAILER_MAX)
        return fail_chunk(err, "The trailer section is larger than the server accepts.");

    switch (chunked->state) {
    case CHUNK_SIZE:
        if (has_class(c, C_HEX)) {
            if (chunked->line_len == CHUNK_SIZE_DIGITS_MAX)
                return fail_chunk(err, "A chunk size has more than 16 hex digits.");
            chunked->chunk_left = chunked->chunk_left << 4 | (uint64_t)hex_value(c);
            chunked->line_len++;
            return 0;
        }
        if (chunked->line_len == 0)
            return fail_chunk(err, "A chunk does not start with a hex size.");
        if (c != '\r' && c != ';' && !is_ows((char)c))
            return fail_chunk(err, "A chunk size is followed by an invalid character.");

        /* The size is complete, so the decoded total is known. out_len
         * never passes max_body, so the subtraction cannot wrap. */
        if (chunked->chunk_left > max_body - chunked->out_len)
            return fail(err, 413, "body_too_large",
                        "The request body is larger than the server accepts.");
        if (c == '\r') {
            chunked->state = CHUNK_SIZE_LF;
            return 0;
        }
        chunked->state = c == ';' ? CHUNK_EXTENSION : CHUNK_SIZE_BWS;
        break;
    case CHUNK_SIZE_BWS:
        if (c == ';')
            chunked->state = CHUNK_EXTENSION;
        else if (!is_ows((char)c))
            return fail_chunk(err, "Whitespace after a chunk size must be followed by ';'.");
        break;
    case CHUNK_EXTENSION:
        if (c == '\r') {
            chunked->state = CHUNK_SIZE_LF;
            return 0;
        }
        if (!has_class(c, C_FIELD))
            return fail_chunk(err, "A chunk extension contains a control character.");
        break;
    case CHUNK_SIZE_LF:
        if (c != '\n')
            return fail_chunk(err, "A chunk size line does not end in CRLF.");
        chunked->line_len = 0;
        chunked->state = chunked->chunk_left == 0 ? CHUNK_TRAILER_START : CHUNK_DATA;
        return 0;
    case CHUNK_DATA_CR:
        if (c != '\r')
            return fail_chunk(err, "Chunk data is not followed by CRLF.");
        chunked->state = CHUNK_DATA_LF;
        return 0;
    case CHUNK_DATA_LF:
        if (c != '\n')
            return fail_chunk(err, "Chunk data is not followed by CRLF.");
        chunked->state = CHUNK_SIZE;
        return 0;
    case CHUNK_TRAILER_START:
        if (c == '\r')
            chunked->state = CHUNK_LAST_LF;
        else if (has_class(c, C_TCHAR))
            chunked->state = CHUNK_TRAILER_NAME;
        else if (is_ows((char)c))
            return fail_chunk(err, "A trailer line starts with whitespace (obs-fold).");
        else
            return fail_chunk(err, "A trailer field name is missing or not a token.");
        return 0;
    case CHUNK_TRAILER_NAME:
        if (c == ':')
            chunked->state = CHUNK_TRAILER_VALUE;
        else if (!has_class(c, C_TCHAR))
            return fail_chunk(err, "A trailer field name is not a token followed by a colon.");
        return 0;
    case CHUNK_TRAILER_VALUE:
        if (c == '\r')
            chunked->state = CHUNK_TRAILER_LF;
        else if (!has_class(c, C_FIELD))
            return fail_chunk(err, "A trailer field value contains a control character.");
        return 0;
    case CHUNK_TRAILER_LF:
        if (c != '\n')
            return fail_chunk(err, "A trailer line does not end in CRLF.");
        chunked->state = CHUNK_TRAILER_START;
        return 0;
    case CHUNK_LAST_LF:
        if (c != '\n')
            return fail_chunk(err, "The chunked body does not end in CRLF.");
        chunked->state = CHUNK_DONE;
        return 0;
    }

    /* Only the size line's bytes after the digits, CR excluded, reach this
     * point. */
    if (++chunked->line_len > CHUNK_SIZE_LINE_MAX)
        return fail_chunk(err, "A chunk size line is longer than the server accepts.");
    return 0;
}

int http_chunked_decode(struct http_chunked *chunked, char *buf, size_t len, uint64_t max_body,
                        struct http_error *err)
{
    size_t pos = chunked->in_pos;

    while (pos < len && chunked->state != CHUNK_DONE) {
        if (chunked->state == CHUNK_DATA) {
            size_t available = len - pos;
            size_t n = chunked->chunk_left < available ? (size_t)chunked->chunk_left : available;

            /* out_len <= pos always, so the copy never overwrites bytes
             * still to be read. */
            memmove(buf + chunked->out_len, buf + pos, n);
            chunked->out_len += n;
            chunked->chunk_left -= n;
            pos += n;
            if (chunked->chunk_left == 0)
                chunked->state = CHUNK_DATA_CR;
            continue;
        }

        if (decode_framing_byte(chunked, (unsigned char)buf[pos], max_body, err) < 0) {
            chunked->in_pos = pos;
            return -1;
        }
        pos++;
    }

    chunked->in_pos = pos;
    return chunked->state == CHUNK_DONE ? 1 : 0;
}

size_t http_chunked_compact(struct http_chunked *chunked, char *buf, size_t len)
{
    size_t rest = len - chunked->in_pos;

    /* The decoder keeps its place in its state, never by looking back. */
    if (chunked->in_pos > chunked->out_len) {
        memmove(buf + chunked->out_len, buf + chunked->in_pos, rest);
        chunked->in_pos = chunked->out_len;
    }
    return chunked->in_pos + rest;
}
