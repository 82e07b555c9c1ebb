/*
 * Micro-benchmark of ratelimit_take in its common case: the bucket exists
 * and holds a token, as on shortd's redirect path when the redirect limit
 * is on.
 *
 * Build and run from the repository root:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -pthread -Isrc bench/micro_ratelimit.c \
 *       src/core/ratelimit.c src/core/hashtab.c src/core/hash.c \
 *       -o /tmp/micro_ratelimit -lsodium && /tmp/micro_ratelimit [takes_per_thread] [runs]
 *
 * Keys are 9 bytes, an address family byte and an IPv6 /64 prefix, as
 * shortd builds them. Each case times takes_per_thread (default 2,000,000)
 * takes per thread from 1 and 2 threads, on 1 key (every take hits one
 * bucket and one lock) and on 100,000 keys picked at random. The sharded
 * limiter (64 shards) is compared with the same buckets in one table
 * behind one global mutex (shard_bits 0), in the same run. The buckets are
 * created before the timing starts, the burst is large enough that no take
 * is denied, and the program checks afterwards that no bucket was evicted
 * and every take was allowed.
 *
 * The machine may be shared, so each case runs `runs` times (default 5)
 * and the output gives the median, with the minimum and maximum beside it.
 * Three figures per case: wall time divided by the takes of all threads
 * (throughput), wall time divided by the takes of one thread (the latency
 * each thread sees) and the threads' CPU time divided by all takes (the
 * CPU cost, which other load on the machine disturbs least). It also times
 * the two fixed parts of a take alone: hash_bytes of a 9-byte key and an
 * uncontended mutex lock and unlock. No assertion on time: the numbers
 * depend on the machine.
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ratelimit.h"

#define KEY_LEN      9
#define MANY_KEYS    100000
#define MAX_BUCKETS  (1u << 18) /* room for MANY_KEYS in every shard: no eviction */
#define SHARDED_BITS 6
#define MAX_THREADS  2
#define MAX_RUNS     31

/* Never denies within a run: a billion tokens, refilled at one per millisecond. */
static const struct ratelimit_limit bench_limit = {
    .burst = 1000000000, .refill_tokens = 1, .refill_period_ms = 1};

struct run {
    struct ratelimit *limiter;
    const unsigned char *keys;
    size_t key_count;
    size_t takes;
    uint64_t seed;
    uint64_t denied;
    double cpu_ns; /* CPU time the thread spent in its loop */
    pthread_barrier_t *start;
};

struct timing {
    double throughput_ns;
    double per_thread_ns;
    double cpu_ns;
};

