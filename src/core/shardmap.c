/*
 * Sharded concurrent hash map, see shardmap.h.
 *
 * A key's 64-bit hash picks everything: bits 32 and up (masked to
 * shard_bits) pick the shard, bits 0..31 the home slot in the shard's index
 * (hashtab.h) and bits 48..63 the slot tag. The shard and the slot therefore
 * use independent bits.
 *
 * Each entry is one allocation: the value pointer, then the hashtab_entry
 * header and the key bytes. The index points at the header, so the value
 * sits sizeof(void *) bytes before it.
 */
#include "core/shardmap.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "core/hashtab.h"

#define SHARD_BITS_MAX 12

/*
 * Lock protocol: a shard's lock protects its table and every entry reachable
 * from it (the key bytes and the stored value pointer). A public function
 * holds at most one shard lock at any moment, and shardmap_foreach takes
 * them one after another, so there is no lock order to keep. Callbacks run
 * with the lock held. The static shard_* helpers assume the caller holds the
 * lock. Entries leave the table under the lock and are freed after it is
 * released.
 *
 * Each shard starts on its own cache line so that threads working in
 * neighbouring shards do not contend for one line.
 */
struct shard {
    alignas(64) pthread_mutex_t lock;
    struct hashtab table;
};

struct shardmap {
    struct hash_key key;
    uint32_t shard_mask;
    struct shard shards[];
};

static void **entry_value(struct hashtab_entry *entry)
{
    return (void **)((unsigned char *)entry - sizeof(void *));
}

static void entry_free(struct hashtab_entry *entry)
{
    if (entry != NULL)
        free(entry_value(entry));
}

/* Allocates an entry holding a copy of key and value. Returns NULL on failure. */
static struct hashtab_entry *entry_new(const void *key, size_t key_len, void *value)
{
    unsigned char *block;
    struct hashtab_entry *entry;

    block = malloc(sizeof(void *) + offsetof(struct hashtab_entry, key) + key_len);
    if (block == NULL)
        return NULL;

    entry = (struct hashtab_entry *)(block + sizeof(void *));
    if (!hashtab__addressable(entry)) {
        free(block);
        return NULL;
    }

    *entry_value(entry) = value;
    entry->aux = 0;
    entry->key_len = (uint8_t)key_len;
    entry->flags = 0;
    if (key_len > 0)
        memcpy(entry->key, key, key_len);
    return entry;
}

static struct shard *shard_of(struct shardmap *map, uint64_t hash)
{
    return &map->shards[(hash >> 32) & map->shard_mask];
}

struct shardmap *shardmap_create(unsigned shard_bits, const struct hash_key *key)
{
    struct shardmap *map;
    size_t shards, size;
    size_t ready = 0;

    if (shard_bits > SHARD_BITS_MAX || key == NULL)
        return NULL;

    /* aligned_alloc wants a size that is a multiple of the alignment. */
    shards = (size_t)1 << shard_bits;
    size = sizeof(*map) + shards * sizeof(map->shards[0]);
    size = (size + alignof(struct shard) - 1) / alignof(struct shard) * alignof(struct shard);
    map = aligned_alloc(alignof(struct shard), size);
    if (map == NULL)
        return NULL;

    map->key = *key;
    map->shard_mask = (uint32_t)(shards - 1);
    for (; ready < shards; ready++) {
        struct shard *shard = &map->shards[ready];

        if (hashtab__init(&shard->table) < 0)
            goto fail;
        if (pthread_mutex_init(&shard->lock, NULL) != 0) {
            hashtab__fini(&shard->table);
            goto fail;
        }
    }
    return map;

fail:
    while (ready-- > 0) {
        (void)pthread_mutex_destroy(&map->shards[ready].lock);
        hashtab__fini(&map->shards[ready].table);
    }
    free(map);
    return NULL;
}

void shardmap_destroy(struct shardmap *map, void (*free_value)(void *value))
{
    if (map == NULL)
        return;

    for (size_t i = 0; i <= map->shard_mask; i++) {
        struct shard *shard = &map->shards[i];

        for (size_t pos = 0; pos <= shard->table.mask; pos++) {
            uint64_t slot = shard->table.slots[pos];

            if (slot == 0)
                continue;
            if (free_value != NULL)
                free_value(*entry_value(hashtab__entry(slot)));
            entry_free(hashtab__entry(slot));
        }

        hashtab__fini(&shard->table);
        (void)pthread_mutex_destroy(&shard->lock);
    }
    free(map);
}

int shardmap_get(struct shardmap *map, const void *key, size_t key_len, shardmap_visit_fn visit,
                 void *arg, void **value_out)
{
    struct shard *shard;
    uint64_t hash;
    size_t pos;
    int rc = -ENOENT;

    if (key_len > SHARDMAP_KEY_MAX)
        return -EINVAL;

    hash = hash_bytes(&map->key, key, key_len);
    shard = shard_of(map, hash);

    pthread_mutex_lock(&shard->lock);
    pos = hashtab__find(&shard->table, hash, key, key_len);
    if (pos != HASHTAB_NONE) {
        void *value = *entry_value(hashtab__entry(shard->table.slots[pos]));

        if (visit != NULL)
            visit(value, arg);
        if (value_out != NULL)
            *value_out = value;
        rc = 0;
    }
    pthread_mutex_unlock(&shard->lock);

    return rc;
}

