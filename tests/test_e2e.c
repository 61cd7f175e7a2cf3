/* End to end through the CLI: real photos of known people (../shared/data/people), dlib's
 * detection photos, and hostile inputs. The fast release binary runs the accuracy checks; the
 * sanitizer build runs the bad inputs, so a crash or a sanitizer report fails the test. */
#include "testutil.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ==== Helpers ==== */



/* Exit statuses of a run that the sanitizers stopped (Makefile: exitcode=86). */
static void assert_clean_failure(int rc, const char *err, const char *what) {
    ck_assert_msg(rc != 0, "%s: expected a failure, got exit 0", what);
    ck_assert_msg(rc == 1 || rc == 2, "%s: exit status %d (crash or sanitizer?)\n%s", what, rc, err);
    ck_assert_msg(!strstr(err, "Sanitizer") && !strstr(err, "runtime error"), "%s: %s", what, err);
    ck_assert_msg(strlen(err) > 10, "%s: no error message", what);
}

/* ==== Known people: verification ==== */

typedef struct photo { const char *path, *who; } photo;

/* Photos that show one person (the gallery and the single-person probes of labels.tsv). */
static const photo people[] = {
    {"people/examples/knn_examples/train/alex_lacamoire/img1.jpg", "alex_lacamoire"},
    {"people/examples/knn_examples/train/biden/biden.jpg", "biden"},
    {"people/examples/knn_examples/train/biden/biden2.jpg", "biden"},
    {"people/examples/knn_examples/train/kit_harington/john1.jpeg", "kit_harington"},
    {"people/examples/knn_examples/train/kit_harington/john2.jpeg", "kit_harington"},
    {"people/examples/knn_examples/train/obama/obama.jpg", "obama"},
    {"people/examples/knn_examples/train/obama/obama2.jpg", "obama"},
    {"people/examples/knn_examples/train/rose_leslie/img1.jpg", "rose_leslie"},
    {"people/examples/knn_examples/train/rose_leslie/img2.jpg", "rose_leslie"},
    {"people/examples/knn_examples/test/alex_lacamoire1.jpg", "alex_lacamoire"},
    {"people/examples/knn_examples/test/johnsnow_test1.jpg", "kit_harington"},
    {"people/examples/knn_examples/test/obama1.jpg", "obama"},
    {"people/examples/obama.jpg", "obama"},
    {"people/examples/obama2.jpg", "obama"},
    {"people/examples/obama-240p.jpg", "obama"},
    {"people/examples/obama-480p.jpg", "obama"},
    {"people/examples/obama-720p.jpg", "obama"},
    {"people/examples/obama-1080p.jpg", "obama"},
    {"people/examples/obama_small.jpg", "obama"},
    {"people/examples/biden.jpg", "biden"},
    {"people/examples/alex-lacamoire.png", "alex_lacamoire"},
    {"people/examples/lin-manuel-miranda.png", "lin_manuel_miranda"},
    {"people/tests/test_images/obama.jpg", "obama"},
    {"people/tests/test_images/obama2.jpg", "obama"},
    {"people/tests/test_images/obama3.jpg", "obama"},
    {"people/tests/test_images/biden.jpg", "biden"},
    {"people/tests/test_images/32bit.png", "obama"},
    {"people/tests/test_images/obama_partial_face2.jpg", "obama"},
};
#define N_PEOPLE ((int)(sizeof people / sizeof people[0]))

/* The embedders every known-people pair is checked with: the default (MobileFaceNet.tflite),
 * and the others whose thresholds were set on LFW (each at its own threshold). */
static const char *const pair_embedders[] = {"", "--embedder dlib", "--embedder frfeature",
                                             "--embedder frfeature+mobilefacenet-tflite"};

/* Embedding of the largest face of each photo, from one `mien embed --json` run (opt: more
 * options, such as --embedder). */
