/* An exec as its kernels and callers read it: tensor data, the graph, the fast backend's
 * context. Apart from exec.c (which makes an exec and picks its backends) so that a backend
 * can read its exec without depending on the file that chooses it. */
#include "nn/exec.h"
#include "nn/exec_int.h"

#include <stddef.h>

float *nn_exec_tensor(const nn_exec *x, int t) {
    return t >= 0 && t < x->g->n_t ? x->ptr[t] : NULL;
}

const nn_graph *nn_exec_graph(const nn_exec *x) { return x->g; }
void *nn_exec_backend_ctx(const nn_exec *x) { return x->fast_ctx; }
