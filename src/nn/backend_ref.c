/* The reference backend: plain C for every op of ops.def. It is the oracle that every fast
 * path is tested against, so it favours the obvious loop over the clever one. The loops are
 * still ordered so the innermost runs over contiguous channels, which lets the compiler
 * vectorise them; that keeps the test suite quick. */
#include "nn/backend_ref.h"
#include "nn/exec.h"
#include "nn/exec_int.h"

/* The loops are ordered to vectorise, but -O2's "very cheap" vectoriser only takes loops whose
 * trip count it knows, which none of them has, and -O1 (the sanitizer build) none at all.
 * Vectorising changes no result: no loop here is a floating-point reduction the vectoriser
 * would reorder (that needs -ffast-math), and -std=c11 fuses no multiply-add. */
#if defined(__GNUC__) && !defined(__clang__) /* a GCC pragma: clang (the fuzz build) warns on it */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef int (*ref_fn)(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e);

/* ==== Activations ==== */

/* Apply the node's fused activation to out, viewed as (rows, c) with c the channel count. */
static void apply_act(const nn_node *n, const float *alpha, float *out, int64_t count,
                      int64_t c) {
    switch (n->act) {
    case NN_ACT_NONE:
        return;
    case NN_ACT_RELU:
        for (int64_t i = 0; i < count; i++) out[i] = out[i] > 0 ? out[i] : 0;
        return;
    case NN_ACT_RELU6:
        for (int64_t i = 0; i < count; i++) out[i] = fminf(fmaxf(out[i], 0.f), 6.f);
        return;
    case NN_ACT_CLAMP:
        for (int64_t i = 0; i < count; i++)
            out[i] = fminf(fmaxf(out[i], n->act_min), n->act_max);
        return;
    case NN_ACT_LEAKY:
        for (int64_t i = 0; i < count; i++)
            out[i] = out[i] > 0 ? out[i] : n->act_alpha * out[i];
        return;
    case NN_ACT_PRELU:
        for (int64_t i = 0; i < count; i++) {
            float a = alpha[i % c];
            out[i] = out[i] > 0 ? out[i] : a * out[i];
        }
        return;
    case NN_ACT_SIGMOID:
        for (int64_t i = 0; i < count; i++) out[i] = 1.f / (1.f + expf(-out[i]));
        return;
    }
}

/* The PReLU alpha of a node with a fused PReLU is its last input. */
static const float *act_alpha(const nn_node *n, const float *const *in) {
    return n->act == NN_ACT_PRELU ? in[n->n_in - 1] : NULL;
}

/* The bias is the third input when present (not counting a trailing PReLU alpha). */
static const float *bias_of(const nn_node *n, const float *const *in) {
    int n_extra = n->n_in - 2 - (n->act == NN_ACT_PRELU);
    return n_extra > 0 ? in[2] : NULL;
}

/* ==== Convolution and fully connected ==== */

static int ref_conv2d(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *tw = &g->t[n->in[1]], *ty = &g->t[n->out];
    const float *x = in[0], *w = in[1], *bias = bias_of(n, in);
    const int64_t N = tx->dims[0], H = tx->dims[1], W = tx->dims[2], CI = tx->dims[3];
    const int64_t KH = tw->dims[0], KW = tw->dims[1], CIG = tw->dims[2], CO = tw->dims[3];
    const int64_t OH = ty->dims[1], OW = ty->dims[2];
    const int64_t G = n->groups, COG = CO / G;
    for (int64_t b = 0; b < N; b++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                float *o = out + ((b * OH + oy) * OW + ox) * CO;
                for (int64_t co = 0; co < CO; co++) o[co] = bias ? bias[co] : 0.f;
                for (int64_t ky = 0; ky < KH; ky++) {
                    int64_t iy = oy * n->stride[0] - n->pad[0] + ky * n->dilation[0];
                    if (iy < 0 || iy >= H) continue;
                    for (int64_t kx = 0; kx < KW; kx++) {
                        int64_t ix = ox * n->stride[1] - n->pad[2] + kx * n->dilation[1];
                        if (ix < 0 || ix >= W) continue;
                        const float *xp = x + ((b * H + iy) * W + ix) * CI;
                        const float *wp = w + (ky * KW + kx) * CIG * CO;
                        for (int64_t gi = 0; gi < G; gi++)
                            for (int64_t ci = 0; ci < CIG; ci++) {
                                const float xv = xp[gi * CIG + ci];
                                const float *wr = wp + ci * CO + gi * COG;
                                float *og = o + gi * COG;
                                for (int64_t co = 0; co < COG; co++) og[co] += xv * wr[co];
                            }
                    }
                }
            }
    apply_act(n, act_alpha(n, in), out, ty->n, CO);
    return MIEN_OK;
}

