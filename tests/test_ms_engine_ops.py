"""Every op handler of the `.ms` engine against a numpy reference (atol 1e-4, rtol 1e-4).

Each case is a one-node `.ms` model written with our writer, read back with our reader and run by
MsEngine. The registry test fails when a handler has no case here.
"""
import math

import numpy as np
import pytest

from runtime.engines.ms_engine import MsEngine
from runtime.msformat.builder import single_node_model
from runtime.msformat.reader import read_ms_bytes
from runtime.engines.ms_onnx import HANDLERS
from runtime.msformat.writer import model_to_bytes
from runtime.msformat.schema import ACT

ATOL = RTOL = 1e-4
rng = np.random.default_rng(0)


def rand(*shape, lo=-1.0, hi=1.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


# ---- numpy references (NHWC) -------------------------------------------------------------------
def same_pads(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def conv_ref(x, w, b, stride=(1, 1), dil=(1, 1), pads=(0, 0, 0, 0), group=1):
    xp = np.pad(x, ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    n, h, wd, _ = xp.shape
    o, kh, kw, cg = w.shape
    oh = (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (wd - (kw - 1) * dil[1] - 1) // stride[1] + 1
    out = np.zeros((n, oh, ow, o), np.float64)
    og = o // group
    for g in range(group):
        xs, ws = xp[..., g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i * dil[0]:i * dil[0] + stride[0] * (oh - 1) + 1:stride[0],
                           j * dil[1]:j * dil[1] + stride[1] * (ow - 1) + 1:stride[1], :]
                out[..., g * og:(g + 1) * og] += np.einsum("nhwc,oc->nhwo", patch, ws[:, i, j, :])
    return (out + (0 if b is None else b)).astype(np.float32)


def deconv_ref(x, w, b, stride, pads=(0, 0, 0, 0), group=1):
    n, h, wd, c = x.shape
    cin, kh, kw, og = w.shape
    cg = c // group
    full = np.zeros((n, (h - 1) * stride[0] + kh, (wd - 1) * stride[1] + kw, og * group))
    for g in range(group):
        for i in range(kh):
            for j in range(kw):
                full[:, i:i + stride[0] * (h - 1) + 1:stride[0], j:j + stride[1] * (wd - 1) + 1:stride[1],
                     g * og:(g + 1) * og] += np.einsum("nhwc,co->nhwo", x[..., g * cg:(g + 1) * cg],
                                                       w[g * cg:(g + 1) * cg, i, j, :])
    out = full[:, pads[0]:full.shape[1] - pads[1], pads[2]:full.shape[2] - pads[3]]
    return (out + (0 if b is None else b)).astype(np.float32)


def pool_ref(x, k, s, pads, ceil, kind):
    n, h, w, c = x.shape
    def size(d, kk, ss, p0, p1):
        return (math.ceil if ceil else math.floor)((d + p0 + p1 - kk) / ss) + 1
    oh, ow = size(h, k[0], s[0], pads[0], pads[1]), size(w, k[1], s[1], pads[2], pads[3])
    out = np.zeros((n, oh, ow, c), np.float32)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - pads[0], j * s[1] - pads[2]
            win = x[:, max(r0, 0):min(r0 + k[0], h), max(c0, 0):min(c0 + k[1], w), :]
            out[:, i, j] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return out


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


ACT_REFS = {
    "RELU": lambda v: np.maximum(v, 0), "RELU6": lambda v: np.clip(v, 0, 6),
    "SIGMOID": sigmoid, "TANH": np.tanh,
    "LEAKY_RELU": lambda v: np.where(v > 0, v, 0.2 * v),
    "HSWISH": lambda v: v * np.clip(v + 3, 0, 6) / 6,
    "HSIGMOID": lambda v: np.clip(v + 3, 0, 6) / 6,
    "GELU": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2))),
    "SWISH": lambda v: v * sigmoid(v), "ELU": lambda v: np.where(v > 0, v, np.exp(v) - 1),
    "ABS": np.abs, "RELU1": lambda v: np.clip(v, 0, 1),
}


# ---- cases ---------------------------------------------------------------------------------------
class Case:
    def __init__(self, op, attrs, inputs, expected, id):
        self.op, self.attrs, self.inputs, self.id = op, attrs, inputs, id
        expected = expected if isinstance(expected, list) else [expected]
        self.expected = [np.asarray(e, np.float32) if np.asarray(e).dtype == np.float64 else e
                         for e in expected]


def cases():
    x = rand(1, 7, 8, 4)
    w = rand(6, 3, 3, 4)
    b = rand(6)
    conv = dict(format=1, kernel_size=(3, 3), stride=(1, 1), dilation=(1, 1), pad_mode=0,
                pad_list=(0, 0, 0, 0), group=1, in_channel=4, out_channel=6)
    yield Case("Conv2DFusion", conv, [("x", x), ("c", w), ("c", b)], conv_ref(x, w, b), "conv_valid")
    yield Case("Conv2DFusion", {**conv, "pad_list": (1, 0, 2, 1), "stride": (2, 2),
                                "activation_type": ACT["RELU6"]},
               [("x", x), ("c", w), ("c", b)],
               np.clip(conv_ref(x, w, b, (2, 2), pads=(1, 0, 2, 1)), 0, 6), "conv_pads_stride_relu6")
    t, bt = same_pads(7, 3, 2, 2)
    l, r = same_pads(8, 3, 2, 2)
    yield Case("Conv2DFusion", {**conv, "pad_mode": 1, "stride": (2, 2), "dilation": (2, 2)},
               [("x", x), ("c", w)], conv_ref(x, w, None, (2, 2), (2, 2), (t, bt, l, r)), "conv_same_dilated")
    wd = rand(4, 3, 3, 1)
    yield Case("Conv2DFusion", {**conv, "group": 4, "out_channel": 4, "activation_type": ACT["RELU"]},
               [("x", x), ("c", wd), ("c", b[:4])],
               np.maximum(conv_ref(x, wd, b[:4], group=4), 0), "conv_depthwise_relu")
    wg = rand(6, 1, 1, 2)
    yield Case("Conv2DFusion", {**conv, "group": 2, "kernel_size": (1, 1)}, [("x", x), ("c", wg)],
               conv_ref(x, wg, None, group=2), "conv_grouped_1x1")
    wt = rand(4, 2, 2, 3)
    deconv = dict(format=1, kernel_size=(2, 2), stride=(2, 2), dilation=(1, 1), pad_mode=0,
                  pad_list=(0, 0, 0, 0), group=1, in_channel=4, out_channel=3)
    yield Case("Conv2dTransposeFusion", deconv, [("x", x), ("c", wt), ("c", b[:3])],
               deconv_ref(x, wt, b[:3], (2, 2)), "deconv")
    wt3 = rand(4, 3, 3, 3)
    yield Case("Conv2dTransposeFusion", {**deconv, "kernel_size": (3, 3), "pad_list": (1, 1, 1, 1)},
               [("x", x), ("c", wt3)], deconv_ref(x, wt3, None, (2, 2), (1, 1, 1, 1)), "deconv_pad")
    yield Case("Conv2dTransposeFusion", {**deconv, "kernel_size": (3, 3), "pad_mode": 1},
               [("x", x), ("c", wt3)], deconv_ref(x, wt3, None, (2, 2), (0, 1, 0, 1)), "deconv_same")
    wdw = rand(4, 2, 2, 1)
    yield Case("Conv2dTransposeFusion", {**deconv, "group": 4, "out_channel": 4}, [("x", x), ("c", wdw)],
               deconv_ref(x, wdw, None, (2, 2), group=4), "deconv_depthwise")
    pool = dict(kernel_size=(3, 3), strides=(2, 2), pad=(0, 0, 0, 0), pad_mode=0, format=1)
    yield Case("MaxPoolFusion", {**pool, "round_mode": 1}, [("x", x)],
               pool_ref(x, (3, 3), (2, 2), (0, 0, 0, 0), True, "max"), "maxpool_ceil")
    yield Case("MaxPoolFusion", {**pool, "round_mode": 0}, [("x", x)],
               pool_ref(x, (3, 3), (2, 2), (0, 0, 0, 0), False, "max"), "maxpool_floor")
    yield Case("MaxPoolFusion", {**pool, "global": True}, [("x", x)], x.max(axis=(1, 2), keepdims=True),
               "maxpool_global")
    yield Case("AvgPoolFusion", {**pool, "round_mode": 1}, [("x", x)],
               pool_ref(x, (3, 3), (2, 2), (0, 0, 0, 0), True, "avg"), "avgpool_ceil_partial")
    yield Case("AvgPoolFusion", {**pool, "pad": (1, 1, 1, 1), "activation_type": ACT["RELU"]}, [("x", x)],
               np.maximum(pool_ref(x, (3, 3), (2, 2), (1, 1, 1, 1), False, "avg"), 0), "avgpool_pad_relu")
    yield Case("AvgPoolFusion", {**pool, "global": True}, [("x", x)], x.mean(axis=(1, 2), keepdims=True),
               "avgpool_global")
    f_in, f_w, f_b = rand(2, 3, 2, 2), rand(5, 12), rand(5)
    yield Case("FullConnection", dict(has_bias=True, use_axis=True, axis=1,
                                      activation_type=ACT["RELU"]),
               [("x", f_in), ("c", f_w), ("c", f_b)],
               np.maximum(f_in.reshape(2, 12) @ f_w.T + f_b, 0), "fc_axis_relu")
    yield Case("FullConnection", dict(has_bias=False), [("x", rand(4, 12)), ("c", f_w)], None, "fc_nobias")
    a, bm = rand(3, 5), rand(4, 5)
    yield Case("MatMulFusion", dict(transpose_b=True), [("x", a), ("c", bm), ("c", f_b[:4])],
               a @ bm.T + f_b[:4], "matmul_tb_bias")
    a3, b3 = rand(2, 5, 3), rand(2, 5, 4)
    yield Case("MatMulFusion", dict(transpose_a=True), [("x", a3), ("x", b3)],
               np.transpose(a3, (0, 2, 1)) @ b3, "matmul_batched_ta")
    v = rand(2, 3, 4, 5, lo=-4, hi=4)
    for name, ref in ACT_REFS.items():
        attrs = {"activation_type": ACT[name], "alpha": 0.2 if name == "LEAKY_RELU" else 1.0}
        yield Case("Activation", attrs, [("x", v)], ref(v), f"activation_{name.lower()}")
    p, q = rand(2, 3, 4, 5), rand(5, lo=0.5, hi=2)
    for op, fn in {"AddFusion": np.add, "SubFusion": np.subtract, "MulFusion": np.multiply,
                   "DivFusion": np.divide}.items():
        yield Case(op, {}, [("x", p), ("c", q)], fn(p, q), f"{op}_broadcast_const")
        yield Case(op, {"activation_type": ACT["RELU"]}, [("x", p), ("x", p[:, :1] + 2)],
                   np.maximum(fn(p, p[:, :1] + 2), 0), f"{op}_broadcast_relu")
    yield Case("Eltwise", {"mode": 1}, [("x", p), ("x", p * 2), ("x", p * 3)], p * 6, "eltwise_sum")
    yield Case("Eltwise", {"mode": 0}, [("x", p), ("x", p + 1)], p * (p + 1), "eltwise_prod")
    yield Case("Eltwise", {"mode": 2}, [("x", p), ("x", -p)], np.abs(p), "eltwise_max")
    yield Case("BiasAdd", {}, [("x", p), ("c", q)], p + q, "bias_add")
    s4, o4 = rand(4), rand(4)
    yield Case("ScaleFusion", {"axis": 2}, [("x", p), ("c", s4), ("c", o4)],
               p * s4[:, None] + o4[:, None], "scale_axis2_offset")
    yield Case("ScaleFusion", {"axis": -1, "activation_type": ACT["RELU"]}, [("x", p), ("c", q)],
               np.maximum(p * q, 0), "scale_last_relu")
    yield Case("Concat", {"axis": -1}, [("x", p), ("c", q.reshape(1, 1, 1, 5).repeat(4, 2).repeat(3, 1)
                                                           .repeat(2, 0))],
               np.concatenate([p, np.broadcast_to(q, p.shape)], -1), "concat_const")
    yield Case("Concat", {"axis": 1}, [("x", p), ("x", p * 2)], np.concatenate([p, p * 2], 1), "concat_axis1")
    yield Case("Split", {"output_num": 2, "size_splits": (1, 3), "axis": 2}, [("x", p)],
               [p[:, :, :1], p[:, :, 1:]], "split_sizes")
    yield Case("Split", {"output_num": 2, "axis": 0}, [("x", p)], [p[:1], p[1:]], "split_equal")
    yield Case("Split", {"output_num": 2, "axis": 3}, [("x", p), ("c", np.array([2, 3], np.int32))],
               [p[..., :2], p[..., 2:]], "split_sizes_as_input")     # the ONNX parser's form
    yield Case("Crop", {"axis": 1, "offsets": (1, 0, 2)}, [("x", p), ("x", rand(2, 2, 4, 3))],
               p[:, 1:3, 0:4, 2:5], "crop")
    yield Case("Reshape", {}, [("x", p), ("c", np.array([2, -1, 5], np.int32))], p.reshape(2, -1, 5), "reshape")
    yield Case("Flatten", {"axis": 2}, [("x", p)], p.reshape(6, 20), "flatten")
    yield Case("Transpose", {}, [("x", p), ("c", np.array([0, 3, 1, 2], np.int32))],
               p.transpose(0, 3, 1, 2), "transpose")
    yield Case("Squeeze", {"axis": (1,)}, [("x", rand(2, 1, 3))], None, "squeeze")
    u = rand(2, 3)
    yield Case("Unsqueeze", {"axis": (0, 3)}, [("x", u)], u[None, :, :, None], "unsqueeze")
    yield Case("ExpandDims", {}, [("x", u), ("c", np.array([1], np.int32))], u[:, None], "expand_dims")
    yield Case("StridedSlice", {"begin_mask": 1, "shrink_axis_mask": 2},
               [("x", p), ("c", np.array([1, 2, 0, 4], np.int32)), ("c", np.array([2, 3, 4, 0], np.int32)),
                ("c", np.array([1, 1, 2, -1], np.int32))], p[:2, 2, 0:4:2, 4:0:-1], "strided_slice")
    yield Case("StridedSlice", {}, [("x", p), ("c", np.array([1, 0], np.int32)),
                                    ("c", np.array([4, 3], np.int32)), ("c", np.array([2, 1], np.int32)),
                                    ("c", np.array([2, 1], np.int32))], p[:, 0:3, 1:4:2], "strided_slice_axes")
    yield Case("SliceFusion", {}, [("x", p), ("c", np.array([0, 1, 1, 0], np.int32)),
                                   ("c", np.array([-1, 2, 2, 5], np.int32))], p[:, 1:3, 1:3, :], "slice")
    pads = np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32)
    yield Case("PadFusion", {"constant_value": 0.5}, [("x", p), ("c", pads)],
               np.pad(p, pads, constant_values=0.5), "pad_constant")
    yield Case("PadFusion", {}, [("x", p), ("c", pads), ("c", np.float32(-2))],
               np.pad(p, pads, constant_values=-2), "pad_constant_as_input")   # the ONNX parser's form
    yield Case("PadFusion", {"padding_mode": 1}, [("x", p), ("c", pads)], np.pad(p, pads, mode="reflect"),
               "pad_reflect")
    yield Case("PadFusion", {"paddings": tuple(tuple(int(v) for v in row) for row in pads)}, [("x", p)],
               np.pad(p, pads), "pad_from_vec2d_attribute")
    for mode, fn in {0: np.mean, 1: np.max, 2: np.min, 4: np.sum, 3: np.prod}.items():
        yield Case("ReduceFusion", {"mode": mode, "keep_dims": mode % 2 == 0},
                   [("x", p), ("c", np.array([1, 2], np.int32))],
                   fn(p, axis=(1, 2), keepdims=mode % 2 == 0), f"reduce_mode{mode}")
    yield Case("ReduceFusion", {"mode": 5, "reduce_to_end": True}, [("x", p), ("c", np.array([2], np.int32))],
               (p ** 2).sum(axis=(2, 3)), "reduce_sumsquare_to_end")
    yield Case("ReduceFusion", {"mode": 4, "reduce_to_end": True, "coeff": 0.5},
               [("x", p), ("c", np.array([1], np.int32))], 0.5 * p.sum(axis=(1, 2, 3)), "reduce_to_end_coeff")
    yield Case("ReduceFusion", {"mode": 6, "coeff": 0.5}, [("x", p), ("c", np.array([3], np.int32))],
               np.abs(p).sum(axis=3), "reduce_asum_coeff_ignored_without_reduce_to_end")
    e = np.exp(p - p.max(-1, keepdims=True))
    yield Case("Softmax", {"axis": (-1,)}, [("x", p)], e / e.sum(-1, keepdims=True), "softmax_last")
    e1 = np.exp(p - p.max(1, keepdims=True))
    yield Case("Softmax", {"axis": (1,)}, [("x", p)], e1 / e1.sum(1, keepdims=True), "softmax_axis1")
    yield Case("LogSoftmax", {"axis": -1}, [("x", p)], np.log(e / e.sum(-1, keepdims=True)), "log_softmax")
    pos = rand(2, 3, lo=0.1, hi=4)
    yield Case("Rsqrt", {}, [("x", pos)], 1 / np.sqrt(pos), "rsqrt")
    yield Case("Sqrt", {}, [("x", pos)], np.sqrt(pos), "sqrt")
    yield Case("Cast", {}, [("x", pos * 3), ("c", np.array(34, np.int32))], (pos * 3).astype(np.int32), "cast")
    yield Case("Clip", {"min": -0.5, "max": 0.5}, [("x", p)], np.clip(p, -0.5, 0.5), "clip")
    yield Case("Stack", {"axis": 1}, [("x", u), ("x", u * 2)], np.stack([u, u * 2], 1), "stack")
    yield Case("Gather", {}, [("x", p), ("c", np.array([2, 0], np.int32)), ("c", np.array([2], np.int32))],
               p[:, :, [2, 0]], "gather")
    yield Case("Maximum", {}, [("x", p), ("x", -p)], np.abs(p), "maximum")
    yield Case("Minimum", {}, [("x", p), ("x", -p)], -np.abs(p), "minimum")
    yield Case("RealDiv", {}, [("x", p), ("c", q)], p / q, "real_div")
    yield Case("SquaredDifference", {}, [("x", p), ("x", p * 3)], (2 * p) ** 2, "squared_difference")
    yield Case("FloorDiv", {}, [("x", p * 5), ("c", q)], np.floor(p * 5 / q), "floor_div")
    yield Case("Square", {}, [("x", p)], p * p, "square")
    yield Case("PowFusion", {}, [("x", pos), ("c", np.float32(2.0))], pos ** 2, "pow")
    yield Case("PReLUFusion", {}, [("x", p), ("c", q)], np.where(p > 0, p, p * q), "prelu")
    yield Case("ExpFusion", {}, [("x", p)], np.exp(p), "exp")
    for op, fn in {"Abs": np.abs, "Neg": np.negative, "Log": np.log, "Floor": np.floor, "Ceil": np.ceil,
                   "Round": np.round, "Sin": np.sin, "Cos": np.cos, "Reciprocal": np.reciprocal}.items():
        arg = pos if op in ("Log", "Reciprocal") else p * 3
        yield Case(op, {}, [("x", arg)], fn(arg), f"unary_{op.lower()}")
    yield Case("Erf", {}, [("x", p)], np.vectorize(math.erf)(p).astype(np.float32), "erf")
    yield Case("Equal", {}, [("x", p), ("x", p)], np.ones(p.shape, bool), "equal")
    yield Case("Less", {}, [("x", p), ("c", np.float32(0))], p < 0, "less")
    yield Case("Greater", {}, [("x", p), ("c", np.float32(0))], p > 0, "greater")
    yield Case("LogicalNot", {}, [("x", p > 0)], ~(p > 0), "logical_not")
    yield Case("Shape", {}, [("x", p)], np.array(p.shape, np.int32), "shape")
    yield from extra_cases(p)


