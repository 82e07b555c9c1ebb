/*
 * Tests of net/loop: edge-triggered watches on a socketpair, timers in
 * deadline order, stopping and restarting timers, tasks posted from the
 * loop's thread and from other threads, and loop_stop.
 *
 * Every loop_run in these tests ends through loop_stop. A guard timer of
 * GUARD_MS also stops the loop, so a loop that would never stop fails the
 * test instead of hanging it. The guard is far longer than any test needs.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/container_of.h"
#include "net/loop.h"

#define GUARD_MS 10000

struct fixture {
    struct loop *loop;
    struct loop_timer guard;
    bool guard_fired;
    int fds[2]; /* a nonblocking socketpair, -1 when not open */
};

static int setup(void **state)
{
    struct fixture *fixture = calloc(1, sizeof(*fixture));

    if (fixture == NULL)
        return -1;
    if (loop_create(&fixture->loop) != 0) {
        free(fixture);
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fixture->fds) != 0) {
        loop_destroy(fixture->loop);
        free(fixture);
        return -1;
    }
    *state = fixture;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fixture = *state;

    if (fixture->fds[0] >= 0)
        (void)close(fixture->fds[0]);
    if (fixture->fds[1] >= 0)
        (void)close(fixture->fds[1]);
    loop_destroy(fixture->loop);
    free(fixture);
    return 0;
}

static void guard_expired(struct loop *loop, struct loop_timer *timer)
{
    struct fixture *fixture = container_of(timer, struct fixture, guard);

    fixture->guard_fired = true;
    loop_stop(loop);
}

/* Runs the loop until something calls loop_stop, and fails when only the guard stopped it. */
static void run_loop(struct fixture *fixture)
{
    fixture->guard_fired = false;
    loop_timer_start(fixture->loop, &fixture->guard, GUARD_MS, 0, guard_expired);
    assert_int_equal(loop_run(fixture->loop), 0);
    loop_timer_stop(fixture->loop, &fixture->guard);
    if (fixture->guard_fired)
        fail_msg("the loop did not stop within %d ms", GUARD_MS);
}

static void stop_loop(struct loop *loop, struct loop_timer *timer)
{
    loop_stop(loop);
}

/* Runs the loop for about ms milliseconds, ended by a one-shot timer. */
static void run_loop_for(struct fixture *fixture, uint64_t ms)
{
    struct loop_timer stopper = {0};
    bool stopped_early;

    loop_timer_start(fixture->loop, &stopper, ms, 0, stop_loop);
    run_loop(fixture);

    /* A stopper still pending means that something else stopped the loop. */
    stopped_early = stopper.active;
    loop_timer_stop(fixture->loop, &stopper);
    assert_false(stopped_early);
}

struct counted_watch {
    struct loop_watch watch;
    int calls;
    uint32_t events; /* of the last call */
};

static void count_events(struct loop *loop, struct loop_watch *watch, uint32_t events)
{
    struct counted_watch *counted = container_of(watch, struct counted_watch, watch);

    counted->calls++;
    counted->events = events;
}

static void send_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void watch_reports_readable_once_per_data(void **state)
{
    struct fixture *fixture = *state;
    struct counted_watch reader = {.watch = {.fd = fixture->fds[0], .callback = count_events}};

    assert_int_equal(loop_watch_add(fixture->loop, &reader.watch, EPOLLIN), 0);

    run_loop_for(fixture, 20);
    assert_int_equal(reader.calls, 0);

    /* The callback leaves the byte unread, so only a new byte makes a new edge. */
    send_byte(fixture->fds[1]);
    run_loop_for(fixture, 20);
    assert_int_equal(reader.calls, 1);
    assert_true(reader.events & EPOLLIN);

    run_loop_for(fixture, 20);
    assert_int_equal(reader.calls, 1);

    send_byte(fixture->fds[1]);
    run_loop_for(fixture, 20);
    assert_int_equal(reader.calls, 2);
    assert_true(reader.events & EPOLLIN);

    assert_int_equal(loop_watch_remove(fixture->loop, &reader.watch), 0);
}

