/* mien serve, the request side of the HTTP plumbing: reading request bodies, multipart parts
 * and keys, replies, the shared state the routes use (models, collections, the session pool),
 * kept face images and the metrics. The daemon (libmicrohttpd callbacks, opening and
 * closing) is in daemon.c, the routes in routes.c. */
#include "image/image.h"
#include "server/srv_int.h"
#include "server/srv_state.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ==== Requests: reading ==== */

const char *srv_req_method(const srv_req *r) { return r->method; }
const char *srv_req_path(const srv_req *r) { return r->url; }

int srv_url_decode(const char *in, size_t n, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            if (!isxdigit((unsigned char)in[i + 1]) || !isxdigit((unsigned char)in[i + 2])) return -1;
            char hex[3] = {in[i + 1], in[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
            if (c == '\0') return -1;
        }
        if (o + 1 >= size) return -1;
        out[o++] = c;
    }
    if (size == 0) return -1;
    out[o] = '\0';
    return (int)o;
}

static char *keep_string(srv_req *r, char *s) {
    if (!s) return NULL;
    char **v = realloc(r->strings, (size_t)(r->n_strings + 1) * sizeof *v);
    if (!v) {
        free(s);
        return NULL;
    }
    r->strings = v;
    v[r->n_strings++] = s;
    return s;
}

const char *srv_req_query(srv_req *r, const char *key) {
    /* The daemon keeps query values escaped (see no_unescape): decode here. MHD has already
     * turned '+' into ' '. */
    const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
    if (!raw) return NULL;
    size_t n = strlen(raw);
    char *out = malloc(n + 1);
    if (!out || srv_url_decode(raw, n, out, n + 1) < 0) {
        free(out);
        return NULL;
    }
    return keep_string(r, out);
}

