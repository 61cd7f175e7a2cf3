/* Training: every op's backward pass, every loss and both optimizers against PyTorch
 * (tools/torch_ref_train.py, run once on raw float files this test writes), finite
 * differences in C, Partial FC sampling, checkpoints (the folded inference graph against the
 * training graph in eval mode), MobileFaceNet's pretrained weights mapped onto the training
 * architecture, and the CLI: a run on aligned crops, a run through detection, and one
 * process against two MPI processes with the same global batch. */
#include "testutil.h"

#include "image/image.h"
#include "nn/exec.h"
#include "nn/onnx.h"
#include "nn/tfjs.h"
#include "train/head.h"
#include "train/kern.h"
#include "train/train.h"

#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== Helpers ==== */

typedef struct rng { uint64_t s; } rng;

static double rng_uniform(rng *r) { /* (0, 1) */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    uint64_t x = r->s * 2685821657736338717ull;
    return ((double)(x >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static float *randn(rng *r, int64_t n, float scale) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = (float)(scale * rng_normal(r));
    return v;
}

static int64_t count(int ndim, const int64_t *d) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= d[i];
    return n;
}

/* One case's graph: an input, parameters (constants the net trains), one op. */
typedef struct opcase {
    nn_graph *g;
    int x;                    /* input tensor */
    int params[4], n_params;
    const char *pnames[4];    /* file keys of the parameters ("w", "b", "alpha", ...) */
    float *pdata[4];
} opcase;

static int oc_param(opcase *c, rng *r, const char *key, int ndim, const int64_t *dims,
                    float scale, float offset) {
    mien_err e = {0};
    int64_t n = count(ndim, dims);
    float *d = randn(r, n, scale);
    for (int64_t i = 0; i < n; i++) d[i] += offset;
    ck_assert(nn_graph_own(c->g, d));
    int t = nn_add_const_ref(c->g, key, ndim, dims, d, &e);
    ck_assert_int_ge(t, 0);
    c->params[c->n_params] = t;
    c->pnames[c->n_params] = key;
    c->pdata[c->n_params++] = d;
    return t;
}

/* ==== Exchange with the PyTorch oracle ==== */

typedef struct cmp_rec {
    char name[48], key[24];
    int64_t n;
    float *c;                 /* our result */
} cmp_rec;

typedef struct oracle {
    char dir[256];
    FILE *manifest;
    char line[2048];          /* the case being written */
    cmp_rec rec[256];
    int n_rec;
    double worst[16];         /* worst relative error by kind */
} oracle;

static void or_begin(oracle *o, const char *name, const char *op, const char *attrs) {
    snprintf(o->line, sizeof o->line, "%s %s %s", name, op, attrs);
}

static void or_put(oracle *o, const char *name, const char *key, const float *d, int ndim,
                   const int64_t *dims) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.f32", o->dir, name, key);
    FILE *f = fopen(path, "wb");
    ck_assert(f);
    int64_t n = count(ndim, dims);
    ck_assert_int_eq((int64_t)fwrite(d, 4, (size_t)n, f), n);
    fclose(f);
    size_t l = strlen(o->line);
    l += (size_t)snprintf(o->line + l, sizeof o->line - l, " shape.%s=", key);
    for (int i = 0; i < ndim; i++)
        l += (size_t)snprintf(o->line + l, sizeof o->line - l, "%s%lld", i ? "x" : "", (long long)dims[i]);
}

static void or_end(oracle *o) { fprintf(o->manifest, "%s\n", o->line); }

static void or_expect(oracle *o, const char *name, const char *key, const float *c, int64_t n) {
    ck_assert_int_lt(o->n_rec, 256);
    cmp_rec *r = &o->rec[o->n_rec++];
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->key, sizeof r->key, "%s", key);
    r->n = n;
    r->c = malloc((size_t)n * sizeof(float));
    memcpy(r->c, c, (size_t)n * sizeof(float));
}

/* ==== Finite differences ====
 * L = sum(y * dy) in double; the central difference of L against the analytic gradient at
 * a few elements, with a smaller step tried once when a kink (ReLU, PReLU at 0) is crossed. */

static double loss_of(tr_net *net, const float *dy) {
    mien_err e = {0};
    ck_assert_msg(tr_forward(net, &e) == 0, "%s", e.msg);
    const nn_tensor *ty = &net->g->t[net->g->outputs[0]];
    const float *y = tr_output(net, 0);
    double L = 0;
    for (int64_t i = 0; i < ty->n; i++) L += (double)y[i] * dy[i];
    return L;
}

static double fd_at(tr_net *net, const float *dy, float *v, double h) {
    float keep = *v;
    *v = keep + (float)h;
    double lp = loss_of(net, dy);
    *v = keep - (float)h;
    double lm = loss_of(net, dy);
    *v = keep;
    return (lp - lm) / (2 * h);
}

/* Check n_check elements of buffer v (n values) whose analytic gradient is g. */
static void fd_check(const char *what, tr_net *net, const float *dy, float *v, const float *g,
                     int64_t n, rng *r) {
    double gmax = 0;
    for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int k = 0; k < 5; k++) {
        int64_t i = (int64_t)(rng_uniform(r) * (double)n);
        double an = g[i], ok = 0, fd = 0;
        for (double h = 1e-2; h > 1e-4 && !ok; h /= 4) {
            fd = fd_at(net, dy, &v[i], h);
            ok = fabs(fd - an) <= 2e-2 * fmax(fabs(an), 0.05 * gmax) + 1e-4;
        }
        ck_assert_msg(ok, "%s: finite difference %g vs analytic %g at %lld", what, fd, an, (long long)i);
    }
}

/* Build the net of an op case, run forward and backward with a random dy, write everything
 * the oracle needs and record our results, then check finite differences. */
static void run_case(oracle *o, opcase *c, rng *r, const char *name, const char *op,
                     const char *attrs, const float *xdata) {
    mien_err e = {0};
    int y = c->g->nodes[c->g->n_nodes - 1].out;
    ck_assert_int_eq(nn_mark_output(c->g, y, &e), 0);
    tr_net *net;
    tr_net_opts no = {.input_grad = 1};
    ck_assert_msg(tr_net_create(c->g, c->params, NULL, c->n_params, &no, &net, &e) == 0, "%s", e.msg);
    const nn_tensor *tx = &net->g->t[c->x], *ty = &net->g->t[y];
    memcpy(tr_input(net, 0), xdata, (size_t)tx->n * sizeof(float));
    float *dy = randn(r, ty->n, 1.f);
    ck_assert_msg(tr_forward(net, &e) == 0, "%s", e.msg);
    const float *dout[1] = {dy};
    ck_assert_msg(tr_backward(net, dout, &e) == 0, "%s", e.msg);

    or_begin(o, name, op, attrs);
    or_put(o, name, !strcmp(op, "add") ? "a" : "x", xdata, tx->ndim, tx->dims);
    for (int i = 0; i < c->n_params; i++) {
        const nn_tensor *tp = &net->g->t[c->params[i]];
        or_put(o, name, c->pnames[i], c->pdata[i], tp->ndim, tp->dims);
    }
    or_put(o, name, "dy", dy, ty->ndim, ty->dims);
    or_end(o);
    or_expect(o, name, "y", tr_output(net, 0), ty->n);
    or_expect(o, name, !strcmp(op, "add") ? "da" : "dx", tr_input_grad(net, 0), tx->n);
    char key[32];
    for (int i = 0; i < c->n_params; i++) {
        snprintf(key, sizeof key, "d%s", c->pnames[i]);
        or_expect(o, name, key, net->p[i].g, net->p[i].n);
    }
    /* Finite differences on the input and every parameter. The analytic gradients are copied
     * first: forward passes for the differences leave them alone, but be explicit. */
    float *gx = malloc((size_t)tx->n * sizeof *gx);
    memcpy(gx, tr_input_grad(net, 0), (size_t)tx->n * sizeof *gx);
    char what[96];
    snprintf(what, sizeof what, "%s input", name);
    fd_check(what, net, dy, tr_input(net, 0), gx, tx->n, r);
    for (int i = 0; i < net->n_p; i++) {
        float *gp = malloc((size_t)net->p[i].n * sizeof *gp);
        memcpy(gp, net->p[i].g, (size_t)net->p[i].n * sizeof *gp);
        snprintf(what, sizeof what, "%s %s", name, c->pnames[i]);
        fd_check(what, net, dy, net->p[i].w, gp, net->p[i].n, r);
        free(gp);
    }
    free(gx);
    free(dy);
    tr_net_free(net);
}

static opcase new_case(int ndim, const int64_t *xd) {
    opcase c = {0};
    mien_err e = {0};
    c.g = nn_graph_new("case");
    c.x = nn_add_input(c.g, "x", ndim, xd, &e);
    ck_assert_int_ge(c.x, 0);
    return c;
}

static const char *act_str(nn_act a) {
    return a == NN_ACT_RELU ? "relu" : a == NN_ACT_PRELU ? "prelu" : "none";
}

/* A conv or depthwise conv case. pad: explicit (t, b, l, r) or NULL with `same`. */
static void conv_case(oracle *o, rng *r, const char *name, int dw, const int64_t xd[4],
                      const int64_t wd[4], int sh, int sw, int dh, int dwl, const int *pad,
                      int same, int groups, int bias, nn_act act) {
    opcase c = new_case(4, xd);
    mien_err e = {0};
    int w = oc_param(&c, r, "w", 4, wd, 0.4f, 0);
    int64_t co = dw ? wd[2] * wd[3] : wd[3];
    int b = bias ? oc_param(&c, r, "b", 1, &co, 0.3f, 0) : -1;
    int al = act == NN_ACT_PRELU ? oc_param(&c, r, "alpha", 1, &co, 0.2f, 0.2f) : -1;
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.stride[0] = sh;
    p.stride[1] = sw;
    p.dilation[0] = dh;
    p.dilation[1] = dwl;
    p.groups = groups;
    p.act = act;
    if (pad) {
        p.padding = NN_PAD_EXPLICIT;
        memcpy(p.pad, pad, sizeof p.pad);
    } else {
        p.padding = same ? NN_PAD_SAME : NN_PAD_VALID;
    }
    int y = dw ? nn_add_dwconv2d(c.g, "y", c.x, w, b, al, &p, &e)
               : nn_add_conv2d(c.g, "y", c.x, w, b, al, &p, &e);
    ck_assert_msg(y >= 0, "%s", e.msg);
    const nn_node *n = &c.g->nodes[c.g->n_nodes - 1];
    char attrs[256];
    snprintf(attrs, sizeof attrs, "stride=%d,%d pad=%d,%d,%d,%d dil=%d,%d groups=%d act=%s", sh, sw,
             n->pad[0], n->pad[1], n->pad[2], n->pad[3], dh, dwl, groups, act_str(act));
    float *x = randn(r, count(4, xd), 1.f);
    run_case(o, &c, r, name, dw ? "dwconv" : "conv", attrs, x);
    free(x);
}

