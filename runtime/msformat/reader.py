"""Read a MindSpore Lite `.ms` file into an MsModel, checking everything a hostile file could break.

Schema defaults are applied (the converter omits fields equal to them). Anything malformed becomes a
ModelFormatError naming the file and the problem: wrong identifier, offsets or vector lengths past the
end, out-of-range tensor or node indices, cycles, constant data that does not fit its dims.
"""
import os

from ..errors import ModelFormatError
from . import schema
from .flatview import Buffer, FlatError
from .model import MsModel, MsNode, MsSubGraph, MsTensor, QuantParam, TYPEID_TO_NUMPY

IDENTIFIER = b"MSL2"
MAX_FILE_BYTES = 4 << 30          # larger files are refused before reading them
MAX_RANK = 16
MAX_ELEMENTS = 1 << 40            # a computed tensor claiming more elements than this is absurd
UNKNOWN_OP_PREFIX = "UnknownPrimitive"


def read_ms(path) -> MsModel:
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ModelFormatError(path, f"file is {size} bytes, larger than any .ms model")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ModelFormatError(path, f"cannot read file: {e.strerror or e}") from None
    return read_ms_bytes(data, source=path)


def read_ms_bytes(data, source="<bytes>") -> MsModel:
    if len(data) < 8:
        raise ModelFormatError(source, f"only {len(data)} bytes: too short for a .ms file")
    buf = Buffer(bytes(data))
    ident = buf.identifier()
    if ident != IDENTIFIER:
        raise ModelFormatError(source, f"file identifier is {ident!r}, not {IDENTIFIER!r}: not a "
                                       "MindSpore Lite .ms model (or written by an unsupported version)")
    try:
        model = _read_meta_graph(buf.root())
    except FlatError as e:
        raise ModelFormatError(source, f"corrupt flatbuffer: {e}") from None
    problem = validate(model)
    if problem:
        raise ModelFormatError(source, problem)
    return model


def _read_meta_graph(root):
    model = MsModel(
        name=root.string(0, "MetaGraph.name"),
        version=root.string(1, "MetaGraph.version"),
        fmk_type=root.scalar(2, "i32", 0),
        inputs=list(root.numbers(3, "u32", "MetaGraph.inputIndex")),
        outputs=list(root.numbers(4, "u32", "MetaGraph.outputIndex")),
    )
    model.nodes = [_read_node(t) for t in root.tables(6, "MetaGraph.nodes")]
    model.tensors = [_read_tensor(t) for t in root.tables(7, "MetaGraph.allTensors")]
    subgraphs = [_read_subgraph(t) for t in root.tables(8, "MetaGraph.subGraph")]
    if subgraphs:
        model.subgraph_name = subgraphs[0].name
    if len(subgraphs) > 1:
        model.subgraphs = subgraphs
    return model


def _read_subgraph(t):
    return MsSubGraph(name=t.string(0, "SubGraph.name"),
                      inputs=list(t.numbers(1, "u32", "SubGraph.inputIndices")),
                      outputs=list(t.numbers(2, "u32", "SubGraph.outputIndices")),
                      nodes=list(t.numbers(3, "u32", "SubGraph.nodeIndices")),
                      tensors=list(t.numbers(4, "u32", "SubGraph.tensorIndices")))


def _read_tensor(t):
    quant = [_read_quant_param(q) for q in t.tables(7, "Tensor.quantParams")]
    external = [(e.string(0, "ExternalData.checkSum"), e.string(1, "ExternalData.location"),
                 e.scalar(2, "i64", 0), e.scalar(3, "i64", -1))
                for e in t.tables(12, "Tensor.externalData")]
    return MsTensor(
        node_type=t.scalar(0, "i32", 0),
        data_type=t.scalar(1, "i32", 0),
        dims=t.numbers(2, "i32", "Tensor.dims"),
        format=t.scalar(3, "i32", 0),
        ref_count=t.scalar(4, "i32", 0),
        offset=t.scalar(5, "i32", 0),
        data=t.bytes_(6, "Tensor.data") or None,
        quant_params=quant,
        quant_clusters=list(t.numbers(8, "f", "Tensor.quantClusters")),
        name=t.string(9, "Tensor.name"),
        enable_huffman_code=t.scalar(10, "b", False),
        weight_quant_compress_type=t.scalar(11, "i32", 0),
        external_data=external,
    )


def _read_quant_param(q):
    return QuantParam(scale=q.scalar(0, "f64", 1.0), zero_point=q.scalar(1, "i32", 0),
                      min=q.scalar(2, "f64", 0.0), max=q.scalar(3, "f64", 0.0),
                      narrow_range=q.scalar(4, "b", True), num_bits=q.scalar(5, "i32", 8),
                      inited=q.scalar(6, "b", False), var_corr=q.scalar(7, "f", 1.0),
                      mean_corr=q.scalar(8, "f", 0.0), dst_dtype=q.scalar(9, "i32", 32),
                      round_type=q.scalar(10, "i32", 1), multiplier=q.scalar(11, "i32", 1))


