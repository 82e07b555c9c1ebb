/*
 * Stress test of the bounded cache for ThreadSanitizer: several threads put,
 * get, remove, fill and expire on a cache small enough that eviction runs
 * all the time, then the final state is checked exactly.
 *
 * A shared array of atomic words plays the store. Each key has one
 * writer thread, which updates the word first and the cache second, as
 * shortd's writer does. Any thread may fill a key with the epoch protocol:
 * cache_epoch, read the word, cache_fill. When the threads have stopped,
 * every entry left in the cache must match its word, so a fill that lost a
 * race with a writer and still landed shows up as a stale entry.
 *
 * Every value encodes its key and its word and has a length and padding
 * derived from both, so a get also checks that it saw one whole value.
 *
 * Exits 0 on success; prints each failed check and exits 1 otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"

#define THREADS    4
#define KEYS       512
#define ITERATIONS 150000
#define SHARD_BITS 4
#define CAPACITY   (24 * 1024)

/* Word bit that marks a deleted link, for which the cache keeps a negative entry. */
#define DELETED (UINT64_C(1) << 63)

#define VALUE_HEADER  (sizeof(uint32_t) + sizeof(uint64_t))
#define VALUE_MAX_PAD 200

static atomic_int failures;
static _Atomic uint64_t store_words[KEYS]; /* the stand-in store: version, DELETED when removed */
static _Atomic uint64_t clock_ms;

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

struct value {
    unsigned char bytes[VALUE_HEADER + VALUE_MAX_PAD];
    size_t len;
};

struct worker {
    pthread_t thread;
    unsigned id;
    struct cache *cache;
    uint64_t seed;
    uint64_t gets;
};

static uint32_t next_random(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*seed >> 33);
}

static size_t key_text(char *buffer, size_t size, unsigned key)
{
    return (size_t)snprintf(buffer, size, "key-%u", key);
}

static size_t pad_len(unsigned key, uint64_t word)
{
    return (size_t)((key * 31u + word * 7u) % VALUE_MAX_PAD);
}

static void encode(struct value *value, unsigned key, uint64_t word)
{
    uint32_t key32 = key;
    size_t pad = pad_len(key, word);

    memcpy(value->bytes, &key32, sizeof(key32));
    memcpy(value->bytes + sizeof(key32), &word, sizeof(word));
    memset(value->bytes + VALUE_HEADER, (int)((key + word) & 0xff), pad);
    value->len = VALUE_HEADER + pad;
}

struct decoded {
    unsigned key;
    uint64_t word;
    bool valid;
};

/* Checks that bytes are one whole value as encode wrote it. */
static void decode(const void *bytes, size_t len, struct decoded *out)
{
    const unsigned char *p = bytes;
    uint32_t key32;

    out->valid = false;
    if (len < VALUE_HEADER)
        return;

    memcpy(&key32, p, sizeof(key32));
    memcpy(&out->word, p + sizeof(key32), sizeof(out->word));
    out->key = key32;
    if (key32 >= KEYS || len != VALUE_HEADER + pad_len(key32, out->word))
        return;

    for (size_t i = VALUE_HEADER; i < len; i++) {
        if (p[i] != (unsigned char)((key32 + out->word) & 0xff))
            return;
    }
    out->valid = true;
}

static void decode_visit(const void *bytes, size_t len, void *arg)
{
    decode(bytes, len, arg);
}

static uint64_t tick(void)
{
    return atomic_fetch_add(&clock_ms, 1) + 1;
}

/* Negative entries live briefly; links mostly have no time to live. */
static uint32_t ttl_for(uint64_t word, uint32_t random)
{
    if (word == 0 || (word & DELETED))
        return 50;
    return random % 4 == 0 ? 200 : 0;
}

static void do_get(struct worker *w, unsigned key)
{
    char text[32];
    size_t len = key_text(text, sizeof(text), key);
    struct decoded seen = {0};
    int rc = cache_get(w->cache, text, len, tick(), decode_visit, &seen);

    w->gets++;
    CHECK(rc == 0 || rc == -ENOENT);
    if (rc == 0) {
        CHECK(seen.valid);
        CHECK_EQ(key, seen.key);

        /*
         * Only this thread changes the words of its own keys, so for them
         * the cache may hold nothing but the current word: an older one
         * came from a stale fill.
         */
        if (key % THREADS == w->id)
            CHECK_EQ(atomic_load(&store_words[key]), seen.word);
    }
}

