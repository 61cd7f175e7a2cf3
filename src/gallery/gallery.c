/* The gallery (mien.h, Gallery): a store behind the gallery_store vtable, mirrored in memory
 * as one (faces, dim) matrix for exact BLAS search, with an optional HNSW index for large
 * galleries.
 *
 * Every change is written to the store first, in one transaction, and applied to memory only
 * after the commit, so a failed write leaves both as they were. */
#include "gallery/gallery_int.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ==== Errors, names, vectors ==== */

int gallery_fail(mien_gallery *g, int status, const char *fmt, ...) {
    pthread_mutex_lock(&g->err_lock);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err.msg, sizeof g->err.msg, fmt, ap);
    va_end(ap);
    g->err.status = status;
    pthread_mutex_unlock(&g->err_lock);
    return status;
}

int gallery_fail_err(mien_gallery *g, const mien_err *e) {
    return gallery_fail(g, e->status ? e->status : MIEN_EINTERNAL, "%s", e->msg);
}

const char *mien_gallery_errmsg(const mien_gallery *g) {
    return g ? g->err.msg : "no gallery handle (out of memory)";
}

/* Length of the UTF-8 sequence at p (1-4), or 0 when it is not well formed. */
static int utf8_len(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (!n || (n == 2 && p[0] < 0xc2) || (n == 4 && p[0] > 0xf4)) return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    /* Overlong 3- and 4-byte forms and UTF-16 surrogates. */
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

int gallery_name_check(const char *name, mien_err *e) {
    if (!name || !*name) return mien_err_set(e, MIEN_EINVAL, "empty subject name");
    size_t len = strlen(name);
    if (len >= MIEN_GALLERY_NAME_MAX)
        return mien_err_set(e, MIEN_EINVAL, "subject name longer than %d bytes",
                            MIEN_GALLERY_NAME_MAX - 1);
    int blank = 1;
    for (const unsigned char *p = (const unsigned char *)name; *p;) {
        if (*p < 0x20 || *p == 0x7f)
            return mien_err_set(e, MIEN_EINVAL, "subject name with a control character");
        int n = utf8_len(p);
        if (!n) return mien_err_set(e, MIEN_EINVAL, "subject name is not valid UTF-8");
        if (*p != ' ') blank = 0;
        p += n;
    }
    if (blank) return mien_err_set(e, MIEN_EINVAL, "blank subject name");
    if (!strcmp(name, "unknown"))
        return mien_err_set(e, MIEN_EINVAL, "'unknown' is reserved for faces that match nobody");
    return MIEN_OK;
}

int gallery_normalise(const float *src, int dim, float *dst) {
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)src[i] * src[i];
    if (!(ss > 0) || !isfinite(ss)) return MIEN_EINVAL;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < dim; i++) dst[i] = src[i] * inv;
    return MIEN_OK;
}

int gallery_subject_index(const mien_gallery *g, const char *name) {
    for (int i = 0; i < g->n_subj; i++)
        if (!strcmp(g->subj[i].name, name)) return i;
    return -1;
}

static int subject_index_by_id(const mien_gallery *g, int64_t id) {
    for (int i = g->n_subj - 1; i >= 0; i--) /* new subjects are at the end */
        if (g->subj[i].id == id) return i;
    return -1;
}

