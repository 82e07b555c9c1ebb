/*
 * Tests of app/writer with a real SQLite store, cache and code generator.
 *
 * Each test runs in its own folder, made by mkdtemp under /tmp. The writer
 * gets its own store connection. A second connection (the reader) checks
 * what was committed.
 *
 * Done callbacks run on the writer thread, so they only record what they
 * see and post a semaphore. The assertions run on the test's thread after
 * it waited for that semaphore. To hold the writer still, a test submits a
 * blocking operation: its done callback posts `entered` and then waits for
 * `gate`, so operations submitted meanwhile pile up in the queue and form
 * the next batch. Waits are bounded by WAIT_SECONDS so that a writer that
 * never calls done fails the test instead of hanging it.
 *
 * Operations live in the fixture, not on a test's stack: a failed assertion
 * leaves the test function at once, and the teardown then stops the writer,
 * which still calls done for every queued operation.
 *
 * A store failure is injected as in test_store_sqlite.c. An SQLite
 * auto-extension hands the test the sqlite3 handle of the writer's
 * connection as it opens. The test lowers PRAGMA max_page_count on it, so
 * writes that need a new page fail with SQLITE_FULL (-ENOSPC).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/links.h"
#include "app/writer.h"
#include "core/cache.h"
#include "core/container_of.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define WAIT_SECONDS  10
#define CODE_LENGTH   7
#define OPS_MAX       80

static const uint8_t test_key[CODEGEN_KEY_BYTES] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3};

static const struct hash_key cache_key = {{7, 7, 7, 7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};

struct fixture;

/* A write_op with what its done callback saw. */
struct test_op {
    struct write_op op;
    struct fixture *fixture;
    char url[64];
    char *heap_url;        /* a long URL, freed by the teardown */
    bool block;            /* wait for the gate in done */
    struct test_op *probe; /* op whose code done looks up through the reader, or NULL */
    int done_calls;        /* written on the writer thread, read after `completed` */
    size_t depth_at_done;  /* writer_queue_depth() when done ran */
    int probe_result;      /* store_get_link of probe's code, from done */
};

/* A thread that runs writer_stop, so that the test can act while the stop is under way. */
struct stopper {
    pthread_t thread;
    struct writer *writer;
    bool started;
    atomic_bool returned;
};

struct fixture {
    char dir[64];
    char path[256];
    struct codegen codegen;
    struct cache *cache;
    struct writer *writer; /* NULL once stopped, or while the stopper owns the stop */
    struct store *reader;
    sqlite3 *writer_db; /* the writer's connection, for fault injection */
    struct stopper stopper;

    sem_t completed; /* posted after each done callback */
    sem_t entered;   /* posted when a blocking done callback starts to wait */
    sem_t gate;      /* released by the test to let a blocking done return */
    atomic_int done_calls;

    struct test_op ops[OPS_MAX];
    size_t ops_used;
};

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *walk)
{
    return remove(path);
}

static int setup(void **state)
{
    struct cache_config cache_config = {.capacity_bytes = 1 << 20, .shard_bits = 2};
    struct fixture *fixture = calloc(1, sizeof(*fixture));

    if (fixture == NULL)
        return -1;
    strcpy(fixture->dir, "/tmp/shortd-writer-test-XXXXXX");
    if (mkdtemp(fixture->dir) == NULL)
        return -1;
    (void)snprintf(fixture->path, sizeof(fixture->path), "%s/data/shortd.db", fixture->dir);
    if (codegen_init(&fixture->codegen, test_key, CODE_LENGTH) != 0)
        return -1;
    fixture->cache = cache_create(&cache_config, &cache_key);
    if (fixture->cache == NULL)
        return -1;
    if (sem_init(&fixture->completed, 0, 0) != 0 || sem_init(&fixture->entered, 0, 0) != 0 ||
        sem_init(&fixture->gate, 0, 0) != 0)
        return -1;
    atomic_init(&fixture->done_calls, 0);
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;
    size_t i;
    int rc;

    /* A failed test may leave a done callback waiting at the gate. */
    for (i = 0; i < OPS_MAX; i++)
        (void)sem_post(&fixture->gate);
    if (fixture->stopper.started)
        (void)pthread_join(fixture->stopper.thread, NULL);
    else if (fixture->writer != NULL)
        writer_stop(fixture->writer);

    store_close(fixture->reader);
    cache_destroy(fixture->cache);
    (void)sem_destroy(&fixture->completed);
    (void)sem_destroy(&fixture->entered);
    (void)sem_destroy(&fixture->gate);
    for (i = 0; i < fixture->ops_used; i++)
        free(fixture->ops[i].heap_url);
    rc = nftw(fixture->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fixture);
    return rc;
}

