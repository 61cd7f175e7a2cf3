/* Identification and clustering evaluation (mien eval identify, mien eval cluster).
 *
 * Open-set identification: every person with several photos has one enrolled; the other
 * photos are genuine probes, the photos of people with a single photo distractors. Each probe
 * brings its top-1 answer from the gallery. Rank-1 is the share of genuine probes whose top-1
 * is right; DIR at a FAR (detection and identification rate) the share of genuine probes
 * answered right with a similarity above the threshold at which that share of distractors is
 * accepted (verify_eval's ve_at_far over these scores: a genuine probe counts with its top-1
 * similarity when the top-1 is right, else as missing, rejected at every threshold; a
 * distractor with its top-1 similarity).
 *
 * Clustering: scored by pairs against the truth: precision = pairs put together that are the
 * same person / pairs put together, recall = same-person pairs put together / same-person
 * pairs, F1 their harmonic mean. */
#ifndef MIEN_EVAL_IDENT_EVAL_H
#define MIEN_EVAL_IDENT_EVAL_H

#include "core/err.h"
#include "eval/verify_eval.h"

/* One probe's answer. */
typedef struct ie_probe {
    int genuine;             /* 1: the person is enrolled; 0: a distractor */
    int answered;            /* the search gave a top-1 (the photo had a face) */
    int right;               /* the top-1 is the probe's person */
    float sim;               /* the top-1's similarity (when answered) */
} ie_probe;

typedef struct ie_result {
    int n_genuine, n_distractor;
    int rank1;               /* genuine probes whose top-1 is right */
    int dir, wrong, fa;      /* at the threshold: genuine right, genuine wrong, distractors
                              * accepted (similarity >= threshold) */
    ve_op at_far_1e2, at_far_1e3; /* DIR (tar) and threshold at FAR 1e-2 and 1e-3 */
} ie_result;

/* The measures of n probes at threshold thr. MIEN_EINVAL (with a message) without genuine
 * probes or without distractors. */
int ie_identify(const ie_probe *p, int n, float thr, ie_result *r, mien_err *e);

typedef struct ie_cluster_score {
    int clusters, singletons;
    double precision, recall, f1;
} ie_cluster_score;

/* Score a clustering of n faces: labels (n,) their cluster ids (n_clusters of them), person
 * (n,) their true person ids in [0, n_people). MIEN_ENOMEM when out of memory. */
int ie_cluster_pairs(const int *labels, int n_clusters, const int *person, int n, int n_people,
                     ie_cluster_score *out);

#endif
