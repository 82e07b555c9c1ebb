/*
 * Setup of a SQLite database for the store: the folder and the file, the
 * connection's pragmas and the schema migrations, plus the mapping of SQLite
 * result codes to errno values that sqlite.c shares.
 *
 * The schema is built by migrations[], applied in order, each in its own
 * transaction together with the PRAGMA user_version that counts it. A
 * database whose user_version is higher than the number of migrations was
 * written by a newer shortd and is rejected rather than misread.
 */
#include "store/sqlite_setup.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "store/backend.h"

/*
 * How long a connection waits for a lock held by another connection before
 * the call fails with -EBUSY, in ms. A group commit holds the write lock for
 * one batch and one fsync, normally milliseconds, so 5 s only runs out when
 * another process keeps the database locked, which the log should show.
 */
#define BUSY_TIMEOUT_MS 5000

/* Schema steps; migration i (from 1) brings user_version from i - 1 to i. */
static const char *const migrations[] = {
    /*
     * 1: the initial schema. Times are Unix ms, day in visits_daily is days
     * since 1970-01-01 UTC, and NULL means "none" where store.h uses 0.
     * url_hash is the first 8 bytes of the BLAKE2b-256 digest of url, read as
     * a little-endian signed integer (url_hash in sqlite.c), for a later
     * deduplication index.
     */
    "CREATE TABLE api_keys ("
    " id INTEGER PRIMARY KEY,"
    " key_hash BLOB NOT NULL UNIQUE,"
    " name TEXT,"
    " created_at INTEGER NOT NULL,"
    " revoked_at INTEGER"
    ") STRICT;"
    "CREATE TABLE links ("
    " id INTEGER PRIMARY KEY,"
    " code TEXT NOT NULL UNIQUE,"
    " url TEXT NOT NULL,"
    " url_hash INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER,"
    " max_visits INTEGER,"
    " visits INTEGER NOT NULL DEFAULT 0,"
    " redirect_status INTEGER NOT NULL,"
    " owner_key_id INTEGER REFERENCES api_keys (id),"
    " deleted_at INTEGER"
    ") STRICT;"
    "CREATE TABLE visits_daily ("
    " link_id INTEGER NOT NULL REFERENCES links (id),"
    " day INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (link_id, day)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE settings ("
    " name TEXT NOT NULL PRIMARY KEY,"
    " value BLOB NOT NULL"
    ") STRICT;",

    /*
     * 2: aliases, cache lifetimes, expiry marks, referrer statistics and key
     * rate limits. cache_max_age is in seconds and NULL when unset. A query
     * can use a partial index only when its WHERE clause contains every term
     * of the index's WHERE clause, so the queries in sqlite_links.c and
     * sqlite.c repeat these terms word for word.
     */
    "ALTER TABLE links ADD COLUMN is_alias INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE links ADD COLUMN cache_max_age INTEGER;"
    "ALTER TABLE links ADD COLUMN expired_at INTEGER;"
    "CREATE INDEX links_dedupe ON links (url_hash)"
    " WHERE deleted_at IS NULL AND is_alias = 0 AND expires_at IS NULL"
    " AND max_visits IS NULL;"
    "CREATE INDEX links_owner ON links (owner_key_id, id) WHERE owner_key_id IS NOT NULL;"
    "CREATE INDEX links_expiry ON links (expires_at)"
    " WHERE deleted_at IS NULL AND expires_at IS NOT NULL AND expired_at IS NULL;"
    "CREATE TABLE visits_referrers ("
    " link_id INTEGER NOT NULL REFERENCES links (id),"
    " day INTEGER NOT NULL,"
    " host TEXT NOT NULL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (link_id, day, host)"
    ") STRICT, WITHOUT ROWID;"
    "ALTER TABLE api_keys ADD COLUMN rate INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE api_keys ADD COLUMN burst INTEGER NOT NULL DEFAULT 0;",

    /*
     * 3: links.visits stops growing; a link's total is the sum of its
     * visits_daily rows, which already hold every visit flushed so far.
     */
    "UPDATE links SET visits = 0;",
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

int store__sqlite_schema_version(void)
{
    return MIGRATION_COUNT;
}

int store__sqlite_errno(sqlite3 *db, int code)
{
    int system_errno;

    if (code == SQLITE_IOERR_NOMEM)
        return -ENOMEM;

    switch (code & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EILSEQ;
    case SQLITE_CONSTRAINT:
        /* A value the schema rejects, such as an id already in use. */
        return -EINVAL;
    case SQLITE_CANTOPEN:
        system_errno = db != NULL ? sqlite3_system_errno(db) : 0;
        if (system_errno == EPERM)
            return -EACCES;
        return system_errno > 0 ? -system_errno : -ENOENT;
    default:
        return -EIO;
    }
}

const char *store__sqlite_message(sqlite3 *db, int code)
{
    if (db == NULL || sqlite3_errcode(db) == SQLITE_OK)
        return sqlite3_errstr(code);
    return sqlite3_errmsg(db);
}

/*
 * Creates the folders leading to path, like mkdir -p with mode 0755 (less
 * the umask). Returns 0 or a negative errno with a message in error.
 */
static int make_parent_folders(const char *path, char *error, size_t error_len)
{
    struct stat info;
    char *folder;
    char *slash;
    char *p;
    int err = 0;

    folder = strdup(path);
    if (folder == NULL) {
        store__format_error(error, error_len, "out of memory");
        return -ENOMEM;
    }

    /* A path without a folder part lives in the current folder or in /. */
    slash = strrchr(folder, '/');
    if (slash == NULL || slash == folder)
        goto done;
    *slash = '\0';
    if (stat(folder, &info) == 0 && S_ISDIR(info.st_mode))
        goto done;

    for (p = folder + 1;; p++) {
        char saved = *p;

        if (saved != '/' && saved != '\0')
            continue;

        *p = '\0';
        if (mkdir(folder, 0755) != 0 && errno != EEXIST) {
            err = -errno;
            store__format_error(error, error_len, "creating folder %s for the database failed: %s",
                                folder, strerror(errno));
            goto done;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }

done:
    free(folder);
    return err;
}

/*
 * Creates the database file when it is missing. SQLite would create it too,
 * but when that fails it retries the open read-only and reports the errno of
 * the retry (ENOENT) instead of the cause (EACCES, EROFS, ENOSPC). An empty
 * file is a valid new database for SQLite. Returns 0 or a negative errno
 * with a message in error.
 */
static int create_file_if_missing(const char *path, char *error, size_t error_len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    int err;

    if (fd >= 0) {
        (void)close(fd); /* nothing was written, so there is nothing to lose */
        return 0;
    }
    if (errno == EEXIST)
        return 0;

    err = -errno;
    store__format_error(error, error_len, "creating database file %s failed: %s", path,
                        strerror(errno));
    return err;
}

/* Reads PRAGMA user_version; returns SQLITE_OK or an error code. */
static int read_user_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *stmt;
    int rc;

    rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;

    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(stmt, 0);
        rc = SQLITE_OK;
    }
    (void)sqlite3_finalize(stmt); /* would repeat the error that rc already has */
    return rc;
}

