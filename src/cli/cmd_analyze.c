/* mien analyze (age, gender, expression, liveness, pose, quality, mask of every face) and
 * mien eval analysis (the same on a labelled folder: accuracy per task). */
#include "cli/cli.h"
#include "eval/verify_eval.h"
#include "image/image.h"
#include "server/server.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ==== Shared: detection with the face-crop fallback ====
 * A photo that is already a tight face crop (the face fills it) often shows no face to a
 * detector made for faces with some background around them. When none is found, the photo is
 * searched again inside a black border of a quarter of its longer side, and the faces found
 * are moved back to the photo's coordinates (they may reach past its edges; the analysis
 * crops read black there, as the detector saw). */
int cli_detect_with_border(mien_session *s, const mien_image *img, const mien_detect_options *o,
                           mien_face **faces, int *n, int *bordered) {
    *bordered = 0;
    int rc = mien_detect(s, img, o, faces, n);
    if (rc || *n > 0) return rc;
    free(*faces);
    *faces = NULL;
    const int side = img->width > img->height ? img->width : img->height;
    const int b = side / 4 > 1 ? side / 4 : 1;
    if ((int64_t)img->width + 2 * b > MIEN_MAX_IMAGE_SIDE || (int64_t)img->height + 2 * b > MIEN_MAX_IMAGE_SIDE)
        return mien_detect(s, img, o, faces, n);
    mien_image big = {0};
    mien_err e = {0};
    if (img_alloc(&big, img->width + 2 * b, img->height + 2 * b, &e)) return MIEN_ENOMEM;
    memset(big.rgb, 0, (size_t)big.width * big.height * 3);
    for (int y = 0; y < img->height; y++)
        memcpy(big.rgb + ((size_t)(y + b) * big.width + b) * 3, img->rgb + (size_t)y * img->width * 3,
               (size_t)img->width * 3);
    rc = mien_detect(s, &big, o, faces, n);
    mien_image_free(&big);
    if (rc) return rc;
    for (int i = 0; i < *n; i++) {
        mien_face *f = &(*faces)[i];
        f->box[0] -= (float)b;
        f->box[1] -= (float)b;
        for (int k = 0; k < f->n_landmarks; k++) f->landmarks[k][0] -= (float)b, f->landmarks[k][1] -= (float)b;
        for (int k = 0; k < 5; k++) f->points[k][0] -= (float)b, f->points[k][1] -= (float)b;
    }
    *bordered = *n > 0;
    return MIEN_OK;
}

/* ==== Shared: the two halves of a labelled set ==== */

typedef struct split_ref { const char *path, *group; int i; } split_ref;

static int split_cmp(const void *a, const void *b) {
    const split_ref *x = a, *y = b;
    int c = strcmp(x->group, y->group);
    return c ? c : strcmp(x->path, y->path);
}

void cli_split_halves(const char *const *path, const char *const *group, int n, int *part) {
    split_ref *r = malloc((size_t)(n > 0 ? n : 1) * sizeof *r);
    if (!r) { /* no memory: a simpler split that needs none */
        for (int i = 0; i < n; i++) part[i] = i % 2;
        return;
    }
    for (int i = 0; i < n; i++) r[i] = (split_ref){path[i], group[i], i};
    qsort(r, (size_t)n, sizeof *r, split_cmp);
    for (int i = 0, pos = 0; i < n; i++) {
        pos = i > 0 && !strcmp(r[i].group, r[i - 1].group) ? pos + 1 : 0;
        part[r[i].i] = pos % 2;
    }
    free(r);
}

typedef struct analyze_opts {
    const char *draw;
    const char *tasks_arg;     /* --tasks */
    const char *set;           /* eval: --set DIR */
    const char *predictions;   /* eval: --predictions FILE */
    const char *part;          /* eval: --part 0|1 */
    const char *roc;           /* eval: --roc OUT.png */
    float liveness_threshold;
} analyze_opts;

static int analyze_extra(void *ctx, const char *opt, const char *val) {
    analyze_opts *a = ctx;
    if (!strcmp(opt, "--liveness-threshold")) {
        if (!val) return -2;
        char *end;
        float t = strtof(val, &end);
        if (end == val || *end || !(t > 0 && t < 1)) return -3;
        a->liveness_threshold = t;
        return 1;
    }
    const char **slot = !strcmp(opt, "--draw") ? &a->draw
                        : !strcmp(opt, "--tasks") ? &a->tasks_arg
                        : !strcmp(opt, "--set") ? &a->set
                        : !strcmp(opt, "--predictions") ? &a->predictions
                        : !strcmp(opt, "--part") ? &a->part
                        : !strcmp(opt, "--roc") ? &a->roc
                        : NULL;
    if (!slot) return -1;
    if (!val) return -2;
    *slot = val;
    return 1;
}