/* ==== Cases ==== */

static void op_cases(oracle *o, rng *r) {
    mien_err e = {0};
    /* Dense convolutions: TF SAME with stride 2 (asymmetric padding), grouped + dilated with
     * explicit asymmetric padding, the 1x1 GEMM path, VALID with unequal strides. */
    conv_case(o, r, "conv_same_s2", 0, (int64_t[]){2, 7, 6, 3}, (int64_t[]){3, 3, 3, 8}, 2, 2, 1, 1,
              NULL, 1, 1, 1, NN_ACT_PRELU);
    conv_case(o, r, "conv_grouped", 0, (int64_t[]){2, 6, 5, 4}, (int64_t[]){3, 3, 2, 6}, 1, 1, 2, 1,
              (int[]){1, 2, 0, 1}, 0, 2, 0, NN_ACT_RELU);
    conv_case(o, r, "conv_1x1", 0, (int64_t[]){3, 4, 4, 5}, (int64_t[]){1, 1, 5, 7}, 1, 1, 1, 1,
              NULL, 1, 1, 1, NN_ACT_NONE);
    conv_case(o, r, "conv_valid", 0, (int64_t[]){1, 9, 7, 3}, (int64_t[]){5, 3, 3, 4}, 2, 1, 1, 1,
              NULL, 0, 1, 1, NN_ACT_PRELU);
    /* Depthwise: stride 2 SAME, channel multiplier 2 with padding, the global 7x7. */
    conv_case(o, r, "dw_s2", 1, (int64_t[]){2, 7, 7, 6}, (int64_t[]){3, 3, 6, 1}, 2, 2, 1, 1, NULL,
              1, 1, 1, NN_ACT_PRELU);
    conv_case(o, r, "dw_mult", 1, (int64_t[]){2, 5, 6, 3}, (int64_t[]){3, 3, 3, 2}, 1, 1, 1, 1,
              (int[]){1, 1, 1, 1}, 0, 1, 0, NN_ACT_NONE);
    conv_case(o, r, "dw_gdc", 1, (int64_t[]){4, 7, 7, 5}, (int64_t[]){7, 7, 5, 1}, 1, 1, 1, 1, NULL,
              0, 1, 0, NN_ACT_NONE);

    /* Fully connected with bias and PReLU. */
    {
        int64_t xd[2] = {6, 10}, wd[2] = {10, 7}, m = 7;
        opcase c = new_case(2, xd);
        int w = oc_param(&c, r, "w", 2, wd, 0.4f, 0);
        int b = oc_param(&c, r, "b", 1, &m, 0.3f, 0);
        int al = oc_param(&c, r, "alpha", 1, &m, 0.2f, 0.2f);
        ck_assert_int_ge(nn_add_fc(c.g, "y", c.x, w, b, al, NN_ACT_PRELU, &e), 0);
        float *x = randn(r, 60, 1.f);
        run_case(o, &c, r, "fc", "fc", "act=prelu", x);
        free(x);
    }
    /* PReLU op, adds (same shape, broadcast bias), L2 normalisation. */
    {
        int64_t xd[4] = {2, 3, 3, 4}, cd = 4;
        opcase c = new_case(4, xd);
        int al = oc_param(&c, r, "alpha", 1, &cd, 0.3f, 0.1f);
        ck_assert_int_ge(nn_add_prelu(c.g, "y", c.x, al, &e), 0);
        float *x = randn(r, 72, 1.f);
        run_case(o, &c, r, "prelu", "prelu", "", x);
        free(x);
    }
    {
        int64_t xd[4] = {2, 3, 3, 4};
        opcase c = new_case(4, xd);
        int b = oc_param(&c, r, "b", 4, xd, 1.f, 0);
        ck_assert_int_ge(nn_add_binary(c.g, NN_OP_ADD, "y", c.x, b, &e), 0);
        float *x = randn(r, 72, 1.f);
        run_case(o, &c, r, "add_same", "add", "", x);
        free(x);
    }
    {
        int64_t xd[4] = {2, 3, 3, 4}, cd = 4;
        opcase c = new_case(4, xd);
        int b = oc_param(&c, r, "b", 1, &cd, 1.f, 0);
        ck_assert_int_ge(nn_add_binary(c.g, NN_OP_ADD, "y", c.x, b, &e), 0);
        float *x = randn(r, 72, 1.f);
        run_case(o, &c, r, "add_bcast", "add", "", x);
        free(x);
    }
    {
        int64_t xd[2] = {5, 8};
        opcase c = new_case(2, xd);
        ck_assert_int_ge(nn_add_l2norm(c.g, "y", c.x, 1e-10f, &e), 0);
        float *x = randn(r, 40, 1.f);
        run_case(o, &c, r, "l2norm", "l2norm", "eps=1e-10", x);
        free(x);
    }
}

/* Batch norm: training mode (batch statistics, running averages) on NHWC and on (N, C), and
 * eval mode (running averages). */
static void bn_case(oracle *o, rng *r, const char *name, int ndim, const int64_t *xd, int train,
                    nn_act act) {
    mien_err e = {0};
    opcase c = new_case(ndim, xd);
    int64_t C = xd[ndim - 1];
    int gm = oc_param(&c, r, "gamma", 1, &C, 0.5f, 1.f);
    int bt = oc_param(&c, r, "beta", 1, &C, 0.5f, 0.f);
    int al = act == NN_ACT_PRELU ? oc_param(&c, r, "alpha", 1, &C, 0.2f, 0.2f) : -1;
    ck_assert_int_ge(nn_add_batchnorm_train(c.g, "y", c.x, gm, bt, al, act, 1e-5f, &e), 0);
    ck_assert_int_eq(nn_mark_output(c.g, c.g->nodes[c.g->n_nodes - 1].out, &e), 0);
    tr_net *net;
    tr_net_opts no = {.input_grad = 1};
    ck_assert_int_eq(tr_net_create(c.g, c.params, NULL, c.n_params, &no, &net, &e), 0);
    net->training = train;
    tr_bn *bn = &net->bn[0];
    float *rm = randn(r, C, 0.5f), *rv = randn(r, C, 0.3f);
    for (int64_t k = 0; k < C; k++) rv[k] = 0.5f + fabsf(rv[k]);
    memcpy(bn->run_mean, rm, (size_t)C * sizeof(float));
    memcpy(bn->run_var, rv, (size_t)C * sizeof(float));
    int64_t n = count(ndim, xd);
    float *x = randn(r, n, 2.f), *dy = randn(r, n, 1.f);
    for (int64_t i = 0; i < n; i++) x[i] += 0.5f * (float)(i % C); /* per-channel offsets */
    memcpy(tr_input(net, 0), x, (size_t)n * sizeof(float));
    ck_assert_int_eq(tr_forward(net, &e), 0);
    const float *dout[1] = {dy};
    ck_assert_int_eq(tr_backward(net, dout, &e), 0);
    char attrs[128];
    snprintf(attrs, sizeof attrs, "mode=%s momentum=0.1 eps=1e-5 act=%s", train ? "train" : "eval",
             act_str(act));
    or_begin(o, name, "bn", attrs);
    or_put(o, name, "x", x, ndim, xd);
    or_put(o, name, "gamma", c.pdata[0], 1, &C);
    or_put(o, name, "beta", c.pdata[1], 1, &C);
    if (al >= 0) or_put(o, name, "alpha", c.pdata[2], 1, &C);
    or_put(o, name, "rm", rm, 1, &C);
    or_put(o, name, "rv", rv, 1, &C);
    or_put(o, name, "dy", dy, ndim, xd);
    or_end(o);
    or_expect(o, name, "y", tr_output(net, 0), n);
    or_expect(o, name, "dx", tr_input_grad(net, 0), n);
    or_expect(o, name, "dgamma", net->p[0].g, C);
    or_expect(o, name, "dbeta", net->p[1].g, C);
    if (al >= 0) or_expect(o, name, "dalpha", net->p[2].g, C);
    or_expect(o, name, "rm", bn->run_mean, C);
    or_expect(o, name, "rv", bn->run_var, C);
    float *gx = malloc((size_t)n * sizeof *gx), *gg = malloc((size_t)C * sizeof *gg);
    memcpy(gx, tr_input_grad(net, 0), (size_t)n * sizeof *gx);
    memcpy(gg, net->p[0].g, (size_t)C * sizeof *gg);
    fd_check(name, net, dy, tr_input(net, 0), gx, n, r);
    fd_check(name, net, dy, net->p[0].w, gg, C, r);
    if (al >= 0) {
        memcpy(gg, net->p[2].g, (size_t)C * sizeof *gg);
        fd_check(name, net, dy, net->p[2].w, gg, C, r);
    }
    free(gx);
    free(gg);
    free(x);
    free(dy);
    free(rm);
    free(rv);
    tr_net_free(net);
}

/* A loss case: B normalised features (raw for softmax), C centres, one adversarial sample
 * whose centre points away from it (cos near -0.95, so ArcFace's fallback and SphereFace's
 * k >= 1 branch are taken). */
