/* Unit tests for the token-bucket rate limiter (src/core/ratelimit.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ratelimit.h"

static const struct hash_key test_key = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};

/* Shortd's default for anonymous creates: a burst of 20, then one token per second. */
static const struct ratelimit_limit default_limit = {
    .burst = 20, .refill_tokens = 1, .refill_period_ms = 1000};

static struct ratelimit *limiter_new(size_t max_buckets, unsigned shard_bits)
{
    struct ratelimit_config config = {
        .limit = default_limit, .max_buckets = max_buckets, .shard_bits = shard_bits};
    struct ratelimit *limiter = ratelimit_create(&config, &test_key);

    assert_non_null(limiter);
    return limiter;
}

static int take(struct ratelimit *limiter, const char *key, const struct ratelimit_limit *limit,
                uint64_t now_ms, struct ratelimit_result *result)
{
    return ratelimit_take(limiter, key, strlen(key), limit, now_ms, result);
}

static struct ratelimit_stats stats_of(struct ratelimit *limiter)
{
    struct ratelimit_stats stats;

    ratelimit_get_stats(limiter, &stats);
    return stats;
}

/* Takes count tokens at now_ms and checks that every take was allowed. */
static void drain(struct ratelimit *limiter, const char *key, const struct ratelimit_limit *limit,
                  unsigned count, uint64_t now_ms)
{
    struct ratelimit_result result;

    for (unsigned i = 0; i < count; i++)
        assert_int_equal(take(limiter, key, limit, now_ms, &result), 0);
}

static void test_create_rejects_bad_config(void **state)
{
    struct ratelimit_config config = {.limit = default_limit, .max_buckets = 4, .shard_bits = 2};
    struct ratelimit *limiter;

    assert_null(ratelimit_create(NULL, &test_key));
    assert_null(ratelimit_create(&config, NULL));

    config.shard_bits = 13;
    config.max_buckets = 1 << 20;
    assert_null(ratelimit_create(&config, &test_key));

    /* Every shard must hold at least one bucket. */
    config.shard_bits = 2;
    config.max_buckets = 3;
    assert_null(ratelimit_create(&config, &test_key));

    config.shard_bits = 0;
    config.max_buckets = ((size_t)1 << 30) + 1;
    assert_null(ratelimit_create(&config, &test_key));

    config.max_buckets = 4;
    config.limit.burst = 0;
    assert_null(ratelimit_create(&config, &test_key));

    config.limit = default_limit;
    config.limit.refill_period_ms = 0;
    assert_null(ratelimit_create(&config, &test_key));

    /* A refill of 0 tokens is valid: a fixed quota. */
    config.limit = default_limit;
    config.limit.refill_tokens = 0;
    config.shard_bits = 2;
    limiter = ratelimit_create(&config, &test_key);
    assert_non_null(limiter);
    ratelimit_destroy(limiter);
}

static void test_take_rejects_invalid_arguments(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 1);
    struct ratelimit_limit no_burst = {.burst = 0, .refill_tokens = 1, .refill_period_ms = 1000};
    struct ratelimit_limit no_period = {.burst = 5, .refill_tokens = 1, .refill_period_ms = 0};
    struct ratelimit_result result = {.limit = 77, .remaining = 77};
    char key[RATELIMIT_KEY_MAX + 1];

    memset(key, 'k', sizeof(key));
    assert_int_equal(ratelimit_take(limiter, key, sizeof(key), NULL, 0, &result), -EINVAL);
    assert_int_equal(take(limiter, "a", &no_burst, 0, &result), -EINVAL);
    assert_int_equal(take(limiter, "a", &no_period, 0, &result), -EINVAL);
    assert_int_equal(result.limit, 77);
    assert_int_equal(result.remaining, 77);
    assert_int_equal(stats_of(limiter).buckets, 0);

    assert_int_equal(ratelimit_take(limiter, key, RATELIMIT_KEY_MAX, NULL, 0, &result), 0);
    assert_int_equal(stats_of(limiter).buckets, 1);
    ratelimit_destroy(limiter);
}

