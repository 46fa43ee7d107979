"""Measure one row in the current process: import, load, check the device, first call, timed calls.

The device check is the no-substitution rule: if the engine reports that it runs on a device other than
the one the row asked for, the row fails before anything is timed.
"""
import importlib
import os
import resource
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import numpy as np

from runtime.msformat.precision import file_precision

from runtime.errors import ToolkitError
from runtime.formats import ENGINES_BY_NAME, format_of_path
from runtime.registry import registrar

from .stats import LatencyStats, time_calls

STATUSES = ("ok", "unavailable", "refused", "failed")

# Every result row has these keys, in this order (the CSV columns and the JSON row layout).
RESULT_FIELDS = (
    "model", "format", "model_bytes", "engine", "api", "device_requested", "device", "batch", "threads",
    "batch_mode", "status", "reason", "import_s", "load_s", "first_ms", "iters", "mean_ms", "std_ms",
    "min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms", "throughput", "base_mem_mb", "peak_mem_mb",
    "isolation", "overhead_s", "images", "top1", "agreement", "reference", "limit_ms", "limit_fraction",
    "timed_by", "vs_official", "precision", "vs_fp32",
)
# Who timed a row: this harness (Python's clock around each call, every statistic), or an official
# program with its own clock, which prints min/avg/max only (mean_ms is then its AvgRunTime).
TIMED_BY_TOOLKIT = "toolkit"
TIMED_BY_OFFICIAL = "official benchmark"
OFFICIAL_TIMING_NOTE = ("timed by the official benchmark's own loop clock: it prints min, avg and max "
                        "per call only (mean = its AvgRunTime; no std or percentiles); load s = its "
                        "PrepareTime; peak MB = the benchmark process's own peak RSS")
SELF_TIMED_MAX_LOOPS = 100_000


class DeviceMismatchError(ToolkitError):
    """The engine runs on another device than the row asked for; the row is never timed."""


class BatchRefusedError(ToolkitError):
    """The model's fixed input shape cannot take the requested batch."""


@dataclass
class BenchSettings:
    warmup: int = 2
    iters: Optional[int] = None
    min_time: Optional[float] = 1.0
    data: Optional[str] = None             # ImageFolder for accuracy/agreement
    seed: int = 0
    row_timeout: float = 900.0             # subprocess rows only
    reference: Optional[str] = None        # engine name of the agreement reference row

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def empty_result(spec) -> dict:
    """A result row for `spec` with nothing measured yet."""
    row = dict.fromkeys(RESULT_FIELDS)
    fmt = format_of_path(spec.model)
    row.update(model=spec.model, format=fmt.name if fmt else None, engine=spec.engine, api=spec.api,
               device_requested=spec.device, batch=spec.batch, threads=spec.threads,
               precision=file_precision(spec.model))
    try:
        row["model_bytes"] = os.path.getsize(spec.model)
    except OSError:
        pass
    if spec.unavailable:
        row.update(status="unavailable", reason=spec.unavailable)
    return row


def _proc_status_mb(field):
    """A memory line of /proc/self/status in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB.

    VmHWM belongs to this process image only. ru_maxrss is the fallback off Linux, but on Linux it
    survives exec: a child started by a large parent would report the parent's size.
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024.0 * 1024.0) if sys.platform == "darwin" else kb / 1024.0


def current_rss_mb():
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else peak_rss_mb()


def plan_feeds(specs, batch, meta=None, seed=0):
    """Random feeds for one timed call of `batch` images, and how the batch is run.

    ("native", [feed]) when the input takes the batch; ("sequential", [feed] * batch) when the input is
    fixed at batch 1 (each call then runs `batch` single-image inferences, and the row says so).
    A fixed batch that is neither raises BatchRefusedError.
    """
    rng = np.random.default_rng(seed)
    fixed = {s.shape[0] for s in specs if s.shape and s.shape[0] is not None}
    if not fixed or fixed == {batch}:
        mode, per_call = "native", batch
    elif fixed == {1}:
        mode, per_call = "sequential", 1
    else:
        raise BatchRefusedError(f"the model's input batch is fixed at {sorted(fixed)}; a batch of {batch} "
                                "cannot be run as such")
    calls = 1 if mode == "native" else batch
    feeds = []
    for i in range(calls):
        feed = {}
        for s in specs:
            shape = [per_call if (j == 0 and s.shape) else _static_dim(s, j, d, meta)
                     for j, d in enumerate(s.shape)]
            dtype = np.dtype(s.dtype)
            feed[s.name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                            else np.zeros(shape, dtype))
        feeds.append(feed)
    return mode, feeds


def _static_dim(spec, axis, dim, meta):
    if dim is not None:
        return dim
    if meta is not None and len(spec.shape) == 4:
        from runtime.engines.layout import image_layout
        layout = image_layout(spec) or meta.layout
        spatial = (2, 3) if layout == "NCHW" else (1, 2)
        channel = 1 if layout == "NCHW" else 3
        if axis in spatial:
            return meta.image_size
        if axis == channel:
            return 3
    raise BatchRefusedError(f"input {spec.name!r} has a dynamic dimension {axis} {list(spec.shape)} and no "
                            "metadata sidecar says its size")


def load_meta(model):
    """The model's own metadata (runtime.metadata.find_meta), or None when it has none."""
    from runtime.metadata import find_meta
    return find_meta(model)[0]


APIS = {}


def api(name):
    def register(cls):
        registrar(APIS, "bench API")(name)(cls())     # the table holds one adapter instance
        return cls
    return register


