/*
 * Keyed 64-bit hashing of byte strings.
 *
 * Clients choose aliases and request paths, so every table indexed by such
 * strings uses a keyed hash: without the key an attacker cannot build a set
 * of strings that land in one bucket. The function is SipHash-2-4 from
 * libsodium (crypto_shorthash), which is designed for exactly this use.
 */
#ifndef SHORTD_CORE_HASH_H
#define SHORTD_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_KEY_BYTES 16

struct hash_key {
    uint8_t bytes[HASH_KEY_BYTES];
};

/*
 * Fills key with random bytes from the operating system. Returns 0, or
 * -EIO when libsodium cannot be initialised. Safe to call from any thread.
 */
int hash_key_random(struct hash_key *key);

/* Returns the SipHash-2-4 of data under key. Safe to call from any thread. */
uint64_t hash_bytes(const struct hash_key *key, const void *data, size_t len);

#endif
