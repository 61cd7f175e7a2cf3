/* libFuzzer target: face-api's weights-only models (a weights manifest whose architecture is
 * coded in src/nn/faceapi.c: dlib's ResNet, the 68-point nets, SSD MobileNetV1), then one run.
 * Input: weights-manifest JSON FUZZ_SEP weights; the input's length picks the architecture.
 * Seeds: face-api's manifests and weights. */
#include "fuzz.h"
#include "model_files.h"
#include "run_graph.h"

#include "nn/faceapi.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256];
    if (!fuzz_model_files(data, size, "model-weights_manifest.json", NULL, path, sizeof path))
        return 0;
    nn_graph *g = NULL;
    mien_err e = {0};
    int rc;
    switch (size % 4) {
    case 0: rc = nn_faceapi_recognition_load(path, &g, &e); break;
    case 1: rc = nn_faceapi_landmarks68_load(path, 0, &g, &e); break;
    case 2: rc = nn_faceapi_landmarks68_load(path, 1, &g, &e); break;
    default: rc = nn_faceapi_ssd_load(path, &g, &e); break;
    }
    if (rc != MIEN_OK) {
        if (g || !e.msg[0]) abort();
        return 0;
    }
    fuzz_run_graph(g, (int)((size >> 2) & 1));
    nn_graph_free(g);
    return 0;
}
