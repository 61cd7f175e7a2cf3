#!/usr/bin/python3
"""Could another combination of quality's parts predict LFW's verification errors better?
A study on the files bench/quality_lfw.py leaves in OUT (default out/quality: embeddings.jsonl,
pairs.json, quality.jsonl), run after it:

    /usr/bin/python3 bench/quality_lfw.py > out/quality_lfw.md
    /usr/bin/python3 bench/quality_weights.py [--out DIR] > out/quality_weights.md

For each way of turning a face's parts into one quality it prints the errors of LFW's 6,000
pairs per quintile of the pair's lower quality (as quality_lfw.py), at the 10-fold accuracy
threshold and at FAR 1e-3, and whether they fall at every step. Every fitted combination is
cross-fitted: the quality of a pair of fold k uses weights fitted on the other nine folds only,
so no pair is scored by weights that saw it. The image parts are each face's part scores (0..1)
as mien analyze --json gives them; the eyes part as analyze.c folds it in (0.5 + 0.5 x its
ramp). The fitted combinations weigh the image parts only.

  mien              mien's quality: the geometric mean of the recognizability and of the image
                    parts' geometric mean (the image parts alone where the embedder has no
                    calibrated recognizability)
  equal             the geometric mean of the image parts (mien's quality before the
                    recognizability)
  recognizability   the recognizability alone (the embedder's feature norm)
  recog^w           recognizability^w x (image parts' geometric mean)^(1 - w): how the split
                    between the two moves the order (mien's is w = 0.5)
  univariate        weighted geometric mean, each part weighted by the rank correlation of the
                    pair's lower part score with the similarity of same-person pairs
  nnls-similarity   weighted geometric mean, weights >= 0 by least squares of same-person
                    similarity on the two faces' summed log part scores
  logistic-fnm      per-face log-odds of a false non-match at FAR 1e-3 (logistic regression on
                    the two faces' summed log part scores, ridge 1): quality = 1 - its risk
  cos-pose          equal weights, the pose part cos(yaw) cos(pitch) (the face plane's
                    foreshortening) instead of the ramps: no parameter
  product           equal weights, a pair's quality the product of its two faces' (not the
                    lower one)
Then the 95% (Wilson) interval of each quintile's error rate for mien's quality at FAR 1e-3.
"""
import itertools
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_lfw import central, ramp, read_pairs  # noqa: E402

EPS = 0.01
NAMES = ["sharpness", "brightness", "contrast", "face_size", "pose", "eyes"]


def parts(f, cos_pose=False):
    q = f["quality"]
    s = q["scores"]
    eo = q.get("eyes_open", -1)
    pose = s["pose"]
    if cos_pose:
        pose = max(0.0, math.cos(math.radians(f["pose"]["yaw"])) * math.cos(math.radians(f["pose"]["pitch"])))
    return np.array([s["sharpness"], s["brightness"], s["contrast"], s["face_size"], pose,
                     0.5 + 0.5 * ramp(eo, 0.1, 0.6) if eo >= 0 else 1.0])


def logp(p):
    return np.log(np.maximum(p, EPS))


def ranks(a):
    return np.argsort(np.argsort(a, kind="stable"), kind="stable")


def spearman(a, b):
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def nnls(X, y):
    """Least squares with a free intercept and weights >= 0 (every active set; 6 columns)."""
    best = None
    n = X.shape[1]
    for k in range(n + 1):
        for S in itertools.combinations(range(n), k):
            A = np.c_[np.ones(len(y)), X[:, list(S)]]
            c = np.linalg.lstsq(A, y, rcond=None)[0]
            if np.any(c[1:] < 0):
                continue
            r = float(np.sum((A @ c - y) ** 2))
            if best is None or r < best[0]:
                w = np.zeros(n)
                w[list(S)] = c[1:]
                best = (r, w)
    return best[1]


def logistic(X, y, lam=1.0):
    X = np.c_[np.ones(len(y)), X]
    w = np.zeros(X.shape[1])
    reg = lam * np.diag(np.r_[0, np.ones(X.shape[1] - 1)])
    for _ in range(50):
        p = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (p - y) + reg @ w
        H = (X.T * (p * (1 - p))) @ X + reg
        w -= np.linalg.solve(H, g)
    return w