static double clock_ns(clockid_t clock)
{
    struct timespec ts;

    (void)clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t next_random(uint64_t *seed)
{
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    return *seed;
}

static size_t heap_in_use(void)
{
    struct mallinfo2 info = mallinfo2();

    return info.uordblks + info.hblkhd;
}

static void *take_loop(void *arg)
{
    struct run *run = arg;
    struct ratelimit_result result;
    double cpu_begin;

    (void)pthread_barrier_wait(run->start);
    cpu_begin = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (size_t i = 0; i < run->takes; i++) {
        size_t index = run->key_count == 1 ? 0 : next_random(&run->seed) % run->key_count;

        /* The simulated clock moves one millisecond every 1024 takes. */
        if (ratelimit_take(run->limiter, run->keys + index * KEY_LEN, KEY_LEN, NULL, i >> 10,
                           &result) != 0)
            run->denied++;
    }
    run->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_begin;
    return NULL;
}

static struct timing time_takes(struct ratelimit *limiter, const unsigned char *keys,
                                size_t key_count, size_t takes, unsigned threads)
{
    pthread_t thread_ids[MAX_THREADS];
    struct run runs[MAX_THREADS];
    pthread_barrier_t start;
    double begin, elapsed, cpu = 0;
    uint64_t denied = 0;

    (void)pthread_barrier_init(&start, NULL, threads + 1);
    for (unsigned t = 0; t < threads; t++) {
        runs[t] = (struct run){.limiter = limiter,
                               .keys = keys,
                               .key_count = key_count,
                               .takes = takes,
                               .seed = 0x9e3779b97f4a7c15u * (t + 1),
                               .start = &start};
        if (pthread_create(&thread_ids[t], NULL, take_loop, &runs[t]) != 0) {
            fprintf(stderr, "micro_ratelimit: pthread_create failed\n");
            exit(1);
        }
    }

    (void)pthread_barrier_wait(&start);
    begin = clock_ns(CLOCK_MONOTONIC);
    for (unsigned t = 0; t < threads; t++) {
        (void)pthread_join(thread_ids[t], NULL);
        cpu += runs[t].cpu_ns;
        denied += runs[t].denied;
    }
    elapsed = clock_ns(CLOCK_MONOTONIC) - begin;
    (void)pthread_barrier_destroy(&start);

    if (denied != 0) {
        fprintf(stderr,
                "micro_ratelimit: %" PRIu64 " takes denied, expected none: raise the burst\n",
                denied);
        exit(1);
    }
    return (struct timing){.throughput_ns = elapsed / (double)(takes * threads),
                           .per_thread_ns = elapsed / (double)takes,
                           .cpu_ns = cpu / (double)(takes * threads)};
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Sorts values and prints the median with the range. */
static void print_stat(const char *name, double *values, unsigned runs)
{
    qsort(values, runs, sizeof(*values), compare_double);
    printf(" %s %6.1f [%5.1f-%5.1f]", name, values[runs / 2], values[0], values[runs - 1]);
}

/* Creates a limiter and a bucket for every key. */
static struct ratelimit *limiter_fill(unsigned shard_bits, const unsigned char *keys,
                                      size_t key_count)
{
    struct ratelimit_config config = {
        .limit = bench_limit, .max_buckets = MAX_BUCKETS, .shard_bits = shard_bits};
    struct ratelimit_result result;
    struct ratelimit *limiter;
    struct hash_key key;

    (void)hash_key_random(&key);
    limiter = ratelimit_create(&config, &key);
    if (limiter == NULL) {
        fprintf(stderr, "micro_ratelimit: ratelimit_create failed\n");
        exit(1);
    }
    for (size_t i = 0; i < key_count; i++) {
        if (ratelimit_take(limiter, keys + i * KEY_LEN, KEY_LEN, NULL, 0, &result) != 0) {
            fprintf(stderr, "micro_ratelimit: first take of key %zu failed\n", i);
            exit(1);
        }
    }
    return limiter;
}

static void bench_case(const char *label, unsigned shard_bits, const unsigned char *keys,
                       size_t key_count, size_t takes, unsigned threads, unsigned runs)
{
    double throughput[MAX_RUNS], per_thread[MAX_RUNS], cpu[MAX_RUNS];
    struct ratelimit_stats stats;

    for (unsigned r = 0; r < runs; r++) {
        struct ratelimit *limiter = limiter_fill(shard_bits, keys, key_count);
        struct timing timing = time_takes(limiter, keys, key_count, takes, threads);

        ratelimit_get_stats(limiter, &stats);
        if (stats.buckets != key_count || stats.evicted_idle + stats.evicted_not_full != 0 ||
            stats.allowed != key_count + (uint64_t)takes * threads) {
            fprintf(stderr,
                    "micro_ratelimit: after the run, %" PRIu64 " buckets (expected %zu), %" PRIu64
                    " evictions (expected 0), %" PRIu64 " allowed (expected %" PRIu64 ")\n",
                    stats.buckets, key_count, stats.evicted_idle + stats.evicted_not_full,
                    stats.allowed, key_count + (uint64_t)takes * threads);
            exit(1);
        }
        ratelimit_destroy(limiter);

        throughput[r] = timing.throughput_ns;
        per_thread[r] = timing.per_thread_ns;
        cpu[r] = timing.cpu_ns;
    }

    printf("%-18s %6zu key%s %u thread%s", label, key_count, key_count == 1 ? " " : "s", threads,
           threads == 1 ? " " : "s");
    print_stat("ns/take throughput", throughput, runs);
    print_stat("per thread", per_thread, runs);
    print_stat("CPU", cpu, runs);
    printf("\n");
}

static void time_fixed_parts(const unsigned char *keys, size_t count)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct hash_key key;
    uint64_t seed = 42, sum = 0;
    double begin;

    (void)hash_key_random(&key);
    begin = clock_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < count; i++)
        sum += hash_bytes(&key, keys + (next_random(&seed) % MANY_KEYS) * KEY_LEN, KEY_LEN);
    printf("%-40s %6.1f ns (checksum %" PRIu64 ")\n", "hash_bytes of a 9-byte key",
           (clock_ns(CLOCK_MONOTONIC) - begin) / (double)count, sum & 1);

    begin = clock_ns(CLOCK_MONOTONIC);
    for (size_t i = 0; i < count; i++) {
        pthread_mutex_lock(&lock);
        sum += i;
        pthread_mutex_unlock(&lock);
    }
    printf("%-40s %6.1f ns (checksum %" PRIu64 ")\n", "uncontended mutex lock and unlock",
           (clock_ns(CLOCK_MONOTONIC) - begin) / (double)count, sum & 1);
}

/* Reports the heap bytes one bucket costs, with its index share. */
static void measure_memory(const unsigned char *keys)
{
    size_t heap_before = heap_in_use();
    struct ratelimit *limiter = limiter_fill(SHARDED_BITS, keys, MANY_KEYS);

    printf("%-40s %6.1f bytes (%d-byte keys, %d shards, buckets and index)\n", "heap per bucket",
           (double)(heap_in_use() - heap_before) / MANY_KEYS, KEY_LEN, 1 << SHARDED_BITS);
    ratelimit_destroy(limiter);
}

int main(int argc, char **argv)
{
    size_t takes = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    unsigned runs = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 5;
    unsigned char *keys;

    if (takes == 0 || runs == 0 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: micro_ratelimit [takes_per_thread] [runs], runs 1 to %d\n",
                MAX_RUNS);
        return 2;
    }

    /* Family byte 6, then distinct /64 prefixes inside 2001:db8::/32. */
    keys = malloc((size_t)MANY_KEYS * KEY_LEN);
    if (keys == NULL) {
        fprintf(stderr, "micro_ratelimit: out of memory for %d keys\n", MANY_KEYS);
        return 1;
    }
    for (size_t i = 0; i < MANY_KEYS; i++) {
        uint64_t prefix = UINT64_C(0x20010db800000000) | (i * 2654435761u % 0xffffffffu);

        keys[i * KEY_LEN] = 6;
        for (int b = 0; b < 8; b++)
            keys[i * KEY_LEN + 1 + b] = (unsigned char)(prefix >> (56 - 8 * b));
    }

    printf("medians of %u runs of %zu takes per thread, [minimum-maximum]\n", runs, takes);
    time_fixed_parts(keys, takes);
    measure_memory(keys);

    for (unsigned threads = 1; threads <= MAX_THREADS; threads++) {
        bench_case("sharded (64)", SHARDED_BITS, keys, 1, takes, threads, runs);
        bench_case("one global mutex", 0, keys, 1, takes, threads, runs);
        bench_case("sharded (64)", SHARDED_BITS, keys, MANY_KEYS, takes, threads, runs);
        bench_case("one global mutex", 0, keys, MANY_KEYS, takes, threads, runs);
    }

    free(keys);
    return 0;
}
