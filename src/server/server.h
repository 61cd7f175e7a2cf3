/* mien serve: the HTTP service (libmicrohttpd) — the server handle and the request/response
 * interface every route handler uses.
 *
 * Routing: the router (router.c) owns /v1/..., /healthz, /metrics, / and /v1/openapi.json.
 * Every request whose path starts with "/api/v1/" is first offered to
 *
 *     int compreface_route(srv_req *r);
 *
 * which returns 1 when it handled the request (it must then have replied with srv_reply_*),
 * 0 to let the router answer 404. The router holds a weak default that returns 0, so the
 * program links whether src/server/compreface.c exists or not.
 *
 * Threads: a handler runs on one of the server's worker threads (an MHD thread pool of
 * --workers threads) and may block (models run synchronously). Everything reached through a
 * srv_req is valid until the handler returns. The models are immutable and shared; the
 * session of srv_session() is this request's alone (taken from a pool of one session per
 * worker, given back when the request ends); the gallery handles are thread-safe.
 *
 * Collections: the gallery holds named face collections. The server opens one handle per
 * collection on first use (the caller's handle serves its own collection, the default) and
 * keeps them until it closes. A request works on one collection: its key's, for a
 * recognition key, else the one named by ?collection=, else the default (srv_gallery).
 *
 * Errors: a handler answers every failure itself with srv_reply_error (a JSON body
 * {"error": "..."}, or CompreFace's {"message": "...", "code": N} under /api/v1/) and a
 * 4xx/5xx status; srv_reply_status maps a mien status to the HTTP one. The library never
 * prints. */
#ifndef MIEN_SERVER_H
#define MIEN_SERVER_H

#include "mien.h"
#include "server/keys.h"

#include <cJSON.h>
#include <stddef.h>

typedef struct srv srv;          /* a running server */
typedef struct srv_req srv_req;  /* one request being handled */

/* ==== The server ==== */

typedef struct srv_config {
    const char *host;         /* address to bind, default "127.0.0.1" ("0.0.0.0": all) */
    int port;                 /* TCP port; 0 lets the system choose (see srv_port) */
    int workers;              /* worker threads = sessions; default 2 */
    size_t max_body;          /* request body limit in bytes (413 above); default 20 MB */
    int timeout_s;            /* idle connection timeout in seconds; default 30 */
    float threshold;          /* cosine threshold of identify/verify; <= -2: the models' */
    const mien_detect_options *det; /* detection options, or NULL for the defaults */
    /* Where the other collections of the gallery are opened, and with which options (their
     * collection field is replaced); NULL: the caller's handle only. */
    const char *gallery_path;
    const mien_gallery_options *gallery_options;
    /* What an enrollment keeps besides the embedding, for GET .../faces/{id}/img:
     * SRV_IMAGES_CROP (default; the aligned face as a JPEG), SRV_IMAGES_PHOTO (the photo as
     * sent), SRV_IMAGES_NONE. */
    int store_images;
} srv_config;

enum { SRV_IMAGES_CROP = 0, SRV_IMAGES_PHOTO = 1, SRV_IMAGES_NONE = 2 };

#define SRV_DEFAULT_MAX_BODY ((size_t)20 << 20)

void srv_config_default(srv_config *c);

/* Start serving: binds, opens one session per worker, starts the threads. models, gallery
 * and keys stay owned by the caller and must outlive the server. On failure *out may hold a
 * handle whose srv_errmsg() says why; close it. */
int srv_open(mien_models *m, mien_gallery *g, srv_keys *k, const srv_config *c, srv **out);
/* The port actually bound (useful with port 0). */
int srv_port(const srv *s);
const char *srv_errmsg(const srv *s);
/* Graceful stop: stop accepting connections, wait up to grace_s seconds for the requests in
 * flight to finish, then stop the threads. srv_close does this (with 30 s) when not done. */
