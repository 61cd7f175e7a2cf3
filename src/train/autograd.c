/* Reverse-mode gradients over an nn_graph: the forward pass keeps every activation, the
 * backward pass walks the nodes in reverse (the node list is the tape) and adds each node's
 * input gradients.
 *
 * Two sets of kernels. The fast ones (train/kern.h, the default): the own GEMM for every
 * product, vectorised and threaded per-channel passes, and gradient buffers written by their
 * first contributor rather than zeroed and added to. The reference ones (tr_net_opts.reference),
 * kept as the oracle: the forward pass runs the reference backend's kernel of each op
 * (nn/backend_ref.h, the same one inference checks its backends against), except for batch
 * norm's statistics (see bn_forward); the backward pass has dense products through OpenBLAS
 * (1x1 convolutions straight on the NHWC activations, other convolutions through im2col),
 * depthwise convolution, batch norm and the elementwise ops as loops whose innermost index
 * runs over contiguous channels. The fast forward pass falls back to the reference backend's
 * kernel for what its kernels do not cover (grouped convolutions, depthwise multipliers over
 * 1, broadcasting adds, l2norm and every op without a backward). */
#include "train/train.h"

#include "nn/backend_ref.h"
#include "train/kern.h"

#include <cblas.h>

/* The channel loops below are written to vectorise, but -O2's "very cheap" vectoriser only
 * takes loops whose trip count it knows, which none of them has. */
#if defined(__GNUC__) && !defined(__clang__) /* a GCC pragma: clang (the fuzz build) warns on it */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ==== Gradient buffer pool ====
 * A tensor's gradient lives from the backward step of its last consumer to the one of its
 * producer. Buffers go back to the pool then and are reused by later tensors of the same
 * size, so the steady state allocates nothing. */

typedef struct tr_pool {
    float **buf;
    int64_t *n;
    unsigned char *busy;
    int count, cap;
} tr_pool;

/* A free buffer of n floats, zeroed when zero is set (else its contents are stale). */
static float *pool_get(tr_pool *p, int64_t n, int zero) {
    for (int i = 0; i < p->count; i++)
        if (!p->busy[i] && p->n[i] == n) {
            p->busy[i] = 1;
            if (zero) memset(p->buf[i], 0, (size_t)n * sizeof(float));
            return p->buf[i];
        }
    if (p->count == p->cap) {
        int nc = p->cap ? 2 * p->cap : 64;
        float **nb = realloc(p->buf, (size_t)nc * sizeof *nb);
        if (!nb) return NULL;
        p->buf = nb;
        int64_t *nn = realloc(p->n, (size_t)nc * sizeof *nn);
        if (!nn) return NULL;
        p->n = nn;
        unsigned char *nbusy = realloc(p->busy, (size_t)nc);
        if (!nbusy) return NULL;
        p->busy = nbusy;
        p->cap = nc;
    }
    float *b = calloc((size_t)(n ? n : 1), sizeof(float));
    if (!b) return NULL;
    p->buf[p->count] = b;
    p->n[p->count] = n;
    p->busy[p->count] = 1;
    p->count++;
    return b;
}

static void pool_put(tr_pool *p, float *b) {
    for (int i = 0; i < p->count; i++)
        if (p->buf[i] == b) {
            p->busy[i] = 0;
            return;
        }
}

static void pool_free(tr_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->count; i++) free(p->buf[i]);
    free(p->buf);
    free(p->n);
    free(p->busy);
    free(p);
}

/* ==== Shapes ==== */

static int64_t last_dim(const nn_tensor *t) { return t->ndim ? t->dims[t->ndim - 1] : 1; }

static int has_backward(nn_op op) {
    switch (op) {
    case NN_OP_INPUT: case NN_OP_CONV2D: case NN_OP_DWCONV2D: case NN_OP_FC:
    case NN_OP_BATCHNORM_TRAIN: case NN_OP_PRELU: case NN_OP_ADD: case NN_OP_L2NORM:
    case NN_OP_RESHAPE:
        return 1;
    default:
        return 0;
    }
}

/* Ops whose fused activation our forward kernels apply (and undo in backward). */
static int own_act(nn_op op) {
    return op == NN_OP_CONV2D || op == NN_OP_DWCONV2D || op == NN_OP_FC || op == NN_OP_ADD;
}

static int act_supported(nn_act a) {
    return a == NN_ACT_NONE || a == NN_ACT_RELU || a == NN_ACT_PRELU;
}

/* ==== Creation ==== */

void tr_net_free(tr_net *net) {
    if (!net) return;
    if (net->g) {
        for (int t = 0; t < net->g->n_t; t++) {
            const nn_tensor *tt = &net->g->t[t];
            int p = tt->producer;
            int alias = p >= 0 && net->g->nodes[p].op == NN_OP_RESHAPE;
            if (!tt->data && !alias) free(net->val[t]);
        }
        for (int i = 0; i < net->g->n_nodes && net->pre; i++) free(net->pre[i]);
    }
    for (int i = 0; i < net->n_p; i++) {
        free(net->p[i].m);
        free(net->p[i].v);
    }
    for (int i = 0; i < net->n_bn; i++) {
        free(net->bn[i].run_mean);
        free(net->bn[i].run_var);
        free(net->bn[i].mean);
        free(net->bn[i].invstd);
    }
    pool_free(net->pool);
    free(net->val);
    free(net->grad);
    free(net->pre);
    free(net->needs);
    free(net->p);
    free(net->gbuf);
    free(net->bn);
    free(net->bn_of);
    free(net->col);
    free(net->fresh);
    tr_kern_free(net->kern);
    nn_graph_free(net->g);
    free(net);
}

