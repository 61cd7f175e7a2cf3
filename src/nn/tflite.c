/* TFLite loader: the main subgraph of a .tflite flatbuffer (schema version 3, tflite's
 * schema.fbs) becomes a graph of the IR for one concrete input shape.
 *
 * ==== Reading ====
 * nn/flatbuf.c reads the layout with every access bounds-checked; this file knows the schema:
 *   Model        0 version:uint  1 operator_codes:[OperatorCode]  2 subgraphs:[SubGraph]
 *                4 buffers:[Buffer]
 *   OperatorCode 0 deprecated_builtin_code:byte  1 custom_code:string  3 builtin_code:int
 *                (the op is the larger of the two codes, as TFLite's GetBuiltinCode)
 *   SubGraph     0 tensors:[Tensor]  1 inputs:[int]  2 outputs:[int]  3 operators:[Operator]
 *   Tensor       0 shape:[int]  1 type:byte  2 buffer:uint  3 name:string
 *                4 quantization:QuantizationParameters  5 is_variable:bool  6 sparsity
 *                7 shape_signature:[int]
 *   Quantization 2 scale:[float]  3 zero_point:[long]  6 quantized_dimension:int
 *   Buffer       0 data:[ubyte]  1 offset:ulong  2 size:ulong (data outside the flatbuffer,
 *                relative to the file's start, for files above 2 GB)
 *   Operator     0 opcode_index:uint  1 inputs:[int]  2 outputs:[int]
 *                3 builtin_options_type:ubyte  4 builtin_options:table (a union)
 * Each op's options table is read only when the union's type is the one that op uses (as
 * TFLite's builtin_options_as_X()); otherwise its fields take their schema defaults.
 *
 * ==== Values ====
 * Every TFLite tensor is, while loading, one of: not yet computed; a constant (its buffer,
 * decoded to float or int64 when an op first reads it: float16 and quantized integers are
 * dequantized then, so a float16 file's DEQUANTIZE ops only pass constants on); or a graph
 * tensor (the input and every op output). Ops whose inputs are all constants and that are
 * cheap to evaluate here (elementwise math, casts, reshapes) give constants, so shape and
 * weight arithmetic never becomes nodes. Convolution and fully connected weights must be
 * constants; they are rewritten to the IR's layouts (OHWI -> HWIO, (M, K) -> (K, M)).
 *
 * ==== Semantics ====
 * TFLite is NHWC as the IR. SAME padding is TensorFlow's (output ceil(in / stride), the odd
 * pixel of padding after), which is the IR's NN_PAD_SAME; AVERAGE_POOL_2D counts only pixels
 * inside the image, as the IR's avgpool. Fused activations (RELU, RELU6, RELU_N1_TO_1, TANH)
 * become activation nodes or node attributes. Comparisons give 0/1 floats, and CAST from
 * bool to float passes them on. nn_graph_optimize then fuses activations and recognises the
 * PReLU patterns TensorFlow exports (relu(x) + c * (x - |x|) and relu(x) - c * relu(-x)). */
#include "nn/tflite.h"
#include "nn/flatbuf.h"

#include "core/half.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ELEMS NN_MAX_ELEMS       /* as the graph's limit (graph.h) */
#define NAME_MAX_LEN 200             /* names from the file are cut to this for the graph */

/* TensorType */
enum {
    TT_FLOAT32 = 0, TT_FLOAT16 = 1, TT_INT32 = 2, TT_UINT8 = 3, TT_INT64 = 4, TT_STRING = 5,
    TT_BOOL = 6, TT_INT16 = 7, TT_COMPLEX64 = 8, TT_INT8 = 9, TT_FLOAT64 = 10, TT_COMPLEX128 = 11,
    TT_UINT64 = 12, TT_RESOURCE = 13, TT_VARIANT = 14, TT_UINT32 = 15, TT_UINT16 = 16, TT_INT4 = 17,
};

static const char *type_name(int t) {
    static const char *const names[] = {"float32", "float16", "int32",  "uint8",     "int64",
                                        "string",  "bool",    "int16",  "complex64", "int8",
                                        "float64", "complex128", "uint64", "resource", "variant",
                                        "uint32",  "uint16",  "int4"};
    return t >= 0 && t < (int)(sizeof names / sizeof names[0]) ? names[t] : "unknown";
}

/* Bytes per element of the types a constant may have (0: not supported). */
static int type_size(int t) {
    switch (t) {
    case TT_FLOAT32: case TT_INT32: case TT_UINT32: return 4;
    case TT_FLOAT16: case TT_INT16: case TT_UINT16: return 2;
    case TT_INT64: case TT_UINT64: case TT_FLOAT64: return 8;
    case TT_UINT8: case TT_INT8: case TT_BOOL: return 1;
    default: return 0;
    }
}

static int type_is_float(int t) { return t == TT_FLOAT32 || t == TT_FLOAT16 || t == TT_FLOAT64; }

/* BuiltinOperator codes used here. */
enum {
    OP_ADD = 0, OP_AVERAGE_POOL_2D = 1, OP_CONCATENATION = 2, OP_CONV_2D = 3,
    OP_DEPTHWISE_CONV_2D = 4, OP_DEQUANTIZE = 6, OP_FULLY_CONNECTED = 9,
    OP_L2_NORMALIZATION = 11, OP_LOGISTIC = 14, OP_MAX_POOL_2D = 17, OP_MUL = 18, OP_RELU = 19,
    OP_RELU_N1_TO_1 = 20, OP_RELU6 = 21, OP_RESHAPE = 22, OP_RESIZE_BILINEAR = 23, OP_SOFTMAX = 25,
    OP_TANH = 28, OP_CUSTOM = 32, OP_PAD = 34, OP_TRANSPOSE = 39, OP_MEAN = 40, OP_SUB = 41,
    OP_DIV = 42, OP_SQUEEZE = 43, OP_STRIDED_SLICE = 45, OP_EXP = 47, OP_CAST = 53, OP_PRELU = 54,
    OP_MAXIMUM = 55, OP_MINIMUM = 57, OP_LESS = 58, OP_NEG = 59, OP_PADV2 = 60, OP_GREATER = 61,
    OP_GREATER_EQUAL = 62, OP_LESS_EQUAL = 63, OP_SLICE = 65, OP_EXPAND_DIMS = 70, OP_SUM = 74,
    OP_SQRT = 75, OP_RSQRT = 76, OP_REDUCE_MAX = 82, OP_SQUARE = 92,
    OP_RESIZE_NEAREST_NEIGHBOR = 97, OP_LEAKY_RELU = 98, OP_ABS = 101,
};

/* BuiltinOptions union types used here. */
enum {
    BO_NONE = 0, BO_CONV2D = 1, BO_DEPTHWISE = 2, BO_POOL2D = 5, BO_FULLY_CONNECTED = 8,
    BO_SOFTMAX = 9, BO_CONCATENATION = 10, BO_ADD = 11, BO_RESIZE_BILINEAR = 15, BO_RESHAPE = 17,
    BO_MUL = 21, BO_REDUCER = 27, BO_SUB = 28, BO_DIV = 29, BO_SQUEEZE = 30,
    BO_STRIDED_SLICE = 32, BO_RESIZE_NEAREST = 74, BO_LEAKY_RELU = 75,
};

/* ActivationFunctionType */
enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU_N1_TO_1 = 2, ACT_RELU6 = 3, ACT_TANH = 4 };

/* ==== Loader state ==== */

typedef enum vstate { V_NONE = 0, V_PENDING, V_CONST, V_TENSOR } vstate;

typedef struct tval {
    vstate state;
    int type;                /* TensorType from the file (of the op output for computed ones) */
    int t;                   /* V_TENSOR: graph tensor; V_CONST: its graph copy, -1 until made */
    int boolish;             /* V_TENSOR of 0/1 values (a comparison) */
    /* Declared shape (V_PENDING), actual shape (V_CONST). */
    int ndim;
    int64_t dims[NN_MAX_DIMS];
    int64_t n;
    float *f;                /* V_CONST float values, or NULL */
    int64_t *i;              /* V_CONST integer values, or NULL */
    int borrowed;            /* f / i belong to another value */
    fb_table tab;            /* the Tensor table */
} tval;

typedef struct loader {
    fb_reader r;
    nn_graph *g;
    mien_err *e;
    fb_vec buffers;
    tval *v;
    int n_t;
    size_t const_bytes;      /* bytes of constants made so far */
    size_t const_cap;        /* their limit for this file (tflite.h) */
    int64_t batch_file, batch_now; /* the input's batch in the file and in the graph */
} loader;

static int fail(loader *L, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(loader *L, int status, const char *fmt, ...) {
    char msg[sizeof L->e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mien_err_set(L->e, status, "%s", msg);
}

/* A malformed-flatbuffer failure, if the reader flagged one. */
static int check_reader(loader *L) {
    return L->r.bad ? fail(L, MIEN_EFORMAT, "malformed file: %s", L->r.why) : MIEN_OK;
}

/* The name of tensor k, cut to NAME_MAX_LEN, printable ASCII only, into buf. */
static const char *tname(loader *L, int k, char *buf, size_t cap) {
    const char *s = NULL;
    uint32_t n = 0;
    if (k >= 0 && k < L->n_t) fb_string_field(&L->r, &L->v[k].tab, 3, &s, &n);
    size_t w = 0;
    for (uint32_t j = 0; j < n && w + 1 < cap && w < NAME_MAX_LEN; j++)
        buf[w++] = s[j] >= 32 && s[j] < 127 ? s[j] : '?';
    if (!w) snprintf(buf, cap, "tensor%d", k);
    else buf[w] = '\0';
    return buf;
}

static int64_t count_of(int nd, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= dims[i];
    return n;
}

/* Check a shape: rank, non-negative dims, element count within the graph's limit. */
static int check_shape(loader *L, const char *what, int nd, const int64_t *dims) {
    if (nd < 0 || nd > NN_MAX_DIMS)
        return fail(L, MIEN_EUNSUPPORTED, "%s has rank %d (at most %d)", what, nd, NN_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] < 0 || (dims[i] > 0 && n > MAX_ELEMS / dims[i]))
            return fail(L, MIEN_EFORMAT, "%s: bad or too large dimension %lld", what,
                        (long long)dims[i]);
        n *= dims[i];
    }
    return MIEN_OK;
}

/* Count bytes of constants against this file's limit (tflite.h). */
static int charge(loader *L, int64_t n, size_t esize) {
    size_t b = (size_t)(n ? n : 1) * esize;
    if (b > L->const_cap - L->const_bytes)
        return fail(L, MIEN_ETOOBIG, "too large: the model's constants need more than %zu bytes "
                    "(for a file of %zu bytes: min(NN_TFLITE_MAX_CONST_BYTES, %d x size + %zu))",
                    L->const_cap, L->r.len, NN_TFLITE_CONST_PER_BYTE,
                    (size_t)NN_TFLITE_CONST_SLACK);
    L->const_bytes += b;
    return MIEN_OK;
}

