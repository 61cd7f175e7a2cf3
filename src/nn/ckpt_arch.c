/* The built-in architectures (MobileFaceNet, small): their table, their topology, and their
 * inference graph from a checkpoint. The topology is written once; nn_arch_build walks it and
 * lets the caller make each unit: the training builder (train/arch.c) a trainable
 * conv -> BATCHNORM_TRAIN with PReLU fused, the inference builder here conv -> BATCHNORM (the
 * checkpoint's running statistics) -> PReLU, which nn_graph_optimize folds into one conv with
 * PReLU fused (what the fast backend runs), as for every loader. */
#include "nn/ckpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Architecture table ==== */

static const struct {
    nn_arch arch;
    const char *name;
    int input, dim;
} arch_info[] = {
    {NN_ARCH_MOBILEFACENET, "mobilefacenet", 112, 192},
    {NN_ARCH_SMALL, "small", 112, 128},
};

int nn_arch_input(nn_arch a) { return arch_info[a].input; }
int nn_arch_dim(nn_arch a) { return arch_info[a].dim; }
const char *nn_arch_name(nn_arch a) { return arch_info[a].name; }

int nn_arch_from_name(const char *name, nn_arch *a) {
    for (size_t i = 0; i < sizeof arch_info / sizeof arch_info[0]; i++)
        if (!strcmp(name, arch_info[i].name)) {
            *a = arch_info[i].arch;
            return 1;
        }
    return 0;
}

/* ==== Topology ==== */

typedef struct walk {
    nn_graph *g;
    nn_arch_unit_fn fn;
    void *ctx;
    mien_err *e;
    int rc;                  /* the first failure; every later step does nothing */
} walk;

static int fail(walk *w, int rc) {
    if (!w->rc) w->rc = rc;
    return -1;
}

static int unit(walk *w, const char *name, int x, nn_arch_unit_kind kind, int k, int cout,
                int stride, int valid, int prelu) {
    if (w->rc || x < 0) return fail(w, w->rc ? w->rc : MIEN_EINTERNAL);
    const nn_arch_unit u = {name, kind, k, cout, stride, valid, prelu};
    int y = -1, rc = w->fn(w->ctx, w->g, &u, x, &y, w->e);
    if (rc) return fail(w, rc);
    return y < 0 ? fail(w, MIEN_EINTERNAL) : y;
}

static int add(walk *w, const char *name, int x, int y) {
    if (w->rc || x < 0 || y < 0) return fail(w, w->rc ? w->rc : MIEN_EINTERNAL);
    int t = nn_add_binary(w->g, NN_OP_ADD, name, x, y, w->e);
    return t < 0 ? fail(w, MIEN_EFORMAT) : t;
}

/* MobileFaceNet (Chen et al. 2018) as in sirius-ai's TF port that human ships: unit names are
 * the TF scopes, so the pretrained weights map by name. Bottlenecks: 1x1 expand (PReLU),
 * 3x3 depthwise (PReLU), 1x1 project (linear), residual where the shape allows. */
static int build_mobilefacenet(walk *b, int x) {
    x = unit(b, "Conv2d_0", x, NN_ARCH_CONV, 3, 64, 2, 0, 1);
    x = unit(b, "SeparableConv2d", x, NN_ARCH_DW, 3, 0, 1, 0, 1);
    x = unit(b, "Conv", x, NN_ARCH_CONV, 1, 64, 1, 0, 0);
    static const struct { int stage, blocks, expand, out, stride; } st[] = {
        {2, 5, 128, 64, 2}, {3, 1, 256, 128, 2}, {4, 6, 256, 128, 1}, {5, 1, 512, 128, 2},
        {6, 2, 256, 128, 1},
    };
    char nm[128];
    for (size_t s = 0; s < sizeof st / sizeof st[0]; s++)
        for (int i = 0; i < st[s].blocks; i++) {
            int stride = i == 0 ? st[s].stride : 1;
            int in = x;
            snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/Conv", st[s].stage, i);
            int y = unit(b, nm, x, NN_ARCH_CONV, 1, st[s].expand, 1, 0, 1);
            snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/SeparableConv2d", st[s].stage, i);
            y = unit(b, nm, y, NN_ARCH_DW, 3, 0, stride, 0, 1);
            snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/Conv_1", st[s].stage, i);
            y = unit(b, nm, y, NN_ARCH_CONV, 1, st[s].out, 1, 0, 0);
            if (stride == 1 && !b->rc && b->g->t[in].dims[3] == st[s].out) {
                snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/Add", st[s].stage, i);
                y = add(b, nm, y, in);
            }
            x = y;
        }
    x = unit(b, "Conv2d_7", x, NN_ARCH_CONV, 1, 512, 1, 0, 1);
    x = unit(b, "Logits/SeparableConv2d", x, NN_ARCH_DW, 7, 0, 1, 1, 0); /* global depthwise */
    x = unit(b, "Logits/Conv", x, NN_ARCH_CONV, 1, 512, 1, 0, 0);
    x = unit(b, "Logits/LinearConv1x1", x, NN_ARCH_CONV, 1, 192, 1, 0, 0);
    return x;
}

