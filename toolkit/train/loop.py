"""`train(cfg)`: the epoch loop shared by every mode.

Per epoch: re-seed from (seed, epoch), run the task's steps under a progress bar, evaluate, append a
history row (train loss, val accuracy, learning rate, epoch time), keep best.ckpt by val accuracy,
write periodic checkpoints up to keep_max, then commit the resume point. Only rank 0 writes.

Under --workers (msrun): finetune, incremental and scratch train data-parallel on per-rank shards
(per-device batch, gradients averaged by MindSpore); head mode shards only the feature extraction,
then trains the head identically on every rank (see features.py and `_head_alone`).
"""
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from runtime.mindspore_import import from_mindspore, import_mindspore

from .config import ConfigError, TrainConfig
from .modes import MODES, check_pretrained

log = logging.getLogger(__name__)

# Files of a previous run that --overwrite removes (the feature cache is kept: it validates itself).
RUN_FILES = ("best_ckpt", "head_ckpt", "fused_ckpt", "best_fp16_ckpt", "fused_fp16_ckpt",
             "model_json", "config_json", "history_csv", "state_json")


@dataclass
class TrainResult:
    run_dir: str
    epochs_done: int
    finished: bool
    best_acc: Optional[float]
    best_epoch: Optional[int]
    history: List[dict]
    features: Dict = field(default_factory=dict)
    outputs: Dict = field(default_factory=dict)


def no_progress(iterable=None, length=None, label=""):
    return contextlib.nullcontext(iterable)


def _prepare_run_dir(run, cfg, resume, overwrite):
    if resume:
        saved = TrainConfig.load(run.config_json).resolved()
        diff = saved.differences(cfg)
        if diff:
            raise ConfigError(f"--resume: settings differ from the run in {run.path}: "
                              + ", ".join(f"{k} ({getattr(saved, k)!r} -> {getattr(cfg, k)!r})"
                                          for k in diff))
        return
    if os.path.exists(run.state_json) or os.path.exists(run.best_ckpt):
        if not overwrite:
            raise ConfigError(f"{run.path} already holds a run; pass --resume to continue it or "
                              f"--overwrite to start again (the feature cache is kept)")
        for name in RUN_FILES:
            path = getattr(run, name)
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(run.checkpoints_dir, ignore_errors=True)


def _distributed(cfg):
    """(DistInfo, shard kwargs for the data loader); a single process's info and {} without --workers."""
    from toolkit.distributed.context import DistInfo, init_data_parallel
    if cfg.workers <= 1:
        return DistInfo.single(cfg.device), {}
    info = init_data_parallel(cfg.device)
    return info, {"num_shards": info.size, "shard_id": info.rank}


def _head_alone():
    """Head mode under --workers: after the sharded extraction the tiny head trains identically on every
    rank from the gathered features (same seed, same batches), so no gradient all-reduce is wanted:
    back to stand-alone parallel mode, where TrainOneStepCell inserts none."""
    ms = import_mindspore()
    ParallelMode = from_mindspore("mindspore.context", "ParallelMode")
    ms.set_auto_parallel_context(parallel_mode=ParallelMode.STAND_ALONE)


def _check(cfg, spec):
    """Refuse an inconsistent configuration, or an absent device, before anything is written."""
    from .amp import check_level
    from .setup import check_device
    check_device(cfg.device)
    problem = check_pretrained(spec, cfg.pretrained)
    if problem:
        raise ConfigError(problem)
    check_level(cfg.amp, cfg.device)
    if spec.cached_features and cfg.lr_scaling != "none":
        raise ConfigError("--mode head trains the head once on all features with --batch-size; "
                          "there is no global batch to scale the learning rate for (--lr-scaling none)")


@contextlib.contextmanager
def _claimed(run, cfg, resume, overwrite):
    """The writing process holds the run folder alone while it trains. First of all it removes what
    an interrupted run left (temporaries), checks the folder against resume/overwrite and saves
    the configuration, so a run killed at any later point (scan, extraction, an epoch) resumes."""
    from toolkit.folder_lock import exclusive
    if resume and not os.path.exists(run.config_json):
        TrainConfig.load(run.config_json)       # raises: nothing to resume (and creates nothing)
    with exclusive(run.path, "run folder"):
        run.remove_leftovers()
        _prepare_run_dir(run, cfg, resume, overwrite)
        run.create()
        cfg.save(run.config_json)
        yield


def _resume_point(run, resume):
    """The saved state to continue from; None to start at the first epoch (no --resume, or a run
    interrupted before it completed one)."""
    from . import resume as resume_mod
    if not resume:
        return None
    if not os.path.exists(run.state_json):
        log.info("%s: no completed epoch yet; starting from the first", run.path)
        return None
    return resume_mod.load_state(run)


