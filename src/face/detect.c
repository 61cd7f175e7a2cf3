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

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NMS_IOU 0.3f
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

static float iou(const float *a, const float *b) {
    float ix0 = fmaxf(a[0], b[0]), iy0 = fmaxf(a[1], b[1]);
    float ix1 = fminf(a[2], b[2]), iy1 = fminf(a[3], b[3]);
    float iw = fmaxf(ix1 - ix0, 0.f), ih = fmaxf(iy1 - iy0, 0.f), inter = iw * ih;
    float ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return ua > 0 ? inter / ua : 0.f;
}

static int by_score_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->score, y = ((const cand *)b)->score;
    return (x < y) - (x > y);
}

/* MediaPipe's WEIGHTED non-max suppression, in place: returns the number kept. */
static int weighted_nms(cand *c, int n) {
    qsort(c, (size_t)n, sizeof *c, by_score_desc);
    char *used = calloc((size_t)(n ? n : 1), 1);
    if (!used) return 0;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (used[i]) continue;
        cand acc = {0};
        float wsum = 0;
        for (int j = i; j < n; j++) {
            if (used[j] || (j != i && iou(c[i].box, c[j].box) <= NMS_IOU)) continue;
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
    for (int i = 0; i < S * S * 3; i++) in[i] = -1.f;
    for (int y = 0; y < rh; y++) {
        const uint8_t *p = small.rgb + (size_t)y * rw * 3;
        float *q = in + ((size_t)(y + oy) * S + ox) * 3;
        for (int k = 0; k < rw * 3; k++) q[k] = (float)p[k] * (1.f / 127.5f) - 1.f;
    }
    mien_image_free(&small);
    if ((rc = nn_exec_run(s->det, &s->err))) return rc;

    /* Network input pixel (u, v) -> image (x0 + (u - ox) / sx + cx0 - x0 ...): the resized
     * crop maps crop pixel c to input pixel c * (rw / crop_w) + ox. */
    const float sx = (float)rw / (float)(cx1 - cx0), sy = (float)rh / (float)(cy1 - cy0);
    int base = 0;
    for (int layer = 0; layer < 2; layer++) {
        const float *sc = nn_exec_output(s->det, dm->out_score[layer]);
        const float *rg = nn_exec_output(s->det, dm->out_reg[layer]);
        for (int a = 0; a < dm->layer_anchors[layer]; a++) {
            float score = sigmoidf(sc[a]);
            if (score < min_score) continue;
            const float *r = rg + (size_t)a * 16;
            const bf_anchor *an = &dm->anchors[base + a];
            if (*n == *cap) {
                if (*cap >= MAX_CANDIDATES) break;
                int nc = *cap ? *cap * 2 : 256;
                cand *nb = realloc(*cands, (size_t)nc * sizeof *nb);
                if (!nb) return mien_err_set(&s->err, MIEN_ENOMEM, "out of memory");
                *cands = nb;
                *cap = nc;
            }
            cand *c = &(*cands)[(*n)++];
            float bx = r[0] + an->cx, by = r[1] + an->cy, bw = r[2], bh = r[3];
            c->score = score;
            c->box[0] = (bx - bw * 0.5f - (float)ox) / sx + (float)cx0;
            c->box[1] = (by - bh * 0.5f - (float)oy) / sy + (float)cy0;
            c->box[2] = (bx + bw * 0.5f - (float)ox) / sx + (float)cx0;
            c->box[3] = (by + bh * 0.5f - (float)oy) / sy + (float)cy0;
            for (int k = 0; k < 6; k++) {
                c->kp[k][0] = (r[4 + 2 * k] + an->cx - (float)ox) / sx + (float)cx0;
                c->kp[k][1] = (r[5 + 2 * k] + an->cy - (float)oy) / sy + (float)cy0;
            }
        }
        base += dm->layer_anchors[layer];
    }
    return MIEN_OK;
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
    /* The whole photo, letterboxed (centred). */
    rc = detect_region(s, img, (W - side) * 0.5f, (H - side) * 0.5f, side, opt->min_score, &c,
                       &n, &cap);
    /* Tiles: halve the tile side down to 1.4 times the network input, with a quarter overlap
     * so a face too small for the coarser level lies wholly inside some tile. Measured by
     * bench/tiling.py: 9 of 43 small faces without tiles, 42 with. */
    for (float t = side / 2; !rc && opt->tile && t >= 1.4f * (float)S; t /= 2) {
        float step = t * 0.75f;
        for (float ty = 0; !rc; ty += step) {
            float y0 = fminf(ty, fmaxf(H - t, 0.f));
            for (float tx = 0; !rc; tx += step) {
                float x0 = fminf(tx, fmaxf(W - t, 0.f));
                rc = detect_region(s, img, x0, y0, t, opt->min_score, &c, &n, &cap);
                if (x0 + t >= W) break;
            }
            if (y0 + t >= H) break;
        }
    }
    if (rc) {
        free(c);
        return rc;
    }
    n = weighted_nms(c, n);
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
        if (fmaxf(f->box[2], f->box[3]) < opt->min_size || f->box[2] <= 0 || f->box[3] <= 0)
            continue;
        f->score = c[i].score;
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
