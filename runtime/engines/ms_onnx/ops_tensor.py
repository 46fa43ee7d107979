"""Handlers for element-wise, shape and reduction ops.

Element-wise ops, Concat, Pad, Softmax and Reduce keep the "nchw" layout of their inputs (axes are
remapped) so that no transpose is needed between convolutions; shape ops work on the logical layout.
"""
import math

import numpy as np
import onnx

from ...msformat.model import TYPEID_TO_NUMPY
from ...msformat.schema import REDUCE_MODES
from . import checks
from .base import NP_TO_ONNX, TO_NCHW, TO_NHWC, NotTranslatable, handler
from .ops_nn import fused

_INT_MAX = np.iinfo(np.int64).max


def _axis_in(ctx, layout, axis, rank):
    """A validated logical axis, as the axis of the ONNX tensor in `layout`."""
    axis = checks.axis(ctx, axis, rank)
    return TO_NCHW.index(axis) if layout == "nchw" else axis


def _binary(onnx_op):
    def translate(ctx, node):
        if ctx.n_inputs() != 2:
            raise NotTranslatable(f"expects 2 inputs, has {ctx.n_inputs()}")
        layout = ctx.layout_for([0, 1])
        y = ctx.add(onnx_op, [ctx.operand(0, layout), ctx.operand(1, layout)])
        fused(ctx, node, y, layout)
    return translate


for _op, _onnx in {"AddFusion": "Add", "SubFusion": "Sub", "MulFusion": "Mul", "DivFusion": "Div",
                   "RealDiv": "Div", "Maximum": "Max", "Minimum": "Min", "Equal": "Equal",
                   "Less": "Less", "Greater": "Greater"}.items():
    handler(_op)(_binary(_onnx))


@handler("SquaredDifference")
def squared_difference(ctx, node):
    layout = ctx.layout_for([0, 1])
    d = ctx.add("Sub", [ctx.operand(0, layout), ctx.operand(1, layout)])
    ctx.output(ctx.add("Mul", [d, d]), layout)


@handler("FloorDiv")
def floor_div(ctx, node):
    layout = ctx.layout_for([0, 1])
    ctx.output(ctx.add("Floor", [ctx.add("Div", [ctx.operand(0, layout), ctx.operand(1, layout)])]),
               layout)


@handler("Eltwise")
def eltwise(ctx, node):
    mode = node.attrs.get("mode", 0)
    op = {0: "Mul", 1: "Sum", 2: "Max"}.get(mode)
    if op is None:
        raise NotTranslatable(f"Eltwise mode {mode}")
    inputs = list(range(ctx.n_inputs()))
    layout = ctx.layout_for(inputs)
    names = [ctx.operand(i, layout) for i in inputs]
    y = names[0]
    if op == "Mul":
        for other in names[1:]:
            y = ctx.add("Mul", [y, other])
    else:
        y = ctx.add(op, names)
    ctx.output(y, layout)


@handler("BiasAdd")
def bias_add(ctx, node):
    layout = ctx.layout_for([0])
    ctx.output(ctx.add("Add", [ctx.input(0, layout), ctx.operand(1, layout)]), layout)


@handler("ScaleFusion")
def scale(ctx, node):
    if ctx.n_inputs() < 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s), needs data and scale")
    rank = ctx.rank(ctx.in_idx(0))
    axis = checks.axis(ctx, node.attrs.get("axis", -1), max(rank, 1))
    layout = ctx.layout_for([0])
    x = ctx.input(0, layout)
    operands = []
    for i in range(1, ctx.n_inputs()):
        value = ctx.const(i)
        if value is None:
            raise NotTranslatable("scale and offset must be constants")
        value = value.reshape(value.shape + (1,) * max(rank - axis - value.ndim, 0))
        if value.ndim > max(rank, 1):
            raise ctx.malformed(f"{'scale' if i == 1 else 'offset'} of shape {list(value.shape)} "
                                f"does not fit an input of rank {rank} from axis {axis}")
        if layout == "nchw":
            value = value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(TO_NCHW)
        operands.append(ctx.init(np.ascontiguousarray(value, dtype=np.float32), "s"))
    y = ctx.add("Mul", [x, operands[0]])
    if len(operands) > 1:
        y = ctx.add("Add", [y, operands[1]])
    fused(ctx, node, y, layout)