void srv_shutdown(srv *s, double grace_s);
void srv_close(srv *s);

/* ==== Reading a request ==== */

const char *srv_req_method(const srv_req *r);   /* "GET", "POST", ... */
/* The path as sent, without the query string, not URL-decoded ("/v1/subjects/Ana%20B"). */
const char *srv_req_path(const srv_req *r);
/* Query parameter, URL-decoded ('+' and %XX), or NULL when absent. */
const char *srv_req_query(srv_req *r, const char *key);
/* Decode %XX escapes of in[0..n) into out (NUL-terminated). Returns the length, or -1 when
 * it does not fit in size, has a bad escape or decodes to a NUL byte. */
int srv_url_decode(const char *in, size_t n, char *out, size_t size);
/* Request header, case-insensitive name, or NULL. */
const char *srv_req_header(srv_req *r, const char *name);
/* The raw body (NUL-terminated one byte past *len; never NULL; *len 0 when none). */
const unsigned char *srv_req_body(const srv_req *r, size_t *len);

/* multipart/form-data bodies are parsed into parts (MHD's post processor), in the order they
 * came. Other bodies (application/x-www-form-urlencoded included) are not: read the raw body. */
typedef struct srv_part {
    const char *name;          /* form field name ("" when missing) */
    const char *filename;      /* file name of a file field, or NULL */
    const char *content_type;  /* its Content-Type, or NULL */
    const unsigned char *data; /* (len) bytes, NUL-terminated one byte past len */
    size_t len;
} srv_part;

int srv_req_n_parts(const srv_req *r);
const srv_part *srv_req_part(const srv_req *r, int i);            /* 0 <= i < n_parts */
const srv_part *srv_req_find_part(const srv_req *r, const char *name); /* first, or NULL */

/* The n-th image of the request (n = 0 or 1): with a multipart body, the part named
 * names[n] when present, else the n-th file part (filename set) or part named "image",
 * "file"; with a raw body (Content-Type image/... or application/octet-stream or none), the
 * body itself for n == 0 (application/x-www-form-urlencoded counts as raw: curl --data-binary
 * sends that type by default). Returns 0 and sets data/len, or replies with a 4xx error itself
 * (415 for another Content-Type, 400 when missing) and returns -1. names may be NULL. */
int srv_req_image(srv_req *r, int n, const char *const *names, const unsigned char **data,
                  size_t *len);

/* The body parsed as JSON (Content-Type application/json or any, when it parses); NULL and a
 * 400 reply already sent when it does not parse. Owned by the request. */
cJSON *srv_req_json(srv_req *r);

/* The API key the client sent: header X-API-Key (any case), else Authorization: Bearer KEY.
 * NULL when none. */
const char *srv_req_api_key(srv_req *r);
/* Take key as the request's API key instead of its headers (CompreFace's static image links
 * carry the key in the path). Copied; before any srv_req_grant. */
void srv_req_set_api_key(srv_req *r, const char *key);
/* The role of the key sent (SRV_ROLE_NONE when none or unknown). */
srv_role srv_req_role(srv_req *r);
/* Everything the key sent grants (looked up once per request). */
const srv_grant *srv_req_grant(srv_req *r);
/* May this request's key act as `need` on a route of `service` (SRV_SERVICE_ANY: a route
 * for mien keys only, e.g. managing keys and collections)? 0 when it may, else the HTTP
 * status to answer (401: no key or unknown; 403: a read key where admin is needed, or a key
 * of another service) with the reason in why. Replies nothing. */
int srv_req_allow(srv_req *r, srv_role need, srv_service service, char *why, size_t size);
/* Choose the request's collection (see the top): 0, or the HTTP status to answer with the
 * reason in why: 400 a bad name, 403 another collection than the key's, 404 no such
 * collection (a recognition key's own is created on first use; with create, any). Replies
 * nothing. srv_gallery() then returns its handle. */
