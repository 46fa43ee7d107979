"""Building the one-step training cell, with mixed precision that never renames parameters.

O2 (fp16 compute, BatchNorm and loss in fp32) and O3 (all fp16) come from
`mindspore.amp.build_train_network`; both keep parameter names (platform-facts.md). O1 rewrites the
network, renames parameters and writes files into the working directory, so it is not offered.
The loss scale is fixed: on CPU MindSpore accepts only FixedLossScaleManager(drop_overflow_update=
False), and the same fixed scale is given to the optimizer so gradients are unscaled exactly.
"""
from runtime.errors import ToolkitError
from runtime.mindspore_import import import_mindspore

from .config import AMP_LEVELS

# Levels offered on each device. On CPU, O2 (BatchNorm kept in fp32) is tested to train with
# unchanged names and fp32 checkpoints (no speed gain there). O3 also casts BatchNorm to fp16; it
# runs on CPU but its correctness there is not verified, so it is refused rather than offered.
ALLOWED = {"cpu": ("O0", "O2"), "gpu": AMP_LEVELS, "ascend": AMP_LEVELS}


class AmpError(ToolkitError):
    """A mixed-precision level that cannot be honoured on this device."""


def check_level(level, device):
    if level not in AMP_LEVELS:
        raise AmpError(f"--amp {level}: choose one of {', '.join(AMP_LEVELS)} "
                       f"(O1 renames parameters and is not offered)")
    if level not in ALLOWED[device]:
        raise AmpError(f"--amp {level} is not supported on {device}; on {device} use "
                       f"{' or '.join(ALLOWED[device])} ({level} is for GPU and Ascend)")


def build_train_step(network, loss_fn, optimizer, level, loss_scale, device):
    """TrainOneStepCell(network + loss) under `level`; raises if any parameter name changed."""
    ms = import_mindspore()

    check_level(level, device)
    before = [p.name for p in network.get_parameters()]
    manager = ms.amp.FixedLossScaleManager(float(loss_scale), drop_overflow_update=False)
    step = ms.amp.build_train_network(network, optimizer, loss_fn, level=level,
                                      loss_scale_manager=manager)
    after = [p.name for p in network.get_parameters()]
    if before != after:
        changed = [f"{a} -> {b}" for a, b in zip(before, after) if a != b][:5]
        raise AmpError(f"--amp {level} renamed parameters ({', '.join(changed)}); refusing")
    return step
