"""MINDIR front end (MindSpore 2.x exports), parsed with MindSpore's own `mind_ir_pb2`.

Node op types look like `REF::Conv2D:4`; the part after `REF::` names an entry of
`ModelProto.primitives`, whose `op_type` is the real operator. PRIMITIVE ops carry their attributes on
the primitive; PRIMITIVE_FUNCTION ops take them as constant inputs (ValueNodes). Side-effect plumbing
(Load, UpdateState, Depend, MakeTuple, TupleGetItem) is resolved here into aliases.
"""
import importlib.util
import os
import sys

import numpy as np

from runtime.errors import ModelFormatError
from runtime.mindspore_import import from_mindspore

from ..errors import ConversionError
from ..registry import OpRegistry
from .common import FrontendContext

MINDIR_OPS = OpRegistry("MINDIR")
MONAD = object()
_MAX_BYTES = 4 << 30

# mind_ir TensorProto.DataType -> numpy
_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 4: np.uint16, 5: np.int16, 6: np.int32,
           7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64, 12: np.uint32, 13: np.uint64}


def _tensor_to_numpy(t, path):
    dtype = _DTYPES.get(t.data_type)
    if dtype is None:
        raise ModelFormatError(path, f"tensor {t.name!r} has unsupported data type {t.data_type}")
    if t.external_data.location if t.HasField("external_data") else False:
        raise ModelFormatError(path, f"tensor {t.name!r} keeps its data in an external file, "
                               "which is not supported")
    dims = tuple(int(d) for d in t.dims)
    if any(d < 0 for d in dims):
        raise ModelFormatError(path, f"tensor {t.name!r} has negative dims {dims}")
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if t.raw_data:
        need = count * np.dtype(dtype).itemsize
        if len(t.raw_data) != need:
            raise ModelFormatError(path, f"tensor {t.name!r}: {len(t.raw_data)} data bytes for "
                                   f"shape {list(dims)} (expected {need}); the file is corrupt")
        return np.frombuffer(t.raw_data, dtype=dtype).reshape(dims).copy()
    for field in ("float_data", "int64_data", "int32_data", "double_data"):
        vals = getattr(t, field)
        if len(vals):
            if len(vals) != count:
                raise ModelFormatError(path, f"tensor {t.name!r}: {len(vals)} values for shape "
                                       f"{list(dims)}")
            return np.asarray(vals, dtype=dtype).reshape(dims)
    raise ModelFormatError(path, f"tensor {t.name!r} has no data")


