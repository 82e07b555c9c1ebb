/*
 * Stress test of core/broker, meant for ThreadSanitizer.
 *
 * Publisher threads publish on two topics (links, retained; visits, not
 * retained) with four owners. An anchor thread keeps one subscription to
 * every topic open for the whole run, so every publish gets an id and the
 * ids run without gaps. Churner threads open subscriptions with random topics
 * and owner filters, read a random number of events, unsubscribe, and
 * resubscribe, mostly resuming after the last id they saw, while
 * publishing goes on. Queues are small, so events are dropped.
 *
 * Checks, online: within a subscription ids strictly increase and follow
 * the resume id; each event matches the subscription's topics and owner
 * filter and its payload matches its topic and owner; notify never runs
 * twice without the consumer taking the first call, nor after
 * broker_unsubscribe returned; no wakeup is lost.
 *
 * Checks, after the threads are joined: for each subscription, the events
 * received plus the drops reported equal the events published on its topics
 * for its owner between its start (the resume id, or its first event when
 * the start is not exact) and its last event. The anchor's window covers
 * the whole run. Finally every event not in the replay buffer has been
 * freed (a free hook counts them), and after broker_destroy every event.
 *
 * Exits 0 on success; prints each failed check and exits 1 otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/broker.h"

#define PUBLISHERS           3
#define CHURNERS             3
#define EVENTS_PER_PUBLISHER 60000
#define BURST                32 /* events a publisher sends between pauses of PAUSE_US */
#define PAUSE_US             1000
#define TOTAL_EVENTS         (PUBLISHERS * EVENTS_PER_PUBLISHER)
#define OWNERS               4 /* owners are 1 to OWNERS */
#define TOPICS               2
#define LINKS                0
#define VISITS               1
#define ALL_TOPICS           ((1u << TOPICS) - 1)
#define FIRST_ID             1700000000000000ull /* like a start time in microseconds */
#define QUEUE_CAPACITY       64
#define REPLAY_CAPACITY      512
#define MAX_SUBSCRIPTIONS    2000 /* per churner thread */
#define WAIT_MS              50
#define WATCHDOG_SECONDS     120

/* One subscription's accounting window: ids in (start, end]. */
struct window {
    uint64_t start;
    uint64_t end;
    uint64_t received;
    uint64_t dropped;
    uint32_t topics;
    bool filter_owner;
    uint64_t owner;
};

/* State shared by notify and the consumer of one subscription. Never freed during the run. */
struct cookie {
    atomic_bool alive;  /* between broker_subscribe and the return of broker_unsubscribe */
    atomic_bool posted; /* notify ran and the consumer has not taken it yet */
    sem_t *wake;
};

struct consumer {
    unsigned index;
    bool anchor;
    uint64_t random_state;
    sem_t wake;
    struct cookie cookies[MAX_SUBSCRIPTIONS];
    struct window windows[MAX_SUBSCRIPTIONS];
    unsigned window_count;
    uint64_t last_seen; /* newest id received, 0 before any */
    uint64_t events;
    uint64_t resumes;
    uint64_t counted_losses; /* resumes that reported an exact number of lost events */
    uint64_t unknown_losses;
};

static struct broker *broker;
static atomic_bool publishing_done;
static atomic_bool anchor_ready;

/* Per id, written by the publisher that got it, read after the join. */
static unsigned char record_topic[TOTAL_EVENTS];
static unsigned char record_owner[TOTAL_EVENTS];

static atomic_ulong double_notifies;
static atomic_ulong late_notifies;
static atomic_ulong lost_wakeups;
static atomic_ulong wakeup_checks; /* waits that timed out and looked for a lost wakeup */
static atomic_ulong bad_events;
static atomic_ulong freed_events;
static atomic_ulong publish_failures;
static int failures;

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void fail(const char *check_name, uint64_t actual, uint64_t expected)
{
    fprintf(stderr, "stress_broker: %s: got %" PRIu64 ", expected %" PRIu64 "\n", check_name,
            actual, expected);
    failures++;
}