static float *embed_people(int *dim, const char *opt) {
    char args[16384];
    int n = snprintf(args, sizeof args, "embed --json %s", opt);
    for (int i = 0; i < N_PEOPLE; i++)
        n += snprintf(args + n, sizeof args - (size_t)n, " %s/%s", tu_data_dir(), people[i].path);
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(), args, &out, &err);
    ck_assert_msg(rc == 0, "mien embed failed (%d): %s", rc, err);
    float *emb = NULL;
    int line = 0;
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save), line++) {
        cJSON *o = cJSON_Parse(l);
        ck_assert_msg(o != NULL, "embed output is not JSON: %s", l);
        cJSON *faces = cJSON_GetObjectItem(o, "faces");
        ck_assert_msg(cJSON_GetArraySize(faces) >= 1, "no face in %s", people[line].path);
        cJSON *best = NULL, *f;
        double area = -1;
        cJSON_ArrayForEach(f, faces) {
            cJSON *box = cJSON_GetObjectItem(f, "box");
            double a = cJSON_GetArrayItem(box, 2)->valuedouble * cJSON_GetArrayItem(box, 3)->valuedouble;
            if (a > area) area = a, best = f;
        }
        cJSON *e = cJSON_GetObjectItem(best, "embedding");
        if (!emb) {
            *dim = cJSON_GetArraySize(e);
            emb = calloc((size_t)N_PEOPLE * *dim, sizeof *emb);
        }
        ck_assert_int_eq(cJSON_GetArraySize(e), *dim);
        for (int k = 0; k < *dim; k++) emb[line * *dim + k] = (float)cJSON_GetArrayItem(e, k)->valuedouble;
        cJSON_Delete(o);
    }
    ck_assert_int_eq(line, N_PEOPLE);
    free(out);
    free(err);
    return emb;
}

static float default_threshold(const char *opt) {
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(),
                      tu_path("verify --json %s %s/%s %s/%s", opt, tu_data_dir(), people[1].path,
                              tu_data_dir(), people[2].path),
                      &out, &err);
    ck_assert_msg(rc == 0, "mien verify failed: %s", err);
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o && cJSON_IsNumber(cJSON_GetObjectItem(o, "threshold")), "bad JSON: %s", out);
    ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(o, "same")), "biden vs biden said different: %s", out);
    float thr = (float)cJSON_GetObjectItem(o, "threshold")->valuedouble;
    cJSON_Delete(o);
    free(out);
    free(err);
    return thr;
}

START_TEST(known_people_pairs) {
    int dim = 0;
    const char *opt = pair_embedders[_i];
    float *emb = embed_people(&dim, opt);
    float thr = default_threshold(opt);
    int wrong = 0, pairs = 0;
    char report[3000] = "";
    size_t rl = 0;
    for (int i = 0; i < N_PEOPLE; i++)
        for (int j = i + 1; j < N_PEOPLE; j++) {
            double sim = 0;
            for (int k = 0; k < dim; k++) sim += (double)emb[i * dim + k] * emb[j * dim + k];
            int same = !strcmp(people[i].who, people[j].who);
            pairs++;
            if ((sim >= thr) != same) {
                wrong++;
                if (rl < sizeof report - 400)
                    rl += (size_t)snprintf(report + rl, sizeof report - rl, "\n  %s vs %s: %.3f (%s)",
                                           people[i].path, people[j].path, sim, same ? "same" : "different");
            }
        }
    free(emb);
    ck_assert_msg(wrong == 0, "%s: %d of %d known-people pairs wrong at threshold %.3f:%s",
                  *opt ? opt : "default", wrong, pairs, thr, report);
}
END_TEST