static struct store *open_store(const char *path)
{
    char error[512] = "";
    struct store *store = NULL;
    int rc = store_open(path, &store, error, sizeof(error));

    if (rc != 0)
        fail_msg("store_open(%s) returned %d: %s", path, rc, error);
    return store;
}

/* The connection most recently opened in this process, set by capture_connection. */
static sqlite3 *captured_db;

static int capture_connection(sqlite3 *db, char **message, const sqlite3_api_routines *api)
{
    captured_db = db;
    return SQLITE_OK;
}

/* Opens a store and stores the sqlite3 handle of its connection in *db. */
static struct store *open_store_with_handle(const char *path, sqlite3 **db)
{
    struct store *store;

    captured_db = NULL;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))capture_connection), SQLITE_OK);
    store = open_store(path);
    assert_int_equal(sqlite3_cancel_auto_extension((void (*)(void))capture_connection), 1);
    assert_non_null(captured_db);
    *db = captured_db;
    return store;
}

/* Runs a one-value query on an open connection. */
static int64_t query_connection(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    int64_t value;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    value = sqlite3_column_int64(stmt, 0);
    assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
    return value;
}

/*
 * The writer's applied callback, as the daemon uses it: a created link goes
 * into the cache as a live record, a deleted one as a gone record.
 */
static void put_applied(void *context, const struct write_op *op)
{
    struct fixture *fixture = context;
    struct link_record record = {.cache_max_age = -1};
    char *buffer;
    size_t size;

    if (op->kind == WRITE_CREATE && op->result == 0) {
        link_record_from_store(&op->link, &record);
    } else if (op->kind == WRITE_DELETE) {
        record.kind = LINK_GONE;
    } else {
        return;
    }
    size = link_record_size(&record);
    buffer = malloc(size);
    assert_non_null(buffer);
    (void)link_record_encode(&record, buffer);
    assert_int_equal(cache_put(fixture->cache, op->kind == WRITE_CREATE ? op->link.code : op->code,
                               op->kind == WRITE_CREATE ? op->link.code_len : op->code_len,
                               buffer, size, 0, 0),
                     0);
    free(buffer);
}

/*
 * Starts the writer on store (which it takes over) and opens the reader.
 * A first_id above 1 makes the writer's first reservation start there.
 */
static void start_writer_on(struct fixture *fixture, struct store *store, unsigned queue_capacity,
                            unsigned batch_max, unsigned id_block, uint64_t first_id)
{
    struct writer_config config = {
        .store = store,
        .codegen = &fixture->codegen,
        .queue_capacity = queue_capacity,
        .batch_max = batch_max,
        .id_block = id_block,
        .applied = put_applied,
        .context = fixture,
    };
    uint64_t first;

    if (first_id > 1) {
        assert_int_equal(store_reserve_ids(store, first_id - 1, &first), 0);
        assert_int_equal(first, 1);
    }
    assert_int_equal(writer_start(&config, &fixture->writer), 0);
    if (fixture->reader == NULL)
        fixture->reader = open_store(fixture->path);
}

static void start_writer(struct fixture *fixture, unsigned queue_capacity, unsigned batch_max,
                         unsigned id_block)
{
    start_writer_on(fixture, open_store(fixture->path), queue_capacity, batch_max, id_block, 1);
}

static void stop_writer(struct fixture *fixture)
{
    writer_stop(fixture->writer);
    fixture->writer = NULL;
}

static void on_done(struct write_op *op)
{
    struct test_op *test_op = container_of(op, struct test_op, op);
    struct fixture *fixture = test_op->fixture;
    struct store_link link;

    test_op->done_calls++;
    test_op->depth_at_done = writer_queue_depth(fixture->writer);
    if (test_op->probe != NULL) {
        test_op->probe_result = store_get_link(fixture->reader, test_op->probe->op.link.code,
                                               test_op->probe->op.link.code_len, &link);
        store_link_clear(&link);
    }
    atomic_fetch_add(&fixture->done_calls, 1);

    if (test_op->block) {
        (void)sem_post(&fixture->entered);
        (void)sem_wait(&fixture->gate);
    }
    (void)sem_post(&fixture->completed);
}

static struct test_op *new_op(struct fixture *fixture)
{
    struct test_op *test_op;

