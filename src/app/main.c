/*
 * shortd: start, serve, stop.
 *
 * Start: settings -> store (schema migrations, the code key) -> cache ->
 * worker pool (a store connection per worker) -> writer (its own store
 * connection) -> server (listeners bound, then I/O threads started).
 *
 * The main thread then waits for SIGTERM or SIGINT and runs periodic
 * upkeep. Stop runs the start in reverse, so that nothing acknowledged is
 * lost: the server finishes in-flight requests first (deferred ones still
 * need the workers and the writer), then the workers drain, then the writer
 * commits what is queued and closes its store.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "app/app.h"
#include "app/config.h"
#include "app/dblock.h"
#include "app/export.h"
#include "app/import.h"
#include "app/log.h"
#include "app/version.h"
#include "app/writer.h"
#include "net/loop.h"
#include "store/store.h"

#define CODE_KEY_SETTING    "code_key"
#define CACHE_SHARD_BITS    6
#define PENDING_SHARD_BITS  4
#define LIMITS_SHARD_BITS   4
#define LIMIT_SHARD_BITS    6
#define WORKER_QUEUE        4096
#define WRITER_QUEUE        65536
#define WRITER_BATCH        4096
#define ID_BLOCK            4096
#define EXPIRE_INTERVAL_S   5
#define VISIT_ENTRIES_MAX   (4u * 1024 * 1024)

static void free_limit(void *value)
{
    free(value);
}

/* Creates a rate limiter of burst requests refilled at rate thousandths per second. */
static struct ratelimit *create_limiter(unsigned burst, uint32_t rate, unsigned clients,
                                        const struct hash_key *key)
{
    struct ratelimit_config config;

    memset(&config, 0, sizeof(config));
    config.limit.burst = burst;
    config.limit.refill_tokens = rate;
    config.limit.refill_period_ms = 1000000;
    config.max_buckets = clients;
    config.shard_bits = LIMIT_SHARD_BITS;
    return ratelimit_create(&config, key);
}

/* Creates the broker of the links and visits topics. */
static int create_broker(const struct config *config, struct broker **broker)
{
    struct broker_config broker_config;
    struct timespec now;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    memset(&broker_config, 0, sizeof(broker_config));
    broker_config.topics = APP_TOPIC_COUNT;
    /* Visits are stored only while a stream listens: they come with every redirect. */
    broker_config.retained_topics = 1u << APP_TOPIC_LINKS;
    /* Ids start at the time in microseconds, so they keep growing across restarts. */
    broker_config.first_id = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
    broker_config.queue_capacity = config->event_queue;
    broker_config.replay_capacity = config->event_replay;
    broker_config.max_subscribers = config->max_subscribers;
    broker_config.payload_max = 2 * config->max_url_length + 4096;
    return broker_create(&broker_config, broker);
}

/* Loads the installation's code key, creating it on first start. */
static int load_code_key(struct store *store, uint8_t key[CODEGEN_KEY_BYTES])
{
    uint8_t fresh[CODEGEN_KEY_BYTES];
    size_t len = 0;
    int rc;

    rc = store_get_setting(store, CODE_KEY_SETTING, key, CODEGEN_KEY_BYTES, &len);
    if (rc == -ENOENT) {
        randombytes_buf(fresh, sizeof(fresh));
        rc = store_set_setting_once(store, CODE_KEY_SETTING, fresh, sizeof(fresh));
        if (rc < 0 && rc != -EEXIST)
            return rc;
        /* Read back: another process may have set it first. */
        rc = store_get_setting(store, CODE_KEY_SETTING, key, CODEGEN_KEY_BYTES, &len);
    }
    if (rc < 0)
        return rc;
    return len == CODEGEN_KEY_BYTES ? 0 : -EILSEQ;
}

/*
 * Takes the database's lock (dblock.h), so that two shortd processes never
 * share one SQLite file: each would keep serving links from its own cache
 * that the other deleted. Returns the lock's descriptor, kept open until
 * exit, or -1 after logging why.
 */
