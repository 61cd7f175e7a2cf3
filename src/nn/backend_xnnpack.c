/* The fast backend on XNNPACK (Debian's 2022 snapshot, operator API).
 *
 * Each claimed node becomes one or a few XNNPACK operators, created (weights packed) and set
 * up once in init(): the arena is planned by then, so every input and output pointer is
 * fixed and a run is just xnn_run_operator() on each. What XNNPACK cannot fuse runs as a
 * second operator in place on the output: a fused PReLU, leaky ReLU or sigmoid after a
 * convolution, the add of a batch norm. Nodes it does not claim (supports() returns 0) run on
 * the reference backend; a node XNNPACK turns down at creation also falls back to it.
 * Dense and depthwise convolutions and pads may instead run on the backend's own kernels
 * (backend_xnnpack_own.c) where those beat this XNNPACK build; nn_exec_node_backend() names
 * such nodes "own".
 *
 * Layouts (this XNNPACK version):
 *   conv2d     our HWIO [KH,KW,CI/G,CO] is repacked to XNNPACK's [G][CO/G][KH][KW][CI/G]
 *   dwconv2d   our TF [KH,KW,C,M] is exactly XNNPACK's HWGo with XNN_FLAG_DEPTHWISE_CONVOLUTION
 *              (groups C, 1 input and M output channels per group): passed as is
 *   fc         our [K,M] is XNNPACK's transposed layout: XNN_FLAG_TRANSPOSE_WEIGHTS
 * XNNPACK may read (never write) up to XNN_EXTRA_BYTES past the end of a tensor, the own
 * depthwise kernel up to 28 bytes: the arena keeps 64 bytes of slack (exec.c), and constant
 * data inputs are copied into padded buffers. */
#include "nn/backend_xnnpack_own.h"
#include "nn/exec.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

/* ==== Library and thread pool ==== */

/* xnn_initialize is not thread-safe; execs may be created concurrently on many threads. */
static pthread_once_t xnn_once = PTHREAD_ONCE_INIT;
static enum xnn_status xnn_init_status = xnn_status_uninitialized;

static void xnn_init_once(void) { xnn_init_status = xnn_initialize(NULL); }

static int xnn_ready(void) {
    pthread_once(&xnn_once, xnn_init_once);
    return xnn_init_status == xnn_status_success;
}

typedef struct xnn_ctx {
    pthreadpool_t pool;       /* NULL: run on the calling thread */
} xnn_ctx;

static int xnn_exec_init(nn_exec *x, int threads, void **out, mien_err *e) {
    *out = NULL;
    xnn_ready(); /* on failure supports() claims nothing and every node runs on ref */
    xnn_ctx *c = calloc(1, sizeof *c);
    if (!c) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if (threads > 1 && !(c->pool = pthreadpool_create((size_t)threads))) {
        free(c);
        return mien_err_set(e, MIEN_ENOMEM, "cannot create a pool of %d threads", threads);
    }
    *out = c;
    return MIEN_OK;
}

static void xnn_exec_free(void *ctx) {
    xnn_ctx *c = ctx;
    if (!c) return;
    if (c->pool) pthreadpool_destroy(c->pool);
    free(c);
}

/* ==== Kernel state ==== */

typedef struct xk {
    nn_own *own;              /* an own kernel (backend_xnnpack_own.c), run first */
    int n_ops, cap_ops;
    xnn_operator_t *ops;      /* (n_ops) run in order */
    int n_mem, cap_mem;
    void **mem;               /* (n_mem) buffers the operators read from (padded constants) */
} xk;

static void xk_free(void *state) {
    xk *k = state;
    if (!k) return;
    nn_own_free(k->own);
    for (int i = 0; i < k->n_ops; i++) xnn_delete_operator(k->ops[i]);
    for (int i = 0; i < k->n_mem; i++) free(k->mem[i]);
    free(k->ops);
    free(k->mem);
    free(k);
}

static int xk_run(nn_exec *x, const nn_node *n, void *state, mien_err *e) {
    xk *k = state;
    const xnn_ctx *c = nn_exec_backend_ctx(x);
    if (k->own) nn_own_run(k->own, c->pool);
    for (int i = 0; i < k->n_ops; i++) {
        enum xnn_status s = xnn_run_operator(k->ops[i], c->pool);
        if (s != xnn_status_success)
            return mien_err_set(e, MIEN_EINTERNAL, "xnn_run_operator failed (status %d)", s);
    }
    return MIEN_OK;
}

/* Keep a created operator (before its setup, so that a failed setup still frees it). Takes
 * the operator by address, read after the create call in the same argument list ran. */
static enum xnn_status keep(xk *k, enum xnn_status s, xnn_operator_t *opp) {
    if (s != xnn_status_success) return s;
    xnn_operator_t op = *opp;
    if (k->n_ops == k->cap_ops) {
        int nc = k->cap_ops ? 2 * k->cap_ops : 4;
        xnn_operator_t *no = realloc(k->ops, (size_t)nc * sizeof *no);
        if (!no) {
            xnn_delete_operator(op);
            return xnn_status_out_of_memory;
        }
        k->ops = no;
        k->cap_ops = nc;
    }
    k->ops[k->n_ops++] = op;
    return xnn_status_success;
}

