/* Inputs of the golden tests: real photos turned into network input tensors by a fixed recipe
 * (decode, letterbox or align), shared by the test (tests/test_golden.c) and the tool that
 * makes the golden outputs with the TFJS oracle, or for ONNX models the PyTorch one
 * (tools/golden_inputs_main.c, make_goldens.sh). */
#ifndef MIEN_GOLDEN_INPUTS_H
#define MIEN_GOLDEN_INPUTS_H

#include "core/err.h"

typedef struct golden_case {
    const char *name;        /* file stem under tests/golden/ */
    const char *model;       /* under the models folder */
    const char *image;       /* under the models folder (demo photos fetched by the setup) */
    int side;                /* network input side */
    int kind;                /* GOLDEN_LETTERBOX or GOLDEN_ALIGNED */
    int face;                /* GOLDEN_ALIGNED: which detected face (by score order) */
    float mean, scale;       /* input = (pixel - mean) * scale */
    int h;                   /* GOLDEN_LETTERBOX: input height when not side (width: side) */
    const char *outputs;     /* ONNX models: the values to compare, comma-separated (the
                              * model is cut there, as mien's detector table cuts it) */
} golden_case;

enum { GOLDEN_LETTERBOX = 0, GOLDEN_ALIGNED = 1 };

extern const golden_case golden_cases[];
extern const int n_golden_cases;

/* Input height of case c (side unless h is given). */
static inline int golden_height(const golden_case *c) { return c->h > 0 ? c->h : c->side; }

/* Make the input tensor (height, side, 3) of case c into out (malloc'd). */
int golden_make_input(const char *models_dir, const golden_case *c, float **out, mien_err *e);

#endif
