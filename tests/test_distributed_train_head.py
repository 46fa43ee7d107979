"""`toolkit train-head ... --workers 2` end to end through msrun, and its launch errors."""
import csv
import socket

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from runtime.mindspore_import import import_mindspore


def test_port_in_use_is_a_clear_cli_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = CliRunner().invoke(main, ["train-head", str(tmp_path), "--out", str(tmp_path / "run"), "--mode",
                                      "scratch", "--workers", "2", "--master-port", str(port),
                                      "--log-dir", str(tmp_path / "logs")])
    assert r.exit_code == 1
    assert f"master port {port} on 127.0.0.1 is already in use" in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.mindspore
def test_scratch_training_on_two_cpu_workers(tmp_path):
    pytest.importorskip("mindspore")
    from toolkit.distributed.launch import free_port
    runner = CliRunner()
    data, run, logs = tmp_path / "data", tmp_path / "run", tmp_path / "logs"
    r = runner.invoke(main, ["make-dataset", str(data), "--classes", "3", "--per-class", "10", "--size", "48"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["train-head", str(data), "--out", str(run), "--mode", "scratch", "--workers", "2",
                             "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--width", "0.35",
                             "--master-port", str(free_port()), "--log-dir", str(logs)])
    assert r.exit_code == 0, r.output
    assert "distributed run finished" in r.output
    for name in ("best.ckpt", "model.json", "history.csv", "config.json"):
        assert (run / name).is_file(), name
    with open(run / "history.csv") as f:
        assert len(list(csv.DictReader(f))) == 1
    for rank in (0, 1):                     # every rank trained the epoch and kept its log
        assert "epoch 1/1" in (logs / f"worker_{rank}.log").read_text()
    assert (logs / "scheduler.log").is_file() and (logs / "msrun.log").is_file()


def _load(path):
    ms = import_mindspore()
    return {k: v.asnumpy() for k, v in ms.load_checkpoint(str(path)).items()}


def _epoch_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("epoch ") and "loss" in ln]


@pytest.mark.slow
@pytest.mark.mindspore
def test_head_mode_on_two_cpu_workers_equals_one_process(tmp_path):
    """Head mode shards feature extraction over 2 ranks and gathers it, then trains the head on every
    rank: the cache and best.ckpt equal a 1-process run's within float32 noise (measured: identical),
    both ranks train the same head, only rank 0 writes, and a second run hits the cache on all ranks."""
    pytest.importorskip("mindspore")
    import numpy as np

    from toolkit.checkpoints import save_params
    from toolkit.models import build
    from train_fixtures import lively
    runner = CliRunner()
    data, pre = tmp_path / "data", tmp_path / "pre.ckpt"
    r = runner.invoke(main, ["make-dataset", str(data), "--classes", "2", "--per-class", "10", "--size", "48"])
    assert r.exit_code == 0, r.output
    save_params(lively(build("mobilenet_v2", 3, width=0.35)), str(pre))   # O(1) features, not ~1e-8
    common = [str(data), "--mode", "head", "--pretrained", str(pre), "--epochs", "2", "--batch-size", "4",
              "--image-size", "32", "--width", "0.35", "--lr-max", "0.5"]
    one, two, logs = tmp_path / "one", tmp_path / "two", tmp_path / "logs"
    r = runner.invoke(main, ["train-head", "--out", str(one), *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["train-head", "--out", str(two), *common, "--workers", "2", "--log-dir", str(logs)])
    assert r.exit_code == 0, r.output

    (npz_one,), (npz_two,) = sorted(one.glob("cache/*.npz")), sorted(two.glob("cache/*.npz"))
    assert npz_one.name == npz_two.name                     # same cache key: same backbone, data, transform
    with np.load(npz_one) as a, np.load(npz_two) as b:
        assert a["train_x"].shape == (16, 1280) and np.abs(a["train_x"]).max() > 0.1
        for k in ("train_x", "val_x"):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-6, atol=1e-7)
        for k in ("train_y", "val_y"):
            np.testing.assert_array_equal(b[k], a[k])
    best_one, best_two = _load(one / "best.ckpt"), _load(two / "best.ckpt")
    assert best_one.keys() == best_two.keys()
    for k in best_one:
        np.testing.assert_allclose(best_two[k], best_one[k], rtol=1e-6, atol=1e-7, err_msg=k)
    assert (one / "history.csv").read_text().splitlines()[1].split(",")[:4] == \
        (two / "history.csv").read_text().splitlines()[1].split(",")[:4]
    rank_logs = [(logs / f"worker_{rank}.log").read_text() for rank in (0, 1)]
    losses = [[ln.split("val_acc")[0] for ln in _epoch_lines(t)] for t in rank_logs]
    assert len(losses[0]) == 2 and losses[0] == losses[1], "every rank trains the same head"
    assert len(list(two.glob("cache/*"))) == 2, "only rank 0 writes: one .npz and one .json"

    r = runner.invoke(main, ["train-head", "--out", str(two), *common, "--workers", "2", "--log-dir", str(logs),
                             "--overwrite"])
    assert r.exit_code == 0, r.output
    for rank in (0, 1):
        assert "features: cache hit" in (logs / f"worker_{rank}.log").read_text()
    again = _load(two / "best.ckpt")
    for k in best_one:
        np.testing.assert_allclose(again[k], best_one[k], rtol=1e-6, atol=1e-7, err_msg=k)
