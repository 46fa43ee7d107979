"""`toolkit convert` options, through the CLI: precision, quantization, shapes, layouts, sidecar,
atomic replacement and the bad option combinations."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from runtime.metadata import ModelMeta, find_meta, sidecar_path
from runtime.msformat.model import QUANT_WEIGHT, TYPE_FLOAT16, TYPE_FLOAT32, TYPE_INT8
from runtime.msformat.reader import read_ms
from toolkit.cli import main

pytest.importorskip("onnx")


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)


def weights(model):
    """(node, weight tensor) of every conv/matmul."""
    return [(n, model.tensors[n.inputs[1]]) for n in model.nodes
            if n.op_type in ("Conv2DFusion", "MatMulFusion")]


@pytest.fixture(scope="module")
def fp32(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp32") / "m.ms"
    r = run(tiny.onnx, "-o", out)
    assert r.exit_code == 0, r.output
    return out


def test_default_is_fp32_with_nhwc_input_and_copied_metadata(tiny, fp32):
    m = read_ms(fp32)
    assert all(t.data_type == TYPE_FLOAT32 for _, t in weights(m))
    size = tiny.x.shape[2]
    assert tuple(m.tensors[m.inputs[0]].dims) == (1, size, size, 3)
    meta = ModelMeta.load(sidecar_path(fp32))
    assert meta.class_names == tiny.meta.class_names and meta.layout == "NHWC"
    assert meta.input_name == m.tensors[m.inputs[0]].name


def test_fp16_stores_weights_as_float16_at_about_half_the_size(tiny, fp32, tmp_path):
    out = tmp_path / "h.ms"
    r = run(tiny.onnx, "-o", out, "--fp16")
    assert r.exit_code == 0, r.output
    m = read_ms(out)
    assert all(t.data_type == TYPE_FLOAT16 for _, t in weights(m))
    ratio = os.path.getsize(out) / os.path.getsize(fp32)
    assert 0.45 < ratio < 0.6


@pytest.mark.parametrize("mode", ["symmetric", "asymmetric"])
def test_weight_quant_is_8bit_per_channel_and_dequantizes_close(tiny, fp32, tmp_path, mode):
    out = tmp_path / "q.ms"
    r = run(tiny.onnx, "-o", out, "--quant", "weight", "--quant-mode", mode)
    assert r.exit_code == 0, r.output
    ref = {t.name: np.frombuffer(t.data, "<f4").reshape(t.dims) for _, t in weights(read_ms(fp32))}
    quantized = 0
    for node, t in weights(read_ms(out)):
        if t.data_type != TYPE_INT8:                 # kept float: few channels or elements per channel
            assert t.dims[0] < 16 or np.prod(t.dims) / t.dims[0] < 32
            assert node.quant_type != QUANT_WEIGHT
            continue
        quantized += 1
        assert node.quant_type == QUANT_WEIGHT and len(t.quant_params) == t.dims[0]
        q = np.frombuffer(t.data, np.int8).reshape(t.dims).astype(np.float64)
        scale = np.array([p.scale for p in t.quant_params]).reshape((-1,) + (1,) * (q.ndim - 1))
        zp = np.array([p.zero_point for p in t.quant_params]).reshape(scale.shape)
        if mode == "symmetric":
            assert not zp.any() and q.min() >= -127
        w = ref[t.name]
        assert np.abs((q - zp) * scale - w).max() <= scale.max() * 0.5 + 1e-7   # half a step
    assert quantized > 15
    assert os.path.getsize(out) < 0.45 * os.path.getsize(fp32)


def test_weight_quant_min_size_and_channel_keep_small_tensors_float(tiny, tmp_path):
    out = tmp_path / "q.ms"
    r = run(tiny.onnx, "-o", out, "--quant", "weight", "--min-quant-weight-size", "5000",
            "--min-quant-weight-channel", "20")
    assert r.exit_code == 0, r.output
    kinds = set()
    for node, t in weights(read_ms(out)):
        size = int(np.prod(t.dims))
        big = size >= 5000 and t.dims[0] >= 20 and size / t.dims[0] >= 32
        assert (t.data_type == TYPE_INT8) == big
        kinds.add(big)
    assert kinds == {True, False}


def test_input_shape_and_nchw_input_format(tiny, tmp_path):
    out = tmp_path / "s.ms"
    r = run(tiny.onnx, "-o", out, "--input-shape", "2,3,48,48", "--input-format", "NCHW")
    assert r.exit_code == 0, r.output
    m = read_ms(out)
    assert tuple(m.tensors[m.inputs[0]].dims) == (2, 3, 48, 48)
    assert tuple(m.tensors[m.outputs[0]].dims) == (2, len(tiny.meta.class_names))
    meta = json.load(open(sidecar_path(out)))
    assert meta["layout"] == "NCHW" and meta["image_size"] == 48


def test_input_format_nchw_verifies_on_the_source_shape(tiny, tmp_path):
    r = run(tiny.onnx, "-o", tmp_path / "n.ms", "--input-format", "NCHW", "--verify", "2")
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output


def test_missing_sidecar_is_generated_and_said(tiny, tmp_path):
    src = tmp_path / "bare.onnx"
    src.write_bytes(open(tiny.onnx, "rb").read())
    r = run(src, "-o", tmp_path / "bare_lite.ms")
    assert r.exit_code == 0, r.output
    assert "generated" in r.output
    meta = ModelMeta.load(sidecar_path(tmp_path / "bare_lite.ms"))
    assert meta.image_size == tiny.x.shape[2] and meta.class_names == ()


@pytest.mark.parametrize("args, message", [
    (["--quant", "dynamic"], "Invalid value for '--quant'"),
    (["--fp16", "--quant", "weight"], "exclusive"),
    (["--quant-mode", "asymmetric"], "need --quant weight"),
    (["--images", "."], "only used by --verify"),
    (["--input-shape", "1,3,abc"], "comma-separated"),
    (["--input-shape", "0,3,32,32"], "between 1"),
    (["--input-format", "NCWH"], "NCWH"),
])
def test_bad_option_combinations_are_usage_errors(tiny, tmp_path, args, message):
    r = run(tiny.onnx, "-o", tmp_path / "x.ms", *args)
    assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "x.ms").exists()


@pytest.mark.parametrize("shape, message", [("1,3,32", "has 3 dims"),
                                            ("nosuch:1,3,32,32", "the model's input is 'x'")])
def test_input_shape_that_does_not_fit_the_model_fails_without_output(tiny, tmp_path, shape, message):
    r = run(tiny.onnx, "-o", tmp_path / "x.ms", "--input-shape", shape)
    assert r.exit_code == 1 and message in r.output
    assert not (tmp_path / "x.ms").exists()


def test_input_shape_may_name_the_input_as_converter_lite_does(tiny, tmp_path):
    r = run(tiny.onnx, "-o", tmp_path / "x.ms", "--input-shape", "x:1,3,40,40")
    assert r.exit_code == 0, r.output
    m = read_ms(tmp_path / "x.ms")
    assert tuple(m.tensors[m.inputs[0]].dims) == (1, 40, 40, 3)


def test_existing_output_is_replaced_only_on_success(tiny, tmp_path):
    out = tmp_path / "m.ms"
    out.write_bytes(b"old")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert run(bad, "-o", out).exit_code == 1
    assert out.read_bytes() == b"old"
    assert run(tiny.onnx, "-o", out).exit_code == 0
    assert out.read_bytes()[4:8] == b"MSL2"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []   # no temp files left


def test_output_of_the_source_s_stem_has_its_own_metadata_and_legacy_json_is_untouched(tiny, tmp_path):
    """convert model.onnx -o model.ms in one folder: model.ms.json is written, the legacy model.json
    (which the source used) stays as it was."""
    src = tmp_path / "model.onnx"
    src.write_bytes(open(tiny.onnx, "rb").read())
    tiny.meta.save(str(tmp_path / "model.json"))
    before = (tmp_path / "model.json").read_text()
    r = run(src, "-o", tmp_path / "model.ms")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "model.json").read_text() == before
    meta, source = find_meta(tmp_path / "model.ms")
    assert source == sidecar_path(tmp_path / "model.ms") and meta.layout == "NHWC"
    assert meta.class_names == tiny.meta.class_names


def test_output_that_is_the_source_itself_is_refused(tiny, tmp_path):
    src = tmp_path / "a.ms"
    src.write_bytes(b"previous")
    r = run(src, "-o", src)
    assert r.exit_code == 1 and "is the source file itself" in r.output
    assert src.read_bytes() == b"previous"
