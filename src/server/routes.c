/* mien serve, the routes: one table of method, path template, metrics label, role and
 * handler; /api/v1/... goes to compreface_route first. */
#include "core/sha256.h"
#include "server/srv_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without src/server/compreface.c (the Makefile defines MIEN_HAVE_COMPREFACE when it
 * exists), /api/v1/... is not served. A plain definition rather than a weak one: a weak
 * default in this object would keep the linker from ever taking compreface.o out of
 * libmien.a, since nothing else refers to it. */
#ifndef MIEN_HAVE_COMPREFACE
int compreface_route(srv_req *r) {
    (void)r;
    return 0;
}
#endif

/* ==== Helpers ==== */

/* Open the photo of data; replies and returns NULL when it is not a usable image. */
static mien_photo *open_photo(srv_req *r, const unsigned char *data, size_t len) {
    mien_session *s = srv_session(r);
    mien_photo *p = NULL;
    int rc = mien_photo_open(s, data, len, &p);
    if (rc == MIEN_OK) {
        /* Decode now, so that a truncated or corrupt file is refused here, not half-read. */
        const mien_image *img;
        rc = mien_photo_image(s, p, &img);
    }
    if (rc != MIEN_OK) {
        int st = srv_http_status(rc);
        if (rc == MIEN_EFORMAT || rc == MIEN_EUNSUPPORTED)
            srv_reply_error(r, st, "not a readable JPEG, PNG or WebP image: %s", mien_errmsg(s));
        else srv_reply_error(r, st, "%s", mien_errmsg(s));
        mien_photo_close(p);
        return NULL;
    }
    return p;
}

/* Detect; replies and returns -1 on failure. */
static int detect(srv_req *r, mien_photo *p, mien_face **faces, int *n) {
    mien_session *s = srv_session(r);
    int rc = mien_photo_detect(s, p, srv_detect_options(r), faces, n);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "detection failed: %s", mien_errmsg(s));
        return -1;
    }
    return 0;
}

static int embed(srv_req *r, mien_photo *p, const mien_face *f, float *emb) {
    mien_session *s = srv_session(r);
    int rc = mien_photo_embed(s, p, f, emb);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "embedding failed: %s", mien_errmsg(s));
        return -1;
    }
    return 0;
}

static int largest(const mien_face *f, int n) {
    int best = -1;
    float area = -1;
    for (int i = 0; i < n; i++) {
        float a = f[i].box[2] * f[i].box[3];
        if (a > area) area = a, best = i;
    }
    return best;
}

static float iou(const float *a, const float *b) {
    float x0 = fmaxf(a[0], b[0]), y0 = fmaxf(a[1], b[1]);
    float x1 = fminf(a[0] + a[2], b[0] + b[2]), y1 = fminf(a[1] + a[3], b[1] + b[3]);
    float inter = fmaxf(0, x1 - x0) * fmaxf(0, y1 - y0);
    float uni = a[2] * a[3] + b[2] * b[3] - inter;
    return uni > 0 ? inter / uni : 0;
}

static cJSON *photo_header(mien_photo *p) {
    int w, h;
    mien_photo_size(p, &w, &h);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "width", w);
    cJSON_AddNumberToObject(o, "height", h);
    return o;
}

static double round6(float v) { return round((double)v * 1e6) / 1e6; }

static int cmp_face_x(const void *a, const void *b) {
    float xa = ((const mien_face *)a)->box[0], xb = ((const mien_face *)b)->box[0];
    return (xa > xb) - (xa < xb);
}

/* The path segment at index i of r's path, URL-decoded into buf; -1 when malformed. */
static int path_segment(const char *path, int i, char *buf, size_t size) {
    const char *p = path;
    for (int k = 0; k <= i; k++) {
        if (*p != '/') return -1;
        p++;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (k == i) return srv_url_decode(p, n, buf, size);
        p += n;
    }
    return -1;
}

/* ==== /v1 handlers ==== */

typedef struct route_args {
    char name[MIEN_GALLERY_NAME_MAX * 3]; /* the {name} of the path, decoded */
} route_args;

