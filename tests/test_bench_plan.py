"""Row planning: rows come from runtime.formats.ENGINES; what cannot run here is a row with a reason."""
import pytest

from runtime.errors import ModelFormatError
from runtime.formats import DEVICES, ENGINES
from toolkit.bench.plan import BenchPlanError, RowSpec, plan_rows


def probe_cpu_only(engine, device):
    return (True, "") if device == "cpu" else (False, f"no {device} here")


def engines_for(fmt):
    return [e for e in ENGINES if fmt in e.formats]


@pytest.mark.parametrize("suffix,fmt", [(".onnx", "onnx"), (".ms", "ms"), (".mindir", "mindir")])
def test_every_engine_of_the_format_gets_rows_for_every_device_it_supports(suffix, fmt):
    rows = plan_rows([f"m{suffix}"], devices=DEVICES, batches=[1, 8], threads=[1, 2], probe=probe_cpu_only)
    for entry in engines_for(fmt):
        mine = [r for r in rows if r.engine == entry.name]
        cpu = [r for r in mine if r.device == "cpu"]
        assert sorted((r.batch, r.threads) for r in cpu) == [(1, 1), (1, 2), (8, 1), (8, 2)]
        assert all(not r.unavailable for r in cpu)
        for device in entry.devices:
            if device != "cpu":
                [row] = [r for r in mine if r.device == device]      # collapsed: one row, no batch
                assert row.unavailable == f"no {device} here" and row.batch is None
    assert {r.engine for r in rows} == {e.name for e in engines_for(fmt)}


def test_unavailable_engine_keeps_its_row_with_the_probe_reason():
    def probe(engine, device):
        return (False, "mindspore_lite is not installed") if engine == "mslite" else (True, "")
    rows = plan_rows(["m.ms"], devices=["cpu"], probe=probe)
    [lite] = [r for r in rows if r.engine == "mslite"]
    assert lite.unavailable == "mindspore_lite is not installed"
    assert [r.engine for r in rows if not r.unavailable] == ["ms-engine", "mslite-benchmark"]


def test_engine_filter_and_explicit_unsupported_device():
    rows = plan_rows(["m.onnx"], engines=["opencv"], devices=["cpu", "gpu"], probe=probe_cpu_only)
    assert [(r.engine, r.device, bool(r.unavailable)) for r in rows] == [("opencv", "cpu", False),
                                                                         ("opencv", "gpu", True)]
    assert "does not run on gpu" in rows[1].unavailable


def test_default_engines_skip_devices_they_never_support():
    rows = plan_rows(["m.onnx"], devices=["ascend"], probe=probe_cpu_only)
    assert rows == []      # neither onnxruntime nor OpenCV is an Ascend engine


def test_engine_that_runs_none_of_the_models_is_an_error():
    with pytest.raises(BenchPlanError, match="mindspore"):
        plan_rows(["m.onnx"], engines=["onnxruntime", "mindspore"], probe=probe_cpu_only)


def test_unknown_device_and_file_type_are_errors():
    with pytest.raises(BenchPlanError, match="tpu"):
        plan_rows(["m.onnx"], devices=["tpu"], probe=probe_cpu_only)
    with pytest.raises(ModelFormatError, match="m.pt"):
        plan_rows(["m.pt"], probe=probe_cpu_only)


def test_rowspec_round_trips_and_labels():
    r = RowSpec("dir/m.onnx", "onnxruntime", "cpu", 8, 2)
    assert RowSpec.from_dict(r.to_dict()) == r
    assert r.label == "m.onnx onnxruntime cpu b8 t2"


@pytest.mark.parametrize("device", ["gpu", "ascend"])
def test_accelerator_rows_are_planned_for_exactly_the_engines_that_target_them(device):
    """The GPU/Ascend configuration path, exercised with a probe that reports the device present."""
    rows = plan_rows(["m.mindir", "m.onnx", "m.ms"], devices=[device], batches=[1, 8], threads=[2],
                     probe=lambda e, d: (True, ""))
    want = {(fmt, e.name) for e in ENGINES if device in e.devices for fmt in e.formats}
    got = {(r.model.split(".")[1], r.engine) for r in rows}
    assert got == want
    assert all(r.device == device and not r.unavailable and r.batch in (1, 8) for r in rows)
