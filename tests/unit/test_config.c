/*
 * Tests of app/config: defaults, each value type, the listen address, the
 * precedence of file, environment and flags, the config file's errors, the
 * admin key, the cross-checks, the --help and --version actions and
 * config_base_url.
 *
 * Each test runs with every SHORTD_* variable unset and in its own folder
 * (made by mkdtemp under /tmp) for config and key files. The teardown
 * restores the variables that were set before the test. Error output goes
 * to an open_memstream buffer that the tests search.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/config.h"
#include "app/version.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define assert_contains(text, part)                                                                \
    do {                                                                                           \
        if (strstr((text), (part)) == NULL)                                                        \
            fail_msg("\"%s\" does not contain \"%s\"", (text), (part));                            \
    } while (0)

#define assert_not_contains(text, part)                                                            \
    do {                                                                                           \
        if (strstr((text), (part)) != NULL)                                                        \
            fail_msg("\"%s\" contains \"%s\"", (text), (part));                                    \
    } while (0)

extern char **environ;

enum { SAVED_MAX = 64 };

struct fixture {
    char dir[64];
    char *saved[SAVED_MAX]; /* "NAME=value" of each SHORTD_* variable set before the test */
    size_t saved_count;
    struct config config;
    enum config_action action;
    char *err;       /* error output of the last load */
    char args[1024]; /* arguments of the last load, for failure messages */
    struct config_operands operands; /* of the last load_command */
};

/* Unsets every SHORTD_* variable. The names are copied first because unsetenv changes environ. */
static void unset_shortd_variables(void)
{
    char names[SAVED_MAX][128];
    size_t count = 0, i, len;
    char **entry;

    for (entry = environ; *entry != NULL && count < SAVED_MAX; entry++) {
        if (strncmp(*entry, "SHORTD_", 7) != 0)
            continue;
        len = strcspn(*entry, "=");
        if (len >= sizeof(names[0]))
            continue;
        memcpy(names[count], *entry, len);
        names[count][len] = '\0';
        count++;
    }
    for (i = 0; i < count; i++)
        assert_int_equal(unsetenv(names[i]), 0);
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));
    char **entry;

    if (fixture == NULL)
        return -1;
    strcpy(fixture->dir, "/tmp/shortd-config-test-XXXXXX");
    if (mkdtemp(fixture->dir) == NULL) {
        free(fixture);
        return -1;
    }

    for (entry = environ; *entry != NULL; entry++) {
        if (strncmp(*entry, "SHORTD_", 7) == 0 && fixture->saved_count < SAVED_MAX)
            fixture->saved[fixture->saved_count++] = strdup(*entry);
    }
    unset_shortd_variables();
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;
    size_t i;
    char *eq;
    int rc;

    unset_shortd_variables();
    for (i = 0; i < fixture->saved_count; i++) {
        eq = strchr(fixture->saved[i], '=');
        *eq = '\0';
        (void)setenv(fixture->saved[i], eq + 1, 1);
        free(fixture->saved[i]);
    }

    rc = nftw(fixture->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fixture->err);
    free(fixture);
    return rc;
}

#define ARGV_MAX 32

/*
 * Fills argv with program and args (NULL-terminated), records args in
 * fixture->args for failure messages, and opens a fresh stream for the error
 * output into fixture->err. Returns argc.
 */
