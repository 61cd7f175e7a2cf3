/* Face verification evaluation: pairs files, LFW-protocol k-fold accuracy, TAR@FAR, ROC, AUC,
 * EER, and a ROC plot.
 *
 * The flow: load the pairs (ve_pairs_load), score every pair with the embedder (the caller's
 * job: cosine similarity, higher = more alike, NaN or valid[i] = 0 where no face was found),
 * then build a ve_set once (ve_set_build sorts the scores, O(n log n)) and ask it for metrics.
 * Every metric after the build is a linear scan of the sorted scores.
 *
 * Decision rule, everywhere: a pair is accepted as "same person" iff score > threshold
 * (strictly). A pair whose score equals the threshold is rejected.
 *
 * Missing pairs (no face found in one of the two images) follow an explicit policy chosen when
 * the set is built, see ve_missing. */
#ifndef MIEN_EVAL_VERIFY_EVAL_H
#define MIEN_EVAL_VERIFY_EVAL_H

#include "core/err.h"

#include <stdint.h>

/* Folds are small integers; a pairs file or score set naming fold >= VE_MAX_FOLDS is refused.
 * (LFW has 10.) */
#define VE_MAX_FOLDS 100

/* ==== Pairs files ==== */

typedef struct ve_pair {
    char *a;     /* first image, path relative to the data root (owned) */
    char *b;     /* second image, relative path (owned) */
    int same;    /* 1: same person (genuine pair), 0: different people (impostor pair) */
    int fold;    /* 0 .. n_folds-1 */
} ve_pair;

typedef struct ve_pairs {
    ve_pair *v;   /* (n,) in file order */
    int n;        /* number of pairs */
    int n_folds;  /* LFW: from the header; generic: largest fold + 1 */
} ve_pairs;

/* Parse a pairs file. Two formats, told apart by the first line:
 *
 *   LFW View 2 (first line is two integers "n_folds<ws>n_per_class", e.g. "10\t300"): then,
 *   for each fold, n_per_class matched lines "name idx1 idx2" followed by n_per_class
 *   mismatched lines "name1 idx1 name2 idx2" (fields separated by tabs or spaces). Image
 *   paths become "name/name_%04d.jpg"; the fold is the block index. The line count must be
 *   exact (trailing blank lines are allowed).
 *
 *   Generic: one pair per line "pathA<TAB>pathB<TAB>label<TAB>fold", label 1 = same person,
 *   0 = different; fold an integer 0 .. VE_MAX_FOLDS-1. Blank lines and lines starting with
 *   '#' are ignored. Paths may contain spaces, not tabs.
 *
 * Any bad line fails the whole load with MIEN_EFORMAT and "file:line: reason" in e. *out is
 * zeroed on failure. Paths are stored as written (relative); the caller joins the root. */
int ve_pairs_load(const char *path, ve_pairs *out, mien_err *e);

/* The same from memory; name is used in messages only. text need not be NUL-terminated. */
int ve_pairs_parse(const char *text, size_t len, const char *name, ve_pairs *out,
                   mien_err *e);

/* Free what ve_pairs_load filled; leaves *p zeroed. NULL or a zeroed struct is fine. */
void ve_pairs_free(ve_pairs *p);

/* ==== Score sets ==== */

/* What to do with a missing pair (score NaN, or valid[i] == 0).
 *
 * VE_MISSING_REJECT counts it as a "different" decision at every threshold: its score becomes
 * -inf, so it is rejected by every finite threshold. A missing genuine pair is a false reject,
 * a missing impostor pair a correct reject, and every pair stays in the denominators. This is
 * the honest choice for comparing with published LFW numbers, which are over all 6000 pairs.
 * On the ROC such pairs tie at -inf and are only reached by the final (1, 1) point.
 *
 * VE_MISSING_EXCLUDE drops missing pairs from every metric (the denominators shrink). It
 * measures the embedder alone, given that a face was found. */
typedef enum ve_missing {
    VE_MISSING_REJECT = 0,
    VE_MISSING_EXCLUDE = 1
} ve_missing;

/* Scores sorted once, with their labels and folds. Build with ve_set_build, free with
 * ve_set_free. */
