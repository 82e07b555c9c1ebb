/* Unit tests for the bounded cache (src/core/cache.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/cache.h"

static const struct hash_key test_key = {{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6}};

struct captured {
    unsigned char bytes[4096];
    size_t len;
    int calls;
};

static void capture(const void *value, size_t value_len, void *arg)
{
    struct captured *out = arg;

    assert_true(value_len <= sizeof(out->bytes));
    if (value_len > 0)
        memcpy(out->bytes, value, value_len);
    out->len = value_len;
    out->calls++;
}

static struct cache *cache_new(size_t capacity, unsigned shard_bits)
{
    struct cache_config config = {.capacity_bytes = capacity, .shard_bits = shard_bits};
    struct cache *cache = cache_create(&config, &test_key);

    assert_non_null(cache);
    return cache;
}

static struct cache_stats stats_of(struct cache *cache)
{
    struct cache_stats stats;

    cache_get_stats(cache, &stats);
    return stats;
}

static bool present(struct cache *cache, const char *key, uint64_t now_ms)
{
    return cache_get(cache, key, strlen(key), now_ms, NULL, NULL) == 0;
}

static int put_str(struct cache *cache, const char *key, const char *value, uint32_t ttl_ms,
                   uint64_t now_ms)
{
    return cache_put(cache, key, strlen(key), value, strlen(value), ttl_ms, now_ms);
}

static void test_create_rejects_bad_config(void **state)
{
    struct cache_config config = {.capacity_bytes = 1 << 20, .shard_bits = 13};

    assert_null(cache_create(&config, &test_key));

    /* Each of the 16 shards must hold at least one empty entry. */
    config.shard_bits = 4;
    config.capacity_bytes = 16 * cache_entry_charge(0, 0) - 1;
    assert_null(cache_create(&config, &test_key));

    config.capacity_bytes = 16 * cache_entry_charge(0, 0);
    struct cache *cache = cache_create(&config, &test_key);
    assert_non_null(cache);
    cache_destroy(cache);
}

static void test_entry_charge_formula(void **state)
{
    /* 10-byte header + key + value + 8-byte expiry + 8-byte chunk header, rounded to 16, + 16. */
    assert_int_equal(cache_entry_charge(0, 0), 32 + 16);
    assert_int_equal(cache_entry_charge(7, 60), 96 + 16);
    assert_int_equal(cache_entry_charge(7, 63), 96 + 16);
    assert_int_equal(cache_entry_charge(7, 64), 112 + 16);
    assert_int_equal(cache_entry_charge(255, 1000), 1296 + 16);
    assert_int_equal(cache_entry_charge(0, SIZE_MAX), SIZE_MAX);
}

static void test_get_hit_returns_value(void **state)
{
    struct cache *cache = cache_new(1 << 20, 2);
    struct captured out = {0};

    assert_int_equal(put_str(cache, "abc", "https://example.org/", 0, 1), 0);
    assert_int_equal(cache_get(cache, "abc", 3, 2, capture, &out), 0);
    assert_int_equal(out.calls, 1);
    assert_int_equal(out.len, 20);
    assert_memory_equal(out.bytes, "https://example.org/", 20);
    cache_destroy(cache);
}

static void test_get_miss_skips_visit(void **state)
{
    struct cache *cache = cache_new(1 << 20, 2);
    struct captured out = {0};

    assert_int_equal(cache_get(cache, "abc", 3, 1, capture, &out), -ENOENT);
    assert_int_equal(out.calls, 0);
    cache_destroy(cache);
}

static void test_empty_value(void **state)
{
    struct cache *cache = cache_new(1 << 20, 1);
    struct captured out = {.len = 99};

    assert_int_equal(cache_put(cache, "k", 1, NULL, 0, 0, 1), 0);
    assert_int_equal(cache_get(cache, "k", 1, 1, capture, &out), 0);
    assert_int_equal(out.calls, 1);
    assert_int_equal(out.len, 0);
    cache_destroy(cache);
}

