/* mien train attribute: a face attribute classifier (the mask) trained with mien's training
 * engine (src/train) as a linear head on the features of a pretrained analysis model.
 *
 * The photos of a labelled folder (labels.tsv, as mien eval analysis reads it) are split in
 * two halves by a fixed rule (cli_split_halves: within each group of equal label and kind,
 * sorted by path, every other photo), the head is trained on one half and measured on the
 * other, which it never saw. Each face is cropped as its base model crops it (its largest face
 * of the photo, found as mien analyze finds it); the base model's feature vector of the crop
 * and of its mirror image are two training samples. The head is the affine map
 * z = W^T ((f - mean) * scale) + b to two logits (no_mask, mask), trained with the softmax
 * cross-entropy by AdamW on the engine's graph (an FC node with bias), mean and scale being
 * each feature's training mean and 1 / standard deviation. The checkpoint (the engine's
 * format, train/ckpt.c) holds norm/mean, norm/scale, head/w (F, 2), head/b (2) and metadata:
 * kind=attribute, task, base, feat, classes, and the split. */
#include "cli/cli.h"
#include "face/analyze.h"
#include "train/train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: mien train attribute --set DIR --out FILE [options]\n"
    "\n"
    "Train the face mask classifier: a linear head, trained with mien's training engine, on\n"
    "the features of a pretrained analysis model. DIR/labels.tsv names the photos with a\n"
    "column label (mask or no_mask) and optionally kind. The photos are split in two halves\n"
    "(within each label and kind, sorted by path, every other photo); the head learns from\n"
    "one half (--part) and is measured on the other, which it never sees. Faces are found\n"
    "as mien analyze finds them (the largest of each photo).\n"
    "\n"
    "  --set DIR          the labelled folder (../shared/data/analysis/mask)\n"
    "  --out FILE         the checkpoint (mien analyze reads models/mien/mask.ckpt)\n"
    "  --part P           the half to train on, 0 (default) or 1; --part all trains on every\n"
    "                     photo (then nothing is left to measure it on)\n"
    "  --features MODEL   the base model whose features the head reads: faceapi-expression\n"
    "                     (default, 256) or faceapi (the age and gender net, 512)\n"
    "  --epochs N         passes over the training half (default 300)\n"
    "  --lr LR            AdamW learning rate (default 0.01)\n"
    "  --weight-decay W   AdamW's decoupled weight decay (default 0.1)\n"
    "  --batch B          (default 32)\n"
    "  --seed N           order of the batches (default 1)\n"
    "  --json             one JSON object: the split, the accuracy on each half, the file\n"
    "  (and the detection options of mien detect)\n";

typedef struct attr_opts {
    const char *set, *out, *features, *part_arg;
    int epochs, batch;
    float lr, wd;
    unsigned long seed;
} attr_opts;

static int attr_extra(void *ctx, const char *opt, const char *v) {
    attr_opts *o = ctx;
    static const char *const valued[] = {"--set", "--out", "--features", "--part", "--epochs",
                                         "--lr", "--weight-decay", "--batch", "--seed"};
    int known = 0;
    for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++) known |= !strcmp(opt, valued[i]);
    if (!known) return -1;
    if (!v) return -2;
    char *end = NULL;
    if (!strcmp(opt, "--set")) o->set = v;
    else if (!strcmp(opt, "--out")) o->out = v;
    else if (!strcmp(opt, "--features")) o->features = v;
    else if (!strcmp(opt, "--part")) {
        if (strcmp(v, "0") && strcmp(v, "1") && strcmp(v, "all")) return -3;
        o->part_arg = v;
    } else if (!strcmp(opt, "--epochs")) {
        long x = strtol(v, &end, 10);
        if (*end || x < 1 || x > 100000) return -3;
        o->epochs = (int)x;
    } else if (!strcmp(opt, "--batch")) {
        long x = strtol(v, &end, 10);
        if (*end || x < 1 || x > 4096) return -3;
        o->batch = (int)x;
    } else if (!strcmp(opt, "--seed")) {
        o->seed = strtoul(v, &end, 10);
        if (*end) return -3;
    } else {
        float x = strtof(v, &end);
        if (*end || !isfinite(x) || x < 0) return -3;
        if (!strcmp(opt, "--lr")) o->lr = x;
        else o->wd = x;
    }
    return 1;
}

