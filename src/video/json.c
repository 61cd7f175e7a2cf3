/* The timeline as JSON (video.h): one definition of the lines for `mien video --json`,
 * `mien watch --json` and POST /v1/video. */
#include "video/video.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

/* Times to the millisecond, similarities and boxes to 1e-4 / 1e-2: shorter lines, nothing
 * a reader needs lost. */
static double r3(double v) { return isfinite(v) ? round(v * 1e3) / 1e3 : 0; }
static double r4(double v) { return isfinite(v) ? round(v * 1e4) / 1e4 : 0; }
static double r2(double v) { return isfinite(v) ? round(v * 1e2) / 1e2 : 0; }

const char *vid_event_name(mien_event_type t) {
    switch (t) {
    case MIEN_EVENT_APPEARED: return "appeared";
    case MIEN_EVENT_NAMED: return "named";
    case MIEN_EVENT_LEFT: return "left";
    }
    return "?";
}

cJSON *vid_event_json(const mien_track_event *ev) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "event");
    cJSON_AddStringToObject(o, "event", vid_event_name(ev->type));
    cJSON_AddNumberToObject(o, "id", ev->id);
    cJSON_AddStringToObject(o, "name", ev->name);
    cJSON_AddNumberToObject(o, "similarity", r4(ev->similarity));
    cJSON_AddNumberToObject(o, "t_s", r3(ev->t_s));
    cJSON_AddNumberToObject(o, "frame", (double)ev->frame);
    return o;
}

static cJSON *box_json(const float b[4]) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(r2(b[i])));
    return a;
}

cJSON *vid_track_json(const mien_track *t) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "track");
    cJSON_AddNumberToObject(o, "id", t->id);
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddNumberToObject(o, "similarity", r4(t->similarity));
    cJSON_AddStringToObject(o, "nearest", t->nearest);
    cJSON_AddNumberToObject(o, "start_s", r3(t->start_s));
    cJSON_AddNumberToObject(o, "end_s", r3(t->end_s));
    cJSON_AddNumberToObject(o, "start_frame", (double)t->start_frame);
    cJSON_AddNumberToObject(o, "end_frame", (double)t->end_frame);
    cJSON_AddNumberToObject(o, "frames", t->frames);
    cJSON_AddNumberToObject(o, "detections", t->detections);
    cJSON_AddNumberToObject(o, "faces", t->faces);
    cJSON_AddItemToObject(o, "box", box_json(t->best_box));
    cJSON_AddNumberToObject(o, "best_s", r3(t->best_s));
    cJSON_AddNumberToObject(o, "best_frame", (double)t->best_frame);
    cJSON_AddNumberToObject(o, "best_quality", r4(t->best_quality));
    if (t->named_s >= 0) cJSON_AddNumberToObject(o, "named_s", r3(t->named_s));
    else cJSON_AddNullToObject(o, "named_s");
    return o;
}

/* The event lines of one push or finish, and a track line for each track that left. */
static int add_events(mien_tracker *t, const mien_track_event *ev, int n, cJSON *lines,
                      mien_err *e) {
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(lines, vid_event_json(&ev[i]));
        if (ev[i].type != MIEN_EVENT_LEFT) continue;
        mien_track tr;
        if (mien_tracker_track(t, ev[i].id, &tr))
            return mien_err_set(e, MIEN_EINTERNAL, "%s", mien_tracker_errmsg(t));
        cJSON_AddItemToArray(lines, vid_track_json(&tr));
    }
    return MIEN_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

cJSON *vid_summary_json(int64_t frames, double wall_s, double video_s, int64_t dropped) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "summary");
    cJSON_AddNumberToObject(s, "frames", (double)frames);
    cJSON_AddNumberToObject(s, "seconds", r3(wall_s));
    cJSON_AddNumberToObject(s, "fps", wall_s > 0 ? round((double)frames / wall_s * 10) / 10 : 0);
    cJSON_AddNumberToObject(s, "video_s", r3(video_s));
    cJSON_AddNumberToObject(s, "dropped", (double)dropped);
    return s;
}

int vid_timeline(vid_reader *r, mien_tracker *t, cJSON **lines, mien_err *e) {
    const double t0 = now_s();
    *lines = cJSON_CreateArray();
    if (!*lines) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int64_t frames = 0;
    double last_t = 0;
    int rc;
    const mien_track_event *ev;
    int n;
    for (;;) {
        const mien_image *img;
        double ts;
        int64_t idx;
        rc = vid_reader_next(r, &img, &ts, &idx, e);
        if (rc == VID_END) break;
        if (rc) goto fail;
        if ((rc = mien_tracker_push(t, img, ts, &ev, &n))) {
            mien_err_set(e, rc, "%s", mien_tracker_errmsg(t));
            goto fail;
        }
        if ((rc = add_events(t, ev, n, *lines, e))) goto fail;
        frames++;
        last_t = ts;
    }
    if ((rc = mien_tracker_finish(t, &ev, &n))) {
        mien_err_set(e, rc, "%s", mien_tracker_errmsg(t));
        goto fail;
    }
    if ((rc = add_events(t, ev, n, *lines, e))) goto fail;
    cJSON_AddItemToArray(*lines, vid_summary_json(frames, now_s() - t0, frames ? last_t : 0, 0));
    return MIEN_OK;
fail:
    cJSON_Delete(*lines);
    *lines = NULL;
    return rc;
}
