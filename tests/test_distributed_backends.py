"""The collective backend each device needs, the environment the launcher adds, and the batch/LR rules."""
import pytest

from toolkit.distributed import backends
from toolkit.distributed.backends import (BACKENDS, MSRUN_ENV, backend_for, launch_environment,
                                          missing_worker_environment)
from toolkit.distributed.context import DistInfo, global_batch, scaled_learning_rate
from toolkit.distributed.errors import DistributedError
from runtime.mindspore_import import from_mindspore

EXPECTED = {  # device -> (MindSpore target, init() backend, world group, visible-devices variable)
    "cpu": ("CPU", "mccl", "mccl_world_group", None),
    "gpu": ("GPU", "nccl", "nccl_world_group", "CUDA_VISIBLE_DEVICES"),
    "ascend": ("Ascend", "hccl", "hccl_world_group", "ASCEND_RT_VISIBLE_DEVICES"),
}


def test_registry_covers_exactly_the_toolkit_devices():
    from runtime.formats import DEVICES
    assert set(BACKENDS) == set(EXPECTED) == set(DEVICES)


@pytest.mark.parametrize("device", sorted(BACKENDS))
def test_backend_entry(device):
    spec = backend_for(device)
    assert (spec.target, spec.backend, spec.world_group, spec.visible_devices_var) == EXPECTED[device]
    assert backend_for(device.upper()) is spec


def test_world_group_names_match_mindspore():
    pytest.importorskip("mindspore")
    comm = from_mindspore("mindspore", "communication")
    assert {s.backend: s.world_group for s in BACKENDS.values()} == {
        "mccl": comm.MCCL_WORLD_COMM_GROUP, "nccl": comm.NCCL_WORLD_COMM_GROUP,
        "hccl": comm.HCCL_WORLD_COMM_GROUP}


def test_unknown_device_lists_known():
    with pytest.raises(DistributedError, match="ascend, cpu, gpu"):
        backend_for("tpu")


@pytest.mark.parametrize("device", sorted(BACKENDS))
def test_launch_environment_quiets_mindspore_logs_and_passes_extras(device):
    env = launch_environment(device, 2, extra={"MY_VAR": 3})
    assert env["GLOG_v"] == "3" and env["MY_VAR"] == "3"


@pytest.mark.parametrize("device", [d for d, s in BACKENDS.items() if s.visible_devices_var])
def test_visible_devices_set_the_backend_variable(device):
    env = launch_environment(device, 2, visible_devices="4, 5,6")
    assert env[EXPECTED[device][3]] == "4,5,6"
    assert launch_environment(device, 2, visible_devices=[6, 7])[EXPECTED[device][3]] == "6,7"


@pytest.mark.parametrize("devices, problem", [
    ("4", "2 local worker"), ("4,4", "repeat"), ("a,b", "not an integer"), ("-1,2", ">= 0")])
def test_bad_visible_devices(devices, problem):
    with pytest.raises(DistributedError, match=problem):
        launch_environment("gpu", 2, visible_devices=devices)


def test_cpu_refuses_visible_devices_and_rank_tables():
    with pytest.raises(DistributedError, match="no meaning on cpu"):
        launch_environment("cpu", 2, visible_devices="0,1")
    with pytest.raises(DistributedError, match="HCCL"):
        launch_environment("gpu", 2, rank_table="t.json")


def test_ascend_rank_table_variable():
    assert launch_environment("ascend", 8, rank_table="/x/hccl_8p.json")["RANK_TABLE_FILE"] == "/x/hccl_8p.json"


def test_missing_worker_environment():
    full = {"MS_ROLE": "MS_WORKER", "MS_SCHED_HOST": "127.0.0.1", "MS_SCHED_PORT": "8118",
            "MS_WORKER_NUM": "2", "RANK_ID": "1", "DEVICE_ID": "1", "RANK_SIZE": "2"}
    assert missing_worker_environment(full) == []
    assert missing_worker_environment({}) == list(MSRUN_ENV)
    partial = dict(full)
    del partial["MS_SCHED_PORT"], partial["DEVICE_ID"]
    assert missing_worker_environment(partial) == ["MS_SCHED_PORT", "DEVICE_ID"]
    sched = {k: v for k, v in full.items() if k in MSRUN_ENV}
    sched["MS_ROLE"] = backends.ROLE_SCHEDULER
    assert missing_worker_environment(sched) == []


def test_init_outside_msrun_is_a_clear_error(monkeypatch):
    from toolkit.distributed.context import init_data_parallel
    for key in MSRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(DistributedError, match="not started by msrun"):
        init_data_parallel("cpu")


def test_batch_and_learning_rate_semantics():
    assert global_batch(32, 8) == 256              # --batch-size is per device
    assert scaled_learning_rate(0.05, 8) == 0.05   # default: no scaling
    assert scaled_learning_rate(0.05, 8, "linear") == pytest.approx(0.4)
    with pytest.raises(DistributedError, match="known: none, linear"):
        scaled_learning_rate(0.05, 8, "sqrt")


def test_dist_info():
    assert DistInfo(0, 2, "mccl").is_rank0 and not DistInfo(1, 2, "mccl").is_rank0
    single = DistInfo.single("CPU")
    assert (single.rank, single.size, single.backend, single.device, single.distributed) == (0, 1, None, "cpu", False)


@pytest.mark.parametrize("n, size", [(7, 2), (8, 2), (3, 4), (0, 3), (10, 3)])
def test_shards_cover_every_item_once_in_order(n, size):
    from toolkit.distributed.collect import shard_slice
    parts = [list(range(n))[shard_slice(n, DistInfo(r, size, "mccl"))] for r in range(size)]
    assert sum(parts, []) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_gather_in_a_single_process_is_the_identity():
    import numpy as np
    from toolkit.distributed.collect import gather_rows
    rows = np.arange(6).reshape(3, 2)
    np.testing.assert_array_equal(gather_rows(rows, DistInfo.single()), rows)
