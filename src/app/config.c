/*
 * Settings from flags, environment and file, see config.h.
 *
 * One table describes every setting: its flag, environment variable, value
 * type, bounds, default and help line. The loader applies the sources from
 * weakest to strongest (defaults, file, environment, flags), so each later
 * source overwrites what an earlier one set, and --help prints the same
 * table.
 */
#include "app/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/codegen.h"

enum value_type {
    TYPE_STRING,
    TYPE_LISTEN,
    TYPE_COUNT,    /* whole number within [min, max] */
    TYPE_SIZE,     /* bytes with an optional K, M or G suffix */
    TYPE_SECONDS,  /* seconds, fractions allowed, stored as ms */
    TYPE_STATUS,   /* 301, 302, 307 or 308 */
    TYPE_LEVEL,
    TYPE_SCHEMES,
    TYPE_BOOL,     /* true, false, yes, no, on, off, 1 or 0 */
    TYPE_RATE,     /* requests per second, fractions allowed, stored in thousandths */
    TYPE_AGE,      /* seconds, or "none"; stored as int64, -1 for none */
    TYPE_RANGES,   /* comma-separated CIDR ranges */
};

struct option {
    const char *name; /* flag without dashes, also the file key */
    const char *env;
    const char *metavar;
    const char *default_text;
    enum value_type type;
    size_t offset;
    size_t size; /* of the field, for strings and counts */
    uint64_t min, max;
    const char *help;
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)

