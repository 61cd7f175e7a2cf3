#!/usr/bin/python3
"""Small faces in a large photo: does tiling find them, and what does it cost?

Builds a 3x3 collage of dlib's 9 annotated photos (testing.xml + training.xml: 43 faces,
most of them 37-53 px) at their native size (1500x1125), and a 2x upscaled copy
(3000x2250), then runs `mien detect` with and without --tile and counts the annotated faces
found (a detection matches a face when their IoU >= 0.4; dlib's boxes are tighter than
BlazeFace's). OpenCV (Debian python3-opencv) only composes the collage.

usage: /usr/bin/python3 bench/tiling.py [--data DIR] [--bin build/mien]
"""
import argparse, json, os, re, subprocess, sys, tempfile, time
import cv2, numpy as np

ap = argparse.ArgumentParser()
ap.add_argument('--data', default=os.environ.get('MIEN_DATA', '../shared/data'))
ap.add_argument('--bin', default='build/mien')
a = ap.parse_args()
root = os.path.join(a.data, 'dlib_faces')
items = []
for f in ('testing.xml', 'training.xml'):
    t = open(os.path.join(root, f)).read()
    for m in re.finditer(r"<image file='([^']+)'[^>]*>(.*?)</image>", t, re.S):
        boxes = [tuple(map(int, b)) for b in re.findall(
            r"<box top='(-?\d+)' left='(-?\d+)' width='(\d+)' height='(\d+)'", m.group(2))]
        items.append((m.group(1), boxes))
items = items[:9]
W, H = 500, 375
canvas = np.zeros((3 * H, 3 * W, 3), np.uint8)
gt = []
for k, (name, boxes) in enumerate(items):
    img = cv2.imread(os.path.join(root, name))
    oy, ox = (k // 3) * H, (k % 3) * W
    h, w = min(H, img.shape[0]), min(W, img.shape[1])
    canvas[oy:oy + h, ox:ox + w] = img[:h, :w]
    for top, left, bw, bh in boxes:
        if top + bh <= h and left + bw <= w:
            gt.append((left + ox, top + oy, bw, bh))

def iou(a, b):
    ax0, ay0, aw, ah = a; bx0, by0, bw, bh = b
    iw = max(0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0)); ih = max(0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter + 1e-9)

rows = []
with tempfile.TemporaryDirectory() as tmp:
    for scale in (1, 2):
        path = os.path.join(tmp, f'collage{scale}.png')
        img = cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else canvas
        cv2.imwrite(path, img)
        g = [(x * scale, y * scale, w * scale, h * scale) for x, y, w, h in gt]
        for tile in (False, True):
            cmd = [a.bin, 'detect', '--json', path] + (['--tile'] if tile else [])
            t0 = time.time()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            dt = time.time() - t0
            faces = [f['box'] for f in json.loads(out)['faces']]
            found = sum(1 for b in g if any(iou(b, f) >= 0.4 for f in faces))
            false = sum(1 for f in faces if not any(iou(b, f) >= 0.4 for b in g))
            rows.append((f'{img.shape[1]}x{img.shape[0]}', 'on' if tile else 'off', found, len(g), false, dt))
print('| photo | --tile | annotated faces found | detections matching no annotation | time (whole command) |')
print('|---|---|---|---|---|')
for r in rows:
    print(f'| {r[0]} | {r[1]} | {r[2]} of {r[3]} | {r[4]} | {r[5]:.2f} s |')
