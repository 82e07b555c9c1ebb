/*
 * Topic-based publish/subscribe broker, see broker.h.
 *
 * One mutex, the broker lock, serializes everything that gives an event its
 * place: id assignment, the replay ring, and the producer side of every
 * subscription queue. Holding it, a publisher assigns the id, stores the
 * event in the replay ring and pushes it into each interested queue. So
 * every subscriber receives events in id order, and a subscribe with a
 * resume id gets each event either from the replay ring or live, never both
 * and never neither. The critical section costs a few plain stores per
 * subscriber, and nothing in it waits for a consumer.
 *
 * Each subscription queue is a single-producer, single-consumer ring. The
 * producer is whichever publisher holds the broker lock; the consumer is the
 * subscription's owner. Slots are published with a release store of tail
 * and freed with a release store of head, so reading events takes no lock.
 *
 * Drops: every event offered to a subscription (queued or dropped) takes the
 * next number of its sequence, and each slot stores the sequence number of
 * its event. A gap between the slots the consumer reads is the count of
 * events dropped between them, so broker_poll reports each drop at its
 * place in the stream. Drops after the newest queued event are counted when
 * the consumer finds the queue empty, from the producer's count of offered
 * events, under the lock.
 *
 * Notification states of a subscription:
 *   owed     --broker_poll finds the queue empty, sets armed-->      armed
 *   armed    --publish queues an event, clears armed, notify-->      notified
 *   notified --broker_poll finds the queue empty, sets armed-->      armed
 * A new subscription starts owed: its owner drains it once after
 * broker_subscribe. Only the armed state leads to a notify. The consumer
 * arms with the broker lock held, after checking under the lock that the
 * queue is still empty, and publishers test armed with the lock held after
 * queuing, so no event can slip in between a check and a wakeup. Arming
 * happens once per drain, which keeps the lock off the per-event path.
 *
 * Reference counts: each queue slot and the replay ring hold one reference
 * to an event; broker_poll hands the slot's reference to the caller. A
 * publish first reserves its slots, then sets the count to the number of
 * holders, then makes the slots visible, so no atomic read-modify-write is
 * needed until a holder lets go.
 *
 * Resume: ids are contiguous, because an event gets an id only when it is
 * stored, so the replay ring holds exactly the ids [next_id - replay_count,
 * next_id). Events skipped because nobody wanted their topic have no id, so
 * for such topics the broker remembers when each period with subscribers
 * began (watch_start) and reports an unknown loss to a resume that reaches
 * back before it.
 */
#include "core/broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/container_of.h"

#define CACHE_LINE 64

/*
 * Topic state word, read by every publish. It is zero exactly when a
 * publish must do nothing: a configured topic that is not retained and has
 * no subscriber.
 */
#define STATE_RETAINED     1u /* stored even without subscribers */
#define STATE_UNCONFIGURED 2u /* topic number beyond config->topics */
#define STATE_SUBSCRIBER   4u /* one subscriber, added once per subscriber */

struct event {
    atomic_uint refs;
    struct broker *broker; /* for the free hook */
    struct broker_event public;
    /* payload bytes follow */
};

struct slot {
    struct event *event;
    uint64_t seq; /* the event's number in the subscription's sequence */
};

struct broker_subscription {
    struct broker *broker;

    /* Fixed at subscribe. */
    struct slot *ring;
    unsigned mask; /* ring size - 1; the size is a power of two */
    unsigned capacity;
    uint32_t topics;
    bool filter_owner;
    uint64_t owner;
    broker_notify_fn notify;
    void *notify_arg;

    /*
     * Producer side, protected by the broker lock. head, tail and their
     * copies are free-running counters; a slot index is counter & mask.
     */
    unsigned tail;                        /* next slot to fill */
    unsigned head_seen;                   /* a value of head_shared, possibly stale */
    uint64_t offered;                     /* events offered so far: next sequence number */
    unsigned position[BROKER_TOPICS_MAX]; /* index in each subscribed topic's array */
    struct broker_subscription *prev, *next;