int tr_net_create(nn_graph *g, const int *params, const int *decay, int n_params,
                  const tr_net_opts *o, tr_net **out, mien_err *e) {
    *out = NULL;
    tr_net *net = calloc(1, sizeof *net);
    if (!net) {
        nn_graph_free(g);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    net->g = g;
    net->training = 1;
    net->bn_momentum = 0.1f;
    net->comm = tr_comm_single();
    const int nt = g->n_t, nn = g->n_nodes;
    net->val = calloc((size_t)nt, sizeof *net->val);
    net->grad = calloc((size_t)nt, sizeof *net->grad);
    net->pre = calloc((size_t)(nn ? nn : 1), sizeof *net->pre);
    net->needs = calloc((size_t)nt, 1);
    net->p = calloc((size_t)(n_params ? n_params : 1), sizeof *net->p);
    net->bn_of = malloc((size_t)(nn ? nn : 1) * sizeof *net->bn_of);
    net->pool = calloc(1, sizeof *net->pool);
    net->fresh = calloc((size_t)nt, 1);
    if (!net->val || !net->grad || !net->pre || !net->needs || !net->p || !net->bn_of ||
        !net->pool || !net->fresh)
        goto oom;
    if (!(o && o->reference) && !(net->kern = tr_kern_create(o && o->threads > 0 ? o->threads : 1)))
        goto oom;

    /* Parameters: constants of the graph; their gradients share one block. */
    int64_t total = 0;
    for (int i = 0; i < n_params; i++) {
        int t = params[i];
        if (t < 0 || t >= nt || !g->t[t].data) {
            tr_net_free(net);
            return mien_err_set(e, MIEN_EINVAL, "parameter %d is not a constant tensor", i);
        }
        total += g->t[t].n;
    }
    net->gbuf = calloc((size_t)(total ? total : 1), sizeof(float));
    if (!net->gbuf) goto oom;
    net->gbuf_n = total;
    int64_t off = 0;
    for (int i = 0; i < n_params; i++) {
        tr_param *p = &net->p[i];
        p->t = params[i];
        p->w = (float *)g->t[p->t].data; /* storage owned by the graph, writable by design */
        p->n = g->t[p->t].n;
        p->g = net->gbuf + off;
        p->decay = decay ? decay[i] : 0;
        off += p->n;
        net->needs[p->t] = 1;
        net->grad[p->t] = p->g;
    }
    net->n_p = n_params;

    /* Which tensors need a gradient: parameters, inputs on request, and everything computed
     * from them. */
    for (int i = 0; i < nn; i++) {
        const nn_node *n = &g->nodes[i];
        net->bn_of[i] = -1;
        if (n->op == NN_OP_INPUT) {
            net->needs[n->out] = o && o->input_grad;
            continue;
        }
        for (int k = 0; k < n->n_in; k++)
            if (net->needs[n->in[k]]) net->needs[n->out] = 1;
        if (net->needs[n->out] && (!has_backward(n->op) ||
                                   ((own_act(n->op) || n->op == NN_OP_BATCHNORM_TRAIN) && !act_supported(n->act)))) {
            mien_err_set(e, MIEN_EUNSUPPORTED, "%s: no backward pass for op %s%s", g->t[n->out].name,
                         nn_op_name(n->op), has_backward(n->op) ? " with this activation" : "");
            tr_net_free(net);
            return MIEN_EUNSUPPORTED;
        }
        if (n->op == NN_OP_BATCHNORM_TRAIN) net->n_bn++;
    }

    /* Activations: one buffer per computed tensor (reshapes alias their input). */
    for (int i = 0; i < nn; i++) {
        const nn_node *n = &g->nodes[i];
        int64_t cnt = g->t[n->out].n;
        if (n->op == NN_OP_RESHAPE) continue;
        net->val[n->out] = malloc((size_t)(cnt ? cnt : 1) * sizeof(float));
        if (!net->val[n->out]) goto oom;
        if (own_act(n->op) && n->act != NN_ACT_NONE && net->needs[n->out]) {
            net->pre[i] = malloc((size_t)(cnt ? cnt : 1) * sizeof(float));
            if (!net->pre[i]) goto oom;
        }
    }
    for (int t = 0; t < nt; t++)
        if (g->t[t].data) net->val[t] = (float *)g->t[t].data;
    for (int i = 0; i < nn; i++)
        if (g->nodes[i].op == NN_OP_RESHAPE) net->val[g->nodes[i].out] = net->val[g->nodes[i].in[0]];

    net->bn = calloc((size_t)(net->n_bn ? net->n_bn : 1), sizeof *net->bn);
    if (!net->bn) goto oom;
    int k = 0;
    for (int i = 0; i < nn; i++) {
        if (g->nodes[i].op != NN_OP_BATCHNORM_TRAIN) continue;
        tr_bn *b = &net->bn[k];
        b->node = i;
        b->c = last_dim(&g->t[g->nodes[i].out]);
        b->run_mean = calloc((size_t)b->c, sizeof(float));
        b->run_var = malloc((size_t)b->c * sizeof(float));
        b->mean = calloc((size_t)b->c, sizeof(float));
        b->invstd = calloc((size_t)b->c, sizeof(float));
        if (!b->run_mean || !b->run_var || !b->mean || !b->invstd) goto oom;
        for (int64_t c = 0; c < b->c; c++) b->run_var[c] = 1.f;
        net->bn_of[i] = k++;
    }
    *out = net;
    return MIEN_OK;
oom:
    tr_net_free(net);
    return mien_err_set(e, MIEN_ENOMEM, "out of memory building the training net");
}

float *tr_input(tr_net *net, int i) { return net->val[net->g->inputs[i]]; }
const float *tr_output(const tr_net *net, int i) { return net->val[net->g->outputs[i]]; }
const float *tr_input_grad(const tr_net *net, int i) { return net->grad[net->g->inputs[i]]; }

tr_param *tr_find_param(tr_net *net, const char *name) {
    for (int i = 0; i < net->n_p; i++)
        if (!strcmp(net->g->t[net->p[i].t].name, name)) return &net->p[i];
    return NULL;
}

tr_bn *tr_find_bn(tr_net *net, const char *name) {
    for (int i = 0; i < net->n_bn; i++)
        if (!strcmp(net->g->t[net->g->nodes[net->bn[i].node].out].name, name)) return &net->bn[i];
    return NULL;
}

int64_t tr_num_params(const tr_net *net) { return net->gbuf_n; }

size_t tr_net_bytes(const tr_net *net) {
    size_t b = 0;
    for (int i = 0; i < net->g->n_nodes; i++) {
        const nn_node *n = &net->g->nodes[i];
        size_t cnt = (size_t)net->g->t[n->out].n * sizeof(float);
        if (n->op != NN_OP_RESHAPE) b += cnt;
        if (net->pre[i]) b += cnt;
    }
    for (int i = 0; i < net->pool->count; i++) b += (size_t)net->pool->n[i] * sizeof(float);
    b += net->col_n * sizeof(float) + (size_t)net->gbuf_n * sizeof(float);
    return b;
}

static float *col_scratch(tr_net *net, size_t n) {
    if (n > net->col_n) {
        free(net->col);
        net->col = malloc(n * sizeof(float));
        net->col_n = net->col ? n : 0;
    }
    return net->col;
}

/* ==== Activations ==== */

static const float *alpha_of(const tr_net *net, const nn_node *n) {
    return n->act == NN_ACT_PRELU ? net->val[n->in[n->n_in - 1]] : NULL;
}

/* dz from dy through the fused activation (z the pre-activation); accumulates dalpha. */
static void act_backward(const nn_node *n, const float *z, const float *alpha, const float *dy,
                         float *dz, float *dalpha, int64_t count, int64_t c) {
    if (n->act == NN_ACT_RELU) {
        for (int64_t i = 0; i < count; i++) dz[i] = z[i] > 0 ? dy[i] : 0;
        return;
    }
    for (int64_t r = 0; r < count / c; r++) {
        const float *zr = z + r * c, *dyr = dy + r * c;
        float *dzr = dz + r * c;
        for (int64_t k = 0; k < c; k++) {
            int pos = zr[k] > 0;
            dzr[k] = pos ? dyr[k] : alpha[k] * dyr[k];
            if (dalpha && !pos) dalpha[k] += dyr[k] * zr[k];
        }
    }
}

/* ==== Convolution ==== */

typedef struct conv_geom {
    int64_t N, H, W, CI, KH, KW, CIG, CO, OH, OW, G, COG, K;
} conv_geom;

static conv_geom conv_geom_of(const nn_graph *g, const nn_node *n) {
    const nn_tensor *tx = &g->t[n->in[0]], *tw = &g->t[n->in[1]], *ty = &g->t[n->out];
    conv_geom c = {tx->dims[0], tx->dims[1], tx->dims[2], tx->dims[3], tw->dims[0], tw->dims[1],
                   tw->dims[2], tw->dims[3], ty->dims[1], ty->dims[2], n->groups, 0, 0};
    if (c.G < 1) c.G = 1;
    c.COG = c.CO / c.G;
    c.K = c.KH * c.KW * c.CIG;
    return c;
}

static int is_pointwise(const nn_node *n, const conv_geom *c) {
    return c->KH == 1 && c->KW == 1 && n->stride[0] == 1 && n->stride[1] == 1 && n->pad[0] == 0 &&
           n->pad[1] == 0 && n->pad[2] == 0 && n->pad[3] == 0 && c->G == 1;
}

/* Rows p0 .. p0+R-1 of the im2col matrix of group gi: (R, K), K = KH*KW*CIG. */
static void im2col(const nn_node *n, const conv_geom *c, const float *x, int64_t p0, int64_t R,
                   int64_t gi, float *col) {
    for (int64_t r = 0; r < R; r++) {
        int64_t p = p0 + r, b = p / (c->OH * c->OW), rem = p % (c->OH * c->OW);
        int64_t oy = rem / c->OW, ox = rem % c->OW;
        float *cr = col + r * c->K;
        for (int64_t ky = 0; ky < c->KH; ky++) {
            int64_t iy = oy * n->stride[0] - n->pad[0] + ky * n->dilation[0];
            for (int64_t kx = 0; kx < c->KW; kx++) {
                int64_t ix = ox * n->stride[1] - n->pad[2] + kx * n->dilation[1];
                float *dst = cr + (ky * c->KW + kx) * c->CIG;
                if (iy < 0 || iy >= c->H || ix < 0 || ix >= c->W) {
                    memset(dst, 0, (size_t)c->CIG * sizeof(float));
                } else {
                    const float *src = x + ((b * c->H + iy) * c->W + ix) * c->CI + gi * c->CIG;
                    memcpy(dst, src, (size_t)c->CIG * sizeof(float));
                }
            }
        }
    }
}

static void col2im_add(const nn_node *n, const conv_geom *c, const float *col, int64_t p0,
                       int64_t R, int64_t gi, float *dx) {
    for (int64_t r = 0; r < R; r++) {
        int64_t p = p0 + r, b = p / (c->OH * c->OW), rem = p % (c->OH * c->OW);
        int64_t oy = rem / c->OW, ox = rem % c->OW;
        const float *cr = col + r * c->K;
        for (int64_t ky = 0; ky < c->KH; ky++) {
            int64_t iy = oy * n->stride[0] - n->pad[0] + ky * n->dilation[0];
            if (iy < 0 || iy >= c->H) continue;
            for (int64_t kx = 0; kx < c->KW; kx++) {
                int64_t ix = ox * n->stride[1] - n->pad[2] + kx * n->dilation[1];
                if (ix < 0 || ix >= c->W) continue;
                const float *src = cr + (ky * c->KW + kx) * c->CIG;
                float *dst = dx + ((b * c->H + iy) * c->W + ix) * c->CI + gi * c->CIG;
                for (int64_t ci = 0; ci < c->CIG; ci++) dst[ci] += src[ci];
            }
        }
    }
}

static int64_t chunk_rows(const conv_geom *c) {
    int64_t r = ((int64_t)1 << 21) / (c->K ? c->K : 1);
    return r < 1 ? 1 : r;
}

static int conv_backward(tr_net *net, const nn_node *n, const float *dz, float *dx, float *dw,
                         mien_err *e) {
    const conv_geom c = conv_geom_of(net->g, n);
    const float *x = net->val[n->in[0]], *w = net->val[n->in[1]];
    const int64_t P = c.N * c.OH * c.OW;
    if (is_pointwise(n, &c)) {
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c.CI, (int)c.CO, (int)P, 1.f,
                        x, (int)c.CI, dz, (int)c.CO, 1.f, dw, (int)c.CO);
        if (dx)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, (int)c.CI, (int)c.CO, 1.f,
                        dz, (int)c.CO, w, (int)c.CO, 1.f, dx, (int)c.CI);
        return MIEN_OK;
    }
    const int64_t RC = chunk_rows(&c), R0 = RC < P ? RC : P;
    float *col = col_scratch(net, (size_t)R0 * (size_t)c.K * 2);
    if (!col) return mien_err_set(e, MIEN_ENOMEM, "out of memory (im2col)");
    float *dcol = col + R0 * c.K;
    for (int64_t p0 = 0; p0 < P; p0 += RC) {
        int64_t R = P - p0 < RC ? P - p0 : RC;
        for (int64_t gi = 0; gi < c.G; gi++) {
            const float *dzg = dz + p0 * c.CO + gi * c.COG;
            if (dw) {
                im2col(n, &c, x, p0, R, gi, col);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c.K, (int)c.COG, (int)R,
                            1.f, col, (int)c.K, dzg, (int)c.CO, 1.f, dw + gi * c.COG, (int)c.CO);
            }
            if (dx) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)c.K, (int)c.COG,
                            1.f, dzg, (int)c.CO, w + gi * c.COG, (int)c.CO, 0.f, dcol, (int)c.K);
                col2im_add(n, &c, dcol, p0, R, gi, dx);
            }
        }
    }
    return MIEN_OK;
}

