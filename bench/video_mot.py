#!/usr/bin/python3
"""Tracking metrics of `mien video` on the test clip against bench/video_gt.txt (made by
bench/video_gt.py, see there how): CLEAR MOT (MOTA, MOTP, misses, false positives, identity
switches, Bernardin and Stiefelhagen 2008) and IDF1 (Ristani et al. 2016), at IoU 0.5.

Per frame, a ground-truth face keeps the track it was matched to in the previous frame while
their IoU stays >= 0.5; the others are matched by the Hungarian method on 1 - IoU. A box
left unmatched is a false positive unless it lies in an ignore region (half of it or more
inside one); a face left unmatched is a miss; a face matched to another track than last time
is an identity switch. MOTA = 1 - (misses + false positives + switches) / faces. IDF1 matches
face identities to track ids once for the whole clip (Hungarian on the frames they share).

The tracker runs with the people/examples gallery (as bench/video_fps.sh), detection on every
frame and on every third.
  /usr/bin/python3 bench/video_mot.py         writes out/video_mot.md
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("MIEN_DATA", os.path.join(ROOT, "..", "shared", "data"))
CLIP = os.path.join(DATA, "people", "video", "short_hamilton_clip.mp4")
EX = os.path.join(DATA, "people", "examples")
MIEN = os.path.join(ROOT, "build", "mien")


def iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = ix * iy if ix > 0 and iy > 0 else 0.0
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def inside(a, region):
    """Fraction of box a inside region."""
    ix = min(a[0] + a[2], region[0] + region[2]) - max(a[0], region[0])
    iy = min(a[1] + a[3], region[1] + region[3]) - max(a[1], region[1])
    return (ix * iy) / (a[2] * a[3]) if ix > 0 and iy > 0 and a[2] * a[3] > 0 else 0.0


def hungarian(cost):
    """Minimum-cost assignment of a rectangular cost matrix (rows <= cols after transposing):
    returns [(row, col)]. Shortest augmenting paths with potentials, O(n^2 m)."""
    n = len(cost)
    m = len(cost[0]) if n else 0
    if n == 0 or m == 0:
        return []
    if n > m:
        t = [[cost[i][j] for i in range(n)] for j in range(m)]
        return [(i, j) for j, i in hungarian(t)]
    inf = float("inf")
    u, v, p, way = [0.0] * (n + 1), [0.0] * (m + 1), [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]]


def read_boxes(path, with_flag):
    frames = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        f = line.strip().split(",")
        fr, tid, box = int(f[0]), int(f[1]), tuple(float(x) for x in f[2:6])
        flag = int(f[6]) if with_flag else 1
        frames.setdefault(fr, []).append((tid, box, flag))
    return frames


def evaluate(gt, hyp, n_frames):
    faces = misses = fps = switches = 0
    ious = []
    last = {}                     # face id -> track id it was last matched to
    pair_frames = {}              # (face id, track id) -> frames matched at IoU >= 0.5
    n_gt_ids, n_hyp = {}, {}
    for fr in range(1, n_frames + 1):
        g = [(i, b) for i, b, flag in gt.get(fr, []) if flag]
        ign = [b for i, b, flag in gt.get(fr, []) if not flag]
        h = [(i, b) for i, b, _ in hyp.get(fr, [])]
        # Boxes in ignore regions (and not on a face) count for nothing.
        h = [(i, b) for i, b in h if max((iou(b, gb) for _, gb in g), default=0) >= 0.5
             or max((inside(b, r) for r in ign), default=0) < 0.5]
        faces += len(g)
        for i, _ in g:
            n_gt_ids[i] = n_gt_ids.get(i, 0) + 1
        for i, _ in h:
            n_hyp[i] = n_hyp.get(i, 0) + 1
        for gi, gb in g:
            for hi, hb in h:
                if iou(gb, hb) >= 0.5:
                    pair_frames[(gi, hi)] = pair_frames.get((gi, hi), 0) + 1
        matched, used_g, used_h = [], set(), set()
        for gi, gb in g:           # continuity first
            for hi, hb in h:
                if last.get(gi) == hi and hi not in used_h and iou(gb, hb) >= 0.5:
                    matched.append((gi, hi, iou(gb, hb)))
                    used_g.add(gi)
                    used_h.add(hi)
        rg = [(gi, gb) for gi, gb in g if gi not in used_g]
        rh = [(hi, hb) for hi, hb in h if hi not in used_h]
        cost = [[1 - iou(gb, hb) if iou(gb, hb) >= 0.5 else 9 for hi, hb in rh] for gi, gb in rg]
        for a, b in hungarian(cost):
            if cost[a][b] <= 0.5:
                matched.append((rg[a][0], rh[b][0], 1 - cost[a][b]))
        for gi, hi, v in matched:
            if gi in last and last[gi] != hi:
                switches += 1
            last[gi] = hi
            ious.append(v)
        misses += len(g) - len(matched)
        fps += len(h) - len(matched)
    gids, hids = sorted(n_gt_ids), sorted(n_hyp)
    cost = [[-pair_frames.get((gi, hi), 0) for hi in hids] for gi in gids]
    idtp = -sum(cost[a][b] for a, b in hungarian(cost))
    idf1 = 2 * idtp / (sum(n_gt_ids.values()) + sum(n_hyp.values())) if faces else 0
    return {"faces": faces, "misses": misses, "fp": fps, "switches": switches,
            "mota": 1 - (misses + fps + switches) / faces, "motp": sum(ious) / max(len(ious), 1),
            "idf1": idf1, "tracks": len(hids), "face_ids": len(gids)}


def main():
    gt = read_boxes(os.path.join(ROOT, "bench", "video_gt.txt"), True)
    n_frames = 275
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        g = os.path.join(tmp, "g.db")
        run = lambda *a: subprocess.run([MIEN] + list(a), check=True, capture_output=True)
        run("enroll", "--gallery", g, "--from-dir", os.path.join(EX, "knn_examples", "train"))
        run("enroll", "--gallery", g, "lin_manuel_miranda", os.path.join(EX, "lin-manuel-miranda.png"))
        run("enroll", "--gallery", g, "alex_lacamoire", os.path.join(EX, "alex-lacamoire.png"))
        run("enroll", "--gallery", g, "obama", *[os.path.join(EX, f) for f in
            ("obama.jpg", "obama2.jpg", "obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg",
             "obama-1080p.jpg", "obama_small.jpg")])
        for every in (1, 3):
            mot = os.path.join(tmp, "mot%d.txt" % every)
            run("video", CLIP, "--gallery", g, "--quiet", "--json", "--detect-every", str(every),
                "--mot", mot, *sys.argv[1:])
            r = evaluate(gt, read_boxes(mot, False), n_frames)
            r["every"] = every
            rows.append(r)
    lines = ["| detection | MOTA | IDF1 | MOTP (IoU) | misses | false positives | ID switches | "
             "tracks / faces |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| %s | %.1f%% | %.1f%% | %.3f | %d | %d | %d | %d / %d |" % (
            "every frame" if r["every"] == 1 else "every %d frames" % r["every"], 100 * r["mota"],
            100 * r["idf1"], r["motp"], r["misses"], r["fp"], r["switches"], r["tracks"], r["face_ids"]))
    lines.append("")
    lines.append("%d face boxes in %d frames (bench/video_gt.txt)" % (rows[0]["faces"], n_frames))
    os.makedirs(os.path.join(ROOT, "out"), exist_ok=True)
    with open(os.path.join(ROOT, "out", "video_mot.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
