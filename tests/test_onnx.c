/* ONNX loader against PyTorch: tools/onnx_make_tests.py builds small networks with the ops
 * of InsightFace's and OpenCV zoo's face models (IResNet, MobileFaceNet, an SCRFD-style
 * detector, every remaining op), exports them to ONNX and records PyTorch's outputs; here
 * mien loads the .onnx files and must give the same numbers on both backends. The script
 * runs once per test run (a few seconds) into $MIEN_ONNX_TEST_DIR (default
 * build-asan/onnx-tests), so no model file is committed. Without /usr/bin/python3, torch or
 * onnx the tests fail: they are part of what `make test` checks.
 *
 * The decoders of SCRFD and YuNet (src/face/onnx_models.c) are checked by encoding known
 * faces into output arrays laid out as the real models' and decoding them back, and end to
 * end on an SCRFD-layout network whose outputs are set by painting the input image.
 *
 * Also: hostile files (truncated, random bytes, a tensor claiming 2^40 elements, short raw
 * data, external data, an unknown op, and many random mutations of a real model). */
#include "testutil.h"

#include "face/face.h"
#include "face/onnx_models.h"
#include "image/image.h"
#include "nn/exec.h"
#include "nn/onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *test_dir(void) {
    const char *d = getenv("MIEN_ONNX_TEST_DIR");
    return d && *d ? d : "build-asan/onnx-tests";
}

/* Set once by the unchecked fixture (in the parent, before the tests fork). */
static int gen_status = -1;
static char gen_log[2048];

static void generate(void) {
    if (gen_status >= 0) return; /* once per run, for every tcase that needs the files */
    gen_status = tu_python_generate("tools/onnx_make_tests.py", test_dir(), gen_log, 1501);
}

static void need_models(void) {
    ck_assert_msg(gen_status == 0,
                  "tools/onnx_make_tests.py failed (status %d): it needs /usr/bin/python3 with "
                  "torch and onnx (Debian python3-torch, python3-onnx; scripts/setup.sh installs "
                  "them). Its output:\n%s",
                  gen_status, gen_log);
}

/* ==== Reference comparison ==== */

typedef struct ref_case {
    const char *name;
    int give_dims;           /* pass the input size (the file's is symbolic) */
} ref_case;

static const ref_case cases[] = {
    {"iresnet", 0}, {"mobilefacenet", 0}, {"scrfd", 1}, {"ops11", 0}, {"ops13", 0}, {"handmade", 0},
};

static float *read_f32(const char *path, int64_t n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    size_t got = fread(p, sizeof *p, (size_t)n + 1, f);
    fclose(f);
    ck_assert_msg(got == (size_t)n, "%s: %zu values, expected %lld", path, got, (long long)n);
    return p;
}

/* Run case c on a backend; return the worst relative error over its outputs (max abs
 * difference over the largest |value| of that output, at least 1e-3). */