static int ref_dwconv2d(const nn_graph *g, const nn_node *n, const float *const *in,
                        float *out, mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *tw = &g->t[n->in[1]], *ty = &g->t[n->out];
    const float *x = in[0], *w = in[1], *bias = bias_of(n, in);
    const int64_t N = tx->dims[0], H = tx->dims[1], W = tx->dims[2], C = tx->dims[3];
    const int64_t KH = tw->dims[0], KW = tw->dims[1], M = tw->dims[3], CO = C * M;
    const int64_t OH = ty->dims[1], OW = ty->dims[2];
    for (int64_t b = 0; b < N; b++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                float *o = out + ((b * OH + oy) * OW + ox) * CO;
                for (int64_t c = 0; c < CO; c++) o[c] = bias ? bias[c] : 0.f;
                for (int64_t ky = 0; ky < KH; ky++) {
                    int64_t iy = oy * n->stride[0] - n->pad[0] + ky * n->dilation[0];
                    if (iy < 0 || iy >= H) continue;
                    for (int64_t kx = 0; kx < KW; kx++) {
                        int64_t ix = ox * n->stride[1] - n->pad[2] + kx * n->dilation[1];
                        if (ix < 0 || ix >= W) continue;
                        const float *xp = x + ((b * H + iy) * W + ix) * C;
                        const float *wp = w + (ky * KW + kx) * CO;
                        if (M == 1) {
                            for (int64_t c = 0; c < C; c++) o[c] += xp[c] * wp[c];
                        } else {
                            for (int64_t c = 0; c < C; c++)
                                for (int64_t m = 0; m < M; m++)
                                    o[c * M + m] += xp[c] * wp[c * M + m];
                        }
                    }
                }
            }
    apply_act(n, act_alpha(n, in), out, ty->n, CO);
    return MIEN_OK;
}

static int ref_fc(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                  mien_err *e) {
    const nn_tensor *tw = &g->t[n->in[1]], *ty = &g->t[n->out];
    const float *x = in[0], *w = in[1], *bias = bias_of(n, in);
    const int64_t K = tw->dims[0], M = tw->dims[1], rows = ty->n / M;
    for (int64_t r = 0; r < rows; r++) {
        float *o = out + r * M;
        const float *xr = x + r * K;
        for (int64_t m = 0; m < M; m++) o[m] = bias ? bias[m] : 0.f;
        for (int64_t k = 0; k < K; k++) {
            const float xv = xr[k], *wr = w + k * M;
            for (int64_t m = 0; m < M; m++) o[m] += xv * wr[m];
        }
    }
    apply_act(n, act_alpha(n, in), out, ty->n, M);
    return MIEN_OK;
}

/* ==== Elementwise ==== */

/* Strides of t aligned to an output of nd dims; broadcast axes get stride 0. */
static void bcast_strides(const nn_tensor *t, int nd, const int64_t *odims, int64_t *st) {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        int ti = t->ndim - nd + i;
        int64_t d = ti >= 0 ? t->dims[ti] : 1;
        st[i] = (d == 1 && odims[i] != 1) ? 0 : s;
        s *= d;
    }
}