def _read_node(t):
    name = t.string(0, "CNode.name")
    prim = t.table(2, f"primitive of node {name!r}")
    if prim is None:
        raise FlatError(f"node {name!r} has no primitive")
    code = prim.union_type(0)
    if code == 0:
        raise FlatError(f"node {name!r} has an empty primitive (union type NONE)")
    if code <= len(schema.PRIMITIVE_NAMES):
        op_type = schema.PRIMITIVE_NAMES[code - 1]
        value = prim.table(1, f"{op_type} attributes of node {name!r}")
        attrs = _read_attrs(op_type, value) if value is not None else schema.op_defaults(op_type)
    else:  # a newer schema than ours: keep the node, flag it by name, no attributes
        op_type, attrs = f"{UNKNOWN_OP_PREFIX}{code}", {}
    return MsNode(name=name, op_type=op_type, attrs=attrs,
                  inputs=list(t.numbers(3, "u32", f"inputs of node {name!r}")),
                  outputs=list(t.numbers(4, "u32", f"outputs of node {name!r}")),
                  quant_type=t.scalar(5, "i32", 0))


def _read_attrs(op_type, table):
    attrs = {}
    for i, (field, typ, default) in enumerate(schema.OP_FIELDS[op_type]):
        what = f"{op_type}.{field}"
        if typ in schema.SCALAR_TYPES:
            attrs[field] = table.scalar(i, typ, default)
        elif typ in schema.VECTOR_TYPES:
            attrs[field] = table.numbers(i, schema.VECTOR_TYPES[typ], what)
        elif typ == "s":
            attrs[field] = table.string(i, what, default)
        elif typ == "vec2d":
            outer = table.table(i, what)
            rows = outer.tables(0, what) if outer is not None else []
            attrs[field] = tuple(row.numbers(0, "i64", what) for row in rows)
        elif typ == "[attr]":
            attrs[field] = tuple((a.string(0, what), a.bytes_(1, what) or b"")
                                 for a in table.tables(i, what))
        else:  # pragma: no cover - schema tables only use the tokens above
            raise AssertionError(typ)
    return attrs


def validate(model: MsModel):
    """The first structural problem of a model (indices, sizes, cycles), or None."""
    n_t, n_n = len(model.tensors), len(model.nodes)

    def bad(indices):
        return [i for i in indices if i >= n_t]

    for what, idx in (("graph input", model.inputs), ("graph output", model.outputs)):
        if bad(idx):
            return f"{what} tensor index {bad(idx)[0]} out of range ({n_t} tensors)"
    for node in model.nodes:
        for what, idx in (("input", node.inputs), ("output", node.outputs)):
            if bad(idx):
                return (f"node {node.name!r} ({node.op_type}) {what} tensor index {bad(idx)[0]} "
                        f"out of range ({n_t} tensors)")
    for sg in model.subgraphs:
        if bad(sg.inputs + sg.outputs + sg.tensors) or any(i >= n_n for i in sg.nodes):
            return f"subgraph {sg.name!r} refers to tensors or nodes out of range"
    for i, t in enumerate(model.tensors):
        problem = _tensor_problem(t)
        if problem:
            return f"tensor {i} ({t.name!r}): {problem}"
    cycle = find_cycle(model)
    if cycle:
        return f"the graph has a cycle through node {cycle!r}"
    return None


def _tensor_problem(t: MsTensor):
    if len(t.dims) > MAX_RANK:
        return f"rank {len(t.dims)} is absurd"
    if any(d < -1 for d in t.dims):
        return f"negative dimension in {list(t.dims)}"
    count = 1
    for d in t.dims:
        count *= max(d, 1)
    if count > MAX_ELEMENTS:
        return f"dims {list(t.dims)} describe an absurd number of elements"
    dtype = TYPEID_TO_NUMPY.get(t.data_type)
    plain = (not t.enable_huffman_code and t.weight_quant_compress_type == 0
             and not t.quant_clusters and -1 not in t.dims)
    bits = t.quant_params[0].num_bits if t.quant_params else 8
    packed = 1 <= bits < 8 or 8 < bits < 16          # bit-packed weights (decoded by the engine)
    if t.is_const and dtype is not None and plain and not packed and \
            count * dtype.itemsize != len(t.data):
        return (f"holds {len(t.data)} data bytes but dims {list(t.dims)} of "
                f"{dtype.name} need {count * dtype.itemsize}")
    return None


def find_cycle(model: MsModel):
    """Name of a node on a dependency cycle (a node needing its own output, directly or not)."""
    producers = {}
    for k, node in enumerate(model.nodes):
        for o in node.outputs:
            producers.setdefault(o, []).append(k)
    state = [0] * len(model.nodes)          # 0 new, 1 on the stack, 2 done
    for start in range(len(model.nodes)):
        if state[start]:
            continue
        stack = [(start, iter(_deps(model, start, producers)))]
        state[start] = 1
        while stack:
            k, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[k] = 2
                stack.pop()
            elif state[nxt] == 1:
                return model.nodes[nxt].name
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(_deps(model, nxt, producers))))
    return None


def _deps(model, k, producers):
    return [p for i in model.nodes[k].inputs for p in producers.get(i, ())]
