"""ONNX front end (opset 11 and later), as PyTorch and MindSpore export it."""
import os

from runtime.errors import ModelFormatError

from ..errors import ConversionError
from ..registry import OpRegistry
from .common import FrontendContext

ONNX_OPS = OpRegistry("ONNX")
MIN_OPSET = 11
_MAX_BYTES = 4 << 30


def _attrs(node):
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            v = tuple(x.decode() if isinstance(x, bytes) else x for x in v)
        out[a.name] = v
    return out


def _read(path):
    try:
        import onnx
    except ImportError as e:
        raise ConversionError(f"reading ONNX needs the onnx package (onnx extra): {e}")
    size = os.path.getsize(path)
    if size > _MAX_BYTES:
        raise ModelFormatError(path, f"file is {size} bytes; larger than the 4 GiB limit")
    try:
        model = onnx.load(path)
    except Exception as e:
        raise ModelFormatError(path, f"not a valid ONNX model (corrupt or truncated): "
                               f"{type(e).__name__}: {e}") from None
    if not model.HasField("graph") or not len(model.graph.node) or not len(model.graph.output):
        raise ModelFormatError(path, "not an ONNX model (no graph, nodes or outputs); the file is "
                               "corrupt, truncated or of another format")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ConversionError(f"{path}: ONNX opset {opset} is not supported (need {MIN_OPSET} or later)")
    return model


def load(path):
    from onnx import numpy_helper
    model = _read(path)
    g = model.graph
    ctx = FrontendContext(path, "onnx")
    ctx.opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for init in g.initializer:
        try:
            ctx.graph.consts[init.name] = numpy_helper.to_array(init).copy()
        except Exception as e:
            raise ModelFormatError(path, f"initializer {init.name!r} is unreadable: {e}") from None
    for inp in g.input:
        if inp.name in ctx.graph.consts:
            continue
        dims = inp.type.tensor_type.shape.dim
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in dims)
        ctx.graph.inputs.append(inp.name)
        ctx.graph.shapes[inp.name] = shape
    named = [(n.name or n.output[0], n.op_type) for n in g.node
             if n.domain in ("", "ai.onnx")]
    named += [(n.name or n.output[0], f"{n.domain}::{n.op_type}") for n in g.node
              if n.domain not in ("", "ai.onnx")]
    ONNX_OPS.check_all_supported(named)
    for n in g.node:
        ONNX_OPS[n.op_type](ctx, n, _attrs(n))
    ctx.graph.outputs = [ctx.resolve(o.name) for o in g.output]
    return ctx.graph


def _name(n):
    return n.name or n.output[0]


@ONNX_OPS.register("Constant")
def _constant(ctx, n, a):
    from onnx import numpy_helper
    if "value" not in a:
        raise ConversionError(f"{_name(n)}: only Constant with a tensor `value` is supported")
    ctx.graph.consts[n.output[0]] = numpy_helper.to_array(a["value"]).copy()


@ONNX_OPS.register("Identity", "Dropout")
def _identity(ctx, n, a):
    ctx.emit(_name(n), "Identity", n.input[:1], n.output[:1])


_AUTO_PAD = {"NOTSET": "pad", "SAME_UPPER": "same", "VALID": "valid"}


def _pads(n, a, k=2):
    auto = a.get("auto_pad", "NOTSET")
    if auto not in _AUTO_PAD:
        raise ConversionError(f"{_name(n)}: auto_pad {auto} is not supported")
    p = tuple(int(x) for x in a.get("pads", (0,) * (2 * k)))
    if len(p) != 4:
        raise ConversionError(f"{_name(n)}: only 2-D spatial ops are supported")
    # ONNX pads are (h_begin, w_begin, h_end, w_end); the IR uses (top, bottom, left, right).
    return (p[0], p[2], p[1], p[3]), _AUTO_PAD[auto]


@ONNX_OPS.register("Conv")
def _conv(ctx, n, a):
    w = ctx.graph.consts.get(n.input[1])
    if w is None:
        raise ConversionError(f"{_name(n)}: Conv weights must be constant")
    if w.ndim != 4:
        raise ConversionError(f"{_name(n)}: only 2-D convolutions are supported")
    pads, mode = _pads(n, a)
    ctx.emit(_name(n), "Conv2D", list(n.input), n.output[:1],
             kernel=tuple(a.get("kernel_shape", w.shape[2:])), stride=tuple(a.get("strides", (1, 1))),
             dilation=tuple(a.get("dilations", (1, 1))), pads=pads, pad_mode=mode,
             group=int(a.get("group", 1)), activation=0)


@ONNX_OPS.register("BatchNormalization")
def _bn(ctx, n, a):
    ctx.emit(_name(n), "BatchNorm", n.input[:5], n.output[:1], epsilon=float(a.get("epsilon", 1e-5)))


_ACTS = {"Relu": 1, "Sigmoid": 2, "Tanh": 10}


@ONNX_OPS.register(*_ACTS)
def _act(ctx, n, a):
    ctx.emit(_name(n), "Activation", n.input[:1], n.output[:1], type=_ACTS[n.op_type])


@ONNX_OPS.register("Clip")
def _clip(ctx, n, a):
    lo = a.get("min") if "min" in a else (ctx.scalar(n.input[1]) if len(n.input) > 1 and n.input[1] else None)
    hi = a.get("max") if "max" in a else (ctx.scalar(n.input[2]) if len(n.input) > 2 and n.input[2] else None)
    lo = None if lo is None else float(lo)
    hi = None if hi is None else float(hi)
    if lo == 0.0 and hi == 6.0:
        ctx.emit(_name(n), "Activation", n.input[:1], n.output[:1], type=3)
    elif lo == 0.0 and hi is None:
        ctx.emit(_name(n), "Activation", n.input[:1], n.output[:1], type=1)
    else:
        raise ConversionError(f"{_name(n)}: Clip({lo}, {hi}) is not supported (only ReLU/ReLU6 clips)")


_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div"}


@ONNX_OPS.register(*_BINARY)
def _binary(ctx, n, a):
    ctx.emit(_name(n), _BINARY[n.op_type], n.input[:2], n.output[:1], activation=0)


@ONNX_OPS.register("Cast")
def _cast(ctx, n, a):
    src = ctx.resolve(n.input[0])
    if src not in ctx.graph.consts:
        raise ConversionError(f"{_name(n)}: Cast of a computed tensor is not supported")
    from onnx import helper
    ctx.graph.consts[n.output[0]] = ctx.graph.consts[src].astype(
        helper.tensor_dtype_to_np_dtype(int(a["to"])))


@ONNX_OPS.register("Gemm")
def _gemm(ctx, n, a):
    if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
        raise ConversionError(f"{_name(n)}: Gemm with alpha/beta other than 1 is not supported")
    ctx.emit(_name(n), "MatMul", n.input[:3], n.output[:1], transpose_a=bool(a.get("transA", 0)),
             transpose_b=bool(a.get("transB", 0)), activation=0)


@ONNX_OPS.register("MatMul")
def _matmul(ctx, n, a):
    ctx.emit(_name(n), "MatMul", n.input[:2], n.output[:1], transpose_a=False, transpose_b=False,
             activation=0)


@ONNX_OPS.register("ReduceMean")
def _reduce_mean(ctx, n, a):
    axes = a.get("axes")
    if axes is None and len(n.input) > 1:
        axes = ctx.scalar(n.input[1], "ReduceMean axes")
    if axes is None:
        raise ConversionError(f"{_name(n)}: ReduceMean over all axes is not supported")
    axes = axes if isinstance(axes, tuple) else (axes,)
    ctx.emit(_name(n), "ReduceMean", n.input[:1], n.output[:1], axes=tuple(int(x) for x in axes),
             keep_dims=bool(a.get("keepdims", 1)))


@ONNX_OPS.register("GlobalAveragePool")
def _gap(ctx, n, a):
    ctx.emit(_name(n), "GlobalAvgPool", n.input[:1], n.output[:1])


def _pool(ctx, n, a, op):
    pads, mode = _pads(n, a)
    kernel = tuple(a["kernel_shape"])
    ctx.emit(_name(n), op, n.input[:1], n.output[:1], kernel=kernel,
             stride=tuple(a.get("strides", (1, 1))), pads=pads, pad_mode=mode,
             ceil_mode=bool(a.get("ceil_mode", 0)), count_include_pad=bool(a.get("count_include_pad", 0)))


@ONNX_OPS.register("MaxPool")
def _maxpool(ctx, n, a):
    if len(n.output) > 1 and n.output[1]:
        raise ConversionError(f"{_name(n)}: MaxPool with indices output is not supported")
    _pool(ctx, n, a, "MaxPool")


@ONNX_OPS.register("AveragePool")
def _avgpool(ctx, n, a):
    _pool(ctx, n, a, "AvgPool")


@ONNX_OPS.register("Reshape")
def _reshape(ctx, n, a):
    ctx.emit(_name(n), "Reshape", n.input[:2], n.output[:1])


@ONNX_OPS.register("Flatten")
def _flatten(ctx, n, a):
    ctx.emit(_name(n), "Flatten", n.input[:1], n.output[:1], axis=int(a.get("axis", 1)))


@ONNX_OPS.register("Transpose")
def _transpose(ctx, n, a):
    ctx.emit(_name(n), "Transpose", n.input[:1], n.output[:1], perm=tuple(int(p) for p in a["perm"]))


@ONNX_OPS.register("Softmax")
def _softmax(ctx, n, a):
    # Before opset 13, Softmax flattens the dims from `axis` on (and the default axis is 1).
    legacy = ctx.opset < 13
    ctx.emit(_name(n), "Softmax", n.input[:1], n.output[:1],
             axis=int(a.get("axis", 1 if legacy else -1)), flattens_from_axis=legacy)


@ONNX_OPS.register("Concat")
def _concat(ctx, n, a):
    ctx.emit(_name(n), "Concat", list(n.input), n.output[:1], axis=int(a["axis"]))
