/* mien eval identify | eval cluster: open-set identification and clustering measured on a
 * folder-per-person set (LFW). The measures are eval/ident_eval.c's; here the photos, the
 * gallery, the searches and the report. */
#include "cli/cli.h"
#include "core/err.h"
#include "eval/ident_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== Options ==== */

typedef struct ident_opts {
    const char *root;
    cli_faces_rule pick;
    int min_photos;          /* eval cluster: people with at least this many photos */
    float threshold;
    int has_threshold;
    int ann;                 /* eval identify: search through the HNSW index */
} ident_opts;

static int ident_extra(void *ctx, const char *opt, const char *val) {
    ident_opts *o = ctx;
    if (!strcmp(opt, "--ann")) {
        o->ann = 1;
        return 0;
    }
    if (strcmp(opt, "--root") && strcmp(opt, "--pick") && strcmp(opt, "--min-photos") &&
        strcmp(opt, "--threshold"))
        return -1;
    if (!val) return -2;
    if (!strcmp(opt, "--root")) {
        o->root = val;
    } else if (!strcmp(opt, "--pick")) {
        if (!strcmp(val, "central")) o->pick = CLI_FACES_CENTRAL;
        else if (!strcmp(val, "largest")) o->pick = CLI_FACES_LARGEST;
        else return -3;
    } else if (!strcmp(opt, "--min-photos")) {
        char *end;
        long v = strtol(val, &end, 10);
        if (end == val || *end || v < 2 || v > 100000) return -3;
        o->min_photos = (int)v;
    } else {
        char *end;
        o->threshold = strtof(val, &end);
        if (end == val || *end || !isfinite(o->threshold)) return -3;
        o->has_threshold = 1;
    }
    return 1;
}

/* The photos of people, flattened, with each photo's person. */
typedef struct person_photos {
    cli_person *people;
    int n_people;
    cli_photo *ph;           /* (n) */
    int *who;                /* (n) index into people */
    int *first;              /* (n_people + 1) person p owns photos [first[p], first[p+1]) */
    int n;
} person_photos;

static void pp_free(person_photos *pp) {
    cli_photos_free(pp->ph, pp->n);
    free(pp->who);
    free(pp->first);
    cli_people_free(pp->people, pp->n_people);
}

/* List root's people, keep those with >= min_photos photos. */
static int pp_load(const char *root, int min_photos, person_photos *pp) {
    memset(pp, 0, sizeof *pp);
    cli_person *all;
    int n_all;
    if (cli_list_people(root, &all, &n_all)) return -1;
    int keep = 0, total = 0;
    for (int p = 0; p < n_all; p++) {
        if (all[p].n_photos >= min_photos) {
            total += all[p].n_photos;
            all[keep++] = all[p];
        } else {
            free(all[p].name);
            cli_free_strings(all[p].photos, all[p].n_photos);
        }
    }
    pp->people = all;
    pp->n_people = keep;
    pp->n = total;
    pp->ph = calloc((size_t)(total ? total : 1), sizeof *pp->ph);
    pp->who = malloc((size_t)(total ? total : 1) * sizeof *pp->who);
    pp->first = malloc((size_t)(keep + 1) * sizeof *pp->first);
    if (!pp->ph || !pp->who || !pp->first) return -1;
    for (int p = 0, k = 0; p < keep; p++) {
        pp->first[p] = k;
        for (int i = 0; i < all[p].n_photos; i++, k++) {
            pp->ph[k].path = all[p].photos[i];
            pp->who[k] = p;
        }
    }
    pp->first[keep] = total;
    return 0;
}

/* ==== eval identify ==== */

/* What both evaluations start with: the people of o->root with min_photos photos or more,
 * the models, the threshold (--threshold, else default_thr of the models), and every photo's
 * faces embedded (*t_embed seconds). Returns 0, or the exit status after printing why. */
static int eval_embed_people(cli_common *c, const ident_opts *o, int min_photos,
                             const char *cmd, float (*default_thr)(const mien_models *),
                             person_photos *pp, mien_models **m, float *thr, double *t_embed) {
    if (pp_load(o->root, min_photos, pp)) return EXIT_FAIL;
    if (pp->n_people == 0) {
        fprintf(stderr, "mien %s: nobody in %s has %d photo%s\n", cmd, o->root, min_photos,
                min_photos == 1 ? "" : "s");
        return EXIT_USAGE;
    }
    c->cfg.threads = 1;
    if (!(*m = cli_open_models(c))) return EXIT_FAIL;
    *thr = o->has_threshold ? o->threshold : default_thr(*m);
    double t0 = cli_now();
    if (cli_embed_photos(*m, c, pp->ph, pp->n, o->pick, "embedding")) return EXIT_FAIL;
    *t_embed = cli_now() - t0;
    return 0;
}

