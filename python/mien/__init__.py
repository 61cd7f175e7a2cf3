"""mien from Python: a thin ctypes binding of libmien (include/mien.h).

    import mien
    with mien.Models() as m:                      # the models: searched as `mien` does
        for face in m.faces("group.jpg"):         # detect + embed every face
            print(face.box, face.score, face.embedding.shape)
        print(m.verify("a.jpg", "b.jpg"))         # Verification(similarity, same, threshold)
    with mien.Models(analyze="all") as m:         # face analysis: load its models at open
        for a in m.analyze("door.jpg"):           # per face: age, gender, expression, ...
            print(a["age"], a["gender"], a["liveness"]["real"], a["quality"]["score"])

Images are NumPy arrays (H x W x 3 uint8, RGB) or photo files (a path, or the file's bytes);
embeddings are float32 NumPy arrays, L2-normalised. Failures raise MienError with the
library's message. Models, Gallery and their sessions close their C handles on close(), at the
end of a `with` block, or when collected.

A Models object may be used from several threads at once: each thread gets its own session
(the C library's per-thread scratch and error state), and the C calls release the GIL.

`import mien.face_recognition as face_recognition` is a drop-in for the face_recognition
package (mien/face_recognition.py).
"""

import ctypes
import os
import threading
from collections import namedtuple

import numpy as np

from . import _lib

__all__ = ["MienError", "Face", "Models", "Gallery", "Verification", "Match", "Subject",
           "cluster", "similarity", "version", "find_models", "ANALYSIS_TASKS",
           "EXPRESSIONS"]

# Face analysis: the tasks (Models(analyze=...), Models.analyze(tasks=...)) and the 7
# expressions in the order of "scores".
ANALYSIS_TASKS = tuple(_lib.ANALYZE)
EXPRESSIONS = tuple(_lib.expression_names)
RACES = tuple(_lib.race_names)

__version__ = _lib.version().decode()


def version():
    """The C library's version ("0.1.0")."""
    return _lib.version().decode()


class MienError(Exception):
    """A libmien call failed. .status is the C status code, .code its name ("EFORMAT"),
    str(e) the library's message."""

    def __init__(self, status, message):
        self.status = int(status)
        self.code = _lib.status_name(self.status).decode()
        super().__init__(message or self.code)


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def _path_bytes(p):
    return os.fsencode(os.fspath(p))


# ---- images ------------------------------------------------------------------------------------

def _is_file(x):
    return isinstance(x, (str, bytes, os.PathLike)) and not isinstance(x, (bytearray, memoryview))


def _rgb_array(img):
    """img as a C-contiguous (H, W, 3) uint8 array (gray and RGBA converted)."""
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise TypeError("mien: images are uint8 arrays (H x W x 3, RGB), not %s" % a.dtype)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError("mien: an image is H x W x 3 (RGB), H x W x 4 or H x W, not %s" % (a.shape,))
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("mien: empty image %s" % (a.shape,))
    return np.ascontiguousarray(a)


def _c_image(a):
    """The mien_image viewing array a (kept alive by the caller)."""
    return _lib.Image(a.shape[1], a.shape[0], a.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))


def _copy_image(img):
    """A NumPy copy of a mien_image filled by the library."""
    n = img.width * img.height * 3
    return np.ctypeslib.as_array(img.rgb, shape=(n,)).reshape(img.height, img.width, 3).copy()


# ---- faces -------------------------------------------------------------------------------------

