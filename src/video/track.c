/* The face tracker of mien.h (mien_tracker_*): ByteTrack's association with a Kalman filter
 * per box, appearance where boxes are ambiguous, shot cuts, and naming from the best faces.
 *
 * One frame, when the detector runs on it:
 *   1. every track's box is predicted to the frame's time (Kalman filter, constant velocity);
 *   2. detections at or above high_score are matched to the born tracks (live or lost) by IoU
 *      with the Hungarian method; where a detection overlaps two tracks or a track two
 *      detections, the cost also weighs embedding similarity (the detection is embedded, the
 *      track has the mean of its faces);
 *   3. the weaker detections (low_score .. high_score) are matched to the live tracks left,
 *      with a stricter IoU (ByteTrack's second pass: a face that blurs or turns keeps its
 *      track instead of breaking it);
 *   4. tracks not yet born are matched to the high detections left; those left unmatched
 *      are forgotten at once;
 *   5. a born track left unmatched is lost (not shown); lost for max_lost_s, it leaves;
 *   6. each high detection left starts a new track, born after min_hits hits in a row. At
 *      birth it is embedded once: if it matches a track lost a moment ago (the same face
 *      after an occlusion), that track takes it back instead of a new one being born.
 * Frames in between (detect_every > 1) only predict. A shot cut ends every track first.
 *
 * Naming: faces are embedded on a schedule (see want_face) and kept, the best max_faces by
 * quality; each is searched in the gallery; the name is the subject that min_votes of them
 * reach with a similarity over the threshold, and that is the nearest subject of most of
 * them. */
#include "face/face.h"
#include "image/image.h"
#include "video/video.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_FPS 30.f        /* the Kalman filter's time unit is 1/30 s */
#define MAX_LIVE 512        /* live tracks (born or not); detections beyond start none */
#define MAX_DETS 512        /* detections used per frame (the strongest) */
#define MAX_FACES_CAP 64    /* cap on max_faces */
#define IOU_HIGH 0.2f       /* least IoU of a high detection and its track */
#define IOU_LOW 0.5f        /* ... of a low detection (second pass) */
#define IOU_NEW 0.3f        /* ... of a detection and a track not yet born */
#define CROP_MARGIN 1.6f    /* a track's best crop is its box scaled by this */
#define CHECK_GAP_S 0.5     /* a track's identity is checked at least this often */
#define CHECK_MIN_Q 0.1f    /* ... on faces of at least this quality */

typedef enum trk_state { TS_TENTATIVE, TS_ACTIVE, TS_LOST, TS_ENDED } trk_state;

/* One embedded face of a track. */
typedef struct tface {
    float q;                             /* quality when it was taken */
    float sim;                           /* similarity to its nearest subject (-2: none) */
    char nearest[MIEN_GALLERY_NAME_MAX]; /* "" without gallery or subjects */
} tface;

typedef struct trk {
    mien_track pub;
    trk_state state;
    vid_kf kx, ky, ks;       /* centre x, centre y, side sqrt(w h) */
    float aspect;            /* w / h, smoothed */
    int hits;                /* detections in a row while not yet born */
    double last_det_t;       /* time of its latest detection */
    int matched;             /* the detection it got in this frame, or -1 */
    int64_t updated;         /* frame in which a track that came back was updated already */
    int n_faces;
    tface faces[MAX_FACES_CAP];
    float *emb;              /* (max_faces, dim) */
    float *mean;             /* (dim) normalised mean of emb[0 .. n_faces) */
    double last_embed_t;
    double last_check_t;     /* latest identity check (check_identity) */
    int detached;            /* lost because another face took its place: it can come back
                              * only by its looks (at a birth), not by overlap */
    mien_image crop;         /* best face, with keep_crops */
} trk;

/* A detection of the current frame. */
typedef struct det {
    mien_face f;
    float q;                 /* quality */
    int embedded;            /* 0: not yet, 1: emb holds it, -1: could not (no face, too small) */
    float *emb;              /* (dim), points into the tracker's scratch */
    mien_face refined;       /* with the landmark network's points, when embedded == 1 */
} det;

struct mien_tracker {
    mien_session *s;
    mien_gallery *g;
    mien_tracker_options o;
    float thr;
    int dim;
    int embed;               /* embeddings are taken (gallery or appearance) */
    char errmsg[512];
    trk **tr;                /* live tracks, then those ended in the latest push */
    int n_tr, cap_tr;
    int next_id;
    int64_t frame;           /* frames pushed */
    int64_t last_detect;     /* frame of the latest detection run, -1: none */
    double last_t;
    vid_cuts cuts;           /* shot-cut detection */
    mien_track_event *ev;
    int n_ev, cap_ev;
    mien_track *active;
    int n_active, cap_active;
    det *dets;
    int cap_dets;
    float *det_emb;          /* (cap_dets, dim) */
};

/* ==== Errors and small helpers ==== */

static int fail(mien_tracker *t, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(mien_tracker *t, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->errmsg, sizeof t->errmsg, fmt, ap);
    va_end(ap);
    return status;
}

static float box_iou(const float a[4], const float b[4]) {
    const float ea[4] = {a[0], a[1], a[0] + a[2], a[1] + a[3]};
    const float eb[4] = {b[0], b[1], b[0] + b[2], b[1] + b[3]};
    return face_iou(ea, eb);
}

static void trk_box(const trk *k, float box[4]) {
    float side = k->ks.x > 1.f ? k->ks.x : 1.f, ra = sqrtf(k->aspect > 0 ? k->aspect : 1.f);
    float w = side * ra, h = side / ra;
    box[0] = k->kx.x - 0.5f * w;
    box[1] = k->ky.x - 0.5f * h;
    box[2] = w;
    box[3] = h;
}

