/* Keyed hashing, see hash.h. */
#include "core/hash.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

int hash_key_random(struct hash_key *key)
{
    if (sodium_init() < 0)
        return -EIO;

    randombytes_buf(key->bytes, sizeof(key->bytes));
    return 0;
}

uint64_t hash_bytes(const struct hash_key *key, const void *data, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t value;

    (void)crypto_shorthash(out, data, len, key->bytes);
    memcpy(&value, out, sizeof(value));
    return value;
}