class Face:
    """One face: box (x, y, width, height) in image pixels, score, landmarks ((n, 2):
    none with the default O-Net, BlazeFace's 6 keypoints, or 68 points with a 68-point
    landmark source), points (the 5
    alignment points: eye, eye, nose tip, mouth corners), and embedding (float32, set by
    Models.faces). Face.from_box() makes one from a box alone (Models.landmarks fills it)."""

    __slots__ = ("_c", "embedding")

    def __init__(self, c, embedding=None):
        self._c = c
        self.embedding = embedding

    @classmethod
    def from_box(cls, box):
        """A face known only by its box (x, y, width, height)."""
        c = _lib.Face()
        for i in range(4):
            c.box[i] = float(box[i])
        return cls(c)

    @property
    def box(self):
        return tuple(float(v) for v in self._c.box)

    @property
    def score(self):
        return float(self._c.score)

    @property
    def landmarks(self):
        n = max(0, min(self._c.n_landmarks, _lib.MAX_LANDMARKS))
        return np.array(self._c.landmarks, dtype=np.float32)[:n].copy()

    @property
    def points(self):
        n = max(0, min(self._c.n_points, 5))
        return np.array(self._c.points, dtype=np.float32)[:n].copy()

    @property
    def css(self):
        """The box as face_recognition's (top, right, bottom, left), rounded to pixels."""
        x, y, w, h = self.box
        return (int(round(y)), int(round(x + w)), int(round(y + h)), int(round(x)))

    def __repr__(self):
        x, y, w, h = self.box
        return "Face(box=(%.1f, %.1f, %.1f, %.1f), score=%.3f, landmarks=%d%s)" % (
            x, y, w, h, self.score, self._c.n_landmarks,
            "" if self.embedding is None else ", embedding=%d" % len(self.embedding))


def _faces_from(ptr, n):
    faces = []
    try:
        for i in range(n):
            faces.append(Face(_lib.Face.from_buffer_copy(ptr[i])))
    finally:
        if ptr:
            _lib.buffer_free(ctypes.cast(ptr, ctypes.c_void_p))
    return faces


Verification = namedtuple("Verification", "similarity same threshold")
Verification.__doc__ = "Models.verify: cosine similarity, same person?, the threshold used."


def similarity(a, b):
    """Cosine similarity of two L2-normalised embeddings (their dot product)."""
    a = np.asarray(a, dtype=np.float32).ravel()
    b = np.asarray(b, dtype=np.float32).ravel()
    if a.shape != b.shape:
        raise ValueError("mien: embeddings of different sizes %d and %d" % (a.size, b.size))
    return float(np.dot(a, b))


def find_models():
    """The folder Models() would try first (mien_models_find), or raise MienError naming every
    place looked at."""
    buf = ctypes.create_string_buffer(8192)
    rc = _lib.models_find(buf, len(buf))
    if rc:
        raise MienError(rc, _text(buf.value))
    return _text(buf.value)


# ---- models ------------------------------------------------------------------------------------

_BACKENDS = {"auto": 0, "ref": 1, "xnnpack": 2, "fast": 2}


def _extra_model_dirs():
    """Folders tried after the library's own search (mien.h, mien_models_open): the models of
    the checkout this package was installed from, and the usual install prefixes (a libmien.so
    copied into the package cannot tell its prefix)."""
    dirs = []
    try:
        from . import _where  # written by setup.py at install time
        dirs.append(_where.CHECKOUT_MODELS)
    except ImportError:
        pass
    for prefix in ("/usr/local", "/usr"):
        dirs.append(os.path.join(prefix, "share", "mien", "models"))
    return dirs


def _analysis_flags(tasks):
    """MIEN_ANALYZE_* bits of "all", "age,gender" or ["age", "gender"]."""
    if isinstance(tasks, str):
        tasks = list(_lib.ANALYZE) if tasks == "all" else [t.strip() for t in tasks.split(",") if t.strip()]
    flags = 0
    for t in tasks:
        if t not in _lib.ANALYZE:
            raise ValueError("mien: unknown analysis task %r (one of %s)" % (t, ", ".join(_lib.ANALYZE)))
        flags |= _lib.ANALYZE[t]
    return flags


