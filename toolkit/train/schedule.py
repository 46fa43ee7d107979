"""Per-step learning rate: linear warm-up, then cosine decay to `lr_end` (ModelZoo `get_lr`).

The whole schedule is a plain array computed from the configuration, so a resumed run indexes
the same values by global step as an uninterrupted one.
"""
import math

import numpy as np


def cosine_with_warmup(lr_max, lr_end, warmup_epochs, total_epochs, steps_per_epoch):
    """float32 array of `total_epochs * steps_per_epoch` learning rates."""
    total = int(total_epochs) * int(steps_per_epoch)
    warmup = min(int(warmup_epochs * steps_per_epoch), total)
    lrs = np.empty(total, dtype=np.float32)
    for i in range(total):
        if i < warmup:
            lrs[i] = lr_max * (i + 1) / warmup
        else:
            span = max(total - warmup, 1)
            lrs[i] = lr_end + (lr_max - lr_end) * (1 + math.cos(math.pi * (i - warmup) / span)) / 2
    return lrs
