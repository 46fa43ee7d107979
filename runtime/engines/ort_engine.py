"""onnxruntime engine for `.onnx` files, and the session factory the `.ms` engine shares.

A GPU request needs CUDAExecutionProvider; if onnxruntime would run on CPU instead, this raises
instead of falling back, and `engine.device` always names what really runs.
"""
import os

import numpy as np

from ..errors import EngineUnavailableError, ModelFormatError
from .base import Engine, TensorSpec

PROVIDERS = {"cpu": "CPUExecutionProvider", "gpu": "CUDAExecutionProvider"}
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
              "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def create_session(model, device="cpu", threads=None, source="<model>", engine="onnxruntime"):
    """(InferenceSession, device) for ONNX bytes or a path, on exactly the requested device."""
    import onnxruntime as ort
    want = PROVIDERS.get(device)
    available = ort.get_available_providers()
    present = [d for d, p in PROVIDERS.items() if p in available]
    if want is None or want not in available:
        raise EngineUnavailableError(f"device {device!r} for {engine}", present,
                                     f"onnxruntime execution providers here: {', '.join(available)}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    providers = [want] if device == "cpu" else [want, PROVIDERS["cpu"]]
    try:
        session = ort.InferenceSession(model, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelFormatError(source, f"onnxruntime cannot load the model: {e}") from None
    if session.get_providers()[0] != want:
        raise EngineUnavailableError(f"device {device!r} for {engine}", ["cpu"],
                                     f"onnxruntime fell back to {session.get_providers()}")
    return session, device


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
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, "float32"), guess_format(shape))


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