static int check_sha(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* ==== Options, default path ==== */

void mien_gallery_options_default(mien_gallery_options *o) {
    memset(o, 0, sizeof *o);
    o->create = 1;
    o->ann = -1;
    o->ann_cache = 1;
}

int mien_gallery_default_path(char *buf, size_t size) {
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int n;
    /* The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored. */
    if (xdg && xdg[0] == '/') n = snprintf(buf, size, "%s/mien/gallery.db", xdg);
    else if (home && *home) n = snprintf(buf, size, "%s/.local/share/mien/gallery.db", home);
    else return MIEN_ENOTFOUND;
    return n < 0 || (size_t)n >= size ? MIEN_ETOOBIG : MIEN_OK;
}

/* ==== Memory: subjects and rows ==== */

static int grow_subjects(mien_gallery *g, int need) {
    if (need <= g->cap_subj) return MIEN_OK;
    int cap = g->cap_subj ? g->cap_subj : 64;
    while (cap < need) cap *= 2;
    gsubject *s = realloc(g->subj, (size_t)cap * sizeof *s);
    if (!s) return MIEN_ENOMEM;
    g->subj = s;
    g->cap_subj = cap;
    return MIEN_OK;
}

static int add_subject_mem(mien_gallery *g, int64_t id, const char *name, int64_t created) {
    if (grow_subjects(g, g->n_subj + 1)) return -1;
    gsubject *s = &g->subj[g->n_subj];
    s->id = id;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->created = created;
    s->n_faces = 0;
    return g->n_subj++;
}

static int grow_faces(mien_gallery *g, size_t need) {
    if (need <= g->cap_faces) return MIEN_OK;
    size_t cap = g->cap_faces ? g->cap_faces : 256, bytes;
    while (cap < need) cap *= 2;
    if (!mien_mul3_size(cap, (size_t)g->dim, sizeof(float), &bytes)) return MIEN_ENOMEM;
    float *e = realloc(g->emb, bytes);
    if (!e) return MIEN_ENOMEM;
    g->emb = e;
    int64_t *id = realloc(g->face_id, cap * sizeof *id);
    if (!id) return MIEN_ENOMEM;
    g->face_id = id;
    int *fs = realloc(g->face_subj, cap * sizeof *fs);
    if (!fs) return MIEN_ENOMEM;
    g->face_subj = fs;
    g->cap_faces = cap;
    return MIEN_OK;
}

/* Append one row; v is already normalised. */
static int push_face(mien_gallery *g, int64_t id, int subj, const float *v) {
    if (grow_faces(g, g->n_faces + 1)) return MIEN_ENOMEM;
    size_t r = g->n_faces++;
    memcpy(g->emb + r * (size_t)g->dim, v, (size_t)g->dim * sizeof(float));
    g->face_id[r] = id;
    g->face_subj[r] = subj;
    g->subj[subj].n_faces++;
    return MIEN_OK;
}

/* Row of a face id (rows are in increasing id order), or -1. */
static long row_of(const mien_gallery *g, int64_t id) {
    size_t lo = 0, hi = g->n_faces;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->face_id[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < g->n_faces && g->face_id[lo] == id ? (long)lo : -1;
}

/* ==== The approximate index ==== */

static int ann_wanted(const mien_gallery *g) {
    if (g->opt.ann == 0 || g->n_faces == 0) return 0;
    if (g->opt.ann == 1) return 1;
    size_t min = g->opt.ann_min_faces > 0 ? (size_t)g->opt.ann_min_faces : MIEN_GALLERY_ANN_MIN_FACES;
    /* Hysteresis: once built, keep it until the gallery halves. */
    return g->ann ? g->n_faces >= min / 2 : g->n_faces >= min;
}

/* PATH.hnsw for the default collection (as before collections existed), PATH.NAME.hnsw for
 * the others (names are [A-Za-z0-9._-], not starting with '.'). */
static void cache_path(const mien_gallery *g, char *buf, size_t size, const char *suffix) {
    if (!strcmp(g->collection, GALLERY_DEFAULT_COLLECTION))
        snprintf(buf, size, "%s.hnsw%s", g->path, suffix);
    else
        snprintf(buf, size, "%s.%s.hnsw%s", g->path, g->collection, suffix);
}

/* Build (or load from the cache file) the index when the size calls for it; drop it when
 * it does not. Caller holds lock exclusively (or is open()). */
static int ann_update(mien_gallery *g, mien_err *e) {
    if (!ann_wanted(g)) {
        if (g->ann) {
            ghnsw_free(g->ann);
            g->ann = NULL;
            if (!g->opt.read_only && g->opt.ann_cache) {
                char cp[1100];
                cache_path(g, cp, sizeof cp, "");
                unlink(cp);
            }
        }
        return MIEN_OK;
    }
    if (g->ann) return MIEN_OK;
    char err[512] = "", cp[1100];
    ghnsw_params p;
    ghnsw_params_default(&p);
    cache_path(g, cp, sizeof cp, "");
    if (g->opt.ann_cache && access(cp, R_OK) == 0) {
        ghnsw *h = NULL;
        /* The cached index is used only if it holds exactly the gallery's rows, bit for bit;
         * anything else (stale, from another gallery, damaged) is rebuilt. */
        if (ghnsw_load(cp, g->dim, &p, &h, err, sizeof err) == MIEN_OK &&
            ghnsw_matches(h, g->face_id, g->emb, g->n_faces)) {
            g->ann = h;
            g->ann_dirty = 0;
            return MIEN_OK;
        }
        ghnsw_free(h);
    }
    int rc = ghnsw_create(g->dim, g->n_faces, &p, &g->ann, err, sizeof err);
    if (!rc) rc = ghnsw_add(g->ann, g->emb, g->face_id, g->n_faces, g->threads, err, sizeof err);
    if (rc) {
        ghnsw_free(g->ann);
        g->ann = NULL;
        return mien_err_set(e, rc, "building the search index: %s", err);
    }
    g->ann_dirty = 1;
    return MIEN_OK;
}

/* Write the index next to the gallery so that the next open loads it: to a temporary file
 * renamed into place, so a reader never sees half a file. */
static void ann_save(mien_gallery *g) {
    if (!g->ann || !g->ann_dirty || g->opt.read_only || !g->opt.ann_cache) return;
    char tmp[1200], cp[1100], err[512];
    cache_path(g, cp, sizeof cp, "");
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", cp, (long)getpid());
    if (ghnsw_save(g->ann, tmp, err, sizeof err) == MIEN_OK && rename(tmp, cp) == 0)
        g->ann_dirty = 0;
    else
        unlink(tmp); /* a cache: failing to write it only costs a rebuild */
}

int mien_gallery_ann_active(mien_gallery *g) {
    pthread_rwlock_rdlock(&g->lock);
    int a = g->ann != NULL;
    pthread_rwlock_unlock(&g->lock);
    return a;
}

/* ==== Open, load, close ==== */

typedef struct load_ctx {
    mien_gallery *g;
    mien_err *e;
    float *tmp;   /* (dim,) */
} load_ctx;

static int load_subject(void *ctx, const gallery_subject_rec *s) {
    load_ctx *c = ctx;
    if (add_subject_mem(c->g, s->id, s->name, s->created) < 0)
        return mien_err_set(c->e, MIEN_ENOMEM, "out of memory loading the gallery");
    return MIEN_OK;
}

static int load_face(void *ctx, const gallery_face_rec *f) {
    load_ctx *c = ctx;
    mien_gallery *g = c->g;
    /* No metadata, or (catching up) a gallery emptied and bound again meanwhile by another
     * process: the first face binds. */
    if (!g->model[0] || g->n_faces == 0) {
        if (f->dim != g->dim) gallery_rebind_memory(g, f->dim, c->e);
        snprintf(g->model, sizeof g->model, "%s", f->model);
        g->dim = f->dim;
    }
    if (f->dim != g->dim || strcmp(f->model, g->model) != 0)
        return mien_err_set(c->e, MIEN_EFORMAT, "%s: face %lld is a '%s' %d-d embedding in a "
                            "gallery of '%s' %d-d ones (damaged gallery)", g->path,
                            (long long)f->id, f->model, f->dim, g->model, g->dim);
    if (!c->tmp && !(c->tmp = malloc((size_t)g->dim * sizeof(float))))
        return mien_err_set(c->e, MIEN_ENOMEM, "out of memory loading the gallery");
    if (gallery_normalise(f->emb, f->dim, c->tmp))
        return mien_err_set(c->e, MIEN_EFORMAT, "%s: face %lld has a zero or non-finite embedding",
                            g->path, (long long)f->id);
    /* Subjects were loaded in id order: binary search. */
    int lo = 0, hi = g->n_subj;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (g->subj[mid].id < f->subject) lo = mid + 1;
        else hi = mid;
    }
    if (lo == g->n_subj || g->subj[lo].id != f->subject) lo = subject_index_by_id(g, f->subject);
    if (lo < 0)
        return mien_err_set(c->e, MIEN_EFORMAT, "%s: face %lld belongs to no subject", g->path,
                            (long long)f->id);
    if (g->n_faces && f->id <= g->face_id[g->n_faces - 1])
        return mien_err_set(c->e, MIEN_EFORMAT, "%s: faces out of order", g->path);
    if (push_face(g, f->id, lo, c->tmp))
        return mien_err_set(c->e, MIEN_ENOMEM, "out of memory loading the gallery");
    return MIEN_OK;
}

static int load(mien_gallery *g, mien_err *e) {
    const gallery_store_ops *ops = g->store->ops;
    int rc;
    if ((rc = ops->binding_get(g->store, g->model, sizeof g->model, &g->dim, e))) return rc;
    if (g->model[0] && (g->dim <= 0 || g->dim > 65536))
        return mien_err_set(e, MIEN_EFORMAT, "%s: bad embedding dimension %d", g->path, g->dim);
    load_ctx c = {g, e, NULL};
    rc = ops->scan_subjects(g->store, load_subject, &c, e);
    if (!rc) rc = ops->scan_faces(g->store, 0, load_face, &c, e);
    free(c.tmp);
    return rc;
}

/* ==== Sharing with other processes ==== */

/* Forget everything in memory (before loading it again). */
static void clear_memory(mien_gallery *g) {
    free(g->subj);
    free(g->emb);
    free(g->face_id);
    free(g->face_subj);
    g->subj = NULL;
    g->emb = NULL;
    g->face_id = NULL;
    g->face_subj = NULL;
    g->n_subj = g->cap_subj = 0;
    g->n_faces = g->cap_faces = 0;
    ghnsw_free(g->ann);
    g->ann = NULL;
    g->model[0] = '\0';
    g->dim = 0;
}

/* Add the rows committed by others since memory was in step: ids only grow, and writers are
 * serialised, so they are exactly those past the last ids held. */
static int load_new(mien_gallery *g, mien_err *e) {
    const gallery_store_ops *ops = g->store->ops;
    int64_t last_subj = 0, last_face = g->n_faces ? g->face_id[g->n_faces - 1] : 0;
    for (int i = 0; i < g->n_subj; i++)
        if (g->subj[i].id > last_subj) last_subj = g->subj[i].id;
    size_t first = g->n_faces;
    load_ctx c = {g, e, NULL};
    int rc = ops->scan_subjects_after(g->store, last_subj, load_subject, &c, e);
    if (!rc) rc = ops->scan_faces_after(g->store, last_face, load_face, &c, e);
    free(c.tmp);
    if (!rc && g->ann && g->n_faces > first) {
        char err[512];
        rc = ghnsw_add(g->ann, g->emb + first * (size_t)g->dim, g->face_id + first,
                       g->n_faces - first, 1, err, sizeof err);
        if (rc) rc = mien_err_set(e, rc, "updating the search index: %s", err);
    }
    return rc;
}

int gallery_catch_up(mien_gallery *g, mien_err *e) {
    const gallery_store_ops *ops = g->store->ops;
    if (!ops->version) return MIEN_OK;
    int64_t gen, reset;
    int rc = ops->version(g->store, &gen, &reset, e);
    if (rc) return rc;
    if (gen == g->gen) { /* up to date (after a reconnection, say): nothing pending */
        g->announced = gen;
        return MIEN_OK;
    }
    if (g->gen < 0 || reset > g->gen || gen < g->gen) { /* deletions or renames: all again */
        clear_memory(g);
        rc = load(g, e);
    } else {
        rc = load_new(g, e);
    }
    if (!rc) rc = ann_update(g, e);
    /* A failed load leaves memory partial: the next call starts from scratch. */
    g->gen = rc ? -1 : gen;
    /* Every announcement so far is of a generation <= gen: writers wait for our lock. */
    g->announced = g->gen;
    return rc;
}

void gallery_committed(mien_gallery *g) {
    if (g->store->ops->version && g->gen >= 0) g->gen++;
}

/* Before reading memory: catch up with what other processes committed. Without news (the
 * usual case) this reads the socket without a round trip. Caller holds no lock. */
static int sync_reads(mien_gallery *g) {
    const gallery_store_ops *ops = g->store ? g->store->ops : NULL;
    if (!ops || !ops->poll) return MIEN_OK;
    mien_err e = {0};
    int64_t seen = 0;
    pthread_mutex_lock(&g->store_lock);
    int rc = ops->poll(g->store, &seen, &e);
    if (seen > g->announced) g->announced = seen;
    int stale = g->announced > g->gen;
    pthread_mutex_unlock(&g->store_lock);
    if (rc) return gallery_fail_err(g, &e);
    if (!stale) return MIEN_OK;
    pthread_rwlock_wrlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    if (g->announced > g->gen) { /* another thread may have caught up meanwhile */
        rc = ops->begin(g->store, &e);
        if (!rc) rc = gallery_catch_up(g, &e);
        ops->rollback(g->store); /* nothing written: only the writer lock to let go */
    }
    pthread_mutex_unlock(&g->store_lock);
    pthread_rwlock_unlock(&g->lock);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}

int mien_gallery_open(const char *path, const mien_gallery_options *o, mien_gallery **out) {
    *out = NULL;
    mien_gallery *g = calloc(1, sizeof *g);
    if (!g) return MIEN_ENOMEM;
    pthread_rwlock_init(&g->lock, NULL);
    pthread_mutex_init(&g->store_lock, NULL);
    pthread_mutex_init(&g->err_lock, NULL);
    *out = g;
    if (o) g->opt = *o;
    else mien_gallery_options_default(&g->opt);
    if (g->opt.read_only) g->opt.create = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    g->threads = g->opt.threads > 0 ? g->opt.threads : ncpu > 0 ? (int)ncpu : 1;
    if (!path || !*path) return gallery_fail(g, MIEN_EINVAL, "no gallery path");
    if (strlen(path) >= sizeof g->path) return gallery_fail(g, MIEN_EINVAL, "gallery path too long");
    mien_err e = {0};
    const char *coll = g->opt.collection && *g->opt.collection ? g->opt.collection
                                                                : GALLERY_DEFAULT_COLLECTION;
    if (gallery_collection_name_check(coll, &e)) return gallery_fail_err(g, &e);
    snprintf(g->collection, sizeof g->collection, "%s", coll);
    g->opt.collection = g->collection;
    int rc;
    g->gen = g->announced = -1;
    if (gallery_store_is_pg(path)) {
        /* Messages name the database without its password; the index is kept in memory
         * only (no file beside a database). */
        gallery_store_pg_redact(path, g->path, sizeof g->path);
        g->opt.ann_cache = 0;
        rc = gallery_store_open_pg(path, g->opt.read_only, g->opt.create, &g->store, &e);
    } else {
        snprintf(g->path, sizeof g->path, "%s", path);
        rc = gallery_store_open_sqlite(path, g->opt.read_only, g->opt.create, &g->store, &e);
    }
    /* The default collection exists in every gallery; another one is made on first use. */
    if (!rc) rc = g->store->ops->collection_use(g->store, coll, g->opt.create && !g->opt.read_only, &e);
    if (!rc && g->store->ops->version) { /* one consistent state, and its generation */
        rc = g->store->ops->begin(g->store, &e);
        if (!rc) rc = gallery_catch_up(g, &e);
        g->store->ops->rollback(g->store);
    } else if (!rc) {
        rc = load(g, &e);
    }
    if (!rc && g->opt.model && g->model[0] && g->n_faces > 0 &&
        (strcmp(g->opt.model, g->model) != 0 || (g->opt.dim > 0 && g->opt.dim != g->dim)))
        rc = mien_err_set(&e, MIEN_EMISMATCH, "%s holds '%s' embeddings (%d-d) but this run uses "
                          "'%s' (%d-d): choose the same embedder or another gallery", g->path,
                          g->model, g->dim, g->opt.model, g->opt.dim);
    if (!rc) rc = ann_update(g, &e);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}

void mien_gallery_close(mien_gallery *g) {
    if (!g) return;
    ann_save(g);
    ghnsw_free(g->ann);
    if (g->store) g->store->ops->close(g->store);
    free(g->subj);
    free(g->emb);
    free(g->face_id);
    free(g->face_subj);
    pthread_rwlock_destroy(&g->lock);
    pthread_mutex_destroy(&g->store_lock);
    pthread_mutex_destroy(&g->err_lock);
    free(g);
}

int mien_gallery_model(mien_gallery *g, char *name, size_t size, int *dim) {
    int rc = sync_reads(g);
    pthread_rwlock_rdlock(&g->lock);
    if (name && size) snprintf(name, size, "%s", g->n_faces ? g->model : "");
    if (dim) *dim = g->n_faces ? g->dim : 0;
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

void mien_gallery_count(mien_gallery *g, int *n_subjects, int *n_faces) {
    sync_reads(g); /* a failure is on the handle; the counts are those in memory */
    pthread_rwlock_rdlock(&g->lock);
    if (n_subjects) *n_subjects = g->n_subj;
    if (n_faces) *n_faces = (int)g->n_faces;
    pthread_rwlock_unlock(&g->lock);
}

/* ==== Changes ==== */

int gallery_bind_model(mien_gallery *g, const char *model, int dim, mien_err *e) {
    if (g->n_faces > 0 && g->model[0]) {
        if (strcmp(model, g->model) != 0 || dim != g->dim)
            return mien_err_set(e, MIEN_EMISMATCH, "the gallery holds '%s' embeddings (%d-d), not "
                                "'%s' (%d-d): use the same embedder, or another gallery", g->model,
                                g->dim, model, dim);
        return MIEN_OK;
    }
    return g->store->ops->binding_set(g->store, model, dim, e);
}

int gallery_rebind_memory(mien_gallery *g, int dim, mien_err *e) {
    if (g->n_faces > 0 || dim == g->dim) return MIEN_OK;
    free(g->emb);
    free(g->face_id);
    free(g->face_subj);
    g->emb = NULL;
    g->face_id = NULL;
    g->face_subj = NULL;
    g->cap_faces = 0;
    ghnsw_free(g->ann);
    g->ann = NULL;
    g->dim = dim;
    (void)e;
    return MIEN_OK;
}

int gallery_apply_added(mien_gallery *g, const gallery_pending *p, size_t n, mien_err *e) {
    size_t first = g->n_faces;
    int last = -1;
    for (size_t i = 0; i < n; i++) {
        int s = last >= 0 && g->subj[last].id == p[i].subject_id ? last
                                                                   : subject_index_by_id(g, p[i].subject_id);
        if (s < 0 && (s = add_subject_mem(g, p[i].subject_id, p[i].subject_name,
                                          p[i].subject_created)) < 0)
            goto oom;
        last = s;
        if (!p[i].emb) continue; /* a subject without faces */
        /* The store's ids only grow, and ours are the newest. */
        if (g->n_faces && p[i].face_id <= g->face_id[g->n_faces - 1])
            return mien_err_set(e, MIEN_EINTERNAL, "face ids out of order");
        if (push_face(g, p[i].face_id, s, p[i].emb)) goto oom;
    }
    if (g->ann) {
        char err[512];
        int rc = ghnsw_add(g->ann, g->emb + first * (size_t)g->dim, g->face_id + first,
                           g->n_faces - first, 1, err, sizeof err);
        g->ann_dirty = 1;
        if (rc) return mien_err_set(e, rc, "updating the search index: %s", err);
    }
    return ann_update(g, e);
oom:
    return mien_err_set(e, MIEN_ENOMEM, "out of memory: the change is saved in %s but not "
                        "loaded; open the gallery again", g->path);
}

int mien_gallery_enroll(mien_gallery *g, const char *name, const char *model, int dim,
                        const mien_gallery_face *faces, int n, int *n_added) {
    mien_err e = {0};
    if (n_added) *n_added = 0;
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    if (gallery_name_check(name, &e)) return gallery_fail_err(g, &e);
    if (!model || !*model || strlen(model) >= GALLERY_MODEL_MAX)
        return gallery_fail(g, MIEN_EINVAL, "enroll: no model name");
    if (dim <= 0 || dim > 65536) return gallery_fail(g, MIEN_EINVAL, "enroll: bad dimension %d", dim);
    if (n <= 0 || !faces) return gallery_fail(g, MIEN_EINVAL, "enroll: no faces");
    size_t bytes;
    if (!mien_mul3_size((size_t)n, (size_t)dim, sizeof(float), &bytes))
        return gallery_fail(g, MIEN_ETOOBIG, "enroll: too many faces");
    float *v = malloc(bytes);
    gallery_pending *pend = malloc((size_t)n * sizeof *pend);
    if (!v || !pend) {
        free(v);
        free(pend);
        return gallery_fail(g, MIEN_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        if (!faces[i].embedding || gallery_normalise(faces[i].embedding, dim, v + (size_t)i * dim)) {
            free(v);
            free(pend);
            return gallery_fail(g, MIEN_EINVAL, "enroll: face %d has a zero or non-finite embedding", i);
        }
        if (faces[i].image_sha256 && !check_sha(faces[i].image_sha256)) {
            free(v);
            free(pend);
            return gallery_fail(g, MIEN_EINVAL, "enroll: face %d: image_sha256 is not 64 lowercase "
                                "hex digits", i);
        }
    }
    pthread_rwlock_wrlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    int64_t now = (int64_t)time(NULL), sid = 0;
    size_t m = 0;
    int rc = ops->begin(g->store, &e);
    if (!rc) rc = gallery_catch_up(g, &e);
    if (!rc) rc = gallery_bind_model(g, model, dim, &e);
    if (!rc) rc = gallery_rebind_memory(g, dim, &e);
    int s = gallery_subject_index(g, name);
    if (!rc) {
        if (s >= 0) sid = g->subj[s].id;
        else if (!(rc = ops->subject_find(g->store, name, &sid, &e)) && !sid)
            rc = ops->subject_add(g->store, name, now, &sid, &e);
    }
    for (int i = 0; !rc && i < n; i++) {
        gallery_face_rec f = {.subject = sid, .emb = v + (size_t)i * dim, .dim = dim,
                              .model = model, .created = now};
        memcpy(f.box, faces[i].box, sizeof f.box);
        if (faces[i].image_sha256) snprintf(f.sha256, sizeof f.sha256, "%s", faces[i].image_sha256);
        int added = 0;
        rc = ops->face_add(g->store, &f, &added, &e);
        if (!rc && added)
            pend[m++] = (gallery_pending){sid, name, now, f.id, v + (size_t)i * dim};
    }
    if (!rc && s < 0 && m == 0) /* a new subject whose faces were all duplicates: keep it */
        pend[m++] = (gallery_pending){sid, name, now, 0, NULL};
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    else gallery_committed(g);
    pthread_mutex_unlock(&g->store_lock);
    if (!rc) {
        if (g->n_faces == 0) {
            snprintf(g->model, sizeof g->model, "%s", model);
            g->dim = dim;
        }
        rc = gallery_apply_added(g, pend, m, &e);
    }
    pthread_rwlock_unlock(&g->lock);
    if (!rc && n_added)
        for (size_t i = 0; i < m; i++) *n_added += pend[i].emb != NULL;
    free(v);
    free(pend);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}

int mien_gallery_rename(mien_gallery *g, const char *old_name, const char *new_name) {
    mien_err e = {0};
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    if (!old_name) return gallery_fail(g, MIEN_EINVAL, "rename: no name");
    if (gallery_name_check(new_name, &e)) return gallery_fail_err(g, &e);
    pthread_rwlock_wrlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    int s = -1, rc = ops->begin(g->store, &e);
    if (!rc) rc = gallery_catch_up(g, &e);
    if (!rc && (s = gallery_subject_index(g, old_name)) < 0)
        rc = mien_err_set(&e, MIEN_ENOTFOUND, "no subject named '%s'", old_name);
    else if (!rc && strcmp(old_name, new_name) != 0 && gallery_subject_index(g, new_name) >= 0)
        rc = mien_err_set(&e, MIEN_EINVAL, "a subject named '%s' already exists", new_name);
    if (!rc) rc = ops->subject_rename(g->store, g->subj[s].id, new_name, &e);
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    else gallery_committed(g);
    pthread_mutex_unlock(&g->store_lock);
    if (!rc) snprintf(g->subj[s].name, sizeof g->subj[s].name, "%s", new_name);
    pthread_rwlock_unlock(&g->lock);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}

int mien_gallery_forget(mien_gallery *g, const char *name) {
    mien_err e = {0};
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    if (!name) return gallery_fail(g, MIEN_EINVAL, "forget: no name");
    pthread_rwlock_wrlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    int rc = ops->begin(g->store, &e);
    if (!rc) rc = gallery_catch_up(g, &e);
    int s = gallery_subject_index(g, name);
    int64_t sid = s >= 0 ? g->subj[s].id : 0;
    /* Also a subject another process added since we opened: it must go from the file. */
    if (!rc && !sid && !(rc = ops->subject_find(g->store, name, &sid, &e)) && !sid)
        rc = mien_err_set(&e, MIEN_ENOTFOUND, "no subject named '%s'", name);
    if (!rc) rc = ops->subject_delete(g->store, sid, &e);
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    else gallery_committed(g);
    mien_err pe = {0};
    int purge = rc ? MIEN_OK : ops->purge(g->store, &pe);
    pthread_mutex_unlock(&g->store_lock);
    if (!rc && s >= 0) {
        /* Drop the subject's rows, keeping the others in order, and renumber subjects. */
        size_t w = 0;
        for (size_t r = 0; r < g->n_faces; r++) {
            int fs = g->face_subj[r];
            if (fs == s) {
                if (g->ann) ghnsw_delete(g->ann, g->face_id[r]);
                continue;
            }
            if (w != r) {
                memcpy(g->emb + w * (size_t)g->dim, g->emb + r * (size_t)g->dim,
                       (size_t)g->dim * sizeof(float));
                g->face_id[w] = g->face_id[r];
            }
            g->face_subj[w++] = fs > s ? fs - 1 : fs;
        }
        /* The rows are gone from memory too: clear the vacated tail. */
        if (g->n_faces > w)
            memset(g->emb + w * (size_t)g->dim, 0, (g->n_faces - w) * (size_t)g->dim * sizeof(float));
        g->n_faces = w;
        memmove(&g->subj[s], &g->subj[s + 1], (size_t)(g->n_subj - s - 1) * sizeof *g->subj);
        g->n_subj--;
        memset(&g->subj[g->n_subj], 0, sizeof *g->subj);
        if (g->ann) g->ann_dirty = 1;
        rc = ann_update(g, &e);
    }
    pthread_rwlock_unlock(&g->lock);
    if (rc) return gallery_fail_err(g, &e);
    return purge ? gallery_fail_err(g, &pe) : MIEN_OK;
}

/* ==== Listing ==== */

static int cmp_subject_name(const void *a, const void *b) {
    return strcmp(((const mien_subject *)a)->name, ((const mien_subject *)b)->name);
}

/* The named free functions of the arrays the gallery API returns. */
void mien_subjects_free(mien_subject *subjects) { free(subjects); }
void mien_gallery_faces_free(mien_gallery_face_info *faces) { free(faces); }
void mien_collections_free(mien_collection *collections) { free(collections); }
void mien_buffer_free(void *data) { free(data); }

int mien_gallery_subjects(mien_gallery *g, mien_subject **out, int *n) {
    *out = NULL;
    *n = 0;
    int rc = sync_reads(g);
    if (rc) return rc;
    pthread_rwlock_rdlock(&g->lock);
    mien_subject *v = malloc((size_t)(g->n_subj ? g->n_subj : 1) * sizeof *v);
    if (!v) {
        pthread_rwlock_unlock(&g->lock);
        return gallery_fail(g, MIEN_ENOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_subj; i++) {
        v[i].id = g->subj[i].id;
        memcpy(v[i].name, g->subj[i].name, sizeof v[i].name);
        v[i].n_faces = g->subj[i].n_faces;
        v[i].created = g->subj[i].created;
    }
    int cnt = g->n_subj;
    pthread_rwlock_unlock(&g->lock);
    qsort(v, (size_t)cnt, sizeof *v, cmp_subject_name);
    *out = v;
    *n = cnt;
    return MIEN_OK;
}

/* ==== Search ==== */

/* Per-call scratch: the best score and row of every subject, and the list of subjects
 * touched so that resetting costs what was used. */
typedef struct best_tab {
    float *sim;      /* (n_subj,) -inf when untouched */
    long *row;       /* (n_subj,) */
    int *touched;    /* (n_subj,) */
    int n_touched;
} best_tab;

static void best_offer(best_tab *b, int s, float sim, long row) {
    if (b->sim[s] == -INFINITY) b->touched[b->n_touched++] = s;
    if (sim > b->sim[s]) {
        b->sim[s] = sim;
        b->row[s] = row;
    }
}

/* The k best touched subjects into out (best first; ties to the smaller subject index), and
 * reset the table. */
static int best_take(const mien_gallery *g, best_tab *b, int k, mien_match *out) {
    int m = 0;
    int *sel = b->touched + b->n_touched; /* (k,) scratch after the touched list: see alloc */
    for (int t = 0; t < b->n_touched; t++) {
        int s = b->touched[t];
        float v = b->sim[s];
        if (m == k && !(v > b->sim[sel[m - 1]] || (v == b->sim[sel[m - 1]] && s < sel[m - 1])))
            continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && (v > b->sim[sel[j - 1]] || (v == b->sim[sel[j - 1]] && s < sel[j - 1]))) {
            sel[j] = sel[j - 1];
            j--;
        }
        sel[j] = s;
    }
    for (int i = 0; i < m; i++) {
        int s = sel[i];
        out[i].subject_id = g->subj[s].id;
        memcpy(out[i].name, g->subj[s].name, sizeof out[i].name);
        out[i].face_id = g->face_id[b->row[s]];
        out[i].similarity = b->sim[s];
    }
    for (int t = 0; t < b->n_touched; t++) b->sim[b->touched[t]] = -INFINITY;
    b->n_touched = 0;
    return m;
}

int mien_gallery_search_batch(mien_gallery *g, const float *emb, int n, int dim, int k,
                              mien_match *out, int *n_out) {
    if (n < 0 || k <= 0 || (n > 0 && (!emb || !out || !n_out)))
        return gallery_fail(g, MIEN_EINVAL, "search: bad arguments");
    for (int i = 0; i < n; i++) n_out[i] = 0;
    if (n == 0) return MIEN_OK;
    int rc = sync_reads(g);
    if (rc) return rc;
    pthread_rwlock_rdlock(&g->lock);
    const size_t nf = g->n_faces;
    if (nf == 0) goto done;
    if (dim != g->dim) {
        rc = gallery_fail(g, MIEN_EMISMATCH, "search: a %d-d embedding for a gallery of %d-d '%s' "
                          "embeddings", dim, g->dim, g->model);
        goto done;
    }
    /* out is (n, k) as the caller sized it: its rows stay k apart when fewer subjects exist. */
    const size_t stride = (size_t)k;
    if (k > g->n_subj) k = g->n_subj;
    /* Queries normalised; scores of a block of queries against every face. With the index,
     * the candidates of one query at a time. */
    int qb = g->ann ? 1 : (int)(((size_t)8 << 20) / nf);
    if (qb < 1) qb = 1;
    if (qb > n) qb = n;
    /* Faces asked of the index: enough to hold k subjects when some have several faces. */
    size_t want = (size_t)(8 * k < 32 ? 32 : 8 * k);
    int cand = g->ann ? (int)(want < nf ? want : nf) : 0;
    size_t nsims = g->ann ? (size_t)cand : (size_t)qb * nf;
    float *q = malloc((size_t)qb * dim * sizeof *q);
    float *sims = malloc(nsims * sizeof *sims);
    int64_t *labels = g->ann ? malloc((size_t)cand * sizeof *labels) : NULL;
    best_tab b = {malloc((size_t)g->n_subj * sizeof(float)), malloc((size_t)g->n_subj * sizeof(long)),
                  malloc((size_t)(g->n_subj + k) * sizeof(int)), 0};
    if (!q || !sims || !b.sim || !b.row || !b.touched || (g->ann && !labels)) {
        rc = gallery_fail(g, MIEN_ENOMEM, "search: out of memory");
        goto free_all;
    }
    for (int s = 0; s < g->n_subj; s++) b.sim[s] = -INFINITY;
    for (int q0 = 0; q0 < n; q0 += qb) {
        int nq = n - q0 < qb ? n - q0 : qb;
        for (int i = 0; i < nq; i++)
            if (gallery_normalise(emb + (size_t)(q0 + i) * dim, dim, q + (size_t)i * dim)) {
                rc = gallery_fail(g, MIEN_EINVAL, "search: query %d is zero or not finite", q0 + i);
                goto free_all;
            }
        if (g->ann) {
            int got = 0;
            rc = ghnsw_search(g->ann, q, cand, 0, labels, sims, &got);
            if (rc) {
                gallery_fail(g, rc, "search: the approximate index failed");
                goto free_all;
            }
            for (int j = 0; j < got; j++) {
                long r = row_of(g, labels[j]);
                if (r >= 0) best_offer(&b, g->face_subj[r], sims[j], r);
            }
            n_out[q0] = best_take(g, &b, k, out + (size_t)q0 * stride);
            continue;
        }
        if (nq == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)nf, dim, 1.0f, g->emb, dim, q, 1,
                        0.0f, sims, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, (blasint)nf, dim, 1.0f, q, dim,
                        g->emb, dim, 0.0f, sims, (blasint)nf);
        for (int i = 0; i < nq; i++) {
            const float *si = sims + (size_t)i * nf;
            for (size_t r = 0; r < nf; r++) best_offer(&b, g->face_subj[r], si[r], (long)r);
            n_out[q0 + i] = best_take(g, &b, k, out + (size_t)(q0 + i) * stride);
        }
    }
free_all:
    free(q);
    free(sims);
    free(labels);
    free(b.sim);
    free(b.row);
    free(b.touched);
done:
    pthread_rwlock_unlock(&g->lock);
    return rc;
}

int mien_gallery_search(mien_gallery *g, const float *emb, int dim, int k, mien_match *out,
                        int *n_out) {
    return mien_gallery_search_batch(g, emb, 1, dim, k, out, n_out);
}

int mien_gallery_identify(mien_gallery *g, const float *emb, int dim, float threshold,
                          mien_match *best, int *known) {
    int n = 0;
    *known = 0;
    memset(best, 0, sizeof *best);
    int rc = mien_gallery_search_batch(g, emb, 1, dim, 1, best, &n);
    if (rc) return rc;
    if (n == 0) best->similarity = -INFINITY;
    *known = n > 0 && best->similarity >= threshold;
    return MIEN_OK;
}

/* ==== Single faces and empty subjects ====
 * For services that address faces one by one (the CompreFace-compatible API: every enrolled
 * example has an id that can be listed and deleted) and create subjects before their faces. */

typedef struct faces_ctx {
    const mien_gallery *g;
    mien_gallery_face_info *v;
    int n, cap;
} faces_ctx;

static int faces_collect(void *ctx, const gallery_face_rec *f) {
    faces_ctx *c = ctx;
    int s = subject_index_by_id(c->g, f->subject);
    if (s < 0) return MIEN_OK; /* added by another process since we loaded: not searched either */
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        mien_gallery_face_info *nv = realloc(c->v, (size_t)cap * sizeof *nv);
        if (!nv) return MIEN_ENOMEM;
        c->v = nv;
        c->cap = cap;
    }
    mien_gallery_face_info *o = &c->v[c->n++];
    memset(o, 0, sizeof *o);
    o->id = f->id;
    snprintf(o->subject, sizeof o->subject, "%s", c->g->subj[s].name);
    snprintf(o->image_sha256, sizeof o->image_sha256, "%s", f->sha256);
    memcpy(o->box, f->box, sizeof o->box);
    o->created = f->created;
    return MIEN_OK;
}

int mien_gallery_faces(mien_gallery *g, const char *name, mien_gallery_face_info **out, int *n) {
    mien_err e = {0};
    *out = NULL;
    *n = 0;
    faces_ctx c = {g, NULL, 0, 0};
    pthread_rwlock_rdlock(&g->lock);
    int64_t sid = 0;
    int rc = MIEN_OK;
    if (name) {
        int s = gallery_subject_index(g, name);
        if (s < 0) rc = mien_err_set(&e, MIEN_ENOTFOUND, "no subject named '%s'", name);
        else sid = g->subj[s].id;
    }
    if (!rc) {
        pthread_mutex_lock(&g->store_lock);
        rc = g->store->ops->scan_faces(g->store, sid, faces_collect, &c, &e);
        pthread_mutex_unlock(&g->store_lock);
        if (rc == MIEN_ENOMEM && !e.msg[0]) mien_err_set(&e, rc, "out of memory");
    }
    pthread_rwlock_unlock(&g->lock);
    if (rc) {
        free(c.v);
        return gallery_fail_err(g, &e);
    }
    *out = c.v;
    *n = c.n;
    return MIEN_OK;
}

int mien_gallery_face_delete(mien_gallery *g, int64_t id, char *subject, size_t size) {
    mien_err e = {0};
    if (subject && size) subject[0] = '\0';
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    const gallery_store_ops *ops = g->store->ops;
    if (!ops->face_delete)
        return gallery_fail(g, MIEN_EUNSUPPORTED, "the %s store cannot delete single faces",
                            ops->name);
    pthread_rwlock_wrlock(&g->lock);
    long r = row_of(g, id);
    if (r < 0) {
        pthread_rwlock_unlock(&g->lock);
        return gallery_fail(g, MIEN_ENOTFOUND, "no face with id %lld", (long long)id);
    }
    pthread_mutex_lock(&g->store_lock);
    int rc = ops->begin(g->store, &e);
    if (!rc) rc = ops->face_delete(g->store, id, &e);
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    mien_err pe = {0};
    int purge = rc ? MIEN_OK : ops->purge(g->store, &pe);
    pthread_mutex_unlock(&g->store_lock);
    if (!rc) {
        int s = g->face_subj[r];
        if (subject && size) snprintf(subject, size, "%s", g->subj[s].name);
        g->subj[s].n_faces--;
        if (g->ann) {
            ghnsw_delete(g->ann, id);
            g->ann_dirty = 1;
        }
        /* Keep the rows in id order: shift the tail down by one. */
        size_t tail = g->n_faces - (size_t)r - 1, d = (size_t)g->dim;
        memmove(g->emb + (size_t)r * d, g->emb + ((size_t)r + 1) * d, tail * d * sizeof(float));
        memmove(g->face_id + r, g->face_id + r + 1, tail * sizeof *g->face_id);
        memmove(g->face_subj + r, g->face_subj + r + 1, tail * sizeof *g->face_subj);
        g->n_faces--;
        memset(g->emb + g->n_faces * d, 0, d * sizeof(float));
        rc = ann_update(g, &e);
    }
    pthread_rwlock_unlock(&g->lock);
    if (rc) return gallery_fail_err(g, &e);
    return purge ? gallery_fail_err(g, &pe) : MIEN_OK;
}

int mien_gallery_subject_add(mien_gallery *g, const char *name, int *created) {
    mien_err e = {0};
    if (created) *created = 0;
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    if (gallery_name_check(name, &e)) return gallery_fail_err(g, &e);
    pthread_rwlock_wrlock(&g->lock);
    if (gallery_subject_index(g, name) >= 0) {
        pthread_rwlock_unlock(&g->lock);
        return MIEN_OK;
    }
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    int64_t now = (int64_t)time(NULL), sid = 0;
    int rc = ops->begin(g->store, &e);
    if (!rc && !(rc = ops->subject_find(g->store, name, &sid, &e)) && !sid)
        rc = ops->subject_add(g->store, name, now, &sid, &e);
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    pthread_mutex_unlock(&g->store_lock);
    gallery_pending p = {sid, name, now, 0, NULL};
    if (!rc) rc = gallery_apply_added(g, &p, 1, &e);
    pthread_rwlock_unlock(&g->lock);
    if (rc) return gallery_fail_err(g, &e);
    if (created) *created = 1;
    return MIEN_OK;
}

int mien_gallery_face_embedding(mien_gallery *g, int64_t id, float *emb, int dim) {
    pthread_rwlock_rdlock(&g->lock);
    long r = row_of(g, id);
    int rc = r < 0 ? MIEN_ENOTFOUND : dim != g->dim ? MIEN_EMISMATCH : MIEN_OK;
    if (!rc) memcpy(emb, g->emb + (size_t)r * (size_t)g->dim, (size_t)dim * sizeof(float));
    int gdim = g->dim;
    pthread_rwlock_unlock(&g->lock);
    if (rc == MIEN_ENOTFOUND) return gallery_fail(g, rc, "no face with id %lld", (long long)id);
    if (rc) return gallery_fail(g, rc, "embedding of dimension %d asked, the gallery holds %d", dim, gdim);
    return MIEN_OK;
}

/* ==== Collections and kept images ==== */

const char *mien_gallery_collection(const mien_gallery *g) { return g ? g->collection : ""; }

typedef struct coll_ctx {
    mien_collection *v;
    int n, cap;
} coll_ctx;

static int coll_collect(void *ctx, const gallery_collection_rec *r) {
    coll_ctx *c = ctx;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        mien_collection *nv = realloc(c->v, (size_t)cap * sizeof *nv);
        if (!nv) return MIEN_ENOMEM;
        c->v = nv;
        c->cap = cap;
    }
    mien_collection *o = &c->v[c->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", r->name);
    snprintf(o->model, sizeof o->model, "%s", r->model);
    o->dim = r->dim;
    o->created = r->created;
    o->n_subjects = r->n_subjects;
    o->n_faces = r->n_faces;
    return MIEN_OK;
}

int mien_gallery_collections(mien_gallery *g, mien_collection **out, int *n) {
    mien_err e = {0};
    *out = NULL;
    *n = 0;
    coll_ctx c = {0};
    pthread_mutex_lock(&g->store_lock);
    int rc = g->store->ops->scan_collections(g->store, coll_collect, &c, &e);
    pthread_mutex_unlock(&g->store_lock);
    if (rc) {
        free(c.v);
        if (rc == MIEN_ENOMEM && !e.msg[0]) mien_err_set(&e, rc, "out of memory");
        return gallery_fail_err(g, &e);
    }
    *out = c.v;
    *n = c.n;
    return MIEN_OK;
}

int mien_gallery_drop(mien_gallery *g) {
    mien_err e = {0};
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    pthread_rwlock_wrlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    int rc = ops->begin(g->store, &e);
    if (!rc) rc = ops->collection_drop(g->store, &e);
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    else gallery_committed(g);
    mien_err pe = {0};
    int purge = rc ? MIEN_OK : ops->purge(g->store, &pe);
    pthread_mutex_unlock(&g->store_lock);
    if (!rc) {
        /* Nothing of it stays in memory, nor in the index cache beside the file. */
        if (g->emb) memset(g->emb, 0, g->n_faces * (size_t)g->dim * sizeof(float));
        clear_memory(g);
        if (g->opt.ann_cache && !g->opt.read_only) {
            char cp[1100];
            cache_path(g, cp, sizeof cp, "");
            unlink(cp);
        }
    }
    pthread_rwlock_unlock(&g->lock);
    if (rc) return gallery_fail_err(g, &e);
    return purge ? gallery_fail_err(g, &pe) : MIEN_OK;
}

int mien_gallery_face_image_set(mien_gallery *g, int64_t id, const char *kind, const char *type,
                                const void *data, size_t len) {
    mien_err e = {0};
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    if (!data || !len || !type || !*type || strlen(type) > 63 || !kind || !*kind || strlen(kind) > 15)
        return gallery_fail(g, MIEN_EINVAL, "face image: bytes, a media type (up to 63 characters) "
                            "and a kind (up to 15) are needed");
    /* Under the shared lock: the face must be ours in memory; the store checks it too. */
    pthread_rwlock_rdlock(&g->lock);
    int rc = row_of(g, id) < 0 ? mien_err_set(&e, MIEN_ENOTFOUND, "no face with id %lld", (long long)id)
                               : MIEN_OK;
    if (!rc) {
        pthread_mutex_lock(&g->store_lock);
        const gallery_store_ops *ops = g->store->ops;
        rc = ops->begin(g->store, &e);
        if (!rc) rc = ops->image_put(g->store, id, kind, type, data, len, &e);
        if (!rc) rc = ops->commit(g->store, &e);
        if (rc) ops->rollback(g->store);
        pthread_mutex_unlock(&g->store_lock);
    }
    pthread_rwlock_unlock(&g->lock);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}

int mien_gallery_face_image(mien_gallery *g, int64_t id, void **data, size_t *len, char *type,
                            size_t type_size, char *kind, size_t kind_size) {
    mien_err e = {0};
    char t[64] = "", k[16] = "";
    *data = NULL;
    *len = 0;
    pthread_rwlock_rdlock(&g->lock);
    int rc = row_of(g, id) < 0 ? mien_err_set(&e, MIEN_ENOTFOUND, "no face with id %lld", (long long)id)
                               : MIEN_OK;
    if (!rc) {
        pthread_mutex_lock(&g->store_lock);
        rc = g->store->ops->image_get(g->store, id, k, sizeof k, t, sizeof t, data, len, &e);
        pthread_mutex_unlock(&g->store_lock);
    }
    pthread_rwlock_unlock(&g->lock);
    if (type && type_size) snprintf(type, type_size, "%s", t);
    if (kind && kind_size) snprintf(kind, kind_size, "%s", k);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}
