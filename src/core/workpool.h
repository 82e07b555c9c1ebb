/*
 * Fixed pool of worker threads fed by one bounded job queue.
 *
 * Shortd runs blocking work here (store reads on a cache miss, readiness
 * checks) so that I/O threads never block. Each worker may own per-thread
 * state, such as a database connection, created by an init callback when the
 * thread starts and released by a fini callback when it stops.
 *
 * States: running (jobs accepted) -> draining (workpool_drain called: no new
 * jobs, queued ones still run) -> stopped (all workers joined).
 *
 * Workload: workpool_submit and workpool_queue_depth may be called from any
 * thread, including from inside a job. workpool_drain and workpool_destroy
 * are called once, by the owner, never from a worker.
 *
 * Workers start with every signal blocked except the synchronous fault
 * signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS), so the kernel
 * never delivers a process-directed signal such as SIGTERM or SIGINT to a
 * worker.
 */
#ifndef SHORTD_CORE_WORKPOOL_H
#define SHORTD_CORE_WORKPOOL_H

#include <stddef.h>

struct workpool;

/* A job. thread_state is what init returned for the worker running it. */
typedef void (*workpool_job_fn)(void *thread_state, void *arg);

struct workpool_config {
    unsigned threads;        /* worker threads, at least 1 */
    unsigned queue_capacity; /* jobs waiting at most, at least 1 */

    /*
     * Optional. Runs in each new worker before it takes jobs; returns 0 and
     * sets *thread_state, or a negative errno that makes workpool_create
     * fail with that error.
     */
    int (*init)(void *context, unsigned worker_index, void **thread_state);

    /* Optional. Runs in each worker as it stops, with its thread_state. */
    void (*fini)(void *context, void *thread_state);

    void *context; /* passed to init and fini */
};

/*
 * Starts the workers and waits until every init has run. Returns 0 and sets
 * *pool, or a negative errno: -EINVAL for a bad config, -ENOMEM, -EAGAIN when
 * a thread cannot be created, or the first error an init returned. On
 * failure the workers already started are stopped and joined, and each
 * whose init succeeded runs fini. config is copied and need not outlive
 * the call.
 */
int workpool_create(const struct workpool_config *config, struct workpool **pool);

/*
 * Queues fn(thread_state, arg) and returns 0, or fails with
 *   -EAGAIN when the queue is full: the job is not queued, the caller keeps arg;
 *   -ESHUTDOWN once draining has begun, even when the queue is also full;
 *   -EINVAL when fn is NULL.
 * Never blocks for longer than a short critical section.
 */
int workpool_submit(struct workpool *pool, workpool_job_fn fn, void *arg);

/*
 * Returns the number of jobs queued and not yet started. The value is a
 * snapshot read with one atomic load and no lock, so it may be stale by
 * the time the caller looks at it.
 */
size_t workpool_queue_depth(struct workpool *pool);

/*
 * Stops accepting jobs, runs every job already queued, then joins the
 * workers (each runs fini). No job runs after it returns. Calling it again
 * after it returned does nothing.
 */
void workpool_drain(struct workpool *pool);

/* Drains the pool if needed and frees it. pool may be NULL. */
void workpool_destroy(struct workpool *pool);

#endif
