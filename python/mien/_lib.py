"""ctypes declarations of libmien (include/mien.h) and how the library is found.

Nothing here is meant for users: mien/__init__.py wraps it in Python objects.
"""

import ctypes
import ctypes.util
import os

# ---- finding libmien.so ------------------------------------------------------------------------

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """(description, path or soname) in the order they are tried."""
    out = []
    env = os.environ.get("MIEN_LIB")
    if env:
        out.append(("$MIEN_LIB", env))
    # `pip install ./python` copies the checkout's build/libmien.so into the package.
    out.append(("the package", os.path.join(_HERE, "libmien.so")))
    # Imported from a checkout (PYTHONPATH=python): the checkout's release build.
    out.append(("the checkout", os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build", "libmien.so")))
    # Installed by `make install`: the dynamic loader's search path (ldconfig, LD_LIBRARY_PATH),
    # then the usual prefixes.
    out.append(("the loader's search path", "libmien.so.0"))
    found = ctypes.util.find_library("mien")
    if found:
        out.append(("ldconfig", found))
    for prefix in ("/usr/local", os.path.expanduser("~/.local"), "/usr"):
        out.append((prefix, os.path.join(prefix, "lib", "libmien.so.0")))
    return out


def _load():
    tried = []
    for what, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (%s: no such file)" % (path, what))
            continue
        try:
            lib = ctypes.CDLL(path)
            return lib, path
        except OSError as e:
            tried.append("%s (%s: %s)" % (path, what, e))
    raise ImportError(
        "mien: cannot load libmien.so; looked in: " + "; ".join(tried) +
        ". Build it with `make` in the checkout, install it with `make install`, or set "
        "MIEN_LIB to its path.")


lib, LIB_PATH = _load()

# ---- structures ------------------------------------------------------------------------------

MAX_LANDMARKS = 68
NAME_MAX = 128


class Image(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int),
                ("rgb", ctypes.POINTER(ctypes.c_uint8))]


class Config(ctypes.Structure):
    _fields_ = [("detector", ctypes.c_char_p), ("embedder", ctypes.c_char_p),
                ("landmarks", ctypes.c_char_p), ("backend", ctypes.c_int),
                ("threads", ctypes.c_int), ("flip", ctypes.c_int),
                ("model_file", ctypes.c_char_p),
                # face analysis (mien.h: analyze, analysis, liveness_threshold)
                ("analyze", ctypes.c_uint), ("analysis", ctypes.c_char_p),
                ("liveness_threshold", ctypes.c_float)]


class Face(ctypes.Structure):
    _fields_ = [("box", ctypes.c_float * 4), ("score", ctypes.c_float),
                ("n_landmarks", ctypes.c_int),
                ("landmarks", (ctypes.c_float * 2) * MAX_LANDMARKS),
                ("n_points", ctypes.c_int), ("points", (ctypes.c_float * 2) * 5)]


class DetectOptions(ctypes.Structure):
    _fields_ = [("min_score", ctypes.c_float), ("min_size", ctypes.c_float),
                ("tile", ctypes.c_int), ("max_faces", ctypes.c_int)]


class GalleryOptions(ctypes.Structure):
    _fields_ = [("read_only", ctypes.c_int), ("create", ctypes.c_int),
                ("model", ctypes.c_char_p), ("dim", ctypes.c_int), ("ann", ctypes.c_int),
                ("ann_min_faces", ctypes.c_int), ("ann_cache", ctypes.c_int),
                ("threads", ctypes.c_int), ("collection", ctypes.c_char_p)]


class GalleryFace(ctypes.Structure):
    _fields_ = [("embedding", ctypes.POINTER(ctypes.c_float)), ("box", ctypes.c_float * 4),
                ("image_sha256", ctypes.c_char_p)]


class Subject(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("name", ctypes.c_char * NAME_MAX),
                ("n_faces", ctypes.c_int), ("created", ctypes.c_int64)]


class Match(ctypes.Structure):
    _fields_ = [("subject_id", ctypes.c_int64), ("name", ctypes.c_char * NAME_MAX),
                ("face_id", ctypes.c_int64), ("similarity", ctypes.c_float)]


class GalleryFaceInfo(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int64), ("subject", ctypes.c_char * NAME_MAX),
                ("image_sha256", ctypes.c_char * 65), ("box", ctypes.c_float * 4),
                ("created", ctypes.c_int64)]


