/* mien enroll / identify / subjects / forget / rename / export / import / cluster: the
 * gallery of known people from the command line, and clustering of unlabelled photos. */
#include "cli/cli.h"
#include "core/err.h"
#include "gallery/gallery_int.h"
#include "core/sha256.h"
#include "image/image.h"
#include "server/server.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Photos larger than this are refused before decoding. */
#define MAX_PHOTO_BYTES ((size_t)256 << 20)

/* ==== Listing photos and people ==== */

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.') return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png") ||
           !strcasecmp(dot, ".webp");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct str_list {
    char **v;
    int n, cap;
} str_list;

static int sl_push(str_list *l, char *s) {
    if (!s) return -1;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(s);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Image files under dir (recursively when deep), sorted within each folder. */
static int list_dir_images(const char *dir, int deep, str_list *out) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "mien: cannot read folder %s: %s\n", dir, strerror(errno));
        return -1;
    }
    str_list files = {0}, dirs = {0};
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = join(dir, de->d_name);
        struct stat st;
        if (!p || stat(p, &st) != 0) {
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) rc = deep ? sl_push(&dirs, p) : (free(p), 0);
        else if (S_ISREG(st.st_mode) && is_image_name(de->d_name)) rc = sl_push(&files, p);
        else free(p);
    }
    closedir(d);
    qsort(files.v, (size_t)files.n, sizeof *files.v, cmp_str);
    qsort(dirs.v, (size_t)dirs.n, sizeof *dirs.v, cmp_str);
    for (int i = 0; i < files.n; i++)
        if (!rc) rc = sl_push(out, files.v[i]);
        else free(files.v[i]);
    for (int i = 0; i < dirs.n; i++) {
        if (!rc) rc = list_dir_images(dirs.v[i], deep, out);
        free(dirs.v[i]);
    }
    free(files.v);
    free(dirs.v);
    return rc;
}

int cli_list_images(char *const *args, int n_args, char ***paths, int *n) {
    str_list l = {0};
    int rc = 0;
    for (int i = 0; !rc && i < n_args; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) rc = list_dir_images(args[i], 1, &l);
        else rc = sl_push(&l, strdup(args[i])); /* a missing file fails later, with its name */
    }
    if (rc) {
        for (int i = 0; i < l.n; i++) free(l.v[i]);
        free(l.v);
        return -1;
    }
    *paths = l.v;
    *n = l.n;
    return 0;
}

void cli_free_strings(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

int cli_list_people(const char *root, cli_person **out, int *n) {
    *out = NULL;
    *n = 0;
    DIR *d = opendir(root);
    if (!d) {
        fprintf(stderr, "mien: cannot read folder %s: %s\n", root, strerror(errno));
        return -1;
    }
    str_list names = {0};
    struct dirent *de;
    int rc = 0;
    while (!rc && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = join(root, de->d_name);
        struct stat st;
        if (p && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) rc = sl_push(&names, strdup(de->d_name));
        free(p);
    }
    closedir(d);
    qsort(names.v, (size_t)names.n, sizeof *names.v, cmp_str);
    cli_person *v = calloc((size_t)(names.n ? names.n : 1), sizeof *v);
    if (!v) rc = -1;
    for (int i = 0; !rc && i < names.n; i++) {
        char *dir = join(root, names.v[i]);
        str_list photos = {0};
        rc = dir ? list_dir_images(dir, 0, &photos) : -1;
        free(dir);
        v[i].name = names.v[i];
        names.v[i] = NULL;
        v[i].photos = photos.v;
        v[i].n_photos = photos.n;
    }
    int count = names.n;
    cli_free_strings(names.v, names.n);
    if (rc) {
        cli_people_free(v, count);
        return -1;
    }
    *out = v;
    *n = count;
    return 0;
}

void cli_people_free(cli_person *p, int n) {
    for (int i = 0; p && i < n; i++) {
        free(p[i].name);
        cli_free_strings(p[i].photos, p[i].n_photos);
    }
    free(p);
}

/* ==== Embedding the faces of many photos on all cores ==== */

typedef struct photo_job {
    cli_photo *photos;
    int dim;
    const mien_detect_options *det;
    cli_faces_rule rule;
    unsigned analyze;        /* MIEN_ANALYZE_* of every kept face, or 0 */
} photo_job;

static int photo_one(void *ctx, mien_session *s, int worker, int i) {
    photo_job *j = ctx;
    cli_photo *p = &j->photos[i];
    unsigned char *data = NULL;
    size_t len = 0;
    mien_err e = {0};
    mien_image img = {0};
    mien_face *faces = NULL;
    int n = 0;
    if (mien_read_file(p->path, MAX_PHOTO_BYTES, &data, &len, &e)) {
        snprintf(p->err, sizeof p->err, "%s", e.msg);
        p->failed = 1;
        return 0;
    }
    gallery_sha256_of(data, len, p->sha256);
    int rc = mien_image_decode(s, data, len, &img);
    free(data);
    if (!rc) rc = mien_detect(s, &img, j->det, &faces, &n);
    if (rc) {
        snprintf(p->err, sizeof p->err, "%s: %s", p->path, mien_errmsg(s));
        p->failed = 1;
        mien_image_free(&img);
        return 0;
    }
    p->width = img.width;
    p->height = img.height;
    int pick = -1;
    if (n > 0 && j->rule == CLI_FACES_LARGEST) pick = cli_pick_largest(faces, n);
    if (n > 0 && j->rule == CLI_FACES_CENTRAL) pick = cli_pick_central(faces, n, img.width, img.height);
    int keep = pick >= 0 ? 1 : n;
    if (keep > 0) {
        p->faces = malloc((size_t)keep * sizeof *p->faces);
        p->emb = malloc((size_t)keep * j->dim * sizeof *p->emb);
        if (j->analyze) p->an = calloc((size_t)keep, sizeof *p->an);
        if (!p->faces || !p->emb || (j->analyze && !p->an)) {
            snprintf(p->err, sizeof p->err, "%s: out of memory", p->path);
            p->failed = 1;
            keep = 0;
        }
    }
    for (int k = 0; k < keep; k++) {
        p->faces[k] = faces[pick >= 0 ? pick : k];
        if (mien_embed(s, &img, &p->faces[k], p->emb + (size_t)k * j->dim) ||
            (j->analyze && mien_analyze(s, &img, &p->faces[k], j->analyze, &p->an[k]))) {
            snprintf(p->err, sizeof p->err, "%s: %s", p->path, mien_errmsg(s));
            p->failed = 1;
            break;
        }
        p->n_faces = k + 1;
    }
    free(faces);
    mien_image_free(&img);
    return 0;
}

int cli_embed_photos_analyze(mien_models *m, const cli_common *c, cli_photo *photos, int n,
                             cli_faces_rule rule, const char *label, unsigned analyze) {
    photo_job j = {photos, mien_models_embedding_dim(m), &c->det, rule, analyze};
    return cli_parallel(m, c->threads, n, photo_one, &j, label, c->quiet);
}

int cli_embed_photos(mien_models *m, const cli_common *c, cli_photo *photos, int n,
                     cli_faces_rule rule, const char *label) {
    return cli_embed_photos_analyze(m, c, photos, n, rule, label, 0);
}

void cli_photos_free(cli_photo *p, int n) {
    for (int i = 0; p && i < n; i++) {
        free(p[i].faces);
        free(p[i].emb);
        free(p[i].an);
    }
    free(p);
}

/* ==== Options shared by the gallery commands ==== */

typedef struct gal_opts {
    const char *gallery;     /* --gallery PATH */
    const char *collection;  /* --collection NAME */
    const char *from_dir;    /* enroll --from-dir DIR */
    const char *draw;        /* identify --draw OUT */
    const char *out;         /* cluster --out DIR */
    float threshold;         /* --threshold T */
    int has_threshold;
    float min_quality;       /* enroll --min-quality Q (0: off) */
    int liveness;            /* identify --liveness */
    float liveness_threshold;/* identify --liveness-threshold T (0: the model's) */
} gal_opts;

static int gal_extra(void *ctx, const char *opt, const char *val) {
    gal_opts *o = ctx;
    const char **slot = !strcmp(opt, "--gallery")      ? &o->gallery
                        : !strcmp(opt, "--collection") ? &o->collection
                        : !strcmp(opt, "--from-dir") ? &o->from_dir
                        : !strcmp(opt, "--draw")     ? &o->draw
                        : !strcmp(opt, "--out")      ? &o->out
                                                     : NULL;
    if (slot) {
        if (!val) return -2;
        *slot = val;
        return 1;
    }
    if (!strcmp(opt, "--threshold")) {
        if (!val) return -2;
        char *end;
        o->threshold = strtof(val, &end);
        if (end == val || *end || !isfinite(o->threshold)) return -3;
        o->has_threshold = 1;
        return 1;
    }
    if (!strcmp(opt, "--liveness")) {
        o->liveness = 1;
        return 0;
    }
    if (!strcmp(opt, "--min-quality") || !strcmp(opt, "--liveness-threshold")) {
        if (!val) return -2;
        char *end;
        float v = strtof(val, &end);
        if (end == val || *end || !(v > 0.f && v < 1.f)) return -3;
        if (opt[2] == 'm') o->min_quality = v;
        else o->liveness_threshold = v, o->liveness = 1;
        return 1;
    }
    return -1;
}

#define GALLERY_OPT_HELP                                                                       \
    "  --gallery PATH    the gallery file (default $XDG_DATA_HOME/mien/gallery.db, else\n"     \
    "                    ~/.local/share/mien/gallery.db), or a postgresql:// URI\n"            \
    "  --collection NAME the face collection in it (default: default; see mien collections)\n"

/* mkdir -p of the folder that will hold path. */
static void make_parent_dirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0700);
            *p = '/';
        }
    mkdir(buf, 0700);
}

