/* The detection stage, the same for every detector of the table in detectors.c.
 *
 * The photo is letterboxed into the network input (aspect kept, centred, black borders) and
 * scaled as the detector wants it; the detector's decoder turns its outputs into candidate
 * boxes (with keypoints when it gives them) in image pixels, and its non-maximum suppression
 * merges the overlapping ones. BlazeFace's is MediaPipe's WEIGHTED suppression: every
 * candidate that overlaps the best remaining one by IoU > 0.3 is averaged into it, weighted by
 * score.
 *
 * A network sees faces down to some fraction of its input (BlazeFace: 1/16 of the
 * letterboxed side, its finest anchor stride). For large photos, tiling (o->tile) runs the
 * network also on overlapping tiles at finer scales and merges all candidates with the same
 * suppression. */
#include "face/face.h"
#include "face/onnx_models.h"
#include "image/image.h"
#include "nn/faceapi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDIDATES 20000
#define DET_TOP_K 1500

void mien_detect_options_default(mien_detect_options *o) {
    memset(o, 0, sizeof *o);
    o->min_score = 0.6f;
}

static float sigmoidf(float x) {
    if (x < -80.f) x = -80.f;
    if (x > 80.f) x = 80.f;
    return 1.f / (1.f + expf(-x));
}

/* ==== Candidates ==== */

/* From network input pixels to image pixels. */
typedef struct map { float ox, oy, sx, sy, cx0, cy0; } map;

static float map_x(const map *m, float u) { return (u - m->ox) / m->sx + m->cx0; }
static float map_y(const map *m, float v) { return (v - m->oy) / m->sy + m->cy0; }

typedef struct cands {
    det_cand *c;
    int n, cap;
} cands;

static det_cand *new_cand(mien_session *s, cands *cs) {
    if (cs->n == cs->cap && cs->cap >= MAX_CANDIDATES) {
        /* Full: keep the best DET_TOP_K (all NMS will look at) and go on. */
        face_sort_by_score(cs->c, cs->n, sizeof *cs->c);
        cs->n = DET_TOP_K;
    }
    if (cs->n == cs->cap) {
        int nc = cs->cap ? cs->cap * 2 : 256;
        det_cand *nb = realloc(cs->c, (size_t)nc * sizeof *nb);
        if (!nb) {
            mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
            return NULL;
        }
        cs->c = nb;
        cs->cap = nc;
    }
    det_cand *c = &cs->c[cs->n++];
    memset(c, 0, sizeof *c);
    return c;
}

/* A candidate box given in network input pixels (x0, y0, x1, y1). */
static det_cand *add_box(mien_session *s, cands *cs, const map *m, float score, float x0,
                         float y0, float x1, float y1) {
    det_cand *c = new_cand(s, cs);
    if (!c) return NULL;
    c->score = score;
    c->box[0] = map_x(m, x0);
    c->box[1] = map_y(m, y0);
    c->box[2] = map_x(m, x1);
    c->box[3] = map_y(m, y1);
    return c;
}

/* new_cand fails only when memory runs out. */
static int cand_status(mien_session *s) {
    return s->err.status == MIEN_ENOMEM ? MIEN_ENOMEM : MIEN_OK;
}

/* ==== Decoders ==== */

