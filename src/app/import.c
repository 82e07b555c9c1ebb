/* Parsing of one line of an import file, see import.h. */
#include "app/import.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "app/links.h"

/* Bytes of a quoted code in a message: the longest code, each byte escaped, and the quotes. */
#define QUOTED_CODE_SIZE (4 * STORE_CODE_MAX + 8)

/* Fills err with reason and a formatted message and returns -EINVAL. */
static int reject(struct import_error *err, const char *reason, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static int reject(struct import_error *err, const char *reason, const char *format, ...)
{
    va_list args;

    err->reason = reason;
    va_start(args, format);
    (void)vsnprintf(err->message, sizeof(err->message), format, args);
    va_end(args);
    return -EINVAL;
}

const char *import_quote(const char *text, size_t len, char *out, size_t out_len)
{
    static const char hex[] = "0123456789abcdef";
    size_t used = 0, i;
    unsigned char c;

    for (i = 0; i < len; i++) {
        c = (unsigned char)text[i];

        /* Keep room for the longest escape and for "..." and the NUL. */
        if (used + 4 + 4 > out_len) {
            memcpy(out + used, "...", 3);
            used += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[used++] = '\\';
            out[used++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[used++] = (char)c;
        } else {
            out[used++] = '\\';
            out[used++] = 'x';
            out[used++] = hex[c >> 4];
            out[used++] = hex[c & 0xf];
        }
    }
    out[used] = '\0';
    return out;
}

/* Checks the code before the tab as the API checks an alias. Returns 0 or -EINVAL. */
static int check_code(const char *code, size_t len, struct import_error *err)
{
    char quoted[QUOTED_CODE_SIZE], byte[8];
    size_t i;

    if (len == 0)
        return reject(err, "invalid_code", "the code before the tab is empty");
    if (len > STORE_CODE_MAX)
        return reject(err, "invalid_code",
                      "code \"%s\" is %zu bytes long, longer than the maximum of %d bytes",
                      import_quote(code, len, quoted, sizeof(quoted)), len, STORE_CODE_MAX);

    if (!link_code_valid(code, len)) {
        for (i = 0; i < len && link_code_valid(code + i, 1); i++)
            ;
        return reject(err, "invalid_code",
                      "code \"%s\" contains the byte \"%s\" at offset %zu, but a code may contain "
                      "only letters, digits, '-' and '_'",
                      import_quote(code, len, quoted, sizeof(quoted)),
                      import_quote(code + i, 1, byte, sizeof(byte)), i);
    }

    if (link_code_reserved(code, len))
        return reject(err, "reserved_code", "code \"%s\" is reserved for a path of the server",
                      import_quote(code, len, quoted, sizeof(quoted)));
    return 0;
}

int import_parse_line(const char *line, size_t len, const struct url_policy *policy,
                      struct import_line *out, struct import_error *err)
{
    struct url_error url_err = {.code = NULL};
    size_t code_len, url_len, tabs, i;
    const char *tab, *url;
    int rc;

    memset(out, 0, sizeof(*out));

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0 || line[0] == '#')
        return IMPORT_LINE_SKIP;

    tab = memchr(line, '\t', len);
    if (tab == NULL)
        return reject(err, "malformed_line", "expected code<TAB>url, but the line has no tab");
    code_len = (size_t)(tab - line);
    url = tab + 1;
    url_len = len - code_len - 1;

    /* A second tab would otherwise reach url_normalize, which reports it as a control character. */
    tabs = 1;
    for (i = 0; i < url_len; i++) {
        if (url[i] == '\t')
            tabs++;
    }
    if (tabs > 1)
        return reject(err, "malformed_line", "expected code<TAB>url, but the line has %zu tabs",
                      tabs);

    rc = check_code(line, code_len, err);
    if (rc < 0)
        return rc;

    rc = url_normalize(url, url_len, policy, &out->url, &out->url_len, &url_err);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        err->reason = url_err.code;
        (void)snprintf(err->message, sizeof(err->message), "%s", url_err.message);
        return -EINVAL;
    }

    memcpy(out->code, line, code_len);
    out->code[code_len] = '\0';
    out->code_len = code_len;
    return IMPORT_LINE_LINK;
}