int cli_gallery_options(const char *cmd, const char *path_in, const char *collection, int write,
                        mien_models *m, char *path, size_t size, mien_gallery_options *go) {
    if (!path_in) {
        if (mien_gallery_default_path(path, size)) {
            fprintf(stderr, "mien %s: no HOME or XDG_DATA_HOME: pass --gallery PATH\n", cmd);
            return -1;
        }
        if (write) make_parent_dirs(path);
    } else if ((size_t)snprintf(path, size, "%s", path_in) >= size) {
        fprintf(stderr, "mien %s: gallery path too long\n", cmd);
        return -1;
    }
    mien_gallery_options_default(go);
    go->create = write;
    go->collection = collection;
    if (m) {
        go->model = mien_models_embedder_name(m);
        go->dim = mien_models_embedding_dim(m);
    }
    return 0;
}

/* Open the gallery of --gallery or the default one. write: may create it. model: bind check.
 * search: 0 for commands that never search (no approximate index is built or loaded). */
static mien_gallery *open_gallery(const char *cmd, const gal_opts *o, int write, mien_models *m,
                                  int search) {
    char path[4096];
    mien_gallery_options go;
    if (cli_gallery_options(cmd, o->gallery, o->collection, write, m, path, sizeof path, &go))
        return NULL;
    if (!search) go.ann = 0;
    mien_gallery *g;
    if (mien_gallery_open(path, &go, &g)) {
        fprintf(stderr, "mien %s: %s\n", cmd, mien_gallery_errmsg(g));
        mien_gallery_close(g);
        return NULL;
    }
    return g;
}

static cJSON *box_json(const float *b) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(roundf(b[i] * 100) / 100));
    return a;
}

/* ==== enroll ==== */

static const char enroll_usage[] =
    "usage: mien enroll [--gallery G] NAME IMAGE...\n"
    "       mien enroll [--gallery G] --from-dir DIR\n"
    "\n"
    "Add people to the gallery: the largest face of each photo is embedded and stored under\n"
    "NAME (created if new). With --from-dir, every folder of DIR is a person named after the\n"
    "folder, and its photos are enrolled. A photo already enrolled for that person (same\n"
    "sha256) is skipped. A photo without a face is an error for that photo (the others are\n"
    "still enrolled; exit status 2, or 1 if a photo could not be read).\n"
    "\n"
    GALLERY_OPT_HELP
    "  --min-quality Q   refuse faces whose quality (0..1, mien analyze) is below Q, with\n"
    "                    the reason: the parts that scored lowest (exit status 2, as a photo\n"
    "                    without a face)\n"
    "  --json            one JSON object per person: {\"name\", \"photos\", \"enrolled\",\n"
    "                    \"skipped\", \"errors\": [{\"image\", \"error\"}]}\n"
    "  --threads N       photos in parallel (default: all cores)\n"
    "  (and the model and detection options of mien detect)\n";