static float binop(nn_op op, float a, float b) {
    switch (op) {
    case NN_OP_ADD: return a + b;
    case NN_OP_SUB: return a - b;
    case NN_OP_MUL: return a * b;
    case NN_OP_DIV: return a / b;
    case NN_OP_MAXIMUM: return a > b ? a : b;
    case NN_OP_MINIMUM: return a < b ? a : b;
    case NN_OP_LESS: return a < b ? 1.f : 0.f;
    case NN_OP_GREATER_EQUAL: return a >= b ? 1.f : 0.f;
    default: assert(0); return 0;
    }
}

static int ref_binary(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e) {
    const nn_tensor *ta = &g->t[n->in[0]], *tb = &g->t[n->in[1]], *ty = &g->t[n->out];
    const float *a = in[0], *b = in[1];
    if (ta->n == ty->n && tb->n == ty->n) {
        for (int64_t i = 0; i < ty->n; i++) out[i] = binop(n->op, a[i], b[i]);
    } else {
        /* General broadcast: walk the output in order with a 6-digit odometer. */
        int nd = ty->ndim;
        int64_t sa[NN_MAX_DIMS], sb[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0};
        bcast_strides(ta, nd, ty->dims, sa);
        bcast_strides(tb, nd, ty->dims, sb);
        int64_t oa = 0, ob = 0;
        for (int64_t i = 0; i < ty->n; i++) {
            out[i] = binop(n->op, a[oa], b[ob]);
            for (int d = nd - 1; d >= 0; d--) {
                idx[d]++;
                oa += sa[d];
                ob += sb[d];
                if (idx[d] < ty->dims[d]) break;
                oa -= sa[d] * idx[d];
                ob -= sb[d] * idx[d];
                idx[d] = 0;
            }
        }
    }
    apply_act(n, act_alpha(n, in), out, ty->n, ty->ndim ? ty->dims[ty->ndim - 1] : 1);
    return MIEN_OK;
}

static int ref_unary(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                     mien_err *e) {
    const float *x = in[0];
    const int64_t count = g->t[n->out].n;
    for (int64_t i = 0; i < count; i++) {
        float v = x[i], r;
        switch (n->op) {
        case NN_OP_ABS: r = fabsf(v); break;
        case NN_OP_NEG: r = -v; break;
        case NN_OP_SQUARE: r = v * v; break;
        case NN_OP_SQRT: r = sqrtf(v); break;
        case NN_OP_RSQRT: r = 1.f / sqrtf(v); break;
        case NN_OP_EXP: r = expf(v); break;
        case NN_OP_RELU: r = v > 0 ? v : 0; break;
        case NN_OP_RELU6: r = fminf(fmaxf(v, 0.f), 6.f); break;
        case NN_OP_SIGMOID: r = 1.f / (1.f + expf(-v)); break;
        case NN_OP_TANH: r = tanhf(v); break;
        case NN_OP_LEAKY_RELU: r = v > 0 ? v : n->act_alpha * v; break;
        case NN_OP_CLAMP: r = fminf(fmaxf(v, n->act_min), n->act_max); break;
        default: return mien_err_set(e, MIEN_EINTERNAL, "not a unary op");
        }
        out[i] = r;
    }
    return MIEN_OK;
}

static int ref_prelu(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                     mien_err *e) {
    const nn_tensor *ty = &g->t[n->out], *ta = &g->t[n->in[1]];
    const int64_t c = ta->n;
    for (int64_t i = 0; i < ty->n; i++) {
        float v = in[0][i];
        out[i] = v > 0 ? v : in[1][i % c] * v;
    }
    return MIEN_OK;
}

static int ref_batchnorm(const nn_graph *g, const nn_node *n, const float *const *in,
                         float *out, mien_err *e) {
    const nn_tensor *ty = &g->t[n->out];
    const int64_t c = g->t[n->in[1]].n;
    for (int64_t i = 0; i < ty->n; i++) out[i] = in[0][i] * in[1][i % c] + in[2][i % c];
    return MIEN_OK;
}

