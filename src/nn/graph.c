/* Graph IR: construction with shape inference, inspection. */
#include "nn/graph.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
#define OP(name, str, nmin, nmax, ref, test) str,
#include "nn/ops.def"
#undef OP
};
_Static_assert(sizeof op_names / sizeof op_names[0] == NN_OP_COUNT, "op name table");

static const struct { int min, max; } op_arity[] = {
#define OP(name, str, nmin, nmax, ref, test) {nmin, nmax},
#include "nn/ops.def"
#undef OP
};

const char *nn_op_name(nn_op op) {
    return (unsigned)op < NN_OP_COUNT ? op_names[op] : "?";
}

/* ==== Storage ==== */

nn_graph *nn_graph_new(const char *name) {
    nn_graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->name = strdup(name ? name : "graph");
    if (!g->name) {
        free(g);
        return NULL;
    }
    return g;
}

void nn_graph_free(nn_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_t; i++) free(g->t[i].name);
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i].in);
    for (int i = 0; i < g->n_blocks; i++) free(g->blocks[i]);
    free(g->t);
    free(g->nodes);
    free(g->blocks);
    free(g->name);
    free(g);
}

int nn_graph_own(nn_graph *g, void *p) {
    if (g->n_blocks == g->cap_blocks) {
        int nc = g->cap_blocks ? g->cap_blocks * 2 : 64;
        void **nb = realloc(g->blocks, (size_t)nc * sizeof *nb);
        if (!nb) {
            free(p);
            return 0;
        }
        g->blocks = nb;
        g->cap_blocks = nc;
    }
    g->blocks[g->n_blocks++] = p;
    return 1;
}

int nn_graph_owns(const nn_graph *g, const void *p) {
    for (int i = 0; i < g->n_blocks; i++)
        if (g->blocks[i] == p) return 1;
    return 0;
}

static int64_t dims_count(int ndim, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    return n;
}

static int new_tensor(nn_graph *g, const char *name, int ndim, const int64_t *dims,
                      mien_err *e) {
    if (ndim < 0 || ndim > NN_MAX_DIMS) {
        mien_err_set(e, MIEN_EUNSUPPORTED, "tensor %s has %d dims (max %d)", name, ndim,
                     NN_MAX_DIMS);
        return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > NN_MAX_ELEMS / dims[i])) {
            mien_err_set(e, MIEN_ETOOBIG,
                         "tensor %s: dimension %lld negative or too large (over NN_MAX_ELEMS, "
                         "2^28 elements)", name, (long long)dims[i]);
            return -1;
        }
        n *= dims[i];
    }
    if (g->n_t == g->cap_t) {
        int nc = g->cap_t ? g->cap_t * 2 : 256;
        nn_tensor *nt = realloc(g->t, (size_t)nc * sizeof *nt);
        if (!nt) {
            mien_err_set(e, MIEN_ENOMEM, "out of memory");
            return -1;
        }
        g->t = nt;
        g->cap_t = nc;
    }
    nn_tensor *t = &g->t[g->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name ? name : "");
    if (!t->name) {
        mien_err_set(e, MIEN_ENOMEM, "out of memory");
        return -1;
    }
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->dims[i] = dims[i];
    t->n = n;
    t->producer = -1;
    return g->n_t++;
}

static int valid_tensor(const nn_graph *g, int id) { return id >= 0 && id < g->n_t; }

/* Append a node writing a new tensor of the given shape. Returns the output tensor id. */
static int new_node(nn_graph *g, const nn_node *proto, const int *in, int n_in,
                    const char *name, int ndim, const int64_t *dims, mien_err *e) {
    assert(proto->op < NN_OP_COUNT);
    assert(n_in >= op_arity[proto->op].min && n_in <= op_arity[proto->op].max);
    for (int i = 0; i < n_in; i++) {
        if (!valid_tensor(g, in[i])) {
            mien_err_set(e, MIEN_EFORMAT, "%s: input %d is not a tensor", name, i);
            return -1;
        }
    }
    int out = new_tensor(g, name, ndim, dims, e);
    if (out < 0) return -1;
    if (g->n_nodes == g->cap_nodes) {
        int nc = g->cap_nodes ? g->cap_nodes * 2 : 256;
        nn_node *nn = realloc(g->nodes, (size_t)nc * sizeof *nn);
        if (!nn) {
            mien_err_set(e, MIEN_ENOMEM, "out of memory");
            return -1;
        }
        g->nodes = nn;
        g->cap_nodes = nc;
    }
    nn_node *n = &g->nodes[g->n_nodes];
    *n = *proto;
    n->in = malloc((size_t)(n_in ? n_in : 1) * sizeof *n->in);
    if (!n->in) {
        mien_err_set(e, MIEN_ENOMEM, "out of memory");
        return -1;
    }
    if (n_in) memcpy(n->in, in, (size_t)n_in * sizeof *in); /* in is NULL for inputs */
    n->n_in = n_in;
    n->out = out;
    g->t[out].producer = g->n_nodes;
    g->n_nodes++;
    return out;
}