static void set_name(char dst[MIEN_GALLERY_NAME_MAX], const char *src) {
    snprintf(dst, MIEN_GALLERY_NAME_MAX, "%s", src);
}

void mien_tracker_options_default(mien_tracker_options *o) {
    memset(o, 0, sizeof *o);
    o->detect_every = 1;
    o->high_score = 0.5f;
    o->low_score = 0.3f;
    o->name_score = 0.6f;
    o->min_hits = 3;
    o->max_lost_s = 1.0f;
    o->cut_threshold = 0.12f;
    o->threshold = 0;
    o->min_votes = 2;
    o->max_faces = 12;
    o->min_face = 32;
    o->embed_gap_s = 0.15f;
    o->appearance = 1;
    o->keep_crops = 0;
}

/* ==== Open and close ==== */

static void trk_free(trk *k) {
    if (!k) return;
    free(k->emb);
    free(k->mean);
    mien_image_free(&k->crop);
    free(k);
}

int mien_tracker_open(mien_session *s, mien_gallery *g, const mien_tracker_options *o,
                      mien_tracker **out) {
    if (!out) return MIEN_EINVAL;
    *out = NULL;
    mien_tracker *t = calloc(1, sizeof *t);
    if (!t) return MIEN_ENOMEM;
    *out = t;
    if (!s) return fail(t, MIEN_EINVAL, "no session");
    t->s = s;
    t->g = g;
    if (o) t->o = *o;
    else mien_tracker_options_default(&t->o);
    mien_tracker_options *p = &t->o;
    if (p->detect_every < 1 || p->detect_every > 1000)
        return fail(t, MIEN_EINVAL, "detect_every must be 1 to 1000, not %d", p->detect_every);
    if (!(p->low_score > 0 && p->low_score <= p->high_score && p->high_score <= 1))
        return fail(t, MIEN_EINVAL, "need 0 < low_score <= high_score <= 1");
    if (p->min_hits < 1 || p->min_hits > 100)
        return fail(t, MIEN_EINVAL, "min_hits must be 1 to 100");
    if (!(p->max_lost_s >= 0 && p->max_lost_s <= 3600))
        return fail(t, MIEN_EINVAL, "max_lost_s must be 0 to 3600 seconds");
    if (!(p->cut_threshold >= 0 && p->cut_threshold <= 2))
        return fail(t, MIEN_EINVAL, "cut_threshold must be in [0, 2]");
    if (!(p->threshold >= -1 && p->threshold <= 1))
        return fail(t, MIEN_EINVAL, "threshold must be in [-1, 1]");
    if (p->max_faces < 1 || p->max_faces > MAX_FACES_CAP)
        return fail(t, MIEN_EINVAL, "max_faces must be 1 to %d", MAX_FACES_CAP);
    if (p->min_votes < 1 || p->min_votes > p->max_faces)
        return fail(t, MIEN_EINVAL, "min_votes must be 1 to max_faces");
    if (!(p->name_score >= 0 && p->name_score <= 1))
        return fail(t, MIEN_EINVAL, "name_score must be in [0, 1]");
    if (!(p->min_face >= 0) || !(p->embed_gap_s >= 0))
        return fail(t, MIEN_EINVAL, "min_face and embed_gap_s must be >= 0");
    t->dim = mien_models_embedding_dim(s->m);
    t->thr = p->threshold != 0 ? p->threshold : mien_models_threshold(s->m);
    t->embed = g != NULL || p->appearance;
    if (g) {
        char model[128];
        int gdim = 0;
        if (mien_gallery_model(g, model, sizeof model, &gdim))
            return fail(t, MIEN_EIO, "gallery: %s", mien_gallery_errmsg(g));
        if (gdim && (gdim != t->dim || strcmp(model, mien_models_embedder_name(s->m))))
            return fail(t, MIEN_EMISMATCH,
                        "the gallery holds embeddings of %s (%d-d), the models embed with %s (%d-d)",
                        model, gdim, mien_models_embedder_name(s->m), t->dim);
    }
    t->next_id = 1;
    t->last_detect = -1;
    t->last_t = -INFINITY;
    return MIEN_OK;
}

void mien_tracker_close(mien_tracker *t) {
    if (!t) return;
    for (int i = 0; i < t->n_tr; i++) trk_free(t->tr[i]);
    free(t->tr);
    free(t->ev);
    free(t->active);
    free(t->dets);
    free(t->det_emb);
    free(t);
}

const char *mien_tracker_errmsg(const mien_tracker *t) {
    return t ? t->errmsg : "no tracker (out of memory)";
}

/* ==== Events ==== */

static int emit(mien_tracker *t, mien_event_type type, const trk *k, double ts, int64_t frame) {
    if (t->n_ev == t->cap_ev) {
        int nc = t->cap_ev ? t->cap_ev * 2 : 16;
        mien_track_event *nb = realloc(t->ev, (size_t)nc * sizeof *nb);
        if (!nb) return fail(t, MIEN_ENOMEM, "out of memory");
        t->ev = nb;
        t->cap_ev = nc;
    }
    mien_track_event *e = &t->ev[t->n_ev++];
    memset(e, 0, sizeof *e);
    e->type = type;
    e->id = k->pub.id;
    set_name(e->name, k->pub.name);
    e->similarity = k->pub.similarity;
    e->t_s = ts;
    e->frame = frame;
    return MIEN_OK;
}

/* A born track ends: it leaves (event) and is kept until the next push for lookups. */
static int end_track(mien_tracker *t, trk *k) {
    k->state = TS_ENDED;
    return emit(t, MIEN_EVENT_LEFT, k, k->pub.end_s, k->pub.end_frame);
}