const char *srv_req_header(srv_req *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const unsigned char *srv_req_body(const srv_req *r, size_t *len) {
    static const unsigned char empty[1] = {0};
    *len = r->body ? r->len : 0;
    return r->body ? r->body : empty;
}

int srv_req_n_parts(const srv_req *r) { return r->n_parts; }
const srv_part *srv_req_part(const srv_req *r, int i) {
    return i >= 0 && i < r->n_parts ? &r->parts[i] : NULL;
}
const srv_part *srv_req_find_part(const srv_req *r, const char *name) {
    for (int i = 0; i < r->n_parts; i++)
        if (!strcmp(r->parts[i].name, name)) return &r->parts[i];
    return NULL;
}

/* Content-Type without parameters, lower case, into buf. "" when absent. */
static const char *media_type(srv_req *r, char *buf, size_t size) {
    const char *ct = srv_req_header(r, "Content-Type");
    size_t n = 0;
    if (ct) {
        while (*ct == ' ') ct++;
        while (ct[n] && ct[n] != ';' && ct[n] != ' ' && n + 1 < size) {
            buf[n] = (char)tolower((unsigned char)ct[n]);
            n++;
        }
    }
    buf[n] = '\0';
    return buf;
}

int srv_req_is_form(srv_req *r) {
    char mt[128];
    media_type(r, mt, sizeof mt);
    return !strcmp(mt, "multipart/form-data");
}

int srv_req_image(srv_req *r, int n, const char *const *names, const unsigned char **data,
                  size_t *len) {
    char mt[128];
    media_type(r, mt, sizeof mt);
    if (srv_req_is_form(r)) {
        const srv_part *p = names && names[n] ? srv_req_find_part(r, names[n]) : NULL;
        if (!p) {
            /* The n-th file part, or the n-th part named image / file. */
            int seen = 0;
            for (int i = 0; i < r->n_parts && !p; i++) {
                const srv_part *q = &r->parts[i];
                if (q->filename || !strcmp(q->name, "image") || !strcmp(q->name, "file")) {
                    if (seen++ == n) p = q;
                }
            }
        }
        if (!p || p->len == 0) {
            srv_reply_error(r, 400, "the form has no %s image (send a file field named %s)",
                            n == 0 ? "first" : "second",
                            names && names[n] ? names[n] : "image");
            return -1;
        }
        *data = p->data;
        *len = p->len;
        return 0;
    }
    /* application/x-www-form-urlencoded is what curl --data-binary sends by default: a photo
     * cannot be a urlencoded form, so it is taken as the raw photo. */
    if (mt[0] && strncmp(mt, "image/", 6) != 0 && strcmp(mt, "application/octet-stream") != 0 &&
        strcmp(mt, "application/x-www-form-urlencoded") != 0) {
        srv_reply_error(r, 415,
                        "Content-Type %s: send the photo as the raw body (image/jpeg, image/png, "
                        "image/webp or application/octet-stream) or as multipart/form-data", mt);
        return -1;
    }
    if (n > 0) {
        srv_reply_error(r, 400, "two images are needed: send them as multipart/form-data "
                                "(fields image1 and image2)");
        return -1;
    }
    if (r->len == 0) {
        srv_reply_error(r, 400, "empty body: send a JPEG, PNG or WebP photo");
        return -1;
    }
    *data = r->body;
    *len = r->len;
    return 0;
}

cJSON *srv_req_json(srv_req *r) {
    if (r->json) return r->json;
    if (r->len == 0) {
        srv_reply_error(r, 400, "empty body: a JSON object is expected");
        return NULL;
    }
    const char *end = NULL;
    r->json = cJSON_ParseWithLengthOpts((const char *)r->body, r->len, &end, 0);
    if (!r->json) {
        size_t at = end && end >= (const char *)r->body ? (size_t)(end - (const char *)r->body) : 0;
        srv_reply_error(r, 400, "malformed JSON body (near byte %zu)", at);
        return NULL;
    }
    return r->json;
}

void srv_req_set_api_key(srv_req *r, const char *key) {
    free(r->path_key);
    r->path_key = key ? strdup(key) : NULL;
    r->grant_done = 0;
}

const char *srv_req_api_key(srv_req *r) {
    if (r->path_key) return r->path_key;
    const char *k = srv_req_header(r, "X-API-Key");
    if (k && *k) return k;
    const char *a = srv_req_header(r, "Authorization");
    if (a && !strncasecmp(a, "Bearer ", 7)) {
        a += 7;
        while (*a == ' ') a++;
        if (*a) return a;
    }
    return NULL;
}

const srv_grant *srv_req_grant(srv_req *r) {
    if (!r->grant_done) {
        srv_keys_grant(r->s->keys, srv_req_api_key(r), &r->grant);
        r->grant_done = 1;
    }
    return &r->grant;
}

srv_role srv_req_role(srv_req *r) { return srv_req_grant(r)->role; }

int srv_req_allow(srv_req *r, srv_role need, srv_service service, char *why, size_t size) {
    const srv_grant *g = srv_req_grant(r);
    if (!srv_req_api_key(r)) {
        snprintf(why, size, "an API key is required: send it in the X-API-Key header (create "
                            "one with 'mien keys add')");
        return 401;
    }
    if (g->role == SRV_ROLE_NONE) {
        snprintf(why, size, "unknown API key");
        return 401;
    }
    if (g->service != SRV_SERVICE_ANY && g->service != service) {
        if (service == SRV_SERVICE_ANY)
            snprintf(why, size, "this is a %s service key: %s needs a mien key (mien keys add "
                     "--role admin)", srv_service_name(g->service), r->route);
        else
            snprintf(why, size, "this is a %s service key: %s belongs to the %s service",
                     srv_service_name(g->service), r->route, srv_service_name(service));
        return 403;
    }
    if (g->role < need) {
        snprintf(why, size, "this API key has the %s role; %s needs an %s key",
                 srv_role_name(g->role), r->route, srv_role_name(need));
        return 403;
    }
    return 0;
}

int srv_req_use_collection(srv_req *r, int create, char *why, size_t size) {
    const srv_grant *g = srv_req_grant(r);
    const char *q = srv_req_query(r, "collection");
    if (q && !*q) q = NULL;
    const char *name = q;
    if (g->service == SRV_SERVICE_RECOGNITION && g->collection[0]) {
        if (q && strcmp(q, g->collection) != 0) {
            snprintf(why, size, "this key works on the collection '%s' only", g->collection);
            return 403;
        }
        name = g->collection;
        create = 1; /* the key was made for it: it exists from its first use */
    }
    if (!name) {
        r->gallery = NULL;
        return 0;
    }
    int st = MIEN_OK;
    mien_gallery *h = srv_collection(r->s, name, create, &st, why, size);
    if (!h) return st == MIEN_EINVAL ? 400 : srv_http_status(st);
    r->gallery = h;
    return 0;
}

srv_service srv_path_service(const char *method, const char *path) {
    if (!strcmp(path, "/v1/detect") || !strcmp(path, "/v1/embed")) return SRV_SERVICE_DETECTION;
    if (!strcmp(path, "/v1/verify")) return SRV_SERVICE_VERIFICATION;
    /* A recognition key may list its own collection. */
    if (!strcmp(path, "/v1/collections") && !strcmp(method, "GET")) return SRV_SERVICE_RECOGNITION;
    if (!strncmp(path, "/v1/keys", 8) || !strncmp(path, "/v1/collections", 15)) return SRV_SERVICE_ANY;
    return SRV_SERVICE_RECOGNITION;
}

int srv_req_require(srv_req *r, srv_role need) {
    char why[512];
    srv_service service = srv_path_service(r->method, r->url);
    int st = srv_req_allow(r, need, service, why, sizeof why);
    if (!st && service == SRV_SERVICE_RECOGNITION) st = srv_req_use_collection(r, 0, why, sizeof why);
    if (!st) return 1;
    if (st == 401) srv_reply_header(r, "WWW-Authenticate", "Bearer");
    srv_reply_error(r, st, "%s", why);
    return 0;
}

void srv_req_set_route(srv_req *r, const char *label) {
    snprintf(r->route, sizeof r->route, "%s", label);
}

/* ==== Requests: replying ==== */

int srv_http_status(int st) {
    switch (st) {
    case MIEN_OK: return 200;
    case MIEN_EINVAL: case MIEN_EFORMAT: return 400;
    case MIEN_EUNSUPPORTED: return 415;
    case MIEN_ETOOBIG: return 413;
    case MIEN_ENOFACE: return 422;
    case MIEN_ENOTFOUND: return 404;
    case MIEN_EMISMATCH: return 409;
    case MIEN_ENOMEM: return 503;
    default: return 500;
    }
}

void srv_reply_header(srv_req *r, const char *name, const char *value) {
    if (r->n_hdr >= MAX_RESP_HEADERS) return;
    char *n = strdup(name), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return;
    }
    r->hdr_name[r->n_hdr] = n;
    r->hdr_val[r->n_hdr++] = v;
}

