"""Everything a run needs before its first step: device context, network, loss and optimizer.

The device is checked before MindSpore is pointed at it, so an absent GPU or Ascend is a clear
error naming what is available instead of a backend traceback (never a silent CPU fallback).
"""
import contextlib
import logging
import random

import numpy as np

from runtime.errors import EngineUnavailableError
from runtime.mindspore_import import from_mindspore, graph_dumps_in, import_mindspore

log = logging.getLogger(__name__)

NO_DECAY = (".gamma", ".beta", ".bias")


def check_device(device):
    from runtime.engines.devices import available_devices, probe
    ok, reason = probe("mindspore", device)
    if not ok:
        raise EngineUnavailableError(f"MindSpore training on {device}",
                                     available_devices("mindspore"), reason)


@contextlib.contextmanager
def training_context(device, device_id=0, graph_dump_dir=None):
    """GRAPH_MODE on the requested device (a compiled step is ~10x faster than PYNATIVE on CPU);
    the previous execution mode is restored afterwards for code sharing the process. MindSpore's
    compile-failure dumps go to `graph_dump_dir` (the run's logs/), never the working folder."""
    ms = import_mindspore()
    check_device(device)
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    from runtime.engines.mindspore_engine import select_device
    select_device(device, device_id, what=f"MindSpore training on {device}")
    try:
        with graph_dumps_in(graph_dump_dir) if graph_dump_dir else contextlib.nullcontext():
            yield
    finally:
        ms.set_context(mode=previous)


def seed_everything(seed, epoch):
    """Every random source as a function of (seed, epoch) only, so a resumed epoch equals the original."""
    ms = import_mindspore()
    value = (int(seed) * 100003 + int(epoch)) % (2 ** 31 - 1)
    random.seed(value)
    np.random.seed(value)
    ms.set_seed(value)
    return value


def build_network(cfg, num_classes, spec):
    """The full network with pretrained weights loaded as the mode asks; returns (net, LoadReport|None)."""
    ms = import_mindspore()

    from toolkit import checkpoints, models
    ms.set_seed(int(cfg.seed))         # random initialisation is a function of the seed
    np.random.seed(int(cfg.seed))      # the MobileNetV2 conv init draws from NumPy
    net = models.build(cfg.arch, num_classes, width=cfg.width)
    report = None
    if cfg.pretrained:
        head_prefix = models.ARCHS[cfg.arch].head_prefix
        report = checkpoints.load_pretrained(net, cfg.pretrained, mode=spec.load, head_prefix=head_prefix)
        for line in report.lines():
            log.info("pretrained %s: %s", cfg.pretrained, line)
    if spec.freeze_backbone:
        for p in net.backbone.get_parameters():
            p.requires_grad = False
    return net, report


def make_loss(label_smoothing):
    nn = from_mindspore("mindspore", "nn")
    return nn.CrossEntropyLoss(label_smoothing=float(label_smoothing))


def make_optimizer(params, lrs, cfg):
    """Momentum over `params` with the per-step schedule; the fixed loss scale is undone here."""
    Tensor, nn = from_mindspore("mindspore", "Tensor", "nn")
    params = list(params)
    # As in the ModelZoo: no weight decay on BatchNorm gamma/beta and biases.
    decay = [p for p in params if not p.name.endswith(NO_DECAY)]
    plain = [p for p in params if p.name.endswith(NO_DECAY)]
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": plain, "weight_decay": 0.0}) if g["params"]]
    groups.append({"order_params": params})
    return nn.Momentum(groups, learning_rate=Tensor(lrs), momentum=cfg.momentum,
                       loss_scale=float(cfg.loss_scale))