static int lock_database(const char *db)
{
    char path[4200];
    int fd = -1;
    int rc;

    rc = dblock_acquire(db, &fd);
    if (rc == -EWOULDBLOCK) {
        log_error("store", "another shortd process uses %s; stop it or give this one its own --db",
                  db);
    } else if (rc < 0) {
        dblock_path(db, path, sizeof(path));
        log_error("store", "cannot lock %s: %s", path, strerror(-rc));
    }
    return fd;
}

/*
 * Checks and normalises the base URL: an http or https URL with a host and
 * no user information, query or fragment; an internationalised host becomes
 * its ASCII form. Returns 0, or -EINVAL after writing why to stderr.
 */
static int set_base_url(struct app *app, const char *configured)
{
    static const char *const schemes[] = {"http", "https"};
    struct url_policy policy = {.schemes = schemes, .scheme_count = 2, .max_length = 1000};
    struct url_error err = {.code = NULL};
    size_t len = 0;
    char *url = NULL;

    if (url_normalize(configured, strlen(configured), &policy, &url, &len, &err) < 0) {
        fprintf(stderr, "shortd: --base-url %s: %s\n", configured,
                err.code != NULL ? err.message : "out of memory");
        return -EINVAL;
    }
    if (strpbrk(url, "?#") != NULL) {
        fprintf(stderr, "shortd: --base-url %s: must not have a query or fragment\n", configured);
        free(url);
        return -EINVAL;
    }
    while (len > 0 && url[len - 1] == '/')
        url[--len] = '\0';
    snprintf(app->base_url, sizeof(app->base_url), "%s", url);
    free(url);
    return 0;
}

static int wait_for_stop(struct app *app, const sigset_t *signals)
{
    struct timespec tick = {.tv_sec = EXPIRE_INTERVAL_S, .tv_nsec = 0};
    siginfo_t info;
    int signo;

    for (;;) {
        signo = sigtimedwait(signals, &info, &tick);
        if (signo == SIGTERM || signo == SIGINT)
            return signo;
        if (signo == SIGHUP)
            log_info("main", "received SIGHUP and ignored it: settings are read only at start");
        if (signo < 0 && errno != EAGAIN && errno != EINTR) {
            log_error("main", "waiting for signals failed: %s", strerror(errno));
            return SIGTERM;
        }
        (void)cache_expire(app->cache, loop_clock_ms());
    }
}