static int decode_blazeface(mien_session *s, const det_pass *d, nn_exec *x, const map *m,
                            float min_score, cands *cs) {
    int base = 0;
    /* Per layer, scores (N, 1) and regressors (N, 16); or one (N, 17) output of both. */
    const int combined = d->out[1] < 0;
    for (int layer = 0; layer < (combined ? 1 : 2); layer++) {
        const float *sc = nn_exec_output(x, d->out[2 * layer]);
        const float *rg = combined ? sc + 1 : nn_exec_output(x, d->out[2 * layer + 1]);
        const size_t ss = combined ? 17 : 1, rs = combined ? 17 : 16;
        const int n = combined ? d->n_anchors : d->layer_anchors[layer];
        for (int a = 0; a < n; a++) {
            float score = sigmoidf(sc[(size_t)a * ss]);
            if (score < min_score) continue;
            const float *r = rg + (size_t)a * rs;
            const det_anchor *an = &d->anchors[base + a];
            float bx = r[0] + an->cx, by = r[1] + an->cy, bw = r[2], bh = r[3];
            det_cand *c = add_box(s, cs, m, score, bx - bw * 0.5f, by - bh * 0.5f,
                                  bx + bw * 0.5f, by + bh * 0.5f);
            if (!c) return cand_status(s);
            c->n_kp = 6;
            for (int k = 0; k < 6; k++) {
                c->kp[k][0] = map_x(m, r[4 + 2 * k] + an->cx);
                c->kp[k][1] = map_y(m, r[5 + 2 * k] + an->cy);
            }
        }
        base += n;
    }
    return MIEN_OK;
}

static int decode_faceapi_ssd(mien_session *s, const det_pass *d, nn_exec *x, const map *m,
                              float min_score, cands *cs) {
    const float S = (float)d->w;
    float *boxes = malloc((size_t)NN_FACEAPI_SSD_ANCHORS * 5 * sizeof *boxes);
    if (!boxes) return mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
    float *scores = boxes + (size_t)NN_FACEAPI_SSD_ANCHORS * 4;
    nn_faceapi_ssd_decode(nn_exec_output(x, 0), nn_exec_output(x, 1), d->ssd_anchors, boxes,
                          scores);
    for (int a = 0; a < NN_FACEAPI_SSD_ANCHORS; a++) {
        if (!(scores[a] >= min_score)) continue;
        const float *b = boxes + (size_t)a * 4; /* ymin, xmin, ymax, xmax of the input */
        if (!add_box(s, cs, m, scores[a], b[1] * S, b[0] * S, b[3] * S, b[2] * S)) break;
    }
    free(boxes);
    return cand_status(s);
}

/* UltraFace: softmax scores (N, 2), offsets (N, 4) on the priors, variances 0.1 and 0.2. */
static int decode_ultraface(mien_session *s, const det_pass *d, nn_exec *x, const map *m,
                            float min_score, cands *cs) {
    const float *sc = nn_exec_output(x, d->out[0]), *lc = nn_exec_output(x, d->out[1]);
    for (int a = 0; a < d->n_anchors; a++) {
        float score = sc[2 * a + 1];
        if (!(score >= min_score)) continue;
        const float *l = lc + (size_t)a * 4;
        const det_anchor *p = &d->anchors[a];
        float cx = p->cx + l[0] * 0.1f * p->w, cy = p->cy + l[1] * 0.1f * p->h;
        float w = p->w * expf(fminf(l[2] * 0.2f, 20.f)), h = p->h * expf(fminf(l[3] * 0.2f, 20.f));
        if (!add_box(s, cs, m, score, cx - w * 0.5f, cy - h * 0.5f, cx + w * 0.5f, cy + h * 0.5f))
            break;
    }
    return cand_status(s);
}

/* ==== Running the network on a region ==== */

/* Run the detector on the region (x0, y0, rw, rh) of img, letterboxed (centred) into the
 * network input; the region may extend past the image (black there). Appends candidates
 * scoring at least min_score. */