/* ==== Faces: quality, embedding, naming ==== */

/* In [0, 1]: detector score x size (full from 100 pixels) x frontality 1 / (1 + 4 off^2),
 * off = how far the nose tip is from the middle of the eyes, along the eye line, relative to
 * the eye distance (0 frontal, 0.5 at about 45 degrees of yaw: frontality 0.5; more in a
 * three-quarter view, where BlazeFace puts the nose beyond the near eye). */
static float face_quality(const mien_face *f) {
    float side = sqrtf(fmaxf(f->box[2], 0.f) * fmaxf(f->box[3], 0.f));
    float size = fminf(1.f, side / 100.f), frontal = 1.f;
    if (f->n_points >= 3) {
        float ex = f->points[1][0] - f->points[0][0], ey = f->points[1][1] - f->points[0][1];
        float ed = sqrtf(ex * ex + ey * ey);
        if (ed > 1e-3f) {
            float mx = 0.5f * (f->points[0][0] + f->points[1][0]);
            float my = 0.5f * (f->points[0][1] + f->points[1][1]);
            float off = fabsf((f->points[2][0] - mx) * ex + (f->points[2][1] - my) * ey) / (ed * ed);
            frontal = 1.f / (1.f + 4.f * off * off);
        } else {
            frontal = 0.1f;
        }
    }
    float q = fminf(1.f, fmaxf(0.f, f->score)) * size * frontal;
    return isfinite(q) ? q : 0.f;
}

/* Embed detection d of img once (landmark refinement first). d->embedded: 1 done, -1 when
 * the face is too small or the landmark network says it is not a face. */
static int embed_det(mien_tracker *t, const mien_image *img, det *d) {
    if (d->embedded) return MIEN_OK;
    d->embedded = -1;
    const float side = sqrtf(fmaxf(d->f.box[2], 0.f) * fmaxf(d->f.box[3], 0.f));
    if (side < t->o.min_face) return MIEN_OK;
    d->refined = d->f;
    int keep = 1, rc = face_refine_landmarks(t->s, img, &d->refined, &keep);
    if (rc) return fail(t, rc, "landmarks: %s", mien_errmsg(t->s));
    if (keep != LM_KEEP) return MIEN_OK;
    rc = face_embed_scaled(t->s, img, &d->refined, 1.f, 1.f, d->emb);
    if (rc == MIEN_EINVAL) return MIEN_OK; /* degenerate landmarks: not usable */
    if (rc) return fail(t, rc, "embed: %s", mien_errmsg(t->s));
    d->embedded = 1;
    return MIEN_OK;
}

static void update_mean(mien_tracker *t, trk *k) {
    const int dim = t->dim;
    memset(k->mean, 0, (size_t)dim * sizeof *k->mean);
    for (int i = 0; i < k->n_faces; i++)
        for (int j = 0; j < dim; j++) k->mean[j] += k->emb[(size_t)i * dim + j];
    double ss = 0;
    for (int j = 0; j < dim; j++) ss += (double)k->mean[j] * k->mean[j];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.f;
    for (int j = 0; j < dim; j++) k->mean[j] *= inv;
}

/* The name from the track's faces (see the top of the file); emits NAMED when it changes to
 * a name. A known track does not go back to unknown on weaker faces. */
static int decide_name(mien_tracker *t, trk *k, double ts) {
    int best = -1, best_votes = 0, best_near = 0;
    float best_sim = -2.f, top_sim = -2.f;
    int top = -1;
    for (int i = 0; i < k->n_faces; i++) {
        const tface *fi = &k->faces[i];
        if (!fi->nearest[0]) continue;
        if (fi->sim > top_sim) top_sim = fi->sim, top = i;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(k->faces[j].nearest, fi->nearest);
        if (seen) continue; /* tallied with its first face */
        int votes = 0, near = 0;
        float sim = -2.f;
        for (int j = i; j < k->n_faces; j++) {
            const tface *fj = &k->faces[j];
            if (strcmp(fj->nearest, fi->nearest)) continue;
            near++;
            if (fj->sim >= t->thr) votes++;
            if (fj->sim > sim) sim = fj->sim;
        }
        if (votes > best_votes || (votes == best_votes && votes > 0 && sim > best_sim))
            best = i, best_votes = votes, best_near = near, best_sim = sim;
    }
    int known = best >= 0 && best_votes >= t->o.min_votes && 2 * best_near > k->n_faces;
    if (!known && best >= 0 && best_votes >= 1 && 2 * best_near > k->n_faces && k->n_faces >= 2) {
        /* One face over the threshold is enough when the whole track agrees: the mean of its
         * faces (the track's template) is nearest to the same subject, over the threshold
         * too. A stranger rarely passes both (a lucky face, and a consistent likeness). */
        mien_match m;
        int got = 0;
        int rc = mien_gallery_search(t->g, k->mean, t->dim, 1, &m, &got);
        if (rc) return fail(t, rc, "gallery: %s", mien_gallery_errmsg(t->g));
        known = got > 0 && m.similarity >= t->thr && !strcmp(m.name, k->faces[best].nearest);
    }
    if (known) {
        const char *name = k->faces[best].nearest;
        k->pub.similarity = best_sim;
        set_name(k->pub.nearest, name);
        if (strcmp(k->pub.name, name)) {
            set_name(k->pub.name, name);
            k->pub.named_s = ts;
            if (k->state != TS_TENTATIVE)
                return emit(t, MIEN_EVENT_NAMED, k, ts, t->frame);
        }
    } else if (!strcmp(k->pub.name, "unknown") && top >= 0) {
        k->pub.similarity = top_sim;
        set_name(k->pub.nearest, k->faces[top].nearest);
    }
    return MIEN_OK;
}

