"""`--verify`: the printed check, its thresholds, and failures that must fail (corrupted weights)."""
import numpy as np
import pytest
from click.testing import CliRunner

import converters.pipeline
from converters.verify import FP32_RELATIVE_TOLERANCE, MIN_TOP1_AGREEMENT, verify
from runtime.msformat.reader import read_ms
from runtime.msformat.writer import write_ms
from tiny_models import class_folder
from toolkit.cli import main

pytest.importorskip("onnx")


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return class_folder(tmp_path_factory, "images", 6)


def test_thresholds_are_the_issue_s():
    assert FP32_RELATIVE_TOLERANCE == 1e-4 and MIN_TOP1_AGREEMENT == 0.99


@pytest.fixture(scope="module")
def small_cnn(tmp_path_factory):
    """A small, well-conditioned CNN (MINDIR + sidecar). The random-init MobileNetV2 is chaotic:
    0.1% weight noise moves its outputs by 10%, so only fp32 checks are meaningful on it."""
    ms = pytest.importorskip("mindspore")
    from mindspore import nn, ops
    from runtime.metadata import ModelMeta

    class Small(nn.Cell):
        def __init__(self):
            super().__init__()
            self.f = nn.SequentialCell([nn.Conv2d(3, 16, 3, has_bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                        nn.Conv2d(16, 32, 3, stride=2), nn.BatchNorm2d(32), nn.ReLU6()])
            self.fc = nn.Dense(32, 4)

        def construct(self, x):
            return self.fc(ops.mean(self.f(x), (2, 3), keep_dims=False))

    ms.set_seed(3)
    net = Small()
    net.set_train(False)
    folder = tmp_path_factory.mktemp("small")
    ms.export(net, ms.Tensor(np.zeros((1, 3, 32, 32), np.float32)), file_name=str(folder / "small"),
              file_format="MINDIR")
    ModelMeta(image_size=32, resize=36, class_names=list("abcd")).save(str(folder / "small.json"))
    return str(folder / "small.mindir")


@pytest.mark.parametrize("extra, precision", [([], "fp32"), (["--fp16"], "fp16"),
                                              (["--quant", "weight"], "int8"),
                                              (["--quant", "weight", "--quant-mode", "asymmetric"], "int8")])
def test_verify_on_real_images_prints_the_check_and_passes(small_cnn, images, tmp_path, extra, precision):
    r = run(small_cnn, "-o", tmp_path / "m.ms", "--verify", "6", "--images", images, *extra)
    assert r.exit_code == 0, r.output
    for words in ("max abs diff", "cosine similarity", "top-1 agreement", "PASS",
                  f"verify ({precision}, 6 "):
        assert words in r.output


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
def test_verify_mobilenet_fp32_on_images(tiny, images, tmp_path, fmt):
    r = run(getattr(tiny, fmt), "-o", tmp_path / "m.ms", "--verify", "3", "--images", images)
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output


def _corrupt(model, op="Conv2DFusion", factor=-3.0):
    node = next(n for n in model.nodes if n.op_type == op)
    t = model.tensors[node.inputs[1]]
    w = np.frombuffer(t.data, "<f4").copy()
    w[: max(1, w.size // 4)] *= factor
    t.data = w.astype("<f4").tobytes()
    return model


def test_verification_fails_on_a_corrupted_conv_weight(tiny, tmp_path):
    good = tmp_path / "good.ms"
    assert run(tiny.onnx, "-o", good).exit_code == 0
    bad = tmp_path / "bad.ms"
    write_ms(_corrupt(read_ms(good)), bad)
    report = verify(tiny.onnx, "onnx", str(bad), tiny.meta, precision="fp32", n=2)
    assert not report.passed and "max abs diff" in report.problems[0]
    assert report.max_abs_diff > FP32_RELATIVE_TOLERANCE * report.output_range
    assert verify(tiny.onnx, "onnx", str(good), tiny.meta, precision="fp32", n=2).passed


def test_top1_threshold_fails_when_the_head_is_corrupted(tiny, tmp_path):
    good = tmp_path / "good.ms"
    assert run(tiny.onnx, "-o", good).exit_code == 0
    bad = tmp_path / "bad.ms"
    write_ms(_negate_head(read_ms(good)), bad)
    report = verify(tiny.onnx, "onnx", str(bad), tiny.meta, precision="int8", n=4)
    assert not report.passed and report.top1_agreement < MIN_TOP1_AGREEMENT


def _negate_head(model):
    node = next(n for n in model.nodes if n.op_type == "MatMulFusion")
    for i in node.inputs[1:]:
        t = model.tensors[i]
        t.data = (-np.frombuffer(t.data, "<f4")).astype("<f4").tobytes()
    return model


def test_cli_exits_non_zero_and_writes_nothing_when_verification_fails(tiny, tmp_path, monkeypatch):
    real_lower = converters.pipeline.lower

    def corrupting_lower(graph):
        model, weights = real_lower(graph)
        return _corrupt(model), weights

    monkeypatch.setattr(converters.pipeline, "lower", corrupting_lower)
    out = tmp_path / "m.ms"
    out.write_bytes(b"previous")
    r = run(tiny.mindir, "-o", out, "--verify", "2")
    assert r.exit_code == 1
    assert "FAIL" in r.output and "was not written" in r.output
    assert out.read_bytes() == b"previous" and not (tmp_path / "m.ms.json").exists()


def test_verify_refuses_an_empty_image_folder(tiny, tmp_path):
    (tmp_path / "empty").mkdir()
    r = run(tiny.onnx, "-o", tmp_path / "m.ms", "--verify", "2", "--images", tmp_path / "empty")
    assert r.exit_code == 1 and "no images" in r.output
    assert not (tmp_path / "m.ms").exists()
