/*
 * Private interface between sqlite.c and sqlite_setup.c: preparing a
 * database file and a new connection for the store, and mapping SQLite
 * result codes to errno values.
 */
#ifndef SHORTD_STORE_SQLITE_SETUP_H
#define SHORTD_STORE_SQLITE_SETUP_H

#include <sqlite3.h>
#include <stddef.h>

/*
 * Creates the folders leading to path (like mkdir -p, mode 0755 less the
 * umask) and the database file when they are missing. On success sets *file
 * to the name to pass to sqlite3_open_v2, which the caller frees. Returns 0
 * or a negative errno with a message in error.
 */
int store__sqlite_prepare_file(const char *path, char **file, char *error, size_t error_len);

/*
 * Sets the pragmas of a new connection (busy timeout, WAL, synchronous=FULL,
 * foreign keys) and migrates the schema to store__sqlite_schema_version().
 * Returns 0 or a negative errno with a message in error: -ENOTSUP for a
 * database from a newer shortd.
 */
int store__sqlite_configure(sqlite3 *db, const char *path, char *error, size_t error_len);

/*
 * Returns the schema version that store__sqlite_configure migrates a
 * database to: the number of migrations it contains.
 */
int store__sqlite_schema_version(void);

/* Maps a SQLite result code, primary or extended, to a negative errno. */
int store__sqlite_errno(sqlite3 *db, int code);

/* Returns SQLite's message for the failure code that db just reported. */
const char *store__sqlite_message(sqlite3 *db, int code);

#endif
