/* mien eval detection: precision, recall and average precision of a face detector against
 * annotated boxes (WIDER FACE's text format or dlib's imglab XML). */
#include "cli/cli.h"
#include "core/err.h"
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

typedef struct gt_box {
    float x, y, w, h;
    int care;                /* 0: don't care (small, ignored or invalid) */
    int matched;
} gt_box;

typedef struct gt_image {
    char *path;
    gt_box *box;
    int n, cap;
} gt_image;

typedef struct gt_set {
    gt_image *img;
    int n, cap;
} gt_set;

static void gt_free(gt_set *g) {
    for (int i = 0; i < g->n; i++) {
        free(g->img[i].path);
        free(g->img[i].box);
    }
    free(g->img);
}

static gt_image *gt_add_image(gt_set *g, const char *path, size_t len) {
    if (g->n == g->cap) {
        int nc = g->cap ? g->cap * 2 : 64;
        gt_image *ni = realloc(g->img, (size_t)nc * sizeof *ni);
        if (!ni) return NULL;
        g->img = ni;
        g->cap = nc;
    }
    gt_image *im = &g->img[g->n];
    memset(im, 0, sizeof *im);
    im->path = strndup(path, len);
    if (!im->path) return NULL;
    g->n++;
    return im;
}

static int gt_add_box(gt_image *im, float x, float y, float w, float h, int care) {
    if (im->n == im->cap) {
        int nc = im->cap ? im->cap * 2 : 8;
        gt_box *nb = realloc(im->box, (size_t)nc * sizeof *nb);
        if (!nb) return 0;
        im->box = nb;
        im->cap = nc;
    }
    im->box[im->n++] = (gt_box){x, y, w, h, care, 0};
    return 1;
}

/* Value of attribute name='...' (or "...") inside [s, end); NULL if absent. */
static const char *xml_attr(const char *s, const char *end, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (const char *p = s; p + nl + 2 < end; p++) {
        if (strncmp(p, name, nl) != 0 || p[nl] != '=' || (p > s && p[-1] != ' ')) continue;
        char q = p[nl + 1];
        if (q != '\'' && q != '"') continue;
        const char *v = p + nl + 2, *e = memchr(v, q, (size_t)(end - v));
        if (!e) return NULL;
        *len = (size_t)(e - v);
        return v;
    }
    return NULL;
}

static int xml_num(const char *s, const char *end, const char *name, float *out) {
    size_t len;
    const char *v = xml_attr(s, end, name, &len);
    if (!v || len == 0 || len > 30) return 0;
    char buf[32];
    memcpy(buf, v, len);
    buf[len] = 0;
    char *e;
    *out = strtof(buf, &e);
    return *e == 0 && isfinite(*out);
}

static int parse_dlib_xml(const char *text, const char *name, float min_size, gt_set *g,
                          mien_err *err) {
    const char *p = text;
    gt_image *cur = NULL;
    while ((p = strchr(p, '<'))) {
        const char *end = strchr(p, '>');
        if (!end) break;
        if (!strncmp(p, "<image ", 7)) {
            size_t len;
            const char *f = xml_attr(p, end, "file", &len);
            if (!f) return mien_err_set(err, MIEN_EFORMAT, "%s: <image> without file", name);
            if (!(cur = gt_add_image(g, f, len))) return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        } else if (!strncmp(p, "<box ", 5)) {
            float top, left, w, h, ign = 0;
            if (!cur || !xml_num(p, end, "top", &top) || !xml_num(p, end, "left", &left) ||
                !xml_num(p, end, "width", &w) || !xml_num(p, end, "height", &h) || w < 0 || h < 0)
                return mien_err_set(err, MIEN_EFORMAT, "%s: bad <box> near byte %ld", name,
                                    (long)(p - text));
            xml_num(p, end, "ignore", &ign);
            if (!gt_add_box(cur, left, top, w, h, ign == 0 && fmaxf(w, h) >= min_size))
                return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        }
        p = end + 1;
    }
    return MIEN_OK;
}

/* WIDER FACE: path / count / count lines "x y w h blur expression illumination invalid
 * occlusion pose" (a count of 0 is followed by one line of zeros). */
static int parse_wider(char *text, const char *name, float min_size, gt_set *g, mien_err *err) {
    char *save = NULL;
    int lineno = 0;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t len = strcspn(l, "\r");
        if (len == 0) continue;
        gt_image *im = gt_add_image(g, l, len);
        if (!im) return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        char *cl = strtok_r(NULL, "\n", &save), *e;
        lineno++;
        long count = cl ? strtol(cl, &e, 10) : -1;
        if (!cl || e == cl || count < 0 || count > 100000)
            return mien_err_set(err, MIEN_EFORMAT, "%s:%d: expected a face count", name, lineno);
        for (long k = 0; k < (count ? count : 1); k++) {
            char *bl = strtok_r(NULL, "\n", &save);
            lineno++;
            float v[10] = {0};
            int got = bl ? sscanf(bl, "%f %f %f %f %f %f %f %f %f %f", &v[0], &v[1], &v[2], &v[3],
                                  &v[4], &v[5], &v[6], &v[7], &v[8], &v[9])
                         : 0;
            if (got < 4) return mien_err_set(err, MIEN_EFORMAT, "%s:%d: expected x y w h", name, lineno);
            if (count == 0) break;
            int invalid = got >= 8 && v[7] != 0;
            if (!gt_add_box(im, v[0], v[1], v[2], v[3], !invalid && fmaxf(v[2], v[3]) >= min_size))
                return mien_err_set(err, MIEN_ENOMEM, "out of memory");
        }
    }
    return MIEN_OK;
}

