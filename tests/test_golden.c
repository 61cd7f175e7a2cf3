/* Golden tests: the TFJS graph models on real photos, against the outputs of the original
 * models run by TensorFlow.js, and the ONNX ones against PyTorch running the ONNX file
 * (tools/make_goldens.sh), on the reference and fast backends. */
#include "testutil.h"
#include "golden_inputs.h"

#include "face/face.h"
#include "nn/exec.h"
#include "nn/onnx.h"
#include "nn/tfjs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compare every output of case c with its golden file; returns the worst relative error
 * (absolute difference over the largest |value| of that output, at least 1). */
static double run_case(const golden_case *c, nn_backend_kind backend) {
    mien_err e = {0};
    float *in;
    ck_assert_msg(golden_make_input(tu_models_dir(), c, &in, &e) == MIEN_OK, "%s: %s", c->name, e.msg);
    nn_graph *g;
    const int H = c->side, W = golden_width(c);
    const char *path = tu_path("%s/%s", tu_models_dir(), c->model);
    /* "a,b,c": the outputs compared (for ONNX models, the values the model is cut at) */
    char buf[256], *names[8], *save = NULL;
    int n = 0;
    snprintf(buf, sizeof buf, "%s", c->outputs ? c->outputs : "");
    for (char *t = strtok_r(buf, ",", &save); t && n < 8; t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    if (strstr(c->model, ".onnx")) {
        int64_t dims[4] = {1, 3, H, W};
        ck_assert_msg(nn_onnx_load_outputs(path, dims, (const char *const *)names, n, &g, &e) == 0,
                      "%s", e.msg);
    } else {
        int64_t dims[4] = {1, H, W, 3};
        ck_assert_msg(nn_tfjs_load(path, dims, n ? (const char *const *)names : NULL, n, &g, &e) == 0,
                      "%s", e.msg);
    }
    nn_exec *x;
    nn_exec_opts o = {.backend = backend, .threads = 1};
    ck_assert_msg(nn_exec_create(g, &o, &x, &e) == 0, "%s", e.msg);
    memcpy(nn_exec_input(x, 0), in, (size_t)W * H * 3 * sizeof(float));
    ck_assert_msg(nn_exec_run(x, &e) == 0, "%s", e.msg);
    double worst = 0;
    for (int k = 0; k < g->n_outputs; k++) {
        const nn_tensor *t = &g->t[g->outputs[k]];
        const char *p = tu_path("tests/golden/%s.%d.f32", c->name, k);
        FILE *f = fopen(p, "rb");
        ck_assert_msg(f != NULL, "missing golden %s", p);
        float *ref = malloc((size_t)t->n * sizeof *ref);
        size_t got = fread(ref, sizeof *ref, (size_t)t->n + 1, f);
        fclose(f);
        ck_assert_msg(got == (size_t)t->n, "%s: golden has %zu values, model gives %lld", p, got,
                      (long long)t->n);
        const float *y = nn_exec_output(x, k);
        double maxref = 1, maxd = 0;
        for (int64_t i = 0; i < t->n; i++) {
            maxref = fmax(maxref, fabs(ref[i]));
            maxd = fmax(maxd, fabs((double)y[i] - ref[i]));
        }
        worst = fmax(worst, maxd / maxref);
        free(ref);
    }
    nn_exec_free(x);
    nn_graph_free(g);
    free(in);
    return worst;
}

START_TEST(golden_ref) {
    const golden_case *c = &golden_cases[_i];
    double err = run_case(c, NN_BACKEND_REF);
    ck_assert_msg(err <= 1e-4, "%s (reference): relative error %.3g > 1e-4", c->name, err);
}
END_TEST

START_TEST(golden_fast) {
    const golden_case *c = &golden_cases[_i];
    double err = run_case(c, NN_BACKEND_FAST);
    ck_assert_msg(err <= 1e-4, "%s (fast): relative error %.3g > 1e-4", c->name, err);
}
END_TEST

static float *read_golden(const char *name, int k, int64_t n) {
    const char *p = tu_path("tests/golden/%s.%d.f32", name, k);
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "missing golden %s", p);
    float *v = malloc((size_t)n * sizeof *v);
    ck_assert(v != NULL);
    size_t got = fread(v, sizeof *v, (size_t)n + 1, f);
    fclose(f);
    ck_assert_msg(got == (size_t)n, "%s: %zu values, expected %lld", p, got, (long long)n);
    return v;
}

/* mien's UltraFace priors (detectors.c) at the exported size decode the network's offsets
 * into the boxes the file's own decoding gives (its 320x240 priors are constants in it). */
START_TEST(ultraface_priors) {
    det_model d;
    mien_err e = {0};
    ck_assert_msg(face_detector_open(tu_models_dir(), "ultraface@320x240", &d, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(d.n_pass, 1);
    ck_assert_int_eq(d.pass[0].n_anchors, 4420);
    float *loc = read_golden("ultraface_sample1_320", 1, 4420 * 4);
    float *box = read_golden("ultraface_sample1_320", 2, 4420 * 4);
    double worst = 0;
    for (int a = 0; a < d.pass[0].n_anchors; a++) {
        const det_anchor *p = &d.pass[0].anchors[a];
        const float *l = loc + 4 * a;
        float cx = p->cx + l[0] * 0.1f * p->w, cy = p->cy + l[1] * 0.1f * p->h;
        float w = p->w * expf(l[2] * 0.2f), h = p->h * expf(l[3] * 0.2f);
        const float mine[4] = {(cx - w / 2) / 320, (cy - h / 2) / 240, (cx + w / 2) / 320, (cy + h / 2) / 240};
        for (int k = 0; k < 4; k++) worst = fmax(worst, fabs(mine[k] - box[4 * a + k]));
    }
    ck_assert_msg(worst < 1e-5, "decoded boxes differ from the file's by %.3g", worst);
    free(loc);
    free(box);
    face_detector_close(&d);
}
END_TEST

Suite *suite_golden(void) {
    Suite *s = suite_create("golden");
    TCase *t = tcase_create("tfjs");
    tcase_set_timeout(t, 600);
    tcase_add_loop_test(t, golden_ref, 0, n_golden_cases);
    tcase_add_loop_test(t, golden_fast, 0, n_golden_cases);
    tcase_add_test(t, ultraface_priors);
    suite_add_tcase(s, t);
    return s;
}
