"""Remove Identity nodes (Dropout in inference, Identity): consumers read the input directly."""


def remove_identities(graph, options=None):
    for node in [n for n in graph.nodes if n.op == "Identity"]:
        graph.nodes.remove(node)
        graph.replace_uses(node.outputs[0], node.inputs[0])