def _analysis_dict(face, a):
    """One face's mien_analysis as `mien analyze --json` writes it (src/server/analysis.c),
    without its rounding."""
    d = {"box": list(face.box), "score": face.score}
    t = a.tasks
    if t & _lib.ANALYZE["age"]:
        d["age"] = float(a.age)
    if t & _lib.ANALYZE["gender"]:
        d["gender"] = {"value": "male" if a.male else "female", "score": float(a.gender_score)}
    if t & _lib.ANALYZE["expression"]:
        d["expression"] = {"value": EXPRESSIONS[a.expression],
                           "scores": {n: float(v) for n, v in zip(EXPRESSIONS, a.expression_scores)}}
    if 0 <= a.race < _lib.RACES:
        d["race"] = {"value": RACES[a.race],
                     "scores": {n: float(v) for n, v in zip(RACES, a.race_scores)}}
    if t & _lib.ANALYZE["liveness"]:
        d["liveness"] = {"score": float(a.liveness), "real": bool(a.real),
                         "threshold": float(a.liveness_threshold)}
    if t & (_lib.ANALYZE["pose"] | _lib.ANALYZE["quality"]):
        d["pose"] = {"yaw": float(a.yaw), "pitch": float(a.pitch), "roll": float(a.roll)}
    if t & _lib.ANALYZE["quality"]:
        q = {"score": float(a.quality), "sharpness": float(a.sharpness),
             "brightness": float(a.brightness), "contrast": float(a.contrast),
             "face_size": float(a.face_size)}
        if a.eyes_open >= 0:
            q["eyes_open"] = float(a.eyes_open)
        if a.recognizability >= 0:
            q["feature_norm"] = float(a.feature_norm)
        q["scores"] = {"sharpness": float(a.sharpness_score), "brightness": float(a.brightness_score),
                       "contrast": float(a.contrast_score), "face_size": float(a.size_score),
                       "pose": float(a.pose_score)}
        if a.recognizability >= 0:
            q["scores"]["recognizability"] = float(a.recognizability)
        d["quality"] = q
    if t & _lib.ANALYZE["mask"]:
        d["mask"] = {"value": "mask" if a.mask else "no_mask", "score": float(a.mask_score)}
    return d


