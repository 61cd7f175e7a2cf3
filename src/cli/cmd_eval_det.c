/* mien eval detection: precision, recall and average precision of a face detector against
 * annotated boxes (WIDER FACE's text format or dlib's imglab XML). */
#include "cli/cli.h"
#include "core/err.h"
#include "eval/det_eval.h"
#include "face/face.h"
#include "image/image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: mien eval detection --gt FILE --root DIR [--json] [--min-size PX] [options]\n"
    "\n"
    "Face detection quality against annotated boxes. FILE is dlib's imglab XML\n"
    "(testing.xml: <image file='...'> <box top= left= width= height= [ignore='1']/>) or\n"
    "WIDER FACE's text format (image path line, count line, one 'x y w h ...' line per face).\n"
    "A detection is right when it overlaps an annotated face with IoU >= 0.5 (one detection\n"
    "per face). Faces smaller than --min-size (default 20 px) and boxes marked ignore/invalid\n"
    "are don't-care: a detection on them counts neither way. Reports average precision (area\n"
    "under the precision-recall curve, all-point interpolation as in PASCAL VOC 2010+) from a\n"
    "run at a low score threshold (0.05), and precision/recall at the detector's own threshold\n"
    "(--min-score, default 0.6).\n"
    "\n"
    "  --json            one JSON object\n"
    "  --min-size PX     smaller annotated faces are don't-care (default 20)\n"
    "  --iou T           match threshold (default 0.5)\n"
    "  --time N          also time detection on N of the photos resized to 640x480, one\n"
    "                    thread: median CPU ms per photo (ms_per_640x480 in the JSON)\n"
    "  --landmarks none  the detector's boxes alone (no landmark stage, no presence check)\n"
    "  (and the model options of mien detect)\n";

typedef struct det_job {
    const char *root;
    de_set *gt;
    const mien_detect_options *det;
    int boxes_only;          /* the detection stage alone (face_detect) */
    de_det **recs;          /* per image: detections */
    int *n_recs;
    int *failed;
} det_job;

static int det_one(void *ctx, mien_session *s, int worker, int i) {
    det_job *j = ctx;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->root, j->gt->img[i].path);
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0;
    if (mien_image_load(s, path, &img) ||
        (j->boxes_only ? face_detect(s, &img, j->det, &faces, &n)
                       : mien_detect(s, &img, j->det, &faces, &n))) {
        fprintf(stderr, "\nmien eval detection: %s\n", mien_errmsg(s));
        j->failed[i] = 1;
        mien_image_free(&img);
        return 0;
    }
    j->recs[i] = malloc((size_t)(n ? n : 1) * sizeof **j->recs);
    if (!j->recs[i]) {
        free(faces);
        mien_image_free(&img);
        return EXIT_FAIL;
    }
    for (int k = 0; k < n; k++) {
        de_det *r = &j->recs[i][k];
        r->image = i;
        r->score = faces[k].score;
        memcpy(r->box, faces[k].box, sizeof r->box);
    }
    j->n_recs[i] = n;
    free(faces);
    mien_image_free(&img);
    return 0;
}

typedef struct det_opts { const char *gt, *root; float iou; int time_n; } det_opts;

static int det_extra(void *ctx, const char *opt, const char *val) {
    det_opts *o = ctx;
    if (!strcmp(opt, "--gt") || !strcmp(opt, "--root")) {
        if (!val) return -2;
        if (opt[2] == 'g') o->gt = val;
        else o->root = val;
        return 1;
    }
    if (!strcmp(opt, "--time")) {
        if (!val) return -2;
        char *e;
        long n = strtol(val, &e, 10);
        if (*e || e == val || n < 1 || n > 10000) return -3;
        o->time_n = (int)n;
        return 1;
    }
    if (!strcmp(opt, "--iou")) {
        if (!val) return -2;
        char *e;
        o->iou = strtof(val, &e);
        return (*e || !(o->iou > 0 && o->iou < 1)) ? -3 : 1;
    }
    return -1;
}

static double thread_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median thread-CPU milliseconds of one detection on n photos of the set (spread over it)
 * resized to 640x480, after one warm-up run; -1 on failure. CPU time, so that other
 * programs on a shared machine do not add their share (they still slow caches). */
static double time_vga(mien_models *m, const det_job *j, int n) {
    mien_session *s = NULL;
    double *t = calloc((size_t)n, sizeof *t), med = -1;
    int k = 0;
    if (!t || mien_session_open(m, &s)) goto done;
    for (int i = 0; i < n; i++) {
        int gi = (int)((long)i * j->gt->n / n);
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", j->root, j->gt->img[gi].path);
        mien_image img = {0}, vga = {0};
        if (mien_image_load(s, path, &img) || img_resize(&img, 640, 480, &vga, NULL)) {
            mien_image_free(&img);
            continue;
        }
        mien_image_free(&img);
        for (int r = 0; r < (k == 0 ? 2 : 1); r++) { /* the first photo warms up */
            mien_face *f = NULL;
            int nf = 0;
            double t0 = thread_ms();
            int rc = j->boxes_only ? face_detect(s, &vga, j->det, &f, &nf)
                                   : mien_detect(s, &vga, j->det, &f, &nf);
            t[k] = thread_ms() - t0;
            free(f);
            if (rc) break;
        }
        mien_image_free(&vga);
        k++;
    }
    if (k) {
        qsort(t, (size_t)k, sizeof *t, cmp_double);
        med = k % 2 ? t[k / 2] : 0.5 * (t[k / 2 - 1] + t[k / 2]);
    }
done:
    mien_session_close(s);
    free(t);
    return med;
}

