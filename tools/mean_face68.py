#!/usr/bin/python3
"""The mean 3-D face of the 68 points (iBUG 300-W order) that mien's 68-point head pose fits
(src/face/analyze.c, mean_face68), learned from the points themselves: no 3-D scan, no other
project's model.

    build/mien detect --landmarks 68 --json --quiet $(cat LFW_LIST) > lfw68.jsonl
    build/mien detect --landmarks 68 --json --quiet WIDER_PHOTOS... > wider68.jsonl
    /usr/bin/python3 tools/mean_face68.py lfw68.jsonl wider68.jsonl > table.c

(bench/pose_table.py runs it on every 6th LFW photo and the 300 WIDER FACE photos of
../shared/data.) One rigid shape seen by many cameras: every face is a scaled orthographic view
(scale s, rotation R, shift t) of one shape S (68 x 3). Alternating least squares: each face's
view by the same fit the library runs (the 2x3 linear map of S onto its points, its rows made
orthonormal), then each point of S by least squares over every face, until nothing moves
(Tomasi and Kanade's factorisation, made metric by the rotations; the faces turning in LFW and
WIDER, a few of them to profile, are what give S its depth). The faces that fit worst (the
last 5% by residual) are left out from the fifth round on. Then the gauge: x to the image's
right, y down, z towards the camera (the nose in front of the eyes), the origin midway between
the eye centres, the eye centres one unit apart, and turned so that the mean rotation over the
LFW faces is none: an average LFW face has yaw = pitch = roll = 0, as the five-point fit's mean
face is placed. Prints the C table and, on stderr, what it did.

    /usr/bin/python3 tools/mean_face68.py --five NAME lfw.jsonl

prints instead where a landmark source's five alignment points fall on LFW (from `mien detect
--landmarks SRC --json` on LFW photos): the medians, eyes levelled, the origin midway between
the eye centres, the eye centres one unit apart, made symmetric (the nose on the middle line,
the mouth corners at the mean of their distances to it): the x, y of the five-point fit's mean
face for that source (src/face/analyze.c, mean_face_xy).

    /usr/bin/python3 tools/mean_face68.py --check TABLE.c CFP68.jsonl

fits the 68 points of `mien detect --landmarks 68 --json` on cfp_dev's photos (the largest face
of each) to the table's mean face with its depths as learned, x 0.75 and x 0.5, and prints the
share of frontal photos within 15 degrees of yaw 0, of profiles beyond 45, and the profiles'
median |yaw|: how much of the 68-point fit's failure on profiles is the depth.
"""
import json
import sys

import numpy as np


def faces(path, lfw):
    out = []
    for line in open(path):
        d = json.loads(line)
        fs = [f for f in d.get("faces", []) if len(f.get("landmarks", [])) == 68]
        if not fs:
            continue
        if lfw:  # LFW: the face in the middle of the 250 x 250 photo
            fs = [min(fs, key=lambda f: abs(f["box"][0] + f["box"][2] / 2 - d["width"] / 2)
                      + abs(f["box"][1] + f["box"][3] / 2 - d["height"] / 2))]
        for f in fs:
            if min(f["box"][2], f["box"][3]) < 60:  # too small for the 68-point net (112 px input)
                continue
            out.append(np.array(f["landmarks"], dtype=np.float64))
    return out


def view(S, x):
    """Scaled orthographic view of S onto x (both centred): s, R2 (2 x 3), as the library's
    fit: A = x^T S (S^T S)^-1, rows normalised and made orthogonal evenly."""
    A = x.T @ S @ np.linalg.inv(S.T @ S)
    n = np.linalg.norm(A, axis=1)
    r1, r2 = A[0] / n[0], A[1] / n[1]
    d = r1 @ r2
    r1, r2 = r1 - 0.5 * d * r2, r2 - 0.5 * d * r1
    r1, r2 = r1 / np.linalg.norm(r1), r2 / np.linalg.norm(r2)
    R2 = np.stack([r1, r2])
    s = (x * (S @ R2.T)).sum() / ((S @ R2.T) ** 2).sum()
    return s, R2


def angles(R2):
    r1, r2 = R2
    r3 = np.cross(r1, r2)
    deg = 180 / np.pi
    return (np.arcsin(np.clip(-r3[0], -1, 1)) * deg, np.arctan2(r3[1], r3[2]) * deg,
            np.arctan2(r2[0], r1[0]) * deg)


def gauge(S):
    eye_a, eye_b = S[36:42].mean(0), S[42:48].mean(0)
    S = S - (eye_a + eye_b) / 2
    return S / np.linalg.norm(eye_b - eye_a)


def five(name, path):
    pts = []
    for line in open(path):
        d = json.loads(line)
        fs = [f for f in d.get("faces", []) if len(f.get("points", [])) == 5]
        if not fs:
            continue
        f = min(fs, key=lambda f: abs(f["box"][0] + f["box"][2] / 2 - d["width"] / 2)
                + abs(f["box"][1] + f["box"][3] / 2 - d["height"] / 2))
        P = np.array(f["points"], dtype=np.float64)
        a, b = P[0], P[1]
        ang = np.arctan2(b[1] - a[1], b[0] - a[0])
        c, s_ = np.cos(-ang), np.sin(-ang)
        pts.append((P - (a + b) / 2) @ np.array([[c, s_], [-s_, c]]) / np.linalg.norm(b - a))
    m = np.median(np.stack(pts), axis=0)
    mx = (m[4, 0] - m[3, 0]) / 2
    my = (m[3, 1] + m[4, 1]) / 2
    print("%s (%d LFW faces): nose (0, %.3f), mouth corners (-+%.3f, %.3f); medians %s"
          % (name, len(pts), m[2, 1], mx, my, np.round(m, 3).tolist()))


