"""Shared helpers of the front ends: building IR nodes while resolving aliases and tuples."""
import numpy as np

from ..errors import ConversionError
from ..ir import Graph, make_node


class FrontendContext:
    """What a handler sees: value lookup (following aliases), constants, and `emit`."""

    def __init__(self, path, source_format):
        self.path = str(path)
        self.graph = Graph(nodes=[], inputs=[], outputs=[], consts={}, source_format=source_format)
        self.aliases = {}       # value -> value it stands for (Identity, Load, Depend ...)
        self.tuples = {}        # value -> tuple of values (MakeTuple, multi-output ops)
        self.scalars = {}       # constant non-tensor values (python ints, floats, tuples ...)

    def resolve(self, name):
        seen = set()
        while name in self.aliases:
            if name in seen:
                raise ConversionError(f"{self.path}: alias cycle at {name}")
            seen.add(name)
            name = self.aliases[name]
        return name

    def alias(self, out, value):
        self.aliases[out] = value

    def tuple_of(self, name):
        name = self.resolve(name)
        if name not in self.tuples:
            raise ConversionError(f"{self.path}: {name} is not a tuple")
        return self.tuples[name]

    def scalar(self, name, what="attribute"):
        """A constant python value given as a node input (MindIR ValueNodes, ONNX constants)."""
        name = self.resolve(name)
        if name in self.scalars:
            return self.scalars[name]
        if name in self.graph.consts:
            arr = self.graph.consts[name]
            return arr.item() if arr.ndim == 0 else tuple(arr.tolist())
        raise ConversionError(f"{self.path}: {what} {name} must be a constant")

    def value(self, name):
        """A tensor value name; constant scalars/tuples used as data become graph constants."""
        name = self.resolve(name)
        if name in self.scalars and name not in self.graph.consts:
            v = self.scalars[name]
            arr = np.asarray(v, dtype=np.float32 if isinstance(v, float) or (
                isinstance(v, tuple) and any(isinstance(x, float) for x in v)) else np.int64)
            self.graph.consts[name] = arr
        return name

    def emit(self, name, op, inputs, outputs, **attrs):
        node = make_node(name, op, [self.value(v) for v in inputs], outputs, **attrs)
        self.graph.nodes.append(node)
        return node