static void h_detect(srv_req *r, const route_args *a, int with_embedding) {
    const unsigned char *data;
    size_t len;
    if (srv_req_image(r, 0, NULL, &data, &len)) return;
    mien_photo *p = open_photo(r, data, len);
    if (!p) return;
    mien_face *faces = NULL;
    int n = 0;
    if (detect(r, p, &faces, &n) == 0) {
        qsort(faces, (size_t)n, sizeof *faces, cmp_face_x);
        int dim = mien_models_embedding_dim(srv_models(r));
        float *emb = malloc((size_t)dim * sizeof *emb);
        cJSON *o = photo_header(p);
        if (with_embedding) {
            cJSON_AddStringToObject(o, "model", mien_models_embedder_name(srv_models(r)));
            cJSON_AddNumberToObject(o, "dim", dim);
        }
        cJSON *fa = cJSON_AddArrayToObject(o, "faces");
        int ok = emb != NULL;
        for (int i = 0; ok && i < n; i++) {
            cJSON *fo = srv_face_json(&faces[i]);
            cJSON_AddItemToArray(fa, fo);
            if (with_embedding) {
                if (embed(r, p, &faces[i], emb)) ok = -1;
                else cJSON_AddItemToObject(fo, "embedding", cJSON_CreateFloatArray(emb, dim));
            }
        }
        if (ok == 1) srv_reply_json(r, 200, o);
        else {
            cJSON_Delete(o);
            if (!ok) srv_reply_error(r, 503, "out of memory");
        }
        free(emb);
    }
    free(faces);
    mien_photo_close(p);
}

static void h_detect_only(srv_req *r, const route_args *a) { h_detect(r, a, 0); }
static void h_embed(srv_req *r, const route_args *a) { h_detect(r, a, 1); }

/* The largest face of one image of the request, embedded. Replies and returns -1 on failure
 * (422 when there is no face). */
static int one_face(srv_req *r, int which, mien_face *face, float *emb) {
    static const char *const names[] = {"image1", "image2"};
    const unsigned char *data;
    size_t len;
    if (srv_req_image(r, which, names, &data, &len)) return -1;
    mien_photo *p = open_photo(r, data, len);
    if (!p) return -1;
    mien_face *faces = NULL;
    int n = 0, rc = -1;
    if (detect(r, p, &faces, &n) == 0) {
        if (n == 0) {
            srv_reply_error(r, 422, "no face found in image %d", which + 1);
        } else {
            *face = faces[largest(faces, n)];
            rc = embed(r, p, face, emb);
        }
    }
    free(faces);
    mien_photo_close(p);
    return rc;
}

static void h_verify(srv_req *r, const route_args *a) {
    int dim = mien_models_embedding_dim(srv_models(r));
    float *emb = malloc(2 * (size_t)dim * sizeof *emb);
    mien_face f[2];
    if (!emb) {
        srv_reply_error(r, 503, "out of memory");
        return;
    }
    if (one_face(r, 0, &f[0], emb) == 0 && one_face(r, 1, &f[1], emb + dim) == 0) {
        float sim = mien_similarity(emb, emb + dim, dim), thr = srv_threshold(r);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "similarity", round6(sim));
        cJSON_AddNumberToObject(o, "threshold", round6(thr));
        cJSON_AddBoolToObject(o, "same", sim >= thr);
        cJSON *fa = cJSON_AddArrayToObject(o, "faces");
        cJSON_AddItemToArray(fa, srv_face_json(&f[0]));
        cJSON_AddItemToArray(fa, srv_face_json(&f[1]));
        srv_reply_json(r, 200, o);
    }
    free(emb);
}

/* ?threshold=T, or the server's. Replies and returns -1 when malformed. */
static int threshold_of(srv_req *r, float *thr) {
    const char *t = srv_req_query(r, "threshold");
    *thr = srv_threshold(r);
    if (!t) return 0;
    char *end;
    float v = strtof(t, &end);
    if (end == t || *end || !isfinite(v) || v < -1 || v > 1) {
        srv_reply_error(r, 400, "threshold must be a number in [-1, 1]");
        return -1;
    }
    *thr = v;
    return 0;
}