_UNARY = {"Abs": "Abs", "Neg": "Neg", "Sqrt": "Sqrt", "Log": "Log",
          "Floor": "Floor", "Ceil": "Ceil", "Round": "Round", "Sin": "Sin", "Cos": "Cos",
          "Reciprocal": "Reciprocal", "Erf": "Erf", "LogicalNot": "Not"}


def _unary(onnx_op):
    def translate(ctx, node):
        layout = ctx.layout_for([0])
        ctx.output(ctx.add(onnx_op, [ctx.input(0, layout)]), layout)
    return translate


for _op, _onnx in _UNARY.items():
    handler(_op)(_unary(_onnx))


@handler("ExpFusion")
def exp(ctx, node):
    a = node.attrs
    if a.get("base", -1) != -1 or a.get("scale", 1) != 1 or a.get("shift", 0) != 0:
        raise NotTranslatable("ExpFusion with base/scale/shift")
    layout = ctx.layout_for([0])
    ctx.output(ctx.add("Exp", [ctx.input(0, layout)]), layout)


@handler("Square")
def square(ctx, node):
    layout = ctx.layout_for([0])
    x = ctx.input(0, layout)
    ctx.output(ctx.add("Mul", [x, x]), layout)


@handler("Rsqrt")
def rsqrt(ctx, node):
    layout = ctx.layout_for([0])
    ctx.output(ctx.add("Reciprocal", [ctx.add("Sqrt", [ctx.input(0, layout)])]), layout)


@handler("Clip")
def clip(ctx, node):
    layout = ctx.layout_for([0])
    lo = ctx.const(1) if ctx.n_inputs() > 1 else np.float32(node.attrs.get("min", 0.0))
    hi = ctx.const(2) if ctx.n_inputs() > 2 else np.float32(node.attrs.get("max", 0.0))
    if lo is None or hi is None:
        raise NotTranslatable("min/max must be constants")
    lo, hi = np.float32(checks.scalar(ctx, lo, "min")), np.float32(checks.scalar(ctx, hi, "max"))
    ctx.output(ctx.add("Clip", [ctx.input(0, layout), ctx.init(lo), ctx.init(hi)]), layout)


@handler("PowFusion")
def power(ctx, node):
    a = node.attrs
    layout = ctx.layout_for([0, 1])
    x = ctx.input(0, layout)
    if a.get("scale", 1) != 1 or a.get("shift", 0) != 0:
        x = ctx.add("Add", [ctx.add("Mul", [x, ctx.init(np.float32(a.get("scale", 1)))]),
                            ctx.init(np.float32(a.get("shift", 0)))])
    ctx.output(ctx.add("Pow", [x, ctx.operand(1, layout)]), layout)


@handler("PReLUFusion")
def prelu(ctx, node):
    layout = ctx.layout_for([0])
    slope = ctx.need_const(1, "slope").astype(np.float32)
    rank = ctx.rank(ctx.in_idx(0))
    if slope.size > 1:   # channel-last slopes in the logical layout
        slope = slope.reshape((1,) * (rank - 1) + (-1,))
        if layout == "nchw":
            slope = slope.transpose(TO_NCHW)
    ctx.output(ctx.add("PRelu", [ctx.input(0, layout), ctx.init(slope)]), layout)


@handler("Concat")
def concat(ctx, node):
    inputs = list(range(ctx.n_inputs()))
    layout = ctx.layout_for(inputs)
    rank = max(ctx.rank(ctx.in_idx(i)) for i in inputs)
    axis = _axis_in(ctx, layout, node.attrs.get("axis", 0), rank)
    ctx.output(ctx.add("Concat", [ctx.operand(i, layout) for i in inputs], axis=axis), layout)


