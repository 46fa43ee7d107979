"""The `.ms` -> ONNX translator behind the `.ms` engine (runtime/engines/ms_engine.py).

Layering inside the package runs one way: `base` (Context, HANDLERS, constants) <- `checks`
(validated attribute parsing) <- `ops_nn` <- `ops_tensor`, `ops_extra` (one handler per `.ms` op,
registered with `@handler` at import) <- `driver` (`translate`). Importing the package imports
every op module, so HANDLERS is complete as soon as `runtime.engines.ms_onnx` is importable;
registering an op twice raises `runtime.registry.DuplicateRegistration` at import.

It imports onnx, so only the `.ms` engine and tools that need it import this package; the format
library `runtime/msformat/` stays free of onnx.
"""
from . import ops_extra, ops_nn, ops_tensor  # noqa: F401  (registration happens here, at import)
from .base import HANDLERS, OPSET, Context, NotTranslatable  # noqa: F401
from .driver import topological_order, translate, unsupported_nodes  # noqa: F401