def mind_ir_pb2():
    """MindSpore's generated protobuf module `mindspore.train.mind_ir_pb2`.

    Importing it through the package starts all of MindSpore (about 5 s); unless MindSpore is already
    loaded, the same file is loaded on its own, which takes milliseconds.
    """
    if "mindspore.train.mind_ir_pb2" in sys.modules or "mindspore" in sys.modules:
        mind_ir_pb2 = from_mindspore("mindspore.train", "mind_ir_pb2")
        return mind_ir_pb2
    if "_toolkit_mind_ir_pb2" in sys.modules:
        return sys.modules["_toolkit_mind_ir_pb2"]
    spec = importlib.util.find_spec("mindspore")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError("reading MINDIR needs the mindspore package (training extra)")
    path = os.path.join(spec.submodule_search_locations[0], "train", "mind_ir_pb2.py")
    if not os.path.isfile(path):
        mind_ir_pb2 = from_mindspore("mindspore.train", "mind_ir_pb2")
        return mind_ir_pb2
    module_spec = importlib.util.spec_from_file_location("_toolkit_mind_ir_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules["_toolkit_mind_ir_pb2"] = module
    return module


def _attr_value(a, path):
    """A MindIR AttributeProto as a python value (tuples for TUPLE/LIST, numpy for tensors)."""
    pb = mind_ir_pb2()
    kind = pb.AttributeProto.AttributeType.Name(a.type)
    if kind in ("UMONAD", "IOMONAD"):
        return MONAD
    if kind == "NONE":
        return None
    if kind in ("TUPLE", "LIST"):
        return tuple(_attr_value(v, path) for v in a.values)
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
        return s.decode("utf-8", "replace") if isinstance(s, bytes) else s
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
    pb = mind_ir_pb2()
    size = os.path.getsize(path)
    if size > _MAX_BYTES:
        raise ModelFormatError(path, f"file is {size} bytes; larger than the 4 GiB limit")
    with open(path, "rb") as f:
        data = f.read()
    model = pb.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelFormatError(path, f"not a valid MINDIR protobuf (corrupt or truncated): {e}") from None
    if not model.HasField("graph") or not len(model.graph.node) or not len(model.graph.output):
        raise ModelFormatError(path, "not a MINDIR model (no graph, nodes or outputs); the file is "
                               "corrupt, truncated or of another format")
    return model


def load(path):
    model = parse_model_proto(path)
    ctx = FrontendContext(path, "mindir")
    g = model.graph
    if len(model.functions):
        raise ConversionError(f"{path}: MINDIR with sub-graphs (control flow) is not supported")
    prims = {p.name: p for p in model.primitives}

    for p in g.parameter:
        ctx.graph.consts[p.name] = _tensor_to_numpy(p, path)
    for inp in g.input:
        if not len(inp.tensor):
            raise ModelFormatError(path, f"graph input {inp.name!r} has no tensor description")
        ctx.graph.inputs.append(inp.name)
        ctx.graph.shapes[inp.name] = tuple(int(d) for d in inp.tensor[0].dims)

    parsed, named_ops = [], []
    for proto in g.node:
        if proto.op_type == "Constant":
            if not len(proto.attribute):
                raise ModelFormatError(path, f"constant {proto.name!r} has no value")
            val = _attr_value(proto.attribute[0], path)
            if isinstance(val, np.ndarray):
                ctx.graph.consts[proto.output[0] if proto.output else proto.name] = val
            else:
                ctx.scalars[proto.output[0] if proto.output else proto.name] = val
            continue
        ref = proto.op_type[5:] if proto.op_type.startswith("REF::") else proto.op_type
        prim = prims.get(ref)
        if prim is None:
            raise ModelFormatError(path, f"node {proto.name!r} refers to unknown primitive {ref!r}")
        attrs = {a.name: _attr_value(a, path) for a in prim.attribute}
        parsed.append(_MindirNode(proto, prim.op_type, attrs))
        named_ops.append((proto.name, prim.op_type))
    MINDIR_OPS.check_all_supported(named_ops)

    for node in parsed:
        MINDIR_OPS[node.op](ctx, node)

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
    ctx.alias(node.outputs[0], items[int(ctx.scalar(node.inputs[1], "tuple index"))])


@MINDIR_OPS.register("Dropout")
def _dropout(ctx, node):
    out = node.outputs[0] + ":y"
    ctx.emit(node.name, "Identity", node.inputs[:1], [out])
    ctx.tuples[node.outputs[0]] = (out, out)


# ---- compute ops --------------------------------------------------------------------------------

def _hw(v):
    v = tuple(int(x) for x in (v if isinstance(v, (tuple, list)) else (v, v)))
    return v[-2:] if len(v) >= 2 else (v[0], v[0])


def _check_nchw(node, fmt):
    if fmt not in (None, "NCHW", 0):
        raise ConversionError(f"{node.name}: {node.op} with data format {fmt!r} is not supported "
                              "(only NCHW)")


@MINDIR_OPS.register("Conv2D")
def _conv2d(ctx, node):
    a = node.attrs
    _check_nchw(node, a.get("format"))
    pad_mode = str(a.get("pad_mode", "pad")).lower()
    ctx.emit(node.name, "Conv2D", node.inputs[:2], node.outputs[:1],
             kernel=_hw(a["kernel_size"]), stride=_hw(a.get("stride", 1)),
             dilation=_hw(a.get("dilation", 1)), pads=tuple(int(p) for p in a.get("pad_list", (0,) * 4)),
             pad_mode=pad_mode, group=int(a.get("group", a.get("groups", 1))), activation=0)


@MINDIR_OPS.register("BatchNorm")
def _batchnorm(ctx, node):
    if node.arg(ctx, 5, "is_training", False):
        raise ConversionError(f"{node.name}: BatchNorm in training mode cannot be converted")
    _check_nchw(node, node.arg(ctx, 8, "data_format", 0))
    out = node.outputs[0] + ":y"
    ctx.emit(node.name, "BatchNorm", node.inputs[:5], [out],
             epsilon=float(node.arg(ctx, 6, "epsilon", 1e-5)))
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
             transpose_a=bool(node.arg(ctx, 2, "transpose_a", False)),
             transpose_b=bool(node.arg(ctx, 3, "transpose_b", False)), activation=0)