    /*
     * Read by the consumer without the lock. tail_shared is stored by the
     * producer only; armed is stored by both sides, but only with the
     * broker lock held.
     */
    _Alignas(CACHE_LINE) atomic_uint tail_shared;
    atomic_bool armed;

    /* Consumer side, used only by the owner. */
    _Alignas(CACHE_LINE) atomic_uint head_shared;
    unsigned head;      /* next slot to read */
    unsigned tail_seen; /* a value of tail_shared, possibly stale */
    uint64_t expected;  /* sequence number of the next event if none is dropped */
    uint64_t lost;      /* events lost before the resume, for the first broker_poll */
};

struct topic {
    struct broker_subscription **subscriptions; /* max_subscribers entries */
    unsigned count;
    bool retained;
    uint64_t watch_start; /* newest id when count last went from 0 to 1 */
};

struct broker {
    /*
     * One word per topic (see STATE_*). Written only with the lock held,
     * when a subscription is added or removed, and loaded with no lock by
     * every publish. The array has its own cache line, so publishers
     * writing the locked fields below do not evict it from other cores.
     */
    _Alignas(CACHE_LINE) _Atomic uint32_t topic_state[BROKER_TOPICS_MAX];

    /*
     * lock protects everything from here to the fixed fields: ids, the
     * replay ring, the topics' subscriber arrays, the list of
     * subscriptions, the counters, the producer side of every
     * subscription, and its armed flag. Lock order: the broker lock is
     * taken first and held while notify callbacks run, so a callback may
     * take its own locks but must never call into the broker. No other
     * broker lock exists.
     */
    _Alignas(CACHE_LINE) pthread_mutex_t lock;
    uint64_t next_id;
    struct event **replay; /* ring of replay_capacity entries */
    unsigned replay_head;  /* index of the oldest event */
    unsigned replay_count;
    struct topic topics[BROKER_TOPICS_MAX];
    struct broker_subscription *subscriptions; /* every open subscription */
    unsigned subscription_count;
    uint64_t published;
    uint64_t queued;
    uint64_t dropped;

    /* Fixed at creation. */
    unsigned topic_count;
    uint32_t all_topics; /* mask of the configured topics */
    uint64_t first_id;
    unsigned queue_capacity;
    unsigned replay_capacity;
    unsigned max_subscribers;
    size_t payload_max;
    broker_free_hook_fn free_hook;
    void *free_hook_context;
};

static uint64_t add_lost(uint64_t total, uint64_t more)
{
    if (total == BROKER_DROPPED_UNKNOWN || more == BROKER_DROPPED_UNKNOWN)
        return BROKER_DROPPED_UNKNOWN;
    if (more >= BROKER_DROPPED_UNKNOWN - total)
        return BROKER_DROPPED_UNKNOWN - 1;
    return total + more;
}

static unsigned round_up_power_of_two(unsigned value)
{
    unsigned size = 1;

    while (size < value)
        size <<= 1;
    return size;
}

static void free_event(struct event *event)
{
    const struct broker *broker = event->broker;

    if (broker->free_hook != NULL)
        broker->free_hook(broker->free_hook_context, &event->public);
    free(event);
}

/*
 * Gives back count references. Release makes this holder's reads of the
 * event happen before the free. Acquire, on the subtraction that reaches
 * zero, makes every other holder's reads happen before it too. acq_rel on
 * every subtraction compiles to the same lock-prefixed instruction as
 * release on x86, and ThreadSanitizer models it, which it does not do for
 * a separate acquire fence.
 */
static void event_put(struct event *event, unsigned count)
{
    if (atomic_fetch_sub_explicit(&event->refs, count, memory_order_acq_rel) == count)
        free_event(event);
}

static bool subscription_accepts(const struct broker_subscription *sub, const struct event *event)
{
    if ((sub->topics & (1u << event->public.topic)) == 0)
        return false;
    return !sub->filter_owner || sub->owner == event->public.owner;
}

/*
 * Puts event into the next slot of sub's queue without making it visible,
 * or drops it when the queue is full. Returns whether a slot was taken; the
 * caller accounts for the reference and calls publish_tail. Lock held.
 */