/* A buffer owned by the kernel, with readable slack after it: XNN_EXTRA_BYTES for XNNPACK,
 * 7 floats for the own depthwise kernel's whole-vector loads (exec.c's arena keeps 64). */
#define SLACK_BYTES 32
_Static_assert(SLACK_BYTES >= XNN_EXTRA_BYTES && SLACK_BYTES >= 7 * sizeof(float), "slack");

static float *xk_alloc(xk *k, int64_t count) {
    if (k->n_mem == k->cap_mem) {
        int nc = k->cap_mem ? 2 * k->cap_mem : 4;
        void **nm = realloc(k->mem, (size_t)nc * sizeof *nm);
        if (!nm) return NULL;
        k->mem = nm;
        k->cap_mem = nc;
    }
    float *p = calloc(1, (size_t)count * sizeof(float) + SLACK_BYTES);
    if (p) k->mem[k->n_mem++] = p;
    return p;
}

/* Data pointer of a data input: the arena, or a padded copy for a constant. NULL on OOM. */
static const float *data_in(nn_exec *x, xk *k, int t) {
    const nn_tensor *tt = &nn_exec_graph(x)->t[t];
    if (!tt->data) return nn_exec_tensor(x, t);
    float *p = xk_alloc(k, tt->n);
    if (p && tt->n) memcpy(p, tt->data, (size_t)tt->n * sizeof *p);
    return p;
}

/* ==== What XNNPACK can do ==== */

static int is_const(const nn_graph *g, int t) { return g->t[t].data != NULL; }

static int64_t last_dim(const nn_tensor *t) { return t->ndim ? t->dims[t->ndim - 1] : 1; }

/* Output range of the fused activation where XNNPACK applies it by clamping the output. */
static void act_range(const nn_node *n, float *lo, float *hi) {
    *lo = -INFINITY;
    *hi = INFINITY;
    switch (n->act) {
    case NN_ACT_RELU: *lo = 0.f; break;
    case NN_ACT_RELU6: *lo = 0.f, *hi = 6.f; break;
    case NN_ACT_CLAMP: *lo = n->act_min, *hi = n->act_max; break;
    default: break;
    }
}

static int act_ok(const nn_graph *g, const nn_node *n) {
    switch (n->act) {
    case NN_ACT_NONE: case NN_ACT_RELU: case NN_ACT_RELU6: case NN_ACT_LEAKY:
    case NN_ACT_SIGMOID:
        return 1;
    case NN_ACT_CLAMP:
        return n->act_min < n->act_max; /* XNNPACK rejects an empty or NaN range */
    case NN_ACT_PRELU: {
        int a = n->in[n->n_in - 1];
        int64_t c = last_dim(&g->t[n->out]);
        return is_const(g, a) && (g->t[a].n == c || g->t[a].n == 1);
    }
    }
    return 0;
}

/* Every pooling window holds at least one input pixel (XNNPACK clamps window taps to the
 * border, which is the same as skipping padding only when some tap is inside). */
static int windows_nonempty(int64_t in, int64_t out, int k, int stride, int dil, int pad) {
    for (int64_t o = 0; o < out; o++) {
        int any = 0;
        for (int t = 0; t < k && !any; t++) {
            int64_t i = o * stride - pad + (int64_t)t * dil;
            any = i >= 0 && i < in;
        }
        if (!any) return 0;
    }
    return 1;
}

/* The reduced axes of a mean form one contiguous run [*a, *b]. */
static int reduce_run(const nn_node *n, int ndim, int *a, int *b) {
    if (!n->axes) return 0;
    int lo = -1, hi = -1;
    for (int i = 0; i < ndim; i++)
        if (n->axes & (1u << i)) {
            if (lo < 0) lo = i;
            else if (hi != i - 1) return 0;
            hi = i;
        }
    *a = lo;
    *b = hi;
    return lo >= 0;
}