static float *new_floats(loader *L, int64_t n) {
    if (charge(L, n, sizeof(float))) return NULL;
    float *p = calloc((size_t)(n ? n : 1), sizeof *p);
    if (!p) fail(L, MIEN_ENOMEM, "out of memory");
    return p;
}

static int64_t *new_ints(loader *L, int64_t n) {
    if (charge(L, n, sizeof(int64_t))) return NULL;
    int64_t *p = calloc((size_t)(n ? n : 1), sizeof *p);
    if (!p) fail(L, MIEN_ENOMEM, "out of memory");
    return p;
}

/* Graph-owned floats (weights rewritten for a node). */
static float *own_floats(loader *L, int64_t n) {
    float *p = new_floats(L, n);
    if (p && !nn_graph_own(L->g, p)) {
        fail(L, MIEN_ENOMEM, "out of memory");
        return NULL;
    }
    return p;
}

static void free_val(tval *v) {
    if (!v->borrowed) {
        free(v->f);
        free(v->i);
    }
    v->f = NULL;
    v->i = NULL;
    v->borrowed = 0;
}

/* ==== Constants ==== */

/* Read the declared shape of tensor k (for V_PENDING values and graph inputs). */
static int read_shape(loader *L, int k, int field, int *nd, int64_t *dims, const char *nm) {
    fb_vec s = fb_vec_field(&L->r, &L->v[k].tab, field, 4);
    if (s.n > NN_MAX_DIMS)
        return fail(L, MIEN_EUNSUPPORTED, "tensor %s has rank %u (at most %d)", nm, s.n, NN_MAX_DIMS);
    for (uint32_t j = 0; j < s.n; j++) dims[j] = fb_vec_int(&L->r, &s, j);
    *nd = (int)s.n;
    return check_reader(L);
}

/* Decode the buffer of tensor k into a constant (floats for float types and for integers with
 * quantization scales, int64 otherwise). */
static int materialize(loader *L, int k) {
    tval *v = &L->v[k];
    char nm[NAME_MAX_LEN + 16];
    tname(L, k, nm, sizeof nm);
    int rc = check_shape(L, nm, v->ndim, v->dims);
    if (rc) return rc;
    const int64_t n = count_of(v->ndim, v->dims);
    int es = type_size(v->type);
    if (!es)
        return fail(L, MIEN_EUNSUPPORTED, "constant %s has type %s (not supported)", nm,
                    type_name(v->type));
    if (fb_present(&L->r, &v->tab, 6))
        return fail(L, MIEN_EUNSUPPORTED, "constant %s is sparse (not supported)", nm);
    uint32_t bi = (uint32_t)fb_uint(&L->r, &v->tab, 2, 4, 0);
    fb_table buf = fb_vec_table(&L->r, &L->buffers, bi);
    fb_vec data = fb_vec_field(&L->r, &buf, 0, 1);
    const uint8_t *p = fb_vec_bytes(&L->r, &data);
    uint64_t len = data.n;
    uint64_t off = fb_uint(&L->r, &buf, 1, 8, 0), size = fb_uint(&L->r, &buf, 2, 8, 0);
    if ((rc = check_reader(L))) return rc;
    if (!p && off > 1) { /* data outside the flatbuffer */
        if (off > L->r.len || size > L->r.len - off)
            return fail(L, MIEN_EFORMAT, "constant %s: buffer at %llu (%llu bytes) is outside "
                        "the file", nm, (unsigned long long)off, (unsigned long long)size);
        p = L->r.p + off;
        len = size;
    }
    if (len != (uint64_t)n * (uint64_t)es)
        return fail(L, MIEN_EFORMAT, "constant %s: %llu bytes of data for %lld values of %s", nm,
                    (unsigned long long)len, (long long)n, type_name(v->type));
    /* Quantization: scale (per tensor or per axis) and zero point. */
    fb_table q = fb_table_field(&L->r, &v->tab, 4);
    fb_vec scale = fb_vec_field(&L->r, &q, 2, 4), zp = fb_vec_field(&L->r, &q, 3, 8);
    int64_t qdim = fb_int(&L->r, &q, 6, 4, 0);
    if ((rc = check_reader(L))) return rc;
    int dequant = !type_is_float(v->type) && v->type != TT_BOOL && scale.n > 0;
    int64_t inner = 1, axis_len = 1;
    if (dequant) {
        if (scale.n > 1) {
            if (qdim < 0 || qdim >= v->ndim || v->dims[qdim] != (int64_t)scale.n)
                return fail(L, MIEN_EFORMAT, "constant %s: %u scales for axis %lld", nm, scale.n,
                            (long long)qdim);
            axis_len = scale.n;
            for (int d = (int)qdim + 1; d < v->ndim; d++) inner *= v->dims[d];
        }
        if (zp.n != 0 && zp.n != 1 && zp.n != scale.n)
            return fail(L, MIEN_EFORMAT, "constant %s: %u zero points for %u scales", nm, zp.n,
                        scale.n);
    }
    if (type_is_float(v->type) || dequant) {
        if (!(v->f = new_floats(L, n))) return L->e->status;
    } else {
        if (!(v->i = new_ints(L, n))) return L->e->status;
    }
    for (int64_t j = 0; j < n; j++, p += es) {
        uint64_t raw = 0;
        for (int b = es - 1; b >= 0; b--) raw = raw << 8 | p[b];
        switch (v->type) {
        case TT_FLOAT32: {
            uint32_t u = (uint32_t)raw;
            memcpy(&v->f[j], &u, 4);
            break;
        }
        case TT_FLOAT16: v->f[j] = mien_half_to_float((uint16_t)raw); break;
        case TT_FLOAT64: {
            double d;
            memcpy(&d, &raw, 8);
            v->f[j] = (float)d;
            break;
        }
        default: {
            int64_t iv;
            switch (v->type) {
            case TT_INT8: iv = (int8_t)raw; break;
            case TT_INT16: iv = (int16_t)raw; break;
            case TT_INT32: iv = (int32_t)raw; break;
            case TT_BOOL: iv = raw != 0; break;
            default: iv = (int64_t)raw; break; /* unsigned types, int64 */
            }
            if (dequant) {
                uint32_t c = axis_len > 1 ? (uint32_t)((j / inner) % axis_len) : 0;
                int64_t z = zp.n ? fb_vec_int(&L->r, &zp, zp.n == 1 ? 0 : c) : 0;
                v->f[j] = (float)((double)fb_vec_float(&L->r, &scale, c) * (double)(iv - z));
            } else {
                v->i[j] = iv;
            }
        }
        }
    }
    if ((rc = check_reader(L))) return rc;
    v->n = n;
    v->state = V_CONST;
    v->t = -1;
    return MIEN_OK;
}

static double cget(const tval *v, int64_t k) { return v->f ? (double)v->f[k] : (double)v->i[k]; }

/* Value of tensor k, which must have been computed (constants are decoded now). */
static tval *get(loader *L, int k, const char *who) {
    if (k < 0 || k >= L->n_t) {
        fail(L, MIEN_EFORMAT, "%s: tensor index %d out of range (%d tensors)", who, k, L->n_t);
        return NULL;
    }
    tval *v = &L->v[k];
    if (v->state == V_PENDING && materialize(L, k)) return NULL;
    if (v->state == V_NONE) {
        char nm[NAME_MAX_LEN + 16];
        fail(L, MIEN_EFORMAT, "%s: tensor %s is read before any op writes it", who,
             tname(L, k, nm, sizeof nm));
        return NULL;
    }
    return v;
}

/* The graph tensor of value v (tensor k): constants are copied into the graph as floats. */
static int graph_of(loader *L, int k, tval *v) {
    if (v->state == V_TENSOR) return v->t;
    if (v->t >= 0) return v->t;
    char nm[NAME_MAX_LEN + 16];
    tname(L, k, nm, sizeof nm);
    if (v->n == 0) {
        fail(L, MIEN_EUNSUPPORTED, "constant %s is empty (a zero dimension)", nm);
        return -1;
    }
    float *d = own_floats(L, v->n);
    if (!d) return -1;
    for (int64_t j = 0; j < v->n; j++) d[j] = (float)cget(v, j);
    v->t = nn_add_const_ref(L->g, nm, v->ndim, v->dims, d, L->e);
    return v->t;
}

/* Integer vector of a constant (shapes, axes, paddings), at most max values. */
static int const_ints(loader *L, const tval *v, const char *who, const char *what, int64_t *out,
                      int max, int *n) {
    if (!v || v->state != V_CONST)
        return fail(L, MIEN_EUNSUPPORTED, "%s: %s must be a constant", who, what);
    if (v->n > max)
        return fail(L, MIEN_EUNSUPPORTED, "%s: %s has %lld values", who, what, (long long)v->n);
    for (int64_t j = 0; j < v->n; j++) {
        if (v->i) {
            out[j] = v->i[j];
        } else {
            float f = v->f[j];
            if (!(fabsf(f) < 9e15f) || f != floorf(f))
                return fail(L, MIEN_EFORMAT, "%s: %s holds %g, not an integer", who, what, f);
            out[j] = (int64_t)f;
        }
    }
    *n = (int)v->n;
    return MIEN_OK;
}

/* ==== Op context ==== */

#define MAX_OP_IO 64

typedef struct octx {
    int index;               /* operator index, for messages */
    int code;                /* BuiltinOperator */
    const char *op;          /* its name */
    fb_table opt;            /* options (ok = 0: absent or of another type) */
    int in[MAX_OP_IO], nin;  /* tensor indices, -1 for omitted optional inputs */
    int out[MAX_OP_IO], nout;
    char who[NAME_MAX_LEN + 64]; /* "operator N (OP)" for messages */
    char nm[NAME_MAX_LEN + 16];  /* the name of output 0 */
} octx;

typedef int (*op_fn)(loader *L, octx *c);

/* Input k as a value (NULL with an error when absent). */
static tval *IN(loader *L, octx *c, int k) {
    if (k >= c->nin || c->in[k] < 0) {
        fail(L, MIEN_EFORMAT, "%s: missing input %d", c->who, k);
        return NULL;
    }
    return get(L, c->in[k], c->who);
}

/* Optional input k: NULL without an error when omitted. */
static tval *OPT_IN(loader *L, octx *c, int k, int *missing) {
    *missing = k >= c->nin || c->in[k] < 0;
    return *missing ? NULL : get(L, c->in[k], c->who);
}

static tval *need_tensor(loader *L, octx *c, int k, int rank) {
    tval *v = IN(L, c, k);
    if (!v) return NULL;
    if (v->state != V_TENSOR) {
        fail(L, MIEN_EUNSUPPORTED, "%s: input %d must be a computed tensor, not a constant",
             c->who, k);
        return NULL;
    }
    if (rank >= 0 && L->g->t[v->t].ndim != rank) {
        fail(L, MIEN_EUNSUPPORTED, "%s: input %d has rank %d, %d expected", c->who, k,
             L->g->t[v->t].ndim, rank);
        return NULL;
    }
    return v;
}

