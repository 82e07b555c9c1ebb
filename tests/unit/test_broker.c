/*
 * Unit tests for core/broker.
 *
 * Every test runs on one thread: publishes, polls and notify callbacks are
 * interleaved by hand, so each result is deterministic. Memory is checked
 * two ways: a free hook counts freed events, so published minus freed must
 * fall to what the replay buffer holds, and the ASan build (make unit-asan)
 * reports any leak at exit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/broker.h"

enum { TOPIC_LINKS, TOPIC_VISITS, TOPIC_COUNT };

#define LINKS    (1u << TOPIC_LINKS)
#define VISITS   (1u << TOPIC_VISITS)
#define FIRST_ID 1000

struct notify_counter {
    int calls;
};

/* Events freed by the broker of the running test, counted by count_free. */
static uint64_t freed_events;

static void count_free(void *context, const struct broker_event *event)
{
    freed_events++;
}

static void count_notify(void *arg)
{
    struct notify_counter *counter = arg;

    counter->calls++;
}

static struct broker *create_broker(uint32_t retained, unsigned queue_capacity,
                                    unsigned replay_capacity, unsigned max_subscribers)
{
    struct broker_config config = {
        .topics = TOPIC_COUNT,
        .retained_topics = retained,
        .first_id = FIRST_ID,
        .queue_capacity = queue_capacity,
        .replay_capacity = replay_capacity,
        .max_subscribers = max_subscribers,
        .payload_max = 256,
        .free_hook = count_free,
    };
    struct broker *broker = NULL;

    freed_events = 0;
    assert_int_equal(broker_create(&config, &broker), 0);
    assert_non_null(broker);
    return broker;
}

static struct broker_subscription *subscribe(struct broker *broker, uint32_t topics,
                                             struct notify_counter *counter)
{
    struct broker_subscribe_options options = {
        .topics = topics,
        .notify = count_notify,
        .notify_arg = counter,
    };
    struct broker_subscription *sub = NULL;

    assert_int_equal(broker_subscribe(broker, &options, &sub), 0);
    assert_non_null(sub);
    return sub;
}

static struct broker_subscription *resume(struct broker *broker, uint32_t topics,
                                          uint64_t last_event_id, struct notify_counter *counter)
{
    struct broker_subscribe_options options = {
        .topics = topics,
        .resume = true,
        .last_event_id = last_event_id,
        .notify = count_notify,
        .notify_arg = counter,
    };
    struct broker_subscription *sub = NULL;

    assert_int_equal(broker_subscribe(broker, &options, &sub), 0);
    return sub;
}

/* Publishes a NUL-terminated text as payload and returns the event's id. */
static uint64_t publish_text(struct broker *broker, unsigned topic, uint64_t owner,
                             const char *text)
{
    uint64_t id = UINT64_MAX;

    assert_int_equal(broker_publish(broker, topic, owner, text, strlen(text) + 1, &id), 0);
    return id;
}

/* Polls one event, checks its id and the drop count before it, and releases it. */
static void expect_event(struct broker_subscription *sub, uint64_t id, uint64_t dropped_before)
{
    const struct broker_event *event = NULL;
    uint64_t dropped = 12345;

    assert_int_equal(broker_poll(sub, &event, &dropped), 0);
    assert_non_null(event);
    assert_int_equal(event->id, id);
    assert_int_equal(dropped, dropped_before);
    broker_event_release(event);
}

/* Polls until the queue is empty and checks the drops reported with -EAGAIN. */
static void expect_empty(struct broker_subscription *sub, uint64_t dropped_at_end)
{
    const struct broker_event *event = (const void *)1;
    uint64_t dropped = 12345;

    assert_int_equal(broker_poll(sub, &event, &dropped), -EAGAIN);
    assert_null(event);
    assert_int_equal(dropped, dropped_at_end);
}

/* Polls and releases events until the queue is empty; returns how many there were. */
static unsigned drain(struct broker_subscription *sub)
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

static struct broker_stats get_stats(struct broker *broker)
{
    struct broker_stats stats;

    broker_get_stats(broker, &stats);
    return stats;
}

/* Events that got an id and are not freed yet. */
static uint64_t live_events(struct broker *broker)
{
    return get_stats(broker).published - freed_events;
}

