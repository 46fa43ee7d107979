"""What precision a model file computes in, read from the file (not from its name).

  "int8-full"  a `.ms` with fully quantized nodes (int8 activations: `--quant full`, FULL_QUANT)
  "int8"       a `.ms` with int8 weights only (weight quantization; activations float)
  "fp16"       a `.ms` storing float16 weights
  "fp32"       everything else, and every ONNX / MINDIR file

`toolkit bench` labels its rows with it and compares each row with its fp32 peer ("vs fp32").
"""
import functools
import os

from .model import TYPE_FLOAT16, TYPE_INT8, TYPE_UINT8

FULL_QUANT_TYPES = (1, 3, 5)       # AwareTraining, PostTraining, QUANT_ALL


def is_full_quant_node(model, node):
    """A fully quantized node: flagged so, and (trusting the tensors) int8/uint8 activations. The
    `.ms` engine translates it by its int8 handlers (integer kernels), never by a float handler."""
    if node.quant_type not in FULL_QUANT_TYPES or node.op_type == "QuantDTypeCast":
        return False
    return any(model.tensors[i].data_type in (TYPE_INT8, TYPE_UINT8) and not model.tensors[i].is_const
               for i in node.inputs + node.outputs)


def model_precision(model):
    t = model.tensors
    if any(is_full_quant_node(model, n) for n in model.nodes):
        return "int8-full"
    if any(x.is_const and x.quant_params and x.data_type in (TYPE_INT8, TYPE_UINT8) for x in t):
        return "int8"
    if any(x.is_const and x.data_type == TYPE_FLOAT16 for x in t):
        return "fp16"
    return "fp32"


def file_precision(path):
    """The precision of a model file; None when it cannot be read (the row then says why). A bench
    table has a row per engine, device and batch of one file: the file is read once per version."""
    if not str(path).endswith(".ms"):
        return "fp32"
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _ms_precision(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _ms_precision(path, size, mtime_ns):
    from ..errors import ToolkitError
    from .reader import read_ms
    try:
        return model_precision(read_ms(path))
    except (ToolkitError, OSError):
        return None
