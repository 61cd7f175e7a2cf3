/* Backend tests in the spirit of ggml's test-backend-ops: every op of ops.def is built into
 * small graphs on random data (fixed seeds) over many shape configurations and run on the
 * reference backend (the oracle) and on the fast backend; the results must agree and the
 * fast exec must really run the node on XNNPACK where the backend claims it (or on the fast
 * backend's own GEMM kernel for dense convolutions: both paths are tested). The reference
 * itself is checked against textbook loops for convolutions, fully connected and pooling,
 * and whole face models are compared end to end.
 *
 * Tolerance: max |fast - ref| <= 1e-4 * max(max |ref|, 1e-3) over each output tensor.
 * XNNPACK sums in another order (blocked GEMM, FMA), so each element carries a rounding error
 * proportional to the magnitudes of its summands, not to its own value: an output near zero
 * after cancellation has an unbounded per-element relative error with no bug in sight. The
 * tensor's largest magnitude bounds the summands' scale, so the error relative to it is the
 * meaningful figure; the 1e-3 floor keeps all-zero outputs (ReLU of negatives) from dividing
 * by nothing. Float32 sums of a few thousand terms stay around 1e-6 by this measure, so 1e-4
 * still catches any wrong index, tap, padding or activation by orders of magnitude. */
#include "testutil.h"
#ifdef MIEN_HAVE_XNNPACK
#include "nn/backend_xnnpack_own.h"
#endif
#include "nn/exec.h"
#include "nn/graph.h"
#include "nn/tfjs.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

/* ==== Helpers ==== */

typedef struct rng {
    uint64_t s;
} rng;

static float rnd(rng *r) { /* uniform in [-1, 1) */
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)(r->s >> 40) / (float)(1u << 23) - 1.f;
}

static int64_t count_of(int ndim, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    return n;
}

/* A random constant with values in [lo, hi]. */
static int rconst(nn_graph *g, rng *r, int ndim, const int64_t *dims, float lo, float hi) {
    int64_t n = count_of(ndim, dims);
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * 0.5f * (rnd(r) + 1.f);
    mien_err e = {0};
    int t = nn_add_const(g, "c", ndim, dims, v, &e);
    free(v);
    ck_assert_msg(t >= 0, "%s", e.msg);
    return t;
}

static int input(nn_graph *g, int ndim, const int64_t *dims) {
    mien_err e = {0};
    char name[16];
    snprintf(name, sizeof name, "in%d", g->n_inputs);
    int t = nn_add_input(g, name, ndim, dims, &e);
    ck_assert_msg(t >= 0, "%s", e.msg);
    return t;
}

static int64_t *D(int64_t a, int64_t b, int64_t c, int64_t d) {
    static int64_t bufs[8][4];
    static int next;
    int64_t *p = bufs[next++ & 7];
    p[0] = a, p[1] = b, p[2] = c, p[3] = d;
    return p;
}

/* Inputs in [lo, hi]; every exec of a graph gets the same values. */
typedef struct input_range {
    float lo, hi;
} input_range;

static void fill_inputs(nn_exec *x, uint64_t seed, input_range ir) {
    const nn_graph *g = nn_exec_graph(x);
    rng r = {seed};
    for (int i = 0; i < g->n_inputs; i++) {
        float *p = nn_exec_input(x, i);
        for (int64_t j = 0; j < g->t[g->inputs[i]].n; j++)
            p[j] = ir.lo + (ir.hi - ir.lo) * 0.5f * (rnd(&r) + 1.f);
    }
}

/* Max |a - b| over n values relative to max(max |b|, 1e-3). */
static double rel_err(const float *a, const float *b, int64_t n) {
    double err = 0, mag = 1e-3;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= err)) err = d; /* also catches NaN */
        if (fabs((double)b[i]) > mag) mag = fabs((double)b[i]);
    }
    return err / mag;
}

static int fast_threads = 1;

/* Run g (its last node's output is the graph output unless outputs are marked) on both
 * backends and compare. want: the backend the fast exec must use for the last node. */
static void check_range(nn_graph *g, const char *what, const char *want, input_range ir) {
    mien_err e = {0};
    if (g->n_outputs == 0) ck_assert_int_eq(nn_mark_output(g, g->nodes[g->n_nodes - 1].out, &e), 0);
    nn_exec *xr = NULL, *xf = NULL;
    nn_exec_opts ro = {.backend = NN_BACKEND_REF, .threads = 1};
    /* Alternate 1 and 2 threads so both the serial and the parallel tilings are covered. */
    nn_exec_opts fo = {.backend = NN_BACKEND_FAST, .threads = fast_threads};
    fast_threads = 3 - fast_threads;
    ck_assert_msg(nn_exec_create(g, &ro, &xr, &e) == 0, "%s: %s", what, e.msg);
    ck_assert_msg(nn_exec_create(g, &fo, &xf, &e) == 0, "%s: %s", what, e.msg);
    fill_inputs(xr, 42, ir);
    fill_inputs(xf, 42, ir);
    ck_assert_msg(nn_exec_run(xr, &e) == 0, "%s: %s", what, e.msg);
    ck_assert_msg(nn_exec_run(xf, &e) == 0, "%s: %s", what, e.msg);
    /* Twice: a second run must give the same (operators are set up once, run many times). */
    ck_assert_msg(nn_exec_run(xf, &e) == 0, "%s: %s", what, e.msg);
    for (int o = 0; o < g->n_outputs; o++) {
        const nn_tensor *t = &g->t[g->outputs[o]];
        double err = rel_err(nn_exec_output(xf, o), nn_exec_output(xr, o), t->n);
        ck_assert_msg(err <= TOL, "%s: output %d relative error %.3g", what, o, err);
    }
    const char *got = nn_exec_node_backend(xf, g->n_nodes - 1);
    if (!nn_backend_fast()) want = "ref"; /* a build without XNNPACK */
    ck_assert_msg(strcmp(got, want) == 0, "%s: ran on %s, expected %s", what, got, want);
    nn_exec_free(xr);
    nn_exec_free(xf);
}

static void check(nn_graph *g, const char *what, const char *want) {
    check_range(g, what, want, (input_range){-1.f, 1.f});
}

/* Whether the fast backend's own kernels can run here (AVX2 and FMA). MIEN_OWN_KERNELS picks
 * the path: "0" XNNPACK everywhere, "1" the own kernels where they apply. */
static int own_capable(void) {
#ifdef MIEN_HAVE_XNNPACK
    setenv("MIEN_OWN_KERNELS", "1", 1);
    int can = nn_own_preferred();
    unsetenv("MIEN_OWN_KERNELS");
    return can;
#else
    return 0;
#endif
}

/* Select a path for the execs created next. */
static void use_own(int own) { setenv("MIEN_OWN_KERNELS", own ? "1" : "0", 1); }

static nn_graph *newg(void) {
    nn_graph *g = nn_graph_new("test");
    ck_assert_ptr_nonnull(g);
    return g;
}

