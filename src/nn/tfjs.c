/* TensorFlow.js loader: weight manifests and graph models.
 *
 * A graph model's model.json holds a TensorFlow GraphDef in JSON (modelTopology.node[]: name,
 * op, input[], attr{}) and a weightsManifest; the .bin shards hold the weights back to back
 * in manifest order. Every Const node's value is the manifest weight of the same name.
 *
 * Shapes are static here: the graph is built for one input shape, so TF's shape arithmetic
 * (Shape, StridedSlice, Pack, ... on int32 vectors) is evaluated while loading and only
 * float tensor ops become graph nodes. */
#include "nn/tfjs.h"

#include "core/half.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TFJS_MAX_JSON (64u << 20)   /* model.json */
#define TFJS_MAX_BIN (1024u << 20)  /* all shards of one model */

/* ==== Small helpers ==== */

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    char *d = malloc(n + 1);
    if (!d) return NULL;
    if (slash) memcpy(d, path, n);
    else d[0] = '.';
    d[n] = '\0';
    return d;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decode base64 (TFJS stores string attributes that way) into buf, NUL-terminated. */
static void b64decode(const char *s, char *buf, size_t cap) {
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *s && *s != '='; s++) {
        int v = b64val((unsigned char)*s);
        if (v < 0) break;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 < cap) buf[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    buf[o] = '\0';
}

/* ==== Weights ==== */

void nn_weights_free(nn_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->w[i].name);
        free(w->w[i].f);
        free(w->w[i].i);
    }
    free(w->w);
    w->w = NULL;
    w->n = 0;
}

const nn_weight *nn_weights_find(const nn_weights *w, const char *name) {
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->w[i].name, name) == 0) return &w->w[i];
    return NULL;
}

static int json_int64(const cJSON *v, int64_t *out) {
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble) || fabs(v->valuedouble) > 9e15) return 0;
        *out = (int64_t)v->valuedouble;
        return 1;
    }
    if (cJSON_IsString(v)) {
        char *end;
        long long x = strtoll(v->valuestring, &end, 10);
        if (end == v->valuestring || *end) return 0;
        *out = x;
        return 1;
    }
    return 0;
}

/* Read all shards of one manifest group, concatenated. */
static int read_group(const cJSON *paths, const char *dir, unsigned char **data, size_t *len,
                      mien_err *e) {
    *data = NULL;
    *len = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, paths) {
        if (!cJSON_IsString(p) || strstr(p->valuestring, "..") || p->valuestring[0] == '/') {
            free(*data);
            return mien_err_set(e, MIEN_EFORMAT, "weights manifest: bad shard path");
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, p->valuestring);
        unsigned char *part;
        size_t n;
        int rc = mien_read_file(path, TFJS_MAX_BIN, &part, &n, e);
        if (rc) {
            free(*data);
            return rc;
        }
        if (*len + n > TFJS_MAX_BIN) {
            free(part);
            free(*data);
            return mien_err_set(e, MIEN_ETOOBIG, "weights larger than %u bytes", TFJS_MAX_BIN);
        }
        unsigned char *nd = realloc(*data, *len + n + 1);
        if (!nd) {
            free(part);
            free(*data);
            return mien_err_set(e, MIEN_ENOMEM, "out of memory reading weights");
        }
        memcpy(nd + *len, part, n);
        free(part);
        *data = nd;
        *len += n;
    }
    return MIEN_OK;
}

/* Decode one weight starting at data[*pos]; advances *pos. */
static int decode_weight(const cJSON *spec, const unsigned char *data, size_t len, size_t *pos,
                         nn_weight *w, mien_err *e) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(spec, "name");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(spec, "shape");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(spec, "dtype");
    const cJSON *quant = cJSON_GetObjectItemCaseSensitive(spec, "quantization");
    if (!cJSON_IsString(name) || !cJSON_IsArray(shape) || !cJSON_IsString(dtype))
        return mien_err_set(e, MIEN_EFORMAT, "weights manifest: entry without name/shape/dtype");
    w->name = strdup(name->valuestring);
    if (!w->name) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int nd = cJSON_GetArraySize(shape);
    if (nd > NN_MAX_DIMS)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "weight %s has %d dims", w->name, nd);
    w->ndim = nd;
    w->n = 1;
    for (int i = 0; i < nd; i++) {
        int64_t d;
        if (!json_int64(cJSON_GetArrayItem(shape, i), &d) || d < 0 ||
            (d && w->n > ((int64_t)1 << 31) / d))
            return mien_err_set(e, MIEN_EFORMAT, "weight %s: bad shape", w->name);
        w->dims[i] = d;
        w->n *= d;
    }
    const char *qtype = NULL;
    double qmin = 0, qscale = 1;
    if (cJSON_IsObject(quant)) {
        const cJSON *qd = cJSON_GetObjectItemCaseSensitive(quant, "dtype");
        if (!cJSON_IsString(qd))
            return mien_err_set(e, MIEN_EFORMAT, "weight %s: quantization without dtype", w->name);
        qtype = qd->valuestring;
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(quant, "min");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(quant, "scale");
        if (strcmp(qtype, "float16") != 0) {
            if (!cJSON_IsNumber(mn) || !cJSON_IsNumber(sc))
                return mien_err_set(e, MIEN_EFORMAT, "weight %s: quantization without min/scale",
                                    w->name);
            qmin = mn->valuedouble;
            qscale = sc->valuedouble;
        }
    }
    size_t esize;
    const char *dt = dtype->valuestring;
    int is_int = strcmp(dt, "int32") == 0;
    if (!is_int && strcmp(dt, "float32") != 0)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "weight %s: dtype %s not supported", w->name, dt);
    if (!qtype) esize = 4;
    else if (!strcmp(qtype, "uint8")) esize = 1;
    else if (!strcmp(qtype, "uint16") || !strcmp(qtype, "float16")) esize = 2;
    else
        return mien_err_set(e, MIEN_EUNSUPPORTED, "weight %s: quantization %s not supported",
                            w->name, qtype);
    size_t bytes = (size_t)w->n * esize;
    if (*pos > len || len - *pos < bytes)
        return mien_err_set(e, MIEN_EFORMAT,
                            "weights file too short: %s needs %zu bytes at offset %zu of %zu",
                            w->name, bytes, *pos, len);
    const unsigned char *p = data + *pos;
    size_t cnt = (size_t)(w->n ? w->n : 1);
    if (is_int) {
        w->i = malloc(cnt * sizeof *w->i);
        if (!w->i) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        for (int64_t k = 0; k < w->n; k++) {
            if (!qtype) {
                memcpy(&w->i[k], p + 4 * k, 4);
            } else {
                unsigned q = esize == 1 ? p[k] : (unsigned)(p[2 * k] | p[2 * k + 1] << 8);
                w->i[k] = (int32_t)lround(qmin + qscale * q);
            }
        }
    } else {
        w->f = malloc(cnt * sizeof *w->f);
        if (!w->f) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
        for (int64_t k = 0; k < w->n; k++) {
            if (!qtype) {
                memcpy(&w->f[k], p + 4 * k, 4);
            } else if (!strcmp(qtype, "float16")) {
                w->f[k] = mien_half_to_float((uint16_t)(p[2 * k] | p[2 * k + 1] << 8));
            } else {
                unsigned q = esize == 1 ? p[k] : (unsigned)(p[2 * k] | p[2 * k + 1] << 8);
                w->f[k] = (float)(qmin + qscale * q);
            }
        }
    }
    *pos += bytes;
    return MIEN_OK;
}

