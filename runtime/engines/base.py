"""The raw-tensor engine API, shaped like onnxruntime's InferenceSession.

    eng = runtime.load("model.ms")
    eng.inputs()  -> [TensorSpec(name, shape, dtype, format)]
    eng.run({"x": array}) or eng.run([array]) -> {"out": array}

`device` is the device that really runs the graph, never the one merely asked for.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ToolkitError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Optional[int], ...]   # None for a dynamic dimension
    dtype: str                          # numpy dtype name, e.g. "float32"
    format: str = ""                    # "NCHW", "NHWC" or "" when not an image tensor


class Engine:
    """Base class. Subclasses set `name`, `device`, fill `_inputs`/`_outputs` and implement run()."""

    name = "?"

    def __init__(self, path, device="cpu", threads=None):
        self.path = str(path)
        self.device = device
        self.threads = threads
        self._inputs: List[TensorSpec] = []
        self._outputs: List[TensorSpec] = []

    def inputs(self) -> List[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> List[TensorSpec]:
        return list(self._outputs)

    def run(self, feed) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    # Shared helper: accept a dict by name or a list in input order.
    def _normalize_feed(self, feed) -> Dict[str, np.ndarray]:
        specs = self.inputs()
        if isinstance(feed, dict):
            names = {s.name for s in specs}
            unknown = set(feed) - names
            missing = names - set(feed)
            if unknown or missing:
                raise ToolkitError(f"{self.path}: feed names {sorted(feed)} do not match the model's "
                                   f"inputs {sorted(names)}")
            items = [(s, feed[s.name]) for s in specs]
        elif isinstance(feed, (list, tuple)):
            if len(feed) != len(specs):
                raise ToolkitError(f"{self.path}: model takes {len(specs)} input(s), got {len(feed)}")
            items = list(zip(specs, feed))
        else:
            raise ToolkitError("feed must be a dict by input name or a list in input order")
        out = {}
        for spec, value in items:
            arr = np.asarray(value)
            if arr.dtype != np.dtype(spec.dtype):
                arr = arr.astype(spec.dtype)
            if len(arr.shape) != len(spec.shape) or any(
                    d is not None and d != a for d, a in zip(spec.shape, arr.shape)):
                raise ToolkitError(f"{self.path}: input {spec.name!r} expects shape "
                                   f"{list(spec.shape)}, got {list(arr.shape)}")
            out[spec.name] = np.ascontiguousarray(arr)
        return out

    def __repr__(self):
        return f"<{type(self).__name__} {self.path} on {self.device}>"


def check_device(engine_name, device, supported: Sequence[str], present: Sequence[str]):
    """Raise unless `device` is both supported by the engine and present on this machine."""
    from ..errors import EngineUnavailableError
    if device not in supported:
        raise EngineUnavailableError(f"device {device!r} for engine {engine_name}",
                                     [d for d in supported if d in present],
                                     "the engine does not support it")
    if device not in present:
        raise EngineUnavailableError(f"device {device!r} for engine {engine_name}", present,
                                     "not present on this machine")
