#!/usr/bin/python3
"""PyTorch side of bench/peers.sh: the embedders mien runs, built in PyTorch from the very
weight files mien loads, checked against mien's own output, then timed.

  peers_torch.py MODELS_DIR PEER_MIEN THREADS SECONDS [MODEL...]

MODEL: mobilefacenet (the TFJS graph model human/mobilefacenet.json, interpreted node by node
into torch modules, TensorFlow's exported PReLU pattern relu(x) + a (x - |x|) recognised as
F.prelu) and dlib (face-api's ResNet-29 from faceapi/face_recognition_model*, the
architecture of src/nn/faceapi.c). Each is checked against `PEER_MIEN run` on the same random
input (max |difference| <= 1e-4 or the script fails), then timed with torch.set_num_threads
(THREADS) in channels_last, both eagerly and as a frozen TorchScript module
(torch.jit.optimize_for_inference); the faster is reported. One JSON object per model and
mode on stdout.
"""
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ==== TFJS weights ====

def load_manifest_weights(manifest, folder):
    """name -> numpy array, dequantizing uint8/uint16 weights as TFJS does."""
    out = {}
    for group in manifest:
        data = b"".join(open(os.path.join(folder, p), "rb").read() for p in group["paths"])
        at = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"])) if w["shape"] else 1
            q = w.get("quantization")
            if q:
                qdt = np.uint8 if q["dtype"] == "uint8" else np.uint16
                raw = np.frombuffer(data, qdt, n, at)
                at += n * raw.itemsize
                arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                dt = np.float32 if w["dtype"] == "float32" else np.int32
                arr = np.frombuffer(data, dt, n, at)
                at += n * 4
            out[w["name"]] = np.array(arr).reshape(w["shape"])
    return out


def attr_s(node, key):
    v = node.get("attr", {}).get(key, {})
    return base64.b64decode(v["s"]).decode() if "s" in v else None


def attr_list(node, key, kind):
    return node.get("attr", {}).get(key, {}).get("list", {}).get(kind, [])


# ==== MobileFaceNet: a TFJS graph model as torch modules ====