    assert_true(fixture->ops_used < OPS_MAX);
    test_op = &fixture->ops[fixture->ops_used++];
    memset(test_op, 0, sizeof(*test_op));
    test_op->fixture = fixture;
    test_op->op.result = 1; /* neither 0 nor an errno, so a result left unset fails the checks */
    test_op->op.done = on_done;
    return test_op;
}

static struct test_op *new_create(struct fixture *fixture, const char *url, int redirect_status)
{
    struct test_op *test_op = new_op(fixture);

    (void)snprintf(test_op->url, sizeof(test_op->url), "%s", url);
    test_op->op.kind = WRITE_CREATE;
    test_op->op.url = test_op->url;
    test_op->op.url_len = strlen(test_op->url);
    test_op->op.redirect_status = redirect_status;
    return test_op;
}

/* Returns a create of an https://example.com/ URL of len bytes, padded with fill. */
static struct test_op *new_long_create(struct fixture *fixture, size_t len, char fill)
{
    struct test_op *test_op = new_create(fixture, "", 301);

    assert_true(len > 20);
    test_op->heap_url = malloc(len + 1);
    assert_non_null(test_op->heap_url);
    memcpy(test_op->heap_url, "https://example.com/", 20);
    memset(test_op->heap_url + 20, fill, len - 20);
    test_op->heap_url[len] = '\0';
    test_op->op.url = test_op->heap_url;
    test_op->op.url_len = len;
    return test_op;
}

static struct test_op *new_delete(struct fixture *fixture, const char *code)
{
    struct test_op *test_op = new_op(fixture);

    test_op->op.kind = WRITE_DELETE;
    test_op->op.code_len = strlen(code);
    memcpy(test_op->op.code, code, test_op->op.code_len + 1);
    return test_op;
}

static void wait_for(sem_t *sem, const char *what)
{
    struct timespec deadline;

    assert_int_equal(clock_gettime(CLOCK_REALTIME, &deadline), 0);
    deadline.tv_sec += WAIT_SECONDS;
    while (sem_timedwait(sem, &deadline) != 0) {
        if (errno == ETIMEDOUT)
            fail_msg("%s did not happen within %d s", what, WAIT_SECONDS);
        assert_int_equal(errno, EINTR);
    }
}

static void wait_completed(struct fixture *fixture, int count)
{
    int i;

    for (i = 0; i < count; i++)
        wait_for(&fixture->completed, "a done callback");
}

static void submit(struct fixture *fixture, struct test_op *test_op)
{
    int rc = writer_submit(fixture->writer, &test_op->op);

    if (rc != 0)
        fail_msg("writer_submit returned %d, expected 0", rc);
}

/* Submits op and waits for its done callback. */
static void apply_one(struct fixture *fixture, struct test_op *test_op)
{
    submit(fixture, test_op);
    wait_completed(fixture, 1);
    assert_int_equal(test_op->done_calls, 1);
}

/* Submits a blocking delete and returns once the writer waits in its done callback. */
static struct test_op *hold_writer(struct fixture *fixture)
{
    struct test_op *blocker = new_delete(fixture, "blocker");

    blocker->block = true;
    submit(fixture, blocker);
    wait_for(&fixture->entered, "the blocking done callback");
    return blocker;
}

static void release_writer(struct fixture *fixture)
{
    (void)sem_post(&fixture->gate);
}

/* Returns the id of the n-th create (from 0) when ids start at first and reserved codes are
 * skipped. */
static uint64_t expected_id(const struct fixture *fixture, uint64_t first, int n)
{
    char code[CODEGEN_LENGTH_MAX + 1];
    uint64_t id = first;

    for (;; id++) {
        assert_int_equal(codegen_encode(&fixture->codegen, id, code), 0);
        if (link_code_reserved(code, CODE_LENGTH))
            continue;
        if (n-- == 0)
            return id;
    }
}

static void assert_created(const struct fixture *fixture, const struct test_op *test_op,
                           uint64_t id)
{
    char code[CODEGEN_LENGTH_MAX + 1];

    if (test_op->op.result != 0)
        fail_msg("create of %.60s returned %d, expected 0", test_op->op.url, test_op->op.result);
    assert_int_equal(test_op->op.link.id, id);
    assert_int_equal(codegen_encode(&fixture->codegen, id, code), 0);
    assert_string_equal(test_op->op.link.code, code);
    assert_int_equal(test_op->op.link.code_len, CODE_LENGTH);
    assert_ptr_equal(test_op->op.link.url, test_op->op.url);
    assert_int_equal(test_op->op.link.url_len, test_op->op.url_len);
    assert_int_equal(test_op->op.link.redirect_status, test_op->op.redirect_status);
    assert_true(test_op->op.link.created_at > 1700000000000);
}

