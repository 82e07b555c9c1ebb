/*
 * Micro-benchmark of the SQLite store, all on one thread:
 * 1. durable creates per second through store_apply with batches of 1, 100
 *    and 1000 links;
 * 2. store_get_link lookups per second of random existing codes;
 * 3. after filling the table to PRELOAD_LINKS links, durable creates per
 *    second in batches of 1000 links with distinct new URLs, with dedupe on
 *    and then off, so the cost of the dedupe lookup shows at that size;
 * 4. store_add_visits entries per second, in batches of 1000 entries over
 *    random links, half of them with a referrer host;
 * 5. store_link_stats latency for one link with a year of daily visits from
 *    20 referrer hosts, over 30 and over 365 days.
 * Phases 3 to 5 run RUNS times each and print every run and the median,
 * because the machines this runs on share their cores with other work and a
 * single run can be slowed by a neighbour.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Isrc src/store/store.c src/store/sqlite.c \
 *       src/store/sqlite_setup.c src/store/sqlite_keys.c src/store/sqlite_links.c \
 *       src/store/sqlite_stats.c bench/micro_store.c -o /tmp/micro_store \
 *       $(pkg-config --cflags --libs sqlite3 libsodium) && /tmp/micro_store [FOLDER]
 * or with make micro, which runs every micro-benchmark.
 *
 * The database goes into a new folder made by mkdtemp under FOLDER (default
 * /tmp) and is removed at the end; it grew to 265 MB in one run. Put FOLDER on
 * the disk to measure, because on tmpfs fsync costs nothing and the create
 * numbers then do not measure durable writes. The numbers depend on the
 * disk's fsync latency far more than on the CPU.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define PHASE_SECONDS 3.0
#define RUN_SECONDS   1.0
#define RUNS          5
#define MAX_BATCH     1000

/* Links in the table before the dedupe phase: the size the index must cope with. */
#define PRELOAD_LINKS 1000000

/* Day of the first visits in the add_visits and stats phases: 2023-01-01. */
#define FIRST_DAY 19358

#define REFERRER_HOSTS 20

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

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Sorts values[0..count) and returns the median. */
static double median(double *values, size_t count)
{
    qsort(values, count, sizeof(values[0]), compare_doubles);
    if (count % 2 == 1)
        return values[count / 2];
    return (values[count / 2 - 1] + values[count / 2]) / 2;
}

/* Returns the next value of a xorshift64 generator; state must not be 0. */
static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Code of link id: 7 characters up to id 999999, like the codes shortd generates. */
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

static void host_for_index(int index, char host[STORE_HOST_MAX + 1], size_t *host_len)
{
    *host_len = (size_t)snprintf(host, STORE_HOST_MAX + 1, "site%d.example.org", index);
}

/* Points the referrer of visit at the host of index, kept in static storage. */
static void set_referrer(struct store_visit *visit, int index)
{
    static char hosts[REFERRER_HOSTS][STORE_HOST_MAX + 1];
    static size_t lengths[REFERRER_HOSTS];

    if (lengths[index] == 0)
        host_for_index(index, hosts[index], &lengths[index]);
    visit->referrer = hosts[index];
    visit->referrer_len = (uint32_t)lengths[index];
}

/* Tallies of one run of creates. */
struct create_run {
    uint64_t commits;
    uint64_t creates;
    double elapsed;
};

/*
 * Creates links with new ids from *next_id on, in batches of batch_size, for
 * seconds (at least one batch), or until *next_id passes stop_id when that
 * is not 0. Every create must insert, so with dedupe set this also checks
 * that no distinct URL was merged. Returns 0 or the first error.
 */
static int run_creates(struct store *store, size_t batch_size, bool dedupe, double seconds,
                       int64_t stop_id, int64_t *next_id, struct create_run *run)
{
    static struct store_op ops[MAX_BATCH];
    static char urls[MAX_BATCH][160];
    double start = now_seconds();
    size_t i;
    int rc;

    memset(run, 0, sizeof(*run));
    do {
        for (i = 0; i < batch_size; i++) {
            struct store_op *op = &ops[i];
            int64_t id = (*next_id)++;

            memset(op, 0, sizeof(*op));
            op->kind = STORE_OP_CREATE;
            op->dedupe = dedupe;
            op->link.id = id;
            code_for_id(id, op->link.code);
            op->link.code_len = strlen(op->link.code);
            op->link.url = urls[i];
            op->link.url_len = url_for_id(id, urls[i], sizeof(urls[i]));
            op->link.created_at = 1700000000000 + id;
            op->link.redirect_status = 301;
            op->link.cache_max_age = -1;
            op->now = op->link.created_at;
        }

        rc = store_apply(store, ops, batch_size);
        if (rc < 0) {
            fprintf(stderr, "micro_store: %s\n", store_last_error(store));
            return rc;
        }
        for (i = 0; i < batch_size; i++) {
            if (ops[i].result != 0) {
                fprintf(stderr, "micro_store: create of link %s returned %d, expected 0\n",
                        ops[i].link.code, ops[i].result);
                return ops[i].result < 0 ? ops[i].result : -EIO;
            }
        }

        run->commits++;
        run->creates += batch_size;
        run->elapsed = now_seconds() - start;
    } while (stop_id != 0 ? *next_id <= stop_id : run->elapsed < seconds);
    return 0;
}