/* Add the embedded detection d to track k's faces (replacing the worst one when full),
 * search it in the gallery and decide the name again. */
static int add_face(mien_tracker *t, trk *k, const det *d, double ts) {
    if (d->embedded != 1 || d->f.score < t->o.name_score) return MIEN_OK;
    const int dim = t->dim;
    if (!k->emb) {
        k->emb = malloc((size_t)t->o.max_faces * (size_t)dim * sizeof *k->emb);
        k->mean = malloc((size_t)dim * sizeof *k->mean);
        if (!k->emb || !k->mean) return fail(t, MIEN_ENOMEM, "out of memory");
    }
    int slot = k->n_faces;
    if (slot == t->o.max_faces) {
        slot = 0;
        for (int i = 1; i < k->n_faces; i++)
            if (k->faces[i].q < k->faces[slot].q) slot = i;
        /* A known track keeps its best faces; an unknown one takes the fresh face anyway. */
        if (k->faces[slot].q >= d->q && strcmp(k->pub.name, "unknown")) return MIEN_OK;
    } else {
        k->n_faces++;
    }
    tface *f = &k->faces[slot];
    memset(f, 0, sizeof *f);
    f->q = d->q;
    f->sim = -2.f;
    memcpy(k->emb + (size_t)slot * dim, d->emb, (size_t)dim * sizeof *d->emb);
    k->last_embed_t = ts;
    k->pub.faces++;
    update_mean(t, k);
    if (!t->g) return MIEN_OK;
    mien_match m;
    int got = 0;
    int rc = mien_gallery_search(t->g, d->emb, dim, 1, &m, &got);
    if (rc) return fail(t, rc, "gallery: %s", mien_gallery_errmsg(t->g));
    if (got > 0) {
        f->sim = m.similarity;
        set_name(f->nearest, m.name);
    }
    return decide_name(t, k, ts);
}

/* Whether track k should take (embed) detection d now: while it has fewer than max_faces,
 * every embed_gap_s; then a face clearly better than its worst kept one, and, while the
 * track is unknown, a fresh face every 4 embed_gap_s (in place of the worst: more chances
 * for a face that is hard to recognise). */
static int want_face(const mien_tracker *t, const trk *k, const det *d, double ts) {
    if (!t->embed || d->embedded == -1 || d->f.score < t->o.name_score) return 0;
    if (ts - k->last_embed_t < t->o.embed_gap_s) return 0;
    if (k->n_faces < t->o.max_faces) return 1;
    if (t->g && !strcmp(k->pub.name, "unknown") && ts - k->last_embed_t >= 4 * t->o.embed_gap_s)
        return 1;
    float worst = k->faces[0].q;
    for (int i = 1; i < k->n_faces; i++) worst = fminf(worst, k->faces[i].q);
    return d->q > 1.1f * worst + 0.01f;
}

/* Record the best face of k (quality, time, box, crop). */
static int note_best(mien_tracker *t, trk *k, const mien_image *img, const det *d, double ts) {
    if (k->pub.best_frame >= 0 && d->q <= k->pub.best_quality) return MIEN_OK;
    k->pub.best_quality = d->q;
    k->pub.best_s = ts;
    k->pub.best_frame = t->frame;
    memcpy(k->pub.best_box, d->f.box, sizeof k->pub.best_box);
    if (!t->o.keep_crops) return MIEN_OK;
    const float *b = d->f.box;
    float side = fmaxf(b[2], b[3]) * CROP_MARGIN, cx = b[0] + 0.5f * b[2], cy = b[1] + 0.5f * b[3];
    int x0 = (int)floorf(cx - 0.5f * side), y0 = (int)floorf(cy - 0.5f * side);
    int x1 = (int)ceilf(cx + 0.5f * side), y1 = (int)ceilf(cy + 0.5f * side);
    x0 = x0 < 0 ? 0 : x0;
    y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > img->width ? img->width : x1;
    y1 = y1 > img->height ? img->height : y1;
    if (x1 <= x0 || y1 <= y0) return MIEN_OK;
    mien_image c = {0};
    mien_err e = {0};
    int rc = img_crop(img, x0, y0, x1 - x0, y1 - y0, &c, &e);
    if (rc) return fail(t, rc, "%s", e.msg);
    mien_image_free(&k->crop);
    k->crop = c;
    return MIEN_OK;
}

/* Whether detection d, matched to born track k by overlap, shows someone else: a person
 * who stepped into the place of another, or a cut the histogram missed. The face is embedded
 * (every CHECK_GAP_S, and whenever the track wants a face anyway) and compared with the
 * track's faces: someone else when none of them reaches the threshold. */
static int check_identity(mien_tracker *t, trk *k, const mien_image *img, det *d, double ts,
                          int *other) {
    *other = 0;
    if (!t->embed || !k->n_faces) return MIEN_OK;
    const int due = ts - k->last_check_t >= CHECK_GAP_S && d->q >= CHECK_MIN_Q;
    if (!due && !want_face(t, k, d, ts)) return MIEN_OK;
    int rc = embed_det(t, img, d);
    if (rc || d->embedded != 1) return rc;
    k->last_check_t = ts;
    float best = -2.f;
    for (int i = 0; i < k->n_faces; i++)
        best = fmaxf(best, mien_similarity(k->emb + (size_t)i * t->dim, d->emb, t->dim));
    *other = best < t->thr;
    return MIEN_OK;
}

/* ==== Tracks ==== */