int nn_weights_load_manifest(const void *manifest, const char *dir, nn_weights *out,
                             mien_err *e) {
    const cJSON *groups = manifest;
    memset(out, 0, sizeof *out);
    if (!cJSON_IsArray(groups))
        return mien_err_set(e, MIEN_EFORMAT, "weights manifest is not an array");
    int total = 0;
    const cJSON *grp;
    cJSON_ArrayForEach(grp, groups) {
        total += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(grp, "weights"));
    }
    out->w = calloc((size_t)(total ? total : 1), sizeof *out->w);
    if (!out->w) return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    cJSON_ArrayForEach(grp, groups) {
        const cJSON *paths = cJSON_GetObjectItemCaseSensitive(grp, "paths");
        const cJSON *weights = cJSON_GetObjectItemCaseSensitive(grp, "weights");
        if (!cJSON_IsArray(paths) || !cJSON_IsArray(weights)) {
            nn_weights_free(out);
            return mien_err_set(e, MIEN_EFORMAT, "weights manifest group without paths/weights");
        }
        unsigned char *data;
        size_t len, pos = 0;
        int rc = read_group(paths, dir, &data, &len, e);
        if (rc) {
            nn_weights_free(out);
            return rc;
        }
        const cJSON *spec;
        cJSON_ArrayForEach(spec, weights) {
            rc = decode_weight(spec, data, len, &pos, &out->w[out->n], e);
            out->n++;
            if (rc) {
                free(data);
                nn_weights_free(out);
                return rc;
            }
        }
        free(data);
        if (pos != len) {
            nn_weights_free(out);
            return mien_err_set(e, MIEN_EFORMAT,
                                "weights file has %zu bytes, the manifest describes %zu", len, pos);
        }
    }
    return MIEN_OK;
}

static int parse_json_file(const char *path, cJSON **out, mien_err *e) {
    unsigned char *text;
    size_t len;
    int rc = mien_read_file(path, TFJS_MAX_JSON, &text, &len, e);
    if (rc) return rc;
    *out = cJSON_ParseWithLength((const char *)text, len);
    free(text);
    if (!*out) return mien_err_set(e, MIEN_EFORMAT, "%s: not valid JSON", path);
    return MIEN_OK;
}

int nn_weights_load_file(const char *path, nn_weights *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    int rc = parse_json_file(path, &root, e);
    if (rc) return rc;
    char *dir = dir_of(path);
    if (!dir) {
        cJSON_Delete(root);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    rc = nn_weights_load_manifest(root, dir, out, e);
    if (rc) mien_err_prefix(e, "%s", path);
    free(dir);
    cJSON_Delete(root);
    return rc;
}

/* ==== Graph model ==== */

/* What a TF node's name stands for while loading. */
typedef enum val_kind { VAL_NONE, VAL_TENSOR, VAL_INTS } val_kind;

#define MAX_INTS 64

typedef struct tf_val {
    const char *name;        /* node name (points into the JSON) */
    val_kind kind;
    int t;                   /* VAL_TENSOR: graph tensor id */
    int n_ints;              /* VAL_INTS: a constant int vector (or scalar, is_scalar) */
    int is_scalar;
    int64_t ints[MAX_INTS];
} tf_val;

typedef struct loader {
    nn_graph *g;
    nn_weights w;
    const cJSON *nodes;
    tf_val *vals;            /* (n_vals) one per node, same order */
    int n_vals;
    int *consumed;           /* (n_vals) */
    const int64_t *input_dims;
    mien_err *e;
} loader;

static tf_val *find_val(loader *L, const char *ref) {
    /* "name", "name:0", or "^name" (control dependency, ignored by callers). */
    char buf[1024];
    size_t n = strlen(ref);
    if (n >= sizeof buf) return NULL;
    memcpy(buf, ref, n + 1);
    char *colon = strrchr(buf, ':');
    if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
        if (strcmp(colon + 1, "0") != 0) return NULL; /* multi-output ops are not used */
        *colon = '\0';
    }
    for (int i = 0; i < L->n_vals; i++)
        if (L->vals[i].name && strcmp(L->vals[i].name, buf) == 0) return &L->vals[i];
    return NULL;
}

static const cJSON *attr(const cJSON *node, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(node, "attr"), name);
}

/* Integer list attribute: {"list": {"i": ["1","2"]}}. Returns the count, -1 if absent. */
static int attr_ints(const cJSON *node, const char *name, int64_t *out, int cap) {
    const cJSON *a = attr(node, name);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(a, "list");
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(l, "i");
    if (!cJSON_IsArray(i)) return l ? 0 : -1;
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, i) {
        if (n >= cap || !json_int64(v, &out[n])) return -1;
        n++;
    }
    return n;
}

static int64_t attr_int(const cJSON *node, const char *name, int64_t def) {
    const cJSON *a = attr(node, name);
    int64_t v;
    return json_int64(cJSON_GetObjectItemCaseSensitive(a, "i"), &v) ? v : def;
}

static int attr_bool(const cJSON *node, const char *name, int def) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(attr(node, name), "b");
    return cJSON_IsBool(b) ? cJSON_IsTrue(b) : def;
}

static float attr_float(const cJSON *node, const char *name, float def) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(attr(node, name), "f");
    return cJSON_IsNumber(f) ? (float)f->valuedouble : def;
}

static void attr_string(const cJSON *node, const char *name, char *buf, size_t cap) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(attr(node, name), "s");
    buf[0] = '\0';
    if (cJSON_IsString(s)) b64decode(s->valuestring, buf, cap);
}

/* The fused_ops list of _FusedConv2D / _FusedMatMul, decoded. */
static int attr_strings(const cJSON *node, const char *name, char out[][32], int cap) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(attr(node, name), "list");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(l, "s");
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, s) {
        if (n < cap && cJSON_IsString(v)) b64decode(v->valuestring, out[n++], 32);
    }
    return n;
}

