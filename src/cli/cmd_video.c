/* mien video (a file or stream to its end: timeline, annotated video, best faces) and mien
 * watch (a live stream until stopped: events as they happen, webhook, reconnection). Both run
 * the same loop: a decoding thread (vid_source) feeds the tracker of mien.h frame by frame. */
#include "cli/cli.h"
#include "image/image.h"
#include "video/video.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ==== Options ==== */

typedef struct video_opts {
    const char *gallery;     /* --gallery */
    const char *out;         /* --out annotated video */
    const char *faces;       /* --faces DIR */
    const char *mot;         /* --mot FILE: boxes of every frame, MOTChallenge format */
    const char *webhook;     /* --webhook URL (watch) */
    const char *format;      /* --format F */
    int realtime;            /* --realtime */
    int watch;               /* 1 for mien watch */
    int retries;             /* --retries N (watch): failed connections in a row; -1 forever */
    double timeout_s;        /* --timeout S */
    mien_tracker_options t;  /* --detect-every, --threshold, --min-hits, --max-lost, --no-cuts */
} video_opts;

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

static int video_extra(void *ctx, const char *opt, const char *val) {
    video_opts *o = ctx;
    double v;
    const char **str = !strcmp(opt, "--gallery") ? &o->gallery
                     : !strcmp(opt, "--out") && !o->watch ? &o->out
                     : !strcmp(opt, "--faces") ? &o->faces
                     : !strcmp(opt, "--mot") && !o->watch ? &o->mot
                     : !strcmp(opt, "--webhook") && o->watch ? &o->webhook
                     : !strcmp(opt, "--format") ? &o->format : NULL;
    if (str) {
        if (!val) return -2;
        *str = val;
        return 1;
    }
    if (!strcmp(opt, "--realtime") && !o->watch) return o->realtime = 1, 0;
    if (!strcmp(opt, "--no-cuts")) return o->t.cut_threshold = 0, 0;
    if (!strcmp(opt, "--detect-every") || !strcmp(opt, "--threshold") || !strcmp(opt, "--timeout") ||
        !strcmp(opt, "--min-hits") || !strcmp(opt, "--max-lost") ||
        (!strcmp(opt, "--retries") && o->watch)) {
        if (!val) return -2;
        if (!strcmp(opt, "--detect-every")) {
            if (!parse_num(val, 1, 1000, &v) || v != floor(v)) return -3;
            o->t.detect_every = (int)v;
        } else if (!strcmp(opt, "--threshold")) {
            if (!parse_num(val, -1, 1, &v) || v == 0) return -3;
            o->t.threshold = (float)v;
        } else if (!strcmp(opt, "--timeout")) {
            if (!parse_num(val, 0.1, 86400, &v)) return -3;
            o->timeout_s = v;
        } else if (!strcmp(opt, "--min-hits")) {
            if (!parse_num(val, 1, 100, &v) || v != floor(v)) return -3;
            o->t.min_hits = (int)v;
        } else if (!strcmp(opt, "--max-lost")) {
            if (!parse_num(val, 0, 3600, &v)) return -3;
            o->t.max_lost_s = (float)v;
        } else {
            if (!parse_num(val, -1, 1e9, &v) || v != floor(v)) return -3;
            o->retries = (int)v;
        }
        return 1;
    }
    return -1;
}

