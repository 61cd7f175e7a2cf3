/* The SQLite gallery store: one file, WAL journal, foreign keys on, secure_delete on, a busy
 * timeout so that a second process waits instead of failing.
 *
 * The file is marked as ours with PRAGMA application_id ('mien') and its schema version with
 * PRAGMA user_version, so that any other SQLite file is refused instead of being written to. */
#include "gallery/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIEN_APP_ID 0x6D69656E /* "mien" */
/* 1: one namespace of subjects (meta held the model). 2: collections (each with its model),
 * subjects in a collection, face_images. */
#define SCHEMA_VERSION 2
#define BUSY_TIMEOUT_MS 10000

/* The tables new in version 2, in the order a migration creates them. */
#define COLLECTIONS_SQL                                                                     \
    "CREATE TABLE collections(\n"                                                           \
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"                                             \
    "  name TEXT NOT NULL UNIQUE,\n"                                                        \
    "  model TEXT,                          -- embedder bound to it; NULL while empty\n"    \
    "  dim INTEGER,\n"                                                                      \
    "  created INTEGER NOT NULL);\n"
#define SUBJECTS_SQL(table)                                                                 \
    "CREATE TABLE " table "(\n"                                                             \
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"                                             \
    "  collection INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,\n"         \
    "  name TEXT NOT NULL,\n"                                                               \
    "  created INTEGER NOT NULL,\n"                                                         \
    "  UNIQUE (collection, name));\n"
#define FACE_IMAGES_SQL                                                                     \
    "CREATE TABLE face_images(\n"                                                           \
    "  face INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,\n"                  \
    "  kind TEXT NOT NULL,                  -- 'crop' (the aligned face) or 'photo'\n"      \
    "  type TEXT NOT NULL,                  -- media type, e.g. 'image/jpeg'\n"             \
    "  data BLOB NOT NULL);\n"

static const char schema_sql[] =
    "CREATE TABLE meta(\n"
    "  key TEXT PRIMARY KEY,\n"
    "  value TEXT NOT NULL);\n"
    COLLECTIONS_SQL
    SUBJECTS_SQL("subjects")
    "CREATE TABLE faces(\n"
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "  subject INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,\n"
    "  embedding BLOB NOT NULL,             -- dim little-endian float32\n"
    "  model TEXT NOT NULL,                 -- embedder name, e.g. 'dlib'\n"
    "  dim INTEGER NOT NULL CHECK (dim > 0 AND length(embedding) = 4 * dim),\n"
    "  box_x REAL NOT NULL DEFAULT 0, box_y REAL NOT NULL DEFAULT 0,\n"
    "  box_w REAL NOT NULL DEFAULT 0, box_h REAL NOT NULL DEFAULT 0,\n"
    "  image_sha256 TEXT,                   -- source photo; NULL when unknown\n"
    "  created INTEGER NOT NULL);\n"
    "CREATE INDEX faces_subject ON faces(subject);\n"
    "CREATE UNIQUE INDEX faces_subject_image ON faces(subject, image_sha256);\n"
    FACE_IMAGES_SQL;

/* Version 1 to 2, in one transaction with foreign keys off (so that replacing the subjects
 * table does not cascade into the faces): the gallery becomes the collection 'default',
 * bound to the model meta held; subject ids and their sequence are kept. */
static const char migrate_1_2_sql[] =
    COLLECTIONS_SQL
    "INSERT INTO collections(name, model, dim, created) VALUES ('" GALLERY_DEFAULT_COLLECTION "',\n"
    "  (SELECT value FROM meta WHERE key = 'model'),\n"
    "  (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'dim'),\n"
    "  CAST(strftime('%s', 'now') AS INTEGER));\n"
    SUBJECTS_SQL("subjects_v2")
    "INSERT INTO subjects_v2(id, collection, name, created)\n"
    "  SELECT id, (SELECT id FROM collections), name, created FROM subjects ORDER BY id;\n"
    "CREATE TEMP TABLE seq_v1 AS SELECT seq FROM sqlite_sequence WHERE name = 'subjects';\n"
    "DROP TABLE subjects;\n"
    "ALTER TABLE subjects_v2 RENAME TO subjects;\n"
    "UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(seq), 0) FROM seq_v1))\n"
    "  WHERE name = 'subjects';\n"
    "INSERT INTO sqlite_sequence(name, seq) SELECT 'subjects', seq FROM seq_v1\n"
    "  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'subjects');\n"
    "DROP TABLE seq_v1;\n"
    FACE_IMAGES_SQL
    "DELETE FROM meta WHERE key IN ('model', 'dim');\n"
    "PRAGMA user_version = 2;\n";

