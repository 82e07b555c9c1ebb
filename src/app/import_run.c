/*
 * The "shortd import" command, see import.h.
 *
 * A run reads the input with its own line reader. The reader keeps at most
 * one line of the longest valid length in memory, and a longer line is
 * counted and skipped without being stored. Each line is parsed, and the
 * links are collected in a batch of up to BATCH_LINES lines or BATCH_BYTES
 * of URLs. A full batch, and the last one at the end of the input, goes to
 * store_import_links in one transaction. Only then are the batch's rejected lines reported, in
 * line order, because a code that is already taken shows only when the
 * store inserts it.
 *
 * There are two batches, so that parsing (about a quarter of the work)
 * overlaps with the commit of the batch before. A batch moves through
 * these states, and only one batch at a time is committing:
 *
 *   filling --submit_batch--> committing (on its own thread, which alone
 *   uses the store connection) --finish_batch: join, then report--> filling
 *
 * submit_batch first finishes the batch that is committing, so its report,
 * which reads the store, runs before the next commit starts.
 *
 * To name the line that first used a taken code, the run keeps, for every
 * link it sent to the store, the line it came from (8 bytes per link), and
 * for every batch the first id the store gave it. A code that the store
 * rejects is read back with store_get_link, and its id leads to its line.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/config.h"
#include "app/dblock.h"
#include "app/import.h"
#include "app/version.h"

/*
 * Lines per batch, and so per transaction. Larger batches spread the cost
 * of a commit and its fsync over more links. A batch of this size takes
 * about 20 MB of memory with the URLs.
 */
#define BATCH_LINES 65536

/*
 * URL bytes per batch, which end a batch early when URLs are long, so that
 * two batches of URLs near --max-url-length stay within about 100 MB.
 */
#define BATCH_BYTES (32 * 1024 * 1024)

/* Rejected lines reported one by one; later ones are only counted. */
#define REPORT_MAX 100

/* Bytes read from the input at once. */
#define READ_CHUNK (1024 * 1024)

/* How often the progress line is redrawn, in ns, and how many lines pass between clock reads. */
#define PROGRESS_INTERVAL_NS 250000000
#define PROGRESS_CHECK_LINES 4096

static const char *const import_flags[] = {
    "db", "base-url", "schemes", "max-url-length", "redirect-status", NULL};

static const struct config_command import_command = {
    .name = "import",
    .operands = "FILE",
    .summary = "Adds links from FILE, or from standard input when FILE is -, with one\n"
               "\"code<TAB>url\" per line. Each code becomes the alias of its link, and each\n"
               "URL is checked and normalised as the API does. A trailing CR is removed;\n"
               "empty lines and lines starting with # are skipped. Rejected lines are\n"
               "reported on stderr with their number and reason, and the import goes on.\n"
               "The database must not be in use by a running shortd.\n"
               "\n"
               "Exit status: 0 when the import ran (even with rejected lines), 1 when it\n"
               "could not run or stopped early, 2 for bad usage.",
    .flags = import_flags,
    .min_operands = 1,
    .max_operands = 1,
};

/* The input, read in chunks and split at LF. */
struct line_reader {
    int fd;
    char *buffer;
    size_t size;     /* of buffer: the longest line, its LF and a chunk */
    size_t start;    /* first byte not returned yet */
    size_t end;      /* end of the bytes read */
    size_t max_line; /* longest line returned, in bytes without its LF */
    bool eof;
};

/*
 * A line of a batch rejected by the parser. Its message is kept only while
 * it may still be reported (see REPORT_MAX).
 */
struct parse_rejection {
    uint64_t line;
    const char *reason;
    int message; /* index into batch.messages, or -1 */
};

/* Lines of the input on their way to the store: links, and the lines the parser rejected. */
struct batch {
    struct store_link *links;
    int *results;
    uint64_t *lines; /* the line of each link */
    size_t link_count;
    size_t url_bytes; /* of the links' URLs */
    struct parse_rejection *rejections;
    size_t rejection_count;
    char (*messages)[sizeof(((struct import_error *)0)->message)];
    size_t message_count;

