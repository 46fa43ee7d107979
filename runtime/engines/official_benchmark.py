"""The official MindSpore Lite runtime as an engine: its `benchmark` program, one process per call.

It exists so that everything comparing with the official runtime (bench rows, `toolkit convert
--verify`, conformance tests) goes through the same engine API as every other engine. `run()` writes
the inputs as raw files, runs `benchmark --inDataFile ... --outputDataFile ...` and reads the outputs
back, so it is slow per call and never chosen by `engine="auto"` before an in-process engine.
`time_loops()` lets the tool time itself (its own clock around Predict), which is what bench rows
report for this engine: Python never times the program's process start as inference.

`--outputDataFile` exists in the stand-ins (`../shared/mslite`) but not in the release tool, whose
outputs can only be compared through a calibration file (runtime.official.benchmark_cli.check_accuracy):
on a release tool run() raises OfficialToolError saying so, and time_loops() works everywhere.
"""
import os
import resource
import shutil
import tempfile

from ..msformat.reader import read_ms
from ..official import benchmark_cli
from ..official.discovery import locate
from ..official.golden_data import write_input_bins
from .base import Engine
from .ms_engine import ms_tensor_spec


class OfficialBenchmarkEngine(Engine):
    name = "mslite-benchmark"

    def __init__(self, path, device="cpu", threads=None, tool=None):
        super().__init__(path, device, threads)
        self.tool = tool or locate("benchmark")
        model = read_ms(self.path)          # inputs()/outputs() from the file, as the tool sees it
        names = [model.tensors[i].name or f"input{k}" for k, i in enumerate(model.inputs)]
        self._inputs = [ms_tensor_spec(model, i, n) for i, n in zip(model.inputs, names)]
        outs = [model.tensors[i].name or f"output{k}" for k, i in enumerate(model.outputs)]
        self._outputs = [ms_tensor_spec(model, i, n) for i, n in zip(model.outputs, outs)]

    @property
    def num_threads(self):
        return self.threads or 1

    def run(self, feed):
        feed = self._normalize_feed(feed)
        arrays = [feed[s.name] for s in self._inputs]
        shapes = self._resize_shapes(arrays)
        results = benchmark_cli.run_outputs(self.tool, self.path, arrays, self.num_threads, shapes)
        names = [o.name for o in self._outputs]
        if len(results) != len(names):
            raise benchmark_cli.OfficialToolError(self.tool.name, self.path, f"returned {len(results)} "
                                                  f"outputs, the file declares {len(names)}")
        return {name: arr for name, (_, arr) in zip(names, results)}

    def _resize_shapes(self, arrays):
        """--inputShapes when a fed shape differs from the stored one (dynamic dims)."""
        stored = [tuple(s.shape) for s in self._inputs]
        fed = [tuple(a.shape) for a in arrays]
        return None if fed == stored else fed

    def time_loops(self, feed, loops, warmup):
        """The tool's own timing of `loops` calls after `warmup` on these inputs; also the peak RSS
        of the tool's process (MiB, from the kernel's record of finished children)."""
        feed = self._normalize_feed(feed)
        arrays = [feed[s.name] for s in self._inputs]
        work = tempfile.mkdtemp(prefix="mslite-bench-")
        try:
            files = write_input_bins(arrays, work)
            timing = benchmark_cli.performance(self.tool, self.path, self.num_threads, loops, warmup,
                                               files, self._resize_shapes(arrays))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        child_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        return timing, child_peak_mb

    def __repr__(self):
        return f"<{type(self).__name__} {self.path} via {self.tool.path}>"
