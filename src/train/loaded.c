/* Networks loaded from model files (ONNX, TFJS graph models) as training nets, and their
 * checkpoints (which nn/ckpt_load.c turns back into inference graphs).
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = nn_ckpt_load_base(o->path, o->batch, o->side, &g, e);
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
            const nn_ckpt_tensor *t = nn_ckpt_find(o->init, (*out)->g->t[p->t].name);
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

int tr_export_loaded(const tr_net *net, const tr_loaded_opts *o, nn_ckpt *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    uint64_t h;
    int64_t size;
    int rc = nn_ckpt_file_hash(o->path, &h, &size, e);
    for (int i = 0; i < net->n_p && !rc; i++) {
        const nn_tensor *t = &net->g->t[net->p[i].t];
        rc = nn_ckpt_add(out, t->name, t->ndim, t->dims, net->p[i].w, e);
    }
    char v[64];
    /* The base's path as given, and its last two components (a models folder's "vendor/file"),
     * tried under the models folder when the path no longer leads to it. */
    const char *rel = o->path + strlen(o->path);
    for (int slashes = 0; rel > o->path; rel--)
        if (rel[-1] == '/' && ++slashes == 2) break;
    if (!rc) rc = nn_ckpt_set_meta(out, "arch", "loaded", e);
    if (!rc) rc = nn_ckpt_set_meta(out, "graph", nn_ckpt_base_format(o->path), e);
    if (!rc) rc = nn_ckpt_set_meta(out, "base", o->path, e);
    if (!rc) rc = nn_ckpt_set_meta(out, "base_rel", rel, e);
    snprintf(v, sizeof v, "%016llx", (unsigned long long)h);
    if (!rc) rc = nn_ckpt_set_meta(out, "base_fnv1a", v, e);
    snprintf(v, sizeof v, "%lld", (long long)size);
    if (!rc) rc = nn_ckpt_set_meta(out, "base_bytes", v, e);
    snprintf(v, sizeof v, "%d", o->side);
    if (!rc) rc = nn_ckpt_set_meta(out, "input", v, e);
    const nn_tensor *ty = &net->g->t[net->g->outputs[0]];
    snprintf(v, sizeof v, "%lld", (long long)ty->dims[ty->ndim - 1]);
    if (!rc) rc = nn_ckpt_set_meta(out, "dim", v, e);
    snprintf(v, sizeof v, "%.9g", (double)o->mean);
    if (!rc) rc = nn_ckpt_set_meta(out, "mean", v, e);
    snprintf(v, sizeof v, "%.9g", (double)o->scale);
    if (!rc) rc = nn_ckpt_set_meta(out, "scale", v, e);
    if (!rc) rc = nn_ckpt_set_meta(out, "crop", "arcface", e);
    if (rc) nn_ckpt_free(out);
    return rc;
}
