"""Typed dataset errors (fatal problems only; bad single files are skipped and reported)."""
from runtime.errors import ToolkitError


class DatasetError(ToolkitError):
    """A dataset cannot be used at all: missing root, no class folders, no readable image."""