static const struct option options[] = {
    {"listen", "SHORTD_LISTEN", "HOST:PORT", "127.0.0.1:8080", TYPE_LISTEN, FIELD(listen_host), 0,
     0, "address to serve HTTP on; port 0 picks a free port"},
    {"db", "SHORTD_DB", "LOCATION", "./data/shortd.db", TYPE_STRING, FIELD(db), 0, 0,
     "SQLite database file, created with its folder on first start"},
    {"base-url", "SHORTD_BASE_URL", "URL", "http:// + listen address", TYPE_STRING,
     FIELD(base_url), 0, 0, "prefix of short_url in API responses"},
    {"threads", "SHORTD_THREADS", "N", "number of cores", TYPE_COUNT, FIELD(threads), 1, 256,
     "I/O threads, each with its own event loop and listener"},
    {"workers", "SHORTD_WORKERS", "N", "4", TYPE_COUNT, FIELD(workers), 1, 256,
     "threads that read the store when a link is not in the cache"},
    {"cache-size", "SHORTD_CACHE_SIZE", "SIZE", "256M", TYPE_SIZE, FIELD(cache_size), 64 * 1024,
     UINT64_C(1) << 40, "bytes of links kept in memory; K, M and G suffixes"},
    {"store-cache-size", "SHORTD_STORE_CACHE_SIZE", "SIZE", "64M", TYPE_SIZE,
     FIELD(store_cache_size), 1024 * 1024, UINT64_C(1) << 40,
     "bytes of database pages the writer keeps in memory"},
    {"max-connections", "SHORTD_MAX_CONNECTIONS", "N", "10000", TYPE_COUNT,
     FIELD(max_connections), 1, 1000000, "open client connections, all threads together"},
    {"code-length", "SHORTD_CODE_LENGTH", "N", "7", TYPE_COUNT, FIELD(code_length),
     CODEGEN_LENGTH_MIN, CODEGEN_LENGTH_MAX, "characters in a generated short code"},
    {"redirect-status", "SHORTD_REDIRECT_STATUS", "CODE", "301", TYPE_STATUS,
     FIELD(redirect_status), 0, 0, "default redirect status: 301, 302, 307 or 308"},
    {"schemes", "SHORTD_SCHEMES", "LIST", "http,https", TYPE_SCHEMES, FIELD(schemes_text), 0, 0,
     "comma-separated URL schemes that links may point to"},
    {"max-url-length", "SHORTD_MAX_URL_LENGTH", "BYTES", "8192", TYPE_SIZE, FIELD(max_url_length),
     16, 1024 * 1024, "longest URL accepted, in bytes"},
    {"max-body-size", "SHORTD_MAX_BODY_SIZE", "SIZE", "64K", TYPE_SIZE, FIELD(max_body_size), 1024,
     64 * 1024 * 1024, "largest request body; larger ones get 413"},
    {"max-header-size", "SHORTD_MAX_HEADER_SIZE", "SIZE", "16K", TYPE_SIZE,
     FIELD(max_header_size), 1024, 1024 * 1024,
     "largest request line and header section together; larger ones get 431"},
    {"max-request-line", "SHORTD_MAX_REQUEST_LINE", "SIZE", "8K", TYPE_SIZE,
     FIELD(max_request_line), 256, 1024 * 1024, "longest request line; longer ones get 414"},
    {"header-timeout", "SHORTD_HEADER_TIMEOUT", "SECONDS", "10", TYPE_SECONDS,
     FIELD(header_timeout_ms), 1, 3600 * 1000, "time allowed to send a request's headers"},
    {"body-timeout", "SHORTD_BODY_TIMEOUT", "SECONDS", "30", TYPE_SECONDS, FIELD(body_timeout_ms),
     1, 3600 * 1000, "time allowed to send a request's body"},
    {"idle-timeout", "SHORTD_IDLE_TIMEOUT", "SECONDS", "60", TYPE_SECONDS, FIELD(idle_timeout_ms),
     1, 3600 * 1000, "time a keep-alive connection may wait between requests"},
    {"write-timeout", "SHORTD_WRITE_TIMEOUT", "SECONDS", "30", TYPE_SECONDS,
     FIELD(write_timeout_ms), 1, 3600 * 1000, "time a client may take to read a response"},
    {"shutdown-timeout", "SHORTD_SHUTDOWN_TIMEOUT", "SECONDS", "10", TYPE_SECONDS,
     FIELD(shutdown_timeout_ms), 0, 3600 * 1000,
     "time in-flight requests get to finish on SIGTERM or SIGINT"},
    {"negative-cache-ttl", "SHORTD_NEGATIVE_CACHE_TTL", "SECONDS", "10", TYPE_SECONDS,
     FIELD(negative_ttl_ms), 0, 3600 * 1000,
     "how long an unknown code is remembered as unknown"},
    {"log-level", "SHORTD_LOG_LEVEL", "LEVEL", "info", TYPE_LEVEL, FIELD(log_level), 0, 0,
     "lowest level logged: debug, info, warn or error"},
    {"flush-interval", "SHORTD_FLUSH_INTERVAL", "SECONDS", "1", TYPE_SECONDS,
     FIELD(flush_interval_ms), 10, 3600 * 1000,
     "how often visit counts are written to the store; a crash loses at most this much"},
    {"track-visits", "SHORTD_TRACK_VISITS", "BOOL", "true", TYPE_BOOL, FIELD(track_visits), 0, 0,
     "whether redirects are counted per day and referrer host and streamed as events"},
    {"cache-max-age", "SHORTD_CACHE_MAX_AGE", "SECONDS", "none", TYPE_AGE, FIELD(cache_max_age),
     0, 365 * 24 * 3600,
     "default Cache-Control max-age of redirects; none sends no Cache-Control"},
    {"anonymous-create", "SHORTD_ANONYMOUS_CREATE", "BOOL", "true", TYPE_BOOL,
     FIELD(anonymous_create), 0, 0, "whether clients without a key may create links"},
    {"anonymous-rate", "SHORTD_ANONYMOUS_RATE", "PER_SECOND", "1", TYPE_RATE,
     FIELD(anonymous_rate), 1, 1000000 * 1000,
     "creates per second refilled for each client address without a key (IPv6 per /64)"},
    {"anonymous-burst", "SHORTD_ANONYMOUS_BURST", "N", "20", TYPE_COUNT, FIELD(anonymous_burst), 1,
     1000000, "creates a client address without a key may make at once"},
    {"key-rate", "SHORTD_KEY_RATE", "PER_SECOND", "10", TYPE_RATE, FIELD(key_rate), 1,
     1000000 * 1000, "requests per second refilled for each API key without its own rate"},
    {"key-burst", "SHORTD_KEY_BURST", "N", "50", TYPE_COUNT, FIELD(key_burst), 1, 1000000,
     "requests an API key without its own burst may make at once"},
    {"redirect-rate", "SHORTD_REDIRECT_RATE", "PER_SECOND", "0", TYPE_RATE, FIELD(redirect_rate),
     0, 1000000 * 1000, "redirects per second refilled for each client address; 0 for no limit"},
    {"redirect-burst", "SHORTD_REDIRECT_BURST", "N", "100", TYPE_COUNT, FIELD(redirect_burst), 1,
     1000000, "redirects a client address may make at once when --redirect-rate is set"},
    {"rate-limit-clients", "SHORTD_RATE_LIMIT_CLIENTS", "N", "100000", TYPE_COUNT,
     FIELD(rate_limit_clients), 64, 100000000,
     "clients tracked per rate limit; idle ones are dropped first"},
    {"trusted-proxy", "SHORTD_TRUSTED_PROXY", "LIST", "none", TYPE_RANGES,
     FIELD(trusted_proxies_text), 0, 0,
     "CIDR ranges of proxies whose X-Forwarded-For names the client"},
    {"event-keepalive", "SHORTD_EVENT_KEEPALIVE", "SECONDS", "15", TYPE_SECONDS,
     FIELD(event_keepalive_ms), 100, 3600 * 1000,
     "how often an idle event stream gets a comment line, so proxies keep it open"},
    {"event-replay", "SHORTD_EVENT_REPLAY", "N", "1000", TYPE_COUNT, FIELD(event_replay), 0,
     1000000, "recent events kept for clients that resume with Last-Event-ID"},
    {"event-queue", "SHORTD_EVENT_QUEUE", "N", "1024", TYPE_COUNT, FIELD(event_queue), 1, 1000000,
     "events queued per event stream before its client is told of drops"},
    {"max-subscribers", "SHORTD_MAX_SUBSCRIBERS", "N", "1000", TYPE_COUNT, FIELD(max_subscribers),
     1, 1000000, "event streams open at once"},
    {"config", "SHORTD_CONFIG", "FILE", "none", TYPE_STRING, FIELD(config_file), 0, 0,
     "file of name = value lines, one per setting"},
};

