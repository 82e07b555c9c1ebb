/* Prometheus metrics, see metrics.h. */
#include "app/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/version.h"
#include "app/writer.h"

#define STATUS_MIN   100
#define STATUS_COUNT 500 /* statuses 100 to 599 */

/* Upper bounds of the latency buckets, in seconds (the last is +Inf). */
static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                        0.01,   0.025,   0.05,   0.1,   0.25,   0.5, 1, 5};
#define LATENCY_BUCKETS (sizeof(latency_bounds) / sizeof(latency_bounds[0]))

/* Upper bounds of the batch size buckets (the last is +Inf). */
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
#define BATCH_BUCKETS (sizeof(batch_bounds) / sizeof(batch_bounds[0]))

static const char *const route_names[ROUTE_COUNT] = {
    "other",       "redirect",   "link_create", "link_list", "link_read", "link_delete",
    "link_stats",  "keys",       "events",      "healthz",   "readyz",    "metrics",
};

typedef _Atomic uint64_t counter;

struct histogram {
    counter buckets[LATENCY_BUCKETS + 1]; /* the last one is +Inf */
    counter sum_ns;
    counter count;
};

struct thread_block {
    counter responses[ROUTE_COUNT][STATUS_COUNT];
    struct histogram latency[ROUTE_COUNT];
} __attribute__((aligned(64)));

struct writer_block {
    counter commits_ok, commits_failed;
    counter batch_buckets[BATCH_BUCKETS + 1];
    counter batch_ops;
    struct histogram commit_latency;
    counter flushes_ok, flushes_failed, flush_entries;
    struct histogram flush_latency;
};

struct metrics {
    unsigned threads;
    struct thread_block *blocks;
    struct writer_block writer;
    time_t started;
};