static int prepare_argv(struct fixture *fixture, const char *program, const char *const *args,
                        char *argv[ARGV_MAX], FILE **err, size_t *err_len)
{
    int argc = 0;

    argv[argc++] = (char *)program;
    fixture->args[0] = '\0';
    while (args[argc - 1] != NULL) {
        (void)snprintf(fixture->args + strlen(fixture->args),
                       sizeof(fixture->args) - strlen(fixture->args), " %s", args[argc - 1]);
        assert_true(argc < ARGV_MAX - 1);
        argv[argc] = (char *)args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;

    free(fixture->err);
    fixture->err = NULL;
    *err = open_memstream(&fixture->err, err_len);
    assert_non_null(*err);
    return argc;
}

/* Runs config_load on argv (NULL-terminated, without the program name). */
static int load_argv(struct fixture *fixture, const char *const *args)
{
    char *argv[ARGV_MAX];
    FILE *err;
    size_t err_len = 0;
    int argc = prepare_argv(fixture, "shortd", args, argv, &err, &err_len);
    int rc = config_load(&fixture->config, argc, argv, &fixture->action, err);

    assert_int_equal(fclose(err), 0);
    return rc;
}

#define load(fixture, ...) load_argv((fixture), (const char *const[]){__VA_ARGS__, NULL})
#define load_none(fixture) load_argv((fixture), (const char *const[]){NULL})

/* Loads args and expects success with no error output. */
#define assert_loads(fixture, ...)                                                                 \
    do {                                                                                           \
        int rc_ = load((fixture), __VA_ARGS__);                                                    \
        if (rc_ != 0)                                                                              \
            fail_msg("shortd%s: config_load returned %d, expected 0, with output: %s",             \
                     (fixture)->args, rc_, (fixture)->err);                                        \
        assert_string_equal((fixture)->err, "");                                                   \
    } while (0)

/* Loads args and expects -EINVAL with error output that contains part. */
#define assert_rejects(fixture, part, ...)                                                         \
    do {                                                                                           \
        int rc_ = load((fixture), __VA_ARGS__);                                                    \
        if (rc_ != -EINVAL)                                                                        \
            fail_msg("shortd%s: config_load returned %d, expected %d (-EINVAL), with output: %s",  \
                     (fixture)->args, rc_, -EINVAL, (fixture)->err);                               \
        assert_contains((fixture)->err, (part));                                                   \
    } while (0)

/* Writes text into the file name in the fixture's folder; stores its path. */
static void write_file(struct fixture *fixture, const char *name, const char *text, char *path,
                       size_t path_len)
{
    FILE *file;

    (void)snprintf(path, path_len, "%s/%s", fixture->dir, name);
    file = fopen(path, "w");
    assert_non_null(file);
    assert_true(fputs(text, file) >= 0);
    assert_int_equal(fclose(file), 0);
}

static void defaults_fill_every_field(void **state)
{
    struct fixture *fixture = *state;
    struct config *config = &fixture->config;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned expected_threads = 1;

    if (cores > 256)
        expected_threads = 256;
    else if (cores > 1)
        expected_threads = (unsigned)cores;

    memset(config, 0x5a, sizeof(*config)); /* a field left unset shows as 0x5a bytes */
    assert_int_equal(load_none(fixture), 0);
    assert_string_equal(fixture->err, "");
    assert_int_equal(fixture->action, CONFIG_RUN);

    assert_string_equal(config->listen_host, "127.0.0.1");
    assert_string_equal(config->listen_port, "8080");
    assert_string_equal(config->db, "./data/shortd.db");
    assert_string_equal(config->base_url, "");
    assert_int_equal(config->threads, expected_threads);
    assert_int_equal(config->workers, 4);
    assert_int_equal(config->cache_size, 256 * 1024 * 1024);
    assert_int_equal(config->max_connections, 10000);
    assert_int_equal(config->code_length, 7);
    assert_int_equal(config->redirect_status, 301);
    assert_int_equal(config->scheme_count, 2);
    assert_string_equal(config->schemes[0], "http");
    assert_string_equal(config->schemes[1], "https");
    assert_int_equal(config->max_url_length, 8192);
    assert_int_equal(config->max_body_size, 64 * 1024);
    assert_int_equal(config->max_header_size, 16 * 1024);
    assert_int_equal(config->max_request_line, 8 * 1024);
    assert_int_equal(config->header_timeout_ms, 10000);
    assert_int_equal(config->body_timeout_ms, 30000);
    assert_int_equal(config->idle_timeout_ms, 60000);
    assert_int_equal(config->write_timeout_ms, 30000);
    assert_int_equal(config->shutdown_timeout_ms, 10000);
    assert_int_equal(config->negative_ttl_ms, 10000);
    assert_int_equal(config->log_level, LOG_INFO);
    assert_string_equal(config->config_file, "");
    assert_string_equal(config->admin_key, "");
}

static void count_accepts_bounds(void **state)
{
    struct fixture *fixture = *state;

    assert_loads(fixture, "--workers", "1", "--threads=256", "--code-length", "4",
                 "--max-connections", "1000000");
    assert_int_equal(fixture->config.workers, 1);
    assert_int_equal(fixture->config.threads, 256);
    assert_int_equal(fixture->config.code_length, 4);
    assert_int_equal(fixture->config.max_connections, 1000000);

    assert_loads(fixture, "--workers=256", "--threads", "1", "--code-length=10",
                 "--max-connections=1");
    assert_int_equal(fixture->config.workers, 256);
    assert_int_equal(fixture->config.threads, 1);
    assert_int_equal(fixture->config.code_length, 10);
    assert_int_equal(fixture->config.max_connections, 1);
}

static void count_rejects_outside_bounds(void **state)
{
    struct fixture *fixture = *state;

    assert_rejects(fixture, "--workers: 0 is out of range; allowed: 1 to 256", "--workers=0");
    assert_rejects(fixture, "--workers: 257 is out of range; allowed: 1 to 256", "--workers=257");
    assert_rejects(fixture, "--threads: 0 is out of range; allowed: 1 to 256", "--threads=0");
    assert_rejects(fixture, "--code-length: 3 is out of range; allowed: 4 to 10",
                   "--code-length=3");
    assert_rejects(fixture, "--code-length: 11 is out of range; allowed: 4 to 10",
                   "--code-length=11");
    assert_rejects(fixture, "--max-connections: 1000001 is out of range; allowed: 1 to 1000000",
                   "--max-connections=1000001");
}

static void count_rejects_non_numbers(void **state)
{
    struct fixture *fixture = *state;
    const char *values[] = {"",   "abc", "-1",  "+4",   " 4",
                            "4 ", "4x",  "1.5", "0x10", "99999999999999999999999"};
    char expected[64];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(values); i++) {
        (void)snprintf(expected, sizeof(expected), "invalid value \"%s\"; expected a whole number",
                       values[i]);
        assert_rejects(fixture, expected, "--workers", values[i]);
    }
}

static void size_accepts_suffixes(void **state)
{
    struct fixture *fixture = *state;
    const struct {
        const char *text;
        uint64_t bytes;
    } cases[] = {
        {"65536", 65536},
        {"64K", 64 * 1024},
        {"64k", 64 * 1024},
        {"64KB", 64 * 1024},
        {"3M", 3 * 1024 * 1024},
        {"3m", 3 * 1024 * 1024},
        {"2G", UINT64_C(2) << 30},
        {"2g", UINT64_C(2) << 30},
        {"1024G", UINT64_C(1) << 40},
        {"1099511627776", UINT64_C(1) << 40},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        assert_loads(fixture, "--cache-size", cases[i].text);
        assert_int_equal(fixture->config.cache_size, cases[i].bytes);
    }
}

static void size_rejects_bad_text_and_range(void **state)
{
    struct fixture *fixture = *state;
    const char *invalid[] = {"", "K", "-1K", "1T", "1KK", "1 K", "1B", "1.5M", "0x10000",
                             /* 2^64 and 2^34 G would wrap to small numbers */
                             "18446744073709551616", "17179869184G", "18014398509481984M"};
    char expected[96];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(invalid); i++) {
        (void)snprintf(expected, sizeof(expected), "--cache-size: invalid value \"%s\"",
                       invalid[i]);
        assert_rejects(fixture, expected, "--cache-size", invalid[i]);
    }

    assert_rejects(fixture, "--cache-size: 65535 is out of range; allowed: 65536 to 1099511627776",
                   "--cache-size", "65535");
    assert_rejects(fixture, "--cache-size: 1025G is out of range", "--cache-size", "1025G");
    assert_rejects(fixture, "--cache-size: 17179869183G is out of range", "--cache-size",
                   "17179869183G");
    assert_rejects(fixture, "--max-url-length: 15 is out of range; allowed: 16 to 1048576",
                   "--max-url-length", "15");
}

