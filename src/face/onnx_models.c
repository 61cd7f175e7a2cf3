/* SCRFD and YuNet detectors, ArcFace and SFace embedders from ONNX files (see the header).
 *
 * SCRFD (InsightFace, insightface/model_zoo/scrfd.py):
 *   input    RGB, (x - 127.5) / 128, NCHW; the photo letterboxed at the top-left of the
 *            square input (640 for buffalo_l's det_10g.onnx), aspect kept, zeros elsewhere.
 *   outputs  in file order: scores of every level, then boxes, then keypoints (6 outputs
 *            without keypoints, 9 with; 10 or 15 for the 5-level models), each (N, k) or
 *            batched (1, N, k), N = (H/s) * (W/s) * anchors, anchors fastest, then x, then y.
 *            Scores are probabilities (the sigmoid is in the graph).
 *   decoding anchor centre (x * s, y * s) (no half-cell offset); box = centre -/+ distances
 *            (left, top, right, bottom) times s; keypoint i = centre + (dx, dy) times s.
 *            Hard NMS at IoU 0.4; default threshold 0.5.
 * YuNet (OpenCV zoo 2023mar, OpenCV's FaceDetectorYN):
 *   input    BGR, raw 0..255, NCHW, padded to a multiple of 32 at the bottom/right.
 *   outputs  named cls_8/16/32, obj_8/16/32, bbox_8/16/32, kps_8/16/32: (1, N, 1|1|4|10),
 *            N = (H/s) * (W/s), x fastest.
 *   decoding score = sqrt(clamp(cls) * clamp(obj)); box centre ((c + dx) s, (r + dy) s),
 *            size (exp(dw) s, exp(dh) s); keypoint i = ((c + kx) s, (r + ky) s), in the
 *            order right eye, left eye, nose tip, right mouth corner, left mouth corner of the
 *            subject (image order: left to right on a frontal face). Hard NMS at IoU 0.3;
 *            default threshold 0.9.
 * ArcFace (w600k_r50.onnx): 112x112 RGB on the ArcFace 5-point crop, (x - 127.5) / 127.5,
 *   512-d output. SFace: 112x112 RGB on the same crop, raw 0..255 (OpenCV's
 *   FaceRecognizerSF: blobFromImage(crop, 1, (112, 112), 0, swapRB=true)), 128-d. Both are
 *   compared by cosine of L2-normalised outputs. These two need no code beyond the loader:
 *   their rows in models.c give the normalisation. */
#include "face/onnx_models.h"
#include "image/image.h"
#include "nn/onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CANDIDATES 20000

/* ==== Opening ==== */

/* Elements of graph output k, 0 if k is not an output. */
static int64_t out_n(const nn_graph *g, int k) {
    return k >= 0 && k < g->n_outputs ? g->t[g->outputs[k]].n : 0;
}

static int find_output(const nn_graph *g, const char *name) {
    for (int k = 0; k < g->n_outputs; k++)
        if (!strcmp(g->t[g->outputs[k]].name, name)) return k;
    return -1;
}

static int scrfd_outputs(const nn_graph *g, onnx_det *d, mien_err *e) {
    int n = g->n_outputs;
    /* InsightFace's rule: the number of outputs gives the levels and the anchors. */
    if (n == 6 || n == 9) {
        d->n_levels = 3;
        d->anchors = 2;
    } else if (n == 10 || n == 15) {
        d->n_levels = 5;
        d->anchors = 1;
    } else {
        return mien_err_set(e, MIEN_EFORMAT, "%d outputs: not an SCRFD detector (6, 9, 10 or 15)", n);
    }
    d->has_kps = n == 9 || n == 15;
    const int L = d->n_levels;
    for (int l = 0; l < L; l++) {
        d->strides[l] = 8 << l;
        d->out_score[l] = l;
        d->out_bbox[l] = l + L;
        d->out_kps[l] = d->has_kps ? l + 2 * L : -1;
        d->out_obj[l] = -1;
        int64_t cells = (int64_t)(d->h / d->strides[l]) * (d->w / d->strides[l]) * d->anchors;
        if (out_n(g, d->out_score[l]) != cells || out_n(g, d->out_bbox[l]) != cells * 4 ||
            (d->has_kps && out_n(g, d->out_kps[l]) != cells * 10))
            return mien_err_set(e, MIEN_EFORMAT,
                                "output sizes do not match SCRFD's layout at stride %d (%lld "
                                "locations x %d anchors expected)", d->strides[l],
                                (long long)(cells / d->anchors), d->anchors);
    }
    d->nms_iou = 0.4f;
    return MIEN_OK;
}