typedef struct sqlite_store {
    gallery_store base;
    sqlite3 *db;
    char path[1024];
    int64_t coll;            /* the collection in use (collection_use), 0 before */
} sqlite_store;

static sqlite_store *S(gallery_store *st) { return (sqlite_store *)st; }

/* Map SQLite's result code to a mien status and record the message. */
static int db_fail(sqlite_store *s, int rc, mien_err *e, const char *what) {
    int status;
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
    case SQLITE_FORMAT:
    case SQLITE_MISMATCH:
        status = MIEN_EFORMAT;
        break;
    case SQLITE_CONSTRAINT:
        status = MIEN_EINVAL;
        break;
    case SQLITE_NOMEM:
        status = MIEN_ENOMEM;
        break;
    case SQLITE_TOOBIG:
        status = MIEN_ETOOBIG;
        break;
    default:
        status = MIEN_EIO;
        break;
    }
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
        return mien_err_set(e, status, "%s: %s: %s (damaged, or not a mien gallery)", s->path,
                            what, msg);
    return mien_err_set(e, status, "%s: %s: %s", s->path, what, msg);
}

static int exec(sqlite_store *s, const char *sql, mien_err *e, const char *what) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? MIEN_OK : db_fail(s, rc, e, what);
}

static int prepare(sqlite_store *s, const char *sql, sqlite3_stmt **st, mien_err *e) {
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? MIEN_OK : db_fail(s, rc, e, "preparing a query");
}

/* A query returning one integer (PRAGMA application_id, ...). */
static int query_int(sqlite_store *s, const char *sql, int64_t *out, mien_err *e) {
    sqlite3_stmt *st;
    int rc = prepare(s, sql, &st, e);
    if (rc) return rc;
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    else if (r == SQLITE_DONE) *out = 0;
    sqlite3_finalize(st);
    return (r == SQLITE_ROW || r == SQLITE_DONE) ? MIEN_OK : db_fail(s, r, e, sql);
}

/* ==== Transactions and metadata ==== */

static int s_begin(gallery_store *st, mien_err *e) {
    /* IMMEDIATE takes the write lock now, so a second writer waits here (busy timeout)
     * rather than failing half-way through. */
    return exec(S(st), "BEGIN IMMEDIATE", e, "starting a transaction");
}

static int s_commit(gallery_store *st, mien_err *e) {
    return exec(S(st), "COMMIT", e, "committing");
}

static void s_rollback(gallery_store *st) {
    if (!sqlite3_get_autocommit(S(st)->db)) sqlite3_exec(S(st)->db, "ROLLBACK", NULL, NULL, NULL);
}

static int s_meta_get(gallery_store *st, const char *key, char *val, size_t size, int *found,
                      mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT value FROM meta WHERE key = ?1", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int r = sqlite3_step(q);
    *found = 0;
    if (r == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        snprintf(val, size, "%s", v ? v : "");
        *found = 1;
    }
    sqlite3_finalize(q);
    return (r == SQLITE_ROW || r == SQLITE_DONE) ? MIEN_OK : db_fail(s, r, e, "reading metadata");
}

static int s_meta_set(gallery_store *st, const char *key, const char *val, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, val, -1, SQLITE_STATIC);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? MIEN_OK : db_fail(s, r, e, "writing metadata");
}

/* ==== Subjects ==== */