typedef struct photo {
    char *path, *rel, *kind;
    int label;               /* 1 mask, 0 no_mask */
    int part;                /* 0 or 1 */
    int found;
    float *feat;             /* (2, F): the crop and its mirror */
} photo;

static void photos_free(photo *p, int n) {
    for (int i = 0; i < n; i++) free(p[i].path), free(p[i].rel), free(p[i].kind), free(p[i].feat);
    free(p);
}

static int read_set(const char *dir, photo **out, int *n_out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mien train attribute: cannot read %s: %s\n", path, strerror(errno));
        return EXIT_FAIL;
    }
    char line[8192];
    int col_label = -1, col_kind = -1, n = 0, cap = 0, lineno = 0, status = EXIT_OK;
    photo *v = NULL;
    while (fgets(line, sizeof line, f) && status == EXIT_OK) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        char *fields[32];
        int nf = 0;
        for (char *p = line, *tab; nf < 32; p = tab + 1) {
            fields[nf++] = p;
            if (!(tab = strchr(p, '\t'))) break;
            *tab = '\0';
        }
        if (lineno == 1) {
            for (int k = 1; k < nf; k++) {
                if (!strcmp(fields[k], "label")) col_label = k;
                if (!strcmp(fields[k], "kind")) col_kind = k;
            }
            if (fields[0][0] != '#' || col_label < 0) {
                fprintf(stderr, "mien train attribute: %s: the first line must name the columns, "
                        "one of them label\n", path);
                status = EXIT_FAIL;
            }
            continue;
        }
        if (col_label >= nf || (strcmp(fields[col_label], "mask") && strcmp(fields[col_label], "no_mask"))) {
            fprintf(stderr, "mien train attribute: %s:%d: the label must be mask or no_mask\n", path, lineno);
            status = EXIT_FAIL;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            photo *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                status = EXIT_FAIL;
                break;
            }
            v = nv;
        }
        photo *p = &v[n++];
        memset(p, 0, sizeof *p);
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, fields[0]);
        p->path = strdup(full);
        p->rel = strdup(fields[0]);
        p->kind = strdup(col_kind > 0 && col_kind < nf ? fields[col_kind] : "");
        p->label = !strcmp(fields[col_label], "mask");
        if (!p->path || !p->rel || !p->kind) status = EXIT_FAIL;
    }
    fclose(f);
    if (status == EXIT_OK && n < 4) {
        fprintf(stderr, "mien train attribute: %s: too few photos\n", path);
        status = EXIT_FAIL;
    }
    if (status) {
        photos_free(v, n);
        return status;
    }
    *out = v;
    *n_out = n;
    return EXIT_OK;
}

typedef struct feat_job {
    const cli_common *c;
    photo *p;
    const char *model;
    int dim;                 /* set by the first face */
} feat_job;

static int feat_one(void *ctx, mien_session *s, int worker, int i) {
    feat_job *j = ctx;
    photo *p = &j->p[i];
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0, bordered = 0, rc = mien_image_load(s, p->path, &img);
    if (!rc) rc = cli_detect_with_border(s, &img, &j->c->det, &faces, &n, &bordered);
    if (!rc && n > 0) {
        const int cap = 4096;
        p->feat = malloc(2 * (size_t)cap * sizeof *p->feat);
        int d0 = 0, d1 = 0;
        if (!p->feat) rc = MIEN_ENOMEM;
        const mien_face *f = &faces[cli_pick_largest(faces, n)];
        if (!rc) rc = an_features(s, &img, f, j->model, 0, p->feat, cap, &d0);
        if (!rc) rc = an_features(s, &img, f, j->model, 1, p->feat + d0, cap, &d1);
        if (!rc) {
            j->dim = d0; /* the same model for every photo: the same size */
            p->found = 1;
        }
    }
    if (rc) fprintf(stderr, "mien train attribute: %s: %s\n", p->path, mien_errmsg(s));
    free(faces);
    mien_image_free(&img);
    return rc == MIEN_ENOMEM ? EXIT_FAIL : 0;
}