static tval *need_const(loader *L, octx *c, int k, const char *what) {
    tval *v = IN(L, c, k);
    if (v && v->state != V_CONST) {
        fail(L, MIEN_EUNSUPPORTED, "%s: %s must be a constant", c->who, what);
        return NULL;
    }
    return v;
}

/* The output value k, which must not have been written before. */
static tval *OUT(loader *L, octx *c, int k) {
    if (k >= c->nout || c->out[k] < 0 || c->out[k] >= L->n_t) {
        fail(L, MIEN_EFORMAT, "%s: missing or bad output %d", c->who, k);
        return NULL;
    }
    tval *v = &L->v[c->out[k]];
    if (v->state != V_NONE) {
        char nm[NAME_MAX_LEN + 16];
        fail(L, MIEN_EFORMAT, "%s: output %s is already defined", c->who,
             tname(L, c->out[k], nm, sizeof nm));
        return NULL;
    }
    return v;
}

static int set_tensor(loader *L, octx *c, int t, int boolish) {
    if (t < 0) return L->e->status ? L->e->status : MIEN_EINTERNAL;
    if (L->g->t[t].n == 0) /* no kernel divides by a zero channel count then */
        return fail(L, MIEN_EUNSUPPORTED, "%s: the output is empty (a zero dimension)", c->who);
    tval *v = OUT(L, c, 0);
    if (!v) return L->e->status;
    v->state = V_TENSOR;
    v->t = t;
    v->boolish = boolish;
    return MIEN_OK;
}

/* Output 0 becomes a constant of the given shape (data allocated, zeroed). */
static tval *set_const(loader *L, octx *c, int is_int, int nd, const int64_t *dims) {
    tval *v = OUT(L, c, 0);
    if (!v || check_shape(L, c->nm, nd, dims)) return NULL;
    v->ndim = nd;
    memcpy(v->dims, dims, (size_t)nd * sizeof *dims);
    v->n = count_of(nd, dims);
    if (is_int) v->i = new_ints(L, v->n);
    else v->f = new_floats(L, v->n);
    if (!v->i && !v->f) return NULL;
    v->state = V_CONST;
    v->t = -1;
    return v;
}

/* Output 0 is input value x under another shape (a constant shares x's data). */
static int alias_const(loader *L, octx *c, tval *x, int nd, const int64_t *dims) {
    tval *v = OUT(L, c, 0);
    if (!v) return L->e->status;
    int rc = check_shape(L, c->nm, nd, dims);
    if (rc) return rc;
    if (count_of(nd, dims) != x->n)
        return fail(L, MIEN_EFORMAT, "%s: %lld values reshaped to %lld", c->who, (long long)x->n,
                    (long long)count_of(nd, dims));
    v->ndim = nd;
    memcpy(v->dims, dims, (size_t)nd * sizeof *dims);
    v->n = x->n;
    v->f = x->f;
    v->i = x->i;
    v->borrowed = 1;
    v->state = V_CONST;
    v->t = -1;
    return MIEN_OK;
}

/* Name for an intermediate node of this op. */
static const char *sub_name(octx *c, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", c->nm, suffix);
    return buf;
}

/* Fused activation (code) after tensor t; returns the final tensor, named c->nm. */
static int fused_act(loader *L, octx *c, int t, int64_t act) {
    switch (act) {
    case ACT_NONE: return t;
    case ACT_RELU: return nn_add_unary(L->g, NN_OP_RELU, c->nm, t, L->e);
    case ACT_RELU6: return nn_add_unary(L->g, NN_OP_RELU6, c->nm, t, L->e);
    case ACT_RELU_N1_TO_1: return nn_add_clamp(L->g, c->nm, t, -1.f, 1.f, L->e);
    case ACT_TANH: return nn_add_unary(L->g, NN_OP_TANH, c->nm, t, L->e);
    default:
        fail(L, MIEN_EUNSUPPORTED, "%s: fused activation %lld is not supported", c->who,
             (long long)act);
        return -1;
    }
}

/* Name of the node before a fused activation: the op's own name when there is none. */
static const char *pre_act_name(octx *c, int64_t act, char *buf, size_t cap) {
    return act == ACT_NONE ? c->nm : sub_name(c, "pre_act", buf, cap);
}

static int64_t opt_int(loader *L, octx *c, int id, int size, int64_t def) {
    return fb_int(&L->r, &c->opt, id, size, def);
}

/* Stride / dilation / padding / kernel checks shared by convolutions and pools. */
static int spatial(loader *L, octx *c, int64_t padding, int64_t sh, int64_t sw, int64_t dh,
                   int64_t dw, nn_conv_params *p) {
    nn_conv_params_default(p);
    if (padding != 0 && padding != 1)
        return fail(L, MIEN_EFORMAT, "%s: padding %lld (SAME or VALID expected)", c->who,
                    (long long)padding);
    if (sh < 1 || sh > 1024 || sw < 1 || sw > 1024 || dh < 1 || dh > 1024 || dw < 1 || dw > 1024)
        return fail(L, MIEN_EFORMAT, "%s: bad stride %lldx%lld or dilation %lldx%lld", c->who,
                    (long long)sh, (long long)sw, (long long)dh, (long long)dw);
    p->padding = padding == 0 ? NN_PAD_SAME : NN_PAD_VALID;
    p->stride[0] = (int)sh;
    p->stride[1] = (int)sw;
    p->dilation[0] = (int)dh;
    p->dilation[1] = (int)dw;
    return MIEN_OK;
}

/* Conv/FC activation as a node attribute where the IR has it (TANH becomes a node). */
static int act_param(loader *L, octx *c, int64_t act, nn_conv_params *p) {
    switch (act) {
    case ACT_NONE: case ACT_TANH: return MIEN_OK;
    case ACT_RELU: p->act = NN_ACT_RELU; return MIEN_OK;
    case ACT_RELU6: p->act = NN_ACT_RELU6; return MIEN_OK;
    case ACT_RELU_N1_TO_1: p->act = NN_ACT_CLAMP; p->act_min = -1.f; p->act_max = 1.f; return MIEN_OK;
    default:
        return fail(L, MIEN_EUNSUPPORTED, "%s: fused activation %lld is not supported", c->who,
                    (long long)act);
    }
}

/* An optional bias of co values (graph tensor or -1). */
static int bias_of(loader *L, octx *c, int k, int64_t co) {
    int missing;
    tval *b = OPT_IN(L, c, k, &missing);
    if (missing) return -1;
    if (!b) return -2;
    if (b->state != V_CONST || b->n != co) {
        fail(L, MIEN_EUNSUPPORTED, "%s: the bias must be a constant of %lld values", c->who,
             (long long)co);
        return -2;
    }
    int t = graph_of(L, c->in[k], b);
    return t < 0 ? -2 : t;
}

/* ==== Convolutions, fully connected, pools ==== */

static int op_conv(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, 4), *w = x ? need_const(L, c, 1, "the filter") : NULL;
    if (!w) return L->e->status;
    if (w->ndim != 4)
        return fail(L, MIEN_EUNSUPPORTED, "%s: filter of rank %d (4 expected)", c->who, w->ndim);
    const int64_t CO = w->dims[0], KH = w->dims[1], KW = w->dims[2], CIG = w->dims[3];
    const int64_t CI = L->g->t[x->t].dims[3];
    if (CO < 1 || CIG < 1 || KH < 1 || KW < 1 || KH > 4096 || KW > 4096 || CI < 1 || CI % CIG ||
        CO % (CI / CIG))
        return fail(L, MIEN_EFORMAT, "%s: filter %lldx%lldx%lldx%lld does not fit %lld input "
                    "channels", c->who, (long long)CO, (long long)KH, (long long)KW,
                    (long long)CIG, (long long)CI);
    int bias = bias_of(L, c, 2, CO);
    if (bias == -2) return L->e->status;
    nn_conv_params p;
    int64_t act = opt_int(L, c, 3, 1, ACT_NONE);
    int rc = spatial(L, c, opt_int(L, c, 0, 1, 0), opt_int(L, c, 2, 4, 0), opt_int(L, c, 1, 4, 0),
                     opt_int(L, c, 5, 4, 1), opt_int(L, c, 4, 4, 1), &p);
    if (rc || (rc = act_param(L, c, act, &p))) return rc;
    p.groups = (int)(CI / CIG);
    /* OHWI -> HWIO */
    float *wt = own_floats(L, w->n);
    if (!wt) return L->e->status;
    for (int64_t o = 0; o < CO; o++)
        for (int64_t s = 0; s < KH * KW * CIG; s++) wt[s * CO + o] = w->f ? w->f[o * KH * KW * CIG + s]
                                                                       : (float)w->i[o * KH * KW * CIG + s];
    char buf[NAME_MAX_LEN + 40];
    int64_t wd[4] = {KH, KW, CIG, CO};
    int wt_id = nn_add_const_ref(L->g, sub_name(c, "filter", buf, sizeof buf), 4, wd, wt, L->e);
    if (wt_id < 0) return L->e->status;
    int t = nn_add_conv2d(L->g, pre_act_name(c, act == ACT_TANH ? act : ACT_NONE, buf, sizeof buf),
                          x->t, wt_id, bias, -1, &p, L->e);
    if (t >= 0 && act == ACT_TANH) t = fused_act(L, c, t, act);
    return set_tensor(L, c, t, 0);
}

static int op_dwconv(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, 4), *w = x ? need_const(L, c, 1, "the filter") : NULL;
    if (!w) return L->e->status;
    const int64_t C = L->g->t[x->t].dims[3];
    if (w->ndim != 4 || w->dims[0] != 1 || C < 1 || w->dims[3] % C || w->dims[3] < 1 ||
        w->dims[1] < 1 || w->dims[2] < 1 || w->dims[1] > 4096 || w->dims[2] > 4096)
        return fail(L, MIEN_EFORMAT, "%s: depthwise filter of shape %lldx%lldx%lldx%lld for %lld "
                    "channels", c->who, (long long)w->dims[0], (long long)(w->ndim > 1 ? w->dims[1] : 0),
                    (long long)(w->ndim > 2 ? w->dims[2] : 0), (long long)(w->ndim > 3 ? w->dims[3] : 0),
                    (long long)C);
    const int64_t KH = w->dims[1], KW = w->dims[2], M = w->dims[3] / C;
    int bias = bias_of(L, c, 2, C * M);
    if (bias == -2) return L->e->status;
    nn_conv_params p;
    int64_t act = opt_int(L, c, 4, 1, ACT_NONE);
    int rc = spatial(L, c, opt_int(L, c, 0, 1, 0), opt_int(L, c, 2, 4, 0), opt_int(L, c, 1, 4, 0),
                     opt_int(L, c, 6, 4, 1), opt_int(L, c, 5, 4, 1), &p);
    if (rc || (rc = act_param(L, c, act, &p))) return rc;
    /* (1, KH, KW, C*M) is the IR's (KH, KW, C, M) in the same order. */
    float *wt = own_floats(L, w->n);
    if (!wt) return L->e->status;
    for (int64_t j = 0; j < w->n; j++) wt[j] = (float)cget(w, j);
    char buf[NAME_MAX_LEN + 40];
    int64_t wd[4] = {KH, KW, C, M};
    int wt_id = nn_add_const_ref(L->g, sub_name(c, "filter", buf, sizeof buf), 4, wd, wt, L->e);
    if (wt_id < 0) return L->e->status;
    int t = nn_add_dwconv2d(L->g, pre_act_name(c, act == ACT_TANH ? act : ACT_NONE, buf, sizeof buf),
                            x->t, wt_id, bias, -1, &p, L->e);
    if (t >= 0 && act == ACT_TANH) t = fused_act(L, c, t, act);
    return set_tensor(L, c, t, 0);
}