#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

static const struct option *find_option(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < OPTION_COUNT; i++) {
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static int parse_uint(const char *text, uint64_t *value)
{
    unsigned long long v;
    char *end;

    if (!isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -EINVAL;
    *value = v;
    return 0;
}

static int parse_size(const char *text, uint64_t *value)
{
    unsigned long long v;
    unsigned shift = 0;
    char *end;

    if (!isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0)
        return -EINVAL;

    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return -EINVAL;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0' || v > (UINT64_MAX >> shift))
        return -EINVAL;
    *value = (uint64_t)v << shift;
    return 0;
}

static int parse_seconds(const char *text, uint64_t *ms)
{
    double seconds;
    char *end;

    if (!isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    seconds = strtod(text, &end);
    if (errno != 0 || *end != '\0' || seconds < 0 || seconds > 1e7)
        return -EINVAL;
    *ms = (uint64_t)(seconds * 1000.0 + 0.5);
    return 0;
}

/* Parses a decimal number of requests per second into thousandths. */
static int parse_rate(const char *text, uint64_t *thousandths)
{
    uint64_t whole = 0, fraction = 0;
    unsigned digits = 0;
    const char *p = text;

    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > UINT32_MAX)
            return -EINVAL;
    }
    if (*p == '.') {
        p++;
        for (; isdigit((unsigned char)*p); p++) {
            if (++digits > 3)
                return -EINVAL;
            fraction = fraction * 10 + (uint64_t)(*p - '0');
        }
        if (digits == 0)
            return -EINVAL;
        while (digits++ < 3)
            fraction *= 10;
    }
    if (*p != '\0')
        return -EINVAL;
    *thousandths = whole * 1000 + fraction;
    return 0;
}

static int parse_schemes(struct config *config, const char *text, FILE *err, const char *source)
{
    char *cursor, *token, *save = NULL;
    size_t i;

    if (strlen(text) >= sizeof(config->schemes_text)) {
        fprintf(err, "shortd: %s: the scheme list is too long\n", source);
        return -EINVAL;
    }
    memcpy(config->schemes_text, text, strlen(text) + 1);
    config->scheme_count = 0;

    for (cursor = config->schemes_text; (token = strtok_r(cursor, ",", &save)) != NULL;
         cursor = NULL) {
        /* Spaces around an item are dropped, and a space inside it makes it invalid. */
        while (*token == ' ')
            token++;
        i = strlen(token);
        while (i > 0 && token[i - 1] == ' ')
            token[--i] = '\0';
        if (i == 0)
            continue;

        for (i = 0; token[i] != '\0'; i++) {
            if (!isalnum((unsigned char)token[i]) && token[i] != '+' && token[i] != '-' &&
                token[i] != '.') {
                fprintf(err, "shortd: %s: invalid scheme \"%s\"\n", source, token);
                return -EINVAL;
            }
        }
        for (i = 0; token[i] != '\0'; i++)
            token[i] = (char)tolower((unsigned char)token[i]);
        if (config->scheme_count == CONFIG_SCHEMES_MAX) {
            fprintf(err, "shortd: %s: at most %d schemes are allowed\n", source,
                    CONFIG_SCHEMES_MAX);
            return -EINVAL;
        }
        config->schemes[config->scheme_count++] = token;
    }

    if (config->scheme_count == 0) {
        fprintf(err, "shortd: %s: the scheme list is empty; give at least one, such as https\n",
                source);
        return -EINVAL;
    }
    return 0;
}

static int parse_listen(struct config *config, const char *text, FILE *err, const char *source)
{
    const char *colon, *host = text, *port;
    uint64_t port_number;
    size_t host_len;

    /* [v6]:port, host:port or :port */
    if (text[0] == '[') {
        colon = strstr(text, "]:");
        if (colon == NULL)
            goto invalid;
        host = text + 1;
        host_len = (size_t)(colon - host);
        port = colon + 2;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL)
            goto invalid;
        host_len = (size_t)(colon - text);
        port = colon + 1;
    }

    /* Not atoi, because it wraps 4294967296 to 0, which would pass the limit. */
    if (host_len >= sizeof(config->listen_host) || strlen(port) >= sizeof(config->listen_port) ||
        parse_uint(port, &port_number) < 0 || port_number > 65535)
        goto invalid;

    memcpy(config->listen_host, host, host_len);
    config->listen_host[host_len] = '\0';
    memcpy(config->listen_port, port, strlen(port) + 1);
    return 0;

invalid:
    fprintf(err, "shortd: %s: invalid address \"%s\"; use HOST:PORT, such as 127.0.0.1:8080\n",
            source, text);
    return -EINVAL;
}

