/*
 * Stress test of the rate limiter for ThreadSanitizer: several threads take
 * tokens for a few shared hot keys, while a stream of one-off churn keys
 * keeps a small limiter at its bucket limit, so eviction runs all the time.
 *
 * Time comes from a shared simulated clock that moves in phases: every
 * thread makes all its calls of a phase at the same time T_k = k * PHASE_MS,
 * and the clock advances between two barriers. A hot key gets exactly one
 * token per phase, so its allowed requests over phases i..j must not exceed
 * burst + (j - i), whichever threads made them. Every phase brings more hot
 * requests than tokens, so the total must even be exactly burst + phases - 1.
 *
 * That bound assumes no hot bucket is evicted before it is full, which the
 * eviction rule guarantees here. A hot bucket holds whole tokens only, so
 * it fills at T_k + PHASE_MS or later. A churn bucket (burst 1, one token
 * per ms) created in phase m fills at T_m + 1 ms, which makes it idle in
 * any later phase and the bucket that fills soonest in its own. Each shard
 * holds more churn than hot buckets, so every eviction sample contains a
 * churn bucket, and a churn bucket is always chosen over a hot one.
 *
 * The threads also read the bucket count during the run: it must never
 * exceed MAX_BUCKETS.
 *
 * Exits 0 on success; prints each failed check and exits 1 otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ratelimit.h"

#define THREADS     4
#define PHASES      1000
#define PHASE_MS    1000
#define HOT_KEYS    4
#define HOT_TAKES   5  /* per thread, hot key and phase */
#define CHURN_TAKES 40 /* per thread and phase */
#define SHARD_BITS  2
#define MAX_BUCKETS 64 /* 16 per shard, more than HOT_KEYS plus a full sample */
#define HOT_BURST   5
#define STATS_READS 2 /* per thread and phase */

static atomic_int failures;
static _Atomic uint64_t clock_ms;
static pthread_barrier_t phase_start, phase_end;

/* One token per phase for hot keys, whole tokens only. */
static const struct ratelimit_limit hot_limit = {
    .burst = HOT_BURST, .refill_tokens = 1, .refill_period_ms = PHASE_MS};

/* A churn bucket is full again 1 ms after its one request. */
static const struct ratelimit_limit churn_limit = {
    .burst = 1, .refill_tokens = 1, .refill_period_ms = 1};