static int s_subject_find(gallery_store *st, const char *name, int64_t *id, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT id FROM subjects WHERE name = ?1 AND collection = ?2", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, s->coll);
    int r = sqlite3_step(q);
    *id = r == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    return (r == SQLITE_ROW || r == SQLITE_DONE) ? MIEN_OK : db_fail(s, r, e, "finding a subject");
}

static int s_subject_add(gallery_store *st, const char *name, int64_t created, int64_t *id,
                         mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "INSERT INTO subjects(name, created, collection) VALUES(?1, ?2, ?3)", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, created);
    sqlite3_bind_int64(q, 3, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if ((r & 0xff) == SQLITE_CONSTRAINT)
        return mien_err_set(e, MIEN_EINVAL, "a subject named '%s' already exists", name);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "adding a subject");
    *id = sqlite3_last_insert_rowid(s->db);
    return MIEN_OK;
}

static int s_subject_rename(gallery_store *st, int64_t id, const char *name, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "UPDATE subjects SET name = ?1 WHERE id = ?2 AND collection = ?3", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, id);
    sqlite3_bind_int64(q, 3, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if ((r & 0xff) == SQLITE_CONSTRAINT)
        return mien_err_set(e, MIEN_EINVAL, "a subject named '%s' already exists", name);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "renaming a subject");
    if (sqlite3_changes(s->db) != 1)
        return mien_err_set(e, MIEN_ENOTFOUND, "no subject with id %lld", (long long)id);
    return MIEN_OK;
}

static int s_subject_delete(gallery_store *st, int64_t id, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    /* The faces go by ON DELETE CASCADE (foreign_keys is on for this connection). */
    int rc = prepare(s, "DELETE FROM subjects WHERE id = ?1 AND collection = ?2", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "deleting a subject");
    if (sqlite3_changes(s->db) != 1)
        return mien_err_set(e, MIEN_ENOTFOUND, "no subject with id %lld", (long long)id);
    return MIEN_OK;
}

/* ==== Faces ==== */

static int s_face_add(gallery_store *st, gallery_face_rec *f, int *added, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    /* OR IGNORE only covers the (subject, image_sha256) unique index: the other constraints
     * (foreign key, CHECK) still fail, as they should. */
    int rc = prepare(s, "INSERT OR IGNORE INTO faces(subject, embedding, model, dim, box_x, box_y, "
                        "box_w, box_h, image_sha256, created) "
                        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)", &q, e);
    if (rc) return rc;
    size_t bytes = (size_t)f->dim * sizeof(float);
    float *le = malloc(bytes);
    if (!le) {
        sqlite3_finalize(q);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    gallery_le_copy(le, f->emb, f->dim); /* the same swap both ways */
    sqlite3_bind_int64(q, 1, f->subject);
    sqlite3_bind_blob(q, 2, le, (int)bytes, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, f->model, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, f->dim);
    for (int k = 0; k < 4; k++) sqlite3_bind_double(q, 5 + k, f->box[k]);
    if (f->sha256[0]) sqlite3_bind_text(q, 9, f->sha256, -1, SQLITE_STATIC);
    else sqlite3_bind_null(q, 9);
    sqlite3_bind_int64(q, 10, f->created);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    free(le);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "adding a face");
    *added = sqlite3_changes(s->db) == 1;
    f->id = *added ? sqlite3_last_insert_rowid(s->db) : 0;
    return MIEN_OK;
}

static int s_face_delete(gallery_store *st, int64_t id, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "DELETE FROM faces WHERE id = ?1 AND subject IN "
                        "(SELECT id FROM subjects WHERE collection = ?2)", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "deleting a face");
    if (sqlite3_changes(s->db) != 1)
        return mien_err_set(e, MIEN_ENOTFOUND, "no face with id %lld", (long long)id);
    return MIEN_OK;
}

/* ==== Scans ==== */

static int s_scan_subjects(gallery_store *st, gallery_subject_fn fn, void *ctx, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT id, name, created FROM subjects WHERE collection = ?1 ORDER BY id",
                     &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, s->coll);
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 1);
        gallery_subject_rec rec = {sqlite3_column_int64(q, 0), name ? name : "",
                                   sqlite3_column_int64(q, 2)};
        if ((rc = fn(ctx, &rec))) {
            sqlite3_finalize(q);
            return rc;
        }
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? MIEN_OK : db_fail(s, r, e, "reading the subjects");
}