static const char identify_usage[] =
    "usage: mien eval identify --root DIR [--json] [options]\n"
    "\n"
    "Open-set identification on a folder-per-person set (LFW: DIR/NAME/NAME_0001.jpg, ...).\n"
    "People with two or more photos are enrolled from their first photo (the first one with a\n"
    "face) and probed with the others (genuine probes); people with one photo are distractor\n"
    "probes, who should come back unknown. Reports:\n"
    "  rank-1      genuine probes whose best match is the right person (closed set)\n"
    "  DIR@FAR     detection and identification rate: genuine probes both ranked first and\n"
    "              above the threshold that lets that fraction of distractors through\n"
    "              (1% and 0.1%); a probe without a face counts as a miss, a distractor without\n"
    "              a face as rejected\n"
    "  and the same at the embedder's default threshold (what 'mien identify' does).\n"
    "\n"
    "  --json            one JSON object\n"
    "  --pick RULE       central (default: nearest the centre among the large faces, as LFW's\n"
    "                    labelled face is centred) or largest\n"
    "  --threshold T     the default threshold to report (default: the embedder's)\n"
    "  --ann             search through the HNSW index instead of exactly\n"
    "  --threads N       photos in parallel (default: all cores)\n"
    "  (and the model and detection options of mien detect)\n";