def same_pad(size, k, s):
    """TensorFlow's SAME padding (before, after) for one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class TfjsGraph(nn.Module):
    """Runs the graph's nodes in file order; activations are NCHW torch tensors."""

    def __init__(self, model_json, input_hw):
        super().__init__()
        folder = os.path.dirname(model_json)
        m = json.load(open(model_json))
        weights = load_manifest_weights(m["weightsManifest"], folder)
        nodes = m["modelTopology"]["node"]
        self.consts = {}
        by_name = {n["name"]: n for n in nodes}
        users = {}
        for n in nodes:
            for i in n.get("input", []):
                users.setdefault(i.split(":")[0], []).append(n["name"])
        # TensorFlow's PReLU: add(relu(x), mul(sub(x, abs(x)), c)) == prelu(x, 2c).
        fused, prelu = set(), {}
        for n in nodes:
            if n["op"] != "Add":
                continue
            a, b = (by_name.get(i) for i in n["input"])
            if not a or not b or a["op"] != "Relu" or b["op"] != "Mul":
                continue
            sub = by_name.get(b["input"][0])
            if not sub or sub["op"] != "Sub" or b["input"][1] not in weights:
                continue
            x = a["input"][0]
            ab = by_name.get(sub["input"][1])
            if sub["input"][0] != x or not ab or ab["op"] != "Abs" or ab["input"][0] != x:
                continue
            inner = {a["name"], b["name"], sub["name"], ab["name"]}
            if any(u not in inner | {n["name"]} for i in inner for u in users.get(i, [])):
                continue     # an intermediate is read elsewhere: keep the ops as they are
            prelu[n["name"]] = (x, 2.0 * weights[b["input"][1]])
            fused.update(inner)
        self.steps = []          # (kind, name, inputs, params)
        self.mods = nn.ModuleDict()
        shapes = {}
        h = w = input_hw
        for n in nodes:
            op, name = n["op"], n["name"]
            ins = [i.split(":")[0] for i in n.get("input", [])]
            key = "m%d" % len(self.steps)
            if op == "Const":
                if name in weights:
                    self.consts[name] = weights[name]
                continue
            if name in fused:
                continue
            if op == "Placeholder":
                self.steps.append(("input", name, [], None))
                shapes[name] = (h, w)
            elif op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
                wt, bias = weights[ins[1]], weights[ins[2]]
                kh, kw = wt.shape[0], wt.shape[1]
                s = int(attr_list(n, "strides", "i")[1])
                ih, iw = shapes[ins[0]]
                if attr_s(n, "padding") == "SAME":
                    ph, pw = same_pad(ih, kh, s), same_pad(iw, kw, s)
                else:
                    ph, pw = (0, 0), (0, 0)
                oh = (ih + ph[0] + ph[1] - kh) // s + 1
                ow = (iw + pw[0] + pw[1] - kw) // s + 1
                if op == "_FusedConv2D":
                    ci, co, groups = wt.shape[2], wt.shape[3], 1
                    tw = torch.from_numpy(wt.transpose(3, 2, 0, 1).copy())
                else:
                    c, mult = wt.shape[2], wt.shape[3]
                    ci, co, groups = c, c * mult, c
                    tw = torch.from_numpy(wt.reshape(kh, kw, c * mult).transpose(2, 0, 1)[:, None].copy())
                sym = ph[0] == ph[1] and pw[0] == pw[1]
                conv = nn.Conv2d(ci, co, (kh, kw), s, (ph[0], pw[0]) if sym else 0, groups=groups, bias=True)
                conv.weight.data.copy_(tw)
                conv.bias.data.copy_(torch.from_numpy(bias.copy()))
                self.mods[key] = conv
                fops = [base64.b64decode(x).decode() for x in attr_list(n, "fused_ops", "s")]
                pad = None if sym else (pw[0], pw[1], ph[0], ph[1])
                self.steps.append(("conv", name, [ins[0]], (key, pad, "Relu" in fops)))
                shapes[name] = (oh, ow)
            elif name in prelu:
                x, alpha = prelu[name]
                p = nn.PReLU(alpha.size)
                p.weight.data.copy_(torch.from_numpy(alpha.astype(np.float32)))
                self.mods[key] = p
                self.steps.append(("module", name, [x], key))
                shapes[name] = shapes[x]
            elif op in ("Add", "Sub", "Mul", "Maximum", "Relu", "Abs", "Square", "Rsqrt"):
                self.steps.append((op, name, ins, None))
                shapes[name] = shapes.get(ins[0], shapes.get(ins[-1]))
            elif op == "Squeeze":
                self.steps.append(("squeeze", name, ins, None))
                shapes[name] = None
            elif op == "Sum":
                axes = np.atleast_1d(weights[ins[1]]).tolist()
                keep = n.get("attr", {}).get("keep_dims", {}).get("b", False)
                self.steps.append(("sum", name, [ins[0]], (axes, keep)))
                shapes[name] = None
            else:
                raise RuntimeError("op %s not supported by this converter" % op)
        self.output = nodes[-1]["name"]
        self.const_t = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in self.consts.items()
                        if np.asarray(v).dtype != np.int32}

    def value(self, vals, name, like):
        if name in vals:
            return vals[name]
        c = self.const_t[name]
        if c.dim() == 1 and like.dim() == 4 and c.numel() == like.shape[1]:
            return c.view(1, -1, 1, 1)     # a per-channel constant of NHWC's last axis
        return c

    def forward(self, x):
        vals = {}
        for kind, name, ins, p in self.steps:
            if kind == "input":
                vals[name] = x
            elif kind == "conv":
                key, pad, relu = p
                y = vals[ins[0]]
                if pad is not None:
                    y = F.pad(y, pad)
                y = self.mods[key](y)
                vals[name] = F.relu(y) if relu else y
            elif kind == "module":
                vals[name] = self.mods[p](vals[ins[0]])
            elif kind in ("Relu", "Abs", "Square", "Rsqrt"):
                a = vals[ins[0]]
                vals[name] = {"Relu": F.relu, "Abs": torch.abs, "Square": torch.square,
                              "Rsqrt": torch.rsqrt}[kind](a)
            elif kind in ("Add", "Sub", "Mul", "Maximum"):
                like = vals[ins[0]] if ins[0] in vals else vals[ins[1]]
                a, b = self.value(vals, ins[0], like), self.value(vals, ins[1], like)
                vals[name] = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul,
                              "Maximum": torch.maximum}[kind](a, b)
            elif kind == "squeeze":
                vals[name] = torch.flatten(vals[ins[0]], 1)   # (1, C, 1, 1) -> (1, C)
            elif kind == "sum":
                axes, keep = p
                vals[name] = torch.sum(vals[ins[0]], dim=axes, keepdim=keep)
        return vals[self.output]


# ==== dlib's ResNet-29 (face-api's FaceRecognitionNet) ====