/* Adds to a counter that only the calling thread writes. */
static inline void bump(counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t read_counter(const counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

uint64_t metrics_now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct metrics *metrics_create(unsigned threads)
{
    struct metrics *metrics = calloc(1, sizeof(*metrics));

    if (metrics == NULL)
        return NULL;
    metrics->threads = threads;
    metrics->blocks = aligned_alloc(64, sizeof(*metrics->blocks) * threads);
    if (metrics->blocks == NULL) {
        free(metrics);
        return NULL;
    }
    memset(metrics->blocks, 0, sizeof(*metrics->blocks) * threads);
    metrics->started = time(NULL);
    return metrics;
}

void metrics_destroy(struct metrics *metrics)
{
    if (metrics == NULL)
        return;
    free(metrics->blocks);
    free(metrics);
}

static void observe(struct histogram *histogram, const double *bounds, size_t buckets,
                    double value, uint64_t sum_add)
{
    size_t i = 0;

    while (i < buckets && value > bounds[i])
        i++;
    bump(&histogram->buckets[i], 1);
    bump(&histogram->sum_ns, sum_add);
    bump(&histogram->count, 1);
}

void metrics_response(struct metrics *metrics, unsigned thread, unsigned route, int status,
                      uint64_t duration_ns)
{
    struct thread_block *block = &metrics->blocks[thread];

    if (route >= ROUTE_COUNT)
        route = ROUTE_OTHER;
    if (status >= STATUS_MIN && status < STATUS_MIN + STATUS_COUNT)
        bump(&block->responses[route][status - STATUS_MIN], 1);
    observe(&block->latency[route], latency_bounds, LATENCY_BUCKETS, (double)duration_ns / 1e9,
            duration_ns);
}

void metrics_commit(struct metrics *metrics, size_t ops, uint64_t duration_ns, int err)
{
    struct writer_block *writer = &metrics->writer;
    size_t i = 0;

    bump(err < 0 ? &writer->commits_failed : &writer->commits_ok, 1);
    while (i < BATCH_BUCKETS && (double)ops > batch_bounds[i])
        i++;
    bump(&writer->batch_buckets[i], 1);
    bump(&writer->batch_ops, ops);
    observe(&writer->commit_latency, latency_bounds, LATENCY_BUCKETS, (double)duration_ns / 1e9,
            duration_ns);
}

void metrics_visit_flush(struct metrics *metrics, size_t entries, uint64_t duration_ns, int err)
{
    struct writer_block *writer = &metrics->writer;

    bump(err < 0 ? &writer->flushes_failed : &writer->flushes_ok, 1);
    bump(&writer->flush_entries, entries);
    observe(&writer->flush_latency, latency_bounds, LATENCY_BUCKETS, (double)duration_ns / 1e9,
            duration_ns);
}

/* ---- rendering ---- */

struct text {
    char *data;
    size_t len, cap;
    bool failed;
};

static void put(struct text *text, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *text, const char *format, ...)
{
    va_list ap;
    int n;
    char *grown;

    for (;;) {
        if (text->failed)
            return;
        va_start(ap, format);
        n = vsnprintf(text->data + text->len, text->cap - text->len, format, ap);
        va_end(ap);
        if (n < 0) {
            text->failed = true;
            return;
        }
        if ((size_t)n < text->cap - text->len) {
            text->len += (size_t)n;
            return;
        }
        grown = realloc(text->data, text->cap * 2 + (size_t)n);
        if (grown == NULL) {
            text->failed = true;
            return;
        }
        text->data = grown;
        text->cap = text->cap * 2 + (size_t)n;
    }
}

static void header(struct text *text, const char *name, const char *type, const char *help)
{
    put(text, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_histogram(struct text *text, const char *name, const char *labels,
                          const double *bounds, size_t buckets, const uint64_t *counts,
                          uint64_t count, double sum)
{
    const char *separator = labels[0] != '\0' ? "," : "";
    uint64_t cumulative = 0;
    size_t i;

    for (i = 0; i < buckets; i++) {
        cumulative += counts[i];
        put(text, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, separator, bounds[i],
            (unsigned long long)cumulative);
    }
    put(text, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, separator,
        (unsigned long long)count);
    if (labels[0] != '\0') {
        put(text, "%s_sum{%s} %.9f\n", name, labels, sum);
        put(text, "%s_count{%s} %llu\n", name, labels, (unsigned long long)count);
    } else {
        put(text, "%s_sum %.9f\n", name, sum);
        put(text, "%s_count %llu\n", name, (unsigned long long)count);
    }
}

/* Renders a histogram that one thread writes. */
static void put_single_histogram(struct text *text, const char *name,
                                 const struct histogram *histogram, const double *bounds,
                                 size_t buckets, double sum_scale)
{
    uint64_t counts[LATENCY_BUCKETS + 1];
    size_t i;

    for (i = 0; i <= buckets; i++)
        counts[i] = read_counter(&histogram->buckets[i]);
    put_histogram(text, name, "", bounds, buckets, counts, read_counter(&histogram->count),
                  (double)read_counter(&histogram->sum_ns) * sum_scale);
}

static void render_requests(struct metrics *metrics, struct text *text)
{
    uint64_t counts[LATENCY_BUCKETS + 1], total, count, sum;
    char labels[64];
    unsigned r, s, t;
    size_t i;

    header(text, "shortd_http_requests_total", "counter", "HTTP responses by route and status.");
    for (r = 0; r < ROUTE_COUNT; r++) {
        for (s = 0; s < STATUS_COUNT; s++) {
            total = 0;
            for (t = 0; t < metrics->threads; t++)
                total += read_counter(&metrics->blocks[t].responses[r][s]);
            if (total > 0)
                put(text, "shortd_http_requests_total{route=\"%s\",code=\"%u\"} %llu\n",
                    route_names[r], s + STATUS_MIN, (unsigned long long)total);
        }
    }

    header(text, "shortd_http_request_duration_seconds", "histogram",
           "Time from a complete request head to the end of its response, by route.");
    for (r = 0; r < ROUTE_COUNT; r++) {
        count = sum = 0;
        memset(counts, 0, sizeof(counts));
        for (t = 0; t < metrics->threads; t++) {
            const struct histogram *h = &metrics->blocks[t].latency[r];

            for (i = 0; i <= LATENCY_BUCKETS; i++)
                counts[i] += read_counter(&h->buckets[i]);
            count += read_counter(&h->count);
            sum += read_counter(&h->sum_ns);
        }
        if (count == 0)
            continue;
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
        put_histogram(text, "shortd_http_request_duration_seconds", labels, latency_bounds,
                      LATENCY_BUCKETS, counts, count, (double)sum / 1e9);
    }
}

static void render_writer(struct metrics *metrics, struct text *text)
{
    const struct writer_block *writer = &metrics->writer;
    uint64_t counts[BATCH_BUCKETS + 1], count = 0;
    size_t i;

    header(text, "shortd_store_commits_total", "counter",
           "Transactions of creates, deletes and key changes, by result.");
    put(text, "shortd_store_commits_total{result=\"ok\"} %llu\n",
        (unsigned long long)read_counter(&writer->commits_ok));
    put(text, "shortd_store_commits_total{result=\"error\"} %llu\n",
        (unsigned long long)read_counter(&writer->commits_failed));

    header(text, "shortd_store_batch_size", "histogram", "Operations per transaction.");
    for (i = 0; i <= BATCH_BUCKETS; i++) {
        counts[i] = read_counter(&writer->batch_buckets[i]);
        count += counts[i];
    }
    put_histogram(text, "shortd_store_batch_size", "", batch_bounds, BATCH_BUCKETS, counts, count,
                  (double)read_counter(&writer->batch_ops));

    header(text, "shortd_store_commit_duration_seconds", "histogram",
           "Time to apply and durably commit one transaction.");
    put_single_histogram(text, "shortd_store_commit_duration_seconds", &writer->commit_latency,
                         latency_bounds, LATENCY_BUCKETS, 1e-9);

    header(text, "shortd_visit_flushes_total", "counter", "Flushes of visit counts, by result.");
    put(text, "shortd_visit_flushes_total{result=\"ok\"} %llu\n",
        (unsigned long long)read_counter(&writer->flushes_ok));
    put(text, "shortd_visit_flushes_total{result=\"error\"} %llu\n",
        (unsigned long long)read_counter(&writer->flushes_failed));
    header(text, "shortd_visit_flush_entries_total", "counter",
           "Entries (link, day, referrer host) written by visit flushes.");
    put(text, "shortd_visit_flush_entries_total %llu\n",
        (unsigned long long)read_counter(&writer->flush_entries));
    header(text, "shortd_visit_flush_duration_seconds", "histogram",
           "Time to write one flush of visit counts.");
    put_single_histogram(text, "shortd_visit_flush_duration_seconds", &writer->flush_latency,
                         latency_bounds, LATENCY_BUCKETS, 1e-9);
}

static void gauge(struct text *text, const char *name, const char *help, double value)
{
    header(text, name, "gauge", help);
    put(text, "%s %.17g\n", name, value);
}

static void counter_line(struct text *text, const char *name, const char *help, uint64_t value)
{
    header(text, name, "counter", help);
    put(text, "%s %llu\n", name, (unsigned long long)value);
}

static void render_limits(struct app *app, struct text *text)
{
    struct ratelimit *limits[3] = {app->anonymous_limit, app->key_limit, app->redirect_limit};
    static const char *const names[3] = {"anonymous", "key", "redirect"};
    struct ratelimit_stats stats[3];
    int i;

    for (i = 0; i < 3; i++) {
        memset(&stats[i], 0, sizeof(stats[i]));
        if (limits[i] != NULL)
            ratelimit_get_stats(limits[i], &stats[i]);
    }
    header(text, "shortd_rate_limited_total", "counter", "Requests denied by a rate limit.");
    for (i = 0; i < 3; i++)
        put(text, "shortd_rate_limited_total{limit=\"%s\"} %llu\n", names[i],
            (unsigned long long)stats[i].denied);
    header(text, "shortd_rate_limit_clients", "gauge", "Clients with a bucket, per rate limit.");
    for (i = 0; i < 3; i++)
        put(text, "shortd_rate_limit_clients{limit=\"%s\"} %llu\n", names[i],
            (unsigned long long)stats[i].buckets);
}

/* Adds the process metrics that Prometheus client libraries export. */
static void render_process(struct metrics *metrics, struct text *text)
{
    long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
    unsigned long vm_pages = 0, rss_pages = 0, utime = 0, stime = 0;
    struct rlimit limit;
    struct dirent *entry;
    unsigned fds = 0;
    FILE *file;
    DIR *dir;

    file = fopen("/proc/self/statm", "r");
    if (file != NULL) {
        if (fscanf(file, "%lu %lu", &vm_pages, &rss_pages) != 2)
            vm_pages = rss_pages = 0;
        (void)fclose(file);
    }
    file = fopen("/proc/self/stat", "r");
    if (file != NULL) {
        /* Fields 14 and 15; the name in field 2 has no space in shortd's case. */
        if (fscanf(file, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                   &stime) != 2)
            utime = stime = 0;
        (void)fclose(file);
    }
    dir = opendir("/proc/self/fd");
    if (dir != NULL) {
        while ((entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] != '.')
                fds++;
        }
        (void)closedir(dir);
        fds--; /* the directory's own descriptor */
    }

    gauge(text, "process_resident_memory_bytes", "Resident memory size in bytes.",
          (double)rss_pages * (double)page);
    gauge(text, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
          (double)vm_pages * (double)page);
    header(text, "process_cpu_seconds_total", "counter", "User and system CPU time in seconds.");
    put(text, "process_cpu_seconds_total %.2f\n", (double)(utime + stime) / (double)ticks);
    gauge(text, "process_open_fds", "Open file descriptors.", fds);
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0)
        gauge(text, "process_max_fds", "Maximum number of open file descriptors.",
              (double)limit.rlim_cur);
    gauge(text, "process_start_time_seconds", "Start time of the process in seconds since 1970.",
          (double)metrics->started);
}

char *metrics_render(struct metrics *metrics, struct app *app, size_t *len)
{
    struct text text = {.cap = 16384};
    struct cache_stats cache;
    struct broker_stats broker;

    text.data = malloc(text.cap);
    if (text.data == NULL)
        return NULL;
    text.data[0] = '\0';

    header(&text, "shortd_build_info", "gauge", "Version of the running shortd.");
    put(&text, "shortd_build_info{version=\"%s\"} 1\n", SHORTD_VERSION);

    render_requests(metrics, &text);
    gauge(&text, "shortd_http_connections", "Open client connections.",
          server_connection_count(app->server));

    cache_get_stats(app->cache, &cache);
    counter_line(&text, "shortd_cache_hits_total", "Redirect lookups found in the cache.",
                 cache.hits);
    counter_line(&text, "shortd_cache_misses_total",
                 "Redirect lookups not found in the cache, read from the store.", cache.misses);
    counter_line(&text, "shortd_cache_evictions_total", "Cache entries evicted to make room.",
                 cache.evictions);
    gauge(&text, "shortd_cache_entries", "Links (and unknown codes) in the cache.",
          (double)cache.entries);
    gauge(&text, "shortd_cache_bytes", "Bytes the cache charges for its entries.",
          (double)cache.bytes);
    gauge(&text, "shortd_cache_capacity_bytes", "The cache's limit in bytes (--cache-size).",
          (double)app->config->cache_size);

    render_writer(metrics, &text);
    gauge(&text, "shortd_writer_queue_depth", "Writes waiting for the writer.",
          (double)writer_queue_depth(app->writer));
    gauge(&text, "shortd_worker_queue_depth", "Store reads waiting for a worker.",
          (double)workpool_queue_depth(app->workers));
    counter_line(&text, "shortd_visits_dropped_total",
                 "Visits not counted because a counting table was full.",
                 visits_dropped(app->visits));

    render_limits(app, &text);

    broker_get_stats(app->broker, &broker);
    counter_line(&text, "shortd_events_published_total", "Events given an id.",
                 broker.published);
    counter_line(&text, "shortd_events_dropped_total",
                 "Events not queued because a stream's queue was full.", broker.dropped);
    gauge(&text, "shortd_event_streams", "Open event streams.", (double)broker.subscriptions);

    render_process(metrics, &text);

    if (text.failed) {
        free(text.data);
        return NULL;
    }
    *len = text.len;
    return text.data;
}
