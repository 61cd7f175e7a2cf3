/* mien detect / embed / verify. */
#include "cli/cli.h"
#include "image/image.h"

#include <errno.h>
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
    "  --detector NAME   blazeface (256x256, default) or blazeface-front (128x128)\n"
    "  --landmarks SRC   none (detector keypoints, default) or facemesh (5 ArcFace points)\n"
    "  --models DIR      models folder (default $MIEN_MODELS or ./models)\n"
    "  --backend B       auto, xnnpack or ref;  --threads N\n";

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

int cmd_detect(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    detect_opts d = {0};
    if (cli_parse(&c, &argc, argv, detect_extra, &d, detect_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(detect_usage, stderr);
        return EXIT_USAGE;
    }
    int draw_dir = d.draw && argc > 2;
    if (draw_dir && mkdir(d.draw, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mien detect: cannot create folder %s: %s\n", d.draw, strerror(errno));
        return EXIT_FAIL;
    }
    c.cfg.threads = 1;
    mien_models *m = cli_open_models(&c);
    if (!m) return EXIT_FAIL;
    mien_session *s = cli_open_session(m);
    if (!s) {
        mien_models_close(m);
        return EXIT_FAIL;
    }
    int status = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        mien_image img = {0};
        mien_face *faces = NULL;
        int n = 0, rc = mien_image_load(s, argv[i], &img);
        if (!rc) rc = mien_detect(s, &img, &c.det, &faces, &n);
        if (rc) {
            fprintf(stderr, "mien detect: %s\n", mien_errmsg(s));
            if (c.json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "image", argv[i]);
                cJSON_AddStringToObject(o, "error", mien_errmsg(s));
                cli_print_json(o);
            }
            status = EXIT_FAIL;
            mien_image_free(&img);
            continue;
        }
        if (c.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "image", argv[i]);
            cJSON_AddNumberToObject(o, "width", img.width);
            cJSON_AddNumberToObject(o, "height", img.height);
            cJSON *fa = cJSON_AddArrayToObject(o, "faces");
            for (int k = 0; k < n; k++) cJSON_AddItemToArray(fa, cli_face_json(&faces[k]));
            cli_print_json(o);
        } else {
            printf("%s: %dx%d, %d face%s\n", argv[i], img.width, img.height, n, n == 1 ? "" : "s");
            for (int k = 0; k < n; k++)
                printf("  face %d: box %.0f,%.0f %.0fx%.0f  score %.3f\n", k + 1, faces[k].box[0],
                       faces[k].box[1], faces[k].box[2], faces[k].box[3], faces[k].score);
        }
        if (d.draw) {
            char path[4096];
            if (draw_dir) {
                const char *b = base_name(argv[i]);
                const char *dot = strrchr(b, '.');
                int len = dot ? (int)(dot - b) : (int)strlen(b);
                snprintf(path, sizeof path, "%s/%.*s.png", d.draw, len, b);
            } else {
                snprintf(path, sizeof path, "%s", d.draw);
            }
            if (cli_draw_faces(path, &img, faces, n, NULL)) status = EXIT_FAIL;
        }
        free(faces);
        mien_image_free(&img);
    }
    mien_session_close(s);
    mien_models_close(m);
    return status;
}

/* ==== embed ==== */

static const char embed_usage[] =
    "usage: mien embed IMAGE... [--json] [options]\n"
    "\n"
    "Detect every face and print its L2-normalised embedding.\n"
    "\n"
    "  --json            one JSON object per image: {\"image\", \"model\", \"faces\": [{\"box\",\n"
    "                    \"score\", \"embedding\": [...]}]}\n"
    "  --embedder NAME   mobilefacenet (default)\n"
    "  --no-flip         do not add the mirrored face's embedding\n"
    "  (and the detection options of mien detect)\n";

int cmd_embed(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    if (cli_parse(&c, &argc, argv, NULL, NULL, embed_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(embed_usage, stderr);
        return EXIT_USAGE;
    }
    c.cfg.threads = 1;
    mien_models *m = cli_open_models(&c);
    if (!m) return EXIT_FAIL;
    mien_session *s = cli_open_session(m);
    if (!s) {
        mien_models_close(m);
        return EXIT_FAIL;
    }
    const int dim = mien_models_embedding_dim(m);
    float *emb = malloc((size_t)dim * sizeof *emb);
    int status = emb ? EXIT_OK : EXIT_FAIL;
    for (int i = 1; emb && i < argc; i++) {
        mien_image img = {0};
        mien_face *faces = NULL;
        int n = 0, rc = mien_image_load(s, argv[i], &img);
        if (!rc) rc = mien_detect(s, &img, &c.det, &faces, &n);
        cJSON *o = cJSON_CreateObject(), *fa = NULL;
        cJSON_AddStringToObject(o, "image", argv[i]);
        cJSON_AddStringToObject(o, "model", mien_models_embedder_name(m));
        if (!rc) fa = cJSON_AddArrayToObject(o, "faces");
        for (int k = 0; !rc && k < n; k++) {
            if ((rc = mien_embed(s, &img, &faces[k], emb))) break;
            cJSON *fo = cJSON_CreateObject();
            cJSON *box = cJSON_AddArrayToObject(fo, "box");
            for (int j = 0; j < 4; j++)
                cJSON_AddItemToArray(box, cJSON_CreateNumber(roundf(faces[k].box[j] * 100) / 100));
            cJSON_AddNumberToObject(fo, "score", roundf(faces[k].score * 10000) / 10000);
            cJSON_AddItemToObject(fo, "embedding", cJSON_CreateFloatArray(emb, dim));
            cJSON_AddItemToArray(fa, fo);
            if (!c.json) {
                printf("%s face %d box %.0f,%.0f,%.0f,%.0f:", argv[i], k + 1, faces[k].box[0],
                       faces[k].box[1], faces[k].box[2], faces[k].box[3]);
                for (int j = 0; j < dim; j++) printf(" %.6f", emb[j]);
                printf("\n");
            }
        }
        if (rc) {
            fprintf(stderr, "mien embed: %s\n", mien_errmsg(s));
            cJSON_DeleteItemFromObject(o, "faces");
            cJSON_AddStringToObject(o, "error", mien_errmsg(s));
            status = EXIT_FAIL;
        } else if (!c.json && n == 0) {
            printf("%s: no face\n", argv[i]);
        }
        if (c.json) cli_print_json(o);
        else cJSON_Delete(o);
        free(faces);
        mien_image_free(&img);
    }
    free(emb);
    mien_session_close(s);
    mien_models_close(m);
    return status;
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
    "  --threshold T     decide with this cosine threshold\n";

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
    c.cfg.threads = 1;
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
        mien_image img = {0};
        mien_face *faces = NULL;
        int n = 0, rc = mien_image_load(s, argv[1 + i], &img);
        if (!rc) rc = mien_detect(s, &img, &c.det, &faces, &n);
        if (!rc && n == 0) {
            fprintf(stderr, "mien verify: no face found in %s\n", argv[1 + i]);
            status = EXIT_USAGE;
        } else if (!rc) {
            rc = mien_embed(s, &img, &faces[cli_pick_largest(faces, n)], emb[i]);
        }
        if (rc) {
            fprintf(stderr, "mien verify: %s\n", mien_errmsg(s));
            status = EXIT_FAIL;
        }
        free(faces);
        mien_image_free(&img);
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