static double run_case(const ref_case *c, nn_backend_kind backend, nn_graph **keep) {
    need_models();
    const char *dir = test_dir();
    FILE *f = fopen(tu_path("%s/%s.txt", dir, c->name), "r");
    ck_assert_msg(f != NULL, "missing %s.txt", c->name);
    int64_t in[4];
    ck_assert(fscanf(f, "input %ld %ld %ld %ld\n", &in[0], &in[1], &in[2], &in[3]) == 4);
    mien_err e = {0};
    nn_graph *g;
    ck_assert_msg(nn_onnx_load(tu_path("%s/%s.onnx", dir, c->name), c->give_dims ? in : NULL,
                               &g, &e) == MIEN_OK,
                  "%s: %s", c->name, e.msg);
    const nn_tensor *ti = &g->t[g->inputs[0]];
    ck_assert_int_eq(ti->ndim, 4);
    ck_assert(ti->dims[0] == in[0] && ti->dims[1] == in[2] && ti->dims[2] == in[3] &&
              ti->dims[3] == in[1]);
    nn_exec *x;
    nn_exec_opts o = {.backend = backend, .threads = 1};
    ck_assert_msg(nn_exec_create(g, &o, &x, &e) == 0, "%s", e.msg);
    /* NCHW file -> NHWC graph input. */
    const int64_t N = in[0], C = in[1], H = in[2], W = in[3];
    float *nchw = read_f32(tu_path("%s/%s.in.f32", dir, c->name), N * C * H * W);
    float *xin = nn_exec_input(x, 0);
    for (int64_t b = 0; b < N; b++)
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t xx = 0; xx < W; xx++)
                    xin[((b * H + y) * W + xx) * C + ch] = nchw[((b * C + ch) * H + y) * W + xx];
    free(nchw);
    ck_assert_msg(nn_exec_run(x, &e) == 0, "%s", e.msg);
    double worst = 0;
    char line[512];
    for (int k = 0; fgets(line, sizeof line, f); k++) {
        char name[256];
        int nd, pos;
        ck_assert(sscanf(line, "output %255s %d%n", name, &nd, &pos) == 2);
        ck_assert_msg(k < g->n_outputs, "%s: fewer outputs than PyTorch", c->name);
        const nn_tensor *t = &g->t[g->outputs[k]];
        ck_assert_msg(!strcmp(t->name, name), "%s: output %d is %s, expected %s", c->name, k,
                      t->name, name);
        ck_assert_int_eq(t->ndim, nd);
        const char *p = line + pos;
        for (int d = 0; d < nd; d++) {
            long v;
            int used;
            ck_assert(sscanf(p, "%ld%n", &v, &used) == 1);
            p += used;
            ck_assert_msg(t->dims[d] == v, "%s: output %s dim %d is %lld, PyTorch %ld", c->name,
                          name, d, (long long)t->dims[d], v);
        }
        float *ref = read_f32(tu_path("%s/%s.out%d.f32", dir, c->name, k), t->n);
        const float *y = nn_exec_output(x, k);
        double maxref = 1e-3, maxd = 0;
        for (int64_t i = 0; i < t->n; i++) {
            maxref = fmax(maxref, fabs(ref[i]));
            maxd = fmax(maxd, fabs((double)y[i] - ref[i]));
        }
        if (getenv("MIEN_ONNX_REPORT"))
            fprintf(stderr, "onnx %-13s %-4s %-10s max|diff| %.3g  max|ref| %.3g  rel %.3g\n",
                    c->name, backend == NN_BACKEND_REF ? "ref" : "fast", name, maxd, maxref,
                    maxd / maxref);
        worst = fmax(worst, maxd / maxref);
        free(ref);
    }
    fclose(f);
    nn_exec_free(x);
    if (keep) *keep = g;
    else nn_graph_free(g);
    return worst;
}

START_TEST(onnx_vs_pytorch_ref) {
    double err = run_case(&cases[_i], NN_BACKEND_REF, NULL);
    ck_assert_msg(err <= 1e-4, "%s (reference): relative error %.3g > 1e-4", cases[_i].name, err);
}
END_TEST

START_TEST(onnx_vs_pytorch_fast) {
    double err = run_case(&cases[_i], NN_BACKEND_FAST, NULL);
    ck_assert_msg(err <= 1e-4, "%s (fast): relative error %.3g > 1e-4", cases[_i].name, err);
}
END_TEST

/* The layout tracking keeps the detector's heads transpose-free: conv (NHWC) ->
 * Transpose(0,2,3,1) -> Reshape is only a change of view; BN after a conv is folded. */
START_TEST(onnx_layout_no_transposes) {
    nn_graph *g;
    run_case(&cases[2], NN_BACKEND_REF, &g);
    int transposes = 0, bn = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        transposes += g->nodes[i].op == NN_OP_TRANSPOSE;
        bn += g->nodes[i].op == NN_OP_BATCHNORM;
    }
    nn_graph_free(g);
    ck_assert_int_eq(transposes, 0);
    ck_assert_int_eq(bn, 0);
}
END_TEST

