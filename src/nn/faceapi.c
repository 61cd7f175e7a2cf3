/* face-api's architectures coded on the graph IR (see faceapi.h). Read top to bottom, each
 * net is a list of straight calls mirroring face-api's forwardInput(); where face-api applies
 * a per-channel affine after a convolution (a "scale" layer, an inference batch norm) it is a
 * BATCHNORM node, which nn_graph_optimize folds into the convolution's weights and bias (as
 * for every loader), changing results only by float rounding (about 1e-7 relative per layer). */
#include "nn/faceapi.h"

#include "nn/tfjs.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== Builder ====
 * Every helper takes tensor ids and returns a tensor id, or -1 once anything failed: a -1
 * input makes the helper return -1 at once, so a net is written as a straight list of calls
 * and checked once at the end, with the first failure's message kept in e. */

typedef struct fb {
    nn_graph *g;
    nn_weights w;            /* the manifest's weights, dequantized */
    mien_err *e;
    int n_names;             /* counter for synthesised tensor names */
} fb;

/* A unique tensor name: prefix/what#n. The graph copies names, so a few rotating buffers are
 * enough for the nested calls of one expression. */
static const char *nm(fb *b, const char *prefix, const char *what) {
    static _Thread_local char bufs[8][256];
    char tmp[256]; /* prefix may itself be one of the buffers */
    snprintf(tmp, sizeof tmp, "%s/%s#%d", prefix, what, b->n_names);
    char *buf = bufs[b->n_names++ & 7];
    memcpy(buf, tmp, sizeof tmp);
    return buf;
}

/* The float weight called name, whose shape must be exactly dims (ndim of them). */
static const float *weight(fb *b, int ndim, const int64_t *dims, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const float *weight(fb *b, int ndim, const int64_t *dims, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const nn_weight *w = nn_weights_find(&b->w, name);
    if (!w) {
        mien_err_set(b->e, MIEN_EFORMAT, "weight %s missing", name);
        return NULL;
    }
    int ok = w->f && w->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = w->dims[i] == dims[i];
    if (!ok) {
        char want[128] = "", have[128] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "," : "",
                     (long long)dims[i]);
        for (int i = 0; i < w->ndim; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%lld", i ? "," : "",
                     (long long)w->dims[i]);
        mien_err_set(b->e, MIEN_EFORMAT, "weight %s: shape [%s]%s, expected float [%s]", name,
                     have, w->f ? "" : " int32", want);
        return NULL;
    }
    return w->f;
}

/* A constant copied into the graph. */
static int cst(fb *b, const char *name, int ndim, const int64_t *dims, const float *data) {
    if (!data) return -1;
    return nn_add_const(b->g, name, ndim, dims, data, b->e);
}

static int binary(fb *b, nn_op op, const char *name, int x, int y) {
    if (x < 0 || y < 0) return -1;
    return nn_add_binary(b->g, op, name, x, y, b->e);
}

static int unary(fb *b, nn_op op, const char *name, int x) {
    if (x < 0) return -1;
    return nn_add_unary(b->g, op, name, x, b->e);
}

/* Per-channel constant of the last axis, e.g. the mean of each colour. */
static int channel_const(fb *b, const char *name, int n, const float *v) {
    int64_t d[1] = {n};
    return cst(b, name, 1, d, v);
}

/* x op scalar. */
static int scalar_op(fb *b, nn_op op, const char *name, int x, float v) {
    if (x < 0) return -1;
    int c = channel_const(b, nm(b, name, "value"), 1, &v);
    return binary(b, op, name, x, c);
}

/* Convolution with HWIO weights w (KH,KW,CI,CO) and bias (CO), both given as data (copied). */
static int conv(fb *b, const char *name, int x, const float *w, const float *bias, int k,
                int ci, int co, int stride, nn_padding padding, nn_act act) {
    if (x < 0 || !w || !bias) return -1;
    int64_t wd[4] = {k, k, ci, co}, bd[1] = {co};
    int tw = cst(b, nm(b, name, "filters"), 4, wd, w);
    int tb = cst(b, nm(b, name, "bias"), 1, bd, bias);
    if (tw < 0 || tb < 0) return -1;
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.stride[0] = p.stride[1] = stride;
    p.padding = padding;
    p.act = act;
    p.act_min = 0;
    p.act_max = 6;
    return nn_add_conv2d(b->g, name, x, tw, tb, -1, &p, b->e);
}

/* Depthwise convolution, multiplier 1: w (KH,KW,C,1), bias (C) or NULL. */
static int dwconv(fb *b, const char *name, int x, const float *w, const float *bias, int k,
                  int c, int stride, nn_act act) {
    if (x < 0 || !w) return -1;
    int64_t wd[4] = {k, k, c, 1}, bd[1] = {c};
    int tw = cst(b, nm(b, name, "filters"), 4, wd, w);
    int tb = bias ? cst(b, nm(b, name, "bias"), 1, bd, bias) : -2;
    if (tw < 0 || tb == -1) return -1;
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.stride[0] = p.stride[1] = stride;
    p.padding = NN_PAD_SAME;
    p.act = act;
    p.act_min = 0;
    p.act_max = 6;
    return nn_add_dwconv2d(b->g, name, x, tw, bias ? tb : -1, -1, &p, b->e);
}

/* y = x * scale + shift per channel (c values each, copied): a BATCHNORM node. */
static int affine(fb *b, const char *name, int x, const float *scale, const float *shift, int c) {
    if (x < 0 || !scale || !shift) return -1;
    int64_t cd[1] = {c};
    int ts = cst(b, nm(b, name, "scale"), 1, cd, scale);
    int tt = ts < 0 ? -1 : cst(b, nm(b, name, "shift"), 1, cd, shift);
    if (tt < 0) return -1;
    return nn_add_batchnorm(b->g, nm(b, name, "bn"), x, ts, tt, b->e);
}

