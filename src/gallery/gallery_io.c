/* Gallery export and import: the portable JSON Lines format documented in mien.h.
 *
 * Export reads the store (not memory), so it writes what the file holds. Import checks
 * every line and writes everything in one transaction: a bad line anywhere leaves the gallery
 * unchanged. */
#include "gallery/gallery_int.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Longest line import accepts: a subject with about 100,000 faces of 128 floats. */
#define IMPORT_MAX_LINE ((size_t)256 << 20)

/* ==== Export ==== */

typedef struct subj_list {
    gallery_subject_rec *v;
    char **names;
    int n, cap;
} subj_list;

static int collect_subject(void *ctx, const gallery_subject_rec *s) {
    subj_list *l = ctx;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        gallery_subject_rec *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return MIEN_ENOMEM;
        l->v = v;
        char **nm = realloc(l->names, (size_t)cap * sizeof *nm);
        if (!nm) return MIEN_ENOMEM;
        l->names = nm;
        l->cap = cap;
    }
    if (!(l->names[l->n] = strdup(s->name))) return MIEN_ENOMEM;
    l->v[l->n] = *s;
    l->v[l->n].name = l->names[l->n];
    l->n++;
    return MIEN_OK;
}

/* A growing text buffer for one output line. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, double v) {
    char t[48];
    int n = snprintf(t, sizeof t, fmt, v);
    sb_put(b, t, (size_t)n);
}

/* A JSON string literal, escaped by cJSON. */
static void sb_json_string(sbuf *b, const char *s) {
    cJSON *item = cJSON_CreateStringReference(s);
    char *q = item ? cJSON_PrintUnformatted(item) : NULL;
    cJSON_Delete(item); /* a reference: s itself is not freed */
    if (!q) {
        b->oom = 1;
        return;
    }
    sb_str(b, q);
    free(q);
}

typedef struct export_ctx {
    sbuf *b;
    int first;
} export_ctx;

static int export_face(void *ctx, const gallery_face_rec *f) {
    export_ctx *c = ctx;
    sbuf *b = c->b;
    sb_str(b, c->first ? "{\"embedding\":[" : ",{\"embedding\":[");
    c->first = 0;
    for (int i = 0; i < f->dim; i++) {
        if (i) sb_put(b, ",", 1);
        sb_fmt(b, "%.9g", f->emb[i]);
    }
    sb_str(b, "],\"box\":[");
    for (int i = 0; i < 4; i++) {
        if (i) sb_put(b, ",", 1);
        sb_fmt(b, "%.9g", f->box[i]);
    }
    sb_str(b, "],\"image_sha256\":");
    if (f->sha256[0]) {
        sb_put(b, "\"", 1);
        sb_str(b, f->sha256);
        sb_put(b, "\"", 1);
    } else {
        sb_str(b, "null");
    }
    sb_fmt(b, ",\"created\":%.0f}", (double)f->created);
    return b->oom ? MIEN_ENOMEM : MIEN_OK;
}

