/* face-api's weights-only models (@vladmandic/face-api 1.7.15, models/faceapi/): the files
 * hold only a TFJS weights manifest and its .bin, the architecture lives in face-api's JS code.
 * Each loader here codes one architecture on the graph IR, reads the weights by name and
 * returns an optimized graph for one fixed input shape. Every graph takes raw RGB pixels
 * 0..255 (NHWC, float32) and does face-api's own normalisation as its first nodes, so its
 * output is what face-api computes for the same tensor input. Checked against face-api itself
 * running under Node (tools/faceapi_oracle.js, tests/test_faceapi.c). */
#ifndef MIEN_NN_FACEAPI_H
#define MIEN_NN_FACEAPI_H

#include "nn/graph.h"

/* ==== Face descriptor: dlib's ResNet-29 (face-api's FaceRecognitionNet) ====
 * Input  "input"      (1,150,150,3) RGB 0..255: a face crop already resized to 150x150 (face-api
 *                     pads a non-square crop with zeros to a centred square as for the
 *                     landmarks below, then resizes bilinearly; at 150x150 that is the
 *                     identity).
 *                     Normalised in the graph as (x - (122.782, 117.001, 104.298)) / 255.
 * Output "descriptor" (1,128): the descriptor exactly as face-api returns it (not
 *                     L2-normalised; its norm is usually near 1). face-api compares two
 *                     descriptors by Euclidean distance, 0.6 being its usual threshold. */
#define NN_FACEAPI_REC_SIZE 150
#define NN_FACEAPI_REC_DIM 128
int nn_faceapi_recognition_load(const char *manifest_path, /* face_recognition_model-weights_manifest.json */
                                nn_graph **out,            /* OUT: the graph (nn_graph_free) */
                                mien_err *e);

/* ==== 68-point face landmarks (face-api's FaceLandmark68Net and FaceLandmark68TinyNet) ====
 * Input  "input"     (1,112,112,3) RGB 0..255: the face crop resized to 112x112. face-api
 *                    pads a non-square w x h crop with zeros to a square of side m = max(w,h):
 *                    round(|w-h|/2) rows/columns after (bottom/right), the rest before, then
 *                    resizes bilinearly. Normalised in the graph as
 *                    (x - (122.782, 117.001, 104.298)) / 255.
 * Output "landmarks" (1,136): x0,y0,x1,y1,...,x67,y67, the raw net output: positions relative
 *                    to the input square, (x_i*112, y_i*112) in its pixel coordinates, so about
 *                    0..1 with (0,0) its top-left corner. Order as face-api's FaceLandmarks68
 *                    (iBUG 300-W): 0-16 jaw, 17-21 and 22-26 brows, 27-35 nose, 36-41 the eye on
 *                    the image's left, 42-47 the other, 48-67 mouth. For a square crop of side S
 *                    at (cx0, cy0) in the image, point i is at (cx0 + x_i*S, cy0 + y_i*S). For a
 *                    padded w x h crop face-api takes (x_i*m - pad_x, y_i*m - pad_y) in pixels of
 *                    the crop, pad_x = (m - w)/2 (unrounded) when w < h, else 0, likewise pad_y. */
#define NN_FACEAPI_LM_SIZE 112
#define NN_FACEAPI_LM_POINTS 68
int nn_faceapi_landmarks68_load(const char *manifest_path, /* face_landmark_68[_tiny]_model-weights_manifest.json */
                                int tiny,                  /* 1: the tiny net's architecture */
                                nn_graph **out,            /* OUT: the graph (nn_graph_free) */
                                mien_err *e);

/* ==== Face analysis: expression, age and gender ====
 * Input  "input" (1,112,112,3) RGB 0..255, prepared as for the landmark nets above (face-api
 *                gives them the same face crops), normalised in the graph in the same way.
 * FaceExpressionNet: output "expressions" (1,7), softmax probabilities in face-api's order:
 *                neutral, happy, sad, angry, fearful, disgusted, surprised.
 * AgeGenderNet (TinyXception): output 0 "fc_age" (1,1) the age in years; output 1 "gender"
 *                (1,2) softmax probabilities of male, then female. */
