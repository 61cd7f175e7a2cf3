/* CompreFace drop-in: the REST API of CompreFace's recognition, detection and verification
 * services (docs/Rest-API-description.md of exadel-inc/CompreFace), answered by mien serve
 * under /api/v1/, so that CompreFace's SDKs and clients work against mien unchanged.
 *
 * What maps onto what:
 *   - x-api-key: mien's API keys. A service key (mien keys add --service) is a CompreFace
 *     service's: a recognition key works on its own face collection (as admin, or read-only),
 *     a detection or verification key on its service's routes only. A mien key (no service)
 *     may use every route its role allows, on the collection of ?collection= or the default.
 *     No x-api-key: 400 code 20 (CompreFace's MISSING_REQUEST_HEADER); an unknown key: 401;
 *     another service's key, or a read key where admin is needed: 403.
 *   - Subjects are the collection's subjects; an "example" (image_id) is one enrolled face,
 *     its id written as a UUID: 00000000-0000-0000-0000-XXXXXXXXXXXX (the face id in hex).
 *     Its image (/faces/{id}/img, /static/{key}/images/{id}) is what mien serve keeps at
 *     enrollment: the aligned face as a JPEG by default, or the photo (--store-images).
 *   - Embedding routes take the client's vectors (the calculator plugin's): each must have
 *     the embedder's dimension, and the collection must hold that embedder's embeddings.
 *   - "similarity" in [0,1] is CompreFace's tanh of the embeddings' distance, centred on the
 *     embedder's threshold (cf_similarity): "same person" is exactly sim >= 0.5. Recognize
 *     returns the prediction_count best subjects whatever their similarity (CompreFace leaves
 *     the threshold to the client).
 *   - face_plugins: "landmarks" (the 5 alignment points) and "calculator" (the embedding) are
 *     answered; other plugins (age, gender, mask, pose) are accepted and ignored.
 *   - status=true adds execution_time (ms) per face and plugins_versions.
 *   - Errors are CompreFace's shape {"message": ..., "code": ...}, with 400 for bad input
 *     (code 28 when no face is found), 401/403 for keys, 404 for unknown subjects and ids. */
#include "core/sha256.h"
#include "server/server.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CompreFace's error codes (its CommonExceptionCode) for the cases we share. */
enum {
    CF_CODE_GENERIC = 0,         /* UNDEFINED */
    CF_CODE_BAD_REQUEST = 5,     /* EMPTY_REQUIRED_FIELD: a missing or malformed body */
    CF_CODE_NO_SERVICE = 10,     /* MODEL_NOT_FOUND: no service has this x-api-key */
    CF_CODE_MISSING_HEADER = 20, /* MISSING_REQUEST_HEADER: no x-api-key */
    CF_CODE_BAD_IMAGE = 26,      /* VALIDATION_CONSTRAINT_VIOLATION: not an image we can read */
    CF_CODE_NO_FACE = 28,        /* NO_FACES_FOUND: "No face is found in the given image" */
    CF_CODE_MISSING_PARAM = 33,  /* MISSING_REQUEST_PARAMETER */
    CF_CODE_MISSING_PART = 34,   /* MISSING_REQUEST_PART */
    CF_CODE_BAD_ARGUMENT = 36,   /* INCORRECT_ARGUMENT: a value out of range, a bad vector */
    CF_CODE_SUBJECT_NOT_FOUND = 42,
    CF_CODE_SUBJECT_EXISTS = 43,
    CF_CODE_IMAGE_NOT_FOUND = 44 /* EMBEDDING_NOT_FOUND: no example with this image id */
};
#define CF_CODE_NOT_FOUND CF_CODE_IMAGE_NOT_FOUND

/* ==== Replies ==== */

static int cf_error(srv_req *r, int http, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cf_error(srv_req *r, int http, int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddNumberToObject(o, "code", code);
    srv_reply_json(r, http, o);
    return 1;
}

/* A failure of the library (status st) with its message. */
static int cf_fail(srv_req *r, int st, const char *what, const char *msg) {
    int http = srv_http_status(st);
    int code = st == MIEN_ENOFACE   ? CF_CODE_NO_FACE
             : st == MIEN_EMISMATCH ? CF_CODE_BAD_ARGUMENT
             : http < 500 && st != MIEN_ENOTFOUND ? CF_CODE_BAD_REQUEST
                                    : CF_CODE_GENERIC;
    if (st == MIEN_ENOFACE) http = 400;
    return cf_error(r, http, code, "%s: %s", what, msg && *msg ? msg : mien_status_name(st));
}

/* The key may act as `need` on a route of `service`; a recognition route also chooses its
 * collection (the key's own; a mien key's ?collection= or the default). 1, or 0 with the
 * error sent: 400 code 20 without x-api-key (as CompreFace), 401 code 10 for a key no service
 * has, 403 for a key of another service, another collection, or a read key changing things;
 * 404 for an unknown ?collection=. */
static int cf_require(srv_req *r, srv_role need, srv_service service) {
    const char *key = srv_req_api_key(r);
    if (!key || !*key) {
        cf_error(r, 400, CF_CODE_MISSING_HEADER, "Missing header: x-api-key");
        return 0;
    }
    char why[512];
    int st = srv_req_allow(r, need, service, why, sizeof why);
    if (st == 401) {
        cf_error(r, 401, CF_CODE_NO_SERVICE, "No service found for this x-api-key");
        return 0;
    }
    if (!st && service == SRV_SERVICE_RECOGNITION) st = srv_req_use_collection(r, 0, why, sizeof why);
    if (st) {
        cf_error(r, st, st == 400 ? CF_CODE_BAD_ARGUMENT : CF_CODE_GENERIC, "%s", why);
        return 0;
    }
    return 1;
}

/* ==== Similarity, ids, names ==== */

/* mien's cosine c onto CompreFace's [0,1] similarity. CompreFace turns the distance d of two
 * unit embeddings into (1 + tanh(k1 (k0 - d))) / 2, a logistic of the distance it fitted per
 * model (k0 its 50/50 point). mien does the same relative to the embedder's own calibrated
 * threshold t: with d_t = sqrt(2 - 2t), (1 + tanh(A (1 - d / d_t))) / 2. Similarity 0.5 is
 * exactly mien's "same person" (t: FAR 1e-3 on LFW, or --threshold), and A is the slope of a
 * logistic fit of same/different on LFW's 6,000 pairs in those relative units (13.6 for the
 * dlib embedder; bench/compreface_scale.py prints it for any embedder): so whatever the
 * embedder's scale, the thresholds CompreFace users set (0.5 to 0.9) keep most genuine pairs
 * and reject the impostors (README, "CompreFace clients", for the measured table). */
#define CF_SCALE_A 13.6
static double cf_similarity(float cos, float t) {
    double c = cos > 1.0f ? 1.0 : cos < -1.0f ? -1.0 : (double)cos;
    double d = sqrt(2.0 - 2.0 * c), dt = sqrt(fmax(2.0 - 2.0 * (double)t, 1e-12));
    double s = 0.5 * (1.0 + tanh(CF_SCALE_A * (1.0 - d / dt)));
    return round(s * 1e5) / 1e5;
}

static void cf_image_id(int64_t id, char out[37]) {
    /* Face ids stay far below 2^48: twelve hex digits. */
    snprintf(out, 37, "00000000-0000-0000-0000-%012" PRIx64, (uint64_t)id & (uint64_t)0xffffffffffff);
}

/* The face id of a UUID written by cf_image_id; 0 when s is not one. */
static int64_t cf_parse_image_id(const char *s) {
    static const char prefix[] = "00000000-0000-0000-0000-";
    if (strlen(s) != 36 || strncasecmp(s, prefix, sizeof prefix - 1) != 0) return 0;
    int64_t v = 0;
    for (const char *p = s + sizeof prefix - 1; *p; p++) {
        if (!isxdigit((unsigned char)*p)) return 0;
        int d = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
        v = v * 16 + d;
    }
    return v;
}

/* Decode the %XX escapes of one path segment (up to the next '/' or the end) into out; 0 on success. */
static int cf_segment(const char *s, char *out, size_t size, const char **rest) {
    size_t n = 0;
    while (*s && *s != '/') {
        int c = (unsigned char)*s++;
        if (c == '%') {
            if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1])) return -1;
            char hex[3] = {s[0], s[1], 0};
            c = (int)strtol(hex, NULL, 16);
            s += 2;
        }
        if (c == 0 || n + 1 >= size) return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    *rest = s;
    return n ? 0 : -1;
}

