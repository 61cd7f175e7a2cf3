/* Writes the input tensors of the face analysis models (tests/golden_inputs.c:
 * golden_analysis_input) as raw float32 files for the oracles, and the output names of mien's
 * graph of each model, in order. Used by tools/make_goldens_analysis.sh:
 *   analysis_inputs MODELS_DIR OUT_DIR  ->  OUT_DIR/<model>.in.f32, and prints
 *   "<model> <file> <N,H,W,C> <output>[,<output>...]" per line (file: under MODELS_DIR). */
#include "../tests/golden_inputs.h"

#include "face/analyze.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: analysis_inputs MODELS_DIR OUT_DIR\n");
        return 2;
    }
    for (int i = 0; i < n_golden_analysis_models; i++) {
        const char *name = golden_analysis_models[i];
        float *t;
        int64_t d[4];
        mien_err e = {0};
        nn_graph *g = NULL;
        if (golden_analysis_input(argv[1], name, &t, d, &e) || an_model_load(argv[1], name, &g, &e)) {
            fprintf(stderr, "analysis_inputs: %s: %s\n", name, e.msg);
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.in.f32", argv[2], name);
        FILE *f = fopen(path, "wb");
        size_t n = (size_t)(d[0] * d[1] * d[2] * d[3]);
        if (!f || fwrite(t, sizeof *t, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "analysis_inputs: cannot write %s\n", path);
            return 1;
        }
        free(t);
        printf("%s %s %lld,%lld,%lld,%lld ", name, an_model_file(name), (long long)d[0],
               (long long)d[1], (long long)d[2], (long long)d[3]);
        for (int k = 0; k < g->n_outputs; k++)
            printf("%s%s", k ? "," : "", g->t[g->outputs[k]].name);
        printf("\n");
        nn_graph_free(g);
    }
    return 0;
}
