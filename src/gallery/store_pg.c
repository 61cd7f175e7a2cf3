/* The PostgreSQL gallery store (libpq): the same three tables as SQLite (meta, subjects,
 * faces with the embedding as a little-endian float32 bytea), so that several mien
 * processes on several machines share one gallery.
 *
 * Writers are serialised by a transaction-scoped advisory lock taken in begin(), as SQLite's
 * BEGIN IMMEDIATE does: face ids then increase in commit order, which is what lets another
 * process catch up by reading only the rows past the last id it holds. Every commit adds one
 * to meta 'generation' and announces it with NOTIFY in the same transaction (delivered only
 * if it commits); a deletion or rename also records its generation in meta 'reset', after
 * which a reader reloads everything. Each connection LISTENs; poll() reads what arrived
 * without a round trip.
 *
 * Every statement with data in it goes through PQexecParams (parameters, never SQL built
 * from strings); the constant ones through PQexec. Results of scans come in binary. */
#include "gallery/store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1: one namespace of subjects (meta held the model). 2: collections, face_images. */
#define SCHEMA_VERSION 2
#define CHANNEL "mien_gallery"
/* pg_advisory_xact_lock key of the writer lock: "mien" in ASCII. */
#define WRITER_LOCK "SELECT pg_advisory_xact_lock(1835622766)"
/* Rows fetched per query of a scan (keyset pagination by id). */
#define SCAN_CHUNK 4096
#define SCAN_CHUNK_SQL "4096"

#define COLLECTIONS_SQL                                                                     \
    "CREATE TABLE IF NOT EXISTS collections(\n"                                             \
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"                               \
    "  name text NOT NULL UNIQUE,\n"                                                        \
    "  model text,                           -- embedder bound to it; NULL while empty\n"   \
    "  dim integer,\n"                                                                      \
    "  created bigint NOT NULL);\n"
#define FACE_IMAGES_SQL                                                                     \
    "CREATE TABLE IF NOT EXISTS face_images(\n"                                             \
    "  face bigint PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,\n"                   \
    "  kind text NOT NULL,                   -- 'crop' (the aligned face) or 'photo'\n"     \
    "  type text NOT NULL,                   -- media type, e.g. 'image/jpeg'\n"            \
    "  data bytea NOT NULL);\n"
#define DEFAULT_COLLECTION_SQL                                                              \
    "INSERT INTO collections(name, model, dim, created) SELECT '" GALLERY_DEFAULT_COLLECTION "', \n" \
    "  (SELECT value FROM meta WHERE key = 'model'), (SELECT value::integer FROM meta WHERE\n"  \
    "  key = 'dim'), extract(epoch FROM now())::bigint ON CONFLICT (name) DO NOTHING;\n"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(\n"
    "  key text PRIMARY KEY,\n"
    "  value text NOT NULL);\n"
    COLLECTIONS_SQL
    "CREATE TABLE IF NOT EXISTS subjects(\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  collection bigint NOT NULL REFERENCES collections(id) ON DELETE CASCADE,\n"
    "  name text NOT NULL,\n"
    "  created bigint NOT NULL,\n"
    "  UNIQUE (collection, name));\n"
    "CREATE TABLE IF NOT EXISTS faces(\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  subject bigint NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,\n"
    "  embedding bytea NOT NULL,             -- dim little-endian float32\n"
    "  model text NOT NULL,                  -- embedder name, e.g. 'dlib'\n"
    "  dim integer NOT NULL CHECK (dim > 0 AND octet_length(embedding) = 4 * dim),\n"
    "  box_x real NOT NULL DEFAULT 0, box_y real NOT NULL DEFAULT 0,\n"
    "  box_w real NOT NULL DEFAULT 0, box_h real NOT NULL DEFAULT 0,\n"
    "  image_sha256 text,                    -- source photo; NULL when unknown\n"
    "  created bigint NOT NULL);\n"
    "CREATE INDEX IF NOT EXISTS faces_subject ON faces(subject);\n"
    "CREATE UNIQUE INDEX IF NOT EXISTS faces_subject_image ON faces(subject, image_sha256);\n"
    FACE_IMAGES_SQL
    "INSERT INTO meta(key, value) VALUES ('format', 'mien-gallery'), ('schema', '2'),\n"
    "  ('generation', '0'), ('reset', '0') ON CONFLICT (key) DO NOTHING;\n"
    DEFAULT_COLLECTION_SQL;

/* Version 1 to 2 (under the writer lock): the gallery becomes the collection 'default',
 * bound to the model meta held; subject names are unique per collection from now on. The
 * generation moves and the reset with it, so that other connections load everything again. */
static const char migrate_1_2_sql[] =
    COLLECTIONS_SQL
    DEFAULT_COLLECTION_SQL
    "ALTER TABLE subjects ADD COLUMN collection bigint REFERENCES collections(id) ON DELETE CASCADE;\n"
    "UPDATE subjects SET collection = (SELECT id FROM collections WHERE name = '"
    GALLERY_DEFAULT_COLLECTION "');\n"
    "ALTER TABLE subjects ALTER COLUMN collection SET NOT NULL;\n"
    "DO $$ DECLARE c text; BEGIN\n"
    "  FOR c IN SELECT conname FROM pg_constraint WHERE conrelid = 'subjects'::regclass\n"
    "      AND contype = 'u' LOOP\n"
    "    EXECUTE format('ALTER TABLE subjects DROP CONSTRAINT %I', c);\n"
    "  END LOOP; END $$;\n"
    "ALTER TABLE subjects ADD UNIQUE (collection, name);\n"
    FACE_IMAGES_SQL
    "DELETE FROM meta WHERE key IN ('model', 'dim');\n"
    "UPDATE meta SET value = '2' WHERE key = 'schema';\n"
    "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation';\n"
    "UPDATE meta SET value = (SELECT value FROM meta WHERE key = 'generation') WHERE key = 'reset';\n";

typedef struct pg_store {
    gallery_store base;
    PGconn *conn;
    char name[512];     /* the URI without its password, for messages */
    int reset_pending;  /* this transaction deleted or renamed a subject */
    int64_t coll;       /* the collection in use (collection_use), 0 before */
    char coll_s[32];    /* the same, as a query parameter */
} pg_store;

static pg_store *P(gallery_store *st) { return (pg_store *)st; }

/* ==== URIs and errors ==== */

int gallery_store_is_pg(const char *path) {
    return path && (!strncmp(path, "postgresql://", 13) || !strncmp(path, "postgres://", 11));
}

void gallery_store_pg_redact(const char *uri, char *buf, size_t size) {
    if (!size) return;
    size_t n = 0;
    const char *p = uri, *auth = strstr(uri, "://");
    /* user:password@host: the password goes. */
    if (auth) {
        auth += 3;
        const char *end = auth + strcspn(auth, "/?");
        const char *at = NULL;
        for (const char *q = auth; q < end; q++)
            if (*q == '@') at = q;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            n = (size_t)snprintf(buf, size, "%.*s:***", (int)(colon + 1 - uri - 1), uri);
            if (n >= size) return;
            p = at;
        }
    }
    /* password=... among the query parameters. */
    while (*p && n + 1 < size) {
        if ((p[0] == '?' || p[0] == '&') && !strncmp(p + 1, "password=", 9)) {
            int k = snprintf(buf + n, size - n, "%c" "password=***", p[0]);
            n += (size_t)k < size - n ? (size_t)k : size - n - 1;
            p += 10;
            p += strcspn(p, "&");
            continue;
        }
        buf[n++] = *p++;
    }
    buf[n < size ? n : size - 1] = '\0';
}

