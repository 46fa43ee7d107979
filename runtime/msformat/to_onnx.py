"""Translate an MsModel into an ONNX model that onnxruntime executes.

One small handler per `.ms` op (registered with `@handler`, looked up in HANDLERS). Layouts: `.ms`
CNN graphs are NHWC while ONNX convolutions are NCHW, so every tensor can exist in two ONNX
versions: "logical" (the `.ms` layout) and "nchw" (a 4-D NHWC tensor permuted by [0, 3, 1, 2]).
Convolutions and pools produce "nchw"; element-wise ops, Concat, Pad, Softmax keep whatever layout
their inputs have; everything else asks for "logical". Transposes are inserted only at layout
changes, so a CNN pays one at its input and one before its head instead of a pair per conv.

Imported only by the `.ms` engine: it imports onnx at module level.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import ModelFormatError, UnsupportedOpsError
from .model import TYPEID_TO_NUMPY, MsModel

OPSET = 17
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
HANDLERS = {}
NP_TO_ONNX = {np.dtype(k): v for k, v in {
    np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE,
    np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8, np.int16: TensorProto.INT16,
    np.uint16: TensorProto.UINT16, np.int32: TensorProto.INT32, np.int64: TensorProto.INT64,
    np.uint32: TensorProto.UINT32, np.uint64: TensorProto.UINT64, np.bool_: TensorProto.BOOL}.items()}


def handler(*op_types):
    """Register a translation function for one or more `.ms` op types."""
    def register(fn):
        for op in op_types:
            HANDLERS[op] = fn
        return fn
    return register


class NotTranslatable(Exception):
    """A handler cannot express this node's attributes; collected into UnsupportedOpsError."""