static void test_keys_with_nul_bytes(void **state)
{
    struct cache *cache = cache_new(1 << 20, 2);
    struct captured out = {0};

    assert_int_equal(cache_put(cache, "a\0b", 3, "1", 1, 0, 1), 0);
    assert_int_equal(cache_put(cache, "a\0c", 3, "2", 1, 0, 1), 0);
    assert_int_equal(cache_put(cache, "a", 1, "3", 1, 0, 1), 0);

    assert_int_equal(cache_get(cache, "a\0b", 3, 1, capture, &out), 0);
    assert_memory_equal(out.bytes, "1", 1);
    assert_int_equal(cache_get(cache, "a\0c", 3, 1, capture, &out), 0);
    assert_memory_equal(out.bytes, "2", 1);
    assert_int_equal(cache_get(cache, "a", 1, 1, capture, &out), 0);
    assert_memory_equal(out.bytes, "3", 1);
    assert_int_equal(cache_get(cache, "a\0", 2, 1, NULL, NULL), -ENOENT);
    cache_destroy(cache);
}

static void test_put_replaces_existing(void **state)
{
    struct cache *cache = cache_new(1 << 20, 2);
    struct captured out = {0};
    struct cache_stats stats;

    assert_int_equal(put_str(cache, "k", "first value", 0, 1), 0);
    assert_int_equal(put_str(cache, "k", "second", 0, 1), 0);
    assert_int_equal(cache_get(cache, "k", 1, 1, capture, &out), 0);
    assert_int_equal(out.len, 6);
    assert_memory_equal(out.bytes, "second", 6);

    stats = stats_of(cache);
    assert_int_equal(stats.entries, 1);
    assert_int_equal(stats.bytes, cache_entry_charge(1, 6));
    assert_int_equal(stats.evictions, 0);
    cache_destroy(cache);
}

static void test_overlong_key(void **state)
{
    struct cache *cache = cache_new(1 << 20, 1);
    char key[CACHE_KEY_MAX + 1];
    uint64_t epoch;

    memset(key, 'k', sizeof(key));
    epoch = cache_epoch(cache, key, sizeof(key));

    assert_int_equal(cache_put(cache, key, sizeof(key), "v", 1, 0, 1), -EINVAL);
    assert_int_equal(cache_fill(cache, key, sizeof(key), "v", 1, 0, 1, epoch), -EINVAL);
    assert_int_equal(cache_get(cache, key, sizeof(key), 1, NULL, NULL), -ENOENT);
    assert_int_equal(cache_remove(cache, key, sizeof(key)), -ENOENT);

    assert_int_equal(cache_put(cache, key, CACHE_KEY_MAX, "v", 1, 0, 1), 0);
    assert_int_equal(cache_get(cache, key, CACHE_KEY_MAX, 1, NULL, NULL), 0);
    assert_int_equal(stats_of(cache).entries, 1);
    cache_destroy(cache);
}

/* Deterministic generator, so that a failure repeats. */
static uint32_t next_random(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*seed >> 33);
}

static void check_accounting(struct cache *cache, const size_t *value_lens, unsigned keys)
{
    struct cache_stats stats = stats_of(cache);
    uint64_t charges = 0;
    uint64_t entries = 0;
    char key[16];

    for (unsigned i = 0; i < keys; i++) {
        struct captured out = {0};
        int len = snprintf(key, sizeof(key), "k%u", i);

        if (cache_get(cache, key, (size_t)len, 1, capture, &out) != 0)
            continue;
        assert_int_equal(out.len, value_lens[i]);
        charges += cache_entry_charge((size_t)len, out.len);
        entries++;
    }
    assert_int_equal(stats.bytes, charges);
    assert_int_equal(stats.entries, entries);
}

static void test_bytes_stay_within_capacity(void **state)
{
    enum { KEYS = 400, PUTS = 3000 };
    const size_t capacity = 64 * 1024;
    struct cache *cache = cache_new(capacity, 2);
    static size_t value_lens[KEYS];
    static unsigned char value[2048];
    uint64_t seed = 42;
    char key[16];

    memset(value, 'v', sizeof(value));
    for (unsigned n = 0; n < PUTS; n++) {
        unsigned i = next_random(&seed) % KEYS;
        size_t value_len = next_random(&seed) % sizeof(value);
        int len = snprintf(key, sizeof(key), "k%u", i);

        assert_int_equal(cache_put(cache, key, (size_t)len, value, value_len, 0, 1), 0);
        value_lens[i] = value_len;
        assert_true(stats_of(cache).bytes <= capacity);

        if (n % 100 == 99)
            check_accounting(cache, value_lens, KEYS);
    }

    /* The capacity was small enough that eviction had to run. */
    assert_true(stats_of(cache).evictions > 0);
    check_accounting(cache, value_lens, KEYS);
    cache_destroy(cache);
}

