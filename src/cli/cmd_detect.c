/* mien detect / embed / verify. */
#include "cli/cli.h"
#include "image/image.h"

#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ==== detect ==== */

static const char detect_usage[] =
    "usage: mien detect IMAGE... [--json] [--draw OUT.png|DIR] [options]\n"
    "\n"
    "Find the faces in each photo: box [x, y, w, h], score, landmarks.\n"
    "\n"
    "  --json            one JSON object per image (JSON Lines)\n"
    "  --draw OUT        write the photo with boxes and landmarks (a PNG file for one image,\n"
    "                    a folder for several)\n"
    "  --min-score S     drop detections below S (default 0.6)\n"
    "  --min-size PX     drop faces smaller than PX pixels\n"
    "  --tile            also search overlapping tiles of large photos for small faces\n"
    "  --detector NAME   ultraface@320+ultraface@640 (default: 320x240, then 640x480 where\n"
    "                    that found nothing or the photo is large), ultraface@W, blazeface\n"
    "                    (256x256, the former default), blazeface-front, ssd, mediapipe-full\n"
    "  --landmarks SRC   onet (default: MTCNN's O-Net, 5 points and a face check: a face it\n"
    "                    doubts scores below 0.5, its score times O-Net's face probability;\n"
    "                    a photo where nothing is found is looked at again inside a grey\n"
    "                    margin, for a face that fills the frame), facemesh\n"
    "                    (with blazeface), 68, 68-tiny, facemesh+68, or none (the detector's\n"
    "                    keypoints)\n"
    "  --models DIR      models folder (default: searched, see mien help)\n"
    "  --backend B       auto, xnnpack or ref\n"
    "  --threads N       threads: several files run in parallel (default: all cores), one\n"
    "                    file uses them inside the networks (default: the idle cores);\n"
    "                    output stays in input order\n";

typedef struct detect_opts { const char *draw; } detect_opts;

static int detect_extra(void *ctx, const char *opt, const char *val) {
    detect_opts *d = ctx;
    if (!strcmp(opt, "--draw")) {
        if (!val) return -2;
        d->draw = val;
        return 1;
    }
    return -1;
}

static const img_color box_colors[] = {
    {0, 220, 0}, {255, 170, 0}, {0, 170, 255}, {255, 60, 200}, {240, 240, 0},
};