/* A small network for training from scratch in minutes: 112 -> 56 -> 28 (one residual
 * bottleneck) -> 14 -> 7, a global depthwise conv and a 128-d linear embedding. About 22 M
 * multiply-adds, a tenth of MobileFaceNet. */
static int build_small(walk *b, int x) {
    x = unit(b, "stem", x, NN_ARCH_CONV, 3, 32, 2, 0, 1);
    x = unit(b, "dw1", x, NN_ARCH_DW, 3, 0, 2, 0, 1);
    x = unit(b, "pw1", x, NN_ARCH_CONV, 1, 64, 1, 0, 1);
    int y = unit(b, "res1/expand", x, NN_ARCH_CONV, 1, 128, 1, 0, 1);
    y = unit(b, "res1/dw", y, NN_ARCH_DW, 3, 0, 1, 0, 1);
    y = unit(b, "res1/project", y, NN_ARCH_CONV, 1, 64, 1, 0, 0);
    x = add(b, "res1/add", y, x);
    x = unit(b, "dw2", x, NN_ARCH_DW, 3, 0, 2, 0, 1);
    x = unit(b, "pw2", x, NN_ARCH_CONV, 1, 128, 1, 0, 1);
    x = unit(b, "dw3", x, NN_ARCH_DW, 3, 0, 2, 0, 1);
    x = unit(b, "pw3", x, NN_ARCH_CONV, 1, 256, 1, 0, 1);
    x = unit(b, "gdc", x, NN_ARCH_DW, 7, 0, 1, 1, 0);
    x = unit(b, "embed", x, NN_ARCH_CONV, 1, 128, 1, 0, 0);
    return x;
}

int nn_arch_build(nn_graph *g, nn_arch arch, int batch, nn_arch_unit_fn unit_fn, void *ctx,
                  int *out, mien_err *e) {
    *out = -1;
    walk w = {.g = g, .fn = unit_fn, .ctx = ctx, .e = e};
    const int S = nn_arch_input(arch);
    int64_t dims[4] = {batch, S, S, 3};
    int x = nn_add_input(g, "input", 4, dims, e);
    if (x < 0) return MIEN_EFORMAT;
    int y = arch == NN_ARCH_SMALL ? build_small(&w, x) : build_mobilefacenet(&w, x);
    if (w.rc) return w.rc;
    int64_t od[2] = {batch, nn_arch_dim(arch)};
    y = nn_add_reshape(g, "embedding", y, 2, od, e);
    if (y < 0) return MIEN_EFORMAT;
    *out = y;
    return MIEN_OK;
}

/* ==== Inference graph from a checkpoint ==== */

typedef struct infer_b {
    const nn_ckpt *ck;
    float eps;
} infer_b;

/* The checkpoint's tensor called name if it has n values; else NULL and an error. */
static const float *need(const infer_b *b, const char *name, int64_t n, int *rc, mien_err *e) {
    const nn_ckpt_tensor *t = nn_ckpt_find(b->ck, name);
    const float *d = t && t->n == n ? t->data : NULL;
    if (!d && !*rc)
        *rc = mien_err_set(e, MIEN_EFORMAT, "checkpoint lacks tensor %s (%lld values)", name,
                           (long long)n);
    return d;
}

/* y = (conv - mean) / sqrt(var + eps) * gamma + beta: a BATCHNORM node of scale
 * gamma / sqrt(var + eps) and shift beta - mean * scale, then the PReLU. */
