/*
 * Tests of app/log: the logfmt line, the level threshold, log_parse_level
 * and log_limit_allow.
 *
 * Lines are captured by pointing file descriptor 2 at a pipe for the
 * duration of the log calls. The real stderr is back in place before any
 * assertion runs, so cmocka's failure messages stay visible.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/log.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct capture {
    int saved_stderr;
    int pipe_fds[2];
    char text[16384]; /* what was written, NUL-terminated */
    size_t len;
};

static void capture_start(struct capture *capture)
{
    assert_int_equal(pipe(capture->pipe_fds), 0);
    capture->saved_stderr = dup(STDERR_FILENO);
    assert_true(capture->saved_stderr >= 0);
    assert_true(dup2(capture->pipe_fds[1], STDERR_FILENO) >= 0);
}

/* Restores stderr and reads everything written since capture_start. */
static void capture_stop(struct capture *capture)
{
    ssize_t n;
    int restored = dup2(capture->saved_stderr, STDERR_FILENO);

    (void)close(capture->saved_stderr);
    (void)close(capture->pipe_fds[1]);
    assert_true(restored >= 0);

    capture->len = 0;
    while ((n = read(capture->pipe_fds[0], capture->text + capture->len,
                     sizeof(capture->text) - 1 - capture->len)) > 0)
        capture->len += (size_t)n;
    (void)close(capture->pipe_fds[0]);
    assert_int_equal(n, 0);
    capture->text[capture->len] = '\0';
}

static int reset_threshold(void **state)
{
    log_threshold = LOG_INFO;
    return 0;
}

/* Returns the quoted msg value of a captured line, from its opening quote on. */
static const char *msg_of(const char *line)
{
    const char *msg = strstr(line, " msg=\"");

    if (msg == NULL)
        fail_msg("line %s has no msg field", line);
    return msg + 5;
}

static void line_has_logfmt_fields(void **state)
{
    static const char pattern[] = "^ts=([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})"
                                  "\\.[0-9]{3}Z level=error component=store "
                                  "msg=\"commit of 128 links failed: disk full\"\n$";
    struct timespec before, after;
    struct capture capture;
    regmatch_t match[2];
    char ts_text[32];
    struct tm tm;
    regex_t regex;
    time_t ts;

    assert_int_equal(regcomp(&regex, pattern, REG_EXTENDED), 0);
    log_threshold = LOG_DEBUG;

    assert_int_equal(clock_gettime(CLOCK_REALTIME, &before), 0);
    capture_start(&capture);
    log_error("store", "commit of %d links failed: %s", 128, "disk full");
    capture_stop(&capture);
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &after), 0);

    if (regexec(&regex, capture.text, 2, match, 0) != 0)
        fail_msg("line \"%s\" does not match %s", capture.text, pattern);
    regfree(&regex);

    /* The time stamp is UTC and lies between the clock readings around the call. */
    memset(&tm, 0, sizeof(tm));
    (void)snprintf(ts_text, sizeof(ts_text), "%.*s", (int)(match[1].rm_eo - match[1].rm_so),
                   capture.text + match[1].rm_so);
    assert_non_null(strptime(ts_text, "%Y-%m-%dT%H:%M:%S", &tm));
    ts = timegm(&tm);
    if (ts < before.tv_sec || ts > after.tv_sec)
        fail_msg("time stamp %s (%lld) is outside [%lld, %lld]", ts_text, (long long)ts,
                 (long long)before.tv_sec, (long long)after.tv_sec);
}

static void line_names_each_level(void **state)
{
    struct capture capture;

    log_threshold = LOG_DEBUG;
    capture_start(&capture);
    log_debug("a", "one");
    log_info("b", "two");
    log_warn("c", "three");
    log_error("d", "four");
    log_at(LOG_WARN, "e", "five");
    capture_stop(&capture);

    /* Each call is one line, in call order. */
    assert_non_null(strstr(capture.text, "level=debug component=a msg=\"one\"\n"));
    assert_non_null(strstr(capture.text, "level=info component=b msg=\"two\"\n"));
    assert_non_null(strstr(capture.text, "level=warn component=c msg=\"three\"\n"));
    assert_non_null(strstr(capture.text, "level=error component=d msg=\"four\"\n"));
    assert_non_null(strstr(capture.text, "level=warn component=e msg=\"five\"\n"));
    assert_true(strstr(capture.text, "\"one\"") < strstr(capture.text, "\"two\""));
    assert_true(strstr(capture.text, "\"four\"") < strstr(capture.text, "\"five\""));
}

