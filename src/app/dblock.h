/*
 * The lock that lets one process at a time own a database: an exclusive
 * flock(2) on the file "<db>.lock" beside it.
 *
 * The daemon keeps it for its whole run, because two daemons on one
 * database would each serve links from their own cache that the other
 * deleted. shortd import holds it too, so that it never writes links behind
 * a running daemon's cache. Readers that keep no cache, such as shortd
 * export, need not take it. The kernel releases the lock when its process
 * exits, however it exits, so a crash leaves no stale lock behind.
 */
#ifndef SHORTD_APP_DBLOCK_H
#define SHORTD_APP_DBLOCK_H

#include <stddef.h>

/*
 * Takes the lock of database db without waiting, creating the lock file
 * when it is missing. On success stores the lock's descriptor in *fd (keep
 * it open to keep the lock) and returns 0. Returns -EWOULDBLOCK when another
 * process holds the lock, -ENAMETOOLONG when db is too long for a path, or
 * the negative errno of open(2) or flock(2).
 */
int dblock_acquire(const char *db, int *fd);

/* Writes the lock file's path for db into out (out_len bytes, truncated to fit). */
void dblock_path(const char *db, char *out, size_t out_len);

/* Releases the lock that dblock_acquire took. A negative fd is ignored. */
void dblock_release(int fd);

#endif