int nn_add_input(nn_graph *g, const char *name, int ndim, const int64_t *dims, mien_err *e) {
    if (g->n_inputs == (int)(sizeof g->inputs / sizeof g->inputs[0])) {
        mien_err_set(e, MIEN_EUNSUPPORTED, "too many graph inputs");
        return -1;
    }
    nn_node proto = {.op = NN_OP_INPUT};
    int t = new_node(g, &proto, NULL, 0, name, ndim, dims, e);
    if (t >= 0) g->inputs[g->n_inputs++] = t;
    return t;
}

int nn_add_const_ref(nn_graph *g, const char *name, int ndim, const int64_t *dims,
                     const float *data, mien_err *e) {
    int t = new_tensor(g, name, ndim, dims, e);
    if (t >= 0) g->t[t].data = data;
    return t;
}

int nn_add_const(nn_graph *g, const char *name, int ndim, const int64_t *dims,
                 const float *data, mien_err *e) {
    int64_t n = dims_count(ndim, dims);
    if (n < 0 || n > NN_MAX_ELEMS) {
        mien_err_set(e, MIEN_ETOOBIG, "constant %s: more than NN_MAX_ELEMS (2^28) elements",
                     name);
        return -1;
    }
    float *copy = malloc((size_t)(n ? n : 1) * sizeof *copy);
    if (!copy || !nn_graph_own(g, copy)) {
        mien_err_set(e, MIEN_ENOMEM, "out of memory");
        return -1;
    }
    if (n) memcpy(copy, data, (size_t)n * sizeof *copy);
    return nn_add_const_ref(g, name, ndim, dims, copy, e);
}

int nn_mark_output(nn_graph *g, int t, mien_err *e) {
    if (!valid_tensor(g, t)) return mien_err_set(e, MIEN_EINVAL, "output is not a tensor");
    if (g->n_outputs == (int)(sizeof g->outputs / sizeof g->outputs[0]))
        return mien_err_set(e, MIEN_EUNSUPPORTED, "too many graph outputs");
    g->outputs[g->n_outputs++] = t;
    return MIEN_OK;
}

int nn_find_tensor(const nn_graph *g, const char *name) {
    for (int i = g->n_t - 1; i >= 0; i--)
        if (strcmp(g->t[i].name, name) == 0) return i;
    return -1;
}

/* ==== Shape inference helpers ==== */

void nn_conv_params_default(nn_conv_params *p) {
    memset(p, 0, sizeof *p);
    p->stride[0] = p->stride[1] = 1;
    p->dilation[0] = p->dilation[1] = 1;
    p->padding = NN_PAD_VALID;
    p->groups = 1;
}

/* Output size and the explicit padding of one spatial axis. TF's SAME puts the odd pixel of
 * padding after (bottom/right). */
static int conv_axis(int64_t in, int k, int stride, int dil, nn_padding padding,
                     int *pad_before, int *pad_after, int64_t *out) {
    if (k <= 0 || stride <= 0 || dil <= 0) return 0;
    int64_t ek = (int64_t)(k - 1) * dil + 1;
    if (padding == NN_PAD_SAME) {
        int64_t o = (in + stride - 1) / stride;
        int64_t total = (o - 1) * stride + ek - in;
        if (total < 0) total = 0;
        *pad_before = (int)(total / 2);
        *pad_after = (int)(total - total / 2);
        *out = o;
        return o > 0;
    }
    if (padding == NN_PAD_VALID) *pad_before = *pad_after = 0;
    int64_t span = in + *pad_before + *pad_after - ek;
    if (span < 0) return 0;
    *out = span / stride + 1;
    return 1;
}

