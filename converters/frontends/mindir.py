"""MINDIR front end (MindSpore 2.x exports), parsed with MindSpore's own `mind_ir_pb2`.

Node op types look like `REF::Conv2D:4`; the part after `REF::` names an entry of
`ModelProto.primitives`, whose `op_type` is the real operator. PRIMITIVE ops carry their attributes on
the primitive; PRIMITIVE_FUNCTION ops take them as constant inputs (ValueNodes). Side-effect plumbing
(Load, UpdateState, Depend, MakeTuple, TupleGetItem) is resolved here into aliases.
"""
import os

import numpy as np

from runtime.errors import ModelFormatError, UnsupportedOpsError
from runtime.mindir_info import MINDIR_FLOAT32, mind_ir_pb2, read_model  # noqa: F401  (the one MINDIR reader)

from ..errors import ConversionError
from ..registry import OpRegistry
from .common import FrontendContext, as_float, as_int, as_ints, check_tensor_size, check_utf8

MINDIR_OPS = OpRegistry("MINDIR")
MONAD = object()

# mind_ir TensorProto.DataType -> numpy
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
           7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _tensor_to_numpy(t, path, file_size=None):
    """A numpy copy of a MindIR TensorProto; its declared size is checked against the file first."""
    where = f"tensor {t.name!r}"
    dtype = _DTYPES.get(t.data_type)
    if dtype is None:
        raise ModelFormatError(path, f"data type code {t.data_type} is not a tensor type this "
                               "converter reads; the weights are corrupt or of an unsupported type",
                               element=where)
    if t.external_data.location if t.HasField("external_data") else False:
        raise ModelFormatError(path, "keeps its data in an external file, which is not supported",
                               element=where)
    file_size = os.path.getsize(path) if file_size is None else file_size
    if t.raw_data:
        dims, _ = check_tensor_size(path, where, t.dims, np.dtype(dtype).itemsize, file_size,
                                    raw_bytes=len(t.raw_data))
        return np.frombuffer(t.raw_data, dtype=dtype).reshape(dims).copy()
    for field in ("float_data", "int64_data", "int32_data", "double_data"):
        vals = getattr(t, field)
        if len(vals):
            dims, _ = check_tensor_size(path, where, t.dims, 1, file_size, values=len(vals))
            try:
                return np.asarray(vals, dtype=dtype).reshape(dims)
            except (OverflowError, ValueError) as e:
                raise ModelFormatError(path, f"{field} values do not fit {np.dtype(dtype).name}: "
                                       f"{e}; the weights are corrupt", element=where) from None
    raise ModelFormatError(path, "has no data", element=where)


def _attr_value(a, path, where="attribute"):
    """A MindIR AttributeProto as a python value (tuples for TUPLE/LIST, numpy for tensors)."""
    pb = mind_ir_pb2()
    try:
        kind = pb.AttributeProto.AttributeType.Name(a.type)
    except ValueError:
        raise ModelFormatError(path, f"unknown attribute type code {a.type}; the file is corrupt",
                               element=where) from None
    if kind in ("UMONAD", "IOMONAD"):
        return MONAD
    if kind == "NONE":
        return None
    if kind in ("TUPLE", "LIST"):
        return tuple(_attr_value(v, path, where) for v in a.values)
    if kind in ("TENSOR", "TENSORS"):
        return _tensor_to_numpy(a.tensors[0], path) if len(a.tensors) else None
    if kind == "BOOL":
        return bool(a.ints[0] if len(a.ints) else a.i)
    if kind.startswith("INT") or kind.startswith("UINT"):
        return int(a.ints[0] if len(a.ints) else a.i)
    if kind == "FLOAT":
        return float(a.floats[0] if len(a.floats) else a.f)
    if kind == "DOUBLE":
        return float(a.doubles[0] if len(a.doubles) else a.d)
    if kind == "STRING":
        s = a.strings[0] if len(a.strings) else a.s
        try:
            return s.decode("utf-8") if isinstance(s, bytes) else s
        except UnicodeDecodeError:
            raise ModelFormatError(path, "string value is not valid UTF-8; the file is corrupt",
                                   element=where) from None
    return ("<unsupported attribute type>", kind)