#define NN_FACEAPI_EXPRESSIONS 7
int nn_faceapi_expression_load(const char *manifest_path, /* face_expression_model-weights_manifest.json */
                               nn_graph **out,            /* OUT: the graph (nn_graph_free) */
                               mien_err *e);
int nn_faceapi_age_gender_load(const char *manifest_path, /* age_gender_model-weights_manifest.json */
                               nn_graph **out,            /* OUT: the graph (nn_graph_free) */
                               mien_err *e);

/* ==== SSD MobileNetV1 face detector (face-api's SsdMobilenetv1) ====
 * Input  "input"         (1,512,512,3) RGB 0..255 (nn_faceapi_ssd_input makes it from an image
 *                        as face-api does). Normalised in the graph as x / 127.5 - 1.
 * Output "box_encodings" (1,5118,4): per anchor (ty, tx, th, tw), before decoding.
 *        "class_logits"  (1,5118,3): per anchor the logits of classes 0 (background), 1
 *                        (face) and 2 (unused); face-api's score is sigmoid(logit 1).
 * Anchor order: the 32x32 map (3 per cell), then 16x16, 8x8, 4x4, 2x2, 1x1 (6 per cell), each
 * row by row, column by column.
 * The loader also checks that the anchors stored in the file (Output/extra_dim) are those of
 * nn_faceapi_ssd_anchors. */
#define NN_FACEAPI_SSD_SIZE 512
#define NN_FACEAPI_SSD_ANCHORS 5118
int nn_faceapi_ssd_load(const char *manifest_path, /* ssd_mobilenetv1_model-weights_manifest.json */
                        nn_graph **out,            /* OUT: the graph (nn_graph_free) */
                        mien_err *e);

/* The 5118 anchors as (ymin, xmin, ymax, xmax) relative to the 512x512 input. */
void nn_faceapi_ssd_anchors(float *anchors /* OUT: (5118,4) */);

/* face-api's input for an image of any size: the image is padded with zeros at the right or
 * bottom to a square and resized to 512x512 with tf.image.resizeBilinear (no corner alignment,
 * no half-pixel centres), as face-api does for a tensor input. rgb: 8-bit RGB rows of stride
 * bytes. Returns MIEN_EINVAL for a bad size. */
int nn_faceapi_ssd_input(const uint8_t *rgb, int w, int h, size_t stride,
                         float *out /* OUT: (512,512,3) */);

/* Decode the graph's outputs with the anchors, as face-api's outputLayer: per anchor box
 * (ymin, xmin, ymax, xmax) relative to the 512x512 input from the encoding (ty, tx, th, tw)
 * with the variances 10, 10, 5, 5: centre += t/10 * anchor size, size *= exp(t/5); score =
 * sigmoid(logit of class 1). */
void nn_faceapi_ssd_decode(const float *enc,     /* (5118,4) box_encodings */
                           const float *logits,  /* (5118,3) class_logits */
                           const float *anchors, /* (5118,4) nn_faceapi_ssd_anchors */
                           float *boxes,         /* OUT: (5118,4) */
                           float *scores);       /* OUT: (5118) */

/* face-api's greedy non-maximum suppression: candidates with score > min_score by descending
 * score; one is kept unless its IOU with a kept box exceeds iou_threshold. Writes at most
 * min(max_results, n) indices to selected, returns their number (-1: out of memory). */
int nn_faceapi_ssd_nms(const float *boxes, const float *scores, int n, int max_results,
                       float iou_threshold, float min_score, int *selected);

typedef struct nn_faceapi_det {
    float score;             /* sigmoid of the face logit, 0..1 */
    float x, y, w, h;        /* box in pixels of the original image (before padding) */
    int anchor;              /* index of the anchor it came from */
} nn_faceapi_det;

/* Everything locateFaces() does after the net: decode, NMS with IOU 0.5, then the boxes
 * clamped to the padded square and mapped back to the img_w x img_h image the input was made
 * from (nn_faceapi_ssd_input). face-api's defaults: min_confidence 0.5, max_results 100.
 * out holds max_results entries; *n_out receives the number found, best first. */
int nn_faceapi_ssd_detect(const float *enc, const float *logits, int img_w, int img_h,
                          float min_confidence, int max_results, nn_faceapi_det *out,
                          int *n_out, mien_err *e);

#endif
