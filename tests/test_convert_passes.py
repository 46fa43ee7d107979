"""Every converter pass, on small hand-built IR graphs (no MindSpore needed).

Each pass must (a) do its rewrite and (b) leave the graph's function unchanged: the numpy reference
kernels (converters.ir_ops) evaluate the graph before and after, to 1e-5 relative.
"""
import numpy as np
import pytest

from converters.errors import ConversionError
from converters.ir import ACT_RELU, ACT_RELU6, ACT_SIGMOID, Graph, make_node
from converters.ir_ops import infer_shapes, run_graph
from converters.passes import PASSES, PIPELINE, run_pipeline
from converters.passes.shapes import annotate_shapes

RNG = np.random.default_rng(0)


def w(*shape, scale=0.5, rng=None):
    return ((rng or RNG).standard_normal(shape) * scale).astype(np.float32)


def conv(name, x, weight, out, **kw):
    attrs = dict(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), pads=(1, 1, 1, 1), pad_mode="pad",
                 group=1, activation=0)
    attrs.update(kw)
    return make_node(name, "Conv2D", [x, weight], [out], **attrs)


def graph(nodes, consts, outputs, shape=(1, 3, 8, 8)):
    g = Graph(nodes=list(nodes), inputs=["x"], outputs=list(outputs), consts=dict(consts),
              shapes={"x": shape})
    infer_shapes(g)
    return g


def cnn_graph():
    """conv-bn-relu6, depthwise conv-bn-relu (padded 'same', stride 2), residual add + relu,
    identity, pooling, global mean and a Dense (MatMul + BiasAdd) head."""
    c, r = 4, np.random.default_rng(1)      # the same weights on every call
    consts = {
        "w1": w(c, 3, 3, 3, rng=r), "w2": w(c, 1, 3, 3, rng=r), "w3": w(c, c, 1, 1, rng=r),
        "g1": w(c, rng=r) + 1, "b1": w(c, rng=r), "m1": w(c, rng=r), "v1": np.abs(w(c, rng=r)) + 0.5,
        "g2": w(c, rng=r) + 1, "b2": w(c, rng=r), "m2": w(c, rng=r), "v2": np.abs(w(c, rng=r)) + 0.5,
        "fc": w(5, c, rng=r), "fcb": w(5, rng=r), "half": np.float32(0.5).reshape(()),
    }
    nodes = [
        conv("c1", "x", "w1", "y1"),
        make_node("bn1", "BatchNorm", ["y1", "g1", "b1", "m1", "v1"], ["y2"], epsilon=1e-5),
        make_node("r1", "Activation", ["y2"], ["y3"], type=ACT_RELU6),
        conv("c2", "y3", "w2", "y4", group=c, pad_mode="same", stride=(2, 2)),
        make_node("bn2", "BatchNorm", ["y4", "g2", "b2", "m2", "v2"], ["y5"], epsilon=1e-5),
        make_node("r2", "Activation", ["y5"], ["y6"], type=ACT_RELU),
        conv("c3", "y6", "w3", "y7", kernel=(1, 1), pads=(0, 0, 0, 0)),
        make_node("add", "Add", ["y6", "y7"], ["y8"], activation=0),
        make_node("r3", "Activation", ["y8"], ["y9"], type=ACT_RELU),
        make_node("id", "Identity", ["y9"], ["y10"]),
        make_node("scale", "Mul", ["y10", "half"], ["y11"], activation=0),
        make_node("pool", "MaxPool", ["y11"], ["y12"], kernel=(2, 2), stride=(1, 1), pads=(0, 0, 0, 0),
                  pad_mode="valid", ceil_mode=False, count_include_pad=False),
        make_node("gap", "ReduceMean", ["y12"], ["y13"], axes=(2, 3), keep_dims=False),
        make_node("fc", "MatMul", ["y13", "fc"], ["y14"], transpose_a=False, transpose_b=True,
                  activation=0),
        make_node("bias", "BiasAdd", ["y14", "fcb"], ["y15"], axis=1),
        make_node("sm", "Softmax", ["y15"], ["out"], axis=1),
    ]
    return graph(nodes, consts, ["out"])


