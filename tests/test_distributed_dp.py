"""Two CPU workers through msrun train like one process that averages both shards' gradients.

The workers run toolkit/distributed/dp_check.py: MobileNetV2 (width 0.35, 32 px, 3 classes) with
train-head's loss, optimizer and step cell, 2 steps, per-device batch 4 (global batch 8), each rank on
its half of every global batch. The reference here builds the same network from the workers' starting
weights, computes each shard's gradient separately (BatchNorm batch statistics are per shard, as in the
workers), averages them by hand and applies the same optimizer. BatchNorm moving statistics are local
to each worker, so only trainable parameters are compared.
"""
import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("mindspore")
pytestmark = pytest.mark.mindspore

from toolkit.distributed import dp_check  # noqa: E402
from toolkit.distributed.launch import launch  # noqa: E402

ARGS = ["--steps", "2", "--batch-size", "4", "--image-size", "32", "--width", "0.35", "--classes", "3",
        "--lr", "0.01", "--seed", "3"]
WORKERS = 2
# Both sides run the same CPU kernels; the all-reduce mean and the hand average differ at most in
# float32 rounding of (a + b) / 2. Observed: 0.0. Allowed: 1e-5 absolute + 1e-4 relative.
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp")
    rc = launch([sys.executable and "python", "-m", "toolkit.distributed.dp_check", "--out", str(out), *ARGS],
                WORKERS, log_dir=str(out / "logs"), stream=False, timeout=300)
    assert rc == 0
    return out


def reference(init, args):
    """One process: per-shard gradients, averaged by hand, one optimizer step per global batch."""
    import mindspore as ms
    from mindspore import nn
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net, loss, opt, _ = dp_check.build(args)
    for p in net.trainable_params():
        p.set_data(ms.Tensor(init[p.name]))
    grad_fn = ms.value_and_grad(nn.WithLossCell(net, loss), None, opt.parameters)
    net.set_train(True)
    for step in range(args.steps):
        x, y = dp_check.step_batch(args.seed, step, args.batch_size * WORKERS, args.image_size, args.classes)
        grads = [grad_fn(ms.Tensor(dp_check.shard(x, r, WORKERS)), ms.Tensor(dp_check.shard(y, r, WORKERS)))[1]
                 for r in range(WORKERS)]
        opt(tuple(sum(g) / WORKERS for g in zip(*grads)))
    return dp_check.trainable(net)


def _load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_every_rank_ends_with_identical_trainable_weights(dp_run):
    ranks = [_load(dp_run / f"rank{r}.npz") for r in range(WORKERS)]
    assert len(ranks[0]) == 158          # every trainable parameter of MobileNetV2-0.35 is there
    for name, value in ranks[0].items():
        np.testing.assert_array_equal(ranks[1][name], value, err_msg=name)
    reports = [json.loads((dp_run / f"rank{r}.json").read_text()) for r in range(WORKERS)]
    assert [(r["rank"], r["size"], r["backend"], r["global_batch"]) for r in reports] == \
        [(0, 2, "mccl", 8), (1, 2, "mccl", 8)]
    assert reports[0]["losses"] != reports[1]["losses"]      # the ranks did see different shards
    assert sorted(os.listdir(dp_run / "logs")) == ["msrun.log", "scheduler.log", "worker_0.log", "worker_1.log"]


def test_workers_equal_one_process_averaging_shard_gradients(dp_run):
    args = dp_check.parser().parse_args(["--out", str(dp_run), *ARGS])
    init = _load(dp_run / "init.npz")
    final = _load(dp_run / "rank0.npz")
    ref = reference(init, args)
    moved = max(float(np.abs(final[k] - init[k]).max()) for k in final)
    assert moved > 1e-3, "training did not change the weights; the comparison would prove nothing"
    for name in final:
        np.testing.assert_allclose(final[name], ref[name], atol=ATOL, rtol=RTOL, err_msg=name)
    # The check can fail: training on rank 0's shard alone lands far outside the tolerance.
    solo = dict(init)
    import mindspore as ms
    from mindspore import nn
    net, loss, opt, _ = dp_check.build(args)
    for p in net.trainable_params():
        p.set_data(ms.Tensor(init[p.name]))
    grad_fn = ms.value_and_grad(nn.WithLossCell(net, loss), None, opt.parameters)
    net.set_train(True)
    for step in range(args.steps):
        x, y = dp_check.step_batch(args.seed, step, args.batch_size * WORKERS, args.image_size, args.classes)
        opt(grad_fn(ms.Tensor(dp_check.shard(x, 0, WORKERS)), ms.Tensor(dp_check.shard(y, 0, WORKERS)))[1])
    solo = dp_check.trainable(net)
    assert max(float(np.abs(final[k] - solo[k]).max()) for k in final) > 100 * ATOL
