/*
 * Token-bucket rate limiter, see ratelimit.h.
 *
 * Shards: the key's 64-bit hash picks the shard with bits 32 and up, the
 * home slot with bits 0..31 and the slot tag with bits 48..63 (hashtab.h),
 * as in cache.c and shardmap.c. The index is hashtab.c unchanged: buckets
 * are small records keyed by byte strings, the case it was built for, and
 * its backward-shift deletion keeps probe chains short under the constant
 * inserts and evictions of a flood of clients.
 *
 * Bucket layout, one allocation per bucket:
 *
 *   struct bucket          24 bytes: level, last_ms, burst, refill_tokens
 *   hashtab_entry header   10 bytes: hash, aux = refill_period_ms, key length, flags
 *   key                    key_len bytes
 *
 * The index points at the header, so the bucket sits sizeof(struct bucket)
 * bytes before it, like the value pointer in shardmap.c. The bucket's level
 * counts units of 1/aux token, where aux is the refill_period_ms of the last
 * call, so the full level is burst * aux.
 *
 * Eviction: each shard has a hand, a slot position where the next sample
 * starts. The sample is the next RATELIMIT_EVICT_SAMPLE occupied slots; the
 * hand then moves past them, so successive inserts look at different
 * buckets. Slot positions follow the keyed hash, so a client cannot choose
 * which buckets a sample holds.
 */
#include "core/ratelimit.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashtab.h"

#define SHARD_BITS_MAX 12

/* Per-shard bucket limit: keeps the index within hashtab's largest table (2^31 slots). */
#define SHARD_BUCKETS_MAX (UINT32_C(1) << 30)

/*
 * ratelimit_evict_idle releases the shard lock after this many slots or this
 * many drops, whichever comes first, and frees the dropped buckets outside
 * the lock.
 */
#define SWEEP_SLOTS 512
#define SWEEP_DROPS 64

struct bucket {
    uint64_t level;         /* tokens in units of 1/refill_period_ms token */
    uint64_t last_ms;       /* latest time seen: refill is counted from here */
    uint32_t burst;         /* limit of the last call */
    uint32_t refill_tokens; /* limit of the last call, whose period is in entry->aux */
};

/*
 * Lock protocol: a shard's lock protects its index, every bucket reachable
 * from it, its hand and its counters. The limiter's default limit and each
 * shard's bucket limit are fixed at creation and need no lock. A public
 * function holds at most one shard lock at any moment (evict_idle and
 * get_stats take them one after another), so there is no lock order to
 * keep. No malloc or free runs under a shard lock: new buckets are
 * allocated before it is taken and dropped ones freed after it is released.
 * The one exception is hashtab__reserve doubling the slot array, which
 * happens about log2(limit) times per shard at most. The static shard_*
 * helpers assume the caller holds the lock.
 *
 * The fields ratelimit_take touches come first, and each shard starts on its
 * own cache line.
 */
struct shard {
    alignas(64) pthread_mutex_t lock;
    struct hashtab index;
    uint64_t allowed;
    uint64_t denied;
    uint64_t evicted_idle;
    uint64_t evicted_not_full;
    uint32_t limit; /* buckets allowed in this shard */
    uint32_t hand;  /* slot position where the next eviction sample starts */
};

struct ratelimit {
    struct hash_key key;
    struct ratelimit_limit defaults;
    uint32_t shard_mask;
    struct shard shards[];
};

/* State of a bucket right after a take, copied out so the result is computed unlocked. */
struct snapshot {
    uint64_t level;
    uint64_t lag_ms; /* how far the bucket's time is ahead of the caller's now */
    struct ratelimit_limit limit;
};

static struct bucket *entry_bucket(struct hashtab_entry *entry)
{
    return (struct bucket *)((unsigned char *)entry - sizeof(struct bucket));
}

static void entry_free(struct hashtab_entry *entry)
{
    if (entry != NULL)
        free(entry_bucket(entry));
}

static bool limit_valid(const struct ratelimit_limit *limit)
{
    return limit->burst > 0 && limit->refill_period_ms > 0;
}

/* Both factors are below 2^32, so the product fits. */
static uint64_t full_level(uint32_t burst, uint32_t period_ms)
{
    return (uint64_t)burst * period_ms;
}