/* ==== Depthwise convolution ==== */

static void dw_backward(tr_net *net, const nn_node *n, const float *dz, float *dx, float *dw) {
    const nn_graph *g = net->g;
    const nn_tensor *tx = &g->t[n->in[0]], *tw = &g->t[n->in[1]], *ty = &g->t[n->out];
    const float *x = net->val[n->in[0]], *w = net->val[n->in[1]];
    const int64_t N = tx->dims[0], H = tx->dims[1], W = tx->dims[2], C = tx->dims[3];
    const int64_t KH = tw->dims[0], KW = tw->dims[1], M = tw->dims[3], CO = C * M;
    const int64_t OH = ty->dims[1], OW = ty->dims[2];
    for (int64_t b = 0; b < N; b++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                const float *d = dz + ((b * OH + oy) * OW + ox) * CO;
                for (int64_t ky = 0; ky < KH; ky++) {
                    int64_t iy = oy * n->stride[0] - n->pad[0] + ky * n->dilation[0];
                    if (iy < 0 || iy >= H) continue;
                    for (int64_t kx = 0; kx < KW; kx++) {
                        int64_t ix = ox * n->stride[1] - n->pad[2] + kx * n->dilation[1];
                        if (ix < 0 || ix >= W) continue;
                        int64_t xo = ((b * H + iy) * W + ix) * C, wo = (ky * KW + kx) * CO;
                        const float *xp = x + xo, *wp = w + wo;
                        if (M == 1) {
                            if (dx) {
                                float *dxp = dx + xo;
                                for (int64_t k = 0; k < C; k++) dxp[k] += d[k] * wp[k];
                            }
                            if (dw) {
                                float *dwp = dw + wo;
                                for (int64_t k = 0; k < C; k++) dwp[k] += d[k] * xp[k];
                            }
                        } else {
                            for (int64_t k = 0; k < C; k++)
                                for (int64_t m = 0; m < M; m++) {
                                    if (dx) dx[xo + k] += d[k * M + m] * wp[k * M + m];
                                    if (dw) dw[wo + k * M + m] += d[k * M + m] * xp[k];
                                }
                        }
                    }
                }
            }
}

/* ==== Fully connected ==== */

static void fc_backward(tr_net *net, const nn_node *n, const float *dz, float *dx, float *dw) {
    const nn_tensor *tw = &net->g->t[n->in[1]];
    const int64_t K = tw->dims[0], M = tw->dims[1], R = net->g->t[n->out].n / M;
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)M, (int)R, 1.f,
                    net->val[n->in[0]], (int)K, dz, (int)M, 1.f, dw, (int)M);
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)K, (int)M, 1.f, dz,
                    (int)M, net->val[n->in[1]], (int)M, 1.f, dx, (int)K);
}

/* Bias: the third input when present (before a PReLU alpha). */
static int bias_input(const nn_node *n) {
    int extra = n->n_in - 2 - (n->act == NN_ACT_PRELU);
    return extra > 0 ? n->in[2] : -1;
}

/* ==== Batch norm ====
 * Memory-bound: every pass streams the activations, so passes are few and their inner loops
 * are branch-free over channels (selects, not ifs) so they vectorise. Channel sums add 64 rows
 * in float, then fold into double. */

#define BN_BLOCK 64

/* acc[k] += sum over rows of (x[r][k] - sub[k]) ^ p, p = 1 or 2 (sub NULL: 0). */
static void bn_col_sums(const float *x, int64_t R, int64_t C, const float *sub, int square,
                        double *acc, float *tmp) {
    for (int64_t r0 = 0; r0 < R; r0 += BN_BLOCK) {
        int64_t r1 = r0 + BN_BLOCK < R ? r0 + BN_BLOCK : R;
        memset(tmp, 0, (size_t)C * sizeof *tmp);
        for (int64_t r = r0; r < r1; r++) {
            const float *xr = x + r * C;
            if (!square) {
                for (int64_t k = 0; k < C; k++) tmp[k] += xr[k];
            } else {
                for (int64_t k = 0; k < C; k++) {
                    float d = xr[k] - sub[k];
                    tmp[k] += d * d;
                }
            }
        }
        for (int64_t k = 0; k < C; k++) acc[k] += tmp[k];
    }
}