static const char *act_name(nn_act a) {
    static const char *names[] = {"none", "relu", "relu6", "clamp", "leaky", "prelu", "sigmoid"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "?";
}

/* Fused activation settings for conv params. */
static void set_act(nn_conv_params *p, nn_act a) {
    p->act = a;
    p->act_min = -0.5f;
    p->act_max = 0.75f;
    p->act_alpha = 0.1f;
}

/* ==== Convolutions ==== */

typedef struct conv_case {
    int h, w, ci, co, kh, kw, stride, dil, groups;
    nn_padding padding;
    int pad[4];
} conv_case;

static const conv_case conv_cases[] = {
    {9, 9, 3, 8, 3, 3, 1, 1, 1, NN_PAD_SAME, {0}},
    {10, 11, 3, 16, 3, 3, 2, 1, 1, NN_PAD_SAME, {0}},
    {12, 12, 5, 7, 3, 3, 2, 1, 1, NN_PAD_VALID, {0}},
    {8, 8, 16, 24, 1, 1, 1, 1, 1, NN_PAD_VALID, {0}},
    {7, 9, 13, 11, 1, 1, 2, 1, 1, NN_PAD_SAME, {0}},
    {11, 11, 4, 6, 5, 5, 1, 1, 1, NN_PAD_SAME, {0}},
    {16, 16, 3, 24, 5, 5, 2, 1, 1, NN_PAD_EXPLICIT, {1, 2, 1, 2}},
    {13, 13, 6, 5, 7, 7, 2, 1, 1, NN_PAD_SAME, {0}},
    {12, 12, 6, 10, 3, 3, 1, 2, 1, NN_PAD_SAME, {0}},
    {12, 10, 5, 9, 3, 3, 1, 3, 1, NN_PAD_VALID, {0}},
    {10, 10, 8, 12, 3, 3, 1, 1, 2, NN_PAD_SAME, {0}},
    {9, 9, 12, 6, 3, 3, 2, 1, 3, NN_PAD_SAME, {0}},
    {8, 8, 6, 9, 1, 1, 1, 1, 3, NN_PAD_VALID, {0}},
    {10, 10, 4, 4, 3, 3, 1, 1, 1, NN_PAD_EXPLICIT, {0, 2, 3, 1}},
    {1, 1, 64, 40, 1, 1, 1, 1, 1, NN_PAD_VALID, {0}},
    {3, 4, 8, 5, 1, 1, 1, 1, 1, NN_PAD_VALID, {0}},    /* 12 pixels: two 6-row blocks */
    {5, 5, 9, 40, 1, 1, 1, 1, 1, NN_PAD_VALID, {0}},   /* 25 pixels, 40 = 16 + 16 + 8 */
    {6, 6, 7, 33, 3, 3, 1, 1, 1, NN_PAD_SAME, {0}},    /* 33 = 16 + 16 + 1 */
    {9, 9, 20, 17, 2, 2, 2, 1, 1, NN_PAD_VALID, {0}},  /* 17 = 16 + 1 */
    {14, 14, 32, 9, 1, 1, 2, 1, 1, NN_PAD_VALID, {0}}, /* strided 1x1: direct rows */
    {6, 7, 3, 8, 3, 3, 1, 2, 1, NN_PAD_EXPLICIT, {3, 0, 0, 4}},
    {4, 4, 520, 8, 3, 3, 1, 1, 1, NN_PAD_SAME, {0}},   /* im2col row over the own limit */
};

static const nn_act all_acts[] = {NN_ACT_NONE, NN_ACT_RELU,  NN_ACT_RELU6, NN_ACT_CLAMP,
                                  NN_ACT_LEAKY, NN_ACT_PRELU, NN_ACT_SIGMOID};
#define N_ACTS ((int)(sizeof all_acts / sizeof all_acts[0]))

static void conv_one(const conv_case *c, nn_act act, int with_bias, int batch, uint64_t seed,
                     int own) {
    nn_graph *g = newg();
    rng r = {seed};
    mien_err e = {0};
    int x = input(g, 4, D(batch, c->h, c->w, c->ci));
    int w = rconst(g, &r, 4, D(c->kh, c->kw, c->ci / c->groups, c->co), -1, 1);
    int b = with_bias ? rconst(g, &r, 1, D(c->co, 0, 0, 0), -1, 1) : -1;
    int a = act == NN_ACT_PRELU ? rconst(g, &r, 1, D(c->co, 0, 0, 0), -0.5f, 0.5f) : -1;
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.stride[0] = p.stride[1] = c->stride;
    p.dilation[0] = p.dilation[1] = c->dil;
    p.padding = c->padding;
    memcpy(p.pad, c->pad, sizeof p.pad);
    p.groups = c->groups;
    set_act(&p, act);
    ck_assert_msg(nn_add_conv2d(g, "conv", x, w, b, a, &p, &e) >= 0, "%s", e.msg);
    char what[160];
    snprintf(what, sizeof what,
             "conv2d %dx%dx%d->%d k%dx%d s%d d%d g%d pad%d act %s bias %d n%d own %d", c->h,
             c->w, c->ci, c->co, c->kh, c->kw, c->stride, c->dil, c->groups, c->padding,
             act_name(act), with_bias, batch, own);
    /* The GEMM kernel takes dense convolutions with at least 12 output pixels and im2col
     * rows of at most 4608 values (1x1 unpadded ones need none). */
    const nn_tensor *ty = &g->t[g->nodes[g->n_nodes - 1].out];
    const int *pd = c->pad;
    int direct = c->kh == 1 && c->kw == 1 &&
                 (c->padding != NN_PAD_EXPLICIT || !(pd[0] | pd[1] | pd[2] | pd[3]));
    int on_own = own && c->groups == 1 && ty->dims[0] * ty->dims[1] * ty->dims[2] >= 12 &&
                 (direct || c->kh * c->kw * c->ci <= 4608);
    use_own(own);
    check(g, what, on_own ? "own" : "xnnpack");
    unsetenv("MIEN_OWN_KERNELS");
    nn_graph_free(g);
}

START_TEST(op_conv2d) {
    int n = (int)(sizeof conv_cases / sizeof conv_cases[0]), own = own_capable();
    for (int i = 0; i < n; i++)
        for (int a = 0; a < N_ACTS; a++)
            for (int path = 0; path <= own; path++)
                conv_one(&conv_cases[i], all_acts[a], (i + a) % 3 != 0, 1 + (a == 2 && i < 4),
                         (uint64_t)(100 * i + a), path);
}
END_TEST

typedef struct dw_case {
    int h, w, c, m, kh, kw, stride, dil;
    nn_padding padding;
    int pad[4];
} dw_case;

static const dw_case dw_cases[] = {
    {9, 9, 8, 1, 3, 3, 1, 1, NN_PAD_SAME, {0}},
    {10, 11, 13, 1, 3, 3, 2, 1, NN_PAD_SAME, {0}},
    {12, 12, 5, 1, 3, 3, 2, 1, NN_PAD_VALID, {0}},
    {11, 11, 17, 1, 5, 5, 1, 1, NN_PAD_SAME, {0}},
    {16, 16, 24, 1, 5, 5, 2, 1, NN_PAD_SAME, {0}},
    {9, 9, 7, 1, 7, 7, 1, 1, NN_PAD_SAME, {0}},
    {7, 7, 20, 1, 7, 7, 1, 1, NN_PAD_VALID, {0}},
    {8, 8, 9, 1, 1, 1, 1, 1, NN_PAD_VALID, {0}},
    {12, 12, 6, 1, 3, 3, 1, 2, NN_PAD_SAME, {0}},
    {10, 10, 6, 1, 3, 3, 1, 1, NN_PAD_EXPLICIT, {0, 1, 2, 1}},
    {9, 9, 6, 2, 3, 3, 1, 1, NN_PAD_SAME, {0}},
    {10, 10, 5, 2, 3, 3, 2, 1, NN_PAD_SAME, {0}},
    {8, 8, 3, 3, 5, 5, 1, 1, NN_PAD_VALID, {0}},
    /* Channel counts making the own kernel's chunks of 3, 2 and 1 groups of 8, the last one
     * overlapping; rows not a multiple of its 4-pixel quads; border quads with dilation and
     * uneven padding. */
    {20, 21, 29, 1, 3, 3, 1, 1, NN_PAD_SAME, {0}},
    {7, 10, 28, 1, 3, 3, 1, 1, NN_PAD_SAME, {0}},
    {7, 9, 36, 1, 3, 3, 2, 1, NN_PAD_SAME, {0}},
    {9, 14, 56, 1, 3, 3, 2, 1, NN_PAD_SAME, {0}},
    {6, 30, 40, 1, 5, 5, 1, 2, NN_PAD_SAME, {0}},
    {13, 10, 48, 1, 3, 3, 1, 1, NN_PAD_EXPLICIT, {2, 0, 0, 2}},
    {5, 23, 16, 1, 1, 1, 2, 1, NN_PAD_VALID, {0}},
    {6, 9, 200, 1, 3, 3, 1, 1, NN_PAD_SAME, {0}}, /* from 128 channels: XNNPACK */
    /* A kernel over the whole input (MiniFASNet's last depthwise layer): the own kernel at
     * any channel count. */
    {8, 8, 160, 1, 8, 8, 1, 1, NN_PAD_VALID, {0}},
};

START_TEST(op_dwconv2d) {
    int n = (int)(sizeof dw_cases / sizeof dw_cases[0]), own = own_capable();
    for (int i = 0; i < n * (own + 1); i++)
        for (int ai = 0; ai < N_ACTS; ai++) {
            const int path = i >= n;
            const dw_case *c = &dw_cases[i % n];
            nn_act act = all_acts[ai];
            nn_graph *g = newg();
            rng r = {(uint64_t)(7 * i + ai + 1000)};
            mien_err e = {0};
            int co = c->c * c->m;
            int x = input(g, 4, D(1, c->h, c->w, c->c));
            int w = rconst(g, &r, 4, D(c->kh, c->kw, c->c, c->m), -1, 1);
            int b = (i + ai) % 2 ? rconst(g, &r, 1, D(co, 0, 0, 0), -1, 1) : -1;
            int a = act == NN_ACT_PRELU ? rconst(g, &r, 1, D(co, 0, 0, 0), -0.5f, 0.5f) : -1;
            nn_conv_params p;
            nn_conv_params_default(&p);
            p.stride[0] = p.stride[1] = c->stride;
            p.dilation[0] = p.dilation[1] = c->dil;
            p.padding = c->padding;
            memcpy(p.pad, c->pad, sizeof p.pad);
            set_act(&p, act);
            ck_assert_msg(nn_add_dwconv2d(g, "dw", x, w, b, a, &p, &e) >= 0, "%s", e.msg);
            char what[160];
            snprintf(what, sizeof what, "dwconv2d %dx%dx%d m%d k%dx%d s%d d%d pad%d act %s own %d",
                     c->h, c->w, c->c, c->m, c->kh, c->kw, c->stride, c->dil, c->padding,
                     act_name(act), path);
            use_own(path);
            const int global = c->kh == c->h && c->kw == c->w && c->padding == NN_PAD_VALID &&
                               c->kh * c->kw >= 16;
            check(g, what, path && c->m == 1 && (c->c < 128 || global) ? "own" : "xnnpack");
            nn_graph_free(g);
        }
}
END_TEST

START_TEST(op_fc) {
    static const struct { int ndim; int64_t dims[3]; int m; } cases[] = {
        {2, {1, 64}, 10}, {2, {5, 37}, 19}, {3, {2, 3, 16}, 8}, {2, {1, 1024}, 256},
        {2, {4, 7}, 1},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
        for (int ai = 0; ai < N_ACTS; ai++) {
            nn_act act = all_acts[ai];
            nn_graph *g = newg();
            rng r = {(uint64_t)(31 * i + ai)};
            mien_err e = {0};
            int k = (int)cases[i].dims[cases[i].ndim - 1], m = cases[i].m;
            int x = input(g, cases[i].ndim, cases[i].dims);
            int w = rconst(g, &r, 2, D(k, m, 0, 0), -1, 1);
            int b = ai % 2 ? rconst(g, &r, 1, D(m, 0, 0, 0), -1, 1) : -1;
            int a = act == NN_ACT_PRELU ? rconst(g, &r, 1, D(m, 0, 0, 0), -0.5f, 0.5f) : -1;
            ck_assert_msg(nn_add_fc(g, "fc", x, w, b, a, act, &e) >= 0, "%s", e.msg);
            /* The fc builder takes no clamp range or leaky slope: set them on the node. */
            g->nodes[g->n_nodes - 1].act_min = -0.5f;
            g->nodes[g->n_nodes - 1].act_max = 0.75f;
            g->nodes[g->n_nodes - 1].act_alpha = 0.1f;
            char what[96];
            snprintf(what, sizeof what, "fc case %d act %s", i, act_name(act));
            check(g, what, "xnnpack");
            nn_graph_free(g);
        }
}
END_TEST

/* ==== Elementwise ==== */

/* Broadcasting patterns: a's shape and b's shape (ndim -1: a constant 0-d scalar). */
typedef struct bcast_case {
    int nda;
    int64_t a[4];
    int ndb;
    int64_t b[4];
    int b_const;
} bcast_case;

static const bcast_case bcast_cases[] = {
    {4, {1, 6, 7, 9}, 4, {1, 6, 7, 9}, 0},   /* same shape */
    {4, {2, 5, 3, 9}, 0, {0}, 1},            /* scalar constant */
    {4, {1, 6, 7, 9}, 1, {9}, 1},            /* per channel */
    {4, {1, 6, 7, 9}, 1, {9}, 0},            /* per channel, variable */
    {4, {1, 6, 7, 9}, 3, {1, 7, 9}, 0},      /* row */
    {4, {1, 6, 7, 9}, 4, {1, 6, 1, 1}, 1},   /* per row index */
    {3, {4, 1, 5}, 3, {1, 3, 1}, 0},         /* both sides broadcast */
    {1, {9}, 4, {1, 6, 7, 9}, 0},            /* a broadcast */
    {0, {0}, 2, {3, 4}, 0},                  /* a scalar input */
    {2, {3, 1}, 2, {3, 1}, 1},
    /* A short constant over the channels of an image (an input's mean): the fast backend
     * repeats it along the row. */
    {4, {1, 12, 10, 3}, 1, {3}, 1},
    {4, {2, 5, 7, 3}, 4, {1, 1, 1, 3}, 1},
    {4, {1, 4, 6, 2}, 2, {1, 2}, 1},
};

START_TEST(op_binary) {
    static const nn_op ops[] = {NN_OP_ADD, NN_OP_SUB,     NN_OP_MUL,
                                NN_OP_DIV, NN_OP_MAXIMUM, NN_OP_MINIMUM};
    int seed = 0;
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < (int)(sizeof bcast_cases / sizeof bcast_cases[0]); i++) {
            const bcast_case *c = &bcast_cases[i];
            nn_graph *g = newg();
            rng r = {(uint64_t)++seed};
            mien_err e = {0};
            int a = input(g, c->nda, c->a);
            /* Divisors are kept away from zero: |b| in [0.5, 1.5]. */
            int b = c->b_const ? rconst(g, &r, c->ndb, c->b, 0.5f, 1.5f) : input(g, c->ndb, c->b);
            ck_assert_msg(nn_add_binary(g, ops[o], "bin", a, b, &e) >= 0, "%s", e.msg);
            char what[96];
            snprintf(what, sizeof what, "%s case %d", nn_op_name(ops[o]), i);
            if (ops[o] == NN_OP_DIV && !c->b_const)
                check_range(g, what, "xnnpack", (input_range){0.5f, 1.5f});
            else
                check(g, what, "xnnpack");
            nn_graph_free(g);
        }
}
END_TEST

/* Comparisons (TFLite's LESS, GREATER_EQUAL and their mirrors): 0/1 against textbook values,
 * with broadcasting and equal operands. */
START_TEST(op_compare) {
    static const nn_op ops[] = {NN_OP_LESS, NN_OP_GREATER_EQUAL};
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < (int)(sizeof bcast_cases / sizeof bcast_cases[0]); i++) {
            const bcast_case *c = &bcast_cases[i];
            nn_graph *g = newg();
            rng r = {(uint64_t)(100 + i)};
            mien_err e = {0};
            int a = input(g, c->nda, c->a);
            int b = c->b_const ? rconst(g, &r, c->ndb, c->b, -1.f, 1.f) : input(g, c->ndb, c->b);
            ck_assert_msg(nn_add_binary(g, ops[o], "cmp", a, b, &e) >= 0, "%s", e.msg);
            char what[96];
            snprintf(what, sizeof what, "%s case %d", nn_op_name(ops[o]), i);
            check(g, what, "ref");
            nn_graph_free(g);
        }
    /* Values: a < b, a == b, a > b. */
    nn_graph *g = newg();
    mien_err e = {0};
    int64_t d3 = 3;
    static const float bv[3] = {0.5f, 0.5f, 0.5f};
    int a = input(g, 1, &d3), b = nn_add_const(g, "b", 1, &d3, bv, &e);
    int lt = nn_add_binary(g, NN_OP_LESS, "lt", a, b, &e);
    int ge = nn_add_binary(g, NN_OP_GREATER_EQUAL, "ge", a, b, &e);
    ck_assert(lt >= 0 && ge >= 0 && nn_mark_output(g, lt, &e) == 0 && nn_mark_output(g, ge, &e) == 0);
    nn_exec *x;
    nn_exec_opts ro = {.backend = NN_BACKEND_REF, .threads = 1};
    ck_assert(nn_exec_create(g, &ro, &x, &e) == 0);
    float *in = nn_exec_input(x, 0);
    in[0] = 0.25f, in[1] = 0.5f, in[2] = 0.75f;
    ck_assert(nn_exec_run(x, &e) == 0);
    const float *y0 = nn_exec_output(x, 0), *y1 = nn_exec_output(x, 1);
    ck_assert(y0[0] == 1.f && y0[1] == 0.f && y0[2] == 0.f);
    ck_assert(y1[0] == 0.f && y1[1] == 1.f && y1[2] == 1.f);
    nn_exec_free(x);
    nn_graph_free(g);
}
END_TEST