/* The head's two logits for feature vector f (normalised with mean, scale). */
static void logits(const float *f, const float *mean, const float *scale, const float *w,
                   const float *b, int F, double z[2]) {
    z[0] = b[0];
    z[1] = b[1];
    for (int i = 0; i < F; i++) {
        double v = ((double)f[i] - mean[i]) * scale[i];
        z[0] += v * w[2 * i];
        z[1] += v * w[2 * i + 1];
    }
}

/* Accuracy of the head on the photos of part `part` (-1: all): the mean of the two views'
 * probabilities, as mien analyze computes it. */
static void measure(const photo *p, int n, int part, int F, const float *mean, const float *scale,
                    const float *w, const float *b, int *ok, int *total, int *missing,
                    int ok_kind[2], int n_kind[2]) {
    *ok = *total = *missing = 0;
    ok_kind[0] = ok_kind[1] = n_kind[0] = n_kind[1] = 0;
    for (int i = 0; i < n; i++) {
        if (part >= 0 && p[i].part != part) continue;
        if (!p[i].found) {
            (*missing)++;
            continue;
        }
        double pm = 0;
        for (int v = 0; v < 2; v++) {
            double z[2];
            logits(p[i].feat + (size_t)v * F, mean, scale, w, b, F, z);
            pm += 0.5 / (1.0 + exp(z[0] - z[1]));
        }
        int right = (pm >= 0.5) == p[i].label;
        *ok += right;
        (*total)++;
        int kk = !strcmp(p[i].kind, "photo");
        ok_kind[kk] += right;
        n_kind[kk]++;
    }
}