START_TEST(verify_command) {
    char *out, *err;
    /* Same person across resolutions; different people. */
    int rc = tu_run_mien(tu_mien_bin_fast(),
                      tu_path("verify --json %s/people/examples/obama-240p.jpg %s/people/examples/obama-1080p.jpg",
                              tu_data_dir(), tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 0, "%s", err);
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o && cJSON_IsTrue(cJSON_GetObjectItem(o, "same")), "%s", out);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "similarity")));
    cJSON_Delete(o);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin_fast(),
                  tu_path("verify --json %s/people/examples/biden.jpg %s/people/examples/obama.jpg",
                          tu_data_dir(), tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 0, "%s", err);
    o = cJSON_Parse(out);
    ck_assert_msg(o && cJSON_IsFalse(cJSON_GetObjectItem(o, "same")), "%s", out);
    cJSON_Delete(o);
    free(out), free(err);
    /* Plain text names the decision and the threshold. */
    rc = tu_run_mien(tu_mien_bin_fast(),
                  tu_path("verify %s/people/examples/biden.jpg %s/people/examples/obama.jpg",
                          tu_data_dir(), tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "different people") && strstr(out, "threshold"), "%s", out);
    free(out), free(err);
}
END_TEST

/* ==== Detection: labelled group photos, and a photo without people ==== */

START_TEST(labelled_faces_found) {
    char *labels = tu_read_file(tu_path("%s/people/labels.tsv", tu_data_dir()), NULL);
    ck_assert_msg(labels != NULL, "no labels.tsv under %s/people", tu_data_dir());
    char *save = NULL;
    int photos = 0;
    for (char *l = strtok_r(labels, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (*l == '#' || !*l) continue;
        char *tab = strchr(l, '\t');
        ck_assert(tab != NULL);
        *tab = 0;
        int want = 1;
        for (char *c = tab + 1; *c; c++) want += *c == ',';
        char *out, *err;
        int rc = tu_run_mien(tu_mien_bin_fast(), tu_path("detect --json %s/people/%s", tu_data_dir(), l),
                          &out, &err);
        ck_assert_msg(rc == 0, "%s: %s", l, err);
        cJSON *o = cJSON_Parse(out);
        int got = cJSON_GetArraySize(cJSON_GetObjectItem(o, "faces"));
        ck_assert_msg(got >= want, "%s: %d faces found, %d labelled", l, got, want);
        cJSON_Delete(o);
        free(out), free(err);
        photos++;
    }
    free(labels);
    ck_assert_int_ge(photos, 20);
}
END_TEST

/* mien bench --quick --json (release build): every model of its table loads and runs (the
 * default stage's ultraface@640 included), and every end-to-end pipeline embeds the faces of
 * its photos. Speed itself is not asserted (benchmarks report it, tests do not). */
START_TEST(bench_smoke) {
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(), "bench --quick --json", &out, &err);
    ck_assert_msg(rc == 0, "mien bench: %d: %s", rc, err);
    ck_assert_msg(!strstr(err, "mien bench: "), "a model failed: %s", err);
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o != NULL, "not JSON: %s", out);
    const char *want[] = {"ultraface@320", "ultraface@640", "onet", "frfeature", "mobilefacenet-tflite"};
    int seen = 0, rows = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(o, "models")) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
        ck_assert(name != NULL);
        ck_assert_msg(cJSON_GetObjectItem(m, "ms")->valuedouble > 0, "%s: no time", name);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) seen += !strcmp(name, want[i]);
        rows++;
    }
    ck_assert_msg(seen == 5 && rows >= 10, "%d rows, %d of the default's models", rows, seen);
    cJSON *e2e = cJSON_GetObjectItem(o, "end_to_end"), *p;
    int images = cJSON_GetObjectItem(e2e, "images")->valueint, pipelines = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(e2e, "pipelines")) {
        ck_assert_int_eq(cJSON_GetObjectItem(p, "faces")->valueint, images);
        pipelines++;
    }
    ck_assert_int_ge(pipelines, 2);
    cJSON_Delete(o);
    free(out), free(err);
}
END_TEST

