/*
 * Visit counts in the SQLite backend: store_add_visits, which adds a flush
 * of counts to visits_daily and visits_referrers, and store_link_stats,
 * which reads them back per day and per referrer host.
 *
 * Counts are added with upserts, so a flush never reads a count before
 * writing it. Both tables are WITHOUT ROWID with the link id and the day
 * first in their primary key. The rows of one link over a range of days are
 * therefore next to each other on disk, and a statistics read is one range
 * scan per table.
 *
 * A flush sorts its entries by that key (link id, day, host) first. The
 * upserts then walk each table's B-tree in key order, so consecutive
 * upserts mostly land on a page that the previous one just read, and
 * entries with the same key become one run. Each link's run costs one
 * rowid lookup in links, which skips ids that no link has, then one upsert
 * per day into visits_daily and one per host into visits_referrers.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

/*
 * Links a flush adds between two sched_yield calls. At the 2 to 15 us per
 * link that the benchmarks measured, that is an estimated 0.2 to 2 ms of work.
 */
#define YIELD_LINKS 128

const char *const store__sqlite_stats_sql[STMT_COUNT] = {
    /* A rowid lookup, to skip the visits of ids that no link has. */
    [STMT_LINK_EXISTS] = "SELECT 1 FROM links WHERE id = ?1",
    [STMT_ADD_DAY_VISITS] = "INSERT INTO visits_daily (link_id, day, count) VALUES (?1, ?2, ?3)"
                            " ON CONFLICT (link_id, day) DO UPDATE"
                            " SET count = count + excluded.count",
    [STMT_ADD_REFERRER_VISITS] =
        "INSERT INTO visits_referrers (link_id, day, host, count) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (link_id, day, host) DO UPDATE SET count = count + excluded.count",
    [STMT_SELECT_DAYS] = "SELECT day, count FROM visits_daily"
                         " WHERE link_id = ?1 AND day BETWEEN ?2 AND ?3 ORDER BY day LIMIT ?4",
    [STMT_SELECT_HOSTS] = "SELECT host, sum(count) AS total FROM visits_referrers"
                          " WHERE link_id = ?1 AND day BETWEEN ?2 AND ?3"
                          " GROUP BY host ORDER BY total DESC, host LIMIT ?4",
};

/* The leading columns of the tables' key that a run of entries shares. */
enum key_prefix {
    KEY_LINK,
    KEY_LINK_DAY,
    KEY_LINK_DAY_HOST,
};

/*
 * Compares two hosts as SQLite's BINARY collation compares text: byte by
 * byte, and a host that is a prefix of the other first.
 */
static int compare_hosts(const struct store_visit *a, const struct store_visit *b)
{
    uint32_t common = a->referrer_len < b->referrer_len ? a->referrer_len : b->referrer_len;
    int rc = 0;

    if (common > 0)
        rc = memcmp(a->referrer, b->referrer, common);
    if (rc != 0)
        return rc;
    return (a->referrer_len > b->referrer_len) - (a->referrer_len < b->referrer_len);
}

/* Orders entries by link id, day and host, the primary key order of both tables. */
static int compare_visits(const void *left, const void *right)
{
    const struct store_visit *a = left;
    const struct store_visit *b = right;

    if (a->link_id != b->link_id)
        return a->link_id < b->link_id ? -1 : 1;
    if (a->day != b->day)
        return a->day < b->day ? -1 : 1;
    return compare_hosts(a, b);
}

static bool same_key(const struct store_visit *a, const struct store_visit *b,
                     enum key_prefix prefix)
{
    if (a->link_id != b->link_id)
        return false;
    if (prefix >= KEY_LINK_DAY && a->day != b->day)
        return false;
    return prefix < KEY_LINK_DAY_HOST || compare_hosts(a, b) == 0;
}

/* Returns the number of sorted entries from visits[0] on that share its key prefix. */
static size_t run_length(const struct store_visit *visits, size_t count, enum key_prefix prefix)
{
    size_t i = 1;

    while (i < count && same_key(&visits[0], &visits[i], prefix))
        i++;
    return i;
}

/*
 * Sums the counts of visits[0..count) from the first on while the sum stays
 * at most INT64_MAX, the largest SQL INTEGER. Stores the number of entries
 * summed in *used, which is at least 1 because each count is at most
 * INT64_MAX.
 */
