/*
 * Bounded concurrent cache, see cache.h.
 *
 * Shards: the key's 64-bit hash picks the shard with bits 32 and up, the
 * home slot with bits 0..31 and the slot tag with bits 48..63 (hashtab.h).
 * Each shard owns capacity >> shard_bits bytes of charge.
 *
 * Entry layout, one allocation per entry:
 *
 *   hashtab_entry header   10 bytes: hash, aux = value length, key length, flags
 *   key                    key_len bytes
 *   value                  value_len bytes, not aligned
 *   expiry time            8 bytes in milliseconds, present when ENTRY_EXPIRES is set
 *
 * Entries without a time to live (the links themselves) leave out the
 * expiry time; only negative entries pay for it. The slot of an entry with
 * an expiry time has its HASHTAB_FLAG bit set (SLOT_EXPIRES), so that
 * cache_expire and the CLOCK hand find such entries from the slot array
 * alone, without reading the entries that cannot expire.
 *
 * CLOCK: the ring is the shard's slot array in slot order, and the reference
 * bit is the slot's mark bit. A hit sets the bit. To make room, the hand
 * walks the slots: it skips empty slots, clears a set bit and moves on, and
 * evicts the first entry whose bit is clear, or any entry whose time to live
 * has ended. Using the index as the ring costs no memory per entry, where a
 * separate ring would cost a pointer and a back reference per entry. The
 * price is a looser order than a true ring. An entry lands at a position
 * given by its hash rather than just behind the hand. A deletion may shift
 * an entry from just ahead of the hand to just behind it, and growth
 * reshuffles the positions. Each of these can let an entry skip one turn of
 * the hand, but every entry the hand reaches gets its second chance.
 */
#include "core/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashtab.h"

#define SHARD_BITS_MAX 12

/* hashtab_entry.flags bit: the entry stores an expiry time after its value. */
#define ENTRY_EXPIRES 0x01u

/* Slot bit of an entry with ENTRY_EXPIRES. */
#define SLOT_EXPIRES HASHTAB_FLAG

#define ENTRY_HEADER_BYTES offsetof(struct hashtab_entry, key)
#define EXPIRY_BYTES       sizeof(uint64_t)

/*
 * glibc malloc on 64-bit targets: a chunk is the request plus an 8-byte size
 * field, rounded up to 16 bytes, and at least 32 bytes. Checked against
 * malloc_usable_size for requests of 1 to 4999 bytes on glibc 2.36 (x86-64).
 */
#define MALLOC_CHUNK_HEADER 8u
#define MALLOC_CHUNK_ALIGN  16u
#define MALLOC_CHUNK_MIN    32u

/*
 * Index bytes charged per entry: two 8-byte slots. The real figure is 10.7
 * to 21.3 bytes, because the table is 3/8 to 3/4 full between doublings.
 * Averaged over a doubling cycle it is 14.8 bytes.
 */
#define INDEX_CHARGE (2 * sizeof(uint64_t))

/*
 * Lock protocol: a shard's lock protects its index, its entries, its hand,
 * its byte count, its epoch and its statistics. The capacity is fixed at
 * creation and read without the lock. A public function holds at most one
 * shard lock at any moment (cache_expire and cache_get_stats take them one
 * after another), so there is no lock order to keep. The static shard_*
 * helpers assume the caller holds the lock.
 *
 * The fields cache_get touches (lock, index, hits, misses) come first; each
 * shard starts on its own cache line.
 */
struct cache_shard {
    alignas(64) pthread_mutex_t lock;
    struct hashtab index;
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
    uint64_t expired;
    uint64_t epoch;
    size_t bytes;    /* sum of the charges of the stored entries */
    size_t capacity; /* charge allowed in this shard */
    uint32_t hand;   /* CLOCK hand: the next slot position to examine */

    /* Entries with an expiry time, and a time at or before the earliest of
     * their expiry times: cache_expire skips the shard until then. */
    uint32_t expiring;
    uint64_t next_expiry_ms;
};

struct cache {
    struct hash_key key;
    uint32_t shard_mask;
    struct cache_shard shards[];
};

size_t cache_entry_charge(size_t key_len, size_t value_len)
{
    size_t fixed = ENTRY_HEADER_BYTES + EXPIRY_BYTES + MALLOC_CHUNK_HEADER +
                   (MALLOC_CHUNK_ALIGN - 1) + INDEX_CHARGE;
    size_t chunk;

    /* Saturate instead of wrapping, so that a huge entry never looks small. */
    if (key_len > SIZE_MAX - fixed || value_len > SIZE_MAX - fixed - key_len)
        return SIZE_MAX;

    chunk = ENTRY_HEADER_BYTES + key_len + value_len + EXPIRY_BYTES + MALLOC_CHUNK_HEADER;
    chunk = (chunk + MALLOC_CHUNK_ALIGN - 1) / MALLOC_CHUNK_ALIGN * MALLOC_CHUNK_ALIGN;
    if (chunk < MALLOC_CHUNK_MIN)
        chunk = MALLOC_CHUNK_MIN;
    return chunk + INDEX_CHARGE;
}

