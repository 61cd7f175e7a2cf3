/* Verification metrics: pairs files, k-fold accuracy, TAR@FAR, ROC/AUC/EER, the ROC plot, and
 * a comparison with an independent numpy reference (tools/ref_verify_metrics.py). Also the
 * other measures of src/eval on hand-worked cases: detection AP (det_eval.c), identification
 * and clustering (ident_eval.c). */
#include "testutil.h"
#include "eval/det_eval.h"
#include "eval/ident_eval.h"
#include "eval/verify_eval.h"
#include "image/image.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ==== Helpers ==== */

/* xorshift64* and Box-Muller: a fixed pseudo-random stream, the same on every machine. */
typedef struct rng { uint64_t s; } rng;

static double rng_uniform(rng *r) {   /* in (0, 1) */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    uint64_t x = r->s * 2685821657736338717ull;
    return ((double)(x >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(rng *r) {
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static ve_set build(int n, const float *score, const int *same, const int *fold,
                    ve_missing policy) {
    ve_set s;
    mien_err e = {0};
    int rc = ve_set_build(&s, n, score, NULL, same, fold, policy, &e);
    ck_assert_msg(rc == MIEN_OK, "ve_set_build: %s", e.msg);
    return s;
}

/* Mann-Whitney by brute force over every (genuine, impostor) couple, ties 1/2. */
static double brute_auc(int n, const float *score, const int *same) {
    double u = 0;
    long np_ = 0, nn = 0;
    for (int i = 0; i < n; i++) {
        if (same[i]) np_++;
        else nn++;
        if (!same[i]) continue;
        for (int j = 0; j < n; j++) {
            if (same[j]) continue;
            u += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
        }
    }
    return u / ((double)np_ * nn);
}

/* ==== Pairs files ==== */

START_TEST(lfw_pairs_real) {
    const char *path = tu_path("%s/lfw/pairs.txt", tu_data_dir());
    ve_pairs p;
    mien_err e = {0};
    ck_assert_msg(ve_pairs_load(path, &p, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(p.n, 6000);
    ck_assert_int_eq(p.n_folds, 10);
    int n_same = 0, per_fold[10][2] = {{0}};
    for (int i = 0; i < p.n; i++) {
        n_same += p.v[i].same;
        ck_assert(p.v[i].fold >= 0 && p.v[i].fold < 10);
        per_fold[p.v[i].fold][p.v[i].same]++;
        /* Block layout: fold = i / 600, the first 300 of a block matched. */
        ck_assert_int_eq(p.v[i].fold, i / 600);
        ck_assert_int_eq(p.v[i].same, i % 600 < 300);
    }
    ck_assert_int_eq(n_same, 3000);
    for (int k = 0; k < 10; k++) {
        ck_assert_int_eq(per_fold[k][0], 300);
        ck_assert_int_eq(per_fold[k][1], 300);
    }
    ck_assert_str_eq(p.v[0].a, "Abel_Pacheco/Abel_Pacheco_0001.jpg");
    ck_assert_str_eq(p.v[0].b, "Abel_Pacheco/Abel_Pacheco_0004.jpg");
    ck_assert_str_eq(p.v[300].a, "Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg");
    ck_assert_str_eq(p.v[300].b, "Dean_Barker/Dean_Barker_0001.jpg");
    ck_assert_int_eq(p.v[300].same, 0);
    /* Every image the protocol names is in the shared copy of LFW. */
    int missing = 0;
    const char *first_missing = NULL;
    for (int i = 0; i < p.n; i++)
        for (int k = 0; k < 2; k++) {
            const char *img = tu_path("%s/lfw/%s", tu_data_dir(), k ? p.v[i].b : p.v[i].a);
            if (access(img, R_OK) != 0) {
                if (!missing) first_missing = k ? p.v[i].b : p.v[i].a;
                missing++;
            }
        }
    ck_assert_msg(missing == 0, "%d images missing, first %s", missing, first_missing);
    ve_pairs_free(&p);
    ck_assert_ptr_null(p.v);
    ve_pairs_free(&p);   /* twice is harmless */
}
END_TEST

START_TEST(generic_pairs) {
    const char *text =
        "# a comment, then a blank line\n"
        "\n"
        "dir a/x 1.jpg\tdir b/y.png\t1\t0\r\n"
        "p/q.jpg\tr/s.jpg\t0\t3\n"
        "  \n"
        "u.jpg\tv.jpg\t1\t2";   /* no final newline */
    const char *path = tu_temp_file(".txt", text, strlen(text));
    ve_pairs p;
    mien_err e = {0};
    ck_assert_msg(ve_pairs_load(path, &p, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(p.n, 3);
    ck_assert_int_eq(p.n_folds, 4);
    ck_assert_str_eq(p.v[0].a, "dir a/x 1.jpg");
    ck_assert_str_eq(p.v[0].b, "dir b/y.png");
    ck_assert_int_eq(p.v[0].same, 1);
    ck_assert_int_eq(p.v[0].fold, 0);
    ck_assert_str_eq(p.v[1].b, "r/s.jpg");
    ck_assert_int_eq(p.v[1].same, 0);
    ck_assert_int_eq(p.v[1].fold, 3);
    ck_assert_str_eq(p.v[2].a, "u.jpg");
    ck_assert_int_eq(p.v[2].fold, 2);
    ve_pairs_free(&p);
    remove(path);

    /* A small LFW-format file: 2 folds of 1 + 1, trailing blank line allowed. */
    const char *lfw = "2 1\nA_B\t1\t2\nA_B\t3\tC_D\t12\nE\t10\t11\nE\t1\tF\t2\n\n";
    ck_assert_int_eq(ve_pairs_parse(lfw, strlen(lfw), "mem", &p, &e), MIEN_OK);
    ck_assert_int_eq(p.n, 4);
    ck_assert_int_eq(p.n_folds, 2);
    ck_assert_str_eq(p.v[1].b, "C_D/C_D_0012.jpg");
    ck_assert_str_eq(p.v[2].a, "E/E_0010.jpg");
    ck_assert_int_eq(p.v[2].fold, 1);
    ck_assert_int_eq(p.v[3].same, 0);
    ve_pairs_free(&p);
}
END_TEST

/* Each malformed file must fail with MIEN_EFORMAT naming the file and the bad line. */
static const struct bad_case {
    const char *text;
    const char *line;   /* expected "file:LINE:" part, e.g. ":3:" ("" = no line number) */
    const char *words;  /* a word the message must hold */
} bad_cases[] = {
    {"2\t1\nA\t1\t2\t3\n", ":2:", "matched"},                    /* 4 fields in a matched line */
    {"1\t2\nA\t1\t2\nA\t1\tx\nA\t1\tB\t2\nA\t1\tB\t2\n", ":3:", "index"}, /* bad index */
    {"1\t2\nA\t1\t2\nA\t0\t2\nA\t1\tB\t2\nA\t1\tB\t2\n", ":3:", "index"}, /* index 0 */
    {"1\t1\nA\t1\t2\nA\t1\tB\n", ":3:", "mismatched"},              /* 3 fields in mismatched */
    {"1\t1\nA\t1\t2\n", ":3:", "end of file"},                      /* truncated */
    {"1\t1\nA\t1\t2\nA\t1\tB\t2\nC\t1\t2\n", ":4:", "extra"},      /* too long */
    {"1\t1\n../x\t1\t2\nA\t1\tB\t2\n", ":2:", "name"},              /* escapes the root */
    {"1\t1\nA\t1\t2\nA\t1\ta/b\t2\n", ":3:", "name"},
    {"0\t300\n", ":1:", "header"},
    {"101\t1\n", ":1:", "header"},
    {"# c\n\na.jpg\tb.jpg\t2\t0\n", ":3:", "label"},
    {"a.jpg\tb.jpg\t1\t0\na.jpg\tb.jpg\t1\n", ":2:", "4 tab-separated"},
    {"a.jpg\tb.jpg\t1\t0\tx\n", ":1:", "4 tab-separated"},
    {"a.jpg\tb.jpg\t1\t-1\n", ":1:", "fold"},
    {"a.jpg\tb.jpg\t1\t100\n", ":1:", "fold"},
    {"a.jpg\tb.jpg\t1\t 1\n", ":1:", "fold"},
    {"a.jpg\t\t1\t0\n", ":1:", "path"},
    {"a.jpg b.jpg 1 0\n", ":1:", "4 tab-separated"},
    {"# only comments\n\n", "", "no pairs"},
    {"", "", "empty"},
};

START_TEST(malformed_pairs) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        const char *path = tu_temp_file(".txt", c->text, strlen(c->text));
        ck_assert_ptr_nonnull(path);
        ve_pairs p;
        mien_err e = {0};
        int rc = ve_pairs_load(path, &p, &e);
        ck_assert_msg(rc == MIEN_EFORMAT, "case %zu: status %d (%s)", i, rc, e.msg);
        ck_assert_ptr_null(p.v);
        ck_assert_int_eq(p.n, 0);
        char want[300];
        snprintf(want, sizeof want, "%s%s", path, c->line);
        ck_assert_msg(strstr(e.msg, want) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, e.msg,
                      want);
        ck_assert_msg(strstr(e.msg, c->words) != NULL, "case %zu: \"%s\" lacks \"%s\"", i,
                      e.msg, c->words);
        remove(path);
    }
    ve_pairs p;
    mien_err e = {0};
    ck_assert_int_eq(ve_pairs_load("/nonexistent/pairs.txt", &p, &e), MIEN_EIO);
}
END_TEST

/* Hostile input: random byte mutations of valid files either parse or fail cleanly (the
 * sanitizer build turns any overrun into a failure). */
START_TEST(pairs_mutations) {
    static const char *const seeds[] = {
        "2\t2\nA_B\t1\t2\nC\t3\t4\nA_B\t3\tC_D\t12\nE\t1\tF\t2\n"
        "E\t10\t11\nG\t1\t2\nE\t1\tF\t2\nH\t9\tI\t9\n",
        "# c\na b.jpg\tc/d.png\t1\t0\r\ne.jpg\tf.jpg\t0\t1\n\ng.jpg\th.jpg\t1\t2\n",
    };
    rng r = {12345};
    char buf[256];
    for (int it = 0; it < 4000; it++) {
        const char *seed = seeds[it & 1];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(rng_uniform(&r) * 4);
        for (int k = 0; k < edits; k++) {
            size_t at = (size_t)(rng_uniform(&r) * len);
            static const char alphabet[] = "\t\n\r 0123456789#/.-_aZ\0\xff";
            buf[at] = alphabet[(int)(rng_uniform(&r) * (sizeof alphabet - 1))];
        }
        if (rng_uniform(&r) < 0.2) len = (size_t)(rng_uniform(&r) * len);   /* truncate */
        ve_pairs p;
        mien_err e = {0};
        int rc = ve_pairs_parse(buf, len, "fuzz", &p, &e);
        ck_assert_msg(rc == MIEN_OK || rc == MIEN_EFORMAT, "iteration %d: status %d", it, rc);
        if (rc == MIEN_OK) {
            ck_assert(p.n > 0 && p.n_folds > 0);
            for (int i = 0; i < p.n; i++)
                ck_assert(p.v[i].fold >= 0 && p.v[i].fold < p.n_folds && p.v[i].a[0]);
        } else {
            ck_assert(strncmp(e.msg, "fuzz", 4) == 0);
        }
        ve_pairs_free(&p);
    }
}
END_TEST

/* ==== Metrics on hand-computed cases ==== */

START_TEST(separable) {
    /* 4 folds; genuine scores all above impostor scores. */
    enum { N = 40 };
    float sc[N];
    int same[N], fold[N];
    for (int i = 0; i < N; i++) {
        same[i] = i % 2;
        fold[i] = i % 4;
        sc[i] = same[i] ? 0.5f + 0.01f * i : -0.3f + 0.01f * i;   /* max impostor 0.08 */
    }
    ve_set s = build(N, sc, same, fold, VE_MISSING_REJECT);
    mien_err e = {0};
    ve_report r;
    ck_assert_msg(ve_evaluate(&s, NULL, &r, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(r.kfold.n_folds, 4);
    ck_assert_double_eq(r.kfold.acc_mean, 1.0);
    ck_assert_double_eq(r.kfold.acc_std, 0.0);
    ck_assert_double_eq(r.best_acc, 1.0);
    /* Smallest perfect threshold: midpoint of the top impostor and the bottom genuine. */
    ck_assert_double_eq_tol(r.best_thr, 0.5 * ((double)sc[38] + (double)sc[1]), 1e-12);
    ck_assert_double_eq(r.auc, 1.0);
    ck_assert_double_eq(r.eer, 0.0);
    ck_assert_double_eq(r.at_far_1e3.tar, 1.0);
    ck_assert_double_eq(r.at_far_1e3.far, 0.0);
    ck_assert_double_eq(r.at_far_1e3.thr, (double)sc[38]);   /* the top impostor */
    ve_set_free(&s);
}
END_TEST

/* Two folds, scores exact in binary so midpoints are exact too.
 *   fold 0: genuine 0.75, 0.5625; impostor 0.25, 0.625
 *   fold 1: genuine 0.375, 0.875; impostor 0.125, 0.5
 * Test fold 0, train fold 1 (0.125n 0.375p 0.5n 0.875p): accuracy 2,3,2,3,2 of 4 at the
 *   candidates below-all, 0.25, 0.4375, 0.6875, 0.875 -> first max at 0.25. On fold 0 at 0.25
 *   (strict >: impostor 0.25 rejected): 0.75, 0.5625 accepted, 0.625 false accept -> 3/4.
 * Test fold 1, train fold 0 (0.25n 0.5625p 0.625n 0.75p): first max at (0.25+0.5625)/2 =
 *   0.40625. On fold 1: 0.125 ok, 0.375 false reject, 0.5 false accept, 0.875 ok -> 2/4.
 * Mean 0.625, population std 0.125 (sample std would be 0.177), mean threshold 0.328125.
 * With a grid of step 0.125 from -1: fold-0 threshold 0.125 (acc 2/4 on fold 0), fold-1
 *   threshold 0.25 (acc 3/4): mean 0.625, mean threshold 0.1875. */
START_TEST(kfold_hand) {
    const float sc[8] = {0.75f, 0.5625f, 0.25f, 0.625f, 0.375f, 0.875f, 0.125f, 0.5f};
    const int same[8] = {1, 1, 0, 0, 1, 1, 0, 0};
    const int fold[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    ve_set s = build(8, sc, same, fold, VE_MISSING_REJECT);
    mien_err e = {0};
    ve_kfold k;
    ck_assert_msg(ve_kfold_accuracy(&s, NULL, &k, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(k.n_folds, 2);
    ck_assert_double_eq(k.thr[0], 0.25);
    ck_assert_double_eq(k.thr[1], 0.40625);
    ck_assert_double_eq(k.acc[0], 0.75);
    ck_assert_double_eq(k.acc[1], 0.5);
    ck_assert_double_eq(k.acc_mean, 0.625);
    ck_assert_double_eq(k.acc_std, 0.125);
    ck_assert_double_eq(k.thr_mean, 0.328125);

    ve_search g = {0.125, -1.0, 1.0};
    ck_assert_msg(ve_kfold_accuracy(&s, &g, &k, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_double_eq(k.thr[0], 0.125);
    ck_assert_double_eq(k.thr[1], 0.25);
    ck_assert_double_eq(k.acc[0], 0.5);
    ck_assert_double_eq(k.acc[1], 0.75);
    ck_assert_double_eq(k.thr_mean, 0.1875);

    /* All pairs: ascending 0.125n .25n .375p .5n .5625p .625n .75p .875p gives correct
     * counts 4 5 6 5 6 5 6 5 4 at the 9 candidates: 6/8 first at (0.25+0.375)/2. */
    double thr, acc;
    ck_assert_int_eq(ve_best_threshold(&s, NULL, &thr, &acc, &e), MIEN_OK);
    ck_assert_double_eq(thr, 0.3125);
    ck_assert_double_eq(acc, 0.75);
    ve_set_free(&s);

    /* One fold only: no k-fold. A fold with no pairs: refused. */
    ve_set one = build(8, sc, same, NULL, VE_MISSING_REJECT);
    ck_assert_int_eq(ve_kfold_accuracy(&one, NULL, &k, &e), MIEN_EINVAL);
    ve_set_free(&one);
    const int gap[8] = {0, 0, 0, 0, 2, 2, 2, 2};
    ve_set holes = build(8, sc, same, gap, VE_MISSING_REJECT);
    ck_assert_int_eq(ve_kfold_accuracy(&holes, NULL, &k, &e), MIEN_EINVAL);
    ck_assert(strstr(e.msg, "fold 1") != NULL);
    ve_set_free(&holes);
}
END_TEST

START_TEST(tar_at_far_hand) {
    /* 10 impostors, 5 genuine. */
    const float sc[15] = {0.1f, 0.2f,  0.3f,  0.4f,  0.5f,  0.6f, 0.7f, 0.8f,
                          0.9f, 0.95f, 0.5f, 0.75f, 0.85f, 0.92f, 0.99f};
    int same[15];
    for (int i = 0; i < 15; i++) same[i] = i >= 10;
    ve_set s = build(15, sc, same, NULL, VE_MISSING_REJECT);
    mien_err e = {0};
    ve_op op;
    /* far 0.1: k = 1 false accept allowed -> threshold = 2nd highest impostor 0.9; genuine
     * above it: 0.92, 0.99 -> TAR 2/5; one impostor (0.95) above -> FAR 0.1. */
    ck_assert_int_eq(ve_at_far(&s, 0.1, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)0.9f);
    ck_assert_double_eq(op.tar, 0.4);
    ck_assert_double_eq(op.far, 0.1);
    /* far 0.05 and 0: k = 0 -> threshold = top impostor 0.95 -> TAR 1/5. */
    ck_assert_int_eq(ve_at_far(&s, 0.05, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)0.95f);
    ck_assert_double_eq(op.tar, 0.2);
    ck_assert_double_eq(op.far, 0.0);
    ck_assert_int_eq(ve_at_far(&s, 0.0, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.tar, 0.2);
    /* far 0.25: k = 2 -> 0.8 -> 0.85, 0.92, 0.99 -> 3/5. */
    ck_assert_int_eq(ve_at_far(&s, 0.25, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)0.8f);
    ck_assert_double_eq(op.tar, 0.6);
    ck_assert_double_eq(op.far, 0.2);
    /* far 0.3: k = 3 -> the 4th highest impostor. */
    ck_assert_int_eq(ve_at_far(&s, 0.3, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)0.7f);
    ck_assert_double_eq(op.far, 0.3);
    /* far 1: everything accepted. */
    ck_assert_int_eq(ve_at_far(&s, 1.0, &op, &e), MIEN_OK);
    ck_assert(isinf(op.thr) && op.thr < 0);
    ck_assert_double_eq(op.tar, 1.0);
    ck_assert_double_eq(op.far, 1.0);
    ck_assert_int_eq(ve_at_far(&s, 1.5, &op, &e), MIEN_EINVAL);
    ck_assert_int_eq(ve_at_far(&s, NAN, &op, &e), MIEN_EINVAL);
    ve_set_free(&s);

    /* Ties at the threshold: impostors 0.9, 0.9, 0.5; far 1/3 allows 1 false accept, but the
     * two 0.9s go together, so the threshold is 0.9 with none above. Genuine 0.9 is not
     * accepted (strict), 0.95 is. */
    const float t2[5] = {0.9f, 0.9f, 0.5f, 0.9f, 0.95f};
    const int s2[5] = {0, 0, 0, 1, 1};
    ve_set s_t = build(5, t2, s2, NULL, VE_MISSING_REJECT);
    ck_assert_int_eq(ve_at_far(&s_t, 1.0 / 3, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)0.9f);
    ck_assert_double_eq(op.far, 0.0);
    ck_assert_double_eq(op.tar, 0.5);
    ve_set_free(&s_t);

    /* 0.29 * 100 is 28.999999999999996 in doubles; the slack still allows 29 of 100. */
    float sc100[101];
    int sm100[101];
    for (int i = 0; i < 100; i++) {
        sc100[i] = (float)i / 100;
        sm100[i] = 0;
    }
    sc100[100] = 2.0f;
    sm100[100] = 1;
    ve_set s100 = build(101, sc100, sm100, NULL, VE_MISSING_REJECT);
    ck_assert_int_eq(ve_at_far(&s100, 0.29, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)sc100[70]);   /* 30th highest impostor */
    ck_assert_double_eq(op.far, 0.29);
    ve_set_free(&s100);

    /* With 3000 impostors, far 1e-3 allows exactly 3 false accepts. */
    enum { N = 3100 };
    float *sc3 = malloc(N * sizeof *sc3);
    int *sm3 = malloc(N * sizeof *sm3);
    for (int i = 0; i < N; i++) {
        sm3[i] = i >= 3000;
        sc3[i] = sm3[i] ? 0.3f + 0.001f * (float)(i - 3000) : (float)i / 3000.0f * 0.5f;
    }
    ve_set big = build(N, sc3, sm3, NULL, VE_MISSING_REJECT);
    ck_assert_int_eq(ve_at_far(&big, 1e-3, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.thr, (double)sc3[2996]);   /* 4th highest impostor */
    ck_assert_double_eq(op.far, 3.0 / 3000);
    ve_set_free(&big);
    free(sc3);
    free(sm3);
}
END_TEST

START_TEST(auc_ties_mann_whitney) {
    /* Hand case: genuine 0.5, 0.5, 0.75; impostor 0.5, 0.25. U = 0.5+1 + 0.5+1 + 1+1 = 5. */
    const float sc[5] = {0.5f, 0.5f, 0.75f, 0.5f, 0.25f};
    const int same[5] = {1, 1, 1, 0, 0};
    ve_set s = build(5, sc, same, NULL, VE_MISSING_REJECT);
    mien_err e = {0};
    ve_roc roc;
    ck_assert_int_eq(ve_roc_compute(&s, &roc, &e), MIEN_OK);
    ck_assert_int_eq(roc.n, 4);   /* (0,0) + 3 distinct scores */
    ck_assert_double_eq(roc.far[0], 0);
    ck_assert_double_eq(roc.tar[0], 0);
    ck_assert_double_eq(roc.far[roc.n - 1], 1);
    ck_assert_double_eq(roc.tar[roc.n - 1], 1);
    ck_assert_double_eq_tol(ve_roc_auc(&roc), 5.0 / 6, 1e-15);
    ve_roc_free(&roc);
    ve_set_free(&s);

    /* Random sets coarsely quantised so there are many ties, against brute force. */
    rng r = {0x9e3779b97f4a7c15ull};
    for (int trial = 0; trial < 20; trial++) {
        int n = 50 + trial * 37;
        float *x = malloc((size_t)n * sizeof *x);
        int *y = malloc((size_t)n * sizeof *y);
        for (int i = 0; i < n; i++) {
            y[i] = rng_uniform(&r) < 0.4;
            x[i] = (float)(floor((rng_normal(&r) * 0.2 + (y[i] ? 0.3 : 0.0)) * 20) / 20);
        }
        y[0] = 1;
        y[1] = 0;
        ve_set st = build(n, x, y, NULL, VE_MISSING_REJECT);
        ck_assert_int_eq(ve_roc_compute(&st, &roc, &e), MIEN_OK);
        for (int i = 1; i < roc.n; i++) {
            ck_assert(roc.far[i] >= roc.far[i - 1] && roc.tar[i] >= roc.tar[i - 1]);
            ck_assert(roc.thr[i] < roc.thr[i - 1]);
        }
        double a = ve_roc_auc(&roc), b = brute_auc(n, x, y);
        ck_assert_msg(fabs(a - b) < 1e-12, "trial %d: trapezoid %.15f, Mann-Whitney %.15f",
                      trial, a, b);
        ve_roc_free(&roc);
        ve_set_free(&st);
        free(x);
        free(y);
    }
}
END_TEST

START_TEST(eer_hand) {
    /* Genuine 0.9 0.8 0.7 0.3; impostor 0.6 0.5 0.4 0.2. Descending, the ROC goes (0, 0.25)
     * (0, 0.5) (0, 0.75) then (0.25, 0.75) at accept >= 0.6, where FAR = FRR = 0.25: the EER
     * is 0.25, reached at thr 0.6. */
    const float sc[8] = {0.9f, 0.8f, 0.7f, 0.3f, 0.6f, 0.5f, 0.4f, 0.2f};
    const int same[8] = {1, 1, 1, 1, 0, 0, 0, 0};
    ve_set s = build(8, sc, same, NULL, VE_MISSING_REJECT);
    mien_err e = {0};
    ve_roc roc;
    ck_assert_int_eq(ve_roc_compute(&s, &roc, &e), MIEN_OK);
    double thr;
    ck_assert_double_eq_tol(ve_roc_eer(&roc, &thr), 0.25, 1e-15);
    ck_assert_double_eq(thr, (double)0.6f);
    ve_roc_free(&roc);
    ve_set_free(&s);
}
END_TEST

START_TEST(missing_policy) {
    /* Separable 2 folds of 4, one genuine pair missing in fold 0 (NaN) and one impostor pair
     * missing in fold 1 (valid = 0). */
    float sc[8] = {0.8f, NAN, 0.1f, 0.2f, 0.7f, 0.9f, 0.0f, 0.3f};
    const int same[8] = {1, 1, 0, 0, 1, 1, 0, 0};
    const int fold[8] = {0, 0, 0, 0, 1, 1, 1, 1};
    const uint8_t valid[8] = {1, 1, 1, 1, 1, 1, 1, 0};
    mien_err e = {0};
    ve_set s;
    ve_kfold k;
    ve_op op;

    /* REJECT: the missing genuine pair is a false reject (fold 0: 3/4), the missing impostor
     * a correct reject (fold 1: 4/4); every pair counts. */
    ck_assert_int_eq(ve_set_build(&s, 8, sc, valid, same, fold, VE_MISSING_REJECT, &e),
                     MIEN_OK);
    ck_assert_int_eq(s.n, 8);
    ck_assert_int_eq(s.n_missing, 2);
    ck_assert(isinf(s.score[0]) && isinf(s.score[1]));
    ck_assert_int_eq(ve_kfold_accuracy(&s, NULL, &k, &e), MIEN_OK);
    ck_assert_double_eq(k.acc[0], 0.75);
    ck_assert_double_eq(k.acc[1], 1.0);
    ck_assert_int_eq(ve_at_far(&s, 0.0, &op, &e), MIEN_OK);
    ck_assert_double_eq(op.tar, 0.75);   /* 3 of 4 genuine, the missing one never accepted */
    ve_set_free(&s);

    /* EXCLUDE: both dropped, perfect. */
    ck_assert_int_eq(ve_set_build(&s, 8, sc, valid, same, fold, VE_MISSING_EXCLUDE, &e),
                     MIEN_OK);
    ck_assert_int_eq(s.n, 6);
    ck_assert_int_eq(s.n_pos, 3);
    ck_assert_int_eq(s.n_neg, 3);
    ck_assert_int_eq(ve_kfold_accuracy(&s, NULL, &k, &e), MIEN_OK);
    ck_assert_double_eq(k.acc_mean, 1.0);
    ve_set_free(&s);

    /* Bad input. */
    sc[1] = INFINITY;
    ck_assert_int_eq(ve_set_build(&s, 8, sc, NULL, same, fold, VE_MISSING_REJECT, &e),
                     MIEN_EINVAL);
    sc[1] = 0.5f;
    const int bad_same[2] = {1, 2};
    ck_assert_int_eq(ve_set_build(&s, 2, sc, NULL, bad_same, NULL, VE_MISSING_REJECT, &e),
                     MIEN_EINVAL);
    const int all_pos[2] = {1, 1};
    ck_assert_int_eq(ve_set_build(&s, 2, sc, NULL, all_pos, NULL, VE_MISSING_REJECT, &e),
                     MIEN_OK);
    ve_roc roc;
    ck_assert_int_eq(ve_roc_compute(&s, &roc, &e), MIEN_EINVAL);
    ck_assert_int_eq(ve_at_far(&s, 0.1, &op, &e), MIEN_EINVAL);
    ve_set_free(&s);
}
END_TEST

/* ==== Against the numpy reference ==== */

typedef struct ref_vals { char key[64]; double v; } ref_vals;

static double ref_get(const ref_vals *r, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].key, key) == 0) return r[i].v;
    ck_abort_msg("reference output lacks %s", key);
    return NAN;
}

/* Count pairs of fold `fold` (any fold when -1) with a score in (min(a,b), max(a,b)]: the
 * pairs on which thresholds a and b decide differently. */
static int between(const ve_set *s, int fold, double a, double b) {
    double lo = a < b ? a : b, hi = a < b ? b : a;
    int c = 0;
    for (int i = 0; i < s->n; i++)
        if ((fold < 0 || s->fold[i] == fold) && s->score[i] > lo && s->score[i] <= hi) c++;
    return c;
}

/* 6000 pairs in 10 folds of 300 + 300, as LFW, with 1% missing. Scores are quantised to
 * k * 0.001 + 0.0005 in [-0.8995, 0.8995]: half-way between points of the insightface grid
 * np.arange(-1, 1, 0.001), and far (0.0005) from all of them, so float rounding cannot put a
 * score on the other side of a grid threshold in one program than in the other. */
static void make_scores(float *sc, int *same, int *fold, int n) {
    rng r = {0x243f6a8885a308d3ull};
    for (int i = 0; i < n; i++) {
        fold[i] = i / 600;
        same[i] = i % 600 < 300;
        double x = same[i] ? 0.42 + 0.16 * rng_normal(&r) : 0.06 + 0.12 * rng_normal(&r);
        double q = floor(x * 1000) / 1000 + 0.0005;
        if (q > 0.8995) q = 0.8995;
        if (q < -0.8995) q = -0.8995;
        sc[i] = (float)q;
        if (rng_uniform(&r) < 0.01) sc[i] = NAN;
    }
}

static void check_policy(ve_missing policy) {
    enum { N = 6000 };
    static float sc[N];
    static int same[N], fold[N];
    make_scores(sc, same, fold, N);
    const char *tsv = tu_temp_file(".tsv", "", 0);
    FILE *f = fopen(tsv, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < N; i++) fprintf(f, "%.9g\t%d\t%d\n", sc[i], same[i], fold[i]);
    fclose(f);

    /* The reference must run: no numpy is a failure, not a skip. */
    char *out = NULL;
    int rc = tu_python(tu_path("tools/ref_verify_metrics.py %s --missing %s", tsv,
                               policy == VE_MISSING_REJECT ? "reject" : "exclude"),
                       0, &out);
    remove(tsv);
    ck_assert_msg(rc == 0, "tools/ref_verify_metrics.py (needs /usr/bin/python3 with numpy) "
                           "exited %d:\n%s", rc, out ? out : "");
    ref_vals ref[128];
    int n_ref = 0;
    for (char *line = strtok(out, "\n"); line && n_ref < 128; line = strtok(NULL, "\n"))
        if (sscanf(line, "%63s %lf", ref[n_ref].key, &ref[n_ref].v) == 2) n_ref++;
    free(out);

    ve_set s = build(N, sc, same, fold, policy);
    ck_assert_double_eq(ref_get(ref, n_ref, "n_pairs"), s.n);
    mien_err e = {0};

    /* Same grid as the reference: the same partition of every fold is chosen, so accuracies
     * are equal counts over equal denominators and thresholds are the same doubles. The only
     * slack is for summing/dividing in a different order: 1e-12. */
    ve_search grid;
    ve_search_insightface(&grid);
    ve_kfold kg;
    ck_assert_msg(ve_kfold_accuracy(&s, &grid, &kg, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(kg.n_folds, 10);
    char key[32];
    for (int k = 0; k < 10; k++) {
        snprintf(key, sizeof key, "acc_%d", k);
        ck_assert_double_eq_tol(kg.acc[k], ref_get(ref, n_ref, key), 1e-12);
        snprintf(key, sizeof key, "thr_%d", k);
        ck_assert_double_eq_tol(kg.thr[k], ref_get(ref, n_ref, key), 1e-12);
    }
    ck_assert_double_eq_tol(kg.acc_mean, ref_get(ref, n_ref, "acc_mean"), 1e-12);
    ck_assert_double_eq_tol(kg.acc_std, ref_get(ref, n_ref, "acc_std"), 1e-12);
    ck_assert_double_eq_tol(kg.thr_mean, ref_get(ref, n_ref, "thr_mean"), 1e-12);
    double bt, ba;
    ck_assert_int_eq(ve_best_threshold(&s, &grid, &bt, &ba, &e), MIEN_OK);
    ck_assert_double_eq_tol(bt, ref_get(ref, n_ref, "best_thr"), 1e-12);
    ck_assert_double_eq_tol(ba, ref_get(ref, n_ref, "best_acc"), 1e-12);

    /* Exact midpoints: the scores sit half-way between grid points, so every partition of the
     * training scores is reachable by both searches and both pick the first best one: no
     * training score lies between the two thresholds. On the held-out fold they can still
     * disagree on a test score that falls inside that training gap; the accuracy tolerance
     * is exactly the number of such test scores over the fold size (usually 0). */
    ve_kfold kx;
    ck_assert_int_eq(ve_kfold_accuracy(&s, NULL, &kx, &e), MIEN_OK);
    double tol_sum = 0;
    for (int k = 0; k < 10; k++) {
        int train_between = between(&s, -1, kx.thr[k], kg.thr[k]) -
                            between(&s, k, kx.thr[k], kg.thr[k]);
        ck_assert_msg(train_between == 0, "fold %d: exact %.6f and grid %.6f split training "
                      "pairs differently", k, kx.thr[k], kg.thr[k]);
        int n_k = 0;
        for (int i = 0; i < s.n; i++) n_k += s.fold[i] == k;
        double tol = (double)between(&s, k, kx.thr[k], kg.thr[k]) / n_k + 1e-12;
        ck_assert_msg(fabs(kx.acc[k] - kg.acc[k]) <= tol, "fold %d: exact %.6f grid %.6f",
                      k, kx.acc[k], kg.acc[k]);
        tol_sum += tol;
    }
    ck_assert_double_eq_tol(kx.acc_mean, kg.acc_mean, tol_sum / 10 + 1e-12);

    /* TAR@FAR, AUC, EER: computed in different ways there, so only rounding separates them. */
    static const struct { double far; const char *name; } fars[] = {{1e-3, "1e-3"},
                                                                     {1e-2, "1e-2"}};
    for (int i = 0; i < 2; i++) {
        ve_op op;
        ck_assert_int_eq(ve_at_far(&s, fars[i].far, &op, &e), MIEN_OK);
        snprintf(key, sizeof key, "thr_far_%s", fars[i].name);
        ck_assert_double_eq_tol(op.thr, ref_get(ref, n_ref, key), 1e-12);
        snprintf(key, sizeof key, "tar_far_%s", fars[i].name);
        ck_assert_double_eq_tol(op.tar, ref_get(ref, n_ref, key), 1e-12);
        snprintf(key, sizeof key, "far_far_%s", fars[i].name);
        ck_assert_double_eq_tol(op.far, ref_get(ref, n_ref, key), 1e-12);
    }
    ve_roc roc;
    ck_assert_int_eq(ve_roc_compute(&s, &roc, &e), MIEN_OK);
    ck_assert_double_eq_tol(ve_roc_auc(&roc), ref_get(ref, n_ref, "auc"), 1e-12);
    ck_assert_double_eq_tol(ve_roc_eer(&roc, NULL), ref_get(ref, n_ref, "eer"), 1e-12);
    ve_roc_free(&roc);
    /* A sanity anchor so a broken generator cannot make everything trivially agree. */
    ck_assert(kg.acc_mean > 0.85 && kg.acc_mean < 0.99);
    ve_set_free(&s);
}

START_TEST(python_reference_reject) { check_policy(VE_MISSING_REJECT); }
END_TEST

START_TEST(python_reference_exclude) { check_policy(VE_MISSING_EXCLUDE); }
END_TEST

/* ==== Plot ==== */

START_TEST(roc_plot) {
    enum { N = 6000 };
    static float sc[N];
    static int same[N], fold[N];
    make_scores(sc, same, fold, N);
    ve_set a = build(N, sc, same, fold, VE_MISSING_REJECT);
    /* A better "model": the same scores pushed apart. */
    for (int i = 0; i < N; i++) sc[i] = same[i] ? sc[i] + 0.25f : sc[i] - 0.1f;
    ve_set b = build(N, sc, same, fold, VE_MISSING_EXCLUDE);
    mien_err e = {0};
    ve_roc ra, rb;
    ck_assert_int_eq(ve_roc_compute(&a, &ra, &e), MIEN_OK);
    ck_assert_int_eq(ve_roc_compute(&b, &rb, &e), MIEN_OK);
    ve_curve curves[2] = {{"weak", &ra}, {"strong (missing excluded)", &rb}};
    const char *png = "/tmp/mien-test-roc.png";
    ck_assert_msg(ve_plot_roc(png, curves, 2, "ROC on synthetic LFW-like scores", &e) ==
                      MIEN_OK, "%s", e.msg);
    mien_image img = {0};
    ck_assert_msg(img_load(png, NULL, &img, NULL, NULL, &e) == MIEN_OK, "%s", e.msg);
    ck_assert_int_eq(img.width, 800);
    ck_assert_int_eq(img.height, 600);
    /* Both curve colours were drawn, and the background is white. */
    int seen[2] = {0, 0};
    for (int i = 0; i < 800 * 600; i++) {
        const uint8_t *p = img.rgb + 3 * i;
        seen[0] += p[0] == 31 && p[1] == 119 && p[2] == 180;
        seen[1] += p[0] == 214 && p[1] == 39 && p[2] == 40;
    }
    ck_assert_msg(seen[0] > 200 && seen[1] > 200, "curve pixels %d %d", seen[0], seen[1]);
    ck_assert(img.rgb[3 * (5 * 800 + 795)] == 255);
    mien_image_free(&img);
    ck_assert_int_eq(ve_plot_roc(png, curves, 0, NULL, &e), MIEN_EINVAL);
    ve_roc_free(&ra);
    ve_roc_free(&rb);
    ve_set_free(&a);
    ve_set_free(&b);
}
END_TEST

/* ==== Detection, identification, clustering (hand-worked) ==== */

START_TEST(detection_ap_hand) {
    /* One photo: faces A and B, and a 10 px face (don't-care at min_size 20). */
    char text[] = "a.jpg\n3\n0 0 40 40 0 0 0 0 0 0\n100 0 40 40 0 0 0 0 0 0\n200 0 10 10 0 0 0 0 0 0\n";
    de_set g = {0};
    mien_err e = {0};
    ck_assert_int_eq(de_gt_parse(text, "t", 20, &g, &e), MIEN_OK);
    ck_assert_int_eq(g.n, 1);
    ck_assert_int_eq(g.img[0].n, 3);
    /* By score: A (right), nothing (wrong), B (right, under the operating score), the
     * don't-care face (counts neither way). */
    de_det d[4] = {{0, 0.7f, {100, 0, 40, 40}}, {0, 0.9f, {1, 1, 40, 40}},
                   {0, 0.6f, {200, 0, 10, 10}}, {0, 0.8f, {300, 300, 40, 40}}};
    de_result r;
    de_evaluate(&g, d, 4, 0.5f, 0.75f, &r);
    /* Precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: made monotone 1, 2/3, 2/3; AP = 1/2 + 1/3. */
    ck_assert_int_eq(r.n_care, 2);
    ck_assert(fabs(r.ap - 5.0 / 6.0) < 1e-12);
    ck_assert_int_eq(r.tp, 1);
    ck_assert_int_eq(r.fp, 1);
    ck_assert(fabs(r.precision - 0.5) < 1e-12 && fabs(r.recall - 0.5) < 1e-12);
    de_set_free(&g);
    /* dlib's XML: the ignore attribute makes a face don't-care. */
    char xml[] = "<images><image file='b.jpg'><box top='0' left='0' width='50' height='50'/>"
                 "<box top='0' left='60' width='50' height='50' ignore='1'/></image></images>";
    de_set x = {0};
    ck_assert_int_eq(de_gt_parse(xml, "x", 20, &x, &e), MIEN_OK);
    ck_assert_int_eq(x.n, 1);
    ck_assert_int_eq(x.img[0].n, 2);
    ck_assert(x.img[0].box[0].care && !x.img[0].box[1].care);
    de_set_free(&x);
    char bad[] = "a.jpg\nmany\n";
    de_set y = {0};
    ck_assert_int_eq(de_gt_parse(bad, "bad", 20, &y, &e), MIEN_EFORMAT);
    de_set_free(&y);
}
END_TEST

START_TEST(identification_hand) {
    /* Genuine: right 0.9, right 0.5, wrong 0.8, no face; distractors: 0.6, no face. */
    const ie_probe p[6] = {{1, 1, 1, 0.9f}, {1, 1, 1, 0.5f}, {1, 1, 0, 0.8f},
                           {1, 0, 0, 0}, {0, 1, 0, 0.6f}, {0, 0, 0, 0}};
    ie_result r;
    mien_err e = {0};
    ck_assert_int_eq(ie_identify(p, 6, 0.7f, &r, &e), MIEN_OK);
    ck_assert_int_eq(r.n_genuine, 4);
    ck_assert_int_eq(r.n_distractor, 2);
    ck_assert_int_eq(r.rank1, 2);
    ck_assert_int_eq(r.dir, 1);
    ck_assert_int_eq(r.wrong, 1);
    ck_assert_int_eq(r.fa, 0);
    /* FAR 1e-2 of two distractors: none accepted, so above 0.6; one genuine (0.9) passes. */
    ck_assert(fabs(r.at_far_1e2.tar - 0.25) < 1e-12);
    ck_assert_int_eq(ie_identify(p, 4, 0.7f, &r, &e), MIEN_EINVAL); /* no distractor */
}
END_TEST

START_TEST(clustering_hand) {
    /* Clusters {p0, p0} and {p0, p1, p1}: 4 pairs together, 2 of them the same person;
     * p0's 3 pairs and p1's 1 are the same-person pairs. */
    const int labels[5] = {0, 0, 1, 1, 1}, person[5] = {0, 0, 0, 1, 1};
    ie_cluster_score sc;
    ck_assert_int_eq(ie_cluster_pairs(labels, 2, person, 5, 2, &sc), MIEN_OK);
    ck_assert_int_eq(sc.clusters, 2);
    ck_assert_int_eq(sc.singletons, 0);
    ck_assert(fabs(sc.precision - 0.5) < 1e-12 && fabs(sc.recall - 0.5) < 1e-12 &&
              fabs(sc.f1 - 0.5) < 1e-12);
    const int one[3] = {0, 1, 2}, who[3] = {0, 0, 1};
    ck_assert_int_eq(ie_cluster_pairs(one, 3, who, 3, 2, &sc), MIEN_OK);
    ck_assert_int_eq(sc.singletons, 3);
    ck_assert(sc.precision == 1 && sc.recall == 0 && sc.f1 == 0);
}
END_TEST

Suite *suite_verify_eval(void) {
    Suite *s = suite_create("verify_eval");
    TCase *t = tcase_create("verify_eval");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, lfw_pairs_real);
    tcase_add_test(t, generic_pairs);
    tcase_add_test(t, malformed_pairs);
    tcase_add_test(t, pairs_mutations);
    tcase_add_test(t, separable);
    tcase_add_test(t, kfold_hand);
    tcase_add_test(t, tar_at_far_hand);
    tcase_add_test(t, auc_ties_mann_whitney);
    tcase_add_test(t, eer_hand);
    tcase_add_test(t, missing_policy);
    tcase_add_test(t, python_reference_reject);
    tcase_add_test(t, python_reference_exclude);
    tcase_add_test(t, roc_plot);
    tcase_add_test(t, detection_ap_hand);
    tcase_add_test(t, identification_hand);
    tcase_add_test(t, clustering_hand);
    suite_add_tcase(s, t);
    return s;
}
