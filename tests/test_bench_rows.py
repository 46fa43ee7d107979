"""One row at a time: measured, refused, failed, unavailable, and never timed on another device.

Engines here are fakes on a fake clock, so latencies are exact; the harness itself is the real one.
"""
import numpy as np
import pytest

from runtime.engines.base import TensorSpec
from runtime.errors import EngineUnavailableError
from toolkit.bench.harness import run_plan
from toolkit.bench.measure import RESULT_FIELDS, STATUSES, BenchSettings, plan_feeds, run_row
from toolkit.bench.plan import RowSpec


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeEngine:
    """Takes `per_image` fake seconds per image; `ran_on` is the device it claims to have used."""

    def __init__(self, clock, batch_dim=None, per_image=0.002, ran_on="cpu", fail_run=False, first=0.05):
        self.clock, self.per_image, self.device, self.fail_run = clock, per_image, ran_on, fail_run
        self.batch_dim, self.first, self.batches = batch_dim, first, []
        self.path = "fake.onnx"

    def inputs(self):
        return [TensorSpec("x", (self.batch_dim, 3, 8, 8), "float32", "NCHW")]

    def outputs(self):
        return [TensorSpec("y", (self.batch_dim, 4), "float32")]

    def run(self, feed):
        if self.fail_run:
            raise RuntimeError("kernel exploded")
        x = feed["x"]
        self.clock.now += self.first if not self.batches else self.per_image * x.shape[0]
        self.batches.append(x.shape[0])
        return {"y": np.zeros((x.shape[0], 4), np.float32)}


def measure(spec, engine, clock, **settings):
    def loader(s):
        clock.now += 0.25                      # fake load time
        return engine
    return run_row(spec, BenchSettings(**({"warmup": 1, "iters": 4, "min_time": None} | settings)),
                   loader=loader, clock=clock)


def spec(batch=1, device="cpu", **kw):
    return RowSpec("m.onnx", "onnxruntime", device, batch, 1, **kw)


@pytest.mark.parametrize("device", ["cpu", "gpu", "ascend"])
def test_ok_row_reports_exact_load_first_and_latency_figures(device):
    clock = FakeClock()
    eng = FakeEngine(clock, ran_on=device)
    row = measure(spec(batch=4, device=device), eng, clock)
    assert row["status"] == "ok" and row["reason"] is None
    assert row["device"] == device and row["batch_mode"] == "native"
    assert row["load_s"] == pytest.approx(0.25)
    assert row["first_ms"] == pytest.approx(50.0)
    assert row["iters"] == 4
    for k in ("mean_ms", "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms"):
        assert row[k] == pytest.approx(8.0), k            # 4 images x 2 ms
    assert row["std_ms"] == pytest.approx(0.0, abs=1e-9)
    assert row["throughput"] == pytest.approx(500.0)       # 4 images / 8 ms
    assert eng.batches == [4] * 6                          # first + 1 warmup + 4 timed
    assert row["peak_mem_mb"] > 0 and set(RESULT_FIELDS) <= set(row)


def test_fixed_batch_one_model_runs_a_batch_of_8_as_8_labelled_sequential_calls():
    clock = FakeClock()
    eng = FakeEngine(clock, batch_dim=1)
    row = measure(spec(batch=8), eng, clock)
    assert row["status"] == "ok" and row["batch_mode"] == "sequential"
    assert set(eng.batches) == {1}                         # never fed a batch it cannot take
    assert row["p50_ms"] == pytest.approx(16.0)            # 8 calls x 2 ms
    assert row["throughput"] == pytest.approx(500.0)


def test_fixed_batch_that_does_not_fit_is_refused_with_the_reason():
    clock = FakeClock()
    eng = FakeEngine(clock, batch_dim=8)
    row = measure(spec(batch=1), eng, clock)
    assert row["status"] == "refused" and "fixed at [8]" in row["reason"]
    assert eng.batches == [] and row["p50_ms"] is None