static int detect_region(mien_session *s, int pass, const mien_image *img, float x0, float y0,
                         float rw, float rh, float min_score, cands *cs) {
    const det_pass *d = &s->m->det.pass[pass];
    nn_exec *x = s->det[pass];
    const det_spec *sp = d->spec;
    const int W = d->w, H = d->h;
    float *in = nn_exec_input(x, 0);
    const float scale = fminf((float)W / rw, (float)H / rh);
    /* The part of the region inside the image, resized by scale. */
    int cx0 = (int)floorf(fmaxf(x0, 0.f)), cy0 = (int)floorf(fmaxf(y0, 0.f));
    int cx1 = (int)ceilf(fminf(x0 + rw, (float)img->width));
    int cy1 = (int)ceilf(fminf(y0 + rh, (float)img->height));
    if (cx1 <= cx0 || cy1 <= cy0) return MIEN_OK;
    mien_image crop = {0}, small = {0};
    const mien_image *src = img;
    int rc;
    if (cx0 != 0 || cy0 != 0 || cx1 != img->width || cy1 != img->height) {
        if ((rc = img_crop(img, cx0, cy0, cx1 - cx0, cy1 - cy0, &crop, &s->err))) return rc;
        src = &crop;
    }
    int sw = (int)lroundf((float)src->width * scale), sh = (int)lroundf((float)src->height * scale);
    sw = sw < 1 ? 1 : sw > W ? W : sw;
    sh = sh < 1 ? 1 : sh > H ? H : sh;
    if ((rc = img_resize(src, sw, sh, &small, &s->err))) {
        mien_image_free(&crop);
        return rc;
    }
    mien_image_free(&crop);
    /* Where the resized part sits in the network input: the region centred. */
    const float padx = ((float)W - rw * scale) * 0.5f, pady = ((float)H - rh * scale) * 0.5f;
    int ox = (int)lroundf(((float)cx0 - x0) * scale + padx);
    int oy = (int)lroundf(((float)cy0 - y0) * scale + pady);
    ox = ox < 0 ? 0 : ox + sw > W ? W - sw : ox;
    oy = oy < 0 ? 0 : oy + sh > H ? H - sh : oy;
    const float pa = sp->scale, pb = -sp->mean * sp->scale;
    for (int i = 0; i < W * H * 3; i++) in[i] = pb;
    for (int y = 0; y < sh; y++) {
        const uint8_t *p = small.rgb + (size_t)y * sw * 3;
        float *q = in + ((size_t)(y + oy) * W + ox) * 3;
        for (int k = 0; k < sw * 3; k++) q[k] = (float)p[k] * pa + pb;
    }
    mien_image_free(&small);
    if ((rc = nn_exec_run(x, &s->err))) return rc;

    /* Network input pixel u -> image x = (u - ox) / sx + cx0: the resized part maps image
     * pixel c to input pixel (c - cx0) * (sw / crop_w) + ox. */
    const map m = {(float)ox, (float)oy, (float)sw / (float)(cx1 - cx0),
                   (float)sh / (float)(cy1 - cy0), (float)cx0, (float)cy0};
    switch (sp->decoder) {
    case DEC_BLAZEFACE: return decode_blazeface(s, d, x, &m, min_score, cs);
    case DEC_FACEAPI_SSD: return decode_faceapi_ssd(s, d, x, &m, min_score, cs);
    case DEC_ULTRAFACE: return decode_ultraface(s, d, x, &m, min_score, cs);
    }
    return mien_err_set(&s->err, MIEN_EINTERNAL, "detector %s: no decoder", sp->name);
}

/* Largest first (by box area), for max_faces. */
static int by_area_desc(const void *a, const void *b) {
    const mien_face *x = a, *y = b;
    float ax = x->box[2] * x->box[3], ay = y->box[2] * y->box[3];
    return (ax < ay) - (ax > ay);
}

static int by_face_score_desc(const void *a, const void *b) {
    float x = ((const mien_face *)a)->score, y = ((const mien_face *)b)->score;
    return (x < y) - (x > y);
}

