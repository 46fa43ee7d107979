"""`toolkit bench` with the official runtime as a peer row (engine `mslite-benchmark`).

The row is timed by the official benchmark's own loop clock and says so; it reports what the tool
prints (min/avg/max), never percentiles it does not give; our `.ms` rows carry the ratio to it; an
absent tool is an unavailable row that says where it looked, never a silent omission.
"""
import json
import os

import pytest
from click.testing import CliRunner

from runtime.engines import devices
from runtime.official import discovery
from toolkit.bench.harness import run_plan
from toolkit.bench.measure import BenchSettings, OFFICIAL_TIMING_NOTE, TIMED_BY_OFFICIAL
from toolkit.bench.plan import plan_rows
from toolkit.bench.reports import format_table
from toolkit.cli import main

GOLDEN_MS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "shared", "golden", "ms", "ml_face_isface.ms")


@pytest.fixture
def face(official_benchmark):
    if not os.path.isfile(GOLDEN_MS):
        pytest.skip(f"{GOLDEN_MS} not found")
    return GOLDEN_MS


def test_official_row_reports_the_tools_own_figures_and_our_rows_the_ratio(face):
    specs = plan_rows([face], ["ms-engine", "mslite-benchmark"], ["cpu"], [1], [1])
    rows = run_plan(specs, BenchSettings(warmup=1, iters=20, min_time=None), isolation="inprocess")
    ours, off = rows
    assert off["engine"] == "mslite-benchmark" and off["status"] == "ok", off.get("reason")
    assert off["timed_by"] == TIMED_BY_OFFICIAL and off["iters"] == 20
    assert 0 < off["min_ms"] <= off["mean_ms"] <= off["max_ms"]
    assert off["std_ms"] is None and off["p50_ms"] is None and off["p99_ms"] is None
    assert off["peak_mem_mb"] > 0
    assert ours["status"] == "ok" and ours["timed_by"] == "toolkit"
    assert ours["vs_official"] == pytest.approx(ours["mean_ms"] / off["mean_ms"])
    assert off["vs_official"] is None
    table = format_table(rows)
    assert "vs official" in table and OFFICIAL_TIMING_NOTE in table


def test_min_time_sets_the_official_loop_count(face):
    specs = plan_rows([face], ["mslite-benchmark"], ["cpu"], [1], [1])
    [row] = run_plan(specs, BenchSettings(warmup=0, iters=None, min_time=0.05), isolation="inprocess")
    assert row["status"] == "ok" and row["iters"] >= 3
    assert row["iters"] > 3      # a sub-millisecond call: more loops than the 3-loop trial run


def test_classifier_api_is_refused_on_the_self_timed_engine(face):
    specs = plan_rows([face], ["mslite-benchmark"], ["cpu"], [1], [1], api="classifier")
    [row] = run_plan(specs, BenchSettings(iters=2, min_time=None), isolation="inprocess")
    assert row["status"] == "refused" and "times its own loops" in row["reason"]


def test_absent_tool_is_an_unavailable_row_saying_where_it_looked(face, monkeypatch, tmp_path):
    monkeypatch.delenv(discovery.HOME_ENV, raising=False)
    monkeypatch.delenv("MSLITE_BENCHMARK", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    devices.probe.cache_clear()
    try:
        [row] = [r for r in plan_rows([face], None, ["cpu"], [1], [1]) if r.engine == "mslite-benchmark"]
    finally:
        devices.probe.cache_clear()
    assert row.unavailable and "looked in" in row.unavailable and "MSLITE_HOME" in row.unavailable


def test_cli_json_has_the_official_row(face, tmp_path):
    out = tmp_path / "b.json"
    res = CliRunner().invoke(main, ["bench", face, "--engines", "ms-engine,mslite-benchmark",
                                    "--devices", "cpu", "--iters", "5", "--isolation", "inprocess",
                                    "--json", str(out)])
    assert res.exit_code == 0, res.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["timed_by"] for r in rows] == ["toolkit", TIMED_BY_OFFICIAL]
    assert rows[0]["vs_official"] > 0
