"""Every output format: terminal table, JSON, CSV, Markdown and the PNG chart."""
import csv
import json

import pytest

from toolkit.bench.measure import RESULT_FIELDS
from toolkit.bench.plot import BenchPlotError
from toolkit.bench.reports import WRITERS, format_markdown, format_table


def make_rows():
    base = dict.fromkeys(RESULT_FIELDS)
    ok = dict(base, model="/m/net.onnx", format="onnx", model_bytes=3 * 2**20, engine="onnxruntime",
              api="engine", device_requested="cpu", device="cpu", batch=8, threads=2, batch_mode="sequential",
              status="ok", load_s=0.12, first_ms=9.5, iters=20, mean_ms=4.25, std_ms=0.5, min_ms=3.9,
              p50_ms=4.1, p90_ms=4.8, p99_ms=6.0, max_ms=6.1, throughput=1882.4, peak_mem_mb=151.0,
              label="net.onnx onnxruntime cpu b8 t2", predictions=[1, 2])
    clf = dict(ok, api="classifier", batch_mode="native", p50_ms=4.3, p99_ms=4.4, label="clf row")
    gpu = dict(base, model="/m/net.onnx", format="onnx", engine="onnxruntime", api="engine",
               device_requested="gpu", status="unavailable",
               reason="CUDAExecutionProvider not in onnxruntime providers ['CPUExecutionProvider']")
    bad = dict(base, model="/m/net.ms", format="ms", engine="ms-engine", api="engine", device_requested="cpu",
               device="cpu", batch=1, threads=1, status="failed", reason="ToolkitError: node x | broken")
    return [ok, clf, gpu, bad]


def test_terminal_table_shows_rows_and_numbered_reasons():
    text = format_table(make_rows())
    lines = text.splitlines()
    assert "p50" in lines[1] and "p99" in lines[1] and "peak MB" in lines[1]
    ok_line = next(line for line in lines if "8x1" in line)           # sequential batch is labelled
    assert "4.10" in ok_line and "6.00" in ok_line and " 1882 " in ok_line and ok_line.endswith(" 151")
    assert any("onnxruntime+clf" in line for line in lines)
    assert "[1] CUDAExecutionProvider not in" in text and "[2] ToolkitError: node x | broken" in text
    gpu_line = next(line for line in lines if "unavailable" in line)
    assert gpu_line.rstrip().endswith("[1]")
    assert "top1" not in lines[1]                                      # no --data, no accuracy columns


def test_a_reason_shared_by_several_rows_is_one_note():
    rows = make_rows()
    rows.append(dict(rows[2], model="/m/other.onnx"))                 # same unavailability reason
    text = format_table(rows)
    assert text.count("CUDAExecutionProvider not in") == 1
    assert [line.rstrip()[-3:] for line in text.splitlines() if "unavailable" in line] == ["[1]", "[1]"]


def test_json_keeps_every_field_and_the_environment(tmp_path):
    path = tmp_path / "r.json"
    WRITERS["json"](path, make_rows(), environment={"cpu": "x"}, settings={"iters": 20})
    doc = json.loads(path.read_text())
    assert doc["environment"] == {"cpu": "x"} and doc["settings"] == {"iters": 20}
    assert [r["status"] for r in doc["rows"]] == ["ok", "ok", "unavailable", "failed"]
    assert doc["rows"][0]["p99_ms"] == 6.0 and "predictions" not in doc["rows"][0]
    assert list(doc["rows"][0])[:len(RESULT_FIELDS)] == list(RESULT_FIELDS)


def test_csv_has_one_line_per_row_with_all_fields(tmp_path):
    path = tmp_path / "r.csv"
    WRITERS["csv"](path, make_rows())
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and set(RESULT_FIELDS) <= set(rows[0])
    assert rows[0]["p50_ms"] == "4.1" and rows[2]["status"] == "unavailable" and rows[2]["p50_ms"] == ""
    assert rows[3]["reason"] == "ToolkitError: node x | broken"


def test_markdown_table_escapes_pipes_and_lists_notes(tmp_path):
    text = format_markdown(make_rows(), environment={"cpu": "TestCPU", "cpu_count": 2, "gpus": [],
                                                     "packages": {"numpy": "1.26"}}, settings={"iters": 20})
    assert "TestCPU" in text and "GPU: none" in text and "numpy 1.26" in text and "iters=20" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    pipes = [line.count("|") - line.count("\\|") for line in table]
    assert len(table) == 2 + 4 and len(set(pipes)) == 1
    assert "2. ToolkitError: node x \\| broken" in text
    path = tmp_path / "r.md"
    WRITERS["markdown"](path, make_rows())
    assert path.read_text().startswith("# Runtime latency")


def test_plot_writes_a_png_of_the_successful_rows(tmp_path):
    path = tmp_path / "chart.png"
    WRITERS["plot"](path, make_rows())
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_plot_without_a_successful_row_is_an_error(tmp_path):
    with pytest.raises(BenchPlotError, match="no successful row"):
        WRITERS["plot"](tmp_path / "c.png", make_rows()[2:])
    assert not (tmp_path / "c.png").exists()