static int s_scan_faces(gallery_store *st, int64_t subject, gallery_face_fn fn, void *ctx,
                        mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    /* The faces of one subject of this collection, or of every subject of it. */
    int rc = prepare(s, "SELECT f.id, f.subject, f.embedding, f.model, f.dim, f.box_x, f.box_y, "
                        "f.box_w, f.box_h, f.image_sha256, f.created FROM faces f JOIN subjects s "
                        "ON s.id = f.subject WHERE s.collection = ?1 AND (?2 = 0 OR f.subject = ?2) "
                        "ORDER BY f.id", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, s->coll);
    sqlite3_bind_int64(q, 2, subject > 0 ? subject : 0);
    float *buf = NULL;
    int cap = 0, r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        gallery_face_rec f = {0};
        f.id = sqlite3_column_int64(q, 0);
        f.subject = sqlite3_column_int64(q, 1);
        int64_t dim = sqlite3_column_int64(q, 4);
        const void *blob = sqlite3_column_blob(q, 2);
        int bytes = sqlite3_column_bytes(q, 2);
        const char *model = (const char *)sqlite3_column_text(q, 3);
        if (dim <= 0 || dim > 65536 || !blob || (int64_t)bytes != dim * 4) {
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: face %lld: embedding of %d bytes for %lld "
                              "dimensions (damaged gallery)", s->path, (long long)f.id, bytes,
                              (long long)dim);
            break;
        }
        if (dim > cap) {
            float *nb = realloc(buf, (size_t)dim * sizeof *buf);
            if (!nb) {
                rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
                break;
            }
            buf = nb;
            cap = (int)dim;
        }
        gallery_le_copy(buf, blob, (int)dim);
        f.emb = buf;
        f.dim = (int)dim;
        f.model = model ? model : "";
        for (int k = 0; k < 4; k++) f.box[k] = (float)sqlite3_column_double(q, 5 + k);
        const char *sha = (const char *)sqlite3_column_text(q, 9);
        snprintf(f.sha256, sizeof f.sha256, "%s", sha ? sha : "");
        f.created = sqlite3_column_int64(q, 10);
        if ((rc = fn(ctx, &f))) break;
    }
    sqlite3_finalize(q);
    free(buf);
    if (rc) return rc;
    return r == SQLITE_DONE ? MIEN_OK : db_fail(s, r, e, "reading the faces");
}

/* ==== Collections ==== */

int gallery_collection_name_check(const char *name, mien_err *e) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63)
        return mien_err_set(e, MIEN_EINVAL, "a collection name has 1 to 63 characters");
    if (name[0] == '.')
        return mien_err_set(e, MIEN_EINVAL, "collection name '%s' starts with '.'", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return mien_err_set(e, MIEN_EINVAL, "collection name '%s': use A-Z a-z 0-9 . _ -",
                                name);
    }
    return MIEN_OK;
}

static int s_collection_find(sqlite_store *s, const char *name, int64_t *id, mien_err *e) {
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT id FROM collections WHERE name = ?1", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int r = sqlite3_step(q);
    *id = r == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    return (r == SQLITE_ROW || r == SQLITE_DONE) ? MIEN_OK : db_fail(s, r, e, "finding a collection");
}

static int s_collection_use(gallery_store *st, const char *name, int create, mien_err *e) {
    sqlite_store *s = S(st);
    int64_t id = 0;
    int rc = gallery_collection_name_check(name, e);
    if (!rc) rc = s_collection_find(s, name, &id, e);
    if (!rc && !id && create) {
        sqlite3_stmt *q = NULL;
        if (!(rc = exec(s, "BEGIN IMMEDIATE", e, "creating a collection")) &&
            !(rc = prepare(s, "INSERT OR IGNORE INTO collections(name, created) VALUES(?1, "
                              "CAST(strftime('%s', 'now') AS INTEGER))", &q, e))) {
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
            int r = sqlite3_step(q);
            if (r != SQLITE_DONE) rc = db_fail(s, r, e, "creating a collection");
            sqlite3_finalize(q);
        }
        if (!rc) rc = s_collection_find(s, name, &id, e);
        if (!rc) rc = exec(s, "COMMIT", e, "creating a collection");
        if (rc) s_rollback(st);
    }
    if (!rc && !id) rc = mien_err_set(e, MIEN_ENOTFOUND, "%s: no collection named '%s'", s->path, name);
    s->coll = rc ? 0 : id;
    return rc;
}

