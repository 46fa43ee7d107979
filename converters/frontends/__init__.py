"""Front ends: parse a source model file into the IR (`converters.ir.Graph`).

FRONTENDS maps a format name (runtime.formats) to the module holding its `load(path)` function;
modules are imported lazily so the ONNX front end does not need MindSpore and vice versa.
"""
import importlib

from runtime.errors import ModelFormatError
from runtime.formats import format_of_path

FRONTENDS = {
    "mindir": "converters.frontends.mindir",
    "onnx": "converters.frontends.onnx_frontend",
}


def load_source(path):
    """Parse `path` (by suffix) into an IR Graph."""
    fmt = format_of_path(path)
    if fmt is None or fmt.name not in FRONTENDS:
        raise ModelFormatError(path, "cannot convert this file type; `toolkit convert` reads "
                               + ", ".join(f".{n}" for n in FRONTENDS))
    return importlib.import_module(FRONTENDS[fmt.name]).load(path)
