/*
 * Short code generation: base62 text of a keyed permutation of a counter.
 *
 * Every link gets the next id from a counter. The id is mapped through a
 * permutation of [0, 62^length) chosen by a secret key, then written as
 * exactly `length` base62 digits. A permutation is a bijection, so distinct
 * ids always give distinct codes and no uniqueness retry is needed, and
 * without the key consecutive ids give unrelated codes, so codes do not
 * reveal creation order or volume.
 *
 * The permutation is a balanced Feistel network over the smallest even
 * number of bits that covers 62^length, with cycle walking: a result outside
 * [0, 62^length) is permuted again until it falls inside. The bit domain is
 * less than four times the code space, so the expected number of passes is
 * below four (1.25 for 7 digits, where 2^42 / 62^7 = 1.249).
 *
 * A struct codegen is immutable after codegen_init, so any thread may use it.
 */
#ifndef SHORTD_CORE_CODEGEN_H
#define SHORTD_CORE_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CODEGEN_KEY_BYTES  16
#define CODEGEN_LENGTH_MIN 4
#define CODEGEN_LENGTH_MAX 10 /* 62^10 < 2^60, so the domain fits in 64 bits */

struct codegen {
    uint8_t key[CODEGEN_KEY_BYTES];
    unsigned length;    /* digits in every code */
    uint64_t space;     /* 62^length: ids must be below it */
    unsigned half_bits; /* bits in each Feistel half */
};

/*
 * Prepares g for codes of `length` digits under key. Returns 0, -EINVAL
 * when length is outside [CODEGEN_LENGTH_MIN, CODEGEN_LENGTH_MAX], or -EIO
 * when libsodium cannot be initialised.
 */
int codegen_init(struct codegen *g, const uint8_t key[CODEGEN_KEY_BYTES], unsigned length);

/*
 * Writes the code for id into out (g->length characters and a NUL, so out
 * needs g->length + 1 bytes). Returns 0, or -ERANGE when id >= g->space.
 * Every string of g->length base62 digits is the code of some id, words
 * that the server reserves included ("metrics" and "healthz" at length 7),
 * so the caller must skip an id whose code is reserved.
 */
int codegen_encode(const struct codegen *g, uint64_t id, char *out);

/*
 * Inverts codegen_encode: stores in *id the id whose code is `code`.
 * Returns 0, or -EINVAL when code is not g->length base62 digits. Every
 * string of g->length base62 digits decodes to some id below g->space,
 * whether or not that id was ever issued, so the caller must still look
 * the id up.
 */
int codegen_decode(const struct codegen *g, const char *code, size_t len, uint64_t *id);

/* Returns whether text has the shape of a generated code of g. */
bool codegen_is_code_shaped(const struct codegen *g, const char *text, size_t len);

#endif
