"""Lower the NHWC IR to an `MsModel` with the ops and conventions of the official converter.

One lowering function per IR op (LOWERINGS); attribute names are the field names of the op tables
in MindSpore Lite's ops.fbs, enums as ints (ms-format.md "Operators as the converter writes them").
"""
import numpy as np

from runtime.msformat.model import (FORMAT_NCHW, FORMAT_NHWC, NODE_TYPE_COMPUTED, NODE_TYPE_CONST,
                                    NUMPY_TO_TYPEID, MsModel, MsNode, MsTensor)

from .errors import ConversionError
from .ir_ops import resolve_pads
from .registry import registrar

VERSION = "MindSpore Lite 2.5.0"
FMK_TYPES = {"mindir": 3, "onnx": 2}
PAD_MODES = {"pad": 0, "same": 1, "valid": 2}      # PadMode enum
REDUCE_MEAN = 0                                     # ReduceMode.ReduceMean
ROUND_FLOOR, ROUND_CEIL = 0, 1
LOWERINGS = {}


lowering = registrar(LOWERINGS, "lowering")


class _Builder:
    def __init__(self, graph):
        self.g = graph
        self.model = MsModel(version=VERSION, fmk_type=FMK_TYPES[graph.source_format])
        self.index = {}
        self.weight_values = set()

    def tensor(self, value, fmt=None):
        """Index of the MsTensor for IR value `value` (created on first use)."""
        if value in self.index:
            return self.index[value]
        shape = self.g.shapes.get(value)
        if shape is None:
            raise ConversionError(f"internal: value {value} has no shape")
        t = MsTensor(name=value, dims=tuple(int(d) for d in shape))
        if value in self.g.consts:
            arr = self.g.consts[value]
            if arr.dtype == np.int64:
                arr = arr.astype(np.int32)          # MindSpore Lite keeps shapes/axes as int32
            elif arr.dtype == np.float64:
                arr = arr.astype(np.float32)
            t.node_type = NODE_TYPE_CONST
            t.data_type = NUMPY_TO_TYPEID[arr.dtype]
            t.data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
            t.format = fmt if fmt is not None else FORMAT_NCHW
        else:
            t.node_type = NODE_TYPE_COMPUTED
            t.format = fmt if fmt is not None else (FORMAT_NHWC if value in self.g.nhwc_values
                                                     else FORMAT_NCHW)
        self.model.tensors.append(t)
        self.index[value] = len(self.model.tensors) - 1
        return self.index[value]

    def const(self, base, array):
        name = self.g.add_const(base, np.asarray(array))
        return name

    def node(self, ir, op_type, inputs, attrs, input_formats=None):
        ins = []
        for k, v in enumerate(inputs):
            fmt = (input_formats or {}).get(k)
            ins.append(self.tensor(v, fmt))
        outs = [self.tensor(v) for v in ir.outputs]
        self.model.nodes.append(MsNode(name=ir.name, op_type=op_type, attrs=attrs, inputs=ins,
                                       outputs=outs))


def _act(node):
    return int(node.attrs.get("activation", 0))


