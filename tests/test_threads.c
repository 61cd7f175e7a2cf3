/* Threads and photos: one immutable mien_models shared by sessions on several threads at once
 * gives bit for bit what one thread gives; intra-op threads give the same; mien_photo (lazy,
 * DCT-scaled decoding) gives exactly mien_image_load + mien_detect + mien_embed on photos
 * under 8 times the detector input and the same faces on bigger ones; the CLI keeps the
 * input order when it runs files in parallel. */
#include "testutil.h"

#include "image/image.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Photos with one to three faces, small and large. */
static const char *const photos[] = {
    "people/examples/obama.jpg",
    "people/examples/two_people.jpg",
    "people/examples/knn_examples/test/kit_with_rose.jpg",
    "people/examples/obama-480p.jpg",
    "people/examples/alex-lacamoire.png",
};
#define N_PHOTOS (int)(sizeof photos / sizeof photos[0])
#define MAX_FACES 8
#define MAX_DIM 1024

/* What the pipeline gives for one photo. */
typedef struct result {
    int n;
    mien_face faces[MAX_FACES];
    float emb[MAX_FACES][MAX_DIM];
} result;

/* Detect and embed every face of photo i with session s (through mien_photo when photo). */
static int run_photo(mien_session *s, int i, int photo, result *r) {
    memset(r, 0, sizeof *r);
    const char *path = tu_path("%s/%s", tu_data_dir(), photos[i]);
    mien_face *f = NULL;
    int rc;
    if (photo) {
        mien_photo *p = NULL;
        rc = mien_photo_load(s, path, &p);
        if (!rc) rc = mien_photo_detect(s, p, NULL, &f, &r->n);
        for (int k = 0; !rc && k < r->n && k < MAX_FACES; k++)
            rc = mien_photo_embed(s, p, &f[k], r->emb[k]);
        mien_photo_close(p);
    } else {
        mien_image img = {0};
        rc = mien_image_load(s, path, &img);
        if (!rc) rc = mien_detect(s, &img, NULL, &f, &r->n);
        for (int k = 0; !rc && k < r->n && k < MAX_FACES; k++)
            rc = mien_embed(s, &img, &f[k], r->emb[k]);
        mien_image_free(&img);
    }
    if (r->n > MAX_FACES) r->n = MAX_FACES;
    if (f) memcpy(r->faces, f, (size_t)r->n * sizeof *f);
    free(f);
    return rc;
}

static int same_result(const result *a, const result *b) {
    return a->n == b->n && !memcmp(a->faces, b->faces, (size_t)a->n * sizeof a->faces[0]) &&
           !memcmp(a->emb, b->emb, sizeof a->emb);
}

/* ==== Sessions on several threads ==== */

typedef struct worker {
    mien_models *m;
    int id;
    int rounds;
    result out[N_PHOTOS];
    int rc;
    char msg[512];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    mien_session *s = NULL;
    if ((w->rc = mien_session_open(w->m, &s))) {
        snprintf(w->msg, sizeof w->msg, "session: %s", mien_errmsg(s));
        mien_session_close(s);
        return NULL;
    }
    /* Each worker starts at another photo, so different photos run at the same moment. */
    for (int r = 0; r < w->rounds && !w->rc; r++)
        for (int k = 0; k < N_PHOTOS && !w->rc; k++) {
            int i = (k + w->id) % N_PHOTOS;
            if ((w->rc = run_photo(s, i, (r + k) & 1, &w->out[i])))
                snprintf(w->msg, sizeof w->msg, "%s: %s", photos[i], mien_errmsg(s));
        }
    mien_session_close(s);
    return NULL;
}

static mien_models *open_models(int threads) {
    mien_config cfg;
    mien_config_default(&cfg);
    cfg.threads = threads;
    mien_models *m = NULL;
    int rc = mien_models_open(tu_models_dir(), &cfg, &m);
    ck_assert_msg(rc == MIEN_OK, "models: %s", mien_models_errmsg(m));
    return m;
}

