#!/usr/bin/python3
"""Synthetic TFLite models for mien's TFLite loader: every op and option the loader supports,
written with Debian's python3-flatbuffers (the generic Builder, following TFLite's schema.fbs),
with outputs from the independent interpreter tools/tflite_oracle.py as the oracle.

    /usr/bin/python3 tools/tflite_make_tests.py OUTDIR

writes, for each model NAME:
    NAME.tflite        the model
    NAME.in.f32        its input (float32, NHWC, little-endian)
    NAME.out<k>.f32    the oracle's output k
    NAME.txt           "input N H W C", then "output NAME RANK D0 D1 ..." per output
and hostile files bad_*.tflite, listed in bad.txt as "FILE<TAB>text the error must contain".
Everything is seeded: the files are the same on every run. Runs in a few seconds.
"""
import os
import sys

import flatbuffers
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_oracle  # noqa: E402

F32, F16, I32, U8, I64, BOOL, I16, I8 = 0, 1, 2, 3, 4, 6, 7, 9
NP = {F32: '<f4', F16: '<f2', I32: '<i4', U8: 'u1', I64: '<i8', BOOL: 'u1', I16: '<i2', I8: 'i1'}

# BuiltinOperator codes and BuiltinOptions union types (schema.fbs).
OP = dict(ADD=0, AVERAGE_POOL_2D=1, CONCATENATION=2, CONV_2D=3, DEPTHWISE_CONV_2D=4,
          DEQUANTIZE=6, FULLY_CONNECTED=9, L2_NORMALIZATION=11, LOGISTIC=14, LSTM=16,
          MAX_POOL_2D=17, MUL=18, RELU=19, RELU_N1_TO_1=20, RELU6=21, RESHAPE=22,
          RESIZE_BILINEAR=23, SOFTMAX=25, TANH=28, CUSTOM=32, PAD=34, TRANSPOSE=39, MEAN=40,
          SUB=41, DIV=42, SQUEEZE=43, STRIDED_SLICE=45, EXP=47, CAST=53, PRELU=54, MAXIMUM=55,
          MINIMUM=57, LESS=58, NEG=59, PADV2=60, GREATER=61, GREATER_EQUAL=62, LESS_EQUAL=63,
          SLICE=65, EXPAND_DIMS=70, SUM=74, SQRT=75, RSQRT=76, REDUCE_MAX=82, SQUARE=92,
          RESIZE_NEAREST_NEIGHBOR=97, LEAKY_RELU=98, ABS=101, GELU=150)
BO = dict(Conv2D=1, Depthwise=2, Pool2D=5, FullyConnected=8, Softmax=9, Concatenation=10,
          Add=11, ResizeBilinear=15, Reshape=17, Mul=21, Reducer=27, Sub=28, Div=29, Squeeze=30,
          StridedSlice=32, ResizeNearest=74, LeakyRelu=75)
SAME, VALID = 0, 1
NONE, RELU, RELU_N1_TO_1, RELU6, TANH = 0, 1, 2, 3, 4


