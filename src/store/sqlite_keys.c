/*
 * API keys in the SQLite backend: the KEY_CREATE and KEY_REVOKE ops of
 * store_apply and store_list_keys.
 *
 * A row of api_keys contains the hash of a key's secret, never the secret.
 * key_hash is UNIQUE, so a second key with the same hash fails alone with
 * -EEXIST. Keys are never deleted, only revoked once by setting revoked_at.
 * Because no row is ever removed, the id SQLite gives a new row (the largest
 * id plus one) is never one that an older key had.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>

#include "store/backend.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

const char *const store__sqlite_keys_sql[STMT_COUNT] = {
    [STMT_INSERT_KEY] = "INSERT INTO api_keys (key_hash, name, created_at, rate, burst)"
                        " VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_REVOKE_KEY] = "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
    [STMT_FIND_KEY] = "SELECT 1 FROM api_keys WHERE id = ?1",
    [STMT_LIST_KEYS] = "SELECT id, key_hash, name, created_at, revoked_at, rate, burst"
                       " FROM api_keys ORDER BY id",
};

int store__sqlite_create_key(struct sqlite_store *s, struct store_op *op, size_t index,
                             size_t count)
{
    struct store_key *key = &op->key;
    sqlite3_stmt *stmt = s->stmt[STMT_INSERT_KEY];
    size_t name_len = strnlen(key->name, sizeof(key->name));
    int rc;

    /* A name without a NUL in its buffer is longer than STORE_KEY_NAME_MAX. */
    if (name_len > STORE_KEY_NAME_MAX) {
        op->result = -EINVAL;
        return 0;
    }

    rc = sqlite3_bind_blob(stmt, 1, key->hash, sizeof(key->hash), SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(stmt, 2, key->name, (int)name_len, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 3, key->created_at);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 4, key->rate);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 5, key->burst);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_INSERT_KEY);

    if (rc == SQLITE_DONE) {
        key->id = sqlite3_last_insert_rowid(s->db);
        op->result = 0;
        return 0;
    }

    /* key_hash is the only UNIQUE column; the statement alone is undone. */
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        op->result = -EEXIST;
        return 0;
    }

    /* The name comes from a client, so it stays out of the message. */
    return store__sqlite_fail(s, rc, "insert of an API key (write %zu of %zu)", index + 1, count);
}

int store__sqlite_revoke_key(struct sqlite_store *s, struct store_op *op, size_t index,
                             size_t count)
{
    const struct store_key *key = &op->key;
    sqlite3_stmt *update = s->stmt[STMT_REVOKE_KEY];
    sqlite3_stmt *find = s->stmt[STMT_FIND_KEY];
    int rc;

    /* revoked_at 0 reads back as "valid", so a revoke needs a real time. */
    if (key->id <= 0 || op->now <= 0) {
        op->result = -EINVAL;
        return 0;
    }

    rc = sqlite3_bind_int64(update, 1, op->now);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(update, 2, key->id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_REVOKE_KEY);
    if (rc != SQLITE_DONE)
        goto fail;

    if (sqlite3_changes(s->db) > 0) {
        op->result = 0;
        return 0;
    }

    /* No valid key has the id: tell a revoked key from a missing one. */
    rc = sqlite3_bind_int64(find, 1, key->id);
    if (rc == SQLITE_OK)
        rc = store__sqlite_run(s, STMT_FIND_KEY);
    if (rc == SQLITE_ROW) {
        op->result = -EALREADY;
        return 0;
    }
    if (rc == SQLITE_DONE) {
        op->result = -ENOENT;
        return 0;
    }

fail:
    return store__sqlite_fail(s, rc, "revocation of API key %" PRId64 " (write %zu of %zu)",
                              key->id, index + 1, count);
}

/*
 * Copies the current row of STMT_LIST_KEYS into *key. Returns 0, or -EILSEQ
 * with the connection's error set when a value does not fit struct
 * store_key, which only a change made outside shortd can cause.
 */
static int read_key(struct sqlite_store *s, sqlite3_stmt *stmt, struct store_key *key)
{
    const void *hash = sqlite3_column_blob(stmt, 1);
    size_t hash_len = (size_t)sqlite3_column_bytes(stmt, 1);
    const unsigned char *name = sqlite3_column_text(stmt, 2);
    size_t name_len = (size_t)sqlite3_column_bytes(stmt, 2);
    int64_t rate = sqlite3_column_int64(stmt, 5);
    int64_t burst = sqlite3_column_int64(stmt, 6);

    memset(key, 0, sizeof(*key));
    key->id = sqlite3_column_int64(stmt, 0);

    if (hash == NULL || hash_len != STORE_KEY_HASH_BYTES || name_len > STORE_KEY_NAME_MAX ||
        rate < 0 || rate > UINT32_MAX || burst < 0 || burst > UINT32_MAX) {
        store__set_error(&s->base,
                         "read of API key %" PRId64 " failed: its hash is not %d bytes, its "
                         "name is longer than %d bytes, or its rate or burst is out of range",
                         key->id, STORE_KEY_HASH_BYTES, STORE_KEY_NAME_MAX);
        return -EILSEQ;
    }

    memcpy(key->hash, hash, hash_len);
    if (name != NULL && name_len > 0) /* a row inserted without a name has NULL */
        memcpy(key->name, name, name_len);
    key->name[name_len] = '\0';
    key->created_at = sqlite3_column_int64(stmt, 3);
    key->revoked_at = sqlite3_column_int64(stmt, 4);
    key->rate = (uint32_t)rate;
    key->burst = (uint32_t)burst;
    return 0;
}

int store__sqlite_list_keys(struct store *store, int (*fn)(const struct store_key *key, void *arg),
                            void *arg)
{
    struct sqlite_store *s = store__sqlite_from(store);
    sqlite3_stmt *stmt = s->stmt[STMT_LIST_KEYS];
    struct store_key key;
    int listed = 0;
    int err = 0;
    int rc;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        err = read_key(s, stmt, &key);
        if (err < 0)
            break;

        listed++;
        if (fn(&key, arg) != 0)
            break;
    }
    if (err == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = store__sqlite_fail(s, rc, "listing of API keys");

    (void)sqlite3_reset(stmt); /* would repeat the error already recorded */
    return err < 0 ? err : listed;
}