START_TEST(sessions_on_threads_match_one_thread) {
    mien_models *m = open_models(1);
    mien_session *s = NULL;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    static result ref[N_PHOTOS];
    int faces = 0;
    for (int i = 0; i < N_PHOTOS; i++) {
        ck_assert_msg(run_photo(s, i, 0, &ref[i]) == MIEN_OK, "%s: %s", photos[i], mien_errmsg(s));
        ck_assert_msg(ref[i].n > 0, "%s: no face", photos[i]);
        faces += ref[i].n;
    }
    mien_session_close(s);

    enum { THREADS = 4 };
    static worker w[THREADS];
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].m = m;
        w[t].id = t;
        w[t].rounds = 1;
        ck_assert_int_eq(pthread_create(&tid[t], NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(tid[t], NULL);
    for (int t = 0; t < THREADS; t++) {
        ck_assert_msg(w[t].rc == MIEN_OK, "thread %d: %s", t, w[t].msg);
        for (int i = 0; i < N_PHOTOS; i++)
            ck_assert_msg(same_result(&w[t].out[i], &ref[i]),
                          "thread %d, %s: not what one thread gives", t, photos[i]);
    }
    printf("threads: %d sessions x %d photos (%d faces) at once, bit for bit as one thread\n",
           THREADS, N_PHOTOS, faces);
    mien_models_close(m);
}
END_TEST

START_TEST(intra_op_threads_match_one_thread) {
    mien_models *m1 = open_models(1), *m3 = open_models(3);
    mien_session *s1 = NULL, *s3 = NULL;
    ck_assert_int_eq(mien_session_open(m1, &s1), MIEN_OK);
    ck_assert_int_eq(mien_session_open(m3, &s3), MIEN_OK);
    for (int i = 0; i < N_PHOTOS; i++) {
        static result a, b;
        ck_assert_int_eq(run_photo(s1, i, 1, &a), MIEN_OK);
        ck_assert_int_eq(run_photo(s3, i, 1, &b), MIEN_OK);
        ck_assert_msg(same_result(&a, &b), "%s: 3 intra-op threads differ from 1", photos[i]);
    }
    mien_session_close(s1);
    mien_session_close(s3);
    mien_models_close(m1);
    mien_models_close(m3);
}
END_TEST

/* ==== mien_photo ==== */

START_TEST(photo_equals_image_path_below_scaling) {
    mien_models *m = open_models(1);
    mien_session *s = NULL;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    for (int i = 0; i < N_PHOTOS; i++) {
        static result a, b;
        ck_assert_int_eq(run_photo(s, i, 0, &a), MIEN_OK);
        ck_assert_int_eq(run_photo(s, i, 1, &b), MIEN_OK);
        ck_assert_msg(same_result(&a, &b), "%s: mien_photo differs from mien_image", photos[i]);
    }
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

/* A 4032-pixel JPEG made from a real photo: detection at 1/2, crops at the coarsest level
 * that does not magnify them. Same faces as the full-size path, boxes within 1% of the face,
 * embeddings within cosine 0.995 (shifting the photo by one pixel moves them by about as much). */
START_TEST(photo_scaled_jpeg_same_faces) {
    mien_models *m = open_models(1);
    mien_session *s = NULL;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    mien_err e = {0};
    mien_image src = {0}, big = {0};
    const char *path = tu_path("%s/people/examples/obama-1080p.jpg", tu_data_dir());
    ck_assert_int_eq(mien_image_load(s, path, &src), MIEN_OK);
    ck_assert_int_eq(img_resize(&src, 4032, 2268, &big, &e), MIEN_OK);
    uint8_t *jpg = NULL;
    size_t len = 0;
    ck_assert_int_eq(img_encode_jpeg(&big, 92, &jpg, &len, &e), MIEN_OK);
    mien_image full = {0};
    ck_assert_int_eq(mien_image_decode(s, jpg, len, &full), MIEN_OK);

    mien_face *fa = NULL, *fb = NULL;
    int na = 0, nb = 0;
    ck_assert_int_eq(mien_detect(s, &full, NULL, &fa, &na), MIEN_OK);
    mien_photo *p = NULL;
    ck_assert_int_eq(mien_photo_open(s, jpg, len, &p), MIEN_OK);
    int w, h;
    mien_photo_size(p, &w, &h);
    ck_assert_int_eq(w, 4032);
    ck_assert_int_eq(h, 2268);
    ck_assert_int_eq(mien_photo_detect(s, p, NULL, &fb, &nb), MIEN_OK);
    ck_assert_int_eq(na, 1);
    ck_assert_int_eq(nb, 1);
    for (int k = 0; k < 4; k++)
        ck_assert_msg(fabsf(fa[0].box[k] - fb[0].box[k]) < 0.01f * fa[0].box[2],
                      "box[%d]: %.1f vs %.1f", k, fa[0].box[k], fb[0].box[k]);
    float ea[MAX_DIM], eb[MAX_DIM];
    ck_assert_int_eq(mien_embed(s, &full, &fa[0], ea), MIEN_OK);
    ck_assert_int_eq(mien_photo_embed(s, p, &fb[0], eb), MIEN_OK);
    float cs = mien_similarity(ea, eb, mien_models_embedding_dim(m));
    /* 0.9984 with the default recognizer: its tight ArcFace crop moves more with a subpixel
     * shift than dlib's padded chip did (> 0.999). */
    ck_assert_msg(cs > 0.995f, "cosine %.5f", cs);
    /* The full-size image is there on request, and is the image path's. */
    const mien_image *pf;
    ck_assert_int_eq(mien_photo_image(s, p, &pf), MIEN_OK);
    ck_assert_int_eq(pf->width, full.width);
    ck_assert(!memcmp(pf->rgb, full.rgb, (size_t)full.width * full.height * 3));
    printf("photo: 4032x2268 JPEG, box within %.2f px, embedding cosine %.5f to full size\n",
           fmaxf(fabsf(fa[0].box[0] - fb[0].box[0]), fabsf(fa[0].box[1] - fb[0].box[1])), cs);
    free(fa);
    free(fb);
    mien_photo_close(p);
    mien_image_free(&full);
    mien_image_free(&big);
    mien_image_free(&src);
    free(jpg);
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

START_TEST(photo_bad_input) {
    mien_models *m = open_models(1);
    mien_session *s = NULL;
    ck_assert_int_eq(mien_session_open(m, &s), MIEN_OK);
    mien_photo *p = (mien_photo *)1;
    ck_assert_int_ne(mien_photo_open(s, "not an image", 12, &p), MIEN_OK);
    ck_assert_ptr_null(p);
    ck_assert_int_ne(mien_photo_load(s, "/nonexistent.jpg", &p), MIEN_OK);
    ck_assert(strstr(mien_errmsg(s), "nonexistent") != NULL);
    /* A JPEG cut short: the header probes fine, the pixels fail cleanly at detection. */
    size_t len;
    char *data = NULL;
    FILE *f = fopen(tu_path("%s/people/examples/obama.jpg", tu_data_dir()), "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc(len);
    ck_assert_int_eq(fread(data, 1, len, f), len);
    fclose(f);
    if (mien_photo_open(s, data, len / 3, &p) == MIEN_OK) {
        mien_face *faces = NULL;
        int n = 0;
        ck_assert_int_ne(mien_photo_detect(s, p, NULL, &faces, &n), MIEN_OK);
        ck_assert_ptr_null(faces);
        mien_photo_close(p);
    }
    free(data);
    mien_photo_close(NULL);
    mien_session_close(s);
    mien_models_close(m);
}
END_TEST

/* ==== The CLI over many files ==== */

START_TEST(cli_parallel_keeps_input_order) {
    /* The same photos in one call on 3 threads and one by one on 1 thread: same output. */
    char args[8192] = "", *one = NULL, *many = NULL;
    size_t at = 0;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < N_PHOTOS; i++)
            at += (size_t)snprintf(args + at, sizeof args - at, " %s/%s", tu_data_dir(), photos[i]);
    int rc = tu_run(tu_path("%s embed --json --threads 3 %s 2>/dev/null", tu_mien_bin_fast(), args),
                    &many);
    ck_assert_int_eq(rc, 0);
    rc = tu_run(tu_path("%s embed --json --threads 1 %s 2>/dev/null", tu_mien_bin_fast(), args),
                &one);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(many, one);
    /* One line per file, in the order given. */
    const char *q = many;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < N_PHOTOS; i++) {
            const char *hit = strstr(q, photos[i]);
            ck_assert_msg(hit != NULL, "%s missing or out of order", photos[i]);
            q = strchr(hit, '\n');
            ck_assert_ptr_nonnull(q);
        }
    free(one);
    free(many);
}
END_TEST

Suite *suite_threads(void) {
    Suite *s = suite_create("threads");
    TCase *t = tcase_create("threads");
    tcase_set_timeout(t, 900);
    tcase_add_test(t, sessions_on_threads_match_one_thread);
    tcase_add_test(t, intra_op_threads_match_one_thread);
    tcase_add_test(t, photo_equals_image_path_below_scaling);
    tcase_add_test(t, photo_scaled_jpeg_same_faces);
    tcase_add_test(t, photo_bad_input);
    tcase_add_test(t, cli_parallel_keeps_input_order);
    suite_add_tcase(s, t);
    return s;
}
