/*
 * Stress test of core/workpool, meant for ThreadSanitizer.
 *
 * Each round starts a pool with a small queue, several submitter threads
 * that race to submit (retrying on -EAGAIN), and jobs that submit child jobs
 * themselves. The main thread starts the drain while the submitters are
 * still running, so they must see -ESHUTDOWN and stop. At the end every job
 * accepted must have run exactly once, none after workpool_drain returned,
 * and no submit that started after workpool_drain returned was accepted.
 *
 * Exits 0 on success; prints each failed check and exits 1 otherwise.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/workpool.h"

#define ROUNDS           8
#define SUBMITTERS       4
#define SLOTS_PER_PARENT 60000 /* numbered jobs each submitter may submit, at most */
#define DRAIN_AFTER      20000 /* accepted jobs in a round before the drain starts */
#define CHILD_EVERY      3     /* every third parent job submits a child */
#define WATCHDOG_SECONDS 120
#define PARENT_SLOTS     (SUBMITTERS * SLOTS_PER_PARENT)
#define TOTAL_SLOTS      (2 * PARENT_SLOTS) /* parent slot s has child slot s + PARENT_SLOTS */

struct round_state {
    struct workpool *pool;

    /* Per slot: 1 once workpool_submit returned 0 for it, and how often it ran. */
    atomic_uchar *accepted;
    atomic_uint *runs;

    /* Jobs without a slot, submitted once a submitter ran out of slots. */
    atomic_ulong spare_accepted;
    atomic_ulong spare_runs;

    atomic_ulong accepted_total; /* slot and spare jobs */
    atomic_bool drain_returned;

    atomic_ulong ran_after_drain;          /* jobs that started after drain returned */
    atomic_ulong accepted_after_drain;     /* submits begun after drain returned that got 0 */
    atomic_ulong submits_open_after_drain; /* same, but got anything but -ESHUTDOWN */
    atomic_ulong child_shutdown;           /* child submits that saw -ESHUTDOWN */
    atomic_ulong child_full;               /* child submits that saw -EAGAIN */
    atomic_ulong unexpected_submit_errors; /* anything but 0, -EAGAIN, -ESHUTDOWN */
};

struct submitter {
    struct round_state *round;
    unsigned index;
    unsigned slots; /* numbered jobs to submit before switching to spare jobs */
    bool saw_shutdown;
    bool shutdown_repeated; /* a second submit after -ESHUTDOWN also returned it */
};

static struct round_state round_state;

static void check_not_after_drain(struct round_state *round)
{
    if (atomic_load(&round->drain_returned))
        atomic_fetch_add(&round->ran_after_drain, 1);
}

static void spare_job(void *thread_state, void *arg)
{
    struct round_state *round = arg;

    check_not_after_drain(round);
    atomic_fetch_add(&round->spare_runs, 1);
}

static void record_submit_error(struct round_state *round, int rc)
{
    if (rc != 0 && rc != -EAGAIN && rc != -ESHUTDOWN)
        atomic_fetch_add(&round->unexpected_submit_errors, 1);
}

static void slot_job(void *thread_state, void *arg)
{
    size_t slot = (size_t)(uintptr_t)arg;
    struct round_state *round = &round_state;

    check_not_after_drain(round);
    atomic_fetch_add(&round->runs[slot], 1);

    /* Some parents submit one child, which a full queue or a drain drops. */
    if (slot < PARENT_SLOTS && slot % CHILD_EVERY == 0) {
        size_t child = slot + PARENT_SLOTS;
        bool drained_before = atomic_load(&round->drain_returned);
        int rc = workpool_submit(round->pool, slot_job, (void *)(uintptr_t)child);

        record_submit_error(round, rc);
        if (rc == 0) {
            atomic_store(&round->accepted[child], 1);
            atomic_fetch_add(&round->accepted_total, 1);
            if (drained_before)
                atomic_fetch_add(&round->accepted_after_drain, 1);
        } else if (rc == -EAGAIN) {
            atomic_fetch_add(&round->child_full, 1);
        } else if (rc == -ESHUTDOWN) {
            atomic_fetch_add(&round->child_shutdown, 1);
        }
    }
}

