"""Integer arithmetic of fully quantized (`QUANT_ALL`) `.ms` nodes, as ONNX graph pieces.

A full-quant `.ms` holds int8 activations with one asymmetric QuantParam per tensor, int8 per-channel
weights (zero point 0) and int32 biases of scale s_x * s_w[c] (../shared/golden/ms-official/README.md).
In the translated graph every int8 tensor travels as **uint8, q + 128** with zero point zp + 128: the
same real values, and the type onnxruntime's fast u8s8 kernels take (with int8 activations
onnxruntime 1.32 is no faster than fp32 on these CPUs).

Two arithmetics, chosen per translation (runtime/engines/int8_modes.py says which to pick when):

  "exact"  the official runtime's: `acc = sum (x_q - zp_x) w_q + b_q` in integers (ConvInteger /
           MatMulInteger), then nnacl's MultiplyByQuantizedMultiplier: the real multiplier
           `(s_x * s_w[c]) / s_out` in float32, as a 31-bit fixed-point M and a shift; acc * M
           rounded to an integer first, then rounded again by the shift (half away from zero).
           Reproduces the official outputs of both golden files to float rounding.
  "fast"   onnxruntime's fused QLinearConv: the same accumulator, requantized once in float
           (round-half-even of acc * s_x * s_w / s_out). 1 LSB away from the official kernels on
           0.1-0.6 % of each layer's values; in a deep network that compounds (mnv2s_fq8: cosine
           0.995 with the official output), in exchange for the int8 speed-up.

Both are integer kernels end to end between the casts; fp32 appears only at QuantDTypeCast nodes.
"""
import math

import numpy as np

from ...errors import ModelFormatError
from ...msformat.model import TYPE_INT8, TYPE_UINT8
from ...msformat.precision import is_full_quant_node  # noqa: F401  (used by the driver and ops_int8)
from ...msformat.weights import decode
from ..int8_modes import DEFAULT_INT8_MODE, check_mode  # noqa: F401  (the driver uses both)

SHIFT = 128                         # int8 q  <->  uint8 q + 128


def is_int8(model, idx):
    t = model.tensors[idx]
    return t.data_type in (TYPE_INT8, TYPE_UINT8) and not t.is_const


def _bad(ctx, idx, problem):
    t = ctx.tensor(idx)
    return ModelFormatError(ctx.source, problem, element=f"tensor {idx} ({t.name!r})")


def _valid_scales(ctx, idx, scales):
    scales = np.asarray(scales, np.float64)
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        k = int(np.flatnonzero(~(np.isfinite(scales) & (scales > 0)))[0])
        raise _bad(ctx, idx, f"quantParams[{k}].scale is {scales[k]!r}; a scale must be finite "
                             "and positive")
    return scales


def activation_quant(ctx, idx):
    """(scale, zero point as int8) of an activation tensor: exactly one QuantParam, 8 bits."""
    t = ctx.tensor(idx)
    if len(t.quant_params) != 1:
        raise _bad(ctx, idx, f"an int8 activation needs exactly 1 quantParam, it has "
                             f"{len(t.quant_params)}")
    q = t.quant_params[0]
    if q.num_bits != 8:
        raise _bad(ctx, idx, f"an int8 activation has numBits {q.num_bits}, not 8")
    scale = float(_valid_scales(ctx, idx, [q.scale])[0])
    zp = q.zero_point if t.data_type == TYPE_INT8 else q.zero_point - SHIFT
    if not -128 <= zp <= 127:
        raise _bad(ctx, idx, f"zeroPoint {q.zero_point} is outside the int8 range")
    return scale, int(zp)


def int8_weight(ctx, i, channels_axis=0):
    """(int8 array as stored, per-channel scales) of the node's i-th input, a constant int8 weight
    with one symmetric QuantParam per output channel (or one for the tensor)."""
    idx = ctx.in_idx(i)
    t = ctx.tensor(idx)
    if not t.is_const or t.data_type != TYPE_INT8:
        raise _bad(ctx, idx, "the weight of an int8 node must be a constant int8 tensor")
    w = decode(t)
    n = len(t.quant_params)
    if n not in (1, w.shape[channels_axis] if w.ndim else 1):
        raise _bad(ctx, idx, f"{n} quantParams for a weight of {w.shape[channels_axis]} channels "
                             f"(dims {list(t.dims)})")
    if any(q.zero_point != 0 for q in t.quant_params):
        raise _bad(ctx, idx, "int8 weights must be symmetric (zeroPoint 0) for the integer kernels")
    scales = _valid_scales(ctx, idx, [q.scale for q in t.quant_params])
    return w, np.broadcast_to(scales, (w.shape[channels_axis],)).copy()


def int32_bias(ctx, i, channels):
    """The int32 bias of an int8 node (scale s_x * s_w[c] implied), or zeros when absent."""
    idx = ctx.in_idx(i)
    if idx is None:
        return np.zeros(channels, np.int32)
    t = ctx.tensor(idx)
    if not t.is_const:
        raise _bad(ctx, idx, "the bias of an int8 node must be a constant")
    b = decode(t).reshape(-1)
    if b.dtype != np.int32:
        raise _bad(ctx, idx, f"the bias of an int8 node must be int32, not {b.dtype}")
    if b.size != channels:
        raise _bad(ctx, idx, f"bias of {b.size} values for {channels} output channels")
    return b.astype(np.int32)


