"""Smoke test of benchmarks/bench_convert.py on a tiny random MobileNetV2 (slow: it starts the CLI)."""
import json

import pytest


@pytest.mark.slow
def test_bench_convert_writes_json_and_markdown_with_consistent_figures(tmp_path):
    pytest.importorskip("mindspore")
    from benchmarks.bench_convert import main
    main(["--out", str(tmp_path), "--width", "0.35", "--size", "32", "--classes", "5", "--repeats", "1"])
    r = json.loads((tmp_path / "bench_convert.json").read_text())
    sizes = r["sizes"]
    assert sizes["fp16"]["ratio_to_fp32"] < 0.6 and sizes["int8"]["ratio_to_fp32"] < 0.5
    assert 0.98 < sizes["fp32"]["ratio_to_4x_stored"] < 1.1       # tiny model: names weigh more
    assert r["time"]["cli_median_s"] > 0 and "accuracy" not in r
    assert "Conversion time" in (tmp_path / "bench_convert.md").read_text()