static const char video_usage[] =
    "usage: mien video INPUT [--gallery G] [--json] [--out OUT.mp4] [--faces DIR]\n"
    "                  [--detect-every N] [--realtime] [--threshold T]\n"
    "\n"
    "Follow every face of a video and name each one once. INPUT is a file (MP4, MKV, AVI,\n"
    "WebM, ...), a stream FFmpeg opens (rtsp://, http://, udp://...) or a camera\n"
    "(/dev/video0). Faces are tracked from frame to frame (Kalman filter, IoU and embedding\n"
    "association, high- and low-score passes); a track is named from its best faces against\n"
    "the gallery (votes over the track), or 'unknown'. Prints the timeline: when each track\n"
    "appeared, was named and left, and a summary per track.\n"
    "\n"
    "  --gallery PATH    the gallery of known people (default: the default gallery when it\n"
    "                    exists; without one every track is unknown)\n"
    "  --json            JSON Lines: {\"type\":\"event\",\"event\":\"appeared\"|\"named\"|\"left\",\n"
    "                    \"id\",\"name\",\"similarity\",\"t_s\",\"frame\"}; when a track leaves,\n"
    "                    {\"type\":\"track\",\"id\",\"name\",\"similarity\",\"start_s\",\"end_s\",\n"
    "                    \"start_frame\",\"end_frame\",\"frames\",\"box\" (of its best face),...};\n"
    "                    last {\"type\":\"summary\",\"frames\",\"seconds\",\"fps\",\"video_s\",\"dropped\"}\n"
    "  --out FILE        write the video with boxes, track ids and names (container from the\n"
    "                    name: .mp4, .mkv, .avi, .webm; H.264 where it fits)\n"
    "  --faces DIR       write the best face of each track as DIR/track-ID-NAME.jpg\n"
    "  --mot FILE        write every frame's boxes in the MOTChallenge format (frame from 1,\n"
    "                    track id, x, y, w, h, score, -1, -1, -1), for tracking metrics\n"
    "  --detect-every N  run the detector on every N-th frame only (default 1); the motion\n"
    "                    model carries the boxes in between\n"
    "  --realtime        play the input at its own speed and drop frames when behind (as with\n"
    "                    a camera; live streams always drop)\n"
    "  --threshold T     cosine similarity for a name (default: the embedder's)\n"
    "  --min-hits N      detections in a row before a track is born (default 3)\n"
    "  --max-lost S      seconds without a detection before a track leaves (default 1)\n"
    "  --no-cuts         do not end the tracks at shot cuts\n"
    "  --timeout S       give up on an input that does not answer for S seconds (default 10)\n"
    "  --format F        force FFmpeg's input format (v4l2, mpegts, ...)\n"
    "  --threads N       with 2 or more, that many frames are detected at once, ahead of the\n"
    "                    tracker (default: the idle cores)\n"
    "  --quiet           no progress line\n"
    "  (and the model options of mien detect)\n";

static const char watch_usage[] =
    "usage: mien watch STREAM [--gallery G] [--json] [--webhook URL] [--faces DIR]\n"
    "                  [--detect-every N] [--retries N] [--timeout S]\n"
    "\n"
    "Watch a live stream (rtsp://, http://, udp://..., /dev/video0) until stopped (Ctrl-C,\n"
    "SIGTERM) and print each event as it happens: a face appeared, was named, left. Frames\n"
    "are dropped when the machine is behind, so events stay live. A stream that drops is\n"
    "opened again, waiting 0.5 s, 1 s, 2 s... up to 30 s between tries.\n"
    "\n"
    "  --gallery PATH    the gallery of known people (as mien video)\n"
    "  --json            the JSON Lines of mien video, each event line with \"wall\" (Unix time)\n"
    "  --webhook URL     also POST each line (Content-Type: application/json) to URL\n"
    "  --faces DIR       write the best face of each track as DIR/track-ID-NAME.jpg\n"
    "  --retries N       give up after N failed connections in a row (default: never); the\n"
    "                    end of a file ends the watch\n"
    "  --timeout S       a stream silent for S seconds has dropped (default 10)\n"
    "  --detect-every N, --threshold T, --min-hits N, --max-lost S, --no-cuts, --format F,\n"
    "  --threads N, --quiet, and the model options of mien detect, as mien video\n";

