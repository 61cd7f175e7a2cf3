/* Golden tests: the TFJS graph models on real photos, against the outputs of the original
 * models run by TensorFlow.js (tools/make_goldens.sh), on the reference and fast backends. */
#include "testutil.h"
#include "golden_inputs.h"

#include "nn/exec.h"
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
    int64_t dims[4] = {1, c->side, c->side, 3};
    ck_assert_msg(nn_tfjs_load(tu_path("%s/%s", tu_models_dir(), c->model), dims, NULL, 0, &g, &e) == 0,
                  "%s", e.msg);
    nn_exec *x;
    nn_exec_opts o = {.backend = backend, .threads = 1};
    ck_assert_msg(nn_exec_create(g, &o, &x, &e) == 0, "%s", e.msg);
    memcpy(nn_exec_input(x, 0), in, (size_t)c->side * c->side * 3 * sizeof(float));
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

Suite *suite_golden(void) {
    Suite *s = suite_create("golden");
    TCase *t = tcase_create("tfjs");
    tcase_set_timeout(t, 600);
    tcase_add_loop_test(t, golden_ref, 0, n_golden_cases);
    tcase_add_loop_test(t, golden_fast, 0, n_golden_cases);
    suite_add_tcase(s, t);
    return s;
}
