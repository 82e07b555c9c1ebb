/*
 * Micro-benchmark of core/broker against a one-mutex baseline.
 *
 * Build and run from the repository root:
 *   gcc -std=c11 -D_GNU_SOURCE -pthread -Isrc -O2 src/core/broker.c \
 *     bench/micro_broker.c -o /tmp/micro_broker && /tmp/micro_broker
 *
 * Each publisher thread works like a shortd I/O thread: it publishes
 * visits (a 100-byte payload) and, every DRAIN_EVERY publishes, drains the
 * subscriptions it owns (subscriptions are dealt round robin to the
 * threads), releasing every event. Queues are large enough that nothing is
 * dropped. The notify callback only counts, so the cost of loop_post is
 * not included.
 *
 * The baseline is the simple design: one global mutex around a list of
 * subscriber queues. A publish locks it and walks the list. When some queue
 * takes the topic, it allocates the event and pushes it into each such
 * queue. A drain locks the mutex too and pops everything at once. It has no replay
 * buffer and no lock-free path. The broker also keeps REPLAY_CAPACITY
 * events for resuming, which the baseline does not.
 *
 * Reported: nanoseconds per publish, computed as wall time times the
 * number of threads divided by the publishes, so it is the thread time one
 * publish costs, drains included. Each case runs REPEATS times, and the
 * median, minimum and maximum are printed: the machine may be shared and
 * noisy, so single runs mean little. Results depend on the core count and
 * on what else runs; record them with the machine's description.
 *
 * Two tables. "Tight" publishes back to back: right for the hot path and
 * for one thread, but with two threads and subscribers the glibc mutex
 * (not fair) lets one thread keep the lock, the other cannot drain its
 * queues, and both designs then drop events and measure mostly the drop
 * path. "Paced" puts about WORK_NS of dummy work (a calibrated loop,
 * standing for the rest of a request) before each publish, and subtracts
 * the time of the same work without publishing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/broker.h"

#define TOPIC_LINKS     0
#define TOPIC_VISITS    1
#define PAYLOAD_SIZE    100
#define QUEUE_CAPACITY  4096
#define REPLAY_CAPACITY 1024
#define MAX_SUBSCRIBERS 16
#define MAX_THREADS     2
#define DRAIN_EVERY     64
#define REPEATS         7
#define PUBLISHES_IDLE  4000000 /* per thread, for 0 subscribers */
#define PUBLISHES_BUSY  300000  /* per thread, with subscribers */
#define WORK_NS         500     /* dummy work per publish in the paced table */

/* The baseline: one mutex, a list of queues, events with a plain reference count. */
struct base_event {
    unsigned refs; /* protected by the baseline's lock */
    uint64_t id;
    unsigned topic;
    size_t size;
    unsigned char data[];
};

struct base_queue {
    struct base_event **ring;
    unsigned head;
    unsigned tail;
    uint32_t topics;
    uint64_t dropped;
};

struct baseline {
    pthread_mutex_t lock; /* protects everything in the baseline */
    struct base_queue queues[MAX_SUBSCRIBERS];
    unsigned count;
    uint64_t next_id;
};

static int base_publish(struct baseline *base, unsigned topic, const void *data, size_t size)
{
    struct base_event *event = NULL;

    pthread_mutex_lock(&base->lock);
    for (unsigned i = 0; i < base->count; i++) {
        struct base_queue *queue = &base->queues[i];

        if ((queue->topics & (1u << topic)) == 0)
            continue;
        if (event == NULL) {
            event = malloc(sizeof(*event) + size);
            if (event == NULL) {
                pthread_mutex_unlock(&base->lock);
                return -ENOMEM;
            }
            event->refs = 0;
            event->id = base->next_id++;
            event->topic = topic;
            event->size = size;
            memcpy(event->data, data, size);
        }
        if (queue->tail - queue->head == QUEUE_CAPACITY) {
            queue->dropped++;
            continue;
        }
        queue->ring[queue->tail++ % QUEUE_CAPACITY] = event;
        event->refs++;
    }
    if (event != NULL && event->refs == 0) {
        free(event);
        event = NULL;
    }
    pthread_mutex_unlock(&base->lock);
    return 0;
}

/* Pops every queued event under the lock and frees those no other queue references. */
static unsigned base_drain(struct baseline *base, unsigned index)
{
    static _Thread_local struct base_event *to_free[QUEUE_CAPACITY];
    struct base_queue *queue = &base->queues[index];
    unsigned freed = 0;
    unsigned popped = 0;

    pthread_mutex_lock(&base->lock);
    while (queue->head != queue->tail) {
        struct base_event *event = queue->ring[queue->head++ % QUEUE_CAPACITY];

        popped++;
        if (--event->refs == 0)
            to_free[freed++] = event;
    }
    pthread_mutex_unlock(&base->lock);

    for (unsigned i = 0; i < freed; i++)
        free(to_free[i]);
    return popped;
}

enum implementation { USE_BROKER, USE_BASELINE, USE_NOTHING };