static int xnn_supports(const nn_graph *g, const nn_node *n) {
    if (!xnn_ready()) return 0;
    const nn_tensor *ty = &g->t[n->out];
    if (ty->n == 0) return 0;
    switch (n->op) {
    case NN_OP_CONV2D:
    case NN_OP_DWCONV2D:
    case NN_OP_FC: {
        int n_w = n->n_in - (n->act == NN_ACT_PRELU); /* x, w, [bias] */
        for (int i = 1; i < n_w; i++)
            if (!is_const(g, n->in[i])) return 0;
        if (n->op == NN_OP_FC) return g->t[n->in[1]].ndim == 2 && act_ok(g, n);
        return ty->ndim == 4 && act_ok(g, n);
    }
    case NN_OP_ADD: case NN_OP_SUB: case NN_OP_MUL: case NN_OP_DIV:
    case NN_OP_MAXIMUM: case NN_OP_MINIMUM:
        return act_ok(g, n);
    case NN_OP_ABS: case NN_OP_NEG: case NN_OP_SQUARE: case NN_OP_SQRT: case NN_OP_SIGMOID:
    case NN_OP_RELU: case NN_OP_RELU6: case NN_OP_LEAKY_RELU:
        return 1;
    case NN_OP_CLAMP:
        return n->act_min < n->act_max;
    case NN_OP_PRELU: {
        int64_t c = last_dim(ty);
        return ty->ndim >= 1 && is_const(g, n->in[1]) &&
               (g->t[n->in[1]].n == c || g->t[n->in[1]].n == 1);
    }
    case NN_OP_BATCHNORM:
        return 1;
    case NN_OP_MEAN: {
        int a, b;
        return reduce_run(n, g->t[n->in[0]].ndim, &a, &b);
    }
    case NN_OP_SOFTMAX:
        return ty->ndim >= 1;
    case NN_OP_MAXPOOL:
    case NN_OP_AVGPOOL: {
        const nn_tensor *tx = &g->t[n->in[0]];
        if (n->kernel[0] * n->kernel[1] < 2) return 0; /* XNNPACK rejects 1x1 pooling */
        if (n->op == NN_OP_AVGPOOL && (n->dilation[0] != 1 || n->dilation[1] != 1)) return 0;
        return windows_nonempty(tx->dims[1], ty->dims[1], n->kernel[0], n->stride[0],
                                n->dilation[0], n->pad[0]) &&
               windows_nonempty(tx->dims[2], ty->dims[2], n->kernel[1], n->stride[1],
                                n->dilation[1], n->pad[2]);
    }
    case NN_OP_PAD:
        return ty->ndim >= 1;
    case NN_OP_CONCAT:
        return 1;
    case NN_OP_RESIZE_BILINEAR:
        return !(n->align_corners && n->half_pixel);
    case NN_OP_DEPTH_TO_SPACE:
        return n->block >= 2;
    default:
        return 0;
    }
}

/* ==== Operators ==== */

/* Everything init() needs to build one node. */
typedef struct xb {
    nn_exec *x;
    const nn_graph *g;
    const nn_node *n;
    pthreadpool_t pool;
    xk *k;
} xb;

static const nn_tensor *tin(const xb *b, int i) { return &b->g->t[b->n->in[i]]; }
static const nn_tensor *tout(const xb *b) { return &b->g->t[b->n->out]; }
static float *out_ptr(const xb *b) { return nn_exec_tensor(b->x, b->n->out); }

/* The fused activation XNNPACK cannot clamp into the op, in place on the output. */
static enum xnn_status post_act(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *ty = tout(b);
    float *y = out_ptr(b);
    xnn_operator_t op = NULL;
    enum xnn_status s;
    switch (n->act) {
    case NN_ACT_PRELU: {
        const nn_tensor *ta = &b->g->t[n->in[n->n_in - 1]];
        size_t c = (size_t)last_dim(ty);
        float *alpha = xk_alloc(b->k, (int64_t)c);
        if (!alpha) return xnn_status_out_of_memory;
        for (size_t i = 0; i < c; i++) alpha[i] = ta->data[ta->n == 1 ? 0 : i];
        s = keep(b->k, xnn_create_prelu_nc_f32(c, c, c, alpha, 0, &op), &op);
        if (s == xnn_status_success)
            s = xnn_setup_prelu_nc_f32(op, (size_t)(ty->n / (int64_t)c), y, y, b->pool);
        return s;
    }
    case NN_ACT_LEAKY:
        s = keep(b->k, xnn_create_leaky_relu_nc_f32(1, 1, 1, n->act_alpha, 0, &op), &op);
        if (s == xnn_status_success)
            s = xnn_setup_leaky_relu_nc_f32(op, (size_t)ty->n, y, y, b->pool);
        return s;
    case NN_ACT_SIGMOID:
        s = keep(b->k, xnn_create_sigmoid_nc_f32(1, 1, 1, 0, &op), &op);
        if (s == xnn_status_success) s = xnn_setup_sigmoid_nc_f32(op, (size_t)ty->n, y, y, b->pool);
        return s;
    default:
        return xnn_status_success; /* none, or clamped inside the op */
    }
}

/* The bias is the third input when present (not counting a trailing PReLU alpha). */
static const float *bias_of(const xb *b) {
    int n_extra = b->n->n_in - 2 - (b->n->act == NN_ACT_PRELU);
    return n_extra > 0 ? tin(b, 2)->data : NULL;
}

/* A convolution on an own kernel: dense on the GEMM kernel, depthwise (multiplier 1) on the
 * direct one; bias, clamp and PReLU or leaky ReLU applied as they store, a fused sigmoid
 * after, in place. */
/* The geometry of a convolution node for the own kernels (data and output stage unset). */
static nn_own_conv own_geometry(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *tx = tin(b, 0), *tw = tin(b, 1), *ty = tout(b);
    return (nn_own_conv){
        .n = tx->dims[0], .h = tx->dims[1], .w = tx->dims[2], .ci = tx->dims[3],
        .oh = ty->dims[1], .ow = ty->dims[2], .co = ty->dims[3],
        .kh = (int)tw->dims[0], .kw = (int)tw->dims[1],
        .stride = {n->stride[0], n->stride[1]}, .dilation = {n->dilation[0], n->dilation[1]},
        .pad_top = n->pad[0], .pad_left = n->pad[2],
    };
}

