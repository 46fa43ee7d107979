"""ONNX front end (opset 11 and later), as PyTorch and MindSpore export it.

The file is untrusted: before any handler runs, the model is checked as a whole (every string is
UTF-8, every initializer's declared size is backed by the file, input count of every node, graph
inputs of a known float type, every value produced once and before it is read, every graph output
produced). Handlers then parse each attribute once, through `common.as_int(s)`, into IR nodes
that `converters.ir` validates. Errors name the file and the node, tensor or attribute at fault.
"""
import os

import numpy as np

from runtime.errors import ModelFormatError, UnsupportedOpsError

from ..errors import ConversionError
from ..registry import OpRegistry
from .common import FrontendContext, as_float, as_int, as_ints, check_tensor_size, check_utf8

ONNX_OPS = OpRegistry("ONNX")
MIN_OPSET = 11
_MAX_BYTES = 4 << 30
_FLOAT = 1                       # TensorProto.FLOAT: the only graph input type the .ms engine feeds

# ONNX op -> (min inputs, max inputs) after trailing omitted ("") optional inputs are dropped.
ARITY = {
    "Constant": (0, 0), "Identity": (1, 1), "Dropout": (1, 3), "Conv": (2, 3),
    "BatchNormalization": (5, 5), "Relu": (1, 1), "Sigmoid": (1, 1), "Tanh": (1, 1),
    "Clip": (1, 3), "Add": (2, 2), "Sub": (2, 2), "Mul": (2, 2), "Div": (2, 2), "Cast": (1, 1),
    "Gemm": (2, 3), "MatMul": (2, 2), "ReduceMean": (1, 2), "GlobalAveragePool": (1, 1),
    "MaxPool": (1, 1), "AveragePool": (1, 1), "Reshape": (2, 2), "Flatten": (1, 1),
    "Transpose": (1, 1), "Softmax": (1, 1), "Concat": (1, 1 << 12),
}


def _name(n):
    return n.name or (n.output[0] if len(n.output) else "<unnamed>")


def _where(n):
    return f"node {_name(n)!r} ({n.op_type})"


def _attrs(path, n):
    from onnx import helper
    out = {}
    for a in n.attribute:
        try:
            v = helper.get_attribute_value(a)
        except Exception as e:  # an attribute whose type field does not match its content
            raise ModelFormatError(path, f"attribute {a.name!r} is unreadable: {e}",
                                   element=_where(n)) from None
        try:
            if isinstance(v, bytes):
                v = v.decode("utf-8")
            elif isinstance(v, list):
                v = tuple(x.decode("utf-8") if isinstance(x, bytes) else x for x in v)
        except UnicodeDecodeError:
            raise ModelFormatError(path, f"attribute {a.name!r} is not valid UTF-8",
                                   element=_where(n)) from None
        out[a.name] = v
    return out


def _read(path):
    try:
        import onnx
    except ImportError as e:
        raise ConversionError(f"reading ONNX needs the onnx package (onnx extra): {e}", path=path)
    size = os.path.getsize(path)
    if size > _MAX_BYTES:
        raise ModelFormatError(path, f"file is {size} bytes; larger than the 4 GiB limit")
    try:
        # External data is resolved by `_external`, inside the model's folder only.
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        # Some protobuf builds check UTF-8 while parsing (others hand back bytes, caught by
        # check_utf8 below): the same fault gets the same words either way.
        what = "a string field is not valid UTF-8" if "utf-8" in str(e).lower() else \
            "not a valid ONNX model (corrupt or truncated)"
        raise ModelFormatError(path, f"{what}: {type(e).__name__}: {e}") from None
    check_utf8(model, path)
    if not model.HasField("graph") or not len(model.graph.node) or not len(model.graph.output):
        raise ModelFormatError(path, "not an ONNX model (no graph, nodes or outputs); the file is "
                               "corrupt, truncated or of another format")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_OPSET:
        raise ConversionError(f"ONNX opset {opset} is not supported (need {MIN_OPSET} or later)",
                              path=path)
    return model, opset


def _external(path, t, need, where):
    """Load the external data of tensor `t` (`need` bytes), only from a file in the model's folder."""
    from onnx import TensorProto
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor
    info = ExternalDataInfo(t)
    loc = os.path.normpath(info.location or "")
    if not info.location or os.path.isabs(loc) or loc == ".." or loc.startswith(".." + os.sep):
        raise ModelFormatError(path, f"external data location {info.location!r} is outside the "
                               "model's folder", element=where)
    base = os.path.dirname(os.path.abspath(path))
    full = os.path.join(base, loc)
    if not os.path.isfile(full):
        raise ModelFormatError(path, f"external data file {full} does not exist", element=where)
    offset = int(info.offset or 0)
    avail = os.path.getsize(full) - offset
    length = avail if info.length is None else int(info.length)
    if offset < 0 or length != need or need > avail:
        raise ModelFormatError(path, f"external data (offset {info.offset}, length {info.length}) "
                               f"of {full} does not hold the {need} bytes the tensor declares",
                               element=where)
    load_external_data_for_tensor(t, base)
    t.data_location = TensorProto.DEFAULT
    del t.external_data[:]


def tensor_array(path, t, file_size, where):
    """A numpy copy of ONNX TensorProto `t`, its declared size checked before anything is read."""
    from onnx import TensorProto, helper, numpy_helper
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
    except Exception:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        name = TensorProto.DataType.Name(t.data_type) if t.data_type in TensorProto.DataType.values() \
            else str(t.data_type)
        raise ModelFormatError(path, f"data type {name} is not supported", element=where)
    if t.data_location == TensorProto.EXTERNAL:
        _, count = check_tensor_size(path, where, t.dims, dtype.itemsize, 1 << 62)
        _external(path, t, count * dtype.itemsize, where)
    typed = max(len(t.float_data), len(t.int32_data), len(t.int64_data), len(t.double_data),
                len(t.uint64_data))
    raw = len(t.raw_data) if t.HasField("raw_data") else None
    check_tensor_size(path, where, t.dims, dtype.itemsize, file_size, raw_bytes=raw,
                      values=None if raw is not None else typed)
    try:
        return np.array(numpy_helper.to_array(t))
    except Exception as e:
        raise ModelFormatError(path, f"unreadable tensor data ({type(e).__name__}: {e}); the "
                               "weights are corrupt", element=where) from None


def _input_shape(path, inp):
    tt = inp.type.tensor_type
    where = f"graph input {inp.name!r}"
    if not inp.type.HasField("tensor_type"):
        raise ConversionError("is not a tensor (sequence/map inputs are not supported)",
                              path=path, element=where)
    if tt.elem_type != _FLOAT:
        from onnx import TensorProto
        kind = TensorProto.DataType.Name(tt.elem_type) if tt.elem_type in TensorProto.DataType.values() \
            else str(tt.elem_type)
        raise ConversionError(f"has element type {kind}; only FLOAT inputs are supported",
                              path=path, element=where)
    if not tt.HasField("shape"):
        return None                                   # unknown rank: --input-shape must say
    shape = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            if d.dim_value < 0:
                raise ModelFormatError(path, f"negative dimension {d.dim_value}", element=where)
            shape.append(int(d.dim_value))
        else:
            shape.append(-1)                          # symbolic (dim_param) or unset: dynamic
    return tuple(shape)


def _check_graph(path, g, known):
    """Every value produced once, before it is read; every graph output produced."""
    defined = set(known)
    for n in g.node:
        for v in n.input:
            if v and v not in defined:
                raise ModelFormatError(path, f"reads {v!r}, which no earlier node, input or "
                                       "initializer produces (a cycle or an unsorted graph)",
                                       element=_where(n))
        for v in n.output:
            if not v:
                continue
            if v in defined:
                raise ModelFormatError(path, f"output {v!r} is already produced elsewhere "
                                       "(duplicate value name)", element=_where(n))
            defined.add(v)
    outs = [o.name for o in g.output]
    for o in outs:
        if o not in defined:
            raise ModelFormatError(path, "is not produced by any node, input or initializer",
                                   element=f"graph output {o!r}")
    if len(set(outs)) != len(outs):
        raise ModelFormatError(path, f"graph outputs {outs} name one value twice")


