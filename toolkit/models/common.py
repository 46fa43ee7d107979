"""Framework-free helpers shared by model definitions and the registry."""


def make_divisible(v, divisor=8, min_value=None):
    """Round channels to a multiple of `divisor`, never dropping more than 10% (ModelZoo rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v
