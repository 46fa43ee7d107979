"""Fuse ReLU/ReLU6 into the Conv2D, MatMul or Add that produces their input.

As the official converter does, only when that producer has the activation as its single consumer
and its output is not a graph output (otherwise the un-activated value is still needed).
"""
from ..ir import ACT_RELU, ACT_RELU6

FUSABLE_ACTIVATIONS = (ACT_RELU, ACT_RELU6)
FUSING_OPS = ("Conv2D", "MatMul", "Add")


def fuse_activation(graph, options=None):
    producers, users = graph.producers(), graph.consumers()
    for act in [n for n in graph.nodes if n.op == "Activation"]:
        if act.attrs["type"] not in FUSABLE_ACTIVATIONS:
            continue
        src = producers.get(act.inputs[0])
        if (src is None or src.op not in FUSING_OPS or src.attrs.get("activation", 0)
                or len(users.get(src.outputs[0], [])) != 1 or src.outputs[0] in graph.outputs):
            continue
        fused = src.with_(outputs=act.outputs, attrs={"activation": act.attrs["type"]})
        graph.nodes[graph.nodes.index(src)] = fused
        graph.nodes.remove(act)
        producers[act.outputs[0]] = fused