/* Enroll the embedded photos [first, first + n) under name; prints the outcome. Returns
 * EXIT_OK, EXIT_USAGE (a photo had no face) or EXIT_FAIL. */
/* Why a face of quality a->quality is refused under min_quality: the score and its weakest
 * parts. */
static void quality_reason(const mien_analysis *a, float min_quality, char *buf, size_t size) {
    const struct { const char *name; float score; } parts[] = {
        {"sharpness", a->sharpness_score}, {"brightness", a->brightness_score},
        {"contrast", a->contrast_score}, {"face size", a->size_score}, {"pose", a->pose_score},
        {"eyes open", a->eyes_open >= 0 ? a->eyes_open : 1.f},
        {"recognizability", a->recognizability >= 0 ? a->recognizability : 1.f},
    };
    int n = snprintf(buf, size, "quality %.2f below --min-quality %.2f (weakest:", a->quality, min_quality);
    int shown = 0;
    for (int pass = 0; pass < 2; pass++) /* the parts under 0.5 first; else the lowest one */
        for (size_t i = 0; i < sizeof parts / sizeof parts[0] && n > 0 && (size_t)n < size; i++) {
            int low = parts[i].score < 0.5f;
            if (pass == 0 ? !low : shown) continue;
            if (pass == 1) { /* none under 0.5: the lowest */
                size_t lo = 0;
                for (size_t k = 1; k < sizeof parts / sizeof parts[0]; k++)
                    if (parts[k].score < parts[lo].score) lo = k;
                i = lo;
            }
            n += snprintf(buf + n, size - (size_t)n, "%s %s %.2f", shown ? "," : "", parts[i].name, parts[i].score);
            shown++;
            if (pass == 1) break;
        }
    if (n > 0 && (size_t)n < size) snprintf(buf + n, size - (size_t)n, ")");
}

static int enroll_person(mien_gallery *g, mien_models *m, const cli_common *c, const char *name,
                         cli_photo *ph, int n, float min_quality) {
    int status = EXIT_OK, ok = 0, added = 0;
    mien_gallery_face *faces = calloc((size_t)(n ? n : 1), sizeof *faces);
    cJSON *errors = cJSON_CreateArray();
    if (!faces) return EXIT_FAIL;
    for (int i = 0; i < n; i++) {
        const char *why = ph[i].failed ? ph[i].err : ph[i].n_faces == 0 ? "no face found" : NULL;
        char qwhy[256];
        if (!why && min_quality > 0 && ph[i].an && ph[i].an[0].quality < min_quality) {
            quality_reason(&ph[i].an[0], min_quality, qwhy, sizeof qwhy);
            why = qwhy;
        }
        if (why) {
            fprintf(stderr, "mien enroll: %s: %s\n", ph[i].path, why);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "image", ph[i].path);
            cJSON_AddStringToObject(e, "error", why);
            cJSON_AddItemToArray(errors, e);
            if (ph[i].failed) status = EXIT_FAIL;
            else if (status == EXIT_OK) status = EXIT_USAGE;
            continue;
        }
        faces[ok].embedding = ph[i].emb;
        memcpy(faces[ok].box, ph[i].faces[0].box, sizeof faces[ok].box);
        faces[ok].image_sha256 = ph[i].sha256;
        ok++;
    }
    const char *err = NULL;
    if (ok > 0 && mien_gallery_enroll(g, name, mien_models_embedder_name(m),
                                      mien_models_embedding_dim(m), faces, ok, &added)) {
        err = mien_gallery_errmsg(g);
        fprintf(stderr, "mien enroll: %s: %s\n", name, err);
        status = EXIT_FAIL;
    }
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddNumberToObject(o, "photos", n);
        cJSON_AddNumberToObject(o, "enrolled", added);
        cJSON_AddNumberToObject(o, "skipped", err ? 0 : ok - added);
        if (err) cJSON_AddStringToObject(o, "error", err);
        cJSON_AddItemToObject(o, "errors", errors);
        cli_print_json(o);
    } else {
        cJSON_Delete(errors);
        if (!err)
            printf("%s: %d face%s enrolled from %d photo%s%s\n", name, added, added == 1 ? "" : "s", n,
                   n == 1 ? "" : "s", ok - added ? " (some already enrolled)" : "");
    }
    free(faces);
    return status;
}