/* libpq's message without its trailing newline. */
static const char *trim(const char *m, char *buf, size_t size) {
    snprintf(buf, size, "%s", m ? m : "");
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
    if (!n) snprintf(buf, size, "unknown error");
    return buf;
}

/* Map a failed result (or, res NULL, the connection's failure) to a mien status. */
static int pg_fail(pg_store *s, const PGresult *res, mien_err *e, const char *what) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[400];
    trim(res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn), msg, sizeof msg);
    if (res && !PQresultErrorMessage(res)[0]) trim(PQerrorMessage(s->conn), msg, sizeof msg);
    int status = MIEN_EIO;
    if (state) {
        if (!strncmp(state, "23", 2)) status = MIEN_EINVAL;          /* integrity constraint */
        else if (!strncmp(state, "22", 2)) status = MIEN_EFORMAT;    /* data exception */
        else if (!strcmp(state, "42P01") || !strcmp(state, "42703")) /* no such table, column */
            status = MIEN_EFORMAT;
        else if (!strcmp(state, "53200")) status = MIEN_ENOMEM;      /* out of memory */
        else if (!strcmp(state, "54000")) status = MIEN_ETOOBIG;     /* program limit */
    }
    if (status == MIEN_EFORMAT)
        return mien_err_set(e, status, "%s: %s: %s (damaged, or not a mien gallery)", s->name,
                            what, msg);
    return mien_err_set(e, status, "%s: %s: %s", s->name, what, msg);
}

/* Run a statement: with parameters (text, or binary where lens/fmts say so) through
 * PQexecParams, else through PQexec. *out (may be NULL) receives the result on success. */
static int run(pg_store *s, mien_err *e, const char *what, const char *sql, int n,
               const char *const *vals, const int *lens, const int *fmts, int binary,
               PGresult **out) {
    if (out) *out = NULL;
    PGresult *r = n || binary ? PQexecParams(s->conn, sql, n, NULL, vals, lens, fmts, binary)
                              : PQexec(s->conn, sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = r ? pg_fail(s, r, e, what) : pg_fail(s, NULL, e, what);
        PQclear(r);
        return rc;
    }
    if (out) *out = r;
    else PQclear(r);
    return MIEN_OK;
}