    /* While committing, the committer thread alone uses these and the store. */
    struct store *store;
    int commit_result;
    pthread_t committer;
    bool committing; /* committer runs, and finish_batch must join it */
};

/* The first id of a committed batch and the index of its first link in link_lines. */
struct batch_span {
    int64_t first_id;
    size_t first_link;
};

struct importer {
    const char *input_name; /* FILE, or "stdin" */
    struct line_reader reader;
    struct url_policy policy;
    char own_host[256];
    int redirect_status;
    struct store *store;

    struct batch batches[2];
    struct batch *filling;    /* the batch that lines are added to */
    struct batch *committing; /* the batch being committed, or NULL */

    /* The line of every link sent to the store, and where each batch starts. */
    uint64_t *link_lines;
    size_t link_lines_len, link_lines_cap;
    struct batch_span *spans;
    size_t span_count, span_cap;

    /* Totals over the run. */
    uint64_t lines_read, imported, skipped, rejected, reported;

    bool progress; /* stderr is a terminal */
    bool progress_shown;
    struct timespec started, last_progress;
};

static double seconds_since(const struct timespec *start)
{
    struct timespec now;

    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec now;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Erases the progress line, so that a message starts at the left margin. */
static void clear_progress(struct importer *im)
{
    if (im->progress_shown) {
        fputs("\r\033[K", stderr);
        im->progress_shown = false;
    }
}

static void show_progress(struct importer *im)
{
    struct timespec now;
    double elapsed;

    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - im->last_progress.tv_sec) * 1000000000L +
            (now.tv_nsec - im->last_progress.tv_nsec) <
        PROGRESS_INTERVAL_NS)
        return;
    im->last_progress = now;

    elapsed = seconds_since(&im->started);
    fprintf(stderr, "\rshortd import: %" PRIu64 " lines, %.0f lines/s\033[K", im->lines_read,
            elapsed > 0 ? (double)im->lines_read / elapsed : 0.0);
    im->progress_shown = true;
}

/*
 * Counts a rejected line and reports it while fewer than REPORT_MAX have
 * been reported. The next one is reported as the start of the lines that
 * are only counted, and later ones only counted. message may be NULL past
 * the limit.
 */
static void report_rejection(struct importer *im, uint64_t line, const char *reason,
                             const char *message)
{
    im->rejected++;
    if (im->reported > REPORT_MAX)
        return;

    clear_progress(im);
    if (im->reported == REPORT_MAX)
        fprintf(stderr, "shortd import: more than %d lines rejected; the others are only counted\n",
                REPORT_MAX);
    else
        fprintf(stderr, "shortd import: %s:%" PRIu64 ": %s: %s\n", im->input_name, line, reason,
                message != NULL ? message : "");
    im->reported++;
}

/*
 * Reads the next line into *line and *len, without its LF. A line longer
 * than reader->max_line is skipped: *line is NULL and *total is its length.
 * Returns 1 for a line, 0 at the end of the input, or a negative errno of
 * read(2).
 */
static int read_line(struct line_reader *reader, const char **line, size_t *len, uint64_t *total)
{
    uint64_t skipped = 0;
    size_t pending;
    char *newline;
    ssize_t got;

    for (;;) {
        pending = reader->end - reader->start;
        newline = memchr(reader->buffer + reader->start, '\n', pending);
        if (newline != NULL || (reader->eof && (pending > 0 || skipped > 0))) {
            pending =
                newline != NULL ? (size_t)(newline - (reader->buffer + reader->start)) : pending;
            *total = skipped + pending;
            *line =
                skipped == 0 && pending <= reader->max_line ? reader->buffer + reader->start : NULL;
            *len = *line != NULL ? pending : 0;
            reader->start += pending + (newline != NULL ? 1 : 0);
            return 1;
        }
        if (reader->eof)
            return 0;

        /* A line longer than any valid one is counted, not kept. */
        if (skipped > 0 || pending > reader->max_line) {
            skipped += pending;
            pending = 0;
        }
        memmove(reader->buffer, reader->buffer + reader->start, pending);
        reader->start = 0;
        reader->end = pending;

        got = read(reader->fd, reader->buffer + reader->end, reader->size - reader->end);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            reader->eof = true;
        reader->end += (size_t)got;
    }
}

