/* The writer thread and its group commits, see writer.h. */
#include "app/writer.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/links.h"

struct writer {
    struct writer_config config;
    pthread_t thread;

    /*
     * lock protects the queue (head, tail, depth) and stopping. The writer
     * sleeps on ready while the queue is empty. No other lock is taken
     * while holding it.
     */
    pthread_mutex_t lock;
    pthread_cond_t ready; /* uses CLOCK_MONOTONIC for the tick deadline */
    struct write_op *head, *tail;
    size_t depth;
    bool stopping;

    /* Writer thread only. */
    uint64_t next_id, end_id; /* reserved ids not yet used: [next_id, end_id) */
    struct store_op *ops;
    struct write_op **batch;

    _Atomic int health; /* relaxed: a status flag that orders nothing */
};

static int64_t wall_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Makes sure `count` ids are reserved. Returns 0 or a store error. */
static int reserve_ids(struct writer *writer, size_t count)
{
    uint64_t first, block;
    int err;

    if (writer->end_id - writer->next_id >= count)
        return 0;

    /* Ids left over from the old block are skipped; that is allowed. */
    block = writer->config.id_block > count ? writer->config.id_block : count;
    err = store_reserve_ids(writer->config.store, block, &first);
    if (err < 0)
        return err;

    writer->next_id = first;
    writer->end_id = first + block;
    return 0;
}

/* Takes the next id. Returns 0 or a store error. */
static int next_id(struct writer *writer, struct store_link *link)
{
    int err = reserve_ids(writer, 1);

    if (err < 0)
        return err;
    link->id = (int64_t)writer->next_id++;
    return 0;
}

/* Takes the next id and its code. Returns 0, a store error, or -ERANGE when
 * the code space of the configured length is used up. */
static int next_code(struct writer *writer, struct store_link *link)
{
    int err;

    for (;;) {
        err = next_id(writer, link);
        if (err < 0)
            return err;
        if (codegen_encode(writer->config.codegen, (uint64_t)link->id, link->code) < 0)
            return -ERANGE;
        link->code_len = writer->config.codegen->length;
        if (!link_code_reserved(link->code, link->code_len))
            return 0;
    }
}

/* Puts op back at the head of the queue, ahead of newer operations. */
static void requeue(struct writer *writer, struct write_op *op)
{
    pthread_mutex_lock(&writer->lock);
    op->next = writer->head;
    writer->head = op;
    if (writer->tail == NULL)
        writer->tail = op;
    writer->depth++;
    pthread_mutex_unlock(&writer->lock);
}

/* Fills the store op for a create. Returns 0 or an error for the batch. */
static int prepare_create(struct writer *writer, struct write_op *op, struct store_op *sop,
                          int64_t now)
{
    int err;

    sop->kind = STORE_OP_CREATE;
    if (op->code_len > 0) {
        err = next_id(writer, &sop->link);
        memcpy(sop->link.code, op->code, op->code_len + 1);
        sop->link.code_len = op->code_len;
        sop->link.is_alias = true;
    } else {
        err = next_code(writer, &sop->link);
    }
    sop->link.url = (char *)op->url;
    sop->link.url_len = op->url_len;
    sop->link.created_at = now;
    sop->link.expires_at = op->expires_at;
    sop->link.max_visits = op->max_visits;
    sop->link.cache_max_age = op->cache_max_age;
    sop->link.redirect_status = op->redirect_status;
    sop->link.owner_key_id = op->owner_key_id;
    sop->dedupe = op->dedupe;
    return err;
}