static int op_fc(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1), *w = x ? need_const(L, c, 1, "the weights") : NULL;
    if (!w) return L->e->status;
    if (w->ndim != 2 || w->dims[0] < 1 || w->dims[1] < 1)
        return fail(L, MIEN_EUNSUPPORTED, "%s: weights of rank %d (2 expected)", c->who, w->ndim);
    const int64_t M = w->dims[0], K = w->dims[1];
    if (opt_int(L, c, 1, 1, 0) != 0)
        return fail(L, MIEN_EUNSUPPORTED, "%s: shuffled weights are not supported", c->who);
    int keep = opt_int(L, c, 2, 1, 0) != 0;
    int64_t act = opt_int(L, c, 0, 1, ACT_NONE);
    const nn_tensor *tx = &L->g->t[x->t];
    int xt = x->t;
    char buf[NAME_MAX_LEN + 40];
    if (keep) {
        if (tx->ndim < 1 || tx->dims[tx->ndim - 1] != K)
            return fail(L, MIEN_EFORMAT, "%s: input's last axis is not %lld", c->who, (long long)K);
    } else {
        if (tx->n % K)
            return fail(L, MIEN_EFORMAT, "%s: %lld input values are not rows of %lld", c->who,
                        (long long)tx->n, (long long)K);
        if (tx->ndim != 2 || tx->dims[1] != K) {
            int64_t d[2] = {tx->n / K, K};
            xt = nn_add_reshape(L->g, sub_name(c, "rows", buf, sizeof buf), xt, 2, d, L->e);
            if (xt < 0) return L->e->status;
        }
    }
    int bias = bias_of(L, c, 2, M);
    if (bias == -2) return L->e->status;
    nn_conv_params p;
    nn_conv_params_default(&p);
    int rc = act_param(L, c, act, &p);
    if (rc) return rc;
    float *wt = own_floats(L, w->n);
    if (!wt) return L->e->status;
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) wt[k * M + m] = (float)cget(w, m * K + k);
    int64_t wd[2] = {K, M};
    int wt_id = nn_add_const_ref(L->g, sub_name(c, "weights", buf, sizeof buf), 2, wd, wt, L->e);
    if (wt_id < 0) return L->e->status;
    int t = nn_add_fc(L->g, pre_act_name(c, act == ACT_TANH ? act : ACT_NONE, buf, sizeof buf),
                      xt, wt_id, bias, -1, p.act, L->e);
    if (t >= 0 && p.act == NN_ACT_CLAMP) { /* RELU_N1_TO_1: the FC node has no clamp bounds */
        L->g->nodes[L->g->n_nodes - 1].act_min = -1.f;
        L->g->nodes[L->g->n_nodes - 1].act_max = 1.f;
    }
    if (t >= 0 && act == ACT_TANH) t = fused_act(L, c, t, act);
    return set_tensor(L, c, t, 0);
}

static int op_pool(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, 4);
    if (!x) return L->e->status;
    int64_t fw = opt_int(L, c, 3, 4, 0), fh = opt_int(L, c, 4, 4, 0);
    int64_t act = opt_int(L, c, 5, 1, ACT_NONE);
    if (fw < 1 || fh < 1 || fw > 4096 || fh > 4096)
        return fail(L, MIEN_EFORMAT, "%s: bad filter size %lldx%lld", c->who, (long long)fh,
                    (long long)fw);
    nn_conv_params p;
    int rc = spatial(L, c, opt_int(L, c, 0, 1, 0), opt_int(L, c, 2, 4, 0), opt_int(L, c, 1, 4, 0),
                     1, 1, &p);
    if (rc) return rc;
    int k[2] = {(int)fh, (int)fw};
    char buf[NAME_MAX_LEN + 40];
    int t = nn_add_pool(L->g, c->code == OP_MAX_POOL_2D ? NN_OP_MAXPOOL : NN_OP_AVGPOOL,
                        pre_act_name(c, act, buf, sizeof buf), x->t, k, &p, L->e);
    if (t >= 0) t = fused_act(L, c, t, act);
    return set_tensor(L, c, t, 0);
}

/* ==== Elementwise ==== */

/* numpy broadcasting of two shapes. */
static int bcast(int na, const int64_t *a, int nb, const int64_t *b, int *nd, int64_t *d) {
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int ia = na - n + i, ib = nb - n + i;
        int64_t x = ia >= 0 ? a[ia] : 1, y = ib >= 0 ? b[ib] : 1;
        if (x != y && x != 1 && y != 1) return 0;
        d[i] = x == 1 ? y : x;
    }
    *nd = n;
    return 1;
}

/* Flat index into a (rank na, dims a) broadcast to the output index idx (rank nd). */
static int64_t bcast_index(int na, const int64_t *a, int nd, const int64_t *idx) {
    int64_t k = 0;
    for (int i = 0; i < na; i++) {
        int oi = nd - na + i;
        k = k * a[i] + (a[i] == 1 ? 0 : idx[oi]);
    }
    return k;
}

static double binop(int code, double a, double b) {
    switch (code) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_MAXIMUM: return a > b ? a : b;
    case OP_MINIMUM: return a < b ? a : b;
    case OP_LESS: return a < b;
    case OP_GREATER: return a > b;
    case OP_GREATER_EQUAL: return a >= b;
    case OP_LESS_EQUAL: return a <= b;
    default: return 0;
    }
}

static double apply_act_value(int64_t act, double v) {
    switch (act) {
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case ACT_RELU_N1_TO_1: return v < -1 ? -1 : v > 1 ? 1 : v;
    case ACT_TANH: return tanh(v);
    default: return v;
    }
}

/* Binary op on two constants, evaluated now. Integer constants stay integers for the ops that
 * keep integers exact (add, sub, mul, max, min, comparisons). */
static int const_binary(loader *L, octx *c, tval *a, tval *b, int64_t act) {
    int nd;
    int64_t d[NN_MAX_DIMS];
    if (!bcast(a->ndim, a->dims, b->ndim, b->dims, &nd, d))
        return fail(L, MIEN_EFORMAT, "%s: shapes cannot be broadcast together", c->who);
    int cmp = c->code == OP_LESS || c->code == OP_GREATER || c->code == OP_GREATER_EQUAL ||
              c->code == OP_LESS_EQUAL;
    int ints = (a->i && b->i && c->code != OP_DIV && act == ACT_NONE) || cmp;
    tval *o = set_const(L, c, ints, nd, d);
    if (!o) return L->e->status;
    int64_t idx[NN_MAX_DIMS] = {0};
    for (int64_t k = 0; k < o->n; k++) {
        double r = binop(c->code, cget(a, bcast_index(a->ndim, a->dims, nd, idx)),
                         cget(b, bcast_index(b->ndim, b->dims, nd, idx)));
        if (ints) {
            if (!(fabs(r) < 9e18)) return fail(L, MIEN_EFORMAT, "%s: integer overflow", c->who);
            o->i[k] = (int64_t)r;
        } else {
            o->f[k] = (float)apply_act_value(act, r);
        }
        for (int i = nd - 1; i >= 0; i--) {
            if (++idx[i] < d[i]) break;
            idx[i] = 0;
        }
    }
    return MIEN_OK;
}

static int op_binary(loader *L, octx *c) {
    tval *a = IN(L, c, 0), *b = a ? IN(L, c, 1) : NULL;
    if (!b) return L->e->status;
    int64_t act = ACT_NONE;
    if (c->code == OP_ADD || c->code == OP_SUB || c->code == OP_MUL || c->code == OP_DIV)
        act = opt_int(L, c, 0, 1, ACT_NONE);
    if (a->state == V_CONST && b->state == V_CONST) return const_binary(L, c, a, b, act);
    nn_op op;
    int swap = 0, cmp = 0;
    switch (c->code) {
    case OP_ADD: op = NN_OP_ADD; break;
    case OP_SUB: op = NN_OP_SUB; break;
    case OP_MUL: op = NN_OP_MUL; break;
    case OP_DIV: op = NN_OP_DIV; break;
    case OP_MAXIMUM: op = NN_OP_MAXIMUM; break;
    case OP_MINIMUM: op = NN_OP_MINIMUM; break;
    case OP_LESS: op = NN_OP_LESS; cmp = 1; break;
    case OP_GREATER: op = NN_OP_LESS; cmp = swap = 1; break;
    case OP_GREATER_EQUAL: op = NN_OP_GREATER_EQUAL; cmp = 1; break;
    case OP_LESS_EQUAL: op = NN_OP_GREATER_EQUAL; cmp = swap = 1; break;
    default: return fail(L, MIEN_EINTERNAL, "%s: not a binary op", c->who);
    }
    int ta = graph_of(L, c->in[0], a), tb = ta >= 0 ? graph_of(L, c->in[1], b) : -1;
    if (tb < 0) return L->e->status;
    char buf[NAME_MAX_LEN + 40];
    int t = nn_add_binary(L->g, op, pre_act_name(c, act, buf, sizeof buf), swap ? tb : ta,
                          swap ? ta : tb, L->e);
    if (t >= 0) t = fused_act(L, c, t, act);
    return set_tensor(L, c, t, cmp);
}

