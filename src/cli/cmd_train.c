/* mien train: margin-softmax training of a face embedder (the engine is src/train).
 *
 * The same code runs in one process (mien train) and in each process of a data-parallel run
 * (mien-train-mpi, src/cli/main_mpi.c), which passes an MPI communicator: every rank
 * takes its slice of each global batch, batch norm statistics, gradients, features and the
 * softmax denominators of the sharded class centres are combined across ranks, and rank 0
 * alone prints and writes files. */
#include "cli/cli.h"
#include "core/err.h"
#include "eval/verify_eval.h"
#include "image/image.h"
#include "nn/exec.h"
#include "train/data.h"
#include "train/head.h"
#include "train/kern.h"
#include "train/train.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char train_usage[] =
    "usage: mien train --data DIR --out FILE [options]\n"
    "       mien train attribute --set DIR --out FILE ...   (the mask classifier: see --help)\n"
    "\n"
    "Train a face embedder with a margin-based softmax on a folder per identity. Faces are\n"
    "detected and aligned once (112x112 ArcFace crops) and cached next to FILE. Writes the\n"
    "checkpoint FILE (load it with --model-file FILE in every command), a loss-curve PNG and,\n"
    "with --holdout, held-out verification pairs with accuracy before and after training.\n"
    "\n"
    "Data\n"
    "  --data DIR           one sub-folder of photos per identity\n"
    "  --aligned            the photos are aligned crops already (no detection)\n"
    "  --min-images N       identities with at least N photos (default 2)\n"
    "  --max-per-class N    at most N photos of each identity (default all)\n"
    "  --holdout N          keep N identities out of training (evenly spaced by name) and\n"
    "                       verify on pairs of theirs: 10 identity-disjoint folds\n"
    "  --pairs-per-fold N   genuine (and as many impostor) pairs per fold (default 50)\n"
    "  --pairs-out FILE     where the held-out pairs go (default FILE.pairs.txt)\n"
    "  --no-eval-before     skip the held-out evaluation before training\n"
    "  --cache FILE         crop cache (default crops-NAME.bin beside FILE)\n"
    "  --no-flip-aug        no random horizontal flips\n"
    "Model\n"
    "  --arch A             mobilefacenet (112, 192-d) or small (112, 128-d)\n"
    "  --init I             mobilefacenet (human's pretrained weights; the default for that\n"
    "                       arch), a checkpoint FILE, none (random; default for small), or a\n"
    "                       model file (.onnx, TFJS model.json, .tflite) to fine-tune as it is: its\n"
    "                       convolutions, PReLUs and fully connected layers are trained, batch\n"
    "                       norm stays folded, a new margin head is made\n"
    "  --input-size N --input-mean M --input-scale S\n"
    "                       a model file's input: N x N ArcFace crops (default 112), pixels\n"
    "                       (x - M) * S (default 127.5 and 1/127.5, InsightFace's)\n"
    "  --train-layers N     a model file's last N convolution / FC layers only (default all)\n"
    "  --bn-init unit|data  re-inserted batch norms: gamma 1 and the converter's bias (unit,\n"
    "                       default), or the identity on the first batch (data)\n"
    "  --head-init random|data  class centres N(0, 0.01) (default), or the mean embedding of\n"
    "                       up to 8 photos of each class (batch statistics): a head that\n"
    "                       already agrees with the features, for fine-tuning\n"
    "Loss\n"
    "  --loss L             arcface (default), cosface, sphereface, normface, softmax, combined\n"
    "  --scale S            s (default 64)\n"
    "  --margin M           the loss's margin: arcface m2 (0.5), cosface m3 (0.35),\n"
    "                       sphereface m1 (1.35)\n"
    "  --m1 A --m2 B --m3 C the combined margin s (cos(A theta + B) - C)\n"
    "  --easy-margin        ArcFace's easy margin\n"
    "  --sample-rate R      Partial FC: share of the class centres per step (default 1)\n"
    "Optimisation\n"
    "  --epochs N           (default 1)     --steps N   stop after N steps\n"
    "  --batch B            global batch (default 64; divisible by the number of processes)\n"
    "  --optimizer O        sgd (default, momentum 0.9, weight decay 5e-4) or adamw (0.05)\n"
    "  --lr LR              base learning rate (sgd 0.1, adamw 1e-3)\n"
    "  --momentum M --weight-decay W\n"
    "  --warmup N           steps of linear warm-up (default 5% of the run)\n"
    "  --schedule S         cosine (default), step or const\n"
    "  --lr-steps E1,E2     epochs where step decay multiplies by --lr-gamma (default 0.1)\n"
    "  --seed N             (default 1)\n"
    "  --kernels K          fast (default: own GEMM, vectorised, threaded) or reference (the\n"
    "                       plain loops the fast ones are tested against)\n"
    "Output\n"
    "  --out FILE           checkpoint (required)\n"
    "  --plot FILE          loss curve PNG (default FILE.loss.png)\n"
    "  --json               a JSON object per step, then a summary with loss_first, loss_last\n"
    "  --bench-pfc C        time Partial FC alone: C classes (--dim D, --batch, --sample-rate,\n"
    "                       --steps) on random features, and exit\n"
    "  --bench-step C       time whole training steps (forward, head over C classes, backward,\n"
    "                       update) of --arch on random images (--batch, --loss, --steps), and\n"
    "                       exit: images/s, time per op, peak memory\n"
    "Common: --models DIR --detector --landmarks --threads N --quiet\n";

typedef struct train_opts {
    const char *data, *out, *plot, *cache, *pairs_out, *init;
    int aligned, min_images, max_per_class, holdout, pairs_per_fold, no_flip, no_eval_before;
    int head_init_data;      /* class centres from the mean embedding of each class */
    nn_arch arch;
    int arch_set;
    tr_bn_init bn_init;
    tr_loss_kind loss;
    float scale, margin, m1, m2, m3;
    int scale_set, margin_set, m1_set, m2_set, m3_set, easy;
    float sample_rate;
    int epochs, steps, batch;
    tr_opt_kind opt;
    float lr, momentum, weight_decay, lr_gamma;
    int lr_set, momentum_set, wd_set;
    int warmup;
    tr_sched_kind sched;
    int lr_steps[8], n_lr_steps;
    uint64_t seed;
    long bench_pfc, bench_step;
    int reference;           /* --kernels reference */
    int input_size;          /* loaded models */
    int train_layers;        /* > 0: only the last N layers of a loaded model */
    float input_mean, input_scale;
    int input_mean_set, input_scale_set;
    int dim;
} train_opts;

static int pf(const char *v, float *out) {
    char *end;
    float x = strtof(v, &end);
    if (end == v || *end || !isfinite(x)) return 0;
    *out = x;
    return 1;
}

static int pi(const char *v, long lo, long hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return 0;
    *out = (int)x;
    return 1;
}

/* cli_parse's extra-option hook: 1 took the value, 0 a flag, -1 unknown, -2 needs a value,
 * -3 bad value. */