static bool reserve_slot(struct broker_subscription *sub, struct event *event)
{
    uint64_t seq = sub->offered++;
    struct slot *slot;

    if (sub->tail - sub->head_seen >= sub->capacity) {
        /* Acquire: the consumer finished reading the slots it freed. */
        sub->head_seen = atomic_load_explicit(&sub->head_shared, memory_order_acquire);
        if (sub->tail - sub->head_seen >= sub->capacity)
            return false; /* dropped: seq is skipped, and the consumer counts the gap */
    }

    slot = &sub->ring[sub->tail & sub->mask];
    slot->event = event;
    slot->seq = seq;
    sub->tail++;
    return true;
}

/*
 * Makes the reserved slots of sub visible, and calls notify when sub was
 * armed. Lock held.
 */
static void publish_tail(struct broker_subscription *sub)
{
    /* Release: publishes the slots and the events' counts to the consumer, which acquires tail. */
    atomic_store_explicit(&sub->tail_shared, sub->tail, memory_order_release);

    /*
     * Relaxed: armed is only stored with the lock held, which this thread
     * holds, so this load returns the latest value. The consumer that notify
     * wakes reads the queue through the acquire load of tail, and loop_post
     * orders the wakeup itself.
     */
    if (atomic_load_explicit(&sub->armed, memory_order_relaxed)) {
        atomic_store_explicit(&sub->armed, false, memory_order_relaxed);
        sub->notify(sub->notify_arg);
    }
}

/* Stores event as the newest in the replay ring. Returns the evicted event or NULL. Lock held. */
static struct event *replay_push(struct broker *broker, struct event *event)
{
    struct event *evicted = NULL;
    unsigned index;

    if (broker->replay_capacity == 0)
        return NULL;

    if (broker->replay_count == broker->replay_capacity) {
        evicted = broker->replay[broker->replay_head];
        broker->replay_head = (broker->replay_head + 1) % broker->replay_capacity;
        broker->replay_count--;
    }
    index = (broker->replay_head + broker->replay_count) % broker->replay_capacity;
    broker->replay[index] = event;
    broker->replay_count++;
    return evicted;
}

static void store_topic_state(struct broker *broker, unsigned topic)
{
    const struct topic *entry = &broker->topics[topic];
    uint32_t state = entry->count * STATE_SUBSCRIBER;

    if (entry->retained)
        state |= STATE_RETAINED;

    /*
     * Relaxed: the word only decides whether a publisher takes the lock,
     * and every publisher that takes it reads the subscriber arrays under
     * the lock, which orders them after this change.
     */
    atomic_store_explicit(&broker->topic_state[topic], state, memory_order_relaxed);
}

static struct event *create_event(struct broker *broker, unsigned topic, uint64_t owner,
                                  const void *data, size_t size)
{
    struct event *event = malloc(sizeof(*event) + size);

    if (event == NULL)
        return NULL;
    event->broker = broker;
    event->public.owner = owner;
    event->public.topic = topic;
    event->public.size = size;
    event->public.data = NULL;
    if (size > 0) {
        memcpy(event + 1, data, size);
        event->public.data = event + 1;
    }
    return event;
}