class Model:
    """A TFLite model being described: tensors, buffers, operators."""

    def __init__(self, version=3):
        self.tensors, self.buffers, self.ops, self.codes = [], [b''], [], []
        self.version = version

    def tensor(self, shape, ttype=F32, name=None, data=None, quant=None, buffer=None, sig=None):
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data, dtype=NP[ttype]).tobytes())
            buffer = len(self.buffers) - 1
        self.tensors.append(dict(shape=list(shape), type=ttype, name=name or 't%d' % len(self.tensors),
                                 buffer=buffer or 0, quant=quant, sig=sig))
        return len(self.tensors) - 1

    def const(self, arr, ttype=F32, **kw):
        arr = np.asarray(arr)
        return self.tensor(arr.shape, ttype, data=arr, **kw)

    def op(self, code, ins, outs, opt_type=0, opt=None):
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append(dict(code=self.codes.index(code), ins=ins, outs=outs, opt_type=opt_type, opt=opt))
        return outs[0]

    def external(self, offset, size):
        """A buffer whose data lies outside the flatbuffer (offset, size from the file's start)."""
        self.buffers.append((offset, size))
        return len(self.buffers) - 1

    def build(self, inputs, outputs):
        b = flatbuffers.Builder(1 << 16)

        def ivec(vals, fmt='i'):
            if fmt == 'i':
                return b.CreateNumpyVector(np.asarray(vals, dtype='<i4'))
            if fmt == 'q':
                return b.CreateNumpyVector(np.asarray(vals, dtype='<i8'))
            return b.CreateNumpyVector(np.asarray(vals, dtype='<f4'))

        def table(fields):
            """fields: (slot, kind, value), children already built."""
            b.StartObject(max([f[0] for f in fields] + [-1]) + 1)
            for slot, kind, v in fields:
                if kind == 'b':
                    b.PrependInt8Slot(slot, v, 0 if v else 1)  # always written
                elif kind == 'B':
                    b.PrependUint8Slot(slot, v, 0 if v else 1)
                elif kind == 'i':
                    b.PrependInt32Slot(slot, v, 0 if v else 1)
                elif kind == 'I':
                    b.PrependUint32Slot(slot, v, 0 if v else 1)
                elif kind == 'f':
                    b.PrependFloat32Slot(slot, v, 0.0 if v else 1.0)
                elif kind == 'o':
                    b.PrependUOffsetTRelativeSlot(slot, v, 0)
            return b.EndObject()

        def tvec(offs):
            b.StartVector(4, len(offs), 4)
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        bufs = []
        for data in self.buffers:
            if isinstance(data, tuple):
                b.StartObject(3)
                b.PrependUint64Slot(1, data[0], 0)
                b.PrependUint64Slot(2, data[1], 1)
                bufs.append(b.EndObject())
            elif data:
                bufs.append(table([(0, 'o', b.CreateByteVector(data))]))
            else:
                bufs.append(table([]))
        tens = []
        for t in self.tensors:
            name = b.CreateString(t['name'])
            shape = ivec(t['shape'])
            fields = [(0, 'o', shape), (1, 'b', t['type']), (2, 'I', t['buffer']), (3, 'o', name)]
            if t['quant']:
                q = t['quant']
                sc = ivec(q['scale'], 'f')
                zp = ivec(q.get('zero_point', [0] * len(q['scale'])), 'q')
                fields.append((4, 'o', table([(2, 'o', sc), (3, 'o', zp), (6, 'i', q.get('axis', 0))])))
            if t['sig'] is not None:
                fields.append((7, 'o', ivec(t['sig'])))
            tens.append(table(fields))
        ops = []
        for o in self.ops:
            ins, outs = ivec(o['ins']), ivec(o['outs'])
            fields = [(0, 'I', o['code']), (1, 'o', ins), (2, 'o', outs)]
            if o['opt'] is not None:
                opt = o['opt'](b, table, ivec)
                fields += [(3, 'B', o['opt_type']), (4, 'o', opt)]
            ops.append(table(fields))
        sg = table([(0, 'o', tvec(tens)), (1, 'o', ivec(inputs)), (2, 'o', ivec(outputs)),
                    (3, 'o', tvec(ops)), (4, 'o', b.CreateString('main'))])
        codes = []
        for c in self.codes:
            codes.append(table([(0, 'b', min(c, 127)), (2, 'i', 1), (3, 'i', c)]))
        root = table([(0, 'I', self.version), (1, 'o', tvec(codes)), (2, 'o', tvec([sg])),
                      (3, 'o', b.CreateString('mien test')), (4, 'o', tvec(bufs))])
        b.Finish(root, file_identifier=b'TFL3')
        return bytes(b.Output())


def opts(*fields):
    """An options table of (slot, kind, value) scalars and (slot, 'vi', list) int vectors."""
    def make(b, table, ivec):
        built = []
        for slot, kind, v in fields:
            if kind == 'vi':
                built.append((slot, 'o', ivec(v)))
            else:
                built.append((slot, kind, v))
        return table(built)
    return make


