"""ONNX through OpenCV's DNN module: the engine that needs nothing beyond OpenCV (CPU only).

OpenCV does not report a network's input shapes, and the runtime must not need the `onnx` package,
so the graph's inputs and outputs are read here with a small, bounded protobuf walker
(ModelProto.graph -> GraphProto.input/output/initializer -> ValueInfoProto).
An OpenCV net is not thread-safe (runtime.formats.ENGINES says so), so the Classifier serialises calls.
"""
import cv2
import numpy as np

from ..errors import ModelFormatError, ToolkitError
from ..files import read_regular
from .base import Engine, TensorSpec
from .layout import with_layout

# onnx TensorProto.DataType -> numpy dtype name
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
               9: "bool", 10: "float16", 11: "float64"}
MAX_MODEL_BYTES = 2 * 1024 ** 3


def _varint(buf, i, end):
    result, shift = 0, 0
    while True:
        if i >= end or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf, start, end):
    """Yield (field number, wire type, value) of one protobuf message; bytes fields as (s, e)."""
    i = start
    while i < end:
        key, i = _varint(buf, i, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i, end)
        elif wire == 2:
            n, i = _varint(buf, i, end)
            if i + n > end:
                raise ValueError("length past the end of its message")
            value, i = (i, i + n), i + n
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > end:
            raise ValueError("field past the end of its message")
        yield field, wire, value


def _sub(buf, span, field_no):
    return [v for f, w, v in _fields(buf, *span) if f == field_no and w == 2]


def _value_info(buf, span):
    name, dtype, shape = "", "float32", ()
    for f, w, v in _fields(buf, *span):
        if f == 1 and w == 2:
            name = bytes(buf[v[0]:v[1]]).decode("utf-8", "replace")
        elif f == 2 and w == 2:                              # TypeProto
            for tensor in _sub(buf, v, 1):                   # tensor_type
                for ff, ww, vv in _fields(buf, *tensor):
                    if ff == 1 and ww == 0:
                        dtype = ONNX_DTYPES.get(vv, "float32")
                    elif ff == 2 and ww == 2:                # TensorShapeProto
                        dims = []
                        for dim in _sub(buf, vv, 1):
                            value = None
                            for f3, w3, v3 in _fields(buf, *dim):
                                if f3 == 1 and w3 == 0:
                                    value = v3 if v3 > 0 else None
                            dims.append(value)
                        shape = tuple(dims)
    return TensorSpec(name, shape, dtype, "")


def onnx_io(path):
    """(inputs, outputs) TensorSpecs of an ONNX file, initializers excluded."""
    buf = memoryview(read_regular(path, MAX_MODEL_BYTES, ModelFormatError, what="ONNX file"))
    try:
        graphs = _sub(buf, (0, len(buf)), 7)
        if not graphs:
            raise ValueError("no graph in the file")
        g = graphs[-1]
        initializers = set()
        for span in _sub(buf, g, 5):
            for f, w, v in _fields(buf, *span):
                if f == 8 and w == 2:
                    initializers.add(bytes(buf[v[0]:v[1]]).decode("utf-8", "replace"))
        inputs = [s for s in (_value_info(buf, v) for v in _sub(buf, g, 11))
                  if s.name not in initializers]
        outputs = [_value_info(buf, v) for v in _sub(buf, g, 12)]
    except ValueError as e:
        raise ModelFormatError(path, f"not a valid ONNX model: {e}") from None
    if not inputs or not outputs:
        raise ModelFormatError(path, "ONNX graph declares no inputs or no outputs")
    return inputs, outputs


class OpenCVDnnEngine(Engine):
    name = "opencv"

    def __init__(self, path, device="cpu", threads=None):
        super().__init__(path, device, threads)      # ENGINES lists cpu only: others are refused
        inputs, self._outputs = onnx_io(path)
        self._inputs = [with_layout(s) for s in inputs]
        try:
            self.net = cv2.dnn.readNetFromONNX(self.path)
        except cv2.error as e:
            raise ModelFormatError(path, f"OpenCV DNN cannot load it: {_last_line(e)}") from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        if threads:
            cv2.setNumThreads(int(threads))      # process-wide in OpenCV
        self._out_names = [o.name for o in self._outputs]
        layers = list(self.net.getUnconnectedOutLayersNames())
        # OpenCV names output layers after the ONNX output tensors; fall back to its own names
        # (in order) only when a single output makes the mapping unambiguous.
        self._forward_names = self._out_names if set(layers) == set(self._out_names) else (
            layers if len(layers) == len(self._out_names) == 1 else self._out_names)

    def run(self, feed):
        feed = self._normalize_feed(feed)
        try:
            for name, value in feed.items():
                self.net.setInput(value, name)
            outs = self.net.forward(self._forward_names)
        except cv2.error as e:
            raise ToolkitError(f"{self.path}: OpenCV DNN failed: {_last_line(e)}") from None
        return {n: np.asarray(o) for n, o in zip(self._out_names, outs)}


def _last_line(err):
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(err).__name__
