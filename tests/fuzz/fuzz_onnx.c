/* libFuzzer target: the ONNX loader (protobuf parse, every op's shape logic and constant
 * folding, graph optimisation), then one run of the graph on the reference or fast backend.
 * A graph without fixed input dimensions is loaded at 1x3x32x32. Seeds: the PyTorch-exported
 * test networks (tools/onnx_make_tests.py) and the faceplugin models. */
#include "fuzz.h"
#include "run_graph.h"

#include "nn/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    nn_graph *g = NULL;
    mien_err e = {0};
    int rc = nn_onnx_load_buffer(data, size, "fuzz.onnx", NULL, &g, &e);
    if (rc != MIEN_OK) {
        if (g || !e.msg[0]) abort();
        const int64_t dims[4] = {1, 3, 32, 32};
        e.msg[0] = 0;
        rc = nn_onnx_load_buffer(data, size, "fuzz.onnx", dims, &g, &e);
        if (rc != MIEN_OK) {
            if (g || !e.msg[0]) abort();
            return 0;
        }
    }
    fuzz_run_graph(g, (int)(size & 1));
    nn_graph_free(g);
    return 0;
}