rng = np.random.default_rng(1234)


def rnd(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# ---- the models ---------------------------------------------------------------------------

def m_conv():
    m = Model()
    x = m.tensor([1, 9, 11, 4], name='input')
    w1, b1 = m.const(rnd(6, 3, 3, 4, scale=0.3)), m.const(rnd(6))
    y1 = m.op(OP['CONV_2D'], [x, w1, b1], [m.tensor([1, 5, 6, 6])], BO['Conv2D'],
              opts((0, 'b', SAME), (1, 'i', 2), (2, 'i', 2), (3, 'b', RELU6)))
    w2 = m.const(rnd(4, 3, 2, 6, scale=0.3))  # dilation 2, VALID, no bias
    y2 = m.op(OP['CONV_2D'], [y1, w2, -1], [m.tensor([1, 1, 4, 4])], BO['Conv2D'],
              opts((0, 'b', VALID), (1, 'i', 1), (2, 'i', 1), (3, 'b', TANH), (4, 'i', 2), (5, 'i', 2)))
    w3, b3 = m.const(rnd(6, 3, 3, 2, scale=0.3)), m.const(rnd(6))  # grouped: 4 channels, 2 groups
    y3 = m.op(OP['CONV_2D'], [x, w3, b3], [m.tensor([1, 9, 11, 6], name='grouped')], BO['Conv2D'],
              opts((0, 'b', SAME), (1, 'i', 1), (2, 'i', 1), (3, 'b', RELU_N1_TO_1)))
    return m, [x], [y2, y3]


def m_dwconv():
    m = Model()
    x = m.tensor([1, 10, 8, 3], name='input')
    w, bias = m.const(rnd(1, 3, 3, 6, scale=0.4)), m.const(rnd(6))
    y1 = m.op(OP['DEPTHWISE_CONV_2D'], [x, w, bias], [m.tensor([1, 5, 4, 6])], BO['Depthwise'],
              opts((0, 'b', SAME), (1, 'i', 2), (2, 'i', 2), (3, 'i', 2), (4, 'b', RELU)))
    w2 = m.const(rnd(1, 3, 3, 6, scale=0.4))
    y2 = m.op(OP['DEPTHWISE_CONV_2D'], [y1, w2], [m.tensor([1, 5, 4, 6], name='dilated')], BO['Depthwise'],
              opts((0, 'b', SAME), (1, 'i', 1), (2, 'i', 1), (3, 'i', 1), (4, 'b', NONE), (5, 'i', 2), (6, 'i', 2)))
    return m, [x], [y2]


def m_fc():
    m = Model()
    x = m.tensor([1, 2, 3, 4], name='input')
    w1, b1 = m.const(rnd(5, 24, scale=0.3)), m.const(rnd(5))
    y1 = m.op(OP['FULLY_CONNECTED'], [x, w1, b1], [m.tensor([1, 5])], BO['FullyConnected'],
              opts((0, 'b', RELU)))
    w2 = m.const(rnd(3, 4, scale=0.5))  # keep_num_dims, no bias, tanh
    y2 = m.op(OP['FULLY_CONNECTED'], [x, w2, -1], [m.tensor([1, 2, 3, 3], name='kept')],
              BO['FullyConnected'], opts((0, 'b', TANH), (2, 'B', 1)))
    return m, [x], [y1, y2]


def m_pool():
    m = Model()
    x = m.tensor([1, 7, 9, 3], name='input')
    ys = []
    for code, pad, k, s in ((OP['MAX_POOL_2D'], SAME, 3, 2), (OP['AVERAGE_POOL_2D'], SAME, 3, 2),
                            (OP['AVERAGE_POOL_2D'], VALID, 2, 1), (OP['MAX_POOL_2D'], VALID, 2, 2)):
        ys.append(m.op(code, [x], [m.tensor([1, 1, 1, 3])], BO['Pool2D'],
                       opts((0, 'b', pad), (1, 'i', s), (2, 'i', s), (3, 'i', k), (4, 'i', k),
                            (5, 'b', RELU if pad == VALID else NONE))))
    return m, [x], ys


def m_elementwise():
    m = Model()
    x = m.tensor([1, 4, 5, 3], name='input')
    c = m.const(rnd(3))
    a = m.op(OP['ADD'], [x, c], [m.tensor([1, 4, 5, 3])], BO['Add'], opts((0, 'b', NONE)))
    s = m.op(OP['SUB'], [m.const(rnd(1, 5, 1)), a], [m.tensor([1, 4, 5, 3])], BO['Sub'], opts((0, 'b', RELU)))
    mu = m.op(OP['MUL'], [a, x], [m.tensor([1, 4, 5, 3])], BO['Mul'], opts((0, 'b', RELU_N1_TO_1)))
    ab = m.op(OP['ABS'], [s], [m.tensor([1, 4, 5, 3])])
    one = m.const(np.array([1.5], np.float32))
    d = m.op(OP['DIV'], [mu, m.op(OP['ADD'], [ab, one], [m.tensor([1, 4, 5, 3])], BO['Add'],
                                  opts((0, 'b', NONE)))], [m.tensor([1, 4, 5, 3])], BO['Div'], opts((0, 'b', NONE)))
    mx = m.op(OP['MAXIMUM'], [d, s], [m.tensor([1, 4, 5, 3])])
    mn = m.op(OP['MINIMUM'], [mx, m.const(np.float32(0.3))], [m.tensor([1, 4, 5, 3])])
    ng = m.op(OP['NEG'], [mn], [m.tensor([1, 4, 5, 3])])
    ex = m.op(OP['EXP'], [ng], [m.tensor([1, 4, 5, 3])])
    sq = m.op(OP['SQRT'], [ex], [m.tensor([1, 4, 5, 3])])
    rs = m.op(OP['RSQRT'], [sq], [m.tensor([1, 4, 5, 3])])
    q = m.op(OP['SQUARE'], [rs], [m.tensor([1, 4, 5, 3], name='square')])
    # Constants only: folded when loading, then used as a weight.
    k = m.op(OP['MUL'], [m.const(rnd(3)), m.const(np.float32(2.0))], [m.tensor([3])], BO['Mul'], opts((0, 'b', NONE)))
    out = m.op(OP['ADD'], [q, k], [m.tensor([1, 4, 5, 3], name='out')], BO['Add'], opts((0, 'b', RELU6)))
    return m, [x], [out, ex]


def m_activations():
    m = Model()
    x = m.tensor([1, 3, 4, 5], name='input')
    outs = []
    for code in ('RELU', 'RELU6', 'RELU_N1_TO_1', 'LOGISTIC', 'TANH'):
        outs.append(m.op(OP[code], [x], [m.tensor([1, 3, 4, 5], name=code.lower())]))
    outs.append(m.op(OP['LEAKY_RELU'], [x], [m.tensor([1, 3, 4, 5], name='leaky')], BO['LeakyRelu'],
                     opts((0, 'f', 0.2))))
    outs.append(m.op(OP['PRELU'], [x, m.const(rnd(1, 1, 5, scale=0.3))], [m.tensor([1, 3, 4, 5], name='prelu')]))
    return m, [x], outs


def m_compare():
    m = Model()
    x = m.tensor([1, 2, 3, 4], name='input')
    t = m.const(np.float32(0.1))
    masks = []
    for code in ('LESS', 'GREATER', 'GREATER_EQUAL', 'LESS_EQUAL'):
        b = m.op(OP[code], [x, t] if code in ('LESS', 'GREATER_EQUAL') else [t, x], [m.tensor([1, 2, 3, 4], BOOL)])
        masks.append(m.op(OP['CAST'], [b], [m.tensor([1, 2, 3, 4], F32, name=code.lower())]))
    # Equal inputs: x >= x is all ones, x < x all zeros.
    masks.append(m.op(OP['CAST'], [m.op(OP['GREATER_EQUAL'], [x, x], [m.tensor([1, 2, 3, 4], BOOL)])],
                      [m.tensor([1, 2, 3, 4], F32, name='ge_self')]))
    y = m.op(OP['MUL'], [x, masks[0]], [m.tensor([1, 2, 3, 4], name='gated')], BO['Mul'], opts((0, 'b', NONE)))
    return m, [x], masks + [y]


def m_shapes():
    m = Model()
    x = m.tensor([1, 4, 6, 2], name='input')
    r1 = m.op(OP['RESHAPE'], [x, m.const(np.array([1, -1, 4], np.int32), I32)], [m.tensor([1, 12, 4])])
    r2 = m.op(OP['RESHAPE'], [r1], [m.tensor([1, 6, 8])], BO['Reshape'], opts((0, 'vi', [1, 6, 8])))
    tr = m.op(OP['TRANSPOSE'], [r2, m.const(np.array([0, 2, 1], np.int32), I32)], [m.tensor([1, 8, 6])])
    ex = m.op(OP['EXPAND_DIMS'], [tr, m.const(np.array(-1, np.int32), I32)], [m.tensor([1, 8, 6, 1])])
    sq = m.op(OP['SQUEEZE'], [ex], [m.tensor([8, 6], name='squeezed')], BO['Squeeze'], opts((0, 'vi', [0, 3])))
    cat = m.op(OP['CONCATENATION'], [x, m.const(rnd(1, 4, 6, 1)), x], [m.tensor([1, 4, 6, 5], name='concat')],
               BO['Concatenation'], opts((0, 'i', -1), (1, 'b', RELU)))
    pad = m.op(OP['PAD'], [x, m.const(np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32), I32)],
               [m.tensor([1, 7, 7, 2], name='pad')])
    pad2 = m.op(OP['PADV2'], [x, m.const(np.array([[0, 0], [2, 0], [1, 1], [0, 1]], np.int32), I32),
                              m.const(np.float32(0.5))], [m.tensor([1, 6, 8, 3], name='padv2')])
    ss = m.op(OP['STRIDED_SLICE'], [x, m.const(np.array([0, -1, 1, 0], np.int32), I32),
                                    m.const(np.array([1, 0, 6, 2], np.int32), I32),
                                    m.const(np.array([1, -2, 2, 1], np.int32), I32)],
              [m.tensor([1, 2, 3, 2], name='strided')], BO['StridedSlice'],
              opts((0, 'i', 0), (1, 'i', 2), (4, 'i', 0)))
    ss2 = m.op(OP['STRIDED_SLICE'], [x, m.const(np.array([0, 2], np.int32), I32),
                                     m.const(np.array([1, 3], np.int32), I32),
                                     m.const(np.array([1, 1], np.int32), I32)],
               [m.tensor([6, 2], name='shrunk')], BO['StridedSlice'], opts((0, 'i', 0), (1, 'i', 0), (4, 'i', 3)))
    sl = m.op(OP['SLICE'], [x, m.const(np.array([0, 1, 2, 0], np.int32), I32),
                            m.const(np.array([-1, 2, -1, 1], np.int32), I32)], [m.tensor([1, 2, 4, 1], name='slice')])
    return m, [x], [sq, cat, pad, pad2, ss, ss2, sl]


