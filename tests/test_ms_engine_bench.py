"""Smoke test of benchmarks/bench_ms_engine.py on a small real model (not a measurement)."""
import json
import os

from benchmarks import bench_ms_engine
from runtime.engines.ms_engine import MsEngine


def test_bench_reports_latency_ratio_load_time_and_memory(golden_dir, tmp_path, capsys):
    ms_path = os.path.join(golden_dir, "ml_face_isface.ms")
    onnx_path = tmp_path / "face.onnx"             # the same network as ONNX: our own translation
    onnx_path.write_bytes(MsEngine(ms_path).onnx_bytes)
    out = tmp_path / "bench.json"
    assert bench_ms_engine.main(["--ms", ms_path, "--onnx", str(onnx_path), "--runs", "3",
                                 "--warmup", "1", "--threads", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["ms_median_ms"] > 0 and result["onnx_median_ms"] > 0
    assert result["ratio_ms_over_onnx"] == result["ms_median_ms"] / result["onnx_median_ms"]
    assert 0 < result["ms_load_s"] < 30 and result["ms_peak_rss_mib"] >= result["ms_rss_before_load_mib"] > 0
    assert result["max_abs_output_diff"] < 1e-6
    assert "ratio .ms / ONNX" in capsys.readouterr().out
