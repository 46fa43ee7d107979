"""A few data-parallel training steps of a small network on generated data, run under msrun.

Used by the tests (every rank holds the same trainable weights, and each step equals one process
averaging the shards' gradients) and by benchmarks/bench_distributed.py (step times). Each rank trains
on its own slice of a deterministic global batch with train-head's loss, optimizer and step cell and
writes `OUT/rank<r>_step<s>.npz` (trainable weights `p:<name>` and momentum `m:<name>` after step s;
step 0 is the start) and `OUT/rank<r>.json` (losses, step times). Writing per rank is the point of a
check; training commands write on rank 0 only.

    msrun ... python -m toolkit.distributed.dp_check --out DIR --steps 2 --batch-size 4
"""
import argparse
import json
import os
import time

import numpy as np

from runtime.atomic import atomic_path, atomic_write_text
from runtime.mindspore_import import from_mindspore, import_mindspore

from .context import DistInfo, init_data_parallel
from .launch import inside_worker


def step_batch(seed, step, global_batch, image_size, classes):
    """The global batch of `step`: images (N, 3, S, S) float32 and int32 labels, same on every rank."""
    rng = np.random.default_rng([seed, step])
    x = rng.standard_normal((global_batch, 3, image_size, image_size)).astype(np.float32)
    y = rng.integers(0, classes, global_batch).astype(np.int32)
    return x, y


def shard(array, rank, size):
    """Rank `rank`'s contiguous slice of a global batch (equal slices: the batch divides by size)."""
    per = len(array) // size
    return array[rank * per:(rank + 1) * per]


def trainable(net):
    return {p.name: p.asnumpy().copy() for p in net.trainable_params()}


def state(opt):
    """Trainable weights and their momentum, the whole state one optimizer step depends on."""
    out = {f"p:{p.name}": p.asnumpy().copy() for p in opt.parameters}
    out.update({f"m:{p.name}": m.asnumpy().copy() for p, m in zip(opt.parameters, opt.moments)})
    return out


def load_state(opt, arrays, step=0):
    """Put a saved state (and the schedule index `step`) into `opt` in place, where its compiled
    update reads them."""
    ms = import_mindspore()
    for p, m in zip(opt.parameters, opt.moments):
        ms.ops.assign(p, ms.Tensor(arrays[f"p:{p.name}"]))
        ms.ops.assign(m, ms.Tensor(arrays[f"m:{p.name}"]))
    ms.ops.assign(opt.global_step, ms.Tensor([step], ms.int32))


def save_npz(path, arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def build(args):
    """The network and the toolkit's own training step (train-head's loss, optimizer and step cell)."""
    ms = import_mindspore()

    from toolkit.models import build as build_model
    from toolkit.train.amp import build_train_step
    from toolkit.train.setup import make_loss, make_optimizer
    ms.set_seed(args.seed)
    np.random.seed(args.seed)      # the ModelZoo initialiser draws from NumPy
    net = build_model(args.arch, args.classes, width=args.width)
    loss = make_loss(args.label_smoothing)
    opt = make_optimizer(net.trainable_params(), np.full(max(args.steps, 2), args.lr, np.float32),
                         _optimizer_settings(args))
    return net, loss, opt, build_train_step(net, loss, opt, "O0", 1.0, args.device)


def _optimizer_settings(args):
    from types import SimpleNamespace
    return SimpleNamespace(weight_decay=args.weight_decay, momentum=args.momentum, loss_scale=1.0)


def allreduce_times(opt, repeats):
    """Seconds per all-reduce of the gradients' sizes: one tensor per parameter (as the gradient
    reducer issues them) and all of them fused into one buffer, medians over `repeats`."""
    import statistics

    ms = import_mindspore()
    nn, ops = from_mindspore("mindspore", "nn", "ops")

    class Each(nn.Cell):
        def __init__(self):
            super().__init__()
            self.reduce = ops.AllReduce()

        def construct(self, xs):
            return tuple(self.reduce(x) for x in xs)

    each, fused = Each(), Each()
    tensors = tuple(ms.Tensor(np.ones(p.shape, np.float32)) for p in opt.parameters)
    flat = (ms.Tensor(np.ones(sum(int(np.prod(p.shape)) for p in opt.parameters), np.float32)),)
    out = {}
    for name, cell, args in (("per_parameter", each, tensors), ("fused", fused, flat)):
        cell(args)[-1].asnumpy()                           # compile
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            cell(args)[-1].asnumpy()
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    out["tensors"] = len(tensors)
    return out


def run(args):
    ms = import_mindspore()
    info = init_data_parallel(args.device) if inside_worker() else DistInfo.single(args.device)
    if not inside_worker():
        ms.set_device({"cpu": "CPU", "gpu": "GPU", "ascend": "Ascend"}[args.device])
    ms.set_context(mode=ms.GRAPH_MODE)
    if args.threads:
        ms.set_context(runtime_num_threads=args.threads)
    net, _, opt, step = build(args)
    step.set_train()
    os.makedirs(args.out, exist_ok=True)
    if args.save_steps:
        save_npz(os.path.join(args.out, f"rank{info.rank}_step0.npz"), state(opt))
    losses, times = [], []
    for s in range(args.steps):
        x, y = step_batch(args.seed, s, args.batch_size * info.size, args.image_size, args.classes)
        x, y = ms.Tensor(shard(x, info.rank, info.size)), ms.Tensor(shard(y, info.rank, info.size))
        t = time.perf_counter()
        loss = step(x, y)
        losses.append(float(loss.asnumpy()))     # asnumpy() waits for the step to finish
        times.append(time.perf_counter() - t)
        if args.save_steps:
            save_npz(os.path.join(args.out, f"rank{info.rank}_step{s + 1}.npz"), state(opt))
    comm = allreduce_times(opt, args.time_allreduce) if args.time_allreduce and info.size > 1 else None
    if args.check_gather:
        # Rows of item i are [i, i*i]; 7 items over the ranks, so shards are unequal.
        from .collect import gather_rows, shard_slice
        mine = np.arange(7, dtype=np.float32)[shard_slice(7, info)]
        rows = gather_rows(np.stack([mine, mine * mine], axis=1), info)
        save_npz(os.path.join(args.out, f"rank{info.rank}_gather.npz"), {"rows": rows})
    atomic_write_text(os.path.join(args.out, f"rank{info.rank}.json"), json.dumps(
        {"allreduce_s": comm, "rank": info.rank, "size": info.size, "backend": info.backend, "batch_size": args.batch_size,
         "global_batch": args.batch_size * info.size, "threads": args.threads, "image_size": args.image_size, "width": args.width,
         "losses": losses, "step_s": times}, indent=1))
    return info


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4, help="per device")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--arch", default="mobilenet_v2")
    p.add_argument("--width", type=float, default=0.35)
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=4e-5)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=("cpu", "gpu", "ascend"), default="cpu")
    p.add_argument("--threads", type=int, default=0, help="MindSpore runtime threads per worker (0: default)")
    p.add_argument("--time-allreduce", type=int, default=0, metavar="N",
                   help="also time N all-reduces of the gradient sizes (per parameter and fused)")
    p.add_argument("--check-gather", action="store_true", help="gather unequal per-rank rows (collect.py)")
    p.add_argument("--save-steps", action="store_true", help="write every rank's state after every step")
    return p


if __name__ == "__main__":
    run(parser().parse_args())
