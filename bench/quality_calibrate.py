#!/usr/bin/python3
"""Calibrate the recognizability part of mien's face quality for one embedder: on cfp_dev's
700 frontal-to-profile same-person pairs, the chance that a pair is accepted at the
embedder's own threshold, as a logistic function of the lower of the two faces' feature norms
(the length of the embedder's output before normalisation). Prints the centre and width to
put in the embedder's spec (src/face/models.c, norm_centre and norm_width), the accepted share
per tenth of the pairs beside the fitted curve, the errors of all 1,400 pairs per quintile of
the quality (with the build's calibration: seen by the fit, so not a test), and, for the
spread of the fit, the centre and width over 200 bootstrap resamples of the pairs.

    /usr/bin/python3 bench/quality_calibrate.py [--data DIR] [--out DIR] [--reuse] [-- extra mien options]

Fitted on cfp_dev so that LFW, where bench/quality_lfw.py measures what the quality
predicts, stays unseen. Runs build/mien eval pairs (cfp_dev, --dump), build/mien analyze
--tasks quality (the feature norm of every face) and build/mien verify (the threshold);
takes for each photo the face eval pairs takes. A photo without a face is left out (its
pairs count for nothing here). --reuse takes OUT's files from an earlier run.
$MIEN_BIN_FAST names the mien binary (default build/mien).
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quality_lfw import central, image_quality, parse_args  # noqa: E402


def logistic_fit(x, y, iters=100):
    """Maximum likelihood of P(y = 1) = 1 / (1 + exp(-(x - c) / w)) by Newton's method;
    returns (c, w)."""
    X = np.stack([np.ones_like(x), x], 1)
    b = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-X @ b))
        H = (X * (p * (1 - p))[:, None]).T @ X
        step = np.linalg.solve(H + 1e-9 * np.eye(2), X.T @ (y - p))
        b += step
        if np.abs(step).max() < 1e-10:
            break
    return -b[0] / b[1], 1 / b[1]


def main():
    data, out, reuse, extra = parse_args(sys.argv[1:], "out/quality_calibrate", __doc__)
    mien = os.environ.get("MIEN_BIN_FAST", "build/mien")
    cfp = os.path.join(data, "cfp_dev")
    pairs = [l.split("\t") for l in open(os.path.join(cfp, "pairs.tsv")).read().splitlines() if l]
    dump, qfile = os.path.join(out, "embeddings.jsonl"), os.path.join(out, "quality.jsonl")
    images = sorted({p for a, b, _, _ in pairs for p in (a, b)})
    if not (reuse and os.path.exists(dump) and os.path.exists(qfile)):
        subprocess.run([mien, "eval", "pairs", "--pairs", os.path.join(cfp, "pairs.tsv"), "--root", cfp,
                        "--json", "--quiet", "--dump", dump] + extra, check=True, capture_output=True)
        an = subprocess.run([mien, "analyze", "--tasks", "quality", "--json", "--quiet"] + extra
                            + [os.path.join(cfp, p) for p in images], capture_output=True, text=True)
        open(qfile, "w").write(an.stdout)
    one = os.path.join(cfp, images[0])
    ver = json.loads(subprocess.run([mien, "verify", "--json", one, one] + extra, check=True,
                                    capture_output=True, text=True).stdout)
    threshold, model = ver["threshold"], ver["model"]
    emb = {}
    for line in open(dump):
        d = json.loads(line)
        emb[d["path"]] = np.array(d["embedding"]) if d.get("found") else None
    norm, qual, image_q = {}, {}, {}
    for line in open(qfile).read().splitlines():
        d = json.loads(line)
        f = central(d.get("faces", []), d.get("width", 0), d.get("height", 0))
        rel = os.path.relpath(d["image"], cfp)
        if f:
            qual[rel], image_q[rel] = f["quality"]["score"], image_quality(f["quality"])
        if f and "feature_norm" in f["quality"]:
            norm[rel] = f["quality"]["feature_norm"]
    if not norm:
        raise SystemExit("%s reports no feature norm (mien analyze measures it only for a calibrated "
                         "embedder): give its spec in src/face/models.c a provisional norm_width (1) and "
                         "rebuild, then run this again for the real centre and width" % model)
    x, y = [], []
    for a, b, same, _ in pairs:
        if same != "1" or emb.get(a) is None or emb.get(b) is None or a not in norm or b not in norm:
            continue
        x.append(min(norm[a], norm[b]))
        y.append(float(emb[a] @ emb[b] >= threshold))
    x, y = np.array(x), np.array(y)
    c, w = logistic_fit(x, y)
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(200):
        i = rng.integers(0, len(x), len(x))
        boot.append(logistic_fit(x[i], y[i]))
    boot = np.array(boot)
    print("cfp_dev: %d same-person pairs with both faces found; %s, threshold %.4f; accepted %.1f%%\n"
          % (len(x), model, threshold, 100 * y.mean()))
    print("| lower feature norm | pairs | accepted | fitted |")
    print("|---|---|---|---|")
    for g in np.array_split(np.argsort(x), 10):
        print("| %.1f - %.1f | %d | %.1f%% | %.1f%% |" % (x[g].min(), x[g].max(), len(g), 100 * y[g].mean(),
                                                      100 * np.mean(1 / (1 + np.exp(-(x[g] - c) / w)))))
    # Not a test (the fit saw these pairs): the errors of all 1,400 pairs at the threshold per
    # quintile of the pair's lower quality, with this build's calibration.
    for name, q in (("quality", qual), ("its image parts alone", image_q)):
        R = []
        for a, b, same, _ in pairs:
            ok = emb.get(a) is not None and emb.get(b) is not None
            sim = float(emb[a] @ emb[b]) if ok else -2.0
            R.append((min(q.get(a, 0.0), q.get(b, 0.0)) if ok else 0.0, (sim >= threshold) != (same == "1")))
        R.sort(key=lambda r: r[0])
        e = [sum(R[i][1] for i in g) for g in np.array_split(np.arange(len(R)), 5)]
        print("\ncfp_dev, %d pairs: errors at the threshold per quintile of the pair's lower score by %s, lowest first: %s"
              % (len(R), name, " ".join(map(str, e))))
    print("\nnorm_centre %.2f (bootstrap 95%%: %.2f - %.2f), norm_width %.2f (%.2f - %.2f)"
          % (c, *np.percentile(boot[:, 0], [2.5, 97.5]), w, *np.percentile(boot[:, 1], [2.5, 97.5])))


if __name__ == "__main__":
    main()
