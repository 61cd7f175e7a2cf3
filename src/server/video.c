/* POST /v1/video: an uploaded video in, its timeline out (the lines of mien video --json,
 * grouped): faces tracked and named with the request's session and the server's gallery. */
#include "server/srv_int.h"
#include "video/video.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The Content-Type's media type, lower case, without parameters. */
static void media_type(srv_req *r, char *buf, size_t size) {
    const char *ct = srv_req_header(r, "Content-Type");
    size_t n = 0;
    for (; ct && ct[n] && ct[n] != ';' && n + 1 < size; n++) buf[n] = (char)tolower((unsigned char)ct[n]);
    while (n && buf[n - 1] == ' ') n--;
    buf[n] = '\0';
}

/* The video of the request: the form field "video" (else the first file field, else "file"),
 * or the raw body. Replies and returns -1 when there is none. */
static int video_body(srv_req *r, const unsigned char **data, size_t *len) {
    char mt[128];
    media_type(r, mt, sizeof mt);
    if (!strcmp(mt, "multipart/form-data")) {
        const srv_part *p = srv_req_find_part(r, "video");
        for (int i = 0; !p && i < srv_req_n_parts(r); i++)
            if (srv_req_part(r, i)->filename) p = srv_req_part(r, i);
        if (!p) p = srv_req_find_part(r, "file");
        if (!p || !p->len) {
            srv_reply_error(r, 400, "the form has no video (send a file field named video)");
            return -1;
        }
        *data = p->data;
        *len = p->len;
        return 0;
    }
    if (mt[0] && strncmp(mt, "video/", 6) && strcmp(mt, "application/octet-stream") &&
        strcmp(mt, "application/x-www-form-urlencoded")) {
        srv_reply_error(r, 415, "Content-Type %s: send the video as the raw body (video/mp4, "
                                "video/..., application/octet-stream) or as multipart/form-data", mt);
        return -1;
    }
    *data = srv_req_body(r, len);
    if (!*len) {
        srv_reply_error(r, 400, "empty body: send a video file");
        return -1;
    }
    return 0;
}

void srv_video(srv_req *r) {
    mien_tracker_options o;
    mien_tracker_options_default(&o);
    o.threshold = srv_threshold(r);
    const char *q = srv_req_query(r, "detect_every");
    if (q) {
        char *end;
        long v = strtol(q, &end, 10);
        if (end == q || *end || v < 1 || v > 1000) {
            srv_reply_error(r, 400, "detect_every must be an integer from 1 to 1000");
            return;
        }
        o.detect_every = (int)v;
    }
    if ((q = srv_req_query(r, "threshold"))) {
        char *end;
        float v = strtof(q, &end);
        if (end == q || *end || !isfinite(v) || v < -1 || v > 1 || v == 0) {
            srv_reply_error(r, 400, "threshold must be a non-zero number in [-1, 1]");
            return;
        }
        o.threshold = v;
    }
    const unsigned char *data;
    size_t len;
    if (video_body(r, &data, &len)) return;
    mien_err e = {0};
    vid_reader *rd = NULL;
    mien_tracker *t = NULL;
    cJSON *lines = NULL;
    int rc = vid_reader_open_mem(data, len, NULL, &rd, &e);
    if (rc) {
        srv_reply_error(r, rc == MIEN_EIO ? 400 : srv_http_status(rc), "%s", e.msg);
        return;
    }
    if ((rc = mien_tracker_open(srv_session(r), srv_gallery(r), &o, &t))) {
        srv_reply_error(r, srv_http_status(rc), "%s", mien_tracker_errmsg(t));
        goto done;
    }
    if ((rc = vid_timeline(rd, t, &lines, &e))) {
        srv_reply_error(r, rc == MIEN_EIO ? 400 : srv_http_status(rc), "%s", e.msg);
        goto done;
    }
    cJSON *out = cJSON_CreateObject(), *events = cJSON_AddArrayToObject(out, "events"),
          *tracks = cJSON_AddArrayToObject(out, "tracks");
    cJSON *line;
    while ((line = cJSON_DetachItemFromArray(lines, 0))) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(line, "type"));
        if (type && !strcmp(type, "event")) cJSON_AddItemToArray(events, line);
        else if (type && !strcmp(type, "track")) cJSON_AddItemToArray(tracks, line);
        else cJSON_AddItemToObject(out, "summary", line);
    }
    srv_reply_json(r, 200, out);
done:
    cJSON_Delete(lines);
    mien_tracker_close(t);
    vid_reader_close(rd);
}