/* Reads the created link through the reader and checks it against the create. */
static void assert_stored(struct fixture *fixture, const struct test_op *test_op)
{
    struct store_link link;
    int rc =
        store_get_link(fixture->reader, test_op->op.link.code, test_op->op.link.code_len, &link);

    if (rc != 0)
        fail_msg("store_get_link(%s) returned %d, expected 0", test_op->op.link.code, rc);
    assert_int_equal(link.id, test_op->op.link.id);
    assert_int_equal(link.url_len, test_op->op.url_len);
    assert_memory_equal(link.url, test_op->op.url, link.url_len);
    assert_int_equal(link.redirect_status, test_op->op.redirect_status);
    assert_int_equal(link.created_at, test_op->op.link.created_at);
    assert_int_equal(link.deleted_at, 0);
    store_link_clear(&link);
}

static void creates_get_consecutive_ids(void **state)
{
    struct fixture *fixture = *state;
    struct test_op *ops[5];
    char url[64];
    int i;

    start_writer(fixture, 16, 16, 100);
    for (i = 0; i < 5; i++) {
        (void)snprintf(url, sizeof(url), "https://example.com/%d", i);
        ops[i] = new_create(fixture, url, i % 2 == 0 ? 301 : 302);
        apply_one(fixture, ops[i]);
    }

    for (i = 0; i < 5; i++) {
        assert_created(fixture, ops[i], expected_id(fixture, 1, i));
        assert_stored(fixture, ops[i]);
    }
    assert_int_equal(writer_health(fixture->writer), 0);
}

static void queued_ops_commit_as_one_batch(void **state)
{
    enum { QUEUED = 50 };
    struct fixture *fixture = *state;
    struct test_op *blocker, *ops[QUEUED];
    char url[64];
    int i;

    start_writer(fixture, 100, 100, 1000);
    blocker = hold_writer(fixture);
    for (i = 0; i < QUEUED; i++) {
        (void)snprintf(url, sizeof(url), "https://example.com/batch/%d", i);
        ops[i] = new_create(fixture, url, 301);
        submit(fixture, ops[i]);
    }
    assert_int_equal(writer_queue_depth(fixture->writer), QUEUED);

    /* The first op's done callback looks up the last op's link. */
    ops[0]->probe = ops[QUEUED - 1];
    release_writer(fixture);
    wait_completed(fixture, 1 + QUEUED);
    assert_int_equal(blocker->op.result, -ENOENT);

    /*
     * The writer took all of them at once, and the whole batch was committed
     * before the first done callback ran.
     */
    assert_int_equal(ops[0]->depth_at_done, 0);
    assert_int_equal(ops[0]->probe_result, 0);
    for (i = 0; i < QUEUED; i++) {
        assert_int_equal(ops[i]->done_calls, 1);
        assert_created(fixture, ops[i], expected_id(fixture, 1, i));
        assert_stored(fixture, ops[i]);
    }
    assert_int_equal(atomic_load(&fixture->done_calls), 1 + QUEUED);
}

static void batch_max_splits_the_queue(void **state)
{
    enum { QUEUED = 10 };
    struct fixture *fixture = *state;
    struct test_op *ops[QUEUED];
    char url[64];
    int i;

    start_writer(fixture, 100, 4, 1000);
    (void)hold_writer(fixture);
    for (i = 0; i < QUEUED; i++) {
        (void)snprintf(url, sizeof(url), "https://example.com/split/%d", i);
        ops[i] = new_create(fixture, url, 301);
        submit(fixture, ops[i]);
    }
    release_writer(fixture);
    wait_completed(fixture, 1 + QUEUED);

    /* Batches of 4, 4 and 2, so the first done of each finds 6, 2 and 0 ops still queued. */
    assert_int_equal(ops[0]->depth_at_done, 6);
    assert_int_equal(ops[4]->depth_at_done, 2);
    assert_int_equal(ops[8]->depth_at_done, 0);
    for (i = 0; i < QUEUED; i++)
        assert_created(fixture, ops[i], expected_id(fixture, 1, i));
}

