"""Weight compression of a lowered MsModel: float16 weights, or 8-bit per-channel weights.

Like converter_lite's weight quantization, only conv and matmul weights are quantized, per output
channel (the first axis), and small tensors stay float: fewer elements than `min_size` or fewer
channels than `min_channels` (converter_lite's min_quant_weight_size / min_quant_weight_channel,
defaults 0 and 16), and tensors whose per-channel QuantParams (32 bytes each) would outweigh the
8-bit saving, i.e. fewer than 32 elements per channel: the first conv and depthwise 3x3 convs stay
float, as in official files. Biases stay float32. Nodes with a quantized weight get quantType
QUANT_WEIGHT.
"""
from dataclasses import dataclass

import numpy as np

from runtime.msformat.model import (QUANT_WEIGHT, TYPE_FLOAT16, TYPE_FLOAT32, TYPE_INT8,
                                    QuantParam)

DEFAULT_MIN_SIZE = 0
DEFAULT_MIN_CHANNELS = 16
QUANT_PARAM_BITS = 32 * 8            # one QuantParam per channel, as converter_lite counts it
WEIGHT_OPS = ("Conv2DFusion", "MatMulFusion", "FullConnection")


@dataclass
class QuantStats:
    quantized: int = 0
    kept_float: int = 0


def _weight(t):
    return np.frombuffer(t.data, dtype="<f4").reshape(t.dims)


def weights_to_fp16(model, weight_indices):
    """Store conv/matmul weights and their biases as float16."""
    targets = set(weight_indices)
    for n in model.nodes:
        if n.op_type in WEIGHT_OPS and len(n.inputs) > 2:
            targets.add(n.inputs[2])
    count = 0
    for i in sorted(targets):
        t = model.tensors[i]
        if t.data_type == TYPE_FLOAT32 and t.is_const:
            t.data = _weight(t).astype("<f2").tobytes()
            t.data_type = TYPE_FLOAT16
            count += 1
    return count


def quantize_channel(w, symmetric):
    """(int8 values, QuantParam) of one output channel."""
    w = w.astype(np.float64)
    if symmetric:
        m = float(np.abs(w).max())
        scale = m / 127.0 if m > 0 else 1.0
        q = np.clip(np.round(w / scale), -127, 127)
        return q.astype(np.int8), QuantParam(scale=scale, zero_point=0, narrow_range=True,
                                             num_bits=8, inited=True)
    lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
    scale = (hi - lo) / 255.0 if hi > lo else 1.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    q = np.clip(np.round(w / scale) + zp, -128, 127)
    return q.astype(np.int8), QuantParam(scale=scale, zero_point=zp, narrow_range=False,
                                         num_bits=8, inited=True)


def worth_quantizing(dims, bits, min_size, min_channels):
    """converter_lite's rule: big enough, enough channels, and params smaller than the saving."""
    size = int(np.prod(dims)) if dims else 1
    return (len(dims) >= 2 and size >= min_size and dims[0] >= min_channels
            and QUANT_PARAM_BITS * dims[0] <= size * bits)


def quantize_weights(model, weight_indices, symmetric=True, min_size=DEFAULT_MIN_SIZE,
                     min_channels=DEFAULT_MIN_CHANNELS):
    stats = QuantStats()
    users = {}
    for n in model.nodes:
        if n.op_type in WEIGHT_OPS and len(n.inputs) > 1:
            users.setdefault(n.inputs[1], []).append(n)
    for i in sorted(weight_indices):
        t = model.tensors[i]
        nodes = users.get(i, [])
        transposed_ok = all(n.op_type != "MatMulFusion" or n.attrs.get("transpose_b") for n in nodes)
        if (t.data_type != TYPE_FLOAT32 or not transposed_ok
                or not worth_quantizing(tuple(t.dims), 8, min_size, min_channels)):
            stats.kept_float += 1
            continue
        w = _weight(t)
        qs, params = zip(*(quantize_channel(w[c], symmetric) for c in range(w.shape[0])))
        t.data = np.stack(qs).astype(np.int8).tobytes()
        t.data_type = TYPE_INT8
        t.quant_params = list(params)
        for n in nodes:
            n.quant_type = QUANT_WEIGHT
        stats.quantized += 1
    return stats
