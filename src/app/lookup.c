/*
 * Store reads on the worker pool: redirect misses, link reads, statistics,
 * listings and readiness.
 *
 * Redirect miss: a struct lookup is allocated and entered in app->pending
 * under the code. The first request for a code leads: it takes the cache
 * epoch, queues a store read and defers its response. Requests for the same
 * code that arrive while the read runs join the leader's list of waiters
 * instead of reading again, so a burst of clicks on a cold link costs one
 * store read. When the read ends, the worker fills the cache (unless a
 * write changed the code meanwhile; see cache_fill), creates the visit
 * counter of a limited link, removes the pending entry and posts the result
 * to every waiter's connection.
 *
 * Other reads build their JSON response on the worker, so the I/O thread only
 * writes it.
 *
 * Lookup life: created by the I/O thread -> owned by the worker pool while
 * queued or running -> posted to the connection's loop, which responds and
 * frees it.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/datetime.h"
#include "app/links.h"
#include "app/log.h"
#include "app/redirect.h"
#include "app/writer.h"
#include "core/container_of.h"
#include "net/loop.h"
#include "store/store.h"

#define STATS_DAYS_DEFAULT 30
#define STATS_DAYS_MAX     366
#define STATS_HOSTS        10
#define LIST_DEFAULT       50
#define LIST_MAX           1000

enum lookup_purpose {
    LOOKUP_REDIRECT,
    LOOKUP_READ,
    LOOKUP_STATS,
    LOOKUP_LIST,
    LOOKUP_KEYS,
    LOOKUP_READY,
};

struct lookup {
    struct loop_task task;
    struct app *app;
    struct http_conn *conn;
    enum lookup_purpose purpose;
    char code[STORE_CODE_MAX + 1];
    size_t code_len;
    struct auth auth;

    /* LOOKUP_REDIRECT */
    uint64_t epoch;
    char referrer[STORE_HOST_MAX + 1];
    size_t referrer_len;
    struct lookup *waiters; /* leader only: lookups that joined it */
    struct lookup *next;    /* link in the leader's list */

    /* LOOKUP_STATS: days; LOOKUP_LIST: owner, cursor and limit */
    int32_t from_day, to_day;
    int64_t owner;
    int64_t before_id;
    size_t limit;

    /* Result, set by the worker. */
    int err;      /* 0, or a negative errno to respond with 503 */
    char *record; /* LOOKUP_REDIRECT: an encoded link record */
    size_t record_len;
    int status; /* the other purposes: the response */
    char *body;
    size_t body_len;
};

static void free_lookup(struct lookup *lookup)
{
    free(lookup->record);
    free(lookup->body);
    free(lookup);
}

static void set_error_body(struct lookup *lookup, int status, const char *code,
                           const char *message)
{
    lookup->status = status;
    lookup->body = link_error_json(code, message, &lookup->body_len);
}

/* Takes ownership of a JSON value and stores it as the response. */
static void set_json_body(struct lookup *lookup, int status, json_t *value)
{
    lookup->status = status;
    lookup->body = link_json_dump(value);
    lookup->body_len = lookup->body != NULL ? strlen(lookup->body) : 0;
    json_decref(value);
}

/* ---- worker side ---- */

/*
 * Encodes what the store returned as a cache record. A stored URL that is
 * not header-safe (written by an older version or by hand) is
 * percent-encoded here, so the cache only ever contains safe URLs.
 */
static int encode_link(const struct store_link *link, int found, char **out, size_t *len)
{
    struct link_record record = {.kind = LINK_MISSING, .cache_max_age = -1};
    char *encoded = NULL;
    size_t size;

    if (found) {
        link_record_from_store(link, &record);
        if (record.kind == LINK_LIVE && !url_is_header_safe(link->url, link->url_len)) {
            encoded = malloc(3 * link->url_len + 1);
            if (encoded == NULL)
                return -ENOMEM;
            record.url_len = url_encode_for_header(link->url, link->url_len, encoded);
            record.url = encoded;
        }
    }

    size = link_record_size(&record);
    *out = malloc(size);
    if (*out == NULL) {
        free(encoded);
        return -ENOMEM;
    }
    *len = link_record_encode(&record, *out);
    free(encoded);
    return 0;
}

/* Sends the leader's result to itself and every waiter. */
static void finish_chain(struct lookup *leader)
{
    struct lookup *waiter, *next;

    for (waiter = leader->waiters; waiter != NULL; waiter = next) {
        next = waiter->next;
        waiter->err = leader->err;
        if (leader->record != NULL) {
            waiter->record = malloc(leader->record_len);
            if (waiter->record == NULL) {
                waiter->err = -ENOMEM;
            } else {
                memcpy(waiter->record, leader->record, leader->record_len);
                waiter->record_len = leader->record_len;
            }
        }
        http_conn_post(waiter->conn, &waiter->task);
    }
    http_conn_post(leader->conn, &leader->task);
}