/* ==== Stopping on a signal ==== */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Sleep up to s seconds, less when a signal asks to stop. */
static void nap(double s) {
    double end = cli_now() + s;
    while (!stop_flag && cli_now() < end) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ==== Webhook: a thread POSTs the lines, so that a slow receiver never stalls tracking ==== */

#define HOOK_QUEUE 1024

typedef struct hook {
    const char *url;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *q[HOOK_QUEUE];
    int head, len, stop;
    long dropped, failed;
} hook;

static void *hook_main(void *arg) {
    hook *h = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    for (;;) {
        pthread_mutex_lock(&h->mu);
        while (!h->len && !h->stop) pthread_cond_wait(&h->cv, &h->mu);
        if (!h->len) {
            pthread_mutex_unlock(&h->mu);
            break;
        }
        char *line = h->q[h->head];
        h->head = (h->head + 1) % HOOK_QUEUE;
        h->len--;
        pthread_mutex_unlock(&h->mu);
        if (c) {
            curl_easy_setopt(c, CURLOPT_URL, h->url);
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, line);
            curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
            CURLcode rc = curl_easy_perform(c);
            long status = 0;
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            if (rc != CURLE_OK || status >= 400) {
                /* One line per failure would flood a terminal when the receiver is down:
                 * the first, then every 100th. */
                if (h->failed++ % 100 == 0)
                    fprintf(stderr, "mien watch: webhook %s: %s (%ld failed so far)\n", h->url,
                            rc != CURLE_OK ? curl_easy_strerror(rc) : "HTTP error status",
                            h->failed);
            }
        }
        free(line);
    }
    curl_slist_free_all(hdr);
    if (c) curl_easy_cleanup(c);
    return NULL;
}

static int hook_start(hook *h, const char *url) {
    memset(h, 0, sizeof *h);
    h->url = url;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, hook_main, h)) return -1;
    return 0;
}

static void hook_post(hook *h, const char *line) {
    char *copy = strdup(line);
    if (!copy) return;
    pthread_mutex_lock(&h->mu);
    if (h->len == HOOK_QUEUE) { /* the receiver is far behind: the oldest line goes */
        free(h->q[h->head]);
        h->head = (h->head + 1) % HOOK_QUEUE;
        h->len--;
        h->dropped++;
    }
    h->q[(h->head + h->len) % HOOK_QUEUE] = copy;
    h->len++;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Send what is queued (the thread ends when the queue is empty), then stop. */
static void hook_stop(hook *h) {
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    if (h->dropped) fprintf(stderr, "mien watch: webhook: %ld lines dropped (receiver too slow)\n", h->dropped);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    curl_global_cleanup();
}

/* ==== The run: output of events and tracks ==== */

typedef struct run {
    const cli_common *c;
    const video_opts *o;
    mien_tracker *tracker;
    hook *hook;              /* watch --webhook, or NULL */
    vid_writer *writer;      /* --out, opened at the first frame */
    FILE *mot;               /* --mot */
    int64_t frames, dropped;
    double t_offset;         /* added to the stream's times (watch: continues across reconnects) */
    double last_t;           /* latest time pushed (with the offset) */
    double wall0;            /* wall-clock time of the latest frame */
    double wall_start;
    int n_tracks, n_named;
    int failed;
    mien_session **workers;  /* detection sessions (n_workers >= 2), else NULL */
    int n_workers;
} run;

/* One JSON line to stdout (and the webhook). */
static void emit_json(run *r, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) return;
    fputs(s, stdout);
    fputc('\n', stdout);
    if (r->o->watch) fflush(stdout);
    if (r->hook) hook_post(r->hook, s);
    free(s);
}

static void clock_text(char *buf, size_t n) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, n, "%H:%M:%S", &tm);
}

/* A track's best face as DIR/track-ID-NAME.jpg (only safe characters in the file name). */
static void write_face(run *r, const mien_track *tr) {
    mien_image crop;
    if (mien_tracker_crop(r->tracker, tr->id, &crop)) return;
    char name[MIEN_GALLERY_NAME_MAX], path[4096];
    size_t k = 0;
    for (const char *p = tr->name; *p && k + 1 < sizeof name; p++) {
        unsigned char ch = (unsigned char)*p;
        name[k++] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                            ch == '-' || ch == '_' || ch == '.' ? (char)ch : '_';
    }
    name[k] = '\0';
    snprintf(path, sizeof path, "%s/track-%04d-%s.jpg", r->o->faces, tr->id, name);
    mien_err e = {0};
    if (img_write_jpeg(path, &crop, 92, &e)) fprintf(stderr, "mien: --faces: %s\n", e.msg);
    mien_image_free(&crop);
}