static void h_identify(srv_req *r, const route_args *a) {
    float thr;
    if (threshold_of(r, &thr)) return;
    const unsigned char *data;
    size_t len;
    if (srv_req_image(r, 0, NULL, &data, &len)) return;
    mien_photo *p = open_photo(r, data, len);
    if (!p) return;
    mien_face *faces = NULL;
    int n = 0;
    int dim = mien_models_embedding_dim(srv_models(r));
    float *emb = NULL;
    mien_match *best = NULL;
    int *got = NULL;
    if (detect(r, p, &faces, &n)) goto done;
    qsort(faces, (size_t)n, sizeof *faces, cmp_face_x); /* left to right, as mien identify */
    size_t m = n ? (size_t)n : 1;
    emb = malloc(m * (size_t)dim * sizeof *emb);
    best = calloc(m, sizeof *best);
    got = calloc(m, sizeof *got);
    if (!emb || !best || !got) {
        srv_reply_error(r, 503, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (embed(r, p, &faces[i], emb + (size_t)i * dim)) goto done;
    mien_gallery *g = srv_gallery(r);
    int rc = n ? mien_gallery_search_batch(g, emb, n, dim, 1, best, got) : MIEN_OK;
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "gallery search failed: %s", mien_gallery_errmsg(g));
        goto done;
    }
    cJSON *o = photo_header(p);
    cJSON_AddNumberToObject(o, "threshold", round6(thr));
    cJSON *fa = cJSON_AddArrayToObject(o, "faces");
    for (int i = 0; i < n; i++) {
        cJSON *fo = srv_face_json(&faces[i]);
        int known = got[i] > 0 && best[i].similarity >= thr;
        cJSON_AddStringToObject(fo, "name", known ? best[i].name : "unknown");
        cJSON_AddBoolToObject(fo, "known", known);
        if (got[i] > 0) {
            cJSON_AddNumberToObject(fo, "similarity", round6(best[i].similarity));
            cJSON_AddStringToObject(fo, "nearest", best[i].name);
        } else {
            cJSON_AddNullToObject(fo, "similarity");
            cJSON_AddNullToObject(fo, "nearest");
        }
        cJSON_AddItemToArray(fa, fo);
    }
    srv_reply_json(r, 200, o);
done:
    free(emb);
    free(best);
    free(got);
    free(faces);
    mien_photo_close(p);
}

static cJSON *subject_json(const mien_subject *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddNumberToObject(o, "faces", s->n_faces);
    cJSON_AddNumberToObject(o, "created", (double)s->created);
    return o;
}

static void h_subjects(srv_req *r, const route_args *a) {
    mien_gallery *g = srv_gallery(r);
    mien_subject *v = NULL;
    int n = 0, rc = mien_gallery_subjects(g, &v, &n);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        return;
    }
    int nf = 0;
    mien_gallery_count(g, NULL, &nf);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "faces", nf);
    cJSON *sa = cJSON_AddArrayToObject(o, "subjects");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(sa, subject_json(&v[i]));
    free(v);
    srv_reply_json(r, 200, o);
}

/* The subject called name, or a 404 reply and -1. */
static int find_subject(srv_req *r, const char *name, mien_subject *out) {
    mien_gallery *g = srv_gallery(r);
    mien_subject *v = NULL;
    int n = 0, rc = mien_gallery_subjects(g, &v, &n), found = 0;
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        return -1;
    }
    for (int i = 0; i < n && !found; i++)
        if (!strcmp(v[i].name, name)) *out = v[i], found = 1;
    free(v);
    if (!found) {
        srv_reply_error(r, 404, "no subject named '%s'", name);
        return -1;
    }
    return 0;
}