static void redirect_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    struct app *app = lookup->app;
    struct store_link link;
    struct link_record record;
    void *removed = NULL;
    int rc;

    memset(&link, 0, sizeof(link));
    rc = store_get_link(thread_state, lookup->code, lookup->code_len, &link);
    if (rc == 0 && link.redirect_status != 301 && link.redirect_status != 302 &&
        link.redirect_status != 307 && link.redirect_status != 308) {
        /* Written by hand or corrupted: never send it as a status line. */
        log_warn("store", "link %s has redirect status %d; using %d", lookup->code,
                 link.redirect_status, app->config->redirect_status);
        link.redirect_status = app->config->redirect_status;
    }
    if (rc == 0 || rc == -ENOENT) {
        lookup->err = encode_link(&link, rc == 0, &lookup->record, &lookup->record_len);
        if (lookup->err == 0 &&
            link_record_decode(lookup->record, lookup->record_len, &record) == 0) {
            (void)cache_fill(app->cache, lookup->code, lookup->code_len, lookup->record,
                             lookup->record_len,
                             record.kind == LINK_MISSING ? app->config->negative_ttl_ms : 0,
                             loop_clock_ms(), lookup->epoch);
            if (record.kind == LINK_LIVE && record.max_visits > 0 &&
                app_limit_take(app, lookup->code, lookup->code_len, record.max_visits, false,
                               &link.visits) == LIMIT_ERROR)
                lookup->err = -ENOMEM;
        }
    } else {
        lookup->err = rc;
        log_error("store", "read of link %s failed: %s", lookup->code,
                  store_last_error(thread_state));
    }
    store_link_clear(&link);

    /* After the fill, so that a request arriving now finds the cache. */
    (void)shardmap_remove(app->pending, lookup->code, lookup->code_len, &removed);
    finish_chain(lookup);
}

/*
 * Reads the link for an API request and checks that auth may see it. Returns
 * 0 with link filled, or a negative value after setting the response.
 */
static int read_owned_link(struct lookup *lookup, struct store *store, struct store_link *link)
{
    char message[160];
    int rc;

    rc = store_get_link(store, lookup->code, lookup->code_len, link);
    if (rc == -ENOENT) {
        snprintf(message, sizeof(message), "No link has the code %s.", lookup->code);
        set_error_body(lookup, 404, "not_found", message);
        return rc;
    }
    if (rc < 0) {
        lookup->err = rc;
        log_error("store", "read of link %s failed: %s", lookup->code, store_last_error(store));
        return rc;
    }
    if (link->owner_key_id != 0 && !auth_may_manage(&lookup->auth, link->owner_key_id)) {
        set_error_body(lookup, 403, "not_owner", "The link belongs to another key.");
        return -EACCES;
    }
    if (link->deleted_at != 0) {
        snprintf(message, sizeof(message), "The link %s was deleted.", lookup->code);
        set_error_body(lookup, 410, "link_gone", message);
        return -ENOENT;
    }
    return 0;
}

static void read_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    struct store_link link;

    memset(&link, 0, sizeof(link));
    if (read_owned_link(lookup, thread_state, &link) == 0)
        set_json_body(lookup, 200, link_to_object(&link, lookup->app->base_url));
    store_link_clear(&link);
    http_conn_post(lookup->conn, &lookup->task);
}

static bool host_is_ascii(const char *host)
{
    for (; *host != '\0'; host++) {
        if ((unsigned char)*host >= 0x80)
            return false;
    }
    return true;
}