def m_reduce():
    m = Model()
    x = m.tensor([1, 3, 5, 4], name='input')
    sm = m.op(OP['SOFTMAX'], [x], [m.tensor([1, 3, 5, 4], name='softmax')], BO['Softmax'], opts((0, 'f', 0.5)))
    mean = m.op(OP['MEAN'], [x, m.const(np.array([1, 2], np.int32), I32)], [m.tensor([1, 1, 1, 4], name='mean')],
                BO['Reducer'], opts((0, 'B', 1)))
    s = m.op(OP['SUM'], [x, m.const(np.array(-1, np.int32), I32)], [m.tensor([1, 3, 5], name='sum')],
             BO['Reducer'], opts((0, 'B', 0)))
    mx = m.op(OP['REDUCE_MAX'], [x, m.const(np.array([3], np.int32), I32)], [m.tensor([1, 3, 5, 1], name='max')],
              BO['Reducer'], opts((0, 'B', 1)))
    l2 = m.op(OP['L2_NORMALIZATION'], [x], [m.tensor([1, 3, 5, 4], name='l2')])
    return m, [x], [sm, mean, s, mx, l2]


def m_resize():
    m = Model()
    x = m.tensor([1, 5, 4, 3], name='input')
    size = m.const(np.array([8, 11], np.int32), I32)
    outs = []
    for code, ac, hp in (('RESIZE_BILINEAR', 0, 0), ('RESIZE_BILINEAR', 1, 0), ('RESIZE_BILINEAR', 0, 1),
                         ('RESIZE_NEAREST_NEIGHBOR', 0, 0), ('RESIZE_NEAREST_NEIGHBOR', 1, 0),
                         ('RESIZE_NEAREST_NEIGHBOR', 0, 1)):
        if code == 'RESIZE_BILINEAR':
            o = opts((2, 'B', ac), (3, 'B', hp))
            bo = BO['ResizeBilinear']
        else:
            o = opts((0, 'B', ac), (1, 'B', hp))
            bo = BO['ResizeNearest']
        outs.append(m.op(OP[code], [x, size], [m.tensor([1, 8, 11, 3], name='%s_%d%d' % (code.lower(), ac, hp))], bo, o))
    return m, [x], outs


