/* The engine's graph IR: tensors (float32, dims outermost first, NHWC for images) and nodes
 * in topological order. A graph is built for one concrete input shape, by a loader (TFJS,
 * weights-only coded architectures, ONNX) through the nn_add_* builders, which infer every
 * output shape as the node is added. After loading the graph is immutable and shared: all
 * mutable state lives in an nn_exec (exec.h). */
#ifndef MIEN_NN_GRAPH_H
#define MIEN_NN_GRAPH_H

#include "core/err.h"

#include <stddef.h>
#include <stdint.h>

#define NN_MAX_DIMS 6

/* What a model file may make the library allocate. Every loader (TFJS, face-api, ONNX,
 * TFLite, checkpoints) builds through this graph, so these caps hold for all of them:
 *   NN_MAX_ELEMS        elements of one tensor, constant or activation: 2^28 (1 GiB of
 *                       float32); also keeps every index product of the kernels in int64;
 *   NN_MAX_ARENA_BYTES  the activations of one graph run, planned before the run: 2 GiB.
 * The largest real model here (SSD at 512x512) plans about 60 MB; an input of
 * MIEN_MAX_IMAGE_SIDE squared RGB is 805M elements and never enters a graph whole. */
#define NN_MAX_ELEMS ((int64_t)1 << 28)
#define NN_MAX_ARENA_BYTES ((size_t)2 << 30)

typedef enum nn_op {
#define OP(name, str, nmin, nmax, ref, test) NN_OP_##name,
#include "nn/ops.def"
#undef OP
    NN_OP_COUNT
} nn_op;

const char *nn_op_name(nn_op op);

/* Activation fused after an op. PRELU takes its alpha from the node's last input. */
typedef enum nn_act {
    NN_ACT_NONE = 0,
    NN_ACT_RELU,
    NN_ACT_RELU6,
    NN_ACT_CLAMP,     /* act_min, act_max */
    NN_ACT_LEAKY,     /* act_alpha */
    NN_ACT_PRELU,     /* alpha tensor: in[n_in - 1] */
    NN_ACT_SIGMOID,
} nn_act;

typedef struct nn_tensor {
    char *name;                 /* from the model file, or synthesised; owned by the graph */
    int ndim;
    int64_t dims[NN_MAX_DIMS];  /* number of elements along each axis, outermost first */
    int64_t n;                  /* product of dims */
    const float *data;          /* constant tensors: weights (owned by the graph); else NULL */
    int producer;               /* index of the node that writes it, -1 for constants */
} nn_tensor;

typedef struct nn_node {
    nn_op op;
    int n_in;
    int *in;                    /* (n_in) tensor ids */
    int out;                    /* tensor id */
    /* Attributes (those that apply to op). */
    int kernel[2];              /* pool window (h, w); conv kernels come from the weights */
    int stride[2];              /* (h, w) */
    int dilation[2];            /* (h, w) */
    int pad[4];                 /* top, bottom, left, right (explicit, already resolved) */
    int groups;                 /* conv2d groups (1 = dense) */
    nn_act act;
    float act_min, act_max, act_alpha;
    int axis;                   /* concat */
    unsigned axes;              /* reductions: bit i set = reduce axis i */
    int keepdims;
    int perm[NN_MAX_DIMS];      /* transpose */
    int64_t begin[NN_MAX_DIMS]; /* slice start per axis */
    int64_t step[NN_MAX_DIMS];  /* slice stride per axis (may be negative) */
    int64_t pads[2 * NN_MAX_DIMS]; /* pad: (before, after) per axis */
    float pad_value;
    int align_corners, half_pixel; /* resize */
    int block;                  /* depth_to_space */
    float eps;                  /* batchnorm_train, l2norm */
} nn_node;

typedef struct nn_graph {
    nn_tensor *t;               /* (n_t) */
    int n_t, cap_t;
    nn_node *nodes;             /* (n_nodes) in topological order */
    int n_nodes, cap_nodes;
    int inputs[4], n_inputs;    /* tensor ids */
    int outputs[16], n_outputs; /* tensor ids */
    /* Storage for constants: a list of malloc'd blocks freed with the graph. */
    void **blocks;
    int n_blocks, cap_blocks;
    char *name;                 /* e.g. "human/mobilefacenet" */
} nn_graph;

/* ==== Building ==== */

nn_graph *nn_graph_new(const char *name);
void nn_graph_free(nn_graph *g);

/* Take ownership of a malloc'd block so it is freed with the graph. Returns 0 on OOM (and
 * frees p). */
int nn_graph_own(nn_graph *g, void *p);
/* Is p (the start of) a block the graph owns? A pass may rewrite such a constant in place. */
int nn_graph_owns(const nn_graph *g, const void *p);

/* Tensors. Return the tensor id, or -1 with a message in e. */
int nn_add_input(nn_graph *g, const char *name, int ndim, const int64_t *dims, mien_err *e);
/* A constant; data is copied into graph-owned storage. */
int nn_add_const(nn_graph *g, const char *name, int ndim, const int64_t *dims,
                 const float *data, mien_err *e);
