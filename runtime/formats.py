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
    """Every fact about one engine, declared here and nowhere else.

    `devices` is what the engine can ever target (an engine asked for another device raises
    EngineUnavailableError listing these; runtime.engines.devices probes only these); `thread_safe` says
    whether run() may be called from several threads at once (runtime.Classifier locks otherwise).
    """
    name: str                       # CLI / API name
    formats: Tuple[str, ...]        # format names it runs
    devices: Tuple[str, ...]        # devices it can target ("cpu", "gpu", "ascend")
    module: str                     # module holding the Engine class, imported lazily
    cls: str                        # class name in that module
    import_name: str                # python package whose presence makes it available
    priority: int                   # lower wins in engine="auto" for a format
    thread_safe: bool = False       # run() may be called concurrently
    extra_imports: Tuple[str, ...] = ()   # further packages it needs besides import_name
    # An official MindSpore Lite program the engine drives (runtime.official.discovery finds it);
    # such an engine is available only when the program is found.
    program: str = ""
    # The program times itself (its own clock around Predict): bench rows report its figures and
    # never time the program's process start from Python.
    self_timed: bool = False

    @property
    def requires(self) -> Tuple[str, ...]:
        """Every python package that must be importable for this engine to be available."""
        return tuple(n for n in (self.import_name,) + self.extra_imports if n)


# Order matters only for display; `priority` decides auto-selection per format.
# thread_safe: onnxruntime documents InferenceSession.run as thread-safe (the .ms engine runs on it);
# OpenCV DNN nets, MindSpore cells and MindSpore Lite models keep per-call state.
ENGINES: Tuple[EngineEntry, ...] = (
    EngineEntry("mslite", formats=("ms", "mindir"), devices=("cpu", "gpu", "ascend"),
                module="runtime.engines.mslite_engine", cls="MindSporeLiteEngine",
                import_name="mindspore_lite", priority=0, thread_safe=False),
    EngineEntry("onnxruntime", formats=("onnx",), devices=("cpu", "gpu"),
                module="runtime.engines.ort_engine", cls="OnnxRuntimeEngine",
                import_name="onnxruntime", priority=0, thread_safe=True),
    EngineEntry("opencv", formats=("onnx",), devices=("cpu",),
                module="runtime.engines.opencv_engine", cls="OpenCVDnnEngine",
                import_name="cv2", priority=2, thread_safe=False),
    EngineEntry("mindspore", formats=("mindir",), devices=("cpu", "gpu", "ascend"),
                module="runtime.engines.mindspore_engine", cls="MindSporeEngine",
                import_name="mindspore", priority=1, thread_safe=False),
    EngineEntry("ms-engine", formats=("ms",), devices=("cpu", "gpu"),
                module="runtime.engines.ms_engine", cls="MsEngine",
                import_name="onnxruntime", priority=1, thread_safe=True, extra_imports=("onnx",)),
    # The official runtime through its `benchmark` program (a process per run() call, so last in
    # auto-selection): the peer that bench rows and --verify compare the project's engine with.
    EngineEntry("mslite-benchmark", formats=("ms",), devices=("cpu",),
                module="runtime.engines.official_benchmark", cls="OfficialBenchmarkEngine",
                import_name="", priority=9, thread_safe=True, program="benchmark", self_timed=True),
)

ENGINES_BY_NAME = {e.name: e for e in ENGINES}
DEVICES = ("cpu", "gpu", "ascend")


def format_of_path(path):
    """The ModelFormat of a model path, by suffix; None if unknown."""
    import os
    return FORMATS_BY_SUFFIX.get(os.path.splitext(str(path))[1].lower())