/* Applies batch[0..count) in one transaction and reports each outcome. */
static void apply_batch(struct writer *writer, struct write_op **batch, size_t count)
{
    struct store_op *ops = writer->ops;
    uint64_t started = monotonic_ns();
    int64_t now = wall_ms();
    size_t i, creates = 0;
    int err = 0;

    for (i = 0; i < count; i++) {
        if (batch[i]->kind == WRITE_CREATE)
            creates++;
    }
    if (creates > 0)
        err = reserve_ids(writer, creates);

    for (i = 0; i < count && err == 0; i++) {
        struct write_op *op = batch[i];
        struct store_op *sop = &ops[i];

        memset(sop, 0, sizeof(*sop));
        sop->now = now;
        switch (op->kind) {
        case WRITE_CREATE:
            err = prepare_create(writer, op, sop, now);
            break;
        case WRITE_DELETE:
            sop->kind = STORE_OP_DELETE;
            memcpy(sop->link.code, op->code, op->code_len + 1);
            sop->link.code_len = op->code_len;
            break;
        case WRITE_KEY_CREATE:
            sop->kind = STORE_OP_KEY_CREATE;
            sop->key = op->key;
            sop->key.created_at = now;
            break;
        case WRITE_KEY_REVOKE:
            sop->kind = STORE_OP_KEY_REVOKE;
            sop->key.id = op->key.id;
            break;
        }
    }

    if (err == 0)
        err = store_apply(writer->config.store, ops, count);
    atomic_store_explicit(&writer->health, err, memory_order_relaxed);
    if (writer->config.committed != NULL)
        writer->config.committed(writer->config.context, count, monotonic_ns() - started, err);

    for (i = 0; i < count; i++) {
        struct write_op *op = batch[i];

        op->result = err < 0 ? err : ops[i].result;
        op->link = ops[i].link;
        if (op->kind == WRITE_KEY_CREATE || op->kind == WRITE_KEY_REVOKE) {
            op->key.id = ops[i].key.id;
            op->key.created_at = ops[i].key.created_at;
            op->key.revoked_at = op->kind == WRITE_KEY_REVOKE ? now : 0;
        }
        if (op->result == 0 || op->result == STORE_DEDUPED) {
            if (writer->config.applied != NULL)
                writer->config.applied(writer->config.context, op);
        }
    }

    for (i = 0; i < count; i++) {
        /*
         * A generated code can only be taken by an alias that a client
         * chose. The create then gets the next id, in the next batch.
         */
        if (batch[i]->kind == WRITE_CREATE && batch[i]->result == -EEXIST &&
            batch[i]->code_len == 0)
            requeue(writer, batch[i]);
        else
            batch[i]->done(batch[i]);
    }
}