static int train_extra(void *ctx, const char *opt, const char *v) {
    train_opts *o = ctx;
    static const char *const flags[] = {"--aligned", "--no-flip-aug", "--easy-margin",
                                        "--no-eval-before"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strcmp(opt, flags[i])) {
            if (i == 0) o->aligned = 1;
            else if (i == 1) o->no_flip = 1;
            else if (i == 2) o->easy = 1;
            else o->no_eval_before = 1;
            return 0;
        }
    static const char *const valued[] = {
        "--data", "--out", "--plot", "--cache", "--pairs-out", "--init", "--min-images",
        "--max-per-class", "--holdout", "--pairs-per-fold", "--arch", "--bn-init", "--loss",
        "--scale", "--margin", "--m1", "--m2", "--m3", "--sample-rate", "--epochs", "--steps",
        "--batch", "--optimizer", "--lr", "--momentum", "--weight-decay", "--warmup",
        "--schedule", "--lr-steps", "--lr-gamma", "--seed", "--bench-pfc", "--dim", "--head-init",
        "--bench-step", "--kernels", "--input-size", "--input-mean", "--input-scale",
        "--train-layers"};
    int known = 0;
    for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++) known |= !strcmp(opt, valued[i]);
    if (!known) return -1;
    if (!v) return -2;
    int ok = 1;
    if (!strcmp(opt, "--data")) o->data = v;
    else if (!strcmp(opt, "--out")) o->out = v;
    else if (!strcmp(opt, "--plot")) o->plot = v;
    else if (!strcmp(opt, "--cache")) o->cache = v;
    else if (!strcmp(opt, "--pairs-out")) o->pairs_out = v;
    else if (!strcmp(opt, "--init")) o->init = v;
    else if (!strcmp(opt, "--min-images")) ok = pi(v, 1, 1 << 20, &o->min_images);
    else if (!strcmp(opt, "--max-per-class")) ok = pi(v, 0, 1 << 20, &o->max_per_class);
    else if (!strcmp(opt, "--holdout")) ok = pi(v, 0, 1 << 20, &o->holdout);
    else if (!strcmp(opt, "--pairs-per-fold")) ok = pi(v, 1, 100000, &o->pairs_per_fold);
    else if (!strcmp(opt, "--arch")) ok = nn_arch_from_name(v, &o->arch), o->arch_set = 1;
    else if (!strcmp(opt, "--bn-init")) {
        if (!strcmp(v, "unit")) o->bn_init = TR_BN_UNIT;
        else if (!strcmp(v, "data")) o->bn_init = TR_BN_DATA;
        else ok = 0;
    } else if (!strcmp(opt, "--head-init")) {
        if (!strcmp(v, "random")) o->head_init_data = 0;
        else if (!strcmp(v, "data")) o->head_init_data = 1;
        else ok = 0;
    } else if (!strcmp(opt, "--loss")) ok = tr_loss_from_name(v, &o->loss);
    else if (!strcmp(opt, "--scale")) ok = pf(v, &o->scale) && o->scale > 0, o->scale_set = 1;
    else if (!strcmp(opt, "--margin")) ok = pf(v, &o->margin), o->margin_set = 1;
    else if (!strcmp(opt, "--m1")) ok = pf(v, &o->m1) && o->m1 > 0, o->m1_set = 1;
    else if (!strcmp(opt, "--m2")) ok = pf(v, &o->m2), o->m2_set = 1;
    else if (!strcmp(opt, "--m3")) ok = pf(v, &o->m3), o->m3_set = 1;
    else if (!strcmp(opt, "--sample-rate")) ok = pf(v, &o->sample_rate) && o->sample_rate > 0 && o->sample_rate <= 1;
    else if (!strcmp(opt, "--epochs")) ok = pi(v, 1, 1 << 20, &o->epochs);
    else if (!strcmp(opt, "--steps")) ok = pi(v, 1, 1 << 30, &o->steps);
    else if (!strcmp(opt, "--batch")) ok = pi(v, 2, 1 << 16, &o->batch);
    else if (!strcmp(opt, "--optimizer")) {
        if (!strcmp(v, "sgd")) o->opt = TR_SGD;
        else if (!strcmp(v, "adamw")) o->opt = TR_ADAMW;
        else ok = 0;
    } else if (!strcmp(opt, "--lr")) ok = pf(v, &o->lr) && o->lr > 0, o->lr_set = 1;
    else if (!strcmp(opt, "--momentum")) ok = pf(v, &o->momentum) && o->momentum >= 0, o->momentum_set = 1;
    else if (!strcmp(opt, "--weight-decay")) ok = pf(v, &o->weight_decay) && o->weight_decay >= 0, o->wd_set = 1;
    else if (!strcmp(opt, "--warmup")) ok = pi(v, 0, 1 << 30, &o->warmup);
    else if (!strcmp(opt, "--schedule")) {
        if (!strcmp(v, "cosine")) o->sched = TR_SCHED_COSINE;
        else if (!strcmp(v, "step")) o->sched = TR_SCHED_STEP;
        else if (!strcmp(v, "const")) o->sched = TR_SCHED_CONST;
        else ok = 0;
    } else if (!strcmp(opt, "--lr-steps")) {
        o->n_lr_steps = 0;
        const char *p = v;
        while (*p && ok && o->n_lr_steps < 8) {
            char *end;
            long x = strtol(p, &end, 10);
            ok = end != p && x >= 0;
            o->lr_steps[o->n_lr_steps++] = (int)x;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') ok = 0;
        }
    } else if (!strcmp(opt, "--lr-gamma")) ok = pf(v, &o->lr_gamma) && o->lr_gamma > 0;
    else if (!strcmp(opt, "--seed")) {
        int s;
        ok = pi(v, 0, 2147483647, &s);
        o->seed = (uint64_t)s;
    } else if (!strcmp(opt, "--bench-pfc")) {
        int cls;
        ok = pi(v, 1, 1 << 30, &cls);
        o->bench_pfc = cls;
    } else if (!strcmp(opt, "--input-size")) ok = pi(v, 16, 1024, &o->input_size);
    else if (!strcmp(opt, "--train-layers")) ok = pi(v, 1, 1 << 20, &o->train_layers);
    else if (!strcmp(opt, "--input-mean")) ok = pf(v, &o->input_mean), o->input_mean_set = 1;
    else if (!strcmp(opt, "--input-scale")) ok = pf(v, &o->input_scale) && o->input_scale != 0, o->input_scale_set = 1;
    else if (!strcmp(opt, "--kernels")) {
        if (!strcmp(v, "fast")) o->reference = 0;
        else if (!strcmp(v, "reference")) o->reference = 1;
        else ok = 0;
    } else if (!strcmp(opt, "--bench-step")) {
        int cls;
        ok = pi(v, 1, 1 << 30, &cls);
        o->bench_step = cls;
    } else if (!strcmp(opt, "--dim")) ok = pi(v, 1, 65536, &o->dim);
    return ok ? 1 : -3;
}

/* ==== Crops: detection and alignment once, into the cache ==== */

typedef struct crop_job {
    const char *root;
    char **rel;              /* (n) photos to crop */
    uint8_t *pix;            /* (n, side, side, 3) */
    unsigned char *found;    /* (n) */
    int side, aligned;
    const mien_detect_options *det;
} crop_job;

static int crop_one(void *ctx, mien_session *s, int worker, int i) {
    crop_job *j = ctx;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->root, j->rel[i]);
    mien_image img = {0}, chip = {0};
    if (mien_image_load(s, path, &img)) {
        fprintf(stderr, "\nmien train: %s (skipped)\n", mien_errmsg(s));
        return 0;
    }
    mien_err e = {0};
    if (j->aligned) {
        if (!img_resize(&img, j->side, j->side, &chip, &e)) {
            memcpy(j->pix + (size_t)i * j->side * j->side * 3, chip.rgb, (size_t)j->side * j->side * 3);
            j->found[i] = 1;
        }
    } else {
        mien_face *faces = NULL;
        int n = 0;
        if (!mien_detect(s, &img, j->det, &faces, &n) && n > 0) {
            int k = cli_pick_central(faces, n, img.width, img.height);
            if (!mien_align(s, &img, &faces[k], &chip) && chip.width == j->side && chip.height == j->side) {
                memcpy(j->pix + (size_t)i * j->side * j->side * 3, chip.rgb, (size_t)j->side * j->side * 3);
                j->found[i] = 1;
            }
        }
        free(faces);
    }
    mien_image_free(&chip);
    mien_image_free(&img);
    return 0;
}

