"""Write an MsModel as a `.ms` FlatBuffer the way the official converter does.

Conventions (ms-format.md): identifier MSL2, `version` "MindSpore Lite X.Y.Z", fields equal to their
schema default omitted, CNode.nodeType and deviceType never written, one SubGraph listing every node
and tensor (unless the model carries several subgraphs of its own).
"""
import flatbuffers
import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import ModelFormatError
from . import schema
from .model import MsModel, MsSubGraph
from .reader import UNKNOWN_OP_PREFIX, validate

_SLOT_WRITERS = {
    "b": lambda b, i, v, d: b.PrependBoolSlot(i, bool(v), d),
    "i8": lambda b, i, v, d: b.PrependInt8Slot(i, int(v), d),
    "i32": lambda b, i, v, d: b.PrependInt32Slot(i, int(v), d),
    "i64": lambda b, i, v, d: b.PrependInt64Slot(i, int(v), d),
    "f": lambda b, i, v, d: b.PrependFloat32Slot(i, float(v), d),
}
_NUMPY_VECTOR = {"[i64]": "<i8", "[f]": "<f4", "[i32]": "<i4"}


def model_to_bytes(model: MsModel, check=True) -> bytes:
    """The `.ms` bytes of `model`. check=False skips validation (only for crafting hostile test
    files); indices must still fit in uint32."""
    found = validate(model) if check else None
    if found:
        element, problem = found
        raise ModelFormatError("<model to write>", problem, element)
    size = sum(len(t.data or b"") for t in model.tensors) + 4096 * (len(model.nodes) + 1)
    b = flatbuffers.Builder(min(size, 1 << 31))
    tensors = [_tensor(b, t) for t in model.tensors]
    nodes = [_node(b, n) for n in model.nodes]
    subgraphs = model.subgraphs or [MsSubGraph(model.subgraph_name, list(model.inputs),
                                               list(model.outputs), list(range(len(model.nodes))),
                                               list(range(len(model.tensors))))]
    subs = [_subgraph(b, sg) for sg in subgraphs]
    name = b.CreateString(model.name) if model.name else None
    version = b.CreateString(model.version) if model.version else None
    inputs, outputs = _uints(b, model.inputs), _uints(b, model.outputs)
    node_vec, tensor_vec, sub_vec = _offsets(b, nodes), _offsets(b, tensors), _offsets(b, subs)
    b.StartObject(11)
    _opt(b, 0, name)
    _opt(b, 1, version)
    b.PrependInt32Slot(2, model.fmk_type, 0)
    _opt(b, 3, inputs)
    _opt(b, 4, outputs)
    _opt(b, 6, node_vec)
    _opt(b, 7, tensor_vec)
    _opt(b, 8, sub_vec)
    b.Finish(b.EndObject(), file_identifier=b"MSL2")
    return bytes(b.Output())


def write_ms(model: MsModel, path):
    """Serialise and write atomically (a reader never sees a half-written model)."""
    atomic_write_bytes(path, model_to_bytes(model))


def _opt(b, slot, off):
    if off is not None:
        b.PrependUOffsetTRelativeSlot(slot, off, 0)


def _numbers(b, values, dtype):
    if values is None or len(values) == 0:
        return None
    return b.CreateNumpyVector(np.asarray(values, dtype=np.dtype(dtype)))


def _uints(b, values):
    return _numbers(b, values, "<u4")


def _offsets(b, offs):
    if not offs:
        return None
    b.StartVector(4, len(offs), 4)
    for off in reversed(offs):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _string(b, text):
    return b.CreateString(text) if text else None


def _subgraph(b, sg):
    name = _string(b, sg.name)
    vecs = [_uints(b, v) for v in (sg.inputs, sg.outputs, sg.nodes, sg.tensors)]
    b.StartObject(5)
    _opt(b, 0, name)
    for slot, vec in enumerate(vecs, start=1):
        _opt(b, slot, vec)
    return b.EndObject()


def _quant_param(b, q):
    b.StartObject(12)
    b.PrependFloat64Slot(0, q.scale, 1.0)
    b.PrependInt32Slot(1, q.zero_point, 0)
    b.PrependFloat64Slot(2, q.min, 0.0)
    b.PrependFloat64Slot(3, q.max, 0.0)
    b.PrependBoolSlot(4, q.narrow_range, True)
    b.PrependInt32Slot(5, q.num_bits, 8)
    b.PrependBoolSlot(6, q.inited, False)
    b.PrependFloat32Slot(7, q.var_corr, 1.0)
    b.PrependFloat32Slot(8, q.mean_corr, 0.0)
    b.PrependInt32Slot(9, q.dst_dtype, 32)
    b.PrependInt32Slot(10, q.round_type, 1)
    b.PrependInt32Slot(11, q.multiplier, 1)
    return b.EndObject()