static void msg_escapes_special_bytes(void **state)
{
    const struct {
        const char *message;
        const char *expected; /* the msg value with its quotes and the newline */
    } cases[] = {
        {"say \"hi\"", "\"say \\\"hi\\\"\"\n"},
        {"C:\\dir\\", "\"C:\\\\dir\\\\\"\n"},
        {"two\nlines", "\"two\\nlines\"\n"},
        {"tab\there", "\"tab\\x09here\"\n"},
        {"cr\r", "\"cr\\x0d\"\n"},
        {"\x01\x1b\x1f", "\"\\x01\\x1b\\x1f\"\n"},
        {"del\x7f", "\"del\\x7f\"\n"},
        {"caf\xc3\xa9 \xff", "\"caf\xc3\xa9 \xff\"\n"},
        {"", "\"\"\n"},
    };
    struct capture capture;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        capture_start(&capture);
        log_error("test", "%s", cases[i].message);
        capture_stop(&capture);
        assert_string_equal(msg_of(capture.text), cases[i].expected);
    }
}

static void long_message_is_cut_whole(void **state)
{
    char message[3000];
    struct capture capture;
    const char *msg;
    size_t msg_len, i;

    /* Each 0x01 byte becomes the four bytes \x01, so the line fills up before the message ends. */
    memset(message, 0x01, sizeof(message) - 1);
    message[sizeof(message) - 1] = '\0';
    capture_start(&capture);
    log_error("test", "%s", message);
    capture_stop(&capture);

    assert_true(capture.len <= 4096);
    assert_int_equal(capture.text[capture.len - 1], '\n');
    assert_int_equal(capture.text[capture.len - 2], '"');
    assert_null(memchr(capture.text, '\n', capture.len - 1));

    msg = msg_of(capture.text) + 1;
    msg_len = (size_t)(capture.text + capture.len - 2 - msg);
    assert_true(msg_len > 1000);
    assert_int_equal(msg_len % 4, 0);
    for (i = 0; i < msg_len; i += 4) {
        if (memcmp(msg + i, "\\x01", 4) != 0)
            fail_msg("escape %zu of the cut message is \"%.4s\"", i / 4, msg + i);
    }

    /* A plain message longer than the buffer is cut too, and the line still ends. */
    memset(message, 'a', sizeof(message) - 1);
    capture_start(&capture);
    log_error("test", "%s", message);
    capture_stop(&capture);
    assert_true(capture.len <= 4096);
    assert_int_equal(capture.text[capture.len - 1], '\n');
    assert_int_equal(capture.text[capture.len - 2], '"');
    assert_true(strlen(msg_of(capture.text)) > 1000);
}

static int side_effects;

static int count_evaluation(void)
{
    return ++side_effects;
}

static void threshold_skips_formatting(void **state)
{
    struct capture capture;

    side_effects = 0;
    log_threshold = LOG_WARN;
    capture_start(&capture);
    log_debug("test", "debug %d", count_evaluation());
    log_info("test", "info %d", count_evaluation());
    capture_stop(&capture);
    assert_int_equal(side_effects, 0);
    assert_int_equal(capture.len, 0);

    capture_start(&capture);
    log_warn("test", "warn %d", count_evaluation());
    log_error("test", "error %d", count_evaluation());
    capture_stop(&capture);
    assert_int_equal(side_effects, 2);
    assert_non_null(strstr(capture.text, "msg=\"warn 1\"\n"));
    assert_non_null(strstr(capture.text, "msg=\"error 2\"\n"));

    log_threshold = LOG_ERROR;
    capture_start(&capture);
    log_warn("test", "warn %d", count_evaluation());
    capture_stop(&capture);
    assert_int_equal(side_effects, 2);
    assert_int_equal(capture.len, 0);
}

static void write_keeps_errno(void **state)
{
    struct capture capture;
    int errno_after;

    capture_start(&capture);
    errno = EIO;
    log_error("test", "%s", "kept");
    errno_after = errno;
    capture_stop(&capture);
    assert_int_equal(errno_after, EIO);
    assert_non_null(strstr(capture.text, "msg=\"kept\""));
}

