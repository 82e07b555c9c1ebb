/* The database lock file, see dblock.h. */
#include "app/dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

void dblock_path(const char *db, char *out, size_t out_len)
{
    (void)snprintf(out, out_len, "%s.lock", db);
}

int dblock_acquire(const char *db, int *fd)
{
    char path[PATH_MAX];
    int lock_fd;
    int err;

    *fd = -1;
    if (snprintf(path, sizeof(path), "%s.lock", db) >= (int)sizeof(path))
        return -ENAMETOOLONG;

    lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0)
        return -errno;

    if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
        err = -errno;
        (void)close(lock_fd); /* nothing was written through it */
        return err;
    }

    *fd = lock_fd;
    return 0;
}

void dblock_release(int fd)
{
    /* Closing the only descriptor of the open file releases its flock. */
    if (fd >= 0)
        (void)close(fd);
}