/* Inputs of a node, control dependencies dropped. */
static int node_inputs(loader *L, const cJSON *node, tf_val **ins, int cap, const char *nm) {
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(node, "input");
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, in) {
        if (!cJSON_IsString(v)) continue;
        if (v->valuestring[0] == '^') continue;
        if (n >= cap) {
            mien_err_set(L->e, MIEN_EUNSUPPORTED, "%s: too many inputs", nm);
            return -1;
        }
        tf_val *x = find_val(L, v->valuestring);
        if (!x || x->kind == VAL_NONE) {
            mien_err_set(L->e, MIEN_EFORMAT, "%s: input %s is not defined before use", nm,
                         v->valuestring);
            return -1;
        }
        L->consumed[x - L->vals] = 1;
        ins[n++] = x;
    }
    return n;
}

static int need_tensor(loader *L, tf_val *v, const char *nm) {
    if (v->kind == VAL_TENSOR) return v->t;
    /* An int vector used as float data (rare: e.g. a Mul by a constant): make a constant. */
    float f[MAX_INTS];
    for (int i = 0; i < v->n_ints; i++) f[i] = (float)v->ints[i];
    int64_t d = v->n_ints;
    int t = nn_add_const(L->g, v->name, v->is_scalar ? 0 : 1, &d, f, L->e);
    if (t >= 0) {
        v->kind = VAL_TENSOR;
        v->t = t;
    }
    return t;
}

static int need_ints(loader *L, const tf_val *v, const char *nm, const char *what) {
    if (v->kind == VAL_INTS) return 1;
    /* A small float constant can serve as ints (e.g. a reshape shape stored as float). */
    const nn_tensor *t = &L->g->t[v->t];
    if (t->data && t->n <= MAX_INTS) return 1;
    mien_err_set(L->e, MIEN_EUNSUPPORTED, "%s: %s must be constant", nm, what);
    return 0;
}

/* The integers of a constant (ints or a small float tensor) into out (room for cap): their
 * count, or -1 with the error set when there are more than cap or a float is not an integer
 * a shape could hold. */
static int ints_of(loader *L, const tf_val *v, int64_t *out, int cap, const char *nm,
                   const char *what) {
    if (v->kind == VAL_INTS) {
        if (v->n_ints > cap)
            return mien_err_set(L->e, MIEN_EFORMAT, "%s: %s has %d values, at most %d", nm, what,
                                v->n_ints, cap), -1;
        memcpy(out, v->ints, (size_t)v->n_ints * sizeof *out);
        return v->n_ints;
    }
    const nn_tensor *t = &L->g->t[v->t];
    if (t->n > cap)
        return mien_err_set(L->e, MIEN_EFORMAT, "%s: %s has %lld values, at most %d", nm, what,
                            (long long)t->n, cap), -1;
    for (int64_t i = 0; i < t->n; i++) {
        const float f = t->data[i];
        if (!(f >= -2147483648.f && f <= 2147483647.f) || f != floorf(f))
            return mien_err_set(L->e, MIEN_EFORMAT, "%s: %s holds %g, not an integer", nm, what,
                                (double)f), -1;
        out[i] = (int64_t)f;
    }
    return (int)t->n;
}

static int padding_of(const cJSON *node, nn_conv_params *p, const char *nm, mien_err *e) {
    char pad[32];
    attr_string(node, "padding", pad, sizeof pad);
    if (!strcmp(pad, "SAME")) {
        p->padding = NN_PAD_SAME;
    } else if (!strcmp(pad, "VALID") || !pad[0]) {
        p->padding = NN_PAD_VALID;
    } else if (!strcmp(pad, "EXPLICIT")) {
        int64_t ep[8];
        if (attr_ints(node, "explicit_paddings", ep, 8) != 8)
            return mien_err_set(e, MIEN_EFORMAT, "%s: bad explicit_paddings", nm);
        p->padding = NN_PAD_EXPLICIT;
        for (int i = 0; i < 4; i++) p->pad[i] = (int)ep[2 + i];
    } else {
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: padding %s", nm, pad);
    }
    char fmt[16];
    attr_string(node, "data_format", fmt, sizeof fmt);
    if (fmt[0] && strcmp(fmt, "NHWC") != 0)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: data format %s (only NHWC)", nm, fmt);
    return MIEN_OK;
}

static int conv_params_of(const cJSON *node, nn_conv_params *p, const char *nm, mien_err *e) {
    nn_conv_params_default(p);
    int64_t s[4], d[4];
    if (attr_ints(node, "strides", s, 4) == 4) {
        p->stride[0] = (int)s[1];
        p->stride[1] = (int)s[2];
    }
    if (attr_ints(node, "dilations", d, 4) == 4) {
        p->dilation[0] = (int)d[1];
        p->dilation[1] = (int)d[2];
    }
    if (p->stride[0] < 1 || p->stride[1] < 1 || p->dilation[0] < 1 || p->dilation[1] < 1 ||
        p->stride[0] > 64 || p->stride[1] > 64 || p->dilation[0] > 64 || p->dilation[1] > 64)
        return mien_err_set(e, MIEN_EFORMAT, "%s: bad strides or dilations", nm);
    return padding_of(node, p, nm, e);
}

/* Fused ops of _FusedConv2D / FusedDepthwiseConv2dNative / _FusedMatMul: BiasAdd then an
 * optional activation. Sets *has_bias and the activation; alpha input index for Prelu. */
static int fused_of(const cJSON *node, int *has_bias, nn_act *act, float *alpha,
                    const char *nm, mien_err *e) {
    char ops[4][32];
    int n = attr_strings(node, "fused_ops", ops, 4);
    *has_bias = 0;
    *act = NN_ACT_NONE;
    for (int i = 0; i < n; i++) {
        if (!strcmp(ops[i], "BiasAdd")) *has_bias = 1;
        else if (!strcmp(ops[i], "Relu")) *act = NN_ACT_RELU;
        else if (!strcmp(ops[i], "Relu6")) *act = NN_ACT_RELU6;
        else if (!strcmp(ops[i], "Prelu")) *act = NN_ACT_PRELU;
        else if (!strcmp(ops[i], "LeakyRelu")) {
            *act = NN_ACT_LEAKY;
            *alpha = attr_float(node, "leakyrelu_alpha", 0.2f);
        } else if (!strcmp(ops[i], "Sigmoid")) *act = NN_ACT_SIGMOID;
        else
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: fused op %s not supported", nm, ops[i]);
    }
    return MIEN_OK;
}

