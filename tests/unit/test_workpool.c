/*
 * Unit tests for core/workpool.
 *
 * Tests that need a worker to be busy hold it in a job that waits on a
 * semaphore the test controls, so no test depends on timing or sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/workpool.h"

#define MAX_WORKERS 8

/* State that init creates for one worker. The tests check that jobs and fini get it back. */
struct worker_state {
    unsigned index;
    pthread_t thread;
    atomic_int fini_calls;
};

/* The context shared by init and fini of one pool. */
struct pool_context {
    struct worker_state states[MAX_WORKERS];
    atomic_int init_calls;
    atomic_int init_successes;
    atomic_int fini_calls;
    atomic_int fini_foreign_state; /* fini got a state that init did not make */
    int fail_index;                /* worker whose init fails, or -1 */
    int fail_error;
};

static void context_reset(struct pool_context *context)
{
    memset(context, 0, sizeof(*context));
    context->fail_index = -1;
}

static int init_state(void *opaque, unsigned worker_index, void **thread_state)
{
    struct pool_context *context = opaque;

    atomic_fetch_add(&context->init_calls, 1);
    if (worker_index >= MAX_WORKERS)
        return -ERANGE;
    if ((int)worker_index == context->fail_index)
        return context->fail_error;

    context->states[worker_index].index = worker_index;
    context->states[worker_index].thread = pthread_self();
    *thread_state = &context->states[worker_index];
    atomic_fetch_add(&context->init_successes, 1);
    return 0;
}

static void fini_state(void *opaque, void *thread_state)
{
    struct pool_context *context = opaque;
    struct worker_state *state = thread_state;

    atomic_fetch_add(&context->fini_calls, 1);
    if (state < &context->states[0] || state >= &context->states[MAX_WORKERS] ||
        !pthread_equal(state->thread, pthread_self())) {
        atomic_fetch_add(&context->fini_foreign_state, 1);
        return;
    }
    atomic_fetch_add(&state->fini_calls, 1);
}

static struct workpool *create_pool(struct pool_context *context, unsigned threads,
                                    unsigned capacity)
{
    struct workpool_config config = {
        .threads = threads,
        .queue_capacity = capacity,
        .init = init_state,
        .fini = fini_state,
        .context = context,
    };
    struct workpool *pool = NULL;

    assert_int_equal(workpool_create(&config, &pool), 0);
    assert_non_null(pool);
    return pool;
}

/* Submits, retrying while the queue is full. */
static void submit_retrying(struct workpool *pool, workpool_job_fn fn, void *arg)
{
    int rc;

    while ((rc = workpool_submit(pool, fn, arg)) == -EAGAIN)
        sched_yield();
    assert_int_equal(rc, 0);
}

/* Counts how often each numbered job ran. */
struct run_counter {
    atomic_int *runs;
    atomic_int foreign_state; /* a job ran with another thread's state */
};

struct counted_job {
    struct run_counter *counter;
    unsigned number;
};

static void count_job(void *thread_state, void *arg)
{
    struct counted_job *job = arg;
    struct worker_state *state = thread_state;

    if (state == NULL || !pthread_equal(state->thread, pthread_self()))
        atomic_fetch_add(&job->counter->foreign_state, 1);
    atomic_fetch_add(&job->counter->runs[job->number], 1);
}

/* A job that holds its worker until the test posts release. */
struct blocking_job {
    sem_t started;
    sem_t release;
    struct workpool *pool;
    int submit_after_release; /* result of a submit made after release, or 1 if none */
    int try_submit;
};

static void noop_job(void *thread_state, void *arg)
{
}

static void block_job(void *thread_state, void *arg)
{
    struct blocking_job *job = arg;

    /* No cmocka assertion here: a failing one would longjmp out of a worker thread. */
    (void)sem_post(&job->started);
    while (sem_wait(&job->release) != 0)
        continue;
    if (job->try_submit)
        job->submit_after_release = workpool_submit(job->pool, noop_job, NULL);
}

static void blocking_job_init(struct blocking_job *job, struct workpool *pool)
{
    memset(job, 0, sizeof(*job));
    assert_int_equal(sem_init(&job->started, 0, 0), 0);
    assert_int_equal(sem_init(&job->release, 0, 0), 0);
    job->pool = pool;
    job->submit_after_release = 1;
}

static void blocking_job_wait_started(struct blocking_job *job)
{
    while (sem_wait(&job->started) != 0)
        continue;
}

static void blocking_job_destroy(struct blocking_job *job)
{
    (void)sem_destroy(&job->started);
    (void)sem_destroy(&job->release);
}

