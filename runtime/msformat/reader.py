"""Read a MindSpore Lite `.ms` file into an MsModel, checking everything a hostile file could break.

Schema defaults are applied (the converter omits fields equal to them). Anything malformed becomes a
ModelFormatError naming the file, the element at fault ("tensor 12", "node 'conv1'",
"graph input 0", "subgraph 'main'") and the problem: wrong identifier, offsets or vector lengths past
the end, out-of-range tensor, node or subgraph indices, enum values outside the schema, numBits
outside 1..32, two nodes writing one tensor, cycles, constant data that does not fit its dims,
compressed streams too short for their dims.

Budget (numbers in budget.py): reading a file of S bytes builds at most READ_FACTOR * S + READ_SLACK
estimated bytes of Python objects (16 S + 16 MiB), every shared table, vector or string paid per
reference; constant data is referenced as zero-copy memoryviews into the one file buffer; all
constants together may decode to at most min(32 S + 64 MiB, 8 GiB); time is O(S). Files over
4 GiB are refused before they are read.
"""
import os

from ..errors import ModelFormatError
from . import budget, schema
from .flatview import Buffer, FlatError
from .model import (COMPRESS_DECODED, COMPRESS_NONE, FORMAT_NAMES, TYPEID_TO_NUMPY, MsModel, MsNode,
                    MsSubGraph, MsTensor, QuantParam)
from .weights import decoded_nbytes, stream_problem
from ..files import read_regular

IDENTIFIER = b"MSL2"
MAX_FILE_BYTES = budget.MAX_FILE_BYTES
MAX_RANK = 16
MAX_ELEMENTS = 1 << 40            # a computed tensor claiming more elements than this is absurd
MIN_NUM_BITS, MAX_NUM_BITS = 1, 32
UNKNOWN_OP_PREFIX = "UnknownPrimitive"


class _Located(Exception):
    """A FlatError with the element being read when it happened."""

    def __init__(self, element, problem):
        super().__init__(problem)
        self.element, self.problem = element, problem


def read_ms(path) -> MsModel:
    path = os.fspath(path)
    data = read_regular(path, MAX_FILE_BYTES, ModelFormatError, what=".ms file")
    return read_ms_bytes(data, source=path)


def read_ms_bytes(data, source="<bytes>") -> MsModel:
    """Parse and validate within the budget of budget.py for len(data)."""
    if len(data) < 8:
        raise ModelFormatError(source, f"only {len(data)} bytes: too short for a .ms file")
    if len(data) > MAX_FILE_BYTES:
        raise ModelFormatError(source, f"{len(data)} bytes, larger than any .ms model")
    buf = Buffer(data, allowance=budget.read_allowance(len(data)))
    ident = buf.identifier()
    if ident != IDENTIFIER:
        raise ModelFormatError(source, f"file identifier is {ident!r}, not {IDENTIFIER!r}: not a "
                                       "MindSpore Lite .ms model (or written by an unsupported version)")
    try:
        model = _read_meta_graph(buf.root())
    except _Located as e:
        raise ModelFormatError(source, f"corrupt flatbuffer: {e.problem}", e.element) from None
    except FlatError as e:
        raise ModelFormatError(source, f"corrupt flatbuffer: {e}", "MetaGraph") from None
    found = validate(model, file_size=len(data))
    if found:
        element, problem = found
        raise ModelFormatError(source, problem, element)
    return model


def _each(buf_tables, kind, read):
    """Read every table of a vector, naming the element ("tensor 3") a FlatError comes from."""
    out, tables = [], iter(buf_tables)
    while True:
        try:
            table = next(tables, None)          # the table itself is checked as it is reached
            if table is None:
                return out
            out.append(read(table))
        except FlatError as e:
            raise _Located(f"{kind} {len(out)}", str(e)) from None