def lrn_ref(x, r, bias, alpha, beta):
    sq = np.pad(x ** 2, ((0, 0), (0, 0), (0, 0), (r, r)))
    c = x.shape[-1]
    s = sum(sq[..., k:k + c] for k in range(2 * r + 1))
    return x / (bias + alpha * s) ** beta


def bilinear_half_pixel_ref(x, oh, ow):
    n, h, w, c = x.shape
    def coords(o, i):
        src = np.clip((np.arange(o) + 0.5) * i / o - 0.5, 0, i - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, i - 1)
        return lo, hi, src - lo
    y0, y1, fy = coords(oh, h)
    x0, x1, fx = coords(ow, w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bot = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]


def extra_cases(p):
    c = p.shape[-1]
    mean, var, scale, bias = rand(c), rand(c, lo=0.5, hi=2), rand(c), rand(c)
    yield Case("FusedBatchNorm", {"epsilon": 1e-3}, [("x", p), ("c", scale), ("c", bias), ("c", mean),
                                                     ("c", var)],
               (p - mean) / np.sqrt(var + 1e-3) * scale + bias, "fused_batch_norm")
    yield Case("BatchNorm", {"epsilon": 1e-5}, [("x", p), ("c", mean), ("c", var)],
               (p - mean) / np.sqrt(var + 1e-5), "batch_norm")
    mu, sd = p.mean(axis=(1, 2), keepdims=True), p.var(axis=(1, 2), keepdims=True)
    yield Case("InstanceNorm", {"epsilon": 1e-5}, [("x", p), ("c", scale), ("c", bias)],
               (p - mu) / np.sqrt(sd + 1e-5) * scale + bias, "instance_norm")
    mu, sd = p.mean(axis=(2, 3), keepdims=True), p.var(axis=(2, 3), keepdims=True)
    g, b = rand(4, 5), rand(4, 5)
    yield Case("LayerNormFusion", {"begin_norm_axis": 2, "begin_params_axis": 2, "epsilon": 1e-5,
                                   "elementwise_affine": True}, [("x", p), ("c", g), ("c", b)],
               (p - mu) / np.sqrt(sd + 1e-5) * g + b, "layer_norm")
    yield Case("L2NormalizeFusion", {"axis": (-1,), "epsilon": 1e-12}, [("x", p)],
               p / np.sqrt((p ** 2).sum(-1, keepdims=True)), "l2_normalize")
    yield Case("LRN", {"depth_radius": 1, "bias": 1.0, "alpha": 0.5, "beta": 0.75,
                       "norm_region": "ACROSS_CHANNELS"}, [("x", p)], lrn_ref(p, 1, 1.0, 0.5, 0.75), "lrn")
    yield Case("ArgMaxFusion", {"axis": -1}, [("x", p)], p.argmax(-1).astype(np.int32), "argmax")
    yield Case("ArgMinFusion", {"axis": 1, "top_k": 1, "keep_dims": True}, [("x", p)],
               p.argmin(1)[:, None].astype(np.int32), "argmin_keep")
    flat = p.reshape(2, -1)
    top = np.argsort(-flat, axis=1, kind="stable")[:, :4]
    yield Case("TopKFusion", {"axis": 1, "sorted": True, "largest": 0},
               [("x", flat), ("c", np.array([4], np.int32))],
               [np.take_along_axis(flat, top, 1), top.astype(np.int32)], "top_k")
    inf = p.copy()
    inf[0, 0, 0, 0] = np.inf
    yield Case("OnesLike", {}, [("x", inf)], np.ones_like(p), "ones_like")
    yield Case("ZerosLike", {}, [("x", np.arange(6, dtype=np.int32).reshape(2, 3))],
               np.zeros((2, 3), np.int32), "zeros_like_int")
    yield Case("TileFusion", {}, [("x", p), ("c", np.array([1, 2, 1, 3], np.int32))], np.tile(p, (1, 2, 1, 3)),
               "tile")
    yield Case("BroadcastTo", {"shape": (3, 2, 3, 4, 5)}, [("x", p)], np.broadcast_to(p, (3,) + p.shape),
               "broadcast_to")
    d = rand(1, 2, 3, 8)
    d2s = d.reshape(1, 2, 3, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(1, 4, 6, 2)
    yield Case("DepthToSpace", {"block_size": 2, "format": 1}, [("x", d)], d2s, "depth_to_space")
    yield Case("SpaceToDepth", {"block_size": 2, "format": 1}, [("x", d2s)], d, "space_to_depth")
    yield Case("Where", {}, [("x", p > 0), ("x", p), ("c", np.float32(-1))], np.where(p > 0, p, -1), "where")
    yield Case("Select", {}, [("x", p > 0), ("x", p), ("x", -p)], np.abs(p), "select")
    yield Case("Resize", {"method": 1, "new_height": 6, "new_width": 8, "format": 1}, [("x", p)],
               p.repeat(2, 1).repeat(2, 2)[:, :, :8], "resize_nearest_asymmetric")
    yield Case("Resize", {"method": 0, "coordinate_transform_mode": 2, "format": 1}, [("x", p)],
               bilinear_half_pixel_ref(p, 5, 7), "resize_linear_half_pixel_from_output_shape")


def _fill_none(case):
    """References that are easier stated per case than inline."""
    if case.id == "fc_nobias":
        x = case.inputs[0][1]
        case.expected = [x @ case.inputs[1][1].T]
    if case.id == "squeeze":
        case.expected = [case.inputs[0][1][:, 0]]
    return case


CASES = [_fill_none(c) for c in cases()]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op_matches_numpy(case):
    model, feed = single_node_model(case.op, case.attrs, case.inputs,
                                    [np.shape(e) for e in case.expected],
                                    out_dtypes=[np.asarray(e).dtype for e in case.expected])
    model = read_ms_bytes(model_to_bytes(model))           # through our writer and reader
    engine = MsEngine.from_model(model)
    got = engine.run(feed)
    assert len(got) == len(case.expected)
    for out, want in zip(got.values(), case.expected):
        want = np.asarray(want)
        assert out.shape == want.shape
        if want.dtype == bool or np.issubdtype(want.dtype, np.integer):
            np.testing.assert_array_equal(out, want)
        else:
            np.testing.assert_allclose(out, want, atol=ATOL, rtol=RTOL)


DEDICATED_TESTS = {"QuantDTypeCast": "test_quant_dtype_cast_dequantizes"}


@pytest.mark.parametrize("op", sorted(HANDLERS))
def test_every_handler_has_a_numpy_case(op):
    assert any(c.op == op for c in CASES) or DEDICATED_TESTS.get(op) in globals(), \
        f"handler {op} has no numpy test case"


def test_quant_dtype_cast_dequantizes():
    """QuantDTypeCast int8 -> float32 uses the int8 tensor's (scale, zero point)."""
    from runtime.msformat.model import QuantParam
    q = np.arange(-5, 5, dtype=np.int8).reshape(2, 5)
    model, feed = single_node_model("QuantDTypeCast", {"src_t": 32, "dst_t": 43}, [("x", q)], [(2, 5)])
    model.tensors[0].quant_params = [QuantParam(scale=0.5, zero_point=1, inited=True)]
    out = MsEngine.from_model(read_ms_bytes(model_to_bytes(model))).run(feed)
    np.testing.assert_allclose(next(iter(out.values())), (q.astype(np.float32) - 1) * 0.5)