/* ==== Request bodies: multipart file fields or JSON with base64 ==== */

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decode base64 (standard or URL alphabet, padding optional, whitespace skipped, an optional
 * "data:...;base64," prefix). Returns malloc'd bytes or NULL when malformed. */
static unsigned char *b64_decode(const char *s, size_t *len) {
    const char *comma = strncmp(s, "data:", 5) == 0 ? strchr(s, ',') : NULL;
    if (comma) s = comma + 1;
    size_t n = strlen(s);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    if (!out) return NULL;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (isspace(c)) continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = b64val(c);
        if (v < 0 || pad) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6 || pad > 2) {
        free(out);
        return NULL;
    }
    *len = o;
    return out;
}

static int cf_is_json(srv_req *r) {
    const char *ct = srv_req_header(r, "Content-Type");
    return ct && strncasecmp(ct, "application/json", 16) == 0;
}

/* The JSON body, parsed once per request; NULL (and a 400 sent) when it is not JSON. */
typedef struct cf_ctx {
    srv_req *r;
    cJSON *json;            /* parsed body, owned */
    unsigned char *img[2];  /* decoded base64 images, owned */
    int t0_set;
    double t_detect_ms, t_embed_ms;
} cf_ctx;

static cJSON *cf_json(cf_ctx *c) {
    if (c->json) return c->json;
    size_t len;
    const unsigned char *body = srv_req_body(c->r, &len);
    if (len == 0) {
        cf_error(c->r, 400, CF_CODE_BAD_REQUEST, "Request body is missing");
        return NULL;
    }
    c->json = cJSON_ParseWithLength((const char *)body, len);
    if (!c->json || !cJSON_IsObject(c->json)) {
        cJSON_Delete(c->json);
        c->json = NULL;
        cf_error(c->r, 400, CF_CODE_BAD_REQUEST, "The body is not a JSON object");
    }
    return c->json;
}

/* Image number n (0 or 1) of the request, from the multipart field `field` or the JSON
 * member of that name (base64). 0, or -1 with a 400 already sent. */
static int cf_image(cf_ctx *c, int n, const char *field, const unsigned char **data, size_t *len) {
    if (cf_is_json(c->r)) {
        cJSON *j = cf_json(c);
        if (!j) return -1;
        cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
        if (!cJSON_IsString(v) || !v->valuestring[0]) {
            cf_error(c->r, 400, CF_CODE_BAD_REQUEST, "Required JSON member '%s' (a base64 image) "
                     "is not present", field);
            return -1;
        }
        c->img[n] = b64_decode(v->valuestring, len);
        if (!c->img[n] || *len == 0) {
            cf_error(c->r, 400, CF_CODE_BAD_REQUEST, "'%s' is not valid base64", field);
            return -1;
        }
        *data = c->img[n];
        return 0;
    }
    const char *ct = srv_req_header(c->r, "Content-Type");
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0) {
        cf_error(c->r, 400, CF_CODE_BAD_REQUEST, "Expected Content-Type multipart/form-data with "
                 "a '%s' part, or application/json with '%s' in base64", field, field);
        return -1;
    }
    const srv_part *p = srv_req_find_part(c->r, field);
    if (!p || p->len == 0) {
        cf_error(c->r, 400, CF_CODE_MISSING_PART, "Required request part '%s' is not present",
                 field);
        return -1;
    }
    *data = p->data;
    *len = p->len;
    return 0;
}

/* ==== Query options ==== */

typedef struct cf_opts {
    mien_detect_options det;
    int limit;              /* 0: every face */
    int prediction_count;   /* subjects per face */
    int no_detect;          /* detect_faces=false: the photo is one cropped face */
    int landmarks, calculator, status;
} cf_opts;

static int cf_int_param(srv_req *r, const char *key, int def, int min, int *out) {
    const char *v = srv_req_query(r, key);
    *out = def;
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || errno || x < min || x > 1000000) {
        cf_error(r, 400, CF_CODE_BAD_REQUEST, "'%s' must be an integer >= %d, got '%s'", key, min, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int cf_parse_opts(srv_req *r, cf_opts *o) {
    memset(o, 0, sizeof *o);
    const mien_detect_options *d = srv_detect_options(r);
    if (d) o->det = *d;
    else mien_detect_options_default(&o->det);
    if (cf_int_param(r, "limit", 0, 0, &o->limit)) return -1;
    if (cf_int_param(r, "prediction_count", 1, 1, &o->prediction_count)) return -1;
    o->det.max_faces = o->limit;
    const char *t = srv_req_query(r, "det_prob_threshold");
    if (t && *t) {
        char *end;
        double x = strtod(t, &end);
        if (*end || !(x >= 0.0 && x <= 1.0)) {
            cf_error(r, 400, CF_CODE_BAD_REQUEST, "'det_prob_threshold' must be between 0.0 and "
                     "1.0, got '%s'", t);
            return -1;
        }
        o->det.min_score = (float)x;
    }
    const char *df = srv_req_query(r, "detect_faces");
    o->no_detect = df && (!strcasecmp(df, "false") || !strcmp(df, "0"));
    const char *st = srv_req_query(r, "status");
    o->status = st && (!strcasecmp(st, "true") || !strcmp(st, "1"));
    const char *pl = srv_req_query(r, "face_plugins");
    if (pl) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", pl);
        for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            if (!strcasecmp(tok, "landmarks")) o->landmarks = 1;
            else if (!strcasecmp(tok, "calculator")) o->calculator = 1;
            /* age, gender, mask, pose, ...: accepted and ignored */
        }
    }
    return 0;
}

/* ==== Faces of one photo ==== */