int cli_analysis_tasks(const cli_common *c, const char *list, unsigned *tasks) {
    if (list) {
        if (!srv_parse_analysis_tasks(list, tasks)) {
            fprintf(stderr, "mien: bad --tasks '%s' (age, gender, expression, liveness, pose, "
                    "quality, mask, all)\n", list);
            return EXIT_USAGE;
        }
        if (strcmp(list, "all")) return EXIT_OK;
    }
    *tasks = MIEN_ANALYZE_ALL;
    char path[4096];
    struct stat st;
    /* The models folder: --models, else the library's search (as mien_models_open). */
    const char *dir = c->models_dir;
    if (!dir) dir = mien_models_find(path, sizeof path) == MIEN_OK ? path : "models";
    char mask[4096 + 16];
    snprintf(mask, sizeof mask, "%s/mien/mask.ckpt", dir);
    int chose_mask = c->cfg.analysis && strstr(c->cfg.analysis, "mask=");
    if (stat(mask, &st) != 0 && !chose_mask) *tasks &= ~(unsigned)MIEN_ANALYZE_MASK;
    return EXIT_OK;
}

/* ==== mien analyze ==== */

static const char analyze_usage[] =
    "usage: mien analyze IMAGE... [--json] [--draw OUT.png|DIR] [--tasks LIST] [options]\n"
    "\n"
    "Detect every face and tell its age, gender (with a confidence), expression (the 7 scores),\n"
    "liveness (score and decision: a printed photo or a screen is a spoof), head pose (yaw,\n"
    "pitch, roll in degrees), quality (0..1 and its parts) and whether it wears a mask.\n"
    "A photo that is a tight face crop is searched again inside a border when no face is found.\n"
    "\n"
    "  --json                  one JSON object per image: {\"image\", \"width\", \"height\",\n"
    "                          \"faces\": [{\"box\", \"score\", \"age\", \"gender\": {\"value\",\n"
    "                          \"score\"}, \"expression\": {\"value\", \"scores\"}, \"liveness\":\n"
    "                          {\"score\", \"real\", \"threshold\"}, \"pose\": {\"yaw\", \"pitch\",\n"
    "                          \"roll\"}, \"quality\": {\"score\", ...parts}, \"mask\": {\"value\",\n"
    "                          \"score\"}}]}; with GEAR (age=gear or gender=gear) also\n"
    "                          \"race\": {\"value\", \"scores\"} (white, black, asian,\n"
    "                          indian, other)\n"
    "  --draw OUT              the photo with each face's attributes written under its box\n"
    "                          (a PNG file for one image, a folder for several)\n"
    "  --tasks LIST            age,gender,expression,liveness,pose,quality,mask or all\n"
    "                          (default: all; mask when its model has been trained)\n"
    "  --analysis SPEC         models per task, e.g. age=fr_age+gear,liveness=antispoof\n"
    "                          (mien models lists them; default: README, \"Face analysis\");\n"
    "                          pose: landmarks (the five points), landmarks68, fr_pose,\n"
    "                          mesh (the face mesh's 3-D points)\n"
    "  --liveness-threshold T  a face is real at liveness >= T (default: the model's)\n"
    "  --threads N             threads: several files run in parallel (default: all cores)\n"
    "  (and the detection options of mien detect)\n";

typedef struct analyze_job {
    const cli_common *c;
    const analyze_opts *a;
    char **files;
    int n;
    unsigned tasks;
    int draw_dir;
    pthread_mutex_t lock;
    char **out, **err;
    char *ready;
    int next, failed;
} analyze_job;

static void emit(analyze_job *j, int i, char *out, char *err, int failed) {
    pthread_mutex_lock(&j->lock);
    j->out[i] = out;
    j->err[i] = err;
    j->ready[i] = 1;
    if (failed) j->failed = 1;
    for (; j->next < j->n && j->ready[j->next]; j->next++) {
        if (j->err[j->next]) fputs(j->err[j->next], stderr);
        if (j->out[j->next]) fputs(j->out[j->next], stdout);
        free(j->out[j->next]);
        free(j->err[j->next]);
        j->out[j->next] = j->err[j->next] = NULL;
    }
    fflush(stdout);
    pthread_mutex_unlock(&j->lock);
}

