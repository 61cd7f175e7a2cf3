/* Internal structure of the face pipeline: the model set, sessions, and the stage functions
 * (detect, landmarks, align, embed) behind the public API of mien.h. */
#ifndef MIEN_FACE_H
#define MIEN_FACE_H

#include "core/err.h"
#include "mien.h"
#include "nn/exec.h"
#include "nn/graph.h"

/* ==== Detectors ====
 * One table (detectors.c) says, per detector, how its network is loaded, how a photo becomes
 * its input, how its outputs decode into boxes (and keypoints), and how overlapping boxes
 * merge; detect.c runs any of them the same way. */

typedef enum det_loader {
    DL_TFJS,                 /* a TFJS graph model */
    DL_FACEAPI_SSD,          /* face-api's weights-only SSD MobileNetV1 (architecture coded) */
    DL_ONNX,                 /* an ONNX file, cut at `outputs` */
    DL_ONNX_USER,            /* SCRFD, YuNet: a file the user brings (onnx_models.c) */
} det_loader;

typedef enum det_decoder {
    DEC_BLAZEFACE,           /* MediaPipe anchors (fixed size, centres only), 16 regressors */
    DEC_FACEAPI_SSD,         /* face-api's SSD: 5118 anchors, TF box coder (10, 10, 5, 5) */
    DEC_ULTRAFACE,           /* UltraFace priors at strides 8-64, SSD coder (0.1, 0.2) */
} det_decoder;

typedef enum det_nms_kind {
    DET_NMS_HARD,            /* greedy: drop what overlaps a better box */
    DET_NMS_WEIGHTED,        /* MediaPipe's: overlapping boxes averaged, weighted by score */
} det_nms_kind;

typedef struct det_spec {
    const char *name;        /* "blazeface", "ultraface", ... */
    const char *file;        /* under the models folder */
    det_loader loader;
    const char *outputs[2];  /* DL_ONNX: the graph outputs (before a size-bound tail) */
    int w, h;                /* network input, default */
    int resizable;           /* convolutional all through: "NAME@W" / "NAME@WxH" resize it */
    float mean, scale;       /* network input = (pixel - mean) * scale, RGB */
    det_decoder decoder;
    int grid[2], per_cell[2]; /* DEC_BLAZEFACE: anchor grid side and anchors per cell, per layer */
    det_nms_kind nms;
    float nms_iou;
    float blend_min;         /* DET_NMS_WEIGHTED: candidates are blended from this score up */
    int n_kp;                /* keypoints per detection: 6 (BlazeFace), 0 */
    /* Landmark crops around this detector's boxes, so that the landmark networks see faces
     * framed as they were trained: side of the face mesh's crop and of the 68-point nets'
     * crop relative to the box's longer side, and the crop centre's shift down from the box
     * centre relative to the box height. */
    float mesh_roi, lm68_roi, roi_dy;
    const char *source;      /* where the weights come from (mien models) */
} det_spec;

/* Prior (anchor) box, in network input pixels. */
typedef struct det_anchor {
    float cx, cy, w, h;
} det_anchor;

/* One network run over the photo: a detector of the table at one input size. */
typedef struct det_pass {
    const det_spec *spec;
    nn_graph *g;
    int w, h;                /* network input */
    int n_anchors;
    det_anchor *anchors;     /* decoder's anchors or priors, in the graph's output order */
    int out[4];              /* graph output index of each decoder input */
    int layer_anchors[2];    /* DEC_BLAZEFACE: anchors of the two output layers */
    float *ssd_anchors;      /* DEC_FACEAPI_SSD: (5118, 4) ymin, xmin, ymax, xmax relative */
} det_pass;

#define DET_MAX_PASSES 4

/* A detector: one pass, or several whose candidates merge in one NMS ("A+B": an image
 * pyramid when A and B are one network at two sizes, an ensemble when they differ). */
typedef struct det_model {
    const char *name;        /* the first pass's detector */
    const det_spec *spec;    /* the first pass's row: NMS and landmark crops (NULL: ONNX) */
    int n_pass;
    det_pass pass[DET_MAX_PASSES];
    nn_graph *g;             /* DL_ONNX_USER: its graph (pass[0].g otherwise) */
    int size;                /* longer side of the largest input */
    struct onnx_det *onnx;   /* DL_ONNX_USER: SCRFD or YuNet (onnx_models.c), else NULL */
} det_model;

/* Open the detector cfg_name names ("blazeface", "ultraface@320", "ultraface+blazeface",
 * "yunet:/path") from the models folder dir into d; on failure the message is in e. */
int face_detector_open(const char *dir, const char *cfg_name, det_model *d, mien_err *e);
void face_detector_close(det_model *d);
/* Names of the known detectors, for messages ("blazeface, blazeface-front, ..."). */
const char *face_detector_names(void);

/* ==== Landmark refinement ==== */

typedef enum lm_kind {
    LM_NONE = 0,             /* the detector's keypoints */
    LM_FACEMESH,             /* MediaPipe face mesh, 468 points, 192x192 */
    LM_68,                   /* face-api's 68-point net (iBUG 300-W order), 112x112 */
    LM_68_TINY,              /* face-api's tiny 68-point net */
    LM_MESH68,               /* both the mesh (lm) and the 68-point net (lm2), points averaged */
    LM_ONET,                 /* MTCNN's output network (expo's onet.tflite): 5 points and a
                              * face score on a 48x48 crop of the box */
} lm_kind;