static enum xnn_status build_own_conv(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *ty = tout(b);
    const float *x = data_in(b->x, b->k, n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    float *alpha = NULL;
    if (n->act == NN_ACT_PRELU || n->act == NN_ACT_LEAKY) {
        const nn_tensor *ta = n->act == NN_ACT_PRELU ? &b->g->t[n->in[n->n_in - 1]] : NULL;
        if (!(alpha = xk_alloc(b->k, ty->dims[3]))) return xnn_status_out_of_memory;
        for (int64_t i = 0; i < ty->dims[3]; i++)
            alpha[i] = ta ? ta->data[ta->n == 1 ? 0 : i] : n->act_alpha;
    }
    nn_own_conv p = own_geometry(b);
    p.weights = tin(b, 1)->data;
    p.bias = bias_of(b);
    p.alpha = alpha;
    p.x = x;
    p.y = out_ptr(b);
    act_range(n, &p.lo, &p.hi);
    b->k->own = n->op == NN_OP_CONV2D ? nn_own_gemm_create(&p) : nn_own_dwconv_create(&p);
    if (!b->k->own) return xnn_status_out_of_memory;
    return n->act == NN_ACT_SIGMOID ? post_act(b) : xnn_status_success;
}

/* The own kernels beat this XNNPACK build (see backend_xnnpack_own.h) on dense convolutions
 * with enough output pixels to fill the GEMM's 6-row blocks (2-2.5x), and on depthwise ones
 * with a multiplier of 1 and fewer than 128 channels (1.2-1.6x; from 128 channels up
 * XNNPACK's kernel is about 10% faster). */
static int use_own_conv(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *ty = tout(b), *tw = tin(b, 1);
    const nn_own_conv p = own_geometry(b);
    if (n->op == NN_OP_CONV2D)
        return n->groups == 1 && ty->dims[0] * ty->dims[1] * ty->dims[2] >= 12 &&
               nn_own_gemm_fits(&p) && nn_own_preferred();
    if (tw->dims[3] != 1 || !nn_own_dwconv_fits(&p)) return 0;
    /* A depthwise convolution whose kernel covers the whole input (MiniFASNet's 8x8 global
     * depthwise layer): XNNPACK runs one output pixel of 64 taps at under 1 GFLOP/s, the own
     * kernel some 20 times faster, on AVX-512 CPUs too. */
    if (p.oh == 1 && p.ow == 1 && p.kh == p.h && p.kw == p.w && p.kh * p.kw >= 16)
        return nn_own_available();
    return p.ci < 128 && nn_own_preferred();
}

static enum xnn_status build_conv(const xb *b) {
    const nn_node *n = b->n;
    if (use_own_conv(b)) return build_own_conv(b);
    const nn_tensor *tx = tin(b, 0), *tw = tin(b, 1), *ty = tout(b);
    const size_t KH = (size_t)tw->dims[0], KW = (size_t)tw->dims[1];
    const size_t CI = (size_t)tx->dims[3], CO = (size_t)ty->dims[3];
    size_t G, CIG, COG;
    uint32_t flags = 0;
    const float *w = tw->data, *x = data_in(b->x, b->k, n->in[0]);
    float *packed = NULL;
    if (!x) return xnn_status_out_of_memory;
    if (n->op == NN_OP_DWCONV2D) {
        G = CI, CIG = 1, COG = (size_t)tw->dims[3];
        flags = XNN_FLAG_DEPTHWISE_CONVOLUTION;
    } else {
        G = (size_t)n->groups, CIG = (size_t)tw->dims[2], COG = CO / G;
        /* HWIO [KH][KW][CIG][G*COG] -> [G][COG][KH][KW][CIG]; XNNPACK packs it again at
         * creation, so this copy lives only until then. */
        packed = malloc((size_t)tw->n * sizeof *packed);
        if (!packed) return xnn_status_out_of_memory;
        for (size_t g = 0; g < G; g++)
            for (size_t o = 0; o < COG; o++)
                for (size_t ky = 0; ky < KH; ky++)
                    for (size_t kx = 0; kx < KW; kx++)
                        for (size_t i = 0; i < CIG; i++)
                            packed[(((g * COG + o) * KH + ky) * KW + kx) * CIG + i] =
                                w[((ky * KW + kx) * CIG + i) * CO + g * COG + o];
        w = packed;
    }
    float lo, hi;
    act_range(n, &lo, &hi);
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(
        b->k,
        xnn_create_convolution2d_nhwc_f32(
            (uint32_t)n->pad[0], (uint32_t)n->pad[3], (uint32_t)n->pad[1], (uint32_t)n->pad[2],
            (uint32_t)KH, (uint32_t)KW, (uint32_t)n->stride[0], (uint32_t)n->stride[1],
            (uint32_t)n->dilation[0], (uint32_t)n->dilation[1], (uint32_t)G, CIG, COG, CI, CO,
            w, bias_of(b), lo, hi, flags, &op),
        &op);
    free(packed);
    if (s == xnn_status_success)
        s = xnn_setup_convolution2d_nhwc_f32(op, (size_t)tx->dims[0], (size_t)tx->dims[1],
                                             (size_t)tx->dims[2], x, out_ptr(b), b->pool);
    return s == xnn_status_success ? post_act(b) : s;
}

static enum xnn_status build_fc(const xb *b) {
    const nn_tensor *tw = tin(b, 1), *ty = tout(b);
    const size_t K = (size_t)tw->dims[0], M = (size_t)tw->dims[1];
    const float *x = data_in(b->x, b->k, b->n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    float lo, hi;
    act_range(b->n, &lo, &hi);
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k,
                             xnn_create_fully_connected_nc_f32(K, M, K, M, tw->data, bias_of(b),
                                                               lo, hi, XNN_FLAG_TRANSPOSE_WEIGHTS,
                                                               &op),
                             &op);
    if (s == xnn_status_success)
        s = xnn_setup_fully_connected_nc_f32(op, (size_t)(ty->n / (int64_t)M), x, out_ptr(b),
                                             b->pool);
    return s == xnn_status_success ? post_act(b) : s;
}

typedef enum xnn_status (*binary_setup_fn)(xnn_operator_t, size_t, const size_t *, size_t,
                                           const size_t *, const float *, const float *,
                                           float *, pthreadpool_t);

/* out = a op b with numpy broadcasting; lo/hi clamp the result where the op supports it. */
static enum xnn_status binary(const xb *b, nn_op op_kind, const nn_tensor *ta,
                              const float *a, const nn_tensor *tb, const float *bb,
                              float *out, float lo, float hi) {
    xnn_operator_t op = NULL;
    enum xnn_status s;
    binary_setup_fn setup;
    switch (op_kind) {
    case NN_OP_ADD:
        s = xnn_create_add_nd_f32(lo, hi, 0, &op), setup = xnn_setup_add_nd_f32;
        break;
    case NN_OP_SUB:
        s = xnn_create_subtract_nd_f32(lo, hi, 0, &op), setup = xnn_setup_subtract_nd_f32;
        break;
    case NN_OP_MUL:
        s = xnn_create_multiply_nd_f32(lo, hi, 0, &op), setup = xnn_setup_multiply_nd_f32;
        break;
    case NN_OP_DIV:
        s = xnn_create_divide_nd_f32(lo, hi, 0, &op), setup = xnn_setup_divide_nd_f32;
        break;
    case NN_OP_MAXIMUM:
        s = xnn_create_maximum_nd_f32(0, &op), setup = xnn_setup_maximum_nd_f32;
        break;
    case NN_OP_MINIMUM:
        s = xnn_create_minimum_nd_f32(0, &op), setup = xnn_setup_minimum_nd_f32;
        break;
    default:
        return xnn_status_invalid_parameter;
    }
    if ((s = keep(b->k, s, &op)) != xnn_status_success) return s;
    /* A scalar (0-d) operand is a shape of one 1. */
    size_t da[NN_MAX_DIMS] = {1}, db[NN_MAX_DIMS] = {1};
    for (int i = 0; i < ta->ndim; i++) da[i] = (size_t)ta->dims[i];
    for (int i = 0; i < tb->ndim; i++) db[i] = (size_t)tb->dims[i];
    return setup(op, ta->ndim ? (size_t)ta->ndim : 1, da, tb->ndim ? (size_t)tb->ndim : 1, db,
                 a, bb, out, b->pool);
}

static enum xnn_status clamp_op(const xb *b, float lo, float hi) {
    const nn_tensor *ty = tout(b);
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k, xnn_create_clamp_nc_f32(1, 1, 1, lo, hi, 0, &op), &op);
    if (s == xnn_status_success)
        s = xnn_setup_clamp_nc_f32(op, (size_t)ty->n, data_in(b->x, b->k, b->n->in[0]),
                                   out_ptr(b), b->pool);
    return s;
}