static uint64_t ceil_div(uint64_t dividend, uint64_t divisor)
{
    return dividend == 0 ? 0 : (dividend - 1) / divisor + 1;
}

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/*
 * Returns the first time at which the bucket is full under its last limit,
 * or UINT64_MAX when it never will be (no refill, or later than UINT64_MAX).
 */
static uint64_t bucket_full_at(struct hashtab_entry *entry)
{
    const struct bucket *bucket = entry_bucket(entry);
    uint64_t full = full_level(bucket->burst, entry->aux);

    if (bucket->level >= full)
        return bucket->last_ms;
    if (bucket->refill_tokens == 0)
        return UINT64_MAX;
    return add_saturating(bucket->last_ms, ceil_div(full - bucket->level, bucket->refill_tokens));
}

/*
 * Returns whether a bucket that is full at full_at (from bucket_full_at) is
 * full at now_ms, so that dropping it changes nothing.
 */
static bool full_by(uint64_t full_at, uint64_t now_ms)
{
    return full_at <= now_ms && full_at != UINT64_MAX;
}

/*
 * Converts level from units of 1/old_period to 1/new_period token, rounding
 * down, and caps it at burst tokens. Splitting off whole tokens keeps both
 * products below 2^64.
 */
static uint64_t rescale(uint64_t level, uint32_t old_period, uint32_t new_period, uint32_t burst)
{
    uint64_t whole = level / old_period;
    uint64_t fraction = level % old_period;

    if (whole >= burst)
        return full_level(burst, new_period);
    return whole * new_period + fraction * new_period / old_period;
}

/* Adds the tokens of the time since last_ms under the bucket's current limit. */
static void bucket_refill(struct hashtab_entry *entry, uint64_t now_ms)
{
    struct bucket *bucket = entry_bucket(entry);
    uint64_t full = full_level(bucket->burst, entry->aux);
    uint64_t missing = full - bucket->level;
    uint64_t elapsed;

    /* A time before last_ms adds nothing and leaves last_ms, so it never creates tokens. */
    if (now_ms <= bucket->last_ms)
        return;
    elapsed = now_ms - bucket->last_ms;
    bucket->last_ms = now_ms;

    /*
     * Below 2^32 ms the product fits in 64 bits. Beyond that (49 days) one
     * division decides whether the bucket has filled.
     */
    if (elapsed <= UINT32_MAX) {
        uint64_t added = elapsed * bucket->refill_tokens;

        bucket->level = added >= missing ? full : bucket->level + added;
    } else if (bucket->refill_tokens > 0 && elapsed > missing / bucket->refill_tokens) {
        bucket->level = full;
    } else {
        bucket->level += elapsed * bucket->refill_tokens;
    }
}

/* Gives the bucket a new limit, keeping its tokens, rounded down and capped. */
static void bucket_set_limit(struct hashtab_entry *entry, const struct ratelimit_limit *limit)
{
    struct bucket *bucket = entry_bucket(entry);
    uint64_t full = full_level(limit->burst, limit->refill_period_ms);

    if (entry->aux != limit->refill_period_ms) {
        bucket->level = rescale(bucket->level, entry->aux, limit->refill_period_ms, limit->burst);
        entry->aux = limit->refill_period_ms;
    }
    if (bucket->level > full)
        bucket->level = full;
    bucket->burst = limit->burst;
    bucket->refill_tokens = limit->refill_tokens;
}

/*
 * Brings the bucket to time now_ms, moves it to limit, then takes a token
 * if it contains one. Returns whether it did, and fills snapshot. The refill
 * comes first because the previous limit applied until now.
 */
static bool bucket_take(struct hashtab_entry *entry, const struct ratelimit_limit *limit,
                        uint64_t now_ms, struct snapshot *snapshot)
{
    struct bucket *bucket = entry_bucket(entry);
    bool allowed = false;

    bucket_refill(entry, now_ms);
    if (bucket->burst != limit->burst || bucket->refill_tokens != limit->refill_tokens ||
        entry->aux != limit->refill_period_ms)
        bucket_set_limit(entry, limit);

    if (bucket->level >= limit->refill_period_ms) {
        bucket->level -= limit->refill_period_ms;
        allowed = true;
    }

    snapshot->level = bucket->level;
    snapshot->lag_ms = bucket->last_ms - (now_ms < bucket->last_ms ? now_ms : bucket->last_ms);
    snapshot->limit = *limit;
    return allowed;
}