/* One line of text for a face (also its --draw label, shorter). */
static void analysis_text(const mien_analysis *r, char *buf, size_t size, int short_form) {
    size_t k = 0;
#define PUT(...) k += (size_t)snprintf(buf + k, k < size ? size - k : 0, __VA_ARGS__)
    buf[0] = '\0';
    if (r->tasks & MIEN_ANALYZE_AGE) PUT("age %.0f", r->age);
    if (r->tasks & MIEN_ANALYZE_GENDER) PUT("%s%s %.2f", k ? ", " : "", r->male ? "male" : "female", r->gender_score);
    if (r->race >= 0 && r->race < MIEN_RACES && !short_form)
        PUT("%s%s %.2f", k ? ", " : "", mien_race_names[r->race], r->race_scores[r->race]);
    if (r->tasks & MIEN_ANALYZE_EXPRESSION)
        PUT("%s%s %.2f", k ? ", " : "", mien_expression_names[r->expression], r->expression_scores[r->expression]);
    if (r->tasks & MIEN_ANALYZE_LIVENESS) PUT("%s%s %.2f", k ? ", " : "", r->real ? "real" : "SPOOF", r->liveness);
    if ((r->tasks & MIEN_ANALYZE_POSE) && !short_form)
        PUT("%syaw %.0f pitch %.0f roll %.0f", k ? ", " : "", r->yaw, r->pitch, r->roll);
    if (r->tasks & MIEN_ANALYZE_QUALITY) PUT("%s%s %.2f", k ? ", " : "", short_form ? "q" : "quality", r->quality);
    if (r->tasks & MIEN_ANALYZE_MASK) PUT("%s%s %.2f", k ? ", " : "", r->mask ? "mask" : "no mask", r->mask_score);
#undef PUT
    if (k >= size && size) buf[size - 1] = '\0';
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int analyze_file(analyze_job *j, mien_session *s, int i, FILE *out, FILE *err) {
    const char *path = j->files[i];
    const cli_common *c = j->c;
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0, bordered = 0, rc = mien_image_load(s, path, &img);
    if (!rc) rc = cli_detect_with_border(s, &img, &c->det, &faces, &n, &bordered);
    mien_analysis *res = rc ? NULL : calloc((size_t)(n ? n : 1), sizeof *res);
    if (!rc && !res) rc = MIEN_ENOMEM;
    for (int k = 0; !rc && k < n; k++) rc = mien_analyze(s, &img, &faces[k], j->tasks, &res[k]);
    if (rc) {
        const char *msg = rc == MIEN_ENOMEM ? "out of memory" : mien_errmsg(s);
        fprintf(err, "mien analyze: %s: %s\n", path, msg);
        if (c->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "image", path);
            cJSON_AddStringToObject(o, "error", msg);
            char *txt = cJSON_PrintUnformatted(o);
            if (txt) fprintf(out, "%s\n", txt);
            free(txt);
            cJSON_Delete(o);
        }
        free(faces);
        free(res);
        mien_image_free(&img);
        return EXIT_FAIL;
    }
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "image", path);
        cJSON_AddNumberToObject(o, "width", img.width);
        cJSON_AddNumberToObject(o, "height", img.height);
        if (bordered) cJSON_AddBoolToObject(o, "searched_with_border", 1);
        cJSON *fa = cJSON_AddArrayToObject(o, "faces");
        for (int k = 0; k < n; k++) {
            cJSON *fo = cli_face_json(&faces[k]);
            srv_add_analysis_json(fo, &res[k]);
            cJSON_AddItemToArray(fa, fo);
        }
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) fprintf(out, "%s\n", txt);
        free(txt);
        cJSON_Delete(o);
    } else {
        fprintf(out, "%s: %dx%d, %d face%s\n", path, img.width, img.height, n, n == 1 ? "" : "s");
        for (int k = 0; k < n; k++) {
            char line[512];
            analysis_text(&res[k], line, sizeof line, 0);
            fprintf(out, "  face %d: box %.0f,%.0f %.0fx%.0f  %s\n", k + 1, faces[k].box[0],
                    faces[k].box[1], faces[k].box[2], faces[k].box[3], line);
        }
    }
    int status = EXIT_OK;
    if (j->a->draw) {
        char dst[4096];
        if (j->draw_dir) {
            const char *b = base_name(path);
            const char *dot = strrchr(b, '.');
            int len = dot ? (int)(dot - b) : (int)strlen(b);
            snprintf(dst, sizeof dst, "%s/%.*s.png", j->a->draw, len, b);
        } else {
            snprintf(dst, sizeof dst, "%s", j->a->draw);
        }
        char (*text)[160] = calloc((size_t)(n ? n : 1), sizeof *text);
        const char **labels = calloc((size_t)(n ? n : 1), sizeof *labels);
        if (!text || !labels) status = EXIT_FAIL;
        for (int k = 0; status == EXIT_OK && k < n; k++) {
            analysis_text(&res[k], text[k], sizeof text[k], 1);
            labels[k] = text[k];
        }
        if (status == EXIT_OK && cli_draw_faces(dst, &img, faces, n, labels)) status = EXIT_FAIL;
        free(text);
        free(labels);
    }
    free(faces);
    free(res);
    mien_image_free(&img);
    return status;
}

static int analyze_one(void *ctx, mien_session *s, int worker, int i) {
    analyze_job *j = ctx;
    char *out = NULL, *err = NULL;
    size_t out_len, err_len;
    FILE *fo = open_memstream(&out, &out_len), *fe = open_memstream(&err, &err_len);
    if (!fo || !fe) {
        if (fo) fclose(fo);
        if (fe) fclose(fe);
        free(out);
        free(err);
        return EXIT_FAIL;
    }
    int status = analyze_file(j, s, i, fo, fe);
    fclose(fo);
    fclose(fe);
    emit(j, i, out, err, status != EXIT_OK);
    return 0;
}

