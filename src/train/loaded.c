/* Networks loaded from model files (ONNX, TFJS graph models) as training nets, and their
 * checkpoints.
 *
 * The file is loaded for the training batch exactly as for inference (the loaders fold batch
 * norm into the convolutions and fuse PReLU), and the constants the trainer can differentiate
 * become its parameters: the weights, biases and PReLU slopes of every convolution, depthwise
 * convolution and fully connected layer, and standalone PReLU slopes. Batch norm stays folded:
 * the file no longer holds its statistics, and re-inserting it would have to choose them (the
 * fine-tuning batch's would move every layer at once, toward a few hundred photos, where a
 * frozen one, as fine-tuning with small batches usually keeps it, moves nothing). Folded, a
 * convolution's bias is the batch norm's shift and its weights carry the scale, so the same
 * functions stay reachable; the network stays one that every backend runs as it is.
 *
 * A checkpoint of such a net names its base file (path, size and a 64-bit FNV-1a hash of its
 * bytes, to refuse another file of the same name) and holds every parameter by the graph's
 * tensor name; loading it loads the base again and replaces those constants. */
#include "train/train.h"

#include "core/err.h"
#include "nn/onnx.h"
#include "nn/tfjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int tr_is_model_file(const char *path) {
    return ends_with(path, ".onnx") || ends_with(path, ".json");
}

int tr_file_hash(const char *path, uint64_t *hash, int64_t *size, mien_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return mien_err_set(e, MIEN_EIO, "cannot open %s", path);
    uint64_t h = 0xcbf29ce484222325ULL;
    int64_t n = 0;
    unsigned char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++) h = (h ^ buf[i]) * 0x100000001b3ULL;
        n += (int64_t)got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) return mien_err_set(e, MIEN_EIO, "cannot read %s", path);
    *hash = h;
    *size = n;
    return MIEN_OK;
}

/* The model at path for a batch of `batch` side x side images, its one output (batch, D). */
static int load_base(const char *path, int batch, int side, nn_graph **out, mien_err *e) {
    *out = NULL;
    nn_graph *g = NULL;
    int rc;
    if (ends_with(path, ".onnx")) {
        const int64_t dims[4] = {batch, 3, side, side};
        rc = nn_onnx_load(path, dims, &g, e);
    } else {
        const int64_t dims[4] = {batch, side, side, 3};
        rc = nn_tfjs_load(path, dims, NULL, 0, &g, e);
    }
    if (rc) return rc;
    if (g->n_outputs != 1 || g->n_inputs != 1) {
        nn_graph_free(g);
        return mien_err_set(e, MIEN_EFORMAT, "%s: not an embedder (one input, one output)", path);
    }
    const nn_tensor *t = &g->t[g->outputs[0]];
    if (t->n % batch || t->n / batch < 2) {
        nn_graph_free(g);
        return mien_err_set(e, MIEN_EFORMAT, "%s: output of %lld values is not %d embeddings", path,
                            (long long)t->n, batch);
    }
    /* Exporters often write the final reshape with a batch of 1; the values are in batch
     * order either way, so view them as (batch, D). */
    const int64_t d[2] = {batch, t->n / batch};
    if (t->ndim != 2 || t->dims[0] != batch) {
        int y = nn_add_reshape(g, "embedding", g->outputs[0], 2, d, e);
        if (y < 0) {
            nn_graph_free(g);
            return MIEN_EFORMAT;
        }
        g->outputs[0] = y;
    }
    *out = g;
    return MIEN_OK;
}

/* Every constant the trainer differentiates: conv/dw/fc weights (decay), biases, PReLU slopes;
 * with last_layers > 0 only those of the last that many convolution/FC layers (the earlier ones
 * stay as they are, and the backward pass stops above them). */
