/* Reference kernels, callable on raw pointers (used by nn_exec and by constant folding). */
#ifndef MIEN_NN_BACKEND_REF_H
#define MIEN_NN_BACKEND_REF_H

#include "nn/graph.h"

/* Compute node n of g from its input data (in[i] for n->in[i]) into out (sized as the
 * node's output tensor). */
int nn_ref_eval(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                mien_err *e);
int nn_ref_has_op(nn_op op);

#endif
