/*
 * shortd import: adds links from a file of "code<TAB>url" lines.
 *
 * Each line gives a link's code, kept as its alias, and its URL. The URL is
 * checked and normalised exactly as the API does for a create
 * (url_normalize under the configured schemes, maximum length and own
 * host), and the code must be valid for an alias (link_code_valid) and not
 * reserved (link_code_reserved). One trailing CR is removed, so files with
 * CRLF line ends import as they would with LF. Empty lines and lines that
 * start with '#' are skipped. Any other line that fails is rejected with a
 * reason, and the import goes on with the next line.
 *
 * import.c parses one line (import_parse_line, pure and thread-safe, so a
 * fuzz target can call it). import_run.c runs the command: it reads the
 * file, sends the links to the store in batches through
 * store_import_links, and reports rejected lines, progress and a summary
 * on stderr.
 */
#ifndef SHORTD_APP_IMPORT_H
#define SHORTD_APP_IMPORT_H

#include <stddef.h>

#include "app/url.h"
#include "store/store.h"

/* A line that import_parse_line accepted. */
struct import_line {
    char code[STORE_CODE_MAX + 1]; /* NUL-terminated */
    size_t code_len;
    char *url; /* normalised, NUL-terminated and malloc'd: the caller frees it */
    size_t url_len;
};

/* The reason for a rejected line. */
struct import_error {
    /*
     * "malformed_line" (no tab, or more than one), "invalid_code",
     * "reserved_code", or the code of url_error for the URL:
     * "invalid_url", "unsupported_scheme", "url_too_long", "invalid_host"
     * or "redirect_loop".
     */
    const char *reason;
    char message[384]; /* one sentence without a final period; bytes of the line are escaped */
};

/* Kinds of lines that import_parse_line accepts. */
enum import_line_kind {
    IMPORT_LINE_LINK = 0, /* a link, in *out */
    IMPORT_LINE_SKIP = 1, /* an empty line or a comment */
};

/*
 * Parses line[0..len), without its LF, under policy. Returns
 * IMPORT_LINE_LINK and fills *out, IMPORT_LINE_SKIP, -EINVAL and fills *err,
 * or -ENOMEM. The line may contain any bytes, NUL included.
 */
int import_parse_line(const char *line, size_t len, const struct url_policy *policy,
                      struct import_line *out, struct import_error *err);

/*
 * Writes text[0..len) into out (out_len bytes, at least 8) for a message:
 * printable ASCII as is, '"' and '\' with a backslash, any other byte as
 * \xNN. Once fewer than 8 bytes of out are left, "..." replaces the rest.
 * Returns out.
 */
const char *import_quote(const char *text, size_t len, char *out, size_t out_len);

/*
 * Runs "shortd import" with argv[0] = "import". Reads the settings like the
 * daemon (config_load_command), takes the database's lock (dblock.h) so
 * that no daemon runs on it meanwhile, and imports the file. Returns the
 * exit status. It is 0 when the import ran, even with rejected lines, and 2
 * for bad usage. It is 1 when the import could not run or stopped early:
 * the input or the database cannot be opened, the database is locked, or a
 * read or a commit failed. The batches committed before a failure stay in
 * the database.
 */
int import_main(int argc, char **argv);

#endif
