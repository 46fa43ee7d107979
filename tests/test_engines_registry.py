"""Every engine in runtime.formats.ENGINES: it runs the tiny model like the network it came from,
or it is skipped with the reason; and an absent engine or device is an error listing what exists.

Tolerance: outputs within 1e-4 of the MindSpore network's own output, relative to the output range
(float32 engines reorder sums; MindSpore on its own MINDIR is exact).
"""
import os

import numpy as np
import pytest

import runtime
from runtime.engines.devices import available_devices
from runtime.engines import choose_engine, engine_importable, is_importable
from runtime.errors import EngineUnavailableError
from runtime.formats import DEVICES, ENGINES, ENGINES_BY_NAME

ENGINE_NAMES = [e.name for e in ENGINES]
# engine -> which tiny-model file it runs
MODEL_FILE = {"onnx": "onnx", "mindir": "mindir"}


def _skip_unless_usable(entry):
    if not engine_importable(entry):
        needs = ", ".join([f"python package {p}" for p in entry.requires] +
                          ([f"the official program {entry.program}"] if entry.program else []))
        pytest.skip(f"engine {entry.name} needs {needs}: not all found here")
    if entry.name == "ms-engine" and not is_importable(entry.module):
        pytest.skip("engine ms-engine: runtime.engines.ms_engine is not in this build")


GOLDEN_MS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "shared", "golden", "ms", "ml_face_isface.ms")


def _model_for(entry, tiny, allow_golden=False):
    for fmt in entry.formats:
        if fmt in MODEL_FILE:
            return getattr(tiny, MODEL_FILE[fmt])
    if allow_golden and "ms" in entry.formats and os.path.isfile(GOLDEN_MS):
        return GOLDEN_MS
    return None


@pytest.mark.parametrize("name", ENGINE_NAMES)
def test_engine_runs_the_tiny_model_like_the_network(name, tiny):
    entry = ENGINES_BY_NAME[name]
    _skip_unless_usable(entry)
    path = _model_for(entry, tiny)
    if path is None:
        pytest.skip(f"engine {name} runs {entry.formats} only; the .ms case is "
                    "test_ms_engine_runs_an_official_ms_file")
    eng = runtime.load(path, engine=name)
    assert eng.device == "cpu"
    [spec] = eng.inputs()
    assert tuple(spec.shape) == tiny.x.shape and spec.dtype == "float32"
    out = eng.run([tiny.x])
    assert len(out) == 1
    y = next(iter(out.values()))
    tol = 1e-4 * float(np.ptp(tiny.y))
    assert y.shape == tiny.y.shape
    assert float(np.abs(y - tiny.y).max()) <= tol
    assert eng.run({spec.name: tiny.x}).keys() == out.keys()


@pytest.mark.parametrize("name", [e.name for e in ENGINES if "ms" in e.formats])
def test_ms_engine_runs_an_official_ms_file(golden_dir, name):
    entry = ENGINES_BY_NAME[name]
    _skip_unless_usable(entry)
    eng = runtime.load(os.path.join(golden_dir, "ml_face_isface.ms"), engine=name)
    [spec] = eng.inputs()
    assert tuple(spec.shape) == (1, 48, 48, 3)
    raw = np.fromfile(os.path.join(golden_dir, "ml_face_isface_0.input"), "<f4").reshape(1, 3, 48, 48)
    y = next(iter(eng.run([raw.transpose(0, 2, 3, 1)]).values()))
    np.testing.assert_allclose(y.reshape(-1), [0.9979876, 0.002012406], atol=1e-4)


@pytest.mark.parametrize("name", ENGINE_NAMES)
@pytest.mark.parametrize("device", DEVICES)
def test_absent_devices_raise_listing_the_available_ones(name, device, tiny):
    entry = ENGINES_BY_NAME[name]
    _skip_unless_usable(entry)
    present = available_devices(name) if device in entry.devices else []
    if device in present:
        pytest.skip(f"{device} is present for {name} on this machine: nothing to refuse")
    path = _model_for(entry, tiny, allow_golden=True)
    if path is None:
        pytest.skip(f"no test model in {entry.formats} for {name}")
    with pytest.raises(EngineUnavailableError) as err:
        runtime.load(path, engine=name, device=device)
    message = str(err.value)
    assert device in message and "available:" in message
    assert all(d in message.split("available:")[1] for d in err.value.available)
    assert "cpu" in err.value.available


