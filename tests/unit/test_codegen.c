/* Unit tests for core/codegen: the keyed permutation and its base62 text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codegen.h"

/* The SipHash reference key, bytes 0x00 to 0x0f. */
static const uint8_t key_sequential[CODEGEN_KEY_BYTES] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};

static const uint8_t key_other[CODEGEN_KEY_BYTES] = {
    0xa5, 0x5a, 0x3c, 0xc3, 0x0f, 0xf0, 0x96, 0x69, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
};

/* Parses base62 text as a number, independently of the code under test. */
static uint64_t parse_base62(const char *text)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    static int8_t digit_values[256];
    static int table_ready;
    uint64_t value = 0;

    if (!table_ready) {
        memset(digit_values, -1, sizeof(digit_values));
        for (int i = 0; i < 62; i++)
            digit_values[(unsigned char)digits[i]] = (int8_t)i;
        table_ready = 1;
    }

    for (const char *p = text; *p != '\0'; p++) {
        int digit = digit_values[(unsigned char)*p];

        assert_true(digit >= 0);
        value = value * 62 + (uint64_t)digit;
    }
    return value;
}

/* xorshift64: a fixed, seedable sequence of test ids. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static void init_rejects_lengths_outside_4_to_10(void **unused)
{
    struct codegen g;

    assert_int_equal(codegen_init(&g, key_sequential, 0), -EINVAL);
    assert_int_equal(codegen_init(&g, key_sequential, 3), -EINVAL);
    assert_int_equal(codegen_init(&g, key_sequential, 11), -EINVAL);
    assert_int_equal(codegen_init(&g, key_sequential, 4), 0);
    assert_int_equal(codegen_init(&g, key_sequential, 10), 0);
}

static void init_computes_space_and_half_bits(void **unused)
{
    struct codegen g;

    assert_int_equal(codegen_init(&g, key_sequential, 4), 0);
    assert_int_equal(g.length, 4);
    assert_int_equal(g.space, UINT64_C(14776336));
    assert_int_equal(g.half_bits, 12); /* 2^22 < 62^4 <= 2^24 */

    assert_int_equal(codegen_init(&g, key_sequential, 7), 0);
    assert_int_equal(g.space, UINT64_C(3521614606208));
    assert_int_equal(g.half_bits, 21); /* 2^40 < 62^7 <= 2^42 */

    assert_int_equal(codegen_init(&g, key_sequential, 10), 0);
    assert_int_equal(g.space, UINT64_C(839299365868340224));
    assert_int_equal(g.half_bits, 30); /* 2^58 < 62^10 <= 2^60 */
}

static void check_round_trip(const struct codegen *g, uint64_t id)
{
    char code[CODEGEN_LENGTH_MAX + 1];
    uint64_t decoded = UINT64_MAX;

    assert_int_equal(codegen_encode(g, id, code), 0);
    assert_int_equal(strlen(code), g->length);
    assert_true(codegen_is_code_shaped(g, code, strlen(code)));
    assert_int_equal(codegen_decode(g, code, strlen(code), &decoded), 0);
    assert_int_equal(decoded, id);
}

static void encode_decode_round_trip_each_length(void **unused)
{
    uint64_t random_state = UINT64_C(0x9e3779b97f4a7c15);

    for (unsigned length = CODEGEN_LENGTH_MIN; length <= CODEGEN_LENGTH_MAX; length++) {
        struct codegen g;

        assert_int_equal(codegen_init(&g, key_sequential, length), 0);

        check_round_trip(&g, 0);
        check_round_trip(&g, 1);
        check_round_trip(&g, 2);
        check_round_trip(&g, g.space - 2);
        check_round_trip(&g, g.space - 1);

        for (uint64_t i = 0; i < 1000; i++)
            check_round_trip(&g, i * (g.space / 1000) + i % 7);
        for (int i = 0; i < 1000; i++)
            check_round_trip(&g, next_random(&random_state) % g.space);
    }
}

