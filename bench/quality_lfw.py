#!/usr/bin/python3
"""Does mien's face quality predict verification errors? LFW's 6,000 pairs (View 2), sorted
by the quality of the pair's lower-quality face and cut into five equal groups (quintiles):
the error rate of each group, at the 10-fold accuracy threshold and at the embedder's
default threshold (FAR 1e-3). A useful quality has errors falling from the lowest quintile
to the highest. Then the errors left when the pairs of lowest quality are turned away (2% to
50%), ordered by the quality, by its image parts alone and by its recognizability alone,
as a table and as curves (OUT/erc.png).

    /usr/bin/python3 bench/quality_lfw.py [--data DIR] [--out DIR] [--reuse] [-- extra mien options]

Runs build/mien eval pairs (embeddings of every photo, --dump) and build/mien analyze
--tasks quality (quality of every face), takes for each photo the face eval pairs takes (the
one nearest the centre among the large ones, as cli_pick_central), and prints a Markdown
table (README, "Face analysis"). The per-pair numbers are left in OUT/pairs_quality.tsv.
A pair with a photo without a face counts as an error of the lowest quintile (quality 0), as
eval pairs counts it rejected. --reuse takes OUT/embeddings.jsonl, OUT/pairs.json and
OUT/quality.jsonl from an earlier run instead of computing them again. $MIEN_BIN_FAST names
the mien binary (default build/mien).
"""
import json
import os
import subprocess
import sys

import numpy as np


def central(faces, w, h):
    """cli_pick_central: nearest the centre among faces at least half the largest's side."""
    if not faces:
        return None
    big = max(faces, key=lambda f: f["box"][2] * f["box"][3])
    minside = 0.5 * max(big["box"][2], big["box"][3])
    best, dmin = None, float("inf")
    for f in faces:
        if max(f["box"][2], f["box"][3]) < minside:
            continue
        dx = f["box"][0] + f["box"][2] * 0.5 - w * 0.5
        dy = f["box"][1] + f["box"][3] * 0.5 - h * 0.5
        if dx * dx + dy * dy < dmin:
            best, dmin = f, dx * dx + dy * dy
    return best


def ramp(v, lo, hi):
    if not v > lo:
        return 0.0
    if v >= hi:
        return 1.0
    t = (v - lo) / (hi - lo)
    return t * t * (3 - 2 * t)


def image_quality(q):
    """The geometric mean of a face's image parts, as analyze.c makes it (the eyes part 0.5 +
    0.5 x its ramp): the quality without the recognizability."""
    s = q["scores"]
    parts = [s[k] for k in ("sharpness", "brightness", "contrast", "face_size", "pose")]
    if q.get("eyes_open", -1) >= 0:
        parts.append(0.5 + 0.5 * ramp(q["eyes_open"], 0.1, 0.6))
    p = float(np.prod(parts))
    return p ** (1.0 / len(parts)) if p > 0 else 0.0


def read_pairs(path):
    """LFW pairs.txt: (relpath_a, relpath_b, same, fold)."""
    lines = open(path).read().split("\n")
    folds, per = (int(v) for v in lines[0].split())
    out, i = [], 1
    for fold in range(folds):
        for same in (1, 0):
            for _ in range(per):
                t = lines[i].split("\t")
                i += 1
                if same:
                    a = "%s/%s_%04d.jpg" % (t[0], t[0], int(t[1]))
                    b = "%s/%s_%04d.jpg" % (t[0], t[0], int(t[2]))
                else:
                    a = "%s/%s_%04d.jpg" % (t[0], t[0], int(t[1]))
                    b = "%s/%s_%04d.jpg" % (t[2], t[2], int(t[3]))
                out.append((a, b, same, fold))
    return out