/*
 * Returns the seconds, rounded up, until a bucket at level gains missing
 * units, counted from the caller's time, or RATELIMIT_NEVER.
 */
static uint32_t seconds_until(uint64_t missing, const struct snapshot *snapshot)
{
    uint64_t wait_ms, seconds;

    if (missing == 0)
        return 0;
    if (snapshot->limit.refill_tokens == 0)
        return RATELIMIT_NEVER;

    wait_ms = add_saturating(ceil_div(missing, snapshot->limit.refill_tokens), snapshot->lag_ms);
    seconds = ceil_div(wait_ms, 1000);
    return seconds >= RATELIMIT_NEVER ? RATELIMIT_NEVER : (uint32_t)seconds;
}

static void fill_result(const struct snapshot *snapshot, struct ratelimit_result *result)
{
    uint64_t period = snapshot->limit.refill_period_ms;
    uint64_t full = full_level(snapshot->limit.burst, snapshot->limit.refill_period_ms);

    result->limit = snapshot->limit.burst;
    result->remaining = (uint32_t)(snapshot->level / period);
    result->reset_s = seconds_until(full - snapshot->level, snapshot);
    result->retry_after_s =
        snapshot->level >= period ? 0 : seconds_until(period - snapshot->level, snapshot);
}

/* Fills result as for a fresh bucket after one request, for a bucket that could not be stored. */
static void describe_fresh(const struct ratelimit_limit *limit, struct ratelimit_result *result)
{
    struct snapshot snapshot = {
        .level = full_level(limit->burst, limit->refill_period_ms) - limit->refill_period_ms,
        .lag_ms = 0,
        .limit = *limit,
    };

    fill_result(&snapshot, result);
}

/* Allocates a full bucket for key. Returns its entry, or NULL on failure. */
static struct hashtab_entry *bucket_new(const void *key, size_t key_len,
                                        const struct ratelimit_limit *limit, uint64_t now_ms)
{
    unsigned char *block;
    struct hashtab_entry *entry;
    struct bucket *bucket;

    block = malloc(sizeof(struct bucket) + offsetof(struct hashtab_entry, key) + key_len);
    if (block == NULL)
        return NULL;

    entry = (struct hashtab_entry *)(block + sizeof(struct bucket));
    if (!hashtab__addressable(entry)) {
        free(block);
        return NULL;
    }

    bucket = entry_bucket(entry);
    bucket->level = full_level(limit->burst, limit->refill_period_ms);
    bucket->last_ms = now_ms;
    bucket->burst = limit->burst;
    bucket->refill_tokens = limit->refill_tokens;
    entry->aux = limit->refill_period_ms;
    entry->key_len = (uint8_t)key_len;
    entry->flags = 0;
    if (key_len > 0)
        memcpy(entry->key, key, key_len);
    return entry;
}

static struct shard *shard_of(struct ratelimit *limiter, uint64_t hash)
{
    return &limiter->shards[(hash >> 32) & limiter->shard_mask];
}

/*
 * Unlinks one bucket to make room and returns it for the caller to free.
 * Examines at most RATELIMIT_EVICT_SAMPLE buckets from the hand and takes
 * the first one that is full at now_ms, or else the one that fills soonest.
 * The shard must hold at least one bucket.
 */
static struct hashtab_entry *shard_evict(struct shard *shard, uint64_t now_ms)
{
    uint32_t mask = shard->index.mask;
    size_t pos = shard->hand & mask;
    size_t victim = HASHTAB_NONE;
    uint64_t victim_full_at = UINT64_MAX;
    struct hashtab_entry *entry;
    unsigned sampled = 0;
    bool idle = false;

    /* The slot bound only matters for a sparse table, because the sample normally ends first. */
    for (size_t scanned = 0; scanned <= mask && sampled < RATELIMIT_EVICT_SAMPLE; scanned++) {
        uint64_t slot = shard->index.slots[pos];

        if (slot != 0) {
            uint64_t full_at = bucket_full_at(hashtab__entry(slot));

            sampled++;
            if (full_by(full_at, now_ms)) {
                victim = pos;
                idle = true;
                break;
            }
            if (victim == HASHTAB_NONE || full_at < victim_full_at) {
                victim = pos;
                victim_full_at = full_at;
            }
        }
        pos = (pos + 1) & mask;
    }