static trk *new_track(mien_tracker *t, const det *d, double ts) {
    if (t->n_tr == t->cap_tr) {
        int nc = t->cap_tr ? t->cap_tr * 2 : 16;
        trk **nb = realloc(t->tr, (size_t)nc * sizeof *nb);
        if (!nb) return NULL;
        t->tr = nb;
        t->cap_tr = nc;
    }
    trk *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    const float *b = d->f.box;
    float side = sqrtf(b[2] * b[3]);
    vid_kf_init(&k->kx, b[0] + 0.5f * b[2], powf(2.f * side / 20.f, 2), powf(10.f * side / 160.f, 2));
    vid_kf_init(&k->ky, b[1] + 0.5f * b[3], powf(2.f * side / 20.f, 2), powf(10.f * side / 160.f, 2));
    vid_kf_init(&k->ks, side, powf(2.f * side / 20.f, 2), powf(10.f * side / 160.f, 2));
    k->aspect = b[3] > 0 ? b[2] / b[3] : 1.f;
    k->state = TS_TENTATIVE;
    k->hits = 1;
    k->last_det_t = ts;
    k->last_embed_t = k->last_check_t = -INFINITY;
    k->matched = -1;
    k->updated = -1;
    set_name(k->pub.name, "unknown");
    k->pub.named_s = -1;
    k->pub.best_frame = -1;
    k->pub.start_s = k->pub.end_s = ts;
    k->pub.start_frame = k->pub.end_frame = t->frame;
    k->pub.frames = 1;
    k->pub.detections = 1;
    k->pub.score = d->f.score;
    trk_box(k, k->pub.box);
    t->tr[t->n_tr++] = k;
    return k;
}

/* Kalman correction with detection box b. */
static void trk_update(trk *k, const float b[4]) {
    float side = sqrtf(fmaxf(b[2] * b[3], 1e-6f)), r = powf(side / 20.f, 2);
    vid_kf_update(&k->kx, b[0] + 0.5f * b[2], r);
    vid_kf_update(&k->ky, b[1] + 0.5f * b[3], r);
    vid_kf_update(&k->ks, side, r);
    if (b[3] > 0) k->aspect = 0.7f * k->aspect + 0.3f * (b[2] / b[3]);
}

static void trk_predict(trk *k, float dt) {
    if (!(dt > 0)) return;
    float side = fmaxf(k->ks.x, 1.f);
    float qx = powf(side / 20.f, 2), qv = powf(side / 160.f, 2);
    vid_kf_predict(&k->kx, dt, qx, qv);
    vid_kf_predict(&k->ky, dt, qx, qv);
    vid_kf_predict(&k->ks, dt, qx, qv);
    if (k->ks.x < 1.f) k->ks.x = 1.f;
}

/* Remove tracks[i] (swap with the last), freeing it. */
static void drop_track(mien_tracker *t, int i) {
    trk_free(t->tr[i]);
    t->tr[i] = t->tr[--t->n_tr];
}

/* A track is born: an id, the event; its first face (when it has one) names it. */
static int birth(mien_tracker *t, trk *k, det *d, const mien_image *img, double ts) {
    /* The same face coming back after a short loss (an occlusion, a missed stretch): the
     * lost track that it matches takes it over. */
    if (t->embed && d->embedded == 1) {
        int best = -1;
        float best_sim = t->thr;
        for (int i = 0; i < t->n_tr; i++) {
            trk *l = t->tr[i];
            if (l->state != TS_LOST || !l->n_faces) continue;
            float sim = mien_similarity(l->mean, d->emb, t->dim);
            if (sim >= best_sim) best_sim = sim, best = i;
        }
        if (best >= 0) {
            trk *l = t->tr[best];
            l->kx = k->kx, l->ky = k->ky, l->ks = k->ks, l->aspect = k->aspect;
            l->state = TS_ACTIVE;
            l->detached = 0;
            l->last_det_t = ts;
            l->updated = t->frame;
            l->pub.detections += k->pub.detections;
            l->pub.frames += k->pub.frames;
            l->pub.end_s = ts;
            l->pub.end_frame = t->frame;
            l->pub.score = k->pub.score;
            k->state = TS_ENDED; /* removed by the caller */
            k->pub.id = 0;
            int rc = note_best(t, l, img, d, ts);
            if (!rc && want_face(t, l, d, ts)) rc = add_face(t, l, d, ts);
            return rc;
        }
    }
    k->state = TS_ACTIVE;
    k->pub.id = t->next_id++;
    int rc = emit(t, MIEN_EVENT_APPEARED, k, k->pub.start_s, k->pub.start_frame);
    if (!rc) rc = add_face(t, k, d, ts);
    return rc;
}

/* ==== One frame ==== */

static int ensure_dets(mien_tracker *t, int n) {
    if (n <= t->cap_dets) return MIEN_OK;
    det *nd = realloc(t->dets, (size_t)n * sizeof *nd);
    if (!nd) return fail(t, MIEN_ENOMEM, "out of memory");
    t->dets = nd;
    float *ne = realloc(t->det_emb, (size_t)n * (size_t)(t->dim ? t->dim : 1) * sizeof *ne);
    if (!ne) return fail(t, MIEN_ENOMEM, "out of memory");
    t->det_emb = ne;
    t->cap_dets = n;
    return MIEN_OK;
}

/* Cost of each (detection, track) pair: 1 - IoU, or `impossible` below min_iou; with
 * use_emb, pairs in an ambiguous overlap (a detection over two tracks, or a track under two
 * detections) also weigh the embedding similarity of the detection and the track's faces. */