int face_detect(mien_session *s, const mien_image *img, const mien_detect_options *opt,
                mien_face **faces, int *n_faces) {
    *faces = NULL;
    *n_faces = 0;
    mien_detect_options def;
    if (!opt) {
        mien_detect_options_default(&def);
        opt = &def;
    }
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mien_err_set(&s->err, MIEN_EINVAL, "detect: empty image");
    if (s->m->det.onnx) /* SCRFD, YuNet: their own letterbox, decoding and NMS */
        return onnx_face_detect(s->m->det.onnx, s->det[0], img, opt, faces, n_faces, &s->err);
    const det_model *d = &s->m->det;
    const det_spec *sp = d->spec;
    const float W = (float)img->width, H = (float)img->height;
    cands cs = {0};
    int rc;
    /* Weighted suppression blends candidates from the detector's own threshold whatever the
     * reporting one (BlazeFace: MediaPipe's 0.5), so that the caller's min_score, applied to
     * the merged faces, decides which faces are reported, not where they are. */
    const float cand_min = sp->nms == DET_NMS_WEIGHTED ? fminf(opt->min_score, sp->blend_min)
                                                       : opt->min_score;
    /* Each pass on the whole photo, letterboxed (centred). */
    rc = MIEN_OK;
    for (int p = 0; p < d->n_pass && !rc; p++)
        rc = detect_region(s, p, img, 0, 0, W, H, cand_min, &cs);
    /* Tiles of the first pass's aspect: halve their size down to 1.4 times the network
     * input, with a quarter overlap so a face too small for the coarser level lies wholly
     * inside some tile. Measured by bench/tiling.py: 9 of 43 small faces without tiles, 42
     * with. */
    const det_pass *p0 = &d->pass[0];
    const float k0 = fmaxf(W / (float)p0->w, H / (float)p0->h); /* photo pixels per input pixel */
    for (float k = k0 / 2; !rc && opt->tile && k >= 1.4f; k /= 2) {
        const float tw = k * (float)p0->w, th = k * (float)p0->h;
        for (float ty = 0; !rc; ty += th * 0.75f) {
            float y0 = fminf(ty, fmaxf(H - th, 0.f));
            for (float tx = 0; !rc; tx += tw * 0.75f) {
                float x0 = fminf(tx, fmaxf(W - tw, 0.f));
                rc = detect_region(s, 0, img, x0, y0, tw, th, cand_min, &cs);
                if (x0 + tw >= W) break;
            }
            if (y0 + th >= H) break;
        }
    }
    if (rc) {
        free(cs.c);
        return rc;
    }
    det_cand *c = cs.c;
    /* The best DET_TOP_K candidates only: at low thresholds (evaluations) a convolutional
     * detector scores thousands of tiny priors just above it, which NMS would compare with
     * each other (n^2) to no effect on any real face. */
    if (cs.n > DET_TOP_K) {
        face_sort_by_score(c, cs.n, sizeof *c);
        cs.n = DET_TOP_K;
    }
    int n = sp->nms == DET_NMS_WEIGHTED ? face_nms_weighted(c, cs.n, sp->nms_iou)
                                        : face_nms_hard(c, cs.n, sizeof *c, sp->nms_iou);
    mien_face *out = n < 0 ? NULL : calloc((size_t)(n ? n : 1), sizeof *out);
    if (!out) {
        free(c);
        return mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        mien_face *f = &out[k];
        f->box[0] = c[i].box[0];
        f->box[1] = c[i].box[1];
        f->box[2] = c[i].box[2] - c[i].box[0];
        f->box[3] = c[i].box[3] - c[i].box[1];
        if (fmaxf(f->box[2], f->box[3]) < opt->min_size || f->box[2] <= 0 || f->box[3] <= 0 ||
            c[i].score < opt->min_score)
            continue;
        f->score = c[i].score;
        k++;
        if (c[i].n_kp != 6) continue; /* boxes only: a landmark network fills the points */
        f->n_landmarks = 6;
        memcpy(f->landmarks, c[i].kp, sizeof c[i].kp);
        /* Alignment points: eyes, nose, mouth centre (no mouth corners from BlazeFace). */
        f->n_points = 4;
        for (int p = 0; p < 4; p++) {
            f->points[p][0] = c[i].kp[p][0];
            f->points[p][1] = c[i].kp[p][1];
        }
        f->points[4][0] = c[i].kp[3][0];
        f->points[4][1] = c[i].kp[3][1];
    }
    free(c);
    if (opt->max_faces > 0 && k > opt->max_faces) {
        qsort(out, (size_t)k, sizeof *out, by_area_desc);
        k = opt->max_faces;
    }
    qsort(out, (size_t)k, sizeof *out, by_face_score_desc);
    *faces = out;
    *n_faces = k;
    return MIEN_OK;
}
