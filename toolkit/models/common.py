"""Framework-free helpers shared by model definitions and the registry."""


def make_divisible(v, divisor=8, min_value=None):
    """Round channels to a multiple of `divisor`, never dropping more than 10% (ModelZoo rule)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


RESNET_STAGE_CHANNELS = (64, 128, 256, 512)     # bottleneck widths of layer1..layer4
RESNET_EXPANSION = 4                            # a bottleneck block outputs 4x its width


def resnet_stage_width(channels, width):
    """A ResNet stage's bottleneck width scaled by `width` (1.0: the ModelZoo ResNet-50)."""
    return make_divisible(channels * width)


def resnet_feature_dim(width):
    """Pooled ResNet feature size: 2048 at width 1.0."""
    return resnet_stage_width(RESNET_STAGE_CHANNELS[-1], width) * RESNET_EXPANSION
