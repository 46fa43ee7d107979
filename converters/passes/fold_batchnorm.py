"""Fold inference BatchNorm into the preceding convolution.

w' = w * gamma / sqrt(var + eps) per output channel; b' = (b - mean) * gamma / sqrt(var + eps) + beta.
A BatchNorm that does not follow a single-consumer convolution becomes Mul + Add by constants.
"""
import numpy as np

from ..errors import ConversionError
from ..ir import make_node


def _bn_params(graph, node):
    try:
        gamma, beta, mean, var = (graph.consts[v].astype(np.float64) for v in node.inputs[1:5])
    except KeyError:
        raise ConversionError("BatchNorm parameters must be constants",
                              element=f"node {node.name!r} (BatchNorm)") from None
    denom = var + node.attrs["epsilon"]
    if not np.all(denom > 0):                  # also catches NaN
        raise ConversionError("BatchNorm variance + epsilon must be positive (the statistics are "
                              "corrupt)", element=f"node {node.name!r} (BatchNorm)")
    k = gamma / np.sqrt(denom)
    return k, beta - mean * k


def fold_batchnorm(graph, options=None):
    producers, users = graph.producers(), graph.consumers()
    for bn in [n for n in graph.nodes if n.op == "BatchNorm"]:
        k, shift = _bn_params(graph, bn)
        conv = producers.get(bn.inputs[0])
        if (conv is not None and conv.op == "Conv2D" and len(users.get(conv.outputs[0], [])) == 1
                and conv.outputs[0] not in graph.outputs and graph.is_const(conv.inputs[1])
                and conv.attrs.get("activation", 0) == 0
                and (len(conv.inputs) < 3 or graph.is_const(conv.inputs[2]))):
            w = graph.consts[conv.inputs[1]].astype(np.float64)
            if w.shape[0] != k.size:
                raise ConversionError(f"{k.size} BatchNorm channels after a conv with "
                                      f"{w.shape[0]} outputs", element=f"node {bn.name!r} (BatchNorm)")
            b = graph.consts[conv.inputs[2]].astype(np.float64) if len(conv.inputs) > 2 else 0.0
            w_name = graph.add_const(conv.inputs[1] + ":bnfold", (w * k.reshape(-1, 1, 1, 1)).astype(np.float32))
            b_name = graph.add_const(conv.name + ":bias", (b * k + shift).astype(np.float32))
            new_conv = conv.with_(inputs=[conv.inputs[0], w_name, b_name], outputs=bn.outputs)
            graph.nodes[graph.nodes.index(conv)] = new_conv
            graph.nodes.remove(bn)
            continue
        # Standalone BatchNorm: y = x * k + shift along the channel axis (NCHW).
        rank = len(graph.shapes[bn.inputs[0]])
        bshape = (-1,) + (1,) * (rank - 2)
        kn = graph.add_const(bn.name + ":scale", k.astype(np.float32).reshape(bshape))
        sn = graph.add_const(bn.name + ":shift", shift.astype(np.float32).reshape(bshape))
        mid = graph.fresh(bn.name + ":scaled")
        i = graph.nodes.index(bn)
        graph.nodes[i:i + 1] = [make_node(bn.name + ":mul", "Mul", [bn.inputs[0], kn], [mid], activation=0),
                                make_node(bn.name, "Add", [mid, sn], bn.outputs, activation=0)]
        graph.shapes[mid] = graph.shapes[bn.inputs[0]]
