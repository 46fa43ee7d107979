"""`toolkit compare` / converters.compare: outputs and per-layer error of two models, worst first.

Ground truth: ../shared/golden/ms-official. tiny_cnn_fp32.ms and tiny_cnn_fq8.ms are the official
converter's float and full-int8 conversions of tiny_cnn.onnx, with the same tensor names; the
README measures fq8 against the float source at cosine 0.99972 and the fp32 .ms at 1.4e-6.
"""
import copy
import gzip
import json
import math
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from converters.compare import CompareError, _Stats, compare
from runtime.msformat.reader import read_ms
from runtime.msformat.writer import write_ms
from toolkit.cli import main

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "golden", "ms-official")
TINY_TENSORS = {"conv1", "pool1", "conv2", "pool2", "pool2_post", "flatten", "fc", "prob"}
TINY_INT8 = {"conv1", "conv2", "pool2_post", "fc"}      # the QUANT_ALL nodes' outputs (README)


def golden(name):
    path = os.path.join(GOLDEN, name)
    if not os.path.isfile(path):
        pytest.skip(f"{path} not found (shared/ must sit beside the checkout)")
    return path


def run(*args):
    return CliRunner().invoke(main, ["compare", *args])


def _worst_first(layers):
    rel = [math.inf if d.relative_error is None else d.relative_error for d in layers]
    return rel == sorted(rel, reverse=True)


def test_fp32_against_full_int8_lists_every_common_tensor_worst_first():
    r = compare(golden("tiny_cnn_fp32.ms"), golden("tiny_cnn_fq8.ms"), n=4, per_layer=True)
    assert {d.name for d in r.layers} == TINY_TENSORS and r.skipped == []
    assert _worst_first(r.layers)
    assert {d.name for d in r.layers if d.dtype_b == "int8"} == TINY_INT8
    for d in r.layers:      # int8 error is real (not zero) and small (8-bit steps, not garbage)
        assert 0.999 < d.cosine < 1.0 and 0 < d.relative_error < 0.1, d
        assert d.max_abs_error >= d.mean_abs_error > 0
    out = r.outputs[0]
    assert out.name == "prob" and out.top1_agreement == 1.0 and out.cosine > 0.999
    assert r.samples == 4 and r.inputs == "random normal"


def test_the_float_ms_matches_its_onnx_source_layer_by_layer():
    """NHWC `.ms` tensors against NCHW ONNX ones, and ONNX Conv+Relu matched to the fused `.ms` conv
    (the pre-ReLU value would differ by the negative half)."""
    r = compare(golden("tiny_cnn.onnx"), golden("tiny_cnn_fp32.ms"), n=3, per_layer=True)
    names = {d.name for d in r.layers}
    assert {"conv1", "conv2", "pool1", "pool2", "flatten", "fc", "prob"} <= names
    for d in r.layers:
        assert d.max_abs_error < 1e-4 and d.cosine > 0.999999, d


def test_int8_exact_against_the_source_as_the_readme_measures():
    r = compare(golden("tiny_cnn.onnx"), golden("tiny_cnn_fq8.ms"), n=2, int8="exact")
    assert r.layers is None and r.int8 == "exact"
    assert r.outputs[0].cosine > 0.999 and r.outputs[0].max_abs_error < 0.05


