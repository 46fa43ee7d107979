"""Constant tensors as float arrays: unpacking compressed weights and weight dequantization.

Follows the Lite runtime's weight decoder: bit-packed (1-7 or 9-15 bit, LSB first), INDEXING and
SPARSE streams (MSB first) decode to int8/int16; weight-quantized tensors then dequantize as
((q - zero_point) * scale) * var_corr + mean_corr per channel along a "preferred" axis (axis 0,
except MatMul operands and, from 1.8.0, non-depthwise deconv weights), or through k-means clusters.
FSE and Huffman streams are not decoded (a clear error names the tensor).

Untrusted streams: every length is checked against the stream BEFORE an array is allocated, the
element count against budget.MAX_DECODED_BYTES, and bit fields are read in chunks of _CHUNK values
straight from the bytes (no 8x bit array). Decoding costs O(elements) time and 1-2 bytes per
element (int8/int16) plus bounded chunk temporaries; dequantization adds one float64 and one
float32 array (about 14 bytes per element at peak, one tensor at a time). `stream_problem` runs the
same checks without decoding; the reader calls it on every compressed constant.
"""
import math
import re

import numpy as np

from . import budget
from .model import COMPRESS_DECODED, COMPRESS_NONE, TYPE_INT8, TYPE_INT16, TYPE_INT32, TYPEID_TO_NUMPY

COMPRESS_NONE, COMPRESS_INDEXING, COMPRESS_SPARSE, COMPRESS_BITPACKING = 0, 1, 2, 4
MAX_DECODE_ELEMENTS = budget.MAX_DECODED_BYTES // 4
MAX_COORD_BITS = 32             # widest SPARSE gap field read (the converter writes <= 16)
_CHUNK = 1 << 20                # bit fields decoded per step


class WeightError(Exception):
    """A constant uses an encoding this engine does not implement; the message names the tensor.

    Reported with the unsupported ops: the file may be fine, this engine just cannot run it."""


class CorruptWeightError(WeightError):
    """A constant's bytes contradict its own header (lengths, indices, counts): the file is corrupt,
    which the engine reports as a ModelFormatError, never as an unsupported op."""


def element_count(t):
    """Elements a constant's dims describe (unknown -1 and 0 dims count as 1), as a Python int."""
    n = 1
    for d in t.dims:
        n *= max(int(d), 1)
    return n


_count = element_count


def decoded_nbytes(t):
    """Bytes `const_array` materialises for constant `t` (float32 or its wider native type)."""
    dtype = TYPEID_TO_NUMPY.get(t.data_type)
    return element_count(t) * max(4, dtype.itemsize if dtype is not None else 4)


def _field_chunks(data, bit_start, n, width, msb):
    """(offset, int64 array) chunks of n unsigned `width`-bit integers from bit `bit_start` on.

    The caller checked that the stream holds them; at most _CHUNK values live at a time."""
    if n == 0:
        return
    if width == 0:
        for c0 in range(0, n, _CHUNK):
            yield c0, np.zeros(min(n, c0 + _CHUNK) - c0, np.int64)
        return
    span = (width + 14) // 8                       # bytes one field can touch (width <= 32)
    end = (bit_start + n * width + 7) // 8
    raw = np.frombuffer(data, np.uint8, count=end)
    mask = (1 << width) - 1
    for c0 in range(0, n, _CHUNK):
        k = np.arange(c0, min(n, c0 + _CHUNK), dtype=np.int64)
        pos = bit_start + k * width
        byte, shift = pos >> 3, pos & 7
        acc = np.zeros(len(k), np.int64)
        for j in range(span):
            b = raw[np.minimum(byte + j, end - 1)].astype(np.int64)
            b[byte + j >= end] = 0                 # bytes past the stream read as zero padding
            acc = (acc << 8) | b if msb else acc | (b << (8 * j))
        yield c0, ((acc >> (span * 8 - shift - width)) if msb else (acc >> shift)) & mask