/* Finds the line of the link with this id if this run imported it. Returns 0 when it did not. */
static uint64_t line_of_id(const struct importer *im, int64_t id)
{
    size_t low = 0, high = im->span_count, middle;
    const struct batch_span *span;
    size_t index;

    /* The spans are in ascending first_id order, like the batches that made them. */
    while (low < high) {
        middle = low + (high - low) / 2;
        if (im->spans[middle].first_id <= id)
            low = middle + 1;
        else
            high = middle;
    }
    if (low == 0)
        return 0;

    span = &im->spans[low - 1];
    index = span->first_link + (size_t)(id - span->first_id);
    if (index >= im->link_lines_len || (low < im->span_count && index >= im->spans[low].first_link))
        return 0;
    return im->link_lines[index];
}

/* Reports a link whose code the store rejected as taken, with where it is taken. */
static void report_taken(struct importer *im, uint64_t line, const struct store_link *link)
{
    char quoted[4 * STORE_CODE_MAX + 8], message[512];
    struct store_link existing;
    uint64_t first_line;

    /* Past the limit the line is only counted, so the lookup is not needed. */
    if (im->reported >= REPORT_MAX) {
        report_rejection(im, line, "code_taken", NULL);
        return;
    }

    import_quote(link->code, link->code_len, quoted, sizeof(quoted));
    if (store_get_link(im->store, link->code, link->code_len, &existing) < 0) {
        snprintf(message, sizeof(message), "code \"%s\" already exists in the database", quoted);
    } else {
        first_line = line_of_id(im, existing.id);
        if (first_line != 0)
            snprintf(message, sizeof(message), "code \"%s\" is already used by line %" PRIu64,
                     quoted, first_line);
        else if (existing.deleted_at != 0)
            snprintf(message, sizeof(message),
                     "code \"%s\" belongs to a deleted link in the database, and codes of "
                     "deleted links are not reused",
                     quoted);
        else
            snprintf(message, sizeof(message),
                     "code \"%s\" already exists in the database with %s URL", quoted,
                     existing.url_len == link->url_len &&
                             memcmp(existing.url, link->url, link->url_len) == 0
                         ? "the same"
                         : "a different");
        store_link_clear(&existing);
    }
    report_rejection(im, line, "code_taken", message);
}

/* Grows an array to hold at least need elements. Returns 0 or -ENOMEM. */
static int grow(void **array, size_t *cap, size_t need, size_t element)
{
    size_t new_cap = *cap == 0 ? 1024 : *cap;
    void *grown;

    if (need <= *cap)
        return 0;
    while (new_cap < need)
        new_cap *= 2;
    grown = realloc(*array, new_cap * element);
    if (grown == NULL)
        return -ENOMEM;
    *array = grown;
    *cap = new_cap;
    return 0;
}

/*
 * Records the lines of the links of a committed batch, for report_taken.
 * Returns 0 or -ENOMEM.
 */
static int remember_batch(struct importer *im, const struct batch *batch)
{
    struct batch_span *span;

    if (grow((void **)&im->link_lines, &im->link_lines_cap, im->link_lines_len + batch->link_count,
             sizeof(im->link_lines[0])) < 0 ||
        grow((void **)&im->spans, &im->span_cap, im->span_count + 1, sizeof(im->spans[0])) < 0)
        return -ENOMEM;

    span = &im->spans[im->span_count++];
    span->first_id = batch->links[0].id;
    span->first_link = im->link_lines_len;
    memcpy(im->link_lines + im->link_lines_len, batch->lines,
           batch->link_count * sizeof(batch->lines[0]));
    im->link_lines_len += batch->link_count;
    return 0;
}