/* Draw faces (and optional labels) on a copy of img and write it as PNG. */
int cli_draw_faces(const char *path, const mien_image *img, const mien_face *f, int n,
                   const char *const *labels) {
    mien_image canvas = {0};
    mien_err e = {0};
    if (img_alloc(&canvas, img->width, img->height, &e)) {
        fprintf(stderr, "mien: --draw: %s\n", e.msg);
        return EXIT_FAIL;
    }
    memcpy(canvas.rgb, img->rgb, (size_t)img->width * img->height * 3);
    int side = img->width > img->height ? img->width : img->height;
    int t = side / 400 + 1, scale = side / 500 + 1;
    for (int i = 0; i < n; i++) {
        img_color c = box_colors[i % 5];
        img_draw_rect(&canvas, f[i].box[0], f[i].box[1], f[i].box[2], f[i].box[3], t, c);
        for (int k = 0; k < f[i].n_landmarks; k++)
            img_draw_point(&canvas, f[i].landmarks[k][0], f[i].landmarks[k][1], (float)t + 1, c);
        for (int k = 0; k < f[i].n_points && f[i].n_points == 5; k++)
            img_draw_point(&canvas, f[i].points[k][0], f[i].points[k][1], (float)t + 1,
                           (img_color){255, 0, 0});
        char text[160];
        if (labels && labels[i]) snprintf(text, sizeof text, "%s", labels[i]);
        else snprintf(text, sizeof text, "%.2f", f[i].score);
        int ty = (int)f[i].box[1] - img_text_height(scale) - 2;
        if (ty < 0) ty = (int)(f[i].box[1] + f[i].box[3]) + 2;
        img_draw_text(&canvas, (int)f[i].box[0], ty, text, scale, (img_color){0, 0, 0}, 1, c);
    }
    int rc = img_write_png(path, &canvas, &e);
    mien_image_free(&canvas);
    if (rc) {
        fprintf(stderr, "mien: --draw: %s\n", e.msg);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ==== Many files: one session per thread, output in input order ====
 * detect and embed run file i on any worker (cli_parallel) into a buffer of its own; a
 * buffer is printed as soon as every file before it has been, so the output reads as if the
 * files were done one by one, while it streams. */

typedef struct files_job {
    const cli_common *c;
    char **files;            /* (n) paths */
    int n;
    int embed;               /* 0: detect, 1: embed */
    const char *draw;        /* --draw: a file (one image) or a folder */
    int draw_dir;
    const char *model;       /* embedder name */
    int dim;                 /* embedding size */
    pthread_mutex_t lock;    /* guards the fields below and the printing */
    char **out, **err;       /* (n) what file i prints on stdout and stderr, until printed */
    char *ready;             /* (n) file i is done */
    int next;                /* first file not printed yet */
    int failed;              /* some file failed */
} files_job;

/* Store file i's output and print whatever is now next in order. */
static void files_emit(files_job *j, int i, char *out, char *err, int failed) {
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

static void print_json_to(FILE *f, cJSON *v) {
    char *txt = cJSON_PrintUnformatted(v);
    if (txt) fprintf(f, "%s\n", txt);
    free(txt);
    cJSON_Delete(v);
}

/* detect: boxes, scores, landmarks of file i (and its --draw picture). */
static int detect_file(files_job *j, mien_session *s, int i, FILE *out, FILE *err) {
    const char *path = j->files[i];
    const cli_common *c = j->c;
    mien_photo *p = NULL;
    mien_face *faces = NULL;
    int n = 0, w = 0, h = 0, rc = mien_photo_load(s, path, &p);
    if (!rc) rc = mien_photo_detect(s, p, &c->det, &faces, &n);
    mien_photo_size(p, &w, &h);
    if (rc) {
        fprintf(err, "mien detect: %s\n", mien_errmsg(s));
        if (c->json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "image", path);
            cJSON_AddStringToObject(o, "error", mien_errmsg(s));
            print_json_to(out, o);
        }
        mien_photo_close(p);
        return EXIT_FAIL;
    }
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "image", path);
        cJSON_AddNumberToObject(o, "width", w);
        cJSON_AddNumberToObject(o, "height", h);
        cJSON *fa = cJSON_AddArrayToObject(o, "faces");
        for (int k = 0; k < n; k++) cJSON_AddItemToArray(fa, cli_face_json(&faces[k]));
        print_json_to(out, o);
    } else {
        fprintf(out, "%s: %dx%d, %d face%s\n", path, w, h, n, n == 1 ? "" : "s");
        for (int k = 0; k < n; k++)
            fprintf(out, "  face %d: box %.0f,%.0f %.0fx%.0f  score %.3f\n", k + 1,
                    faces[k].box[0], faces[k].box[1], faces[k].box[2], faces[k].box[3],
                    faces[k].score);
    }
    int status = EXIT_OK;
    if (j->draw) {
        char dst[4096];
        if (j->draw_dir) {
            const char *b = base_name(path);
            const char *dot = strrchr(b, '.');
            int len = dot ? (int)(dot - b) : (int)strlen(b);
            snprintf(dst, sizeof dst, "%s/%.*s.png", j->draw, len, b);
        } else {
            snprintf(dst, sizeof dst, "%s", j->draw);
        }
        const mien_image *img;
        if (mien_photo_image(s, p, &img)) {
            fprintf(err, "mien detect: %s\n", mien_errmsg(s));
            status = EXIT_FAIL;
        } else if (cli_draw_faces(dst, img, faces, n, NULL)) {
            status = EXIT_FAIL;
        }
    }
    free(faces);
    mien_photo_close(p);
    return status;
}