static void create_rejects_invalid_config(void **unused)
{
    const struct broker_config valid = {
        .topics = 2,
        .first_id = 1,
        .queue_capacity = 4,
        .replay_capacity = 4,
        .max_subscribers = 4,
        .payload_max = 16,
    };
    struct broker_config config;
    struct broker *broker = NULL;

    config = valid;
    config.topics = 0;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);
    config.topics = BROKER_TOPICS_MAX + 1;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);

    config = valid;
    config.retained_topics = 1u << 2;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);

    config = valid;
    config.first_id = 0;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);

    config = valid;
    config.queue_capacity = 0;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);
    config.queue_capacity = BROKER_CAPACITY_MAX + 1;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);

    config = valid;
    config.replay_capacity = BROKER_CAPACITY_MAX + 1;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);

    config = valid;
    config.max_subscribers = 0;
    assert_int_equal(broker_create(&config, &broker), -EINVAL);

    assert_int_equal(broker_create(NULL, &broker), -EINVAL);
    assert_int_equal(broker_create(&valid, NULL), -EINVAL);
    assert_null(broker);

    assert_int_equal(broker_create(&valid, &broker), 0);
    broker_destroy(broker);
    broker_destroy(NULL);
}

static void publish_without_subscribers_stores_nothing(void **unused)
{
    struct broker *broker = create_broker(0, 4, 8, 4);
    struct broker_stats stats;
    uint64_t id = UINT64_MAX;

    assert_false(broker_wants(broker, TOPIC_VISITS));
    assert_int_equal(broker_publish(broker, TOPIC_VISITS, 1, "v", 1, &id), 0);
    assert_int_equal(id, 0);
    assert_int_equal(broker_publish(broker, TOPIC_VISITS, 1, "v", 1, NULL), 0);

    stats = get_stats(broker);
    assert_int_equal(stats.published, 0);
    assert_int_equal(stats.last_id, FIRST_ID - 1);
    assert_int_equal(stats.replay_events, 0);
    assert_int_equal(freed_events, 0);
    broker_destroy(broker);
}

static void retained_topic_stores_only_replay(void **unused)
{
    struct broker *broker = create_broker(LINKS, 4, 8, 4);
    struct broker_stats stats;

    assert_true(broker_wants(broker, TOPIC_LINKS));
    assert_false(broker_wants(broker, TOPIC_VISITS));
    assert_int_equal(publish_text(broker, TOPIC_LINKS, 1, "created"), FIRST_ID);
    assert_int_equal(publish_text(broker, TOPIC_VISITS, 1, "visit"), 0);

    stats = get_stats(broker);
    assert_int_equal(stats.published, 1);
    assert_int_equal(stats.queued, 0);
    assert_int_equal(stats.dropped, 0);
    assert_int_equal(stats.replay_events, 1);
    assert_int_equal(live_events(broker), 1);
    broker_destroy(broker);
    assert_int_equal(freed_events, 1);
}

static void publish_rejects_bad_arguments(void **unused)
{
    struct broker *broker = create_broker(LINKS, 4, 8, 4);
    char big[257] = {0};
    uint64_t id = 7;

    assert_int_equal(broker_publish(broker, TOPIC_COUNT, 1, "x", 1, &id), -EINVAL);
    assert_int_equal(broker_publish(broker, BROKER_TOPICS_MAX, 1, "x", 1, &id), -EINVAL);
    assert_false(broker_wants(broker, TOPIC_COUNT));
    assert_int_equal(broker_publish(broker, TOPIC_LINKS, 1, big, sizeof(big), &id), -EMSGSIZE);
    assert_int_equal(broker_publish(broker, TOPIC_LINKS, 1, NULL, 1, &id), -EINVAL);
    assert_int_equal(get_stats(broker).published, 0);

    /* An empty payload is allowed and has no data pointer. */
    assert_int_equal(broker_publish(broker, TOPIC_LINKS, 1, NULL, 0, &id), 0);
    assert_int_equal(id, FIRST_ID);
    broker_destroy(broker);
}

