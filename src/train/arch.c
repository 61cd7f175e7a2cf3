/* The trainable architectures, written once and built two ways: as a training graph (conv
 * without bias -> BATCHNORM_TRAIN with PReLU fused, parameters owned by the trainer) and as an
 * inference graph from a checkpoint (batch norm folded into the conv weights and bias, PReLU
 * fused: what the fast backend runs). */
#include "train/train.h"

#include "core/err.h"
#include "nn/tfjs.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Architecture table ==== */

static const struct {
    tr_arch arch;
    const char *name;
    int input, dim;
} arch_info[] = {
    {TR_ARCH_MOBILEFACENET, "mobilefacenet", 112, 192},
    {TR_ARCH_SMALL, "small", 112, 128},
};

int tr_arch_input(tr_arch a) { return arch_info[a].input; }
int tr_arch_dim(tr_arch a) { return arch_info[a].dim; }
const char *tr_arch_name(tr_arch a) { return arch_info[a].name; }

int tr_arch_from_name(const char *name, tr_arch *a) {
    for (size_t i = 0; i < sizeof arch_info / sizeof arch_info[0]; i++)
        if (!strcmp(name, arch_info[i].name)) {
            *a = arch_info[i].arch;
            return 1;
        }
    return 0;
}

/* ==== The builder both modes share ==== */

typedef struct arch_b {
    nn_graph *g;
    int infer;               /* 0: training graph, 1: inference graph */
    const tr_tensors *src;   /* initial weights (training) or the checkpoint (inference) */
    uint64_t seed;
    int counter;             /* random init stream */
    float eps;
    int *params, *decay, n_params, cap;
    char **bn_names;         /* training: the BN units, to restore running statistics */
    int n_bn, cap_bn;
    mien_err *e;
    int rc;
} arch_b;

static int fail(arch_b *b, int rc) {
    if (!b->rc) b->rc = rc;
    return -1;
}

static int push_param(arch_b *b, int t, int decay) {
    if (b->n_params == b->cap) {
        int nc = b->cap ? 2 * b->cap : 64;
        int *np = realloc(b->params, (size_t)nc * sizeof *np);
        if (!np) return 0;
        b->params = np;
        int *nd = realloc(b->decay, (size_t)nc * sizeof *nd);
        if (!nd) return 0;
        b->decay = nd;
        b->cap = nc;
    }
    b->params[b->n_params] = t;
    b->decay[b->n_params++] = decay;
    return 1;
}

/* The source tensor called name if it has n values; else NULL. */
static const float *src_data(const arch_b *b, const char *name, int64_t n) {
    const tr_tensor *t = b->src ? tr_tensors_find(b->src, name) : NULL;
    return t && t->n == n ? t->data : NULL;
}

typedef enum init_kind { INIT_HE, INIT_ONE, INIT_ZERO, INIT_PRELU } init_kind;

/* A trainable tensor: from the source when it has one of that name and size, else init. */
static int param(arch_b *b, const char *name, int ndim, const int64_t *dims, int64_t fan_in,
                 init_kind init, const char *fallback, float fallback_mul, int decay) {
    if (b->rc) return -1;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    float *d = malloc((size_t)n * sizeof *d);
    if (!d || !nn_graph_own(b->g, d)) return fail(b, mien_err_set(b->e, MIEN_ENOMEM, "out of memory"));
    const float *s = src_data(b, name, n);
    const float *fb = !s && fallback ? src_data(b, fallback, n) : NULL;
    int stream = b->counter++;
    for (int64_t i = 0; i < n; i++) {
        if (s) d[i] = s[i];
        else if (fb) d[i] = fb[i] * fallback_mul;
        else if (init == INIT_HE)
            d[i] = (float)(sqrt(2.0 / (double)fan_in) * tr_normal(b->seed, (uint64_t)stream, (uint64_t)i));
        else d[i] = init == INIT_ONE ? 1.f : init == INIT_PRELU ? 0.25f : 0.f;
    }
    int t = nn_add_const_ref(b->g, name, ndim, dims, d, b->e);
    if (t < 0) return fail(b, MIEN_EFORMAT);
    if (!push_param(b, t, decay)) return fail(b, mien_err_set(b->e, MIEN_ENOMEM, "out of memory"));
    return t;
}

/* A constant from the checkpoint (inference mode); fails when missing. */
static const float *need(arch_b *b, const char *name, int64_t n) {
    const float *d = src_data(b, name, n);
    if (!d && !b->rc)
        fail(b, mien_err_set(b->e, MIEN_EFORMAT, "checkpoint lacks tensor %s (%lld values)", name,
                             (long long)n));
    return d;
}