def check(table, path):
    import re
    S = np.array([float(v) for v in re.findall(r"(-?\d+\.\d+)f", open(table).read())]).reshape(68, 3)
    for k in (1.0, 0.75, 0.5):
        T = S * [1, 1, k]
        fr, pr = [], []
        for line in open(path):
            d = json.loads(line)
            fs = [f for f in d.get("faces", []) if len(f.get("landmarks", [])) == 68]
            if not fs:
                continue
            f = max(fs, key=lambda f: f["box"][2] * f["box"][3])
            x = np.array(f["landmarks"], dtype=np.float64)
            yaw = abs(angles(view(T - T.mean(0), x - x.mean(0))[1])[0])
            (pr if "/profile/" in d["image"] else fr).append(yaw)
        fr, pr = np.array(fr), np.array(pr)
        print("depth x %.2f: frontal |yaw| <= 15 %.2f%% of %d, profile |yaw| >= 45 %.2f%% of %d, "
              "profiles' median |yaw| %.1f" % (k, 100 * (fr <= 15).mean(), len(fr), 100 * (pr >= 45).mean(), len(pr),
                                                np.median(pr)))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if sys.argv[1] == "--check":
        return check(sys.argv[2], sys.argv[3])
    if sys.argv[1] == "--five":
        return five(sys.argv[2], sys.argv[3])
    lfw = faces(sys.argv[1], True)
    other = [f for p in sys.argv[2:] for f in faces(p, False)]
    X = [f - f.mean(0) for f in lfw + other]
    n_lfw = len(lfw)
    # Start: the 2-D mean of the upright faces (eyes levelled, eye distance 1), a rounded depth
    # (an ellipsoid of the face's width and height) and the nose 0.5 in front.
    pts = []
    for f in X[:n_lfw]:
        a, b = f[36:42].mean(0), f[42:48].mean(0)
        ang = np.arctan2(b[1] - a[1], b[0] - a[0])
        c, s_ = np.cos(-ang), np.sin(-ang)
        g = (f - (a + b) / 2) @ np.array([[c, s_], [-s_, c]]) / np.linalg.norm(b - a)
        pts.append(g)
    m2 = np.median(np.stack(pts), axis=0)
    w, h = np.ptp(m2[:, 0]) / 2, np.ptp(m2[:, 1]) / 2
    cy = m2[:, 1].mean()
    z = 0.8 * np.sqrt(np.clip(1 - (m2[:, 0] / (1.05 * w)) ** 2 - ((m2[:, 1] - cy) / (1.3 * h)) ** 2, 0, 1))
    z[27:36] += 0.3 * np.linspace(0.3, 1, 9)
    S = np.column_stack([m2, z])
    S = S - S.mean(0)
    keep = np.ones(len(X), bool)
    prev = None
    for it in range(60):
        views = [view(S, x) for x in X]
        res = np.array([np.sqrt(((x - s * S @ R.T) ** 2).sum(1).mean()) / s for x, (s, R) in zip(X, views)])
        if it >= 4:
            keep = res <= np.percentile(res, 95)
        # each point: least squares over the kept faces
        A = np.concatenate([s * R for (s, R), k in zip(views, keep) if k])  # (2F, 3)
        AtA = A.T @ A
        rhs = np.zeros((68, 3))
        for (s, R), x, k in zip(views, X, keep):
            if k:
                rhs += x @ (s * R)  # (68, 2) @ (2, 3)
        Snew = rhs @ np.linalg.inv(AtA).T
        Snew -= Snew.mean(0)
        Snew /= np.linalg.norm(Snew[36:42].mean(0) - Snew[42:48].mean(0))
        change = np.abs(Snew - S).max()
        S = Snew
        if it % 5 == 0:
            print("round %d: change %.5f, residual (eye distances) median %.4f" % (it, change, np.median(res[keep])),
                  file=sys.stderr)
        if prev is not None and change < 1e-5:
            break
        prev = change
    # Reflection: the nose tip (30) in front of the eyes.
    Sg = gauge(S)
    if Sg[30, 2] < (Sg[36:48, 2]).mean():
        S[:, 2] = -S[:, 2]
    # Turn so that the LFW faces' mean rotation is none.
    Rs = []
    for x in X[:n_lfw]:
        s, R2 = view(S, x)
        Rs.append(np.vstack([R2, np.cross(R2[0], R2[1])]))
    U, _, Vt = np.linalg.svd(np.mean(Rs, axis=0))
    Rm = U @ Vt
    if np.linalg.det(Rm) < 0:
        U[:, -1] *= -1
        Rm = U @ Vt
    S = gauge(S @ Rm.T)
    ys = np.array([angles(view(S, x)[1]) for x in X])
    print("%d LFW faces, %d others, %d kept; yaw of the faces: 5%% %.1f, 50%% %.1f, 95%% %.1f, |yaw| > 45: %d"
          % (n_lfw, len(other), keep.sum(), *np.percentile(ys[:, 0], [5, 50, 95]), (np.abs(ys[:, 0]) > 45).sum()),
          file=sys.stderr)
    print("nose tip (30) depth %.3f, mouth corners %.3f %.3f, chin (8) %.3f, jaw ends %.3f %.3f (eye centres 0)"
          % (S[30, 2], S[48, 2], S[54, 2], S[8, 2], S[0, 2], S[16, 2]), file=sys.stderr)
    print("static const float mean_face68[68][3] = {")
    for i in range(0, 68, 3):
        print("    " + " ".join("{%.3ff, %.3ff, %.3ff}," % tuple(S[j]) for j in range(i, min(i + 3, 68))))
    print("};")


if __name__ == "__main__":
    main()
