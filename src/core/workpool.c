/*
 * Fixed pool of worker threads fed by one bounded job queue, see workpool.h.
 *
 * The queue is a ring of (fn, arg) pairs of fixed capacity behind one mutex.
 * Workers sleep on work_cond until a job arrives or draining begins. Nothing
 * else ever waits for the queue: a full ring makes workpool_submit return
 * -EAGAIN at once, so no condition variable for "not full" exists.
 *
 * Invariants, under the lock:
 *   - 0 <= count <= capacity, and the queued jobs are ring[(head + i) %
 *     capacity] for i in [0, count), oldest first;
 *   - once draining is true it never becomes false again, and no job is
 *     added to the ring after that;
 *   - a worker leaves its loop only when draining is true and count is 0,
 *     so every job accepted before draining began runs exactly once.
 *
 * States and transitions:
 *   starting --workpool_create, all inits returned 0--> running
 *   starting --an init or pthread_create failed--> stopped, pool freed
 *   running --workpool_drain sets draining--> draining
 *   draining --the last worker joined in workpool_drain--> stopped
 */
#include "core/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
    workpool_job_fn fn;
    void *arg;
};

struct worker {
    struct workpool *pool;
    unsigned index;
    pthread_t thread;
    void *thread_state; /* set by init, read only by this worker afterwards */
};

struct workpool {
    /*
     * lock protects ring, head, count, draining, inits_done and init_error.
     * It is a leaf lock: no job, init or fini runs while it is held, so a
     * job may call workpool_submit, and callers may hold their own locks
     * while they call into the pool.
     */
    pthread_mutex_t lock;
    pthread_cond_t work_cond;  /* a job was queued, or draining began */
    pthread_cond_t ready_cond; /* a worker finished its init */

    struct job *ring;
    unsigned capacity;
    unsigned head;  /* index of the oldest queued job */
    unsigned count; /* jobs queued and not yet taken by a worker */
    bool draining;

    unsigned inits_done; /* workers whose init returned, failed or not */
    int init_error;      /* first error an init returned, or 0 */

    /*
     * A copy of count for workpool_queue_depth. It is written only with the
     * lock held, right after count changes, so its modification order is the
     * order of those changes. Readers load it relaxed: the value is a
     * snapshot that may be stale as soon as it is read, no reader uses it to
     * reach memory that a writer published, and relaxed atomics still never
     * return a torn value. The copy spares the I/O threads, which may check
     * the depth on every cache miss, from waiting on the lock behind
     * submitters and workers.
     */
    atomic_size_t depth;

    struct worker *workers;
    unsigned threads;         /* workers requested */
    unsigned threads_started; /* workers whose pthread_create succeeded */
    bool joined;              /* written and read only by the owner */

    int (*init)(void *context, unsigned worker_index, void **thread_state);
    void (*fini)(void *context, void *thread_state);
    void *context;
};

/*
 * Runs queued jobs until draining begins and the ring is empty. Takes the
 * lock only to move one job out of the ring.
 */
static void run_jobs(struct workpool *pool, void *thread_state)
{
    for (;;) {
        struct job job;

        pthread_mutex_lock(&pool->lock);
        while (pool->count == 0 && !pool->draining)
            pthread_cond_wait(&pool->work_cond, &pool->lock);

        if (pool->count == 0) {
            pthread_mutex_unlock(&pool->lock);
            return;
        }

        job = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->capacity;
        pool->count--;
        atomic_store_explicit(&pool->depth, pool->count, memory_order_relaxed);
        pthread_mutex_unlock(&pool->lock);

        job.fn(thread_state, job.arg);
    }
}

static void *worker_main(void *opaque)
{
    struct worker *worker = opaque;
    struct workpool *pool = worker->pool;
    int rc = 0;

    worker->thread_state = NULL;
    if (pool->init != NULL)
        rc = pool->init(pool->context, worker->index, &worker->thread_state);

    /* Tolerate an init that returns a positive errno, as pthreads does. */
    if (rc > 0)
        rc = -rc;

    pthread_mutex_lock(&pool->lock);
    if (rc != 0 && pool->init_error == 0)
        pool->init_error = rc;
    pool->inits_done++;
    pthread_cond_signal(&pool->ready_cond);
    pthread_mutex_unlock(&pool->lock);

    /* A worker whose init failed has no state to release. */
    if (rc != 0)
        return NULL;

    run_jobs(pool, worker->thread_state);

    if (pool->fini != NULL)
        pool->fini(pool->context, worker->thread_state);
    return NULL;
}

/*
 * Builds the attributes that start each worker with every signal blocked
 * except the synchronous fault signals. The mask is set at creation, not
 * by the worker itself, so there is no moment at which a process-directed
 * SIGTERM or SIGINT could be delivered to a worker instead of the main
 * thread. SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP and SIGSYS stay
 * unblocked because POSIX leaves the result undefined when a fault raises
 * one of them while it is blocked. Linux then kills the process without
 * running any handler, which would hide sanitizer and crash reports.
 */
