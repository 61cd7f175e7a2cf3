/* libFuzzer target: the TFLite reader (src/nn/flatbuf.c: every offset and length of the
 * flatbuffer) and loader (src/nn/tflite.c: the schema, every op's options, constants and
 * shapes, graph optimisation), then one run of the graph on the reference or fast backend.
 * Each input is loaded twice: with the file's own input shape, and at a small size taken
 * from the input's length (fully convolutional models such as MTCNN's P-Net then build at
 * another size, the others fail cleanly); graphs of little work run. Seeds: expo's five
 * models and the synthetic models of tools/tflite_make_tests.py (every supported op, and
 * hostile files). */
#include "fuzz.h"
#include "run_graph.h"

#include "nn/tflite.h"

/* Rough work of one run: multiply-adds of convolutions and matrix products, window sizes of
 * pools, one per value elsewhere. */
static double work(const nn_graph *g) {
    double w = nn_graph_flops(g);
    for (int i = 0; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        double k = n->op == NN_OP_MAXPOOL || n->op == NN_OP_AVGPOOL ? (double)n->kernel[0] * n->kernel[1] : 1;
        w += k * (double)g->t[n->out].n;
    }
    return w;
}

static void load(const uint8_t *data, size_t size, const int64_t *dims) {
    nn_graph *g = NULL;
    mien_err e = {0};
    if (nn_tflite_load_buffer(data, size, "fuzz.tflite", dims, &g, &e) != MIEN_OK) {
        if (g || !e.msg[0]) abort(); /* a refusal always says why, and leaves no graph */
        return;
    }
    if (g->n_inputs != 1 || g->n_outputs < 1) abort();
    /* Run small graphs only: MobileFaceNet on the reference backend under the sanitizers
     * takes seconds (each seed a timeout), and so does a pool with a 1x1500 window. */
    if (work(g) < 2e7) fuzz_run_graph(g, (int)(size & 1));
    nn_graph_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load(data, size, NULL);
    const int64_t dims[4] = {1, 12 + (int64_t)(size % 29), 12 + (int64_t)(size / 29 % 31), 3};
    load(data, size, dims);
    return 0;
}