def load(path):
    model, opset = _read(path)
    g = model.graph
    file_size = os.path.getsize(path)
    ctx = FrontendContext(path, "onnx")
    ctx.opset = opset
    if len(g.sparse_initializer):
        raise ConversionError("sparse initializers are not supported", path=path,
                              element=f"initializer {g.sparse_initializer[0].values.name!r}")
    for init in g.initializer:
        if init.name in ctx.graph.consts:
            raise ModelFormatError(path, "is defined twice", element=f"initializer {init.name!r}")
        ctx.graph.consts[init.name] = tensor_array(path, init, file_size, f"initializer {init.name!r}")
    for inp in g.input:
        if inp.name in ctx.graph.consts:
            continue
        if inp.name in ctx.graph.inputs:
            raise ModelFormatError(path, "is listed twice", element=f"graph input {inp.name!r}")
        ctx.graph.inputs.append(inp.name)
        shape = _input_shape(path, inp)
        if shape is not None:
            ctx.graph.shapes[inp.name] = shape
    _check_graph(path, g, set(ctx.graph.consts) | set(ctx.graph.inputs))
    named = [(_name(n), n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
             for n in g.node]
    missing = [(name, op) for name, op in named if op not in ONNX_OPS.handlers]
    if missing:
        raise UnsupportedOpsError(missing, what="convert (ONNX front end)", path=path)
    for n in g.node:
        inputs = list(n.input)
        while inputs and not inputs[-1]:
            inputs.pop()                             # omitted trailing optional inputs
        lo, hi = ARITY.get(n.op_type, (0, 1 << 12))
        if not lo <= len(inputs) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise ConversionError(f"takes {want} input(s), got {len(inputs)}", path=path,
                                  element=_where(n))
        if not len(n.output) or not n.output[0]:
            raise ModelFormatError(path, "has no output", element=_where(n))
        try:
            ONNX_OPS[n.op_type](ctx, _Node(n, inputs), _attrs(path, n))
        except ConversionError as e:
            raise e.locate(path=path, element=_where(n))
    ctx.graph.outputs = [ctx.resolve(o.name) for o in g.output]
    return ctx.graph


class _Node:
    """A NodeProto's name, op, inputs (trailing omitted ones dropped) and outputs."""

    def __init__(self, proto, inputs):
        self.name = _name(proto)
        self.op_type = proto.op_type
        self.input = inputs
        self.output = list(proto.output)


def _opt(n, i):
    """Input i if given (not omitted), else None."""
    return n.input[i] if len(n.input) > i and n.input[i] else None


def _required(n, count):
    missing = [i for i in range(count) if not _opt(n, i)]
    if missing:
        raise ConversionError(f"required input(s) {missing} are omitted")


@ONNX_OPS.register("Constant")
def _constant(ctx, n, a):
    if "value" in a:
        ctx.graph.consts[n.output[0]] = tensor_array(ctx.path, a["value"], os.path.getsize(ctx.path),
                                                     f"node {n.name!r} (Constant) value")
    elif "value_float" in a or "value_floats" in a:
        ctx.graph.consts[n.output[0]] = np.asarray(a.get("value_float", a.get("value_floats")),
                                                   np.float32)
    elif "value_int" in a or "value_ints" in a:
        ctx.graph.consts[n.output[0]] = np.asarray(as_ints(a.get("value_int", a.get("value_ints")),
                                                           "value_ints"), np.int64)
        if "value_int" in a:
            ctx.graph.consts[n.output[0]] = ctx.graph.consts[n.output[0]].reshape(())
    else:
        raise ConversionError("only Constant with a tensor, float(s) or int(s) value is supported")


@ONNX_OPS.register("Identity", "Dropout")
def _identity(ctx, n, a):
    _required(n, 1)
    ctx.emit(n.name, "Identity", n.input[:1], n.output[:1])


_AUTO_PAD = {"NOTSET": "pad", "SAME_UPPER": "same", "VALID": "valid"}


def _pads(n, a):
    auto = a.get("auto_pad", "NOTSET")
    if auto not in _AUTO_PAD:
        raise ConversionError(f"auto_pad {auto!r} is not supported")
    p = as_ints(a.get("pads", (0, 0, 0, 0)), "pads")
    if len(p) != 4:
        raise ConversionError(f"pads {list(p)}: only 2-D spatial ops (4 pads) are supported")
    # ONNX pads are (h_begin, w_begin, h_end, w_end); the IR uses (top, bottom, left, right).
    return (p[0], p[2], p[1], p[3]), _AUTO_PAD[auto]


def _pair(a, key, default):
    return as_ints(a.get(key, default), key)


@ONNX_OPS.register("Conv")
def _conv(ctx, n, a):
    _required(n, 2)
    w = ctx.graph.consts.get(ctx.resolve(n.input[1]))
    if w is None:
        raise ConversionError("Conv weights must be constant")
    if w.ndim != 4:
        raise ConversionError(f"weights of shape {list(w.shape)}: only 2-D convolutions are supported")
    pads, mode = _pads(n, a)
    ctx.emit(n.name, "Conv2D", list(n.input), n.output[:1],
             kernel=_pair(a, "kernel_shape", w.shape[2:]), stride=_pair(a, "strides", (1, 1)),
             dilation=_pair(a, "dilations", (1, 1)), pads=pads, pad_mode=mode,
             group=as_int(a.get("group", 1), "group"), activation=0)


@ONNX_OPS.register("BatchNormalization")
def _bn(ctx, n, a):
    _required(n, 5)
    if as_int(a.get("training_mode", 0), "training_mode"):
        raise ConversionError("BatchNormalization in training mode cannot be converted")
    ctx.emit(n.name, "BatchNorm", n.input[:5], n.output[:1],
             epsilon=as_float(a.get("epsilon", 1e-5), "epsilon"))


_ACTS = {"Relu": 1, "Sigmoid": 2, "Tanh": 10}


@ONNX_OPS.register(*_ACTS)
def _act(ctx, n, a):
    _required(n, 1)
    ctx.emit(n.name, "Activation", n.input[:1], n.output[:1], type=_ACTS[n.op_type])


@ONNX_OPS.register("Clip")
def _clip(ctx, n, a):
    _required(n, 1)
    lo = a.get("min") if "min" in a else (ctx.scalar(n.input[1], "Clip min") if _opt(n, 1) else None)
    hi = a.get("max") if "max" in a else (ctx.scalar(n.input[2], "Clip max") if _opt(n, 2) else None)
    lo = None if lo is None else as_float(lo, "Clip min")
    hi = None if hi is None else as_float(hi, "Clip max")
    if lo == 0.0 and hi == 6.0:
        ctx.emit(n.name, "Activation", n.input[:1], n.output[:1], type=3)
    elif lo == 0.0 and hi is None:
        ctx.emit(n.name, "Activation", n.input[:1], n.output[:1], type=1)
    else:
        raise ConversionError(f"Clip({lo}, {hi}) is not supported (only ReLU/ReLU6 clips)")


_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div"}


@ONNX_OPS.register(*_BINARY)
def _binary(ctx, n, a):
    _required(n, 2)
    ctx.emit(n.name, _BINARY[n.op_type], n.input[:2], n.output[:1], activation=0)


@ONNX_OPS.register("Cast")
def _cast(ctx, n, a):
    _required(n, 1)
    src = ctx.resolve(n.input[0])
    if src not in ctx.graph.consts:
        raise ConversionError("Cast of a computed tensor is not supported")
    from onnx import helper
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(as_int(a.get("to"), "Cast to")))
    except ConversionError:
        raise
    except Exception:
        dtype = None
    if dtype is None or dtype.kind not in "biuf":
        raise ConversionError(f"Cast to data type {a.get('to')!r} is not supported")
    ctx.graph.consts[n.output[0]] = ctx.graph.consts[src].astype(dtype)