static void stats_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    struct store_day_count days[STATS_DAYS_MAX];
    struct store_host_count hosts[STATS_HOSTS];
    size_t days_len = 0, hosts_len = 0, i;
    char date[DATETIME_DATE_SIZE], from[DATETIME_DATE_SIZE], to[DATETIME_DATE_SIZE];
    json_t *day_list, *host_list;
    struct store_link link;
    uint64_t total = 0;
    int rc;

    memset(&link, 0, sizeof(link));
    if (read_owned_link(lookup, thread_state, &link) < 0)
        goto out;

    rc = store_link_stats(thread_state, link.id, lookup->from_day, lookup->to_day, days,
                          STATS_DAYS_MAX, &days_len, hosts, STATS_HOSTS, &hosts_len);
    if (rc < 0) {
        lookup->err = rc;
        log_error("store", "statistics of link %s failed: %s", lookup->code,
                  store_last_error(thread_state));
        goto out;
    }

    /* A failed append would silently drop a row, so it fails the response. */
    day_list = json_array();
    host_list = json_array();
    rc = day_list != NULL && host_list != NULL ? 0 : -ENOMEM;
    for (i = 0; i < days_len && rc == 0; i++) {
        datetime_format_date(days[i].day, date);
        total += days[i].count;
        rc = json_array_append_new(
            day_list, json_pack("{s:s, s:I}", "date", date, "visits", (json_int_t)days[i].count));
    }
    for (i = 0; i < hosts_len && rc == 0; i++) {
        /* Stored by an older version that kept any byte: not valid JSON. */
        if (!host_is_ascii(hosts[i].host))
            continue;
        rc = json_array_append_new(host_list, json_pack("{s:s, s:I}", "host", hosts[i].host,
                                                        "visits", (json_int_t)hosts[i].count));
    }
    if (rc < 0) {
        lookup->err = -ENOMEM;
        json_decref(day_list);
        json_decref(host_list);
        goto out;
    }
    datetime_format_date(lookup->from_day, from);
    datetime_format_date(lookup->to_day, to);
    set_json_body(lookup, 200,
                  json_pack("{s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "code", lookup->code, "from",
                            from, "to", to, "total", (json_int_t)total, "visits",
                            (json_int_t)link.visits, "days", day_list, "referrers", host_list));

out:
    store_link_clear(&link);
    http_conn_post(lookup->conn, &lookup->task);
}

struct list_state {
    struct lookup *lookup;
    json_t *links;
    size_t count;
    int64_t last_id;
    bool more;
    bool out_of_memory; /* a link could not be added: the page would miss it */
};

static int list_one(const struct store_link *link, void *arg)
{
    struct list_state *state = arg;
    json_t *object;

    if (state->count == state->lookup->limit) {
        state->more = true;
        return 1;
    }
    object = link_to_object(link, state->lookup->app->base_url);
    if (json_array_append_new(state->links, object) < 0) {
        state->out_of_memory = true;
        return 1;
    }
    state->count++;
    state->last_id = link->id;
    return 0;
}

static void list_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    struct list_state state = {.lookup = lookup};
    char cursor[24];
    int rc;

    state.links = json_array();
    rc = state.links != NULL ? store_list_links(thread_state, lookup->owner, lookup->before_id,
                                                lookup->limit + 1, list_one, &state)
                             : -ENOMEM;
    if (rc >= 0 && state.out_of_memory)
        rc = -ENOMEM;
    if (rc < 0) {
        lookup->err = rc;
        if (rc != -ENOMEM)
            log_error("store", "listing links failed: %s", store_last_error(thread_state));
        json_decref(state.links);
    } else {
        snprintf(cursor, sizeof(cursor), "%lld", (long long)state.last_id);
        set_json_body(lookup, 200,
                      json_pack("{s:o, s:o}", "links", state.links, "next_cursor",
                                state.more ? json_string(cursor) : json_null()));
    }
    http_conn_post(lookup->conn, &lookup->task);
}

static json_t *time_or_null(int64_t ms)
{
    char text[DATETIME_TIMESTAMP_SIZE];

    if (ms == 0)
        return json_null();
    datetime_format_timestamp(ms, text);
    return json_string(text);
}

/* Builds the JSON of a key, without its secret. */
json_t *app_key_to_object(const struct store_key *key)
{
    return json_pack("{s:I, s:s, s:o, s:o, s:o, s:o}", "id", (json_int_t)key->id, "name",
                     key->name, "created_at", time_or_null(key->created_at), "revoked_at",
                     time_or_null(key->revoked_at), "rate",
                     key->rate != 0 ? json_real(key->rate / 1000.0) : json_null(), "burst",
                     key->burst != 0 ? json_integer(key->burst) : json_null());
}

/* Stops the listing when a key cannot be added: the response must not miss one. */
static int list_key(const struct store_key *key, void *arg)
{
    return json_array_append_new(arg, app_key_to_object(key)) < 0;
}

static void keys_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    json_t *list = json_array();
    int rc;

    rc = list != NULL ? store_list_keys(thread_state, list_key, list) : -ENOMEM;
    if (rc >= 0 && json_array_size(list) != (size_t)rc)
        rc = -ENOMEM;
    if (rc < 0) {
        lookup->err = rc;
        if (rc != -ENOMEM)
            log_error("store", "listing keys failed: %s", store_last_error(thread_state));
        json_decref(list);
    } else {
        set_json_body(lookup, 200, json_pack("{s:o}", "keys", list));
    }
    http_conn_post(lookup->conn, &lookup->task);
}