def wilson(k, n, z=1.96):
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def main():
    out = "out/quality"
    args = sys.argv[1:]
    while args:
        k = args.pop(0)
        if k == "--out":
            out = args.pop(0)
        else:
            raise SystemExit(__doc__)
    data = os.environ.get("MIEN_DATA", "../shared/data")
    lfw = os.path.join(data, "lfw")
    pairs = read_pairs(os.path.join(lfw, "pairs.txt"))
    summary = json.load(open(os.path.join(out, "pairs.json")))
    emb = {}
    for line in open(os.path.join(out, "embeddings.jsonl")):
        d = json.loads(line)
        emb[d["path"]] = np.array(d["embedding"], dtype=np.float64) if d.get("found") else None
    face = {}
    for line in open(os.path.join(out, "quality.jsonl")).read().splitlines():
        d = json.loads(line)
        face[os.path.relpath(d["image"], lfw)] = central(d.get("faces", []), d.get("width", 0), d.get("height", 0))
    t_acc, t_far = summary["threshold_mean"], summary["threshold_at_far_1e-3"]
    rows = []
    for a, b, same, fold in pairs:
        ea, eb = emb.get(a), emb.get(b)
        ok = ea is not None and eb is not None and face.get(a) and face.get(b)
        rows.append((a, b, same, fold, float(ea @ eb) if ok else None))
    P = {k: parts(f) for k, f in face.items() if f}
    Pc = {k: parts(f, True) for k, f in face.items() if f}
    folds = sorted({r[3] for r in rows})

    def genuine(train):
        return [r for r in rows if r[2] == 1 and r[3] in train and r[4] is not None]

    def fit_univariate(train):
        G = genuine(train)
        y = np.array([r[4] for r in G])
        return np.array([max(0.0, spearman(np.minimum([P[r[0]][i] for r in G], [P[r[1]][i] for r in G]), y))
                         for i in range(len(NAMES))])

    def fit_nnls(train):
        G = genuine(train)
        return nnls(np.array([logp(P[r[0]]) + logp(P[r[1]]) for r in G]), np.array([r[4] for r in G]))

    def fit_logistic(train):
        G = genuine(train)
        return logistic(np.array([logp(P[r[0]]) + logp(P[r[1]]) for r in G]),
                        np.array([float(r[4] < t_far) for r in G]))

    def geo(p, w):
        return float(np.exp(np.sum(w * logp(p)) / np.sum(w))) if np.sum(w) > 0 else 1.0

    def cross(fit, score):
        W = {k: fit(set(folds) - {k}) for k in folds}
        return lambda path, fold: score(path, W[fold])

    eq = np.ones(len(NAMES))
    def recog(p):
        return face[p]["quality"]["scores"].get("recognizability")

    has_recog = all(recog(p) is not None for p in P)
    methods = [("mien", lambda p, k: face[p]["quality"]["score"], min),
               ("equal", lambda p, k: geo(P[p], eq), min)]
    if has_recog:
        methods.append(("recognizability", lambda p, k: recog(p), min))
        for w in (0.3, 0.4, 0.6, 0.7):
            methods.append(("recog^%.1f" % w, lambda p, k, w=w: max(recog(p), EPS) ** w * geo(P[p], eq) ** (1 - w), min))
    methods += [
        ("univariate", cross(fit_univariate, lambda p, w: geo(P[p], w)), min),
        ("nnls-similarity", cross(fit_nnls, lambda p, w: geo(P[p], w)), min),
        ("logistic-fnm", cross(fit_logistic, lambda p, w: float(1 / (1 + np.exp(w[0] / 2 + logp(P[p]) @ w[1:])))), min),
        ("cos-pose", lambda p, k: geo(Pc[p], eq), min),
        ("product", lambda p, k: face[p]["quality"]["score"], lambda a, b: a * b),
    ]
    print("LFW, 6000 pairs in quintiles of their quality; errors per quintile, lowest quality first "
          "(%s, %s; cross-fitted over the 10 folds where fitted)\n" % (summary["embedder"], summary["detector"]))
    print("| combination | errors at the accuracy threshold %.3f | falls | errors at FAR 1e-3 (%.3f) | falls |" % (t_acc, t_far))
    print("|---|---|---|---|---|")
    keep = None
    for name, qf, comb in methods:
        R = []
        for a, b, same, fold, sim in rows:
            q = comb(qf(a, fold), qf(b, fold)) if sim is not None else 0.0
            R.append((q, sim if sim is not None else -2.0, same, a, b))
        R.sort(key=lambda r: r[0])
        s = np.array([r[1] for r in R])
        y = np.array([r[2] for r in R])
        groups = np.array_split(np.arange(len(R)), 5)
        cells = []
        for t in (t_acc, t_far):
            e = [int(np.sum((s[g] >= t) != (y[g] == 1))) for g in groups]
            cells += [" ".join(map(str, e)), "yes" if all(e[i] >= e[i + 1] for i in range(4)) else "no"]
            if name == "mien" and t == t_far:
                keep = (e, [len(g) for g in groups])
                top = [R[i] for i in groups[-1] if (s[i] >= t) != (y[i] == 1)]
        print("| %s | %s |" % (name, " | ".join(cells)))
    turned = sum(1 for r in top if any(abs(face[p]["pose"][k]) >= 20 for p in r[3:5] for k in ("yaw", "pitch")))
    print("\nmien's quality, highest quintile at FAR 1e-3: %d errors, %d of them same-person pairs, "
          "similarity %.3f to %.3f; %d with a face turned or tilted 20 degrees or more (|yaw| or "
          "|pitch|); %d of the quintile's pairs at quality 0.999 or more" %
          (len(top), sum(r[2] for r in top), min(r[1] for r in top), max(r[1] for r in top), turned,
           sum(1 for i in groups[-1] if R[i][0] >= 0.999)))
    e, n = keep
    print("\nmien's quality at FAR 1e-3, 95%% intervals of each quintile's error rate: %s" %
          ", ".join("%.2f%% (%.2f-%.2f)" % (100 * k / m, *(100 * v for v in wilson(k, m))) for k, m in zip(e, n)))


if __name__ == "__main__":
    main()