typedef struct cf_photo {
    mien_photo *photo;
    mien_face *faces;       /* (n,) */
    float *emb;             /* (n, dim) */
    int n, dim, width, height;
    double detect_ms, embed_ms;
} cf_photo;

/* The cosine similarity of each of p's faces to ref (sim, n) and the faces best first
 * (order, n): an insertion sort, photos have few faces. */
static void cf_rank_faces(const cf_photo *p, const float *ref, float *sim, int *order) {
    for (int i = 0; i < p->n; i++) {
        sim[i] = mien_similarity(ref, p->emb + (size_t)i * p->dim, p->dim);
        int j = i;
        while (j > 0 && sim[order[j - 1]] < sim[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void cf_photo_free(cf_photo *p) {
    mien_photo_close(p->photo);
    free(p->faces);
    free(p->emb);
    memset(p, 0, sizeof *p);
}

/* Decode, detect and (with embed) embed every face. 0, or -1 with the reply sent (400 code 28
 * when there is no face, as CompreFace). */
static int cf_photo_run(srv_req *r, const unsigned char *data, size_t len, const cf_opts *o,
                        int embed, cf_photo *p) {
    memset(p, 0, sizeof *p);
    mien_session *s = srv_session(r);
    double t0 = now_ms();
    int st = mien_photo_open(s, data, len, &p->photo);
    if (!st && o->no_detect) {
        /* detect_faces=false: the photo is taken as a face already cropped, its alignment
         * points where the template puts them on a crop of its size. */
        const mien_image *img;
        if (!(st = mien_photo_image(s, p->photo, &img)) && !(p->faces = calloc(1, sizeof *p->faces)))
            st = MIEN_ENOMEM;
        if (!st) {
            mien_face *f = p->faces;
            f->box[2] = (float)img->width;
            f->box[3] = (float)img->height;
            f->score = 1.0f;
            f->n_points = 5;
            for (int k = 0; k < 5; k++) {
                f->points[k][0] = mien_arcface_template[k][0] * (float)img->width / 112.0f;
                f->points[k][1] = mien_arcface_template[k][1] * (float)img->height / 112.0f;
            }
            p->n = 1;
        }
    } else if (!st) {
        st = mien_photo_detect(s, p->photo, &o->det, &p->faces, &p->n);
    }
    if (st) {
        cf_error(r, 400, CF_CODE_BAD_IMAGE, "The image could not be read: %s", mien_errmsg(s));
        cf_photo_free(p);
        return -1;
    }
    mien_photo_size(p->photo, &p->width, &p->height);
    p->detect_ms = now_ms() - t0;
    if (p->n == 0) {
        cf_error(r, 400, CF_CODE_NO_FACE, "No face is found in the given image");
        cf_photo_free(p);
        return -1;
    }
    if (!embed) return 0;
    t0 = now_ms();
    p->dim = mien_models_embedding_dim(srv_models(r));
    p->emb = malloc((size_t)p->n * (size_t)p->dim * sizeof(float));
    if (!p->emb) {
        cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
        cf_photo_free(p);
        return -1;
    }
    for (int i = 0; i < p->n; i++) {
        if ((st = mien_photo_embed(s, p->photo, &p->faces[i], p->emb + (size_t)i * p->dim))) {
            cf_fail(r, st, "embedding a face", mien_errmsg(s));
            cf_photo_free(p);
            return -1;
        }
    }
    p->embed_ms = now_ms() - t0;
    return 0;
}

/* The largest face of a photo (CompreFace's "biggest first"). */
static int cf_largest(const cf_photo *p) {
    int best = 0;
    for (int i = 1; i < p->n; i++)
        if (p->faces[i].box[2] * p->faces[i].box[3] > p->faces[best].box[2] * p->faces[best].box[3])
            best = i;
    return best;
}

static int clampi(float v, int lo, int hi) {
    int x = (int)lrintf(v);
    return x < lo ? lo : x > hi ? hi : x;
}

/* One face's object: box, and what the plugins and status ask for. */
static cJSON *cf_face_json(const cf_photo *p, int i, const cf_opts *o) {
    const mien_face *f = &p->faces[i];
    cJSON *face = cJSON_CreateObject();
    cJSON *box = cJSON_AddObjectToObject(face, "box");
    cJSON_AddNumberToObject(box, "probability", round(f->score * 1e5) / 1e5);
    cJSON_AddNumberToObject(box, "x_max", clampi(f->box[0] + f->box[2], 0, p->width));
    cJSON_AddNumberToObject(box, "y_max", clampi(f->box[1] + f->box[3], 0, p->height));
    cJSON_AddNumberToObject(box, "x_min", clampi(f->box[0], 0, p->width));
    cJSON_AddNumberToObject(box, "y_min", clampi(f->box[1], 0, p->height));
    if (o->landmarks) {
        cJSON *lm = cJSON_AddArrayToObject(face, "landmarks");
        for (int k = 0; k < f->n_points; k++) {
            cJSON *pt = cJSON_CreateArray();
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(lrintf(f->points[k][0])));
            cJSON_AddItemToArray(pt, cJSON_CreateNumber(lrintf(f->points[k][1])));
            cJSON_AddItemToArray(lm, pt);
        }
    }
    if (o->calculator && p->emb) {
        cJSON *e = cJSON_AddArrayToObject(face, "embedding");
        for (int k = 0; k < p->dim; k++)
            cJSON_AddItemToArray(e, cJSON_CreateNumber(p->emb[(size_t)i * p->dim + k]));
    }
    if (o->status) {
        cJSON *t = cJSON_AddObjectToObject(face, "execution_time");
        cJSON_AddNumberToObject(t, "detector", round(p->detect_ms));
        if (p->emb) cJSON_AddNumberToObject(t, "calculator", round(p->embed_ms / p->n));
    }
    return face;
}

static cJSON *cf_plugins_versions(srv_req *r, const cf_opts *o) {
    char buf[96];
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "detector", "mien.FaceDetector");
    snprintf(buf, sizeof buf, "mien.%s", mien_models_embedder_name(srv_models(r)));
    cJSON_AddStringToObject(v, "calculator", buf);
    if (o->landmarks) cJSON_AddStringToObject(v, "landmarks", "mien.Landmarks5");
    return v;
}

/* ==== Recognition: recognize, examples, subjects ==== */

static int cf_recognize(cf_ctx *c) {
    srv_req *r = c->r;
    cf_opts o;
    const unsigned char *data;
    size_t len;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION) || cf_parse_opts(r, &o) ||
        cf_image(c, 0, "file", &data, &len))
        return 1;
    cf_photo p;
    if (cf_photo_run(r, data, len, &o, 1, &p)) return 1;
    mien_gallery *g = srv_gallery(r);
    int k = o.prediction_count;
    mien_match *m = malloc((size_t)p.n * (size_t)k * sizeof *m);
    int *nm = malloc((size_t)p.n * sizeof *nm);
    int st = !m || !nm ? MIEN_ENOMEM : MIEN_OK;
    int n_faces = 0;
    mien_gallery_count(g, NULL, &n_faces);
    /* One search per face (a photo has few): the results of each are then simply its first
     * nm[i] entries, whatever the number of subjects. */
    for (int i = 0; !st && i < p.n; i++) {
        nm[i] = 0;
        if (n_faces > 0)
            st = mien_gallery_search(g, p.emb + (size_t)i * p.dim, p.dim, k, m + (size_t)i * k, &nm[i]);
    }
    if (st) {
        cf_fail(r, st, "searching the gallery", mien_gallery_errmsg(g));
    } else {
        float t = srv_threshold(r);
        cJSON *out = cJSON_CreateObject();
        cJSON *res = cJSON_AddArrayToObject(out, "result");
        for (int i = 0; i < p.n; i++) {
            cJSON *face = cf_face_json(&p, i, &o);
            cJSON *subj = cJSON_AddArrayToObject(face, "subjects");
            for (int j = 0; j < nm[i]; j++) {
                const mien_match *x = &m[(size_t)i * k + j];
                cJSON *s = cJSON_CreateObject();
                cJSON_AddNumberToObject(s, "similarity", cf_similarity(x->similarity, t));
                cJSON_AddStringToObject(s, "subject", x->name);
                cJSON_AddItemToArray(subj, s);
            }
            cJSON_AddItemToArray(res, face);
        }
        if (o.status) cJSON_AddItemToObject(out, "plugins_versions", cf_plugins_versions(r, &o));
        srv_reply_json(r, 200, out);
    }
    free(m);
    free(nm);
    cf_photo_free(&p);
    return 1;
}