static int set_conv_geometry(nn_node *n, const nn_tensor *x, int kh, int kw,
                             const nn_conv_params *p, int64_t *oh, int64_t *ow,
                             const char *name, mien_err *e) {
    n->stride[0] = p->stride[0];
    n->stride[1] = p->stride[1];
    n->dilation[0] = p->dilation[0] ? p->dilation[0] : 1;
    n->dilation[1] = p->dilation[1] ? p->dilation[1] : 1;
    memcpy(n->pad, p->pad, sizeof n->pad);
    if (!conv_axis(x->dims[1], kh, n->stride[0], n->dilation[0], p->padding, &n->pad[0],
                   &n->pad[1], oh) ||
        !conv_axis(x->dims[2], kw, n->stride[1], n->dilation[1], p->padding, &n->pad[2],
                   &n->pad[3], ow)) {
        mien_err_set(e, MIEN_EFORMAT,
                     "%s: kernel %dx%d stride %dx%d does not fit input %lldx%lld", name, kh,
                     kw, n->stride[0], n->stride[1], (long long)x->dims[1],
                     (long long)x->dims[2]);
        return 0;
    }
    return 1;
}

static void set_act(nn_node *n, nn_act act, float lo, float hi, float alpha) {
    n->act = act;
    n->act_min = lo;
    n->act_max = hi;
    n->act_alpha = alpha;
}

/* Check an optional per-channel vector (bias or PReLU alpha) of length c. */
static int check_vec(const nn_graph *g, int t, int64_t c, const char *what, const char *name,
                     mien_err *e) {
    if (t < 0) return 1;
    if (!valid_tensor(g, t) || g->t[t].n != c) {
        mien_err_set(e, MIEN_EFORMAT, "%s: %s has %lld values, expected %lld", name, what,
                     valid_tensor(g, t) ? (long long)g->t[t].n : -1LL, (long long)c);
        return 0;
    }
    return 1;
}

static int collect_inputs(int *in, int x, int w, int bias, int alpha, nn_act act) {
    int k = 0;
    in[k++] = x;
    in[k++] = w;
    if (bias >= 0) in[k++] = bias;
    if (act == NN_ACT_PRELU) in[k++] = alpha;
    return k;
}

/* ==== Builders ==== */

int nn_add_conv2d(nn_graph *g, const char *name, int x, int w, int bias, int alpha,
                  const nn_conv_params *p, mien_err *e) {
    if (!valid_tensor(g, x) || !valid_tensor(g, w)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x], *tw = &g->t[w];
    int groups = p->groups > 1 ? p->groups : 1;
    if (tx->ndim != 4 || tw->ndim != 4 || tw->dims[2] * groups != tx->dims[3] ||
        tw->dims[3] % groups != 0) {
        mien_err_set(e, MIEN_EFORMAT,
                     "%s: conv2d shapes do not match (input channels %lld, filter %lldx%lldx%lldx%lld, groups %d)",
                     name, tx->ndim == 4 ? (long long)tx->dims[3] : -1LL,
                     (long long)tw->dims[0], (long long)tw->dims[1], (long long)tw->dims[2],
                     (long long)tw->dims[3], groups);
        return -1;
    }
    if (!check_vec(g, bias, tw->dims[3], "bias", name, e)) return -1;
    if (p->act == NN_ACT_PRELU && !check_vec(g, alpha, tw->dims[3], "alpha", name, e))
        return -1;
    nn_node n = {.op = NN_OP_CONV2D, .groups = groups};
    int64_t oh, ow;
    if (!set_conv_geometry(&n, tx, (int)tw->dims[0], (int)tw->dims[1], p, &oh, &ow, name, e))
        return -1;
    set_act(&n, p->act, p->act_min, p->act_max, p->act_alpha);
    int in[4];
    int k = collect_inputs(in, x, w, bias, alpha, p->act);
    int64_t dims[4] = {tx->dims[0], oh, ow, tw->dims[3]};
    return new_node(g, &n, in, k, name, 4, dims, e);
}