static int op_unary(loader *L, octx *c) {
    tval *x = IN(L, c, 0);
    if (!x) return L->e->status;
    float alpha = c->code == OP_LEAKY_RELU ? fb_float(&L->r, &c->opt, 0, 0.f) : 0.f;
    if (x->state == V_CONST) {
        tval *o = set_const(L, c, 0, x->ndim, x->dims);
        if (!o) return L->e->status;
        for (int64_t k = 0; k < x->n; k++) {
            double v = cget(x, k), r;
            switch (c->code) {
            case OP_ABS: r = fabs(v); break;
            case OP_NEG: r = -v; break;
            case OP_EXP: r = exp(v); break;
            case OP_SQRT: r = sqrt(v); break;
            case OP_RSQRT: r = 1 / sqrt(v); break;
            case OP_SQUARE: r = v * v; break;
            case OP_LOGISTIC: r = 1 / (1 + exp(-v)); break;
            case OP_LEAKY_RELU: r = v > 0 ? v : alpha * v; break;
            case OP_RELU: r = apply_act_value(ACT_RELU, v); break;
            case OP_RELU6: r = apply_act_value(ACT_RELU6, v); break;
            case OP_RELU_N1_TO_1: r = apply_act_value(ACT_RELU_N1_TO_1, v); break;
            case OP_TANH: r = tanh(v); break;
            default: return fail(L, MIEN_EINTERNAL, "%s: not a unary op", c->who);
            }
            o->f[k] = (float)r;
        }
        return MIEN_OK;
    }
    int t;
    switch (c->code) {
    case OP_ABS: t = nn_add_unary(L->g, NN_OP_ABS, c->nm, x->t, L->e); break;
    case OP_NEG: t = nn_add_unary(L->g, NN_OP_NEG, c->nm, x->t, L->e); break;
    case OP_EXP: t = nn_add_unary(L->g, NN_OP_EXP, c->nm, x->t, L->e); break;
    case OP_SQRT: t = nn_add_unary(L->g, NN_OP_SQRT, c->nm, x->t, L->e); break;
    case OP_RSQRT: t = nn_add_unary(L->g, NN_OP_RSQRT, c->nm, x->t, L->e); break;
    case OP_SQUARE: t = nn_add_unary(L->g, NN_OP_SQUARE, c->nm, x->t, L->e); break;
    case OP_LOGISTIC: t = nn_add_unary(L->g, NN_OP_SIGMOID, c->nm, x->t, L->e); break;
    case OP_TANH: t = nn_add_unary(L->g, NN_OP_TANH, c->nm, x->t, L->e); break;
    case OP_RELU: t = nn_add_unary(L->g, NN_OP_RELU, c->nm, x->t, L->e); break;
    case OP_RELU6: t = nn_add_unary(L->g, NN_OP_RELU6, c->nm, x->t, L->e); break;
    case OP_RELU_N1_TO_1: t = nn_add_clamp(L->g, c->nm, x->t, -1.f, 1.f, L->e); break;
    case OP_LEAKY_RELU:
        if (!isfinite(alpha)) return fail(L, MIEN_EFORMAT, "%s: bad alpha", c->who);
        t = nn_add_leaky_relu(L->g, c->nm, x->t, alpha, L->e);
        break;
    default: return fail(L, MIEN_EINTERNAL, "%s: not a unary op", c->who);
    }
    return set_tensor(L, c, t, 0);
}

static int op_prelu(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1), *a = x ? need_const(L, c, 1, "alpha") : NULL;
    if (!a) return L->e->status;
    const nn_tensor *tx = &L->g->t[x->t];
    int64_t C = tx->ndim ? tx->dims[tx->ndim - 1] : 1;
    /* alpha broadcast along the channel axis only: (..., 1, C) or a scalar. */
    int ok = a->n == C || a->n == 1;
    for (int d = 0; ok && d + 1 < a->ndim; d++) ok = a->dims[d] == 1;
    if (!ok) return fail(L, MIEN_EUNSUPPORTED, "%s: alpha must be per channel", c->who);
    int64_t d1 = a->n;
    float *al = own_floats(L, a->n);
    if (!al) return L->e->status;
    for (int64_t j = 0; j < a->n; j++) al[j] = (float)cget(a, j);
    char buf[NAME_MAX_LEN + 40];
    int ta = nn_add_const_ref(L->g, sub_name(c, "alpha", buf, sizeof buf), 1, &d1, al, L->e);
    if (ta < 0) return L->e->status;
    return set_tensor(L, c, nn_add_prelu(L->g, c->nm, x->t, ta, L->e), 0);
}

/* ==== Shapes and layout ==== */

static int norm_axis(loader *L, octx *c, int64_t axis, int nd, int *out) {
    *out = 0;
    if (axis < 0) axis += nd;
    if (axis < 0 || axis >= nd)
        return fail(L, MIEN_EFORMAT, "%s: axis %lld out of range for rank %d", c->who,
                    (long long)axis, nd);
    *out = (int)axis;
    return MIEN_OK;
}

/* Output 0 is x reshaped to dims (a node for a tensor, shared data for a constant). */
static int reshape_to(loader *L, octx *c, tval *x, int nd, const int64_t *dims) {
    if (x->state == V_CONST) return alias_const(L, c, x, nd, dims);
    return set_tensor(L, c, nn_add_reshape(L->g, c->nm, x->t, nd, dims, L->e), x->boolish);
}

static void shape_of(loader *L, const tval *x, int *nd, int64_t *dims) {
    if (x->state == V_TENSOR) {
        const nn_tensor *t = &L->g->t[x->t];
        *nd = t->ndim;
        memcpy(dims, t->dims, sizeof t->dims);
    } else {
        *nd = x->ndim;
        memcpy(dims, x->dims, sizeof x->dims);
    }
}

static int op_reshape(loader *L, octx *c) {
    tval *x = IN(L, c, 0);
    if (!x) return L->e->status;
    int nd, missing, rc;
    int64_t d[NN_MAX_DIMS];
    tval *s = OPT_IN(L, c, 1, &missing);
    if (!missing && !s) return L->e->status;
    if (s && s->state == V_CONST && s->n > 0) {
        if ((rc = const_ints(L, s, c->who, "the shape", d, NN_MAX_DIMS, &nd))) return rc;
    } else if (s && s->state != V_CONST) {
        return fail(L, MIEN_EUNSUPPORTED, "%s: the shape must be a constant", c->who);
    } else if (fb_present(&L->r, &c->opt, 0)) {
        fb_vec ns = fb_vec_field(&L->r, &c->opt, 0, 4);
        if (ns.n > NN_MAX_DIMS)
            return fail(L, MIEN_EUNSUPPORTED, "%s: shape of rank %u", c->who, ns.n);
        for (uint32_t j = 0; j < ns.n; j++) d[j] = fb_vec_int(&L->r, &ns, j);
        nd = (int)ns.n;
        if ((rc = check_reader(L))) return rc;
    } else { /* the output tensor's declared shape */
        if ((rc = read_shape(L, c->out[0], 0, &nd, d, c->nm))) return rc;
    }
    int xnd;
    int64_t xd[NN_MAX_DIMS];
    shape_of(L, x, &xnd, xd);
    const int64_t n = count_of(xnd, xd);
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < nd; i++) {
        if (d[i] == -1 && infer < 0) {
            infer = i;
        } else if (d[i] < 1 || d[i] > MAX_ELEMS || known > MAX_ELEMS / d[i]) {
            return fail(L, MIEN_EFORMAT, "%s: bad shape dimension %lld", c->who, (long long)d[i]);
        } else {
            known *= d[i];
        }
    }
    /* A target written for the file's batch follows the graph's batch. */
    if (infer < 0 && known != n && nd > 0 && L->batch_file != L->batch_now && d[0] == L->batch_file &&
        known / L->batch_file * L->batch_now == n)
        d[0] = L->batch_now;
    if (infer >= 0) {
        if (n % known) return fail(L, MIEN_EFORMAT, "%s: cannot reshape %lld values", c->who, (long long)n);
        d[infer] = n / known;
    }
    return reshape_to(L, c, x, nd, d);
}

static int op_squeeze(loader *L, octx *c) {
    tval *x = IN(L, c, 0);
    if (!x) return L->e->status;
    int nd, rc;
    int64_t d[NN_MAX_DIMS], od[NN_MAX_DIMS];
    shape_of(L, x, &nd, d);
    fb_vec sq = fb_vec_field(&L->r, &c->opt, 0, 4);
    if ((rc = check_reader(L))) return rc;
    unsigned drop = 0;
    if (sq.n == 0) {
        for (int i = 0; i < nd; i++)
            if (d[i] == 1) drop |= 1u << i;
    }
    if (sq.n > NN_MAX_DIMS) return fail(L, MIEN_EFORMAT, "%s: %u axes", c->who, sq.n);
    for (uint32_t j = 0; j < sq.n; j++) {
        int a;
        if ((rc = norm_axis(L, c, fb_vec_int(&L->r, &sq, j), nd, &a))) return rc;
        if (d[a] != 1) return fail(L, MIEN_EFORMAT, "%s: axis %d has size %lld", c->who, a, (long long)d[a]);
        drop |= 1u << a;
    }
    int k = 0;
    for (int i = 0; i < nd; i++)
        if (!(drop & (1u << i))) od[k++] = d[i];
    return reshape_to(L, c, x, k, od);
}

static int op_expand_dims(loader *L, octx *c) {
    tval *x = IN(L, c, 0), *ax = x ? need_const(L, c, 1, "the axis") : NULL;
    if (!ax) return L->e->status;
    int nd, na, a, rc;
    int64_t d[NN_MAX_DIMS], av[1], od[NN_MAX_DIMS];
    shape_of(L, x, &nd, d);
    if ((rc = const_ints(L, ax, c->who, "the axis", av, 1, &na))) return rc;
    if (na != 1) return fail(L, MIEN_EFORMAT, "%s: one axis expected", c->who);
    if (nd + 1 > NN_MAX_DIMS) return fail(L, MIEN_EUNSUPPORTED, "%s: rank above %d", c->who, NN_MAX_DIMS);
    if ((rc = norm_axis(L, c, av[0], nd + 1, &a))) return rc;
    for (int i = 0, k = 0; i <= nd; i++) od[i] = i == a ? 1 : d[k++];
    return reshape_to(L, c, x, nd + 1, od);
}

static int op_transpose(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1), *pv = x ? need_const(L, c, 1, "the permutation") : NULL;
    if (!pv) return L->e->status;
    int64_t p[NN_MAX_DIMS];
    int np, rc, perm[NN_MAX_DIMS];
    if ((rc = const_ints(L, pv, c->who, "the permutation", p, NN_MAX_DIMS, &np))) return rc;
    const int nd = L->g->t[x->t].ndim;
    if (np != nd) return fail(L, MIEN_EFORMAT, "%s: permutation of %d axes for rank %d", c->who, np, nd);
    for (int i = 0; i < nd; i++) {
        if (p[i] < 0 || p[i] >= nd) return fail(L, MIEN_EFORMAT, "%s: bad permutation", c->who);
        perm[i] = (int)p[i];
    }
    return set_tensor(L, c, nn_add_transpose(L->g, c->nm, x->t, perm, L->e), x->boolish);
}

static int op_concat(loader *L, octx *c) {
    if (c->nin < 1) return fail(L, MIEN_EFORMAT, "%s: no inputs", c->who);
    int xs[MAX_OP_IO], nd = -1, axis, rc, boolish = 1;
    for (int k = 0; k < c->nin; k++) {
        tval *x = IN(L, c, k);
        if (!x) return L->e->status;
        if ((xs[k] = graph_of(L, c->in[k], x)) < 0) return L->e->status;
        boolish &= x->boolish;
        if (k == 0) nd = L->g->t[xs[0]].ndim;
    }
    int64_t act = opt_int(L, c, 1, 1, ACT_NONE);
    if ((rc = norm_axis(L, c, opt_int(L, c, 0, 4, 0), nd, &axis))) return rc;
    char buf[NAME_MAX_LEN + 40];
    int t = nn_add_concat(L->g, pre_act_name(c, act, buf, sizeof buf), xs, c->nin, axis, L->e);
    if (t >= 0) t = fused_act(L, c, t, act);
    return set_tensor(L, c, t, boolish && act == ACT_NONE);
}