/* The batch statistics stay here rather than in the reference kernel of BATCHNORM_TRAIN
 * (nn/backend_ref.c), which computes them too: training sums them over every rank, keeps the
 * batch mean and 1/std for the backward pass, updates the running averages, normalises with
 * those in eval mode and sets gamma and beta from the data on request; the kernel does none of
 * that. Only the normalisation itself is the reference backend's. */
static int bn_forward(tr_net *net, const nn_node *n, float *y, int init_from_data, mien_err *e) {
    tr_bn *b = &net->bn[net->bn_of[n - net->g->nodes]];
    const float *x = net->val[n->in[0]];
    float *gamma = net->val[n->in[1]], *beta = net->val[n->in[2]];
    const int64_t C = b->c, R = net->g->t[n->out].n / C;
    double *acc = calloc((size_t)C, sizeof *acc);
    float *a = malloc((size_t)C * 3 * sizeof *a);
    if (!acc || !a) {
        free(acc);
        free(a);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    float *sh = a + C, *tmp = a + 2 * C;
    int rc = MIEN_OK;
    if (net->training || init_from_data) {
        /* Two passes (mean, then mean squared deviation), each summed over every rank. */
        const double cnt = (double)R * net->comm->size;
        bn_col_sums(x, R, C, NULL, 0, acc, tmp);
        if ((rc = net->comm->sum_d(net->comm->ctx, acc, C))) goto done;
        for (int64_t k = 0; k < C; k++) b->mean[k] = (float)(acc[k] / cnt);
        memset(acc, 0, (size_t)C * sizeof *acc);
        bn_col_sums(x, R, C, b->mean, 1, acc, tmp);
        if ((rc = net->comm->sum_d(net->comm->ctx, acc, C))) goto done;
        const float mom = net->bn_momentum;
        for (int64_t k = 0; k < C; k++) {
            double var = acc[k] / cnt;
            b->invstd[k] = (float)(1.0 / sqrt(var + n->eps));
            if (init_from_data) {
                /* Identity at this batch: gamma = std, beta = mean. */
                gamma[k] = (float)sqrt(var + n->eps);
                beta[k] = b->mean[k];
                b->run_mean[k] = b->mean[k];
                b->run_var[k] = (float)var;
            } else {
                double unbiased = cnt > 1 ? var * cnt / (cnt - 1) : var;
                b->run_mean[k] = (1 - mom) * b->run_mean[k] + mom * b->mean[k];
                b->run_var[k] = (float)((1 - mom) * b->run_var[k] + mom * unbiased);
            }
            a[k] = b->invstd[k] * gamma[k];
            sh[k] = beta[k] - b->mean[k] * a[k];
        }
    } else {
        for (int64_t k = 0; k < C; k++) {
            a[k] = gamma[k] / sqrtf(b->run_var[k] + n->eps);
            sh[k] = beta[k] - b->run_mean[k] * a[k];
        }
    }
    /* y = act(x a + sh): the reference kernel of the inference batch norm (the op BATCHNORM,
     * x scale + shift) on a copy of this node, which keeps this node's activation. */
    nn_node m = *n;
    m.op = NN_OP_BATCHNORM;
    const float *in[4] = {x, a, sh, alpha_of(net, n)};
    rc = nn_ref_eval_pre(net->g, &m, in, y, NULL, e);
    free(acc);
    free(a);
    return rc;
done:
    free(acc);
    free(a);
    return mien_err_set(e, rc, "batch norm: collective failed");
}

/* Pass 1 of the backward: per channel, sums of d, d (x - mean) and (PReLU) dy z over z <= 0,
 * where d = act'(z) dy and z = x a + sh is recomputed rather than stored. */
static void bn_grad_sums(const float *x, const float *dy, int64_t R, int64_t C, const float *a,
                         const float *sh, const float *mean, nn_act act, const float *al,
                         double *sdy, double *sdx, double *sal, float *tmp) {
    float *t0 = tmp, *t1 = tmp + C, *t2 = tmp + 2 * C;
    for (int64_t r0 = 0; r0 < R; r0 += BN_BLOCK) {
        int64_t r1 = r0 + BN_BLOCK < R ? r0 + BN_BLOCK : R;
        memset(tmp, 0, (size_t)C * 3 * sizeof *tmp);
        for (int64_t r = r0; r < r1; r++) {
            const float *xr = x + r * C, *dr = dy + r * C;
            if (act == NN_ACT_PRELU) {
                for (int64_t k = 0; k < C; k++) {
                    float z = xr[k] * a[k] + sh[k], g = dr[k];
                    int pos = z > 0;
                    float d = pos ? g : al[k] * g;
                    t2[k] += pos ? 0.f : g * z;
                    t0[k] += d;
                    t1[k] += d * (xr[k] - mean[k]);
                }
            } else if (act == NN_ACT_RELU) {
                for (int64_t k = 0; k < C; k++) {
                    float z = xr[k] * a[k] + sh[k];
                    float d = z > 0 ? dr[k] : 0.f;
                    t0[k] += d;
                    t1[k] += d * (xr[k] - mean[k]);
                }
            } else {
                for (int64_t k = 0; k < C; k++) {
                    t0[k] += dr[k];
                    t1[k] += dr[k] * (xr[k] - mean[k]);
                }
            }
        }
        for (int64_t k = 0; k < C; k++) {
            sdy[k] += t0[k];
            sdx[k] += t1[k];
            sal[k] += t2[k];
        }
    }
}

/* Pass 2: dx += c1 d - c2 - c3 (x - mean). */
static void bn_grad_input(const float *x, const float *dy, float *dx, int64_t R, int64_t C,
                          const float *a, const float *sh, const float *mean, nn_act act,
                          const float *al, const float *c1, const float *c2, const float *c3) {
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C, *dr = dy + r * C;
        float *o = dx + r * C;
        if (act == NN_ACT_PRELU) {
            for (int64_t k = 0; k < C; k++) {
                float z = xr[k] * a[k] + sh[k];
                float d = z > 0 ? dr[k] : al[k] * dr[k];
                o[k] += c1[k] * d - c2[k] - c3[k] * (xr[k] - mean[k]);
            }
        } else if (act == NN_ACT_RELU) {
            for (int64_t k = 0; k < C; k++) {
                float z = xr[k] * a[k] + sh[k];
                float d = z > 0 ? dr[k] : 0.f;
                o[k] += c1[k] * d - c2[k] - c3[k] * (xr[k] - mean[k]);
            }
        } else {
            for (int64_t k = 0; k < C; k++) o[k] += c1[k] * dr[k] - c2[k] - c3[k] * (xr[k] - mean[k]);
        }
    }
}

/* With a fused activation the pre-activation is recomputed from the input, so nothing beyond
 * the BN input is stored: d = act'(z) dy, then the batch-norm backward of d:
 *   dx = a (d - sum(d) / n - xhat sum(d xhat) / n),  a = gamma invstd,
 * with the sums over the global batch (training), or dx = a d (eval). */