static void seconds_accept_fractions(void **state)
{
    struct fixture *fixture = *state;

    assert_loads(fixture, "--header-timeout", "0.5", "--body-timeout=2.25", "--idle-timeout",
                 "3600", "--write-timeout", "0.001", "--shutdown-timeout", "0",
                 "--negative-cache-ttl", "1.0004");
    assert_int_equal(fixture->config.header_timeout_ms, 500);
    assert_int_equal(fixture->config.body_timeout_ms, 2250);
    assert_int_equal(fixture->config.idle_timeout_ms, 3600000);
    assert_int_equal(fixture->config.write_timeout_ms, 1);
    assert_int_equal(fixture->config.shutdown_timeout_ms, 0);
    assert_int_equal(fixture->config.negative_ttl_ms, 1000);

    assert_loads(fixture, "--negative-cache-ttl", "0.0006");
    assert_int_equal(fixture->config.negative_ttl_ms, 1);
}

static void seconds_reject_bad_text_and_range(void **state)
{
    struct fixture *fixture = *state;
    const char *invalid[] = {"", ".5", "-1", "1s", "abc", "nan", "inf", "1,5", "99999999"};
    char expected[128];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(invalid); i++) {
        (void)snprintf(expected, sizeof(expected),
                       "--idle-timeout: invalid value \"%s\"; expected a number of seconds",
                       invalid[i]);
        assert_rejects(fixture, expected, "--idle-timeout", invalid[i]);
    }

    /* 0.0004 s rounds to 0 ms, below the 1 ms minimum of a timeout. */
    assert_rejects(fixture,
                   "--header-timeout: 0.0004 is out of range; allowed: 0.001 to 3600 "
                   "seconds",
                   "--header-timeout", "0.0004");
    assert_rejects(fixture, "--header-timeout: 0 is out of range; allowed: 0.001 to 3600 seconds",
                   "--header-timeout", "0");
    assert_rejects(fixture,
                   "--shutdown-timeout: 3600.001 is out of range; allowed: 0 to 3600 "
                   "seconds",
                   "--shutdown-timeout", "3600.001");
}

static void redirect_status_accepts_four_codes(void **state)
{
    struct fixture *fixture = *state;
    const int accepted[] = {301, 302, 307, 308};
    const char *rejected[] = {"300", "303", "200", "0", "3010", "abc", "", "-301", "301.0"};
    char text[16], expected[96];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(accepted); i++) {
        (void)snprintf(text, sizeof(text), "%d", accepted[i]);
        assert_loads(fixture, "--redirect-status", text);
        assert_int_equal(fixture->config.redirect_status, accepted[i]);
    }
    for (i = 0; i < ARRAY_SIZE(rejected); i++) {
        (void)snprintf(expected, sizeof(expected),
                       "invalid redirect status \"%s\"; use 301, 302, 307 or 308", rejected[i]);
        assert_rejects(fixture, expected, "--redirect-status", rejected[i]);
    }
}

static void log_level_accepts_four_names(void **state)
{
    struct fixture *fixture = *state;
    const struct {
        const char *text;
        enum log_level level;
    } cases[] = {
        {"debug", LOG_DEBUG},
        {"info", LOG_INFO},
        {"warn", LOG_WARN},
        {"error", LOG_ERROR},
    };
    const char *rejected[] = {"", "warning", "verbose", "err", "info "};
    char expected[96];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        assert_loads(fixture, "--log-level", cases[i].text);
        assert_int_equal(fixture->config.log_level, cases[i].level);
    }
    for (i = 0; i < ARRAY_SIZE(rejected); i++) {
        (void)snprintf(expected, sizeof(expected),
                       "invalid level \"%s\"; use debug, info, warn or error", rejected[i]);
        assert_rejects(fixture, expected, "--log-level", rejected[i]);
    }
}

/* Checks that config has exactly the schemes in expected[0..count). */
static void assert_schemes(const struct config *config, const char *const *expected, size_t count)
{
    size_t i;

    assert_int_equal(config->scheme_count, count);
    for (i = 0; i < count; i++)
        assert_string_equal(config->schemes[i], expected[i]);
}

static void schemes_fold_case_and_trim(void **state)
{
    struct fixture *fixture = *state;
    const char *web[] = {"http", "https"};
    const char *three[] = {"http", "ftp", "svn+ssh"};
    const char *odd[] = {"web-cal", "x.y"};

    assert_loads(fixture, "--schemes", "HTTP,Https");
    assert_schemes(&fixture->config, web, 2);

    assert_loads(fixture, "--schemes", "  http , FTP,  svn+SSH  ");
    assert_schemes(&fixture->config, three, 3);

    assert_loads(fixture, "--schemes", "Web-Cal,X.Y");
    assert_schemes(&fixture->config, odd, 2);
}

static void schemes_skip_empty_items(void **state)
{
    struct fixture *fixture = *state;
    const char *web[] = {"http", "https"};

    assert_loads(fixture, "--schemes", ",http,,  ,https,");
    assert_schemes(&fixture->config, web, 2);
}

static void schemes_allow_eight_at_most(void **state)
{
    struct fixture *fixture = *state;
    const char *eight[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

    assert_loads(fixture, "--schemes", "a,b,c,d,e,f,g,h");
    assert_schemes(&fixture->config, eight, 8);

    assert_rejects(fixture, "--schemes: at most 8 schemes are allowed", "--schemes",
                   "a,b,c,d,e,f,g,h,i");
}

static void schemes_reject_empty_list(void **state)
{
    struct fixture *fixture = *state;
    const char *lists[] = {"", ",", " , , ", "   "};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(lists); i++)
        assert_rejects(fixture, "--schemes: the scheme list is empty", "--schemes", lists[i]);
}

