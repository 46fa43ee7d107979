"""Weight decoding and dequantization as the Lite runtime does it (bit packing, INDEXING, SPARSE,
k-means clusters, per-channel axis choice), through our own encoders of the documented streams."""
import math

import numpy as np
import pytest

from runtime.engines.ms_engine import MsEngine
from runtime.errors import UnsupportedOpsError
from runtime.msformat.builder import make_tensor, single_node_model
from runtime.msformat.model import MsNode, QuantParam
from runtime.msformat.reader import read_ms_bytes
from runtime.msformat.weights import decode, dequantize, preferred_dim
from runtime.msformat.writer import model_to_bytes

rng = np.random.default_rng(11)


def msb_bits(values, width):
    return [(int(v) >> (width - 1 - k)) & 1 for v in values for k in range(width)]


def to_bytes(bits):
    bits = bits + [0] * (-len(bits) % 8)
    return np.packbits(np.array(bits, np.uint8)).tobytes()


def unique_table(q, num_bits):
    values = sorted(set(int(v) for v in q.reshape(-1)))
    header = msb_bits([len(values) % (1 << num_bits)], num_bits)
    header += msb_bits([v + (1 << (num_bits - 1)) for v in values], num_bits)
    return values, header, max(math.ceil(math.log2(len(values))), 0)


def encode_indexing(q, num_bits):
    values, bits, width = unique_table(q, num_bits)
    return to_bytes(bits + msb_bits([values.index(int(v)) for v in q.reshape(-1)], width))


def encode_sparse(q, num_bits, zeros, coor_bits=4):
    """zeros: the per-position value that needs no entry (the channel's zero point)."""
    nz, gaps, gap = [], [], 0
    for v, z in zip(q.reshape(-1), np.broadcast_to(zeros, q.size)):
        if v == z and gap < (1 << coor_bits) - 1:
            gap += 1
            continue
        nz.append(int(v))
        gaps.append(gap)
        gap = 0
    values, table, width = unique_table(np.array(nz), num_bits)
    bits = msb_bits([coor_bits], 8) + msb_bits([len(nz)], 32) + table
    bits += msb_bits([values.index(v) for v in nz], width) + msb_bits(gaps, coor_bits)
    return to_bytes(bits)


def encode_bitpacked(q, num_bits):
    bits = [((int(v) + (1 << (num_bits - 1))) >> k) & 1 for v in q.reshape(-1) for k in range(num_bits)]
    bits += [0] * (-len(bits) % 8)
    return np.packbits(np.array(bits, np.uint8), bitorder="little").tobytes()


def quant_tensor(name, q, data, compress, num_bits, params=None):
    t = make_tensor(name, q)
    t.data, t.weight_quant_compress_type = data, compress
    t.quant_params = params or [QuantParam(scale=0.1, inited=True, num_bits=num_bits)]
    return t


@pytest.mark.parametrize("num_bits", [3, 4, 7])
def test_bit_packed_weights(num_bits):
    q = rng.integers(-(1 << (num_bits - 1)), 1 << (num_bits - 1), size=(5, 7)).astype(np.int8)
    t = quant_tensor("w", q, encode_bitpacked(q, num_bits), 0, num_bits)
    np.testing.assert_array_equal(decode(t), q)


def test_twelve_bit_packed_weights_decode_to_int16():
    q = rng.integers(-2048, 2048, size=(3, 5)).astype(np.int16)
    t = quant_tensor("w", q, encode_bitpacked(q, 12), 4, 12)
    got = decode(t)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, q)


def test_indexing_compressed_weights():
    q = rng.choice(np.array([-7, -1, 0, 3, 5], np.int8), size=(4, 6))
    t = quant_tensor("w", q, encode_indexing(q, 4), 1, 4)
    np.testing.assert_array_equal(decode(t), q)


def test_sparse_compressed_weights_fill_with_channel_zero_points():
    q = np.zeros((2, 20), np.int8)
    q[0, [1, 5, 19]] = [3, -2, 1]
    q[1, [0, 18]] = [4, 4]
    q[1][q[1] == 0] = 2          # channel 1 has zero point 2
    params = [QuantParam(scale=0.5, zero_point=0, inited=True, num_bits=4),
              QuantParam(scale=0.5, zero_point=2, inited=True, num_bits=4)]
    flat_zero = np.where(np.arange(40) < 20, 0, 2)
    t = quant_tensor("w", q, encode_sparse(q, 4, flat_zero), 2, 4, params)
    np.testing.assert_array_equal(decode(t), q)


