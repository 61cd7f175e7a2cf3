"""A drop-in for the face_recognition package, on mien:

    import mien.face_recognition as face_recognition

offers face_recognition's public functions with the same names, arguments, return types and
orders: load_image_file, face_locations, batch_face_locations, face_landmarks, face_encodings,
compare_faces, face_distance. Boxes are (top, right, bottom, left) in pixels, trimmed to the
image; landmarks are dicts of named lists of (x, y) integer points; encodings are 128-float
NumPy arrays.

How face_recognition's choices map onto mien's (README, "From Python"):

- model="hog" (default) is mien's default detector (BlazeFace, 256 x 256, with the face mesh
  refining the alignment points); model="cnn" is face-api's SSD MobileNet (slower, finds a
  few more faces in crowded photos).
- number_of_times_to_upsample n: dlib's detector finds faces down to about 80 / 2**n pixels,
  so mien keeps faces of at least 80 / 2**n pixels (80 at n=0, 40 at the default n=1), and
  from n=2 on also searches overlapping tiles of the photo for small faces.
- face_landmarks: model="large" (default) gives the 68 iBUG points of face-api's 68-point net
  grouped as face_recognition groups them (chin, left_eyebrow, right_eyebrow, nose_bridge,
  nose_tip, left_eye, right_eye, top_lip, bottom_lip); model="small" gives the 5-point layout
  (left_eye and right_eye as 2 corners each, nose_tip as 1 point), from the same net.
- face_encodings: model="small" (default) aligns on mien's default 5 points (face mesh),
  model="large" on the 68 points (dlib's own alignment). num_jitters > 1 averages the
  embeddings of that many slightly moved, turned and scaled crops (a fixed random sequence,
  so results repeat).
- Distances: mien compares L2-normalised embeddings by cosine similarity, with a threshold t
  set on LFW (0.9286 for the dlib ResNet: one impostor pair in a thousand accepted). An
  encoding here is mien's unit embedding times k = 0.6 / sqrt(2 - 2 t), so the Euclidean
  distance between two encodings is
      d = 0.6 * sqrt((1 - cos) / (1 - t)),
  0 for identical faces, exactly 0.6 at mien's threshold, and compare_faces(tolerance=0.6)
  says "same" exactly when mien does. face_distance is that Euclidean distance, as in
  face_recognition, so code that computes np.linalg.norm on encodings itself gets the same.

The models are opened on first use and shared by every call (and thread) of the process; they
are found as the `mien` command finds them ($MIEN_MODELS, ./models, ...).
"""

import hashlib
import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import mien

__all__ = ["load_image_file", "face_locations", "batch_face_locations", "face_landmarks",
           "face_encodings", "compare_faces", "face_distance"]

# ---- the models, opened once ------------------------------------------------------------------

# dlib's ResNet in every kind: face_recognition's encodings are dlib's 128-d descriptors, and
# programs keep them (mien's own default recognizer is another, 192-d one).
_KINDS = {
    # face_recognition's HOG detector looks for frontal faces; BlazeFace with the face mesh,
    # on whose points dlib's ResNet was measured, stands in for it (mien's own default stage,
    # UltraFace and O-Net, also finds profiles and bystanders).
    "default": {"detector": "blazeface", "landmarks": "facemesh", "embedder": "dlib"},
    "68": {"detector": "blazeface", "landmarks": "68", "embedder": "dlib"},
    "cnn": {"detector": "ssd", "embedder": "dlib"},     # face-api's SSD + face mesh + dlib ResNet
}
_models = {}
_models_lock = threading.Lock()


def _get(kind="default"):
    m = _models.get(kind)
    if m is None:
        with _models_lock:
            m = _models.get(kind)
            if m is None:
                m = mien.Models(**_KINDS[kind])
                _models[kind] = m
    return m


def _scale():
    """k of the module doc: encodings are unit embeddings times k."""
    t = _get().threshold
    return 0.6 / math.sqrt(2.0 - 2.0 * t)


# ---- images ------------------------------------------------------------------------------------