/* Activations fused into binary ops (graph_opt fuses them into adds). */
START_TEST(op_binary_fused_act) {
    static const nn_op ops[] = {NN_OP_ADD, NN_OP_SUB, NN_OP_MUL, NN_OP_MAXIMUM};
    static const nn_act acts[] = {NN_ACT_RELU, NN_ACT_RELU6, NN_ACT_CLAMP, NN_ACT_LEAKY,
                                  NN_ACT_SIGMOID};
    for (int o = 0; o < 4; o++)
        for (int k = 0; k < 5; k++) {
            nn_graph *g = newg();
            mien_err e = {0};
            int a = input(g, 4, D(1, 5, 6, 11)), b = input(g, 4, D(1, 5, 6, 11));
            ck_assert(nn_add_binary(g, ops[o], "bin", a, b, &e) >= 0);
            nn_node *n = &g->nodes[g->n_nodes - 1];
            n->act = acts[k];
            n->act_min = -0.5f, n->act_max = 0.75f, n->act_alpha = 0.1f;
            char what[96];
            snprintf(what, sizeof what, "%s fused %s", nn_op_name(ops[o]), act_name(acts[k]));
            check_range(g, what, "xnnpack", (input_range){-4.f, 4.f});
            nn_graph_free(g);
        }
}
END_TEST