EXPRESSIONS = 7
RACES = 5


class Analysis(ctypes.Structure):
    """mien_analysis (mien.h)."""
    _fields_ = [("tasks", ctypes.c_uint), ("age", ctypes.c_float), ("male", ctypes.c_int),
                ("gender_score", ctypes.c_float), ("expression", ctypes.c_int),
                ("expression_scores", ctypes.c_float * EXPRESSIONS),
                ("liveness", ctypes.c_float), ("real", ctypes.c_int),
                ("liveness_threshold", ctypes.c_float), ("yaw", ctypes.c_float),
                ("pitch", ctypes.c_float), ("roll", ctypes.c_float),
                ("quality", ctypes.c_float), ("sharpness", ctypes.c_float),
                ("brightness", ctypes.c_float), ("contrast", ctypes.c_float),
                ("face_size", ctypes.c_float), ("eyes_open", ctypes.c_float),
                ("sharpness_score", ctypes.c_float), ("brightness_score", ctypes.c_float),
                ("contrast_score", ctypes.c_float), ("size_score", ctypes.c_float),
                ("pose_score", ctypes.c_float), ("feature_norm", ctypes.c_float),
                ("recognizability", ctypes.c_float), ("mask", ctypes.c_int),
                ("mask_score", ctypes.c_float), ("race", ctypes.c_int),
                ("race_scores", ctypes.c_float * RACES)]


# ---- functions -------------------------------------------------------------------------------

P = ctypes.POINTER
vp = ctypes.c_void_p  # opaque handles
c_int, c_float, c_char_p, c_size_t = ctypes.c_int, ctypes.c_float, ctypes.c_char_p, ctypes.c_size_t
c_int64, c_uint64 = ctypes.c_int64, ctypes.c_uint64
FLOATS = P(ctypes.c_float)


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


status_name = _fn("mien_status_name", c_char_p, c_int)
version = _fn("mien_version", c_char_p)

# Arrays and bytes the library returns go back through its own free functions.
buffer_free = _fn("mien_buffer_free", None, vp)
image_free = _fn("mien_image_free", None, P(Image))
config_default = _fn("mien_config_default", None, P(Config))
models_open = _fn("mien_models_open", c_int, c_char_p, P(Config), P(vp))
models_close = _fn("mien_models_close", None, vp)
models_errmsg = _fn("mien_models_errmsg", c_char_p, vp)
models_dir = _fn("mien_models_dir", c_char_p, vp)
models_find = _fn("mien_models_find", c_int, ctypes.c_char_p, c_size_t)
models_embedding_dim = _fn("mien_models_embedding_dim", c_int, vp)
models_embedder_name = _fn("mien_models_embedder_name", c_char_p, vp)
models_threshold = _fn("mien_models_threshold", c_float, vp)
models_cluster_threshold = _fn("mien_models_cluster_threshold", c_float, vp)
session_open = _fn("mien_session_open", c_int, vp, P(vp))
session_close = _fn("mien_session_close", None, vp)
errmsg = _fn("mien_errmsg", c_char_p, vp)
image_decode = _fn("mien_image_decode", c_int, vp, c_char_p, c_size_t, P(Image))
image_load = _fn("mien_image_load", c_int, vp, c_char_p, P(Image))
detect_options_default = _fn("mien_detect_options_default", None, P(DetectOptions))
detect = _fn("mien_detect", c_int, vp, P(Image), P(DetectOptions), P(P(Face)), P(c_int))
landmarks = _fn("mien_landmarks", c_int, vp, P(Image), P(Face), P(c_int))
align = _fn("mien_align", c_int, vp, P(Image), P(Face), P(Image))
embed = _fn("mien_embed", c_int, vp, P(Image), P(Face), FLOATS)
embed_aligned = _fn("mien_embed_aligned", c_int, vp, P(Image), FLOATS)
photo_open = _fn("mien_photo_open", c_int, vp, c_char_p, c_size_t, P(vp))
photo_load = _fn("mien_photo_load", c_int, vp, c_char_p, P(vp))
photo_close = _fn("mien_photo_close", None, vp)
photo_size = _fn("mien_photo_size", None, vp, P(c_int), P(c_int))
photo_image = _fn("mien_photo_image", c_int, vp, vp, P(P(Image)))
photo_detect = _fn("mien_photo_detect", c_int, vp, vp, P(DetectOptions), P(P(Face)), P(c_int))
photo_embed = _fn("mien_photo_embed", c_int, vp, vp, P(Face), FLOATS)
similarity = _fn("mien_similarity", c_float, FLOATS, FLOATS, c_int)
analyze = _fn("mien_analyze", c_int, vp, P(Image), P(Face), ctypes.c_uint, P(Analysis))
photo_analyze = _fn("mien_photo_analyze", c_int, vp, vp, P(Face), ctypes.c_uint, P(Analysis))
models_analysis_tasks = _fn("mien_models_analysis_tasks", ctypes.c_uint, vp)
models_analysis_names = _fn("mien_models_analysis_names", c_char_p, vp, ctypes.c_uint)
expression_names = [n.decode() for n in (c_char_p * EXPRESSIONS).in_dll(lib, "mien_expression_names")]
race_names = [n.decode() for n in (c_char_p * RACES).in_dll(lib, "mien_race_names")]
# MIEN_ANALYZE_* (mien.h), by the names the command line and the service use.
ANALYZE = {"age": 1 << 0, "gender": 1 << 1, "expression": 1 << 2, "liveness": 1 << 3,
           "pose": 1 << 4, "quality": 1 << 5, "mask": 1 << 6}

