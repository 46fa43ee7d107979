"""`toolkit bench` end to end on a tiny ONNX, rows isolated in subprocesses, and its option checks."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from test_bench_flops import tiny_onnx
from toolkit.bench.isolation import _describe_exit, run_subprocess
from toolkit.bench.measure import BenchSettings
from toolkit.bench.plan import RowSpec
from toolkit.cli import main

pytest.importorskip("onnx")
QUICK = BenchSettings(warmup=1, iters=3, min_time=None, row_timeout=120)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("bench") / "tiny.onnx")


def test_subprocess_row_measures_in_its_own_process(model):
    row = run_subprocess(RowSpec(model, "opencv", "cpu", 1, 1), QUICK)
    assert row["status"] == "ok", row["reason"]
    assert row["isolation"] == "subprocess" and row["device"] == "cpu" and row["iters"] == 3
    assert 0 < row["min_ms"] <= row["p50_ms"] <= row["max_ms"]
    assert row["peak_mem_mb"] >= row["base_mem_mb"] > 10
    assert 0 < row["overhead_s"] < 30


def test_subprocess_peak_memory_is_the_rows_own_not_the_parents(model):
    ballast = np.ones(256 * 2**20 // 8)           # 256 MiB resident in this (parent) process
    row = run_subprocess(RowSpec(model, "opencv", "cpu", 1, 1), QUICK)
    assert row["status"] == "ok", row["reason"]
    assert row["peak_mem_mb"] < 200 < ballast.nbytes / 2**20


def test_subprocess_row_of_a_corrupt_model_fails_naming_the_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")
    row = run_subprocess(RowSpec(str(bad), "opencv", "cpu", 1, 1), QUICK)
    assert row["status"] == "failed" and "broken.onnx" in row["reason"]


def test_worker_death_is_described():
    assert "killed by SIGSEGV" in _describe_exit(-11, b"a\nsegfault here\n")
    assert "status 3" in _describe_exit(3, b"")


def test_bench_command_writes_every_format(model, tmp_path):
    out = {k: str(tmp_path / f"r.{ext}") for k, ext in
           [("json", "json"), ("csv", "csv"), ("markdown", "md"), ("plot", "png")]}
    result = CliRunner().invoke(main, [
        "-q", "bench", model, "--engines", "opencv", "--devices", "cpu,gpu", "--batch", "1,2",
        "--iters", "3", "--warmup", "1", "--json", out["json"], "--csv", out["csv"],
        "--markdown", out["markdown"], "--plot", out["plot"]])
    assert result.exit_code == 0, result.output
    assert "does not run on gpu" in result.output
    rows = json.loads(open(out["json"]).read())["rows"]
    assert [(r["device_requested"], r["batch"], r["status"]) for r in rows] == [
        ("cpu", 1, "ok"), ("cpu", 2, "ok"), ("gpu", None, "unavailable")]
    assert rows[1]["batch_mode"] == "sequential"           # the tiny model's batch is fixed at 1
    assert all(os.path.getsize(p) > 100 for p in out.values())


@pytest.mark.parametrize("args,message", [
    (["--iters", "3", "--min-time", "1"], "exclusive"),
    (["--batch", "0"], "at least 1"),
    (["--batch", "a"], "integers"),
    (["--devices", "tpu"], "unknown tpu"),
    (["--engines", "tflite"], "unknown tflite"),
    (["--engines", "mindspore"], "run none of the given model files"),
    (["--plot", "x.svg"], "PNG"),
    (["--reference", "opencv"], "only applies with --data"),
])
def test_bad_option_combinations_are_usage_errors(model, args, message):
    result = CliRunner().invoke(main, ["bench", model] + args)
    assert result.exit_code == 2 or (result.exit_code == 1 and "Error" in result.output), result.output
    assert message in result.output


def test_unknown_model_type_is_refused(tmp_path):
    f = tmp_path / "m.pt"
    f.write_bytes(b"x")
    result = CliRunner().invoke(main, ["bench", str(f)])
    assert result.exit_code == 2 and "unknown model file type" in result.output


def test_a_failed_row_is_in_the_table_and_fail_on_error_sets_the_exit_status(model, tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")
    args = ["-q", "bench", str(bad), model, "--engines", "opencv", "--devices", "cpu", "--iters", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any("broken.onnx" in line and "failed" in line for line in lines)
    assert any("tiny.onnx" in line and " ok " in line for line in lines)      # the table went on
    assert CliRunner().invoke(main, args + ["--fail-on-error"]).exit_code == 1
