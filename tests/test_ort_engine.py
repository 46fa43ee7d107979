"""The onnxruntime engine and the registry entries of both onnxruntime-backed engines."""
import numpy as np
import pytest

import runtime
import runtime.engines as engines
from runtime.errors import EngineUnavailableError, ToolkitError


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    import onnx
    from onnx import TensorProto, helper
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y0"]), helper.make_node("Relu", ["y0"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(model, str(path))
    return str(path), w


def test_runs_with_dict_or_list_feed(onnx_file):
    path, w = onnx_file
    eng = runtime.load(path, threads=1)
    assert eng.name == "onnxruntime" and eng.device == "cpu"
    assert [(s.name, s.shape, s.dtype) for s in eng.inputs()] == [("x", (None, 3), "float32")]
    x = np.array([[1, -2, 3], [0.5, 0.5, -4]], np.float32)
    want = np.maximum(x @ w, 0)
    np.testing.assert_allclose(eng.run({"x": x})["y"], want, rtol=1e-6)
    np.testing.assert_allclose(eng.run([x.astype(np.float64)])["y"], want, rtol=1e-6)
    with pytest.raises(ToolkitError, match="expects shape"):
        eng.run([np.zeros((2, 5), np.float32)])


def test_gpu_without_cuda_is_refused_not_replaced(onnx_file):
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        eng = runtime.load(onnx_file[0], device="gpu")
        assert eng.device == "gpu"
        return
    with pytest.raises(EngineUnavailableError) as info:
        runtime.load(onnx_file[0], device="gpu")
    assert info.value.available == ["cpu"] and "CPUExecutionProvider" in str(info.value)


def test_corrupt_onnx_is_a_format_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(runtime.ModelFormatError, match="bad.onnx"):
        runtime.load(str(bad))


def test_ms_engine_needs_onnx_as_well_as_onnxruntime(monkeypatch):
    assert "ms-engine" in runtime.available_engines("ms")
    real = engines.availability.is_importable
    monkeypatch.setattr(engines.availability, "is_importable", lambda name: name != "onnx" and real(name))
    assert "ms-engine" not in runtime.available_engines("ms")
    with pytest.raises(EngineUnavailableError, match="onnx"):
        engines.engine_class("ms-engine")


def test_ms_files_go_to_the_ms_engine_when_mindspore_lite_is_absent(golden_dir):
    import os
    if engines.is_importable("mindspore_lite"):
        pytest.skip("mindspore_lite is installed: it has priority for .ms files")
    assert engines.choose_engine(os.path.join(golden_dir, "parallel.ms")) == "ms-engine"
