/* Face detection with MediaPipe BlazeFace (human-models' TFJS conversion).
 *
 * The photo is letterboxed into the square network input (aspect kept, black borders),
 * scaled to [-1, 1]. The network scores 896 SSD anchors on two layers: a 16x16 grid with 2
 * anchors per cell and an 8x8 grid with 6. With MediaPipe's fixed anchor size, each anchor's
 * 16 regressors are, in input pixels: box centre offset (x, y), box size (w, h), then six
 * keypoints (x, y) as offsets from the anchor centre: the two eye centres, nose tip, mouth
 * centre and the two ear tragions. Scores are logits. Overlapping detections are merged by
 * MediaPipe's weighted non-maximum suppression: every candidate that overlaps the best
 * remaining one by IoU > 0.3 is averaged into it, weighted by score.
 *
 * Faces smaller than about 1/16 of the letterboxed side are below what the network can see
 * (its finest anchor stride is side/16). For large photos, tiling (o->tile) runs the network
 * also on overlapping square tiles at finer scales and merges all detections with the same
 * weighted NMS. */
#include "face/face.h"
#include "face/onnx_models.h"
#include "image/image.h"
#include "nn/faceapi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NMS_IOU 0.3f
/* BlazeFace anchors are blended by the weighted NMS from this score up (MediaPipe's
 * min_score_thresh for this model), whatever the reporting threshold: the caller's
 * min_score is applied to the merged faces, so raising it drops weak faces without moving
 * the boxes and landmarks of the others. */
#define BLAZE_BLEND_MIN_SCORE 0.5f
#define MAX_CANDIDATES 20000

typedef struct cand {
    float score;
    float box[4];            /* x0, y0, x1, y1 in image pixels */
    float kp[6][2];
} cand;

void mien_detect_options_default(mien_detect_options *o) {
    memset(o, 0, sizeof *o);
    o->min_score = 0.6f;
}

static float sigmoidf(float x) {
    if (x < -80.f) x = -80.f;
    if (x > 80.f) x = 80.f;
    return 1.f / (1.f + expf(-x));
}

static int by_score_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->score, y = ((const cand *)b)->score;
    return (x < y) - (x > y);
}

/* MediaPipe's WEIGHTED non-max suppression, in place: returns the number kept. */
static int weighted_nms(cand *c, int n) {
    if (n > 1) qsort(c, (size_t)n, sizeof *c, by_score_desc); /* c is NULL when n is 0 */
    char *used = calloc((size_t)(n ? n : 1), 1);
    if (!used) return 0;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (used[i]) continue;
        cand acc = {0};
        float wsum = 0;
        for (int j = i; j < n; j++) {
            if (used[j] || (j != i && face_iou(c[i].box, c[j].box) <= NMS_IOU)) continue;
            used[j] = 1;
            float w = c[j].score;
            wsum += w;
            for (int k = 0; k < 4; k++) acc.box[k] += w * c[j].box[k];
            for (int k = 0; k < 6; k++) {
                acc.kp[k][0] += w * c[j].kp[k][0];
                acc.kp[k][1] += w * c[j].kp[k][1];
            }
        }
        for (int k = 0; k < 4; k++) acc.box[k] /= wsum;
        for (int k = 0; k < 6; k++) {
            acc.kp[k][0] /= wsum;
            acc.kp[k][1] /= wsum;
        }
        acc.score = c[i].score;
        c[kept++] = acc;  /* kept <= i, so this never overwrites an unread candidate */
    }
    free(used);
    return kept;
}

/* From network input pixels to image pixels. */
typedef struct map { float ox, oy, sx, sy, cx0, cy0; } map;

static float map_x(const map *m, float u) { return (u - m->ox) / m->sx + m->cx0; }
static float map_y(const map *m, float v) { return (v - m->oy) / m->sy + m->cy0; }

static cand *new_cand(mien_session *s, cand **cands, int *n, int *cap) {
    if (*n == *cap) {
        if (*cap >= MAX_CANDIDATES) return NULL;
        int nc = *cap ? *cap * 2 : 256;
        cand *nb = realloc(*cands, (size_t)nc * sizeof *nb);
        if (!nb) {
            mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
            return NULL;
        }
        *cands = nb;
        *cap = nc;
    }
    cand *c = &(*cands)[(*n)++];
    memset(c, 0, sizeof *c);
    return c;
}

