/*
 * Short code generation, see codegen.h.
 *
 * Everything below fixes which code each id gets, and stored links depend
 * on it. A change to the alphabet, the round count, the round function or
 * its message encoding, the split into halves or the digit order would make
 * new codes collide with codes already handed out. Only a change that keeps
 * the known-answer table of tests/unit/test_codegen.c passing is safe.
 *
 * The permutation of [0, 2^(2h)), h = g->half_bits, is a balanced Feistel
 * network of CODEGEN_ROUNDS rounds. A value x splits into the high half
 * L = x >> h and the low half R = x & (2^h - 1). Round r (counting from 0)
 * maps (L, R) to (R, L ^ F(r, R)), and the result is (L << h) | R.
 *
 * The round function F(r, v) is SipHash-2-4 (libsodium crypto_shorthash)
 * under the 16-byte codegen key, of an 8-byte message:
 *   bytes 0..3: r as a uint32, little-endian;
 *   bytes 4..7: v as a uint32, little-endian (h <= 30, so v fits).
 * The 8-byte digest is read as a little-endian uint64 and its low h bits
 * are F(r, v). Both conversions go through htole64 and le64toh, so the
 * result does not depend on the host's byte order.
 */
#include "core/codegen.h"

#include <endian.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

/*
 * Four rounds make a strong pseudorandom permutation only asymptotically
 * (Luby-Rackoff), and halves here are as small as 12 bits. Durak and
 * Vaudenay (CRYPTO 2017, "Breaking the FF3 format-preserving encryption
 * standard over small domains") recover every round function of a 4-round
 * Feistel network from about N^1.7 known pairs, N being the number of
 * values of one half, and their attack on r >= 5 rounds costs
 * N^((r - 5) N + o(N)).
 * Users can create links and so collect (id, code) pairs, so the margin
 * matters. Ten rounds is what NIST SP 800-38G fixes for FF1, the standard
 * Feistel format-preserving cipher. Each encode costs 10 SipHash calls of
 * 8 bytes per cycle-walking pass (1.25 passes on average for 7 digits).
 */
#define CODEGEN_ROUNDS 10

static const char base62_digits[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

_Static_assert(sizeof(base62_digits) == 62 + 1, "62 digits and a NUL");
_Static_assert(CODEGEN_KEY_BYTES == crypto_shorthash_KEYBYTES, "codegen key is a SipHash key");
_Static_assert(crypto_shorthash_BYTES == 8, "SipHash-2-4 digest is 8 bytes");

/* Returns the value of a base62 digit, or -1 for any other character. */
static int base62_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

static uint64_t round_function(const struct codegen *g, unsigned round, uint64_t half)
{
    uint64_t message = htole64((uint64_t)round | half << 32);
    uint64_t digest;

    (void)crypto_shorthash((unsigned char *)&digest, (const unsigned char *)&message,
                           sizeof(message), g->key);
    return le64toh(digest) & ((UINT64_C(1) << g->half_bits) - 1);
}

static uint64_t feistel_forward(const struct codegen *g, uint64_t x)
{
    uint64_t mask = (UINT64_C(1) << g->half_bits) - 1;
    uint64_t left = x >> g->half_bits;
    uint64_t right = x & mask;

    for (unsigned r = 0; r < CODEGEN_ROUNDS; r++) {
        uint64_t next_right = left ^ round_function(g, r, right);

        left = right;
        right = next_right;
    }
    return (left << g->half_bits) | right;
}

/* Undoes feistel_forward: round r maps (L, R) back to (R ^ F(r, L), L). */
static uint64_t feistel_inverse(const struct codegen *g, uint64_t x)
{
    uint64_t mask = (UINT64_C(1) << g->half_bits) - 1;
    uint64_t left = x >> g->half_bits;
    uint64_t right = x & mask;

    for (unsigned r = CODEGEN_ROUNDS; r-- > 0;) {
        uint64_t previous_left = right ^ round_function(g, r, left);

        right = left;
        left = previous_left;
    }
    return (left << g->half_bits) | right;
}

int codegen_init(struct codegen *g, const uint8_t key[CODEGEN_KEY_BYTES], unsigned length)
{
    uint64_t space = 1;
    unsigned half_bits = 0;

    if (length < CODEGEN_LENGTH_MIN || length > CODEGEN_LENGTH_MAX)
        return -EINVAL;

    /* libsodium documents that sodium_init runs before its other functions. Repeat calls are cheap.
     */
    if (sodium_init() < 0)
        return -EIO;

    for (unsigned i = 0; i < length; i++)
        space *= 62;

    /* Smallest h with 2^(2h) >= space. It stays <= 30 because space < 2^60. */
    while ((UINT64_C(1) << (2 * half_bits)) < space)
        half_bits++;

    memcpy(g->key, key, CODEGEN_KEY_BYTES);
    g->length = length;
    g->space = space;
    g->half_bits = half_bits;
    return 0;
}

int codegen_encode(const struct codegen *g, uint64_t id, char *out)
{
    uint64_t value = id;

    if (id >= g->space)
        return -ERANGE;

    /*
     * Cycle walking: the walk from id stays on id's cycle of the bit-domain
     * permutation, and that cycle returns to id, which is below space, so
     * the loop ends. Encode therefore maps [0, space) onto itself one to
     * one.
     */
    do {
        value = feistel_forward(g, value);
    } while (value >= g->space);

    for (unsigned i = g->length; i-- > 0;) {
        out[i] = base62_digits[value % 62];
        value /= 62;
    }
    out[g->length] = '\0';
    return 0;
}

int codegen_decode(const struct codegen *g, const char *code, size_t len, uint64_t *id)
{
    uint64_t value = 0;

    if (len != g->length)
        return -EINVAL;

    for (size_t i = 0; i < len; i++) {
        int digit = base62_value(code[i]);

        if (digit < 0)
            return -EINVAL;
        value = value * 62 + (uint64_t)digit;
    }

    /* length digits are always below 62^length = space, so the walk ends as in encode. */
    do {
        value = feistel_inverse(g, value);
    } while (value >= g->space);

    *id = value;
    return 0;
}

bool codegen_is_code_shaped(const struct codegen *g, const char *text, size_t len)
{
    if (len != g->length)
        return false;

    for (size_t i = 0; i < len; i++) {
        if (base62_value(text[i]) < 0)
            return false;
    }
    return true;
}
