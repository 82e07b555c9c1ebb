/* API keys, see keys.h. */
#include "app/keys.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/shardmap.h"

#define SECRET_PREFIX "sk_"
#define SECRET_BYTES  32

struct keys {
    struct shardmap *map;   /* hash -> struct key_info, malloc'd */
    struct shardmap *by_id; /* id -> the key's hash, malloc'd */
};

struct keys *keys_create(const struct hash_key *key)
{
    struct keys *keys = calloc(1, sizeof(*keys));

    if (keys == NULL)
        return NULL;
    keys->map = shardmap_create(2, key);
    keys->by_id = shardmap_create(2, key);
    if (keys->map == NULL || keys->by_id == NULL) {
        if (keys->map != NULL)
            shardmap_destroy(keys->map, NULL);
        if (keys->by_id != NULL)
            shardmap_destroy(keys->by_id, NULL);
        free(keys);
        return NULL;
    }
    return keys;
}

void keys_destroy(struct keys *keys)
{
    if (keys == NULL)
        return;
    shardmap_destroy(keys->by_id, free);
    shardmap_destroy(keys->map, free);
    free(keys);
}

/* Replaces the stored info in place, or inserts the new one. */
static void *store_info(void *value, void *arg)
{
    struct key_info *info = arg;

    if (value == NULL)
        return info;
    memcpy(value, info, sizeof(*info));
    return value;
}

/* Keeps the hash an id already has (a key's hash never changes). */
static void *keep_or_insert(void *value, void *arg)
{
    return value != NULL ? value : arg;
}

int keys_put(struct keys *keys, const struct store_key *key)
{
    struct key_info *info = malloc(sizeof(*info));
    int rc;

    if (info == NULL)
        return -ENOMEM;
    info->id = key->id;
    info->revoked = key->revoked_at != 0;
    info->rate = key->rate;
    info->burst = key->burst;

    uint8_t *hash;

    rc = shardmap_update(keys->map, key->hash, STORE_KEY_HASH_BYTES, store_info, info);
    if (rc != 1)
        free(info); /* updated in place, or not stored */
    if (rc < 0)
        return rc;

    hash = malloc(STORE_KEY_HASH_BYTES);
    if (hash == NULL)
        return -ENOMEM;
    memcpy(hash, key->hash, STORE_KEY_HASH_BYTES);
    rc = shardmap_update(keys->by_id, &key->id, sizeof(key->id), keep_or_insert, hash);
    if (rc != 1)
        free(hash); /* the id had its hash already, or nothing was stored */
    return rc < 0 ? rc : 0;
}

struct revoke {
    int64_t id;
    bool found;
};

static void revoke_one(const void *key, size_t key_len, void *value, void *arg)
{
    struct key_info *info = value;
    struct revoke *revoke = arg;

    /* Runs under the shard lock, as do lookups that copy the info. */
    if (info->id == revoke->id) {
        info->revoked = true;
        revoke->found = true;
    }
}

int keys_revoke(struct keys *keys, int64_t id)
{
    struct revoke revoke = {id, false};

    shardmap_foreach(keys->map, revoke_one, &revoke);
    return revoke.found ? 0 : -ENOENT;
}

static void copy_hash(void *value, void *arg)
{
    memcpy(arg, value, STORE_KEY_HASH_BYTES);
}

static void read_revoked(void *value, void *arg)
{
    *(bool *)arg = ((const struct key_info *)value)->revoked;
}

bool keys_is_revoked(struct keys *keys, int64_t id)
{
    uint8_t hash[STORE_KEY_HASH_BYTES];
    bool revoked = true;

    /* The flag is read under the hash map's lock, which revoking holds too. */
    if (shardmap_get(keys->by_id, &id, sizeof(id), copy_hash, hash, NULL) == 0)
        (void)shardmap_get(keys->map, hash, sizeof(hash), read_revoked, &revoked, NULL);
    return revoked;
}

static int load_one(const struct store_key *key, void *arg)
{
    return keys_put(arg, key) < 0 ? 1 : 0;
}

int keys_load(struct keys *keys, struct store *store)
{
    return store_list_keys(store, load_one, keys);
}

static void copy_info(void *value, void *arg)
{
    memcpy(arg, value, sizeof(struct key_info));
}

int keys_lookup(struct keys *keys, const char *secret, size_t len, struct key_info *info)
{
    uint8_t hash[STORE_KEY_HASH_BYTES];

    keys_hash(secret, len, hash);
    return shardmap_get(keys->map, hash, sizeof(hash), copy_info, info, NULL);
}

void keys_hash(const char *secret, size_t len, uint8_t hash[STORE_KEY_HASH_BYTES])
{
    (void)crypto_generichash(hash, STORE_KEY_HASH_BYTES, (const unsigned char *)secret, len, NULL,
                             0);
}

void keys_generate(char secret[KEYS_SECRET_SIZE], uint8_t hash[STORE_KEY_HASH_BYTES])
{
    unsigned char random[SECRET_BYTES];
    size_t prefix = strlen(SECRET_PREFIX);

    randombytes_buf(random, sizeof(random));
    memcpy(secret, SECRET_PREFIX, prefix);
    (void)sodium_bin2base64(secret + prefix, KEYS_SECRET_SIZE - prefix, random, sizeof(random),
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(random, sizeof(random));
    keys_hash(secret, strlen(secret), hash);
}