/* Paddings constant (rank, 2) -> the IR's (before, after) per axis. */
static int op_pad(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1), *pv = x ? need_const(L, c, 1, "the paddings") : NULL;
    if (!pv) return L->e->status;
    const int nd = L->g->t[x->t].ndim;
    int64_t pads[2 * NN_MAX_DIMS];
    int np, rc, missing;
    if ((rc = const_ints(L, pv, c->who, "the paddings", pads, 2 * NN_MAX_DIMS, &np))) return rc;
    if (np != 2 * nd) return fail(L, MIEN_EFORMAT, "%s: %d paddings for rank %d", c->who, np, nd);
    float value = 0.f;
    if (c->code == OP_PADV2) {
        tval *cv = OPT_IN(L, c, 2, &missing);
        if (!missing) {
            if (!cv) return L->e->status;
            if (cv->state != V_CONST || cv->n != 1)
                return fail(L, MIEN_EUNSUPPORTED, "%s: the pad value must be a constant scalar", c->who);
            value = (float)cget(cv, 0);
        }
    }
    return set_tensor(L, c, nn_add_pad(L->g, c->nm, x->t, pads, value, L->e), 0);
}

/* Begin, end (exclusive) and step of one axis of a slice, clamped as TensorFlow does. */
static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static int slice_node(loader *L, octx *c, tval *x, const int64_t *b, const int64_t *en,
                      const int64_t *st, unsigned shrink) {
    const nn_tensor *tx = &L->g->t[x->t];
    const int nd = tx->ndim;
    for (int i = 0; i < nd; i++) {
        int64_t len = st[i] > 0 ? (en[i] - b[i] + st[i] - 1) / st[i] : (b[i] - en[i] - st[i] - 1) / -st[i];
        if (len <= 0) return fail(L, MIEN_EUNSUPPORTED, "%s: empty slice on axis %d", c->who, i);
    }
    char buf[NAME_MAX_LEN + 40];
    int t = nn_add_slice(L->g, shrink ? sub_name(c, "slice", buf, sizeof buf) : c->nm, x->t, b, en,
                         st, L->e);
    if (t < 0 || !shrink) return set_tensor(L, c, t, x->boolish);
    int64_t od[NN_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < nd; i++)
        if (!(shrink & (1u << i))) od[k++] = L->g->t[t].dims[i];
    return set_tensor(L, c, nn_add_reshape(L->g, c->nm, t, k, od, L->e), x->boolish);
}

static int op_strided_slice(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1);
    tval *bv = x ? need_const(L, c, 1, "begin") : NULL, *ev = bv ? need_const(L, c, 2, "end") : NULL;
    tval *sv = ev ? need_const(L, c, 3, "strides") : NULL;
    if (!sv) return L->e->status;
    const nn_tensor *tx = &L->g->t[x->t];
    const int nd = tx->ndim;
    int64_t bb[NN_MAX_DIMS], ee[NN_MAX_DIMS], ss[NN_MAX_DIMS];
    int nb, ne, ns, rc;
    if ((rc = const_ints(L, bv, c->who, "begin", bb, NN_MAX_DIMS, &nb)) ||
        (rc = const_ints(L, ev, c->who, "end", ee, NN_MAX_DIMS, &ne)) ||
        (rc = const_ints(L, sv, c->who, "strides", ss, NN_MAX_DIMS, &ns)))
        return rc;
    if (nb != ne || nb != ns || nb > nd)
        return fail(L, MIEN_EFORMAT, "%s: begin, end and strides of %d, %d, %d values for rank %d",
                    c->who, nb, ne, ns, nd);
    const int64_t bm = opt_int(L, c, 0, 4, 0), em = opt_int(L, c, 1, 4, 0);
    const int64_t ellipsis = opt_int(L, c, 2, 4, 0), newax = opt_int(L, c, 3, 4, 0);
    const int64_t shrink = opt_int(L, c, 4, 4, 0), offset = opt_int(L, c, 5, 1, 0);
    if (ellipsis || newax)
        return fail(L, MIEN_EUNSUPPORTED, "%s: ellipsis and new-axis masks are not supported", c->who);
    int64_t b[NN_MAX_DIMS], en[NN_MAX_DIMS], st[NN_MAX_DIMS];
    unsigned shr = 0;
    for (int i = 0; i < nd; i++) {
        const int64_t dim = tx->dims[i];
        if (i >= nb) {
            b[i] = 0, en[i] = dim, st[i] = 1;
            continue;
        }
        int64_t s = ss[i];
        if (s == 0 || s < -MAX_ELEMS || s > MAX_ELEMS)
            return fail(L, MIEN_EFORMAT, "%s: bad stride %lld", c->who, (long long)s);
        if (bb[i] < -MAX_ELEMS || bb[i] > MAX_ELEMS || ee[i] < -MAX_ELEMS || ee[i] > MAX_ELEMS)
            return fail(L, MIEN_EFORMAT, "%s: bad bounds", c->who);
        int64_t bi = bb[i] < 0 ? bb[i] + dim : bb[i];
        if (shrink & (1ll << i)) {
            if (bi < 0 || bi >= dim)
                return fail(L, MIEN_EFORMAT, "%s: index %lld out of range", c->who, (long long)bb[i]);
            b[i] = bi, en[i] = bi + 1, st[i] = 1;
            shr |= 1u << i;
            continue;
        }
        if (bm & (1ll << i)) bi = s > 0 ? 0 : dim - 1;
        bi = s > 0 ? clamp64(bi, 0, dim) : clamp64(bi, -1, dim - 1);
        int64_t ei;
        if (em & (1ll << i)) ei = s > 0 ? dim : -1;
        else if (offset) ei = bi + ee[i];
        else ei = ee[i] < 0 ? ee[i] + dim : ee[i];
        ei = s > 0 ? clamp64(ei, 0, dim) : clamp64(ei, -1, dim - 1);
        b[i] = bi, en[i] = ei, st[i] = s;
    }
    return slice_node(L, c, x, b, en, st, shr);
}

static int op_slice(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1);
    tval *bv = x ? need_const(L, c, 1, "begin") : NULL, *sv = bv ? need_const(L, c, 2, "size") : NULL;
    if (!sv) return L->e->status;
    const nn_tensor *tx = &L->g->t[x->t];
    const int nd = tx->ndim;
    int64_t bb[NN_MAX_DIMS], sz[NN_MAX_DIMS], b[NN_MAX_DIMS], en[NN_MAX_DIMS], st[NN_MAX_DIMS];
    int nb, ns, rc;
    if ((rc = const_ints(L, bv, c->who, "begin", bb, NN_MAX_DIMS, &nb)) ||
        (rc = const_ints(L, sv, c->who, "size", sz, NN_MAX_DIMS, &ns)))
        return rc;
    if (nb != nd || ns != nd)
        return fail(L, MIEN_EFORMAT, "%s: begin and size of %d, %d values for rank %d", c->who, nb, ns, nd);
    for (int i = 0; i < nd; i++) {
        const int64_t dim = tx->dims[i];
        if (bb[i] < 0 || bb[i] > dim || (sz[i] != -1 && (sz[i] < 0 || sz[i] > dim - bb[i])))
            return fail(L, MIEN_EFORMAT, "%s: slice out of range on axis %d", c->who, i);
        b[i] = bb[i], en[i] = sz[i] == -1 ? dim : bb[i] + sz[i], st[i] = 1;
    }
    return slice_node(L, c, x, b, en, st, 0);
}

/* ==== Softmax, reductions, resize, normalization, casts ==== */

static int op_softmax(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1);
    if (!x) return L->e->status;
    float beta = fb_float(&L->r, &c->opt, 0, 0.f);
    if (!isfinite(beta)) return fail(L, MIEN_EFORMAT, "%s: bad beta", c->who);
    int t = x->t;
    char buf[NAME_MAX_LEN + 40];
    if (beta != 1.f) {
        int64_t one = 1;
        float *bv = own_floats(L, 1);
        if (!bv) return L->e->status;
        bv[0] = beta;
        int tb = nn_add_const_ref(L->g, sub_name(c, "beta", buf, sizeof buf), 1, &one, bv, L->e);
        if (tb < 0) return L->e->status;
        t = nn_add_binary(L->g, NN_OP_MUL, sub_name(c, "scaled", buf, sizeof buf), t, tb, L->e);
        if (t < 0) return L->e->status;
    }
    return set_tensor(L, c, nn_add_softmax(L->g, c->nm, t, L->e), 0);
}

static int op_reduce(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1), *av = x ? need_const(L, c, 1, "the axes") : NULL;
    if (!av) return L->e->status;
    const int nd = L->g->t[x->t].ndim;
    int64_t axes[NN_MAX_DIMS];
    int na, rc;
    if ((rc = const_ints(L, av, c->who, "the axes", axes, NN_MAX_DIMS, &na))) return rc;
    unsigned mask = 0;
    for (int k = 0; k < na; k++) {
        int a;
        if ((rc = norm_axis(L, c, axes[k], nd, &a))) return rc;
        mask |= 1u << a;
    }
    int keep = opt_int(L, c, 0, 1, 0) != 0;
    nn_op op = c->code == OP_MEAN ? NN_OP_MEAN : c->code == OP_SUM ? NN_OP_SUM : NN_OP_REDUCE_MAX;
    return set_tensor(L, c, nn_add_reduce(L->g, op, c->nm, x->t, mask, keep, L->e), 0);
}

static int op_resize(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, 4), *sv = x ? need_const(L, c, 1, "the size") : NULL;
    if (!sv) return L->e->status;
    int64_t sz[2];
    int n, rc;
    if ((rc = const_ints(L, sv, c->who, "the size", sz, 2, &n))) return rc;
    if (n != 2 || sz[0] < 1 || sz[1] < 1 || sz[0] > 65536 || sz[1] > 65536)
        return fail(L, MIEN_EFORMAT, "%s: bad output size", c->who);
    int bil = c->code == OP_RESIZE_BILINEAR;
    int ac = opt_int(L, c, bil ? 2 : 0, 1, 0) != 0, hp = opt_int(L, c, bil ? 3 : 1, 1, 0) != 0;
    if (ac && hp)
        return fail(L, MIEN_EFORMAT, "%s: align_corners and half_pixel_centers together", c->who);
    return set_tensor(L, c, nn_add_resize(L->g, bil ? NN_OP_RESIZE_BILINEAR : NN_OP_RESIZE_NEAREST,
                                          c->nm, x->t, (int)sz[0], (int)sz[1], ac, hp, L->e), 0);
}