static void test_clock_spares_referenced_entries(void **state)
{
    enum { ENTRIES = 8 };
    const size_t charge = cache_entry_charge(2, 32);
    char value[32];

    memset(value, 'v', sizeof(value));

    /* Whatever the hand position, the one unreferenced entry is the victim. */
    for (unsigned cold = 0; cold < ENTRIES; cold++) {
        struct cache *cache = cache_new(ENTRIES * charge, 0);
        char key[3] = "k0";

        for (unsigned i = 0; i < ENTRIES; i++) {
            key[1] = (char)('0' + i);
            assert_int_equal(cache_put(cache, key, 2, value, sizeof(value), 0, 1), 0);
        }
        for (unsigned i = 0; i < ENTRIES; i++) {
            key[1] = (char)('0' + i);
            if (i != cold)
                assert_int_equal(cache_get(cache, key, 2, 1, NULL, NULL), 0);
        }

        assert_int_equal(cache_put(cache, "nw", 2, value, sizeof(value), 0, 1), 0);
        assert_int_equal(stats_of(cache).evictions, 1);

        for (unsigned i = 0; i < ENTRIES; i++) {
            key[1] = (char)('0' + i);
            assert_int_equal(cache_get(cache, key, 2, 1, NULL, NULL), i == cold ? -ENOENT : 0);
        }
        assert_int_equal(cache_get(cache, "nw", 2, 1, NULL, NULL), 0);
        cache_destroy(cache);
    }
}

static void test_clock_evicts_when_all_referenced(void **state)
{
    enum { ENTRIES = 8 };
    const size_t charge = cache_entry_charge(2, 32);
    struct cache *cache = cache_new(ENTRIES * charge, 0);
    char value[32];
    char key[3] = "k0";
    unsigned survivors = 0;

    memset(value, 'v', sizeof(value));
    for (unsigned i = 0; i < ENTRIES; i++) {
        key[1] = (char)('0' + i);
        assert_int_equal(cache_put(cache, key, 2, value, sizeof(value), 0, 1), 0);
        assert_int_equal(cache_get(cache, key, 2, 1, NULL, NULL), 0);
    }

    assert_int_equal(cache_put(cache, "nw", 2, value, sizeof(value), 0, 1), 0);
    assert_int_equal(stats_of(cache).evictions, 1);
    for (unsigned i = 0; i < ENTRIES; i++) {
        key[1] = (char)('0' + i);
        if (cache_get(cache, key, 2, 1, NULL, NULL) == 0)
            survivors++;
    }
    assert_int_equal(survivors, ENTRIES - 1);
    cache_destroy(cache);
}

static void test_ttl_expires_on_get(void **state)
{
    struct cache *cache = cache_new(1 << 20, 2);
    struct cache_stats stats;

    assert_int_equal(put_str(cache, "neg", "", 100, 1000), 0);
    assert_int_equal(cache_get(cache, "neg", 3, 1099, NULL, NULL), 0);
    assert_int_equal(cache_get(cache, "neg", 3, 1100, NULL, NULL), -ENOENT);

    stats = stats_of(cache);
    assert_int_equal(stats.hits, 1);
    assert_int_equal(stats.misses, 1);
    assert_int_equal(stats.expired, 1);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);

    /* A time to live of 0 never ends. */
    assert_int_equal(put_str(cache, "link", "https://a.example/", 0, 1000), 0);
    assert_true(present(cache, "link", UINT64_MAX));

    /* An expiry time past the end of the clock saturates instead of wrapping. */
    assert_int_equal(put_str(cache, "late", "x", UINT32_MAX, UINT64_MAX - 10), 0);
    assert_true(present(cache, "late", UINT64_MAX - 1));
    cache_destroy(cache);
}