int main(int argc, char **argv)
{
    static struct config config;
    struct app app;
    struct store *setup_store = NULL;
    struct hash_key hash_key;
    struct cache_config cache_config;
    struct workpool_config pool_config;
    struct writer_config writer_config;
    struct server_config server_config;
    uint8_t code_key[CODEGEN_KEY_BYTES];
    enum config_action action;
    char error[512], base_url[1024];
    int lock_fd = -1;
    sigset_t signals;
    int rc, rc_keys = 0, signo, status = 1;

    /* The subcommands share the settings but start no server. */
    if (argc > 1 && strcmp(argv[1], "import") == 0)
        return import_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "export") == 0)
        return export_main(argc - 1, argv + 1);

    if (config_load(&config, argc, argv, &action, stderr) < 0)
        return 2;
    if (action == CONFIG_HELP) {
        config_print_help(stdout);
        return 0;
    }
    if (action == CONFIG_VERSION) {
        printf("shortd %s\n", SHORTD_VERSION);
        return 0;
    }
    log_threshold = config.log_level;

    /* Every thread started from here inherits the blocked set. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    (void)pthread_sigmask(SIG_BLOCK, &signals, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    /*
     * A write past RLIMIT_FSIZE must fail with EFBIG like a full disk, so
     * that the store reports it and shortd goes on serving reads, instead
     * of the default action of SIGXFSZ ending the process.
     */
    (void)signal(SIGXFSZ, SIG_IGN);

    if (sodium_init() < 0) {
        log_error("main", "libsodium cannot be initialised");
        return 1;
    }
    link_json_setup();

    memset(&app, 0, sizeof(app));
    app.config = &config;
    if (config.admin_key[0] != '\0') {
        app.has_admin_key = true;
        (void)crypto_generichash(app.admin_key_hash, sizeof(app.admin_key_hash),
                                 (const unsigned char *)config.admin_key, strlen(config.admin_key),
                                 NULL, 0);
        sodium_memzero(config.admin_key, sizeof(config.admin_key));
    }

    rc = store_open(config.db, &setup_store, error, sizeof(error));
    if (rc < 0) {
        log_error("store", "cannot open %s: %s", config.db, error);
        return 1;
    }
    lock_fd = lock_database(config.db);
    if (lock_fd < 0) {
        store_close(setup_store);
        return 1;
    }
    rc = store_set_cache_size(setup_store, config.store_cache_size);
    if (rc < 0)
        log_warn("store", "cannot set the writer's page cache: %s", store_last_error(setup_store));

    rc = load_code_key(setup_store, code_key);
    if (rc < 0) {
        log_error("store", "cannot load the code key from %s: %s", config.db,
                  store_last_error(setup_store));
        goto out;
    }
    rc = codegen_init(&app.codegen, code_key, config.code_length);
    sodium_memzero(code_key, sizeof(code_key));
    if (rc < 0) {
        log_error("main", "cannot set up the code generator: %s", strerror(-rc));
        goto out;
    }

    if (hash_key_random(&hash_key) < 0) {
        log_error("main", "cannot create a hash key");
        goto out;
    }
    cache_config.capacity_bytes = config.cache_size;
    cache_config.shard_bits = CACHE_SHARD_BITS;
    app.cache = cache_create(&cache_config, &hash_key);
    app.pending = shardmap_create(PENDING_SHARD_BITS, &hash_key);
    app.limits = shardmap_create(LIMITS_SHARD_BITS, &hash_key);
    app.keys = keys_create(&hash_key);
    app.visits = visits_create(config.threads, VISIT_ENTRIES_MAX, &hash_key);
    app.anonymous_limit = create_limiter(config.anonymous_burst, config.anonymous_rate,
                                         config.rate_limit_clients, &hash_key);
    app.key_limit =
        create_limiter(config.key_burst, config.key_rate, config.rate_limit_clients, &hash_key);
    if (config.redirect_rate > 0)
        app.redirect_limit = create_limiter(config.redirect_burst, config.redirect_rate,
                                            config.rate_limit_clients, &hash_key);
    if (app.cache == NULL || app.pending == NULL || app.limits == NULL || app.keys == NULL ||
        app.visits == NULL || app.anonymous_limit == NULL || app.key_limit == NULL ||
        (config.redirect_rate > 0 && app.redirect_limit == NULL)) {
        log_error("main", "cannot allocate the cache of %llu bytes and its companions",
                  (unsigned long long)config.cache_size);
        goto out;
    }
    app.metrics = metrics_create(config.threads);
    if (app.metrics == NULL) {
        log_error("main", "cannot allocate the metrics");
        goto out;
    }
    rc = create_broker(&config, &app.broker);
    if (rc < 0) {
        log_error("main", "cannot create the event broker: %s", strerror(-rc));
        goto out;
    }

    rc = keys_load(app.keys, setup_store);
    rc_keys = rc;
    if (rc < 0) {
        log_error("store", "cannot load API keys from %s: %s", config.db,
                  store_last_error(setup_store));
        goto out;
    }

    memset(&pool_config, 0, sizeof(pool_config));
    pool_config.threads = config.workers;
    pool_config.queue_capacity = WORKER_QUEUE;
    pool_config.init = app_worker_init;
    pool_config.fini = app_worker_fini;
    pool_config.context = &app;
    rc = workpool_create(&pool_config, &app.workers);
    if (rc < 0) {
        log_error("main", "cannot start %u workers: %s", config.workers, strerror(-rc));
        goto out;
    }

    memset(&writer_config, 0, sizeof(writer_config));
    writer_config.store = setup_store;
    writer_config.codegen = &app.codegen;
    writer_config.queue_capacity = WRITER_QUEUE;
    writer_config.batch_max = WRITER_BATCH;
    writer_config.id_block = ID_BLOCK;
    writer_config.applied = app_write_applied;
    writer_config.committed = app_count_commit;
    writer_config.tick = app_write_tick;
    writer_config.tick_interval_ms = config.flush_interval_ms;
    writer_config.context = &app;
    rc = writer_start(&writer_config, &app.writer);
    if (rc < 0) {
        log_error("main", "cannot start the writer: %s", strerror(-rc));
        goto out;
    }
    setup_store = NULL; /* the writer owns it now */

    memset(&server_config, 0, sizeof(server_config));
    server_config.host = config.listen_host;
    server_config.port = config.listen_port;
    server_config.threads = config.threads;
    server_config.max_connections = config.max_connections;
    server_config.limits.max_request_line = config.max_request_line;
    server_config.limits.max_head = config.max_header_size;
    server_config.limits.max_headers = HTTP_MAX_HEADERS;
    server_config.limits.max_body = config.max_body_size;
    server_config.header_timeout_ms = config.header_timeout_ms;
    server_config.body_timeout_ms = config.body_timeout_ms;
    server_config.idle_timeout_ms = config.idle_timeout_ms;
    server_config.write_timeout_ms = config.write_timeout_ms;
    server_config.handler = app_handle_request;
    server_config.on_error = app_report_server_error;
    server_config.on_response = app_count_response;
    server_config.context = &app;
    rc = server_create(&server_config, &app.server, error, sizeof(error));
    if (rc < 0) {
        log_error("main", "%s", error);
        goto out;
    }

    config_base_url(&config, server_port(app.server), base_url, sizeof(base_url));
    if (set_base_url(&app, base_url) < 0) {
        status = 2;
        goto out;
    }
    url_copy_host(app.base_url, app.own_host, sizeof(app.own_host));
    app.url_policy.schemes = config.schemes;
    app.url_policy.scheme_count = config.scheme_count;
    app.url_policy.max_length = config.max_url_length;
    app.url_policy.own_host = app.own_host[0] != '\0' ? app.own_host : NULL;

    rc = server_start(app.server);
    if (rc < 0) {
        log_error("main", "cannot start I/O threads: %s", strerror(-rc));
        goto out;
    }

    log_info("main",
             "shortd %s started: listen=%s:%u base_url=%s store=%s threads=%u workers=%u "
             "cache_size=%llu keys=%d",
             SHORTD_VERSION, config.listen_host, (unsigned)server_port(app.server), app.base_url,
             config.db, config.threads, config.workers, (unsigned long long)config.cache_size,
             rc_keys);

    signo = wait_for_stop(&app, &signals);
    log_info("main", "received %s, stopping", signo == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;

out:
    if (app.server != NULL) {
        server_shutdown(app.server, config.shutdown_timeout_ms);
        server_destroy(app.server);
    }
    if (app.workers != NULL)
        workpool_destroy(app.workers);
    if (app.writer != NULL)
        writer_stop(app.writer);
    store_close(setup_store);
    if (app.pending != NULL)
        shardmap_destroy(app.pending, NULL);
    if (app.limits != NULL)
        shardmap_destroy(app.limits, free_limit);
    keys_destroy(app.keys);
    visits_destroy(app.visits);
    broker_destroy(app.broker);
    metrics_destroy(app.metrics);
    if (app.anonymous_limit != NULL)
        ratelimit_destroy(app.anonymous_limit);
    if (app.key_limit != NULL)
        ratelimit_destroy(app.key_limit);
    if (app.redirect_limit != NULL)
        ratelimit_destroy(app.redirect_limit);
    if (app.cache != NULL)
        cache_destroy(app.cache);

    if (lock_fd >= 0)
        (void)close(lock_fd);
    if (status == 0)
        log_info("main", "stopped");
    return status;
}