#define CHECK_EQ(expected, actual)                                                                 \
    do {                                                                                           \
        long long expected_ = (long long)(expected);                                               \
        long long actual_ = (long long)(actual);                                                   \
        if (expected_ != actual_) {                                                                \
            fprintf(stderr, "%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #actual,   \
                    expected_, actual_);                                                           \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

#define CHECK(condition)                                                                           \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition);          \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

struct worker {
    pthread_t thread;
    unsigned id;
    struct ratelimit *limiter;
    uint64_t seed;
    uint64_t churn_allowed;
    uint64_t max_buckets_seen;
    uint16_t hot_allowed[HOT_KEYS][PHASES];
};

static uint32_t next_random(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*seed >> 33);
}

static void take_hot(struct worker *w, unsigned key, unsigned phase, uint64_t now)
{
    char text[16];
    int len = snprintf(text, sizeof(text), "hot-%u", key);
    struct ratelimit_result result;
    int rc = ratelimit_take(w->limiter, text, (size_t)len, NULL, now, &result);

    CHECK(rc == 0 || rc == -EAGAIN);
    CHECK_EQ(HOT_BURST, result.limit);
    CHECK(result.remaining < HOT_BURST);
    if (rc == 0)
        w->hot_allowed[key][phase]++;
    else
        CHECK(result.retry_after_s >= 1);
}

/* A key no other call uses: its bucket is new, so the request is allowed. */
static void take_churn(struct worker *w, unsigned phase, unsigned index, uint64_t now)
{
    char text[32];
    int len = snprintf(text, sizeof(text), "churn-%u-%u-%u", w->id, phase, index);
    struct ratelimit_result result;
    int rc = ratelimit_take(w->limiter, text, (size_t)len, &churn_limit, now, &result);

    CHECK_EQ(0, rc);
    if (rc == 0)
        w->churn_allowed++;
}

static void read_bucket_count(struct worker *w)
{
    struct ratelimit_stats stats;

    ratelimit_get_stats(w->limiter, &stats);
    CHECK(stats.buckets <= MAX_BUCKETS);
    if (stats.buckets > w->max_buckets_seen)
        w->max_buckets_seen = stats.buckets;
}

static void run_phase(struct worker *w, unsigned phase, uint64_t now)
{
    unsigned hot_left[HOT_KEYS];
    unsigned hot_total = HOT_KEYS * HOT_TAKES;
    unsigned churn = 0, stats_reads = 0;

    for (unsigned k = 0; k < HOT_KEYS; k++)
        hot_left[k] = HOT_TAKES;

    /* Mix the calls in a random order, so threads collide on different keys each phase. */
    while (hot_total > 0 || churn < CHURN_TAKES || stats_reads < STATS_READS) {
        uint32_t choice = next_random(&w->seed) % 64;

        if (choice < 2 && stats_reads < STATS_READS) {
            read_bucket_count(w);
            stats_reads++;
        } else if (choice < 3 && w->id == 0) {
            (void)ratelimit_evict_idle(w->limiter, now);
        } else if (choice < 30 && hot_total > 0) {
            unsigned key = next_random(&w->seed) % HOT_KEYS;

            while (hot_left[key] == 0)
                key = (key + 1) % HOT_KEYS;
            take_hot(w, key, phase, now);
            hot_left[key]--;
            hot_total--;
        } else if (churn < CHURN_TAKES) {
            take_churn(w, phase, churn, now);
            churn++;
        }
    }
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;

    for (unsigned phase = 0; phase < PHASES; phase++) {
        (void)pthread_barrier_wait(&phase_start);
        run_phase(w, phase, atomic_load(&clock_ms));

        /* Only after every thread has finished the phase does the clock move. */
        if (pthread_barrier_wait(&phase_end) == PTHREAD_BARRIER_SERIAL_THREAD)
            atomic_fetch_add(&clock_ms, PHASE_MS);
    }
    return NULL;
}

/* Checks the bound over every window of phases, using prefix sums of the allowed counts. */
static void check_hot_key(const struct worker *workers, unsigned key, uint64_t *total_out)
{
    static uint64_t prefix[PHASES + 1];
    uint64_t worst_excess = 0;
    int violations = 0;

    prefix[0] = 0;
    for (unsigned phase = 0; phase < PHASES; phase++) {
        uint64_t allowed = 0;

        for (unsigned t = 0; t < THREADS; t++)
            allowed += workers[t].hot_allowed[key][phase];
        prefix[phase + 1] = prefix[phase] + allowed;
    }

    for (unsigned first = 0; first < PHASES; first++) {
        for (unsigned last = first; last < PHASES; last++) {
            uint64_t allowed = prefix[last + 1] - prefix[first];
            uint64_t bound = HOT_BURST + (uint64_t)(last - first);

            if (allowed > bound) {
                if (violations++ == 0)
                    fprintf(stderr,
                            "hot-%u: %" PRIu64 " allowed in phases %u..%u, bound %" PRIu64 "\n",
                            key, allowed, first, last, bound);
                if (allowed - bound > worst_excess)
                    worst_excess = allowed - bound;
            }
        }
    }
    CHECK_EQ(0, violations);
    CHECK_EQ(0, worst_excess);

    /* Every phase requests more tokens than it refills, so the bound is met exactly. */
    CHECK_EQ(HOT_BURST + PHASES - 1, prefix[PHASES]);
    *total_out = prefix[PHASES];
}

int main(void)
{
    static struct worker workers[THREADS];
    struct ratelimit_config config = {
        .limit = hot_limit, .max_buckets = MAX_BUCKETS, .shard_bits = SHARD_BITS};
    struct ratelimit_stats stats;
    struct hash_key hash_key;
    struct ratelimit *limiter;
    uint64_t hot_allowed = 0, churn_allowed = 0, max_seen = 0;

    memset(&hash_key, 0x5a, sizeof(hash_key));
    limiter = ratelimit_create(&config, &hash_key);
    if (limiter == NULL) {
        fprintf(stderr, "ratelimit_create failed\n");
        return 1;
    }
    if (pthread_barrier_init(&phase_start, NULL, THREADS) != 0 ||
        pthread_barrier_init(&phase_end, NULL, THREADS) != 0) {
        fprintf(stderr, "pthread_barrier_init failed\n");
        return 1;
    }

    for (unsigned i = 0; i < THREADS; i++) {
        workers[i].id = i;
        workers[i].limiter = limiter;
        workers[i].seed = 11 + i;
        if (pthread_create(&workers[i].thread, NULL, run_worker, &workers[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (unsigned i = 0; i < THREADS; i++) {
        (void)pthread_join(workers[i].thread, NULL);
        churn_allowed += workers[i].churn_allowed;
        if (workers[i].max_buckets_seen > max_seen)
            max_seen = workers[i].max_buckets_seen;
    }

    for (unsigned key = 0; key < HOT_KEYS; key++) {
        uint64_t total = 0;

        check_hot_key(workers, key, &total);
        hot_allowed += total;
    }

    ratelimit_get_stats(limiter, &stats);
    CHECK_EQ((uint64_t)THREADS * PHASES * CHURN_TAKES, churn_allowed);
    CHECK_EQ(hot_allowed + churn_allowed, stats.allowed);
    CHECK_EQ((uint64_t)THREADS * PHASES * HOT_KEYS * HOT_TAKES - hot_allowed, stats.denied);

    /*
     * The run must have filled the limiter and evicted both kinds of
     * bucket. The hash key is fixed, so which shard each key lands in is
     * too, and every shard gets more than its share of the last phase's
     * churn keys: the limiter ends exactly full.
     */
    CHECK_EQ(MAX_BUCKETS, stats.buckets);
    CHECK(stats.evicted_idle > 0);
    CHECK(stats.evicted_not_full > 0);

    ratelimit_destroy(limiter);
    (void)pthread_barrier_destroy(&phase_start);
    (void)pthread_barrier_destroy(&phase_end);

    if (atomic_load(&failures) != 0) {
        fprintf(stderr, "stress_ratelimit: %d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("stress_ratelimit: %d threads x %d phases, %" PRIu64 " allowed, %" PRIu64
           " denied, %" PRIu64 " idle and %" PRIu64 " not-full evictions, at most %" PRIu64
           " buckets, ok\n",
           THREADS, PHASES, stats.allowed, stats.denied, stats.evicted_idle, stats.evicted_not_full,
           max_seen);
    return 0;
}
