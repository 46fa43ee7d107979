"""Evaluate nodes whose inputs are all constants, at conversion time, with the numpy kernels.

A node whose output would hold more than FOLD_BUDGET elements stays a computed node: folding it
would only move a huge allocation from the device to the converter (and bloat the `.ms`).
"""
import numpy as np

from ..ir_ops import FOLD_BUDGET, KERNELS


def fold_constants(graph, options=None):
    kept = []
    for node in graph.nodes:
        out_shape = graph.shapes.get(node.outputs[0])
        small = out_shape is not None and int(np.prod(out_shape, dtype=object)) <= FOLD_BUDGET
        if (small and node.inputs and all(graph.is_const(v) for v in node.inputs)
                and node.op in KERNELS):
            value = KERNELS[node.op](node, *[graph.consts[v] for v in node.inputs])
            graph.consts[node.outputs[0]] = np.asarray(value)
            graph.shapes[node.outputs[0]] = tuple(np.shape(value))
        else:
            kept.append(node)
    graph.nodes = kept
