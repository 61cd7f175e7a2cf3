/* A PostgreSQL server of the tests' own (the gallery tests, the compatibility tests): initdb
 * and pg_ctl in a temporary folder, listening on a Unix socket there only, stopped when the
 * runner exits, and a fresh database per gallery. Missing PostgreSQL binaries fail the cases
 * that need it with a message; they are never skipped. */
#include "pgtest.h"
#include "testutil.h"

#include <check.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* tu_path's buffers rotate: keep URIs in a pool of our own. */
static const char *keep(const char *p) {
    static char pool[32][256];
    static int next;
    ck_assert(p != NULL && strlen(p) < sizeof pool[0]);
    char *b = pool[next++ & 31];
    snprintf(b, sizeof pool[0], "%s", p);
    return b;
}

static struct {
    int started;            /* in the runner process, once */
    pid_t owner;            /* that process: forked tests must not stop the server */
    char dir[128];          /* temporary folder: data/, the socket, logs */
    char bin[256];          /* PostgreSQL server binaries */
    char why[1024];         /* why it could not start, or "" */
} pg;

/* Run a PostgreSQL program as the postgres user when we are root (initdb and postgres
 * refuse to run as root), else as ourselves. Returns the exit status. */
static int pg_run(const char *args) {
    char cmd[2048];
    if (geteuid() == 0)
        snprintf(cmd, sizeof cmd, "runuser -u postgres -- %s/%s", pg.bin, args);
    else
        snprintf(cmd, sizeof cmd, "%s/%s", pg.bin, args);
    int rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void pg_stop(void) {
    if (!pg.started || getpid() != pg.owner) return;
    char args[512];
    snprintf(args, sizeof args, "pg_ctl -D %s/data -m immediate -w stop >/dev/null 2>&1", pg.dir);
    pg_run(args);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", pg.dir);
    if (system(cmd) != 0) { /* a left-over folder in /tmp is harmless */ }
    pg.started = 0;
}

/* Unchecked fixture of the pg_* TCases: runs in the runner process, so one server serves
 * every test and atexit stops it whatever the tests did. */
void pg_start(void) {
    if (pg.started || pg.why[0]) return;
    const char *bin = getenv("MIEN_PG_BIN") ? getenv("MIEN_PG_BIN") : "/usr/lib/postgresql/15/bin";
    snprintf(pg.bin, sizeof pg.bin, "%s", bin);
    char p[512];
    snprintf(p, sizeof p, "%s/initdb", bin);
    if (access(p, X_OK) != 0) {
        snprintf(pg.why, sizeof pg.why, "PostgreSQL server binaries not found (%s): install "
                 "postgresql-15 (scripts/setup.sh) or set MIEN_PG_BIN", p);
        return;
    }
    struct passwd *pw = NULL;
    if (geteuid() == 0 && !(pw = getpwnam("postgres"))) {
        snprintf(pg.why, sizeof pg.why, "running as root, and there is no 'postgres' user to run "
                 "the PostgreSQL server as");
        return;
    }
    snprintf(pg.dir, sizeof pg.dir, "/tmp/mien-pg-XXXXXX");
    if (!mkdtemp(pg.dir)) {
        snprintf(pg.why, sizeof pg.why, "mkdtemp: cannot make a temporary folder");
        return;
    }
    if (pw && chown(pg.dir, pw->pw_uid, pw->pw_gid) != 0) {
        snprintf(pg.why, sizeof pg.why, "cannot give %s to the postgres user", pg.dir);
        return;
    }
    pg.owner = getpid();
    pg.started = 1; /* from here on, pg_stop cleans up */
    atexit(pg_stop);
    char args[1024];
    snprintf(args, sizeof args, "initdb -D %s/data -A trust -U mien -E UTF8 --locale=C --no-sync "
             ">%s/initdb.log 2>&1", pg.dir, pg.dir);
    if (pg_run(args) != 0) {
        snprintf(pg.why, sizeof pg.why, "initdb failed: see %s/initdb.log", pg.dir);
        return;
    }
    /* Only a Unix socket in our folder: nothing else on the machine can reach it. Durability
     * is not what these tests measure. */
    snprintf(args, sizeof args, "pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-c "
             "listen_addresses='' -k %s -c fsync=off -c synchronous_commit=off -c "
             "full_page_writes=off\" start >/dev/null 2>&1", pg.dir, pg.dir, pg.dir);
    if (pg_run(args) != 0) {
        snprintf(pg.why, sizeof pg.why, "pg_ctl start failed: see %s/server.log", pg.dir);
        return;
    }
}

/* conninfo URI of database db on the test server. */
const char *pg_uri(const char *db) {
    return keep(tu_path("postgresql:///%s?host=%s&user=mien", db, pg.dir));
}

/* Run constant SQL on database db of the test server (CREATE DATABASE cannot take
 * parameters; the names here are the test's own). */
void pg_admin(const char *db, const char *sql) {
    PGconn *c = PQconnectdb(pg_uri(db));
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "test server: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* One integer from a query on the gallery at uri. */
long long pg_query_int(const char *uri, const char *sql) {
    PGconn *c = PQconnectdb(uri);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
                  PQresultErrorMessage(r));
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The database name of a test URI. */
const char *pg_db_of(const char *uri) {
    const char *d = uri + strlen("postgresql:///");
    return keep(tu_path("%.*s", (int)strcspn(d, "?"), d));
}

/* A fresh, empty database on the test server. */
const char *pg_fresh_db(void) {
    ck_assert_msg(pg.started && !pg.why[0], "PostgreSQL test server: %s",
                  pg.why[0] ? pg.why : "not started (pg_start fixture missing)");
    static int n;
    char db[64], sql[128];
    snprintf(db, sizeof db, "g%ld_%d", (long)getpid(), n++);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
    pg_admin("postgres", sql);
    return pg_uri(db);
}
