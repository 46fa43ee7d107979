"""Conformance of the `.ms` engine on real MindSpore Lite files (golden folder)."""
import os

import numpy as np
import pytest

import runtime
from runtime.engines.ms_engine import MsEngine
from runtime.errors import ModelFormatError

FACE_ATOL = 1e-4        # the official test uses atol/rtol 1e-2; a float model reproduces to 1e-4


def read_output_file(path):
    """The test folders' .output format: int32 ndim, ndim int32 dims, then float32 values."""
    raw = np.fromfile(path, dtype="<i4")
    ndim = int(raw[0])
    shape = tuple(int(d) for d in raw[1:1 + ndim])
    return raw[1 + ndim:].view("<f4").reshape(shape)


def test_face_model_reproduces_official_output(golden_dir):
    engine = runtime.load(os.path.join(golden_dir, "ml_face_isface.ms"))
    assert isinstance(engine, MsEngine) and engine.device == "cpu"
    spec = engine.inputs()[0]
    assert (spec.shape, spec.dtype, spec.format) == ((1, 48, 48, 3), "float32", "NHWC")
    x = np.fromfile(os.path.join(golden_dir, "ml_face_isface_0.input"), dtype="<f4")
    x = x.reshape(1, 3, 48, 48).transpose(0, 2, 3, 1)           # stored channel-first
    want = read_output_file(os.path.join(golden_dir, "ml_face_isface0.output"))
    got = engine.run([x])["prob"]
    assert got.shape == want.shape == (1, 2)
    np.testing.assert_allclose(got, want, atol=FACE_ATOL, rtol=0)


def test_two_add_operators_matches_numpy(golden_dir):
    path = os.path.join(golden_dir, "two_add_operators.ms")
    engine = runtime.load(path)
    model = engine.model
    const = next(t for t in model.tensors if t.is_const)
    c = np.frombuffer(const.data, "<f4").reshape(const.dims)
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((1, 3, 640, 640)).astype(np.float32) for _ in range(2))
    got = engine.run({"input0": a, "input1": b})["output"]
    # Add_1: input0 + const; Add_2: that + input1 (order read from the file)
    first, second = model.nodes
    assert first.inputs[0] == model.inputs[0] and second.inputs[1] == model.inputs[1]
    np.testing.assert_allclose(got, (a + c) + b, atol=1e-6)


@pytest.mark.parametrize("name", ["mnet.caffemodel.ms", "lenet_tod_infer.ms", "parallel.ms"])
def test_runs_with_finite_outputs_of_declared_shapes(golden_dir, name):
    engine = runtime.load(os.path.join(golden_dir, name), engine="ms-engine")
    rng = np.random.default_rng(2)
    feed = [rng.uniform(0, 1, s.shape).astype(s.dtype) for s in engine.inputs()]
    out = engine.run(feed)
    assert [o.name for o in engine.outputs()] == list(out)
    for spec in engine.outputs():
        assert out[spec.name].shape == spec.shape
        assert np.isfinite(out[spec.name]).all()


def test_lenet_matches_a_numpy_lenet(golden_dir):
    """Recompute LeNet in numpy from the file's own weights (conv VALID, no bias, mode 1)."""
    engine = runtime.load(os.path.join(golden_dir, "lenet_tod_infer.ms"))
    m = engine.model
    def const(node, i):
        t = m.tensors[node.inputs[i]]
        return np.frombuffer(t.data, "<f4").reshape(t.dims)
    def conv(x, w):
        o, kh, kw, _ = w.shape
        h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
        return sum(np.einsum("nhwc,oc->nhwo", x[:, i:i + h, j:j + wd], w[:, i, j])
                   for i in range(kh) for j in range(kw))
    def pool(x):
        n, h, w, c = x.shape
        return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    x = np.random.default_rng(3).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    convs = [n for n in m.nodes if n.op_type == "Conv2DFusion"]
    mms = [n for n in m.nodes if n.op_type == "MatMulFusion"]
    y = pool(np.maximum(conv(x, const(convs[0], 1)), 0))
    y = pool(np.maximum(conv(y, const(convs[1], 1)), 0))
    y = y.transpose(0, 3, 1, 2).reshape(2, -1)
    for k, node in enumerate(mms):
        y = y @ const(node, 1).T + const(node, 2)
        if k < 2:
            y = np.maximum(y, 0)
    got = next(iter(engine.run([x]).values()))
    np.testing.assert_allclose(got, y, atol=1e-4, rtol=1e-4)


def test_mindir_is_refused_by_the_ms_engine(golden_dir, tmp_path):
    fake = tmp_path / "relu.ms"
    fake.write_bytes(open(os.path.join(golden_dir, "relu.mindir"), "rb").read())
    with pytest.raises(ModelFormatError, match="not a MindSpore Lite .ms model"):
        runtime.load(str(fake))


def test_translation_is_cached_per_file(golden_dir):
    path = os.path.join(golden_dir, "parallel.ms")
    first, second = MsEngine(path), MsEngine(path)
    assert first.onnx_bytes is second.onnx_bytes


def test_gpu_request_is_refused_when_cuda_is_absent(golden_dir):
    import onnxruntime as ort
    from runtime.errors import EngineUnavailableError
    path = os.path.join(golden_dir, "parallel.ms")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert runtime.load(path, device="gpu").device == "gpu"
        return
    with pytest.raises(EngineUnavailableError, match="device 'gpu' for ms-engine.*available: cpu"):
        runtime.load(path, device="gpu")