def test_sparse_encoder_round_trip_with_zero_zero_point():
    q = np.zeros((3, 9), np.int8)
    q[0, 2], q[2, 8] = 5, -3
    t = quant_tensor("w", q, encode_sparse(q, 4, 0), 2, 4)
    np.testing.assert_array_equal(decode(t), q)


def test_kmeans_clusters():
    clusters = np.linspace(-1, 1, 16).astype(np.float32)
    idx = rng.integers(0, 16, size=(4, 4))
    t = make_tensor("w", (idx - 128).astype(np.int8))
    t.quant_clusters = list(clusters)
    t.quant_params = [QuantParam(inited=True)]
    np.testing.assert_allclose(dequantize(t, decode(t)), clusters[idx])


@pytest.mark.parametrize("version,attrs,index,rank,axis", [
    ("MindSpore Lite 2.5.0", {"transpose_b": True}, 1, 2, 0),
    ("MindSpore Lite 2.5.0", {"transpose_b": False}, 1, 2, 1),
    ("MindSpore Lite 2.5.0", {"transpose_a": False}, 0, 3, 1),
    ("MindSpore Lite 1.5.0", {"transpose_b": False}, 1, 2, 1),
    ("MindSpore Lite 1.5.0", {"transpose_b": True}, 1, 2, 0),
])
def test_matmul_channel_axis(version, attrs, index, rank, axis):
    assert preferred_dim(version, MsNode("m", "MatMulFusion", attrs), index, rank) == axis


def test_deconv_channel_axis_changed_in_180():
    node = MsNode("d", "Conv2dTransposeFusion", {"group": 1, "in_channel": 4, "out_channel": 3})
    assert preferred_dim("MindSpore Lite 1.7.0", node, 1, 4) == 0
    assert preferred_dim("MindSpore Lite 2.0.0", node, 1, 4) == 3


def test_int8_matmul_weight_quantized_along_its_output_axis():
    """MatMul B [K, N] without transpose: channels are the last axis (N)."""
    x, w = rng.uniform(-1, 1, (2, 6)).astype(np.float32), rng.uniform(-1, 1, (6, 3)).astype(np.float32)
    scale = np.abs(w).max(0) / 127
    q = np.round(w / scale).astype(np.int8)
    wt = make_tensor("w", q, quant=[QuantParam(scale=float(s), inited=True) for s in scale])
    model, feed = single_node_model("MatMulFusion", {}, [("x", x), ("t", wt)], [(2, 3)], quant_type=4)
    got = MsEngine.from_model(read_ms_bytes(model_to_bytes(model))).run(feed)["out0"]
    np.testing.assert_allclose(got, x @ (q * scale), atol=1e-5)


def test_bit_packed_weights_run_through_the_engine():
    x = rng.uniform(-1, 1, (2, 8)).astype(np.float32)
    q = rng.integers(-8, 8, size=(3, 8)).astype(np.int8)
    params = [QuantParam(scale=s, inited=True, num_bits=4) for s in (0.1, 0.2, 0.05)]
    wt = quant_tensor("w", q, encode_bitpacked(q, 4), 0, 4, params)
    model, feed = single_node_model("FullConnection", {}, [("x", x), ("t", wt)], [(2, 3)], quant_type=4)
    got = MsEngine.from_model(read_ms_bytes(model_to_bytes(model))).run(feed)["out0"]
    np.testing.assert_allclose(got, x @ (q * np.array([[0.1], [0.2], [0.05]])).T, atol=1e-5)


@pytest.mark.parametrize("compress", [3, 5])       # FSE, FSE_INT
def test_fse_compressed_weights_are_refused_by_name(compress):
    q = np.ones((3, 8), np.int8)
    wt = quant_tensor("fse_weight", q, b"\x00" * 5, compress, 8)
    model, _ = single_node_model("FullConnection", {}, [("x", np.ones((1, 8), np.float32)), ("t", wt)],
                                 [(1, 3)], quant_type=4)
    with pytest.raises(UnsupportedOpsError, match="fse_weight.*FSE"):
        MsEngine.from_model(read_ms_bytes(model_to_bytes(model)))
