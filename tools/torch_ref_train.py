#!/usr/bin/python3
"""PyTorch oracle of mien's training code (tests/test_train.c).

Usage: /usr/bin/python3 tools/torch_ref_train.py DIR

DIR/manifest.txt lists one case per line:  NAME OP key=value ...
Tensors are raw little-endian float32 files DIR/NAME.KEY.f32 with their shapes given as
shape.KEY=2x3x4 in the line. For every case this script recomputes the forward result and the
gradients of L = sum(y * dy) (ops) or of the loss (losses) with torch.autograd in float64,
independently of the C code, and writes them as DIR/NAME.OUT.ref.f32. The C test compares.

Layouts are mien's: activations NHWC, conv weights HWIO, depthwise [KH, KW, C, M],
fully connected [K, M]. Exit status 0 on success; any failure (no torch, a bad case) is
non-zero, which fails the test.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def load(d, name, key, attrs):
    shape = [int(v) for v in attrs["shape." + key].split("x")]
    a = np.fromfile(os.path.join(d, f"{name}.{key}.f32"), dtype="<f4")
    return torch.tensor(a.astype(np.float64).reshape(shape))


def save(d, name, key, t):
    t.detach().to(torch.float32).numpy().astype("<f4").tofile(os.path.join(d, f"{name}.{key}.ref.f32"))


def ints(s):
    return [int(v) for v in s.split(",")]


def act(y, kind, alpha):
    # y is NCHW or (rows, C); alpha per channel (dim 1)
    if kind == "relu":
        return torch.relu(y)
    if kind == "prelu":
        shape = [1, -1] + [1] * (y.dim() - 2)
        return torch.where(y > 0, y, alpha.view(shape) * y)
    return y


def has(attrs, key):
    return "shape." + key in attrs


def op_conv(d, name, a, depthwise):
    x = load(d, name, "x", a).requires_grad_()
    w = load(d, name, "w", a).requires_grad_()
    dy = load(d, name, "dy", a)
    b = load(d, name, "b", a).requires_grad_() if has(a, "b") else None
    al = load(d, name, "alpha", a).requires_grad_() if has(a, "alpha") else None
    st, pad, dil = ints(a["stride"]), ints(a["pad"]), ints(a["dil"])
    xn = x.permute(0, 3, 1, 2)
    xn = F.pad(xn, (pad[2], pad[3], pad[0], pad[1]))
    if depthwise:
        kh, kw, c, m = w.shape
        wt = w.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
        groups = c
    else:
        groups = int(a["groups"])
        wt = w.permute(3, 2, 0, 1)
    y = F.conv2d(xn, wt, b, stride=st, dilation=dil, groups=groups)
    y = act(y, a["act"], al)
    y = y.permute(0, 2, 3, 1)
    (y * dy).sum().backward()
    save(d, name, "y", y)
    save(d, name, "dx", x.grad)
    save(d, name, "dw", w.grad)
    if b is not None:
        save(d, name, "db", b.grad)
    if al is not None:
        save(d, name, "dalpha", al.grad)


def op_fc(d, name, a):
    x = load(d, name, "x", a).requires_grad_()
    w = load(d, name, "w", a).requires_grad_()
    dy = load(d, name, "dy", a)
    b = load(d, name, "b", a).requires_grad_() if has(a, "b") else None
    al = load(d, name, "alpha", a).requires_grad_() if has(a, "alpha") else None
    y = x @ w
    if b is not None:
        y = y + b
    y = act(y, a["act"], al)
    (y * dy).sum().backward()
    save(d, name, "y", y)
    save(d, name, "dx", x.grad)
    save(d, name, "dw", w.grad)
    if b is not None:
        save(d, name, "db", b.grad)
    if al is not None:
        save(d, name, "dalpha", al.grad)


def op_bn(d, name, a):
    x = load(d, name, "x", a).requires_grad_()
    g = load(d, name, "gamma", a).requires_grad_()
    b = load(d, name, "beta", a).requires_grad_()
    dy = load(d, name, "dy", a)
    rm = load(d, name, "rm", a).clone()
    rv = load(d, name, "rv", a).clone()
    train = a["mode"] == "train"
    # Channels last: every position of every image is a sample of its channel, which is
    # batch_norm over (rows, C) (BatchNorm2d on NCHW gives the same statistics).
    xc = x.reshape(-1, x.shape[-1])
    al = load(d, name, "alpha", a).requires_grad_() if has(a, "alpha") else None
    y = F.batch_norm(xc, rm, rv, g, b, training=train, momentum=float(a["momentum"]),
                     eps=float(a["eps"]))
    y = act(y, a["act"], al).reshape(x.shape)
    (y * dy).sum().backward()
    save(d, name, "y", y)
    save(d, name, "dx", x.grad)
    save(d, name, "dgamma", g.grad)
    save(d, name, "dbeta", b.grad)
    if al is not None:
        save(d, name, "dalpha", al.grad)
    save(d, name, "rm", rm)
    save(d, name, "rv", rv)


def op_prelu(d, name, a):
    x = load(d, name, "x", a).requires_grad_()
    al = load(d, name, "alpha", a).requires_grad_()
    dy = load(d, name, "dy", a)
    y = torch.where(x > 0, x, al * x)
    (y * dy).sum().backward()
    save(d, name, "y", y)
    save(d, name, "dx", x.grad)
    save(d, name, "dalpha", al.grad)


def op_add(d, name, a):
    x = load(d, name, "a", a).requires_grad_()
    z = load(d, name, "b", a).requires_grad_()
    dy = load(d, name, "dy", a)
    y = x + z
    (y * dy).sum().backward()
    save(d, name, "y", y)
    save(d, name, "da", x.grad)
    save(d, name, "db", z.grad)


def op_l2norm(d, name, a):
    x = load(d, name, "x", a).requires_grad_()
    dy = load(d, name, "dy", a)
    eps = float(a["eps"])
    y = x * torch.rsqrt(torch.clamp((x * x).sum(-1, keepdim=True), min=eps))
    (y * dy).sum().backward()
    save(d, name, "y", y)
    save(d, name, "dx", x.grad)


def psi(kind, c, m1, m2, m3, easy):
    """The target logit's margin, written from the papers' formulas (see head.h)."""
    if kind == "softmax" or (m1 == 1 and m2 == 0):
        return c - m3
    if m1 == 1:
        # ArcFace, InsightFace's arcface_torch form
        sin = torch.sqrt(torch.clamp(1 - c * c, min=1e-12))
        phi = c * math.cos(m2) - sin * math.sin(m2)
        if easy:
            out = torch.where(c > 0, phi, c)
        else:
            out = torch.where(c > math.cos(math.pi - m2), phi, c - math.sin(math.pi - m2) * m2)
        return out - m3
    lim = 1 - 1e-7
    theta = torch.acos(torch.clamp(c, -lim, lim))
    phi = m1 * theta + m2
    k = torch.floor(phi / math.pi)
    sign = 1 - 2 * torch.remainder(k, 2)
    return sign * torch.cos(phi) - 2 * k - m3


def op_loss(d, name, a):
    x = load(d, name, "x", a).requires_grad_()
    w = load(d, name, "w", a).requires_grad_()
    lab = load(d, name, "labels", a).long()
    kind = a["kind"]
    s, m1, m2, m3 = (float(a[k]) for k in ("s", "m1", "m2", "m3"))
    easy = int(a["easy"])
    if kind == "softmax":
        z = x @ w.t()
    else:
        wn = w / w.norm(dim=1, keepdim=True)
        cos = torch.clamp(x @ wn.t(), -1, 1)
        onehot = F.one_hot(lab, w.shape[0]).bool()
        tgt = psi(kind, cos, m1, m2, m3, easy)
        z = s * torch.where(onehot, tgt, cos)
    loss = F.cross_entropy(z, lab)
    loss.backward()
    save(d, name, "loss", loss.reshape(1))
    save(d, name, "dx", x.grad)
    save(d, name, "dw", w.grad)


def op_optim(d, name, a):
    w = load(d, name, "w", a).clone().requires_grad_()
    gs = load(d, name, "g", a)
    lr, wd = float(a["lr"]), float(a["wd"])
    if a["kind"] == "sgd":
        opt = torch.optim.SGD([w], lr=lr, momentum=float(a["momentum"]), weight_decay=wd)
    else:
        opt = torch.optim.AdamW([w], lr=lr, betas=(float(a["b1"]), float(a["b2"])),
                                eps=float(a["eps"]), weight_decay=wd)
    for t in range(gs.shape[0]):
        opt.zero_grad()
        w.grad = gs[t].clone()
        opt.step()
    save(d, name, "w_out", w)


OPS = {
    "conv": lambda d, n, a: op_conv(d, n, a, False),
    "dwconv": lambda d, n, a: op_conv(d, n, a, True),
    "fc": op_fc,
    "bn": op_bn,
    "prelu": op_prelu,
    "add": op_add,
    "l2norm": op_l2norm,
    "loss": op_loss,
    "optim": op_optim,
}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = sys.argv[1]
    n = 0
    with open(os.path.join(d, "manifest.txt")) as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            name, op = parts[0], parts[1]
            attrs = dict(p.split("=", 1) for p in parts[2:])
            OPS[op](d, name, attrs)
            n += 1
    print(f"torch {torch.__version__}: {n} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
