"""Sharding a list of work items over ranks and gathering the per-rank results back, in order.

For work that is not a training step, e.g. head mode's feature extraction: each rank takes the
contiguous slice `shard_slice(n, info)` of the items, computes rows for it, and `gather_rows` returns
every rank the rows of all items in the original order (through MindSpore's AllGather, so the same
collective backend as training). The tiny head can then be trained once on the full set.
"""
import numpy as np

from runtime.mindspore_import import from_mindspore, import_mindspore

from .errors import DistributedError


def shard_slice(n, info) -> slice:
    """Rank `info.rank`'s contiguous part of `n` items; sizes differ by at most one."""
    base, extra = divmod(int(n), info.size)
    start = info.rank * base + min(info.rank, extra)
    return slice(start, start + base + (1 if info.rank < extra else 0))


def gather_rows(rows, info):
    """Concatenate every rank's `rows` (same trailing shape and dtype) in rank order, on every rank."""
    rows = np.ascontiguousarray(rows)
    if info.size <= 1:
        return rows
    ms = import_mindspore()
    ops = from_mindspore("mindspore", "ops")
    gather = ops.AllGather()
    counts = gather(ms.Tensor(np.array([len(rows)], np.int64))).asnumpy()
    shapes = gather(ms.Tensor(np.array(rows.shape[1:] or (0,), np.int64))).asnumpy().reshape(info.size, -1)
    if not (shapes == shapes[0]).all():
        raise DistributedError(f"ranks hold rows of different shapes: {shapes.tolist()}")
    longest = int(counts.max())
    if longest == 0:      # nothing anywhere: an empty AllGather is not worth a collective call
        return rows
    padded = np.zeros((longest,) + rows.shape[1:], rows.dtype)
    padded[:len(rows)] = rows
    everything = gather(ms.Tensor(padded)).asnumpy().reshape((info.size, longest) + rows.shape[1:])
    return np.concatenate([everything[r, :int(counts[r])] for r in range(info.size)])