@handler("Stack")
def stack(ctx, node):
    rank = ctx.rank(ctx.in_idx(0)) + 1
    axis = checks.axis(ctx, node.attrs.get("axis", 0), rank)
    parts = [ctx.add("Unsqueeze", [ctx.input(i), ctx.ints([axis])]) for i in range(ctx.n_inputs())]
    ctx.output(parts[0] if len(parts) == 1 else ctx.add("Concat", parts, axis=axis))


@handler("Split")
def split(ctx, node):
    a = node.attrs
    n = len(node.outputs)
    rank = ctx.rank(ctx.in_idx(0))
    axis = checks.axis(ctx, a.get("axis", 0), rank)
    sizes = checks.int_list(ctx, a.get("size_splits") or (), "size_splits")
    if not sizes and ctx.n_inputs() > 1:         # the ONNX parser passes the sizes as input 1
        sizes = checks.const_ints(ctx, 1, "split sizes")
    if sizes and (len(sizes) != n or any(s < -1 for s in sizes) or sizes.count(-1) > 1):
        raise ctx.malformed(f"size_splits {sizes} is not {n} sizes (at most one -1) for {n} outputs")
    dims = ctx.dims(ctx.in_idx(0))
    if sizes and -1 in sizes and dims and dims[axis] > 0:
        sizes[sizes.index(-1)] = dims[axis] - (sum(sizes) + 1)
    if sizes and dims and dims[axis] >= 0 and (sum(sizes) != dims[axis] or min(sizes) < 0):
        raise ctx.malformed(f"size_splits {sizes} do not split axis {axis} of length {dims[axis]}")
    inputs = [ctx.input(0)] + ([ctx.ints(sizes)] if sizes else [])
    outs = ctx.add("Split", inputs, n_out=n, axis=axis)
    for i, name in enumerate([outs] if n == 1 else outs):
        ctx.output(name, "logical", i)


@handler("Crop")
def crop(ctx, node):
    """Crop input 0 to the shape of input 1 from `axis` on, starting at `offsets`."""
    rank = ctx.rank(ctx.in_idx(0))
    axis = checks.axis(ctx, node.attrs.get("axis", 0), rank)
    offsets = checks.int_list(ctx, node.attrs.get("offsets") or (0,), "offsets")
    if any(o < 0 for o in offsets):
        raise ctx.malformed(f"offsets {offsets} are negative")
    n = rank - axis
    if len(offsets) == 1:
        offsets = offsets * n
    if len(offsets) != n:
        raise NotTranslatable(f"{len(offsets)} offsets for {n} cropped axes")
    starts = ctx.ints(offsets)
    ends = ctx.add("Add", [ctx.add("Shape", [ctx.input(1)], start=axis), starts])
    y = ctx.add("Slice", [ctx.input(0), starts, ends, ctx.ints(list(range(axis, rank)))])
    ctx.output(y)


def _shape_input(ctx, node):
    if ctx.n_inputs() > 1:
        value = ctx.const(1)
        if value is None:
            return ctx.add("Cast", [ctx.input(1)], to=7)
        return ctx.ints(checks.shape(ctx, value.reshape(-1), "shape", allow_unknown=True))
    dims = ctx.dims(node.outputs[0])
    if not dims:
        raise NotTranslatable("no shape input and no declared output shape")
    return ctx.ints(checks.shape(ctx, dims, "declared output shape", allow_unknown=True))


def _check_reshape(ctx, target):
    """A constant target must hold the input's elements (0 copies an input dim, one -1 is
    inferred): a fixed target that includes the batch cannot take another batch."""
    dims = ctx.input_dims(0)
    if dims is None or target is None:
        return
    full = [dims[i] if d == 0 and i < len(dims) else d for i, d in enumerate(target)]
    known, total = math.prod(d for d in full if d != -1), math.prod(dims)
    if (-1 in full and (known == 0 or total % known)) or (-1 not in full and known != total):
        raise ctx.shape_conflict(f"Reshape to the fixed shape {list(target)} cannot take an "
                                 f"input of shape {list(dims)} ({total} elements)")


