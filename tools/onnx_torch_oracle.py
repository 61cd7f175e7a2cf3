#!/usr/bin/python3
"""PyTorch oracle for a real ONNX file: reads the graph with the onnx package and runs it node
by node with torch (torch.nn.functional for the layers), at the input size given, then writes
the values asked for as raw little-endian float32 files in ONNX's layout. It shares no code
with mien's loader (src/nn/onnx.c): the golden tests compare the two.

    /usr/bin/python3 tools/onnx_torch_oracle.py --model M.onnx --input IN.f32 \\
        --shape 1,H,W,3 --outputs scores,462 --out PREFIX

IN.f32 is the input as mien feeds it (NHWC float32); it is transposed to NCHW here. Writes
PREFIX.<k>.f32 for output k and prints {"outputs": [{"name", "shape"}...]}. Only the nodes
the outputs need are run, so a model cut before a tail made for another input size (the
UltraFace decoding with its 320x240 priors) runs at any size. Ops: those of the face models
this project loads from ONNX; anything else stops with the op's name.
"""
import argparse
import json
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

torch.set_num_threads(1)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, b, a):
    k = list(w.shape[2:])
    pads = a.get("pads", [0] * (2 * len(k)))
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise SystemExit("auto_pad is not handled by this oracle")
    ph, pw = pads[0], pads[1]
    if pads[0] != pads[2] or pads[1] != pads[3]:
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        ph = pw = 0
    return F.conv2d(x, w, b, stride=a.get("strides", [1, 1]), padding=(ph, pw),
                    dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))


def run(model, x, wanted):
    g = model.graph
    vals = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
    inputs = [i.name for i in g.input if i.name not in vals]
    vals[inputs[0]] = x
    producer = {o: n for n in g.node for o in n.output}
    need, stack = set(), list(wanted)
    while stack:
        v = stack.pop()
        n = producer.get(v)
        if n is None or id(n) in need:
            continue
        need.add(id(n))
        stack.extend(i for i in n.input if i)
    for n in g.node:
        if id(n) not in need:
            continue
        a = attrs(n)
        i = [vals[k] if k else None for k in n.input]
        op = n.op_type
        if op == "Conv":
            y = conv(i[0], i[1], i[2] if len(i) > 2 else None, a)
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "Sigmoid":
            y = torch.sigmoid(i[0])
        elif op == "Constant":
            y = torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        elif op == "Shape":
            y = torch.tensor(list(i[0].shape), dtype=torch.int64)
        elif op == "Gather":
            y = torch.index_select(i[0], a.get("axis", 0), i[1].reshape(-1).long())
            if i[1].dim() == 0:
                y = y.squeeze(a.get("axis", 0))
        elif op == "Unsqueeze":
            y = i[0]
            for ax in sorted(a["axes"]):
                y = y.unsqueeze(ax)
        elif op == "Concat":
            y = torch.cat(i, dim=a["axis"])
        elif op == "Reshape":
            shape = [int(s) for s in i[1].tolist()]
            shape = [i[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
            y = i[0].reshape(shape)
        elif op == "Transpose":
            y = i[0].permute(*a["perm"])
        elif op == "Softmax":
            y = torch.softmax(i[0], dim=a.get("axis", 1))
        elif op in ("Add", "Sub", "Mul", "Div"):
            y = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](i[0], i[1])
        elif op == "Exp":
            y = torch.exp(i[0])
        elif op == "Slice" and "starts" in a:  # opset < 10: attributes
            y = i[0]
            for ax, s, e in zip(a.get("axes", range(len(a["starts"]))), a["starts"], a["ends"]):
                y = y.narrow(ax, s, min(e, y.shape[ax]) - s)
        elif op == "MaxPool":
            k = a["kernel_shape"]
            p = a.get("pads", [0, 0, 0, 0])
            y = F.max_pool2d(i[0], k, a.get("strides", k), (p[0], p[1]), ceil_mode=bool(a.get("ceil_mode", 0)))
        else:
            raise SystemExit("op %s (node %s) is not handled by this oracle" % (op, n.name))
        vals[n.output[0]] = y
    return [vals[w] for w in wanted]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--shape", required=True, help="N,H,W,C of the NHWC input file")
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    shape = [int(s) for s in a.shape.split(",")]
    x = np.fromfile(a.input, dtype="<f4")
    if x.size != np.prod(shape):
        raise SystemExit("input has %d values, --shape says %d" % (x.size, np.prod(shape)))
    x = torch.from_numpy(x.reshape(shape).transpose(0, 3, 1, 2).copy())
    wanted = a.outputs.split(",")
    with torch.no_grad():
        ys = run(onnx.load(a.model), x, wanted)
    info = []
    for k, (name, y) in enumerate(zip(wanted, ys)):
        y.float().numpy().astype("<f4").tofile("%s.%d.f32" % (a.out, k))
        info.append({"name": name, "shape": list(y.shape)})
    json.dump({"outputs": info}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