START_TEST(no_face_in_dogs) {
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(), tu_path("detect --json %s/dlib_faces/dogs.jpg", tu_data_dir()),
                      &out, &err);
    ck_assert_msg(rc == 0, "%s", err);
    cJSON *o = cJSON_Parse(out);
    ck_assert_msg(o && cJSON_GetArraySize(cJSON_GetObjectItem(o, "faces")) == 0, "faces in dogs.jpg: %s", out);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "width")->valueint, 900);
    cJSON_Delete(o);
    free(out), free(err);
    /* verify with a face-less photo is an error with exit status 2, not a guess */
    rc = tu_run_mien(tu_mien_bin_fast(),
                  tu_path("verify %s/dlib_faces/dogs.jpg %s/people/examples/obama.jpg", tu_data_dir(),
                          tu_data_dir()), &out, &err);
    ck_assert_msg(rc == 2 && strstr(err, "no face"), "exit %d: %s", rc, err);
    free(out), free(err);
}
END_TEST

START_TEST(draw_writes_png) {
    const char *png = tu_temp_file(".png", "", 0);
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin_fast(),
                      tu_path("detect --draw %s %s/people/examples/two_people.jpg", png, tu_data_dir()),
                      &out, &err);
    ck_assert_msg(rc == 0, "%s", err);
    size_t n;
    char *b = tu_read_file(png, &n);
    ck_assert_msg(b && n > 1000 && !memcmp(b, "\x89PNG", 4), "no PNG written");
    free(b), free(out), free(err);
    remove(png);
}
END_TEST

/* ==== Hostile inputs (sanitizer build) ==== */

static void expect_bad_image(const char *path, const char *what) {
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin(), tu_path("detect %s", path), &out, &err);
    assert_clean_failure(rc, err, what);
    free(out), free(err);
}

START_TEST(bad_inputs) {
    size_t n;
    char *jpg = tu_read_file(tu_path("%s/demo/sample1.jpg", tu_models_dir()), &n);
    ck_assert(jpg != NULL);
    const char *p = tu_temp_file(".jpg", jpg, n / 2);
    expect_bad_image(p, "truncated JPEG");
    remove(p);
    free(jpg);
    p = tu_temp_file(".jpg", "this is not an image, just text\n", 32);
    expect_bad_image(p, "text file named .jpg");
    remove(p);
    p = tu_temp_file(".png", "", 0);
    expect_bad_image(p, "empty file");
    remove(p);
    expect_bad_image("/nonexistent/photo.jpg", "missing file");
    /* A PNG whose header claims 100000 x 100000 pixels. */
    unsigned char png[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char *ihdr = png + 8;
    const unsigned char body[17] = {'I', 'H', 'D', 'R', 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0};
    ihdr[3] = 13;
    memcpy(ihdr + 4, body, 17);
    uLong crc = crc32(0, body, 17);
    for (int i = 0; i < 4; i++) ihdr[21 + i] = (unsigned char)(crc >> (24 - 8 * i));
    unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    memcpy(png + 33, iend, 12);
    p = tu_temp_file(".png", png, sizeof png);
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin(), tu_path("detect %s", p), &out, &err);
    assert_clean_failure(rc, err, "100000x100000 PNG");
    ck_assert_msg(strstr(err, "100000"), "message should name the size: %s", err);
    free(out), free(err);
    remove(p);
}
END_TEST

