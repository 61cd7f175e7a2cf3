/* Face verification evaluation: pairs files, k-fold accuracy, TAR@FAR, ROC, AUC, EER, plot.
 * See verify_eval.h for the definitions; the comments here say how and why. */
#include "eval/verify_eval.h"

#include "image/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pairs files bigger than this are refused (LFW's is 100 KB). */
#define VE_MAX_FILE_BYTES ((size_t)256 << 20)
/* Refuse pair counts that would not fit an int index comfortably. */
#define VE_MAX_PAIRS 50000000

/* ==== Pairs files ==== */

void ve_pairs_free(ve_pairs *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        free(p->v[i].a);
        free(p->v[i].b);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* A cursor over the lines of a buffer. Lines end at '\n'; a '\r' before it is dropped so
 * files written on Windows parse too. */
typedef struct line_iter {
    const char *p, *end;
    int lineno;          /* 1-based number of the line last returned */
} line_iter;

static int next_line(line_iter *it, const char **s, size_t *len) {
    if (it->p >= it->end) return 0;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *stop = nl ? nl : it->end;
    *s = it->p;
    *len = (size_t)(stop - it->p);
    if (*len && (*s)[*len - 1] == '\r') (*len)--;
    it->p = nl ? nl + 1 : it->end;
    it->lineno++;
    return 1;
}

static int is_blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

#define MAX_FIELDS 5

typedef struct field { const char *s; size_t len; } field;

/* Split on runs of spaces and tabs (LFW). Returns the number of fields, at most MAX_FIELDS;
 * one more than MAX_FIELDS means "too many". */
static int split_ws(const char *s, size_t len, field *f) {
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i == len) break;
        size_t st = i;
        while (i < len && s[i] != ' ' && s[i] != '\t') i++;
        if (n == MAX_FIELDS) return MAX_FIELDS + 1;
        f[n].s = s + st;
        f[n].len = i - st;
        n++;
    }
    return n;
}

/* Split on single tabs (generic format: paths may hold spaces; empty fields are kept, and
 * refused by the caller). */
static int split_tab(const char *s, size_t len, field *f) {
    int n = 0;
    size_t st = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '\t') {
            if (n == MAX_FIELDS) return MAX_FIELDS + 1;
            f[n].s = s + st;
            f[n].len = i - st;
            n++;
            st = i + 1;
        }
    }
    return n;
}