static void create_rejects_invalid_config(void **unused)
{
    struct workpool_config config = {.threads = 1, .queue_capacity = 1};
    struct workpool *pool = NULL;

    assert_int_equal(workpool_create(NULL, &pool), -EINVAL);
    assert_int_equal(workpool_create(&config, NULL), -EINVAL);

    config.threads = 0;
    assert_int_equal(workpool_create(&config, &pool), -EINVAL);

    config.threads = 1;
    config.queue_capacity = 0;
    assert_int_equal(workpool_create(&config, &pool), -EINVAL);
    assert_null(pool);
}

static void create_without_callbacks_runs_jobs(void **unused)
{
    struct workpool_config config = {.threads = 2, .queue_capacity = 4};
    struct workpool *pool = NULL;
    struct blocking_job job;

    assert_int_equal(workpool_create(&config, &pool), 0);
    blocking_job_init(&job, pool);

    assert_int_equal(workpool_submit(pool, block_job, &job), 0);
    blocking_job_wait_started(&job);
    assert_int_equal(sem_post(&job.release), 0);

    workpool_destroy(pool);
    blocking_job_destroy(&job);
}

static void submit_runs_every_job_once(void **unused)
{
    enum { JOBS = 2000 };
    struct pool_context context;
    struct run_counter counter = {0};
    struct counted_job *jobs = calloc(JOBS, sizeof(*jobs));
    struct workpool *pool;

    assert_non_null(jobs);
    counter.runs = calloc(JOBS, sizeof(*counter.runs));
    assert_non_null(counter.runs);
    context_reset(&context);
    pool = create_pool(&context, 3, 16);

    for (unsigned i = 0; i < JOBS; i++) {
        jobs[i].counter = &counter;
        jobs[i].number = i;
        submit_retrying(pool, count_job, &jobs[i]);
    }
    workpool_drain(pool);

    for (unsigned i = 0; i < JOBS; i++)
        assert_int_equal(atomic_load(&counter.runs[i]), 1);
    assert_int_equal(atomic_load(&counter.foreign_state), 0);

    workpool_destroy(pool);
    free(counter.runs);
    free(jobs);
}

static void record_state_job(void *thread_state, void *arg)
{
    struct worker_state **seen = arg;

    *seen = thread_state;
}

static void job_gets_state_from_its_worker_init(void **unused)
{
    struct pool_context context;
    struct workpool *pool;
    struct worker_state *seen = NULL;

    context_reset(&context);
    pool = create_pool(&context, 1, 4);
    assert_int_equal(atomic_load(&context.init_calls), 1);

    assert_int_equal(workpool_submit(pool, record_state_job, &seen), 0);
    workpool_drain(pool);

    assert_ptr_equal(seen, &context.states[0]);
    assert_int_equal(seen->index, 0);
    workpool_destroy(pool);
}

static void init_gets_each_worker_index_once(void **unused)
{
    struct pool_context context;
    struct workpool *pool;

    context_reset(&context);
    pool = create_pool(&context, 4, 4);

    /* workpool_create returns only after every init ran. */
    assert_int_equal(atomic_load(&context.init_calls), 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(context.states[i].index, i);
        for (unsigned j = 0; j < i; j++)
            assert_false(pthread_equal(context.states[i].thread, context.states[j].thread));
    }
    workpool_destroy(pool);
}

static void submit_fails_with_eagain_when_full(void **unused)
{
    struct pool_context context;
    struct run_counter counter = {0};
    atomic_int runs[3] = {0};
    struct counted_job queued[3];
    struct blocking_job blocker;
    struct workpool *pool;

    counter.runs = runs;
    context_reset(&context);
    pool = create_pool(&context, 1, 2);
    blocking_job_init(&blocker, pool);

    /* The only worker is held, so the queue fills up. */
    assert_int_equal(workpool_submit(pool, block_job, &blocker), 0);
    blocking_job_wait_started(&blocker);
    assert_int_equal(workpool_queue_depth(pool), 0);

    for (unsigned i = 0; i < 3; i++) {
        queued[i].counter = &counter;
        queued[i].number = i;
    }
    assert_int_equal(workpool_submit(pool, count_job, &queued[0]), 0);
    assert_int_equal(workpool_queue_depth(pool), 1);
    assert_int_equal(workpool_submit(pool, count_job, &queued[1]), 0);
    assert_int_equal(workpool_queue_depth(pool), 2);
    assert_int_equal(workpool_submit(pool, count_job, &queued[2]), -EAGAIN);
    assert_int_equal(workpool_queue_depth(pool), 2);

    assert_int_equal(sem_post(&blocker.release), 0);
    workpool_drain(pool);

    assert_int_equal(atomic_load(&runs[0]), 1);
    assert_int_equal(atomic_load(&runs[1]), 1);
    assert_int_equal(atomic_load(&runs[2]), 0);
    assert_int_equal(workpool_queue_depth(pool), 0);

    workpool_destroy(pool);
    blocking_job_destroy(&blocker);
}

