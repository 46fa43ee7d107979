"""Shape annotation, with the `--input-shape` override applied to the graph input."""
from ..errors import ConversionError
from ..ir_ops import infer_shapes


def annotate_shapes(graph, options=None):
    override = getattr(options, "input_shape", None) if options else None
    if override:
        if len(graph.inputs) != 1:
            raise ConversionError("--input-shape needs a model with exactly one input")
        name = getattr(options, "input_name", None)
        if name and name != graph.inputs[0]:
            raise ConversionError(f"--input-shape names input {name!r}; the model's input is "
                                  f"{graph.inputs[0]!r}")
        old = graph.shapes.get(graph.inputs[0])
        if old is not None and len(old) != len(override):
            raise ConversionError(f"--input-shape {list(override)} has {len(override)} dims; the "
                                  f"model input {list(old)} has {len(old)}")
        graph.shapes[graph.inputs[0]] = tuple(int(d) for d in override)
    if not graph.inputs:
        raise ConversionError("the model has no graph input (nothing to feed)")
    for name in graph.inputs:
        shape = graph.shapes.get(name)
        if shape is None or any(d <= 0 for d in shape):
            what = "an unknown shape" if shape is None else f"a dynamic or unknown shape {list(shape)}"
            raise ConversionError(f"model input {name!r} has {what}; give --input-shape")
    infer_shapes(graph)
