"""Launching through msrun: the command line, the port check, and failures that never hang."""
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from toolkit.distributed import launch as launch_mod
from toolkit.distributed.errors import DistributedError
from toolkit.distributed.launch import (check_port_free, free_port, inside_worker, launch, msrun_command,
                                        worker_script_path)

pytestmark = pytest.mark.mindspore   # msrun ships with mindspore


def _leftovers(marker):
    import psutil
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        if any(marker in part for part in (p.info["cmdline"] or [])):
            found.append(p.info["pid"])
    return found


def _script(tmp_path, body):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_msrun_command_line(tmp_path):
    cmd = msrun_command(["train.py", "--epochs", 2], 4, 2, "10.0.0.1", 29500, 1, str(tmp_path), True, 90)
    assert os.path.basename(cmd[0]) == "msrun"
    assert cmd[1:] == ["--worker_num=4", "--local_worker_num=2", "--master_addr=10.0.0.1", "--master_port=29500",
                       "--node_rank=1", f"--log_dir={tmp_path}", "--join=True", "--cluster_time_out=90",
                       "--tail_worker_log=2", "train.py", "--epochs", "2"]


def test_msrun_is_the_one_beside_the_interpreter():
    assert launch_mod.find_msrun() == os.path.join(os.path.dirname(sys.executable), "msrun")


@pytest.mark.parametrize("workers, local, node_rank, problem", [
    (0, None, 0, "workers must be >= 1"), (4, 3, 0, "cannot be split evenly"),
    (2, 4, 0, "local workers must be in 1..2"), (4, 2, 2, "node rank must be in 0..1")])
def test_bad_layouts(workers, local, node_rank, problem):
    with pytest.raises(DistributedError, match=problem):
        msrun_command(["x.py"], workers, local, "127.0.0.1", 29500, node_rank, "logs")


def test_port_in_use_is_a_clear_error_before_anything_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(DistributedError, match=f"master port {port} on 127.0.0.1 is already in use"):
            launch(["x.py"], 2, master_port=port, log_dir=str(tmp_path / "logs"))
    assert not (tmp_path / "logs" / "msrun.log").exists()
    check_port_free("127.0.0.1", port)         # free again once closed
    check_port_free("127.0.0.1", free_port())


def test_multi_host_needs_an_explicit_port(tmp_path):
    with pytest.raises(DistributedError, match="multi-host run needs an explicit master port"):
        launch(["x.py"], 4, local_workers=2, node_rank=1, master_addr="192.0.2.1", log_dir=str(tmp_path))


def test_port_range_and_remote_master():
    with pytest.raises(DistributedError, match="outside 1024..65535"):
        check_port_free("127.0.0.1", 80)
    check_port_free("192.0.2.1", 8118)   # TEST-NET address: another host's port, not checked here


def test_inside_worker(monkeypatch):
    monkeypatch.delenv("MS_ROLE", raising=False)
    assert not inside_worker()
    for role in ("MS_WORKER", "MS_SCHED"):
        monkeypatch.setenv("MS_ROLE", role)
        assert inside_worker()


def test_worker_script_runs_the_toolkit_cli():
    path = worker_script_path()
    assert os.path.dirname(path) == os.path.dirname(launch_mod.__file__)
    out = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "train-head" in out.stdout


def test_a_worker_dying_early_fails_the_run_with_its_error(tmp_path):
    script = _script(tmp_path, """
        import os
        if os.environ["MS_ROLE"] == "MS_WORKER" and os.environ["RANK_ID"] == "1":
            raise ValueError("no data for rank 1")
        from mindspore.communication import init
        init()
    """)
    t = time.monotonic()
    with pytest.raises(DistributedError) as err:
        launch([script], 2, log_dir=str(tmp_path / "logs"), stream=False)
    assert time.monotonic() - t < 90
    msg = str(err.value)
    assert msg.startswith("rank 1 failed (exit code 1")
    assert "worker_1.log" in msg and "ValueError: no data for rank 1" in msg
    assert sorted(os.listdir(tmp_path / "logs")) == ["msrun.log", "scheduler.log", "worker_0.log", "worker_1.log"]
    assert _leftovers(script) == []


HANG = """
    import os, time
    open(os.path.join(os.path.dirname(__file__), os.environ["MS_ROLE"] + os.environ.get("RANK_ID", "")), "w")
    time.sleep(600)
"""


@pytest.mark.parametrize("timeout", [3, pytest.param(20, marks=pytest.mark.slow)])
def test_timeout_stops_every_process(tmp_path, timeout):
    """3 s: msrun is still starting; 20 s: the scheduler and both workers are running (hanging)."""
    script = _script(tmp_path, HANG)
    t = time.monotonic()
    with pytest.raises(DistributedError, match=f"stopped after {timeout} s timeout"):
        launch([script], 2, log_dir=str(tmp_path / "logs"), timeout=timeout, stream=False)
    assert time.monotonic() - t < timeout + 20
    if timeout == 20:
        assert {"MS_SCHED0", "MS_WORKER0", "MS_WORKER1"} <= set(os.listdir(tmp_path))
    assert _leftovers(script) == []


@pytest.mark.slow
def test_a_worker_dying_mid_run_fails_the_run_with_its_error(tmp_path):
    script = _script(tmp_path, """
        import os
        from mindspore.communication import init, get_rank
        init()
        if get_rank() == 1:
            raise RuntimeError("out of memory in step 3 on rank 1")
        import time
        time.sleep(120)    # rank 0 would wait for rank 1 in its next all-reduce
    """)
    t = time.monotonic()
    with pytest.raises(DistributedError, match=r"(?s)rank 1 failed.*out of memory in step 3 on rank 1"):
        launch([script], 2, log_dir=str(tmp_path / "logs"), stream=False)
    assert time.monotonic() - t < 90
    assert _leftovers(script) == []


def test_error_tails_drop_mindspore_chatter_and_name_signals(tmp_path):
    log = tmp_path / "worker_1.log"
    log.write_text("[WARNING] DISTRIBUTED(1,2,python):... Topology build timed out\n"
                   "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                   "[INFO] noise\nValueError: bad shard\n")
    assert launch_mod._log_tail(str(log)) == 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad shard'
    assert launch_mod._log_tail(str(tmp_path / "absent.log")).startswith("(cannot read")
    assert launch_mod._exit_text(-9) == "killed by SIGKILL" and launch_mod._exit_text(1) == "exit code 1"