static void deletes_report_each_outcome(void **state)
{
    struct fixture *fixture = *state;
    struct test_op *create, *first, *again, *unknown;
    struct store_link link;

    start_writer(fixture, 16, 16, 100);
    create = new_create(fixture, "https://example.com/doomed", 301);
    apply_one(fixture, create);
    assert_int_equal(create->op.result, 0);

    first = new_delete(fixture, create->op.link.code);
    apply_one(fixture, first);
    assert_int_equal(first->op.result, 0);

    again = new_delete(fixture, create->op.link.code);
    apply_one(fixture, again);
    assert_int_equal(again->op.result, -EALREADY);

    unknown = new_delete(fixture, "NoSuch1");
    apply_one(fixture, unknown);
    assert_int_equal(unknown->op.result, -ENOENT);

    assert_int_equal(
        store_get_link(fixture->reader, create->op.link.code, create->op.link.code_len, &link), 0);
    assert_true(link.deleted_at > 0);
    store_link_clear(&link);
    assert_int_equal(writer_health(fixture->writer), 0);
}

struct cached {
    unsigned char bytes[4096];
    size_t len;
};

static void copy_value(const void *value, size_t value_len, void *arg)
{
    struct cached *cached = arg;

    if (value_len > sizeof(cached->bytes))
        value_len = 0; /* too long for the buffer, so the record decode fails */
    memcpy(cached->bytes, value, value_len);
    cached->len = value_len;
}

/* Reads code from the cache and decodes its record, and fails when it is not cached. */
static void get_cached(struct fixture *fixture, const char *code, struct cached *cached,
                       struct link_record *record)
{
    int rc = cache_get(fixture->cache, code, strlen(code), 0, copy_value, cached);

    if (rc != 0)
        fail_msg("cache_get(%s) returned %d, expected 0", code, rc);
    assert_int_equal(link_record_decode(cached->bytes, cached->len, record), 0);
}

static void cache_tracks_creates_and_deletes(void **state)
{
    struct fixture *fixture = *state;
    struct test_op *create, *long_create, *delete, *unknown;
    struct link_record missing_record = {.kind = LINK_MISSING, .cache_max_age = -1};
    char missing[LINK_RECORD_HEADER_MAX], code[CODEGEN_LENGTH_MAX + 1];
    struct link_record record;
    struct cached cached;
    size_t len;

    /* A negative entry for the code that the first create gets is replaced. */
    assert_int_equal(codegen_encode(&fixture->codegen, expected_id(fixture, 1, 0), code), 0);
    len = link_record_encode(&missing_record, missing);
    assert_int_equal(cache_put(fixture->cache, code, CODE_LENGTH, missing, len, 60000, 0), 0);

    start_writer(fixture, 16, 16, 100);
    create = new_create(fixture, "https://example.com/cached", 307);
    apply_one(fixture, create);
    assert_int_equal(create->op.result, 0);
    assert_string_equal(create->op.link.code, code);

    get_cached(fixture, code, &cached, &record);
    assert_int_equal(record.kind, LINK_LIVE);
    assert_int_equal(record.redirect_status, 307);
    assert_int_equal(record.expires_at, 0);
    assert_int_equal(record.url_len, strlen("https://example.com/cached"));
    assert_memory_equal(record.url, "https://example.com/cached", record.url_len);

    /* A long URL is cached whole. */
    long_create = new_long_create(fixture, 3000, 'l');
    apply_one(fixture, long_create);
    assert_int_equal(long_create->op.result, 0);
    get_cached(fixture, long_create->op.link.code, &cached, &record);
    assert_int_equal(record.kind, LINK_LIVE);
    assert_int_equal(record.url_len, 3000);
    assert_memory_equal(record.url, long_create->heap_url, 3000);

    delete = new_delete(fixture, code);
    apply_one(fixture, delete);
    assert_int_equal(delete->op.result, 0);
    get_cached(fixture, code, &cached, &record);
    assert_int_equal(record.kind, LINK_GONE);
    assert_int_equal(record.url_len, 0);

    /* A delete that changed nothing leaves the cache alone. */
    unknown = new_delete(fixture, "NoSuch1");
    apply_one(fixture, unknown);
    assert_int_equal(unknown->op.result, -ENOENT);
    assert_int_equal(cache_get(fixture->cache, "NoSuch1", 7, 0, NULL, NULL), -ENOENT);
}

