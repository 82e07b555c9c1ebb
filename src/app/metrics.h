/*
 * Counters for GET /metrics, in the Prometheus text format (version 0.0.4).
 *
 * Each I/O thread has its own block of counters and is the only thread that
 * writes it, so counting a request is a few plain increments with no atomic
 * read-modify-write and no shared cache line; a scrape sums the blocks.
 * Counters are _Atomic so that the scraper's reads are well defined; their
 * owner updates them with a relaxed load and a relaxed store, which compile
 * to an ordinary increment. A scrape may therefore see a block mid-update:
 * each counter is exact on its own, and totals can differ by the requests in
 * flight.
 *
 * The writer thread's counters (commits, visit flushes) work the same way,
 * with the writer as the only writer.
 */
#ifndef SHORTD_APP_METRICS_H
#define SHORTD_APP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct app;
struct metrics;

/* The route label of a request. */
enum metrics_route {
    ROUTE_OTHER = 0,
    ROUTE_REDIRECT,
    ROUTE_LINK_CREATE,
    ROUTE_LINK_LIST,
    ROUTE_LINK_READ,
    ROUTE_LINK_DELETE,
    ROUTE_LINK_STATS,
    ROUTE_KEYS,
    ROUTE_EVENTS,
    ROUTE_HEALTH,
    ROUTE_READY,
    ROUTE_METRICS,
    ROUTE_COUNT
};

/* Creates counters for `threads` I/O threads. Returns NULL on failure. */
struct metrics *metrics_create(unsigned threads);

void metrics_destroy(struct metrics *metrics);

/* Counts a response. I/O thread `thread` only. */
void metrics_response(struct metrics *metrics, unsigned thread, unsigned route, int status,
                      uint64_t duration_ns);

/* Counts a writer transaction of `ops` operations. Writer thread only. */
void metrics_commit(struct metrics *metrics, size_t ops, uint64_t duration_ns, int err);

/* Counts a flush of visit counts. Writer thread only. */
void metrics_visit_flush(struct metrics *metrics, size_t entries, uint64_t duration_ns, int err);

/*
 * Renders every metric of the daemon, these counters and the state of the
 * components app points to, as a malloc'd text (the caller frees it).
 * Returns NULL on allocation failure. Any thread.
 */
char *metrics_render(struct metrics *metrics, struct app *app, size_t *len);

/* Reads a monotonic clock in nanoseconds, for durations. */
uint64_t metrics_now_ns(void);

#endif