int shardmap_insert(struct shardmap *map, const void *key, size_t key_len, void *value)
{
    struct hashtab_entry *entry;
    struct shard *shard;
    uint64_t hash;
    int rc;

    if (value == NULL || key_len > SHARDMAP_KEY_MAX)
        return -EINVAL;

    /* Allocate before locking so that malloc never runs inside the critical section. */
    entry = entry_new(key, key_len, value);
    if (entry == NULL)
        return -ENOMEM;

    hash = hash_bytes(&map->key, key, key_len);
    shard = shard_of(map, hash);

    pthread_mutex_lock(&shard->lock);
    if (hashtab__find(&shard->table, hash, key, key_len) != HASHTAB_NONE) {
        rc = -EEXIST;
    } else {
        rc = hashtab__reserve(&shard->table);
        if (rc == 0) {
            hashtab__insert(&shard->table, hash, entry);
            entry = NULL;
        }
    }
    pthread_mutex_unlock(&shard->lock);

    entry_free(entry);
    return rc;
}

int shardmap_update(struct shardmap *map, const void *key, size_t key_len,
                    shardmap_update_fn update, void *arg)
{
    struct hashtab_entry *created = NULL;
    struct hashtab_entry *removed = NULL;
    struct shard *shard;
    uint64_t hash;
    size_t pos;
    int rc;

    if (key_len > SHARDMAP_KEY_MAX)
        return -EINVAL;

    hash = hash_bytes(&map->key, key, key_len);
    shard = shard_of(map, hash);

    pthread_mutex_lock(&shard->lock);
    pos = hashtab__find(&shard->table, hash, key, key_len);
    if (pos != HASHTAB_NONE) {
        struct hashtab_entry *entry = hashtab__entry(shard->table.slots[pos]);
        void *value = update(*entry_value(entry), arg);

        if (value == NULL) {
            hashtab__delete_at(&shard->table, pos);
            removed = entry;
        } else {
            *entry_value(entry) = value;
        }
        rc = 0;
        goto unlock;
    }

    /*
     * The key is absent. Both the slot and the entry are obtained before
     * update runs, so that a failure leaves update uncalled. The allocation
     * happens under the lock, but only on this first-insert path.
     */
    rc = hashtab__reserve(&shard->table);
    if (rc < 0)
        goto unlock;
    created = entry_new(key, key_len, NULL);
    if (created == NULL) {
        rc = -ENOMEM;
        goto unlock;
    }

    *entry_value(created) = update(NULL, arg);
    if (*entry_value(created) != NULL) {
        hashtab__insert(&shard->table, hash, created);
        created = NULL;
    }
    rc = 1;

unlock:
    pthread_mutex_unlock(&shard->lock);
    entry_free(created);
    entry_free(removed);
    return rc;
}

int shardmap_remove(struct shardmap *map, const void *key, size_t key_len, void **value_out)
{
    struct hashtab_entry *entry = NULL;
    struct shard *shard;
    uint64_t hash;
    size_t pos;

    if (key_len > SHARDMAP_KEY_MAX)
        return -ENOENT;

    hash = hash_bytes(&map->key, key, key_len);
    shard = shard_of(map, hash);

    pthread_mutex_lock(&shard->lock);
    pos = hashtab__find(&shard->table, hash, key, key_len);
    if (pos != HASHTAB_NONE) {
        entry = hashtab__entry(shard->table.slots[pos]);
        hashtab__delete_at(&shard->table, pos);
    }
    pthread_mutex_unlock(&shard->lock);

    if (entry == NULL)
        return -ENOENT;

    if (value_out != NULL)
        *value_out = *entry_value(entry);
    entry_free(entry);
    return 0;
}

void shardmap_foreach(struct shardmap *map,
                      void (*visit)(const void *key, size_t key_len, void *value, void *arg),
                      void *arg)
{
    for (size_t i = 0; i <= map->shard_mask; i++) {
        struct shard *shard = &map->shards[i];

        pthread_mutex_lock(&shard->lock);
        for (size_t pos = 0; pos <= shard->table.mask; pos++) {
            uint64_t slot = shard->table.slots[pos];
            struct hashtab_entry *entry;

            if (slot == 0)
                continue;
            entry = hashtab__entry(slot);
            visit(entry->key, entry->key_len, *entry_value(entry), arg);
        }
        pthread_mutex_unlock(&shard->lock);
    }
}

size_t shardmap_count(struct shardmap *map)
{
    size_t count = 0;

    for (size_t i = 0; i <= map->shard_mask; i++) {
        struct shard *shard = &map->shards[i];

        pthread_mutex_lock(&shard->lock);
        count += shard->table.count;
        pthread_mutex_unlock(&shard->lock);
    }
    return count;
}