static void loss_case(oracle *o, rng *r, const char *name, tr_loss_kind kind, float m1, float m2,
                      float m3, int easy) {
    const int B = 6, C = 10, D = 8;
    tr_margin m;
    tr_margin_default(&m, kind);
    if (kind == TR_LOSS_COMBINED) {
        m.m1 = m1;
        m.m2 = m2;
        m.m3 = m3;
    }
    m.easy_margin = easy;
    if (kind != TR_LOSS_SOFTMAX) m.s = 8.f; /* a scale that keeps every class in the softmax */
    float *x = randn(r, B * D, 1.f), *w = randn(r, C * D, 0.7f);
    float lab[6];
    int labi[6];
    for (int i = 0; i < B; i++) labi[i] = (int)(rng_uniform(r) * C), lab[i] = (float)labi[i];
    if (tr_loss_normalized(kind))
        for (int i = 0; i < B; i++) {
            double ss = 0;
            for (int k = 0; k < D; k++) ss += (double)x[i * D + k] * x[i * D + k];
            for (int k = 0; k < D; k++) x[i * D + k] /= (float)sqrt(ss);
        }
    for (int k = 0; k < D; k++) w[labi[0] * D + k] = -x[k] * 1.3f + 0.1f * (float)rng_normal(r);
    double loss;
    float *dx = malloc(B * D * sizeof *dx), *dw = malloc(C * D * sizeof *dw);
    mien_err e = {0};
    ck_assert_msg(tr_margin_loss(&m, x, w, labi, B, C, D, &loss, dx, dw, &e) == 0, "%s", e.msg);
    char attrs[160];
    snprintf(attrs, sizeof attrs, "kind=%s s=%g m1=%g m2=%g m3=%g easy=%d", tr_loss_name(kind),
             (double)m.s, (double)m.m1, (double)m.m2, (double)m.m3, easy);
    or_begin(o, name, "loss", attrs);
    or_put(o, name, "x", x, 2, (int64_t[]){B, D});
    or_put(o, name, "w", w, 2, (int64_t[]){C, D});
    or_put(o, name, "labels", lab, 1, (int64_t[]){B});
    or_end(o);
    float lf = (float)loss;
    or_expect(o, name, "loss", &lf, 1);
    or_expect(o, name, "dx", dx, B * D);
    or_expect(o, name, "dw", dw, C * D);
    /* Finite differences of the loss itself. */
    for (int t = 0; t < 8; t++) {
        int onx = t % 2 == 0;
        float *v = onx ? x : w;
        const float *g = onx ? dx : dw;
        int i = (int)(rng_uniform(r) * (onx ? B * D : C * D));
        double lp, lm, h = 1e-3, keep = v[i];
        v[i] = (float)(keep + h);
        ck_assert_int_eq(tr_margin_loss(&m, x, w, labi, B, C, D, &lp, NULL, NULL, &e), 0);
        v[i] = (float)(keep - h);
        ck_assert_int_eq(tr_margin_loss(&m, x, w, labi, B, C, D, &lm, NULL, NULL, &e), 0);
        v[i] = (float)keep;
        double fd = (lp - lm) / (2 * h);
        ck_assert_msg(fabs(fd - g[i]) <= 2e-2 * fabs(g[i]) + 2e-3, "%s: d%s[%d] fd %g analytic %g",
                      name, onx ? "x" : "w", i, fd, (double)g[i]);
    }
    free(x);
    free(w);
    free(dx);
    free(dw);
}

static void optim_case(oracle *o, rng *r, const char *name, tr_opt_kind kind) {
    const int n = 20, T = 3;
    tr_optim opt;
    tr_optim_default(&opt, kind);
    opt.lr = kind == TR_SGD ? 0.1f : 0.01f;
    float *w0 = randn(r, n, 1.f), *g = randn(r, T * n, 1.f);
    float *w = malloc(n * sizeof *w), *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    memcpy(w, w0, n * sizeof *w);
    for (int t = 0; t < T; t++) {
        tr_optim_tick(&opt);
        tr_optim_update(&opt, w, g + t * n, m, v, n, 1);
    }
    char attrs[160];
    snprintf(attrs, sizeof attrs, "kind=%s lr=%g momentum=%g wd=%g b1=%g b2=%g eps=%g",
             kind == TR_SGD ? "sgd" : "adamw", (double)opt.lr, (double)opt.momentum,
             (double)opt.weight_decay, (double)opt.beta1, (double)opt.beta2, (double)opt.eps);
    or_begin(o, name, "optim", attrs);
    or_put(o, name, "w", w0, 1, (int64_t[]){n});
    or_put(o, name, "g", g, 2, (int64_t[]){T, n});
    or_end(o);
    or_expect(o, name, "w_out", w, n);
    free(w0);
    free(g);
    free(w);
    free(m);
    free(v);
}

START_TEST(against_pytorch) {
    oracle o = {0};
    snprintf(o.dir, sizeof o.dir, "/tmp/mien-train-oracle-XXXXXX");
    ck_assert(mkdtemp(o.dir));
    char path[512];
    snprintf(path, sizeof path, "%s/manifest.txt", o.dir);
    o.manifest = fopen(path, "w");
    ck_assert(o.manifest);
    rng r = {0x1234567887654321ull};
    op_cases(&o, &r);
    bn_case(&o, &r, "bn_train", 4, (int64_t[]){4, 3, 3, 5}, 1, NN_ACT_NONE);
    bn_case(&o, &r, "bn_train_prelu", 4, (int64_t[]){4, 3, 3, 5}, 1, NN_ACT_PRELU);
    bn_case(&o, &r, "bn_train_2d", 2, (int64_t[]){6, 5}, 1, NN_ACT_RELU);
    bn_case(&o, &r, "bn_eval", 4, (int64_t[]){4, 3, 3, 5}, 0, NN_ACT_PRELU);
    loss_case(&o, &r, "loss_softmax", TR_LOSS_SOFTMAX, 0, 0, 0, 0);
    loss_case(&o, &r, "loss_normface", TR_LOSS_NORMFACE, 0, 0, 0, 0);
    loss_case(&o, &r, "loss_sphereface", TR_LOSS_SPHEREFACE, 0, 0, 0, 0);
    loss_case(&o, &r, "loss_cosface", TR_LOSS_COSFACE, 0, 0, 0, 0);
    loss_case(&o, &r, "loss_arcface", TR_LOSS_ARCFACE, 0, 0, 0, 0);
    loss_case(&o, &r, "loss_arcface_easy", TR_LOSS_ARCFACE, 0, 0, 0, 1);
    loss_case(&o, &r, "loss_combined", TR_LOSS_COMBINED, 1.2f, 0.2f, 0.1f, 0);
    optim_case(&o, &r, "optim_sgd", TR_SGD);
    optim_case(&o, &r, "optim_adamw", TR_ADAMW);
    fclose(o.manifest);

    char *out = NULL;
    int rc = tu_python(tu_path("tools/torch_ref_train.py %s", o.dir), 0, &out);
    ck_assert_msg(rc == 0, "tools/torch_ref_train.py (needs /usr/bin/python3 with torch: apt "
                           "install python3-torch) failed with %d:\n%s", rc, out);
    free(out);
    double worst_op = 0, worst_loss = 0;
    char worst_what[2][96] = {"", ""};
    for (int i = 0; i < o.n_rec; i++) {
        cmp_rec *c = &o.rec[i];
        snprintf(path, sizeof path, "%s/%s.%s.ref.f32", o.dir, c->name, c->key);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f, "oracle wrote no %s", path);
        float *ref = malloc((size_t)c->n * sizeof *ref);
        ck_assert_int_eq((int64_t)fread(ref, 4, (size_t)c->n, f), c->n);
        fclose(f);
        double dmax = 0, rmax = 0;
        for (int64_t k = 0; k < c->n; k++) {
            dmax = fmax(dmax, fabs((double)c->c[k] - ref[k]));
            rmax = fmax(rmax, fabs((double)ref[k]));
        }
        double rel = dmax / fmax(rmax, 1e-12);
        ck_assert_msg(rel <= 1e-4, "%s %s: relative error %.3g against PyTorch (max |ref| %g)",
                      c->name, c->key, rel, rmax);
        int is_loss = !strncmp(c->name, "loss", 4) || !strncmp(c->name, "optim", 5);
        double *w = is_loss ? &worst_loss : &worst_op;
        if (rel > *w) {
            *w = rel;
            snprintf(worst_what[is_loss], sizeof worst_what[0], "%s %s", c->name, c->key);
        }
        free(ref);
        free(c->c);
        unlink(path);
    }
    fprintf(stderr, "train vs PyTorch: %d tensors; worst relative error ops %.2g (%s), "
                    "losses/optimizers %.2g (%s)\n",
            o.n_rec, worst_op, worst_what[0], worst_loss, worst_what[1]);
    tu_run(tu_path("rm -rf %s", o.dir), NULL);
}
END_TEST

/* ==== C-only checks ==== */

/* Partial FC: the sampled set holds every positive and max(P, round(rate C)) classes; the
 * loss over the sample equals the dense loss over those columns. */
START_TEST(partial_fc_sampling) {
    mien_err e = {0};
    rng r = {77};
    const int C = 50, D = 8, B = 8;
    tr_margin m;
    tr_margin_default(&m, TR_LOSS_ARCFACE);
    tr_head h;
    ck_assert_int_eq(tr_head_init(&h, &m, C, D, 0.3f, 5, tr_comm_single(), &e), 0);
    float *x = randn(&r, B * D, 1.f), dx[64];
    for (int i = 0; i < B; i++) {
        double ss = 0;
        for (int k = 0; k < D; k++) ss += (double)x[i * D + k] * x[i * D + k];
        for (int k = 0; k < D; k++) x[i * D + k] /= (float)sqrt(ss);
    }
    int lab[8] = {3, 3, 7, 11, 20, 21, 40, 49};
    double loss, acc;
    for (int step = 0; step < 3; step++) {
        ck_assert_int_eq(tr_head_step(&h, tr_comm_single(), step, x, lab, B, dx, &loss, &acc, &e), 0);
        ck_assert_int_eq(h.n_sel, 15);
        for (int i = 0; i < B; i++) ck_assert_int_ge(h.col[i], 0);
        /* The dense loss over the sampled columns. */
        float *ws = malloc((size_t)h.n_sel * D * sizeof *ws);
        int labs[8];
        for (int64_t j = 0; j < h.n_sel; j++) {
            memcpy(ws + j * D, h.w + h.sel[j] * D, D * sizeof(float));
            for (int i = 0; i < B; i++)
                if (h.sel[j] == lab[i]) labs[i] = (int)j;
        }
        double dl;
        float ddx[64];
        ck_assert_int_eq(tr_margin_loss(&m, x, ws, labs, B, (int)h.n_sel, D, &dl, ddx, NULL, &e), 0);
        ck_assert_msg(fabs(dl - loss) < 1e-5 * fabs(dl), "sampled loss %g dense %g", loss, dl);
        for (int k = 0; k < B * D; k++) ck_assert(fabsf(ddx[k] - dx[k]) < 1e-5f);
        free(ws);
    }
    size_t part = h.step_bytes;
    tr_head_free(&h);
    ck_assert_int_eq(tr_head_init(&h, &m, C, D, 1.f, 5, tr_comm_single(), &e), 0);
    ck_assert_int_eq(tr_head_step(&h, tr_comm_single(), 0, x, lab, B, dx, &loss, &acc, &e), 0);
    ck_assert_int_eq(h.n_sel, C);
    ck_assert_msg(h.step_bytes > part, "full %zu bytes, sampled %zu", h.step_bytes, part);
    tr_head_free(&h);
    free(x);
}
END_TEST

