"""Multi-node and special models: layout propagation, weight dequantization, fp16, unsupported ops."""
import numpy as np
import pytest

from runtime.engines.ms_engine import MsEngine
from runtime.errors import UnsupportedOpsError
from runtime.msformat.builder import make_tensor, single_node_model
from runtime.msformat.model import MsModel, MsNode, QuantParam
from runtime.msformat.reader import read_ms_bytes
from runtime.msformat.schema import ACT
from runtime.msformat.writer import model_to_bytes

from test_ms_engine_ops import conv_ref

rng = np.random.default_rng(5)
CONV1x1 = dict(format=1, kernel_size=(1, 1), stride=(1, 1), dilation=(1, 1), pad_mode=0, group=1)


def rand(*shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


def build(tensors, nodes, inputs, outputs, fmk=3):
    model = MsModel(version="MindSpore Lite 2.5.0", fmk_type=fmk, inputs=inputs, outputs=outputs,
                    nodes=nodes, tensors=tensors)
    return read_ms_bytes(model_to_bytes(model))


def test_nhwc_cnn_chain_needs_one_transpose_and_matches_numpy():
    """conv -> add(per-channel const) -> relu6 -> concat(channels) -> softmax -> mean-pool ->
    transpose(NCHW) + reshape + matmul head, like a converted classifier."""
    x = rand(1, 6, 5, 3)
    w1, w2, c = rand(4, 1, 1, 3), rand(2, 1, 1, 3), rand(4)
    wfc, bfc = rand(3, 6), rand(3)
    T = [make_tensor("x", shape=x.shape), make_tensor("w1", w1), make_tensor("w2", w2),
         make_tensor("c", c), make_tensor("a", shape=(1, 6, 5, 4)), make_tensor("b", shape=(1, 6, 5, 4)),
         make_tensor("r", shape=(1, 6, 5, 4)), make_tensor("d", shape=(1, 6, 5, 2)),
         make_tensor("cat", shape=(1, 6, 5, 6)), make_tensor("sm", shape=(1, 6, 5, 6)),
         make_tensor("axes", np.array([1, 2], np.int32)), make_tensor("pool", shape=(1, 1, 1, 6)),
         make_tensor("perm", np.array([0, 3, 1, 2], np.int32)), make_tensor("nchw", shape=(1, 6, 1, 1)),
         make_tensor("shape", np.array([1, 6], np.int32)), make_tensor("flat", shape=(1, 6)),
         make_tensor("wfc", wfc), make_tensor("bfc", bfc), make_tensor("logits", shape=(1, 3))]
    N = [MsNode("conv1", "Conv2DFusion", {**CONV1x1, "in_channel": 3, "out_channel": 4}, [0, 1], [4]),
         MsNode("add", "AddFusion", {}, [4, 3], [5]),
         MsNode("relu6", "Activation", {"activation_type": ACT["RELU6"]}, [5], [6]),
         MsNode("conv2", "Conv2DFusion", {**CONV1x1, "in_channel": 3, "out_channel": 2}, [0, 2], [7]),
         MsNode("concat", "Concat", {"axis": 3}, [6, 7], [8]),
         MsNode("softmax", "Softmax", {"axis": (-1,)}, [8], [9]),
         MsNode("mean", "ReduceFusion", {"mode": 0, "keep_dims": True}, [9, 10], [11]),
         MsNode("to_nchw", "Transpose", {}, [11, 12], [13]),
         MsNode("flatten", "Reshape", {}, [13, 14], [15]),
         MsNode("fc", "MatMulFusion", {"transpose_b": True}, [15, 16, 17], [18])]
    engine = MsEngine.from_model(build(T, N, [0], [18]))
    a = np.maximum(conv_ref(x, w1, None) + c, 0).clip(0, 6)
    cat = np.concatenate([a, conv_ref(x, w2, None)], -1)
    e = np.exp(cat - cat.max(-1, keepdims=True))
    pooled = (e / e.sum(-1, keepdims=True)).mean(axis=(1, 2))
    want = pooled @ wfc.T + bfc
    np.testing.assert_allclose(engine.run([x])["logits"], want, atol=1e-5, rtol=1e-5)
    import onnx
    ops = [n.op_type for n in onnx.load_from_string(engine.onnx_bytes).graph.node]
    assert ops.count("Transpose") == 1, ops


def quantize_per_channel(w):
    scale = np.abs(w).reshape(len(w), -1).max(1) / 120    # room for zero points up to 7
    q = np.round(w / scale.reshape(-1, 1, 1, 1)).astype(np.int8)
    return q, scale


@pytest.mark.parametrize("quant_type", [4, 0])     # trust the tensor, not the node's flag
def test_int8_per_channel_weights_are_dequantized(quant_type):
    x, w, b = rand(1, 5, 5, 3), rand(4, 3, 3, 3), rand(4)
    q, scale = quantize_per_channel(w)
    zp = np.array([0, 1, -2, 3])
    var_corr, mean_corr = np.array([1.0, 1.1, 0.9, 1.0]), np.array([0.0, 0.01, 0.0, -0.02])
    params = [QuantParam(scale=float(s), zero_point=int(z), inited=True, var_corr=float(v),
                         mean_corr=float(m)) for s, z, v, m in zip(scale, zp, var_corr, mean_corr)]
    wt = make_tensor("w", (q.astype(np.int16) + zp.reshape(-1, 1, 1, 1)).astype(np.int8), quant=params)
    attrs = {"format": 1, "kernel_size": (3, 3), "stride": (1, 1), "dilation": (1, 1), "group": 1,
             "in_channel": 3, "out_channel": 4}
    model, feed = single_node_model("Conv2DFusion", attrs, [("x", x), ("t", wt), ("c", b)], [(1, 3, 3, 4)],
                                    quant_type=quant_type)
    deq = q.astype(np.float64) * scale.reshape(-1, 1, 1, 1) * var_corr.reshape(-1, 1, 1, 1) \
        + mean_corr.reshape(-1, 1, 1, 1)
    got = MsEngine.from_model(read_ms_bytes(model_to_bytes(model))).run(feed)["out0"]
    np.testing.assert_allclose(got, conv_ref(x, deq.astype(np.float32), b), atol=1e-4, rtol=1e-4)
    # channel 0 has no correction terms: it stays within quantization error of the float model
    assert np.abs(got[..., 0] - conv_ref(x, w, b)[..., 0]).max() < 0.05


def test_float_weights_with_130_default_quant_params_stay_float():
    """1.3.0 attaches QuantParam(scale 1, inited false) to float tensors: it means nothing."""
    x, w = rand(2, 6), rand(3, 6)
    wt = make_tensor("w", w, quant=[QuantParam()])
    model, feed = single_node_model("FullConnection", {}, [("x", x), ("t", wt)], [(2, 3)], quant_type=4)
    got = MsEngine.from_model(read_ms_bytes(model_to_bytes(model))).run(feed)["out0"]
    np.testing.assert_allclose(got, x @ w.T, atol=1e-5)


def test_float16_weights_run_in_float32():
    x, w, b = rand(2, 6), rand(3, 6).astype(np.float16), rand(3).astype(np.float16)
    model, feed = single_node_model("FullConnection", {"has_bias": True}, [("x", x), ("c", w), ("c", b)],
                                    [(2, 3)])
    got = MsEngine.from_model(read_ms_bytes(model_to_bytes(model))).run(feed)["out0"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, x @ w.astype(np.float32).T + b.astype(np.float32), atol=1e-5)


def test_unsupported_ops_are_all_listed_at_once():
    T = [make_tensor("x", shape=(1, 4)), make_tensor("a", shape=(1, 4)), make_tensor("b", shape=(1, 4)),
         make_tensor("c", shape=(1, 4))]
    N = [MsNode("rnn", "LSTM", {}, [0], [1]), MsNode("ok", "Activation", {"activation_type": 1}, [1], [2]),
         MsNode("nms", "NonMaxSuppression", {}, [2], [3])]
    with pytest.raises(UnsupportedOpsError) as info:
        MsEngine.from_model(build(T, N, [0], [3]))
    assert info.value.ops == [("rnn", "LSTM"), ("nms", "NonMaxSuppression")]
    assert "rnn (LSTM)" in str(info.value) and "nms (NonMaxSuppression)" in str(info.value)


def test_untranslatable_attributes_name_the_node():
    model, _ = single_node_model("PadFusion", {"padding_mode": 2}, [("x", rand(1, 4)),
                                 ("c", np.array([[0, 0], [1, 1]], np.int32))], [(1, 6)])
    with pytest.raises(UnsupportedOpsError, match="PadFusion_node.*SYMMETRIC"):
        MsEngine.from_model(model)


def test_offline_model_with_custom_node_parses_but_cannot_execute():
    """fmkType 6: one Custom node holding a vendor blob; reading works, running names the node."""
    blob = np.arange(64, dtype=np.uint8)
    T = [make_tensor("x", shape=(1, 3, 8, 8)), make_tensor("om_blob", blob), make_tensor("y", shape=(1, 10))]
    N = [MsNode("vendor_graph", "Custom", {"type": "ACL", "attr": (("om_type", b"\x01"),)}, [0, 1], [2])]
    model = build(T, N, [0], [2], fmk=6)
    assert model.fmk_type == 6 and model.nodes[0].attrs["type"] == "ACL"
    assert model.nodes[0].attrs["attr"] == (("om_type", b"\x01"),)
    with pytest.raises(UnsupportedOpsError, match=r"vendor_graph \(Custom:ACL\)"):
        MsEngine.from_model(model)


def test_constant_graph_output_is_returned():
    c = rand(2, 3)
    T = [make_tensor("x", shape=(2, 3)), make_tensor("y", shape=(2, 3)), make_tensor("table", c)]
    N = [MsNode("relu", "Activation", {"activation_type": ACT["RELU"]}, [0], [1])]
    engine = MsEngine.from_model(build(T, N, [0], [1, 2]))
    out = engine.run([c])
    np.testing.assert_array_equal(out["table"], c)
    np.testing.assert_array_equal(out["y"], np.maximum(c, 0))


def test_nchw_model_with_converter_transposes_needs_no_transpose():
    """Converted from ONNX with an NCHW input: Transpose(NHWC) -> conv -> Transpose(NCHW)."""
    x, w = rand(1, 3, 5, 6), rand(4, 1, 1, 3)
    T = [make_tensor("x", shape=x.shape, fmt=0), make_tensor("to_nhwc", np.array([0, 2, 3, 1], np.int32)),
         make_tensor("xh", shape=(1, 5, 6, 3)), make_tensor("w", w), make_tensor("yh", shape=(1, 5, 6, 4)),
         make_tensor("to_nchw", np.array([0, 3, 1, 2], np.int32)), make_tensor("y", shape=(1, 4, 5, 6), fmt=0)]
    N = [MsNode("pre", "Transpose", {}, [0, 1], [2]),
         MsNode("conv", "Conv2DFusion", {**CONV1x1, "in_channel": 3, "out_channel": 4}, [2, 3], [4]),
         MsNode("post", "Transpose", {}, [4, 5], [6])]
    engine = MsEngine.from_model(build(T, N, [0], [6]))
    want = conv_ref(x.transpose(0, 2, 3, 1), w, None).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(engine.run([x])["y"], want, atol=1e-5)
    import onnx
    assert "Transpose" not in [n.op_type for n in onnx.load_from_string(engine.onnx_bytes).graph.node]