/* Batch statistics over every axis but the last, two passes in double (mean, then the mean of
 * squared deviations: the biased variance, as PyTorch normalises with). */
static int ref_batchnorm_train(const nn_graph *g, const nn_node *n, const float *const *in,
                               float *out, mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]];
    const int64_t c = tx->dims[tx->ndim - 1], rows = c ? tx->n / c : 0;
    const float *x = in[0], *gamma = in[1], *beta = in[2];
    for (int64_t k = 0; k < c; k++) {
        double s = 0, ss = 0;
        for (int64_t r = 0; r < rows; r++) s += x[r * c + k];
        double mean = rows ? s / (double)rows : 0;
        for (int64_t r = 0; r < rows; r++) {
            double d = x[r * c + k] - mean;
            ss += d * d;
        }
        double var = rows ? ss / (double)rows : 0;
        float inv = (float)(1.0 / sqrt(var + n->eps));
        for (int64_t r = 0; r < rows; r++)
            out[r * c + k] = (x[r * c + k] - (float)mean) * inv * gamma[k] + beta[k];
    }
    apply_act(n, act_alpha(n, in), out, tx->n, c);
    return MIEN_OK;
}

static int ref_l2norm(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]];
    const int64_t c = tx->dims[tx->ndim - 1], rows = c ? tx->n / c : 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in[0] + r * c;
        double ss = 0;
        for (int64_t k = 0; k < c; k++) ss += (double)x[k] * x[k];
        float inv = (float)(1.0 / sqrt(ss > n->eps ? ss : n->eps));
        for (int64_t k = 0; k < c; k++) out[r * c + k] = x[k] * inv;
    }
    return MIEN_OK;
}

/* ==== Reductions and softmax ==== */

static int ref_reduce(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    /* Output strides expressed on the input's axes (0 on reduced axes). */
    int64_t ost[NN_MAX_DIMS], s = 1, idx[NN_MAX_DIMS] = {0};
    for (int i = tx->ndim - 1; i >= 0; i--) {
        if (n->axes & (1u << i)) {
            ost[i] = 0;
        } else {
            ost[i] = s;
            s *= tx->dims[i];
        }
    }
    float init = n->op == NN_OP_REDUCE_MAX ? -FLT_MAX : 0.f;
    for (int64_t i = 0; i < ty->n; i++) out[i] = init;
    int64_t o = 0;
    for (int64_t i = 0; i < tx->n; i++) {
        float v = in[0][i];
        if (n->op == NN_OP_REDUCE_MAX) out[o] = v > out[o] ? v : out[o];
        else out[o] += v;
        for (int d = tx->ndim - 1; d >= 0; d--) {
            idx[d]++;
            o += ost[d];
            if (idx[d] < tx->dims[d]) break;
            o -= ost[d] * idx[d];
            idx[d] = 0;
        }
    }
    if (n->op == NN_OP_MEAN && ty->n) {
        float inv = (float)ty->n / (float)tx->n;
        for (int64_t i = 0; i < ty->n; i++) out[i] *= inv;
    }
    return MIEN_OK;
}

static int ref_softmax(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                       mien_err *e) {
    const nn_tensor *ty = &g->t[n->out];
    const int64_t c = ty->ndim ? ty->dims[ty->ndim - 1] : 1, rows = c ? ty->n / c : 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = in[0] + r * c;
        float *o = out + r * c, mx = -FLT_MAX, sum = 0;
        for (int64_t i = 0; i < c; i++) mx = x[i] > mx ? x[i] : mx;
        for (int64_t i = 0; i < c; i++) sum += o[i] = expf(x[i] - mx);
        for (int64_t i = 0; i < c; i++) o[i] /= sum;
    }
    return MIEN_OK;
}

/* ==== Pooling ==== */