int cmd_analyze(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    analyze_opts a = {0};
    if (cli_parse(&c, &argc, argv, analyze_extra, &a, analyze_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(analyze_usage, stderr);
        return EXIT_USAGE;
    }
    if (a.set || a.predictions || a.roc) {
        fprintf(stderr, "mien analyze: --set, --predictions and --roc belong to mien eval analysis\n");
        return EXIT_USAGE;
    }
    analyze_job j = {.c = &c, .a = &a, .files = argv + 1, .n = argc - 1};
    int st = cli_analysis_tasks(&c, a.tasks_arg, &j.tasks);
    if (st) return st;
    j.draw_dir = a.draw && argc > 2;
    if (j.draw_dir && mkdir(a.draw, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mien analyze: cannot create folder %s: %s\n", a.draw, strerror(errno));
        return EXIT_FAIL;
    }
    const int workers = c.threads < j.n ? c.threads : j.n;
    c.cfg.threads = cli_intra_threads(&c, workers);
    c.cfg.analyze = j.tasks;
    c.cfg.liveness_threshold = a.liveness_threshold;
    mien_models *m = cli_open_models(&c);
    if (!m) return EXIT_FAIL;
    j.out = calloc((size_t)j.n, sizeof *j.out);
    j.err = calloc((size_t)j.n, sizeof *j.err);
    j.ready = calloc((size_t)j.n, 1);
    int status = EXIT_FAIL;
    if (j.out && j.err && j.ready) {
        pthread_mutex_init(&j.lock, NULL);
        int rc = cli_parallel(m, workers, j.n, analyze_one, &j, "analyze", c.quiet || j.n < 2);
        pthread_mutex_destroy(&j.lock);
        status = rc || j.failed ? EXIT_FAIL : EXIT_OK;
        for (int i = 0; i < j.n; i++) free(j.out[i]), free(j.err[i]);
    }
    free(j.out);
    free(j.err);
    free(j.ready);
    mien_models_close(m);
    return status;
}

/* ==== mien eval analysis ==== */

static const char eval_usage[] =
    "usage: mien eval analysis --set DIR [--json] [--tasks LIST] [options]\n"
    "\n"
    "Accuracy of the face analysis on a labelled folder: DIR/labels.tsv, a first line\n"
    "'#path<TAB>column...' naming the columns, then one photo per line (path relative to DIR).\n"
    "Columns read: age (years), gender (male/female), label (real/spoof, mask/no_mask, or an\n"
    "expression: angry, disgust, fear, happy, neutral, sad, surprise), view (frontal/profile:\n"
    "right when |yaw| <= 15 degrees on frontal photos, >= 45 on profiles), race (white, black,\n"
    "asian, indian, other or others: measured where GEAR runs, --analysis age=gear); a path starting\n"
    "with / is taken as it is. The largest face of each\n"
    "photo is analysed (a tight crop is searched again inside a border); photos without a face\n"
    "are counted in faces_missing and left out of the figures.\n"
    "\n"
    "Prints age MAE and accuracy within 5 years, gender accuracy, expression accuracy and the\n"
    "confusion matrix, anti-spoofing APCER (spoofs taken for real), BPCER (real faces refused)\n"
    "and ACER (their mean) at the operating threshold with the ROC, mask accuracy.\n"
    "\n"
    "  --set DIR               the folder (e.g. ../shared/data/analysis/age_gender)\n"
    "  --json                  {\"images\", \"faces_missing\", \"age_mae\", \"age_within5\",\n"
    "                          \"gender_accuracy\", \"race_accuracy\", \"expression_accuracy\",\n"
    "                          \"expression_confusion\",\n"
    "                          \"spoof_apcer\", \"spoof_bpcer\", \"spoof_acer\", \"spoof_threshold\",\n"
    "                          \"spoof_roc\", \"spoof_auc\", \"mask_accuracy\", \"pose_accuracy\",\n"
    "                          \"pose_frontal_within15\", \"pose_profile_beyond45\", \"models\"}\n"
    "  --tasks LIST            only these tasks (default: those the labels have)\n"
    "  --analysis SPEC         models per task (as mien analyze)\n"
    "  --liveness-threshold T  a face is real at liveness >= T\n"
    "  --predictions FILE      write each photo's answers as TSV\n"
    "  --roc OUT.png           draw the liveness ROC (real faces accepted against spoofs\n"
    "                          taken for real)\n"
    "  --part P                only half P (0 or 1) of the photos, split as mien train\n"
    "                          attribute splits them (within each label and kind, sorted by\n"
    "                          path, every other photo): the half a trained head never saw\n"
    "  --threads N             photos analysed in parallel (default: all cores)\n";

enum { COL_AGE, COL_GENDER, COL_LABEL, COL_VIEW, COL_KIND, COL_RACE, N_COLS };

typedef struct ev_item {
    char *path;               /* full path */
    char *rel;                /* as in labels.tsv */
    float age;                /* -1: none */
    int male;                 /* -1: none */
    int expression;           /* -1: none */
    int real;                 /* -1: none */
    int mask;                 /* -1: none */
    int profile;              /* view: 1 profile, 0 frontal, -1 none */
    int race;                 /* index into mien_race_names, -1: none */
    char group[96];           /* label and kind: the groups of cli_split_halves */
    /* results */
    int found, failed;
    mien_analysis r;
} ev_item;

typedef struct ev_job {
    const cli_common *c;
    ev_item *items;
    unsigned tasks;
} ev_job;

static int ev_one(void *ctx, mien_session *s, int worker, int i) {
    ev_job *j = ctx;
    ev_item *it = &j->items[i];
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0, bordered = 0, rc = mien_image_load(s, it->path, &img);
    if (!rc) rc = cli_detect_with_border(s, &img, &j->c->det, &faces, &n, &bordered);
    if (!rc && n > 0) {
        int k = cli_pick_largest(faces, n);
        rc = mien_analyze(s, &img, &faces[k], j->tasks, &it->r);
        it->found = !rc;
    }
    if (rc) {
        it->failed = 1;
        fprintf(stderr, "mien eval analysis: %s: %s\n", it->path, mien_errmsg(s));
    }
    free(faces);
    mien_image_free(&img);
    return 0;
}

static void items_free(ev_item *v, int n) {
    for (int i = 0; i < n; i++) free(v[i].path), free(v[i].rel);
    free(v);
}

static int expression_index(const char *s) {
    for (int i = 0; i < MIEN_EXPRESSIONS; i++)
        if (!strcmp(s, mien_expression_names[i])) return i;
    return -1;
}

/* Read DIR/labels.tsv. */
static int read_labels(const char *dir, ev_item **out, int *n_out, unsigned *has) {
    char path[4096];
    snprintf(path, sizeof path, "%s/labels.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mien eval analysis: cannot read %s: %s\n", path, strerror(errno));
        return EXIT_FAIL;
    }
    char line[8192];
    int col[N_COLS] = {-1, -1, -1, -1, -1, -1}, n = 0, cap = 0, lineno = 0, status = EXIT_OK;
    ev_item *v = NULL;
    *has = 0;
    while (fgets(line, sizeof line, f)) {
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
            if (fields[0][0] != '#') {
                fprintf(stderr, "mien eval analysis: %s: the first line must name the columns "
                        "('#path<TAB>...')\n", path);
                status = EXIT_FAIL;
                break;
            }
            for (int k = 1; k < nf; k++) {
                if (!strcmp(fields[k], "age")) col[COL_AGE] = k;
                if (!strcmp(fields[k], "gender")) col[COL_GENDER] = k;
                if (!strcmp(fields[k], "label")) col[COL_LABEL] = k;
                if (!strcmp(fields[k], "view")) col[COL_VIEW] = k;
                if (!strcmp(fields[k], "kind")) col[COL_KIND] = k;
                if (!strcmp(fields[k], "race")) col[COL_RACE] = k;
            }
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            ev_item *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                status = EXIT_FAIL;
                break;
            }
            v = nv;
        }
        ev_item *it = &v[n];
        memset(it, 0, sizeof *it);
        it->age = -1;
        it->male = it->expression = it->real = it->mask = it->profile = it->race = -1;
        char full[4096];
        if (fields[0][0] == '/') snprintf(full, sizeof full, "%s", fields[0]);
        else snprintf(full, sizeof full, "%s/%s", dir, fields[0]);
        it->path = strdup(full);
        it->rel = strdup(fields[0]);
        n++;
        if (!it->path || !it->rel) {
            status = EXIT_FAIL;
            break;
        }
        const char *bad = NULL;
        if (col[COL_AGE] > 0 && col[COL_AGE] < nf) {
            char *end;
            it->age = strtof(fields[col[COL_AGE]], &end);
            if (end == fields[col[COL_AGE]] || *end || !(it->age >= 0 && it->age < 150)) bad = "age";
            *has |= MIEN_ANALYZE_AGE;
        }
        if (col[COL_GENDER] > 0 && col[COL_GENDER] < nf) {
            const char *g = fields[col[COL_GENDER]];
            it->male = !strcmp(g, "male") ? 1 : !strcmp(g, "female") ? 0 : -1;
            if (it->male < 0) bad = "gender";
            *has |= MIEN_ANALYZE_GENDER;
        }
        if (col[COL_LABEL] > 0 && col[COL_LABEL] < nf) {
            const char *l = fields[col[COL_LABEL]];
            if (!strcmp(l, "real") || !strcmp(l, "spoof")) {
                it->real = !strcmp(l, "real");
                *has |= MIEN_ANALYZE_LIVENESS;
            } else if (!strcmp(l, "mask") || !strcmp(l, "no_mask")) {
                it->mask = !strcmp(l, "mask");
                *has |= MIEN_ANALYZE_MASK;
            } else if ((it->expression = expression_index(l)) >= 0) {
                *has |= MIEN_ANALYZE_EXPRESSION;
            } else {
                bad = "label";
            }
        }
        snprintf(it->group, sizeof it->group, "%.40s\t%.40s",
                 col[COL_LABEL] > 0 && col[COL_LABEL] < nf ? fields[col[COL_LABEL]] : "",
                 col[COL_KIND] > 0 && col[COL_KIND] < nf ? fields[col[COL_KIND]] : "");
        if (col[COL_RACE] > 0 && col[COL_RACE] < nf) {
            /* GEAR's classes; UTKFace's labels say "others" */
            const char *r = fields[col[COL_RACE]];
            for (int k = 0; k < MIEN_RACES; k++)
                if (!strcmp(r, mien_race_names[k])) it->race = k;
            if (!strcmp(r, "others")) it->race = MIEN_RACES - 1;
            if (it->race < 0) bad = "race";
        }
        if (col[COL_VIEW] > 0 && col[COL_VIEW] < nf) {
            const char *w = fields[col[COL_VIEW]];
            it->profile = !strcmp(w, "profile") ? 1 : !strcmp(w, "frontal") ? 0 : -1;
            if (it->profile < 0) bad = "view";
            *has |= MIEN_ANALYZE_POSE;
        }
        if (bad) {
            fprintf(stderr, "mien eval analysis: %s:%d: bad %s\n", path, lineno, bad);
            status = EXIT_FAIL;
            break;
        }
    }
    fclose(f);
    if (status == EXIT_OK && n == 0) {
        fprintf(stderr, "mien eval analysis: %s lists no photo\n", path);
        status = EXIT_FAIL;
    }
    if (status == EXIT_OK && !*has) {
        fprintf(stderr, "mien eval analysis: %s has none of the columns age, gender, label, view\n", path);
        status = EXIT_FAIL;
    }
    if (status) {
        items_free(v, n);
        return status;
    }
    *out = v;
    *n_out = n;
    return EXIT_OK;
}

