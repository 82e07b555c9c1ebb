/*
 * Token-bucket rate limiter keyed by client.
 *
 * Each client key (an address prefix, an API key id) has a bucket that holds
 * up to burst tokens and gains refill_tokens every refill_period_ms, spread
 * evenly over the period. A request takes one token, or is denied when the
 * bucket contains less than one. Shortd keeps one limiter per purpose
 * (anonymous creates, API keys, redirects), each with its own default limit,
 * and any call may pass its own limit instead, for keys whose limit is
 * stored with the key.
 *
 * Units and arithmetic: time is whatever monotonic clock the caller uses, in
 * milliseconds, passed to every call. The limiter never reads a clock. A
 * bucket's level is an integer in units of 1/refill_period_ms token, so a
 * millisecond adds exactly refill_tokens units and no rounding happens on
 * refill. The rate refill_tokens / refill_period_ms is therefore exact for
 * any period: 1 per 1000 ms, 100 per 3600000 ms (an hour) and so on.
 * Invariants:
 *   - A bucket never holds more than burst tokens.
 *   - No token is created by rounding. The only rounding happens when a
 *     call passes another refill_period_ms than the bucket's last call, and
 *     it rounds the level down.
 *   - Time going backwards (a caller bug) adds no tokens, because a bucket
 *     refills only from the latest time it has seen.
 *   - Every product fits in 64 bits for all values of the 32-bit limit
 *     fields, and elapsed times up to UINT64_MAX saturate at a full bucket.
 *
 * Memory: the limiter stores at most max_buckets buckets over all shards.
 * A bucket that has refilled to its burst behaves exactly like an absent
 * one, so such idle buckets are dropped first: by ratelimit_evict_idle, meant
 * for a periodic timer, and by an insert that finds its shard at its limit.
 * That insert examines a sample of at most RATELIMIT_EVICT_SAMPLE buckets of
 * the shard and drops the first idle one. When the sample holds no idle
 * bucket, it evicts the bucket that would be full soonest. A flood of
 * distinct clients therefore cannot grow memory, and the bound never fails
 * a request (only a failed malloc does). The worst it can do is give an evicted client a fresh,
 * full bucket: that client may then get up to burst more requests than its limit allows.
 *
 * Each bucket costs an estimated 75 to 86 bytes with a key of 7 to 22 bytes,
 * such as an address family byte and an IPv6 /64 prefix: a 64-byte chunk
 * from glibc malloc on x86-64 and 10.7 to 21.3 bytes of index.
 * bench/micro_ratelimit.c measured 82 bytes per bucket for 100,000 9-byte
 * keys in 64 shards.
 *
 * Hot path: when the bucket exists, ratelimit_take costs one keyed hash of
 * the key and one lock of one shard. It does not allocate, and it makes no
 * system call unless the shard lock is contended. Only the first request of
 * a client allocates, outside the lock.
 *
 * Workload: any thread may call any function concurrently, except
 * ratelimit_destroy.
 */
#ifndef SHORTD_CORE_RATELIMIT_H
#define SHORTD_CORE_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"

struct ratelimit;

/* Maximum key length the limiter accepts, in bytes. */
#define RATELIMIT_KEY_MAX 255

/* Buckets an insert at a full shard examines before it evicts one. */
#define RATELIMIT_EVICT_SAMPLE 8

/* Seconds value that means never: the bucket does not refill (refill_tokens 0). */
#define RATELIMIT_NEVER UINT32_MAX

/*
 * Limit of one bucket. burst and refill_period_ms must be at least 1.
 * refill_tokens 0 means the bucket never refills, so burst is a fixed quota.
 * Shortd's default for anonymous creates is {20, 1, 1000}: a burst of 20,
 * then one token per second.
 */
struct ratelimit_limit {
    uint32_t burst;            /* bucket capacity in tokens, also RateLimit-Limit */
    uint32_t refill_tokens;    /* tokens added per refill period */
    uint32_t refill_period_ms; /* length of the refill period in milliseconds */
};

struct ratelimit_config {
    struct ratelimit_limit limit; /* for calls that pass no limit */
    size_t max_buckets;           /* buckets over all shards, at least 2^shard_bits */
    unsigned shard_bits;          /* 2^shard_bits shards, 0 to 12 */
};

/*
 * Outcome of ratelimit_take, with the values of the HTTP response headers.
 * Seconds are rounded up, so a client that waits that long finds the state
 * promised. Values that do not fit in 32 bits are RATELIMIT_NEVER.
 */
struct ratelimit_result {
    uint32_t limit;         /* RateLimit-Limit: the burst */
    uint32_t remaining;     /* RateLimit-Remaining: whole tokens left after this request */
    uint32_t reset_s;       /* RateLimit-Reset: seconds until the bucket is full again */
    uint32_t retry_after_s; /* Retry-After: seconds until a token is available, 0 when one is */
};

struct ratelimit_stats {
    uint64_t allowed;          /* requests that took a token */
    uint64_t denied;           /* requests denied for lack of a token */
    uint64_t evicted_idle;     /* full buckets dropped, by evict_idle or to make room */
    uint64_t evicted_not_full; /* buckets evicted to make room before they were full */
    uint64_t buckets;          /* buckets stored now */
};

/*
 * Creates a limiter. The buckets are shared out among the shards, so each
 * shard stores at most max_buckets >> shard_bits buckets, plus one for the
 * first (max_buckets mod 2^shard_bits) shards. The hash key is copied.
 * Returns NULL on allocation failure or an invalid config: a default limit
 * with burst or refill_period_ms 0, shard_bits above 12, max_buckets below
 * the shard count or above 2^30 buckets per shard.
 */
struct ratelimit *ratelimit_create(const struct ratelimit_config *config,
                                   const struct hash_key *key);

/* Frees the limiter and every bucket. No other thread may use it. */
void ratelimit_destroy(struct ratelimit *limiter);

/*
 * Takes one token from the bucket of key at time now_ms, creating a full
 * bucket when the key has none. limit applies to this call (NULL: the
 * limiter's default) and becomes the bucket's limit. When it differs from
 * the bucket's previous limit, the bucket keeps its token count, cut to the
 * new burst and rounded down to the new unit.
 *
 * Returns 0 when the request is allowed, -EAGAIN when it is denied, and
 * fills result in both cases. Returns -EINVAL, leaving result unchanged, for
 * an invalid limit or a key longer than RATELIMIT_KEY_MAX. Returns -ENOMEM
 * when a new bucket cannot be allocated: nothing is stored and result
 * describes a fresh bucket after one request, so a caller that lets the
 * request through still has headers to send. Key bytes may contain NUL.
 *
 * Allocates only for a key without a bucket. Thread-safe.
 */
int ratelimit_take(struct ratelimit *limiter, const void *key, size_t key_len,
                   const struct ratelimit_limit *limit, uint64_t now_ms,
                   struct ratelimit_result *result);

/*
 * Drops every bucket that is full at now_ms, shard by shard, holding each
 * shard lock for at most a bounded number of slots at a time, so takes on
 * the same shard wait briefly. A bucket that moves within its shard while
 * the lock is released may be missed until the next call. Returns the number
 * dropped. Meant for a periodic timer. Thread-safe.
 */
size_t ratelimit_evict_idle(struct ratelimit *limiter, uint64_t now_ms);

/*
 * Fills stats with counters summed over the shards, each shard read under
 * its lock in turn, so concurrent calls may or may not be counted.
 * Thread-safe.
 */
void ratelimit_get_stats(struct ratelimit *limiter, struct ratelimit_stats *stats);

#endif
