/* The detectors mien knows: one row each (how the network is loaded, its input, its decoder,
 * its non-maximum suppression, how landmark crops frame its boxes), and opening one.
 *
 * BlazeFace (MediaPipe, human-models' TFJS conversion): a square input, 896 anchors on a
 * 16x16 grid (2 per cell) and an 8x8 grid (6 per cell), centres at cell centres, fixed size:
 * each anchor's 16 regressors are the box centre offset and size in input pixels, then six
 * keypoints as offsets from the anchor centre. Scores are logits.
 *
 * face-api's SSD MobileNetV1: 512x512, raw pixels (the graph scales them), 5118 anchors
 * (nn/faceapi.c), TF Object Detection's box coder.
 *
 * UltraFace (Ultra-Light-Fast-Generic-Face-Detector-1MB, the RFB model faceplugin ships as
 * fr_detect.onnx, exported at 320x240): RGB (x - 127) / 128; 4 levels at strides 8, 16, 32,
 * 64 with 3, 2, 2, 3 priors per cell of sides {10, 16, 24}, {32, 48}, {64, 96},
 * {128, 192, 256} pixels, on maps of ceil(size / stride) cells whose centres are spread
 * evenly over the input, rows, then columns, then sides (the project's generate_priors and
 * fd_config.py; relative sizes clamped to 1). Outputs: softmax scores
 * (N, 2) and SSD box offsets (N, 4), decoded with variances 0.1 and 0.2. The file also holds
 * the decoding with the 320x240 priors as constants; the graph is cut before it ("scores" and
 * the concatenated offsets, value "462"), so the network runs at any size with priors made for
 * that size. */
#include "face/face.h"
#include "face/onnx_models.h"
#include "nn/faceapi.h"
#include "nn/onnx.h"
#include "nn/tfjs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const det_spec det_specs[] = {
    {.name = "blazeface", .file = "human/blazeface.json", .loader = DL_TFJS, .w = 256, .h = 256,
     .mean = 127.5f, .scale = 1.f / 127.5f, .decoder = DEC_BLAZEFACE, .grid = {16, 8},
     .per_cell = {2, 6}, .nms = DET_NMS_WEIGHTED, .nms_iou = 0.3f, .blend_min = 0.5f, .n_kp = 6,
     .mesh_roi = 1.5f, .lm68_roi = 1.2f,
     .source = "MediaPipe BlazeFace, back-camera model (human-models)"},
    {.name = "blazeface-front", .file = "human/blazeface-front.json", .loader = DL_TFJS, .w = 128,
     .h = 128, .mean = 127.5f, .scale = 1.f / 127.5f, .decoder = DEC_BLAZEFACE, .grid = {16, 8},
     .per_cell = {2, 6}, .nms = DET_NMS_WEIGHTED, .nms_iou = 0.3f, .blend_min = 0.5f, .n_kp = 6,
     .mesh_roi = 1.5f, .lm68_roi = 1.2f,
     .source = "MediaPipe BlazeFace, front-camera model (human-models)"},
    /* MediaPipe's face detection models as human-models ships them for its face mesh: the
     * short-range one (BlazeFace-front's anchors) and the full-range one (192x192, one 48x48
     * layer of anchors at stride 4), each one (N, 17) output: score logit, then BlazeFace's
     * 16 regressors. */
    {.name = "mediapipe-short", .file = "human/facemesh-detection-short.json", .loader = DL_TFJS,
     .w = 128, .h = 128, .mean = 127.5f, .scale = 1.f / 127.5f, .decoder = DEC_BLAZEFACE,
     .grid = {16, 8}, .per_cell = {2, 6}, .nms = DET_NMS_WEIGHTED, .nms_iou = 0.3f,
     .blend_min = 0.5f, .n_kp = 6, .mesh_roi = 1.5f, .lm68_roi = 1.2f,
     .source = "MediaPipe face detection, short range (human-models facemesh-detection-short)"},
    {.name = "mediapipe-full", .file = "human/facemesh-detection-full.json", .loader = DL_TFJS,
     .w = 192, .h = 192, .mean = 127.5f, .scale = 1.f / 127.5f, .decoder = DEC_BLAZEFACE,
     .grid = {48, 0}, .per_cell = {1, 0}, .nms = DET_NMS_WEIGHTED, .nms_iou = 0.3f,
     .blend_min = 0.5f, .n_kp = 6, .mesh_roi = 1.5f, .lm68_roi = 1.2f,
     .source = "MediaPipe face detection, full range (human-models facemesh-detection-full)"},
    /* face-api crops its SSD's (looser) boxes as they are for its 68-point net. */
    {.name = "ssd", .file = "faceapi/ssd_mobilenetv1_model-weights_manifest.json",
     .loader = DL_FACEAPI_SSD, .w = NN_FACEAPI_SSD_SIZE, .h = NN_FACEAPI_SSD_SIZE, .mean = 0.f,
     .scale = 1.f, .decoder = DEC_FACEAPI_SSD, .nms = DET_NMS_HARD, .nms_iou = 0.5f,
     .mesh_roi = 1.5f, .lm68_roi = 1.f, .source = "face-api SSD MobileNetV1"},
    {.name = "ultraface", .file = "faceplugin/fr_detect.onnx", .loader = DL_ONNX,
     .outputs = {"scores", "462"}, .w = 640, .h = 480, .resizable = 1, .mean = 127.f,
     .scale = 1.f / 128.f, .decoder = DEC_ULTRAFACE, .nms = DET_NMS_WEIGHTED, .nms_iou = 0.3f,
     .blend_min = 0.5f,
     /* Its boxes are taller than BlazeFace's (forehead to chin): on 400 LFW photos
      * (lfw_5pt_train.txt) their longer side is 1.35 times BlazeFace's and their centre
      * 0.105 box heights higher; these crops frame the faces as BlazeFace's 1.5 and 1.2 do. */
     .mesh_roi = 1.11f, .lm68_roi = 0.89f, .roi_dy = 0.105f,
     .source = "UltraFace RFB (faceplugin fr_detect.onnx)"},
};