/* The input size comes from the caller when given, also overriding a fixed one. */
START_TEST(onnx_input_dims) {
    need_models();
    mien_err e = {0};
    nn_graph *g;
    /* Symbolic H, W without a size: a clear error. */
    ck_assert(nn_onnx_load(tu_path("%s/scrfd.onnx", test_dir()), NULL, &g, &e) != MIEN_OK);
    ck_assert_msg(strstr(e.msg, "input size") != NULL, "%s", e.msg);
    int64_t d[4] = {1, 3, 320, 256};
    ck_assert_msg(nn_onnx_load(tu_path("%s/scrfd.onnx", test_dir()), d, &g, &e) == MIEN_OK, "%s", e.msg);
    /* Outputs (1, H/8 * W/8 * 2, 1) ... */
    ck_assert_int_eq(g->t[g->outputs[0]].dims[1], 40 * 32 * 2);
    ck_assert_int_eq(g->t[g->outputs[5]].dims[1], 10 * 8 * 2);
    ck_assert_int_eq(g->t[g->outputs[8]].dims[2], 10);
    nn_graph_free(g);
}
END_TEST

/* ==== Hostile files ==== */

static const struct {
    const char *file, *expect;
} bad_files[] = {
    {"bad_truncated.onnx", "ONNX"},
    {"bad_random.onnx", NULL},
    {"bad_huge.onnx", "too large"},
    {"bad_short.onnx", "raw data"},
    {"bad_external.onnx", "external"},
    {"bad_op.onnx", "Einsum"},
    {"bad_resize.onnx", "nearest resize"},
};

START_TEST(onnx_hostile_files) {
    need_models();
    mien_err e = {0};
    nn_graph *g = NULL;
    const char *p = tu_path("%s/%s", test_dir(), bad_files[_i].file);
    int rc = nn_onnx_load(p, NULL, &g, &e);
    ck_assert_msg(rc != MIEN_OK, "%s loaded", bad_files[_i].file);
    ck_assert(g == NULL);
    ck_assert(e.msg[0] != '\0');
    if (bad_files[_i].expect)
        ck_assert_msg(strstr(e.msg, bad_files[_i].expect) != NULL, "%s: message '%s' lacks '%s'",
                      bad_files[_i].file, e.msg, bad_files[_i].expect);
}
END_TEST

START_TEST(onnx_missing_file) {
    mien_err e = {0};
    nn_graph *g;
    ck_assert(nn_onnx_load("/nonexistent/model.onnx", NULL, &g, &e) != MIEN_OK);
    ck_assert(e.msg[0] != '\0');
}
END_TEST

/* Truncations and byte mutations of a real model: each loads or fails cleanly (the
 * sanitizers watch for anything else). */
START_TEST(onnx_mutations) {
    need_models();
    mien_err e = {0};
    unsigned char *data;
    size_t len;
    ck_assert(mien_read_file(tu_path("%s/ops13.onnx", test_dir()), 1 << 24, &data, &len, &e) == 0);
    unsigned char *buf = malloc(len);
    uint32_t s = 12345;
    int loaded = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(buf, data, len);
        size_t n = len;
        s = s * 1103515245u + 12345u;
        if (it % 3 == 0) {
            n = (s >> 8) % len;
        } else {
            for (int k = 0; k < 1 + it % 8; k++) {
                s = s * 1103515245u + 12345u;
                buf[(s >> 4) % len] = (unsigned char)(s >> 20);
            }
        }
        nn_graph *g = NULL;
        if (nn_onnx_load_buffer(buf, n, "mutant", NULL, &g, &e) == MIEN_OK) {
            loaded++;
            nn_graph_free(g);
        } else {
            ck_assert(g == NULL && e.msg[0]);
        }
    }
    free(buf);
    free(data);
    ck_assert(loaded < 300);
}
END_TEST


/* ==== Decoders ==== */

/* A detector description with the real models' output order, for a 64x64 input. */
static onnx_det fake_det(onnx_det_kind kind) {
    onnx_det d = {.kind = kind, .w = 64, .h = 64, .n_levels = 3, .has_kps = 1};
    d.anchors = kind == ONNX_DET_SCRFD ? 2 : 1;
    for (int l = 0; l < 3; l++) {
        d.strides[l] = 8 << l;
        if (kind == ONNX_DET_SCRFD) { /* scores, boxes, keypoints */
            d.out_score[l] = l, d.out_bbox[l] = 3 + l, d.out_kps[l] = 6 + l, d.out_obj[l] = -1;
        } else { /* cls, obj, bbox, kps */
            d.out_score[l] = l, d.out_obj[l] = 3 + l, d.out_bbox[l] = 6 + l, d.out_kps[l] = 9 + l;
        }
    }
    d.nms_iou = kind == ONNX_DET_SCRFD ? 0.4f : 0.3f;
    return d;
}

