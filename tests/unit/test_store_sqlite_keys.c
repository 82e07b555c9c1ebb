/*
 * Tests of API keys in the SQLite store: the KEY_CREATE and KEY_REVOKE ops
 * of store_apply, store_list_keys, and links that name their owner key. The
 * fixture and its fault injection are described in store_fixture.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"

#include "store_fixture.h"

#define T0 1700000000000 /* ms, a time in 2023 that the tests count from */

static void fill_key_create(struct store_op *op, uint8_t hash_byte, const char *name)
{
    memset(op, 0, sizeof(*op));
    op->kind = STORE_OP_KEY_CREATE;
    memset(op->key.hash, hash_byte, sizeof(op->key.hash));
    (void)snprintf(op->key.name, sizeof(op->key.name), "%s", name);
    op->key.created_at = T0 + hash_byte;
    op->result = 1; /* neither 0 nor an errno, so a result left unset fails the checks */
}

static void fill_key_revoke(struct store_op *op, int64_t id, int64_t now)
{
    memset(op, 0, sizeof(*op));
    op->kind = STORE_OP_KEY_REVOKE;
    op->key.id = id;
    op->now = now;
    op->result = 1;
}

static void apply_batch(struct store *store, struct store_op *ops, size_t count)
{
    int rc = store_apply(store, ops, count);

    if (rc != 0)
        fail_msg("store_apply returned %d: %s", rc, store_last_error(store));
}

/* Keys seen by a store_list_keys callback. */
struct seen_keys {
    int count;
    int stop_after; /* return 1 after this many keys, 0 for never */
    struct store_key keys[16];
};

static int record_key(const struct store_key *key, void *arg)
{
    struct seen_keys *seen = arg;

    assert_true(seen->count < 16);
    seen->keys[seen->count++] = *key;
    return seen->stop_after > 0 && seen->count >= seen->stop_after;
}

static void key_create_sets_ids_and_fields(void **state)
{
    struct fixture *fixture = *state;
    struct seen_keys seen = {0};
    struct store_op ops[2];
    struct store *store;
    int i;

    store = open_store(fixture->path);
    fill_key_create(&ops[0], 0xa1, "deploy bot");
    ops[0].key.rate = 600;
    ops[0].key.burst = 20;
    ops[0].key.id = 99; /* ignored: the store picks the id */
    fill_key_create(&ops[1], 0xb2, "");
    ops[1].key.rate = UINT32_MAX;
    ops[1].key.burst = UINT32_MAX;
    apply_batch(store, ops, 2);
    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[0].key.id, 1);
    assert_int_equal(ops[1].result, 0);
    assert_int_equal(ops[1].key.id, 2);

    assert_int_equal(store_list_keys(store, record_key, &seen), 2);
    assert_int_equal(seen.count, 2);
    for (i = 0; i < 2; i++) {
        assert_int_equal(seen.keys[i].id, ops[i].key.id);
        assert_memory_equal(seen.keys[i].hash, ops[i].key.hash, STORE_KEY_HASH_BYTES);
        assert_string_equal(seen.keys[i].name, ops[i].key.name);
        assert_int_equal(seen.keys[i].created_at, ops[i].key.created_at);
        assert_int_equal(seen.keys[i].revoked_at, 0);
        assert_int_equal(seen.keys[i].rate, ops[i].key.rate);
        assert_int_equal(seen.keys[i].burst, ops[i].key.burst);
    }
    store_close(store);
}

static void key_create_duplicate_hash_fails_alone(void **state)
{
    struct fixture *fixture = *state;
    struct seen_keys seen = {0};
    struct store_op ops[3];
    struct store *store;

    store = open_store(fixture->path);
    fill_key_create(&ops[0], 1, "first");
    fill_key_create(&ops[1], 1, "same hash");
    fill_key_create(&ops[2], 2, "second");
    apply_batch(store, ops, 3);
    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, -EEXIST);
    assert_int_equal(ops[2].result, 0);

    /* Against a key of an earlier batch too. */
    fill_key_create(&ops[0], 2, "again");
    apply_batch(store, ops, 1);
    assert_int_equal(ops[0].result, -EEXIST);

    assert_int_equal(store_list_keys(store, record_key, &seen), 2);
    assert_string_equal(seen.keys[0].name, "first");
    assert_string_equal(seen.keys[1].name, "second");
    store_close(store);
}

static void key_create_checks_name_length(void **state)
{
    struct fixture *fixture = *state;
    struct seen_keys seen = {0};
    struct store_op ops[2];
    struct store *store;

    store = open_store(fixture->path);
    fill_key_create(&ops[0], 1, "");
    memset(ops[0].key.name, 'n', STORE_KEY_NAME_MAX);
    ops[0].key.name[STORE_KEY_NAME_MAX] = '\0';
    fill_key_create(&ops[1], 2, "");
    memset(ops[1].key.name, 'n', sizeof(ops[1].key.name)); /* no NUL: one byte too long */
    apply_batch(store, ops, 2);
    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, -EINVAL);

    assert_int_equal(store_list_keys(store, record_key, &seen), 1);
    assert_int_equal(strlen(seen.keys[0].name), STORE_KEY_NAME_MAX);
    store_close(store);
}