int cmd_enroll(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, enroll_usage)) return EXIT_USAGE;
    if (o.from_dir ? argc != 1 : argc < 3) {
        fputs(enroll_usage, stderr);
        return EXIT_USAGE;
    }
    /* The people and their photos, flattened: person p owns photos [first[p], first[p+1]). */
    cli_person *people = NULL;
    int n_people = 0;
    if (o.from_dir) {
        if (cli_list_people(o.from_dir, &people, &n_people)) return EXIT_FAIL;
        if (n_people == 0) {
            fprintf(stderr, "mien enroll: no folders in %s (one folder per person)\n", o.from_dir);
            cli_people_free(people, n_people);
            return EXIT_USAGE;
        }
    } else {
        mien_err e = {0};
        if (gallery_name_check(argv[1], &e)) {
            fprintf(stderr, "mien enroll: %s\n", e.msg);
            return EXIT_USAGE;
        }
        people = calloc(1, sizeof *people);
        if (!people) return EXIT_FAIL;
        n_people = 1;
        people[0].name = strdup(argv[1]);
        people[0].photos = calloc((size_t)(argc - 2), sizeof(char *));
        if (!people[0].name || !people[0].photos) {
            cli_people_free(people, n_people);
            return EXIT_FAIL;
        }
        for (int i = 2; i < argc; i++) people[0].photos[people[0].n_photos++] = strdup(argv[i]);
    }
    int total = 0;
    for (int p = 0; p < n_people; p++) total += people[p].n_photos;
    int *first = malloc((size_t)(n_people + 1) * sizeof *first);
    cli_photo *ph = calloc((size_t)(total ? total : 1), sizeof *ph);
    int status = EXIT_FAIL;
    mien_models *m = NULL;
    mien_gallery *g = NULL;
    if (!first || !ph) goto done;
    for (int p = 0, k = 0; p < n_people; p++) {
        first[p] = k;
        for (int i = 0; i < people[p].n_photos; i++) ph[k++].path = people[p].photos[i];
    }
    first[n_people] = total;
    c.cfg.threads = 1;
    if (o.min_quality > 0) c.cfg.analyze |= MIEN_ANALYZE_QUALITY;
    if (!(m = cli_open_models(&c))) goto done;
    if (!(g = open_gallery("enroll", &o, 1, m, 1))) goto done;
    if (cli_embed_photos_analyze(m, &c, ph, total, CLI_FACES_LARGEST, "embedding",
                                 o.min_quality > 0 ? MIEN_ANALYZE_QUALITY : 0))
        goto done;
    status = EXIT_OK;
    for (int p = 0; p < n_people; p++) {
        mien_err e = {0};
        int rc;
        if (people[p].n_photos == 0) {
            fprintf(stderr, "mien enroll: %s: no photos\n", people[p].name);
            rc = EXIT_USAGE;
        } else if (gallery_name_check(people[p].name, &e)) {
            fprintf(stderr, "mien enroll: folder '%s': %s\n", people[p].name, e.msg);
            rc = EXIT_FAIL;
        } else {
            rc = enroll_person(g, m, &c, people[p].name, ph + first[p], first[p + 1] - first[p],
                               o.min_quality);
        }
        if (rc == EXIT_FAIL || (rc == EXIT_USAGE && status == EXIT_OK)) status = rc;
    }
    if (!c.json) {
        int ns, nf;
        mien_gallery_count(g, &ns, &nf);
        printf("gallery: %d subject%s, %d face%s\n", ns, ns == 1 ? "" : "s", nf, nf == 1 ? "" : "s");
    }
done:
    mien_gallery_close(g);
    mien_models_close(m);
    cli_photos_free(ph, total);
    free(first);
    cli_people_free(people, n_people);
    return status;
}

/* ==== identify ==== */

static const char identify_usage[] =
    "usage: mien identify [--gallery G] IMAGE... [--json] [--draw OUT.png|DIR] [--threshold T]\n"
    "\n"
    "Who is this? Every face of each photo, from left to right, with the best matching person\n"
    "of the gallery and the cosine similarity, or 'unknown' when the best is below the\n"
    "threshold (default: the embedder's, set on LFW at a false accept rate of 1e-3). A\n"
    "person's score is the best similarity over their enrolled faces.\n"
    "\n"
    GALLERY_OPT_HELP
    "  --json            one JSON object per image: {\"image\", \"width\", \"height\", \"faces\":\n"
    "                    [{\"box\", \"score\", \"name\", \"known\", \"similarity\", \"nearest\"}]}\n"
    "                    (name is \"unknown\" below the threshold; nearest is the best match)\n"
    "  --draw OUT        write the photo with boxes and names (a PNG file for one image, a\n"
    "                    folder for several)\n"
    "  --threshold T     decide with this cosine threshold\n"
    "  --liveness        check that each face is live (not a printed photo or a screen):\n"
    "                    a spoof is never named; JSON adds \"liveness\": {\"score\", \"real\",\n"
    "                    \"threshold\"} and \"spoof\": true\n"
    "  --liveness-threshold T  a face is live at a liveness score >= T (implies --liveness)\n"
    "  --threads N       photos in parallel (default: all cores)\n"
    "  (and the model and detection options of mien detect)\n";

static int cmp_face_x(const void *a, const void *b) {
    float xa = ((const mien_face *)a)->box[0], xb = ((const mien_face *)b)->box[0];
    return (xa > xb) - (xa < xb);
}

