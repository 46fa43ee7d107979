"""Handlers for ops seen in models converted from Caffe, TFLite and ONNX: normalizations, resize, LRN,
arg-max, top-k, tile/broadcast, depth/space rearrangements and ones/zeros-like. Semantics follow the Lite CPU kernels
(NHWC, TensorFlow conventions)."""
import numpy as np

from onnx import helper as onnx_helper

from . import checks
from ...msformat.model import FORMAT_NHWC, TYPE_BOOL, TYPEID_TO_NUMPY
from .base import NP_TO_ONNX, TO_NCHW, NotTranslatable, handler, image_layout
from .ops_nn import fused


def _channel_vectors(ctx, **named):
    """Per-channel constants: one value per channel each (or a single value), equal lengths,
    matching the input's channel count (last logical axis) where that is known."""
    sizes = {name: int(np.size(v)) for name, v in named.items()}
    dims = ctx.input_dims(0)
    channels = dims[-1] if dims else None
    lengths = {n for n in sizes.values() if n != 1}
    if 0 in sizes.values() or len(lengths) > 1 or (channels is not None and lengths - {channels}):
        raise ctx.malformed(f"per-channel operands of sizes {sizes} do not fit "
                            f"{'an input of ' + str(channels) + ' channels' if channels else 'each other'}")
    return [np.asarray(v, np.float32).reshape(-1) for v in named.values()]


def _channel_affine(ctx, node, mul, add):
    """y = x * mul + add with per-channel (last logical axis) vectors, in whatever layout x has."""
    layout = ctx.layout_for([0])
    rank = ctx.rank(ctx.in_idx(0))
    def vec(v):
        v = np.asarray(v, np.float32).reshape((1,) * (rank - 1) + (-1,))
        if layout == "nchw":
            v = v.transpose(TO_NCHW)
        return ctx.init(np.ascontiguousarray(v), "bn")
    y = ctx.add("Add", [ctx.add("Mul", [ctx.input(0, layout), vec(mul)]), vec(add)])
    ctx.output(y, layout)


@handler("FusedBatchNorm")
def fused_batch_norm(ctx, node):
    scale, bias = ctx.need_const(1, "scale"), ctx.need_const(2, "bias")
    mean, var = ctx.need_const(3, "mean"), ctx.need_const(4, "variance")
    scale, bias, mean, var = _channel_vectors(ctx, scale=scale, bias=bias, mean=mean, variance=var)
    a = scale / np.sqrt(var + node.attrs.get("epsilon", 1e-4))
    _channel_affine(ctx, node, a, bias - mean * a)


@handler("BatchNorm")
def batch_norm(ctx, node):
    mean, var = ctx.need_const(1, "mean"), ctx.need_const(2, "variance")
    mean, var = _channel_vectors(ctx, mean=mean, variance=var)
    a = 1.0 / np.sqrt(var + node.attrs.get("epsilon", 0.0))
    _channel_affine(ctx, node, a, -mean * a)


@handler("InstanceNorm")
def instance_norm(ctx, node):
    if ctx.rank(ctx.in_idx(0)) != 4:
        raise NotTranslatable("InstanceNorm on a tensor that is not 4-D")
    gamma, beta = ctx.need_const(1, "gamma"), ctx.need_const(2, "beta")
    gamma, beta = _channel_vectors(ctx, gamma=gamma, beta=beta)
    y = ctx.add("InstanceNormalization", [ctx.input(0, "nchw"), ctx.init(gamma.astype(np.float32)),
                                          ctx.init(beta.astype(np.float32))],
                epsilon=float(node.attrs.get("epsilon") or 1e-5))
    ctx.output(y, "nchw")


@handler("LayerNormFusion")
def layer_norm(ctx, node):
    a = node.attrs
    rank = ctx.rank(ctx.in_idx(0))
    axis = checks.axis(ctx, a.get("begin_norm_axis", 0), rank, "begin_norm_axis")
    dims = ctx.dims(ctx.in_idx(0))[axis:]
    if ctx.n_inputs() >= 3:
        gamma, beta = ctx.need_const(1, "gamma"), ctx.need_const(2, "beta")
    elif dims and all(d > 0 for d in dims):
        gamma, beta = np.ones(dims, np.float32), np.zeros(dims, np.float32)
    else:
        raise NotTranslatable("no gamma/beta and unknown normalized shape")
    shape = tuple(dims) if dims and all(d > 0 for d in dims) else gamma.shape
    try:
        gamma = np.broadcast_to(gamma.astype(np.float32), shape)
        beta = np.broadcast_to(beta.astype(np.float32), shape)
    except ValueError:
        raise ctx.malformed(f"gamma {list(gamma.shape)} / beta {list(beta.shape)} do not fit the "
                            f"normalized shape {list(shape)}") from None
    y = ctx.add("LayerNormalization", [ctx.input(0), ctx.init(gamma.copy()), ctx.init(beta.copy())],
                axis=axis, epsilon=float(a.get("epsilon", 1e-5)))
    ctx.output(y)