static void h_subject_get(srv_req *r, const route_args *a) {
    mien_subject s;
    if (find_subject(r, a->name, &s)) return;
    mien_gallery *g = srv_gallery(r);
    mien_gallery_face_info *f = NULL;
    int n = 0, rc = mien_gallery_faces(g, a->name, &f, &n);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        return;
    }
    cJSON *o = subject_json(&s);
    cJSON *fa = cJSON_AddArrayToObject(o, "face_list");
    for (int i = 0; i < n; i++) {
        cJSON *fo = cJSON_CreateObject();
        cJSON_AddNumberToObject(fo, "id", (double)f[i].id);
        cJSON_AddItemToObject(fo, "box", cJSON_CreateFloatArray(f[i].box, 4));
        if (f[i].image_sha256[0]) cJSON_AddStringToObject(fo, "image_sha256", f[i].image_sha256);
        else cJSON_AddNullToObject(fo, "image_sha256");
        cJSON_AddNumberToObject(fo, "created", (double)f[i].created);
        cJSON_AddItemToArray(fa, fo);
    }
    free(f);
    srv_reply_json(r, 200, o);
}

static void h_subject_delete(srv_req *r, const route_args *a) {
    mien_gallery *g = srv_gallery(r);
    int rc = mien_gallery_forget(g, a->name);
    if (rc == MIEN_ENOTFOUND) srv_reply_error(r, 404, "no subject named '%s'", a->name);
    else if (rc) srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
    else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "deleted", a->name);
        srv_reply_json(r, 200, o);
    }
}

/* The string "name" of a JSON body, or NULL with a 400 (usage says what was expected)
 * already sent. Owned by the request. */
static const char *json_name(srv_req *r, const char *usage) {
    cJSON *j = srv_req_json(r);
    if (!j) return NULL;
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (!cJSON_IsString(nn)) {
        srv_reply_error(r, 400, "%s", usage);
        return NULL;
    }
    return nn->valuestring;
}

static void h_subject_rename(srv_req *r, const route_args *a) {
    const char *nn = json_name(r, "expected {\"name\": NEW_NAME}");
    if (!nn) return;
    mien_gallery *g = srv_gallery(r);
    int rc = mien_gallery_rename(g, a->name, nn);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", nn);
    cJSON_AddStringToObject(o, "old_name", a->name);
    srv_reply_json(r, 200, o);
}

/* Enroll one face of the request's photo under name: the largest, or with ?box=x,y,w,h the
 * detected face that overlaps that box most (IoU >= 0.3). */
static void enroll(srv_req *r, const char *name) {
    float want[4];
    const char *boxq = srv_req_query(r, "box");
    if (boxq) {
        char tail;
        if (sscanf(boxq, "%f,%f,%f,%f%c", &want[0], &want[1], &want[2], &want[3], &tail) != 4 ||
            !(want[2] > 0) || !(want[3] > 0) || !isfinite(want[0]) || !isfinite(want[1]) ||
            !isfinite(want[2]) || !isfinite(want[3])) {
            srv_reply_error(r, 400, "box must be x,y,w,h (numbers, w and h > 0)");
            return;
        }
    }
    const unsigned char *data;
    size_t len;
    if (srv_req_image(r, 0, NULL, &data, &len)) return;
    mien_photo *p = open_photo(r, data, len);
    if (!p) return;
    mien_face *faces = NULL;
    int n = 0, dim = mien_models_embedding_dim(srv_models(r));
    float *emb = malloc((size_t)dim * sizeof *emb);
    if (!emb) {
        srv_reply_error(r, 503, "out of memory");
        goto done;
    }
    if (detect(r, p, &faces, &n)) goto done;
    if (n == 0) {
        srv_reply_error(r, 422, "no face found in the photo: nothing to enroll");
        goto done;
    }
    int pick = largest(faces, n);
    if (boxq) {
        float bi = 0;
        pick = -1;
        for (int i = 0; i < n; i++) {
            float v = iou(faces[i].box, want);
            if (v > bi) bi = v, pick = i;
        }
        if (pick < 0 || bi < 0.3f) {
            srv_reply_error(r, 422, "no detected face at box %s", boxq);
            goto done;
        }
    }
    if (embed(r, p, &faces[pick], emb)) goto done;
    mien_gallery_face gf = {.embedding = emb};
    memcpy(gf.box, faces[pick].box, sizeof gf.box);
    char sha[65];
    gallery_sha256_of(data, len, sha);
    gf.image_sha256 = sha;
    mien_gallery *g = srv_gallery(r);
    mien_models *m = srv_models(r);
    int added = 0;
    int rc = mien_gallery_enroll(g, name, mien_models_embedder_name(m), dim, &gf, 1, &added);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        goto done;
    }
    int64_t fid = srv_face_id_of(g, name, sha);
    char why[512];
    if (added && fid > 0 &&
        (rc = srv_keep_face_image(r, g, fid, p, &faces[pick], data, len, why, sizeof why))) {
        srv_reply_error(r, srv_http_status(rc), "%s", why);
        goto done;
    }
    mien_subject s;
    if (find_subject(r, name, &s)) goto done;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "added", added);
    cJSON_AddNumberToObject(o, "faces", s.n_faces);
    cJSON_AddItemToObject(o, "face", srv_face_json(&faces[pick]));
    cJSON_AddStringToObject(o, "image_sha256", sha);
    if (fid > 0) cJSON_AddNumberToObject(o, "face_id", (double)fid);
    cJSON_AddStringToObject(o, "collection", mien_gallery_collection(g));
    srv_reply_json(r, added ? 201 : 200, o);
