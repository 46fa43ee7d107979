"""The `.ms` engine: reads a MindSpore Lite model, translates it to ONNX, runs it in onnxruntime.

It is the fallback when `mindspore_lite` is absent, and the checker behind `toolkit convert
--verify`. The translated ONNX bytes are cached per file (path, size, mtime) within the process,
so re-opening a model skips the translation.

Input shapes other than the stored ones (another batch, another image size), like the official
`Model.resize` and `benchmark --inputShapes`: `MsEngine(path, input_shapes={name: shape})`,
`runtime.load(path, input_shapes=...)` or `engine.resize({name: shape})`. The graph is translated
again for those shapes (each dim a handler reads is inferred from them); a node that cannot take
them raises InputShapeError naming the file and the node.

The translator is the package `runtime.engines.ms_onnx` (it imports onnx); it is imported when an
engine is built, not when this module is, so listing engines stays free of onnx.
"""
import dataclasses
import operator
import os
from collections import OrderedDict

import numpy as np

from ..errors import ModelFormatError
from ..msformat.model import FORMAT_NAMES, FORMAT_NCHW, FORMAT_NHWC, TYPEID_TO_NUMPY, MsModel
from ..msformat.reader import read_ms
from .base import Engine, TensorSpec
from .layout import with_layout
from .int8_modes import INT8_MODES, check_mode
from .ort_session import create_session, first_line, run_session

_CACHE = OrderedDict()    # (realpath, size, mtime_ns, shapes) -> (onnx bytes, in names, out names, out shapes)
_CACHE_ENTRIES = 4
_ORT_LOAD_PREFIX = "onnxruntime cannot load the model: "     # create_session's wording


def _shape_key(input_shapes):
    try:
        return tuple(sorted((str(k), tuple(operator.index(d) for d in v))   # 8.5 is no 8
                            for k, v in input_shapes.items()))
    except (AttributeError, TypeError, ValueError, OverflowError):
        return None         # not cacheable; translate() says what is wrong with it


def _translated(model, source, key=None, input_shapes=None, int8=None, expose=()):
    from .ms_onnx import translate
    if key is not None:
        key = key + (int8, tuple(expose))
    if key is not None and input_shapes:
        shapes = _shape_key(input_shapes)
        key = None if shapes is None else key + (shapes,)
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    proto, ins, outs = translate(model, source, input_shapes=input_shapes, int8_mode=int8,
                                 expose=expose)
    out_shapes = None
    if input_shapes:      # the translator wrote the inferred shapes onto the graph outputs
        out_shapes = [tuple(d.dim_value if d.HasField("dim_value") else None
                            for d in o.type.tensor_type.shape.dim)
                      if o.type.tensor_type.HasField("shape") else
                      (None,) * len(model.tensors[idx].dims)
                      for o, idx in zip(proto.graph.output, model.outputs)]
    entry = (proto.SerializeToString(), ins, outs, out_shapes)
    if key is not None:
        _CACHE[key] = entry
        while len(_CACHE) > _CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return entry


def ms_tensor_spec(model, idx, name, dims=None):
    """The TensorSpec of `.ms` tensor idx (its stored dims, or `dims` after a resize); shared with the
    official-benchmark engine so both engines describe one file the same way."""
    t = model.tensors[idx]
    dims = t.dims if dims is None else dims
    shape = tuple(d if d is not None and d >= 0 else None for d in dims)
    dtype = TYPEID_TO_NUMPY.get(t.data_type, np.dtype(np.float32)).name
    declared = len(shape) == 4 and t.format in (FORMAT_NCHW, FORMAT_NHWC)
    return with_layout(TensorSpec(name, shape, dtype, FORMAT_NAMES[t.format] if declared else ""))


class MsEngine(Engine):
    name = "ms-engine"

    resizable = True
    int8_modes = INT8_MODES

    def __init__(self, path, device="cpu", threads=None, model: MsModel = None, input_shapes=None,
                 int8=None, expose=()):
        """`expose`: indices of inner tensors to return too, as float32 outputs after the model's
        own (int8 ones dequantized): calibration and per-layer comparison read them."""
        super().__init__(path, device, threads)
        self.expose = tuple(expose)
        self._key, self._device_asked = None, device
        self.int8 = check_mode(int8)
        if model is None:
            model = read_ms(self.path)
            st = os.stat(self.path)
            self._key = (os.path.realpath(self.path), st.st_size, st.st_mtime_ns)
        self.model = model
        self.expose = tuple(i for i in dict.fromkeys(self.expose) if i not in model.outputs)
        self._build(input_shapes)

    def resize(self, input_shapes):
        """Take inputs of other shapes from now on ({input name: shape}; inputs not named keep
        their stored shape), like the official Model.resize. Translates the graph for them."""
        self._build(input_shapes)

    def _build(self, input_shapes):
        model = self.model
        onnx_bytes, ins, outs, out_shapes = _translated(model, self.path, self._key, input_shapes,
                                                        self.int8, self.expose)
        self.onnx_bytes = onnx_bytes
        try:
            self.session, self.device = create_session(onnx_bytes, self._device_asked, self.threads,
                                                       self.path, self.name)
        except ModelFormatError as e:   # the translated graph is what onnxruntime refused
            detail = first_line(e.problem).removeprefix(_ORT_LOAD_PREFIX)
            raise ModelFormatError(self.path, "onnxruntime cannot build a session for the "
                                              f"translated graph: {detail}") from None
        shapes = dict(input_shapes or {})
        self._inputs = [ms_tensor_spec(model, i, n, shapes.get(n)) for i, n in zip(model.inputs, ins)]
        self._outputs = [ms_tensor_spec(model, i, n, out_shapes[k] if out_shapes else None)
                         for k, (i, n) in enumerate(zip(model.outputs, outs))]
        self._outputs += [dataclasses.replace(ms_tensor_spec(model, i, n), dtype="float32")
                          for i, n in zip(self.expose, outs[len(model.outputs):])]

    @classmethod
    def from_model(cls, model: MsModel, device="cpu", threads=None, name="<in-memory .ms model>",
                   input_shapes=None, int8=None, expose=()):
        """Run an MsModel that is not (or not yet) a file, e.g. right after conversion."""
        return cls(name, device=device, threads=threads, model=model, input_shapes=input_shapes,
                   int8=int8, expose=expose)

    def run(self, feed):
        feed = self._normalize_feed(feed)
        names = [o.name for o in self._outputs]
        results = run_session(self.session, names, feed,
                              f"{self.path}: running the translated graph failed")
        return dict(zip(names, results))
