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
from .weights import WeightError, const_array

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

    def __init__(self, model: MsModel, source, reserved=()):
        self.model, self.source = model, source
        self.nodes, self.inits = [], []
        self.values = {}            # ms tensor index -> {layout: onnx name}
        self.consts = {}            # ms tensor index -> numpy array (dequantized)
        self.node = None
        self.reserved = set(reserved)   # graph input/output names: never generated
        self._uid = 0

    # -- names and raw graph building ------------------------------------------------------
    def fresh(self, hint="v"):
        while True:
            self._uid += 1
            name = f"{hint}_{self._uid}"
            if name not in self.reserved:
                return name

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
        """ONNX name of the node's i-th input in `layout`."""
        idx = self.in_idx(i)
        if idx is None:
            raise NotTranslatable(f"has {self.n_inputs()} inputs, needs at least {i + 1}")
        return self.value(idx, layout, f"node {self.node.name!r}")

    def value(self, idx, layout="logical", reader="graph output"):
        """ONNX name of tensor `idx` in `layout`, inserting (and caching) a Transpose."""
        if idx in self.consts and idx not in self.values:
            value = self.consts[idx]
            self.values[idx] = {"logical": self.init(value, f"w{idx}")}
        have = self.values.get(idx)
        if have is None:
            raise ModelFormatError(self.source, f"{reader} reads tensor {idx} that no node "
                                                "produces and that is not an input")
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
    from . import onnx_ops_extra, onnx_ops_nn, onnx_ops_tensor  # noqa: F401


FULL_QUANT_TYPES = (1, 3, 5)      # AwareTraining, PostTraining, QUANT_ALL: int8 activations


def _integer_activations(model, node):
    """A fully quantized node: flagged so, and (trusting the tensors) int8/uint8 activations."""
    if node.quant_type not in FULL_QUANT_TYPES or node.op_type == "QuantDTypeCast":
        return False
    return any(model.tensors[i].data_type in (32, 37) and not model.tensors[i].is_const
               for i in node.inputs + node.outputs)


def unsupported_nodes(model):
    """(node name, op) for every node without a handler, and for fully quantized nodes (int8
    activations need integer kernels); Custom nodes say their vendor type."""
    register_handlers()
    found = []
    for node in model.nodes:
        if _integer_activations(model, node):
            found.append((node.name, f"{node.op_type} (fully quantized, int8 activations)"))
        elif node.op_type not in HANDLERS:
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
    in_names = _unique_names(model, model.inputs, "input")
    out_names = _unique_names(model, model.outputs, "output")
    ctx = Context(model, source, reserved=in_names + out_names)
    problems = []
    consumers = [(node, k, idx) for node in model.nodes for k, idx in enumerate(node.inputs)]
    consumers += [(None, 0, idx) for idx in model.outputs]     # constants that are graph outputs
    for node, k, idx in consumers:      # the first consumer decides the per-channel axis
        t = model.tensors[idx]
        if t.is_const and idx not in ctx.consts and idx not in model.inputs:
            try:
                ctx.consts[idx] = const_array(t, model.version, node, k)
            except WeightError as e:
                problems.append((t.name or f"tensor {idx}", str(e)))
                ctx.values[idx] = {"logical": ctx.fresh("undecodable")}
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
        except (ValueError, IndexError, TypeError, KeyError) as e:   # attributes that make no sense
            raise ModelFormatError(source, f"node {node.name!r} ({node.op_type}) is malformed: "
                                           f"{type(e).__name__}: {e}") from None
    if problems:
        raise UnsupportedOpsError(problems)
    graph_outputs = []
    for name, idx in zip(out_names, model.outputs):
        ctx.nodes.append(helper.make_node("Identity", [ctx.value(idx)], [name]))
        t = model.tensors[idx]
        elem = NP_TO_ONNX.get(TYPEID_TO_NUMPY.get(t.data_type), TensorProto.FLOAT)
        graph_outputs.append(helper.make_tensor_value_info(name, elem, None))
    graph = helper.make_graph(ctx.nodes, "ms_model", graph_inputs, graph_outputs, ctx.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ms-edge-toolkit")
    proto.ir_version = 8
    return proto, in_names, out_names