typedef enum unit_kind { U_CONV, U_DW } unit_kind;

/* conv (k x k, stride, SAME or VALID) -> batch norm -> PReLU (or linear). */
static int unit(arch_b *b, const char *name, int x, unit_kind kind, int k, int cout, int stride,
                int valid, int prelu) {
    if (b->rc || x < 0) return fail(b, b->rc ? b->rc : MIEN_EINTERNAL);
    const nn_tensor *tx = &b->g->t[x];
    const int64_t cin = tx->dims[3];
    if (kind == U_DW) cout = (int)cin;
    int64_t wd[4] = {k, k, kind == U_DW ? cin : cin, kind == U_DW ? 1 : cout};
    const int64_t wn = wd[0] * wd[1] * wd[2] * wd[3];
    char nm[256], nm2[256];
    nn_conv_params cp;
    nn_conv_params_default(&cp);
    cp.stride[0] = cp.stride[1] = stride;
    cp.padding = valid ? NN_PAD_VALID : NN_PAD_SAME;

    if (!b->infer) {
        snprintf(nm, sizeof nm, "%s/conv", name);
        int w = param(b, nm, 4, wd, kind == U_DW ? (int64_t)k * k : (int64_t)k * k * cin, INIT_HE,
                      NULL, 1, 1);
        if (w < 0) return -1;
        snprintf(nm, sizeof nm, "%s/conv_out", name);
        int y = kind == U_DW ? nn_add_dwconv2d(b->g, nm, x, w, -1, -1, &cp, b->e)
                             : nn_add_conv2d(b->g, nm, x, w, -1, -1, &cp, b->e);
        if (y < 0) return fail(b, MIEN_EFORMAT);
        int64_t cd[1] = {cout};
        snprintf(nm, sizeof nm, "%s/bn/gamma", name);
        int gm = param(b, nm, 1, cd, 0, INIT_ONE, NULL, 1, 0);
        snprintf(nm, sizeof nm, "%s/bn/beta", name);
        snprintf(nm2, sizeof nm2, "%s/bias", name);
        int bt = param(b, nm, 1, cd, 0, INIT_ZERO, nm2, 1, 0);
        if (gm < 0 || bt < 0) return -1;
        int al = -1;
        if (prelu) {
            snprintf(nm, sizeof nm, "%s/prelu", name);
            if ((al = param(b, nm, 1, cd, 0, INIT_PRELU, NULL, 1, 0)) < 0) return -1;
        }
        /* PReLU fused into the batch norm: one pass, no stored pre-activation. */
        snprintf(nm, sizeof nm, "%s/bn", name);
        y = nn_add_batchnorm_train(b->g, nm, y, gm, bt, al, prelu ? NN_ACT_PRELU : NN_ACT_NONE,
                                   b->eps, b->e);
        if (y < 0) return fail(b, MIEN_EFORMAT);
        if (b->n_bn == b->cap_bn) {
            int nc = b->cap_bn ? 2 * b->cap_bn : 64;
            char **nb = realloc(b->bn_names, (size_t)nc * sizeof *nb);
            if (!nb) return fail(b, mien_err_set(b->e, MIEN_ENOMEM, "out of memory"));
            b->bn_names = nb;
            b->cap_bn = nc;
        }
        if (!(b->bn_names[b->n_bn++] = strdup(nm)))
            return fail(b, mien_err_set(b->e, MIEN_ENOMEM, "out of memory"));
        return y;
    }

    /* Inference: fold y = (conv - mean) / sqrt(var + eps) * gamma + beta into the conv. */
    const float *w, *gm, *bt, *rm, *rv, *al = NULL;
    snprintf(nm, sizeof nm, "%s/conv", name);
    w = need(b, nm, wn);
    snprintf(nm, sizeof nm, "%s/bn/gamma", name);
    gm = need(b, nm, cout);
    snprintf(nm, sizeof nm, "%s/bn/beta", name);
    bt = need(b, nm, cout);
    snprintf(nm, sizeof nm, "%s/bn/running_mean", name);
    rm = need(b, nm, cout);
    snprintf(nm, sizeof nm, "%s/bn/running_var", name);
    rv = need(b, nm, cout);
    if (prelu) {
        snprintf(nm, sizeof nm, "%s/prelu", name);
        al = need(b, nm, cout);
    }
    if (b->rc) return -1;
    float *fw = malloc((size_t)wn * sizeof *fw);
    if (!fw || !nn_graph_own(b->g, fw)) return fail(b, mien_err_set(b->e, MIEN_ENOMEM, "out of memory"));
    float *fb = malloc((size_t)cout * sizeof *fb);
    if (!fb || !nn_graph_own(b->g, fb)) return fail(b, mien_err_set(b->e, MIEN_ENOMEM, "out of memory"));
    for (int c = 0; c < cout; c++) {
        float sc = gm[c] / sqrtf(rv[c] + b->eps);
        fb[c] = bt[c] - rm[c] * sc;
    }
    for (int64_t i = 0; i < wn; i++) {
        int c = (int)(i % cout); /* HWIO and [KH,KW,C,1]: the output channel is the fastest */
        fw[i] = w[i] * (gm[c] / sqrtf(rv[c] + b->eps));
    }
    snprintf(nm, sizeof nm, "%s/conv", name);
    int wt = nn_add_const_ref(b->g, nm, 4, wd, fw, b->e);
    int64_t cd[1] = {cout};
    snprintf(nm, sizeof nm, "%s/bias", name);
    int bias = nn_add_const_ref(b->g, nm, 1, cd, fb, b->e);
    int alpha = -1;
    if (prelu) {
        snprintf(nm, sizeof nm, "%s/prelu", name);
        alpha = nn_add_const(b->g, nm, 1, cd, al, b->e);
        cp.act = NN_ACT_PRELU;
    }
    if (wt < 0 || bias < 0 || (prelu && alpha < 0)) return fail(b, MIEN_EFORMAT);
    snprintf(nm, sizeof nm, "%s/out", name);
    int y = kind == U_DW ? nn_add_dwconv2d(b->g, nm, x, wt, bias, alpha, &cp, b->e)
                         : nn_add_conv2d(b->g, nm, x, wt, bias, alpha, &cp, b->e);
    return y < 0 ? fail(b, MIEN_EFORMAT) : y;
}