static void schemes_reject_invalid_names(void **state)
{
    struct fixture *fixture = *state;
    const char *lists[] = {"http:", "http,ht/tp", "https://", "ht tp", "http,a b"};
    size_t i;

    for (i = 0; i < ARRAY_SIZE(lists); i++)
        assert_rejects(fixture, "--schemes: invalid scheme", "--schemes", lists[i]);

    /* The error shows the item as given, trimmed but not lowercased. */
    assert_rejects(fixture, "--schemes: invalid scheme \"Ht Tp\"", "--schemes", "HTTP,  Ht Tp ");
}

static void schemes_reject_overlong_list(void **state)
{
    struct fixture *fixture = *state;
    char list[300];

    memset(list, 'a', sizeof(list) - 1);
    list[sizeof(list) - 1] = '\0';
    assert_rejects(fixture, "--schemes: the scheme list is too long", "--schemes", list);

    /* 255 bytes still fit the 256-byte buffer. */
    list[255] = '\0';
    assert_loads(fixture, "--schemes", list);
    assert_int_equal(fixture->config.scheme_count, 1);
    assert_int_equal(strlen(fixture->config.schemes[0]), 255);
}

static void listen_accepts_each_form(void **state)
{
    struct fixture *fixture = *state;
    const struct {
        const char *text;
        const char *host;
        const char *port;
    } cases[] = {
        {"127.0.0.1:8080", "127.0.0.1", "8080"},
        {"0.0.0.0:0", "0.0.0.0", "0"},
        {"localhost:65535", "localhost", "65535"},
        {"[::1]:8080", "::1", "8080"},
        {"[::]:443", "::", "443"},
        {"[fe80::1:2]:1", "fe80::1:2", "1"},
        {":9000", "", "9000"},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        assert_loads(fixture, "--listen", cases[i].text);
        assert_string_equal(fixture->config.listen_host, cases[i].host);
        assert_string_equal(fixture->config.listen_port, cases[i].port);
    }
}

static void listen_rejects_bad_port(void **state)
{
    struct fixture *fixture = *state;
    const char *values[] = {
        "localhost",       "localhost:",
        "127.0.0.1:http",  "127.0.0.1:80a",
        "127.0.0.1:-1",    "[::1]",
        "[::1]8080",       "[::1]:",
        "::1]:80x",        "127.0.0.1:65536",
        "[::1]:70000",     "host:99999",
        "host:2147483648", "host:4294967296",
        "host:4294975488", "host:123456789012345678901234567890",
    };
    char expected[128];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(values); i++) {
        (void)snprintf(expected, sizeof(expected),
                       "--listen: invalid address \"%s\"; use HOST:PORT", values[i]);
        assert_rejects(fixture, expected, "--listen", values[i]);
    }
}

static void environment_names_the_variable(void **state)
{
    struct fixture *fixture = *state;

    assert_int_equal(setenv("SHORTD_WORKERS", "many", 1), 0);
    assert_rejects(fixture, "SHORTD_WORKERS: invalid value \"many\"", "--db", "x.db");
}

static void environment_sets_every_kind(void **state)
{
    struct fixture *fixture = *state;

    assert_int_equal(setenv("SHORTD_LISTEN", "[::1]:81", 1), 0);
    assert_int_equal(setenv("SHORTD_DB", "/var/lib/shortd/links.db", 1), 0);
    assert_int_equal(setenv("SHORTD_BASE_URL", "https://sho.rt", 1), 0);
    assert_int_equal(setenv("SHORTD_CACHE_SIZE", "1G", 1), 0);
    assert_int_equal(setenv("SHORTD_IDLE_TIMEOUT", "1.5", 1), 0);
    assert_int_equal(setenv("SHORTD_REDIRECT_STATUS", "308", 1), 0);
    assert_int_equal(setenv("SHORTD_LOG_LEVEL", "debug", 1), 0);
    assert_int_equal(setenv("SHORTD_SCHEMES", "HTTPS", 1), 0);
    assert_loads(fixture, "--workers", "2");

    assert_string_equal(fixture->config.listen_host, "::1");
    assert_string_equal(fixture->config.listen_port, "81");
    assert_string_equal(fixture->config.db, "/var/lib/shortd/links.db");
    assert_string_equal(fixture->config.base_url, "https://sho.rt");
    assert_int_equal(fixture->config.cache_size, UINT64_C(1) << 30);
    assert_int_equal(fixture->config.idle_timeout_ms, 1500);
    assert_int_equal(fixture->config.redirect_status, 308);
    assert_int_equal(fixture->config.log_level, LOG_DEBUG);
    assert_int_equal(fixture->config.scheme_count, 1);
    assert_string_equal(fixture->config.schemes[0], "https");
    assert_int_equal(fixture->config.workers, 2);
}

static void file_environment_flags_precedence(void **state)
{
    struct fixture *fixture = *state;
    char path[256], flag[300];

    write_file(fixture, "shortd.conf",
               "workers = 2\n"
               "threads = 3\n"
               "code-length = 8\n"
               "schemes = ftp\n",
               path, sizeof(path));
    (void)snprintf(flag, sizeof(flag), "--config=%s", path);

    /* The file alone. */
    assert_loads(fixture, flag);
    assert_string_equal(fixture->config.config_file, path);
    assert_int_equal(fixture->config.workers, 2);
    assert_int_equal(fixture->config.threads, 3);
    assert_int_equal(fixture->config.code_length, 8);
    assert_string_equal(fixture->config.schemes[0], "ftp");

    /* The environment wins over the file. */
    assert_int_equal(setenv("SHORTD_WORKERS", "5", 1), 0);
    assert_int_equal(setenv("SHORTD_THREADS", "6", 1), 0);
    assert_int_equal(setenv("SHORTD_SCHEMES", "gopher", 1), 0);
    assert_loads(fixture, flag);
    assert_int_equal(fixture->config.workers, 5);
    assert_int_equal(fixture->config.threads, 6);
    assert_int_equal(fixture->config.code_length, 8);
    assert_int_equal(fixture->config.scheme_count, 1);
    assert_string_equal(fixture->config.schemes[0], "gopher");

    /* Flags win over both, in either position relative to --config. */
    assert_loads(fixture, "--workers", "9", flag, "--schemes=HTTP");
    assert_int_equal(fixture->config.workers, 9);
    assert_int_equal(fixture->config.threads, 6);
    assert_int_equal(fixture->config.code_length, 8);
    assert_int_equal(fixture->config.scheme_count, 1);
    assert_string_equal(fixture->config.schemes[0], "http");

    /* A later flag wins over an earlier one. */
    assert_loads(fixture, "--workers=9", "--workers=10");
    assert_int_equal(fixture->config.workers, 10);
}

