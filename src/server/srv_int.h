/* Internals shared by the server's files: daemon.c (libmicrohttpd), server.c (requests, replies,
 * shared state, metrics) and the routes (routes.c, compreface.c, video.c, analysis.c). */
#ifndef MIEN_SERVER_SRV_INT_H
#define MIEN_SERVER_SRV_INT_H

#include "server/server.h"

/* Answer one complete request (routes.c). Must reply. */
void srv_dispatch(srv_req *r);

/* Set the metrics label of a request from its path alone (before the body is read). */
void srv_route_classify(srv_req *r);

/* The i-th route of the router's table (path template, e.g. "/v1/subjects/{name}"), and its
 * method in *method; NULL past the end. For tests and documentation checks. */
const char *srv_route_path(int i, const char **method);

/* The server a request belongs to. */
srv *srv_of(srv_req *r);

/* Prometheus text of the metrics (malloc'd, NUL-terminated), or NULL when out of memory. */
char *srv_metrics_text(srv *s);

/* The embedded files (assets.c): start and size. */
extern const char srv_asset_openapi[];
extern const char srv_asset_openapi_end[];
extern const char srv_asset_index[];
extern const char srv_asset_index_end[];

#endif