/* Make sure every photo of the listing has a cache entry (rank 0 crops what is missing). */
static int ensure_crops(cli_common *c, const train_opts *o, const tr_listing *l, const char *cache,
                        int side, tr_crops *crops) {
    mien_err e = {0};
    if (tr_crops_load(cache, side, crops, &e)) {
        fprintf(stderr, "mien train: %s\n", e.msg);
        return EXIT_FAIL;
    }
    int total = 0, n = 0;
    for (int i = 0; i < l->n_id; i++) total += l->id[i].n_files;
    char **missing = malloc((size_t)(total ? total : 1) * sizeof *missing);
    if (!missing) return EXIT_FAIL;
    for (int i = 0; i < l->n_id; i++)
        for (int k = 0; k < l->id[i].n_files; k++)
            if (tr_crops_find(crops, l->id[i].files[k]) < 0) missing[n++] = l->id[i].files[k];
    if (n == 0) {
        free(missing);
        return EXIT_OK;
    }
    crop_job j = {.root = o->data, .rel = missing, .side = side, .aligned = o->aligned, .det = &c->det};
    j.pix = malloc((size_t)n * side * side * 3);
    j.found = calloc((size_t)n, 1);
    int rc = j.pix && j.found ? EXIT_OK : EXIT_FAIL;
    mien_models *m = NULL;
    if (!rc) {
        mien_config cfg = c->cfg;
        cfg.embedder = "mobilefacenet"; /* its crop: the 112x112 ArcFace template */
        cfg.threads = 1;
        cfg.flip = 0;
        if (mien_models_open(c->models_dir, &cfg, &m)) {
            fprintf(stderr, "mien train: cannot open models in %s: %s\n", c->models_dir, mien_models_errmsg(m));
            rc = EXIT_FAIL;
        }
    }
    if (!rc) rc = cli_parallel(m, c->threads, n, crop_one, &j, o->aligned ? "loading" : "aligning", c->quiet);
    int found = 0;
    for (int i = 0; i < n && !rc; i++) {
        found += j.found[i];
        if (tr_crops_put(crops, missing[i], j.found[i] ? j.pix + (size_t)i * side * side * 3 : NULL, &e)) rc = EXIT_FAIL;
    }
    if (!rc && tr_crops_save(cache, crops, &e)) {
        fprintf(stderr, "mien train: %s\n", e.msg);
        rc = EXIT_FAIL;
    }
    if (!rc && !c->json && !c->quiet)
        fprintf(stderr, "mien train: %d of %d new photos have a face (cache %s)\n", found, n, cache);
    mien_models_close(m);
    free(j.pix);
    free(j.found);
    free(missing);
    return rc;
}

/* ==== The network being trained ==== */

/* One of the coded architectures, or a model file loaded as it is (train/loaded.c). */
typedef struct net_desc {
    int loaded;
    nn_arch arch;
    tr_loaded_opts lo;       /* loaded: path, side, mean, scale */
    int S, D;                /* input side, embedding size */
    float mean, scale;       /* input = (pixel - mean) * scale */
    const char *models_dir;
} net_desc;

static const char *desc_name(const net_desc *d) { return d->loaded ? d->lo.path : nn_arch_name(d->arch); }

static int desc_export(const tr_net *net, const net_desc *d, nn_ckpt *ts, mien_err *e) {
    return d->loaded ? tr_export_loaded(net, &d->lo, ts, e) : tr_export(net, d->arch, ts, e);
}

/* The inference graph (batch 1) of the net's current weights. */
static int desc_inference(const tr_net *net, const net_desc *d, nn_graph **g, mien_err *e) {
    nn_ckpt ts;
    int rc = desc_export(net, d, &ts, e);
    if (!rc) rc = d->loaded ? nn_ckpt_build_loaded(&ts, d->models_dir, g, e) : nn_ckpt_build_arch(&ts, g, e);
    if (!rc) nn_ckpt_free(&ts);
    return rc;
}

/* ==== Held-out verification ==== */

/* Embed the held-out crops with the net's current weights (folded inference graph on the
 * fast backend, mirrored face added as the pipeline does) and measure 10-fold accuracy. */
static int eval_holdout(const tr_net *net, const net_desc *nd, const tr_crops *crops, const tr_pair *pairs,
                        int n_pairs, int threads, double *acc, double *acc_std, double *thr) {
    mien_err e = {0};
    nn_graph *g = NULL;
    nn_exec *x = NULL;
    int rc = desc_inference(net, nd, &g, &e);
    nn_exec_opts xo = {.backend = NN_BACKEND_FAST, .threads = threads};
    if (!rc) rc = nn_exec_create(g, &xo, &x, &e);
    const int S = nd->S, D = nd->D;
    float *emb = rc ? NULL : calloc((size_t)crops->n * D, sizeof *emb);
    unsigned char *done = rc ? NULL : calloc((size_t)crops->n, 1);
    float *score = rc ? NULL : malloc((size_t)n_pairs * sizeof *score);
    int *same = rc ? NULL : malloc((size_t)n_pairs * sizeof *same), *fold = rc ? NULL : malloc((size_t)n_pairs * sizeof *fold);
    if (!rc && (!emb || !done || !score || !same || !fold)) rc = mien_err_set(&e, MIEN_ENOMEM, "out of memory");
    for (int p = 0; p < n_pairs && !rc; p++) {
        int ab[2] = {pairs[p].a, pairs[p].b};
        for (int k = 0; k < 2 && !rc; k++) {
            int i = ab[k];
            if (done[i]) continue;
            float *v = emb + (size_t)i * D;
            for (int flip = 0; flip < 2 && !rc; flip++) {
                tr_sample smp = {crops->pix[i], 0};
                int idx = 0;
                unsigned char fl = (unsigned char)flip;
                tr_fill_input_norm(&smp, &idx, &fl, 1, S, nd->mean, nd->scale, nn_exec_input(x, 0));
                if (!(rc = nn_exec_run(x, &e))) {
                    const float *y = nn_exec_output(x, 0);
                    for (int d = 0; d < D; d++) v[d] += y[d];
                }
            }
            double ss = 0;
            for (int d = 0; d < D; d++) ss += (double)v[d] * v[d];
            for (int d = 0; d < D; d++) v[d] = ss > 0 ? (float)(v[d] / sqrt(ss)) : 0.f;
            done[i] = 1;
        }
        if (rc) break;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)emb[(size_t)pairs[p].a * D + d] * emb[(size_t)pairs[p].b * D + d];
        score[p] = (float)dot;
        same[p] = pairs[p].same;
        fold[p] = pairs[p].fold;
    }
    ve_set set = {0};
    ve_kfold kf;
    if (!rc) rc = ve_set_build(&set, n_pairs, score, NULL, same, fold, VE_MISSING_REJECT, &e);
    if (!rc) rc = ve_kfold_accuracy(&set, NULL, &kf, &e);
    if (!rc) rc = ve_best_threshold(&set, NULL, thr, NULL, &e);
    if (!rc) {
        *acc = kf.acc_mean;
        *acc_std = kf.acc_std;
    } else {
        fprintf(stderr, "mien train: held-out evaluation: %s\n", e.msg);
    }
    ve_set_free(&set);
    free(emb);
    free(done);
    free(score);
    free(same);
    free(fold);
    nn_exec_free(x);
    nn_graph_free(g);
    return rc ? EXIT_FAIL : EXIT_OK;
}

/* ==== Class centres from the data ====
 * The mean (normalised) embedding of up to 8 photos of each class, with batch statistics, as
 * each rank's share of global batches; every rank then sums the classes of its shard. */
