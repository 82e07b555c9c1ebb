/* Structured logging, see log.h. */
#include "app/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Appends text as a logfmt quoted value: quotes, backslashes and control
 * bytes are escaped so that one call is always one line. */
static size_t append_quoted(char *out, size_t pos, size_t cap, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char c;

    if (pos < cap)
        out[pos++] = '"';
    for (; *text != '\0' && pos + 5 < cap; text++) {
        c = (unsigned char)*text;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            out[pos++] = '\\';
            out[pos++] = 'x';
            out[pos++] = hex[c >> 4];
            out[pos++] = hex[c & 15];
        } else {
            out[pos++] = (char)c;
        }
    }
    if (pos < cap)
        out[pos++] = '"';
    return pos;
}

void log__write(enum log_level level, const char *component, const char *format, ...)
{
    char message[LINE_MAX_BYTES / 2];
    char line[LINE_MAX_BYTES];
    struct timespec ts;
    struct tm tm;
    size_t pos;
    va_list ap;
    int saved_errno = errno;

    va_start(ap, format);
    (void)vsnprintf(message, sizeof(message), format, ap);
    va_end(ap);

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    (void)gmtime_r(&ts.tv_sec, &tm);
    pos = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    pos += (size_t)snprintf(line + pos, sizeof(line) - pos, ".%03ldZ level=%s component=%s msg=",
                            ts.tv_nsec / 1000000, level_names[level], component);
    pos = append_quoted(line, pos, sizeof(line) - 1, message);
    line[pos++] = '\n';

    (void)write(STDERR_FILENO, line, pos);
    errno = saved_errno;
}

int log_parse_level(const char *text, enum log_level *level)
{
    size_t i;

    for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(text, level_names[i]) == 0) {
            *level = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool log_limit_allow(struct log_limit *limit, uint64_t now_ms, uint64_t *suppressed)
{
    uint64_t next = atomic_load_explicit(&limit->next_ms, memory_order_relaxed);

    /* Relaxed throughout: the fields only count, nothing else is published. */
    if (now_ms < next ||
        !atomic_compare_exchange_strong_explicit(&limit->next_ms, &next,
                                                 now_ms + limit->interval_ms,
                                                 memory_order_relaxed, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&limit->suppressed, 1, memory_order_relaxed);
        return false;
    }
    *suppressed = atomic_exchange_explicit(&limit->suppressed, 0, memory_order_relaxed);
    return true;
}
