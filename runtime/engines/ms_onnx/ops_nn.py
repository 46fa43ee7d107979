"""Handlers for the network ops: convolutions, pools, dense layers and activations.

Conventions of the `.ms` format (ms-format.md): NHWC activations; conv weights [out, kh, kw, in/g]
(deconv weights [in, kh, kw, out/g]); pad_list [top, bottom, left, right]; PadMode PAD 0 / SAME 1 /
VALID 2; RoundMode FLOOR 0 / CEIL 1.
"""
import math

import numpy as np

from ...msformat.schema import ACT
from . import checks
from .base import TO_NCHW, NotTranslatable, handler, image_layout


def _act_unit(ctx, x, act, attrs=None):
    """Apply a fused/explicit activation of ActivationType code `act` to ONNX value `x`."""
    attrs = attrs or {}
    fn = ACTIVATIONS.get(act)
    if fn is None:
        raise NotTranslatable(f"activation type {act} is not supported")
    return fn(ctx, x, attrs)


def _clip(lo, hi):
    def fn(ctx, x, attrs):
        return ctx.add("Clip", [x, ctx.init(np.float32(lo), "lo"), ctx.init(np.float32(hi), "hi")])
    return fn


def _gelu(ctx, x, attrs):
    if attrs.get("approximate"):
        # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = ctx.add("Mul", [ctx.add("Mul", [x, x]), x])
        inner = ctx.add("Add", [x, ctx.add("Mul", [cube, ctx.init(np.float32(0.044715))])])
        t = ctx.add("Tanh", [ctx.add("Mul", [inner, ctx.init(np.float32(math.sqrt(2 / math.pi)))])])
    else:
        t = ctx.add("Erf", [ctx.add("Mul", [x, ctx.init(np.float32(1 / math.sqrt(2)))])])
    half = ctx.add("Mul", [x, ctx.init(np.float32(0.5))])
    return ctx.add("Mul", [half, ctx.add("Add", [t, ctx.init(np.float32(1.0))])])


def _hard_tanh(ctx, x, attrs):
    lo, hi = attrs.get("min_val", -1.0), attrs.get("max_val", 1.0)
    if lo == 0 and hi == 0:
        lo, hi = -1.0, 1.0
    return _clip(lo, hi)(ctx, x, attrs)


ACTIVATIONS = {
    ACT["NO_ACTIVATION"]: lambda ctx, x, a: x,
    ACT["LINEAR"]: lambda ctx, x, a: x,
    ACT["RELU"]: lambda ctx, x, a: ctx.add("Relu", [x]),
    ACT["RELU6"]: _clip(0.0, 6.0),
    ACT["RELU1"]: _clip(0.0, 1.0),
    ACT["SIGMOID"]: lambda ctx, x, a: ctx.add("Sigmoid", [x]),
    ACT["TANH"]: lambda ctx, x, a: ctx.add("Tanh", [x]),
    ACT["LEAKY_RELU"]: lambda ctx, x, a: ctx.add("LeakyRelu", [x], alpha=float(a.get("alpha", 0.01))),
    ACT["ELU"]: lambda ctx, x, a: ctx.add("Elu", [x], alpha=float(a.get("alpha", 1.0))),
    ACT["SELU"]: lambda ctx, x, a: ctx.add("Selu", [x]),
    ACT["ABS"]: lambda ctx, x, a: ctx.add("Abs", [x]),
    ACT["SOFTSIGN"]: lambda ctx, x, a: ctx.add("Softsign", [x]),
    ACT["SOFTPLUS"]: lambda ctx, x, a: ctx.add("Softplus", [x]),
    ACT["SIGN"]: lambda ctx, x, a: ctx.add("Sign", [x]),
    ACT["HSWISH"]: lambda ctx, x, a: ctx.add("HardSwish", [x]),
    ACT["HSIGMOID"]: lambda ctx, x, a: ctx.add("HardSigmoid", [x], alpha=1 / 6, beta=0.5),
    ACT["SWISH"]: lambda ctx, x, a: ctx.add("Mul", [x, ctx.add("Sigmoid", [x])]),
    ACT["HARD_TANH"]: _hard_tanh,
    ACT["GELU"]: _gelu,
    ACT["FAST_GELU"]: lambda ctx, x, a: _gelu(ctx, x, {"approximate": True}),
}


