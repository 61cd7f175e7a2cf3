#!/usr/bin/python3
"""Ground truth of face boxes for every frame of people/video/short_hamilton_clip.mp4, for the
tracking metric of bench/video_mot.py. Writes bench/video_gt.txt. How it is made:

1. Every frame is decoded (ffmpeg, 275 frames) and upscaled 2x (lanczos), and a slow
   configuration of the detector runs on it: BlazeFace at 1280x720 with the overlapping tiles
   of `mien detect --tile` (7 network runs per frame instead of 1), landmarks none, scores from
   0.3. The tracker under test runs BlazeFace once per frame on the 640x360 frame, from 0.35.
2. The faces and the rules were set by looking at every frame (contact sheets of all 275 frames,
   `--sheets DIR` draws them with the ground truth on top). A face counts when it is at least
   32 px tall, at least half inside the picture, in focus, and shows both eyes (frontal to
   three-quarter view). Shot 1 (frames 1-20): Lin-Manuel Miranda standing; Alex Lacamoire at
   the piano is 27 px tall: an ignore region. Shot 2 (frames 21-82): a full-profile close-up
   (one eye) and an out-of-focus audience: no face counts, the whole frame is an ignore region
   (boxes there are neither right nor wrong). Shot 3 (83-211): Lin-Manuel Miranda. Shot 4
   (212-275): four faces in the audience, Barack and Michelle Obama, Marian Robinson and a
   guest at the left edge; the small out-of-focus faces behind them are ignore regions.
3. Each face of the table FACES starts at the hand-checked box of its first frame and follows,
   frame by frame, the step-1 detection (score >= 0.5) that overlaps its box of the previous
   frame most (IoU >= 0.3); a frame without one gets the box interpolated linearly between its
   neighbours. The sheets were then checked frame by frame: every box on its face, none
   missing, the count of faces right in every frame.

Format of video_gt.txt (MOTChallenge-like): frame (from 1), id, x, y, w, h, flag; flag 1 for
a face that counts, 0 for an ignore region (id -1).
  /usr/bin/python3 bench/video_gt.py [--sheets DIR]
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("MIEN_DATA", os.path.join(ROOT, "..", "shared", "data"))
CLIP = os.path.join(DATA, "people", "video", "short_hamilton_clip.mp4")
MIEN = os.path.join(ROOT, "build", "mien")
W, H, N_FRAMES = 640, 360, 275

# id, who, first frame, last frame, box (x, y, w, h) in the first frame, hand-checked.
FACES = [
    (1, "lin_manuel_miranda, shot 1", 1, 20, (524, 57, 42, 42)),
    (2, "lin_manuel_miranda, shot 3", 83, 211, (130, 69, 89, 89)),
    (3, "obama", 212, 275, (315, 57, 70, 70)),
    (4, "michelle_obama", 212, 275, (375, 98, 83, 83)),
    (5, "marian_robinson", 212, 275, (161, 90, 88, 88)),
    (6, "guest at the left edge", 212, 275, (37, 74, 67, 67)),
]
# Ignore regions: (first frame, last frame, box followed like a face or None for fixed, box).
IGNORE = [
    (1, 20, "follow", (52, 191, 27, 27)),      # Alex Lacamoire at the piano, 27 px
    (21, 82, "fixed", (0, 0, W, H)),           # shot 2: profile close-up, blurred audience
    (212, 275, "fixed", (0, 0, 150, 60)),      # shot 4: small faces behind, top left
    (212, 275, "fixed", (440, 0, 200, 90)),    # shot 4: small faces behind, top right
    (212, 275, "fixed", (600, 60, 40, 140)),   # shot 4: a face cut by the right edge
]


def iou(a, b):
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = ix * iy if ix > 0 and iy > 0 else 0.0
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def detect_all(tmp):
    """Step 1: the slow detector on every frame, boxes in 640x360 pixels."""
    frames = os.path.join(tmp, "frames")
    os.makedirs(frames)
    subprocess.run(["ffmpeg", "-v", "error", "-i", CLIP, "-vf", "scale=1280:720:flags=lanczos",
                    "-vsync", "0", "-start_number", "1", os.path.join(frames, "%04d.png")], check=True)
    paths = sorted(os.path.join(frames, f) for f in os.listdir(frames))
    assert len(paths) == N_FRAMES, len(paths)
    out = subprocess.run([MIEN, "detect", "--json", "--tile", "--min-score", "0.3", "--landmarks",
                          "none", "--quiet"] + paths, check=True, capture_output=True, text=True).stdout
    dets = {}
    for i, line in enumerate(out.strip().split("\n")):
        o = json.loads(line)
        dets[i + 1] = [(f["score"], [v / 2 for v in f["box"]]) for f in o["faces"]]
    return dets


def follow(dets, first, last, box):
    """Step 3: one face through its frames; None where no detection follows it."""
    boxes, prev = {}, list(box)
    for fr in range(first, last + 1):
        cands = [(iou(b, prev), b) for s, b in dets[fr] if s >= 0.5]
        best = max(cands, default=(0, None))
        if best[0] >= 0.3:
            boxes[fr] = prev = best[1]
        else:
            boxes[fr] = None
    if boxes[first] is None:
        boxes[first] = list(box)
    # Gaps: linear interpolation between the known neighbours (held at the ends).
    known = [fr for fr in boxes if boxes[fr] is not None]
    for fr in boxes:
        if boxes[fr] is not None:
            continue
        a = max((k for k in known if k < fr), default=None)
        b = min((k for k in known if k > fr), default=None)
        if a is None or b is None:
            boxes[fr] = list(boxes[a if b is None else b])
        else:
            t = (fr - a) / (b - a)
            boxes[fr] = [(1 - t) * p + t * q for p, q in zip(boxes[a], boxes[b])]
    return boxes


def sheets(gt, out_dir):
    """Contact sheets of every frame with the ground truth drawn (faces green, ignore red)."""
    os.makedirs(out_dir, exist_ok=True)
    filters = []
    for fr, fid, x, y, w, h, flag in gt:
        color = "lime" if flag else "red"
        filters.append("drawbox=x=%d:y=%d:w=%d:h=%d:color=%s:t=3:enable='eq(n\\,%d)'"
                       % (x, y, w, h, color, fr - 1))
    filters.append("drawtext=text='%{n}':x=5:y=5:fontsize=28:fontcolor=yellow:box=1:boxcolor=black")
    filters.append("scale=320:-1,tile=4x5")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(",\n".join(filters))
        script = f.name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", CLIP, "-filter_script:v", script, "-vsync", "0",
                    os.path.join(out_dir, "gt_%02d.png")], check=True)
    os.unlink(script)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        dets = detect_all(tmp)
    gt = []
    for fid, _, first, last, box in FACES:
        for fr, b in follow(dets, first, last, box).items():
            gt.append((fr, fid) + tuple(round(v, 1) for v in b) + (1,))
    for first, last, how, box in IGNORE:
        boxes = follow(dets, first, last, box) if how == "follow" else \
            {fr: box for fr in range(first, last + 1)}
        for fr, b in boxes.items():
            gt.append((fr, -1) + tuple(round(v, 1) for v in b) + (0,))
    gt.sort()
    path = os.path.join(ROOT, "bench", "video_gt.txt")
    with open(path, "w") as f:
        f.write("# frame,id,x,y,w,h,flag (1 face, 0 ignore region): made by bench/video_gt.py\n")
        for row in gt:
            f.write("%d,%d,%.1f,%.1f,%.1f,%.1f,%d\n" % row)
    counts = {}
    for row in gt:
        if row[6]:
            counts[row[0]] = counts.get(row[0], 0) + 1
    print("%s: %d face boxes over %d frames (%d frames without a face that counts)"
          % (path, sum(counts.values()), N_FRAMES, N_FRAMES - len(counts)))
    if "--sheets" in sys.argv:
        sheets(gt, sys.argv[sys.argv.index("--sheets") + 1])


if __name__ == "__main__":
    main()