static int bn_backward(tr_net *net, const nn_node *n, const float *dy, float *dx, float *dgamma,
                       float *dbeta, float *dalpha, mien_err *e) {
    tr_bn *b = &net->bn[net->bn_of[n - net->g->nodes]];
    const float *x = net->val[n->in[0]], *gamma = net->val[n->in[1]], *beta = net->val[n->in[2]];
    const float *al = alpha_of(net, n);
    const int64_t C = b->c, R = net->g->t[n->out].n / C;
    double *s = calloc((size_t)C * 3, sizeof *s);
    float *mean = malloc((size_t)C * 10 * sizeof *mean);
    if (!s || !mean) {
        free(s);
        free(mean);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    float *invstd = mean + C, *a = mean + 2 * C, *sh = mean + 3 * C, *tmp = mean + 4 * C;
    float *c1 = mean + 7 * C, *c2 = mean + 8 * C, *c3 = mean + 9 * C;
    for (int64_t k = 0; k < C; k++) {
        mean[k] = net->training ? b->mean[k] : b->run_mean[k];
        invstd[k] = net->training ? b->invstd[k] : 1.f / sqrtf(b->run_var[k] + n->eps);
        a[k] = invstd[k] * gamma[k];
        sh[k] = beta[k] - mean[k] * a[k];
    }
    double *sdy = s, *sdx = s + C, *sal = s + 2 * C;
    bn_grad_sums(x, dy, R, C, a, sh, mean, n->act, al, sdy, sdx, sal, tmp);
    /* Parameter gradients from this rank's rows; the trainer sums them over ranks with the
     * other parameter gradients. sum(d xhat) = invstd sum(d (x - mean)). */
    for (int64_t k = 0; k < C; k++) {
        if (dbeta) dbeta[k] += (float)sdy[k];
        if (dgamma) dgamma[k] += (float)(sdx[k] * invstd[k]);
        if (dalpha) dalpha[k] += (float)sal[k];
    }
    int rc = MIEN_OK;
    if (dx) {
        /* The input gradient needs the sums over the whole (global) batch. */
        if (net->training && (rc = net->comm->sum_d(net->comm->ctx, s, 2 * C))) goto done;
        const double cnt = (double)R * net->comm->size;
        for (int64_t k = 0; k < C; k++) {
            c1[k] = a[k];
            c2[k] = net->training ? (float)(a[k] * sdy[k] / cnt) : 0.f;
            c3[k] = net->training ? (float)(a[k] * sdx[k] * invstd[k] * invstd[k] / cnt) : 0.f;
        }
        bn_grad_input(x, dy, dx, R, C, a, sh, mean, n->act, al, c1, c2, c3);
    }
done:
    free(s);
    free(mean);
    if (rc) return mien_err_set(e, rc, "batch norm: collective failed");
    return MIEN_OK;
}

/* ==== Elementwise ==== */

/* Strides of input t over the output's axes (0 where t broadcasts). */
static void bcast_strides(const nn_tensor *t, const nn_tensor *ty, int64_t *st) {
    int64_t s = 1;
    for (int d = ty->ndim - 1; d >= 0; d--) {
        int ti = t->ndim - ty->ndim + d;
        int64_t dim = ti >= 0 ? t->dims[ti] : 1;
        st[d] = dim == 1 ? 0 : s;
        s *= dim;
    }
}

static int same_shape(const nn_tensor *a, const nn_tensor *b) {
    return a->n == b->n && a->ndim == b->ndim &&
           !memcmp(a->dims, b->dims, (size_t)a->ndim * sizeof a->dims[0]);
}

/* d(input) += dy summed over the axes where the input broadcasts. */
static void bcast_backward(const nn_tensor *t, const nn_tensor *ty, const float *dy, float *dt) {
    if (same_shape(t, ty)) {
        for (int64_t i = 0; i < ty->n; i++) dt[i] += dy[i];
        return;
    }
    int64_t st[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0}, o = 0;
    bcast_strides(t, ty, st);
    for (int64_t i = 0; i < ty->n; i++) {
        dt[o] += dy[i];
        for (int d = ty->ndim - 1; d >= 0; d--) {
            idx[d]++;
            o += st[d];
            if (idx[d] < ty->dims[d]) break;
            o -= st[d] * idx[d];
            idx[d] = 0;
        }
    }
}

static void prelu_backward(tr_net *net, const nn_node *n, const float *dy, float *dx, float *dal) {
    const float *x = net->val[n->in[0]], *al = net->val[n->in[1]];
    const int64_t cnt = net->g->t[n->out].n, c = net->g->t[n->in[1]].n;
    for (int64_t r = 0; r < cnt / c; r++)
        for (int64_t k = 0; k < c; k++) {
            float v = x[r * c + k], d = dy[r * c + k];
            if (dx) dx[r * c + k] += v > 0 ? d : al[k] * d;
            if (dal && !(v > 0)) dal[k] += d * v;
        }
}

/* y = x r, r = 1/sqrt(max(|x|^2, eps)): dx = r (dy - y (y . dy)) where |x|^2 > eps, r dy
 * where the clamp holds r constant. */
static void l2_backward(tr_net *net, const nn_node *n, const float *dy, float *dx) {
    const nn_tensor *tx = &net->g->t[n->in[0]];
    const float *x = net->val[n->in[0]], *y = net->val[n->out];
    const int64_t c = last_dim(tx), rows = c ? tx->n / c : 0;
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0, yd = 0;
        for (int64_t k = 0; k < c; k++) ss += (double)x[r * c + k] * x[r * c + k];
        float inv = (float)(1.0 / sqrt(ss > n->eps ? ss : n->eps));
        if (ss > n->eps)
            for (int64_t k = 0; k < c; k++) yd += (double)y[r * c + k] * dy[r * c + k];
        for (int64_t k = 0; k < c; k++)
            dx[r * c + k] += inv * (dy[r * c + k] - y[r * c + k] * (float)yd);
    }
}

/* ==== Fast kernels (train/kern.h) ==== */

static tr_conv kconv_of(const nn_graph *g, const nn_node *n) {
    const nn_tensor *tx = &g->t[n->in[0]], *tw = &g->t[n->in[1]], *ty = &g->t[n->out];
    tr_conv c = {tx->dims[0], tx->dims[1], tx->dims[2], tx->dims[3], ty->dims[1], ty->dims[2],
                 ty->dims[3], (int)tw->dims[0], (int)tw->dims[1], {n->stride[0], n->stride[1]},
                 {n->dilation[0], n->dilation[1]}, n->pad[0], n->pad[2]};
    return c;
}

static int oom(mien_err *e) { return mien_err_set(e, MIEN_ENOMEM, "out of memory (training kernels)"); }

static int conv_forward_fast(tr_net *net, const nn_node *n, float *y, mien_err *e) {
    const conv_geom c = conv_geom_of(net->g, n);
    const float *x = net->val[n->in[0]], *w = net->val[n->in[1]];
    const int64_t P = c.N * c.OH * c.OW;
    if (is_pointwise(n, &c))
        return tr_gemm(net->kern, 0, 0, P, c.CO, c.CI, x, c.CI, w, c.CO, 0, y, c.CO) ? oom(e) : MIEN_OK;
    const tr_conv kg = kconv_of(net->g, n);
    const int64_t RC = chunk_rows(&c);
    float *col = col_scratch(net, (size_t)(RC < P ? RC : P) * (size_t)c.K);
    if (!col) return oom(e);
    for (int64_t p0 = 0; p0 < P; p0 += RC) {
        const int64_t R = P - p0 < RC ? P - p0 : RC;
        tr_im2col(net->kern, &kg, x, p0, R, col);
        if (tr_gemm(net->kern, 0, 0, R, c.CO, c.K, col, c.K, w, c.CO, 0, y + p0 * c.CO, c.CO)) return oom(e);
    }
    return MIEN_OK;
}

