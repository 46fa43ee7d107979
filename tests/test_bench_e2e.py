"""`toolkit bench` over the real engines: the tiny MobileNetV2 as MINDIR, ONNX and converted .ms.

Slow (MindSpore GraphCell rows in fresh processes): run with `pytest -m slow`.
"""
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from tiny_models import CLASSES, sample_images
from toolkit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_e2e")
    for name in ("model.mindir", "model.onnx", "model.json"):
        shutil.copy(os.path.join(tiny.folder, name), folder / name)
    result = CliRunner().invoke(main, ["-q", "convert", str(folder / "model.mindir"),
                                       "-o", str(folder / "model_fp32.ms")])
    assert result.exit_code == 0, result.output
    data = folder / "val"
    images = sample_images(str(folder), count=6)
    for i, path in enumerate(images):
        cls = data / CLASSES[i % len(CLASSES)]
        cls.mkdir(parents=True, exist_ok=True)
        shutil.move(path, cls / os.path.basename(path))
    return folder


def test_bench_over_every_engine_with_accuracy_and_agreement(models, tmp_path):
    out = tmp_path / "bench.json"
    files = [str(models / name) for name in ("model_fp32.ms", "model.onnx", "model.mindir")]
    args = ["-q", "bench"] + files + [
        "--devices", "cpu,gpu,ascend", "--iters", "2", "--warmup", "0", "--data", str(models / "val"),
        "--reference", "mindspore", "--json", str(out), "--plot", str(tmp_path / "b.png")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    ok = {(os.path.basename(r["model"]), r["engine"]) for r in rows if r["status"] == "ok"}
    assert ok >= {("model_fp32.ms", "ms-engine"), ("model.onnx", "onnxruntime"), ("model.onnx", "opencv"),
                  ("model.mindir", "mindspore")}
    for r in rows:
        if r["device_requested"] != "cpu":
            assert r["status"] == "unavailable" and r["reason"]       # no accelerator on these machines
        if r["status"] == "ok":
            assert r["device"] == "cpu" and r["images"] == 6
            assert r["reference"] == "model.mindir mindspore cpu b1 t1"
            assert r["agreement"] == 1.0, r["label"]                  # fp32 everywhere: same top-1
            # the official benchmark prints min/avg/max only; every other row has percentiles
            assert (r["min_ms"] if r["timed_by"] == "official benchmark" else r["p50_ms"]) > 0
            assert r["peak_mem_mb"] > 0 and r["base_mem_mb"] > 0
    assert len({r["top1"] for r in rows if r["status"] == "ok"}) == 1