static void full_queue_returns_eagain(void **state)
{
    struct fixture *fixture = *state;
    struct test_op *queued[2], *rejected, *later;
    int i;

    start_writer(fixture, 2, 16, 100);
    (void)hold_writer(fixture);
    for (i = 0; i < 2; i++) {
        queued[i] = new_create(fixture, "https://example.com/queued", 301);
        submit(fixture, queued[i]);
    }
    rejected = new_create(fixture, "https://example.com/rejected", 301);
    assert_int_equal(writer_submit(fixture->writer, &rejected->op), -EAGAIN);
    assert_int_equal(writer_queue_depth(fixture->writer), 2);

    release_writer(fixture);
    wait_completed(fixture, 3);
    assert_int_equal(queued[0]->op.result, 0);
    assert_int_equal(queued[1]->op.result, 0);
    assert_int_equal(rejected->done_calls, 0);
    assert_int_equal(rejected->op.result, 1);

    /* Once the queue drained, submits are accepted again. */
    later = new_create(fixture, "https://example.com/later", 301);
    apply_one(fixture, later);
    assert_int_equal(later->op.result, 0);
    assert_int_equal(atomic_load(&fixture->done_calls), 4);
}

static void *stop_in_thread(void *arg)
{
    struct stopper *stopper = arg;

    writer_stop(stopper->writer);
    atomic_store(&stopper->returned, true);
    return NULL;
}

/*
 * Starts writer_stop on another thread and returns once the stop began, that
 * is once a submit into the full queue returns -ESHUTDOWN instead of -EAGAIN.
 * The writer must be held and its queue full.
 */
static void begin_stop(struct fixture *fixture, struct test_op *probe)
{
    struct timespec pause = {.tv_nsec = 1000000};
    struct stopper *stopper = &fixture->stopper;
    int rc, tries;

    stopper->writer = fixture->writer;
    atomic_init(&stopper->returned, false);
    assert_int_equal(pthread_create(&stopper->thread, NULL, stop_in_thread, stopper), 0);
    stopper->started = true;

    for (tries = 0; tries < WAIT_SECONDS * 1000; tries++) {
        rc = writer_submit(stopper->writer, &probe->op);
        if (rc == -ESHUTDOWN)
            return;
        if (rc != -EAGAIN)
            fail_msg("writer_submit during writer_stop returned %d, expected %d or %d", rc, -EAGAIN,
                     -ESHUTDOWN);
        (void)nanosleep(&pause, NULL);
    }
    fail_msg("writer_submit did not return -ESHUTDOWN within %d s of writer_stop", WAIT_SECONDS);
}

/* Lets the held writer go and waits for writer_stop to return. */
static void finish_stop(struct fixture *fixture)
{
    release_writer(fixture);
    assert_int_equal(pthread_join(fixture->stopper.thread, NULL), 0);
    fixture->stopper.started = false;
    fixture->writer = NULL;
    assert_true(atomic_load(&fixture->stopper.returned));
}

static void stop_applies_every_queued_op(void **state)
{
    enum { QUEUED = 8 };
    struct fixture *fixture = *state;
    struct test_op *ops[QUEUED], *late;
    char url[64];
    int i;

    start_writer(fixture, QUEUED, 3, 100);
    (void)hold_writer(fixture);
    for (i = 0; i < QUEUED; i++) {
        (void)snprintf(url, sizeof(url), "https://example.com/stop/%d", i);
        ops[i] = new_create(fixture, url, 301);
        submit(fixture, ops[i]);
    }

    late = new_create(fixture, "https://example.com/late", 301);
    begin_stop(fixture, late);
    assert_false(atomic_load(&fixture->stopper.returned));

    /* writer_stop returns only after the queued ops were applied, in batches of 3. */
    finish_stop(fixture);
    assert_int_equal(atomic_load(&fixture->done_calls), 1 + QUEUED);
    wait_completed(fixture, 1 + QUEUED);
    for (i = 0; i < QUEUED; i++) {
        assert_int_equal(ops[i]->done_calls, 1);
        assert_created(fixture, ops[i], expected_id(fixture, 1, i));
        assert_stored(fixture, ops[i]);
    }
    assert_int_equal(late->done_calls, 0);
}

static void submit_during_stop_returns_eshutdown(void **state)
{
    struct fixture *fixture = *state;
    struct test_op *queued, *late_create, *late_delete;

    start_writer(fixture, 1, 16, 100);
    (void)hold_writer(fixture);
    queued = new_create(fixture, "https://example.com/queued", 301);
    submit(fixture, queued);

    /* The writer is held, so it is still alive while these submits run. */
    late_create = new_create(fixture, "https://example.com/late", 301);
    begin_stop(fixture, late_create);
    assert_int_equal(writer_submit(fixture->stopper.writer, &late_create->op), -ESHUTDOWN);
    late_delete = new_delete(fixture, "Late123");
    assert_int_equal(writer_submit(fixture->stopper.writer, &late_delete->op), -ESHUTDOWN);
    assert_int_equal(writer_queue_depth(fixture->stopper.writer), 1);

    finish_stop(fixture);
    wait_completed(fixture, 2);
    assert_int_equal(queued->op.result, 0);
    assert_int_equal(late_create->done_calls, 0);
    assert_int_equal(late_delete->done_calls, 0);
    assert_int_equal(atomic_load(&fixture->done_calls), 2);
}