int cmd_eval_identify(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    ident_opts o = {.pick = CLI_FACES_CENTRAL};
    if (cli_parse(&c, &argc, argv, ident_extra, &o, identify_usage)) return EXIT_USAGE;
    if (!o.root || argc != 1) {
        fputs(identify_usage, stderr);
        return EXIT_USAGE;
    }
    person_photos pp;
    int status = EXIT_FAIL;
    mien_models *m = NULL;
    mien_gallery *g = NULL;
    char gpath[] = "/tmp/mien-eval-gallery-XXXXXX";
    int gfd = -1;
    float *probe_emb = NULL;
    int *probe_ph = NULL, *same = NULL;
    mien_err e = {0};
    float thr;
    double t_embed;
    int st = eval_embed_people(&c, &o, 1, "eval identify", mien_models_threshold, &pp, &m, &thr,
                               &t_embed);
    if (st) {
        status = st;
        goto done;
    }
    const int dim = mien_models_embedding_dim(m);
    int unreadable = 0, no_face = 0;
    for (int i = 0; i < pp.n; i++) {
        unreadable += pp.ph[i].failed;
        no_face += !pp.ph[i].failed && pp.ph[i].n_faces == 0;
    }
    /* The gallery: a temporary file, removed at the end. */
    if ((gfd = mkstemp(gpath)) < 0) {
        perror("mien eval identify: temporary gallery");
        goto done;
    }
    mien_gallery_options go;
    mien_gallery_options_default(&go);
    go.ann = o.ann ? 1 : 0;
    go.ann_cache = 0;
    if (mien_gallery_open(gpath, &go, &g)) {
        fprintf(stderr, "mien eval identify: %s\n", mien_gallery_errmsg(g));
        goto done;
    }
    /* Enroll the first photo with a face of every person with 2+ photos; the rest probe. */
    probe_ph = malloc((size_t)pp.n * sizeof *probe_ph);
    same = malloc((size_t)pp.n * sizeof *same);
    int *enrolled_at = calloc((size_t)pp.n_people, sizeof *enrolled_at);
    if (!probe_ph || !same || !enrolled_at) {
        free(enrolled_at);
        goto done;
    }
    int n_probe = 0, n_gallery = 0, n_genuine = 0, n_distractor = 0;
    double t0 = cli_now();
    for (int p = 0; p < pp.n_people; p++) {
        int lo = pp.first[p], hi = pp.first[p + 1], gi = -1;
        if (hi - lo >= 2)
            for (int i = lo; i < hi && gi < 0; i++)
                if (pp.ph[i].n_faces > 0) gi = i;
        if (gi >= 0) {
            mien_gallery_face f = {pp.ph[gi].emb, {0}, pp.ph[gi].sha256};
            memcpy(f.box, pp.ph[gi].faces[0].box, sizeof f.box);
            if (mien_gallery_enroll(g, pp.people[p].name, mien_models_embedder_name(m), dim, &f, 1, NULL)) {
                fprintf(stderr, "mien eval identify: %s\n", mien_gallery_errmsg(g));
                free(enrolled_at);
                goto done;
            }
            n_gallery++;
            enrolled_at[p] = 1;
        }
        for (int i = lo; i < hi; i++) {
            if (i == gi) continue;
            probe_ph[n_probe] = i;
            same[n_probe++] = hi - lo >= 2; /* 1 genuine, 0 distractor */
            if (hi - lo >= 2) n_genuine++;
            else n_distractor++;
        }
    }
    free(enrolled_at);
    double t_enroll = cli_now() - t0;
    /* Search every probe that has a face, in one batch. */
    probe_emb = malloc((size_t)(n_probe ? n_probe : 1) * dim * sizeof *probe_emb);
    int *row = malloc((size_t)(n_probe ? n_probe : 1) * sizeof *row);
    if (!probe_emb || !row) {
        free(row);
        goto done;
    }
    int n_search = 0;
    for (int k = 0; k < n_probe; k++) {
        const cli_photo *ph = &pp.ph[probe_ph[k]];
        row[k] = ph->n_faces > 0 ? n_search : -1;
        if (ph->n_faces > 0)
            memcpy(probe_emb + (size_t)n_search++ * dim, ph->emb, (size_t)dim * sizeof *probe_emb);
    }
    mien_match *res = calloc((size_t)(n_search ? n_search : 1), sizeof *res);
    int *res_n = calloc((size_t)(n_search ? n_search : 1), sizeof *res_n);
    t0 = cli_now();
    if (!res || !res_n || mien_gallery_search_batch(g, probe_emb, n_search, dim, 1, res, res_n)) {
        fprintf(stderr, "mien eval identify: %s\n", res && res_n ? mien_gallery_errmsg(g) : "out of memory");
        free(res), free(res_n), free(row);
        goto done;
    }
    double t_search = cli_now() - t0;
    /* The measures (eval/ident_eval.c): each probe with its top-1 answer. */
    ie_probe *ans = malloc((size_t)(n_probe ? n_probe : 1) * sizeof *ans);
    for (int k = 0; ans && k < n_probe; k++) {
        int r = row[k];
        int has = r >= 0 && res_n[r] > 0;
        ans[k] = (ie_probe){same[k], has, has && !strcmp(res[r].name, pp.people[pp.who[probe_ph[k]]].name),
                            has ? res[r].similarity : NAN};
    }
    free(res), free(res_n), free(row);
    ie_result ir;
    int rc = !ans || ie_identify(ans, n_probe, thr, &ir, &e);
    free(ans);
    if (rc) {
        fprintf(stderr, "mien eval identify: %s\n", e.msg[0] ? e.msg : "out of memory");
        goto done;
    }
    const int rank1 = ir.rank1, dir_default = ir.dir, wrong_default = ir.wrong, fa_default = ir.fa;
    const ve_op at1 = ir.at_far_1e2, at01 = ir.at_far_1e3;
    double r1 = (double)rank1 / n_genuine;
    if (c.json) {
        cJSON *jo = cJSON_CreateObject();
        cJSON_AddStringToObject(jo, "root", o.root);
        cJSON_AddStringToObject(jo, "embedder", mien_models_embedder_name(m));
        cJSON_AddStringToObject(jo, "search", mien_gallery_ann_active(g) ? "hnsw" : "exact");
        cJSON_AddNumberToObject(jo, "people", pp.n_people);
        cJSON_AddNumberToObject(jo, "photos", pp.n);
        cJSON_AddNumberToObject(jo, "gallery_subjects", n_gallery);
        cJSON_AddNumberToObject(jo, "genuine_probes", n_genuine);
        cJSON_AddNumberToObject(jo, "distractor_probes", n_distractor);
        cJSON_AddNumberToObject(jo, "photos_no_face", no_face);
        cJSON_AddNumberToObject(jo, "photos_unreadable", unreadable);
        cJSON_AddNumberToObject(jo, "rank1", r1);
        cJSON_AddNumberToObject(jo, "dir_at_far_1e-2", at1.tar);
        cJSON_AddNumberToObject(jo, "threshold_at_far_1e-2", at1.thr);
        cJSON_AddNumberToObject(jo, "dir_at_far_1e-3", at01.tar);
        cJSON_AddNumberToObject(jo, "threshold_at_far_1e-3", at01.thr);
        cJSON_AddNumberToObject(jo, "threshold", thr);
        cJSON_AddNumberToObject(jo, "dir_at_threshold", (double)dir_default / n_genuine);
        cJSON_AddNumberToObject(jo, "misidentified_at_threshold", (double)wrong_default / n_genuine);
        cJSON_AddNumberToObject(jo, "far_at_threshold", (double)fa_default / n_distractor);
        cJSON_AddNumberToObject(jo, "seconds_embedding", t_embed);
        cJSON_AddNumberToObject(jo, "seconds_enroll", t_enroll);
        cJSON_AddNumberToObject(jo, "seconds_search", t_search);
        cJSON_AddNumberToObject(jo, "ms_per_probe_search", 1e3 * t_search / (n_search ? n_search : 1));
        cli_print_json(jo);
    } else {
        printf("people         %d (%d photos): gallery %d people, %d genuine probes, %d distractors\n",
               pp.n_people, pp.n, n_gallery, n_genuine, n_distractor);
        printf("rank-1         %.2f%%  (%d of %d genuine probes)\n", 100 * r1, rank1, n_genuine);
        printf("DIR@FAR=1%%     %.2f%%  (threshold %.4f, %.2f%% of distractors accepted)\n",
               100 * at1.tar, at1.thr, 100 * at1.far);
        printf("DIR@FAR=0.1%%   %.2f%%  (threshold %.4f)\n", 100 * at01.tar, at01.thr);
        printf("at %.4f       DIR %.2f%%, misidentified %.2f%%, distractors accepted %.2f%%\n", thr,
               100.0 * dir_default / n_genuine, 100.0 * wrong_default / n_genuine,
               100.0 * fa_default / n_distractor);
        printf("no face found  %d photos, %d unreadable\n", no_face, unreadable);
        printf("time           embedding %.1f s (%.1f photos/s), enroll %.2f s, search %.3f ms per "
               "probe (%s)\n", t_embed, pp.n / (t_embed + 1e-9), t_enroll,
               1e3 * t_search / (n_search ? n_search : 1), mien_gallery_ann_active(g) ? "hnsw" : "exact");
    }
    status = EXIT_OK;
done:
    free(probe_emb), free(probe_ph), free(same);
    mien_gallery_close(g);
    if (gfd >= 0) {
        close(gfd);
        char side[64];
        unlink(gpath);
        snprintf(side, sizeof side, "%s-wal", gpath);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", gpath);
        unlink(side);
    }
    mien_models_close(m);
    pp_free(&pp);
    return status;
}

