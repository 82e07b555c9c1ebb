/*
 * Topic-based publish/subscribe broker with bounded queues and a replay buffer.
 *
 * shortd publishes link changes and redirects here, and server-sent-event
 * connections subscribe to them. Topics are small integers chosen by the
 * caller, such as one for links and one for visits. A subscription names
 * the topics it wants as a bit mask.
 *
 * Events: each event gets a 64-bit id from one counter shared by all
 * topics, starting at broker_config.first_id and increasing by one per
 * event. The payload is copied once into a reference-counted event that
 * every queue and the replay buffer share. The last holder to let go frees
 * it.
 *
 * Publishing to a topic that no subscription wants costs one relaxed atomic
 * load: the event gets no id and is not stored. A topic listed in
 * retained_topics is always stored in the replay buffer, so publishing to it
 * always takes the broker lock. With subscriptions, a publish takes one short
 * lock and never waits for a subscriber: a full queue drops the event and
 * counts it.
 *
 * Subscriptions: each has a bounded single-consumer queue, read without a
 * lock. When the queue goes from empty to non-empty, the broker calls the
 * subscription's notify callback once; it calls it again only after
 * broker_poll has found the queue empty. A subscription may resume after the
 * id of the last event its client saw: the events still in the replay buffer
 * are queued first, and broker_poll reports how many events were lost, or
 * that an unknown number were.
 *
 * Workload: broker_publish, broker_wants, broker_subscribe, broker_get_stats
 * and broker_event_release may be called from any thread concurrently. A
 * subscription is used by one thread at a time (broker_poll,
 * broker_unsubscribe); shortd uses it on the I/O thread of its connection.
 * broker_create and broker_destroy are called once, by the owner.
 */
#ifndef SHORTD_CORE_BROKER_H
#define SHORTD_CORE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct broker_subscription;

/* Topics per broker, at most. Topic numbers run from 0 to topics - 1. */
#define BROKER_TOPICS_MAX 8

/* Maximum queue_capacity, replay_capacity and max_subscribers. */
#define BROKER_CAPACITY_MAX (1u << 24)

/* broker_poll's dropped value when the number of lost events is not known. */
#define BROKER_DROPPED_UNKNOWN UINT64_MAX

/* An event as subscribers see it. Read only, and shared between subscriptions. */
struct broker_event {
    uint64_t id;
    uint64_t owner; /* tag given by the publisher, such as the id of the link's API key */
    unsigned topic;
    size_t size;      /* payload bytes */
    const void *data; /* payload; NULL when size is 0 */
};

/*
 * Called just before an event that got an id is freed, on the thread that
 * let go of it last, with no broker lock held. It serves tests and memory
 * accounting, and must not call into the broker.
 */
typedef void (*broker_free_hook_fn)(void *context, const struct broker_event *event);

struct broker_config {
    unsigned topics;          /* 1 to BROKER_TOPICS_MAX */
    uint32_t retained_topics; /* mask of topics stored for replay even without subscribers */
    uint64_t first_id;        /* id of the first event, at least 1 */
    unsigned queue_capacity;  /* events per subscription queue, 1 to BROKER_CAPACITY_MAX */
    unsigned replay_capacity; /* most recent events kept for resuming, 0 to BROKER_CAPACITY_MAX */
    unsigned max_subscribers; /* 1 to BROKER_CAPACITY_MAX */
    size_t payload_max;       /* maximum payload size, in bytes */

    broker_free_hook_fn free_hook; /* optional */
    void *free_hook_context;
};

/*
 * Called when a subscription's queue goes from empty to non-empty. It runs on
 * the publishing thread with the broker lock held, so it must be short and
 * must not call into the broker. The intended use is posting a task to the
 * subscriber's event loop with loop_post. The poll that the wakeup runs must
 * happen after the notify call, as loop_post, a semaphore or a mutex
 * guarantee; a relaxed flag would not. It is never called after
 * broker_unsubscribe has returned.
 *
 * After a call, notify is not called again until broker_poll has returned
 * -EAGAIN for the subscription. So an owner that polls only from the wakeup
 * that notify caused (and right after subscribing) never has two wakeups
 * pending, and may embed one loop_task. An owner that polls to -EAGAIN at
 * other times may get a second call before the first wakeup has run.
 */
typedef void (*broker_notify_fn)(void *arg);

struct broker_subscribe_options {
    uint32_t topics; /* bit t set for topic t, at least one configured topic */

    bool filter_owner; /* when true, only events whose owner equals owner are queued */
    uint64_t owner;