START_TEST(schedule) {
    tr_sched s = {.kind = TR_SCHED_COSINE, .base_lr = 0.1f, .warmup = 10, .total = 110};
    ck_assert(fabsf(tr_sched_lr(&s, 0) - 0.01f) < 1e-7f);
    ck_assert(fabsf(tr_sched_lr(&s, 9) - 0.1f) < 1e-7f);
    ck_assert(fabsf(tr_sched_lr(&s, 10) - 0.1f) < 1e-7f);
    ck_assert(fabsf(tr_sched_lr(&s, 60) - 0.05f) < 1e-6f);
    ck_assert(fabsf(tr_sched_lr(&s, 110)) < 1e-7f);
    tr_sched st = {.kind = TR_SCHED_STEP, .base_lr = 0.1f, .steps = {20, 30}, .n_steps = 2, .gamma = 0.1f};
    ck_assert(fabsf(tr_sched_lr(&st, 19) - 0.1f) < 1e-7f);
    ck_assert(fabsf(tr_sched_lr(&st, 20) - 0.01f) < 1e-7f);
    ck_assert(fabsf(tr_sched_lr(&st, 35) - 0.001f) < 1e-8f);
}
END_TEST

/* The small network end to end with the ArcFace head: finite differences on parameters of
 * several layers; then a checkpoint round trip whose folded inference graph (both backends)
 * matches the training graph in eval mode. */
START_TEST(small_net_gradients_and_checkpoint) {
    mien_err e = {0};
    rng r = {99};
    const int B = 4, C = 5;
    tr_build_opts bo = {.arch = NN_ARCH_SMALL, .batch = B, .normalize = 1, .seed = 3};
    tr_net *net;
    ck_assert_msg(tr_build_train(&bo, &net, &e) == 0, "%s", e.msg);
    const int S = nn_arch_input(NN_ARCH_SMALL), D = nn_arch_dim(NN_ARCH_SMALL);
    float *x = randn(&r, (int64_t)B * S * S * 3, 1.f);
    memcpy(tr_input(net, 0), x, (size_t)B * S * S * 3 * sizeof(float));
    tr_margin m;
    tr_margin_default(&m, TR_LOSS_ARCFACE);
    m.s = 16;
    tr_head h;
    ck_assert_int_eq(tr_head_init(&h, &m, C, D, 1.f, 1, tr_comm_single(), &e), 0);
    int lab[4] = {0, 1, 2, 1};
    double loss, acc;
    float *dx = malloc((size_t)B * D * sizeof *dx);
    ck_assert_int_eq(tr_forward(net, &e), 0);
    ck_assert_int_eq(tr_head_step(&h, tr_comm_single(), 0, tr_output(net, 0), lab, B, dx, &loss, &acc, &e), 0);
    const float *dout[1] = {dx};
    ck_assert_msg(tr_backward(net, dout, &e) == 0, "%s", e.msg);
    /* Directional derivatives along each tensor's gradient, g . u with u = g / |g|: a single
     * element's difference drowns in float32 noise this deep in the net, a whole tensor's
     * does not. */
    static const char *names[] = {"stem/conv", "res1/dw/conv", "res1/project/bn/beta", "pw3/prelu",
                                  "embed/conv", "embed/bn/gamma"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        tr_param *p = tr_find_param(net, names[k]);
        ck_assert_msg(p, "no parameter %s", names[k]);
        double gn = 0;
        for (int64_t i = 0; i < p->n; i++) gn += (double)p->g[i] * p->g[i];
        gn = sqrt(gn);
        ck_assert_msg(gn > 1e-4, "%s: gradient norm %g", names[k], gn);
        float *w0 = malloc((size_t)p->n * sizeof *w0), *u = malloc((size_t)p->n * sizeof *u);
        memcpy(w0, p->w, (size_t)p->n * sizeof *w0);
        for (int64_t i = 0; i < p->n; i++) u[i] = (float)(p->g[i] / gn);
        double fd = 0, hh = 1e-2, l2[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (int64_t i = 0; i < p->n; i++) p->w[i] = w0[i] + (float)((sgn ? -hh : hh) * u[i]);
            ck_assert_int_eq(tr_forward(net, &e), 0);
            ck_assert_int_eq(tr_margin_loss(&m, tr_output(net, 0), h.w, lab, B, C, D, &l2[sgn], NULL, NULL, &e), 0);
        }
        memcpy(p->w, w0, (size_t)p->n * sizeof *w0);
        fd = (l2[0] - l2[1]) / (2 * hh);
        ck_assert_msg(fabs(fd - gn) <= 0.03 * gn, "%s: directional finite difference %g, |g| %g",
                      names[k], fd, gn);
        free(w0);
        free(u);
    }
    /* Update the running statistics a little, then save, load and compare in eval mode. */
    for (int t = 0; t < 3; t++) ck_assert_int_eq(tr_forward(net, &e), 0);
    nn_ckpt ts;
    ck_assert_int_eq(tr_export(net, NN_ARCH_SMALL, &ts, &e), 0);
    const char *ck = tu_temp_file(".ckpt", "", 0);
    ck_assert_msg(nn_ckpt_save(ck, &ts, &e) == 0, "%s", e.msg);
    nn_ckpt_free(&ts);
    nn_graph *g;
    nn_ckpt_embedder_info info;
    ck_assert_msg(nn_ckpt_load_embedder(ck, NULL, &g, &info, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(info.dim, D);
    ck_assert_int_eq(info.size, S);
    net->training = 0;
    ck_assert_int_eq(tr_forward(net, &e), 0);
    /* The training graph ends in L2NORM; the inference graph gives the raw embedding. */
    for (int be = 0; be < 2; be++) {
        nn_exec *xe;
        nn_exec_opts xo = {.backend = be ? NN_BACKEND_FAST : NN_BACKEND_REF, .threads = 1};
        ck_assert_int_eq(nn_exec_create(g, &xo, &xe, &e), 0);
        for (int i = 0; i < B; i++) {
            memcpy(nn_exec_input(xe, 0), x + (size_t)i * S * S * 3, (size_t)S * S * 3 * sizeof(float));
            ck_assert_int_eq(nn_exec_run(xe, &e), 0);
            const float *y = nn_exec_output(xe, 0);
            double ss = 0;
            for (int k = 0; k < D; k++) ss += (double)y[k] * y[k];
            for (int k = 0; k < D; k++) {
                float want = tr_output(net, 0)[i * D + k], got = y[k] / (float)sqrt(ss);
                ck_assert_msg(fabsf(want - got) < 2e-4f, "backend %d sample %d dim %d: %g vs %g", be, i, k,
                              (double)got, (double)want);
            }
        }
        nn_exec_free(xe);
    }
    nn_graph_free(g);
    /* A truncated checkpoint fails cleanly. */
    FILE *f = fopen(ck, "r+b");
    ck_assert(f);
    ck_assert_int_eq(ftruncate(fileno(f), 200), 0);
    fclose(f);
    nn_ckpt bad;
    ck_assert_int_eq(nn_ckpt_load(ck, &bad, &e), MIEN_EFORMAT);
    unlink(ck);
    free(x);
    free(dx);
    tr_head_free(&h);
    tr_net_free(net);
}
END_TEST

/* MobileFaceNet's TFJS weights on the training architecture: with batch norm as the identity
 * (gamma 1, beta = the converter's bias, mean 0, var 1 - eps) and the depthwise PReLUs as the
 * ReLU the shipped graph actually computes (its converter fused a Relu before the PReLU
 * pattern), the folded inference graph reproduces the TFJS graph: names, strides, padding and
 * residuals all map. */
START_TEST(mobilefacenet_weights_map) {
    mien_err e = {0};
    const char *mj = tu_path("%s/human/mobilefacenet.json", tu_models_dir());
    nn_ckpt w;
    ck_assert_msg(tr_load_tfjs_mobilefacenet(mj, &w, &e) == 0, "%s", e.msg);
    const nn_ckpt_tensor *c0 = nn_ckpt_find(&w, "Conv2d_0/conv");
    ck_assert(c0 && c0->ndim == 4 && c0->dims[3] == 64);
    tr_build_opts bo = {.arch = NN_ARCH_MOBILEFACENET, .batch = 2, .init = &w, .bn_eps = 1e-5f};
    tr_net *net;
    ck_assert_msg(tr_build_train(&bo, &net, &e) == 0, "%s", e.msg);
    int used = 0;
    for (int i = 0; i < w.n; i++) used += tr_find_param(net, w.v[i].name) != NULL ||
                                          strstr(w.v[i].name, "/bias") != NULL;
    ck_assert_int_eq(used, w.n);
    nn_ckpt ts;
    ck_assert_int_eq(tr_export(net, NN_ARCH_MOBILEFACENET, &ts, &e), 0);
    for (int i = 0; i < ts.n; i++) {
        nn_ckpt_tensor *t = &ts.v[i];
        size_t l = strlen(t->name);
        if (l > 12 && !strcmp(t->name + l - 12, "/running_var"))
            for (int64_t k = 0; k < t->n; k++) t->data[k] = 1.f - 1e-5f;
        if (l > 6 && !strcmp(t->name + l - 6, "/prelu") && strstr(t->name, "SeparableConv2d"))
            for (int64_t k = 0; k < t->n; k++) t->data[k] = 0.f;
    }
    nn_graph *mine;
    ck_assert_msg(nn_ckpt_build_arch(&ts, &mine, &e) == 0, "%s", e.msg);
    nn_graph *ref;
    int64_t dims[4] = {1, 112, 112, 3};
    ck_assert_int_eq(nn_tfjs_load(mj, dims, NULL, 0, &ref, &e), 0);
    nn_exec *a, *b;
    nn_exec_opts xo = {.backend = NN_BACKEND_FAST, .threads = 1};
    ck_assert_int_eq(nn_exec_create(mine, &xo, &a, &e), 0);
    ck_assert_int_eq(nn_exec_create(ref, &xo, &b, &e), 0);
    rng r = {5};
    for (int i = 0; i < 112 * 112 * 3; i++)
        nn_exec_input(a, 0)[i] = nn_exec_input(b, 0)[i] = (float)(rng_uniform(&r) * 2 - 1);
    ck_assert_int_eq(nn_exec_run(a, &e), 0);
    ck_assert_int_eq(nn_exec_run(b, &e), 0);
    const float *ya = nn_exec_output(a, 0), *yb = nn_exec_output(b, 0);
    double ss = 0;
    for (int k = 0; k < 192; k++) ss += (double)ya[k] * ya[k];
    double worst = 0;
    for (int k = 0; k < 192; k++) worst = fmax(worst, fabs(ya[k] / sqrt(ss) - yb[k]));
    ck_assert_msg(worst < 1e-3, "folded MobileFaceNet differs from the TFJS graph by %g", worst);
    nn_exec_free(a);
    nn_exec_free(b);
    nn_graph_free(mine);
    nn_graph_free(ref);
    nn_ckpt_free(&ts);
    nn_ckpt_free(&w);
    tr_net_free(net);
}
END_TEST

/* The reference kernels of the two ops training added (what nn_exec runs) against the
 * training kernels (checked against PyTorch above). */
START_TEST(reference_kernels) {
    mien_err e = {0};
    rng r = {11};
    int64_t xd[4] = {3, 4, 5, 6}, C = 6;
    opcase c = new_case(4, xd);
    int gm = oc_param(&c, &r, "gamma", 1, &C, 0.5f, 1.f);
    int bt = oc_param(&c, &r, "beta", 1, &C, 0.5f, 0.f);
    int al = oc_param(&c, &r, "alpha", 1, &C, 0.2f, 0.2f);
    int y = nn_add_batchnorm_train(c.g, "bn", c.x, gm, bt, al, NN_ACT_PRELU, 1e-5f, &e);
    int64_t d2[2] = {60, 6};
    y = nn_add_reshape(c.g, "flat", y, 2, d2, &e);
    y = nn_add_l2norm(c.g, "y", y, 1e-10f, &e);
    ck_assert_msg(y >= 0, "%s", e.msg);
    ck_assert_int_eq(nn_mark_output(c.g, y, &e), 0);
    float *x = randn(&r, 360, 2.f);
    nn_exec *ex;
    nn_exec_opts xo = {.backend = NN_BACKEND_REF};
    ck_assert_int_eq(nn_exec_create(c.g, &xo, &ex, &e), 0);
    memcpy(nn_exec_input(ex, 0), x, 360 * sizeof(float));
    ck_assert_int_eq(nn_exec_run(ex, &e), 0);
    float ref[360];
    memcpy(ref, nn_exec_output(ex, 0), sizeof ref);
    nn_exec_free(ex);
    tr_net *net;
    ck_assert_int_eq(tr_net_create(c.g, c.params, NULL, c.n_params, NULL, &net, &e), 0);
    memcpy(tr_input(net, 0), x, 360 * sizeof(float));
    ck_assert_int_eq(tr_forward(net, &e), 0);
    for (int i = 0; i < 360; i++) ck_assert_msg(fabsf(ref[i] - tr_output(net, 0)[i]) < 1e-5f, "%d", i);
    tr_net_free(net);
    free(x);
}
END_TEST

/* ==== Fast kernels against the reference kernels ====
 * The fast kernels (train/kern.h) on every instruction set this CPU has (MIEN_TRAIN_ISA picks
 * a lower one) and on 1 and 2 threads, against the reference kernels (checked against
 * PyTorch above) on the same graphs: outputs, input and parameter gradients and running
 * statistics within 1e-4 of the largest value. */

static const char *const isa_names[] = {"scalar", "avx2", "avx512"};

/* Set MIEN_TRAIN_ISA to isa i; 0 if this CPU does not have it (a kernel set would fall back). */
static int use_isa(int i) {
    setenv("MIEN_TRAIN_ISA", isa_names[i], 1);
    tr_kern *k = tr_kern_create(1);
    ck_assert(k);
    int ok = (int)tr_kern_isa(k) == i;
    tr_kern_free(k);
    return ok;
}

static void expect_close(const char *what, const float *got, const float *want, int64_t n, double tol) {
    double mx = 0, worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > worst) worst = d, at = i;
    }
    ck_assert_msg(worst <= tol * fmax(mx, 1e-6), "%s: differs by %g at %lld (%g vs %g; largest %g)", what,
                  worst, (long long)at, n ? (double)got[at] : 0.0, n ? (double)want[at] : 0.0, mx);
}

