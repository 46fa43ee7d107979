"""onnxruntime engine for `.onnx` files (sessions come from ort_session, shared with the `.ms` engine).

A GPU request needs CUDAExecutionProvider; if onnxruntime would run on CPU instead, this raises
instead of falling back, and `engine.device` always names what really runs.
"""
import os

import numpy as np

from ..errors import ModelFormatError
from .base import Engine, TensorSpec
from .ort_session import ORT_TYPES, create_session


def guess_format(shape):
    """'NCHW'/'NHWC' for a 4-D image-like shape (1 or 3 channels), else ''."""
    if len(shape) != 4:
        return ""
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3) and shape[1] not in (1, 3):
        return "NHWC"
    return ""


def _spec(arg):
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, shape, ORT_TYPES.get(arg.type, "float32"), guess_format(shape))


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
        return dict(zip(names, (np.asarray(v) for v in self.session.run(names, feed))))
