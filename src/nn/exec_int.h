/* The inside of an nn_exec, for the files that make and read one: exec.c (planning, the
 * backends' kernels, running), exec_view.c (what kernels read) and backend_ref.c (the
 * reference backend's kernel wrapper). Everything else goes through exec.h. */
#ifndef MIEN_NN_EXEC_INT_H
#define MIEN_NN_EXEC_INT_H

#include "nn/exec.h"

struct nn_exec {
    const nn_graph *g;
    float *arena;             /* all activations, 64-byte aligned */
    size_t arena_bytes;
    float **ptr;              /* (n_t) data pointer of every tensor */
    nn_kernel *kernels;       /* (n_nodes) */
    const nn_backend *fast;   /* NULL for the reference-only exec */
    void *fast_ctx;
};

#endif
