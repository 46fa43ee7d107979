"""Every `.ms` file our converter writes runs in the official MindSpore Lite runtime, with our
engine's results.

Parametrized over what the converter writes: MobileNetV2 at two widths, fp32 / fp16 / int8 weights,
NHWC and NCHW `.ms` inputs, and one small graph per lowering the converter has (a test keeps that
list complete). The official side is the `benchmark` program (engine `mslite-benchmark`, built from
../shared/mslite in CI); both engines get the same input in the `.ms` input layout.

Tolerance: max |ours - official| <= 1e-4 x max(1, range of the official output). Both runtimes
compute in float32 (fp16 and int8 weights are widened at load on both sides), so they differ only
by summation order; measured differences are in the 1e-6 range.
"""
import os

import numpy as np
import pytest

import runtime
from converters import ConvertOptions, convert
from converters.lower import LOWERINGS

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

PRECISIONS = {"fp32": {}, "fp16": {"fp16": True}, "int8": {"quant": "weight", "min_quant_weight_size": 0,
                                                          "min_quant_weight_channel": 0}}
LAYOUTS = ("NHWC", "NCHW")
RNG = np.random.default_rng(0)


def _w(*shape, scale=0.5):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _graph(nodes, inits, out_shape, in_shape=(1, 3, 8, 8), extra_inputs=()):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in extra_inputs]
    g = helper.make_graph(nodes, "case", inputs,
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def _conv_then(nodes, out_shape, inits=None):
    """A 3x3 conv (so every case has a weight to store in fp16/int8), then `nodes` from 'c' to 'y'."""
    base = {"cw": _w(4, 3, 3, 3), "cb": _w(4)}
    base.update(inits or {})
    conv = helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", pads=[1, 1, 1, 1])
    return _graph([conv] + nodes, base, out_shape)


N = helper.make_node
# IR op (a key of converters.lower.LOWERINGS) -> ONNX graph whose conversion uses that lowering.
CASES = {
    "Conv2D": lambda: _graph([N("Conv", ["x", "w", "b"], ["a"], name="conv_s2", strides=[2, 2],
                                pads=[1, 1, 1, 1]),
                              N("Conv", ["a", "dw"], ["y"], name="depthwise", group=4, pads=[1, 1, 1, 1])],
                             {"w": _w(4, 3, 3, 3), "b": _w(4), "dw": _w(4, 1, 3, 3)}, (1, 4, 4, 4)),
    "Activation": lambda: _conv_then([N("Relu", ["c"], ["r"], name="relu"),
                                      N("Sigmoid", ["r"], ["s"], name="sigmoid"),
                                      N("Tanh", ["s"], ["t"], name="tanh"),
                                      N("Clip", ["t", "lo", "hi"], ["y"], name="relu6")],
                                     (1, 4, 8, 8), {"lo": np.array(0, np.float32),
                                                    "hi": np.array(6, np.float32)}),
    "Add": lambda: _conv_then([N("Add", ["c", "k"], ["y"], name="add")], (1, 4, 8, 8),
                              {"k": _w(1, 4, 1, 1)}),
    "Sub": lambda: _conv_then([N("Sub", ["c", "k"], ["y"], name="sub")], (1, 4, 8, 8),
                              {"k": _w(1, 4, 1, 1)}),
    "Mul": lambda: _conv_then([N("Mul", ["c", "c"], ["y"], name="mul")], (1, 4, 8, 8)),
    "Div": lambda: _conv_then([N("Div", ["c", "k"], ["y"], name="div")], (1, 4, 8, 8),
                              {"k": np.abs(_w(1, 4, 1, 1)) + 0.5}),
    "MatMul": lambda: _conv_then([N("GlobalAveragePool", ["c"], ["g"], name="gap"),
                                  N("Flatten", ["g"], ["f"], name="flatten"),
                                  N("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)],
                                 (1, 5), {"fw": _w(5, 4), "fb": _w(5)}),
    "ReduceMean": lambda: _conv_then([N("ReduceMean", ["c"], ["y"], name="mean", axes=[2, 3],
                                        keepdims=0)], (1, 4)),
    "GlobalAvgPool": lambda: _conv_then([N("GlobalAveragePool", ["c"], ["y"], name="gap")], (1, 4, 1, 1)),
    "MaxPool": lambda: _conv_then([N("MaxPool", ["c"], ["y"], name="maxpool", kernel_shape=[3, 3],
                                     strides=[2, 2], pads=[1, 1, 1, 1])], (1, 4, 4, 4)),
    "AvgPool": lambda: _conv_then([N("AveragePool", ["c"], ["y"], name="avgpool", kernel_shape=[2, 2],
                                     strides=[2, 2])], (1, 4, 4, 4)),
    "Reshape": lambda: _conv_then([N("GlobalAveragePool", ["c"], ["g"], name="gap"),
                                   N("Reshape", ["g", "shape"], ["y"], name="reshape")], (1, 4),
                                  {"shape": np.array([1, 4], np.int64)}),
    "Flatten": lambda: _conv_then([N("GlobalAveragePool", ["c"], ["g"], name="gap"),
                                   N("Flatten", ["g"], ["y"], name="flatten")], (1, 4)),
    "Transpose": lambda: _conv_then([N("Transpose", ["c"], ["y"], name="transpose", perm=[0, 2, 3, 1])],
                                    (1, 8, 8, 4)),
    "Softmax": lambda: _conv_then([N("GlobalAveragePool", ["c"], ["g"], name="gap"),
                                   N("Flatten", ["g"], ["f"], name="flatten"),
                                   N("Softmax", ["f"], ["y"], name="softmax", axis=1)], (1, 4)),
    "Concat": lambda: _conv_then([N("Relu", ["c"], ["r"], name="relu"),
                                  N("Concat", ["c", "r"], ["y"], name="concat", axis=1)], (1, 8, 8, 8)),
}


def test_every_lowering_of_the_converter_has_a_case():
    assert set(CASES) == set(LOWERINGS), "add a case for each new lowering (and drop removed ones)"


def _assert_official_agrees(path, official_tools):
    ours = runtime.load(str(path), engine="ms-engine")
    theirs = runtime.load(str(path), engine="mslite-benchmark")
    assert [s.shape for s in ours.inputs()] == [s.shape for s in theirs.inputs()]
    feed = [np.random.default_rng(1).standard_normal(s.shape).astype(np.float32) for s in ours.inputs()]
    a, b = ours.run(feed), theirs.run(feed)
    assert list(a) == list(b), "output names differ"
    worst = 0.0
    for name in a:
        assert a[name].shape == b[name].shape, name
        diff = float(np.abs(a[name] - b[name]).max())
        scale = max(1.0, float(np.ptp(b[name])))
        assert diff <= 1e-4 * scale, f"{path}: output {name}: max diff {diff:.3g} (range {scale:.3g})"
        worst = max(worst, diff)
    return worst


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("op", sorted(CASES))
def test_each_lowering_runs_in_the_official_runtime_like_our_engine(op, precision, layout, tmp_path,
                                                                    official_tools):
    src = tmp_path / f"{op}.onnx"
    onnx.save(CASES[op](), str(src))
    out = tmp_path / f"{op}_{precision}_{layout}.ms"
    convert(str(src), str(out), ConvertOptions(input_format=layout, **PRECISIONS[precision]))
    _assert_official_agrees(out, official_tools)


@pytest.fixture(scope="module")
def mobilenets(tiny, tmp_path_factory):
    """MobileNetV2 MINDIR at width 0.35 (the session's tiny model) and width 1.0, both 64 px."""
    from tiny_models import calibrate_batchnorm
    import mindspore as ms
    from toolkit.models import build
    folder = tmp_path_factory.mktemp("mnv2_w1")
    ms.set_seed(0)
    net = build("mobilenet_v2", 10, width=1.0)
    calibrate_batchnorm(net)
    ms.export(net, ms.Tensor(tiny.x), file_name=str(folder / "w1"), file_format="MINDIR")
    return {"0.35": tiny.mindir, "1.0": str(folder / "w1.mindir")}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("precision", list(PRECISIONS))
@pytest.mark.parametrize("width", ["0.35", "1.0"])
def test_mobilenet_v2_runs_in_the_official_runtime_like_our_engine(width, precision, layout, mobilenets,
                                                                   tmp_path, official_tools):
    out = tmp_path / f"mnv2_{width}_{precision}_{layout}.ms"
    options = ConvertOptions(input_format=layout, **({"fp16": True} if precision == "fp16" else
                                                     {"quant": "weight"} if precision == "int8" else {}))
    convert(mobilenets[width], str(out), options)
    _assert_official_agrees(out, official_tools)