/* TFLite divides by max(|x|, 1e-6): eps on the sum of squares is 1e-12. */
static int op_l2norm(loader *L, octx *c) {
    tval *x = need_tensor(L, c, 0, -1);
    if (!x) return L->e->status;
    return set_tensor(L, c, nn_add_l2norm(L->g, c->nm, x->t, 1e-12f, L->e), 0);
}

static int op_dequantize(loader *L, octx *c) {
    tval *x = IN(L, c, 0);
    if (!x) return L->e->status;
    if (x->state != V_CONST)
        return fail(L, MIEN_EUNSUPPORTED, "%s: quantized activations are not supported (only "
                    "constants may be dequantized)", c->who);
    if (!x->f)
        return fail(L, MIEN_EFORMAT, "%s: the constant has no quantization scale", c->who);
    return alias_const(L, c, x, x->ndim, x->dims);
}

static int op_cast(loader *L, octx *c) {
    tval *x = IN(L, c, 0), *o = x ? OUT(L, c, 0) : NULL;
    if (!o) return L->e->status;
    const int to = o->type;
    if (x->state == V_CONST) {
        int to_float = type_is_float(to);
        if (!to_float && !type_size(to))
            return fail(L, MIEN_EUNSUPPORTED, "%s: cast to %s", c->who, type_name(to));
        tval *r = set_const(L, c, !to_float, x->ndim, x->dims);
        if (!r) return L->e->status;
        for (int64_t k = 0; k < x->n; k++) {
            double v = cget(x, k);
            if (to_float) {
                r->f[k] = (float)v;
            } else if (to == TT_BOOL) {
                r->i[k] = v != 0;
            } else {
                if (!(fabs(v) < 9e18)) return fail(L, MIEN_EFORMAT, "%s: value out of range", c->who);
                r->i[k] = (int64_t)v; /* toward zero, as static_cast */
            }
        }
        return MIEN_OK;
    }
    if (to != TT_FLOAT32 || (!x->boolish && x->type != TT_FLOAT32 && x->type != TT_BOOL))
        return fail(L, MIEN_EUNSUPPORTED, "%s: cast of a computed %s tensor to %s", c->who,
                    x->boolish ? "bool" : type_name(x->type), type_name(to));
    /* Floats and 0/1 values are floats already: the output is the input. */
    o->state = V_TENSOR;
    o->t = x->t;
    o->boolish = x->boolish;
    return MIEN_OK;
}

/* ==== Op table ==== */

static const struct {
    int code;
    const char *name;
    op_fn fn;
    int opt_type;            /* BuiltinOptions the op reads (BO_NONE: none) */
} op_table[] = {
    {OP_CONV_2D, "CONV_2D", op_conv, BO_CONV2D},
    {OP_DEPTHWISE_CONV_2D, "DEPTHWISE_CONV_2D", op_dwconv, BO_DEPTHWISE},
    {OP_FULLY_CONNECTED, "FULLY_CONNECTED", op_fc, BO_FULLY_CONNECTED},
    {OP_MAX_POOL_2D, "MAX_POOL_2D", op_pool, BO_POOL2D},
    {OP_AVERAGE_POOL_2D, "AVERAGE_POOL_2D", op_pool, BO_POOL2D},
    {OP_ADD, "ADD", op_binary, BO_ADD},
    {OP_SUB, "SUB", op_binary, BO_SUB},
    {OP_MUL, "MUL", op_binary, BO_MUL},
    {OP_DIV, "DIV", op_binary, BO_DIV},
    {OP_MAXIMUM, "MAXIMUM", op_binary, BO_NONE},
    {OP_MINIMUM, "MINIMUM", op_binary, BO_NONE},
    {OP_LESS, "LESS", op_binary, BO_NONE},
    {OP_GREATER, "GREATER", op_binary, BO_NONE},
    {OP_GREATER_EQUAL, "GREATER_EQUAL", op_binary, BO_NONE},
    {OP_LESS_EQUAL, "LESS_EQUAL", op_binary, BO_NONE},
    {OP_ABS, "ABS", op_unary, BO_NONE},
    {OP_NEG, "NEG", op_unary, BO_NONE},
    {OP_EXP, "EXP", op_unary, BO_NONE},
    {OP_SQRT, "SQRT", op_unary, BO_NONE},
    {OP_RSQRT, "RSQRT", op_unary, BO_NONE},
    {OP_SQUARE, "SQUARE", op_unary, BO_NONE},
    {OP_LOGISTIC, "LOGISTIC", op_unary, BO_NONE},
    {OP_TANH, "TANH", op_unary, BO_NONE},
    {OP_RELU, "RELU", op_unary, BO_NONE},
    {OP_RELU6, "RELU6", op_unary, BO_NONE},
    {OP_RELU_N1_TO_1, "RELU_N1_TO_1", op_unary, BO_NONE},
    {OP_LEAKY_RELU, "LEAKY_RELU", op_unary, BO_LEAKY_RELU},
    {OP_PRELU, "PRELU", op_prelu, BO_NONE},
    {OP_RESHAPE, "RESHAPE", op_reshape, BO_RESHAPE},
    {OP_SQUEEZE, "SQUEEZE", op_squeeze, BO_SQUEEZE},
    {OP_EXPAND_DIMS, "EXPAND_DIMS", op_expand_dims, BO_NONE},
    {OP_TRANSPOSE, "TRANSPOSE", op_transpose, BO_NONE},
    {OP_CONCATENATION, "CONCATENATION", op_concat, BO_CONCATENATION},
    {OP_PAD, "PAD", op_pad, BO_NONE},
    {OP_PADV2, "PADV2", op_pad, BO_NONE},
    {OP_STRIDED_SLICE, "STRIDED_SLICE", op_strided_slice, BO_STRIDED_SLICE},
    {OP_SLICE, "SLICE", op_slice, BO_NONE},
    {OP_SOFTMAX, "SOFTMAX", op_softmax, BO_SOFTMAX},
    {OP_MEAN, "MEAN", op_reduce, BO_REDUCER},
    {OP_SUM, "SUM", op_reduce, BO_REDUCER},
    {OP_REDUCE_MAX, "REDUCE_MAX", op_reduce, BO_REDUCER},
    {OP_RESIZE_BILINEAR, "RESIZE_BILINEAR", op_resize, BO_RESIZE_BILINEAR},
    {OP_RESIZE_NEAREST_NEIGHBOR, "RESIZE_NEAREST_NEIGHBOR", op_resize, BO_RESIZE_NEAREST},
    {OP_L2_NORMALIZATION, "L2_NORMALIZATION", op_l2norm, BO_NONE},
    {OP_DEQUANTIZE, "DEQUANTIZE", op_dequantize, BO_NONE},
    {OP_CAST, "CAST", op_cast, BO_NONE},
};

/* ==== Model ==== */

/* The operator codes: builtin code of each (the larger of the two fields), -1 for custom. */
static int read_codes(loader *L, const fb_table *model, int **codes, uint32_t *n) {
    fb_vec v = fb_vec_field(&L->r, model, 1, 4);
    int rc = check_reader(L);
    if (rc) return rc;
    *codes = malloc((size_t)(v.n ? v.n : 1) * sizeof **codes);
    if (!*codes) return fail(L, MIEN_ENOMEM, "out of memory");
    *n = v.n;
    for (uint32_t k = 0; k < v.n; k++) {
        fb_table oc = fb_vec_table(&L->r, &v, k);
        int64_t dep = fb_int(&L->r, &oc, 0, 1, 0), bc = fb_int(&L->r, &oc, 3, 4, 0);
        (*codes)[k] = (int)(dep > bc ? dep : bc);
        if ((*codes)[k] < 0) (*codes)[k] = 0x7fffffff;
    }
    return check_reader(L);
}

static int load_op(loader *L, const fb_table *opt_tab, const int *codes, uint32_t n_codes, int index) {
    fb_reader *r = &L->r;
    octx c = {.index = index};
    uint32_t ci = (uint32_t)fb_uint(r, opt_tab, 0, 4, 0);
    fb_vec ins = fb_vec_field(r, opt_tab, 1, 4), outs = fb_vec_field(r, opt_tab, 2, 4);
    int otype = (int)fb_uint(r, opt_tab, 3, 1, 0);
    fb_table opts = fb_table_field(r, opt_tab, 4);
    int rc = check_reader(L);
    if (rc) return rc;
    if (ci >= n_codes)
        return fail(L, MIEN_EFORMAT, "operator %d: opcode index %u out of range (%u codes)", index,
                    ci, n_codes);
    c.code = codes[ci];
    if (ins.n > MAX_OP_IO || outs.n > MAX_OP_IO || outs.n < 1)
        return fail(L, MIEN_EUNSUPPORTED, "operator %d: %u inputs and %u outputs", index, ins.n,
                    outs.n);
    c.nin = (int)ins.n;
    c.nout = (int)outs.n;
    for (int k = 0; k < c.nin; k++) {
        int64_t t = fb_vec_int(r, &ins, (uint32_t)k);
        c.in[k] = t < 0 ? -1 : t >= L->n_t ? L->n_t : (int)t; /* out of range: an error on use */
    }
    for (int k = 0; k < c.nout; k++) {
        int64_t t = fb_vec_int(r, &outs, (uint32_t)k);
        c.out[k] = t < 0 || t >= L->n_t ? -1 : (int)t;
    }
    if ((rc = check_reader(L))) return rc;
    size_t which = sizeof op_table / sizeof op_table[0];
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++)
        if (op_table[i].code == c.code) which = i;
    if (c.out[0] < 0) return fail(L, MIEN_EFORMAT, "operator %d: bad output tensor index", index);
    tname(L, c.out[0], c.nm, sizeof c.nm);
    if (which == sizeof op_table / sizeof op_table[0]) {
        if (c.code == OP_CUSTOM)
            return fail(L, MIEN_EUNSUPPORTED, "operator %d (output %s) is a custom op (not supported)",
                        index, c.nm);
        return fail(L, MIEN_EUNSUPPORTED, "operator %d (output %s): builtin op %d is not supported",
                    index, c.nm, c.code);
    }
    c.op = op_table[which].name;
    if (op_table[which].opt_type != BO_NONE && otype == op_table[which].opt_type) c.opt = opts;
    snprintf(c.who, sizeof c.who, "operator %d (%s, output %s)", index, c.op, c.nm);
    /* Every output but the first must be unused (none of the supported ops has more). */
    if (c.nout > 1)
        return fail(L, MIEN_EUNSUPPORTED, "%s: %d outputs", c.who, c.nout);
    rc = op_table[which].fn(L, &c);
    if (!rc) rc = check_reader(L);
    return rc;
}

