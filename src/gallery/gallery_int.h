/* Inside the gallery handle: what gallery.c (open, changes, search) and gallery_io.c
 * (export, import) share. The in-memory part never sees the storage backend's SQL. */
#ifndef MIEN_GALLERY_INT_H
#define MIEN_GALLERY_INT_H

#include "core/err.h"
#include "gallery/hnsw.h"
#include "gallery/store.h"
#include "mien.h"

#include <pthread.h>
#include <stdint.h>

#define GALLERY_MODEL_MAX 64

typedef struct gsubject {
    int64_t id;                         /* store id */
    char name[MIEN_GALLERY_NAME_MAX];
    int64_t created;
    int n_faces;
} gsubject;

struct mien_gallery {
    gallery_store *store;
    mien_gallery_options opt;
    char path[1024];
    char collection[64];         /* the collection this handle works on */
    /* Locks, always taken in this order: lock, then store_lock, then err_lock. */
    pthread_rwlock_t lock;       /* the in-memory state: shared by searches, exclusive to changes */
    pthread_mutex_t store_lock;  /* the store: one call at a time */
    pthread_mutex_t err_lock;    /* err */
    mien_err err;
    /* The embedder bound to the gallery ("" and 0 while it has no face). */
    char model[GALLERY_MODEL_MAX];
    int dim;
    /* Subjects, in no particular order (enrollment order after open). */
    gsubject *subj;              /* (n_subj,) */
    int n_subj, cap_subj;
    /* Faces, in increasing id order: rows of one matrix. */
    float *emb;                  /* (cap_faces, dim) L2-normalised */
    int64_t *face_id;            /* (cap_faces,) ascending */
    int *face_subj;              /* (cap_faces,) index into subj */
    size_t n_faces, cap_faces;
    /* Approximate index over the same rows (labels = face ids), or NULL for exact search. */
    ghnsw *ann;
    int ann_dirty;               /* changed since loaded from / saved to the cache file */
    int threads;                 /* for building the index */
    /* Sharing with other processes (stores with version/poll: PostgreSQL). Both under
     * store_lock; gen also changes only under lock held exclusively. */
    int64_t gen;                 /* the store generation that memory reflects; -1: not loaded */
    int64_t announced;           /* the newest generation other processes announced */
};

/* Record a failure on the handle (thread-safe) and return status. */
int gallery_fail(mien_gallery *g, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copy a failure recorded in a mien_err onto the handle. */
int gallery_fail_err(mien_gallery *g, const mien_err *e);

/* 0 when name is a valid subject name, else a status with the reason in e. */
int gallery_name_check(const char *name, mien_err *e);

/* Index of the subject called name, or -1. Caller holds lock. */
int gallery_subject_index(const mien_gallery *g, const char *name);

/* A batch of faces to add to memory after the store committed them. */
typedef struct gallery_pending {
    int64_t subject_id;
    const char *subject_name;    /* for a subject new to memory */
    int64_t subject_created;
    int64_t face_id;
    const float *emb;            /* (dim,) normalised */
} gallery_pending;

/* Bind the model if the gallery has no face (writing meta), or check it matches
 * (MIEN_EMISMATCH). Caller holds lock exclusively and store_lock, inside a transaction. */
int gallery_bind_model(mien_gallery *g, const char *model, int dim, mien_err *e);

/* Before the first face of a gallery that may have held another dimension: drop the old
 * rows' buffers and index. Caller holds lock exclusively. */
int gallery_rebind_memory(mien_gallery *g, int dim, mien_err *e);

/* Apply committed additions to memory (subjects created as needed, rows appended, index
 * updated). Caller holds lock exclusively. */
int gallery_apply_added(mien_gallery *g, const gallery_pending *p, size_t n, mien_err *e);

/* Inside a write transaction (which serialises writers): bring memory up to the store's
 * generation, reading only the new rows when nothing was deleted or renamed meanwhile.
 * Caller holds lock exclusively and store_lock. No-op for stores without version. */
int gallery_catch_up(mien_gallery *g, mien_err *e);

/* After a successful commit by this handle: memory reflects one generation more. */
void gallery_committed(mien_gallery *g);

/* L2-normalise src (dim,) into dst; MIEN_EINVAL for a zero, NaN or infinite vector. */
int gallery_normalise(const float *src, int dim, float *dst);

#endif
