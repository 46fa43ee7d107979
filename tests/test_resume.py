"""--resume: an interrupted run continued with the same seed ends with the same weights as an
uninterrupted one, and no interruption leaves a partial file behind."""
import json
import os
import signal
import subprocess
import sys
import time

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


# --- runs killed with SIGKILL at points read from the run folder, then resumed -------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD_ARGS = ["--mode", "head", "--width", str(WIDTH), "--image-size", "32", "--epochs", "2",
             "--batch-size", "4", "--seed", "7"]
OURS = {"run": ".state.json.k1ll3d_x.tmp", "checkpoints": ".best.ckpt.abcdefgh.tmp",
        "cache": ".0123abcd.npz.zz_9zz_9.tmp"}
# look-alikes: the last has our folder name pattern but not our content
NOT_OURS = {"run": "notes.tmp", "checkpoints": ".best.ckpt.tmp", "cache": "tmpmydata12/keep.txt"}


@pytest.fixture(scope="module")
def slow_scan_data(tmp_path_factory):
    """Large images (768 px), each copied ten times, so scanning (which decodes every image) and
    extraction take long enough to be caught from outside."""
    import shutil

    from toolkit.data.synthetic import make_dataset
    root = tmp_path_factory.mktemp("slow_scan") / "data"
    make_dataset(str(root), classes=2, per_class=6, size=768, seed=5, variant=1)
    for folder, _, files in list(os.walk(root)):
        for name in files:
            for i in range(9):
                shutil.copy(os.path.join(folder, name), os.path.join(folder, f"copy{i}_{name}"))
    return str(root)


def _cli_command(data, out, *extra):
    return [sys.executable, "-m", "toolkit.cli", "-q", "train-head", str(data), "--out", str(out), *extra]


def _cli_env():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _run_cli(*command):
    done = subprocess.run(list(command), env=_cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _kill_when(command, reached, what, timeout=300):
    """Start `command`, SIGKILL it as soon as `reached()` is true (polled every 2 ms)."""
    proc = subprocess.Popen(command, env=_cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while not reached():
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before {what}: "
                            f"{proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{what} not reached within {timeout} s")
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()


def _plant_leftovers(out):
    """Temporaries named as ours (as runtime.atomic and TemporaryDirectory name them) and look-alikes
    that are not, in the run folder, checkpoints/ and the cache."""
    folders = {"run": out, "checkpoints": out / "checkpoints", "cache": out / "cache"}
    for where, names in (("ours", OURS), ("not ours", NOT_OURS)):
        for key, name in names.items():
            path = folders[key] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(where)
    return folders


def _same_run(a, b):
    from toolkit.checkpoints import load_params
    for name in ("best.ckpt", "fused.ckpt", os.path.join("checkpoints", "state_0002.ckpt")):
        x, y = load_params(a / name), load_params(b / name)
        assert sorted(x) == sorted(y)
        worst = max(float(np.max(np.abs(x[k].astype(np.float64) - y[k]))) for k in x)
        assert worst == 0.0, f"{name}: resumed weights differ by {worst}"
    rows = [[{k: v for k, v in row.items() if k != "epoch_time_s"}
             for row in json.loads((d / "state.json").read_text())["history"]] for d in (a, b)]
    assert rows[0] == rows[1] and len(rows[0]) == 2


@pytest.fixture(scope="module")
def uninterrupted(slow_scan_data, pretrained_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "run"
    _run_cli(*_cli_command(slow_scan_data, out, "--pretrained", pretrained_ckpt, *HEAD_ARGS))
    return out


@pytest.mark.parametrize("point", ["scan", "extraction"])
def test_head_mode_killed_during_scan_or_extraction_resumes_to_the_same_run(
        point, slow_scan_data, pretrained_ckpt, uninterrupted, tmp_path):
    out = tmp_path / "run"
    export_dirs = lambda: [e for e in (out / "cache").glob("tmp*") if e.is_dir()]  # noqa: E731
    reached = {"scan": lambda: (out / "config.json").exists() and not (out / "model.json").exists(),
               "extraction": lambda: bool(export_dirs())}[point]
    _kill_when(_cli_command(slow_scan_data, out, "--pretrained", pretrained_ckpt, *HEAD_ARGS),
               reached, point)
    assert (out / "config.json").exists() and not (out / "state.json").exists()
    if point == "scan":
        assert not (out / "model.json").exists(), "killed after the scan, not during it"
    else:
        assert export_dirs(), "the export's temporary folder is left behind by the kill"
    folders = _plant_leftovers(out)

    resumed = _run_cli(*_cli_command(slow_scan_data, out, "--resume"))   # every setting from config.json
    assert "run folder" in resumed.stdout
    _same_run(uninterrupted, out)
    assert not export_dirs() or [e.name for e in export_dirs()] == ["tmpmydata12"]
    for key, name in OURS.items():
        assert not (folders[key] / name).exists(), f"{name} was left in {key}"
    for key, name in NOT_OURS.items():
        assert (folders[key] / name).read_text() == "not ours", f"{name} in {key} is not ours to delete"


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path):
    from toolkit.folder_lock import FolderBusyError, exclusive
    with exclusive(tmp_path, "run folder"):
        with pytest.raises(FolderBusyError, match="in use by another process"):
            with exclusive(tmp_path, "run folder"):
                pass
    with exclusive(tmp_path, "run folder"):        # released afterwards
        pass