def fused(ctx, node, name, layout, i=0):
    """Set the node's output i to `name` after its fused `activation_type`."""
    ctx.output(_act_unit(ctx, name, node.attrs.get("activation_type", 0)), layout, i)


@handler("Activation")
def activation(ctx, node):
    layout = ctx.layout_for([0])
    ctx.output(_act_unit(ctx, ctx.input(0, layout), node.attrs["activation_type"], node.attrs), layout)


def _weight_oihw(ctx, node, kernel):
    """Conv weight as ONNX expects it ([O, I/g, kh, kw]; deconv [I, O/g, kh, kw]).

    `.ms` weights are [O, kh, kw, I/g] whatever their format label (KHWC up to 1.3, NHWC later);
    only an explicit KCHW label or a shape that fits nothing else means [O, I/g, kh, kw].
    `kernel` is the validated kernel_size, or () when the node does not state it.
    """
    kernel = tuple(kernel)
    fmt = ctx.tensor(ctx.in_idx(1)).format
    w = ctx.const(1)
    if w is None:
        name = ctx.input(1)
        return name if fmt == 5 else ctx.add("Transpose", [name], perm=list(TO_NCHW))
    if w.ndim != 4:
        raise NotTranslatable(f"weight of rank {w.ndim}")
    if 0 in w.shape:
        raise ctx.malformed(f"weight of shape {list(w.shape)} is empty")
    fits_khwc, fits_kchw = w.shape[1:3] == kernel, w.shape[2:4] == kernel
    if len(kernel) != 2:
        fits_khwc, fits_kchw = fmt != 5, fmt == 5
    if not (fits_khwc or fits_kchw):
        raise NotTranslatable(f"weight dims {w.shape} do not match kernel_size {kernel}")
    khwc = fits_khwc and not (fits_kchw and fmt == 5)
    return ctx.init(w.transpose(TO_NCHW) if khwc else w, "w")