static void key_revoke_reports_each_case(void **state)
{
    struct fixture *fixture = *state;
    struct seen_keys seen = {0};
    struct store_op ops[5];
    struct store *store;

    store = open_store(fixture->path);
    fill_key_create(&ops[0], 1, "kept");
    fill_key_create(&ops[1], 2, "revoked");
    apply_batch(store, ops, 2);

    fill_key_revoke(&ops[0], 2, T0 + 500);
    fill_key_revoke(&ops[1], 2, T0 + 600);
    fill_key_revoke(&ops[2], 9, T0 + 600);
    fill_key_revoke(&ops[3], 0, T0 + 600);
    fill_key_revoke(&ops[4], 1, 0);
    apply_batch(store, ops, 5);
    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, -EALREADY);
    assert_int_equal(ops[2].result, -ENOENT);
    assert_int_equal(ops[3].result, -EINVAL);
    assert_int_equal(ops[4].result, -EINVAL);

    /* Revoked keys are listed, with the time of the first revocation. */
    assert_int_equal(store_list_keys(store, record_key, &seen), 2);
    assert_int_equal(seen.keys[0].id, 1);
    assert_int_equal(seen.keys[0].revoked_at, 0);
    assert_int_equal(seen.keys[1].id, 2);
    assert_int_equal(seen.keys[1].revoked_at, T0 + 500);
    store_close(store);
}

static void list_keys_stops_when_fn_returns_nonzero(void **state)
{
    struct fixture *fixture = *state;
    struct seen_keys seen = {.stop_after = 2};
    struct store_op ops[4];
    struct store *store;
    int i;

    store = open_store(fixture->path);
    assert_int_equal(store_list_keys(store, record_key, &seen), 0);
    assert_int_equal(store_list_keys(store, NULL, NULL), -EINVAL);
    for (i = 0; i < 4; i++)
        fill_key_create(&ops[i], (uint8_t)(i + 1), "key");
    apply_batch(store, ops, 4);

    assert_int_equal(store_list_keys(store, record_key, &seen), 2);
    assert_int_equal(seen.count, 2);
    assert_int_equal(seen.keys[0].id, 1);
    assert_int_equal(seen.keys[1].id, 2);
    store_close(store);
}

static void link_owner_must_name_a_key(void **state)
{
    struct fixture *fixture = *state;
    struct store_op ops[2];
    struct store_link link;
    struct store *store;

    store = open_store(fixture->path);
    fill_create(&ops[0], 1, "orphan", "https://example.com/orphan");
    ops[0].link.owner_key_id = 1;
    assert_int_equal(store_apply(store, ops, 1), -EINVAL);
    assert_int_equal(ops[0].result, -EINVAL);
    assert_contains(store_last_error(store), "FOREIGN KEY constraint failed");

    /* A key created in an earlier batch can own links, revoked or not. */
    fill_key_create(&ops[0], 1, "owner");
    apply_batch(store, ops, 1);
    fill_key_revoke(&ops[0], 1, T0 + 1);
    fill_create(&ops[1], 1, "owned", "https://example.com/owned");
    ops[1].link.owner_key_id = 1;
    apply_batch(store, ops, 2);
    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[1].result, 0);
    assert_int_equal(get_link(store, "owned", &link), 0);
    assert_int_equal(link.owner_key_id, 1);
    store_link_clear(&link);
    store_close(store);
}

static void key_create_full_disk_adds_nothing(void **state)
{
    struct fixture *fixture = *state;
    enum { BATCH = 200 };
    struct store_op ops[BATCH];
    struct seen_keys seen = {0};
    struct store *store;
    sqlite3 *db;
    int i;

    store = open_store_with_handle(fixture->path, &db);
    fill_key_create(&ops[0], 0xff, "kept");
    apply_batch(store, ops, 1);

    /* Each key takes about 200 bytes, so the batch needs about ten pages. */
    for (i = 0; i < BATCH; i++) {
        fill_key_create(&ops[i], (uint8_t)i, "");
        memset(ops[i].key.name, 'n', STORE_KEY_NAME_MAX);
        ops[i].key.name[STORE_KEY_NAME_MAX] = '\0';
    }
    fill_key_revoke(&ops[BATCH - 1], 1, T0);
    limit_pages(db, 1);
    assert_int_equal(store_apply(store, ops, BATCH), -ENOSPC);
    for (i = 0; i < BATCH; i++)
        assert_int_equal(ops[i].result, -ENOSPC);
    assert_contains(store_last_error(store), "database or disk is full");
    assert_int_equal(query_integer(fixture->path, "SELECT count(*) FROM api_keys"), 1);
    assert_int_equal(
        query_integer(fixture->path, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"), 1);

    unlimit_pages(db);
    apply_batch(store, ops, BATCH);
    assert_int_equal(ops[0].result, 0);
    assert_int_equal(ops[BATCH - 1].result, 0);
    seen.stop_after = 1;
    assert_int_equal(store_list_keys(store, record_key, &seen), 1);
    assert_int_equal(seen.keys[0].revoked_at, T0);
    store_close(store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(key_create_sets_ids_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(key_create_duplicate_hash_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(key_create_checks_name_length, setup, teardown),
        cmocka_unit_test_setup_teardown(key_revoke_reports_each_case, setup, teardown),
        cmocka_unit_test_setup_teardown(list_keys_stops_when_fn_returns_nonzero, setup, teardown),
        cmocka_unit_test_setup_teardown(link_owner_must_name_a_key, setup, teardown),
        cmocka_unit_test_setup_teardown(key_create_full_disk_adds_nothing, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