done:
    free(emb);
    free(faces);
    mien_photo_close(p);
}

static void h_subject_faces(srv_req *r, const route_args *a) { enroll(r, a->name); }

/* POST /v1/subjects: JSON {"name": N} creates an empty subject; a form with a field name and
 * an image creates (if needed) and enrolls, as POST /v1/subjects/{name}/faces. */
static void h_subject_create(srv_req *r, const route_args *a) {
    const srv_part *np = srv_req_find_part(r, "name");
    if (srv_req_n_parts(r) > 0) {
        if (!np || np->len == 0) {
            srv_reply_error(r, 400, "the form needs a field 'name'");
            return;
        }
        enroll(r, (const char *)np->data);
        return;
    }
    const char *nn = json_name(r, "expected {\"name\": NAME}");
    if (!nn) return;
    mien_gallery *g = srv_gallery(r);
    int created = 0, rc = mien_gallery_subject_add(g, nn, &created);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", nn);
    cJSON_AddBoolToObject(o, "created", created);
    srv_reply_json(r, created ? 201 : 200, o);
}

/* POST /v1/video (video.c). */
void srv_video(srv_req *r);
static void h_video(srv_req *r, const route_args *a) { srv_video(r); }

/* ==== Collections and keys (mien keys: admin to change, read to list) ==== */

static cJSON *collection_json(const mien_collection *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddNumberToObject(o, "subjects", (double)c->n_subjects);
    cJSON_AddNumberToObject(o, "faces", (double)c->n_faces);
    if (c->model[0]) cJSON_AddStringToObject(o, "model", c->model);
    else cJSON_AddNullToObject(o, "model");
    cJSON_AddNumberToObject(o, "created", (double)c->created);
    return o;
}

/* GET /v1/collections: every collection of the gallery; a recognition key sees its own. */
static void h_collections(srv_req *r, const route_args *a) {
    const srv_grant *gr = srv_req_grant(r);
    mien_gallery *g = srv_gallery(r);
    mien_collection *v = NULL;
    int n = 0, rc = mien_gallery_collections(g, &v, &n);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_gallery_errmsg(g));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "default", gr->service == SRV_SERVICE_RECOGNITION
                                              ? gr->collection : srv_default_collection(srv_of(r)));
    cJSON *arr = cJSON_AddArrayToObject(o, "collections");
    for (int i = 0; i < n; i++)
        if (gr->service != SRV_SERVICE_RECOGNITION || !strcmp(v[i].name, gr->collection))
            cJSON_AddItemToArray(arr, collection_json(&v[i]));
    free(v);
    srv_reply_json(r, 200, o);
}