/* A constant operand broadcast over every axis of the output but a short last one (an
 * image's per-channel mean, 3 values): XNNPACK's broadcasting loop then calls its
 * microkernel once per pixel on 3 elements, about ten times slower than on long rows. Such
 * an operand is repeated along the output's second-to-last axis into a kernel-owned
 * constant of shape (W, C), so that each call covers a whole row of W * C elements. The
 * values and the order of each operation do not change. Returns the data (or `data`
 * unchanged) and sets *tiled to the shape to use; NULL on OOM. */
#define TILE_MAX_C 8
#define TILE_MAX_N 8192
static const float *tile_short_const(const xb *b, int which, const float *data, nn_tensor *tiled) {
    const nn_tensor *tc = tin(b, which), *ty = tout(b);
    *tiled = *tc;
    const int64_t C = last_dim(ty);
    if (!is_const(b->g, b->n->in[which]) || ty->ndim < 2 || C > TILE_MAX_C || tc->n != C ||
        last_dim(tc) != C)
        return data;
    const int64_t W = ty->dims[ty->ndim - 2];
    if (W < 2 || W * C > TILE_MAX_N) return data;
    float *p = xk_alloc(b->k, W * C);
    if (!p) return NULL;
    for (int64_t i = 0; i < W; i++) memcpy(p + i * C, data, (size_t)C * sizeof *p);
    *tiled = (nn_tensor){.ndim = 2, .dims = {W, C}, .n = W * C};
    return p;
}

