/*
 * Visit counting: redirects are counted in memory, per I/O thread, and
 * handed to the store in batches.
 *
 * Each I/O thread owns a table of (link id, day, referrer host) -> count
 * behind its own mutex, which only that thread and the flusher ever take, so
 * the lock is uncontended on the redirect path. Entries live in an arena of
 * chunks; visits_take swaps each thread's table for an empty one and
 * recycles the old table, chunks and slot array included, so once the
 * tables have grown to the traffic's size, counting a visit allocates
 * nothing.
 *
 * Bound: a table holds at most max_entries entries. Past it a visit is
 * counted without its referrer host, and when even that entry cannot be
 * added the visit is dropped and counted in visits_dropped(). With the
 * default bound that takes millions of distinct links visited within one
 * flush interval on one thread.
 */
#ifndef SHORTD_APP_VISITS_H
#define SHORTD_APP_VISITS_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"
#include "store/store.h"

struct visits;

/*
 * Creates counters for `threads` I/O threads. Returns NULL on allocation
 * failure.
 */
struct visits *visits_create(unsigned threads, size_t max_entries, const struct hash_key *key);

/* Frees everything, counts not taken included. No thread may use it. */
void visits_destroy(struct visits *visits);

/*
 * Counts one visit to the link link_id on day from referrer (a lowercase
 * host name, empty for none; longer than STORE_HOST_MAX is cut). A link_id
 * below 1 is no link and is ignored. thread is the caller's I/O thread
 * index; only that thread may pass it.
 */
void visits_record(struct visits *visits, unsigned thread, int64_t link_id, int32_t day,
                   const char *referrer, size_t referrer_len);

/*
 * Moves every count recorded so far into one malloc'd block and resets the
 * counters. The block starts with the *count entries, in no particular
 * order, and their referrer bytes follow, so each entry's referrer points
 * into the same block and one free(*out) releases everything. *count is 0
 * and *out NULL when nothing was recorded. Returns 0, or -ENOMEM (then the
 * counts stay for the next call). One thread at a time; shortd calls it from
 * the writer thread.
 */
int visits_take(struct visits *visits, struct store_visit **out, size_t *count);

/*
 * Copies two arrays of entries, first and then second, into one new
 * malloc'd block in the layout of visits_take. Each referrer then points at
 * its copy inside the block, so counts taken at different times can wait
 * for a retry as one block. The inputs stay with the caller. Returns NULL
 * when memory ran out or both arrays are empty. Any thread.
 */
struct store_visit *visits_join(const struct store_visit *first, size_t first_count,
                                const struct store_visit *second, size_t second_count);

/* Returns how many visits were dropped because a table was full. */
uint64_t visits_dropped(struct visits *visits);

/*
 * Writes the host of a Referer header value (http or https URLs only),
 * lowercased, into out (STORE_HOST_MAX + 1 bytes) and returns its length.
 * Returns 0 when the value has no usable host, including one with a byte
 * outside printable ASCII or a quote or backslash, so the result is safe in
 * JSON without escaping.
 */
size_t visits_referrer_host(const char *value, size_t len, char *out);

#endif
