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
#include "image/image.h"

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

/* Read a whole float32 file (malloc'd); *n receives the number of values. */
static float *read_f32_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s (tools/make_goldens_faceapi.sh writes it)", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    ck_assert_msg(bytes >= 0 && bytes % 4 == 0, "%s: not float32", path);
    float *v = malloc((size_t)bytes + 4);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(fread(v, 1, (size_t)bytes, f), bytes);
    fclose(f);
    *n = (size_t)bytes / 4;
    return v;
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

/* Called after each run with the exec (outputs valid) and the backend's name. */
typedef void (*after_run_fn)(const nn_exec *x, const char *backend, void *ctx);

/* Run g on img with both backends and compare every output i with GOLDEN_DIR/<golden>.<i>.f32;
 * prints the measured differences. */
static void check_outputs(const nn_graph *g, const float *img, const char *golden_name,
                          after_run_fn after, void *ctx) {
    char golden[256]; /* golden_name may sit in tu_path's rotating buffers */
    snprintf(golden, sizeof golden, "%s", golden_name);
    size_t n_in = (size_t)g->t[g->inputs[0]].n;
    for (int k = 0; k < 2; k++) {
        const char *bk = k ? "fast" : "ref";
        nn_exec_opts o = {.backend = k ? NN_BACKEND_FAST : NN_BACKEND_REF, .threads = 1};
        nn_exec *x = NULL;
        mien_err e = {0};
        ck_assert_msg(nn_exec_create(g, &o, &x, &e) == MIEN_OK, "%s", e.msg);
        memcpy(nn_exec_input(x, 0), img, n_in * sizeof *img);
        ck_assert_msg(nn_exec_run(x, &e) == MIEN_OK, "%s", e.msg);
        if (k && nn_backend_fast()) {
            /* the fast exec must really run the convolutions off the reference path */
            int fast_nodes = 0;
            for (int i = 0; i < g->n_nodes; i++)
                fast_nodes += strcmp(nn_exec_node_backend(x, i), "ref") != 0;
            ck_assert_msg(fast_nodes > g->n_nodes / 2, "only %d of %d nodes on the fast backend",
                          fast_nodes, g->n_nodes);
        }
        for (int i = 0; i < g->n_outputs; i++) {
            size_t n = (size_t)g->t[g->outputs[i]].n;
            float *ref = read_f32(tu_path("%s/%s.%d.f32", GOLDEN_DIR, golden, i), n);
            double d = rel_diff(nn_exec_output(x, i), ref, n);
            printf("faceapi %-26s output %d %-13s max diff %.2e of scale (%s)\n", golden, i,
                   g->t[g->outputs[i]].name, d, bk);
            ck_assert_msg(d <= TOL, "%s output %d on %s: %.3e > %.0e", golden, i, bk, d, TOL);
            free(ref);
        }
        if (after) after(x, bk, ctx);
        nn_exec_free(x);
    }
}

