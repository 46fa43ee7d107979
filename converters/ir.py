"""The converter's one intermediate graph.

Front ends parse every source attribute once into frozen `Node`s with canonical op names and
attributes (listed in `IR_OPS`); passes rewrite the node list; lowering maps it to an `MsModel`.
Every node is validated when it is made (`IR_SPECS`: input count, each attribute's kind and range:
strides/dilations/kernels >= 1, pads >= 0 and bounded, perms a permutation ...), so a hostile value
is refused once, naming the node, before any shape arithmetic or allocation depends on it; what
needs the input's rank (axes in range, perm length) is checked by the shape rules (ir_ops).
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
ACTIVATIONS = (ACT_NONE, ACT_RELU, ACT_SIGMOID, ACT_RELU6, ACT_TANH)

# Bounds on attribute values: far beyond any real classifier, small enough that no shape
# arithmetic or padding of a hostile model can ask for an absurd allocation.
MAX_WINDOW = 1 << 12          # kernel size, stride, dilation
MAX_PAD = 1 << 12             # explicit padding per side
MAX_GROUP = 1 << 20
MAX_RANK = 8


def freeze(attrs):
    """Attributes as an immutable mapping; lists become tuples."""
    out = {}
    for k, v in attrs.items():
        if isinstance(v, list):
            v = tuple(v)
        out[k] = v
    return MappingProxyType(out)


# ---- attribute checkers: each returns an error text or None -------------------------------------

def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _ints(n, lo, hi, what):
    def check(v):
        if (not isinstance(v, tuple) or (n is not None and len(v) != n)
                or not all(_is_int(x) and lo <= x <= hi for x in v)):
            count = f"{n} " if n is not None else ""
            return f"{v!r} is out of range: must be {count}integer(s) {what} in [{lo}, {hi}]"
        return None
    return check


def _int(lo, hi):
    def check(v):
        if not _is_int(v) or not lo <= v <= hi:
            return f"{v!r} is out of range: must be an integer in [{lo}, {hi}]"
        return None
    return check


def _one_of(*values):
    def check(v):
        return None if v in values else f"must be one of {list(values)}, got {v!r}"
    return check


def _bool(v):
    return None if isinstance(v, (bool, np.bool_)) else f"must be a boolean, got {v!r}"


def _finite_float(lo):
    def check(v):
        if not isinstance(v, (float, int, np.floating)) or isinstance(v, bool) \
                or not np.isfinite(v) or v < lo:
            return f"must be a finite number >= {lo}, got {v!r}"
        return None
    return check


def _perm(v):
    if not isinstance(v, tuple) or not all(_is_int(x) for x in v) or sorted(v) != list(range(len(v))):
        return f"must be a permutation of 0..rank-1, got {v!r}"
    return None


_AXIS = _int(-MAX_RANK, MAX_RANK)
_WINDOW = _ints(2, 1, MAX_WINDOW, ">= 1")
_PADS = _ints(4, 0, MAX_PAD, ">= 0")
_PAD_MODE = _one_of("pad", "same", "valid")
_ACT = _one_of(*ACTIVATIONS)
_FORMAT = _one_of("NCHW", "NHWC")

# op -> (min inputs, max inputs or None, required attrs, optional attrs); every attribute parsed
# by a front end is checked here once, when the frozen node is made.
IR_SPECS = {
    "Conv2D": (2, 3, {"kernel": _WINDOW, "stride": _WINDOW, "dilation": _WINDOW, "pads": _PADS,
                      "pad_mode": _PAD_MODE, "group": _int(1, MAX_GROUP), "activation": _ACT},
               {"format": _FORMAT}),
    "BatchNorm": (5, 5, {"epsilon": _finite_float(0.0)}, {"format": _FORMAT}),
    "Activation": (1, 1, {"type": _ACT}, {}),
    "BiasAdd": (2, 2, {"axis": _AXIS}, {}),
    "MatMul": (2, 3, {"transpose_a": _bool, "transpose_b": _bool, "activation": _ACT}, {}),
    "ReduceMean": (1, 1, {"axes": _ints(None, -MAX_RANK, MAX_RANK, "axes"), "keep_dims": _bool}, {}),
    "GlobalAvgPool": (1, 1, {}, {"format": _FORMAT}),
    "MaxPool": (1, 1, {"kernel": _WINDOW, "stride": _WINDOW, "pads": _PADS, "pad_mode": _PAD_MODE,
                       "ceil_mode": _bool}, {"count_include_pad": _bool, "format": _FORMAT}),
    "Reshape": (2, 2, {}, {}),
    "Flatten": (1, 1, {"axis": _AXIS}, {}),
    "Transpose": (1, 1, {"perm": _perm}, {}),
    "Softmax": (1, 1, {"axis": _AXIS}, {"flattens_from_axis": _bool}),
    "Concat": (1, None, {"axis": _AXIS}, {}),
    "Identity": (1, 1, {}, {}),
}
for _op in ("Add", "Sub", "Mul", "Div"):
    IR_SPECS[_op] = (2, 2, {"activation": _ACT}, {})
IR_SPECS["AvgPool"] = IR_SPECS["MaxPool"]


def validate_node(node):
    """Raise ConversionError naming the node unless its inputs and attributes fit its op."""
    where = f"node {node.name!r} ({node.op})"
    spec = IR_SPECS.get(node.op)
    if spec is None:
        raise ConversionError(f"internal: {node.op!r} is not an IR op", element=where)
    lo, hi, required, optional = spec
    names = node.inputs + node.outputs
    if not all(isinstance(v, str) and v for v in names) or not isinstance(node.name, str):
        raise ConversionError(f"inputs {list(node.inputs)} / outputs {list(node.outputs)} must be "
                              "non-empty names", element=where)
    if not lo <= len(node.inputs) <= (hi if hi is not None else 1 << 16):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi else f"at least {lo}"
        raise ConversionError(f"takes {want} input(s), got {len(node.inputs)}", element=where)
    if len(node.outputs) != 1:
        raise ConversionError(f"has one output, got {len(node.outputs)}", element=where)
    for key, check in required.items():
        if key not in node.attrs:
            raise ConversionError(f"attribute {key!r} is missing", element=where)
    for key, value in node.attrs.items():
        check = required.get(key) or optional.get(key)
        if check is None:
            if node.op == "Activation" and key in ("min", "max"):
                continue
            raise ConversionError(f"unknown attribute {key!r}", element=where)
        problem = check(value)
        if problem:
            raise ConversionError(f"attribute {key} {problem}", element=where)
    return node


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
        return validate_node(replace(self, **changes))


def make_node(name, op, inputs, outputs, **attrs):
    """A frozen, validated IR node (ConversionError naming the node when an attribute is bad)."""
    if op not in IR_OPS:
        raise ConversionError(f"internal: {op!r} is not an IR op")
    return validate_node(Node(name, op, tuple(inputs), tuple(outputs), freeze(attrs)))


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