int cmd_eval_detection(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    c.det.min_size = 20;
    det_opts o = {NULL, NULL, 0.5f, 0};
    if (cli_parse(&c, &argc, argv, det_extra, &o, usage)) return EXIT_USAGE;
    if (!o.gt || !o.root || argc != 1) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    unsigned char *text;
    size_t len;
    mien_err e = {0};
    if (mien_read_file(o.gt, 256u << 20, &text, &len, &e)) {
        fprintf(stderr, "mien eval detection: %s\n", e.msg);
        return EXIT_FAIL;
    }
    de_set g = {0};
    const float min_size = c.det.min_size;
    int rc = de_gt_parse((char *)text, o.gt, min_size, &g, &e);
    free(text);
    if (rc || g.n == 0) {
        fprintf(stderr, "mien eval detection: %s\n", rc ? e.msg : "no images in the ground truth");
        de_set_free(&g);
        return EXIT_FAIL;
    }
    /* Detect at a low threshold for the curve; keep every size (don't-care decides). */
    const float op_score = c.det.min_score;
    mien_detect_options run = c.det;
    run.min_score = 0.05f;
    run.min_size = 0;
    c.cfg.threads = 1;
    mien_models *m = cli_open_models(&c);
    int status = EXIT_FAIL;
    /* "--landmarks none": the boxes as the detector gives them (a detector without keypoints
     * gets a landmark network to align with, which eval detection does not need). */
    const int boxes_only = c.cfg.landmarks && !strcmp(c.cfg.landmarks, "none");
    det_job j = {o.root, &g, &run, boxes_only, calloc((size_t)g.n, sizeof(de_det *)),
                 calloc((size_t)g.n, sizeof(int)), calloc((size_t)g.n, sizeof(int))};
    if (m && j.recs && j.n_recs && j.failed &&
        !cli_parallel(m, c.threads, g.n, det_one, &j, "detection", c.quiet)) {
        int nd = 0, failed = 0;
        for (int i = 0; i < g.n; i++) nd += j.n_recs[i], failed += j.failed[i];
        de_det *all = malloc((size_t)(nd ? nd : 1) * sizeof *all);
        if (all) {
            int k = 0;
            for (int i = 0; i < g.n; i++)
                for (int q = 0; q < j.n_recs[i]; q++) all[k++] = j.recs[i][q];
            de_result r;
            de_evaluate(&g, all, nd, o.iou, op_score, &r);
            /* Timing at the reporting threshold, as the detector is used. */
            mien_detect_options timed = c.det;
            j.det = &timed;
            const double vga_ms = o.time_n ? time_vga(m, &j, o.time_n) : -1;
            double load[1] = {-1};
            if (o.time_n && getloadavg(load, 1) != 1) load[0] = -1;
            if (c.json) {
                cJSON *out = cJSON_CreateObject();
                cJSON_AddStringToObject(out, "gt", o.gt);
                cJSON_AddStringToObject(out, "detector", c.cfg.detector);
                cJSON_AddNumberToObject(out, "images", g.n);
                cJSON_AddNumberToObject(out, "images_unreadable", failed);
                cJSON_AddNumberToObject(out, "faces", r.n_care);
                cJSON_AddNumberToObject(out, "min_size", min_size);
                cJSON_AddNumberToObject(out, "iou", o.iou);
                cJSON_AddNumberToObject(out, "ap", r.ap);
                cJSON_AddNumberToObject(out, "score_threshold", op_score);
                cJSON_AddNumberToObject(out, "precision", r.precision);
                cJSON_AddNumberToObject(out, "recall", r.recall);
                cJSON_AddNumberToObject(out, "true_positives", r.tp);
                cJSON_AddNumberToObject(out, "false_positives", r.fp);
                if (o.time_n) {
                    cJSON_AddNumberToObject(out, "ms_per_640x480", vga_ms);
                    cJSON_AddNumberToObject(out, "timed_photos", o.time_n);
                    cJSON_AddNumberToObject(out, "load_average", load[0]);
                }
                cJSON_AddBoolToObject(out, "boxes_only", boxes_only);
                cli_print_json(out);
            } else {
                printf("images %d (%d unreadable), faces %d (>= %.0f px; smaller ones don't count)\n",
                       g.n, failed, r.n_care, min_size);
                printf("AP@IoU%.2f       %.2f%%\n", o.iou, 100 * r.ap);
                printf("at score %.2f   precision %.2f%%  recall %.2f%%  (%d right, %d wrong)\n",
                       op_score, 100 * r.precision, 100 * r.recall, r.tp, r.fp);
                if (o.time_n)
                    printf("%.2f ms per 640x480 photo (median of %d, 1 thread, CPU time; load "
                           "average %.2f)\n", vga_ms, o.time_n, load[0]);
            }
            free(all);
            status = EXIT_OK;
        }
    }
    for (int i = 0; j.recs && i < g.n; i++) free(j.recs[i]);
    free(j.recs);
    free(j.n_recs);
    free(j.failed);
    mien_models_close(m);
    de_set_free(&g);
    return status;
}