/* POST /faces/{id}/verify: faces of the photo against one stored example. */
static int cf_verify_example(cf_ctx *c, int64_t id) {
    srv_req *r = c->r;
    cf_opts o;
    const unsigned char *data;
    size_t len;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION) || cf_parse_opts(r, &o)) return 1;
    mien_gallery *g = srv_gallery(r);
    int dim = mien_models_embedding_dim(srv_models(r));
    float *ref = malloc((size_t)dim * sizeof *ref);
    if (!ref) return cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
    int st = id > 0 ? mien_gallery_face_embedding(g, id, ref, dim) : MIEN_ENOTFOUND;
    if (st) {
        free(ref);
        return st == MIEN_ENOTFOUND ? cf_error(r, 404, CF_CODE_NOT_FOUND, "Image with id %s not found",
                                               srv_req_path(r) + strlen("/api/v1/recognition/faces/"))
                                    : cf_fail(r, st, "reading the example", mien_gallery_errmsg(g));
    }
    cf_photo p;
    if (cf_image(c, 0, "file", &data, &len) || cf_photo_run(r, data, len, &o, 1, &p)) {
        free(ref);
        return 1;
    }
    float t = srv_threshold(r);
    /* Best match first. */
    int *order = malloc((size_t)p.n * sizeof *order);
    float *sim = malloc((size_t)p.n * sizeof *sim);
    if (!order || !sim) {
        free(order);
        free(sim);
        free(ref);
        cf_photo_free(&p);
        return cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
    }
    cf_rank_faces(&p, ref, sim, order);
    cJSON *out = cJSON_CreateObject();
    cJSON *res = cJSON_AddArrayToObject(out, "result");
    for (int j = 0; j < p.n; j++) {
        cJSON *face = cf_face_json(&p, order[j], &o);
        cJSON_AddNumberToObject(face, "similarity", cf_similarity(sim[order[j]], t));
        cJSON_AddItemToArray(res, face);
    }
    if (o.status) cJSON_AddItemToObject(out, "plugins_versions", cf_plugins_versions(r, &o));
    srv_reply_json(r, 200, out);
    free(order);
    free(sim);
    free(ref);
    cf_photo_free(&p);
    return 1;
}

/* POST /faces?subject=NAME: enroll the largest face of the photo. */
static int cf_add_example(cf_ctx *c) {
    srv_req *r = c->r;
    cf_opts o;
    const unsigned char *data;
    size_t len;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION) || cf_parse_opts(r, &o)) return 1;
    const char *name = srv_req_query(r, "subject");
    if (!name || !*name)
        return cf_error(r, 400, CF_CODE_MISSING_PARAM, "Required request parameter 'subject' "
                        "for method parameter type String is not present");
    if (cf_image(c, 0, "file", &data, &len)) return 1;
    cf_photo p;
    if (cf_photo_run(r, data, len, &o, 1, &p)) return 1;
    int best = cf_largest(&p);
    mien_gallery *g = srv_gallery(r);
    mien_models *m = srv_models(r);
    char sha[65];
    gallery_sha256_of(data, len, sha);
    mien_gallery_face gf = {.embedding = p.emb + (size_t)best * p.dim, .image_sha256 = sha};
    memcpy(gf.box, p.faces[best].box, sizeof gf.box);
    int added = 0;
    int st = mien_gallery_enroll(g, name, mien_models_embedder_name(m), p.dim, &gf, 1, &added);
    if (st) {
        cf_photo_free(&p);
        return cf_fail(r, st, "adding the example", mien_gallery_errmsg(g));
    }
    /* Its id: the subject's face from this photo (a photo is enrolled once per subject). */
    int64_t id = srv_face_id_of(g, name, sha);
    char why[512];
    if (id && added)
        st = srv_keep_face_image(r, g, id, p.photo, &p.faces[best], data, len, why, sizeof why);
    cf_photo_free(&p);
    if (st) return cf_fail(r, st, "keeping the example's image", why);
    if (!id) return cf_fail(r, MIEN_EINTERNAL, "reading back the example", mien_gallery_errmsg(g));
    char uuid[37];
    cf_image_id(id, uuid);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "image_id", uuid);
    cJSON_AddStringToObject(out, "subject", name);
    srv_reply_json(r, 201, out); /* CompreFace: 201 Created */
    return 1;
}

/* GET /faces?page&size[&subject]. */
static int cf_list_examples(cf_ctx *c) {
    srv_req *r = c->r;
    int page, size;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION) ||
        cf_int_param(r, "page", 0, 0, &page) || cf_int_param(r, "size", 20, 1, &size))
        return 1;
    const char *name = srv_req_query(r, "subject");
    if (name && !*name) name = NULL;
    mien_gallery *g = srv_gallery(r);
    mien_gallery_face_info *fi = NULL;
    int n = 0;
    int st = mien_gallery_faces(g, name, &fi, &n);
    if (st) return cf_fail(r, st, "listing the examples", mien_gallery_errmsg(g));
    cJSON *out = cJSON_CreateObject();
    cJSON *faces = cJSON_AddArrayToObject(out, "faces");
    long first = (long)page * size;
    for (long i = first; i < n && i < first + size; i++) {
        char uuid[37];
        cf_image_id(fi[i].id, uuid);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "image_id", uuid);
        cJSON_AddStringToObject(f, "subject", fi[i].subject);
        cJSON_AddItemToArray(faces, f);
    }
    cJSON_AddNumberToObject(out, "page_number", page);
    cJSON_AddNumberToObject(out, "page_size", size);
    cJSON_AddNumberToObject(out, "total_pages", (n + size - 1) / size);
    cJSON_AddNumberToObject(out, "total_elements", n);
    free(fi);
    srv_reply_json(r, 200, out);
    return 1;
}