static int set_tensor(tf_val *v, int t) {
    if (t < 0) return -1;
    v->kind = VAL_TENSOR;
    v->t = t;
    return 0;
}

/* Resolve TF's StridedSlice masks into begin/end/step per axis of a tensor of dims d. */
static int strided_slice_spec(const cJSON *node, int nd, const int64_t *d, int nb,
                              const int64_t *b, const int64_t *en, const int64_t *st,
                              int64_t *ob, int64_t *oe, int64_t *os, unsigned *shrink,
                              const char *nm, mien_err *e) {
    int64_t bm = attr_int(node, "begin_mask", 0), em = attr_int(node, "end_mask", 0);
    int64_t sm = attr_int(node, "shrink_axis_mask", 0);
    if (attr_int(node, "ellipsis_mask", 0) || attr_int(node, "new_axis_mask", 0))
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: StridedSlice with ellipsis/new axis", nm);
    *shrink = 0;
    for (int i = 0; i < nd; i++) {
        int64_t dim = d[i];
        if (i >= nb) {
            ob[i] = 0, oe[i] = dim, os[i] = 1;
            continue;
        }
        int64_t s = st[i];
        if (s == 0) return mien_err_set(e, MIEN_EFORMAT, "%s: zero stride", nm);
        int64_t lo = s > 0 ? 0 : -1, hi = s > 0 ? dim : dim - 1;
        int64_t bb = b[i], ee = en[i];
        if (bb < 0) bb += dim;
        if (ee < 0) ee += dim;
        if (bm & (1 << i)) bb = s > 0 ? 0 : dim - 1;
        if (em & (1 << i)) ee = s > 0 ? dim : -1;
        if (sm & (1 << i)) {
            ee = bb + 1;
            s = 1;
            *shrink |= 1u << i;
            lo = 0, hi = dim;
        }
        bb = bb < lo ? lo : bb > hi ? hi : bb;
        ee = ee < lo ? lo : ee > hi ? hi : ee;
        if (s > 0 && ee < bb) ee = bb;
        if (s < 0 && ee > bb) ee = bb;
        ob[i] = bb, oe[i] = ee, os[i] = s;
    }
    return MIEN_OK;
}

/* ==== The TensorFlow ops: one handler each, found by name in tf_ops below ====
 * A handler gets the node (its attributes), its value v (named v->name: a graph tensor or an
 * int vector of shape arithmetic), the values of its inputs in[0..nin-1] (at least the
 * table's minimum; none for the ops that read no input) and the table's nn_op. */
typedef int (*tf_handler)(loader *, const cJSON *, tf_val *, const char *, tf_val **, int,
                          nn_op);

#define TF_LOCALS                                                                             \
    mien_err *e = L->e;                                                                       \
    nn_graph *g = L->g;                                                                       \
    const char *nm = v->name;                                                                 \
    (void)e, (void)g, (void)nm
#define NEED(k)                                                                               \
    do {                                                                                      \
        if (nin < (k)) return mien_err_set(e, MIEN_EFORMAT, "%s (%s): needs %d inputs", nm, op, k); \
    } while (0)
#define T(k) need_tensor(L, in[k], nm)

static int tf_const(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                    int nin, nn_op nop) {
    TF_LOCALS;
    const nn_weight *w = nn_weights_find(&L->w, nm);
    if (!w) return mien_err_set(e, MIEN_EFORMAT, "constant %s has no weights", nm);
    if (w->i) {
        if (w->n > MAX_INTS)
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: int32 constant of %lld values", nm,
                                (long long)w->n);
        v->kind = VAL_INTS;
        v->n_ints = (int)w->n;
        v->is_scalar = w->ndim == 0;
        for (int64_t k = 0; k < w->n; k++) v->ints[k] = w->i[k];
        return MIEN_OK;
    }
    return set_tensor(v, nn_add_const_ref(g, nm, w->ndim, w->dims, w->f, e)) ? e->status : 0;
}

static int tf_placeholder(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                          int nin, nn_op nop) {
    TF_LOCALS;
    int64_t dims[NN_MAX_DIMS];
    int nd = 0;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(attr(node, "shape"), "shape");
    const cJSON *dim;
    cJSON_ArrayForEach(dim, cJSON_GetObjectItemCaseSensitive(shape, "dim")) {
        int64_t s;
        if (nd >= NN_MAX_DIMS || !json_int64(cJSON_GetObjectItemCaseSensitive(dim, "size"), &s))
            return mien_err_set(e, MIEN_EFORMAT, "%s: bad placeholder shape", nm);
        dims[nd++] = s < 0 ? 1 : s;
    }
    if (L->input_dims) {
        if (nd != 4) return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: input is not 4-D", nm);
        memcpy(dims, L->input_dims, 4 * sizeof *dims);
    }
    return set_tensor(v, nn_add_input(g, nm, nd, dims, e)) ? e->status : 0;
}

static int tf_identity(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                       int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    *v = (tf_val){.name = v->name, .kind = in[0]->kind, .t = in[0]->t,
                  .n_ints = in[0]->n_ints, .is_scalar = in[0]->is_scalar};
    memcpy(v->ints, in[0]->ints, sizeof v->ints);
    return MIEN_OK;
}

static int tf_conv(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                   int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int depthwise = strstr(op, "Depthwise") != NULL;
    nn_conv_params p;
    int rc = conv_params_of(node, &p, nm, e);
    if (rc) return rc;
    int has_bias = 0;
    if (op[0] == '_' || !strncmp(op, "Fused", 5)) {
        if ((rc = fused_of(node, &has_bias, &p.act, &p.act_alpha, nm, e))) return rc;
    }
    int need = 2 + has_bias + (p.act == NN_ACT_PRELU);
    NEED(need);
    int x = T(0), w = T(1), b = has_bias ? T(2) : -1;
    int a = p.act == NN_ACT_PRELU ? T(2 + has_bias) : -1;
    if (x < 0 || w < 0 || (has_bias && b < 0) || (p.act == NN_ACT_PRELU && a < 0))
        return e->status;
    int t = depthwise ? nn_add_dwconv2d(g, nm, x, w, b, a, &p, e)
                      : nn_add_conv2d(g, nm, x, w, b, a, &p, e);
    return set_tensor(v, t) ? e->status : 0;
}

