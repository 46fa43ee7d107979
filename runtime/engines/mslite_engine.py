"""Adapter over the official MindSpore Lite Python API (`mindspore_lite`), used on boards that have it.

Written against the documented API (shared/docs/ms-format.md):
    ctx = mslite.Context(); ctx.target = ["cpu" | "gpu" | "ascend"]; ctx.cpu.thread_num = n
    model = mslite.Model(); model.build_from_file(path, mslite.ModelType.MINDIR_LITE | MINDIR, ctx)
    inputs = model.get_inputs(); inputs[0].set_data_from_numpy(x)
    outputs = model.predict(inputs); outputs[0].get_data_to_numpy()

Two behaviours of MindSpore Lite are made explicit instead of silent:
- which ModelType loads a `.ms` depends on the package build (device-side builds take MINDIR_LITE,
  cloud-side builds only MINDIR): MINDIR_LITE is tried first, MINDIR only if that build raises, and
  `model_type` records which one loaded;
- a GPU or Ascend context gets a CPU backup appended silently: after building, the device list the
  context really holds is read back; the engine raises unless the requested device leads it, and
  reports the full list in `devices` (e.g. ["gpu", "cpu"]: cpu only for ops the gpu lacks).
"""
import os

import numpy as np

from ..errors import EngineUnavailableError, ModelFormatError, ToolkitError
from ..formats import ENGINES_BY_NAME
from .base import Engine, TensorSpec
from .layout import with_layout

SUPPORTED = ENGINES_BY_NAME["mslite"].devices        # the table's devices, named for _device_name
# model suffix -> ModelType names to try, in order
MODEL_TYPES = {".ms": ("MINDIR_LITE", "MINDIR"), ".mindir": ("MINDIR",)}
# mslite DataType names -> numpy dtype names
DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "FLOAT64": "float64", "INT8": "int8",
          "INT16": "int16", "INT32": "int32", "INT64": "int64", "UINT8": "uint8", "BOOL": "bool"}
FORMATS = {"NCHW": "NCHW", "NHWC": "NHWC"}


def _get(obj, attr, method):
    """Read a tensor property across API versions (2.x properties, 1.x get_* methods)."""
    if hasattr(obj, attr) and not callable(getattr(obj, attr)):
        return getattr(obj, attr)
    fn = getattr(obj, method, None)
    return fn() if callable(fn) else None


def _enum_name(value):
    name = getattr(value, "name", None) or str(value)
    return name.rsplit(".", 1)[-1].upper()


def _spec(t, index):
    name = _get(t, "name", "get_tensor_name") or f"input_{index}"
    shape = tuple(int(d) if int(d) > 0 else None for d in (_get(t, "shape", "get_shape") or ()))
    dtype = DTYPES.get(_enum_name(_get(t, "dtype", "get_data_type")), "float32")
    fmt = FORMATS.get(_enum_name(_get(t, "format", "get_format")), "")
    return with_layout(TensorSpec(name, shape, dtype, fmt))


def devices_in_context(ctx):
    """The device list the context really holds, CPU backup included, lower-case."""
    inner = getattr(ctx, "_context", None)
    listed = None
    if inner is not None and callable(getattr(inner, "get_target", None)):
        listed = inner.get_target()            # the device infos really appended
    if listed is None:
        listed = list(ctx.target)
        if any(d.lower() in ("gpu", "ascend") for d in listed) and "cpu" not in [d.lower() for d in listed]:
            listed.append("cpu")               # documented: appended silently
    if isinstance(listed, str):
        listed = [d for d in listed.replace(",", " ").split() if d]
    return [_device_name(d) for d in listed]


def _device_name(d):
    name = _enum_name(d).lower()
    for dev in SUPPORTED:
        if dev in name:
            return dev
    return name


class MindSporeLiteEngine(Engine):
    name = "mslite"

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)      # refuses devices the ENGINES entry lacks
        import mindspore_lite as mslite
        self._mslite = mslite
        suffix = os.path.splitext(self.path)[1].lower()
        if suffix not in MODEL_TYPES:
            raise ModelFormatError(path, f"MindSpore Lite runs .ms and .mindir files, not {suffix}")
        ctx = mslite.Context()
        try:
            ctx.target = [device]
        except Exception as e:   # e.g. check_ascend_env() raising when no Ascend runtime exists
            raise EngineUnavailableError(f"device {device!r} for engine {self.name}", ["cpu"],
                                         f"MindSpore Lite refused the context: {e}") from None
        if threads:
            ctx.cpu.thread_num = int(threads)
        self.model, self.model_type, self.build_errors = self._build(ctx, MODEL_TYPES[suffix])
        self.devices = devices_in_context(ctx)
        if not self.devices or self.devices[0] != device:
            raise EngineUnavailableError(
                f"device {device!r} for engine {self.name}", sorted(set(self.devices)),
                f"MindSpore Lite built the model for {self.devices or 'no device'} instead")
        self.device = device
        self._inputs = [_spec(t, i) for i, t in enumerate(self.model.get_inputs())]
        self._outputs = None

    def _build(self, ctx, type_names):
        errors = []
        for type_name in type_names:
            model = self._mslite.Model()
            try:
                model.build_from_file(self.path, getattr(self._mslite.ModelType, type_name), ctx)
            except Exception as e:  # RuntimeError from the C++ side
                errors.append(f"{type_name}: {e}")
                continue
            return model, type_name, errors
        raise ModelFormatError(self.path, "MindSpore Lite cannot build it: " + "; ".join(errors))

    @property
    def backup_devices(self):
        return self.devices[1:]

    def outputs(self):
        if self._outputs is None:
            outs = self.model.get_outputs() if hasattr(self.model, "get_outputs") else []
            self._outputs = [_spec(t, i) for i, t in enumerate(outs)]
        return list(self._outputs)

    def run(self, feed):
        feed = self._normalize_feed(feed)
        tensors = self.model.get_inputs()
        values = [feed[spec.name] for spec in self._inputs]
        shapes = [list(v.shape) for v in values]
        if shapes != [list(_get(t, "shape", "get_shape") or ()) for t in tensors]:
            self.model.resize(tensors, shapes)      # dynamic dimensions (batch) only
            tensors = self.model.get_inputs()
        for tensor, value in zip(tensors, values):
            tensor.set_data_from_numpy(value)
        try:
            outs = self.model.predict(tensors)
        except Exception as e:
            raise ToolkitError(f"{self.path}: MindSpore Lite predict failed: {e}") from None
        names = [_get(t, "name", "get_tensor_name") or f"output_{i}" for i, t in enumerate(outs)]
        return {n: np.asarray(t.get_data_to_numpy()) for n, t in zip(names, outs)}

    def __repr__(self):
        return (f"<MindSporeLiteEngine {self.path} ({self.model_type}) on "
                f"{'+'.join(self.devices)}>")