static void decode_encode_round_trip_random_codes(void **unused)
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint64_t random_state = UINT64_C(0x2545f4914f6cdd1d);

    for (unsigned length = CODEGEN_LENGTH_MIN; length <= CODEGEN_LENGTH_MAX; length++) {
        struct codegen g;

        assert_int_equal(codegen_init(&g, key_other, length), 0);
        for (int i = 0; i < 500; i++) {
            char code[CODEGEN_LENGTH_MAX + 1];
            char encoded[CODEGEN_LENGTH_MAX + 1];
            uint64_t id = UINT64_MAX;

            for (unsigned j = 0; j < length; j++)
                code[j] = digits[next_random(&random_state) % 62];
            code[length] = '\0';

            assert_int_equal(codegen_decode(&g, code, length, &id), 0);
            assert_true(id < g.space);
            assert_int_equal(codegen_encode(&g, id, encoded), 0);
            assert_string_equal(encoded, code);
        }
    }
}

static void encode_rejects_id_at_space(void **unused)
{
    char code[CODEGEN_LENGTH_MAX + 1];

    for (unsigned length = CODEGEN_LENGTH_MIN; length <= CODEGEN_LENGTH_MAX; length++) {
        struct codegen g;

        assert_int_equal(codegen_init(&g, key_sequential, length), 0);
        assert_int_equal(codegen_encode(&g, g.space, code), -ERANGE);
        assert_int_equal(codegen_encode(&g, g.space + 1, code), -ERANGE);
        assert_int_equal(codegen_encode(&g, UINT64_MAX, code), -ERANGE);
    }
}

static void decode_rejects_wrong_length(void **unused)
{
    struct codegen g;
    char code[CODEGEN_LENGTH_MAX + 2];
    uint64_t id = 42;

    assert_int_equal(codegen_init(&g, key_sequential, 7), 0);
    assert_int_equal(codegen_encode(&g, 12345, code), 0);
    code[7] = '0';
    code[8] = '\0';

    assert_int_equal(codegen_decode(&g, code, 0, &id), -EINVAL);
    assert_int_equal(codegen_decode(&g, code, 6, &id), -EINVAL);
    assert_int_equal(codegen_decode(&g, code, 8, &id), -EINVAL);
    assert_int_equal(id, 42);
}

static void decode_rejects_non_base62_characters(void **unused)
{
    static const char bad[] = {'-', '_', ' ', '\0', '/',  '.',        '~',       '@',
                               '[', '`', '{', ':',  '\n', (char)0x80, (char)0xff};
    struct codegen g;
    char valid[8];

    assert_int_equal(codegen_init(&g, key_sequential, 7), 0);
    assert_int_equal(codegen_encode(&g, 987654321, valid), 0);

    for (size_t i = 0; i < sizeof(bad); i++) {
        for (unsigned position = 0; position < 7; position++) {
            char code[8];
            uint64_t id = 42;

            memcpy(code, valid, sizeof(code));
            code[position] = bad[i];
            assert_int_equal(codegen_decode(&g, code, 7, &id), -EINVAL);
            assert_int_equal(id, 42);
        }
    }
}

/*
 * Encodes every id of length 4 and marks its code's value in a bitmap: no
 * value may be marked twice, and each must be below the space. With as many
 * ids as values, that makes encode a bijection of [0, 62^4).
 */
static void encode_is_bijection_for_length_4(void **unused)
{
    struct codegen g;
    uint8_t *seen;
    uint64_t duplicates = 0;
    uint64_t first_duplicate_id = UINT64_MAX;

    assert_int_equal(codegen_init(&g, key_sequential, 4), 0);
    seen = calloc(g.space / 8 + 1, 1);
    assert_non_null(seen);

    for (uint64_t id = 0; id < g.space; id++) {
        char code[5];
        uint64_t value;

        assert_int_equal(codegen_encode(&g, id, code), 0);
        value = parse_base62(code);
        assert_true(value < g.space);

        if (seen[value / 8] & (1u << (value % 8))) {
            if (duplicates == 0)
                first_duplicate_id = id;
            duplicates++;
        }
        seen[value / 8] |= (uint8_t)(1u << (value % 8));
    }

    assert_int_equal(first_duplicate_id, UINT64_MAX);
    assert_int_equal(duplicates, 0);
    free(seen);
}