static int yunet_outputs(const nn_graph *g, onnx_det *d, mien_err *e) {
    static const char *const kinds[4] = {"cls", "obj", "bbox", "kps"};
    static const int width[4] = {1, 1, 4, 10};
    d->n_levels = 3;
    d->anchors = 1;
    d->has_kps = 1;
    for (int l = 0; l < 3; l++) {
        d->strides[l] = 8 << l;
        int64_t cells = (int64_t)(d->h / d->strides[l]) * (d->w / d->strides[l]);
        int *slot[4] = {&d->out_score[l], &d->out_obj[l], &d->out_bbox[l], &d->out_kps[l]};
        for (int k = 0; k < 4; k++) {
            char name[32];
            snprintf(name, sizeof name, "%s_%d", kinds[k], d->strides[l]);
            *slot[k] = find_output(g, name);
            if (*slot[k] < 0)
                return mien_err_set(e, MIEN_EFORMAT, "no output named %s: not a YuNet detector "
                                    "(face_detection_yunet_2023mar.onnx)", name);
            if (out_n(g, *slot[k]) != cells * width[k])
                return mien_err_set(e, MIEN_EFORMAT, "output %s has %lld values, expected %lld",
                                    name, (long long)out_n(g, *slot[k]),
                                    (long long)(cells * width[k]));
        }
    }
    d->nms_iou = 0.3f;
    return MIEN_OK;
}

int onnx_det_open(const char *path, onnx_det_kind kind, int w, int h, nn_graph **g,
                  onnx_det **out, mien_err *e) {
    *g = NULL;
    *out = NULL;
    if (w < 32 || h < 32 || w % 32 || h % 32 || w > 4096 || h > 4096)
        return mien_err_set(e, MIEN_EINVAL, "detector input %dx%d: not a multiple of 32", w, h);
    onnx_det *d = calloc(1, sizeof *d);
    if (!d) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    d->kind = kind;
    d->w = w;
    d->h = h;
    int64_t dims[4] = {1, 3, h, w};
    int rc = nn_onnx_load(path, dims, g, e);
    if (!rc) rc = kind == ONNX_DET_SCRFD ? scrfd_outputs(*g, d, e) : yunet_outputs(*g, d, e);
    if (rc) {
        if (!strstr(e->msg, path)) mien_err_prefix(e, "%s", path);
        nn_graph_free(*g);
        *g = NULL;
        free(d);
        return rc;
    }
    *out = d;
    return MIEN_OK;
}

void onnx_det_free(onnx_det *d) { free(d); }

/* ==== Decoding ==== */

static float clamp01(float v) { return v < 0.f ? 0.f : v > 1.f ? 1.f : v; }

int onnx_det_decode(const onnx_det *d, const float *const *outs, float min_score,
                    onnx_cand *c, int cap) {
    int n = 0;
    for (int l = 0; l < d->n_levels; l++) {
        const int s = d->strides[l], fw = d->w / s, fh = d->h / s, A = d->anchors;
        const float fs = (float)s;
        const float *sc = outs[d->out_score[l]], *bb = outs[d->out_bbox[l]];
        const float *kp = d->out_kps[l] >= 0 ? outs[d->out_kps[l]] : NULL;
        const float *ob = d->out_obj[l] >= 0 ? outs[d->out_obj[l]] : NULL;
        for (int y = 0; y < fh; y++)
            for (int x = 0; x < fw; x++)
                for (int a = 0; a < A; a++) {
                    const size_t i = ((size_t)y * fw + x) * A + a;
                    float score = d->kind == ONNX_DET_YUNET
                                      ? sqrtf(clamp01(sc[i]) * clamp01(ob[i]))
                                      : sc[i];
                    if (!(score >= min_score)) continue;
                    if (n == cap) return n;
                    onnx_cand *o = &c[n++];
                    const float *b = bb + 4 * i;
                    o->score = score;
                    if (d->kind == ONNX_DET_YUNET) {
                        float cx = ((float)x + b[0]) * fs, cy = ((float)y + b[1]) * fs;
                        float bw = expf(fminf(b[2], 20.f)) * fs, bh = expf(fminf(b[3], 20.f)) * fs;
                        o->box[0] = cx - bw * 0.5f;
                        o->box[1] = cy - bh * 0.5f;
                        o->box[2] = cx + bw * 0.5f;
                        o->box[3] = cy + bh * 0.5f;
                        for (int k = 0; k < 5; k++) {
                            o->kps[k][0] = ((float)x + kp[10 * i + 2 * k]) * fs;
                            o->kps[k][1] = ((float)y + kp[10 * i + 2 * k + 1]) * fs;
                        }
                    } else {
                        const float cx = (float)x * fs, cy = (float)y * fs;
                        o->box[0] = cx - b[0] * fs;
                        o->box[1] = cy - b[1] * fs;
                        o->box[2] = cx + b[2] * fs;
                        o->box[3] = cy + b[3] * fs;
                        for (int k = 0; k < 5; k++) {
                            o->kps[k][0] = kp ? cx + kp[10 * i + 2 * k] * fs : cx;
                            o->kps[k][1] = kp ? cy + kp[10 * i + 2 * k + 1] * fs : cy;
                        }
                    }
                }
    }
    return n;
}

