"""Join the msrun cluster as a data-parallel worker: MindSpore's init() plus DATA_PARALLEL context.

Gradients are averaged across workers by MindSpore (`gradients_mean=True`): `nn.TrainOneStepCell`
inserts the all-reduce itself in DATA_PARALLEL mode; a hand-written step uses `grad_reducer()`.
BatchNorm batch statistics and moving averages stay local to each worker (MindSpore does not sync
them), so trainable weights are identical across ranks while moving statistics are not: only rank 0
saves.

Batch size and learning rate: the per-device batch is what each worker feeds; the global batch is
`global_batch(per_device, size)`. The learning rate is not changed unless the caller asks for a rule
from LR_SCALING ("none", the default, or "linear": lr x workers, for keeping the per-sample step of a
recipe tuned on one device when the global batch grows).
"""
import os
from dataclasses import dataclass
from typing import Optional

from runtime.mindspore_import import from_mindspore, import_mindspore

from .backends import ROLE_SCHEDULER, backend_for, missing_worker_environment
from .errors import DistributedError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    size: int
    backend: Optional[str]     # None for a single process without a collective backend
    device: str = "cpu"

    @property
    def is_rank0(self) -> bool:
        """Only rank 0 writes checkpoints, metadata and history."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1 or self.backend is not None

    @classmethod
    def single(cls, device="cpu"):
        """The info of an ordinary, non-distributed process."""
        return cls(0, 1, None, str(device).lower())


def init_data_parallel(device="cpu") -> DistInfo:
    """Initialise MindSpore's collective backend for `device` and set DATA_PARALLEL with mean gradients.

    Must be called in a process started by msrun (see launch.py), before building networks or tensors
    (HCCL requires it). In msrun's scheduler process MindSpore runs the scheduler inside `init()` and
    exits the process when the job ends, so this call does not return there.
    """
    spec = backend_for(device)
    missing = missing_worker_environment(os.environ)
    if missing:
        raise DistributedError(f"not started by msrun: {', '.join(missing)} not set; launch with "
                               f"`toolkit ... --workers N` or msrun")
    ms = import_mindspore()
    get_group_size, get_rank, init = from_mindspore("mindspore.communication", "get_group_size", "get_rank", "init")
    ParallelMode = from_mindspore("mindspore.context", "ParallelMode")

    ms.set_device(spec.target)
    if os.environ.get("MS_ROLE") == ROLE_SCHEDULER:
        init(spec.backend)    # runs the scheduler until the workers finish, then exits the process
        raise SystemExit(0)
    try:
        init(spec.backend)
    except RuntimeError as e:
        raise DistributedError(f"joining the {spec.backend} cluster failed: {str(e).splitlines()[0]}") from None
    info = DistInfo(get_rank(), get_group_size(), spec.backend, spec.device)
    ms.set_auto_parallel_context(parallel_mode=ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=info.size)
    return info


def grad_reducer(parameters, info: DistInfo):
    """A callable averaging a tuple of gradients across workers (identity in a single process)."""
    if info.size <= 1:
        return lambda grads: grads
    nn = from_mindspore("mindspore", "nn")
    return nn.DistributedGradReducer(parameters, mean=True, degree=info.size)


def global_batch(per_device_batch, workers) -> int:
    return int(per_device_batch) * int(workers)


LR_SCALING = {
    "none": lambda lr, workers: lr,
    "linear": lambda lr, workers: lr * workers,
}


def scaled_learning_rate(lr, workers, rule="none") -> float:
    if rule not in LR_SCALING:
        raise DistributedError(f"unknown learning-rate scaling {rule!r}; known: {', '.join(LR_SCALING)}")
    return float(LR_SCALING[rule](float(lr), int(workers)))
