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
#include "net/loop.h"

struct writer {
    struct writer_config config;
    pthread_t thread;

    /*
     * lock protects the queue (head, tail, depth) and stopping. The writer
     * sleeps on ready while the queue is empty. No other lock is taken
     * while holding it.
     */
    pthread_mutex_t lock;
    pthread_cond_t ready;
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

/* Gives the next id and its code. Returns 0 or -ENOSPC when the code space
 * of the configured length is used up. */
static int next_code(struct writer *writer, struct store_link *link)
{
    int err;

    for (;;) {
        err = reserve_ids(writer, 1);
        if (err < 0)
            return err;

        link->id = (int64_t)writer->next_id++;
        if (codegen_encode(writer->config.codegen, (uint64_t)link->id, link->code) < 0)
            return -ENOSPC;
        link->code_len = writer->config.codegen->length;
        if (!link_code_reserved(link->code, link->code_len))
            return 0;
    }
}

static void update_cache(struct writer *writer, const struct write_op *op)
{
    size_t url_len = op->kind == WRITE_CREATE ? op->url_len : 0;
    char stack[1024], *record = stack;
    size_t len;

    if (LINK_RECORD_HEADER + url_len > sizeof(stack)) {
        record = malloc(LINK_RECORD_HEADER + url_len);
        if (record == NULL) {
            /* Without a fresh entry the old one must not survive. */
            (void)cache_remove(writer->config.cache, op->link.code, op->link.code_len);
            return;
        }
    }

    if (op->kind == WRITE_CREATE)
        len = link_record_encode(LINK_LIVE, op->link.redirect_status, op->link.expires_at, op->url,
                                 op->url_len, record);
    else
        len = link_record_encode(LINK_GONE, 0, 0, NULL, 0, record);

    if (cache_put(writer->config.cache, op->link.code, op->link.code_len, record, len, 0,
                  loop_clock_ms()) < 0)
        (void)cache_remove(writer->config.cache, op->link.code, op->link.code_len);

    if (record != stack)
        free(record);
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

/* Applies batch[0..count) in one transaction and reports each outcome. */
static void apply_batch(struct writer *writer, struct write_op **batch, size_t count)
{
    struct store_op *ops = writer->ops;
    size_t i, creates = 0;
    int64_t now = wall_ms();
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
        if (op->kind == WRITE_CREATE) {
            sop->kind = STORE_OP_CREATE;
            err = next_code(writer, &sop->link);
            sop->link.url = (char *)op->url;
            sop->link.url_len = op->url_len;
            sop->link.created_at = now;
            sop->link.redirect_status = op->redirect_status;
            sop->link.owner_key_id = op->owner_key_id;
        } else {
            sop->kind = STORE_OP_DELETE;
            memcpy(sop->link.code, op->code, op->code_len + 1);
            sop->link.code_len = op->code_len;
        }
    }

    if (err == 0)
        err = store_apply(writer->config.store, ops, count);
    atomic_store_explicit(&writer->health, err, memory_order_relaxed);

    for (i = 0; i < count; i++) {
        struct write_op *op = batch[i];

        op->result = err < 0 ? err : ops[i].result;
        op->link = ops[i].link;
        if (op->result == 0)
            update_cache(writer, op);
    }

    for (i = 0; i < count; i++) {
        /*
         * A generated code can only be taken by an alias that a client
         * chose. The create then gets the next id, in the next batch.
         */
        if (batch[i]->kind == WRITE_CREATE && batch[i]->result == -EEXIST)
            requeue(writer, batch[i]);
        else
            batch[i]->done(batch[i]);
    }
}

static void *writer_main(void *arg)
{
    struct writer *writer = arg;
    struct write_op *op;
    size_t count;
    sigset_t all;

    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_BLOCK, &all, NULL);

    for (;;) {
        pthread_mutex_lock(&writer->lock);
        while (writer->head == NULL && !writer->stopping)
            pthread_cond_wait(&writer->ready, &writer->lock);
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
    return NULL;
}

int writer_start(const struct writer_config *config, struct writer **out)
{
    struct writer *writer;
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
    pthread_cond_init(&writer->ready, NULL);
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