START_TEST(op_unary) {
    static const struct { nn_op op; const char *want; float lo, hi; } cases[] = {
        {NN_OP_ABS, "xnnpack", -3, 3},      {NN_OP_NEG, "xnnpack", -3, 3},
        {NN_OP_SQUARE, "xnnpack", -3, 3},   {NN_OP_SQRT, "xnnpack", 0, 9},
        {NN_OP_RSQRT, "ref", 0.1f, 9},      {NN_OP_EXP, "ref", -5, 5},
        {NN_OP_RELU, "xnnpack", -8, 8},     {NN_OP_RELU6, "xnnpack", -8, 8},
        {NN_OP_SIGMOID, "xnnpack", -10, 10}, {NN_OP_TANH, "ref", -4, 4},
    };
    static const int64_t shapes[][4] = {{1, 7, 9, 5}, {3, 1, 1, 1}, {2, 33, 1, 17}};
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++)
        for (int s = 0; s < 3; s++) {
            nn_graph *g = newg();
            mien_err e = {0};
            int x = input(g, 4, shapes[s]);
            ck_assert(nn_add_unary(g, cases[i].op, "u", x, &e) >= 0);
            char what[64];
            snprintf(what, sizeof what, "%s shape %d", nn_op_name(cases[i].op), s);
            check_range(g, what, cases[i].want, (input_range){cases[i].lo, cases[i].hi});
            nn_graph_free(g);
        }
}
END_TEST

START_TEST(op_leaky_clamp) {
    for (int s = 0; s < 2; s++) {
        nn_graph *g = newg();
        mien_err e = {0};
        int x = input(g, 4, D(1, 9, 5, 3 + s));
        ck_assert(nn_add_leaky_relu(g, "leaky", x, 0.2f, &e) >= 0);
        check_range(g, "leaky_relu", "xnnpack", (input_range){-3, 3});
        nn_graph_free(g);
        g = newg();
        x = input(g, 2, D(7, 13 + s, 0, 0));
        ck_assert(nn_add_clamp(g, "clamp", x, -0.25f, 1.5f, &e) >= 0);
        check_range(g, "clamp", "xnnpack", (input_range){-3, 3});
        nn_graph_free(g);
    }
    /* An empty range is left to the reference. */
    nn_graph *g = newg();
    mien_err e = {0};
    int x = input(g, 2, D(3, 4, 0, 0));
    ck_assert(nn_add_clamp(g, "clamp", x, 1.f, 1.f, &e) >= 0);
    check(g, "clamp empty range", "ref");
    nn_graph_free(g);
}
END_TEST

START_TEST(op_prelu) {
    static const struct { int ndim; int64_t dims[4]; int scalar; } cases[] = {
        {4, {1, 8, 9, 13}, 0}, {4, {2, 4, 4, 16}, 1}, {2, {5, 7}, 0}, {3, {1, 6, 32}, 0},
    };
    for (int i = 0; i < 4; i++) {
        nn_graph *g = newg();
        rng r = {(uint64_t)i + 77};
        mien_err e = {0};
        int x = input(g, cases[i].ndim, cases[i].dims);
        int64_t c = cases[i].scalar ? 1 : cases[i].dims[cases[i].ndim - 1];
        int a = rconst(g, &r, 1, &c, -0.5f, 0.5f);
        ck_assert(nn_add_prelu(g, "prelu", x, a, &e) >= 0);
        char what[32];
        snprintf(what, sizeof what, "prelu case %d", i);
        check(g, what, "xnnpack");
        nn_graph_free(g);
    }
}
END_TEST

START_TEST(op_batchnorm) {
    for (int i = 0; i < 2; i++) {
        nn_graph *g = newg();
        rng r = {(uint64_t)i + 5};
        mien_err e = {0};
        int64_t c = 11 + 8 * i;
        int x = input(g, 4, D(1, 5, 6, c));
        int sc = rconst(g, &r, 1, &c, -2, 2), sh = rconst(g, &r, 1, &c, -1, 1);
        ck_assert(nn_add_batchnorm(g, "bn", x, sc, sh, &e) >= 0);
        check(g, "batchnorm", "xnnpack");
        nn_graph_free(g);
    }
}
END_TEST

/* ==== Batch norm folding (graph_opt.c, the pass every loader runs) ====
 * Each case is built twice from the same seed; the copy run through nn_graph_optimize must
 * give the untouched graph's outputs on the reference backend (to float rounding of the
 * folded weights) with the nodes it was expected to fold gone. */

enum { BNF_CONV_PRELU, BNF_CONV_NOBIAS_TWICE, BNF_DW_MULT2, BNF_FC, BNF_SHARED_WEIGHTS,
       BNF_READ_TWICE, BNF_AFTER_RELU, BNF_CASES };

static nn_graph *bnf_graph(int which) {
    nn_graph *g = newg();
    rng r = {(uint64_t)which + 71};
    mien_err e = {0};
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.padding = NN_PAD_SAME;
    int64_t co = 6, ci = 3;
    int x = which == BNF_FC ? input(g, 2, D(3, 20, 0, 0)) : input(g, 4, D(1, 7, 8, ci));
    int y = -1, y2 = -1;
    switch (which) {
    case BNF_CONV_PRELU: case BNF_CONV_NOBIAS_TWICE: case BNF_READ_TWICE: case BNF_AFTER_RELU: {
        int w = rconst(g, &r, 4, D(3, 3, ci, co), -1, 1);
        int b = which == BNF_CONV_NOBIAS_TWICE ? -1 : rconst(g, &r, 1, &co, -1, 1);
        if (which == BNF_AFTER_RELU) p.act = NN_ACT_RELU;
        y = nn_add_conv2d(g, "conv", x, w, b, -1, &p, &e);
        break;
    }
    case BNF_DW_MULT2: {
        int w = rconst(g, &r, 4, D(3, 3, ci, 2), -1, 1);
        y = nn_add_dwconv2d(g, "dw", x, w, -1, -1, &p, &e);
        break;
    }
    case BNF_FC: {
        int w = rconst(g, &r, 2, D(20, co, 0, 0), -1, 1), b = rconst(g, &r, 1, &co, -1, 1);
        y = nn_add_fc(g, "fc", x, w, b, -1, NN_ACT_NONE, &e);
        break;
    }
    case BNF_SHARED_WEIGHTS: {
        int w = rconst(g, &r, 4, D(3, 3, ci, co), -1, 1), b = rconst(g, &r, 1, &co, -1, 1);
        y = nn_add_conv2d(g, "conv1", x, w, b, -1, &p, &e);
        y2 = nn_add_conv2d(g, "conv2", x, w, b, -1, &p, &e);
        break;
    }
    }
    ck_assert_msg(y >= 0, "%s", e.msg);
    int sc = rconst(g, &r, 1, &co, 0.5f, 2), sh = rconst(g, &r, 1, &co, -1, 1);
    int z = nn_add_batchnorm(g, "bn", y, sc, sh, &e);
    ck_assert_msg(z >= 0, "%s", e.msg);
    if (which == BNF_CONV_NOBIAS_TWICE) {
        int sc2 = rconst(g, &r, 1, &co, -2, -0.5f), sh2 = rconst(g, &r, 1, &co, -1, 1);
        z = nn_add_batchnorm(g, "bn2", z, sc2, sh2, &e);
    } else if (which == BNF_CONV_PRELU) {
        z = nn_add_prelu(g, "prelu", z, rconst(g, &r, 1, &co, 0, 0.5f), &e);
    } else if (which == BNF_SHARED_WEIGHTS) {
        int sc2 = rconst(g, &r, 1, &co, 0.5f, 2), sh2 = rconst(g, &r, 1, &co, -1, 1);
        int z2 = nn_add_batchnorm(g, "bn2", y2, sc2, sh2, &e);
        z = z2 < 0 ? -1 : nn_add_binary(g, NN_OP_ADD, "sum", z, z2, &e);
    } else if (which == BNF_READ_TWICE) {
        z = nn_add_binary(g, NN_OP_ADD, "sum", z, y, &e);
    }
    ck_assert_msg(z >= 0, "%s", e.msg);
    ck_assert_int_eq(nn_mark_output(g, z, &e), 0);
    return g;
}

