#!/usr/bin/python3
"""Independent reference for src/face/verify_eval.c, written the way insightface evaluates LFW.

Usage: /usr/bin/python3 tools/ref_verify_metrics.py SCORES.tsv [--missing reject|exclude]

SCORES.tsv has one pair per line: "score<TAB>same<TAB>fold", score a float32 written with
%.9g ("nan" = no face found), same 1/0, fold 0..K-1. Prints "key value" lines.

What is computed, and how it differs in method from the C code on purpose:
  * k-fold accuracy: insightface's calculate_roc on cosine similarity: for each fold, the
    accuracy of every threshold of np.arange(-1, 1, 0.001) on the other folds, the first
    argmax (smallest threshold on ties), applied to the held-out fold; "same" iff sim > thr.
    Mean, np.std (population) and the mean threshold. Brute force over the grid.
  * best threshold over all pairs: the same grid search on every pair.
  * TAR@FAR: brute force over candidate thresholds {-inf} U impostor scores: the smallest t
    with count(impostor > t) <= floor(far * n_neg), floor taken exactly with Fraction.
  * AUC: the Mann-Whitney U from mid-ranks, U / (n_pos * n_neg); no ROC involved.
  * EER: ROC built by brute force (one point per distinct score, accept score >= t), then
    FAR = FRR found by linear interpolation on the crossing segment.
Missing pairs: "reject" scores them -inf (always rejected, still counted), "exclude" drops them.
"""
import sys
from fractions import Fraction

import numpy as np


def calculate_accuracy(threshold, sim, actual_issame):
    predict_issame = np.greater(sim, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / sim.size
    return tpr, fpr, acc


def best_on(thresholds, sim, issame):
    acc_train = np.zeros(len(thresholds))
    for i, t in enumerate(thresholds):
        _, _, acc_train[i] = calculate_accuracy(t, sim, issame)
    b = int(np.argmax(acc_train))
    return thresholds[b], acc_train[b]


def calculate_roc(thresholds, sim, actual_issame, folds):
    nfolds = int(folds.max()) + 1
    accuracy = np.zeros(nfolds)
    best_thr = np.zeros(nfolds)
    for k in range(nfolds):
        train = folds != k
        test = folds == k
        best_thr[k], _ = best_on(thresholds, sim[train], actual_issame[train])
        _, _, accuracy[k] = calculate_accuracy(best_thr[k], sim[test], actual_issame[test])
    return accuracy, best_thr


def tar_at_far(sim, issame, far):
    pos, neg = sim[issame], sim[~issame]
    k = int(Fraction(repr(far)) * len(neg))  # the decimal far exactly: 1e-3 * 3000 = 3
    cand = np.concatenate([[-np.inf], np.unique(neg)])
    above = (neg[None, :] > cand[:, None]).sum(axis=1)
    t = cand[np.argmax(above <= k)]  # cand ascending, so the first that passes is smallest
    return t, float(np.mean(pos > t)), float(np.mean(neg > t))


def auc_mann_whitney(sim, issame):
    # Mid-ranks: tied values share the mean of the ranks they span (1-based).
    order = np.argsort(sim, kind="mergesort")
    s = sim[order]
    ranks = np.empty(len(sim))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos = int(issame.sum())
    n_neg = len(sim) - n_pos
    u = ranks[issame].sum() - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def eer(sim, issame):
    pos, neg = sim[issame], sim[~issame]
    ts = np.unique(sim)[::-1]
    far = np.concatenate([[0.0], [(neg >= t).mean() for t in ts]])
    tar = np.concatenate([[0.0], [(pos >= t).mean() for t in ts]])
    d = far - (1 - tar)
    i = int(np.argmax(d >= 0))
    a = -d[i - 1] / (d[i] - d[i - 1]) if d[i] - d[i - 1] > 0 else 0.0
    return far[i - 1] + a * (far[i] - far[i - 1])


def main():
    args = sys.argv[1:]
    missing = "reject"
    if "--missing" in args:
        i = args.index("--missing")
        missing = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or missing not in ("reject", "exclude"):
        sys.exit(__doc__)
    raw = np.loadtxt(args[0], dtype=str, delimiter="\t", ndmin=2)
    # float32 first: the C side holds float scores, and a %.9g decimal is only guaranteed to
    # come back as the same float32, not as the same double.
    sim = raw[:, 0].astype(np.float32).astype(np.float64)
    issame = raw[:, 1].astype(int) == 1
    folds = raw[:, 2].astype(int)
    nan = np.isnan(sim)
    if missing == "reject":
        sim = np.where(nan, -np.inf, sim)
    else:
        sim, issame, folds = sim[~nan], issame[~nan], folds[~nan]

    thresholds = np.arange(-1, 1, 0.001)
    acc, thr = calculate_roc(thresholds, sim, issame, folds)
    out = {"acc_mean": np.mean(acc), "acc_std": np.std(acc), "thr_mean": np.mean(thr)}
    for k in range(len(acc)):
        out["acc_%d" % k] = acc[k]
        out["thr_%d" % k] = thr[k]
    out["best_thr"], out["best_acc"] = best_on(thresholds, sim, issame)
    for name, far in (("1e-3", 1e-3), ("1e-2", 0.01)):
        t, ta, fa = tar_at_far(sim, issame, far)
        out["thr_far_" + name], out["tar_far_" + name], out["far_far_" + name] = t, ta, fa
    out["auc"] = auc_mann_whitney(sim, issame)
    out["eer"] = eer(sim, issame)
    out["n_pairs"] = len(sim)
    for k, v in out.items():
        print(k, repr(float(v)))


if __name__ == "__main__":
    main()