static void config_flag_wins_over_environment(void **state)
{
    struct fixture *fixture = *state;
    char env_path[256], flag_path[256];

    write_file(fixture, "env.conf", "workers = 2\n", env_path, sizeof(env_path));
    write_file(fixture, "flag.conf", "workers = 3\n", flag_path, sizeof(flag_path));

    assert_int_equal(setenv("SHORTD_CONFIG", env_path, 1), 0);
    assert_loads(fixture, "--db", "x.db");
    assert_int_equal(fixture->config.workers, 2);
    assert_string_equal(fixture->config.config_file, env_path);

    assert_loads(fixture, "--config", flag_path);
    assert_int_equal(fixture->config.workers, 3);
    assert_string_equal(fixture->config.config_file, flag_path);
}

static void config_file_ignores_comments_and_spaces(void **state)
{
    struct fixture *fixture = *state;
    char path[256], flag[300];

    write_file(fixture, "shortd.conf",
               "# shortd settings\n"
               "\n"
               "   \t\n"
               "  # indented comment\n"
               "\tlisten   =   0.0.0.0:9000  \n"
               "base-url=https://sho.rt/\n"
               "cache-size = 1G\n",
               path, sizeof(path));
    (void)snprintf(flag, sizeof(flag), "--config=%s", path);

    assert_loads(fixture, flag);
    assert_string_equal(fixture->config.listen_host, "0.0.0.0");
    assert_string_equal(fixture->config.listen_port, "9000");
    assert_string_equal(fixture->config.base_url, "https://sho.rt/");
    assert_int_equal(fixture->config.cache_size, UINT64_C(1) << 30);
}

static void config_file_errors_name_file_and_line(void **state)
{
    struct fixture *fixture = *state;
    char path[256], flag[300], expected[512];

    write_file(fixture, "bad.conf",
               "# line 1 is a comment\n"
               "workers = 2\n"
               "just some words\n"
               "bogus = 1\n"
               "threads = zero\n"
               "config = other.conf\n"
               "listen = nowhere\n",
               path, sizeof(path));
    (void)snprintf(flag, sizeof(flag), "--config=%s", path);

    assert_int_equal(load(fixture, flag), -EINVAL);
    (void)snprintf(expected, sizeof(expected), "shortd: %s:3: expected \"name = value\"", path);
    assert_contains(fixture->err, expected);
    (void)snprintf(expected, sizeof(expected), "shortd: %s:4: unknown setting \"bogus\"", path);
    assert_contains(fixture->err, expected);
    (void)snprintf(expected, sizeof(expected),
                   "shortd: %s:5: threads: invalid value \"zero\"; expected a whole number", path);
    assert_contains(fixture->err, expected);
    (void)snprintf(expected, sizeof(expected), "shortd: %s:6: unknown setting \"config\"", path);
    assert_contains(fixture->err, expected);
    (void)snprintf(expected, sizeof(expected), "shortd: %s:7: listen: invalid address \"nowhere\"",
                   path);
    assert_contains(fixture->err, expected);
    assert_not_contains(fixture->err, ":2:");
    assert_not_contains(fixture->err, ":1:");
}