int mien_gallery_export(mien_gallery *g, const char *path) {
    mien_err e = {0};
    FILE *f = fopen(path, "w");
    if (!f) return gallery_fail(g, MIEN_EIO, "cannot write %s: %s", path, strerror(errno));
    pthread_rwlock_rdlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    subj_list l = {0};
    sbuf b = {0};
    int rc = ops->scan_subjects(g->store, collect_subject, &l, &e);
    if (rc == MIEN_ENOMEM && !e.msg[0]) mien_err_set(&e, rc, "out of memory");
    if (!rc) {
        sb_str(&b, "{\"format\":\"mien-gallery\",\"version\":1,\"model\":");
        sb_json_string(&b, g->n_faces ? g->model : "");
        sb_fmt(&b, ",\"dim\":%.0f}\n", g->n_faces ? g->dim : 0);
        if (b.oom || fwrite(b.p, 1, b.n, f) != b.n) rc = mien_err_set(&e, MIEN_EIO, "cannot write %s", path);
    }
    for (int i = 0; !rc && i < l.n; i++) {
        b.n = 0;
        sb_str(&b, "{\"name\":");
        sb_json_string(&b, l.v[i].name);
        sb_fmt(&b, ",\"created\":%.0f,\"faces\":[", (double)l.v[i].created);
        export_ctx c = {&b, 1};
        rc = ops->scan_faces(g->store, l.v[i].id, export_face, &c, &e);
        if (rc == MIEN_ENOMEM && !e.msg[0]) mien_err_set(&e, rc, "out of memory");
        sb_str(&b, "]}\n");
        if (!rc && (b.oom || fwrite(b.p, 1, b.n, f) != b.n))
            rc = mien_err_set(&e, b.oom ? MIEN_ENOMEM : MIEN_EIO, "cannot write %s", path);
    }
    pthread_mutex_unlock(&g->store_lock);
    pthread_rwlock_unlock(&g->lock);
    if (fclose(f) != 0 && !rc) rc = mien_err_set(&e, MIEN_EIO, "cannot write %s: %s", path, strerror(errno));
    if (rc) remove(path);
    for (int i = 0; i < l.n; i++) free(l.names[i]);
    free(l.v);
    free(l.names);
    free(b.p);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}

/* ==== Import ==== */

typedef struct import_state {
    mien_gallery *g;
    const char *path;
    long line;
    char model[GALLERY_MODEL_MAX];
    int dim;
    int64_t now;
    /* Additions to apply after the commit. */
    gallery_pending *pend;
    size_t *emb_at;         /* (n_pend,) row in emb, or SIZE_MAX for a subject without faces */
    size_t n_pend, cap_pend;
    float *emb;             /* (n_emb, dim) normalised */
    size_t n_emb, cap_emb;
    char **names;           /* names of subjects new to memory (owned) */
    size_t n_names, cap_names;
    int new_subjects;
} import_state;

static int bad(import_state *st, mien_err *e, const char *why) {
    return mien_err_set(e, MIEN_EFORMAT, "%s:%ld: %s", st->path, st->line, why);
}

static int push_pending(import_state *st, int64_t sid, const char *name, int64_t created,
                        int64_t face_id, const float *v) {
    if (st->n_pend == st->cap_pend) {
        size_t cap = st->cap_pend ? 2 * st->cap_pend : 256;
        gallery_pending *p = realloc(st->pend, cap * sizeof *p);
        if (!p) return MIEN_ENOMEM;
        st->pend = p;
        size_t *a = realloc(st->emb_at, cap * sizeof *a);
        if (!a) return MIEN_ENOMEM;
        st->emb_at = a;
        st->cap_pend = cap;
    }
    size_t at = SIZE_MAX;
    if (v) {
        if (st->n_emb == st->cap_emb) {
            size_t cap = st->cap_emb ? 2 * st->cap_emb : 256, bytes;
            if (!mien_mul3_size(cap, (size_t)st->dim, sizeof(float), &bytes)) return MIEN_ENOMEM;
            float *e = realloc(st->emb, bytes);
            if (!e) return MIEN_ENOMEM;
            st->emb = e;
            st->cap_emb = cap;
        }
        at = st->n_emb++;
        memcpy(st->emb + at * (size_t)st->dim, v, (size_t)st->dim * sizeof(float));
    }
    st->pend[st->n_pend] = (gallery_pending){sid, name, created, face_id, NULL};
    st->emb_at[st->n_pend++] = at;
    return MIEN_OK;
}

/* A "created" time (Unix seconds): the number when it is one an int64 holds, else fallback
 * (a hostile 1e95 must not reach the conversion: found by the gallery fuzz target). */
static int64_t unix_time_of(const cJSON *x, int64_t fallback) {
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 9.0e18)
        return fallback;
    return (int64_t)x->valuedouble;
}

static int number_array(const cJSON *a, float *out, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 3.4e38) return 0;
        out[i++] = (float)x->valuedouble;
    }
    return 1;
}