static int decode_blazeface(mien_session *s, const map *m, float min_score, cand **cands,
                            int *n, int *cap) {
    const det_model *dm = &s->m->det;
    int base = 0;
    for (int layer = 0; layer < 2; layer++) {
        const float *sc = nn_exec_output(s->det, dm->out_score[layer]);
        const float *rg = nn_exec_output(s->det, dm->out_reg[layer]);
        for (int a = 0; a < dm->layer_anchors[layer]; a++) {
            float score = sigmoidf(sc[a]);
            if (score < min_score) continue;
            const float *r = rg + (size_t)a * 16;
            const bf_anchor *an = &dm->anchors[base + a];
            cand *c = new_cand(s, cands, n, cap);
            if (!c) return s->err.status == MIEN_ENOMEM ? MIEN_ENOMEM : MIEN_OK;
            float bx = r[0] + an->cx, by = r[1] + an->cy, bw = r[2], bh = r[3];
            c->score = score;
            c->box[0] = map_x(m, bx - bw * 0.5f);
            c->box[1] = map_y(m, by - bh * 0.5f);
            c->box[2] = map_x(m, bx + bw * 0.5f);
            c->box[3] = map_y(m, by + bh * 0.5f);
            for (int k = 0; k < 6; k++) {
                c->kp[k][0] = map_x(m, r[4 + 2 * k] + an->cx);
                c->kp[k][1] = map_y(m, r[5 + 2 * k] + an->cy);
            }
        }
        base += dm->layer_anchors[layer];
    }
    return MIEN_OK;
}

static int decode_ssd(mien_session *s, const map *m, float min_score, cand **cands, int *n,
                      int *cap) {
    const det_model *dm = &s->m->det;
    const float S = (float)dm->size;
    float *boxes = malloc((size_t)NN_FACEAPI_SSD_ANCHORS * 5 * sizeof *boxes);
    if (!boxes) return mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
    float *scores = boxes + (size_t)NN_FACEAPI_SSD_ANCHORS * 4;
    nn_faceapi_ssd_decode(nn_exec_output(s->det, 0), nn_exec_output(s->det, 1), dm->ssd_anchors,
                          boxes, scores);
    for (int a = 0; a < NN_FACEAPI_SSD_ANCHORS; a++) {
        if (!(scores[a] >= min_score)) continue;
        cand *c = new_cand(s, cands, n, cap);
        if (!c) break;
        const float *b = boxes + (size_t)a * 4; /* ymin, xmin, ymax, xmax of the input */
        c->score = scores[a];
        c->box[0] = map_x(m, b[1] * S);
        c->box[1] = map_y(m, b[0] * S);
        c->box[2] = map_x(m, b[3] * S);
        c->box[3] = map_y(m, b[2] * S);
    }
    free(boxes);
    return s->err.status == MIEN_ENOMEM ? MIEN_ENOMEM : MIEN_OK;
}

/* Greedy (hard) non-maximum suppression, as face-api does for its SSD. */
static int hard_nms(cand *c, int n, float thr) {
    if (n > 1) qsort(c, (size_t)n, sizeof *c, by_score_desc); /* c is NULL when n is 0 */
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int ok = 1;
        for (int k = 0; k < kept && ok; k++) ok = face_iou(c[k].box, c[i].box) <= thr;
        if (ok) c[kept++] = c[i];
    }
    return kept;
}

/* Run the detector on the square region (x0, y0, side) of img (which may extend past the
 * image: it is letterboxed with black), appending candidates above min_score. */