static int publish_locked(struct broker *broker, unsigned topic, uint64_t owner, const void *data,
                          size_t size, uint64_t *id)
{
    struct topic *entry = &broker->topics[topic];
    struct event *event;
    struct event *evicted;
    unsigned holders = 0;

    if (size > broker->payload_max)
        return -EMSGSIZE;
    if (size > 0 && data == NULL)
        return -EINVAL;

    /* Allocate before locking, so that malloc never runs inside the critical section. */
    event = create_event(broker, topic, owner, data, size);
    if (event == NULL)
        return -ENOMEM;

    pthread_mutex_lock(&broker->lock);

    /* The last subscriber left between the lock-free check and the lock. */
    if (entry->count == 0 && !entry->retained) {
        pthread_mutex_unlock(&broker->lock);
        free(event);
        *id = 0;
        return 0;
    }
    if (broker->next_id == UINT64_MAX) {
        pthread_mutex_unlock(&broker->lock);
        free(event);
        return -EOVERFLOW;
    }

    event->public.id = broker->next_id++;
    *id = event->public.id;
    broker->published++;

    evicted = replay_push(broker, event);
    if (broker->replay_capacity > 0)
        holders++;

    for (unsigned i = 0; i < entry->count; i++) {
        struct broker_subscription *sub = entry->subscriptions[i];

        if (sub->filter_owner && sub->owner != owner)
            continue;
        if (reserve_slot(sub, event)) {
            holders++;
            broker->queued++;
        } else {
            broker->dropped++;
        }
    }

    /*
     * No other thread can reach the event yet: the replay ring is read only
     * under the lock, and the reserved slots become visible only through
     * the release stores in publish_tail. So the count needs no atomic
     * operation.
     */
    atomic_init(&event->refs, holders);

    for (unsigned i = 0; i < entry->count; i++) {
        struct broker_subscription *sub = entry->subscriptions[i];

        if (sub->tail != atomic_load_explicit(&sub->tail_shared, memory_order_relaxed))
            publish_tail(sub);
    }
    pthread_mutex_unlock(&broker->lock);

    if (evicted != NULL)
        event_put(evicted, 1);

    /* Nobody took the event: no replay ring, and every queue filtered or dropped it. */
    if (holders == 0)
        free_event(event);
    return 0;
}

bool broker_wants(struct broker *broker, unsigned topic)
{
    uint32_t state;

    if (topic >= BROKER_TOPICS_MAX)
        return false;

    /* Relaxed, as in broker_publish: the caller only decides whether to build a payload. */
    state = atomic_load_explicit(&broker->topic_state[topic], memory_order_relaxed);
    return state != 0 && state != STATE_UNCONFIGURED;
}

int broker_publish(struct broker *broker, unsigned topic, uint64_t owner, const void *data,
                   size_t size, uint64_t *id)
{
    uint64_t unused_id;
    uint32_t state;

    if (topic >= BROKER_TOPICS_MAX)
        return -EINVAL;

    /*
     * The hot path: one relaxed load, and a return when nobody wants the
     * topic. Relaxed suffices because a zero word leads to no memory access
     * at all, and a non-zero word leads to the lock, which orders everything
     * after it. A publish that reads zero while a subscribe is running is
     * ordered before that subscribe, because the subscribe's store of this
     * word comes later in the word's modification order: the event is
     * skipped as if it had been published just before the subscribe. A
     * resuming subscriber is told it may have missed such events, because
     * watch_start of the topic is at least its resume id.
     */
    state = atomic_load_explicit(&broker->topic_state[topic], memory_order_relaxed);
    if (state == 0) {
        if (id != NULL)
            *id = 0;
        return 0;
    }
    if (state & STATE_UNCONFIGURED)
        return -EINVAL;

    return publish_locked(broker, topic, owner, data, size, id != NULL ? id : &unused_id);
}

/*
 * Returns the events after last_id that sub wants and that are gone: 0, a
 * count, or BROKER_DROPPED_UNKNOWN. oldest is the id of the oldest event in
 * the replay ring, or next_id when it is empty. Lock held, before sub is
 * added to its topics.
 */
static uint64_t count_lost(const struct broker *broker, const struct broker_subscription *sub,
                           uint64_t last_id, uint64_t oldest)
{
    uint64_t lost = 0;

    /*
     * An id from before this broker's first event, such as one from an
     * earlier run of shortd: events after it may exist that this broker
     * never saw.
     */
    if (last_id < broker->first_id - 1)
        return BROKER_DROPPED_UNKNOWN;

    /*
     * Evicted events: ids are contiguous, so their number is exact, but how
     * many of them sub would have wanted is known only when it wants them all.
     */
    if (last_id + 1 < oldest) {
        if (sub->topics != broker->all_topics || sub->filter_owner)
            return BROKER_DROPPED_UNKNOWN;
        lost = oldest - (last_id + 1);
    }

    /*
     * Events skipped while a topic that is not retained had no subscriber
     * got no id and are not counted anywhere. Any such period after last_id
     * may have skipped some: the topic has no subscriber now, or its current
     * period began after last_id was assigned.
     */
    for (unsigned t = 0; t < broker->topic_count; t++) {
        const struct topic *entry = &broker->topics[t];

        if ((sub->topics & (1u << t)) == 0 || entry->retained)
            continue;
        if (entry->count == 0 || entry->watch_start >= last_id)
            return BROKER_DROPPED_UNKNOWN;
    }
    return lost;
}