def load_image_file(file, mode="RGB"):
    """Load an image file (.jpg, .png, .webp; a path or a file object) into a NumPy array:
    (H, W, 3) uint8 for mode "RGB", (H, W) for mode "L" (luma). EXIF orientation is applied."""
    if mode not in ("RGB", "L"):
        raise ValueError("load_image_file: mode is 'RGB' or 'L', not %r" % (mode,))
    m = _get()
    if hasattr(file, "read"):
        img = m.decode_image(file.read())
    else:
        img = m.load_image(file)
    if mode == "L":
        # ITU-R 601-2 luma, as PIL's convert("L")
        y = (img[:, :, 0].astype(np.uint32) * 299 + img[:, :, 1].astype(np.uint32) * 587 +
             img[:, :, 2].astype(np.uint32) * 114 + 500) // 1000
        return y.astype(np.uint8)
    return img


def _image(img):
    a = np.asarray(img)
    if a.dtype != np.uint8:
        if a.dtype.kind == "f" and a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    return a


def _key(a):
    """Identity of an image's pixels, for the detection cache."""
    a = np.ascontiguousarray(a)
    return (a.shape, hashlib.blake2b(memoryview(a).cast("B"), digest_size=16).digest())


# ---- detection, with a small cache so that face_encodings(img, face_locations(img)) and
# face_landmarks(img, face_locations(img)) reuse the faces just found instead of detecting again.

_cache = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 16


def _detect_options(upsample):
    n = max(0, int(upsample))
    return {"min_size": 80.0 / (2 ** n), "tile": n >= 2}


def _detect(a, key, kind, upsample):
    ck = (key, kind, max(0, int(upsample)))
    with _cache_lock:
        faces = _cache.get(ck)
        if faces is not None:
            _cache.move_to_end(ck)
            return faces
    faces = _get(kind).detect(a, **_detect_options(upsample))
    with _cache_lock:
        _cache[ck] = faces
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return faces


def _css(face, shape):
    top, right, bottom, left = face.css
    return max(top, 0), min(right, shape[1]), min(bottom, shape[0]), max(left, 0)


def _iou(a, b):
    """IoU of two (top, right, bottom, left) boxes."""
    ih = min(a[2], b[2]) - max(a[0], b[0])
    iw = min(a[1], b[1]) - max(a[3], b[3])
    if ih <= 0 or iw <= 0:
        return 0.0
    inter = ih * iw
    ua = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3]) - inter
    return inter / ua if ua > 0 else 0.0


def _faces_for(a, key, kind, locations):
    """mien Faces (with the landmarks of models `kind`) for given (top, right, bottom, left)
    boxes: the face this process detected there when there is one (same box, or IoU >= 0.5
    with a fresh detection), else the landmark net run on the box itself."""
    m = _get(kind)
    found = []
    with _cache_lock:
        for (k, kd, _), faces in _cache.items():
            if k == key and kd == kind:
                found.extend(faces)
    out = []
    detected = None
    for loc in locations:
        loc = tuple(int(v) for v in loc)
        face = next((f for f in found if _css(f, a.shape) == loc), None)
        if face is None:
            if detected is None:
                detected = _detect(a, key, kind, 1)
            best = max(detected, key=lambda f: _iou(_css(f, a.shape), loc), default=None)
            if best is not None and _iou(_css(best, a.shape), loc) >= 0.5:
                face = best
        if face is None:
            top, right, bottom, left = loc
            face = m.landmarks(a, (left, top, max(right - left, 1), max(bottom - top, 1)))
        out.append(face)
    return out


def face_locations(img, number_of_times_to_upsample=1, model="hog"):
    """The faces of an image as a list of (top, right, bottom, left) tuples.

    model: "hog" (mien's default detector) or "cnn" (face-api's SSD). number_of_times_to_upsample:
    higher finds smaller faces (module doc)."""
    if model not in ("hog", "cnn"):
        raise ValueError("face_locations: model is 'hog' or 'cnn', not %r" % (model,))
    a = _image(img)
    faces = _detect(a, _key(a), "cnn" if model == "cnn" else "default", number_of_times_to_upsample)
    return [_css(f, a.shape) for f in faces]


def batch_face_locations(images, number_of_times_to_upsample=1, batch_size=128):
    """face_locations(model="cnn") of each image of a list, on all cores: a list of lists."""
    images = list(images)
    if not images:
        return []
    workers = min(len(images), os.cpu_count() or 1, max(1, int(batch_size)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda im: face_locations(im, number_of_times_to_upsample, "cnn"),
                             images))


# ---- landmarks ---------------------------------------------------------------------------------

