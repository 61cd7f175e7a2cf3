#!/usr/bin/python3
"""An independent TFLite interpreter in PyTorch: the oracle of mien's TFLite loader.

    /usr/bin/python3 tools/tflite_oracle.py --model M.tflite --input IN.f32 --shape N,H,W,C \
        --out PREFIX

reads the input (float32, little-endian, NHWC), runs the model's main subgraph and writes
PREFIX.<k>.f32 per output (float32, in the model's own layout), then prints a JSON line with
the output names and shapes.

Nothing is shared with mien's C code: the flatbuffer is read here with `struct` (a reader of
the layout written for this file, following flatbuffers.dev's "Internals" and TFLite's
schema.fbs), and every op is computed with PyTorch in float64 (convolutions with
torch.nn.functional on NCHW, TensorFlow's SAME padding computed here). When the model
declares a larger batch than the input's (expo's MobileFaceNet.tflite takes 2 images, as its
Kotlin code feeds the same face twice), the input is repeated to that batch, as that code
does, and the outputs are the first N rows: the file's own Reshape targets are used as they
are, so the loader's batch handling is checked too.
"""
import argparse
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)


# ---- flatbuffer reading -------------------------------------------------------------------

class Table:
    def __init__(self, buf, pos):
        self.b = buf
        self.pos = pos
        vt = pos - struct.unpack_from('<i', buf, pos)[0]
        self.vt = vt
        self.vlen = struct.unpack_from('<H', buf, vt)[0]

    def _off(self, i):
        o = 4 + 2 * i
        return struct.unpack_from('<H', self.b, self.vt + o)[0] if o + 2 <= self.vlen else 0

    def scalar(self, i, fmt, default=0):
        o = self._off(i)
        return struct.unpack_from('<' + fmt, self.b, self.pos + o)[0] if o else default

    def _ref(self, i):
        o = self._off(i)
        if not o:
            return None
        p = self.pos + o
        return p + struct.unpack_from('<I', self.b, p)[0]

    def table(self, i):
        p = self._ref(i)
        return Table(self.b, p) if p is not None else None

    def vector(self, i, fmt):
        p = self._ref(i)
        if p is None:
            return []
        n = struct.unpack_from('<I', self.b, p)[0]
        return list(struct.unpack_from('<%d%s' % (n, fmt), self.b, p + 4))

    def vector_raw(self, i):
        p = self._ref(i)
        if p is None:
            return b''
        n = struct.unpack_from('<I', self.b, p)[0]
        return self.b[p + 4:p + 4 + n]

    def tables(self, i):
        p = self._ref(i)
        if p is None:
            return []
        n = struct.unpack_from('<I', self.b, p)[0]
        out = []
        for k in range(n):
            e = p + 4 + 4 * k
            out.append(Table(self.b, e + struct.unpack_from('<I', self.b, e)[0]))
        return out

    def string(self, i):
        return self.vector_raw(i).decode('utf-8', 'replace')


NP_TYPES = {0: '<f4', 1: '<f2', 2: '<i4', 3: 'u1', 4: '<i8', 6: 'u1', 7: '<i2', 9: 'i1',
            10: '<f8'}
FLOAT_TYPES = (0, 1, 10)


