"""The typed error of the distributed layer (launching, rank tables, backends, initialisation)."""
from runtime.errors import ToolkitError


class DistributedError(ToolkitError):
    """A distributed run cannot be configured, started, or did not finish (names the rank and its log)."""
