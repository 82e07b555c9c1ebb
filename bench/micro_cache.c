/*
 * Micro-benchmark of cache_get, the lookup on shortd's redirect path.
 *
 * Build and run from the repository root:
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -pthread -Isrc bench/micro_cache.c \
 *       src/core/cache.c src/core/hashtab.c src/core/hash.c \
 *       -o /tmp/micro_cache -lsodium && /tmp/micro_cache [entries] [gets_per_thread]
 *
 * It fills a cache with entries (default 1,000,000) of 7-byte keys, like
 * shortd's generated codes, and 64-byte values, then times random hits from
 * 1 and 2 threads. The sharded cache (64 shards) is compared with the same
 * table behind one global mutex (shard_bits 0). It also times hash_bytes
 * alone, because the keyed hash is a fixed part of every lookup, and
 * reports the memory each entry costs beyond its key and value bytes, taken
 * from glibc's mallinfo2 before and after the fill.
 *
 * Output: ns per get as wall time divided by all gets of all threads
 * (throughput), as wall time divided by the gets of one thread (the latency
 * of each thread), and as the threads' CPU time divided by all gets (the
 * CPU cost, which other load on the machine disturbs least). No assertion:
 * the numbers depend on the machine.
 */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cache.h"

#define KEY_LEN      7
#define VALUE_LEN    64
#define SHARDED_BITS 6

struct run {
    struct cache *cache;
    const char *keys;
    size_t entries;
    size_t gets;
    uint64_t seed;
    uint64_t checksum;
    double cpu_ns; /* CPU time the thread spent in its loop */
    pthread_barrier_t *start;
};