class Context:
    """What a handler sees: the model, the node being translated, and ONNX graph builders."""

    def __init__(self, model: MsModel, source):
        self.model, self.source = model, source
        self.nodes, self.inits = [], []
        self.values = {}            # ms tensor index -> {layout: onnx name}
        self.consts = {}            # ms tensor index -> numpy array (dequantized)
        self.node = None
        self._uid = 0

    # -- names and raw graph building ------------------------------------------------------
    def fresh(self, hint="v"):
        self._uid += 1
        return f"{hint}_{self._uid}"

    def add(self, op_type, inputs, n_out=1, **attrs):
        """Append an ONNX node; returns its output name (or list of names when n_out > 1)."""
        outs = [self.fresh(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def init(self, array, hint="c"):
        name = self.fresh(hint)
        self.inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values):
        return self.init(np.asarray(values, dtype=np.int64), "i64")

    # -- .ms tensors -------------------------------------------------------------------------
    def tensor(self, idx):
        return self.model.tensors[idx]

    def dims(self, idx):
        return tuple(self.model.tensors[idx].dims)

    def rank(self, idx):
        if idx in self.consts:
            return self.consts[idx].ndim
        return len(self.model.tensors[idx].dims)

    def in_idx(self, i):
        ins = self.node.inputs
        return ins[i] if i < len(ins) else None

    def n_inputs(self):
        return len(self.node.inputs)

    def const(self, i):
        """The numpy value of the node's i-th input if it is a constant, else None."""
        idx = self.in_idx(i)
        return None if idx is None else self.consts.get(idx)

    def need_const(self, i, what):
        value = self.const(i)
        if value is None:
            raise NotTranslatable(f"{what} (input {i}) must be a constant")
        return value

    def layouts(self, idx):
        return self.values.get(idx, {})

    def has_nchw(self, i):
        return "nchw" in self.layouts(self.in_idx(i))

    def input(self, i, layout="logical"):
        """ONNX name of the node's i-th input in `layout`, inserting (and caching) a Transpose."""
        idx = self.in_idx(i)
        if idx in self.consts and idx not in self.values:
            value = self.consts[idx]
            self.values[idx] = {"logical": self.init(value, f"w{idx}")}
        have = self.values.get(idx)
        if have is None:
            raise ModelFormatError(self.source, f"node {self.node.name!r} reads tensor {idx} "
                                                "that no node produces and that is not an input")
        if layout not in have:
            if layout == "nchw":
                have["nchw"] = self.add("Transpose", [have["logical"]], perm=list(TO_NCHW))
            else:
                have["logical"] = self.add("Transpose", [have["nchw"]], perm=list(TO_NHWC))
        return have[layout]

    def output(self, name, layout="logical", i=0):
        idx = self.node.outputs[i]
        self.values[idx] = {layout: name}

    def layout_for(self, inputs):
        """"nchw" when every non-constant input is 4-D and one already exists as nchw."""
        variable = [i for i in inputs if self.in_idx(i) is not None and self.const(i) is None]
        if variable and all(self.rank(self.in_idx(i)) == 4 for i in variable) and any(
                self.has_nchw(i) for i in variable):
            return "nchw"
        return "logical"

    def operand(self, i, layout):
        """An element-wise operand in `layout`; constants are broadcast-permuted at build time."""
        value = self.const(i)
        if value is None or layout == "logical":
            return self.input(i, layout)
        if value.ndim > 4:
            raise NotTranslatable("constant operand of rank > 4 next to a 4-D tensor")
        value = value.reshape((1,) * (4 - value.ndim) + value.shape).transpose(TO_NCHW)
        return self.init(value, "wp")


def _dequantize(t, data):
    """Weight-quantized tensors: (q - zero_point) * scale (* var_corr + mean_corr) per channel."""
    params = t.quant_params
    if t.quant_clusters:
        clusters = np.asarray(t.quant_clusters, dtype=np.float32)
        idx = data.astype(np.int64) - np.iinfo(np.int8).min
        if idx.min(initial=0) < 0 or idx.max(initial=0) >= len(clusters):
            raise NotTranslatable(f"tensor {t.name!r}: cluster index out of range")
        return clusters[idx]
    q = data.astype(np.float64)
    if len(params) == 1:
        return ((q - params[0].zero_point) * params[0].scale).astype(np.float32)
    if q.ndim == 0 or q.shape[0] != len(params):
        raise NotTranslatable(f"tensor {t.name!r}: {len(params)} quant params for dims {q.shape}")
    shape = (-1,) + (1,) * (q.ndim - 1)
    zp = np.array([p.zero_point for p in params], dtype=np.float64).reshape(shape)
    scale = np.array([p.scale for p in params], dtype=np.float64).reshape(shape)
    var = np.array([p.var_corr if 0 <= p.var_corr <= 10 else 1.0 for p in params]).reshape(shape)
    mean = np.array([p.mean_corr for p in params], dtype=np.float64).reshape(shape)
    return ((q - zp) * scale * var + mean).astype(np.float32)


def _is_weight_quantized(t):
    if t.data_type not in (32, 33, 37) or not (t.quant_params or t.quant_clusters):
        return False
    return bool(t.quant_clusters) or any(
        p.inited or p.scale != 1.0 or p.zero_point != 0 for p in t.quant_params)


def const_array(t, source):
    """A constant tensor as numpy (float16 -> float32, weight-quantized int -> float32)."""
    dtype = TYPEID_TO_NUMPY.get(t.data_type)
    if dtype is None:
        raise NotTranslatable(f"constant {t.name!r} has data type {t.data_type} this engine lacks")
    if t.enable_huffman_code or t.weight_quant_compress_type:
        raise NotTranslatable(f"constant {t.name!r} uses weight compression "
                              f"(type {t.weight_quant_compress_type}, huffman "
                              f"{t.enable_huffman_code})")
    if t.external_data:
        raise NotTranslatable(f"constant {t.name!r} keeps its data in an external file")
    count = int(np.prod([max(d, 1) for d in t.dims])) if t.dims else 1
    if len(t.data) != count * dtype.itemsize:
        raise NotTranslatable(f"constant {t.name!r} data ({len(t.data)} bytes) does not fit dims "
                              f"{list(t.dims)} (bit-packed weights are not supported)")
    data = np.frombuffer(t.data, dtype=dtype.newbyteorder("<")).reshape(t.dims)
    if _is_weight_quantized(t):
        return _dequantize(t, data)
    if dtype == np.float16:
        return data.astype(np.float32)
    return data.astype(dtype.newbyteorder("="), copy=False)


def _unique_names(model, indices, fallback):
    names, seen = [], set()
    for k, idx in enumerate(indices):
        name = model.tensors[idx].name or f"{fallback}{k}"
        while name in seen:
            name += "_"
        seen.add(name)
        names.append(name)
    return names


def register_handlers():
    """Import the handler modules (they register themselves in HANDLERS)."""
    from . import onnx_ops_nn, onnx_ops_tensor  # noqa: F401


def unsupported_nodes(model):
    """(node name, op) for every node without a handler; Custom nodes say their vendor type."""
    register_handlers()
    found = []
    for node in model.nodes:
        if node.op_type not in HANDLERS:
            detail = node.op_type
            if node.op_type == "Custom" and node.attrs.get("type"):
                detail = f"Custom:{node.attrs['type']}"
            found.append((node.name, detail))
    return found


def topological_order(model):
    produced_by = {o: k for k, n in enumerate(model.nodes) for o in n.outputs}
    order, done, visiting = [], set(), set()
    for start in range(len(model.nodes)):
        stack = [(start, False)]
        while stack:
            k, expanded = stack.pop()
            if k in done:
                continue
            if expanded:
                visiting.discard(k)
                done.add(k)
                order.append(k)
                continue
            visiting.add(k)
            stack.append((k, True))
            for i in model.nodes[k].inputs:
                p = produced_by.get(i)
                if p is not None and p not in done and p not in visiting:
                    stack.append((p, False))
    return order


def translate(model: MsModel, source="<model>"):
    """(onnx.ModelProto, input names, output names). Raises UnsupportedOpsError listing all."""
    register_handlers()
    if model.subgraphs:
        raise UnsupportedOpsError([(sg.name, "extra subgraph (control flow)")
                                   for sg in model.subgraphs[1:]])
    missing = unsupported_nodes(model)
    if missing:
        raise UnsupportedOpsError(missing)
    ctx = Context(model, source)
    problems = []
    used = {i for n in model.nodes for i in n.inputs}
    for idx, t in enumerate(model.tensors):
        if t.is_const and idx in used and idx not in model.inputs:
            try:
                ctx.consts[idx] = const_array(t, source)
            except NotTranslatable as e:
                problems.append((t.name or f"tensor {idx}", str(e)))
    in_names = _unique_names(model, model.inputs, "input")
    out_names = _unique_names(model, model.outputs, "output")
    graph_inputs = []
    for name, idx in zip(in_names, model.inputs):
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type))
        if elem is None:
            raise UnsupportedOpsError([(name, f"graph input of data type {t.data_type}")])
        shape = [d if d >= 0 else None for d in t.dims]
        graph_inputs.append(helper.make_tensor_value_info(name, elem, shape))
        ctx.values[idx] = {"logical": name}
    for k in topological_order(model):
        node = model.nodes[k]
        ctx.node = node
        try:
            HANDLERS[node.op_type](ctx, node)
        except NotTranslatable as e:
            problems.append((node.name, f"{node.op_type}: {e}"))
            for o in node.outputs:
                ctx.values[o] = {"logical": ctx.fresh("failed"), "nchw": ctx.fresh("failed")}
    if problems:
        raise UnsupportedOpsError(problems)
    graph_outputs = []
    for name, idx in zip(out_names, model.outputs):
        ctx.node = type("GraphOutput", (), {"inputs": [idx], "name": name})()
        ctx.nodes.append(helper.make_node("Identity", [ctx.input(0)], [name]))
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type), TensorProto.FLOAT)
        graph_outputs.append(helper.make_tensor_value_info(name, elem, None))
    graph = helper.make_graph(ctx.nodes, "ms_model", graph_inputs, graph_outputs, ctx.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ms-edge-toolkit")
    proto.ir_version = 8
    return proto, in_names, out_names
