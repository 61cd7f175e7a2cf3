/* TensorFlow.js models: weight manifests (fp32, float16 and uint8/uint16-quantized weights)
 * and graph models (model.json with modelTopology + weightsManifest). */
#ifndef MIEN_NN_TFJS_H
#define MIEN_NN_TFJS_H

#include "nn/graph.h"

typedef struct nn_weight {
    char *name;
    int ndim;
    int64_t dims[NN_MAX_DIMS];
    int64_t n;               /* number of values */
    float *f;                /* float weights, dequantized (NULL for int32) */
    int32_t *i;              /* int32 weights (NULL for floats) */
} nn_weight;

typedef struct nn_weights {
    nn_weight *w;            /* (n) in manifest order */
    int n;
} nn_weights;

/* Parse a weights manifest (a JSON array of {paths, weights}) whose shard files are found
 * relative to dir, and dequantize every weight. */
int nn_weights_load_manifest(const void *manifest_json /* cJSON * */, const char *dir,
                             nn_weights *out, mien_err *e);
/* Same, from a *-weights_manifest.json file (face-api's weights-only models). */
int nn_weights_load_file(const char *manifest_path, nn_weights *out, mien_err *e);
const nn_weight *nn_weights_find(const nn_weights *w, const char *name);
void nn_weights_free(nn_weights *w);

/* Load a TFJS graph model (model.json + its .bin shards) into a graph for one input shape.
 * input_dims (4 values, NHWC) overrides the placeholder's shape; NULL takes it from the
 * model with unknown (-1) dimensions set to 1. Unsupported ops fail here, naming the op.
 * The graph's outputs are the model's outputs in the order of output_names (NULL: the
 * signature's order if present, else every node nobody consumes, in file order). */
int nn_tfjs_load(const char *model_json_path, const int64_t *input_dims,
                 const char *const *output_names, int n_output_names, nn_graph **out,
                 mien_err *e);

#endif
