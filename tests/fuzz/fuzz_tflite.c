// libFuzzer target for the TFLite reader (src/nn/flatbuf.c) and loader (src/nn/tflite.c).
//
//   make fuzz-tflite                      build build/fuzz_tflite (clang, libFuzzer, ASan,
//                                         UBSan) and run it for FUZZ_SECONDS (default 600)
//   make fuzz-tflite FUZZ_SECONDS=1800
//
// The corpus (build/fuzz-tflite-corpus) is seeded with expo's five .tflite files, the small
// synthetic models of tools/tflite_make_tests.py (every supported op) and tests/fuzz/tflite/
// (inputs that once crashed, replayed by the test suite: `run_tests tflite`).
//
// Each input is loaded twice: with the file's own input shape, and with a small input size
// taken from the input's length (P-Net style fully convolutional models then build at
// another size). A graph that loads and computes little (under 1M values in all) is also
// run once on the reference backend: whatever the loader accepts must execute safely.
#include "nn/exec.h"
#include "nn/tflite.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_run(nn_graph *g) {
    int64_t total = 0;
    for (int i = 0; i < g->n_nodes; i++) total += g->t[g->nodes[i].out].n;
    if (total > (1 << 20)) return;
    mien_err e = {0};
    nn_exec *x = NULL;
    nn_exec_opts o = {NN_BACKEND_REF, 1};
    if (nn_exec_create(g, &o, &x, &e)) return;
    for (int i = 0; i < g->n_inputs; i++) {
        float *p = nn_exec_input(x, i);
        for (int64_t k = 0; k < g->t[g->inputs[i]].n; k++) p[k] = (float)(k % 7) * 0.25f - 0.5f;
    }
    nn_exec_run(x, &e);
    nn_exec_free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mien_err e = {0};
    nn_graph *g = NULL;
    if (nn_tflite_load_buffer(data, size, "fuzz", NULL, &g, &e) == MIEN_OK) {
        try_run(g);
        nn_graph_free(g);
    }
    int64_t dims[4] = {1, 12 + (int64_t)(size % 29), 12 + (int64_t)(size / 29 % 31), 3};
    g = NULL;
    if (nn_tflite_load_buffer(data, size, "fuzz", dims, &g, &e) == MIEN_OK) {
        try_run(g);
        nn_graph_free(g);
    }
    return 0;
}