int srv_reply_bytes(srv_req *r, int status, const char *content_type, const void *data,
                    size_t len) {
    if (r->replied) return -1;
    r->replied = 1;
    r->status = status;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        r->queued = MHD_NO;
        return -1;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < r->n_hdr; i++) MHD_add_response_header(resp, r->hdr_name[i], r->hdr_val[i]);
    if (r->too_big || status == 413) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    r->queued = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r->queued == MHD_YES ? 0 : -1;
}

int srv_reply_json(srv_req *r, int status, cJSON *body) {
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        return srv_reply_bytes(r, 503, "application/json", oom, sizeof oom - 1);
    }
    int rc = srv_reply_bytes(r, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

int srv_reply_error(srv_req *r, int status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    if (r->url && !strncmp(r->url, "/api/v1/", 8)) {
        /* CompreFace's shape on its routes, whatever answers (413 before the body is read, a
         * multipart body without a boundary, ...): code 0 is its UNDEFINED. */
        cJSON_AddStringToObject(o, "message", msg);
        cJSON_AddNumberToObject(o, "code", 0);
    } else {
        cJSON_AddStringToObject(o, "error", msg);
    }
    return srv_reply_json(r, status, o);
}

/* ==== Shared state ==== */

srv *srv_of(srv_req *r) { return r->s; }
mien_models *srv_models(srv_req *r) { return r->s->models; }
mien_gallery *srv_gallery(srv_req *r) { return r->gallery ? r->gallery : r->s->gallery; }
int srv_store_images(srv_req *r) { return r->s->cfg.store_images; }
const char *srv_default_collection(srv *s) { return mien_gallery_collection(s->gallery); }

/* ==== Images kept with enrolled faces ==== */

/* The media type of encoded image bytes, from their signature. */
static const char *sniff_type(const unsigned char *d, size_t n) {
    if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return "image/jpeg";
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (n >= 12 && !memcmp(d, "RIFF", 4) && !memcmp(d + 8, "WEBP", 4)) return "image/webp";
    return "application/octet-stream";
}

int srv_keep_face_image(srv_req *r, mien_gallery *g, int64_t face_id, mien_photo *p,
                        const mien_face *f, const void *data, size_t len, char *why, size_t size) {
    int mode = r->s->cfg.store_images;
    if (mode == SRV_IMAGES_NONE) return MIEN_OK;
    int rc;
    if (mode == SRV_IMAGES_PHOTO) {
        rc = mien_gallery_face_image_set(g, face_id, "photo", sniff_type(data, len), data, len);
        if (rc) snprintf(why, size, "keeping the photo: %s", mien_gallery_errmsg(g));
        return rc;
    }
    /* The crop the embedder saw, as a JPEG (quality 90). */
    mien_session *s = srv_session(r);
    const mien_image *img;
    mien_image chip = {0};
    rc = mien_photo_image(s, p, &img);
    if (!rc) rc = mien_align(s, img, f, &chip);
    if (rc) {
        snprintf(why, size, "cropping the face: %s", mien_errmsg(s));
        return rc;
    }
    uint8_t *jpg = NULL;
    size_t n = 0;
    mien_err e = {0};
    rc = img_encode_jpeg(&chip, 90, &jpg, &n, &e);
    mien_image_free(&chip);
    if (rc) {
        snprintf(why, size, "encoding the crop: %s", e.msg);
        return rc;
    }
    rc = mien_gallery_face_image_set(g, face_id, "crop", "image/jpeg", jpg, n);
    if (rc) snprintf(why, size, "keeping the crop: %s", mien_gallery_errmsg(g));
    free(jpg);
    return rc;
}

int64_t srv_face_id_of(mien_gallery *g, const char *subject, const char *sha) {
    mien_gallery_face_info *fi = NULL;
    int n = 0;
    int64_t id = 0;
    if (mien_gallery_faces(g, subject, &fi, &n) == MIEN_OK)
        for (int i = 0; i < n; i++)
            if (!strcmp(fi[i].image_sha256, sha)) id = fi[i].id;
    free(fi);
    return id;
}

/* ==== Collections ==== */

mien_gallery *srv_collection(srv *s, const char *name, int create, int *status, char *why,
                             size_t size) {
    *status = MIEN_OK;
    mien_gallery *h = NULL;
    pthread_mutex_lock(&s->coll_lock);
    for (int i = 0; i < s->n_colls && !h; i++)
        if (!strcmp(s->colls[i].name, name)) h = s->colls[i].g;
    if (h) {
        pthread_mutex_unlock(&s->coll_lock);
        return h;
    }
    /* Opening loads the collection (and may build its index): under the lock, so that two
     * requests never open the same one twice. Collections are opened once per server. */
    if (!s->have_path) {
        *status = MIEN_ENOTFOUND;
        snprintf(why, size, "no collection '%s' (this server has only '%s')", name,
                 mien_gallery_collection(s->gallery));
    } else if (s->n_colls >= 4096) {
        *status = MIEN_ETOOBIG;
        snprintf(why, size, "too many collections open");
    } else {
        mien_gallery_options o = s->gopt;
        o.collection = name;
        o.create = create && !o.read_only;
        int rc = mien_gallery_open(s->gallery_path, &o, &h);
        if (rc) {
            *status = rc;
            if (rc == MIEN_ENOTFOUND) snprintf(why, size, "no collection named '%s'", name);
            else snprintf(why, size, "collection '%s': %s", name, mien_gallery_errmsg(h));
            mien_gallery_close(h);
            h = NULL;
        } else if (s->n_colls == s->cap_colls) {
            int cap = s->cap_colls ? 2 * s->cap_colls : 8;
            srv_coll *v = realloc(s->colls, (size_t)cap * sizeof *v);
            if (v) s->colls = v, s->cap_colls = cap;
        }
        if (h && s->n_colls < s->cap_colls) {
            srv_coll *c = &s->colls[s->n_colls++];
            snprintf(c->name, sizeof c->name, "%s", name);
            c->g = h;
            c->owned = 1;
        } else if (h) {
            mien_gallery_close(h);
            h = NULL;
            *status = MIEN_ENOMEM;
            snprintf(why, size, "out of memory");
        }
    }
    pthread_mutex_unlock(&s->coll_lock);
    return h;
}

int srv_collection_drop(srv *s, const char *name, char *why, size_t size) {
    if (!strcmp(name, mien_gallery_collection(s->gallery))) {
        snprintf(why, size, "'%s' is the server's default collection: it cannot be deleted "
                 "(delete its subjects instead)", name);
        return MIEN_EINVAL;
    }
    int st = MIEN_OK;
    mien_gallery *h = srv_collection(s, name, 0, &st, why, size);
    if (!h) return st;
    pthread_mutex_lock(&s->coll_lock);
    int rc = mien_gallery_drop(h);
    if (rc) snprintf(why, size, "%s", mien_gallery_errmsg(h));
    if (rc == MIEN_OK || rc == MIEN_ENOTFOUND) {
        /* Out of the map; the handle stays valid (and empty) for requests holding it. */
        for (int i = 0; i < s->n_colls; i++)
            if (s->colls[i].g == h) {
                s->colls[i] = s->colls[--s->n_colls];
                break;
            }
        mien_gallery **d = realloc(s->dropped, (size_t)(s->n_dropped + 1) * sizeof *d);
        if (d) {
            s->dropped = d;
            s->dropped[s->n_dropped++] = h;
        } else {
            /* Cannot keep it for later: it leaks rather than being freed under a request. */
        }
    }
    pthread_mutex_unlock(&s->coll_lock);
    return rc;
}
float srv_threshold(srv_req *r) { return r->s->threshold; }
const mien_detect_options *srv_detect_options(srv_req *r) { return &r->s->det; }
srv_keys *srv_keys_of(srv_req *r) { return r->s->keys; }

mien_session *srv_session(srv_req *r) {
    srv *s = r->s;
    if (r->session_id >= 0) return s->sessions[r->session_id];
    /* At most `workers` handlers run at once (one per MHD thread), so the wait is short. */
    pthread_mutex_lock(&s->pool_lock);
    while (s->n_free == 0) pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    r->session_id = s->free_ids[--s->n_free];
    pthread_mutex_unlock(&s->pool_lock);
    return s->sessions[r->session_id];
}

void srv_session_release(srv_req *r) {
    srv *s = r->s;
    if (r->session_id < 0) return;
    pthread_mutex_lock(&s->pool_lock);
    s->free_ids[s->n_free++] = r->session_id;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
    r->session_id = -1;
}

cJSON *srv_face_json(const mien_face *f) {
    cJSON *o = cJSON_CreateObject();
    cJSON *box = cJSON_AddArrayToObject(o, "box");
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(box, cJSON_CreateNumber(round((double)f->box[i] * 100) / 100));
    cJSON_AddNumberToObject(o, "score", round((double)f->score * 10000) / 10000);
    cJSON *lm = cJSON_AddArrayToObject(o, "landmarks");
    for (int i = 0; i < f->n_landmarks; i++) {
        cJSON *p = cJSON_CreateArray();
        for (int j = 0; j < 2; j++) cJSON_AddItemToArray(p, cJSON_CreateNumber(round((double)f->landmarks[i][j] * 100) / 100));
        cJSON_AddItemToArray(lm, p);
    }
    cJSON *pts = cJSON_AddArrayToObject(o, "points");
    for (int i = 0; i < 5; i++) {
        cJSON *p = cJSON_CreateArray();
        for (int j = 0; j < 2; j++) cJSON_AddItemToArray(p, cJSON_CreateNumber(round((double)f->points[i][j] * 100) / 100));
        cJSON_AddItemToArray(pts, p);
    }
    cJSON_AddBoolToObject(o, "mouth_corners", f->n_points == 5);
    return o;
}

/* ==== Metrics ==== */

static const double hist_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
_Static_assert(sizeof hist_bounds / sizeof hist_bounds[0] == N_BOUNDS, "N_BOUNDS");

double srv_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_metrics_record(srv *s, const srv_req *r) {
    double dt = srv_now_s() - r->t0;
    pthread_mutex_lock(&s->metric_lock);
    metric_count *c = NULL;
    for (int i = 0; i < s->n_counts && !c; i++)
        if (s->counts[i].status == r->status && !strcmp(s->counts[i].route, r->route) &&
            !strcmp(s->counts[i].method, r->method))
            c = &s->counts[i];
    if (!c && s->n_counts == s->cap_counts) {
        int cap = s->cap_counts ? 2 * s->cap_counts : 32;
        metric_count *v = realloc(s->counts, (size_t)cap * sizeof *v);
        if (v) s->counts = v, s->cap_counts = cap;
    }
    if (!c && s->n_counts < s->cap_counts) {
        c = &s->counts[s->n_counts++];
        memset(c, 0, sizeof *c);
        snprintf(c->route, sizeof c->route, "%s", r->route);
        snprintf(c->method, sizeof c->method, "%s", r->method);
        c->status = r->status;
    }
    if (c) c->n++;
    metric_hist *h = NULL;
    for (int i = 0; i < s->n_hists && !h; i++)
        if (!strcmp(s->hists[i].route, r->route)) h = &s->hists[i];
    if (!h && s->n_hists == s->cap_hists) {
        int cap = s->cap_hists ? 2 * s->cap_hists : 16;
        metric_hist *v = realloc(s->hists, (size_t)cap * sizeof *v);
        if (v) s->hists = v, s->cap_hists = cap;
    }
    if (!h && s->n_hists < s->cap_hists) {
        h = &s->hists[s->n_hists++];
        memset(h, 0, sizeof *h);
        snprintf(h->route, sizeof h->route, "%s", r->route);
    }
    if (h) {
        int b = 0;
        while (b < N_BOUNDS && dt > hist_bounds[b]) b++;
        h->buckets[b]++;
        h->n++;
        h->sum += dt;
    }
    pthread_mutex_unlock(&s->metric_lock);
}

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n <= (size_t)k) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Route labels are router templates or compreface labels; escape for the label syntax. */
static void sb_label(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_printf(b, "\\%c", *s);
        else if (*s == '\n') sb_printf(b, "\\n");
        else sb_printf(b, "%c", *s);
    }
}