/* The synthetic picture of seed s at the graph's input size against <golden>_s<seed>. */
static void check_golden(const nn_graph *g, const char *golden, int seed) {
    const nn_tensor *tin = &g->t[g->inputs[0]];
    int H = (int)tin->dims[1], W = (int)tin->dims[2];
    float *img = malloc((size_t)W * H * 3 * sizeof *img);
    ck_assert_ptr_nonnull(img);
    synth_image(img, W, H, seed);
    check_outputs(g, img, tu_path("%s_s%d", golden, seed), NULL, NULL);
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

/* ==== Face analysis: expression, age and gender ==== */

START_TEST(expression_matches_faceapi) {
    nn_graph *g = load_or_fail(nn_faceapi_expression_load,
                               "face_expression_model-weights_manifest.json");
    const nn_tensor *to = &g->t[g->outputs[0]];
    ck_assert_int_eq(g->n_outputs, 1);
    ck_assert_int_eq(to->dims[1], NN_FACEAPI_EXPRESSIONS);
    check_golden(g, "faceapi_expression", 0);
    check_golden(g, "faceapi_expression", 1);
    nn_graph_free(g);
}
END_TEST

START_TEST(age_gender_matches_faceapi) {
    nn_graph *g = load_or_fail(nn_faceapi_age_gender_load, "age_gender_model-weights_manifest.json");
    ck_assert_int_eq(g->n_outputs, 2);
    ck_assert_int_eq(g->t[g->outputs[0]].n, 1);
    ck_assert_int_eq(g->t[g->outputs[1]].n, 2);
    check_golden(g, "faceapi_agegender", 0);
    check_golden(g, "faceapi_agegender", 1);
    nn_graph_free(g);
}
END_TEST

/* ==== SSD face detector ==== */

typedef struct ssd_case {
    char golden[128];     /* GOLDEN_DIR/<golden>.<i>.f32 */
    int img_w, img_h;     /* the image the 512x512 input was made from */
    float min_conf;       /* the oracle's --min-confidence */
    int has_decoded;      /* golden .2 (boxes) and .3 (scores) exist */
} ssd_case;

/* After a run: decoding, NMS and the boxes in image pixels against face-api's. */
static void ssd_after(const nn_exec *x, const char *bk, void *p) {
    const ssd_case *c = p;
    const float *enc = nn_exec_output(x, 0), *logits = nn_exec_output(x, 1);
    const int n = NN_FACEAPI_SSD_ANCHORS;
    if (c->has_decoded) {
        float *anchors = malloc((size_t)n * 4 * sizeof *anchors);
        float *boxes = malloc((size_t)n * 4 * sizeof *boxes);
        float *scores = malloc((size_t)n * sizeof *scores);
        ck_assert(anchors && boxes && scores);
        nn_faceapi_ssd_anchors(anchors);
        nn_faceapi_ssd_decode(enc, logits, anchors, boxes, scores);
        float *gb = read_f32(tu_path("%s/%s.2.f32", GOLDEN_DIR, c->golden), (size_t)n * 4);
        float *gs = read_f32(tu_path("%s/%s.3.f32", GOLDEN_DIR, c->golden), (size_t)n);
        double db = rel_diff(boxes, gb, (size_t)n * 4), ds = rel_diff(scores, gs, (size_t)n);
        printf("faceapi %-26s decoded boxes max diff %.2e, scores %.2e of scale (%s)\n",
               c->golden, db, ds, bk);
        ck_assert_msg(db <= TOL && ds <= TOL, "%s decode on %s: boxes %.3e scores %.3e",
                      c->golden, bk, db, ds);
        free(anchors);
        free(boxes);
        free(scores);
        free(gb);
        free(gs);
    }
    size_t ng;
    float *gd = read_f32_all(tu_path("%s/%s.4.f32", GOLDEN_DIR, c->golden), &ng);
    ck_assert_int_eq(ng % 5, 0);
    nn_faceapi_det dets[100];
    int nd = -1;
    mien_err e = {0};
    ck_assert_msg(nn_faceapi_ssd_detect(enc, logits, c->img_w, c->img_h, c->min_conf, 100, dets,
                                        &nd, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_msg((size_t)nd == ng / 5, "%s on %s: %d detections, face-api has %zu", c->golden,
                  bk, nd, ng / 5);
    double dscore = 0, dbox = 0;
    int side = c->img_w > c->img_h ? c->img_w : c->img_h;
    for (int i = 0; i < nd; i++) {
        const float *r = gd + 5 * i;
        dscore = fmax(dscore, fabs(dets[i].score - r[0]));
        dbox = fmax(dbox, fabs(dets[i].x - r[1]));
        dbox = fmax(dbox, fabs(dets[i].y - r[2]));
        dbox = fmax(dbox, fabs(dets[i].w - r[3]));
        dbox = fmax(dbox, fabs(dets[i].h - r[4]));
    }
    printf("faceapi %-26s %d detections: max score diff %.2e, box diff %.2e px (%s)\n",
           c->golden, nd, dscore, dbox, bk);
    ck_assert_msg(dscore <= TOL && dbox <= TOL * side, "%s on %s: score %.3e box %.3f px",
                  c->golden, bk, dscore, dbox);
    free(gd);
}

static nn_graph *load_ssd(void) {
    return load_or_fail(nn_faceapi_ssd_load, "ssd_mobilenetv1_model-weights_manifest.json");
}

START_TEST(ssd_synthetic_matches_faceapi) {
    nn_graph *g = load_ssd();
    const nn_tensor *ti = &g->t[g->inputs[0]];
    ck_assert_int_eq(ti->dims[1], 512);
    ck_assert_int_eq(g->n_outputs, 2);
    ck_assert_int_eq(g->t[g->outputs[0]].dims[1], 5118);
    ck_assert_int_eq(g->t[g->outputs[0]].dims[2], 4);
    ck_assert_int_eq(g->t[g->outputs[1]].dims[2], 3);
    float *img = malloc((size_t)512 * 512 * 3 * sizeof *img);
    ck_assert_ptr_nonnull(img);
    synth_image(img, 512, 512, 0);
    ssd_case c = {.golden = "faceapi_ssd_s0", .img_w = 512, .img_h = 512, .min_conf = 0.05f};
    check_outputs(g, img, c.golden, ssd_after, &c);
    free(img);
    nn_graph_free(g);
}
END_TEST

/* A real group photo: mien decodes the JPEG (tools/faceapi_image.c gave the oracle the same
 * pixels) and nn_faceapi_ssd_input pads and resizes it as face-api does for a tensor. */
START_TEST(ssd_photo_matches_faceapi) {
    nn_graph *g = load_ssd();
    mien_image im;
    mien_err e = {0};
    const char *path = tu_path("%s/demo/sample1.jpg", tu_models_dir());
    ck_assert_msg(img_load(path, NULL, &im, NULL, NULL, &e) == MIEN_OK, "%s: %s", path, e.msg);
    float *in = malloc((size_t)512 * 512 * 3 * sizeof *in);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(nn_faceapi_ssd_input(im.rgb, im.width, im.height, (size_t)im.width * 3, in),
                     MIEN_OK);
    ssd_case c = {.golden = "faceapi_ssd_sample1", .img_w = im.width, .img_h = im.height,
                  .min_conf = 0.3f, .has_decoded = 1};
    check_outputs(g, in, c.golden, ssd_after, &c);
    free(in);
    mien_image_free(&im);
    nn_graph_free(g);
}
END_TEST

/* The anchors, NMS and input preparation on their own. */
START_TEST(ssd_parts) {
    static float a[NN_FACEAPI_SSD_ANCHORS * 4];
    nn_faceapi_ssd_anchors(a);
    /* First cell of the 32x32 layer: (0.1, 1) centred on (1/64, 1/64). */
    ck_assert_float_eq_tol(a[0], 1.0f / 64 - 0.05f, 1e-6f);
    ck_assert_float_eq_tol(a[3], 1.0f / 64 + 0.05f, 1e-6f);
    /* The last anchor: 1x1 layer, scale 0.95, ratio 0.3333, centred. */
    const float *l = a + 4 * (NN_FACEAPI_SSD_ANCHORS - 1);
    ck_assert_float_eq_tol(l[2] - l[0], 0.95f / sqrtf(0.3333f), 1e-5f);
    ck_assert_float_eq_tol(l[1] + l[3], 1.0f, 1e-6f);
    /* NMS: box 1 overlaps box 0 (IOU 0.81) and goes; box 2 is apart and stays; box 3 is
     * below the score threshold. */
    float boxes[16] = {0, 0, 1, 1, 0, 0, 0.9f, 0.9f, 2, 2, 3, 3, 5, 5, 6, 6};
    float scores[4] = {0.9f, 0.95f, 0.6f, 0.4f};
    int sel[4];
    int ns = nn_faceapi_ssd_nms(boxes, scores, 4, 10, 0.5f, 0.5f, sel);
    ck_assert_int_eq(ns, 2);
    ck_assert_int_eq(sel[0], 1);
    ck_assert_int_eq(sel[1], 2);
    ck_assert_int_eq(nn_faceapi_ssd_nms(boxes, scores, 4, 1, 0.5f, 0.5f, sel), 1);
    /* Input: a 2x1 image (w 2, h 1) pads to 2x2 and upsamples; row 0 keeps the pixels. */
    uint8_t rgb[6] = {10, 20, 30, 200, 100, 0};
    float *in = malloc((size_t)512 * 512 * 3 * sizeof *in);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(nn_faceapi_ssd_input(rgb, 2, 1, 6, in), MIEN_OK);
    ck_assert_float_eq(in[0], 10.0f);
    ck_assert_float_eq(in[2], 30.0f);
    ck_assert_float_eq(in[511 * 3], 200.0f);                 /* column 511 -> source 1 */
    ck_assert_float_eq(in[(size_t)511 * 512 * 3], 0.0f);      /* row 511: the zero padding */
    ck_assert_int_eq(nn_faceapi_ssd_input(rgb, 0, 1, 6, in), MIEN_EINVAL);
    free(in);
}
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
    char *s = tu_read_file(path, NULL);
    ck_assert_msg(s != NULL, "cannot read %s", path);
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

START_TEST(ssd_broken_files) {
    check_broken_files(nn_faceapi_ssd_load, "ssd_mobilenetv1_model",
                       "MobilenetV1/Conv2d_5_depthwise/BatchNorm/beta", "[1,1,256,512]",
                       "[1,1,512,256]");
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
    tcase_add_test(t, expression_matches_faceapi);
    tcase_add_test(t, age_gender_matches_faceapi);
    tcase_add_test(t, landmarks_broken_files);
    tcase_add_test(t, ssd_parts);
    tcase_add_test(t, ssd_synthetic_matches_faceapi);
    tcase_add_test(t, ssd_photo_matches_faceapi);
    tcase_add_test(t, ssd_broken_files);
    suite_add_tcase(s, t);
    return s;
}