static double r4(double v) { return round(v * 10000.0) / 10000.0; }

/* The liveness ROC (NULL: none, why says why) as a picture: real faces accepted (1 - BPCER)
 * against spoofs accepted (APCER, log scale). 1 with a message on failure. */
static int draw_liveness_roc(const char *png, const ve_roc *roc, const char *why, const char *set,
                             const char *model) {
    mien_err e = {0};
    char title[256];
    snprintf(title, sizeof title, "liveness (%s) on %s", model, set);
    ve_curve curve = {model, roc};
    if (!roc) mien_err_set(&e, MIEN_EINVAL, "%s", why);
    if (!roc || ve_plot_roc_axes(png, &curve, 1, title, "APCER (spoofs taken for real, log scale)",
                                 "1 - BPCER (real faces accepted)", &e)) {
        fprintf(stderr, "mien eval analysis: --roc %s: %s\n", png, e.msg);
        return 1;
    }
    return 0;
}

int cmd_eval_analysis(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    analyze_opts a = {0};
    if (cli_parse(&c, &argc, argv, analyze_extra, &a, eval_usage)) return EXIT_USAGE;
    if (argc != 1 || !a.set) {
        fputs(eval_usage, stderr);
        return EXIT_USAGE;
    }
    if (a.draw) {
        fprintf(stderr, "mien eval analysis: --draw belongs to mien analyze\n");
        return EXIT_USAGE;
    }
    ev_item *items = NULL;
    int n = 0;
    unsigned has = 0;
    if (read_labels(a.set, &items, &n, &has)) return EXIT_FAIL;
    if (a.part) { /* keep one half (cli_split_halves) */
        if (strcmp(a.part, "0") && strcmp(a.part, "1")) {
            fprintf(stderr, "mien eval analysis: --part is 0 or 1\n");
            items_free(items, n);
            return EXIT_USAGE;
        }
        const char **pp = calloc((size_t)n, sizeof *pp), **gg = calloc((size_t)n, sizeof *gg);
        int *part = malloc((size_t)n * sizeof *part);
        if (!pp || !gg || !part) {
            free(pp), free(gg), free(part);
            items_free(items, n);
            return EXIT_FAIL;
        }
        for (int i = 0; i < n; i++) pp[i] = items[i].rel, gg[i] = items[i].group;
        cli_split_halves(pp, gg, n, part);
        int kept = 0, want = atoi(a.part);
        for (int i = 0; i < n; i++) {
            if (part[i] == want) items[kept++] = items[i];
            else free(items[i].path), free(items[i].rel);
        }
        n = kept;
        free(pp), free(gg), free(part);
    }
    unsigned tasks = has;
    if (a.tasks_arg && cli_analysis_tasks(&c, a.tasks_arg, &tasks)) {
        items_free(items, n);
        return EXIT_USAGE;
    }
    if (a.roc && (!(tasks & MIEN_ANALYZE_LIVENESS) || !(has & MIEN_ANALYZE_LIVENESS))) {
        fprintf(stderr, "mien eval analysis: --roc draws the liveness ROC: it needs a label column of "
                        "real and spoof photos and the liveness task\n");
        items_free(items, n);
        return EXIT_USAGE;
    }
    c.cfg.analyze = tasks;
    c.cfg.liveness_threshold = a.liveness_threshold;
    const int workers = c.threads < n ? c.threads : n;
    c.cfg.threads = cli_intra_threads(&c, workers);
    mien_models *m = cli_open_models(&c);
    if (!m) {
        items_free(items, n);
        return EXIT_FAIL;
    }
    ev_job j = {&c, items, tasks};
    double t0 = cli_now();
    int rc = cli_parallel(m, workers, n, ev_one, &j, "analysis", c.quiet);
    double secs = cli_now() - t0;
    if (rc) {
        mien_models_close(m);
        items_free(items, n);
        return EXIT_FAIL;
    }
    /* ---- figures ---- */
    int missing = 0, failed = 0;
    double age_abs = 0;
    int age_n = 0, age_w5 = 0, g_n = 0, g_ok = 0, e_n = 0, e_ok = 0, m_n = 0, m_ok = 0;
    int r_n = 0, r_ok = 0; /* race, where GEAR ran */
    int conf[MIEN_EXPRESSIONS][MIEN_EXPRESSIONS] = {{0}};
    int n_real = 0, n_spoof = 0, apc = 0, bpc = 0;
    int n_front = 0, front_ok = 0, n_prof = 0, prof_ok = 0;
    float *live = malloc((size_t)n * sizeof *live); /* liveness score of each labelled face */
    int *real = malloc((size_t)n * sizeof *real);   /* and whether it is real */
    int n_live = 0;
    for (int i = 0; i < n; i++) {
        ev_item *it = &items[i];
        if (it->failed) failed++;
        if (!it->found) {
            missing += !it->failed;
            continue;
        }
        const mien_analysis *r = &it->r;
        if ((tasks & MIEN_ANALYZE_AGE) && it->age >= 0) {
            double d = fabs((double)r->age - it->age);
            age_abs += d;
            age_w5 += d <= 5.0;
            age_n++;
        }
        if ((tasks & MIEN_ANALYZE_GENDER) && it->male >= 0) g_n++, g_ok += r->male == it->male;
        if (it->race >= 0 && r->race >= 0) r_n++, r_ok += r->race == it->race;
        if ((tasks & MIEN_ANALYZE_EXPRESSION) && it->expression >= 0) {
            e_n++;
            e_ok += r->expression == it->expression;
            conf[it->expression][r->expression]++;
        }
        if ((tasks & MIEN_ANALYZE_LIVENESS) && it->real >= 0) {
            if (it->real) n_real++, bpc += !r->real;
            else n_spoof++, apc += r->real;
            if (live && real) live[n_live] = r->liveness, real[n_live] = it->real, n_live++;
        }
        if ((tasks & MIEN_ANALYZE_MASK) && it->mask >= 0) m_n++, m_ok += r->mask == it->mask;
        if ((tasks & MIEN_ANALYZE_POSE) && it->profile == 0) n_front++, front_ok += fabsf(r->yaw) <= 15.f;
        if ((tasks & MIEN_ANALYZE_POSE) && it->profile == 1) n_prof++, prof_ok += fabsf(r->yaw) >= 45.f;
    }
    /* ROC of the liveness score (eval/verify_eval.c's): the threshold sweeps the scores from
     * high to low, one point per group of equal scores. */
    ve_set vs = {0};
    ve_roc vr = {0};
    mien_err re = {0};
    const int roc_ok = n_real && n_spoof && n_live == n_real + n_spoof &&
                       !ve_set_build(&vs, n_live, live, NULL, real, NULL, VE_MISSING_EXCLUDE, &re) &&
                       !ve_roc_compute(&vs, &vr, &re);
    ve_set_free(&vs);
    free(live), free(real);
    cJSON *roc = cJSON_CreateArray();
    const double auc = roc_ok ? ve_roc_auc(&vr) : 0;
    for (int i = 1; roc_ok && i < vr.n; i++) { /* point 0 is above every score */
        cJSON *pt = cJSON_CreateObject();
        cJSON_AddNumberToObject(pt, "threshold", r4(vr.thr[i]));
        cJSON_AddNumberToObject(pt, "apcer", r4(vr.far[i]));
        cJSON_AddNumberToObject(pt, "bpcer", r4(1.0 - vr.tar[i]));
        cJSON_AddItemToArray(roc, pt);
    }
    const char *why = !(n_real && n_spoof) ? "the faces found are not both real and spoof"
                      : re.msg[0]        ? re.msg
                                         : "out of memory";
    int roc_failed = a.roc && draw_liveness_roc(a.roc, roc_ok ? &vr : NULL, why, a.set,
                                                mien_models_analysis_names(m, MIEN_ANALYZE_LIVENESS));
    ve_roc_free(&vr);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "set", a.set);
    if (a.part) cJSON_AddStringToObject(o, "part", a.part);
    cJSON_AddNumberToObject(o, "images", n);
    cJSON_AddNumberToObject(o, "faces_missing", missing);
    if (failed) cJSON_AddNumberToObject(o, "failed", failed);
    cJSON *mo = cJSON_AddObjectToObject(o, "models");
    for (int t = 0; t < 7; t++)
        if (tasks & (1u << t)) {
            static const char *const tn[7] = {"age", "gender", "expression", "liveness", "pose", "quality", "mask"};
            cJSON_AddStringToObject(mo, tn[t], mien_models_analysis_names(m, 1u << t));
        }
    cJSON_AddStringToObject(o, "detector", c.cfg.detector);
    if (age_n) {
        cJSON_AddNumberToObject(o, "age_mae", r4(age_abs / age_n));
        cJSON_AddNumberToObject(o, "age_within5", r4((double)age_w5 / age_n));
    }
    if (g_n) cJSON_AddNumberToObject(o, "gender_accuracy", r4((double)g_ok / g_n));
    if (r_n) cJSON_AddNumberToObject(o, "race_accuracy", r4((double)r_ok / r_n));
    if (e_n) {
        cJSON_AddNumberToObject(o, "expression_accuracy", r4((double)e_ok / e_n));
        cJSON *cm = cJSON_AddObjectToObject(o, "expression_confusion");
        for (int t = 0; t < MIEN_EXPRESSIONS; t++) {
            cJSON *row = cJSON_AddObjectToObject(cm, mien_expression_names[t]);
            for (int p = 0; p < MIEN_EXPRESSIONS; p++)
                cJSON_AddNumberToObject(row, mien_expression_names[p], conf[t][p]);
        }
    }
    double apcer = n_spoof ? (double)apc / n_spoof : 0, bpcer = n_real ? (double)bpc / n_real : 0;
    if (n_real && n_spoof) {
        cJSON_AddNumberToObject(o, "spoof_apcer", r4(apcer));
        cJSON_AddNumberToObject(o, "spoof_bpcer", r4(bpcer));
        cJSON_AddNumberToObject(o, "spoof_acer", r4((apcer + bpcer) / 2));
        cJSON_AddNumberToObject(o, "spoof_auc", r4(auc));
        float thr = 0;
        for (int i = 0; i < n; i++)
            if (items[i].found) {
                thr = items[i].r.liveness_threshold;
                break;
            }
        cJSON_AddNumberToObject(o, "spoof_threshold", r4(thr));
        cJSON_AddItemToObject(o, "spoof_roc", roc);
        roc = NULL;
    }
    if (m_n) cJSON_AddNumberToObject(o, "mask_accuracy", r4((double)m_ok / m_n));
    if (n_front + n_prof) {
        cJSON_AddNumberToObject(o, "pose_accuracy", r4((double)(front_ok + prof_ok) / (n_front + n_prof)));
        if (n_front) cJSON_AddNumberToObject(o, "pose_frontal_within15", r4((double)front_ok / n_front));
        if (n_prof) cJSON_AddNumberToObject(o, "pose_profile_beyond45", r4((double)prof_ok / n_prof));
    }
    cJSON_AddNumberToObject(o, "seconds", round(secs * 100) / 100);
    cJSON_Delete(roc);
    if (c.json) {
        char *txt = cJSON_PrintUnformatted(o);
        if (txt) printf("%s\n", txt);
        free(txt);
    } else {
        printf("%s: %d photos, %d without a face%s\n", a.set, n, missing, failed ? " (some failed)" : "");
        if (age_n) printf("  age        MAE %.2f years, within 5 years %.1f%%  (%s)\n", age_abs / age_n,
                          100.0 * age_w5 / age_n, mien_models_analysis_names(m, MIEN_ANALYZE_AGE));
        if (g_n) printf("  gender     accuracy %.2f%% of %d  (%s)\n", 100.0 * g_ok / g_n, g_n,
                        mien_models_analysis_names(m, MIEN_ANALYZE_GENDER));
        if (r_n) printf("  race       accuracy %.2f%% of %d  (gear)\n", 100.0 * r_ok / r_n, r_n);
        if (e_n) {
            printf("  expression accuracy %.2f%% of %d  (%s)\n", 100.0 * e_ok / e_n, e_n,
                   mien_models_analysis_names(m, MIEN_ANALYZE_EXPRESSION));
            printf("             true \\ predicted");
            for (int p = 0; p < MIEN_EXPRESSIONS; p++) printf(" %8.8s", mien_expression_names[p]);
            printf("\n");
            for (int t = 0; t < MIEN_EXPRESSIONS; t++) {
                printf("             %-17s", mien_expression_names[t]);
                for (int p = 0; p < MIEN_EXPRESSIONS; p++) printf(" %8d", conf[t][p]);
                printf("\n");
            }
        }
        if (n_real && n_spoof)
            printf("  liveness   APCER %.2f%%  BPCER %.2f%%  ACER %.2f%%  AUC %.4f  (%s)\n", 100 * apcer,
                   100 * bpcer, 50 * (apcer + bpcer), auc, mien_models_analysis_names(m, MIEN_ANALYZE_LIVENESS));
        if (m_n) printf("  mask       accuracy %.2f%% of %d  (%s)\n", 100.0 * m_ok / m_n, m_n,
                        mien_models_analysis_names(m, MIEN_ANALYZE_MASK));
        if (n_front + n_prof)
            printf("  pose       %.2f%% right: |yaw| <= 15 on %.2f%% of %d frontal, >= 45 on %.2f%% of "
                   "%d profile  (%s)\n", 100.0 * (front_ok + prof_ok) / (n_front + n_prof),
                   n_front ? 100.0 * front_ok / n_front : 0, n_front,
                   n_prof ? 100.0 * prof_ok / n_prof : 0, n_prof,
                   mien_models_analysis_names(m, MIEN_ANALYZE_POSE));
    }
    cJSON_Delete(o);
    int status = failed || roc_failed ? EXIT_FAIL : EXIT_OK;
    if (a.predictions) {
        FILE *f = fopen(a.predictions, "w");
        if (!f) {
            fprintf(stderr, "mien eval analysis: cannot write %s: %s\n", a.predictions, strerror(errno));
            status = EXIT_FAIL;
        } else {
            fprintf(f, "#path\tfound\tage\tmale_score\texpression\tliveness\tyaw\tpitch\troll\tquality\tmask_score\trace\n");
            for (int i = 0; i < n; i++) {
                const mien_analysis *r = &items[i].r;
                fprintf(f, "%s\t%d\t%.2f\t%.4f\t%s\t%.4f\t%.2f\t%.2f\t%.2f\t%.4f\t%.4f\t%s\n", items[i].rel,
                        items[i].found, r->age, r->male ? r->gender_score : 1 - r->gender_score,
                        mien_expression_names[r->expression], r->liveness, r->yaw, r->pitch, r->roll,
                        r->quality, r->mask ? r->mask_score : 1 - r->mask_score,
                        items[i].found && r->race >= 0 ? mien_race_names[r->race] : "");
            }
            fclose(f);
        }
    }
    mien_models_close(m);
    items_free(items, n);
    return status;
}