/* Queues the buffered events after last_id that sub wants and sets sub->lost. Lock held. */
static void replay_into(struct broker *broker, struct broker_subscription *sub, uint64_t last_id)
{
    uint64_t newest = broker->next_id - 1;
    uint64_t oldest = broker->next_id - broker->replay_count;
    uint64_t from;

    /* An id this broker never assigned: nothing can be replayed or counted. */
    if (last_id > newest) {
        sub->lost = BROKER_DROPPED_UNKNOWN;
        return;
    }

    sub->lost = count_lost(broker, sub, last_id, oldest);

    from = last_id + 1 > oldest ? last_id + 1 : oldest;
    for (uint64_t event_id = from; event_id <= newest; event_id++) {
        unsigned index =
            (broker->replay_head + (unsigned)(event_id - oldest)) % broker->replay_capacity;
        struct event *event = broker->replay[index];

        if (!subscription_accepts(sub, event))
            continue;

        /*
         * Relaxed: a new reference taken from the replay ring's, which
         * cannot be given back while the lock is held. The slot becomes
         * visible through publish_tail below.
         */
        if (reserve_slot(sub, event)) {
            atomic_fetch_add_explicit(&event->refs, 1, memory_order_relaxed);
            broker->queued++;
        } else {
            broker->dropped++;
        }
    }

    /* The new subscription is not armed, so this calls no notify. */
    publish_tail(sub);
}

/* Adds sub to the arrays of its topics. Lock held. */
static void link_subscription(struct broker *broker, struct broker_subscription *sub)
{
    for (unsigned t = 0; t < broker->topic_count; t++) {
        struct topic *entry = &broker->topics[t];

        if ((sub->topics & (1u << t)) == 0)
            continue;
        if (entry->count == 0)
            entry->watch_start = broker->next_id - 1;
        sub->position[t] = entry->count;
        entry->subscriptions[entry->count++] = sub;
        store_topic_state(broker, t);
    }

    sub->prev = NULL;
    sub->next = broker->subscriptions;
    if (broker->subscriptions != NULL)
        broker->subscriptions->prev = sub;
    broker->subscriptions = sub;
    broker->subscription_count++;
}

/* Removes sub from its topics and the list, moving the last entry of each array into its place.
 * Lock held. */
static void unlink_subscription(struct broker *broker, struct broker_subscription *sub)
{
    for (unsigned t = 0; t < broker->topic_count; t++) {
        struct topic *entry = &broker->topics[t];
        struct broker_subscription *moved;

        if ((sub->topics & (1u << t)) == 0)
            continue;
        moved = entry->subscriptions[--entry->count];
        entry->subscriptions[sub->position[t]] = moved;
        moved->position[t] = sub->position[t];
        store_topic_state(broker, t);
    }

    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        broker->subscriptions = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    broker->subscription_count--;
}

/*
 * Releases the events left in sub's queue and frees it. The caller has
 * unlinked sub under the lock (or is destroying the broker), so no
 * publisher touches it any more, and the lock ordered every earlier push
 * before this call: the plain read of the producer's tail is current.
 */
static void free_subscription(struct broker_subscription *sub)
{
    for (unsigned i = sub->head; i != sub->tail; i++)
        event_put(sub->ring[i & sub->mask].event, 1);
    free(sub->ring);
    free(sub);
}

static bool valid_options(const struct broker *broker,
                          const struct broker_subscribe_options *options)
{
    if (options == NULL || options->notify == NULL)
        return false;
    return options->topics != 0 && (options->topics & ~broker->all_topics) == 0;
}