static int s_binding_get(gallery_store *st, char *model, size_t size, int *dim, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT model, dim FROM collections WHERE id = ?1", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, s->coll);
    int r = sqlite3_step(q);
    const char *m = r == SQLITE_ROW ? (const char *)sqlite3_column_text(q, 0) : NULL;
    snprintf(model, size, "%s", m ? m : "");
    *dim = m ? sqlite3_column_int(q, 1) : 0;
    sqlite3_finalize(q);
    if (r == SQLITE_DONE)
        return mien_err_set(e, MIEN_ENOTFOUND, "%s: the collection was deleted", s->path);
    return r == SQLITE_ROW ? MIEN_OK : db_fail(s, r, e, "reading the collection");
}

static int s_binding_set(gallery_store *st, const char *model, int dim, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "UPDATE collections SET model = ?1, dim = ?2 WHERE id = ?3", &q, e);
    if (rc) return rc;
    sqlite3_bind_text(q, 1, model, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, dim);
    sqlite3_bind_int64(q, 3, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "binding the collection's model");
    if (sqlite3_changes(s->db) != 1)
        return mien_err_set(e, MIEN_ENOTFOUND, "%s: the collection was deleted", s->path);
    return MIEN_OK;
}

static int s_scan_collections(gallery_store *st, gallery_collection_fn fn, void *ctx, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT c.name, c.model, c.dim, c.created, "
                        "(SELECT count(*) FROM subjects s WHERE s.collection = c.id), "
                        "(SELECT count(*) FROM faces f JOIN subjects s ON s.id = f.subject "
                        "WHERE s.collection = c.id) FROM collections c ORDER BY c.name", &q, e);
    if (rc) return rc;
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        const char *model = (const char *)sqlite3_column_text(q, 1);
        gallery_collection_rec c = {name ? name : "", model ? model : "",
                                    model ? sqlite3_column_int(q, 2) : 0, sqlite3_column_int64(q, 3),
                                    sqlite3_column_int64(q, 4), sqlite3_column_int64(q, 5)};
        if ((rc = fn(ctx, &c))) {
            sqlite3_finalize(q);
            return rc;
        }
    }
    sqlite3_finalize(q);
    return r == SQLITE_DONE ? MIEN_OK : db_fail(s, r, e, "reading the collections");
}

static int s_collection_drop(gallery_store *st, mien_err *e) {
    sqlite_store *s = S(st);
    sqlite3_stmt *q;
    /* Subjects, faces and images go by ON DELETE CASCADE. */
    int rc = prepare(s, "DELETE FROM collections WHERE id = ?1", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "deleting a collection");
    if (sqlite3_changes(s->db) != 1)
        return mien_err_set(e, MIEN_ENOTFOUND, "%s: the collection was deleted", s->path);
    s->coll = 0;
    return MIEN_OK;
}

static int s_image_put(gallery_store *st, int64_t face, const char *kind, const char *type,
                       const void *data, size_t len, mien_err *e) {
    sqlite_store *s = S(st);
    if (len > (size_t)INT32_MAX) return mien_err_set(e, MIEN_ETOOBIG, "image of %zu bytes", len);
    sqlite3_stmt *q;
    int rc = prepare(s, "INSERT OR REPLACE INTO face_images(face, kind, type, data) "
                        "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM faces f JOIN subjects s "
                        "ON s.id = f.subject WHERE f.id = ?1 AND s.collection = ?5)", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, face);
    sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, type, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 4, len ? data : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, s->coll);
    int r = sqlite3_step(q);
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return db_fail(s, r, e, "storing a face's image");
    if (sqlite3_changes(s->db) != 1)
        return mien_err_set(e, MIEN_ENOTFOUND, "no face with id %lld", (long long)face);
    return MIEN_OK;
}