static void *submitter_main(void *opaque)
{
    struct submitter *submitter = opaque;
    struct round_state *round = submitter->round;
    size_t next_slot = (size_t)submitter->index * SLOTS_PER_PARENT;
    size_t end_slot = next_slot + submitter->slots;

    for (;;) {
        bool drained_before = atomic_load(&round->drain_returned);
        bool spare = next_slot == end_slot;
        int rc;

        if (spare)
            rc = workpool_submit(round->pool, spare_job, round);
        else
            rc = workpool_submit(round->pool, slot_job, (void *)(uintptr_t)next_slot);
        record_submit_error(round, rc);

        if (rc == -ESHUTDOWN) {
            submitter->saw_shutdown = true;
            rc = workpool_submit(round->pool, spare_job, round);
            submitter->shutdown_repeated = rc == -ESHUTDOWN;
            return NULL;
        }
        if (drained_before) {
            /* The drain has returned, so anything but -ESHUTDOWN is wrong. Stop here. */
            atomic_fetch_add(&round->submits_open_after_drain, 1);
            if (rc == 0)
                atomic_fetch_add(&round->accepted_after_drain, 1);
            return NULL;
        }
        if (rc == -EAGAIN) {
            sched_yield();
            continue;
        }
        if (rc != 0)
            return NULL;

        if (spare) {
            atomic_fetch_add(&round->spare_accepted, 1);
        } else {
            atomic_store(&round->accepted[next_slot], 1);
            next_slot++;
        }
        atomic_fetch_add(&round->accepted_total, 1);
    }
}

static int failures;

static void check(bool ok, unsigned round_number, const char *what, unsigned long actual,
                  unsigned long expected)
{
    if (ok)
        return;
    fprintf(stderr, "stress_workpool: round %u: %s: got %lu, expected %lu\n", round_number, what,
            actual, expected);
    failures++;
}

