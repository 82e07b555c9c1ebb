/*
 * Visit counts in the SQLite backend: store_add_visits, which adds a flush
 * of counts to links, visits_daily and visits_referrers, and
 * store_link_stats, which reads them back per day and per referrer host.
 *
 * Counts are added with upserts, so a flush never reads a count before
 * writing it. Both tables are WITHOUT ROWID with the link id and the day
 * first in their primary key. The rows of one link over a range of days are
 * therefore next to each other on disk, and a statistics read is one range
 * scan per table.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

const char *const store__sqlite_stats_sql[STMT_COUNT] = {
    /* Only finds the link: its total is the sum of its days. */
    [STMT_ADD_LINK_VISITS] = "SELECT id FROM links WHERE code = ?1",
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

/*
 * Finds the link of an entry and returns its id in *link_id: 0 when no link
 * has the code. Returns 0 or a negative errno
 * with the connection's error set.
 */
static int add_link_visits(struct sqlite_store *s, const struct store_visit *visit, size_t index,
                           size_t count, int64_t *link_id)
{
    sqlite3_stmt *stmt = s->stmt[STMT_ADD_LINK_VISITS];
    char code[STORE_CODE_MAX + 1];
    int rc;

    *link_id = 0;
    rc = sqlite3_bind_text(stmt, 1, visit->code, (int)visit->code_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        *link_id = sqlite3_column_int64(stmt, 0);

    (void)sqlite3_reset(stmt); /* would repeat the error that rc already has */
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;

    return store__sqlite_fail(s, rc, "addition of visits to link %s (entry %zu of %zu)",
                              store__sqlite_printable_code(visit->code, visit->code_len, code),
                              index + 1, count);
}

/* Adds an entry's visits to its day and referrer rows; returns like add_link_visits. */
static int add_daily_visits(struct sqlite_store *s, const struct store_visit *visit,
                            int64_t link_id, size_t index, size_t count)
{
    sqlite3_stmt *day = s->stmt[STMT_ADD_DAY_VISITS];
    sqlite3_stmt *referrer = s->stmt[STMT_ADD_REFERRER_VISITS];
    char code[STORE_CODE_MAX + 1];
    int rc;

    rc = sqlite3_bind_int64(day, 1, link_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(day, 2, visit->day);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(day, 3, (int64_t)visit->count);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_ADD_DAY_VISITS);
    if (rc != SQLITE_DONE)
        goto fail;

    if (visit->referrer_len == 0)
        return 0;

    rc = sqlite3_bind_int64(referrer, 1, link_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(referrer, 2, visit->day);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(referrer, 3, visit->referrer, (int)visit->referrer_len,
                               SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(referrer, 4, (int64_t)visit->count);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_ADD_REFERRER_VISITS);
    if (rc == SQLITE_DONE)
        return 0;

fail:
    return store__sqlite_fail(
        s, rc, "addition of visits on day %" PRId32 " to link %s (entry %zu of %zu)", visit->day,
        store__sqlite_printable_code(visit->code, visit->code_len, code), index + 1, count);
}

int store__sqlite_add_visits(struct store *store, const struct store_visit *visits, size_t count)
{
    struct sqlite_store *s = store__sqlite_from(store);
    int64_t link_id;
    int err = 0;
    size_t i;
    int rc;

    rc = store__sqlite_begin_write(s);
    if (rc != SQLITE_DONE) {
        err = store__sqlite_fail(s, rc, "begin of a flush of %zu visit counts", count);
        goto done;
    }

    for (i = 0; i < count && err == 0; i++) {
        err = add_link_visits(s, &visits[i], i, count, &link_id);
        if (err == 0 && link_id != 0)
            err = add_daily_visits(s, &visits[i], link_id, i, count);
    }
    if (err < 0)
        goto done;

    rc = store__sqlite_run(s, STMT_COMMIT);
    if (rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "commit of %zu visit counts", count);

done:
    (void)sqlite3_clear_bindings(s->stmt[STMT_ADD_LINK_VISITS]); /* always SQLITE_OK */
    (void)sqlite3_clear_bindings(s->stmt[STMT_ADD_REFERRER_VISITS]);
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