/* Frees the URLs of the batch's links and empties it. */
static void clear_batch(struct batch *batch)
{
    size_t i;

    for (i = 0; i < batch->link_count; i++) {
        free(batch->links[i].url);
        batch->links[i].url = NULL;
    }
    batch->link_count = 0;
    batch->url_bytes = 0;
    batch->rejection_count = 0;
    batch->message_count = 0;
}

/* Reports a committed batch: its rejected lines in line order, its imported links counted. */
static void report_batch(struct importer *im, const struct batch *batch)
{
    const struct parse_rejection *rejection;
    size_t i, next = 0;

    for (i = 0; i <= batch->link_count; i++) {
        /* The parser's rejections before this link's line, or all that remain after the last. */
        while (next < batch->rejection_count &&
               (i == batch->link_count || batch->rejections[next].line < batch->lines[i])) {
            rejection = &batch->rejections[next++];
            report_rejection(im, rejection->line, rejection->reason,
                             rejection->message >= 0 ? batch->messages[rejection->message] : NULL);
        }
        if (i == batch->link_count)
            break;

        if (batch->results[i] == 0)
            im->imported++;
        else if (batch->results[i] == -EEXIST)
            report_taken(im, batch->lines[i], &batch->links[i]);
        else
            report_rejection(im, batch->lines[i], "invalid_link", strerror(-batch->results[i]));
    }
}

/* Runs on the committer thread: the one store call of a batch. */
static void *commit_batch(void *arg)
{
    struct batch *batch = arg;

    batch->commit_result =
        store_import_links(batch->store, batch->links, batch->results, batch->link_count);
    return NULL;
}

/*
 * Waits for the batch's commit, then reports it and empties it. Returns 0,
 * or -1 after reporting that the commit failed or memory ran out.
 */
static int finish_batch(struct importer *im, struct batch *batch)
{
    int status = 0;

    if (batch->committing) {
        /* It fails only for a thread that is not joinable, and committing says this one is. */
        (void)pthread_join(batch->committer, NULL);
        batch->committing = false;
    }

    if (batch->link_count > 0 && batch->commit_result < 0) {
        clear_progress(im);
        fprintf(stderr,
                "shortd import: commit of %zu links from lines %" PRIu64 " to %" PRIu64
                " failed: %s\n",
                batch->link_count, batch->lines[0], batch->lines[batch->link_count - 1],
                store_last_error(im->store));
        clear_batch(batch);
        return -1;
    }
    if (batch->link_count > 0 && remember_batch(im, batch) < 0) {
        clear_progress(im);
        fprintf(stderr, "shortd import: out of memory after %" PRIu64 " lines\n", im->lines_read);
        status = -1;
    }

    /* The batch is committed, so its lines are reported even when the run stops here. */
    report_batch(im, batch);
    clear_batch(batch);
    return status;
}

/*
 * Finishes the batch that is committing, then starts the commit of the
 * filling batch and makes the other one the filling batch. Returns 0, or -1
 * after reporting why the run must stop (the filling batch is then dropped).
 */
static int submit_batch(struct importer *im)
{
    struct batch *batch = im->filling;
    int64_t now = wall_ms();
    size_t i;

    if (im->committing != NULL) {
        if (finish_batch(im, im->committing) < 0) {
            clear_batch(batch);
            return -1;
        }
        im->committing = NULL;
    }

    for (i = 0; i < batch->link_count; i++)
        batch->links[i].created_at = now;
    batch->store = im->store;
    batch->commit_result = 0;
    if (batch->link_count > 0) {
        /* Without a thread the commit runs here, and only the overlap is lost. */
        batch->committing = pthread_create(&batch->committer, NULL, commit_batch, batch) == 0;
        if (!batch->committing)
            (void)commit_batch(batch);
    }

    im->committing = batch;
    im->filling = batch == &im->batches[0] ? &im->batches[1] : &im->batches[0];
    return 0;
}

