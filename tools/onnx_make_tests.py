#!/usr/bin/python3
"""Test networks for mien's ONNX loader, built in PyTorch with fixed random weights,
exported to ONNX, with PyTorch's own outputs recorded as the oracle.

    /usr/bin/python3 tools/onnx_make_tests.py OUTDIR

writes, for each model NAME:
    NAME.onnx           the exported model
    NAME.in.f32         the input, float32 NCHW, little-endian
    NAME.out<k>.f32     PyTorch's output k, float32 in ONNX's layout
    NAME.txt            "input N C H W" then one "output NAME RANK D0 D1 ..." per output
and a few hostile files for the loader's error paths.

Networks (small, but with every op type of the real models they stand for):
  iresnet       InsightFace ArcFace backbone (IResNet): BN-conv-BN-PReLU-conv-BN blocks with
                downsampling shortcuts, BN2d, flatten, FC to 512, BN1d. 112x112. opset 11.
  mobilefacenet depthwise-separable bottlenecks, PReLU, GDC (7x7 depthwise), linear 1x1,
                x.view(x.size(0), -1), FC, BN1d. 112x112. opset 13.
  scrfd         SCRFD-style detector: strided backbone, FPN (nearest and bilinear upsampling,
                Add, Concat), heads for scores (sigmoid), boxes and 5 keypoints at strides
                8/16/32, 2 anchors per location, outputs (1, N, k) in InsightFace's order.
                Exported with symbolic batch/height/width (as det_10g.onnx), so the loader must
                take the input size from the caller and fold the Shape arithmetic. opset 11.
  ops11, ops13  the remaining ops and attributes (pools with ceil_mode/padding, Softmax,
                Slice, Gather, Clip, LeakyRelu, MatMul, Transpose, Concat, Squeeze/Unsqueeze,
                Resize modes, ...), once per opset because several change meaning at 13.
  handmade      built node by node with onnx.helper for what PyTorch does not emit: Conv +
                BatchNormalization unfused, auto_pad SAME_UPPER/SAME_LOWER, Gemm with
                transA/transB/alpha/beta, Upsample (opset 9), Resize with half_pixel nearest.
                Its oracle is the same computation written with torch.nn.functional.
  scrfd_synth   an SCRFD-layout network (outputs (N, k) like det_10g.onnx) whose heads are
                average pools of the input, so a test can paint boxes into an image and check
                that the decoder gets them back.

Everything is seeded: the files are the same on every run. Runs in a few seconds.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

torch.set_num_threads(1)


def randomise_bn(m, g):
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
        if isinstance(mod, nn.PReLU):
            mod.weight.data.copy_(torch.rand(mod.weight.shape, generator=g) * 0.4)


# ---- IResNet (InsightFace recognition/arcface_torch/backbones/iresnet.py, scaled down) ----

class IBasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.bn1(x)
        out = self.conv1(out)
        out = self.bn2(out)
        out = self.prelu(out)
        out = self.conv2(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    def __init__(self, layers=(1, 2, 1, 1), widths=(16, 24, 32, 48), emb=512):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-05)
        self.prelu = nn.PReLU(widths[0])
        stages = []
        for n, w in zip(layers, widths):
            stages.append(self._make_layer(w, n, 2))
        self.stages = nn.Sequential(*stages)
        self.bn2 = nn.BatchNorm2d(widths[-1], eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(widths[-1] * 7 * 7, emb)
        self.features = nn.BatchNorm1d(emb, eps=1e-05)

    def _make_layer(self, planes, blocks, stride):
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                             nn.BatchNorm2d(planes, eps=1e-05))
        layers = [IBasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(IBasicBlock(planes, planes))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.stages(x)
        x = self.bn2(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        return self.features(x)


# ---- MobileFaceNet ----

class ConvBlock(nn.Module):
    def __init__(self, cin, cout, k=1, s=1, p=0, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.PReLU(cout) if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class DepthWise(nn.Module):
    def __init__(self, cin, cout, stride, expand, residual):
        super().__init__()
        self.residual = residual
        self.expand = ConvBlock(cin, expand)
        self.dw = ConvBlock(expand, expand, 3, stride, 1, groups=expand)
        self.project = ConvBlock(expand, cout, act=False)

    def forward(self, x):
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class MobileFaceNet(nn.Module):
    def __init__(self, emb=128):
        super().__init__()
        self.conv1 = ConvBlock(3, 16, 3, 2, 1)
        self.conv2_dw = ConvBlock(16, 16, 3, 1, 1, groups=16)
        self.b1 = DepthWise(16, 24, 2, 32, False)
        self.b2 = DepthWise(24, 24, 1, 48, True)
        self.b3 = DepthWise(24, 32, 2, 64, False)
        self.b4 = DepthWise(32, 32, 2, 64, False)
        self.conv_sep = ConvBlock(32, 64)
        self.gdc = ConvBlock(64, 64, 7, 1, 0, groups=64, act=False)  # global depthwise 7x7
        self.linear = ConvBlock(64, 64, act=False)                    # linear 1x1
        self.fc = nn.Linear(64, emb, bias=False)
        self.bn = nn.BatchNorm1d(emb)

    def forward(self, x):
        x = self.conv2_dw(self.conv1(x))
        x = self.b4(self.b3(self.b2(self.b1(x))))
        x = self.linear(self.gdc(self.conv_sep(x)))
        x = x.view(x.size(0), -1)
        return self.bn(self.fc(x))


# ---- SCRFD-style detector ----

class SCRFDLike(nn.Module):
    """Backbone to strides 8/16/32, FPN, shared-structure heads with 2 anchors per location.
    Outputs, in InsightFace's order: scores 8/16/32, boxes 8/16/32, keypoints 8/16/32, each
    (1, H*W*2, k) with k = 1, 4, 10 (anchors fastest, then x, then y)."""

    def __init__(self, ch=16, na=2):
        super().__init__()
        self.na = na
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2d(8, ch, 3, 2, 1), nn.BatchNorm2d(ch), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))                       # stride 8
        self.c3 = nn.Sequential(nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU())
        self.c4 = nn.Sequential(nn.Conv2d(ch, 24, 3, 2, 1), nn.ReLU())         # stride 16
        self.c5 = nn.Sequential(nn.Conv2d(24, 32, 3, 2, 1), nn.ReLU())         # stride 32
        self.lat3 = nn.Conv2d(ch, 16, 1)
        self.lat4 = nn.Conv2d(24, 16, 1)
        self.lat5 = nn.Conv2d(32, 16, 1)
        self.head = nn.ModuleList()
        for _ in range(3):
            self.head.append(nn.ModuleDict({
                'conv': nn.Sequential(nn.Conv2d(32, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU()),
                'cls': nn.Conv2d(16, na * 1, 3, 1, 1),
                'reg': nn.Conv2d(16, na * 4, 3, 1, 1),
                'kps': nn.Conv2d(16, na * 10, 3, 1, 1),
            }))

    def forward(self, x):
        n = x.shape[0]
        c3 = self.c3(self.stem(x))
        c4 = self.c4(c3)
        c5 = self.c5(c4)
        p5 = self.lat5(c5)
        p4 = self.lat4(c4) + F.interpolate(p5, scale_factor=2.0, mode='bilinear', align_corners=False)
        p3 = self.lat3(c3) + F.interpolate(p4, size=c3.shape[2:], mode='nearest')
        feats = [p3, p4, p5]
        scores, boxes, kps = [], [], []
        for f, h in zip(feats, self.head):
            # Concat of the level with a smoothed copy of itself (SCRFD's PAFPN-like mixing).
            f = torch.cat([f, F.avg_pool2d(f, 3, 1, 1)], dim=1)
            t = h['conv'](f)
            scores.append(torch.sigmoid(h['cls'](t)).permute(0, 2, 3, 1).reshape(n, -1, 1))
            boxes.append(h['reg'](t).permute(0, 2, 3, 1).reshape(n, -1, 4))
            kps.append(h['kps'](t).permute(0, 2, 3, 1).reshape(n, -1, 10))
        return tuple(scores + boxes + kps)


# ---- The rest of the ops ----

class Ops(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.dil = nn.Conv2d(8, 8, 3, 1, 2, dilation=2, groups=2)
        self.lin = nn.Linear(8, 6)
        self.prelu1 = nn.PReLU(1)

    def forward(self, x):
        y = self.conv(x)                                               # (1, 8, 20, 22)
        y = F.leaky_relu(self.dil(y), 0.1)
        o1 = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        o2 = F.avg_pool2d(y, 3, 2, 1)                                  # count_include_pad
        o3 = F.avg_pool2d(y, 2, 2, 0, ceil_mode=False, count_include_pad=False)
        o4 = torch.softmax(y, dim=1)                                   # over channels
        o5 = y[:, 1:7:2, 2:, ::3]                                      # Slice with steps
        o6 = torch.clamp(y[:, 0], -0.2, 0.3)                           # Gather + Clip
        z = y.permute(0, 2, 3, 1)                                      # (1, 20, 22, 8)
        o7 = self.lin(z)                                               # MatMul on rank 4
        o8 = torch.cat([y, torch.sigmoid(y) * 2 - 1, y / 3.0], dim=2)  # Concat on H
        o9 = torch.tanh(y.mean(dim=(2, 3), keepdim=False)).unsqueeze(-1)
        o10 = F.interpolate(y, scale_factor=2.0, mode='bilinear', align_corners=True)
        o11 = F.interpolate(y, size=(13, 30), mode='bilinear', align_corners=False)
        o12 = F.interpolate(y, scale_factor=3.0, mode='nearest')
        o13 = self.prelu1(y - 0.1).flatten(2).transpose(1, 2)          # (1, 440, 8)
        o14 = torch.softmax(o13, dim=-1)
        o15 = torch.max(y, torch.zeros_like(y) + 0.05) - torch.min(y, y * 0.5)
        o16 = F.pad(y, (1, 2, 0, 3), value=0.5)
        return o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14, o15, o16


# ---- Export and record ----

def export(model, x, path, opset, out_names, dynamic=False):
    kw = {}
    if dynamic:
        kw['dynamic_axes'] = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        for n in out_names:
            kw['dynamic_axes'][n] = {0: 'batch', 1: 'anchors'}
    torch.onnx.export(model, x, path, opset_version=opset, input_names=['input'],
                      output_names=out_names, do_constant_folding=True, **kw)


def record(outdir, name, x, outs, out_names):
    x.detach().numpy().astype('<f4').tofile(os.path.join(outdir, name + '.in.f32'))
    lines = ['input ' + ' '.join(str(d) for d in x.shape)]
    for k, (o, n) in enumerate(zip(outs, out_names)):
        o = o.detach().numpy().astype('<f4')
        o.tofile(os.path.join(outdir, '%s.out%d.f32' % (name, k)))
        lines.append('output %s %d %s' % (n, o.ndim, ' '.join(str(d) for d in o.shape)))
    with open(os.path.join(outdir, name + '.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def make_torch(outdir, name, model, x, opset, out_names, dynamic=False):
    model.eval()
    with torch.no_grad():
        outs = model(x)
        if isinstance(outs, torch.Tensor):
            outs = (outs,)
        export(model, x, os.path.join(outdir, name + '.onnx'), opset, out_names, dynamic)
    record(outdir, name, x, outs, out_names)


def make_handmade(outdir, g):
    """Conv+BN unfused, auto_pad, Gemm attributes, Upsample-9, Resize half_pixel nearest."""
    r = lambda *s: torch.randn(*s, generator=g)
    x = r(1, 4, 9, 11)
    w1, b1 = r(6, 4, 3, 3) * 0.3, r(6) * 0.1
    bn = [torch.rand(6, generator=g) + 0.5, r(6) * 0.1, r(6) * 0.2, torch.rand(6, generator=g) + 0.5]
    w2 = r(6, 1, 3, 3) * 0.3                         # depthwise, SAME_UPPER, stride 2
    w3 = r(5, 6, 2, 2) * 0.3                         # SAME_LOWER, even kernel
    gA = r(5 * 5 * 6, 7) * 0.05                      # Gemm transA: A' is (1, 150)? see below
    gB = r(9, 150) * 0.05                            # transB: (N=9, K=150)
    gC = r(9) * 0.1
    inits = [numpy_helper.from_array(v.numpy(), n) for v, n in [
        (w1, 'w1'), (b1, 'b1'), (bn[0], 'bn_s'), (bn[1], 'bn_b'), (bn[2], 'bn_m'), (bn[3], 'bn_v'),
        (w2, 'w2'), (w3, 'w3'), (gB, 'gB'), (gC, 'gC')]]
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), 'up_scales'))
    inits.append(numpy_helper.from_array(np.array([], np.float32), 'empty'))
    inits.append(numpy_helper.from_array(np.array([1, 6, 10, 18], np.int64), 'rs_sizes'))
    inits.append(numpy_helper.from_array(np.array([-1, 150], np.int64), 'flat'))
    del gA
    H = helper
    nodes = [
        H.make_node('Conv', ['input', 'w1', 'b1'], ['c1'], pads=[1, 1, 1, 1]),
        H.make_node('BatchNormalization', ['c1', 'bn_s', 'bn_b', 'bn_m', 'bn_v'], ['bn1'], epsilon=1e-3),
        H.make_node('Relu', ['bn1'], ['r1']),
        H.make_node('Conv', ['r1', 'w2'], ['c2'], group=6, strides=[2, 2], auto_pad='SAME_UPPER'),
        H.make_node('Conv', ['c2', 'w3'], ['c3'], auto_pad='SAME_LOWER'),     # (1,5,5,6)
        H.make_node('Upsample', ['c2', 'up_scales'], ['up'], mode='nearest'),   # (1,6,10,12)
        H.make_node('Resize', ['c2', 'empty', 'empty', 'rs_sizes'], ['rs'], mode='nearest',
                    coordinate_transformation_mode='half_pixel', nearest_mode='round_prefer_floor'),
        H.make_node('Reshape', ['c3', 'flat'], ['f3']),                         # (1, 150)
        H.make_node('Transpose', ['f3'], ['f3t'], perm=[1, 0]),                 # (150, 1)
        H.make_node('Gemm', ['f3t', 'gB', 'gC'], ['gemm'], transA=1, transB=1, alpha=0.5, beta=2.0),
    ]
    outs = ['bn1', 'c3', 'up', 'rs', 'gemm']
    graph = H.make_graph(nodes, 'handmade', [H.make_tensor_value_info('input', TensorProto.FLOAT, [1, 4, 9, 11])],
                         [H.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    model = H.make_model(graph, opset_imports=[H.make_opsetid('', 11)])
    model.ir_version = 6
    # (Upsample is deprecated since opset 10; the loader still accepts it, as older
    # exports use it.)
    onnx.save(model, os.path.join(outdir, 'handmade.onnx'))

    # The same computation in torch.
    c1 = F.conv2d(x, w1, b1, padding=1)
    s = bn[0] / torch.sqrt(bn[3] + 1e-3)
    bn1 = c1 * s.view(1, -1, 1, 1) + (bn[1] - bn[2] * s).view(1, -1, 1, 1)
    r1 = F.relu(bn1)
    # SAME_UPPER, k3 s2 on 9x11: out 5x6, total pad 2 (H) and 2 (W): 1 before, 1 after.
    c2 = F.conv2d(F.pad(r1, (1, 1, 1, 1)), w2, stride=2, groups=6)
    # SAME_LOWER, k2 s1 on 5x6: total pad 1, the odd pixel before.
    c3 = F.conv2d(F.pad(c2, (1, 0, 1, 0)), w3)
    up = c2.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    # half_pixel + round_prefer_floor, sizes 10x18 from 5x6: ONNX's rule written out.
    def idx(n_in, n_out):
        sc = n_out / n_in
        o = np.arange(n_out)
        xo = (o + 0.5) / sc - 0.5
        i = np.ceil(xo - 0.5).astype(np.int64)
        return torch.from_numpy(np.clip(i, 0, n_in - 1))
    rs = c2[:, :, idx(5, 10)][:, :, :, idx(6, 18)]
    f3t = c3.reshape(1, 150).t()
    gemm = 0.5 * (f3t.t() @ gB.t()) + 2.0 * gC
    record(outdir, 'handmade', x, [bn1, c3, up, rs, gemm], outs)


def make_scrfd_synth(outdir):
    """SCRFD layout (det_10g.onnx: 9 outputs of shape (N, k), scores already sigmoid) whose
    values come straight from the input so a test can write known detections into an image.
    Input (x - 127.5) / 128 on a 640x640 RGB letterbox. At stride s, location (y, x):
      score    = sigmoid(40 * (avgpool_s(R) - 0.5))                 (red channel)
      distance = avgpool_s(G) * 8 + 8  for left/top/right/bottom     (green channel; in strides)
      keypoint k offset = ((k%2 ? y : x) channel of avgpool_s(B)) * 4 (blue channel)
    and both anchors of a location get the same values. With a uniform patch the test
    controls every output of the locations inside it."""
    class Synth(nn.Module):
        def forward(self, x):
            outs = {}
            for s in (8, 16, 32):
                p = F.avg_pool2d(x, s, s)                          # (1, 3, H/s, W/s)
                score = torch.sigmoid(40 * (p[:, 0:1] - 0.5))
                dist = p[:, 1:2] * 8 + 8
                kp = p[:, 2:3] * 4
                sc = torch.cat([score, score], 1)
                bx = torch.cat([dist] * 8, 1)
                kk = torch.cat([kp] * 20, 1)
                outs[s] = [t.permute(0, 2, 3, 1).reshape(-1, k) for t, k in ((sc, 1), (bx, 4), (kk, 10))]
            return tuple(outs[s][0] for s in (8, 16, 32)) + tuple(outs[s][1] for s in (8, 16, 32)) + \
                tuple(outs[s][2] for s in (8, 16, 32))
    names = ['score_8', 'score_16', 'score_32', 'bbox_8', 'bbox_16', 'bbox_32', 'kps_8', 'kps_16', 'kps_32']
    x = torch.zeros(1, 3, 640, 640)
    m = Synth().eval()
    with torch.no_grad():
        torch.onnx.export(m, x, os.path.join(outdir, 'scrfd_synth.onnx'), opset_version=11,
                          input_names=['input.1'], output_names=names,
                          dynamic_axes={'input.1': {2: 'h', 3: 'w'}})


def make_hostile(outdir, scrfd_path):
    data = open(scrfd_path, 'rb').read()
    open(os.path.join(outdir, 'bad_truncated.onnx'), 'wb').write(data[:len(data) // 2])
    rng = np.random.RandomState(1234)
    open(os.path.join(outdir, 'bad_random.onnx'), 'wb').write(rng.bytes(4096))
    H = helper
    # An initializer claiming 2^40 elements (dims) with 16 bytes of data.
    big = TensorProto()
    big.name = 'w'
    big.data_type = TensorProto.FLOAT
    big.dims.extend([1 << 20, 1 << 20])
    big.raw_data = b'\0' * 16
    g = H.make_graph([H.make_node('Add', ['input', 'w'], ['y'])], 'big',
                     [H.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 4, 4])],
                     [H.make_tensor_value_info('y', TensorProto.FLOAT, None)], [big])
    m = H.make_model(g, opset_imports=[H.make_opsetid('', 13)])
    open(os.path.join(outdir, 'bad_huge.onnx'), 'wb').write(m.SerializeToString())
    # Raw data shorter than the shape says.
    short = numpy_helper.from_array(np.ones((3, 4), np.float32), 'w')
    short.raw_data = short.raw_data[:20]
    g = H.make_graph([H.make_node('Add', ['input', 'w'], ['y'])], 'short',
                     [H.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 4, 4])],
                     [H.make_tensor_value_info('y', TensorProto.FLOAT, None)], [short])
    open(os.path.join(outdir, 'bad_short.onnx'), 'wb').write(
        H.make_model(g, opset_imports=[H.make_opsetid('', 13)]).SerializeToString())
    # External data.
    ext = TensorProto()
    ext.name = 'w'
    ext.data_type = TensorProto.FLOAT
    ext.dims.extend([4])
    ext.data_location = TensorProto.EXTERNAL
    e = ext.external_data.add()
    e.key, e.value = 'location', 'weights.bin'
    g = H.make_graph([H.make_node('Add', ['input', 'w'], ['y'])], 'ext',
                     [H.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 4, 4])],
                     [H.make_tensor_value_info('y', TensorProto.FLOAT, None)], [ext])
    open(os.path.join(outdir, 'bad_external.onnx'), 'wb').write(
        H.make_model(g, opset_imports=[H.make_opsetid('', 13)]).SerializeToString())
    # Nearest resize whose rounding the engine's kernel cannot reproduce (ties at 18/5).
    g = H.make_graph([H.make_node('Resize', ['input', 'e', 'e', 'sz'], ['y'], mode='nearest',
                                  coordinate_transformation_mode='half_pixel')], 'rs',
                     [H.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 5, 6])],
                     [H.make_tensor_value_info('y', TensorProto.FLOAT, None)],
                     [numpy_helper.from_array(np.array([], np.float32), 'e'),
                      numpy_helper.from_array(np.array([1, 3, 18, 33], np.int64), 'sz')])
    open(os.path.join(outdir, 'bad_resize.onnx'), 'wb').write(
        H.make_model(g, opset_imports=[H.make_opsetid('', 13)]).SerializeToString())
    # An op the loader does not know.
    g = H.make_graph([H.make_node('Einsum', ['input', 'input'], ['y'], equation='ij,jk->ik')], 'op',
                     [H.make_tensor_value_info('input', TensorProto.FLOAT, [1, 3, 4, 4])],
                     [H.make_tensor_value_info('y', TensorProto.FLOAT, None)])
    open(os.path.join(outdir, 'bad_op.onnx'), 'wb').write(
        H.make_model(g, opset_imports=[H.make_opsetid('', 13)]).SerializeToString())


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: onnx_make_tests.py OUTDIR')
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)

    m = IResNet()
    randomise_bn(m, g)
    make_torch(outdir, 'iresnet', m, torch.randn(1, 3, 112, 112, generator=g), 11, ['embedding'])

    m = MobileFaceNet()
    randomise_bn(m, g)
    make_torch(outdir, 'mobilefacenet', m, torch.randn(1, 3, 112, 112, generator=g), 13, ['embedding'])

    m = SCRFDLike()
    randomise_bn(m, g)
    names = ['score_8', 'score_16', 'score_32', 'bbox_8', 'bbox_16', 'bbox_32', 'kps_8', 'kps_16', 'kps_32']
    make_torch(outdir, 'scrfd', m, torch.randn(1, 3, 160, 224, generator=g), 11, names, dynamic=True)

    ops_names = ['o%d' % i for i in range(1, 17)]
    for opset in (11, 13):
        m = Ops()
        randomise_bn(m, g)
        make_torch(outdir, 'ops%d' % opset, m, torch.randn(1, 3, 20, 22, generator=g), opset, ops_names)

    make_handmade(outdir, g)
    make_scrfd_synth(outdir)
    make_hostile(outdir, os.path.join(outdir, 'scrfd.onnx'))


if __name__ == '__main__':
    main()