/* POST /v1/collections {"name": N}: make an empty collection. */
static void h_collection_create(srv_req *r, const route_args *a) {
    const char *nn = json_name(r, "expected {\"name\": COLLECTION}");
    if (!nn) return;
    char why[512];
    int st = MIEN_OK, existed = 0;
    if (srv_collection(srv_of(r), nn, 0, &st, why, sizeof why)) existed = 1;
    else if (st == MIEN_ENOTFOUND && srv_collection(srv_of(r), nn, 1, &st, why, sizeof why)) st = MIEN_OK;
    if (st) {
        srv_reply_error(r, st == MIEN_EINVAL ? 400 : srv_http_status(st), "%s", why);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", nn);
    cJSON_AddBoolToObject(o, "created", !existed);
    srv_reply_json(r, existed ? 200 : 201, o);
}

/* DELETE /v1/collections/{name}: the collection and everything in it. */
static void h_collection_delete(srv_req *r, const route_args *a) {
    char why[512];
    int rc = srv_collection_drop(srv_of(r), a->name, why, sizeof why);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", why);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "deleted", a->name);
    srv_reply_json(r, 200, o);
}

static cJSON *key_json(const srv_key_info *k) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", k->name);
    cJSON_AddStringToObject(o, "role", srv_role_name(k->role));
    if (k->service != SRV_SERVICE_ANY) cJSON_AddStringToObject(o, "service", srv_service_name(k->service));
    else cJSON_AddNullToObject(o, "service");
    if (k->collection[0]) cJSON_AddStringToObject(o, "collection", k->collection);
    else cJSON_AddNullToObject(o, "collection");
    cJSON_AddNumberToObject(o, "created", (double)k->created);
    cJSON_AddStringToObject(o, "sha256_prefix", k->prefix);
    return o;
}

static void h_keys(srv_req *r, const route_args *a) {
    srv_key_info *v = NULL;
    int n = 0;
    srv_keys *k = srv_keys_of(r);
    if (srv_keys_list(k, &v, &n)) {
        srv_reply_error(r, 500, "%s", srv_keys_errmsg(k));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "keys");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, key_json(&v[i]));
    free(v);
    srv_reply_json(r, 200, o);
}

/* The optional string member m of JSON object j: NULL when absent or null, "" with a 400
 * sent when it is not a string. */
static const char *json_opt_string(srv_req *r, const cJSON *j, const char *m, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, m);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v)) {
        srv_reply_error(r, 400, "'%s' must be a string", m);
        *bad = 1;
        return NULL;
    }
    return v->valuestring;
}

/* POST /v1/keys {"role", "service", "collection", "name"}: a new key, shown once. */
static void h_key_create(srv_req *r, const route_args *a) {
    cJSON *j = srv_req_json(r);
    if (!j) return;
    if (!cJSON_IsObject(j)) {
        srv_reply_error(r, 400, "expected {\"role\", \"service\", \"collection\", \"name\"}");
        return;
    }
    int bad = 0;
    const char *role_s = json_opt_string(r, j, "role", &bad);
    const char *service_s = bad ? NULL : json_opt_string(r, j, "service", &bad);
    const char *coll = bad ? NULL : json_opt_string(r, j, "collection", &bad);
    const char *name = bad ? NULL : json_opt_string(r, j, "name", &bad);
    if (bad) return;
    int service = srv_service_parse(service_s);
    if (service < 0) {
        srv_reply_error(r, 400, "service must be recognition, detection or verification");
        return;
    }
    /* A service key's role: admin of its collection for recognition (as a CompreFace service
     * key), read for the others; a mien key needs its role named. */
    srv_role role = role_s ? srv_role_parse(role_s)
                   : service == SRV_SERVICE_RECOGNITION ? SRV_ROLE_ADMIN
                   : service != SRV_SERVICE_ANY         ? SRV_ROLE_READ
                                                        : SRV_ROLE_NONE;
    if (role == SRV_ROLE_NONE) {
        srv_reply_error(r, 400, "role must be read or admin");
        return;
    }
    char key[SRV_KEY_LEN + 1], nm[SRV_KEY_NAME_MAX], cl[SRV_COLLECTION_MAX] = "";
    srv_keys *k = srv_keys_of(r);
    int rc = srv_keys_add_service(k, name, role, (srv_service)service, coll, key, nm, cl);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", srv_keys_errmsg(k));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "name", nm);
    cJSON_AddStringToObject(o, "role", srv_role_name(role));
    if (service != SRV_SERVICE_ANY) cJSON_AddStringToObject(o, "service", srv_service_name((srv_service)service));
    else cJSON_AddNullToObject(o, "service");
    if (cl[0]) cJSON_AddStringToObject(o, "collection", cl);
    else cJSON_AddNullToObject(o, "collection");
    srv_reply_json(r, 201, o);
    memset(key, 0, sizeof key);
}

