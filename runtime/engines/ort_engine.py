"""onnxruntime engine for `.onnx` files (sessions come from ort_session, shared with the `.ms` engine).

A GPU request needs CUDAExecutionProvider; if onnxruntime would run on CPU instead, this raises
instead of falling back, and `engine.device` always names what really runs.
"""
import os

import numpy as np

from ..errors import ModelFormatError
from .base import Engine, TensorSpec
from .layout import with_layout
from .ort_session import ORT_TYPES, create_session, run_session


def _spec(arg):
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return with_layout(TensorSpec(arg.name, shape, ORT_TYPES.get(arg.type, "float32")))


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)
        if not os.path.isfile(self.path):
            raise ModelFormatError(self.path, "no such file")
        self.session, self.device = create_session(self.path, device, threads, self.path)
        self._inputs = [_spec(a) for a in self.session.get_inputs()]
        self._outputs = [_spec(a) for a in self.session.get_outputs()]

    def run(self, feed):
        feed = self._normalize_feed(feed)
        names = [o.name for o in self._outputs]
        results = run_session(self.session, names, feed, f"{self.path}: onnxruntime failed")
        return dict(zip(names, (np.asarray(v) for v in results)))