static void on_notify(void *arg)
{
    struct cookie *cookie = arg;

    if (atomic_exchange(&cookie->posted, true))
        atomic_fetch_add(&double_notifies, 1);
    if (!atomic_load(&cookie->alive))
        atomic_fetch_add(&late_notifies, 1);
    (void)sem_post(cookie->wake);
}

static void count_free(void *context, const struct broker_event *event)
{
    atomic_fetch_add_explicit(&freed_events, 1, memory_order_relaxed);
}

static void *publisher_main(void *opaque)
{
    unsigned index = (unsigned)(uintptr_t)opaque;
    uint64_t random_state = 0x9e3779b97f4a7c15ull * (index + 1);

    while (!atomic_load(&anchor_ready))
        sched_yield();

    for (unsigned seq = 0; seq < EVENTS_PER_PUBLISHER; seq++) {
        uint64_t r = next_random(&random_state);
        unsigned topic = r % 10 < 7 ? VISITS : LINKS;
        unsigned owner = 1 + (unsigned)((r >> 8) % OWNERS);
        char payload[64];
        uint64_t id = 0;
        int length;
        int rc;

        length = snprintf(payload, sizeof(payload), "%u %u %u %u", index, seq, topic, owner);
        rc = broker_publish(broker, topic, owner, payload, (size_t)length + 1, &id);
        if (rc != 0 || id < FIRST_ID || id >= FIRST_ID + TOTAL_EVENTS) {
            atomic_fetch_add(&publish_failures, 1);
            continue;
        }
        record_topic[id - FIRST_ID] = (unsigned char)topic;
        record_owner[id - FIRST_ID] = (unsigned char)owner;

        /* Pauses let consumers keep up, so most queues drain and arm between bursts. */
        if (seq % BURST == BURST - 1) {
            struct timespec pause = {.tv_sec = 0, .tv_nsec = PAUSE_US * 1000L};

            (void)nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

/* The state of the subscription a consumer has open. */
struct reading {
    struct broker_subscription *sub;
    struct cookie *cookie;
    struct window window;
    bool started;           /* window.start is set */
    bool first_poll;        /* no broker_poll has returned yet */
    uint64_t pending_drops; /* reported after the last event received */
    uint64_t newest;        /* id of the last event received, or the resume id */
    unsigned last_seq[PUBLISHERS];
    bool seen_publisher[PUBLISHERS];
    uint64_t quota;
};

static void check_event(struct reading *reading, const struct broker_event *event)
{
    unsigned publisher;
    unsigned seq;
    unsigned topic;
    unsigned owner;

    if (event->id <= reading->newest)
        atomic_fetch_add(&bad_events, 1);
    if ((reading->window.topics & (1u << event->topic)) == 0)
        atomic_fetch_add(&bad_events, 1);
    if (reading->window.filter_owner && event->owner != reading->window.owner)
        atomic_fetch_add(&bad_events, 1);

    if (event->size == 0 || ((const char *)event->data)[event->size - 1] != '\0' ||
        sscanf(event->data, "%u %u %u %u", &publisher, &seq, &topic, &owner) != 4 ||
        publisher >= PUBLISHERS || topic != event->topic || owner != event->owner) {
        atomic_fetch_add(&bad_events, 1);
        return;
    }

    /* A publisher's events get increasing ids, so a subscription receives them in order. */
    if (reading->seen_publisher[publisher] && seq <= reading->last_seq[publisher])
        atomic_fetch_add(&bad_events, 1);
    reading->seen_publisher[publisher] = true;
    reading->last_seq[publisher] = seq;
}

/* Accounts one result of broker_poll. */
static void account(struct consumer *consumer, struct reading *reading, int rc,
                    const struct broker_event *event, uint64_t dropped)
{
    if (reading->first_poll && dropped != 0 && dropped != BROKER_DROPPED_UNKNOWN)
        consumer->counted_losses++;
    reading->first_poll = false;

    if (dropped == BROKER_DROPPED_UNKNOWN) {
        /* The start is no longer exact: the window restarts at the next event. */
        reading->started = false;
        reading->pending_drops = 0;
        consumer->unknown_losses++;
    } else {
        reading->pending_drops += dropped;
    }
    if (rc != 0)
        return;

    check_event(reading, event);
    if (!reading->started) {
        reading->window.start = event->id - 1;
        reading->window.received = 0;
        reading->window.dropped = 0;
        reading->pending_drops = 0;
        reading->started = true;
    }
    reading->window.dropped += reading->pending_drops;
    reading->pending_drops = 0;
    reading->window.received++;
    reading->window.end = event->id;
    reading->newest = event->id;
    consumer->last_seen = event->id;
    consumer->events++;
}

/* Reads until the queue is empty. Returns the events read. */
static uint64_t drain(struct consumer *consumer, struct reading *reading)
{
    uint64_t count = 0;

    for (;;) {
        const struct broker_event *event;
        uint64_t dropped;
        int rc = broker_poll(reading->sub, &event, &dropped);

        account(consumer, reading, rc, event, dropped);
        if (rc != 0)
            return count;
        broker_event_release(event);
        count++;
    }
}

/*
 * Checks for a lost wakeup after a wait timed out with no notify. Every
 * publish that finished before the broker lock is taken here has run its
 * notify step. So an event found with no notify posted, whose id is at most
 * the last id read under the lock, is a lost wakeup.
 */
static void check_lost_wakeup(struct consumer *consumer, struct reading *reading)
{
    struct broker_stats stats;
    const struct broker_event *event;
    uint64_t dropped;
    int rc;

    if (atomic_load(&reading->cookie->posted))
        return;
    atomic_fetch_add(&wakeup_checks, 1);
    broker_get_stats(broker, &stats);
    if (atomic_load(&reading->cookie->posted))
        return;

    rc = broker_poll(reading->sub, &event, &dropped);
    account(consumer, reading, rc, event, dropped);
    if (rc != 0)
        return;
    if (event->id <= stats.last_id)
        atomic_fetch_add(&lost_wakeups, 1);
    broker_event_release(event);

    /*
     * This poll ran without a wakeup, so the publisher of the event may not
     * have called notify yet. A publisher calls notify with the broker lock
     * held, so once the lock has been taken again that call is over, and its
     * post is taken before draining. Otherwise the drain could arm the
     * subscription, and a second notify would find the first one untaken.
     */
    broker_get_stats(broker, &stats);
    (void)atomic_exchange(&reading->cookie->posted, false);
    (void)drain(consumer, reading);
}

/*
 * Waits for a notify and takes it, as an event loop takes a posted task.
 * Returns true when one was taken; the caller then drains. A semaphore post
 * whose notify was already taken is skipped, because polling without a
 * notify could arm the subscription while a notify is still on its way.
 * After WAIT_MS without a notify, checks for a lost wakeup and returns false.
 */
static bool wait_for_notify(struct consumer *consumer, struct reading *reading)
{
    struct timespec deadline;

    (void)clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += WAIT_MS * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    for (;;) {
        if (sem_timedwait(&consumer->wake, &deadline) == 0) {
            if (atomic_exchange(&reading->cookie->posted, false))
                return true;
        } else if (errno == ETIMEDOUT) {
            check_lost_wakeup(consumer, reading);
            return false;
        }
    }
}

static void open_subscription(struct consumer *consumer, struct reading *reading)
{
    struct broker_subscribe_options options = {.notify = on_notify};
    uint64_t r = next_random(&consumer->random_state);
    struct cookie *cookie = &consumer->cookies[consumer->window_count];
    int rc;

    memset(reading, 0, sizeof(*reading));
    if (consumer->anchor) {
        options.topics = ALL_TOPICS;
    } else {
        options.topics = 1 + (uint32_t)(r % 3);
        options.filter_owner = (r >> 4) % 3 == 0;
        options.owner = 1 + (r >> 8) % OWNERS;
        options.resume = consumer->last_seen != 0 && (r >> 12) % 4 != 0;
        options.last_event_id = consumer->last_seen;
    }

    atomic_store(&cookie->alive, true);
    atomic_store(&cookie->posted, false);
    cookie->wake = &consumer->wake;
    options.notify_arg = cookie;

    /* The anchor subscribes before publishing starts, so its window starts at the first id. */
    reading->window.topics = options.topics;
    reading->window.filter_owner = options.filter_owner;
    reading->window.owner = options.owner;
    if (options.resume) {
        reading->window.start = options.last_event_id;
        reading->newest = options.last_event_id;
        reading->started = true;
        consumer->resumes++;
    } else if (consumer->anchor) {
        reading->window.start = FIRST_ID - 1;
        reading->started = true;
    }
    reading->cookie = cookie;
    reading->first_poll = true;
    reading->quota = 20 + (r >> 16) % 300;

    rc = broker_subscribe(broker, &options, &reading->sub);
    if (rc != 0) {
        fprintf(stderr, "stress_broker: broker_subscribe failed: %s\n", strerror(-rc));
        exit(1);
    }
}

/* Unsubscribes, sometimes holding one event across the call, and saves the window. */
static void close_subscription(struct consumer *consumer, struct reading *reading)
{
    const struct broker_event *held = NULL;
    uint64_t dropped;
    int rc;

    rc = broker_poll(reading->sub, &held, &dropped);
    account(consumer, reading, rc, held, dropped);

    broker_unsubscribe(reading->sub);
    atomic_store(&reading->cookie->alive, false);

    if (held != NULL) {
        unsigned publisher;

        /* The event outlives the subscription until it is released. */
        if (sscanf(held->data, "%u", &publisher) != 1 || publisher >= PUBLISHERS)
            atomic_fetch_add(&bad_events, 1);
        broker_event_release(held);
    }

    if (reading->started && reading->window.received > 0)
        consumer->windows[consumer->window_count] = reading->window;
    else
        consumer->windows[consumer->window_count].topics = 0; /* nothing to check */
    consumer->window_count++;
}

static void *churner_main(void *opaque)
{
    struct consumer *consumer = opaque;

    while (!atomic_load(&anchor_ready))
        sched_yield();

    while (consumer->window_count < MAX_SUBSCRIPTIONS && !atomic_load(&publishing_done)) {
        struct reading reading;
        uint64_t read = 0;

        open_subscription(consumer, &reading);

        /* A new subscription owes one drain before it is notified. */
        read += drain(consumer, &reading);
        while (read < reading.quota && !atomic_load(&publishing_done)) {
            if (wait_for_notify(consumer, &reading))
                read += drain(consumer, &reading);
        }
        close_subscription(consumer, &reading);

        /*
         * A pause of 0 to 15 ms: the replay buffer holds about 5 ms of events,
         * so some resumes find every missed event and others reach past it.
         */
        {
            struct timespec pause = {
                .tv_sec = 0,
                .tv_nsec = (long)(next_random(&consumer->random_state) % 16) * 1000000L,
            };

            (void)nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

static void *anchor_main(void *opaque)
{
    struct consumer *consumer = opaque;
    struct reading reading;
    struct broker_stats stats;

    open_subscription(consumer, &reading);
    (void)drain(consumer, &reading);
    atomic_store(&anchor_ready, true);

    while (!atomic_load(&publishing_done)) {
        if (wait_for_notify(consumer, &reading))
            (void)drain(consumer, &reading);
    }

    /* Publishing has ended: what is left, including drops after the last event, closes the run. */
    (void)drain(consumer, &reading);
    broker_get_stats(broker, &stats);
    reading.window.dropped += reading.pending_drops;
    reading.pending_drops = 0;
    reading.window.end = stats.last_id;
    consumer->windows[0] = reading.window;
    consumer->window_count = 1;

    broker_unsubscribe(reading.sub);
    atomic_store(&reading.cookie->alive, false);
    return NULL;
}

/* prefix[topic][owner - 1][k]: events among the first k ids with that topic and owner. */
static uint32_t (*prefix)[OWNERS][TOTAL_EVENTS + 1];

static void build_prefix_counts(void)
{
    prefix = calloc(TOPICS, sizeof(*prefix));
    if (prefix == NULL) {
        fprintf(stderr, "stress_broker: out of memory\n");
        exit(1);
    }
    for (unsigned k = 0; k < TOTAL_EVENTS; k++) {
        for (unsigned t = 0; t < TOPICS; t++) {
            for (unsigned o = 0; o < OWNERS; o++) {
                bool match = record_topic[k] == t && record_owner[k] == o + 1;

                prefix[t][o][k + 1] = prefix[t][o][k] + match;
            }
        }
    }
}

/* Counts the events with ids in (start, end] that match the window's topics and owner filter. */
static uint64_t count_matching(const struct window *window)
{
    uint64_t from = window->start + 1 - FIRST_ID;
    uint64_t to = window->end + 1 - FIRST_ID;
    uint64_t count = 0;

    for (unsigned t = 0; t < TOPICS; t++) {
        if ((window->topics & (1u << t)) == 0)
            continue;
        for (unsigned o = 0; o < OWNERS; o++) {
            if (window->filter_owner && window->owner != o + 1)
                continue;
            count += prefix[t][o][to] - prefix[t][o][from];
        }
    }
    return count;
}

static void check_windows(const struct consumer *consumer, uint64_t *checked)
{
    for (unsigned i = 0; i < consumer->window_count; i++) {
        const struct window *window = &consumer->windows[i];
        uint64_t matching;

        if (window->topics == 0)
            continue;
        if (window->end >= FIRST_ID + TOTAL_EVENTS || window->start + 1 < FIRST_ID) {
            fail("window outside the published ids", window->end, FIRST_ID + TOTAL_EVENTS);
            continue;
        }

        matching = count_matching(window);
        if (window->received + window->dropped != matching) {
            fprintf(stderr,
                    "stress_broker: consumer %u window %u (%" PRIu64 ", %" PRIu64 "] topics %u: ",
                    consumer->index, i, window->start, window->end, window->topics);
            fail("received + dropped", window->received + window->dropped, matching);
        }
        (*checked)++;
    }
}

int main(void)
{
    static struct consumer consumers[CHURNERS + 1];
    const struct broker_config config = {
        .topics = TOPICS,
        .retained_topics = 1u << LINKS,
        .first_id = FIRST_ID,
        .queue_capacity = QUEUE_CAPACITY,
        .replay_capacity = REPLAY_CAPACITY,
        .max_subscribers = CHURNERS + 1,
        .payload_max = 64,
        .free_hook = count_free,
    };
    pthread_t publishers[PUBLISHERS];
    pthread_t consumer_threads[CHURNERS + 1];
    struct broker_stats stats;
    uint64_t checked = 0;
    uint64_t events = 0;
    uint64_t resumes = 0;
    uint64_t counted = 0;
    uint64_t unknown = 0;
    int rc;

    /* SIGALRM's default action ends the process, so a deadlock cannot hang the test run. */
    (void)alarm(WATCHDOG_SECONDS);

    rc = broker_create(&config, &broker);
    if (rc != 0) {
        fprintf(stderr, "stress_broker: broker_create failed: %s\n", strerror(-rc));
        return 1;
    }

    for (unsigned i = 0; i <= CHURNERS; i++) {
        consumers[i].index = i;
        consumers[i].anchor = i == 0;
        consumers[i].random_state = 0x2545f4914f6cdd1dull * (i + 7);
        if (sem_init(&consumers[i].wake, 0, 0) != 0) {
            perror("stress_broker: sem_init");
            return 1;
        }
        rc = pthread_create(&consumer_threads[i], NULL, i == 0 ? anchor_main : churner_main,
                            &consumers[i]);
        if (rc != 0) {
            fprintf(stderr, "stress_broker: pthread_create failed: %s\n", strerror(rc));
            return 1;
        }
    }
    for (unsigned i = 0; i < PUBLISHERS; i++) {
        rc = pthread_create(&publishers[i], NULL, publisher_main, (void *)(uintptr_t)i);
        if (rc != 0) {
            fprintf(stderr, "stress_broker: pthread_create failed: %s\n", strerror(rc));
            return 1;
        }
    }

    for (unsigned i = 0; i < PUBLISHERS; i++)
        (void)pthread_join(publishers[i], NULL);
    atomic_store(&publishing_done, true);
    for (unsigned i = 0; i <= CHURNERS; i++)
        (void)pthread_join(consumer_threads[i], NULL);

    if (atomic_load(&publish_failures) != 0)
        fail("failed publishes", atomic_load(&publish_failures), 0);
    broker_get_stats(broker, &stats);
    if (stats.published != TOTAL_EVENTS)
        fail("events published", stats.published, TOTAL_EVENTS);
    if (stats.last_id != FIRST_ID + TOTAL_EVENTS - 1)
        fail("last id", stats.last_id, FIRST_ID + TOTAL_EVENTS - 1);

    build_prefix_counts();
    for (unsigned i = 0; i <= CHURNERS; i++) {
        check_windows(&consumers[i], &checked);
        events += consumers[i].events;
        resumes += consumers[i].resumes;
        counted += consumers[i].counted_losses;
        unknown += consumers[i].unknown_losses;
    }
    if (consumers[0].window_count != 1 || consumers[0].windows[0].start != FIRST_ID - 1)
        fail("anchor window start", consumers[0].windows[0].start, FIRST_ID - 1);

    if (atomic_load(&bad_events) != 0)
        fail("events out of order, unwanted or corrupt", atomic_load(&bad_events), 0);
    if (atomic_load(&double_notifies) != 0)
        fail("notify while the previous one was not taken", atomic_load(&double_notifies), 0);
    if (atomic_load(&late_notifies) != 0)
        fail("notify after broker_unsubscribe returned", atomic_load(&late_notifies), 0);
    if (atomic_load(&lost_wakeups) != 0)
        fail("lost wakeups", atomic_load(&lost_wakeups), 0);

    if (stats.subscriptions != 0)
        fail("subscriptions left", stats.subscriptions, 0);
    if (stats.published - atomic_load(&freed_events) != stats.replay_events)
        fail("events not freed besides the replay buffer",
             stats.published - atomic_load(&freed_events), stats.replay_events);

    printf("stress_broker: %u events published, %" PRIu64 " received, %" PRIu64 " dropped, %" PRIu64
           " subscription windows checked, %" PRIu64 " resumes (%" PRIu64
           " told a count of lost events, %" PRIu64 " an unknown loss), %lu timed-out waits\n",
           TOTAL_EVENTS, events, stats.dropped, checked, resumes, counted, unknown,
           atomic_load(&wakeup_checks));

    broker_destroy(broker);
    if (atomic_load(&freed_events) != stats.published)
        fail("events freed after broker_destroy", atomic_load(&freed_events), stats.published);
    free(prefix);
    for (unsigned i = 0; i <= CHURNERS; i++)
        (void)sem_destroy(&consumers[i].wake);

    if (failures != 0) {
        fprintf(stderr, "stress_broker: %d checks failed\n", failures);
        return 1;
    }
    return 0;
}