/* Phase 1: creates per second for each batch size. */
static int run_create_phase(struct store *store, int64_t *next_id)
{
    const size_t batch_sizes[] = {1, 100, 1000};
    struct create_run run;
    size_t i;
    int rc;

    for (i = 0; i < sizeof(batch_sizes) / sizeof(batch_sizes[0]); i++) {
        rc = run_creates(store, batch_sizes[i], false, PHASE_SECONDS, 0, next_id, &run);
        if (rc < 0)
            return rc;
        printf("batch %4zu: %9.0f durable creates/s, %7.0f commits/s, %6.2f ms per commit "
               "(%" PRIu64 " creates in %.1f s)\n",
               batch_sizes[i], (double)run.creates / run.elapsed, (double)run.commits / run.elapsed,
               run.elapsed * 1e3 / (double)run.commits, run.creates, run.elapsed);
    }
    return 0;
}

/* Phase 2: looks up random codes among ids [1, last_id] for PHASE_SECONDS. */
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
            code_for_id((int64_t)(next_random(&state) % (uint64_t)last_id) + 1, code);

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

/* Phase 3: fills the table to PRELOAD_LINKS, then times creates with dedupe on and off. */
static int run_dedupe_phase(struct store *store, int64_t *next_id)
{
    double rates[2][RUNS];
    struct create_run run;
    double start;
    int pass;
    int i;
    int rc;

    if (*next_id <= PRELOAD_LINKS) {
        start = now_seconds();
        rc = run_creates(store, MAX_BATCH, false, 0, PRELOAD_LINKS, next_id, &run);
        if (rc < 0)
            return rc;
        printf("preload:    %" PRIu64 " more links in %.1f s, %" PRId64 " in the table\n",
               run.creates, now_seconds() - start, *next_id - 1);
    }

    /* Alternate the two kinds so that both see the same table sizes and neighbours. */
    for (i = 0; i < RUNS; i++) {
        for (pass = 0; pass < 2; pass++) {
            rc = run_creates(store, MAX_BATCH, pass == 0, RUN_SECONDS, 0, next_id, &run);
            if (rc < 0)
                return rc;
            rates[pass][i] = (double)run.creates / run.elapsed;
            printf("batch 1000, dedupe %-3s run %d: %7.0f durable creates/s, %6.2f ms per "
                   "commit\n",
                   pass == 0 ? "on" : "off", i + 1, rates[pass][i],
                   run.elapsed * 1e3 / (double)run.commits);
        }
    }
    printf("batch 1000 over %" PRId64 "+ links: median %.0f creates/s with dedupe, %.0f without\n",
           (int64_t)PRELOAD_LINKS, median(rates[0], RUNS), median(rates[1], RUNS));
    return 0;
}

/* Phase 4: store_add_visits in batches of MAX_BATCH entries over ids [1, last_id]. */
static int run_visits_phase(struct store *store, int64_t last_id)
{
    static struct store_visit visits[MAX_BATCH];
    uint64_t state = 0x2545f4914f6cdd1du;
    double rates[RUNS];
    uint64_t entries;
    double start;
    double elapsed;
    size_t i;
    int run;
    int rc;

    for (run = 0; run < RUNS; run++) {
        entries = 0;
        start = now_seconds();
        do {
            for (i = 0; i < MAX_BATCH; i++) {
                struct store_visit *visit = &visits[i];
                uint64_t random = next_random(&state);

                memset(visit, 0, sizeof(*visit));
                visit->link_id = (int64_t)(random % (uint64_t)last_id) + 1;
                visit->day = FIRST_DAY + (int32_t)((random >> 32) % 30);
                visit->count = 1 + (random >> 40) % 3;
                if ((random >> 50) % 2 == 0)
                    set_referrer(visit, (int)((random >> 52) % REFERRER_HOSTS));
            }

            rc = store_add_visits(store, visits, MAX_BATCH);
            if (rc < 0) {
                fprintf(stderr, "micro_store: %s\n", store_last_error(store));
                return rc;
            }
            entries += MAX_BATCH;
            elapsed = now_seconds() - start;
        } while (elapsed < RUN_SECONDS);

        rates[run] = (double)entries / elapsed;
        printf("add_visits run %d: %8.0f entries/s, %6.2f ms per batch of %d\n", run + 1,
               rates[run], elapsed * 1e3 * MAX_BATCH / (double)entries, MAX_BATCH);
    }
    printf("add_visits: median %.0f entries/s in batches of %d\n", median(rates, RUNS), MAX_BATCH);
    return 0;
}