/* Sort a photo's faces (and their embeddings) from left to right. */
static void sort_left_to_right(cli_photo *p, int dim) {
    if (p->n_faces < 2) return;
    typedef struct { mien_face f; int k; } fk;
    fk *v = malloc((size_t)p->n_faces * sizeof *v);
    float *e = malloc((size_t)p->n_faces * dim * sizeof *e);
    if (!v || !e) {
        free(v);
        free(e);
        return;
    }
    mien_analysis *an = p->an ? malloc((size_t)p->n_faces * sizeof *an) : NULL;
    if (p->an && !an) {
        free(v);
        free(e);
        return;
    }
    for (int k = 0; k < p->n_faces; k++) v[k] = (fk){p->faces[k], k};
    qsort(v, (size_t)p->n_faces, sizeof *v, cmp_face_x); /* f is the first member */
    for (int k = 0; k < p->n_faces; k++) {
        p->faces[k] = v[k].f;
        memcpy(e + (size_t)k * dim, p->emb + (size_t)v[k].k * dim, (size_t)dim * sizeof *e);
        if (an) an[k] = p->an[v[k].k];
    }
    memcpy(p->emb, e, (size_t)p->n_faces * dim * sizeof *e);
    if (an) memcpy(p->an, an, (size_t)p->n_faces * sizeof *an);
    free(an);
    free(v);
    free(e);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int draw_named(const char *draw, int dir, const cli_photo *p, const char *const *labels,
                      mien_session *s) {
    char path[4096];
    if (dir) {
        const char *b = base_name(p->path), *dot = strrchr(b, '.');
        snprintf(path, sizeof path, "%s/%.*s.png", draw, dot ? (int)(dot - b) : (int)strlen(b), b);
    } else {
        snprintf(path, sizeof path, "%s", draw);
    }
    mien_image img = {0};
    if (mien_image_load(s, p->path, &img)) {
        fprintf(stderr, "mien identify: %s\n", mien_errmsg(s));
        return EXIT_FAIL;
    }
    int rc = cli_draw_faces(path, &img, p->faces, p->n_faces, labels);
    mien_image_free(&img);
    return rc;
}

int cmd_identify(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, identify_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(identify_usage, stderr);
        return EXIT_USAGE;
    }
    int draw_dir = o.draw && argc > 2;
    if (draw_dir && mkdir(o.draw, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mien identify: cannot create folder %s: %s\n", o.draw, strerror(errno));
        return EXIT_FAIL;
    }
    c.cfg.threads = 1;
    if (o.liveness) {
        c.cfg.analyze |= MIEN_ANALYZE_LIVENESS;
        c.cfg.liveness_threshold = o.liveness_threshold;
    }
    int n = argc - 1, status = EXIT_FAIL;
    cli_photo *ph = calloc((size_t)n, sizeof *ph);
    mien_models *m = NULL;
    mien_gallery *g = NULL;
    mien_session *s = NULL;
    mien_match *best = NULL;
    int *got = NULL;
    if (!ph) return EXIT_FAIL;
    for (int i = 0; i < n; i++) ph[i].path = argv[1 + i];
    if (!(m = cli_open_models(&c))) goto done;
    if (!(g = open_gallery("identify", &o, 0, m, 1))) goto done;
    if (!(s = cli_open_session(m))) goto done;
    const int dim = mien_models_embedding_dim(m);
    const float thr = o.has_threshold ? o.threshold : mien_models_threshold(m);
    int ns;
    mien_gallery_count(g, &ns, NULL);
    if (ns == 0) fprintf(stderr, "mien identify: the gallery is empty: every face is unknown\n");
    if (cli_embed_photos_analyze(m, &c, ph, n, CLI_FACES_ALL, "identifying",
                                 o.liveness ? MIEN_ANALYZE_LIVENESS : 0))
        goto done;
    status = EXIT_OK;
    for (int i = 0; i < n; i++) {
        cli_photo *p = &ph[i];
        if (p->failed) {
            fprintf(stderr, "mien identify: %s\n", p->err);
            if (c.json) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "image", p->path);
                cJSON_AddStringToObject(e, "error", p->err);
                cli_print_json(e);
            }
            status = EXIT_FAIL;
            continue;
        }
        sort_left_to_right(p, dim);
        free(best);
        free(got);
        best = calloc((size_t)(p->n_faces ? p->n_faces : 1), sizeof *best);
        got = calloc((size_t)(p->n_faces ? p->n_faces : 1), sizeof *got);
        if (!best || !got ||
            mien_gallery_search_batch(g, p->emb, p->n_faces, dim, 1, best, got)) {
            fprintf(stderr, "mien identify: %s\n", best && got ? mien_gallery_errmsg(g) : "out of memory");
            status = EXIT_FAIL;
            break;
        }
        const char **labels = calloc((size_t)(p->n_faces ? p->n_faces : 1), sizeof *labels);
        char (*text)[MIEN_GALLERY_NAME_MAX + 16] = calloc((size_t)(p->n_faces ? p->n_faces : 1), sizeof *text);
        cJSON *jo = NULL, *fa = NULL;
        if (c.json) {
            jo = cJSON_CreateObject();
            cJSON_AddStringToObject(jo, "image", p->path);
            cJSON_AddNumberToObject(jo, "width", p->width);
            cJSON_AddNumberToObject(jo, "height", p->height);
            cJSON_AddNumberToObject(jo, "threshold", roundf(thr * 1e6f) / 1e6f);
            fa = cJSON_AddArrayToObject(jo, "faces");
        } else {
            printf("%s: %d face%s\n", p->path, p->n_faces, p->n_faces == 1 ? "" : "s");
        }
        for (int k = 0; k < p->n_faces; k++) {
            const mien_face *f = &p->faces[k];
            /* --liveness: a spoof (printed photo, screen) is never named. */
            const mien_analysis *live = o.liveness && p->an ? &p->an[k] : NULL;
            int spoof = live && !live->real;
            int known = !spoof && got[k] > 0 && best[k].similarity >= thr;
            const char *name = known ? best[k].name : "unknown";
            if (text) {
                if (spoof) snprintf(text[k], sizeof text[k], "SPOOF %.2f", live->liveness);
                else if (known) snprintf(text[k], sizeof text[k], "%s %.2f", name, best[k].similarity);
                else snprintf(text[k], sizeof text[k], "unknown");
                if (labels) labels[k] = text[k];
            }
            if (c.json) {
                cJSON *fo = cJSON_CreateObject();
                cJSON_AddItemToObject(fo, "box", box_json(f->box));
                cJSON_AddNumberToObject(fo, "score", roundf(f->score * 10000) / 10000);
                cJSON_AddStringToObject(fo, "name", name);
                cJSON_AddBoolToObject(fo, "known", known);
                if (got[k] > 0) {
                    cJSON_AddNumberToObject(fo, "similarity", roundf(best[k].similarity * 1e6f) / 1e6f);
                    cJSON_AddStringToObject(fo, "nearest", best[k].name);
                } else {
                    cJSON_AddNullToObject(fo, "similarity");
                    cJSON_AddNullToObject(fo, "nearest");
                }
                if (live) {
                    srv_add_analysis_json(fo, live);
                    cJSON_AddBoolToObject(fo, "spoof", spoof);
                }
                cJSON_AddItemToArray(fa, fo);
            } else if (spoof) {
                printf("  face %d at %.0f,%.0f %.0fx%.0f: SPOOF, not identified (liveness %.3f < "
                       "%.3f%s%s)\n", k + 1, f->box[0], f->box[1], f->box[2], f->box[3],
                       live->liveness, live->liveness_threshold, got[k] > 0 ? "; nearest " : "",
                       got[k] > 0 ? best[k].name : "");
            } else if (known) {
                printf("  face %d at %.0f,%.0f %.0fx%.0f: %s  %.4f\n", k + 1, f->box[0], f->box[1],
                       f->box[2], f->box[3], name, best[k].similarity);
            } else if (got[k] > 0) {
                printf("  face %d at %.0f,%.0f %.0fx%.0f: unknown  (nearest %s %.4f)\n", k + 1,
                       f->box[0], f->box[1], f->box[2], f->box[3], best[k].name, best[k].similarity);
            } else {
                printf("  face %d at %.0f,%.0f %.0fx%.0f: unknown\n", k + 1, f->box[0], f->box[1],
                       f->box[2], f->box[3]);
            }
        }
        if (c.json) cli_print_json(jo);
        if (o.draw && draw_named(o.draw, draw_dir, p, labels, s)) status = EXIT_FAIL;
        free(labels);
        free(text);
    }
