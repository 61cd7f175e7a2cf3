/* ONNX loader: a ModelProto (parsed by protobuf-c from the subset in onnx.proto) becomes a
 * graph of the IR for one concrete input shape.
 *
 * ==== Layouts ====
 * ONNX tensors are NCHW; the engine's image ops are NHWC. Every value the loader tracks that
 * lives in the graph carries a permutation `perm`: mien axis i of its tensor holds ONNX axis
 * perm[i]. A plain value has the identity; an activation coming out of a convolution has
 * {0,2,3,1} (NCHW seen as NHWC). Ops whose meaning is per axis (Concat, Slice, Gather,
 * Softmax, Transpose, Squeeze/Unsqueeze, reductions, elementwise broadcasting, BN, PRelu)
 * remap their ONNX axes through perm and keep the layout, so no data moves; a Transpose
 * only composes permutations. A value is converted (a transpose node, or a free reshape
 * when only axes of size 1 move) where an op needs a particular layout: convolutions and
 * pools want NHWC, Reshape/Flatten/MatMul/Gemm want ONNX's own order (flattening is
 * order-dependent), and graph outputs are given back in ONNX's order. This is what lets
 * the classic "head" of a detector, conv -> Transpose(0,2,3,1) -> Reshape(1,-1,4), run
 * with no transposes at all: the Transpose makes the NHWC tensor plain.
 *
 * ==== Load-time constants ====
 * The graph is built for one input shape, so the shape arithmetic exporters emit
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, Constant, Cast, integer Add/Mul/Div,
 * Slice of a shape, ...) is evaluated while loading on constant values (int64 or float, held
 * in ONNX order); only ops on real activations become nodes. Initializers are such
 * constants too, and are written into the graph (transposed to the layout the consumer
 * wants: HWIO for convolution weights) when an op uses them.
 *
 * ==== Folding ====
 * BatchNormalization is a per-channel scale and shift node, PRelu a PReLU node;
 * nn_graph_optimize (graph_opt.c, the pass every loader runs) folds the batch norm into the
 * Conv or Gemm before it, fuses the PReLU, Relu, Clip and LeakyRelu into their producers and
 * folds the remaining constant subgraphs.
 *
 * Hostile files: every count, dimension, data length and attribute is checked before use;
 * sizes are bounded by NN_MAX_DIMS and 2^31 elements per tensor; arithmetic on load-time
 * integers is overflow-checked. Weights in external files are refused. */
#include "nn/onnx.h"
#include "nn/onnx.pb-c.h"

#include "core/half.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMS NN_MAX_ELEMS      /* as the graph's limit (graph.h) */
/* Constants the loader computes (ConstantOfShape, folded Slice/Concat/shape arithmetic): real
 * models fold shapes and small masks, a few MB at most; 2^24 elements (128 MB as int64) in all. */
#define MAX_FOLD_ELEMS ((int64_t)1 << 24)
#define MAX_CONST_INTS 4096           /* integer constants (shape arithmetic) */
#define MAX_VALUES (1 << 22)          /* ONNX values in one graph */

/* ==== Values ==== */

typedef enum vkind { V_NONE = 0, V_TENSOR, V_CONST } vkind;

/* A graph tensor seen in ONNX terms: ONNX dims and the layout perm (mien axis i holds ONNX
 * axis perm[i], so mien dims[i] == dims[perm[i]]). */
typedef struct tview {
    int t;
    int ndim;
    int64_t dims[NN_MAX_DIMS];
    int perm[NN_MAX_DIMS];
} tview;

typedef struct oval {
    const char *name;        /* the ONNX value name (points into the parsed model) */
    vkind kind;
    int uses;                /* consumers in the ONNX graph (+1 if a graph output) */
    /* V_TENSOR */
    tview v;
    tview alt;               /* cached conversion to another layout (alt.t < 0: none) */
    /* V_CONST: ONNX order */
    int cndim;
    int64_t cdims[NN_MAX_DIMS];
    int64_t n;
    int is_int;
    float *f;                /* (n) when !is_int */
    int64_t *i;              /* (n) when is_int */
} oval;

typedef struct loader {
    nn_graph *g;
    mien_err *e;
    const char *path;
    int64_t opset;
    oval *vals;
    int n_vals, cap_vals;
    int *hash;               /* open addressing: value index + 1, 0 = empty */
    int hash_cap;
    int64_t made_elems;      /* elements of the constants the loader computed itself
                              * (ConstantOfShape, folded shape arithmetic): at most
                              * MAX_FOLD_ELEMS in all, so a small file cannot ask for gigabytes */
} loader;

static const char *str(const char *s) { return s ? s : ""; }

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static oval *find_val(loader *L, const char *name) {
    if (!name || !*name || !L->hash_cap) return NULL;
    uint64_t mask = (uint64_t)L->hash_cap - 1;
    for (uint64_t h = hash_str(name) & mask;; h = (h + 1) & mask) {
        int k = L->hash[h];
        if (!k) return NULL;
        if (!strcmp(L->vals[k - 1].name, name)) return &L->vals[k - 1];
    }
}

/* A new value named name (ONNX allows each name to be defined once). */
static oval *new_val(loader *L, const char *name) {
    if (!name || !*name) {
        mien_err_set(L->e, MIEN_EFORMAT, "a value has no name");
        return NULL;
    }
    if (find_val(L, name)) {
        mien_err_set(L->e, MIEN_EFORMAT, "value %s is defined twice", name);
        return NULL;
    }
    if (L->n_vals == L->cap_vals) {
        mien_err_set(L->e, MIEN_EINTERNAL, "value table full");
        return NULL;
    }
    oval *v = &L->vals[L->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->v.t = v->alt.t = -1;
    uint64_t mask = (uint64_t)L->hash_cap - 1;
    uint64_t h = hash_str(name) & mask;
    while (L->hash[h]) h = (h + 1) & mask;
    L->hash[h] = L->n_vals;
    return v;
}

static void free_val(oval *v) {
    free(v->f);
    free(v->i);
    v->f = NULL;
    v->i = NULL;
}

static int fail(loader *L, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader *L, int status, const char *fmt, ...) {
    char msg[sizeof L->e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mien_err_set(L->e, status, "%s", msg);
}

/* ==== Shapes and permutations ==== */

static int64_t count_of(int nd, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    return n;
}

/* Check a shape from the file: rank, non-negative dims, bounded element count. */
static int check_shape(loader *L, const char *what, int nd, const int64_t *dims) {
    if (nd < 0 || nd > NN_MAX_DIMS)
        return fail(L, MIEN_EUNSUPPORTED, "%s has rank %d (at most %d)", what, nd, NN_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > MAX_ELEMS / dims[i]))
            return fail(L, MIEN_ETOOBIG, "%s: dimension %lld negative or too large (over NN_MAX_ELEMS, "
                        "2^28 elements)", what,
                        (long long)dims[i]);
        n *= dims[i];
    }
    return MIEN_OK;
}

static void perm_identity(int *p, int nd) {
    for (int i = 0; i < nd; i++) p[i] = i;
}

static int perm_equal(const int *a, const int *b, int nd) {
    for (int i = 0; i < nd; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* inv[onnx axis] = mien axis */
static void perm_invert(const int *p, int nd, int *inv) {
    for (int i = 0; i < nd; i++) inv[p[i]] = i;
}

/* NCHW held as NHWC. */
static const int PERM_NHWC[4] = {0, 2, 3, 1};

/* A layout with ONNX axis `axis` last and the others in order (channel-last for axis 1). */
static void perm_axis_last(int nd, int axis, int *p) {
    int k = 0;
    for (int i = 0; i < nd; i++)
        if (i != axis) p[k++] = i;
    p[k] = axis;
}

static int norm_axis(loader *L, int64_t axis, int nd, const char *node, int *out) {
    if (axis < 0) axis += nd;
    if (axis < 0 || axis >= nd)
        return fail(L, MIEN_EFORMAT, "%s: axis %lld out of range for rank %d", node,
                    (long long)axis, nd);
    *out = (int)axis;
    return MIEN_OK;
}

/* ==== Attributes ==== */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i] && !strcmp(str(n->attribute[i]->name), name)) return n->attribute[i];
    return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t def) {
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : def;
}

static float attr_f(const Onnx__NodeProto *n, const char *name, float def) {
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* Copy a string attribute into buf (truncated, NUL-terminated); def when absent. */
static const char *attr_s(const Onnx__NodeProto *n, const char *name, char *buf, size_t cap,
                          const char *def) {
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a || !a->has_s) return def;
    size_t k = a->s.len < cap - 1 ? a->s.len : cap - 1;
    if (k) memcpy(buf, a->s.data, k);
    buf[k] = '\0';
    return buf;
}

/* Integer list attribute: count (at most max), -1 when absent, -2 when too long. */
static int attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *out, int max) {
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a) return -1;
    if (a->n_ints > (size_t)max) return -2;
    for (size_t i = 0; i < a->n_ints; i++) out[i] = a->ints[i];
    return (int)a->n_ints;
}

/* ==== Constants ==== */

/* Decode a TensorProto into a constant value (float or int64, ONNX order). */
static int load_tensor(loader *L, const Onnx__TensorProto *tp, oval *v) {
    const char *nm = str(tp->name);
    if (tp->n_external_data || (tp->has_data_location &&
                                tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return fail(L, MIEN_EUNSUPPORTED,
                    "tensor %s keeps its data in an external file, which is not supported: "
                    "save the model with its weights inside (onnx.save_model(model, path, "
                    "save_as_external_data=False))", nm);
    if (tp->segment) return fail(L, MIEN_EUNSUPPORTED, "tensor %s is segmented", nm);
    if (tp->n_dims > NN_MAX_DIMS)
        return fail(L, MIEN_EUNSUPPORTED, "tensor %s has rank %zu (at most %d)", nm, tp->n_dims,
                    NN_MAX_DIMS);
    v->cndim = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) v->cdims[i] = tp->dims[i];
    int rc = check_shape(L, nm, v->cndim, v->cdims);
    if (rc) return rc;
    int64_t n = count_of(v->cndim, v->cdims);
    v->n = n;
    size_t esize;
    int dt = tp->has_data_type ? tp->data_type : 0;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: esize = 4; v->is_int = 0; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: esize = 2; v->is_int = 0; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: esize = 8; v->is_int = 0; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: esize = 8; v->is_int = 1; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: esize = 4; v->is_int = 1; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: esize = 1; v->is_int = 1; break;
    default:
        return fail(L, MIEN_EUNSUPPORTED, "tensor %s has data type %d (supported: float, "
                    "float16, double, int64, int32, int8, uint8, bool)", nm, dt);
    }
    size_t cnt = (size_t)(n ? n : 1);
    if (v->is_int) v->i = calloc(cnt, sizeof *v->i);
    else v->f = calloc(cnt, sizeof *v->f);
    if (!v->i && !v->f) return fail(L, MIEN_ENOMEM, "out of memory for tensor %s", nm);
    if (tp->has_raw_data && (tp->raw_data.len || n == 0)) {
        if (tp->raw_data.len / esize != (size_t)n || tp->raw_data.len % esize)
            return fail(L, MIEN_EFORMAT, "tensor %s: raw data of %zu bytes for %lld values", nm,
                        tp->raw_data.len, (long long)n);
        const uint8_t *p = tp->raw_data.data; /* little-endian, as ONNX specifies */
        for (int64_t k = 0; k < n; k++, p += esize) {
            switch (dt) {
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: memcpy(&v->f[k], p, 4); break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
                v->f[k] = mien_half_to_float((uint16_t)(p[0] | p[1] << 8));
                break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
                double d;
                memcpy(&d, p, 8);
                v->f[k] = (float)d;
                break;
            }
            case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: memcpy(&v->i[k], p, 8); break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: {
                int32_t x;
                memcpy(&x, p, 4);
                v->i[k] = x;
                break;
            }
            case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: v->i[k] = (int8_t)p[0]; break;
            default: v->i[k] = p[0]; break;
            }
        }
        return MIEN_OK;
    }
    /* Typed fields: float in float_data; int32, int8, uint8, bool and float16 (as bits) in
     * int32_data; int64 in int64_data; double in double_data. */
    size_t have;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = tp->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = tp->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = tp->n_int64_data; break;
    default: have = tp->n_int32_data; break;
    }
    if (have != (size_t)n)
        return fail(L, MIEN_EFORMAT, "tensor %s has %zu values for shape of %lld", nm, have,
                    (long long)n);
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: v->f[k] = tp->float_data[k]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: v->f[k] = (float)tp->double_data[k]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
            v->f[k] = mien_half_to_float((uint16_t)tp->int32_data[k]);
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: v->i[k] = tp->int64_data[k]; break;
        default: v->i[k] = tp->int32_data[k]; break;
        }
    }
    return MIEN_OK;
}

/* Make v a constant of the given shape (data allocated, zeroed). */
static int make_const(loader *L, oval *v, int is_int, int nd, const int64_t *dims) {
    int rc = check_shape(L, v->name, nd, dims);
    if (rc) return rc;
    free_val(v);
    v->kind = V_CONST;
    v->cndim = nd;
    memcpy(v->cdims, dims, (size_t)nd * sizeof *dims);
    v->n = count_of(nd, dims);
    if (v->n > MAX_FOLD_ELEMS - L->made_elems)
        return fail(L, MIEN_ETOOBIG,
                    "%s: the model's computed constants are too large (over %lld elements in all)",
                    v->name, (long long)MAX_FOLD_ELEMS);
    L->made_elems += v->n;
    v->is_int = is_int;
    size_t cnt = (size_t)(v->n ? v->n : 1);
    if (is_int) v->i = calloc(cnt, sizeof *v->i);
    else v->f = calloc(cnt, sizeof *v->f);
    if (!v->i && !v->f) return fail(L, MIEN_ENOMEM, "out of memory");
    return MIEN_OK;
}

