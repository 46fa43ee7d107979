"""FLOP counting from an ONNX graph (MACs x 2) and the measured peak FLOP rate."""
import numpy as np
import pytest

from runtime.errors import ModelFormatError
from toolkit.bench.flops import count_flops, limit_ms, peak_flop_rate

onnx = pytest.importorskip("onnx")


def tiny_onnx(path, batch=1, size=8, classes=5):
    """Conv 3->4 (3x3, pad 1) -> depthwise 4 (3x3) -> ReLU -> GAP -> Flatten -> Gemm 4->classes."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in
            [("w1", (4, 3, 3, 3)), ("w2", (4, 1, 3, 3)), ("fc_w", (classes, 4)), ("fc_b", (classes,))]]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], pads=[1, 1, 1, 1], kernel_shape=[3, 3], group=4),
        helper.make_node("Relu", ["c2"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, classes])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("batch", [1, 4])
def test_flops_per_image_are_macs_times_two(tmp_path, batch):
    total, by_op = count_flops(tiny_onnx(tmp_path / "t.onnx", batch=batch))
    conv = 2 * (4 * 8 * 8 * 3 * 9 + 4 * 8 * 8 * 1 * 9)      # dense conv + depthwise conv
    gemm = 2 * (4 * 5)
    assert by_op == {"Conv": conv, "Gemm": gemm}
    assert total == conv + gemm


def test_unreadable_onnx_names_the_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelFormatError, match="bad.onnx"):
        count_flops(str(bad))


def test_limit_is_flops_over_rate():
    assert limit_ms(6e8, 8, 1.2e11) == pytest.approx(40.0)


def test_peak_rate_is_measured_and_plausible():
    r = peak_flop_rate(1, n=256, repeats=2)
    assert r["threads"] == 1 and r["n"] == 256
    assert 1e8 < r["flops_per_s"] < 1e13           # between a slow phone and a large GPU
    assert r["flops_per_s"] == pytest.approx(2 * 256 ** 3 / r["best_s"])
