/* mien eval pairs | landmarks: accuracy measured on public data. */
#include "cli/cli.h"
#include "core/err.h"
#include "eval/verify_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ==== Embedding a list of images on all cores ==== */

typedef enum pick_rule { PICK_CENTRAL, PICK_LARGEST } pick_rule;

typedef struct embed_job {
    const char *root;
    char **paths;            /* (n) relative to root */
    int n, dim;
    float *emb;              /* (n, dim) */
    unsigned char *found;    /* (n) 1 if a face was embedded */
    unsigned char *failed;   /* (n) 1 if the image could not be read */
    unsigned char *retried;  /* (n) 1 if the face was found only by the low-threshold retry */
    mien_face *face;         /* (n) the face used */
    const mien_detect_options *det;
    float retry_score;       /* > 0: when no face is found, detect again at this threshold */
    pick_rule pick;
} embed_job;

static int embed_one(void *ctx, mien_session *s, int worker, int i) {
    embed_job *j = ctx;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->root, j->paths[i]);
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0;
    if (mien_image_load(s, path, &img)) {
        fprintf(stderr, "\nmien eval: %s\n", mien_errmsg(s));
        j->failed[i] = 1;
        return 0;
    }
    int rc = mien_detect(s, &img, j->det, &faces, &n);
    if (!rc && n == 0 && j->retry_score > 0) {
        /* The protocol says there is a face: look again at a low threshold. */
        mien_detect_options low = *j->det;
        low.min_score = j->retry_score;
        free(faces);
        faces = NULL;
        rc = mien_detect(s, &img, &low, &faces, &n);
        j->retried[i] = !rc && n > 0;
    }
    if (!rc && n > 0) {
        int k = j->pick == PICK_LARGEST ? cli_pick_largest(faces, n)
                                        : cli_pick_central(faces, n, img.width, img.height);
        rc = mien_embed(s, &img, &faces[k], j->emb + (size_t)i * j->dim);
        if (!rc) {
            j->found[i] = 1;
            j->face[i] = faces[k];
        }
    }
    if (rc) fprintf(stderr, "\nmien eval: %s: %s\n", path, mien_errmsg(s));
    free(faces);
    mien_image_free(&img);
    return rc ? EXIT_FAIL : 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Unique sorted list of the image paths of all pairs. */
static char **unique_paths(const ve_pairs *p, int *n_out) {
    char **v = malloc((size_t)(2 * p->n + 1) * sizeof *v);
    if (!v) return NULL;
    int n = 0;
    for (int i = 0; i < p->n; i++) {
        v[n++] = p->v[i].a;
        v[n++] = p->v[i].b;
    }
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (u == 0 || strcmp(v[u - 1], v[i]) != 0) v[u++] = v[i];
    *n_out = u;
    return v;
}

static int index_of(char **v, int n, const char *s) {
    char **hit = bsearch(&s, v, (size_t)n, sizeof *v, cmp_str);
    return hit ? (int)(hit - v) : -1;
}

static int dump_embeddings(const char *path, const embed_job *j) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "mien eval pairs: cannot write %s\n", path);
        return EXIT_FAIL;
    }
    for (int i = 0; i < j->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", j->paths[i]);
        cJSON_AddBoolToObject(o, "found", j->found[i]);
        if (j->found[i]) cJSON_AddItemToObject(o, "embedding", cJSON_CreateFloatArray(j->emb + (size_t)i * j->dim, j->dim));
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) fprintf(f, "%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    }
    return fclose(f) ? EXIT_FAIL : EXIT_OK;
}

/* ==== eval pairs ==== */

static const char pairs_usage[] =
    "usage: mien eval pairs --pairs FILE --root DIR [--json] [--roc OUT.png] [options]\n"
    "\n"
    "Face verification accuracy on a pairs protocol. FILE is LFW's pairs.txt (View 2: 10 folds\n"
    "of 300 same + 300 different pairs) or a file of lines 'pathA<TAB>pathB<TAB>0|1<TAB>fold'\n"
    "(paths relative to DIR, 1 = same person). Reports k-fold accuracy (threshold chosen on the\n"
    "other folds, tested on the held-out one) as mean +- std, TAR at FAR 1e-3, ROC AUC, EER,\n"
    "and how many images had no detected face: they are detected again at a low threshold\n"
    "(--retry-score, default 0.2; 0 = never), and pairs still without a face count as\n"
    "'different' (rejected).\n"
    "\n"
    "  --json            one JSON object; key \"accuracy\" holds the mean\n"
    "  --roc OUT.png     draw the ROC curve\n"
    "  --pick RULE       which face of a photo: central (default: nearest the centre among\n"
    "                    the large ones, as LFW's labelled face is centred) or largest\n"
    "  --threads N       images in parallel (default: all cores)\n"
    "  --retry-score S   threshold of the second look at photos without a face (default 0.2)\n"
    "  --dump FILE       write every image's embedding as JSON lines {path, found, embedding}\n"
    "  (and the model and detection options of mien detect)\n";