const char *face_detector_names(void) {
    return "blazeface, blazeface-front, mediapipe-short, mediapipe-full, ssd, ultraface (NAME@W "
           "or NAME@WxH resizes it), scrfd, yunet, and A+B to merge detectors";
}

/* "NAME", "NAME@W" (the default aspect kept) or "NAME@WxH". */
static const det_spec *parse_name(const char *cfg, int *w, int *h, mien_err *e) {
    const char *at = strchr(cfg, '@');
    size_t n = at ? (size_t)(at - cfg) : strlen(cfg);
    const det_spec *sp = NULL;
    for (size_t i = 0; i < sizeof det_specs / sizeof det_specs[0]; i++)
        if (strlen(det_specs[i].name) == n && !strncmp(det_specs[i].name, cfg, n)) sp = &det_specs[i];
    if (!sp) {
        mien_err_set(e, MIEN_ENOTFOUND, "unknown detector '%s' (known: %s)", cfg,
                     face_detector_names());
        return NULL;
    }
    *w = sp->w;
    *h = sp->h;
    if (!at) return sp;
    if (!sp->resizable) {
        mien_err_set(e, MIEN_EINVAL, "detector %s runs at %dx%d only", sp->name, sp->w, sp->h);
        return NULL;
    }
    char *end;
    long a = strtol(at + 1, &end, 10), b = -1;
    if (*end == 'x') b = strtol(end + 1, &end, 10);
    if (end == at + 1 || *end || a < 32 || a > 4096 || (b != -1 && (b < 32 || b > 4096))) {
        mien_err_set(e, MIEN_EINVAL, "detector '%s': expected %s@W or %s@WxH (32 to 4096 pixels)",
                     cfg, sp->name, sp->name);
        return NULL;
    }
    *w = (int)a;
    *h = b > 0 ? (int)b : (int)lroundf((float)a * (float)sp->h / (float)sp->w);
    return sp;
}

