"""The resolved training configuration, written to RUN_DIR/config.json, and the `train-head` options.

Every value that influences the weights lives here, so `--resume` can compare the saved
configuration with the new command line and refuse a run that would not continue the same training.
Each setting is declared once, as a field whose metadata carries its command-line type and help
(`setting`); `toolkit train-head` builds its options from these fields (`cli_options`), and whether
a setting may change on `--resume` is part of the same declaration.
"""
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Optional

import click

from runtime.atomic import atomic_write_text
from runtime.errors import ToolkitError
from runtime.jsonfile import read_json
from toolkit.distributed.context import LR_SCALING
from toolkit.models import ARCHS

from .modes import MODES

AMP_LEVELS = ("O0", "O2", "O3")
DEVICES = ("cpu", "gpu", "ascend")
EXTRACTORS = ("auto", "onnxruntime", "mindspore")


class ConfigError(ToolkitError):
    """The configuration is inconsistent, or does not match the run being resumed."""


def setting(default, type=None, help=None, resume_may_change=False, inherit=True, required=False):
    """A TrainConfig field and its `train-head` option.

    type/help: the click option's type and help text (a None default is explained in `help`);
    resume_may_change: the setting may differ between an interrupted run and its resumption without
    changing the trajectory of the weights; inherit: on --resume an option not given is taken from
    the saved config.json (False for paths given now and launch details of one run)."""
    return field(default=default, metadata={"type": type, "help": help, "required": required,
                                            "resume_may_change": resume_may_change,
                                            "inherit": inherit})


@dataclass
class TrainConfig:
    data: str = setting(MISSING, click.Path(exists=True, file_okay=False), inherit=False)
    out: str = setting(MISSING, click.Path(file_okay=False), "Run folder to write.", inherit=False,
                       required=True)
    mode: str = setting("head", click.Choice(sorted(MODES)),
                        "; ".join(f"{m.name}: {m.help}" for m in MODES.values()))
    pretrained: Optional[str] = setting(
        None, click.Path(exists=True, dir_okay=False),
        "Checkpoint to start from (ModelZoo names; backbone-only or full by mode).")
    arch: str = setting("mobilenet_v2", click.Choice(sorted(ARCHS)))
    width: float = setting(1.0, click.FloatRange(0.1, 4.0))
    image_size: int = setting(224, click.IntRange(16, 1024))
    epochs: int = setting(10, click.IntRange(1, 100000))
    batch_size: int = setting(
        32, click.IntRange(1, 65536),
        "Per device: with --workers N each rank feeds this many images per step, so the global "
        "batch is N x this (head mode trains the head once, on all features, with this batch).")
    lr_max: float = setting(0.05, click.FloatRange(0, min_open=True),
                            "Peak learning rate, as given unless --lr-scaling says otherwise.")
    lr_end: float = setting(0.0, click.FloatRange(0))
    lr_scaling: str = setting(
        "none", click.Choice(sorted(LR_SCALING)),
        "With --workers N: 'linear' multiplies --lr-max and --lr-end by N (the global batch grew N "
        "times); 'none' keeps them. Not for head mode.")
    warmup_epochs: float = setting(0.0, click.FloatRange(0))
    momentum: float = setting(0.9, click.FloatRange(0, 1))
    weight_decay: float = setting(4e-5, click.FloatRange(0))
    label_smoothing: float = setting(0.1, click.FloatRange(0, 1, max_open=True))
    loss_scale: Optional[float] = setting(None, click.FloatRange(0, min_open=True),
                                          "Fixed loss scale [default: 1 with O0, 1024 with O2/O3].")
    amp: str = setting("O0", click.Choice(AMP_LEVELS),
                       "Mixed precision: O2/O3 for GPU and Ascend (O2 also runs on CPU).")
    device: str = setting("cpu", click.Choice(DEVICES))
    device_id: int = setting(0, click.IntRange(0), resume_may_change=True)
    seed: int = setting(0, click.IntRange(0, 2 ** 31 - 1))
    save_every: int = setting(1, click.IntRange(0), "Periodic checkpoint every N epochs (0: none).",
                              resume_may_change=True)
    keep_max: int = setting(5, click.IntRange(0), "Periodic checkpoints kept.", resume_may_change=True)
    save_fp16: bool = setting(False, bool, "Also write fp16 checkpoints (half the size).",
                              resume_may_change=True)
    val_fraction: float = setting(0.2, click.FloatRange(0, 1, max_open=True),
                                  "Val split when DATA has no val/ folder.")
    num_workers: int = setting(1, click.IntRange(1, 64),
                               "Data pipeline workers (1 keeps augmentation exactly reproducible).",
                               resume_may_change=True)
    extractor: str = setting("auto", click.Choice(EXTRACTORS),
                             "Head mode feature engine (auto: onnxruntime on CPU, checked against "
                             "MindSpore).", resume_may_change=True)
    cache_dir: Optional[str] = setting(None, click.Path(file_okay=False),
                                       "Feature cache folder [default: RUN_DIR/cache].",
                                       resume_may_change=True)
    workers: int = setting(1, click.IntRange(1, 4096), "Data-parallel processes in total (through msrun).")
    local_workers: Optional[int] = setting(None, click.IntRange(1, 4096),
                                           "Processes on this host [default: --workers].",
                                           resume_may_change=True)
    master_addr: str = setting("127.0.0.1", str, resume_may_change=True)
    # A saved master port would be busy or stale; unset means a fresh free one (single host only).
    master_port: Optional[int] = setting(
        None, click.IntRange(1024, 65535),
        "msrun's scheduler port [default: a free one; a multi-host run must give one].",
        resume_may_change=True, inherit=False)
    node_rank: int = setting(0, click.IntRange(0), resume_may_change=True)
    log_dir: Optional[str] = setting(None, click.Path(file_okay=False), "Per-rank logs [RUN_DIR/logs].",
                                     resume_may_change=True)
    timeout: Optional[float] = setting(
        None, click.FloatRange(0, min_open=True),
        "Stop every process of a --workers run after this many seconds [default: no limit].",
        resume_may_change=True, inherit=False)

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


# Settings that may change between an interrupted run and its resumption, and settings that --resume
# does not take from the saved configuration: both read from the field declarations above.
RESUME_MAY_CHANGE = frozenset(f.name for f in fields(TrainConfig) if f.metadata["resume_may_change"])
NOT_INHERITED = frozenset(f.name for f in fields(TrainConfig) if not f.metadata["inherit"])


def cli_options():
    """The click parameters of `train-head` for every TrainConfig field, in declaration order:
    DATA is the argument, the others options with the field's default, type and help."""
    params = []
    for f in fields(TrainConfig):
        meta = f.metadata
        if f.default is MISSING and not meta["required"]:
            params.append(click.Argument([f.name], type=meta["type"]))
            continue
        flag = "--" + f.name.replace("_", "-")
        if meta["type"] is bool:
            params.append(click.Option([flag], is_flag=True, default=f.default, help=meta["help"]))
            continue
        default = None if f.default is MISSING else f.default
        params.append(click.Option([flag], type=meta["type"], default=default, required=meta["required"],
                                   show_default=default is not None, help=meta["help"]))
    return params