@lowering("Conv2D")
def _conv(b, node):
    a = node.attrs
    if a.get("format") != "NHWC":
        raise ConversionError(f"internal: {node.name} reached lowering in NCHW")
    w = b.g.consts[node.inputs[1]]
    x_shape = b.g.shapes[node.inputs[0]]
    in_nchw = (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
    attrs = {
        "format": FORMAT_NHWC, "kernel_size": tuple(a["kernel"]), "stride": tuple(a["stride"]),
        "dilation": tuple(a["dilation"]), "pad_mode": PAD_MODES[a["pad_mode"]],
        "pad_list": tuple(resolve_pads(node, in_nchw)), "group": int(a["group"]),
        "in_channel": int(w.shape[3] * a["group"]), "out_channel": int(w.shape[0]),
        "activation_type": _act(node),
    }
    if b.g.source_format == "mindir":
        attrs["mode"] = 1
    b.weight_values.add(node.inputs[1])
    b.node(node, "Conv2DFusion", node.inputs, attrs, input_formats={1: FORMAT_NHWC})


@lowering("Activation")
def _activation(b, node):
    b.node(node, "Activation", node.inputs, {"activation_type": int(node.attrs["type"])})


_BINARY = {"Add": "AddFusion", "Sub": "SubFusion", "Mul": "MulFusion", "Div": "DivFusion"}


@lowering(*_BINARY)
def _binary(b, node):
    b.node(node, _BINARY[node.op], node.inputs, {"activation_type": _act(node)})


@lowering("MatMul")
def _matmul(b, node):
    if b.g.is_const(node.inputs[1]):
        b.weight_values.add(node.inputs[1])
    b.node(node, "MatMulFusion", node.inputs, {"transpose_a": bool(node.attrs["transpose_a"]),
                                                "transpose_b": bool(node.attrs["transpose_b"]),
                                                "activation_type": _act(node)})


@lowering("ReduceMean")
def _reduce_mean(b, node):
    axes = b.const(node.name + ":axes", np.asarray(node.attrs["axes"], dtype=np.int32))
    b.node(node, "ReduceFusion", [node.inputs[0], axes],
           {"keep_dims": bool(node.attrs["keep_dims"]), "mode": REDUCE_MEAN, "coeff": 1.0})


@lowering("GlobalAvgPool")
def _global_avg_pool(b, node):
    # As the official converter writes it: strides (1, 1), zero pads, pad mode PAD. The official
    # runtime's shape inference divides by the strides even for a global pool, so without them the
    # file does not load there (found by tests/test_official_runtime_conformance.py).
    b.node(node, "AvgPoolFusion", node.inputs, {"global": True, "format": FORMAT_NHWC,
                                                "kernel_size": (), "strides": (1, 1), "pad": (0, 0, 0, 0),
                                                "pad_mode": PAD_MODES["pad"], "round_mode": ROUND_FLOOR})


def _pool(b, node, op_type):
    a = node.attrs
    if op_type == "AvgPoolFusion" and a.get("count_include_pad") and any(a["pads"]):
        raise ConversionError(f"{node.name}: average pooling that counts padding has no "
                              "MindSpore Lite equivalent")
    x_shape = b.g.shapes[node.inputs[0]]
    pads = resolve_pads(node, (x_shape[0], x_shape[3], x_shape[1], x_shape[2]))
    b.node(node, op_type, node.inputs, {
        "kernel_size": tuple(a["kernel"]), "strides": tuple(a["stride"]), "pad": tuple(pads),
        "pad_mode": PAD_MODES[a["pad_mode"]], "format": FORMAT_NHWC,
        "round_mode": ROUND_CEIL if a.get("ceil_mode") else ROUND_FLOOR, "global": False})


@lowering("MaxPool")
def _max_pool(b, node):
    _pool(b, node, "MaxPoolFusion")


@lowering("AvgPool")
def _avg_pool(b, node):
    _pool(b, node, "AvgPoolFusion")


@lowering("Reshape", "Flatten")
def _reshape(b, node):
    # The inferred output shape is static, so both become Reshape to it (as the official converter).
    shape = b.const(node.name + ":shape", np.asarray(b.g.shapes[node.outputs[0]], dtype=np.int32))
    b.node(node, "Reshape", [node.inputs[0], shape], {})


@lowering("Transpose")
def _transpose(b, node):
    perm = b.const(node.name + ":perm", np.asarray(node.attrs["perm"], dtype=np.int32))
    b.node(node, "Transpose", [node.inputs[0], perm], {})


@lowering("Softmax")
def _softmax(b, node):
    b.node(node, "Softmax", node.inputs, {"axis": (int(node.attrs["axis"]),)})


@lowering("Concat")
def _concat(b, node):
    b.node(node, "Concat", node.inputs, {"axis": int(node.attrs["axis"])})


def lower(graph):
    """(MsModel, set of weight value names) for the NHWC IR graph."""
    if graph.layout != "NHWC":
        raise ConversionError("internal: lowering needs the NHWC graph")
    left = sorted({n.op for n in graph.nodes if n.op not in LOWERINGS})
    if left:
        raise ConversionError(f"IR ops without a MindSpore Lite lowering: {', '.join(left)}")
    b = _Builder(graph)
    for name in graph.inputs:
        b.tensor(name)
    for node in graph.nodes:
        LOWERINGS[node.op](b, node)
    for name in graph.outputs:
        if name in graph.consts or name in graph.inputs:
            raise ConversionError(f"graph output {name} is a constant or an input; nothing to convert")
    b.model.inputs = [b.index[v] for v in graph.inputs]
    b.model.outputs = [b.index[v] for v in graph.outputs]
    return b.model, {b.index[v] for v in b.weight_values}