/* Iterations of do_work that take about WORK_NS; 0 in the tight table. */
static unsigned work_iterations;

/* Dummy work that the compiler cannot remove. */
static uint64_t do_work(unsigned iterations, uint64_t state)
{
    for (unsigned i = 0; i < iterations; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
    }
    return state;
}

struct run {
    enum implementation implementation;
    unsigned threads;
    unsigned subscribers;
    unsigned publishes; /* per thread */
    struct broker *broker;
    struct broker_subscription *subs[MAX_SUBSCRIBERS];
    struct baseline *base;
    pthread_barrier_t start;
    atomic_uint publishers_done;
    atomic_ulong notifies;
    atomic_ulong received;
};

struct worker {
    struct run *run;
    unsigned index;
};

static void count_notify(void *arg)
{
    struct run *run = arg;

    atomic_fetch_add_explicit(&run->notifies, 1, memory_order_relaxed);
}

static unsigned broker_drain(struct broker_subscription *sub)
{
    const struct broker_event *event;
    uint64_t dropped;
    unsigned count = 0;

    while (broker_poll(sub, &event, &dropped) == 0) {
        broker_event_release(event);
        count++;
    }
    return count;
}

static void drain_owned(struct run *run, unsigned index)
{
    unsigned received = 0;

    if (run->implementation == USE_NOTHING)
        return;
    for (unsigned s = index; s < run->subscribers; s += run->threads) {
        if (run->implementation == USE_BROKER)
            received += broker_drain(run->subs[s]);
        else
            received += base_drain(run->base, s);
    }
    if (received != 0)
        atomic_fetch_add_explicit(&run->received, received, memory_order_relaxed);
}

static void *worker_main(void *opaque)
{
    struct worker *worker = opaque;
    struct run *run = worker->run;
    unsigned char payload[PAYLOAD_SIZE];
    uint64_t state = worker->index + 1;

    memset(payload, 'v', sizeof(payload));
    (void)pthread_barrier_wait(&run->start);

    for (unsigned i = 0; i < run->publishes; i++) {
        state = do_work(work_iterations, state);
        payload[0] = (unsigned char)state;

        if (run->implementation == USE_BROKER)
            (void)broker_publish(run->broker, TOPIC_VISITS, 7, payload, sizeof(payload), NULL);
        else if (run->implementation == USE_BASELINE)
            (void)base_publish(run->base, TOPIC_VISITS, payload, sizeof(payload));

        if (i % DRAIN_EVERY == DRAIN_EVERY - 1)
            drain_owned(run, worker->index);
    }

    /* Keep draining until every thread has published, or the others' queues would overflow. */
    atomic_fetch_add(&run->publishers_done, 1);
    while (atomic_load(&run->publishers_done) < run->threads)
        drain_owned(run, worker->index);
    drain_owned(run, worker->index);
    return NULL;
}