class _Bits:
    """MSB-first bit cursor over bytes, as the INDEXING/SPARSE streams are written.

    `chunks` checks that n fields fit BEFORE anything is allocated, then yields them lazily."""

    def __init__(self, data, name):
        self.data, self.total, self.pos, self.name = data, len(data) * 8, 0, name

    def chunks(self, n, width):
        end = self.pos + n * width
        if end > self.total:
            raise CorruptWeightError(f"constant {self.name!r}: compressed stream ends early ({self.total} "
                              f"bits hold no {n} more {width}-bit fields at bit {self.pos})")
        start, self.pos = self.pos, end
        return _field_chunks(self.data, start, n, width, True)

    def array(self, n, width):
        out = np.zeros(n, np.int64)
        for c0, chunk in self.chunks(n, width):
            out[c0:c0 + len(chunk)] = chunk
        return out

    def one(self, width):
        return int(self.array(1, width)[0])


def _unique_values(bits, num_bits, dry):
    count = bits.one(num_bits) or (1 << num_bits)          # <= 2**15 values
    values = bits.chunks(count, num_bits) if dry else bits.array(count, num_bits) - (1 << (num_bits - 1))
    return values, count, max(math.ceil(math.log2(count)), 0)


def _out(n, num_bits):
    return np.empty(n, np.int8 if num_bits <= 8 else np.int16)


def _indexing(t, num_bits, n, dry=False):
    bits = _Bits(t.data, t.name)
    values, count, width = _unique_values(bits, num_bits, dry)
    idx = bits.chunks(n, width)
    if dry:
        return None
    out = _out(n, num_bits)
    for c0, chunk in idx:
        if chunk.size and chunk.max() >= count:
            raise CorruptWeightError(f"constant {t.name!r}: index past its value table")
        out[c0:c0 + len(chunk)] = values[chunk]
    return out


