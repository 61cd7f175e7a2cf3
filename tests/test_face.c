/* The public face API: model sets, sessions, detection, alignment, embedding, fusion. */
#include "testutil.h"

#include "mien.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static mien_models *open_models(const char *embedder, const char *landmarks) {
    mien_config cfg;
    mien_config_default(&cfg);
    if (embedder) cfg.embedder = embedder;
    if (landmarks) cfg.landmarks = landmarks;
    mien_models *m;
    int rc = mien_models_open(tu_models_dir(), &cfg, &m);
    ck_assert_msg(rc == MIEN_OK, "%s", mien_models_errmsg(m));
    return m;
}

/* The largest face of a photo under the people data. */
static void largest_face(mien_session *s, const char *rel, mien_image *img, mien_face *face) {
    mien_face *faces;
    int n;
    ck_assert_msg(mien_image_load(s, tu_path("%s/%s", tu_data_dir(), rel), img) == MIEN_OK, "%s",
                  mien_errmsg(s));
    ck_assert_msg(mien_detect(s, img, NULL, &faces, &n) == MIEN_OK, "%s", mien_errmsg(s));
    ck_assert_msg(n >= 1, "no face in %s", rel);
    int best = 0;
    for (int i = 1; i < n; i++)
        if (faces[i].box[2] * faces[i].box[3] > faces[best].box[2] * faces[best].box[3]) best = i;
    *face = faces[best];
    free(faces);
}

static double dot(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d += (double)a[i] * b[i];
    return d;
}

/* The default recognizer (MobileFaceNet.tflite on the ArcFace 112x112 crop, 192-d), the
 * fusion with frfeature (both on that crop, 512 + 192) and dlib's (its 150x150 chip, 128-d). */
static const struct { const char *embedder; int chip, dim; } align_cases[] = {
    {NULL, 112, 192},
    {"frfeature+mobilefacenet-tflite", 112, 704},
    {"dlib", 150, 128},
};

START_TEST(detect_align_embed) {
    mien_models *m = open_models(align_cases[_i].embedder, NULL);
    mien_session *s;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    mien_image img;
    mien_face f;
    largest_face(s, "people/examples/obama.jpg", &img, &f);
    ck_assert_int_eq(f.n_points, 5); /* the face mesh gave mouth corners */
    ck_assert(f.score >= 0.6f && f.score <= 1.f);
    /* Points in image order: first eye left of the second, mouth below the eyes. */
    ck_assert(f.points[0][0] < f.points[1][0]);
    ck_assert(f.points[3][1] > f.points[0][1] && f.points[4][1] > f.points[1][1]);
    mien_image chip;
    ck_assert_int_eq(mien_align(s, &img, &f, &chip), MIEN_OK);
    ck_assert_int_eq(chip.width, align_cases[_i].chip);
    ck_assert_int_eq(chip.height, align_cases[_i].chip);
    const int dim = mien_models_embedding_dim(m);
    ck_assert_int_eq(dim, align_cases[_i].dim);
    /* Each was measured for clustering too: a stricter threshold than its 1:1 one. */
    ck_assert(mien_models_cluster_threshold(m) > mien_models_threshold(m));
    ck_assert(mien_models_cluster_threshold(m) < 1.f);
    float *e1 = malloc(dim * sizeof *e1), *e2 = malloc(dim * sizeof *e2);
    ck_assert_int_eq(mien_embed(s, &img, &f, e1), MIEN_OK);
    ck_assert(fabs(dot(e1, e1, dim) - 1.0) < 1e-5);
    /* The aligned chip gives (nearly) the same embedding: one more resampling. */
    ck_assert_msg(mien_embed_aligned(s, &chip, e2) == MIEN_OK, "%s", mien_errmsg(s));
    ck_assert(fabs(dot(e2, e2, dim) - 1.0) < 1e-5);
    ck_assert_msg(dot(e1, e2, dim) > 0.98, "chip vs photo: %f", dot(e1, e2, dim));
    ck_assert(fabsf(mien_similarity(e1, e1, dim) - 1.f) < 1e-5f);
    free(e1), free(e2);
    mien_image_free(&chip);
    mien_image_free(&img);
    mien_image_free(&img); /* freeing twice is harmless: the struct was zeroed */
    mien_session_close(s);
    mien_models_close(m);
    mien_session_close(NULL);
    mien_models_close(NULL);
}
END_TEST