static uint64_t sum_counts(const struct store_visit *visits, size_t count, size_t *used)
{
    uint64_t sum = visits[0].count;
    size_t i;

    for (i = 1; i < count && visits[i].count <= (uint64_t)INT64_MAX - sum; i++)
        sum += visits[i].count;
    *used = i;
    return sum;
}

/*
 * Sets *exists to whether a link, live or deleted, has this id. Returns 0
 * or a negative errno with the connection's error set.
 */
static int link_exists(struct sqlite_store *s, int64_t link_id, bool *exists)
{
    int rc = sqlite3_bind_int64(s->stmt[STMT_LINK_EXISTS], 1, link_id);

    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_LINK_EXISTS);
    *exists = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    return store__sqlite_fail(s, rc, "lookup of link %" PRId64 " for its visits", link_id);
}

/* Adds count to the day's row of the link; returns like link_exists. */
static int add_day_count(struct sqlite_store *s, int64_t link_id, int32_t day, uint64_t count)
{
    sqlite3_stmt *stmt = s->stmt[STMT_ADD_DAY_VISITS];
    int rc = sqlite3_bind_int64(stmt, 1, link_id);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 2, day);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 3, (int64_t)count);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_ADD_DAY_VISITS);
    if (rc == SQLITE_DONE)
        return 0;
    return store__sqlite_fail(s, rc, "addition of visits on day %" PRId32 " to link %" PRId64, day,
                              link_id);
}

/*
 * Adds count to the row of the entry's link, day and host. The host stays
 * bound to the caller's bytes until store__sqlite_add_visits clears the
 * bindings. Returns like link_exists.
 */
static int add_host_count(struct sqlite_store *s, const struct store_visit *visit, uint64_t count)
{
    sqlite3_stmt *stmt = s->stmt[STMT_ADD_REFERRER_VISITS];
    int rc = sqlite3_bind_int64(stmt, 1, visit->link_id);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 2, visit->day);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 3, visit->referrer, (int)visit->referrer_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 4, (int64_t)count);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_ADD_REFERRER_VISITS);
    if (rc == SQLITE_DONE)
        return 0;
    return store__sqlite_fail(
        s, rc, "addition of visits on day %" PRId32 " from a referrer to link %" PRId64, visit->day,
        visit->link_id);
}

/*
 * Adds a run of sorted entries that share their link and day: their sum to
 * the day's row, and each host's sum to its row. Returns like link_exists.
 */
static int add_day(struct sqlite_store *s, const struct store_visit *visits, size_t count)
{
    size_t i, j, used, host_end;
    uint64_t sum;
    int err = 0;

    for (i = 0; i < count && err == 0; i += used) {
        sum = sum_counts(visits + i, count - i, &used);
        err = add_day_count(s, visits[0].link_id, visits[0].day, sum);
    }

    /* Entries without a host sort first and have no referrer row. */
    for (i = 0; i < count && err == 0; i = host_end) {
        host_end = i + run_length(visits + i, count - i, KEY_LINK_DAY_HOST);
        for (j = i; j < host_end && err == 0 && visits[i].referrer_len > 0; j += used) {
            sum = sum_counts(visits + j, host_end - j, &used);
            err = add_host_count(s, &visits[j], sum);
        }
    }
    return err;
}

/*
 * Adds a run of sorted entries that share their link, unless no link has
 * its id. Returns like link_exists.
 */
static int add_link(struct sqlite_store *s, const struct store_visit *visits, size_t count)
{
    size_t i, length;
    bool exists;
    int err;

    err = link_exists(s, visits[0].link_id, &exists);
    for (i = 0; i < count && err == 0 && exists; i += length) {
        length = run_length(visits + i, count - i, KEY_LINK_DAY);
        err = add_day(s, visits + i, length);
    }
    return err;
}

int store__sqlite_add_visits(struct store *store, struct store_visit *visits, size_t count)
{
    struct sqlite_store *s = store__sqlite_from(store);
    size_t i, length, links;
    int err = 0;
    int rc;

    /* Sorted before BEGIN, so that the write lock is not held meanwhile. */
    qsort(visits, count, sizeof(*visits), compare_visits);

    rc = store__sqlite_begin_write(s);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "begin of a flush of %zu visit counts", count);
        goto done;
    }

    for (i = 0, links = 0; i < count && err == 0; i += length, links++) {
        /* Let other threads of this core run between groups of links, so
         * that a large flush does not delay an I/O thread for a whole
         * scheduler slice. */
        if (links % YIELD_LINKS == YIELD_LINKS - 1)
            (void)sched_yield();
        length = run_length(visits + i, count - i, KEY_LINK);
        err = add_link(s, visits + i, length);
    }
    if (err < 0)
        goto done;

    rc = store__sqlite_run(s, STMT_COMMIT);
    if (rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "commit of %zu visit counts", count);