/* DELETE /faces[?subject=NAME]: the subject's examples, or every example. */
static int cf_delete_examples(cf_ctx *c) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    const char *name = srv_req_query(r, "subject");
    if (name && !*name) name = NULL;
    mien_gallery *g = srv_gallery(r);
    mien_gallery_face_info *fi = NULL;
    int n = 0, deleted = 0;
    int st = mien_gallery_faces(g, name, &fi, &n);
    for (int i = 0; !st && i < n; i++) {
        st = mien_gallery_face_delete(g, fi[i].id, NULL, 0);
        if (st == MIEN_ENOTFOUND) st = MIEN_OK; /* deleted meanwhile by another request */
        else if (!st) deleted++;
    }
    free(fi);
    if (st) return cf_fail(r, st, "deleting the examples", mien_gallery_errmsg(g));
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "deleted", deleted);
    srv_reply_json(r, 200, out);
    return 1;
}

static int cf_delete_example(cf_ctx *c, int64_t id, const char *raw_id) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    mien_gallery *g = srv_gallery(r);
    char subject[MIEN_GALLERY_NAME_MAX];
    int st = id > 0 ? mien_gallery_face_delete(g, id, subject, sizeof subject) : MIEN_ENOTFOUND;
    if (st == MIEN_ENOTFOUND) return cf_error(r, 404, CF_CODE_NOT_FOUND, "Image with id %s not found", raw_id);
    if (st) return cf_fail(r, st, "deleting the example", mien_gallery_errmsg(g));
    char uuid[37];
    cf_image_id(id, uuid);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "image_id", uuid);
    cJSON_AddStringToObject(out, "subject", subject);
    srv_reply_json(r, 200, out);
    return 1;
}

/* The "subject" member of a JSON body; NULL with a 400 sent. */
static const char *cf_subject_member(cf_ctx *c) {
    cJSON *j = cf_json(c);
    if (!j) return NULL;
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "subject");
    if (!cJSON_IsString(s) || !s->valuestring[0]) {
        cf_error(c->r, 400, CF_CODE_BAD_REQUEST, "Required JSON member 'subject' is not present");
        return NULL;
    }
    return s->valuestring;
}

static int cf_add_subject(cf_ctx *c) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    const char *name = cf_subject_member(c);
    if (!name) return 1;
    mien_gallery *g = srv_gallery(r);
    int created = 0;
    int st = mien_gallery_subject_add(g, name, &created);
    if (st) return cf_fail(r, st, "adding the subject", mien_gallery_errmsg(g));
    if (!created) return cf_error(r, 400, CF_CODE_SUBJECT_EXISTS, "Subject '%s' already exists", name);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "subject", name);
    srv_reply_json(r, 201, out); /* CompreFace: 201 Created */
    return 1;
}

static int cf_list_subjects(cf_ctx *c) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION)) return 1;
    mien_gallery *g = srv_gallery(r);
    mien_subject *s = NULL;
    int n = 0;
    int st = mien_gallery_subjects(g, &s, &n);
    if (st) return cf_fail(r, st, "listing the subjects", mien_gallery_errmsg(g));
    cJSON *out = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(out, "subjects");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(s[i].name));
    free(s);
    srv_reply_json(r, 200, out);
    return 1;
}

static int cf_delete_all_subjects(cf_ctx *c) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    mien_gallery *g = srv_gallery(r);
    mien_subject *s = NULL;
    int n = 0, deleted = 0;
    int st = mien_gallery_subjects(g, &s, &n);
    for (int i = 0; !st && i < n; i++) {
        st = mien_gallery_forget(g, s[i].name);
        if (st == MIEN_ENOTFOUND) st = MIEN_OK;
        else if (!st) deleted++;
    }
    free(s);
    if (st) return cf_fail(r, st, "deleting the subjects", mien_gallery_errmsg(g));
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "deleted", deleted);
    srv_reply_json(r, 200, out);
    return 1;
}

static int cf_delete_subject(cf_ctx *c, const char *name) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    mien_gallery *g = srv_gallery(r);
    int st = mien_gallery_forget(g, name);
    if (st == MIEN_ENOTFOUND) return cf_error(r, 404, CF_CODE_SUBJECT_NOT_FOUND, "Subject '%s' not found", name);
    if (st) return cf_fail(r, st, "deleting the subject", mien_gallery_errmsg(g));
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "subject", name);
    srv_reply_json(r, 200, out);
    return 1;
}

/* Move every face of `from` to the existing subject `to` (CompreFace merges on a rename onto
 * an existing name), then delete `from`. The faces are enrolled under `to` first, so a
 * failure half-way leaves them in both subjects, never in neither. */
static int cf_merge(mien_gallery *g, mien_models *m, const char *from, const char *to) {
    char model[64];
    int dim = 0;
    int st = mien_gallery_model(g, model, sizeof model, &dim);
    mien_gallery_face_info *fi = NULL;
    int n = 0;
    if (!st) st = mien_gallery_faces(g, from, &fi, &n);
    if (!st && n > 0) {
        float *emb = malloc((size_t)n * (size_t)dim * sizeof *emb);
        mien_gallery_face *gf = calloc((size_t)n, sizeof *gf);
        if (!emb || !gf) st = MIEN_ENOMEM;
        for (int i = 0; !st && i < n; i++) {
            st = mien_gallery_face_embedding(g, fi[i].id, emb + (size_t)i * dim, dim);
            gf[i].embedding = emb + (size_t)i * dim;
            memcpy(gf[i].box, fi[i].box, sizeof gf[i].box);
            gf[i].image_sha256 = fi[i].image_sha256[0] ? fi[i].image_sha256 : NULL;
        }
        if (!st) st = mien_gallery_enroll(g, to, model, dim, gf, n, NULL);
        free(emb);
        free(gf);
    }
    free(fi);
    (void)m;
    if (!st) st = mien_gallery_forget(g, from);
    return st;
}

static int cf_rename_subject(cf_ctx *c, const char *name) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    const char *to = cf_subject_member(c);
    if (!to) return 1;
    mien_gallery *g = srv_gallery(r);
    mien_subject *s = NULL;
    int n = 0, have_from = 0, have_to = 0;
    int st = mien_gallery_subjects(g, &s, &n);
    for (int i = 0; i < n; i++) {
        have_from |= !strcmp(s[i].name, name);
        have_to |= !strcmp(s[i].name, to);
    }
    free(s);
    if (st) return cf_fail(r, st, "listing the subjects", mien_gallery_errmsg(g));
    if (!have_from) return cf_error(r, 404, CF_CODE_SUBJECT_NOT_FOUND, "Subject '%s' not found", name);
    if (strcmp(name, to) == 0) st = MIEN_OK;
    else if (have_to) st = cf_merge(g, srv_models(r), name, to);
    else st = mien_gallery_rename(g, name, to);
    if (st) return cf_fail(r, st, "renaming the subject", mien_gallery_errmsg(g));
    cJSON *out = cJSON_CreateObject();
    cJSON_AddBoolToObject(out, "updated", 1);
    srv_reply_json(r, 200, out);
    return 1;
}