static int pool(fb *b, nn_op op, const char *name, int x, int k, int stride) {
    if (x < 0) return -1;
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.stride[0] = p.stride[1] = stride;
    p.padding = NN_PAD_VALID;
    int kernel[2] = {k, k};
    return nn_add_pool(b->g, op, name, x, kernel, &p, b->e);
}

/* Zero padding after the end of each NHWC axis. */
static int pad_after(fb *b, const char *name, int x, int h, int w, int c) {
    if (x < 0) return -1;
    int64_t pads[8] = {0, 0, 0, h, 0, w, 0, c};
    return nn_add_pad(b->g, name, x, pads, 0.0f, b->e);
}

static const nn_tensor *T(fb *b, int t) { return &b->g->t[t]; }

/* Shared ending of every loader: outputs, optimisation, hand-over. */
static int finish(fb *b, const char *path, const int *outs, int n_outs, nn_graph **out) {
    int rc = MIEN_OK;
    for (int i = 0; i < n_outs && !rc; i++) {
        if (outs[i] < 0) rc = b->e && b->e->status ? b->e->status : MIEN_EINTERNAL;
        else rc = nn_mark_output(b->g, outs[i], b->e);
    }
    if (!rc) rc = nn_graph_optimize(b->g, b->e);
    if (rc) {
        if (!b->e || !b->e->status) mien_err_set(b->e, MIEN_EINTERNAL, "building the graph failed");
        mien_err_prefix(b->e, "%s", path);
        nn_graph_free(b->g);
    } else {
        *out = b->g;
    }
    b->g = NULL;
    nn_weights_free(&b->w);
    return rc;
}