static int tf_matmul(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                     int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int has_bias = 0;
    nn_act act = NN_ACT_NONE;
    float alpha = 0;
    int rc;
    if (op[0] == '_' && (rc = fused_of(node, &has_bias, &act, &alpha, nm, e))) return rc;
    NEED(2 + has_bias + (act == NN_ACT_PRELU));
    if (attr_bool(node, "transpose_a", 0))
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: MatMul with transpose_a", nm);
    int x = T(0), w = T(1);
    if (x < 0 || w < 0) return e->status;
    if (!g->t[w].data || g->t[w].ndim != 2)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: MatMul needs constant 2-D weights", nm);
    if (attr_bool(node, "transpose_b", 0)) {
        int perm[2] = {1, 0};
        char tn[300];
        snprintf(tn, sizeof tn, "%s/transposed_b", nm);
        w = nn_add_transpose(g, tn, w, perm, e);
        if (w < 0) return e->status;
    }
    int b = has_bias ? T(2) : -1, a = act == NN_ACT_PRELU ? T(2 + has_bias) : -1;
    int t = nn_add_fc(g, nm, x, w, b, a, act, e);
    if (t >= 0 && act == NN_ACT_LEAKY) g->nodes[g->t[t].producer].act_alpha = alpha;
    return set_tensor(v, t) ? e->status : 0;
}

/* Add, Sub, Mul, ... with broadcasting: the table gives the op. */
static int tf_binary(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                     int nin, nn_op nop) {
    TF_LOCALS;
    int a = T(0), b = T(1);
    if (a < 0 || b < 0) return e->status;
    return set_tensor(v, nn_add_binary(g, nop, nm, a, b, e)) ? e->status : 0;
}

static int tf_unary(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                    int nin, nn_op nop) {
    TF_LOCALS;
    int x = T(0);
    if (x < 0) return e->status;
    return set_tensor(v, nn_add_unary(g, nop, nm, x, e)) ? e->status : 0;
}

static int tf_leaky_relu(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                         int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    int x = T(0);
    if (x < 0) return e->status;
    return set_tensor(v, nn_add_leaky_relu(g, nm, x, attr_float(node, "alpha", 0.2f), e))
               ? e->status : 0;
}

static int tf_prelu(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                    int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int x = T(0), a = T(1);
    if (x < 0 || a < 0) return e->status;
    return set_tensor(v, nn_add_prelu(g, nm, x, a, e)) ? e->status : 0;
}

static int tf_softmax(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                      int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    int x = T(0);
    if (x < 0) return e->status;
    return set_tensor(v, nn_add_softmax(g, nm, x, e)) ? e->status : 0;
}

static int tf_reduce(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                     int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    if (in[0]->kind != VAL_TENSOR || !need_ints(L, in[1], nm, "reduction axes"))
        return e->status ? e->status
                         : mien_err_set(e, MIEN_EUNSUPPORTED, "%s: reduction of a constant", nm);
    int x = in[0]->t, nd = g->t[x].ndim;
    int64_t ax[MAX_INTS];
    int nax = ints_of(L, in[1], ax, MAX_INTS, nm, "reduction axes");
    if (nax < 0) return e->status;
    unsigned mask = 0;
    for (int k = 0; k < nax; k++) {
        int64_t a = ax[k] < 0 ? ax[k] + nd : ax[k];
        if (a < 0 || a >= nd) return mien_err_set(e, MIEN_EFORMAT, "%s: bad axis", nm);
        mask |= 1u << a;
    }
    nn_op rop = op[1] == 'u' ? NN_OP_SUM : op[1] == 'e' ? NN_OP_MEAN : NN_OP_REDUCE_MAX;
    int keep = attr_bool(node, "keep_dims", 0) || attr_bool(node, "keepdims", 0);
    return set_tensor(v, nn_add_reduce(g, rop, nm, x, mask, keep, e)) ? e->status : 0;
}

static int tf_pool(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                   int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    int x = T(0);
    if (x < 0) return e->status;
    nn_conv_params p;
    int rc = conv_params_of(node, &p, nm, e);
    if (rc) return rc;
    int64_t k[4];
    if (attr_ints(node, "ksize", k, 4) != 4 || k[1] < 1 || k[2] < 1 || k[1] > 1024 || k[2] > 1024)
        return mien_err_set(e, MIEN_EFORMAT, "%s: bad ksize", nm);
    int kern[2] = {(int)k[1], (int)k[2]};
    nn_op pop = op[0] == 'M' ? NN_OP_MAXPOOL : NN_OP_AVGPOOL;
    return set_tensor(v, nn_add_pool(g, pop, nm, x, kern, &p, e)) ? e->status : 0;
}

static int tf_pad(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                  int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int x = T(0);
    if (x < 0 || !need_ints(L, in[1], nm, "paddings")) return e->status;
    int64_t pads[MAX_INTS];
    int np = ints_of(L, in[1], pads, MAX_INTS, nm, "paddings");
    if (np < 0) return e->status;
    if (np != 2 * g->t[x].ndim) return mien_err_set(e, MIEN_EFORMAT, "%s: bad paddings", nm);
    float value = 0;
    if (nin > 2) {
        int c = T(2);
        if (c < 0 || !g->t[c].data || g->t[c].n != 1)
            return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: non-constant pad value", nm);
        value = g->t[c].data[0];
    }
    return set_tensor(v, nn_add_pad(g, nm, x, pads, value, e)) ? e->status : 0;
}

static int tf_concat(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                     int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    tf_val *axv = in[nin - 1];
    if (!need_ints(L, axv, nm, "axis")) return e->status;
    int64_t axis;
    if (ints_of(L, axv, &axis, 1, nm, "axis") != 1)
        return e->status ? e->status : mien_err_set(e, MIEN_EFORMAT, "%s: no axis", nm);
    int all_ints = 1;
    for (int k = 0; k < nin - 1; k++) all_ints &= in[k]->kind == VAL_INTS;
    if (all_ints) { /* shape arithmetic: concatenate int vectors */
        v->kind = VAL_INTS;
        v->n_ints = 0;
        for (int k = 0; k < nin - 1; k++) {
            if (v->n_ints + in[k]->n_ints > MAX_INTS)
                return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: int vector too long", nm);
            memcpy(v->ints + v->n_ints, in[k]->ints, (size_t)in[k]->n_ints * sizeof(int64_t));
            v->n_ints += in[k]->n_ints;
        }
        return MIEN_OK;
    }
    int xs[64];
    for (int k = 0; k < nin - 1; k++)
        if ((xs[k] = T(k)) < 0) return e->status;
    return set_tensor(v, nn_add_concat(g, nm, xs, nin - 1, (int)axis, e)) ? e->status : 0;
}

static int tf_reshape(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                      int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int x = T(0);
    if (x < 0 || !need_ints(L, in[1], nm, "shape")) return e->status;
    int64_t shape[MAX_INTS];
    int nd = ints_of(L, in[1], shape, MAX_INTS, nm, "shape");
    if (nd < 0) return e->status;
    if (nd > NN_MAX_DIMS) return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: rank %d", nm, nd);
    for (int k = 0; k < nd; k++)
        if (shape[k] == 0) return mien_err_set(e, MIEN_EFORMAT, "%s: zero dim", nm);
    return set_tensor(v, nn_add_reshape(g, nm, x, nd, shape, e)) ? e->status : 0;
}