static int pair_costs(mien_tracker *t, const mien_image *img, const int *idx, int nd, trk **tk,
                      int nt, float min_iou, int use_emb, float impossible, float *cost,
                      int *n_row, int *n_col) {
    for (int i = 0; i < nd; i++)
        for (int j = 0; j < nt; j++) {
            float iou = box_iou(t->dets[idx[i]].f.box, tk[j]->pub.box);
            int ok = iou >= min_iou;
            cost[(size_t)i * nt + j] = ok ? 1.f - iou : impossible;
            if (ok) n_row[i]++, n_col[j]++;
        }
    if (!use_emb || !t->embed) return MIEN_OK;
    for (int i = 0; i < nd; i++)
        for (int j = 0; j < nt; j++) {
            float *c = &cost[(size_t)i * nt + j];
            if (*c >= impossible || (n_row[i] < 2 && n_col[j] < 2) || !tk[j]->n_faces) continue;
            det *d = &t->dets[idx[i]];
            int rc = embed_det(t, img, d);
            if (rc) return rc;
            if (d->embedded != 1) continue;
            float sim = mien_similarity(tk[j]->mean, d->emb, t->dim);
            /* 0 for the same face, 0.5 at the threshold, 1 well below it. */
            float app = (1.f - sim) / (2.f * fmaxf(1.f - t->thr, 1e-3f));
            app = fminf(1.f, fmaxf(0.f, app));
            if (app >= 0.75f) *c = impossible;
            else *c = 0.5f * *c + 0.5f * app;
        }
    return MIEN_OK;
}

/* Match the detections idx[0..nd) to the tracks tk[0..nt), IoU at least min_iou (see
 * pair_costs). Marks the matches in trk->matched and taken[]. */
static int match_pass(mien_tracker *t, const mien_image *img, const int *idx, int nd, trk **tk,
                      int nt, float min_iou, int use_emb, char *taken) {
    if (!nd || !nt) return MIEN_OK;
    const float impossible = 1e6f;
    float *cost = malloc((size_t)nd * (size_t)nt * sizeof *cost);
    int *asg = malloc((size_t)nd * sizeof *asg);
    int *n_row = calloc((size_t)nd, sizeof *n_row), *n_col = calloc((size_t)nt, sizeof *n_col);
    int rc = MIEN_OK;
    if (!cost || !asg || !n_row || !n_col) rc = fail(t, MIEN_ENOMEM, "out of memory");
    if (!rc) rc = pair_costs(t, img, idx, nd, tk, nt, min_iou, use_emb, impossible, cost, n_row, n_col);
    if (!rc && vid_assign(cost, nd, nt, 1.f - min_iou, asg)) rc = fail(t, MIEN_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < nd; i++) {
        if (asg[i] < 0) continue;
        tk[asg[i]]->matched = idx[i];
        taken[idx[i]] = 1;
    }
    free(cost);
    free(asg);
    free(n_row);
    free(n_col);
    return rc;
}

static int by_det_score(const void *a, const void *b) {
    float x = ((const mien_face *)a)->score, y = ((const mien_face *)b)->score;
    return (x < y) - (x > y);
}

int vid_detect(mien_session *s, const mien_image *img, float min_score, mien_face **faces,
               int *n_faces) {
    mien_detect_options dopt;
    mien_detect_options_default(&dopt);
    dopt.min_score = min_score;
    return face_detect(s, img, &dopt, faces, n_faces);
}