/* embed: every face of file i with its embedding. */
static int embed_file(files_job *j, mien_session *s, int i, FILE *out, FILE *err) {
    const char *path = j->files[i];
    const cli_common *c = j->c;
    float *emb = malloc((size_t)j->dim * sizeof *emb);
    if (!emb) {
        fprintf(err, "mien embed: out of memory\n");
        return EXIT_FAIL;
    }
    mien_photo *p = NULL;
    mien_face *faces = NULL;
    int n = 0, rc = mien_photo_load(s, path, &p);
    if (!rc) rc = mien_photo_detect(s, p, &c->det, &faces, &n);
    cJSON *o = cJSON_CreateObject(), *fa = NULL;
    cJSON_AddStringToObject(o, "image", path);
    cJSON_AddStringToObject(o, "model", j->model);
    if (!rc) fa = cJSON_AddArrayToObject(o, "faces");
    for (int k = 0; !rc && k < n; k++) {
        if ((rc = mien_photo_embed(s, p, &faces[k], emb))) break;
        cJSON *fo = cJSON_CreateObject();
        cJSON *box = cJSON_AddArrayToObject(fo, "box");
        for (int b = 0; b < 4; b++)
            cJSON_AddItemToArray(box, cJSON_CreateNumber(roundf(faces[k].box[b] * 100) / 100));
        cJSON_AddNumberToObject(fo, "score", roundf(faces[k].score * 10000) / 10000);
        cJSON_AddItemToObject(fo, "embedding", cJSON_CreateFloatArray(emb, j->dim));
        cJSON_AddItemToArray(fa, fo);
        if (!c->json) {
            fprintf(out, "%s face %d box %.0f,%.0f,%.0f,%.0f:", path, k + 1, faces[k].box[0],
                    faces[k].box[1], faces[k].box[2], faces[k].box[3]);
            for (int d = 0; d < j->dim; d++) fprintf(out, " %.6f", emb[d]);
            fprintf(out, "\n");
        }
    }
    if (rc) {
        fprintf(err, "mien embed: %s\n", mien_errmsg(s));
        cJSON_DeleteItemFromObject(o, "faces");
        cJSON_AddStringToObject(o, "error", mien_errmsg(s));
    } else if (!c->json && n == 0) {
        fprintf(out, "%s: no face\n", path);
    }
    if (c->json) print_json_to(out, o);
    else cJSON_Delete(o);
    free(faces);
    mien_photo_close(p);
    free(emb);
    return rc ? EXIT_FAIL : EXIT_OK;
}

static int files_one(void *ctx, mien_session *s, int worker, int i) {
    files_job *j = ctx;
    char *out = NULL, *err = NULL;
    size_t out_len, err_len;
    FILE *fo = open_memstream(&out, &out_len), *fe = open_memstream(&err, &err_len);
    if (!fo || !fe) {
        if (fo) fclose(fo);
        if (fe) fclose(fe);
        free(out);
        free(err);
        return EXIT_FAIL; /* out of memory: stop */
    }
    int status = j->embed ? embed_file(j, s, i, fo, fe) : detect_file(j, s, i, fo, fe);
    fclose(fo);
    fclose(fe);
    files_emit(j, i, out, err, status != EXIT_OK);
    return 0; /* a file that failed does not stop the others */
}

/* Run detect or embed over argv[1..argc-1]: with several files, they are spread over the
 * threads (--threads, default all cores), each with its own session, and threads left over
 * go inside the layers; with one file, its networks use the threads inside each layer (by
 * default only the cores that are idle: cli_intra_threads). */
static int run_files(cli_common *c, int argc, char **argv, files_job *j) {
    const int n = argc - 1;
    const int workers = c->threads < n ? c->threads : n;
    c->cfg.threads = cli_intra_threads(c, workers);
    mien_models *m = cli_open_models(c);
    if (!m) return EXIT_FAIL;
    j->c = c;
    j->files = argv + 1;
    j->n = n;
    j->model = mien_models_embedder_name(m);
    j->dim = mien_models_embedding_dim(m);
    j->out = calloc((size_t)n, sizeof *j->out);
    j->err = calloc((size_t)n, sizeof *j->err);
    j->ready = calloc((size_t)n, 1);
    int status = EXIT_FAIL;
    if (j->out && j->err && j->ready) {
        pthread_mutex_init(&j->lock, NULL);
        int rc = cli_parallel(m, workers, n, files_one, j, j->embed ? "embed" : "detect",
                              c->quiet || n < 2);
        pthread_mutex_destroy(&j->lock);
        status = rc || j->failed ? EXIT_FAIL : EXIT_OK;
        for (int i = 0; i < n; i++) free(j->out[i]), free(j->err[i]);
    }
    free(j->out);
    free(j->err);
    free(j->ready);
    mien_models_close(m);
    return status;
}