/* BlazeFace and MediaPipe's other face detectors: the score and regressor outputs, found by
 * shape (per anchor layer, (N, 1) and (N, 16); or one (N, 17) output of both, score first,
 * as the face mesh's detectors give them), and MediaPipe's anchors (fixed size; centres at
 * cell centres). */
static int setup_blazeface(det_pass *d, mien_err *e) {
    const nn_graph *g = d->g;
    const det_spec *sp = d->spec;
    int n = 0;
    for (int l = 0; l < 2; l++) {
        d->layer_anchors[l] = sp->grid[l] * sp->grid[l] * sp->per_cell[l];
        n += d->layer_anchors[l];
        d->out[2 * l] = d->out[2 * l + 1] = -1;
    }
    int combined = -1;
    for (int i = g->n_outputs - 1; i >= 0; i--) { /* the first one wins */
        const nn_tensor *t = &g->t[g->outputs[i]];
        if (t->ndim != 3) continue;
        if (t->dims[1] == n && t->dims[2] == 17) combined = i;
        for (int l = 0; l < 2; l++) {
            if (t->dims[1] != d->layer_anchors[l]) continue;
            if (t->dims[2] == 1) d->out[2 * l] = i;
            if (t->dims[2] == 16) d->out[2 * l + 1] = i;
        }
    }
    if (combined >= 0) {
        d->out[0] = combined;
        d->out[1] = d->out[2] = d->out[3] = -1;
    } else {
        for (int l = 0; l < 2; l++)
            if (d->layer_anchors[l] && (d->out[2 * l] < 0 || d->out[2 * l + 1] < 0))
                return mien_err_set(e, MIEN_EFORMAT, "%s: outputs are not BlazeFace's", sp->file);
    }
    d->n_anchors = n;
    d->anchors = calloc((size_t)d->n_anchors, sizeof *d->anchors);
    if (!d->anchors) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int k = 0;
    for (int l = 0; l < 2; l++) {
        if (!sp->grid[l]) continue;
        float stride = (float)d->w / (float)sp->grid[l];
        for (int y = 0; y < sp->grid[l]; y++)
            for (int x = 0; x < sp->grid[l]; x++)
                for (int a = 0; a < sp->per_cell[l]; a++, k++) {
                    d->anchors[k].cx = ((float)x + 0.5f) * stride;
                    d->anchors[k].cy = ((float)y + 0.5f) * stride;
                }
    }
    return MIEN_OK;
}

/* UltraFace's priors for a w x h input (see the top of the file). */
static int setup_ultraface(det_pass *d, mien_err *e) {
    static const int strides[4] = {8, 16, 32, 64}, n_sides[4] = {3, 2, 2, 3};
    static const float sides[4][3] = {{10, 16, 24}, {32, 48, 0}, {64, 96, 0}, {128, 192, 256}};
    int n = 0;
    for (int l = 0; l < 4; l++)
        n += ((d->w + strides[l] - 1) / strides[l]) * ((d->h + strides[l] - 1) / strides[l]) * n_sides[l];
    const nn_graph *g = d->g;
    if (g->n_outputs != 2 || g->t[g->outputs[0]].n != (int64_t)n * 2 || g->t[g->outputs[1]].n != (int64_t)n * 4)
        return mien_err_set(e, MIEN_EFORMAT, "%s: outputs are not UltraFace's (%d priors at %dx%d)",
                            d->spec->file, n, d->w, d->h);
    d->out[0] = 0;
    d->out[1] = 1;
    d->n_anchors = n;
    d->anchors = malloc((size_t)n * sizeof *d->anchors);
    if (!d->anchors) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    const float W = (float)d->w, H = (float)d->h;
    int k = 0;
    for (int l = 0; l < 4; l++) {
        const int s = strides[l], fw = (d->w + s - 1) / s, fh = (d->h + s - 1) / s;
        for (int y = 0; y < fh; y++)
            for (int x = 0; x < fw; x++)
                for (int a = 0; a < n_sides[l]; a++, k++) {
                    /* generate_priors: centres spread evenly over the input (its
                     * shrinkage is size / map size), [cx, cy, w, h] / size clamped to 1 */
                    d->anchors[k].cx = fminf(((float)x + 0.5f) * W / (float)fw, W);
                    d->anchors[k].cy = fminf(((float)y + 0.5f) * H / (float)fh, H);
                    d->anchors[k].w = fminf(sides[l][a], W);
                    d->anchors[k].h = fminf(sides[l][a], H);
                }
    }
    return MIEN_OK;
}