static void missing_config_file_is_an_error(void **state)
{
    struct fixture *fixture = *state;
    char path[256], expected[400];

    (void)snprintf(path, sizeof(path), "%s/absent.conf", fixture->dir);
    assert_int_equal(setenv("SHORTD_CONFIG", path, 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    (void)snprintf(expected, sizeof(expected),
                   "cannot read config file %s: No such file or directory", path);
    assert_contains(fixture->err, expected);
}

static void unknown_flags_are_rejected(void **state)
{
    struct fixture *fixture = *state;

    assert_rejects(fixture, "shortd: unknown option --nope; see shortd --help", "--nope");
    assert_rejects(fixture, "shortd: unknown option --nope; see shortd --help", "--nope=1");
    assert_rejects(fixture, "shortd: unknown option --work; see shortd --help", "--work=2");
    assert_rejects(fixture, "shortd: unexpected argument \"-w\"", "-w");
    assert_rejects(fixture, "shortd: unexpected argument \"stray\"", "stray");
    assert_rejects(fixture, "shortd: --workers needs a value (N)", "--workers");
    assert_rejects(fixture, "shortd: --config needs a value (FILE)", "--config");
}

static void every_problem_gets_a_line(void **state)
{
    struct fixture *fixture = *state;

    assert_int_equal(load(fixture, "--workers=0", "--nope", "--listen=x"), -EINVAL);
    assert_contains(fixture->err, "--workers: 0 is out of range");
    assert_contains(fixture->err, "unknown option --nope");
    assert_contains(fixture->err, "--listen: invalid address \"x\"");
}

static void admin_key_flag_is_rejected_with_hint(void **state)
{
    struct fixture *fixture = *state;
    const char *secret = "flag-secret-0123456789";
    char flag[64];

    (void)snprintf(flag, sizeof(flag), "--admin-key=%s", secret);
    assert_rejects(fixture, "set SHORTD_ADMIN_KEY or SHORTD_ADMIN_KEY_FILE", flag);
    assert_contains(fixture->err, "process list");
    assert_not_contains(fixture->err, secret);
    assert_string_equal(fixture->config.admin_key, "");

    /* With the key as the next argument, the key is not echoed either. */
    assert_rejects(fixture, "set SHORTD_ADMIN_KEY or SHORTD_ADMIN_KEY_FILE", "--admin-key", secret);
    assert_not_contains(fixture->err, secret);
    assert_string_equal(fixture->config.admin_key, "");
}

static void admin_key_from_environment(void **state)
{
    struct fixture *fixture = *state;
    char key[300];

    memset(key, 'k', sizeof(key));
    key[16] = '\0';
    assert_int_equal(setenv("SHORTD_ADMIN_KEY", key, 1), 0);
    assert_loads(fixture, "--workers", "1");
    assert_string_equal(fixture->config.admin_key, key);

    memset(key, 'k', sizeof(key));
    key[255] = '\0';
    assert_int_equal(setenv("SHORTD_ADMIN_KEY", key, 1), 0);
    assert_loads(fixture, "--workers", "1");
    assert_string_equal(fixture->config.admin_key, key);
}

static void admin_key_length_is_checked(void **state)
{
    struct fixture *fixture = *state;
    char key[300];

    memset(key, 'k', sizeof(key));
    key[15] = '\0';
    assert_int_equal(setenv("SHORTD_ADMIN_KEY", key, 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    assert_contains(fixture->err, "the admin key must be 16 to 255 characters long, got 15");
    assert_not_contains(fixture->err, key);
    assert_string_equal(fixture->config.admin_key, "");

    memset(key, 'k', sizeof(key));
    key[256] = '\0';
    assert_int_equal(setenv("SHORTD_ADMIN_KEY", key, 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    assert_contains(fixture->err, "the admin key must be 16 to 255 characters long, got 256");
    assert_string_equal(fixture->config.admin_key, "");

    assert_int_equal(setenv("SHORTD_ADMIN_KEY", "", 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    assert_contains(fixture->err, "got 0");
}

static void admin_key_file_is_trimmed(void **state)
{
    struct fixture *fixture = *state;
    char path[256];

    write_file(fixture, "admin.key", "  \t file-key-0123456789abcdef \r\n\n", path, sizeof(path));
    assert_int_equal(setenv("SHORTD_ADMIN_KEY_FILE", path, 1), 0);
    assert_loads(fixture, "--workers", "1");
    assert_string_equal(fixture->config.admin_key, "file-key-0123456789abcdef");
}

static void admin_key_file_errors(void **state)
{
    struct fixture *fixture = *state;
    char path[256], expected[400];

    write_file(fixture, "short.key", "short-key\n", path, sizeof(path));
    assert_int_equal(setenv("SHORTD_ADMIN_KEY_FILE", path, 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    assert_contains(fixture->err, "the admin key must be 16 to 255 characters long, got 9");
    assert_not_contains(fixture->err, "short-key");
    assert_string_equal(fixture->config.admin_key, "");

    (void)snprintf(path, sizeof(path), "%s/absent.key", fixture->dir);
    assert_int_equal(setenv("SHORTD_ADMIN_KEY_FILE", path, 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    (void)snprintf(expected, sizeof(expected),
                   "cannot read SHORTD_ADMIN_KEY_FILE %s: No such file or directory", path);
    assert_contains(fixture->err, expected);
}

static void admin_key_and_key_file_conflict(void **state)
{
    struct fixture *fixture = *state;
    char path[256];

    write_file(fixture, "admin.key", "file-key-0123456789abcdef\n", path, sizeof(path));
    assert_int_equal(setenv("SHORTD_ADMIN_KEY_FILE", path, 1), 0);
    assert_int_equal(setenv("SHORTD_ADMIN_KEY", "env-key-0123456789abcdef", 1), 0);
    assert_int_equal(load_none(fixture), -EINVAL);
    assert_contains(fixture->err, "set SHORTD_ADMIN_KEY or SHORTD_ADMIN_KEY_FILE, not both");
    assert_string_equal(fixture->config.admin_key, "");
}

static void request_line_must_fit_header_size(void **state)
{
    struct fixture *fixture = *state;

    assert_loads(fixture, "--max-request-line", "8K", "--max-header-size", "8K");
    assert_int_equal(fixture->config.max_request_line, 8192);
    assert_int_equal(fixture->config.max_header_size, 8192);

    assert_rejects(fixture, "--max-request-line (8193) must not exceed --max-header-size (8192)",
                   "--max-request-line", "8193", "--max-header-size", "8K");
    assert_rejects(fixture, "must not exceed --max-header-size (4096)", "--max-header-size", "4K");
}

static void body_size_must_fit_longest_url(void **state)
{
    struct fixture *fixture = *state;

    assert_loads(fixture, "--max-url-length", "8192", "--max-body-size", "9216");
    assert_int_equal(fixture->config.max_body_size, 9216);

    assert_rejects(fixture, "--max-body-size (9215) must exceed --max-url-length (8192) by 1K",
                   "--max-url-length", "8192", "--max-body-size", "9215");
    assert_rejects(fixture, "--max-body-size (65536) must exceed --max-url-length (65536) by 1K",
                   "--max-url-length", "64K");
}

static void help_and_version_actions(void **state)
{
    struct fixture *fixture = *state;
    const struct {
        const char *flag;
        enum config_action action;
    } cases[] = {
        {"--help", CONFIG_HELP},
        {"-h", CONFIG_HELP},
        {"--version", CONFIG_VERSION},
        {"-V", CONFIG_VERSION},
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        fixture->action = CONFIG_RUN;
        assert_loads(fixture, "--workers", "2", cases[i].flag);
        assert_int_equal(fixture->action, cases[i].action);

        fixture->action = CONFIG_RUN;
        assert_loads(fixture, cases[i].flag, "--workers", "2");
        assert_int_equal(fixture->action, cases[i].action);
    }

    assert_loads(fixture, "--workers", "2");
    assert_int_equal(fixture->action, CONFIG_RUN);
}

static void help_lists_every_setting(void **state)
{
    const char *expected[] = {
        "--listen HOST:PORT",
        "env SHORTD_LISTEN, default 127.0.0.1:8080",
        "--db LOCATION",
        "--base-url URL",
        "--threads N",
        "--workers N",
        "env SHORTD_WORKERS, default 4",
        "--cache-size SIZE",
        "env SHORTD_CACHE_SIZE, default 256M",
        "--max-connections N",
        "--code-length N",
        "--redirect-status CODE",
        "--schemes LIST",
        "--max-url-length BYTES",
        "--max-body-size SIZE",
        "--max-header-size SIZE",
        "--max-request-line SIZE",
        "--header-timeout SECONDS",
        "--body-timeout SECONDS",
        "--idle-timeout SECONDS",
        "--write-timeout SECONDS",
        "--shutdown-timeout SECONDS",
        "--negative-cache-ttl SECONDS",
        "--log-level LEVEL",
        "--config FILE",
        "--help",
        "--version",
        "SHORTD_ADMIN_KEY ",
        "SHORTD_ADMIN_KEY_FILE",
    };
    char *text = NULL;
    size_t len = 0, i;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    config_print_help(out);
    assert_int_equal(fclose(out), 0);

    assert_contains(text, "Usage: shortd [OPTION...]");
    for (i = 0; i < ARRAY_SIZE(expected); i++)
        assert_contains(text, expected[i]);
    assert_not_contains(text, "--admin-key");
    free(text);
}

static const char *const import_flags[] = {"db", "schemes", NULL};

/* A subcommand like shortd import: two settings as flags and one operand. */
static const struct config_command import_like = {
    .name = "import",
    .operands = "FILE",
    .summary = "Adds links from FILE.",
    .flags = import_flags,
    .min_operands = 1,
    .max_operands = 1,
};

/* Runs config_load_command for import_like on "import" and args (NULL-terminated). */
static int load_command_argv(struct fixture *fixture, const char *const *args)
{
    char *argv[ARGV_MAX];
    FILE *err;
    size_t err_len = 0;
    int argc = prepare_argv(fixture, "import", args, argv, &err, &err_len);
    int rc = config_load_command(&fixture->config, &import_like, argc, argv, &fixture->action,
                                 &fixture->operands, err);

    assert_int_equal(fclose(err), 0);
    return rc;
}

#define load_command(fixture, ...)                                                                 \
    load_command_argv((fixture), (const char *const[]){__VA_ARGS__, NULL})

/* Loads the subcommand's args and expects success with no error output. */
#define assert_command_loads(fixture, ...)                                                         \
    do {                                                                                           \
        int rc_ = load_command((fixture), __VA_ARGS__);                                            \
        if (rc_ != 0)                                                                              \
            fail_msg("shortd import%s: returned %d, expected 0, with output: %s", (fixture)->args, \
                     rc_, (fixture)->err);                                                         \
        assert_string_equal((fixture)->err, "");                                                   \
    } while (0)

/* Loads the subcommand's args and expects -EINVAL with error output equal to expected. */
#define assert_command_rejects(fixture, expected, ...)                                             \
    do {                                                                                           \
        int rc_ = load_command((fixture), __VA_ARGS__);                                            \
        if (rc_ != -EINVAL)                                                                        \
            fail_msg("shortd import%s: returned %d, expected %d (-EINVAL), with output: %s",       \
                     (fixture)->args, rc_, -EINVAL, (fixture)->err);                               \
        assert_string_equal((fixture)->err, (expected));                                           \
    } while (0)

static void command_takes_its_flags_and_operand(void **state)
{
    struct fixture *fixture = *state;

    assert_command_loads(fixture, "--db", "/tmp/x.db", "links.tsv", "--schemes=https");
    assert_string_equal(fixture->config.db, "/tmp/x.db");
    assert_int_equal(fixture->config.scheme_count, 1);
    assert_string_equal(fixture->config.schemes[0], "https");
    assert_int_equal(fixture->operands.count, 1);
    assert_string_equal(fixture->operands.values[0], "links.tsv");
    assert_int_equal(fixture->action, CONFIG_RUN);
}

static void command_takes_dash_as_operand(void **state)
{
    struct fixture *fixture = *state;

    assert_command_loads(fixture, "-");
    assert_int_equal(fixture->operands.count, 1);
    assert_string_equal(fixture->operands.values[0], "-");

    /* After "--" an argument that looks like a flag is a file name. */
    assert_command_loads(fixture, "--db", "a.db", "--", "--db");
    assert_string_equal(fixture->config.db, "a.db");
    assert_int_equal(fixture->operands.count, 1);
    assert_string_equal(fixture->operands.values[0], "--db");
}

static void command_rejects_other_flags(void **state)
{
    struct fixture *fixture = *state;

    assert_command_rejects(fixture,
                           "shortd import: --listen is not a setting of shortd import; see "
                           "shortd import --help\n",
                           "--listen", "127.0.0.1:1", "links.tsv");
    assert_int_equal(fixture->operands.count, 1);
    assert_string_equal(fixture->operands.values[0], "links.tsv");

    assert_command_rejects(fixture, "shortd import: unknown option -x; see shortd import --help\n",
                           "-x", "links.tsv");
    assert_command_rejects(fixture,
                           "shortd import: unknown option --nope; see shortd import --help\n",
                           "--nope", "links.tsv");
}

static void command_counts_operands(void **state)
{
    struct fixture *fixture = *state;

    assert_command_rejects(fixture, "shortd import: missing FILE; see shortd import --help\n",
                           "--db", "a.db");
    assert_command_rejects(fixture,
                           "shortd import: unexpected argument \"b.tsv\"; see shortd import "
                           "--help\n",
                           "a.tsv", "b.tsv");
}

static void command_reads_every_setting_from_file_and_environment(void **state)
{
    struct fixture *fixture = *state;
    char path[256], flag[300];

    /* A file written for the daemon also serves the subcommand. */
    write_file(fixture, "shortd.conf", "listen = 127.0.0.1:9000\nmax-url-length = 100\n", path,
               sizeof(path));
    assert_int_equal(setenv("SHORTD_REDIRECT_STATUS", "308", 1), 0);
    (void)snprintf(flag, sizeof(flag), "--config=%s", path);

    assert_command_loads(fixture, flag, "links.tsv");
    assert_string_equal(fixture->config.listen_port, "9000");
    assert_int_equal(fixture->config.max_url_length, 100);
    assert_int_equal(fixture->config.redirect_status, 308);
    assert_string_equal(fixture->config.config_file, path);
}

static void command_skips_admin_key_and_daemon_checks(void **state)
{
    struct fixture *fixture = *state;

    /* Both would stop the daemon: a key that is too short, and URLs longer than the body limit. */
    assert_int_equal(setenv("SHORTD_ADMIN_KEY", "short", 1), 0);
    assert_int_equal(setenv("SHORTD_MAX_URL_LENGTH", "1M", 1), 0);
    assert_command_loads(fixture, "links.tsv");
    assert_string_equal(fixture->config.admin_key, "");
    assert_int_equal(fixture->config.max_url_length, 1024 * 1024);
}

static void command_help_and_version_actions(void **state)
{
    struct fixture *fixture = *state;

    assert_command_loads(fixture, "--help");
    assert_int_equal(fixture->action, CONFIG_HELP);
    assert_command_loads(fixture, "-V");
    assert_int_equal(fixture->action, CONFIG_VERSION);
}

static void command_help_lists_only_its_flags(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    config_print_command_help(&import_like, out);
    assert_int_equal(fclose(out), 0);

    assert_contains(text, "Usage: shortd import [OPTION...] FILE\n\nAdds links from FILE.\n");
    assert_contains(text, "--db LOCATION");
    assert_contains(text, "env SHORTD_DB, default ./data/shortd.db");
    assert_contains(text, "--schemes LIST");
    assert_contains(text, "--config FILE");
    assert_contains(text, "--help");
    assert_not_contains(text, "--listen");
    assert_not_contains(text, "--max-url-length");
    assert_not_contains(text, "--version");
    free(text);
}

static void help_lists_commands(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    assert_non_null(out);
    config_print_help(out);
    assert_int_equal(fclose(out), 0);

    assert_contains(text, "       shortd import [OPTION...] FILE\n");
    assert_contains(text, "       shortd export [OPTION...] [FILE]\n");
    assert_contains(text, "  import FILE ");
    assert_contains(text, "  export [FILE] ");
    free(text);
}

static void base_url_drops_trailing_slash(void **state)
{
    struct fixture *fixture = *state;
    char out[1024];

    assert_loads(fixture, "--base-url", "https://sho.rt/");
    config_base_url(&fixture->config, 8080, out, sizeof(out));
    assert_string_equal(out, "https://sho.rt");

    assert_loads(fixture, "--base-url", "https://sho.rt/s/");
    config_base_url(&fixture->config, 8080, out, sizeof(out));
    assert_string_equal(out, "https://sho.rt/s");

    assert_loads(fixture, "--base-url", "https://sho.rt:8443");
    config_base_url(&fixture->config, 8080, out, sizeof(out));
    assert_string_equal(out, "https://sho.rt:8443");
}

static void base_url_defaults_to_listen_address(void **state)
{
    struct fixture *fixture = *state;
    const struct {
        const char *listen;
        uint16_t bound_port;
        const char *expected;
    } cases[] = {
        {"127.0.0.1:8080", 8080, "http://127.0.0.1:8080"},
        {"127.0.0.1:0", 41234, "http://127.0.0.1:41234"},
        {"localhost:80", 80, "http://localhost:80"},
        {"0.0.0.0:8080", 8080, "http://127.0.0.1:8080"},
        {":8080", 8080, "http://127.0.0.1:8080"},
        {"[::1]:0", 5000, "http://[::1]:5000"},
        {"[2001:db8::7]:443", 443, "http://[2001:db8::7]:443"},
    };
    char out[1024];
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        assert_loads(fixture, "--listen", cases[i].listen);
        config_base_url(&fixture->config, cases[i].bound_port, out, sizeof(out));
        assert_string_equal(out, cases[i].expected);
    }
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(defaults_fill_every_field),
        TEST(count_accepts_bounds),
        TEST(count_rejects_outside_bounds),
        TEST(count_rejects_non_numbers),
        TEST(size_accepts_suffixes),
        TEST(size_rejects_bad_text_and_range),
        TEST(seconds_accept_fractions),
        TEST(seconds_reject_bad_text_and_range),
        TEST(redirect_status_accepts_four_codes),
        TEST(log_level_accepts_four_names),
        TEST(schemes_fold_case_and_trim),
        TEST(schemes_skip_empty_items),
        TEST(schemes_allow_eight_at_most),
        TEST(schemes_reject_empty_list),
        TEST(schemes_reject_invalid_names),
        TEST(schemes_reject_overlong_list),
        TEST(listen_accepts_each_form),
        TEST(listen_rejects_bad_port),
        TEST(environment_names_the_variable),
        TEST(environment_sets_every_kind),
        TEST(file_environment_flags_precedence),
        TEST(config_flag_wins_over_environment),
        TEST(config_file_ignores_comments_and_spaces),
        TEST(config_file_errors_name_file_and_line),
        TEST(missing_config_file_is_an_error),
        TEST(unknown_flags_are_rejected),
        TEST(every_problem_gets_a_line),
        TEST(admin_key_flag_is_rejected_with_hint),
        TEST(admin_key_from_environment),
        TEST(admin_key_length_is_checked),
        TEST(admin_key_file_is_trimmed),
        TEST(admin_key_file_errors),
        TEST(admin_key_and_key_file_conflict),
        TEST(request_line_must_fit_header_size),
        TEST(body_size_must_fit_longest_url),
        TEST(help_and_version_actions),
        TEST(help_lists_every_setting),
        TEST(command_takes_its_flags_and_operand),
        TEST(command_takes_dash_as_operand),
        TEST(command_rejects_other_flags),
        TEST(command_counts_operands),
        TEST(command_reads_every_setting_from_file_and_environment),
        TEST(command_skips_admin_key_and_daemon_checks),
        TEST(command_help_and_version_actions),
        TEST(command_help_lists_only_its_flags),
        TEST(help_lists_commands),
        TEST(base_url_drops_trailing_slash),
        TEST(base_url_defaults_to_listen_address),
    };
#undef TEST

    return cmocka_run_group_tests(tests, NULL, NULL);
}