typedef struct pairs_opts {
    const char *pairs, *root, *roc, *dump;
    pick_rule pick;
    float retry_score;
} pairs_opts;

static int pairs_extra(void *ctx, const char *opt, const char *val) {
    pairs_opts *p = ctx;
    const char **slot = !strcmp(opt, "--pairs") ? &p->pairs
                        : !strcmp(opt, "--root") ? &p->root
                        : !strcmp(opt, "--roc")  ? &p->roc
                        : !strcmp(opt, "--dump") ? &p->dump
                                                 : NULL;
    if (slot) {
        if (!val) return -2;
        *slot = val;
        return 1;
    }
    if (!strcmp(opt, "--retry-score")) {
        if (!val) return -2;
        char *e;
        p->retry_score = strtof(val, &e);
        return (*e || !(p->retry_score >= 0 && p->retry_score <= 1)) ? -3 : 1;
    }
    if (!strcmp(opt, "--pick")) {
        if (!val) return -2;
        if (!strcmp(val, "central")) p->pick = PICK_CENTRAL;
        else if (!strcmp(val, "largest")) p->pick = PICK_LARGEST;
        else return -3;
        return 1;
    }
    return -1;
}

static int eval_pairs(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    pairs_opts po = {.retry_score = 0.2f};
    if (cli_parse(&c, &argc, argv, pairs_extra, &po, pairs_usage)) return EXIT_USAGE;
    if (!po.pairs || !po.root || argc != 1) {
        fputs(pairs_usage, stderr);
        return EXIT_USAGE;
    }
    mien_err e = {0};
    ve_pairs pairs;
    if (ve_pairs_load(po.pairs, &pairs, &e)) {
        fprintf(stderr, "mien eval pairs: %s\n", e.msg);
        return EXIT_FAIL;
    }
    c.cfg.threads = 1; /* one thread per session: parallel over images instead */
    mien_models *m = cli_open_models(&c);
    if (!m) {
        ve_pairs_free(&pairs);
        return EXIT_FAIL;
    }
    embed_job j = {.root = po.root, .det = &c.det, .pick = po.pick, .retry_score = po.retry_score};
    j.dim = mien_models_embedding_dim(m);
    j.paths = unique_paths(&pairs, &j.n);
    int status = EXIT_FAIL;
    float *score = NULL;
    int *same = NULL, *fold = NULL;
    ve_set set = {0};
    ve_roc roc = {0};
    if (!j.paths) goto done;
    j.emb = calloc((size_t)j.n * j.dim, sizeof *j.emb);
    j.found = calloc((size_t)j.n, 1);
    j.failed = calloc((size_t)j.n, 1);
    j.retried = calloc((size_t)j.n, 1);
    j.face = calloc((size_t)j.n, sizeof *j.face);
    score = malloc((size_t)pairs.n * sizeof *score);
    same = malloc((size_t)pairs.n * sizeof *same);
    fold = malloc((size_t)pairs.n * sizeof *fold);
    if (!j.emb || !j.found || !j.failed || !j.retried || !j.face || !score || !same || !fold)
        goto done;
    double t0 = cli_now();
    if (cli_parallel(m, c.threads, j.n, embed_one, &j, "embedding", c.quiet)) goto done;
    double secs = cli_now() - t0;
    int no_face = 0, unreadable = 0, missing = 0, retried = 0;
    for (int i = 0; i < j.n; i++) {
        no_face += !j.found[i] && !j.failed[i];
        unreadable += j.failed[i];
        retried += j.retried[i];
    }
    if (po.dump && dump_embeddings(po.dump, &j)) goto done;
    for (int i = 0; i < pairs.n; i++) {
        int a = index_of(j.paths, j.n, pairs.v[i].a), b = index_of(j.paths, j.n, pairs.v[i].b);
        same[i] = pairs.v[i].same;
        fold[i] = pairs.v[i].fold;
        if (a < 0 || b < 0 || !j.found[a] || !j.found[b]) {
            score[i] = NAN;
            missing++;
            continue;
        }
        score[i] = mien_similarity(j.emb + (size_t)a * j.dim, j.emb + (size_t)b * j.dim, j.dim);
    }
    ve_report r;
    if (ve_set_build(&set, pairs.n, score, NULL, same, fold, VE_MISSING_REJECT, &e) ||
        ve_evaluate(&set, NULL, &r, &e)) {
        fprintf(stderr, "mien eval pairs: %s\n", e.msg);
        goto done;
    }
    if (po.roc) {
        if (ve_roc_compute(&set, &roc, &e)) {
            fprintf(stderr, "mien eval pairs: %s\n", e.msg);
            goto done;
        }
        char title[256];
        snprintf(title, sizeof title, "%s + %s on %s", c.cfg.detector, mien_models_embedder_name(m),
                 po.pairs);
        ve_curve curve = {mien_models_embedder_name(m), &roc};
        if (ve_plot_roc(po.roc, &curve, 1, title, &e)) {
            fprintf(stderr, "mien eval pairs: %s\n", e.msg);
            goto done;
        }
    }
    if (c.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "pairs_file", po.pairs);
        cJSON_AddStringToObject(o, "detector", c.cfg.detector);
        cJSON_AddStringToObject(o, "landmarks", c.cfg.landmarks);
        cJSON_AddStringToObject(o, "embedder", mien_models_embedder_name(m));
        cJSON_AddBoolToObject(o, "flip", c.cfg.flip != 0);
        cJSON_AddNumberToObject(o, "pairs", pairs.n);
        cJSON_AddNumberToObject(o, "folds", r.kfold.n_folds);
        cJSON_AddNumberToObject(o, "accuracy", r.kfold.acc_mean);
        cJSON_AddNumberToObject(o, "accuracy_std", r.kfold.acc_std);
        cJSON_AddNumberToObject(o, "threshold_mean", r.kfold.thr_mean);
        cJSON_AddNumberToObject(o, "tar_at_far_1e-3", r.at_far_1e3.tar);
        cJSON_AddNumberToObject(o, "threshold_at_far_1e-3", r.at_far_1e3.thr);
        cJSON_AddNumberToObject(o, "tar_at_far_1e-4", r.at_far_1e4.tar);
        cJSON_AddNumberToObject(o, "auc", r.auc);
        cJSON_AddNumberToObject(o, "eer", r.eer);
        cJSON_AddNumberToObject(o, "best_threshold", r.best_thr);
        cJSON_AddNumberToObject(o, "images", j.n);
        cJSON_AddNumberToObject(o, "images_no_face", no_face);
        cJSON_AddNumberToObject(o, "images_face_on_retry", retried);
        cJSON_AddNumberToObject(o, "images_unreadable", unreadable);
        cJSON_AddNumberToObject(o, "pairs_missing", missing);
        cJSON_AddStringToObject(o, "missing_policy", "rejected (counted as different)");
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "images_per_second", j.n / (secs + 1e-9));
        cli_print_json(o);
    } else {
        printf("pairs          %d (%d folds), %d images\n", pairs.n, r.kfold.n_folds, j.n);
        printf("accuracy       %.2f%% +- %.2f%%  (threshold %.4f mean over folds)\n",
               100 * r.kfold.acc_mean, 100 * r.kfold.acc_std, r.kfold.thr_mean);
        printf("TAR@FAR=1e-3   %.2f%%  (threshold %.4f)\n", 100 * r.at_far_1e3.tar, r.at_far_1e3.thr);
        printf("TAR@FAR=1e-4   %.2f%%\n", 100 * r.at_far_1e4.tar);
        printf("ROC AUC        %.5f   EER %.2f%%\n", r.auc, 100 * r.eer);
        printf("no face found  %d images (%d pairs counted as 'different'), %d unreadable;\n"
               "               %d more found only at the retry threshold %.2f\n",
               no_face, missing, unreadable, retried, po.retry_score);
        printf("time           %.1f s, %.1f images/s\n", secs, j.n / (secs + 1e-9));
    }
    status = EXIT_OK;