/* Stores text as the value of option o. source names where it came from. */
static int apply(struct config *config, const struct option *o, const char *text, FILE *err,
                 const char *source)
{
    char *field = (char *)config + o->offset;
    uint64_t value;
    enum log_level level;

    switch (o->type) {
    case TYPE_STRING:
        if (strlen(text) >= o->size) {
            fprintf(err, "shortd: %s: value is longer than %zu bytes\n", source, o->size - 1);
            return -EINVAL;
        }
        memcpy(field, text, strlen(text) + 1);
        return 0;

    case TYPE_LISTEN:
        return parse_listen(config, text, err, source);

    case TYPE_SCHEMES:
        return parse_schemes(config, text, err, source);

    case TYPE_LEVEL:
        if (log_parse_level(text, &level) < 0) {
            fprintf(err, "shortd: %s: invalid level \"%s\"; use debug, info, warn or error\n",
                    source, text);
            return -EINVAL;
        }
        config->log_level = level;
        return 0;

    case TYPE_STATUS:
        if (parse_uint(text, &value) < 0 ||
            (value != 301 && value != 302 && value != 307 && value != 308)) {
            fprintf(err, "shortd: %s: invalid redirect status \"%s\"; use 301, 302, 307 or 308\n",
                    source, text);
            return -EINVAL;
        }
        config->redirect_status = (int)value;
        return 0;

    case TYPE_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "on") == 0 ||
            strcmp(text, "1") == 0)
            *(bool *)(void *)field = true;
        else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0 ||
                 strcmp(text, "off") == 0 || strcmp(text, "0") == 0)
            *(bool *)(void *)field = false;
        else {
            fprintf(err, "shortd: %s: invalid value \"%s\"; use true or false\n", source, text);
            return -EINVAL;
        }
        return 0;

    case TYPE_RANGES:
        if (strlen(text) >= o->size) {
            fprintf(err, "shortd: %s: value is longer than %zu bytes\n", source, o->size - 1);
            return -EINVAL;
        }
        memcpy(field, text, strlen(text) + 1);
        if (strcmp(text, "none") == 0 || text[0] == '\0') {
            config->trusted_proxies.count = 0;
            return 0;
        }
        return client_parse_ranges(text, &config->trusted_proxies, err);

    case TYPE_AGE:
        if (strcmp(text, "none") == 0) {
            config->cache_max_age = -1;
            return 0;
        }
        if (parse_uint(text, &value) < 0 || value > o->max) {
            fprintf(err,
                    "shortd: %s: invalid value \"%s\"; expected none or whole seconds up to "
                    "%llu\n",
                    source, text, (unsigned long long)o->max);
            return -EINVAL;
        }
        config->cache_max_age = (int64_t)value;
        return 0;

    case TYPE_RATE:
        if (parse_rate(text, &value) < 0 || value < o->min || value > o->max) {
            fprintf(err,
                    "shortd: %s: invalid rate \"%s\"; expected requests per second such as 1, "
                    "0.5 or 100, at least %s\n",
                    source, text, o->min == 0 ? "0" : "0.001");
            return -EINVAL;
        }
        *(uint32_t *)(void *)field = (uint32_t)value;
        return 0;

    case TYPE_COUNT:
    case TYPE_SIZE:
    case TYPE_SECONDS:
        if ((o->type == TYPE_COUNT && parse_uint(text, &value) < 0) ||
            (o->type == TYPE_SIZE && parse_size(text, &value) < 0) ||
            (o->type == TYPE_SECONDS && parse_seconds(text, &value) < 0)) {
            fprintf(err, "shortd: %s: invalid value \"%s\"; expected %s\n", source, text,
                    o->type == TYPE_COUNT  ? "a whole number"
                    : o->type == TYPE_SIZE ? "a size such as 512K or 256M"
                                           : "a number of seconds such as 10 or 0.5");
            return -EINVAL;
        }
        if (value < o->min || value > o->max) {
            /* %g, because whole seconds would show the 1 ms minimum of a timeout as 0. */
            if (o->type == TYPE_SECONDS)
                fprintf(err, "shortd: %s: %s is out of range; allowed: %g to %g seconds\n", source,
                        text, (double)o->min / 1000, (double)o->max / 1000);
            else
                fprintf(err, "shortd: %s: %s is out of range; allowed: %llu to %llu\n", source,
                        text, (unsigned long long)o->min, (unsigned long long)o->max);
            return -EINVAL;
        }
        if (o->size == sizeof(uint64_t))
            memcpy(field, &value, sizeof(uint64_t));
        else {
            uint32_t narrow = (uint32_t)value;
            memcpy(field, &narrow, sizeof(narrow));
        }
        return 0;
    }
    return -EINVAL;
}