@handler("Reshape")
def reshape(ctx, node):
    shape = _shape_input(ctx, node)
    proto = ctx.init_protos.get(shape)
    _check_reshape(ctx, None if proto is None else onnx.numpy_helper.to_array(proto).tolist())
    ctx.output(ctx.add("Reshape", [ctx.input(0), shape]))


@handler("Flatten")
def flatten(ctx, node):
    rank = ctx.rank(ctx.in_idx(0))
    axis = checks.as_int(ctx, node.attrs.get("axis", 1), "axis")
    if not -rank <= axis <= rank:
        raise ctx.malformed(f"axis {axis} is out of range [-{rank}, {rank}] for Flatten")
    ctx.output(ctx.add("Flatten", [ctx.input(0)], axis=axis))


@handler("Transpose")
def transpose(ctx, node):
    perm = checks.perm(ctx, checks.const_ints(ctx, 1, "perm"), ctx.known_rank(0))
    if perm == list(TO_NCHW) and ctx.has_nchw(0):
        ctx.output(ctx.input(0, "nchw"))           # the NHWC->NCHW transpose is already done
        return
    if perm == list(TO_NHWC) and "logical" in ctx.layouts(ctx.in_idx(0)):
        ctx.output(ctx.input(0), "nchw")            # NCHW->NHWC: the input is the result's nchw view
        return
    if perm == list(range(len(perm))):
        ctx.output(ctx.add("Identity", [ctx.input(0)]))
        return
    if ctx.has_nchw(0) and "logical" not in ctx.layouts(ctx.in_idx(0)) and len(perm) == 4:
        # compose with the pending NCHW->NHWC transpose instead of doing both
        ctx.output(ctx.add("Transpose", [ctx.input(0, "nchw")], perm=[TO_NHWC[p] for p in perm]))
        return
    ctx.output(ctx.add("Transpose", [ctx.input(0)], perm=perm))


def _axes(ctx, node, key="axis"):
    axes = node.attrs.get(key)
    if (axes is None or len(axes) == 0) and ctx.n_inputs() > 1:
        axes = ctx.need_const(1, "axes").reshape(-1)
    return checks.int_list(ctx, axes, key)


@handler("Squeeze")
def squeeze(ctx, node):
    axes = checks.axes(ctx, _axes(ctx, node), ctx.known_rank(0))
    inputs = [ctx.input(0)] + ([ctx.ints(axes)] if axes else [])
    ctx.output(ctx.add("Squeeze", inputs))


@handler("Unsqueeze", "ExpandDims")
def unsqueeze(ctx, node):
    axes = _axes(ctx, node)
    if not axes:
        raise NotTranslatable("no axis")
    rank = ctx.known_rank(0)
    axes = checks.axes(ctx, axes, None if rank is None else rank + len(axes))
    ctx.output(ctx.add("Unsqueeze", [ctx.input(0), ctx.ints(axes)]))


@handler("Gather")
def gather(ctx, node):
    axis = ctx.const(2)
    axis = checks.scalar(ctx, axis, "axis") if axis is not None else 0
    axis = checks.axis(ctx, axis, ctx.known_rank(0))
    indices = ctx.const(1)
    idx = ctx.ints(indices.astype(np.int64)) if indices is not None else ctx.input(1)
    ctx.output(ctx.add("Gather", [ctx.input(0), idx], axis=axis))


@handler("StridedSlice")
def strided_slice(ctx, node):
    a = node.attrs
    if a.get("ellipsis_mask") or a.get("new_axis_mask"):
        raise NotTranslatable("ellipsis_mask/new_axis_mask")
    begin, end = checks.const_ints(ctx, 1, "begin"), checks.const_ints(ctx, 2, "end")
    rank = ctx.known_rank(0)
    if ctx.n_inputs() > 4:       # ONNX Slice form: begin, end, axes, strides (the ONNX parser's)
        axes = checks.axes(ctx, checks.const_ints(ctx, 3, "axes"), rank)
        strides = checks.const_ints(ctx, 4, "strides")
    else:                        # TensorFlow form: begin, end[, strides] from axis 0 on
        axes = list(range(len(begin)))
        strides = checks.const_ints(ctx, 3, "strides") if ctx.n_inputs() > 3 else [1] * len(begin)
    if not (len(begin) == len(end) == len(strides) == len(axes)) or len(begin) > (rank or len(begin)):
        raise ctx.malformed(f"begin {begin}, end {end}, strides {strides}, axes {axes} differ in "
                            f"length or exceed the rank {rank}")
    if 0 in strides:
        raise ctx.malformed(f"strides {strides} hold a zero")
    shrink = []
    for i in range(len(begin)):
        neg = strides[i] < 0
        if a.get("begin_mask", 0) >> i & 1:
            begin[i] = _INT_MAX if neg else 0
        if a.get("end_mask", 0) >> i & 1:
            end[i] = -_INT_MAX if neg else _INT_MAX
        if a.get("shrink_axis_mask", 0) >> i & 1:
            end[i] = begin[i] + 1 if begin[i] != -1 else _INT_MAX
            strides[i] = 1
            shrink.append(axes[i])
    y = ctx.add("Slice", [ctx.input(0), ctx.ints(begin), ctx.ints(end), ctx.ints(axes),
                          ctx.ints(strides)])
    if shrink:
        y = ctx.add("Squeeze", [y, ctx.ints(sorted(shrink))])
    ctx.output(y)


@handler("SliceFusion")
def slice_fusion(ctx, node):
    begin, size = checks.const_ints(ctx, 1, "begin"), checks.const_ints(ctx, 2, "size")
    axes = checks.axes(ctx, node.attrs.get("axes") or range(len(begin)), ctx.known_rank(0))
    if not len(begin) == len(size) == len(axes):
        raise ctx.malformed(f"begin {begin}, size {size} and axes {axes} differ in length")
    if any(b < 0 for b in begin) or any(s < -1 for s in size):
        raise ctx.malformed(f"begin {begin} or size {size} is negative (size -1 means to the end)")
    end = [_INT_MAX if s == -1 else b + s for b, s in zip(begin, size)]
    ctx.output(ctx.add("Slice", [ctx.input(0), ctx.ints(begin), ctx.ints(end), ctx.ints(axes)]))


@handler("PadFusion")
def pad(ctx, node):
    a = node.attrs
    mode = {0: "constant", 1: "reflect"}.get(a.get("padding_mode", 0))
    if mode is None:
        raise NotTranslatable(f"padding_mode {a.get('padding_mode')} (SYMMETRIC has no ONNX twin)")
    pads = ctx.const(1) if ctx.n_inputs() > 1 else np.asarray(a.get("paddings") or (), np.int64)
    if pads is None:
        raise NotTranslatable("paddings must be a constant")
    pads = checks.int_list(ctx, np.asarray(pads).reshape(-1), "paddings")
    rank = ctx.known_rank(0) or len(pads) // 2
    if len(pads) != 2 * rank:
        raise ctx.malformed(f"paddings hold {len(pads)} values for a tensor of rank {rank} "
                            f"(expected {2 * rank}: before and after each axis)")
    dims = ctx.input_dims(0)
    sizes = [d for d in dims for _ in range(2)] if dims else [None] * len(pads)
    pads = np.asarray(checks.pads(ctx, pads, sizes, "paddings"), dtype=np.int64).reshape(-1, 2)
    if mode == "reflect" and dims and any(p >= d for d, pair in zip(dims, pads) for p in pair):
        raise ctx.malformed(f"reflect paddings {pads.tolist()} reach beyond the input {list(dims)}")
    if dims:
        checks.elements(ctx, [d + int(p.sum()) for d, p in zip(dims, pads)], "padded output")
    layout = ctx.layout_for([0])
    if layout == "nchw":
        if len(pads) != 4:
            layout = "logical"
        else:
            pads = pads[list(TO_NCHW)]
    fill = a.get("constant_value", 0.0)
    if ctx.n_inputs() > 2:       # the ONNX parser passes the constant as input 2
        fill = checks.scalar(ctx, ctx.need_const(2, "constant value"), "constant value")
    value = ctx.init(np.float32(fill))
    y = ctx.add("Pad", [ctx.input(0, layout), ctx.ints(list(pads[:, 0]) + list(pads[:, 1])), value],
                mode=mode)
    ctx.output(y, layout)


_REDUCE = {REDUCE_MODES["Mean"]: "ReduceMean", REDUCE_MODES["Max"]: "ReduceMax",
           REDUCE_MODES["Min"]: "ReduceMin", REDUCE_MODES["Prod"]: "ReduceProd",
           REDUCE_MODES["Sum"]: "ReduceSum", REDUCE_MODES["SumSquare"]: "ReduceSumSquare",
           REDUCE_MODES["ASum"]: "ReduceL1", REDUCE_MODES["L2"]: "ReduceL2"}


@handler("ReduceFusion")
def reduce(ctx, node):
    a = node.attrs
    op = _REDUCE.get(a.get("mode", 0))
    if op is None:
        raise NotTranslatable(f"reduce mode {a.get('mode')}")
    rank = ctx.rank(ctx.in_idx(0))
    axes = checks.const_ints(ctx, 1, "axes") if ctx.n_inputs() > 1 else []
    axes = checks.axes(ctx, axes, rank) or list(range(rank))
    if a.get("reduce_to_end") and axes:             # Lite: axes become [axes[0], ..., rank - 1]
        axes = list(range(axes[0], rank))
    keep = bool(a.get("keep_dims"))
    layout = ctx.layout_for([0])
    if layout == "nchw" and not keep:
        kept = [d for d in TO_NCHW if d not in axes]
        if kept != sorted(kept):
            layout = "logical"
    onnx_axes = sorted(_axis_in(ctx, layout, x, rank) for x in axes)
    x = ctx.input(0, layout)
    if op in ("ReduceSum",):
        y = ctx.add(op, [x, ctx.ints(onnx_axes)], keepdims=int(keep))
    else:
        y = ctx.add(op, [x], axes=onnx_axes, keepdims=int(keep))
    coeff = a.get("coeff", 0.0)
    if a.get("reduce_to_end") and abs(coeff) > 1e-5 and coeff != 1.0:   # as the Lite kernel does
        y = ctx.add("Mul", [y, ctx.init(np.float32(coeff))])
    ctx.output(y, layout if keep else "logical")


@handler("Softmax", "LogSoftmax")
def softmax(ctx, node):
    axes = node.attrs.get("axis")
    axes = checks.int_list(ctx, (-1,) if axes is None or np.size(axes) == 0 else axes, "axis")
    if len(axes) != 1:
        raise NotTranslatable(f"softmax over several axes {axes}")
    rank = ctx.rank(ctx.in_idx(0))
    layout = ctx.layout_for([0])
    ctx.output(ctx.add(node.op_type, [ctx.input(0, layout)], axis=_axis_in(ctx, layout, axes[0], rank)),
               layout)


def _onnx_type(type_id):
    elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(type_id))
    if elem is None:
        raise NotTranslatable(f"cast to data type {type_id}")
    return elem


@handler("Cast")
def cast(ctx, node):
    target = ctx.const(1)
    type_id = (checks.as_int(ctx, checks.scalar(ctx, target, "target type"), "target type")
               if target is not None else ctx.tensor(node.outputs[0]).data_type)
    layout = ctx.layout_for([0])
    ctx.output(ctx.add("Cast", [ctx.input(0, layout)], to=_onnx_type(type_id)), layout)


@handler("Shape")
def shape(ctx, node):
    ctx.output(ctx.add("Cast", [ctx.add("Shape", [ctx.input(0)])], to=6))