/* Match this frame's detections (faces, nf: taken over, freed here) to the tracks. */
static int match_faces(mien_tracker *t, const mien_image *img, double ts, mien_face *faces, int nf) {
    int rc;
    if (nf > MAX_DETS) {
        qsort(faces, (size_t)nf, sizeof *faces, by_det_score);
        nf = MAX_DETS;
    }
    if ((rc = ensure_dets(t, nf ? nf : 1))) {
        free(faces);
        return rc;
    }
    int *hi = malloc((size_t)(nf ? nf : 1) * sizeof *hi), *lo = malloc((size_t)(nf ? nf : 1) * sizeof *lo);
    char *taken = calloc((size_t)(nf ? nf : 1), 1);
    trk **pool = malloc((size_t)(t->n_tr ? t->n_tr : 1) * sizeof *pool);
    if (!hi || !lo || !taken || !pool) {
        rc = fail(t, MIEN_ENOMEM, "out of memory");
        goto done;
    }
    int n_hi = 0, n_lo = 0;
    for (int i = 0; i < nf; i++) {
        det *d = &t->dets[i];
        memset(d, 0, sizeof *d);
        d->f = faces[i];
        d->q = face_quality(&d->f);
        d->emb = t->det_emb + (size_t)i * t->dim;
        if (faces[i].score >= t->o.high_score) hi[n_hi++] = i;
        else lo[n_lo++] = i;
    }
    for (int i = 0; i < t->n_tr; i++) t->tr[i]->matched = -1;

    /* 1. High detections and born tracks (live or lost). */
    int np = 0;
    for (int i = 0; i < t->n_tr; i++)
        if ((t->tr[i]->state == TS_ACTIVE || t->tr[i]->state == TS_LOST) && !t->tr[i]->detached)
            pool[np++] = t->tr[i];
    if ((rc = match_pass(t, img, hi, n_hi, pool, np, IOU_HIGH, 1, taken))) goto done;
    /* 2. Low detections and the live tracks left. */
    np = 0;
    for (int i = 0; i < t->n_tr; i++)
        if (t->tr[i]->state == TS_ACTIVE && t->tr[i]->matched < 0) pool[np++] = t->tr[i];
    if ((rc = match_pass(t, img, lo, n_lo, pool, np, IOU_LOW, 0, taken))) goto done;
    /* 3. Tracks not yet born and the high detections left. */
    int n_rest = 0;
    for (int i = 0; i < n_hi; i++)
        if (!taken[hi[i]]) hi[n_rest++] = hi[i];
    np = 0;
    for (int i = 0; i < t->n_tr; i++)
        if (t->tr[i]->state == TS_TENTATIVE) pool[np++] = t->tr[i];
    if ((rc = match_pass(t, img, hi, n_rest, pool, np, IOU_NEW, 0, taken))) goto done;

    /* Updates. Tracks created below are past n_old. */
    const int n_old = t->n_tr;
    for (int i = 0; i < n_old && !rc; i++) {
        trk *k = t->tr[i];
        if (k->state == TS_ENDED || k->updated == t->frame) continue;
        if (k->matched < 0) {
            if (k->state == TS_ACTIVE) {
                k->state = TS_LOST;
                k->kx.v = k->ky.v = k->ks.v = 0; /* a lost face waits where it was */
            }
            continue;
        }
        det *d = &t->dets[k->matched];
        int other = 0;
        if (k->state != TS_TENTATIVE && (rc = check_identity(t, k, img, d, ts, &other))) break;
        if (other) {
            /* Someone else under the track's box: the track is lost (it may come back by its
             * looks), a strong detection starts a new track. */
            if (k->state == TS_ACTIVE) k->state = TS_LOST;
            k->kx.v = k->ky.v = k->ks.v = 0;
            k->detached = 1;
            if (d->f.score >= t->o.high_score) {
                trk *n = new_track(t, d, ts);
                if (!n) {
                    rc = fail(t, MIEN_ENOMEM, "out of memory");
                    break;
                }
                n->matched = k->matched;
                if ((rc = note_best(t, n, img, d, ts))) break;
            }
            k->matched = -1;
            continue;
        }
        trk_update(k, d->f.box);
        trk_box(k, k->pub.box);
        k->last_det_t = ts;
        k->pub.score = d->f.score;
        k->pub.detections++;
        if (k->state == TS_TENTATIVE) {
            k->pub.frames++;
            k->pub.end_s = ts;
            k->pub.end_frame = t->frame;
            k->hits++;
        } else {
            k->state = TS_ACTIVE;
        }
        if ((rc = note_best(t, k, img, d, ts))) break;
        if (k->state == TS_TENTATIVE && k->hits >= t->o.min_hits) {
            /* Born only when the landmark network (if any) agrees it is a face. */
            if (t->embed) {
                if ((rc = embed_det(t, img, d))) break;
                if (d->embedded != 1 && sqrtf(d->f.box[2] * d->f.box[3]) >= t->o.min_face) {
                    k->hits = t->o.min_hits - 1; /* try again on its next detection */
                    continue;
                }
            }
            rc = birth(t, k, d, img, ts);
        } else if (k->state == TS_ACTIVE && want_face(t, k, d, ts)) {
            if (!(rc = embed_det(t, img, d))) rc = add_face(t, k, d, ts);
        }
    }
    /* 6. New tracks from the high detections nobody took. */
    for (int i = 0; i < n_rest && !rc; i++) {
        if (taken[hi[i]]) continue;
        int live = 0;
        for (int j = 0; j < t->n_tr; j++) live += t->tr[j]->state != TS_ENDED;
        if (live >= MAX_LIVE) break;
        trk *k = new_track(t, &t->dets[hi[i]], ts);
        if (k) k->matched = hi[i];
        if (!k) rc = fail(t, MIEN_ENOMEM, "out of memory");
        else rc = note_best(t, k, img, &t->dets[hi[i]], ts);
        if (!rc && k && t->o.min_hits <= 1) {
            if (t->embed && (rc = embed_det(t, img, &t->dets[hi[i]]))) break;
            rc = birth(t, k, &t->dets[hi[i]], img, ts);
        }
    }
done:
    free(faces);
    free(hi);
    free(lo);
    free(taken);
    free(pool);
    return rc;
}

/* End every track (a cut, the end of the input): born ones leave, others are forgotten. */
static int end_all(mien_tracker *t) {
    int rc = MIEN_OK;
    for (int i = 0; i < t->n_tr && !rc; i++) {
        trk *k = t->tr[i];
        if (k->state == TS_ACTIVE || k->state == TS_LOST) rc = end_track(t, k);
        else if (k->state == TS_TENTATIVE) k->state = TS_ENDED, k->pub.id = 0;
    }
    return rc;
}

/* Forget what ended in the previous push, and tracks that ended without being born. */
static void sweep(mien_tracker *t, int all_ended) {
    for (int i = 0; i < t->n_tr;) {
        trk *k = t->tr[i];
        if (k->state == TS_ENDED && (all_ended || k->pub.id == 0)) drop_track(t, i);
        else i++;
    }
}

static int list_active(mien_tracker *t) {
    t->n_active = 0;
    for (int i = 0; i < t->n_tr; i++) {
        const trk *k = t->tr[i];
        if (k->state != TS_ACTIVE) continue;
        if (t->n_active == t->cap_active) {
            int nc = t->cap_active ? t->cap_active * 2 : 16;
            mien_track *nb = realloc(t->active, (size_t)nc * sizeof *nb);
            if (!nb) return fail(t, MIEN_ENOMEM, "out of memory");
            t->active = nb;
            t->cap_active = nc;
        }
        t->active[t->n_active++] = k->pub;
    }
    return MIEN_OK;
}

/* One frame: faces (n >= 0) are its detections, given by the caller; n < 0 with
 * detect = -1: the tracker decides (detect_every, cuts) and runs its detector; n < 0 with
 * detect = 0: no detection on this frame. */