/* dx (acc: add to it) and dw (added to) of a convolution with groups 1. */
static int conv_backward_fast(tr_net *net, const nn_node *n, const float *dz, float *dx, int acc,
                              float *dw, mien_err *e) {
    const conv_geom c = conv_geom_of(net->g, n);
    const float *x = net->val[n->in[0]], *w = net->val[n->in[1]];
    const int64_t P = c.N * c.OH * c.OW;
    tr_kern *k = net->kern;
    if (is_pointwise(n, &c)) {
        if (dw && tr_gemm(k, 1, 0, c.CI, c.CO, P, x, c.CI, dz, c.CO, 1, dw, c.CO)) return oom(e);
        if (dx && tr_gemm(k, 0, 1, P, c.CI, c.CO, dz, c.CO, w, c.CO, acc, dx, c.CI)) return oom(e);
        return MIEN_OK;
    }
    const tr_conv kg = kconv_of(net->g, n);
    const int64_t RC = chunk_rows(&c), R0 = RC < P ? RC : P;
    float *col = col_scratch(net, (size_t)R0 * (size_t)c.K * 2);
    if (!col) return oom(e);
    float *dcol = col + R0 * c.K;
    if (dx && !acc) memset(dx, 0, (size_t)net->g->t[n->in[0]].n * sizeof(float));
    for (int64_t p0 = 0; p0 < P; p0 += RC) {
        const int64_t R = P - p0 < RC ? P - p0 : RC;
        const float *dzr = dz + p0 * c.CO;
        if (dw) {
            tr_im2col(k, &kg, x, p0, R, col);
            if (tr_gemm(k, 1, 0, c.K, c.CO, R, col, c.K, dzr, c.CO, 1, dw, c.CO)) return oom(e);
        }
        if (dx) {
            if (tr_gemm(k, 0, 1, R, c.K, c.CO, dzr, c.CO, w, c.CO, 0, dcol, c.K)) return oom(e);
            tr_col2im_add(k, &kg, dcol, p0, R, dx);
        }
    }
    return MIEN_OK;
}

static int dw_fast_ok(const nn_graph *g, const nn_node *n) { return g->t[n->in[1]].dims[3] == 1; }

static int fc_forward_fast(tr_net *net, const nn_node *n, float *y, mien_err *e) {
    const nn_tensor *tw = &net->g->t[n->in[1]];
    const int64_t K = tw->dims[0], M = tw->dims[1], R = net->g->t[n->out].n / M;
    return tr_gemm(net->kern, 0, 0, R, M, K, net->val[n->in[0]], K, net->val[n->in[1]], M, 0, y, M)
               ? oom(e) : MIEN_OK;
}

static int fc_backward_fast(tr_net *net, const nn_node *n, const float *dz, float *dx, int acc,
                            float *dw, mien_err *e) {
    const nn_tensor *tw = &net->g->t[n->in[1]];
    const int64_t K = tw->dims[0], M = tw->dims[1], R = net->g->t[n->out].n / M;
    if (dw && tr_gemm(net->kern, 1, 0, K, M, R, net->val[n->in[0]], K, dz, M, 1, dw, M)) return oom(e);
    if (dx && tr_gemm(net->kern, 0, 1, R, K, M, dz, M, net->val[n->in[1]], M, acc, dx, K)) return oom(e);
    return MIEN_OK;
}

/* Batch statistics in one pass: moments about the running mean (the same on every rank, and
 * close to the batch mean once training runs), then a second pass about the batch mean for
 * the channels where the first would lose digits to cancellation (mean far from the shift
 * against the spread), which the first steps from a fresh running mean need. */
static int bn_forward_fast(tr_net *net, const nn_node *n, float *y, int init_from_data, mien_err *e) {
    tr_bn *b = &net->bn[net->bn_of[n - net->g->nodes]];
    const float *x = net->val[n->in[0]];
    float *gamma = net->val[n->in[1]], *beta = net->val[n->in[2]];
    const int64_t C = b->c, R = net->g->t[n->out].n / C;
    double *acc = calloc((size_t)C * 2, sizeof *acc);
    float *a = malloc((size_t)C * 3 * sizeof *a);
    if (!acc || !a) {
        free(acc);
        free(a);
        return oom(e);
    }
    float *sh = a + C, *shift = a + 2 * C;
    int rc = MIEN_OK;
    if (net->training || init_from_data) {
        const double cnt = (double)R * net->comm->size;
        memcpy(shift, b->run_mean, (size_t)C * sizeof(float));
        for (int pass = 0; pass < 2; pass++) {
            if (tr_col_moments(net->kern, x, R, C, shift, acc, acc + C)) {
                rc = MIEN_ENOMEM;
                break;
            }
            if ((rc = net->comm->sum_d(net->comm->ctx, acc, 2 * C))) break;
            int again = 0;
            for (int64_t k = 0; k < C; k++) {
                const double m1 = acc[k] / cnt, m2 = acc[C + k] / cnt;
                again |= m1 * m1 > 0.9 * m2 && m2 > 0;
            }
            if (!again || pass == 1) break;
            for (int64_t k = 0; k < C; k++) shift[k] += (float)(acc[k] / cnt);
        }
        if (rc) goto done;
        const float mom = net->bn_momentum;
        for (int64_t k = 0; k < C; k++) {
            const double m1 = acc[k] / cnt;
            double var = acc[C + k] / cnt - m1 * m1;
            if (var < 0) var = 0;
            b->mean[k] = (float)(shift[k] + m1);
            b->invstd[k] = (float)(1.0 / sqrt(var + n->eps));
            if (init_from_data) {
                gamma[k] = (float)sqrt(var + n->eps);
                beta[k] = b->mean[k];
                b->run_mean[k] = b->mean[k];
                b->run_var[k] = (float)var;
            } else {
                double unbiased = cnt > 1 ? var * cnt / (cnt - 1) : var;
                b->run_mean[k] = (1 - mom) * b->run_mean[k] + mom * b->mean[k];
                b->run_var[k] = (float)((1 - mom) * b->run_var[k] + mom * unbiased);
            }
            a[k] = b->invstd[k] * gamma[k];
            sh[k] = beta[k] - b->mean[k] * a[k];
        }
    } else {
        for (int64_t k = 0; k < C; k++) {
            a[k] = gamma[k] / sqrtf(b->run_var[k] + n->eps);
            sh[k] = beta[k] - b->run_mean[k] * a[k];
        }
    }
    tr_scale_shift_act(net->kern, x, y, R, C, a, sh, n->act, alpha_of(net, n));
done:
    free(acc);
    free(a);
    if (rc == MIEN_ENOMEM) return oom(e);
    if (rc) return mien_err_set(e, rc, "batch norm: collective failed");
    return MIEN_OK;
}

static int bn_backward_fast(tr_net *net, const nn_node *n, const float *dy, float *dx, int acc_dx,
                            float *dgamma, float *dbeta, float *dalpha, mien_err *e) {
    tr_bn *b = &net->bn[net->bn_of[n - net->g->nodes]];
    const float *x = net->val[n->in[0]], *gamma = net->val[n->in[1]], *beta = net->val[n->in[2]];
    const float *al = alpha_of(net, n);
    const int64_t C = b->c, R = net->g->t[n->out].n / C;
    double *s = calloc((size_t)C * 3, sizeof *s);
    float *mean = malloc((size_t)C * 7 * sizeof *mean);
    if (!s || !mean) {
        free(s);
        free(mean);
        return oom(e);
    }
    float *invstd = mean + C, *a = mean + 2 * C, *sh = mean + 3 * C;
    float *c1 = mean + 4 * C, *c2 = mean + 5 * C, *c3 = mean + 6 * C;
    for (int64_t k = 0; k < C; k++) {
        mean[k] = net->training ? b->mean[k] : b->run_mean[k];
        invstd[k] = net->training ? b->invstd[k] : 1.f / sqrtf(b->run_var[k] + n->eps);
        a[k] = invstd[k] * gamma[k];
        sh[k] = beta[k] - mean[k] * a[k];
    }
    double *sdy = s, *sdx = s + C, *sal = s + 2 * C;
    int rc = tr_bn_grad_sums(net->kern, x, dy, R, C, a, sh, mean, n->act, al, sdy, sdx, sal) ? MIEN_ENOMEM : MIEN_OK;
    for (int64_t k = 0; k < C && !rc; k++) {
        if (dbeta) dbeta[k] += (float)sdy[k];
        if (dgamma) dgamma[k] += (float)(sdx[k] * invstd[k]);
        if (dalpha) dalpha[k] += (float)sal[k];
    }
    if (!rc && dx) {
        if (net->training && (rc = net->comm->sum_d(net->comm->ctx, s, 2 * C))) goto done;
        const double cnt = (double)R * net->comm->size;
        for (int64_t k = 0; k < C; k++) {
            c1[k] = a[k];
            c2[k] = net->training ? (float)(a[k] * sdy[k] / cnt) : 0.f;
            c3[k] = net->training ? (float)(a[k] * sdx[k] * invstd[k] * invstd[k] / cnt) : 0.f;
        }
        tr_bn_grad_input(net->kern, x, dy, dx, acc_dx, R, C, a, sh, mean, n->act, al, c1, c2, c3);
    }
done:
    free(s);
    free(mean);
    if (rc == MIEN_ENOMEM) return oom(e);
    if (rc) return mien_err_set(e, rc, "batch norm: collective failed");
    return MIEN_OK;
}

