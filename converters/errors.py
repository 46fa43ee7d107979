"""Typed errors of the converter (the CLI turns them into click errors).

One family: every error the converter raises on purpose is a `runtime.errors.ToolkitError`.
- `ModelFormatError(path, problem, element)` (from runtime): the source file itself is corrupt,
  truncated or inconsistent (bad protobuf, non-UTF-8 names, weights whose bytes do not match their
  shape, a graph output that nothing produces).
- `UnsupportedOpsError(ops, what, path)` (from runtime): well-formed ops the converter has no handler
  for, all listed at once, naming the source file.
- `ConversionError(problem, path, element, output)`: a well-formed model this converter cannot turn
  into a correct `.ms` (an attribute value out of range, a shape that does not fit, an option that
  contradicts the model). Passes raise it without knowing the file; `converters.pipeline` fills in
  `path`/`output` on the way out, so every message names the file (`locate`).
"""
from runtime.errors import ModelFormatError, ToolkitError, UnsupportedOpsError  # noqa: F401


class ConversionError(ToolkitError):
    """The graph cannot be converted correctly (a pass met something it cannot handle).

    path: the source model; element: the node / tensor / attribute at fault; output: the `.ms`
    being written, where it matters; stage: the converter step that raised. The message is rebuilt
    from these, so context added later by the pipeline (`locate`) shows up in `str(e)`.
    """

    def __init__(self, problem, path=None, element=None, output=None, stage=None):
        super().__init__(problem)
        self.stage = stage          # "front end", "pass fold_batchnorm", "lowering" ...
        self.problem = str(problem)
        self.path = None if path is None else str(path)
        self.element = element
        self.output = None if output is None else str(output)

    def locate(self, path=None, output=None, element=None):
        """Fill in context that was unknown where the error was raised; returns self."""
        if self.path is None and path is not None:
            self.path = str(path)
        if self.output is None and output is not None:
            self.output = str(output)
        if self.element is None and element is not None:
            self.element = element
        return self

    def __str__(self):
        text = self.problem
        if self.element and not text.startswith(f"{self.element}:"):
            text = f"{self.element}: {text}"
        if self.path and not text.startswith(f"{self.path}:"):
            text = f"{self.path}: {text}"
        if self.output:
            text += f" (converting to {self.output})"
        return text


class VerificationFailed(ToolkitError):
    """The converted model does not reproduce the source model within the stated thresholds."""

    def __init__(self, report, problems):
        self.report = report
        self.problems = list(problems)
        super().__init__("verification failed: " + "; ".join(self.problems))
