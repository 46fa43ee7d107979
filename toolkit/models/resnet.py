"""ResNet-50 as in the MindSpore ModelZoo (`official/cv/resnet/src/resnet.py`), split into backbone
and head so that every toolkit mode (head, incremental, finetune, scratch) works as for MobileNetV2.

The composing `BackboneHeadNet` adds no prefix, so parameter names equal the official `resnet50.ckpt`
ones: the stem `conv1.weight`, `bn1.{gamma,beta,moving_mean,moving_variance}`, bottleneck blocks
`layer1.0.conv1.weight` ... `layer4.2.bn3.beta` (convs `conv1/conv2/conv3`, BatchNorms `bn1/bn2/bn3`, the
projection shortcut `down_sample_layer.0` / `.1`), and the head `end_point.weight`, `end_point.bias`.
The ModelZoo structure is kept where it changes numbers: stride on the 3x3 conv (v1.5), `pad_mode="same"`
convolutions and max pool (TensorFlow-style padding: the extra row/column goes bottom/right), BatchNorm
eps 1e-4, and ReduceMean(keep_dims) + Flatten before the Dense.

`width` scales every channel count (1.0 is ResNet-50; the fast tests use 0.25, a real 50-layer network
with 1/16 of the weights). `fused=True` is the inference variant with BatchNorm folded into conv
biases: names are the conv names plus `.bias` (what `toolkit.fuse.fuse_bn_params` writes), the
`bn*` cells are gone.
"""
import math

import numpy as np

from runtime.mindspore_import import from_mindspore

from .common import RESNET_EXPANSION as EXPANSION
from .common import RESNET_STAGE_CHANNELS as STAGE_CHANNELS
from .common import resnet_feature_dim as feature_dim  # noqa: F401 (the module's public size rule)
from .common import resnet_stage_width as stage_width
from .composed import BackboneHeadNet

Tensor, nn, ops = from_mindspore("mindspore", "Tensor", "nn", "ops")

LAYERS = (3, 4, 6, 3)              # ResNet-50
STRIDES = (1, 2, 2, 2)
BN_EPS, BN_MOMENTUM = 1e-4, 0.9    # the ModelZoo's _bn()


def _conv(cin, cout, k, stride, fused):
    # ModelZoo: kaiming_normal(mode="fan_out", nonlinearity="relu"), no bias, pad_mode="same".
    w = np.random.normal(0, math.sqrt(2.0) / math.sqrt(cout * k * k), (cout, cin, k, k))
    return nn.Conv2d(cin, cout, k, stride=stride, pad_mode="same", has_bias=fused,
                     weight_init=Tensor(w.astype(np.float32)))


def _bn(channels):
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class FoldsBatchNorm:
    """Mixin: `FOLD_PAIRS` names the (conv, BatchNorm) attribute pairs toolkit.fuse folds."""
    FOLD_PAIRS = ()

    def fold_pairs(self):
        return [(getattr(self, c), getattr(self, b)) for c, b in self.FOLD_PAIRS if hasattr(self, b)]


class ResidualBlock(FoldsBatchNorm, nn.Cell):
    """Bottleneck 1x1 -> 3x3(stride) -> 1x1(x4), shortcut projected when shape changes; then Add, ReLU."""
    FOLD_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, in_channel, out_channel, stride=1, fused=False):
        super().__init__()
        channel = out_channel // EXPANSION
        self.fused = fused
        # Declared in the ModelZoo's order (conv1, bn1, conv2, ...), which is the checkpoint's order.
        for i, (cin, cout, k, s) in enumerate(((in_channel, channel, 1, 1), (channel, channel, 3, stride),
                                               (channel, out_channel, 1, 1)), 1):
            setattr(self, f"conv{i}", _conv(cin, cout, k, s, fused))
            if not fused:
                setattr(self, f"bn{i}", _bn(cout))
        self.relu = nn.ReLU()
        self.down_sample = stride != 1 or in_channel != out_channel
        if self.down_sample:
            shortcut = [_conv(in_channel, out_channel, 1, stride, fused)]
            self.down_sample_layer = nn.SequentialCell(shortcut + ([] if fused else [_bn(out_channel)]))

    def construct(self, x):
        identity = x
        out = self.conv1(x)
        if not self.fused:
            out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        if not self.fused:
            out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        if not self.fused:
            out = self.bn3(out)
        if self.down_sample:
            identity = self.down_sample_layer(identity)
        return self.relu(out + identity)


class ResNetBackbone(FoldsBatchNorm, nn.Cell):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool) and layer1..layer4; outputs the last feature map."""
    FOLD_PAIRS = (("conv1", "bn1"),)

    def __init__(self, width=1.0, fused=False):
        super().__init__()
        self.fused = fused
        stem = stage_width(64, width)
        self.conv1 = _conv(3, stem, 7, 2, fused)
        if not fused:
            self.bn1 = _bn(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="same")
        in_channel = stem
        for i, (n, c, s) in enumerate(zip(LAYERS, STAGE_CHANNELS, STRIDES)):
            out_channel = stage_width(c, width) * EXPANSION
            blocks = [ResidualBlock(in_channel if j == 0 else out_channel, out_channel,
                                    s if j == 0 else 1, fused) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.SequentialCell(blocks))
            in_channel = out_channel
        self.out_channels = in_channel

    def construct(self, x):
        x = self.conv1(x)
        if not self.fused:
            x = self.bn1(x)
        x = self.maxpool(self.relu(x))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNetHead(nn.Cell):
    """ReduceMean(keep_dims) + Flatten + `end_point` Dense, as the ModelZoo's tail."""

    def __init__(self, input_channel, num_classes, dropout=0.0):
        super().__init__()
        self.flatten = nn.Flatten()
        # ModelZoo's _fc: kaiming_uniform(a=sqrt(5)) weight (bound 1/sqrt(fan_in)), zero bias.
        bound = 1.0 / math.sqrt(input_channel)
        w = np.random.uniform(-bound, bound, (num_classes, input_channel)).astype(np.float32)
        self.end_point = nn.Dense(input_channel, num_classes, has_bias=True, weight_init=Tensor(w),
                                  bias_init="zeros")
        self.use_dropout = bool(dropout)
        if dropout:
            self.dropout = nn.Dropout(p=dropout)     # before the Dense; names unchanged

    def construct(self, x):
        x = self.flatten(ops.mean(x, (2, 3), keep_dims=True))
        if self.use_dropout:
            x = self.dropout(x)
        return self.end_point(x)


def build_resnet50(num_classes, width=1.0, dropout=0.0, fused=False):
    backbone = ResNetBackbone(width=width, fused=fused)
    return BackboneHeadNet(backbone, ResNetHead(backbone.out_channels, num_classes, dropout=dropout))