static int make_worker_attr(pthread_attr_t *attr)
{
    static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS};
    sigset_t blocked;
    int rc;

    rc = pthread_attr_init(attr);
    if (rc != 0)
        return -rc;

    (void)sigfillset(&blocked);
    for (size_t i = 0; i < sizeof(fault_signals) / sizeof(fault_signals[0]); i++)
        (void)sigdelset(&blocked, fault_signals[i]);

    rc = pthread_attr_setsigmask_np(attr, &blocked);
    if (rc != 0) {
        (void)pthread_attr_destroy(attr);
        return -rc;
    }
    return 0;
}

/* Stops and joins the started workers. Each worker whose init succeeded runs fini. */
static void stop_workers(struct workpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->draining = true;
    pthread_cond_broadcast(&pool->work_cond);
    pthread_mutex_unlock(&pool->lock);

    for (unsigned i = 0; i < pool->threads_started; i++)
        (void)pthread_join(pool->workers[i].thread, NULL);
    pool->joined = true;
}

static void free_pool(struct workpool *pool)
{
    (void)pthread_cond_destroy(&pool->ready_cond);
    (void)pthread_cond_destroy(&pool->work_cond);
    (void)pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool->ring);
    free(pool);
}

/* Allocates the pool and its synchronization objects but starts no thread. */
static int alloc_pool(const struct workpool_config *config, struct workpool **out)
{
    struct workpool *pool;
    int rc;

    pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return -ENOMEM;

    pool->ring = calloc(config->queue_capacity, sizeof(*pool->ring));
    pool->workers = calloc(config->threads, sizeof(*pool->workers));
    if (pool->ring == NULL || pool->workers == NULL) {
        rc = -ENOMEM;
        goto fail_alloc;
    }

    rc = -pthread_mutex_init(&pool->lock, NULL);
    if (rc != 0)
        goto fail_alloc;
    rc = -pthread_cond_init(&pool->work_cond, NULL);
    if (rc != 0)
        goto fail_mutex;
    rc = -pthread_cond_init(&pool->ready_cond, NULL);
    if (rc != 0)
        goto fail_work_cond;

    pool->capacity = config->queue_capacity;
    pool->threads = config->threads;
    pool->init = config->init;
    pool->fini = config->fini;
    pool->context = config->context;
    atomic_init(&pool->depth, 0);
    *out = pool;
    return 0;

fail_work_cond:
    (void)pthread_cond_destroy(&pool->work_cond);
fail_mutex:
    (void)pthread_mutex_destroy(&pool->lock);
fail_alloc:
    free(pool->workers);
    free(pool->ring);
    free(pool);
    return rc;
}

int workpool_create(const struct workpool_config *config, struct workpool **pool_out)
{
    struct workpool *pool = NULL;
    pthread_attr_t attr;
    int rc;

    if (config == NULL || pool_out == NULL || config->threads == 0 || config->queue_capacity == 0)
        return -EINVAL;

    rc = alloc_pool(config, &pool);
    if (rc != 0)
        return rc;

    rc = make_worker_attr(&attr);
    if (rc != 0) {
        free_pool(pool);
        return rc;
    }

    /* Start every worker first so that slow inits, such as opening a database, overlap. */
    for (unsigned i = 0; i < pool->threads; i++) {
        struct worker *worker = &pool->workers[i];

        worker->pool = pool;
        worker->index = i;
        rc = -pthread_create(&worker->thread, &attr, worker_main, worker);
        if (rc != 0)
            break;
        pool->threads_started++;
    }
    (void)pthread_attr_destroy(&attr);

    pthread_mutex_lock(&pool->lock);
    while (pool->inits_done < pool->threads_started)
        pthread_cond_wait(&pool->ready_cond, &pool->lock);
    if (rc == 0)
        rc = pool->init_error;
    pthread_mutex_unlock(&pool->lock);

    if (rc != 0) {
        stop_workers(pool);
        free_pool(pool);
        return rc;
    }

    *pool_out = pool;
    return 0;
}

int workpool_submit(struct workpool *pool, workpool_job_fn fn, void *arg)
{
    unsigned tail;

    if (fn == NULL)
        return -EINVAL;

    pthread_mutex_lock(&pool->lock);

    /* Draining is checked first so that a full queue during drain still reports -ESHUTDOWN. */
    if (pool->draining) {
        pthread_mutex_unlock(&pool->lock);
        return -ESHUTDOWN;
    }
    if (pool->count == pool->capacity) {
        pthread_mutex_unlock(&pool->lock);
        return -EAGAIN;
    }

    tail = (pool->head + pool->count) % pool->capacity;
    pool->ring[tail].fn = fn;
    pool->ring[tail].arg = arg;
    pool->count++;
    atomic_store_explicit(&pool->depth, pool->count, memory_order_relaxed);
    pthread_mutex_unlock(&pool->lock);

    /*
     * Signalling after the unlock spares the woken worker from blocking on
     * the lock at once. The pool outlives this call because the owner may not
     * destroy it while any thread can still submit.
     */
    pthread_cond_signal(&pool->work_cond);
    return 0;
}

size_t workpool_queue_depth(struct workpool *pool)
{
    return atomic_load_explicit(&pool->depth, memory_order_relaxed);
}

void workpool_drain(struct workpool *pool)
{
    if (pool->joined)
        return;

    stop_workers(pool);
}

void workpool_destroy(struct workpool *pool)
{
    if (pool == NULL)
        return;

    workpool_drain(pool);
    free_pool(pool);
}