int nn_add_dwconv2d(nn_graph *g, const char *name, int x, int w, int bias, int alpha,
                    const nn_conv_params *p, mien_err *e) {
    if (!valid_tensor(g, x) || !valid_tensor(g, w)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x], *tw = &g->t[w];
    if (tx->ndim != 4 || tw->ndim != 4 || tw->dims[2] != tx->dims[3]) {
        mien_err_set(e, MIEN_EFORMAT, "%s: depthwise filter does not match the input", name);
        return -1;
    }
    int64_t co = tw->dims[2] * tw->dims[3];
    if (!check_vec(g, bias, co, "bias", name, e)) return -1;
    if (p->act == NN_ACT_PRELU && !check_vec(g, alpha, co, "alpha", name, e)) return -1;
    nn_node n = {.op = NN_OP_DWCONV2D, .groups = (int)tx->dims[3]};
    int64_t oh, ow;
    if (!set_conv_geometry(&n, tx, (int)tw->dims[0], (int)tw->dims[1], p, &oh, &ow, name, e))
        return -1;
    set_act(&n, p->act, p->act_min, p->act_max, p->act_alpha);
    int in[4];
    int k = collect_inputs(in, x, w, bias, alpha, p->act);
    int64_t dims[4] = {tx->dims[0], oh, ow, co};
    return new_node(g, &n, in, k, name, 4, dims, e);
}

int nn_add_fc(nn_graph *g, const char *name, int x, int w, int bias, int alpha, nn_act act,
              mien_err *e) {
    if (!valid_tensor(g, x) || !valid_tensor(g, w)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x], *tw = &g->t[w];
    if (tx->ndim < 1 || tw->ndim != 2 || tx->dims[tx->ndim - 1] != tw->dims[0]) {
        mien_err_set(e, MIEN_EFORMAT, "%s: matmul shapes do not match", name);
        return -1;
    }
    if (!check_vec(g, bias, tw->dims[1], "bias", name, e)) return -1;
    if (act == NN_ACT_PRELU && !check_vec(g, alpha, tw->dims[1], "alpha", name, e)) return -1;
    nn_node n = {.op = NN_OP_FC};
    set_act(&n, act, 0, 0, 0);
    int in[4];
    int k = collect_inputs(in, x, w, bias, alpha, act);
    int64_t dims[NN_MAX_DIMS];
    memcpy(dims, tx->dims, sizeof dims);
    dims[tx->ndim - 1] = tw->dims[1];
    return new_node(g, &n, in, k, name, tx->ndim, dims, e);
}

/* numpy broadcasting: align trailing axes; each pair equal or one of them 1. */
static int broadcast_shape(const nn_tensor *a, const nn_tensor *b, int *ndim, int64_t *dims) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1) return 0;
        dims[i] = da == 1 ? db : da;
    }
    *ndim = nd;
    return 1;
}

