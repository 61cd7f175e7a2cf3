/* Training: reverse-mode gradients over the engine's graph IR, optimizers, learning-rate
 * schedules, the training graphs of the built-in architectures, and nets loaded from model
 * files made trainable (the checkpoint format and the inference side are nn/ckpt.h's).
 *
 * A training graph is an ordinary nn_graph built with the nn_add_* builders. Its parameters
 * are constant tensors whose storage the trainer owns and updates in place; batch norm runs
 * as BATCHNORM_TRAIN (batch statistics) and the trainer keeps the running averages beside the
 * graph. The node list is already in topological order, so it is the tape: tr_forward runs
 * the nodes in order keeping every activation, tr_backward walks them in reverse and adds
 * each node's input gradients. Ops with a backward pass: CONV2D (strides, padding, dilation,
 * groups), DWCONV2D, FC, BATCHNORM_TRAIN (batch statistics, or running averages in eval mode),
 * PRELU, ADD (numpy broadcasting), L2NORM, RESHAPE, each with its fused activation (none,
 * relu, prelu). Other ops run forward only.
 *
 * Kernels: the fast ones of train/kern.h (own GEMM, vectorised and threaded per-channel
 * passes) unless the net is created with `reference`, which runs the plain loops below (and
 * OpenBLAS for the products): the oracle the fast kernels are tested against.
 *
 * Shapes: tensors are float32 NHWC as everywhere in the engine; conv weights HWIO, depthwise
 * [KH,KW,C,M], FC [K,M]. */
#ifndef MIEN_TRAIN_H
#define MIEN_TRAIN_H

#include "core/err.h"
#include "nn/ckpt.h"
#include "nn/graph.h"
#include "train/comm.h"

#include <stddef.h>
#include <stdint.h>

/* ==== Trainable network ==== */

typedef struct tr_param {
    int t;                   /* tensor id (a constant of the graph) */
    float *w;                /* (n) values: the tensor's storage, updated in place */
    float *g;                /* (n) gradient of the last backward (a slice of tr_net.gbuf) */
    int64_t n;
    int decay;               /* weight decay applies (conv/fc weights; not BN, PReLU, bias) */
    float *m, *v;            /* (n) optimizer state (momentum / Adam moments), lazily made */
} tr_param;

typedef struct tr_bn {
    int node;                /* the BATCHNORM_TRAIN node */
    int64_t c;               /* channels */
    float *run_mean;         /* (c) running mean */
    float *run_var;          /* (c) running variance (unbiased, as PyTorch keeps it) */
    float *mean, *invstd;    /* (c) statistics of the last training forward */
} tr_bn;

typedef struct tr_net {
    nn_graph *g;             /* owned */
    float **val;             /* (n_t) value of every tensor after tr_forward */
    float **grad;            /* (n_t) gradient buffers during tr_backward (pooled) */
    float **pre;             /* (n_nodes) pre-activation of nodes with a fused activation */
    unsigned char *needs;    /* (n_t) 1: the tensor needs a gradient */
    tr_param *p;             /* (n_p) */
    int n_p;
    float *gbuf;             /* (gbuf_n) every parameter gradient, contiguous (one allreduce) */
    int64_t gbuf_n;
    tr_bn *bn;               /* (n_bn) */
    int n_bn;
    int *bn_of;              /* (n_nodes) index into bn, -1 */
    int training;            /* 1: batch statistics (default); 0: running averages */
    float bn_momentum;       /* running = (1 - momentum) running + momentum batch; 0.1 */
    const tr_comm *comm;     /* batch norm statistics across ranks (SyncBN); single by default */
    /* Pool of gradient buffers, reused across tensors of the same size. */
    struct tr_pool *pool;
    unsigned char *fresh;    /* (n_t) 1: the gradient buffer holds nothing yet (fast kernels
                              * write it instead of adding to it) */
    struct tr_kern *kern;    /* fast kernels; NULL: the reference kernels */
    float *col;              /* im2col scratch */
    size_t col_n;
    double t_fwd[NN_OP_COUNT], t_bwd[NN_OP_COUNT]; /* seconds spent per op, summed over passes */
} tr_net;