def _read_meta_graph(root):
    model = MsModel(
        name=root.string(0, "MetaGraph.name"),
        version=root.string(1, "MetaGraph.version"),
        fmk_type=root.scalar(2, "i32", 0),
        inputs=list(root.numbers(3, "u32", "MetaGraph.inputIndex")),
        outputs=list(root.numbers(4, "u32", "MetaGraph.outputIndex")),
    )
    model.nodes = _each(root.iter_tables(6, "MetaGraph.nodes"), "node", _read_node)
    model.tensors = _each(root.iter_tables(7, "MetaGraph.allTensors"), "tensor", _read_tensor)
    subgraphs = _each(root.iter_tables(8, "MetaGraph.subGraph"), "subgraph", _read_subgraph)
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
    quant = [_read_quant_param(q) for q in t.iter_tables(7, "Tensor.quantParams")]
    external = [(e.string(0, "ExternalData.checkSum"), e.string(1, "ExternalData.location"),
                 e.scalar(2, "i64", 0), e.scalar(3, "i64", -1))
                for e in t.iter_tables(12, "Tensor.externalData")]
    return MsTensor(
        node_type=t.scalar(0, "i32", 0),
        data_type=t.scalar(1, "i32", 0),
        dims=t.numbers(2, "i32", "Tensor.dims"),
        format=t.scalar(3, "i32", 0),
        ref_count=t.scalar(4, "i32", 0),
        offset=t.scalar(5, "i32", 0),
        data=t.view(6, "Tensor.data") or None,          # zero-copy: a view into the file buffer
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
    try:
        return _read_named_node(t, name)
    except FlatError as e:
        raise _Located(f"node {name!r}", str(e)) from None


def _read_named_node(t, name):
    prim = t.table(2, "CNode.primitive")
    if prim is None:
        raise FlatError("no primitive")
    code = prim.union_type(0)
    if code == 0:
        raise FlatError("empty primitive (union type NONE)")
    if code <= len(schema.PRIMITIVE_NAMES):
        op_type = schema.PRIMITIVE_NAMES[code - 1]
        value = prim.table(1, f"{op_type} attributes")
        attrs = _read_attrs(op_type, value) if value is not None else schema.op_defaults(op_type)
    else:  # a newer schema than ours: keep the node, flag it by name, no attributes
        op_type, attrs = f"{UNKNOWN_OP_PREFIX}{code}", {}
    return MsNode(name=name, op_type=op_type, attrs=attrs,
                  inputs=list(t.numbers(3, "u32", "CNode.inputIndex")),
                  outputs=list(t.numbers(4, "u32", "CNode.outputIndex")),
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
            rows = outer.iter_tables(0, what) if outer is not None else ()
            attrs[field] = tuple(row.numbers(0, "i64", what) for row in rows)
        elif typ == "[attr]":
            attrs[field] = tuple((a.string(0, what), a.bytes_(1, what) or b"")
                                 for a in table.iter_tables(i, what))
        else:  # pragma: no cover - schema tables only use the tokens above
            raise AssertionError(typ)
    return attrs


# -- validation ------------------------------------------------------------------------------------

def validate(model: MsModel, file_size=None):
    """The first structural problem of a model as (element, problem), or None.

    Indices, enum values, quantization parameters, constant sizes, single producers, cycles; with
    `file_size` (a file being read) also the decode allowance of budget.py. The writer calls it
    without file_size, so it refuses to write what the reader would refuse."""
    n_t = len(model.tensors)
    for what, idx in (("graph input", model.inputs), ("graph output", model.outputs)):
        for k, i in enumerate(idx):
            if i >= n_t:
                return f"{what} {k}", f"tensor index {i} out of range ({n_t} tensors)"
    for node in model.nodes:
        found = _node_problem(node, n_t)
        if found:
            return f"node {node.name!r}", found
    for sg in model.subgraphs:
        found = _subgraph_problem(sg, n_t, len(model.nodes))
        if found:
            return f"subgraph {sg.name!r}", found
    for i, t in enumerate(model.tensors):
        found = _tensor_problem(t)
        if found:
            return _tensor_element(i, t), found
    found = _producer_problem(model)
    if found:
        return found
    cycle = find_cycle(model)
    if cycle is not None:
        return f"node {cycle!r}", "the graph has a cycle through this node"
    if file_size is not None:
        return _decode_budget_problem(model, file_size)
    return None


def _tensor_element(i, t):
    return f"tensor {i} ({t.name!r})" if t.name else f"tensor {i}"


def _node_problem(node, n_t):
    if node.quant_type not in schema.QUANT_TYPES:
        return f"quantType {node.quant_type} is not a QuantType of the schema"
    for what, idx in (("input", node.inputs), ("output", node.outputs)):
        for i in idx:
            if i >= n_t:
                return f"({node.op_type}) {what} tensor index {i} out of range ({n_t} tensors)"
    return None


def _subgraph_problem(sg, n_t, n_n):
    for what, idx, limit, kind in (("inputIndices", sg.inputs, n_t, "tensors"),
                                   ("outputIndices", sg.outputs, n_t, "tensors"),
                                   ("tensorIndices", sg.tensors, n_t, "tensors"),
                                   ("nodeIndices", sg.nodes, n_n, "nodes")):
        for k, i in enumerate(idx):
            if i >= limit:
                return f"{what}[{k}] = {i} out of range ({limit} {kind})"
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
    if t.format not in FORMAT_NAMES:
        return f"format {t.format} is not a Format of the schema"
    if t.weight_quant_compress_type not in schema.WEIGHT_COMPRESS_TYPES:
        return f"weightQuantCompressType {t.weight_quant_compress_type} is not in the schema's enum"
    for k, q in enumerate(t.quant_params):
        if not MIN_NUM_BITS <= q.num_bits <= MAX_NUM_BITS:
            return f"quantParams[{k}].numBits is {q.num_bits}, outside {MIN_NUM_BITS}..{MAX_NUM_BITS}"
    n_q = len(t.quant_params)
    if n_q > max(count, 1):
        return f"{n_q} quantParams for {count} element(s)"
    if t.is_const and n_q > 1 and n_q not in t.dims:
        return f"{n_q} per-channel quantParams match no dimension of {list(t.dims)}"
    if not t.is_const:
        return None
    dtype = TYPEID_TO_NUMPY.get(t.data_type)
    plain = (not t.enable_huffman_code and t.weight_quant_compress_type == COMPRESS_NONE
             and not t.quant_clusters and -1 not in t.dims)
    bits = t.quant_params[0].num_bits if t.quant_params else 8
    packed = 1 <= bits < 8 or 8 < bits < 16          # bit-packed weights (decoded by the engine)
    if dtype is not None and plain and not packed and count * dtype.itemsize != len(t.data):
        return (f"holds {len(t.data)} data bytes but dims {list(t.dims)} of "
                f"{dtype.name} need {count * dtype.itemsize}")
    compressed = t.weight_quant_compress_type in COMPRESS_DECODED or (packed and t.quant_params)
    if dtype is not None and compressed and -1 not in t.dims and not t.external_data:
        return stream_problem(t)          # headers and lengths only: no decoding at read time
    return None


def _producer_problem(model):
    producer = {}
    for node in model.nodes:
        for o in node.outputs:
            first = producer.setdefault(o, node)
            if first is not node:
                return (_tensor_element(o, model.tensors[o]), f"written by two nodes, {first.name!r} and {node.name!r}")
            if model.tensors[o].is_const:
                return (f"node {node.name!r}", f"writes tensor {o}, which is a constant")
    for node in model.nodes:
        if len(set(node.outputs)) != len(node.outputs):
            return (f"node {node.name!r}", "lists one output tensor twice")
    return None


def _decode_budget_problem(model, file_size):
    allowance = budget.decode_allowance(file_size)
    total = 0
    for i, t in enumerate(model.tensors):
        if t.is_const:
            total += decoded_nbytes(t)
            if total > allowance:
                return (_tensor_element(i, t), f"constants would decode to more than {allowance:,} bytes, "
                                       f"the decode budget of a {file_size:,}-byte file "
                                       f"(min({budget.DECODE_FACTOR} x size + "
                                       f"{budget.DECODE_SLACK >> 20} MiB, "
                                       f"{budget.MAX_DECODED_BYTES >> 30} GiB))")
    return None


def find_cycle(model: MsModel):
    """Name of a node on a dependency cycle (a node needing its own output, directly or not).

    O(nodes + edges): each tensor has at most one producer (checked before)."""
    producer = {}
    for k, node in enumerate(model.nodes):
        for o in node.outputs:
            producer.setdefault(o, k)
    state = [0] * len(model.nodes)          # 0 new, 1 on the stack, 2 done
    for start in range(len(model.nodes)):
        if state[start]:
            continue
        stack = [(start, iter(_deps(model, start, producer)))]
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
                stack.append((nxt, iter(_deps(model, nxt, producer))))
    return None


def _deps(model, k, producer):
    return [producer[i] for i in model.nodes[k].inputs if i in producer]