def read_model(path):
    buf = open(path, 'rb').read()
    assert buf[4:8] == b'TFL3', 'not a TFLite file'
    model = Table(buf, struct.unpack_from('<I', buf, 0)[0])
    codes = []
    for oc in model.tables(1):
        codes.append(max(oc.scalar(0, 'b'), oc.scalar(3, 'i')))
    sg = model.tables(2)[0]
    buffers = model.tables(4)
    tensors = []
    for t in sg.tables(0):
        info = {'shape': t.vector(0, 'i'), 'type': t.scalar(1, 'b'), 'name': t.string(3),
                'sig': t.vector(7, 'i'), 'data': None}
        bi = t.scalar(2, 'I')
        if bi:
            raw = buffers[bi].vector_raw(0)
            if raw:
                a = np.frombuffer(raw, dtype=NP_TYPES[info['type']]).reshape(info['shape'])
                q = t.table(4)
                scale = q.vector(2, 'f') if q else []
                if info['type'] not in FLOAT_TYPES and info['type'] != 6 and scale:
                    zp = q.vector(3, 'q') or [0]
                    axis = q.scalar(6, 'i')
                    shp = [1] * a.ndim
                    if len(scale) > 1:
                        shp[axis] = len(scale)
                    s = np.array(scale, np.float64).reshape(shp)
                    z = np.array(zp, np.float64).reshape(shp if len(zp) > 1 else [1] * a.ndim)
                    a = (a.astype(np.float64) - z) * s
                info['data'] = a
        tensors.append(info)
    ops = []
    for op in sg.tables(3):
        ops.append({'code': codes[op.scalar(0, 'I')], 'in': op.vector(1, 'i'),
                    'out': op.vector(2, 'i'), 'opt_type': op.scalar(3, 'B'), 'opt': op.table(4)})
    return tensors, sg.vector(1, 'i'), sg.vector(2, 'i'), ops


# ---- ops ------------------------------------------------------------------------------------

def T(a):
    if isinstance(a, torch.Tensor):
        return a
    a = np.asarray(a)
    if a.dtype.kind in 'fc':
        return torch.from_numpy(a.astype(np.float64))
    return torch.from_numpy(a.astype(np.int64))


def opt_int(op, i, fmt='i', default=0):
    return op['opt'].scalar(i, fmt, default) if op['opt'] is not None else default


def same_pads(size, k, stride, dil):
    """TensorFlow SAME: output ceil(size / stride), the odd pixel of padding after."""
    out = (size + stride - 1) // stride
    ek = (k - 1) * dil + 1
    total = max((out - 1) * stride + ek - size, 0)
    return total // 2, total - total // 2


def act(x, code):
    if code == 0:
        return x
    if code == 1:
        return torch.relu(x)
    if code == 2:
        return torch.clamp(x, -1, 1)
    if code == 3:
        return torch.clamp(x, 0, 6)
    if code == 4:
        return torch.tanh(x)
    raise ValueError('activation %d' % code)


def conv_like(x, w_oihw, bias, padding, sh, sw, dh, dw, groups):
    """x NHWC; returns NHWC."""
    xc = x.permute(0, 3, 1, 2)
    kh, kw = w_oihw.shape[2], w_oihw.shape[3]
    if padding == 0:  # SAME
        pt, pb = same_pads(xc.shape[2], kh, sh, dh)
        pl, pr = same_pads(xc.shape[3], kw, sw, dw)
        xc = F.pad(xc, (pl, pr, pt, pb))
    y = F.conv2d(xc, w_oihw, bias, stride=(sh, sw), dilation=(dh, dw), groups=groups)
    return y.permute(0, 2, 3, 1)


def pool(x, op, code):
    padding = opt_int(op, 0, 'b')
    sw, sh = opt_int(op, 1), opt_int(op, 2)
    fw, fh = opt_int(op, 3), opt_int(op, 4)
    xc = x.permute(0, 3, 1, 2)
    if padding == 0:
        pt, pb = same_pads(xc.shape[2], fh, sh, 1)
        pl, pr = same_pads(xc.shape[3], fw, sw, 1)
    else:
        pt = pb = pl = pr = 0
    if code == 17:
        y = F.max_pool2d(F.pad(xc, (pl, pr, pt, pb), value=-float('inf')), (fh, fw), (sh, sw))
    else:  # average over the pixels inside the image only
        s = F.avg_pool2d(F.pad(xc, (pl, pr, pt, pb)), (fh, fw), (sh, sw)) * (fh * fw)
        ones = F.pad(torch.ones_like(xc[:, :1]), (pl, pr, pt, pb))
        cnt = F.avg_pool2d(ones, (fh, fw), (sh, sw)) * (fh * fw)
        y = s / cnt
    return act(y.permute(0, 2, 3, 1), opt_int(op, 5, 'b'))


