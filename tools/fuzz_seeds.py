#!/usr/bin/env python3
"""Writes the committed seed inputs of mien's fuzz targets (tests/fuzz/corpus/TARGET/seed-*).

Every seed is made here from scratch: tiny images drawn with OpenCV, tiny networks exported
from PyTorch or written as TFJS JSON, checkpoints and gallery files with random numbers. No
model file and nothing from ../shared/data is copied (the fuzz campaign, tools/fuzz.sh, also
seeds from those, in build-fuzz/, which is not committed). Deterministic: running it again
rewrites the same bytes (up to the ONNX exporter's version).

    /usr/bin/python3 tools/fuzz_seeds.py [OUTDIR]    # default tests/fuzz/corpus
    /usr/bin/python3 tools/fuzz_seeds.py OUTDIR video   # only the video seeds
"""
import base64
import io
import json
import os
import struct
import sys

import numpy as np

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus"
SEP = b"\n--mien-weights--\n"
rng = np.random.default_rng(1)


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- images: JPEG (baseline, progressive, gray, EXIF orientation), PNG (RGB, RGBA, gray,
# 16-bit, palette-like), WebP (lossy, lossless) ----------------------------------------------
def images():
    import cv2
    img = np.zeros((24, 32, 3), np.uint8)
    cv2.circle(img, (16, 12), 9, (40, 180, 230), -1)
    cv2.rectangle(img, (2, 2), (8, 20), (200, 30, 60), -1)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 60])
    put("image", "rgb.jpg", jpg.tobytes())
    ok, pj = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    put("image", "progressive.jpg", pj.tobytes())
    ok, gj = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    put("image", "gray.jpg", gj.tobytes())
    # EXIF APP1 with Orientation = 6 (rotate 90), big- and little-endian TIFF headers.
    for endian, tag in ((b"MM", ">"), (b"II", "<")):
        ifd = struct.pack(tag + "H", 1) + struct.pack(tag + "HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(tag + "I", 0)
        tiff = endian + struct.pack(tag + "HI", 42, 8) + ifd
        app1 = b"Exif\0\0" + tiff
        seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
        b = jpg.tobytes()
        put("image", "exif-%s.jpg" % endian.decode(), b[:2] + seg + b[2:])
    for name, im in (("rgb.png", img), ("rgba.png", cv2.cvtColor(img, cv2.COLOR_BGR2BGRA)),
                     ("gray.png", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)),
                     ("16bit.png", img.astype(np.uint16) * 257)):
        ok, b = cv2.imencode(".png", im)
        put("image", name, b.tobytes())
    ok, w = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 50])
    put("image", "lossy.webp", w.tobytes())
    ok, w = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])
    put("image", "lossless.webp", w.tobytes())
    return jpg.tobytes()


# ---- ONNX: tiny PyTorch networks with the ops whose shape logic matters ---------------------
def onnx_nets():
    import torch
    import torch.nn as nn
    torch.manual_seed(0)

    class Conv(nn.Module):
        def __init__(s):
            super().__init__()
            s.c = nn.Conv2d(3, 4, 3, padding=1)
            s.b = nn.BatchNorm2d(4)
            s.d = nn.Conv2d(4, 4, 3, stride=2, groups=4)
            s.p = nn.PReLU(4)

        def forward(s, x):
            return nn.functional.max_pool2d(s.p(s.d(torch.relu(s.b(s.c(x))))), 2, ceil_mode=True)

    class Shapes(nn.Module):
        def forward(s, x):
            y = x[:, :, 1::2, ::3]                       # Slice with steps
            y = nn.functional.pad(y, (1, 2, 0, 1))       # Pad
            n = y.shape[0]
            return y.reshape(n, -1)                      # Shape/Gather/Concat/Reshape

    class Head(nn.Module):
        def __init__(s):
            super().__init__()
            s.l = nn.Linear(3 * 4, 5)

        def forward(s, x):
            y = x.mean((2, 3), keepdim=True).expand(1, 3, 2, 2).flatten(1)
            y = torch.cat([y, y * 0.5], 1)[:, :12]
            return torch.softmax(s.l(y), 1), nn.functional.normalize(y)

    class Up(nn.Module):
        def forward(s, x):
            y = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
            z = torch.zeros_like(y) + 1
            return torch.sigmoid(y) * z, y.transpose(1, 2)

    for name, m in (("conv", Conv()), ("shapes", Shapes()), ("head", Head()), ("up", Up())):
        m.eval()
        f = io.BytesIO()
        torch.onnx.export(m, torch.randn(1, 3, 8, 8), f, opset_version=11,
                          input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}})
        put("onnx", name + ".onnx", f.getvalue())