static void run_round(unsigned round_number, unsigned threads, unsigned capacity, unsigned slots)
{
    struct round_state *round = &round_state;
    struct workpool_config config = {.threads = threads, .queue_capacity = capacity};
    struct submitter submitters[SUBMITTERS];
    pthread_t submitter_threads[SUBMITTERS];
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 200000};
    unsigned long runs_at_drain_return = 0;
    unsigned long runs_at_end = 0;
    unsigned long mismatched_slots = 0;
    unsigned long first_mismatch = 0;
    int rc;

    for (size_t i = 0; i < TOTAL_SLOTS; i++) {
        atomic_store(&round->accepted[i], 0);
        atomic_store(&round->runs[i], 0);
    }
    atomic_store(&round->spare_accepted, 0);
    atomic_store(&round->spare_runs, 0);
    atomic_store(&round->accepted_total, 0);
    atomic_store(&round->drain_returned, false);
    atomic_store(&round->ran_after_drain, 0);
    atomic_store(&round->accepted_after_drain, 0);
    atomic_store(&round->submits_open_after_drain, 0);
    atomic_store(&round->child_shutdown, 0);
    atomic_store(&round->child_full, 0);
    atomic_store(&round->unexpected_submit_errors, 0);

    rc = workpool_create(&config, &round->pool);
    if (rc != 0) {
        fprintf(stderr, "stress_workpool: round %u: workpool_create failed: %s\n", round_number,
                strerror(-rc));
        exit(1);
    }

    for (unsigned i = 0; i < SUBMITTERS; i++) {
        submitters[i] = (struct submitter){.round = round, .index = i, .slots = slots};
        rc = pthread_create(&submitter_threads[i], NULL, submitter_main, &submitters[i]);
        if (rc != 0) {
            fprintf(stderr, "stress_workpool: pthread_create failed: %s\n", strerror(rc));
            exit(1);
        }
    }

    while (atomic_load(&round->accepted_total) < DRAIN_AFTER)
        (void)nanosleep(&pause, NULL);

    workpool_drain(round->pool);
    atomic_store(&round->drain_returned, true);

    for (size_t i = 0; i < TOTAL_SLOTS; i++)
        runs_at_drain_return += atomic_load(&round->runs[i]);
    runs_at_drain_return += atomic_load(&round->spare_runs);

    for (unsigned i = 0; i < SUBMITTERS; i++)
        (void)pthread_join(submitter_threads[i], NULL);

    for (size_t i = 0; i < TOTAL_SLOTS; i++) {
        unsigned accepted = atomic_load(&round->accepted[i]);
        unsigned runs = atomic_load(&round->runs[i]);

        runs_at_end += runs;
        if (runs != accepted) {
            if (mismatched_slots == 0)
                first_mismatch = i;
            mismatched_slots++;
        }
    }
    runs_at_end += atomic_load(&round->spare_runs);

    check(mismatched_slots == 0, round_number, "slots not run exactly once when accepted",
          mismatched_slots, 0);
    if (mismatched_slots != 0)
        fprintf(stderr, "stress_workpool: round %u: first mismatch at slot %lu\n", round_number,
                first_mismatch);
    check(atomic_load(&round->spare_runs) == atomic_load(&round->spare_accepted), round_number,
          "spare jobs run", atomic_load(&round->spare_runs), atomic_load(&round->spare_accepted));
    check(runs_at_end == atomic_load(&round->accepted_total), round_number, "jobs run in total",
          runs_at_end, atomic_load(&round->accepted_total));
    check(runs_at_end == runs_at_drain_return, round_number,
          "jobs run after drain returned (by count)", runs_at_end - runs_at_drain_return, 0);
    check(atomic_load(&round->ran_after_drain) == 0, round_number,
          "jobs run after drain returned (by flag)", atomic_load(&round->ran_after_drain), 0);
    check(atomic_load(&round->accepted_after_drain) == 0, round_number,
          "jobs accepted after drain returned", atomic_load(&round->accepted_after_drain), 0);
    check(atomic_load(&round->submits_open_after_drain) == 0, round_number,
          "submits after drain returned that did not fail with -ESHUTDOWN",
          atomic_load(&round->submits_open_after_drain), 0);
    check(atomic_load(&round->unexpected_submit_errors) == 0, round_number,
          "unexpected submit errors", atomic_load(&round->unexpected_submit_errors), 0);
    check(workpool_queue_depth(round->pool) == 0, round_number, "queue depth after drain",
          workpool_queue_depth(round->pool), 0);
    for (unsigned i = 0; i < SUBMITTERS; i++) {
        check(submitters[i].saw_shutdown, round_number, "submitter saw -ESHUTDOWN",
              submitters[i].saw_shutdown, 1);
        check(submitters[i].shutdown_repeated, round_number, "second submit saw -ESHUTDOWN",
              submitters[i].shutdown_repeated, 1);
    }

    printf("round %u: %u workers, queue %u: %lu jobs run, %lu spare, "
           "%lu children dropped on a full queue, %lu on shutdown\n",
           round_number, threads, capacity, runs_at_end, atomic_load(&round->spare_accepted),
           atomic_load(&round->child_full), atomic_load(&round->child_shutdown));

    workpool_destroy(round->pool);
    round->pool = NULL;
}

int main(void)
{
    static const unsigned threads[ROUNDS] = {1, 2, 3, 2, 4, 3, 1, 2};
    static const unsigned capacities[ROUNDS] = {1, 2, 4, 8, 3, 16, 4, 2};

    /* The last two rounds run out of numbered slots before the drain, to exercise spare jobs. */
    static const unsigned slots[ROUNDS] = {
        SLOTS_PER_PARENT,
        SLOTS_PER_PARENT,
        SLOTS_PER_PARENT,
        SLOTS_PER_PARENT,
        SLOTS_PER_PARENT,
        SLOTS_PER_PARENT,
        1000,
        3000,
    };

    /* SIGALRM's default action ends the process, so a deadlock cannot hang the test run. */
    (void)alarm(WATCHDOG_SECONDS);

    round_state.accepted = calloc(TOTAL_SLOTS, sizeof(*round_state.accepted));
    round_state.runs = calloc(TOTAL_SLOTS, sizeof(*round_state.runs));
    if (round_state.accepted == NULL || round_state.runs == NULL) {
        fprintf(stderr, "stress_workpool: out of memory\n");
        return 1;
    }

    for (unsigned i = 0; i < ROUNDS; i++)
        run_round(i, threads[i], capacities[i], slots[i]);

    free(round_state.accepted);
    free(round_state.runs);
    if (failures != 0) {
        fprintf(stderr, "stress_workpool: %d checks failed\n", failures);
        return 1;
    }
    return 0;
}