static int reject_newer_schema(const char *path, int version, char *error, size_t error_len)
{
    store__format_error(error, error_len,
                        "database %s has schema version %d, but this shortd knows versions up "
                        "to %d: run a newer shortd or restore a backup made by this one",
                        path, version, MIGRATION_COUNT);
    return -ENOTSUP;
}

/*
 * Brings the schema up to MIGRATION_COUNT. Each step rereads user_version
 * under the write lock, because another process opening the same new
 * database may have applied that step while this one waited.
 */
static int migrate(sqlite3 *db, const char *path, char *error, size_t error_len)
{
    char sql[64];
    int version = 0;
    int rc;

    rc = read_user_version(db, &version);
    if (rc != SQLITE_OK)
        goto fail;

    while (version >= 0 && version < MIGRATION_COUNT) {
        int applied = 0;

        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = read_user_version(db, &version);
        if (rc == SQLITE_OK && version >= 0 && version < MIGRATION_COUNT) {
            (void)snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version + 1);
            rc = sqlite3_exec(db, migrations[version], NULL, NULL, NULL);
            if (rc == SQLITE_OK)
                rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
            applied = 1;
        }
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            goto fail;
        version += applied;
    }

    if (version < 0 || version > MIGRATION_COUNT)
        return reject_newer_schema(path, version, error, error_len);
    return 0;

