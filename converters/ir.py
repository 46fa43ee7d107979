"""The converter's one intermediate graph.

Front ends parse every source attribute once into frozen `Node`s with canonical op names and
attributes (listed in `IR_OPS`); passes rewrite the node list; lowering maps it to an `MsModel`.
Values are named strings; constants live in `Graph.consts` as numpy arrays; `Graph.shapes` holds the
inferred shape of every value. Until the layout pass runs, image tensors are NCHW as in the source.
"""
import itertools
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Dict, List, Mapping, Tuple

import numpy as np

from .errors import ConversionError

# Canonical IR ops and their attributes (what a front end must produce):
IR_OPS = {
    "Conv2D": "inputs x, w[O,I/g,kh,kw] (OHWI after layout), [bias]; kernel, stride, dilation, "
              "pads (t,b,l,r), pad_mode pad|same|valid, group, activation",
    "BatchNorm": "inputs x, scale, bias, mean, var; epsilon",
    "Activation": "input x; type (ActivationType int), [min, max] for clip",
    "Add": "two inputs, numpy broadcasting; activation", "Sub": "as Add", "Mul": "as Add",
    "Div": "as Add",
    "BiasAdd": "inputs x, 1-D bias added along `axis`",
    "MatMul": "inputs a, b, [bias]; transpose_a, transpose_b, activation",
    "ReduceMean": "input x; axes, keep_dims",
    "GlobalAvgPool": "input x; keeps dims (N,C,1,1)",
    "MaxPool": "input x; kernel, stride, pads, pad_mode, ceil_mode",
    "AvgPool": "as MaxPool, plus count_include_pad",
    "Reshape": "inputs x, shape (const int64)",
    "Flatten": "input x; axis",
    "Transpose": "input x; perm",
    "Softmax": "input x; axis, flattens_from_axis (ONNX opset < 13 semantics)",
    "Concat": "inputs...; axis",
    "Identity": "input x (Dropout, Depend, Load, Identity all become this)",
}

# ActivationType codes (ops_types.fbs).
ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 10


def freeze(attrs):
    """Attributes as an immutable mapping; lists become tuples."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, list):
            v = tuple(v)
        out[k] = v
    return MappingProxyType(out)


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    attrs: Mapping = field(default_factory=lambda: MappingProxyType({}))

    def with_(self, **changes):
        """A copy with some fields changed (attrs merged, not replaced)."""
        if "attrs" in changes:
            merged = dict(self.attrs)
            merged.update(changes["attrs"])
            changes["attrs"] = freeze(merged)
        if "inputs" in changes:
            changes["inputs"] = tuple(changes["inputs"])
        if "outputs" in changes:
            changes["outputs"] = tuple(changes["outputs"])
        return replace(self, **changes)


def make_node(name, op, inputs, outputs, **attrs):
    if op not in IR_OPS:
        raise ConversionError(f"internal: {op!r} is not an IR op")
    return Node(name, op, tuple(inputs), tuple(outputs), freeze(attrs))


@dataclass
class Graph:
    nodes: List[Node]
    inputs: List[str]
    outputs: List[str]
    consts: Dict[str, np.ndarray]
    shapes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)
    source_format: str = "mindir"             # "mindir" or "onnx"
    layout: str = "NCHW"                       # layout of image tensors inside the graph
    input_layout: str = "NCHW"                 # layout of the graph input tensor(s)
    nhwc_values: set = field(default_factory=set)   # values held NHWC (set by the layout pass)
    _counter: itertools.count = field(default_factory=itertools.count, repr=False)

    def fresh(self, base):
        """A new value/node name that does not collide with existing ones."""
        return f"{base}__{next(self._counter)}"

    def add_const(self, base, array):
        name = self.fresh(base)
        self.consts[name] = np.asarray(array)
        self.shapes[name] = tuple(self.consts[name].shape)
        return name

    def is_const(self, value):
        return value in self.consts

    def producers(self):
        return {out: n for n in self.nodes for out in n.outputs}

    def consumers(self):
        users = {}
        for n in self.nodes:
            for v in n.inputs:
                users.setdefault(v, []).append(n)
        return users

    def replace_uses(self, old, new):
        """Make every consumer (and graph output) of value `old` read `new` instead."""
        self.nodes = [n.with_(inputs=[new if v == old else v for v in n.inputs])
                      if old in n.inputs else n for n in self.nodes]
        self.outputs = [new if v == old else v for v in self.outputs]

    def prune(self):
        """Drop nodes and constants that no graph output depends on."""
        needed = set(self.outputs)
        kept = []
        for n in reversed(self.nodes):
            if any(o in needed for o in n.outputs):
                kept.append(n)
                needed.update(n.inputs)
        self.nodes = kept[::-1]
        self.consts = {k: v for k, v in self.consts.items() if k in needed}

    def op_counts(self):
        counts = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts
