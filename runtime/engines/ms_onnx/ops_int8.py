"""Handlers for fully quantized nodes (int8 activations) and the QuantDTypeCast nodes around them.

A node whose quantType is QUANT_ALL (or the older AwareTraining/PostTraining) and whose activations
are int8 is translated by its entry in INT8_HANDLERS, never by the float handler of the same op type:
the float handler would read the int8 bytes as numbers. An int8 node whose op has no entry here is
refused by name (driver.unsupported_nodes), not run in float.

Which ops the official 2.0 converter makes int8 for the CPU: Conv2DFusion (depthwise included),
MatMulFusion and the layout Transpose. Data-movement ops (Reshape, Flatten, MaxPool) are accepted in
int8 too when input and output share one QuantParam, since they then need no arithmetic; anything
else that would need a requantization is NotTranslatable rather than approximated.
"""
import numpy as np

from ...registry import registrar
from . import int8
from .base import HANDLERS, NotTranslatable, handler, image_layout
from .ops_nn import _check_window, _conv_pads, _group, _in_hw, _spatial

INT8_HANDLERS = {}                              # .ms op type -> fn(ctx, node) for int8 nodes
int8_handler = registrar(INT8_HANDLERS, "int8 .ms op handler")

_CAST_INT = (32, 37)          # int8, uint8 TypeIds (a uint8 tensor travels as itself)


@handler("QuantDTypeCast")
def quant_dtype_cast(ctx, node):
    """float32 <-> int8/uint8 with the one QuantParam of the integer side (its output going to int8,
    its input coming from int8), rounding like nnacl in "exact" mode."""
    from . import checks
    src = checks.as_int(ctx, node.attrs.get("src_t", 0), "src_t")
    dst = checks.as_int(ctx, node.attrs.get("dst_t", 0), "dst_t")
    if not node.inputs or not node.outputs:
        raise ctx.malformed("needs one input and one output")
    if {src, dst} not in ({32, 43}, {37, 43}):
        raise NotTranslatable(f"QuantDTypeCast {src}->{dst}")
    to_float = src in _CAST_INT
    int_side = node.inputs[0] if to_float else node.outputs[0]
    scale, zp = int8.activation_quant(ctx, int_side)
    layout = ctx.layout_for([0])
    x = ctx.input(0, layout)
    if to_float:
        y = int8.dequantize(ctx, x, scale, zp)
    elif ctx.int8_mode == "exact":
        y = int8.quantize_exact(ctx, x, scale, zp)
    else:
        y = int8.quantize_fast(ctx, x, scale, zp)
    ctx.output(y, layout)


def _clamp(ctx, node, s_out, zp_out):
    bounds = int8.clamp_range(node.attrs.get("activation_type", 0), zp_out, s_out)
    if bounds is None:
        raise NotTranslatable(f"fused activation {node.attrs.get('activation_type')} in int8")
    return bounds


def _integer_product(ctx, node, x, w_onnx, s_w, bias, rank, attrs, conv=True):
    """The int8 node's uint8 output from uint8 input x, ONNX-layout int8 weights w_onnx (channels
    first for conv, [K, out] for matmul), per-channel weight scales and the int32 bias."""
    s_x, zp_x = int8.activation_quant(ctx, node.inputs[0])
    s_out, zp_out = int8.activation_quant(ctx, node.outputs[0])
    lo, hi = _clamp(ctx, node, s_out, zp_out)
    zx = ctx.init(np.uint8(zp_x + int8.SHIFT), "zp")
    if ctx.int8_mode == "exact":
        acc = _accumulator(ctx, x, zp_x, w_onnx, bias, rank, attrs, conv)
        return int8.requantize_exact(ctx, acc, s_x, s_w, s_out, zp_out, lo, hi, rank, 1)
    y = ctx.add("QLinearConv", [x, ctx.init(np.float32(s_x), "s"), zx, ctx.init(w_onnx, "w"),
                                ctx.init(np.asarray(s_w, np.float32), "sw"),
                                ctx.init(np.zeros(len(s_w), np.int8), "zw"),
                                ctx.init(np.float32(s_out), "s"),
                                ctx.init(np.uint8(zp_out + int8.SHIFT), "zp"),
                                ctx.init(bias.astype(np.int32), "b")], **attrs)
    if (lo, hi) != (-128, 127):       # a fused ReLU at zero point -128 is the uint8 floor already
        y = ctx.add("Clip", [y, ctx.init(np.uint8(lo + int8.SHIFT), "lo"),
                             ctx.init(np.uint8(hi + int8.SHIFT), "hi")])
    return y


EXACT_FLOAT_LIMIT = 1 << 24          # integers below this add exactly in float32