/* ==== Detection and verification services ==== */

static int cf_detect(cf_ctx *c) {
    srv_req *r = c->r;
    cf_opts o;
    const unsigned char *data;
    size_t len;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_DETECTION) || cf_parse_opts(r, &o) ||
        cf_image(c, 0, "file", &data, &len))
        return 1;
    cf_photo p;
    if (cf_photo_run(r, data, len, &o, o.calculator, &p)) return 1;
    cJSON *out = cJSON_CreateObject();
    cJSON *res = cJSON_AddArrayToObject(out, "result");
    for (int i = 0; i < p.n; i++) cJSON_AddItemToArray(res, cf_face_json(&p, i, &o));
    if (o.status) cJSON_AddItemToObject(out, "plugins_versions", cf_plugins_versions(r, &o));
    srv_reply_json(r, 200, out);
    cf_photo_free(&p);
    return 1;
}

static int cf_verification(cf_ctx *c) {
    srv_req *r = c->r;
    cf_opts o;
    const unsigned char *sdata, *tdata;
    size_t slen, tlen;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_VERIFICATION) || cf_parse_opts(r, &o) ||
        cf_image(c, 0, "source_image", &sdata, &slen) || cf_image(c, 1, "target_image", &tdata, &tlen))
        return 1;
    /* The source: its largest face (limit applies to the target). */
    cf_opts so = o;
    so.det.max_faces = 1;
    cf_photo sp, tp;
    if (cf_photo_run(r, sdata, slen, &so, 1, &sp)) return 1;
    if (cf_photo_run(r, tdata, tlen, &o, 1, &tp)) {
        cf_photo_free(&sp);
        return 1;
    }
    float t = srv_threshold(r);
    const float *src = sp.emb + (size_t)cf_largest(&sp) * sp.dim;
    float *sim = malloc((size_t)tp.n * sizeof *sim);
    int *order = malloc((size_t)tp.n * sizeof *order);
    if (!sim || !order) {
        free(sim);
        free(order);
        cf_photo_free(&sp);
        cf_photo_free(&tp);
        return cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
    }
    cf_rank_faces(&tp, src, sim, order);
    cJSON *out = cJSON_CreateObject();
    cJSON *res = cJSON_AddArrayToObject(out, "result");
    cJSON *item = cJSON_CreateObject();
    cJSON_AddItemToObject(item, "source_image_face", cf_face_json(&sp, cf_largest(&sp), &o));
    cJSON *fm = cJSON_AddArrayToObject(item, "face_matches");
    for (int j = 0; j < tp.n; j++) {
        cJSON *f = cf_face_json(&tp, order[j], &o);
        cJSON_AddNumberToObject(f, "similarity", cf_similarity(sim[order[j]], t));
        cJSON_AddItemToArray(fm, f);
    }
    if (o.status) cJSON_AddItemToObject(item, "plugins_versions", cf_plugins_versions(r, &o));
    cJSON_AddItemToArray(res, item);
    srv_reply_json(r, 200, out);
    free(sim);
    free(order);
    cf_photo_free(&sp);
    cf_photo_free(&tp);
    return 1;
}

/* ==== Examples by id: delete many, download the image ==== */

/* POST /faces/delete with a JSON array of image ids: those of this collection are deleted
 * (unknown ids are ignored, as CompreFace does); the answer lists what was. */
static int cf_delete_examples_by_id(cf_ctx *c) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_ADMIN, SRV_SERVICE_RECOGNITION)) return 1;
    size_t len;
    const unsigned char *body = srv_req_body(r, &len);
    if (len == 0) return cf_error(r, 400, CF_CODE_BAD_REQUEST, "Request body is missing");
    cJSON *ids = cJSON_ParseWithLength((const char *)body, len);
    if (!cJSON_IsArray(ids)) {
        cJSON_Delete(ids);
        return cf_error(r, 400, CF_CODE_BAD_REQUEST, "The body must be a JSON array of image ids");
    }
    mien_gallery *g = srv_gallery(r);
    cJSON *out = cJSON_CreateArray();
    int st = MIEN_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) {
        if (!cJSON_IsString(it)) {
            st = MIEN_EINVAL;
            break;
        }
        int64_t id = cf_parse_image_id(it->valuestring);
        char subject[MIEN_GALLERY_NAME_MAX];
        int rc = id > 0 ? mien_gallery_face_delete(g, id, subject, sizeof subject) : MIEN_ENOTFOUND;
        if (rc == MIEN_ENOTFOUND) continue;
        if (rc) {
            st = rc;
            break;
        }
        char uuid[37];
        cf_image_id(id, uuid);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "image_id", uuid);
        cJSON_AddStringToObject(f, "subject", subject);
        cJSON_AddItemToArray(out, f);
    }
    cJSON_Delete(ids);
    if (st == MIEN_EINVAL) {
        cJSON_Delete(out);
        return cf_error(r, 400, CF_CODE_BAD_ARGUMENT, "Every image id must be a string (a UUID)");
    }
    if (st) {
        /* Those before the failure are deleted: say which. */
        cJSON_Delete(out);
        return cf_fail(r, st, "deleting the examples", mien_gallery_errmsg(g));
    }
    srv_reply_json(r, 200, out);
    return 1;
}

/* GET /faces/{id}/img (and /static/{key}/images/{id}): the image kept with the example, as
 * its bytes; empty bytes when there is none (CompreFace's answer too). */
static int cf_example_image(cf_ctx *c, int64_t id) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION)) return 1;
    mien_gallery *g = srv_gallery(r);
    void *data = NULL;
    size_t len = 0;
    char type[64];
    int st = id > 0 ? mien_gallery_face_image(g, id, &data, &len, type, sizeof type, NULL, 0)
                    : MIEN_ENOTFOUND;
    if (st && st != MIEN_ENOTFOUND) {
        free(data);
        return cf_fail(r, st, "reading the example's image", mien_gallery_errmsg(g));
    }
    srv_reply_header(r, "Cache-Control", "public, max-age=86400");
    if (st) srv_reply_bytes(r, 200, "application/octet-stream", "", 0);
    else srv_reply_bytes(r, 200, type, data, len);
    free(data);
    return 1;
}

/* ==== Embeddings the client sends ==== */

/* Most vectors one request may carry. */
#define CF_MAX_EMBEDDINGS 1000

/* The array a of numbers, of the server's embedding size, into out (normalised). 0, or -1
 * with a 400 sent. */
