/*
 * Per-thread visit counters, see visits.h.
 *
 * A table is an open addressing array of entry pointers (linear probing,
 * load at most 1/2, never shrinking) plus an arena that owns the entries.
 * Entries are never deleted individually: a whole table is cleared at once
 * when visits_take has copied it, which is why an arena fits.
 *
 * Lock protocol: each thread slot has one mutex that protects its `active`
 * and `spare` pointers and the active table's contents. The I/O thread holds
 * it while it counts one visit; visits_take holds it only to swap tables.
 * No other lock is taken while holding it.
 */
#include "app/visits.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHUNK_BYTES  (64 * 1024)
#define INITIAL_SLOTS 1024
#define MAX_THREADS   256 /* the --threads maximum */

struct visit_entry {
    uint64_t hash;
    uint64_t count;
    int64_t link_id;
    int32_t day;
    uint8_t referrer_len;
    char referrer[];
};

struct chunk {
    struct chunk *next;
    size_t used;
    char data[];
};

struct visit_table {
    struct visit_entry **slots;
    uint32_t mask;
    uint32_t count;
    size_t referrer_bytes; /* the sum of the entries' referrer_len */
    struct chunk *chunks;  /* the first one is the one being filled */
    struct chunk *free_chunks;
};

struct thread_slot {
    pthread_mutex_t lock;
    struct visit_table *active;
    struct visit_table *spare;
} __attribute__((aligned(64)));

struct visits {
    struct hash_key key;
    size_t max_entries;
    unsigned threads;
    struct thread_slot *slots;
    _Atomic uint64_t dropped; /* relaxed: a counter that orders nothing */
};

static struct visit_table *table_create(void)
{
    struct visit_table *table = calloc(1, sizeof(*table));

    if (table == NULL)
        return NULL;
    table->slots = calloc(INITIAL_SLOTS, sizeof(*table->slots));
    if (table->slots == NULL) {
        free(table);
        return NULL;
    }
    table->mask = INITIAL_SLOTS - 1;
    return table;
}

static void free_chunks(struct chunk *chunk)
{
    struct chunk *next;

    for (; chunk != NULL; chunk = next) {
        next = chunk->next;
        free(chunk);
    }
}

static void table_destroy(struct visit_table *table)
{
    if (table == NULL)
        return;
    free_chunks(table->chunks);
    free_chunks(table->free_chunks);
    free(table->slots);
    free(table);
}

/* Empties the table, keeping its slot array and chunks for reuse. */
static void table_clear(struct visit_table *table)
{
    struct chunk *chunk, *next;

    memset(table->slots, 0, ((size_t)table->mask + 1) * sizeof(*table->slots));
    table->count = 0;
    table->referrer_bytes = 0;
    for (chunk = table->chunks; chunk != NULL; chunk = next) {
        next = chunk->next;
        chunk->used = 0;
        chunk->next = table->free_chunks;
        table->free_chunks = chunk;
    }
    table->chunks = NULL;
}

static void *arena_alloc(struct visit_table *table, size_t size)
{
    struct chunk *chunk = table->chunks;

    size = (size + 7) & ~(size_t)7;
    if (chunk == NULL || CHUNK_BYTES - sizeof(*chunk) - chunk->used < size) {
        chunk = table->free_chunks;
        if (chunk != NULL)
            table->free_chunks = chunk->next;
        else
            chunk = malloc(CHUNK_BYTES);
        if (chunk == NULL)
            return NULL;
        chunk->used = 0;
        chunk->next = table->chunks;
        table->chunks = chunk;
    }
    chunk->used += size;
    return chunk->data + chunk->used - size;
}

static int table_grow(struct visit_table *table)
{
    size_t size = ((size_t)table->mask + 1) * 2, i, pos;
    struct visit_entry **slots = calloc(size, sizeof(*slots));

    if (slots == NULL)
        return -ENOMEM;
    for (i = 0; i <= table->mask; i++) {
        struct visit_entry *entry = table->slots[i];

        if (entry == NULL)
            continue;
        for (pos = entry->hash & (size - 1); slots[pos] != NULL; pos = (pos + 1) & (size - 1))
            ;
        slots[pos] = entry;
    }
    free(table->slots);
    table->slots = slots;
    table->mask = (uint32_t)(size - 1);
    return 0;
}

static bool entry_matches(const struct visit_entry *entry, uint64_t hash, int64_t link_id,
                          int32_t day, const char *referrer, size_t referrer_len)
{
    return entry->hash == hash && entry->link_id == link_id && entry->day == day &&
           entry->referrer_len == referrer_len &&
           memcmp(entry->referrer, referrer, referrer_len) == 0;
}

/*
 * Hashes a key with the process's secret key. Referrer hosts come from
 * clients, so an unkeyed hash would let them pick colliding keys and make
 * every probe of the table walk one long chain.
 */