typedef struct known_face {
    int level, x, y, anchor;
    float score, box[4], kps[5][2];
} known_face;

static const known_face known[] = {
    {0, 3, 5, 1, 0.91f, {10.f, 22.f, 40.f, 61.f}, {{18, 35}, {31, 34}, {25, 44}, {19, 52}, {30, 53}}},
    {1, 2, 1, 0, 0.75f, {20.f, 5.f, 50.f, 30.f}, {{28, 12}, {40, 12}, {34, 18}, {29, 24}, {39, 24}}},
    {2, 1, 0, 1, 0.66f, {-4.f, -8.f, 60.f, 62.f}, {{14, 20}, {44, 21}, {30, 33}, {18, 46}, {42, 45}}},
};

/* Encode the known faces into zeroed output arrays, as each model's head would. */
static void encode(const onnx_det *d, float **outs) {
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const known_face *k = &known[i];
        const int l = k->level, s = d->strides[l], fw = d->w / s;
        const size_t at = ((size_t)k->y * fw + k->x) * d->anchors + (d->anchors > 1 ? k->anchor : 0);
        float *b = outs[d->out_bbox[l]] + 4 * at, *kp = outs[d->out_kps[l]] + 10 * at;
        if (d->kind == ONNX_DET_SCRFD) {
            const float cx = (float)(k->x * s), cy = (float)(k->y * s);
            outs[d->out_score[l]][at] = k->score;
            b[0] = (cx - k->box[0]) / s, b[1] = (cy - k->box[1]) / s;
            b[2] = (k->box[2] - cx) / s, b[3] = (k->box[3] - cy) / s;
            for (int p = 0; p < 5; p++) {
                kp[2 * p] = (k->kps[p][0] - cx) / s;
                kp[2 * p + 1] = (k->kps[p][1] - cy) / s;
            }
        } else { /* score = sqrt(cls * obj): split it as cls = score^2 / 0.9, obj = 0.9 */
            outs[d->out_score[l]][at] = k->score * k->score / 0.9f;
            outs[d->out_obj[l]][at] = 0.9f;
            const float w = k->box[2] - k->box[0], h = k->box[3] - k->box[1];
            b[0] = (k->box[0] + w / 2) / s - (float)k->x, b[1] = (k->box[1] + h / 2) / s - (float)k->y;
            b[2] = logf(w / s), b[3] = logf(h / s);
            for (int p = 0; p < 5; p++) {
                kp[2 * p] = k->kps[p][0] / s - (float)k->x;
                kp[2 * p + 1] = k->kps[p][1] / s - (float)k->y;
            }
        }
    }
}

static void check_decoded(const onnx_cand *c, int n, float tol) {
    ck_assert_int_eq(n, 3);
    for (int i = 0; i < 3; i++) { /* sorted by score: the table's order */
        ck_assert_msg(fabsf(c[i].score - known[i].score) < 1e-5f, "score %d: %g", i, c[i].score);
        for (int k = 0; k < 4; k++)
            ck_assert_msg(fabsf(c[i].box[k] - known[i].box[k]) < tol, "face %d box[%d] %g vs %g",
                          i, k, c[i].box[k], known[i].box[k]);
        for (int p = 0; p < 5; p++)
            for (int q = 0; q < 2; q++)
                ck_assert(fabsf(c[i].kps[p][q] - known[i].kps[p][q]) < tol);
    }
}

static void decode_roundtrip(onnx_det_kind kind) {
    onnx_det d = fake_det(kind);
    const int widths[4] = {1, 4, 10, 1};
    float *outs[12];
    const int n_out = kind == ONNX_DET_SCRFD ? 9 : 12;
    for (int k = 0; k < n_out; k++) {
        int l = k % 3, what = k / 3, w;
        if (kind == ONNX_DET_SCRFD) w = widths[what];
        else w = what < 2 ? 1 : what == 2 ? 4 : 10;
        size_t cells = (size_t)(64 / (8 << l)) * (64 / (8 << l)) * d.anchors;
        outs[k] = calloc(cells * w, sizeof(float));
    }
    encode(&d, outs);
    onnx_cand c[64];
    int n = onnx_det_decode(&d, (const float *const *)outs, 0.5f, c, 64);
    n = onnx_det_nms(c, n, d.nms_iou);
    check_decoded(c, n, 1e-3f);
    /* Below the threshold: gone. */
    ck_assert_int_eq(onnx_det_decode(&d, (const float *const *)outs, 0.95f, c, 64), 0);
    for (int k = 0; k < n_out; k++) free(outs[k]);
}

