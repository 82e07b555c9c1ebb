/*
 * Stress test of the sharded map for ThreadSanitizer: several threads mix
 * every operation on keys of their own, on shared counters and on a shared
 * pool of contested keys, then the final state is checked exactly.
 *
 * Each thread owns a range of keys and remembers what it stored there, so it
 * can verify every result. The shared counters are incremented through
 * shardmap_update only, so their final sum must equal the number of
 * increments. Exits 0 on success; prints each failed check and exits 1
 * otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/shardmap.h"

#define THREADS      4
#define OWN_KEYS     1000
#define COUNTERS     4
#define POOL_KEYS    64
#define ITERATIONS   200000
#define SHARD_BITS   3
#define COUNTER_STEP 3

static atomic_int failures;

#define CHECK_EQ(expected, actual)                                                                 \
    do {                                                                                           \
        long long expected_ = (long long)(expected);                                               \
        long long actual_ = (long long)(actual);                                                   \
        if (expected_ != actual_) {                                                                \
            fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #actual,   \
                    expected_, actual_);                                                           \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

#define CHECK(condition)                                                                           \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition);          \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

struct worker {
    pthread_t thread;
    unsigned id;
    struct shardmap *map;
    uint64_t seed;
    uintptr_t stored[OWN_KEYS]; /* value this thread stored under its key, 0 when absent */
    uint64_t increments;        /* counter increments this thread made */
};

static uint32_t next_random(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*seed >> 33);
}

static size_t own_key(char *buffer, size_t size, unsigned thread, unsigned index)
{
    return (size_t)snprintf(buffer, size, "own-%u-%u", thread, index);
}

/* Owned values are odd, so never NULL, and random, so a mix-up shows. */
static uintptr_t own_value(uint32_t random)
{
    return ((uintptr_t)random << 1) | 1;
}

static void *add_step(void *value, void *arg)
{
    (void)arg;
    return (void *)((uintptr_t)value + COUNTER_STEP);
}

static void *replace_with(void *value, void *arg)
{
    return arg;
}

static void *drop_value(void *value, void *arg)
{
    return NULL;
}

static void check_pool_value(void *value, void *arg)
{
    uintptr_t v = (uintptr_t)value;

    CHECK(v >= 1);
    CHECK(v <= THREADS);
}

static void own_step(struct worker *w, uint32_t choice, unsigned index)
{
    char key[48];
    size_t len = own_key(key, sizeof(key), w->id, index);
    uintptr_t stored = w->stored[index];
    uintptr_t fresh = own_value(next_random(&w->seed));
    void *value = NULL;
    int rc;

    switch (choice % 5) {
    case 0:
        rc = shardmap_insert(w->map, key, len, (void *)fresh);
        CHECK_EQ(stored ? -EEXIST : 0, rc);
        if (rc == 0)
            w->stored[index] = fresh;
        break;
    case 1:
        rc = shardmap_get(w->map, key, len, NULL, NULL, &value);
        CHECK_EQ(stored ? 0 : -ENOENT, rc);
        if (rc == 0)
            CHECK_EQ(stored, (uintptr_t)value);
        break;
    case 2:
        rc = shardmap_update(w->map, key, len, replace_with, (void *)fresh);
        CHECK_EQ(stored ? 0 : 1, rc);
        w->stored[index] = fresh;
        break;
    case 3:
        rc = shardmap_remove(w->map, key, len, &value);
        CHECK_EQ(stored ? 0 : -ENOENT, rc);
        if (rc == 0)
            CHECK_EQ(stored, (uintptr_t)value);
        w->stored[index] = 0;
        break;
    default:
        rc = shardmap_update(w->map, key, len, drop_value, NULL);
        CHECK_EQ(stored ? 0 : 1, rc);
        w->stored[index] = 0;
        break;
    }
}