/*
 * Submits what the filling batch contains and finishes every commit. Returns
 * 0, or -1 after reporting why the run stopped.
 */
static int drain_batches(struct importer *im)
{
    struct batch *last;

    if (submit_batch(im) < 0)
        return -1;
    last = im->committing;
    im->committing = NULL;
    return finish_batch(im, last);
}

/* Adds a line that the parser rejected to the batch, keeping its message while it may be reported.
 */
static void add_rejection(struct importer *im, uint64_t line, const char *reason,
                          const char *message)
{
    struct batch *batch = im->filling;
    struct parse_rejection *rejection = &batch->rejections[batch->rejection_count++];

    rejection->line = line;
    rejection->reason = reason;
    rejection->message = -1;

    /* reported lags behind while a batch commits, so this may keep a few messages too many. */
    if (im->reported + batch->message_count < REPORT_MAX) {
        rejection->message = (int)batch->message_count;
        (void)snprintf(batch->messages[batch->message_count++], sizeof(batch->messages[0]), "%s",
                       message);
    }
}

/*
 * Adds line number to the batch: as a link, as a rejection, or not at all
 * when it is skipped. line is NULL for a line longer than the reader keeps,
 * whose length is total. Returns 0 or -ENOMEM.
 */
static int add_line(struct importer *im, uint64_t number, const char *line, size_t len,
                    uint64_t total)
{
    struct import_error err = {.reason = NULL};
    struct import_line parsed;
    struct store_link *link;
    char message[256];
    int rc;

    if (line == NULL) {
        (void)snprintf(message, sizeof(message),
                       "line is %" PRIu64 " bytes long, longer than the maximum of %zu bytes: a "
                       "code of up to %d bytes, a tab, a URL of up to %zu bytes and a CR",
                       total, im->reader.max_line, STORE_CODE_MAX, im->policy.max_length);
        add_rejection(im, number, "line_too_long", message);
        return 0;
    }

    rc = import_parse_line(line, len, &im->policy, &parsed, &err);
    if (rc == IMPORT_LINE_SKIP) {
        im->skipped++;
        return 0;
    }
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        add_rejection(im, number, err.reason, err.message);
        return 0;
    }

    link = &im->filling->links[im->filling->link_count];
    memset(link, 0, sizeof(*link));
    memcpy(link->code, parsed.code, parsed.code_len + 1);
    link->code_len = parsed.code_len;
    link->url = parsed.url;
    link->url_len = parsed.url_len;
    link->redirect_status = im->redirect_status;
    link->cache_max_age = -1;
    link->is_alias = true;
    im->filling->lines[im->filling->link_count++] = number;
    im->filling->url_bytes += parsed.url_len;
    return 0;
}

/* Reads, parses and imports the whole input. Returns 0, or -1 after reporting why it stopped. */
static int import_input(struct importer *im)
{
    const char *line = NULL;
    uint64_t total = 0;
    size_t len = 0;
    int rc;

    for (;;) {
        rc = read_line(&im->reader, &line, &len, &total);
        if (rc == 0)
            break;
        if (rc < 0) {
            clear_progress(im);
            fprintf(stderr, "shortd import: reading %s failed after line %" PRIu64 ": %s\n",
                    im->input_name, im->lines_read, strerror(-rc));
            (void)drain_batches(im);
            return -1;
        }
        im->lines_read++;

        /* A UTF-8 byte order mark, which some editors put first, is not part of the code. */
        if (im->lines_read == 1 && line != NULL && len >= 3 &&
            memcmp(line, "\xef\xbb\xbf", 3) == 0) {
            line += 3;
            len -= 3;
        }

        if (add_line(im, im->lines_read, line, len, total) < 0) {
            clear_progress(im);
            fprintf(stderr, "shortd import: out of memory at line %" PRIu64 "\n", im->lines_read);
            (void)drain_batches(im);
            return -1;
        }
        if ((im->filling->link_count + im->filling->rejection_count == BATCH_LINES ||
             im->filling->url_bytes >= BATCH_BYTES) &&
            submit_batch(im) < 0)
            return -1;
        if (im->progress && im->lines_read % PROGRESS_CHECK_LINES == 0)
            show_progress(im);
    }
    return drain_batches(im);
}