static int s_image_get(gallery_store *st, int64_t face, char *kind, size_t kind_size, char *type,
                       size_t type_size, void **data, size_t *len, mien_err *e) {
    sqlite_store *s = S(st);
    *data = NULL;
    *len = 0;
    sqlite3_stmt *q;
    int rc = prepare(s, "SELECT i.kind, i.type, i.data FROM face_images i JOIN faces f ON f.id = "
                        "i.face JOIN subjects s ON s.id = f.subject WHERE i.face = ?1 AND "
                        "s.collection = ?2", &q, e);
    if (rc) return rc;
    sqlite3_bind_int64(q, 1, face);
    sqlite3_bind_int64(q, 2, s->coll);
    int r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(q, 0);
        const char *t = (const char *)sqlite3_column_text(q, 1);
        snprintf(kind, kind_size, "%s", k ? k : "");
        snprintf(type, type_size, "%s", t ? t : "");
        const void *b = sqlite3_column_blob(q, 2);
        size_t n = (size_t)sqlite3_column_bytes(q, 2);
        *data = malloc(n ? n : 1);
        if (!*data) rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
        else if (n) memcpy(*data, b, n);
        *len = n;
    } else if (r == SQLITE_DONE) {
        rc = mien_err_set(e, MIEN_ENOTFOUND, "no image kept for face %lld", (long long)face);
    } else {
        rc = db_fail(s, r, e, "reading a face's image");
    }
    sqlite3_finalize(q);
    return rc;
}

static int s_purge(gallery_store *st, mien_err *e) {
    sqlite_store *s = S(st);
    /* secure_delete has zeroed the freed bytes in the pages written since; copying the WAL
     * back into the database and truncating it removes the older page images that still held
     * them. A reader in another process can hold the WAL open; the busy handler waits. */
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done);
    if (rc == SQLITE_BUSY)
        return mien_err_set(e, MIEN_EIO, "%s: another process is reading the gallery, so the "
                            "deleted data stays in the write-ahead log until the next checkpoint",
                            s->path);
    return rc == SQLITE_OK ? MIEN_OK : db_fail(s, rc, e, "checkpointing");
}

static void s_close(gallery_store *st) {
    if (!st) return;
    sqlite_store *s = S(st);
    sqlite3_close(s->db); /* also checkpoints and removes the WAL when it is the last one */
    free(s);
}

static const gallery_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = s_close,
    .begin = s_begin,
    .commit = s_commit,
    .rollback = s_rollback,
    .meta_get = s_meta_get,
    .meta_set = s_meta_set,
    .subject_add = s_subject_add,
    .subject_find = s_subject_find,
    .subject_rename = s_subject_rename,
    .subject_delete = s_subject_delete,
    .face_add = s_face_add,
    .scan_subjects = s_scan_subjects,
    .scan_faces = s_scan_faces,
    .purge = s_purge,
    .face_delete = s_face_delete,
    .collection_use = s_collection_use,
    .binding_get = s_binding_get,
    .binding_set = s_binding_set,
    .scan_collections = s_scan_collections,
    .collection_drop = s_collection_drop,
    .image_put = s_image_put,
    .image_get = s_image_get,
};

/* ==== Open ==== */

