/* The training graph of the built-in architectures (their table and topology are in
 * nn/ckpt_arch.c, which also builds their inference graph from a checkpoint): every unit a
 * conv without bias -> BATCHNORM_TRAIN with PReLU fused, parameters owned by the trainer;
 * their export to a checkpoint; MobileFaceNet's pretrained TFJS weights by name. */
#include "train/train.h"

#include "core/err.h"
#include "nn/tfjs.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== The training builder ==== */

typedef struct arch_b {
    nn_graph *g;
    const nn_ckpt *src;   /* initial weights (NULL or missing names: random init) */
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
    const nn_ckpt_tensor *t = b->src ? nn_ckpt_find(b->src, name) : NULL;
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

/* conv (k x k, stride, SAME or VALID) -> batch norm -> PReLU (or linear). */
static int unit(arch_b *b, const char *name, int x, nn_arch_unit_kind kind, int k, int cout,
                int stride, int valid, int prelu) {
    if (b->rc || x < 0) return fail(b, b->rc ? b->rc : MIEN_EINTERNAL);
    const nn_tensor *tx = &b->g->t[x];
    const int64_t cin = tx->dims[3];
    if (kind == NN_ARCH_DW) cout = (int)cin;
    int64_t wd[4] = {k, k, kind == NN_ARCH_DW ? cin : cin, kind == NN_ARCH_DW ? 1 : cout};
    char nm[256], nm2[256];
    nn_conv_params cp;
    nn_conv_params_default(&cp);
    cp.stride[0] = cp.stride[1] = stride;
    cp.padding = valid ? NN_PAD_VALID : NN_PAD_SAME;

    snprintf(nm, sizeof nm, "%s/conv", name);
    int w = param(b, nm, 4, wd, kind == NN_ARCH_DW ? (int64_t)k * k : (int64_t)k * k * cin, INIT_HE,
                  NULL, 1, 1);
    if (w < 0) return -1;
    snprintf(nm, sizeof nm, "%s/conv_out", name);
    int y = kind == NN_ARCH_DW ? nn_add_dwconv2d(b->g, nm, x, w, -1, -1, &cp, b->e)
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

/* nn_arch_build's unit maker for training graphs. */
static int train_unit(void *ctx, nn_graph *g, const nn_arch_unit *u, int x, int *y, mien_err *e) {
    arch_b *b = ctx;
    *y = unit(b, u->name, x, u->kind, u->k, u->cout, u->stride, u->valid, u->prelu);
    return *y < 0 ? (b->rc ? b->rc : MIEN_EINTERNAL) : MIEN_OK;
}

static void arch_b_free(arch_b *b) {
    free(b->params);
    free(b->decay);
    for (int i = 0; i < b->n_bn; i++) free(b->bn_names[i]);
    free(b->bn_names);
}

int tr_build_train(const tr_build_opts *o, tr_net **out, mien_err *e) {
    *out = NULL;
    arch_b b = {.src = o->init, .seed = o->seed, .eps = o->bn_eps > 0 ? o->bn_eps : 1e-5f, .e = e};
    b.g = nn_graph_new(nn_arch_name(o->arch));
    if (!b.g) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int y = -1, brc = nn_arch_build(b.g, o->arch, o->batch, train_unit, &b, &y, e);
    if (brc) fail(&b, brc);
    if (!b.rc && o->normalize) {
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
            const nn_ckpt_tensor *t = nn_ckpt_find(o->init, nm);
            if (t && t->n == bn->c) memcpy(bn->run_mean, t->data, (size_t)bn->c * sizeof(float));
            snprintf(nm, sizeof nm, "%s/running_var", b.bn_names[i]);
            t = nn_ckpt_find(o->init, nm);
            if (t && t->n == bn->c) memcpy(bn->run_var, t->data, (size_t)bn->c * sizeof(float));
        }
    }
    arch_b_free(&b);
    return rc;
}

/* ==== Export ==== */

int tr_export(const tr_net *net, nn_arch arch, nn_ckpt *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    int rc = MIEN_OK;
    for (int i = 0; i < net->n_p && !rc; i++) {
        const nn_tensor *t = &net->g->t[net->p[i].t];
        rc = nn_ckpt_add(out, t->name, t->ndim, t->dims, net->p[i].w, e);
    }
    char nm[300];
    for (int i = 0; i < net->n_bn && !rc; i++) {
        const tr_bn *bn = &net->bn[i];
        const char *name = net->g->t[net->g->nodes[bn->node].out].name;
        int64_t d[1] = {bn->c};
        snprintf(nm, sizeof nm, "%s/running_mean", name);
        rc = nn_ckpt_add(out, nm, 1, d, bn->run_mean, e);
        snprintf(nm, sizeof nm, "%s/running_var", name);
        if (!rc) rc = nn_ckpt_add(out, nm, 1, d, bn->run_var, e);
    }
    char v[64];
    if (!rc) rc = nn_ckpt_set_meta(out, "arch", nn_arch_name(arch), e);
    snprintf(v, sizeof v, "%d", nn_arch_input(arch));
    if (!rc) rc = nn_ckpt_set_meta(out, "input", v, e);
    snprintf(v, sizeof v, "%d", nn_arch_dim(arch));
    if (!rc) rc = nn_ckpt_set_meta(out, "dim", v, e);
    if (!rc) rc = nn_ckpt_set_meta(out, "mean", "127.5", e);
    if (!rc) rc = nn_ckpt_set_meta(out, "scale", "0.0078125", e);
    if (!rc) rc = nn_ckpt_set_meta(out, "crop", "arcface", e);
    for (int i = 0; i < net->g->n_nodes && !rc; i++)
        if (net->g->nodes[i].op == NN_OP_BATCHNORM_TRAIN) {
            snprintf(v, sizeof v, "%g", (double)net->g->nodes[i].eps);
            rc = nn_ckpt_set_meta(out, "bn_eps", v, e);
            break;
        }
    if (rc) nn_ckpt_free(out);
    return rc;
}

/* ==== MobileFaceNet's TFJS weights ==== */

int tr_load_tfjs_mobilefacenet(const char *model_json, nn_ckpt *out, mien_err *e) {
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
            rc = nn_ckpt_add(out, nm, wt->ndim, wt->dims, d, e);
            free(d);
            break;
        }
    }
    nn_weights_free(&w);
    if (!rc && out->n == 0) rc = mien_err_set(e, MIEN_EFORMAT, "%s: no MobileFaceNet weights", model_json);
    if (rc) nn_ckpt_free(out);
    return rc;
}
