/*
 * Structured log lines on stderr, in logfmt:
 *
 *   ts=2026-12-04T20:22:23.123Z level=error component=store msg="commit of 128 links failed: disk full"
 *
 * One line per call, written with one write(2), so lines from different
 * threads never interleave. The level is checked before anything is
 * formatted. Components return errors; only the daemon logs.
 */
#ifndef SHORTD_APP_LOG_H
#define SHORTD_APP_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
};

/* Lowest level written; set once at start, before threads start. */
extern enum log_level log_threshold;

#define log_at(level, component, ...)                                                              \
    do {                                                                                           \
        if ((level) >= log_threshold)                                                              \
            log__write((level), (component), __VA_ARGS__);                                         \
    } while (0)

#define log_debug(component, ...) log_at(LOG_DEBUG, component, __VA_ARGS__)
#define log_info(component, ...)  log_at(LOG_INFO, component, __VA_ARGS__)
#define log_warn(component, ...)  log_at(LOG_WARN, component, __VA_ARGS__)
#define log_error(component, ...) log_at(LOG_ERROR, component, __VA_ARGS__)

/* Formats and writes one line; use the macros above. */
void log__write(enum log_level level, const char *component, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Parses "debug", "info", "warn" or "error". Returns 0, or -EINVAL.
 */
int log_parse_level(const char *text, enum log_level *level);

/*
 * Rate limit for a message that may repeat quickly (accept failures, for
 * example): at most one line per interval, and the next line says how many
 * were suppressed. Safe to share between threads.
 */
struct log_limit {
    uint64_t interval_ms;
    _Atomic uint64_t next_ms;
    _Atomic uint64_t suppressed;
};

/*
 * Returns whether a line may be written now. When it may, stores in
 * *suppressed how many were dropped since the last one.
 */
bool log_limit_allow(struct log_limit *limit, uint64_t now_ms, uint64_t *suppressed);

#endif