static uint64_t key_hash(const struct visits *visits, int64_t link_id, int32_t day,
                         const char *referrer, size_t referrer_len)
{
    char key[sizeof(link_id) + sizeof(day) + STORE_HOST_MAX];

    memcpy(key, &link_id, sizeof(link_id));
    memcpy(key + sizeof(link_id), &day, sizeof(day));
    memcpy(key + sizeof(link_id) + sizeof(day), referrer, referrer_len);
    return hash_bytes(&visits->key, key, sizeof(link_id) + sizeof(day) + referrer_len);
}

/* Adds one to the entry for the key, creating it. Returns 0 or -ENOSPC. */
static int table_count(struct visits *visits, struct visit_table *table, int64_t link_id,
                       int32_t day, const char *referrer, size_t referrer_len)
{
    uint64_t hash = key_hash(visits, link_id, day, referrer, referrer_len);
    struct visit_entry *entry;
    size_t pos;

    for (pos = hash & table->mask; (entry = table->slots[pos]) != NULL;
         pos = (pos + 1) & table->mask) {
        if (entry_matches(entry, hash, link_id, day, referrer, referrer_len)) {
            entry->count++;
            return 0;
        }
    }

    if (table->count >= visits->max_entries)
        return -ENOSPC;
    if ((table->count + 1) * 2 > table->mask + 1) {
        if (table_grow(table) < 0)
            return -ENOSPC;
        for (pos = hash & table->mask; table->slots[pos] != NULL; pos = (pos + 1) & table->mask)
            ;
    }

    entry = arena_alloc(table, sizeof(*entry) + referrer_len);
    if (entry == NULL)
        return -ENOSPC;
    entry->hash = hash;
    entry->count = 1;
    entry->link_id = link_id;
    entry->day = day;
    entry->referrer_len = (uint8_t)referrer_len;
    memcpy(entry->referrer, referrer, referrer_len);
    table->slots[pos] = entry;
    table->count++;
    table->referrer_bytes += referrer_len;
    return 0;
}

struct visits *visits_create(unsigned threads, size_t max_entries, const struct hash_key *key)
{
    struct visits *visits;
    unsigned i;

    if (threads == 0 || threads > MAX_THREADS)
        return NULL;
    visits = calloc(1, sizeof(*visits));
    if (visits == NULL)
        return NULL;
    visits->key = *key;
    visits->max_entries = max_entries;
    visits->threads = threads;
    atomic_init(&visits->dropped, 0);

    visits->slots = aligned_alloc(64, sizeof(*visits->slots) * threads);
    if (visits->slots == NULL) {
        free(visits);
        return NULL;
    }
    memset(visits->slots, 0, sizeof(*visits->slots) * threads);
    for (i = 0; i < threads; i++) {
        pthread_mutex_init(&visits->slots[i].lock, NULL);
        visits->slots[i].active = table_create();
        visits->slots[i].spare = table_create();
        if (visits->slots[i].active == NULL || visits->slots[i].spare == NULL) {
            visits->threads = i + 1;
            visits_destroy(visits);
            return NULL;
        }
    }
    return visits;
}

void visits_destroy(struct visits *visits)
{
    unsigned i;

    if (visits == NULL)
        return;
    for (i = 0; i < visits->threads; i++) {
        table_destroy(visits->slots[i].active);
        table_destroy(visits->slots[i].spare);
        pthread_mutex_destroy(&visits->slots[i].lock);
    }
    free(visits->slots);
    free(visits);
}

void visits_record(struct visits *visits, unsigned thread, int64_t link_id, int32_t day,
                   const char *referrer, size_t referrer_len)
{
    struct thread_slot *slot = &visits->slots[thread];
    int rc;

    if (link_id <= 0)
        return;
    if (referrer_len > STORE_HOST_MAX)
        referrer_len = STORE_HOST_MAX;

    pthread_mutex_lock(&slot->lock);
    rc = table_count(visits, slot->active, link_id, day, referrer, referrer_len);
    if (rc < 0 && referrer_len > 0)
        rc = table_count(visits, slot->active, link_id, day, "", 0);
    pthread_mutex_unlock(&slot->lock);

    if (rc < 0)
        atomic_fetch_add_explicit(&visits->dropped, 1, memory_order_relaxed);
}

/*
 * Appends the entries of table to out[*used..] and their referrer bytes to
 * *bytes, which it advances.
 */
static void copy_entries(const struct visit_table *table, struct store_visit *out, size_t *used,
                         char **bytes)
{
    size_t i;

    for (i = 0; i <= table->mask; i++) {
        const struct visit_entry *entry = table->slots[i];
        struct store_visit *visit;

        if (entry == NULL)
            continue;
        visit = &out[(*used)++];
        visit->link_id = entry->link_id;
        visit->count = entry->count;
        visit->referrer = NULL;
        visit->referrer_len = entry->referrer_len;
        visit->day = entry->day;
        if (entry->referrer_len > 0) {
            memcpy(*bytes, entry->referrer, entry->referrer_len);
            visit->referrer = *bytes;
            *bytes += entry->referrer_len;
        }
    }
}