    /*
     * The hand moves past the sample. After an idle drop it stays on the
     * dropped slot instead, because the deletion shifts the next bucket
     * into it.
     */
    shard->hand = (uint32_t)pos;
    if (idle)
        shard->evicted_idle++;
    else
        shard->evicted_not_full++;

    entry = hashtab__entry(shard->index.slots[victim]);
    hashtab__delete_at(&shard->index, victim);
    return entry;
}

/*
 * Inserts fresh, whose key is absent, evicting one bucket when the shard is
 * at its limit or its index cannot grow. Returns the evicted bucket for the
 * caller to free (or NULL), and sets *rc to 0 or -ENOMEM.
 */
static struct hashtab_entry *shard_insert(struct shard *shard, uint64_t hash,
                                          struct hashtab_entry *fresh, uint64_t now_ms, int *rc)
{
    struct hashtab_entry *evicted = NULL;

    if (shard->index.count >= shard->limit)
        evicted = shard_evict(shard, now_ms);

    /*
     * When the slot array cannot double, evicting one bucket makes room
     * without growth, because the table already held count buckets. An
     * empty table never needs to grow, so there is a bucket to evict.
     */
    *rc = hashtab__reserve(&shard->index);
    if (*rc < 0 && evicted == NULL && shard->index.count > 0) {
        evicted = shard_evict(shard, now_ms);
        *rc = hashtab__reserve(&shard->index);
    }
    if (*rc == 0)
        hashtab__insert(&shard->index, hash, fresh);
    return evicted;
}

static void shard_count(struct shard *shard, bool allowed)
{
    if (allowed)
        shard->allowed++;
    else
        shard->denied++;
}

struct ratelimit *ratelimit_create(const struct ratelimit_config *config,
                                   const struct hash_key *key)
{
    struct ratelimit *limiter;
    size_t shards, size, base, extra;
    size_t ready = 0;

    if (config == NULL || key == NULL || config->shard_bits > SHARD_BITS_MAX ||
        !limit_valid(&config->limit))
        return NULL;

    shards = (size_t)1 << config->shard_bits;
    base = config->max_buckets >> config->shard_bits;
    extra = config->max_buckets & (shards - 1);
    if (base == 0 || base + (extra > 0) > SHARD_BUCKETS_MAX)
        return NULL;

    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size = sizeof(*limiter) + shards * sizeof(limiter->shards[0]);
    size = (size + alignof(struct shard) - 1) / alignof(struct shard) * alignof(struct shard);
    limiter = aligned_alloc(alignof(struct shard), size);
    if (limiter == NULL)
        return NULL;

    limiter->key = *key;
    limiter->defaults = config->limit;
    limiter->shard_mask = (uint32_t)(shards - 1);
    for (; ready < shards; ready++) {
        struct shard *shard = &limiter->shards[ready];

        memset(shard, 0, sizeof(*shard));
        shard->limit = (uint32_t)(base + (ready < extra));
        if (hashtab__init(&shard->index) < 0)
            goto fail;
        if (pthread_mutex_init(&shard->lock, NULL) != 0) {
            hashtab__fini(&shard->index);
            goto fail;
        }
    }
    return limiter;

fail:
    while (ready-- > 0) {
        (void)pthread_mutex_destroy(&limiter->shards[ready].lock);
        hashtab__fini(&limiter->shards[ready].index);
    }
    free(limiter);
    return NULL;
}

void ratelimit_destroy(struct ratelimit *limiter)
{
    if (limiter == NULL)
        return;

    for (size_t i = 0; i <= limiter->shard_mask; i++) {
        struct shard *shard = &limiter->shards[i];

        for (size_t pos = 0; pos <= shard->index.mask; pos++) {
            if (shard->index.slots[pos] != 0)
                entry_free(hashtab__entry(shard->index.slots[pos]));
        }

        hashtab__fini(&shard->index);
        (void)pthread_mutex_destroy(&shard->lock);
    }
    free(limiter);
}

/*
 * The path of a key that had no bucket at the first look: allocates one
 * outside the lock, then looks again, because another thread may have
 * inserted the key in between.
 */
static int take_new(struct shard *shard, uint64_t hash, const void *key, size_t key_len,
                    const struct ratelimit_limit *limit, uint64_t now_ms,
                    struct ratelimit_result *result)
{
    struct hashtab_entry *fresh, *evicted = NULL;
    struct snapshot snapshot = {0};
    bool allowed = false;
    size_t pos;
    int rc;