static int exec(pg_store *s, const char *sql, mien_err *e, const char *what) {
    return run(s, e, what, sql, 0, NULL, NULL, NULL, 0, NULL);
}

/* Binary result fields: network byte order. */
static int64_t get_i64(const PGresult *r, int row, int col) {
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return (int64_t)v;
}

static uint32_t get_u32(const PGresult *r, int row, int col) {
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static float get_f32(const PGresult *r, int row, int col) {
    uint32_t u = get_u32(r, row, col);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ==== Transactions and metadata ==== */

static int p_begin(gallery_store *st, mien_err *e) {
    pg_store *s = P(st);
    s->reset_pending = 0;
    int rc = exec(s, "BEGIN", e, "starting a transaction");
    /* The writer lock: a second writer (any process) waits here until this one ends. */
    return rc ? rc : exec(s, WRITER_LOCK, e, "waiting for the other writers");
}

static int p_commit(gallery_store *st, mien_err *e) {
    pg_store *s = P(st);
    PGresult *r;
    int rc = run(s, e, "committing",
                 "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'generation' "
                 "RETURNING value", 0, NULL, NULL, NULL, 0, &r);
    if (rc) return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return mien_err_set(e, MIEN_EFORMAT, "%s: no generation in meta (damaged gallery)", s->name);
    }
    char gen[32];
    snprintf(gen, sizeof gen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *v[2] = {gen, CHANNEL};
    if (s->reset_pending &&
        (rc = run(s, e, "committing", "UPDATE meta SET value = $1 WHERE key = 'reset'", 1, v, NULL,
                  NULL, 0, NULL)))
        return rc;
    /* Delivered to the listeners when (and only if) the transaction commits. */
    if ((rc = run(s, e, "committing", "SELECT pg_notify($2, $1)", 2, v, NULL, NULL, 0, NULL)))
        return rc;
    if ((rc = run(s, e, "committing", "COMMIT", 0, NULL, NULL, NULL, 0, &r))) return rc;
    /* A transaction that had failed answers COMMIT with ROLLBACK. */
    int ok = !strcmp(PQcmdStatus(r), "COMMIT");
    PQclear(r);
    s->reset_pending = 0;
    return ok ? MIEN_OK : mien_err_set(e, MIEN_EIO, "%s: the transaction was rolled back", s->name);
}

static void p_rollback(gallery_store *st) {
    pg_store *s = P(st);
    PGTransactionStatusType t = PQtransactionStatus(s->conn);
    if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR) PQclear(PQexec(s->conn, "ROLLBACK"));
    s->reset_pending = 0;
}

static int p_meta_get(gallery_store *st, const char *key, char *val, size_t size, int *found,
                      mien_err *e) {
    pg_store *s = P(st);
    PGresult *r;
    *found = 0;
    int rc = run(s, e, "reading metadata", "SELECT value FROM meta WHERE key = $1", 1, &key, NULL,
                 NULL, 0, &r);
    if (rc) return rc;
    if (PQntuples(r) == 1) {
        snprintf(val, size, "%s", PQgetvalue(r, 0, 0));
        *found = 1;
    }
    PQclear(r);
    return MIEN_OK;
}

static int p_meta_set(gallery_store *st, const char *key, const char *val, mien_err *e) {
    const char *v[2] = {key, val};
    return run(P(st), e, "writing metadata",
               "INSERT INTO meta(key, value) VALUES ($1, $2) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value", 2, v, NULL, NULL, 0, NULL);
}

static int p_version(gallery_store *st, int64_t *gen, int64_t *reset, mien_err *e) {
    pg_store *s = P(st);
    PGresult *r;
    int rc = run(s, e, "reading the generation",
                 "SELECT key, value FROM meta WHERE key IN ('generation', 'reset')", 0, NULL, NULL,
                 NULL, 0, &r);
    if (rc) return rc;
    int seen = 0;
    *gen = *reset = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int g = !strcmp(PQgetvalue(r, i, 0), "generation");
        *(g ? gen : reset) = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        seen |= g ? 1 : 2;
    }
    PQclear(r);
    return seen == 3 ? MIEN_OK
                     : mien_err_set(e, MIEN_EFORMAT, "%s: no generation in meta (damaged gallery)",
                                    s->name);
}

/* ==== Subjects ==== */

static int p_subject_find(gallery_store *st, const char *name, int64_t *id, mien_err *e) {
    pg_store *s = P(st);
    PGresult *r;
    const char *v[2] = {name, s->coll_s};
    int rc = run(s, e, "finding a subject", "SELECT id FROM subjects WHERE name = $1 AND "
                 "collection = $2", 2, v, NULL, NULL, 0, &r);
    if (rc) return rc;
    *id = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return MIEN_OK;
}

