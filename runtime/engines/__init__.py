"""Engine registry: engines are chosen by file type and availability through runtime.formats.ENGINES.

`load()` is the one way project code runs a model file (the Classifier, `toolkit eval`, feature
extraction, `toolkit convert --verify`, `toolkit export`'s check, `toolkit bench`), so the device
rule and the no-fallback rule hold everywhere; tests/test_one_path.py keeps it so. Helpers beside it:
batching.run_batched (fixed-batch padding) and layout.image_layout (NCHW/NHWC).
Nothing here imports an engine's framework; `load()` imports the chosen engine's module only.
"""
import importlib
import os

from ..errors import EngineUnavailableError, InputShapeError, ModelFormatError
from ..formats import ENGINES, ENGINES_BY_NAME, format_of_path
from . import availability
from .availability import engine_importable, is_importable  # noqa: F401
from .base import Engine, TensorSpec  # noqa: F401


def available_engines(fmt=None):
    """Names of installed engines (optionally those that run format `fmt`)."""
    return [e.name for e in ENGINES
            if (fmt is None or fmt in e.formats) and engine_importable(e)]


def engine_class(name):
    entry = ENGINES_BY_NAME.get(name)
    if entry is None:
        raise EngineUnavailableError(f"engine {name!r}", [e.name for e in ENGINES], "unknown engine")
    if not engine_importable(entry):
        missing = [n for n in entry.requires if not availability.is_importable(n)]
        if entry.program and not missing:
            from ..official.discovery import locate
            locate(entry.program)    # raises OfficialToolUnavailableError: where it looked, how to get it
        raise EngineUnavailableError(f"engine {name!r}", available_engines(),
                                     f"python package(s) {', '.join(missing or entry.requires)} "
                                     "not installed")
    return getattr(importlib.import_module(entry.module), entry.cls)


def choose_engine(path, engine=None):
    """The engine name for `path`: explicit, or 'auto' by file type and what is installed."""
    fmt = format_of_path(path)
    if fmt is None:
        raise ModelFormatError(path, "unknown model file type (expected .ms, .mindir or .onnx)")
    if engine not in (None, "auto"):
        entry = ENGINES_BY_NAME.get(engine)
        if entry is None or fmt.name not in entry.formats:
            raise EngineUnavailableError(f"engine {engine!r} for {fmt.name} files",
                                         available_engines(fmt.name),
                                         "unknown engine" if entry is None else
                                         f"it runs {', '.join(entry.formats)} only")
        return engine
    candidates = sorted((e for e in ENGINES if fmt.name in e.formats), key=lambda e: e.priority)
    for e in candidates:
        if engine_importable(e):
            return e.name
    raise EngineUnavailableError(f"an engine for {fmt.name} files", [],
                                 "install one of: " + ", ".join("+".join(e.requires) for e in candidates))


def load(path, engine=None, device="cpu", threads=None, input_shapes=None, int8=None) -> Engine:
    """Open a model file on an engine. Raises instead of substituting another engine or device.
    `input_shapes` ({input name: shape}) opens it for other input shapes than the stored ones, on
    engines that can resize (Engine.resizable); others refuse it. `int8` chooses the arithmetic of
    fully quantized `.ms` nodes ("exact": the official runtime's, "fast": onnxruntime's fused
    kernels; see runtime/engines/ms_onnx/int8.py) on engines that offer one (Engine.int8_modes)."""
    if not os.path.isfile(path):
        raise ModelFormatError(path, "no such file")
    name = choose_engine(path, engine)
    cls = engine_class(name)
    options = {}
    if input_shapes is not None:
        if not cls.resizable:
            raise InputShapeError(path, f"engine {name} cannot change a model's input shapes "
                                        "(input_shapes)")
        options["input_shapes"] = input_shapes
    if int8 is not None:
        if int8 not in cls.int8_modes:
            offering = [e.name for e in ENGINES
                        if engine_importable(e) and int8 in engine_class(e.name).int8_modes]
            raise EngineUnavailableError(f"int8 arithmetic {int8!r} on engine {name}", offering,
                                         f"engine {name} offers "
                                         f"{', '.join(cls.int8_modes) or 'no choice of int8 arithmetic'}")
        options["int8"] = int8
    return cls(path, device=device, threads=threads, **options)