int nn_add_binary(nn_graph *g, nn_op op, const char *name, int a, int b, mien_err *e) {
    assert(op >= NN_OP_ADD && op <= NN_OP_GREATER_EQUAL);
    if (!valid_tensor(g, a) || !valid_tensor(g, b)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    int nd;
    int64_t dims[NN_MAX_DIMS];
    if (!broadcast_shape(&g->t[a], &g->t[b], &nd, dims)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: shapes cannot be broadcast together", name);
        return -1;
    }
    nn_node n = {.op = op};
    int in[2] = {a, b};
    return new_node(g, &n, in, 2, name, nd, dims, e);
}

static int add_same_shape(nn_graph *g, const nn_node *proto, const char *name, const int *in,
                          int n_in, mien_err *e) {
    if (!valid_tensor(g, in[0])) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    int64_t dims[NN_MAX_DIMS];
    memcpy(dims, g->t[in[0]].dims, sizeof dims);
    return new_node(g, proto, in, n_in, name, g->t[in[0]].ndim, dims, e);
}

int nn_add_unary(nn_graph *g, nn_op op, const char *name, int x, mien_err *e) {
    assert(op >= NN_OP_ABS && op <= NN_OP_TANH);
    nn_node n = {.op = op};
    return add_same_shape(g, &n, name, &x, 1, e);
}

int nn_add_leaky_relu(nn_graph *g, const char *name, int x, float alpha, mien_err *e) {
    nn_node n = {.op = NN_OP_LEAKY_RELU, .act_alpha = alpha};
    return add_same_shape(g, &n, name, &x, 1, e);
}

int nn_add_clamp(nn_graph *g, const char *name, int x, float lo, float hi, mien_err *e) {
    nn_node n = {.op = NN_OP_CLAMP, .act_min = lo, .act_max = hi};
    return add_same_shape(g, &n, name, &x, 1, e);
}

int nn_add_prelu(nn_graph *g, const char *name, int x, int alpha, mien_err *e) {
    if (!valid_tensor(g, x) || !valid_tensor(g, alpha)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    int64_t c = tx->ndim ? tx->dims[tx->ndim - 1] : 1;
    if (g->t[alpha].n != c && g->t[alpha].n != 1) {
        mien_err_set(e, MIEN_EFORMAT, "%s: prelu alpha has %lld values for %lld channels",
                     name, (long long)g->t[alpha].n, (long long)c);
        return -1;
    }
    nn_node n = {.op = NN_OP_PRELU};
    int in[2] = {x, alpha};
    return add_same_shape(g, &n, name, in, 2, e);
}

int nn_add_reduce(nn_graph *g, nn_op op, const char *name, int x, unsigned axes, int keepdims,
                  mien_err *e) {
    if (!valid_tensor(g, x)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    if (axes >> tx->ndim) {
        mien_err_set(e, MIEN_EFORMAT, "%s: reduction axis out of range", name);
        return -1;
    }
    int64_t dims[NN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < tx->ndim; i++) {
        if (axes & (1u << i)) {
            if (keepdims) dims[nd++] = 1;
        } else {
            dims[nd++] = tx->dims[i];
        }
    }
    nn_node n = {.op = op, .axes = axes, .keepdims = keepdims};
    return new_node(g, &n, &x, 1, name, nd, dims, e);
}

int nn_add_softmax(nn_graph *g, const char *name, int x, mien_err *e) {
    nn_node n = {.op = NN_OP_SOFTMAX};
    return add_same_shape(g, &n, name, &x, 1, e);
}

int nn_add_pool(nn_graph *g, nn_op op, const char *name, int x, const int kernel[2],
                const nn_conv_params *p, mien_err *e) {
    if (!valid_tensor(g, x) || g->t[x].ndim != 4) {
        mien_err_set(e, MIEN_EFORMAT, "%s: pooling needs an NHWC input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    nn_node n = {.op = op, .kernel = {kernel[0], kernel[1]}};
    int64_t oh, ow;
    if (!set_conv_geometry(&n, tx, kernel[0], kernel[1], p, &oh, &ow, name, e)) return -1;
    int64_t dims[4] = {tx->dims[0], oh, ow, tx->dims[3]};
    return new_node(g, &n, &x, 1, name, 4, dims, e);
}

int nn_add_pad(nn_graph *g, const char *name, int x, const int64_t *pads, float value,
               mien_err *e) {
    if (!valid_tensor(g, x)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    nn_node n = {.op = NN_OP_PAD, .pad_value = value};
    int64_t dims[NN_MAX_DIMS];
    for (int i = 0; i < tx->ndim; i++) {
        if (pads[2 * i] < 0 || pads[2 * i + 1] < 0 || pads[2 * i] > (1 << 20) ||
            pads[2 * i + 1] > (1 << 20)) {
            mien_err_set(e, MIEN_EUNSUPPORTED, "%s: negative or huge padding", name);
            return -1;
        }
        n.pads[2 * i] = pads[2 * i];
        n.pads[2 * i + 1] = pads[2 * i + 1];
        dims[i] = tx->dims[i] + pads[2 * i] + pads[2 * i + 1];
    }
    return new_node(g, &n, &x, 1, name, tx->ndim, dims, e);
}

int nn_add_concat(nn_graph *g, const char *name, const int *xs, int count, int axis,
                  mien_err *e) {
    if (count < 1 || count > 64) {
        mien_err_set(e, MIEN_EUNSUPPORTED, "%s: concat of %d tensors", name, count);
        return -1;
    }
    for (int i = 0; i < count; i++)
        if (!valid_tensor(g, xs[i])) {
            mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
            return -1;
        }
    const nn_tensor *t0 = &g->t[xs[0]];
    if (axis < 0) axis += t0->ndim;
    if (axis < 0 || axis >= t0->ndim) {
        mien_err_set(e, MIEN_EFORMAT, "%s: concat axis out of range", name);
        return -1;
    }
    int64_t dims[NN_MAX_DIMS];
    memcpy(dims, t0->dims, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < count; i++) {
        const nn_tensor *ti = &g->t[xs[i]];
        int ok = ti->ndim == t0->ndim;
        for (int d = 0; ok && d < t0->ndim; d++)
            if (d != axis && ti->dims[d] != t0->dims[d]) ok = 0;
        if (!ok) {
            mien_err_set(e, MIEN_EFORMAT, "%s: concat inputs differ in shape", name);
            return -1;
        }
        dims[axis] += ti->dims[axis];
    }
    nn_node n = {.op = NN_OP_CONCAT, .axis = axis};
    return new_node(g, &n, xs, count, name, t0->ndim, dims, e);
}

int nn_add_reshape(nn_graph *g, const char *name, int x, int ndim, const int64_t *req,
                   mien_err *e) {
    if (!valid_tensor(g, x) || ndim < 0 || ndim > NN_MAX_DIMS) {
        mien_err_set(e, MIEN_EFORMAT, "%s: bad reshape", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    int64_t dims[NN_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = req[i];
        if (req[i] == 0 && i < tx->ndim) dims[i] = tx->dims[i];
        if (dims[i] == -1) {
            if (infer >= 0) {
                mien_err_set(e, MIEN_EFORMAT, "%s: two -1 in reshape", name);
                return -1;
            }
            infer = i;
        } else if (dims[i] <= 0) {
            mien_err_set(e, MIEN_EFORMAT, "%s: bad reshape dimension", name);
            return -1;
        } else {
            known *= dims[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || tx->n % known) {
            mien_err_set(e, MIEN_EFORMAT, "%s: cannot infer reshape dimension", name);
            return -1;
        }
        dims[infer] = tx->n / known;
        known *= dims[infer];
    }
    if (known != tx->n) {
        mien_err_set(e, MIEN_EFORMAT, "%s: reshape from %lld to %lld elements", name,
                     (long long)tx->n, (long long)known);
        return -1;
    }
    nn_node n = {.op = NN_OP_RESHAPE};
    return new_node(g, &n, &x, 1, name, ndim, dims, e);
}

int nn_add_transpose(nn_graph *g, const char *name, int x, const int *perm, mien_err *e) {
    if (!valid_tensor(g, x)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    nn_node n = {.op = NN_OP_TRANSPOSE};
    int64_t dims[NN_MAX_DIMS];
    unsigned seen = 0;
    for (int i = 0; i < tx->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= tx->ndim || (seen & (1u << perm[i]))) {
            mien_err_set(e, MIEN_EFORMAT, "%s: bad permutation", name);
            return -1;
        }
        seen |= 1u << perm[i];
        n.perm[i] = perm[i];
        dims[i] = tx->dims[perm[i]];
    }
    return new_node(g, &n, &x, 1, name, tx->ndim, dims, e);
}

int nn_add_slice(nn_graph *g, const char *name, int x, const int64_t *begin,
                 const int64_t *end, const int64_t *step, mien_err *e) {
    if (!valid_tensor(g, x)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    nn_node n = {.op = NN_OP_SLICE};
    int64_t dims[NN_MAX_DIMS];
    for (int i = 0; i < tx->ndim; i++) {
        int64_t b = begin[i], en = end[i], s = step[i];
        if (s == 0) {
            mien_err_set(e, MIEN_EFORMAT, "%s: zero slice step", name);
            return -1;
        }
        /* A step longer than the axis takes one element either way; clamped, the length
         * below and the kernels' stride products (stride * step) cannot overflow. */
        const int64_t smax = tx->dims[i] > 0 ? tx->dims[i] : 1;
        if (s > smax) s = smax;
        if (s < -smax) s = -smax;
        /* Caller clamps: for s > 0, 0 <= b <= en <= dim; for s < 0, -1 <= en <= b < dim. */
        int64_t len = s > 0 ? (en - b + s - 1) / s : (b - en + (-s) - 1) / (-s);
        if (len < 0) len = 0;
        if (s > 0 ? (b < 0 || en > tx->dims[i]) : (b >= tx->dims[i] || en < -1)) {
            mien_err_set(e, MIEN_EFORMAT, "%s: slice out of range", name);
            return -1;
        }
        n.begin[i] = b;
        n.step[i] = s;
        dims[i] = len;
    }
    return new_node(g, &n, &x, 1, name, tx->ndim, dims, e);
}

int nn_add_resize(nn_graph *g, nn_op op, const char *name, int x, int out_h, int out_w,
                  int align_corners, int half_pixel, mien_err *e) {
    if (!valid_tensor(g, x) || g->t[x].ndim != 4 || out_h <= 0 || out_w <= 0 ||
        out_h > 65536 || out_w > 65536) {
        mien_err_set(e, MIEN_EFORMAT, "%s: bad resize", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    nn_node n = {.op = op, .align_corners = align_corners, .half_pixel = half_pixel};
    int64_t dims[4] = {tx->dims[0], out_h, out_w, tx->dims[3]};
    return new_node(g, &n, &x, 1, name, 4, dims, e);
}

int nn_add_depth_to_space(nn_graph *g, const char *name, int x, int block, mien_err *e) {
    if (!valid_tensor(g, x) || g->t[x].ndim != 4 || block < 1 ||
        g->t[x].dims[3] % ((int64_t)block * block)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: bad depth_to_space", name);
        return -1;
    }
    const nn_tensor *tx = &g->t[x];
    nn_node n = {.op = NN_OP_DEPTH_TO_SPACE, .block = block};
    int64_t dims[4] = {tx->dims[0], tx->dims[1] * block, tx->dims[2] * block,
                       tx->dims[3] / ((int64_t)block * block)};
    return new_node(g, &n, &x, 1, name, 4, dims, e);
}

int nn_add_batchnorm(nn_graph *g, const char *name, int x, int scale, int shift,
                     mien_err *e) {
    if (!valid_tensor(g, x)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    int64_t c = g->t[x].ndim ? g->t[x].dims[g->t[x].ndim - 1] : 1;
    if (!check_vec(g, scale, c, "scale", name, e) || !check_vec(g, shift, c, "shift", name, e))
        return -1;
    nn_node n = {.op = NN_OP_BATCHNORM};
    int in[3] = {x, scale, shift};
    return add_same_shape(g, &n, name, in, 3, e);
}

int nn_add_batchnorm_train(nn_graph *g, const char *name, int x, int gamma, int beta, int alpha,
                           nn_act act, float eps, mien_err *e) {
    if (!valid_tensor(g, x) || g->t[x].ndim < 1) {
        mien_err_set(e, MIEN_EFORMAT, "%s: missing input", name);
        return -1;
    }
    int64_t c = g->t[x].dims[g->t[x].ndim - 1];
    if (!check_vec(g, gamma, c, "gamma", name, e) || !check_vec(g, beta, c, "beta", name, e))
        return -1;
    if (act == NN_ACT_PRELU && (alpha < 0 || !check_vec(g, alpha, c, "alpha", name, e)))
        return -1;
    if (gamma < 0 || beta < 0 || !(eps > 0)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: batchnorm_train needs gamma, beta and eps > 0", name);
        return -1;
    }
    nn_node n = {.op = NN_OP_BATCHNORM_TRAIN, .eps = eps};
    set_act(&n, act, 0, 0, 0);
    int in[4] = {x, gamma, beta, alpha};
    return add_same_shape(g, &n, name, in, act == NN_ACT_PRELU ? 4 : 3, e);
}

int nn_add_l2norm(nn_graph *g, const char *name, int x, float eps, mien_err *e) {
    if (!valid_tensor(g, x) || g->t[x].ndim < 1 || !(eps > 0)) {
        mien_err_set(e, MIEN_EFORMAT, "%s: l2norm needs an input and eps > 0", name);
        return -1;
    }
    nn_node n = {.op = NN_OP_L2NORM, .eps = eps};
    return add_same_shape(g, &n, name, &x, 1, e);
}

/* ==== Inspection ==== */

double nn_graph_flops(const nn_graph *g) {
    double f = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const nn_node *n = &g->nodes[i];
        const nn_tensor *out = &g->t[n->out];
        if (n->op == NN_OP_CONV2D) {
            const nn_tensor *w = &g->t[n->in[1]];
            f += 2.0 * (double)out->n * (double)(w->dims[0] * w->dims[1] * w->dims[2]);
        } else if (n->op == NN_OP_DWCONV2D) {
            const nn_tensor *w = &g->t[n->in[1]];
            f += 2.0 * (double)out->n * (double)(w->dims[0] * w->dims[1]);
        } else if (n->op == NN_OP_FC) {
            f += 2.0 * (double)out->n * (double)g->t[n->in[1]].dims[0];
        }
    }
    return f;
}

int *nn_graph_use_counts(const nn_graph *g) {
    int *uses = calloc((size_t)(g->n_t ? g->n_t : 1), sizeof *uses);
    if (!uses) return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) uses[g->nodes[i].in[j]]++;
    for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]]++;
    return uses;
}