def _external(b, entry):
    check_sum, location, offset, length = entry
    cs, loc = _string(b, check_sum), _string(b, location)
    b.StartObject(4)
    _opt(b, 0, cs)
    _opt(b, 1, loc)
    b.PrependInt64Slot(2, offset, 0)
    b.PrependInt64Slot(3, length, -1)
    return b.EndObject()


def _tensor(b, t):
    data = b.CreateNumpyVector(np.frombuffer(t.data, dtype=np.uint8)) if t.data else None
    dims = _numbers(b, t.dims, "<i4")
    quant = _offsets(b, [_quant_param(b, q) for q in t.quant_params])
    clusters = _numbers(b, t.quant_clusters, "<f4")
    name = _string(b, t.name)
    external = _offsets(b, [_external(b, e) for e in t.external_data])
    b.StartObject(13)
    b.PrependInt32Slot(0, t.node_type, 0)
    b.PrependInt32Slot(1, t.data_type, 0)
    _opt(b, 2, dims)
    b.PrependInt32Slot(3, t.format, 0)
    b.PrependInt32Slot(4, t.ref_count, 0)
    b.PrependInt32Slot(5, t.offset, 0)
    _opt(b, 6, data)
    _opt(b, 7, quant)
    _opt(b, 8, clusters)
    _opt(b, 9, name)
    b.PrependBoolSlot(10, t.enable_huffman_code, False)
    b.PrependInt32Slot(11, t.weight_quant_compress_type, 0)
    _opt(b, 12, external)
    return b.EndObject()


def _primitive_code(op_type):
    code = schema.PRIMITIVE_CODES.get(op_type)
    if code is None and op_type.startswith(UNKNOWN_OP_PREFIX):
        code = int(op_type[len(UNKNOWN_OP_PREFIX):])
    if code is None:
        raise ModelFormatError("<model to write>", f"unknown op type {op_type!r} (not in ops.fbs)")
    return code


def _op_table(b, op_type, attrs):
    fields = schema.OP_FIELDS.get(op_type, ())
    unknown = set(attrs) - {f[0] for f in fields}
    if unknown:
        raise ModelFormatError("<model to write>", f"{op_type} has no field(s) {sorted(unknown)}")
    prepared = []
    for i, (field, typ, default) in enumerate(fields):
        value = attrs.get(field, default)
        if typ in _NUMPY_VECTOR:
            prepared.append((i, None, _numbers(b, value, _NUMPY_VECTOR[typ])))
        elif typ == "s":
            prepared.append((i, None, _string(b, value)))
        elif typ == "vec2d":
            prepared.append((i, None, _vec2d(b, value)))
        elif typ == "[attr]":
            prepared.append((i, None, _offsets(b, [_attribute(b, n, d) for n, d in value])))
        else:
            prepared.append((i, typ, value))
    b.StartObject(len(fields))
    for i, typ, value in prepared:
        if typ is None:
            _opt(b, i, value)
        else:
            _SLOT_WRITERS[typ](b, i, value, fields[i][2])
    return b.EndObject()


def _vec2d(b, rows):
    if not rows:
        return None
    vecs = []
    for row in rows:
        data = _numbers(b, row, "<i8")
        b.StartObject(1)
        _opt(b, 0, data)
        vecs.append(b.EndObject())
    outer = _offsets(b, vecs)
    b.StartObject(1)
    _opt(b, 0, outer)
    return b.EndObject()


def _attribute(b, name, data):
    n = _string(b, name)
    d = b.CreateNumpyVector(np.frombuffer(data, dtype=np.uint8)) if data else None
    b.StartObject(2)
    _opt(b, 0, n)
    _opt(b, 1, d)
    return b.EndObject()


def _node(b, node):
    code = _primitive_code(node.op_type)
    value = _op_table(b, node.op_type, node.attrs)
    b.StartObject(2)
    b.PrependUint8Slot(0, code, 0)
    b.PrependUOffsetTRelativeSlot(1, value, 0)
    prim = b.EndObject()
    name = _string(b, node.name)
    ins, outs = _uints(b, node.inputs), _uints(b, node.outputs)
    b.StartObject(7)
    _opt(b, 0, name)
    b.PrependUOffsetTRelativeSlot(2, prim, 0)
    _opt(b, 3, ins)
    _opt(b, 4, outs)
    b.PrependInt32Slot(5, node.quant_type, 0)
    return b.EndObject()