static void set_defaults(struct config *config)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t i;

    memset(config, 0, sizeof(*config));
    for (i = 0; i < OPTION_COUNT; i++) {
        if (strcmp(options[i].name, "base-url") == 0 || strcmp(options[i].name, "threads") == 0 ||
            strcmp(options[i].name, "config") == 0)
            continue;
        (void)apply(config, &options[i], options[i].default_text, stderr, options[i].name);
    }
    config->threads = cores > 0 ? (unsigned)(cores > 256 ? 256 : cores) : 1;
}

static char *trim(char *text)
{
    char *end;

    while (isspace((unsigned char)*text))
        text++;
    end = text + strlen(text);
    while (end > text && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return text;
}

static int load_file(struct config *config, const char *path, FILE *err)
{
    char line[8192], source[4200], *key, *value, *eq;
    const struct option *o;
    unsigned number = 0;
    int status = 0;
    FILE *file;

    file = fopen(path, "r");
    if (file == NULL) {
        fprintf(err, "shortd: cannot read config file %s: %s\n", path, strerror(errno));
        return -EINVAL;
    }

    while (fgets(line, sizeof(line), file) != NULL) {
        number++;
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;

        eq = strchr(key, '=');
        if (eq == NULL) {
            fprintf(err, "shortd: %s:%u: expected \"name = value\"\n", path, number);
            status = -EINVAL;
            continue;
        }
        *eq = '\0';
        value = trim(eq + 1);
        key = trim(key);

        snprintf(source, sizeof(source), "%s:%u: %s", path, number, key);
        o = find_option(key, strlen(key));
        if (o == NULL || strcmp(o->name, "config") == 0) {
            fprintf(err, "shortd: %s:%u: unknown setting \"%s\"; see shortd --help\n", path, number,
                    key);
            status = -EINVAL;
            continue;
        }
        if (apply(config, o, value, err, source) < 0)
            status = -EINVAL;
    }

    (void)fclose(file);
    return status;
}

static int load_admin_key(struct config *config, FILE *err)
{
    const char *key = getenv("SHORTD_ADMIN_KEY");
    const char *path = getenv("SHORTD_ADMIN_KEY_FILE");
    char buffer[sizeof(config->admin_key) + 2];
    size_t len;
    FILE *file;

    if (key != NULL && path != NULL) {
        fprintf(err, "shortd: set SHORTD_ADMIN_KEY or SHORTD_ADMIN_KEY_FILE, not both\n");
        return -EINVAL;
    }

    if (path != NULL) {
        file = fopen(path, "r");
        if (file == NULL) {
            fprintf(err, "shortd: cannot read SHORTD_ADMIN_KEY_FILE %s: %s\n", path,
                    strerror(errno));
            return -EINVAL;
        }
        len = fread(buffer, 1, sizeof(buffer) - 1, file);
        (void)fclose(file);
        buffer[len] = '\0';
        key = trim(buffer);
    }

    if (key == NULL)
        return 0;

    len = strlen(key);
    if (len < 16 || len >= sizeof(config->admin_key)) {
        fprintf(err, "shortd: the admin key must be 16 to %zu characters long, got %zu\n",
                sizeof(config->admin_key) - 1, len);
        return -EINVAL;
    }
    memcpy(config->admin_key, key, len + 1);
    return 0;
}

/* Finds the value of flag `name` in argv[i] (--name=value or --name value). */
static const char *flag_value(int argc, char **argv, int *i, const char *arg, size_t name_len)
{
    if (arg[name_len] == '=')
        return arg + name_len + 1;
    if (*i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* Returns whether command takes setting o as a flag; the daemon (NULL) takes every one. */
static bool takes_flag(const struct config_command *command, const struct option *o)
{
    const char *const *name;

    if (command == NULL || strcmp(o->name, "config") == 0)
        return true;
    for (name = command->flags; *name != NULL; name++) {
        if (strcmp(*name, o->name) == 0)
            return true;
    }
    return false;
}

/*
 * Stores an argument that is not a flag as an operand of command. Returns 0,
 * or -EINVAL after writing why to err.
 */
static int add_operand(const struct config_command *command, char *arg,
                       struct config_operands *operands, FILE *err)
{
    if (command == NULL) {
        fprintf(err, "shortd: unexpected argument \"%s\"; see shortd --help\n", arg);
        return -EINVAL;
    }
    if (arg[0] == '-' && arg[1] != '\0' && !operands->after_dashes) {
        fprintf(err, "shortd %s: unknown option %s; see shortd %s --help\n", command->name, arg,
                command->name);
        return -EINVAL;
    }
    if (operands->count == command->max_operands || operands->count == CONFIG_OPERANDS_MAX) {
        fprintf(err, "shortd %s: unexpected argument \"%s\"; see shortd %s --help\n", command->name,
                arg, command->name);
        return -EINVAL;
    }
    operands->values[operands->count++] = arg;
    return 0;
}

/* config_load and config_load_command; command is NULL for the daemon. */
static int load(struct config *config, const struct config_command *command, int argc, char **argv,
                enum config_action *action, struct config_operands *operands, FILE *err)
{
    const char *arg, *value, *file = NULL;
    const struct option *o;
    char source[300];
    int status = 0, i;
    size_t j, name_len;

    set_defaults(config);
    *action = CONFIG_RUN;

    /* The config file is named by the environment or a flag, read first. */
    file = getenv("SHORTD_CONFIG");
    for (i = 1; i < argc; i++) {
        if (command != NULL && strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], "--config", 8) == 0 && (argv[i][8] == '=' || argv[i][8] == '\0')) {
            value = flag_value(argc, argv, &i, argv[i] + 2, 6);
            if (value != NULL)
                file = value;
        }
    }
    if (file != NULL && *file != '\0') {
        snprintf(config->config_file, sizeof(config->config_file), "%s", file);
        if (load_file(config, file, err) < 0)
            status = -EINVAL;
    }

    for (j = 0; j < OPTION_COUNT; j++) {
        o = &options[j];
        value = getenv(o->env);
        if (value == NULL || strcmp(o->name, "config") == 0)
            continue;
        snprintf(source, sizeof(source), "%s", o->env);
        if (apply(config, o, value, err, source) < 0)
            status = -EINVAL;
    }

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        if (operands->after_dashes) {
            if (add_operand(command, argv[i], operands, err) < 0)
                status = -EINVAL;
            continue;
        }
        if (command != NULL && strcmp(arg, "--") == 0) {
            operands->after_dashes = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *action = CONFIG_HELP;
            return 0;
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
            *action = CONFIG_VERSION;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (add_operand(command, argv[i], operands, err) < 0)
                status = -EINVAL;
            continue;
        }

        arg += 2;
        name_len = strcspn(arg, "=");
        o = find_option(arg, name_len);
        if (o == NULL) {
            if (strncmp(arg, "admin-key", 9) == 0) {
                fprintf(err, "shortd: the admin key is not accepted as a flag, because flags "
                             "show in the process list; set SHORTD_ADMIN_KEY or "
                             "SHORTD_ADMIN_KEY_FILE\n");
                /* The key may be the next argument, so skip it to keep it out of the errors. */
                if (strcmp(arg, "admin-key") == 0 && i + 1 < argc)
                    i++;
            } else if (command != NULL) {
                fprintf(err, "shortd %s: unknown option --%.*s; see shortd %s --help\n",
                        command->name, (int)name_len, arg, command->name);
            } else {
                fprintf(err, "shortd: unknown option --%.*s; see shortd --help\n", (int)name_len,
                        arg);
            }
            status = -EINVAL;
            continue;
        }

        if (!takes_flag(command, o)) {
            fprintf(err, "shortd %s: --%s is not a setting of shortd %s; see shortd %s --help\n",
                    command->name, o->name, command->name, command->name);
            status = -EINVAL;
            if (arg[name_len] != '=' && i + 1 < argc)
                i++; /* its value */
            continue;
        }

        value = flag_value(argc, argv, &i, arg, name_len);
        if (value == NULL) {
            fprintf(err, "shortd: --%s needs a value (%s)\n", o->name, o->metavar);
            status = -EINVAL;
            continue;
        }
        if (strcmp(o->name, "config") == 0)
            continue;
        snprintf(source, sizeof(source), "--%s", o->name);
        if (apply(config, o, value, err, source) < 0)
            status = -EINVAL;
    }

    /* Subcommands need no admin key and none of the daemon's limits. */
    if (command != NULL) {
        if (operands->count < command->min_operands) {
            fprintf(err, "shortd %s: missing %s; see shortd %s --help\n", command->name,
                    command->operands, command->name);
            status = -EINVAL;
        }
        return status;
    }

    if (load_admin_key(config, err) < 0)
        status = -EINVAL;

    if (config->max_request_line > config->max_header_size) {
        fprintf(err, "shortd: --max-request-line (%llu) must not exceed --max-header-size (%llu)\n",
                (unsigned long long)config->max_request_line,
                (unsigned long long)config->max_header_size);
        status = -EINVAL;
    }
    if (config->max_url_length + 1024 > config->max_body_size) {
        fprintf(err,
                "shortd: --max-body-size (%llu) must exceed --max-url-length (%llu) by 1K, so "
                "that a create request with the longest URL fits\n",
                (unsigned long long)config->max_body_size,
                (unsigned long long)config->max_url_length);
        status = -EINVAL;
    }
    return status;
}