START_TEST(graph_opt_fold_batchnorm) {
    /* Nodes left after the pass, and whether a BATCHNORM may remain. */
    static const struct { const char *name; int nodes, bn_left; } want[BNF_CASES] = {
        {"conv+bn+prelu", 2, 0},         {"conv (no bias)+bn+bn", 2, 0},
        {"dwconv x2+bn", 2, 0},          {"fc+bn", 2, 0},
        {"shared weights", 4, 0},        {"conv read twice", 4, 1},
        {"bn after relu", 3, 1},
    };
    for (int c = 0; c < BNF_CASES; c++) {
        nn_graph *g0 = bnf_graph(c), *g1 = bnf_graph(c);
        mien_err e = {0};
        ck_assert_msg(nn_graph_optimize(g1, &e) == 0, "%s: %s", want[c].name, e.msg);
        int bn = 0, prelu = 0;
        for (int i = 0; i < g1->n_nodes; i++) {
            bn += g1->nodes[i].op == NN_OP_BATCHNORM;
            prelu += g1->nodes[i].op == NN_OP_PRELU;
        }
        ck_assert_msg(g1->n_nodes == want[c].nodes && (bn > 0) == want[c].bn_left && !prelu,
                      "%s: %d nodes (%d batch norms, %d prelu), expected %d", want[c].name,
                      g1->n_nodes, bn, prelu, want[c].nodes);
        nn_exec *x0 = NULL, *x1 = NULL;
        nn_exec_opts ro = {.backend = NN_BACKEND_REF, .threads = 1};
        ck_assert_int_eq(nn_exec_create(g0, &ro, &x0, &e), 0);
        ck_assert_int_eq(nn_exec_create(g1, &ro, &x1, &e), 0);
        fill_inputs(x0, 9, (input_range){-1, 1});
        fill_inputs(x1, 9, (input_range){-1, 1});
        ck_assert_int_eq(nn_exec_run(x0, &e), 0);
        ck_assert_int_eq(nn_exec_run(x1, &e), 0);
        double err = rel_err(nn_exec_output(x1, 0), nn_exec_output(x0, 0), g0->t[g0->outputs[0]].n);
        ck_assert_msg(err <= 1e-5, "%s: folded graph differs by %.3g", want[c].name, err);
        nn_exec_free(x0);
        nn_exec_free(x1);
        nn_graph_free(g0);
        nn_graph_free(g1);
    }
}
END_TEST

/* ==== Reductions, softmax ==== */

START_TEST(op_reduce) {
    static const struct { unsigned axes; int keep; } cases[] = {
        {0x6, 0}, {0x6, 1}, {0x2, 1}, {0x8, 0}, {0xf, 0}, {0xa, 1}, {0x1, 0}, {0xc, 1},
    };
    static const nn_op ops[] = {NN_OP_SUM, NN_OP_MEAN, NN_OP_REDUCE_MAX};
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
            nn_graph *g = newg();
            mien_err e = {0};
            int x = input(g, 4, D(2, 7, 5, 19));
            ck_assert(nn_add_reduce(g, ops[o], "r", x, cases[i].axes, cases[i].keep, &e) >= 0);
            /* Fast: means over one contiguous run of axes (0xa is not one). */
            const char *want = ops[o] == NN_OP_MEAN && cases[i].axes != 0xa ? "xnnpack" : "ref";
            char what[64];
            snprintf(what, sizeof what, "%s axes 0x%x keep %d", nn_op_name(ops[o]),
                     cases[i].axes, cases[i].keep);
            check(g, what, want);
            nn_graph_free(g);
        }
}
END_TEST

START_TEST(op_softmax) {
    static const int64_t shapes[][4] = {{3, 10, 0, 0}, {2, 4, 17, 0}, {1, 100, 0, 0}, {5, 1, 0, 0}};
    static const int nd[] = {2, 3, 2, 2};
    for (int i = 0; i < 4; i++) {
        nn_graph *g = newg();
        mien_err e = {0};
        int x = input(g, nd[i], shapes[i]);
        ck_assert(nn_add_softmax(g, "sm", x, &e) >= 0);
        check_range(g, "softmax", "xnnpack", (input_range){-6, 6});
        nn_graph_free(g);
    }
}
END_TEST

/* ==== Pooling ==== */

typedef struct pool_case {
    int h, w, c, kh, kw, stride, dil;
    nn_padding padding;
    int pad[4];
} pool_case;

static const pool_case pool_cases[] = {
    {8, 8, 5, 2, 2, 2, 1, NN_PAD_VALID, {0}},
    {9, 9, 7, 2, 2, 2, 1, NN_PAD_SAME, {0}},
    {9, 10, 16, 3, 3, 2, 1, NN_PAD_SAME, {0}},
    {9, 9, 3, 3, 3, 1, 1, NN_PAD_SAME, {0}},
    {10, 10, 9, 3, 3, 2, 1, NN_PAD_VALID, {0}},
    {7, 7, 4, 7, 7, 1, 1, NN_PAD_VALID, {0}},
    {11, 11, 6, 5, 5, 3, 1, NN_PAD_SAME, {0}},
    {8, 8, 3, 3, 2, 1, 1, NN_PAD_EXPLICIT, {1, 0, 1, 1}},
    {9, 9, 4, 2, 2, 1, 2, NN_PAD_SAME, {0}},
};

START_TEST(op_pool) {
    for (int o = 0; o < 2; o++)
        for (int i = 0; i < (int)(sizeof pool_cases / sizeof pool_cases[0]); i++) {
            const pool_case *c = &pool_cases[i];
            nn_op op = o ? NN_OP_AVGPOOL : NN_OP_MAXPOOL;
            nn_graph *g = newg();
            mien_err e = {0};
            int x = input(g, 4, D(1 + (i == 2), c->h, c->w, c->c));
            nn_conv_params p;
            nn_conv_params_default(&p);
            p.stride[0] = p.stride[1] = c->stride;
            p.dilation[0] = p.dilation[1] = c->dil;
            p.padding = c->padding;
            memcpy(p.pad, c->pad, sizeof p.pad);
            int k[2] = {c->kh, c->kw};
            ck_assert_msg(nn_add_pool(g, op, "pool", x, k, &p, &e) >= 0, "%s", e.msg);
            /* XNNPACK's average pooling has no dilation. */
            const char *want = op == NN_OP_AVGPOOL && c->dil > 1 ? "ref" : "xnnpack";
            char what[96];
            snprintf(what, sizeof what, "%s case %d", nn_op_name(op), i);
            check(g, what, want);
            nn_graph_free(g);
        }
    /* 1x1 pooling and windows lying wholly in the padding stay on the reference. */
    for (int o = 0; o < 2; o++) {
        nn_op op = o ? NN_OP_AVGPOOL : NN_OP_MAXPOOL;
        nn_graph *g = newg();
        mien_err e = {0};
        int x = input(g, 4, D(1, 5, 5, 3));
        nn_conv_params p;
        nn_conv_params_default(&p);
        p.stride[0] = p.stride[1] = 2;
        int k1[2] = {1, 1};
        ck_assert(nn_add_pool(g, op, "pool", x, k1, &p, &e) >= 0);
        check(g, "pool 1x1", "ref");
        nn_graph_free(g);
        g = newg();
        x = input(g, 4, D(1, 2, 2, 3));
        p.padding = NN_PAD_EXPLICIT;
        p.stride[0] = p.stride[1] = 1;
        int pads[4] = {0, 3, 0, 0};
        memcpy(p.pad, pads, sizeof pads);
        int k2[2] = {2, 2};
        ck_assert(nn_add_pool(g, op, "pool", x, k2, &p, &e) >= 0);
        check(g, "pool window in padding", "ref");
        nn_graph_free(g);
    }
}
END_TEST

