/*
 * API keys: generation, hashing, and the in-memory registry that
 * authenticates requests.
 *
 * A secret is "sk_" followed by 43 base64url characters of 32 random bytes,
 * shown to the admin once when the key is created. Only its BLAKE2b-256 hash
 * is stored. Secrets carry 256 bits of entropy, so a fast hash is enough: a
 * slow password hash would only add latency to every request.
 *
 * The registry maps hash -> key and is loaded from the store at start; the
 * writer adds keys and marks revocations after each commit. Lookups run on
 * I/O threads.
 */
#ifndef SHORTD_APP_KEYS_H
#define SHORTD_APP_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"
#include "store/store.h"

/* Bytes of a secret, with its NUL. */
#define KEYS_SECRET_SIZE 48

struct keys;

/* What the registry knows of a key. */
struct key_info {
    int64_t id;
    bool revoked;
    uint32_t rate;  /* thousandths of a request per second, 0 for the server default */
    uint32_t burst; /* 0 for the server default */
};

/* Creates an empty registry. Returns NULL on allocation failure. */
struct keys *keys_create(const struct hash_key *key);

/* Frees the registry. No other thread may use it. */
void keys_destroy(struct keys *keys);

/*
 * Adds key to the registry or replaces what it knew of it. Returns 0 or
 * -ENOMEM. Any thread.
 */
int keys_put(struct keys *keys, const struct store_key *key);

/* Marks the key with this id revoked. Returns 0, or -ENOENT. Any thread. */
int keys_revoke(struct keys *keys, int64_t id);

/* Returns whether the key with this id is revoked (or unknown). Any thread. */
bool keys_is_revoked(struct keys *keys, int64_t id);

/*
 * Reads every key of the store into the registry. Returns the number read or
 * a negative errno.
 */
int keys_load(struct keys *keys, struct store *store);

/*
 * Looks up a presented secret. Returns 0 and fills *info, or -ENOENT when no
 * key has that secret. A revoked key is found, with info->revoked set. Any
 * thread.
 */
int keys_lookup(struct keys *keys, const char *secret, size_t len, struct key_info *info);

/* Writes a new random secret (NUL-terminated) and its hash. */
void keys_generate(char secret[KEYS_SECRET_SIZE], uint8_t hash[STORE_KEY_HASH_BYTES]);

/* Writes the hash of secret[0..len) by which keys are stored. */
void keys_hash(const char *secret, size_t len, uint8_t hash[STORE_KEY_HASH_BYTES]);

#endif