def outputs(g, x):
    feed = x.transpose(0, 2, 3, 1) if g.layout == "NHWC" and g.input_layout == "NHWC" else x
    return run_graph(g, {g.inputs[0]: feed})[g.outputs[0]]


def assert_same_function(before, after, x, rtol=1e-5):
    a, b = outputs(before, x), outputs(after, x)
    assert a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * float(np.abs(a).max()))


def run_until(g, last):
    for name, fn in PIPELINE:
        fn(g, None)
        g.prune()
        if name == last:
            return g
    raise AssertionError(last)


X = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("pass_name", [name for name, _ in PIPELINE])
def test_every_pass_keeps_the_function(pass_name):
    reference = cnn_graph()
    g = run_until(cnn_graph(), pass_name)
    assert_same_function(reference, g, X)


def test_pipeline_order_is_documented():
    import converters.passes as p
    names = [name for name, _ in PIPELINE]
    assert names == ["annotate_shapes", "remove_identities", "fold_constants", "merge_bias",
                     "fold_batchnorm", "fuse_activation", "to_nhwc"]
    for name in names:
        assert name in p.__doc__


def test_remove_identities():
    g = run_until(cnn_graph(), "remove_identities")
    assert "Identity" not in g.op_counts()


def test_fold_constants_evaluates_constant_subgraphs():
    consts = {"a": w(4), "b": w(4), "shape": np.array([1, 4], np.int64)}
    nodes = [make_node("k", "Add", ["a", "b"], ["ab"], activation=0),
             make_node("r", "Reshape", ["ab", "shape"], ["ab2"]),
             make_node("f", "Flatten", ["x"], ["xf"], axis=1),
             make_node("m", "MatMul", ["xf", "w"], ["y"], transpose_a=False, transpose_b=True,
                       activation=0),
             make_node("add", "Add", ["y", "ab2"], ["out"], activation=0)]
    consts["w"] = w(4, 12)
    g = graph(nodes, consts, ["out"], shape=(1, 3, 2, 2))
    before = graph(list(nodes), dict(consts), ["out"], shape=(1, 3, 2, 2))
    PASSES["fold_constants"](g)
    g.prune()
    assert g.op_counts() == {"Flatten": 1, "MatMul": 1, "Add": 1}
    np.testing.assert_allclose(g.consts["ab2"], (consts["a"] + consts["b"]).reshape(1, 4))
    x = RNG.standard_normal((1, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(run_graph(g, {"x": x})["out"], run_graph(before, {"x": x})["out"],
                               rtol=1e-6)


def test_fold_batchnorm_into_conv_and_standalone_batchnorm_becomes_mul_add():
    g = run_until(cnn_graph(), "fold_batchnorm")
    assert "BatchNorm" not in g.op_counts()
    convs = [n for n in g.nodes if n.op == "Conv2D"]
    assert all(len(n.inputs) == 3 for n in convs[:2])            # folded convs got a bias
    c = 3
    consts = {"g": w(c) + 1, "b": w(c), "m": w(c), "v": np.abs(w(c)) + 0.5}
    lone = graph([make_node("bn", "BatchNorm", ["x", "g", "b", "m", "v"], ["out"], epsilon=1e-3)],
                 consts, ["out"])
    ref = graph(list(lone.nodes), dict(consts), ["out"])
    PASSES["fold_batchnorm"](lone)
    assert lone.op_counts() == {"Mul": 1, "Add": 1}
    assert_same_function(ref, lone, X)


def test_conv_biasadd_batchnorm_relu_becomes_one_conv():
    consts = {"w1": w(3, 3, 3, 3), "cb": w(3), "g": w(3) + 1, "b": w(3), "m": w(3), "v": np.abs(w(3)) + 0.5}
    nodes = [conv("c", "x", "w1", "y"),
             make_node("ba", "BiasAdd", ["y", "cb"], ["yb"], axis=1),
             make_node("bn", "BatchNorm", ["yb", "g", "b", "m", "v"], ["z"], epsilon=1e-5),
             make_node("r", "Activation", ["z"], ["out"], type=ACT_RELU)]
    g = graph(nodes, consts, ["out"])
    ref = graph(list(nodes), dict(consts), ["out"])
    run_pipeline(g)
    # one conv (bias, BatchNorm and ReLU inside) and the Transpose back to NCHW of the 4-D output
    assert g.op_counts() == {"Conv2D": 1, "Transpose": 1} and g.nodes[0].attrs["activation"] == ACT_RELU
    assert_same_function(ref, g, X)


def test_batchnorm_is_not_folded_into_a_conv_whose_output_is_also_used_elsewhere():
    consts = {"w1": w(3, 3, 3, 3), "g": w(3) + 1, "b": w(3), "m": w(3), "v": np.abs(w(3)) + 0.5}
    nodes = [conv("c", "x", "w1", "y"),
             make_node("bn", "BatchNorm", ["y", "g", "b", "m", "v"], ["z"], epsilon=1e-5),
             make_node("add", "Add", ["y", "z"], ["out"], activation=0)]
    g = graph(nodes, consts, ["out"])
    ref = graph(list(nodes), dict(consts), ["out"])
    PASSES["fold_batchnorm"](g)
    assert [n.op for n in g.nodes] == ["Conv2D", "Mul", "Add", "Add"]
    assert_same_function(ref, g, X)


def test_merge_bias_makes_dense_one_matmul_with_bias():
    g = run_until(cnn_graph(), "merge_bias")
    ops = g.op_counts()
    assert "BiasAdd" not in ops
    fc = [n for n in g.nodes if n.op == "MatMul"][0]
    assert len(fc.inputs) == 3 and g.is_const(fc.inputs[2])


def test_merge_bias_adds_to_an_existing_conv_bias():
    consts = {"w1": w(3, 3, 3, 3), "b0": w(3), "b1": w(3)}
    nodes = [make_node("c", "Conv2D", ["x", "w1", "b0"], ["y"], kernel=(3, 3), stride=(1, 1),
                       dilation=(1, 1), pads=(1, 1, 1, 1), pad_mode="pad", group=1, activation=0),
             make_node("ba", "BiasAdd", ["y", "b1"], ["out"], axis=1)]
    g = graph(nodes, consts, ["out"])
    ref = graph(list(nodes), dict(consts), ["out"])
    PASSES["merge_bias"](g)
    assert g.op_counts() == {"Conv2D": 1}
    np.testing.assert_allclose(g.consts[g.nodes[0].inputs[2]], consts["b0"] + consts["b1"], rtol=1e-6)
    assert_same_function(ref, g, X)


def test_fuse_activation_fuses_relu_and_relu6_into_conv_matmul_and_add_only():
    g = run_until(cnn_graph(), "fuse_activation")
    acts = {n.name: n.attrs.get("activation") for n in g.nodes if "activation" in n.attrs}
    assert acts["c1"] == ACT_RELU6 and acts["c2"] == ACT_RELU and acts["add"] == ACT_RELU
    assert "Activation" not in g.op_counts()


def test_activation_is_not_fused_when_the_producer_has_another_consumer_or_is_not_relu():
    consts = {"w1": w(3, 3, 3, 3)}
    nodes = [conv("c", "x", "w1", "y"),
             make_node("r", "Activation", ["y"], ["z"], type=ACT_RELU),
             make_node("s", "Activation", ["z"], ["z2"], type=ACT_SIGMOID),
             make_node("add", "Add", ["y", "z2"], ["out"], activation=0)]
    g = graph(nodes, consts, ["out"])
    PASSES["fuse_activation"](g)
    assert [n.op for n in g.nodes] == ["Conv2D", "Activation", "Activation", "Add"]
    assert g.nodes[0].attrs["activation"] == 0


def test_to_nhwc_lays_out_weights_ohwi_and_keeps_depthwise_c_kh_kw_1():
    g = run_until(cnn_graph(), "to_nhwc")
    assert g.layout == "NHWC" and g.shapes["x"] == (1, 8, 8, 3)
    convs = [n for n in g.nodes if n.op == "Conv2D"]
    assert [g.consts[n.inputs[1]].shape for n in convs] == [(4, 3, 3, 3), (4, 3, 3, 1), (4, 1, 1, 4)]
    assert all(n.attrs["format"] == "NHWC" for n in convs)
    gap = [n for n in g.nodes if n.op == "ReduceMean"][0]
    assert gap.attrs["axes"] == (1, 2)
    assert "Transpose" not in g.op_counts()                  # a CNN needs no transposes at all


def test_to_nhwc_with_nchw_input_inserts_one_transpose():
    class Opts:
        input_format = "NCHW"
        input_shape = None
    g = cnn_graph()
    ref = cnn_graph()
    run_pipeline(g, Opts())
    assert g.op_counts().get("Transpose") == 1 and g.shapes["x"] == (1, 3, 8, 8)
    np.testing.assert_allclose(run_graph(g, {"x": X})["out"] if g.outputs == ["out"] else
                               list(run_graph(g, {"x": X}).values())[0], outputs(ref, X), rtol=1e-5)


def test_to_nhwc_transposes_back_before_layout_sensitive_ops_and_at_4d_outputs():
    consts = {"w1": w(2, 3, 3, 3), "shape": np.array([1, -1], np.int64)}
    nodes = [conv("c", "x", "w1", "y"),
             make_node("t", "Transpose", ["y"], ["yt"], perm=(0, 1, 3, 2)),
             make_node("r", "Reshape", ["yt", "shape"], ["flat"]),
             make_node("c2", "Conv2D", ["x", "w1"], ["y2"], kernel=(3, 3), stride=(1, 1),
                       dilation=(1, 1), pads=(1, 1, 1, 1), pad_mode="pad", group=1, activation=0)]
    g = graph(nodes, consts, ["flat", "y2"])
    ref = graph(list(nodes), dict(consts), ["flat", "y2"])
    PASSES["to_nhwc"](g)
    feed = {"x": X.transpose(0, 2, 3, 1)}
    got, want = run_graph(g, feed), run_graph(ref, {"x": X})
    for a, b in zip(g.outputs, ref.outputs):
        np.testing.assert_allclose(got[a], want[b], rtol=1e-5, atol=1e-6)
    assert g.shapes[g.outputs[1]] == (1, 2, 8, 8)            # 4-D output back in NCHW


def test_input_shape_override_reshapes_the_whole_graph():
    class Opts:
        input_format = "NHWC"
        input_shape = (2, 3, 16, 16)
    g = cnn_graph()
    run_pipeline(g, Opts())
    assert g.shapes["x"] == (2, 16, 16, 3) and g.shapes[g.outputs[0]] == (2, 5)


def test_a_failing_pass_raises():
    class Opts:
        input_format = "NHWC"
        input_shape = (1, 3, 8)
    with pytest.raises(ConversionError, match="input-shape"):
        annotate_shapes(cnn_graph(), Opts())
    bad = graph([conv("c", "x", "w1", "y")], {"w1": w(2, 3, 3, 3)}, ["y"])
    bad.nodes[0] = bad.nodes[0].with_(inputs=["x", "y"])      # weight is not a constant
    with pytest.raises(ConversionError, match="weights must be constant"):
        PASSES["to_nhwc"](bad)
