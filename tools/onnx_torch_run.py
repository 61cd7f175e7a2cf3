#!/usr/bin/python3
"""Run a real ONNX model in PyTorch, re-expressed node by node from the file: the oracle for
mien's ONNX loader on the models setup fetches (tests/test_onnx.c, "real models").

    /usr/bin/python3 tools/onnx_torch_run.py MODEL.onnx IN.f32 N C H W OUT.f32
        IN.f32: the input, float32 NCHW little-endian; OUT.f32: the first output, float32.

    /usr/bin/python3 tools/onnx_torch_run.py --crop MODEL.onnx IMAGE MEAN SCALE SIZE
        x1 y1 ... x5 y5 OUT.f32
        The model's own preprocessing, done independently of mien: OpenCV reads IMAGE,
        estimates the least-squares similarity transform from the five points (pixel centres at +0.5, as
        mien's) onto InsightFace's 112x112 template scaled to SIZE, warps with
        cv2.warpAffine (bilinear), converts to RGB, (x - MEAN) * SCALE, NCHW; then runs the
        model. Writes the first output.

Only the ops of the models it is used on are written (Conv with groups, pads, strides and
dilations; PRelu; Relu; Add, Sub, Mul, Div; Reshape; Flatten; Gemm; MatMul;
BatchNormalization; GlobalAveragePool; MaxPool/AveragePool; Concat; Sigmoid; Softmax;
Transpose; Clip); an unknown op stops with its name. Computation in float64, so the oracle's
own rounding does not count against mien.
"""
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

torch.set_num_threads(1)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv_pads(p):
    """ONNX pads (x1_begin, x2_begin, x1_end, x2_end) -> F.pad order (x2_b, x2_e, x1_b, x1_e)."""
    n = len(p) // 2
    out = []
    for i in reversed(range(n)):
        out += [p[i], p[i + n]]
    return out


def run(model_path, x):
    m = onnx.load(model_path)
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(np.float64)
                                    if numpy_helper.to_array(t).dtype.kind == 'f'
                                    else numpy_helper.to_array(t).copy())
           for t in m.graph.initializer}
    inputs = [i.name for i in m.graph.input if i.name not in env]
    env[inputs[0]] = torch.from_numpy(x.astype(np.float64))
    for node in m.graph.node:
        a, op = attrs(node), node.op_type
        ins = [env[i] if i else None for i in node.input]
        if op == 'Conv':
            w = ins[0 + 1]
            pads = a.get('pads', [0] * (2 * (w.dim() - 2)))
            y = F.pad(ins[0], conv_pads(pads))
            y = F.conv2d(y, w, ins[2] if len(ins) > 2 else None, stride=a.get('strides', 1),
                         dilation=a.get('dilations', 1), groups=a.get('group', 1))
        elif op == 'PRelu':
            sl = ins[1]
            if sl.dim() == 1 and sl.numel() > 1:
                sl = sl.view([1, -1] + [1] * (ins[0].dim() - 2))
            y = torch.where(ins[0] >= 0, ins[0], ins[0] * sl)
        elif op == 'Relu':
            y = torch.relu(ins[0])
        elif op in ('Add', 'Sub', 'Mul', 'Div'):
            y = {'Add': torch.add, 'Sub': torch.sub, 'Mul': torch.mul, 'Div': torch.div}[op](ins[0], ins[1])
        elif op == 'Reshape':
            shape = [int(v) for v in ins[1].tolist()]
            shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif op == 'Flatten':
            ax = a.get('axis', 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == 'Gemm':
            A, B = ins[0], ins[1]
            if a.get('transA', 0): A = A.t()
            if a.get('transB', 0): B = B.t()
            y = a.get('alpha', 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None: y = y + a.get('beta', 1.0) * ins[2]
        elif op == 'MatMul':
            y = ins[0] @ ins[1]
        elif op == 'BatchNormalization':
            x0, sc, b, mu, var = ins[:5]
            sh = [1, -1] + [1] * (x0.dim() - 2)
            y = (x0 - mu.view(sh)) / torch.sqrt(var.view(sh) + a.get('epsilon', 1e-5)) * sc.view(sh) + b.view(sh)
        elif op == 'GlobalAveragePool':
            y = ins[0].mean(dim=(2, 3), keepdim=True)
        elif op in ('MaxPool', 'AveragePool'):
            k = a['kernel_shape']
            p = conv_pads(a.get('pads', [0] * 4))
            x0 = F.pad(ins[0], p, value=-np.inf if op == 'MaxPool' else 0.0)
            fn = F.max_pool2d if op == 'MaxPool' else F.avg_pool2d
            y = fn(x0, k, stride=a.get('strides', k), ceil_mode=bool(a.get('ceil_mode', 0)))
        elif op == 'Concat':
            y = torch.cat(ins, dim=a['axis'])
        elif op == 'Sigmoid':
            y = torch.sigmoid(ins[0])
        elif op == 'Softmax':
            y = torch.softmax(ins[0], dim=a.get('axis', -1))
        elif op == 'Transpose':
            y = ins[0].permute(a['perm'])
        elif op == 'Clip':
            lo = ins[1] if len(ins) > 1 and ins[1] is not None else a.get('min', -np.inf)
            hi = ins[2] if len(ins) > 2 and ins[2] is not None else a.get('max', np.inf)
            y = torch.clamp(ins[0], float(lo), float(hi))
        else:
            sys.exit(f'onnx_torch_run.py: op {op} is not written here')
        env[node.output[0]] = y
    return env[m.graph.output[0].name].numpy()


ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                    [41.5493, 92.3655], [70.7299, 92.2041]])


def similarity(src, dst):
    """Least-squares similarity transform src -> dst (Umeyama 1991), as a 2x3 matrix."""
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    cov = d0.T @ s0 / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    c = np.trace(np.diag(S) @ D) / (s0 ** 2).sum(1).mean()
    t = md - c * R @ ms
    return np.hstack([c * R, t[:, None]])


def crop(image, mean, scale, size, pts):
    import cv2
    img = cv2.imread(image, cv2.IMREAD_COLOR)
    src = np.array(pts, np.float64).reshape(5, 2) - 0.5      # mien's pixel centres -> OpenCV's
    dst = ARCFACE * size / 112.0
    M = similarity(src, dst)
    chip = cv2.warpAffine(img, M, (size, size), flags=cv2.INTER_LINEAR)
    rgb = chip[:, :, ::-1].astype(np.float64)
    return ((rgb - mean) * scale).transpose(2, 0, 1)[None]


def main(a):
    if a[:1] == ['--crop']:
        model, image, mean, scale, size = a[1], a[2], float(a[3]), float(a[4]), int(a[5])
        x = crop(image, mean, scale, size, [float(v) for v in a[6:16]])
        out = a[16]
    else:
        model, n, c, h, w, out = a[0], *map(int, a[2:6]), a[6]
        x = np.fromfile(a[1], '<f4').reshape(n, c, h, w)
    run(model, x).astype('<f4').tofile(out)


if __name__ == '__main__':
    main(sys.argv[1:])