static int start(fb *b, const char *path, const char *graph_name, mien_err *e) {
    memset(b, 0, sizeof *b);
    b->e = e;
    if (e) mien_err_clear(e);
    int rc = nn_weights_load_file(path, &b->w, e);
    if (rc) return rc;
    b->g = nn_graph_new(graph_name);
    if (!b->g) {
        nn_weights_free(&b->w);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    return MIEN_OK;
}

/* face-api's input normalisation (x - mean_rgb) / 255, shared by the descriptor and the
 * landmark nets. */
static int normalize_rgb255(fb *b, int x) {
    static const float mean_rgb[3] = {122.782f, 117.001f, 104.298f};
    int m = channel_const(b, "mean_rgb", 3, mean_rgb);
    return scalar_op(b, NN_OP_DIV, "normalized", binary(b, NN_OP_SUB, "centered", x, m), 255.0f);
}

/* ==== Face descriptor: ResNet-29 ====
 * face-api's FaceRecognitionNet: a 7x7/2 convolution, a 3x3/2 max pool, then residual blocks
 * of two 3x3 convolutions at 32, 64, 128 and 256 channels, each stage opened by a
 * "residual-down" block, and a last down block; the mean over H,W goes through a 256x128
 * matrix. Every convolution is conv + bias followed by a per-channel scale layer
 * (y * weights + biases), folded here into the convolution. */

/* conv + bias, then the scale layer (y * s + t), then ReLU when relu. */
static int rec_conv(fb *b, int x, const char *prefix, int k, int stride, nn_padding padding,
                    int relu) {
    if (x < 0) return -1;
    int ci = (int)T(b, x)->dims[3], co = ci;
    /* The filter's own shape gives CO (down blocks double the channels). */
    char fname[256];
    snprintf(fname, sizeof fname, "%s/conv/filters", prefix);
    const nn_weight *fw = nn_weights_find(&b->w, fname);
    if (fw && fw->ndim == 4) co = (int)fw->dims[3];
    if (co <= 0 || co > 4096) {
        mien_err_set(b->e, MIEN_EFORMAT, "weight %s: bad shape", fname);
        return -1;
    }
    int64_t wd[4] = {k, k, ci, co}, cd[1] = {co};
    const float *w = weight(b, 4, wd, "%s/conv/filters", prefix);
    const float *bias = weight(b, 1, cd, "%s/conv/bias", prefix);
    const float *sw = weight(b, 1, cd, "%s/scale/weights", prefix);
    const float *sb = weight(b, 1, cd, "%s/scale/biases", prefix);
    if (!w || !bias || !sw || !sb) return -1;
    int y = conv(b, prefix, x, w, bias, k, ci, co, stride, padding, NN_ACT_NONE);
    y = affine(b, prefix, y, sw, sb, co);
    return relu ? unary(b, NN_OP_RELU, nm(b, prefix, "relu"), y) : y;
}

/* relu(conv2(conv1(x)) + x) */
static int rec_residual(fb *b, int x, const char *prefix) {
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/conv1", prefix);
    snprintf(p2, sizeof p2, "%s/conv2", prefix);
    int y = rec_conv(b, x, p1, 3, 1, NN_PAD_SAME, 1);
    y = rec_conv(b, y, p2, 3, 1, NN_PAD_SAME, 0);
    return unary(b, NN_OP_RELU, nm(b, prefix, "relu"), binary(b, NN_OP_ADD, nm(b, prefix, "add"), y, x));
}

/* The down block: conv1 is 3x3 stride 2 VALID; the shortcut is a 2x2/2 average pool of x,
 * zero-padded on the channel axis up to conv2's channels. Where the pooled map is larger
 * than conv2's (floor((n-3)/2)+1 < floor(n/2) for even n), conv2's output gets a zero row
 * and column appended at the bottom and right, as face-api does. */
static int rec_residual_down(fb *b, int x, const char *prefix) {
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/conv1", prefix);
    snprintf(p2, sizeof p2, "%s/conv2", prefix);
    int y = rec_conv(b, x, p1, 3, 2, NN_PAD_VALID, 1);
    y = rec_conv(b, y, p2, 3, 1, NN_PAD_SAME, 0);
    int pooled = pool(b, NN_OP_AVGPOOL, nm(b, prefix, "avgpool"), x, 2, 2);
    if (y < 0 || pooled < 0) return -1;
    int64_t dh = T(b, pooled)->dims[1] - T(b, y)->dims[1];
    int64_t dw = T(b, pooled)->dims[2] - T(b, y)->dims[2];
    int64_t dc = T(b, y)->dims[3] - T(b, pooled)->dims[3];
    if (dh < 0 || dh > 1 || dw < 0 || dw > 1 || dc < 0) {
        mien_err_set(b->e, MIEN_EFORMAT, "%s: shortcut and residual shapes do not fit", prefix);
        return -1;
    }
    if (dh || dw) y = pad_after(b, nm(b, prefix, "pad_hw"), y, (int)dh, (int)dw, 0);
    if (dc) pooled = pad_after(b, nm(b, prefix, "pad_c"), pooled, 0, 0, (int)dc);
    return unary(b, NN_OP_RELU, nm(b, prefix, "relu"),
                 binary(b, NN_OP_ADD, nm(b, prefix, "add"), pooled, y));
}

int nn_faceapi_recognition_load(const char *path, nn_graph **out, mien_err *e) {
    *out = NULL;
    fb b;
    int rc = start(&b, path, "faceapi/recognition", e);
    if (rc) return rc;
    int64_t in_dims[4] = {1, NN_FACEAPI_REC_SIZE, NN_FACEAPI_REC_SIZE, 3};
    int x = nn_add_input(b.g, "input", 4, in_dims, e);
    x = normalize_rgb255(&b, x);

    x = rec_conv(&b, x, "conv32_down", 7, 2, NN_PAD_VALID, 1);
    x = pool(&b, NN_OP_MAXPOOL, "maxpool", x, 3, 2);
    x = rec_residual(&b, x, "conv32_1");
    x = rec_residual(&b, x, "conv32_2");
    x = rec_residual(&b, x, "conv32_3");
    x = rec_residual_down(&b, x, "conv64_down");
    x = rec_residual(&b, x, "conv64_1");
    x = rec_residual(&b, x, "conv64_2");
    x = rec_residual(&b, x, "conv64_3");
    x = rec_residual_down(&b, x, "conv128_down");
    x = rec_residual(&b, x, "conv128_1");
    x = rec_residual(&b, x, "conv128_2");
    x = rec_residual_down(&b, x, "conv256_down");
    x = rec_residual(&b, x, "conv256_1");
    x = rec_residual(&b, x, "conv256_2");
    x = rec_residual_down(&b, x, "conv256_down_out");

    int avg = x < 0 ? -1 : nn_add_reduce(b.g, NN_OP_MEAN, "global_avg", x, 0x6u, 0, e);
    int64_t fcd[2] = {256, NN_FACEAPI_REC_DIM};
    int fcw = cst(&b, "fc", 2, fcd, weight(&b, 2, fcd, "fc"));
    int y = avg < 0 || fcw < 0 ? -1
                               : nn_add_fc(b.g, "descriptor", avg, fcw, -1, -1, NN_ACT_NONE, e);
    if (y >= 0 && (T(&b, y)->ndim != 2 || T(&b, y)->dims[1] != NN_FACEAPI_REC_DIM)) {
        mien_err_set(e, MIEN_EFORMAT, "descriptor has the wrong shape");
        y = -1;
    }
    return finish(&b, path, &y, 1, out);
}

/* ==== 68-point landmarks ====
 * face-api's FaceLandmark68Net / FaceLandmark68TinyNet: a feature extractor of "dense blocks"
 * (4 blocks of 4 convolutions, or 3 of 3 for the tiny net), each block halving the size with
 * its first convolution (a full 3x3 convolution in the first block, depthwise-separable ones
 * after) and summing the outputs of all its convolutions so far before each next one; then an
 * average pool over the whole 7x7 (14x14) map and a fully connected layer to 136 values. */

/* CO of the 4-D weight called name, or -1 (with a message) when it is missing or not 4-D. */
static int out_channels(fb *b, const char *name) {
    const nn_weight *w = nn_weights_find(&b->w, name);
    if (!w || w->ndim != 4 || w->dims[3] <= 0 || w->dims[3] > 4096) {
        mien_err_set(b->e, MIEN_EFORMAT, "weight %s %s", name, w ? "has a bad shape" : "missing");
        return -1;
    }
    return (int)w->dims[3];
}

/* tf.separableConv2d (3x3 depthwise, SAME, stride, then 1x1 pointwise) + bias. */
static int sep_conv(fb *b, int x, const char *prefix, int stride, nn_act act) {
    if (x < 0) return -1;
    char name[256];
    snprintf(name, sizeof name, "%s/pointwise_filter", prefix);
    int ci = (int)T(b, x)->dims[3], co = out_channels(b, name);
    if (co < 0) return -1;
    int64_t dwd[4] = {3, 3, ci, 1}, pwd[4] = {1, 1, ci, co}, bd[1] = {co};
    const float *dw = weight(b, 4, dwd, "%s/depthwise_filter", prefix);
    const float *pw = weight(b, 4, pwd, "%s", name);
    const float *bias = weight(b, 1, bd, "%s/bias", prefix);
    int y = dwconv(b, nm(b, prefix, "depthwise"), x, dw, NULL, 3, ci, stride, NN_ACT_NONE);
    return conv(b, prefix, y, pw, bias, 1, ci, co, 1, NN_PAD_SAME, act);
}

static int dense_block(fb *b, int x, const char *prefix, int n_convs, int first) {
    if (x < 0) return -1;
    char p[4][128];
    for (int i = 0; i < 4; i++) snprintf(p[i], sizeof p[i], "%s/conv%d", prefix, i);
    int out1;
    if (first) {
        char fname[160];
        snprintf(fname, sizeof fname, "%s/filters", p[0]);
        int ci = (int)T(b, x)->dims[3], co = out_channels(b, fname);
        if (co < 0) return -1;
        int64_t wd[4] = {3, 3, ci, co}, bd[1] = {co};
        out1 = conv(b, p[0], x, weight(b, 4, wd, "%s", fname), weight(b, 1, bd, "%s/bias", p[0]),
                    3, ci, co, 2, NN_PAD_SAME, NN_ACT_RELU);
    } else {
        out1 = sep_conv(b, x, p[0], 2, NN_ACT_RELU);
    }
    int out2 = sep_conv(b, out1, p[1], 1, NN_ACT_NONE);
    int in3 = unary(b, NN_OP_RELU, nm(b, prefix, "relu"),
                    binary(b, NN_OP_ADD, nm(b, prefix, "add"), out1, out2));
    int out3 = sep_conv(b, in3, p[2], 1, NN_ACT_NONE);
    /* Sums nest as face-api writes them: out1 + (out2 + (out3 [+ out4])). */
    int s23 = binary(b, NN_OP_ADD, nm(b, prefix, "add"), out2, out3);
    int in4 = unary(b, NN_OP_RELU, nm(b, prefix, "relu"),
                    binary(b, NN_OP_ADD, nm(b, prefix, "add"), out1, s23));
    if (n_convs == 3) return in4;
    int out4 = sep_conv(b, in4, p[3], 1, NN_ACT_NONE);
    int s34 = binary(b, NN_OP_ADD, nm(b, prefix, "add"), out3, out4);
    int s234 = binary(b, NN_OP_ADD, nm(b, prefix, "add"), out2, s34);
    return unary(b, NN_OP_RELU, nm(b, prefix, "relu"),
                 binary(b, NN_OP_ADD, nm(b, prefix, "add"), out1, s234));
}

int nn_faceapi_landmarks68_load(const char *path, int tiny, nn_graph **out, mien_err *e) {
    *out = NULL;
    fb b;
    int rc = start(&b, path, tiny ? "faceapi/landmarks68_tiny" : "faceapi/landmarks68", e);
    if (rc) return rc;
    int64_t in_dims[4] = {1, NN_FACEAPI_LM_SIZE, NN_FACEAPI_LM_SIZE, 3};
    int x = nn_add_input(b.g, "input", 4, in_dims, e);
    x = normalize_rgb255(&b, x);
    int n_blocks = tiny ? 3 : 4, n_convs = tiny ? 3 : 4;
    for (int i = 0; i < n_blocks; i++) {
        char prefix[24];
        snprintf(prefix, sizeof prefix, "dense%d", i);
        x = dense_block(&b, x, prefix, n_convs, i == 0);
    }
    /* avgPool 7x7 (14x14 tiny) stride 2 VALID over a 7x7 (14x14) map: the mean over H, W. */
    int y = -1;
    if (x >= 0 && T(&b, x)->dims[1] == (tiny ? 14 : 7) && T(&b, x)->dims[2] == (tiny ? 14 : 7)) {
        int feat = nn_add_reduce(b.g, NN_OP_MEAN, "avgpool", x, 0x6u, 0, e);
        int c = feat < 0 ? 0 : (int)T(&b, feat)->dims[1];
        int64_t wd[2] = {c, 136}, bd[1] = {136};
        int w = cst(&b, "fc/weights", 2, wd, weight(&b, 2, wd, "fc/weights"));
        int bias = cst(&b, "fc/bias", 1, bd, weight(&b, 1, bd, "fc/bias"));
        if (feat >= 0 && w >= 0 && bias >= 0)
            y = nn_add_fc(b.g, "landmarks", feat, w, bias, -1, NN_ACT_NONE, e);
    } else if (x >= 0) {
        mien_err_set(e, MIEN_EFORMAT, "feature map has the wrong size");
    }
    return finish(&b, path, &y, 1, out);
}

/* ==== Expression (FaceExpressionNet) ====
 * The 68-point net's feature extractor (4 dense blocks, mean over the 7x7 map), then a fully
 * connected layer 256 -> 7 and a softmax. */
int nn_faceapi_expression_load(const char *path, nn_graph **out, mien_err *e) {
    *out = NULL;
    fb b;
    int rc = start(&b, path, "faceapi/expression", e);
    if (rc) return rc;
    int64_t in_dims[4] = {1, NN_FACEAPI_LM_SIZE, NN_FACEAPI_LM_SIZE, 3};
    int x = nn_add_input(b.g, "input", 4, in_dims, e);
    x = normalize_rgb255(&b, x);
    for (int i = 0; i < 4; i++) {
        char prefix[24];
        snprintf(prefix, sizeof prefix, "dense%d", i);
        x = dense_block(&b, x, prefix, 4, i == 0);
    }
    int y = -1;
    if (x >= 0 && T(&b, x)->dims[1] == 7 && T(&b, x)->dims[2] == 7) {
        int feat = nn_add_reduce(b.g, NN_OP_MEAN, "avgpool", x, 0x6u, 0, e);
        int c = feat < 0 ? 0 : (int)T(&b, feat)->dims[1];
        int64_t wd[2] = {c, NN_FACEAPI_EXPRESSIONS}, bd[1] = {NN_FACEAPI_EXPRESSIONS};
        int w = cst(&b, "fc/weights", 2, wd, weight(&b, 2, wd, "fc/weights"));
        int bias = cst(&b, "fc/bias", 1, bd, weight(&b, 1, bd, "fc/bias"));
        int logits = feat >= 0 && w >= 0 && bias >= 0
                         ? nn_add_fc(b.g, "logits", feat, w, bias, -1, NN_ACT_NONE, e) : -1;
        y = logits < 0 ? -1 : nn_add_softmax(b.g, "expressions", logits, e);
    } else if (x >= 0) {
        mien_err_set(e, MIEN_EFORMAT, "feature map has the wrong size");
    }
    return finish(&b, path, &y, 1, out);
}

/* ==== Age and gender (AgeGenderNet) ====
 * TinyXception with 2 middle blocks: a 3x3/2 convolution, two "reduction" blocks (ReLU of the
 * input except in the first, two separable convolutions with a ReLU between, a 3x3/2 max pool,
 * plus a 1x1/2 convolution of the block's input), two "main" blocks (three ReLU + separable
 * convolution steps, plus the input), a last reduction block and a separable convolution with
 * ReLU; the mean over the 7x7 map feeds two fully connected layers: age (1) and gender (2,
 * softmax, male first). */

/* conv(x) with a 1x1 stride-2 kernel + bias: the reduction block's shortcut. */
static int xc_expansion(fb *b, int x, const char *prefix) {
    if (x < 0) return -1;
    char fname[160];
    snprintf(fname, sizeof fname, "%s/expansion_conv/filters", prefix);
    int ci = (int)T(b, x)->dims[3], co = out_channels(b, fname);
    if (co < 0) return -1;
    int64_t wd[4] = {1, 1, ci, co}, bd[1] = {co};
    return conv(b, nm(b, prefix, "expansion"), x, weight(b, 4, wd, "%s", fname),
                weight(b, 1, bd, "%s/expansion_conv/bias", prefix), 1, ci, co, 2, NN_PAD_SAME,
                NN_ACT_NONE);
}

static int xc_relu(fb *b, const char *prefix, int x) {
    return unary(b, NN_OP_RELU, nm(b, prefix, "relu"), x);
}

static int xc_reduction(fb *b, int x, const char *prefix, int activate_input) {
    char p0[128], p1[128];
    snprintf(p0, sizeof p0, "%s/separable_conv0", prefix);
    snprintf(p1, sizeof p1, "%s/separable_conv1", prefix);
    int y = activate_input ? xc_relu(b, prefix, x) : x;
    y = sep_conv(b, y, p0, 1, NN_ACT_RELU);
    y = sep_conv(b, y, p1, 1, NN_ACT_NONE);
    if (y < 0) return -1;
    nn_conv_params p;
    nn_conv_params_default(&p);
    p.stride[0] = p.stride[1] = 2;
    p.padding = NN_PAD_SAME;
    int kernel[2] = {3, 3};
    y = nn_add_pool(b->g, NN_OP_MAXPOOL, nm(b, prefix, "maxpool"), y, kernel, &p, b->e);
    return binary(b, NN_OP_ADD, nm(b, prefix, "add"), y, xc_expansion(b, x, prefix));
}

static int xc_main(fb *b, int x, const char *prefix) {
    int y = x;
    for (int i = 0; i < 3; i++) {
        char pi[128];
        snprintf(pi, sizeof pi, "%s/separable_conv%d", prefix, i);
        y = sep_conv(b, xc_relu(b, prefix, y), pi, 1, NN_ACT_NONE);
    }
    return binary(b, NN_OP_ADD, nm(b, prefix, "add"), y, x);
}

/* Fully connected layer fc/NAME: weights (c, n), bias (n). */
static int fc_layer(fb *b, int x, const char *name, int n) {
    if (x < 0) return -1;
    int c = (int)T(b, x)->dims[1];
    int64_t wd[2] = {c, n}, bd[1] = {n};
    char wn[64], bn[64], on[64];
    snprintf(wn, sizeof wn, "fc/%s/weights", name);
    snprintf(bn, sizeof bn, "fc/%s/bias", name);
    snprintf(on, sizeof on, "fc_%s", name);
    int w = cst(b, wn, 2, wd, weight(b, 2, wd, "%s", wn));
    int bias = cst(b, bn, 1, bd, weight(b, 1, bd, "%s", bn));
    if (w < 0 || bias < 0) return -1;
    return nn_add_fc(b->g, on, x, w, bias, -1, NN_ACT_NONE, b->e);
}

int nn_faceapi_age_gender_load(const char *path, nn_graph **out, mien_err *e) {
    *out = NULL;
    fb b;
    int rc = start(&b, path, "faceapi/age_gender", e);
    if (rc) return rc;
    int64_t in_dims[4] = {1, NN_FACEAPI_LM_SIZE, NN_FACEAPI_LM_SIZE, 3};
    int x = nn_add_input(b.g, "input", 4, in_dims, e);
    x = normalize_rgb255(&b, x);
    {
        const char *fname = "entry_flow/conv_in/filters";
        int co = x < 0 ? -1 : out_channels(&b, fname);
        int64_t wd[4] = {3, 3, 3, co}, bd[1] = {co};
        x = co < 0 ? -1 : conv(&b, "entry_flow/conv_in", x, weight(&b, 4, wd, "%s", fname),
                               weight(&b, 1, bd, "entry_flow/conv_in/bias"), 3, 3, co, 2,
                               NN_PAD_SAME, NN_ACT_RELU);
    }
    x = xc_reduction(&b, x, "entry_flow/reduction_block_0", 0);
    x = xc_reduction(&b, x, "entry_flow/reduction_block_1", 1);
    x = xc_main(&b, x, "middle_flow/main_block_0");
    x = xc_main(&b, x, "middle_flow/main_block_1");
    x = xc_reduction(&b, x, "exit_flow/reduction_block", 1);
    x = sep_conv(&b, x, "exit_flow/separable_conv", 1, NN_ACT_RELU);
    int outs[2] = {-1, -1};
    if (x >= 0 && T(&b, x)->dims[1] == 7 && T(&b, x)->dims[2] == 7) {
        /* avgPool 7x7 stride 2 VALID over the 7x7 map: the mean over H, W. */
        int feat = nn_add_reduce(b.g, NN_OP_MEAN, "avgpool", x, 0x6u, 0, e);
        outs[0] = fc_layer(&b, feat, "age", 1);
        int g = fc_layer(&b, feat, "gender", 2);
        outs[1] = g < 0 ? -1 : nn_add_softmax(b.g, "gender", g, e);
    } else if (x >= 0) {
        mien_err_set(e, MIEN_EFORMAT, "feature map has the wrong size");
    }
    return finish(&b, path, outs, 2, out);
}

/* ==== SSD MobileNetV1 face detector ====
 * face-api's SsdMobilenetv1: MobileNetV1 (a 3x3/2 convolution, then 13 depthwise + pointwise
 * pairs, stride 2 at pairs 2, 4, 6 and 12, batch norm and ReLU6 after each), then 8 extra
 * pointwise/3x3 layers down to 1x1, and six box predictors (1x1 convolutions) on the maps of
 * pair 11 (32x32), pair 13 (16x16) and the extra layers 1, 3, 5, 7 (8, 4, 2, 1): 3 anchors
 * per cell on the first map, 6 on the others, 5118 in all. Each predictor gives 4 box
 * encodings and 3 class logits per anchor. */

/* conv + convolution_bn_offset, ReLU6 (face-api's pointwiseConvLayer; despite the name the
 * extra layers use 3x3 kernels, all SAME). */
static int ssd_pointwise(fb *b, int x, const char *prefix, int stride) {
    if (x < 0) return -1;
    char wname[160];
    snprintf(wname, sizeof wname, "%s/weights", prefix);
    const nn_weight *w = nn_weights_find(&b->w, wname);
    int k = w && w->ndim == 4 && w->dims[0] == w->dims[1] && (w->dims[0] == 1 || w->dims[0] == 3)
                ? (int)w->dims[0]
                : 1;
    int ci = (int)T(b, x)->dims[3], co = out_channels(b, wname);
    if (co < 0) return -1;
    int64_t wd[4] = {k, k, ci, co}, bd[1] = {co};
    return conv(b, prefix, x, weight(b, 4, wd, "%s", wname),
                weight(b, 1, bd, "%s/convolution_bn_offset", prefix), k, ci, co, stride,
                NN_PAD_SAME, NN_ACT_RELU6);
}

/* Depthwise 3x3, batch norm (scale s = gamma / sqrt(var + eps), shift beta - mean * s, in
 * double), ReLU6. eps is face-api's 0.0010000000474974513 (1e-3 in float32). */
static int ssd_depthwise(fb *b, int x, int idx, int stride) {
    if (x < 0) return -1;
    char p[96];
    snprintf(p, sizeof p, "MobilenetV1/Conv2d_%d_depthwise", idx);
    int c = (int)T(b, x)->dims[3];
    int64_t wd[4] = {3, 3, c, 1}, cd[1] = {c};
    const float *w = weight(b, 4, wd, "%s/depthwise_weights", p);
    const float *gamma = weight(b, 1, cd, "%s/BatchNorm/gamma", p);
    const float *beta = weight(b, 1, cd, "%s/BatchNorm/beta", p);
    const float *mean = weight(b, 1, cd, "%s/BatchNorm/moving_mean", p);
    const float *var = weight(b, 1, cd, "%s/BatchNorm/moving_variance", p);
    if (!w || !gamma || !beta || !mean || !var) return -1;
    float *sc = malloc((size_t)c * sizeof *sc), *sh = malloc((size_t)c * sizeof *sh);
    int y = -1;
    if (!sc || !sh) {
        mien_err_set(b->e, MIEN_ENOMEM, "out of memory");
    } else {
        for (int ch = 0; ch < c; ch++) {
            double s = gamma[ch] / sqrt((double)var[ch] + 0.0010000000474974513);
            sc[ch] = (float)s;
            sh[ch] = (float)(beta[ch] - mean[ch] * s);
        }
        y = dwconv(b, p, x, w, NULL, 3, c, stride, NN_ACT_NONE);
        y = affine(b, p, y, sc, sh, c);
        y = unary(b, NN_OP_RELU6, nm(b, p, "relu6"), y);
    }
    free(sc);
    free(sh);
    return y;
}

/* One box predictor on map x: encodings reshaped to (1, H*W*A, 4), logits to (1, H*W*A, 3). */
static void ssd_predictor(fb *b, int x, int idx, int *enc, int *cls) {
    *enc = *cls = -1;
    if (x < 0) return;
    int ci = (int)T(b, x)->dims[3];
    const char *kind[2] = {"BoxEncodingPredictor", "ClassPredictor"};
    int per[2] = {4, 3};
    for (int i = 0; i < 2; i++) {
        char p[96], wname[128];
        snprintf(p, sizeof p, "Prediction/BoxPredictor_%d/%s", idx, kind[i]);
        snprintf(wname, sizeof wname, "%s/weights", p);
        int co = out_channels(b, wname);
        if (co < 0) return;
        if (co % per[i] || co / per[i] != (idx == 0 ? 3 : 6)) {
            mien_err_set(b->e, MIEN_EFORMAT, "weight %s: %d outputs", wname, co);
            return;
        }
        int64_t wd[4] = {1, 1, ci, co}, bd[1] = {co};
        int y = conv(b, p, x, weight(b, 4, wd, "%s", wname), weight(b, 1, bd, "%s/biases", p), 1,
                     ci, co, 1, NN_PAD_SAME, NN_ACT_NONE);
        if (y < 0) return;
        int64_t rd[3] = {1, -1, per[i]};
        int r = nn_add_reshape(b->g, nm(b, p, "reshape"), y, 3, rd, b->e);
        if (r < 0) return;
        *(i ? cls : enc) = r;
    }
}

int nn_faceapi_ssd_load(const char *path, nn_graph **out, mien_err *e) {
    *out = NULL;
    fb b;
    int rc = start(&b, path, "faceapi/ssd_mobilenetv1", e);
    if (rc) return rc;
    /* The anchors are stored in the file; decoding uses nn_faceapi_ssd_anchors(), so make
     * sure they are the same boxes. */
    int64_t ad[3] = {1, NN_FACEAPI_SSD_ANCHORS, 4};
    const float *stored = weight(&b, 3, ad, "Output/extra_dim");
    if (stored) {
        float *mine = malloc((size_t)NN_FACEAPI_SSD_ANCHORS * 4 * sizeof *mine);
        if (!mine) {
            mien_err_set(e, MIEN_ENOMEM, "out of memory");
            stored = NULL;
        } else {
            nn_faceapi_ssd_anchors(mine);
            for (int i = 0; i < NN_FACEAPI_SSD_ANCHORS * 4 && stored; i++)
                if (!(fabsf(mine[i] - stored[i]) <= 1e-5f)) {
                    mien_err_set(e, MIEN_EFORMAT, "anchor %d differs from the generated one", i / 4);
                    stored = NULL;
                }
            free(mine);
        }
    }
    int64_t in_dims[4] = {1, NN_FACEAPI_SSD_SIZE, NN_FACEAPI_SSD_SIZE, 3};
    int x = stored ? nn_add_input(b.g, "input", 4, in_dims, e) : -1;
    /* x / 127.5 - 1 */
    x = scalar_op(&b, NN_OP_SUB, "normalized", scalar_op(&b, NN_OP_DIV, "scaled", x, 127.5f), 1.0f);

    x = ssd_pointwise(&b, x, "MobilenetV1/Conv2d_0_pointwise", 2);
    int conv11 = -1;
    for (int i = 1; i <= 13; i++) {
        char p[64];
        snprintf(p, sizeof p, "MobilenetV1/Conv2d_%d_pointwise", i);
        x = ssd_depthwise(&b, x, i, i == 2 || i == 4 || i == 6 || i == 12 ? 2 : 1);
        x = ssd_pointwise(&b, x, p, 1);
        if (i == 11) conv11 = x;
    }
    int maps[6] = {conv11, x};
    int y = x;
    for (int i = 0; i < 8; i++) {
        char p[64];
        snprintf(p, sizeof p, "Prediction/Conv2d_%d_pointwise", i);
        y = ssd_pointwise(&b, y, p, i % 2 ? 2 : 1);
        if (i % 2) maps[2 + i / 2] = y;
    }
    int enc[6], cls[6], ok = 1;
    for (int i = 0; i < 6; i++) {
        ssd_predictor(&b, maps[i], i, &enc[i], &cls[i]);
        ok = ok && enc[i] >= 0 && cls[i] >= 0;
    }
    int outs[2] = {-1, -1};
    if (ok) {
        outs[0] = nn_add_concat(b.g, "box_encodings", enc, 6, 1, e);
        outs[1] = nn_add_concat(b.g, "class_logits", cls, 6, 1, e);
        if (outs[0] >= 0 && T(&b, outs[0])->dims[1] != NN_FACEAPI_SSD_ANCHORS) {
            mien_err_set(e, MIEN_EFORMAT, "%lld boxes, expected %d",
                         (long long)T(&b, outs[0])->dims[1], NN_FACEAPI_SSD_ANCHORS);
            outs[0] = -1;
        }
    }
    return finish(&b, path, outs, 2, out);
}

/* ==== SSD anchors, decoding, NMS ==== */

/* TensorFlow Object Detection's SSD anchor generator with the settings of this model (checked
 * against the anchors stored in the file): 6 layers on 32, 16, 8, 4, 2, 1 cells a side,
 * scales s_l = 0.2 .. 0.95 linearly and 1.0 after the last; per cell the boxes (scale, aspect
 * ratio) (s_l, 1), (sqrt(s_l s_l+1), 1), (s_l, 2), (s_l, 0.5), (s_l, 3), (s_l, 0.3333) — the
 * config's 0.3333, not 1/3 — except on the lowest layer: (0.1, 1), (s_0, 2), (s_0, 0.5). A box
 * of scale s and ratio a is s/sqrt(a) high and s*sqrt(a) wide, centred on ((i + 0.5)/n,
 * (j + 0.5)/n); boxes run row, column, box — the order of the predictors' outputs. */
void nn_faceapi_ssd_anchors(float *anchors) {
    static const int cells[6] = {32, 16, 8, 4, 2, 1};
    static const double ratios[5] = {1.0, 2.0, 0.5, 3.0, 0.3333};
    const double min_scale = 0.2, max_scale = 0.95;
    float *a = anchors;
    for (int l = 0; l < 6; l++) {
        double s = min_scale + (max_scale - min_scale) * l / 5.0;
        double s_next = l == 5 ? 1.0 : min_scale + (max_scale - min_scale) * (l + 1) / 5.0;
        double bs[6], br[6];
        int nb = 0;
        if (l == 0) {
            bs[0] = 0.1, br[0] = 1.0;
            bs[1] = s, br[1] = 2.0;
            bs[2] = s, br[2] = 0.5;
            nb = 3;
        } else {
            for (int r = 0; r < 5; r++) {
                bs[nb] = s, br[nb++] = ratios[r];
                if (r == 0) bs[nb] = sqrt(s * s_next), br[nb++] = 1.0;
            }
        }
        int n = cells[l];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                for (int k = 0; k < nb; k++) {
                    double cy = (i + 0.5) / n, cx = (j + 0.5) / n;
                    double h = bs[k] / sqrt(br[k]), w = bs[k] * sqrt(br[k]);
                    *a++ = (float)(cy - h / 2);
                    *a++ = (float)(cx - w / 2);
                    *a++ = (float)(cy + h / 2);
                    *a++ = (float)(cx + w / 2);
                }
    }
}

void nn_faceapi_ssd_decode(const float *enc, const float *logits, const float *anchors,
                           float *boxes, float *scores) {
    /* Float32 steps in face-api's order (decodeBoxesLayer, then sigmoid(slice(logits, 1))). */
    for (int i = 0; i < NN_FACEAPI_SSD_ANCHORS; i++) {
        const float *a = anchors + 4 * i, *t = enc + 4 * i;
        float h = a[2] - a[0], w = a[3] - a[1];
        float cy = a[0] + h / 2, cx = a[1] + w / 2;
        float half_h = (float)exp((double)(t[2] / 5)) * h / 2;
        float half_w = (float)exp((double)(t[3] / 5)) * w / 2;
        float y = t[0] / 10 * h + cy, x = t[1] / 10 * w + cx;
        float *b = boxes + 4 * i;
        b[0] = y - half_h;
        b[1] = x - half_w;
        b[2] = y + half_h;
        b[3] = x + half_w;
        scores[i] = (float)(1.0 / (1.0 + exp(-(double)logits[3 * i + 1])));
    }
}

/* face-api's IOU: corners sorted first, 0 for empty boxes. */
static double ssd_iou(const float *a, const float *b) {
    double ay0 = fmin(a[0], a[2]), ax0 = fmin(a[1], a[3]), ay1 = fmax(a[0], a[2]),
           ax1 = fmax(a[1], a[3]);
    double by0 = fmin(b[0], b[2]), bx0 = fmin(b[1], b[3]), by1 = fmax(b[0], b[2]),
           bx1 = fmax(b[1], b[3]);
    double area_a = (ay1 - ay0) * (ax1 - ax0), area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0 || area_b <= 0) return 0.0;
    double ih = fmax(fmin(ay1, by1) - fmax(ay0, by0), 0.0);
    double iw = fmax(fmin(ax1, bx1) - fmax(ax0, bx0), 0.0);
    double inter = ih * iw;
    return inter / (area_a + area_b - inter);
}