static int ref_pool(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                    mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    const int64_t N = tx->dims[0], H = tx->dims[1], W = tx->dims[2], C = tx->dims[3];
    const int64_t OH = ty->dims[1], OW = ty->dims[2];
    const int is_max = n->op == NN_OP_MAXPOOL;
    for (int64_t b = 0; b < N; b++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                float *o = out + ((b * OH + oy) * OW + ox) * C;
                for (int64_t c = 0; c < C; c++) o[c] = is_max ? -FLT_MAX : 0.f;
                int count = 0;
                for (int64_t ky = 0; ky < n->kernel[0]; ky++) {
                    int64_t iy = oy * n->stride[0] - n->pad[0] + ky * n->dilation[0];
                    if (iy < 0 || iy >= H) continue;
                    for (int64_t kx = 0; kx < n->kernel[1]; kx++) {
                        int64_t ix = ox * n->stride[1] - n->pad[2] + kx * n->dilation[1];
                        if (ix < 0 || ix >= W) continue;
                        const float *xp = in[0] + ((b * H + iy) * W + ix) * C;
                        count++;
                        if (is_max)
                            for (int64_t c = 0; c < C; c++) o[c] = xp[c] > o[c] ? xp[c] : o[c];
                        else
                            for (int64_t c = 0; c < C; c++) o[c] += xp[c];
                    }
                }
                if (!is_max && count)
                    for (int64_t c = 0; c < C; c++) o[c] /= (float)count;
            }
    return MIEN_OK;
}

/* ==== Data movement ==== */

static void strides_of(const nn_tensor *t, int64_t *st) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        st[i] = s;
        s *= t->dims[i];
    }
}

/* Walk every output element; src_off(idx) is linear in idx with per-axis source strides
 * sst and a base offset; elements flagged out of range (pad) take the fill value. */
static int ref_pad(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                   mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    int64_t sst[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0};
    strides_of(tx, sst);
    const int nd = ty->ndim;
    for (int64_t i = 0; i < ty->n; i++) {
        int64_t off = 0;
        int inside = 1;
        for (int d = 0; d < nd; d++) {
            int64_t s = idx[d] - n->pads[2 * d];
            if (s < 0 || s >= tx->dims[d]) {
                inside = 0;
                break;
            }
            off += s * sst[d];
        }
        out[i] = inside ? in[0][off] : n->pad_value;
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < ty->dims[d]) break;
            idx[d] = 0;
        }
    }
    return MIEN_OK;
}

static int ref_concat(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e) {
    const nn_tensor *ty = &g->t[n->out];
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < n->axis; d++) outer *= ty->dims[d];
    for (int d = n->axis + 1; d < ty->ndim; d++) inner *= ty->dims[d];
    const int64_t orow = ty->dims[n->axis] * inner;
    int64_t at = 0;
    for (int k = 0; k < n->n_in; k++) {
        const int64_t row = g->t[n->in[k]].dims[n->axis] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy(out + o * orow + at, in[k] + o * row, (size_t)row * sizeof(float));
        at += row;
    }
    return MIEN_OK;
}

static int ref_reshape(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                       mien_err *e) {
    if (out != in[0]) memmove(out, in[0], (size_t)g->t[n->out].n * sizeof(float));
    return MIEN_OK;
}

static int ref_transpose(const nn_graph *g, const nn_node *n, const float *const *in,
                         float *out, mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    int64_t xst[NN_MAX_DIMS], sst[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0};
    strides_of(tx, xst);
    for (int d = 0; d < ty->ndim; d++) sst[d] = xst[n->perm[d]];
    int64_t off = 0;
    for (int64_t i = 0; i < ty->n; i++) {
        out[i] = in[0][off];
        for (int d = ty->ndim - 1; d >= 0; d--) {
            idx[d]++;
            off += sst[d];
            if (idx[d] < ty->dims[d]) break;
            off -= sst[d] * idx[d];
            idx[d] = 0;
        }
    }
    return MIEN_OK;
}