/*
 * Sets the URL policy from the settings as the daemon does: the own host
 * comes from the base URL, checked and normalised as an http or https URL
 * without a query or fragment. Returns 0, or -EINVAL after writing why.
 */
static int set_policy(struct importer *im, const struct config *config)
{
    static const char *const base_schemes[] = {"http", "https"};
    struct url_policy base_policy = {
        .schemes = base_schemes, .scheme_count = 2, .max_length = 1000, .own_host = NULL};
    struct url_error err = {.code = NULL};
    char base_url[1024];
    char *normalised = NULL;
    size_t len = 0;

    config_base_url(config, (uint16_t)strtoul(config->listen_port, NULL, 10), base_url,
                    sizeof(base_url));
    if (url_normalize(base_url, strlen(base_url), &base_policy, &normalised, &len, &err) < 0) {
        fprintf(stderr, "shortd import: --base-url %s: %s\n", base_url,
                err.code != NULL ? err.message : "out of memory");
        return -EINVAL;
    }
    if (strpbrk(normalised, "?#") != NULL) {
        fprintf(stderr, "shortd import: --base-url %s: must not have a query or fragment\n",
                base_url);
        free(normalised);
        return -EINVAL;
    }
    url_copy_host(normalised, im->own_host, sizeof(im->own_host));
    free(normalised);

    im->policy.schemes = config->schemes;
    im->policy.scheme_count = config->scheme_count;
    im->policy.max_length = config->max_url_length;
    im->policy.own_host = im->own_host[0] != '\0' ? im->own_host : NULL;
    im->redirect_status = config->redirect_status;
    return 0;
}

/* Opens the input named on the command line. Returns 0, or -1 after writing why. */
static int open_input(struct importer *im, const char *name)
{
    if (strcmp(name, "-") == 0) {
        im->reader.fd = STDIN_FILENO;
        im->input_name = "stdin";
        return 0;
    }

    im->reader.fd = open(name, O_RDONLY | O_CLOEXEC);
    if (im->reader.fd < 0) {
        fprintf(stderr, "shortd import: cannot open %s: %s\n", name, strerror(errno));
        return -1;
    }
    im->input_name = name;
    return 0;
}

/* Allocates the batches and the reader's buffer. Returns 0, or -1 after writing why. */
static int allocate(struct importer *im)
{
    struct batch *batch;
    size_t i;

    im->reader.max_line = STORE_CODE_MAX + 1 + im->policy.max_length + 1;
    im->reader.size = im->reader.max_line + 1 + READ_CHUNK;
    im->reader.buffer = malloc(im->reader.size);
    if (im->reader.buffer == NULL)
        goto fail;

    for (i = 0; i < 2; i++) {
        batch = &im->batches[i];
        batch->links = calloc(BATCH_LINES, sizeof(batch->links[0]));
        batch->results = calloc(BATCH_LINES, sizeof(batch->results[0]));
        batch->lines = calloc(BATCH_LINES, sizeof(batch->lines[0]));
        batch->rejections = calloc(BATCH_LINES, sizeof(batch->rejections[0]));
        batch->messages = calloc(REPORT_MAX, sizeof(batch->messages[0]));
        if (batch->links == NULL || batch->results == NULL || batch->lines == NULL ||
            batch->rejections == NULL || batch->messages == NULL)
            goto fail;
    }
    im->filling = &im->batches[0];
    return 0;

fail:
    fprintf(stderr, "shortd import: out of memory for two batches of %d lines\n", BATCH_LINES);
    return -1;
}

