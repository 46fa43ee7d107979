"""Typed errors of the converter (the CLI turns them into click errors)."""
from runtime.errors import ToolkitError, UnsupportedOpsError  # noqa: F401


class ConversionError(ToolkitError):
    """The graph cannot be converted correctly (a pass met something it cannot handle)."""


class VerificationFailed(ToolkitError):
    """The converted model does not reproduce the source model within the stated thresholds."""

    def __init__(self, report, problems):
        self.report = report
        self.problems = list(problems)
        super().__init__("verification failed: " + "; ".join(self.problems))
