"""The MindSpore Lite adapter against the documented `mindspore_lite` API (shared/docs/ms-format.md).

`mindspore_lite` is not on the package index, so a fake module implementing the documented calls
is injected through sys.modules: Context (target, cpu.thread_num; a GPU/Ascend target silently gets
a CPU backup appended), Model.build_from_file(path, ModelType, ctx), get_inputs, predict,
Tensor.set_data_from_numpy / get_data_to_numpy. The fake "model" returns the per-channel mean of
its NCHW input, so results are checkable. The last test uses the real package and is skipped here.
"""
import enum
import importlib.machinery
import os
import sys
import types

import cv2
import numpy as np
import pytest

import runtime
from runtime import Classifier
from runtime.engines import choose_engine
from runtime.errors import EngineUnavailableError, MetadataError, ModelFormatError
from runtime.metadata import ModelMeta


class DataType(enum.Enum):
    FLOAT32 = 43


class Format(enum.Enum):
    NCHW = 0
    NHWC = 1


class FakeTensor:
    def __init__(self, name, shape):
        self.name, self.shape = name, list(shape)
        self.dtype, self.format = DataType.FLOAT32, Format.NCHW
        self._data = None

    def set_data_from_numpy(self, arr):
        assert arr.dtype == np.float32 and list(arr.shape) == self.shape
        self._data = arr.copy()

    def get_data_to_numpy(self):
        return self._data


def make_fake(accepts=("MINDIR_LITE",), gpu_present=True, ascend_env=False, batch=1):
    mod = types.ModuleType("mindspore_lite")
    mod.__spec__ = importlib.machinery.ModuleSpec("mindspore_lite", None)
    mod.ModelType = enum.Enum("ModelType", "MINDIR MINDIR_LITE")
    mod.DataType, mod.Format, mod.Tensor = DataType, Format, FakeTensor
    mod.built = []

    class _Inner:                          # the device infos really held, like the real package's
        def __init__(self):
            self.devices = []

        def get_target(self):
            return list(self.devices)

    class Context:
        def __init__(self):
            self._context = _Inner()
            self.cpu = types.SimpleNamespace(thread_num=0)
            self.target = ["cpu"]

        @property
        def target(self):
            return self._target

        @target.setter
        def target(self, target):
            if "ascend" in target and not ascend_env:
                raise RuntimeError("Ascend environment not found (check_ascend_env)")
            self._context.devices = list(target)
            if any(t in ("gpu", "ascend") for t in target):
                self._context.devices.append("cpu")          # the silent CPU backup
            self._target = list(target)

    class Model:
        def build_from_file(self, path, model_type, context):
            if model_type.name not in accepts:
                raise RuntimeError(f"build_from_file failed: model type {model_type.name} not supported")
            if "gpu" in context._context.devices and not gpu_present:
                context._context.devices = ["cpu"]           # what a CPU-only board ends up with
            mod.built.append((path, model_type.name, list(context.target), context.cpu.thread_num))
            self._inputs = [FakeTensor("image", (batch, 3, 64, 64))]

        def get_inputs(self):
            return self._inputs

        def predict(self, inputs):
            out = FakeTensor("scores", (inputs[0].shape[0], 3))
            out._data = inputs[0].get_data_to_numpy().mean(axis=(2, 3)).astype(np.float32)
            return [out]

    mod.Context, mod.Model = Context, Model
    return mod


@pytest.fixture
def fake(monkeypatch):
    def install(**kw):
        mod = make_fake(**kw)
        monkeypatch.setitem(sys.modules, "mindspore_lite", mod)
        return mod
    return install


@pytest.fixture
def ms_file(tmp_path):
    path = tmp_path / "model.ms"
    path.write_bytes(b"\x10\x00\x00\x00MSL2")      # contents are the fake runtime's business
    ModelMeta(image_size=64, resize=73, class_names=["red", "green", "blue"]).save(
        str(tmp_path / "model.json"))
    return str(path)


def test_device_side_build_loads_ms_as_mindir_lite(fake, ms_file):
    mod = fake()
    eng = runtime.load(ms_file, engine="mslite", threads=2)
    assert eng.model_type == "MINDIR_LITE" and eng.build_errors == []
    assert eng.devices == ["cpu"] and eng.device == "cpu"
    assert mod.built == [(ms_file, "MINDIR_LITE", ["cpu"], 2)]
    [spec] = eng.inputs()
    assert spec.name == "image" and spec.shape == (1, 3, 64, 64) and spec.format == "NCHW"