/* ==== Data movement ==== */

START_TEST(op_pad) {
    static const struct { int ndim; int64_t dims[4]; int64_t pads[8]; float value; } cases[] = {
        {4, {1, 6, 5, 7}, {0, 0, 0, 0, 0, 0, 0, 4}, 0.f},   /* channels (BlazeFace) */
        {4, {1, 6, 5, 7}, {0, 0, 1, 2, 2, 1, 0, 0}, 0.f},   /* spatial */
        {4, {1, 6, 5, 7}, {1, 0, 0, 1, 1, 1, 3, 2}, -1.5f}, /* every axis */
        {2, {3, 5}, {2, 1, 0, 3}, 2.f},
        {1, {9}, {4, 0}, 0.f},
    };
    int own = own_capable();
    for (int path = 0; path <= own; path++)
        for (int i = 0; i < 5; i++) {
            nn_graph *g = newg();
            mien_err e = {0};
            int x = input(g, cases[i].ndim, cases[i].dims);
            ck_assert(nn_add_pad(g, "pad", x, cases[i].pads, cases[i].value, &e) >= 0);
            char what[32];
            snprintf(what, sizeof what, "pad case %d own %d", i, path);
            use_own(path);
            check(g, what, path ? "own" : "xnnpack");
            nn_graph_free(g);
        }
}
END_TEST

START_TEST(op_concat) {
    for (int axis = 0; axis < 4; axis++) {
        nn_graph *g = newg();
        mien_err e = {0};
        int xs[3];
        for (int i = 0; i < 3; i++) {
            int64_t d[4] = {2, 3, 4, 5};
            d[axis] = 1 + 2 * i;
            xs[i] = input(g, 4, d);
        }
        ck_assert(nn_add_concat(g, "cat", xs, 3, axis, &e) >= 0);
        char what[32];
        snprintf(what, sizeof what, "concat axis %d", axis);
        check(g, what, "xnnpack");
        nn_graph_free(g);
    }
}
END_TEST

START_TEST(op_reshape_transpose_slice) {
    nn_graph *g = newg();
    mien_err e = {0};
    int x = input(g, 4, D(1, 4, 6, 5));
    int64_t nd[2] = {24, 5};
    ck_assert(nn_add_reshape(g, "rs", x, 2, nd, &e) >= 0);
    check(g, "reshape", "ref");
    nn_graph_free(g);

    g = newg();
    x = input(g, 4, D(2, 4, 6, 5));
    int perm[4] = {0, 3, 1, 2};
    ck_assert(nn_add_transpose(g, "tr", x, perm, &e) >= 0);
    check(g, "transpose", "ref");
    nn_graph_free(g);

    g = newg();
    x = input(g, 4, D(2, 8, 6, 5));
    int64_t begin[4] = {1, 1, 5, 0}, end[4] = {2, 7, -1, 4}, step[4] = {1, 2, -2, 1};
    ck_assert(nn_add_slice(g, "sl", x, begin, end, step, &e) >= 0);
    check(g, "slice", "ref");
    nn_graph_free(g);
}
END_TEST

START_TEST(op_resize) {
    static const struct { int h, w, oh, ow; } sizes[] = {
        {4, 5, 8, 10}, {6, 6, 9, 13}, {9, 8, 4, 3}, {1, 3, 4, 5},
    };
    static const int modes[][2] = {{0, 0}, {1, 0}, {0, 1}}; /* align_corners, half_pixel */
    for (int s = 0; s < 4; s++)
        for (int m = 0; m < 3; m++)
            for (int op = 0; op < 2; op++) {
                nn_op kind = op ? NN_OP_RESIZE_NEAREST : NN_OP_RESIZE_BILINEAR;
                nn_graph *g = newg();
                mien_err e = {0};
                int x = input(g, 4, D(1, sizes[s].h, sizes[s].w, 6));
                ck_assert(nn_add_resize(g, kind, "rz", x, sizes[s].oh, sizes[s].ow,
                                        modes[m][0], modes[m][1], &e) >= 0);
                char what[96];
                snprintf(what, sizeof what, "%s %dx%d->%dx%d align %d half %d",
                         nn_op_name(kind), sizes[s].h, sizes[s].w, sizes[s].oh, sizes[s].ow,
                         modes[m][0], modes[m][1]);
                check(g, what, op ? "ref" : "xnnpack");
                nn_graph_free(g);
            }
}
END_TEST

START_TEST(op_depth_to_space) {
    for (int b = 2; b <= 3; b++) {
        nn_graph *g = newg();
        mien_err e = {0};
        int x = input(g, 4, D(2, 3, 4, 5 * b * b));
        ck_assert(nn_add_depth_to_space(g, "d2s", x, b, &e) >= 0);
        check(g, "depth_to_space", "xnnpack");
        nn_graph_free(g);
    }
}
END_TEST


/* ==== The reference against textbook loops ==== */

static float act_apply(nn_act act, float v, float alpha) {
    switch (act) {
    case NN_ACT_RELU: return v > 0 ? v : 0;
    case NN_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case NN_ACT_PRELU: return v > 0 ? v : alpha * v;
    default: return v;
    }
}

/* Run g's reference exec and return a malloc'd copy of output 0. */
static float *ref_output(nn_graph *g, const float *in) {
    mien_err e = {0};
    if (g->n_outputs == 0) ck_assert_int_eq(nn_mark_output(g, g->nodes[g->n_nodes - 1].out, &e), 0);
    nn_exec *x = NULL;
    nn_exec_opts o = {.backend = NN_BACKEND_REF};
    ck_assert_int_eq(nn_exec_create(g, &o, &x, &e), 0);
    memcpy(nn_exec_input(x, 0), in, (size_t)g->t[g->inputs[0]].n * sizeof *in);
    ck_assert_int_eq(nn_exec_run(x, &e), 0);
    int64_t n = g->t[g->outputs[0]].n;
    float *out = malloc((size_t)n * sizeof *out);
    memcpy(out, nn_exec_output(x, 0), (size_t)n * sizeof *out);
    nn_exec_free(x);
    return out;
}

static float *rand_buf(rng *r, int64_t n) {
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = rnd(r);
    return p;
}

START_TEST(ref_vs_textbook_conv) {
    /* N, H, W, CI, CO, KH, KW, stride, dilation, groups, pad t b l r, act (0 none 1 relu 5 prelu),
     * depthwise multiplier (0: dense conv) */
    static const int cases[][17] = {
        {2, 7, 8, 6, 4, 3, 3, 2, 1, 2, 1, 1, 0, 2, 1, 0, 0},
        {1, 9, 9, 3, 5, 5, 3, 1, 2, 1, 2, 2, 1, 1, 5, 0, 0},
        {1, 8, 7, 4, 8, 3, 3, 2, 1, 1, 0, 1, 0, 1, 1, 2, 0},
        {1, 6, 6, 5, 5, 3, 3, 1, 2, 1, 2, 2, 2, 2, 5, 1, 0},
    };
    for (int ci_ = 0; ci_ < 4; ci_++) {
        const int *c = cases[ci_];
        const int N = c[0], H = c[1], W = c[2], CI = c[3], CO = c[4], KH = c[5], KW = c[6];
        const int S = c[7], DL = c[8], G = c[9], pt = c[10], pb = c[11], pl = c[12], pr = c[13];
        const nn_act act = (nn_act)c[14];
        const int M = c[15]; /* depthwise multiplier, 0 for a dense conv */
        const int dw = M > 0, COT = dw ? CI * M : CO;
        rng r = {(uint64_t)ci_ + 900};
        nn_graph *g = newg();
        mien_err e = {0};
        int x = input(g, 4, D(N, H, W, CI));
        int64_t wd[4] = {KH, KW, dw ? CI : CI / G, dw ? M : CO};
        float *wv = rand_buf(&r, count_of(4, wd)), *bv = rand_buf(&r, COT), *av = rand_buf(&r, COT);
        int w = nn_add_const(g, "w", 4, wd, wv, &e);
        int64_t cd = COT;
        int b = nn_add_const(g, "b", 1, &cd, bv, &e);
        int a = act == NN_ACT_PRELU ? nn_add_const(g, "a", 1, &cd, av, &e) : -1;
        nn_conv_params p;
        nn_conv_params_default(&p);
        p.stride[0] = p.stride[1] = S;
        p.dilation[0] = p.dilation[1] = DL;
        p.padding = NN_PAD_EXPLICIT;
        p.pad[0] = pt, p.pad[1] = pb, p.pad[2] = pl, p.pad[3] = pr;
        p.groups = G;
        p.act = act;
        int y = dw ? nn_add_dwconv2d(g, "conv", x, w, b, a, &p, &e)
                   : nn_add_conv2d(g, "conv", x, w, b, a, &p, &e);
        ck_assert_msg(y >= 0, "%s", e.msg);
        const int OH = (H + pt + pb - ((KH - 1) * DL + 1)) / S + 1;
        const int OW = (W + pl + pr - ((KW - 1) * DL + 1)) / S + 1;
        ck_assert_int_eq(g->t[y].dims[1], OH);
        ck_assert_int_eq(g->t[y].dims[2], OW);
        float *xv = rand_buf(&r, (int64_t)N * H * W * CI);
        float *got = ref_output(g, xv);
        double worst = 0, mag = 1e-3;
        for (int n = 0; n < N; n++)
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++)
                    for (int co = 0; co < COT; co++) {
                        double s = bv[co];
                        for (int ky = 0; ky < KH; ky++)
                            for (int kx = 0; kx < KW; kx++) {
                                int iy = oy * S - pt + ky * DL, ix = ox * S - pl + kx * DL;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                if (dw) {
                                    int cin = co / M, m = co % M;
                                    s += (double)xv[((n * H + iy) * W + ix) * CI + cin] *
                                         wv[((ky * KW + kx) * CI + cin) * M + m];
                                } else {
                                    int cig = CI / G, cog = CO / G, grp = co / cog;
                                    const float *xp = xv + ((n * H + iy) * W + ix) * CI + grp * cig;
                                    const float *wp = wv + (ky * KW + kx) * cig * CO + co;
                                    for (int i = 0; i < cig; i++) s += (double)xp[i] * wp[i * CO];
                                }
                            }
                        float want = act_apply(act, (float)s, av[co]);
                        float have = got[((n * OH + oy) * OW + ox) * COT + co];
                        if (fabs(want) > mag) mag = fabs(want);
                        if (fabs(have - want) > worst) worst = fabs(have - want);
                    }
        ck_assert_msg(worst / mag < 1e-5, "textbook conv case %d: error %.3g", ci_, worst / mag);
        free(wv), free(bv), free(av), free(xv), free(got);
        nn_graph_free(g);
    }
}
END_TEST

