"""The raw-tensor engine API, shaped like onnxruntime's InferenceSession.

    eng = runtime.load("model.ms")
    eng.inputs()  -> [TensorSpec(name, shape, dtype, format)]
    eng.run({"x": array}) or eng.run([array]) -> {"out": array}

`device` is the device that really runs the graph, never the one merely asked for. Which devices an
engine can target and whether it is thread-safe are read from its runtime.formats.ENGINES entry:
the base constructor refuses a device the entry does not list, for every engine alike.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import EngineUnavailableError, InputShapeError, ToolkitError
from ..formats import ENGINES_BY_NAME


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Tuple[Optional[int], ...]   # None for a dynamic dimension
    dtype: str                          # numpy dtype name, e.g. "float32"
    format: str = ""                    # "NCHW", "NHWC" or "" when not an image tensor


class Engine:
    """Base class. Subclasses set `name`, `device`, fill `_inputs`/`_outputs` and implement run()."""

    name = "?"
    resizable = False      # True: the constructor takes input_shapes= and resize() works
    int8_modes = ()        # arithmetics of fully quantized models the constructor's int8= takes

    def __init__(self, path, device="cpu", threads=None):
        self.path = str(path)
        refuse_unsupported_device(self.name, device)
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

    def resize(self, input_shapes):
        """Take inputs of other shapes ({input name: shape}), like MindSpore Lite's Model.resize."""
        raise InputShapeError(self.path, f"engine {self.name} cannot change a model's input shapes")

    @property
    def thread_safe(self) -> bool:
        """Whether run() may be called from several threads at once (the ENGINES table says)."""
        entry = ENGINES_BY_NAME.get(self.name)
        return bool(entry and entry.thread_safe)

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


def supported_devices(engine_name) -> Tuple[str, ...]:
    """The devices runtime.formats.ENGINES declares for `engine_name`."""
    entry = ENGINES_BY_NAME.get(engine_name)
    if entry is None:
        raise EngineUnavailableError(f"engine {engine_name!r}", list(ENGINES_BY_NAME), "unknown engine")
    return entry.devices


def refuse_unsupported_device(engine_name, device):
    """Raise unless the ENGINES table lists `device` for the engine; the error lists the table's
    devices that are present here (`available`) and all the table's devices (message)."""
    supported = supported_devices(engine_name)
    if device in supported:
        return
    from .devices import probe       # lazy: probing imports the engine's framework
    present = [d for d in supported if probe(engine_name, d)[0]]
    raise EngineUnavailableError(f"device {device!r} for engine {engine_name}", present,
                                 f"the engine supports {', '.join(supported)} only")


def check_device(engine_name, device, present: Sequence[str], reason="not present on this machine"):
    """Raise unless `device` is both supported by the engine (ENGINES table) and in `present`."""
    refuse_unsupported_device(engine_name, device)
    if device not in present:
        raise EngineUnavailableError(f"device {device!r} for engine {engine_name}",
                                     [d for d in present if d in supported_devices(engine_name)],
                                     reason)