done:
    if (status != EXIT_OK && !e.msg[0]) fprintf(stderr, "mien eval pairs: failed\n");
    ve_roc_free(&roc);
    ve_set_free(&set);
    free(score);
    free(same);
    free(fold);
    free(j.emb);
    free(j.found);
    free(j.failed);
    free(j.retried);
    free(j.face);
    free(j.paths);
    ve_pairs_free(&pairs);
    mien_models_close(m);
    return status;
}

/* ==== eval landmarks ==== */

static const char landmarks_usage[] =
    "usage: mien eval landmarks --list FILE --root DIR [--json] [options]\n"
    "\n"
    "Landmark error against 5-point ground truth (lines 'path left right top bottom x1 y1 ...\n"
    "x5 y5': eye, eye, nose tip, mouth corner, mouth corner, as CUHK's LFW landmarks). The\n"
    "error of each point is its distance to the truth divided by the distance between the true\n"
    "eye centres (NME). A source without mouth corners is scored on its mouth centre against\n"
    "the midpoint of the true corners.\n"
    "\n"
    "  --json            one JSON object\n"
    "  (and the model and detection options of mien detect)\n";

typedef struct lm_opts { const char *list, *root; } lm_opts;

static int lm_extra(void *ctx, const char *opt, const char *val) {
    lm_opts *p = ctx;
    const char **slot = !strcmp(opt, "--list") ? &p->list : !strcmp(opt, "--root") ? &p->root : NULL;
    if (!slot) return -1;
    if (!val) return -2;
    *slot = val;
    return 1;
}