static int push_frame(mien_tracker *t, const mien_image *img, double ts, const mien_face *given,
                      int n_given, int detect, const mien_track_event **events, int *n_events) {
    if (events) *events = NULL;
    if (n_events) *n_events = 0;
    if (!t) return MIEN_EINVAL;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return fail(t, MIEN_EINVAL, "empty frame");
    if (!isfinite(ts) || ts < t->last_t)
        return fail(t, MIEN_EINVAL, "frame time %.3f s goes back (previous %.3f s)", ts, t->last_t);
    if (n_given > 0 && !given) return fail(t, MIEN_EINVAL, "no faces given");
    sweep(t, 1);
    t->n_ev = 0;
    int rc = MIEN_OK;
    const float dt = isfinite(t->last_t) ? (float)(ts - t->last_t) * REF_FPS : 0.f;

    /* A shot cut ends every track (and makes this a detection frame when the tracker
     * detects). */
    const int cut = vid_cut_check(&t->cuts, img, t->o.cut_threshold);
    if (cut && (rc = end_all(t))) return rc;

    for (int i = 0; i < t->n_tr; i++) {
        trk *k = t->tr[i];
        if (k->state == TS_ENDED) continue;
        trk_predict(k, dt);
        trk_box(k, k->pub.box);
    }
    if (n_given >= 0) detect = 1;
    else if (detect < 0)
        detect = cut || t->last_detect < 0 || t->frame - t->last_detect >= t->o.detect_every;
    if (detect) {
        t->last_detect = t->frame;
        mien_face *faces = NULL;
        int nf = 0;
        if (n_given >= 0) {
            /* The caller's detections, from low_score up, with a usable box. */
            faces = malloc((size_t)(n_given ? n_given : 1) * sizeof *faces);
            if (!faces) return fail(t, MIEN_ENOMEM, "out of memory");
            for (int i = 0; i < n_given; i++) {
                const float *b = given[i].box;
                if (given[i].score >= t->o.low_score && isfinite(b[0]) && isfinite(b[1]) &&
                    b[2] > 0 && b[3] > 0 && b[2] < 1e6f && b[3] < 1e6f)
                    faces[nf++] = given[i];
            }
        } else if ((rc = vid_detect(t->s, img, t->o.low_score, &faces, &nf))) {
            return fail(t, rc, "detect: %s", mien_errmsg(t->s));
        }
        if ((rc = match_faces(t, img, ts, faces, nf))) return rc;
        /* Lost too long: the track leaves. */
        for (int i = 0; i < t->n_tr && !rc; i++) {
            trk *k = t->tr[i];
            if (k->state == TS_LOST && ts - k->last_det_t > t->o.max_lost_s) rc = end_track(t, k);
            else if (k->state == TS_TENTATIVE && k->matched < 0) k->state = TS_ENDED, k->pub.id = 0;
        }
        if (rc) return rc;
    }
    for (int i = 0; i < t->n_tr; i++) {
        trk *k = t->tr[i];
        if (k->state != TS_ACTIVE) continue;
        if (k->pub.end_frame != t->frame) {
            k->pub.frames++;
            k->pub.end_s = ts;
            k->pub.end_frame = t->frame;
        }
    }
    sweep(t, 0);
    if ((rc = list_active(t))) return rc;
    t->last_t = ts;
    t->frame++;
    if (events) *events = t->ev;
    if (n_events) *n_events = t->n_ev;
    return MIEN_OK;
}

int mien_tracker_push(mien_tracker *t, const mien_image *img, double ts,
                      const mien_track_event **events, int *n_events) {
    return push_frame(t, img, ts, NULL, -1, -1, events, n_events);
}

int mien_tracker_push_faces(mien_tracker *t, const mien_image *img, double ts,
                            const mien_face *faces, int n_faces, const mien_track_event **events,
                            int *n_events) {
    return push_frame(t, img, ts, faces, n_faces < 0 ? -1 : n_faces, 0, events, n_events);
}

int mien_tracker_finish(mien_tracker *t, const mien_track_event **events, int *n_events) {
    if (events) *events = NULL;
    if (n_events) *n_events = 0;
    if (!t) return MIEN_EINVAL;
    sweep(t, 1);
    t->n_ev = 0;
    int rc = end_all(t);
    sweep(t, 0);
    t->n_active = 0;
    memset(&t->cuts, 0, sizeof t->cuts);
    t->last_detect = -1;
    if (rc) return rc;
    if (events) *events = t->ev;
    if (n_events) *n_events = t->n_ev;
    return MIEN_OK;
}

int mien_tracker_active(mien_tracker *t, const mien_track **tracks, int *n) {
    if (!t || !tracks || !n) return MIEN_EINVAL;
    *tracks = t->active;
    *n = t->n_active;
    return MIEN_OK;
}

static trk *find_track(mien_tracker *t, int id) {
    for (int i = 0; t && id > 0 && i < t->n_tr; i++)
        if (t->tr[i]->pub.id == id && t->tr[i]->state != TS_TENTATIVE) return t->tr[i];
    return NULL;
}

int mien_tracker_track(mien_tracker *t, int id, mien_track *out) {
    if (!t || !out) return MIEN_EINVAL;
    trk *k = find_track(t, id);
    if (!k) return fail(t, MIEN_ENOTFOUND, "no track %d", id);
    *out = k->pub;
    return MIEN_OK;
}

int mien_tracker_crop(mien_tracker *t, int id, mien_image *out) {
    if (!t || !out) return MIEN_EINVAL;
    memset(out, 0, sizeof *out);
    trk *k = find_track(t, id);
    if (!k) return fail(t, MIEN_ENOTFOUND, "no track %d", id);
    if (!k->crop.rgb) return fail(t, MIEN_ENOTFOUND, "track %d has no crop (keep_crops is off)", id);
    mien_err e = {0};
    int rc = img_crop(&k->crop, 0, 0, k->crop.width, k->crop.height, out, &e);
    if (rc) return fail(t, rc, "%s", e.msg);
    return MIEN_OK;
}