int cmd_train_attribute(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    attr_opts o = {.features = "faceapi-expression", .part_arg = "0", .epochs = 300, .batch = 32,
                   .lr = 0.01f, .wd = 0.1f, .seed = 1};
    if (cli_parse(&c, &argc, argv, attr_extra, &o, usage)) return EXIT_USAGE;
    if (argc != 1 || !o.set || !o.out) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    photo *p = NULL;
    int n = 0;
    if (read_set(o.set, &p, &n)) return EXIT_FAIL;
    const int train_part = !strcmp(o.part_arg, "all") ? -1 : atoi(o.part_arg);
    {
        const char **rel = malloc((size_t)n * sizeof *rel), **grp = malloc((size_t)n * sizeof *grp);
        char (*g)[160] = malloc((size_t)n * sizeof *g);
        int *part = malloc((size_t)n * sizeof *part);
        if (!rel || !grp || !g || !part) {
            free(rel), free(grp), free(g), free(part);
            photos_free(p, n);
            return EXIT_FAIL;
        }
        for (int i = 0; i < n; i++) {
            snprintf(g[i], sizeof g[i], "%d\t%s", p[i].label, p[i].kind);
            rel[i] = p[i].rel;
            grp[i] = g[i];
        }
        cli_split_halves(rel, grp, n, part);
        for (int i = 0; i < n; i++) p[i].part = part[i];
        free(rel), free(grp), free(g), free(part);
    }
    /* Features: the base model loaded as the expression or the age/gender model. */
    const struct { const char *name, *analysis; unsigned task; } bases[] = {
        {"faceapi-expression", "expression=faceapi-expression", MIEN_ANALYZE_EXPRESSION},
        {"faceapi", "age=faceapi", MIEN_ANALYZE_AGE},
    };
    int bi = -1;
    for (int i = 0; i < 2; i++)
        if (!strcmp(o.features, bases[i].name)) bi = i;
    if (bi < 0) {
        fprintf(stderr, "mien train attribute: --features: faceapi-expression or faceapi\n");
        photos_free(p, n);
        return EXIT_USAGE;
    }
    c.cfg.analyze = bases[bi].task;
    c.cfg.analysis = bases[bi].analysis;
    const int workers = c.threads < n ? c.threads : n;
    c.cfg.threads = cli_intra_threads(&c, workers);
    mien_models *m = cli_open_models(&c);
    if (!m) {
        photos_free(p, n);
        return EXIT_FAIL;
    }
    feat_job fj = {&c, p, o.features, 0};
    int rc = cli_parallel(m, workers, n, feat_one, &fj, "features", c.quiet);
    mien_models_close(m);
    const int F = fj.dim;
    int n_train = 0;
    for (int i = 0; i < n; i++) n_train += p[i].found && (train_part < 0 || p[i].part == train_part);
    if (rc || F <= 0 || n_train < 2) {
        fprintf(stderr, "mien train attribute: %s\n", rc ? "feature extraction failed" : "too few faces to train on");
        photos_free(p, n);
        return EXIT_FAIL;
    }
    /* The training samples: both views of every face of the training half. */
    const int N = 2 * n_train;
    float *X = malloc((size_t)N * F * sizeof *X), *mean = calloc((size_t)F, sizeof *mean);
    float *scale = malloc((size_t)F * sizeof *scale);
    int *Y = malloc((size_t)N * sizeof *Y);
    int status = X && mean && scale && Y ? EXIT_OK : EXIT_FAIL;
    int k = 0;
    for (int i = 0; status == EXIT_OK && i < n; i++) {
        if (!p[i].found || (train_part >= 0 && p[i].part != train_part)) continue;
        memcpy(X + (size_t)k * F, p[i].feat, 2 * (size_t)F * sizeof *X);
        Y[k] = Y[k + 1] = p[i].label;
        k += 2;
    }
    if (status == EXIT_OK) {
        double *s1 = calloc((size_t)F, sizeof *s1), *s2 = calloc((size_t)F, sizeof *s2);
        if (!s1 || !s2) status = EXIT_FAIL;
        for (int r = 0; status == EXIT_OK && r < N; r++)
            for (int j = 0; j < F; j++) s1[j] += X[(size_t)r * F + j], s2[j] += (double)X[(size_t)r * F + j] * X[(size_t)r * F + j];
        for (int j = 0; status == EXIT_OK && j < F; j++) {
            double mu = s1[j] / N, var = s2[j] / N - mu * mu;
            mean[j] = (float)mu;
            scale[j] = (float)(1.0 / sqrt(var > 1e-8 ? var : 1e-8));
        }
        for (int r = 0; status == EXIT_OK && r < N; r++)
            for (int j = 0; j < F; j++) X[(size_t)r * F + j] = (X[(size_t)r * F + j] - mean[j]) * scale[j];
        free(s1);
        free(s2);
    }
    /* The head on the engine: input (B, F) -> FC with bias -> logits (B, 2). */
    const int B = o.batch < N ? o.batch : N;
    tr_net *net = NULL;
    mien_err e = {0};
    float *w_out = calloc((size_t)F * 2, sizeof *w_out), b_out[2] = {0, 0};
    if (status == EXIT_OK && w_out) {
        nn_graph *g = nn_graph_new("mask_head");
        float *w0 = malloc((size_t)F * 2 * sizeof *w0), *b0 = calloc(2, sizeof *b0);
        if (!g) free(w0), free(b0);
        int ok = g && w0 && b0 && nn_graph_own(g, w0) && nn_graph_own(g, b0);
        if (ok) /* small random start, fixed by the seed */
            for (int i = 0; i < 2 * F; i++) w0[i] = 0.01f * (float)tr_normal(o.seed, 7, (uint64_t)i);
        int64_t dx[2] = {B, F}, dw[2] = {F, 2}, db[1] = {2};
        int tx = ok ? nn_add_input(g, "features", 2, dx, &e) : -1;
        int tw = tx >= 0 ? nn_add_const_ref(g, "head/w", 2, dw, w0, &e) : -1;
        int tb = tw >= 0 ? nn_add_const_ref(g, "head/b", 1, db, b0, &e) : -1;
        int ty = tb >= 0 ? nn_add_fc(g, "logits", tx, tw, tb, -1, NN_ACT_NONE, &e) : -1;
        if (ty >= 0 && !nn_mark_output(g, ty, &e)) {
            int params[2] = {tw, tb}, decay[2] = {1, 0};
            if (tr_net_create(g, params, decay, 2, NULL, &net, &e)) net = NULL;
        } else {
            nn_graph_free(g);
        }
        if (!net) {
            fprintf(stderr, "mien train attribute: %s\n", e.msg[0] ? e.msg : "out of memory");
            status = EXIT_FAIL;
        }
    } else {
        status = EXIT_FAIL;
    }
    double loss_first = -1, loss_last = -1;
    if (status == EXIT_OK) {
        tr_optim opt;
        tr_optim_default(&opt, TR_ADAMW);
        opt.weight_decay = o.wd;
        tr_sched sch = {.kind = TR_SCHED_COSINE, .base_lr = o.lr, .warmup = 0};
        const int steps_per_epoch = (N + B - 1) / B;
        sch.total = (int64_t)o.epochs * steps_per_epoch;
        int *order = malloc((size_t)N * sizeof *order);
        float *dz = malloc((size_t)B * 2 * sizeof *dz);
        if (!order || !dz) status = EXIT_FAIL;
        int64_t step = 0;
        for (int ep = 0; status == EXIT_OK && ep < o.epochs; ep++) {
            for (int i = 0; i < N; i++) order[i] = i;
            for (int i = N - 1; i > 0; i--) { /* Fisher-Yates from the counter-based hash */
                int j = (int)(tr_hash3(o.seed, (uint64_t)ep, (uint64_t)i) % (uint64_t)(i + 1));
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
            double ep_loss = 0;
            int ep_n = 0;
            for (int s0 = 0; s0 < N && status == EXIT_OK; s0 += B) {
                /* a full batch every step: the last one wraps around to the start */
                float *in = tr_input(net, 0);
                int lab[4096];
                for (int r = 0; r < B; r++) {
                    int idx = order[(s0 + r) % N];
                    memcpy(in + (size_t)r * F, X + (size_t)idx * F, (size_t)F * sizeof *in);
                    lab[r] = Y[idx];
                }
                if (tr_forward(net, &e)) {
                    status = EXIT_FAIL;
                    break;
                }
                const float *z = tr_output(net, 0);
                for (int r = 0; r < B; r++) { /* softmax cross-entropy, mean over the batch */
                    double mx = fmax(z[2 * r], z[2 * r + 1]);
                    double e0 = exp(z[2 * r] - mx), e1 = exp(z[2 * r + 1] - mx), sum = e0 + e1;
                    double pr[2] = {e0 / sum, e1 / sum};
                    ep_loss += -log(fmax(pr[lab[r]], 1e-12));
                    ep_n++;
                    for (int cc = 0; cc < 2; cc++)
                        dz[2 * r + cc] = (float)((pr[cc] - (cc == lab[r])) / B);
                }
                const float *douts[1] = {dz};
                opt.lr = tr_sched_lr(&sch, step++);
                tr_optim_tick(&opt);
                if (tr_backward(net, douts, &e) || tr_optim_step_net(&opt, net, &e)) {
                    status = EXIT_FAIL;
                    break;
                }
            }
            if (ep == 0) loss_first = ep_loss / ep_n;
            loss_last = ep_loss / ep_n;
        }
        if (status != EXIT_OK) fprintf(stderr, "mien train attribute: %s\n", e.msg);
        free(order);
        free(dz);
        if (status == EXIT_OK) {
            tr_param *pw = tr_find_param(net, "head/w"), *pb = tr_find_param(net, "head/b");
            if (pw && pb) {
                memcpy(w_out, pw->w, (size_t)F * 2 * sizeof *w_out);
                b_out[0] = pb->w[0];
                b_out[1] = pb->w[1];
            } else {
                status = EXIT_FAIL;
            }
        }
    }
    tr_net_free(net);
    /* Accuracy on each half, and the checkpoint. */
    int tr_ok = 0, tr_n = 0, tr_miss = 0, te_ok = 0, te_n = 0, te_miss = 0, kok[2], kn[2], tkok[2], tkn[2];
    if (status == EXIT_OK) {
        measure(p, n, train_part, F, mean, scale, w_out, b_out, &tr_ok, &tr_n, &tr_miss, kok, kn);
        if (train_part >= 0)
            measure(p, n, 1 - train_part, F, mean, scale, w_out, b_out, &te_ok, &te_n, &te_miss, tkok, tkn);
        nn_ckpt ck = {0};
        int64_t dF[1] = {F}, dW[2] = {F, 2}, dB[1] = {2};
        char buf[64];
        int rc2 = nn_ckpt_add(&ck, "norm/mean", 1, dF, mean, &e);
        if (!rc2) rc2 = nn_ckpt_add(&ck, "norm/scale", 1, dF, scale, &e);
        if (!rc2) rc2 = nn_ckpt_add(&ck, "head/w", 2, dW, w_out, &e);
        if (!rc2) rc2 = nn_ckpt_add(&ck, "head/b", 1, dB, b_out, &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "kind", "attribute", &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "task", "mask", &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "classes", "no_mask,mask", &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "base", o.features, &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "feat", "avgpool", &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "train_set", o.set, &e);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "train_part", o.part_arg, &e);
        snprintf(buf, sizeof buf, "%d", tr_n);
        if (!rc2) rc2 = nn_ckpt_set_meta(&ck, "train_faces", buf, &e);
        if (!rc2 && train_part >= 0) {
            snprintf(buf, sizeof buf, "%.4f", te_n ? (double)te_ok / te_n : 0.0);
            rc2 = nn_ckpt_set_meta(&ck, "heldout_accuracy", buf, &e);
        }
        if (!rc2) {
            cli_make_parent_dirs(o.out);
            rc2 = nn_ckpt_save(o.out, &ck, &e);
        }
        nn_ckpt_free(&ck);
        if (rc2) {
            fprintf(stderr, "mien train attribute: %s\n", e.msg);
            status = EXIT_FAIL;
        }
    }
    if (status == EXIT_OK) {
        if (c.json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "set", o.set);
            cJSON_AddStringToObject(j, "out", o.out);
            cJSON_AddStringToObject(j, "features", o.features);
            cJSON_AddNumberToObject(j, "dim", F);
            cJSON_AddStringToObject(j, "train_part", o.part_arg);
            cJSON_AddNumberToObject(j, "train_faces", tr_n);
            cJSON_AddNumberToObject(j, "train_faces_missing", tr_miss);
            cJSON_AddNumberToObject(j, "train_accuracy", round(10000.0 * tr_ok / tr_n) / 10000);
            if (train_part >= 0) {
                cJSON_AddNumberToObject(j, "heldout_faces", te_n);
                cJSON_AddNumberToObject(j, "heldout_faces_missing", te_miss);
                cJSON_AddNumberToObject(j, "heldout_accuracy", te_n ? round(10000.0 * te_ok / te_n) / 10000 : 0);
                if (tkn[0]) cJSON_AddNumberToObject(j, "heldout_accuracy_face_crop", round(10000.0 * tkok[0] / tkn[0]) / 10000);
                if (tkn[1]) cJSON_AddNumberToObject(j, "heldout_accuracy_photo", round(10000.0 * tkok[1] / tkn[1]) / 10000);
            }
            cJSON_AddNumberToObject(j, "loss_first", round(loss_first * 1e4) / 1e4);
            cJSON_AddNumberToObject(j, "loss_last", round(loss_last * 1e4) / 1e4);
            cli_print_json(j);
        } else {
            printf("trained on part %s of %s: %d faces (%d photos without a face), training "
                   "accuracy %.2f%%, loss %.4f -> %.4f\n", o.part_arg, o.set, tr_n, tr_miss,
                   100.0 * tr_ok / tr_n, loss_first, loss_last);
            if (train_part >= 0)
                printf("held-out part %d: accuracy %.2f%% of %d faces (%d photos without a face)\n",
                       1 - train_part, te_n ? 100.0 * te_ok / te_n : 0.0, te_n, te_miss);
            printf("wrote %s\n", o.out);
        }
    }
    free(X);
    free(Y);
    free(mean);
    free(scale);
    free(w_out);
    photos_free(p, n);
    return status;
}