@handler("L2NormalizeFusion")
def l2_normalize(ctx, node):
    a = node.attrs
    rank = ctx.rank(ctx.in_idx(0))
    axes = checks.axes(ctx, a.get("axis") or (rank - 1,), rank)
    x = ctx.input(0)
    ss = ctx.add("ReduceSumSquare", [x], axes=axes, keepdims=1)
    norm = ctx.add("Sqrt", [ctx.add("Max", [ss, ctx.init(np.float32(a.get("epsilon") or 1e-12))])])
    fused(ctx, node, ctx.add("Div", [x, norm]), "logical")


@handler("LRN")
def lrn(ctx, node):
    """Lite (TensorFlow) LRN: x / (bias + alpha * sum_{|k|<=r} x_{c+k}^2)^beta over channels."""
    a = node.attrs
    if a.get("norm_region") not in ("", "ACROSS_CHANNELS"):
        raise NotTranslatable(f"norm_region {a.get('norm_region')}")
    radius = checks.in_range(ctx, a.get("depth_radius", 0), "depth_radius", 0, checks.MAX_WINDOW // 2)
    size = 2 * radius + 1
    layout = "nchw" if ctx.rank(ctx.in_idx(0)) == 4 else None
    if layout is None:
        raise NotTranslatable("LRN on a tensor that is not 4-D")
    y = ctx.add("LRN", [ctx.input(0, "nchw")], size=size, alpha=float(a.get("alpha", 0)) * size,
                beta=float(a.get("beta", 0)), bias=float(a.get("bias", 0)))
    ctx.output(y, "nchw")


def _arg(onnx_op, reduce_op):
    def translate(ctx, node):
        a = node.attrs
        if checks.as_int(ctx, a.get("top_k", 1), "top_k") != 1:
            raise NotTranslatable("top_k > 1")
        axis = checks.axis(ctx, a.get("axis", 0), ctx.rank(ctx.in_idx(0)))
        keep = int(bool(a.get("keep_dims")))
        x = ctx.input(0)
        if a.get("out_max_value"):
            y = ctx.add(reduce_op, [x], axes=[axis], keepdims=keep)
        else:
            y = ctx.add("Cast", [ctx.add(onnx_op, [x], axis=axis, keepdims=keep)], to=6)
        ctx.output(y)
    return translate


handler("ArgMaxFusion")(_arg("ArgMax", "ReduceMax"))
handler("ArgMinFusion")(_arg("ArgMin", "ReduceMin"))


@handler("TileFusion")
def tile(ctx, node):
    multiples = checks.const_ints(ctx, 1, "multiples")
    if any(m < 0 for m in multiples):
        raise ctx.malformed(f"multiples {multiples} are negative")
    rank = ctx.rank(ctx.in_idx(0))
    dims = checks.axes(ctx, node.attrs.get("dims") or (), rank, "dims")
    if dims:
        if len(dims) != len(multiples):
            raise ctx.malformed(f"dims {dims} and multiples {multiples} differ in length")
        full = [1] * rank
        for d, m in zip(dims, multiples):
            full[d] = m
        multiples = full
    shape = ctx.input_dims(0)
    if shape is not None:
        if len(multiples) != len(shape):
            raise ctx.malformed(f"multiples {multiples} do not match the input rank {len(shape)}")
        checks.elements(ctx, [d * m for d, m in zip(shape, multiples)], "tiled output")
    elif any(m > checks.MAX_ELEMENTS for m in multiples):
        raise ctx.malformed(f"multiples {multiples} exceed {checks.MAX_ELEMENTS}")
    ctx.output(ctx.add("Tile", [ctx.input(0), ctx.ints(multiples)]))


@handler("BroadcastTo")
def broadcast_to(ctx, node):
    shape = node.attrs.get("shape") or (ctx.need_const(1, "shape").reshape(-1) if ctx.n_inputs() > 1 else ())
    if len(shape) == 0:
        raise NotTranslatable("no target shape")
    # -1 keeps the input's dimension, which is what 1 means to ONNX Expand
    shape = [1 if d == -1 else d for d in checks.shape(ctx, shape, "shape", allow_unknown=True)]
    ctx.output(ctx.add("Expand", [ctx.input(0), ctx.ints(shape)]))


def _space_depth(onnx_op):
    def translate(ctx, node):
        if ctx.rank(ctx.in_idx(0)) != 4:
            raise NotTranslatable("not a 4-D tensor")
        layout = image_layout(ctx, node)
        extra = {"mode": "DCR"} if onnx_op == "DepthToSpace" else {}
        block = checks.in_range(ctx, node.attrs.get("block_size", 1), "block_size", 1, checks.MAX_WINDOW)
        y = ctx.add(onnx_op, [ctx.input(0, layout)], blocksize=block, **extra)
        ctx.output(y, layout)
    return translate


handler("DepthToSpace")(_space_depth("DepthToSpace"))
handler("SpaceToDepth")(_space_depth("SpaceToDepth"))


@handler("Where", "Select")
def where(ctx, node):
    if ctx.n_inputs() != 3:
        raise NotTranslatable("only the three-input (select) form")
    cond = ctx.input(0)
    if ctx.tensor(ctx.in_idx(0)).data_type != TYPE_BOOL:
        cond = ctx.add("Cast", [cond], to=9)
    ctx.output(ctx.add("Where", [cond, ctx.input(1), ctx.input(2)]))


_RESIZE_MODES = {0: "linear", 1: "nearest", 2: "cubic"}
_COORD_MODES = {0: "asymmetric", 1: "align_corners", 2: "half_pixel"}
_NEAREST = {1: "round_prefer_floor", 2: "round_prefer_ceil", 3: "floor", 4: "ceil"}


MAX_SCALE = 1024.0


def _resize_scales(ctx, node):
    """Input 1 as [h, w] scale factors (a float constant, as the ONNX parser writes Resize/Upsample
    with scales), or None. Each in (0, MAX_SCALE]."""
    a = node.attrs
    size = ctx.const(1) if ctx.n_inputs() > 1 else None
    if (a.get("new_height", 0) or a.get("new_width", 0)) or size is None or \
            not np.issubdtype(size.dtype, np.floating):
        return None
    scales = [float(v) for v in size.reshape(-1)]
    if len(scales) != 2 or not all(0 < v <= MAX_SCALE for v in scales):
        raise ctx.malformed(f"scales {scales} are not two factors in (0, {MAX_SCALE}]")
    return scales


def _scaled_hw(ctx, layout, scales):
    """floor(input [h, w] * scales) when the input size is known (checked against MAX_ELEMENTS),
    else None."""
    dims = ctx.input_dims(0)
    if not dims or len(dims) != 4:
        return None
    n, c, h, w = (dims[0], dims[3], dims[1], dims[2]) if layout == "nchw" else dims
    hw = [int(np.floor(np.float32(h) * np.float32(scales[0]))),
          int(np.floor(np.float32(w) * np.float32(scales[1])))]
    if min(hw) <= 0:
        raise ctx.shape_conflict(f"scales {scales} make an empty output from [h, w] {[h, w]}")
    checks.elements(ctx, [n, c] + hw, "resized output")
    return hw


def _resize_hw(ctx, node):
    """Output [h, w], each positive; the resized tensor within MAX_ELEMENTS where dims are known."""
    hw = _requested_hw(ctx, node)
    if any(v <= 0 for v in hw):
        raise ctx.malformed(f"output size {hw} is not positive")
    dims = ctx.input_dims(0)
    batch_channels = [dims[0], dims[3]] if dims and len(dims) == 4 else []
    checks.elements(ctx, hw + batch_channels, "resized output")
    return hw


def _requested_hw(ctx, node):
    """new_height/new_width, else an integer size constant (input 1), else the declared output."""
    a = node.attrs
    h = checks.as_int(ctx, a.get("new_height", 0), "new_height")
    w = checks.as_int(ctx, a.get("new_width", 0), "new_width")
    if h < 0 or w < 0:
        raise ctx.malformed(f"new_height {h} / new_width {w} is negative")
    if h > 0 and w > 0:
        return [h, w]
    size = ctx.const(1) if ctx.n_inputs() > 1 else None
    if size is not None and size.size == 2 and np.issubdtype(size.dtype, np.integer):
        return checks.int_list(ctx, size.reshape(-1), "size")
    out = ctx.dims(node.outputs[0])
    if len(out) == 4 and all(d > 0 for d in out):
        return list(out[1:3]) if a.get("format", 1) != 0 else list(out[2:4])
    raise NotTranslatable("cannot tell the output size (no new_height/new_width, shape or size)")


@handler("Resize")
def resize(ctx, node):
    a = node.attrs
    mode = _RESIZE_MODES.get(a.get("method", 0))
    if mode is None:
        raise NotTranslatable(f"resize method {a.get('method')}")
    coord = _COORD_MODES.get(a.get("coordinate_transform_mode", 0), "asymmetric")
    extra = {}
    if mode == "nearest":
        default = "floor" if coord == "asymmetric" else "round_prefer_ceil"
        extra["nearest_mode"] = _NEAREST.get(a.get("nearest_mode", 0), default)
    if mode == "cubic":
        extra["cubic_coeff_a"] = float(a.get("cubic_coeff") or -0.75)
        extra["exclude_outside"] = int(a.get("exclude_outside", 0))
    layout = image_layout(ctx, node, op_default=FORMAT_NHWC)       # Resize's format defaults to NHWC
    x = ctx.input(0, layout)
    shape = ctx.add("Shape", [x])
    nc = ctx.add("Slice", [shape, ctx.ints([0]), ctx.ints([2])])
    scales = _resize_scales(ctx, node)
    static = _scaled_hw(ctx, layout, scales) if scales is not None else None
    if scales is None or static is not None:
        hw = ctx.ints(_resize_hw(ctx, node) if scales is None else static)
    else:      # floor(input size * scale) at run time, as the Lite kernel computes it
        in_hw = ctx.add("Cast", [ctx.add("Slice", [shape, ctx.ints([2]), ctx.ints([4])])], to=1)
        hw = ctx.add("Mul", [in_hw, ctx.init(np.asarray(scales, np.float32))])
        hw = ctx.add("Cast", [ctx.add("Floor", [hw])], to=7)
    sizes = ctx.add("Concat", [nc, hw], axis=0)
    y = ctx.add("Resize", [x, "", "", sizes], mode=mode, coordinate_transformation_mode=coord, **extra)
    ctx.output(y, layout)


@handler("TopKFusion")
def top_k(ctx, node):
    """Values and int32 indices of the k largest along `axis`, sorted. The Lite CPU kernel takes the
    largest whatever `largest` holds (the ONNX parser writes 0 for ONNX's default largest=1; checked
    against the official runtime), so `largest` is not read."""
    if len(node.outputs) != 2 or ctx.n_inputs() != 2:
        raise ctx.malformed(f"has {ctx.n_inputs()} input(s) and {len(node.outputs)} output(s), "
                            "needs data and k, values and indices")
    rank = ctx.known_rank(0)
    axis = checks.axis(ctx, node.attrs.get("axis", -1), rank)
    k = checks.const_ints(ctx, 1, "k")
    if len(k) != 1:
        raise ctx.malformed(f"k {k} is not one value")
    dims = ctx.input_dims(0)
    bound = dims[axis] if dims and rank is not None else checks.MAX_ELEMENTS
    k = checks.in_range(ctx, k[0], "k", 1, max(bound, 1))
    values, indices = ctx.add("TopK", [ctx.input(0), ctx.ints([k])], n_out=2, axis=axis,
                              largest=1, sorted=1)
    ctx.output(values, "logical", 0)
    ctx.output(ctx.add("Cast", [indices], to=6), "logical", 1)


def _filled_like(value):
    def translate(ctx, node):
        """A tensor of the input's shape and data type, every element `value` (NaN and inf inputs
        included, hence ConstantOfShape and not x * 0 + value)."""
        idx = ctx.in_idx(0)
        if idx is None:
            raise ctx.malformed("has no input")
        dtype = TYPEID_TO_NUMPY.get(ctx.tensor(idx).data_type)
        elem = NP_TO_ONNX.get(np.dtype(dtype)) if dtype is not None else None
        if elem is None:
            raise NotTranslatable(f"input of data type {ctx.tensor(idx).data_type}")
        layout = ctx.layout_for([0])
        fill = onnx_helper.make_tensor("value", elem, [1], np.full(1, value, dtype).tolist())
        y = ctx.add("ConstantOfShape", [ctx.add("Shape", [ctx.input(0, layout)])], value=fill)
        ctx.output(y, layout)
    return translate


handler("OnesLike")(_filled_like(1))
handler("ZerosLike")(_filled_like(0))