static void watch_reports_writable_and_hangup(void **state)
{
    struct fixture *fixture = *state;
    struct counted_watch writer = {.watch = {.fd = fixture->fds[0], .callback = count_events}};

    assert_int_equal(loop_watch_add(fixture->loop, &writer.watch, EPOLLOUT | EPOLLRDHUP), 0);
    run_loop_for(fixture, 20);
    assert_int_equal(writer.calls, 1);
    assert_true(writer.events & EPOLLOUT);
    assert_false(writer.events & EPOLLRDHUP);

    /* The peer closing is a new edge that carries EPOLLRDHUP. */
    assert_int_equal(close(fixture->fds[1]), 0);
    fixture->fds[1] = -1;
    run_loop_for(fixture, 20);
    assert_int_equal(writer.calls, 2);
    assert_true(writer.events & EPOLLRDHUP);

    assert_int_equal(loop_watch_remove(fixture->loop, &writer.watch), 0);
}

static void watch_remove_stops_reports(void **state)
{
    struct fixture *fixture = *state;
    struct counted_watch reader = {.watch = {.fd = fixture->fds[0], .callback = count_events}};

    assert_int_equal(loop_watch_add(fixture->loop, &reader.watch, EPOLLIN), 0);
    assert_int_equal(loop_watch_remove(fixture->loop, &reader.watch), 0);

    send_byte(fixture->fds[1]);
    run_loop_for(fixture, 20);
    assert_int_equal(reader.calls, 0);

    /* The same watch can be added again, and then reports the pending byte. */
    assert_int_equal(loop_watch_add(fixture->loop, &reader.watch, EPOLLIN), 0);
    run_loop_for(fixture, 20);
    assert_int_equal(reader.calls, 1);
    assert_int_equal(loop_watch_remove(fixture->loop, &reader.watch), 0);
}

static void watch_errors_come_from_epoll(void **state)
{
    struct fixture *fixture = *state;
    struct counted_watch reader = {.watch = {.fd = fixture->fds[0], .callback = count_events}};
    struct counted_watch closed = {.watch = {.fd = -1, .callback = count_events}};

    assert_int_equal(loop_watch_remove(fixture->loop, &reader.watch), -ENOENT);
    assert_int_equal(loop_watch_add(fixture->loop, &reader.watch, EPOLLIN), 0);
    assert_int_equal(loop_watch_add(fixture->loop, &reader.watch, EPOLLIN), -EEXIST);
    assert_int_equal(loop_watch_add(fixture->loop, &closed.watch, EPOLLIN), -EBADF);
    assert_int_equal(loop_watch_remove(fixture->loop, &reader.watch), 0);
    assert_int_equal(loop_watch_remove(fixture->loop, &reader.watch), -ENOENT);
}

enum { RECORD_MAX = 64 };

/* Ids of timers and tasks in the order they ran. */
struct recorder {
    int ids[RECORD_MAX];
    int count;
    int stop_at; /* loop_stop once this many have run; 0 for never */
};

static void record(struct recorder *recorder, struct loop *loop, int id)
{
    assert_true(recorder->count < RECORD_MAX);
    recorder->ids[recorder->count++] = id;
    if (recorder->count == recorder->stop_at)
        loop_stop(loop);
}

static void assert_recorded(const struct recorder *recorder, const int *expected, int count)
{
    int i;

    assert_int_equal(recorder->count, count);
    for (i = 0; i < count; i++) {
        if (recorder->ids[i] != expected[i])
            fail_msg("entry %d: ran id %d, expected id %d", i, recorder->ids[i], expected[i]);
    }
}

struct recorded_timer {
    struct loop_timer timer;
    int id;
    struct recorder *recorder;
    uint64_t started_at; /* loop_now() when it was started */
    uint64_t after;
    bool early; /* fired before loop_now() reached started_at + after */
};

static void record_timer(struct loop *loop, struct loop_timer *timer)
{
    struct recorded_timer *recorded = container_of(timer, struct recorded_timer, timer);

    if (loop_now(loop) < recorded->started_at + recorded->after)
        recorded->early = true;
    record(recorded->recorder, loop, recorded->id);
}

static void start_recorded(struct fixture *fixture, struct recorded_timer *recorded, int id,
                           struct recorder *recorder, uint64_t after, uint64_t period)
{
    recorded->id = id;
    recorded->recorder = recorder;
    recorded->started_at = loop_now(fixture->loop);
    recorded->after = after;
    loop_timer_start(fixture->loop, &recorded->timer, after, period, record_timer);
    assert_true(recorded->timer.active);
}