def m_quantized():
    """Weights stored as int8 per channel, uint8 per tensor with a zero point, float16 through
    DEQUANTIZE (as converters write float16 models)."""
    m = Model()
    x = m.tensor([1, 6, 6, 3], name='input')
    wq = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    scales = (rng.random(4) * 0.01 + 0.002).astype(np.float32)
    w = m.const(wq, I8, quant=dict(scale=scales.tolist(), zero_point=[0] * 4, axis=0))
    bias16 = m.const(rnd(4).astype(np.float16), F16)
    bias = m.op(OP['DEQUANTIZE'], [bias16], [m.tensor([4])])
    y = m.op(OP['CONV_2D'], [x, w, bias], [m.tensor([1, 6, 6, 4])], BO['Conv2D'],
             opts((0, 'b', SAME), (1, 'i', 1), (2, 'i', 1), (3, 'b', NONE)))
    cu = m.const(rng.integers(0, 256, size=(4,)).astype(np.uint8), U8,
                 quant=dict(scale=[0.02], zero_point=[128]))
    y2 = m.op(OP['ADD'], [y, cu], [m.tensor([1, 6, 6, 4])], BO['Add'], opts((0, 'b', NONE)))
    w16 = m.const(rnd(2, 1, 1, 4, scale=0.5).astype(np.float16), F16)
    wd = m.op(OP['DEQUANTIZE'], [w16], [m.tensor([2, 1, 1, 4])])
    y3 = m.op(OP['CONV_2D'], [y2, wd, -1], [m.tensor([1, 6, 6, 2], name='out')], BO['Conv2D'],
              opts((0, 'b', VALID), (1, 'i', 1), (2, 'i', 1), (3, 'b', NONE)))
    return m, [x], [y3]