/* The one graph input: its shape from the file or the caller. */
static int graph_input(loader *L, int k, const int64_t *input_dims) {
    tval *v = &L->v[k];
    char nm[NAME_MAX_LEN + 16];
    tname(L, k, nm, sizeof nm);
    if (v->type != TT_FLOAT32)
        return fail(L, MIEN_EUNSUPPORTED, "input %s has type %s (float32 models only)", nm,
                    type_name(v->type));
    int nd, nds, rc;
    int64_t d[NN_MAX_DIMS], sig[NN_MAX_DIMS];
    if ((rc = read_shape(L, k, 0, &nd, d, nm)) || (rc = read_shape(L, k, 7, &nds, sig, nm)))
        return rc;
    for (int i = 0; i < nds && nds == nd; i++)
        if (sig[i] < 0) d[i] = i == 0 ? 1 : -1; /* unknown in the file */
    L->batch_file = nd > 0 && d[0] > 0 ? d[0] : 1;
    if (input_dims) {
        if (nd != 4)
            return fail(L, MIEN_EUNSUPPORTED, "input %s has rank %d; an image input needs 4", nm, nd);
        if (d[3] > 0 && input_dims[3] != d[3])
            return fail(L, MIEN_EINVAL, "input %s has %lld channels, not %lld", nm, (long long)d[3],
                        (long long)input_dims[3]);
        for (int i = 0; i < 4; i++) d[i] = input_dims[i];
    }
    for (int i = 0; i < nd; i++) {
        if (d[i] < 1)
            return fail(L, MIEN_EINVAL, "input %s: dimension %d is not fixed in the file; give "
                        "the input size", nm, i);
        if (d[i] > 65536)
            return fail(L, MIEN_ETOOBIG, "input %s: too large: dimension %d is %lld (at most 65536)", nm, i,
                        (long long)d[i]);
    }
    if ((rc = check_shape(L, nm, nd, d))) return rc;
    L->batch_now = nd > 0 ? d[0] : 1;
    int t = nn_add_input(L->g, nm, nd, d, L->e);
    if (t < 0) return L->e->status;
    v->state = V_TENSOR;
    v->t = t;
    return MIEN_OK;
}

/* Graph outputs under the file's names. */
static int graph_outputs(loader *L, const fb_vec *outs) {
    if (outs->n < 1 || outs->n > 16)
        return fail(L, MIEN_EUNSUPPORTED, "the model has %u outputs (1 to 16 supported)", outs->n);
    for (uint32_t j = 0; j < outs->n; j++) {
        int64_t k = fb_vec_int(&L->r, outs, j);
        int rc = check_reader(L);
        if (rc) return rc;
        char nm[NAME_MAX_LEN + 16];
        if (k < 0 || k >= L->n_t) return fail(L, MIEN_EFORMAT, "output %u: bad tensor index", j);
        tname(L, (int)k, nm, sizeof nm);
        tval *v = &L->v[k];
        if (v->state != V_TENSOR)
            return fail(L, v->state == V_NONE ? MIEN_EFORMAT : MIEN_EUNSUPPORTED,
                        "output %s is %s", nm, v->state == V_NONE ? "never computed" : "a constant");
        int t = v->t;
        int taken = L->g->t[t].producer < 0 || L->g->nodes[L->g->t[t].producer].op == NN_OP_INPUT;
        for (int i = 0; i < L->g->n_outputs; i++) taken |= L->g->outputs[i] == t;
        if (taken) { /* the input itself, or an output already: a copy */
            t = nn_add_reshape(L->g, nm, t, L->g->t[t].ndim, L->g->t[t].dims, L->e);
            if (t < 0) return L->e->status;
        } else if (strcmp(L->g->t[t].name, nm)) {
            char *s = strdup(nm);
            if (!s) return fail(L, MIEN_ENOMEM, "out of memory");
            free(L->g->t[t].name);
            L->g->t[t].name = s;
        }
        if ((rc = nn_mark_output(L->g, t, L->e))) return rc;
    }
    return MIEN_OK;
}

/* The nodes nn_graph_optimize will fold (all inputs constant, in chains) allocate their
 * outputs when loading: they count as constants. (Activations are bounded when the graph is
 * run: NN_MAX_ARENA_BYTES, exec.c.) */
static int check_folding(loader *L) {
    const nn_graph *g = L->g;
    unsigned char *is_c = calloc((size_t)(g->n_t ? g->n_t : 1), 1);
    if (!is_c) return fail(L, MIEN_ENOMEM, "out of memory");
    for (int t = 0; t < g->n_t; t++) is_c[t] = g->t[t].data != NULL;
    int rc = MIEN_OK;
    for (int i = 0; i < g->n_nodes && !rc; i++) {
        const nn_node *n = &g->nodes[i];
        int all = n->op != NN_OP_INPUT;
        for (int k = 0; k < n->n_in && all; k++) all = is_c[n->in[k]];
        if (all) {
            is_c[n->out] = 1;
            rc = charge(L, g->t[n->out].n, sizeof(float));
        }
    }
    free(is_c);
    return rc;
}

static int build(loader *L, const int64_t *input_dims) {
    fb_reader *r = &L->r;
    if (!fb_has_identifier(r, "TFL3"))
        return fail(L, MIEN_EFORMAT, "not a TFLite model (no TFL3 identifier)");
    fb_table model = fb_root(r);
    int rc = check_reader(L);
    if (rc) return rc;
    uint64_t version = fb_uint(r, &model, 0, 4, 0);
    if (version != 3)
        return fail(L, MIEN_EUNSUPPORTED, "schema version %llu (3 supported)", (unsigned long long)version);
    fb_vec subgraphs = fb_vec_field(r, &model, 2, 4);
    L->buffers = fb_vec_field(r, &model, 4, 4);
    if ((rc = check_reader(L))) return rc;
    if (subgraphs.n < 1) return fail(L, MIEN_EFORMAT, "the model has no subgraph");
    fb_table sg = fb_vec_table(r, &subgraphs, 0);
    fb_vec tensors = fb_vec_field(r, &sg, 0, 4), ins = fb_vec_field(r, &sg, 1, 4);
    fb_vec outs = fb_vec_field(r, &sg, 2, 4), ops = fb_vec_field(r, &sg, 3, 4);
    if ((rc = check_reader(L))) return rc;
    if (tensors.n > NN_TFLITE_MAX_TENSORS)
        return fail(L, MIEN_ETOOBIG, "too large: %u tensors (at most %d, NN_TFLITE_MAX_TENSORS)", tensors.n,
                    NN_TFLITE_MAX_TENSORS);
    if (ops.n > NN_TFLITE_MAX_OPS)
        return fail(L, MIEN_ETOOBIG, "too large: %u operators (at most %d, NN_TFLITE_MAX_OPS)", ops.n,
                    NN_TFLITE_MAX_OPS);
    L->n_t = (int)tensors.n;
    L->v = calloc((size_t)(L->n_t ? L->n_t : 1), sizeof *L->v);
    if (!L->v) return fail(L, MIEN_ENOMEM, "out of memory");
    for (int k = 0; k < L->n_t; k++) {
        tval *v = &L->v[k];
        v->t = -1;
        v->tab = fb_vec_table(r, &tensors, (uint32_t)k);
        v->type = (int)fb_int(r, &v->tab, 1, 1, TT_FLOAT32);
        if ((rc = check_reader(L))) return rc;
        if (!v->tab.ok) return fail(L, MIEN_EFORMAT, "tensor %d is missing", k);
        /* A constant: a buffer other than the empty sentinel with data in it. */
        uint32_t bi = (uint32_t)fb_uint(r, &v->tab, 2, 4, 0);
        if (bi >= L->buffers.n && bi != 0)
            return fail(L, MIEN_EFORMAT, "tensor %d: buffer %u out of range (%u buffers)", k, bi,
                        L->buffers.n);
        if (bi != 0) {
            fb_table b = fb_vec_table(r, &L->buffers, bi);
            fb_vec data = fb_vec_field(r, &b, 0, 1);
            uint64_t off = fb_uint(r, &b, 1, 8, 0);
            if ((rc = check_reader(L))) return rc;
            if (data.n > 0 || off > 1) {
                v->state = V_PENDING;
                char nm[NAME_MAX_LEN + 16];
                if ((rc = read_shape(L, k, 0, &v->ndim, v->dims, tname(L, k, nm, sizeof nm))))
                    return rc;
            }
        }
    }
    if (ins.n != 1)
        return fail(L, MIEN_EUNSUPPORTED, "the model has %u inputs (one supported)", ins.n);
    int64_t in0 = fb_vec_int(r, &ins, 0);
    if ((rc = check_reader(L))) return rc;
    if (in0 < 0 || in0 >= L->n_t || L->v[in0].state != V_NONE)
        return fail(L, MIEN_EFORMAT, "the input is not a tensor of the graph");
    if ((rc = graph_input(L, (int)in0, input_dims))) return rc;
    int *codes = NULL;
    uint32_t n_codes = 0;
    if ((rc = read_codes(L, &model, &codes, &n_codes))) {
        free(codes);
        return rc;
    }
    for (uint32_t k = 0; k < ops.n && !rc; k++) {
        fb_table op = fb_vec_table(r, &ops, k);
        rc = check_reader(L);
        if (!rc) rc = load_op(L, &op, codes, n_codes, (int)k);
    }
    free(codes);
    if (rc) return rc;
    if ((rc = graph_outputs(L, &outs)) || (rc = check_folding(L))) return rc;
    return nn_graph_optimize(L->g, L->e);
}

int nn_tflite_load_buffer(const void *data, size_t len, const char *name,
                          const int64_t *input_dims, nn_graph **out, mien_err *e) {
    *out = NULL;
    if (len > NN_TFLITE_MAX_FILE)
        return mien_err_set(e, MIEN_ETOOBIG, "%s: too large: more than %zu bytes (NN_TFLITE_MAX_FILE)", name,
                            (size_t)NN_TFLITE_MAX_FILE);
    loader L = {.e = e};
    fb_init(&L.r, data, len);
    L.const_cap = NN_TFLITE_MAX_CONST_BYTES;
    if (len < (NN_TFLITE_MAX_CONST_BYTES - NN_TFLITE_CONST_SLACK) / NN_TFLITE_CONST_PER_BYTE)
        L.const_cap = NN_TFLITE_CONST_PER_BYTE * len + NN_TFLITE_CONST_SLACK;
    const char *base = strrchr(name, '/');
    L.g = nn_graph_new(base ? base + 1 : name);
    int rc = L.g ? build(&L, input_dims) : mien_err_set(e, MIEN_ENOMEM, "out of memory");
    if (rc && !strstr(e->msg, name)) mien_err_prefix(e, "%s", name);
    for (int k = 0; k < L.n_t; k++) free_val(&L.v[k]);
    free(L.v);
    if (rc) {
        nn_graph_free(L.g);
        return rc;
    }
    *out = L.g;
    return MIEN_OK;
}

int nn_tflite_load(const char *path, const int64_t *input_dims, nn_graph **out, mien_err *e) {
    *out = NULL;
    unsigned char *data;
    size_t len;
    int rc = mien_read_file(path, NN_TFLITE_MAX_FILE, &data, &len, e);
    if (rc) return rc;
    rc = nn_tflite_load_buffer(data, len, path, input_dims, out, e);
    free(data);
    return rc;
}