static void timers_fire_in_deadline_order(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {.stop_at = 5};
    struct recorded_timer timers[5];
    const int expected[] = {1, 2, 3, 4, 5};
    int i;

    memset(timers, 0, sizeof(timers));
    start_recorded(fixture, &timers[0], 5, &recorder, 40, 0);
    start_recorded(fixture, &timers[1], 2, &recorder, 10, 0);
    start_recorded(fixture, &timers[2], 4, &recorder, 30, 0);
    start_recorded(fixture, &timers[3], 1, &recorder, 1, 0);
    start_recorded(fixture, &timers[4], 3, &recorder, 10, 0); /* same deadline, started later */

    run_loop(fixture);
    assert_recorded(&recorder, expected, 5);
    for (i = 0; i < 5; i++) {
        assert_false(timers[i].timer.active);
        if (timers[i].early)
            fail_msg("timer %d fired before its deadline", timers[i].id);
    }
}

static void one_shot_timer_fires_once(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {0};
    struct recorded_timer timer = {0};
    const int expected[] = {7};

    start_recorded(fixture, &timer, 7, &recorder, 1, 0);
    run_loop_for(fixture, 40);
    assert_recorded(&recorder, expected, 1);
    assert_false(timer.timer.active);
    assert_false(timer.early);
}

struct periodic {
    struct loop_timer timer;
    int calls;
    int stop_at;
    uint64_t last_now;
    bool too_soon; /* fired less than a period after the previous firing */
};

static void tick(struct loop *loop, struct loop_timer *timer)
{
    struct periodic *periodic = container_of(timer, struct periodic, timer);

    if (periodic->calls > 0 && loop_now(loop) < periodic->last_now + timer->period)
        periodic->too_soon = true;
    periodic->last_now = loop_now(loop);
    periodic->calls++;

    /* A periodic timer is active again during its own callback. */
    assert_true(timer->active);
    if (periodic->calls == periodic->stop_at) {
        loop_timer_stop(loop, timer);
        loop_stop(loop);
    }
}

static void periodic_timer_repeats_until_stopped(void **state)
{
    struct fixture *fixture = *state;
    struct periodic periodic = {.stop_at = 5};

    loop_timer_start(fixture->loop, &periodic.timer, 2, 3, tick);
    run_loop(fixture);
    assert_int_equal(periodic.calls, 5);
    assert_false(periodic.timer.active);
    assert_false(periodic.too_soon);

    run_loop_for(fixture, 30);
    assert_int_equal(periodic.calls, 5);
}

static void timer_stop_prevents_firing(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {0};
    struct recorded_timer stopped = {0}, kept = {0};
    const int expected[] = {2};

    start_recorded(fixture, &stopped, 1, &recorder, 5, 0);
    start_recorded(fixture, &kept, 2, &recorder, 10, 0);
    loop_timer_stop(fixture->loop, &stopped.timer);
    assert_false(stopped.timer.active);
    loop_timer_stop(fixture->loop, &stopped.timer); /* harmless when inactive */

    run_loop_for(fixture, 40);
    assert_recorded(&recorder, expected, 1);
}

struct stopper {
    struct loop_timer timer;
    struct loop_timer *victim;
};

static void stop_victim(struct loop *loop, struct loop_timer *timer)
{
    struct stopper *stopper = container_of(timer, struct stopper, timer);

    loop_timer_stop(loop, stopper->victim);
}

static void timer_stopped_by_another_timer(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {0};
    struct recorded_timer victim = {0}, witness = {0};
    struct periodic periodic = {.stop_at = 1000};
    struct stopper stopper = {.victim = &victim.timer};
    struct stopper periodic_stopper = {.victim = &periodic.timer};
    const int expected[] = {2};

    start_recorded(fixture, &victim, 1, &recorder, 30, 0);
    start_recorded(fixture, &witness, 2, &recorder, 40, 0);
    loop_timer_start(fixture->loop, &periodic.timer, 1, 1, tick);
    loop_timer_start(fixture->loop, &stopper.timer, 5, 0, stop_victim);
    loop_timer_start(fixture->loop, &periodic_stopper.timer, 10, 0, stop_victim);

    run_loop_for(fixture, 60);
    assert_recorded(&recorder, expected, 1);
    assert_false(victim.timer.active);
    assert_false(periodic.timer.active);
    assert_true(periodic.calls >= 1);
}