static void shared_step(struct worker *w, uint32_t choice)
{
    char key[32];
    size_t len;

    if (choice % 2 == 0) {
        len = (size_t)snprintf(key, sizeof(key), "counter-%u", next_random(&w->seed) % COUNTERS);
        int rc = shardmap_update(w->map, key, len, add_step, NULL);
        CHECK(rc == 0 || rc == 1);
        w->increments++;
        return;
    }

    /* Contested keys: any result is legal, but the value must be a thread id. */
    len = (size_t)snprintf(key, sizeof(key), "pool-%u", next_random(&w->seed) % POOL_KEYS);
    switch (next_random(&w->seed) % 3) {
    case 0: {
        int rc = shardmap_insert(w->map, key, len, (void *)(uintptr_t)(w->id + 1));
        CHECK(rc == 0 || rc == -EEXIST);
        break;
    }
    case 1: {
        int rc = shardmap_get(w->map, key, len, check_pool_value, NULL, NULL);
        CHECK(rc == 0 || rc == -ENOENT);
        break;
    }
    default: {
        int rc = shardmap_remove(w->map, key, len, NULL);
        CHECK(rc == 0 || rc == -ENOENT);
        break;
    }
    }
}

static void count_entry(const void *key, size_t key_len, void *value, void *arg)
{
    size_t *entries = arg;

    CHECK(value != NULL);
    (*entries)++;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;

    for (unsigned i = 0; i < ITERATIONS; i++) {
        uint32_t choice = next_random(&w->seed);

        if (choice % 1000 == 0) {
            size_t entries = 0;

            /* A full walk and a count run beside the writers of other threads. */
            shardmap_foreach(w->map, count_entry, &entries);
            CHECK(entries <= THREADS * OWN_KEYS + COUNTERS + POOL_KEYS);
            CHECK(shardmap_count(w->map) <= THREADS * OWN_KEYS + COUNTERS + POOL_KEYS);
        } else if (choice % 4 == 0) {
            shared_step(w, choice >> 8);
        } else {
            own_step(w, choice >> 8, next_random(&w->seed) % OWN_KEYS);
        }
    }
    return NULL;
}

struct final_totals {
    struct worker *workers;
    uint64_t counter_sum;
    size_t own_entries;
    size_t entries;
};

static void check_final_entry(const void *key, size_t key_len, void *value, void *arg)
{
    struct final_totals *totals = arg;
    unsigned thread, index;
    char text[SHARDMAP_KEY_MAX + 1];

    memcpy(text, key, key_len);
    text[key_len] = '\0';
    totals->entries++;

    if (strncmp(text, "counter-", 8) == 0) {
        totals->counter_sum += (uintptr_t)value;
    } else if (sscanf(text, "own-%u-%u", &thread, &index) == 2) {
        CHECK(thread < THREADS);
        CHECK(index < OWN_KEYS);
        if (thread < THREADS && index < OWN_KEYS)
            CHECK_EQ(totals->workers[thread].stored[index], (uintptr_t)value);
        totals->own_entries++;
    } else {
        CHECK(strncmp(text, "pool-", 5) == 0);
    }
}

int main(void)
{
    static struct worker workers[THREADS];
    struct hash_key key;
    struct shardmap *map;
    struct final_totals totals = {.workers = workers};
    uint64_t increments = 0;
    size_t expected_own = 0;

    memset(&key, 0x5a, sizeof(key));
    map = shardmap_create(SHARD_BITS, &key);
    if (map == NULL) {
        fprintf(stderr, "shardmap_create failed\n");
        return 1;
    }

    for (unsigned i = 0; i < THREADS; i++) {
        workers[i].id = i;
        workers[i].map = map;
        workers[i].seed = 1000 + i;
        if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (unsigned i = 0; i < THREADS; i++)
        (void)pthread_join(workers[i].thread, NULL);

    /* Every own key must hold exactly what its owner last stored. */
    shardmap_foreach(map, check_final_entry, &totals);
    for (unsigned i = 0; i < THREADS; i++) {
        increments += workers[i].increments;
        for (unsigned k = 0; k < OWN_KEYS; k++)
            expected_own += workers[i].stored[k] != 0;
    }
    CHECK_EQ(increments * COUNTER_STEP, totals.counter_sum);
    CHECK_EQ(expected_own, totals.own_entries);
    CHECK_EQ(totals.entries, shardmap_count(map));

    shardmap_destroy(map, NULL);

    if (atomic_load(&failures) != 0) {
        fprintf(stderr, "stress_shardmap: %d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("stress_shardmap: %d threads x %d operations, %" PRIu64 " counter increments, ok\n",
           THREADS, ITERATIONS, increments);
    return 0;
}
