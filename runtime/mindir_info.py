"""The one reader of MINDIR files (MindSpore's protobuf), for every layer.

The MindSpore engine needs a MINDIR's input and output tensors, `toolkit export` its op types and
input name, and the converter front end the whole graph; all of them parse the file here, with the
same size bound and the same typed errors (ModelFormatError naming the file).

The message classes come from MindSpore's generated `mind_ir_pb2.py`. Importing it through the
package starts all of MindSpore (about 5 s), so unless MindSpore is already loaded the same file is
loaded on its own, which takes milliseconds and imports only protobuf. Nothing is imported until a
function here is called.
"""
import importlib.util
import os
import sys

from .errors import EngineUnavailableError, ModelFormatError
from .files import read_regular
from .mindspore_import import from_mindspore

MAX_BYTES = 4 << 30
# mind_ir.proto TensorProto.DataType -> numpy dtype name
# TensorProto.DataType codes of mind_ir.proto (the ones a MINDIR graph input can carry).
MINDIR_FLOAT32 = 1
DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
          9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}
_STANDALONE = "_toolkit_mind_ir_pb2"


def mind_ir_pb2():
    """MindSpore's generated protobuf module `mindspore.train.mind_ir_pb2`, loaded cheaply."""
    if "mindspore.train.mind_ir_pb2" in sys.modules or "mindspore" in sys.modules:
        module = from_mindspore("mindspore.train", "mind_ir_pb2")
        return module
    if _STANDALONE in sys.modules:
        return sys.modules[_STANDALONE]
    spec = importlib.util.find_spec("mindspore")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailableError("reading MINDIR files", [],
                                     "it needs the mindspore package (training extra)")
    path = os.path.join(spec.submodule_search_locations[0], "train", "mind_ir_pb2.py")
    if not os.path.isfile(path):
        module = from_mindspore("mindspore.train", "mind_ir_pb2")
        return module
    module_spec = importlib.util.spec_from_file_location(_STANDALONE, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[_STANDALONE] = module
    return module


def read_model(path):
    """The parsed ModelProto of a MINDIR file; ModelFormatError when it is no MINDIR graph."""
    pb = mind_ir_pb2()
    data = read_regular(path, MAX_BYTES, ModelFormatError, what="MINDIR file")
    model = pb.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelFormatError(path, f"not a valid MINDIR protobuf (corrupt or truncated): {e}") from None
    if not model.HasField("graph"):
        raise ModelFormatError(path, "not a MINDIR model (no graph); the file is corrupt, truncated "
                               "or of another format")
    _check_indexed_fields(model, pb, path)
    return model


# Attribute types whose payload MindSpore's C++ loader reads as `tensors(0)` / `graphs(0)` without a
# size check: an empty one aborts the whole process (found by benchmarks/fuzz, cases mindir:1:75 and
# mindir:1:1810, the latter a TUPLE element inside a primitive; mindir:2:90, a SCALAR, whose abstract
# is built from tensors(0)), so they are refused here, at any depth.
_NEEDS_PAYLOAD = {"TENSOR": "tensors", "TENSORS": "tensors", "SCALAR": "tensors", "CSR_TENSOR": "tensors",
                  "COO_TENSOR": "tensors", "ROW_TENSOR": "tensors", "MAP_TENSOR": "tensors",
                  "GRAPH": "graphs"}
_MAX_ATTRIBUTE_DEPTH = 64


def _check_indexed_fields(model, pb, path):
    """Refuse what would crash MindSpore's loader instead of raising (it indexes without checking)."""
    names = pb.AttributeProto.AttributeType
    wanted = {names.Value(n): field for n, field in _NEEDS_PAYLOAD.items() if n in names.keys()}

    def check(attr, where, depth=0):
        if depth > _MAX_ATTRIBUTE_DEPTH:
            raise ModelFormatError(path, f"attribute {attr.name!r} nests deeper than "
                                   f"{_MAX_ATTRIBUTE_DEPTH} levels", element=where)
        field = wanted.get(attr.type)
        if field is not None and not len(getattr(attr, field)):
            raise ModelFormatError(path, f"attribute {attr.name!r} of type {names.Name(attr.type)} "
                                   f"holds no {field[:-1]}; the file is corrupt", element=where)
        for value in attr.values:
            check(value, where, depth + 1)

    for graph in [model.graph, *model.functions]:
        for node in graph.node:
            for a in node.attribute:
                check(a, f"node {node.name!r}")
    for prim in model.primitives:
        for a in prim.attribute:
            check(a, f"primitive {prim.name!r}")


def _spec(value):
    from .engines.base import TensorSpec
    from .engines.layout import with_layout
    t = value.tensor[0] if len(value.tensor) else None
    shape = tuple(int(d) if d > 0 else None for d in t.dims) if t is not None else ()
    dtype = DTYPES.get(t.data_type, "float32") if t is not None else "float32"
    return with_layout(TensorSpec(value.name, shape, dtype))


def mindir_io(path, model=None):
    """(inputs, outputs) TensorSpecs of a MINDIR file's graph (format filled by the layout rule)."""
    model = read_model(path) if model is None else model
    return [_spec(v) for v in model.graph.input], [_spec(v) for v in model.graph.output]


def mindir_ops(path, model=None):
    """The real op type of every node of the graph and its functions (`REF::Conv2D:4` resolved
    through ModelProto.primitives)."""
    model = read_model(path) if model is None else model
    prims = {p.name: p.op_type for p in model.primitives}
    return [prims.get(n.op_type[len("REF::"):], n.op_type) if n.op_type.startswith("REF::")
            else n.op_type for g in [model.graph, *model.functions] for n in g.node]