int config_load(struct config *config, int argc, char **argv, enum config_action *action, FILE *err)
{
    struct config_operands none;

    memset(&none, 0, sizeof(none));
    return load(config, NULL, argc, argv, action, &none, err);
}

int config_load_command(struct config *config, const struct config_command *command, int argc,
                        char **argv, enum config_action *action, struct config_operands *operands,
                        FILE *err)
{
    memset(operands, 0, sizeof(*operands));
    return load(config, command, argc, argv, action, operands, err);
}

static void print_option(const struct option *o, FILE *out)
{
    char flag[64];

    snprintf(flag, sizeof(flag), "--%s %s", o->name, o->metavar);
    fprintf(out, "  %-30s %s\n  %-30s env %s, default %s\n", flag, o->help, "", o->env,
            o->default_text);
}

void config_print_command_help(const struct config_command *command, FILE *out)
{
    size_t i;

    fprintf(out,
            "Usage: shortd %s [OPTION...] %s\n"
            "\n"
            "%s\n"
            "\n"
            "Options (each also read from the environment variable shown; flags win\n"
            "over the environment, which wins over the config file):\n"
            "\n",
            command->name, command->operands, command->summary);

    for (i = 0; i < OPTION_COUNT; i++) {
        if (takes_flag(command, &options[i]))
            print_option(&options[i], out);
    }
    fprintf(out, "  %-30s %s\n", "--help", "print this help and exit");
}

