/* Gallery storage backends behind one small vtable, so that the in-memory index and the
 * public API (gallery.c) never see SQL. The embedded default is SQLite (store_sqlite.c); a
 * server backend (PostgreSQL) implements the same operations.
 *
 * Collections: one store holds any number of named face collections (a namespace of subjects
 * and their faces, bound to one embedder each). A store connection works on one collection,
 * chosen by collection_use() right after opening: every subject and face operation below sees
 * and changes that collection only. Face ids are shared by the whole store.
 *
 * Contract of every backend:
 *   - Single caller at a time: gallery.c serialises every call on one store with a mutex.
 *   - Writes happen only between begin() and commit(); rollback() undoes them. A failed write
 *     leaves the open transaction to be rolled back by the caller.
 *   - Deleting a subject deletes its faces (the same transaction).
 *   - Face ids are assigned by the store, increase with every insert and are never reused, so
 *     "ordered by id" is also "ordered by insertion" (the in-memory rows rely on it).
 *   - Embeddings are stored as dim little-endian IEEE float32 values.
 *   - Errors go to e with a status from mien.h: MIEN_EIO (cannot open/write), MIEN_EFORMAT
 *     (not a gallery, damaged), MIEN_EINVAL (constraint: duplicate name), MIEN_ENOTFOUND. */
#ifndef MIEN_GALLERY_STORE_H
#define MIEN_GALLERY_STORE_H

#include "core/err.h"

#include <stdint.h>
#include <string.h>

/* Embeddings are little-endian float32 in every backend whatever the host: copy n floats
 * between host order and that order (the same swap both ways). */
static inline void gallery_le_copy(float *dst, const void *src, int n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &dst[i], 4);
        u = __builtin_bswap32(u);
        memcpy(&dst[i], &u, 4);
    }
#endif
}

typedef struct gallery_store gallery_store;

/* A subject row. */
typedef struct gallery_subject_rec {
    int64_t id;
    const char *name;        /* valid during the callback only */
    int64_t created;         /* Unix seconds */
} gallery_subject_rec;

/* A face row. */
typedef struct gallery_face_rec {
    int64_t id;              /* assigned by face_add */
    int64_t subject;         /* subject id */
    const float *emb;        /* (dim,) valid during the call or callback only */
    int dim;
    const char *model;       /* embedder name */
    float box[4];            /* x, y, w, h in the source photo; zeros when unknown */
    char sha256[65];         /* source photo, 64 lowercase hex digits, or "" */
    int64_t created;         /* Unix seconds */
} gallery_face_rec;

/* A collection row, with its counts. */
typedef struct gallery_collection_rec {
    const char *name;        /* valid during the callback only */
    const char *model;       /* bound embedder, "" when none */
    int dim;
    int64_t created;         /* Unix seconds */
    int64_t n_subjects, n_faces;
} gallery_collection_rec;

typedef int (*gallery_subject_fn)(void *ctx, const gallery_subject_rec *s);
typedef int (*gallery_collection_fn)(void *ctx, const gallery_collection_rec *c);
typedef int (*gallery_face_fn)(void *ctx, const gallery_face_rec *f);