def test_engine_for_the_wrong_format_is_refused(tiny):
    with pytest.raises(EngineUnavailableError, match="runs onnx only"):
        runtime.load(tiny.mindir, engine="opencv")


def test_unknown_engine_lists_the_known_ones(tiny):
    with pytest.raises(EngineUnavailableError) as err:
        runtime.load(tiny.onnx, engine="tensorrt")
    assert "onnxruntime" in str(err.value) and "opencv" in str(err.value)


@pytest.mark.parametrize("suffix,expected", [(".onnx", "onnxruntime"), (".mindir", "mindspore")])
def test_auto_picks_by_file_type_and_what_is_installed(suffix, expected):
    if is_importable("mindspore_lite") and suffix == ".mindir":
        expected = "mslite"
    assert choose_engine("m" + suffix, "auto") == expected


def test_mslite_absent_here_is_reported_not_replaced(tiny):
    if is_importable("mindspore_lite"):
        pytest.skip("mindspore_lite is installed here")
    with pytest.raises(EngineUnavailableError, match="mindspore_lite"):
        runtime.load(tiny.mindir, engine="mslite")


@pytest.fixture(scope="module")
def tiny_ms(tiny, tmp_path_factory):
    """The tiny MINDIR converted by `toolkit convert` (NHWC input), with its sidecar."""
    if not is_importable("toolkit.commands.convert") or not is_importable("runtime.engines.ms_engine"):
        pytest.skip("toolkit convert or the .ms engine is not in this build")
    from click.testing import CliRunner
    from toolkit.cli import main
    out = str(tmp_path_factory.mktemp("tiny_ms") / "model.ms")
    result = CliRunner().invoke(main, ["convert", tiny.mindir, "-o", out])
    assert result.exit_code == 0, result.output
    return out


def test_ms_engine_runs_the_converted_tiny_model(tiny, tiny_ms):
    eng = runtime.load(tiny_ms)                  # auto: ms-engine when mindspore_lite is absent
    if is_importable("mindspore_lite"):
        assert eng.name == "mslite"
    else:
        assert eng.name == "ms-engine"
    [spec] = eng.inputs()
    assert tuple(spec.shape) == (1, 64, 64, 3)
    y = next(iter(eng.run([tiny.x.transpose(0, 2, 3, 1)]).values()))
    assert float(np.abs(y - tiny.y).max()) <= 1e-4 * float(np.ptp(tiny.y))


def test_classifier_on_the_converted_ms_agrees_with_mindspore(tiny, tiny_ms):
    from tiny_models import sample_images
    images = sample_images(os.path.dirname(tiny_ms), 3)
    ms_clf = runtime.Classifier(tiny_ms, top_k=3)
    ref = runtime.Classifier(tiny.mindir, engine="mindspore", top_k=3)
    assert ms_clf.layout == "NHWC" and ref.layout == "NCHW"
    for got, want in zip(ms_clf.predict_batch(images), ref.predict_batch(images)):
        assert [label for label, _ in got] == [label for label, _ in want]
        assert max(abs(a[1] - b[1]) for a, b in zip(got, want)) <= 1e-4


@pytest.mark.parametrize("name", ["onnxruntime", "opencv", "mindspore"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_model_files_are_named(name, damage, tiny, tmp_path):
    from runtime.errors import ModelFormatError
    entry = ENGINES_BY_NAME[name]
    _skip_unless_usable(entry)
    source = _model_for(entry, tiny)
    data = open(source, "rb").read()
    bad = tmp_path / ("bad" + os.path.splitext(source)[1])
    bad.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\x08\x96\x01" + np.random.default_rng(0).bytes(500))
    with pytest.raises(ModelFormatError) as err:
        runtime.load(str(bad), engine=name)
    assert str(bad) in str(err.value)
