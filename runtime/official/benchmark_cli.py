"""Drive the official `benchmark` program through its command line and read what it prints.

Three uses, each one command line of the real tool:
- `performance()`: warm-up and timed loops; the tool prints min, average and max per loop (its own
  clock around `Model::Predict`) and nothing else, so those three are all it can report: no
  percentiles, no standard deviation.
- `check_accuracy()`: `--benchmarkDataFile` with `--accuracyThreshold` (percent) and optionally
  `--cosineDistanceThreshold`; the tool's official metric is the mean relative error over elements
  outside atol 1e-8 + rtol 1e-5.
- `run_outputs()`: the model's outputs on given inputs, through `--outputDataFile`, which only the
  stand-ins have (the release tool prints at most 50 values per output). Callers check
  `tool.supports("--outputDataFile")` and otherwise use `check_accuracy`.

Failures become OfficialToolError with the command and the tool's own error lines; a hang is cut
off after `timeout` seconds.
"""
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ToolkitError
from .discovery import OfficialTool
from .golden_data import read_output_file, write_input_bins

PERF_RE = re.compile(r"Model = (?P<model>.*?), NumThreads = (?P<threads>\d+), "
                     r"MinRunTime = (?P<min>[\d.]+) ms, MaxRuntime = (?P<max>[\d.]+) ms, "
                     r"AvgRunTime = (?P<avg>[\d.]+) ms")
PREPARE_RE = re.compile(r"PrepareTime = (?P<ms>[\d.]+) ms")
BIAS_ALL_RE = re.compile(r"Mean bias of all nodes/tensors: (?P<pct>[-\d.eE+naif]+)%")
BIAS_NODE_RE = re.compile(r"Mean bias of node/tensor (?P<name>.+?) : (?P<pct>[-\d.eE+naif]+)%")
COSINE_ALL_RE = re.compile(r"Cosine distance of all nodes/tensors: (?P<cos>[-\d.eE+naif]+)")
OUTPUT_FILE_RE = re.compile(r"OutputDataFile (?P<i>\d+): (?P<name>.+?) dtype (?P<dtype>-?\d+) "
                            r"shape (?P<shape>[\d,]*) -> (?P<file>.+)$")
SUCCESS_RE = re.compile(r"Run Benchmark .* Success\.")
DEFAULT_TIMEOUT_S = 600
ERROR_LINES = 8


class OfficialToolError(ToolkitError):
    """An official tool ran and failed (or printed nothing we can read)."""

    def __init__(self, tool, model, problem, output=""):
        self.tool = tool
        self.model = str(model)
        self.problem = problem
        self.output = output
        lines = [ln for ln in output.splitlines() if ln.strip()]
        tail = " | ".join(lines[-ERROR_LINES:])
        super().__init__(f"{self.model}: official {tool} {problem}" + (f": {tail}" if tail else ""))


@dataclass(frozen=True)
class Timing:
    """What `benchmark` prints in performance mode, in milliseconds per loop."""
    min_ms: float
    avg_ms: float
    max_ms: float
    loops: int
    warmup: int
    threads: int
    prepare_ms: Optional[float]
    command: Tuple[str, ...] = field(compare=False)


@dataclass(frozen=True)
class Accuracy:
    passed: bool
    mean_bias_pct: float
    per_tensor_bias_pct: Dict[str, float]
    cosine: Optional[float]
    output: str = field(compare=False, repr=False)


def _float(text):
    try:
        return float(text)
    except ValueError:
        return float("nan")


def shape_flag(shapes: Optional[Sequence[Sequence[int]]]) -> List[str]:
    """`--inputShapes=1,3,224,224:1,10` for a resize, in input order (both tool generations take it)."""
    if not shapes:
        return []
    return ["--inputShapes=" + ":".join(",".join(str(int(d)) for d in s) for s in shapes)]


def _run(tool: OfficialTool, model, args, timeout):
    cmd = [tool.path, f"--modelFile={os.path.abspath(model)}"] + list(args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=tool.env(),
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or "") + (e.stderr or "") if isinstance(e.stdout, str) else ""
        raise OfficialToolError(tool.name, model, f"did not finish within {timeout} s", out) from None
    except OSError as e:
        raise OfficialToolError(tool.name, model, f"could not start: {e}") from None
    return cmd, proc.returncode, proc.stdout, proc.stdout + proc.stderr


