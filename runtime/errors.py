"""Typed errors of the runtime and the format library.

Library code raises these; only the CLI boundary turns them into click errors, so an embedding
application can catch them by type.
"""


class ToolkitError(Exception):
    """Base class for every error this project raises on purpose."""


class LocatedError(ToolkitError):
    """An error about one file and, when known, the element in it: "m.ms: tensor 12 ('w'): ..."."""

    def __init__(self, path, problem, element=None):
        # element: the part of the file at fault ("tensor 12", "node conv1", "key mean"), if known
        self.path = str(path)
        self.problem = problem
        self.element = element
        where = f"{self.path}: {element}" if element else self.path
        super().__init__(f"{where}: {problem}")


class ModelFormatError(LocatedError):
    """A model file is corrupt, truncated, hostile or not of the claimed format."""


class UnsupportedOpsError(ToolkitError):
    """A graph holds ops that cannot be executed or converted; lists all of them at once."""

    def __init__(self, ops, what="execute", path=None):
        # ops: list of (node_name, op_type); path: the model file, named first in the message
        self.ops = list(ops)
        self.path = None if path is None else str(path)
        listing = ", ".join(f"{name} ({op})" for name, op in self.ops)
        kinds = sorted({op for _, op in self.ops})
        prefix = f"{self.path}: " if self.path else ""
        super().__init__(f"{prefix}cannot {what} {len(self.ops)} node(s) with unsupported op(s) "
                         f"{', '.join(kinds)}: {listing}")


class EngineUnavailableError(ToolkitError):
    """The requested engine or device is not present. Never replaced by another silently."""

    def __init__(self, requested, available, reason=""):
        self.requested = requested
        self.available = list(available)
        msg = f"{requested} is not available"
        if reason:
            msg += f" ({reason})"
        msg += "; available: " + (", ".join(self.available) if self.available else "none")
        super().__init__(msg)


class ImageError(ToolkitError):
    """An image cannot be decoded or converted."""

    def __init__(self, source, problem):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class MetadataError(ToolkitError):
    """Model metadata is missing, malformed, or contradicts the model itself.

    `MetadataError(source, problem, key=None)` names the file (or "<ModelMeta>" for an object built in
    code) and the JSON key at fault: "m.json: key 'std': must be positive". The one-argument form
    `MetadataError(message)` is kept for messages that already say everything.
    """

    def __init__(self, source, problem=None, key=None):
        self.source = str(source)
        self.problem = problem
        self.key = key
        if problem is None:
            super().__init__(self.source)
            return
        where = f"{self.source}: key {key!r}" if key else self.source
        super().__init__(f"{where}: {problem}")


class InputShapeError(LocatedError):
    """Input shapes other than a model's stored ones were asked for and the model cannot take them
    (a bad request, or a node whose attributes fix the shape, e.g. a Reshape to a constant target
    that includes the batch). Names the file and the input or node at fault."""
