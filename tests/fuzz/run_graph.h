/* Run a graph a model target loaded once, on the reference or the fast backend, when its
 * activations fit a small budget of 16 MB (refused before any allocation otherwise) (a fuzzed file may describe a legal but huge network: that is
 * a slow input, not a finding). Inputs are filled with a fixed pattern. */
#ifndef MIEN_FUZZ_RUN_GRAPH_H
#define MIEN_FUZZ_RUN_GRAPH_H

#include "nn/exec.h"

#include <stdlib.h>

static inline void fuzz_run_graph(const nn_graph *g, int fast) {
    nn_exec_opts o = {.backend = fast ? NN_BACKEND_FAST : NN_BACKEND_REF, .threads = 1,
                      .max_arena_bytes = (size_t)16 << 20};
    nn_exec *x = NULL;
    mien_err e = {0};
    if (nn_exec_create(g, &o, &x, &e) != MIEN_OK) {
        if (!e.msg[0]) abort(); /* a refusal always says why */
        nn_exec_free(x);
        return;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const nn_tensor *t = &g->t[g->inputs[i]];
        float *in = nn_exec_input(x, i);
        for (int64_t k = 0; k < t->n; k++) in[k] = (float)((k * 7) % 13) / 13.f - 0.5f;
    }
    if (nn_exec_run(x, &e) != MIEN_OK && !e.msg[0]) abort();
    nn_exec_free(x);
}

#endif