static double cval(const oval *c, int64_t k) { return c->is_int ? (double)c->i[k] : c->f[k]; }

/* Integer vector of a constant (shape arithmetic inputs), at most max values. */
static int const_ints(loader *L, const oval *c, const char *node, const char *what,
                      int64_t *out, int max, int *n) {
    if (!c || c->kind != V_CONST)
        return fail(L, MIEN_EUNSUPPORTED, "%s: %s must be known when loading", node, what);
    if (c->n > max) return fail(L, MIEN_EUNSUPPORTED, "%s: %s has %lld values", node, what,
                                (long long)c->n);
    for (int64_t k = 0; k < c->n; k++) {
        if (c->is_int) {
            out[k] = c->i[k];
        } else {
            float f = c->f[k];
            if (!(fabsf(f) < 9e15f)) return fail(L, MIEN_EFORMAT, "%s: bad %s", node, what);
            out[k] = (int64_t)f;
        }
    }
    *n = (int)c->n;
    return MIEN_OK;
}

/* Strides of an N-d shape (elements). */
static void strides(int nd, const int64_t *dims, int64_t *st) {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; i--) {
        st[i] = s;
        s *= dims[i];
    }
}

/* Permute a constant's data: out axis i is in axis p[i]. */
static void permute_data(int nd, const int64_t *dims, const int *p, size_t esize,
                         const void *in, void *out) {
    int64_t ist[NN_MAX_DIMS], odims[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0}, sst[NN_MAX_DIMS];
    strides(nd, dims, ist);
    for (int i = 0; i < nd; i++) {
        odims[i] = dims[p[i]];
        sst[i] = ist[p[i]];
    }
    int64_t n = count_of(nd, dims), off = 0;
    for (int64_t k = 0; k < n; k++) {
        memcpy((char *)out + (size_t)k * esize, (const char *)in + (size_t)off * esize, esize);
        for (int d = nd - 1; d >= 0; d--) {
            idx[d]++;
            off += sst[d];
            if (idx[d] < odims[d]) break;
            off -= sst[d] * idx[d];
            idx[d] = 0;
        }
    }
}

/* Write constant c into the graph as a float tensor of rank R (leading 1s added) in
 * layout perm. */
static int const_tensor(loader *L, const oval *c, int R, const int *perm) {
    if (c->cndim > R) {
        fail(L, MIEN_EINTERNAL, "constant %s: rank %d above %d", c->name, c->cndim, R);
        return -1;
    }
    int64_t dims[NN_MAX_DIMS], mdims[NN_MAX_DIMS];
    int k = R - c->cndim;
    for (int i = 0; i < R; i++) dims[i] = i < k ? 1 : c->cdims[i - k];
    for (int i = 0; i < R; i++) mdims[i] = dims[perm[i]];
    size_t cnt = (size_t)(c->n ? c->n : 1);
    float *src = malloc(cnt * sizeof *src), *dst = malloc(cnt * sizeof *dst);
    if (!src || !dst) {
        free(src);
        free(dst);
        fail(L, MIEN_ENOMEM, "out of memory");
        return -1;
    }
    for (int64_t j = 0; j < c->n; j++) src[j] = (float)cval(c, j);
    permute_data(R, dims, perm, sizeof(float), src, dst);
    free(src);
    if (!nn_graph_own(L->g, dst)) {
        fail(L, MIEN_ENOMEM, "out of memory");
        return -1;
    }
    return nn_add_const_ref(L->g, c->name, R, mdims, dst, L->e);
}

/* ==== Tensor views and layout conversion ==== */

static void view_of_tensor(const nn_graph *g, int t, const int *perm, tview *v) {
    const nn_tensor *tt = &g->t[t];
    v->t = t;
    v->ndim = tt->ndim;
    for (int i = 0; i < tt->ndim; i++) {
        v->perm[i] = perm[i];
        v->dims[perm[i]] = tt->dims[i];
    }
}

/* Bind the value out to tensor t in layout perm. */
static int set_tensor(loader *L, oval *out, int t, const int *perm) {
    if (t < 0) return L->e->status ? L->e->status : MIEN_EINTERNAL;
    free_val(out);
    out->kind = V_TENSOR;
    view_of_tensor(L->g, t, perm, &out->v);
    out->alt.t = -1;
    return MIEN_OK;
}

static int set_plain(loader *L, oval *out, int t) {
    int p[NN_MAX_DIMS];
    if (t < 0) return L->e->status ? L->e->status : MIEN_EINTERNAL;
    perm_identity(p, L->g->t[t].ndim);
    return set_tensor(L, out, t, p);
}

/* Convert view v to layout want (same rank). A reshape when only size-1 axes move, else a
 * transpose. Returns the tensor id (-1 on failure). */
static int view_to(loader *L, const tview *v, const int *want, const char *name) {
    int nd = v->ndim;
    if (perm_equal(v->perm, want, nd)) return v->t;
    int64_t mdims[NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) mdims[i] = v->dims[want[i]];
    /* The sequence of non-singleton ONNX axes in both mien orders. */
    int a[NN_MAX_DIMS], b[NN_MAX_DIMS], na = 0, nb = 0;
    for (int i = 0; i < nd; i++) {
        if (v->dims[v->perm[i]] != 1) a[na++] = v->perm[i];
        if (v->dims[want[i]] != 1) b[nb++] = want[i];
    }
    int same = na == nb;
    for (int i = 0; same && i < na; i++) same = a[i] == b[i];
    char nm[512];
    snprintf(nm, sizeof nm, "%s/layout", name);
    if (same) return nn_add_reshape(L->g, nm, v->t, nd, mdims, L->e);
    int inv[NN_MAX_DIMS], tp[NN_MAX_DIMS];
    perm_invert(v->perm, nd, inv);
    for (int i = 0; i < nd; i++) tp[i] = inv[want[i]];
    return nn_add_transpose(L->g, nm, v->t, tp, L->e);
}

/* The tensor of value x in layout want, caching one conversion per value. */
static int val_to(loader *L, oval *x, const int *want) {
    if (perm_equal(x->v.perm, want, x->v.ndim)) return x->v.t;
    if (x->alt.t >= 0 && perm_equal(x->alt.perm, want, x->v.ndim)) return x->alt.t;
    int t = view_to(L, &x->v, want, x->name);
    if (t < 0) return -1;
    view_of_tensor(L->g, t, want, &x->alt);
    return t;
}

static int val_plain(loader *L, oval *x) {
    int p[NN_MAX_DIMS];
    perm_identity(p, x->v.ndim);
    return val_to(L, x, p);
}

/* Prepend size-1 axes to a view so it has rank R (a free reshape). */
static int view_expand(loader *L, tview *v, int R, const char *name) {
    int k = R - v->ndim;
    if (k <= 0) return MIEN_OK;
    tview w = {.ndim = R};
    for (int i = 0; i < R; i++) w.dims[i] = i < k ? 1 : v->dims[i - k];
    for (int i = 0; i < R; i++) w.perm[i] = i < k ? i : v->perm[i - k] + k;
    int64_t mdims[NN_MAX_DIMS];
    for (int i = 0; i < R; i++) mdims[i] = w.dims[w.perm[i]];
    char nm[512];
    snprintf(nm, sizeof nm, "%s/rank%d", name, R);
    w.t = nn_add_reshape(L->g, nm, v->t, R, mdims, L->e);
    if (w.t < 0) return L->e->status;
    *v = w;
    return MIEN_OK;
}

/* Tensor of value x (tensor or constant) with rank R and layout perm. */
static int operand(loader *L, oval *x, int R, const int *perm) {
    if (x->kind == V_CONST) return const_tensor(L, x, R, perm);
    if (x->v.ndim == R) return val_to(L, x, perm);
    tview w = x->v;
    if (view_expand(L, &w, R, x->name)) return -1;
    return view_to(L, &w, perm, x->name);
}

/* ==== Node context ==== */

typedef struct nctx {
    const Onnx__NodeProto *node;
    const char *nm;          /* node name (or its first output) for messages */
    oval *in[64];            /* NULL for omitted optional inputs */
    int nin;
    oval *out[8];
    int nout;
} nctx;

typedef int (*op_fn)(loader *L, nctx *c);

static oval *IN(nctx *c, int k) { return k < c->nin ? c->in[k] : NULL; }

static int need_tensor(loader *L, nctx *c, int k) {
    oval *x = IN(c, k);
    if (!x) return fail(L, MIEN_EFORMAT, "%s: missing input %d", c->nm, k);
    if (x->kind != V_TENSOR)
        return fail(L, MIEN_EUNSUPPORTED, "%s (%s): input %d must be a computed tensor", c->nm,
                    str(c->node->op_type), k);
    return MIEN_OK;
}

static int need_const(loader *L, nctx *c, int k, const char *what) {
    oval *x = IN(c, k);
    if (!x || x->kind != V_CONST)
        return fail(L, MIEN_EUNSUPPORTED, "%s (%s): %s must be a constant", c->nm,
                    str(c->node->op_type), what);
    return MIEN_OK;
}

/* Alias: out is the same thing as in (Identity, Dropout). */
static int alias(loader *L, oval *out, const oval *x) {
    const char *name = out->name;
    int uses = out->uses;
    if (x->kind == V_CONST) {
        int rc = make_const(L, out, x->is_int, x->cndim, x->cdims);
        if (rc) return rc;
        size_t cnt = (size_t)x->n;
        if (x->is_int) memcpy(out->i, x->i, cnt * sizeof *x->i);
        else memcpy(out->f, x->f, cnt * sizeof *x->f);
    } else {
        free_val(out);
        *out = *x;
        out->f = NULL;
        out->i = NULL;
        }
    out->name = name;
    out->uses = uses;
    return MIEN_OK;
}

/* ==== Convolution family ==== */

/* Spatial attributes shared by Conv and pools: pads (top, bottom, left, right), strides,
 * dilations, and auto_pad resolved against the input size. */
static int spatial_params(loader *L, nctx *c, const int64_t *in_hw, const int64_t *k,
                          nn_conv_params *p) {
    const Onnx__NodeProto *n = c->node;
    nn_conv_params_default(p);
    int64_t v[8];
    int cnt = attr_ints(n, "strides", v, 8);
    if (cnt == 2) {
        p->stride[0] = (int)v[0];
        p->stride[1] = (int)v[1];
    } else if (cnt != -1) {
        return fail(L, MIEN_EUNSUPPORTED, "%s: only 2-D strides are supported", c->nm);
    }
    cnt = attr_ints(n, "dilations", v, 8);
    if (cnt == 2) {
        p->dilation[0] = (int)v[0];
        p->dilation[1] = (int)v[1];
    } else if (cnt != -1) {
        return fail(L, MIEN_EUNSUPPORTED, "%s: only 2-D dilations are supported", c->nm);
    }
    for (int i = 0; i < 2; i++) {
        if (p->stride[i] < 1 || p->stride[i] > 1024 || p->dilation[i] < 1 || p->dilation[i] > 1024)
            return fail(L, MIEN_EFORMAT, "%s: bad stride or dilation", c->nm);
        if (k[i] < 1 || k[i] > 4096) return fail(L, MIEN_EFORMAT, "%s: bad kernel size", c->nm);
    }
    char buf[32];
    const char *ap = attr_s(n, "auto_pad", buf, sizeof buf, "NOTSET");
    p->padding = NN_PAD_EXPLICIT;
    if (!strcmp(ap, "NOTSET")) {
        cnt = attr_ints(n, "pads", v, 8);
        if (cnt == 4) {
            for (int i = 0; i < 4; i++)
                if (v[i] < 0 || v[i] > 4096)
                    return fail(L, MIEN_EFORMAT, "%s: bad padding", c->nm);
            /* ONNX: [top, left, bottom, right] */
            p->pad[0] = (int)v[0];
            p->pad[1] = (int)v[2];
            p->pad[2] = (int)v[1];
            p->pad[3] = (int)v[3];
        } else if (cnt != -1) {
            return fail(L, MIEN_EUNSUPPORTED, "%s: only 2-D pads are supported", c->nm);
        }
    } else if (!strcmp(ap, "VALID")) {
        p->padding = NN_PAD_VALID;
    } else if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
        /* Output ceil(in / stride); the odd pixel goes after (UPPER) or before (LOWER). */
        for (int i = 0; i < 2; i++) {
            int64_t o = (in_hw[i] + p->stride[i] - 1) / p->stride[i];
            int64_t ek = (k[i] - 1) * p->dilation[i] + 1;
            int64_t total = (o - 1) * p->stride[i] + ek - in_hw[i];
            if (total < 0) total = 0;
            int64_t small = total / 2, big = total - small;
            int upper = ap[5] == 'U';
            p->pad[2 * i] = (int)(upper ? small : big);
            p->pad[2 * i + 1] = (int)(upper ? big : small);
        }
    } else {
        return fail(L, MIEN_EUNSUPPORTED, "%s: auto_pad %s", c->nm, ap);
    }
    return MIEN_OK;
}

