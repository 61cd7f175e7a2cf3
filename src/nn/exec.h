/* Running a graph. An nn_exec binds an immutable nn_graph to one arena of activation memory
 * (planned once: tensors whose lifetimes do not overlap share bytes) and to one kernel per
 * node, taken from the fast backend when it supports the node and from the reference backend
 * otherwise. One nn_exec per thread; many may share a graph. */
#ifndef MIEN_NN_EXEC_H
#define MIEN_NN_EXEC_H

#include "nn/graph.h"

typedef struct nn_exec nn_exec;

typedef enum nn_backend_kind {
    NN_BACKEND_REF = 0,      /* plain C for every node */
    NN_BACKEND_FAST = 1,     /* XNNPACK where supported, reference for the rest (all of it
                              * in a build without XNNPACK) */
} nn_backend_kind;

typedef struct nn_exec_opts {
    nn_backend_kind backend;
    int threads;             /* intra-op threads for the fast backend; <= 1: single thread */
    size_t max_arena_bytes;  /* refuse (MIEN_ETOOBIG) a graph whose activations need more;
                              * 0: NN_MAX_ARENA_BYTES, which is also the most allowed */
} nn_exec_opts;

int nn_exec_create(const nn_graph *g, const nn_exec_opts *o, nn_exec **out, mien_err *e);
void nn_exec_free(nn_exec *x);

/* Buffer of input i (dims: the graph's input tensor), to fill before nn_exec_run. No run
 * writes it, so it keeps its values for the next run. */
float *nn_exec_input(nn_exec *x, int i);
int nn_exec_run(nn_exec *x, mien_err *e);
/* Run node i alone (nodes must run in order 0..n_nodes-1 for a whole pass): nn_exec_run is
 * this in a loop; profilers time each call. */
int nn_exec_run_node(nn_exec *x, int i, mien_err *e);
/* Output i after a run (dims: g->t[g->outputs[i]]). Valid until the next run. */
const float *nn_exec_output(const nn_exec *x, int i);
/* Data pointer of any tensor (constants included). Intermediate tensors share memory, so
 * only inputs, outputs and constants are meaningful after a run. */
float *nn_exec_tensor(const nn_exec *x, int t);
const nn_graph *nn_exec_graph(const nn_exec *x);
/* Bytes of the activation arena (for reporting). */
size_t nn_exec_arena_bytes(const nn_exec *x);
/* Name of the kernel family that runs node i: "ref", or for the fast backend "xnnpack" (an
 * XNNPACK operator) or "own" (one of its own kernels). */
const char *nn_exec_node_backend(const nn_exec *x, int i);

/* ==== Backend interface ====
 * A backend turns a node into a kernel for one exec. init() runs after the arena is planned,
 * so it may bind input/output pointers once (XNNPACK's setup) and pack weights. */
typedef struct nn_kernel {
    int (*run)(nn_exec *x, const nn_node *n, void *state, mien_err *e);
    void (*free)(void *state);
    void *state;
    const char *backend;     /* name, for reports */
} nn_kernel;

typedef struct nn_backend {
    const char *name;
    int (*supports)(const nn_graph *g, const nn_node *n);
    int (*init)(nn_exec *x, const nn_node *n, nn_kernel *k, mien_err *e);
    /* Per-exec backend context (e.g. a thread pool); may be NULL. */
    int (*exec_init)(nn_exec *x, int threads, void **ctx, mien_err *e);
    void (*exec_free)(void *ctx);
} nn_backend;

extern const nn_backend nn_backend_ref;
#ifdef MIEN_HAVE_XNNPACK
extern const nn_backend nn_backend_xnnpack;
#endif

/* The registry (backends.c): the fast backend of this build for NN_BACKEND_FAST execs, NULL
 * in a build without one (then the reference runs every node). */
const nn_backend *nn_backend_fast(void);

/* The backend context of exec x for backend b (what b->exec_init made). */
void *nn_exec_backend_ctx(const nn_exec *x);

/* Run one node with the reference kernels (also the fallback inside fast backends). */
int nn_ref_run_node(nn_exec *x, const nn_node *n, mien_err *e);

#endif