static int import_header(import_state *st, const char *line, mien_err *e) {
    cJSON *h = cJSON_Parse(line);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(h, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(h, "version");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(h, "model");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(h, "dim");
    int rc = MIEN_OK;
    if (!h || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "mien-gallery") != 0)
        rc = bad(st, e, "not a mien gallery export (no {\"format\":\"mien-gallery\"} header)");
    else if (!cJSON_IsNumber(ver) || ver->valueint != 1)
        rc = mien_err_set(e, MIEN_EUNSUPPORTED, "%s: export format version %g is not supported",
                          st->path, cJSON_IsNumber(ver) ? ver->valuedouble : -1.0);
    else if (!cJSON_IsString(model) || strlen(model->valuestring) >= GALLERY_MODEL_MAX ||
             !cJSON_IsNumber(dim) || dim->valuedouble < 0 || dim->valuedouble > 65536 ||
             (dim->valueint == 0) != (model->valuestring[0] == '\0'))
        rc = bad(st, e, "bad model or dim in the header");
    if (!rc) {
        snprintf(st->model, sizeof st->model, "%s", model->valuestring);
        st->dim = dim->valueint;
    }
    cJSON_Delete(h);
    return rc;
}

/* One subject line: checked, written to the store, queued for memory. */
static int import_subject(import_state *st, const char *line, mien_err *e) {
    mien_gallery *g = st->g;
    const gallery_store_ops *ops = g->store->ops;
    cJSON *o = cJSON_Parse(line);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(o, "created");
    const cJSON *faces = cJSON_GetObjectItemCaseSensitive(o, "faces");
    float *v = NULL;
    int rc = MIEN_OK;
    if (!o || !cJSON_IsObject(o)) {
        rc = bad(st, e, "not a JSON object");
        goto out;
    }
    if (!cJSON_IsString(name) || gallery_name_check(name->valuestring, e)) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", cJSON_IsString(name) ? e->msg : "no \"name\"");
        rc = bad(st, e, why);
        goto out;
    }
    if (faces && !cJSON_IsArray(faces)) {
        rc = bad(st, e, "\"faces\" is not an array");
        goto out;
    }
    int64_t when = unix_time_of(created, st->now);
    int nf = faces ? cJSON_GetArraySize(faces) : 0;
    if (nf > 0 && st->dim == 0) {
        rc = bad(st, e, "faces in an export without a model");
        goto out;
    }
    /* The subject: in memory, in the file (another process, or earlier in this import), or new. */
    int s = gallery_subject_index(g, name->valuestring);
    int64_t sid = s >= 0 ? g->subj[s].id : 0;
    if (!sid && (rc = ops->subject_find(g->store, name->valuestring, &sid, e))) goto out;
    if (!sid) {
        if ((rc = ops->subject_add(g->store, name->valuestring, when, &sid, e))) goto out;
        st->new_subjects++;
    }
    const char *kept = NULL;
    if (s < 0) {
        if (st->n_names == st->cap_names) {
            size_t cap = st->cap_names ? 2 * st->cap_names : 64;
            char **nn = realloc(st->names, cap * sizeof *nn);
            if (!nn) goto oom;
            st->names = nn;
            st->cap_names = cap;
        }
        if (!(kept = st->names[st->n_names] = strdup(name->valuestring))) goto oom;
        st->n_names++;
    }
    if (nf > 0 && !(v = malloc((size_t)st->dim * sizeof *v))) goto oom;
    size_t before = st->n_pend;
    const cJSON *f;
    int i = 0;
    cJSON_ArrayForEach(f, faces) {
        char why[96];
        const cJSON *em = cJSON_GetObjectItemCaseSensitive(f, "embedding");
        const cJSON *box = cJSON_GetObjectItemCaseSensitive(f, "box");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(f, "image_sha256");
        const cJSON *fc = cJSON_GetObjectItemCaseSensitive(f, "created");
        gallery_face_rec rec = {.subject = sid, .dim = st->dim, .model = st->model,
                                .created = unix_time_of(fc, st->now)};
        snprintf(why, sizeof why, "face %d: embedding is not %d finite numbers", i, st->dim);
        if (!number_array(em, v, st->dim) || gallery_normalise(v, st->dim, v)) {
            rc = bad(st, e, why);
            goto out;
        }
        if (box && !cJSON_IsNull(box) && !number_array(box, rec.box, 4)) {
            snprintf(why, sizeof why, "face %d: box is not 4 numbers", i);
            rc = bad(st, e, why);
            goto out;
        }
        if (sha && !cJSON_IsNull(sha)) {
            int ok = cJSON_IsString(sha) && strlen(sha->valuestring) == 64;
            for (int k = 0; ok && k < 64; k++) {
                char ch = sha->valuestring[k];
                ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
            }
            if (!ok) {
                snprintf(why, sizeof why, "face %d: image_sha256 is not 64 lowercase hex digits", i);
                rc = bad(st, e, why);
                goto out;
            }
            memcpy(rec.sha256, sha->valuestring, 65);
        }
        rec.emb = v;
        int added = 0;
        if ((rc = ops->face_add(g->store, &rec, &added, e))) goto out;
        if (added && push_pending(st, sid, kept, when, rec.id, v)) goto oom;
        i++;
    }
    if (s < 0 && st->n_pend == before && push_pending(st, sid, kept, when, 0, NULL)) goto oom;