static void ready_job(void *thread_state, void *arg)
{
    struct lookup *lookup = arg;
    char message[400];
    int rc, writer_err;

    rc = store_ping(thread_state);
    writer_err = writer_health(lookup->app->writer);

    if (rc < 0) {
        snprintf(message, sizeof(message), "The store does not answer reads: %s.",
                 store_last_error(thread_state));
        set_error_body(lookup, 503, "not_ready", message);
    } else if (writer_err < 0) {
        snprintf(message, sizeof(message), "The last write to the store failed: %s.",
                 strerror(-writer_err));
        set_error_body(lookup, 503, "not_ready", message);
    } else {
        set_json_body(lookup, 200, json_pack("{s:s}", "status", "ready"));
    }
    http_conn_post(lookup->conn, &lookup->task);
}

/* ---- loop side ---- */

static void lookup_done(struct loop *loop, struct loop_task *task)
{
    struct lookup *lookup = container_of(task, struct lookup, task);
    struct link_record record;

    if (!http_conn_is_open(lookup->conn)) {
        free_lookup(lookup);
        return;
    }

    if (lookup->err != 0) {
        app_send_unavailable(lookup->conn, lookup->err);
    } else if (lookup->purpose == LOOKUP_REDIRECT) {
        if (link_record_decode(lookup->record, lookup->record_len, &record) == 0)
            app_answer_redirect(lookup->app, lookup->conn, &record, lookup->code,
                                lookup->code_len, lookup->referrer, lookup->referrer_len);
        else
            app_send_unavailable(lookup->conn, -EIO);
    } else if (lookup->status == 503) {
        http_conn_begin(lookup->conn, 503);
        http_conn_header(lookup->conn, "Retry-After", "1", 1);
        http_conn_header(lookup->conn, "Cache-Control", "no-store", 8);
        http_conn_end(lookup->conn, "application/json; charset=utf-8", lookup->body,
                      lookup->body_len);
    } else {
        app_send_json(lookup->conn, lookup->status, lookup->body, lookup->body_len);
    }
    free_lookup(lookup);
}

static struct lookup *new_lookup(struct app *app, struct http_conn *conn,
                                 enum lookup_purpose purpose, const struct auth *auth,
                                 const char *code, size_t code_len)
{
    struct lookup *lookup = calloc(1, sizeof(*lookup));

    if (lookup == NULL)
        return NULL;
    lookup->task.callback = lookup_done;
    lookup->app = app;
    lookup->conn = conn;
    lookup->purpose = purpose;
    if (auth != NULL)
        lookup->auth = *auth;
    memcpy(lookup->code, code, code_len);
    lookup->code[code_len] = '\0';
    lookup->code_len = code_len;
    return lookup;
}

static void *join_or_lead(void *value, void *arg)
{
    struct lookup *lookup = arg, *leader = value;

    if (leader == NULL)
        return lookup;

    lookup->next = leader->waiters;
    leader->waiters = lookup;
    return leader;
}

