/* face-api's coded architectures (src/nn/faceapi.c) against face-api itself: the golden
 * outputs in tests/golden/faceapi_* were written by tools/faceapi_oracle.js (the real
 * @vladmandic/face-api 1.7.15 on TFJS's CPU backend) from synthetic inputs that this file
 * computes the same way (synth_image, integer arithmetic only, so both sides see identical
 * pixels); tools/make_goldens_faceapi.sh regenerates them. Each graph runs on the reference
 * and on the fast backend.
 *
 * Tolerance: max |ours - golden| <= 1e-4 * max(max |golden|, 1e-3) per output tensor (see
 * test_backend_ops.c for why the tensor's scale is the meaningful reference). */
#include "testutil.h"
#include "nn/exec.h"
#include "nn/faceapi.h"
#include "nn/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOL 1e-4
#define GOLDEN_DIR "tests/golden"

/* ==== Helpers ==== */

/* The synthetic face picture of tools/faceapi_oracle.js (synthImage), HWC RGB 0..255:
 *   tri(t, p) = |t mod 2p - p|
 *   background  v = 40 + 100x/W + 60y/H + 20c + tri(3x + 5y + 7c + 11s, 16) - 8
 *   face        ellipse centre (W/2 + sW/20, 11H/20), semi-axes (8W/25, 21H/50):
 *               v = (205,160,135)[c] - 40y/H + tri(2x + 3y + 5s, 12) - 6
 *   eyes        ellipses centre (7W/20 + sW/20, 9H/20), (13W/20 + sW/20, 9H/20),
 *               semi-axes (W/12, H/25): v = (45,35,30)[c]
 *   mouth       ellipse centre (W/2 + sW/20, 3H/4), semi-axes (W/7, H/22): v = (150,50,60)[c]
 * integer division throughout, clamped to 0..255, later shapes over earlier ones. */
static long tri(long t, long p) { return labs(t % (2 * p) - p); }

static int in_ellipse(long x, long y, long cx, long cy, long a, long b) {
    long dx = x - cx, dy = y - cy;
    return dx * dx * b * b + dy * dy * a * a <= a * a * b * b;
}

