/* A reader on its own thread, a few frames ahead of the caller (see video.h). Decoding then
 * overlaps detection, and a live input never waits for a slow caller: its oldest queued frame
 * is dropped instead, so the caller always works on a recent picture. */
#include "video/video.h"
#include "image/image.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_CAP 3     /* decoded frames waiting for the caller */
#define FREE_CAP 6      /* spare frame buffers kept for reuse */

struct vid_source {
    vid_reader *r;
    int drop;                /* drop the oldest frame when the queue is full */
    int pace;                /* wait for each frame's time (a file played as a camera) */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t changed;
    vid_frame *queue[QUEUE_CAP];
    int q_head, q_len;
    vid_frame *spare[FREE_CAP];
    int n_spare;
    int done;                /* 0 while running; VID_END or a status when the reader stopped */
    int stop;                /* vid_source_close asked the thread to end */
    mien_err err;            /* why the reader stopped */
    int64_t dropped;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void frame_free(vid_frame *f) {
    if (!f) return;
    mien_image_free(&f->img);
    free(f);
}

/* A buffer for a w x h frame: a spare one when there is one (called with mu held). */
static vid_frame *take_spare(vid_source *s) {
    return s->n_spare ? s->spare[--s->n_spare] : NULL;
}

static void give_spare(vid_source *s, vid_frame *f) {
    if (s->n_spare < FREE_CAP) s->spare[s->n_spare++] = f;
    else frame_free(f);
}

static void *source_main(void *arg) {
    vid_source *s = arg;
    double wall0 = 0, t0 = 0;
    int first = 1;
    for (;;) {
        const mien_image *img;
        double t;
        int64_t idx;
        mien_err e = {0};
        int rc = vid_reader_next(s->r, &img, &t, &idx, &e);
        pthread_mutex_lock(&s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (rc) {
            s->done = rc;
            s->err = e;
            pthread_cond_broadcast(&s->changed);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        vid_frame *f = take_spare(s);
        pthread_mutex_unlock(&s->mu);
        /* Copy the reader's frame (its buffer is reused by the next read). */
        if (f && (f->img.width != img->width || f->img.height != img->height)) {
            frame_free(f);
            f = NULL;
        }
        int fail = 0;
        if (!f) {
            f = calloc(1, sizeof *f);
            if (!f || img_alloc(&f->img, img->width, img->height, &e)) fail = 1;
        }
        if (!fail) {
            memcpy(f->img.rgb, img->rgb, (size_t)img->width * (size_t)img->height * 3);
            f->t_s = t;
            f->index = idx;
        }
        if (!fail && s->pace) {
            /* Play a file at its own speed: wait for the frame's time. */
            if (first) wall0 = now_s(), t0 = t, first = 0;
            double wait = wall0 + (t - t0) - now_s();
            if (wait > 1.0) { /* a jump in the timestamps: go on at once, not hours later */
                wall0 -= wait - 0.04;
                wait = 0.04;
            }
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
            }
        }
        pthread_mutex_lock(&s->mu);
        if (fail) {
            frame_free(f);
            s->done = MIEN_ENOMEM;
            mien_err_set(&s->err, MIEN_ENOMEM, "out of memory for a video frame");
            pthread_cond_broadcast(&s->changed);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        while (s->q_len == QUEUE_CAP && !s->drop && !s->stop)
            pthread_cond_wait(&s->changed, &s->mu);
        if (s->stop) {
            frame_free(f);
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (s->q_len == QUEUE_CAP) { /* live: the oldest goes */
            give_spare(s, s->queue[s->q_head]);
            s->q_head = (s->q_head + 1) % QUEUE_CAP;
            s->q_len--;
            s->dropped++;
        }
        s->queue[(s->q_head + s->q_len) % QUEUE_CAP] = f;
        s->q_len++;
        pthread_cond_broadcast(&s->changed);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

int vid_source_open(vid_reader *r, int realtime, vid_source **out, mien_err *e) {
    *out = NULL;
    vid_source *s = calloc(1, sizeof *s);
    if (!s) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    s->r = r;
    const int live = vid_reader_live(r);
    s->drop = live || realtime;
    s->pace = realtime && !live;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->changed, NULL);
    if (pthread_create(&s->thread, NULL, source_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->changed);
        free(s);
        return mien_err_set(e, MIEN_ENOMEM, "cannot start the decoding thread");
    }
    s->started = 1;
    *out = s;
    return MIEN_OK;
}

int vid_source_next(vid_source *s, vid_frame **f, mien_err *e) {
    *f = NULL;
    pthread_mutex_lock(&s->mu);
    while (s->q_len == 0 && !s->done) pthread_cond_wait(&s->changed, &s->mu);
    int rc = MIEN_OK;
    if (s->q_len) {
        *f = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % QUEUE_CAP;
        s->q_len--;
        pthread_cond_broadcast(&s->changed);
    } else {
        rc = s->done;
        if (rc != VID_END && e) *e = s->err;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void vid_source_release(vid_source *s, vid_frame *f) {
    if (!f) return;
    pthread_mutex_lock(&s->mu);
    give_spare(s, f);
    pthread_mutex_unlock(&s->mu);
}

int64_t vid_source_dropped(vid_source *s) {
    pthread_mutex_lock(&s->mu);
    int64_t d = s->dropped;
    pthread_mutex_unlock(&s->mu);
    return d;
}

void vid_source_close(vid_source *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->mu);
    vid_reader_interrupt(s->r); /* a read blocked on the network gives up */
    if (s->started) pthread_join(s->thread, NULL);
    for (int i = 0; i < s->q_len; i++) frame_free(s->queue[(s->q_head + i) % QUEUE_CAP]);
    for (int i = 0; i < s->n_spare; i++) frame_free(s->spare[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->changed);
    free(s);
}