static double now_seconds(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void setup(struct run *run, uint32_t retained)
{
    if (run->implementation == USE_NOTHING)
        return;
    if (run->implementation == USE_BROKER) {
        const struct broker_config config = {
            .topics = 2,
            .retained_topics = retained,
            .first_id = 1,
            .queue_capacity = QUEUE_CAPACITY,
            .replay_capacity = REPLAY_CAPACITY,
            .max_subscribers = MAX_SUBSCRIBERS,
            .payload_max = PAYLOAD_SIZE,
        };

        if (broker_create(&config, &run->broker) != 0)
            exit(1);
        for (unsigned s = 0; s < run->subscribers; s++) {
            const struct broker_subscribe_options options = {
                .topics = 1u << TOPIC_VISITS,
                .notify = count_notify,
                .notify_arg = run,
            };

            if (broker_subscribe(run->broker, &options, &run->subs[s]) != 0)
                exit(1);
            (void)broker_drain(run->subs[s]); /* a new subscription is drained once */
        }
        return;
    }

    run->base = calloc(1, sizeof(*run->base));
    if (run->base == NULL || pthread_mutex_init(&run->base->lock, NULL) != 0)
        exit(1);
    for (unsigned s = 0; s < run->subscribers; s++) {
        run->base->queues[s].ring = calloc(QUEUE_CAPACITY, sizeof(struct base_event *));
        run->base->queues[s].topics = 1u << TOPIC_VISITS;
        if (run->base->queues[s].ring == NULL)
            exit(1);
    }
    run->base->count = run->subscribers;
}

static void teardown(struct run *run, uint64_t *dropped)
{
    *dropped = 0;
    if (run->implementation == USE_NOTHING)
        return;
    if (run->implementation == USE_BROKER) {
        struct broker_stats stats;

        broker_get_stats(run->broker, &stats);
        *dropped = stats.dropped;
        for (unsigned s = 0; s < run->subscribers; s++)
            broker_unsubscribe(run->subs[s]);
        broker_destroy(run->broker);
        return;
    }

    for (unsigned s = 0; s < run->subscribers; s++) {
        *dropped += run->base->queues[s].dropped;
        free(run->base->queues[s].ring);
    }
    (void)pthread_mutex_destroy(&run->base->lock);
    free(run->base);
}

/* Runs one case once; returns ns per publish (thread time) and counts drops. */
static double run_once(enum implementation implementation, unsigned threads, unsigned subscribers,
                       uint32_t retained, uint64_t *dropped)
{
    static struct run run;
    struct worker workers[MAX_THREADS];
    pthread_t handles[MAX_THREADS];
    double started;
    double elapsed;

    memset(&run, 0, sizeof(run));
    run.implementation = implementation;
    run.threads = threads;
    run.subscribers = subscribers;
    run.publishes = PUBLISHES_BUSY;
    if (subscribers == 0 && retained == 0 && work_iterations == 0)
        run.publishes =
            PUBLISHES_IDLE; /* the hot path is fast: more publishes for a readable time */
    setup(&run, retained);
    if (pthread_barrier_init(&run.start, NULL, threads + 1) != 0)
        exit(1);

    for (unsigned t = 0; t < threads; t++) {
        workers[t] = (struct worker){.run = &run, .index = t};
        if (pthread_create(&handles[t], NULL, worker_main, &workers[t]) != 0)
            exit(1);
    }
    (void)pthread_barrier_wait(&run.start);
    started = now_seconds();
    for (unsigned t = 0; t < threads; t++)
        (void)pthread_join(handles[t], NULL);
    elapsed = now_seconds() - started;

    (void)pthread_barrier_destroy(&run.start);
    teardown(&run, dropped);
    /* Thread time over all publishes: elapsed * threads / (publishes * threads). */
    return elapsed * 1e9 / run.publishes;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * Runs one case REPEATS times and prints the median, minimum and maximum
 * after subtracting offset, the time of the work alone in the paced table.
 * Returns the median before the subtraction.
 */
static double run_case(const char *name, enum implementation implementation, unsigned threads,
                       unsigned subscribers, uint32_t retained, double offset)
{
    double results[REPEATS];
    uint64_t dropped_total = 0;

    for (unsigned r = 0; r < REPEATS; r++) {
        uint64_t dropped;

        results[r] = run_once(implementation, threads, subscribers, retained, &dropped);
        dropped_total += dropped;
    }
    qsort(results, REPEATS, sizeof(results[0]), compare_doubles);
    if (name != NULL)
        printf("%-9s %7u %11u %10.1f %8.1f %8.1f %8llu\n", name, threads, subscribers,
               results[REPEATS / 2] - offset, results[0] - offset, results[REPEATS - 1] - offset,
               (unsigned long long)dropped_total);
    return results[REPEATS / 2];
}

/* Finds the iterations of do_work that take about WORK_NS on this machine. */
static void calibrate_work(void)
{
    const unsigned trial = 1000000;
    uint64_t state = 1;
    double started = now_seconds();
    double per_iteration;

    state = do_work(trial, state);
    per_iteration = (now_seconds() - started) * 1e9 / trial;
    work_iterations = (unsigned)(WORK_NS / per_iteration);
    if (state == 0)
        printf("(unreachable)\n");
}

static void print_header(void)
{
    printf("%-9s %7s %11s %10s %8s %8s %8s\n", "impl", "threads", "subscribers", "median", "min",
           "max", "dropped");
}

int main(void)
{
    static const unsigned subscriber_counts[] = {0, 1, 8};

    printf("tight: ns per publish, thread time, median of %d runs (min, max); payload %d bytes\n",
           REPEATS, PAYLOAD_SIZE);
    print_header();
    for (unsigned threads = 1; threads <= MAX_THREADS; threads++) {
        for (unsigned i = 0; i < sizeof(subscriber_counts) / sizeof(subscriber_counts[0]); i++) {
            (void)run_case("broker", USE_BROKER, threads, subscriber_counts[i], 0, 0);
            (void)run_case("baseline", USE_BASELINE, threads, subscriber_counts[i], 0, 0);
        }
    }

    /* A retained topic takes the lock and fills the replay buffer even with no subscriber. */
    for (unsigned threads = 1; threads <= MAX_THREADS; threads++)
        (void)run_case("retained", USE_BROKER, threads, 0, 1u << TOPIC_VISITS, 0);

    calibrate_work();
    printf("\npaced: %d ns of work before each publish, then subtracted; same columns\n", WORK_NS);
    print_header();
    for (unsigned threads = 1; threads <= MAX_THREADS; threads++) {
        double work = run_case(NULL, USE_NOTHING, threads, 0, 0, 0);

        printf("%-9s %7u %11s %10.1f\n", "work", threads, "-", work);
        for (unsigned i = 1; i < sizeof(subscriber_counts) / sizeof(subscriber_counts[0]); i++) {
            (void)run_case("broker", USE_BROKER, threads, subscriber_counts[i], 0, work);
            (void)run_case("baseline", USE_BASELINE, threads, subscriber_counts[i], 0, work);
        }
    }
    return 0;
}
