/*
 * The "shortd export" command, see export.h.
 *
 * It reads the links with store_scan_links, one snapshot of the database,
 * so it takes no lock and may run while the daemon serves: links created
 * or deleted after the scan started are not in the output. Each line is
 * written as stored, so importing the output into an empty database gives
 * every code its URL back byte for byte. Only the code and the URL are
 * written: expiry, visit limits, redirect status, owner and counts are
 * not.
 */
#include "app/export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/config.h"
#include "app/import.h"
#include "app/version.h"
#include "store/store.h"

/* Output buffer size: the lines of many links go out in one write. */
#define OUTPUT_BUFFER (1024 * 1024)

static const char *const export_flags[] = {"db", NULL};

static const struct config_command export_command = {
    .name = "export",
    .operands = "[FILE]",
    .summary = "Writes every live link as a \"code<TAB>url\" line, in ascending id order, to\n"
               "FILE, or to standard output without FILE or when FILE is -. The output is\n"
               "what shortd import reads: imported into an empty database, it gives every\n"
               "code its URL back byte for byte. Expiry, visit limits, redirect status,\n"
               "owner and counts are not written. The export reads one snapshot of the\n"
               "database and takes no lock, so shortd may keep running.\n"
               "\n"
               "Exit status: 0 when every live link was written, 1 when the database cannot\n"
               "be read or the output cannot be written, 2 for bad usage.",
    .flags = export_flags,
    .min_operands = 0,
    .max_operands = 1,
};

struct exporter {
    FILE *out;
    const char *output_name; /* FILE, or "stdout" */
    uint64_t exported;
    uint64_t unwritable; /* links whose code or URL would break the line format */
    int write_error;     /* negative errno of a failed write, 0 before one */
};

/* Returns whether text[0..len) contains a byte that would end a field or a line. */
static bool breaks_line(const char *text, size_t len)
{
    return memchr(text, '\t', len) != NULL || memchr(text, '\n', len) != NULL ||
           memchr(text, '\r', len) != NULL;
}

/* Writes one link as a line. Returns 0, or a negative errno that stops the scan. */
static int write_link(const struct store_link *link, void *arg)
{
    struct exporter *exporter = arg;
    char quoted[4 * STORE_CODE_MAX + 8];

    /*
     * The API stores no such link, because codes and URLs never contain
     * these bytes, but a database edited by hand might.
     */
    if (breaks_line(link->code, link->code_len) || breaks_line(link->url, link->url_len) ||
        link->code[0] == '#') {
        fprintf(stderr,
                "shortd export: link %" PRId64 " with code \"%s\" cannot be written as a line "
                "because its code or URL contains a tab, CR or LF, or its code starts with #\n",
                link->id, import_quote(link->code, link->code_len, quoted, sizeof(quoted)));
        exporter->unwritable++;
        return 0;
    }

    if (fwrite(link->code, 1, link->code_len, exporter->out) != link->code_len ||
        putc('\t', exporter->out) == EOF ||
        fwrite(link->url, 1, link->url_len, exporter->out) != link->url_len ||
        putc('\n', exporter->out) == EOF) {
        exporter->write_error = errno != 0 ? -errno : -EIO;
        return exporter->write_error;
    }

    exporter->exported++;
    return 0;
}

/*
 * Flushes the output and, for a regular file, syncs it, so that a finished
 * export survives a crash. Returns 0 or a negative errno.
 */
static int finish_output(struct exporter *exporter)
{
    struct stat info;
    int err = 0;

    if (fflush(exporter->out) != 0)
        err = -errno;
    if (err == 0 && fstat(fileno(exporter->out), &info) == 0 && S_ISREG(info.st_mode) &&
        fsync(fileno(exporter->out)) != 0)
        err = -errno;
    if (exporter->out != stdout && fclose(exporter->out) != 0 && err == 0)
        err = -errno;
    exporter->out = NULL;
    return err;
}

/*
 * Opens the store at db, which must exist: store_open would create an empty
 * database where a mistyped path points. Returns NULL after writing why.
 */
static struct store *open_existing_store(const char *db)
{
    struct store *store = NULL;
    char error[512];
    struct stat info;

    /* A URL, such as one for PostgreSQL, names no file; store_open judges it. */
    if (strstr(db, "://") == NULL && stat(db, &info) != 0) {
        fprintf(stderr, "shortd export: cannot open database %s: %s\n", db, strerror(errno));
        return NULL;
    }
    if (store_open(db, &store, error, sizeof(error)) < 0) {
        fprintf(stderr, "shortd export: cannot open database %s: %s\n", db, error);
        return NULL;
    }
    return store;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

int export_main(int argc, char **argv)
{
    static struct config config;
    struct exporter exporter = {.out = NULL};
    struct config_operands operands;
    enum config_action action;
    struct store *store = NULL;
    struct timespec started;
    const char *name;
    int status = 1;
    int rc;

    if (config_load_command(&config, &export_command, argc, argv, &action, &operands, stderr) < 0)
        return 2;
    if (action == CONFIG_HELP) {
        config_print_command_help(&export_command, stdout);
        return 0;
    }
    if (action == CONFIG_VERSION) {
        printf("shortd %s\n", SHORTD_VERSION);
        return 0;
    }
    (void)clock_gettime(CLOCK_MONOTONIC, &started);

    store = open_existing_store(config.db);
    if (store == NULL)
        return 1;

    name = operands.count > 0 ? operands.values[0] : "-";
    if (strcmp(name, "-") == 0) {
        exporter.out = stdout;
        exporter.output_name = "stdout";
    } else {
        exporter.out = fopen(name, "w");
        exporter.output_name = name;
        if (exporter.out == NULL) {
            fprintf(stderr, "shortd export: cannot open %s for writing: %s\n", name,
                    strerror(errno));
            goto done;
        }
    }
    /* Without it, fwrite would allocate a small buffer; failure only keeps that one. */
    (void)setvbuf(exporter.out, NULL, _IOFBF, OUTPUT_BUFFER);

    rc = store_scan_links(store, write_link, &exporter);
    if (rc < 0 && exporter.write_error != 0)
        fprintf(stderr, "shortd export: writing %s failed after %" PRIu64 " links: %s\n",
                exporter.output_name, exporter.exported, strerror(-exporter.write_error));
    else if (rc < 0)
        fprintf(stderr, "shortd export: reading %s failed after %" PRIu64 " links: %s\n", config.db,
                exporter.exported, store_last_error(store));

    if (rc == 0) {
        rc = finish_output(&exporter);
        if (rc < 0)
            fprintf(stderr, "shortd export: writing %s failed: %s\n", exporter.output_name,
                    strerror(-rc));
    }
    if (rc == 0) {
        fprintf(stderr, "shortd export: exported %" PRIu64 " links in %.2f s\n", exporter.exported,
                seconds_since(&started));
        status = exporter.unwritable == 0 ? 0 : 1;
    }

done:
    if (exporter.out != NULL)
        (void)finish_output(&exporter);
    store_close(store);
    return status;
}