static float *own_floats(loader *L, int64_t n) {
    float *p = calloc((size_t)(n ? n : 1), sizeof *p);
    if (!p || !nn_graph_own(L->g, p)) {
        fail(L, MIEN_ENOMEM, "out of memory");
        return NULL;
    }
    return p;
}

static int op_conv(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0)) || (rc = need_const(L, c, 1, "the weights"))) return rc;
    oval *x = c->in[0], *w = c->in[1], *b = IN(c, 2);
    if (x->v.ndim != 4 || w->cndim != 4)
        return fail(L, MIEN_EUNSUPPORTED, "%s: only 2-D convolutions (4-D tensors) are supported",
                    c->nm);
    if (b && (b->kind != V_CONST || b->n != w->cdims[0]))
        return fail(L, MIEN_EUNSUPPORTED, "%s: the bias must be a constant of %lld values", c->nm,
                    (long long)w->cdims[0]);
    int64_t group = attr_i(c->node, "group", 1);
    const int64_t CO = w->cdims[0], CIG = w->cdims[1], KH = w->cdims[2], KW = w->cdims[3];
    const int64_t CI = x->v.dims[1];
    if (group < 1 || CI % group || CIG * group != CI || CO % group)
        return fail(L, MIEN_EFORMAT,
                    "%s: %lld input channels, weights %lldx%lldx%lldx%lld, group %lld do not match",
                    c->nm, (long long)CI, (long long)CO, (long long)CIG, (long long)KH,
                    (long long)KW, (long long)group);
    int64_t ks[2] = {KH, KW}, hw[2] = {x->v.dims[2], x->v.dims[3]};
    nn_conv_params p;
    if ((rc = spatial_params(L, c, hw, ks, &p))) return rc;
    int xt = val_to(L, x, PERM_NHWC);
    if (xt < 0) return L->e->status;
    const int depthwise = group > 1 && group == CI && CIG == 1;
    float *wd = own_floats(L, w->n), *bd = own_floats(L, CO);
    if (!wd || !bd) return L->e->status;
    /* ONNX weights [CO][CIG][KH][KW]; output channel o belongs to group o / COG. */
    for (int64_t o = 0; o < CO; o++)
        for (int64_t ci = 0; ci < CIG; ci++)
            for (int64_t ky = 0; ky < KH; ky++)
                for (int64_t kx = 0; kx < KW; kx++) {
                    float val = w->f ? w->f[((o * CIG + ci) * KH + ky) * KW + kx]
                                     : (float)w->i[((o * CIG + ci) * KH + ky) * KW + kx];
                    if (depthwise) /* [KH][KW][C][M], o = c * M + m: index (ky,kx,o) */
                        wd[(ky * KW + kx) * CO + o] = val;
                    else /* HWIO [KH][KW][CIG][CO] */
                        wd[((ky * KW + kx) * CIG + ci) * CO + o] = val;
                }
    if (b)
        for (int64_t o = 0; o < CO; o++) bd[o] = (float)cval(b, o);
    char nm[512];
    snprintf(nm, sizeof nm, "%s/w", c->out[0]->name);
    int64_t wdims[4] = {KH, KW, depthwise ? CI : CIG, depthwise ? CO / CI : CO};
    int wt = nn_add_const_ref(L->g, nm, 4, wdims, wd, L->e);
    snprintf(nm, sizeof nm, "%s/b", c->out[0]->name);
    int bt = wt < 0 ? -1 : nn_add_const_ref(L->g, nm, 1, &CO, bd, L->e);
    if (bt < 0) return L->e->status;
    if (!depthwise) p.groups = (int)group;
    int t = depthwise ? nn_add_dwconv2d(L->g, c->out[0]->name, xt, wt, bt, -1, &p, L->e)
                      : nn_add_conv2d(L->g, c->out[0]->name, xt, wt, bt, -1, &p, L->e);
    return set_tensor(L, c->out[0], t, PERM_NHWC);
}

/* Gemm: Y = alpha * A' B' + beta * C with B constant (a fully connected layer). */
static int fc_layer(loader *L, nctx *c, oval *a, int trans_a, const oval *bmat, int trans_b,
                    float alpha, const oval *bias, float beta) {
    if (a->kind != V_TENSOR || a->v.ndim < 1)
        return fail(L, MIEN_EUNSUPPORTED, "%s: the left operand must be a computed tensor", c->nm);
    if (bmat->cndim != 2)
        return fail(L, MIEN_EUNSUPPORTED, "%s: the weights must be a 2-D constant", c->nm);
    const int64_t K = bmat->cdims[trans_b ? 1 : 0], M = bmat->cdims[trans_b ? 0 : 1];
    int at = val_plain(L, a);
    if (at < 0) return L->e->status;
    if (trans_a) {
        if (a->v.ndim != 2) return fail(L, MIEN_EUNSUPPORTED, "%s: transA on rank %d", c->nm, a->v.ndim);
        int tp[2] = {1, 0};
        char nm[512];
        snprintf(nm, sizeof nm, "%s/transA", c->out[0]->name);
        if ((at = nn_add_transpose(L->g, nm, at, tp, L->e)) < 0) return L->e->status;
    }
    if (L->g->t[at].dims[L->g->t[at].ndim - 1] != K)
        return fail(L, MIEN_EFORMAT, "%s: inner dimensions differ (%lld vs %lld)", c->nm,
                    (long long)L->g->t[at].dims[L->g->t[at].ndim - 1], (long long)K);
    float *wd = own_floats(L, K * M), *bd = own_floats(L, M);
    if (!wd || !bd) return L->e->status;
    for (int64_t k = 0; k < K; k++)
        for (int64_t m = 0; m < M; m++)
            wd[k * M + m] = alpha * (float)cval(bmat, trans_b ? m * K + k : k * M + m);
    if (bias) {
        /* C must broadcast to (rows, M) the same for every row: (M), (1, M) or a scalar. */
        int ok = bias->kind == V_CONST && (bias->n == M || bias->n == 1);
        for (int d = 0; ok && d + 1 < bias->cndim; d++) ok = bias->cdims[d] == 1;
        if (!ok)
            return fail(L, MIEN_EUNSUPPORTED, "%s: the bias must be a constant of %lld values",
                        c->nm, (long long)M);
        for (int64_t m = 0; m < M; m++) bd[m] = beta * (float)cval(bias, bias->n == 1 ? 0 : m);
    }
    char nm[512];
    snprintf(nm, sizeof nm, "%s/w", c->out[0]->name);
    int64_t wdims[2] = {K, M};
    int wt = nn_add_const_ref(L->g, nm, 2, wdims, wd, L->e);
    snprintf(nm, sizeof nm, "%s/b", c->out[0]->name);
    int bt = wt < 0 ? -1 : nn_add_const_ref(L->g, nm, 1, &M, bd, L->e);
    if (bt < 0) return L->e->status;
    int t = nn_add_fc(L->g, c->out[0]->name, at, wt, bt, -1, NN_ACT_NONE, L->e);
    return set_plain(L, c->out[0], t);
}

static int op_gemm(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0)) || (rc = need_const(L, c, 1, "B"))) return rc;
    return fc_layer(L, c, c->in[0], (int)attr_i(c->node, "transA", 0), c->in[1],
                    (int)attr_i(c->node, "transB", 0), attr_f(c->node, "alpha", 1.f), IN(c, 2),
                    attr_f(c->node, "beta", 1.f));
}

static int op_matmul(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    if (!IN(c, 1) || c->in[1]->kind != V_CONST || c->in[1]->cndim != 2)
        return fail(L, MIEN_EUNSUPPORTED,
                    "%s (MatMul): only a product with a constant 2-D matrix is supported", c->nm);
    return fc_layer(L, c, c->in[0], 0, c->in[1], 0, 1.f, NULL, 0.f);
}

/* Per-channel scale and shift on ONNX axis 1: a BATCHNORM node in channel-last layout (which
 * nn_graph_optimize folds into a conv/fc that only it reads). */
static int channel_affine(loader *L, nctx *c, oval *x, const float *scale, const float *shift,
                          int64_t C) {
    if (x->v.ndim < 2 || x->v.dims[1] != C)
        return fail(L, MIEN_EFORMAT, "%s: %lld channel parameters for input of %lld channels",
                    c->nm, (long long)C, x->v.ndim >= 2 ? (long long)x->v.dims[1] : -1LL);
    int p[NN_MAX_DIMS];
    perm_axis_last(x->v.ndim, 1, p);
    int xt = val_to(L, x, p);
    float *s = own_floats(L, C), *b = own_floats(L, C);
    if (xt < 0 || !s || !b) return L->e->status;
    memcpy(s, scale, (size_t)C * sizeof *s);
    memcpy(b, shift, (size_t)C * sizeof *b);
    char nm[512];
    snprintf(nm, sizeof nm, "%s/scale", c->out[0]->name);
    int st = nn_add_const_ref(L->g, nm, 1, &C, s, L->e);
    snprintf(nm, sizeof nm, "%s/shift", c->out[0]->name);
    int bt = st < 0 ? -1 : nn_add_const_ref(L->g, nm, 1, &C, b, L->e);
    if (bt < 0) return L->e->status;
    return set_tensor(L, c->out[0], nn_add_batchnorm(L->g, c->out[0]->name, xt, st, bt, L->e), p);
}

static int op_batchnorm(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    for (int k = 1; k <= 4; k++)
        if ((rc = need_const(L, c, k, "scale, bias, mean and variance"))) return rc;
    const int64_t C = c->in[1]->n;
    for (int k = 2; k <= 4; k++)
        if (c->in[k]->n != C) return fail(L, MIEN_EFORMAT, "%s: parameter sizes differ", c->nm);
    float eps = attr_f(c->node, "epsilon", 1e-5f);
    float *s = malloc((size_t)(C ? C : 1) * sizeof *s), *b = malloc((size_t)(C ? C : 1) * sizeof *b);
    if (!s || !b) {
        free(s);
        free(b);
        return fail(L, MIEN_ENOMEM, "out of memory");
    }
    for (int64_t k = 0; k < C; k++) {
        double sc = cval(c->in[1], k) / sqrt(cval(c->in[4], k) + eps);
        s[k] = (float)sc;
        b[k] = (float)(cval(c->in[2], k) - cval(c->in[3], k) * sc);
    }
    rc = channel_affine(L, c, c->in[0], s, b, C);
    free(s);
    free(b);
    return rc;
}

/* Does constant a broadcast along ONNX axis 1 only, for an input of rank nd? (C,1,1) or
 * (1,C,1,1) for NCHW; (C) for (N, C). */
static int per_channel(const oval *a, int nd, int64_t C) {
    if (a->n != C || a->cndim > nd) return 0;
    int k = nd - a->cndim;
    for (int i = 0; i < a->cndim; i++) {
        int axis = i + k;
        if (axis != 1 && a->cdims[i] != 1) return 0;
    }
    return 1;
}

static int op_prelu(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0)) || (rc = need_const(L, c, 1, "the slope"))) return rc;
    oval *x = c->in[0], *a = c->in[1];
    const int nd = x->v.ndim;
    const int64_t C = nd >= 2 ? x->v.dims[1] : 1;
    int p[NN_MAX_DIMS];
    if (a->n == 1 && nd >= 1) {
        memcpy(p, x->v.perm, sizeof p);
    } else if (nd >= 2 && per_channel(a, nd, C)) {
        perm_axis_last(nd, 1, p);
    } else if (nd >= 1 && a->n == x->v.dims[nd - 1] && a->cndim == 1) {
        perm_identity(p, nd); /* numpy broadcasting on the last axis */
    } else {
        return fail(L, MIEN_EUNSUPPORTED, "%s: PRelu slope of %lld values for this input", c->nm,
                    (long long)a->n);
    }
    float *al = own_floats(L, a->n);
    if (!al) return L->e->status;
    for (int64_t k = 0; k < a->n; k++) al[k] = (float)cval(a, k);
    char nm[512];
    snprintf(nm, sizeof nm, "%s/alpha", c->out[0]->name);
    int64_t an = a->n;
    int at = nn_add_const_ref(L->g, nm, 1, &an, al, L->e);
    if (at < 0) return L->e->status;
    int xt = val_to(L, x, p);
    if (xt < 0) return L->e->status;
    return set_tensor(L, c->out[0], nn_add_prelu(L->g, c->out[0]->name, xt, at, L->e), p);
}

/* ==== Elementwise ==== */

static int op_unary(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    oval *x = c->in[0];
    const char *op = str(c->node->op_type);
    const char *nm = c->out[0]->name;
    int t;
    if (!strcmp(op, "Relu")) t = nn_add_unary(L->g, NN_OP_RELU, nm, x->v.t, L->e);
    else if (!strcmp(op, "Sigmoid")) t = nn_add_unary(L->g, NN_OP_SIGMOID, nm, x->v.t, L->e);
    else if (!strcmp(op, "Tanh")) t = nn_add_unary(L->g, NN_OP_TANH, nm, x->v.t, L->e);
    else if (!strcmp(op, "Exp")) t = nn_add_unary(L->g, NN_OP_EXP, nm, x->v.t, L->e);
    else if (!strcmp(op, "Abs")) t = nn_add_unary(L->g, NN_OP_ABS, nm, x->v.t, L->e);
    else if (!strcmp(op, "Neg")) t = nn_add_unary(L->g, NN_OP_NEG, nm, x->v.t, L->e);
    else if (!strcmp(op, "Sqrt")) t = nn_add_unary(L->g, NN_OP_SQRT, nm, x->v.t, L->e);
    else if (!strcmp(op, "LeakyRelu"))
        t = nn_add_leaky_relu(L->g, nm, x->v.t, attr_f(c->node, "alpha", 0.01f), L->e);
    else return fail(L, MIEN_EINTERNAL, "unary %s", op);
    return set_tensor(L, c->out[0], t, x->v.perm);
}