@ONNX_OPS.register("Gemm")
def _gemm(ctx, n, a):
    _required(n, 2)
    if as_float(a.get("alpha", 1.0), "alpha") != 1.0 or as_float(a.get("beta", 1.0), "beta") != 1.0:
        raise ConversionError("Gemm with alpha/beta other than 1 is not supported")
    ctx.emit(n.name, "MatMul", n.input[:3], n.output[:1],
             transpose_a=bool(as_int(a.get("transA", 0), "transA")),
             transpose_b=bool(as_int(a.get("transB", 0), "transB")), activation=0)


@ONNX_OPS.register("MatMul")
def _matmul(ctx, n, a):
    _required(n, 2)
    ctx.emit(n.name, "MatMul", n.input[:2], n.output[:1], transpose_a=False, transpose_b=False,
             activation=0)


@ONNX_OPS.register("ReduceMean")
def _reduce_mean(ctx, n, a):
    _required(n, 1)
    axes = a.get("axes")
    if axes is None and _opt(n, 1):
        axes = ctx.scalar(n.input[1], "ReduceMean axes")
    if axes is None:
        raise ConversionError("ReduceMean over all axes is not supported")
    ctx.emit(n.name, "ReduceMean", n.input[:1], n.output[:1], axes=as_ints(axes, "axes"),
             keep_dims=bool(as_int(a.get("keepdims", 1), "keepdims")))


