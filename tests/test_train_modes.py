"""train-head: every mode prepares the network as specified and writes a complete run folder."""
import csv
import logging
import json
import os

import numpy as np
import pytest

from toolkit.train.modes import MODES
from train_fixtures import SIZE, TINY, WIDTH, arch_args, arch_checkpoint, invoke, run_cli_ok

pytestmark = pytest.mark.mindspore

RUN_FILES = ("best.ckpt", "head.ckpt", "fused.ckpt", "model.json", "config.json", "history.csv")


def _prepared(mode, data, ckpt, tmp_path, arch="mobilenet_v2"):
    """The network and training task a mode builds, without running a step."""
    from toolkit.data.folder import scan_dataset
    from toolkit.train.config import TrainConfig
    from toolkit.train.features import pooled_features
    from toolkit.train.loop import no_progress
    from toolkit.train.setup import build_network, training_context
    from toolkit.models import ARCHS
    from toolkit.train.tasks import TASKS
    spec = MODES[mode]
    cfg = TrainConfig(data=data, out=str(tmp_path), mode=mode, arch=arch, width=ARCHS[arch].test_width,
                      image_size=32,
                      epochs=1, batch_size=4, pretrained=None if mode == "scratch" else ckpt).resolved()
    with training_context("cpu"):
        index = scan_dataset(data)
        net, report = build_network(cfg, index.num_classes, spec)
        if spec.cached_features:
            arrays, _ = pooled_features(cfg, net, index, str(tmp_path / "cache"), no_progress)
            task = TASKS["features"](cfg, net, arrays)
        else:
            task = TASKS["network"](cfg, net, index, spec)
    return net, report, task


@pytest.mark.parametrize("mode", sorted(MODES))
def test_mode_loads_freezes_and_trains_what_it_says(mode, tiny_data, arch_ckpt, tmp_path):
    """For every registered arch, from a ModelZoo-style checkpoint with optimizer state."""
    from toolkit.checkpoints import load_params
    arch, ckpt_path = arch_ckpt
    spec = MODES[mode]
    net, report, task = _prepared(mode, tiny_data, ckpt_path, tmp_path, arch)
    optimized = {p.name for p in task.state_cell.optimizer.parameters}
    head = {p.name for p in net.head.trainable_params()}
    backbone = {p.name for p in net.backbone.trainable_params()}
    if spec.freeze_backbone:
        assert optimized == head and len(head) == 2
        assert not backbone, "a frozen backbone has no trainable parameter"
    else:
        assert optimized == {p.name for p in net.trainable_params()} and head < optimized
    ckpt = load_params(ckpt_path)
    first = next(iter(net.parameters_dict()))
    loaded = np.array_equal(net.parameters_dict()[first].asnumpy(), ckpt[first])
    assert loaded == (spec.pretrained != "forbidden")
    if report is not None:      # the 3-class head never fits the 2-class dataset
        assert {k for k, _ in report.skipped} >= head | {"moments." + n for n in head}
        assert head <= set(report.missing)
        assert ("learning_rate", "training state") in report.skipped


@pytest.mark.parametrize("mode", sorted(m for m in MODES if MODES[m].pretrained != "optional"))
def test_pretrained_rule_is_a_usage_error(mode, tiny_data, pretrained_ckpt, tmp_path):
    args = [] if MODES[mode].pretrained == "required" else ["--pretrained", pretrained_ckpt]
    result = invoke("train-head", tiny_data, "--out", tmp_path / "r", "--mode", mode, *args, *TINY)
    assert result.exit_code == 2 and "--pretrained" in result.output
    assert not os.path.exists(tmp_path / "r")


def _check_run_dir(out, classes, epochs):
    for name in RUN_FILES:
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    for r in rows:
        assert np.isfinite(float(r["train_loss"])) and 0 <= float(r["val_acc"]) <= 1
        assert float(r["lr"]) >= 0 and float(r["epoch_time_s"]) >= 0
    with open(os.path.join(out, "model.json")) as f:
        meta = json.load(f)
    assert meta["class_names"] == classes and meta["width"] == WIDTH and meta["image_size"] == 32
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["epochs"] == epochs and cfg["loss_scale"] == 1.0 and os.path.isabs(cfg["data"])
    leftovers = [f for d, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]
    assert not leftovers


def test_head_mode_writes_the_run_folder(head_run, tiny_data):
    out, output = head_run
    _check_run_dir(out, sorted(os.listdir(os.path.join(tiny_data, "train"))), 2)
    assert "onnxruntime vs MindSpore max abs diff" in output and "best val_acc" in output
    for kind in ("best", "fused"):
        full = os.path.getsize(os.path.join(out, f"{kind}.ckpt"))
        half = os.path.getsize(os.path.join(out, f"{kind}_fp16.ckpt"))
        assert 0.45 < half / full < 0.56


def test_existing_run_is_not_overwritten_silently(head_run, tiny_data, pretrained_ckpt):
    out, _ = head_run
    result = invoke("train-head", tiny_data, "--out", out, "--mode", "head", "--pretrained",
                    pretrained_ckpt, *TINY)
    assert result.exit_code != 0 and "--resume" in result.output and "--overwrite" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(m for m in MODES if not MODES[m].cached_features))
def test_network_modes_write_the_run_folder(mode, tiny_data, pretrained_ckpt, tmp_path):
    out = str(tmp_path / mode)
    args = [] if mode == "scratch" else ["--pretrained", pretrained_ckpt]
    run_cli_ok(tiny_data, "--out", out, "--mode", mode, *args, *TINY, "--epochs", "2",
               "--batch-size", "4", "--keep-max", "1")
    _check_run_dir(out, sorted(os.listdir(os.path.join(tiny_data, "train"))), 2)
    assert sorted(f for f in os.listdir(os.path.join(out, "checkpoints")) if f.startswith("epoch_")) \
        == ["epoch_0002.ckpt"], "--keep-max 1 keeps only the newest periodic checkpoint"


@pytest.mark.parametrize("mode", ["head", "finetune"])
def test_resnet50_tutorial_workflow_from_a_modelzoo_checkpoint(mode, tiny_data, tmp_path_factory,
                                                               tmp_path, caplog):
    """The tutorial's two ways (train the head / fine-tune all) with --arch resnet50 from a checkpoint
    with moments.*: the dropped keys are reported as the tutorial prints them, the run is complete."""
    arch = "resnet50"
    ckpt = arch_checkpoint(arch, tmp_path_factory)
    out = str(tmp_path / mode)
    caplog.set_level(logging.INFO, logger="toolkit.train.setup")
    run_cli_ok(tiny_data, "--out", out, "--mode", mode, "--pretrained", ckpt, *arch_args(arch),
               "--epochs", "1", "--batch-size", "4", "--keep-max", "1")
    deleted = [r.getMessage().split("Delete parameter from checkpoint:  ")[1].split()[0]
               for r in caplog.records if "Delete parameter" in r.getMessage()]
    assert deleted == ["end_point.weight", "end_point.bias", "moments.end_point.weight",
                       "moments.end_point.bias"]
    with open(os.path.join(out, "model.json")) as f:
        meta = json.load(f)
    assert meta["arch"] == "resnet50" and meta["image_size"] == SIZE
    for name in RUN_FILES:
        assert os.path.isfile(os.path.join(out, name)), name
