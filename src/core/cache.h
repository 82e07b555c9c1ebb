/*
 * Bounded concurrent cache from byte-string keys to byte-string values.
 *
 * shortd keeps short code -> redirect record here. The cache is sharded by a
 * keyed hash; each shard has its own mutex, an open addressing index and a
 * CLOCK ring for eviction. Memory is bounded in bytes: every entry is charged
 * its key, its value and its bookkeeping (cache_entry_charge). An insert
 * evicts entries whose reference bit is clear, and entries whose time to
 * live has ended, until the shard fits its share of the capacity.
 *
 * Entries may carry a time to live. Shortd uses it for negative entries
 * ("this code does not exist"), so that a flood of requests for unknown codes
 * does not reach the store, while a link created later is seen soon after.
 *
 * Stale fills: a reader that misses, reads the store and then fills the
 * cache can race with a writer that changed the same key in between. Each
 * shard therefore has an epoch that every authoritative change (cache_put,
 * cache_remove) increments. A reader takes cache_epoch() before its store
 * read and fills with cache_fill(), which does nothing when the epoch moved. The epoch covers
 * the whole shard, so a change to another key of the same shard also makes
 * a fill stale; the reader then simply skips caching that result.
 *
 * Workload: any thread may call any function concurrently, except
 * cache_destroy. Callbacks run under the shard lock: they must be short and
 * must not call into the cache.
 */
#ifndef SHORTD_CORE_CACHE_H
#define SHORTD_CORE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"

struct cache;

/* Longest key the cache accepts, in bytes. */
#define CACHE_KEY_MAX 255

struct cache_config {
    size_t capacity_bytes; /* total charge allowed over all shards */
    unsigned shard_bits;   /* 2^shard_bits shards, 0 to 12 */
};

struct cache_stats {
    uint64_t hits;      /* lookups that found a live entry */
    uint64_t misses;    /* lookups that found nothing or an expired entry */
    uint64_t evictions; /* entries removed to make room */
    uint64_t expired;   /* entries dropped because their time to live ended */
    uint64_t entries;   /* entries stored now */
    uint64_t bytes;     /* charge of the stored entries now */
};

/* Called with a stored value under the shard lock. */
typedef void (*cache_visit_fn)(const void *value, size_t value_len, void *arg);

/*
 * Creates a cache; each shard may hold capacity_bytes >> shard_bits bytes of
 * charge. Returns NULL on allocation failure, a shard_bits out of range, or
 * a share below cache_entry_charge(0, 0), the charge of the smallest entry.
 */
struct cache *cache_create(const struct cache_config *config, const struct hash_key *key);

/* Frees the cache and every entry. No other thread may use it. */
void cache_destroy(struct cache *cache);

/*
 * Returns the bytes charged for an entry with these lengths, so that callers
 * can reason about capacity. The charge is an estimate of the memory the
 * entry costs with glibc malloc on a 64-bit target:
 *
 *   chunk  = 10 (entry header) + key_len + value_len + 8 (expiry time)
 *            + 8 (malloc chunk header), rounded up to a multiple of 16,
 *            and at least 32
 *   charge = chunk + 16 (two 8-byte index slots)
 *
 * It is an upper bound for the allocation, because entries without a time
 * to live leave out the expiry time. The index really costs 10.7 to 21.3
 * bytes per entry, as the table is 3/8 to 3/4 full between doublings. The
 * result saturates at SIZE_MAX instead of wrapping.
 */
size_t cache_entry_charge(size_t key_len, size_t value_len);

/*
 * Looks up key at time now_ms (any monotonic clock in milliseconds, the same
 * one for every call). On a hit, marks the entry as recently used, calls
 * visit (when not NULL) with the value under the shard lock and returns 0.
 * The value pointer is not aligned and is valid only during the call.
 * Returns -ENOENT on a miss, including an entry whose time to live has ended
 * (it is dropped) and a key longer than CACHE_KEY_MAX. Does not allocate.
 */
int cache_get(struct cache *cache, const void *key, size_t key_len, uint64_t now_ms,
              cache_visit_fn visit, void *arg);

/*
 * Stores a copy of value under key, replacing any entry, and increments the
 * shard's epoch. The entry expires ttl_ms after now_ms; ttl_ms 0 means no
 * time limit. Evicts other entries as needed. Returns 0, -EINVAL for an
 * overlong key (nothing changes), -E2BIG when the entry alone exceeds a
 * shard's capacity or value_len exceeds UINT32_MAX, or -ENOMEM. After -E2BIG
 * or -ENOMEM nothing is stored, the old entry is removed and the epoch has
 * moved, so the cache never returns the value the put meant to replace.
 */
int cache_put(struct cache *cache, const void *key, size_t key_len, const void *value,
              size_t value_len, uint32_t ttl_ms, uint64_t now_ms);

/*
 * Returns the epoch of the shard that holds key. Take it before reading the
 * source of truth and pass it to cache_fill.
 */
uint64_t cache_epoch(struct cache *cache, const void *key, size_t key_len);

/*
 * Like cache_put, but stores nothing and returns -ESTALE when the shard's
 * epoch differs from epoch, and leaves the epoch unchanged. -EINVAL is
 * checked first, then -ESTALE, then the failures of cache_put.
 */
int cache_fill(struct cache *cache, const void *key, size_t key_len, const void *value,
               size_t value_len, uint32_t ttl_ms, uint64_t now_ms, uint64_t epoch);

/*
 * Removes key and increments the shard's epoch, whether or not the key was
 * present. Returns 0 when an entry was removed, -ENOENT otherwise.
 */
int cache_remove(struct cache *cache, const void *key, size_t key_len);

/*
 * Drops every entry whose time to live has ended by now_ms, one shard at a
 * time. Returns the number dropped. Meant for a periodic timer. A shard
 * whose earliest expiry time is later than now_ms costs one lock, and a
 * shard that is scanned costs a read of its slot array and of its entries
 * with a time to live, never of the others.
 */
size_t cache_expire(struct cache *cache, uint64_t now_ms);

/* Fills stats with counters summed over the shards. */
void cache_get_stats(struct cache *cache, struct cache_stats *stats);

#endif