/* Strict decimal: digits only, no sign, no spaces, value in [lo, hi]. */
static int parse_int(const field *f, long lo, long hi, long *out) {
    if (f->len == 0 || f->len > 9) return 0;
    long v = 0;
    for (size_t i = 0; i < f->len; i++) {
        if (f->s[i] < '0' || f->s[i] > '9') return 0;
        v = v * 10 + (f->s[i] - '0');
    }
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

/* An LFW person name becomes a folder name: refuse anything that could leave the root. */
static int lfw_name_ok(const field *f) {
    if (f->len == 0 || f->len > 255) return 0;
    if (f->s[0] == '.') return 0;
    for (size_t i = 0; i < f->len; i++) {
        unsigned char c = (unsigned char)f->s[i];
        if (c == '/' || c == '\\' || c < 32 || c == 127) return 0;
    }
    return 1;
}

static char *lfw_path(const field *name, long idx) {
    size_t cap = 2 * name->len + 16;
    char *p = malloc(cap);
    if (p)
        snprintf(p, cap, "%.*s/%.*s_%04ld.jpg", (int)name->len, name->s, (int)name->len,
                 name->s, idx);
    return p;
}

static char *dup_field(const field *f) {
    char *p = malloc(f->len + 1);
    if (p) {
        memcpy(p, f->s, f->len);
        p[f->len] = '\0';
    }
    return p;
}

/* Append one pair, growing the array geometrically. Takes ownership of a and b. */
static int push_pair(ve_pairs *out, int *cap, char *a, char *b, int same, int fold,
                     mien_err *e) {
    if (!a || !b) goto nomem;
    if (out->n == *cap) {
        int ncap = *cap ? *cap * 2 : 1024;
        ve_pair *nv = realloc(out->v, (size_t)ncap * sizeof *nv);
        if (!nv) goto nomem;
        out->v = nv;
        *cap = ncap;
    }
    out->v[out->n++] = (ve_pair){a, b, same, fold};
    return MIEN_OK;
nomem:
    free(a);
    free(b);
    return mien_err_set(e, MIEN_ENOMEM, "out of memory reading pairs");
}

static int parse_lfw(line_iter *it, const char *name, long n_folds, long n_per, ve_pairs *out,
                     mien_err *e) {
    int cap = 0;
    field f[MAX_FIELDS];
    const char *s;
    size_t len;
    for (long fold = 0; fold < n_folds; fold++) {
        for (long k = 0; k < 2 * n_per; k++) {
            int matched = k < n_per;
            if (!next_line(it, &s, &len))
                return mien_err_set(e, MIEN_EFORMAT,
                                    "%s:%d: unexpected end of file: expected %ld pairs "
                                    "(%ld folds of %ld matched + %ld mismatched), found %d",
                                    name, it->lineno + 1, n_folds * 2 * n_per, n_folds, n_per,
                                    n_per, out->n);
            int nf = split_ws(s, len, f);
            long i1, i2;
            int rc;
            if (matched) {
                if (nf != 3)
                    return mien_err_set(e, MIEN_EFORMAT,
                                        "%s:%d: expected a matched pair \"name idx1 idx2\" "
                                        "(fold %ld, pair %ld), got %d fields",
                                        name, it->lineno, fold, k, nf);
                if (!lfw_name_ok(&f[0]))
                    return mien_err_set(e, MIEN_EFORMAT, "%s:%d: bad person name", name,
                                        it->lineno);
                if (!parse_int(&f[1], 1, 9999, &i1) || !parse_int(&f[2], 1, 9999, &i2))
                    return mien_err_set(e, MIEN_EFORMAT,
                                        "%s:%d: image index must be an integer 1..9999", name,
                                        it->lineno);
                rc = push_pair(out, &cap, lfw_path(&f[0], i1), lfw_path(&f[0], i2), 1,
                               (int)fold, e);
            } else {
                if (nf != 4)
                    return mien_err_set(e, MIEN_EFORMAT,
                                        "%s:%d: expected a mismatched pair \"name1 idx1 name2 "
                                        "idx2\" (fold %ld, pair %ld), got %d fields",
                                        name, it->lineno, fold, k, nf);
                if (!lfw_name_ok(&f[0]) || !lfw_name_ok(&f[2]))
                    return mien_err_set(e, MIEN_EFORMAT, "%s:%d: bad person name", name,
                                        it->lineno);
                if (!parse_int(&f[1], 1, 9999, &i1) || !parse_int(&f[3], 1, 9999, &i2))
                    return mien_err_set(e, MIEN_EFORMAT,
                                        "%s:%d: image index must be an integer 1..9999", name,
                                        it->lineno);
                rc = push_pair(out, &cap, lfw_path(&f[0], i1), lfw_path(&f[2], i2), 0,
                               (int)fold, e);
            }
            if (rc) return rc;
        }
    }
    /* Only blank lines may follow the last block. */
    while (next_line(it, &s, &len))
        if (!is_blank(s, len))
            return mien_err_set(e, MIEN_EFORMAT,
                                "%s:%d: extra line after the %ld pairs the header announced",
                                name, it->lineno, n_folds * 2 * n_per);
    out->n_folds = (int)n_folds;
    return MIEN_OK;
}

static int parse_generic(line_iter *it, const char *name, ve_pairs *out, mien_err *e) {
    int cap = 0, max_fold = -1;
    field f[MAX_FIELDS];
    const char *s;
    size_t len;
    while (next_line(it, &s, &len)) {
        if (is_blank(s, len) || s[0] == '#') continue;
        int nf = split_tab(s, len, f);
        if (nf != 4)
            return mien_err_set(e, MIEN_EFORMAT,
                                "%s:%d: expected 4 tab-separated fields \"pathA pathB "
                                "label fold\", got %d",
                                name, it->lineno, nf);
        if (f[0].len == 0 || f[1].len == 0)
            return mien_err_set(e, MIEN_EFORMAT, "%s:%d: empty image path", name, it->lineno);
        for (int k = 0; k < 2; k++)
            if (memchr(f[k].s, '\0', f[k].len))
                return mien_err_set(e, MIEN_EFORMAT, "%s:%d: NUL byte in a path", name,
                                    it->lineno);
        long label, fold;
        if (!parse_int(&f[2], 0, 1, &label))
            return mien_err_set(e, MIEN_EFORMAT, "%s:%d: label must be 0 or 1, got \"%.*s\"",
                                name, it->lineno, (int)(f[2].len > 32 ? 32 : f[2].len),
                                f[2].s);
        if (!parse_int(&f[3], 0, VE_MAX_FOLDS - 1, &fold))
            return mien_err_set(e, MIEN_EFORMAT,
                                "%s:%d: fold must be an integer 0..%d, got \"%.*s\"", name,
                                it->lineno, VE_MAX_FOLDS - 1,
                                (int)(f[3].len > 32 ? 32 : f[3].len), f[3].s);
        if (out->n >= VE_MAX_PAIRS)
            return mien_err_set(e, MIEN_ETOOBIG, "%s:%d: more than %d pairs", name,
                                it->lineno, VE_MAX_PAIRS);
        int rc = push_pair(out, &cap, dup_field(&f[0]), dup_field(&f[1]), (int)label,
                           (int)fold, e);
        if (rc) return rc;
        if (fold > max_fold) max_fold = (int)fold;
    }
    if (out->n == 0)
        return mien_err_set(e, MIEN_EFORMAT, "%s: no pairs", name);
    out->n_folds = max_fold + 1;
    return MIEN_OK;
}

int ve_pairs_parse(const char *text, size_t len, const char *name, ve_pairs *out,
                   mien_err *e) {
    memset(out, 0, sizeof *out);
    if (!name) name = "(pairs)";
    line_iter it = {text, text + len, 0};
    const char *s;
    size_t n;
    /* The format is told by the first line: two integers = the LFW header. */
    line_iter peek = it;
    if (!next_line(&peek, &s, &n)) return mien_err_set(e, MIEN_EFORMAT, "%s: empty", name);
    field f[MAX_FIELDS];
    int nf = split_ws(s, n, f);
    long n_folds, n_per;
    int rc;
    if (nf == 2 && parse_int(&f[0], 0, 999999999, &n_folds) &&
        parse_int(&f[1], 0, 999999999, &n_per)) {
        it = peek;
        if (n_folds < 1 || n_folds > VE_MAX_FOLDS || n_per < 1 ||
            n_folds * 2 * n_per > VE_MAX_PAIRS)
            rc = mien_err_set(e, MIEN_EFORMAT,
                              "%s:1: bad LFW header \"%ld %ld\": want 1..%d folds and at most "
                              "%d pairs",
                              name, n_folds, n_per, VE_MAX_FOLDS, VE_MAX_PAIRS);
        else
            rc = parse_lfw(&it, name, n_folds, n_per, out, e);
    } else {
        rc = parse_generic(&it, name, out, e);
    }
    if (rc) ve_pairs_free(out);
    return rc;
}

int ve_pairs_load(const char *path, ve_pairs *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    unsigned char *data;
    size_t len;
    int rc = mien_read_file(path, VE_MAX_FILE_BYTES, &data, &len, e);
    if (rc) return rc;
    rc = ve_pairs_parse((const char *)data, len, path, out, e);
    free(data);
    return rc;
}

/* ==== Score sets ==== */

typedef struct sort_item {
    double score;
    int idx;       /* input index: breaks ties so the order is deterministic */
    int same;
    int fold;
} sort_item;

static int cmp_item(const void *pa, const void *pb) {
    const sort_item *a = pa, *b = pb;
    if (a->score < b->score) return -1;
    if (a->score > b->score) return 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

void ve_set_free(ve_set *s) {
    if (!s) return;
    free(s->score);
    free(s->same);
    free(s->fold);
    memset(s, 0, sizeof *s);
}

int ve_set_build(ve_set *s, int n, const float *score, const uint8_t *valid, const int *same,
                 const int *fold, ve_missing policy, mien_err *e) {
    memset(s, 0, sizeof *s);
    s->policy = policy;
    if (n < 0 || (n > 0 && (!score || !same)))
        return mien_err_set(e, MIEN_EINVAL, "ve_set_build: bad arguments");
    if (policy != VE_MISSING_REJECT && policy != VE_MISSING_EXCLUDE)
        return mien_err_set(e, MIEN_EINVAL, "ve_set_build: unknown missing-pair policy %d",
                            (int)policy);
    for (int i = 0; i < n; i++) {
        if (same[i] != 0 && same[i] != 1)
            return mien_err_set(e, MIEN_EINVAL, "pair %d: label %d is not 0 or 1", i, same[i]);
        if (fold && (fold[i] < 0 || fold[i] >= VE_MAX_FOLDS))
            return mien_err_set(e, MIEN_EINVAL, "pair %d: fold %d outside 0..%d", i, fold[i],
                                VE_MAX_FOLDS - 1);
        if (isinf(score[i]))
            return mien_err_set(e, MIEN_EINVAL,
                                "pair %d: infinite score (mark missing pairs with NaN or "
                                "valid[] = 0)",
                                i);
    }
    sort_item *items = malloc((size_t)(n ? n : 1) * sizeof *items);
    if (!items) return mien_err_set(e, MIEN_ENOMEM, "out of memory sorting %d scores", n);
    int m = 0;
    for (int i = 0; i < n; i++) {
        int f = fold ? fold[i] : 0;
        if (f + 1 > s->n_folds) s->n_folds = f + 1;
        int missing = isnan(score[i]) || (valid && !valid[i]);
        if (missing) {
            s->n_missing++;
            if (policy == VE_MISSING_EXCLUDE) continue;
        }
        items[m++] = (sort_item){missing ? -INFINITY : (double)score[i], i, same[i], f};
    }
    qsort(items, (size_t)m, sizeof *items, cmp_item);
    s->score = malloc((size_t)(m ? m : 1) * sizeof *s->score);
    s->same = malloc((size_t)(m ? m : 1) * sizeof *s->same);
    s->fold = malloc((size_t)(m ? m : 1) * sizeof *s->fold);
    if (!s->score || !s->same || !s->fold) {
        free(items);
        ve_set_free(s);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory for %d scores", n);
    }
    s->n = m;
    for (int i = 0; i < m; i++) {
        s->score[i] = items[i].score;
        s->same[i] = (uint8_t)items[i].same;
        s->fold[i] = items[i].fold;
        if (items[i].same) s->n_pos++;
        else s->n_neg++;
    }
    free(items);
    return MIEN_OK;
}

/* ==== Threshold search and k-fold accuracy ==== */

void ve_search_default(ve_search *o) { memset(o, 0, sizeof *o); }

void ve_search_insightface(ve_search *o) {
    o->grid_step = 0.001;
    o->grid_lo = -1.0;
    o->grid_hi = 1.0;
}

/* Best threshold on the pairs whose fold is not `skip` (skip = -1: all pairs). Writes the
 * threshold and the number of training pairs it gets right out of *n_train.
 *
 * The scan walks the ascending scores once. At a threshold t the correct decisions are the
 * impostors with score <= t plus the genuine pairs with score > t; moving t past a group of
 * equal scores adds the group's impostors and subtracts its genuine pairs. Missing pairs sit
 * at -inf, below every candidate, so they always count as rejected. */
static int search_threshold(const ve_set *s, int skip, const ve_search *o, double *thr,
                            long *n_correct, long *n_train, mien_err *e) {
    long pos = 0, neg = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->fold[i] == skip) continue;
        if (s->same[i]) pos++;
        else neg++;
    }
    *n_train = pos + neg;
    if (pos + neg == 0)
        return mien_err_set(e, MIEN_EINVAL, "no training pairs to choose a threshold on");

    if (o && o->grid_step > 0) {
        double span = (o->grid_hi - o->grid_lo) / o->grid_step;
        if (!(o->grid_step > 0) || !isfinite(span) || span < 1 || span > 1e8)
            return mien_err_set(e, MIEN_EINVAL, "bad threshold grid [%g, %g) step %g",
                                o->grid_lo, o->grid_hi, o->grid_step);
        long g_n = (long)ceil(span);
        /* numpy.arange fills start + j * ((start + step) - start); do the same so the grids
         * are bit-identical. */
        double delta = (o->grid_lo + o->grid_step) - o->grid_lo;
        long neg_le = 0, pos_le = 0, best = -1;
        int p = 0;
        for (long j = 0; j < g_n; j++) {
            double g = o->grid_lo + (double)j * delta;
            for (; p < s->n && s->score[p] <= g; p++) {
                if (s->fold[p] == skip) continue;
                if (s->same[p]) pos_le++;
                else neg_le++;
            }
            long correct = neg_le + (pos - pos_le);
            if (correct > best) {   /* strict: ties keep the smaller threshold */
                best = correct;
                *thr = g;
            }
        }
        *n_correct = best;
        return MIEN_OK;
    }

    /* Exact: skip the missing pairs (-inf, always rejected), then walk groups of equal
     * finite scores. */
    int i = 0;
    long neg_rej = 0, pos_rej = 0;
    for (; i < s->n && s->score[i] == -INFINITY; i++) {
        if (s->fold[i] == skip) continue;
        if (s->same[i]) pos_rej++;
        else neg_rej++;
    }
    while (i < s->n && s->fold[i] == skip) i++;
    if (i == s->n) {
        /* Every training pair is missing: all thresholds are alike. */
        *thr = 0.0;
        *n_correct = neg_rej;
        return MIEN_OK;
    }
    long correct = neg_rej + (pos - pos_rej);
    long best = correct;
    *thr = nextafter(s->score[i], -INFINITY);
    while (i < s->n) {
        double v = s->score[i];
        for (; i < s->n && s->score[i] == v; i++) {
            if (s->fold[i] == skip) continue;
            correct += s->same[i] ? -1 : 1;
        }
        while (i < s->n && s->fold[i] == skip) i++;
        /* v is a training score (groups start at one). Midpoint of two distinct doubles that
         * came from floats is exact and strictly between them. */
        double cand = i < s->n ? 0.5 * (v + s->score[i]) : v;
        if (correct > best) {
            best = correct;
            *thr = cand;
        }
    }
    *n_correct = best;
    return MIEN_OK;
}

