/*
 * The writer: one thread that applies creates and deletes in batches.
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
 * The code of a link is the codegen permutation of its id; an id whose code
 * is a reserved path segment is skipped.
 *
 * After a commit the writer updates the cache with the authoritative state
 * (live for a create, gone for a delete) before any done callback runs, so a
 * client that got its 201 is redirected from the cache at once.
 *
 * States: running -> stopping (writer_stop: no new operations, queued ones
 * are still applied) -> stopped (thread joined, store closed).
 */
#ifndef SHORTD_APP_WRITER_H
#define SHORTD_APP_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "core/cache.h"
#include "core/codegen.h"
#include "store/store.h"

struct writer;

enum write_kind {
    WRITE_CREATE,
    WRITE_DELETE,
};

struct write_op {
    enum write_kind kind;

    /* Input of a create. url stays owned by the submitter. */
    const char *url;
    size_t url_len;
    int redirect_status;
    int64_t owner_key_id;

    /* Input of a delete. */
    char code[STORE_CODE_MAX + 1];
    size_t code_len;

    /*
     * Output, valid in done: 0, -ENOENT or -EALREADY for a delete, or a
     * negative errno when the batch failed (-ENOSPC, -EIO, ...). For a
     * create, link describes the stored link; its url points at op->url.
     */
    int result;
    struct store_link link;

    /*
     * Called on the writer thread once the outcome is known. It must not
     * block; shortd posts the answer to the connection's loop.
     */
    void (*done)(struct write_op *op);

    struct write_op *next; /* the writer's queue link */
};

struct writer_config {
    struct store *store;            /* taken over by the writer, closed on stop */
    const struct codegen *codegen;  /* must outlive the writer */
    struct cache *cache;            /* must outlive the writer */
    unsigned queue_capacity;        /* operations waiting at most */
    unsigned batch_max;             /* operations per transaction at most */
    unsigned id_block;              /* ids reserved at a time */
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
 * Any thread.
 */
int writer_health(struct writer *writer);

/* Returns the number of operations waiting. Any thread. */
size_t writer_queue_depth(struct writer *writer);

/*
 * Stops accepting operations, applies the queued ones, joins the thread,
 * closes the store and frees the writer. Called once, by the owner.
 */
void writer_stop(struct writer *writer);

#endif