static void test_burst_allowed_then_denied(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_result result;

    for (unsigned i = 1; i <= 20; i++) {
        assert_int_equal(take(limiter, "client", NULL, 1000, &result), 0);
        assert_int_equal(result.limit, 20);
        assert_int_equal(result.remaining, 20 - i);
        /* i tokens are missing and each takes one second. */
        assert_int_equal(result.reset_s, i);
        assert_int_equal(result.retry_after_s, i < 20 ? 0 : 1);
    }

    assert_int_equal(take(limiter, "client", NULL, 1000, &result), -EAGAIN);
    assert_int_equal(result.limit, 20);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(result.reset_s, 20);
    assert_int_equal(result.retry_after_s, 1);

    assert_int_equal(stats_of(limiter).allowed, 20);
    assert_int_equal(stats_of(limiter).denied, 1);
    ratelimit_destroy(limiter);
}

static void test_refill_gives_exact_counts(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_result result;

    drain(limiter, "client", NULL, 20, 0);

    assert_int_equal(take(limiter, "client", NULL, 999, &result), -EAGAIN);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(result.retry_after_s, 1);

    assert_int_equal(take(limiter, "client", NULL, 1000, &result), 0);
    assert_int_equal(result.remaining, 0);

    /* 2.5 tokens at 3500 ms: two takes, and half a token stays. */
    assert_int_equal(take(limiter, "client", NULL, 3500, &result), 0);
    assert_int_equal(result.remaining, 1);
    assert_int_equal(take(limiter, "client", NULL, 3500, &result), 0);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(take(limiter, "client", NULL, 3500, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 1);
    assert_int_equal(result.reset_s, 20); /* 19.5 tokens missing */

    /* The half token counts: one more whole token at 4000 ms, not 4500 ms. */
    assert_int_equal(take(limiter, "client", NULL, 4000, &result), 0);
    assert_int_equal(take(limiter, "client", NULL, 4000, &result), -EAGAIN);

    /* A long pause refills to the burst and no further. */
    assert_int_equal(take(limiter, "client", NULL, 1000000, &result), 0);
    assert_int_equal(result.remaining, 19);
    ratelimit_destroy(limiter);
}

static void test_retry_after_at_whole_token_boundaries(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_limit slow = {.burst = 2, .refill_tokens = 1, .refill_period_ms = 5000};
    struct ratelimit_result result;

    drain(limiter, "k", &slow, 2, 0);

    /* Exactly zero tokens: a whole period to wait. */
    assert_int_equal(take(limiter, "k", &slow, 0, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 5);
    assert_int_equal(result.reset_s, 10);

    /* 1001 ms missing rounds up to 2 s, 1000 ms is 1 s, 999 ms rounds up to 1 s. */
    assert_int_equal(take(limiter, "k", &slow, 3999, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 2);
    assert_int_equal(result.reset_s, 7);
    assert_int_equal(take(limiter, "k", &slow, 4000, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 1);
    assert_int_equal(result.reset_s, 6);
    assert_int_equal(take(limiter, "k", &slow, 4001, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 1);
    assert_int_equal(result.reset_s, 6);

    /* The token is whole at 5000 ms, and taking it leaves zero. */
    assert_int_equal(take(limiter, "k", &slow, 4999, &result), -EAGAIN);
    assert_int_equal(take(limiter, "k", &slow, 5000, &result), 0);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(result.retry_after_s, 5);
    assert_int_equal(result.reset_s, 10);
    ratelimit_destroy(limiter);
}

static void test_retry_after_with_fractional_rate(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    /* 1.5 tokens per second: one token every 666.67 ms. */
    struct ratelimit_limit rate = {.burst = 4, .refill_tokens = 3, .refill_period_ms = 2000};
    struct ratelimit_result result;

    drain(limiter, "k", &rate, 4, 0);

    assert_int_equal(take(limiter, "k", &rate, 0, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 1); /* 667 ms */
    assert_int_equal(result.reset_s, 3);       /* 2667 ms */

    /* At 666 ms the bucket contains 1998/2000 of a token, at 667 ms 2001/2000. */
    assert_int_equal(take(limiter, "k", &rate, 666, &result), -EAGAIN);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(result.retry_after_s, 1);
    assert_int_equal(take(limiter, "k", &rate, 667, &result), 0);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(result.retry_after_s, 1);
    assert_int_equal(result.reset_s, 3);

    /* From 1/2000 of a token, the bucket fills in 7999/3 ms, rounded up to 2667 ms. */
    assert_int_equal(ratelimit_evict_idle(limiter, 667 + 2666), 0);
    assert_int_equal(ratelimit_evict_idle(limiter, 667 + 2667), 1);
    ratelimit_destroy(limiter);
}

static void test_rate_zero_never_refills(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_limit quota = {.burst = 2, .refill_tokens = 0, .refill_period_ms = 1000};
    struct ratelimit_result result;

    assert_int_equal(take(limiter, "k", &quota, 0, &result), 0);
    assert_int_equal(result.remaining, 1);
    assert_int_equal(result.retry_after_s, 0);
    assert_int_equal(result.reset_s, RATELIMIT_NEVER);

    assert_int_equal(take(limiter, "k", &quota, 0, &result), 0);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(result.retry_after_s, RATELIMIT_NEVER);
    assert_int_equal(result.reset_s, RATELIMIT_NEVER);

    assert_int_equal(take(limiter, "k", &quota, UINT64_MAX, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, RATELIMIT_NEVER);
    assert_int_equal(result.reset_s, RATELIMIT_NEVER);

    /* A bucket that never fills is never idle. */
    assert_int_equal(ratelimit_evict_idle(limiter, UINT64_MAX), 0);
    assert_int_equal(stats_of(limiter).buckets, 1);
    ratelimit_destroy(limiter);
}

static void test_limit_per_call_overrides_default(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_limit small = {.burst = 3, .refill_tokens = 1, .refill_period_ms = 1000};
    struct ratelimit_result result;

    drain(limiter, "key-a", &small, 3, 0);
    assert_int_equal(take(limiter, "key-a", &small, 0, &result), -EAGAIN);
    assert_int_equal(result.limit, 3);
    assert_int_equal(result.reset_s, 3);

    assert_int_equal(take(limiter, "key-b", NULL, 0, &result), 0);
    assert_int_equal(result.limit, 20);
    assert_int_equal(result.remaining, 19);
    ratelimit_destroy(limiter);
}

static void test_limit_change_keeps_tokens(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_limit ten = {.burst = 10, .refill_tokens = 1, .refill_period_ms = 1000};
    struct ratelimit_limit five = {.burst = 5, .refill_tokens = 1, .refill_period_ms = 1000};
    struct ratelimit_limit five_slow_unit = {
        .burst = 5, .refill_tokens = 2, .refill_period_ms = 2000};
    struct ratelimit_result result;

    drain(limiter, "k", &ten, 2, 0);

    /* Eight tokens, cut to the new burst of five, minus this request. */
    assert_int_equal(take(limiter, "k", &five, 0, &result), 0);
    assert_int_equal(result.limit, 5);
    assert_int_equal(result.remaining, 4);

    /* The same rate in another unit keeps the count. */
    assert_int_equal(take(limiter, "k", &five_slow_unit, 0, &result), 0);
    assert_int_equal(result.remaining, 3);
    assert_int_equal(result.reset_s, 2);
    ratelimit_destroy(limiter);
}

static void test_limit_change_rounds_down(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_limit per_second = {.burst = 10, .refill_tokens = 1, .refill_period_ms = 1000};
    /* One token every 3 ms: the unit is 1/3 token. */
    struct ratelimit_limit per_3ms = {.burst = 10, .refill_tokens = 1, .refill_period_ms = 3};
    struct ratelimit_result result;

    drain(limiter, "k", &per_second, 10, 0);

    /* 1.5 tokens become 4/3 in thirds: one take, and 1/3 token stays. */
    assert_int_equal(take(limiter, "k", &per_3ms, 1500, &result), 0);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(take(limiter, "k", &per_3ms, 1500, &result), -EAGAIN);
    assert_int_equal(take(limiter, "k", &per_3ms, 1501, &result), -EAGAIN);
    assert_int_equal(take(limiter, "k", &per_3ms, 1502, &result), 0);
    ratelimit_destroy(limiter);
}

static void test_keys_are_independent(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_result result;

    drain(limiter, "a", NULL, 20, 0);
    assert_int_equal(take(limiter, "a", NULL, 0, &result), -EAGAIN);

    assert_int_equal(take(limiter, "b", NULL, 0, &result), 0);
    assert_int_equal(result.remaining, 19);
    assert_int_equal(take(limiter, "a", NULL, 0, &result), -EAGAIN);
    assert_int_equal(stats_of(limiter).buckets, 2);
    ratelimit_destroy(limiter);
}

static void test_keys_with_nul_bytes(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_limit once = {.burst = 1, .refill_tokens = 0, .refill_period_ms = 1000};
    struct ratelimit_result result;

    assert_int_equal(ratelimit_take(limiter, "a\0b", 3, &once, 0, &result), 0);
    assert_int_equal(ratelimit_take(limiter, "a\0b", 3, &once, 0, &result), -EAGAIN);

    assert_int_equal(ratelimit_take(limiter, "a\0c", 3, &once, 0, &result), 0);
    assert_int_equal(ratelimit_take(limiter, "a", 1, &once, 0, &result), 0);
    assert_int_equal(ratelimit_take(limiter, "a\0", 2, &once, 0, &result), 0);
    assert_int_equal(ratelimit_take(limiter, "", 0, &once, 0, &result), 0);
    assert_int_equal(stats_of(limiter).buckets, 5);
    ratelimit_destroy(limiter);
}

static void test_evict_idle_drops_full_buckets(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_result result;
    struct ratelimit_stats stats;

    drain(limiter, "one-missing", NULL, 1, 0);
    drain(limiter, "five-missing", NULL, 5, 0);

    assert_int_equal(ratelimit_evict_idle(limiter, 999), 0);
    assert_int_equal(ratelimit_evict_idle(limiter, 1000), 1);
    assert_int_equal(stats_of(limiter).buckets, 1);

    /* The other bucket kept its state: 15 + 1 tokens at 1000 ms. */
    assert_int_equal(take(limiter, "five-missing", NULL, 1000, &result), 0);
    assert_int_equal(result.remaining, 15);

    /* Five tokens missing at 1000 ms: full at 6000 ms. */
    assert_int_equal(ratelimit_evict_idle(limiter, 5999), 0);
    assert_int_equal(ratelimit_evict_idle(limiter, 6000), 1);

    stats = stats_of(limiter);
    assert_int_equal(stats.buckets, 0);
    assert_int_equal(stats.evicted_idle, 2);
    assert_int_equal(stats.evicted_not_full, 0);
    ratelimit_destroy(limiter);
}

static void test_evict_idle_sweeps_many_buckets(void **state)
{
    struct ratelimit *limiter = limiter_new(10000, 2);
    struct ratelimit_result result;
    char key[16];

    /* More than one sweep batch per shard. */
    for (unsigned i = 0; i < 3000; i++) {
        (void)snprintf(key, sizeof(key), "k%u", i);
        assert_int_equal(take(limiter, key, NULL, i % 2, &result), 0);
    }
    assert_int_equal(stats_of(limiter).buckets, 3000);

    assert_int_equal(ratelimit_evict_idle(limiter, 999), 0);
    assert_int_equal(ratelimit_evict_idle(limiter, 1000), 1500);
    assert_int_equal(ratelimit_evict_idle(limiter, 1000), 0);
    assert_int_equal(ratelimit_evict_idle(limiter, 1001), 1500);
    assert_int_equal(stats_of(limiter).buckets, 0);
    ratelimit_destroy(limiter);
}

static void test_insert_at_limit_drops_idle_bucket(void **state)
{
    struct ratelimit *limiter = limiter_new(2, 0);
    struct ratelimit_result result;
    struct ratelimit_stats stats;

    /* Full again at 1000 ms and at 5000 ms. */
    drain(limiter, "idle-soon", NULL, 1, 0);
    drain(limiter, "busy", NULL, 5, 0);

    assert_int_equal(take(limiter, "new", NULL, 2000, &result), 0);
    stats = stats_of(limiter);
    assert_int_equal(stats.buckets, 2);
    assert_int_equal(stats.evicted_idle, 1);
    assert_int_equal(stats.evicted_not_full, 0);

    /* A fresh bucket would leave 19: the busy one kept 15 + 2 tokens. */
    assert_int_equal(take(limiter, "busy", NULL, 2000, &result), 0);
    assert_int_equal(result.remaining, 16);
    ratelimit_destroy(limiter);
}

static void test_insert_at_limit_evicts_closest_to_full(void **state)
{
    struct ratelimit *limiter = limiter_new(2, 0);
    struct ratelimit_result result;
    struct ratelimit_stats stats;

    drain(limiter, "one-missing", NULL, 1, 0);
    drain(limiter, "five-missing", NULL, 5, 0);

    /* At 500 ms neither is full. One-missing is full first, at 1000 ms. */
    assert_int_equal(take(limiter, "new", NULL, 500, &result), 0);
    stats = stats_of(limiter);
    assert_int_equal(stats.buckets, 2);
    assert_int_equal(stats.evicted_idle, 0);
    assert_int_equal(stats.evicted_not_full, 1);

    /* 15.5 tokens: five-missing kept its state. */
    assert_int_equal(take(limiter, "five-missing", NULL, 500, &result), 0);
    assert_int_equal(result.remaining, 14);
    ratelimit_destroy(limiter);
}

static void test_evicted_key_starts_full(void **state)
{
    struct ratelimit *limiter = limiter_new(1, 0);
    struct ratelimit_result result;

    drain(limiter, "a", NULL, 20, 0);
    assert_int_equal(take(limiter, "a", NULL, 0, &result), -EAGAIN);

    /* The only bucket goes to make room for b, although a is empty. */
    assert_int_equal(take(limiter, "b", NULL, 0, &result), 0);
    assert_int_equal(stats_of(limiter).evicted_not_full, 1);

    /* This is the documented cost of the bound: a gets a fresh bucket. */
    assert_int_equal(take(limiter, "a", NULL, 0, &result), 0);
    assert_int_equal(result.remaining, 19);
    assert_int_equal(stats_of(limiter).buckets, 1);
    ratelimit_destroy(limiter);
}

static void test_bound_holds_for_many_keys(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 2);
    struct ratelimit_result result;
    struct ratelimit_stats stats;
    char key[16];

    for (unsigned i = 0; i < 10000; i++) {
        (void)snprintf(key, sizeof(key), "client-%u", i);
        assert_int_equal(take(limiter, key, NULL, i, &result), 0);
        assert_int_equal(result.remaining, 19);
        assert_true(stats_of(limiter).buckets <= 100);
    }

    stats = stats_of(limiter);
    assert_int_equal(stats.buckets, 100);
    assert_int_equal(stats.allowed, 10000);
    assert_int_equal(stats.evicted_idle + stats.evicted_not_full, 10000 - 100);
    ratelimit_destroy(limiter);
}

static void test_bound_splits_among_shards(void **state)
{
    /* 10 buckets over 4 shards: 3, 3, 2 and 2. */
    struct ratelimit *limiter = limiter_new(10, 2);
    struct ratelimit_result result;
    char key[16];

    for (unsigned i = 0; i < 1000; i++) {
        (void)snprintf(key, sizeof(key), "client-%u", i);
        assert_int_equal(take(limiter, key, NULL, 0, &result), 0);
    }
    assert_int_equal(stats_of(limiter).buckets, 10);
    ratelimit_destroy(limiter);
}

static void test_time_going_backwards_adds_nothing(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_result result;

    drain(limiter, "k", NULL, 20, 10000);

    /* The bucket's time stays at 10000 ms, and the wait is counted from the caller's time. */
    assert_int_equal(take(limiter, "k", NULL, 5000, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 6);
    assert_int_equal(result.reset_s, 25);

    assert_int_equal(take(limiter, "k", NULL, 10000, &result), -EAGAIN);
    assert_int_equal(take(limiter, "k", NULL, 10999, &result), -EAGAIN);
    assert_int_equal(take(limiter, "k", NULL, 11000, &result), 0);
    assert_int_equal(take(limiter, "k", NULL, 11000, &result), -EAGAIN);
    ratelimit_destroy(limiter);
}

static void test_huge_elapsed_time_fills_bucket(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_limit widest = {
        .burst = UINT32_MAX, .refill_tokens = UINT32_MAX, .refill_period_ms = UINT32_MAX};
    struct ratelimit_result result;

    drain(limiter, "k", NULL, 20, 0);
    assert_int_equal(take(limiter, "k", NULL, UINT64_MAX, &result), 0);
    assert_int_equal(result.remaining, 19);

    assert_int_equal(take(limiter, "wide", &widest, 0, &result), 0);
    assert_int_equal(result.remaining, UINT32_MAX - 1);
    assert_int_equal(result.reset_s, 1);
    assert_int_equal(take(limiter, "wide", &widest, UINT64_MAX, &result), 0);
    assert_int_equal(result.remaining, UINT32_MAX - 1);
    ratelimit_destroy(limiter);
}

static void test_huge_refill_after_long_pause(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    struct ratelimit_limit fast = {
        .burst = 2, .refill_tokens = UINT32_MAX, .refill_period_ms = UINT32_MAX};
    struct ratelimit_result result;

    /* 2^32 ms is past the fast path; the refill fills the bucket many times over. */
    drain(limiter, "k", &fast, 2, 0);
    assert_int_equal(take(limiter, "k", &fast, UINT64_C(1) << 32, &result), 0);
    assert_int_equal(result.remaining, 1);
    ratelimit_destroy(limiter);
}

static void test_huge_elapsed_time_refills_partly(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    /* One token every 2^32 - 1 ms, about 50 days. */
    struct ratelimit_limit slow = {
        .burst = 1000, .refill_tokens = 1, .refill_period_ms = UINT32_MAX};
    struct ratelimit_result result;
    uint64_t later = UINT64_C(1) << 33;

    drain(limiter, "k", &slow, 1000, 0);

    /* 2^33 ms refill two tokens and 2 ms worth of the third. */
    assert_int_equal(take(limiter, "k", &slow, later, &result), 0);
    assert_int_equal(result.remaining, 1);
    assert_int_equal(take(limiter, "k", &slow, later, &result), 0);
    assert_int_equal(result.remaining, 0);
    assert_int_equal(take(limiter, "k", &slow, later, &result), -EAGAIN);
    assert_int_equal(result.retry_after_s, 4294968);   /* (2^32 - 3) ms, rounded up */
    assert_int_equal(result.reset_s, RATELIMIT_NEVER); /* 4294967295 s saturates */
    ratelimit_destroy(limiter);
}

static void test_dense_requests_match_exact_rate(void **state)
{
    struct ratelimit *limiter = limiter_new(100, 0);
    /* 7 tokens per 3 s: no period is a whole number of milliseconds per token. */
    struct ratelimit_limit rate = {.burst = 5, .refill_tokens = 7, .refill_period_ms = 3000};
    struct ratelimit_result result;
    uint64_t seed = 12345, now = 0, allowed = 0;

    /*
     * Three requests at each time keep the bucket below one token, so no
     * refill is lost to the cap: the allowed count must be exactly the
     * burst plus the whole tokens refilled since the start.
     */
    while (now < 1000000) {
        for (int i = 0; i < 3; i++) {
            int rc = take(limiter, "k", &rate, now, &result);

            assert_true(rc == 0 || rc == -EAGAIN);
            allowed += rc == 0;
        }
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        now += 1 + (seed >> 33) % 50;
    }
    now = now - 1 - (seed >> 33) % 50;
    assert_int_equal(allowed, 5 + now * 7 / 3000);
    ratelimit_destroy(limiter);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_config),
        cmocka_unit_test(test_take_rejects_invalid_arguments),
        cmocka_unit_test(test_burst_allowed_then_denied),
        cmocka_unit_test(test_refill_gives_exact_counts),
        cmocka_unit_test(test_retry_after_at_whole_token_boundaries),
        cmocka_unit_test(test_retry_after_with_fractional_rate),
        cmocka_unit_test(test_rate_zero_never_refills),
        cmocka_unit_test(test_limit_per_call_overrides_default),
        cmocka_unit_test(test_limit_change_keeps_tokens),
        cmocka_unit_test(test_limit_change_rounds_down),
        cmocka_unit_test(test_keys_are_independent),
        cmocka_unit_test(test_keys_with_nul_bytes),
        cmocka_unit_test(test_evict_idle_drops_full_buckets),
        cmocka_unit_test(test_evict_idle_sweeps_many_buckets),
        cmocka_unit_test(test_insert_at_limit_drops_idle_bucket),
        cmocka_unit_test(test_insert_at_limit_evicts_closest_to_full),
        cmocka_unit_test(test_evicted_key_starts_full),
        cmocka_unit_test(test_bound_holds_for_many_keys),
        cmocka_unit_test(test_bound_splits_among_shards),
        cmocka_unit_test(test_time_going_backwards_adds_nothing),
        cmocka_unit_test(test_huge_elapsed_time_fills_bucket),
        cmocka_unit_test(test_huge_refill_after_long_pause),
        cmocka_unit_test(test_huge_elapsed_time_refills_partly),
        cmocka_unit_test(test_dense_requests_match_exact_rate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
