/* Writes the input tensors of the golden cases (tests/golden_inputs.c) as raw float32 files
 * for the TFJS oracle. Used by tools/make_goldens.sh:
 *   golden_inputs MODELS_DIR OUT_DIR   ->  OUT_DIR/<case>.in.f32, and prints
 *   "<case> <model> <side> <height> <outputs or ->" per line. */
#include "../tests/golden_inputs.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: golden_inputs MODELS_DIR OUT_DIR\n");
        return 2;
    }
    for (int i = 0; i < n_golden_cases; i++) {
        const golden_case *c = &golden_cases[i];
        float *t;
        mien_err e = {0};
        if (golden_make_input(argv[1], c, &t, &e)) {
            fprintf(stderr, "golden_inputs: %s: %s\n", c->name, e.msg);
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.in.f32", argv[2], c->name);
        FILE *f = fopen(path, "wb");
        size_t n = (size_t)c->side * golden_height(c) * 3;
        if (!f || fwrite(t, sizeof *t, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "golden_inputs: cannot write %s\n", path);
            return 1;
        }
        free(t);
        printf("%s %s %d %d %s\n", c->name, c->model, c->side, golden_height(c),
               c->outputs ? c->outputs : "-");
    }
    return 0;
}