# ---- TFJS graph models: model.json + weights, float32 / float16 / uint8 ---------------------
def tfjs():
    def const(name, dtype="DT_FLOAT"):
        return {"name": name, "op": "Const", "attr": {"dtype": {"type": dtype}}}

    nodes = [
        {"name": "input", "op": "Placeholder",
         "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "8"}, {"size": "8"}, {"size": "3"}]}},
                  "dtype": {"type": "DT_FLOAT"}}},
        const("w1"), const("b1"), const("dw"), const("shape", "DT_INT32"),
        {"name": "conv", "op": "_FusedConv2D", "input": ["input", "w1", "b1"],
         "attr": {"strides": {"list": {"i": ["1", "1", "1", "1"]}}, "padding": {"s": "U0FNRQ=="},
                  "fused_ops": {"list": {"s": ["Qmlhc0FkZA==", "UmVsdQ=="]}}, "num_args": {"i": "1"},
                  "data_format": {"s": "TkhXQw=="}, "dilations": {"list": {"i": ["1", "1", "1", "1"]}},
                  "T": {"type": "DT_FLOAT"}}},
        {"name": "dwc", "op": "DepthwiseConv2dNative", "input": ["conv", "dw"],
         "attr": {"strides": {"list": {"i": ["1", "2", "2", "1"]}}, "padding": {"s": "VkFMSUQ="},
                  "data_format": {"s": "TkhXQw=="}, "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}},
        {"name": "pool", "op": "MaxPool", "input": ["dwc"],
         "attr": {"ksize": {"list": {"i": ["1", "2", "2", "1"]}}, "strides": {"list": {"i": ["1", "1", "1", "1"]}},
                  "padding": {"s": "U0FNRQ=="}, "data_format": {"s": "TkhXQw=="}}},
        {"name": "sum", "op": "AddV2", "input": ["pool", "pool"]},
        {"name": "out", "op": "Reshape", "input": ["sum", "shape"]},
    ]
    w1 = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b1 = rng.standard_normal(4).astype(np.float32)
    dw = rng.standard_normal((3, 3, 4, 1)).astype(np.float32)
    shape = np.array([1, -1], np.int32)
    for variant in ("float32", "float16", "uint8"):
        specs, blobs = [], []
        for name, arr in (("w1", w1), ("b1", b1), ("dw", dw), ("shape", shape)):
            spec = {"name": name, "shape": list(arr.shape), "dtype": "int32" if arr.dtype == np.int32 else "float32"}
            if arr.dtype == np.int32:
                blobs.append(arr.tobytes())
            elif variant == "float16":
                spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
                blobs.append(arr.astype(np.float16).tobytes())
            elif variant == "uint8":
                lo, hi = float(arr.min()), float(arr.max())
                scale = (hi - lo) / 255
                spec["quantization"] = {"dtype": "uint8", "min": lo, "scale": scale, "original_dtype": "float32"}
                blobs.append(np.round((arr - lo) / scale).astype(np.uint8).tobytes())
            else:
                blobs.append(arr.tobytes())
            specs.append(spec)
        model = {"format": "graph-model", "modelTopology": {"node": nodes},
                 "weightsManifest": [{"paths": ["w.bin"], "weights": specs}]}
        put("tfjs", variant + ".json", json.dumps(model).encode() + SEP + b"".join(blobs))


# ---- face-api weights manifests: the first layers of each architecture, tiny weights -------
def faceapi():
    for name, w in (("rec", [("conv32_down/conv/filters", [7, 7, 3, 32]), ("conv32_down/conv/bias", [32])]),
                    ("lm68", [("dense0/conv0/filters", [3, 3, 3, 32]), ("dense0/conv0/bias", [32])]),
                    ("ssd", [("mobilenetv1/conv_0/weights", [3, 3, 3, 32])])):
        specs = [{"name": n, "shape": s, "dtype": "float32",
                  "quantization": {"dtype": "uint8", "min": -1.0, "scale": 0.01}} for n, s in w]
        data = b"".join(bytes(rng.integers(0, 256, int(np.prod(s)), dtype=np.uint8)) for _, s in w)
        put("faceapi", name + ".json", json.dumps([{"paths": ["w.bin"], "weights": specs}]).encode() + SEP + data)


# ---- checkpoints: the container with metadata and a few tensors -----------------------------
def ckpt():
    def file(meta, tensors):
        b = b"MIENCKPT" + struct.pack("<III", 1, len(meta), len(tensors))
        for m in meta:
            b += struct.pack("<I", len(m)) + m.encode()
        for name, arr in tensors:
            b += struct.pack("<I", len(name)) + name.encode() + struct.pack("<I", arr.ndim)
            b += b"".join(struct.pack("<q", d) for d in arr.shape) + arr.astype("<f4").tobytes()
        return b
    meta = ["arch=small", "input=112", "dim=128", "mean=127.5", "scale=0.0078125", "threshold=0.3", "crop=arcface"]
    put("ckpt", "meta-only.ckpt", file(meta, []))
    put("ckpt", "tensors.ckpt", file(meta, [("conv1.w", rng.standard_normal((4, 3, 3, 3))),
                                            ("conv1.b", rng.standard_normal(4))]))
    put("ckpt", "mobilefacenet.ckpt", file(["arch=mobilefacenet", "input=112", "dim=128"],
                                           [("head.w", rng.standard_normal((2, 3)))]))


# ---- gallery import: JSON Lines as `mien export` writes them --------------------------------
def gallery():
    def face(dim):
        v = rng.standard_normal(dim)
        return {"embedding": [float("%.9g" % x) for x in v / np.linalg.norm(v)],
                "box": [10, 20, 30, 40], "sha256": "%064x" % int(rng.integers(1 << 62))}
    lines = [{"format": "mien-gallery", "version": 1, "model": "dlib", "dim": 16},
             {"name": "ana", "created": 1700000000, "faces": [face(16), face(16)]},
             {"name": "bo lee", "created": 1700000001, "faces": [face(16)]},
             {"name": "empty", "created": 1700000002, "faces": []}]
    put("gallery", "three.jsonl", "\n".join(json.dumps(l) for l in lines).encode() + b"\n")
    put("gallery", "header-only.jsonl", (json.dumps(lines[0]) + "\n").encode())


# ---- HTTP bodies: route byte, Content-Type byte, body ----------------------------------------
def http(jpg):
    def mp(parts):
        b = b""
        for name, data in parts:
            b += (b"--XyZ\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"a.jpg\"\r\n"
                  b"Content-Type: image/jpeg\r\n\r\n" % name.encode()) + data + b"\r\n"
        return b + b"--XyZ--\r\n"
    put("http", "detect-multipart", bytes([0, 0]) + mp([("image", jpg)]))
    put("http", "verify-multipart", bytes([2, 0]) + mp([("image1", jpg), ("image2", jpg)]))
    put("http", "identify-raw", bytes([3, 2]) + jpg)
    put("http", "subjects-json", bytes([4, 1]) + b'{"name":"Bo"}')
    put("http", "rename-json", bytes([5, 1]) + b'{"name":"Ana Lopez"}')
    put("http", "cf-enroll-base64", bytes([7, 1]) + json.dumps({"file": base64.b64encode(jpg).decode()}).encode())
    put("http", "cf-recognize-multipart", bytes([8, 0]) + mp([("file", jpg)]))
    put("http", "cf-verify-multipart", bytes([9, 0]) + mp([("source_image", jpg), ("target_image", jpg)]))
    put("http", "cf-subject-json", bytes([11, 1]) + b'{"subject":"x"}')
    put("http", "cf-rename-json", bytes([12, 1]) + b'{"subject":"y"}')


# ---- video: a few frames of FFmpeg's test pattern in each container the reader meets most
# (MP4 with H.264, a rotation and the index first or last, MKV, AVI, MPEG-TS, WebM) ------------
def video():
    import subprocess
    import tempfile
    cases = (("h264.mp4", ["-c:v", "libx264", "-preset", "ultrafast"]),
             ("h264-faststart.mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-movflags", "+faststart"]),
             ("rotated.mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-metadata:s:v:0", "rotate=90"]),
             ("mjpeg.mkv", ["-c:v", "mjpeg"]), ("mpeg4.avi", ["-c:v", "mpeg4"]),
             ("h264.ts", ["-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts"]),
             ("vp8.webm", ["-c:v", "libvpx"]))
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in cases:
            path = os.path.join(tmp, name)
            subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                            "testsrc=size=32x24:rate=10:duration=0.4", "-pix_fmt", "yuv420p",
                            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"]
                           + args + [path], check=True)
            with open(path, "rb") as f:
                put("video", name, f.read())
        # POST /v1/video of the server's target (route 20): raw and as a form field.
        with open(os.path.join(tmp, "h264.mp4"), "rb") as f:
            mp4 = f.read()
        put("http", "video-raw", bytes([20, 4]) + mp4)
        put("http", "video-multipart", bytes([20, 0]) + b"--XyZ\r\nContent-Disposition: form-data; "
            b"name=\"video\"; filename=\"v.mp4\"\r\nContent-Type: video/mp4\r\n\r\n" + mp4 + b"\r\n--XyZ--\r\n")


if __name__ == "__main__":
    if sys.argv[2:] == ["video"]:  # only the video seeds (they need ffmpeg, not OpenCV)
        video()
        sys.exit(0)
    jpg = images()
    onnx_nets()
    tfjs()
    faceapi()
    ckpt()
    gallery()
    http(jpg)
    video()