int ve_kfold_accuracy(const ve_set *s, const ve_search *o, ve_kfold *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    int nf = s->n_folds;
    if (nf < 2)
        return mien_err_set(e, MIEN_EINVAL, "k-fold accuracy needs at least 2 folds, have %d",
                            nf);
    int count[VE_MAX_FOLDS] = {0};
    for (int i = 0; i < s->n; i++) count[s->fold[i]]++;
    for (int k = 0; k < nf; k++)
        if (count[k] == 0)
            return mien_err_set(e, MIEN_EINVAL, "fold %d has no pairs", k);
    out->n_folds = nf;
    for (int k = 0; k < nf; k++) {
        long n_correct, n_train;
        int rc = search_threshold(s, k, o, &out->thr[k], &n_correct, &n_train, e);
        if (rc) return rc;
        long right = 0;
        for (int i = 0; i < s->n; i++)
            if (s->fold[i] == k) right += (s->score[i] > out->thr[k]) == (s->same[i] != 0);
        out->acc[k] = (double)right / count[k];
    }
    double sa = 0, st = 0;
    for (int k = 0; k < nf; k++) {
        sa += out->acc[k];
        st += out->thr[k];
    }
    out->acc_mean = sa / nf;
    out->thr_mean = st / nf;
    /* Population standard deviation (divide by n_folds), as numpy.std. */
    double ss = 0;
    for (int k = 0; k < nf; k++) {
        double d = out->acc[k] - out->acc_mean;
        ss += d * d;
    }
    out->acc_std = sqrt(ss / nf);
    return MIEN_OK;
}