static void different_keys_give_different_codes(void **unused)
{
    struct codegen a;
    struct codegen b;
    int equal = 0;

    assert_int_equal(codegen_init(&a, key_sequential, 7), 0);
    assert_int_equal(codegen_init(&b, key_other, 7), 0);

    for (uint64_t id = 0; id < 1000; id++) {
        char code_a[8];
        char code_b[8];

        assert_int_equal(codegen_encode(&a, id, code_a), 0);
        assert_int_equal(codegen_encode(&b, id, code_b), 0);
        if (strcmp(code_a, code_b) == 0)
            equal++;
    }

    /* Two random permutations agree on a given id with probability 1 / 62^7. */
    assert_int_equal(equal, 0);
}

/*
 * Codes of consecutive ids must look unrelated. Among 1000 random codes the
 * first character takes nearly all 62 values (62 (1 - e^(-1000/62)) on
 * average), and about half of the neighbouring pairs are in ascending
 * order. An order-preserving mapping fails both checks.
 */
static void consecutive_ids_give_unordered_codes(void **unused)
{
    struct codegen g;
    char codes[1000][8];
    int first_char_seen[256] = {0};
    int distinct_first_chars = 0;
    int ascending_pairs = 0;

    assert_int_equal(codegen_init(&g, key_sequential, 7), 0);
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(codegen_encode(&g, 5000 + i, codes[i]), 0);

    for (int i = 0; i < 1000; i++) {
        unsigned char first = (unsigned char)codes[i][0];

        if (first_char_seen[first]++ == 0)
            distinct_first_chars++;
        if (i > 0 && strcmp(codes[i - 1], codes[i]) < 0)
            ascending_pairs++;
    }

    assert_in_range(distinct_first_chars, 50, 62);
    assert_in_range(ascending_pairs, 400, 600);
}

struct known_answer {
    const uint8_t *key;
    unsigned length;
    uint64_t id;
    const char *code;
};

/*
 * Codes computed once by this implementation and pinned: a stored code must
 * keep meaning the same id in every later version, so a change here means
 * the permutation changed and new codes could collide with old ones.
 */
static const struct known_answer known_answers[] = {
    {key_sequential, 4, UINT64_C(0), "0FAU"},
    {key_sequential, 4, UINT64_C(1), "LTcM"},
    {key_sequential, 4, UINT64_C(1000000), "WN6v"},
    {key_sequential, 4, UINT64_C(14776335), "KAjD"},
    {key_sequential, 5, UINT64_C(0), "sZfk4"},
    {key_sequential, 5, UINT64_C(1), "9jKBj"},
    {key_sequential, 5, UINT64_C(1000000), "3p9lZ"},
    {key_sequential, 5, UINT64_C(916132831), "nQ6O7"},
    {key_sequential, 6, UINT64_C(0), "Qfo3BD"},
    {key_sequential, 6, UINT64_C(1), "S2sVcs"},
    {key_sequential, 6, UINT64_C(1000000), "FSIHRc"},
    {key_sequential, 6, UINT64_C(56800235583), "F2YlY0"},
    {key_sequential, 7, UINT64_C(0), "vlAk7sL"},
    {key_sequential, 7, UINT64_C(1), "TuD50tv"},
    {key_sequential, 7, UINT64_C(1000000), "PXtvB7m"},
    {key_sequential, 7, UINT64_C(3521614606207), "6Cdy0ek"},
    {key_sequential, 8, UINT64_C(0), "xNY1lYnD"},
    {key_sequential, 8, UINT64_C(1), "Nlk9Qtxb"},
    {key_sequential, 8, UINT64_C(1000000), "CzTLS3rj"},
    {key_sequential, 8, UINT64_C(218340105584895), "cAAqjqEj"},
    {key_sequential, 9, UINT64_C(0), "9r51S2c43"},
    {key_sequential, 9, UINT64_C(1), "98EKOb1Xu"},
    {key_sequential, 9, UINT64_C(1000000), "tS4f4fauu"},
    {key_sequential, 9, UINT64_C(13537086546263551), "gMzxFNAMh"},
    {key_sequential, 10, UINT64_C(0), "eJli4CK28X"},
    {key_sequential, 10, UINT64_C(1), "8FbE47mNzo"},
    {key_sequential, 10, UINT64_C(1000000), "2n1DASOI9P"},
    {key_sequential, 10, UINT64_C(839299365868340223), "Ucas62bQBP"},
    {key_other, 7, UINT64_C(0), "MIbhzsg"},
    {key_other, 7, UINT64_C(1), "KcC64Od"},
    {key_other, 7, UINT64_C(2), "DaZZbNq"},
    {key_other, 7, UINT64_C(3), "tu9nWbj"},
    {key_other, 7, UINT64_C(123456789012), "QB3FQY4"},
    {key_other, 4, UINT64_C(0), "76Sr"},
    {key_other, 10, UINT64_C(839299365868340223), "EIyensYRuR"},
};