static int head_from_data(tr_net *net, tr_head *h, const tr_comm *comm, const tr_sample *s, int n,
                          int n_classes, int Bl, const net_desc *d, mien_err *e) {
    const int side = d->S;
    const int D = h->dim, Bg = Bl * comm->size, per = 8;
    int *pick = malloc((size_t)(n ? n : 1) * sizeof *pick), *seen = calloc((size_t)n_classes, sizeof *seen);
    int *idx = malloc((size_t)Bg * sizeof *idx), *lab = malloc((size_t)Bg * sizeof *lab);
    float *emb = malloc((size_t)Bg * D * sizeof *emb);
    double *sum = calloc((size_t)(h->n_local ? h->n_local : 1) * D, sizeof *sum);
    int rc = pick && seen && idx && lab && emb && sum ? MIEN_OK : mien_err_set(e, MIEN_ENOMEM, "out of memory");
    int m = 0;
    for (int i = 0; i < n && !rc; i++)
        if (seen[s[i].label]++ < per) pick[m++] = i;
    /* Whole global batches; the last one repeats photos from the start, counted once. */
    for (int b0 = 0; b0 < m && !rc; b0 += Bg) {
        for (int i = 0; i < Bl; i++) idx[i] = pick[(b0 + comm->rank * Bl + i) % m];
        tr_fill_input_norm(s, idx, NULL, Bl, side, d->mean, d->scale, tr_input(net, 0));
        if ((rc = tr_forward(net, e))) break;
        if (comm->gather_all(comm->ctx, tr_output(net, 0), emb, (int64_t)Bl * D * (int64_t)sizeof(float))) {
            rc = mien_err_set(e, MIEN_EINTERNAL, "gathering embeddings failed");
            break;
        }
        for (int i = 0; i < Bg; i++) lab[i] = b0 + i < m ? s[pick[b0 + i]].label : -1;
        for (int i = 0; i < Bg; i++) {
            int64_t r = lab[i] - h->c0;
            if (lab[i] < 0 || r < 0 || r >= h->n_local) continue;
            double ss = 0;
            for (int k = 0; k < D; k++) ss += (double)emb[i * D + k] * emb[i * D + k];
            for (int k = 0; k < D; k++) sum[r * D + k] += emb[i * D + k] / sqrt(ss + 1e-20);
        }
    }
    for (int64_t r = 0; r < h->n_local && !rc; r++) {
        double ss = 0;
        for (int k = 0; k < D; k++) ss += sum[r * D + k] * sum[r * D + k];
        if (ss > 0)
            for (int k = 0; k < D; k++) h->w[r * D + k] = (float)(sum[r * D + k] / sqrt(ss));
    }
    free(pick);
    free(seen);
    free(idx);
    free(lab);
    free(emb);
    free(sum);
    return rc;
}

/* ==== Loss curve ==== */

static int plot_curve(const char *path, const float *loss, const float *acc, int n, const char *title) {
    const int W = 720, H = 420, L = 64, R = W - 56, T = 44, Bm = H - 48;
    mien_image img = {0};
    mien_err e = {0};
    if (img_alloc(&img, W, H, &e)) return EXIT_FAIL;
    const img_color white = {255, 255, 255}, black = {0, 0, 0}, grid = {220, 220, 220},
                    blue = {31, 119, 180}, orange = {255, 127, 14}, gray = {90, 90, 90};
    img_fill(&img, white);
    float lmax = 0;
    for (int i = 0; i < n; i++) lmax = loss[i] > lmax ? loss[i] : lmax;
    /* A round top: the smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten. */
    static const double nice[] = {1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10};
    double dec = 1e-3, top = 1;
    while (dec * 10 < lmax) dec *= 10;
    for (size_t k = 0; k < sizeof nice / sizeof nice[0]; k++)
        if (nice[k] * dec >= lmax) {
            top = nice[k] * dec;
            break;
        }
    char buf[96];
    const int th = img_text_height(1);
    for (int k = 0; k <= 5; k++) {
        float y = (float)(Bm - (Bm - T) * k / 5.0);
        img_draw_line(&img, (float)L, y, (float)R, y, 1, grid);
        snprintf(buf, sizeof buf, "%g", top * k / 5);
        img_draw_text(&img, L - 6 - img_text_width(buf, 1), (int)y - th / 2, buf, 1, blue, 0, white);
        snprintf(buf, sizeof buf, "%.1f", k / 5.0);
        img_draw_text(&img, R + 6, (int)y - th / 2, buf, 1, orange, 0, white);
    }
    const int last = n > 1 ? n - 1 : 1;
    for (int k = 0; k <= 4; k++) {
        float x = (float)(L + (R - L) * k / 4.0);
        snprintf(buf, sizeof buf, "%d", last * k / 4);
        img_draw_text(&img, (int)x - img_text_width(buf, 1) / 2, Bm + 8, buf, 1, black, 0, white);
    }
    img_draw_rect(&img, (float)L, (float)T, (float)(R - L), (float)(Bm - T), 1, black);
    for (int i = 1; i < n; i++) {
        float x0 = (float)(L + (R - L) * (double)(i - 1) / last), x1 = (float)(L + (R - L) * (double)i / last);
        img_draw_line(&img, x0, (float)(Bm - (Bm - T) * acc[i - 1]), x1, (float)(Bm - (Bm - T) * acc[i]), 1, orange);
        img_draw_line(&img, x0, (float)(Bm - (Bm - T) * loss[i - 1] / top), x1,
                      (float)(Bm - (Bm - T) * loss[i] / top), 2, blue);
    }
    const char *xl = "step";
    img_draw_text(&img, (L + R) / 2 - img_text_width(xl, 1) / 2, Bm + 12 + th, xl, 1, gray, 0, white);
    img_draw_text(&img, 8, T - 8 - th, "loss", 1, blue, 0, white);
    img_draw_text(&img, R - 40, T - 8 - th, "accuracy", 1, orange, 0, white);
    if (title) img_draw_text(&img, W / 2 - img_text_width(title, 2) / 2, 10, title, 2, black, 0, white);
    int rc = img_write_png(path, &img, &e);
    mien_image_free(&img);
    if (rc) fprintf(stderr, "mien train: %s\n", e.msg);
    return rc ? EXIT_FAIL : EXIT_OK;
}

/* ==== Partial FC benchmark ==== */

static void set_margin(const train_opts *o, tr_margin *m);

static int bench_pfc(const cli_common *c, const train_opts *o, const tr_comm *comm) {
    mien_err e = {0};
    const int D = o->dim > 0 ? o->dim : 512, B = o->batch, steps = o->steps > 0 ? o->steps : 5;
    tr_margin m;
    tr_margin_default(&m, o->loss);
    tr_head h;
    if (tr_head_init(&h, &m, o->bench_pfc, D, o->sample_rate, o->seed, comm, &e)) {
        fprintf(stderr, "mien train: %s\n", e.msg);
        return EXIT_FAIL;
    }
    tr_optim opt;
    tr_optim_default(&opt, o->opt);
    float *x = malloc((size_t)B * D * sizeof *x), *dx = malloc((size_t)B * D * sizeof *dx);
    int *lab = malloc((size_t)B * sizeof *lab);
    if (!x || !dx || !lab) return EXIT_FAIL;
    double t_total = 0, loss = 0, acc = 0;
    int rc = EXIT_OK;
    for (int s = 0; s <= steps && !rc; s++) { /* step 0 warms the buffers up, untimed */
        for (int i = 0; i < B; i++) {
            lab[i] = (int)(tr_hash3(o->seed, (uint64_t)s, (uint64_t)(i + comm->rank * B)) % (uint64_t)o->bench_pfc);
            double ss = 0;
            for (int k = 0; k < D; k++) {
                x[i * D + k] = (float)tr_normal(o->seed + 1, (uint64_t)(s * B + i), (uint64_t)k);
                ss += (double)x[i * D + k] * x[i * D + k];
            }
            for (int k = 0; k < D; k++) x[i * D + k] /= (float)sqrt(ss);
        }
        double t0 = cli_now();
        tr_optim_tick(&opt);
        if (tr_head_step(&h, comm, s, x, lab, B, dx, &loss, &acc, &e) || tr_head_update(&h, &opt, &e)) {
            fprintf(stderr, "mien train: %s\n", e.msg);
            rc = EXIT_FAIL;
        }
        if (s > 0) t_total += cli_now() - t0;
    }
    size_t centres = (size_t)h.n_local * D * sizeof(float) * (o->opt == TR_ADAMW ? 3 : 2);
    if (!rc && comm->rank == 0) {
        if (c->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "classes", (double)o->bench_pfc);
            cJSON_AddNumberToObject(j, "dim", D);
            cJSON_AddNumberToObject(j, "batch", B * comm->size);
            cJSON_AddNumberToObject(j, "sample_rate", o->sample_rate);
            cJSON_AddNumberToObject(j, "sampled", (double)h.n_sel);
            cJSON_AddNumberToObject(j, "ms_per_step", 1000 * t_total / steps);
            cJSON_AddNumberToObject(j, "step_bytes", (double)h.step_bytes);
            cJSON_AddNumberToObject(j, "centre_bytes", (double)centres);
            cli_print_json(j);
        } else {
            printf("Partial FC: %ld classes x %d, global batch %d, sample rate %g: %lld centres per step,\n"
                   "  %.1f ms per step, %.1f MiB of per-step buffers (centres + optimizer state %.1f MiB)\n",
                   o->bench_pfc, D, B * comm->size, (double)o->sample_rate, (long long)h.n_sel,
                   1000 * t_total / steps, h.step_bytes / 1048576.0, centres / 1048576.0);
        }
    }
    tr_head_free(&h);
    free(x);
    free(dx);
    free(lab);
    return rc;
}