int ve_best_threshold(const ve_set *s, const ve_search *o, double *thr, double *acc,
                      mien_err *e) {
    long n_correct, n_train;
    double t = 0;
    int rc = search_threshold(s, -1, o, &t, &n_correct, &n_train, e);
    if (rc) return rc;
    if (thr) *thr = t;
    if (acc) *acc = (double)n_correct / n_train;
    return MIEN_OK;
}

/* ==== Operating points, ROC, AUC, EER ==== */

static int need_both(const ve_set *s, const char *what, mien_err *e) {
    if (s->n_pos == 0 || s->n_neg == 0)
        return mien_err_set(e, MIEN_EINVAL, "%s needs genuine and impostor pairs (have %d and %d)",
                            what, s->n_pos, s->n_neg);
    return MIEN_OK;
}

int ve_at_far(const ve_set *s, double far, ve_op *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    if (!(far >= 0 && far <= 1))
        return mien_err_set(e, MIEN_EINVAL, "target FAR %g is not in [0, 1]", far);
    int rc = need_both(s, "TAR@FAR", e);
    if (rc) return rc;
    /* Slack so that 1e-3 * 3000 = 3.0000000000000004 or 2.9999999999999996 both give 3. */
    long k = (long)floor(far * s->n_neg * (1 + 1e-9));
    double t = -INFINITY;
    if (k < s->n_neg) {
        long seen = 0;
        for (int i = s->n - 1; i >= 0; i--) {
            if (s->same[i]) continue;
            if (seen++ == k) {
                t = s->score[i];
                break;
            }
        }
    }
    long tp = 0, fp = 0;
    for (int i = s->n - 1; i >= 0 && s->score[i] > t; i--) {
        if (s->same[i]) tp++;
        else fp++;
    }
    out->thr = t;
    out->tar = (double)tp / s->n_pos;
    out->far = (double)fp / s->n_neg;
    return MIEN_OK;
}