static double clock_ns(clockid_t clock)
{
    struct timespec ts;

    (void)clock_gettime(clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
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

/* Copies the value out, as the redirect path copies the record it needs. */
static void copy_value(const void *value, size_t value_len, void *arg)
{
    uint64_t *checksum = arg;
    unsigned char buffer[VALUE_LEN];

    memcpy(buffer, value, value_len < sizeof(buffer) ? value_len : sizeof(buffer));
    *checksum += buffer[0];
}

static void *get_loop(void *arg)
{
    struct run *run = arg;
    double cpu_begin;

    (void)pthread_barrier_wait(run->start);
    cpu_begin = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (size_t i = 0; i < run->gets; i++) {
        size_t index = next_random(&run->seed) % run->entries;

        if (cache_get(run->cache, run->keys + index * KEY_LEN, KEY_LEN, 1, copy_value,
                      &run->checksum) != 0) {
            fprintf(stderr, "micro_cache: key %zu missing\n", index);
            exit(1);
        }
    }
    run->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_begin;
    return NULL;
}

static void time_gets(const char *label, struct cache *cache, const char *keys, size_t entries,
                      size_t gets, unsigned threads)
{
    pthread_t thread_ids[2];
    struct run runs[2];
    pthread_barrier_t start;
    double begin, elapsed, cpu = 0;

    (void)pthread_barrier_init(&start, NULL, threads + 1);
    for (unsigned t = 0; t < threads; t++) {
        runs[t] = (struct run){.cache = cache,
                               .keys = keys,
                               .entries = entries,
                               .gets = gets,
                               .seed = 0x9e3779b97f4a7c15u * (t + 1),
                               .start = &start};
        if (pthread_create(&thread_ids[t], NULL, get_loop, &runs[t]) != 0) {
            fprintf(stderr, "micro_cache: pthread_create failed\n");
            exit(1);
        }
    }

    (void)pthread_barrier_wait(&start);
    begin = now_ns();
    for (unsigned t = 0; t < threads; t++) {
        (void)pthread_join(thread_ids[t], NULL);
        cpu += runs[t].cpu_ns;
    }
    elapsed = now_ns() - begin;
    (void)pthread_barrier_destroy(&start);

    printf("%-20s %u thread%s %7.1f ns/get throughput %7.1f ns/get per thread %7.1f CPU ns/get\n",
           label, threads, threads == 1 ? " " : "s", elapsed / (double)(gets * threads),
           elapsed / (double)gets, cpu / (double)(gets * threads));
}

static struct cache *fill(unsigned shard_bits, const char *keys, size_t entries)
{
    struct cache_config config = {.capacity_bytes = (size_t)entries * 512,
                                  .shard_bits = shard_bits};
    struct hash_key key;
    unsigned char value[VALUE_LEN];
    struct cache_stats stats;
    struct cache *cache;
    size_t heap_before;

    memset(value, 'v', sizeof(value));
    (void)hash_key_random(&key);

    heap_before = heap_in_use();
    cache = cache_create(&config, &key);
    if (cache == NULL) {
        fprintf(stderr, "micro_cache: cache_create failed\n");
        exit(1);
    }
    for (size_t i = 0; i < entries; i++) {
        if (cache_put(cache, keys + i * KEY_LEN, KEY_LEN, value, sizeof(value), 0, 0) != 0) {
            fprintf(stderr, "micro_cache: cache_put of entry %zu failed\n", i);
            exit(1);
        }
    }

    cache_get_stats(cache, &stats);
    if (stats.entries != entries || stats.evictions != 0) {
        fprintf(stderr, "micro_cache: %" PRIu64 " entries and %" PRIu64 " evictions after fill\n",
                stats.entries, stats.evictions);
        exit(1);
    }
    printf("shard_bits %u: %zu entries, heap %.1f bytes/entry beyond key and value, "
           "charge %.1f bytes/entry beyond key and value\n",
           shard_bits, entries,
           (double)(heap_in_use() - heap_before) / (double)entries - KEY_LEN - VALUE_LEN,
           (double)stats.bytes / (double)entries - KEY_LEN - VALUE_LEN);
    return cache;
}

static void time_hash(const char *keys, size_t entries, size_t count)
{
    struct hash_key key;
    uint64_t seed = 42, sum = 0;
    double begin;

    (void)hash_key_random(&key);
    begin = now_ns();
    for (size_t i = 0; i < count; i++)
        sum += hash_bytes(&key, keys + (next_random(&seed) % entries) * KEY_LEN, KEY_LEN);
    printf("%-28s %7.1f ns/hash (checksum %" PRIu64 ")\n", "hash_bytes of a 7-byte key",
           (now_ns() - begin) / (double)count, sum & 1);
}

int main(int argc, char **argv)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t entries = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    size_t gets = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000000;
    struct cache *cache;
    char *keys;

    if (entries == 0 || gets == 0) {
        fprintf(stderr, "usage: micro_cache [entries] [gets_per_thread], both above 0\n");
        return 2;
    }

    /*
     * Distinct base-62 codes: i times a multiplier coprime to 62^7, modulo
     * 62^7, written in base 62.
     */
    keys = malloc(entries * KEY_LEN);
    if (keys == NULL) {
        fprintf(stderr, "micro_cache: out of memory for %zu keys\n", entries);
        return 1;
    }
    for (size_t i = 0; i < entries; i++) {
        uint64_t n = (uint64_t)i * 2654435761u % 3521614606208u; /* 62^7 */

        for (int d = 0; d < KEY_LEN; d++) {
            keys[i * KEY_LEN + d] = digits[n % 62];
            n /= 62;
        }
    }

    time_hash(keys, entries, gets);

    cache = fill(SHARDED_BITS, keys, entries);
    time_gets("sharded (64 shards)", cache, keys, entries, gets, 1);
    time_gets("sharded (64 shards)", cache, keys, entries, gets, 2);
    cache_destroy(cache);

    cache = fill(0, keys, entries);
    time_gets("one global mutex", cache, keys, entries, gets, 1);
    time_gets("one global mutex", cache, keys, entries, gets, 2);
    cache_destroy(cache);

    free(keys);
    return 0;
}