class _MindirNode:
    """One parsed CNode: real op type, primitive attributes and input names."""

    def __init__(self, proto, op, prim_attrs):
        self.name = proto.name
        self.op = op
        self.inputs = list(proto.input)
        self.outputs = list(proto.output) or [proto.name]
        self.attrs = prim_attrs

    def arg(self, ctx, index, attr=None, default=None):
        """A constant argument: the primitive attribute `attr`, else constant input `index`."""
        if attr is not None and attr in self.attrs:
            return self.attrs[attr]
        if index is not None and index < len(self.inputs):
            return ctx.scalar(self.inputs[index], f"{self.op} argument {index} of {self.name}")
        return default


def parse_model_proto(path):
    model = read_model(path)     # runtime.mindir_info: size bound, protobuf parse, typed errors
    check_utf8(model, path)
    if not len(model.graph.node) or not len(model.graph.output):
        raise ModelFormatError(path, "not a MINDIR model (no graph, nodes or outputs); the file is "
                               "corrupt, truncated or of another format")
    return model


# MINDIR op -> the fewest inputs its handler reads (monad inputs may follow).
MIN_INPUTS = {"Conv2D": 2, "BatchNorm": 5, "BiasAdd": 2, "MatMul": 2, "TupleGetItem": 2,
              "MakeTuple": 0, "UpdateState": 0}
for _op in ("Add", "Sub", "Mul", "Muls", "RealDiv", "Div"):
    MIN_INPUTS[_op] = 2


def _input_shape(path, inp):
    where = f"graph input {inp.name!r}"
    t = inp.tensor[0]
    if t.data_type != MINDIR_FLOAT32:
        raise ConversionError(f"has data type code {t.data_type}; only float32 inputs are "
                              "supported", path=path, element=where)
    dims = tuple(int(d) for d in t.dims)
    if any(d < -1 for d in dims):
        raise ModelFormatError(path, f"has invalid dims {list(dims)}", element=where)
    return dims                                       # -1: dynamic, --input-shape must say