static int p_subject_add(gallery_store *st, const char *name, int64_t created, int64_t *id,
                         mien_err *e) {
    pg_store *s = P(st);
    char c[32];
    snprintf(c, sizeof c, "%lld", (long long)created);
    const char *v[3] = {name, c, s->coll_s};
    PGresult *r;
    /* DO NOTHING rather than a unique violation, which would abort the transaction. */
    int rc = run(s, e, "adding a subject",
                 "INSERT INTO subjects(name, created, collection) VALUES ($1, $2, $3) "
                 "ON CONFLICT (collection, name) DO NOTHING RETURNING id", 3, v, NULL, NULL, 0, &r);
    if (rc) return rc;
    int added = PQntuples(r) == 1;
    *id = added ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return added ? MIEN_OK
                 : mien_err_set(e, MIEN_EINVAL, "a subject named '%s' already exists", name);
}

static int p_subject_rename(gallery_store *st, int64_t id, const char *name, mien_err *e) {
    pg_store *s = P(st);
    char i[32];
    snprintf(i, sizeof i, "%lld", (long long)id);
    const char *v[3] = {name, i, s->coll_s};
    PGresult *r = PQexecParams(s->conn, "UPDATE subjects SET name = $1 WHERE id = $2 AND "
                               "collection = $3", 3, NULL, v, NULL, NULL, 0);
    int rc = MIEN_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        rc = state && !strcmp(state, "23505")
                 ? mien_err_set(e, MIEN_EINVAL, "a subject named '%s' already exists", name)
                 : pg_fail(s, r, e, "renaming a subject");
    } else if (strcmp(PQcmdTuples(r), "1") != 0) {
        rc = mien_err_set(e, MIEN_ENOTFOUND, "no subject with id %lld", (long long)id);
    }
    PQclear(r);
    if (!rc) s->reset_pending = 1;
    return rc;
}

static int p_subject_delete(gallery_store *st, int64_t id, mien_err *e) {
    pg_store *s = P(st);
    char i[32];
    snprintf(i, sizeof i, "%lld", (long long)id);
    const char *v[2] = {i, s->coll_s};
    PGresult *r;
    /* The faces go by ON DELETE CASCADE. */
    int rc = run(s, e, "deleting a subject", "DELETE FROM subjects WHERE id = $1 AND "
                 "collection = $2", 2, v, NULL, NULL, 0, &r);
    if (rc) return rc;
    int one = !strcmp(PQcmdTuples(r), "1");
    PQclear(r);
    if (!one) return mien_err_set(e, MIEN_ENOTFOUND, "no subject with id %lld", (long long)id);
    s->reset_pending = 1;
    return MIEN_OK;
}

/* ==== Faces ==== */

static int p_face_delete(gallery_store *st, int64_t id, mien_err *e) {
    pg_store *s = P(st);
    char i[32];
    snprintf(i, sizeof i, "%lld", (long long)id);
    const char *v[2] = {i, s->coll_s};
    PGresult *r;
    int rc = run(s, e, "deleting a face", "DELETE FROM faces WHERE id = $1 AND subject IN "
                 "(SELECT id FROM subjects WHERE collection = $2)", 2, v, NULL, NULL, 0, &r);
    if (rc) return rc;
    int one = !strcmp(PQcmdTuples(r), "1");
    PQclear(r);
    if (!one) return mien_err_set(e, MIEN_ENOTFOUND, "no face with id %lld", (long long)id);
    s->reset_pending = 1;    /* other processes reload: a row left the middle of the id order */
    return MIEN_OK;
}

static int p_face_add(gallery_store *st, gallery_face_rec *f, int *added, mien_err *e) {
    pg_store *s = P(st);
    size_t bytes = (size_t)f->dim * sizeof(float);
    float *le = malloc(bytes ? bytes : 1);
    if (!le) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    gallery_le_copy(le, f->emb, f->dim); /* the same swap both ways */
    char subj[32], dim[16], box[4][32], created[32];
    snprintf(subj, sizeof subj, "%lld", (long long)f->subject);
    snprintf(dim, sizeof dim, "%d", f->dim);
    for (int k = 0; k < 4; k++) snprintf(box[k], sizeof box[k], "%.9g", f->box[k]);
    snprintf(created, sizeof created, "%lld", (long long)f->created);
    const char *v[10] = {subj, (const char *)le, f->model, dim, box[0], box[1], box[2], box[3],
                         f->sha256[0] ? f->sha256 : NULL, created};
    int lens[10] = {0, (int)bytes}, fmts[10] = {0, 1}; /* the embedding in binary */
    PGresult *r;
    /* DO NOTHING covers only the (subject, image_sha256) unique index: the foreign key and
     * the CHECK still fail, as they should. */
    int rc = run(s, e, "adding a face",
                 "INSERT INTO faces(subject, embedding, model, dim, box_x, box_y, box_w, box_h, "
                 "image_sha256, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                 "ON CONFLICT (subject, image_sha256) DO NOTHING RETURNING id",
                 10, v, lens, fmts, 0, &r);
    free(le);
    if (rc) return rc;
    *added = PQntuples(r) == 1;
    f->id = *added ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return MIEN_OK;
}

/* ==== Scans ==== */

/* Outside a transaction, a scan of several chunks runs in a read-only snapshot of its own so
 * that it sees one state of the gallery. *opened says whether it must end it. */