static int cf_vector(srv_req *r, const cJSON *a, int dim, float *out, const char *what, int i) {
    mien_models *m = srv_models(r);
    char name[48];
    if (i >= 0) snprintf(name, sizeof name, "%s[%d]", what, i);
    else snprintf(name, sizeof name, "%s", what);
    if (!cJSON_IsArray(a)) {
        cf_error(r, 400, CF_CODE_BAD_ARGUMENT, "'%s' must be an array of numbers", name);
        return -1;
    }
    int n = cJSON_GetArraySize(a);
    if (n != dim) {
        cf_error(r, 400, CF_CODE_BAD_ARGUMENT, "'%s' has %d values: this server's embedder '%s' "
                 "gives %d (use the embedding of its calculator plugin)", name, n,
                 mien_models_embedder_name(m), dim);
        return -1;
    }
    double ss = 0;
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e6) {
            cf_error(r, 400, CF_CODE_BAD_ARGUMENT, "'%s' holds something else than finite numbers",
                     name);
            return -1;
        }
        out[k++] = (float)v->valuedouble;
        ss += v->valuedouble * v->valuedouble;
    }
    if (!(ss > 0)) {
        cf_error(r, 400, CF_CODE_BAD_ARGUMENT, "'%s' is a zero vector", name);
        return -1;
    }
    float inv = (float)(1.0 / sqrt(ss));
    for (k = 0; k < dim; k++) out[k] *= inv;
    return 0;
}

/* The member `member` of the JSON body: an array of 1 to CF_MAX_EMBEDDINGS vectors, read into
 * a malloc'd (n, dim) matrix. NULL with a 400 sent. */
static float *cf_vectors(cf_ctx *c, const char *member, int dim, int *n, const cJSON **arr) {
    srv_req *r = c->r;
    cJSON *j = cf_json(c);
    if (!j) return NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, member);
    int cnt = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (cnt < 1 || cnt > CF_MAX_EMBEDDINGS) {
        cf_error(r, 400, CF_CODE_BAD_ARGUMENT, "'%s' must be an array of 1 to %d embeddings", member,
                 CF_MAX_EMBEDDINGS);
        return NULL;
    }
    float *v = malloc((size_t)cnt * (size_t)dim * sizeof *v);
    if (!v) {
        cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
        return NULL;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        if (cf_vector(r, e, dim, v + (size_t)i * dim, member, i)) {
            free(v);
            return NULL;
        }
        i++;
    }
    *n = cnt;
    *arr = a;
    return v;
}

/* The client's vectors are comparable with the collection's only when both come from this
 * server's embedder: 1, or 0 with a 409 sent (the collection holds another model's). */
static int cf_same_embedder(srv_req *r, mien_gallery *g) {
    char model[64];
    int gdim = 0;
    mien_models *m = srv_models(r);
    int st = mien_gallery_model(g, model, sizeof model, &gdim);
    if (st) {
        cf_fail(r, st, "reading the collection", mien_gallery_errmsg(g));
        return 0;
    }
    if (model[0] && (strcmp(model, mien_models_embedder_name(m)) != 0 ||
                     gdim != mien_models_embedding_dim(m))) {
        cf_error(r, 409, CF_CODE_BAD_ARGUMENT, "the collection holds '%s' embeddings (%d-d) but "
                 "this server computes '%s' ones (%d-d): they cannot be compared", model, gdim,
                 mien_models_embedder_name(m), mien_models_embedding_dim(m));
        return 0;
    }
    return 1;
}

/* POST /recognition/embeddings/recognize?prediction_count: {"embeddings": [[...], ...]}. */
static int cf_recognize_embeddings(cf_ctx *c) {
    srv_req *r = c->r;
    int k;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION) ||
        cf_int_param(r, "prediction_count", 1, 1, &k))
        return 1;
    mien_gallery *g = srv_gallery(r);
    if (!cf_same_embedder(r, g)) return 1;
    int dim = mien_models_embedding_dim(srv_models(r)), n = 0, n_faces = 0;
    const cJSON *arr;
    float *q = cf_vectors(c, "embeddings", dim, &n, &arr);
    if (!q) return 1;
    mien_gallery_count(g, NULL, &n_faces);
    mien_match *m = malloc((size_t)n * (size_t)k * sizeof *m);
    int *nm = calloc((size_t)n, sizeof *nm);
    int st = !m || !nm ? MIEN_ENOMEM : MIEN_OK;
    if (!st && n_faces > 0) st = mien_gallery_search_batch(g, q, n, dim, k, m, nm);
    if (st) {
        cf_fail(r, st, "searching the collection", mien_gallery_errmsg(g));
    } else {
        float t = srv_threshold(r);
        cJSON *out = cJSON_CreateObject();
        cJSON *res = cJSON_AddArrayToObject(out, "result");
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddItemToObject(item, "embedding", cJSON_Duplicate(e, 1));
            cJSON *sims = cJSON_AddArrayToObject(item, "similarities");
            for (int j = 0; j < nm[i]; j++) {
                const mien_match *x = &m[(size_t)i * k + j];
                cJSON *sj = cJSON_CreateObject();
                cJSON_AddStringToObject(sj, "subject", x->name);
                cJSON_AddNumberToObject(sj, "similarity", cf_similarity(x->similarity, t));
                cJSON_AddItemToArray(sims, sj);
            }
            cJSON_AddItemToArray(res, item);
            i++;
        }
        srv_reply_json(r, 200, out);
    }
    free(q);
    free(m);
    free(nm);
    return 1;
}

/* Answer {"result": [{"embedding": a[i], "similarity": ...}]} for vectors q (n, dim) against
 * ref, in the order they came. */
static int cf_reply_similarities(srv_req *r, const cJSON *arr, const float *q, int n, int dim,
                                 const float *ref) {
    float t = srv_threshold(r);
    cJSON *out = cJSON_CreateObject();
    cJSON *res = cJSON_AddArrayToObject(out, "result");
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (i >= n) break;
        cJSON *item = cJSON_CreateObject();
        cJSON_AddItemToObject(item, "embedding", cJSON_Duplicate(e, 1));
        float sim = mien_similarity(ref, q + (size_t)i * dim, dim);
        cJSON_AddNumberToObject(item, "similarity", cf_similarity(sim, t));
        cJSON_AddItemToArray(res, item);
        i++;
    }
    srv_reply_json(r, 200, out);
    return 1;
}

/* POST /recognition/embeddings/faces/{image_id}/verify: {"embeddings": [[...], ...]} against
 * one stored example. */
static int cf_verify_embeddings(cf_ctx *c, int64_t id, const char *raw_id) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_RECOGNITION)) return 1;
    mien_gallery *g = srv_gallery(r);
    if (!cf_same_embedder(r, g)) return 1;
    int dim = mien_models_embedding_dim(srv_models(r)), n = 0;
    float *ref = malloc((size_t)dim * sizeof *ref);
    if (!ref) return cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
    int st = id > 0 ? mien_gallery_face_embedding(g, id, ref, dim) : MIEN_ENOTFOUND;
    if (st) {
        free(ref);
        return st == MIEN_ENOTFOUND
                   ? cf_error(r, 404, CF_CODE_IMAGE_NOT_FOUND, "Image with id %s not found", raw_id)
                   : cf_fail(r, st, "reading the example", mien_gallery_errmsg(g));
    }
    const cJSON *arr;
    float *q = cf_vectors(c, "embeddings", dim, &n, &arr);
    if (q) cf_reply_similarities(r, arr, q, n, dim, ref);
    free(q);
    free(ref);
    return 1;
}

