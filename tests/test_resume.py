"""--resume: an interrupted run continued with the same seed ends with the same weights as an
uninterrupted one, and no interruption leaves a partial file behind."""
import json
import os

import numpy as np
import pytest

from train_fixtures import TINY, WIDTH, invoke
from runtime.mindspore_import import import_mindspore

pytestmark = pytest.mark.mindspore


def _cfg(data, out, mode, ckpt, epochs=2):
    from toolkit.train.config import TrainConfig
    return TrainConfig(data=data, out=str(out), mode=mode, width=WIDTH, image_size=32, epochs=epochs,
                       batch_size=4, seed=7, pretrained=None if mode == "scratch" else ckpt,
                       cache_dir=str(out.parent / "cache"))


def _interrupted_equals_uninterrupted(mode, data, ckpt, tmp_path):
    from toolkit.checkpoints import load_params
    from toolkit.train.loop import train
    whole = train(_cfg(data, tmp_path / "whole", mode, ckpt))
    part = train(_cfg(data, tmp_path / "split", mode, ckpt), stop_after=1)
    assert (part.epochs_done, part.finished) == (1, False)
    assert not os.path.exists(tmp_path / "split" / "fused.ckpt"), "an unfinished run is not finalised"
    resumed = train(_cfg(data, tmp_path / "split", mode, ckpt), resume=True)
    assert resumed.finished
    strip = [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in whole.history]
    assert [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in resumed.history] == strip
    for name in ("best.ckpt", os.path.join("checkpoints", "state_0002.ckpt")):
        a = load_params(tmp_path / "whole" / name)
        b = load_params(tmp_path / "split" / name)
        assert sorted(a) == sorted(b)
        worst = max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)
        assert worst == 0.0, f"{name}: resumed weights differ by {worst}"


def test_head_mode_resume_equals_uninterrupted(tiny_data, pretrained_ckpt, tmp_path):
    _interrupted_equals_uninterrupted("head", tiny_data, pretrained_ckpt, tmp_path)


@pytest.mark.slow
def test_scratch_resume_equals_uninterrupted(tiny_data, pretrained_ckpt, tmp_path):
    _interrupted_equals_uninterrupted("scratch", tiny_data, pretrained_ckpt, tmp_path)


def test_resume_takes_the_saved_settings_and_refuses_changed_ones(head_run, tiny_data, tmp_path):
    out, _ = head_run
    changed = invoke("train-head", tiny_data, "--out", out, "--resume", "--lr-max", "0.01")
    assert changed.exit_code != 0 and "lr_max" in changed.output
    same = invoke("train-head", tiny_data, "--out", out, "--resume")   # all from config.json
    assert same.exit_code == 0, same.output
    nothing = invoke("train-head", tiny_data, "--out", tmp_path / "empty", "--resume", *TINY)
    assert nothing.exit_code != 0 and "config.json" in nothing.output


def test_a_save_killed_midway_leaves_no_partial_file(tmp_path, monkeypatch):
    ms = import_mindspore()

    from toolkit.run_dir import RunDir
    from toolkit.train import resume
    run = RunDir(tmp_path / "run").create()
    net = ms.nn.Dense(4, 2)
    resume.save_state(run, net, 1, [{"epoch": 1}], {"acc": 0.5, "epoch": 1}, 0)
    before = open(run.state_json).read()
    real = ms.save_checkpoint

    def dies_while_writing(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ms, "save_checkpoint", dies_while_writing)
    with pytest.raises(KeyboardInterrupt):
        resume.save_state(run, net, 2, [{"epoch": 1}, {"epoch": 2}], {"acc": 0.5, "epoch": 1}, 0)
    monkeypatch.setattr(ms, "save_checkpoint", real)
    assert open(run.state_json).read() == before
    files = sorted(os.listdir(run.checkpoints_dir))
    assert files == ["state_0001.ckpt"], files
    assert json.loads(before)["epoch"] == 1