void ve_roc_free(ve_roc *r) {
    if (!r) return;
    free(r->far);
    free(r->tar);
    free(r->thr);
    memset(r, 0, sizeof *r);
}

int ve_roc_compute(const ve_set *s, ve_roc *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    int rc = need_both(s, "a ROC", e);
    if (rc) return rc;
    size_t cap = (size_t)s->n + 1;
    out->far = malloc(cap * sizeof *out->far);
    out->tar = malloc(cap * sizeof *out->tar);
    out->thr = malloc(cap * sizeof *out->thr);
    if (!out->far || !out->tar || !out->thr) {
        ve_roc_free(out);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory for a ROC of %d pairs", s->n);
    }
    out->far[0] = 0;
    out->tar[0] = 0;
    out->thr[0] = INFINITY;
    int m = 1;
    long tp = 0, fp = 0;
    /* Descending, one point per group of equal scores: the group enters together, so ties
     * make one diagonal step (that is what gives ties 1/2 in the AUC). */
    for (int i = s->n - 1; i >= 0;) {
        double v = s->score[i];
        for (; i >= 0 && s->score[i] == v; i--) {
            if (s->same[i]) tp++;
            else fp++;
        }
        out->far[m] = (double)fp / s->n_neg;
        out->tar[m] = (double)tp / s->n_pos;
        out->thr[m] = v;
        m++;
    }
    out->n = m;
    return MIEN_OK;
}

