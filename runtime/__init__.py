"""The embeddable on-device runtime.

Needs only numpy, OpenCV and the small `.ms` format library at import time; every engine's framework
(onnxruntime, MindSpore, MindSpore Lite) is imported lazily when a model is loaded.
"""
from . import opencv_limits  # noqa: F401  (first: bounds OpenCV's decoders before cv2 can load)
from .engines import available_engines, load  # noqa: F401
from .errors import (EngineUnavailableError, ImageError, InputShapeError,  # noqa: F401
                     MetadataError, ModelFormatError, ToolkitError, UnsupportedOpsError)
from .metadata import ModelMeta  # noqa: F401

__version__ = "0.1.0"


def __getattr__(name):
    # Classifier pulls in OpenCV; keep `import runtime` cheap until it is used.
    if name == "Classifier":
        from .classifier import Classifier
        return Classifier
    raise AttributeError(name)