@pytest.mark.parametrize("requested,ran_on", [("gpu", "cpu"), ("ascend", "cpu"), ("cpu", "gpu")])
def test_a_row_whose_engine_ran_elsewhere_fails_and_is_never_timed(requested, ran_on):
    clock = FakeClock()
    eng = FakeEngine(clock, ran_on=ran_on)
    row = measure(spec(device=requested), eng, clock)
    assert row["status"] == "failed"
    assert f"reports device {ran_on!r}" in row["reason"] and requested in row["reason"]
    assert row["device"] == ran_on and row["device_requested"] == requested
    assert eng.batches == []
    assert all(row[k] is None for k in ("first_ms", "mean_ms", "p50_ms", "throughput"))


def test_engine_that_switches_device_after_the_first_call_fails_the_row():
    clock = FakeClock()
    eng = FakeEngine(clock)
    run = eng.run

    def run_then_fall_back(feed):
        eng.device = "cpu"
        return run(feed)
    eng.device, eng.run = "gpu", run_then_fall_back
    row = measure(spec(device="gpu"), eng, clock)
    assert row["status"] == "failed" and row["mean_ms"] is None


def test_unavailable_row_is_reported_without_loading_anything():
    def loader(s):
        raise AssertionError("an unavailable row must not be loaded")
    row = run_row(RowSpec("m.onnx", "onnxruntime", "gpu", None, None, unavailable="no CUDA provider"),
                  BenchSettings(), loader=loader)
    assert row["status"] == "unavailable" and row["reason"] == "no CUDA provider"


def test_failing_rows_do_not_stop_the_table(monkeypatch):
    clock = FakeClock()
    engines = {"a": FakeEngine(clock, fail_run=True), "c": FakeEngine(clock)}

    def loader(s):
        if s.model == "b.onnx":
            raise EngineUnavailableError("engine 'x'", ["cpu"], "not installed")
        return engines[s.model[0]]
    specs = [RowSpec(f"{m}.onnx", "onnxruntime", "cpu", 1, 1) for m in "abc"]
    rows = run_plan(specs, BenchSettings(warmup=0, iters=2, min_time=None), isolation="inprocess",
                    loader=loader, clock=clock)
    assert [r["status"] for r in rows] == ["failed", "failed", "ok"]
    assert all(r["status"] in STATUSES for r in rows)
    assert "RuntimeError: kernel exploded (raised in run at test_bench_rows.py:" in rows[0]["reason"]
    assert "not installed" in rows[1]["reason"]
    assert rows[2]["label"] == "c.onnx onnxruntime cpu b1 t1"


def test_agreement_is_computed_against_the_reference_row():
    from toolkit.bench.harness import add_agreement
    rows = [{"status": "ok", "engine": "mindspore", "label": "ref", "predictions": [0, 1, 2, 3]},
            {"status": "ok", "engine": "onnxruntime", "label": "ort", "predictions": [0, 1, 2, 0]},
            {"status": "failed", "engine": "opencv", "label": "cv"}]
    assert add_agreement(rows, "onnxruntime")["label"] == "ort"
    assert rows[0]["agreement"] == 0.75 and rows[1]["agreement"] == 1.0 and "agreement" not in rows[2]
    add_agreement(rows)
    assert rows[0]["reference"] == "ref" and rows[1]["agreement"] == 0.75


def test_dynamic_spatial_dims_come_from_the_metadata():
    from runtime.metadata import ModelMeta
    specs = [TensorSpec("x", (None, 3, None, None), "float32", "NCHW")]
    mode, feeds = plan_feeds(specs, 2, ModelMeta(image_size=32, resize=36))
    assert mode == "native" and feeds[0]["x"].shape == (2, 3, 32, 32)
    with pytest.raises(Exception, match="dynamic dimension"):
        plan_feeds(specs, 2, None)