char *srv_metrics_text(srv *s) {
    sbuf b = {0};
    int ns = 0, nf = 0;
    mien_gallery_count(s->gallery, &ns, &nf);
    sb_printf(&b, "# HELP mien_http_requests_total HTTP requests answered, by route, method and status.\n"
                  "# TYPE mien_http_requests_total counter\n");
    pthread_mutex_lock(&s->metric_lock);
    for (int i = 0; i < s->n_counts; i++) {
        sb_printf(&b, "mien_http_requests_total{route=\"");
        sb_label(&b, s->counts[i].route);
        sb_printf(&b, "\",method=\"%s\",code=\"%d\"} %llu\n", s->counts[i].method, s->counts[i].status,
                  (unsigned long long)s->counts[i].n);
    }
    sb_printf(&b, "# HELP mien_http_request_duration_seconds Time from the request's headers to its "
                  "completion, by route.\n"
                  "# TYPE mien_http_request_duration_seconds histogram\n");
    for (int i = 0; i < s->n_hists; i++) {
        const metric_hist *h = &s->hists[i];
        uint64_t cum = 0;
        for (int k = 0; k <= N_BOUNDS; k++) {
            cum += h->buckets[k];
            sb_printf(&b, "mien_http_request_duration_seconds_bucket{route=\"");
            sb_label(&b, h->route);
            if (k < N_BOUNDS) sb_printf(&b, "\",le=\"%g\"} %llu\n", hist_bounds[k], (unsigned long long)cum);
            else sb_printf(&b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        sb_printf(&b, "mien_http_request_duration_seconds_sum{route=\"");
        sb_label(&b, h->route);
        sb_printf(&b, "\"} %.6f\n", h->sum);
        sb_printf(&b, "mien_http_request_duration_seconds_count{route=\"");
        sb_label(&b, h->route);
        sb_printf(&b, "\"} %llu\n", (unsigned long long)h->n);
    }
    pthread_mutex_unlock(&s->metric_lock);
    sb_printf(&b, "# HELP mien_gallery_subjects Subjects in the gallery.\n"
                  "# TYPE mien_gallery_subjects gauge\nmien_gallery_subjects %d\n"
                  "# HELP mien_gallery_faces Faces enrolled in the gallery.\n"
                  "# TYPE mien_gallery_faces gauge\nmien_gallery_faces %d\n"
                  "# HELP mien_http_requests_in_flight Requests being handled.\n"
                  "# TYPE mien_http_requests_in_flight gauge\nmien_http_requests_in_flight %d\n",
              ns, nf, atomic_load(&s->inflight));
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