static const unsigned char *entry_value(const struct hashtab_entry *entry)
{
    return entry->key + entry->key_len;
}

static size_t entry_charge(const struct hashtab_entry *entry)
{
    return cache_entry_charge(entry->key_len, entry->aux);
}

/* Returns the expiry time of an entry with ENTRY_EXPIRES. */
static uint64_t entry_expiry(const struct hashtab_entry *entry)
{
    uint64_t expires_ms;

    memcpy(&expires_ms, entry_value(entry) + entry->aux, sizeof(expires_ms));
    return expires_ms;
}

static bool entry_expired(const struct hashtab_entry *entry, uint64_t now_ms)
{
    return (entry->flags & ENTRY_EXPIRES) && now_ms >= entry_expiry(entry);
}

/* Allocates an entry holding copies of key and value. Returns NULL on failure. */
static struct hashtab_entry *entry_new(const void *key, size_t key_len, const void *value,
                                       size_t value_len, uint32_t ttl_ms, uint64_t now_ms)
{
    size_t size = ENTRY_HEADER_BYTES + key_len + value_len + (ttl_ms != 0 ? EXPIRY_BYTES : 0);
    struct hashtab_entry *entry = malloc(size);

    if (entry == NULL)
        return NULL;
    if (!hashtab__addressable(entry)) {
        free(entry);
        return NULL;
    }

    entry->aux = (uint32_t)value_len;
    entry->key_len = (uint8_t)key_len;
    entry->flags = 0;
    if (key_len > 0)
        memcpy(entry->key, key, key_len);
    if (value_len > 0)
        memcpy(entry->key + key_len, value, value_len);

    if (ttl_ms != 0) {
        uint64_t expires_ms = now_ms > UINT64_MAX - ttl_ms ? UINT64_MAX : now_ms + ttl_ms;

        memcpy(entry->key + key_len + value_len, &expires_ms, sizeof(expires_ms));
        entry->flags |= ENTRY_EXPIRES;
    }
    return entry;
}

static struct cache_shard *shard_of(struct cache *cache, uint64_t hash)
{
    return &cache->shards[(hash >> 32) & cache->shard_mask];
}

/* Unlinks the entry at pos and returns it for the caller to free. */
static struct hashtab_entry *shard_drop(struct cache_shard *shard, size_t pos)
{
    struct hashtab_entry *entry = hashtab__entry(shard->index.slots[pos]);

    hashtab__delete_at(&shard->index, pos);
    shard->bytes -= entry_charge(entry);
    if (entry->flags & ENTRY_EXPIRES)
        shard->expiring--;
    return entry;
}

/* Inserts an entry; the caller has reserved room in the index. */
static void shard_insert(struct cache_shard *shard, uint64_t hash, struct hashtab_entry *entry)
{
    size_t pos = hashtab__insert(&shard->index, hash, entry);

    if (entry->flags & ENTRY_EXPIRES) {
        uint64_t expires_ms = entry_expiry(entry);

        shard->index.slots[pos] |= SLOT_EXPIRES;
        if (shard->expiring == 0 || expires_ms < shard->next_expiry_ms)
            shard->next_expiry_ms = expires_ms;
        shard->expiring++;
    }
}

/*
 * Moves the CLOCK hand until charge more bytes fit. The caller guarantees
 * charge <= capacity, so while they do not fit the shard contains an entry, and
 * the loop ends within two turns of the hand.
 */
static void shard_make_room(struct cache_shard *shard, size_t charge, uint64_t now_ms)
{
    while (shard->bytes + charge > shard->capacity) {
        size_t pos = shard->hand & shard->index.mask;
        uint64_t slot = shard->index.slots[pos];

        if (slot == 0) {
            shard->hand = (uint32_t)((pos + 1) & shard->index.mask);
            continue;
        }

        /* The hand stays: the deletion shifted the next entry into pos. */
        if ((slot & SLOT_EXPIRES) && entry_expired(hashtab__entry(slot), now_ms)) {
            free(shard_drop(shard, pos));
            shard->expired++;
            continue;
        }

        if (slot & HASHTAB_MARK) {
            shard->index.slots[pos] = slot & ~HASHTAB_MARK;
            shard->hand = (uint32_t)((pos + 1) & shard->index.mask);
            continue;
        }

        free(shard_drop(shard, pos));
        shard->evictions++;
    }
}