static int op_clip(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    float lo = attr_f(c->node, "min", -FLT_MAX), hi = attr_f(c->node, "max", FLT_MAX);
    for (int k = 1; k <= 2; k++) {
        oval *b = IN(c, k);
        if (!b) continue;
        if (b->kind != V_CONST || b->n != 1)
            return fail(L, MIEN_EUNSUPPORTED, "%s: Clip bounds must be constant scalars", c->nm);
        if (k == 1) lo = (float)cval(b, 0);
        else hi = (float)cval(b, 0);
    }
    int t = nn_add_clamp(L->g, c->out[0]->name, c->in[0]->v.t, lo, hi, L->e);
    return set_tensor(L, c->out[0], t, c->in[0]->v.perm);
}

/* numpy broadcasting of two ONNX shapes. */
static int bcast(int na, const int64_t *a, int nb, const int64_t *b, int *nd, int64_t *d) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = na - n + i, ib = nb - n + i;
        int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da != db && da != 1 && db != 1) return 0;
        d[i] = da == 1 ? db : da;
    }
    *nd = n;
    return 1;
}

static int checked_op(char op, int64_t a, int64_t b, int64_t *r) {
    switch (op) {
    case '+': return !__builtin_add_overflow(a, b, r);
    case '-': return !__builtin_sub_overflow(a, b, r);
    case '*': return !__builtin_mul_overflow(a, b, r);
    case '/':
        if (b == 0 || (a == INT64_MIN && b == -1)) return 0;
        *r = a / b;
        return 1;
    case '<': *r = a < b ? a : b; return 1;
    case '>': *r = a > b ? a : b; return 1;
    }
    return 0;
}

/* Binary op on two constants (shape arithmetic or constant subgraphs). */
static int const_binary(loader *L, nctx *c, char op, const oval *a, const oval *b) {
    int nd;
    int64_t d[NN_MAX_DIMS];
    if (!bcast(a->cndim, a->cdims, b->cndim, b->cdims, &nd, d))
        return fail(L, MIEN_EFORMAT, "%s: shapes cannot be broadcast", c->nm);
    oval *out = c->out[0];
    int is_int = a->is_int && b->is_int;
    int rc = make_const(L, out, is_int, nd, d);
    if (rc) return rc;
    int64_t sa[NN_MAX_DIMS], sb[NN_MAX_DIMS], st[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0};
    strides(a->cndim, a->cdims, st);
    for (int i = 0; i < nd; i++) {
        int ia = a->cndim - nd + i;
        sa[i] = ia >= 0 && a->cdims[ia] != 1 ? st[ia] : 0;
    }
    strides(b->cndim, b->cdims, st);
    for (int i = 0; i < nd; i++) {
        int ib = b->cndim - nd + i;
        sb[i] = ib >= 0 && b->cdims[ib] != 1 ? st[ib] : 0;
    }
    int64_t oa = 0, ob = 0;
    for (int64_t k = 0; k < out->n; k++) {
        if (is_int) {
            if (!checked_op(op, a->i[oa], b->i[ob], &out->i[k]))
                return fail(L, MIEN_EFORMAT, "%s: integer overflow or division by zero", c->nm);
        } else {
            float x = (float)cval(a, oa), y = (float)cval(b, ob), r;
            switch (op) {
            case '+': r = x + y; break;
            case '-': r = x - y; break;
            case '*': r = x * y; break;
            case '/': r = x / y; break;
            case '<': r = x < y ? x : y; break;
            default: r = x > y ? x : y; break;
            }
            out->f[k] = r;
        }
        for (int dd = nd - 1; dd >= 0; dd--) {
            idx[dd]++;
            oa += sa[dd];
            ob += sb[dd];
            if (idx[dd] < d[dd]) break;
            oa -= sa[dd] * idx[dd];
            ob -= sb[dd] * idx[dd];
            idx[dd] = 0;
        }
    }
    return MIEN_OK;
}

static int op_binary(loader *L, nctx *c) {
    const char *op = str(c->node->op_type);
    char ch;
    nn_op nop;
    if (!strcmp(op, "Add")) ch = '+', nop = NN_OP_ADD;
    else if (!strcmp(op, "Sub")) ch = '-', nop = NN_OP_SUB;
    else if (!strcmp(op, "Mul")) ch = '*', nop = NN_OP_MUL;
    else if (!strcmp(op, "Div")) ch = '/', nop = NN_OP_DIV;
    else if (!strcmp(op, "Min")) ch = '<', nop = NN_OP_MINIMUM;
    else ch = '>', nop = NN_OP_MAXIMUM;
    oval *a = IN(c, 0), *b = IN(c, 1);
    if (!a || !b || c->nin != 2)
        return fail(L, MIEN_EUNSUPPORTED, "%s: %s with %d inputs", c->nm, op, c->nin);
    if (a->kind == V_CONST && b->kind == V_CONST) return const_binary(L, c, ch, a, b);
    int nd;
    int64_t d[NN_MAX_DIMS];
    int na = a->kind == V_CONST ? a->cndim : a->v.ndim, nb = b->kind == V_CONST ? b->cndim : b->v.ndim;
    const int64_t *da = a->kind == V_CONST ? a->cdims : a->v.dims;
    const int64_t *db = b->kind == V_CONST ? b->cdims : b->v.dims;
    if (!bcast(na, da, nb, db, &nd, d))
        return fail(L, MIEN_EFORMAT, "%s: shapes cannot be broadcast", c->nm);
    /* The layout of the larger computed operand, expanded to the output rank. */
    oval *lead = a->kind != V_TENSOR ? b : b->kind != V_TENSOR ? a
                 : (count_of(b->v.ndim, b->v.dims) > count_of(a->v.ndim, a->v.dims) ? b : a);
    int p[NN_MAX_DIMS], k = nd - lead->v.ndim;
    for (int i = 0; i < nd; i++) p[i] = i < k ? i : lead->v.perm[i - k] + k;
    int ta = operand(L, a, nd, p);
    int tb = ta < 0 ? -1 : operand(L, b, nd, p);
    if (tb < 0) return L->e->status;
    return set_tensor(L, c->out[0], nn_add_binary(L->g, nop, c->out[0]->name, ta, tb, L->e), p);
}

/* ==== Pooling ==== */

static int op_pool(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    oval *x = c->in[0];
    const char *op = str(c->node->op_type);
    if (x->v.ndim != 4) return fail(L, MIEN_EUNSUPPORTED, "%s: only 2-D pooling", c->nm);
    int is_max = op[0] == 'M' || op[6] == 'M'; /* MaxPool, GlobalMaxPool */
    int xt = val_to(L, x, PERM_NHWC);
    if (xt < 0) return L->e->status;
    if (!strncmp(op, "Global", 6)) {
        int t = nn_add_reduce(L->g, is_max ? NN_OP_REDUCE_MAX : NN_OP_MEAN, c->out[0]->name, xt,
                              (1u << 1) | (1u << 2), 1, L->e);
        return set_tensor(L, c->out[0], t, PERM_NHWC);
    }
    int64_t k[8];
    if (attr_ints(c->node, "kernel_shape", k, 8) != 2)
        return fail(L, MIEN_EUNSUPPORTED, "%s: pooling needs a 2-D kernel_shape", c->nm);
    int64_t hw[2] = {x->v.dims[2], x->v.dims[3]};
    nn_conv_params p;
    if ((rc = spatial_params(L, c, hw, k, &p))) return rc;
    if (!is_max && (p.dilation[0] != 1 || p.dilation[1] != 1))
        return fail(L, MIEN_EUNSUPPORTED, "%s: dilated average pooling", c->nm);
    if (attr_i(c->node, "ceil_mode", 0)) {
        /* Extend the bottom/right padding so the floor formula gives ceil's size. For max
         * pooling the extra cells are ignored like padding; for average pooling a window
         * that reaches past the padded input is not the same thing, so refuse when it
         * would change the result. */
        if (p.padding != NN_PAD_EXPLICIT)
            return fail(L, MIEN_EUNSUPPORTED, "%s: ceil_mode with auto_pad", c->nm);
        for (int i = 0; i < 2; i++) {
            int64_t ek = (k[i] - 1) * p.dilation[i] + 1;
            int64_t span = hw[i] + p.pad[2 * i] + p.pad[2 * i + 1] - ek;
            if (span < 0) return fail(L, MIEN_EFORMAT, "%s: window larger than input", c->nm);
            int64_t o = (span + p.stride[i] - 1) / p.stride[i] + 1;
            /* PyTorch/ONNX: the last window must start inside the input or left padding. */
            if ((o - 1) * p.stride[i] >= hw[i] + p.pad[2 * i]) o--;
            int64_t extra = (o - 1) * p.stride[i] + ek - (hw[i] + p.pad[2 * i] + p.pad[2 * i + 1]);
            if (extra > 0) {
                if (!is_max)
                    return fail(L, MIEN_EUNSUPPORTED, "%s: ceil_mode average pooling", c->nm);
                p.pad[2 * i + 1] += (int)extra;
            }
        }
    }
    if (!is_max && attr_i(c->node, "count_include_pad", 0) &&
        (p.pad[0] || p.pad[1] || p.pad[2] || p.pad[3])) {
        /* Zero padding counted in the average: pad explicitly, then pool without padding. */
        int64_t pads[8] = {0, 0, p.pad[0], p.pad[1], p.pad[2], p.pad[3], 0, 0};
        char nm[512];
        snprintf(nm, sizeof nm, "%s/pad", c->out[0]->name);
        if ((xt = nn_add_pad(L->g, nm, xt, pads, 0.f, L->e)) < 0) return L->e->status;
        memset(p.pad, 0, sizeof p.pad);
    }
    int kern[2] = {(int)k[0], (int)k[1]};
    int t = nn_add_pool(L->g, is_max ? NN_OP_MAXPOOL : NN_OP_AVGPOOL, c->out[0]->name, xt, kern,
                        &p, L->e);
    return set_tensor(L, c->out[0], t, PERM_NHWC);
}

/* ==== Shape ops ==== */

static int op_shape(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    const int64_t *d = x->kind == V_CONST ? x->cdims : x->v.dims;
    int64_t start = attr_i(c->node, "start", 0), end = attr_i(c->node, "end", nd);
    if (start < 0) start += nd;
    if (end < 0) end += nd;
    start = start < 0 ? 0 : start > nd ? nd : start;
    end = end < start ? start : end > nd ? nd : end;
    int64_t n = end - start;
    int rc = make_const(L, c->out[0], 1, 1, &n);
    if (rc) return rc;
    for (int64_t k = 0; k < n; k++) c->out[0]->i[k] = d[start + k];
    return MIEN_OK;
}

static int op_constant(loader *L, nctx *c) {
    const Onnx__AttributeProto *a;
    oval *out = c->out[0];
    if ((a = attr(c->node, "value")) && a->t) {
        free_val(out);
        int rc = load_tensor(L, a->t, out);
        if (rc) return rc;
        out->kind = V_CONST;
        return MIEN_OK;
    }
    if ((a = attr(c->node, "value_float")) && a->has_f) {
        int rc = make_const(L, out, 0, 0, NULL);
        if (!rc) out->f[0] = a->f;
        return rc;
    }
    if ((a = attr(c->node, "value_int")) && a->has_i) {
        int rc = make_const(L, out, 1, 0, NULL);
        if (!rc) out->i[0] = a->i;
        return rc;
    }
    if ((a = attr(c->node, "value_floats"))) {
        int64_t n = (int64_t)a->n_floats;
        int rc = make_const(L, out, 0, 1, &n);
        if (!rc && n) memcpy(out->f, a->floats, (size_t)n * sizeof *out->f);
        return rc;
    }
    if ((a = attr(c->node, "value_ints"))) {
        int64_t n = (int64_t)a->n_ints;
        int rc = make_const(L, out, 1, 1, &n);
        if (!rc && n) memcpy(out->i, a->ints, (size_t)n * sizeof *out->i);
        return rc;
    }
    return fail(L, MIEN_EUNSUPPORTED, "%s: Constant without a supported value", c->nm);
}

static int op_constant_of_shape(loader *L, nctx *c) {
    int64_t shape[NN_MAX_DIMS];
    int n, rc;
    if ((rc = const_ints(L, IN(c, 0), c->nm, "the shape", shape, NN_MAX_DIMS, &n))) return rc;
    const Onnx__AttributeProto *a = attr(c->node, "value");
    oval val = {.name = c->nm};
    double fill = 0;
    int is_int = 0;
    if (a && a->t) {
        if ((rc = load_tensor(L, a->t, &val))) {
            free_val(&val);
            return rc;
        }
        if (val.n != 1) {
            free_val(&val);
            return fail(L, MIEN_EFORMAT, "%s: value must have one element", c->nm);
        }
        fill = cval(&val, 0);
        is_int = val.is_int;
        free_val(&val);
    }
    if ((rc = make_const(L, c->out[0], is_int, n, shape))) return rc;
    for (int64_t k = 0; k < c->out[0]->n; k++) {
        if (is_int) c->out[0]->i[k] = (int64_t)fill;
        else c->out[0]->f[k] = (float)fill;
    }
    return MIEN_OK;
}

static int op_identity(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    return alias(L, c->out[0], x);
}

