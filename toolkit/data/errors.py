"""Typed dataset errors (fatal problems only; bad single files are skipped and reported)."""
from runtime.errors import ToolkitError


class DatasetError(ToolkitError):
    """A dataset cannot be used at all: missing root, no class folders, no readable image, a folder
    that cannot be listed (a symbolic-link loop, no permission).

    `DatasetError(message)`, or `DatasetError(path, problem)` when one path is at fault; then
    `.path` and `.problem` hold them and the message is "path: problem"."""

    def __init__(self, message_or_path, problem=None):
        self.path = None if problem is None else str(message_or_path)
        self.problem = problem
        super().__init__(str(message_or_path) if problem is None else f"{self.path}: {problem}")
