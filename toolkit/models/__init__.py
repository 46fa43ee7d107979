"""Model registry: one entry per backbone architecture, saying what differs between them.

Adding an architecture is one module whose builder returns a `toolkit.models.composed.BackboneHeadNet`
(`.backbone`, `.head`, `.backbone.out_channels`) plus one `ARCHS` row: parameter names come from the
module, the row gives the head's name prefix, the pooled feature width and the default preprocessing
(written into model.json, so nothing on the device side depends on the architecture).
Importing this package does not import MindSpore; `build()` does.
"""
from dataclasses import dataclass
from typing import Callable, Tuple

from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD

from .common import resnet_feature_dim


@dataclass(frozen=True)
class ArchEntry:
    name: str
    builder: str               # "module:function(num_classes, width, dropout, fused) -> BackboneHeadNet"
    head_prefix: str           # parameter-name prefix of the classifier head
    feature_dim: Callable      # width -> pooled feature size
    mean: Tuple[float, float, float] = IMAGENET_MEAN    # default Normalize, on 0..255 pixels
    std: Tuple[float, float, float] = IMAGENET_STD
    test_width: float = 0.35   # the width the fast tests build (small, still the real topology)


def _mnv2_dim(width):
    from .common import make_divisible
    return make_divisible(1280 * max(1.0, width))


ARCHS = {
    "mobilenet_v2": ArchEntry("mobilenet_v2", "toolkit.models.mobilenet_v2:build_mobilenet_v2",
                              "head.", _mnv2_dim),
    # ModelZoo official/cv/resnet (the transfer-learning tutorial's network); same ImageNet
    # preprocessing (Resize 256, CenterCrop 224, Normalize) as MobileNetV2.
    "resnet50": ArchEntry("resnet50", "toolkit.models.resnet:build_resnet50", "end_point.", resnet_feature_dim,
                          test_width=0.25),
}


def build(arch, num_classes, width=1.0, dropout=0.0, fused=False):
    """A fresh network; `fused=True` gives the BatchNorm-folded inference variant (see toolkit.fuse)."""
    import importlib
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}")
    module, fn = ARCHS[arch].builder.split(":")
    return getattr(importlib.import_module(module), fn)(num_classes, width=width, dropout=dropout,
                                                        fused=fused)
