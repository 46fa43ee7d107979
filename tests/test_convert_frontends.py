"""Both front ends (MINDIR via mind_ir_pb2, ONNX opset >= 11) and the bad inputs they must refuse."""
import os

import numpy as np
import pytest

from converters import ConvertOptions, convert
from converters.frontends import load_source
from runtime.errors import ModelFormatError, UnsupportedOpsError

onnx = pytest.importorskip("onnx")


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
def test_front_end_parses_mobilenet_into_the_canonical_ir(tiny, fmt):
    g = load_source(getattr(tiny, fmt))
    counts = g.op_counts()
    assert counts["Conv2D"] == 52 and counts["BatchNorm"] == 52 and counts["Add"] == 10
    assert counts["Activation"] == 35 and counts["ReduceMean"] == 1 and counts["MatMul"] == 1
    assert g.shapes[g.inputs[0]] == tiny.x.shape
    assert len(g.outputs) == 1


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
def test_converted_model_reproduces_the_source_to_1e4_of_its_range(tiny, fmt, tmp_path):
    out = tmp_path / "m.ms"
    r = convert(getattr(tiny, fmt), out, ConvertOptions(verify=2))
    assert r.verify.passed and r.verify.max_abs_diff <= 1e-4 * r.verify.output_range
    import runtime
    eng = runtime.load(str(out), engine="ms-engine")
    y = next(iter(eng.run([tiny.x.transpose(0, 2, 3, 1)]).values()))
    np.testing.assert_allclose(y, tiny.y, atol=1e-4 * float(np.ptp(tiny.y)))


def _onnx_model(nodes, opset=13):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, "g", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_onnx_ops_are_all_listed_with_node_names_and_nothing_is_written(tmp_path):
    from onnx import helper
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
             helper.make_node("Erf", ["a"], ["b"], name="erf_1"),
             helper.make_node("HardSwish", ["b"], ["c"], name="hswish_2")]
    src = tmp_path / "bad.onnx"
    onnx.save(_onnx_model(nodes, opset=14), str(src))
    out = tmp_path / "bad_lite.ms"
    with pytest.raises(UnsupportedOpsError) as e:
        convert(src, out)
    assert e.value.ops == [("erf_1", "Erf"), ("hswish_2", "HardSwish")]
    assert "erf_1 (Erf)" in str(e.value) and "hswish_2 (HardSwish)" in str(e.value)
    assert not out.exists() and not (tmp_path / "bad_lite.ms.json").exists()


def test_unsupported_mindir_ops_are_all_listed(tmp_path):
    ms = pytest.importorskip("mindspore")
    from mindspore import nn, ops

    class Odd(nn.Cell):
        def construct(self, x):
            return ops.erf(ops.sin(x)) + 1.0

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.export(Odd(), ms.Tensor(np.zeros((1, 3, 4, 4), np.float32)), file_name=str(tmp_path / "odd"),
              file_format="MINDIR")
    with pytest.raises(UnsupportedOpsError) as e:
        convert(tmp_path / "odd.mindir", tmp_path / "odd_lite.ms")
    kinds = sorted(op for _, op in e.value.ops)
    assert kinds == ["Erf", "Sin"] and all(name for name, _ in e.value.ops)
    assert not (tmp_path / "odd_lite.ms").exists()


def test_onnx_opset_below_11_is_refused(tmp_path):
    from onnx import helper
    src = tmp_path / "old.onnx"
    onnx.save(_onnx_model([helper.make_node("Relu", ["x"], ["y"])], opset=9), str(src))
    with pytest.raises(Exception, match="opset 9"):
        convert(src, tmp_path / "old_lite.ms")


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_model_file_gives_a_clear_error_naming_it(tiny, tmp_path, fmt, damage):
    data = open(getattr(tiny, fmt), "rb").read()
    bad = {"truncated": data[:len(data) // 2], "garbage": os.urandom(2048), "empty": b""}[damage]
    src = tmp_path / f"broken.{fmt}"
    src.write_bytes(bad)
    out = tmp_path / "broken_lite.ms"
    out.write_bytes(b"previous model")
    with pytest.raises(ModelFormatError) as e:
        convert(src, out)
    assert str(src) in str(e.value)
    assert out.read_bytes() == b"previous model"          # the old output is untouched


def test_unknown_source_suffix_is_refused(tmp_path):
    src = tmp_path / "model.pb"
    src.write_bytes(b"x")
    with pytest.raises(ModelFormatError, match="cannot convert this file type"):
        convert(src, tmp_path / "m.ms")


def _pytorch_style_onnx(path, batch="N"):
    """Conv(bias)-BN-Relu, Clip(0,6) given as inputs, MaxPool, GlobalAveragePool, Flatten, Gemm,
    Softmax: the shape of a PyTorch classifier export, with a dynamic batch dimension."""
    from onnx import TensorProto, helper, numpy_helper
    r = np.random.default_rng(0)
    inits = {"w": r.standard_normal((8, 3, 3, 3)) * 0.3, "b": r.standard_normal(8) * 0.1,
             "g": r.uniform(0.5, 1.5, 8), "beta": r.standard_normal(8) * 0.1,
             "m": r.standard_normal(8) * 0.1, "v": r.uniform(0.5, 1.5, 8),
             "fw": r.standard_normal((4, 8)) * 0.5, "fb": r.standard_normal(4) * 0.1,
             "lo": np.array(0.0), "hi": np.array(6.0)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("Clip", ["r", "lo", "hi"], ["r6"], name="clip"),
             helper.make_node("MaxPool", ["r6"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["gap"], name="gap"),
             helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"], name="fc", transB=1),
             helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1)]
    g = helper.make_graph(nodes, "torchlike",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
                          [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [batch, 4])],
                          [numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8                                 # what onnxruntime and exporters accept
    onnx.save(model, str(path))


def test_pytorch_style_onnx_with_dynamic_batch_needs_and_takes_input_shape(tmp_path):
    src = tmp_path / "torchlike.onnx"
    _pytorch_style_onnx(src)
    with pytest.raises(Exception, match="dynamic or unknown shape"):
        convert(src, tmp_path / "t.ms")
    r = convert(src, tmp_path / "t.ms", ConvertOptions(input_shape=(1, 3, 16, 16), verify=3))
    assert r.verify.passed, r.verify.problems
    assert r.op_counts == {"Conv2DFusion": 1, "Activation": 1, "MaxPoolFusion": 1, "AvgPoolFusion": 1,
                           "Reshape": 1, "MatMulFusion": 1, "Softmax": 1}


def test_reading_mindir_does_not_start_mindspore(tiny, tmp_path):
    """mind_ir_pb2 is loaded on its own: converting takes well under a second, not MindSpore's ~5 s."""
    import subprocess
    import sys
    code = ("import sys; from converters import convert; convert(%r, %r); "
            "print('mindspore' in sys.modules)" % (tiny.mindir, str(tmp_path / "m.ms")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