typedef struct gallery_store_ops {
    const char *name;        /* "sqlite" */
    void (*close)(gallery_store *st);
    /* Write transaction. */
    int (*begin)(gallery_store *st, mien_err *e);
    int (*commit)(gallery_store *st, mien_err *e);
    void (*rollback)(gallery_store *st);
    /* Key/value metadata of the store ("generation", ...). *found = 0 when the key is absent. */
    int (*meta_get)(gallery_store *st, const char *key, char *val, size_t size, int *found,
                    mien_err *e);
    int (*meta_set)(gallery_store *st, const char *key, const char *val, mien_err *e);
    /* Work on the collection called name from now on: MIEN_ENOTFOUND when there is none and
     * create is 0; with create, made in its own transaction (outside any other). */
    int (*collection_use)(gallery_store *st, const char *name, int create, mien_err *e);
    /* The embedder the collection is bound to (model "" and dim 0 when none), and binding it
     * (inside a transaction). */
    int (*binding_get)(gallery_store *st, char *model, size_t size, int *dim, mien_err *e);
    int (*binding_set)(gallery_store *st, const char *model, int dim, mien_err *e);
    /* Every collection of the store, by name, with its counts. */
    int (*scan_collections)(gallery_store *st, gallery_collection_fn fn, void *ctx, mien_err *e);
    /* Delete the collection in use with its subjects and faces (inside a transaction); the
     * connection then uses no collection. */
    int (*collection_drop)(gallery_store *st, mien_err *e);
    /* The image kept for a face (the aligned crop or the source photo): store one (inside a
     * transaction; the face must be of this collection), read one (*data malloc'd; ENOTFOUND
     * when the face has none or is not in this collection). */
    int (*image_put)(gallery_store *st, int64_t face, const char *kind, const char *type,
                     const void *data, size_t len, mien_err *e);
    int (*image_get)(gallery_store *st, int64_t face, char *kind, size_t kind_size, char *type,
                     size_t type_size, void **data, size_t *len, mien_err *e);
    /* Subjects: add (MIEN_EINVAL if the name exists), find by name (*id = 0 when absent),
     * rename (MIEN_EINVAL if taken), delete with its faces. */
    int (*subject_add)(gallery_store *st, const char *name, int64_t created, int64_t *id,
                       mien_err *e);
    int (*subject_find)(gallery_store *st, const char *name, int64_t *id, mien_err *e);
    int (*subject_rename)(gallery_store *st, int64_t id, const char *name, mien_err *e);
    int (*subject_delete)(gallery_store *st, int64_t id, mien_err *e);
    /* Add a face; f->id receives its id. *added = 0 (and no row) when the subject already
     * has a face from the same photo (same non-empty sha256). */
    int (*face_add)(gallery_store *st, gallery_face_rec *f, int *added, mien_err *e);
    /* Every subject by id, every face by id (optionally of one subject: subject > 0). A
     * callback returning non-zero stops the scan with that status. */
    int (*scan_subjects)(gallery_store *st, gallery_subject_fn fn, void *ctx, mien_err *e);
    int (*scan_faces)(gallery_store *st, int64_t subject, gallery_face_fn fn, void *ctx,
                      mien_err *e);
    /* After deletions (outside a transaction): make sure the deleted rows cannot be read
     * back from the backend's files. */
    int (*purge)(gallery_store *st, mien_err *e);

    /* Sharing one gallery between processes (optional: NULL where the backend has none, as
     * SQLite, whose handles see the file as it was when they loaded it).
     *   version: inside a transaction, the store's generation (every commit() adds exactly
     *     one, and commits are serialised by begin()) and the generation of the latest commit
     *     that deleted or renamed a subject (after which adding the new rows is not enough).
     *   poll: the newest generation that other connections announced since the last call, 0
     *     when none; it must not wait, nor make a round trip when nothing arrived. INT64_MAX
     *     when the connection was lost and made again (announcements may have been missed).
     *   scan_subjects_after / scan_faces_after: the rows with id > after, by id. */
    int (*version)(gallery_store *st, int64_t *gen, int64_t *reset, mien_err *e);
    int (*poll)(gallery_store *st, int64_t *announced, mien_err *e);
    int (*scan_subjects_after)(gallery_store *st, int64_t after, gallery_subject_fn fn, void *ctx,
                               mien_err *e);
    int (*scan_faces_after)(gallery_store *st, int64_t after, gallery_face_fn fn, void *ctx,
                            mien_err *e);
    /* Optional (NULL: mien_gallery_face_delete is MIEN_EUNSUPPORTED): delete one face
     * (MIEN_ENOTFOUND when absent). */
    int (*face_delete)(gallery_store *st, int64_t id, mien_err *e);
} gallery_store_ops;

struct gallery_store {
    const gallery_store_ops *ops;
};

/* Collection names: 1 to 63 bytes of [A-Za-z0-9._-], not starting with '.'. 0 when valid,
 * else MIEN_EINVAL with the reason in e. */
int gallery_collection_name_check(const char *name, mien_err *e);

/* The name of the collection an existing gallery's data becomes on migration, and that a
 * handle opens when none is named. */
#define GALLERY_DEFAULT_COLLECTION MIEN_GALLERY_DEFAULT_COLLECTION

/* Open the SQLite store at path. read_only: no writes, the file must exist; create: make the
 * file when missing. A new file gets the schema. */
int gallery_store_open_sqlite(const char *path, int read_only, int create, gallery_store **out,
                              mien_err *e);

/* 1 when path names a PostgreSQL database (a postgresql:// or postgres:// conninfo URI). */
int gallery_store_is_pg(const char *path);

/* The URI with its password (user:PASSWORD@, or password=... among the query parameters)
 * replaced by "***", for messages. */
void gallery_store_pg_redact(const char *uri, char *buf, size_t size);

/* Open the PostgreSQL store at uri: same read_only and create semantics (the "file" is the
 * schema: tables meta, subjects, faces in the connection's search_path). The connection
 * LISTENs for the changes other connections commit (poll). */
int gallery_store_open_pg(const char *uri, int read_only, int create, gallery_store **out,
                          mien_err *e);

#endif