static int scan_begin(pg_store *s, int *opened, mien_err *e) {
    *opened = PQtransactionStatus(s->conn) == PQTRANS_IDLE;
    return *opened ? exec(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", e, "reading") : 0;
}

static void scan_end(pg_store *s, int opened) {
    if (opened) PQclear(PQexec(s->conn, "COMMIT"));
}

static int scan_subjects_from(gallery_store *st, int64_t after, gallery_subject_fn fn, void *ctx,
                              mien_err *e) {
    pg_store *s = P(st);
    int opened, rc = scan_begin(s, &opened, e);
    for (int more = 1; !rc && more;) {
        char a[32];
        snprintf(a, sizeof a, "%lld", (long long)after);
        const char *v[2] = {a, s->coll_s};
        PGresult *r;
        rc = run(s, e, "reading the subjects",
                 "SELECT id, name, created FROM subjects WHERE id > $1 AND collection = $2 "
                 "ORDER BY id LIMIT " SCAN_CHUNK_SQL, 2, v, NULL, NULL, 1, &r);
        if (rc) break;
        int n = PQntuples(r);
        more = n == SCAN_CHUNK;
        for (int i = 0; !rc && i < n; i++) {
            gallery_subject_rec rec = {get_i64(r, i, 0), PQgetvalue(r, i, 1), get_i64(r, i, 2)};
            after = rec.id;
            rc = fn(ctx, &rec);
        }
        PQclear(r);
    }
    scan_end(s, opened);
    return rc;
}

static int p_scan_subjects(gallery_store *st, gallery_subject_fn fn, void *ctx, mien_err *e) {
    return scan_subjects_from(st, 0, fn, ctx, e);
}

/* Faces with id > after, of one subject when subject > 0. */
static int scan_faces_from(gallery_store *st, int64_t subject, int64_t after, gallery_face_fn fn,
                           void *ctx, mien_err *e) {
    pg_store *s = P(st);
    float *buf = NULL;
    int cap = 0, opened, rc = scan_begin(s, &opened, e);
    for (int more = 1; !rc && more;) {
        char a[32], sj[32];
        snprintf(a, sizeof a, "%lld", (long long)after);
        snprintf(sj, sizeof sj, "%lld", (long long)subject);
        const char *v[3] = {a, sj, s->coll_s};
        PGresult *r;
        /* The faces of one subject of this collection ($2 > 0), or of every subject of it. */
        rc = run(s, e, "reading the faces",
                 "SELECT f.id, f.subject, f.embedding, f.model, f.dim, f.box_x, f.box_y, f.box_w, "
                 "f.box_h, f.image_sha256, f.created FROM faces f JOIN subjects s ON s.id = "
                 "f.subject WHERE f.id > $1 AND ($2::bigint = 0 OR f.subject = $2::bigint) AND "
                 "s.collection = $3 "
                 "ORDER BY f.id LIMIT " SCAN_CHUNK_SQL, 3, v, NULL, NULL, 1, &r);
        if (rc) break;
        int n = PQntuples(r);
        more = n == SCAN_CHUNK;
        for (int i = 0; !rc && i < n; i++) {
            gallery_face_rec f = {0};
            f.id = after = get_i64(r, i, 0);
            f.subject = get_i64(r, i, 1);
            int dim = (int)get_u32(r, i, 4), bytes = PQgetlength(r, i, 2);
            if (dim <= 0 || dim > 65536 || (int64_t)bytes != (int64_t)dim * 4) {
                rc = mien_err_set(e, MIEN_EFORMAT, "%s: face %lld: embedding of %d bytes for %d "
                                  "dimensions (damaged gallery)", s->name, (long long)f.id, bytes,
                                  dim);
                break;
            }
            if (dim > cap) {
                float *nb = realloc(buf, (size_t)dim * sizeof *buf);
                if (!nb) {
                    rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
                    break;
                }
                buf = nb;
                cap = dim;
            }
            gallery_le_copy(buf, PQgetvalue(r, i, 2), dim);
            f.emb = buf;
            f.dim = dim;
            f.model = PQgetvalue(r, i, 3);
            for (int k = 0; k < 4; k++) f.box[k] = get_f32(r, i, 5 + k);
            if (!PQgetisnull(r, i, 9)) snprintf(f.sha256, sizeof f.sha256, "%s", PQgetvalue(r, i, 9));
            f.created = get_i64(r, i, 10);
            rc = fn(ctx, &f);
        }
        PQclear(r);
    }
    scan_end(s, opened);
    free(buf);
    return rc;
}

/* ==== Collections and images ==== */

static int collection_find(pg_store *s, const char *name, int64_t *id, mien_err *e) {
    PGresult *r;
    int rc = run(s, e, "finding a collection", "SELECT id FROM collections WHERE name = $1", 1,
                 &name, NULL, NULL, 0, &r);
    if (rc) return rc;
    *id = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return MIEN_OK;
}

static void set_coll(pg_store *s, int64_t id) {
    s->coll = id;
    snprintf(s->coll_s, sizeof s->coll_s, "%lld", (long long)id);
}

static int p_collection_use(gallery_store *st, const char *name, int create, mien_err *e) {
    pg_store *s = P(st);
    int64_t id = 0;
    int rc = gallery_collection_name_check(name, e);
    if (!rc) rc = collection_find(s, name, &id, e);
    if (!rc && !id && create) {
        /* A transaction of its own, without the writer lock: DO NOTHING when another process
         * creates it at the same moment. */
        if (!(rc = exec(s, "BEGIN", e, "creating a collection")) &&
            !(rc = run(s, e, "creating a collection", "INSERT INTO collections(name, created) "
                       "VALUES ($1, extract(epoch FROM now())::bigint) ON CONFLICT (name) DO "
                       "NOTHING", 1, &name, NULL, NULL, 0, NULL)))
            rc = exec(s, "COMMIT", e, "creating a collection");
        if (rc) p_rollback(st);
        if (!rc) rc = collection_find(s, name, &id, e);
    }
    if (!rc && !id) rc = mien_err_set(e, MIEN_ENOTFOUND, "%s: no collection named '%s'", s->name, name);
    set_coll(s, rc ? 0 : id);
    return rc;
}

static int p_binding_get(gallery_store *st, char *model, size_t size, int *dim, mien_err *e) {
    pg_store *s = P(st);
    PGresult *r;
    const char *v[1] = {s->coll_s};
    int rc = run(s, e, "reading the collection", "SELECT model, dim FROM collections WHERE id = $1",
                 1, v, NULL, NULL, 0, &r);
    if (rc) return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return mien_err_set(e, MIEN_ENOTFOUND, "%s: the collection was deleted", s->name);
    }
    int bound = !PQgetisnull(r, 0, 0);
    snprintf(model, size, "%s", bound ? PQgetvalue(r, 0, 0) : "");
    *dim = bound && !PQgetisnull(r, 0, 1) ? atoi(PQgetvalue(r, 0, 1)) : 0;
    PQclear(r);
    return MIEN_OK;
}