typedef struct ve_set {
    int n;            /* pairs kept (all of them under REJECT) */
    int n_pos;        /* genuine pairs kept */
    int n_neg;        /* impostor pairs kept */
    int n_missing;    /* missing pairs in the input (kept at -inf or dropped, per policy) */
    int n_folds;      /* largest fold + 1 over the input (0 when n == 0) */
    ve_missing policy;
    double *score;    /* (n,) ascending; -INFINITY for missing pairs under REJECT */
    uint8_t *same;    /* (n,) 1 genuine, 0 impostor, aligned with score */
    int *fold;        /* (n,) fold of each, aligned with score */
} ve_set;

/* Build a set from n pairs.
 *   score  (n,) cosine similarity; NaN = missing. +-inf is refused (MIEN_EINVAL).
 *   valid  (n,) or NULL; valid[i] == 0 marks pair i missing whatever its score.
 *   same   (n,) 1 or 0 (anything else: MIEN_EINVAL).
 *   fold   (n,) or NULL (all fold 0); each in 0 .. VE_MAX_FOLDS-1.
 * Sorting is by score, ties by input index, so every result is deterministic. */
int ve_set_build(ve_set *s, int n, const float *score, const uint8_t *valid, const int *same,
                 const int *fold, ve_missing policy, mien_err *e);
void ve_set_free(ve_set *s);

/* ==== Threshold search and k-fold accuracy ==== */

/* How the accuracy-maximising threshold is searched.
 *
 * grid_step == 0 (the default): exact. The candidates are every midpoint between consecutive
 * distinct finite scores of the training pairs, plus one just below the lowest (accept all:
 * nextafter(lowest, -inf)) and the highest itself (reject all). Every partition of the
 * training scores that a threshold can make is tried once.
 *
 * grid_step > 0: the thresholds grid_lo + j * delta for j = 0 .. ceil((grid_hi - grid_lo) /
 * grid_step) - 1, with delta = (grid_lo + grid_step) - grid_lo, which is exactly what
 * numpy.arange(grid_lo, grid_hi, grid_step) holds. insightface's LFW evaluation on cosine
 * similarity is the grid (-1, 1, 0.001).
 *
 * Either way, ties in training accuracy go to the smallest threshold (numpy.argmax's first
 * maximum, as insightface). */
typedef struct ve_search {
    double grid_step;  /* 0: exact midpoints; > 0: grid */
    double grid_lo;    /* first grid threshold (grid only) */
    double grid_hi;    /* grid end, exclusive (grid only) */
} ve_search;

/* Exact search: {0, 0, 0}. The insightface grid: {0.001, -1, 1}. */
void ve_search_default(ve_search *o);
void ve_search_insightface(ve_search *o);

typedef struct ve_kfold {
    int n_folds;
    double acc[VE_MAX_FOLDS];   /* (n_folds,) accuracy on each held-out fold */
    double thr[VE_MAX_FOLDS];   /* (n_folds,) threshold chosen on the other folds */
    double acc_mean;            /* mean of acc */
    double acc_std;             /* POPULATION standard deviation of acc (divides by n_folds,
                                 * as numpy.std in sklearn/insightface LFW code) */
    double thr_mean;            /* mean of thr */
} ve_kfold;

/* The LFW protocol: for each fold k, choose the threshold maximising accuracy on the pairs of
 * every other fold (per o; NULL = exact), then measure accuracy on fold k at that threshold.
 * Needs n_folds >= 2 with every fold 0 .. n_folds-1 non-empty (MIEN_EINVAL otherwise).
 * Cost: O(n) per fold (plus O(grid) per fold with a grid). */
int ve_kfold_accuracy(const ve_set *s, const ve_search *o, ve_kfold *out, mien_err *e);

/* The accuracy-maximising threshold over all pairs (to set a default), and that accuracy.
 * Search per o (NULL = exact), ties to the smallest threshold. thr or acc may be NULL. */
int ve_best_threshold(const ve_set *s, const ve_search *o, double *thr, double *acc,
                      mien_err *e);

/* ==== Operating points, ROC, AUC, EER ==== */