    fresh = bucket_new(key, key_len, limit, now_ms);
    if (fresh == NULL) {
        describe_fresh(limit, result);
        return -ENOMEM;
    }

    pthread_mutex_lock(&shard->lock);
    pos = hashtab__find(&shard->index, hash, key, key_len);
    if (pos != HASHTAB_NONE) {
        allowed = bucket_take(hashtab__entry(shard->index.slots[pos]), limit, now_ms, &snapshot);
        rc = 0;
    } else {
        evicted = shard_insert(shard, hash, fresh, now_ms, &rc);
        if (rc == 0) {
            allowed = bucket_take(fresh, limit, now_ms, &snapshot);
            fresh = NULL;
        }
    }
    if (rc == 0)
        shard_count(shard, allowed);
    pthread_mutex_unlock(&shard->lock);

    entry_free(evicted);
    entry_free(fresh);
    if (rc < 0) {
        describe_fresh(limit, result);
        return rc;
    }

    fill_result(&snapshot, result);
    return allowed ? 0 : -EAGAIN;
}

int ratelimit_take(struct ratelimit *limiter, const void *key, size_t key_len,
                   const struct ratelimit_limit *limit, uint64_t now_ms,
                   struct ratelimit_result *result)
{
    struct snapshot snapshot;
    struct shard *shard;
    uint64_t hash;
    size_t pos;
    bool allowed;

    if (limit == NULL)
        limit = &limiter->defaults;
    if (!limit_valid(limit) || key_len > RATELIMIT_KEY_MAX)
        return -EINVAL;

    hash = hash_bytes(&limiter->key, key, key_len);
    shard = shard_of(limiter, hash);

    pthread_mutex_lock(&shard->lock);
    pos = hashtab__find(&shard->index, hash, key, key_len);
    if (pos == HASHTAB_NONE) {
        pthread_mutex_unlock(&shard->lock);
        return take_new(shard, hash, key, key_len, limit, now_ms, result);
    }

    allowed = bucket_take(hashtab__entry(shard->index.slots[pos]), limit, now_ms, &snapshot);
    shard_count(shard, allowed);
    pthread_mutex_unlock(&shard->lock);

    fill_result(&snapshot, result);
    return allowed ? 0 : -EAGAIN;
}

size_t ratelimit_evict_idle(struct ratelimit *limiter, uint64_t now_ms)
{
    struct hashtab_entry *dropped[SWEEP_DROPS];
    size_t total = 0;

    for (size_t i = 0; i <= limiter->shard_mask; i++) {
        struct shard *shard = &limiter->shards[i];
        size_t pos = 0;
        bool done = false;

        while (!done) {
            size_t count = 0;

            /*
             * After a drop the position is examined again, because the
             * cluster shifted back into it. Entries shift only backwards, so
             * none skips past the sweep while the lock is held. One that
             * wraps from slot 0 to the end is examined twice, which is
             * harmless.
             */
            pthread_mutex_lock(&shard->lock);
            for (size_t scanned = 0; scanned < SWEEP_SLOTS && count < SWEEP_DROPS; scanned++) {
                uint64_t slot;

                if (pos > shard->index.mask)
                    break;
                slot = shard->index.slots[pos];
                if (slot != 0 && full_by(bucket_full_at(hashtab__entry(slot)), now_ms)) {
                    dropped[count++] = hashtab__entry(slot);
                    hashtab__delete_at(&shard->index, pos);
                } else {
                    pos++;
                }
            }
            shard->evicted_idle += count;
            done = pos > shard->index.mask;
            pthread_mutex_unlock(&shard->lock);

            for (size_t d = 0; d < count; d++)
                entry_free(dropped[d]);
            total += count;
        }
    }
    return total;
}

void ratelimit_get_stats(struct ratelimit *limiter, struct ratelimit_stats *stats)
{
    memset(stats, 0, sizeof(*stats));

    for (size_t i = 0; i <= limiter->shard_mask; i++) {
        struct shard *shard = &limiter->shards[i];

        pthread_mutex_lock(&shard->lock);
        stats->allowed += shard->allowed;
        stats->denied += shard->denied;
        stats->evicted_idle += shard->evicted_idle;
        stats->evicted_not_full += shard->evicted_not_full;
        stats->buckets += shard->index.count;
        pthread_mutex_unlock(&shard->lock);
    }
}