void config_print_help(FILE *out)
{
    size_t i;

    fprintf(out, "Usage: shortd [OPTION...]\n"
                 "       shortd import [OPTION...] FILE\n"
                 "       shortd export [OPTION...] [FILE]\n"
                 "\n"
                 "shortd serves short links: GET /{code} redirects, and /api/v1 creates,\n"
                 "reads, lists, deletes, counts and streams them. It runs in the foreground,\n"
                 "logs to stderr and stops gracefully on SIGTERM or SIGINT.\n"
                 "\n"
                 "Commands (each lists its options with --help):\n"
                 "  import FILE     add links from lines of code<TAB>url (FILE - reads\n"
                 "                  standard input); the database must not be in use\n"
                 "  export [FILE]   write every live link as code<TAB>url to FILE or\n"
                 "                  standard output; safe while shortd runs\n"
                 "\n"
                 "Options (each also read from the environment variable shown; flags win\n"
                 "over the environment, which wins over the config file):\n"
                 "\n");

    for (i = 0; i < OPTION_COUNT; i++)
        print_option(&options[i], out);

    fprintf(out, "  %-30s %s\n", "--help", "print this help and exit");
    fprintf(out, "  %-30s %s\n", "--version", "print the version and exit");
    fprintf(out, "\n"
                 "Environment only:\n"
                 "  SHORTD_ADMIN_KEY        the admin API key (16 characters or more)\n"
                 "  SHORTD_ADMIN_KEY_FILE   a file whose content is the admin API key\n");
}

void config_base_url(const struct config *config, uint16_t bound_port, char *out, size_t out_len)
{
    const char *host = config->listen_host;

    if (config->base_url[0] != '\0') {
        snprintf(out, out_len, "%s", config->base_url);
        /* Drop a trailing slash: short_url is base + "/" + code. */
        if (strlen(out) > 0 && out[strlen(out) - 1] == '/')
            out[strlen(out) - 1] = '\0';
        return;
    }

    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    if (strchr(host, ':') != NULL)
        snprintf(out, out_len, "http://[%s]:%u", host, (unsigned)bound_port);
    else
        snprintf(out, out_len, "http://%s:%u", host, (unsigned)bound_port);
}