/* ==== Passes ==== */

/* Whether node n runs on a fast kernel (train/kern.h). Every other node, and every node with
 * the reference kernels, runs on the reference backend's kernel for its op (nn/backend_ref.h),
 * the one inference checks its fast backends against; only batch norm keeps its own (above). */
static int fast_forward(const tr_net *net, const nn_node *n) {
    const nn_graph *g = net->g;
    if (!net->kern) return 0;
    switch (n->op) {
    case NN_OP_CONV2D: return conv_geom_of(g, n).G == 1;
    case NN_OP_DWCONV2D: return dw_fast_ok(g, n);
    case NN_OP_FC:
    case NN_OP_PRELU: return 1;
    case NN_OP_ADD:
        return same_shape(&g->t[n->in[0]], &g->t[n->out]) && same_shape(&g->t[n->in[1]], &g->t[n->out]);
    default: return 0;
    }
}

static int forward_impl(tr_net *net, int init_bn, mien_err *e) {
    const nn_graph *g = net->g;
    tr_kern *k = net->kern;
    for (int i = 0; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        float *y = net->val[n->out];
        int rc = MIEN_OK;
        const double t0 = now_s();
        if (n->op == NN_OP_INPUT || n->op == NN_OP_RESHAPE) continue;
        if (own_act(n->op) && !act_supported(n->act))
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: activation not supported in training",
                                g->t[n->out].name);
        if (n->op == NN_OP_BATCHNORM_TRAIN) {
            rc = k ? bn_forward_fast(net, n, y, init_bn, e) : bn_forward(net, n, y, init_bn, e);
        } else if (fast_forward(net, n)) {
            switch (n->op) {
            case NN_OP_CONV2D: rc = conv_forward_fast(net, n, y, e); break;
            case NN_OP_DWCONV2D: {
                const tr_conv kg = kconv_of(g, n);
                rc = tr_dw_forward(k, &kg, net->val[n->in[0]], net->val[n->in[1]], y) ? oom(e) : MIEN_OK;
                break;
            }
            case NN_OP_FC: rc = fc_forward_fast(net, n, y, e); break;
            case NN_OP_ADD: tr_add(k, net->val[n->in[0]], net->val[n->in[1]], y, g->t[n->out].n); break;
            case NN_OP_PRELU: {
                const int64_t c = g->t[n->in[1]].n;
                tr_copy_acc(k, net->val[n->in[0]], y, g->t[n->out].n, 0);
                tr_bias_act(k, y, NULL, g->t[n->out].n / c, c, NULL, NN_ACT_PRELU, net->val[n->in[1]]);
                break;
            }
            default: break;
            }
            if (!rc && own_act(n->op)) {
                /* Bias and activation, keeping the pre-activation for the backward pass. */
                const int64_t cnt = g->t[n->out].n, c = last_dim(&g->t[n->out]);
                const int b = n->op == NN_OP_ADD ? -1 : bias_input(n);
                tr_bias_act(k, y, net->pre[i], cnt / c, c, b >= 0 ? net->val[b] : NULL, n->act, alpha_of(net, n));
            }
        } else {
            /* The reference kernel adds the bias and applies the activation; the value before
             * the activation goes to pre[i] when the backward pass needs it. */
            const float *in[64];
            for (int q = 0; q < n->n_in && q < 64; q++) in[q] = net->val[n->in[q]];
            rc = nn_ref_eval_pre(g, n, in, y, net->pre[i], e);
            if (rc) return mien_err_prefix(e, "%s", g->t[n->out].name);
        }
        if (rc) return rc;
        net->t_fwd[n->op] += now_s() - t0;
    }
    return MIEN_OK;
}

int tr_forward(tr_net *net, mien_err *e) { return forward_impl(net, 0, e); }

int tr_bn_init_from_data(tr_net *net, mien_err *e) { return forward_impl(net, 1, e); }

static int is_param(const tr_net *net, int t) {
    return net->g->t[t].data != NULL && net->needs[t];
}

/* The gradient buffer of tensor t, made on first use; NULL if t needs none. The reference
 * kernels get it zeroed; with the fast kernels it is marked fresh (its first writer writes). */
static float *grad_of(tr_net *net, int t, mien_err *e, int *rc) {
    if (!net->needs[t]) return NULL;
    if (!net->grad[t]) {
        net->grad[t] = pool_get(net->pool, net->g->t[t].n, !net->kern);
        if (!net->grad[t]) *rc = mien_err_set(e, MIEN_ENOMEM, "out of memory (gradients)");
        else net->fresh[t] = net->kern != NULL;
    }
    return net->grad[t];
}

/* Zero t's gradient if nothing has written it yet (for kernels that only add). */
static void ensure_zero(tr_net *net, int t) {
    if (net->grad[t] && net->fresh[t]) {
        memset(net->grad[t], 0, (size_t)net->g->t[t].n * sizeof(float));
        net->fresh[t] = 0;
    }
}

static int is_input(const nn_graph *g, int t) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == t) return 1;
    return 0;
}

/* Pass gradient buffer dz of node n's output on to input tensor t when t's own buffer is
 * still fresh (same size): no copy. Returns 1 if it did. */
static int hand_over(tr_net *net, const nn_node *n, int t, float *dz) {
    if (!net->kern || !net->grad[t] || !net->fresh[t] || is_param(net, t) || dz != net->grad[n->out] ||
        net->g->t[t].n != net->g->t[n->out].n || is_input(net->g, n->out))
        return 0;
    pool_put(net->pool, net->grad[t]);
    net->grad[t] = dz;
    net->fresh[t] = 0;
    net->grad[n->out] = NULL;
    return 1;
}

