"""MobileNetV2 as in the MindSpore ModelZoo, split into backbone and head.

The composing Cell uses `auto_prefix=False`, so parameter names equal the official checkpoints'
(`features.0.features.0.weight` ... `features.18.features.1.beta`, `head.1.weight`, `head.1.bias`).

`fused=True` builds the inference variant with BatchNorm folded away: every conv that was followed by a
BatchNorm has a bias and the BatchNorm is gone. Indices are unchanged, so its names are the original conv
names plus `.bias` (e.g. `features.0.features.0.bias`), which `toolkit.fuse.fuse_bn_params` produces.
"""
import math

import numpy as np

from runtime.mindspore_import import from_mindspore

from .common import make_divisible
from .composed import BackboneHeadNet

Tensor, nn, ops = from_mindspore("mindspore", "Tensor", "nn", "ops")
Normal, initializer = from_mindspore("mindspore.common.initializer", "Normal", "initializer")

# t (expansion), c (channels), n (repeats), s (first stride)
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU(nn.Cell):
    """Conv + BatchNorm + ReLU6 (Conv(bias) + ReLU6 when fused); depthwise when groups > 1."""

    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1, fused=False):
        super().__init__()
        padding = (kernel_size - 1) // 2
        if groups != 1:
            out_planes = in_planes
        conv = nn.Conv2d(in_planes, out_planes, kernel_size, stride, pad_mode="pad", padding=padding,
                         group=groups, has_bias=fused)
        norm = [] if fused else [nn.BatchNorm2d(out_planes)]
        self.features = nn.SequentialCell([conv] + norm + [nn.ReLU6()])

    def construct(self, x):
        return self.features(x)


class InvertedResidual(nn.Cell):
    def __init__(self, inp, oup, stride, expand_ratio, fused=False):
        super().__init__()
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1, fused=fused))
        layers.extend([
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, fused=fused),
            nn.Conv2d(hidden_dim, oup, kernel_size=1, stride=1, has_bias=fused),
        ])
        if not fused:
            layers.append(nn.BatchNorm2d(oup))
        self.conv = nn.SequentialCell(layers)

    def construct(self, x):
        if self.use_res_connect:
            return ops.add(x, self.conv(x))
        return self.conv(x)


class MobileNetV2Backbone(nn.Cell):
    def __init__(self, width=1.0, round_nearest=8, input_channel=32, last_channel=1280, fused=False):
        super().__init__()
        input_channel = make_divisible(input_channel * width, round_nearest)
        self.out_channels = make_divisible(last_channel * max(1.0, width), round_nearest)
        features = [ConvBNReLU(3, input_channel, stride=2, fused=fused)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t,
                                                 fused=fused))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.out_channels, kernel_size=1, fused=fused))
        self.features = nn.SequentialCell(features)
        self._initialize_weights()

    def construct(self, x):
        return self.features(x)

    def _initialize_weights(self):
        # ModelZoo initialisation: He-normal convs, BN gamma 1 / beta 0.
        for _, cell in self.cells_and_names():
            if isinstance(cell, nn.Conv2d):
                k = cell.kernel_size[0] * cell.kernel_size[1] * cell.out_channels
                w = np.random.normal(0, math.sqrt(2.0 / k), cell.weight.shape).astype(np.float32)
                cell.weight.set_data(Tensor(w))
            elif isinstance(cell, nn.BatchNorm2d):
                cell.gamma.set_data(initializer("ones", cell.gamma.shape))
                cell.beta.set_data(initializer("zeros", cell.beta.shape))


class GlobalAvgPooling(nn.Cell):
    def construct(self, x):
        return ops.mean(x, (2, 3), keep_dims=False)


class MobileNetV2Head(nn.Cell):
    def __init__(self, input_channel=1280, num_classes=1000, dropout=0.0):
        super().__init__()
        layers = [GlobalAvgPooling(), nn.Dense(input_channel, num_classes, has_bias=True,
                                               weight_init=Normal(0.01), bias_init="zeros")]
        if dropout:
            # As in the ModelZoo's has_dropout variant: the Dense becomes head.2.* (loading tolerates it).
            layers.insert(1, nn.Dropout(p=dropout))
        self.head = nn.SequentialCell(layers)

    def construct(self, x):
        return self.head(x)


def build_mobilenet_v2(num_classes, width=1.0, dropout=0.0, fused=False):
    backbone = MobileNetV2Backbone(width=width, fused=fused)
    head = MobileNetV2Head(backbone.out_channels, num_classes, dropout=dropout)
    return BackboneHeadNet(backbone, head)
