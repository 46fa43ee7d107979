"""The `.ms` engine: reads a MindSpore Lite model, translates it to ONNX, runs it in onnxruntime.

It is the fallback when `mindspore_lite` is absent, and the checker behind `toolkit convert
--verify`. The translated ONNX bytes are cached per file (path, size, mtime) within the process,
so re-opening a model skips the translation.

The translator is the package `runtime.engines.ms_onnx` (it imports onnx); it is imported when an
engine is built, not when this module is, so listing engines stays free of onnx.
"""
import os
from collections import OrderedDict

import numpy as np

from ..errors import ModelFormatError
from ..msformat.model import FORMAT_NAMES, FORMAT_NCHW, FORMAT_NHWC, TYPEID_TO_NUMPY, MsModel
from ..msformat.reader import read_ms
from .base import Engine, TensorSpec
from .layout import with_layout
from .ort_session import create_session, first_line, run_session

_CACHE = OrderedDict()          # (realpath, size, mtime_ns) -> (onnx bytes, in names, out names)
_CACHE_ENTRIES = 4
_ORT_LOAD_PREFIX = "onnxruntime cannot load the model: "     # create_session's wording


def _translated(model, source, key=None):
    from .ms_onnx import translate
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    proto, ins, outs = translate(model, source)
    entry = (proto.SerializeToString(), ins, outs)
    if key is not None:
        _CACHE[key] = entry
        while len(_CACHE) > _CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return entry


def _spec(model, idx, name):
    t = model.tensors[idx]
    shape = tuple(d if d >= 0 else None for d in t.dims)
    dtype = TYPEID_TO_NUMPY.get(t.data_type, np.dtype(np.float32)).name
    declared = len(shape) == 4 and t.format in (FORMAT_NCHW, FORMAT_NHWC)
    return with_layout(TensorSpec(name, shape, dtype, FORMAT_NAMES[t.format] if declared else ""))


class MsEngine(Engine):
    name = "ms-engine"

    def __init__(self, path, device="cpu", threads=None, model: MsModel = None):
        super().__init__(path, device, threads)
        key = None
        if model is None:
            model = read_ms(self.path)
            st = os.stat(self.path)
            key = (os.path.realpath(self.path), st.st_size, st.st_mtime_ns)
        self.model = model
        onnx_bytes, ins, outs = _translated(model, self.path, key)
        self.onnx_bytes = onnx_bytes
        try:
            self.session, self.device = create_session(onnx_bytes, device, threads, self.path,
                                                       self.name)
        except ModelFormatError as e:   # the translated graph is what onnxruntime refused
            detail = first_line(e.problem).removeprefix(_ORT_LOAD_PREFIX)
            raise ModelFormatError(self.path, "onnxruntime cannot build a session for the "
                                              f"translated graph: {detail}") from None
        self._inputs = [_spec(model, i, n) for i, n in zip(model.inputs, ins)]
        self._outputs = [_spec(model, i, n) for i, n in zip(model.outputs, outs)]

    @classmethod
    def from_model(cls, model: MsModel, device="cpu", threads=None, name="<in-memory .ms model>"):
        """Run an MsModel that is not (or not yet) a file, e.g. right after conversion."""
        return cls(name, device=device, threads=threads, model=model)

    def run(self, feed):
        feed = self._normalize_feed(feed)
        names = [o.name for o in self._outputs]
        results = run_session(self.session, names, feed,
                              f"{self.path}: running the translated graph failed")
        return dict(zip(names, results))
