/* Reference kernels, callable on raw pointers (used by nn_exec and by constant folding). */
#ifndef MIEN_NN_BACKEND_REF_H
#define MIEN_NN_BACKEND_REF_H

#include "nn/graph.h"

/* Compute node n of g from its input data (in[i] for n->in[i]) into out (sized as the
 * node's output tensor). */
int nn_ref_eval(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                mien_err *e);
int nn_ref_has_op(nn_op op);

/* nn_ref_eval with the node's fused activation split off: the kernel runs without it (bias
 * included), its result is copied to pre when pre is not NULL (sized as the output), then the
 * activation is applied to out. The training forward pass (src/train/autograd.c) keeps pre for
 * the backward. The activation is applied here for any op, so a node of an op whose kernel
 * has none of its own (batchnorm) may carry one; a PReLU alpha is the node's last input. */
int nn_ref_eval_pre(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                    float *pre, mien_err *e);

#endif