static int ref_slice(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                     mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    int64_t xst[NN_MAX_DIMS], sst[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0}, base = 0;
    strides_of(tx, xst);
    for (int d = 0; d < ty->ndim; d++) {
        sst[d] = xst[d] * n->step[d];
        base += n->begin[d] * xst[d];
    }
    int64_t off = base;
    for (int64_t i = 0; i < ty->n; i++) {
        out[i] = in[0][off];
        for (int d = ty->ndim - 1; d >= 0; d--) {
            idx[d]++;
            off += sst[d];
            if (idx[d] < ty->dims[d]) break;
            off -= sst[d] * idx[d];
            idx[d] = 0;
        }
    }
    return MIEN_OK;
}

/* Source coordinate of output index o along an axis, as TensorFlow's resize kernels do. */
static float resize_src(const nn_node *n, int64_t o, int64_t in_size, int64_t out_size) {
    float scale = (n->align_corners && out_size > 1)
                      ? (float)(in_size - 1) / (float)(out_size - 1)
                      : (float)in_size / (float)out_size;
    return n->half_pixel ? ((float)o + 0.5f) * scale - 0.5f : (float)o * scale;
}

static int ref_resize(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                      mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    const int64_t N = tx->dims[0], H = tx->dims[1], W = tx->dims[2], C = tx->dims[3];
    const int64_t OH = ty->dims[1], OW = ty->dims[2];
    for (int64_t b = 0; b < N; b++)
        for (int64_t oy = 0; oy < OH; oy++) {
            float sy = resize_src(n, oy, H, OH);
            for (int64_t ox = 0; ox < OW; ox++) {
                float sx = resize_src(n, ox, W, OW);
                float *o = out + ((b * OH + oy) * OW + ox) * C;
                if (n->op == NN_OP_RESIZE_NEAREST) {
                    /* TF: round with align_corners, floor otherwise (after half-pixel shift). */
                    float fy = n->half_pixel ? sy + 0.5f : sy, fx = n->half_pixel ? sx + 0.5f : sx;
                    int64_t iy = n->align_corners ? (int64_t)roundf(fy) : (int64_t)floorf(fy);
                    int64_t ix = n->align_corners ? (int64_t)roundf(fx) : (int64_t)floorf(fx);
                    iy = iy < 0 ? 0 : iy >= H ? H - 1 : iy;
                    ix = ix < 0 ? 0 : ix >= W ? W - 1 : ix;
                    memcpy(o, in[0] + ((b * H + iy) * W + ix) * C, (size_t)C * sizeof(float));
                    continue;
                }
                float fy = floorf(sy), fx = floorf(sx);
                float ly = sy - fy, lx = sx - fx;
                int64_t y0 = (int64_t)fy, x0 = (int64_t)fx, y1 = y0 + 1, x1 = x0 + 1;
                y0 = y0 < 0 ? 0 : y0 >= H ? H - 1 : y0;
                y1 = y1 < 0 ? 0 : y1 >= H ? H - 1 : y1;
                x0 = x0 < 0 ? 0 : x0 >= W ? W - 1 : x0;
                x1 = x1 < 0 ? 0 : x1 >= W ? W - 1 : x1;
                const float *p00 = in[0] + ((b * H + y0) * W + x0) * C;
                const float *p01 = in[0] + ((b * H + y0) * W + x1) * C;
                const float *p10 = in[0] + ((b * H + y1) * W + x0) * C;
                const float *p11 = in[0] + ((b * H + y1) * W + x1) * C;
                for (int64_t c = 0; c < C; c++) {
                    float top = p00[c] + (p01[c] - p00[c]) * lx;
                    float bot = p10[c] + (p11[c] - p10[c]) * lx;
                    o[c] = top + (bot - top) * ly;
                }
            }
        }
    return MIEN_OK;
}