static int p_binding_set(gallery_store *st, const char *model, int dim, mien_err *e) {
    pg_store *s = P(st);
    char d[16];
    snprintf(d, sizeof d, "%d", dim);
    const char *v[3] = {model, d, s->coll_s};
    PGresult *r;
    int rc = run(s, e, "binding the collection's model", "UPDATE collections SET model = $1, "
                 "dim = $2 WHERE id = $3", 3, v, NULL, NULL, 0, &r);
    if (rc) return rc;
    int one = !strcmp(PQcmdTuples(r), "1");
    PQclear(r);
    return one ? MIEN_OK : mien_err_set(e, MIEN_ENOTFOUND, "%s: the collection was deleted", s->name);
}

static int p_scan_collections(gallery_store *st, gallery_collection_fn fn, void *ctx, mien_err *e) {
    pg_store *s = P(st);
    PGresult *r;
    int rc = run(s, e, "reading the collections",
                 "SELECT c.name, coalesce(c.model, ''), coalesce(c.dim, 0), c.created, "
                 "(SELECT count(*) FROM subjects s WHERE s.collection = c.id), "
                 "(SELECT count(*) FROM faces f JOIN subjects s ON s.id = f.subject WHERE "
                 "s.collection = c.id) FROM collections c ORDER BY c.name", 0, NULL, NULL, NULL, 0,
                 &r);
    if (rc) return rc;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        gallery_collection_rec c = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                                    atoi(PQgetvalue(r, i, 2)), strtoll(PQgetvalue(r, i, 3), NULL, 10),
                                    strtoll(PQgetvalue(r, i, 4), NULL, 10),
                                    strtoll(PQgetvalue(r, i, 5), NULL, 10)};
        rc = fn(ctx, &c);
    }
    PQclear(r);
    return rc;
}

static int p_collection_drop(gallery_store *st, mien_err *e) {
    pg_store *s = P(st);
    const char *v[1] = {s->coll_s};
    PGresult *r;
    /* Subjects, faces and images go by ON DELETE CASCADE. */
    int rc = run(s, e, "deleting a collection", "DELETE FROM collections WHERE id = $1", 1, v, NULL,
                 NULL, 0, &r);
    if (rc) return rc;
    int one = !strcmp(PQcmdTuples(r), "1");
    PQclear(r);
    if (!one) return mien_err_set(e, MIEN_ENOTFOUND, "%s: the collection was deleted", s->name);
    s->reset_pending = 1;
    set_coll(s, 0);
    return MIEN_OK;
}