START_TEST(ref_vs_textbook_fc_pool) {
    rng r = {4242};
    mien_err e = {0};
    /* fc: (3, 2, 13) @ (13, 7) + b, relu */
    {
        nn_graph *g = newg();
        int64_t xd[3] = {3, 2, 13}, wd[2] = {13, 7}, bd = 7;
        int x = input(g, 3, xd);
        float *wv = rand_buf(&r, 13 * 7), *bv = rand_buf(&r, 7), *xv = rand_buf(&r, 78);
        int w = nn_add_const(g, "w", 2, wd, wv, &e), b = nn_add_const(g, "b", 1, &bd, bv, &e);
        ck_assert(nn_add_fc(g, "fc", x, w, b, -1, NN_ACT_RELU, &e) >= 0);
        float *got = ref_output(g, xv);
        for (int row = 0; row < 6; row++)
            for (int m = 0; m < 7; m++) {
                double s = bv[m];
                for (int k = 0; k < 13; k++) s += (double)xv[row * 13 + k] * wv[k * 7 + m];
                ck_assert_float_eq_tol(got[row * 7 + m], s > 0 ? s : 0, 1e-5);
            }
        free(wv), free(bv), free(xv), free(got);
        nn_graph_free(g);
    }
    /* pools: TF SAME on 7x6 with a 3x3 window, stride 2: average over the valid taps only. */
    for (int o = 0; o < 2; o++) {
        const int H = 7, W = 6, C = 3, K = 3, S = 2;
        nn_graph *g = newg();
        int x = input(g, 4, D(1, H, W, C));
        nn_conv_params p;
        nn_conv_params_default(&p);
        p.stride[0] = p.stride[1] = S;
        p.padding = NN_PAD_SAME;
        int k[2] = {K, K};
        int y = nn_add_pool(g, o ? NN_OP_AVGPOOL : NN_OP_MAXPOOL, "pool", x, k, &p, &e);
        ck_assert(y >= 0);
        /* SAME: out = ceil(in / stride), padding split with the odd pixel after. */
        const int OH = (H + S - 1) / S, OW = (W + S - 1) / S;
        const int pt = ((OH - 1) * S + K - H) / 2, pl = ((OW - 1) * S + K - W) / 2;
        ck_assert_int_eq(g->t[y].dims[1], OH);
        ck_assert_int_eq(g->t[y].dims[2], OW);
        float *xv = rand_buf(&r, H * W * C);
        float *got = ref_output(g, xv);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++)
                for (int c = 0; c < C; c++) {
                    double s = 0, mx = -INFINITY;
                    int cnt = 0;
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = oy * S - pt + ky, ix = ox * S - pl + kx;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            double v = xv[(iy * W + ix) * C + c];
                            s += v, cnt++;
                            if (v > mx) mx = v;
                        }
                    double want = o ? s / cnt : mx;
                    ck_assert_float_eq_tol(got[(oy * OW + ox) * C + c], want, 1e-6);
                }
        free(xv), free(got);
        nn_graph_free(g);
    }
}
END_TEST

/* Training batch norm (statistics of the batch, biased variance) and L2 normalisation, which
 * only the reference backend runs (the trainer's ops; tests/test_train.c also checks them
 * against PyTorch). */
START_TEST(ref_vs_textbook_norms) {
    rng r = {777};
    mien_err e = {0};
    const int R = 10, C = 6;
    for (int act = 0; act < 2; act++) {
        nn_graph *g = newg();
        int64_t cd = C;
        int x = input(g, 4, D(2, 5, 1, C));
        float *gv = rand_buf(&r, C), *bv = rand_buf(&r, C), *xv = rand_buf(&r, R * C);
        int gm = nn_add_const(g, "gamma", 1, &cd, gv, &e), bt = nn_add_const(g, "beta", 1, &cd, bv, &e);
        ck_assert(nn_add_batchnorm_train(g, "bn", x, gm, bt, -1, act ? NN_ACT_RELU : NN_ACT_NONE,
                                         1e-3f, &e) >= 0);
        float *got = ref_output(g, xv);
        for (int c = 0; c < C; c++) {
            double m = 0, v = 0;
            for (int i = 0; i < R; i++) m += xv[i * C + c];
            m /= R;
            for (int i = 0; i < R; i++) v += (xv[i * C + c] - m) * (xv[i * C + c] - m);
            v /= R;
            for (int i = 0; i < R; i++) {
                double y = (xv[i * C + c] - m) / sqrt(v + 1e-3) * gv[c] + bv[c];
                if (act && y < 0) y = 0;
                ck_assert_float_eq_tol(got[i * C + c], y, 1e-5);
            }
        }
        free(gv), free(bv), free(xv), free(got);
        nn_graph_free(g);
    }
    {
        nn_graph *g = newg();
        int64_t xd[2] = {R, C};
        int x = input(g, 2, xd);
        float *xv = rand_buf(&r, R * C);
        for (int k = 0; k < C; k++) xv[3 * C + k] = 0; /* a zero row: eps keeps it finite */
        ck_assert(nn_add_l2norm(g, "l2", x, 1e-10f, &e) >= 0);
        float *got = ref_output(g, xv);
        for (int i = 0; i < R; i++) {
            double ss = 0;
            for (int k = 0; k < C; k++) ss += (double)xv[i * C + k] * xv[i * C + k];
            double inv = 1 / sqrt(ss > 1e-10 ? ss : 1e-10);
            for (int k = 0; k < C; k++) ck_assert_float_eq_tol(got[i * C + k], xv[i * C + k] * inv, 1e-6);
        }
        free(xv), free(got);
        nn_graph_free(g);
    }
}
END_TEST

/* Every op of ops.def names the test above that runs it (its last column); this table is
 * generated from ops.def, so an op without a test, or naming a test that does not exist,
 * does not compile, and the suite below checks that each named test is registered. */
static const TTest *const *const op_test[NN_OP_COUNT] = {
#define OP(name, str, nmin, nmax, ref, test) [NN_OP_##name] = &test,
#include "nn/ops.def"
#undef OP
};

static const TTest *const *registered[64];
static int n_registered;

static void add_test(TCase *tc, const TTest *const *t) {
    if (n_registered < (int)(sizeof registered / sizeof registered[0])) registered[n_registered++] = t;
    _tcase_add_test(tc, *t, 0, 0, 0, 1);
}