int visits_take(struct visits *visits, struct store_visit **out, size_t *count)
{
    struct visit_table *taken[MAX_THREADS];
    struct store_visit *array = NULL;
    size_t total = 0, referrer_bytes = 0, used = 0;
    char *bytes;
    unsigned i;

    /* Swap every thread's table for its empty spare. */
    for (i = 0; i < visits->threads; i++) {
        struct thread_slot *slot = &visits->slots[i];

        pthread_mutex_lock(&slot->lock);
        taken[i] = slot->active;
        slot->active = slot->spare;
        slot->spare = NULL;
        pthread_mutex_unlock(&slot->lock);
        total += taken[i]->count;
        referrer_bytes += taken[i]->referrer_bytes;
    }

    /* A size that would overflow fails like a failed allocation. */
    if (total > 0 && total <= (SIZE_MAX - referrer_bytes) / sizeof(*array)) {
        array = malloc(total * sizeof(*array) + referrer_bytes);
        if (array != NULL) {
            bytes = (char *)(array + total);
            for (i = 0; i < visits->threads; i++)
                copy_entries(taken[i], array, &used, &bytes);
        }
    }

    /* Give each table back: cleared as the spare, or whole on failure. */
    for (i = 0; i < visits->threads; i++) {
        struct thread_slot *slot = &visits->slots[i];

        if (total > 0 && array == NULL) {
            /* Merge nothing: put the full table back in front, keep counts. */
            pthread_mutex_lock(&slot->lock);
            slot->spare = slot->active;
            slot->active = taken[i];
            pthread_mutex_unlock(&slot->lock);
            continue;
        }
        table_clear(taken[i]);
        pthread_mutex_lock(&slot->lock);
        slot->spare = taken[i];
        pthread_mutex_unlock(&slot->lock);
    }

    if (total > 0 && array == NULL)
        return -ENOMEM;
    *out = array;
    *count = used;
    return 0;
}

/* Copies entries to out and their referrer bytes to *bytes, which it advances. */
static void copy_visits(const struct store_visit *visits, size_t count, struct store_visit *out,
                        char **bytes)
{
    size_t i;

    if (count == 0)
        return; /* visits may then be NULL, which memcpy must not get */
    memcpy(out, visits, count * sizeof(*visits));
    for (i = 0; i < count; i++) {
        if (out[i].referrer_len == 0)
            continue;
        memcpy(*bytes, out[i].referrer, out[i].referrer_len);
        out[i].referrer = *bytes;
        *bytes += out[i].referrer_len;
    }
}

struct store_visit *visits_join(const struct store_visit *first, size_t first_count,
                                const struct store_visit *second, size_t second_count)
{
    size_t count = first_count + second_count, referrer_bytes = 0, i;
    struct store_visit *joined;
    char *bytes;

    for (i = 0; i < first_count; i++)
        referrer_bytes += first[i].referrer_len;
    for (i = 0; i < second_count; i++)
        referrer_bytes += second[i].referrer_len;
    if (count == 0 || count > (SIZE_MAX - referrer_bytes) / sizeof(*joined))
        return NULL;

    joined = malloc(count * sizeof(*joined) + referrer_bytes);
    if (joined == NULL)
        return NULL;
    bytes = (char *)(joined + count);
    copy_visits(first, first_count, joined, &bytes);
    copy_visits(second, second_count, joined + first_count, &bytes);
    return joined;
}

uint64_t visits_dropped(struct visits *visits)
{
    return atomic_load_explicit(&visits->dropped, memory_order_relaxed);
}

size_t visits_referrer_host(const char *value, size_t len, char *out)
{
    size_t start, end, i;

    if (len >= 7 && strncasecmp(value, "http://", 7) == 0)
        start = 7;
    else if (len >= 8 && strncasecmp(value, "https://", 8) == 0)
        start = 8;
    else
        return 0;

    end = start;
    while (end < len && value[end] != '/' && value[end] != '?' && value[end] != '#')
        end++;

    /* Drop user information and the port: only the host name is kept. */
    for (i = end; i > start; i--) {
        if (value[i - 1] == '@') {
            start = i;
            break;
        }
    }
    if (start < end && value[start] == '[') {
        for (i = start; i < end && value[i] != ']'; i++)
            ;
        end = i < end ? i + 1 : end;
    } else {
        for (i = start; i < end && value[i] != ':'; i++)
            ;
        end = i;
    }

    if (end == start || end - start > STORE_HOST_MAX)
        return 0;
    for (i = start; i < end; i++) {
        char c = value[i];

        /* Hosts on the wire are ASCII (internationalised ones in punycode);
         * anything else is not a host and must not reach JSON unescaped. */
        if ((unsigned char)c <= 0x20 || (unsigned char)c >= 0x7f || c == '"' || c == '\\')
            return 0;
        out[i - start] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[end - start] = '\0';
    return end - start;
}