void app_redirect_miss(struct app *app, struct http_conn *conn, const char *code, size_t code_len,
                       const char *referrer, size_t referrer_len)
{
    struct lookup *lookup;
    void *removed = NULL;
    int rc;

    lookup = new_lookup(app, conn, LOOKUP_REDIRECT, NULL, code, code_len);
    if (lookup == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    memcpy(lookup->referrer, referrer, referrer_len);
    lookup->referrer[referrer_len] = '\0';
    lookup->referrer_len = referrer_len;
    lookup->epoch = cache_epoch(app->cache, code, code_len);

    rc = shardmap_update(app->pending, code, code_len, join_or_lead, lookup);
    if (rc < 0) {
        free_lookup(lookup);
        app_send_unavailable(conn, rc);
        return;
    }

    http_conn_defer(conn);
    if (rc == 0)
        return; /* joined a read in progress */

    rc = workpool_submit(app->workers, redirect_job, lookup);
    if (rc < 0) {
        /* No worker will read the store, so respond to the leader and its waiters. */
        (void)shardmap_remove(app->pending, code, code_len, &removed);
        lookup->err = rc;
        finish_chain(lookup);
    }
}

static void submit_or_answer(struct app *app, struct http_conn *conn, struct lookup *lookup,
                             workpool_job_fn job)
{
    int rc;

    if (lookup == NULL) {
        app_send_unavailable(conn, -ENOMEM);
        return;
    }
    rc = workpool_submit(app->workers, job, lookup);
    if (rc < 0) {
        free_lookup(lookup);
        app_send_unavailable(conn, rc);
        return;
    }
    http_conn_defer(conn);
}

void app_read_link(struct app *app, struct http_conn *conn, const struct auth *auth,
                   const char *code, size_t code_len)
{
    submit_or_answer(app, conn, new_lookup(app, conn, LOOKUP_READ, auth, code, code_len),
                     read_job);
}

void app_link_stats(struct app *app, struct http_conn *conn, const struct auth *auth,
                    const struct http_request *req, const char *code, size_t code_len)
{
    char value[32];
    size_t len;
    int32_t today = datetime_day_of(loop_wall_ms(http_conn_loop(conn)));
    int32_t from = today - (STATS_DAYS_DEFAULT - 1), to = today;
    struct lookup *lookup;
    int found;

    found = app_query_param(req, "to", value, sizeof(value), &len);
    if (found < 0 || (found == 1 && datetime_parse_date(value, len, &to) < 0)) {
        app_send_error(conn, 400, "invalid_date", "to must be a date such as 2026-12-31.");
        return;
    }
    if (found == 1)
        from = to - (STATS_DAYS_DEFAULT - 1);
    found = app_query_param(req, "from", value, sizeof(value), &len);
    if (found < 0 || (found == 1 && datetime_parse_date(value, len, &from) < 0)) {
        app_send_error(conn, 400, "invalid_date", "from must be a date such as 2026-12-01.");
        return;
    }
    if (from > to || to - from >= STATS_DAYS_MAX) {
        app_send_error(conn, 400, "invalid_date_range",
                       "from must not be after to, and the range is at most 366 days.");
        return;
    }

    lookup = new_lookup(app, conn, LOOKUP_STATS, auth, code, code_len);
    if (lookup != NULL) {
        lookup->from_day = from;
        lookup->to_day = to;
    }
    submit_or_answer(app, conn, lookup, stats_job);
}

/* Parses a decimal number in [min, max]. Returns 0 or -EINVAL. */
static int parse_number(const char *text, size_t len, int64_t min, int64_t max, int64_t *value)
{
    int64_t result = 0;
    size_t i;

    if (len == 0 || len > 18)
        return -EINVAL;
    for (i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
        result = result * 10 + (text[i] - '0');
    }
    if (result < min || result > max)
        return -EINVAL;
    *value = result;
    return 0;
}

void app_list_links(struct app *app, struct http_conn *conn, const struct auth *auth,
                    const struct http_request *req)
{
    int64_t limit = LIST_DEFAULT, cursor = 0;
    struct lookup *lookup;
    char value[32];
    size_t len;
    int found;

    if (auth->kind == AUTH_ANONYMOUS) {
        app_send_unauthorized(conn, "Listing links needs an API key or the admin key.");
        return;
    }

    found = app_query_param(req, "limit", value, sizeof(value), &len);
    if (found < 0 || (found == 1 && parse_number(value, len, 1, LIST_MAX, &limit) < 0)) {
        app_send_error(conn, 400, "invalid_limit", "limit must be a whole number from 1 to 1000.");
        return;
    }
    found = app_query_param(req, "cursor", value, sizeof(value), &len);
    if (found < 0 || (found == 1 && parse_number(value, len, 1, INT64_MAX, &cursor) < 0)) {
        app_send_error(conn, 400, "invalid_cursor",
                       "cursor must be the next_cursor of an earlier page.");
        return;
    }

    lookup = new_lookup(app, conn, LOOKUP_LIST, auth, "", 0);
    if (lookup != NULL) {
        lookup->owner = auth->kind == AUTH_ADMIN ? -1 : auth->key.id;
        lookup->before_id = cursor;
        lookup->limit = (size_t)limit;
    }
    submit_or_answer(app, conn, lookup, list_job);
}

void app_list_keys(struct app *app, struct http_conn *conn)
{
    submit_or_answer(app, conn, new_lookup(app, conn, LOOKUP_KEYS, NULL, "", 0), keys_job);
}

void app_ready(struct app *app, struct http_conn *conn)
{
    submit_or_answer(app, conn, new_lookup(app, conn, LOOKUP_READY, NULL, "", 0), ready_job);
}

int app_worker_init(void *context, unsigned index, void **thread_state)
{
    struct app *app = context;
    struct store *store;
    char error[512];
    int rc;

    rc = store_open(app->config->db, &store, error, sizeof(error));
    if (rc < 0) {
        log_error("store", "worker %u cannot open %s: %s", index, app->config->db, error);
        return rc;
    }
    *thread_state = store;
    return 0;
}

void app_worker_fini(void *context, void *thread_state)
{
    store_close(thread_state);
}
