/* API keys: a small SQLite file of SHA-256 digests (keys.h). */
#include "server/keys.h"

#include "core/sha256.h"
#include "mien.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct srv_keys {
    sqlite3 *db;
    pthread_mutex_t lock;     /* serialises every call (and guards msg) */
    char msg[512];            /* last error */
};

const char *srv_role_name(srv_role r) {
    return r == SRV_ROLE_ADMIN ? "admin" : r == SRV_ROLE_READ ? "read" : "none";
}

srv_role srv_role_parse(const char *s) {
    if (!s) return SRV_ROLE_NONE;
    if (!strcmp(s, "admin")) return SRV_ROLE_ADMIN;
    if (!strcmp(s, "read")) return SRV_ROLE_READ;
    return SRV_ROLE_NONE;
}

const char *srv_service_name(srv_service s) {
    return s == SRV_SERVICE_RECOGNITION    ? "recognition"
           : s == SRV_SERVICE_DETECTION    ? "detection"
           : s == SRV_SERVICE_VERIFICATION ? "verification"
                                           : "";
}

int srv_service_parse(const char *s) {
    if (!s || !*s) return SRV_SERVICE_ANY;
    if (!strcmp(s, "recognition")) return SRV_SERVICE_RECOGNITION;
    if (!strcmp(s, "detection")) return SRV_SERVICE_DETECTION;
    if (!strcmp(s, "verification")) return SRV_SERVICE_VERIFICATION;
    return -1;
}

static int fail(srv_keys *k, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(k->msg, sizeof k->msg, fmt, ap);
    va_end(ap);
    return status;
}