static int op_cast(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int64_t to = attr_i(c->node, "to", 1);
    int to_float = to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                   to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
                   to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
    int to_int = to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                 to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    if (x->kind == V_TENSOR) {
        if (!to_float) return fail(L, MIEN_EUNSUPPORTED, "%s: Cast of a tensor to type %lld",
                                   c->nm, (long long)to);
        return alias(L, c->out[0], x);
    }
    if (!to_float && !to_int)
        return fail(L, MIEN_EUNSUPPORTED, "%s: Cast to type %lld", c->nm, (long long)to);
    int rc = make_const(L, c->out[0], to_int, x->cndim, x->cdims);
    if (rc) return rc;
    for (int64_t k = 0; k < x->n; k++) {
        if (to_int) {
            double d = cval(x, k);
            if (!(fabs(d) < 9e18)) return fail(L, MIEN_EFORMAT, "%s: value out of range", c->nm);
            c->out[0]->i[k] = (int64_t)d;
        } else {
            c->out[0]->f[k] = (float)cval(x, k);
        }
    }
    return MIEN_OK;
}

/* Copy constant x into out with a new shape (same element count). */
static int const_reshaped(loader *L, oval *out, const oval *x, int nd, const int64_t *dims) {
    int rc = make_const(L, out, x->is_int, nd, dims);
    if (rc) return rc;
    if (out->n != x->n) return fail(L, MIEN_EINTERNAL, "constant reshape");
    if (x->is_int) memcpy(out->i, x->i, (size_t)x->n * sizeof *x->i);
    else memcpy(out->f, x->f, (size_t)x->n * sizeof *x->f);
    return MIEN_OK;
}

/* Resolve ONNX Reshape's 0 (copy, unless allowzero) and -1 (infer). */
static int reshape_dims(loader *L, nctx *c, int nd_in, const int64_t *din, int64_t n_in,
                        int64_t *shape, int ns, int allowzero) {
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ns; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= nd_in) return fail(L, MIEN_EFORMAT, "%s: 0 in reshape past the input rank", c->nm);
            shape[i] = din[i];
        }
        if (shape[i] == -1) {
            if (infer >= 0) return fail(L, MIEN_EFORMAT, "%s: two -1 in reshape", c->nm);
            infer = i;
            continue;
        }
        if (shape[i] < 0 || (shape[i] && known > MAX_ELEMS / shape[i]))
            return fail(L, MIEN_EFORMAT, "%s: bad reshape dimension %lld", c->nm,
                        (long long)shape[i]);
        known *= shape[i];
    }
    if (infer >= 0) {
        if (known == 0 || n_in % known)
            return fail(L, MIEN_EFORMAT, "%s: cannot infer the reshape dimension", c->nm);
        shape[infer] = n_in / known;
        known = n_in;
    }
    if (known != n_in)
        return fail(L, MIEN_EFORMAT, "%s: reshape of %lld elements to %lld", c->nm,
                    (long long)n_in, (long long)known);
    return MIEN_OK;
}

/* out = x reshaped to ONNX dims (data in ONNX order). */
static int reshape_to(loader *L, nctx *c, oval *x, int nd, const int64_t *dims) {
    if (x->kind == V_CONST) return const_reshaped(L, c->out[0], x, nd, dims);
    int xt = val_plain(L, x);
    if (xt < 0) return L->e->status;
    return set_plain(L, c->out[0], nn_add_reshape(L->g, c->out[0]->name, xt, nd, dims, L->e));
}

static int op_reshape(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int64_t shape[NN_MAX_DIMS + 1];
    int ns, rc;
    if ((rc = const_ints(L, IN(c, 1), c->nm, "the shape", shape, NN_MAX_DIMS, &ns))) return rc;
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    const int64_t *d = x->kind == V_CONST ? x->cdims : x->v.dims;
    if ((rc = reshape_dims(L, c, nd, d, count_of(nd, d), shape, ns,
                           (int)attr_i(c->node, "allowzero", 0))))
        return rc;
    return reshape_to(L, c, x, ns, shape);
}

static int op_flatten(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    const int64_t *d = x->kind == V_CONST ? x->cdims : x->v.dims;
    int64_t axis = attr_i(c->node, "axis", 1);
    if (axis < 0) axis += nd;
    if (axis < 0 || axis > nd) return fail(L, MIEN_EFORMAT, "%s: bad axis", c->nm);
    int64_t dims[2] = {count_of((int)axis, d), count_of(nd - (int)axis, d + axis)};
    return reshape_to(L, c, x, 2, dims);
}

/* Squeeze / Unsqueeze: only axes of size 1 come or go, so no data moves in any layout; the
 * new axes are placed in the mien order just before the axis that follows them in ONNX
 * order (so a plain value stays plain). */
static int op_squeeze(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int unsq = str(c->node->op_type)[0] == 'U';
    int64_t ax[NN_MAX_DIMS * 2];
    int nax = attr_ints(c->node, "axes", ax, NN_MAX_DIMS);
    int rc;
    if (nax == -2) return fail(L, MIEN_EFORMAT, "%s: too many axes", c->nm);
    if (nax < 0 && IN(c, 1)) {
        if ((rc = const_ints(L, IN(c, 1), c->nm, "the axes", ax, NN_MAX_DIMS, &nax))) return rc;
    }
    if (nax < 0) nax = 0;
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    const int64_t *d = x->kind == V_CONST ? x->cdims : x->v.dims;
    int ond = unsq ? nd + nax : nd;
    if (unsq && ond > NN_MAX_DIMS) return fail(L, MIEN_EUNSUPPORTED, "%s: rank above %d", c->nm, NN_MAX_DIMS);
    unsigned mark = 0; /* squeeze: input axes removed; unsqueeze: output axes added */
    for (int k = 0; k < nax; k++) {
        int a = 0;
        if ((rc = norm_axis(L, ax[k], ond, c->nm, &a))) return rc;
        if (mark & (1u << a)) return fail(L, MIEN_EFORMAT, "%s: repeated axis", c->nm);
        mark |= 1u << a;
    }
    if (!unsq && nax == 0)
        for (int i = 0; i < nd; i++)
            if (d[i] == 1) mark |= 1u << i;
    int64_t od[NN_MAX_DIMS];
    int map[NN_MAX_DIMS]; /* input axis -> output axis (-1: removed) */
    int o = 0;
    if (unsq) {
        int i = 0;
        for (o = 0; o < ond; o++) {
            if (mark & (1u << o)) {
                od[o] = 1;
            } else {
                map[i] = o;
                od[o] = d[i++];
            }
        }
        if (i != nd) return fail(L, MIEN_EFORMAT, "%s: bad axes", c->nm);
    } else {
        for (int i = 0; i < nd; i++) {
            if (mark & (1u << i)) {
                if (d[i] != 1) return fail(L, MIEN_EFORMAT, "%s: squeezing an axis of size %lld",
                                           c->nm, (long long)d[i]);
                map[i] = -1;
            } else {
                map[i] = o;
                od[o++] = d[i];
            }
        }
        ond = o;
    }
    if (x->kind == V_CONST) return const_reshaped(L, c->out[0], x, ond, od);
    int p[NN_MAX_DIMS], np = 0;
    for (int i = 0; i < nd; i++) {
        int src = x->v.perm[i], dst = map[src];
        if (dst < 0) continue;
        /* Unsqueeze: put new axes that precede dst (and follow the previous kept axis in
         * ONNX order) right before it. */
        if (unsq)
            for (int a = 0; a < dst; a++)
                if ((mark & (1u << a))) {
                    int taken = 0;
                    for (int q = 0; q < np; q++) taken |= p[q] == a;
                    if (!taken) p[np++] = a;
                }
        p[np++] = dst;
    }
    if (unsq)
        for (int a = 0; a < ond; a++)
            if (mark & (1u << a)) {
                int taken = 0;
                for (int q = 0; q < np; q++) taken |= p[q] == a;
                if (!taken) p[np++] = a;
            }
    int64_t md[NN_MAX_DIMS];
    for (int i = 0; i < ond; i++) md[i] = od[p[i]];
    int t = nn_add_reshape(L->g, c->out[0]->name, x->v.t, ond, md, L->e);
    return set_tensor(L, c->out[0], t, p);
}

static int op_transpose(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    int64_t pv[NN_MAX_DIMS];
    int np = attr_ints(c->node, "perm", pv, NN_MAX_DIMS);
    int tp[NN_MAX_DIMS];
    if (np < 0) { /* default: reverse */
        for (int i = 0; i < nd; i++) tp[i] = nd - 1 - i;
    } else {
        unsigned seen = 0;
        if (np != nd) return fail(L, MIEN_EFORMAT, "%s: perm of %d axes for rank %d", c->nm, np, nd);
        for (int i = 0; i < nd; i++) {
            if (pv[i] < 0 || pv[i] >= nd || (seen & (1u << pv[i])))
                return fail(L, MIEN_EFORMAT, "%s: bad perm", c->nm);
            seen |= 1u << pv[i];
            tp[i] = (int)pv[i];
        }
    }
    if (x->kind == V_CONST) {
        int64_t od[NN_MAX_DIMS];
        for (int i = 0; i < nd; i++) od[i] = x->cdims[tp[i]];
        int rc = make_const(L, c->out[0], x->is_int, nd, od);
        if (rc) return rc;
        if (x->is_int) permute_data(nd, x->cdims, tp, sizeof(int64_t), x->i, c->out[0]->i);
        else permute_data(nd, x->cdims, tp, sizeof(float), x->f, c->out[0]->f);
        return MIEN_OK;
    }
    /* No data moves: output ONNX axis j is input axis tp[j]; mien axis i held input axis
     * perm[i], which is output axis inv_tp[perm[i]]. */
    int inv[NN_MAX_DIMS], p[NN_MAX_DIMS];
    perm_invert(tp, nd, inv);
    for (int i = 0; i < nd; i++) p[i] = inv[x->v.perm[i]];
    int t = x->v.t;
    oval *out = c->out[0];
    free_val(out);
    out->kind = V_TENSOR;
    view_of_tensor(L->g, t, p, &out->v);
    out->alt.t = -1;
    return MIEN_OK;
}

static int op_concat(loader *L, nctx *c) {
    int rc, nd = -1, all_const = 1;
    oval *first = NULL;
    for (int k = 0; k < c->nin; k++) {
        oval *x = c->in[k];
        if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
        int r = x->kind == V_CONST ? x->cndim : x->v.ndim;
        if (nd >= 0 && r != nd) return fail(L, MIEN_EFORMAT, "%s: inputs differ in rank", c->nm);
        nd = r;
        if (x->kind == V_TENSOR) {
            all_const = 0;
            if (!first) first = x;
        }
    }
    if (c->nin < 1) return fail(L, MIEN_EFORMAT, "%s: no inputs", c->nm);
    int axis = 0;
    if ((rc = norm_axis(L, attr_i(c->node, "axis", 0), nd, c->nm, &axis))) return rc;
    if (all_const) {
        int64_t od[NN_MAX_DIMS];
        memcpy(od, c->in[0]->cdims, sizeof od);
        od[axis] = 0;
        int is_int = 1;
        for (int k = 0; k < c->nin; k++) {
            for (int i = 0; i < nd; i++)
                if (i != axis && c->in[k]->cdims[i] != od[i])
                    return fail(L, MIEN_EFORMAT, "%s: inputs differ in shape", c->nm);
            od[axis] += c->in[k]->cdims[axis];
            is_int &= c->in[k]->is_int;
        }
        if ((rc = make_const(L, c->out[0], is_int, nd, od))) return rc;
        int64_t outer = count_of(axis, od), inner = count_of(nd - axis - 1, od + axis + 1), at = 0;
        for (int k = 0; k < c->nin; k++) {
            const oval *x = c->in[k];
            int64_t row = x->cdims[axis] * inner;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t j = 0; j < row; j++) {
                    int64_t di = o * od[axis] * inner + at + j, si = o * row + j;
                    if (is_int) c->out[0]->i[di] = x->i[si];
                    else c->out[0]->f[di] = (float)cval(x, si);
                }
            at += row;
        }
        return MIEN_OK;
    }
    if (c->nin > 64) return fail(L, MIEN_EUNSUPPORTED, "%s: concat of %d tensors", c->nm, c->nin);
    int p[NN_MAX_DIMS], inv[NN_MAX_DIMS], ts[64];
    memcpy(p, first->v.perm, sizeof p);
    perm_invert(p, nd, inv);
    for (int k = 0; k < c->nin; k++)
        if ((ts[k] = operand(L, c->in[k], nd, p)) < 0) return L->e->status;
    int t = nn_add_concat(L->g, c->out[0]->name, ts, c->nin, inv[axis], L->e);
    return set_tensor(L, c->out[0], t, p);
}

/* ONNX Slice bounds on one axis, clamped as the spec says. */
static void slice_bounds(int64_t dim, int64_t s, int64_t e, int64_t step, int64_t *b, int64_t *en) {
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
        s = s < 0 ? 0 : s > dim ? dim : s;
        e = e < 0 ? 0 : e > dim ? dim : e;
        if (e < s) e = s;
    } else {
        s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
        e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
        if (e > s) e = s;
    }
    *b = s;
    *en = e;
}

