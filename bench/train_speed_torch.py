#!/usr/bin/python3
"""PyTorch side of bench/train_speed.sh: MobileFaceNet training steps in PyTorch 1.13 (Debian's
python3-torch), the same network, batch, head and optimizer as `mien train --bench-step`.

  train_speed_torch.py --threads T [--batch 64] [--classes 10000] [--steps 5]
                       [--channels-last]

The network is mien's src/train/arch.c MobileFaceNet (Chen et al. 2018, sirius-ai's layout):
conv units conv (no bias) -> BatchNorm2d (training mode) -> PReLU or linear, 1x1 expand, 3x3
depthwise, 1x1 project with residuals, a 7x7 global depthwise conv and a 192-d linear
embedding, L2-normalised; the head is ArcFace (s 64, m 0.5, InsightFace's safe form) over
CLASSES normalised centres; SGD with momentum 0.9 and weight decay 5e-4. Inputs are random
images and labels, as in mien's benchmark. Step 0 is a warm-up, not timed. Prints one JSON
object: images_per_s, ms_per_step, peak_rss_bytes (ru_maxrss of this process, which holds
the torch library too).
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Unit(nn.Module):
    """conv (k, stride, TF SAME or VALID padding) -> BN -> PReLU (or linear)."""

    def __init__(self, cin, cout, k, stride, dw=False, prelu=True, valid=False):
        super().__init__()
        pad = 0 if valid else (k - 1) // 2
        self.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=cin if dw else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.act = nn.PReLU(cout, init=0.25) if prelu else None

    def forward(self, x):
        y = self.bn(self.conv(x))
        return self.act(y) if self.act is not None else y


class Block(nn.Module):
    def __init__(self, cin, expand, cout, stride):
        super().__init__()
        self.expand = Unit(cin, expand, 1, 1)
        self.dw = Unit(expand, expand, 3, stride, dw=True)
        self.project = Unit(expand, cout, 1, 1, prelu=False)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return y + x if self.res else y


class MobileFaceNet(nn.Module):
    def __init__(self, dim=192):
        super().__init__()
        layers = [Unit(3, 64, 3, 2), Unit(64, 64, 3, 1, dw=True), Unit(64, 64, 1, 1, prelu=False)]
        cin = 64
        for blocks, expand, out, stride in ((5, 128, 64, 2), (1, 256, 128, 2), (6, 256, 128, 1),
                                            (1, 512, 128, 2), (2, 256, 128, 1)):
            for i in range(blocks):
                layers.append(Block(cin, expand, out, stride if i == 0 else 1))
                cin = out
        layers += [Unit(cin, 512, 1, 1), Unit(512, 512, 7, 1, dw=True, prelu=False, valid=True),
                   Unit(512, 512, 1, 1, prelu=False), Unit(512, dim, 1, 1, prelu=False)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return F.normalize(self.body(x).flatten(1), dim=1, eps=1e-10)


class ArcFace(nn.Module):
    """InsightFace's arcface_torch ArcFace on normalised features and centres."""

    def __init__(self, classes, dim, s=64.0, m=0.5):
        super().__init__()
        self.w = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.s, self.m = s, m
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th, self.mm = math.cos(math.pi - m), math.sin(math.pi - m) * m

    def forward(self, x, labels):
        cos = F.linear(x, F.normalize(self.w, dim=1)).clamp(-1, 1)
        idx = torch.arange(x.shape[0])
        t = cos[idx, labels]
        sin = torch.sqrt((1.0 - t * t).clamp_min(1e-12))
        phi = torch.where(t > self.th, t * self.cos_m - sin * self.sin_m, t - self.mm)
        logits = cos.scatter(1, labels[:, None], phi[:, None]) * self.s
        return F.cross_entropy(logits, labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10000)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net, head = MobileFaceNet(), ArcFace(a.classes, 192)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4)
    net.train()
    total, loss0, loss = 0.0, None, None
    for s in range(a.steps + 1):
        x = (torch.rand(a.batch, 3, 112, 112) * 2 - 1).contiguous(memory_format=fmt)
        labels = torch.randint(0, a.classes, (a.batch,))
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = head(net(x), labels)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if s == 0:
            loss0 = loss.item()
        else:
            total += dt
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"framework": "pytorch " + torch.__version__, "threads": a.threads,
                      "batch": a.batch, "classes": a.classes, "steps": a.steps,
                      "channels_last": a.channels_last,
                      "images_per_s": a.steps * a.batch / total, "ms_per_step": 1000 * total / a.steps,
                      "loss_first": loss0, "loss_last": loss.item(), "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