static void encode_matches_known_answers(void **unused)
{
    for (size_t i = 0; i < sizeof(known_answers) / sizeof(known_answers[0]); i++) {
        const struct known_answer *answer = &known_answers[i];
        struct codegen g;
        char code[CODEGEN_LENGTH_MAX + 1];
        uint64_t id = UINT64_MAX;

        assert_int_equal(codegen_init(&g, answer->key, answer->length), 0);
        assert_int_equal(codegen_encode(&g, answer->id, code), 0);
        assert_string_equal(code, answer->code);
        assert_int_equal(codegen_decode(&g, answer->code, strlen(answer->code), &id), 0);
        assert_int_equal(id, answer->id);
    }
}

static void is_code_shaped_checks_length_and_alphabet(void **unused)
{
    struct codegen g;

    assert_int_equal(codegen_init(&g, key_sequential, 7), 0);

    assert_true(codegen_is_code_shaped(&g, "0000000", 7));
    assert_true(codegen_is_code_shaped(&g, "zzzzzzz", 7));
    assert_true(codegen_is_code_shaped(&g, "aZ09bY8", 7));

    assert_false(codegen_is_code_shaped(&g, "", 0));
    assert_false(codegen_is_code_shaped(&g, "abcdef", 6));
    assert_false(codegen_is_code_shaped(&g, "abcdefgh", 8));
    assert_false(codegen_is_code_shaped(&g, "abc-efg", 7));
    assert_false(codegen_is_code_shaped(&g, "abc_efg", 7));
    assert_false(codegen_is_code_shaped(&g, "abcdef ", 7));
    assert_false(codegen_is_code_shaped(&g, "abc\0efg", 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_rejects_lengths_outside_4_to_10),
        cmocka_unit_test(init_computes_space_and_half_bits),
        cmocka_unit_test(encode_decode_round_trip_each_length),
        cmocka_unit_test(decode_encode_round_trip_random_codes),
        cmocka_unit_test(encode_rejects_id_at_space),
        cmocka_unit_test(decode_rejects_wrong_length),
        cmocka_unit_test(decode_rejects_non_base62_characters),
        cmocka_unit_test(encode_is_bijection_for_length_4),
        cmocka_unit_test(different_keys_give_different_codes),
        cmocka_unit_test(consecutive_ids_give_unordered_codes),
        cmocka_unit_test(encode_matches_known_answers),
        cmocka_unit_test(is_code_shaped_checks_length_and_alphabet),
    };

    /* TEST_FILTER, a glob over test names, runs a subset, for example to time one test. */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