int srv_req_use_collection(srv_req *r, int create, char *why, size_t size);
/* Check that the request carries a key of at least role `need` whose service may use this
 * /v1 route, and choose its collection: returns 1, or replies 401, 403 or 404 and returns 0. */
int srv_req_require(srv_req *r, srv_role need);
/* The service a /v1 route belongs to: detection (/v1/detect, /v1/embed), verification
 * (/v1/verify), SRV_SERVICE_ANY for managing keys and collections (listing collections is
 * recognition's too), else recognition. */
srv_service srv_path_service(const char *method, const char *path);

/* Label of the route for /metrics (a template such as "/api/v1/recognition/recognize", never
 * the raw path, so that the label set stays bounded). Default: the router's own label, or
 * "other". Copied; at most 95 bytes kept. */
void srv_req_set_route(srv_req *r, const char *label);

/* ==== Replying (exactly once per request) ==== */

/* Send body (serialised unformatted, Content-Type application/json) with the status; takes
 * ownership of body (it is freed). Returns 0, or -1 when the reply could not be queued. */
int srv_reply_json(srv_req *r, int status, cJSON *body);
/* {"error": message} with the status. */
int srv_reply_error(srv_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Any bytes with a Content-Type (copied). */
int srv_reply_bytes(srv_req *r, int status, const char *content_type, const void *data,
                    size_t len);
/* Add a response header to the reply sent next (copied; up to 8 per request). */
void srv_reply_header(srv_req *r, const char *name, const char *value);
/* The HTTP status for a mien status: EINVAL 400, EFORMAT 400, EUNSUPPORTED 415, ETOOBIG 413,
 * ENOFACE 422, ENOTFOUND 404, EMISMATCH 409, ENOMEM 503, others 500. */
int srv_http_status(int mien_status);

/* ==== Shared state ==== */

mien_models *srv_models(srv_req *r);
/* The server a request belongs to. */
srv *srv_of(srv_req *r);
/* This request's session (taken from the pool on first call, returned when the request
 * ends). Never NULL. */
mien_session *srv_session(srv_req *r);
/* The gallery handle of the request's collection (srv_req_use_collection), else the default. */
mien_gallery *srv_gallery(srv_req *r);
/* The handle of collection name: opened on first use (create: made in the gallery when it is
 * missing), NULL with a mien status in *status and the reason in why when it cannot be. */
mien_gallery *srv_collection(srv *s, const char *name, int create, int *status, char *why,
                             size_t size);
/* Delete collection name with everything in it (not the default one: MIEN_EINVAL). */
int srv_collection_drop(srv *s, const char *name, char *why, size_t size);
/* The default collection's name. */
const char *srv_default_collection(srv *s);
/* What enrollments keep (SRV_IMAGES_*). */
int srv_store_images(srv_req *r);
/* After face face_id was enrolled from photo p (data: its bytes) at face f: keep what the
 * server is set to keep (the aligned crop as a JPEG, or the photo as sent). 0, or a mien
 * status with the reason in why. */
int srv_keep_face_image(srv_req *r, mien_gallery *g, int64_t face_id, mien_photo *p,
                        const mien_face *f, const void *data, size_t len, char *why, size_t size);
/* The id of the face of subject enrolled from the photo of sha256 sha (0 when none). */
int64_t srv_face_id_of(mien_gallery *g, const char *subject, const char *sha);
/* The identify/verify threshold: the --threshold of the server or the models' default. */
float srv_threshold(srv_req *r);
const mien_detect_options *srv_detect_options(srv_req *r);
srv_keys *srv_keys_of(srv_req *r);

/* ==== JSON of faces (the CLI's keys: box [x,y,w,h], score, landmarks, points) ==== */

cJSON *srv_face_json(const mien_face *f);

/* ==== Extension hook ==== */

/* Routes under /api/v1/ (src/server/compreface.c). Returns 1 when it replied. */
int compreface_route(srv_req *r);

#endif