    /*
     * When true, events after last_event_id that are still in the replay
     * buffer are queued first, and the first broker_poll reports the events
     * after last_event_id that are no longer available. That count is exact
     * when the subscription takes every topic with no owner filter, and
     * otherwise any loss is BROKER_DROPPED_UNKNOWN. The loss is also
     * unknown for an id before first_id - 1, such as one from an earlier
     * run, and for an id the broker has not assigned yet, which replays
     * nothing. It is unknown too when a wanted topic that is not retained
     * had no subscriber at some moment after last_event_id, because events
     * published then were not stored.
     */
    bool resume;
    uint64_t last_event_id;

    broker_notify_fn notify; /* required */
    void *notify_arg;
};

struct broker_stats {
    uint64_t last_id;       /* id of the newest event, or first_id - 1 before any */
    uint64_t published;     /* events given an id */
    uint64_t queued;        /* events put into subscription queues, replayed ones included */
    uint64_t dropped;       /* events not queued because a queue was full */
    uint64_t subscriptions; /* subscriptions now */
    uint64_t replay_events; /* events in the replay buffer now */
};

/*
 * Creates a broker. Returns 0 and sets *broker, or -EINVAL for a config out
 * of range, or -ENOMEM. config is copied and need not outlive the call.
 */
int broker_create(const struct broker_config *config, struct broker **broker);

/*
 * Frees the broker, every subscription still open (their handles become
 * invalid) and every event they and the replay buffer hold. Every event
 * returned by broker_poll must have been released before, because freeing
 * an event reads the broker's free hook. No other thread may use the broker
 * or its subscriptions during or after the call. broker may be NULL.
 */
void broker_destroy(struct broker *broker);

/*
 * Returns whether a publish to topic would store the event: true when some
 * subscription wants the topic or the topic is retained. It costs one
 * relaxed atomic load, so callers use it to skip building a payload that no
 * subscriber will read. The result may be stale as soon as it is returned.
 * Any thread.
 */
bool broker_wants(struct broker *broker, unsigned topic);

/*
 * Publishes size bytes of data (copied) on topic with an owner tag. Returns 0
 * and sets *id (when id is not NULL) to the event's id, or to 0 when no
 * subscription wanted the topic and it is not retained, so nothing was
 * stored. Fails with -EINVAL for a topic not configured or for NULL data
 * with a non-zero size, -EMSGSIZE for a payload longer than payload_max,
 * -ENOMEM, or -EOVERFLOW once ids are exhausted, and nothing is stored
 * then. Waits only for the broker lock, never for a subscriber, and may
 * call notify callbacks. Any thread.
 */
int broker_publish(struct broker *broker, unsigned topic, uint64_t owner, const void *data,
                   size_t size, uint64_t *id);

/*
 * Opens a subscription. Returns 0 and sets *subscription, or fails with
 * -EINVAL (options NULL, no notify, no valid topic, or a topic bit beyond
 * the configured topics), -EAGAIN when max_subscribers subscriptions are
 * open, or -ENOMEM.
 *
 * Events published after the call are queued; with options->resume, the
 * buffered events after last_event_id are queued first. No event is both
 * replayed and queued live, and none published during the call is missed.
 * notify is not called for events queued by this call: the caller drains
 * the new subscription with broker_poll until -EAGAIN, and is notified only
 * after that. Any thread; the subscription then belongs to the caller.
 */
int broker_subscribe(struct broker *broker, const struct broker_subscribe_options *options,
                     struct broker_subscription **subscription);

/*
 * Takes the oldest queued event. Returns 0 and sets *event; the caller owns
 * that reference and releases it with broker_event_release. Returns -EAGAIN
 * when the queue is empty, which also re-arms the notify callback.
 *
 * Both results set *dropped to the number of events the subscription lost
 * just before *event, or with -EAGAIN since the last event returned. These
 * are events a full queue rejected, and on the first call after a resume,
 * events no longer in the replay buffer. It is BROKER_DROPPED_UNKNOWN when
 * the number is not known, and usually 0.
 *
 * A caller may stop before -EAGAIN, for instance while its socket is full;
 * no notify comes until it has drained the queue, and new events are
 * dropped while the queue is full. The thread that owns the subscription
 * only. Does not allocate. Reading events takes no lock; finding the queue
 * empty takes the broker lock for a few loads and stores, so do not call it
 * while holding a lock that a notify callback may take.
 */
int broker_poll(struct broker_subscription *subscription, const struct broker_event **event,
                uint64_t *dropped);

/*
 * Releases an event returned by broker_poll, freeing it if it was the last
 * reference. event may be NULL. Any thread.
 */
void broker_event_release(const struct broker_event *event);

/*
 * Closes a subscription and releases the events still in its queue. Safe
 * while other threads publish; once it returns, the notify callback is not
 * running and will not run again. The thread that owns the subscription
 * only. subscription may be NULL.
 */
void broker_unsubscribe(struct broker_subscription *subscription);

/* Fills stats with a consistent snapshot taken under the broker lock. Any thread. */
void broker_get_stats(struct broker *broker, struct broker_stats *stats);

#endif