static void h_key_delete(srv_req *r, const route_args *a) {
    srv_keys *k = srv_keys_of(r);
    int rc = srv_keys_remove(k, a->name);
    if (rc) {
        srv_reply_error(r, srv_http_status(rc), "%s", srv_keys_errmsg(k));
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "deleted", a->name);
    srv_reply_json(r, 200, o);
}

/* ==== Routes without a key ==== */

static void h_healthz(srv_req *r, const route_args *a) {
    int ns = 0, nf = 0;
    mien_gallery_count(srv_gallery(r), &ns, &nf);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "version", mien_version());
    cJSON_AddStringToObject(o, "model", mien_models_embedder_name(srv_models(r)));
    cJSON_AddNumberToObject(o, "subjects", ns);
    cJSON_AddNumberToObject(o, "faces", nf);
    srv_reply_json(r, 200, o);
}

static void h_metrics(srv_req *r, const route_args *a) {
    char *t = srv_metrics_text(srv_of(r));
    if (!t) {
        srv_reply_error(r, 503, "out of memory");
        return;
    }
    srv_reply_bytes(r, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t));
    free(t);
}

static void h_openapi(srv_req *r, const route_args *a) {
    srv_reply_bytes(r, 200, "application/json", srv_asset_openapi,
                    (size_t)(srv_asset_openapi_end - srv_asset_openapi));
}