static enum xnn_status build_binary(const xb *b) {
    const float *a = data_in(b->x, b->k, b->n->in[0]), *bb = data_in(b->x, b->k, b->n->in[1]);
    if (!a || !bb) return xnn_status_out_of_memory;
    nn_tensor ta, tb;
    a = tile_short_const(b, 0, a, &ta);
    bb = tile_short_const(b, 1, bb, &tb);
    if (!a || !bb) return xnn_status_out_of_memory;
    float lo, hi;
    act_range(b->n, &lo, &hi);
    int clamps = b->n->op != NN_OP_MAXIMUM && b->n->op != NN_OP_MINIMUM;
    enum xnn_status s = binary(b, b->n->op, &ta, a, &tb, bb, out_ptr(b),
                               clamps ? lo : -INFINITY, clamps ? hi : INFINITY);
    if (s == xnn_status_success && !clamps && (lo > -INFINITY || hi < INFINITY)) {
        /* max/min with a fused clamp: clamp the output in place. */
        xnn_operator_t op = NULL;
        const nn_tensor *ty = tout(b);
        s = keep(b->k, xnn_create_clamp_nc_f32(1, 1, 1, lo, hi, 0, &op), &op);
        if (s == xnn_status_success)
            s = xnn_setup_clamp_nc_f32(op, (size_t)ty->n, out_ptr(b), out_ptr(b), b->pool);
    }
    return s == xnn_status_success ? post_act(b) : s;
}

static enum xnn_status build_batchnorm(const xb *b) {
    const float *x = data_in(b->x, b->k, b->n->in[0]);
    const float *scale = data_in(b->x, b->k, b->n->in[1]);
    const float *shift = data_in(b->x, b->k, b->n->in[2]);
    if (!x || !scale || !shift) return xnn_status_out_of_memory;
    /* Scale and shift are vectors over the last axis: broadcast as 1-d shapes. */
    nn_tensor tv = {.ndim = 1, .dims = {last_dim(tout(b))}};
    float *y = out_ptr(b);
    enum xnn_status s =
        binary(b, NN_OP_MUL, tin(b, 0), x, &tv, scale, y, -INFINITY, INFINITY);
    if (s == xnn_status_success)
        s = binary(b, NN_OP_ADD, tout(b), y, &tv, shift, y, -INFINITY, INFINITY);
    return s;
}

typedef enum xnn_status (*nc_create_fn)(size_t, size_t, size_t, uint32_t, xnn_operator_t *);
typedef enum xnn_status (*nc_setup_fn)(xnn_operator_t, size_t, const float *, float *,
                                       pthreadpool_t);

/* Elementwise unary ops, viewed as one long row. */
static enum xnn_status build_unary(const xb *b) {
    const nn_node *n = b->n;
    nc_create_fn create = NULL;
    nc_setup_fn setup = NULL;
    switch (n->op) {
    case NN_OP_ABS: create = xnn_create_abs_nc_f32, setup = xnn_setup_abs_nc_f32; break;
    case NN_OP_NEG: create = xnn_create_negate_nc_f32, setup = xnn_setup_negate_nc_f32; break;
    case NN_OP_SQUARE: create = xnn_create_square_nc_f32, setup = xnn_setup_square_nc_f32; break;
    case NN_OP_SQRT:
        create = xnn_create_square_root_nc_f32, setup = xnn_setup_square_root_nc_f32;
        break;
    case NN_OP_SIGMOID:
        create = xnn_create_sigmoid_nc_f32, setup = xnn_setup_sigmoid_nc_f32;
        break;
    case NN_OP_RELU: return clamp_op(b, 0.f, INFINITY);
    case NN_OP_RELU6: return clamp_op(b, 0.f, 6.f);
    case NN_OP_CLAMP: return clamp_op(b, n->act_min, n->act_max);
    case NN_OP_LEAKY_RELU: {
        xnn_operator_t op = NULL;
        const float *x = data_in(b->x, b->k, n->in[0]);
        if (!x) return xnn_status_out_of_memory;
        enum xnn_status s =
            keep(b->k, xnn_create_leaky_relu_nc_f32(1, 1, 1, n->act_alpha, 0, &op), &op);
        if (s == xnn_status_success)
            s = xnn_setup_leaky_relu_nc_f32(op, (size_t)tout(b)->n, x, out_ptr(b), b->pool);
        return s;
    }
    default: return xnn_status_unsupported_parameter;
    }
    const float *x = data_in(b->x, b->k, n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k, create(1, 1, 1, 0, &op), &op);
    if (s == xnn_status_success) s = setup(op, (size_t)tout(b)->n, x, out_ptr(b), b->pool);
    return s;
}

static enum xnn_status build_prelu(const xb *b) {
    const nn_tensor *ty = tout(b), *ta = tin(b, 1);
    const size_t c = (size_t)last_dim(ty);
    const float *x = data_in(b->x, b->k, b->n->in[0]);
    float *alpha = xk_alloc(b->k, (int64_t)c);
    if (!x || !alpha) return xnn_status_out_of_memory;
    for (size_t i = 0; i < c; i++) alpha[i] = ta->data[ta->n == 1 ? 0 : i];
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k, xnn_create_prelu_nc_f32(c, c, c, alpha, 0, &op), &op);
    if (s == xnn_status_success)
        s = xnn_setup_prelu_nc_f32(op, (size_t)(ty->n / (int64_t)c), x, out_ptr(b), b->pool);
    return s;
}