class DlibResNet(nn.Module):
    """src/nn/faceapi.c's architecture: conv + bias + scale folded into one convolution."""

    def __init__(self, manifest_path):
        super().__init__()
        wts = load_manifest_weights(json.load(open(manifest_path)), os.path.dirname(manifest_path))
        self.register_buffer("mean", torch.tensor([122.782, 117.001, 104.298]).view(1, 3, 1, 1))

        def conv(prefix, stride, pad):
            w = wts[prefix + "/conv/filters"]
            s = wts[prefix + "/scale/weights"]
            b = wts[prefix + "/conv/bias"] * s + wts[prefix + "/scale/biases"]
            k, _, ci, co = w.shape
            c = nn.Conv2d(ci, co, k, stride, pad, bias=True)
            c.weight.data.copy_(torch.from_numpy((w * s).transpose(3, 2, 0, 1).copy()))
            c.bias.data.copy_(torch.from_numpy(b.astype(np.float32)))
            return c

        self.stem = conv("conv32_down", 2, 0)
        names = ["conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2",
                 "conv64_3", "conv128_down", "conv128_1", "conv128_2", "conv256_down",
                 "conv256_1", "conv256_2", "conv256_down_out"]
        self.blocks = nn.ModuleList()
        self.down = []
        for n in names:
            d = n.endswith("down") or n.endswith("down_out")
            self.down.append(d)
            self.blocks.append(nn.ModuleList([conv(n + "/conv1", 2 if d else 1, 0 if d else 1),
                                              conv(n + "/conv2", 1, 1)]))
        self.fc = nn.Linear(256, 128, bias=False)
        self.fc.weight.data.copy_(torch.from_numpy(wts["fc"].T.copy()))

    def forward(self, x):
        x = (x - self.mean) / 255.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        for (c1, c2), d in zip(self.blocks, self.down):
            y = c2(F.relu(c1(x)))
            if d:
                s = F.avg_pool2d(x, 2, 2)
                dh, dw = s.shape[2] - y.shape[2], s.shape[3] - y.shape[3]
                if dh or dw:
                    y = F.pad(y, (0, dw, 0, dh))
                if y.shape[1] > s.shape[1]:
                    s = F.pad(s, (0, 0, 0, 0, 0, y.shape[1] - s.shape[1]))
                x = F.relu(s + y)
            else:
                x = F.relu(y + x)
        return self.fc(x.mean(dim=(2, 3)))


# ==== Check and time ====

def build(models_dir, name):
    if name == "mobilefacenet":
        return TfjsGraph(os.path.join(models_dir, "human/mobilefacenet.json"), 112), 112, 1.0
    if name == "dlib":
        return DlibResNet(os.path.join(models_dir, "faceapi/face_recognition_model-weights_manifest.json")), 150, 255.0
    raise SystemExit("unknown model " + name)


def check(model, name, side, scale, models_dir, peer):
    rng = np.random.default_rng(7)
    x = (rng.random((1, side, side, 3), dtype=np.float32) * 2 - 1) if scale == 1.0 else \
        (rng.random((1, side, side, 3), dtype=np.float32) * scale)
    with tempfile.TemporaryDirectory() as d:
        fi, fo = os.path.join(d, "in.f32"), os.path.join(d, "out.f32")
        x.tofile(fi)
        subprocess.run([peer, "run", models_dir, name, fi, fo], check=True, stdout=subprocess.DEVNULL)
        ours = np.fromfile(fo, np.float32)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()).numpy().ravel()
    diff = float(np.max(np.abs(ours - theirs)))
    if not diff <= 1e-4:
        raise SystemExit("%s: PyTorch and mien differ by %.3g (> 1e-4)" % (name, diff))
    return diff


def time_model(fn, x, seconds):
    with torch.no_grad():
        end = time.perf_counter() + 0.2 * seconds
        while time.perf_counter() < end:
            fn(x)
        t, c = [], []
        end = time.perf_counter() + seconds
        while len(t) < 10 or time.perf_counter() < end:
            t0, c0 = time.perf_counter(), time.thread_time()
            fn(x)
            c.append((time.thread_time() - c0) * 1e3)
            t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t), statistics.median(c), len(t)


def main():
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    models_dir, peer, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    names = sys.argv[5:] or ["mobilefacenet", "dlib"]
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shapes are fixed
    for name in names:
        model, side, scale = build(models_dir, name)
        model.eval()
        diff = check(model, name, side, scale, models_dir, peer)
        x = (torch.rand(1, 3, side, side) * scale).contiguous(memory_format=torch.channels_last)
        cl = model.to(memory_format=torch.channels_last)
        best = None
        for mode in ("eager", "torchscript"):
            if mode == "eager":
                fn = cl
            else:
                with torch.no_grad():
                    fn = torch.jit.optimize_for_inference(torch.jit.trace(cl, x).eval())
            ms, cpu_ms, runs = time_model(fn, x, seconds)
            r = {"tool": "pytorch " + torch.__version__, "model": name, "mode": mode,
                 "threads": threads, "ms": round(ms, 4), "cpu_ms": round(cpu_ms, 4), "runs": runs,
                 "max_diff_vs_mien": diff}
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