START_TEST(fast_gemm) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {50, 33, 300}, {13, 70, 2100},
                                        {400, 40, 64}, {64, 300, 100}, {6, 32, 257}};
    rng r = {77};
    for (int isa = 0; isa < 3; isa++) {
        if (!use_isa(isa)) continue;
        for (int th = 1; th <= 2; th++) {
            tr_kern *k = tr_kern_create(th);
            ck_assert(k);
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                for (int v = 0; v < 8; v++) {
                    const int ta = v & 1, tb = (v >> 1) & 1, acc = v >> 2;
                    const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                    float *A = randn(&r, (ta ? K : M) * lda, 1.f), *B = randn(&r, (tb ? N : K) * ldb, 1.f);
                    float *C = randn(&r, M * ldc, 1.f), *want = malloc((size_t)(M * ldc) * sizeof *want);
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < ldc; j++) {
                            double d = j < N && acc ? C[i * ldc + j] : 0;
                            for (int64_t q = 0; q < K && j < N; q++)
                                d += (double)(ta ? A[q * lda + i] : A[i * lda + q]) * (tb ? B[j * ldb + q] : B[q * ldb + j]);
                            want[i * ldc + j] = j < N ? (float)d : C[i * ldc + j]; /* padding untouched */
                        }
                    ck_assert_int_eq(tr_gemm(k, ta, tb, M, N, K, A, lda, B, ldb, acc, C, ldc), 0);
                    char what[128];
                    snprintf(what, sizeof what, "gemm %s %d threads %lldx%lldx%lld ta %d tb %d acc %d",
                             isa_names[isa], th, (long long)M, (long long)N, (long long)K, ta, tb, acc);
                    expect_close(what, C, want, M * ldc, 1e-5 * sqrt((double)K));
                    free(A);
                    free(B);
                    free(C);
                    free(want);
                }
            tr_kern_free(k);
        }
    }
    unsetenv("MIEN_TRAIN_ISA");
}
END_TEST

/* Case `which` as a graph, its weights from `seed`. */
static opcase op_case_graph(int which, uint64_t seed, const char **name) {
    mien_err e = {0};
    rng r = {seed};
    nn_conv_params p;
    nn_conv_params_default(&p);
    static const struct { const char *name; int kind; int64_t xd[4], wd[4]; int s, same, groups, bias; nn_act act; } cs[] = {
        {"conv 3x3 s2 same bias prelu", 0, {2, 9, 8, 5}, {3, 3, 5, 12}, 2, 1, 1, 1, NN_ACT_PRELU},
        {"conv 1x1 bias relu", 0, {3, 5, 4, 20}, {1, 1, 20, 19}, 1, 1, 1, 1, NN_ACT_RELU},
        {"conv 5x3 valid", 0, {2, 9, 7, 3}, {5, 3, 3, 4}, 2, 0, 1, 0, NN_ACT_NONE},
        {"conv grouped", 0, {2, 6, 5, 4}, {3, 3, 2, 6}, 1, 1, 2, 1, NN_ACT_PRELU},
        {"dw 3x3 s2 prelu", 1, {2, 9, 9, 13}, {3, 3, 13, 1}, 2, 1, 1, 1, NN_ACT_PRELU},
        {"dw 7x7 valid", 1, {3, 7, 7, 24}, {7, 7, 24, 1}, 1, 0, 1, 0, NN_ACT_NONE},
        {"dw multiplier 2", 1, {2, 5, 6, 3}, {3, 3, 3, 2}, 1, 1, 1, 0, NN_ACT_RELU},
        /* MobileFaceNet's sizes: whole vectors, no channel tails */
        {"conv 1x1 64 -> 128 bias prelu", 0, {2, 14, 14, 64}, {1, 1, 64, 128}, 1, 1, 1, 1, NN_ACT_PRELU},
        {"dw 3x3 128 prelu", 1, {2, 14, 14, 128}, {3, 3, 128, 1}, 1, 1, 1, 1, NN_ACT_PRELU},
    };
    const int n_conv = (int)(sizeof cs / sizeof cs[0]);
    opcase c;
    if (which < n_conv) {
        c = new_case(4, cs[which].xd);
        int w = oc_param(&c, &r, "w", 4, cs[which].wd, 0.4f, 0);
        int64_t co = cs[which].kind ? cs[which].wd[2] * cs[which].wd[3] : cs[which].wd[3];
        int b = cs[which].bias ? oc_param(&c, &r, "b", 1, &co, 0.3f, 0) : -1;
        int al = cs[which].act == NN_ACT_PRELU ? oc_param(&c, &r, "alpha", 1, &co, 0.2f, 0.2f) : -1;
        p.stride[0] = p.stride[1] = cs[which].s;
        p.padding = cs[which].same ? NN_PAD_SAME : NN_PAD_VALID;
        p.groups = cs[which].groups;
        p.act = cs[which].act;
        int y = cs[which].kind ? nn_add_dwconv2d(c.g, "y", c.x, w, b, al, &p, &e)
                               : nn_add_conv2d(c.g, "y", c.x, w, b, al, &p, &e);
        ck_assert_msg(y >= 0, "%s", e.msg);
        *name = cs[which].name;
        return c;
    }
    which -= n_conv;
    int64_t xd[4] = {2, 5, 5, 19}, C = 19;
    if (which >= 8) { /* the batch norms again with 64 channels */
        which -= 4;
        xd[1] = xd[2] = 9;
        xd[3] = C = 64;
    }
    switch (which) {
    case 0: {
        int64_t fx[2] = {6, 37}, wd[2] = {37, 29}, m = 29;
        c = new_case(2, fx);
        int w = oc_param(&c, &r, "w", 2, wd, 0.4f, 0);
        int b = oc_param(&c, &r, "b", 1, &m, 0.3f, 0);
        int al = oc_param(&c, &r, "alpha", 1, &m, 0.2f, 0.2f);
        ck_assert_int_ge(nn_add_fc(c.g, "y", c.x, w, b, al, NN_ACT_PRELU, &e), 0);
        *name = "fc bias prelu";
        return c;
    }
    case 1: {
        c = new_case(4, xd);
        int al = oc_param(&c, &r, "alpha", 1, &C, 0.3f, 0.1f);
        ck_assert_int_ge(nn_add_prelu(c.g, "y", c.x, al, &e), 0);
        *name = "prelu";
        return c;
    }
    case 2:
    case 3: {
        c = new_case(4, xd);
        int b = which == 2 ? oc_param(&c, &r, "b", 4, xd, 1.f, 0) : oc_param(&c, &r, "b", 1, &C, 1.f, 0);
        /* x feeds two nodes: its gradient collects both */
        int y = nn_add_binary(c.g, NN_OP_ADD, "s", c.x, b, &e);
        ck_assert_int_ge(nn_add_binary(c.g, NN_OP_ADD, "y", y, c.x, &e), 0);
        *name = which == 2 ? "add" : "add broadcast";
        return c;
    }
    case 4:
    case 5:
    case 6: {
        static const nn_act acts[] = {NN_ACT_PRELU, NN_ACT_NONE, NN_ACT_RELU};
        c = new_case(4, xd);
        int gm = oc_param(&c, &r, "gamma", 1, &C, 0.5f, 1.f);
        int bt = oc_param(&c, &r, "beta", 1, &C, 0.5f, 0.f);
        int al = acts[which - 4] == NN_ACT_PRELU ? oc_param(&c, &r, "alpha", 1, &C, 0.2f, 0.2f) : -1;
        ck_assert_int_ge(nn_add_batchnorm_train(c.g, "y", c.x, gm, bt, al, acts[which - 4], 1e-5f, &e), 0);
        *name = which == 4 ? "batch norm prelu" : which == 5 ? "batch norm" : "batch norm relu (eval)";
        return c;
    }
    case 7: {
        int64_t fx[2] = {5, 8};
        c = new_case(2, fx);
        ck_assert_int_ge(nn_add_l2norm(c.g, "y", c.x, 1e-10f, &e), 0);
        *name = "l2norm";
        return c;
    }
    }
    c.g = NULL;
    return c;
}

