/*
 * Micro-benchmark of the SQLite store: durable creates per second through
 * store_apply with batches of 1, 100 and 1000 links, then store_get_link
 * lookups per second of random existing codes, all on one thread.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Isrc src/store/store.c src/store/sqlite.c \
 *       src/store/sqlite_setup.c bench/micro_store.c -o /tmp/micro_store \
 *       $(pkg-config --cflags --libs sqlite3 libsodium) && /tmp/micro_store [FOLDER]
 *
 * The database goes into a new folder made by mkdtemp under FOLDER (default
 * /tmp) and is removed at the end. Put FOLDER on the disk to measure,
 * because on tmpfs fsync costs nothing and the create numbers then do not
 * measure durable writes. Each phase runs for about PHASE_SECONDS; the numbers depend on
 * the disk's fsync latency far more than on the CPU.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define PHASE_SECONDS 3.0
#define MAX_BATCH     1000

static double now_seconds(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
    (void)info;
    (void)type;
    (void)walk;
    return remove(path);
}

/* Code of link id: 7 characters, like the codes shortd generates. */
static void code_for_id(int64_t id, char code[STORE_CODE_MAX + 1])
{
    (void)snprintf(code, STORE_CODE_MAX + 1, "b%06" PRId64, id);
}

/* Writes a typical campaign URL of about 90 bytes for link id into url. */
static size_t url_for_id(int64_t id, char *url, size_t url_cap)
{
    return (size_t)snprintf(url, url_cap,
                            "https://www.example.com/articles/%" PRId64
                            "?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
                            id);
}

/*
 * Creates links in batches of batch_size for PHASE_SECONDS, ids from *next_id
 * on. Returns 0 or the first error of store_apply.
 */
static int run_creates(struct store *store, size_t batch_size, int64_t *next_id)
{
    static struct store_op ops[MAX_BATCH];
    static char urls[MAX_BATCH][160];
    double start = now_seconds();
    double elapsed = 0;
    uint64_t commits = 0;
    uint64_t creates = 0;
    size_t i;
    int rc;

    while (elapsed < PHASE_SECONDS) {
        for (i = 0; i < batch_size; i++) {
            struct store_op *op = &ops[i];
            int64_t id = (*next_id)++;

            memset(op, 0, sizeof(*op));
            op->kind = STORE_OP_CREATE;
            op->link.id = id;
            code_for_id(id, op->link.code);
            op->link.code_len = strlen(op->link.code);
            op->link.url = urls[i];
            op->link.url_len = url_for_id(id, urls[i], sizeof(urls[i]));
            op->link.created_at = 1700000000000 + id;
            op->link.redirect_status = 301;
            op->now = op->link.created_at;
        }

        rc = store_apply(store, ops, batch_size);
        if (rc < 0) {
            fprintf(stderr, "micro_store: %s\n", store_last_error(store));
            return rc;
        }
        for (i = 0; i < batch_size; i++) {
            if (ops[i].result != 0) {
                fprintf(stderr, "micro_store: create of link %s failed: %s\n", ops[i].link.code,
                        strerror(-ops[i].result));
                return ops[i].result;
            }
        }

        commits++;
        creates += batch_size;
        elapsed = now_seconds() - start;
    }

    printf("batch %4zu: %9.0f durable creates/s, %7.0f commits/s, %6.2f ms per commit "
           "(%" PRIu64 " creates in %.1f s)\n",
           batch_size, (double)creates / elapsed, (double)commits / elapsed,
           elapsed * 1e3 / (double)commits, creates, elapsed);
    return 0;
}

/* Looks up random codes among ids [1, last_id] for PHASE_SECONDS. */
static int run_gets(struct store *store, int64_t last_id)
{
    char code[STORE_CODE_MAX + 1];
    struct store_link link;
    uint64_t state = 0x9e3779b97f4a7c15u;
    double start = now_seconds();
    double elapsed = 0;
    uint64_t gets = 0;
    int i;
    int rc;

    while (elapsed < PHASE_SECONDS) {
        /* Check the clock every 1000 lookups so that it costs nothing. */
        for (i = 0; i < 1000; i++) {
            state ^= state << 13; /* xorshift64 */
            state ^= state >> 7;
            state ^= state << 17;
            code_for_id((int64_t)(state % (uint64_t)last_id) + 1, code);

            rc = store_get_link(store, code, strlen(code), &link);
            if (rc < 0) {
                fprintf(stderr, "micro_store: read of link %s failed: %s\n", code,
                        rc == -ENOENT ? "not found" : store_last_error(store));
                return rc;
            }
            store_link_clear(&link);
        }
        gets += 1000;
        elapsed = now_seconds() - start;
    }

    printf("get_link:   %9.0f lookups/s over %" PRId64 " links (%" PRIu64 " in %.1f s)\n",
           (double)gets / elapsed, last_id, gets, elapsed);
    return 0;
}

int main(int argc, char **argv)
{
    const size_t batch_sizes[] = {1, 100, 1000};
    const char *parent = argc > 1 ? argv[1] : "/tmp";
    char folder[4096];
    char path[4200];
    char error[512];
    struct store *store;
    int64_t next_id = 1;
    size_t i;
    int rc;

    (void)snprintf(folder, sizeof(folder), "%s/shortd-micro-store-XXXXXX", parent);
    if (mkdtemp(folder) == NULL) {
        fprintf(stderr, "micro_store: creating a folder in %s failed: %s\n", parent,
                strerror(errno));
        return 1;
    }
    (void)snprintf(path, sizeof(path), "%s/shortd.db", folder);

    rc = store_open(path, &store, error, sizeof(error));
    if (rc < 0) {
        fprintf(stderr, "micro_store: %s\n", error);
        return 1;
    }

    printf("database %s, %.0f s per phase\n", path, PHASE_SECONDS);
    for (i = 0; i < sizeof(batch_sizes) / sizeof(batch_sizes[0]) && rc == 0; i++)
        rc = run_creates(store, batch_sizes[i], &next_id);
    if (rc == 0)
        rc = run_gets(store, next_id - 1);
    store_close(store);

    if (nftw(folder, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "micro_store: removing %s failed: %s\n", folder, strerror(errno));
    return rc == 0 ? 0 : 1;
}
