"""Which rows a bench runs: model x engine x device x batch x threads, from the one engine table.

Engines come from runtime.formats.ENGINES (those that run the model's format), devices are checked with
runtime.engines.devices.probe. A combination that cannot run here is still a row, marked unavailable with the
reason (an engine that never supports a device gets such a row only when it was named explicitly);
since nothing is measured for it, batch and threads are collapsed (one row per model x engine x
device) instead of repeating the same reason for every batch and thread count.
"""
import os
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence, Tuple

from runtime.errors import ModelFormatError, ToolkitError
from runtime.formats import DEVICES, ENGINES, format_of_path

class BenchPlanError(ToolkitError):
    """The requested bench has no row to run (for example an engine that runs none of the models)."""


@dataclass(frozen=True)
class RowSpec:
    model: str
    engine: str
    device: str
    batch: Optional[int]          # None only on a collapsed unavailable row
    threads: Optional[int]        # None: the engine's default thread count
    api: str = "engine"
    unavailable: str = ""         # reason, when the row cannot run on this machine

    @property
    def label(self):
        """Short human name of the row (chart labels, agreement references)."""
        parts = [os.path.basename(self.model), self.engine + ("+classifier" if self.api == "classifier" else ""),
                 self.device]
        if self.batch is not None:
            parts.append(f"b{self.batch}")
        parts.append(f"t{self.threads}" if self.threads else "t-")
        return " ".join(parts)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _default_probe(engine, device):
    from runtime.engines.devices import probe
    return probe(engine, device)


def plan_rows(models: Sequence[str], engines: Optional[Sequence[str]] = None,
              devices: Sequence[str] = DEVICES, batches: Sequence[int] = (1,),
              threads: Sequence[Optional[int]] = (1,), api: str = "engine",
              probe: Callable[[str, str], Tuple[bool, str]] = _default_probe):
    """The ordered list of RowSpec for these models and settings."""
    from .measure import APIS
    if api not in APIS:
        raise BenchPlanError(f"unknown api {api!r}; known: {', '.join(APIS)}")
    unknown = [d for d in devices if d not in DEVICES]
    if unknown:
        raise BenchPlanError(f"unknown device(s) {', '.join(unknown)}; known: {', '.join(DEVICES)}")
    rows, used = [], set()
    for model in models:
        fmt = format_of_path(model)
        if fmt is None:
            raise ModelFormatError(model, "unknown model file type (expected .ms, .mindir or .onnx)")
        for entry in ENGINES:
            if fmt.name not in entry.formats or (engines is not None and entry.name not in engines):
                continue
            used.add(entry.name)
            for device in devices:
                if device not in entry.devices and engines is None:
                    continue  # not a candidate; an engine named explicitly still gets its row
                reason = _unavailable_reason(entry, device, probe)
                if reason:
                    rows.append(RowSpec(model, entry.name, device, None, None, api, reason))
                    continue
                rows.extend(RowSpec(model, entry.name, device, b, t, api)
                            for b in batches for t in threads)
    if engines is not None:
        idle = [e for e in engines if e not in used]
        if idle:
            raise BenchPlanError(f"engine(s) {', '.join(idle)} run none of the given model files")
    return rows


def _unavailable_reason(entry, device, probe):
    if device not in entry.devices:
        return f"engine {entry.name} does not run on {device} (it runs on {', '.join(entry.devices)})"
    ok, reason = probe(entry.name, device)
    return "" if ok else (reason or f"{entry.name} cannot use {device} here")