START_TEST(scrfd_decode_roundtrip) { decode_roundtrip(ONNX_DET_SCRFD); }
END_TEST

START_TEST(yunet_decode_roundtrip) { decode_roundtrip(ONNX_DET_YUNET); }
END_TEST

START_TEST(det_nms) {
    onnx_cand c[4] = {
        {0.7f, {0, 0, 10, 10}, {{0}}}, {0.9f, {1, 1, 11, 11}, {{0}}},
        {0.8f, {20, 20, 30, 30}, {{0}}}, {0.85f, {0, 0, 10, 5}, {{0}}},
    };
    /* 0.9 kept; 0.85 overlaps it by 40/115 < 0.4: kept; 0.8 disjoint: kept; 0.7 overlaps 0.9
     * by 81/119: dropped. */
    int n = onnx_det_nms(c, 4, 0.4f);
    ck_assert_int_eq(n, 3);
    ck_assert(c[0].score == 0.9f && c[1].score == 0.85f && c[2].score == 0.8f);
    ck_assert_int_eq(onnx_det_nms(c, 3, 0.3f), 2);
}
END_TEST

/* End to end on the SCRFD-layout network of onnx_make_tests.py: a 1280x960 photo (letterboxed
 * at half scale into 640x640) with a 16x16 patch painted at (352, 208): after the resize it
 * is exactly the stride-8 cell (22, 13). Its red channel turns that cell's score on, green
 * sets the four box distances, blue the keypoint offsets. */