/* One node's backward with the fast kernels. dz = dL/d(output) after the fused activation. */
static int backward_fast(tr_net *net, const nn_node *n, float *dz, mien_err *e) {
    const nn_graph *g = net->g;
    tr_kern *k = net->kern;
    int rc = MIEN_OK;
    float *d0 = grad_of(net, n->in[0], e, &rc);
    float *d1 = n->n_in > 1 && !rc ? grad_of(net, n->in[1], e, &rc) : NULL;
    if (rc) return rc;
    const int a0 = d0 && !net->fresh[n->in[0]];
    const int64_t cnt = g->t[n->out].n;
    switch (n->op) {
    case NN_OP_CONV2D:
        if (conv_geom_of(g, n).G != 1) {
            ensure_zero(net, n->in[0]);
            rc = conv_backward(net, n, dz, d0, d1, e);
        } else {
            rc = conv_backward_fast(net, n, dz, d0, a0, d1, e);
        }
        break;
    case NN_OP_DWCONV2D:
        if (dw_fast_ok(g, n)) {
            const tr_conv kg = kconv_of(g, n);
            rc = tr_dw_backward(k, &kg, net->val[n->in[0]], net->val[n->in[1]], dz, d0, a0, d1) ? oom(e) : MIEN_OK;
        } else {
            ensure_zero(net, n->in[0]);
            dw_backward(net, n, dz, d0, d1);
        }
        break;
    case NN_OP_FC: rc = fc_backward_fast(net, n, dz, d0, a0, d1, e); break;
    case NN_OP_ADD: {
        const nn_tensor *ty = &g->t[n->out];
        for (int q = 1; q >= 0; q--) { /* in[1] first: in[0] may then take dz's buffer */
            const int t = n->in[q];
            float *d = q ? d1 : d0;
            if (!d) continue;
            if (!same_shape(&g->t[t], ty)) {
                ensure_zero(net, t);
                bcast_backward(&g->t[t], ty, dz, d);
            } else if (!(q == 0 && n->in[0] != n->in[1] && hand_over(net, n, t, dz))) {
                tr_copy_acc(k, dz, d, cnt, !net->fresh[t]);
            }
            net->fresh[t] = 0;
        }
        break;
    }
    case NN_OP_BATCHNORM_TRAIN: {
        float *d2 = grad_of(net, n->in[2], e, &rc);
        float *d3 = !rc && n->act == NN_ACT_PRELU ? grad_of(net, n->in[3], e, &rc) : NULL;
        if (!rc) rc = bn_backward_fast(net, n, dz, d0, a0, d1, d2, d3, e);
        break;
    }
    case NN_OP_PRELU: {
        const int64_t c = g->t[n->in[1]].n;
        if (d0 && !a0) {
            rc = tr_act_backward(k, net->val[n->in[0]], dz, d0, cnt / c, c, NN_ACT_PRELU,
                                 net->val[n->in[1]], d1, NULL) ? oom(e) : MIEN_OK;
        } else {
            float *tmp = pool_get(net->pool, cnt, 0);
            if (!tmp) return oom(e);
            rc = tr_act_backward(k, net->val[n->in[0]], dz, tmp, cnt / c, c, NN_ACT_PRELU,
                                 net->val[n->in[1]], d1, NULL) ? oom(e) : MIEN_OK;
            if (d0 && !rc) tr_copy_acc(k, tmp, d0, cnt, 1);
            pool_put(net->pool, tmp);
        }
        break;
    }
    case NN_OP_L2NORM:
        if (d0) {
            ensure_zero(net, n->in[0]);
            l2_backward(net, n, dz, d0);
        }
        break;
    case NN_OP_RESHAPE:
        if (d0 && !hand_over(net, n, n->in[0], dz)) tr_copy_acc(k, dz, d0, cnt, a0);
        break;
    default:
        rc = mien_err_set(e, MIEN_EUNSUPPORTED, "no backward for %s", nn_op_name(n->op));
    }
    if (d0 && net->grad[n->in[0]]) net->fresh[n->in[0]] = 0;
    return rc;
}

int tr_backward(tr_net *net, const float *const *dout, mien_err *e) {
    const nn_graph *g = net->g;
    /* Release what the last pass kept (input gradients), clear the parameter gradients. */
    for (int t = 0; t < g->n_t; t++)
        if (net->grad[t] && !is_param(net, t)) {
            pool_put(net->pool, net->grad[t]);
            net->grad[t] = NULL;
        }
    memset(net->gbuf, 0, (size_t)net->gbuf_n * sizeof(float));
    int rc = MIEN_OK;
    for (int i = 0; i < g->n_outputs; i++) {
        int t = g->outputs[i];
        if (!dout || !dout[i] || !net->needs[t]) continue;
        float *d = grad_of(net, t, e, &rc);
        if (rc) return rc;
        if (net->fresh[t]) memcpy(d, dout[i], (size_t)g->t[t].n * sizeof(float));
        else
            for (int64_t k = 0; k < g->t[t].n; k++) d[k] += dout[i][k];
        net->fresh[t] = 0;
    }
    for (int i = g->n_nodes - 1; i >= 0 && !rc; i--) {
        const nn_node *n = &g->nodes[i];
        if (n->op == NN_OP_INPUT || !net->needs[n->out] || !net->grad[n->out]) continue;
        const double t0 = now_s();
        const nn_tensor *ty = &g->t[n->out];
        float *dy = net->grad[n->out], *dz = dy, *tmp = NULL;
        const int64_t cnt = ty->n, c = last_dim(ty);
        if (net->kern) {
            if (own_act(n->op)) {
                const int b = n->op == NN_OP_ADD ? -1 : bias_input(n);
                float *dal = n->act == NN_ACT_PRELU ? grad_of(net, n->in[n->n_in - 1], e, &rc) : NULL;
                float *db = b >= 0 && !rc ? grad_of(net, b, e, &rc) : NULL;
                if (rc) break;
                /* dz in place of dy: this node is dy's last reader. */
                if ((n->act != NN_ACT_NONE || db) &&
                    tr_act_backward(net->kern, net->pre[i], dy, dy, cnt / c, c, n->act,
                                    alpha_of(net, n), dal, db)) {
                    rc = oom(e);
                    break;
                }
            }
            rc = backward_fast(net, n, dz, e);
        } else {
            if (own_act(n->op) && n->act != NN_ACT_NONE) {
                tmp = pool_get(net->pool, cnt, 1);
                if (!tmp) return mien_err_set(e, MIEN_ENOMEM, "out of memory (gradients)");
                float *dal = n->act == NN_ACT_PRELU ? grad_of(net, n->in[n->n_in - 1], e, &rc) : NULL;
                if (rc) break;
                act_backward(n, net->pre[i], alpha_of(net, n), dy, tmp, dal, cnt, c);
                dz = tmp;
            }
            if (own_act(n->op) && n->op != NN_OP_ADD) {
                int b = bias_input(n);
                float *db = b >= 0 ? grad_of(net, b, e, &rc) : NULL;
                if (rc) break;
                if (db)
                    for (int64_t r = 0; r < cnt / c; r++)
                        for (int64_t k = 0; k < c; k++) db[k] += dz[r * c + k];
            }
            float *d0 = grad_of(net, n->in[0], e, &rc);
            float *d1 = n->n_in > 1 && !rc ? grad_of(net, n->in[1], e, &rc) : NULL;
            if (rc) break;
            switch (n->op) {
            case NN_OP_CONV2D: rc = conv_backward(net, n, dz, d0, d1, e); break;
            case NN_OP_DWCONV2D: dw_backward(net, n, dz, d0, d1); break;
            case NN_OP_FC: fc_backward(net, n, dz, d0, d1); break;
            case NN_OP_ADD:
                if (d0) bcast_backward(&g->t[n->in[0]], ty, dz, d0);
                if (d1) bcast_backward(&g->t[n->in[1]], ty, dz, d1);
                break;
            case NN_OP_BATCHNORM_TRAIN: {
                float *d2 = grad_of(net, n->in[2], e, &rc);
                float *d3 = !rc && n->act == NN_ACT_PRELU ? grad_of(net, n->in[3], e, &rc) : NULL;
                if (!rc) rc = bn_backward(net, n, dz, d0, d1, d2, d3, e);
                break;
            }
            case NN_OP_PRELU: prelu_backward(net, n, dz, d0, d1); break;
            case NN_OP_L2NORM: if (d0) l2_backward(net, n, dz, d0); break;
            case NN_OP_RESHAPE:
                if (d0)
                    for (int64_t k = 0; k < cnt; k++) d0[k] += dz[k];
                break;
            default:
                rc = mien_err_set(e, MIEN_EUNSUPPORTED, "no backward for %s", nn_op_name(n->op));
            }
            if (tmp) pool_put(net->pool, tmp);
        }
        /* This tensor's gradient is complete and used: give it back (unless handed on). */
        if (net->grad[n->out] && !is_input(g, n->out)) {
            pool_put(net->pool, net->grad[n->out]);
            net->grad[n->out] = NULL;
        }
        net->t_bwd[n->op] += now_s() - t0;
    }
    return rc;
}
