/*
 * The writer: one thread that applies every write to the store in batches.
 *
 * I/O threads queue write operations; the writer takes everything queued
 * (up to a batch limit), commits it to the store in one durable transaction
 * and then calls each operation's done callback. While a commit waits for
 * the disk, new operations pile up and form the next batch, so one fsync
 * covers many requests (group commit) and durability costs little
 * throughput.
 *
 * Ids for new links come from blocks reserved in the store ahead of use
 * (store_reserve_ids), so a crash skips ids and never hands one out twice.
 * A link without an alias gets the codegen permutation of its id as its
 * code. An id whose code is a reserved path segment is skipped, and a create
 * whose generated code is already taken (by an alias a client chose) is
 * queued again with the next id.
 *
 * After a commit the writer calls the owner's applied callback for every
 * operation that took effect, before any done callback runs: shortd updates
 * the cache there, so a client that got its 201 is redirected from the cache
 * at once, and publishes events.
 *
 * The writer also calls the owner's tick callback every tick interval and
 * once more when it stops, with its store connection: shortd flushes visit
 * counts and marks expired links there, so all writes share one connection.
 *
 * States: running -> stopping (writer_stop: no new operations, queued ones
 * are still applied, then the final tick) -> stopped (thread joined, store
 * closed).
 */
#ifndef SHORTD_APP_WRITER_H
#define SHORTD_APP_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codegen.h"
#include "store/store.h"

struct writer;

enum write_kind {
    WRITE_CREATE,
    WRITE_DELETE,
    WRITE_KEY_CREATE,
    WRITE_KEY_REVOKE,
};

struct write_op {
    enum write_kind kind;

    /* Input of a create. url stays owned by the submitter. */
    const char *url;
    size_t url_len;
    int redirect_status;
    int64_t expires_at;    /* ms, 0 for never */
    int64_t max_visits;    /* 0 for unlimited */
    int64_t cache_max_age; /* seconds, -1 for unset */
    int64_t owner_key_id;  /* 0 for none */
    bool dedupe;           /* return an equal existing link instead (store_op.dedupe) */

    /* A create's alias ("" to generate a code), or the code to delete. */
    char code[STORE_CODE_MAX + 1];
    size_t code_len;

    /* Input of KEY_CREATE (all but id) and KEY_REVOKE (id). */
    struct store_key key;

    /*
     * Output, valid in applied and done: 0; STORE_DEDUPED for a create that
     * found an equal link; -EEXIST for a create whose alias is taken;
     * -ENOENT or -EALREADY for a delete or revoke; or a negative errno when
     * the batch failed (-ENOSPC, -EIO, ...). For a create, link describes
     * the stored link (its url points at op->url); for KEY_CREATE, key.id is
     * set.
     */
    int result;
    struct store_link link;

    /*
     * Called on the writer thread once the outcome is known. It must not
     * block; shortd posts the response to the connection's loop.
     */
    void (*done)(struct write_op *op);

    struct write_op *next; /* the writer's queue link */
};

struct writer_config {
    struct store *store;           /* taken over by the writer, closed on stop */
    const struct codegen *codegen; /* must outlive the writer */
    unsigned queue_capacity;       /* operations waiting at most */
    unsigned batch_max;            /* operations per transaction at most */
    unsigned id_block;             /* ids reserved at a time */

    /* Optional: called after each commit for every op that took effect. */
    void (*applied)(void *context, const struct write_op *op);

    /* Optional: called after each transaction with its size, duration and result. */
    void (*committed)(void *context, size_t ops, uint64_t duration_ns, int err);

    /* Optional: called every tick_interval_ms and, with final set, at stop. */
    void (*tick)(void *context, struct store *store, bool final);
    uint32_t tick_interval_ms;

    void *context; /* passed to applied, committed and tick */
};

/*
 * Starts the writer thread. Returns 0, or a negative errno (the store is
 * then still the caller's).
 */
int writer_start(const struct writer_config *config, struct writer **writer);

/*
 * Queues op. Returns 0, -EAGAIN when the queue is full, or -ESHUTDOWN when
 * the writer is stopping. On error op is not queued and done is not called.
 * Any thread.
 */
int writer_submit(struct writer *writer, struct write_op *op);

/*
 * Returns 0 when the last transaction committed, else its negative errno.
 * While it is negative, every tick tries a small write (an id block), so
 * the health recovers without a client write once the store takes writes.
 * Any thread.
 */
int writer_health(struct writer *writer);

/* Records the outcome of a write done by the tick, for writer_health. */
void writer_set_health(struct writer *writer, int err);

/* Returns the number of operations waiting. Any thread. */
size_t writer_queue_depth(struct writer *writer);

/*
 * Stops accepting operations, applies the queued ones, runs the final tick,
 * joins the thread, closes the store and frees the writer. Called once, by
 * the owner.
 */
void writer_stop(struct writer *writer);

#endif
