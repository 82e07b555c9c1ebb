/*
 * Visit limits shared by the redirect (redirect.c) and the store reads that
 * create their counters (lookup.c).
 */
#ifndef SHORTD_APP_REDIRECT_H
#define SHORTD_APP_REDIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;

/* The counter of a link with max_visits, value of app->limits. */
struct visit_limit {
    int64_t used; /* visits counted: the store's count at load plus those since */
    int64_t max;
};

enum limit_outcome {
    LIMIT_ALLOWED,   /* the visit may redirect (and was counted when asked) */
    LIMIT_EXHAUSTED, /* the limit is reached: respond with 410 */
    LIMIT_UNKNOWN,   /* no counter yet: read the stored count first */
    LIMIT_ERROR,     /* out of memory */
};

/*
 * Checks the visit limit of code and, with count set, takes a visit.
 * base, when not NULL, is the visit count read from the store and creates
 * the counter if it does not exist yet (an existing one wins). Any thread.
 */
enum limit_outcome app_limit_take(struct app *app, const char *code, size_t code_len,
                                  int64_t max_visits, bool count, const int64_t *base);

#endif