def train(cfg, resume=False, overwrite=False, stop_after=None, progress=no_progress, on_epoch=None):
    """Run (or continue) training as configured; `stop_after` ends the process's work after that
    many completed epochs (as an interruption would) without finalising."""
    from toolkit.run_dir import RunDir

    from .setup import training_context
    cfg = cfg.resolved()
    _check(cfg, MODES[cfg.mode])
    run = RunDir(cfg.out)
    with contextlib.ExitStack() as held:
        if cfg.workers <= 1:        # the only process, so the writer: claim the folder at once
            held.enter_context(_claimed(run, cfg, resume, overwrite))
        held.enter_context(training_context(cfg.device, cfg.device_id, graph_dump_dir=run.logs_dir))
        return _train(cfg, run, resume, overwrite, stop_after, progress, on_epoch, held)


def _train(cfg, run, resume, overwrite, stop_after, progress, on_epoch, held):
    from toolkit import models
    from toolkit.data.folder import scan_dataset

    from . import resume as resume_mod
    from .features import pooled_features
    from .outputs import finalize, model_meta
    from .setup import build_network, seed_everything
    from .tasks import TASKS

    spec = MODES[cfg.mode]
    dist, shard = _distributed(cfg)
    writer = dist.is_rank0
    if writer and cfg.workers > 1:      # rank 0 of a data-parallel run writes
        held.enter_context(_claimed(run, cfg, resume, overwrite))
    state = _resume_point(run, resume)

    index = scan_dataset(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed)
    for line in index.report():
        log.info("%s", line)
    if not index.train:
        raise ConfigError(f"{cfg.data}: no training images")
    if writer:
        model_meta(cfg, index.classes).save(run.model_json)
    net, _ = build_network(cfg, index.num_classes, spec)
    features = {}
    if spec.cached_features:
        arrays, features = pooled_features(cfg, net, index, cfg.cache_dir or run.cache_dir, progress,
                                           dist)
        if dist.size > 1:
            _head_alone()
        task = TASKS["features"](cfg, net, arrays)
    else:
        task = TASKS["network"](cfg, net, index, spec, shard)

    history, best, start = [], {"acc": None, "epoch": None}, 0
    if state is not None:
        if state.get("seed") != cfg.seed:
            raise ConfigError(f"--resume with seed {cfg.seed}, but the run used {state.get('seed')}")
        resume_mod.restore(task.state_cell, state)
        history, best, start = state["history"], state["best"], state["epoch"]
        log.info("resuming %s after epoch %d of %d", run.path, start, cfg.epochs)

    steps = task.steps_per_epoch
    done_this_run = 0
    for epoch in range(start, cfg.epochs):
        if stop_after is not None and done_this_run >= stop_after:
            break
        seed_everything(cfg.seed, epoch)
        task.start_epoch()
        t0 = time.perf_counter()
        losses = []
        with progress(task.batches(epoch), length=steps,
                      label=f"epoch {epoch + 1}/{cfg.epochs}") as bar:
            for x, y in bar:
                losses.append(task.step(x, y))
        train_time = time.perf_counter() - t0
        acc = task.evaluate() if writer else None
        row = {"epoch": epoch + 1, "train_loss": round(float(np.mean(losses)), 6),
               "val_acc": None if acc is None else round(acc, 6),
               "lr": float(task.lrs[min((epoch + 1) * steps, len(task.lrs)) - 1]),
               "epoch_time_s": round(time.perf_counter() - t0, 3)}
        if not np.isfinite(row["train_loss"]):
            raise ConfigError(f"epoch {epoch + 1}: training loss is not finite; lower --lr-max "
                              f"or --loss-scale")
        history.append(row)
        if writer:
            improved = best["acc"] is None or (acc is not None and acc > best["acc"])
            if improved:
                from toolkit.checkpoints import save_params
                save_params(net, run.best_ckpt)
                best = {"acc": acc, "epoch": epoch + 1}
            if cfg.save_every > 0 and (epoch + 1) % cfg.save_every == 0:
                resume_mod.save_periodic(run, net, epoch + 1, cfg.keep_max)
            resume_mod.write_history(run, history)
            resume_mod.save_state(run, task.state_cell, epoch + 1, history, best, cfg.seed)
        done_this_run += 1
        log.debug("epoch %d train %.2f s", epoch + 1, train_time)
        if on_epoch:
            on_epoch(row)

    epochs_done = history[-1]["epoch"] if history else 0
    finished = epochs_done >= cfg.epochs
    outputs = {}
    if finished and writer:
        outputs = finalize(run, net, models.ARCHS[cfg.arch].head_prefix, cfg.save_fp16)
    return TrainResult(run.path, epochs_done, finished, best["acc"], best["epoch"], history,
                       features, outputs)