def _accumulator(ctx, x, zp_x, w_onnx, bias, rank, attrs, conv):
    """The exact integer accumulator sum (x_q - zp_x) w_q + b_q of "exact" mode. On onnxruntime's
    fp32 Conv/Gemm kernels (10x faster here than its ConvInteger) when no partial sum can reach 2^24,
    bounded from the weights (sum |w_c| x the largest |x_q - zp_x| + |b_c|): below that every partial
    sum of small integers is exact in float32, whatever the summation order. Else on ConvInteger /
    MatMulInteger in int32."""
    zp_u = zp_x + int8.SHIFT
    w = w_onnx.astype(np.int64)
    per_out = np.abs(w).sum(axis=tuple(range(1, w.ndim))) if conv else np.abs(w).sum(axis=0)
    bound = per_out * max(zp_u, 255 - zp_u) + np.abs(bias.astype(np.int64))
    if bound.max(initial=0) < EXACT_FLOAT_LIMIT:
        xf = ctx.add("Sub", [ctx.add("Cast", [x], to=1), ctx.init(np.float32(zp_u), "zp")])
        wf, bf = ctx.init(w_onnx.astype(np.float32), "w"), ctx.init(bias.astype(np.float32), "b")
        if conv:
            return ctx.add("Conv", [xf, wf, bf], **attrs)
        return ctx.add("Gemm", [xf, wf, bf])
    op = "ConvInteger" if conv else "MatMulInteger"
    acc = ctx.add(op, [x, ctx.init(w_onnx, "w"), ctx.init(np.uint8(zp_u), "zp")], **attrs)
    return ctx.add("Add", [acc, ctx.init(int8.channel_column(bias, np.int32, rank, 1), "b")])


@int8_handler("Conv2DFusion")
def conv2d_int8(ctx, node):
    a = node.attrs
    if ctx.n_inputs() < 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s), needs data and weight")
    layout = image_layout(ctx, node)
    w, s_w = int8.int8_weight(ctx, 1)
    k = _spatial(ctx, a, "kernel_size")
    if w.ndim != 4 or tuple(w.shape[1:3]) != tuple(k):
        raise NotTranslatable(f"int8 weight dims {list(w.shape)} are not [O, kh, kw, I] for kernel {k}")
    s, d = _spatial(ctx, a, "stride"), _spatial(ctx, a, "dilation")
    in_hw = _in_hw(ctx, layout)
    pads = _conv_pads(ctx, a, in_hw, k, s, d)
    _check_window(ctx, in_hw, pads, k, d)
    bias = int8.int32_bias(ctx, 2, w.shape[0])
    attrs = dict(kernel_shape=list(k), strides=list(s), dilations=list(d), group=_group(ctx, node), **pads)
    y = _integer_product(ctx, node, ctx.input(0, layout), np.ascontiguousarray(w.transpose(0, 3, 1, 2)),
                         s_w, bias, 4, attrs)
    ctx.output(y, layout)


@int8_handler("MatMulFusion", "FullConnection")
def matmul_int8(ctx, node):
    """[N, K] x weight -> [N, out]; the weight [out, K] (transpose_b, the converter's form) or [K, out]."""
    a = node.attrs
    if ctx.n_inputs() < 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s), needs two")
    if a.get("transpose_a") or ctx.known_rank(0) != 2:
        raise NotTranslatable("int8 matmul of an input that is not [N, K] (or transpose_a)")
    out_first = bool(a.get("transpose_b")) or node.op_type == "FullConnection"
    w, s_w = int8.int8_weight(ctx, 1, 0 if out_first else 1)
    if w.ndim != 2:
        raise NotTranslatable(f"int8 matmul weight of rank {w.ndim}")
    wk = w if out_first else w.T                      # [out, K]
    bias = int8.int32_bias(ctx, 2, wk.shape[0])
    x = ctx.input(0)
    if ctx.int8_mode == "fast":      # as a 1x1 QLinearConv, which takes the bias and fuses it
        x4 = ctx.add("Unsqueeze", [x, ctx.ints([2, 3])])
        y = _integer_product(ctx, node, x4, np.ascontiguousarray(wk[:, :, None, None]), s_w, bias, 4,
                             {"kernel_shape": [1, 1]})
        y = ctx.add("Squeeze", [y, ctx.ints([2, 3])])
    else:
        y = _integer_product(ctx, node, x, np.ascontiguousarray(wk.T), s_w, bias, 2, {}, conv=False)
    ctx.output(y)


def _same_quant(ctx, node):
    """Data movement in int8 is exact only when input and output share one QuantParam."""
    if int8.activation_quant(ctx, node.inputs[0]) != int8.activation_quant(ctx, node.outputs[0]):
        raise NotTranslatable("int8 data movement between tensors of different quantParams "
                              "(would need a requantization)")
    if node.attrs.get("activation_type", 0) not in (0, 11):
        raise NotTranslatable("fused activation on an int8 data-movement op")


def _movement(op_type):
    def translate(ctx, node):
        _same_quant(ctx, node)
        HANDLERS[op_type](ctx, node)       # type-generic ONNX ops: the float handler's graph holds
    translate.__doc__ = f"int8 {op_type}: the float translation, on uint8 values (same QuantParam)."
    return translate


for _op in ("Transpose", "Reshape", "Flatten", "MaxPoolFusion", "Squeeze", "Unsqueeze"):
    int8_handler(_op)(_movement(_op))


def int8_nodes(model, nodes=None):
    """Names of the nodes that run on integer kernels when translated (what `toolkit inspect` lists)."""
    picked = model.nodes if nodes is None else [model.nodes[k] for k in nodes]
    return [n.name for n in picked if int8.is_full_quant_node(model, n) and n.op_type in INT8_HANDLERS]