static int detect_region(mien_session *s, const mien_image *img, float x0, float y0,
                         float side, float min_score, cand **cands, int *n, int *cap) {
    const det_model *dm = &s->m->det;
    const int S = dm->size;
    float *in = nn_exec_input(s->det, 0);
    /* Crop of the region, clipped to the image, resized so the region's side becomes S. */
    float scale = (float)S / side;
    int cx0 = (int)floorf(fmaxf(x0, 0.f)), cy0 = (int)floorf(fmaxf(y0, 0.f));
    int cx1 = (int)ceilf(fminf(x0 + side, (float)img->width));
    int cy1 = (int)ceilf(fminf(y0 + side, (float)img->height));
    if (cx1 <= cx0 || cy1 <= cy0) return MIEN_OK;
    mien_image crop = {0}, small = {0};
    const mien_image *src = img;
    int rc;
    if (cx0 != 0 || cy0 != 0 || cx1 != img->width || cy1 != img->height) {
        if ((rc = img_crop(img, cx0, cy0, cx1 - cx0, cy1 - cy0, &crop, &s->err))) return rc;
        src = &crop;
    }
    int rw = (int)lroundf((float)src->width * scale), rh = (int)lroundf((float)src->height * scale);
    rw = rw < 1 ? 1 : rw > S ? S : rw;
    rh = rh < 1 ? 1 : rh > S ? S : rh;
    if ((rc = img_resize(src, rw, rh, &small, &s->err))) {
        mien_image_free(&crop);
        return rc;
    }
    mien_image_free(&crop);
    /* Where the resized crop sits in the network input. */
    int ox = (int)lroundf(((float)cx0 - x0) * scale), oy = (int)lroundf(((float)cy0 - y0) * scale);
    if (ox + rw > S) ox = S - rw;
    if (oy + rh > S) oy = S - rh;
    /* BlazeFace takes pixels scaled to [-1, 1]; the SSD graph scales raw pixels itself. */
    const int ssd = dm->kind == DET_SSD;
    const float pa = ssd ? 1.f : 1.f / 127.5f, pb = ssd ? 0.f : -1.f;
    for (int i = 0; i < S * S * 3; i++) in[i] = pb;
    for (int y = 0; y < rh; y++) {
        const uint8_t *p = small.rgb + (size_t)y * rw * 3;
        float *q = in + ((size_t)(y + oy) * S + ox) * 3;
        for (int k = 0; k < rw * 3; k++) q[k] = (float)p[k] * pa + pb;
    }
    mien_image_free(&small);
    if ((rc = nn_exec_run(s->det, &s->err))) return rc;

    /* Network input pixel u -> image x = (u - ox) / sx + cx0: the resized crop maps crop
     * pixel c to input pixel c * (rw / crop_w) + ox. */
    const map m = {(float)ox, (float)oy, (float)rw / (float)(cx1 - cx0),
                   (float)rh / (float)(cy1 - cy0), (float)cx0, (float)cy0};
    return ssd ? decode_ssd(s, &m, min_score, cands, n, cap)
               : decode_blazeface(s, &m, min_score, cands, n, cap);
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
        return onnx_face_detect(s->m->det.onnx, s->det, img, opt, faces, n_faces, &s->err);
    const float W = (float)img->width, H = (float)img->height, side = fmaxf(W, H);
    const int S = s->m->det.size;
    cand *c = NULL;
    int n = 0, cap = 0, rc;
    const float cand_min = s->m->det.kind == DET_SSD ? opt->min_score
                                                     : fminf(opt->min_score, BLAZE_BLEND_MIN_SCORE);
    /* The whole photo, letterboxed (centred). */
    rc = detect_region(s, img, (W - side) * 0.5f, (H - side) * 0.5f, side, cand_min, &c, &n,
                       &cap);
    /* Tiles: halve the tile side down to 1.4 times the network input, with a quarter overlap
     * so a face too small for the coarser level lies wholly inside some tile. Measured by
     * bench/tiling.py: 9 of 43 small faces without tiles, 42 with. */
    for (float t = side / 2; !rc && opt->tile && t >= 1.4f * (float)S; t /= 2) {
        float step = t * 0.75f;
        for (float ty = 0; !rc; ty += step) {
            float y0 = fminf(ty, fmaxf(H - t, 0.f));
            for (float tx = 0; !rc; tx += step) {
                float x0 = fminf(tx, fmaxf(W - t, 0.f));
                rc = detect_region(s, img, x0, y0, t, cand_min, &c, &n, &cap);
                if (x0 + t >= W) break;
            }
            if (y0 + t >= H) break;
        }
    }
    if (rc) {
        free(c);
        return rc;
    }
    n = s->m->det.kind == DET_SSD ? hard_nms(c, n, 0.5f) : weighted_nms(c, n);
    mien_face *out = calloc((size_t)(n ? n : 1), sizeof *out);
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
        if (s->m->det.kind == DET_SSD) { /* boxes only: a landmark network fills the points */
            k++;
            continue;
        }
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
        k++;
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
