"""What every `.ms` op handler shares: the handler table, the layout constants, and Context.

Layouts: `.ms` CNN graphs are NHWC while ONNX convolutions are NCHW, so every tensor can exist in
two ONNX versions: "logical" (the `.ms` layout) and "nchw" (a 4-D NHWC tensor permuted by
[0, 3, 1, 2]). Convolutions and pools produce "nchw"; element-wise ops, Concat, Pad, Softmax keep
whatever layout their inputs have; everything else asks for "logical". Transposes are inserted only at
layout changes, so a CNN pays one at its input and one before its head instead of a pair per conv.

This module is the bottom of the package: op modules import it, it imports no op module. It imports
onnx at module level, which is why the package lives under `runtime/engines/` (loaded only when the
`.ms` engine is chosen) and not in the format library `runtime/msformat/`.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper

from ...errors import InputShapeError, ModelFormatError
from ...msformat.model import FORMAT_NCHW, MsModel
from ...registry import registrar

OPSET = 17
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
NP_TO_ONNX = {np.dtype(k): v for k, v in {
    np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.float64: TensorProto.DOUBLE,
    np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8, np.int16: TensorProto.INT16,
    np.uint16: TensorProto.UINT16, np.int32: TensorProto.INT32, np.int64: TensorProto.INT64,
    np.uint32: TensorProto.UINT32, np.uint64: TensorProto.UINT64, np.bool_: TensorProto.BOOL}.items()}

HANDLERS = {}                                   # .ms op type -> fn(ctx, node)
handler = registrar(HANDLERS, ".ms op handler")


class NotTranslatable(Exception):
    """A handler cannot express this node's (valid) attributes in ONNX; the driver collects these
    into one UnsupportedOpsError. Attributes that are simply wrong raise ModelFormatError instead."""


def node_element(node):
    """How errors name a node: `node 'conv1' (Conv2DFusion)`."""
    return f"node {node.name!r} ({node.op_type})"


class Context:
    """What a handler sees: the model, the node being translated, and ONNX graph builders."""

    def __init__(self, model: MsModel, source, reserved=(), input_shapes=None):
        self.model, self.source = model, source
        self.nodes, self.inits = [], []
        self.init_protos = {}       # onnx name -> TensorProto of ctx.inits
        # Resize: graph input index -> requested dims. Then dims() of a computed tensor is what
        # shape inference found for its ONNX value (ctx.inferred), never the stale stored dims.
        self.resized = dict(input_shapes or {})
        self.inferred = {}          # onnx name -> (elem type, dims with None for unknown, or None)
        self.values = {}            # ms tensor index -> {layout: onnx name}
        self.consts = {}            # ms tensor index -> numpy array (dequantized)
        self.node = None
        self.reserved = set(reserved)   # graph input/output names: never generated
        self._uid = 0

    def malformed(self, problem):
        """The ModelFormatError for the current node (raise it): the file, the node, what is wrong."""
        return ModelFormatError(self.source, problem, element=node_element(self.node))

    def shape_conflict(self, problem):
        """A node whose shapes contradict each other: InputShapeError when other input shapes were
        asked for (the node cannot take them), else ModelFormatError (the file is inconsistent)."""
        if self.resized:
            return InputShapeError(self.source, f"cannot take the requested input shapes: {problem}",
                                   element=node_element(self.node))
        return self.malformed(problem)

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
        array = np.asarray(array)      # (np.ascontiguousarray would make a scalar 1-D)
        proto = onnx.numpy_helper.from_array(np.ascontiguousarray(array) if array.ndim else array, name)
        self.inits.append(proto)
        self.init_protos[name] = proto
        return name

    def ints(self, values):
        return self.init(np.asarray(values, dtype=np.int64), "i64")

    # -- .ms tensors -------------------------------------------------------------------------
    def tensor(self, idx):
        return self.model.tensors[idx]

    def dims(self, idx):
        """Dims of tensor idx: the stored ones, or after a resize the requested (graph inputs) and
        inferred ones (computed tensors; -1 where unknown). A node's own outputs keep their stored
        dims (a handler reads them like an attribute; shape inference then checks them)."""
        if self.resized:
            if idx in self.resized:
                return tuple(self.resized[idx])
            have = self.values.get(idx)
            if have and idx not in self.consts:
                return self._inferred_dims(idx, have)
        return tuple(self.model.tensors[idx].dims)

    def _inferred_dims(self, idx, have):
        for layout, name in have.items():
            found = self.inferred.get(name)
            if found is None or found[1] is None:
                continue
            dims = found[1]
            if layout == "nchw" and len(dims) == 4:
                logical = [None] * 4
                for j, d in enumerate(dims):
                    logical[TO_NCHW[j]] = d
                dims = logical
            return tuple(-1 if d is None else int(d) for d in dims)
        return tuple(-1 for _ in self.model.tensors[idx].dims)

    def rank(self, idx):
        if idx in self.consts:
            return self.consts[idx].ndim
        return len(self.model.tensors[idx].dims)

    def known_rank(self, i):
        """Rank of input i, or None for a computed tensor declared without dims (rank unknown)."""
        idx = self.in_idx(i)
        if idx is None:
            return None
        if idx in self.consts:
            return self.consts[idx].ndim
        return len(self.model.tensors[idx].dims) or None

    def in_idx(self, i):
        ins = self.node.inputs
        return ins[i] if i < len(ins) else None

    def n_inputs(self):
        return len(self.node.inputs)

    def input_dims(self, i):
        """Declared dims of input i (a constant's real shape), or None when unknown/dynamic."""
        idx = self.in_idx(i)
        if idx is None:
            return None
        dims = self.consts[idx].shape if idx in self.consts else self.dims(idx)
        return tuple(int(d) for d in dims) if all(int(d) >= 0 for d in dims) else None

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
            raise self.malformed(f"has {self.n_inputs()} input(s), needs at least {i + 1}")
        return self.value(idx, layout, node_element(self.node))

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
        if i >= len(self.node.outputs):
            raise self.malformed(f"has {len(self.node.outputs)} output(s), needs at least {i + 1}")
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


def image_layout(ctx, node, op_default=FORMAT_NCHW):
    """Lite kernels are NHWC; only an op and its input both labelled NCHW run channel-first:
    "logical" (keep the .ms layout) for those, "nchw" (ONNX's convolution layout) otherwise."""
    nchw = node.attrs.get("format", op_default) == FORMAT_NCHW and \
        ctx.tensor(ctx.in_idx(0)).format == FORMAT_NCHW
    return "logical" if nchw else "nchw"