static void h_index(srv_req *r, const route_args *a) {
    srv_reply_header(r, "Content-Security-Policy",
                     "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                     "img-src 'self' blob: data:");
    srv_reply_bytes(r, 200, "text/html; charset=utf-8", srv_asset_index,
                    (size_t)(srv_asset_index_end - srv_asset_index));
}

/* ==== The table ==== */

typedef void (*handler_fn)(srv_req *r, const route_args *a);

static const struct route {
    const char *method;
    const char *path;      /* template: segments, "{name}" matches one (decoded) segment */
    srv_role role;         /* SRV_ROLE_NONE: no key needed */
    handler_fn fn;
} routes[] = {
    {"GET", "/", SRV_ROLE_NONE, h_index},
    {"GET", "/healthz", SRV_ROLE_NONE, h_healthz},
    {"GET", "/metrics", SRV_ROLE_NONE, h_metrics},
    {"GET", "/v1/openapi.json", SRV_ROLE_NONE, h_openapi},
    {"POST", "/v1/detect", SRV_ROLE_READ, h_detect_only},
    {"POST", "/v1/embed", SRV_ROLE_READ, h_embed},
    {"POST", "/v1/verify", SRV_ROLE_READ, h_verify},
    {"POST", "/v1/identify", SRV_ROLE_READ, h_identify},
    {"POST", "/v1/video", SRV_ROLE_READ, h_video},
    {"GET", "/v1/subjects", SRV_ROLE_READ, h_subjects},
    {"POST", "/v1/subjects", SRV_ROLE_ADMIN, h_subject_create},
    {"GET", "/v1/subjects/{name}", SRV_ROLE_READ, h_subject_get},
    {"PATCH", "/v1/subjects/{name}", SRV_ROLE_ADMIN, h_subject_rename},
    {"DELETE", "/v1/subjects/{name}", SRV_ROLE_ADMIN, h_subject_delete},
    {"POST", "/v1/subjects/{name}/faces", SRV_ROLE_ADMIN, h_subject_faces},
    {"GET", "/v1/collections", SRV_ROLE_READ, h_collections},
    {"POST", "/v1/collections", SRV_ROLE_ADMIN, h_collection_create},
    {"DELETE", "/v1/collections/{name}", SRV_ROLE_ADMIN, h_collection_delete},
    {"GET", "/v1/keys", SRV_ROLE_ADMIN, h_keys},
    {"POST", "/v1/keys", SRV_ROLE_ADMIN, h_key_create},
    {"DELETE", "/v1/keys/{name}", SRV_ROLE_ADMIN, h_key_delete},
};
#define N_ROUTES ((int)(sizeof routes / sizeof routes[0]))

const char *srv_route_path(int i, const char **method) {
    if (i < 0 || i >= N_ROUTES) return NULL;
    if (method) *method = routes[i].method;
    return routes[i].path;
}

/* Does path fit the template? Fills a->name for {name}. -1: fits but {name} is malformed. */
static int match(const char *tmpl, const char *path, route_args *a) {
    if (!strcmp(tmpl, "/")) return !strcmp(path, "/");
    int seg = 0;
    const char *t = tmpl, *p = path;
    while (*t && *p) {
        if (*t != '/' || *p != '/') return 0;
        t++, p++;
        const char *te = strchr(t, '/'), *pe = strchr(p, '/');
        size_t tn = te ? (size_t)(te - t) : strlen(t), pn = pe ? (size_t)(pe - p) : strlen(p);
        if (tn == 6 && !strncmp(t, "{name}", 6)) {
            if (pn == 0) return 0;
            if (path_segment(path, seg, a->name, sizeof a->name) < 0) return -1;
        } else if (tn != pn || strncmp(t, p, tn)) {
            return 0;
        }
        t += tn, p += pn, seg++;
    }
    return !*t && !*p;
}

void srv_route_classify(srv_req *r) {
    const char *path = srv_req_path(r);
    route_args a;
    if (!strncmp(path, "/api/v1/", 8)) {
        srv_req_set_route(r, "/api/v1/other");
        return;
    }
    for (int i = 0; i < N_ROUTES; i++)
        if (match(routes[i].path, path, &a) != 0) {
            srv_req_set_route(r, routes[i].path);
            return;
        }
}

void srv_dispatch(srv_req *r) {
    const char *path = srv_req_path(r), *method = srv_req_method(r);
    if (!strncmp(path, "/api/v1/", 8)) {
        srv_req_set_route(r, "/api/v1/other");
        if (compreface_route(r)) return;
        srv_reply_error(r, 404, "no route %s %s", method, path);
        return;
    }
    route_args a;
    char allow[64] = "";
    int path_known = 0;
    for (int i = 0; i < N_ROUTES; i++) {
        memset(&a, 0, sizeof a);
        int m = match(routes[i].path, path, &a);
        if (m == 0) continue;
        srv_req_set_route(r, routes[i].path);
        if (m < 0) {
            srv_reply_error(r, 400, "malformed name in the path (bad %%-escape)");
            return;
        }
        path_known = 1;
        if (strcmp(routes[i].method, method) != 0) {
            size_t l = strlen(allow);
            snprintf(allow + l, sizeof allow - l, "%s%s", l ? ", " : "", routes[i].method);
            continue;
        }
        if (routes[i].role != SRV_ROLE_NONE && !srv_req_require(r, routes[i].role)) return;
        routes[i].fn(r, &a);
        return;
    }
    if (path_known) {
        srv_reply_header(r, "Allow", allow);
        srv_reply_error(r, 405, "method %s not allowed on %s (allowed: %s)", method, path, allow);
        return;
    }
    srv_req_set_route(r, "other");
    srv_reply_error(r, 404, "no route %s %s", method, path);
}