static void test_expire_drops_ended_entries(void **state)
{
    struct cache *cache = cache_new(1 << 20, 2);
    const char *short_lived[] = {"s1", "s2", "s3"};
    const char *long_lived[] = {"l1", "l2"};
    const char *permanent[] = {"p1", "p2"};
    struct cache_stats stats;

    for (int i = 0; i < 3; i++)
        assert_int_equal(put_str(cache, short_lived[i], "v", 50, 1000), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(put_str(cache, long_lived[i], "v", 500, 1000), 0);
        assert_int_equal(put_str(cache, permanent[i], "v", 0, 1000), 0);
    }

    assert_int_equal(cache_expire(cache, 1049), 0);
    assert_int_equal(cache_expire(cache, 1050), 3);
    stats = stats_of(cache);
    assert_int_equal(stats.expired, 3);
    assert_int_equal(stats.entries, 4);
    assert_int_equal(stats.bytes, 4 * cache_entry_charge(2, 1));

    assert_int_equal(cache_expire(cache, 1500), 2);
    assert_int_equal(stats_of(cache).entries, 2);
    assert_true(present(cache, "p1", 1500));
    assert_true(present(cache, "p2", 1500));
    assert_false(present(cache, "l1", 1499));
    cache_destroy(cache);
}

static void test_expire_many_entries(void **state)
{
    enum { KEYS = 5000 };
    struct cache *cache = cache_new(16 << 20, 0);
    char key[16];

    /* One shard with long clusters, so that deletions shift entries during the scan. */
    for (unsigned i = 0; i < KEYS; i++) {
        int len = snprintf(key, sizeof(key), "k%u", i);

        assert_int_equal(cache_put(cache, key, (size_t)len, "v", 1, i % 2 ? 10 : 0, 0), 0);
    }

    assert_int_equal(cache_expire(cache, 10), KEYS / 2);
    assert_int_equal(stats_of(cache).entries, KEYS / 2);
    for (unsigned i = 0; i < KEYS; i++) {
        int len = snprintf(key, sizeof(key), "k%u", i);

        assert_int_equal(cache_get(cache, key, (size_t)len, 0, NULL, NULL), i % 2 ? -ENOENT : 0);
    }
    cache_destroy(cache);
}

static void test_expire_waits_for_earliest_entry(void **state)
{
    struct cache *cache = cache_new(1 << 20, 0);

    assert_int_equal(put_str(cache, "a", "v", 100, 0), 0);
    assert_int_equal(put_str(cache, "b", "v", 1000, 0), 0);
    assert_int_equal(put_str(cache, "p", "v", 0, 0), 0);

    assert_int_equal(cache_expire(cache, 99), 0);
    assert_int_equal(cache_expire(cache, 150), 1);
    assert_int_equal(cache_expire(cache, 500), 0);
    assert_true(present(cache, "b", 500));

    /* An entry that expires before the rest moves the shard's next scan forward. */
    assert_int_equal(put_str(cache, "c", "v", 50, 600), 0);
    assert_int_equal(cache_expire(cache, 649), 0);
    assert_int_equal(cache_expire(cache, 650), 1);
    assert_int_equal(cache_expire(cache, 1000), 1);
    assert_true(present(cache, "p", 1000));
    assert_int_equal(stats_of(cache).entries, 1);
    cache_destroy(cache);
}

static void test_expire_ignores_replaced_entries(void **state)
{
    struct cache *cache = cache_new(1 << 20, 0);

    /* A negative entry replaced by a permanent one no longer expires. */
    assert_int_equal(put_str(cache, "a", "miss", 10, 0), 0);
    assert_int_equal(put_str(cache, "a", "link", 0, 5), 0);
    assert_int_equal(put_str(cache, "b", "miss", 10, 0), 0);
    assert_int_equal(cache_remove(cache, "b", 1), 0);

    assert_int_equal(cache_expire(cache, 100), 0);
    assert_true(present(cache, "a", 100));
    assert_int_equal(stats_of(cache).expired, 0);

    /* The shard expires entries again after it had none. */
    assert_int_equal(put_str(cache, "c", "miss", 10, 100), 0);
    assert_int_equal(cache_expire(cache, 110), 1);
    assert_false(present(cache, "c", 110));
    cache_destroy(cache);
}

static void test_eviction_drops_expired_first(void **state)
{
    const size_t charge = cache_entry_charge(1, 40);
    struct cache *cache = cache_new(2 * charge, 0);
    char value[40];
    struct cache_stats stats;

    memset(value, 'v', sizeof(value));
    assert_int_equal(cache_put(cache, "a", 1, value, sizeof(value), 10, 0), 0);
    assert_int_equal(cache_put(cache, "b", 1, value, sizeof(value), 0, 0), 0);
    assert_int_equal(cache_get(cache, "b", 1, 5, NULL, NULL), 0);

    assert_int_equal(cache_put(cache, "c", 1, value, sizeof(value), 0, 20), 0);
    stats = stats_of(cache);
    assert_int_equal(stats.expired, 1);
    assert_int_equal(stats.evictions, 0);
    assert_true(present(cache, "b", 20));
    assert_true(present(cache, "c", 20));
    cache_destroy(cache);
}