static void subscribe_rejects_bad_options(void **unused)
{
    struct broker *broker = create_broker(0, 4, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscribe_options options = {
        .topics = LINKS,
        .notify = count_notify,
        .notify_arg = &counter,
    };
    struct broker_subscription *sub = NULL;

    assert_int_equal(broker_subscribe(broker, NULL, &sub), -EINVAL);
    assert_int_equal(broker_subscribe(broker, &options, NULL), -EINVAL);
    options.topics = 0;
    assert_int_equal(broker_subscribe(broker, &options, &sub), -EINVAL);
    options.topics = LINKS | (1u << TOPIC_COUNT);
    assert_int_equal(broker_subscribe(broker, &options, &sub), -EINVAL);
    options.topics = LINKS;
    options.notify = NULL;
    assert_int_equal(broker_subscribe(broker, &options, &sub), -EINVAL);
    assert_null(sub);
    assert_int_equal(get_stats(broker).subscriptions, 0);
    broker_destroy(broker);
}

static void ids_increase_from_first_id_across_topics(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 4, 8, 4);

    assert_int_equal(publish_text(broker, TOPIC_LINKS, 1, "a"), FIRST_ID);
    assert_int_equal(publish_text(broker, TOPIC_VISITS, 1, "b"), FIRST_ID + 1);
    assert_int_equal(publish_text(broker, TOPIC_LINKS, 2, "c"), FIRST_ID + 2);
    assert_int_equal(get_stats(broker).last_id, FIRST_ID + 2);
    broker_destroy(broker);
}

static void subscription_gets_only_its_topics(void **unused)
{
    struct broker *broker = create_broker(0, 8, 8, 4);
    struct notify_counter links_counter = {0};
    struct notify_counter visits_counter = {0};
    struct notify_counter both_counter = {0};
    struct broker_subscription *links = subscribe(broker, LINKS, &links_counter);
    struct broker_subscription *visits = subscribe(broker, VISITS, &visits_counter);
    struct broker_subscription *both = subscribe(broker, LINKS | VISITS, &both_counter);
    uint64_t first = publish_text(broker, TOPIC_LINKS, 1, "created");
    uint64_t second = publish_text(broker, TOPIC_VISITS, 1, "visit");
    uint64_t third = publish_text(broker, TOPIC_LINKS, 1, "deleted");

    expect_event(links, first, 0);
    expect_event(links, third, 0);
    expect_empty(links, 0);

    expect_event(visits, second, 0);
    expect_empty(visits, 0);

    expect_event(both, first, 0);
    expect_event(both, second, 0);
    expect_event(both, third, 0);
    expect_empty(both, 0);

    broker_unsubscribe(links);
    broker_unsubscribe(visits);
    broker_unsubscribe(both);
    broker_destroy(broker);
}

