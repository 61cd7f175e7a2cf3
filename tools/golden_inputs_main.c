/* Writes the input tensors of the golden cases (tests/golden_inputs.c) as raw float32 files
 * for the oracles. Used by tools/make_goldens.sh (TFJS) and tools/make_goldens_tflite.sh:
 *   golden_inputs MODELS_DIR OUT_DIR            ->  OUT_DIR/<case>.in.f32, and prints
 *                                                   "<case> <model> <height> <width>
 *                                                   <outputs or ->" per line;
 *   golden_inputs MODELS_DIR OUT_DIR --tflite   ->  the TFLite cases, "<case> <model> <height>
 *                                                   <width>" per line. */
#include "../tests/golden_inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int tflite = argc == 4 && !strcmp(argv[3], "--tflite");
    if (argc != 3 && !tflite) {
        fprintf(stderr, "usage: golden_inputs MODELS_DIR OUT_DIR [--tflite]\n");
        return 2;
    }
    const golden_case *cases = tflite ? golden_tflite_cases : golden_cases;
    int n_cases = tflite ? n_golden_tflite_cases : n_golden_cases;
    for (int i = 0; i < n_cases; i++) {
        const golden_case *c = &cases[i];
        float *t;
        mien_err e = {0};
        if (golden_make_input(argv[1], c, &t, &e)) {
            fprintf(stderr, "golden_inputs: %s: %s\n", c->name, e.msg);
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.in.f32", argv[2], c->name);
        FILE *f = fopen(path, "wb");
        int w = c->width ? c->width : c->side;
        size_t n = (size_t)c->side * w * 3;
        if (!f || fwrite(t, sizeof *t, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "golden_inputs: cannot write %s\n", path);
            return 1;
        }
        free(t);
        if (tflite) printf("%s %s %d %d\n", c->name, c->model, c->side, w);
        else printf("%s %s %d %d %s\n", c->name, c->model, c->side, w, c->outputs ? c->outputs : "-");
    }
    return 0;
}