static int add(arch_b *b, const char *name, int x, int y) {
    if (b->rc || x < 0 || y < 0) return fail(b, b->rc ? b->rc : MIEN_EINTERNAL);
    int t = nn_add_binary(b->g, NN_OP_ADD, name, x, y, b->e);
    return t < 0 ? fail(b, MIEN_EFORMAT) : t;
}

/* MobileFaceNet (Chen et al. 2018) as in sirius-ai's TF port that human ships: unit names are
 * the TF scopes, so the pretrained weights map by name. Bottlenecks: 1x1 expand (PReLU),
 * 3x3 depthwise (PReLU), 1x1 project (linear), residual where the shape allows. */
static int build_mobilefacenet(arch_b *b, int x) {
    x = unit(b, "Conv2d_0", x, U_CONV, 3, 64, 2, 0, 1);
    x = unit(b, "SeparableConv2d", x, U_DW, 3, 0, 1, 0, 1);
    x = unit(b, "Conv", x, U_CONV, 1, 64, 1, 0, 0);
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
            int y = unit(b, nm, x, U_CONV, 1, st[s].expand, 1, 0, 1);
            snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/SeparableConv2d", st[s].stage, i);
            y = unit(b, nm, y, U_DW, 3, 0, stride, 0, 1);
            snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/Conv_1", st[s].stage, i);
            y = unit(b, nm, y, U_CONV, 1, st[s].out, 1, 0, 0);
            if (stride == 1 && !b->rc && b->g->t[in].dims[3] == st[s].out) {
                snprintf(nm, sizeof nm, "Conv2d_%d_InvResBlock_%d/Add", st[s].stage, i);
                y = add(b, nm, y, in);
            }
            x = y;
        }
    x = unit(b, "Conv2d_7", x, U_CONV, 1, 512, 1, 0, 1);
    x = unit(b, "Logits/SeparableConv2d", x, U_DW, 7, 0, 1, 1, 0); /* global depthwise */
    x = unit(b, "Logits/Conv", x, U_CONV, 1, 512, 1, 0, 0);
    x = unit(b, "Logits/LinearConv1x1", x, U_CONV, 1, 192, 1, 0, 0);
    return x;
}

/* A small network for training from scratch in minutes: 112 -> 56 -> 28 (one residual
 * bottleneck) -> 14 -> 7, a global depthwise conv and a 128-d linear embedding. About 22 M
 * multiply-adds, a tenth of MobileFaceNet. */
