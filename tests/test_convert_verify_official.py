"""`--verify` against the official runtime: our engine and `benchmark` on the same inputs.

With a benchmark that has `--outputDataFile` (the stand-ins): max abs diff and top-1 agreement. With
one that lacks it (a release tool, simulated by a wrapper whose --help does not list the flag): the
tool's own mean bias against a calibration file of our engine's outputs. Without any: the report says
so, with how to get it, and stderr says it once. A disagreement fails the verification.
"""
import json
import stat

import pytest
from click.testing import CliRunner

import converters.verify as verify_mod
from converters import ConvertOptions, convert
from converters.errors import VerificationFailed
from runtime.official import discovery
from toolkit.cli import main

pytest.importorskip("onnx")


def run(*args):
    return CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)




def release_like(tmp_path, tool):
    """A `benchmark` without the stand-ins' --outputDataFile: the real tool's --help, minus that flag."""
    path = tmp_path / "benchmark"
    path.write_text(f'#!/bin/sh\nfor a in "$@"; do case "$a" in --outputDataFile=*) '
                    f'echo "--outputDataFile is not a valid flag"; exit 255;; esac; done\n'
                    f'if [ "$1" = --help ]; then "{tool.path}" --help 2>&1 | grep -v outputDataFile; exit 0; fi\n'
                    f'exec "{tool.path}" "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_verify_compares_our_engine_with_the_official_outputs(tiny, tmp_path, official_benchmark):
    r = convert(tiny.onnx, tmp_path / "m.ms", ConvertOptions(verify=3, benchmark=official_benchmark.path))
    off = r.verify.official
    assert off.status == "outputs" and off.samples == 3 and off.passed
    assert off.top1_agreement == 1.0 and 0 < off.max_abs_diff < 1e-4 * r.verify.output_range
    assert official_benchmark.path in off.tool
    d = json.loads(json.dumps(r.verify.to_dict()))
    assert d["official"]["status"] == "outputs" and d["official"]["max_abs_diff"] == off.max_abs_diff
    assert any(ln.startswith("  official runtime  PASS: max abs diff") for ln in r.verify.lines())


def test_a_benchmark_without_output_files_gives_the_official_mean_bias(tiny, tmp_path, official_benchmark):
    tool = release_like(tmp_path, official_benchmark)
    r = run(tiny.onnx, "-o", tmp_path / "m.ms", "--verify", "2", "--benchmark", tool, "--fp16")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "official runtime" in ln)
    assert "PASS: mean bias" in line and "--benchmarkDataFile" in line and "no --outputDataFile" in line
    res = convert(tiny.onnx, tmp_path / "m2.ms", ConvertOptions(verify=2, benchmark=tool))
    off = res.verify.official
    assert off.status == "calibration" and off.max_abs_diff is None and off.top1_agreement is None
    assert 0 <= off.mean_bias_pct < verify_mod.OFFICIAL_BIAS_THRESHOLD_PCT


def test_absent_benchmark_is_said_in_the_report_and_once_on_stderr(tiny, tmp_path, no_tools, capsys):
    for k in range(2):
        r = convert(tiny.onnx, tmp_path / f"m{k}.ms", ConvertOptions(verify=1))
        assert r.verify.passed and r.verify.official.status == "absent"
        assert r.verify.official.passed is None
        line = next(ln for ln in r.verify.lines() if "official runtime" in ln)
        assert "NOT CHECKED" in line and "'benchmark' is not available" in line and "build.sh" in line
    err = capsys.readouterr().err
    assert err.count("--verify's check against the official MindSpore Lite runtime skipped") == 1


def test_a_wrong_explicit_benchmark_is_an_error_not_a_skip(tiny, tmp_path):
    r = run(tiny.onnx, "-o", tmp_path / "m.ms", "--verify", "1", "--benchmark", tmp_path / "nope")
    assert r.exit_code == 1 and "no executable file" in r.output
    assert not (tmp_path / "m.ms").exists()


def test_official_disagreement_fails_the_verification(tiny, tmp_path, official_benchmark, monkeypatch):
    real = verify_mod.benchmark_cli.run_outputs

    def off_by_some(*a, **k):
        return [(n, v + 0.5) for n, v in real(*a, **k)]
    monkeypatch.setattr(verify_mod.benchmark_cli, "run_outputs", off_by_some)
    out = tmp_path / "m.ms"
    with pytest.raises(VerificationFailed, match="official runtime differs from our engine") as e:
        convert(tiny.onnx, out, ConvertOptions(verify=2, benchmark=official_benchmark.path))
    assert e.value.report.official.passed is False
    assert abs(e.value.report.official.max_abs_diff - 0.5) < 1e-3
    assert not out.exists()