static int ref_depth_to_space(const nn_graph *g, const nn_node *n, const float *const *in,
                              float *out, mien_err *e) {
    const nn_tensor *tx = &g->t[n->in[0]], *ty = &g->t[n->out];
    const int64_t N = tx->dims[0], H = tx->dims[1], W = tx->dims[2], C = tx->dims[3];
    const int64_t bs = n->block, OC = ty->dims[3], OH = ty->dims[1], OW = ty->dims[2];
    for (int64_t b = 0; b < N; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++)
                for (int64_t by = 0; by < bs; by++)
                    for (int64_t bx = 0; bx < bs; bx++)
                        memcpy(out + ((b * OH + y * bs + by) * OW + x * bs + bx) * OC,
                               in[0] + ((b * H + y) * W + x) * C + (by * bs + bx) * OC,
                               (size_t)OC * sizeof(float));
    return MIEN_OK;
}

static int ref_input(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                     mien_err *e) {
    return MIEN_OK;
}

/* ==== Dispatch ==== */

/* Generated from ops.def: an op whose kernel is missing does not compile. */
static const ref_fn ref_table[NN_OP_COUNT] = {
#define OP(name, str, nmin, nmax, ref, test) [NN_OP_##name] = ref,
#include "nn/ops.def"
#undef OP
};

int nn_ref_eval(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                mien_err *e) {
    ref_fn f = (unsigned)n->op < NN_OP_COUNT ? ref_table[n->op] : NULL;
    if (!f)
        return mien_err_set(e, MIEN_EINTERNAL, "reference backend lacks op %s",
                            nn_op_name(n->op));
    return f(g, n, in, out, e);
}

int nn_ref_has_op(nn_op op) { return (unsigned)op < NN_OP_COUNT && ref_table[op] != NULL; }

int nn_ref_eval_pre(const nn_graph *g, const nn_node *n, const float *const *in, float *out,
                    float *pre, mien_err *e) {
    if (n->act == NN_ACT_NONE) {
        int rc = nn_ref_eval(g, n, in, out, e);
        if (!rc && pre) memcpy(pre, out, (size_t)g->t[n->out].n * sizeof(float));
        return rc;
    }
    /* The same node without its activation (and without the alpha input that goes with a
     * PReLU, which bias_of would otherwise take for a bias). */
    nn_node m = *n;
    m.act = NN_ACT_NONE;
    if (n->act == NN_ACT_PRELU) m.n_in--;
    int rc = nn_ref_eval(g, &m, in, out, e);
    if (rc) return rc;
    const nn_tensor *ty = &g->t[n->out];
    if (pre) memcpy(pre, out, (size_t)ty->n * sizeof(float));
    apply_act(n, act_alpha(n, in), out, ty->n, ty->ndim ? ty->dims[ty->ndim - 1] : 1);
    return MIEN_OK;
}

/* ==== The reference backend of nn_exec (exec.h) ====
 * Every exec has it: it runs whatever no fast backend claims. */

int nn_ref_run_node(nn_exec *x, const nn_node *n, mien_err *e) {
    const float *in_small[8] = {0};
    const float **in = in_small;
    if (n->n_in > 8) {
        in = malloc((size_t)n->n_in * sizeof *in);
        if (!in) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n->n_in; i++) in[i] = x->ptr[n->in[i]];
    int rc = nn_ref_eval(x->g, n, in, x->ptr[n->out], e);
    if (in != in_small) free(in);
    return rc;
}

static int ref_kernel_run(nn_exec *x, const nn_node *n, void *state, mien_err *e) {
    return nn_ref_run_node(x, n, e);
}

static int ref_supports(const nn_graph *g, const nn_node *n) { return nn_ref_has_op(n->op); }

static int ref_init(nn_exec *x, const nn_node *n, nn_kernel *k, mien_err *e) {
    k->run = ref_kernel_run;
    k->free = NULL;
    k->state = NULL;
    k->backend = "ref";
    return MIEN_OK;
}

const nn_backend nn_backend_ref = {
    .name = "ref", .supports = ref_supports, .init = ref_init,
};
