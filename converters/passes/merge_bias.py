"""Merge BiasAdd (and Add of a per-channel constant) into the conv or matmul that feeds it.

The official converter gives Conv2DFusion/MatMulFusion a bias input instead of a separate node; this
also turns MindSpore's Dense (MatMul + BiasAdd) into one MatMul with bias. A BiasAdd that cannot be
merged becomes an Add of a broadcastable constant.
"""
import numpy as np

from ..errors import ConversionError
from ..ir import make_node


def _channel_bias(graph, node, producer):
    """The 1-D bias vector if `node` adds a per-output-channel constant to `producer`, else None."""
    if node.op == "BiasAdd":
        if not graph.is_const(node.inputs[1]):
            return None
        return graph.consts[node.inputs[1]].reshape(-1)
    if node.op != "Add" or node.attrs.get("activation", 0):
        return None
    const = [v for v in node.inputs if graph.is_const(v)]
    if len(const) != 1 or node.inputs[0] != producer.outputs[0]:
        return None
    c = graph.consts[const[0]]
    channels = graph.shapes[producer.outputs[0]][1]
    if producer.op == "Conv2D" and c.size == channels and c.shape[-2:] in ((1, 1),) and c.ndim >= 3:
        return c.reshape(-1)
    if producer.op == "MatMul" and c.size == channels and c.ndim <= 2:
        return c.reshape(-1)
    return None


def merge_bias(graph, options=None):
    producers, users = graph.producers(), graph.consumers()
    for node in [n for n in graph.nodes if n.op in ("BiasAdd", "Add")]:
        src = producers.get(node.inputs[0])
        ok = (src is not None and src.op in ("Conv2D", "MatMul") and len(users.get(src.outputs[0], [])) == 1
              and src.outputs[0] not in graph.outputs and src.attrs.get("activation", 0) == 0
              and (len(src.inputs) < 3 or graph.is_const(src.inputs[2])))
        bias = _channel_bias(graph, node, src) if ok else None
        if bias is not None:
            old = graph.consts[src.inputs[2]].reshape(-1) if len(src.inputs) > 2 else 0.0
            b = graph.add_const(src.name + ":bias", (old + bias).astype(np.float32))
            merged = src.with_(inputs=[src.inputs[0], src.inputs[1], b], outputs=node.outputs)
            graph.nodes[graph.nodes.index(src)] = merged
            graph.nodes.remove(node)
            producers[node.outputs[0]] = merged
        elif node.op == "BiasAdd":
            if not graph.is_const(node.inputs[1]):
                raise ConversionError("BiasAdd of a computed (non-constant) bias is not supported",
                                      element=f"node {node.name!r} (BiasAdd)")
            rank = len(graph.shapes[node.inputs[0]])
            shape = [1] * rank
            shape[node.attrs["axis"] % rank] = -1
            keep = shape if node.attrs["axis"] % rank == 0 else shape[1:]
            c = graph.add_const(node.name + ":bias", graph.consts[node.inputs[1]].reshape(keep))
            graph.nodes[graph.nodes.index(node)] = make_node(node.name, "Add", [node.inputs[0], c],
                                                             node.outputs, activation=0)
