/* libFuzzer target: the TFJS graph-model loader (model.json topology, every op's attributes
 * and shapes, the weights manifest with float32/float16/uint8 quantisation), then one run.
 * Input: model.json FUZZ_SEP weights. Seeds: the human models' model.json and weights. */
#include "fuzz.h"
#include "model_files.h"
#include "run_graph.h"

#include "nn/tfjs.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    if (!fuzz_model_files(data, size, "model.json", "weightsManifest", path, sizeof path))
        return 0;
    /* Models with a fixed input size load as they are; the rest at 1x32x32x3. */
    static const int64_t dims[4] = {1, 32, 32, 3};
    nn_graph *g = NULL;
    mien_err e = {0};
    int rc = nn_tfjs_load(path, (size & 1) ? dims : NULL, NULL, 0, &g, &e);
    if (rc != MIEN_OK) {
        if (g || !e.msg[0]) abort();
        return 0;
    }
    fuzz_run_graph(g, (int)(size & 2));
    nn_graph_free(g);
    return 0;
}