done:
    free(best);
    free(got);
    mien_session_close(s);
    mien_gallery_close(g);
    mien_models_close(m);
    cli_photos_free(ph, n);
    return status;
}

/* ==== subjects, forget, rename, export, import ==== */

static const char subjects_usage[] =
    "usage: mien subjects [--gallery G] [--json]\n"
    "\n"
    "The people in the gallery, with their number of enrolled faces.\n"
    "\n"
    GALLERY_OPT_HELP
    "  --json            {\"gallery\", \"model\", \"dim\", \"faces\", \"subjects\": [{\"name\",\n"
    "                    \"faces\", \"created\"}]}\n";

int cmd_subjects(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, subjects_usage)) return EXIT_USAGE;
    if (argc != 1) {
        fputs(subjects_usage, stderr);
        return EXIT_USAGE;
    }
    mien_gallery *g = open_gallery("subjects", &o, 0, NULL, 0);
    if (!g) return EXIT_FAIL;
    mien_subject *v;
    int n, nf, dim;
    char model[64];
    if (mien_gallery_subjects(g, &v, &n)) {
        fprintf(stderr, "mien subjects: %s\n", mien_gallery_errmsg(g));
        mien_gallery_close(g);
        return EXIT_FAIL;
    }
    mien_gallery_count(g, NULL, &nf);
    mien_gallery_model(g, model, sizeof model, &dim);
    if (c.json) {
        cJSON *o2 = cJSON_CreateObject();
        cJSON_AddStringToObject(o2, "model", model);
        cJSON_AddNumberToObject(o2, "dim", dim);
        cJSON_AddNumberToObject(o2, "faces", nf);
        cJSON *a = cJSON_AddArrayToObject(o2, "subjects");
        for (int i = 0; i < n; i++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "name", v[i].name);
            cJSON_AddNumberToObject(s, "faces", v[i].n_faces);
            cJSON_AddNumberToObject(s, "created", (double)v[i].created);
            cJSON_AddItemToArray(a, s);
        }
        cli_print_json(o2);
    } else {
        for (int i = 0; i < n; i++)
            printf("%-40s %d face%s\n", v[i].name, v[i].n_faces, v[i].n_faces == 1 ? "" : "s");
        printf("%d subject%s, %d face%s%s%s%s\n", n, n == 1 ? "" : "s", nf, nf == 1 ? "" : "s",
               model[0] ? " (" : "", model, model[0] ? ")" : "");
    }
    free(v);
    mien_gallery_close(g);
    return EXIT_OK;
}

static const char forget_usage[] =
    "usage: mien forget [--gallery G] NAME...\n"
    "\n"
    "Delete people and every face enrolled for them, from the gallery file itself (the freed\n"
    "space is overwritten and the write-ahead log truncated).\n"
    "\n"
    GALLERY_OPT_HELP;

int cmd_forget(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, forget_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(forget_usage, stderr);
        return EXIT_USAGE;
    }
    mien_gallery *g = open_gallery("forget", &o, 0, NULL, 1);
    if (!g) return EXIT_FAIL;
    int status = EXIT_OK;
    for (int i = 1; i < argc; i++) {
        int rc = mien_gallery_forget(g, argv[i]);
        if (rc) {
            fprintf(stderr, "mien forget: %s\n", mien_gallery_errmsg(g));
            status = EXIT_FAIL;
        } else {
            printf("forgot %s\n", argv[i]);
        }
    }
    mien_gallery_close(g);
    return status;
}

static const char rename_usage[] =
    "usage: mien rename [--gallery G] OLD NEW\n"
    "\n"
    "Rename a person of the gallery.\n"
    "\n"
    GALLERY_OPT_HELP;

int cmd_rename(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, rename_usage)) return EXIT_USAGE;
    if (argc != 3) {
        fputs(rename_usage, stderr);
        return EXIT_USAGE;
    }
    mien_gallery *g = open_gallery("rename", &o, 0, NULL, 0);
    if (!g) return EXIT_FAIL;
    int rc = mien_gallery_rename(g, argv[1], argv[2]);
    if (rc) fprintf(stderr, "mien rename: %s\n", mien_gallery_errmsg(g));
    else printf("renamed %s to %s\n", argv[1], argv[2]);
    mien_gallery_close(g);
    return rc ? EXIT_FAIL : EXIT_OK;
}

static const char export_usage[] =
    "usage: mien export [--gallery G] FILE\n"
    "\n"
    "Write the whole gallery to FILE as JSON Lines: a header\n"
    "{\"format\":\"mien-gallery\",\"version\":1,\"model\",\"dim\"}, then one line per person\n"
    "{\"name\",\"created\",\"faces\":[{\"embedding\",\"box\",\"image_sha256\",\"created\"}]}.\n"
    "Embeddings keep every bit; 'mien import' reads the file back.\n"
    "\n"
    GALLERY_OPT_HELP;

static const char import_usage[] =
    "usage: mien import [--gallery G] FILE\n"
    "\n"
    "Merge a file written by 'mien export' into the gallery (created if needed), in one\n"
    "transaction: existing people get the new faces, faces of photos they already have are\n"
    "skipped. A file of another embedder is refused.\n"
    "\n"
    GALLERY_OPT_HELP;

static int export_import(int argc, char **argv, int import) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    const char *usage = import ? import_usage : export_usage;
    if (cli_parse(&c, &argc, argv, gal_extra, &o, usage)) return EXIT_USAGE;
    if (argc != 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    mien_gallery *g = open_gallery(argv[0], &o, import, NULL, import);
    if (!g) return EXIT_FAIL;
    int ns = 0, nf = 0;
    int rc = import ? mien_gallery_import(g, argv[1], &ns, &nf) : mien_gallery_export(g, argv[1]);
    if (rc) {
        fprintf(stderr, "mien %s: %s\n", argv[0], mien_gallery_errmsg(g));
    } else if (import) {
        printf("imported %d face%s (%d new subject%s) from %s\n", nf, nf == 1 ? "" : "s", ns,
               ns == 1 ? "" : "s", argv[1]);
    } else {
        mien_gallery_count(g, &ns, &nf);
        printf("exported %d subject%s, %d face%s to %s\n", ns, ns == 1 ? "" : "s", nf,
               nf == 1 ? "" : "s", argv[1]);
    }
    mien_gallery_close(g);
    return rc ? EXIT_FAIL : EXIT_OK;
}