static int p_image_put(gallery_store *st, int64_t face, const char *kind, const char *type,
                       const void *data, size_t len, mien_err *e) {
    pg_store *s = P(st);
    if (len > (size_t)INT32_MAX) return mien_err_set(e, MIEN_ETOOBIG, "image of %zu bytes", len);
    char f[32];
    snprintf(f, sizeof f, "%lld", (long long)face);
    const char *v[5] = {f, kind, type, len ? (const char *)data : "", s->coll_s};
    int lens[5] = {0, 0, 0, (int)len, 0}, fmts[5] = {0, 0, 0, 1, 0};
    PGresult *r;
    int rc = run(s, e, "storing a face's image",
                 "INSERT INTO face_images(face, kind, type, data) SELECT $1, $2, $3, $4 WHERE "
                 "EXISTS (SELECT 1 FROM faces f JOIN subjects s ON s.id = f.subject WHERE f.id = $1 "
                 "AND s.collection = $5) ON CONFLICT (face) DO UPDATE SET kind = excluded.kind, "
                 "type = excluded.type, data = excluded.data", 5, v, lens, fmts, 0, &r);
    if (rc) return rc;
    int one = !strcmp(PQcmdTuples(r), "1");
    PQclear(r);
    return one ? MIEN_OK : mien_err_set(e, MIEN_ENOTFOUND, "no face with id %lld", (long long)face);
}

static int p_image_get(gallery_store *st, int64_t face, char *kind, size_t kind_size, char *type,
                       size_t type_size, void **data, size_t *len, mien_err *e) {
    pg_store *s = P(st);
    *data = NULL;
    *len = 0;
    char f[32];
    snprintf(f, sizeof f, "%lld", (long long)face);
    const char *v[2] = {f, s->coll_s};
    PGresult *r;
    int rc = run(s, e, "reading a face's image",
                 "SELECT i.kind, i.type, i.data FROM face_images i JOIN faces f ON f.id = i.face "
                 "JOIN subjects s ON s.id = f.subject WHERE i.face = $1 AND s.collection = $2", 2, v,
                 NULL, NULL, 1, &r);
    if (rc) return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return mien_err_set(e, MIEN_ENOTFOUND, "no image kept for face %lld", (long long)face);
    }
    snprintf(kind, kind_size, "%.*s", PQgetlength(r, 0, 0), PQgetvalue(r, 0, 0));
    snprintf(type, type_size, "%.*s", PQgetlength(r, 0, 1), PQgetvalue(r, 0, 1));
    size_t n = (size_t)PQgetlength(r, 0, 2);
    *data = malloc(n ? n : 1);
    if (!*data) rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
    else if (n) memcpy(*data, PQgetvalue(r, 0, 2), n);
    *len = n;
    PQclear(r);
    return rc;
}

static int p_scan_faces(gallery_store *st, int64_t subject, gallery_face_fn fn, void *ctx,
                        mien_err *e) {
    return scan_faces_from(st, subject, 0, fn, ctx, e);
}

static int p_scan_faces_after(gallery_store *st, int64_t after, gallery_face_fn fn, void *ctx,
                              mien_err *e) {
    return scan_faces_from(st, 0, after, fn, ctx, e);
}

/* Deleted rows are gone from every query as soon as the deleting transaction commits. Their
 * bytes are another matter: PostgreSQL marks a deleted tuple dead and leaves it in its page
 * until VACUUM, which makes the space reusable (and removes the index entries) but does not
 * overwrite it; the WAL, base backups and replicas keep their own copies until recycled.
 * VACUUM here frees the space promptly; erasure from the disk needs more than any one
 * statement can promise (VACUUM FULL writes new files but leaves the old blocks to the file
 * system), which the README says. */
static int p_purge(gallery_store *st, mien_err *e) {
    return exec(P(st), "VACUUM faces, subjects", e, "vacuuming");
}

/* ==== Notifications ==== */

static int pg_listen(pg_store *s, mien_err *e) {
    return exec(s, "LISTEN " CHANNEL, e, "listening for changes");
}

static int p_poll(gallery_store *st, int64_t *announced, mien_err *e) {
    pg_store *s = P(st);
    *announced = 0;
    /* Reads what the socket holds without waiting; no query, no round trip. */
    if (PQstatus(s->conn) != CONNECTION_OK || !PQconsumeInput(s->conn)) {
        /* The server went away (restart, network): connect again, listen again, and let the
         * caller reload since announcements may have been missed meanwhile. */
        PQreset(s->conn);
        if (PQstatus(s->conn) != CONNECTION_OK) return pg_fail(s, NULL, e, "connection lost");
        int rc = pg_listen(s, e);
        if (rc) return rc;
        *announced = INT64_MAX;
        return MIEN_OK;
    }
    int me = PQbackendPID(s->conn);
    PGnotify *n;
    while ((n = PQnotifies(s->conn))) {
        /* Our own commits are in memory already. */
        if (n->be_pid != me && !strcmp(n->relname, CHANNEL)) {
            long long g = strtoll(n->extra, NULL, 10);
            if (g > *announced) *announced = g;
        }
        PQfreemem(n);
    }
    return MIEN_OK;
}

/* ==== Open ==== */

static void p_close(gallery_store *st) {
    if (!st) return;
    PQfinish(P(st)->conn);
    free(st);
}

