#!/usr/bin/python3
"""PyTorch oracle for real ONNX files: runs an ONNX graph node by node with torch's own
operators (torch.nn.functional, float32 on the CPU) and writes every output as raw
little-endian float32, in ONNX's layout.

    /usr/bin/python3 tools/onnx_torch_oracle_simple.py MODEL.onnx IN.f32 N,H,W,C OUT

IN.f32 is the input as mien feeds its graphs (NHWC, float32); it is transposed to NCHW for
the model. Writes OUT.<k>.f32 for output k in file order and prints one line per output:
"NAME RANK D0 D1 ...". Used by tools/make_goldens_analysis.sh to make the goldens that
tests/test_analysis.c compares mien's ONNX loader with (the face-analysis models of
faceplugin-face-recognition-js).

Only the ops those models use are implemented (opset 9 semantics, which is what they were
exported with); any other op stops with its name, so the oracle never guesses.
"""
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

torch.set_num_threads(1)


def attrs(node):
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, onnx.TensorProto):
            v = numpy_helper.to_array(v)
        out[a.name] = v
    return out


def conv_pads(pads, nd):
    """ONNX pads (begin..., end...) as F.pad's (last axis first) list; None if symmetric."""
    b, e = pads[:nd], pads[nd:]
    if list(b) == list(e):
        return None, list(b)
    p = []
    for i in reversed(range(nd)):
        p += [b[i], e[i]]
    return p, [0] * nd


def run(model, x):
    vals = {}
    for init in model.graph.initializer:
        vals[init.name] = torch.from_numpy(numpy_helper.to_array(init).copy())
    inits = set(vals)
    inputs = [i for i in model.graph.input if i.name not in inits]
    vals[inputs[0].name] = x
    for node in model.graph.node:
        a = attrs(node)
        ins = [vals[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Conv":
            w = ins[1]
            nd = w.dim() - 2
            extra, sym = conv_pads(a.get("pads", [0] * (2 * nd)), nd)
            if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
                raise SystemExit(f"{node.name}: auto_pad {a['auto_pad']} not implemented")
            xin = F.pad(ins[0], extra) if extra else ins[0]
            y = F.conv2d(xin, w, ins[2] if len(ins) > 2 else None, stride=a.get("strides", [1, 1]),
                         padding=sym, dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
        elif op == "BatchNormalization":
            y = F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, a.get("epsilon", 1e-5))
        elif op == "Relu":
            y = F.relu(ins[0])
        elif op == "PRelu":
            slope = ins[1]
            if slope.dim() == 3 and ins[0].dim() == 4:
                y = torch.where(ins[0] >= 0, ins[0], ins[0] * slope.unsqueeze(0))
            else:
                y = torch.where(ins[0] >= 0, ins[0], ins[0] * slope)
        elif op == "Softmax":
            y = F.softmax(ins[0], dim=a.get("axis", 1))
        elif op == "Exp":
            y = torch.exp(ins[0])
        elif op == "Slice":
            y = ins[0]
            for ax, b, e in zip(a.get("axes", range(len(a["starts"]))), a["starts"], a["ends"]):
                y = y.narrow(ax, b, min(e, y.shape[ax]) - b)
        elif op == "Sigmoid":
            y = torch.sigmoid(ins[0])
        elif op == "Tanh":
            y = torch.tanh(ins[0])
        elif op in ("Add", "Mul", "Sub", "Div"):
            f = {"Add": torch.add, "Mul": torch.mul, "Sub": torch.sub, "Div": torch.div}[op]
            y = f(ins[0], ins[1])
        elif op == "GlobalAveragePool":
            y = ins[0].mean(dim=(2, 3), keepdim=True)
        elif op in ("MaxPool", "AveragePool"):
            k = a["kernel_shape"]
            extra, sym = conv_pads(a.get("pads", [0, 0, 0, 0]), 2)
            if extra:
                raise SystemExit(f"{node.name}: asymmetric pool padding not implemented")
            s = a.get("strides", [1, 1])
            ceil = bool(a.get("ceil_mode", 0))
            if op == "MaxPool":
                y = F.max_pool2d(ins[0], k, s, sym, ceil_mode=ceil)
            else:
                y = F.avg_pool2d(ins[0], k, s, sym, ceil_mode=ceil,
                                 count_include_pad=bool(a.get("count_include_pad", 0)))
        elif op == "Pad":
            pads = a["pads"]
            nd = len(pads) // 2
            p = []
            for i in reversed(range(nd)):
                p += [pads[i], pads[i + nd]]
            mode = a.get("mode", "constant")
            y = F.pad(ins[0], p, mode=mode, value=float(a.get("value", 0.0))) if mode == "constant" \
                else F.pad(ins[0], p, mode=mode)
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.t()
            if a.get("transB", 0):
                B = B.t()
            y = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                y = y + a.get("beta", 1.0) * ins[2]
        elif op == "MatMul":
            y = torch.matmul(ins[0], ins[1])
        elif op == "Flatten":
            ax = a.get("axis", 1)
            y = ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        elif op == "Reshape":
            shape = [int(v) for v in ins[1].tolist()]
            shape = [ins[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
            y = ins[0].reshape(shape)
        elif op == "Transpose":
            y = ins[0].permute(*a["perm"])
        elif op == "Concat":
            y = torch.cat(ins, dim=a["axis"])
        elif op == "Split":
            ax = a.get("axis", 0)
            sizes = a.get("split") or [ins[0].shape[ax] // len(node.output)] * len(node.output)
            for name, piece in zip(node.output, torch.split(ins[0], list(sizes), dim=ax)):
                vals[name] = piece.contiguous()
            continue
        elif op == "ReduceMean":
            y = ins[0].mean(dim=tuple(a["axes"]), keepdim=bool(a.get("keepdims", 1)))
        elif op == "Shape":
            y = torch.tensor(list(ins[0].shape), dtype=torch.int64)
        elif op == "Constant":
            y = torch.from_numpy(np.array(a["value"]).copy())
        elif op == "Gather":
            y = torch.index_select(ins[0], a.get("axis", 0), ins[1].reshape(-1).long())
            if ins[1].dim() == 0:
                y = y.squeeze(a.get("axis", 0))
        elif op == "Unsqueeze":
            y = ins[0]
            for ax in sorted(a["axes"]):
                y = y.unsqueeze(ax)
        else:
            raise SystemExit(f"op {op} (node {node.name}) is not implemented in the oracle")
        vals[node.output[0]] = y
    return [(o.name, vals[o.name]) for o in model.graph.output]


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    model = onnx.load(sys.argv[1])
    n, h, w, c = (int(v) for v in sys.argv[3].split(","))
    x = np.fromfile(sys.argv[2], dtype="<f4")
    if x.size != n * h * w * c:
        raise SystemExit(f"{sys.argv[2]}: {x.size} values, expected {n * h * w * c}")
    x = torch.from_numpy(x.reshape(n, h, w, c).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        outs = run(model, x)
    for k, (name, y) in enumerate(outs):
        y = y.float().contiguous().numpy()
        y.astype("<f4").tofile(f"{sys.argv[4]}.{k}.f32")
        print(name, y.ndim, *y.shape)


if __name__ == "__main__":
    main()
