/* Inputs of the golden tests: real photos turned into network input tensors by a fixed recipe
 * (decode, letterbox or align), shared by the test (tests/test_golden.c) and the tool that
 * makes the golden outputs with the TFJS oracle (tools/golden_inputs.c, make_goldens.sh). */
#ifndef MIEN_GOLDEN_INPUTS_H
#define MIEN_GOLDEN_INPUTS_H

#include "core/err.h"

#include <stdint.h>

typedef struct golden_case {
    const char *name;        /* file stem under tests/golden/ */
    const char *model;       /* under the models folder */
    const char *image;       /* under the models folder (demo photos fetched by the setup) */
    int side;                /* network input side */
    int kind;                /* GOLDEN_LETTERBOX or GOLDEN_ALIGNED */
    int face;                /* GOLDEN_ALIGNED: which detected face (by score order) */
    float mean, scale;       /* input = (pixel - mean) * scale */
    int width;               /* GOLDEN_LETTERBOX: input width when not side (height is side) */
    const char *outputs;     /* the outputs to compare, comma-separated (NULL: the model's);
                              * ONNX models are cut there, as mien's detector table cuts them */
} golden_case;

enum { GOLDEN_LETTERBOX = 0, GOLDEN_ALIGNED = 1 };

extern const golden_case golden_cases[];
extern const int n_golden_cases;
/* The TFLite models (tests/test_tflite.c, goldens from tools/tflite_oracle.py). */
extern const golden_case golden_tflite_cases[];
extern const int n_golden_tflite_cases;

/* Input width of case c (side unless width is given). */
static inline int golden_width(const golden_case *c) { return c->width > 0 ? c->width : c->side; }

/* Make the input tensor (side, width or side, 3) of case c into out (malloc'd). */
int golden_make_input(const char *models_dir, const golden_case *c, float **out, mien_err *e);

/* ==== Face analysis models (tests/test_analysis.c, tools/make_goldens_analysis.sh) ====
 * Each model of the analysis table that is not a face-api net (those are checked in
 * test_faceapi.c), run on its own crop of a face of demo/sample1.jpg whose five alignment
 * points are fixed here (what the default pipeline found), so that the input does not depend
 * on the detector. */
extern const char *const golden_analysis_models[];
extern const int n_golden_analysis_models;
/* The input tensor (malloc'd) of analysis model `name` and its dims (1, S, S, channels). */
int golden_analysis_input(const char *models_dir, const char *name, float **out, int64_t dims[4],
                          mien_err *e);

#endif