static const gallery_store_ops pg_ops = {
    .name = "postgresql",
    .close = p_close,
    .begin = p_begin,
    .commit = p_commit,
    .rollback = p_rollback,
    .meta_get = p_meta_get,
    .meta_set = p_meta_set,
    .subject_add = p_subject_add,
    .subject_find = p_subject_find,
    .subject_rename = p_subject_rename,
    .subject_delete = p_subject_delete,
    .face_delete = p_face_delete,
    .face_add = p_face_add,
    .scan_subjects = p_scan_subjects,
    .scan_faces = p_scan_faces,
    .purge = p_purge,
    .version = p_version,
    .poll = p_poll,
    .scan_subjects_after = scan_subjects_from,
    .scan_faces_after = p_scan_faces_after,
    .collection_use = p_collection_use,
    .binding_get = p_binding_get,
    .binding_set = p_binding_set,
    .scan_collections = p_scan_collections,
    .collection_drop = p_collection_drop,
    .image_put = p_image_put,
    .image_get = p_image_get,
};

/* The library never prints: libpq's notices (e.g. "relation already exists, skipping") are
 * dropped. */
static void no_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

/* Check that the database holds a mien gallery, or give it the schema. */
static int check_or_init(pg_store *s, int read_only, int create, mien_err *e) {
    PGresult *r;
    int rc = run(s, e, "reading the schema",
                 "SELECT to_regclass('meta') IS NOT NULL, to_regclass('subjects') IS NOT NULL, "
                 "to_regclass('faces') IS NOT NULL", 0, NULL, NULL, NULL, 0, &r);
    if (rc) return rc;
    int have = 0;
    for (int i = 0; i < 3; i++) have += PQgetvalue(r, 0, i)[0] == 't';
    PQclear(r);
    if (have > 0 && have < 3)
        return mien_err_set(e, MIEN_EFORMAT, "%s: the database has tables of the same names, but "
                            "not a mien gallery", s->name);
    if (have == 0) {
        if (read_only || !create)
            return mien_err_set(e, MIEN_ENOTFOUND, "no gallery in %s (enroll someone first)", s->name);
        /* Under the writer lock, so that two processes creating it at once do not collide. */
        if (!(rc = p_begin(&s->base, e)) && !(rc = exec(s, schema_sql, e, "creating the schema")))
            rc = exec(s, "COMMIT", e, "creating the schema");
        if (rc) {
            p_rollback(&s->base);
            return rc;
        }
    }
    char fmt[64] = "", ver[16] = "";
    int found = 0;
    if ((rc = p_meta_get(&s->base, "format", fmt, sizeof fmt, &found, e))) return rc;
    if (!found || strcmp(fmt, "mien-gallery") != 0)
        return mien_err_set(e, MIEN_EFORMAT, "%s: a table 'meta', but not a mien gallery", s->name);
    if ((rc = p_meta_get(&s->base, "schema", ver, sizeof ver, &found, e))) return rc;
    if (atoi(ver) > SCHEMA_VERSION)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: gallery schema %s is newer than this mien "
                            "understands (%d)", s->name, ver, SCHEMA_VERSION);
    if (atoi(ver) == SCHEMA_VERSION) return MIEN_OK;
    if (atoi(ver) != 1)
        return mien_err_set(e, MIEN_EFORMAT, "%s: unknown gallery schema '%s'", s->name, ver);
    if (read_only)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: a gallery of an older mien (schema 1): open "
                            "it once for writing to upgrade it", s->name);
    /* Upgrade, under the writer lock; another process may have done it meanwhile. */
    if (!(rc = p_begin(&s->base, e)) &&
        !(rc = p_meta_get(&s->base, "schema", ver, sizeof ver, &found, e)) && atoi(ver) == 1)
        rc = exec(s, migrate_1_2_sql, e, "upgrading the gallery");
    if (!rc) rc = exec(s, "COMMIT", e, "upgrading the gallery");
    if (rc) p_rollback(&s->base);
    return rc;
}

int gallery_store_open_pg(const char *uri, int read_only, int create, gallery_store **out,
                          mien_err *e) {
    *out = NULL;
    pg_store *s = calloc(1, sizeof *s);
    if (!s) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    s->base.ops = &pg_ops;
    gallery_store_pg_redact(uri, s->name, sizeof s->name);
    /* Bad URIs (unknown parameter, bad syntax) fail here too, with libpq's reason. */
    s->conn = PQconnectdb(uri);
    int rc;
    if (!s->conn) {
        rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
        goto fail;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        rc = pg_fail(s, NULL, e, "cannot connect");
        goto fail;
    }
    PQsetNoticeProcessor(s->conn, no_notice, NULL);
    if ((rc = check_or_init(s, read_only, create, e))) goto fail;
    /* Listen before the caller loads, so that no commit falls between the two. */
    if ((rc = pg_listen(s, e))) goto fail;
    *out = &s->base;
    return MIEN_OK;
fail:
    PQfinish(s->conn);
    free(s);
    return rc;
}