/* ==== Whole-step benchmark ====
 * Forward, head, backward and update of --arch on random images and labels: what
 * bench/train_speed.sh sets beside PyTorch. Step 0 warms the buffers up and is not timed. */
static int bench_step(const cli_common *c, const train_opts *o) {
    mien_err e = {0};
    const int B = o->batch, steps = o->steps > 0 ? o->steps : 5, S = nn_arch_input(o->arch);
    const int D = nn_arch_dim(o->arch);
    tr_margin m;
    set_margin(o, &m);
    tr_build_opts bo = {.arch = o->arch, .batch = B, .normalize = tr_loss_normalized(o->loss),
                        .seed = o->seed, .bn_eps = 1e-5f, .threads = c->threads,
                        .reference = o->reference};
    tr_net *net = NULL;
    tr_head h = {0};
    float *dx = malloc((size_t)B * D * sizeof *dx);
    int *lab = malloc((size_t)B * sizeof *lab);
    int rc = dx && lab ? MIEN_OK : mien_err_set(&e, MIEN_ENOMEM, "out of memory");
    if (!rc) rc = tr_build_train(&bo, &net, &e);
    if (!rc) rc = tr_head_init(&h, &m, o->bench_step, D, o->sample_rate, o->seed, tr_comm_single(), &e);
    if (!rc) h.kern = net->kern;
    tr_optim opt;
    tr_optim_default(&opt, o->opt);
    opt.lr = 1e-3f; /* small: the weights stay sane over the timed steps */
    double t_total = 0, t_head = 0, t_opt = 0, loss = 0, acc = 0, loss0 = 0;
    for (int s = 0; s <= steps && !rc; s++) {
        float *in = tr_input(net, 0);
        for (int64_t i = 0; i < (int64_t)B * S * S * 3; i++)
            in[i] = (float)(tr_uniform(o->seed, (uint64_t)s, (uint64_t)i) * 2 - 1);
        for (int i = 0; i < B; i++)
            lab[i] = (int)(tr_hash3(o->seed, (uint64_t)s, (uint64_t)i) % (uint64_t)o->bench_step);
        if (s == 1) { /* the per-op times count the timed steps only */
            memset(net->t_fwd, 0, sizeof net->t_fwd);
            memset(net->t_bwd, 0, sizeof net->t_bwd);
        }
        const float *dout[1] = {dx};
        double t0 = cli_now();
        if ((rc = tr_forward(net, &e))) break;
        double t1 = cli_now();
        if ((rc = tr_head_step(&h, tr_comm_single(), s, tr_output(net, 0), lab, B, dx, &loss, &acc, &e))) break;
        double t2 = cli_now();
        if ((rc = tr_backward(net, dout, &e))) break;
        double t3 = cli_now();
        tr_optim_tick(&opt);
        if ((rc = tr_optim_step_net(&opt, net, &e)) || (rc = tr_head_update(&h, &opt, &e))) break;
        double t4 = cli_now();
        if (s == 0) {
            loss0 = loss;
            continue;
        }
        t_total += t4 - t0;
        t_head += t2 - t1;
        t_opt += t4 - t3;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (!rc) {
        const double ips = steps * B / (t_total + 1e-12);
        if (c->json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "arch", nn_arch_name(o->arch));
            cJSON_AddStringToObject(j, "loss", tr_loss_name(o->loss));
            cJSON_AddNumberToObject(j, "batch", B);
            cJSON_AddNumberToObject(j, "classes", (double)o->bench_step);
            cJSON_AddNumberToObject(j, "threads", c->threads);
            cJSON_AddStringToObject(j, "kernels", net->kern ? tr_isa_name(tr_kern_isa(net->kern)) : "reference");
            cJSON_AddNumberToObject(j, "steps", steps);
            cJSON_AddNumberToObject(j, "images_per_s", ips);
            cJSON_AddNumberToObject(j, "ms_per_step", 1000 * t_total / steps);
            cJSON_AddNumberToObject(j, "ms_head", 1000 * t_head / steps);
            cJSON_AddNumberToObject(j, "ms_update", 1000 * t_opt / steps);
            cJSON_AddNumberToObject(j, "loss_first", loss0);
            cJSON_AddNumberToObject(j, "loss_last", loss);
            cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)ru.ru_maxrss * 1024);
            cJSON_AddNumberToObject(j, "train_bytes", (double)tr_net_bytes(net) + (double)h.step_bytes);
            cJSON *f = cJSON_AddObjectToObject(j, "ms_forward"), *b = cJSON_AddObjectToObject(j, "ms_backward");
            for (int k = 0; k < NN_OP_COUNT; k++) {
                if (net->t_fwd[k] > 0) cJSON_AddNumberToObject(f, nn_op_name((nn_op)k), 1000 * net->t_fwd[k] / steps);
                if (net->t_bwd[k] > 0) cJSON_AddNumberToObject(b, nn_op_name((nn_op)k), 1000 * net->t_bwd[k] / steps);
            }
            cli_print_json(j);
        } else {
            printf("%s, %s over %ld classes, batch %d, %d thread%s: %.1f images/s (%.0f ms per step: "
                   "head %.0f, update %.0f), peak memory %.0f MiB\n",
                   nn_arch_name(o->arch), tr_loss_name(o->loss), o->bench_step, B, c->threads,
                   c->threads > 1 ? "s" : "", ips, 1000 * t_total / steps, 1000 * t_head / steps,
                   1000 * t_opt / steps, ru.ru_maxrss / 1024.0);
            for (int k = 0; k < NN_OP_COUNT; k++)
                if (net->t_fwd[k] > 0 || net->t_bwd[k] > 0)
                    printf("  %-16s forward %7.1f ms  backward %7.1f ms\n", nn_op_name((nn_op)k),
                           1000 * net->t_fwd[k] / steps, 1000 * net->t_bwd[k] / steps);
        }
    } else {
        fprintf(stderr, "mien train: %s\n", e.msg);
    }
    tr_head_free(&h);
    tr_net_free(net);
    free(dx);
    free(lab);
    return rc ? EXIT_FAIL : EXIT_OK;
}

/* ==== Training ==== */