int broker_subscribe(struct broker *broker, const struct broker_subscribe_options *options,
                     struct broker_subscription **subscription)
{
    struct broker_subscription *sub;
    unsigned ring_size;

    if (!valid_options(broker, options) || subscription == NULL)
        return -EINVAL;

    sub = aligned_alloc(CACHE_LINE, sizeof(*sub));
    if (sub == NULL)
        return -ENOMEM;
    memset(sub, 0, sizeof(*sub));

    ring_size = round_up_power_of_two(broker->queue_capacity);
    sub->ring = calloc(ring_size, sizeof(*sub->ring));
    if (sub->ring == NULL) {
        free(sub);
        return -ENOMEM;
    }

    sub->broker = broker;
    sub->mask = ring_size - 1;
    sub->capacity = broker->queue_capacity;
    sub->topics = options->topics;
    sub->filter_owner = options->filter_owner;
    sub->owner = options->owner;
    sub->notify = options->notify;
    sub->notify_arg = options->notify_arg;
    atomic_init(&sub->tail_shared, 0);
    atomic_init(&sub->armed, false); /* owed: the owner drains after subscribing */
    atomic_init(&sub->head_shared, 0);

    pthread_mutex_lock(&broker->lock);
    if (broker->subscription_count == broker->max_subscribers) {
        pthread_mutex_unlock(&broker->lock);
        free(sub->ring);
        free(sub);
        return -EAGAIN;
    }

    /* Replay and link in one critical section, so that no event falls between the two. */
    if (options->resume)
        replay_into(broker, sub, options->last_event_id);
    link_subscription(broker, sub);
    pthread_mutex_unlock(&broker->lock);

    *subscription = sub;
    return 0;
}

/*
 * Reloads the tail when the consumer has read every slot it knew of. When
 * the queue is really empty, counts the drops after the newest event read
 * and arms notify. Returns whether an event is ready at head. Consumer only.
 */
static bool refill(struct broker_subscription *sub, uint64_t *lost)
{
    struct broker *broker = sub->broker;
    bool ready;

    /* Acquire: the slots up to tail, and the counts of their events, are visible after it. */
    sub->tail_seen = atomic_load_explicit(&sub->tail_shared, memory_order_acquire);
    if (sub->tail_seen != sub->head)
        return true;

    /*
     * Already armed: a poll without a wakeup, such as a retry after a full
     * socket. Relaxed: a stale true can only be read after a publisher
     * cleared armed, and that publisher has called or is calling notify, so
     * a wakeup is on its way. The poll that wakeup runs happens after the
     * clearing store (the notify contract requires it), so it reads false.
     */
    if (atomic_load_explicit(&sub->armed, memory_order_relaxed))
        return false;

    pthread_mutex_lock(&broker->lock);
    sub->tail_seen = atomic_load_explicit(&sub->tail_shared, memory_order_relaxed);
    ready = sub->tail_seen != sub->head;
    if (!ready) {
        /* Every event offered and not read was dropped after the newest event read. */
        if (sub->offered > sub->expected) {
            *lost = add_lost(*lost, sub->offered - sub->expected);
            sub->expected = sub->offered;
        }
        atomic_store_explicit(&sub->armed, true, memory_order_relaxed);
    }
    pthread_mutex_unlock(&broker->lock);
    return ready;
}

int broker_poll(struct broker_subscription *sub, const struct broker_event **event,
                uint64_t *dropped)
{
    uint64_t lost = sub->lost;
    const struct slot *slot;

    sub->lost = 0;
    if (sub->head == sub->tail_seen && !refill(sub, &lost)) {
        *event = NULL;
        *dropped = lost;
        return -EAGAIN;
    }

    slot = &sub->ring[sub->head & sub->mask];
    lost = add_lost(lost, slot->seq - sub->expected);
    sub->expected = slot->seq + 1;
    *event = &slot->event->public;
    sub->head++;

    /* Release: the slot has been read before the producer may reuse it. */
    atomic_store_explicit(&sub->head_shared, sub->head, memory_order_release);
    *dropped = lost;
    return 0;
}