def m_batch():
    """A file written for batch 2 whose Reshape names that batch (as expo's MobileFaceNet):
    the test loads it at batch 1 and 3."""
    m = Model()
    x = m.tensor([2, 4, 4, 3], name='input')
    w = m.const(rnd(5, 1, 1, 3))
    y = m.op(OP['CONV_2D'], [x, w, -1], [m.tensor([2, 4, 4, 5])], BO['Conv2D'],
             opts((0, 'b', VALID), (1, 'i', 1), (2, 'i', 1), (3, 'b', NONE)))
    p = m.op(OP['MEAN'], [y, m.const(np.array([1, 2], np.int32), I32)], [m.tensor([2, 1, 1, 5])],
             BO['Reducer'], opts((0, 'B', 1)))
    r = m.op(OP['RESHAPE'], [p, m.const(np.array([2, 5], np.int32), I32)], [m.tensor([2, 5], name='emb')])
    return m, [x], [r]


MODELS = {'conv': m_conv, 'dwconv': m_dwconv, 'fc': m_fc, 'pool': m_pool,
          'elementwise': m_elementwise, 'activations': m_activations, 'compare': m_compare,
          'shapes': m_shapes, 'reduce': m_reduce, 'resize': m_resize, 'quantized': m_quantized,
          'batch': m_batch}