def parse_args(argv, out, usage):
    """[--data DIR] [--out DIR] [--reuse] [-- extra mien options]: (data, out, reuse, extra),
    out made; usage is printed for anything else."""
    args, extra = list(argv), []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    data = os.environ.get("MIEN_DATA", "../shared/data")
    reuse = False
    while args:
        k = args.pop(0)
        if k == "--data" and args:
            data = args.pop(0)
        elif k == "--out" and args:
            out = args.pop(0)
        elif k == "--reuse":
            reuse = True
        else:
            raise SystemExit(usage)
    os.makedirs(out, exist_ok=True)
    return data, out, reuse, extra


def main():
    data, out, reuse, extra = parse_args(sys.argv[1:], "out/quality", __doc__)
    lfw = os.path.join(data, "lfw")
    pairs = read_pairs(os.path.join(lfw, "pairs.txt"))
    dump = os.path.join(out, "embeddings.jsonl")
    summary_file = os.path.join(out, "pairs.json")
    if not (reuse and os.path.exists(dump) and os.path.exists(summary_file)):
        ev = subprocess.run([os.environ.get("MIEN_BIN_FAST", "build/mien"), "eval", "pairs", "--pairs", os.path.join(lfw, "pairs.txt"),
                             "--root", lfw, "--json", "--quiet", "--dump", dump] + extra,
                            check=True, capture_output=True, text=True)
        open(summary_file, "w").write(ev.stdout)
    summary = json.load(open(summary_file))
    emb = {}
    for line in open(dump):
        d = json.loads(line)
        emb[d["path"]] = np.array(d["embedding"], dtype=np.float64) if d.get("found") else None
    images = sorted({p for a, b, _, _ in pairs for p in (a, b)})
    qfile = os.path.join(out, "quality.jsonl")
    if not (reuse and os.path.exists(qfile)):
        an = subprocess.run([os.environ.get("MIEN_BIN_FAST", "build/mien"), "analyze", "--tasks", "quality", "--json", "--quiet"] + extra
                            + [os.path.join(lfw, p) for p in images],
                            capture_output=True, text=True)
        open(qfile, "w").write(an.stdout)
    qual, image_q, recog = {}, {}, {}
    for line in open(qfile).read().splitlines():
        d = json.loads(line)
        rel = os.path.relpath(d["image"], lfw)
        f = central(d.get("faces", []), d.get("width", 0), d.get("height", 0))
        qual[rel] = f["quality"]["score"] if f else 0.0
        image_q[rel] = image_quality(f["quality"]) if f else 0.0
        recog[rel] = f["quality"]["scores"].get("recognizability", -1.0) if f else 0.0
    thresholds = {"accuracy threshold (10-fold mean)": summary["threshold_mean"],
                  "default threshold (FAR 1e-3)": summary["threshold_at_far_1e-3"]}
    rows = []
    for a, b, same, fold in pairs:
        ea, eb = emb.get(a), emb.get(b)
        sim = float(ea @ eb) if ea is not None and eb is not None else -2.0
        q = min(qual.get(a, 0.0), qual.get(b, 0.0)) if sim > -2 else 0.0
        rows.append((q, sim, same))
    rows.sort(key=lambda r: r[0])
    q = np.array([r[0] for r in rows])
    sim = np.array([r[1] for r in rows])
    same = np.array([r[2] for r in rows])
    with open(os.path.join(out, "pairs_quality.tsv"), "w") as f:
        f.write("#min_quality\tsimilarity\tsame\n")
        for r in rows:
            f.write("%.4f\t%.6f\t%d\n" % r)
    groups = np.array_split(np.arange(len(rows)), 5)
    print("LFW, %d pairs by the quality of their lower-quality face (%s, %s; quality: "
          "`mien analyze --tasks quality`)\n" % (len(rows), summary["embedder"], summary["detector"]))
    head = "| quintile | quality range | " + " | ".join("errors at the %s %.3f" % (k, v) for k, v in thresholds.items()) + " |"
    print(head)
    print("|---|---|" + "---|" * len(thresholds))
    monotone = {}
    for k in thresholds:
        monotone[k] = []
    for i, g in enumerate(groups):
        cells = []
        for k, t in thresholds.items():
            err = np.mean((sim[g] >= t) != (same[g] == 1))
            monotone[k].append(err)
            cells.append("%.2f%% (%d of %d)" % (100 * err, int(round(err * len(g))), len(g)))
        print("| %d%s | %.3f - %.3f | %s |" % (i + 1, " (lowest)" if i == 0 else " (highest)" if i == 4 else "",
                                            q[g].min(), q[g].max(), " | ".join(cells)))
    for k, v in monotone.items():
        ok = all(v[i] >= v[i + 1] for i in range(len(v) - 1))
        print("\n%s: error rate %s from the lowest to the highest quintile" %
              (k, "falls at every step" if ok else "does not fall at every step"))
    # Rejecting the lowest-quality pairs: what a quality is for (an error-versus-reject curve).
    scores = [("quality", qual), ("its image parts alone", image_q)]
    if all(v >= 0 for v in recog.values()):
        scores.append(("its recognizability alone", recog))
    shares = (0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)
    curves = {}
    print("\nErrors left after turning away the pairs of lowest quality (the share of the 6,000 "
          "pairs turned away, by the lower quality of the two faces):\n")
    print("| ordered by | " + " | ".join("%g%%" % (100 * x) for x in shares) + " |")
    print("|---|" + "---|" * len(shares))
    for k, t in thresholds.items():
        for name, qd in scores:
            R = []
            for a, b, same, fold in pairs:
                ea, eb = emb.get(a), emb.get(b)
                sim = float(ea @ eb) if ea is not None and eb is not None else -2.0
                R.append((min(qd.get(a, 0.0), qd.get(b, 0.0)) if sim > -2 else 0.0, sim, same))
            R.sort(key=lambda r: r[0])
            e = np.array([(r[1] >= t) != (r[2] == 1) for r in R])
            print("| %s, %s | " % (name, k) + " | ".join("%d" % e[int(len(R) * x):].sum() for x in shares) + " |")
            # errors left after turning away the first i pairs, i = 0 .. half of them
            curves.setdefault(k, []).append((name, np.cumsum(e[::-1])[::-1][:len(R) // 2 + 1]))
    path = os.path.join(out, "erc.png")
    plot_erc(curves, len(pairs), path)
    print("\n(The curves: %s.)" % path)


def plot_erc(curves, n_pairs, path):
    """The error-versus-reject curves as a picture (OpenCV): one panel per threshold, the
    errors left against the share of pairs turned away, one line per ordering."""
    import cv2
    colours = [(40, 40, 220), (200, 120, 30), (40, 160, 40)]
    W, H, L, B = 520, 360, 60, 50
    panels = []
    for k, lines in curves.items():
        img = np.full((H, W, 3), 255, np.uint8)
        top = max(int(c[0]) for _, c in lines)
        x = lambda i: int(L + (W - L - 20) * i / (len(lines[0][1]) - 1))
        y = lambda v: int(H - B - (H - B - 30) * v / max(top, 1))
        cv2.rectangle(img, (L, 30), (W - 20, H - B), (0, 0, 0), 1)
        for f in (0, 0.1, 0.2, 0.3, 0.4, 0.5):
            xi = x(int(f * n_pairs))
            cv2.line(img, (xi, H - B), (xi, H - B + 4), (0, 0, 0), 1)
            cv2.putText(img, "%d%%" % round(100 * f), (xi - 12, H - B + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        for v in range(0, top + 1, max(1, top // 5)):
            cv2.putText(img, str(v), (L - 28, y(v) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        for j, (name, c) in enumerate(lines):
            pts = np.array([[x(i), y(v)] for i, v in enumerate(c)], np.int32)
            cv2.polylines(img, [pts], False, colours[j % 3], 2, cv2.LINE_AA)
            cv2.putText(img, name, (W - 230, 50 + 16 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colours[j % 3], 1, cv2.LINE_AA)
        cv2.putText(img, "errors left, %s" % k, (L, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "pairs turned away, lowest quality first", (L + 60, H - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(img)
    cv2.imwrite(path, np.hstack(panels))


if __name__ == "__main__":
    main()