done:
    (void)sqlite3_clear_bindings(s->stmt[STMT_ADD_REFERRER_VISITS]); /* always SQLITE_OK */
    if (err < 0)
        store__sqlite_roll_back(s);
    return err;
}

/* Binds the link id, the day range and a row limit, the parameters of both stats queries. */
static int bind_range(sqlite3_stmt *stmt, int64_t link_id, int32_t from_day, int32_t to_day,
                      size_t cap)
{
    int rc = sqlite3_bind_int64(stmt, 1, link_id);

    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 2, from_day);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 3, to_day);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 4, cap > INT64_MAX ? INT64_MAX : (int64_t)cap);
    return rc;
}

static int read_days(struct sqlite_store *s, int64_t link_id, int32_t from_day, int32_t to_day,
                     struct store_day_count *days, size_t days_cap, size_t *days_len)
{
    sqlite3_stmt *stmt = s->stmt[STMT_SELECT_DAYS];
    int rc;

    rc = bind_range(stmt, link_id, from_day, to_day, days_cap);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            break;

        days[*days_len].day = sqlite3_column_int(stmt, 0);
        days[*days_len].count = (uint64_t)sqlite3_column_int64(stmt, 1);
        ++*days_len;
    }

    (void)sqlite3_reset(stmt); /* would repeat the error that rc already has */
    if (rc == SQLITE_DONE)
        return 0;
    return store__sqlite_fail(s, rc, "read of daily visits of link %" PRId64, link_id);
}

static int read_hosts(struct sqlite_store *s, int64_t link_id, int32_t from_day, int32_t to_day,
                      struct store_host_count *hosts, size_t hosts_cap, size_t *hosts_len)
{
    sqlite3_stmt *stmt = s->stmt[STMT_SELECT_HOSTS];
    struct store_host_count *entry;
    const unsigned char *host;
    size_t host_len;
    int err = 0;
    int rc;

    rc = bind_range(stmt, link_id, from_day, to_day, hosts_cap);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW)
            break;

        host = sqlite3_column_text(stmt, 0);
        host_len = (size_t)sqlite3_column_bytes(stmt, 0);
        if (host == NULL || host_len > STORE_HOST_MAX) {
            store__set_error(&s->base,
                             "read of referrers of link %" PRId64 " failed: a stored host is "
                             "missing or longer than %d bytes",
                             link_id, STORE_HOST_MAX);
            err = -EILSEQ;
            break;
        }

        entry = &hosts[*hosts_len];
        memcpy(entry->host, host, host_len);
        entry->host[host_len] = '\0';
        entry->count = (uint64_t)sqlite3_column_int64(stmt, 1);
        ++*hosts_len;
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "read of referrers of link %" PRId64, link_id);

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    return err;
}

int store__sqlite_link_stats(struct store *store, int64_t link_id, int32_t from_day, int32_t to_day,
                             struct store_day_count *days, size_t days_cap, size_t *days_len,
                             struct store_host_count *hosts, size_t hosts_cap, size_t *hosts_len)
{
    struct sqlite_store *s = store__sqlite_from(store);
    int err = 0;
    int rc;

    /* One read transaction, so that a flush between the two queries cannot split them. */
    store__sqlite_roll_back(s); /* a transaction left open by a failed ROLLBACK */
    rc = store__sqlite_run(s, STMT_BEGIN_READ);
    if (rc != SQLITE_DONE)
        return store__sqlite_fail(s, rc, "begin of a read of statistics of link %" PRId64, link_id);

    if (days_cap > 0)
        err = read_days(s, link_id, from_day, to_day, days, days_cap, days_len);
    if (err == 0 && hosts_cap > 0)
        err = read_hosts(s, link_id, from_day, to_day, hosts, hosts_cap, hosts_len);

    if (err == 0) {
        rc = store__sqlite_run(s, STMT_COMMIT);
        if (rc != SQLITE_DONE)
            err =
                store__sqlite_fail(s, rc, "end of a read of statistics of link %" PRId64, link_id);
    }

    if (err < 0) {
        store__sqlite_roll_back(s);
        *days_len = 0;
        *hosts_len = 0;
    }
    return err;
}