/* One pass: the row cfg names ("NAME" or "NAME@SIZE"), loaded at its size. */
static int open_pass(const char *dir, const char *cfg, det_pass *d, mien_err *e) {
    int w, h;
    const det_spec *sp = parse_name(cfg, &w, &h, e);
    if (!sp) return e->status;
    d->spec = sp;
    d->w = w;
    d->h = h;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sp->file);
    int rc;
    if (sp->loader == DL_TFJS) {
        int64_t dims[4] = {1, h, w, 3};
        rc = nn_tfjs_load(path, dims, NULL, 0, &d->g, e);
    } else if (sp->loader == DL_FACEAPI_SSD) {
        rc = nn_faceapi_ssd_load(path, &d->g, e);
    } else {
        int64_t dims[4] = {1, 3, h, w};
        int n_out = sp->outputs[1] ? 2 : 1;
        rc = nn_onnx_load_outputs(path, dims, sp->outputs[0] ? sp->outputs : NULL,
                                  sp->outputs[0] ? n_out : 0, &d->g, e);
    }
    if (rc) return rc;
    switch (sp->decoder) {
    case DEC_BLAZEFACE: return setup_blazeface(d, e);
    case DEC_ULTRAFACE: return setup_ultraface(d, e);
    case DEC_FACEAPI_SSD:
        d->ssd_anchors = malloc((size_t)NN_FACEAPI_SSD_ANCHORS * 4 * sizeof(float));
        if (!d->ssd_anchors) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        nn_faceapi_ssd_anchors(d->ssd_anchors);
        return MIEN_OK;
    }
    return mien_err_set(e, MIEN_EINTERNAL, "detector %s: no decoder", sp->name);
}

int face_detector_open(const char *dir, const char *cfg_name, det_model *d, mien_err *e) {
    memset(d, 0, sizeof *d);
    if (onnx_is_detector(cfg_name)) /* scrfd, yunet: onnx_models.c */
        return onnx_detector_open(dir, cfg_name, &d->g, &d->onnx, &d->name, &d->size, e);
    /* "A+B+...": passes merged by one NMS */
    char buf[256];
    if (strlen(cfg_name) >= sizeof buf)
        return mien_err_set(e, MIEN_EINVAL, "detector name too long: %.40s...", cfg_name);
    snprintf(buf, sizeof buf, "%s", cfg_name);
    char *save = NULL;
    for (char *t = strtok_r(buf, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
        if (d->n_pass == DET_MAX_PASSES)
            return mien_err_set(e, MIEN_EINVAL, "detector '%s': at most %d passes", cfg_name,
                                DET_MAX_PASSES);
        det_pass *p = &d->pass[d->n_pass++];
        int rc = open_pass(dir, t, p, e);
        if (rc) return rc;
        if (p->w > d->size) d->size = p->w;
        if (p->h > d->size) d->size = p->h;
    }
    if (!d->n_pass) return mien_err_set(e, MIEN_EINVAL, "no detector named");
    d->spec = d->pass[0].spec;
    d->name = d->spec->name;
    d->g = d->pass[0].g;
    return MIEN_OK;
}

void face_detector_close(det_model *d) {
    for (int i = 0; i < d->n_pass; i++) {
        nn_graph_free(d->pass[i].g);
        free(d->pass[i].anchors);
        free(d->pass[i].ssd_anchors);
    }
    if (d->onnx) nn_graph_free(d->g);
    onnx_det_free(d->onnx);
    memset(d, 0, sizeof *d);
}