class Models:
    """The model set (mien_models) and a session per thread (mien_session).

    Models(models_dir=None, detector=None, embedder=None, landmarks=None, backend="auto",
           threads=1, flip=None, model_file=None)

    models_dir None searches as the `mien` command does: $MIEN_MODELS, ./models, the user's
    data folder ($XDG_DATA_HOME/mien/models or ~/.local/share/mien/models), the install
    prefix (PREFIX/share/mien/models), then the checkout the package was installed from.
    detector "ultraface@320+ultraface@640" (default), "blazeface", "ssd", ...; embedder
    "mobilefacenet-tflite" (default), "frfeature+mobilefacenet-tflite", "dlib", "frfeature",
    ...; landmarks "onet" (default), "facemesh", "68", "68-tiny", "facemesh+68", "none"; threads: the
    threads inside each network, per session; flip: add the mirrored face's embedding
    (default: the embedder's choice).
    Face analysis (analyze()): analyze, the tasks whose models are loaded, "all" or a list or
    comma-separated string of ANALYSIS_TASKS (default none; "all" leaves out the mask when its
    head was not trained); analysis, other models per task as `mien analyze --analysis`
    ("age=fr_age+gear,liveness=antispoof"); liveness_threshold (default the model's 0.5)."""

    def __init__(self, models_dir=None, *, detector=None, embedder=None, landmarks=None,
                 backend="auto", threads=1, flip=None, model_file=None, analyze=None,
                 analysis=None, liveness_threshold=None):
        self._h = None
        self._sessions = []
        self._lock = threading.Lock()
        self._local = threading.local()
        cfg = _lib.Config()
        _lib.config_default(ctypes.byref(cfg))
        # The C handle keeps pointers to these strings: they live as long as self.
        self._keep = [s.encode() if isinstance(s, str) else s
                      for s in (detector, embedder, landmarks)] + [
                          _path_bytes(model_file) if model_file else None,
                          analysis.encode() if analysis else None]
        if detector:
            cfg.detector = self._keep[0]
        if embedder:
            cfg.embedder = self._keep[1]
        if landmarks:
            cfg.landmarks = self._keep[2]
        if model_file:
            cfg.model_file = self._keep[3]
        if backend not in _BACKENDS:
            raise ValueError("mien: backend is one of %s" % ", ".join(sorted(_BACKENDS)))
        cfg.backend = _BACKENDS[backend]
        cfg.threads = int(threads)
        if flip is not None:
            cfg.flip = 1 if flip else 0
        all_tasks = analyze == "all"
        if analyze:
            cfg.analyze = _analysis_flags(analyze)
        if analysis:
            cfg.analysis = self._keep[4]
        if liveness_threshold is not None:
            cfg.liveness_threshold = float(liveness_threshold)
        self._cfg = cfg
        try:
            h = self._open(models_dir, cfg)
        except MienError as e:
            # "all": every task the folder has; the mask head exists only once trained.
            if not (all_tasks and e.status == _lib.ENOTFOUND and "mask" in str(e)):
                raise
            cfg.analyze &= ~_lib.ANALYZE["mask"]
            h = self._open(models_dir, cfg)
        self._h = h
        self.dir = _text(_lib.models_dir(h))
        self.embedder = _text(_lib.models_embedder_name(h))
        self.embedding_dim = int(_lib.models_embedding_dim(h))
        self.threshold = float(_lib.models_threshold(h))
        self.cluster_threshold = float(_lib.models_cluster_threshold(h))  # for cluster()
        tasks = int(_lib.models_analysis_tasks(h))
        self.analysis_tasks = tuple(t for t, bit in _lib.ANALYZE.items() if tasks & bit)
        self.analysis_models = {t: _text(_lib.models_analysis_names(h, _lib.ANALYZE[t]))
                                for t in self.analysis_tasks}

    @staticmethod
    def _open(models_dir, cfg):
        """mien_models_open, searching as the command does; the handle or MienError."""
        h = ctypes.c_void_p()
        rc = _lib.models_open(_path_bytes(models_dir) if models_dir is not None else None,
                              ctypes.byref(cfg), ctypes.byref(h))
        if rc == _lib.EIO and models_dir is None:
            msg = _text(_lib.models_errmsg(h))
            tried = []
            for d in _extra_model_dirs():
                if not os.path.isdir(d):
                    tried.append("%s (no such folder)" % d)
                    continue
                _lib.models_close(h)
                h = ctypes.c_void_p()
                rc = _lib.models_open(_path_bytes(d), ctypes.byref(cfg), ctypes.byref(h))
                if rc != _lib.EIO:
                    break
                tried.append("%s (%s)" % (d, _text(_lib.models_errmsg(h))))
            if rc:
                _lib.models_close(h)
                raise MienError(rc, msg + "; then " + "; ".join(tried))
        if rc:
            msg = _text(_lib.models_errmsg(h))
            _lib.models_close(h)
            raise MienError(rc, msg)
        return h

    # -- handles --

    def _session(self):
        s = getattr(self._local, "s", None)
        if s is not None:
            return s
        if self._h is None:
            raise ValueError("mien: the models are closed")
        s = ctypes.c_void_p()
        rc = _lib.session_open(self._h, ctypes.byref(s))
        if rc:
            msg = _text(_lib.errmsg(s))
            _lib.session_close(s)
            raise MienError(rc, msg)
        with self._lock:
            self._sessions.append(s)
        self._local.s = s
        return s

    def _check(self, rc, s):
        if rc:
            raise MienError(rc, _text(_lib.errmsg(s)))

    def close(self):
        """Free the sessions and the models (also at the end of a `with` block)."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for s in sessions:
            _lib.session_close(s)
        self._local = threading.local()
        if self._h is not None:
            _lib.models_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        return "Models(%r, embedder=%r, dim=%d, threshold=%.4f)" % (
            self.dir, self.embedder, self.embedding_dim, self.threshold)

    # -- images --

    def load_image(self, path):
        """Decode a JPEG, PNG or WebP file (EXIF orientation applied) into (H, W, 3) uint8."""
        s = self._session()
        img = _lib.Image()
        self._check(_lib.image_load(s, _path_bytes(path), ctypes.byref(img)), s)
        try:
            return _copy_image(img)
        finally:
            _lib.image_free(ctypes.byref(img))

    def decode_image(self, data):
        """Decode an encoded photo (bytes) into (H, W, 3) uint8."""
        s = self._session()
        data = bytes(data)
        img = _lib.Image()
        self._check(_lib.image_decode(s, data, len(data), ctypes.byref(img)), s)
        try:
            return _copy_image(img)
        finally:
            _lib.image_free(ctypes.byref(img))

    # -- detection and embedding --

    @staticmethod
    def _options(min_score, min_size, tile, max_faces):
        o = _lib.DetectOptions()
        _lib.detect_options_default(ctypes.byref(o))
        if min_score is not None:
            o.min_score = float(min_score)
        if min_size is not None:
            o.min_size = float(min_size)
        o.tile = 1 if tile else 0
        o.max_faces = int(max_faces)
        return o

    def _photo(self, s, image):
        """A mien_photo of a file path or of encoded bytes."""
        p = ctypes.c_void_p()
        if isinstance(image, bytes):  # the file's contents
            rc = _lib.photo_open(s, image, len(image), ctypes.byref(p))
        else:
            rc = _lib.photo_load(s, _path_bytes(image), ctypes.byref(p))
        if rc:
            _lib.photo_close(p)
            self._check(rc, s)
        return p

    def detect(self, image, *, min_score=None, min_size=None, tile=False, max_faces=0):
        """The faces of image (an array, a file path, or a file's bytes), best score first.
        min_score (default 0.6), min_size (pixels, default 0), tile (also look for small faces
        in tiles of large photos), max_faces (0: all)."""
        return self.faces(image, embed=False, min_score=min_score, min_size=min_size, tile=tile,
                          max_faces=max_faces)

    def faces(self, image, *, embed=True, min_score=None, min_size=None, tile=False, max_faces=0):
        """detect(), and each face's embedding in face.embedding (float32, L2-normalised).
        A file is decoded only as far as the networks need (a big JPEG at a reduced scale for
        detection), as `mien embed` does."""
        s = self._session()
        o = self._options(min_score, min_size, tile, max_faces)
        ptr, n = ctypes.POINTER(_lib.Face)(), ctypes.c_int()
        if _is_file(image):
            p = self._photo(s, image)
            try:
                self._check(_lib.photo_detect(s, p, ctypes.byref(o), ctypes.byref(ptr),
                                              ctypes.byref(n)), s)
                faces = _faces_from(ptr, n.value)
                if embed:
                    for f in faces:
                        e = np.empty(self.embedding_dim, dtype=np.float32)
                        self._check(_lib.photo_embed(s, p, ctypes.byref(f._c),
                                                     e.ctypes.data_as(_lib.FLOATS)), s)
                        f.embedding = e
            finally:
                _lib.photo_close(p)
            return faces
        a = _rgb_array(image)
        img = _c_image(a)
        self._check(_lib.detect(s, ctypes.byref(img), ctypes.byref(o), ctypes.byref(ptr),
                                ctypes.byref(n)), s)
        faces = _faces_from(ptr, n.value)
        if embed:
            for f in faces:
                f.embedding = self._embed(s, img, f)
        return faces

    def _embed(self, s, img, face):
        e = np.empty(self.embedding_dim, dtype=np.float32)
        self._check(_lib.embed(s, ctypes.byref(img), ctypes.byref(face._c),
                               e.ctypes.data_as(_lib.FLOATS)), s)
        return e

    def embed(self, image, face):
        """The embedding (float32, L2-normalised) of one face of image (an array)."""
        return self.embed_faces(image, [face])[0]

    def embed_faces(self, image, faces):
        """Embeddings of several faces of one image: (len(faces), dim) float32. (For a file,
        faces() embeds from the very decode it detected on, as `mien embed` does; a new decode
        here may read a big JPEG at another scale: cosine within 0.9995 of that.)"""
        s = self._session()
        out = np.empty((len(faces), self.embedding_dim), dtype=np.float32)
        if _is_file(image):
            p = self._photo(s, image)
            try:
                for i, f in enumerate(faces):
                    self._check(_lib.photo_embed(s, p, ctypes.byref(f._c),
                                                 out[i].ctypes.data_as(_lib.FLOATS)), s)
            finally:
                _lib.photo_close(p)
            return out
        a = _rgb_array(image)
        img = _c_image(a)
        for i, f in enumerate(faces):
            out[i] = self._embed(s, img, f)
        return out

    # -- face analysis --

    def analyze(self, image, faces=None, *, tasks=None, min_score=None, min_size=None,
                tile=False, max_faces=0):
        """Age, gender, expression, liveness, pose, quality, mask of each face of image (an
        array, a file path or a file's bytes): a list of dicts in `mien analyze --json`'s
        shapes (README, "Face analysis"), one per face, each with its "box" and "score".
        faces: Faces found earlier (default: detect them here, with detect()'s options);
        tasks: a list or comma-separated string of the tasks to answer (default every task
        loaded at open: Models(analyze=...)). A task not loaded raises MienError."""
        flags = _analysis_flags(tasks) if tasks else _analysis_flags(self.analysis_tasks)
        if not flags:
            raise ValueError("mien: no analysis task loaded; open Models(analyze=...)")
        s = self._session()
        out = []
        a = _lib.Analysis()
        if _is_file(image):
            p = self._photo(s, image)
            try:
                if faces is None:
                    o = self._options(min_score, min_size, tile, max_faces)
                    ptr, n = ctypes.POINTER(_lib.Face)(), ctypes.c_int()
                    self._check(_lib.photo_detect(s, p, ctypes.byref(o), ctypes.byref(ptr),
                                                  ctypes.byref(n)), s)
                    faces = _faces_from(ptr, n.value)
                for f in faces:
                    self._check(_lib.photo_analyze(s, p, ctypes.byref(f._c), flags, ctypes.byref(a)), s)
                    out.append(_analysis_dict(f, a))
            finally:
                _lib.photo_close(p)
            return out
        arr = _rgb_array(image)
        img = _c_image(arr)
        if faces is None:
            faces = self.detect(arr, min_score=min_score, min_size=min_size, tile=tile,
                                max_faces=max_faces)
        for f in faces:
            self._check(_lib.analyze(s, ctypes.byref(img), ctypes.byref(f._c), flags, ctypes.byref(a)), s)
            out.append(_analysis_dict(f, a))
        return out

    def landmarks(self, image, box):
        """A Face for a box (x, y, width, height) found elsewhere: the landmark source runs on
        the box (mien_landmarks), so the face can be embedded. Its score is 0."""
        s = self._session()
        a = _rgb_array(image)
        img = _c_image(a)
        f = box if isinstance(box, Face) else Face.from_box(box)
        present = ctypes.c_int()
        self._check(_lib.landmarks(s, ctypes.byref(img), ctypes.byref(f._c), ctypes.byref(present)), s)
        return f

    def align(self, image, face):
        """The aligned crop the embedder sees (e.g. 150 x 150 x 3 for dlib)."""
        s = self._session()
        a = _rgb_array(image)
        img, out = _c_image(a), _lib.Image()
        self._check(_lib.align(s, ctypes.byref(img), ctypes.byref(face._c), ctypes.byref(out)), s)
        try:
            return _copy_image(out)
        finally:
            _lib.image_free(ctypes.byref(out))

    def embed_aligned(self, chip):
        """The embedding of an aligned crop (as align() makes)."""
        s = self._session()
        a = _rgb_array(chip)
        img = _c_image(a)
        e = np.empty(self.embedding_dim, dtype=np.float32)
        self._check(_lib.embed_aligned(s, ctypes.byref(img), e.ctypes.data_as(_lib.FLOATS)), s)
        return e

    def _largest_embedding(self, image):
        """The embedding of the largest face of image (a file: one photo decoded once, as
        `mien verify` does)."""
        s = self._session()
        o = self._options(None, None, False, 0)
        ptr, n = ctypes.POINTER(_lib.Face)(), ctypes.c_int()
        e = np.empty(self.embedding_dim, dtype=np.float32)
        if _is_file(image):
            p = self._photo(s, image)
            try:
                self._check(_lib.photo_detect(s, p, ctypes.byref(o), ctypes.byref(ptr),
                                              ctypes.byref(n)), s)
                faces = _faces_from(ptr, n.value)
                if faces:
                    big = max(faces, key=lambda f: f.box[2] * f.box[3])
                    self._check(_lib.photo_embed(s, p, ctypes.byref(big._c),
                                                 e.ctypes.data_as(_lib.FLOATS)), s)
            finally:
                _lib.photo_close(p)
        else:
            a = _rgb_array(image)
            img = _c_image(a)
            self._check(_lib.detect(s, ctypes.byref(img), ctypes.byref(o), ctypes.byref(ptr),
                                    ctypes.byref(n)), s)
            faces = _faces_from(ptr, n.value)
            if faces:
                e = self._embed(s, img, max(faces, key=lambda f: f.box[2] * f.box[3]))
        if not faces:
            what = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "the image"
            raise MienError(_lib.ENOFACE, "no face found in %s" % what)
        return e

    def verify(self, a, b, threshold=None):
        """Same person? The largest face of each image (an array, a path or a file's bytes):
        Verification(similarity, same, threshold), as `mien verify`. threshold: default the
        embedder's (Models.threshold). MienError ENOFACE when an image has no face."""
        ea, eb = self._largest_embedding(a), self._largest_embedding(b)
        t = self.threshold if threshold is None else float(threshold)
        sim = similarity(ea, eb)
        return Verification(sim, sim >= t, t)


# ---- clustering --------------------------------------------------------------------------------

def cluster(embeddings, threshold, iterations=0, seed=0):
    """Group faces by person (Chinese whispers over the graph of pairs whose cosine similarity
    is >= threshold, e.g. Models.cluster_threshold; mien_cluster). embeddings: (n, dim),
    L2-normalised. Returns (labels,
    n_clusters): labels (n,) int32 numbered by decreasing cluster size."""
    e = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    if e.ndim != 2:
        raise ValueError("mien: embeddings are (n, dim)")
    n = e.shape[0]
    labels = np.zeros(n, dtype=np.int32)
    k = ctypes.c_int()
    if n == 0:
        return labels, 0
    rc = _lib.cluster(e.ctypes.data_as(_lib.FLOATS), n, e.shape[1], float(threshold),
                      int(iterations), int(seed),
                      labels.ctypes.data_as(ctypes.POINTER(ctypes.c_int)), ctypes.byref(k))
    if rc:
        raise MienError(rc, "mien_cluster failed: %s" % _lib.status_name(rc).decode())
    return labels, k.value


# ---- gallery -----------------------------------------------------------------------------------

Match = namedtuple("Match", "name similarity subject_id face_id known")
Match.__doc__ = "A gallery search result: the subject, its best face's similarity, and (identify) known."
Subject = namedtuple("Subject", "name n_faces id created")
GalleryFace = namedtuple("GalleryFace", "id subject image_sha256 box created")


class Gallery:
    """A gallery of known people (mien_gallery): one SQLite file (or a postgresql:// URI).

    Gallery(path=None, read_only=False, create=True, model=None, dim=0, ann=-1, collection=None)

    path None is the default gallery ($XDG_DATA_HOME/mien/gallery.db, else
    ~/.local/share/mien/gallery.db; its folder is created). model/dim: the embedder the caller
    will use (e.g. Models.embedder, Models.embedding_dim): a gallery of another is refused.
    collection: the face collection to work on (None: "default"; made when missing if create)."""

    def __init__(self, path=None, *, read_only=False, create=True, model=None, dim=0, ann=-1,
                 collection=None):
        self._h = None
        if path is None:
            buf = ctypes.create_string_buffer(4096)
            rc = _lib.gallery_default_path(buf, len(buf))
            if rc:
                raise MienError(rc, "no default gallery: neither $XDG_DATA_HOME nor $HOME is set")
            path = os.fsdecode(buf.value)
            if not read_only:
                os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = os.fspath(path)
        o = _lib.GalleryOptions()
        _lib.gallery_options_default(ctypes.byref(o))
        o.read_only = 1 if read_only else 0
        o.create = 1 if create and not read_only else 0
        self._model = model.encode() if isinstance(model, str) else model
        o.model = self._model
        o.dim = int(dim)
        o.ann = int(ann)
        self._collection = collection.encode() if isinstance(collection, str) else collection
        o.collection = self._collection
        h = ctypes.c_void_p()
        rc = _lib.gallery_open(_path_bytes(self.path), ctypes.byref(o), ctypes.byref(h))
        if rc:
            msg = _text(_lib.gallery_errmsg(h))
            _lib.gallery_close(h)
            raise MienError(rc, msg)
        self._h = h

    def _handle(self):
        if self._h is None:
            raise ValueError("mien: the gallery is closed")
        return self._h

    def _check(self, rc):
        if rc:
            raise MienError(rc, _text(_lib.gallery_errmsg(self._h)))

    def close(self):
        if self._h is not None:
            _lib.gallery_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    @property
    def model(self):
        """(embedder name, dim) the gallery holds; ("", 0) while empty."""
        buf, dim = ctypes.create_string_buffer(256), ctypes.c_int()
        self._check(_lib.gallery_model(self._handle(), buf, len(buf), ctypes.byref(dim)))
        return _text(buf.value), dim.value

    def count(self):
        """(subjects, faces)."""
        a, b = ctypes.c_int(), ctypes.c_int()
        _lib.gallery_count(self._handle(), ctypes.byref(a), ctypes.byref(b))
        return a.value, b.value

    def __len__(self):
        return self.count()[0]

    def enroll(self, name, embeddings, model, *, boxes=None, image_sha256=None):
        """Add faces (one embedding (dim,) or several (n, dim)) to the subject `name`, created
        if needed; model is the embedder's name (Models.embedder). A face whose photo
        (image_sha256, 64 hex digits per face) the subject already has is skipped. Returns the
        number of faces added."""
        e = np.ascontiguousarray(np.atleast_2d(np.asarray(embeddings, dtype=np.float32)))
        n, dim = e.shape
        faces = (_lib.GalleryFace * max(n, 1))()
        shas = list(image_sha256) if isinstance(image_sha256, (list, tuple)) else [image_sha256] * n
        keep = [s.encode() if isinstance(s, str) else s for s in shas]
        for i in range(n):
            faces[i].embedding = e[i].ctypes.data_as(_lib.FLOATS)
            if boxes is not None:
                for k in range(4):
                    faces[i].box[k] = float(boxes[i][k])
            faces[i].image_sha256 = keep[i]
        added = ctypes.c_int()
        self._check(_lib.gallery_enroll(self._handle(), name.encode(), model.encode(), dim, faces,
                                        n, ctypes.byref(added)))
        return added.value

    def rename(self, old, new):
        self._check(_lib.gallery_rename(self._handle(), old.encode(), new.encode()))

    def forget(self, name):
        """Delete a subject and every face of it (from the file, not only hidden)."""
        self._check(_lib.gallery_forget(self._handle(), name.encode()))

    def subjects(self):
        """Every subject, sorted by name: [Subject(name, n_faces, id, created)]."""
        ptr, n = ctypes.POINTER(_lib.Subject)(), ctypes.c_int()
        self._check(_lib.gallery_subjects(self._handle(), ctypes.byref(ptr), ctypes.byref(n)))
        try:
            return [Subject(_text(ptr[i].name), ptr[i].n_faces, ptr[i].id, ptr[i].created)
                    for i in range(n.value)]
        finally:
            if ptr:
                _lib.buffer_free(ctypes.cast(ptr, ctypes.c_void_p))

    def faces(self, name=None):
        """The enrolled faces (of one subject, or all): [GalleryFace(id, subject, image_sha256,
        box, created)]."""
        ptr, n = ctypes.POINTER(_lib.GalleryFaceInfo)(), ctypes.c_int()
        self._check(_lib.gallery_faces(self._handle(), name.encode() if name else None,
                                       ctypes.byref(ptr), ctypes.byref(n)))
        try:
            return [GalleryFace(ptr[i].id, _text(ptr[i].subject), _text(ptr[i].image_sha256),
                                tuple(ptr[i].box), ptr[i].created) for i in range(n.value)]
        finally:
            if ptr:
                _lib.buffer_free(ctypes.cast(ptr, ctypes.c_void_p))

    def search(self, embedding, k=5):
        """The k best subjects for one embedding, best first: [Match]."""
        e = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).ravel())
        out, n = (_lib.Match * max(int(k), 1))(), ctypes.c_int()
        self._check(_lib.gallery_search(self._handle(), e.ctypes.data_as(_lib.FLOATS), e.size,
                                        int(k), out, ctypes.byref(n)))
        return [Match(_text(m.name), float(m.similarity), m.subject_id, m.face_id, None)
                for m in out[:n.value]]

    def identify(self, embedding, threshold):
        """Open-set identification: Match of the best subject with known=True when its
        similarity reaches threshold (Models.threshold is the embedder's), known=False for
        "unknown"; None when the gallery is empty."""
        e = np.ascontiguousarray(np.asarray(embedding, dtype=np.float32).ravel())
        best, known = _lib.Match(), ctypes.c_int()
        self._check(_lib.gallery_identify(self._handle(), e.ctypes.data_as(_lib.FLOATS), e.size,
                                          float(threshold), ctypes.byref(best), ctypes.byref(known)))
        if not best.name:
            return None
        return Match(_text(best.name), float(best.similarity), best.subject_id, best.face_id,
                     bool(known.value))

    def export(self, path):
        """Write every subject and face to a JSON Lines file (mien_gallery_export)."""
        self._check(_lib.gallery_export(self._handle(), _path_bytes(path)))

    def import_file(self, path):
        """Merge an exported file; returns (subjects added, faces added)."""
        a, b = ctypes.c_int(), ctypes.c_int()
        self._check(_lib.gallery_import(self._handle(), _path_bytes(path), ctypes.byref(a),
                                        ctypes.byref(b)))
        return a.value, b.value