static int infer_unit(void *ctx, nn_graph *g, const nn_arch_unit *u, int x, int *y, mien_err *e) {
    const infer_b *b = ctx;
    const char *name = u->name;
    const int k = u->k, prelu = u->prelu;
    const int64_t cin = g->t[x].dims[3];
    const int cout = u->kind == NN_ARCH_DW ? (int)cin : u->cout;
    int64_t wd[4] = {k, k, cin, u->kind == NN_ARCH_DW ? 1 : cout};
    const int64_t wn = wd[0] * wd[1] * wd[2] * wd[3];
    char nm[256];
    nn_conv_params cp;
    nn_conv_params_default(&cp);
    cp.stride[0] = cp.stride[1] = u->stride;
    cp.padding = u->valid ? NN_PAD_VALID : NN_PAD_SAME;

    int rc = MIEN_OK;
    const float *w, *gm, *bt, *rm, *rv, *al = NULL;
    snprintf(nm, sizeof nm, "%s/conv", name);
    w = need(b, nm, wn, &rc, e);
    snprintf(nm, sizeof nm, "%s/bn/gamma", name);
    gm = need(b, nm, cout, &rc, e);
    snprintf(nm, sizeof nm, "%s/bn/beta", name);
    bt = need(b, nm, cout, &rc, e);
    snprintf(nm, sizeof nm, "%s/bn/running_mean", name);
    rm = need(b, nm, cout, &rc, e);
    snprintf(nm, sizeof nm, "%s/bn/running_var", name);
    rv = need(b, nm, cout, &rc, e);
    if (prelu) {
        snprintf(nm, sizeof nm, "%s/prelu", name);
        al = need(b, nm, cout, &rc, e);
    }
    if (rc) return rc;
    float *sc = malloc((size_t)cout * sizeof *sc);
    if (!sc || !nn_graph_own(g, sc)) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    float *sh = malloc((size_t)cout * sizeof *sh);
    if (!sh || !nn_graph_own(g, sh)) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    for (int c = 0; c < cout; c++) {
        sc[c] = gm[c] / sqrtf(rv[c] + b->eps);
        sh[c] = bt[c] - rm[c] * sc[c];
    }
    int64_t cd[1] = {cout};
    snprintf(nm, sizeof nm, "%s/conv", name);
    int wt = nn_add_const(g, nm, 4, wd, w, e);
    snprintf(nm, sizeof nm, "%s/bn_scale", name);
    int st = wt < 0 ? -1 : nn_add_const_ref(g, nm, 1, cd, sc, e);
    snprintf(nm, sizeof nm, "%s/bn_shift", name);
    int ht = st < 0 ? -1 : nn_add_const_ref(g, nm, 1, cd, sh, e);
    int alpha = -1;
    if (prelu) {
        snprintf(nm, sizeof nm, "%s/prelu", name);
        alpha = ht < 0 ? -1 : nn_add_const(g, nm, 1, cd, al, e);
    }
    if (ht < 0 || (prelu && alpha < 0)) return MIEN_EFORMAT;
    snprintf(nm, sizeof nm, "%s/conv_out", name);
    int t = u->kind == NN_ARCH_DW ? nn_add_dwconv2d(g, nm, x, wt, -1, -1, &cp, e)
                                  : nn_add_conv2d(g, nm, x, wt, -1, -1, &cp, e);
    snprintf(nm, sizeof nm, prelu ? "%s/bn" : "%s/out", name);
    if (t >= 0) t = nn_add_batchnorm(g, nm, t, st, ht, e);
    snprintf(nm, sizeof nm, "%s/out", name);
    if (t >= 0 && prelu) t = nn_add_prelu(g, nm, t, alpha, e);
    *y = t;
    return *y < 0 ? MIEN_EFORMAT : MIEN_OK;
}

int nn_ckpt_build_arch(const nn_ckpt *ck, nn_graph **out, mien_err *e) {
    *out = NULL;
    const char *an = nn_ckpt_meta(ck, "arch"), *eps = nn_ckpt_meta(ck, "bn_eps");
    nn_arch arch;
    if (!an || !nn_arch_from_name(an, &arch))
        return mien_err_set(e, MIEN_EFORMAT, "checkpoint: unknown architecture '%s'", an ? an : "");
    infer_b b = {.ck = ck, .eps = eps ? strtof(eps, NULL) : 1e-5f};
    if (!(b.eps > 0)) b.eps = 1e-5f;
    nn_graph *g = nn_graph_new(an);
    if (!g) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int y;
    int rc = nn_arch_build(g, arch, 1, infer_unit, &b, &y, e);
    if (!rc && nn_mark_output(g, y, e)) rc = MIEN_EFORMAT;
    if (!rc) rc = nn_graph_optimize(g, e);
    if (rc) {
        nn_graph_free(g);
        return rc;
    }
    *out = g;
    return MIEN_OK;
}