static void store_failure_fails_whole_batch(void **state)
{
    enum { CREATES = 4 };
    struct fixture *fixture = *state;
    struct test_op *first, *creates[CREATES], *delete, *recovered;
    struct link_record record;
    struct store_link link;
    struct cached cached;
    char sql[64];
    int64_t pages;
    int i;

    /* id_block covers every create, so no reservation is needed once pages are capped. */
    start_writer_on(fixture, open_store_with_handle(fixture->path, &fixture->writer_db), 16, 16,
                    1000, 1);
    first = new_create(fixture, "https://example.com/first", 301);
    apply_one(fixture, first);
    assert_int_equal(first->op.result, 0);

    /* No page may be added, while each 3000-byte URL needs room on a new one. */
    (void)hold_writer(fixture);
    pages = query_connection(fixture->writer_db, "PRAGMA page_count");
    (void)snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %lld", (long long)pages);
    assert_int_equal(sqlite3_exec(fixture->writer_db, sql, NULL, NULL, NULL), SQLITE_OK);

    for (i = 0; i < CREATES; i++) {
        creates[i] = new_long_create(fixture, 3000, (char)('a' + i));
        submit(fixture, creates[i]);
    }
    delete = new_delete(fixture, first->op.link.code);
    submit(fixture, delete);

    release_writer(fixture);
    wait_completed(fixture, 1 + CREATES + 1);
    for (i = 0; i < CREATES; i++) {
        assert_int_equal(creates[i]->done_calls, 1);
        assert_int_equal(creates[i]->op.result, -ENOSPC);
    }
    assert_int_equal(delete->op.result, -ENOSPC);
    assert_int_equal(writer_health(fixture->writer), -ENOSPC);

    /* Nothing of the batch reached the store or the cache. */
    for (i = 0; i < CREATES; i++) {
        assert_int_equal(store_get_link(fixture->reader, creates[i]->op.link.code,
                                        creates[i]->op.link.code_len, &link),
                         -ENOENT);
        assert_int_equal(cache_get(fixture->cache, creates[i]->op.link.code,
                                   creates[i]->op.link.code_len, 0, NULL, NULL),
                         -ENOENT);
    }
    assert_int_equal(
        store_get_link(fixture->reader, first->op.link.code, first->op.link.code_len, &link), 0);
    assert_int_equal(link.deleted_at, 0);
    store_link_clear(&link);
    get_cached(fixture, first->op.link.code, &cached, &record);
    assert_int_equal(record.kind, LINK_LIVE);

    /* With room again, the next batch commits and clears the health error. */
    assert_int_equal(
        sqlite3_exec(fixture->writer_db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL),
        SQLITE_OK);
    recovered = new_create(fixture, "https://example.com/recovered", 301);
    apply_one(fixture, recovered);
    assert_int_equal(recovered->op.result, 0);
    assert_stored(fixture, recovered);
    assert_int_equal(writer_health(fixture->writer), 0);
}

static void reserved_codes_are_skipped(void **state)
{
    struct fixture *fixture = *state;
    /* Each word's id is placed at offset in the writer's first block of 3 ids. */
    const struct {
        const char *word;
        uint64_t offset;
    } cases[] = {
        {"healthz", 1}, /* in the middle of the block */
        {"metrics", 0}, /* first of the block */
        {"HealthZ", 2}, /* last of the block, so the next id comes from a new block */
        {"METRICS", 1},
    };
    char code[CODEGEN_LENGTH_MAX + 1];
    struct test_op *ops[3];
    struct store_link link;
    uint64_t reserved_id, id;
    size_t c;
    int i;

    for (c = 0; c < ARRAY_SIZE(cases); c++) {
        assert_int_equal(
            codegen_decode(&fixture->codegen, cases[c].word, CODE_LENGTH, &reserved_id), 0);
        assert_true(reserved_id > cases[c].offset + 1);
        assert_true(reserved_id + 4 < fixture->codegen.space);

        /* A fresh store for each case, whose first reservation starts at the block. */
        (void)snprintf(fixture->path, sizeof(fixture->path), "%s/case%zu/shortd.db", fixture->dir,
                       c);
        store_close(fixture->reader);
        fixture->reader = NULL;
        start_writer_on(fixture, open_store(fixture->path), 16, 16, 3,
                        reserved_id - cases[c].offset);
        for (i = 0; i < 3; i++) {
            ops[i] = new_create(fixture, "https://example.com/reserved", 301);
            apply_one(fixture, ops[i]);
        }
        stop_writer(fixture);

        /* The creates get the first three ids of the block, without the reserved one. */
        id = reserved_id - cases[c].offset;
        for (i = 0; i < 3; i++, id++) {
            if (id == reserved_id)
                id++;
            assert_created(fixture, ops[i], id);
        }
        assert_int_equal(codegen_encode(&fixture->codegen, reserved_id, code), 0);
        assert_string_equal(code, cases[c].word);
        assert_int_equal(store_get_link(fixture->reader, code, CODE_LENGTH, &link), -ENOENT);
    }
}