typedef struct ssd_cand {
    float score;
    int idx;
} ssd_cand;

/* Descending score; equal scores keep index order (JavaScript's sort is stable). */
static int cand_cmp(const void *pa, const void *pb) {
    const ssd_cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

int nn_faceapi_ssd_nms(const float *boxes, const float *scores, int n, int max_results,
                       float iou_threshold, float min_score, int *selected) {
    ssd_cand *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
    if (!c) return -1;
    int nc = 0;
    for (int i = 0; i < n; i++)
        if (scores[i] > min_score) c[nc].score = scores[i], c[nc++].idx = i;
    qsort(c, (size_t)nc, sizeof *c, cand_cmp);
    int out_cap = max_results < n ? max_results : n, ns = 0;
    /* A candidate overlapping any kept box by more than the threshold is dropped. */
    for (int k = 0; k < nc && ns < out_cap; k++) {
        int keep = 1;
        for (int j = ns - 1; j >= 0 && keep; j--)
            keep = ssd_iou(boxes + 4 * c[k].idx, boxes + 4 * selected[j]) <= iou_threshold;
        if (keep) selected[ns++] = c[k].idx;
    }
    free(c);
    return ns;
}

int nn_faceapi_ssd_input(const uint8_t *rgb, int w, int h, size_t stride, float *out) {
    if (!rgb || w <= 0 || h <= 0 || stride < (size_t)w * 3) return MIEN_EINVAL;
    const int S = w > h ? w : h, N = NN_FACEAPI_SSD_SIZE;
    /* padToSquare (zeros after the image), then tf.image.resizeBilinear(S -> 512) with
     * align_corners and half_pixel_centers off, computed in double as TFJS's CPU kernel does. */
    const double ratio = (double)S / N;
#define PX(yy, xx, ch) ((yy) < h && (xx) < w ? (double)rgb[(size_t)(yy) * stride + (size_t)(xx) * 3 + (ch)] : 0.0)
    for (int r = 0; r < N; r++) {
        double fy = ratio * r;
        int y0 = (int)floor(fy), y1 = (int)ceil(fy);
        if (y0 < 0) y0 = 0;
        if (y1 > S - 1) y1 = S - 1;
        double dy = fy - y0;
        for (int q = 0; q < N; q++) {
            double fx = ratio * q;
            int x0 = (int)floor(fx), x1 = (int)ceil(fx);
            if (x0 < 0) x0 = 0;
            if (x1 > S - 1) x1 = S - 1;
            double dx = fx - x0;
            for (int ch = 0; ch < 3; ch++) {
                double tl = PX(y0, x0, ch), tr = PX(y0, x1, ch);
                double bl = PX(y1, x0, ch), br = PX(y1, x1, ch);
                double top = tl + (tr - tl) * dx, bottom = bl + (br - bl) * dx;
                out[((size_t)r * N + q) * 3 + ch] = (float)(top + (bottom - top) * dy);
            }
        }
    }
#undef PX
    return MIEN_OK;
}

int nn_faceapi_ssd_detect(const float *enc, const float *logits, int img_w, int img_h,
                          float min_confidence, int max_results, nn_faceapi_det *out, int *n_out,
                          mien_err *e) {
    *n_out = 0;
    if (img_w <= 0 || img_h <= 0 || max_results < 0)
        return mien_err_set(e, MIEN_EINVAL, "ssd_detect: bad image size or max_results");
    const int n = NN_FACEAPI_SSD_ANCHORS;
    float *anchors = malloc((size_t)n * 4 * sizeof *anchors);
    float *boxes = malloc((size_t)n * 4 * sizeof *boxes);
    float *scores = malloc((size_t)n * sizeof *scores);
    int *sel = malloc((size_t)n * sizeof *sel);
    int ns = -1;
    if (anchors && boxes && scores && sel) {
        nn_faceapi_ssd_anchors(anchors);
        nn_faceapi_ssd_decode(enc, logits, anchors, boxes, scores);
        ns = nn_faceapi_ssd_nms(boxes, scores, n, max_results, 0.5f, min_confidence, sel);
    }
    if (ns >= 0) {
        /* locateFaces(): the padded square holds the image in its top-left part, whose size
         * face-api takes as round(side * 512 / max side); boxes are clamped to [0,1] on the
         * square first. */
        double scale = (double)NN_FACEAPI_SSD_SIZE / (img_w > img_h ? img_w : img_h);
        double pad_x = NN_FACEAPI_SSD_SIZE / floor(img_w * scale + 0.5);
        double pad_y = NN_FACEAPI_SSD_SIZE / floor(img_h * scale + 0.5);
        for (int k = 0; k < ns; k++) {
            const float *b = boxes + 4 * sel[k];
            double top = fmax(0.0, b[0]) * pad_y, bottom = fmin(1.0, b[2]) * pad_y;
            double left = fmax(0.0, b[1]) * pad_x, right = fmin(1.0, b[3]) * pad_x;
            nn_faceapi_det *d = &out[k];
            d->score = scores[sel[k]];
            d->anchor = sel[k];
            d->x = (float)(left * img_w);
            d->y = (float)(top * img_h);
            d->w = (float)((right - left) * img_w);
            d->h = (float)((bottom - top) * img_h);
        }
        *n_out = ns;
    }
    free(anchors);
    free(boxes);
    free(scores);
    free(sel);
    return ns < 0 ? mien_err_set(e, MIEN_ENOMEM, "out of memory") : MIEN_OK;
}