def _group68(p):
    pt = [(int(round(float(x))), int(round(float(y)))) for x, y in p]
    return {
        "chin": pt[0:17],
        "left_eyebrow": pt[17:22],
        "right_eyebrow": pt[22:27],
        "nose_bridge": pt[27:31],
        "nose_tip": pt[31:36],
        "left_eye": pt[36:42],
        "right_eye": pt[42:48],
        "top_lip": pt[48:55] + [pt[64], pt[63], pt[62], pt[61], pt[60]],
        "bottom_lip": pt[54:60] + [pt[48], pt[60], pt[67], pt[66], pt[65], pt[64]],
    }


def _group5(p):
    pt = [(int(round(float(x))), int(round(float(y)))) for x, y in p]
    # dlib's 5-point layout: the outer and inner corner of each eye, the base of the nose.
    return {"nose_tip": [pt[33]], "left_eye": [pt[36], pt[39]], "right_eye": [pt[45], pt[42]]}


def face_landmarks(face_image, face_locations=None, model="large"):
    """For each face (all faces found, or the given (top, right, bottom, left) boxes), a dict of
    named lists of (x, y) points: model "large" the 68-point groups, "small" the 5-point ones."""
    if model not in ("large", "small"):
        raise ValueError("face_landmarks: model is 'large' or 'small', not %r" % (model,))
    a = _image(face_image)
    key = _key(a)
    if face_locations is None:
        faces = _detect(a, key, "68", 1)
    else:
        faces = _faces_for(a, key, "68", face_locations)
    group = _group68 if model == "large" else _group5
    return [group(f.landmarks) for f in faces if f.landmarks.shape[0] == 68]


# ---- encodings ---------------------------------------------------------------------------------

def _jittered(face, rng):
    """A copy of face with its landmarks and points moved by a small random similarity
    transform about the box centre (up to 3 degrees, 4% scale, 2% of the box shift)."""
    x, y, w, h = face.box
    cx, cy, side = x + w / 2, y + h / 2, max(w, h)
    ang = np.deg2rad(rng.uniform(-3, 3))
    s = 1 + rng.uniform(-0.04, 0.04)
    tx, ty = rng.uniform(-0.02, 0.02, 2) * side
    c, sn = s * np.cos(ang), s * np.sin(ang)
    f = mien.Face.from_box(face.box)
    src, dst = face._c, f._c
    dst.n_landmarks, dst.n_points = src.n_landmarks, src.n_points
    for field, n in (("landmarks", src.n_landmarks), ("points", src.n_points)):
        a, b = getattr(src, field), getattr(dst, field)
        for i in range(n):
            px, py = a[i][0] - cx, a[i][1] - cy
            b[i][0] = cx + c * px - sn * py + tx
            b[i][1] = cy + sn * px + c * py + ty
    return f


def face_encodings(face_image, known_face_locations=None, num_jitters=1, model="small"):
    """The 128-float encoding of each face (all faces found, or the given (top, right, bottom,
    left) boxes), in the same order. The Euclidean distance between two encodings is
    face_distance's (module doc)."""
    if model not in ("small", "large"):
        raise ValueError("face_encodings: model is 'small' or 'large', not %r" % (model,))
    kind = "68" if model == "large" else "default"
    m = _get(kind)
    a = _image(face_image)
    key = _key(a)
    if known_face_locations is None:
        faces = _detect(a, key, kind, 1)
    else:
        faces = _faces_for(a, key, kind, known_face_locations)
    k = _scale()
    out = []
    for f in faces:
        e = m.embed(a, f).astype(np.float64)
        if num_jitters > 1:
            rng = np.random.default_rng(12345)
            for _ in range(int(num_jitters) - 1):
                e += m.embed(a, _jittered(f, rng))
            e /= np.linalg.norm(e)
        out.append(e * k)
    return out


# ---- comparing ---------------------------------------------------------------------------------

def face_distance(face_encodings, face_to_compare):
    """Euclidean distance between each encoding of a list and one encoding: a NumPy array.
    0.6 is mien's same-person threshold; smaller is closer."""
    if len(face_encodings) == 0:
        return np.empty((0))
    return np.linalg.norm(np.asarray(face_encodings) - np.asarray(face_to_compare), axis=1)


def compare_faces(known_face_encodings, face_encoding_to_check, tolerance=0.6):
    """For each known encoding, True when its distance to the one checked is <= tolerance."""
    return list(face_distance(known_face_encodings, face_encoding_to_check) <= tolerance)