static void timer_restart_moves_deadline(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {0};
    struct recorded_timer moved = {0}, middle = {0};
    const int expected[] = {2, 1};

    start_recorded(fixture, &moved, 1, &recorder, 5, 0);
    start_recorded(fixture, &middle, 2, &recorder, 15, 0);
    start_recorded(fixture, &moved, 1, &recorder, 30, 0);

    /* The restart moved the timer instead of adding it twice, so it fires once, after the middle
     * one. */
    run_loop_for(fixture, 60);
    assert_recorded(&recorder, expected, 2);
    assert_false(moved.early);
}

struct rearming {
    struct loop_timer timer;
    int calls;
};

static void rearm(struct loop *loop, struct loop_timer *timer)
{
    struct rearming *rearming = container_of(timer, struct rearming, timer);

    /* A one-shot timer is inactive in its callback and may start itself again. */
    assert_false(timer->active);
    if (++rearming->calls < 3)
        loop_timer_start(loop, timer, 2, 0, rearm);
    else
        loop_stop(loop);
}

static void timer_restarts_from_its_callback(void **state)
{
    struct fixture *fixture = *state;
    struct rearming rearming = {0};

    loop_timer_start(fixture->loop, &rearming.timer, 1, 0, rearm);
    run_loop(fixture);
    assert_int_equal(rearming.calls, 3);
    assert_false(rearming.timer.active);
}

struct recorded_task {
    struct loop_task task;
    int id;
    struct recorder *recorder;
    struct recorded_task *post_next; /* posted from this task's callback, or NULL */
};

static void record_task(struct loop *loop, struct loop_task *task)
{
    struct recorded_task *recorded = container_of(task, struct recorded_task, task);

    if (recorded->post_next != NULL)
        loop_post(loop, &recorded->post_next->task);
    record(recorded->recorder, loop, recorded->id);
}

static void init_task(struct recorded_task *task, int id, struct recorder *recorder)
{
    memset(task, 0, sizeof(*task));
    task->task.callback = record_task;
    task->id = id;
    task->recorder = recorder;
}

static void posted_tasks_run_in_order(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {.stop_at = 4};
    struct recorded_task tasks[4];
    const int expected[] = {0, 1, 2, 3};
    int i;

    for (i = 0; i < 4; i++) {
        init_task(&tasks[i], i, &recorder);
        loop_post(fixture->loop, &tasks[i].task);
    }
    run_loop(fixture);
    assert_recorded(&recorder, expected, 4);
}

struct posting_timer {
    struct loop_timer timer;
    struct recorded_task *tasks;
    int count;
};

static void post_from_timer(struct loop *loop, struct loop_timer *timer)
{
    struct posting_timer *posting = container_of(timer, struct posting_timer, timer);
    int i;

    for (i = 0; i < posting->count; i++)
        loop_post(loop, &posting->tasks[i].task);
}

static void post_from_loop_thread_runs_in_order(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {.stop_at = 5};
    struct recorded_task tasks[5];
    struct posting_timer posting = {.tasks = tasks, .count = 3};
    const int expected[] = {0, 1, 2, 3, 4};
    int i;

    /* A timer posts tasks 0 to 2, then task 2 posts task 3 and task 3 posts task 4. */
    for (i = 0; i < 5; i++)
        init_task(&tasks[i], i, &recorder);
    tasks[2].post_next = &tasks[3];
    tasks[3].post_next = &tasks[4];
    loop_timer_start(fixture->loop, &posting.timer, 1, 0, post_from_timer);

    run_loop(fixture);
    assert_recorded(&recorder, expected, 5);
}

enum { THREAD_TASKS = 2000 };

struct poster {
    struct loop *loop;
    struct counting_task *tasks;
    int count;
};

struct counting_task {
    struct loop_task task;
    int index;
    int runs;
    struct posting_state *shared;
};

/* Loop thread only. */
struct posting_state {
    int ran;
    int total;
    int next_index[2]; /* per poster, the index expected next */
    int out_of_order;
};