/* POST /verification/embeddings/verify: {"source": [...], "targets": [[...], ...]}. */
static int cf_verification_embeddings(cf_ctx *c) {
    srv_req *r = c->r;
    if (!cf_require(r, SRV_ROLE_READ, SRV_SERVICE_VERIFICATION)) return 1;
    cJSON *j = cf_json(c);
    if (!j) return 1;
    int dim = mien_models_embedding_dim(srv_models(r)), n = 0;
    float *src = malloc((size_t)dim * sizeof *src);
    if (!src) return cf_error(r, 503, CF_CODE_GENERIC, "out of memory");
    const cJSON *arr;
    float *q = NULL;
    if (!cf_vector(r, cJSON_GetObjectItemCaseSensitive(j, "source"), dim, src, "source", -1) &&
        (q = cf_vectors(c, "targets", dim, &n, &arr)))
        cf_reply_similarities(r, arr, q, n, dim, src);
    free(q);
    free(src);
    return 1;
}

/* ==== Routing ==== */

static int cf_method_not_allowed(srv_req *r, const char *allowed) {
    srv_reply_header(r, "Allow", allowed);
    return cf_error(r, 405, CF_CODE_GENERIC, "Request method '%s' is not supported here "
                    "(allowed: %s)", srv_req_method(r), allowed);
}

static int cf_dispatch(cf_ctx *c) {
    srv_req *r = c->r;
    const char *path = srv_req_path(r);
    const char *m = srv_req_method(r);
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), put = !strcmp(m, "PUT"),
        del = !strcmp(m, "DELETE");
    static const char rec[] = "/api/v1/recognition/";
    if (!strcmp(path, "/api/v1/detection/detect")) {
        srv_req_set_route(r, "/api/v1/detection/detect");
        return post ? cf_detect(c) : cf_method_not_allowed(r, "POST");
    }
    if (!strcmp(path, "/api/v1/verification/verify")) {
        srv_req_set_route(r, "/api/v1/verification/verify");
        return post ? cf_verification(c) : cf_method_not_allowed(r, "POST");
    }
    if (!strcmp(path, "/api/v1/verification/embeddings/verify")) {
        srv_req_set_route(r, "/api/v1/verification/embeddings/verify");
        return post ? cf_verification_embeddings(c) : cf_method_not_allowed(r, "POST");
    }
    static const char stat[] = "/api/v1/static/";
    if (!strncmp(path, stat, sizeof stat - 1)) {
        /* /static/{api_key}/images/{image_id}: a link an <img> can show, the key in it. */
        srv_req_set_route(r, "/api/v1/static/{api_key}/images/{image_id}");
        char key[128], raw[64];
        const char *rest;
        if (cf_segment(path + sizeof stat - 1, key, sizeof key, &rest) ||
            strncmp(rest, "/images/", 8) || cf_segment(rest + 8, raw, sizeof raw, &rest) || *rest)
            return cf_error(r, 404, CF_CODE_IMAGE_NOT_FOUND, "Malformed image link");
        if (!get) return cf_method_not_allowed(r, "GET");
        srv_req_set_api_key(r, key);
        return cf_example_image(c, cf_parse_image_id(raw));
    }
    if (strncmp(path, rec, sizeof rec - 1) != 0) return 0;
    const char *p = path + sizeof rec - 1;
    if (!strcmp(p, "recognize")) {
        srv_req_set_route(r, "/api/v1/recognition/recognize");
        return post ? cf_recognize(c) : cf_method_not_allowed(r, "POST");
    }
    if (!strcmp(p, "embeddings/recognize")) {
        srv_req_set_route(r, "/api/v1/recognition/embeddings/recognize");
        return post ? cf_recognize_embeddings(c) : cf_method_not_allowed(r, "POST");
    }
    if (!strncmp(p, "embeddings/faces/", 17)) {
        srv_req_set_route(r, "/api/v1/recognition/embeddings/faces/{image_id}/verify");
        char raw[64];
        const char *rest;
        if (cf_segment(p + 17, raw, sizeof raw, &rest) || strcmp(rest, "/verify") != 0)
            return cf_error(r, 404, CF_CODE_GENERIC, "No route %s %s", m, path);
        return post ? cf_verify_embeddings(c, cf_parse_image_id(raw), raw)
                    : cf_method_not_allowed(r, "POST");
    }
    if (!strcmp(p, "faces/delete")) {
        srv_req_set_route(r, "/api/v1/recognition/faces/delete");
        return post ? cf_delete_examples_by_id(c) : cf_method_not_allowed(r, "POST");
    }
    if (!strcmp(p, "subjects") || !strcmp(p, "subjects/")) {
        srv_req_set_route(r, "/api/v1/recognition/subjects");
        if (get) return cf_list_subjects(c);
        if (post) return cf_add_subject(c);
        if (del) return cf_delete_all_subjects(c);
        return cf_method_not_allowed(r, "GET, POST, DELETE");
    }
    if (!strncmp(p, "subjects/", 9)) {
        srv_req_set_route(r, "/api/v1/recognition/subjects/{subject}");
        char name[MIEN_GALLERY_NAME_MAX];
        const char *rest;
        if (cf_segment(p + 9, name, sizeof name, &rest) || *rest)
            return cf_error(r, 400, CF_CODE_BAD_REQUEST, "Malformed subject name in the path");
        if (put) return cf_rename_subject(c, name);
        if (del) return cf_delete_subject(c, name);
        return cf_method_not_allowed(r, "PUT, DELETE");
    }
    if (!strcmp(p, "faces") || !strcmp(p, "faces/")) {
        srv_req_set_route(r, "/api/v1/recognition/faces");
        if (get) return cf_list_examples(c);
        if (post) return cf_add_example(c);
        if (del) return cf_delete_examples(c);
        return cf_method_not_allowed(r, "GET, POST, DELETE");
    }
    if (!strncmp(p, "faces/", 6)) {
        char raw[64];
        const char *rest;
        if (cf_segment(p + 6, raw, sizeof raw, &rest)) {
            srv_req_set_route(r, "/api/v1/recognition/faces/{image_id}");
            return cf_error(r, 404, CF_CODE_NOT_FOUND, "Malformed image id in the path");
        }
        int64_t id = cf_parse_image_id(raw);
        if (!strcmp(rest, "/verify")) {
            srv_req_set_route(r, "/api/v1/recognition/faces/{image_id}/verify");
            return post ? cf_verify_example(c, id) : cf_method_not_allowed(r, "POST");
        }
        if (!strcmp(rest, "/img")) {
            srv_req_set_route(r, "/api/v1/recognition/faces/{image_id}/img");
            return get ? cf_example_image(c, id) : cf_method_not_allowed(r, "GET");
        }
        if (*rest) return 0;
        srv_req_set_route(r, "/api/v1/recognition/faces/{image_id}");
        return del ? cf_delete_example(c, id, raw) : cf_method_not_allowed(r, "DELETE");
    }
    return 0;
}

int compreface_route(srv_req *r) {
    cf_ctx c = {.r = r};
    int handled = cf_dispatch(&c);
    cJSON_Delete(c.json);
    free(c.img[0]);
    free(c.img[1]);
    return handled;
}