def load(path):
    model = parse_model_proto(path)
    file_size = os.path.getsize(path)
    ctx = FrontendContext(path, "mindir")
    g = model.graph
    if len(model.functions):
        raise ConversionError("MINDIR with sub-graphs (control flow) is not supported", path=path)
    prims = {p.name: p for p in model.primitives}

    for p in g.parameter:
        if p.name in ctx.graph.consts:
            raise ModelFormatError(path, "is defined twice", element=f"parameter {p.name!r}")
        ctx.graph.consts[p.name] = _tensor_to_numpy(p, path, file_size)
    for inp in g.input:
        if not len(inp.tensor):
            raise ModelFormatError(path, "has no tensor description", element=f"graph input {inp.name!r}")
        if inp.name in ctx.graph.inputs or inp.name in ctx.graph.consts:
            raise ModelFormatError(path, "is defined twice", element=f"graph input {inp.name!r}")
        ctx.graph.inputs.append(inp.name)
        ctx.graph.shapes[inp.name] = _input_shape(path, inp)

    parsed, named_ops = [], []
    defined = set(ctx.graph.consts) | set(ctx.graph.inputs)
    for proto in g.node:
        where = f"node {proto.name!r}"
        for v in proto.input:
            if v not in defined:
                raise ModelFormatError(path, f"reads {v!r}, which no earlier node, input or "
                                       "parameter produces (a cycle or an unsorted graph)",
                                       element=where)
        outs = list(proto.output) or [proto.name]
        for v in outs:
            if not v or v in defined:
                raise ModelFormatError(path, f"output {v!r} is empty or already produced elsewhere",
                                       element=where)
            defined.add(v)
        if proto.op_type == "Constant":
            if not len(proto.attribute):
                raise ModelFormatError(path, "constant has no value", element=where)
            val = _attr_value(proto.attribute[0], path, where)
            if isinstance(val, np.ndarray):
                ctx.graph.consts[outs[0]] = val
            else:
                ctx.scalars[outs[0]] = val
            continue
        ref = proto.op_type[5:] if proto.op_type.startswith("REF::") else proto.op_type
        prim = prims.get(ref)
        if prim is None and not proto.op_type.startswith("REF::"):
            prim = proto          # MindSpore 1.x files: the node is its own primitive (op type, attributes)
        if prim is None:
            raise ModelFormatError(path, f"refers to unknown primitive {ref!r}", element=where)
        attrs = {a.name: _attr_value(a, path, f"{where} attribute {a.name!r}") for a in prim.attribute}
        parsed.append(_MindirNode(proto, prim.op_type, attrs))
        named_ops.append((proto.name, prim.op_type))
    for o in g.output:
        if o.name not in defined:
            raise ModelFormatError(path, "is not produced by any node, input or parameter",
                                   element=f"graph output {o.name!r}")
    missing = [(name, op) for name, op in named_ops if op not in MINDIR_OPS.handlers]
    if missing:
        raise UnsupportedOpsError(missing, what="convert (MINDIR front end)", path=path)

    for node in parsed:
        where = f"node {node.name!r} ({node.op})"
        if len(node.inputs) < MIN_INPUTS.get(node.op, 1):
            raise ConversionError(f"takes at least {MIN_INPUTS.get(node.op, 1)} input(s), got "
                                  f"{len(node.inputs)}", path=path, element=where)
        try:
            MINDIR_OPS[node.op](ctx, node)
        except ConversionError as e:
            raise e.locate(path=path, element=where)

    outs = []
    for o in g.output:
        name = ctx.resolve(o.name)
        outs.extend(ctx.tuples[name] if name in ctx.tuples else [name])
    ctx.graph.outputs = [ctx.resolve(v) for v in outs]
    _strip_graph_prefix(ctx.graph, g.name)
    return ctx.graph


def _strip_graph_prefix(graph, prefix):
    """`<graph name>:x` -> `x`: every MindIR value carries its graph's long generated name."""
    prefix = prefix + ":"
    names = set(graph.consts) | set(graph.inputs) | set(graph.outputs) | set(graph.shapes)
    for n in graph.nodes:
        names.update(n.inputs)
        names.update(n.outputs)
    short = {v: v[len(prefix):] for v in names if v.startswith(prefix) and len(v) > len(prefix)}
    if len(set(short.values()) | (names - set(short))) != len(names):
        return                                   # stripping would make two names collide
    ren = lambda v: short.get(v, v)  # noqa: E731
    graph.nodes = [n.with_(name=ren(n.name), inputs=[ren(v) for v in n.inputs],
                           outputs=[ren(v) for v in n.outputs]) for n in graph.nodes]
    graph.consts = {ren(k): v for k, v in graph.consts.items()}
    graph.shapes = {ren(k): v for k, v in graph.shapes.items()}
    graph.inputs = [ren(v) for v in graph.inputs]
    graph.outputs = [ren(v) for v in graph.outputs]


# ---- plumbing -----------------------------------------------------------------------------------

@MINDIR_OPS.register("Load", "Depend")
def _passthrough(ctx, node):
    ctx.alias(node.outputs[0], node.inputs[0])


@MINDIR_OPS.register("Identity")
def _identity(ctx, node):
    ctx.emit(node.name, "Identity", node.inputs[:1], node.outputs[:1])


@MINDIR_OPS.register("UpdateState")
def _update_state(ctx, node):
    ctx.scalars[node.outputs[0]] = MONAD


@MINDIR_OPS.register("MakeTuple")
def _make_tuple(ctx, node):
    ctx.tuples[node.outputs[0]] = tuple(ctx.resolve(v) for v in node.inputs)