/* A fused recognizer's cosine is the weighted sum of its parts' cosines. */
START_TEST(fusion_is_weighted_cosine) {
    mien_models *mf = open_models("dlib+faceres", NULL), *ma = open_models("dlib", NULL),
                *mb = open_models("faceres", NULL);
    ck_assert_str_eq(mien_models_embedder_name(mf), "dlib+faceres");
    /* A fusion not measured for clustering clusters at its 1:1 threshold. */
    ck_assert_float_eq(mien_models_cluster_threshold(mf), mien_models_threshold(mf));
    const int df = mien_models_embedding_dim(mf), da = mien_models_embedding_dim(ma),
              db = mien_models_embedding_dim(mb);
    ck_assert_int_eq(df, da + db);
    mien_session *sf, *sa, *sb;
    ck_assert_int_eq(mien_session_open(mf, &sf), MIEN_OK);
    ck_assert_int_eq(mien_session_open(ma, &sa), MIEN_OK);
    ck_assert_int_eq(mien_session_open(mb, &sb), MIEN_OK);
    const char *photos[2] = {"people/examples/obama.jpg", "people/examples/biden.jpg"};
    float *f[2], *a[2], *b[2];
    for (int i = 0; i < 2; i++) {
        mien_image img;
        mien_face face;
        largest_face(sf, photos[i], &img, &face);
        f[i] = malloc(df * sizeof(float)), a[i] = malloc(da * sizeof(float)), b[i] = malloc(db * sizeof(float));
        ck_assert_int_eq(mien_embed(sf, &img, &face, f[i]), MIEN_OK);
        ck_assert_int_eq(mien_embed(sa, &img, &face, a[i]), MIEN_OK);
        ck_assert_int_eq(mien_embed(sb, &img, &face, b[i]), MIEN_OK);
        ck_assert(fabs(dot(f[i], f[i], df) - 1.0) < 1e-5);
        mien_image_free(&img);
    }
    /* Recover the weight from one photo's own parts: |first part|^2 = w. */
    double w = dot(f[0], f[0], da);
    ck_assert(w > 0 && w < 1);
    double want = w * dot(a[0], a[1], da) + (1 - w) * dot(b[0], b[1], db);
    ck_assert_msg(fabs(dot(f[0], f[1], df) - want) < 1e-5, "fused %f, parts %f", dot(f[0], f[1], df), want);
    for (int i = 0; i < 2; i++) free(f[i]), free(a[i]), free(b[i]);
    mien_session_close(sf), mien_session_close(sa), mien_session_close(sb);
    mien_models_close(mf), mien_models_close(ma), mien_models_close(mb);
}
END_TEST

