/* ONNX models (InsightFace, OpenCV zoo, anything exported from PyTorch with the ops listed in
 * onnx.c) loaded into the graph IR for one concrete input shape.
 *
 * Layouts: ONNX is NCHW, mien is NHWC. The graph's input is NHWC (the caller feeds NHWC
 * pixels); its outputs are in ONNX's layout, so a 4-D output reads NCHW exactly as PyTorch or
 * onnxruntime would return it, and a (N, K) output is the same (N, K). */
#ifndef MIEN_NN_ONNX_H
#define MIEN_NN_ONNX_H

#include "nn/graph.h"

/* Largest .onnx file accepted (weights inline; external data files are refused). */
#define NN_ONNX_MAX_FILE ((size_t)1 << 30)

/* Load path into a new graph.
 *   input_dims_nchw  4 values (N, C, H, W) for the model's one image input, overriding the
 *                    file's declared shape (needed when the file leaves H, W symbolic, as
 *                    InsightFace's detectors do); NULL: the file's shape, a symbolic batch
 *                    taken as 1.
 * Graph outputs are the model's outputs in file order; each graph output tensor carries the
 * ONNX output name. Unsupported ops, external weight files and malformed files fail here
 * with a message naming the node or tensor. */
int nn_onnx_load(const char *path, const int64_t *input_dims_nchw, nn_graph **out, mien_err *e);

/* Same, with the graph's outputs the values named outputs[] (n_outputs, 1 to 16) instead
 * of the model's: only the nodes they depend on are loaded, so a model whose tail only works
 * at the size it was exported for (a detector's decoding with constant priors) runs at any
 * size cut before that tail. */
int nn_onnx_load_outputs(const char *path, const int64_t *input_dims_nchw,
                         const char *const *outputs, int n_outputs, nn_graph **out, mien_err *e);

/* Same as nn_onnx_load, from a file already in memory (tests, fuzzing). name labels messages and the graph. */
int nn_onnx_load_buffer(const void *data, size_t len, const char *name,
                        const int64_t *input_dims_nchw, nn_graph **out, mien_err *e);

#endif
