/* libFuzzer target: checkpoints written by `mien train` (the tensor container, its metadata,
 * and the embedder graph rebuilt from it), then one run of that graph.
 * Seeds: small checkpoints made by the train suite's networks. No models folder: a loaded-model
 * checkpoint's base is looked for only at the path it names (and refused unless its hash matches). */
#include "fuzz.h"
#include "run_graph.h"

#include "nn/ckpt.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    if (!fuzz_write("fuzz.ckpt", data, size, path, sizeof path)) return 0;
    nn_ckpt ts;
    mien_err e = {0};
    if (nn_ckpt_load(path, &ts, &e) == MIEN_OK) nn_ckpt_free(&ts);
    else if (!e.msg[0]) abort();
    nn_graph *g = NULL;
    nn_ckpt_embedder_info info;
    e.msg[0] = 0;
    if (nn_ckpt_load_embedder(path, NULL, &g, &info, &e) != MIEN_OK) {
        if (g || !e.msg[0]) abort();
        return 0;
    }
    if (info.size <= 0 || info.dim <= 0) abort();
    fuzz_run_graph(g, (int)(size & 1));
    nn_graph_free(g);
    return 0;
}