START_TEST(errors_on_the_handle) {
    mien_models *m;
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.embedder = "no-such-net";
    ck_assert_int_eq(mien_models_open(tu_models_dir(), &cfg, &m), MIEN_ENOTFOUND);
    ck_assert_msg(strstr(mien_models_errmsg(m), "no-such-net"), "%s", mien_models_errmsg(m));
    mien_models_close(m);
    cfg.embedder = "dlib+nothing";
    ck_assert_int_eq(mien_models_open(tu_models_dir(), &cfg, &m), MIEN_ENOTFOUND);
    ck_assert_msg(strstr(mien_models_errmsg(m), "nothing"), "%s", mien_models_errmsg(m));
    mien_models_close(m);
    m = open_models(NULL, "none");
    mien_session *s;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    mien_image img;
    ck_assert_int_eq(mien_image_decode(s, "GIF89a", 6, &img), MIEN_EFORMAT);
    ck_assert(strlen(mien_errmsg(s)) > 0);
    mien_face *faces;
    int n;
    mien_image empty = {0};
    ck_assert_int_eq(mien_detect(s, &empty, NULL, &faces, &n), MIEN_EINVAL);
    /* Degenerate landmarks: all five points on one spot. */
    mien_face f = {.n_points = 5};
    float emb[1024];
    ck_assert(mien_image_load(s, tu_path("%s/people/examples/obama.jpg", tu_data_dir()), &img) == MIEN_OK);
    ck_assert_int_eq(mien_embed(s, &img, &f, emb), MIEN_EINVAL);
    ck_assert_msg(strstr(mien_errmsg(s), "landmarks"), "%s", mien_errmsg(s));
    mien_image_free(&img);
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

/* mien_landmarks: a face known by its box alone gets the points the pipeline gives, for the
 * default O-Net and for the 68-point net; bad boxes and "none" fail cleanly. */
START_TEST(landmarks_from_a_box) {
    const char *sources[] = {NULL, "68"};
    for (int k = 0; k < 2; k++) {
        mien_models *m = open_models(NULL, sources[k]);
        mien_session *s;
        ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
        mien_image img;
        mien_face det;
        largest_face(s, "people/examples/obama.jpg", &img, &det);
        mien_face f = {0};
        memcpy(f.box, det.box, sizeof f.box);
        int present = -1;
        ck_assert_msg(mien_landmarks(s, &img, &f, &present) == MIEN_OK, "%s", mien_errmsg(s));
        ck_assert_int_eq(present, 1);
        ck_assert_int_eq(f.n_points, 5);
        ck_assert_int_eq(f.n_landmarks, k == 1 ? 68 : 0);
        for (int i = 0; i < 5; i++) /* the same points, within 4% of the box */
            ck_assert_msg(fabsf(f.points[i][0] - det.points[i][0]) < 0.04f * det.box[2] &&
                              fabsf(f.points[i][1] - det.points[i][1]) < 0.04f * det.box[3],
                          "point %d: %.1f,%.1f vs %.1f,%.1f", i, f.points[i][0], f.points[i][1],
                          det.points[i][0], det.points[i][1]);
        const int dim = mien_models_embedding_dim(m);
        float *a = malloc(dim * sizeof *a), *b = malloc(dim * sizeof *b);
        ck_assert_int_eq(mien_embed(s, &img, &det, a), MIEN_OK);
        ck_assert_int_eq(mien_embed(s, &img, &f, b), MIEN_OK);
        /* The ArcFace crop of the default recognizer is tight on the face, so a small shift
         * of the points moves it more than dlib's padded chip (0.987 here, dlib's > 0.99);
         * the same face, far above any same-person threshold. */
        ck_assert_msg(dot(a, b, dim) > 0.98, "cos %.4f", dot(a, b, dim));
        free(a), free(b);
        mien_face bad = {.box = {10, 10, 0, 50}};
        ck_assert_int_eq(mien_landmarks(s, &img, &bad, NULL), MIEN_EINVAL);
        bad.box[2] = NAN;
        ck_assert_int_eq(mien_landmarks(s, &img, &bad, NULL), MIEN_EINVAL);
        mien_image_free(&img);
        mien_session_close(s);
        mien_models_close(m);
    }
    /* "none" behind a detector with its own points (behind one without, such as the default
     * UltraFace, "none" means the 68-point net). */
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.detector = "blazeface";
    cfg.landmarks = "none";
    mien_models *m;
    ck_assert_msg(mien_models_open(tu_models_dir(), &cfg, &m) == MIEN_OK, "%s", mien_models_errmsg(m));
    mien_session *s;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    mien_image img;
    ck_assert(mien_image_load(s, tu_path("%s/people/examples/obama.jpg", tu_data_dir()), &img) == MIEN_OK);
    mien_face f = {.box = {300, 150, 300, 300}};
    ck_assert_int_eq(mien_landmarks(s, &img, &f, NULL), MIEN_EUNSUPPORTED);
    mien_image_free(&img);
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

static int count_faces(mien_session *s, const char *rel) {
    mien_image img;
    mien_face *faces;
    int n;
    ck_assert_msg(mien_image_load(s, tu_path("%s/%s", tu_data_dir(), rel), &img) == MIEN_OK, "%s",
                  mien_errmsg(s));
    ck_assert_msg(mien_detect(s, &img, NULL, &faces, &n) == MIEN_OK, "%s", mien_errmsg(s));
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(faces[i].n_points, 5);
        for (int k = 0; k < 5; k++) /* every point near its box */
            ck_assert(fabsf(faces[i].points[k][0] - faces[i].box[0] - 0.5f * faces[i].box[2]) <
                          faces[i].box[2] && fabsf(faces[i].points[k][1] - faces[i].box[1] -
                                                   0.5f * faces[i].box[3]) < faces[i].box[3]);
    }
    mien_faces_free(faces);
    mien_image_free(&img);
    return n;
}

/* A session on the detection stage detector + landmarks (the default recognizer). */
static void open_stage(const char *detector, const char *landmarks, mien_models **m,
                       mien_session **s) {
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.detector = detector;
    cfg.landmarks = landmarks;
    ck_assert_msg(mien_models_open(tu_models_dir(), &cfg, m) == MIEN_OK, "%s", mien_models_errmsg(*m));
    ck_assert_int_eq(mien_session_open(*m, s), MIEN_OK);
}

/* MTCNN's O-Net as the landmark stage behind UltraFace: it keeps a profile face that the face
 * mesh's presence check drops (cfp_dev 012/profile/01), drops the dogs that UltraFace reports
 * when nothing checks them and the painted landscape behind Biden in biden2.jpg, and on a frontal face
 * puts its points where the mesh puts them. */
START_TEST(onet_profiles_and_dogs) {
    /* "none" behind a detector without keypoints is the 68-point net, which drops no face. */
    const char *lms[] = {"onet", "facemesh", "none"};
    int prof[2], dogs[3], biden = 0;
    for (int k = 0; k < 3; k++) {
        mien_models *m;
        mien_session *s;
        open_stage("ultraface@320+ultraface@640", lms[k], &m, &s);
        if (k < 2) prof[k] = count_faces(s, "cfp_dev/Data/Images/012/profile/01.jpg");
        dogs[k] = count_faces(s, "dlib_faces/dogs.jpg");
        if (k == 0) biden = count_faces(s, "people/examples/knn_examples/train/biden/biden2.jpg");
        mien_session_close(s);
        mien_models_close(m);
    }
    ck_assert_int_eq(prof[0], 1);
    ck_assert_int_eq(biden, 1);
    ck_assert_int_eq(prof[1], 0);
    ck_assert_int_eq(dogs[0], 0);
    ck_assert_int_eq(dogs[1], 0);
    ck_assert_int_ge(dogs[2], 1);
    /* Frontal: O-Net's points within 5% of the box of the mesh's. */
    mien_face fo, fm;
    for (int k = 0; k < 2; k++) {
        mien_models *m;
        mien_session *s;
        open_stage("ultraface@320", lms[k], &m, &s);
        mien_image img;
        largest_face(s, "people/examples/obama.jpg", &img, k ? &fm : &fo);
        mien_image_free(&img);
        mien_session_close(s);
        mien_models_close(m);
    }
    for (int i = 0; i < 5; i++)
        ck_assert_msg(fabsf(fo.points[i][0] - fm.points[i][0]) < 0.05f * fm.box[2] &&
                          fabsf(fo.points[i][1] - fm.points[i][1]) < 0.05f * fm.box[3],
                      "point %d: onet %.1f,%.1f mesh %.1f,%.1f", i, fo.points[i][0],
                      fo.points[i][1], fm.points[i][0], fm.points[i][1]);
}
END_TEST

/* A face O-Net doubts is ranked, not dropped: asked for scores from 0.05, the default stage
 * returns UltraFace's boxes on the dogs with their score times O-Net's mean face probability,
 * every one below 0.5 (so never at the default 0.6), while a face O-Net vouches for keeps its
 * detector score. */
START_TEST(onet_doubted_faces_score_low) {
    mien_models *m;
    mien_session *s;
    open_stage("ultraface@320+ultraface@640", "onet", &m, &s);
    mien_detect_options o;
    mien_detect_options_default(&o);
    o.min_score = 0.05f;
    const char *photos[] = {"dlib_faces/dogs.jpg", "people/examples/obama.jpg"};
    int n[2];
    float best[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        mien_image img;
        mien_face *faces;
        ck_assert(mien_image_load(s, tu_path("%s/%s", tu_data_dir(), photos[k]), &img) == MIEN_OK);
        ck_assert_msg(mien_detect(s, &img, &o, &faces, &n[k]) == MIEN_OK, "%s", mien_errmsg(s));
        for (int i = 0; i < n[k]; i++) best[k] = fmaxf(best[k], faces[i].score);
        mien_faces_free(faces);
        mien_image_free(&img);
    }
    ck_assert_int_ge(n[0], 1);
    ck_assert_msg(best[0] < 0.5f, "a dog scored %.3f", best[0]);
    ck_assert_msg(best[1] > 0.9f, "Obama scored %.3f", best[1]);
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

/* A photo in which nothing is found gets a second look inside a grey margin: tight crops of
 * profiles that fill the frame (cfp_dev, the first look finds no face in any of these three),
 * found by mien_detect and by mien_photo_detect alike, the points inside the photo's frame
 * give or take the margin, and the box in the photo's coordinates (overlapping it). */
START_TEST(second_look_with_a_margin) {
    mien_models *m;
    mien_session *s;
    open_stage("ultraface@320+ultraface@640", "onet", &m, &s);
    const char *crops[] = {"008/profile/02.jpg", "062/profile/01.jpg", "091/profile/03.jpg"};
    for (int k = 0; k < 3; k++) {
        const char *path = tu_path("%s/cfp_dev/Data/Images/%s", tu_data_dir(), crops[k]);
        mien_image img;
        mien_face *f;
        int n;
        ck_assert(mien_image_load(s, path, &img) == MIEN_OK);
        ck_assert_msg(mien_detect(s, &img, NULL, &f, &n) == MIEN_OK, "%s", mien_errmsg(s));
        ck_assert_msg(n == 1, "%s: %d faces", crops[k], n);
        const float W = (float)img.width, H = (float)img.height;
        ck_assert_msg(f[0].box[0] < W && f[0].box[1] < H && f[0].box[0] + f[0].box[2] > 0 &&
                          f[0].box[1] + f[0].box[3] > 0 && f[0].box[2] > 0.3f * W,
                      "%s: box %.0f %.0f %.0f %.0f", crops[k], f[0].box[0], f[0].box[1],
                      f[0].box[2], f[0].box[3]);
        for (int i = 0; i < 5; i++)
            ck_assert(f[0].points[i][0] > -0.3f * W && f[0].points[i][0] < 1.3f * W &&
                      f[0].points[i][1] > -0.3f * H && f[0].points[i][1] < 1.3f * H);
        mien_photo *p;
        size_t len;
        void *bytes = tu_read_file(path, &len);
        ck_assert(mien_photo_open(s, bytes, len, &p) == MIEN_OK);
        mien_face *g;
        int ng;
        ck_assert_msg(mien_photo_detect(s, p, NULL, &g, &ng) == MIEN_OK, "%s", mien_errmsg(s));
        ck_assert_int_eq(ng, 1);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(fabsf(g[0].box[i] - f[0].box[i]) < 0.05f * f[0].box[2], "%s: box[%d] %.1f vs %.1f",
                          crops[k], i, g[0].box[i], f[0].box[i]);
        mien_faces_free(g);
        mien_photo_close(p);
        free(bytes);
        mien_faces_free(f);
        mien_image_free(&img);
    }
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

/* mien_models_open(NULL): $MIEN_MODELS first; a folder without the models passes to the next
 * place (here the checkout's models beside build-asan/); mien_models_find names the first. */
START_TEST(models_search) {
    char want[4096];
    ck_assert(realpath(tu_models_dir(), want) != NULL);
    setenv("MIEN_MODELS", want, 1);
    mien_models *m;
    ck_assert_msg(mien_models_open(NULL, NULL, &m) == MIEN_OK, "%s", mien_models_errmsg(m));
    ck_assert_str_eq(mien_models_dir(m), want);
    mien_models_close(m);
    char buf[4096];
    ck_assert_int_eq(mien_models_find(buf, sizeof buf), MIEN_OK);
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(mien_models_find(buf, 4), MIEN_ETOOBIG);
    /* An empty folder in $MIEN_MODELS: the search goes on. */
    const char *empty = tu_path("/tmp/mien-empty-models-%d", (int)getpid());
    ck_assert(mkdir(empty, 0700) == 0);
    setenv("MIEN_MODELS", empty, 1);
    ck_assert_msg(mien_models_open(NULL, NULL, &m) == MIEN_OK, "%s", mien_models_errmsg(m));
    ck_assert_str_ne(mien_models_dir(m), empty);
    mien_models_close(m);
    /* A config error stops the search at once, naming the model. */
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.detector = "no-such-detector";
    ck_assert_int_eq(mien_models_open(NULL, &cfg, &m), MIEN_ENOTFOUND);
    ck_assert_msg(strstr(mien_models_errmsg(m), "no-such-detector"), "%s", mien_models_errmsg(m));
    mien_models_close(m);
    rmdir(empty);
    unsetenv("MIEN_MODELS");
}
END_TEST

Suite *suite_face(void) {
    Suite *s = suite_create("face");
    TCase *t = tcase_create("api");
    tcase_set_timeout(t, 600);
    tcase_add_loop_test(t, detect_align_embed, 0, (int)(sizeof align_cases / sizeof align_cases[0]));
    tcase_add_test(t, fusion_is_weighted_cosine);
    tcase_add_test(t, errors_on_the_handle);
    tcase_add_test(t, landmarks_from_a_box);
    tcase_add_test(t, models_search);
    tcase_add_test(t, onet_profiles_and_dogs);
    tcase_add_test(t, onet_doubted_faces_score_low);
    tcase_add_test(t, second_look_with_a_margin);
    suite_add_tcase(s, t);
    return s;
}
