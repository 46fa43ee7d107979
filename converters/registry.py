"""Op-handler registries: one decorated function per source op (like tf2onnx's @tf_op).

A front end walks its source nodes, looks each op up here, and collects every unsupported op with its
node name before failing, so the user sees all of them in one error.
"""
from runtime.registry import registrar  # noqa: F401  (the one registrar, re-exported)

from .errors import UnsupportedOpsError


class OpRegistry:
    def __init__(self, source):
        self.source = source
        self.handlers = {}

    def register(self, *op_types):
        return registrar(self.handlers, f"{self.source}: handler")(*op_types)

    def supported(self):
        return sorted(self.handlers)

    def check_all_supported(self, named_ops):
        """named_ops: iterable of (node_name, op_type). Raise listing every unsupported one."""
        missing = [(name, op) for name, op in named_ops if op not in self.handlers]
        if missing:
            raise UnsupportedOpsError(missing, what=f"convert ({self.source} front end)")

    def __getitem__(self, op):
        return self.handlers[op]