START_TEST(bad_models) {
    char *out, *err, img[1024];
    snprintf(img, sizeof img, "%s/people/examples/obama.jpg", tu_data_dir());
    int rc = tu_run_mien(tu_mien_bin(), tu_path("detect --models /nonexistent/models %s", img), &out, &err);
    assert_clean_failure(rc, err, "missing models folder");
    ck_assert_msg(strstr(err, "make setup"), "should say how to get the models: %s", err);
    free(out), free(err);
    /* A copy of the models folder with one file of each format cut short (the default
     * stage's ONNX detector and TFLite O-Net, BlazeFace's TFJS weights), then a TFJS model's
     * JSON corrupted: each failure names the file. */
    char dir[] = "/tmp/mien-models-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    ck_assert_int_eq(tu_run(tu_path("cp -r %s/. %s/", tu_models_dir(), dir), NULL), 0);
    static const struct { const char *file, *name, *flags; } cut[] = {
        {"faceplugin/fr_detect.onnx", "fr_detect", ""},
        {"expo/onet.tflite", "onet", ""},
        {"human/blazeface.bin", "blazeface", "--detector blazeface"},
    };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        rc = tu_run(tu_path("head -c 1000 %s/%s > %s/%s", tu_models_dir(), cut[i].file, dir, cut[i].file), NULL);
        ck_assert_int_eq(rc, 0);
        rc = tu_run_mien(tu_mien_bin(), tu_path("detect %s --models %s %s", cut[i].flags, dir, img), &out, &err);
        assert_clean_failure(rc, err, "truncated model weights");
        ck_assert_msg(strstr(err, cut[i].name), "should name the model %s: %s", cut[i].name, err);
        free(out), free(err);
        rc = tu_run(tu_path("cp %s/%s %s/%s", tu_models_dir(), cut[i].file, dir, cut[i].file), NULL);
        ck_assert_int_eq(rc, 0);
    }
    rc = tu_run(tu_path("printf '{\"modelTopology\": [1, 2' > %s/human/blazeface.json", dir), NULL);
    ck_assert_int_eq(rc, 0);
    rc = tu_run_mien(tu_mien_bin(), tu_path("detect --detector blazeface --models %s %s", dir, img), &out, &err);
    assert_clean_failure(rc, err, "corrupt model JSON");
    free(out), free(err);
    tu_run(tu_path("rm -rf %s", dir), NULL);
}
END_TEST

START_TEST(usage_errors) {
    char *out, *err;
    int rc = tu_run_mien(tu_mien_bin(), "verify onlyone.jpg", &out, &err);
    ck_assert_int_eq(rc, 2);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), "detect --min-score banana x.jpg", &out, &err);
    ck_assert_msg(rc == 2 && strstr(err, "banana"), "%s", err);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), "frobnicate", &out, &err);
    ck_assert_int_eq(rc, 2);
    free(out), free(err);
    rc = tu_run_mien(tu_mien_bin(), "detect --help", &out, &err);
    ck_assert_msg(rc == 0 && strstr(out, "usage: mien detect"), "%s", out);
    free(out), free(err);
}
END_TEST

/* `make install` into a temporary prefix: the README's example program builds against the
 * installed header and library (pkg-config, the shared library), the installed mien runs
 * from another folder with no flag and no variable (it finds PREFIX/share/mien/models),
 * with the mask head that install trains when it is missing (mien analyze answers the mask),
 * libmien.so exports only the mien_* API, the man page has every command, and without the
 * models the message names every place looked at. */