def test_mnv2s_error_grows_with_depth(tmp_path):
    src = tmp_path / "mnv2s.onnx"
    with gzip.open(golden("mnv2s.onnx.gz")) as f, open(src, "wb") as out:
        shutil.copyfileobj(f, out)
    r = compare(str(src), golden("mnv2s_fq8.ms"), n=1, per_layer=True)
    assert len(r.layers) > 50 and _worst_first(r.layers)
    by_pos = sorted(r.layers, key=lambda d: d.position)
    first, worst = by_pos[0], r.layers[0]
    assert first.cosine > 0.999 and worst.position > by_pos[len(by_pos) // 2].position
    assert r.outputs[0].top1_agreement == 1.0 and r.outputs[0].cosine > 0.99


def test_stats_stream_over_batches_like_one_pass():
    rng = np.random.default_rng(3)
    ref, got = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    s = _Stats()
    s.update(ref[:2], got[:2])
    s.update(ref[2:], got[2:])
    d = s.diff("t", classifier=True)
    cos = np.mean(np.sum(ref * got, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1))
    assert d.cosine == pytest.approx(cos) and d.max_abs_error == pytest.approx(np.abs(ref - got).max())
    assert d.relative_error == pytest.approx(np.sqrt(np.mean((ref - got) ** 2)) / ref.std())
    assert d.top1_agreement == pytest.approx(np.mean(ref.argmax(1) == got.argmax(1)))


def test_cli_text_json_and_top():
    a, b = golden("tiny_cnn_fp32.ms"), golden("tiny_cnn_fq8.ms")
    res = run(a, b, "--per-layer", "--top", "2", "-n", "2")
    assert res.exit_code == 0, res.output
    rows = [ln for ln in res.output.splitlines() if ln.startswith("  ") and ln.split()[0] in TINY_TENSORS]
    assert len(rows) == 2 and "2 of 8 common tensors" in res.output
    res = run(a, b, "--per-layer", "--json", "-n", "2", "--int8", "exact")
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)             # stdout is one JSON document (no progress bar in it)
    assert set(d) == {"a", "b", "samples", "inputs", "int8", "outputs", "layers", "skipped"}
    assert d["int8"] == "exact" and len(d["layers"]) == 8
    assert set(d["layers"][0]) == {"name", "shape", "cosine", "max_abs_error", "mean_abs_error",
                                   "relative_error", "top1_agreement", "position", "dtype_b"}


def test_cli_usage_errors(tmp_path):
    a, b = golden("tiny_cnn_fp32.ms"), golden("tiny_cnn_fq8.ms")
    assert run(a, b, "--top", "3").exit_code == 2              # --top needs --per-layer
    assert run(a, str(tmp_path / "missing.ms")).exit_code == 2
    assert run(a, b, "--int8", "fastest").exit_code == 2
    assert run(a, b, "-n", "0").exit_code == 2


def test_models_with_different_inputs_are_refused():
    with pytest.raises(CompareError, match="different inputs"):
        compare(golden("tiny_cnn_fp32.ms"), golden("mnv2s_fq8.ms"))
    res = run(golden("tiny_cnn_fp32.ms"), golden("mnv2s_fq8.ms"))
    assert res.exit_code == 1 and "different inputs" in res.output and "mnv2s_fq8.ms" in res.output


def test_no_common_tensor_is_a_typed_error(tmp_path):
    model = copy.deepcopy(read_ms(golden("tiny_cnn_fp32.ms")))
    for t in model.tensors:
        if t.name and t.name != "input":
            t.name = "renamed_" + t.name
    other = tmp_path / "renamed.ms"
    write_ms(model, str(other))
    r = compare(golden("tiny_cnn_fp32.ms"), str(other), n=1)     # outputs pair by position
    assert r.outputs[0].max_abs_error == 0
    with pytest.raises(CompareError, match="no tensor under a common name") as e:
        compare(golden("tiny_cnn_fp32.ms"), str(other), n=1, per_layer=True)
    assert "renamed.ms" in str(e.value)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(CompareError, match="no such model file"):
        compare(str(tmp_path / "a.ms"), golden("tiny_cnn_fq8.ms"))
    txt = tmp_path / "model.txt"
    txt.write_text("x")
    with pytest.raises(CompareError, match=r"\.ms and \.onnx"):
        compare(str(txt), golden("tiny_cnn_fq8.ms"))


def test_images_are_preprocessed_for_both(tmp_path):
    import cv2
    rng = np.random.default_rng(0)
    for k in range(3):
        cv2.imwrite(str(tmp_path / f"im{k}.png"), rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    r = compare(golden("tiny_cnn.onnx"), golden("tiny_cnn_fq8.ms"), images=str(tmp_path), n=3)
    assert r.samples == 3 and r.inputs == str(tmp_path)
    assert r.outputs[0].cosine > 0.99