static int build_small(arch_b *b, int x) {
    x = unit(b, "stem", x, U_CONV, 3, 32, 2, 0, 1);
    x = unit(b, "dw1", x, U_DW, 3, 0, 2, 0, 1);
    x = unit(b, "pw1", x, U_CONV, 1, 64, 1, 0, 1);
    int y = unit(b, "res1/expand", x, U_CONV, 1, 128, 1, 0, 1);
    y = unit(b, "res1/dw", y, U_DW, 3, 0, 1, 0, 1);
    y = unit(b, "res1/project", y, U_CONV, 1, 64, 1, 0, 0);
    x = add(b, "res1/add", y, x);
    x = unit(b, "dw2", x, U_DW, 3, 0, 2, 0, 1);
    x = unit(b, "pw2", x, U_CONV, 1, 128, 1, 0, 1);
    x = unit(b, "dw3", x, U_DW, 3, 0, 2, 0, 1);
    x = unit(b, "pw3", x, U_CONV, 1, 256, 1, 0, 1);
    x = unit(b, "gdc", x, U_DW, 7, 0, 1, 1, 0);
    x = unit(b, "embed", x, U_CONV, 1, 128, 1, 0, 0);
    return x;
}

static int build_arch(arch_b *b, tr_arch arch, int batch) {
    const int S = tr_arch_input(arch);
    int64_t dims[4] = {batch, S, S, 3};
    int x = nn_add_input(b->g, "input", 4, dims, b->e);
    if (x < 0) return fail(b, MIEN_EFORMAT);
    int y = arch == TR_ARCH_SMALL ? build_small(b, x) : build_mobilefacenet(b, x);
    if (b->rc) return -1;
    int64_t od[2] = {batch, tr_arch_dim(arch)};
    y = nn_add_reshape(b->g, "embedding", y, 2, od, b->e);
    return y < 0 ? fail(b, MIEN_EFORMAT) : y;
}

static void arch_b_free(arch_b *b) {
    free(b->params);
    free(b->decay);
    for (int i = 0; i < b->n_bn; i++) free(b->bn_names[i]);
    free(b->bn_names);
}

int tr_build_train(const tr_build_opts *o, tr_net **out, mien_err *e) {
    *out = NULL;
    arch_b b = {.infer = 0, .src = o->init, .seed = o->seed, .eps = o->bn_eps > 0 ? o->bn_eps : 1e-5f, .e = e};
    b.g = nn_graph_new(tr_arch_name(o->arch));
    if (!b.g) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int y = build_arch(&b, o->arch, o->batch);
    if (y >= 0 && o->normalize) {
        y = nn_add_l2norm(b.g, "embedding_norm", y, 1e-10f, e);
        if (y < 0) fail(&b, MIEN_EFORMAT);
    }
    if (!b.rc && nn_mark_output(b.g, y, e)) fail(&b, MIEN_EFORMAT);
    if (b.rc) {
        nn_graph_free(b.g);
        arch_b_free(&b);
        return b.rc;
    }
    tr_net_opts no = {.threads = o->threads, .reference = o->reference};
    int rc = tr_net_create(b.g, b.params, b.decay, b.n_params, &no, out, e);
    if (!rc && o->init) {
        /* Restore running statistics saved with the weights. */
        char nm[300];
        for (int i = 0; i < b.n_bn; i++) {
            tr_bn *bn = tr_find_bn(*out, b.bn_names[i]);
            if (!bn) continue;
            snprintf(nm, sizeof nm, "%s/running_mean", b.bn_names[i]);
            const tr_tensor *t = tr_tensors_find(o->init, nm);
            if (t && t->n == bn->c) memcpy(bn->run_mean, t->data, (size_t)bn->c * sizeof(float));
            snprintf(nm, sizeof nm, "%s/running_var", b.bn_names[i]);
            t = tr_tensors_find(o->init, nm);
            if (t && t->n == bn->c) memcpy(bn->run_var, t->data, (size_t)bn->c * sizeof(float));
        }
    }
    arch_b_free(&b);
    return rc;
}

int tr_build_inference(const tr_tensors *ck, nn_graph **out, mien_err *e) {
    *out = NULL;
    const char *an = tr_tensors_meta(ck, "arch"), *eps = tr_tensors_meta(ck, "bn_eps");
    tr_arch arch;
    if (!an || !tr_arch_from_name(an, &arch))
        return mien_err_set(e, MIEN_EFORMAT, "checkpoint: unknown architecture '%s'", an ? an : "");
    arch_b b = {.infer = 1, .src = ck, .eps = eps ? strtof(eps, NULL) : 1e-5f, .e = e};
    if (!(b.eps > 0)) b.eps = 1e-5f;
    b.g = nn_graph_new(an);
    if (!b.g) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int y = build_arch(&b, arch, 1);
    if (!b.rc && nn_mark_output(b.g, y, e)) fail(&b, MIEN_EFORMAT);
    arch_b_free(&b);
    if (b.rc) {
        nn_graph_free(b.g);
        return b.rc;
    }
    *out = b.g;
    return MIEN_OK;
}

