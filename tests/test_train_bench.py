"""bench-train runs both methods on the same data and reports times, accuracies and parity."""
import json

import pytest

from train_fixtures import WIDTH, invoke


@pytest.mark.slow
def test_bench_train_reports_both_methods(tiny_data, pretrained_ckpt, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("bench-train", tiny_data, "--image-size", 32, "--width", WIDTH, "--epochs", 2,
                    "--batch-size", 4, "--pretrained", pretrained_ckpt, "--json", out)
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())
    assert r["train_images"] == 10 and r["val_images"] == 2
    for method in ("ours", "modelzoo"):
        assert r[method]["total_s"] > 0 and 0 <= r[method]["val_acc"] <= 1
    assert r["ours"]["engine"] == "onnxruntime" and r["ours"]["cache"] == "miss"
    assert r["modelzoo"]["feature_map_shape"] == [1280, 1, 1]
    assert r["ours"]["parity_max_abs_diff"] < 1e-3
    assert "speed-up end to end" in result.output
