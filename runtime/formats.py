"""The one table of model formats and engines.

It drives the CLI choices (`toolkit export --format`, `toolkit convert`, `--engine`), the runtime's
engine selection and the benchmark rows. Named fields, not positional indices.
"""
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class ModelFormat:
    name: str                 # CLI name
    suffix: str               # file suffix
    description: str
    exportable: bool          # `toolkit export --format` can write it
    convert_source: bool      # `toolkit convert` reads it
    needs_ascend: bool = False


FORMATS: Tuple[ModelFormat, ...] = (
    ModelFormat("mindir", ".mindir", "MindSpore IR (protobuf)", exportable=True, convert_source=True),
    ModelFormat("onnx", ".onnx", "ONNX", exportable=True, convert_source=True),
    ModelFormat("air", ".air", "Ascend IR (export needs an Ascend device)", exportable=True,
                convert_source=False, needs_ascend=True),
    ModelFormat("ms", ".ms", "MindSpore Lite flatbuffer", exportable=False, convert_source=False),
)

FORMATS_BY_NAME = {f.name: f for f in FORMATS}
FORMATS_BY_SUFFIX = {f.suffix: f for f in FORMATS}


@dataclass(frozen=True)
class EngineEntry:
    name: str                       # CLI / API name
    formats: Tuple[str, ...]        # format names it runs
    devices: Tuple[str, ...]        # devices it can target ("cpu", "gpu", "ascend")
    module: str                     # module holding the Engine class, imported lazily
    cls: str                        # class name in that module
    import_name: str                # python package whose presence makes it available
    priority: int                   # lower wins in engine="auto" for a format
    extra_imports: Tuple[str, ...] = ()   # further packages it needs besides import_name

    @property
    def requires(self) -> Tuple[str, ...]:
        """Every python package that must be importable for this engine to be available."""
        return (self.import_name,) + self.extra_imports


# Order matters only for display; `priority` decides auto-selection per format.
ENGINES: Tuple[EngineEntry, ...] = (
    EngineEntry("mslite", ("ms", "mindir"), ("cpu", "gpu", "ascend"),
                "runtime.engines.mslite_engine", "MindSporeLiteEngine", "mindspore_lite", 0),
    EngineEntry("onnxruntime", ("onnx",), ("cpu", "gpu"),
                "runtime.engines.ort_engine", "OnnxRuntimeEngine", "onnxruntime", 0),
    EngineEntry("opencv", ("onnx",), ("cpu",),
                "runtime.engines.opencv_engine", "OpenCVDnnEngine", "cv2", 2),
    EngineEntry("mindspore", ("mindir",), ("cpu", "gpu", "ascend"),
                "runtime.engines.mindspore_engine", "MindSporeEngine", "mindspore", 1),
    EngineEntry("ms-engine", ("ms",), ("cpu", "gpu"),
                "runtime.engines.ms_engine", "MsEngine", "onnxruntime", 1, extra_imports=("onnx",)),
)

ENGINES_BY_NAME = {e.name: e for e in ENGINES}
DEVICES = ("cpu", "gpu", "ascend")


def format_of_path(path):
    """The ModelFormat of a model path, by suffix; None if unknown."""
    import os
    return FORMATS_BY_SUFFIX.get(os.path.splitext(str(path))[1].lower())