def _conv_pads(ctx, attrs, in_hw=None, kernel=None, stride=None, dilation=None):
    """ONNX padding attributes. SAME is made explicit (Lite puts the odd pixel at the end) when
    the input size is known, since onnxruntime refuses auto_pad together with dilation.
    Explicit pads are validated against the input size (checks.pads)."""
    mode = attrs.get("pad_mode", 0)
    if mode == 1:
        if not in_hw or any(d is None or d <= 0 for d in in_hw):
            return {"auto_pad": "SAME_UPPER"}
        pads = []
        for size, k, s, d in zip(in_hw, kernel, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return {"pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]}
    if mode == 2:
        return {"auto_pad": "VALID"}
    pads = list(attrs.get("pad_list") or ()) or list(attrs.get("pad") or ()) or [0, 0, 0, 0]
    if len(pads) != 4:
        raise NotTranslatable(f"pad_list {pads} is not [top, bottom, left, right]")
    h, w = in_hw if in_hw else (None, None)
    top, bottom, left, right = checks.pads(ctx, checks.int_list(ctx, pads, "pad_list"),
                                           [h, h, w, w], "pad_list [top, bottom, left, right]")
    return {"pads": [top, left, bottom, right]}


def _padded_hw(in_hw, pads):
    """(h, w) after explicit pads; None when unknown or auto_pad."""
    if not in_hw or any(d is None or d <= 0 for d in in_hw) or "pads" not in pads:
        return None
    p = pads["pads"]
    return in_hw[0] + p[0] + p[2], in_hw[1] + p[1] + p[3]


def _in_hw(ctx, layout):
    dims = ctx.dims(ctx.in_idx(0))
    if len(dims) != 4:
        return None
    return dims[1:3] if layout == "nchw" else dims[2:4]


def _spatial(ctx, attrs, key, default=(1, 1)):
    """A [h, w] attribute (kernel_size, stride, dilation): every entry in [1, MAX_WINDOW]."""
    values = tuple(checks.int_list(ctx, attrs.get(key) or default, key))
    if len(values) == 4:     # some converters write [1, h, w, 1]
        values = values[1:3]
    if len(values) != 2:
        raise NotTranslatable(f"{key} {values} is not [h, w]")
    return checks.window(ctx, values, key)


def _check_window(ctx, in_hw, pads, kernel, dilation, fit=True):
    """The padded input stays within MAX_ELEMENTS and (fit) the dilated window fits in it, where
    the input size is known. Pools rounding up (ceil) may legally overhang, so they pass fit=False."""
    padded = _padded_hw(in_hw, pads)
    if padded is None:
        return
    dims = ctx.input_dims(0)
    if dims is not None and len(dims) == 4:
        channels = math.prod(dims[1:]) // (in_hw[0] * in_hw[1])     # whichever layout
        checks.elements(ctx, [dims[0], *padded, channels], "padded input")
    for size, k, d, axis in zip(padded, kernel, dilation, "hw") if fit else ():
        extent = (k - 1) * d + 1
        if extent > size:
            raise ctx.malformed(f"window of extent {extent} (kernel {k}, dilation {d}) is larger "
                                f"than the padded input {axis} {size}")


def _group(ctx, node):
    """group (0 read as 1): at most the weight's first dimension, else MAX_GROUP."""
    group = max(checks.as_int(ctx, node.attrs.get("group", 1), "group"), 1)
    w = ctx.const(1)
    bound = int(w.shape[0]) if w is not None and w.ndim == 4 else MAX_GROUP
    if group > max(bound, 1):
        raise ctx.malformed(f"group {group} exceeds {bound}")
    return group


MAX_GROUP = checks.MAX_WINDOW * 16


def _conv_operands(ctx, node, layout):
    """x, weight (OIHW) and optional bias, plus kernel/stride/dilation, shared by conv and deconv."""
    a = node.attrs
    if ctx.n_inputs() < 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s), needs data and weight")
    k = _spatial(ctx, a, "kernel_size")
    inputs = [ctx.input(0, layout), _weight_oihw(ctx, node, k if a.get("kernel_size") else ())]
    if ctx.n_inputs() > 2:
        inputs.append(ctx.input(2))
    return inputs, k, _spatial(ctx, a, "stride"), _spatial(ctx, a, "dilation")


@handler("Conv2DFusion")
def conv2d(ctx, node):
    a = node.attrs
    layout = image_layout(ctx, node)
    inputs, k, s, d = _conv_operands(ctx, node, layout)
    in_hw = _in_hw(ctx, layout)
    pads = _conv_pads(ctx, a, in_hw, k, s, d)
    _check_window(ctx, in_hw, pads, k, d)
    y = ctx.add("Conv", inputs, kernel_shape=k, strides=s, dilations=d,
                group=_group(ctx, node), **pads)
    fused(ctx, node, y, layout)


def _deconv_pads(ctx, a, in_hw, kernel, stride, dilation):
    """Lite's deconv SAME: output = input * stride, the odd padding pixel at the end."""
    if a.get("pad_mode", 0) != 1 or not in_hw or any(d is None or d <= 0 for d in in_hw):
        return _conv_pads(ctx, a, in_hw)
    totals = [max((i - 1) * s + (k - 1) * d + 1 - i * s, 0)
              for i, k, s, d in zip(in_hw, kernel, stride, dilation)]
    return {"pads": [totals[0] // 2, totals[1] // 2, totals[0] - totals[0] // 2,
                     totals[1] - totals[1] // 2]}


@handler("Conv2dTransposeFusion")
def conv2d_transpose(ctx, node):
    a = node.attrs
    layout = image_layout(ctx, node)
    inputs, k, s, d = _conv_operands(ctx, node, layout)
    in_hw = _in_hw(ctx, layout)
    extra = _deconv_pads(ctx, a, in_hw, k, s, d)
    out_pad = checks.int_list(ctx, a.get("output_paddings") or (), "output_paddings")
    if any(out_pad):
        out_pad = out_pad[-2:]
        for v, si, di in zip(out_pad, s, d):
            if not 0 <= v < max(si, di):
                raise ctx.malformed(f"output_paddings {out_pad}: {v} is not in [0, stride or "
                                    f"dilation) = [0, {max(si, di)})")
        extra["output_padding"] = out_pad
    dims = ctx.input_dims(0)
    if dims is not None and len(dims) == 4 and in_hw:
        w = ctx.const(1)
        out_c = int(w.shape[3] if w is not None and w.ndim == 4 else 1) * _group(ctx, node)
        out_hw = [(i - 1) * si + (ki - 1) * di + 1 for i, ki, si, di in zip(in_hw, k, s, d)]
        checks.elements(ctx, [dims[0]] + out_hw + [out_c], "output")
    y = ctx.add("ConvTranspose", inputs, kernel_shape=k, strides=s, dilations=d,
                group=_group(ctx, node), **extra)
    fused(ctx, node, y, layout)


def _pool(onnx_op, global_op):
    def translate(ctx, node):
        a = node.attrs
        layout = image_layout(ctx, node)
        x = ctx.input(0, layout)
        if a.get("global"):
            y = ctx.add(global_op, [x])
        else:
            k, s = _spatial(ctx, a, "kernel_size"), _spatial(ctx, a, "strides")
            in_hw = _in_hw(ctx, layout)
            pads = _conv_pads(ctx, {"pad_mode": a.get("pad_mode", 0), "pad_list": a.get("pad")},
                              in_hw, k, s, (1, 1))
            _check_window(ctx, in_hw, pads, k, (1, 1), fit=a.get("round_mode", 0) != 1)
            extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
            y = ctx.add(onnx_op, [x], kernel_shape=k, strides=s,
                        ceil_mode=int(a.get("round_mode", 0) == 1), **pads, **extra)
        fused(ctx, node, y, layout)
    return translate


handler("MaxPoolFusion")(_pool("MaxPool", "GlobalMaxPool"))
handler("AvgPoolFusion")(_pool("AveragePool", "GlobalAveragePool"))


@handler("FullConnection")
def full_connection(ctx, node):
    a = node.attrs
    if ctx.n_inputs() < 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s), needs data and weight")
    w = ctx.const(1)
    if w is not None and 0 in w.shape:
        raise ctx.malformed(f"weight of shape {list(w.shape)} is empty")
    k = w.shape[1] if w is not None and w.ndim == 2 else None
    dims = ctx.dims(ctx.in_idx(0))
    x = ctx.input(0)
    lead = None
    if a.get("use_axis"):
        axis = checks.as_int(ctx, a.get("axis", 1), "axis")
        if not -len(dims) <= axis <= len(dims):
            raise ctx.malformed(f"axis {axis} is out of range for a tensor of rank {len(dims)}")
        axis = axis + len(dims) if axis < 0 else axis
        x = ctx.add("Flatten", [x], axis=axis)
        lead = list(dims[:axis]) if dims and all(d > 0 for d in dims[:axis]) else None
    else:
        if not k and not dims:
            raise ctx.malformed("input of unknown rank and a weight that is not a 2-D constant")
        x = ctx.add("Reshape", [x, ctx.ints([-1, k if k else dims[-1]])])
    inputs = [x, ctx.input(1)]
    if ctx.n_inputs() > 2 and (a.get("has_bias") or ctx.n_inputs() > 2):
        inputs.append(ctx.input(2))
    y = ctx.add("Gemm", inputs, transB=1)
    if lead is not None and len(lead) != 1:
        y = ctx.add("Reshape", [y, ctx.ints(lead + [-1])])
    fused(ctx, node, y, "logical")


@handler("MatMulFusion")
def matmul(ctx, node):
    a = node.attrs
    if ctx.n_inputs() < 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s), needs two")
    ta, tb = bool(a.get("transpose_a")), bool(a.get("transpose_b"))
    ra, rb = ctx.rank(ctx.in_idx(0)), ctx.rank(ctx.in_idx(1))
    for flag, rank, side in ((ta, ra, "a"), (tb, rb, "b")):
        if flag and rank < 2:
            raise ctx.malformed(f"transpose_{side} on an operand of rank {rank}")
    has_bias = ctx.n_inputs() > 2
    if ra == 2 and rb == 2:
        inputs = [ctx.input(0), ctx.input(1)] + ([ctx.input(2)] if has_bias else [])
        y = ctx.add("Gemm", inputs, transA=int(ta), transB=int(tb))
    else:
        xa, xb = ctx.input(0), ctx.input(1)
        if ta:
            xa = ctx.add("Transpose", [xa], perm=list(range(ra - 2)) + [ra - 1, ra - 2])
        if tb:
            xb = ctx.add("Transpose", [xb], perm=list(range(rb - 2)) + [rb - 1, rb - 2])
        y = ctx.add("MatMul", [xa, xb])
        if has_bias:
            y = ctx.add("Add", [y, ctx.input(2)])
    fused(ctx, node, y, "logical")