# ---- hostile files --------------------------------------------------------------------------

def simple(m, code=OP['RELU'], **kw):
    x = m.tensor([1, 4, 4, 3], name='input', **kw)
    y = m.op(code, [x], [m.tensor([1, 4, 4, 3], name='y')])
    return [x], [y]


def bad_files():
    out = {}
    m = Model(version=2)
    out['bad_version'] = (m.build(*simple(m)), 'schema version 2')
    m = Model()
    out['bad_custom'] = (m.build(*simple(m, OP['CUSTOM'])), 'custom op')
    m = Model()
    out['bad_builtin'] = (m.build(*simple(m, OP['LSTM'])), 'builtin op 16')
    m = Model()
    out['bad_new_builtin'] = (m.build(*simple(m, OP['GELU'])), 'builtin op 150')
    m = Model()
    out['bad_int8_input'] = (m.build(*simple(m, ttype=I8)), 'float32 models only')
    m = Model()
    x = m.tensor([1, 4, 4, 3], name='input')
    y = m.op(OP['ADD'], [x, m.tensor([3], buffer=99)], [m.tensor([1, 4, 4, 3])], BO['Add'], opts((0, 'b', 0)))
    out['bad_buffer_index'] = (m.build([x], [y]), 'out of range')
    m = Model()
    x = m.tensor([1, 4, 4, 3], name='input')
    c = m.tensor([5], data=np.zeros(3, np.float32))  # 12 bytes for 5 floats
    y = m.op(OP['ADD'], [x, c], [m.tensor([1, 4, 4, 3])], BO['Add'], opts((0, 'b', 0)))
    out['bad_short_data'] = (m.build([x], [y]), 'bytes of data')
    m = Model()
    x = m.tensor([1, 4, 4, 3], name='input')
    y = m.op(OP['ADD'], [x, m.tensor([1, 4, 4, 3], name='never')], [m.tensor([1, 4, 4, 3])], BO['Add'],
             opts((0, 'b', 0)))
    out['bad_read_before_write'] = (m.build([x], [y]), 'read before')
    m = Model()
    x = m.tensor([1, 4, 4, 3], name='input')
    y = m.op(OP['RELU'], [x], [m.tensor([1, 4, 4, 3])])
    m.op(OP['RELU'], [x], [y])
    out['bad_two_writers'] = (m.build([x], [y]), 'already defined')
    m = Model()
    x = m.tensor([1, 1, 1, 1, 1, 1, 4, 3], name='input')
    y = m.op(OP['RELU'], [x], [m.tensor([1, 4, 4, 3])])
    out['bad_rank'] = (m.build([x], [y]), 'rank 8')
    m = Model()
    x = m.tensor([1, 1, 1, 3], name='input', sig=[-1, -1, -1, 3])
    y = m.op(OP['RELU'], [x], [m.tensor([1, 1, 1, 3])])
    out['bad_unknown_size'] = (m.build([x], [y]), 'not fixed')
    m = Model()
    x = m.tensor([1, 4, 4, 3], name='input')
    w = m.const(rnd(2, 5, 5, 3))
    y = m.op(OP['CONV_2D'], [x, w, -1], [m.tensor([1, 1, 1, 2])], BO['Conv2D'],
             opts((0, 'b', VALID), (1, 'i', 1), (2, 'i', 1), (3, 'b', 0)))
    out['bad_kernel_too_big'] = (m.build([x], [y]), 'does not fit')
    m = Model()
    x = m.tensor([1, 4, 4, 3], name='input')
    w = m.const(rnd(2, 3, 3, 3))
    y = m.op(OP['CONV_2D'], [x, w, -1], [m.tensor([1, 4, 4, 2])], BO['Conv2D'],
             opts((0, 'b', SAME), (1, 'i', 0), (2, 'i', 1), (3, 'b', 0)))
    out['bad_stride'] = (m.build([x], [y]), 'bad stride')
    m = Model()  # a constant of shape (1, 1, 1, 0), its empty data outside the flatbuffer
    x = m.tensor([1, 4, 4, 1], name='input')
    c = m.tensor([1, 1, 1, 0], buffer=m.external(8, 0), name='empty')
    y = m.op(OP['ADD'], [x, c], [m.tensor([1, 4, 4, 0])], BO['Add'], opts((0, 'b', 0)))
    w = m.const(rnd(2, 1, 1, 1))
    z = m.op(OP['CONV_2D'], [y, w, -1], [m.tensor([1, 4, 4, 2])], BO['Conv2D'],
             opts((0, 'b', VALID), (1, 'i', 1), (2, 'i', 1), (3, 'b', 0)))
    out['bad_empty_const'] = (m.build([x], [z]), 'empty')
    m = Model()  # external data beyond the end of the file
    x = m.tensor([1, 4, 4, 3], name='input')
    c = m.tensor([3], buffer=m.external(1 << 20, 12), name='far')
    y = m.op(OP['ADD'], [x, c], [m.tensor([1, 4, 4, 3])], BO['Add'], opts((0, 'b', 0)))
    out['bad_external_data'] = (m.build([x], [y]), 'outside the file')
    # One 256 KB buffer read as 400 constants: 100 MB of floats from a 260 KB file, above
    # 16 x its size + 64 MB.
    m = Model()
    x = m.tensor([65536], name='input')
    m.buffers.append(np.zeros(65536, np.float32).tobytes())
    shared = len(m.buffers) - 1
    y = x
    for i in range(400):
        c = m.tensor([65536], buffer=shared, name='shared%d' % i)
        y = m.op(OP['ADD'], [y, c], [m.tensor([65536])], BO['Add'], opts((0, 'b', 0)))
    out['bad_shared_buffer'] = (m.build([x], [y]), 'NN_TFLITE_MAX_CONST_BYTES')
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    os.makedirs(d, exist_ok=True)
    for name, fn in MODELS.items():
        m, inputs, outputs = fn()
        path = os.path.join(d, name + '.tflite')
        with open(path, 'wb') as f:
            f.write(m.build(inputs, outputs))
        tensors, ins, outs, ops = tflite_oracle.read_model(path)
        shape = tensors[ins[0]]['shape']
        if name == 'batch':
            shape = [1] + shape[1:]  # as the test loads it; the oracle repeats it to batch 2
        x = rnd(*shape)
        x.astype('<f4').tofile(os.path.join(d, name + '.in.f32'))
        xin = x.astype(np.float64)
        file_batch = tensors[ins[0]]['shape'][0]
        if file_batch > shape[0]:
            xin = np.concatenate([xin] * (file_batch // shape[0]))
        with torch.no_grad():
            ys = tflite_oracle.run(tensors, ins, outs, ops, torch.from_numpy(xin))
        lines = ['input %s' % ' '.join(str(v) for v in shape)]
        for k, y in enumerate(ys):
            y = y.double().numpy()
            if file_batch > shape[0]:
                y = y[:shape[0]]
            y.astype('<f4').tofile(os.path.join(d, '%s.out%d.f32' % (name, k)))
            lines.append('output %s %d %s' % (tensors[outs[k]]['name'], y.ndim,
                                              ' '.join(str(v) for v in y.shape)))
        with open(os.path.join(d, name + '.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    with open(os.path.join(d, 'bad.txt'), 'w') as f:
        for name, (data, expect) in bad_files().items():
            with open(os.path.join(d, name + '.tflite'), 'wb') as g:
                g.write(data)
            f.write('%s.tflite\t%s\n' % (name, expect))


if __name__ == '__main__':
    main()
