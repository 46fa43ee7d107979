"""Finding and driving the official MindSpore Lite tools (runtime.official), as a user's machine has them.

Discovery: explicit path > per-tool variable > MSLITE_HOME (release layout, or a bin folder) > PATH;
a program named `benchmark` that is not MindSpore Lite's is not used; absence says where we looked
and how to get the tools. The drivers parse the tool's own lines; the calibration and .output files
round-trip and the official tool accepts ours.
"""
import os
import stat

import numpy as np
import pytest

from runtime.errors import ModelFormatError
from runtime.official import benchmark_cli, discovery, golden_data

GOLDEN_MS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "shared", "golden", "ms", "ml_face_isface.ms")


def _script(path, text):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + text + "\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return str(path)


def _fake_release(root, help_flag="--modelFile"):
    """A release-package layout whose programs print a --help listing `help_flag`."""
    for name, (rel, libs) in discovery.RELEASE_LAYOUT.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        flag = help_flag if name == "benchmark" else "--fmk"
        _script(p, f'echo "usage: {name} [options]"; echo " {flag}=VALUE x"; '
                   'echo "LD=$LD_LIBRARY_PATH" >&2')
    return root


def test_absent_says_where_it_looked_and_how_to_get_it():
    with pytest.raises(discovery.OfficialToolUnavailableError) as e:
        discovery.find_tool("benchmark", environ={"PATH": "/nonexistent"})
    msg = str(e.value)
    assert "MSLITE_HOME (not set)" in msg and "PATH (not found)" in msg and "build.sh" in msg


def test_release_layout_in_mslite_home_with_its_libraries(tmp_path):
    home = _fake_release(tmp_path / "mindspore-lite-2.0.0-linux-x64")
    tool = discovery.find_tool("benchmark", environ={"MSLITE_HOME": str(home), "PATH": ""})
    assert tool.found_by == "MSLITE_HOME"
    assert tool.path.endswith(os.path.join("tools", "benchmark", "benchmark"))
    assert tool.env({})["LD_LIBRARY_PATH"] == str(home / "runtime" / "lib")
    conv = discovery.find_tool("converter_lite", environ={"MSLITE_HOME": str(home), "PATH": ""})
    assert conv.env({})["LD_LIBRARY_PATH"].split(os.pathsep) == [
        str(home / "tools" / "converter" / "lib"), str(home / "runtime" / "lib")]


def test_explicit_beats_home_and_a_wrong_explicit_path_is_an_error(tmp_path):
    home = _fake_release(tmp_path / "rel")
    other = _script(tmp_path / "benchmark", 'echo " --modelFile=VALUE"')
    env = {"MSLITE_HOME": str(home), "PATH": ""}
    assert discovery.find_tool("benchmark", other, environ=env).found_by == "option"
    with pytest.raises(discovery.OfficialToolUnavailableError, match="no executable file"):
        discovery.find_tool("benchmark", str(tmp_path / "missing"), environ=env)


def test_a_benchmark_on_path_that_is_not_mindspore_lites_is_not_used(tmp_path):
    _script(tmp_path / "benchmark", 'echo "some other benchmark --iterations"')
    with pytest.raises(discovery.OfficialToolUnavailableError, match="not MindSpore Lite's"):
        discovery.find_tool("benchmark", environ={"PATH": str(tmp_path)})


def test_warn_absent_once(capsys):
    err = discovery.OfficialToolUnavailableError("benchmark", ["PATH (not found)"])
    for _ in range(3):
        discovery.warn_absent_once("benchmark", "test row", err)
    assert capsys.readouterr().err.count("test row skipped") == 1


def test_calibration_file_round_trips():
    outs = [("prob", np.array([[0.25, 0.75]], np.float32)),
            ("feat", np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7)]
    text = golden_data.calibration_text(outs)
    assert text.splitlines()[0] == "prob 2 1 2"
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = golden_data.write_calibration(os.path.join(d, "m.out"), outs)
        back = golden_data.read_calibration(path)
    assert [n for n, _ in back] == ["prob", "feat"]
    for (_, a), (_, b) in zip(outs, back):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("body", [b"", b"\x01\x00\x00\x00", b"\x09\x00\x00\x00" + b"\x00" * 40,
                                  b"\x01\x00\x00\x00\x04\x00\x00\x00" + b"\x00" * 12])
def test_malformed_output_files_are_typed_errors(tmp_path, body):
    p = tmp_path / "x.output"
    p.write_bytes(body)
    with pytest.raises(ModelFormatError, match="x.output"):
        golden_data.read_output_file(p)


def test_malformed_calibration_is_a_typed_error(tmp_path):
    p = tmp_path / "m.out"
    p.write_text("prob 2 1 2\n0.5\n")
    with pytest.raises(ModelFormatError, match="line 1"):
        golden_data.read_calibration(p)


# --- against the official benchmark (stand-in built from ../shared/mslite) -------------------

@pytest.fixture(scope="module")
def face():
    if not os.path.isfile(GOLDEN_MS):
        pytest.skip(f"{GOLDEN_MS} not found")
    from runtime.engines import load
    eng = load(GOLDEN_MS)
    x = np.random.default_rng(0).random(eng.inputs()[0].shape, dtype=np.float32)
    return eng, x


def test_performance_parses_the_tools_own_line(official_benchmark, face):
    t = benchmark_cli.performance(official_benchmark, GOLDEN_MS, threads=1, loops=4, warmup=1)
    assert 0 < t.min_ms <= t.avg_ms <= t.max_ms and t.threads == 1 and t.loops == 4


def test_run_outputs_agree_with_our_engine(official_benchmark, face):
    eng, x = face
    ((name, got),) = benchmark_cli.run_outputs(official_benchmark, GOLDEN_MS, [x])
    want = eng.run([x])[eng.outputs()[0].name]
    assert name == eng.outputs()[0].name
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_official_benchmark_accepts_our_calibration_file_and_rejects_a_wrong_one(
        official_benchmark, face, tmp_path):
    eng, x = face
    want = eng.run([x])
    files = golden_data.write_input_bins([x], tmp_path)
    good = golden_data.write_calibration(tmp_path / "good.out", list(want.items()))
    acc = benchmark_cli.check_accuracy(official_benchmark, GOLDEN_MS, files, good, 0.5, 0.999)
    assert acc.passed and acc.mean_bias_pct < 0.01 and acc.cosine > 0.9999
    bad = golden_data.write_calibration(tmp_path / "bad.out",
                                        [(n, 1 - v) for n, v in want.items()])
    acc = benchmark_cli.check_accuracy(official_benchmark, GOLDEN_MS, files, bad, 0.5)
    assert not acc.passed and acc.mean_bias_pct > 0.5


def test_tool_failure_is_a_typed_error_with_its_message(official_benchmark, tmp_path):
    junk = tmp_path / "junk.ms"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(benchmark_cli.OfficialToolError, match="junk.ms"):
        benchmark_cli.performance(official_benchmark, junk, loops=1, warmup=0)


def test_official_tools_command_reports_found_and_missing(official_tools, monkeypatch, tmp_path):
    from click.testing import CliRunner
    from toolkit.cli import main
    res = CliRunner().invoke(main, ["official-tools", "--require"])
    assert res.exit_code == 0, res.output
    assert "benchmark: " in res.output and "--outputDataFile: yes" in res.output
    monkeypatch.delenv(discovery.HOME_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    res = CliRunner().invoke(main, ["official-tools", "--require"])
    assert res.exit_code == 1 and res.output.count("not found: ") == 2 and "build.sh" in res.output