struct cache *cache_create(const struct cache_config *config, const struct hash_key *key)
{
    struct cache *cache;
    size_t shards, size, shard_capacity;
    size_t ready = 0;

    if (config == NULL || key == NULL || config->shard_bits > SHARD_BITS_MAX)
        return NULL;

    shard_capacity = config->capacity_bytes >> config->shard_bits;
    if (shard_capacity < cache_entry_charge(0, 0))
        return NULL;

    /* aligned_alloc wants a size that is a multiple of the alignment. */
    shards = (size_t)1 << config->shard_bits;
    size = sizeof(*cache) + shards * sizeof(cache->shards[0]);
    size = (size + alignof(struct cache_shard) - 1) / alignof(struct cache_shard) *
           alignof(struct cache_shard);
    cache = aligned_alloc(alignof(struct cache_shard), size);
    if (cache == NULL)
        return NULL;

    cache->key = *key;
    cache->shard_mask = (uint32_t)(shards - 1);
    for (; ready < shards; ready++) {
        struct cache_shard *shard = &cache->shards[ready];

        memset(shard, 0, sizeof(*shard));
        shard->capacity = shard_capacity;
        if (hashtab__init(&shard->index) < 0)
            goto fail;
        if (pthread_mutex_init(&shard->lock, NULL) != 0) {
            hashtab__fini(&shard->index);
            goto fail;
        }
    }
    return cache;

fail:
    while (ready-- > 0) {
        (void)pthread_mutex_destroy(&cache->shards[ready].lock);
        hashtab__fini(&cache->shards[ready].index);
    }
    free(cache);
    return NULL;
}

void cache_destroy(struct cache *cache)
{
    if (cache == NULL)
        return;

    for (size_t i = 0; i <= cache->shard_mask; i++) {
        struct cache_shard *shard = &cache->shards[i];

        for (size_t pos = 0; pos <= shard->index.mask; pos++) {
            if (shard->index.slots[pos] != 0)
                free(hashtab__entry(shard->index.slots[pos]));
        }

        hashtab__fini(&shard->index);
        (void)pthread_mutex_destroy(&shard->lock);
    }
    free(cache);
}

int cache_get(struct cache *cache, const void *key, size_t key_len, uint64_t now_ms,
              cache_visit_fn visit, void *arg)
{
    struct hashtab_entry *expired = NULL;
    struct hashtab_entry *entry;
    struct cache_shard *shard;
    uint64_t *slot;
    uint64_t hash;
    size_t pos;
    int rc = -ENOENT;

    /* An overlong key matches no entry, because key_len differs from every stored one. */
    hash = hash_bytes(&cache->key, key, key_len);
    shard = shard_of(cache, hash);

    pthread_mutex_lock(&shard->lock);
    pos = hashtab__find(&shard->index, hash, key, key_len);
    if (pos == HASHTAB_NONE) {
        shard->misses++;
        goto unlock;
    }

    slot = &shard->index.slots[pos];
    entry = hashtab__entry(*slot);

    if (entry_expired(entry, now_ms)) {
        expired = shard_drop(shard, pos);
        shard->expired++;
        shard->misses++;
        goto unlock;
    }

    /* Skip the store when the bit is already set, to keep the line clean. */
    if (!(*slot & HASHTAB_MARK))
        *slot |= HASHTAB_MARK;
    shard->hits++;
    if (visit != NULL)
        visit(entry_value(entry), entry->aux, arg);
    rc = 0;

unlock:
    pthread_mutex_unlock(&shard->lock);
    free(expired);
    return rc;
}

/*
 * Stores an entry for cache_put (epoch == NULL: authoritative, increments
 * the epoch) and cache_fill (epoch given: rejected when the epoch moved).
 */