static void count_task(struct loop *loop, struct loop_task *task)
{
    struct counting_task *counting = container_of(task, struct counting_task, task);
    struct posting_state *shared = counting->shared;
    int poster = counting->index / THREAD_TASKS;

    counting->runs++;
    if (counting->index != shared->next_index[poster])
        shared->out_of_order++;
    shared->next_index[poster] = counting->index + 1;
    if (++shared->ran == shared->total)
        loop_stop(loop);
}

static void *post_tasks(void *arg)
{
    struct poster *poster = arg;
    int i;

    for (i = 0; i < poster->count; i++)
        loop_post(poster->loop, &poster->tasks[i].task);
    return NULL;
}

static void post_from_other_threads_keeps_order(void **state)
{
    struct fixture *fixture = *state;
    struct posting_state shared = {.total = 2 * THREAD_TASKS, .next_index = {0, THREAD_TASKS}};
    struct counting_task *tasks = calloc(2 * THREAD_TASKS, sizeof(*tasks));
    struct poster posters[2];
    pthread_t threads[2];
    int i;

    assert_non_null(tasks);
    for (i = 0; i < 2 * THREAD_TASKS; i++) {
        tasks[i].task.callback = count_task;
        tasks[i].index = i;
        tasks[i].shared = &shared;
    }
    for (i = 0; i < 2; i++) {
        posters[i] = (struct poster){
            .loop = fixture->loop, .tasks = tasks + i * THREAD_TASKS, .count = THREAD_TASKS};
        assert_int_equal(pthread_create(&threads[i], NULL, post_tasks, &posters[i]), 0);
    }

    run_loop(fixture);
    for (i = 0; i < 2; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);

    assert_int_equal(shared.ran, 2 * THREAD_TASKS);
    assert_int_equal(shared.out_of_order, 0);
    for (i = 0; i < 2 * THREAD_TASKS; i++) {
        if (tasks[i].runs != 1)
            fail_msg("task %d ran %d times, expected once", i, tasks[i].runs);
    }
    free(tasks);
}

static void stop_from_task_keeps_later_tasks(void **state)
{
    struct fixture *fixture = *state;
    struct recorder recorder = {.stop_at = 1};
    struct recorded_task first, second;
    const int first_only[] = {1};
    const int both[] = {1, 2};

    /* The first task stops the loop and posts the second, which waits for the next run. */
    init_task(&first, 1, &recorder);
    init_task(&second, 2, &recorder);
    first.post_next = &second;
    loop_post(fixture->loop, &first.task);

    run_loop(fixture);
    assert_recorded(&recorder, first_only, 1);

    recorder.stop_at = 2;
    run_loop(fixture);
    assert_recorded(&recorder, both, 2);
}

static void clock_values_advance(void **state)
{
    struct fixture *fixture = *state;
    struct recorded_timer timer = {0};
    struct recorder recorder = {0};
    uint64_t before = loop_now(fixture->loop);

    assert_true(loop_clock_ms() >= before);
    assert_true(loop_wall_seconds(fixture->loop) > 1700000000);

    start_recorded(fixture, &timer, 1, &recorder, 20, 0);
    run_loop_for(fixture, 30);
    assert_false(timer.early);
    assert_true(loop_now(fixture->loop) >= before + 20);
    assert_true(loop_clock_ms() >= loop_now(fixture->loop));
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(watch_reports_readable_once_per_data), TEST(watch_reports_writable_and_hangup),
        TEST(watch_remove_stops_reports),           TEST(watch_errors_come_from_epoll),
        TEST(timers_fire_in_deadline_order),        TEST(one_shot_timer_fires_once),
        TEST(periodic_timer_repeats_until_stopped), TEST(timer_stop_prevents_firing),
        TEST(timer_stopped_by_another_timer),       TEST(timer_restart_moves_deadline),
        TEST(timer_restarts_from_its_callback),     TEST(posted_tasks_run_in_order),
        TEST(post_from_loop_thread_runs_in_order),  TEST(post_from_other_threads_keeps_order),
        TEST(stop_from_task_keeps_later_tasks),     TEST(clock_values_advance),
    };
#undef TEST

    return cmocka_run_group_tests(tests, NULL, NULL);
}