START_TEST(installed_use) {
    char dir[] = "/tmp/mien-prefix-XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char data[4096];
    ck_assert_msg(realpath(tu_data_dir(), data) != NULL, "no data folder %s", tu_data_dir());
    char *out;
    int rc = tu_run(tu_path("make -s install PREFIX=%s/usr 2>&1", dir), &out);
    ck_assert_msg(rc == 0, "make install: exit %d: %s", rc, out);
    free(out);

    rc = tu_run(tu_path("cc -std=c11 -Wall -Werror examples/verify.c "
                        "$(PKG_CONFIG_PATH=%s/usr/lib/pkgconfig pkg-config --cflags --libs mien) "
                        "-o %s/verify 2>&1 && %s/verify %s/usr/share/mien/models "
                        "%s/people/examples/obama.jpg %s/people/examples/obama2.jpg 2>&1",
                        dir, dir, dir, dir, data, data),
                &out);
    ck_assert_msg(rc == 0 && strstr(out, "same person"), "example: exit %d: %s", rc, out);
    free(out);
    rc = tu_run(tu_path("ldd %s/verify | grep -c 'libmien.so.0 => %s/usr/lib/'", dir, dir), &out);
    ck_assert_msg(rc == 0, "the example is not linked to the installed libmien.so: %s", out);
    free(out);

    /* From another folder, with an empty home and no MIEN_MODELS. */
    char env[512];
    snprintf(env, sizeof env, "cd %s/elsewhere && env -u MIEN_MODELS -u XDG_DATA_HOME HOME=%s", dir, dir);
    rc = tu_run(tu_path("mkdir -p %s/elsewhere && %s %s/usr/bin/mien verify "
                        "%s/people/examples/biden.jpg %s/people/tests/test_images/biden.jpg 2>&1",
                        dir, env, dir, data, data),
                &out);
    ck_assert_msg(rc == 0 && strstr(out, "same person"), "installed mien verify: exit %d: %s", rc, out);
    free(out);
    /* The mask head (trained by make mask-model, which install runs when it is missing) is
     * installed too: the installed mien analyze answers the mask (photo 2 of the mask set is
     * a masked face). */
    rc = tu_run(tu_path("%s %s/usr/bin/mien analyze --json --tasks mask %s/analysis/mask/img/0002.jpg 2>&1",
                        env, dir, data),
                &out);
    ck_assert_msg(rc == 0 && strstr(out, "\"mask\":{\"value\":\"mask\""), "installed mien analyze --tasks mask: "
                  "exit %d: %s", rc, out);
    free(out);

    rc = tu_run(tu_path("nm -D --defined-only %s/usr/lib/libmien.so | awk '{print $3}' | "
                        "grep -v '^mien_'", dir), &out);
    ck_assert_msg(rc == 1 && !*out, "libmien.so exports more than mien_*:\n%s", out);
    free(out);
    rc = tu_run(tu_path("nm -D --defined-only %s/usr/lib/libmien.so | grep -c ' mien_detect$'", dir), &out);
    ck_assert_msg(rc == 0, "libmien.so does not export mien_detect");
    free(out);

    /* The man page has a section for every command of `mien help`. */
    rc = tu_run(tu_path("m=%s/usr/share/man/man1/mien.1; %s/usr/bin/mien help | "
                        "awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}' | "
                        "while read c; do grep -q \"^\\.SS $c\\$\" $m || echo \"$c\"; done", dir, dir),
                &out);
    ck_assert_msg(rc == 0 && !*out, "commands missing from the man page: %s", out);
    free(out);

    /* No models anywhere: exit 1, and the message names every place. */
    rc = tu_run(tu_path("rm -rf %s/usr/share/mien && %s %s/usr/bin/mien detect "
                        "%s/people/examples/biden.jpg 2>&1", dir, env, dir, data),
                &out);
    ck_assert_msg(rc == 1, "without models: exit %d: %s", rc, out);
    const char *places[] = {"$MIEN_MODELS", "/elsewhere/models", "/.local/share/mien/models",
                            "/usr/share/mien/models"};
    for (int i = 0; i < 4; i++)
        ck_assert_msg(strstr(out, places[i]), "the message does not name %s: %s", places[i], out);
    free(out);

    rc = tu_run(tu_path("make -s uninstall PREFIX=%s/usr 2>&1 && test ! -e %s/usr/bin/mien && "
                        "test ! -e %s/usr/lib/libmien.so", dir, dir, dir), &out);
    ck_assert_msg(rc == 0, "make uninstall: %s", out);
    free(out);
    tu_run(tu_path("rm -rf %s", dir), NULL);
}
END_TEST

Suite *suite_e2e(void) {
    Suite *s = suite_create("e2e");
    TCase *t = tcase_create("people");
    tcase_set_timeout(t, 900);
    tcase_add_loop_test(t, known_people_pairs, 0, (int)(sizeof pair_embedders / sizeof pair_embedders[0]));
    tcase_add_test(t, verify_command);
    tcase_add_test(t, labelled_faces_found);
    tcase_add_test(t, no_face_in_dogs);
    tcase_add_test(t, bench_smoke);
    tcase_add_test(t, draw_writes_png);
    tcase_add_test(t, installed_use);
    suite_add_tcase(s, t);
    TCase *b = tcase_create("bad_input");
    tcase_set_timeout(b, 900);
    tcase_add_test(b, bad_inputs);
    tcase_add_test(b, bad_models);
    tcase_add_test(b, usage_errors);
    suite_add_tcase(s, b);
    return s;
}