@MINDIR_OPS.register("TupleGetItem")
def _tuple_get_item(ctx, node):
    items = ctx.tuple_of(node.inputs[0])
    index = as_int(ctx.scalar(node.inputs[1], "tuple index"), "tuple index")
    if not 0 <= index < len(items):
        raise ConversionError(f"tuple index {index} is out of range for {len(items)} items")
    ctx.alias(node.outputs[0], items[index])


@MINDIR_OPS.register("Dropout")
def _dropout(ctx, node):
    out = node.outputs[0] + ":y"
    ctx.emit(node.name, "Identity", node.inputs[:1], [out])
    ctx.tuples[node.outputs[0]] = (out, out)


# ---- compute ops --------------------------------------------------------------------------------

def _hw(v, what):
    """(h, w) of a MindSpore window attribute: k, (kh, kw) or (1, 1, kh, kw) as NCHW ops store it."""
    v = as_ints(v, what)
    if len(v) not in (1, 2, 4) or len(v) == 4 and v[:2] != (1, 1):
        raise ConversionError(f"{what} {list(v)} is not k, (kh, kw) or (1, 1, kh, kw)")
    return v[-2:] if len(v) >= 2 else (v[0], v[0])


_PAD_MODES = {0: "pad", 1: "same", 2: "valid", "PAD": "pad", "SAME": "same", "VALID": "valid"}


def _pad_mode(v):
    if isinstance(v, str):
        return _PAD_MODES.get(v.upper())
    return _PAD_MODES.get(v) if isinstance(v, int) and not isinstance(v, bool) else None


def _flag(node, ctx, index, attr, default=False):
    return bool(as_int(node.arg(ctx, index, attr, default), attr))


def _check_nchw(node, fmt):
    if not isinstance(fmt, (str, int, type(None))) or fmt not in (None, "NCHW", 0):
        raise ConversionError(f"{node.op} with data format {fmt!r} is not supported (only NCHW)")


def _group(a):
    group = as_int(a.get("group", a.get("groups", 1)), "group")
    if "groups" in a and as_int(a["groups"], "groups") != group:
        raise ConversionError(f"attributes group {group} and groups {a['groups']} disagree")
    return group


@MINDIR_OPS.register("Conv2D")
def _conv2d(ctx, node):
    a = node.attrs
    _check_nchw(node, a.get("format"))
    if "kernel_size" not in a:
        raise ConversionError("attribute kernel_size is missing")
    mode = a.get("pad_mode", "pad")
    pad_mode = _pad_mode(mode)
    if pad_mode is None:
        raise ConversionError(f"pad mode {mode!r} is not supported")
    ctx.emit(node.name, "Conv2D", node.inputs[:2], node.outputs[:1],
             kernel=_hw(a["kernel_size"], "kernel_size"), stride=_hw(a.get("stride", 1), "stride"),
             dilation=_hw(a.get("dilation", 1), "dilation"),
             pads=as_ints(a.get("pad_list", (0,) * 4), "pad_list"), pad_mode=pad_mode,
             group=_group(a), activation=0)


@MINDIR_OPS.register("BatchNorm")
def _batchnorm(ctx, node):
    if _flag(node, ctx, 5, "is_training"):
        raise ConversionError("BatchNorm in training mode cannot be converted")
    _check_nchw(node, node.arg(ctx, 8, "data_format", 0))
    out = node.outputs[0] + ":y"
    ctx.emit(node.name, "BatchNorm", node.inputs[:5], [out],
             epsilon=as_float(node.arg(ctx, 6, "epsilon", 1e-5), "epsilon"))
    ctx.tuples[node.outputs[0]] = (out, out, out, out, out)


_ACTS = {"ReLU": 1, "Sigmoid": 2, "ReLU6": 3, "Tanh": 10}


@MINDIR_OPS.register(*_ACTS)
def _activation(ctx, node):
    ctx.emit(node.name, "Activation", node.inputs[:1], node.outputs[:1], type=_ACTS[node.op])