int cmd_detect(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    detect_opts d = {0};
    if (cli_parse(&c, &argc, argv, detect_extra, &d, detect_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(detect_usage, stderr);
        return EXIT_USAGE;
    }
    files_job j = {.draw = d.draw, .draw_dir = d.draw && argc > 2};
    if (j.draw_dir && mkdir(d.draw, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mien detect: cannot create folder %s: %s\n", d.draw, strerror(errno));
        return EXIT_FAIL;
    }
    return run_files(&c, argc, argv, &j);
}

/* ==== embed ==== */

static const char embed_usage[] =
    "usage: mien embed IMAGE... [--json] [options]\n"
    "\n"
    "Detect every face and print its L2-normalised embedding.\n"
    "\n"
    "  --json            one JSON object per image: {\"image\", \"model\", \"faces\": [{\"box\",\n"
    "                    \"score\", \"embedding\": [...]}]}\n"
    "  --embedder NAME   mobilefacenet-tflite (default), frfeature+mobilefacenet-tflite (the\n"
    "                    two fused: best at identification), dlib, frfeature, ... (mien\n"
    "                    models lists them all)\n"
    "  --no-flip         do not add the mirrored face's embedding\n"
    "  --threads N       threads: several files run in parallel (default: all cores), one\n"
    "                    file uses them inside the networks (default: the idle cores);\n"
    "                    output stays in input order\n"
    "  (and the detection options of mien detect)\n";

int cmd_embed(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    if (cli_parse(&c, &argc, argv, NULL, NULL, embed_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(embed_usage, stderr);
        return EXIT_USAGE;
    }
    files_job j = {.embed = 1};
    return run_files(&c, argc, argv, &j);
}

/* ==== verify ==== */

static const char verify_usage[] =
    "usage: mien verify IMAGE_A IMAGE_B [--json] [--threshold T] [options]\n"
    "\n"
    "Same person? Compares the largest face of each photo by cosine similarity. Prints the\n"
    "similarity, the decision and the threshold used (the embedder's default, set on LFW at\n"
    "a false accept rate of 1e-3, unless --threshold is given). A photo without a face is an\n"
    "error (exit status 2).\n"
    "\n"
    "  --json            {\"similarity\", \"same\", \"threshold\", \"model\", \"image_a\", \"image_b\"}\n"
    "  --threshold T     decide with this cosine threshold\n"
    "  --threads N       threads inside the networks (default: the idle cores)\n";

typedef struct verify_opts { float threshold; int has_threshold; } verify_opts;

static int verify_extra(void *ctx, const char *opt, const char *val) {
    verify_opts *v = ctx;
    if (!strcmp(opt, "--threshold")) {
        if (!val) return -2;
        char *end;
        v->threshold = strtof(val, &end);
        if (end == val || *end || !isfinite(v->threshold)) return -3;
        v->has_threshold = 1;
        return 1;
    }
    return -1;
}

int cmd_verify(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    verify_opts v = {0};
    if (cli_parse(&c, &argc, argv, verify_extra, &v, verify_usage)) return EXIT_USAGE;
    if (argc != 3) {
        fputs(verify_usage, stderr);
        return EXIT_USAGE;
    }
    c.cfg.threads = cli_intra_threads(&c, 1); /* one photo at a time: threads inside the layers */
    mien_models *m = cli_open_models(&c);
    if (!m) return EXIT_FAIL;
    mien_session *s = cli_open_session(m);
    if (!s) {
        mien_models_close(m);
        return EXIT_FAIL;
    }
    const int dim = mien_models_embedding_dim(m);
    float *emb[2] = {calloc((size_t)dim, sizeof(float)), calloc((size_t)dim, sizeof(float))};
    int status = (emb[0] && emb[1]) ? EXIT_OK : EXIT_FAIL;
    for (int i = 0; i < 2 && status == EXIT_OK; i++) {
        mien_photo *p = NULL;
        mien_face *faces = NULL;
        int n = 0, rc = mien_photo_load(s, argv[1 + i], &p);
        if (!rc) rc = mien_photo_detect(s, p, &c.det, &faces, &n);
        if (!rc && n == 0) {
            fprintf(stderr, "mien verify: no face found in %s\n", argv[1 + i]);
            status = EXIT_USAGE;
        } else if (!rc) {
            rc = mien_photo_embed(s, p, &faces[cli_pick_largest(faces, n)], emb[i]);
        }
        if (rc) {
            fprintf(stderr, "mien verify: %s\n", mien_errmsg(s));
            status = EXIT_FAIL;
        }
        free(faces);
        mien_photo_close(p);
    }
    if (status == EXIT_OK) {
        float sim = mien_similarity(emb[0], emb[1], dim);
        float thr = v.has_threshold ? v.threshold : mien_models_threshold(m);
        int same = sim >= thr;
        if (c.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "similarity", roundf(sim * 1e6f) / 1e6f);
            cJSON_AddBoolToObject(o, "same", same);
            cJSON_AddNumberToObject(o, "threshold", roundf(thr * 1e6f) / 1e6f);
            cJSON_AddStringToObject(o, "model", mien_models_embedder_name(m));
            cJSON_AddStringToObject(o, "image_a", argv[1]);
            cJSON_AddStringToObject(o, "image_b", argv[2]);
            cli_print_json(o);
        } else {
            printf("similarity %.4f  %s  (threshold %.4f, %s)\n", sim,
                   same ? "same person" : "different people", thr, mien_models_embedder_name(m));
        }
    }
    free(emb[0]);
    free(emb[1]);
    mien_session_close(s);
    mien_models_close(m);
    return status;
}