static void on_events(run *r, const mien_track_event *ev, int n) {
    for (int i = 0; i < n; i++) {
        const mien_track_event e = ev[i];
        mien_track tr = {0};
        int have = e.type == MIEN_EVENT_LEFT && mien_tracker_track(r->tracker, e.id, &tr) == 0;
        if (have) {
            r->n_tracks++;
            if (strcmp(tr.name, "unknown")) r->n_named++;
        }
        if (r->c->json) {
            cJSON *o = vid_event_json(&e);
            if (r->o->watch) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                cJSON_AddNumberToObject(o, "wall", round(((double)ts.tv_sec + ts.tv_nsec * 1e-9) * 1e3) / 1e3);
            }
            emit_json(r, o);
            if (have) emit_json(r, vid_track_json(&tr));
        } else {
            char clock[16] = "";
            if (r->o->watch) clock_text(clock, sizeof clock);
            printf("%s%s%8.2f s  #%d ", clock, clock[0] ? "  " : "", e.t_s, e.id);
            if (e.type == MIEN_EVENT_APPEARED) printf("appeared\n");
            else if (e.type == MIEN_EVENT_NAMED) printf("named %s (%.3f)\n", e.name, e.similarity);
            else if (have && tr.nearest[0])
                printf("left: %s (%.3f), %.2f-%.2f s, %d frames, best face at %.2f s\n", tr.name,
                       tr.similarity, tr.start_s, tr.end_s, tr.frames, tr.best_s);
            else if (have)
                printf("left: %s, %.2f-%.2f s, %d frames, no face to name\n", tr.name, tr.start_s,
                       tr.end_s, tr.frames);
            else printf("left\n");
            if (r->hook) {
                cJSON *o = vid_event_json(&e);
                char *s = cJSON_PrintUnformatted(o);
                cJSON_Delete(o);
                if (s) hook_post(r->hook, s);
                free(s);
            }
            if (r->o->watch) fflush(stdout);
        }
        if (have && r->o->faces) write_face(r, &tr);
    }
}

/* ==== Drawing ==== */

static void draw_tracks(mien_image *img, const mien_track *t, int n) {
    int side = img->width > img->height ? img->width : img->height;
    int th = side / 400 + 1, scale = side / 500 + 1;
    for (int i = 0; i < n; i++) {
        const int known = strcmp(t[i].name, "unknown") != 0;
        img_color c = known ? (img_color){40, 220, 60} : (img_color){255, 170, 0};
        img_draw_rect(img, t[i].box[0], t[i].box[1], t[i].box[2], t[i].box[3], th, c);
        char text[MIEN_GALLERY_NAME_MAX + 32];
        if (known) snprintf(text, sizeof text, "#%d %s %.2f", t[i].id, t[i].name, t[i].similarity);
        else snprintf(text, sizeof text, "#%d unknown", t[i].id);
        int ty = (int)t[i].box[1] - img_text_height(scale) - 2;
        if (ty < 0) ty = (int)(t[i].box[1] + t[i].box[3]) + 2;
        img_draw_text(img, (int)t[i].box[0], ty, text, scale, (img_color){0, 0, 0}, 1, c);
    }
}

/* ==== Detection ahead, on several threads ====
 * With more than one thread, frames are detected ahead of the tracker by a pool of workers,
 * one session each with one thread of its own: several frames at once rather than one frame
 * on several threads, which scales without the thread pool's synchronisation at every layer
 * (and without its spinning when the machine is busy). The main thread keeps the frames in
 * order, decides which are detected (every detect_every-th and every shot cut, as the tracker
 * would), and feeds the tracker with mien_tracker_push_faces: the same faces, the same tracks
 * as one thread gives. */

#define RING 16              /* frames in flight, at most */

typedef struct det_job {
    vid_frame *f;
    int need;                /* to be detected */
    int state;               /* 0 waiting, 1 being detected, 2 done */
    int rc;
    mien_face *faces;
    int n;
    char err[256];
} det_job;