static void deadline_after(struct timespec *ts, uint32_t ms)
{
    (void)clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

static bool passed(const struct timespec *deadline)
{
    struct timespec now;

    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/*
 * After a failed write only a write that succeeds shows that the store takes
 * writes again, and clients may have stopped sending any: a load balancer
 * takes a server whose /readyz fails out of rotation. So while the health is
 * bad, each tick reserves a fresh id block as a probe, before the tick's own
 * writes, which then have the last word. The rest of the old block is
 * skipped, as after a crash.
 */
static void probe_store(struct writer *writer)
{
    if (atomic_load_explicit(&writer->health, memory_order_relaxed) >= 0)
        return;

    writer->next_id = writer->end_id;
    atomic_store_explicit(&writer->health, reserve_ids(writer, 1), memory_order_relaxed);
}

static void run_tick(struct writer *writer, bool final)
{
    if (!final)
        probe_store(writer);
    if (writer->config.tick != NULL)
        writer->config.tick(writer->config.context, writer->config.store, final);
}

static void *writer_main(void *arg)
{
    struct writer *writer = arg;
    uint32_t interval = writer->config.tick_interval_ms;
    struct timespec tick_at;
    struct write_op *op;
    bool tick_due;
    size_t count;
    sigset_t all;

    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_BLOCK, &all, NULL);
    deadline_after(&tick_at, interval);

    for (;;) {
        tick_due = false;
        pthread_mutex_lock(&writer->lock);
        while (writer->head == NULL && !writer->stopping) {
            if (interval == 0) {
                pthread_cond_wait(&writer->ready, &writer->lock);
                continue;
            }
            if (passed(&tick_at) ||
                pthread_cond_timedwait(&writer->ready, &writer->lock, &tick_at) == ETIMEDOUT) {
                tick_due = true;
                break;
            }
        }
        if (!tick_due && interval > 0 && passed(&tick_at))
            tick_due = true;

        if (tick_due) {
            pthread_mutex_unlock(&writer->lock);
            run_tick(writer, false);
            deadline_after(&tick_at, interval);
            continue;
        }
        if (writer->head == NULL && writer->stopping) {
            pthread_mutex_unlock(&writer->lock);
            break;
        }

        count = 0;
        while (writer->head != NULL && count < writer->config.batch_max) {
            op = writer->head;
            writer->head = op->next;
            writer->batch[count++] = op;
        }
        if (writer->head == NULL)
            writer->tail = NULL;
        writer->depth -= count;
        pthread_mutex_unlock(&writer->lock);

        apply_batch(writer, writer->batch, count);
    }

    run_tick(writer, true);
    return NULL;
}

int writer_start(const struct writer_config *config, struct writer **out)
{
    struct writer *writer;
    pthread_condattr_t attr;
    int err;

    if (config->queue_capacity == 0 || config->batch_max == 0 || config->id_block == 0)
        return -EINVAL;

    writer = calloc(1, sizeof(*writer));
    if (writer == NULL)
        return -ENOMEM;
    writer->config = *config;
    writer->ops = calloc(config->batch_max, sizeof(*writer->ops));
    writer->batch = calloc(config->batch_max, sizeof(*writer->batch));
    if (writer->ops == NULL || writer->batch == NULL) {
        err = -ENOMEM;
        goto fail;
    }

    pthread_mutex_init(&writer->lock, NULL);
    (void)pthread_condattr_init(&attr);
    (void)pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&writer->ready, &attr);
    (void)pthread_condattr_destroy(&attr);
    atomic_init(&writer->health, 0);

    err = pthread_create(&writer->thread, NULL, writer_main, writer);
    if (err != 0) {
        err = -err;
        pthread_cond_destroy(&writer->ready);
        pthread_mutex_destroy(&writer->lock);
        goto fail;
    }

    *out = writer;
    return 0;

fail:
    free(writer->ops);
    free(writer->batch);
    free(writer);
    return err;
}

int writer_submit(struct writer *writer, struct write_op *op)
{
    int err = 0;

    op->next = NULL;
    pthread_mutex_lock(&writer->lock);
    if (writer->stopping) {
        err = -ESHUTDOWN;
    } else if (writer->depth >= writer->config.queue_capacity) {
        err = -EAGAIN;
    } else {
        if (writer->tail != NULL)
            writer->tail->next = op;
        else
            writer->head = op;
        writer->tail = op;
        writer->depth++;
        pthread_cond_signal(&writer->ready);
    }
    pthread_mutex_unlock(&writer->lock);
    return err;
}

int writer_health(struct writer *writer)
{
    return atomic_load_explicit(&writer->health, memory_order_relaxed);
}

void writer_set_health(struct writer *writer, int err)
{
    atomic_store_explicit(&writer->health, err, memory_order_relaxed);
}

size_t writer_queue_depth(struct writer *writer)
{
    size_t depth;

    pthread_mutex_lock(&writer->lock);
    depth = writer->depth;
    pthread_mutex_unlock(&writer->lock);
    return depth;
}

void writer_stop(struct writer *writer)
{
    pthread_mutex_lock(&writer->lock);
    writer->stopping = true;
    pthread_cond_signal(&writer->ready);
    pthread_mutex_unlock(&writer->lock);

    (void)pthread_join(writer->thread, NULL);

    store_close(writer->config.store);
    pthread_cond_destroy(&writer->ready);
    pthread_mutex_destroy(&writer->lock);
    free(writer->ops);
    free(writer->batch);
    free(writer);
}