static void set_margin(const train_opts *o, tr_margin *m) {
    tr_margin_default(m, o->loss);
    if (o->scale_set) m->s = o->scale;
    if (o->margin_set) {
        if (o->loss == TR_LOSS_ARCFACE) m->m2 = o->margin;
        else if (o->loss == TR_LOSS_COSFACE) m->m3 = o->margin;
        else if (o->loss == TR_LOSS_SPHEREFACE) m->m1 = o->margin;
    }
    if (o->m1_set) m->m1 = o->m1;
    if (o->m2_set) m->m2 = o->m2;
    if (o->m3_set) m->m3 = o->m3;
    m->easy_margin = o->easy;
}

static void default_path(char *buf, size_t n, const char *given, const char *out, const char *suffix) {
    if (given) snprintf(buf, n, "%s", given);
    else snprintf(buf, n, "%s%s", out, suffix);
}

int cmd_train_with(int argc, char **argv, const struct tr_comm *comm) {
    cli_common c;
    cli_common_init(&c);
    train_opts o = {.min_images = 2, .pairs_per_fold = 50, .loss = TR_LOSS_ARCFACE, .sample_rate = 1.f,
                    .input_size = 112, .input_mean = 127.5f, .input_scale = 1.f / 127.5f,
                    .epochs = 1, .batch = 64, .opt = TR_SGD, .lr_gamma = 0.1f, .warmup = -1, .seed = 1};
    if (cli_parse(&c, &argc, argv, train_extra, &o, train_usage)) return EXIT_USAGE;
    cli_models_dir(&c); /* these read model files by name: resolve the search now */
    const int root = comm->rank == 0;
    if (argc != 1 || (!o.bench_pfc && !o.bench_step && (!o.data || !o.out))) {
        if (root) fputs(train_usage, stderr);
        return EXIT_USAGE;
    }
    if (o.batch % comm->size) {
        if (root) fprintf(stderr, "mien train: --batch %d is not divisible by %d processes\n", o.batch, comm->size);
        return EXIT_USAGE;
    }
    /* OpenBLAS threads: the cores shared among the ranks of this machine. */
    int blas = c.threads / comm->size;
    openblas_set_num_threads(blas > 0 ? blas : 1);
    if (o.bench_pfc) {
        if (o.batch == 64 && !o.steps) o.batch = 128 / comm->size;
        else o.batch /= comm->size;
        return bench_pfc(&c, &o, comm);
    }
    if (o.bench_step) {
        if (comm->size > 1) {
            if (root) fprintf(stderr, "mien train: --bench-step runs in one process\n");
            return EXIT_USAGE;
        }
        return bench_step(&c, &o);
    }

    mien_err e = {0};
    int rc = EXIT_OK;
    tr_listing l = {0};
    tr_crops crops = {0};
    tr_sample *samples = NULL;
    int *hold = NULL, *train_ids = NULL, *order = NULL, *lab = NULL, *idx = NULL;
    unsigned char *flip = NULL;
    tr_pair *pairs = NULL;
    int n_pairs = 0, n_hold = 0, n_train_ids = 0, n_samples = 0;
    nn_ckpt init = {0};
    tr_net *net = NULL;
    tr_head head = {0};
    float *losses = NULL, *accs = NULL, *dx = NULL;
    double acc0 = NAN, acc0_std = NAN, acc1 = NAN, acc1_std = NAN, thr0 = NAN, thr1 = NAN;

    if (!o.init) o.init = o.arch == NN_ARCH_MOBILEFACENET ? "mobilefacenet" : "none";
    /* What is trained: a model file as loaded, a checkpoint of either kind, or an architecture. */
    net_desc nd = {.arch = o.arch, .models_dir = c.models_dir, .mean = 127.5f, .scale = 1.f / 128.f};
    char base_path[4096];
    if (nn_ckpt_is_model_file(o.init)) {
        nd.loaded = 1;
        nd.lo.path = o.init;
    } else if (strcmp(o.init, "mobilefacenet") && strcmp(o.init, "none")) {
        if ((rc = nn_ckpt_load(o.init, &init, &e))) {
            if (root) fprintf(stderr, "mien train: %s\n", e.msg);
            return EXIT_FAIL;
        }
        const char *an = nn_ckpt_meta(&init, "arch");
        nn_arch a;
        if (nn_ckpt_meta(&init, "graph")) {
            /* A checkpoint of a loaded model: the same base, its weights. */
            nn_graph *tmp = NULL;
            const char *fnd = nn_ckpt_meta(&init, "base");
            snprintf(base_path, sizeof base_path, "%s", fnd ? fnd : "");
            if ((rc = nn_ckpt_build_loaded(&init, c.models_dir, &tmp, &e))) {
                if (root) fprintf(stderr, "mien train: %s: %s\n", o.init, e.msg);
                nn_ckpt_free(&init);
                return EXIT_FAIL;
            }
            nn_graph_free(tmp);
            if (access(base_path, R_OK)) snprintf(base_path, sizeof base_path, "%s/%s", c.models_dir, nn_ckpt_meta(&init, "base_rel"));
            nd.loaded = 1;
            nd.lo.path = base_path;
            const char *v;
            if ((v = nn_ckpt_meta(&init, "mean"))) nd.mean = strtof(v, NULL);
            if ((v = nn_ckpt_meta(&init, "scale"))) nd.scale = strtof(v, NULL);
            if ((v = nn_ckpt_meta(&init, "input"))) o.input_size = atoi(v);
            if (!o.input_mean_set) o.input_mean = nd.mean;
            if (!o.input_scale_set) o.input_scale = nd.scale;
        } else if (an && nn_arch_from_name(an, &a)) {
            if (o.arch_set && a != o.arch) {
                if (root) fprintf(stderr, "mien train: %s is a %s checkpoint, not --arch %s\n", o.init, an, nn_arch_name(o.arch));
                nn_ckpt_free(&init);
                return EXIT_USAGE;
            }
            o.arch = nd.arch = a;
        }
    }
    if (nd.loaded) {
        if (o.bn_init == TR_BN_DATA) {
            if (root) fprintf(stderr, "mien train: --bn-init data: a loaded model's batch norms are folded\n");
            nn_ckpt_free(&init);
            return EXIT_USAGE;
        }
        nd.S = o.input_size;
        nd.mean = o.input_mean;
        nd.scale = o.input_scale;
        nd.lo.side = nd.S;
        nd.lo.mean = nd.mean;
        nd.lo.scale = nd.scale;
    } else {
        nd.S = nn_arch_input(o.arch);
        nd.D = nn_arch_dim(o.arch);
    }
    const int S = nd.S;

    if ((rc = tr_list_identities(o.data, o.min_images, o.max_per_class, &l, &e))) {
        if (root) fprintf(stderr, "mien train: %s\n", e.msg);
        return EXIT_FAIL;
    }
    /* Held-out identities: evenly spaced in name order. */
    if (o.holdout >= l.n_id) {
        if (root) fprintf(stderr, "mien train: --holdout %d leaves no identity to train on (%d)\n", o.holdout, l.n_id);
        tr_listing_free(&l);
        return EXIT_USAGE;
    }
    hold = calloc((size_t)l.n_id, sizeof *hold);
    train_ids = malloc((size_t)l.n_id * sizeof *train_ids);
    int *is_hold = calloc((size_t)l.n_id, sizeof *is_hold);
    if (!hold || !train_ids || !is_hold) {
        free(is_hold);
        rc = EXIT_FAIL;
        goto done;
    }
    for (int k = 0; k < o.holdout; k++) is_hold[(int)(((double)k + 0.5) * l.n_id / o.holdout)] = 1;
    for (int i = 0; i < l.n_id; i++) {
        if (is_hold[i]) hold[n_hold++] = i;
        else train_ids[n_train_ids++] = i;
    }
    free(is_hold);

    /* Crops, made once by rank 0; the other ranks read the cache after it. */
    char cache[8300], pairs_path[4200], plot_path[4200];
    if (o.cache) {
        snprintf(cache, sizeof cache, "%s", o.cache);
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", o.out);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        else snprintf(dir, sizeof dir, ".");
        const char *base = strrchr(o.data, '/');
        base = base && base[1] ? base + 1 : o.data;
        uint64_t hsh = 0; /* of the folder as given: another folder of the same name differs */
        for (const char *q = o.data; *q; q++) hsh = tr_hash3(hsh, (unsigned char)*q, 0);
        snprintf(cache, sizeof cache, "%s/crops-%s-%08llx-%d%s.bin", dir, base,
                 (unsigned long long)(hsh & 0xffffffffULL), S, o.aligned ? "-aligned" : "");
    }
    default_path(pairs_path, sizeof pairs_path, o.pairs_out, o.out, ".pairs.txt");
    default_path(plot_path, sizeof plot_path, o.plot, o.out, ".loss.png");
    if (root) rc = ensure_crops(&c, &o, &l, cache, S, &crops);
    int ok = rc == EXIT_OK;
    comm->bcast(comm->ctx, &ok, sizeof ok, 0);
    if (!ok) {
        rc = EXIT_FAIL;
        goto done;
    }
    if (!root) {
        comm->barrier(comm->ctx);
        if (tr_crops_load(cache, S, &crops, &e)) {
            fprintf(stderr, "mien train: %s\n", e.msg);
            rc = EXIT_FAIL;
            goto done;
        }
    } else {
        comm->barrier(comm->ctx);
    }

    /* Training samples: photos with a face, labelled by training identity. */
    int total = 0;
    for (int i = 0; i < l.n_id; i++) total += l.id[i].n_files;
    samples = malloc((size_t)(total ? total : 1) * sizeof *samples);
    if (!samples) {
        rc = EXIT_FAIL;
        goto done;
    }
    for (int t = 0; t < n_train_ids; t++) {
        const tr_identity *id = &l.id[train_ids[t]];
        for (int k = 0; k < id->n_files; k++) {
            int at = tr_crops_find(&crops, id->files[k]);
            if (at >= 0 && crops.found[at]) samples[n_samples++] = (tr_sample){crops.pix[at], t};
        }
    }
    const int B = o.batch, Bl = B / comm->size;
    const int64_t steps_per_epoch = n_samples / B;
    if (steps_per_epoch < 1) {
        if (root) fprintf(stderr, "mien train: %d training photos with a face, fewer than a batch of %d\n", n_samples, B);
        rc = EXIT_FAIL;
        goto done;
    }
    int64_t total_steps = steps_per_epoch * o.epochs;
    if (o.steps > 0 && o.steps < total_steps) total_steps = o.steps;
    if (o.holdout > 0) {
        if (tr_make_pairs(&l, hold, n_hold, &crops, 10, o.pairs_per_fold, o.seed, &pairs, &n_pairs, &e)) {
            if (root) fprintf(stderr, "mien train: %s\n", e.msg);
            rc = EXIT_FAIL;
            goto done;
        }
        if (root && tr_write_pairs(pairs_path, &crops, pairs, n_pairs, &e)) {
            fprintf(stderr, "mien train: %s\n", e.msg);
            rc = EXIT_FAIL;
            goto done;
        }
    }

    /* The network and its initial weights. */
    if (!nd.loaded && !strcmp(o.init, "mobilefacenet")) {
        char mj[4096];
        snprintf(mj, sizeof mj, "%s/human/mobilefacenet.json", c.models_dir);
        rc = tr_load_tfjs_mobilefacenet(mj, &init, &e);
        if (o.arch != NN_ARCH_MOBILEFACENET && !rc)
            rc = mien_err_set(&e, MIEN_EINVAL, "--init mobilefacenet needs --arch mobilefacenet");
    }
    tr_margin margin;
    set_margin(&o, &margin);
    if (!rc && nd.loaded) {
        nd.lo.batch = Bl;
        nd.lo.normalize = tr_loss_normalized(o.loss);
        nd.lo.init = init.n ? &init : NULL;
        nd.lo.last_layers = o.train_layers;
        nd.lo.threads = blas > 0 ? blas : 1;
        nd.lo.reference = o.reference;
        if (!(rc = tr_build_loaded(&nd.lo, &net, &e))) {
            const nn_tensor *ty = &net->g->t[net->g->outputs[0]];
            nd.D = (int)ty->dims[ty->ndim - 1];
        }
        nd.lo.init = NULL;
    } else if (!rc) {
        tr_build_opts bo = {.arch = o.arch, .batch = Bl, .normalize = tr_loss_normalized(o.loss),
                            .init = init.n ? &init : NULL, .seed = o.seed, .bn_eps = 1e-5f,
                            .threads = blas > 0 ? blas : 1, .reference = o.reference};
        rc = tr_build_train(&bo, &net, &e);
    }
    if (!rc) net->comm = comm;
    const int D = nd.D;
    if (!rc) rc = tr_head_init(&head, &margin, n_train_ids, D, o.sample_rate, o.seed, comm, &e);
    if (!rc) head.kern = net->kern;
    if (rc) {
        if (root) fprintf(stderr, "mien train: %s\n", e.msg);
        rc = EXIT_FAIL;
        goto done;
    }
    order = malloc((size_t)n_samples * sizeof *order);
    idx = malloc((size_t)Bl * sizeof *idx);
    lab = malloc((size_t)Bl * sizeof *lab);
    flip = calloc((size_t)Bl, 1);
    dx = malloc((size_t)Bl * D * sizeof *dx);
    losses = malloc((size_t)total_steps * sizeof *losses);
    accs = malloc((size_t)total_steps * sizeof *accs);
    if (!order || !idx || !lab || !flip || !dx || !losses || !accs) {
        rc = EXIT_FAIL;
        goto done;
    }

    if (o.bn_init == TR_BN_DATA) {
        tr_epoch_order(o.seed, 0, n_samples, order);
        for (int i = 0; i < Bl; i++) idx[i] = order[comm->rank * Bl + i];
        tr_fill_input_norm(samples, idx, NULL, Bl, S, nd.mean, nd.scale, tr_input(net, 0));
        if (tr_bn_init_from_data(net, &e)) {
            if (root) fprintf(stderr, "mien train: %s\n", e.msg);
            rc = EXIT_FAIL;
            goto done;
        }
    }
    if (o.head_init_data && (rc = head_from_data(net, &head, comm, samples, n_samples, n_train_ids, Bl, &nd, &e))) {
        if (root) fprintf(stderr, "mien train: %s\n", e.msg);
        goto done;
    }
    if (root && n_pairs && !o.no_eval_before)
        rc = eval_holdout(net, &nd, &crops, pairs, n_pairs, c.threads, &acc0, &acc0_std, &thr0);
    if (rc) goto done;
    if (root && !c.json && !c.quiet) {
        fprintf(stderr, "mien train: %s %s, %d identities (%d photos) for training, %d held out; "
                        "%lld steps of %d (%d process%s)\n",
                desc_name(&nd), tr_loss_name(o.loss), n_train_ids, n_samples, n_hold,
                (long long)total_steps, B, comm->size, comm->size > 1 ? "es" : "");
        if (n_pairs) fprintf(stderr, "mien train: held-out accuracy before: %.2f%% +- %.2f (%d pairs)\n",
                             100 * acc0, 100 * acc0_std, n_pairs);
    }

    tr_optim opt;
    tr_optim_default(&opt, o.opt);
    if (o.momentum_set) opt.momentum = o.momentum;
    if (o.wd_set) opt.weight_decay = o.weight_decay;
    tr_sched sch = {.kind = o.sched, .base_lr = o.lr_set ? o.lr : opt.lr, .total = total_steps,
                    .gamma = o.lr_gamma, .n_steps = o.n_lr_steps};
    sch.warmup = o.warmup >= 0 ? o.warmup : total_steps / 20;
    for (int k = 0; k < o.n_lr_steps; k++) sch.steps[k] = (int64_t)o.lr_steps[k] * steps_per_epoch;

    const int progress = root && !c.quiet && !c.json && isatty(STDERR_FILENO);
    double t_start = cli_now(), t_train = 0;
    int64_t step = 0;
    for (int64_t epoch = 0; step < total_steps && !rc; epoch++) {
        tr_epoch_order(o.seed, epoch, n_samples, order);
        for (int64_t b = 0; b < steps_per_epoch && step < total_steps && !rc; b++, step++) {
            double t0 = cli_now();
            for (int i = 0; i < Bl; i++) {
                int gi = (int)(b * B) + comm->rank * Bl + i;
                idx[i] = order[gi];
                lab[i] = samples[idx[i]].label;
                flip[i] = !o.no_flip && (tr_hash3(o.seed ^ 0xf11bULL, (uint64_t)epoch, (uint64_t)idx[i]) & 1);
            }
            tr_fill_input_norm(samples, idx, flip, Bl, S, nd.mean, nd.scale, tr_input(net, 0));
            opt.lr = tr_sched_lr(&sch, step);
            double loss = 0, acc = 0;
            const float *dout[1] = {dx};
            if (tr_forward(net, &e) ||
                tr_head_step(&head, comm, step, tr_output(net, 0), lab, Bl, dx, &loss, &acc, &e) ||
                tr_backward(net, dout, &e)) {
                rc = EXIT_FAIL;
                break;
            }
            if (comm->sum_f(comm->ctx, net->gbuf, net->gbuf_n)) {
                rc = mien_err_set(&e, MIEN_EINTERNAL, "gradient allreduce failed");
                break;
            }
            tr_optim_tick(&opt);
            if (tr_optim_step_net(&opt, net, &e) || tr_head_update(&head, &opt, &e)) {
                rc = EXIT_FAIL;
                break;
            }
            if (!isfinite(loss)) {
                rc = mien_err_set(&e, MIEN_EINVAL, "the loss diverged at step %lld (lower --lr?)", (long long)step);
                break;
            }
            double dt = cli_now() - t0;
            t_train += dt;
            losses[step] = (float)loss;
            accs[step] = (float)acc;
            if (root && c.json) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddNumberToObject(j, "step", (double)step);
                cJSON_AddNumberToObject(j, "epoch", (double)epoch);
                cJSON_AddNumberToObject(j, "loss", loss);
                cJSON_AddNumberToObject(j, "accuracy", acc);
                cJSON_AddNumberToObject(j, "lr", opt.lr);
                cJSON_AddNumberToObject(j, "images_per_s", B / dt);
                cli_print_json(j);
                fflush(stdout);
            }
            if (progress) {
                fprintf(stderr, "\rstep %lld/%lld  epoch %lld  loss %.4f  acc %.3f  lr %.4g  %.1f img/s   ",
                        (long long)step + 1, (long long)total_steps, (long long)epoch + 1, loss, acc,
                        (double)opt.lr, B * (double)(step + 1) / (t_train + 1e-9));
                fflush(stderr);
            }
        }
    }
    if (progress) fputc('\n', stderr);
    if (rc) {
        fprintf(stderr, "mien train: rank %d: %s\n", comm->rank, e.msg);
        goto done;
    }
    /* Held-out accuracy after, the checkpoint, the curve. */
    if (root) {
        if (n_pairs) rc = eval_holdout(net, &nd, &crops, pairs, n_pairs, c.threads, &acc1, &acc1_std, &thr1);
        nn_ckpt ts;
        if (!rc && !(rc = desc_export(net, &nd, &ts, &e))) {
            char v[64];
            nn_ckpt_set_meta(&ts, "loss", tr_loss_name(o.loss), &e);
            snprintf(v, sizeof v, "%.4f", n_pairs ? thr1 : 0.3);
            nn_ckpt_set_meta(&ts, "threshold", v, &e);
            snprintf(v, sizeof v, "%lld", (long long)step);
            nn_ckpt_set_meta(&ts, "steps", v, &e);
            if (nn_ckpt_save(o.out, &ts, &e)) rc = EXIT_FAIL;
            nn_ckpt_free(&ts);
        }
        if (rc) fprintf(stderr, "mien train: %s\n", e.msg);
        char title[160];
        const char *tn = strrchr(desc_name(&nd), '/');
        snprintf(title, sizeof title, "mien train: %s, %s", tn ? tn + 1 : desc_name(&nd), tr_loss_name(o.loss));
        if (!rc) rc = plot_curve(plot_path, losses, accs, (int)step, title);
    }
    if (root && !rc) {
        double ips = (double)step * B / (t_train + 1e-9);
        if (c.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddBoolToObject(j, "summary", 1);
            cJSON_AddStringToObject(j, "arch", nd.loaded ? "loaded" : nn_arch_name(o.arch));
            if (nd.loaded) cJSON_AddStringToObject(j, "base", nd.lo.path);
            cJSON_AddStringToObject(j, "loss", tr_loss_name(o.loss));
            cJSON_AddNumberToObject(j, "processes", comm->size);
            cJSON_AddNumberToObject(j, "identities", n_train_ids);
            cJSON_AddNumberToObject(j, "images", n_samples);
            cJSON_AddNumberToObject(j, "steps", (double)step);
            cJSON_AddNumberToObject(j, "batch", B);
            cJSON_AddNumberToObject(j, "loss_first", losses[0]);
            cJSON_AddNumberToObject(j, "loss_last", losses[step - 1]);
            cJSON_AddNumberToObject(j, "accuracy_last", accs[step - 1]);
            cJSON_AddNumberToObject(j, "images_per_s", ips);
            cJSON_AddNumberToObject(j, "seconds", cli_now() - t_start);
            cJSON_AddNumberToObject(j, "train_bytes", (double)tr_net_bytes(net) + (double)head.step_bytes);
            if (n_pairs) {
                cJSON_AddNumberToObject(j, "holdout_pairs", n_pairs);
                cJSON_AddNumberToObject(j, "holdout_accuracy_before", acc0);
                cJSON_AddNumberToObject(j, "holdout_accuracy_after", acc1);
                cJSON_AddNumberToObject(j, "holdout_accuracy_std_after", acc1_std);
                cJSON_AddStringToObject(j, "pairs", pairs_path);
            }
            cJSON_AddStringToObject(j, "checkpoint", o.out);
            cJSON_AddStringToObject(j, "plot", plot_path);
            cli_print_json(j);
        } else {
            printf("trained %s with %s: %lld steps of %d, loss %.4f -> %.4f, %.1f images/s\n",
                   desc_name(&nd), tr_loss_name(o.loss), (long long)step, B, (double)losses[0],
                   (double)losses[step - 1], ips);
            if (n_pairs)
                printf("held-out accuracy %.2f%% -> %.2f%% +- %.2f (%d pairs in %s)\n", 100 * acc0,
                       100 * acc1, 100 * acc1_std, n_pairs, pairs_path);
            printf("checkpoint %s, loss curve %s\n", o.out, plot_path);
        }
    }
    (void)thr0;
done:
    tr_head_free(&head);
    tr_net_free(net);
    nn_ckpt_free(&init);
    tr_crops_free(&crops);
    tr_listing_free(&l);
    free(samples);
    free(hold);
    free(train_ids);
    free(order);
    free(idx);
    free(lab);
    free(flip);
    free(dx);
    free(losses);
    free(accs);
    free(pairs);
    return rc ? EXIT_FAIL : EXIT_OK;
}

int cmd_train(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "attribute")) return cmd_train_attribute(argc - 1, argv + 1);
    return cmd_train_with(argc, argv, tr_comm_single());
}
