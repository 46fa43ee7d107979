"""The resolved training configuration, written to RUN_DIR/config.json.

Every value that influences the weights lives here, so `--resume` can compare the saved
configuration with the new command line and refuse a run that would not continue the same training.
"""
import json
from dataclasses import asdict, dataclass, fields
from typing import Optional

from runtime.atomic import atomic_write_text
from runtime.errors import ToolkitError
from runtime.jsonfile import read_json

AMP_LEVELS = ("O0", "O2", "O3")
DEVICES = ("cpu", "gpu", "ascend")
EXTRACTORS = ("auto", "onnxruntime", "mindspore")

# Settings that may change between an interrupted run and its resumption without changing the
# trajectory of the weights.
RESUME_MAY_CHANGE = {"device_id", "save_every", "keep_max", "save_fp16", "num_workers", "extractor",
                     "cache_dir", "log_dir", "master_addr", "master_port", "node_rank", "local_workers",
                     "timeout"}


class ConfigError(ToolkitError):
    """The configuration is inconsistent, or does not match the run being resumed."""


@dataclass
class TrainConfig:
    data: str
    out: str
    mode: str = "head"
    pretrained: Optional[str] = None
    arch: str = "mobilenet_v2"
    width: float = 1.0
    image_size: int = 224
    epochs: int = 10
    batch_size: int = 32
    lr_max: float = 0.05
    lr_end: float = 0.0
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    loss_scale: Optional[float] = None      # resolved: 1 for O0, 1024 for O2/O3
    amp: str = "O0"
    device: str = "cpu"
    device_id: int = 0
    seed: int = 0
    save_every: int = 1
    keep_max: int = 5
    save_fp16: bool = False
    val_fraction: float = 0.2
    num_workers: int = 1
    extractor: str = "auto"
    cache_dir: Optional[str] = None
    workers: int = 1
    local_workers: Optional[int] = None
    master_addr: str = "127.0.0.1"
    master_port: Optional[int] = None       # None: a free port (single host only)
    node_rank: int = 0
    log_dir: Optional[str] = None
    lr_scaling: str = "none"                # toolkit.distributed.context.LR_SCALING
    timeout: Optional[float] = None         # seconds for the whole msrun job; None: no limit

    def resolved(self):
        """A copy with defaults that depend on other settings filled in."""
        d = asdict(self)
        if d["loss_scale"] is None:
            d["loss_scale"] = 1.0 if self.amp == "O0" else 1024.0
        if d["local_workers"] is None:
            d["local_workers"] = self.workers
        return TrainConfig(**d)

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def save(self, path):
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        d = read_json(path, ConfigError, missing="no saved configuration; nothing to resume",
                      what="the saved configuration")
        known = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or not {"data", "out"} <= set(d):
            raise ConfigError(f"{path}: not a training configuration")
        return cls(**{k: v for k, v in d.items() if k in known})

    def differences(self, other):
        """Names of settings that differ and matter for resuming."""
        a, b = asdict(self), asdict(other)
        return sorted(k for k in a if k not in RESUME_MAY_CHANGE and k != "out" and a[k] != b.get(k))