static int collect_params(const nn_graph *g, int last_layers, int **params, int **decay, int *n,
                          mien_err *e) {
    int *p = malloc((size_t)(g->n_t ? g->n_t : 1) * sizeof *p), *d = malloc((size_t)(g->n_t ? g->n_t : 1) * sizeof *d);
    unsigned char *seen = calloc((size_t)(g->n_t ? g->n_t : 1), 1);
    if (!p || !d || !seen) {
        free(p);
        free(d);
        free(seen);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    int k = 0, layers = 0, first = 0;
    for (int i = 0; i < g->n_nodes; i++)
        layers += g->nodes[i].op == NN_OP_CONV2D || g->nodes[i].op == NN_OP_DWCONV2D || g->nodes[i].op == NN_OP_FC;
    for (int i = 0, seen_layers = 0; i < g->n_nodes && last_layers > 0; i++) {
        const nn_op op = g->nodes[i].op;
        if (op != NN_OP_CONV2D && op != NN_OP_DWCONV2D && op != NN_OP_FC) continue;
        if (seen_layers++ == layers - last_layers) {
            first = i;
            break;
        }
    }
    for (int i = first; i < g->n_nodes; i++) {
        const nn_node *nd = &g->nodes[i];
        int cand[3] = {-1, -1, -1}, dec[3] = {0, 0, 0};
        if (nd->op == NN_OP_CONV2D || nd->op == NN_OP_DWCONV2D || nd->op == NN_OP_FC) {
            cand[0] = nd->in[1];
            dec[0] = 1;
            const int extra = nd->n_in - 2 - (nd->act == NN_ACT_PRELU);
            if (extra > 0) cand[1] = nd->in[2];
            if (nd->act == NN_ACT_PRELU) cand[2] = nd->in[nd->n_in - 1];
        } else if (nd->op == NN_OP_PRELU) {
            cand[0] = nd->in[1];
        }
        for (int q = 0; q < 3; q++) {
            const int t = cand[q];
            if (t < 0 || !g->t[t].data || seen[t]) continue;
            seen[t] = 1;
            p[k] = t;
            d[k++] = dec[q];
        }
    }
    free(seen);
    if (!k) {
        free(p);
        free(d);
        return mien_err_set(e, MIEN_EUNSUPPORTED, "the network has no layer to train");
    }
    *params = p;
    *decay = d;
    *n = k;
    return MIEN_OK;
}

int tr_build_loaded(const tr_loaded_opts *o, tr_net **out, mien_err *e) {
    *out = NULL;
    nn_graph *g;
    int rc = load_base(o->path, o->batch, o->side, &g, e);
    if (rc) return mien_err_prefix(e, "%s", o->path);
    int y = g->outputs[0];
    if (o->normalize) {
        y = nn_add_l2norm(g, "embedding_norm", y, 1e-10f, e);
        if (y < 0) {
            nn_graph_free(g);
            return MIEN_EFORMAT;
        }
        g->outputs[0] = y;
    }
    int *params = NULL, *decay = NULL, n = 0;
    if ((rc = collect_params(g, o->last_layers, &params, &decay, &n, e))) {
        nn_graph_free(g);
        return rc;
    }
    for (int i = 0; i < n && !rc; i++) /* checkpoints find them by name */
        if (nn_find_tensor(g, g->t[params[i]].name) != params[i])
            rc = mien_err_set(e, MIEN_EUNSUPPORTED, "%s: two tensors are called %s", o->path, g->t[params[i]].name);
    if (rc) {
        nn_graph_free(g);
    } else {
        tr_net_opts no = {.threads = o->threads, .reference = o->reference};
        rc = tr_net_create(g, params, decay, n, &no, out, e);
    }
    free(params);
    free(decay);
    if (!rc && o->init) {
        /* Weights of an earlier checkpoint of the same base, by name. */
        for (int i = 0; i < (*out)->n_p; i++) {
            tr_param *p = &(*out)->p[i];
            const tr_tensor *t = tr_tensors_find(o->init, (*out)->g->t[p->t].name);
            if (!t) continue;
            if (t->n != p->n) {
                tr_net_free(*out);
                *out = NULL;
                return mien_err_set(e, MIEN_EFORMAT, "checkpoint tensor %s has %lld values, the network %lld",
                                    t->name, (long long)t->n, (long long)p->n);
            }
            memcpy(p->w, t->data, (size_t)p->n * sizeof(float));
        }
    }
    return rc;
}

int tr_export_loaded(const tr_net *net, const tr_loaded_opts *o, tr_tensors *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    uint64_t h;
    int64_t size;
    int rc = tr_file_hash(o->path, &h, &size, e);
    for (int i = 0; i < net->n_p && !rc; i++) {
        const nn_tensor *t = &net->g->t[net->p[i].t];
        rc = tr_tensors_add(out, t->name, t->ndim, t->dims, net->p[i].w, e);
    }
    char v[64];
    /* The base's path as given, and its last two components (a models folder's "vendor/file"),
     * tried under the models folder when the path no longer leads to it. */
    const char *rel = o->path + strlen(o->path);
    for (int slashes = 0; rel > o->path; rel--)
        if (rel[-1] == '/' && ++slashes == 2) break;
    if (!rc) rc = tr_tensors_set_meta(out, "arch", "loaded", e);
    if (!rc) rc = tr_tensors_set_meta(out, "graph", ends_with(o->path, ".onnx") ? "onnx" : "tfjs", e);
    if (!rc) rc = tr_tensors_set_meta(out, "base", o->path, e);
    if (!rc) rc = tr_tensors_set_meta(out, "base_rel", rel, e);
    snprintf(v, sizeof v, "%016llx", (unsigned long long)h);
    if (!rc) rc = tr_tensors_set_meta(out, "base_fnv1a", v, e);
    snprintf(v, sizeof v, "%lld", (long long)size);
    if (!rc) rc = tr_tensors_set_meta(out, "base_bytes", v, e);
    snprintf(v, sizeof v, "%d", o->side);
    if (!rc) rc = tr_tensors_set_meta(out, "input", v, e);
    const nn_tensor *ty = &net->g->t[net->g->outputs[0]];
    snprintf(v, sizeof v, "%lld", (long long)ty->dims[ty->ndim - 1]);
    if (!rc) rc = tr_tensors_set_meta(out, "dim", v, e);
    snprintf(v, sizeof v, "%.9g", (double)o->mean);
    if (!rc) rc = tr_tensors_set_meta(out, "mean", v, e);
    snprintf(v, sizeof v, "%.9g", (double)o->scale);
    if (!rc) rc = tr_tensors_set_meta(out, "scale", v, e);
    if (!rc) rc = tr_tensors_set_meta(out, "crop", "arcface", e);
    if (rc) tr_tensors_free(out);
    return rc;
}

/* The base file of a loaded-net checkpoint: its path as saved, else under models_dir. */
static int find_base(const tr_tensors *ck, const char *models_dir, char *path, size_t cap, mien_err *e) {
    const char *base = tr_tensors_meta(ck, "base"), *rel = tr_tensors_meta(ck, "base_rel");
    const char *fnv = tr_tensors_meta(ck, "base_fnv1a"), *bytes = tr_tensors_meta(ck, "base_bytes");
    if (!base || !fnv || !bytes) return mien_err_set(e, MIEN_EFORMAT, "checkpoint names no base model");
    const char *tries[2] = {base, rel};
    for (int i = 0; i < 2; i++) {
        if (!tries[i] || !*tries[i]) continue;
        if (i == 0) snprintf(path, cap, "%s", tries[i]);
        else if (models_dir) snprintf(path, cap, "%s/%s", models_dir, tries[i]);
        else continue;
        uint64_t h;
        int64_t size;
        mien_err e2 = {0};
        if (tr_file_hash(path, &h, &size, &e2)) continue;
        char v[32];
        snprintf(v, sizeof v, "%016llx", (unsigned long long)h);
        if (strcmp(v, fnv) || size != strtoll(bytes, NULL, 10))
            return mien_err_set(e, MIEN_EFORMAT, "%s is not the base model the checkpoint was trained from "
                                                 "(size or hash differ)", path);
        return MIEN_OK;
    }
    return mien_err_set(e, MIEN_ENOTFOUND, "base model %s not found (nor %s under %s)", base, rel ? rel : "?",
                        models_dir ? models_dir : "the models folder");
}

int tr_build_inference_loaded(const tr_tensors *ck, const char *models_dir, nn_graph **out, mien_err *e) {
    *out = NULL;
    char path[4096];
    int rc = find_base(ck, models_dir, path, sizeof path, e);
    if (rc) return rc;
    const char *in = tr_tensors_meta(ck, "input");
    const int side = in ? atoi(in) : 0;
    if (side < 8 || side > 4096) return mien_err_set(e, MIEN_EFORMAT, "checkpoint: bad input size");
    nn_graph *g;
    if ((rc = load_base(path, 1, side, &g, e))) return mien_err_prefix(e, "%s", path);
    for (int i = 0; i < ck->n && !rc; i++) {
        const tr_tensor *t = &ck->v[i];
        const int id = nn_find_tensor(g, t->name);
        if (id < 0 || !g->t[id].data || g->t[id].n != t->n)
            rc = mien_err_set(e, MIEN_EFORMAT, "checkpoint tensor %s does not match %s", t->name, path);
        else
            memcpy((float *)g->t[id].data, t->data, (size_t)t->n * sizeof(float)); /* graph-owned */
    }
    if (rc) nn_graph_free(g);
    else *out = g;
    return rc;
}