static void synth_image(float *out, long W, long H, long s) {
    static const int skin[3] = {205, 160, 135}, eye[3] = {45, 35, 30}, lip[3] = {150, 50, 60};
    long off = s * W / 20;
    for (long y = 0; y < H; y++)
        for (long x = 0; x < W; x++)
            for (long c = 0; c < 3; c++) {
                long v = 40 + 100 * x / W + 60 * y / H + 20 * c +
                         tri(3 * x + 5 * y + 7 * c + 11 * s, 16) - 8;
                if (in_ellipse(x, y, W / 2 + off, 11 * H / 20, 8 * W / 25, 21 * H / 50))
                    v = skin[c] - 40 * y / H + tri(2 * x + 3 * y + 5 * s, 12) - 6;
                if (in_ellipse(x, y, 7 * W / 20 + off, 9 * H / 20, W / 12, H / 25) ||
                    in_ellipse(x, y, 13 * W / 20 + off, 9 * H / 20, W / 12, H / 25))
                    v = eye[c];
                if (in_ellipse(x, y, W / 2 + off, 3 * H / 4, W / 7, H / 22)) v = lip[c];
                out[(y * W + x) * 3 + c] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

/* Read exactly n float32 values (malloc'd). */
static float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (tools/make_goldens_faceapi.sh writes it)", path);
    float *v = malloc(n * sizeof *v + 1);
    ck_assert_ptr_nonnull(v);
    size_t got = fread(v, sizeof *v, n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    ck_assert_msg(got == n && !extra, "%s: expected %zu floats", path, n);
    return v;
}

/* max |a - ref| / max(max |ref|, 1e-3) */
static double rel_diff(const float *a, const float *ref, size_t n) {
    double d = 0, s = 1e-3;
    for (size_t i = 0; i < n; i++) {
        double di = fabs((double)a[i] - ref[i]);
        if (!(di <= d)) d = di; /* NaN sticks */
        if (fabs(ref[i]) > s) s = fabs(ref[i]);
    }
    return d / s;
}

static nn_graph *load_or_fail(int (*load)(const char *, nn_graph **, mien_err *),
                              const char *file) {
    const char *path = tu_path("%s/faceapi/%s", tu_models_dir(), file);
    mien_err e = {0};
    nn_graph *g = NULL;
    int rc = load(path, &g, &e);
    ck_assert_msg(rc == MIEN_OK && g, "loading %s: %s", path, e.msg);
    return g;
}

/* Run g on the synthetic image of seed s with both backends and compare every output with
 * GOLDEN_DIR/<golden>_s<seed>.<i>.f32. Prints the measured differences. */
static void check_golden(const nn_graph *g, const char *golden, int seed) {
    const nn_tensor *tin = &g->t[g->inputs[0]];
    int H = (int)tin->dims[1], W = (int)tin->dims[2];
    float *img = malloc((size_t)W * H * 3 * sizeof *img);
    ck_assert_ptr_nonnull(img);
    synth_image(img, W, H, seed);
    for (int k = 0; k < 2; k++) {
        nn_exec_opts o = {.backend = k ? NN_BACKEND_FAST : NN_BACKEND_REF, .threads = 1};
        nn_exec *x = NULL;
        mien_err e = {0};
        ck_assert_msg(nn_exec_create(g, &o, &x, &e) == MIEN_OK, "%s", e.msg);
        memcpy(nn_exec_input(x, 0), img, (size_t)W * H * 3 * sizeof *img);
        ck_assert_msg(nn_exec_run(x, &e) == MIEN_OK, "%s", e.msg);
        if (k) { /* the fast exec must really run the convolutions off the reference path */
            int fast_nodes = 0;
            for (int i = 0; i < g->n_nodes; i++)
                fast_nodes += strcmp(nn_exec_node_backend(x, i), "ref") != 0;
            ck_assert_msg(fast_nodes > g->n_nodes / 2, "only %d of %d nodes on the fast backend",
                          fast_nodes, g->n_nodes);
        }
        for (int i = 0; i < g->n_outputs; i++) {
            size_t n = (size_t)g->t[g->outputs[i]].n;
            float *ref = read_f32(tu_path("%s/%s_s%d.%d.f32", GOLDEN_DIR, golden, seed, i), n);
            double d = rel_diff(nn_exec_output(x, i), ref, n);
            printf("faceapi %-16s seed %d output %d (%s): max diff %.2e of scale (%s)\n", golden,
                   seed, i, g->t[g->outputs[i]].name, d, k ? "fast" : "ref");
            ck_assert_msg(d <= TOL, "%s seed %d output %d on %s: %.3e > %.0e", golden, seed, i,
                          k ? "fast" : "ref", d, TOL);
            free(ref);
        }
        nn_exec_free(x);
    }
    free(img);
}

/* ==== Face descriptor ==== */

START_TEST(recognition_matches_faceapi) {
    nn_graph *g = load_or_fail(nn_faceapi_recognition_load,
                               "face_recognition_model-weights_manifest.json");
    const nn_tensor *ti = &g->t[g->inputs[0]], *to = &g->t[g->outputs[0]];
    ck_assert_int_eq(ti->ndim, 4);
    ck_assert_int_eq(ti->dims[1], 150);
    ck_assert_int_eq(ti->dims[2], 150);
    ck_assert_int_eq(to->ndim, 2);
    ck_assert_int_eq(to->dims[1], 128);
    check_golden(g, "faceapi_recognition", 0);
    check_golden(g, "faceapi_recognition", 1);
    nn_graph_free(g);
}
END_TEST

/* ==== 68-point landmarks ==== */

static void check_landmarks(int tiny) {
    nn_graph *g = NULL;
    const char *path = tu_path("%s/faceapi/face_landmark_68%s_model-weights_manifest.json",
                               tu_models_dir(), tiny ? "_tiny" : "");
    mien_err e = {0};
    ck_assert_msg(nn_faceapi_landmarks68_load(path, tiny, &g, &e) == MIEN_OK, "%s", e.msg);
    const nn_tensor *ti = &g->t[g->inputs[0]], *to = &g->t[g->outputs[0]];
    ck_assert_int_eq(ti->dims[1], 112);
    ck_assert_int_eq(ti->dims[2], 112);
    ck_assert_int_eq(to->ndim, 2);
    ck_assert_int_eq(to->dims[1], 136);
    const char *golden = tiny ? "faceapi_landmarks68tiny" : "faceapi_landmarks68";
    check_golden(g, golden, 0);
    check_golden(g, golden, 1);
    nn_graph_free(g);
}

START_TEST(landmarks68_matches_faceapi) { check_landmarks(0); }
END_TEST

START_TEST(landmarks68_tiny_matches_faceapi) { check_landmarks(1); }
END_TEST

/* ==== Broken files ==== */

/* A fresh directory holding a copy of one model's manifest (possibly edited) and its .bin
 * (possibly truncated to keep bytes; keep < 0: whole). */
static const char *broken_copy(const char *base, const char *manifest_text, long keep) {
    static char dir[256];
    snprintf(dir, sizeof dir, "/tmp/mien-faceapi-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *src = tu_path("%s/faceapi/%s.bin", tu_models_dir(), base);
    FILE *f = fopen(src, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", src);
    FILE *o = fopen(tu_path("%s/%s.bin", dir, base), "wb");
    ck_assert_ptr_nonnull(o);
    char buf[65536];
    long total = 0;
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (keep >= 0 && total + (long)got > keep) got = (size_t)(keep - total);
        fwrite(buf, 1, got, o);
        total += (long)got;
        if (keep >= 0 && total >= keep) break;
    }
    fclose(f);
    fclose(o);
    o = fopen(tu_path("%s/%s-weights_manifest.json", dir, base), "wb");
    ck_assert_ptr_nonnull(o);
    fputs(manifest_text, o);
    fclose(o);
    return dir;
}

static void remove_copy(const char *dir, const char *base) {
    unlink(tu_path("%s/%s.bin", dir, base));
    unlink(tu_path("%s/%s-weights_manifest.json", dir, base));
    rmdir(dir);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), n);
    s[n] = 0;
    fclose(f);
    return s;
}

/* Replace the first occurrence of from by to (malloc'd result). */
static char *replace1(const char *s, const char *from, const char *to) {
    const char *p = strstr(s, from);
    ck_assert_ptr_nonnull(p);
    size_t n = strlen(s) + strlen(to) + 1;
    char *r = malloc(n);
    ck_assert_ptr_nonnull(r);
    snprintf(r, n, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
    return r;
}

typedef int (*loader_fn)(const char *, nn_graph **, mien_err *);

/* Loading must fail with a status and a message containing want. */
static void expect_failure(loader_fn load, const char *path, const char *want) {
    nn_graph *g = (nn_graph *)1;
    mien_err e = {0};
    int rc = load(path, &g, &e);
    ck_assert_msg(rc != MIEN_OK, "loading %s succeeded", path);
    ck_assert_ptr_null(g);
    ck_assert_int_eq(e.status, rc);
    ck_assert_msg(strstr(e.msg, want) != NULL, "message \"%s\" lacks \"%s\"", e.msg, want);
}

static void check_broken_files(loader_fn load, const char *base, const char *weight_name,
                               const char *shape_from, const char *shape_to) {
    const char *mpath = tu_path("%s/faceapi/%s-weights_manifest.json", tu_models_dir(), base);
    char *manifest = slurp(mpath);
    /* Missing file. */
    expect_failure(load, "/nonexistent/model-weights_manifest.json", "nonexistent");
    /* Truncated .bin. */
    const char *dir = broken_copy(base, manifest, 1000);
    expect_failure(load, tu_path("%s/%s-weights_manifest.json", dir, base), "too short");
    remove_copy(dir, base);
    /* Bad JSON. */
    char *bad = strdup(manifest);
    bad[strlen(bad) / 2] = 0;
    dir = broken_copy(base, bad, -1);
    expect_failure(load, tu_path("%s/%s-weights_manifest.json", dir, base), "JSON");
    remove_copy(dir, base);
    free(bad);
    /* A weight renamed: the net misses it. */
    char quoted[256];
    snprintf(quoted, sizeof quoted, "\"%s\"", weight_name);
    bad = replace1(manifest, quoted, "\"renamed\"");
    dir = broken_copy(base, bad, -1);
    expect_failure(load, tu_path("%s/%s-weights_manifest.json", dir, base), weight_name);
    remove_copy(dir, base);
    free(bad);
    /* A shape edited, same number of values: the file reads but does not fit the net. */
    bad = replace1(manifest, shape_from, shape_to);
    dir = broken_copy(base, bad, -1);
    expect_failure(load, tu_path("%s/%s-weights_manifest.json", dir, base), "expected");
    remove_copy(dir, base);
    free(bad);
    free(manifest);
}

START_TEST(recognition_broken_files) {
    check_broken_files(nn_faceapi_recognition_load, "face_recognition_model",
                       "conv32_1/conv2/scale/weights", "[7,7,3,32]", "[7,7,6,16]");
}
END_TEST

static int load_lm(const char *p, nn_graph **g, mien_err *e) {
    return nn_faceapi_landmarks68_load(p, 0, g, e);
}
static int load_lm_tiny(const char *p, nn_graph **g, mien_err *e) {
    return nn_faceapi_landmarks68_load(p, 1, g, e);
}

START_TEST(landmarks_broken_files) {
    check_broken_files(load_lm, "face_landmark_68_model", "dense2/conv1/bias",
                       "[1,1,32,64]", "[1,1,64,32]");
    check_broken_files(load_lm_tiny, "face_landmark_68_tiny_model", "fc/bias", "[128,136]",
                       "[136,128]");
    /* The tiny net's file does not fit the full architecture (no conv3 in its blocks). */
    expect_failure(load_lm, tu_path("%s/faceapi/face_landmark_68_tiny_model-weights_manifest.json",
                                    tu_models_dir()),
                   "missing");
}
END_TEST

Suite *suite_faceapi(void) {
    Suite *s = suite_create("faceapi");
    TCase *t = tcase_create("faceapi");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, recognition_matches_faceapi);
    tcase_add_test(t, recognition_broken_files);
    tcase_add_test(t, landmarks68_matches_faceapi);
    tcase_add_test(t, landmarks68_tiny_matches_faceapi);
    tcase_add_test(t, landmarks_broken_files);
    suite_add_tcase(s, t);
    return s;
}