def fixed_point(real):
    """nnacl's QuantizeMultiplier per channel: real = M * 2^shift / 2^31 with M in [2^30, 2^31)."""
    q, shift = np.frexp(np.asarray(real, np.float64))
    m = np.round(q * (1 << 31)).astype(np.int64)
    carry = m == (1 << 31)
    m = np.where(carry, m // 2, m)
    return m, shift + carry


def requant_constants(s_x, s_w, s_out):
    """Per channel: (first multiplier M * 2^left / 2^31, 2^-right, the second rounding's nudge)."""
    f = np.float32
    real = (f(s_x) * np.asarray(s_w, f) / f(s_out)).astype(np.float64)
    m, shift = fixed_point(real)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    first = m * np.exp2(left.astype(np.float64) - 31)
    # half away from zero on a multiple of 2^-right: Round(v + sign(v) 2^-(right+1)) is that, and
    # moves no other value across a rounding boundary; with right = 0 there is no second rounding.
    nudge = np.where(right > 0, np.exp2(-(right + 1.0)), 0.0)
    return first, np.exp2(-right.astype(np.float64)), nudge


def clamp_range(act, zp_out, s_out):
    """[lo, hi] of the int8 output: fused ReLU/ReLU6 clamp at the zero point (and 6.0) like nnacl."""
    from ...msformat.schema import ACT
    lo, hi = -128, 127
    if act in (ACT["RELU"], ACT["RELU6"]):
        lo = max(zp_out, -128)
    if act == ACT["RELU6"]:
        hi = min(127, zp_out + int(math.floor(6.0 / s_out + 0.5)))
    elif act not in (ACT["NO_ACTIVATION"], ACT["LINEAR"], ACT["RELU"]):
        return None
    return lo, hi


def channel_column(values, dtype, rank, axis):
    shape = [1] * rank
    shape[axis] = -1
    return np.asarray(values, dtype).reshape(shape)


def requantize_exact(ctx, acc, s_x, s_w, s_out, zp_out, lo, hi, rank, axis):
    """int32 accumulator (bias included) -> uint8 output, the official fixed-point way."""
    first, pot, nudge = requant_constants(s_x, s_w, s_out)
    col = lambda v: ctx.init(channel_column(v, np.float64, rank, axis), "rq")   # noqa: E731
    y1 = ctx.add("Round", [ctx.add("Mul", [ctx.add("Cast", [acc], to=11), col(first)])])
    v = ctx.add("Mul", [y1, col(pot)])
    if lo == zp_out:
        # everything below the zero point is clamped (fused ReLU): only v >= 0 matters, where half
        # away from zero is floor(v + 1/2), and the zero point folds into the same addition
        y = ctx.add("Floor", [ctx.add("Add", [v, ctx.init(np.float64(zp_out + SHIFT + 0.5), "zp")])])
    else:
        y = ctx.add("Round", [ctx.add("Add", [v, ctx.add("Mul", [ctx.add("Sign", [y1]), col(nudge)])])])
        y = ctx.add("Add", [y, ctx.init(np.float64(zp_out + SHIFT), "zp")])
    y = ctx.add("Clip", [y, ctx.init(np.float64(lo + SHIFT), "lo"), ctx.init(np.float64(hi + SHIFT), "hi")])
    return ctx.add("Cast", [y], to=2)


def quantize_exact(ctx, x, scale, zp):
    """float32 -> uint8 like nnacl's DoQuantizeFp32ToInt8 as the official x86 build runs it:
    round_half_away(x * (1/s) + zp) with 1/s in float32 and the multiply-add fused (one rounding to
    float32, as an FMA does), then clamped. Matched on every cast of the dumped official kernels; a
    plain x / s in double or float32 lands on the other side of a tie on ~1 in 2000 values.
    The product of two float32 is exact in double, so is adding zp: one Cast to float32 is the FMA."""
    inv = np.float64(np.float32(1.0) / np.float32(scale))
    wide = ctx.add("Add", [ctx.add("Mul", [ctx.add("Cast", [x], to=11), ctx.init(inv, "inv")]),
                           ctx.init(np.float64(zp), "zp")])
    v = ctx.add("Cast", [wide], to=1)
    r = ctx.add("Mul", [ctx.add("Sign", [v]),
                        ctx.add("Floor", [ctx.add("Add", [ctx.add("Abs", [v]), ctx.init(np.float32(0.5))])])])
    r = ctx.add("Clip", [ctx.add("Add", [r, ctx.init(np.float32(SHIFT), "shift")]),
                         ctx.init(np.float32(0.0), "lo"), ctx.init(np.float32(255.0), "hi")])
    return ctx.add("Cast", [r], to=2)


def quantize_fast(ctx, x, scale, zp):
    return ctx.add("QuantizeLinear", [x, ctx.init(np.float32(scale), "s"),
                                      ctx.init(np.uint8(zp + SHIFT), "zp")])


def dequantize(ctx, u, scale, zp):
    """uint8 (q + 128) -> float32 (q - zp) * s, the official int8-to-float cast."""
    return ctx.add("DequantizeLinear", [u, ctx.init(np.float32(scale), "s"),
                                        ctx.init(np.uint8(zp + SHIFT), "zp")])