/* ==== eval cluster ==== */

static const char cluster_usage[] =
    "usage: mien eval cluster --root DIR [--min-photos N] [--json] [options]\n"
    "\n"
    "Clustering quality on a folder-per-person set: the faces of the people with at least N\n"
    "photos (default 5) are clustered as 'mien cluster' does, and compared with the truth by\n"
    "pairs: precision = pairs put together that are the same person / pairs put together,\n"
    "recall = same-person pairs put together / same-person pairs, F1 their harmonic mean.\n"
    "Photos without a face are left out (and counted). The same faces are also clustered at\n"
    "a few other thresholds (from just below T up, in steps of (1 - T) / 10), to show the\n"
    "trade-off.\n"
    "\n"
    "  --min-photos N    people with at least N photos (default 5)\n"
    "  --threshold T     join faces at this cosine similarity (default: the embedder's\n"
    "                    clustering threshold, as mien cluster)\n"
    "  --pick RULE       central (default) or largest: the face of each photo\n"
    "  --json            one JSON object\n"
    "  (and the model and detection options of mien detect)\n";

/* Cluster n faces at threshold thr (as mien cluster does) and score the result by pairs
 * against person (n,). labels (n,) is scratch. */
static int cluster_score(const float *emb, int n, int dim, float thr, const int *person,
                         int n_people, int *labels, ie_cluster_score *out) {
    int n_clusters = 0;
    if (mien_cluster(emb, n, dim, thr, 0, 0, labels, &n_clusters) ||
        ie_cluster_pairs(labels, n_clusters, person, n, n_people, out)) {
        fprintf(stderr, "mien eval cluster: clustering failed (out of memory)\n");
        return -1;
    }
    return 0;
}