static void test_entry_larger_than_shard(void **state)
{
    const size_t capacity = cache_entry_charge(4, 100);
    struct cache *cache = cache_new(capacity, 0);
    static char value[4096];
    size_t too_long = 100;
    struct cache_stats stats;

    memset(value, 'v', sizeof(value));

    /* An entry whose charge equals the shard's capacity fits. */
    assert_int_equal(cache_put(cache, "full", 4, value, 100, 0, 1), 0);
    assert_true(present(cache, "full", 1));

    while (cache_entry_charge(4, too_long) <= capacity)
        too_long++;
    assert_int_equal(cache_put(cache, "full", 4, value, too_long, 0, 1), -E2BIG);

    /* The old entry is gone, so no stale value survives the failed put. */
    assert_false(present(cache, "full", 1));
    stats = stats_of(cache);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);

    assert_int_equal(cache_put(cache, "huge", 4, value, sizeof(value), 0, 1), -E2BIG);
    assert_int_equal(
        cache_fill(cache, "huge", 4, value, sizeof(value), 0, 1, cache_epoch(cache, "huge", 4)),
        -E2BIG);
    assert_int_equal(stats_of(cache).entries, 0);
    cache_destroy(cache);
}

static void test_fill_with_current_epoch(void **state)
{
    struct cache *cache = cache_new(1 << 20, 0);
    uint64_t epoch = cache_epoch(cache, "k", 1);

    assert_int_equal(cache_fill(cache, "k", 1, "v", 1, 0, 1, epoch), 0);
    assert_true(present(cache, "k", 1));

    /* A fill leaves the epoch alone, so a second one with the same epoch works. */
    assert_int_equal(cache_epoch(cache, "k", 1), epoch);
    assert_int_equal(cache_fill(cache, "k", 1, "w", 1, 0, 1, epoch), 0);
    assert_int_equal(stats_of(cache).entries, 1);
    cache_destroy(cache);
}

static void test_fill_after_put_is_stale(void **state)
{
    struct cache *cache = cache_new(1 << 20, 0);
    uint64_t epoch = cache_epoch(cache, "k", 1);

    /* With one shard, "other" shares the shard and the epoch of "k". */
    assert_int_equal(put_str(cache, "other", "v", 0, 1), 0);
    assert_int_equal(cache_epoch(cache, "k", 1), epoch + 1);
    assert_int_equal(cache_fill(cache, "k", 1, "old", 3, 0, 1, epoch), -ESTALE);
    assert_false(present(cache, "k", 1));

    /* A stale fill neither stores nor moves the epoch. */
    assert_int_equal(cache_epoch(cache, "k", 1), epoch + 1);
    assert_int_equal(stats_of(cache).entries, 1);
    cache_destroy(cache);
}

static void test_fill_after_remove_is_stale(void **state)
{
    struct cache *cache = cache_new(1 << 20, 0);
    uint64_t epoch;

    assert_int_equal(put_str(cache, "k", "v", 0, 1), 0);
    epoch = cache_epoch(cache, "k", 1);
    assert_int_equal(cache_remove(cache, "k", 1), 0);
    assert_int_equal(cache_epoch(cache, "k", 1), epoch + 1);
    assert_int_equal(cache_fill(cache, "k", 1, "v", 1, 0, 1, epoch), -ESTALE);

    /* Removing an absent key moves the epoch as well. */
    epoch = cache_epoch(cache, "k", 1);
    assert_int_equal(cache_remove(cache, "absent", 6), -ENOENT);
    assert_int_equal(cache_epoch(cache, "k", 1), epoch + 1);
    assert_int_equal(cache_fill(cache, "k", 1, "v", 1, 0, 1, epoch), -ESTALE);
    assert_false(present(cache, "k", 1));
    cache_destroy(cache);
}