static void submit_rejects_null_function(void **unused)
{
    struct pool_context context;
    struct workpool *pool;

    context_reset(&context);
    pool = create_pool(&context, 1, 1);
    assert_int_equal(workpool_submit(pool, NULL, NULL), -EINVAL);
    workpool_destroy(pool);
}

static void submit_fails_with_eshutdown_after_drain(void **unused)
{
    struct pool_context context;
    struct workpool *pool;

    context_reset(&context);
    pool = create_pool(&context, 2, 4);
    workpool_drain(pool);

    assert_int_equal(workpool_submit(pool, noop_job, NULL), -ESHUTDOWN);
    assert_int_equal(workpool_queue_depth(pool), 0);
    workpool_destroy(pool);
}

static void *drain_thread_main(void *pool)
{
    workpool_drain(pool);
    return NULL;
}

/*
 * Holds the only worker, fills the queue, and starts a drain in another
 * thread. The job queued before the drain must still run, and a submit made
 * from inside the held job after the drain began must return -ESHUTDOWN.
 */
static void drain_runs_queued_jobs_and_rejects_new_ones(void **unused)
{
    struct pool_context context;
    struct run_counter counter = {0};
    atomic_int runs[1] = {0};
    struct counted_job queued = {.counter = &counter, .number = 0};
    struct blocking_job blocker;
    struct workpool *pool;
    pthread_t drainer;
    int rc;

    counter.runs = runs;
    context_reset(&context);
    pool = create_pool(&context, 1, 1);
    blocking_job_init(&blocker, pool);
    blocker.try_submit = 1;

    assert_int_equal(workpool_submit(pool, block_job, &blocker), 0);
    blocking_job_wait_started(&blocker);
    assert_int_equal(workpool_submit(pool, count_job, &queued), 0);

    assert_int_equal(pthread_create(&drainer, NULL, drain_thread_main, pool), 0);

    /*
     * The queue stays full while the worker is held, so -EAGAIN means the
     * drain has not begun and -ESHUTDOWN means it has. No probe is queued.
     */
    while ((rc = workpool_submit(pool, noop_job, NULL)) == -EAGAIN)
        sched_yield();
    assert_int_equal(rc, -ESHUTDOWN);
    assert_int_equal(atomic_load(&runs[0]), 0);

    assert_int_equal(sem_post(&blocker.release), 0);
    assert_int_equal(pthread_join(drainer, NULL), 0);

    assert_int_equal(blocker.submit_after_release, -ESHUTDOWN);
    assert_int_equal(atomic_load(&runs[0]), 1);
    assert_int_equal(workpool_queue_depth(pool), 0);
    assert_int_equal(atomic_load(&context.fini_calls), 1);

    workpool_destroy(pool);
    blocking_job_destroy(&blocker);
}

static void drain_twice_runs_fini_once_per_worker(void **unused)
{
    struct pool_context context;
    struct workpool *pool;

    context_reset(&context);
    pool = create_pool(&context, 4, 8);
    assert_int_equal(atomic_load(&context.fini_calls), 0);

    workpool_drain(pool);
    assert_int_equal(atomic_load(&context.fini_calls), 4);

    workpool_drain(pool);
    workpool_destroy(pool);

    assert_int_equal(atomic_load(&context.fini_calls), 4);
    assert_int_equal(atomic_load(&context.fini_foreign_state), 0);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&context.states[i].fini_calls), 1);
}

static void destroy_without_drain_runs_queued_jobs(void **unused)
{
    enum { JOBS = 64 };
    struct pool_context context;
    struct run_counter counter = {0};
    atomic_int runs[JOBS] = {0};
    struct counted_job jobs[JOBS];
    struct blocking_job blocker;
    struct workpool *pool;

    counter.runs = runs;
    context_reset(&context);
    pool = create_pool(&context, 1, JOBS);
    blocking_job_init(&blocker, pool);

    /* The only worker is held, so every job is still queued when the blocker is released. */
    assert_int_equal(workpool_submit(pool, block_job, &blocker), 0);
    blocking_job_wait_started(&blocker);
    for (unsigned i = 0; i < JOBS; i++) {
        jobs[i].counter = &counter;
        jobs[i].number = i;
        assert_int_equal(workpool_submit(pool, count_job, &jobs[i]), 0);
    }
    assert_int_equal(workpool_queue_depth(pool), JOBS);
    assert_int_equal(sem_post(&blocker.release), 0);

    workpool_destroy(pool);

    for (unsigned i = 0; i < JOBS; i++)
        assert_int_equal(atomic_load(&runs[i]), 1);
    assert_int_equal(atomic_load(&context.fini_calls), 1);
    blocking_job_destroy(&blocker);
}