typedef struct tr_net_opts {
    int input_grad;          /* 1: also compute the gradient of the graph inputs */
    int reference;           /* 1: the reference kernels (plain loops), not the fast ones */
    int threads;             /* fast kernels' threads (0: 1) */
} tr_net_opts;

/* Wrap graph g (ownership passes to the net, also on failure) whose trainable tensors are
 * params[0..n_params-1] (constant tensors, storage owned by the graph; decay[i] says whether
 * weight decay applies). Fails if a node that needs a gradient has no backward pass. */
int tr_net_create(nn_graph *g, const int *params, const int *decay, int n_params,
                  const tr_net_opts *o, tr_net **out, mien_err *e);
void tr_net_free(tr_net *net);

/* Input i's buffer (fill before tr_forward). */
float *tr_input(tr_net *net, int i);
/* Forward pass; output i is then tr_output(net, i). */
int tr_forward(tr_net *net, mien_err *e);
const float *tr_output(const tr_net *net, int i);
/* Backward pass from dL/d(output i) = dout[i] (each sized as output i; NULL = zero). Writes
 * every parameter's gradient (overwritten, not accumulated) and, with input_grad, the
 * inputs' gradients (tr_input_grad). */
int tr_backward(tr_net *net, const float *const *dout, mien_err *e);
const float *tr_input_grad(const tr_net *net, int i);
/* Parameter by tensor name; NULL if none. */
tr_param *tr_find_param(tr_net *net, const char *name);
/* Batch-norm state of the BATCHNORM_TRAIN node writing tensor name; NULL if none. */
tr_bn *tr_find_bn(tr_net *net, const char *name);
int64_t tr_num_params(const tr_net *net);
/* Bytes held for activations, gradients and scratch (after one step). */
size_t tr_net_bytes(const tr_net *net);

/* ==== Optimizers and learning rate ==== */

typedef enum tr_opt_kind { TR_SGD = 0, TR_ADAMW = 1 } tr_opt_kind;

typedef struct tr_optim {
    tr_opt_kind kind;
    float lr;                /* current learning rate (set by the schedule each step) */
    float momentum;          /* SGD; 0.9 */
    float weight_decay;      /* SGD: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps; /* AdamW; 0.9, 0.999, 1e-8 */
    int64_t t;               /* steps taken (AdamW bias correction) */
} tr_optim;

void tr_optim_default(tr_optim *o, tr_opt_kind kind);
/* One update of n values w with gradient g and state m (and v for AdamW), both (n) and
 * zero-initialised by the caller. decay: apply the weight decay. Call tr_optim_tick once per
 * step before the updates. Same arithmetic as torch.optim.SGD (dampening 0, no Nesterov) and
 * torch.optim.AdamW (amsgrad off). */
void tr_optim_tick(tr_optim *o);
void tr_optim_update(const tr_optim *o, float *w, const float *g, float *m, float *v, int64_t n,
                     int decay);
/* Every parameter of net. */
int tr_optim_step_net(const tr_optim *o, tr_net *net, mien_err *e);

typedef enum tr_sched_kind { TR_SCHED_COSINE = 0, TR_SCHED_STEP = 1, TR_SCHED_CONST = 2 } tr_sched_kind;

typedef struct tr_sched {
    tr_sched_kind kind;
    float base_lr;
    int64_t warmup;          /* steps of linear warm-up from 0 to base_lr */
    int64_t total;           /* steps in all (cosine decays to 0 at total) */
    int64_t steps[8];        /* step schedule: multiply by gamma at each of these steps */
    int n_steps;
    float gamma;
} tr_sched;

/* Learning rate for step (0-based): warm-up lr * (step + 1) / warmup, then cosine
 * 0.5 (1 + cos(pi (step - warmup) / (total - warmup))) or step decay. */