int srv_keys_default_path(char *buf, size_t size) {
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && *xdg) n = snprintf(buf, size, "%s/mien/keys.db", xdg);
    else if (home && *home) n = snprintf(buf, size, "%s/.local/share/mien/keys.db", home);
    else return MIEN_ENOTFOUND;
    return n < 0 || (size_t)n >= size ? MIEN_ETOOBIG : MIEN_OK;
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS keys ("
    " name TEXT PRIMARY KEY,"
    " role TEXT NOT NULL CHECK (role IN ('read','admin')),"
    " sha256 TEXT NOT NULL UNIQUE,"
    " created INTEGER NOT NULL,"
    " service TEXT NOT NULL DEFAULT '',"
    " collection TEXT NOT NULL DEFAULT '');";

/* Keys files made before services existed lack the last two columns: every key there is a
 * mien key (service ''). */
static int add_missing_columns(srv_keys *k) {
    sqlite3_stmt *st = NULL;
    int have = 0;
    if (sqlite3_prepare_v2(k->db, "SELECT count(*) FROM pragma_table_info('keys') WHERE name IN "
                           "('service', 'collection')", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        have = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (have == 2) return MIEN_OK;
    char *err = NULL;
    int rc = sqlite3_exec(k->db, "BEGIN IMMEDIATE;"
                          "ALTER TABLE keys ADD COLUMN service TEXT NOT NULL DEFAULT '';"
                          "ALTER TABLE keys ADD COLUMN collection TEXT NOT NULL DEFAULT '';"
                          "COMMIT;", NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        sqlite3_exec(k->db, "ROLLBACK", NULL, NULL, NULL);
        /* Another process may have added them meanwhile. */
        int again = 0;
        if (sqlite3_prepare_v2(k->db, "SELECT count(*) FROM pragma_table_info('keys') WHERE name "
                               "IN ('service', 'collection')", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            again = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        if (again == 2) {
            sqlite3_free(err);
            return MIEN_OK;
        }
        fail(k, MIEN_EIO, "keys file: upgrading it: %s", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return MIEN_EIO;
    }
    return MIEN_OK;
}

int srv_keys_open(const char *path, int create, srv_keys **out) {
    *out = NULL;
    srv_keys *k = calloc(1, sizeof *k);
    if (!k) return MIEN_ENOMEM;
    pthread_mutex_init(&k->lock, NULL);
    *out = k;
    if (!path || !*path) return fail(k, MIEN_EINVAL, "no keys file given");
    if (create) {
        /* Create it private: the digests are not secrets, but the list of names is nobody
         * else's business either. */
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return fail(k, MIEN_EIO, "cannot create keys file %s: %s", path, strerror(errno));
        close(fd);
    } else if (access(path, F_OK) != 0) {
        return fail(k, MIEN_ENOTFOUND, "keys file %s does not exist (create a key with 'mien keys add')", path);
    }
    int rc = sqlite3_open_v2(path, &k->db,
                             create ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                    : SQLITE_OPEN_READWRITE,
                             NULL);
    if (rc != SQLITE_OK)
        return fail(k, MIEN_EIO, "cannot open keys file %s: %s", path,
                    k->db ? sqlite3_errmsg(k->db) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(k->db, 5000);
    char *err = NULL;
    if (sqlite3_exec(k->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        fail(k, MIEN_EFORMAT, "%s is not a mien keys file: %s", path, err ? err : "?");
        sqlite3_free(err);
        return MIEN_EFORMAT;
    }
    return add_missing_columns(k);
}

void srv_keys_close(srv_keys *k) {
    if (!k) return;
    sqlite3_close(k->db);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

const char *srv_keys_errmsg(const srv_keys *k) {
    return k ? k->msg : "out of memory";
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= SRV_KEY_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._@-", s[i])) return 0;
    return 1;
}

static const char hexd[] = "0123456789abcdef";

int srv_keys_add(srv_keys *k, const char *name, srv_role role, char key[SRV_KEY_LEN + 1],
                 char name_out[SRV_KEY_NAME_MAX]) {
    return srv_keys_add_service(k, name, role, SRV_SERVICE_ANY, NULL, key, name_out, NULL);
}

/* A collection name as the gallery takes it (store.h: gallery_collection_name_check). */
static int collection_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n >= SRV_COLLECTION_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) return 0;
    return 1;
}

int srv_keys_add_service(srv_keys *k, const char *name, srv_role role, srv_service service,
                         const char *collection, char key[SRV_KEY_LEN + 1],
                         char name_out[SRV_KEY_NAME_MAX], char collection_out[SRV_COLLECTION_MAX]) {
    if (role != SRV_ROLE_READ && role != SRV_ROLE_ADMIN)
        return fail(k, MIEN_EINVAL, "role must be read or admin");
    if (name && *name && !name_ok(name))
        return fail(k, MIEN_EINVAL, "key name '%s': use 1 to %d characters of A-Z a-z 0-9 . _ @ -",
                    name, SRV_KEY_NAME_MAX - 1);
    if (service < SRV_SERVICE_ANY || service > SRV_SERVICE_VERIFICATION)
        return fail(k, MIEN_EINVAL, "service must be recognition, detection or verification");
    if (collection && *collection && service != SRV_SERVICE_RECOGNITION)
        return fail(k, MIEN_EINVAL, "only a recognition key works on a collection (%s keys "
                    "touch none)", service == SRV_SERVICE_ANY ? "mien" : srv_service_name(service));
    if (collection && *collection && !collection_ok(collection))
        return fail(k, MIEN_EINVAL, "collection name '%s': use 1 to %d characters of A-Z a-z 0-9 "
                    ". _ - (not starting with '.')", collection, SRV_COLLECTION_MAX - 1);
    unsigned char raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t r = getrandom(raw + got, sizeof raw - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return fail(k, MIEN_EIO, "getrandom: %s", strerror(errno));
        got += (size_t)r;
    }
    memcpy(key, "mien_", 5);
    for (size_t i = 0; i < sizeof raw; i++) {
        key[5 + 2 * i] = hexd[raw[i] >> 4];
        key[6 + 2 * i] = hexd[raw[i] & 15];
    }
    key[SRV_KEY_LEN] = '\0';
    char digest[65], nm[SRV_KEY_NAME_MAX], coll[SRV_COLLECTION_MAX] = "";
    gallery_sha256_of(key, SRV_KEY_LEN, digest);
    if (name && *name) snprintf(nm, sizeof nm, "%s", name);
    else snprintf(nm, sizeof nm, "key-%.8s", digest);
    if (service == SRV_SERVICE_RECOGNITION) {
        /* Without one named, a collection of its own, as each CompreFace service has. */
        snprintf(coll, sizeof coll, "%s", collection && *collection ? collection : nm);
        if (!collection_ok(coll)) {
            memset(key, 0, SRV_KEY_LEN + 1);
            return fail(k, MIEN_EINVAL, "the key name '%s' is not a collection name: give "
                        "--collection NAME (A-Z a-z 0-9 . _ -)", nm);
        }
    }
    pthread_mutex_lock(&k->lock);
    sqlite3_stmt *st = NULL;
    int status = MIEN_OK;
    if (sqlite3_prepare_v2(k->db, "INSERT INTO keys(name, role, sha256, created, service, "
                           "collection) VALUES (?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK) {
        status = fail(k, MIEN_EIO, "keys file: %s", sqlite3_errmsg(k->db));
    } else {
        sqlite3_bind_text(st, 1, nm, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, srv_role_name(role), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, digest, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
        sqlite3_bind_text(st, 5, srv_service_name(service), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, coll, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_CONSTRAINT) status = fail(k, MIEN_EINVAL, "a key named '%s' exists already", nm);
        else if (rc != SQLITE_DONE) status = fail(k, MIEN_EIO, "keys file: %s", sqlite3_errmsg(k->db));
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&k->lock);
    if (status == MIEN_OK && name_out) memcpy(name_out, nm, sizeof nm);
    if (status == MIEN_OK && collection_out) memcpy(collection_out, coll, sizeof coll);
    if (status != MIEN_OK) memset(key, 0, SRV_KEY_LEN + 1);
    return status;
}

int srv_keys_list(srv_keys *k, srv_key_info **out, int *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&k->lock);
    sqlite3_stmt *st = NULL;
    int status = MIEN_OK, count = 0, cap = 0;
    srv_key_info *v = NULL;
    if (sqlite3_prepare_v2(k->db, "SELECT name, role, sha256, created, service, collection FROM "
                           "keys ORDER BY name", -1, &st, NULL) != SQLITE_OK) {
        status = fail(k, MIEN_EIO, "keys file: %s", sqlite3_errmsg(k->db));
    } else {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (count == cap) {
                cap = cap ? 2 * cap : 16;
                srv_key_info *w = realloc(v, (size_t)cap * sizeof *v);
                if (!w) {
                    status = fail(k, MIEN_ENOMEM, "out of memory");
                    break;
                }
                v = w;
            }
            srv_key_info *ki = &v[count++];
            memset(ki, 0, sizeof *ki);
            snprintf(ki->name, sizeof ki->name, "%s", (const char *)sqlite3_column_text(st, 0));
            ki->role = srv_role_parse((const char *)sqlite3_column_text(st, 1));
            const char *d = (const char *)sqlite3_column_text(st, 2);
            snprintf(ki->prefix, sizeof ki->prefix, "%.8s", d ? d : "");
            ki->created = sqlite3_column_int64(st, 3);
            int sv = srv_service_parse((const char *)sqlite3_column_text(st, 4));
            ki->service = sv < 0 ? SRV_SERVICE_ANY : (srv_service)sv;
            const char *cl = (const char *)sqlite3_column_text(st, 5);
            snprintf(ki->collection, sizeof ki->collection, "%s", cl ? cl : "");
        }
        if (status == MIEN_OK && rc != SQLITE_DONE)
            status = fail(k, MIEN_EIO, "keys file: %s", sqlite3_errmsg(k->db));
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&k->lock);
    if (status != MIEN_OK) {
        free(v);
        return status;
    }
    *out = v;
    *n = count;
    return MIEN_OK;
}

int srv_keys_remove(srv_keys *k, const char *name) {
    pthread_mutex_lock(&k->lock);
    sqlite3_stmt *st = NULL;
    int status = MIEN_OK;
    if (sqlite3_prepare_v2(k->db, "DELETE FROM keys WHERE name = ?", -1, &st, NULL) != SQLITE_OK) {
        status = fail(k, MIEN_EIO, "keys file: %s", sqlite3_errmsg(k->db));
    } else {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) status = fail(k, MIEN_EIO, "keys file: %s", sqlite3_errmsg(k->db));
        else if (sqlite3_changes(k->db) == 0) status = fail(k, MIEN_ENOTFOUND, "no key named '%s'", name);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&k->lock);
    return status;
}

void srv_keys_grant(srv_keys *k, const char *key, srv_grant *out) {
    memset(out, 0, sizeof *out);
    if (!k || !key) return;
    /* Only well-formed keys reach the file: "mien_" and 64 lowercase hex digits. */
    if (strlen(key) != SRV_KEY_LEN || strncmp(key, "mien_", 5) != 0) return;
    for (int i = 5; i < SRV_KEY_LEN; i++)
        if (!strchr(hexd, key[i]) || !key[i]) return;
    char digest[65];
    gallery_sha256_of(key, SRV_KEY_LEN, digest);
    pthread_mutex_lock(&k->lock);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(k->db, "SELECT role, service, collection, name FROM keys WHERE sha256 = ?",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, digest, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            int sv = srv_service_parse((const char *)sqlite3_column_text(st, 1));
            const char *cl = (const char *)sqlite3_column_text(st, 2);
            const char *nm = (const char *)sqlite3_column_text(st, 3);
            /* A row this version cannot read grants nothing. */
            if (sv >= 0) {
                out->role = srv_role_parse((const char *)sqlite3_column_text(st, 0));
                out->service = (srv_service)sv;
                snprintf(out->collection, sizeof out->collection, "%s", cl ? cl : "");
                snprintf(out->name, sizeof out->name, "%s", nm ? nm : "");
            }
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&k->lock);
}

srv_role srv_keys_check(srv_keys *k, const char *key) {
    srv_grant g;
    srv_keys_grant(k, key, &g);
    return g.role;
}
