/* The server's and a request's state, shared by server.c (the request side) and daemon.c
 * (the libmicrohttpd daemon, opening and closing). The routes see only srv_int.h. */
#ifndef MIEN_SERVER_SRV_STATE_H
#define MIEN_SERVER_SRV_STATE_H

#include "server/srv_int.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ==== Metrics ==== */

#define SRV_ROUTE_MAX 96
#define N_BOUNDS 11          /* latency histogram buckets (server.c: hist_bounds), and +Inf */

typedef struct metric_count {
    char route[SRV_ROUTE_MAX];
    char method[8];
    int status;
    uint64_t n;
} metric_count;

typedef struct metric_hist {
    char route[SRV_ROUTE_MAX];
    uint64_t buckets[N_BOUNDS + 1]; /* (N_BOUNDS + 1,) counts per bucket, last = +Inf */
    uint64_t n;
    double sum;                     /* seconds */
} metric_hist;

/* ==== The server ==== */

#define MAX_RESP_HEADERS 8

/* An open collection. */
typedef struct srv_coll {
    char name[SRV_COLLECTION_MAX];
    mien_gallery *g;
    int owned;                 /* opened here (closed by srv_close), else the caller's */
} srv_coll;

struct srv {
    struct MHD_Daemon *daemon;
    mien_models *models;
    mien_gallery *gallery;     /* the caller's: the default collection */
    srv_keys *keys;
    /* Collections: those open, and the handles of dropped ones (kept, empty, until close,
     * since a request may still hold one). Under coll_lock. */
    char gallery_path[4096];
    int have_path;
    mien_gallery_options gopt;
    pthread_mutex_t coll_lock;
    srv_coll *colls;
    int n_colls, cap_colls;
    mien_gallery **dropped;
    int n_dropped;
    srv_config cfg;
    mien_detect_options det;
    float threshold;
    int port;
    char msg[512];

    /* Session pool: one per worker; free[] holds the indices of idle ones. */
    mien_session **sessions;   /* (workers,) */
    int *free_ids;             /* (workers,) stack */
    int n_free;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;

    atomic_int inflight;       /* requests between their first call and completion */
    int stopped;

    pthread_mutex_t metric_lock;
    metric_count *counts;
    int n_counts, cap_counts;
    metric_hist *hists;
    int n_hists, cap_hists;
};

struct srv_req {
    srv *s;
    struct MHD_Connection *conn;
    const char *method, *url;
    double t0;

    unsigned char *body;       /* (len + 1,) raw body, NUL-terminated */
    size_t len, cap;
    int too_big;               /* the body passed max_body: 413 */

    srv_part *parts;           /* (n_parts,) */
    int n_parts, cap_parts;
    int parts_bad;             /* the post processor refused the body */

    cJSON *json;
    char **strings;            /* (n_strings,) decoded query values, freed at the end */
    int n_strings;

    char *path_key;            /* srv_req_set_api_key's, or NULL */
    srv_grant grant;           /* the key's, once grant_done */
    int grant_done;
    mien_gallery *gallery;     /* the request's collection, or NULL for the default */

    int session_id;            /* index in the pool, or -1 */
    char route[SRV_ROUTE_MAX];
    int replied, status;
    enum MHD_Result queued;

    char *hdr_name[MAX_RESP_HEADERS], *hdr_val[MAX_RESP_HEADERS];
    int n_hdr;
};

/* Seconds on the monotonic clock. */
double srv_now_s(void);
/* Count a finished request (route, method, status) and its latency. */
void srv_metrics_record(srv *s, const srv_req *r);
/* 1 if the request body is multipart/form-data (by its Content-Type). */
int srv_req_is_form(srv_req *r);
/* Give the request's session back to the pool (if it took one). */
void srv_session_release(srv_req *r);

#endif