static void code_taken_by_alias_is_skipped(void **state)
{
    struct fixture *fixture = *state;
    char taken[CODEGEN_LENGTH_MAX + 1];
    struct store_op alias;
    struct test_op *create;

    start_writer(fixture, 16, 16, 100);

    /* Another writer of the database chose the first generated code as an alias. */
    assert_int_equal(codegen_encode(&fixture->codegen, expected_id(fixture, 1, 0), taken), 0);
    memset(&alias, 0, sizeof(alias));
    alias.kind = STORE_OP_CREATE;
    alias.link.id = 1000000;
    alias.link.code_len = CODE_LENGTH;
    memcpy(alias.link.code, taken, CODE_LENGTH + 1);
    alias.link.url = "https://example.com/alias";
    alias.link.url_len = strlen(alias.link.url);
    alias.link.created_at = 1700000000000;
    alias.link.redirect_status = 301;
    alias.now = alias.link.created_at;
    assert_int_equal(store_apply(fixture->reader, &alias, 1), 0);
    assert_int_equal(alias.result, 0);

    /* The create is retried with the next id, and done runs once, for the retry. */
    create = new_create(fixture, "https://example.com/generated", 301);
    apply_one(fixture, create);
    assert_created(fixture, create, expected_id(fixture, 1, 1));
    assert_stored(fixture, create);
    assert_int_equal(atomic_load(&fixture->done_calls), 1);
    assert_int_equal(writer_health(fixture->writer), 0);
}

static void exhausted_code_space_fails_creates(void **state)
{
    struct fixture *fixture = *state;
    struct test_op *last, *beyond;
    uint64_t last_id = fixture->codegen.space - 1;

    /* The writer's first block starts at the last id that has a code. */
    start_writer_on(fixture, open_store(fixture->path), 16, 16, 100, last_id);
    last = new_create(fixture, "https://example.com/last", 301);
    apply_one(fixture, last);
    assert_created(fixture, last, last_id);

    beyond = new_create(fixture, "https://example.com/beyond", 301);
    apply_one(fixture, beyond);
    assert_int_equal(beyond->op.result, -ERANGE);
    assert_int_equal(writer_health(fixture->writer), -ERANGE);
}

static void start_rejects_zero_limits(void **state)
{
    struct fixture *fixture = *state;
    struct writer_config config = {
        .codegen = &fixture->codegen,
        .queue_capacity = 16,
        .batch_max = 16,
        .id_block = 100,
    };
    struct writer_config invalid;
    struct writer *writer = NULL;
    int i;

    config.store = open_store(fixture->path);
    for (i = 0; i < 3; i++) {
        invalid = config;
        if (i == 0)
            invalid.queue_capacity = 0;
        else if (i == 1)
            invalid.batch_max = 0;
        else
            invalid.id_block = 0;
        assert_int_equal(writer_start(&invalid, &writer), -EINVAL);
        assert_null(writer);
    }

    /* The store is still the caller's after a failed start. */
    assert_int_equal(store_ping(config.store), 0);
    store_close(config.store);
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        TEST(creates_get_consecutive_ids),
        TEST(queued_ops_commit_as_one_batch),
        TEST(batch_max_splits_the_queue),
        TEST(deletes_report_each_outcome),
        TEST(cache_tracks_creates_and_deletes),
        TEST(full_queue_returns_eagain),
        TEST(stop_applies_every_queued_op),
        TEST(submit_during_stop_returns_eshutdown),
        TEST(store_failure_fails_whole_batch),
        TEST(reserved_codes_are_skipped),
        TEST(code_taken_by_alias_is_skipped),
        TEST(exhausted_code_space_fails_creates),
        TEST(start_rejects_zero_limits),
    };
    /* clang-format on */
#undef TEST

    return cmocka_run_group_tests(tests, NULL, NULL);
}