static int cache_store(struct cache *cache, const void *key, size_t key_len, const void *value,
                       size_t value_len, uint32_t ttl_ms, uint64_t now_ms, const uint64_t *epoch)
{
    struct hashtab_entry *entry = NULL;
    struct hashtab_entry *old = NULL;
    struct cache_shard *shard;
    size_t charge, pos;
    uint64_t hash;
    bool fits;
    int rc;

    if (key_len > CACHE_KEY_MAX)
        return -EINVAL;

    hash = hash_bytes(&cache->key, key, key_len);
    shard = shard_of(cache, hash);
    charge = cache_entry_charge(key_len, value_len);
    fits = charge <= shard->capacity && value_len <= UINT32_MAX;

    /* Allocate before locking so that malloc never runs inside the critical section. */
    if (fits)
        entry = entry_new(key, key_len, value, value_len, ttl_ms, now_ms);

    pthread_mutex_lock(&shard->lock);
    if (epoch != NULL && *epoch != shard->epoch) {
        rc = -ESTALE;
        goto unlock;
    }
    if (epoch == NULL)
        shard->epoch++;

    /*
     * The old entry goes first, even when the new one cannot be stored:
     * after a put the cache must never return the value it replaced.
     */
    pos = hashtab__find(&shard->index, hash, key, key_len);
    if (pos != HASHTAB_NONE)
        old = shard_drop(shard, pos);

    if (!fits) {
        rc = -E2BIG;
        goto unlock;
    }
    if (entry == NULL) {
        rc = -ENOMEM;
        goto unlock;
    }

    /* Evict before reserving, so that eviction can spare the index a doubling. */
    shard_make_room(shard, charge, now_ms);
    rc = hashtab__reserve(&shard->index);
    if (rc < 0)
        goto unlock;

    shard_insert(shard, hash, entry);
    shard->bytes += charge;
    entry = NULL;

unlock:
    pthread_mutex_unlock(&shard->lock);
    free(old);
    free(entry);
    return rc;
}

int cache_put(struct cache *cache, const void *key, size_t key_len, const void *value,
              size_t value_len, uint32_t ttl_ms, uint64_t now_ms)
{
    return cache_store(cache, key, key_len, value, value_len, ttl_ms, now_ms, NULL);
}

int cache_fill(struct cache *cache, const void *key, size_t key_len, const void *value,
               size_t value_len, uint32_t ttl_ms, uint64_t now_ms, uint64_t epoch)
{
    return cache_store(cache, key, key_len, value, value_len, ttl_ms, now_ms, &epoch);
}

uint64_t cache_epoch(struct cache *cache, const void *key, size_t key_len)
{
    struct cache_shard *shard = shard_of(cache, hash_bytes(&cache->key, key, key_len));
    uint64_t epoch;

    pthread_mutex_lock(&shard->lock);
    epoch = shard->epoch;
    pthread_mutex_unlock(&shard->lock);
    return epoch;
}

int cache_remove(struct cache *cache, const void *key, size_t key_len)
{
    struct hashtab_entry *entry = NULL;
    struct cache_shard *shard;
    uint64_t hash;
    size_t pos;

    hash = hash_bytes(&cache->key, key, key_len);
    shard = shard_of(cache, hash);

    pthread_mutex_lock(&shard->lock);
    shard->epoch++;
    pos = hashtab__find(&shard->index, hash, key, key_len);
    if (pos != HASHTAB_NONE)
        entry = shard_drop(shard, pos);
    pthread_mutex_unlock(&shard->lock);

    if (entry == NULL)
        return -ENOENT;
    free(entry);
    return 0;
}

size_t cache_expire(struct cache *cache, uint64_t now_ms)
{
    size_t dropped = 0;

    for (size_t i = 0; i <= cache->shard_mask; i++) {
        struct cache_shard *shard = &cache->shards[i];
        uint64_t next_ms = UINT64_MAX;
        size_t pos = 0;

        pthread_mutex_lock(&shard->lock);
        if (shard->expiring == 0 || now_ms < shard->next_expiry_ms) {
            pthread_mutex_unlock(&shard->lock);
            continue;
        }

        /*
         * Only slots flagged SLOT_EXPIRES lead to their entries. After a
         * deletion the position is examined again, because the cluster
         * shifted back into it. Entries shift only backwards, so none skips
         * past the scan; one that wraps from slot 0 to the end is examined
         * twice, which is harmless.
         */
        while (pos <= shard->index.mask) {
            uint64_t slot = shard->index.slots[pos];
            uint64_t expires_ms;

            if (!(slot & SLOT_EXPIRES)) {
                pos++;
                continue;
            }

            expires_ms = entry_expiry(hashtab__entry(slot));
            if (now_ms >= expires_ms) {
                free(shard_drop(shard, pos));
                shard->expired++;
                dropped++;
            } else {
                if (expires_ms < next_ms)
                    next_ms = expires_ms;
                pos++;
            }
        }
        shard->next_expiry_ms = next_ms;
        pthread_mutex_unlock(&shard->lock);
    }
    return dropped;
}

void cache_get_stats(struct cache *cache, struct cache_stats *stats)
{
    memset(stats, 0, sizeof(*stats));

    for (size_t i = 0; i <= cache->shard_mask; i++) {
        struct cache_shard *shard = &cache->shards[i];

        pthread_mutex_lock(&shard->lock);
        stats->hits += shard->hits;
        stats->misses += shard->misses;
        stats->evictions += shard->evictions;
        stats->expired += shard->expired;
        stats->entries += shard->index.count;
        stats->bytes += shard->bytes;
        pthread_mutex_unlock(&shard->lock);
    }
}
