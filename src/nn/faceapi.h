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
 *                     pads a non-square crop with zeros to a square, centred, then resizes
 *                     bilinearly; at 150x150 that is the identity).
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
 *                    pads a non-square crop with zeros to a square, centred (the short side
 *                    gets |w-h|/2 rounded on one side and the rest on the other), then resizes
 *                    bilinearly. Normalised in the graph as (x - (122.782, 117.001, 104.298)) / 255.
 * Output "landmarks" (1,136): x0,y0,x1,y1,...,x67,y67, the raw net output: positions relative
 *                    to the 112x112 input, (0,0) its top-left corner and (1,1) its bottom-right
 *                    (a point at pixel column u is u/112). The points follow the iBUG 300-W
 *                    68-point order (0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67
 *                    mouth). For a square crop of side S at (cx0, cy0) in the image, point i is at
 *                    (cx0 + x_i*S, cy0 + y_i*S). For a w x h crop padded to a square of side
 *                    m = max(w,h), face-api computes x_i*m - pad_x (pad_x = (m - w)/2 when w < h,
 *                    else 0; likewise y), in pixels of the crop. */
#define NN_FACEAPI_LM_SIZE 112
#define NN_FACEAPI_LM_POINTS 68
int nn_faceapi_landmarks68_load(const char *manifest_path, /* face_landmark_68[_tiny]_model-weights_manifest.json */
                                int tiny,                  /* 1: the tiny net's architecture */
                                nn_graph **out,            /* OUT: the graph (nn_graph_free) */
                                mien_err *e);

#endif
