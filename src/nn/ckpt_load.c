/* Graphs from checkpoints: networks fine-tuned from a model file, and the embedder entry point
 * (either kind of checkpoint: a built-in architecture, ckpt_arch.c, or a loaded net).
 *
 * A loaded net's checkpoint (mien train --init MODEL, train/loaded.c) names its base file
 * (path, size and a 64-bit FNV-1a hash of its bytes, to refuse another file of the same name)
 * and holds every trained parameter by the graph's tensor name; loading it loads the base
 * again, exactly as for inference (the loaders fold batch norm into the convolutions and fuse
 * PReLU), and replaces those constants. */
#include "nn/ckpt.h"
#include "nn/tflite.h"

#include "nn/onnx.h"
#include "nn/tfjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int nn_ckpt_is_model_file(const char *path) {
    return ends_with(path, ".onnx") || ends_with(path, ".json") || ends_with(path, ".tflite");
}

const char *nn_ckpt_base_format(const char *path) {
    return ends_with(path, ".onnx") ? "onnx" : ends_with(path, ".tflite") ? "tflite" : "tfjs";
}

int nn_ckpt_file_hash(const char *path, uint64_t *hash, int64_t *size, mien_err *e) {
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

int nn_ckpt_load_base(const char *path, int batch, int side, nn_graph **out, mien_err *e) {
    *out = NULL;
    nn_graph *g = NULL;
    int rc;
    if (ends_with(path, ".onnx")) {
        const int64_t dims[4] = {batch, 3, side, side};
        rc = nn_onnx_load(path, dims, &g, e);
    } else if (ends_with(path, ".tflite")) {
        const int64_t dims[4] = {batch, side, side, 3};
        rc = nn_tflite_load(path, dims, &g, e);
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

/* The base file of a loaded-net checkpoint: its path as saved, else under models_dir. */
static int find_base(const nn_ckpt *ck, const char *models_dir, char *path, size_t cap, mien_err *e) {
    const char *base = nn_ckpt_meta(ck, "base"), *rel = nn_ckpt_meta(ck, "base_rel");
    const char *fnv = nn_ckpt_meta(ck, "base_fnv1a"), *bytes = nn_ckpt_meta(ck, "base_bytes");
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
        if (nn_ckpt_file_hash(path, &h, &size, &e2)) continue;
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

int nn_ckpt_build_loaded(const nn_ckpt *ck, const char *models_dir, nn_graph **out, mien_err *e) {
    *out = NULL;
    char path[4096];
    int rc = find_base(ck, models_dir, path, sizeof path, e);
    if (rc) return rc;
    const char *in = nn_ckpt_meta(ck, "input");
    const int side = in ? atoi(in) : 0;
    if (side < 8 || side > 4096) return mien_err_set(e, MIEN_EFORMAT, "checkpoint: bad input size");
    nn_graph *g;
    if ((rc = nn_ckpt_load_base(path, 1, side, &g, e))) return mien_err_prefix(e, "%s", path);
    for (int i = 0; i < ck->n && !rc; i++) {
        const nn_ckpt_tensor *t = &ck->v[i];
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

int nn_ckpt_load_embedder(const char *path, const char *models_dir, nn_graph **g,
                          nn_ckpt_embedder_info *info, mien_err *e) {
    *g = NULL;
    memset(info, 0, sizeof *info);
    nn_ckpt ck;
    int rc = nn_ckpt_load(path, &ck, e);
    if (rc) return rc;
    rc = nn_ckpt_meta(&ck, "graph") ? nn_ckpt_build_loaded(&ck, models_dir, g, e)
                                       : nn_ckpt_build_arch(&ck, g, e);
    if (!rc) {
        const char *v;
        info->size = (v = nn_ckpt_meta(&ck, "input")) ? atoi(v) : 112;
        const nn_graph *gr = *g;
        int64_t out_dim = gr->n_outputs > 0 && gr->t[gr->outputs[0]].ndim > 0
                              ? gr->t[gr->outputs[0]].dims[gr->t[gr->outputs[0]].ndim - 1]
                              : 0;
        info->dim = (v = nn_ckpt_meta(&ck, "dim")) ? atoi(v) : (int)out_dim;
        info->mean = (v = nn_ckpt_meta(&ck, "mean")) ? strtof(v, NULL) : 127.5f;
        info->scale = (v = nn_ckpt_meta(&ck, "scale")) ? strtof(v, NULL) : 1.f / 128.f;
        info->threshold = (v = nn_ckpt_meta(&ck, "threshold")) ? strtof(v, NULL) : 0.3f;
        snprintf(info->arch, sizeof info->arch, "%s", nn_ckpt_meta(&ck, "arch"));
        const char *crop = nn_ckpt_meta(&ck, "crop");
        /* The metadata must agree with the graph it describes (a hostile "dim" of 0 reached
         * the callers: found by the ckpt fuzz target). */
        if (crop && strcmp(crop, "arcface"))
            rc = mien_err_set(e, MIEN_EUNSUPPORTED, "%s: crop '%s' unknown", path, crop);
        else if (info->size < 16 || info->size > 1024)
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: input size %d out of range", path, info->size);
        else if (info->dim <= 0 || info->dim != out_dim)
            rc = mien_err_set(e, MIEN_EFORMAT, "%s: dim %d is not the graph's output (%lld)", path,
                              info->dim, (long long)out_dim);
        if (rc) {
            nn_graph_free(*g);
            *g = NULL;
        }
    }
    if (rc) mien_err_prefix(e, "%s", path);
    nn_ckpt_free(&ck);
    return rc;
}