def strided_slice(x, begin, end, strides, op):
    bm, em = opt_int(op, 0), opt_int(op, 1)
    if opt_int(op, 2) or opt_int(op, 3):
        raise ValueError('ellipsis / new axis masks')
    shrink = opt_int(op, 4)
    offset = opt_int(op, 5, 'b')
    idx, squeeze = [], []
    for i in range(x.dim()):
        if i >= len(begin):
            idx.append(slice(None))
            continue
        dim, s = x.shape[i], int(strides[i])
        b = int(begin[i])
        if shrink >> i & 1:
            idx.append(slice(b % dim, b % dim + 1))
            squeeze.append(i)
            continue
        if bm >> i & 1:
            b = 0 if s > 0 else dim - 1
        elif b < 0:
            b += dim
        if em >> i & 1:
            e = dim if s > 0 else -1
        elif offset:
            e = b + int(end[i])
        else:
            e = int(end[i])
            if e < 0:
                e += dim
        if s > 0:
            b, e = min(max(b, 0), dim), min(max(e, 0), dim)
            idx.append(slice(b, e, s))
        else:
            b, e = min(max(b, -1), dim - 1), min(max(e, -1), dim - 1)
            sel = list(range(b, e, s))
            idx.append(sel)
    y = x
    for i, ix in enumerate(idx):  # one axis at a time (torch has no negative steps)
        if isinstance(ix, list):
            y = torch.index_select(y, i, torch.tensor(ix, dtype=torch.long))
        else:
            y = y[(slice(None),) * i + (ix,)]
    if squeeze:
        y = y.reshape([d for i, d in enumerate(y.shape) if i not in squeeze])
    return y


def resize(x, op, code, size):
    oh, ow = int(size[0]), int(size[1])
    if code == 23:
        ac, hp = bool(opt_int(op, 2, 'b')), bool(opt_int(op, 3, 'b'))
    else:
        ac, hp = bool(opt_int(op, 0, 'b')), bool(opt_int(op, 1, 'b'))
    n, h, w, c = x.shape

    def src(o, insz, outsz):
        scale = (insz - 1) / (outsz - 1) if ac and outsz > 1 else insz / outsz
        o = np.arange(outsz, dtype=np.float64)
        return (o + 0.5) * scale - 0.5 if hp else o * scale

    sy, sx = src(None, h, oh), src(None, w, ow)
    if code == 97:  # nearest: round with align_corners, floor otherwise (after the shift)
        fy, fx = (sy + 0.5, sx + 0.5) if hp else (sy, sx)
        iy = np.round(fy) if ac else np.floor(fy)
        ix = np.round(fx) if ac else np.floor(fx)
        iy = np.clip(iy, 0, h - 1).astype(np.int64)
        ix = np.clip(ix, 0, w - 1).astype(np.int64)
        return x[:, iy][:, :, ix]
    y0 = np.floor(sy)
    x0 = np.floor(sx)
    ly = torch.tensor(sy - y0).reshape(1, oh, 1, 1)
    lx = torch.tensor(sx - x0).reshape(1, 1, ow, 1)
    y0i = np.clip(y0, 0, h - 1).astype(np.int64)
    y1i = np.clip(y0 + 1, 0, h - 1).astype(np.int64)
    x0i = np.clip(x0, 0, w - 1).astype(np.int64)
    x1i = np.clip(x0 + 1, 0, w - 1).astype(np.int64)
    top = x[:, y0i][:, :, x0i] * (1 - lx) + x[:, y0i][:, :, x1i] * lx
    bot = x[:, y1i][:, :, x0i] * (1 - lx) + x[:, y1i][:, :, x1i] * lx
    return top * (1 - ly) + bot * ly