typedef struct det_rec {
    int image;
    float score, box[4];
} det_rec;

typedef struct det_job {
    const char *root;
    gt_set *gt;
    const mien_detect_options *det;
    int boxes_only;          /* the detection stage alone (face_detect) */
    det_rec **recs;          /* per image: detections */
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
        det_rec *r = &j->recs[i][k];
        r->image = i;
        r->score = faces[k].score;
        memcpy(r->box, faces[k].box, sizeof r->box);
    }
    j->n_recs[i] = n;
    free(faces);
    mien_image_free(&img);
    return 0;
}

static float iou_xywh(const float *a, const gt_box *b) {
    float x0 = fmaxf(a[0], b->x), y0 = fmaxf(a[1], b->y);
    float x1 = fminf(a[0] + a[2], b->x + b->w), y1 = fminf(a[1] + a[3], b->y + b->h);
    float inter = fmaxf(x1 - x0, 0.f) * fmaxf(y1 - y0, 0.f);
    float uni = a[2] * a[3] + b->w * b->h - inter;
    return uni > 0 ? inter / uni : 0.f;
}

static int by_score(const void *a, const void *b) {
    float x = ((const det_rec *)a)->score, y = ((const det_rec *)b)->score;
    return (x < y) - (x > y);
}

typedef struct pr_result {
    double ap, precision, recall;   /* precision/recall at op_score */
    int tp, fp, n_care;
} pr_result;

/* Match detections (sorted by score) to faces greedily, as VOC's evaluation does. */
static void evaluate(gt_set *g, det_rec *d, int nd, float iou_thr, float op_score, pr_result *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->img[i].n; k++) {
            g->img[i].box[k].matched = 0;
            r->n_care += g->img[i].box[k].care;
        }
    qsort(d, (size_t)nd, sizeof *d, by_score);
    double *prec = malloc((size_t)(nd + 1) * sizeof *prec), *rec = malloc((size_t)(nd + 1) * sizeof *rec);
    int tp = 0, fp = 0, m = 0;
    for (int k = 0; prec && rec && k < nd; k++) {
        gt_image *im = &g->img[d[k].image];
        int best = -1;
        float bi = 0;
        for (int b = 0; b < im->n; b++) {
            float v = iou_xywh(d[k].box, &im->box[b]);
            if (v > bi) bi = v, best = b;
        }
        if (bi < iou_thr) best = -1;
        if (best >= 0 && !im->box[best].care) continue; /* don't-care: neither way */
        if (best >= 0 && !im->box[best].matched) {
            im->box[best].matched = 1;
            tp++;
        } else {
            fp++;
        }
        if (d[k].score >= op_score) r->tp = tp, r->fp = fp;
        prec[m] = (double)tp / (tp + fp);
        rec[m] = r->n_care ? (double)tp / r->n_care : 0;
        m++;
    }
    /* All-point interpolated AP: precision made monotone from the right. */
    for (int k = m - 2; k >= 0; k--) prec[k] = fmax(prec[k], prec[k + 1]);
    double prev_r = 0;
    for (int k = 0; k < m; k++) {
        r->ap += (rec[k] - prev_r) * prec[k];
        prev_r = rec[k];
    }
    r->precision = r->tp + r->fp ? (double)r->tp / (r->tp + r->fp) : 1.0;
    r->recall = r->n_care ? (double)r->tp / r->n_care : 0;
    free(prec);
    free(rec);
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
    gt_set g = {0};
    const float min_size = c.det.min_size;
    int rc = strstr((char *)text, "<image") ? parse_dlib_xml((char *)text, o.gt, min_size, &g, &e)
                                            : parse_wider((char *)text, o.gt, min_size, &g, &e);
    free(text);
    if (rc || g.n == 0) {
        fprintf(stderr, "mien eval detection: %s\n", rc ? e.msg : "no images in the ground truth");
        gt_free(&g);
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
    det_job j = {o.root, &g, &run, boxes_only, calloc((size_t)g.n, sizeof(det_rec *)),
                 calloc((size_t)g.n, sizeof(int)), calloc((size_t)g.n, sizeof(int))};
    if (m && j.recs && j.n_recs && j.failed &&
        !cli_parallel(m, c.threads, g.n, det_one, &j, "detection", c.quiet)) {
        int nd = 0, failed = 0;
        for (int i = 0; i < g.n; i++) nd += j.n_recs[i], failed += j.failed[i];
        det_rec *all = malloc((size_t)(nd ? nd : 1) * sizeof *all);
        if (all) {
            int k = 0;
            for (int i = 0; i < g.n; i++)
                for (int q = 0; q < j.n_recs[i]; q++) all[k++] = j.recs[i][q];
            pr_result r;
            evaluate(&g, all, nd, o.iou, op_score, &r);
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
    gt_free(&g);
    return status;
}