void broker_event_release(const struct broker_event *public)
{
    if (public != NULL)
        event_put(container_of(public, struct event, public), 1);
}

void broker_unsubscribe(struct broker_subscription *sub)
{
    struct broker *broker;

    if (sub == NULL)
        return;

    broker = sub->broker;
    pthread_mutex_lock(&broker->lock);
    unlink_subscription(broker, sub);
    pthread_mutex_unlock(&broker->lock);

    free_subscription(sub);
}

void broker_get_stats(struct broker *broker, struct broker_stats *stats)
{
    pthread_mutex_lock(&broker->lock);
    stats->last_id = broker->next_id - 1;
    stats->published = broker->published;
    stats->queued = broker->queued;
    stats->dropped = broker->dropped;
    stats->subscriptions = broker->subscription_count;
    stats->replay_events = broker->replay_count;
    pthread_mutex_unlock(&broker->lock);
}

static bool valid_config(const struct broker_config *config)
{
    if (config->topics == 0 || config->topics > BROKER_TOPICS_MAX)
        return false;
    if ((config->retained_topics >> config->topics) != 0)
        return false;
    if (config->first_id == 0)
        return false;
    if (config->queue_capacity == 0 || config->queue_capacity > BROKER_CAPACITY_MAX)
        return false;
    if (config->replay_capacity > BROKER_CAPACITY_MAX)
        return false;
    return config->max_subscribers > 0 && config->max_subscribers <= BROKER_CAPACITY_MAX;
}

static void free_broker(struct broker *broker)
{
    for (unsigned t = 0; t < BROKER_TOPICS_MAX; t++)
        free(broker->topics[t].subscriptions);
    free(broker->replay);
    free(broker);
}

int broker_create(const struct broker_config *config, struct broker **out)
{
    struct broker *broker;
    int rc;

    if (config == NULL || out == NULL || !valid_config(config))
        return -EINVAL;

    broker = aligned_alloc(CACHE_LINE, sizeof(*broker));
    if (broker == NULL)
        return -ENOMEM;
    memset(broker, 0, sizeof(*broker));

    if (config->replay_capacity > 0) {
        broker->replay = calloc(config->replay_capacity, sizeof(*broker->replay));
        if (broker->replay == NULL) {
            free_broker(broker);
            return -ENOMEM;
        }
    }
    for (unsigned t = 0; t < config->topics; t++) {
        broker->topics[t].subscriptions =
            calloc(config->max_subscribers, sizeof(*broker->topics[t].subscriptions));
        if (broker->topics[t].subscriptions == NULL) {
            free_broker(broker);
            return -ENOMEM;
        }
        broker->topics[t].retained = (config->retained_topics & (1u << t)) != 0;
    }

    rc = -pthread_mutex_init(&broker->lock, NULL);
    if (rc != 0) {
        free_broker(broker);
        return rc;
    }

    broker->next_id = config->first_id;
    broker->topic_count = config->topics;
    broker->all_topics = (uint32_t)((1ull << config->topics) - 1);
    broker->first_id = config->first_id;
    broker->queue_capacity = config->queue_capacity;
    broker->replay_capacity = config->replay_capacity;
    broker->max_subscribers = config->max_subscribers;
    broker->payload_max = config->payload_max;
    broker->free_hook = config->free_hook;
    broker->free_hook_context = config->free_hook_context;

    for (unsigned t = 0; t < BROKER_TOPICS_MAX; t++) {
        if (t < config->topics)
            store_topic_state(broker, t);
        else
            atomic_init(&broker->topic_state[t], STATE_UNCONFIGURED);
    }

    *out = broker;
    return 0;
}

void broker_destroy(struct broker *broker)
{
    if (broker == NULL)
        return;

    while (broker->subscriptions != NULL) {
        struct broker_subscription *sub = broker->subscriptions;

        broker->subscriptions = sub->next;
        free_subscription(sub);
    }

    for (unsigned i = 0; i < broker->replay_count; i++)
        event_put(broker->replay[(broker->replay_head + i) % broker->replay_capacity], 1);

    (void)pthread_mutex_destroy(&broker->lock);
    free_broker(broker);
}
