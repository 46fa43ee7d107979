"""Constant tensors as float arrays: unpacking compressed weights and weight dequantization.

Follows the Lite runtime's weight decoder: bit-packed (1-7 or 9-15 bit, LSB first), INDEXING and
SPARSE streams (MSB first) decode to int8/int16; weight-quantized tensors then dequantize as
((q - zero_point) * scale) * var_corr + mean_corr per channel along a "preferred" axis (axis 0,
except MatMul operands and, from 1.8.0, non-depthwise deconv weights), or through k-means clusters.
FSE and Huffman streams are not decoded (a clear error names the tensor).
"""
import math
import re

import numpy as np

from .model import TYPEID_TO_NUMPY

COMPRESS_NONE, COMPRESS_INDEXING, COMPRESS_SPARSE, COMPRESS_BITPACKING = 0, 1, 2, 4


class WeightError(Exception):
    """A constant cannot be decoded; the message names the tensor."""


def _count(t):
    return int(np.prod([max(d, 1) for d in t.dims])) if t.dims else 1


class _Bits:
    """MSB-first bit reader over bytes, as the INDEXING/SPARSE streams are written."""

    def __init__(self, data, name):
        self.bits = np.unpackbits(np.frombuffer(data, np.uint8))
        self.pos, self.name = 0, name

    def take(self, n, width):
        """n unsigned integers of `width` bits each."""
        end = self.pos + n * width
        if end > len(self.bits):
            raise WeightError(f"constant {self.name!r}: compressed stream ends early")
        if width == 0:
            return np.zeros(n, np.int64)
        chunk = self.bits[self.pos:end].reshape(n, width).astype(np.int64)
        self.pos = end
        return chunk @ (1 << np.arange(width - 1, -1, -1, dtype=np.int64))


def _unique_values(bits, num_bits):
    count = int(bits.take(1, num_bits)[0]) or (1 << num_bits)
    values = bits.take(count, num_bits) - (1 << (num_bits - 1))
    return values, max(math.ceil(math.log2(count)), 0)


def _indexing(t, num_bits, n):
    bits = _Bits(t.data, t.name)
    values, width = _unique_values(bits, num_bits)
    idx = bits.take(n, width)
    if idx.size and idx.max() >= len(values):
        raise WeightError(f"constant {t.name!r}: index past its value table")
    return values[idx]