static void parse_level_accepts_four_names(void **state)
{
    const struct {
        const char *text;
        enum log_level level;
    } cases[] = {
        {"debug", LOG_DEBUG},
        {"info", LOG_INFO},
        {"warn", LOG_WARN},
        {"error", LOG_ERROR},
    };
    const char *rejected[] = {"", "DEBUG", "Info", "warning", "err", "errors", "info ", "fatal"};
    enum log_level level;
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        level = (enum log_level)99;
        assert_int_equal(log_parse_level(cases[i].text, &level), 0);
        assert_int_equal(level, cases[i].level);
    }
    for (i = 0; i < ARRAY_SIZE(rejected); i++) {
        level = (enum log_level)99;
        if (log_parse_level(rejected[i], &level) != -EINVAL)
            fail_msg("\"%s\" was not rejected with -EINVAL", rejected[i]);
        assert_int_equal(level, 99);
    }
}

static void limit_allows_first_line(void **state)
{
    struct log_limit limit = {.interval_ms = 1000};
    uint64_t suppressed = 77;

    assert_true(log_limit_allow(&limit, 0, &suppressed));
    assert_int_equal(suppressed, 0);
}

static void limit_counts_suppressed_lines(void **state)
{
    struct log_limit limit = {.interval_ms = 1000};
    uint64_t suppressed = 77;

    assert_true(log_limit_allow(&limit, 5000, &suppressed));
    assert_int_equal(suppressed, 0);

    /* Repeats inside the interval are dropped and leave *suppressed alone. */
    suppressed = 77;
    assert_false(log_limit_allow(&limit, 5000, &suppressed));
    assert_false(log_limit_allow(&limit, 5001, &suppressed));
    assert_false(log_limit_allow(&limit, 5999, &suppressed));
    assert_int_equal(suppressed, 77);

    /* The first line after the interval reports them. */
    assert_true(log_limit_allow(&limit, 6000, &suppressed));
    assert_int_equal(suppressed, 3);

    /* The count restarts, and the interval runs from the last allowed line. */
    assert_false(log_limit_allow(&limit, 6500, &suppressed));
    assert_false(log_limit_allow(&limit, 6999, &suppressed));
    assert_true(log_limit_allow(&limit, 7000, &suppressed));
    assert_int_equal(suppressed, 2);

    /* A line long after the last one is allowed with nothing suppressed. */
    assert_true(log_limit_allow(&limit, 100000, &suppressed));
    assert_int_equal(suppressed, 0);
}

enum { LIMIT_THREADS = 4, LIMIT_CALLS = 2000 };

struct limit_run {
    struct log_limit *limit;
    pthread_barrier_t *start;
    unsigned allowed;
};

static void *call_limit(void *arg)
{
    struct limit_run *run = arg;
    uint64_t suppressed;
    int i;

    (void)pthread_barrier_wait(run->start);
    for (i = 0; i < LIMIT_CALLS; i++) {
        if (log_limit_allow(run->limit, 10, &suppressed))
            run->allowed++;
    }
    return NULL;
}

static void limit_shared_by_threads(void **state)
{
    struct log_limit limit = {.interval_ms = 1000};
    struct limit_run runs[LIMIT_THREADS];
    pthread_t threads[LIMIT_THREADS];
    pthread_barrier_t start;
    unsigned allowed = 0;
    uint64_t suppressed;
    int i;

    assert_int_equal(pthread_barrier_init(&start, NULL, LIMIT_THREADS), 0);
    for (i = 0; i < LIMIT_THREADS; i++) {
        runs[i] = (struct limit_run){.limit = &limit, .start = &start};
        assert_int_equal(pthread_create(&threads[i], NULL, call_limit, &runs[i]), 0);
    }
    for (i = 0; i < LIMIT_THREADS; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
        allowed += runs[i].allowed;
    }
    assert_int_equal(pthread_barrier_destroy(&start), 0);

    /* Exactly one call across all threads was allowed, and every other call was counted. */
    assert_int_equal(allowed, 1);
    assert_true(log_limit_allow(&limit, 1010, &suppressed));
    assert_int_equal(suppressed, LIMIT_THREADS * LIMIT_CALLS - 1);
}

int main(void)
{
#define TEST(name) cmocka_unit_test_teardown(name, reset_threshold)
    const struct CMUnitTest tests[] = {
        TEST(line_has_logfmt_fields),         TEST(line_names_each_level),
        TEST(msg_escapes_special_bytes),      TEST(long_message_is_cut_whole),
        TEST(threshold_skips_formatting),     TEST(write_keeps_errno),
        TEST(parse_level_accepts_four_names), TEST(limit_allows_first_line),
        TEST(limit_counts_suppressed_lines),  TEST(limit_shared_by_threads),
    };
#undef TEST

    return cmocka_run_group_tests(tests, NULL, NULL);
}