static void release(struct importer *im)
{
    struct batch *batch;
    size_t i;

    for (i = 0; i < 2; i++) {
        batch = &im->batches[i];
        if (batch->links != NULL)
            clear_batch(batch);
        free(batch->links);
        free(batch->results);
        free(batch->lines);
        free(batch->rejections);
        free(batch->messages);
    }
    free(im->reader.buffer);
    free(im->link_lines);
    free(im->spans);
    if (im->reader.fd > STDIN_FILENO)
        (void)close(im->reader.fd);
}

/*
 * Opens the database and takes its lock, so that no daemon serves it
 * during the import. Returns 0 and sets *lock_fd, or -1 after writing why.
 */
static int open_database(struct importer *im, const char *db, int *lock_fd)
{
    char error[512], path[4200];
    int rc;

    /*
     * Lock before opening, so that a locked database is left untouched. The
     * lock file sits beside the database, so for a new database the open
     * that creates its folder comes first.
     */
    rc = dblock_acquire(db, lock_fd);
    if (rc == -ENOENT) {
        rc = store_open(db, &im->store, error, sizeof(error));
        if (rc < 0) {
            fprintf(stderr, "shortd import: cannot open database %s: %s\n", db, error);
            return -1;
        }
        rc = dblock_acquire(db, lock_fd);
    }
    if (rc == -EWOULDBLOCK) {
        dblock_path(db, path, sizeof(path));
        fprintf(stderr,
                "shortd import: database %s is in use by a running shortd, which holds the "
                "lock on %s; stop it before importing, or import into another database\n",
                db, path);
        return -1;
    }
    if (rc < 0) {
        dblock_path(db, path, sizeof(path));
        fprintf(stderr, "shortd import: cannot lock %s: %s\n", path, strerror(-rc));
        return -1;
    }

    if (im->store == NULL) {
        rc = store_open(db, &im->store, error, sizeof(error));
        if (rc < 0) {
            fprintf(stderr, "shortd import: cannot open database %s: %s\n", db, error);
            return -1;
        }
    }
    return 0;
}

static void print_summary(struct importer *im)
{
    double elapsed = seconds_since(&im->started);

    clear_progress(im);
    fprintf(stderr,
            "shortd import: imported %" PRIu64 ", skipped %" PRIu64 ", rejected %" PRIu64
            " of %" PRIu64 " lines in %.2f s (%.0f lines/s)\n",
            im->imported, im->skipped, im->rejected, im->lines_read, elapsed,
            elapsed > 0 ? (double)im->lines_read / elapsed : 0.0);
}

int import_main(int argc, char **argv)
{
    static struct config config;
    struct config_operands operands;
    enum config_action action;
    struct importer im;
    int lock_fd = -1;
    int status = 1;

    if (config_load_command(&config, &import_command, argc, argv, &action, &operands, stderr) < 0)
        return 2;
    if (action == CONFIG_HELP) {
        config_print_command_help(&import_command, stdout);
        return 0;
    }
    if (action == CONFIG_VERSION) {
        printf("shortd %s\n", SHORTD_VERSION);
        return 0;
    }

    memset(&im, 0, sizeof(im));
    im.reader.fd = -1;
    if (set_policy(&im, &config) < 0)
        return 2;
    if (open_input(&im, operands.values[0]) < 0 || allocate(&im) < 0 ||
        open_database(&im, config.db, &lock_fd) < 0)
        goto done;

    im.progress = isatty(STDERR_FILENO) == 1;
    (void)clock_gettime(CLOCK_MONOTONIC, &im.started);
    im.last_progress = im.started;
    status = import_input(&im) < 0 ? 1 : 0;
    print_summary(&im);

done:
    store_close(im.store);
    dblock_release(lock_fd);
    release(&im);
    return status;
}