typedef struct det_pool {
    float min_score;
    int n_workers;
    mien_session **s;        /* (n_workers) */
    pthread_t *th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    det_job ring[RING];
    int head, len, stop;
} det_pool;

static void *det_main(void *arg) {
    void **a = arg;
    det_pool *p = a[0];
    mien_session *s = a[1];
    free(arg);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        det_job *job = NULL;
        for (int i = 0; i < p->len && !job; i++) {
            det_job *j = &p->ring[(p->head + i) % RING];
            if (j->need && j->state == 0) job = j;
        }
        if (!job) {
            if (p->stop) break;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        job->state = 1;
        pthread_mutex_unlock(&p->mu);
        mien_face *faces = NULL;
        int n = 0, rc = vid_detect(s, &job->f->img, p->min_score, &faces, &n);
        pthread_mutex_lock(&p->mu);
        job->rc = rc;
        if (rc) snprintf(job->err, sizeof job->err, "detect: %s", mien_errmsg(s));
        job->faces = faces;
        job->n = n;
        job->state = 2;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int pool_start(det_pool *p, mien_session **sessions, int n, float min_score) {
    memset(p, 0, sizeof *p);
    p->s = sessions;
    p->n_workers = n;
    p->min_score = min_score;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (!(p->th = calloc((size_t)n, sizeof *p->th))) return -1;
    for (int i = 0; i < n; i++) {
        void **a = malloc(2 * sizeof *a);
        if (!a) return -1;
        a[0] = p, a[1] = sessions[i];
        if (pthread_create(&p->th[i], NULL, det_main, a)) {
            free(a);
            return -1;
        }
        p->started++;
    }
    return 0;
}

static void pool_stop(det_pool *p, vid_source *src) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    /* Jobs not started are dropped; those running finish (a worker holds their frame). */
    for (int i = 0; i < p->len; i++) {
        det_job *j = &p->ring[(p->head + i) % RING];
        if (j->state == 0) j->need = 0;
    }
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->th[i], NULL);
    for (int i = 0; i < p->len; i++) {
        det_job *j = &p->ring[(p->head + i) % RING];
        free(j->faces);
        vid_source_release(src, j->f);
    }
    free(p->th);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

/* ==== One input, to its end (or until it fails or a signal stops it) ====
 * Returns VID_END at the end of the input, MIEN_OK when a signal stopped it, or the failure's
 * status (with the reason in *e). */

/* The tracker's step for frame f (faces given when n >= 0), and what follows: events, boxes
 * file, annotated video, progress. Releases nothing. */
static int track_frame(run *r, vid_reader *rd, vid_frame *f, const mien_face *faces, int n_faces,
                       int given, int *first, cli_progress *prog, mien_err *e) {
    if (*first) {
        /* Watch: a new connection goes on from where the last one ended, after the time that
         * passed meanwhile. */
        if (r->frames) r->t_offset = r->last_t + (cli_now() - r->wall0) - f->t_s;
        *first = 0;
    }
    double t = f->t_s + r->t_offset;
    if (t < r->last_t) t = r->last_t;
    const mien_track_event *ev;
    int n, rc;
    rc = given ? mien_tracker_push_faces(r->tracker, &f->img, t, faces, n_faces, &ev, &n)
               : mien_tracker_push(r->tracker, &f->img, t, &ev, &n);
    if (rc) return mien_err_set(e, rc, "%s", mien_tracker_errmsg(r->tracker));
    r->last_t = t;
    r->wall0 = cli_now();
    r->frames++;
    on_events(r, ev, n);
    const mien_track *at;
    int na;
    mien_tracker_active(r->tracker, &at, &na);
    if (r->mot)
        for (int i = 0; i < na; i++)
            fprintf(r->mot, "%lld,%d,%.2f,%.2f,%.2f,%.2f,%.4f,-1,-1,-1\n", (long long)r->frames,
                    at[i].id, at[i].box[0], at[i].box[1], at[i].box[2], at[i].box[3], at[i].score);
    if (r->o->out) {
        if (!r->writer &&
            (rc = vid_writer_open(r->o->out, f->img.width, f->img.height, vid_reader_fps(rd), 1,
                                  &r->writer, e)))
            return rc;
        draw_tracks(&f->img, at, na);
        if ((rc = vid_writer_write(r->writer, &f->img, t, e))) return rc;
    }
    if (prog->enabled && cli_now() - prog->last >= 0.25) {
        /* The progress line: frames, rate, tracks on screen, frames dropped. */
        prog->last = cli_now();
        fprintf(stderr, "\r%s: frame %lld, %.1f frames/s, %d track%s shown, %lld dropped   ",
                prog->label, (long long)r->frames, (double)r->frames / (prog->last - prog->t0 + 1e-9),
                na, na == 1 ? "" : "s", (long long)r->dropped);
        fflush(stderr);
    }
    return MIEN_OK;
}

static int run_input(run *r, vid_reader *rd, cli_progress *prog, mien_err *e) {
    vid_source *src;
    int rc = vid_source_open(rd, r->o->realtime || r->o->watch, &src, e);
    if (rc) return rc;
    int first = 1;
    const int64_t dropped0 = r->dropped;
    if (r->n_workers < 2) {
        /* One thread: the tracker detects itself. */
        for (;;) {
            vid_frame *f;
            if (stop_flag || (rc = vid_source_next(src, &f, e))) {
                if (stop_flag) rc = MIEN_OK;
                break;
            }
            rc = track_frame(r, rd, f, NULL, 0, 0, &first, prog, e);
            vid_source_release(src, f);
            r->dropped = dropped0 + vid_source_dropped(src);
            if (rc) break;
        }
    } else {
        det_pool p;
        if (pool_start(&p, r->workers, r->n_workers, r->o->t.low_score)) {
            pool_stop(&p, src);
            vid_source_close(src);
            return mien_err_set(e, MIEN_ENOMEM, "cannot start the detection threads");
        }
        vid_cuts cuts = {0};
        int64_t since = -1;    /* frames since the latest detected one; -1: none yet */
        int src_rc = MIEN_OK;  /* why the source stopped, once it has */
        for (;;) {
            /* Keep the workers busy: enough frames in flight (a few more than workers). */
            while (!src_rc && !stop_flag && p.len < RING && p.len < 2 * p.n_workers + 1) {
                vid_frame *f;
                if ((src_rc = vid_source_next(src, &f, e))) break;
                const int cut = vid_cut_check(&cuts, &f->img, r->o->t.cut_threshold);
                const int need = cut || since < 0 || since + 1 >= r->o->t.detect_every;
                since = need ? 0 : since + 1;
                pthread_mutex_lock(&p.mu);
                p.ring[(p.head + p.len) % RING] = (det_job){.f = f, .need = need};
                p.len++;
                pthread_cond_broadcast(&p.cv);
                pthread_mutex_unlock(&p.mu);
            }
            if (stop_flag) {
                rc = MIEN_OK;
                break;
            }
            if (p.len == 0) {
                rc = src_rc;
                break;
            }
            /* The oldest frame, once detected. */
            pthread_mutex_lock(&p.mu);
            det_job *j = &p.ring[p.head];
            while (j->need && j->state != 2) pthread_cond_wait(&p.cv, &p.mu);
            det_job job = *j;
            p.head = (p.head + 1) % RING;
            p.len--;
            pthread_mutex_unlock(&p.mu);
            if (job.need && job.rc) rc = mien_err_set(e, job.rc, "%s", job.err);
            else rc = track_frame(r, rd, job.f, job.faces, job.need ? job.n : -1, 1, &first, prog, e);
            free(job.faces);
            vid_source_release(src, job.f);
            r->dropped = dropped0 + vid_source_dropped(src);
            if (rc) break;
        }
        pool_stop(&p, src);
    }
    r->dropped = dropped0 + vid_source_dropped(src);
    vid_source_close(src);
    return rc;
}

/* Every live track leaves (end of input, or a stream that dropped). */
static void finish_tracks(run *r) {
    const mien_track_event *ev;
    int n;
    if (mien_tracker_finish(r->tracker, &ev, &n) == 0) on_events(r, ev, n);
}

static vid_reader *open_input(const char *cmd, const char *url, const video_opts *o,
                              const cli_common *c, mien_err *e) {
    vid_reader_opts ro;
    vid_reader_opts_default(&ro);
    ro.open_timeout_s = ro.read_timeout_s = o->timeout_s;
    ro.format = o->format;
    ro.threads = c->cfg.threads > 0 ? c->cfg.threads : 1;
    ro.abort = &stop_flag;
    vid_reader *rd = NULL;
    vid_reader_open(url, &ro, &rd, e);
    (void)cmd;
    return rd;
}

/* The gallery: --gallery, else the default one when it exists, else none. */
static int open_gallery(const char *cmd, const video_opts *o, mien_models *m, mien_gallery **g) {
    *g = NULL;
    if (!o->gallery) {
        char def[4096];
        struct stat st;
        if (mien_gallery_default_path(def, sizeof def) || stat(def, &st) != 0) return 0;
    }
    *g = cli_open_gallery(cmd, o->gallery, 0, m);
    return *g ? 0 : -1;
}

static void print_summary(run *r) {
    double wall = cli_now() - r->wall_start;
    if (r->c->json) {
        emit_json(r, vid_summary_json(r->frames, wall, r->last_t, r->dropped));
    } else {
        printf("%lld frames, %.2f s of video in %.2f s (%.1f frames/s)", (long long)r->frames,
               r->last_t, wall, wall > 0 ? (double)r->frames / wall : 0);
        if (r->dropped) printf(", %lld dropped", (long long)r->dropped);
        printf("; %d tracks, %d named\n", r->n_tracks, r->n_named);
    }
    fflush(stdout);
}

static int video_main(int argc, char **argv, int watch) {
    const char *cmd = watch ? "watch" : "video";
    cli_common c;
    cli_common_init(&c);
    video_opts o = {.watch = watch, .retries = -1, .timeout_s = 10};
    mien_tracker_options_default(&o.t);
    if (cli_parse(&c, &argc, argv, video_extra, &o, watch ? watch_usage : video_usage))
        return EXIT_USAGE;
    if (argc != 2) {
        fputs(watch ? watch_usage : video_usage, stderr);
        return EXIT_USAGE;
    }
    const char *url = argv[1];
    /* Threads: --threads N, else the cores the rest of the machine leaves idle. With 2 or
     * more, that many workers detect frames ahead of the tracker (one thread each); every
     * session runs on one thread. */
    const int threads = c.threads_given ? c.threads : cli_intra_threads(&c, 1);
    c.cfg.threads = 1;
    mien_err e = {0};
    /* Open the input first: a bad file fails before the models load. */
    catch_signals();
    vid_reader *rd = open_input(cmd, url, &o, &c, &e);
    if (!rd && !watch) {
        fprintf(stderr, "mien %s: %s\n", cmd, e.msg);
        return EXIT_FAIL;
    }
    mien_models *m = cli_open_models(&c);
    mien_session *s = m ? cli_open_session(m) : NULL;
    mien_gallery *g = NULL;
    mien_tracker *tracker = NULL;
    mien_session **workers = NULL;
    int n_workers = 0;
    int status = EXIT_FAIL;
    hook hk;
    int have_hook = 0;
    if (!s || open_gallery(cmd, &o, m, &g)) goto done;
    o.t.keep_crops = o.faces != NULL;
    if (o.faces) {
        char probe[4096];
        snprintf(probe, sizeof probe, "%s/x", o.faces);
        cli_make_parent_dirs(probe);
    }
    if (mien_tracker_open(s, g, &o.t, &tracker)) {
        fprintf(stderr, "mien %s: %s\n", cmd, mien_tracker_errmsg(tracker));
        goto done;
    }
    if (o.webhook) {
        if (hook_start(&hk, o.webhook)) {
            fprintf(stderr, "mien %s: cannot start the webhook sender\n", cmd);
            goto done;
        }
        have_hook = 1;
    }
    run r = {.c = &c, .o = &o, .tracker = tracker, .hook = have_hook ? &hk : NULL};
    if (threads >= 2) {
        if (!(workers = calloc((size_t)threads, sizeof *workers))) goto done;
        for (n_workers = 0; n_workers < threads; n_workers++)
            if (!(workers[n_workers] = cli_open_session(m))) goto done;
        r.workers = workers;
        r.n_workers = n_workers;
    }
    if (o.mot && !(r.mot = fopen(o.mot, "w"))) {
        fprintf(stderr, "mien %s: cannot write %s: %s\n", cmd, o.mot, strerror(errno));
        goto done;
    }
    r.wall_start = r.wall0 = cli_now();
    cli_progress prog; /* its own line (run_input): the number of frames is not known */
    cli_progress_start(&prog, watch ? "watch" : "video", 0, c.quiet);
    if (rd && !c.json && !watch && !c.quiet && isatty(STDERR_FILENO))
        fprintf(stderr, "%s: %s\n", url, vid_reader_describe(rd));
    int rc = MIEN_OK, fails = 0;
    double backoff = 0.5;
    for (;;) {
        if (rd) {
            const int64_t before = r.frames;
            rc = run_input(&r, rd, &prog, &e);
            const int live = vid_reader_live(rd);
            vid_reader_close(rd);
            rd = NULL;
            if (r.frames > before) fails = 0, backoff = 0.5;
            if (rc == MIEN_OK || stop_flag) break;           /* stopped by a signal */
            if (!watch || (rc == VID_END && !live)) break;   /* the end of a file */
            finish_tracks(&r);
            if (rc == VID_END) fprintf(stderr, "mien watch: %s: the stream ended\n", url);
            else fprintf(stderr, "mien watch: %s\n", e.msg);
        } else {
            fprintf(stderr, "mien watch: %s\n", e.msg);
        }
        if (stop_flag) break;
        if (o.retries >= 0 && fails >= o.retries) {
            fprintf(stderr, "mien watch: giving up after %d failed connection%s\n", fails,
                    fails == 1 ? "" : "s");
            rc = rc ? rc : MIEN_EIO;
            break;
        }
        fails++;
        fprintf(stderr, "mien watch: connecting again in %.1f s\n", backoff);
        nap(backoff);
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
        if (stop_flag) break;
        rd = open_input(cmd, url, &o, &c, &e);
    }
    finish_tracks(&r);
    if (prog.enabled) fputc('\n', stderr);
    print_summary(&r);
    if (r.writer && vid_writer_close(r.writer, &e) && (rc == VID_END || rc == MIEN_OK)) {
        fprintf(stderr, "mien %s: %s\n", cmd, e.msg);
        rc = e.status;
    }
    if (r.mot && fclose(r.mot) != 0 && (rc == VID_END || rc == MIEN_OK)) {
        fprintf(stderr, "mien %s: cannot write %s\n", cmd, o.mot);
        rc = MIEN_EIO;
        e.status = MIEN_EIO;
        snprintf(e.msg, sizeof e.msg, "cannot write %s", o.mot);
    }
    if (rc == VID_END || rc == MIEN_OK) status = EXIT_OK;
    else if (watch && r.frames > 0 && o.retries >= 0) status = EXIT_OK; /* ran, then gave up */
    else if (!watch || rc != MIEN_EIO || !r.frames) fprintf(stderr, "mien %s: %s\n", cmd, e.msg);
done:
    if (have_hook) hook_stop(&hk);
    for (int i = 0; workers && i < n_workers; i++) mien_session_close(workers[i]);
    free(workers);
    vid_reader_close(rd);
    mien_tracker_close(tracker);
    mien_gallery_close(g);
    mien_session_close(s);
    mien_models_close(m);
    return status;
}

int cmd_video(int argc, char **argv) { return video_main(argc, argv, 0); }
int cmd_watch(int argc, char **argv) { return video_main(argc, argv, 1); }