typedef struct lm_item {
    char *path;
    float box[4];            /* left, right, top, bottom */
    float pt[5][2];
    int detected;
    float err[5];            /* NME per point */
    int n_points;
} lm_item;

typedef struct lm_job {
    const char *root;
    lm_item *items;
    const mien_detect_options *det;
} lm_job;

static int lm_one(void *ctx, mien_session *s, int worker, int i) {
    lm_job *j = ctx;
    lm_item *it = &j->items[i];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->root, it->path);
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0;
    if (mien_image_load(s, path, &img) || mien_detect(s, &img, j->det, &faces, &n)) {
        fprintf(stderr, "\nmien eval landmarks: %s\n", mien_errmsg(s));
        mien_image_free(&img);
        return 0;
    }
    /* The detection whose box centre is nearest the true box centre, if it lies inside. */
    float gx = (it->box[0] + it->box[1]) * 0.5f, gy = (it->box[2] + it->box[3]) * 0.5f;
    int best = -1;
    float dbest = INFINITY;
    for (int k = 0; k < n; k++) {
        float dx = faces[k].box[0] + faces[k].box[2] * 0.5f - gx;
        float dy = faces[k].box[1] + faces[k].box[3] * 0.5f - gy;
        float d = dx * dx + dy * dy;
        if (d < dbest && fabsf(dx) < faces[k].box[2] * 0.5f && fabsf(dy) < faces[k].box[3] * 0.5f)
            dbest = d, best = k;
    }
    if (best >= 0) {
        const mien_face *f = &faces[best];
        float iod = hypotf(it->pt[1][0] - it->pt[0][0], it->pt[1][1] - it->pt[0][1]);
        it->detected = 1;
        it->n_points = f->n_points;
        for (int p = 0; p < 5; p++) {
            float tx = it->pt[p][0], ty = it->pt[p][1];
            if (f->n_points == 4 && p >= 3) {
                tx = (it->pt[3][0] + it->pt[4][0]) * 0.5f;
                ty = (it->pt[3][1] + it->pt[4][1]) * 0.5f;
            }
            /* Ground truth is in OpenCV pixel coordinates (centres at integers). */
            it->err[p] = hypotf(f->points[p][0] - (tx + 0.5f), f->points[p][1] - (ty + 0.5f)) / iod;
        }
    }
    free(faces);
    mien_image_free(&img);
    return 0;
}