START_TEST(scrfd_end_to_end) {
    need_models();
    mien_err e = {0};
    nn_graph *g;
    onnx_det *d;
    ck_assert_msg(onnx_det_open(tu_path("%s/scrfd_synth.onnx", test_dir()), ONNX_DET_SCRFD, 640,
                                640, &g, &d, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(d->n_levels, 3);
    ck_assert_int_eq(d->anchors, 2);
    ck_assert(d->has_kps);
    for (int backend = 0; backend < 2; backend++) {
        nn_exec *x;
        nn_exec_opts o = {.backend = backend ? NN_BACKEND_FAST : NN_BACKEND_REF, .threads = 1};
        ck_assert(nn_exec_create(g, &o, &x, &e) == 0);
        mien_image img = {1280, 960, calloc((size_t)1280 * 960 * 3, 1)};
        const uint8_t G = 200, B = 60;
        for (int y = 208; y < 224; y++)
            for (int xx = 352; xx < 368; xx++) {
                uint8_t *p = img.rgb + ((size_t)y * 1280 + xx) * 3;
                p[0] = 255, p[1] = G, p[2] = B;
            }
        mien_face *f;
        int n;
        mien_detect_options opt;
        mien_detect_options_default(&opt);
        opt.min_size = 600; /* the face is 514 pixels wide: dropped */
        ck_assert_msg(onnx_face_detect(d, x, &img, &opt, &f, &n, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(n, 0);
        free(f);
        ck_assert_msg(onnx_det_run(d, x, &img, 0.5f, &f, &n, &e) == 0, "%s", e.msg);
        ck_assert_int_eq(n, 1);
        /* Expected, by the network's definition and SCRFD's decoding, in image pixels
         * (the letterbox scale is 0.5). */
        const float nr = (255 - 127.5f) / 128, ng = (G - 127.5f) / 128, nb = (B - 127.5f) / 128;
        const float score = 1.f / (1.f + expf(-40 * (nr - 0.5f)));
        const float dist = (ng * 8 + 8) * 8, kof = nb * 4 * 8, cx = 22 * 8, cy = 13 * 8;
        ck_assert_msg(fabsf(f[0].score - score) < 1e-4f, "score %g vs %g", f[0].score, score);
        const float want[4] = {(cx - dist) * 2, (cy - dist) * 2, 2 * dist * 2, 2 * dist * 2};
        for (int k = 0; k < 4; k++)
            ck_assert_msg(fabsf(f[0].box[k] - want[k]) < 0.05f, "box[%d] %g vs %g", k,
                          f[0].box[k], want[k]);
        ck_assert_int_eq(f[0].n_points, 5);
        for (int p = 0; p < 5; p++) {
            ck_assert(fabsf(f[0].points[p][0] - (cx + kof) * 2) < 0.05f);
            ck_assert(fabsf(f[0].points[p][1] - (cy + kof) * 2) < 0.05f);
        }
        free(f);
        free(img.rgb);
        nn_exec_free(x);
    }
    onnx_det_free(d);
    nn_graph_free(g);
}
END_TEST

START_TEST(model_names) {
    ck_assert(onnx_name_matches("scrfd", "scrfd"));
    ck_assert(onnx_name_matches("scrfd", "scrfd:/x/det_500m.onnx"));
    ck_assert(!onnx_name_matches("scrfd", "scrfdx"));
    ck_assert(!onnx_name_matches("arcface", NULL));
    ck_assert(onnx_is_detector("yunet:a.onnx") && !onnx_is_detector("blazeface"));
    char p[256];
    onnx_model_file("models", "insightface/w600k_r50.onnx", "arcface", p, sizeof p);
    ck_assert_str_eq(p, "models/insightface/w600k_r50.onnx");
    onnx_model_file("models", "insightface/w600k_r50.onnx", "arcface:/m/r100.onnx", p, sizeof p);
    ck_assert_str_eq(p, "/m/r100.onnx");
}
END_TEST

/* The right file for the wrong decoder fails at open, naming the problem. */
START_TEST(det_wrong_layout) {
    need_models();
    mien_err e = {0};
    nn_graph *g;
    onnx_det *d;
    ck_assert(onnx_det_open(tu_path("%s/scrfd_synth.onnx", test_dir()), ONNX_DET_YUNET, 640, 640,
                            &g, &d, &e) != MIEN_OK);
    ck_assert_msg(strstr(e.msg, "cls_8") != NULL, "%s", e.msg);
    ck_assert(onnx_det_open(tu_path("%s/iresnet.onnx", test_dir()), ONNX_DET_SCRFD, 640, 640, &g,
                            &d, &e) != MIEN_OK);
    ck_assert(g == NULL && d == NULL);
}
END_TEST

/* The model table: `--detector scrfd:PATH --embedder arcface:PATH` through the public API,
 * with the synthetic SCRFD-layout network and the IResNet test network as the files. */
START_TEST(model_table_wiring) {
    need_models();
    mien_config cfg;
    mien_config_default(&cfg);
    char det[512], emb[512];
    snprintf(det, sizeof det, "scrfd:%s/scrfd_synth.onnx", test_dir());
    snprintf(emb, sizeof emb, "arcface:%s/iresnet.onnx", test_dir());
    cfg.detector = det;
    cfg.embedder = emb;
    cfg.landmarks = "none";
    cfg.backend = MIEN_BACKEND_REF;
    mien_models *m;
    ck_assert_msg(mien_models_open(tu_models_dir(), &cfg, &m) == MIEN_OK, "%s", mien_models_errmsg(m));
    ck_assert_int_eq(mien_models_embedding_dim(m), 512);
    ck_assert_str_eq(mien_models_embedder_name(m), "arcface");
    mien_session *s;
    ck_assert(mien_session_open(m, &s) == MIEN_OK);
    mien_image img = {640, 480, calloc((size_t)640 * 480 * 3, 1)};
    for (int y = 104; y < 112; y++)
        for (int x = 176; x < 184; x++) {
            uint8_t *p = img.rgb + ((size_t)y * 640 + x) * 3;
            p[0] = 255, p[1] = 160, p[2] = 100;
        }
    mien_face *f;
    int n;
    ck_assert_msg(mien_detect(s, &img, NULL, &f, &n) == MIEN_OK, "%s", mien_errmsg(s));
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(f[0].n_points, 5);
    /* The synthetic detector puts all 5 keypoints on one spot: align on the template. */
    for (int k = 0; k < 5; k++) {
        f[0].points[k][0] = mien_arcface_template[k][0] + 100;
        f[0].points[k][1] = mien_arcface_template[k][1] + 50;
    }
    float e1[512];
    ck_assert_msg(mien_embed(s, &img, &f[0], e1) == MIEN_OK, "%s", mien_errmsg(s));
    double ss = 0;
    for (int i = 0; i < 512; i++) ss += (double)e1[i] * e1[i];
    ck_assert(fabs(ss - 1) < 1e-4);
    free(f);
    free(img.rgb);
    mien_session_close(s);
    mien_models_close(m);
    /* A missing file: a clear error naming it. */
    cfg.embedder = "arcface:/nonexistent/w600k_r50.onnx";
    ck_assert(mien_models_open(tu_models_dir(), &cfg, &m) != MIEN_OK);
    ck_assert_msg(strstr(mien_models_errmsg(m), "/nonexistent/w600k_r50.onnx") != NULL, "%s",
                  mien_models_errmsg(m));
    mien_models_close(m);
}
END_TEST

/* ==== Real models: the embedders setup fetches, against PyTorch ====
 * tools/onnx_torch_run.py re-expresses the file node by node in PyTorch (float64). The input
 * is what mien feeds the network for a real face (people/examples/obama.jpg), so the numbers
 * are the ones that matter; the same check on both backends. A second check does the model's
 * own preprocessing without mien (OpenCV reads the photo and warps it onto the 5-point
 * template from the same landmarks; RGB, (x - mean) * scale): mien's embedding must point the
 * same way, which pins the crop, the channel order and the normalisation. */

typedef struct real_case { const char *embedder; } real_case;
static const real_case real_cases[] = {{"frfeature"}};

static void real_model_vs_pytorch(const real_case *rc, mien_backend backend) {
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.embedder = rc->embedder;
    cfg.landmarks = "facemesh";
    cfg.flip = 0;
    cfg.backend = backend;
    mien_models *m;
    ck_assert_msg(mien_models_open(tu_models_dir(), &cfg, &m) == MIEN_OK, "%s", mien_models_errmsg(m));
    mien_session *s;
    ck_assert(mien_session_open(m, &s) == MIEN_OK);
    const char *photo = tu_path("%s/people/examples/obama.jpg", tu_data_dir());
    mien_image img;
    ck_assert_msg(mien_image_load(s, photo, &img) == MIEN_OK, "%s", mien_errmsg(s));
    mien_face *faces;
    int n;
    ck_assert_msg(mien_detect(s, &img, NULL, &faces, &n) == MIEN_OK && n >= 1, "%s", mien_errmsg(s));
    const emb_model *em = &m->emb;
    const int S = em->size, dim = em->dim;
    float *emb = malloc((size_t)dim * sizeof *emb);
    ck_assert_msg(mien_embed(s, &img, &faces[0], emb) == MIEN_OK, "%s", mien_errmsg(s));
    /* The network's input and raw output of that run (no flip: one run). */
    const float *in = nn_exec_input(s->emb, 0), *out = nn_exec_output(s->emb, 0);
    float *nchw = malloc((size_t)3 * S * S * sizeof *nchw);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++) nchw[(size_t)c * S * S + i] = in[(size_t)i * 3 + c];
    const char *fin = tu_temp_file(".f32", nchw, (size_t)3 * S * S * sizeof *nchw);
    char fout[256], fcrop[256];
    snprintf(fout, sizeof fout, "%s", tu_temp_file(".f32", "", 0));
    snprintf(fcrop, sizeof fcrop, "%s", tu_temp_file(".f32", "", 0));
    char model[4096];
    snprintf(model, sizeof model, "%s/%s", tu_models_dir(),
             !strcmp(rc->embedder, "frfeature") ? "faceplugin/fr_feature.onnx" : "?");
    char *log = NULL;
    int st = tu_python(tu_path("tools/onnx_torch_run.py '%s' '%s' 1 3 %d %d '%s'", model, fin, S, S,
                               fout), 0, &log);
    ck_assert_msg(st == 0, "onnx_torch_run.py failed (%d): %s", st, log);
    free(log);
    float *ref = read_f32(fout, dim);
    double maxref = 1e-3, maxd = 0;
    for (int i = 0; i < dim; i++) {
        maxref = fmax(maxref, fabs(ref[i]));
        maxd = fmax(maxd, fabs((double)out[i] - ref[i]));
    }
    ck_assert_msg(maxd / maxref < 1e-4, "%s on %s: max|diff| %g, max|ref| %g", rc->embedder,
                  backend == MIEN_BACKEND_REF ? "ref" : "fast", maxd, maxref);
    /* Independent preprocessing from the same five points. */
    const mien_face *f = &faces[0];
    st = tu_python(tu_path("tools/onnx_torch_run.py --crop '%s' '%s' %g %.9g %d "
                           "%g %g %g %g %g %g %g %g %g %g '%s'",
                           model, photo, em->mean, em->scale, S, f->points[0][0], f->points[0][1],
                           f->points[1][0], f->points[1][1], f->points[2][0], f->points[2][1],
                           f->points[3][0], f->points[3][1], f->points[4][0], f->points[4][1], fcrop),
                   0, &log);
    ck_assert_msg(st == 0, "onnx_torch_run.py --crop failed (%d): %s", st, log);
    free(log);
    float *cv = read_f32(fcrop, dim);
    double dd = 0, nn = 0;
    for (int i = 0; i < dim; i++) dd += (double)emb[i] * cv[i], nn += (double)cv[i] * cv[i];
    double cosv = dd / sqrt(nn);
    ck_assert_msg(cosv > 0.999, "%s: cosine %f between mien's embedding and OpenCV's crop", rc->embedder, cosv);
    if (getenv("MIEN_ONNX_REPORT"))
        fprintf(stderr, "real %s %s: max|diff| %.3g rel %.3g, cosine with OpenCV's crop %.5f\n",
                rc->embedder, backend == MIEN_BACKEND_REF ? "ref" : "fast", maxd, maxd / maxref, cosv);
    remove(fin), remove(fout), remove(fcrop);
    free(ref), free(cv), free(emb), free(nchw), free(faces);
    mien_image_free(&img);
    mien_session_close(s);
    mien_models_close(m);
}

START_TEST(real_vs_pytorch_ref) { real_model_vs_pytorch(&real_cases[_i], MIEN_BACKEND_REF); }
END_TEST
START_TEST(real_vs_pytorch_fast) { real_model_vs_pytorch(&real_cases[_i], MIEN_BACKEND_AUTO); }
END_TEST

Suite *suite_onnx(void) {
    Suite *s = suite_create("onnx");
    TCase *t = tcase_create("pytorch");
    tcase_set_timeout(t, 600);
    tcase_add_unchecked_fixture(t, generate, NULL);
    int n = (int)(sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(t, onnx_vs_pytorch_ref, 0, n);
    tcase_add_loop_test(t, onnx_vs_pytorch_fast, 0, n);
    tcase_add_test(t, onnx_layout_no_transposes);
    tcase_add_test(t, onnx_input_dims);
    tcase_add_loop_test(t, onnx_hostile_files, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(t, onnx_missing_file);
    tcase_add_test(t, onnx_mutations);
    suite_add_tcase(s, t);
    TCase *dt = tcase_create("decoders");
    tcase_set_timeout(dt, 300);
    tcase_add_unchecked_fixture(dt, generate, NULL);
    tcase_add_test(dt, scrfd_decode_roundtrip);
    tcase_add_test(dt, yunet_decode_roundtrip);
    tcase_add_test(dt, det_nms);
    tcase_add_test(dt, scrfd_end_to_end);
    tcase_add_test(dt, det_wrong_layout);
    tcase_add_test(dt, model_names);
    tcase_add_test(dt, model_table_wiring);
    suite_add_tcase(s, dt);
    TCase *rt = tcase_create("real models");
    tcase_set_timeout(rt, 600);
    int nr = (int)(sizeof real_cases / sizeof real_cases[0]);
    tcase_add_loop_test(rt, real_vs_pytorch_ref, 0, nr);
    tcase_add_loop_test(rt, real_vs_pytorch_fast, 0, nr);
    suite_add_tcase(s, rt);
    return s;
}