out:
    free(v);
    cJSON_Delete(o);
    return rc;
oom:
    free(v);
    cJSON_Delete(o);
    return mien_err_set(e, MIEN_ENOMEM, "out of memory importing %s", st->path);
}

int mien_gallery_import(mien_gallery *g, const char *path, int *n_subjects, int *n_faces) {
    mien_err e = {0};
    if (n_subjects) *n_subjects = 0;
    if (n_faces) *n_faces = 0;
    if (g->opt.read_only) return gallery_fail(g, MIEN_EINVAL, "%s is open read-only", g->path);
    FILE *f = fopen(path, "r");
    if (!f) return gallery_fail(g, MIEN_EIO, "cannot read %s: %s", path, strerror(errno));
    import_state st = {.g = g, .path = path, .now = (int64_t)time(NULL)};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    pthread_rwlock_wrlock(&g->lock);
    pthread_mutex_lock(&g->store_lock);
    const gallery_store_ops *ops = g->store->ops;
    int rc = ops->begin(g->store, &e), header = 0;
    if (!rc) rc = gallery_catch_up(g, &e);
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        st.line++;
        if ((size_t)len > IMPORT_MAX_LINE) {
            rc = bad(&st, &e, "line too long");
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (!header) {
            header = 1;
            if ((rc = import_header(&st, line, &e))) break;
            if (st.dim > 0 && !(rc = gallery_bind_model(g, st.model, st.dim, &e)))
                rc = gallery_rebind_memory(g, st.dim, &e);
            continue;
        }
        rc = import_subject(&st, line, &e);
    }
    if (!rc && ferror(f)) rc = mien_err_set(&e, MIEN_EIO, "cannot read %s", path);
    if (!rc && !header) rc = mien_err_set(&e, MIEN_EFORMAT, "%s: empty file", path);
    if (!rc) rc = ops->commit(g->store, &e);
    if (rc) ops->rollback(g->store);
    else gallery_committed(g);
    pthread_mutex_unlock(&g->store_lock);
    if (!rc) {
        for (size_t i = 0; i < st.n_pend; i++)
            st.pend[i].emb = st.emb_at[i] == SIZE_MAX ? NULL : st.emb + st.emb_at[i] * (size_t)st.dim;
        if (g->n_faces == 0 && st.n_emb > 0) {
            snprintf(g->model, sizeof g->model, "%s", st.model);
            g->dim = st.dim;
        }
        rc = gallery_apply_added(g, st.pend, st.n_pend, &e);
    }
    pthread_rwlock_unlock(&g->lock);
    fclose(f);
    free(line);
    if (!rc) {
        if (n_subjects) *n_subjects = st.new_subjects;
        if (n_faces) *n_faces = (int)st.n_emb;
    }
    for (size_t i = 0; i < st.n_names; i++) free(st.names[i]);
    free(st.names);
    free(st.pend);
    free(st.emb_at);
    free(st.emb);
    return rc ? gallery_fail_err(g, &e) : MIEN_OK;
}