/* Mean over a contiguous run of axes: global average pooling of (outer, mid, inner) viewed
 * as batch outer, width mid, channels inner. */
static enum xnn_status build_mean(const xb *b) {
    const nn_tensor *tx = tin(b, 0);
    int a0 = 0, a1 = 0;
    reduce_run(b->n, tx->ndim, &a0, &a1);
    size_t outer = 1, mid = 1, inner = 1;
    for (int i = 0; i < tx->ndim; i++) {
        size_t d = (size_t)tx->dims[i];
        if (i < a0) outer *= d;
        else if (i <= a1) mid *= d;
        else inner *= d;
    }
    const float *x = data_in(b->x, b->k, b->n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(
        b->k,
        xnn_create_global_average_pooling_nwc_f32(inner, inner, inner, -INFINITY, INFINITY, 0,
                                                  &op),
        &op);
    if (s == xnn_status_success)
        s = xnn_setup_global_average_pooling_nwc_f32(op, outer, mid, x, out_ptr(b), b->pool);
    return s;
}

static enum xnn_status build_softmax(const xb *b) {
    const nn_tensor *ty = tout(b);
    const size_t c = (size_t)last_dim(ty);
    const float *x = data_in(b->x, b->k, b->n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k, xnn_create_softmax_nc_f32(c, c, c, 0, &op), &op);
    if (s == xnn_status_success)
        s = xnn_setup_softmax_nc_f32(op, (size_t)(ty->n / (int64_t)c), x, out_ptr(b), b->pool);
    return s;
}

static enum xnn_status build_pool(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *tx = tin(b, 0);
    const size_t C = (size_t)tx->dims[3];
    const float *x = data_in(b->x, b->k, n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    xnn_operator_t op = NULL;
    enum xnn_status s;
    if (n->op == NN_OP_MAXPOOL) {
        s = keep(b->k,
                 xnn_create_max_pooling2d_nhwc_f32(
                     (uint32_t)n->pad[0], (uint32_t)n->pad[3], (uint32_t)n->pad[1],
                     (uint32_t)n->pad[2], (uint32_t)n->kernel[0], (uint32_t)n->kernel[1],
                     (uint32_t)n->stride[0], (uint32_t)n->stride[1], (uint32_t)n->dilation[0],
                     (uint32_t)n->dilation[1], C, C, C, -INFINITY, INFINITY, 0, &op),
                 &op);
        if (s == xnn_status_success)
            s = xnn_setup_max_pooling2d_nhwc_f32(op, (size_t)tx->dims[0], (size_t)tx->dims[1],
                                                 (size_t)tx->dims[2], x, out_ptr(b), b->pool);
    } else {
        s = keep(b->k,
                 xnn_create_average_pooling2d_nhwc_f32(
                     (uint32_t)n->pad[0], (uint32_t)n->pad[3], (uint32_t)n->pad[1],
                     (uint32_t)n->pad[2], (uint32_t)n->kernel[0], (uint32_t)n->kernel[1],
                     (uint32_t)n->stride[0], (uint32_t)n->stride[1], C, C, C, -INFINITY,
                     INFINITY, 0, &op),
                 &op);
        if (s == xnn_status_success)
            s = xnn_setup_average_pooling2d_nhwc_f32(op, (size_t)tx->dims[0],
                                                     (size_t)tx->dims[1], (size_t)tx->dims[2],
                                                     x, out_ptr(b), b->pool);
    }
    return s;
}

static enum xnn_status build_pad(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *tx = tin(b, 0);
    if (nn_own_preferred()) {
        /* XNNPACK's pad takes 4-8x longer than a plain copy on BlazeFace's channel pads. */
        const float *x = data_in(b->x, b->k, n->in[0]);
        if (!x) return xnn_status_out_of_memory;
        b->k->own = nn_own_pad_create(tx->ndim, tx->dims, n->pads, n->pad_value, x, out_ptr(b));
        return b->k->own ? xnn_status_success : xnn_status_out_of_memory;
    }
    size_t shape[NN_MAX_DIMS], pre[NN_MAX_DIMS], post[NN_MAX_DIMS];
    for (int i = 0; i < tx->ndim; i++) {
        shape[i] = (size_t)tx->dims[i];
        pre[i] = (size_t)n->pads[2 * i];
        post[i] = (size_t)n->pads[2 * i + 1];
    }
    const float *x = data_in(b->x, b->k, n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    float value = n->pad_value; /* XNNPACK copies the 32-bit pattern at creation */
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k, xnn_create_constant_pad_nd_x32(&value, 0, &op), &op);
    if (s == xnn_status_success)
        s = xnn_setup_constant_pad_nd_x32(op, (size_t)tx->ndim, shape, pre, post, x, out_ptr(b),
                                          b->pool);
    return s;
}

/* Concatenation as one strided copy per input into its slice of every output row. */
static enum xnn_status build_concat(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *ty = tout(b);
    size_t outer = 1, inner = 1;
    for (int d = 0; d < n->axis; d++) outer *= (size_t)ty->dims[d];
    for (int d = n->axis + 1; d < ty->ndim; d++) inner *= (size_t)ty->dims[d];
    const size_t orow = (size_t)ty->dims[n->axis] * inner;
    size_t at = 0;
    for (int i = 0; i < n->n_in; i++) {
        const size_t row = (size_t)tin(b, i)->dims[n->axis] * inner;
        if (!row) continue;
        const float *x = data_in(b->x, b->k, n->in[i]);
        if (!x) return xnn_status_out_of_memory;
        xnn_operator_t op = NULL;
        enum xnn_status s = keep(b->k, xnn_create_copy_nc_x32(row, row, orow, 0, &op), &op);
        if (s == xnn_status_success)
            s = xnn_setup_copy_nc_x32(op, outer, x, out_ptr(b) + at, b->pool);
        if (s != xnn_status_success) return s;
        at += row;
    }
    return xnn_status_success;
}

static enum xnn_status build_resize(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *tx = tin(b, 0), *ty = tout(b);
    const size_t C = (size_t)tx->dims[3];
    /* TF semantics: align_corners; half_pixel_centers (XNNPACK's default); neither (TF1). */
    uint32_t flags = n->align_corners ? XNN_FLAG_ALIGN_CORNERS
                     : n->half_pixel  ? 0
                                      : XNN_FLAG_TENSORFLOW_LEGACY_MODE;
    const float *x = data_in(b->x, b->k, n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k, xnn_create_resize_bilinear2d_nhwc_f32(C, C, C, flags, &op), &op);
    if (s == xnn_status_success)
        s = xnn_setup_resize_bilinear2d_nhwc_f32(op, (size_t)tx->dims[0], (size_t)tx->dims[1],
                                                 (size_t)tx->dims[2], (size_t)ty->dims[1],
                                                 (size_t)ty->dims[2], x, out_ptr(b), b->pool);
    return s;
}

static enum xnn_status build_depth_to_space(const xb *b) {
    const nn_node *n = b->n;
    const nn_tensor *tx = tin(b, 0), *ty = tout(b);
    const size_t OC = (size_t)ty->dims[3];
    const float *x = data_in(b->x, b->k, n->in[0]);
    if (!x) return xnn_status_out_of_memory;
    xnn_operator_t op = NULL;
    enum xnn_status s = keep(b->k,
                             xnn_create_depth_to_space_nhwc_x32(OC, (size_t)tx->dims[3], OC,
                                                                (uint32_t)n->block, 0, &op),
                             &op);
    if (s == xnn_status_success)
        s = xnn_setup_depth_to_space_nhwc_x32(op, (size_t)tx->dims[0], (size_t)tx->dims[1],
                                              (size_t)tx->dims[2], x, out_ptr(b), b->pool);
    return s;
}

/* ==== Backend ==== */

static int xnn_init(nn_exec *x, const nn_node *n, nn_kernel *k, mien_err *e) {
    const xnn_ctx *c = nn_exec_backend_ctx(x);
    xk *st = calloc(1, sizeof *st);
    if (!st) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    xb b = {.x = x, .g = nn_exec_graph(x), .n = n, .pool = c ? c->pool : NULL, .k = st};
    enum xnn_status s;
    switch (n->op) {
    case NN_OP_CONV2D: case NN_OP_DWCONV2D: s = build_conv(&b); break;
    case NN_OP_FC: s = build_fc(&b); break;
    case NN_OP_ADD: case NN_OP_SUB: case NN_OP_MUL: case NN_OP_DIV:
    case NN_OP_MAXIMUM: case NN_OP_MINIMUM:
        s = build_binary(&b);
        break;
    case NN_OP_PRELU: s = build_prelu(&b); break;
    case NN_OP_BATCHNORM: s = build_batchnorm(&b); break;
    case NN_OP_MEAN: s = build_mean(&b); break;
    case NN_OP_SOFTMAX: s = build_softmax(&b); break;
    case NN_OP_MAXPOOL: case NN_OP_AVGPOOL: s = build_pool(&b); break;
    case NN_OP_PAD: s = build_pad(&b); break;
    case NN_OP_CONCAT: s = build_concat(&b); break;
    case NN_OP_RESIZE_BILINEAR: s = build_resize(&b); break;
    case NN_OP_DEPTH_TO_SPACE: s = build_depth_to_space(&b); break;
    default: s = build_unary(&b); break;
    }
    if (s == xnn_status_out_of_memory) {
        xk_free(st);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory creating XNNPACK operators");
    }
    if (s != xnn_status_success) {
        /* A shape or parameter this XNNPACK version turns down that supports() let through:
         * the reference kernel runs it instead. */
        xk_free(st);
        return nn_backend_ref.init(x, n, k, e);
    }
    k->run = xk_run;
    k->free = xk_free;
    k->state = st;
    k->backend = st->own ? "own" : "xnnpack";
    return MIEN_OK;
}

const nn_backend nn_backend_xnnpack = {
    .name = "xnnpack",
    .supports = xnn_supports,
    .init = xnn_init,
    .exec_init = xnn_exec_init,
    .exec_free = xnn_exec_free,
};