double ve_roc_auc(const ve_roc *r) {
    double a = 0;
    for (int i = 1; i < r->n; i++)
        a += (r->far[i] - r->far[i - 1]) * (r->tar[i] + r->tar[i - 1]) * 0.5;
    return a;
}

double ve_roc_eer(const ve_roc *r, double *thr) {
    /* d = FAR - FRR goes from -1 at (0, 0) to +1 at (1, 1), non-decreasing. */
    for (int i = 1; i < r->n; i++) {
        double d1 = r->far[i] - (1 - r->tar[i]);
        if (d1 < 0) continue;
        double d0 = r->far[i - 1] - (1 - r->tar[i - 1]);
        double a = d1 - d0 > 0 ? -d0 / (d1 - d0) : 0;
        if (thr) *thr = r->thr[i];
        return r->far[i - 1] + a * (r->far[i] - r->far[i - 1]);
    }
    if (thr) *thr = r->n ? r->thr[r->n - 1] : 0;
    return 0.5;   /* unreachable for a ROC that ends at (1, 1) */
}

int ve_evaluate(const ve_set *s, const ve_search *o, ve_report *out, mien_err *e) {
    memset(out, 0, sizeof *out);
    out->n = s->n;
    out->n_pos = s->n_pos;
    out->n_neg = s->n_neg;
    out->n_missing = s->n_missing;
    int rc;
    if (s->n_folds >= 2 && (rc = ve_kfold_accuracy(s, o, &out->kfold, e))) return rc;
    if ((rc = ve_best_threshold(s, o, &out->best_thr, &out->best_acc, e))) return rc;
    if ((rc = ve_at_far(s, 1e-3, &out->at_far_1e3, e))) return rc;
    if ((rc = ve_at_far(s, 1e-4, &out->at_far_1e4, e))) return rc;
    ve_roc roc;
    if ((rc = ve_roc_compute(s, &roc, e))) return rc;
    out->auc = ve_roc_auc(&roc);
    out->eer = ve_roc_eer(&roc, &out->eer_thr);
    ve_roc_free(&roc);
    return MIEN_OK;
}

/* ==== ROC plot ==== */