static int tf_squeeze_expand(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                             int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    int x = T(0);
    if (x < 0) return e->status;
    const nn_tensor *tx = &g->t[x];
    int64_t dims[NN_MAX_DIMS];
    int nd = 0;
    if (op[0] == 'S') {
        int64_t sq[NN_MAX_DIMS];
        int nsq = attr_ints(node, "squeeze_dims", sq, NN_MAX_DIMS);
        if (nsq < 0) nsq = attr_ints(node, "axis", sq, NN_MAX_DIMS);
        for (int d = 0; d < tx->ndim; d++) {
            int drop = 0;
            if (nsq <= 0) drop = tx->dims[d] == 1;
            for (int k = 0; k < nsq; k++)
                if ((sq[k] < 0 ? sq[k] + tx->ndim : sq[k]) == d) drop = 1;
            if (drop && tx->dims[d] != 1)
                return mien_err_set(e, MIEN_EFORMAT, "%s: squeezing a dim that is not 1", nm);
            if (!drop) dims[nd++] = tx->dims[d];
        }
    } else {
        NEED(2);
        if (!need_ints(L, in[1], nm, "axis")) return e->status;
        int64_t ax;
        if (ints_of(L, in[1], &ax, 1, nm, "axis") != 1)
            return e->status ? e->status : mien_err_set(e, MIEN_EFORMAT, "%s: no axis", nm);
        if (ax < 0) ax += tx->ndim + 1;
        if (ax < 0 || ax > tx->ndim || tx->ndim >= NN_MAX_DIMS)
            return mien_err_set(e, MIEN_EFORMAT, "%s: bad axis", nm);
        for (int d = 0; d <= tx->ndim; d++) {
            if (d == ax) dims[nd++] = 1;
            if (d < tx->ndim) dims[nd++] = tx->dims[d];
        }
    }
    return set_tensor(v, nn_add_reshape(g, nm, x, nd, dims, e)) ? e->status : 0;
}

static int tf_shape(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                    int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    if (in[0]->kind != VAL_TENSOR) {
        v->kind = VAL_INTS;
        v->n_ints = 1;
        v->ints[0] = in[0]->n_ints;
        return MIEN_OK;
    }
    const nn_tensor *tx = &g->t[in[0]->t];
    v->kind = VAL_INTS;
    v->n_ints = tx->ndim;
    for (int d = 0; d < tx->ndim; d++) v->ints[d] = tx->dims[d];
    return MIEN_OK;
}

static int tf_pack(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                   int nin, nn_op nop) {
    TF_LOCALS;
    int all_ints = 1;
    for (int k = 0; k < nin; k++) all_ints &= in[k]->kind == VAL_INTS && in[k]->is_scalar;
    if (!all_ints || nin > MAX_INTS)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "%s: Pack of tensors not supported", nm);
    v->kind = VAL_INTS;
    v->n_ints = nin;
    for (int k = 0; k < nin; k++) v->ints[k] = in[k]->ints[0];
    return MIEN_OK;
}

static int tf_strided_slice(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                            int nin, nn_op nop) {
    TF_LOCALS;
    NEED(4);
    for (int k = 1; k < 4; k++)
        if (!need_ints(L, in[k], nm, "slice bounds")) return e->status;
    int64_t b[MAX_INTS], en[MAX_INTS], st[MAX_INTS], ob[NN_MAX_DIMS], oe[NN_MAX_DIMS],
        os[NN_MAX_DIMS];
    int nb = ints_of(L, in[1], b, MAX_INTS, nm, "begin");
    if (nb < 0 || ints_of(L, in[2], en, MAX_INTS, nm, "end") != nb ||
        ints_of(L, in[3], st, MAX_INTS, nm, "strides") != nb)
        return e->status ? e->status : mien_err_set(e, MIEN_EFORMAT, "%s: slice bounds differ in length", nm);
    unsigned shrink;
    if (in[0]->kind == VAL_INTS) { /* shape arithmetic on a 1-D int vector */
        int64_t d = in[0]->n_ints;
        int rc = strided_slice_spec(node, 1, &d, nb, b, en, st, ob, oe, os, &shrink, nm, e);
        if (rc) return rc;
        int64_t tmp[MAX_INTS];
        int n = 0;
        for (int64_t i = ob[0]; os[0] > 0 ? i < oe[0] : i > oe[0]; i += os[0])
            tmp[n++] = in[0]->ints[i];
        v->kind = VAL_INTS;
        v->n_ints = n;
        v->is_scalar = (shrink & 1) != 0;
        memcpy(v->ints, tmp, (size_t)n * sizeof *tmp);
        return MIEN_OK;
    }
    const nn_tensor *tx = &g->t[in[0]->t];
    if (nb > tx->ndim) return mien_err_set(e, MIEN_EFORMAT, "%s: too many slice axes", nm);
    int rc = strided_slice_spec(node, tx->ndim, tx->dims, nb, b, en, st, ob, oe, os, &shrink,
                                nm, e);
    if (rc) return rc;
    int t = nn_add_slice(g, nm, in[0]->t, ob, oe, os, e);
    if (t < 0) return e->status;
    if (shrink) {
        int64_t dims[NN_MAX_DIMS];
        int nd = 0;
        for (int d = 0; d < g->t[t].ndim; d++)
            if (!(shrink & (1u << d))) dims[nd++] = g->t[t].dims[d];
        char rn[300];
        snprintf(rn, sizeof rn, "%s/shrink", nm);
        t = nn_add_reshape(g, rn, t, nd, dims, e);
    }
    return set_tensor(v, t) ? e->status : 0;
}

static int tf_transpose(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                        int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int x = T(0);
    if (x < 0 || !need_ints(L, in[1], nm, "perm")) return e->status;
    int64_t p64[MAX_INTS];
    int np = ints_of(L, in[1], p64, MAX_INTS, nm, "perm");
    if (np < 0) return e->status;
    if (np != g->t[x].ndim) return mien_err_set(e, MIEN_EFORMAT, "%s: bad perm", nm);
    int perm[NN_MAX_DIMS];
    for (int k = 0; k < np; k++) perm[k] = (int)p64[k];
    return set_tensor(v, nn_add_transpose(g, nm, x, perm, e)) ? e->status : 0;
}