def _sparse(t, num_bits, n):
    bits = _Bits(t.data, t.name)
    coor_bits = int(bits.take(1, 8)[0])
    nz = int(bits.take(1, 32)[0])
    if nz > n:
        raise WeightError(f"constant {t.name!r}: {nz} non-zeros for {n} elements")
    values, width = _unique_values(bits, num_bits)
    idx, gaps = bits.take(nz, width), bits.take(nz, coor_bits)
    if idx.size and idx.max() >= len(values):
        raise WeightError(f"constant {t.name!r}: index past its value table")
    positions = np.cumsum(gaps + 1) - 1
    if nz and positions[-1] >= n:
        raise WeightError(f"constant {t.name!r}: sparse positions past the tensor")
    zps = np.array([p.zero_point for p in t.quant_params], np.int64)
    out = np.repeat(zps, n // len(zps)) if len(zps) and n % len(zps) == 0 else np.zeros(n, np.int64)
    out[positions] = values[idx]
    return out


def _bit_unpack(t, num_bits, n):
    bits = np.unpackbits(np.frombuffer(t.data, np.uint8), bitorder="little")
    if len(bits) < n * num_bits:
        raise WeightError(f"constant {t.name!r}: {len(t.data)} bytes cannot hold {n} "
                          f"{num_bits}-bit values")
    chunk = bits[:n * num_bits].reshape(n, num_bits).astype(np.int64)
    return chunk @ (1 << np.arange(num_bits, dtype=np.int64)) - (1 << (num_bits - 1))


def decode(t):
    """The tensor's stored values as a numpy array of its dims (compressed streams decoded)."""
    dtype = TYPEID_TO_NUMPY.get(t.data_type)
    if dtype is None:
        raise WeightError(f"constant {t.name!r} has data type {t.data_type} this engine lacks")
    if t.external_data:
        raise WeightError(f"constant {t.name!r} keeps its data in an external file")
    if t.enable_huffman_code or t.weight_quant_compress_type not in (0, 1, 2, 4):
        raise WeightError(f"constant {t.name!r} uses Huffman/FSE weight compression (type "
                          f"{t.weight_quant_compress_type}), which this engine does not decode")
    n = _count(t)
    num_bits = t.quant_params[0].num_bits if t.quant_params else 8
    kind = t.weight_quant_compress_type
    packed = kind == COMPRESS_BITPACKING or (kind == COMPRESS_NONE and t.quant_params and
                                             (1 <= num_bits < 8 or 8 < num_bits < 16))
    if kind in (COMPRESS_INDEXING, COMPRESS_SPARSE) or packed:
        if not 1 <= num_bits < 16:
            raise WeightError(f"constant {t.name!r}: {num_bits}-bit compressed weights")
        decoder = {COMPRESS_INDEXING: _indexing, COMPRESS_SPARSE: _sparse}.get(kind, _bit_unpack)
        values = decoder(t, num_bits, n)
        return values.astype(np.int8 if num_bits <= 8 else np.int16).reshape(t.dims)
    if len(t.data) != n * dtype.itemsize:
        raise WeightError(f"constant {t.name!r}: {len(t.data)} bytes do not fit dims {list(t.dims)} "
                          f"of {dtype.name}")
    return np.frombuffer(t.data, dtype=dtype.newbyteorder("<")).reshape(t.dims)


def is_weight_quantized(t):
    """Trust the tensor: integer data with real quantization parameters (not 1.3.0's defaults)."""
    if t.data_type not in (32, 33, 34) or not (t.quant_params or t.quant_clusters):
        return False
    if t.quant_clusters:
        return True
    if t.data_type == 34:           # int32 constants are shapes/axes unless explicitly quantized
        return t.quant_params[0].inited
    return any(p.inited or p.scale != 1.0 or p.zero_point != 0 for p in t.quant_params)


def _version(text):
    m = re.match(r"MindSpore Lite (\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(v) for v in m.groups()) if m else None


def preferred_dim(version, node, index, rank):
    """The per-channel axis of a node's quantized input, as the Lite runtime chooses it."""
    a = node.attrs
    v = _version(version)
    if node.op_type == "MatMulFusion" and index in (0, 1):
        if v is None or v < (1, 6, 0):
            first = not a.get("transpose_a") if index == 0 else bool(a.get("transpose_b"))
            return 0 if first else 1
        if index == 0:
            return rank - 1 if a.get("transpose_a") else rank - 2
        return rank - 2 if a.get("transpose_b") else rank - 1
    if node.op_type == "Conv2dTransposeFusion" and v is not None and v >= (1, 8, 0):
        depthwise = a.get("group", 1) == a.get("in_channel") == a.get("out_channel")
        return 0 if depthwise else rank - 1
    return 0


def dequantize(t, q, axis=0):
    params = t.quant_params
    if t.quant_clusters and len(params) <= 1:
        clusters = np.asarray(t.quant_clusters, np.float32)
        idx = q.astype(np.int64) + 128
        if idx.size and (idx.min() < 0 or idx.max() >= len(clusters)):
            raise WeightError(f"constant {t.name!r}: cluster index out of range")
        return clusters[idx]
    q = q.astype(np.float64)
    if len(params) == 1:
        return ((q - params[0].zero_point) * params[0].scale).astype(np.float32)
    if q.ndim == 0 or not 0 <= axis < q.ndim or q.shape[axis] != len(params):
        raise WeightError(f"constant {t.name!r}: {len(params)} quant params for dims {q.shape} "
                          f"(channel axis {axis})")
    shape = [1] * q.ndim
    shape[axis] = -1
    def column(values):
        return np.asarray(values, np.float64).reshape(shape)
    zp = column([p.zero_point for p in params])
    scale = column([p.scale for p in params])
    var = column([p.var_corr if 0 <= p.var_corr <= 10 else 1.0 for p in params])
    mean = column([p.mean_corr for p in params])
    return ((q - zp) * scale * var + mean).astype(np.float32)


def const_array(t, version="", node=None, index=0):
    """A constant as numpy: float16 -> float32, weight-quantized or compressed ints -> float32."""
    data = decode(t)
    if is_weight_quantized(t):
        axis = preferred_dim(version, node, index, data.ndim) if node is not None else 0
        return dequantize(t, data, axis)
    if data.dtype == np.float16:
        return data.astype(np.float32)
    return data.astype(data.dtype.newbyteorder("="), copy=False)