_BINARY = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Muls": "Mul", "RealDiv": "Div", "Div": "Div"}


@MINDIR_OPS.register(*_BINARY)
def _binary(ctx, node):
    ctx.emit(node.name, _BINARY[node.op], node.inputs[:2], node.outputs[:1], activation=0)


@MINDIR_OPS.register("BiasAdd")
def _bias_add(ctx, node):
    _check_nchw(node, node.arg(ctx, 2, "data_format", 0))
    ctx.emit(node.name, "BiasAdd", node.inputs[:2], node.outputs[:1], axis=1)


@MINDIR_OPS.register("MatMul")
def _matmul(ctx, node):
    ctx.emit(node.name, "MatMul", node.inputs[:2], node.outputs[:1],
             transpose_a=_flag(node, ctx, 2, "transpose_a"),
             transpose_b=_flag(node, ctx, 3, "transpose_b"), activation=0)


@MINDIR_OPS.register("ReduceMean")
def _reduce_mean(ctx, node):
    axes = as_ints(node.arg(ctx, 1, "axis", ()), "axis")
    if not axes:
        raise ConversionError("ReduceMean over all axes is not supported")
    ctx.emit(node.name, "ReduceMean", node.inputs[:1], node.outputs[:1], axes=axes,
             keep_dims=_flag(node, ctx, 2, "keep_dims"))


@MINDIR_OPS.register("Reshape")
def _reshape(ctx, node):
    shape = np.asarray(as_ints(node.arg(ctx, 1, "shape"), "shape"), dtype=np.int64)
    name = ctx.graph.add_const(node.name + ":shape", shape)
    ctx.emit(node.name, "Reshape", [node.inputs[0], name], node.outputs[:1])


@MINDIR_OPS.register("Flatten")
def _flatten(ctx, node):
    ctx.emit(node.name, "Flatten", node.inputs[:1], node.outputs[:1], axis=1)


@MINDIR_OPS.register("Transpose")
def _transpose(ctx, node):
    ctx.emit(node.name, "Transpose", node.inputs[:1], node.outputs[:1],
             perm=as_ints(node.arg(ctx, 1, "perm"), "perm"))


@MINDIR_OPS.register("Softmax")
def _softmax(ctx, node):
    axis = as_ints(node.arg(ctx, 1, "axis", (-1,)), "axis")
    if len(axis) != 1:
        raise ConversionError("Softmax over several axes is not supported")
    ctx.emit(node.name, "Softmax", node.inputs[:1], node.outputs[:1], axis=int(axis[0]))


@MINDIR_OPS.register("Concat")
def _concat(ctx, node):
    items = ctx.tuple_of(node.inputs[0])
    ctx.emit(node.name, "Concat", items, node.outputs[:1],
             axis=as_int(node.arg(ctx, 1, "axis", 0), "axis"))


def _pool(ctx, node, op):
    kernel = _hw(node.arg(ctx, 1, "kernel_size"), "kernel_size")
    stride = _hw(node.arg(ctx, 2, "strides", 1), "strides")
    mode = node.arg(ctx, 3, "pad_mode", "VALID")
    mode = _pad_mode(mode)
    if mode not in ("same", "valid"):
        raise ConversionError(f"{node.op} pad mode {mode!r} is not supported")
    _check_nchw(node, node.arg(ctx, 4, "format", "NCHW"))
    ctx.emit(node.name, op, node.inputs[:1], node.outputs[:1], kernel=kernel, stride=stride,
             pads=(0, 0, 0, 0), pad_mode=mode, ceil_mode=False, count_include_pad=False)


@MINDIR_OPS.register("MaxPool")
def _maxpool(ctx, node):
    _pool(ctx, node, "MaxPool")


@MINDIR_OPS.register("AvgPool")
def _avgpool(ctx, node):
    _pool(ctx, node, "AvgPool")
