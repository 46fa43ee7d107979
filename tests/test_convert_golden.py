"""`toolkit convert ... --golden DIR`: the official `benchmark`'s files for checking the `.ms` on a board.

Inputs in the `.ms` layout and dtype, references computed by the SOURCE model with the `.ms` output
names, the exact command lines; the official benchmark (stand-in) accepts them and passes, and fails
on a wrong calibration file. Both backends, both layouts, real images.
"""
import os
import shlex
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from converters import golden
from converters.errors import ConversionError
from converters.verify import model_inputs
from runtime.official import golden_data
from runtime.official.benchmark_cli import check_accuracy
from tiny_models import class_folder
from toolkit.cli import main

pytest.importorskip("onnx")


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return class_folder(tmp_path_factory, "golden_images", 3)


def board_lines(folder):
    """The benchmark command lines README.txt gives (run from the golden folder)."""
    text = (folder / "README.txt").read_text()
    return [ln for ln in text.splitlines() if ln.startswith("benchmark ")]


def run_on_board(tool, folder, line):
    """Run one README line exactly, with `benchmark` replaced by the official tool's path."""
    argv = shlex.split(line)
    assert argv[0] == "benchmark"
    proc = subprocess.run([tool.path] + argv[1:], cwd=folder, capture_output=True, text=True,
                          env=tool.env(), stdin=subprocess.DEVNULL, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_threshold_is_twice_our_engines_bias_and_at_least_the_default():
    assert golden.threshold_for(0.0) == 0.5 and golden.threshold_for(0.2) == 0.5
    assert golden.threshold_for(3.02) == 6.1 and golden.threshold_for(9.58) == 20
    with pytest.raises(ConversionError, match="no sensible"):
        golden.threshold_for(float("nan"))


def test_golden_files_are_the_source_models_outputs_on_the_ms_inputs(tiny, images, tmp_path):
    out, gdir = tmp_path / "m.ms", tmp_path / "golden"
    r = run(tiny.onnx, "-o", out, "--golden", gdir, "--images", images, "--verify", "3")
    assert r.exit_code == 0, r.output
    assert "golden data:" in r.output and "3 sample(s)" in r.output
    lines = board_lines(gdir)
    assert lines == [f"benchmark --modelFile=../m.ms --inDataFile=sample{k}_input0.bin "
                     f"--benchmarkDataFile=sample{k}.out --accuracyThreshold=0.5" for k in range(3)]
    import runtime
    from runtime.metadata import find_meta
    ms_eng = runtime.load(str(out), engine="ms-engine")
    src = runtime.load(tiny.onnx, engine="onnxruntime")
    meta = find_meta(str(out))[0]
    batches, desc, _ = model_inputs(ms_eng.inputs()[0].shape, meta, 3, str(images), "NHWC", tiny.onnx)
    assert desc == str(images)
    for k, nchw in enumerate(batches):
        raw = (gdir / f"sample{k}_input0.bin").read_bytes()
        np.testing.assert_array_equal(np.frombuffer(raw, np.float32).reshape(1, 64, 64, 3),
                                      nchw.transpose(0, 2, 3, 1))      # the .ms input layout
        ((name, ref),) = golden_data.read_calibration(gdir / f"sample{k}.out")
        assert name == ms_eng.outputs()[0].name
        want = next(iter(src.run([nchw]).values()))                    # the SOURCE model computed it
        np.testing.assert_allclose(ref, want, rtol=1e-6, atol=1e-6)
    script = (gdir / "run_benchmark.sh").read_text()
    assert os.access(gdir / "run_benchmark.sh", os.X_OK) and script.count('"$BENCHMARK" --modelFile') == 3


@pytest.mark.parametrize("backend, layout, extra", [("ours", "NCHW", []), ("ours", "NHWC", ["--fp16"]),
                                                    ("converter_lite", "NHWC", ["--quant", "weight"])])
def test_official_benchmark_passes_the_golden_lines_and_fails_a_wrong_calibration(
        tiny, images, tmp_path, official_benchmark, official_converter, backend, layout, extra):
    out, gdir = tmp_path / "m.ms", tmp_path / "g"
    args = [tiny.onnx, "-o", out, "--golden", gdir, "--images", images, "--verify", "2",
            "--input-format", layout, "--backend", backend, "--benchmark", official_benchmark.path, *extra]
    if backend == "converter_lite":
        args += ["--converter", official_converter.path]
    r = run(*args)
    assert r.exit_code == 0, r.output
    lines = board_lines(gdir)
    assert len(lines) == 2
    for line in lines:
        rc, text = run_on_board(official_benchmark, gdir, line)
        assert rc == 0 and "Run Benchmark m.ms Success." in text, text
    ((name, ref),) = golden_data.read_calibration(gdir / "sample0.out")
    golden_data.write_calibration(gdir / "sample0.out", [(name, -ref)])     # deliberately wrong
    rc, text = run_on_board(official_benchmark, gdir, lines[0])
    assert rc != 0 and "Mean bias of all nodes/tensors is too big" in text


def test_our_mean_bias_is_the_official_tools(tiny, tmp_path, official_benchmark):
    """golden_data.mean_bias (which sets the threshold) reproduces the tool's printed metric."""
    out = tmp_path / "m.ms"
    assert run(tiny.onnx, "-o", out, "--fp16").exit_code == 0
    import runtime
    eng = runtime.load(str(out), engine="ms-engine")
    x = np.random.default_rng(3).standard_normal((1, 64, 64, 3)).astype(np.float32)
    got = eng.run([x])[eng.outputs()[0].name]
    ref = got * np.float32(1.03) + np.float32(0.01)          # a reference a few percent away
    files = golden_data.write_input_bins([x], tmp_path)
    calib = golden_data.write_calibration(tmp_path / "c.out", [(eng.outputs()[0].name, ref)])
    acc = check_accuracy(official_benchmark, out, files, calib, threshold_pct=50)
    mine = golden_data.mean_bias(got, ref) * 100
    assert acc.passed and mine > 1
    assert abs(acc.mean_bias_pct - mine) <= 0.02 * mine       # the official run differs from ours by ~1e-5
