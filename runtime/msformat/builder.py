"""Small helpers to build MsModel objects by hand: single-op models for tests and examples."""
import numpy as np

from .model import NUMPY_TO_TYPEID, NODE_TYPE_COMPUTED, NODE_TYPE_CONST, MsModel, MsNode, MsTensor


def make_tensor(name, array=None, shape=None, dtype=np.float32, fmt=None, quant=()):
    """A constant (when `array` is given) or a computed / graph-input tensor (shape, dtype)."""
    const = array is not None
    if const:
        array = np.asarray(array)
        shape, dtype = array.shape, array.dtype
    shape = tuple(int(d) for d in shape)
    fmt = fmt if fmt is not None else (1 if len(shape) == 4 else 0)   # NHWC for 4-D, like Lite
    return MsTensor(name=name, node_type=NODE_TYPE_CONST if const else NODE_TYPE_COMPUTED,
                    data_type=NUMPY_TO_TYPEID[np.dtype(dtype)], dims=shape, format=fmt,
                    data=np.ascontiguousarray(array).tobytes() if const else None,
                    quant_params=list(quant))


def single_node_model(op, attrs, inputs, out_shapes, quant_type=0, version="MindSpore Lite 2.5.0",
                      out_dtypes=None):
    """A one-node model. inputs: ("x", array) for graph inputs, ("c", array) for constants, or
    ("t", MsTensor) for a prepared constant. Returns (model, feed by input name)."""
    tensors, graph_inputs, node_inputs, feed = [], [], [], {}
    for k, (kind, value) in enumerate(inputs):
        if kind == "x":
            value = np.asarray(value)
            tensors.append(make_tensor(f"in{k}", shape=value.shape, dtype=value.dtype))
            graph_inputs.append(len(tensors) - 1)
            feed[f"in{k}"] = value
        elif kind == "t":
            tensors.append(value)
        else:
            tensors.append(make_tensor(f"const{k}", value))
        node_inputs.append(len(tensors) - 1)
    outputs = []
    for k, shape in enumerate(out_shapes):
        dtype = out_dtypes[k] if out_dtypes else np.float32
        tensors.append(make_tensor(f"out{k}", shape=shape, dtype=dtype))
        outputs.append(len(tensors) - 1)
    node = MsNode(name=f"{op}_node", op_type=op, attrs=dict(attrs), inputs=node_inputs,
                  outputs=outputs, quant_type=quant_type)
    model = MsModel(version=version, fmk_type=3, inputs=graph_inputs, outputs=outputs,
                    nodes=[node], tensors=tensors)
    return model, feed