@api("engine")
class EngineApi:
    """The raw engine: one timed call runs the feeds through engine.run()."""

    def load(self, spec):
        import runtime
        return runtime.load(spec.model, engine=spec.engine, device=spec.device, threads=spec.threads)

    def engine(self, obj):
        return obj

    def make_call(self, obj, feeds):
        def call():
            for feed in feeds:
                obj.run(feed)
        return call


@api("classifier")
class ClassifierApi:
    """runtime.Classifier on the same engine: one timed call turns the preprocessed batch into top-k labels
    (inference, softmax, top-k, locking). Decoding and resizing are not part of it."""

    def load(self, spec):
        from runtime.classifier import Classifier
        return Classifier(spec.model, engine=spec.engine, device=spec.device, threads=spec.threads)

    def engine(self, obj):
        return obj.engine

    def make_call(self, obj, feeds):
        name = obj.engine.inputs()[0].name
        batch = np.concatenate([f[name] for f in feeds])

        def call():
            return [obj.top(p) for p in obj.probabilities(batch)]
        return call


def check_device(engine, spec):
    ran = getattr(engine, "device", None)
    if ran != spec.device:
        raise DeviceMismatchError(f"engine {spec.engine} reports device {ran!r}, not the requested "
                                  f"{spec.device!r}; the row is not timed on another device")


def describe_error(e):
    """`Type: message`, plus where it was raised when the message alone says nothing."""
    text = f"{type(e).__name__}: {e}".strip()
    if str(e).strip() and isinstance(e, ToolkitError):
        return text
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        f = frames[-1]
        text += f" (raised in {f.name} at {os.path.basename(f.filename)}:{f.lineno})"
    return text


def run_row(spec, settings: BenchSettings, loader: Optional[Callable] = None,
            clock: Callable[[], float] = time.perf_counter, isolation="inprocess") -> dict:
    """Measure `spec` here and return its result row (status ok, refused or failed; never raises)."""
    row = empty_result(spec)
    row["isolation"] = isolation
    if spec.unavailable:
        return row
    row["base_mem_mb"] = current_rss_mb()
    try:
        _measure(spec, settings, loader, clock, row)
        row["status"] = "ok"
    except BatchRefusedError as e:
        row.update(status="refused", reason=str(e))
    except Exception as e:  # any engine failure marks only this row failed
        row.update(status="failed", reason=describe_error(e))
    row["peak_mem_mb"] = row.pop("_tool_peak_mem_mb", None) or peak_rss_mb()
    return row


def _measure(spec, settings, loader, clock, row):
    adapter = APIS[spec.api]
    if loader is None:
        loader = adapter.load
        t0 = clock()
        entry = ENGINES_BY_NAME[spec.engine]
        for package in getattr(entry, "requires", (entry.import_name,)):
            importlib.import_module(package)
        row["import_s"] = clock() - t0
    t0 = clock()
    obj = loader(spec)
    row["load_s"] = clock() - t0
    engine = adapter.engine(obj)
    row["device"] = getattr(engine, "device", None)
    check_device(engine, spec)
    meta = load_meta(spec.model)
    mode, feeds = plan_feeds(engine.inputs(), spec.batch, meta, settings.seed)
    row["batch_mode"] = mode
    if ENGINES_BY_NAME[spec.engine].self_timed:
        _measure_self_timed(engine, spec, settings, mode, feeds, row)
    else:
        _measure_timed_here(obj, adapter, spec, settings, clock, feeds, row)
    if settings.data:
        from .data import evaluate_folder
        row.update(evaluate_folder(engine, settings.data, meta, spec.batch))


def _measure_timed_here(obj, adapter, spec, settings, clock, feeds, row):
    """First call, then timed calls, on this process's clock (every statistic)."""
    row["timed_by"] = TIMED_BY_TOOLKIT
    call = adapter.make_call(obj, feeds)
    t0 = clock()
    call()
    row["first_ms"] = (clock() - t0) * 1e3
    check_device(adapter.engine(obj), spec)
    samples = time_calls(call, settings.warmup, settings.iters,
                         None if settings.iters else settings.min_time, clock)
    stats = LatencyStats.from_samples(samples)
    row.update(stats.as_ms())
    row["throughput"] = stats.throughput(spec.batch)


def _measure_self_timed(engine, spec, settings, mode, feeds, row):
    """A row of an engine whose program times itself (the official benchmark): its loops, its clock.

    With --min-time, a short run first measures the call, then enough loops fill the time; the
    first call, std and percentiles are not reported because the program does not print them.
    """
    if spec.api != "engine":
        raise BatchRefusedError(f"{spec.engine} times its own loops; the {spec.api} API is not "
                                "measured on it")
    if mode != "native":
        raise BatchRefusedError(f"{spec.engine} times one call per loop; a batch of {spec.batch} on a "
                                "model fixed at batch 1 would be several calls")
    feed = feeds[0]
    if settings.iters:
        loops = settings.iters
    else:
        trial, _ = engine.time_loops(feed, loops=3, warmup=1)
        per_call = max(trial.avg_ms, 1e-3)
        loops = int(min(SELF_TIMED_MAX_LOOPS, max(3, np.ceil(settings.min_time * 1e3 / per_call))))
    timing, tool_peak = engine.time_loops(feed, loops, settings.warmup)
    row.update(iters=loops, mean_ms=timing.avg_ms, min_ms=timing.min_ms, max_ms=timing.max_ms,
               throughput=spec.batch / (timing.avg_ms / 1e3) if timing.avg_ms > 0 else None,
               timed_by=TIMED_BY_OFFICIAL, _tool_peak_mem_mb=tool_peak)
    if timing.prepare_ms is not None:
        row["load_s"] = timing.prepare_ms / 1e3