int cmd_eval_cluster(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    ident_opts o = {.pick = CLI_FACES_CENTRAL, .min_photos = 5};
    if (cli_parse(&c, &argc, argv, ident_extra, &o, cluster_usage)) return EXIT_USAGE;
    if (!o.root || argc != 1) {
        fputs(cluster_usage, stderr);
        return EXIT_USAGE;
    }
    person_photos pp;
    int status = EXIT_FAIL;
    mien_models *m = NULL;
    float *emb = NULL;
    int *labels = NULL, *person = NULL;
    float thr;
    double t_embed;
    int st = eval_embed_people(&c, &o, o.min_photos, "eval cluster", mien_models_cluster_threshold,
                               &pp, &m, &thr, &t_embed);
    if (st) {
        status = st;
        goto done;
    }
    const int dim = mien_models_embedding_dim(m);
    int n = 0, missing = 0;
    emb = malloc((size_t)pp.n * dim * sizeof *emb);
    labels = malloc((size_t)pp.n * sizeof *labels);
    person = malloc((size_t)pp.n * sizeof *person);
    if (!emb || !labels || !person) goto done;
    for (int i = 0; i < pp.n; i++) {
        if (pp.ph[i].n_faces == 0) {
            missing++;
            continue;
        }
        memcpy(emb + (size_t)n * dim, pp.ph[i].emb, (size_t)dim * sizeof *emb);
        person[n++] = pp.who[i];
    }
    double t0 = cli_now();
    ie_cluster_score sc;
    if (cluster_score(emb, n, dim, thr, person, pp.n_people, labels, &sc)) goto done;
    double t_cluster = cli_now() - t0;
    /* The same faces at other thresholds: clustering is cheap next to embedding. */
    /* Around the threshold t, in steps of a tenth of what lies above it (1 - t): an
     * embedder's scores spread over its own range (dlib's from 0.92 to 0.97, others wider). */
    enum { N_SWEEP = 8 };
    float sweep_thr[N_SWEEP];
    for (int k = 0; k < N_SWEEP; k++)
        sweep_thr[k] = roundf((thr + (float)(k - 1) * (1.f - thr) / 10.f) * 1000.f) / 1000.f;
    ie_cluster_score sweep[N_SWEEP];
    for (int k = 0; k < N_SWEEP; k++)
        if (cluster_score(emb, n, dim, sweep_thr[k], person, pp.n_people, labels, &sweep[k])) goto done;
    if (c.json) {
        cJSON *jo = cJSON_CreateObject();
        cJSON_AddStringToObject(jo, "root", o.root);
        cJSON_AddStringToObject(jo, "embedder", mien_models_embedder_name(m));
        cJSON_AddNumberToObject(jo, "min_photos", o.min_photos);
        cJSON_AddNumberToObject(jo, "people", pp.n_people);
        cJSON_AddNumberToObject(jo, "faces", n);
        cJSON_AddNumberToObject(jo, "photos_no_face", missing);
        cJSON_AddNumberToObject(jo, "threshold", thr);
        cJSON_AddNumberToObject(jo, "clusters", sc.clusters);
        cJSON_AddNumberToObject(jo, "singletons", sc.singletons);
        cJSON_AddNumberToObject(jo, "precision", sc.precision);
        cJSON_AddNumberToObject(jo, "recall", sc.recall);
        cJSON_AddNumberToObject(jo, "f1", sc.f1);
        cJSON *sw = cJSON_AddArrayToObject(jo, "sweep");
        for (int k = 0; k < N_SWEEP; k++) {
            cJSON *so = cJSON_CreateObject();
            cJSON_AddNumberToObject(so, "threshold", sweep_thr[k]);
            cJSON_AddNumberToObject(so, "clusters", sweep[k].clusters);
            cJSON_AddNumberToObject(so, "precision", sweep[k].precision);
            cJSON_AddNumberToObject(so, "recall", sweep[k].recall);
            cJSON_AddNumberToObject(so, "f1", sweep[k].f1);
            cJSON_AddItemToArray(sw, so);
        }
        cJSON_AddNumberToObject(jo, "seconds_embedding", t_embed);
        cJSON_AddNumberToObject(jo, "seconds_cluster", t_cluster);
        cli_print_json(jo);
    } else {
        printf("people         %d with >= %d photos, %d faces (%d photos without a face)\n",
               pp.n_people, o.min_photos, n, missing);
        printf("clusters       %d (%d singletons), threshold %.4f\n", sc.clusters, sc.singletons, thr);
        printf("pairwise       precision %.4f  recall %.4f  F1 %.4f\n", sc.precision, sc.recall, sc.f1);
        printf("time           embedding %.1f s, clustering %.2f s\n", t_embed, t_cluster);
        printf("other thresholds:\n");
        for (int k = 0; k < N_SWEEP; k++)
            printf("  %.3f  %4d clusters  precision %.4f  recall %.4f  F1 %.4f\n", sweep_thr[k],
                   sweep[k].clusters, sweep[k].precision, sweep[k].recall, sweep[k].f1);
    }
    status = EXIT_OK;
done:
    free(emb), free(labels), free(person);
    mien_models_close(m);
    pp_free(&pp);
    return status;
}