static int op_slice(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    const int64_t *d = x->kind == V_CONST ? x->cdims : x->v.dims;
    int64_t st[NN_MAX_DIMS], en[NN_MAX_DIMS], ax[NN_MAX_DIMS], sp[NN_MAX_DIMS];
    int ns, ne, na = -1, nsp = -1, rc;
    ns = attr_ints(c->node, "starts", st, NN_MAX_DIMS);
    if (ns >= 0) { /* opset < 10: attributes */
        ne = attr_ints(c->node, "ends", en, NN_MAX_DIMS);
        na = attr_ints(c->node, "axes", ax, NN_MAX_DIMS);
    } else {
        if ((rc = const_ints(L, IN(c, 1), c->nm, "starts", st, NN_MAX_DIMS, &ns)) ||
            (rc = const_ints(L, IN(c, 2), c->nm, "ends", en, NN_MAX_DIMS, &ne)))
            return rc;
        if (IN(c, 3) && (rc = const_ints(L, IN(c, 3), c->nm, "axes", ax, NN_MAX_DIMS, &na))) return rc;
        if (IN(c, 4) && (rc = const_ints(L, IN(c, 4), c->nm, "steps", sp, NN_MAX_DIMS, &nsp))) return rc;
    }
    if (ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns) || ns > nd)
        return fail(L, MIEN_EFORMAT, "%s: slice parameters disagree", c->nm);
    int64_t b[NN_MAX_DIMS], e[NN_MAX_DIMS], s[NN_MAX_DIMS], od[NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) b[i] = 0, e[i] = d[i], s[i] = 1;
    unsigned seen = 0;
    for (int k = 0; k < ns; k++) {
        int a = k;
        if (na >= 0 && (rc = norm_axis(L, ax[k], nd, c->nm, &a))) return rc;
        if (seen & (1u << a)) return fail(L, MIEN_EFORMAT, "%s: repeated axis", c->nm);
        seen |= 1u << a;
        s[a] = nsp >= 0 ? sp[k] : 1;
        if (s[a] == 0) return fail(L, MIEN_EFORMAT, "%s: zero step", c->nm);
        /* A step longer than the axis takes one element, as a step of the axis length does;
         * clamping keeps the length arithmetic below from overflowing (steps of INT64_MAX). */
        const int64_t smax = d[a] > 0 ? d[a] : 1;
        if (s[a] > smax) s[a] = smax;
        if (s[a] < -smax) s[a] = -smax;
        slice_bounds(d[a], st[k], en[k], s[a], &b[a], &e[a]);
    }
    for (int i = 0; i < nd; i++)
        od[i] = s[i] > 0 ? (e[i] - b[i] + s[i] - 1) / s[i] : (b[i] - e[i] - s[i] - 1) / (-s[i]);
    if (x->kind == V_CONST) {
        if ((rc = make_const(L, c->out[0], x->is_int, nd, od))) return rc;
        int64_t xs[NN_MAX_DIMS], idx[NN_MAX_DIMS] = {0};
        strides(nd, x->cdims, xs);
        for (int64_t k = 0; k < c->out[0]->n; k++) {
            int64_t off = 0;
            for (int i = 0; i < nd; i++) off += (b[i] + idx[i] * s[i]) * xs[i];
            if (x->is_int) c->out[0]->i[k] = x->i[off];
            else c->out[0]->f[k] = x->f[off];
            for (int i = nd - 1; i >= 0; i--) {
                if (++idx[i] < od[i]) break;
                idx[i] = 0;
            }
        }
        return MIEN_OK;
    }
    int64_t mb[NN_MAX_DIMS], me[NN_MAX_DIMS], ms[NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int a = x->v.perm[i];
        mb[i] = b[a];
        me[i] = e[a];
        ms[i] = s[a];
    }
    int t = nn_add_slice(L->g, c->out[0]->name, x->v.t, mb, me, ms, L->e);
    return set_tensor(L, c->out[0], t, x->v.perm);
}

/* Split: consecutive pieces along one axis, each a slice of the input. The sizes come from
 * the "split" attribute (opset < 13) or the second input (13+), else equal parts. */
static int op_split(loader *L, nctx *c) {
    oval *x = IN(c, 0);
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    const int nd = x->v.ndim;
    int axis = 0;
    if ((rc = norm_axis(L, attr_i(c->node, "axis", 0), nd, c->nm, &axis))) return rc;
    int64_t sz[8];
    int n = attr_ints(c->node, "split", sz, 8);
    if (n < 0 && IN(c, 1) && (rc = const_ints(L, IN(c, 1), c->nm, "split", sz, 8, &n))) return rc;
    const int64_t dim = x->v.dims[axis];
    if (n < 0) { /* equal parts */
        if (dim % c->nout) return fail(L, MIEN_EFORMAT, "%s: %lld does not split in %d", c->nm,
                                       (long long)dim, c->nout);
        n = c->nout;
        for (int k = 0; k < n; k++) sz[k] = dim / n;
    }
    if (n != c->nout) return fail(L, MIEN_EFORMAT, "%s: %d sizes for %d outputs", c->nm, n, c->nout);
    int64_t at = 0;
    for (int k = 0; k < n; k++) {
        if (sz[k] < 0 || at + sz[k] > dim) return fail(L, MIEN_EFORMAT, "%s: split sizes exceed the axis", c->nm);
        if (!c->out[k]) { /* an unnamed output: nobody reads it */
            at += sz[k];
            continue;
        }
        int64_t b[NN_MAX_DIMS], e[NN_MAX_DIMS], s[NN_MAX_DIMS];
        for (int i = 0; i < nd; i++) {
            int a = x->v.perm[i]; /* mien axis i holds ONNX axis a */
            b[i] = a == axis ? at : 0;
            e[i] = a == axis ? at + sz[k] : x->v.dims[a];
            s[i] = 1;
        }
        int t = nn_add_slice(L->g, c->out[k]->name, x->v.t, b, e, s, L->e);
        if ((rc = set_tensor(L, c->out[k], t, x->v.perm))) return rc;
        at += sz[k];
    }
    if (at != dim) return fail(L, MIEN_EFORMAT, "%s: split sizes do not cover the axis", c->nm);
    return MIEN_OK;
}

static int op_gather(loader *L, nctx *c) {
    oval *x = IN(c, 0), *ix = IN(c, 1);
    int rc;
    if (!x || x->kind == V_NONE) return fail(L, MIEN_EFORMAT, "%s: missing input", c->nm);
    if ((rc = need_const(L, c, 1, "the indices"))) return rc;
    int nd = x->kind == V_CONST ? x->cndim : x->v.ndim;
    const int64_t *d = x->kind == V_CONST ? x->cdims : x->v.dims;
    int axis = 0;
    if ((rc = norm_axis(L, attr_i(c->node, "axis", 0), nd, c->nm, &axis))) return rc;
    int ond = nd - 1 + ix->cndim;
    if (ond > NN_MAX_DIMS) return fail(L, MIEN_EUNSUPPORTED, "%s: rank above %d", c->nm, NN_MAX_DIMS);
    if (ix->n > 64 && x->kind == V_TENSOR)
        return fail(L, MIEN_EUNSUPPORTED, "%s: gather of %lld indices", c->nm, (long long)ix->n);
    int64_t idx[64 + 1], *idxp = idx, *heap = NULL;
    if (ix->n > 64) {
        heap = malloc((size_t)ix->n * sizeof *heap);
        if (!heap) return fail(L, MIEN_ENOMEM, "out of memory");
        idxp = heap;
    }
    for (int64_t k = 0; k < ix->n; k++) {
        double v = cval(ix, k);
        int64_t q = (int64_t)v;
        if (q < 0) q += d[axis];
        if (!(fabs(v) < 9e18) || q < 0 || q >= d[axis]) {
            free(heap);
            return fail(L, MIEN_EFORMAT, "%s: index %g out of range", c->nm, v);
        }
        idxp[k] = q;
    }
    int64_t od[NN_MAX_DIMS];
    int o = 0;
    for (int i = 0; i < axis; i++) od[o++] = d[i];
    for (int i = 0; i < ix->cndim; i++) od[o++] = ix->cdims[i];
    for (int i = axis + 1; i < nd; i++) od[o++] = d[i];
    if (x->kind == V_CONST) {
        if ((rc = make_const(L, c->out[0], x->is_int, ond, od))) {
            free(heap);
            return rc;
        }
        int64_t outer = count_of(axis, d), inner = count_of(nd - axis - 1, d + axis + 1), k = 0;
        for (int64_t a = 0; a < outer; a++)
            for (int64_t j = 0; j < ix->n; j++)
                for (int64_t q = 0; q < inner; q++, k++) {
                    int64_t si = (a * d[axis] + idxp[j]) * inner + q;
                    if (x->is_int) c->out[0]->i[k] = x->i[si];
                    else c->out[0]->f[k] = x->f[si];
                }
        free(heap);
        return MIEN_OK;
    }
    free(heap);
    /* On a tensor: one slice per index along the mien axis of `axis`, concatenated, then
     * a free reshape to the output rank (the gathered axis becomes the indices' axes). */
    int inv[NN_MAX_DIMS] = {0};
    perm_invert(x->v.perm, nd, inv);
    const int ma = inv[axis];
    int ts[64];
    char nm[512];
    for (int64_t k = 0; k < ix->n; k++) {
        int64_t b[NN_MAX_DIMS], e[NN_MAX_DIMS], s[NN_MAX_DIMS];
        const nn_tensor *tx = &L->g->t[x->v.t];
        for (int i = 0; i < nd; i++) b[i] = 0, e[i] = tx->dims[i], s[i] = 1;
        b[ma] = idx[k];
        e[ma] = idx[k] + 1;
        snprintf(nm, sizeof nm, "%s/%lld", c->out[0]->name, (long long)k);
        if ((ts[k] = nn_add_slice(L->g, nm, x->v.t, b, e, s, L->e)) < 0) return L->e->status;
    }
    int t = ts[0];
    if (ix->n > 1) {
        snprintf(nm, sizeof nm, "%s/cat", c->out[0]->name);
        if ((t = nn_add_concat(L->g, nm, ts, (int)ix->n, ma, L->e)) < 0) return L->e->status;
    }
    /* Mien order of the output: x's order with `axis` replaced by the index axes (in order),
     * other axes renumbered. */
    int p[NN_MAX_DIMS], np = 0, ni = ix->cndim;
    for (int i = 0; i < nd; i++) {
        int a = x->v.perm[i];
        if (a == axis) {
            for (int j = 0; j < ni; j++) p[np++] = axis + j;
        } else {
            p[np++] = a < axis ? a : a - 1 + ni;
        }
    }
    int64_t md[NN_MAX_DIMS];
    for (int i = 0; i < ond; i++) md[i] = od[p[i]];
    t = nn_add_reshape(L->g, c->out[0]->name, t, ond, md, L->e);
    return set_tensor(L, c->out[0], t, p);
}

static int op_softmax(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    oval *x = c->in[0];
    const int nd = x->v.ndim;
    int axis = 0;
    if ((rc = norm_axis(L, attr_i(c->node, "axis", L->opset >= 13 ? -1 : 1), nd, c->nm, &axis)))
        return rc;
    if (L->opset >= 13 || axis == nd - 1) {
        /* Over one axis: any layout with that axis last. */
        int p[NN_MAX_DIMS];
        if (x->v.perm[nd - 1] == axis) memcpy(p, x->v.perm, sizeof p);
        else perm_axis_last(nd, axis, p);
        int xt = val_to(L, x, p);
        if (xt < 0) return L->e->status;
        return set_tensor(L, c->out[0], nn_add_softmax(L->g, c->out[0]->name, xt, L->e), p);
    }
    /* Opset < 13: softmax over the flattened axes [axis, nd). */
    int xt = val_plain(L, x);
    if (xt < 0) return L->e->status;
    int64_t d2[2] = {count_of(axis, x->v.dims), count_of(nd - axis, x->v.dims + axis)};
    char nm[512];
    snprintf(nm, sizeof nm, "%s/2d", c->out[0]->name);
    int t = nn_add_reshape(L->g, nm, xt, 2, d2, L->e);
    snprintf(nm, sizeof nm, "%s/softmax", c->out[0]->name);
    if (t >= 0) t = nn_add_softmax(L->g, nm, t, L->e);
    if (t >= 0) t = nn_add_reshape(L->g, c->out[0]->name, t, nd, x->v.dims, L->e);
    return set_plain(L, c->out[0], t);
}

static int op_pad(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    oval *x = c->in[0];
    const int nd = x->v.ndim;
    char buf[32];
    const char *mode = attr_s(c->node, "mode", buf, sizeof buf, "constant");
    if (strcmp(mode, "constant"))
        return fail(L, MIEN_EUNSUPPORTED, "%s: Pad mode %s", c->nm, mode);
    int64_t pads[2 * NN_MAX_DIMS];
    int np = attr_ints(c->node, "pads", pads, 2 * NN_MAX_DIMS);
    float value = attr_f(c->node, "value", 0.f);
    if (np < 0) {
        if ((rc = const_ints(L, IN(c, 1), c->nm, "pads", pads, 2 * NN_MAX_DIMS, &np))) return rc;
        if (IN(c, 2)) {
            if (c->in[2]->kind != V_CONST || c->in[2]->n != 1)
                return fail(L, MIEN_EUNSUPPORTED, "%s: pad value must be a constant", c->nm);
            value = (float)cval(c->in[2], 0);
        }
    }
    if (np != 2 * nd) return fail(L, MIEN_EFORMAT, "%s: %d pads for rank %d", c->nm, np, nd);
    int64_t mp[2 * NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int a = x->v.perm[i];
        mp[2 * i] = pads[a];
        mp[2 * i + 1] = pads[nd + a];
    }
    return set_tensor(L, c->out[0], nn_add_pad(L->g, c->out[0]->name, x->v.t, mp, value, L->e),
                      x->v.perm);
}

