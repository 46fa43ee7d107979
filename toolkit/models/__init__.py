"""Model registry: one entry per backbone architecture.

Adding a backbone (ResNet-50 is next) is one `ARCHS` entry whose builder returns a
`BackboneHeadNet` with `.backbone`, `.head` and `.backbone.out_channels`.
Importing this package does not import MindSpore; `build()` does.
"""
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class ArchEntry:
    name: str
    builder: str               # "module:function(num_classes, width, dropout, fused) -> BackboneHeadNet"
    head_prefix: str           # parameter-name prefix of the classifier head
    feature_dim: Callable      # width -> pooled feature size


def _mnv2_dim(width):
    from .common import make_divisible
    return make_divisible(1280 * max(1.0, width))


ARCHS = {
    "mobilenet_v2": ArchEntry("mobilenet_v2", "toolkit.models.mobilenet_v2:build_mobilenet_v2",
                              "head.", _mnv2_dim),
}


def build(arch, num_classes, width=1.0, dropout=0.0, fused=False):
    """A fresh network; `fused=True` gives the BatchNorm-folded inference variant (see toolkit.fuse)."""
    import importlib
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}")
    module, fn = ARCHS[arch].builder.split(":")
    return getattr(importlib.import_module(module), fn)(num_classes, width=width, dropout=dropout,
                                                        fused=fused)
