/* mien serve, the daemon: libmicrohttpd's callbacks (a pool of worker threads), request
 * bodies with their size limit, multipart parsing, handing each complete request to the router
 * (routes.c), opening, the graceful stop and closing. The request side (reading, replying,
 * shared state, metrics) is in server.c. */
#include "server/srv_int.h"
#include "server/srv_state.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int fail(srv *s, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    return status;
}

void srv_config_default(srv_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8080;
    c->workers = 2;
    c->max_body = SRV_DEFAULT_MAX_BODY;
    c->timeout_s = 30;
    c->threshold = -3;
}

/* ==== The daemon's callbacks ==== */

/* Keep the path and the query values as sent: a subject name may contain an escaped '/', so
 * the router splits the path first and decodes each segment after. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s) { return strlen(s); }

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
    srv_req *r = cls;
    srv_part *last = r->n_parts ? &r->parts[r->n_parts - 1] : NULL;
    /* Later pieces of the same field come with off > 0. */
    int more = last && off > 0 && off == last->len && !strcmp(last->name, key ? key : "");
    if (!more) {
        if (r->n_parts == r->cap_parts) {
            if (r->cap_parts > 1000) return MHD_NO; /* a form of thousands of fields: refuse */
            int cap = r->cap_parts ? 2 * r->cap_parts : 4;
            srv_part *v = realloc(r->parts, (size_t)cap * sizeof *v);
            if (!v) return MHD_NO;
            r->parts = v;
            r->cap_parts = cap;
        }
        last = &r->parts[r->n_parts++];
        memset(last, 0, sizeof *last);
        last->name = strdup(key ? key : "");
        last->filename = filename ? strdup(filename) : NULL;
        last->content_type = content_type ? strdup(content_type) : NULL;
        last->data = calloc(1, 1);
        if (!last->name || !last->data || (filename && !last->filename) ||
            (content_type && !last->content_type))
            return MHD_NO;
    }
    if (size == 0) return MHD_YES;
    /* The parts together never exceed the body, which is bounded by max_body; still, check
     * the sum. */
    if (size > SIZE_MAX - 1 - last->len) return MHD_NO;
    unsigned char *d = realloc((void *)last->data, last->len + size + 1);
    if (!d) return MHD_NO;
    memcpy(d + last->len, data, size);
    last->len += size;
    d[last->len] = '\0';
    last->data = d;
    return MHD_YES;
}

static void parse_parts(srv_req *r) {
    struct MHD_PostProcessor *pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part, r);
    if (!pp) {
        r->parts_bad = 1;
        return;
    }
    if (MHD_post_process(pp, (const char *)r->body, r->len) != MHD_YES) r->parts_bad = 1;
    if (MHD_destroy_post_processor(pp) != MHD_YES) r->parts_bad = 1;
}

static void req_free(srv_req *r) {
    for (int i = 0; i < r->n_parts; i++) {
        free((void *)r->parts[i].name);
        free((void *)r->parts[i].filename);
        free((void *)r->parts[i].content_type);
        free((void *)r->parts[i].data);
    }
    free(r->parts);
    for (int i = 0; i < r->n_strings; i++) free(r->strings[i]);
    free(r->strings);
    for (int i = 0; i < r->n_hdr; i++) {
        free(r->hdr_name[i]);
        free(r->hdr_val[i]);
    }
    cJSON_Delete(r->json);
    free(r->body);
    free(r->path_key);
    free(r);
}

/* Strict decimal Content-Length; -1 when malformed. */
static int parse_length(const char *s, unsigned long long *out) {
    unsigned long long v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        if (v > (ULLONG_MAX - 9) / 10) return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    *out = v;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    srv *s = cls;
    srv_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->s = s;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->t0 = srv_now_s();
        r->session_id = -1;
        snprintf(r->route, sizeof r->route, "other");
        *con_cls = r;
        atomic_fetch_add(&s->inflight, 1);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long n = 0;
        if (cl && parse_length(cl, &n) == 0 && n > s->cfg.max_body) {
            srv_route_classify(r);
            /* Refuse before reading the body: MHD then discards it and closes. */
            r->too_big = 1;
            srv_reply_error(r, 413, "request body of %llu bytes is over the limit of %zu bytes",
                            n, s->cfg.max_body);
            return r->queued;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->replied || r->too_big) return MHD_YES;
        if (n > s->cfg.max_body || r->len > s->cfg.max_body - n) {
            /* Chunked uploads have no Content-Length: stop keeping the bytes. */
            r->too_big = 1;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
            return MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 16384;
            while (cap < r->len + n + 1) cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
            unsigned char *b = realloc(r->body, cap);
            if (!b) {
                srv_reply_error(r, 503, "out of memory reading the body");
                return r->queued;
            }
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload_data, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (r->replied) return r->queued;
    if (r->too_big) {
        srv_reply_error(r, 413, "request body is over the limit of %zu bytes", s->cfg.max_body);
        return r->queued;
    }
    if (r->len > 0 && srv_req_is_form(r)) {
        parse_parts(r);
        if (r->parts_bad) {
            srv_reply_error(r, 400, "malformed multipart/form-data body (or no boundary)");
            return r->queued;
        }
    }
    srv_dispatch(r);
    if (!r->replied) srv_reply_error(r, 500, "internal error: no reply");
    /* The session is no longer needed once the reply is queued. */
    srv_session_release(r);
    return r->queued;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    srv *s = cls;
    srv_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->replied) srv_metrics_record(s, r);
    srv_session_release(r);
    req_free(r);
    atomic_fetch_sub(&s->inflight, 1);
}