static void destroy_accepts_null(void **unused)
{
    workpool_destroy(NULL);
}

static void create_fails_with_init_error_and_finis_started(void **unused)
{
    struct pool_context context;
    struct workpool_config config = {
        .threads = 4,
        .queue_capacity = 4,
        .init = init_state,
        .fini = fini_state,
        .context = &context,
    };
    struct workpool *pool = NULL;

    context_reset(&context);
    context.fail_index = 2;
    context.fail_error = -EMFILE;

    assert_int_equal(workpool_create(&config, &pool), -EMFILE);
    assert_null(pool);

    /* Every worker was started, and the three whose init succeeded ran fini. */
    assert_int_equal(atomic_load(&context.init_calls), 4);
    assert_int_equal(atomic_load(&context.init_successes), 3);
    assert_int_equal(atomic_load(&context.fini_calls), 3);
    assert_int_equal(atomic_load(&context.fini_foreign_state), 0);
    assert_int_equal(atomic_load(&context.states[0].fini_calls), 1);
    assert_int_equal(atomic_load(&context.states[1].fini_calls), 1);
    assert_int_equal(atomic_load(&context.states[2].fini_calls), 0);
    assert_int_equal(atomic_load(&context.states[3].fini_calls), 1);
}

static void create_fails_when_only_worker_init_fails(void **unused)
{
    struct pool_context context;
    struct workpool_config config = {
        .threads = 1,
        .queue_capacity = 1,
        .init = init_state,
        .fini = fini_state,
        .context = &context,
    };
    struct workpool *pool = NULL;

    context_reset(&context);
    context.fail_index = 0;
    context.fail_error = -ECONNREFUSED;

    assert_int_equal(workpool_create(&config, &pool), -ECONNREFUSED);
    assert_null(pool);
    assert_int_equal(atomic_load(&context.fini_calls), 0);
}

/* Records whether SIGTERM, SIGINT and SIGSEGV are blocked in the worker. */
struct signal_probe {
    int mask_error;
    int term_blocked;
    int int_blocked;
    int segv_blocked;
};

static void probe_signal_mask_job(void *thread_state, void *arg)
{
    struct signal_probe *probe = arg;
    sigset_t mask;

    probe->mask_error = pthread_sigmask(SIG_BLOCK, NULL, &mask);
    probe->term_blocked = sigismember(&mask, SIGTERM);
    probe->int_blocked = sigismember(&mask, SIGINT);
    probe->segv_blocked = sigismember(&mask, SIGSEGV);
}

static void worker_blocks_termination_signals(void **unused)
{
    struct pool_context context;
    struct signal_probe probe = {-1, -1, -1, -1};
    struct workpool *pool;
    sigset_t caller_mask;

    context_reset(&context);
    pool = create_pool(&context, 1, 1);
    assert_int_equal(workpool_submit(pool, probe_signal_mask_job, &probe), 0);
    workpool_drain(pool);

    assert_int_equal(probe.mask_error, 0);
    assert_int_equal(probe.term_blocked, 1);
    assert_int_equal(probe.int_blocked, 1);
    assert_int_equal(probe.segv_blocked, 0);

    /* The caller's own mask is left as it was. */
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &caller_mask), 0);
    assert_int_equal(sigismember(&caller_mask, SIGTERM), 0);
    workpool_destroy(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_rejects_invalid_config),
        cmocka_unit_test(create_without_callbacks_runs_jobs),
        cmocka_unit_test(submit_runs_every_job_once),
        cmocka_unit_test(job_gets_state_from_its_worker_init),
        cmocka_unit_test(init_gets_each_worker_index_once),
        cmocka_unit_test(submit_fails_with_eagain_when_full),
        cmocka_unit_test(submit_rejects_null_function),
        cmocka_unit_test(submit_fails_with_eshutdown_after_drain),
        cmocka_unit_test(drain_runs_queued_jobs_and_rejects_new_ones),
        cmocka_unit_test(drain_twice_runs_fini_once_per_worker),
        cmocka_unit_test(destroy_without_drain_runs_queued_jobs),
        cmocka_unit_test(destroy_accepts_null),
        cmocka_unit_test(create_fails_with_init_error_and_finis_started),
        cmocka_unit_test(create_fails_when_only_worker_init_fails),
        cmocka_unit_test(worker_blocks_termination_signals),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