static int op_reduce(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    oval *x = c->in[0];
    const int nd = x->v.ndim;
    const char *op = str(c->node->op_type);
    nn_op nop = !strcmp(op, "ReduceMean") ? NN_OP_MEAN : !strcmp(op, "ReduceMax") ? NN_OP_REDUCE_MAX
                                                                                 : NN_OP_SUM;
    int64_t ax[NN_MAX_DIMS];
    int na = attr_ints(c->node, "axes", ax, NN_MAX_DIMS);
    if (na == -2) return fail(L, MIEN_EFORMAT, "%s: too many axes", c->nm);
    if (na < 0 && IN(c, 1) && (rc = const_ints(L, IN(c, 1), c->nm, "axes", ax, NN_MAX_DIMS, &na)))
        return rc;
    int keep = (int)attr_i(c->node, "keepdims", 1);
    unsigned onnx_axes = 0;
    if (na <= 0) {
        onnx_axes = (1u << nd) - 1;
    } else {
        for (int k = 0; k < na; k++) {
            int a = 0;
            if ((rc = norm_axis(L, ax[k], nd, c->nm, &a))) return rc;
            onnx_axes |= 1u << a;
        }
    }
    unsigned maxes = 0;
    for (int i = 0; i < nd; i++)
        if (onnx_axes & (1u << x->v.perm[i])) maxes |= 1u << i;
    int t = nn_add_reduce(L->g, nop, c->out[0]->name, x->v.t, maxes, keep, L->e);
    int p[NN_MAX_DIMS], np = 0;
    for (int i = 0; i < nd; i++) {
        int a = x->v.perm[i];
        if (keep) {
            p[np++] = a;
        } else if (!(onnx_axes & (1u << a))) {
            int r = a;
            for (int j = 0; j < a; j++) r -= (onnx_axes >> j) & 1;
            p[np++] = r;
        }
    }
    return set_tensor(L, c->out[0], t, p);
}

/* ==== Resize ==== */

typedef enum ctm {
    CTM_HALF_PIXEL, CTM_PYTORCH_HALF_PIXEL, CTM_ALIGN_CORNERS, CTM_ASYMMETRIC, CTM_TF_HALF_NN
} ctm;

/* ONNX's source coordinate of output index o. */
static double onnx_src(ctm m, int64_t o, int64_t in, int64_t out, double scale) {
    switch (m) {
    case CTM_HALF_PIXEL: return ((double)o + 0.5) / scale - 0.5;
    case CTM_PYTORCH_HALF_PIXEL: return out > 1 ? ((double)o + 0.5) / scale - 0.5 : 0.0;
    case CTM_ALIGN_CORNERS: return out > 1 ? (double)o * (double)(in - 1) / (double)(out - 1) : 0.0;
    case CTM_ASYMMETRIC: return (double)o / scale;
    default: return ((double)o + 0.5) / scale;
    }
}

/* Nearest source index as ONNX defines it for nearest_mode nm. */
static int64_t onnx_nearest(ctm m, const char *nm, int64_t o, int64_t in, int64_t out, double scale) {
    double x = onnx_src(m, o, in, out, scale), r;
    if (!strcmp(nm, "floor")) r = floor(x);
    else if (!strcmp(nm, "ceil")) r = ceil(x);
    else if (!strcmp(nm, "round_prefer_ceil")) r = floor(x + 0.5);
    else r = ceil(x - 0.5); /* round_prefer_floor */
    int64_t i = (int64_t)r;
    return i < 0 ? 0 : i >= in ? in - 1 : i;
}

/* What the engine's nearest kernel picks (backend_ref.c, TF's rule) for flags (ac, hp). */
static int64_t mien_nearest(int ac, int hp, int64_t o, int64_t in, int64_t out) {
    float scale = (ac && out > 1) ? (float)(in - 1) / (float)(out - 1) : (float)in / (float)out;
    float s = hp ? ((float)o + 0.5f) * scale - 0.5f : (float)o * scale;
    float f = hp ? s + 0.5f : s;
    int64_t i = ac ? (int64_t)roundf(f) : (int64_t)floorf(f);
    return i < 0 ? 0 : i >= in ? in - 1 : i;
}

static int op_resize(loader *L, nctx *c) {
    int rc;
    if ((rc = need_tensor(L, c, 0))) return rc;
    oval *x = c->in[0];
    if (x->v.ndim != 4) return fail(L, MIEN_EUNSUPPORTED, "%s: resize of a rank-%d tensor", c->nm, x->v.ndim);
    const char *op = str(c->node->op_type);
    int upsample = !strcmp(op, "Upsample");
    char b1[32], b2[48], b3[32];
    const char *mode = attr_s(c->node, "mode", b1, sizeof b1, "nearest");
    const char *ctms = attr_s(c->node, "coordinate_transformation_mode", b2, sizeof b2,
                              upsample ? "asymmetric" : "half_pixel");
    const char *nmode = attr_s(c->node, "nearest_mode", b3, sizeof b3,
                               upsample ? "floor" : "round_prefer_floor");
    ctm m;
    if (!strcmp(ctms, "half_pixel")) m = CTM_HALF_PIXEL;
    else if (!strcmp(ctms, "pytorch_half_pixel")) m = CTM_PYTORCH_HALF_PIXEL;
    else if (!strcmp(ctms, "align_corners")) m = CTM_ALIGN_CORNERS;
    else if (!strcmp(ctms, "asymmetric")) m = CTM_ASYMMETRIC;
    else if (!strcmp(ctms, "tf_half_pixel_for_nn")) m = CTM_TF_HALF_NN;
    else return fail(L, MIEN_EUNSUPPORTED, "%s: coordinate_transformation_mode %s", c->nm, ctms);
    int linear = !strcmp(mode, "linear") || !strcmp(mode, "bilinear");
    if (!linear && strcmp(mode, "nearest"))
        return fail(L, MIEN_EUNSUPPORTED, "%s: resize mode %s", c->nm, mode);
    /* Scales or sizes: Upsample (X, scales); Resize-10 (X, scales); Resize-11+ (X, roi,
     * scales, sizes), where an empty scales tensor means "use sizes". */
    oval *sc = NULL, *sz = NULL;
    const Onnx__AttributeProto *sattr = NULL;
    if (upsample || c->nin == 2) {
        sc = IN(c, 1);
        if (!sc && !(sattr = attr(c->node, "scales")))
            return fail(L, MIEN_EFORMAT, "%s: no scales", c->nm);
    } else {
        sc = IN(c, 2);
        sz = IN(c, 3);
        if (sc && sc->kind == V_CONST && sc->n == 0) sc = NULL;
    }
    double scale[4] = {1, 1, 1, 1};
    int64_t osize[4];
    if (sz) {
        int n;
        if ((rc = const_ints(L, sz, c->nm, "sizes", osize, 4, &n))) return rc;
        if (n != 4) return fail(L, MIEN_EFORMAT, "%s: %d sizes", c->nm, n);
        for (int i = 0; i < 4; i++) scale[i] = (double)osize[i] / (double)x->v.dims[i];
    } else {
        if (sattr) {
            if (sattr->n_floats != 4) return fail(L, MIEN_EFORMAT, "%s: need 4 scales", c->nm);
            for (int i = 0; i < 4; i++) scale[i] = sattr->floats[i];
        } else {
            if (!sc || sc->kind != V_CONST || sc->n != 4)
                return fail(L, MIEN_EUNSUPPORTED, "%s: scales must be 4 constants", c->nm);
            for (int i = 0; i < 4; i++) scale[i] = cval(sc, i);
        }
        for (int i = 0; i < 4; i++) {
            if (!(scale[i] > 0 && scale[i] < 65536))
                return fail(L, MIEN_EFORMAT, "%s: bad scale", c->nm);
            osize[i] = (int64_t)floor((double)x->v.dims[i] * scale[i]);
        }
    }
    if (osize[0] != x->v.dims[0] || osize[1] != x->v.dims[1])
        return fail(L, MIEN_EUNSUPPORTED, "%s: resize of the batch or channel axis", c->nm);
    for (int i = 2; i < 4; i++)
        if (osize[i] < 1 || osize[i] > 65536) return fail(L, MIEN_EFORMAT, "%s: bad output size", c->nm);
    int ac = 0, hp = 0;
    if (linear) {
        /* The kernel's coordinates for (ac, hp): align_corners (1,0), half_pixel (0,1),
         * asymmetric (0,0). These equal ONNX's when the scale is out/in (always with sizes,
         * and with scales whose product is a whole number of pixels, checked here). */
        for (int i = 2; i < 4; i++)
            if (fabs((double)osize[i] / (double)x->v.dims[i] - scale[i]) > 1e-6 * scale[i] &&
                m != CTM_ALIGN_CORNERS)
                return fail(L, MIEN_EUNSUPPORTED, "%s: a scale that is not output/input size", c->nm);
        if (m == CTM_ALIGN_CORNERS) ac = 1;
        else if (m == CTM_HALF_PIXEL) hp = 1;
        else if (m == CTM_PYTORCH_HALF_PIXEL) {
            hp = 1;
            if (osize[2] == 1 || osize[3] == 1)
                return fail(L, MIEN_EUNSUPPORTED, "%s: pytorch_half_pixel to size 1", c->nm);
        } else if (m != CTM_ASYMMETRIC) {
            return fail(L, MIEN_EUNSUPPORTED, "%s: linear resize with %s", c->nm, ctms);
        }
    } else {
        /* Nearest: find the kernel flags that pick exactly ONNX's source pixel for every
         * output row and column. */
        static const int flags[3][2] = {{0, 0}, {1, 0}, {0, 1}};
        int found = -1;
        for (int f = 0; f < 3 && found < 0; f++) {
            int ok = 1;
            for (int i = 2; i < 4 && ok; i++)
                for (int64_t o = 0; o < osize[i] && ok; o++)
                    ok = onnx_nearest(m, nmode, o, x->v.dims[i], osize[i], scale[i]) ==
                         mien_nearest(flags[f][0], flags[f][1], o, x->v.dims[i], osize[i]);
            if (ok) found = f;
        }
        if (found < 0)
            return fail(L, MIEN_EUNSUPPORTED, "%s: nearest resize with %s / %s at this size",
                        c->nm, ctms, nmode);
        ac = flags[found][0];
        hp = flags[found][1];
    }
    int xt = val_to(L, x, PERM_NHWC);
    if (xt < 0) return L->e->status;
    int t = nn_add_resize(L->g, linear ? NN_OP_RESIZE_BILINEAR : NN_OP_RESIZE_NEAREST,
                          c->out[0]->name, xt, (int)osize[2], (int)osize[3], ac, hp, L->e);
    return set_tensor(L, c->out[0], t, PERM_NHWC);
}

/* ==== Op table ==== */

static const struct {
    const char *name;
    op_fn fn;
} op_table[] = {
    {"Conv", op_conv},
    {"BatchNormalization", op_batchnorm},
    {"Gemm", op_gemm},
    {"MatMul", op_matmul},
    {"PRelu", op_prelu},
    {"Relu", op_unary},
    {"LeakyRelu", op_unary},
    {"Sigmoid", op_unary},
    {"Tanh", op_unary},
    {"Exp", op_unary},
    {"Abs", op_unary},
    {"Neg", op_unary},
    {"Sqrt", op_unary},
    {"Clip", op_clip},
    {"Add", op_binary},
    {"Sub", op_binary},
    {"Mul", op_binary},
    {"Div", op_binary},
    {"Max", op_binary},
    {"Min", op_binary},
    {"MaxPool", op_pool},
    {"AveragePool", op_pool},
    {"GlobalAveragePool", op_pool},
    {"GlobalMaxPool", op_pool},
    {"Flatten", op_flatten},
    {"Reshape", op_reshape},
    {"Transpose", op_transpose},
    {"Concat", op_concat},
    {"Resize", op_resize},
    {"Upsample", op_resize},
    {"Slice", op_slice},
    {"Split", op_split},
    {"Shape", op_shape},
    {"Gather", op_gather},
    {"Unsqueeze", op_squeeze},
    {"Squeeze", op_squeeze},
    {"Softmax", op_softmax},
    {"Constant", op_constant},
    {"ConstantOfShape", op_constant_of_shape},
    {"Identity", op_identity},
    {"Dropout", op_identity},
    {"Cast", op_cast},
    {"Pad", op_pad},
    {"ReduceMean", op_reduce},
    {"ReduceMax", op_reduce},
    {"ReduceSum", op_reduce},
};

/* Ops whose every output is computable at load time when all inputs are constants are
 * handled by their own functions; for elementwise float ops on constants (rare: exporters
 * fold them) we refuse clearly rather than guess. */