float tr_sched_lr(const tr_sched *s, int64_t step);

/* ==== Architectures ====
 * The built-in architectures (nn_arch), checkpoints and their named tensors (nn_ckpt) are
 * nn/ckpt.h's: inference reads them without this engine. */

/* MobileFaceNet's weights from the TFJS model (models/human/mobilefacenet.json), renamed to
 * the training graph's names: conv kernels, the converter's bias (bn_offset, which becomes
 * the initial BN shift) and PReLU alphas (2x the graph's "mul" constants). */
int tr_load_tfjs_mobilefacenet(const char *model_json, nn_ckpt *out, mien_err *e);

typedef enum tr_bn_init {
    TR_BN_UNIT = 0,          /* gamma 1, beta = the initial bias (0 without one) */
    TR_BN_DATA = 1,          /* gamma, beta set from the first batch so BN starts as identity */
} tr_bn_init;

typedef struct tr_build_opts {
    nn_arch arch;
    int batch;               /* N of the input */
    int normalize;           /* end with L2NORM (margin losses) */
    const nn_ckpt *init;     /* weights by name (NULL or missing names: random He init) */
    uint64_t seed;           /* random init */
    float bn_eps;            /* 1e-5 */
    int threads;             /* fast kernels' threads (0: 1) */
    int reference;           /* the reference kernels */
} tr_build_opts;

/* The training graph: input (batch, S, S, 3) in (pixel - 127.5) / 128, output 0 the
 * embedding (batch, dim), L2-normalised with normalize. Conv units are conv (no bias) ->
 * BATCHNORM_TRAIN with a fused PReLU (or linear). */
int tr_build_train(const tr_build_opts *o, tr_net **out, mien_err *e);

/* Set every BN of net from the batch now in its input so that it computes the identity at
 * this batch (gamma = sqrt(var + eps), beta = mean); running averages take the same values.
 * Runs one forward pass. */
int tr_bn_init_from_data(tr_net *net, mien_err *e);

/* Every parameter and running statistic of net as named tensors, with metadata. */
int tr_export(const tr_net *net, nn_arch arch, nn_ckpt *out, mien_err *e);

/* ==== Networks loaded from model files (train/loaded.c) ====
 * An ONNX or TFJS embedder as a training net: every convolution, depthwise convolution and
 * fully connected layer's weights (with weight decay), biases and PReLU slopes are trained;
 * batch norm stays folded into the convolutions as the loader left it (see loaded.c). */

typedef struct tr_loaded_opts {
    const char *path;        /* .onnx or TFJS model.json */
    int batch;               /* N of the input */
    int side;                /* input side (112) */
    float mean, scale;       /* input = (pixel - mean) * scale, for the checkpoint */
    int normalize;           /* end with L2NORM (margin losses) */
    const nn_ckpt *init;     /* NULL, or a checkpoint of the same base: its weights by name */
    int last_layers;         /* > 0: train only the last N convolution / FC layers */
    int threads, reference;  /* as tr_net_opts */
} tr_loaded_opts;

int tr_build_loaded(const tr_loaded_opts *o, tr_net **out, mien_err *e);
/* The parameters by graph tensor name, with metadata: arch "loaded", graph (onnx, tfjs), base
 * (the path), base_rel (its last two components), base_fnv1a, base_bytes, input, dim, mean,
 * scale, crop. */
int tr_export_loaded(const tr_net *net, const tr_loaded_opts *o, nn_ckpt *out, mien_err *e);
/* ==== Random numbers ====
 * Counter-based: the same (seed, a, b) gives the same number on every rank and run. */
uint64_t tr_hash3(uint64_t seed, uint64_t a, uint64_t b);
/* Uniform in [0, 1). */
double tr_uniform(uint64_t seed, uint64_t a, uint64_t b);
/* Standard normal (Box-Muller over two hashes). */
double tr_normal(uint64_t seed, uint64_t a, uint64_t b);

#endif