static int tf_resize(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                     int nin, nn_op nop) {
    TF_LOCALS;
    NEED(2);
    int x = T(0);
    if (x < 0 || !need_ints(L, in[1], nm, "size")) return e->status;
    int64_t sz[MAX_INTS];
    const int nsz = ints_of(L, in[1], sz, MAX_INTS, nm, "size");
    if (nsz < 0) return e->status;
    if (nsz != 2) return mien_err_set(e, MIEN_EFORMAT, "%s: bad size", nm);
    if (sz[0] < 1 || sz[1] < 1 || sz[0] > 65536 || sz[1] > 65536)
        return mien_err_set(e, MIEN_EFORMAT, "%s: bad size", nm);
    nn_op rop = op[6] == 'B' ? NN_OP_RESIZE_BILINEAR : NN_OP_RESIZE_NEAREST;
    return set_tensor(v, nn_add_resize(g, rop, nm, x, (int)sz[0], (int)sz[1],
                                       attr_bool(node, "align_corners", 0),
                                       attr_bool(node, "half_pixel_centers", 0), e))
               ? e->status : 0;
}

static int tf_depth_to_space(loader *L, const cJSON *node, tf_val *v, const char *op, tf_val **in,
                             int nin, nn_op nop) {
    TF_LOCALS;
    NEED(1);
    int x = T(0);
    if (x < 0) return e->status;
    int64_t bs = attr_int(node, "block_size", 0);
    if (bs < 1 || bs > 64) return mien_err_set(e, MIEN_EFORMAT, "%s: bad block size", nm);
    return set_tensor(v, nn_add_depth_to_space(g, nm, x, (int)bs, e)) ? e->status : 0;
}

#undef NEED
#undef T
#undef TF_LOCALS

/* Every TensorFlow op the loader reads: name, handler, fewest inputs (-1: the op reads none,
 * its inputs are not resolved), and the graph op for the handlers shared by several. */
static const struct tf_op {
    const char *name;
    tf_handler fn;
    int min_inputs;
    nn_op op;
} tf_ops[] = {
    {"Const",                       tf_const,            -1, NN_OP_INPUT},
    {"Placeholder",                 tf_placeholder,      -1, NN_OP_INPUT},
    {"Identity",                    tf_identity,          1, NN_OP_INPUT},
    {"StopGradient",                tf_identity,          1, NN_OP_INPUT},
    {"Snapshot",                    tf_identity,          1, NN_OP_INPUT},
    {"_FusedConv2D",                tf_conv,              2, NN_OP_INPUT},
    {"Conv2D",                      tf_conv,              2, NN_OP_INPUT},
    {"DepthwiseConv2dNative",       tf_conv,              2, NN_OP_INPUT},
    {"FusedDepthwiseConv2dNative",  tf_conv,              2, NN_OP_INPUT},
    {"MatMul",                      tf_matmul,            2, NN_OP_INPUT},
    {"_FusedMatMul",                tf_matmul,            2, NN_OP_INPUT},
    {"Add",                         tf_binary,            2, NN_OP_ADD},
    {"AddV2",                       tf_binary,            2, NN_OP_ADD},
    {"BiasAdd",                     tf_binary,            2, NN_OP_ADD},
    {"Sub",                         tf_binary,            2, NN_OP_SUB},
    {"Mul",                         tf_binary,            2, NN_OP_MUL},
    {"RealDiv",                     tf_binary,            2, NN_OP_DIV},
    {"Div",                         tf_binary,            2, NN_OP_DIV},
    {"Maximum",                     tf_binary,            2, NN_OP_MAXIMUM},
    {"Minimum",                     tf_binary,            2, NN_OP_MINIMUM},
    {"Abs",                         tf_unary,             1, NN_OP_ABS},
    {"Neg",                         tf_unary,             1, NN_OP_NEG},
    {"Square",                      tf_unary,             1, NN_OP_SQUARE},
    {"Sqrt",                        tf_unary,             1, NN_OP_SQRT},
    {"Rsqrt",                       tf_unary,             1, NN_OP_RSQRT},
    {"Exp",                         tf_unary,             1, NN_OP_EXP},
    {"Relu",                        tf_unary,             1, NN_OP_RELU},
    {"Relu6",                       tf_unary,             1, NN_OP_RELU6},
    {"Sigmoid",                     tf_unary,             1, NN_OP_SIGMOID},
    {"Tanh",                        tf_unary,             1, NN_OP_TANH},
    {"LeakyRelu",                   tf_leaky_relu,        1, NN_OP_INPUT},
    {"Prelu",                       tf_prelu,             2, NN_OP_INPUT},
    {"Softmax",                     tf_softmax,           1, NN_OP_INPUT},
    {"Sum",                         tf_reduce,            2, NN_OP_INPUT},
    {"Mean",                        tf_reduce,            2, NN_OP_INPUT},
    {"Max",                         tf_reduce,            2, NN_OP_INPUT},
    {"MaxPool",                     tf_pool,              1, NN_OP_INPUT},
    {"AvgPool",                     tf_pool,              1, NN_OP_INPUT},
    {"Pad",                         tf_pad,               2, NN_OP_INPUT},
    {"PadV2",                       tf_pad,               2, NN_OP_INPUT},
    {"ConcatV2",                    tf_concat,            2, NN_OP_INPUT},
    {"Reshape",                     tf_reshape,           2, NN_OP_INPUT},
    {"Squeeze",                     tf_squeeze_expand,    1, NN_OP_INPUT},
    {"ExpandDims",                  tf_squeeze_expand,    1, NN_OP_INPUT},
    {"Shape",                       tf_shape,             1, NN_OP_INPUT},
    {"Pack",                        tf_pack,              0, NN_OP_INPUT},
    {"StridedSlice",                tf_strided_slice,     4, NN_OP_INPUT},
    {"Transpose",                   tf_transpose,         2, NN_OP_INPUT},
    {"ResizeBilinear",              tf_resize,            2, NN_OP_INPUT},
    {"ResizeNearestNeighbor",       tf_resize,            2, NN_OP_INPUT},
    {"DepthToSpace",                tf_depth_to_space,    1, NN_OP_INPUT},
};

static int load_node(loader *L, const cJSON *node, tf_val *v) {
    mien_err *e = L->e;
    const cJSON *jop = cJSON_GetObjectItemCaseSensitive(node, "op");
    if (!cJSON_IsString(jop)) return mien_err_set(e, MIEN_EFORMAT, "%s: node without op", v->name);
    const char *op = jop->valuestring;
    const struct tf_op *d = NULL;
    for (size_t k = 0; k < sizeof tf_ops / sizeof tf_ops[0] && !d; k++)
        if (!strcmp(op, tf_ops[k].name)) d = &tf_ops[k];
    if (!d)
        return mien_err_set(e, MIEN_EUNSUPPORTED, "op %s (node %s) is not supported", op, v->name);
    tf_val *in[64];
    int nin = 0;
    if (d->min_inputs >= 0) {
        nin = node_inputs(L, node, in, 64, v->name);
        if (nin < 0) return e->status;
        if (nin < d->min_inputs)
            return mien_err_set(e, MIEN_EFORMAT, "%s (%s): needs %d inputs", v->name, op,
                                d->min_inputs);
    }
    return d->fn(L, node, v, op, in, nin, d->op);
}