typedef struct ve_op {
    double thr;   /* accept iff score > thr */
    double tar;   /* true accept rate: genuine pairs with score > thr / n_pos */
    double far;   /* false accept rate actually reached: impostors with score > thr / n_neg */
} ve_op;

/* The operating point for a target false accept rate far (0 <= far <= 1). With
 * k = floor(far * n_neg) (computed with a 1e-9 relative slack so that 1e-3 * 3000 is 3), the
 * threshold is the smallest t with at most k impostor scores above t: the (k+1)-th largest
 * impostor score (ties included), or -inf when k >= n_neg. No interpolation: the empirical
 * step function, so out->far <= far always and 3000 impostors at far 1e-3 allow at most 3
 * false accepts. TAR@FAR is out->tar. Needs n_pos > 0 and n_neg > 0. */
int ve_at_far(const ve_set *s, double far, ve_op *out, mien_err *e);

/* The ROC at every distinct score: point i accepts the pairs with score >= thr[i]. Point 0 is
 * (0, 0) with thr +inf; the last is (1, 1) (for REJECT sets with missing pairs, thr -inf).
 * far is non-decreasing, tar non-decreasing. */
typedef struct ve_roc {
    int n;         /* number of points */
    double *far;   /* (n,) false accept rate */
    double *tar;   /* (n,) true accept rate */
    double *thr;   /* (n,) accept score >= thr[i] */
} ve_roc;

/* Needs n_pos > 0 and n_neg > 0. Free with ve_roc_free. */
int ve_roc_compute(const ve_set *s, ve_roc *out, mien_err *e);
void ve_roc_free(ve_roc *r);

/* Area under the ROC by the trapezoid rule. Because tied scores form one diagonal step, this
 * equals the Mann-Whitney statistic U / (n_pos * n_neg): the probability that a random
 * genuine pair outscores a random impostor pair, ties counted 1/2. */
double ve_roc_auc(const ve_roc *r);

/* Equal error rate: where FAR = FRR (= 1 - TAR), by linear interpolation along the ROC
 * segment that crosses FAR - FRR = 0. thr (may be NULL) receives thr[] of the segment's upper
 * end (the score group at which the crossing happens). */
double ve_roc_eer(const ve_roc *r, double *thr);

/* ==== Everything at once ==== */

typedef struct ve_report {
    int n;            /* pairs counted */
    int n_pos, n_neg;
    int n_missing;
    ve_kfold kfold;   /* LFW 10-fold accuracy (zeroed when the set has fewer than 2 folds) */
    double best_thr;  /* ve_best_threshold over all pairs */
    double best_acc;
    ve_op at_far_1e3; /* ve_at_far(1e-3) */
    ve_op at_far_1e4; /* ve_at_far(1e-4) */
    double auc;
    double eer;
    double eer_thr;
} ve_report;

/* Every metric above; the k-fold part is skipped (zeroed) when s->n_folds < 2. */
int ve_evaluate(const ve_set *s, const ve_search *o, ve_report *out, mien_err *e);

/* ==== ROC plot ==== */

typedef struct ve_curve {
    const char *name;     /* legend label, e.g. "mobilefacenet" */
    const ve_roc *roc;    /* the curve (its AUC is computed for the legend) */
} ve_curve;

/* Draw 1..8 ROC curves into an 800x600 RGB PNG: FAR on a log10 x axis from 1e-4 to 1, TAR on
 * the y axis from 0.9 (or lower: the lowest TAR at FAR 1e-4 over the curves, rounded down to
 * a multiple of 0.1) to 1, with grid, tick labels, a legend of names and AUCs, and the title
 * (may be NULL). */
int ve_plot_roc(const char *png_path, const ve_curve *curves, int n_curves, const char *title,
                mien_err *e);
/* Same, with the axes named (x_name: the false accept rate's, y_name: the true accept
 * rate's), e.g. an anti-spoofing ROC's APCER and 1 - BPCER. */
int ve_plot_roc_axes(const char *png_path, const ve_curve *curves, int n_curves, const char *title,
                     const char *x_name, const char *y_name, mien_err *e);

#endif
