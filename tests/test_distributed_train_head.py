"""`toolkit train-head ... --workers 2` end to end through msrun, and its launch errors."""
import csv
import socket

import pytest
from click.testing import CliRunner

from toolkit.cli import main


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
