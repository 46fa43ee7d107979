"""Evaluate nodes whose inputs are all constants, at conversion time, with the numpy kernels."""
import numpy as np

from ..ir_ops import KERNELS


def fold_constants(graph, options=None):
    kept = []
    for node in graph.nodes:
        if node.inputs and all(graph.is_const(v) for v in node.inputs) and node.op in KERNELS:
            value = KERNELS[node.op](node, *[graph.consts[v] for v in node.inputs])
            graph.consts[node.outputs[0]] = np.asarray(value)
            graph.shapes[node.outputs[0]] = tuple(np.shape(value))
        else:
            kept.append(node)
    graph.nodes = kept