int cmd_export(int argc, char **argv) { return export_import(argc, argv, 0); }
int cmd_import(int argc, char **argv) { return export_import(argc, argv, 1); }

/* ==== cluster ==== */

static const char cluster_usage[] =
    "usage: mien cluster IMAGE_OR_DIR... [--json] [--out DIR] [--threshold T]\n"
    "\n"
    "Group the faces of unlabelled photos by person: every face of every photo (folders are\n"
    "searched recursively) is embedded, faces with cosine similarity >= the threshold\n"
    "(default: the embedder's clustering threshold, stricter than its 1:1 one where measured:\n"
    "0.66 for the default embedder) are joined, and Chinese whispers (as dlib's) splits the\n"
    "graph into clusters, largest first.\n"
    "\n"
    "  --json            {\"faces\", \"photos\", \"clusters\": [{\"cluster\", \"size\", \"faces\":\n"
    "                    [{\"image\", \"box\"}]}]}\n"
    "  --out DIR         write a folder per cluster (cluster_001, ...) with a crop of each face\n"
    "  --threshold T     join faces at this cosine similarity\n"
    "  --threads N       photos in parallel (default: all cores)\n"
    "  (and the model and detection options of mien detect)\n";

typedef struct face_ref {
    int photo, face;
} face_ref;

/* Crop of a face with a margin of a quarter of its size, written as PNG. */
static int write_crop(const char *path, const mien_image *img, const mien_face *f) {
    mien_err e = {0};
    mien_image crop = {0};
    float mx = f->box[2] * 0.25f, my = f->box[3] * 0.25f;
    int rc = img_crop(img, (int)floorf(f->box[0] - mx), (int)floorf(f->box[1] - my),
                      (int)ceilf(f->box[2] + 2 * mx), (int)ceilf(f->box[3] + 2 * my), &crop, &e);
    if (!rc) rc = img_write_png(path, &crop, &e);
    mien_image_free(&crop);
    if (rc) fprintf(stderr, "mien cluster: %s\n", e.msg);
    return rc;
}

static int cluster_write_out(const char *out, const cli_photo *ph, int n_photos,
                             const face_ref *refs, const int *labels, int n_faces, int n_clusters,
                             mien_session *s) {
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "mien cluster: cannot create folder %s: %s\n", out, strerror(errno));
        return EXIT_FAIL;
    }
    char dir[4096], path[4400];
    for (int k = 0; k < n_clusters; k++) {
        snprintf(dir, sizeof dir, "%s/cluster_%03d", out, k + 1);
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "mien cluster: cannot create folder %s: %s\n", dir, strerror(errno));
            return EXIT_FAIL;
        }
    }
    /* One decode per photo: its faces go to their clusters' folders. */
    int i = 0;
    for (int p = 0; p < n_photos; p++) {
        if (ph[p].n_faces == 0) continue;
        mien_image img = {0};
        if (mien_image_load(s, ph[p].path, &img)) {
            fprintf(stderr, "mien cluster: %s\n", mien_errmsg(s));
            return EXIT_FAIL;
        }
        for (; i < n_faces && refs[i].photo == p; i++) {
            const char *b = base_name(ph[p].path), *dot = strrchr(b, '.');
            snprintf(path, sizeof path, "%s/cluster_%03d/%04d_%.*s_%d.png", out, labels[i] + 1, p,
                     dot ? (int)(dot - b) : (int)strlen(b), b, refs[i].face + 1);
            if (write_crop(path, &img, &ph[p].faces[refs[i].face])) {
                mien_image_free(&img);
                return EXIT_FAIL;
            }
        }
        mien_image_free(&img);
    }
    return EXIT_OK;
}

int cmd_cluster(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, cluster_usage)) return EXIT_USAGE;
    if (argc < 2) {
        fputs(cluster_usage, stderr);
        return EXIT_USAGE;
    }
    char **paths = NULL;
    int n = 0;
    if (cli_list_images(argv + 1, argc - 1, &paths, &n)) return EXIT_FAIL;
    if (n == 0) {
        fprintf(stderr, "mien cluster: no photos\n");
        cli_free_strings(paths, n);
        return EXIT_USAGE;
    }
    c.cfg.threads = 1;
    int status = EXIT_FAIL, n_faces = 0, n_clusters = 0;
    cli_photo *ph = calloc((size_t)n, sizeof *ph);
    mien_models *m = NULL;
    mien_session *s = NULL;
    float *emb = NULL;
    face_ref *refs = NULL;
    int *labels = NULL;
    if (!ph) goto done;
    for (int i = 0; i < n; i++) ph[i].path = paths[i];
    if (!(m = cli_open_models(&c)) || !(s = cli_open_session(m))) goto done;
    const int dim = mien_models_embedding_dim(m);
    const float thr = o.has_threshold ? o.threshold : mien_models_cluster_threshold(m);
    if (cli_embed_photos(m, &c, ph, n, CLI_FACES_ALL, "embedding")) goto done;
    status = EXIT_OK;
    for (int i = 0; i < n; i++) {
        if (ph[i].failed) {
            fprintf(stderr, "mien cluster: %s\n", ph[i].err);
            status = EXIT_FAIL;
        }
        sort_left_to_right(&ph[i], dim);
        n_faces += ph[i].n_faces;
    }
    emb = malloc((size_t)(n_faces ? n_faces : 1) * dim * sizeof *emb);
    refs = malloc((size_t)(n_faces ? n_faces : 1) * sizeof *refs);
    labels = malloc((size_t)(n_faces ? n_faces : 1) * sizeof *labels);
    if (!emb || !refs || !labels) {
        status = EXIT_FAIL;
        goto done;
    }
    for (int i = 0, k = 0; i < n; i++)
        for (int f = 0; f < ph[i].n_faces; f++, k++) {
            memcpy(emb + (size_t)k * dim, ph[i].emb + (size_t)f * dim, (size_t)dim * sizeof *emb);
            refs[k] = (face_ref){i, f};
        }
    if (mien_cluster(emb, n_faces, dim, thr, 0, 0, labels, &n_clusters)) {
        fprintf(stderr, "mien cluster: clustering failed (out of memory)\n");
        status = EXIT_FAIL;
        goto done;
    }
    if (c.json) {
        cJSON *jo = cJSON_CreateObject();
        cJSON_AddNumberToObject(jo, "photos", n);
        cJSON_AddNumberToObject(jo, "faces", n_faces);
        cJSON_AddNumberToObject(jo, "threshold", roundf(thr * 1e6f) / 1e6f);
        cJSON *ca = cJSON_AddArrayToObject(jo, "clusters");
        for (int k = 0; k < n_clusters; k++) {
            cJSON *co = cJSON_CreateObject(), *fa;
            cJSON_AddNumberToObject(co, "cluster", k + 1);
            int size = 0;
            for (int i = 0; i < n_faces; i++) size += labels[i] == k;
            cJSON_AddNumberToObject(co, "size", size);
            fa = cJSON_AddArrayToObject(co, "faces");
            for (int i = 0; i < n_faces; i++) {
                if (labels[i] != k) continue;
                cJSON *fo = cJSON_CreateObject();
                cJSON_AddStringToObject(fo, "image", ph[refs[i].photo].path);
                cJSON_AddItemToObject(fo, "box", box_json(ph[refs[i].photo].faces[refs[i].face].box));
                cJSON_AddItemToArray(fa, fo);
            }
            cJSON_AddItemToArray(ca, co);
        }
        cli_print_json(jo);
    } else {
        printf("%d cluster%s of %d face%s in %d photo%s (threshold %.4f)\n", n_clusters,
               n_clusters == 1 ? "" : "s", n_faces, n_faces == 1 ? "" : "s", n, n == 1 ? "" : "s", thr);
        for (int k = 0; k < n_clusters; k++) {
            int size = 0;
            for (int i = 0; i < n_faces; i++) size += labels[i] == k;
            printf("cluster %d: %d face%s\n", k + 1, size, size == 1 ? "" : "s");
            for (int i = 0; i < n_faces; i++) {
                if (labels[i] != k) continue;
                const float *b = ph[refs[i].photo].faces[refs[i].face].box;
                printf("  %s  face at %.0f,%.0f %.0fx%.0f\n", ph[refs[i].photo].path, b[0], b[1], b[2], b[3]);
            }
        }
    }
    if (o.out && cluster_write_out(o.out, ph, n, refs, labels, n_faces, n_clusters, s))
        status = EXIT_FAIL;
done:
    free(emb);
    free(refs);
    free(labels);
    mien_session_close(s);
    mien_models_close(m);
    cli_photos_free(ph, n);
    cli_free_strings(paths, n);
    return status;
}

/* ==== For other commands (mien serve) ==== */

mien_gallery *cli_open_gallery(const char *cmd, const char *path, int write, mien_models *m) {
    gal_opts o = {.gallery = path};
    return open_gallery(cmd, &o, write, m, 1);
}

/* ==== collections ==== */

static const char collections_usage[] =
    "usage: mien collections [--gallery G] [--json]\n"
    "       mien collections delete NAME [--gallery G]\n"
    "\n"
    "The face collections of the gallery: each is its own set of people (a CompreFace\n"
    "recognition service's face collection; 'mien keys add --service recognition' makes a key\n"
    "for one). The gallery commands work on one with --collection NAME, 'default' without.\n"
    "'delete' removes a collection with every person and face in it (not 'default').\n"
    "\n"
    GALLERY_OPT_HELP
    "  --json            {\"collections\": [{\"name\", \"subjects\", \"faces\", \"model\",\n"
    "                    \"dim\", \"created\"}]}\n";

int cmd_collections(int argc, char **argv) {
    cli_common c;
    cli_common_init(&c);
    gal_opts o = {0};
    if (cli_parse(&c, &argc, argv, gal_extra, &o, collections_usage)) return EXIT_USAGE;
    int del = argc == 3 && !strcmp(argv[1], "delete");
    if (argc != 1 && !del) {
        fputs(collections_usage, stderr);
        return EXIT_USAGE;
    }
    if (del) {
        if (!strcmp(argv[2], MIEN_GALLERY_DEFAULT_COLLECTION)) {
            fprintf(stderr, "mien collections: the default collection cannot be deleted (forget "
                            "its people instead)\n");
            return EXIT_USAGE;
        }
        o.collection = argv[2];
    }
    mien_gallery *g = open_gallery("collections", &o, 0, NULL, 0);
    if (!g) return EXIT_FAIL;
    int status = EXIT_OK;
    if (del) {
        if (mien_gallery_drop(g)) {
            fprintf(stderr, "mien collections: %s\n", mien_gallery_errmsg(g));
            status = EXIT_FAIL;
        } else {
            fprintf(stderr, "mien collections: '%s' deleted\n", argv[2]);
        }
        mien_gallery_close(g);
        return status;
    }
    mien_collection *v = NULL;
    int n = 0;
    if (mien_gallery_collections(g, &v, &n)) {
        fprintf(stderr, "mien collections: %s\n", mien_gallery_errmsg(g));
        mien_gallery_close(g);
        return EXIT_FAIL;
    }
    if (c.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(j, "collections");
        for (int i = 0; i < n; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", v[i].name);
            cJSON_AddNumberToObject(x, "subjects", (double)v[i].n_subjects);
            cJSON_AddNumberToObject(x, "faces", (double)v[i].n_faces);
            cJSON_AddStringToObject(x, "model", v[i].model);
            cJSON_AddNumberToObject(x, "dim", v[i].dim);
            cJSON_AddNumberToObject(x, "created", (double)v[i].created);
            cJSON_AddItemToArray(a, x);
        }
        cli_print_json(j);
    } else {
        for (int i = 0; i < n; i++)
            printf("%-24s %6lld subject%s %7lld face%s%s%s%s\n", v[i].name,
                   (long long)v[i].n_subjects, v[i].n_subjects == 1 ? " " : "s",
                   (long long)v[i].n_faces, v[i].n_faces == 1 ? " " : "s",
                   v[i].model[0] ? "  (" : "", v[i].model, v[i].model[0] ? ")" : "");
    }
    free(v);
    mien_gallery_close(g);
    return status;
}

void cli_make_parent_dirs(const char *path) { make_parent_dirs(path); }