/* ==== Opening and closing ==== */

int srv_open(mien_models *m, mien_gallery *g, srv_keys *k, const srv_config *c, srv **out) {
    *out = NULL;
    srv *s = calloc(1, sizeof *s);
    if (!s) return MIEN_ENOMEM;
    *out = s;
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->metric_lock, NULL);
    pthread_mutex_init(&s->coll_lock, NULL);
    atomic_init(&s->inflight, 0);
    s->models = m;
    s->gallery = g;
    s->keys = k;
    if (c) s->cfg = *c;
    else srv_config_default(&s->cfg);
    if (!m || !g || !k) return fail(s, MIEN_EINVAL, "models, gallery and keys are needed");
    if (s->cfg.store_images < SRV_IMAGES_CROP || s->cfg.store_images > SRV_IMAGES_NONE)
        return fail(s, MIEN_EINVAL, "store_images must be crop, photo or none");
    if (s->cfg.gallery_path) {
        if (strlen(s->cfg.gallery_path) >= sizeof s->gallery_path)
            return fail(s, MIEN_EINVAL, "gallery path too long");
        snprintf(s->gallery_path, sizeof s->gallery_path, "%s", s->cfg.gallery_path);
        s->have_path = 1;
        if (s->cfg.gallery_options) s->gopt = *s->cfg.gallery_options;
        else mien_gallery_options_default(&s->gopt);
    }
    s->cfg.gallery_path = NULL;
    s->cfg.gallery_options = NULL;
    /* The caller's handle serves its own collection. */
    s->colls = calloc(8, sizeof *s->colls);
    if (!s->colls) return fail(s, MIEN_ENOMEM, "out of memory");
    s->cap_colls = 8;
    snprintf(s->colls[0].name, sizeof s->colls[0].name, "%s", mien_gallery_collection(g));
    s->colls[0].g = g;
    s->n_colls = 1;
    if (s->cfg.workers < 1 || s->cfg.workers > 256) return fail(s, MIEN_EINVAL, "workers must be 1 to 256");
    if (s->cfg.port < 0 || s->cfg.port > 65535) return fail(s, MIEN_EINVAL, "port must be 0 to 65535");
    if (s->cfg.max_body == 0) s->cfg.max_body = SRV_DEFAULT_MAX_BODY;
    if (s->cfg.timeout_s <= 0) s->cfg.timeout_s = 30;
    if (s->cfg.det) s->det = *s->cfg.det;
    else mien_detect_options_default(&s->det);
    s->cfg.det = &s->det;
    s->threshold = s->cfg.threshold > -2 ? s->cfg.threshold : mien_models_threshold(m);

    int nw = s->cfg.workers;
    s->sessions = calloc((size_t)nw, sizeof *s->sessions);
    s->free_ids = calloc((size_t)nw, sizeof *s->free_ids);
    if (!s->sessions || !s->free_ids) return fail(s, MIEN_ENOMEM, "out of memory");
    for (int i = 0; i < nw; i++) {
        int rc = mien_session_open(m, &s->sessions[i]);
        if (rc) return fail(s, rc, "cannot open a session: %s", mien_errmsg(s->sessions[i]));
        s->free_ids[s->n_free++] = i;
    }

    /* Resolve the address to bind. */
    const char *host = s->cfg.host && *s->cfg.host ? s->cfg.host : "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) return fail(s, MIEN_EINVAL, "cannot resolve host %s: %s", host, gai_strerror(gai));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)nw,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(64 * nw > 1024 ? 1024 : 64 * nw),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon)
        return fail(s, MIEN_EIO, "cannot listen on %s port %d (address in use, or not allowed)",
                    host, s->cfg.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->cfg.port;
    return MIEN_OK;
}

int srv_port(const srv *s) { return s->port; }
const char *srv_errmsg(const srv *s) { return s ? s->msg : "out of memory"; }

void srv_shutdown(srv *s, double grace_s) {
    if (!s || !s->daemon || s->stopped) return;
    s->stopped = 1;
    /* Stop accepting; connections already open keep being served until their requests
     * finish (or the grace period ends). */
    MHD_socket ls = MHD_quiesce_daemon(s->daemon);
    /* The socket may be closed only after MHD_stop_daemon, but new clients should be refused
     * now rather than wait in the backlog: on Linux, shutdown() of a listening socket stops
     * it listening while the descriptor stays valid. */
    if (ls != MHD_INVALID_SOCKET) shutdown(ls, SHUT_RDWR);
    double end = srv_now_s() + grace_s;
    while (atomic_load(&s->inflight) > 0 && srv_now_s() < end) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (ls != MHD_INVALID_SOCKET) close(ls);
}

void srv_close(srv *s) {
    if (!s) return;
    srv_shutdown(s, 30);
    for (int i = 0; s->sessions && i < s->cfg.workers; i++) mien_session_close(s->sessions[i]);
    free(s->sessions);
    free(s->free_ids);
    free(s->counts);
    free(s->hists);
    for (int i = 0; i < s->n_colls; i++)
        if (s->colls[i].owned) mien_gallery_close(s->colls[i].g);
    for (int i = 0; i < s->n_dropped; i++) mien_gallery_close(s->dropped[i]);
    free(s->colls);
    free(s->dropped);
    pthread_mutex_destroy(&s->coll_lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->metric_lock);
    free(s);
}