def performance(tool: OfficialTool, model, threads=1, loops=10, warmup=3, input_files=(),
                input_shapes=None, timeout=DEFAULT_TIMEOUT_S) -> Timing:
    """Time `model` the way `benchmark` does; inputs random unless `input_files` are given."""
    args = [f"--numThreads={int(threads)}", f"--loopCount={int(loops)}",
            f"--warmUpLoopCount={int(warmup)}"]
    if input_files:
        args.append("--inDataFile=" + ",".join(os.path.abspath(p) for p in input_files))
    args += shape_flag(input_shapes)
    cmd, rc, stdout, both = _run(tool, model, args, timeout)
    m = PERF_RE.search(stdout)
    if rc != 0 or m is None:
        raise OfficialToolError(tool.name, model, f"exited {rc} without a timing line", both)
    prep = PREPARE_RE.search(stdout)
    return Timing(float(m["min"]), float(m["avg"]), float(m["max"]), int(loops), int(warmup),
                  int(m["threads"]), float(prep["ms"]) if prep else None, tuple(cmd))


def check_accuracy(tool: OfficialTool, model, input_files, calibration_file, threshold_pct=0.5,
                   cosine_threshold=None, threads=1, input_shapes=None,
                   timeout=DEFAULT_TIMEOUT_S) -> Accuracy:
    """Run `benchmark --benchmarkDataFile`; `passed` is the tool's own verdict (exit 0 + success line)."""
    args = [f"--numThreads={int(threads)}",
            "--inDataFile=" + ",".join(os.path.abspath(p) for p in input_files),
            f"--benchmarkDataFile={os.path.abspath(calibration_file)}",
            f"--accuracyThreshold={float(threshold_pct)}"]
    if cosine_threshold is not None:
        args.append(f"--cosineDistanceThreshold={float(cosine_threshold)}")
    args += shape_flag(input_shapes)
    _, rc, stdout, both = _run(tool, model, args, timeout)
    overall = BIAS_ALL_RE.search(both)
    if overall is None:
        raise OfficialToolError(tool.name, model, f"exited {rc} before comparing outputs", both)
    per = {m["name"]: _float(m["pct"]) for m in BIAS_NODE_RE.finditer(stdout)}
    cos = COSINE_ALL_RE.search(stdout)
    passed = rc == 0 and SUCCESS_RE.search(stdout) is not None
    return Accuracy(passed, _float(overall["pct"]), per, _float(cos["cos"]) if cos else None, both)


def run_outputs(tool: OfficialTool, model, arrays: Sequence[np.ndarray], threads=1,
                input_shapes=None, timeout=DEFAULT_TIMEOUT_S) -> List[Tuple[str, np.ndarray]]:
    """The official runtime's outputs, (name, float32 array) in model order, for inputs `arrays`
    (raw, in the model's input order, dtype and layout)."""
    if not tool.supports("--outputDataFile"):
        raise OfficialToolError(tool.name, model, "cannot return outputs: this benchmark has no "
                                "--outputDataFile (a stand-in extension); compare with "
                                "check_accuracy instead")
    work = tempfile.mkdtemp(prefix="mslite-bench-")
    try:
        files = write_input_bins(arrays, work)
        prefix = os.path.join(work, "out")
        args = [f"--numThreads={int(threads)}", "--loopCount=1", "--warmUpLoopCount=0",
                "--inDataFile=" + ",".join(files), f"--outputDataFile={prefix}"]
        args += shape_flag(input_shapes)
        _, rc, stdout, both = _run(tool, model, args, timeout)
        if rc != 0:
            raise OfficialToolError(tool.name, model, f"exited {rc}", both)
        found = sorted(((int(m["i"]), m["name"], m["file"].strip())
                        for m in map(OUTPUT_FILE_RE.search, stdout.splitlines()) if m))
        if not found:
            raise OfficialToolError(tool.name, model, "wrote no output files", both)
        results = []
        for i, name, binfile in found:
            results.append((name, read_output_file(binfile[:-len(".bin")] + ".output")))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