@MINDIR_OPS.register("ReduceMean")
def _reduce_mean(ctx, node):
    axes = node.arg(ctx, 1, "axis", ())
    axes = tuple(axes) if isinstance(axes, (tuple, list)) else (axes,)
    ctx.emit(node.name, "ReduceMean", node.inputs[:1], node.outputs[:1], axes=tuple(int(x) for x in axes),
             keep_dims=bool(node.arg(ctx, 2, "keep_dims", False)))


@MINDIR_OPS.register("Reshape")
def _reshape(ctx, node):
    shape = np.asarray(node.arg(ctx, 1, "shape"), dtype=np.int64)
    name = ctx.graph.add_const(node.name + ":shape", shape)
    ctx.emit(node.name, "Reshape", [node.inputs[0], name], node.outputs[:1])


@MINDIR_OPS.register("Flatten")
def _flatten(ctx, node):
    ctx.emit(node.name, "Flatten", node.inputs[:1], node.outputs[:1], axis=1)


@MINDIR_OPS.register("Transpose")
def _transpose(ctx, node):
    ctx.emit(node.name, "Transpose", node.inputs[:1], node.outputs[:1],
             perm=tuple(int(p) for p in node.arg(ctx, 1, "perm")))


@MINDIR_OPS.register("Softmax")
def _softmax(ctx, node):
    axis = node.arg(ctx, 1, "axis", (-1,))
    axis = axis if isinstance(axis, (tuple, list)) else (axis,)
    if len(axis) != 1:
        raise ConversionError(f"{node.name}: Softmax over several axes is not supported")
    ctx.emit(node.name, "Softmax", node.inputs[:1], node.outputs[:1], axis=int(axis[0]))


@MINDIR_OPS.register("Concat")
def _concat(ctx, node):
    items = ctx.tuple_of(node.inputs[0])
    ctx.emit(node.name, "Concat", items, node.outputs[:1], axis=int(node.arg(ctx, 1, "axis", 0)))


_PAD_MODES = {0: "pad", 1: "same", 2: "valid", "PAD": "pad", "SAME": "same", "VALID": "valid"}


def _pool(ctx, node, op):
    kernel = _hw(node.arg(ctx, 1, "kernel_size"))
    stride = _hw(node.arg(ctx, 2, "strides", 1))
    mode = node.arg(ctx, 3, "pad_mode", "VALID")
    mode = _PAD_MODES.get(mode.upper() if isinstance(mode, str) else mode)
    if mode not in ("same", "valid"):
        raise ConversionError(f"{node.name}: {node.op} pad mode {mode!r} is not supported")
    _check_nchw(node, node.arg(ctx, 4, "format", "NCHW"))
    ctx.emit(node.name, op, node.inputs[:1], node.outputs[:1], kernel=kernel, stride=stride,
             pads=(0, 0, 0, 0), pad_mode=mode, ceil_mode=False, count_include_pad=False)


@MINDIR_OPS.register("MaxPool")
def _maxpool(ctx, node):
    _pool(ctx, node, "MaxPool")


@MINDIR_OPS.register("AvgPool")
def _avgpool(ctx, node):
    _pool(ctx, node, "AvgPool")