/* Forward and backward of net on x and dy; copies of the output, input gradient, every
 * parameter gradient and running statistics, concatenated; seg[] their sizes. */
#define MAX_SEG 512
static float *run_fb(tr_net *net, const float *x, const float *dy, int64_t *n_out, int64_t *seg, int *n_seg) {
    mien_err e = {0};
    const nn_graph *g = net->g;
    const int64_t nx = g->t[g->inputs[0]].n, ny = g->t[g->outputs[0]].n;
    memcpy(tr_input(net, 0), x, (size_t)nx * sizeof(float));
    ck_assert_msg(tr_forward(net, &e) == 0, "%s", e.msg);
    const float *dout[1] = {dy};
    ck_assert_msg(tr_backward(net, dout, &e) == 0, "%s", e.msg);
    int64_t n = ny + nx + tr_num_params(net);
    for (int i = 0; i < net->n_bn; i++) n += 2 * net->bn[i].c;
    float *v = malloc((size_t)n * sizeof *v), *o = v;
    *n_seg = 0;
    seg[(*n_seg)++] = ny;
    seg[(*n_seg)++] = nx;
    for (int i = 0; i < net->n_p && *n_seg < MAX_SEG; i++) seg[(*n_seg)++] = net->p[i].n;
    for (int i = 0; i < net->n_bn && *n_seg + 1 < MAX_SEG; i++) {
        seg[(*n_seg)++] = net->bn[i].c;
        seg[(*n_seg)++] = net->bn[i].c;
    }
    memcpy(o, tr_output(net, 0), (size_t)ny * sizeof(float));
    o += ny;
    if (tr_input_grad(net, 0)) memcpy(o, tr_input_grad(net, 0), (size_t)nx * sizeof(float));
    else memset(o, 0, (size_t)nx * sizeof(float));
    o += nx;
    memcpy(o, net->gbuf, (size_t)net->gbuf_n * sizeof(float));
    o += net->gbuf_n;
    for (int i = 0; i < net->n_bn; i++) {
        memcpy(o, net->bn[i].run_mean, (size_t)net->bn[i].c * sizeof(float));
        memcpy(o + net->bn[i].c, net->bn[i].run_var, (size_t)net->bn[i].c * sizeof(float));
        o += 2 * net->bn[i].c;
    }
    *n_out = n;
    return v;
}

/* Segment by segment. */
static void expect_segments(const char *what, const float *got, const float *want, const int64_t *seg, int n_seg,
                            double tol) {
    int64_t at = 0;
    for (int i = 0; i < n_seg; i++) {
        char w[200];
        snprintf(w, sizeof w, "%s, part %d", what, i);
        expect_close(w, got + at, want + at, seg[i], tol);
        at += seg[i];
    }
}

START_TEST(fast_kernels_match_reference) {
    mien_err e = {0};
    for (int which = 0; which < 20; which++) {
        const char *name = NULL;
        float *ref = NULL, *x = NULL, *dy = NULL;
        int64_t n_ref = 0;
        for (int run = 0; run < 7; run++) { /* 0: reference; then 3 ISAs x 1, 2 threads */
            const int isa = (run - 1) / 2, th = 1 + (run - 1) % 2;
            if (run > 0 && !use_isa(isa)) continue;
            opcase c = op_case_graph(which, 1000 + (uint64_t)which, &name);
            int y = c.g->nodes[c.g->n_nodes - 1].out;
            ck_assert_int_eq(nn_mark_output(c.g, y, &e), 0);
            tr_net *net;
            tr_net_opts no = {.input_grad = 1, .reference = run == 0, .threads = th};
            ck_assert_msg(tr_net_create(c.g, c.params, NULL, c.n_params, &no, &net, &e) == 0, "%s", e.msg);
            net->training = strstr(name, "eval") == NULL;
            if (!x) {
                rng r = {5000 + (uint64_t)which};
                x = randn(&r, net->g->t[c.x].n, 1.5f);
                for (int64_t i = 0; i < net->g->t[c.x].n; i++) x[i] += 0.7f; /* means off zero */
                dy = randn(&r, net->g->t[y].n, 1.f);
            }
            int64_t n, seg[MAX_SEG];
            int n_seg;
            float *got = run_fb(net, x, dy, &n, seg, &n_seg);
            if (run == 0) {
                ref = got;
                n_ref = n;
            } else {
                ck_assert_int_eq(n, n_ref);
                char what[160];
                snprintf(what, sizeof what, "%s on %s, %d thread%s", name, isa_names[isa], th, th > 1 ? "s" : "");
                expect_segments(what, got, ref, seg, n_seg, 1e-4);
                free(got);
            }
            tr_net_free(net);
        }
        free(ref);
        free(x);
        free(dy);
    }
    /* Whole networks, one step with the ArcFace head: the small one on every ISA and thread
     * count, MobileFaceNet on the vector ISAs with one thread. Here rounding differences (the fast GEMM's fused multiply-adds) can move
     * a pre-activation across a PReLU's kink, which changes that element's gradient by a
     * quarter, and the change travels back through every earlier layer: in MobileFaceNet a few
     * such flips leave 0.2-0.3% of the gradient's norm different, which is rounding, not a wrong
     * kernel (a wrong one is off by the whole gradient). So: the loss and the embeddings within
     * 1e-5 and 1e-4, each gradient tensor within 1e-4 of the network's largest gradient for
     * the small network, and within 5% (each tensor, or 1e-4 of the largest gradient per
     * element for the tiny ones) and 1% (all of them) in norm for MobileFaceNet. A batch of 8: with fewer images the last batch norms, which see one value
     * per image, turn rounding into differences of their own. */
    for (int arch = 0; arch < 2; arch++) {
        float *ref = NULL;
        int64_t n_ref = 0;
        double loss_ref = 0;
        const int B = 8;
        for (int run = 0; run < 7; run++) {
            const int isa = (run - 1) / 2, th = 1 + (run - 1) % 2;
            if (run > 0 && (!use_isa(isa) || (arch == 1 && (isa < 1 || th == 2)))) continue;
            tr_build_opts bo = {.arch = arch ? NN_ARCH_MOBILEFACENET : NN_ARCH_SMALL, .batch = B, .normalize = 1,
                                .seed = 3, .threads = th, .reference = run == 0};
            tr_net *net;
            ck_assert_msg(tr_build_train(&bo, &net, &e) == 0, "%s", e.msg);
            const int S = nn_arch_input(bo.arch), D = nn_arch_dim(bo.arch);
            tr_margin m;
            tr_margin_default(&m, TR_LOSS_ARCFACE);
            tr_head h;
            ck_assert_int_eq(tr_head_init(&h, &m, 7, D, 1.f, 1, tr_comm_single(), &e), 0);
            rng r = {42};
            float *x = randn(&r, (int64_t)B * S * S * 3, 1.f), *dx = malloc((size_t)B * D * sizeof *dx);
            int lab[8] = {0, 3, 6, 3, 1, 2, 5, 0};
            int64_t n = 0, seg[MAX_SEG];
            int n_seg = 0;
            double loss = 0, acc;
            memcpy(tr_input(net, 0), x, (size_t)B * S * S * 3 * sizeof(float));
            ck_assert_int_eq(tr_forward(net, &e), 0);
            ck_assert_int_eq(tr_head_step(&h, tr_comm_single(), 0, tr_output(net, 0), lab, B, dx, &loss, &acc, &e), 0);
            /* again from the same running statistics' start: run_fb's forward updates them once more */
            float *got = run_fb(net, x, dx, &n, seg, &n_seg);
            if (run == 0) {
                ref = got;
                n_ref = n;
                loss_ref = loss;
            } else {
                ck_assert_int_eq(n, n_ref);
                char what[160];
                snprintf(what, sizeof what, "%s on %s, %d thread%s", arch ? "mobilefacenet" : "small",
                         isa_names[isa], th, th > 1 ? "s" : "");
                ck_assert_msg(fabs(loss - loss_ref) <= 1e-5 * loss_ref, "%s: loss %.8g vs %.8g", what, loss, loss_ref);
                expect_close(what, got, ref, seg[0], 1e-4);
                double gmax = 0, d2 = 0, r2 = 0;
                int64_t at = seg[0] + seg[1];
                for (int64_t i = at; i < at + net->gbuf_n; i++) gmax = fmax(gmax, fabs(ref[i]));
                for (int q = 2; q < 2 + net->n_p; q++) {
                    double td = 0, tr = 0, worst = 0;
                    for (int64_t i = at; i < at + seg[q]; i++) {
                        const double d = (double)got[i] - ref[i];
                        td += d * d;
                        tr += (double)ref[i] * ref[i];
                        worst = fmax(worst, fabs(d));
                    }
                    d2 += td;
                    r2 += tr;
                    const char *pn = net->g->t[net->p[q - 2].t].name;
                    if (arch == 0)
                        ck_assert_msg(worst <= 1e-4 * gmax, "%s: gradient of %s differs by %g (largest gradient %g)",
                                      what, pn, worst, gmax);
                    else
                        ck_assert_msg(sqrt(td) <= 0.05 * sqrt(tr) + 1e-4 * gmax * sqrt((double)seg[q]),
                                      "%s: gradient of %s differs by %.3g in norm", what, pn, sqrt(td / fmax(tr, 1e-30)));
                    at += seg[q];
                }
                ck_assert_msg(d2 <= 1e-4 * r2, "%s: the gradient differs by %.3g in norm", what, sqrt(d2 / r2));
                free(got);
            }
            free(x);
            free(dx);
            tr_head_free(&h);
            tr_net_free(net);
        }
        free(ref);
    }
    unsetenv("MIEN_TRAIN_ISA");
}
END_TEST

/* ==== Training a loaded model ====
 * fr_feature (faceplugin's ONNX embedder) as a training net: its folded convolutions, biases
 * and PReLU slopes are the parameters, the training graph computes what the inference graph
 * does, a step changes the weights, and a checkpoint loads back (base found again, hash
 * checked) into an inference graph that computes the trained network. */