static void test_fill_ignores_other_shards(void **state)
{
    struct cache *cache = cache_new(1 << 20, 4);
    char key[16];
    int len = 0;
    bool found = false;

    /* Find a key whose epoch a put of "a" leaves alone: it lives in another shard. */
    for (unsigned i = 0; i < 1000 && !found; i++) {
        uint64_t before;

        len = snprintf(key, sizeof(key), "b%u", i);
        before = cache_epoch(cache, key, (size_t)len);
        assert_int_equal(put_str(cache, "a", "v", 0, 1), 0);
        if (cache_epoch(cache, key, (size_t)len) == before) {
            assert_int_equal(cache_fill(cache, key, (size_t)len, "v", 1, 0, 1, before), 0);
            found = true;
        }
    }
    assert_true(found);
    assert_true(present(cache, key, 1));
    cache_destroy(cache);
}

static void test_stats_counters(void **state)
{
    const size_t charge = cache_entry_charge(1, 10);
    struct cache *cache = cache_new(3 * charge, 0);
    struct cache_stats stats;

    stats = stats_of(cache);
    assert_int_equal(stats.hits, 0);
    assert_int_equal(stats.misses, 0);
    assert_int_equal(stats.entries, 0);
    assert_int_equal(stats.bytes, 0);

    assert_int_equal(cache_put(cache, "a", 1, "0123456789", 10, 0, 0), 0);
    assert_int_equal(cache_put(cache, "b", 1, "0123456789", 10, 5, 0), 0);
    assert_int_equal(cache_put(cache, "c", 1, "0123456789", 10, 0, 0), 0);
    assert_int_equal(cache_get(cache, "a", 1, 1, NULL, NULL), 0);
    assert_int_equal(cache_get(cache, "a", 1, 1, NULL, NULL), 0);
    assert_int_equal(cache_get(cache, "x", 1, 1, NULL, NULL), -ENOENT);
    assert_int_equal(cache_get(cache, "b", 1, 5, NULL, NULL), -ENOENT);

    stats = stats_of(cache);
    assert_int_equal(stats.hits, 2);
    assert_int_equal(stats.misses, 2);
    assert_int_equal(stats.expired, 1);
    assert_int_equal(stats.evictions, 0);
    assert_int_equal(stats.entries, 2);
    assert_int_equal(stats.bytes, 2 * charge);

    /* Two more entries in room for three: one eviction, and "a" was referenced. */
    assert_int_equal(cache_put(cache, "d", 1, "0123456789", 10, 0, 6), 0);
    assert_int_equal(cache_put(cache, "e", 1, "0123456789", 10, 0, 6), 0);
    stats = stats_of(cache);
    assert_int_equal(stats.evictions, 1);
    assert_int_equal(stats.entries, 3);
    assert_int_equal(stats.bytes, 3 * charge);
    assert_true(present(cache, "a", 6));

    assert_int_equal(cache_remove(cache, "a", 1), 0);
    stats = stats_of(cache);
    assert_int_equal(stats.entries, 2);
    assert_int_equal(stats.bytes, 2 * charge);
    assert_int_equal(stats.hits, 3);
    cache_destroy(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_config),
        cmocka_unit_test(test_entry_charge_formula),
        cmocka_unit_test(test_get_hit_returns_value),
        cmocka_unit_test(test_get_miss_skips_visit),
        cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_keys_with_nul_bytes),
        cmocka_unit_test(test_put_replaces_existing),
        cmocka_unit_test(test_overlong_key),
        cmocka_unit_test(test_bytes_stay_within_capacity),
        cmocka_unit_test(test_clock_spares_referenced_entries),
        cmocka_unit_test(test_clock_evicts_when_all_referenced),
        cmocka_unit_test(test_ttl_expires_on_get),
        cmocka_unit_test(test_expire_drops_ended_entries),
        cmocka_unit_test(test_expire_many_entries),
        cmocka_unit_test(test_expire_waits_for_earliest_entry),
        cmocka_unit_test(test_expire_ignores_replaced_entries),
        cmocka_unit_test(test_eviction_drops_expired_first),
        cmocka_unit_test(test_entry_larger_than_shard),
        cmocka_unit_test(test_fill_with_current_epoch),
        cmocka_unit_test(test_fill_after_put_is_stale),
        cmocka_unit_test(test_fill_after_remove_is_stale),
        cmocka_unit_test(test_fill_ignores_other_shards),
        cmocka_unit_test(test_stats_counters),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
