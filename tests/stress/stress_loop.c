/*
 * Stress test of net/loop's loop_post, meant for ThreadSanitizer.
 *
 * Each round runs one loop on its own thread while four poster threads,
 * released together by a barrier, post TASKS_PER_POSTER tasks each. Every
 * task is embedded in a struct that its poster owns, and the loop counts it
 * when it runs. Posters pause now and then (sched_yield), so the loop often
 * drains the queue and posters often find it empty, which is the case in
 * which loop_post must wake the loop through its eventfd. The loop stops
 * itself once every task of the round ran.
 *
 * Checks: every task ran exactly once, each poster's tasks ran in posting
 * order, and the loop stopped by itself. A guard timer of GUARD_MS stops a
 * loop that would wait forever (a lost wakeup) and fails the round.
 *
 * Exits 0 on success; prints each failed check and exits 1 otherwise.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/container_of.h"
#include "net/loop.h"

#define ROUNDS           6
#define POSTERS          4
#define TASKS_PER_POSTER 100000
#define GUARD_MS         20000

struct round;

struct stress_task {
    struct loop_task task;
    struct round *round;
    unsigned poster;
    unsigned sequence; /* position in its poster's posting order */
    unsigned runs;     /* written by the loop thread only */
};

/* Written by the loop thread and read by the main thread after joining it. */
struct round {
    struct loop *loop;
    struct loop_timer guard;
    bool guard_fired;
    int run_result;
    unsigned long ran;
    unsigned long total;
    unsigned next_sequence[POSTERS];
    unsigned long out_of_order;
    char first_problem[160];
};

struct poster {
    pthread_t thread;
    struct loop *loop;
    pthread_barrier_t *start;
    unsigned index;
    struct stress_task *tasks;
};

static void run_task(struct loop *loop, struct loop_task *task)
{
    struct stress_task *stress = container_of(task, struct stress_task, task);
    struct round *round = stress->round;

    stress->runs++;
    if (stress->sequence != round->next_sequence[stress->poster]) {
        if (round->out_of_order++ == 0)
            (void)snprintf(round->first_problem, sizeof(round->first_problem),
                           "poster %u: task %u ran when task %u was expected", stress->poster,
                           stress->sequence, round->next_sequence[stress->poster]);
    }
    round->next_sequence[stress->poster] = stress->sequence + 1;

    if (++round->ran == round->total)
        loop_stop(loop);
}

static void guard_expired(struct loop *loop, struct loop_timer *timer)
{
    struct round *round = container_of(timer, struct round, guard);

    round->guard_fired = true;
    loop_stop(loop);
}

static void *run_loop(void *arg)
{
    struct round *round = arg;

    round->run_result = loop_run(round->loop);
    return NULL;
}

static void *post_tasks(void *arg)
{
    struct poster *poster = arg;
    unsigned i;

    (void)pthread_barrier_wait(poster->start);
    for (i = 0; i < TASKS_PER_POSTER; i++) {
        loop_post(poster->loop, &poster->tasks[i].task);

        /* Each poster pauses at its own rhythm, so the queue empties at varied moments. */
        if (i % (64 * (poster->index + 1)) == 0)
            sched_yield();
    }
    return NULL;
}

/* Runs one round and returns the number of failed checks. */
static int run_round(int number)
{
    struct round round = {.total = (unsigned long)POSTERS * TASKS_PER_POSTER};
    struct poster posters[POSTERS];
    pthread_barrier_t start;
    pthread_t loop_thread;
    unsigned long wrong_runs = 0;
    unsigned p, i;
    int failures = 0;

    if (loop_create(&round.loop) != 0) {
        printf("round %d: loop_create failed\n", number);
        return 1;
    }
    if (pthread_barrier_init(&start, NULL, POSTERS) != 0) {
        printf("round %d: pthread_barrier_init failed\n", number);
        loop_destroy(round.loop);
        return 1;
    }
    for (p = 0; p < POSTERS; p++) {
        posters[p] = (struct poster){.loop = round.loop, .start = &start, .index = p};
        posters[p].tasks = calloc(TASKS_PER_POSTER, sizeof(*posters[p].tasks));
        if (posters[p].tasks == NULL) {
            printf("round %d: out of memory\n", number);
            exit(1);
        }
        for (i = 0; i < TASKS_PER_POSTER; i++) {
            posters[p].tasks[i].task.callback = run_task;
            posters[p].tasks[i].round = &round;
            posters[p].tasks[i].poster = p;
            posters[p].tasks[i].sequence = i;
        }
    }

    /* The guard is started before the loop thread exists, so no lock is needed. */
    loop_timer_start(round.loop, &round.guard, GUARD_MS, 0, guard_expired);
    if (pthread_create(&loop_thread, NULL, run_loop, &round) != 0) {
        printf("round %d: pthread_create failed\n", number);
        exit(1);
    }
    for (p = 0; p < POSTERS; p++) {
        if (pthread_create(&posters[p].thread, NULL, post_tasks, &posters[p]) != 0) {
            printf("round %d: pthread_create failed\n", number);
            exit(1);
        }
    }
    for (p = 0; p < POSTERS; p++)
        (void)pthread_join(posters[p].thread, NULL);
    (void)pthread_join(loop_thread, NULL);

    if (round.run_result != 0) {
        printf("round %d: loop_run returned %d\n", number, round.run_result);
        failures++;
    }
    if (round.guard_fired) {
        printf("round %d: the loop did not stop by itself within %d ms (%lu of %lu tasks ran)\n",
               number, GUARD_MS, round.ran, round.total);
        failures++;
    }
    if (round.ran != round.total) {
        printf("round %d: %lu task runs, expected %lu\n", number, round.ran, round.total);
        failures++;
    }
    if (round.out_of_order != 0) {
        printf("round %d: %lu tasks ran out of posting order; first: %s\n", number,
               round.out_of_order, round.first_problem);
        failures++;
    }
    for (p = 0; p < POSTERS; p++) {
        for (i = 0; i < TASKS_PER_POSTER; i++) {
            if (posters[p].tasks[i].runs != 1 && wrong_runs++ == 0)
                printf("round %d: poster %u task %u ran %u times, expected once\n", number, p, i,
                       posters[p].tasks[i].runs);
        }
        free(posters[p].tasks);
    }
    if (wrong_runs != 0) {
        printf("round %d: %lu tasks did not run exactly once\n", number, wrong_runs);
        failures++;
    }

    loop_timer_stop(round.loop, &round.guard);
    (void)pthread_barrier_destroy(&start);
    loop_destroy(round.loop);
    return failures;
}

int main(void)
{
    int failures = 0;
    int number;

    for (number = 1; number <= ROUNDS; number++)
        failures += run_round(number);

    if (failures != 0) {
        printf("stress_loop: %d checks failed\n", failures);
        return 1;
    }
    printf("stress_loop: %d rounds of %d posters x %d tasks passed\n", ROUNDS, POSTERS,
           TASKS_PER_POSTER);
    return 0;
}
