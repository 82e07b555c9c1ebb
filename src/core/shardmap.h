/*
 * Sharded concurrent hash map from byte-string keys to pointers.
 *
 * The table is split into a power-of-two number of shards, each an open
 * addressing table behind its own mutex, so threads that touch different
 * shards never wait for each other. Keys are hashed with a keyed hash
 * (hash.h), so a client that picks keys cannot aim them at one shard or one
 * probe chain.
 *
 * Workload: any number of threads may call every function concurrently,
 * except shardmap_destroy. Callbacks run while the shard lock is held: they
 * must be short, must not block and must not call back into the same map.
 *
 * The map copies keys; it never dereferences or frees values, except through
 * the free function given to shardmap_destroy.
 */
#ifndef SHORTD_CORE_SHARDMAP_H
#define SHORTD_CORE_SHARDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"

struct shardmap;

/* Longest key the map accepts, in bytes. */
#define SHARDMAP_KEY_MAX 255

/*
 * Called with the current value of a key (NULL when the key is absent) under
 * the shard lock. Returns the value to store, or NULL to remove the key.
 */
typedef void *(*shardmap_update_fn)(void *value, void *arg);

/* Called with the value of a key under the shard lock. */
typedef void (*shardmap_visit_fn)(void *value, void *arg);

/*
 * Creates a map with 2^shard_bits shards (0 to 12). Returns NULL on
 * allocation failure or a shard_bits out of range. The key is copied.
 */
struct shardmap *shardmap_create(unsigned shard_bits, const struct hash_key *key);

/*
 * Frees the map and its keys, calling free_value (when not NULL) on each
 * stored value. No other thread may use the map during or after the call.
 */
void shardmap_destroy(struct shardmap *map, void (*free_value)(void *value));

/*
 * Looks up key. When found, calls visit (when not NULL) with its value under
 * the shard lock, stores the value in *value_out (when not NULL) and returns
 * 0. Returns -ENOENT when absent and -EINVAL for a key longer than
 * SHARDMAP_KEY_MAX.
 */
int shardmap_get(struct shardmap *map, const void *key, size_t key_len, shardmap_visit_fn visit,
                 void *arg, void **value_out);

/*
 * Inserts key with value (not NULL) unless the key is present. Returns 0 when
 * inserted, -EEXIST when present (the map is unchanged), -EINVAL for a NULL
 * value or an overlong key, -ENOMEM when the shard cannot grow.
 */
int shardmap_insert(struct shardmap *map, const void *key, size_t key_len, void *value);

/*
 * Runs update on the key's current value under the shard lock and stores
 * what it returns: a new value replaces or inserts, NULL removes (or, for an
 * absent key, stores nothing). This is the one way to read and change a key
 * atomically. Returns 1 when the key was absent before the call, 0 when it
 * was present, -EINVAL for an overlong key. Room for an insert is made
 * before update runs, so -ENOMEM means the shard could not grow and update
 * was not called.
 */
int shardmap_update(struct shardmap *map, const void *key, size_t key_len,
                    shardmap_update_fn update, void *arg);

/*
 * Removes key. Returns 0 and stores the removed value in *value_out (when not
 * NULL), or -ENOENT when the key is absent, which includes every key longer
 * than SHARDMAP_KEY_MAX.
 */
int shardmap_remove(struct shardmap *map, const void *key, size_t key_len, void **value_out);

/*
 * Calls visit on every key and value, one shard at a time under that shard's
 * lock. Keys added or removed concurrently in other shards may or may not be
 * seen. The callback must not change the map.
 */
void shardmap_foreach(struct shardmap *map,
                      void (*visit)(const void *key, size_t key_len, void *value, void *arg),
                      void *arg);

/*
 * Returns the number of keys, summed shard by shard under each shard's lock
 * in turn, so concurrent changes may or may not be counted.
 */
size_t shardmap_count(struct shardmap *map);

#endif
