"""Data-parallel training through MindSpore's own launcher, `msrun`.

Nothing here is a distributed engine of its own: `launch` builds an `msrun` command line and watches it,
`init_data_parallel` calls `mindspore.communication.init()` and `set_auto_parallel_context(DATA_PARALLEL)`,
and MindSpore does the all-reduce. The backends (CPU mccl, GPU nccl, Ascend hccl) live in one registry.

Semantics every caller relies on:
- `--batch-size` is per device; the global batch is per-device batch x workers.
- The learning rate is not scaled unless asked: `scaled_learning_rate(lr, workers, "linear")` multiplies
  it by the worker count (Goyal et al.'s linear scaling rule); "none" (the default) keeps it.
- Gradients are averaged over workers (`gradients_mean=True`); BatchNorm moving statistics stay local to
  each worker, so only rank 0's checkpoint is written and trainable weights are identical across ranks.
- Every rank must run the same number of steps (equal shards, incomplete batches dropped), or the
  all-reduce of the rank with more steps waits for a partner that never comes.

Importing this package does not import MindSpore.
"""
from .errors import DistributedError  # noqa: F401