def test_cloud_side_build_falls_back_to_mindir_and_says_so(fake, ms_file):
    fake(accepts=("MINDIR",))
    eng = runtime.load(ms_file, engine="mslite")
    assert eng.model_type == "MINDIR"
    assert len(eng.build_errors) == 1 and "MINDIR_LITE" in eng.build_errors[0]
    assert "(MINDIR)" in repr(eng)


def test_no_model_type_builds_names_the_file_and_both_attempts(fake, ms_file):
    fake(accepts=())
    with pytest.raises(ModelFormatError) as err:
        runtime.load(ms_file, engine="mslite")
    assert ms_file in str(err.value) and "MINDIR_LITE:" in str(err.value) and "MINDIR:" in str(err.value)


def test_mindir_files_are_built_as_mindir_only(fake, tmp_path):
    mod = fake(accepts=("MINDIR",))
    path = tmp_path / "net.mindir"
    path.write_bytes(b"\x0a\x00")
    assert runtime.load(str(path), engine="mslite").model_type == "MINDIR"
    assert [b[1] for b in mod.built] == ["MINDIR"]


def test_gpu_run_reports_the_silent_cpu_backup(fake, ms_file):
    fake(gpu_present=True)
    eng = runtime.load(ms_file, engine="mslite", device="gpu")
    assert eng.device == "gpu" and eng.devices == ["gpu", "cpu"] and eng.backup_devices == ["cpu"]
    assert "gpu+cpu" in repr(eng)


def test_gpu_asked_but_cpu_really_runs_is_an_error(fake, ms_file):
    fake(gpu_present=False)
    with pytest.raises(EngineUnavailableError) as err:
        runtime.load(ms_file, engine="mslite", device="gpu")
    assert err.value.available == ["cpu"] and "'gpu'" in str(err.value)


def test_ascend_without_its_runtime_is_an_error(fake, ms_file):
    fake(ascend_env=False)
    with pytest.raises(EngineUnavailableError, match="Ascend environment not found"):
        runtime.load(ms_file, engine="mslite", device="ascend")


def test_run_feeds_and_reads_tensors(fake, ms_file):
    fake()
    eng = runtime.load(ms_file, engine="mslite")
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    out = eng.run([x])
    assert list(out) == ["scores"]
    np.testing.assert_allclose(out["scores"], x.mean(axis=(2, 3)), rtol=1e-6)


def test_auto_prefers_mindspore_lite_for_ms_when_installed(fake, ms_file):
    fake()
    assert choose_engine(ms_file, "auto") == "mslite"


def test_classifier_runs_on_mindspore_lite(fake, ms_file):
    fake()
    clf = Classifier(ms_file, top_k=1)
    assert clf.engine.name == "mslite"
    red = np.zeros((80, 100, 3), np.uint8)
    red[..., 2] = 255                                   # BGR
    assert clf.predict(red, order="BGR")[0][0] == "red"
    blue_png = cv2.imencode(".png", red[..., ::-1])[1].tobytes()
    assert clf.predict(blue_png)[0][0] == "blue"


def test_class_count_is_checked_at_the_first_run_when_outputs_are_not_declared(fake, ms_file):
    fake()
    meta = ModelMeta(image_size=64, resize=73, class_names=["red", "green"])
    clf = Classifier(ms_file, meta=meta)
    with pytest.raises(MetadataError, match="gives 3 scores"):
        clf.predict(np.zeros((64, 64), np.uint8))


def test_the_real_mindspore_lite_reproduces_the_official_output(golden_dir):
    pytest.importorskip("mindspore_lite", reason="mindspore_lite is not installed: it is not on the "
                                                 "package index, so the real-package check only runs "
                                                 "on a board that has MindSpore Lite")
    eng = runtime.load(os.path.join(golden_dir, "ml_face_isface.ms"), engine="mslite")
    raw = np.fromfile(os.path.join(golden_dir, "ml_face_isface_0.input"), "<f4").reshape(1, 3, 48, 48)
    y = next(iter(eng.run([raw.transpose(0, 2, 3, 1)]).values()))
    np.testing.assert_allclose(y.reshape(-1), [0.9979876, 0.002012406], atol=1e-4)