@ONNX_OPS.register("GlobalAveragePool")
def _gap(ctx, n, a):
    _required(n, 1)
    ctx.emit(n.name, "GlobalAvgPool", n.input[:1], n.output[:1])


def _pool(ctx, n, a, op):
    _required(n, 1)
    if "kernel_shape" not in a:
        raise ConversionError("attribute kernel_shape is missing")
    if "dilations" in a and set(as_ints(a["dilations"], "dilations")) != {1}:
        raise ConversionError("dilated pooling is not supported")
    pads, mode = _pads(n, a)
    ctx.emit(n.name, op, n.input[:1], n.output[:1], kernel=_pair(a, "kernel_shape", None),
             stride=_pair(a, "strides", (1, 1)), pads=pads, pad_mode=mode,
             ceil_mode=bool(as_int(a.get("ceil_mode", 0), "ceil_mode")),
             count_include_pad=bool(as_int(a.get("count_include_pad", 0), "count_include_pad")))


@ONNX_OPS.register("MaxPool")
def _maxpool(ctx, n, a):
    if len(n.output) > 1 and n.output[1]:
        raise ConversionError("MaxPool with indices output is not supported")
    _pool(ctx, n, a, "MaxPool")


@ONNX_OPS.register("AveragePool")
def _avgpool(ctx, n, a):
    _pool(ctx, n, a, "AvgPool")


@ONNX_OPS.register("Reshape")
def _reshape(ctx, n, a):
    _required(n, 2)
    if as_int(a.get("allowzero", 0), "allowzero"):
        raise ConversionError("Reshape with allowzero=1 is not supported")
    ctx.emit(n.name, "Reshape", n.input[:2], n.output[:1])


@ONNX_OPS.register("Flatten")
def _flatten(ctx, n, a):
    _required(n, 1)
    ctx.emit(n.name, "Flatten", n.input[:1], n.output[:1], axis=as_int(a.get("axis", 1), "axis"))


@ONNX_OPS.register("Transpose")
def _transpose(ctx, n, a):
    _required(n, 1)
    if "perm" not in a:
        raise ConversionError("Transpose without perm (reverse all axes) is not supported")
    ctx.emit(n.name, "Transpose", n.input[:1], n.output[:1], perm=as_ints(a["perm"], "perm"))


@ONNX_OPS.register("Softmax")
def _softmax(ctx, n, a):
    _required(n, 1)
    # Before opset 13, Softmax flattens the dims from `axis` on (and the default axis is 1).
    legacy = ctx.opset < 13
    ctx.emit(n.name, "Softmax", n.input[:1], n.output[:1],
             axis=as_int(a.get("axis", 1 if legacy else -1), "axis"), flattens_from_axis=legacy)


@ONNX_OPS.register("Concat")
def _concat(ctx, n, a):
    _required(n, len(n.input))
    if "axis" not in a:
        raise ConversionError("attribute axis is missing")
    ctx.emit(n.name, "Concat", list(n.input), n.output[:1], axis=as_int(a["axis"], "axis"))