/* The model's declared outputs: signature.outputs, or userDefinedMetadata.signature.outputs
 * (an object whose values carry "name"), NULL if none. */
static const cJSON *signature_outputs(const cJSON *root) {
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(root, "signature");
    if (!sig)
        sig = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "userDefinedMetadata"), "signature");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(sig, "outputs");
    return cJSON_IsObject(outs) && cJSON_GetArraySize(outs) > 0 ? outs : NULL;
}

int nn_tfjs_load(const char *path, const int64_t *input_dims, const char *const *output_names,
                 int n_output_names, nn_graph **out, mien_err *e) {
    *out = NULL;
    cJSON *root;
    int rc = parse_json_file(path, &root, e);
    if (rc) return rc;
    loader L = {.input_dims = input_dims, .e = e};
    char *dir = dir_of(path);
    const cJSON *topo = cJSON_GetObjectItemCaseSensitive(root, "modelTopology");
    L.nodes = cJSON_GetObjectItemCaseSensitive(topo, "node");
    const cJSON *manifest = cJSON_GetObjectItemCaseSensitive(root, "weightsManifest");
    if (!dir) {
        rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
        goto done;
    }
    if (!cJSON_IsArray(L.nodes) || !manifest) {
        rc = mien_err_set(e, MIEN_EFORMAT, "not a TFJS graph model (no modelTopology.node)");
        goto done;
    }
    if ((rc = nn_weights_load_manifest(manifest, dir, &L.w, e))) {
        mien_err_prefix(e, "%s", path);
        goto done;
    }
    /* The graph takes over the dequantized float weights. */
    const char *base = strrchr(path, '/');
    L.g = nn_graph_new(base ? base + 1 : path);
    if (!L.g) {
        rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < L.w.n; i++) {
        if (L.w.w[i].f && !nn_graph_own(L.g, L.w.w[i].f)) {
            L.w.w[i].f = NULL;
            rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
            goto done;
        }
        /* Still readable through L.w until the graph is freed; stop nn_weights_free. */
    }
    L.n_vals = cJSON_GetArraySize(L.nodes);
    L.vals = calloc((size_t)(L.n_vals ? L.n_vals : 1), sizeof *L.vals);
    L.consumed = calloc((size_t)(L.n_vals ? L.n_vals : 1), sizeof *L.consumed);
    if (!L.vals || !L.consumed) {
        rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
        goto done;
    }
    {
        int i = 0;
        const cJSON *node;
        cJSON_ArrayForEach(node, L.nodes) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(node, "name");
            if (!cJSON_IsString(nm)) {
                rc = mien_err_set(e, MIEN_EFORMAT, "node %d has no name", i);
                goto done;
            }
            L.vals[i++].name = nm->valuestring;
        }
    }
    /* TFJS node lists are not always topologically sorted: load nodes whose inputs are
     * ready, sweeping until nothing changes. */
    {
        int remaining = L.n_vals, progress = 1;
        int *done_flags = calloc((size_t)(L.n_vals ? L.n_vals : 1), sizeof *done_flags);
        if (!done_flags) {
            rc = mien_err_set(e, MIEN_ENOMEM, "out of memory");
            goto done;
        }
        while (remaining && progress) {
            progress = 0;
            int i = 0;
            const cJSON *node;
            cJSON_ArrayForEach(node, L.nodes) {
                if (done_flags[i]) {
                    i++;
                    continue;
                }
                int ready = 1;
                const cJSON *inp;
                cJSON_ArrayForEach(inp, cJSON_GetObjectItemCaseSensitive(node, "input")) {
                    if (!cJSON_IsString(inp)) continue;
                    const char *r = inp->valuestring + (inp->valuestring[0] == '^');
                    tf_val *src = find_val(&L, r);
                    if (src && src->kind == VAL_NONE) ready = 0;
                }
                if (ready) {
                    if ((rc = load_node(&L, node, &L.vals[i]))) {
                        free(done_flags);
                        mien_err_prefix(e, "%s", path);
                        goto done;
                    }
                    done_flags[i] = 1;
                    remaining--;
                    progress = 1;
                }
                i++;
            }
        }
        free(done_flags);
        if (remaining) {
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: graph has a cycle or undefined inputs", path);
            goto done;
        }
    }
    /* Outputs. */
    if (output_names && n_output_names > 0) {
        for (int k = 0; k < n_output_names; k++) {
            tf_val *v = find_val(&L, output_names[k]);
            if (!v || v->kind != VAL_TENSOR) {
                rc = mien_err_set(e, MIEN_ENOTFOUND, "%s: no output named %s", path,
                                  output_names[k]);
                goto done;
            }
            if ((rc = nn_mark_output(L.g, v->t, e))) goto done;
        }
    } else if (signature_outputs(root)) {
        const cJSON *o;
        cJSON_ArrayForEach(o, signature_outputs(root)) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
            tf_val *v = cJSON_IsString(nm) ? find_val(&L, nm->valuestring) : NULL;
            if (!v || v->kind != VAL_TENSOR) {
                rc = mien_err_set(e, MIEN_EFORMAT, "%s: signature names an unknown output", path);
                goto done;
            }
            if ((rc = nn_mark_output(L.g, v->t, e))) goto done;
        }
    } else {
        for (int i = 0; i < L.n_vals; i++) {
            if (L.consumed[i] || L.vals[i].kind != VAL_TENSOR) continue;
            if (L.g->t[L.vals[i].t].data) continue;
            if ((rc = nn_mark_output(L.g, L.vals[i].t, e))) goto done;
        }
    }
    if (L.g->n_inputs != 1) {
        rc = mien_err_set(e, MIEN_EUNSUPPORTED, "%s: %d inputs (expected 1)", path, L.g->n_inputs);
        goto done;
    }
    if ((rc = nn_graph_optimize(L.g, e))) goto done;
    *out = L.g;
    L.g = NULL;
done:
    /* Float weight arrays now belong to the graph (or were freed with it). */
    for (int i = 0; i < L.w.n; i++) L.w.w[i].f = NULL;
    nn_weights_free(&L.w);
    nn_graph_free(L.g);
    free(L.vals);
    free(L.consumed);
    free(dir);
    cJSON_Delete(root);
    return rc;
}