static int eval_landmarks(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    lm_opts lo = {0};
    if (cli_parse(&c, &argc, argv, lm_extra, &lo, landmarks_usage)) return EXIT_USAGE;
    if (!lo.list || !lo.root || argc != 1) {
        fputs(landmarks_usage, stderr);
        return EXIT_USAGE;
    }
    unsigned char *text;
    size_t len;
    mien_err e = {0};
    if (mien_read_file(lo.list, 64u << 20, &text, &len, &e)) {
        fprintf(stderr, "mien eval landmarks: %s\n", e.msg);
        return EXIT_FAIL;
    }
    int cap = 1024, n = 0, lineno = 0;
    lm_item *items = calloc((size_t)cap, sizeof *items);
    char *save = NULL;
    for (char *line = strtok_r((char *)text, "\n", &save); items && line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (!*line || *line == '#' || *line == '\r') continue;
        char path[1024];
        lm_item it = {0};
        int got = sscanf(line, "%1023s %f %f %f %f %f %f %f %f %f %f %f %f %f %f", path, &it.box[0],
                         &it.box[1], &it.box[2], &it.box[3], &it.pt[0][0], &it.pt[0][1], &it.pt[1][0],
                         &it.pt[1][1], &it.pt[2][0], &it.pt[2][1], &it.pt[3][0], &it.pt[3][1],
                         &it.pt[4][0], &it.pt[4][1]);
        if (got != 15) {
            fprintf(stderr, "mien eval landmarks: %s:%d: expected a path and 14 numbers\n", lo.list,
                    lineno);
            for (int i = 0; i < n; i++) free(items[i].path);
            free(items);
            free(text);
            return EXIT_FAIL;
        }
        if (n == cap) {
            lm_item *ni = realloc(items, (size_t)(cap *= 2) * sizeof *items);
            if (!ni) break;
            items = ni;
        }
        it.path = strdup(path);
        items[n++] = it;
    }
    free(text);
    if (!items) return EXIT_FAIL;
    c.cfg.threads = 1;
    mien_models *m = cli_open_models(&c);
    int status = EXIT_FAIL;
    if (m) {
        lm_job j = {lo.root, items, &c.det};
        if (!cli_parallel(m, c.threads, n, lm_one, &j, "landmarks", c.quiet)) {
            double sum[5] = {0}, all = 0;
            int det = 0, fail10 = 0, n_points = 5;
            for (int i = 0; i < n; i++) {
                if (!items[i].detected) continue;
                det++;
                n_points = items[i].n_points;
                double mean = 0;
                for (int p = 0; p < 5; p++) sum[p] += items[i].err[p], mean += items[i].err[p] / 5;
                all += mean;
                fail10 += mean > 0.10;
            }
            static const char *names[5] = {"eye_a", "eye_b", "nose", "mouth_a", "mouth_b"};
            if (c.json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "detector", c.cfg.detector);
                cJSON_AddStringToObject(o, "landmarks", c.cfg.landmarks);
                cJSON_AddNumberToObject(o, "images", n);
                cJSON_AddNumberToObject(o, "detected", det);
                cJSON_AddBoolToObject(o, "mouth_corners", n_points == 5);
                cJSON_AddNumberToObject(o, "nme", det ? all / det : NAN);
                cJSON *pp = cJSON_AddObjectToObject(o, "nme_per_point");
                for (int p = 0; p < 5; p++) cJSON_AddNumberToObject(pp, names[p], det ? sum[p] / det : NAN);
                cJSON_AddNumberToObject(o, "failure_rate_0.10", det ? (double)fail10 / det : NAN);
                cli_print_json(o);
            } else {
                printf("images %d, face found in %d\n", n, det);
                printf("NME (mean error / inter-ocular distance) %.2f%%%s\n", det ? 100 * all / det : NAN,
                       n_points == 5 ? "" : "  (mouth: centre vs midpoint of the true corners)");
                for (int p = 0; p < 5; p++)
                    printf("  %-8s %.2f%%\n", names[p], det ? 100 * sum[p] / det : NAN);
                printf("failures (NME > 10%%) %.2f%%\n", det ? 100.0 * fail10 / det : NAN);
            }
            status = EXIT_OK;
        }
        mien_models_close(m);
    }
    for (int i = 0; i < n; i++) free(items[i].path);
    free(items);
    return status;
}

int cmd_eval_detection(int argc, char **argv); /* cmd_eval_det.c */

static const char eval_usage[] =
    "usage: mien eval pairs|landmarks|detection|identify|cluster ...\n"
    "  pairs       verification accuracy on LFW's pairs.txt or a pairs file\n"
    "  landmarks   landmark error against 5-point ground truth\n"
    "  detection   precision, recall and AP against annotated face boxes\n"
    "  identify    open-set identification on a folder-per-person set\n"
    "  cluster     clustering quality on a folder-per-person set\n"
    "(mien eval NAME --help for each)\n";

int cmd_eval(int argc, char **argv) {
    if (argc < 2) {
        fputs(eval_usage, stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "pairs")) return eval_pairs(argc - 1, argv + 1);
    if (!strcmp(argv[1], "landmarks")) return eval_landmarks(argc - 1, argv + 1);
    if (!strcmp(argv[1], "detection")) return cmd_eval_detection(argc - 1, argv + 1);
    if (!strcmp(argv[1], "identify")) return cmd_eval_identify(argc - 1, argv + 1);
    if (!strcmp(argv[1], "cluster")) return cmd_eval_cluster(argc - 1, argv + 1);
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(eval_usage, stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "mien eval: unknown evaluation '%s'\n%s", argv[1], eval_usage);
    return EXIT_USAGE;
}