typedef struct lm_model {
    lm_kind kind;
    nn_graph *g;
    int size;                /* network input side */
    int out_points;          /* graph output index of the points */
    int out_flag;            /* facemesh, onet: graph output of the face-presence score, else -1 */
    int out_box;             /* onet: graph output of the box regression, else -1 */
} lm_model;

/* ==== Embedder ==== */

typedef struct emb_model {
    const char *name;        /* "mobilefacenet" */
    nn_graph *g;
    int size;                /* input side (112) */
    int dim;                 /* embedding size (192) */
    float mean, scale;       /* input = (pixel - mean) * scale */
    float threshold;         /* default cosine threshold for "same" */
    float cluster_threshold; /* default threshold of clustering; 0: threshold */
    /* Recognizability = 1 / (1 + exp(-(feature norm - norm_centre) / norm_width)); width 0:
     * not calibrated for this embedder. */
    float norm_centre, norm_width;
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
    nn_exec *det[DET_MAX_PASSES];    /* one per pass; det[0] runs an ONNX detector */
    nn_exec *lm, *lm2, *emb, *emb2;
    struct an_session *an;           /* executors of the analysis models */
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

/* A detection before overlapping ones merge: box (x0, y0, x1, y1) in image pixels. */
typedef struct det_cand {
    float score;
    float box[4];
    int n_kp;                /* 6 (BlazeFace) or 0 */
    float kp[6][2];
} det_cand;

/* Non-maximum suppression (nms.c), in place; each returns the number kept, best first.
 * face_nms_hard works on any array of structs that begin with {float score; float box[4];}
 * (det_cand, onnx_cand): a box overlapping a better kept one by IoU > iou is dropped.
 * face_nms_weighted is MediaPipe's: every box overlapping the best remaining one by IoU > iou
 * is averaged into it, weighted by score (keypoints over the members that have them); the
 * best's score is kept. */
int face_nms_hard(void *c, int n, size_t size, float iou);
int face_nms_weighted(det_cand *c, int n, float iou);
/* Sort such an array by score, best first (what both suppressions do first). */
void face_sort_by_score(void *c, int n, size_t size);

/* Stage functions; errors go to s->err. */
int face_detect(mien_session *s, const mien_image *img, const mien_detect_options *o,
                mien_face **faces, int *n_faces);
/* Map a face's box, landmarks and points by x' = sx x + dx, y' = sy y + dy. */
static inline void face_move(mien_face *f, float sx, float sy, float dx, float dy) {
    f->box[0] = f->box[0] * sx + dx, f->box[1] = f->box[1] * sy + dy;
    f->box[2] *= sx, f->box[3] *= sy;
    for (int i = 0; i < f->n_landmarks; i++)
        f->landmarks[i][0] = f->landmarks[i][0] * sx + dx, f->landmarks[i][1] = f->landmarks[i][1] * sy + dy;
    for (int i = 0; i < 5; i++) f->points[i][0] = f->points[i][0] * sx + dx, f->points[i][1] = f->points[i][1] * sy + dy;
}
/* The detection stage (stage.c): face_detect, then each face refined by the landmark source,
 * keeping those it keeps (face_lm_kept). */
int face_detect_refined(mien_session *s, const mien_image *img, const mien_detect_options *o,
                        mien_face **faces, int *n_faces);
/* face_detect_refined on img inside a grey margin of FACE_LOOK_MARGIN times its longer side,
 * the faces in img's coordinates (boxes may reach past its edges): for a photo in which
 * nothing was found (a face filling the frame). */
#define FACE_LOOK_MARGIN 0.3f
int face_second_look(mien_session *s, const mien_image *img, const mien_detect_options *o,
                     mien_face **faces, int *n_faces);
/* Refine f's alignment points with the landmark network. *keep: LM_KEEP, LM_DROP when the
 * network says there is no face there, or LM_DOUBT when it doubts the face: f->score is then
 * scaled by the network's face probability (below one half), and the caller keeps the face
 * only if that lowered score still reaches its threshold (face_lm_kept). */
enum { LM_DROP = 0, LM_KEEP = 1, LM_DOUBT = 2 };
int face_refine_landmarks(mien_session *s, const mien_image *img, mien_face *f, int *keep);
static inline int face_lm_kept(int keep, const mien_face *f, float min_score) {
    return keep == LM_KEEP || (keep == LM_DOUBT && f->score >= min_score);
}

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
/* The same, also giving *norm, the feature norm of the embedder with a calibrated
 * recognizability (emb_model.norm_width > 0; of a fused recognizer, the calibrated part that
 * weighs most in its score): the length of its output before normalisation
 * (of the mean of the two outputs when mirrored), and *part, that embedder (-1 and NULL when
 * none is calibrated). */
int face_embed_norm(mien_session *s, const mien_image *img, const mien_face *f, float sx,
                    float sy, float *emb, float *norm, const emb_model **part);

#endif