START_TEST(every_op_covered) {
    for (int op = 0; op < NN_OP_COUNT; op++) {
        ck_assert_msg(op_test[op] != NULL, "op %s has no backend test", nn_op_name((nn_op)op));
        int found = 0;
        for (int i = 0; i < n_registered; i++) found |= registered[i] == op_test[op];
        ck_assert_msg(found, "op %s: its test %s is not in the suite", nn_op_name((nn_op)op),
                      (*op_test[op])->name);
    }
}
END_TEST

/* ==== Whole models ==== */

/* Compare a fast exec of g with the reference outputs of xr. */
static void model_compare(const nn_graph *g, const char *name, nn_exec *xr, const char *path) {
    mien_err e = {0};
    nn_exec *xf = NULL;
    nn_exec_opts fo = {.backend = NN_BACKEND_FAST, .threads = 2};
    ck_assert_msg(nn_exec_create(g, &fo, &xf, &e) == 0, "%s", e.msg);
    fill_inputs(xf, 7, (input_range){-1, 1});
    ck_assert_msg(nn_exec_run(xf, &e) == 0, "%s", e.msg);
    int n_conv = 0, n_conv_fast = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == NN_OP_CONV2D || g->nodes[i].op == NN_OP_DWCONV2D) {
            n_conv++;
            n_conv_fast += strcmp(nn_exec_node_backend(xf, i), "ref") != 0;
        }
    /* Without a fast backend (make XNNPACK=0) every node runs on the reference. */
    const int want_fast = nn_backend_fast() ? n_conv : 0;
    ck_assert_msg(n_conv > 0 && n_conv_fast == want_fast,
                  "%s (%s): %d of %d convolutions on the fast backend", name, path, n_conv_fast,
                  n_conv);
    for (int o = 0; o < g->n_outputs; o++) {
        const nn_tensor *t = &g->t[g->outputs[o]];
        const float *a = nn_exec_output(xf, o), *b = nn_exec_output(xr, o);
        double err = rel_err(a, b, t->n);
        ck_assert_msg(err <= TOL, "%s (%s) output %d (%s): relative error %.3g", name, path, o,
                      t->name, err);
        if (strcmp(name, "mobilefacenet") == 0) {
            /* The embedding is L2-normalised by the graph itself. */
            double dot = 0, na = 0, nb = 0;
            for (int64_t i = 0; i < t->n; i++) {
                dot += (double)a[i] * b[i];
                na += (double)a[i] * a[i];
                nb += (double)b[i] * b[i];
            }
            double cosine = dot / sqrt(na * nb);
            ck_assert_msg(cosine > 0.99999, "mobilefacenet (%s): cosine %.8f", path, cosine);
            ck_assert_msg(fabs(nb - 1.0) < 1e-4, "mobilefacenet: embedding norm^2 %.6f", nb);
        }
    }
    nn_exec_free(xf);
}

/* Random input in [-1, 1], fast vs reference, on both convolution paths of the fast backend. */
static void model_case(const char *name) {
    const char *path = tu_path("%s/human/%s.json", tu_models_dir(), name);
    nn_graph *g = NULL;
    mien_err e = {0};
    ck_assert_msg(nn_tfjs_load(path, NULL, NULL, 0, &g, &e) == 0, "%s: %s", path, e.msg);
    nn_exec *xr = NULL;
    nn_exec_opts ro = {.backend = NN_BACKEND_REF};
    ck_assert_msg(nn_exec_create(g, &ro, &xr, &e) == 0, "%s", e.msg);
    fill_inputs(xr, 7, (input_range){-1, 1});
    ck_assert_msg(nn_exec_run(xr, &e) == 0, "%s", e.msg);
    use_own(0);
    model_compare(g, name, xr, "xnnpack only");
    if (own_capable()) {
        use_own(1);
        model_compare(g, name, xr, "own kernels");
    }
    unsetenv("MIEN_OWN_KERNELS");
    nn_exec_free(xr);
    nn_graph_free(g);
}

START_TEST(model_mobilefacenet) { model_case("mobilefacenet"); }
END_TEST
START_TEST(model_blazeface) { model_case("blazeface"); }
END_TEST
START_TEST(model_blazeface_front) { model_case("blazeface-front"); }
END_TEST
START_TEST(model_facemesh) { model_case("facemesh"); }
END_TEST
START_TEST(model_faceres) { model_case("faceres"); }
END_TEST

/* ==== Threads ==== */

/* Many execs created and run at once on different threads (XNNPACK is initialised once). */
typedef struct thread_job {
    const nn_graph *g;
    const float *want;
    int ok;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *j = arg;
    mien_err e = {0};
    nn_exec *x = NULL;
    nn_exec_opts o = {.backend = NN_BACKEND_FAST, .threads = 2};
    if (nn_exec_create(j->g, &o, &x, &e)) {
        fprintf(stderr, "concurrent exec: %s\n", e.msg);
        return NULL;
    }
    fill_inputs(x, 3, (input_range){-1, 1});
    j->ok = 1;
    for (int it = 0; it < 5 && j->ok; it++) {
        double err = 0;
        if (nn_exec_run(x, &e)) j->ok = 0;
        else if ((err = rel_err(nn_exec_output(x, 0), j->want, j->g->t[j->g->outputs[0]].n)) > TOL)
            j->ok = 0;
        if (!j->ok) fprintf(stderr, "concurrent exec: %s err %g\n", e.msg, err);
    }
    nn_exec_free(x);
    return NULL;
}

START_TEST(concurrent_execs) {
    nn_graph *g = newg();
    rng r = {11};
    mien_err e = {0};
    int x = input(g, 4, D(1, 16, 16, 8));
    int w = rconst(g, &r, 4, D(3, 3, 8, 16), -1, 1);
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.padding = NN_PAD_SAME;
    p.act = NN_ACT_RELU;
    int y = nn_add_conv2d(g, "conv", x, w, -1, -1, &p, &e);
    ck_assert(nn_add_reduce(g, NN_OP_MEAN, "mean", y, 0x6, 0, &e) >= 0);
    ck_assert_int_eq(nn_mark_output(g, g->nodes[g->n_nodes - 1].out, &e), 0);
    nn_exec *xr = NULL;
    nn_exec_opts ro = {.backend = NN_BACKEND_REF};
    ck_assert_int_eq(nn_exec_create(g, &ro, &xr, &e), 0);
    fill_inputs(xr, 3, (input_range){-1, 1});
    ck_assert_int_eq(nn_exec_run(xr, &e), 0);
    enum { NT = 6 };
    pthread_t th[NT];
    thread_job jobs[NT];
    for (int i = 0; i < NT; i++) {
        jobs[i] = (thread_job){g, nn_exec_output(xr, 0), 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(jobs[i].ok, "thread %d", i);
    }
    nn_exec_free(xr);
    nn_graph_free(g);
}
END_TEST

Suite *suite_backend_ops(void) {
    Suite *s = suite_create("backend_ops");
    TCase *t = tcase_create("ops");
    tcase_set_timeout(t, 120);
    add_test(t, &op_conv2d);
    add_test(t, &op_dwconv2d);
    add_test(t, &op_fc);
    add_test(t, &op_binary);
    add_test(t, &op_binary_fused_act);
    add_test(t, &op_compare);
    add_test(t, &op_unary);
    add_test(t, &op_leaky_clamp);
    add_test(t, &op_prelu);
    add_test(t, &op_batchnorm);
    add_test(t, &op_reduce);
    add_test(t, &op_softmax);
    add_test(t, &op_pool);
    add_test(t, &op_pad);
    add_test(t, &op_concat);
    add_test(t, &op_reshape_transpose_slice);
    add_test(t, &op_resize);
    add_test(t, &op_depth_to_space);
    add_test(t, &every_op_covered);
    add_test(t, &ref_vs_textbook_conv);
    add_test(t, &ref_vs_textbook_fc_pool);
    add_test(t, &ref_vs_textbook_norms);
    add_test(t, &concurrent_execs);
    add_test(t, &graph_opt_fold_batchnorm);
    suite_add_tcase(s, t);
    TCase *m = tcase_create("models");
    tcase_set_timeout(m, 300);
    tcase_add_test(m, model_mobilefacenet);
    tcase_add_test(m, model_blazeface);
    tcase_add_test(m, model_blazeface_front);
    tcase_add_test(m, model_facemesh);
    tcase_add_test(m, model_faceres);
    suite_add_tcase(s, m);
    return s;
}