START_TEST(loaded_model_trains_and_reloads) {
    mien_err e = {0};
    const char *base = tu_path("%s/faceplugin/fr_feature.onnx", tu_models_dir());
    char path[1024];
    snprintf(path, sizeof path, "%s", base);
    const int B = 4, S = 112, D = 512;
    tr_loaded_opts lo = {.path = path, .batch = B, .side = S, .mean = 127.5f, .scale = 1.f / 127.5f,
                         .normalize = 1, .threads = 2};
    tr_net *net;
    ck_assert_msg(tr_build_loaded(&lo, &net, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(net->n_p, 133); /* 50 convolutions' weights and biases, 33 PReLUs */
    { /* --train-layers 2: the last two layers' weights and biases (and any PReLU between) only */
        tr_loaded_opts l2 = lo;
        l2.last_layers = 2;
        tr_net *n2;
        ck_assert_msg(tr_build_loaded(&l2, &n2, &e) == 0, "%s", e.msg);
        ck_assert_msg(n2->n_p >= 4 && n2->n_p <= 5, "%d parameters", n2->n_p);
        tr_net_free(n2);
    }
    rng r = {31};
    float *x = randn(&r, (int64_t)B * S * S * 3, 0.6f);
    memcpy(tr_input(net, 0), x, (size_t)B * S * S * 3 * sizeof(float));
    ck_assert_int_eq(tr_forward(net, &e), 0);
    /* the inference graph of the file, image by image */
    nn_graph *g;
    const int64_t d1[4] = {1, 3, S, S};
    ck_assert_int_eq(nn_onnx_load(path, d1, &g, &e), 0);
    nn_exec *ex;
    nn_exec_opts xo = {.backend = NN_BACKEND_FAST, .threads = 1};
    ck_assert_int_eq(nn_exec_create(g, &xo, &ex, &e), 0);
    for (int b = 0; b < B; b++) {
        memcpy(nn_exec_input(ex, 0), x + (size_t)b * S * S * 3, (size_t)S * S * 3 * sizeof(float));
        ck_assert_int_eq(nn_exec_run(ex, &e), 0);
        const float *y = nn_exec_output(ex, 0), *t = tr_output(net, 0) + b * D;
        double ss = 0, dot = 0;
        for (int k = 0; k < D; k++) ss += (double)y[k] * y[k];
        for (int k = 0; k < D; k++) dot += y[k] / sqrt(ss) * t[k];
        ck_assert_msg(dot > 0.99999, "image %d: training and inference embeddings differ (cos %g)", b, dot);
    }
    nn_exec_free(ex);
    nn_graph_free(g);
    /* one step with an ArcFace head */
    tr_margin m;
    tr_margin_default(&m, TR_LOSS_ARCFACE);
    tr_head h;
    ck_assert_int_eq(tr_head_init(&h, &m, 3, D, 1.f, 1, tr_comm_single(), &e), 0);
    int lab[4] = {0, 1, 2, 1};
    double loss, acc;
    float *dx = malloc((size_t)B * D * sizeof *dx);
    ck_assert_int_eq(tr_head_step(&h, tr_comm_single(), 0, tr_output(net, 0), lab, B, dx, &loss, &acc, &e), 0);
    const float *dout[1] = {dx};
    ck_assert_msg(tr_backward(net, dout, &e) == 0, "%s", e.msg);
    double gn = 0;
    for (int64_t i = 0; i < net->gbuf_n; i++) gn += (double)net->gbuf[i] * net->gbuf[i];
    ck_assert_msg(gn > 0 && isfinite(gn), "gradient norm %g", sqrt(gn));
    tr_optim opt;
    tr_optim_default(&opt, TR_ADAMW);
    opt.lr = 1e-4f;
    tr_optim_tick(&opt);
    float *w0 = malloc((size_t)net->p[0].n * sizeof *w0);
    memcpy(w0, net->p[0].w, (size_t)net->p[0].n * sizeof *w0);
    ck_assert_int_eq(tr_optim_step_net(&opt, net, &e), 0);
    int changed = 0;
    for (int64_t i = 0; i < net->p[0].n; i++) changed += net->p[0].w[i] != w0[i];
    ck_assert_msg(changed > net->p[0].n / 2, "%d of %lld weights changed", changed, (long long)net->p[0].n);
    free(w0);
    /* checkpoint, then the inference graph it loads into */
    nn_ckpt ts;
    ck_assert_msg(tr_export_loaded(net, &lo, &ts, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(nn_ckpt_meta(&ts, "graph"), "onnx");
    ck_assert_str_eq(nn_ckpt_meta(&ts, "base_rel"), "faceplugin/fr_feature.onnx");
    const char *ck = tu_temp_file(".ckpt", "", 0);
    ck_assert_int_eq(nn_ckpt_save(ck, &ts, &e), 0);
    nn_ckpt_embedder_info info;
    ck_assert_msg(nn_ckpt_load_embedder(ck, tu_models_dir(), &g, &info, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(info.dim, D);
    ck_assert_int_eq(info.size, S);
    ck_assert(fabsf(info.scale - 1.f / 127.5f) < 1e-9f);
    ck_assert_int_eq(tr_forward(net, &e), 0);
    ck_assert_int_eq(nn_exec_create(g, &xo, &ex, &e), 0);
    memcpy(nn_exec_input(ex, 0), x, (size_t)S * S * 3 * sizeof(float));
    ck_assert_int_eq(nn_exec_run(ex, &e), 0);
    const float *y = nn_exec_output(ex, 0);
    double ss = 0;
    for (int k = 0; k < D; k++) ss += (double)y[k] * y[k];
    for (int k = 0; k < D; k++)
        ck_assert_msg(fabs(y[k] / sqrt(ss) - tr_output(net, 0)[k]) < 1e-4, "dim %d: %g vs %g", k, y[k] / sqrt(ss),
                      (double)tr_output(net, 0)[k]);
    nn_exec_free(ex);
    nn_graph_free(g);
    /* the base found under the models folder when its saved path is gone; another file (or a
     * changed one) refused */
    nn_ckpt_set_meta(&ts, "base", "/nonexistent/fr_feature.onnx", &e);
    ck_assert_int_eq(nn_ckpt_save(ck, &ts, &e), 0);
    ck_assert_msg(nn_ckpt_load_embedder(ck, tu_models_dir(), &g, &info, &e) == 0, "%s", e.msg);
    nn_graph_free(g);
    ck_assert_int_eq(nn_ckpt_load_embedder(ck, NULL, &g, &info, &e), MIEN_ENOTFOUND);
    nn_ckpt_set_meta(&ts, "base_fnv1a", "0123456789abcdef", &e);
    ck_assert_int_eq(nn_ckpt_save(ck, &ts, &e), 0);
    ck_assert_int_eq(nn_ckpt_load_embedder(ck, tu_models_dir(), &g, &info, &e), MIEN_EFORMAT);
    ck_assert_msg(strstr(e.msg, "not the base model"), "%s", e.msg);
    unlink(ck);
    nn_ckpt_free(&ts);
    tr_head_free(&h);
    tr_net_free(net);
    free(x);
    free(dx);
}
END_TEST

/* ==== The command line ==== */

/* A folder per class of synthetic aligned 112x112 crops: a class colour, a class stripe
 * pattern and per-photo noise, so that classes are learnable in a few steps. */
static const char *synthetic_data(int classes, int per_class) {
    static char dir[256];
    snprintf(dir, sizeof dir, "/tmp/mien-train-data-XXXXXX");
    ck_assert(mkdtemp(dir));
    rng r = {2024};
    mien_err e = {0};
    for (int c = 0; c < classes; c++) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/id%02d", dir, c);
        ck_assert_int_eq(mkdir(sub, 0777), 0);
        for (int k = 0; k < per_class; k++) {
            mien_image img = {0};
            ck_assert_int_eq(img_alloc(&img, 112, 112, &e), 0);
            for (int y = 0; y < 112; y++)
                for (int x = 0; x < 112; x++) {
                    int stripe = ((x * (c % 3 + 1) + y * (c / 3 + 1)) / 8) % 2;
                    for (int ch = 0; ch < 3; ch++) {
                        double v = 60 + 40 * ((c >> ch) & 1) + 80 * stripe * (ch == c % 3) + 25 * rng_normal(&r);
                        img.rgb[(y * 112 + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                }
            char path[600];
            snprintf(path, sizeof path, "%s/p%02d.png", sub, k);
            ck_assert_int_eq(img_write_png(path, &img, &e), 0);
            mien_image_free(&img);
        }
    }
    return dir;
}

/* The "loss" of every step line of a --json run, in order. */
static int step_losses(const char *out, double *loss, int max, cJSON **summary) {
    int n = 0;
    *summary = NULL;
    for (const char *line = out; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *j = cJSON_ParseWithLength(line, len);
        if (j) {
            const cJSON *st = cJSON_GetObjectItem(j, "step"), *l = cJSON_GetObjectItem(j, "loss");
            if (cJSON_GetObjectItem(j, "summary")) {
                cJSON_Delete(*summary);
                *summary = j;
                j = NULL;
            } else if (st && cJSON_IsNumber(l) && n < max) {
                loss[n++] = l->valuedouble;
            }
            cJSON_Delete(j);
        }
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

/* The small network from scratch on synthetic classes: the loss falls, and the run writes a
 * checkpoint, a loss curve and the summary. */
START_TEST(cli_small_converges) {
    const char *dir = synthetic_data(6, 8);
    char *out = NULL;
    int rc = tu_run(tu_path("%s train --data %s --aligned --arch small --loss cosface --scale 16 "
                            "--batch 8 --epochs 12 --lr 0.05 --threads 1 --out %s/small.ckpt --json",
                            tu_mien_bin_fast(), dir, dir), &out);
    ck_assert_msg(rc == 0, "mien train failed (%d):\n%s", rc, out);
    double loss[256];
    cJSON *sum;
    int n = step_losses(out, loss, 256, &sum);
    ck_assert_int_eq(n, 72);
    ck_assert_msg(sum, "no summary in:\n%s", out);
    double first = cJSON_GetObjectItem(sum, "loss_first")->valuedouble;
    double last = cJSON_GetObjectItem(sum, "loss_last")->valuedouble;
    ck_assert(fabs(first - loss[0]) < 1e-4 * first && fabs(last - loss[n - 1]) < 1e-4 * first);
    double tail = 0;
    for (int i = n - 8; i < n; i++) tail += loss[i] / 8;
    ck_assert_msg(tail < 0.5 * first, "loss %g -> %g (last 8 steps) did not converge", first, tail);
    struct stat st;
    ck_assert_int_eq(stat(tu_path("%s/small.ckpt", dir), &st), 0);
    ck_assert_int_eq(stat(tu_path("%s/small.ckpt.loss.png", dir), &st), 0);
    cJSON_Delete(sum);
    free(out);
    /* A bad option value is a usage error. */
    ck_assert_int_eq(tu_run(tu_path("%s train --data %s --out x --loss nope 2>/dev/null", tu_mien_bin_fast(), dir), NULL), 2);
    tu_run(tu_path("rm -rf %s", dir), NULL);
}
END_TEST

/* mien train --init MODEL.onnx: a loaded model fine-tuned from the command line (class centres
 * from the data), and its checkpoint used by the pipeline through --model-file. */
START_TEST(cli_fine_tune_loaded_model) {
    const char *dir = synthetic_data(3, 4);
    char *out = NULL;
    int rc = tu_run(tu_path("%s train --data %s --aligned --init %s/faceplugin/fr_feature.onnx --loss cosface "
                            "--head-init data --optimizer adamw --lr 1e-5 --batch 4 --steps 2 --threads 2 "
                            "--out %s/ft.ckpt --json",
                            tu_mien_bin_fast(), dir, tu_models_dir(), dir), &out);
    ck_assert_msg(rc == 0, "mien train --init fr_feature.onnx failed (%d):\n%s", rc, out);
    double loss[4];
    cJSON *sum;
    ck_assert_int_eq(step_losses(out, loss, 4, &sum), 2);
    ck_assert(sum);
    ck_assert_str_eq(cJSON_GetObjectItem(sum, "arch")->valuestring, "loaded");
    cJSON_Delete(sum);
    free(out);
    rc = tu_run(tu_path("%s embed --model-file %s/ft.ckpt --json %s/lfw/Tony_Blair/Tony_Blair_0005.jpg",
                        tu_mien_bin_fast(), dir, tu_data_dir()), &out);
    ck_assert_msg(rc == 0, "mien embed --model-file failed (%d):\n%s", rc, out);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j, "not JSON: %s", out);
    const cJSON *emb = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0), "embedding");
    ck_assert_int_eq(cJSON_GetArraySize(emb), 512);
    cJSON_Delete(j);
    free(out);
    rc = tu_run(tu_path("%s verify --model-file %s/ft.ckpt --json %s/lfw/Tony_Blair/Tony_Blair_0005.jpg "
                        "%s/lfw/Tony_Blair/Tony_Blair_0006.jpg", tu_mien_bin_fast(), dir, tu_data_dir(), tu_data_dir()), &out);
    ck_assert_msg(rc == 0, "mien verify --model-file failed (%d):\n%s", rc, out);
    j = cJSON_Parse(out);
    ck_assert_msg(j && cJSON_IsNumber(cJSON_GetObjectItem(j, "similarity")), "%s", out);
    ck_assert_msg(cJSON_GetObjectItem(j, "similarity")->valuedouble > 0.3, "the same person: %s", out);
    cJSON_Delete(j);
    free(out);
    /* A TFLite file too (MobileFaceNet.tflite, the default embedder: 192-d). */
    rc = tu_run(tu_path("%s train --data %s --aligned --init %s/expo/MobileFaceNet.tflite --input-scale 0.0078125 "
                        "--loss arcface --head-init data --optimizer adamw --lr 1e-5 --batch 4 --steps 2 "
                        "--threads 2 --out %s/ft2.ckpt --json", tu_mien_bin_fast(), dir, tu_models_dir(), dir), &out);
    ck_assert_msg(rc == 0, "mien train --init MobileFaceNet.tflite failed (%d):\n%s", rc, out);
    free(out);
    rc = tu_run(tu_path("%s embed --model-file %s/ft2.ckpt --json %s/lfw/Tony_Blair/Tony_Blair_0005.jpg",
                        tu_mien_bin_fast(), dir, tu_data_dir()), &out);
    ck_assert_msg(rc == 0, "mien embed --model-file (tflite) failed (%d):\n%s", rc, out);
    j = cJSON_Parse(out);
    ck_assert_msg(j, "not JSON: %s", out);
    emb = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "faces"), 0), "embedding");
    ck_assert_int_eq(cJSON_GetArraySize(emb), 192);
    cJSON_Delete(j);
    free(out);
    /* --bn-init data has no batch norm to set in a loaded model */
    ck_assert_int_eq(tu_run(tu_path("%s train --data %s --aligned --init %s/faceplugin/fr_feature.onnx --bn-init data "
                                    "--out %s/x.ckpt 2>/dev/null", tu_mien_bin_fast(), dir, tu_models_dir(), dir), NULL), 2);
    tu_run(tu_path("rm -rf %s", dir), NULL);
}
END_TEST

/* Two MPI processes give the loss curve of one process with the same global batch: batch norm
 * statistics, gradients, gathered features and sharded centres with Partial FC sampling
 * combined across ranks. (ArcFace at s = 64 with plain SGD is chaotic at this batch size: one
 * process with one or two BLAS threads drifts apart by 1e-2 within ten steps, so the check
 * uses AdamW with a small rate, where the dynamics keep rounding differences small.) */
START_TEST(cli_mpi_matches_one_process) {
    const char *mpi = tu_path("%s-train-mpi", tu_mien_bin_fast());
    ck_assert_msg(access(mpi, X_OK) == 0, "%s missing: needs libopenmpi-dev (scripts/setup.sh)", mpi);
    ck_assert_msg(tu_run("command -v mpirun >/dev/null", NULL) == 0, "mpirun missing: apt install openmpi-bin");
    const char *dir = synthetic_data(7, 6);
    const char *args = tu_path("--data %s --aligned --arch small --loss arcface --sample-rate 0.5 "
                               "--optimizer adamw --lr 1e-4 --warmup 0 --batch 8 --epochs 2 --json", dir);
    char a1[1024], a2[1024];
    snprintf(a1, sizeof a1, "%s", args);
    snprintf(a2, sizeof a2, "%s", args);
    char *o1 = NULL, *o2 = NULL;
    int rc = tu_run(tu_path("%s train %s --threads 1 --out %s/one.ckpt", tu_mien_bin_fast(), a1, dir), &o1);
    ck_assert_msg(rc == 0, "one process failed:\n%s", o1);
    rc = tu_run(tu_path("mpirun --allow-run-as-root --oversubscribe -np 2 %s %s --threads 2 --out %s/two.ckpt "
                        "2>&1", mpi, a2, dir), &o2);
    ck_assert_msg(rc == 0, "mpirun -np 2 failed (%d):\n%s", rc, o2);
    double l1[16], l2[16];
    cJSON *s1, *s2;
    int n1 = step_losses(o1, l1, 16, &s1), n2 = step_losses(o2, l2, 16, &s2);
    ck_assert_int_eq(n1, 10);
    ck_assert_int_eq(n2, 10);
    ck_assert(s1 && s2);
    ck_assert_int_eq(cJSON_GetObjectItem(s2, "processes")->valueint, 2);
    double worst = 0;
    for (int i = 0; i < 10; i++) worst = fmax(worst, fabs(l1[i] - l2[i]) / fabs(l1[i]));
    fprintf(stderr, "train: mpirun -np 2 vs one process, 10 steps: worst relative loss difference %.2g\n", worst);
    ck_assert_msg(worst < 1e-4, "loss curves differ by %g (relative)", worst);
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    free(o1);
    free(o2);
    tu_run(tu_path("rm -rf %s", dir), NULL);
}
END_TEST

/* Through detection: LFW photos (a folder per person) are detected, aligned and cached once;
 * the checkpoint then embeds through the ordinary pipeline with --model-file. */
START_TEST(cli_detect_and_model_file) {
    static const char *people[] = {"Colin_Powell", "Tony_Blair", "Gerhard_Schroeder"};
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/mien-train-lfw-XXXXXX");
    ck_assert(mkdtemp(dir));
    for (int p = 0; p < 3; p++) {
        ck_assert_int_eq(mkdir(tu_path("%s/%s", dir, people[p]), 0777), 0);
        for (int k = 1; k <= 3; k++) {
            const char *src = tu_path("%s/lfw/%s/%s_%04d.jpg", tu_data_dir(), people[p], people[p], k);
            char real[4096];
            ck_assert_msg(realpath(src, real), "missing %s", src);
            ck_assert_int_eq(symlink(real, tu_path("%s/%s/%s_%04d.jpg", dir, people[p], people[p], k)), 0);
        }
    }
    char *out = NULL;
    int rc = tu_run(tu_path("%s train --data %s --arch small --batch 4 --steps 2 --threads 2 --out %s/m.ckpt --json",
                            tu_mien_bin(), dir, dir), &out);
    ck_assert_msg(rc == 0, "mien train failed (%d):\n%s", rc, out);
    double loss[4];
    cJSON *sum;
    ck_assert_int_eq(step_losses(out, loss, 4, &sum), 2);
    ck_assert(sum);
    ck_assert_int_eq(cJSON_GetObjectItem(sum, "images")->valueint, 9);
    cJSON_Delete(sum);
    free(out);
    rc = tu_run(tu_path("%s embed --model-file %s/m.ckpt --json %s/lfw/Tony_Blair/Tony_Blair_0005.jpg",
                        tu_mien_bin(), dir, tu_data_dir()), &out);
    ck_assert_msg(rc == 0, "mien embed --model-file failed (%d):\n%s", rc, out);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j, "not JSON: %s", out);
    const cJSON *faces = cJSON_GetObjectItem(j, "faces");
    ck_assert(cJSON_GetArraySize(faces) >= 1);
    const cJSON *emb = cJSON_GetObjectItem(cJSON_GetArrayItem(faces, 0), "embedding");
    ck_assert_int_eq(cJSON_GetArraySize(emb), 128);
    cJSON_Delete(j);
    free(out);
    /* A file that is not a checkpoint fails cleanly. */
    rc = tu_run(tu_path("%s embed --model-file %s/Tony_Blair/Tony_Blair_0001.jpg %s/lfw/Tony_Blair/Tony_Blair_0005.jpg 2>/dev/null",
                        tu_mien_bin(), dir, tu_data_dir()), NULL);
    ck_assert_int_eq(rc, 1);
    tu_run(tu_path("rm -rf %s", dir), NULL);
}
END_TEST

Suite *suite_train(void) {
    Suite *s = suite_create("train");
    TCase *t = tcase_create("train");
    tcase_set_timeout(t, 240);
    tcase_add_test(t, against_pytorch);
    tcase_add_test(t, partial_fc_sampling);
    tcase_add_test(t, schedule);
    tcase_add_test(t, reference_kernels);
    tcase_add_test(t, fast_gemm);
    tcase_add_test(t, fast_kernels_match_reference);
    tcase_add_test(t, loaded_model_trains_and_reloads);
    tcase_add_test(t, small_net_gradients_and_checkpoint);
    tcase_add_test(t, mobilefacenet_weights_map);
    tcase_add_test(t, cli_small_converges);
    tcase_add_test(t, cli_fine_tune_loaded_model);
    tcase_add_test(t, cli_mpi_matches_one_process);
    tcase_add_test(t, cli_detect_and_model_file);
    suite_add_tcase(s, t);
    return s;
}