/* A constant whose data is already graph-owned (nn_graph_own) or outlives the graph. */
int nn_add_const_ref(nn_graph *g, const char *name, int ndim, const int64_t *dims,
                     const float *data, mien_err *e);

/* Padding rule for convolutions and pools. */
typedef enum nn_padding { NN_PAD_VALID, NN_PAD_SAME, NN_PAD_EXPLICIT } nn_padding;

typedef struct nn_conv_params {
    int stride[2], dilation[2];
    nn_padding padding;
    int pad[4];                 /* top, bottom, left, right when padding == NN_PAD_EXPLICIT */
    int groups;                 /* 0 or 1: dense */
    nn_act act;
    float act_min, act_max, act_alpha;
} nn_conv_params;

void nn_conv_params_default(nn_conv_params *p);

/* x (N,H,W,CI), w (KH,KW,CI/groups,CO), bias (CO) or -1, alpha (CO) or -1 (when act PRELU). */
int nn_add_conv2d(nn_graph *g, const char *name, int x, int w, int bias, int alpha,
                  const nn_conv_params *p, mien_err *e);
/* x (N,H,W,C), w (KH,KW,C,M): output channels C*M. */
int nn_add_dwconv2d(nn_graph *g, const char *name, int x, int w, int bias, int alpha,
                    const nn_conv_params *p, mien_err *e);
/* x (..., K), w (K, M) */
int nn_add_fc(nn_graph *g, const char *name, int x, int w, int bias, int alpha, nn_act act,
              mien_err *e);
int nn_add_binary(nn_graph *g, nn_op op, const char *name, int a, int b, mien_err *e);
int nn_add_unary(nn_graph *g, nn_op op, const char *name, int x, mien_err *e);
int nn_add_leaky_relu(nn_graph *g, const char *name, int x, float alpha, mien_err *e);
int nn_add_clamp(nn_graph *g, const char *name, int x, float lo, float hi, mien_err *e);
int nn_add_prelu(nn_graph *g, const char *name, int x, int alpha, mien_err *e);
int nn_add_reduce(nn_graph *g, nn_op op, const char *name, int x, unsigned axes, int keepdims,
                  mien_err *e);
int nn_add_softmax(nn_graph *g, const char *name, int x, mien_err *e);
int nn_add_pool(nn_graph *g, nn_op op, const char *name, int x, const int kernel[2],
                const nn_conv_params *p, mien_err *e);
int nn_add_pad(nn_graph *g, const char *name, int x, const int64_t *pads, float value,
               mien_err *e);
int nn_add_concat(nn_graph *g, const char *name, const int *xs, int n, int axis, mien_err *e);
/* dims may hold one -1 (inferred) and 0 (copy the input's dim, ONNX semantics when
 * allow_zero_copy). */
int nn_add_reshape(nn_graph *g, const char *name, int x, int ndim, const int64_t *dims,
                   mien_err *e);
int nn_add_transpose(nn_graph *g, const char *name, int x, const int *perm, mien_err *e);
/* Per axis: begin, end (exclusive, already clamped by the caller), step (non-zero). */
int nn_add_slice(nn_graph *g, const char *name, int x, const int64_t *begin,
                 const int64_t *end, const int64_t *step, mien_err *e);
int nn_add_resize(nn_graph *g, nn_op op, const char *name, int x, int out_h, int out_w,
                  int align_corners, int half_pixel, mien_err *e);
int nn_add_depth_to_space(nn_graph *g, const char *name, int x, int block, mien_err *e);
int nn_add_batchnorm(nn_graph *g, const char *name, int x, int scale, int shift, mien_err *e);
/* Batch norm with batch statistics (training mode): gamma, beta (C), C the last axis; act
 * fused after it (alpha (C) or -1 when act is PRELU). */
int nn_add_batchnorm_train(nn_graph *g, const char *name, int x, int gamma, int beta, int alpha,
                           nn_act act, float eps, mien_err *e);
/* y = x / sqrt(max(sum(x^2), eps)) over the last axis. */
int nn_add_l2norm(nn_graph *g, const char *name, int x, float eps, mien_err *e);

/* Mark a tensor as a graph output (in order). */
int nn_mark_output(nn_graph *g, int t, mien_err *e);

/* ==== Inspecting ==== */

/* Find a tensor by name; -1 if none. */
int nn_find_tensor(const nn_graph *g, const char *name);
/* Multiply-adds x 2 of the convolutions and fully connected layers. */
double nn_graph_flops(const nn_graph *g);
/* Number of consumers of each tensor (malloc'd (n_t) array). */
int *nn_graph_use_counts(const nn_graph *g);

/* ==== Rewriting ==== */

/* Fold constants, fold batch norm (BATCHNORM nodes) into the producing conv/dwconv/fc, fuse
 * standalone activations (PReLU included) into the producing conv/fc/add, recognise the PReLU
 * patterns that TF exports as relu/abs/sub/mul/add, and drop dead nodes. Every loader runs it
 * once its graph is built. Semantics are unchanged up to the float rounding of folded
 * weights (tests compare the graph before and after on the reference backend). */
int nn_graph_optimize(nn_graph *g, mien_err *e);

#endif