def _sparse(t, num_bits, n, dry=False):
    bits = _Bits(t.data, t.name)
    coor_bits = bits.one(8)
    if coor_bits > MAX_COORD_BITS:
        raise WeightError(f"constant {t.name!r}: {coor_bits}-bit sparse coordinates")
    nz = bits.one(32)
    if nz > n:
        raise CorruptWeightError(f"constant {t.name!r}: {nz} non-zeros for {n} elements")
    values, count, width = _unique_values(bits, num_bits, dry)
    idx, gaps = bits.chunks(nz, width), bits.chunks(nz, coor_bits)
    if dry:
        return None
    zps = np.array([p.zero_point for p in t.quant_params], np.int64)
    out = _out(n, num_bits)
    if len(zps) and n % len(zps) == 0:
        out[:] = np.repeat(zps, n // len(zps))
    else:
        out[:] = 0
    last = -1
    for (c0, ichunk), (_, gchunk) in zip(idx, gaps):
        if ichunk.size and ichunk.max() >= count:
            raise CorruptWeightError(f"constant {t.name!r}: index past its value table")
        positions = last + np.cumsum(gchunk + 1)
        if positions[-1] >= n:
            raise CorruptWeightError(f"constant {t.name!r}: sparse positions past the tensor")
        out[positions] = values[ichunk]
        last = int(positions[-1])
    return out


def _bit_unpack(t, num_bits, n, dry=False):
    if len(t.data) * 8 < n * num_bits:
        raise CorruptWeightError(f"constant {t.name!r}: {len(t.data)} bytes cannot hold {n} "
                          f"{num_bits}-bit values")
    if dry:
        return None
    out = _out(n, num_bits)
    for c0, chunk in _field_chunks(t.data, 0, n, num_bits, False):
        out[c0:c0 + len(chunk)] = chunk - (1 << (num_bits - 1))
    return out


def _layout(t):
    """(decoder or None for plain data, num_bits, element count), refusing what cannot decode."""
    dtype = TYPEID_TO_NUMPY.get(t.data_type)
    if dtype is None:
        raise WeightError(f"constant {t.name!r} has data type {t.data_type} this engine lacks")
    if t.external_data:
        raise WeightError(f"constant {t.name!r} keeps its data in an external file")
    if t.enable_huffman_code or t.weight_quant_compress_type not in (COMPRESS_NONE,) + COMPRESS_DECODED:
        raise WeightError(f"constant {t.name!r} uses Huffman/FSE weight compression (type "
                          f"{t.weight_quant_compress_type}), which this engine does not decode")
    n = element_count(t)
    if n > MAX_DECODE_ELEMENTS:
        raise CorruptWeightError(f"constant {t.name!r}: dims {list(t.dims)} describe {n} elements, more "
                          f"than the {MAX_DECODE_ELEMENTS} a constant may decode to")
    num_bits = t.quant_params[0].num_bits if t.quant_params else 8
    kind = t.weight_quant_compress_type
    packed = kind == COMPRESS_BITPACKING or (kind == COMPRESS_NONE and t.quant_params and
                                             (1 <= num_bits < 8 or 8 < num_bits < 16))
    if kind in (COMPRESS_INDEXING, COMPRESS_SPARSE) or packed:
        if not 1 <= num_bits < 16:
            raise WeightError(f"constant {t.name!r}: {num_bits}-bit compressed weights")
        decoder = {COMPRESS_INDEXING: _indexing, COMPRESS_SPARSE: _sparse}.get(kind, _bit_unpack)
        return decoder, num_bits, n
    if len(t.data) != n * dtype.itemsize:
        raise CorruptWeightError(f"constant {t.name!r}: {len(t.data)} bytes do not fit dims {list(t.dims)} "
                          f"of {dtype.name}")
    return None, num_bits, n


def stream_problem(t):
    """Why constant `t` cannot be decoded, checked from its headers and lengths only, or None.

    Costs O(1) memory and time; what it cannot see without decoding (an index past the value
    table, sparse positions past the end) `decode` still refuses."""
    try:
        decoder, num_bits, n = _layout(t)
        if decoder is not None:
            decoder(t, num_bits, n, dry=True)
    except WeightError as e:
        return str(e)
    return None


def decode(t):
    """The tensor's stored values as a numpy array of its dims (compressed streams decoded)."""
    decoder, num_bits, n = _layout(t)
    if decoder is not None:
        return decoder(t, num_bits, n).reshape(t.dims)
    dtype = TYPEID_TO_NUMPY[t.data_type]
    return np.frombuffer(t.data, dtype=dtype.newbyteorder("<")).reshape(t.dims)


def is_weight_quantized(t):
    """Trust the tensor: integer data with real quantization parameters (not 1.3.0's defaults)."""
    if t.data_type not in (TYPE_INT8, TYPE_INT16, TYPE_INT32) or not (t.quant_params or t.quant_clusters):
        return False
    if t.quant_clusters:
        return True
    if t.data_type == TYPE_INT32:   # int32 constants are shapes/axes unless explicitly quantized
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
            raise CorruptWeightError(f"constant {t.name!r}: cluster index out of range")
        return clusters[idx]
    q = q.astype(np.float64)                # one float64 copy, then in-place (same arithmetic)
    if len(params) == 1:
        q -= params[0].zero_point
        q *= params[0].scale
        return q.astype(np.float32)
    if q.ndim == 0 or not 0 <= axis < q.ndim or q.shape[axis] != len(params):
        raise CorruptWeightError(f"constant {t.name!r}: {len(params)} quant params for dims {q.shape} "
                          f"(channel axis {axis})")
    shape = [1] * q.ndim
    shape[axis] = -1
    def column(values):
        return np.asarray(values, np.float64).reshape(shape)
    zp = column([p.zero_point for p in params])
    scale = column([p.scale for p in params])
    var = column([p.var_corr if 0 <= p.var_corr <= 10 else 1.0 for p in params])
    mean = column([p.mean_corr for p in params])
    q -= zp
    q *= scale
    q *= var
    q += mean
    return q.astype(np.float32)


def const_array(t, version="", node=None, index=0):
    """A constant as numpy: float16 -> float32, weight-quantized or compressed ints -> float32."""
    data = decode(t)
    if is_weight_quantized(t):
        axis = preferred_dim(version, node, index, data.ndim) if node is not None else 0
        return dequantize(t, data, axis)
    if data.dtype == np.float16:
        return data.astype(np.float32)
    return data.astype(data.dtype.newbyteorder("="), copy=False)