static void owner_filter_queues_only_that_owner(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 8, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscribe_options options = {
        .topics = LINKS | VISITS,
        .filter_owner = true,
        .owner = 42,
        .notify = count_notify,
        .notify_arg = &counter,
    };
    struct broker_subscription *sub = NULL;
    uint64_t mine;

    assert_int_equal(broker_subscribe(broker, &options, &sub), 0);
    (void)publish_text(broker, TOPIC_LINKS, 7, "other owner");
    mine = publish_text(broker, TOPIC_VISITS, 42, "mine");
    (void)publish_text(broker, TOPIC_VISITS, 0, "no owner");

    expect_event(sub, mine, 0);
    expect_empty(sub, 0);
    assert_int_equal(get_stats(broker).dropped, 0);
    broker_unsubscribe(sub);

    /* A resume replays only that owner's events too. */
    options.resume = true;
    options.last_event_id = FIRST_ID - 1;
    assert_int_equal(broker_subscribe(broker, &options, &sub), 0);
    expect_event(sub, mine, 0);
    expect_empty(sub, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void poll_returns_events_in_publish_order(void **unused)
{
    static const char *const texts[] = {"one", "two", "three", "four", "five"};
    struct broker *broker = create_broker(0, 8, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, LINKS | VISITS, &counter);
    uint64_t ids[5];

    for (unsigned i = 0; i < 5; i++)
        ids[i] = publish_text(broker, i % 2 ? TOPIC_VISITS : TOPIC_LINKS, 100 + i, texts[i]);

    for (unsigned i = 0; i < 5; i++) {
        const struct broker_event *event = NULL;
        uint64_t dropped = 1;

        assert_int_equal(broker_poll(sub, &event, &dropped), 0);
        assert_int_equal(event->id, ids[i]);
        assert_int_equal(event->topic, i % 2 ? TOPIC_VISITS : TOPIC_LINKS);
        assert_int_equal(event->owner, 100 + i);
        assert_int_equal(event->size, strlen(texts[i]) + 1);
        assert_string_equal(event->data, texts[i]);
        assert_int_equal(dropped, 0);
        broker_event_release(event);
    }
    expect_empty(sub, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void full_queue_drops_and_counts_exactly(void **unused)
{
    struct broker *broker = create_broker(0, 4, 16, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, VISITS, &counter);
    uint64_t ids[10];
    uint64_t after;

    for (unsigned i = 0; i < 10; i++)
        ids[i] = publish_text(broker, TOPIC_VISITS, 1, "v");
    assert_int_equal(get_stats(broker).queued, 4);
    assert_int_equal(get_stats(broker).dropped, 6);

    /* The first four were queued; the six after them are reported once the queue is empty. */
    for (unsigned i = 0; i < 4; i++)
        expect_event(sub, ids[i], 0);
    expect_empty(sub, 6);
    expect_empty(sub, 0);

    after = publish_text(broker, TOPIC_VISITS, 1, "v");
    expect_event(sub, after, 0);
    expect_empty(sub, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void drop_is_reported_before_the_next_event(void **unused)
{
    struct broker *broker = create_broker(0, 2, 16, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, LINKS, &counter);
    uint64_t a = publish_text(broker, TOPIC_LINKS, 1, "a");
    uint64_t b = publish_text(broker, TOPIC_LINKS, 1, "b");
    uint64_t c;
    uint64_t d;
    uint64_t e;

    (void)publish_text(broker, TOPIC_LINKS, 1, "dropped 1");
    (void)publish_text(broker, TOPIC_LINKS, 1, "dropped 2");
    expect_event(sub, a, 0);

    /* The queue has room again: c lands behind b, after the two drops. */
    c = publish_text(broker, TOPIC_LINKS, 1, "c");
    (void)publish_text(broker, TOPIC_LINKS, 1, "dropped 3");
    expect_event(sub, b, 0);
    expect_event(sub, c, 2);

    d = publish_text(broker, TOPIC_LINKS, 1, "d");
    e = publish_text(broker, TOPIC_LINKS, 1, "e");
    expect_event(sub, d, 1);
    expect_event(sub, e, 0);
    expect_empty(sub, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void notify_runs_once_per_empty_to_nonempty(void **unused)
{
    struct broker *broker = create_broker(0, 8, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, VISITS, &counter);
    uint64_t first;

    /* A new subscription owes a drain: nothing is notified until the first -EAGAIN. */
    first = publish_text(broker, TOPIC_VISITS, 1, "before drain");
    assert_int_equal(counter.calls, 0);
    expect_event(sub, first, 0);
    expect_empty(sub, 0);

    (void)publish_text(broker, TOPIC_VISITS, 1, "a");
    assert_int_equal(counter.calls, 1);
    (void)publish_text(broker, TOPIC_VISITS, 1, "b");
    (void)publish_text(broker, TOPIC_VISITS, 1, "c");
    assert_int_equal(counter.calls, 1);

    /* Reading part of the queue does not re-arm. */
    expect_event(sub, first + 1, 0);
    (void)publish_text(broker, TOPIC_VISITS, 1, "d");
    assert_int_equal(counter.calls, 1);

    assert_int_equal(drain(sub), 3);
    assert_int_equal(counter.calls, 1);

    (void)publish_text(broker, TOPIC_VISITS, 1, "e");
    assert_int_equal(counter.calls, 2);

    /* Publishing to a topic the subscription does not take never notifies it. */
    expect_event(sub, first + 5, 0);
    expect_empty(sub, 0);
    (void)publish_text(broker, TOPIC_LINKS, 1, "other topic");
    assert_int_equal(counter.calls, 2);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void notify_skips_drops_on_full_queue(void **unused)
{
    struct broker *broker = create_broker(0, 2, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, VISITS, &counter);

    expect_empty(sub, 0);
    for (unsigned i = 0; i < 5; i++)
        (void)publish_text(broker, TOPIC_VISITS, 1, "v");
    assert_int_equal(counter.calls, 1);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

/* Publishes count events alternating links and visits; returns the first id. */
static uint64_t publish_many(struct broker *broker, unsigned count)
{
    uint64_t first = 0;

    for (unsigned i = 0; i < count; i++) {
        uint64_t id = publish_text(broker, i % 2 ? TOPIC_VISITS : TOPIC_LINKS, 1, "e");

        if (i == 0)
            first = id;
    }
    return first;
}

static void resume_inside_buffer_replays_the_rest(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 16, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 6);

    sub = resume(broker, LINKS | VISITS, first + 2, &counter);
    for (uint64_t id = first + 3; id < first + 6; id++)
        expect_event(sub, id, 0);
    expect_empty(sub, 0);
    assert_int_equal(counter.calls, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_at_newest_id_replays_nothing(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 16, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 3);
    uint64_t live;

    sub = resume(broker, LINKS | VISITS, first + 2, &counter);
    expect_empty(sub, 0);
    live = publish_text(broker, TOPIC_LINKS, 1, "live");
    expect_event(sub, live, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_at_buffer_edge_loses_nothing(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 16, 4, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 10);
    uint64_t oldest = first + 6; /* the buffer holds the last four */

    sub = resume(broker, LINKS | VISITS, oldest - 1, &counter);
    expect_event(sub, oldest, 0);
    for (uint64_t id = oldest + 1; id < first + 10; id++)
        expect_event(sub, id, 0);
    expect_empty(sub, 0);
    broker_unsubscribe(sub);

    /* One id earlier, exactly one event is gone. */
    sub = resume(broker, LINKS | VISITS, oldest - 2, &counter);
    expect_event(sub, oldest, 1);
    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_older_than_buffer_counts_lost(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 16, 4, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 10);

    /* Every topic, no owner filter: the count is exact. */
    sub = resume(broker, LINKS | VISITS, first, &counter);
    expect_event(sub, first + 6, 5);
    expect_event(sub, first + 7, 0);
    broker_unsubscribe(sub);

    /* One topic: some of the evicted events were of other topics, so the count is unknown. */
    sub = resume(broker, VISITS, first, &counter);
    expect_event(sub, first + 7, BROKER_DROPPED_UNKNOWN);
    expect_event(sub, first + 9, 0);
    expect_empty(sub, 0);
    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_with_future_id_reports_unknown(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 16, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 3);
    uint64_t live;

    sub = resume(broker, LINKS | VISITS, first + 3, &counter);
    expect_empty(sub, BROKER_DROPPED_UNKNOWN);
    live = publish_text(broker, TOPIC_VISITS, 1, "live");
    expect_event(sub, live, 0);
    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_before_first_id_reports_unknown(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 16, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 2);

    /* An id of an earlier run: everything buffered is replayed, and more may be gone. */
    sub = resume(broker, LINKS | VISITS, FIRST_ID - 2, &counter);
    expect_event(sub, first, BROKER_DROPPED_UNKNOWN);
    expect_event(sub, first + 1, 0);
    broker_unsubscribe(sub);

    /* first_id - 1 means nothing of this run was seen, and nothing is lost. */
    sub = resume(broker, LINKS | VISITS, FIRST_ID - 1, &counter);
    expect_event(sub, first, 0);
    expect_event(sub, first + 1, 0);
    expect_empty(sub, 0);
    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_after_unwatched_period_reports_unknown(void **unused)
{
    struct broker *broker = create_broker(LINKS, 16, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, LINKS | VISITS, &counter);
    uint64_t seen = publish_text(broker, TOPIC_VISITS, 1, "seen");
    uint64_t link;

    expect_event(sub, seen, 0);
    broker_unsubscribe(sub);

    /* No subscription takes visits now, so this one is skipped without an id. */
    assert_int_equal(publish_text(broker, TOPIC_VISITS, 1, "skipped"), 0);
    link = publish_text(broker, TOPIC_LINKS, 1, "link");

    sub = resume(broker, LINKS | VISITS, seen, &counter);
    expect_event(sub, link, BROKER_DROPPED_UNKNOWN);
    expect_empty(sub, 0);
    broker_unsubscribe(sub);

    /* Retained topics are never skipped: a links-only resume loses nothing. */
    sub = resume(broker, LINKS, seen, &counter);
    expect_event(sub, link, 0);
    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void resume_after_watch_restarted_reports_unknown(void **unused)
{
    struct broker *broker = create_broker(LINKS, 16, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, LINKS | VISITS, &counter);
    struct broker_subscription *watcher;
    uint64_t seen = publish_text(broker, TOPIC_LINKS, 1, "seen");
    uint64_t visit;

    expect_event(sub, seen, 0);
    broker_unsubscribe(sub);
    assert_int_equal(publish_text(broker, TOPIC_VISITS, 1, "skipped"), 0);

    /*
     * Visits have a subscriber again, but that period began when seen was
     * still the newest id, after the skipped visit.
     */
    watcher = subscribe(broker, VISITS, &counter);
    visit = publish_text(broker, TOPIC_VISITS, 1, "stored");

    sub = resume(broker, LINKS | VISITS, seen, &counter);
    expect_event(sub, visit, BROKER_DROPPED_UNKNOWN);
    expect_empty(sub, 0);

    broker_unsubscribe(sub);
    broker_unsubscribe(watcher);
    broker_destroy(broker);
}

static void resume_while_topic_watched_loses_nothing(void **unused)
{
    struct broker *broker = create_broker(0, 16, 8, 4);
    struct notify_counter watcher_counter = {0};
    struct notify_counter counter = {0};
    struct broker_subscription *watcher = subscribe(broker, VISITS, &watcher_counter);
    struct broker_subscription *sub = subscribe(broker, VISITS, &counter);
    uint64_t seen = publish_text(broker, TOPIC_VISITS, 1, "seen");
    uint64_t missed;

    expect_event(sub, seen, 0);
    broker_unsubscribe(sub);

    /* The watcher keeps visits stored while sub is away. */
    missed = publish_text(broker, TOPIC_VISITS, 1, "missed");
    assert_int_not_equal(missed, 0);

    sub = resume(broker, VISITS, seen, &counter);
    expect_event(sub, missed, 0);
    expect_empty(sub, 0);

    broker_unsubscribe(sub);
    broker_unsubscribe(watcher);
    broker_destroy(broker);
}

static void resume_replay_beyond_queue_drops_newest(void **unused)
{
    struct broker *broker = create_broker(LINKS | VISITS, 3, 8, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub;
    uint64_t first = publish_many(broker, 8);
    uint64_t live;

    sub = resume(broker, LINKS | VISITS, first - 1, &counter);
    live = publish_text(broker, TOPIC_LINKS, 1, "live");
    expect_event(sub, first, 0);
    expect_event(sub, first + 1, 0);
    expect_event(sub, first + 2, 0);
    expect_empty(sub, 6); /* five replayed events and the live one did not fit */
    assert_int_equal(get_stats(broker).dropped, 6);
    assert_int_not_equal(live, 0);

    broker_unsubscribe(sub);
    broker_destroy(broker);
}

static void event_freed_by_last_release(void **unused)
{
    struct broker *broker = create_broker(0, 8, 2, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *first_sub = subscribe(broker, LINKS, &counter);
    struct broker_subscription *second_sub = subscribe(broker, LINKS, &counter);
    const struct broker_event *held = NULL;
    uint64_t dropped;

    for (unsigned i = 0; i < 4; i++)
        (void)publish_text(broker, TOPIC_LINKS, 1, "shared");
    assert_int_equal(live_events(broker), 4);

    /* The first subscription lets go of everything; the second still holds all four. */
    assert_int_equal(drain(first_sub), 4);
    assert_int_equal(live_events(broker), 4);

    /* An event taken out of a queue outlives its subscription until released. */
    assert_int_equal(broker_poll(second_sub, &held, &dropped), 0);
    broker_unsubscribe(second_sub);
    assert_int_equal(live_events(broker), 3); /* held, and two in the replay buffer */
    assert_string_equal(held->data, "shared");
    broker_event_release(held);
    assert_int_equal(live_events(broker), 2);

    broker_unsubscribe(first_sub);
    assert_int_equal(live_events(broker), 2);
    broker_destroy(broker);
    assert_int_equal(freed_events, 4);
}

static void unsubscribe_frees_queued_events(void **unused)
{
    struct broker *broker = create_broker(0, 8, 0, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *sub = subscribe(broker, LINKS | VISITS, &counter);
    struct broker_stats stats;

    for (unsigned i = 0; i < 6; i++)
        (void)publish_text(broker, i % 2 ? TOPIC_VISITS : TOPIC_LINKS, 1, "queued");
    assert_int_equal(live_events(broker), 6);

    broker_unsubscribe(sub);
    stats = get_stats(broker);
    assert_int_equal(live_events(broker), 0);
    assert_int_equal(stats.subscriptions, 0);
    assert_false(broker_wants(broker, TOPIC_LINKS));

    /* No subscription is left, so nothing is stored. */
    assert_int_equal(publish_text(broker, TOPIC_LINKS, 1, "after"), 0);
    broker_unsubscribe(NULL);
    broker_destroy(broker);
}

static void subscribe_fails_at_subscriber_limit(void **unused)
{
    struct broker *broker = create_broker(0, 4, 4, 2);
    struct notify_counter counter = {0};
    struct broker_subscribe_options options = {
        .topics = VISITS,
        .notify = count_notify,
        .notify_arg = &counter,
    };
    struct broker_subscription *first = subscribe(broker, VISITS, &counter);
    struct broker_subscription *second = subscribe(broker, LINKS, &counter);
    struct broker_subscription *third = NULL;

    assert_int_equal(broker_subscribe(broker, &options, &third), -EAGAIN);
    assert_null(third);
    assert_int_equal(get_stats(broker).subscriptions, 2);

    broker_unsubscribe(first);
    assert_int_equal(broker_subscribe(broker, &options, &third), 0);
    assert_int_equal(get_stats(broker).subscriptions, 2);

    broker_unsubscribe(second);
    broker_unsubscribe(third);
    broker_destroy(broker);
}

static void unsubscribe_keeps_other_subscriptions(void **unused)
{
    struct broker *broker = create_broker(0, 8, 4, 4);
    struct notify_counter counter = {0};
    struct broker_subscription *subs[3];
    uint64_t id;

    for (unsigned i = 0; i < 3; i++)
        subs[i] = subscribe(broker, VISITS, &counter);

    /* Removing the first entry moves the last one into its place in the topic. */
    broker_unsubscribe(subs[0]);
    id = publish_text(broker, TOPIC_VISITS, 1, "v");
    expect_event(subs[1], id, 0);
    expect_event(subs[2], id, 0);

    broker_unsubscribe(subs[2]);
    id = publish_text(broker, TOPIC_VISITS, 1, "w");
    expect_event(subs[1], id, 0);
    broker_unsubscribe(subs[1]);
    assert_false(broker_wants(broker, TOPIC_VISITS));
    broker_destroy(broker);
}

static void destroy_frees_open_subscriptions(void **unused)
{
    struct broker *broker = create_broker(LINKS, 8, 4, 4);
    struct notify_counter counter = {0};

    (void)subscribe(broker, LINKS | VISITS, &counter);
    (void)subscribe(broker, VISITS, &counter);
    for (unsigned i = 0; i < 6; i++)
        (void)publish_text(broker, i % 2 ? TOPIC_VISITS : TOPIC_LINKS, 1, "left behind");

    /* The ASan build also reports a leak if anything here is not freed. */
    broker_destroy(broker);
    assert_int_equal(freed_events, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_rejects_invalid_config),
        cmocka_unit_test(publish_without_subscribers_stores_nothing),
        cmocka_unit_test(retained_topic_stores_only_replay),
        cmocka_unit_test(publish_rejects_bad_arguments),
        cmocka_unit_test(subscribe_rejects_bad_options),
        cmocka_unit_test(ids_increase_from_first_id_across_topics),
        cmocka_unit_test(subscription_gets_only_its_topics),
        cmocka_unit_test(owner_filter_queues_only_that_owner),
        cmocka_unit_test(poll_returns_events_in_publish_order),
        cmocka_unit_test(full_queue_drops_and_counts_exactly),
        cmocka_unit_test(drop_is_reported_before_the_next_event),
        cmocka_unit_test(notify_runs_once_per_empty_to_nonempty),
        cmocka_unit_test(notify_skips_drops_on_full_queue),
        cmocka_unit_test(resume_inside_buffer_replays_the_rest),
        cmocka_unit_test(resume_at_newest_id_replays_nothing),
        cmocka_unit_test(resume_at_buffer_edge_loses_nothing),
        cmocka_unit_test(resume_older_than_buffer_counts_lost),
        cmocka_unit_test(resume_with_future_id_reports_unknown),
        cmocka_unit_test(resume_before_first_id_reports_unknown),
        cmocka_unit_test(resume_after_unwatched_period_reports_unknown),
        cmocka_unit_test(resume_after_watch_restarted_reports_unknown),
        cmocka_unit_test(resume_while_topic_watched_loses_nothing),
        cmocka_unit_test(resume_replay_beyond_queue_drops_newest),
        cmocka_unit_test(event_freed_by_last_release),
        cmocka_unit_test(unsubscribe_frees_queued_events),
        cmocka_unit_test(subscribe_fails_at_subscriber_limit),
        cmocka_unit_test(unsubscribe_keeps_other_subscriptions),
        cmocka_unit_test(destroy_frees_open_subscriptions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
