"""A plain-data description of an MsModel: what `toolkit inspect` prints (or emits as JSON)."""
from collections import Counter

import numpy as np

from . import schema
from .model import FMK_NAMES, FORMAT_NAMES, TYPE_FLOAT16, TYPE_INT8, TYPE_INT16, TYPE_UINT8, TYPEID_TO_NUMPY, MsModel


def _dtype_name(type_id):
    dtype = TYPEID_TO_NUMPY.get(type_id)
    return dtype.name if dtype is not None else f"typeid{type_id}"


def _tensor_info(model, idx):
    t = model.tensors[idx]
    return {"name": t.name, "index": idx, "shape": list(t.dims), "dtype": _dtype_name(t.data_type),
            "format": FORMAT_NAMES.get(t.format, str(t.format)) if len(t.dims) == 4 else ""}


def _meaningful(params):
    return any(p.inited or p.scale != 1.0 or p.zero_point != 0 for p in params)


def quantization(model: MsModel):
    weight_tensors = [t for t in model.tensors if t.is_const and t.data_type in (TYPE_INT8, TYPE_INT16, TYPE_UINT8)
                      and (_meaningful(t.quant_params) or t.quant_clusters)]
    return {
        "node_quant_types": dict(Counter(schema.QUANT_TYPES.get(n.quant_type, str(n.quant_type))
                                         for n in model.nodes)),
        "quantized_weight_tensors": len(weight_tensors),
        "per_channel": sum(len(t.quant_params) > 1 for t in weight_tensors),
        "num_bits": sorted({p.num_bits for t in weight_tensors for p in t.quant_params}),
        "compressed_tensors": sum(bool(t.weight_quant_compress_type or t.enable_huffman_code)
                                  for t in model.tensors),
        "float16_tensors": sum(t.is_const and t.data_type == TYPE_FLOAT16 for t in model.tensors),
    }


def summarize(model: MsModel, path=None, size=None):
    """Version, source framework, I/O, op histogram, bytes by dtype and quantization."""
    by_dtype = Counter()
    params = 0
    for t in model.tensors:
        if t.is_const:
            by_dtype[_dtype_name(t.data_type)] += len(t.data)
            params += int(np.prod([max(d, 1) for d in t.dims])) if t.dims else 1
    ops = Counter(n.op_type for n in model.nodes)
    return {
        "file": None if path is None else str(path),
        "file_bytes": size,
        "version": model.version,
        "source_framework": FMK_NAMES.get(model.fmk_type, f"fmkType {model.fmk_type}"),
        "fmk_type": model.fmk_type,
        "inputs": [_tensor_info(model, i) for i in model.inputs],
        "outputs": [_tensor_info(model, i) for i in model.outputs],
        "nodes": len(model.nodes),
        "tensors": len(model.tensors),
        "subgraphs": max(len(model.subgraphs), 1),
        "op_histogram": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "constant_bytes_by_dtype": dict(sorted(by_dtype.items())),
        "constant_values": params,
        "quantization": quantization(model),
    }