static int load_node(loader *L, const Onnx__NodeProto *node, int index) {
    nctx c = {.node = node};
    const char *op = str(node->op_type);
    c.nm = node->name && *node->name ? node->name
           : node->n_output && node->output[0] ? node->output[0] : op;
    const char *dom = str(node->domain);
    if (*dom && strcmp(dom, "ai.onnx"))
        return fail(L, MIEN_EUNSUPPORTED, "node %s: op %s of domain %s is not supported", c.nm,
                    op, dom);
    if (node->n_input > 64 || node->n_output > 8)
        return fail(L, MIEN_EUNSUPPORTED, "node %s: %zu inputs, %zu outputs", c.nm,
                    node->n_input, node->n_output);
    c.nin = (int)node->n_input;
    for (int k = 0; k < c.nin; k++) {
        const char *nm = node->input[k];
        if (!nm || !*nm) { /* omitted optional input */
            c.in[k] = NULL;
            continue;
        }
        c.in[k] = find_val(L, nm);
        if (!c.in[k] || c.in[k]->kind == V_NONE)
            return fail(L, MIEN_EFORMAT, "node %s (%s): input %s is not defined before it", c.nm,
                        op, nm);
    }
    c.nout = (int)node->n_output;
    if (c.nout < 1) return fail(L, MIEN_EFORMAT, "node %s has no output", c.nm);
    for (int k = 0; k < c.nout; k++) {
        const char *nm = node->output[k];
        c.out[k] = nm && *nm ? find_val(L, nm) : NULL;
        if (k == 0 && !c.out[0]) return fail(L, MIEN_EFORMAT, "node %s: unnamed output", c.nm);
    }
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++) {
        if (strcmp(op_table[i].name, op)) continue;
        int rc = op_table[i].fn(L, &c);
        if (rc) {
            if (!strstr(L->e->msg, c.nm)) mien_err_prefix(L->e, "node %s (%s)", c.nm, op);
            return rc;
        }
        for (int k = 1; k < c.nout; k++)
            if (c.out[k] && c.out[k]->uses && c.out[k]->kind == V_NONE)
                return fail(L, MIEN_EUNSUPPORTED, "node %s (%s): output %d is not supported",
                            c.nm, op, k);
        if (c.out[0]->kind == V_NONE)
            return fail(L, MIEN_EINTERNAL, "node %s (%s) produced nothing", c.nm, op);
        return MIEN_OK;
    }
    (void)index;
    return fail(L, MIEN_EUNSUPPORTED, "op %s (node %s) is not supported", op, c.nm);
}

/* ==== Model ==== */

static int graph_input(loader *L, const Onnx__ValueInfoProto *vi, const int64_t *dims_nchw) {
    const char *nm = str(vi->name);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return fail(L, MIEN_EUNSUPPORTED, "input %s is not a tensor", nm);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return fail(L, MIEN_EUNSUPPORTED, "input %s has element type %d (float expected)", nm,
                    tt->elem_type);
    int nd = tt->shape ? (int)(tt->shape->n_dim > NN_MAX_DIMS ? NN_MAX_DIMS + 1 : tt->shape->n_dim) : -1;
    if (dims_nchw) {
        if (nd >= 0 && nd != 4)
            return fail(L, MIEN_EUNSUPPORTED, "input %s has rank %d, an image needs 4", nm, nd);
        nd = 4;
    }
    if (nd < 0 || nd > NN_MAX_DIMS)
        return fail(L, MIEN_EUNSUPPORTED, "input %s: rank unknown or above %d", nm, NN_MAX_DIMS);
    int64_t d[NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        const Onnx__TensorShapeProto__Dimension *dim =
            tt->shape && (size_t)i < tt->shape->n_dim ? tt->shape->dim[i] : NULL;
        int64_t v = dim && dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE
                        ? dim->dim_value : -1;
        if (dims_nchw) v = dims_nchw[i];
        if (v <= 0 && i == 0) v = 1; /* symbolic batch */
        if (v <= 0)
            return fail(L, MIEN_EINVAL, "input %s: dimension %d is not fixed in the file; give "
                        "the input size", nm, i);
        if (v > 65536) return fail(L, MIEN_ETOOBIG, "input %s: dimension %lld", nm, (long long)v);
        d[i] = v;
    }
    int rc = check_shape(L, nm, nd, d);
    if (rc) return rc;
    oval *v = find_val(L, nm);
    if (!v) return fail(L, MIEN_EINTERNAL, "input value");
    int p[NN_MAX_DIMS];
    if (nd == 4) memcpy(p, PERM_NHWC, sizeof PERM_NHWC);
    else perm_identity(p, nd);
    int64_t md[NN_MAX_DIMS];
    for (int i = 0; i < nd; i++) md[i] = d[p[i]];
    return set_tensor(L, v, nn_add_input(L->g, nm, nd, md, L->e), p);
}

/* The nodes the values named outputs[] depend on (need[i] = 1), by a backward walk over the
 * producers (ONNX node lists are topologically sorted). An output no node produces fails. */
static int needed_nodes(loader *L, const Onnx__GraphProto *gp, const char *const *outputs,
                        int n_outputs, char *need) {
    /* producer[v] = node index + 1 of the value's producer (0: an input or initializer) */
    int *producer = calloc((size_t)L->cap_vals, sizeof *producer);
    int *stack = malloc(((size_t)gp->n_node + 1) * sizeof *stack);
    if (!producer || !stack) {
        free(producer);
        free(stack);
        return fail(L, MIEN_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_output; k++) {
            oval *v = find_val(L, gp->node[i]->output[k]);
            if (v) producer[v - L->vals] = (int)i + 1;
        }
    int sp = 0, rc = MIEN_OK;
    for (int k = 0; k < n_outputs && !rc; k++) {
        oval *v = find_val(L, outputs[k]);
        if (!v || !producer[v - L->vals]) {
            rc = fail(L, MIEN_ENOTFOUND, "no node computes a value named %s", str(outputs[k]));
            break;
        }
        int ni = producer[v - L->vals] - 1;
        if (!need[ni]) need[ni] = 1, stack[sp++] = ni;
    }
    while (!rc && sp > 0) {
        const Onnx__NodeProto *nd = gp->node[stack[--sp]];
        for (size_t k = 0; k < nd->n_input; k++) {
            oval *v = find_val(L, nd->input[k]);
            int ni = v ? producer[v - L->vals] - 1 : -1;
            if (ni >= 0 && !need[ni]) need[ni] = 1, stack[sp++] = ni;
        }
    }
    free(producer);
    free(stack);
    return rc;
}

static int build(loader *L, const Onnx__ModelProto *m, const int64_t *dims_nchw,
                 const char *const *outputs, int n_outputs) {
    const Onnx__GraphProto *gp = m->graph;
    if (!gp) return fail(L, MIEN_EFORMAT, "not an ONNX model (no graph)");
    L->opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = m->opset_import[i];
        if (os && (!os->domain || !*os->domain || !strcmp(os->domain, "ai.onnx")))
            L->opset = os->has_version ? os->version : 0;
    }
    if (L->opset <= 0) L->opset = 11; /* IR < 3 files declare none */
    if (L->opset < 7 || L->opset > 21)
        return fail(L, MIEN_EUNSUPPORTED, "opset %lld (supported: 7 to 21)", (long long)L->opset);
    /* Value table: initializers, inputs, node outputs. */
    size_t total = gp->n_initializer + gp->n_input;
    for (size_t i = 0; i < gp->n_node; i++) {
        if (!gp->node[i]) return fail(L, MIEN_EFORMAT, "empty node");
        total += gp->node[i]->n_output;
    }
    if (total > MAX_VALUES) return fail(L, MIEN_ETOOBIG, "%zu values", total);
    L->cap_vals = (int)total + 1;
    L->vals = calloc((size_t)L->cap_vals, sizeof *L->vals);
    L->hash_cap = 16;
    while (L->hash_cap < 2 * L->cap_vals) L->hash_cap *= 2;
    L->hash = calloc((size_t)L->hash_cap, sizeof *L->hash);
    if (!L->vals || !L->hash) return fail(L, MIEN_ENOMEM, "out of memory");
    int rc;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp) return fail(L, MIEN_EFORMAT, "empty initializer");
        oval *v = new_val(L, tp->name);
        if (!v) return L->e->status;
        if ((rc = load_tensor(L, tp, v))) return rc;
        v->kind = V_CONST;
    }
    int n_real = 0;
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi) return fail(L, MIEN_EFORMAT, "empty input");
        if (find_val(L, vi->name)) continue; /* an initializer listed as input (IR < 4) */
        if (!new_val(L, vi->name)) return L->e->status;
        if (n_real++) return fail(L, MIEN_EUNSUPPORTED, "the model has more than one input");
        if ((rc = graph_input(L, vi, dims_nchw))) return rc;
    }
    if (n_real != 1) return fail(L, MIEN_EUNSUPPORTED, "the model has no input");
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t k = 0; k < gp->node[i]->n_output; k++) {
            const char *nm = gp->node[i]->output[k];
            if (nm && *nm && !new_val(L, nm)) return L->e->status;
        }
    /* With outputs named by the caller, only the nodes they need (the rest, e.g. a decoding
     * tail built for another input size, is never loaded). */
    char *need = NULL;
    if (outputs) {
        if (n_outputs < 1 || n_outputs > 16)
            return fail(L, MIEN_EINVAL, "%d outputs asked for (1 to 16 supported)", n_outputs);
        if (!(need = calloc(gp->n_node + 1, 1))) return fail(L, MIEN_ENOMEM, "out of memory");
        if ((rc = needed_nodes(L, gp, outputs, n_outputs, need))) {
            free(need);
            return rc;
        }
    }
    /* Consumers of each value (for folding decisions). */
    for (size_t i = 0; i < gp->n_node; i++) {
        if (need && !need[i]) continue;
        for (size_t k = 0; k < gp->node[i]->n_input; k++) {
            oval *v = find_val(L, gp->node[i]->input[k]);
            if (v) v->uses++;
        }
    }
    const int n_out = outputs ? n_outputs : (int)gp->n_output;
    for (int i = 0; i < n_out; i++) {
        oval *v = outputs ? find_val(L, outputs[i])
                          : gp->output[i] ? find_val(L, gp->output[i]->name) : NULL;
        if (v) v->uses++;
    }
    for (size_t i = 0; i < gp->n_node && !rc; i++)
        if (!need || need[i]) rc = load_node(L, gp->node[i], (int)i);
    free(need);
    if (rc) return rc;
    /* Outputs, in ONNX's own layout and under their ONNX names. */
    if (n_out < 1 || n_out > 16)
        return fail(L, MIEN_EUNSUPPORTED, "the model has %d outputs (1 to 16 supported)", n_out);
    for (int i = 0; i < n_out; i++) {
        const char *nm = outputs ? str(outputs[i]) : gp->output[i] ? str(gp->output[i]->name) : "";
        oval *v = find_val(L, nm);
        if (!v || v->kind == V_NONE) return fail(L, MIEN_EFORMAT, "output %s is not computed", nm);
        if (v->kind != V_TENSOR)
            return fail(L, MIEN_EUNSUPPORTED, "output %s is a constant", nm);
        int t = val_plain(L, v);
        if (t < 0) return L->e->status;
        nn_tensor *tt = &L->g->t[t];
        if (strcmp(tt->name, nm)) {
            /* Give the output tensor the ONNX name (the producer's keeps a suffix). */
            int old = nn_find_tensor(L->g, nm);
            if (old >= 0 && old != t) {
                char buf[600];
                snprintf(buf, sizeof buf, "%s/internal", nm);
                char *s = strdup(buf);
                if (!s) return fail(L, MIEN_ENOMEM, "out of memory");
                free(L->g->t[old].name);
                L->g->t[old].name = s;
            }
            char *s = strdup(nm);
            if (!s) return fail(L, MIEN_ENOMEM, "out of memory");
            free(tt->name);
            tt->name = s;
        }
        if ((rc = nn_mark_output(L->g, t, L->e))) return rc;
    }
    return nn_graph_optimize(L->g, L->e);
}

static int load_buffer(const void *data, size_t len, const char *name,
                       const int64_t *input_dims_nchw, const char *const *outputs,
                       int n_outputs, nn_graph **out, mien_err *e) {
    *out = NULL;
    if (len > NN_ONNX_MAX_FILE)
        return mien_err_set(e, MIEN_ETOOBIG, "%s: larger than %zu bytes", name, NN_ONNX_MAX_FILE);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
    if (!m) return mien_err_set(e, MIEN_EFORMAT, "%s: not an ONNX model (protobuf parse failed)", name);
    loader L = {.e = e, .path = name};
    const char *base = strrchr(name, '/');
    L.g = nn_graph_new(base ? base + 1 : name);
    int rc = L.g ? build(&L, m, input_dims_nchw, outputs, n_outputs) : mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if (rc && !strstr(e->msg, name)) mien_err_prefix(e, "%s", name);
    for (int i = 0; i < L.n_vals; i++) free_val(&L.vals[i]);
    free(L.vals);
    free(L.hash);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc) {
        nn_graph_free(L.g);
        return rc;
    }
    *out = L.g;
    return MIEN_OK;
}

int nn_onnx_load_buffer(const void *data, size_t len, const char *name,
                        const int64_t *input_dims_nchw, nn_graph **out, mien_err *e) {
    return load_buffer(data, len, name, input_dims_nchw, NULL, 0, out, e);
}

int nn_onnx_load_outputs(const char *path, const int64_t *input_dims_nchw,
                         const char *const *outputs, int n_outputs, nn_graph **out, mien_err *e) {
    *out = NULL;
    unsigned char *data;
    size_t len;
    int rc = mien_read_file(path, NN_ONNX_MAX_FILE, &data, &len, e);
    if (rc) return rc;
    rc = load_buffer(data, len, path, input_dims_nchw, outputs, n_outputs, out, e);
    free(data);
    return rc;
}

int nn_onnx_load(const char *path, const int64_t *input_dims_nchw, nn_graph **out, mien_err *e) {
    return nn_onnx_load_outputs(path, input_dims_nchw, NULL, 0, out, e);
}