#define PLOT_W 800
#define PLOT_H 600
/* The plot area inside the margins, in pixels. */
#define PL 80
#define PR 770
#define PT 60
#define PB 530
#define MAX_CURVES 8

static const img_color curve_colors[MAX_CURVES] = {
    {31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {255, 127, 14},
    {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {23, 190, 207},
};

typedef struct plot_axes {
    double x_lo, x_hi;   /* log10 FAR */
    double y_lo, y_hi;   /* TAR */
} plot_axes;

static double px_x(const plot_axes *a, double lx) {
    return PL + (lx - a->x_lo) / (a->x_hi - a->x_lo) * (PR - PL);
}

static double px_y(const plot_axes *a, double y) {
    return PB - (y - a->y_lo) / (a->y_hi - a->y_lo) * (PB - PT);
}

/* Liang-Barsky: clip the segment to [x_lo, x_hi] x [y_lo, y_hi] in data space. Returns 0 when
 * nothing is left. */
static int clip_segment(const plot_axes *a, double *x0, double *y0, double *x1, double *y1) {
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - a->x_lo, a->x_hi - *x0, *y0 - a->y_lo, a->y_hi - *y0};
    for (int k = 0; k < 4; k++) {
        if (p[k] == 0) {
            if (q[k] < 0) return 0;
            continue;
        }
        double t = q[k] / p[k];
        if (p[k] < 0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    double nx0 = *x0 + t0 * dx, ny0 = *y0 + t0 * dy;
    *x1 = *x0 + t1 * dx;
    *y1 = *y0 + t1 * dy;
    *x0 = nx0;
    *y0 = ny0;
    return 1;
}

/* log10 of a FAR, with FAR = 0 sent far off the left edge so the clipped segment from it
 * runs flat into the plot. */
static double log_far(double far) { return far > 0 ? log10(far) : -12.0; }

/* The TAR reached at FAR <= far on this curve (the best operating point there). */
static double tar_at(const ve_roc *r, double far) {
    double t = 0;
    for (int i = 0; i < r->n && r->far[i] <= far; i++) t = r->tar[i];
    return t;
}

int ve_plot_roc(const char *png_path, const ve_curve *curves, int n_curves, const char *title,
                mien_err *e) {
    return ve_plot_roc_axes(png_path, curves, n_curves, title, "FAR (false accept rate, log scale)",
                            "TAR (true accept rate)", e);
}

int ve_plot_roc_axes(const char *png_path, const ve_curve *curves, int n_curves, const char *title,
                     const char *x_name, const char *y_name, mien_err *e) {
    if (!x_name || !y_name) return mien_err_set(e, MIEN_EINVAL, "ve_plot_roc: axes need names");
    if (!png_path || !curves || n_curves < 1 || n_curves > MAX_CURVES)
        return mien_err_set(e, MIEN_EINVAL, "ve_plot_roc: need 1..%d curves and a path",
                            MAX_CURVES);
    for (int c = 0; c < n_curves; c++)
        if (!curves[c].roc || curves[c].roc->n < 1)
            return mien_err_set(e, MIEN_EINVAL, "ve_plot_roc: curve %d is empty", c);

    plot_axes ax = {-4.0, 0.0, 0.9, 1.0};
    for (int c = 0; c < n_curves; c++) {
        /* Round down to a multiple of 0.1; the small slack keeps 0.8 from becoming 0.7. */
        double lo = floor(tar_at(curves[c].roc, 1e-4) * 10 + 1e-9) / 10;
        if (lo < ax.y_lo) ax.y_lo = lo;
    }
    if (ax.y_lo < 0) ax.y_lo = 0;
    if (ax.y_lo > 0.9) ax.y_lo = 0.9;

    mien_image img = {0};
    int rc = img_alloc(&img, PLOT_W, PLOT_H, e);
    if (rc) return rc;
    const img_color white = {255, 255, 255}, black = {0, 0, 0}, grid = {215, 215, 215},
                    minor = {238, 238, 238}, gray = {90, 90, 90};
    img_fill(&img, white);

    /* Grid: minor lines at 2..9 x each decade, major at the decades. */
    for (int d = -4; d < 0; d++)
        for (int m = 2; m <= 9; m++) {
            double x = px_x(&ax, d + log10(m));
            img_draw_line(&img, (float)x, PT, (float)x, PB, 1, minor);
        }
    /* y step: 0.01 on a 0.1 range, 0.05 or 0.1 on wider ones; labels every other line when
     * crowded. */
    double range = ax.y_hi - ax.y_lo;
    double ystep = range <= 0.1 + 1e-9 ? 0.01 : range <= 0.5 + 1e-9 ? 0.05 : 0.1;
    int n_y = (int)floor(range / ystep + 0.5);
    int label_every = n_y > 10 ? 2 : 1;
    char buf[160];
    int th = img_text_height(1);
    for (int k = 0; k <= n_y; k++) {
        double yv = ax.y_lo + k * ystep;
        float y = (float)px_y(&ax, yv);
        img_draw_line(&img, PL, y, PR, y, 1, grid);
        if (k % label_every == 0 || k == n_y) {
            snprintf(buf, sizeof buf, "%.2f", yv);
            int tw = img_text_width(buf, 1);
            img_draw_text(&img, PL - 8 - tw, (int)y - th / 2, buf, 1, black, 0, white);
        }
    }
    static const char *const x_labels[] = {"1e-4", "1e-3", "1e-2", "1e-1", "1"};
    for (int d = -4; d <= 0; d++) {
        float x = (float)px_x(&ax, d);
        img_draw_line(&img, x, PT, x, PB, 1, grid);
        const char *l = x_labels[d + 4];
        img_draw_text(&img, (int)x - img_text_width(l, 1) / 2, PB + 8, l, 1, black, 0, white);
    }

    /* Frame and axis names. The font cannot turn, so the y name sits above the axis. */
    img_draw_rect(&img, PL, PT, PR - PL, PB - PT, 1, black);
    const char *xl = x_name;
    img_draw_text(&img, (PL + PR) / 2 - img_text_width(xl, 1) / 2, PB + 14 + th, xl, 1, gray, 0,
                  white);
    img_draw_text(&img, 8, PT - 8 - th, y_name, 1, gray, 0, white);
    if (title) {
        int tw = img_text_width(title, 2);
        img_draw_text(&img, PLOT_W / 2 - tw / 2, 12, title, 2, black, 0, white);
    }

    /* Curves, each a polyline through its ROC points in (log10 FAR, TAR), clipped. */
    for (int c = 0; c < n_curves; c++) {
        const ve_roc *r = curves[c].roc;
        img_color col = curve_colors[c];
        for (int i = 1; i < r->n; i++) {
            double x0 = log_far(r->far[i - 1]), y0 = r->tar[i - 1];
            double x1 = log_far(r->far[i]), y1 = r->tar[i];
            if (!clip_segment(&ax, &x0, &y0, &x1, &y1)) continue;
            img_draw_line(&img, (float)px_x(&ax, x0), (float)px_y(&ax, y0),
                          (float)px_x(&ax, x1), (float)px_y(&ax, y1), 2, col);
        }
    }

    /* Legend, bottom right inside the plot (ROC curves hug the top left there is room). */
    int lw = 0;
    for (int c = 0; c < n_curves; c++) {
        snprintf(buf, sizeof buf, "%.60s (AUC %.5f)", curves[c].name ? curves[c].name : "?",
                 ve_roc_auc(curves[c].roc));
        int w = img_text_width(buf, 1);
        if (w > lw) lw = w;
    }
    int row = th + 8, box_w = lw + 48, box_h = n_curves * row + 8;
    int bx = PR - 12 - box_w, by = PB - 12 - box_h;
    for (int y = by; y < by + box_h; y++)   /* white backing so grid lines do not show */
        img_draw_line(&img, (float)bx, (float)y, (float)(bx + box_w), (float)y, 1, white);
    img_draw_rect(&img, (float)bx, (float)by, (float)box_w, (float)box_h, 1, gray);
    for (int c = 0; c < n_curves; c++) {
        int y = by + 4 + c * row + row / 2;
        img_draw_line(&img, (float)(bx + 8), (float)y, (float)(bx + 36), (float)y, 3,
                      curve_colors[c]);
        snprintf(buf, sizeof buf, "%.60s (AUC %.5f)", curves[c].name ? curves[c].name : "?",
                 ve_roc_auc(curves[c].roc));
        img_draw_text(&img, bx + 42, y - th / 2, buf, 1, black, 0, white);
    }

    rc = img_write_png(png_path, &img, e);
    mien_image_free(&img);
    return rc;
}
