/* mien's checkpoint files: the fourth loader, beside ONNX, TFJS and TFLite.
 *
 * A checkpoint holds named float tensors and "key=value" metadata (the file format below).
 * mien train writes them (src/train); inference reads them here without the training engine:
 *   - ckpt.c:        named tensors and the file (read and write);
 *   - ckpt_arch.c:   the built-in architectures (MobileFaceNet, small), whose topology the
 *                    training graph builder (train/arch.c) walks too, and their inference
 *                    graph from a checkpoint (batch norm folded into the convolutions);
 *   - ckpt_load.c:   networks fine-tuned from a model file (the base loaded again with the
 *                    trained constants put in), and the embedder entry point models.c uses. */
#ifndef MIEN_NN_CKPT_H
#define MIEN_NN_CKPT_H

#include "core/err.h"
#include "nn/graph.h"

#include <stdint.h>

/* ==== Named tensors ==== */

typedef struct nn_ckpt_tensor {
    char *name;
    int ndim;
    int64_t dims[NN_MAX_DIMS];
    int64_t n;
    float *data;
} nn_ckpt_tensor;

typedef struct nn_ckpt {
    nn_ckpt_tensor *v;       /* (n) */
    int n, cap;
    /* Metadata, "key=value" strings (arch, input, dim, mean, scale, ...). */
    char **meta;
    int n_meta;
} nn_ckpt;

const nn_ckpt_tensor *nn_ckpt_find(const nn_ckpt *ts, const char *name);
const char *nn_ckpt_meta(const nn_ckpt *ts, const char *key);
int nn_ckpt_add(nn_ckpt *ts, const char *name, int ndim, const int64_t *dims, const float *data,
                mien_err *e);
int nn_ckpt_set_meta(nn_ckpt *ts, const char *key, const char *value, mien_err *e);
void nn_ckpt_free(nn_ckpt *ts);

/* ==== Checkpoint file ====
 * Little-endian, all of it:
 *   "MIENCKPT" (8 bytes), u32 version (1), u32 n_meta, u32 n_tensors
 *   n_meta times:    u32 length, "key=value" bytes (no NUL)
 *   n_tensors times: u32 name length, name bytes, u32 ndim, ndim x i64 dims, n x f32 data
 * Metadata written by mien train: arch, input, dim, mean, scale, crop (arcface), loss,
 * threshold. Tensor names are the training graph's (unit/conv, unit/bn/gamma, unit/bn/beta,
 * unit/bn/running_mean, unit/bn/running_var, unit/prelu). */
int nn_ckpt_save(const char *path, const nn_ckpt *ts, mien_err *e);
int nn_ckpt_load(const char *path, nn_ckpt *out, mien_err *e);

/* ==== Built-in architectures (ckpt_arch.c) ==== */

typedef enum nn_arch { NN_ARCH_MOBILEFACENET = 0, NN_ARCH_SMALL = 1 } nn_arch;

/* Input side (112), embedding size (mobilefacenet 192, small 128) of an architecture. */
int nn_arch_input(nn_arch a);
int nn_arch_dim(nn_arch a);
const char *nn_arch_name(nn_arch a);
int nn_arch_from_name(const char *name, nn_arch *a);

/* One unit of an architecture: conv (k x k, stride, SAME or VALID padding) -> batch norm ->
 * PReLU (or linear). A depthwise unit keeps its input's channels (cout is then 0). */
typedef enum nn_arch_unit_kind { NN_ARCH_CONV = 0, NN_ARCH_DW = 1 } nn_arch_unit_kind;
typedef struct nn_arch_unit {
    const char *name;        /* the unit's scope, e.g. "Conv2d_2_InvResBlock_0/Conv" */
    nn_arch_unit_kind kind;
    int k, cout, stride, valid, prelu;
} nn_arch_unit;

/* Adds unit u on tensor x to g; *y its output. Returns a status (mien_err_set on e). */
typedef int (*nn_arch_unit_fn)(void *ctx, nn_graph *g, const nn_arch_unit *u, int x, int *y,
                               mien_err *e);

/* The architecture's topology on g: input "input" (batch, S, S, 3), every unit through
 * unit_fn (the training builder makes trainable conv -> batch norm units, the inference one
 * folds the checkpoint's batch norm), residual adds, and the output reshaped to "embedding"
 * (batch, dim) in *y. Not marked as an output. */
int nn_arch_build(nn_graph *g, nn_arch arch, int batch, nn_arch_unit_fn unit_fn, void *ctx,
                  int *y, mien_err *e);

/* The inference graph of a checkpoint of a built-in architecture: batch 1, batch norm folded
 * into the conv weights and biases, PReLU fused, output (1, dim) unnormalised. Runs on either
 * backend. */
int nn_ckpt_build_arch(const nn_ckpt *ckpt, nn_graph **out, mien_err *e);

/* ==== Networks fine-tuned from model files (ckpt_load.c) ==== */

/* 1 if path names a model file (.onnx, .json, .tflite) rather than a checkpoint. */
int nn_ckpt_is_model_file(const char *path);
/* The "graph" metadata of a base model file: "onnx", "tflite" or else "tfjs". */
const char *nn_ckpt_base_format(const char *path);
/* 64-bit FNV-1a of a file's bytes, and its size. */
int nn_ckpt_file_hash(const char *path, uint64_t *hash, int64_t *size, mien_err *e);
/* The model at path (ONNX or TFJS) for a batch of `batch` side x side images, its one output
 * viewed as (batch, D). */
int nn_ckpt_load_base(const char *path, int batch, int side, nn_graph **out, mien_err *e);
/* Such a checkpoint's inference graph (batch 1): the base loaded again (found at its path,
 * else base_rel under models_dir; refused if its size or hash differ) with the trained
 * constants put in. */
int nn_ckpt_build_loaded(const nn_ckpt *ckpt, const char *models_dir, nn_graph **out,
                         mien_err *e);

/* ==== Embedders ==== */

/* What an embedder needs from a checkpoint: the inference graph and the crop. */
typedef struct nn_ckpt_embedder_info {
    int size;                /* input side */
    int dim;                 /* embedding size */
    float mean, scale;       /* input = (pixel - mean) * scale */
    float threshold;         /* cosine threshold for "same" (from training's held-out pairs) */
    char arch[32];
} nn_ckpt_embedder_info;

/* models_dir: where a loaded-net checkpoint's base model is looked for when its saved path
 * does not lead to it (may be NULL). */
int nn_ckpt_load_embedder(const char *path, const char *models_dir, nn_graph **g,
                          nn_ckpt_embedder_info *info, mien_err *e);

#endif
