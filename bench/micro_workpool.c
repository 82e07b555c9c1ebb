/*
 * Micro-benchmark of core/workpool and core/codegen.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -D_GNU_SOURCE -pthread -Isrc -O2 src/core/workpool.c \
 *     src/core/codegen.c bench/micro_workpool.c -o /tmp/micro_workpool \
 *     -lsodium && /tmp/micro_workpool
 *
 * Workpool: jobs per second for a job that only increments an atomic
 * counter, with 1 or 2 workers and 1 or 2 submitter threads. Submitters
 * retry with sched_yield on -EAGAIN. The clock runs from the first submit
 * until workpool_drain returns, so it includes the time to run every job.
 * Each configuration runs REPEATS times and the best run is printed.
 *
 * Codegen: nanoseconds per codegen_encode and per codegen_decode over
 * consecutive ids, for 4, 7 and 10 digits.
 *
 * Results depend on the core count and on what else the machine runs;
 * record them with the machine's description.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/codegen.h"
#include "core/workpool.h"

#define JOBS_PER_RUN   2000000
#define QUEUE_CAPACITY 1024
#define REPEATS        3
#define ENCODES        2000000

static atomic_ulong jobs_run;

struct submitter {
    struct workpool *pool;
    unsigned long jobs;
    unsigned long full_retries;
};

static double now_seconds(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tiny_job(void *thread_state, void *arg)
{
    atomic_fetch_add_explicit(&jobs_run, 1, memory_order_relaxed);
}

static void *submitter_main(void *opaque)
{
    struct submitter *submitter = opaque;

    for (unsigned long i = 0; i < submitter->jobs; i++) {
        int rc;

        while ((rc = workpool_submit(submitter->pool, tiny_job, NULL)) == -EAGAIN) {
            submitter->full_retries++;
            sched_yield();
        }
        if (rc != 0) {
            fprintf(stderr, "micro_workpool: submit failed: %s\n", strerror(-rc));
            exit(1);
        }
    }
    return NULL;
}

/* Returns jobs per second for one run, and stores the -EAGAIN retries. */
static double run_pool_once(unsigned workers, unsigned submitter_count, unsigned long *retries)
{
    struct workpool_config config = {.threads = workers, .queue_capacity = QUEUE_CAPACITY};
    struct submitter submitters[2];
    pthread_t threads[2];
    struct workpool *pool;
    double start;
    double elapsed;
    int rc;

    rc = workpool_create(&config, &pool);
    if (rc != 0) {
        fprintf(stderr, "micro_workpool: workpool_create failed: %s\n", strerror(-rc));
        exit(1);
    }
    atomic_store(&jobs_run, 0);

    start = now_seconds();
    for (unsigned i = 0; i < submitter_count; i++) {
        submitters[i] = (struct submitter){.pool = pool, .jobs = JOBS_PER_RUN / submitter_count};
        rc = pthread_create(&threads[i], NULL, submitter_main, &submitters[i]);
        if (rc != 0) {
            fprintf(stderr, "micro_workpool: pthread_create failed: %s\n", strerror(rc));
            exit(1);
        }
    }
    for (unsigned i = 0; i < submitter_count; i++)
        (void)pthread_join(threads[i], NULL);
    workpool_drain(pool);
    elapsed = now_seconds() - start;

    if (atomic_load(&jobs_run) != JOBS_PER_RUN) {
        fprintf(stderr, "micro_workpool: %lu jobs ran, expected %d\n", atomic_load(&jobs_run),
                JOBS_PER_RUN);
        exit(1);
    }

    *retries = 0;
    for (unsigned i = 0; i < submitter_count; i++)
        *retries += submitters[i].full_retries;
    workpool_destroy(pool);
    return JOBS_PER_RUN / elapsed;
}

static void bench_pool(void)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        for (unsigned submitter_count = 1; submitter_count <= 2; submitter_count++) {
            double best = 0;
            unsigned long best_retries = 0;

            for (int i = 0; i < REPEATS; i++) {
                unsigned long retries;
                double rate = run_pool_once(workers, submitter_count, &retries);

                if (rate > best) {
                    best = rate;
                    best_retries = retries;
                }
            }
            printf("workpool: %u worker(s), %u submitter(s): %.2f M jobs/s "
                   "(%lu -EAGAIN retries in the best run)\n",
                   workers, submitter_count, best / 1e6, best_retries);
        }
    }
}

static void bench_codegen(void)
{
    static const uint8_t key[CODEGEN_KEY_BYTES] = {
        0x3c, 0x91, 0x0e, 0x57, 0xa2, 0x6b, 0xd4, 0x18,
        0x7f, 0xe0, 0x25, 0xc9, 0x43, 0xb6, 0x8a, 0x01,
    };
    static const unsigned lengths[] = {4, 7, 10};

    for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
        struct codegen g;
        char code[CODEGEN_LENGTH_MAX + 1];
        unsigned long checksum = 0;
        uint64_t id;
        double start;
        double encode_ns;
        double decode_ns;

        if (codegen_init(&g, key, lengths[l]) != 0) {
            fprintf(stderr, "micro_workpool: codegen_init failed\n");
            exit(1);
        }

        start = now_seconds();
        for (uint64_t i = 0; i < ENCODES; i++) {
            (void)codegen_encode(&g, i, code);
            checksum += (unsigned char)code[0];
        }
        encode_ns = (now_seconds() - start) * 1e9 / ENCODES;

        start = now_seconds();
        for (uint64_t i = 0; i < ENCODES; i++) {
            code[0] = "0123456789"[i % 10];
            (void)codegen_decode(&g, code, g.length, &id);
            checksum += id & 1;
        }
        decode_ns = (now_seconds() - start) * 1e9 / ENCODES;

        printf("codegen: length %u: %.0f ns per encode, %.0f ns per decode (checksum %lu)\n",
               lengths[l], encode_ns, decode_ns, checksum);
    }
}

int main(void)
{
    printf("online cores: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    bench_pool();
    bench_codegen();
    return 0;
}