/* Check that the file is a mien gallery, or give an empty one the schema. */
static int check_or_init(sqlite_store *s, int read_only, mien_err *e) {
    int64_t app = 0, ver = 0, tables = 0;
    int rc;
    /* The first read: a file that is not SQLite fails here with SQLITE_NOTADB. */
    if ((rc = query_int(s, "PRAGMA application_id", &app, e))) return rc;
    if ((rc = query_int(s, "PRAGMA user_version", &ver, e))) return rc;
    if ((rc = query_int(s, "SELECT count(*) FROM sqlite_master", &tables, e))) return rc;
    if (app == MIEN_APP_ID) {
        if (ver > SCHEMA_VERSION)
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: gallery schema %lld is newer than this "
                                "mien understands (%d)", s->path, (long long)ver, SCHEMA_VERSION);
        if (ver == SCHEMA_VERSION) return MIEN_OK;
        if (ver != 1)
            return mien_err_set(e, MIEN_EFORMAT, "%s: unknown gallery schema %lld", s->path,
                                (long long)ver);
        if (read_only)
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: a gallery of an older mien (schema 1): "
                                "open it once for writing to upgrade it", s->path);
        /* Upgrade in place; another process may be doing it too: check again once we hold
         * the write lock. */
        if ((rc = exec(s, "BEGIN IMMEDIATE", e, "upgrading the gallery"))) return rc;
        if (!(rc = query_int(s, "PRAGMA user_version", &ver, e)) && ver == 1)
            rc = exec(s, migrate_1_2_sql, e, "upgrading the gallery");
        if (!rc) rc = exec(s, "COMMIT", e, "upgrading the gallery");
        if (rc) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (app != 0 || tables != 0)
        return mien_err_set(e, MIEN_EFORMAT, "%s: an SQLite file, but not a mien gallery", s->path);
    if (read_only)
        return mien_err_set(e, MIEN_EFORMAT, "%s: empty file, not a mien gallery", s->path);
    /* A new file. WAL is a property of the file, set outside any transaction. */
    if ((rc = exec(s, "PRAGMA journal_mode=WAL", e, "enabling WAL"))) return rc;
    if ((rc = exec(s, "BEGIN IMMEDIATE", e, "creating the schema"))) return rc;
    /* Another process may have created it meanwhile. */
    if ((rc = query_int(s, "PRAGMA application_id", &app, e))) goto fail;
    if (app != MIEN_APP_ID) {
        char pragmas[128];
        snprintf(pragmas, sizeof pragmas, "PRAGMA application_id=%d; PRAGMA user_version=%d;",
                 MIEN_APP_ID, SCHEMA_VERSION);
        if ((rc = exec(s, schema_sql, e, "creating the schema"))) goto fail;
        if ((rc = exec(s, pragmas, e, "creating the schema"))) goto fail;
        if ((rc = exec(s, "INSERT INTO collections(name, created) VALUES ('"
                          GALLERY_DEFAULT_COLLECTION "', CAST(strftime('%s', 'now') AS INTEGER))",
                       e, "creating the schema")))
            goto fail;
    }
    return exec(s, "COMMIT", e, "creating the schema");
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int gallery_store_open_sqlite(const char *path, int read_only, int create, gallery_store **out,
                              mien_err *e) {
    *out = NULL;
    if (strlen(path) >= sizeof ((sqlite_store *)0)->path)
        return mien_err_set(e, MIEN_EINVAL, "gallery path too long");
    if ((read_only || !create) && access(path, F_OK) != 0)
        return mien_err_set(e, MIEN_ENOTFOUND, "no gallery at %s (enroll someone first)", path);
    sqlite_store *s = calloc(1, sizeof *s);
    if (!s) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    s->base.ops = &sqlite_ops;
    snprintf(s->path, sizeof s->path, "%s", path);
    int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int r = sqlite3_open_v2(path, &s->db, flags, NULL);
    int rc;
    if (r != SQLITE_OK) {
        rc = db_fail(s, r, e, "cannot open");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if ((rc = check_or_init(s, read_only, e))) goto fail;
    /* Per-connection settings. secure_delete zeroes deleted content (forget must not leave
     * embeddings behind); NORMAL sync is durable in WAL mode except for the last transactions
     * on power loss, never corrupting. */
    if ((rc = exec(s, "PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON; PRAGMA synchronous=NORMAL",
                   e, "setting up the connection")))
        goto fail;
    if (!read_only && (rc = exec(s, "PRAGMA journal_mode=WAL", e, "enabling WAL"))) goto fail;
    *out = &s->base;
    return MIEN_OK;
fail:
    sqlite3_close(s->db);
    free(s);
    return rc;
}
