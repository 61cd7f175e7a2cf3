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
} an_session;

int an_session_open(const an_models *a, const nn_exec_opts *o, an_session **out, mien_err *e);
void an_session_free(an_session *s);

/* Names of the known analysis models with their tasks, for `mien models` and messages:
 * name i (0-based), NULL past the end; *tasks receives its MIEN_ANALYZE_* bits. */
const char *an_model_name(int i, unsigned *tasks);

/* Head pose from the five alignment points alone (scaled orthographic fit to a mean 3-D face;
 * analyze.c). Returns 0 when the points are degenerate. */
int an_pose_from_points(const mien_face *f, float *yaw, float *pitch, float *roll);

#endif