/* The writer of key: store first, cache second. */
static void do_write(struct worker *w, unsigned key)
{
    char text[32];
    size_t len = key_text(text, sizeof(text), key);
    uint64_t old = atomic_load(&store_words[key]);
    uint64_t version = (old & ~DELETED) + 1;
    struct value value;
    int rc;

    if (next_random(&w->seed) % 3 == 0) {
        atomic_store(&store_words[key], version | DELETED);
        rc = cache_remove(w->cache, text, len);
        CHECK(rc == 0 || rc == -ENOENT);
        return;
    }

    atomic_store(&store_words[key], version);
    encode(&value, key, version);
    rc = cache_put(w->cache, text, len, value.bytes, value.len,
                   ttl_for(version, next_random(&w->seed)), tick());
    CHECK_EQ(0, rc);
}

/* A reader that missed: take the epoch, read the store, fill. */
static void do_fill(struct worker *w, unsigned key)
{
    char text[32];
    size_t len = key_text(text, sizeof(text), key);
    uint64_t epoch = cache_epoch(w->cache, text, len);
    uint64_t word = atomic_load(&store_words[key]);
    struct value value;
    int rc;

    /* A real store read takes time; yielding widens the window for a racing writer. */
    if (next_random(&w->seed) % 4 == 0)
        sched_yield();

    encode(&value, key, word);
    rc = cache_fill(w->cache, text, len, value.bytes, value.len,
                    ttl_for(word, next_random(&w->seed)), tick(), epoch);
    CHECK(rc == 0 || rc == -ESTALE);
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;

    for (unsigned i = 0; i < ITERATIONS; i++) {
        uint32_t choice = next_random(&w->seed) % 100;
        unsigned key = next_random(&w->seed) % KEYS;

        if (choice < 50) {
            do_get(w, key);
        } else if (choice < 75) {
            do_fill(w, key);
        } else if (choice < 99) {
            /* Keys with key % THREADS == id belong to this thread. */
            do_write(w, key - key % THREADS + w->id);
        } else {
            (void)cache_expire(w->cache, tick());
        }
    }
    return NULL;
}

int main(void)
{
    static struct worker workers[THREADS];
    struct cache_config config = {.capacity_bytes = CAPACITY, .shard_bits = SHARD_BITS};
    struct cache_stats before, after;
    struct hash_key hash_key;
    struct cache *cache;
    uint64_t gets = 0, found = 0, charges = 0;
    uint64_t now;

    memset(&hash_key, 0xa5, sizeof(hash_key));
    cache = cache_create(&config, &hash_key);
    if (cache == NULL) {
        fprintf(stderr, "cache_create failed\n");
        return 1;
    }

    for (unsigned i = 0; i < THREADS; i++) {
        workers[i].id = i;
        workers[i].cache = cache;
        workers[i].seed = 7 + i;
        if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (unsigned i = 0; i < THREADS; i++) {
        (void)pthread_join(workers[i].thread, NULL);
        gets += workers[i].gets;
    }

    /* Drop what has ended first, so the gets below drop nothing. */
    now = atomic_load(&clock_ms);
    (void)cache_expire(cache, now);
    cache_get_stats(cache, &before);
    CHECK_EQ(gets, before.hits + before.misses);
    CHECK(before.bytes <= CAPACITY);
    CHECK(before.evictions > 0);

    for (unsigned key = 0; key < KEYS; key++) {
        char text[32];
        size_t len = key_text(text, sizeof(text), key);
        struct decoded seen = {0};

        if (cache_get(cache, text, len, now, decode_visit, &seen) != 0)
            continue;

        /* No entry may be older than the store once every writer is done. */
        CHECK(seen.valid);
        CHECK_EQ(atomic_load(&store_words[key]), seen.word);
        charges += cache_entry_charge(len, VALUE_HEADER + pad_len(key, seen.word));
        found++;
    }

    cache_get_stats(cache, &after);
    CHECK_EQ(found, before.entries);
    CHECK_EQ(charges, before.bytes);
    CHECK_EQ(before.hits + found, after.hits);
    CHECK_EQ(before.expired, after.expired);

    cache_destroy(cache);

    if (atomic_load(&failures) != 0) {
        fprintf(stderr, "stress_cache: %d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("stress_cache: %d threads x %d operations, %" PRIu64 " hits, %" PRIu64
           " misses, %" PRIu64 " evictions, %" PRIu64 " expired, ok\n",
           THREADS, ITERATIONS, before.hits, before.misses, before.evictions, before.expired);
    return 0;
}
