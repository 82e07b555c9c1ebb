/*
 * Event loop on epoll, see loop.h.
 *
 * One iteration: wait for events (bounded by the earliest timer), run the
 * watch callbacks of every event returned, run posted tasks, run due timers.
 * Watch callbacks run before tasks and timers, so a task or timer may close
 * and free a watch without the current event batch still pointing at it.
 *
 * Posted tasks use a lock-free stack: loop_post pushes with a CAS, the loop
 * takes the whole stack with one exchange and reverses it to run tasks in
 * the order they were posted. A poster that finds the stack empty writes the
 * eventfd; the loop reads the eventfd before it takes the stack, so a task
 * pushed after the take always finds an empty stack and wakes the loop.
 *
 * Timers live in a singly linked list sorted by deadline. A loop has a few
 * timers (connection sweep, date update), so insertion by walking the list
 * costs less than a heap would.
 */
#include "net/loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define EVENT_BATCH 256

struct loop {
    int epoll_fd;
    struct loop_watch wake; /* eventfd written by loop_post */
    bool stopping;
    uint64_t now;
    int64_t wall_seconds;
    int64_t wall_ms;

    struct loop_timer *timers; /* sorted by deadline, earliest first */

    /* Stack of posted tasks, pushed by any thread, taken by the loop. */
    _Atomic(struct loop_task *) posted;
};

uint64_t loop_clock_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void update_time(struct loop *loop)
{
    struct timespec ts;

    loop->now = loop_clock_ms();
    (void)clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    loop->wall_seconds = ts.tv_sec;
    loop->wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_wake(struct loop *loop, struct loop_watch *watch, uint32_t events)
{
    uint64_t count;

    /* Only resets the counter; the tasks are run after the event batch. */
    (void)read(watch->fd, &count, sizeof(count));
}

int loop_create(struct loop **out)
{
    struct loop *loop;
    int err;

    loop = calloc(1, sizeof(*loop));
    if (loop == NULL)
        return -ENOMEM;

    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epoll_fd < 0) {
        err = -errno;
        goto fail;
    }

    loop->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake.fd < 0) {
        err = -errno;
        goto fail;
    }
    loop->wake.callback = on_wake;

    err = loop_watch_add(loop, &loop->wake, EPOLLIN);
    if (err < 0)
        goto fail;

    atomic_init(&loop->posted, NULL);
    update_time(loop);
    *out = loop;
    return 0;

fail:
    if (loop->epoll_fd >= 0)
        (void)close(loop->epoll_fd);
    if (loop->wake.fd > 0)
        (void)close(loop->wake.fd);
    free(loop);
    return err;
}

void loop_destroy(struct loop *loop)
{
    if (loop == NULL)
        return;

    (void)close(loop->wake.fd);
    (void)close(loop->epoll_fd);
    free(loop);
}

int loop_watch_add(struct loop *loop, struct loop_watch *watch, uint32_t events)
{
    struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = watch};

    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, watch->fd, &ev) < 0)
        return -errno;
    return 0;
}

int loop_watch_remove(struct loop *loop, struct loop_watch *watch)
{
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, watch->fd, NULL) < 0)
        return -errno;
    return 0;
}

void loop_timer_stop(struct loop *loop, struct loop_timer *timer)
{
    struct loop_timer **link;

    if (!timer->active)
        return;

    for (link = &loop->timers; *link != NULL; link = &(*link)->next) {
        if (*link == timer) {
            *link = timer->next;
            break;
        }
    }
    timer->active = false;
}

static void timer_insert(struct loop *loop, struct loop_timer *timer)
{
    struct loop_timer **link = &loop->timers;

    while (*link != NULL && (*link)->deadline <= timer->deadline)
        link = &(*link)->next;
    timer->next = *link;
    *link = timer;
    timer->active = true;
}

void loop_timer_start(struct loop *loop, struct loop_timer *timer, uint64_t after, uint64_t period,
                      loop_timer_fn callback)
{
    loop_timer_stop(loop, timer);
    timer->callback = callback;
    timer->deadline = loop->now + after;
    timer->period = period;
    timer_insert(loop, timer);
}

void loop_post(struct loop *loop, struct loop_task *task)
{
    struct loop_task *head = atomic_load_explicit(&loop->posted, memory_order_relaxed);
    uint64_t one = 1;

    /*
     * Release on success publishes the task's fields to the loop, which
     * takes the stack with acquire.
     */
    do {
        task->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&loop->posted, &head, task,
                                                    memory_order_release, memory_order_relaxed));

    if (head == NULL)
        (void)write(loop->wake.fd, &one, sizeof(one));
}

static void run_posted(struct loop *loop)
{
    struct loop_task *task, *next, *ordered = NULL;

    task = atomic_exchange_explicit(&loop->posted, NULL, memory_order_acquire);

    /* The stack holds the newest first; reverse it to keep posting order. */
    while (task != NULL) {
        next = task->next;
        task->next = ordered;
        ordered = task;
        task = next;
    }

    while (ordered != NULL) {
        next = ordered->next;
        ordered->callback(loop, ordered);
        ordered = next;
    }
}

static void run_timers(struct loop *loop)
{
    struct loop_timer *timer;

    while (loop->timers != NULL && loop->timers->deadline <= loop->now) {
        timer = loop->timers;
        loop->timers = timer->next;
        timer->active = false;

        if (timer->period > 0) {
            timer->deadline = loop->now + timer->period;
            timer_insert(loop, timer);
        }
        timer->callback(loop, timer);
    }
}

static int next_timeout(const struct loop *loop)
{
    uint64_t wait;

    if (atomic_load_explicit(&loop->posted, memory_order_relaxed) != NULL)
        return 0;
    if (loop->timers == NULL)
        return -1;
    if (loop->timers->deadline <= loop->now)
        return 0;

    wait = loop->timers->deadline - loop->now;
    return wait > 60000 ? 60000 : (int)wait;
}

int loop_run(struct loop *loop)
{
    struct epoll_event events[EVENT_BATCH];
    struct loop_watch *watch;
    int count, i;

    loop->stopping = false;
    while (!loop->stopping) {
        count = epoll_wait(loop->epoll_fd, events, EVENT_BATCH, next_timeout(loop));
        if (count < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        update_time(loop);

        for (i = 0; i < count; i++) {
            watch = events[i].data.ptr;
            watch->callback(loop, watch, events[i].events);
        }

        run_posted(loop);
        run_timers(loop);
    }
    return 0;
}

void loop_run_posted(struct loop *loop)
{
    run_posted(loop);
}

void loop_stop(struct loop *loop)
{
    loop->stopping = true;
}

uint64_t loop_now(const struct loop *loop)
{
    return loop->now;
}

int64_t loop_wall_seconds(const struct loop *loop)
{
    return loop->wall_seconds;
}

int64_t loop_wall_ms(const struct loop *loop)
{
    return loop->wall_ms;
}
