/* The tests' own PostgreSQL server (pgtest.c). */
#ifndef MIEN_PGTEST_H
#define MIEN_PGTEST_H

/* Unchecked fixture: start the server once in the runner process (atexit stops it). A
 * failure is kept and reported by pg_fresh_db. */
void pg_start(void);
/* conninfo URI of database db on the test server. */
const char *pg_uri(const char *db);
/* Run constant SQL on database db (CREATE DATABASE takes no parameters; names are ours). */
void pg_admin(const char *db, const char *sql);
/* One integer from a query on the database at uri. */
long long pg_query_int(const char *uri, const char *sql);
/* The database name of a test URI. */
const char *pg_db_of(const char *uri);
/* A fresh, empty database; its URI. Fails the test when the server could not start. */
const char *pg_fresh_db(void);

#endif
