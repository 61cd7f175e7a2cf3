/* Internal structure of the face pipeline: the model set, sessions, and the stage functions
 * (detect, landmarks, align, embed) behind the public API of mien.h. */
#ifndef MIEN_FACE_H
#define MIEN_FACE_H

#include "core/err.h"
#include "mien.h"
#include "nn/exec.h"
#include "nn/graph.h"

/* ==== Detector: MediaPipe BlazeFace ==== */

typedef struct bf_anchor {
    float cx, cy;            /* anchor centre, in pixels of the network input */
} bf_anchor;

typedef enum det_kind {
    DET_BLAZEFACE,           /* MediaPipe BlazeFace: box + 6 keypoints, weighted NMS */
    DET_SSD,                 /* face-api's SSD MobileNetV1: box only, hard NMS */
} det_kind;

typedef struct det_model {
    const char *name;        /* "blazeface", "blazeface-front" or "ssd" */
    det_kind kind;
    nn_graph *g;
    int size;                /* network input side: 256 (back model) or 128 (front model) */
    int n_anchors;           /* 896 */
    bf_anchor *anchors;      /* (n_anchors) */
    /* Graph outputs: scores (n,1) and regressors (n,16) of the two anchor layers. */
    int out_score[2], out_reg[2], layer_anchors[2];
    float *ssd_anchors;      /* DET_SSD: (5118, 4) ymin, xmin, ymax, xmax relative to the input */
    struct onnx_det *onnx;   /* SCRFD or YuNet from an ONNX file (onnx_models.c), else NULL */
} det_model;

/* ==== Landmark refinement ==== */

typedef enum lm_kind {
    LM_NONE = 0,             /* the detector's keypoints */
    LM_FACEMESH,             /* MediaPipe face mesh, 468 points, 192x192 */
    LM_68,                   /* face-api's 68-point net (iBUG 300-W order), 112x112 */
    LM_68_TINY,              /* face-api's tiny 68-point net */
    LM_MESH68,               /* both the mesh (lm) and the 68-point net (lm2), points averaged */
} lm_kind;

typedef struct lm_model {
    lm_kind kind;
    nn_graph *g;
    int size;                /* network input side */
    int out_points;          /* graph output index of the points */
    int out_flag;            /* facemesh: graph output of the face-presence score, else -1 */
} lm_model;

/* ==== Embedder ==== */

typedef struct emb_model {
    const char *name;        /* "mobilefacenet" */
    nn_graph *g;
    int size;                /* input side (112) */
    int dim;                 /* embedding size (192) */
    float mean, scale;       /* input = (pixel - mean) * scale */
    float threshold;         /* default cosine threshold for "same" */
    /* Where the 5 alignment points (eye, eye, nose tip, mouth corner, mouth corner; image
     * order) go in the crop, in crop pixels with centres at +0.5. */
    float tmpl[5][2];
    /* dlib chips: with 68 landmarks, fit dlib's own point set (27-67 without the lower lip)
     * onto its mean face, as dlib's get_face_chip_details does. */
    int dlib_chip;
} emb_model;

struct mien_models {
    mien_config cfg;
    char errmsg[2048];       /* long enough for every place a search looked at */
    char dir[4096];          /* the folder the models came from */
    det_model det;
    lm_model lm;             /* lm.g NULL when landmarks = "none" */
    lm_model lm2;            /* LM_MESH68: the 68-point net; else lm2.g NULL */
    emb_model emb;
    /* A fused recognizer ("dlib+faceres"): a second embedder whose normalised embedding is
     * appended, the two weighted so the cosine of the concatenation is
     * fuse_w * cos_1 + (1 - fuse_w) * cos_2 (score-level fusion). emb2.g NULL otherwise. */
    emb_model emb2;
    float fuse_w;
    char fused_name[64];
    nn_exec_opts exec_opts;
    struct an_models *an;    /* face analysis models (analyze.c), NULL when none asked for */
};

struct mien_session {
    mien_models *m;
    mien_err err;
    nn_exec *det, *lm, *lm2, *emb, *emb2;
    struct an_session *an;   /* executors of the analysis models */
};

/* ==== Where the models are (models_find.c) ==== */

/* One place mien_models_open(NULL, ...) looks at. */
typedef struct models_place {
    char label[48];          /* where it comes from: "$MIEN_MODELS", "./models", ... */
    char path[4096];         /* the folder; "" when the place does not apply (variable unset) */
    char why[96];            /* why path is "" */
} models_place;
enum { MODELS_MAX_PLACES = 6 };

/* Fill p with the search order of mien.h (mien_models_open); returns how many. */
int models_places(models_place p[MODELS_MAX_PLACES]);

/* Intersection over union of two boxes given as (x0, y0, x1, y1). */
static inline float face_iou(const float *a, const float *b) {
    float ix0 = a[0] > b[0] ? a[0] : b[0], iy0 = a[1] > b[1] ? a[1] : b[1];
    float ix1 = a[2] < b[2] ? a[2] : b[2], iy1 = a[3] < b[3] ? a[3] : b[3];
    float iw = ix1 - ix0 > 0 ? ix1 - ix0 : 0, ih = iy1 - iy0 > 0 ? iy1 - iy0 : 0, inter = iw * ih;
    float ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return ua > 0 ? inter / ua : 0.f;
}

/* Stage functions; errors go to s->err. */
int face_detect(mien_session *s, const mien_image *img, const mien_detect_options *o,
                mien_face **faces, int *n_faces);
/* Refine f's alignment points with the landmark network; *keep becomes 0 when the network
 * says there is no face there. */
int face_refine_landmarks(mien_session *s, const mien_image *img, mien_face *f, int *keep);

/* Least-squares similarity transform (Umeyama 1991) taking src points onto dst points:
 * dst ≈ s R src + t. Writes the 2x3 forward matrix m (x' = m0 x + m1 y + m2, y' = m3 x +
 * m4 y + m5). Returns 0 when the points are degenerate. */
int face_similarity_fit(const float (*src)[2], const float (*dst)[2], int n, float m[6]);
/* Invert a 2x3 affine matrix; 0 if singular. */
int face_affine_invert(const float m[6], float inv[6]);

/* Matrix mapping aligned-crop pixel centres to image coordinates for face f (what
 * img_warp_affine wants), for the crop template tmpl (see emb_model). */
int face_align_matrix(const mien_face *f, const float (*tmpl)[2], float m[6]);
/* The crop matrix of embedder em for face f: dlib's 68-point fit for dlib chips when the
 * face has 68 landmarks, the 5-point template otherwise. */
int face_embed_matrix(const emb_model *em, const mien_face *f, float m[6]);

/* Embed face f of img (all embedders of a fused recognizer), reading img at 1/sx, 1/sy of the
 * coordinates of f (1, 1 when f's coordinates are img's). */
int face_embed_scaled(mien_session *s, const mien_image *img, const mien_face *f, float sx,
                      float sy, float *emb);

#endif