/* Gives link 1 visits on each of 365 days from each of REFERRER_HOSTS hosts. */
static int add_year_of_visits(struct store *store)
{
    static struct store_visit visits[MAX_BATCH];
    size_t len = 0;
    int day;
    int host;
    int rc;

    for (day = 0; day < 365; day++) {
        for (host = 0; host < REFERRER_HOSTS; host++) {
            struct store_visit *visit = &visits[len++];

            memset(visit, 0, sizeof(*visit));
            visit->link_id = 1;
            visit->day = FIRST_DAY + day;
            visit->count = 1 + (uint64_t)((day * 7 + host * 13) % 50);
            set_referrer(visit, host);

            if (len == MAX_BATCH || (day == 364 && host == REFERRER_HOSTS - 1)) {
                rc = store_add_visits(store, visits, len);
                if (rc < 0) {
                    fprintf(stderr, "micro_store: %s\n", store_last_error(store));
                    return rc;
                }
                len = 0;
            }
        }
    }
    return 0;
}

/* Phase 5: latency of store_link_stats over the last span days of link 1's year. */
static int run_stats_phase(struct store *store, int span)
{
    enum { CALLS = 2000 };
    static double latencies[CALLS];
    struct store_day_count days[366];
    struct store_host_count hosts[10];
    double medians[RUNS];
    double p99s[RUNS];
    size_t days_len;
    size_t hosts_len;
    double start;
    int run;
    int i;
    int rc;

    for (run = 0; run < RUNS; run++) {
        for (i = 0; i < CALLS; i++) {
            start = now_seconds();
            rc = store_link_stats(store, 1, FIRST_DAY + 365 - span, FIRST_DAY + 364, days, 366,
                                  &days_len, hosts, 10, &hosts_len);
            latencies[i] = (now_seconds() - start) * 1e6;
            if (rc < 0) {
                fprintf(stderr, "micro_store: %s\n", store_last_error(store));
                return rc;
            }
            if (days_len != (size_t)span || hosts_len != 10) {
                fprintf(stderr, "micro_store: stats returned %zu days and %zu hosts\n", days_len,
                        hosts_len);
                return -EIO;
            }
        }
        medians[run] = median(latencies, CALLS); /* sorts latencies */
        p99s[run] = latencies[CALLS * 99 / 100];
        printf("link_stats %3d days run %d: median %7.1f us, p99 %7.1f us over %d calls\n", span,
               run + 1, medians[run], p99s[run], CALLS);
    }
    printf("link_stats %3d days: median of run medians %.1f us, of run p99s %.1f us "
           "(%d days and top 10 of %d hosts)\n",
           span, median(medians, RUNS), median(p99s, RUNS), span, REFERRER_HOSTS);
    return 0;
}

int main(int argc, char **argv)
{
    const char *parent = argc > 1 ? argv[1] : "/tmp";
    char folder[4096];
    char path[4200];
    char error[512];
    struct store *store;
    int64_t next_id = 1;
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

    printf("database %s, %.0f s per phase, %d runs of %.0f s for medians\n", path, PHASE_SECONDS,
           RUNS, RUN_SECONDS);
    rc = run_create_phase(store, &next_id);
    if (rc == 0)
        rc = run_gets(store, next_id - 1);
    if (rc == 0)
        rc = run_dedupe_phase(store, &next_id);
    if (rc == 0)
        rc = run_visits_phase(store, next_id - 1);
    if (rc == 0)
        rc = add_year_of_visits(store);
    if (rc == 0)
        rc = run_stats_phase(store, 30);
    if (rc == 0)
        rc = run_stats_phase(store, 365);
    store_close(store);

    if (nftw(folder, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "micro_store: removing %s failed: %s\n", folder, strerror(errno));
    return rc == 0 ? 0 : 1;
}