gallery_options_default = _fn("mien_gallery_options_default", None, P(GalleryOptions))
gallery_default_path = _fn("mien_gallery_default_path", c_int, ctypes.c_char_p, c_size_t)
gallery_open = _fn("mien_gallery_open", c_int, c_char_p, P(GalleryOptions), P(vp))
gallery_close = _fn("mien_gallery_close", None, vp)
gallery_errmsg = _fn("mien_gallery_errmsg", c_char_p, vp)
gallery_model = _fn("mien_gallery_model", c_int, vp, ctypes.c_char_p, c_size_t, P(c_int))
gallery_count = _fn("mien_gallery_count", None, vp, P(c_int), P(c_int))
gallery_enroll = _fn("mien_gallery_enroll", c_int, vp, c_char_p, c_char_p, c_int,
                     P(GalleryFace), c_int, P(c_int))
gallery_rename = _fn("mien_gallery_rename", c_int, vp, c_char_p, c_char_p)
gallery_forget = _fn("mien_gallery_forget", c_int, vp, c_char_p)
gallery_subjects = _fn("mien_gallery_subjects", c_int, vp, P(P(Subject)), P(c_int))
gallery_search = _fn("mien_gallery_search", c_int, vp, FLOATS, c_int, c_int, P(Match), P(c_int))
gallery_identify = _fn("mien_gallery_identify", c_int, vp, FLOATS, c_int, c_float, P(Match),
                       P(c_int))
gallery_faces = _fn("mien_gallery_faces", c_int, vp, c_char_p, P(P(GalleryFaceInfo)), P(c_int))
gallery_face_delete = _fn("mien_gallery_face_delete", c_int, vp, c_int64, ctypes.c_char_p,
                          c_size_t)
gallery_export = _fn("mien_gallery_export", c_int, vp, c_char_p)
gallery_import = _fn("mien_gallery_import", c_int, vp, c_char_p, P(c_int), P(c_int))
cluster = _fn("mien_cluster", c_int, FLOATS, c_int, c_int, c_float, c_int, c_uint64, P(c_int),
              P(c_int))

# Status codes (mien.h).
OK, EINVAL, ENOMEM, EIO, EFORMAT, ETOOBIG, EUNSUPPORTED, ENOFACE, ENOTFOUND, EMISMATCH, \
    EINTERNAL = range(11)
