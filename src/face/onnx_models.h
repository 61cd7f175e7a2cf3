/* Face models users bring as ONNX files: InsightFace's SCRFD detectors (det_10g.onnx,
 * det_500m.onnx, ...) and ArcFace embedders (w600k_r50.onnx), OpenCV zoo's YuNet detector
 * (face_detection_yunet_2023mar.onnx) and SFace embedder (face_recognition_sface_2021dec.onnx).
 * The networks run on the graph IR (nn/onnx.c); this file prepares their inputs and decodes
 * their outputs as the projects' own code does (insightface/model_zoo/scrfd.py, OpenCV's
 * FaceDetectorYN in modules/objdetect/src/face_detect.cpp). */
#ifndef MIEN_FACE_ONNX_MODELS_H
#define MIEN_FACE_ONNX_MODELS_H

#include "face/face.h"

typedef enum onnx_det_kind {
    ONNX_DET_SCRFD = 1,      /* RGB, (x - 127.5) / 128, hard NMS at IoU 0.4 */
    ONNX_DET_YUNET,          /* BGR, raw 0..255, hard NMS at IoU 0.3 */
} onnx_det_kind;

#define ONNX_DET_MAX_LEVELS 5

/* An opened detector: which graph output holds what. */
typedef struct onnx_det {
    onnx_det_kind kind;
    int w, h;                /* network input, pixels (a multiple of 32) */
    int n_levels;            /* SCRFD: 3 (strides 8, 16, 32) or 5 (to 128); YuNet: 3 */
    int strides[ONNX_DET_MAX_LEVELS];
    int anchors;             /* per location: SCRFD 2 with 3 levels, 1 with 5; YuNet 1 */
    int has_kps;             /* 5 keypoints per detection */
    /* Graph output index per level (-1: absent). YuNet's score is sqrt(cls * obj). */
    int out_score[ONNX_DET_MAX_LEVELS], out_obj[ONNX_DET_MAX_LEVELS];
    int out_bbox[ONNX_DET_MAX_LEVELS], out_kps[ONNX_DET_MAX_LEVELS];
    float nms_iou;
} onnx_det;

/* A decoded detection, in network-input pixels. */
typedef struct onnx_cand {
    float score;
    float box[4];            /* x0, y0, x1, y1 */
    float kps[5][2];         /* eye, eye, nose tip, mouth corner, mouth corner (image order) */
} onnx_cand;

/* Model names of the table in models.c: "scrfd", "yunet" (detectors), "arcface", "sface"
 * (embedders), each optionally followed by ":PATH" to name the file. */

/* Load an ONNX detector at path for a w x h input and identify its outputs. */
int onnx_det_open(const char *path, onnx_det_kind kind, int w, int h, nn_graph **g,
                  onnx_det **out, mien_err *e);
void onnx_det_free(onnx_det *d);

/* Decode every location of every level whose score is >= min_score into c (room for cap),
 * from the graph outputs outs[k] (k = graph output index). Returns the number written. */
int onnx_det_decode(const onnx_det *d, const float *const *outs, float min_score,
                    onnx_cand *c, int cap);

/* Hard non-maximum suppression: sort by score, drop every candidate overlapping a kept one by
 * IoU > iou. In place; returns the number kept. */
int onnx_det_nms(onnx_cand *c, int n, float iou);

/* Detect faces on img with an opened detector (graph run by exec x, input d->h x d->w):
 * letterbox at the top-left (aspect kept, black borders) as InsightFace does, decode, NMS,
 * map back to image pixels. *faces is malloc'd. */
int onnx_det_run(const onnx_det *d, nn_exec *x, const mien_image *img, float min_score,
                 mien_face **faces, int *n_faces, mien_err *e);

/* Load an ONNX embedder for a size x size input; checks it has one (1, D) output. */
int onnx_embedder_load(const char *path, int size, nn_graph **g, mien_err *e);

/* ==== Hooks for the model table (models.c) and the detection stage (detect.c) ==== */

/* Does cfg_name ("arcface", "arcface:/path/w600k_r50.onnx") name the table row `name`? */
int onnx_name_matches(const char *name, const char *cfg_name);
/* The file of a row: the PATH after "name:" in cfg_name, else dir/default_file. */
void onnx_model_file(const char *dir, const char *default_file, const char *cfg_name,
                     char *path, size_t cap);
/* 1 when cfg_name is an ONNX detector of the table below ("scrfd", "yunet", with ":PATH"). */
int onnx_is_detector(const char *cfg_name);
/* Open the ONNX detector cfg_name names (files under dir by default):
 *   scrfd   insightface/det_10g.onnx (buffalo_l), 640x640
 *   yunet   opencv/face_detection_yunet_2023mar.onnx, 640x640
 * *name gets the row's name and *size the input side. */
int onnx_detector_open(const char *dir, const char *cfg_name, nn_graph **g, onnx_det **d,
                       const char **name, int *size, mien_err *e);
/* The detection stage with an ONNX detector: onnx_det_run plus the options' min_size and
 * max_faces (largest first), sorted by score. o: the options (face_detect passes the
 * defaults for NULL). */
int onnx_face_detect(const onnx_det *d, nn_exec *x, const mien_image *img,
                     const mien_detect_options *o, mien_face **faces, int *n_faces, mien_err *e);

#endif