fail:
    store__format_error(error, error_len,
                        "migration of database %s to schema version %d failed: %s", path,
                        version + 1, store__sqlite_message(db, rc));
    rc = store__sqlite_errno(db, rc);
    if (!sqlite3_get_autocommit(db))
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* the failure is already reported */
    return rc;
}

/*
 * Runs a journal_mode pragma and copies the mode it returns into mode.
 * Returns SQLITE_OK or an error code.
 */
static int run_journal_mode_pragma(sqlite3 *db, const char *sql, char *mode, size_t mode_cap)
{
    sqlite3_stmt *stmt;
    const char *text;
    int rc;

    rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;

    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        text = (const char *)sqlite3_column_text(stmt, 0);
        (void)snprintf(mode, mode_cap, "%s", text != NULL ? text : "unknown");
        rc = SQLITE_OK;
    }
    (void)sqlite3_finalize(stmt); /* would repeat the error that rc already has */
    return rc;
}

/*
 * Puts the database in WAL mode. The mode is stored in the file, so only the
 * first open of a new database converts it. The conversion needs an
 * exclusive lock, and SQLite returns SQLITE_BUSY for it at once without
 * calling the busy handler (seen with SQLite 3.40 when several connections
 * open a new file together), so this function retries it for up to
 * BUSY_TIMEOUT_MS. Returns SQLITE_OK with the journal mode now in force in
 * mode, which is not "wal" where WAL cannot work, or an error code.
 */
static int use_wal_mode(sqlite3 *db, char *mode, size_t mode_cap)
{
    int waited_ms = 0;
    int delay_ms = 1;
    int rc;

    for (;;) {
        rc = run_journal_mode_pragma(db, "PRAGMA journal_mode", mode, mode_cap);
        if (rc == SQLITE_OK && strcasecmp(mode, "wal") == 0)
            return SQLITE_OK;
        if (rc == SQLITE_OK)
            rc = run_journal_mode_pragma(db, "PRAGMA journal_mode = WAL", mode, mode_cap);
        if (rc == SQLITE_OK)
            return SQLITE_OK;

        if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= BUSY_TIMEOUT_MS)
            return rc;
        (void)sqlite3_sleep(delay_ms); /* returns the time slept */
        waited_ms += delay_ms;
        if (delay_ms < 50)
            delay_ms *= 2;
    }
}

/* Sets the connection's pragmas. Returns 0 or a negative errno with a message in error. */
static int configure(sqlite3 *db, const char *path, char *error, size_t error_len)
{
    char mode[32];
    int rc;

    rc = sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        goto fail;

    rc = use_wal_mode(db, mode, sizeof(mode));
    if (rc == SQLITE_OK && strcasecmp(mode, "wal") != 0) {
        store__format_error(error, error_len,
                            "database %s cannot use WAL mode: its journal mode stays %s", path,
                            mode);
        return -EIO;
    }
    if (rc != SQLITE_OK)
        goto fail;

    rc = sqlite3_exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    return 0;

fail:
    store__format_error(error, error_len, "opening database %s failed: %s", path,
                        store__sqlite_message(db, rc));
    return store__sqlite_errno(db, rc);
}

/*
 * SQLite reads ":memory:" and, because Debian builds it with URI filenames
 * on, "file:..." as special names. Prefixing "./" keeps them plain paths.
 */
static char *plain_path(const char *path)
{
    char *copy;

    if (strcmp(path, ":memory:") != 0 && strncmp(path, "file:", 5) != 0)
        return strdup(path);

    copy = malloc(strlen(path) + 3);
    if (copy != NULL) {
        memcpy(copy, "./", 2);
        memcpy(copy + 2, path, strlen(path) + 1);
    }
    return copy;
}

int store__sqlite_prepare_file(const char *path, char **file, char *error, size_t error_len)
{
    int err;

    *file = NULL;
    err = make_parent_folders(path, error, error_len);
    if (err == 0)
        err = create_file_if_missing(path, error, error_len);
    if (err < 0)
        return err;

    *file = plain_path(path);
    if (*file == NULL) {
        store__format_error(error, error_len, "opening database %s failed: out of memory", path);
        return -ENOMEM;
    }
    return 0;
}

int store__sqlite_configure(sqlite3 *db, const char *path, char *error, size_t error_len)
{
    int err = configure(db, path, error, error_len);

    if (err == 0)
        err = migrate(db, path, error, error_len);
    return err;
}