/* ==== Export ==== */

int tr_export(const tr_net *net, tr_arch arch, tr_tensors *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    int rc = MIEN_OK;
    for (int i = 0; i < net->n_p && !rc; i++) {
        const nn_tensor *t = &net->g->t[net->p[i].t];
        rc = tr_tensors_add(out, t->name, t->ndim, t->dims, net->p[i].w, e);
    }
    char nm[300];
    for (int i = 0; i < net->n_bn && !rc; i++) {
        const tr_bn *bn = &net->bn[i];
        const char *name = net->g->t[net->g->nodes[bn->node].out].name;
        int64_t d[1] = {bn->c};
        snprintf(nm, sizeof nm, "%s/running_mean", name);
        rc = tr_tensors_add(out, nm, 1, d, bn->run_mean, e);
        snprintf(nm, sizeof nm, "%s/running_var", name);
        if (!rc) rc = tr_tensors_add(out, nm, 1, d, bn->run_var, e);
    }
    char v[64];
    if (!rc) rc = tr_tensors_set_meta(out, "arch", tr_arch_name(arch), e);
    snprintf(v, sizeof v, "%d", tr_arch_input(arch));
    if (!rc) rc = tr_tensors_set_meta(out, "input", v, e);
    snprintf(v, sizeof v, "%d", tr_arch_dim(arch));
    if (!rc) rc = tr_tensors_set_meta(out, "dim", v, e);
    if (!rc) rc = tr_tensors_set_meta(out, "mean", "127.5", e);
    if (!rc) rc = tr_tensors_set_meta(out, "scale", "0.0078125", e);
    if (!rc) rc = tr_tensors_set_meta(out, "crop", "arcface", e);
    for (int i = 0; i < net->g->n_nodes && !rc; i++)
        if (net->g->nodes[i].op == NN_OP_BATCHNORM_TRAIN) {
            snprintf(v, sizeof v, "%g", (double)net->g->nodes[i].eps);
            rc = tr_tensors_set_meta(out, "bn_eps", v, e);
            break;
        }
    if (rc) tr_tensors_free(out);
    return rc;
}

/* ==== MobileFaceNet's TFJS weights ==== */

int tr_load_tfjs_mobilefacenet(const char *model_json, tr_tensors *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    unsigned char *text;
    size_t len;
    int rc = mien_read_file(model_json, 64u << 20, &text, &len, e);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength((const char *)text, len);
    free(text);
    if (!root) return mien_err_set(e, MIEN_EFORMAT, "%s: not valid JSON", model_json);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", model_json);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    nn_weights w;
    rc = nn_weights_load_manifest(cJSON_GetObjectItemCaseSensitive(root, "weightsManifest"), dir,
                                  &w, e);
    cJSON_Delete(root);
    if (rc) return mien_err_prefix(e, "%s", model_json);
    static const struct { const char *suffix, *to; float mul; } map[] = {
        {"/Conv2D_weights", "/conv", 1.f},
        {"/depthwise_weights", "/conv", 1.f},
        {"/Conv2D_bn_offset", "/bias", 1.f},
        {"/depthwise_bn_offset", "/bias", 1.f},
        /* TF's PReLU pattern relu(x) + alpha (x - |x|) / 2 was folded to a constant alpha / 2. */
        {"/mul", "/prelu", 2.f},
    };
    for (int i = 0; i < w.n && !rc; i++) {
        const nn_weight *wt = &w.w[i];
        if (!wt->f) continue;
        const char *n = wt->name;
        if (!strncmp(n, "MobileFaceNet/MobileFaceNet/", 28)) n += 28;
        else if (!strncmp(n, "MobileFaceNet/", 14)) n += 14;
        else continue;
        size_t nl = strlen(n);
        for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
            size_t sl = strlen(map[k].suffix);
            if (nl <= sl || strcmp(n + nl - sl, map[k].suffix)) continue;
            char nm[256];
            snprintf(nm, sizeof nm, "%.*s%s", (int)(nl - sl), n, map[k].to);
            float *d = malloc((size_t)wt->n * sizeof *d);
            if (!d) {
                rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
                break;
            }
            for (int64_t j = 0; j < wt->n; j++) d[j] = wt->f[j] * map[k].mul;
            rc = tr_tensors_add(out, nm, wt->ndim, wt->dims, d, e);
            free(d);
            break;
        }
    }
    nn_weights_free(&w);
    if (!rc && out->n == 0) rc = mien_err_set(e, MIEN_EFORMAT, "%s: no MobileFaceNet weights", model_json);
    if (rc) tr_tensors_free(out);
    return rc;
}