int onnx_det_nms(onnx_cand *c, int n, float thr) {
    return face_nms_hard(c, n, sizeof *c, thr); /* nms.c: the one NMS of every detector */
}

/* ==== The detection stage ==== */

int onnx_det_run(const onnx_det *d, nn_exec *x, const mien_image *img, float min_score,
                 mien_face **faces, int *n_faces, mien_err *e) {
    *faces = NULL;
    *n_faces = 0;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return mien_err_set(e, MIEN_EINVAL, "detect: empty image");
    /* Letterbox at the top-left, as insightface's SCRFD.detect (and a padded YuNet input). */
    const float scale = fminf((float)d->w / (float)img->width, (float)d->h / (float)img->height);
    int rw = (int)((float)img->width * scale), rh = (int)((float)img->height * scale);
    rw = rw < 1 ? 1 : rw > d->w ? d->w : rw;
    rh = rh < 1 ? 1 : rh > d->h ? d->h : rh;
    mien_image small = {0};
    const mien_image *src = img;
    int rc;
    if (rw != img->width || rh != img->height) {
        if ((rc = img_resize(img, rw, rh, &small, e))) return rc;
        src = &small;
    }
    const int scrfd = d->kind == ONNX_DET_SCRFD;
    const float pad = scrfd ? -127.5f / 128.f : 0.f;
    float *in = nn_exec_input(x, 0); /* NHWC */
    for (size_t i = 0; i < (size_t)d->w * d->h * 3; i++) in[i] = pad;
    for (int y = 0; y < rh; y++) {
        const uint8_t *p = src->rgb + (size_t)y * rw * 3;
        float *q = in + (size_t)y * d->w * 3;
        for (int k = 0; k < rw; k++, p += 3, q += 3) {
            if (scrfd) {
                for (int ch = 0; ch < 3; ch++) q[ch] = ((float)p[ch] - 127.5f) * (1.f / 128.f);
            } else { /* BGR, raw */
                q[0] = p[2];
                q[1] = p[1];
                q[2] = p[0];
            }
        }
    }
    mien_image_free(&small);
    if ((rc = nn_exec_run(x, e))) return rc;
    const nn_graph *g = nn_exec_graph(x);
    const float *outs[16];
    for (int k = 0; k < g->n_outputs && k < 16; k++) outs[k] = nn_exec_output(x, k);
    onnx_cand *c = malloc(MAX_CANDIDATES * sizeof *c);
    if (!c) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int n = onnx_det_decode(d, outs, min_score, c, MAX_CANDIDATES);
    n = onnx_det_nms(c, n, d->nms_iou);
    mien_face *f = calloc((size_t)(n ? n : 1), sizeof *f);
    if (!f) {
        free(c);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    /* Network pixels -> image pixels: the resized photo spans rw x rh input pixels. */
    const float sx = (float)img->width / (float)rw, sy = (float)img->height / (float)rh;
    for (int i = 0; i < n; i++) {
        mien_face *o = &f[i];
        o->box[0] = c[i].box[0] * sx;
        o->box[1] = c[i].box[1] * sy;
        o->box[2] = (c[i].box[2] - c[i].box[0]) * sx;
        o->box[3] = (c[i].box[3] - c[i].box[1]) * sy;
        o->score = c[i].score;
        o->n_landmarks = d->has_kps ? 5 : 0;
        o->n_points = d->has_kps ? 5 : 0;
        for (int k = 0; k < 5; k++) {
            o->landmarks[k][0] = o->points[k][0] = c[i].kps[k][0] * sx;
            o->landmarks[k][1] = o->points[k][1] = c[i].kps[k][1] * sy;
        }
    }
    free(c);
    *faces = f;
    *n_faces = n;
    return MIEN_OK;
}

/* ==== Embedders ==== */

int onnx_embedder_load(const char *path, int size, nn_graph **g, mien_err *e) {
    int64_t dims[4] = {1, 3, size, size};
    int rc = nn_onnx_load(path, dims, g, e);
    if (rc) return rc;
    const nn_tensor *t = &(*g)->t[(*g)->outputs[0]];
    if ((*g)->n_outputs != 1 || t->n != t->dims[t->ndim - 1] || t->n < 2 || t->n > 65536) {
        nn_graph_free(*g);
        *g = NULL;
        return mien_err_set(e, MIEN_EFORMAT, "%s: not an embedder (expected one (1, D) output)",
                            path);
    }
    return MIEN_OK;
}

/* ==== Hooks for the model table ==== */

int onnx_name_matches(const char *name, const char *cfg_name) {
    size_t n = strlen(name);
    return cfg_name && !strncmp(cfg_name, name, n) && (cfg_name[n] == '\0' || cfg_name[n] == ':');
}

void onnx_model_file(const char *dir, const char *default_file, const char *cfg_name,
                     char *path, size_t cap) {
    const char *colon = cfg_name ? strchr(cfg_name, ':') : NULL;
    if (colon && colon[1]) snprintf(path, cap, "%s", colon + 1);
    else snprintf(path, cap, "%s/%s", dir ? dir : ".", default_file);
}

static const struct {
    const char *name, *file;
    onnx_det_kind kind;
    int size;
} det_rows[] = {
    {"scrfd", "insightface/det_10g.onnx", ONNX_DET_SCRFD, 640},
    {"yunet", "opencv/face_detection_yunet_2023mar.onnx", ONNX_DET_YUNET, 640},
};

int onnx_is_detector(const char *cfg_name) {
    for (size_t i = 0; i < sizeof det_rows / sizeof det_rows[0]; i++)
        if (onnx_name_matches(det_rows[i].name, cfg_name)) return 1;
    return 0;
}

int onnx_detector_open(const char *dir, const char *cfg_name, nn_graph **g, onnx_det **d,
                       const char **name, int *size, mien_err *e) {
    for (size_t i = 0; i < sizeof det_rows / sizeof det_rows[0]; i++) {
        if (!onnx_name_matches(det_rows[i].name, cfg_name)) continue;
        char path[4096];
        onnx_model_file(dir, det_rows[i].file, cfg_name, path, sizeof path);
        *name = det_rows[i].name;
        *size = det_rows[i].size;
        return onnx_det_open(path, det_rows[i].kind, det_rows[i].size, det_rows[i].size, g, d, e);
    }
    return mien_err_set(e, MIEN_ENOTFOUND, "%s is not an ONNX detector", cfg_name);
}

static int by_area_desc(const void *a, const void *b) {
    const mien_face *x = a, *y = b;
    float ax = x->box[2] * x->box[3], ay = y->box[2] * y->box[3];
    return (ax < ay) - (ax > ay);
}

static int by_face_score_desc(const void *a, const void *b) {
    float x = ((const mien_face *)a)->score, y = ((const mien_face *)b)->score;
    return (x < y) - (x > y);
}

int onnx_face_detect(const onnx_det *d, nn_exec *x, const mien_image *img,
                     const mien_detect_options *o, mien_face **faces, int *n_faces, mien_err *e) {
    int rc = onnx_det_run(d, x, img, o->min_score, faces, n_faces, e);
    if (rc) return rc;
    mien_face *f = *faces;
    int k = 0;
    for (int i = 0; i < *n_faces; i++)
        if (f[i].box[2] > 0 && f[i].box[3] > 0 && fmaxf(f[i].box[2], f[i].box[3]) >= o->min_size)
            f[k++] = f[i];
    if (o->max_faces > 0 && k > o->max_faces) {
        qsort(f, (size_t)k, sizeof *f, by_area_desc);
        k = o->max_faces;
    }
    qsort(f, (size_t)k, sizeof *f, by_face_score_desc);
    *n_faces = k;
    return MIEN_OK;
}