def run(tensors, inputs, outputs, ops, x):
    val = {}
    for k, t in enumerate(tensors):
        if t['data'] is not None:
            val[k] = T(t['data'])
    val[inputs[0]] = x
    for op in ops:
        c = op['code']
        I = [val[i] if i >= 0 else None for i in op['in']]
        o = op['out'][0]
        if c == 3:  # CONV_2D
            w = I[1].permute(0, 3, 1, 2)
            groups = I[0].shape[3] // w.shape[1]
            y = conv_like(I[0], w, I[2] if len(I) > 2 else None, opt_int(op, 0, 'b'),
                          opt_int(op, 2), opt_int(op, 1), opt_int(op, 5, 'i', 1),
                          opt_int(op, 4, 'i', 1), groups)
            y = act(y, opt_int(op, 3, 'b'))
        elif c == 4:  # DEPTHWISE_CONV_2D
            C = I[0].shape[3]
            w = I[1].permute(3, 0, 1, 2)  # (C*M, 1, KH, KW)
            y = conv_like(I[0], w, I[2] if len(I) > 2 else None, opt_int(op, 0, 'b'),
                          opt_int(op, 2), opt_int(op, 1), opt_int(op, 6, 'i', 1),
                          opt_int(op, 5, 'i', 1), C)
            y = act(y, opt_int(op, 4, 'b'))
        elif c == 9:  # FULLY_CONNECTED
            w = I[1]
            K = w.shape[1]
            keep = opt_int(op, 2, 'b')
            xi = I[0] if keep else I[0].reshape(-1, K)
            y = xi @ w.T
            if len(I) > 2 and I[2] is not None:
                y = y + I[2]
            y = act(y, opt_int(op, 0, 'b'))
        elif c in (17, 1):
            y = pool(I[0], op, c)
        elif c in (0, 41, 18, 42):  # ADD SUB MUL DIV
            a, b = I[0].double(), I[1].double()
            y = {0: a + b, 41: a - b, 18: a * b, 42: a / b}[c]
            y = act(y, opt_int(op, 0, 'b'))
        elif c == 55:
            y = torch.maximum(I[0].double(), I[1].double())
        elif c == 57:
            y = torch.minimum(I[0].double(), I[1].double())
        elif c in (58, 61, 62, 63):
            a, b = I[0].double(), I[1].double()
            y = {58: a < b, 61: a > b, 62: a >= b, 63: a <= b}[c]
        elif c == 101:
            y = torch.abs(I[0])
        elif c == 59:
            y = -I[0]
        elif c == 47:
            y = torch.exp(I[0])
        elif c == 75:
            y = torch.sqrt(I[0])
        elif c == 76:
            y = torch.rsqrt(I[0])
        elif c == 92:
            y = I[0] * I[0]
        elif c == 14:
            y = torch.sigmoid(I[0])
        elif c == 28:
            y = torch.tanh(I[0])
        elif c == 19:
            y = torch.relu(I[0])
        elif c == 21:
            y = torch.clamp(I[0], 0, 6)
        elif c == 20:
            y = torch.clamp(I[0], -1, 1)
        elif c == 98:
            alpha = op['opt'].scalar(0, 'f', 0.0) if op['opt'] else 0.0
            y = torch.where(I[0] > 0, I[0], I[0] * alpha)
        elif c == 54:
            y = torch.where(I[0] > 0, I[0], I[0] * I[1])
        elif c == 22:  # RESHAPE
            if len(I) > 1 and I[1] is not None and I[1].numel() > 0:
                shape = [int(v) for v in I[1].reshape(-1)]
            elif op['opt'] is not None and op['opt']._off(0):
                shape = op['opt'].vector(0, 'i')
            else:
                shape = tensors[o]['shape']
            y = I[0].reshape(shape)
        elif c == 43:  # SQUEEZE
            dims = op['opt'].vector(0, 'i') if op['opt'] else []
            if dims:
                dims = [d % I[0].dim() for d in dims]
                y = I[0].reshape([s for i, s in enumerate(I[0].shape) if i not in dims])
            else:
                y = I[0].reshape([s for s in I[0].shape if s != 1])
        elif c == 70:  # EXPAND_DIMS
            y = I[0].unsqueeze(int(I[1].reshape(-1)[0]) % (I[0].dim() + 1))
        elif c == 39:
            y = I[0].permute([int(v) for v in I[1]])
        elif c == 2:  # CONCATENATION
            y = act(torch.cat([v.double() for v in I], dim=opt_int(op, 0)), opt_int(op, 1, 'b'))
        elif c in (34, 60):  # PAD, PADV2
            p = I[1].reshape(-1, 2).tolist()
            flat = []
            for before, after in reversed(p):
                flat += [int(before), int(after)]
            value = float(I[2].reshape(-1)[0]) if c == 60 and len(I) > 2 else 0.0
            y = F.pad(I[0], flat, value=value)
        elif c == 45:
            y = strided_slice(I[0], I[1].tolist(), I[2].tolist(), I[3].tolist(), op)
        elif c == 65:  # SLICE
            idx = tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s))
                        for b, s in zip(I[1].tolist(), I[2].tolist()))
            y = I[0][idx]
        elif c == 25:  # SOFTMAX
            beta = op['opt'].scalar(0, 'f', 0.0) if op['opt'] else 0.0
            y = torch.softmax(I[0] * beta, dim=-1)
        elif c in (40, 74, 82):
            axes = sorted({int(a) % I[0].dim() for a in I[1].reshape(-1).tolist()})
            keep = bool(opt_int(op, 0, 'b'))
            if c == 40:
                y = I[0].mean(dim=axes, keepdim=keep)
            elif c == 74:
                y = I[0].sum(dim=axes, keepdim=keep)
            else:
                y = I[0]
                for a in reversed(axes):
                    y = y.max(dim=a, keepdim=keep).values
        elif c in (23, 97):
            y = resize(I[0], op, c, I[1].tolist())
        elif c == 11:  # L2_NORMALIZATION: x / max(|x|, 1e-6) over the last axis
            nrm = torch.sqrt((I[0] * I[0]).sum(dim=-1, keepdim=True))
            y = I[0] / torch.clamp(nrm, min=1e-6)
        elif c == 6:  # DEQUANTIZE (float16 / quantized constants: decoded when read)
            y = I[0].double()
        elif c == 53:  # CAST
            to = tensors[o]['type']
            y = I[0].double() if to in FLOAT_TYPES else (I[0] != 0 if to == 6 else I[0].long())
        else:
            raise ValueError('op %d not in the oracle' % c)
        val[o] = y
    return [val[k] for k in outputs]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--input', required=True)
    ap.add_argument('--shape', required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    shape = [int(v) for v in a.shape.split(',')]
    x = np.fromfile(a.input, dtype='<f4').astype(np.float64).reshape(shape)
    tensors, inputs, outputs, ops = read_model(a.model)
    file_batch = tensors[inputs[0]]['shape'][0]
    n = shape[0]
    if file_batch > n:
        x = np.concatenate([x] * (file_batch // n), axis=0)
    with torch.no_grad():
        ys = run(tensors, inputs, outputs, ops, torch.from_numpy(x))
    info = []
    for k, y in enumerate(ys):
        y = y.double().numpy()
        if file_batch > n:
            y = y[:n]
        y.astype('<f4').tofile('%s.%d.f32' % (a.out, k))
        info.append({'name': tensors[outputs[k]]['name'], 'shape': list(y.shape)})
    json.dump({'outputs': info}, sys.stdout)
    print()


if __name__ == '__main__':
    main()
