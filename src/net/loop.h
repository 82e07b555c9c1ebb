/*
 * Event loop: one epoll instance, run by one thread.
 *
 * A loop watches file descriptors (edge-triggered), runs a handful of timers
 * and runs tasks posted from other threads. Everything except loop_post and
 * loop_wake runs on the loop's own thread, so the structures a loop owns
 * need no locks.
 *
 * Edge-triggered readiness: a watch is notified once when its fd becomes
 * readable or writable, and must read or write until the kernel has no more
 * (EAGAIN, or a read shorter than the buffer) before it is told again.
 *
 * Time: loop_now() is a monotonic clock in milliseconds, read once per
 * iteration, so code on the loop compares cheap cached values.
 */
#ifndef SHORTD_NET_LOOP_H
#define SHORTD_NET_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;
struct loop_task;

typedef void (*loop_watch_fn)(struct loop *loop, struct loop_watch *watch, uint32_t events);
typedef void (*loop_timer_fn)(struct loop *loop, struct loop_timer *timer);
typedef void (*loop_task_fn)(struct loop *loop, struct loop_task *task);

/* A file descriptor being watched; embed it in the owner's struct. */
struct loop_watch {
    int fd;
    loop_watch_fn callback; /* called with the EPOLL* event bits */
};

/* A timer; embed it in the owner's struct. Fields are the loop's. */
struct loop_timer {
    loop_timer_fn callback;
    uint64_t deadline;  /* loop_now() value at which it fires */
    uint64_t period;    /* ms between firings, 0 for a one-shot timer */
    struct loop_timer *next;
    bool active;
};

/* Work posted from another thread; embed it in the owner's struct. */
struct loop_task {
    loop_task_fn callback;
    struct loop_task *next; /* the loop's */
};

/* Creates a loop. Returns 0 or a negative errno. */
int loop_create(struct loop **loop);

/*
 * Frees the loop. Tasks still queued are not run. Watches are not closed:
 * their owners close them.
 */
void loop_destroy(struct loop *loop);

/*
 * Starts watching watch->fd for events (EPOLLIN, EPOLLOUT, EPOLLRDHUP; the
 * loop adds EPOLLET). Returns 0 or a negative errno from epoll_ctl.
 */
int loop_watch_add(struct loop *loop, struct loop_watch *watch, uint32_t events);

/* Stops watching; call before closing the fd. Returns 0 or a negative errno. */
int loop_watch_remove(struct loop *loop, struct loop_watch *watch);

/*
 * Starts timer to fire after `after` ms and then every `period` ms (0 for
 * once). Restarting an active timer moves it.
 */
void loop_timer_start(struct loop *loop, struct loop_timer *timer, uint64_t after, uint64_t period,
                      loop_timer_fn callback);

/* Stops timer; harmless when it is not active. */
void loop_timer_stop(struct loop *loop, struct loop_timer *timer);

/*
 * Queues task to run on the loop's thread and wakes the loop. Safe from any
 * thread, including the loop's own. The caller keeps ownership of task; it
 * must stay valid until its callback runs. Never fails: the queue is an
 * intrusive list, so its length is bounded by the tasks callers own.
 */
void loop_post(struct loop *loop, struct loop_task *task);

/*
 * Runs the loop on the calling thread until loop_stop. Returns 0, or a
 * negative errno when epoll_wait fails for a reason other than EINTR.
 */
int loop_run(struct loop *loop);

/* Makes loop_run return after the current iteration. Loop thread only. */
void loop_stop(struct loop *loop);

/*
 * Runs the tasks posted since the last iteration, so that a stopped loop
 * can let their owners free them. Loop thread only, after loop_run.
 */
void loop_run_posted(struct loop *loop);

/* Returns the cached monotonic time in ms, updated at each iteration. */
uint64_t loop_now(const struct loop *loop);

/* Returns the cached wall-clock time in seconds since the Unix epoch. */
int64_t loop_wall_seconds(const struct loop *loop);

/* Returns the cached wall-clock time in ms since the Unix epoch. */
int64_t loop_wall_ms(const struct loop *loop);

/* Reads the monotonic clock in ms; for code that runs outside any loop. */
uint64_t loop_clock_ms(void);

#endif
