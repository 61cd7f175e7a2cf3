/* Identification and clustering measures (ident_eval.h). */
#include "eval/ident_eval.h"

#include <math.h>
#include <stdlib.h>

int ie_identify(const ie_probe *p, int n, float thr, ie_result *r, mien_err *e) {
    *r = (ie_result){0};
    for (int k = 0; k < n; k++) {
        if (p[k].genuine) r->n_genuine++;
        else r->n_distractor++;
    }
    if (r->n_genuine == 0 || r->n_distractor == 0)
        return mien_err_set(e, MIEN_EINVAL,
                            "needs people with one photo (distractors) and with several");
    float *score = malloc((size_t)n * sizeof *score);
    int *same = malloc((size_t)n * sizeof *same);
    if (!score || !same) {
        free(score), free(same);
        return mien_err_set(e, MIEN_ENOMEM, "out of memory");
    }
    for (int k = 0; k < n; k++) {
        const int has = p[k].answered, right = has && p[k].right;
        const float sim = has ? p[k].sim : NAN;
        same[k] = p[k].genuine;
        if (p[k].genuine) {
            r->rank1 += right;
            r->dir += right && sim >= thr;
            r->wrong += has && !right && sim >= thr;
            score[k] = right ? sim : NAN;
        } else {
            r->fa += has && sim >= thr;
            score[k] = sim;
        }
    }
    ve_set set = {0};
    int rc = ve_set_build(&set, n, score, NULL, same, NULL, VE_MISSING_REJECT, e);
    if (!rc) rc = ve_at_far(&set, 0.01, &r->at_far_1e2, e);
    if (!rc) rc = ve_at_far(&set, 0.001, &r->at_far_1e3, e);
    ve_set_free(&set);
    free(score), free(same);
    return rc;
}

typedef struct cl_pair {
    int cluster, person;
} cl_pair;

static int cmp_cl_pair(const void *a, const void *b) {
    const cl_pair *x = a, *y = b;
    if (x->cluster != y->cluster) return x->cluster - y->cluster;
    return x->person - y->person;
}

static double pairs_of(long n) { return 0.5 * (double)n * (double)(n - 1); }

int ie_cluster_pairs(const int *labels, int n_clusters, const int *person, int n, int n_people,
                     ie_cluster_score *out) {
    cl_pair *cp = malloc((size_t)(n ? n : 1) * sizeof *cp);
    int *per = calloc((size_t)(n_people ? n_people : 1), sizeof *per);
    if (!cp || !per) {
        free(cp), free(per);
        return MIEN_ENOMEM;
    }
    /* Pair counts from the contingency table: sort (cluster, person) and count runs. */
    for (int i = 0; i < n; i++) cp[i] = (cl_pair){labels[i], person[i]};
    qsort(cp, (size_t)n, sizeof *cp, cmp_cl_pair);
    double together = 0, both = 0, same = 0;
    int singletons = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j < n && cp[j].cluster == cp[i].cluster) j++;
        together += pairs_of(j - i);
        singletons += j - i == 1;
        for (int a = i; a < j;) {
            int b = a;
            while (b < j && cp[b].person == cp[a].person) b++;
            both += pairs_of(b - a);
            a = b;
        }
        i = j;
    }
    for (int i = 0; i < n; i++) per[person[i]]++;
    for (int q = 0; q < n_people; q++) same += pairs_of(per[q]);
    free(per), free(cp);
    out->clusters = n_clusters;
    out->singletons = singletons;
    out->precision = together > 0 ? both / together : 1;
    out->recall = same > 0 ? both / same : 1;
    out->f1 = out->precision + out->recall > 0
                  ? 2 * out->precision * out->recall / (out->precision + out->recall)
                  : 0;
    return MIEN_OK;
}
