/* Face analysis (mien_analyze): the model table, the models a model set loaded for it, and
 * the per-session executors. See analyze.c for each model's crop, normalisation and output. */
#ifndef MIEN_FACE_ANALYZE_H
#define MIEN_FACE_ANALYZE_H

#include "core/err.h"
#include "mien.h"
#include "nn/exec.h"
#include "nn/graph.h"

#define AN_MAX_MODELS 16     /* models loaded at once (all tasks together) */
#define AN_MAX_PER_TASK 4    /* models whose answers are averaged for one task */
#define AN_TASKS 7           /* the bits of MIEN_ANALYZE_ALL */

struct an_spec;

typedef struct an_model {
    const struct an_spec *spec;
    nn_graph *g;
    int feat_out;            /* graph output of the spec's feature tensor, -1: none */
} an_model;

typedef struct an_models {
    an_model m[AN_MAX_MODELS];
    int n;
    /* Per task (bit index): the models answering it, indices into m. */
    int task_models[AN_TASKS][AN_MAX_PER_TASK];
    int n_task_models[AN_TASKS];
    char names[AN_TASKS][128];   /* "fr_age+gear" */
    unsigned tasks;              /* MIEN_ANALYZE_* answerable */
    int eye_model;               /* index of fr_eye (quality's eyes-open part), -1: none */
    float liveness_threshold;
    /* The mask classifier: a linear head on the features of model mask_base (a checkpoint of
     * `mien train attribute`): p(mask) = softmax(W^T ((f - mean) * scale) + b)[1]. */
    int mask_base;               /* index into m, -1: none */
    int mask_dim;                /* F */
    float *mask_mean, *mask_scale; /* (F) */
    float *mask_w;               /* (F, 2) */
    float mask_b[2];
} an_models;

/* Load the models of the tasks in cfg->analyze (and those quality needs) from dir, as chosen
 * by cfg->analysis. *out is NULL when no task is asked for. */
int an_models_open(const char *dir, const mien_config *cfg, an_models **out, mien_err *e);
void an_models_free(an_models *a);

/* One executor per loaded model. */
typedef struct an_session {
    nn_exec *x[AN_MAX_MODELS];
    float *buf;                  /* scratch for crops: the largest input, (S, S, 3) */
    size_t buf_n;
    /* Crops shared between models: models whose crop (rectangle, side, fit) is the same read
     * one warp of the face (face-api's age-gender and expression nets take the same 112 x
     * 112 square), and a mirrored pass reads it backwards instead of warping again. */
    int crop_of[AN_MAX_MODELS];  /* the model whose crop buffer model k reads */
    float *crop[AN_MAX_MODELS];  /* (S, S, 3) raw RGB crop, for the models k == crop_of[k] */
} an_session;

int an_session_open(const an_models *a, const nn_exec_opts *o, an_session **out, mien_err *e);
void an_session_free(an_session *s);

/* Names of the known analysis models with their tasks, for `mien models` and messages:
 * name i (0-based), NULL past the end; *tasks receives its MIEN_ANALYZE_* bits. */
const char *an_model_name(int i, unsigned *tasks);

/* The features of model `name` (loaded in s's model set, with a feature tensor) for face f:
 * the crop of that model (mirrored with flip), run, its feature tensor copied to out (room
 * for cap floats); *dim receives their number. For training heads (mien train attribute). */
int an_features(mien_session *s, const mien_image *img, const mien_face *f, const char *name,
                int flip, float *out, int cap, int *dim);

/* For the golden tests (tests/test_analysis.c, tools/make_goldens_analysis.sh): load model
 * `name` of the table as mien_analyze does, and fill its input tensor for face f of img (the
 * crop not mirrored; fr_eye: the first eye) into out, room for cap floats; dims receives
 * (1, S, S, channels). */
int an_model_load(const char *dir, const char *name, nn_graph **g, mien_err *e);
/* The file of model `name` under the models folder, NULL for an unknown name. */
const char *an_model_file(const char *name);
int an_model_input(const char *name, const mien_image *img, const mien_face *f, float *out,
                   size_t cap, int64_t dims[4], mien_err *e);

/* Head pose from the five alignment points alone (scaled orthographic fit to a mean 3-D face;
 * analyze.c), whose x, y are where landmark source `source` (an lm_kind; -1: the mesh's) puts
 * the points on an average LFW face. Returns 0 when the points are degenerate. */
int an_pose_from_points(const mien_face *f, int source, float *yaw, float *pitch, float *roll);
/* The same fit of a face's 68 landmarks (n_landmarks 68: --landmarks 68 or facemesh+68) to
 * a mean 3-D face of the 68 points. Returns 0 when the face has no 68 points or they are
 * degenerate. */
int an_pose_from_68(const mien_face *f, float *yaw, float *pitch, float *roll);
/* Its mean face (68 x 3), for the tests. */
const float (*an_mean_face68(void))[3];

#endif
