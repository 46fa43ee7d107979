"""Model metadata that travels with the model (like timm's pretrained_cfg).

Training writes it as `model.json` in the run folder; export and convert copy it as a sidecar
(`model.mindir` -> `model.json`, `OUT.ms` -> `OUT.json`). Runtime preprocessing reads only this:
nothing about preprocessing is hard-coded on the device side.
"""
import json
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional, Tuple

from .atomic import atomic_write_text
from .errors import MetadataError
from .jsonfile import read_json

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
SCHEMA_VERSION = 1


@dataclass
class ModelMeta:
    arch: str = "mobilenet_v2"
    width: float = 1.0
    image_size: int = 224                   # crop size fed to the network (square)
    resize: int = 256                       # shorter side resized to this (floor rounding, INTER_LINEAR)
    crop: str = "center"                    # centre crop with floor offset
    interpolation: str = "linear"           # cv2.INTER_LINEAR
    mean: Tuple[float, float, float] = IMAGENET_MEAN   # on 0..255 pixel values
    std: Tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"              # order of channels the network expects
    layout: str = "NCHW"                    # layout of the network input
    exif_orientation: str = "ignore"        # same policy as training (cv2.IMREAD_IGNORE_ORIENTATION)
    class_names: List[str] = field(default_factory=list)
    softmax: bool = False                   # whether the model output is already probabilities
    input_name: Optional[str] = None
    schema_version: int = SCHEMA_VERSION

    @property
    def num_classes(self):
        return len(self.class_names)

    def to_json(self):
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return json.dumps(d, indent=2, sort_keys=True)

    def save(self, path):
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d, source="<dict>"):
        if not isinstance(d, dict):
            raise MetadataError(f"{source}: metadata must be a JSON object")
        known = set(cls.__dataclass_fields__)
        kwargs = {k: v for k, v in d.items() if k in known}
        try:
            meta = cls(**kwargs)
            meta.mean = tuple(float(v) for v in meta.mean)
            meta.std = tuple(float(v) for v in meta.std)
            meta.image_size = int(meta.image_size)
            meta.resize = int(meta.resize)
        except (TypeError, ValueError) as e:
            raise MetadataError(f"{source}: malformed metadata: {e}") from None
        if len(meta.mean) != 3 or len(meta.std) != 3 or any(s == 0 for s in meta.std):
            raise MetadataError(f"{source}: mean/std must be 3 values with non-zero std")
        if meta.layout not in ("NCHW", "NHWC"):
            raise MetadataError(f"{source}: layout must be NCHW or NHWC, not {meta.layout!r}")
        if meta.channel_order not in ("RGB", "BGR"):
            raise MetadataError(f"{source}: channel_order must be RGB or BGR, not {meta.channel_order!r}")
        if not (8 <= meta.image_size <= 8192) or meta.resize < meta.image_size:
            raise MetadataError(f"{source}: bad image_size {meta.image_size} / resize {meta.resize}")
        return meta

    @classmethod
    def load(cls, path):
        d = read_json(path, MetadataError, missing="metadata file not found", what="metadata")
        return cls.from_dict(d, source=str(path))


def resize_for(image_size, ratio=0.875):
    """Shorter-side resize used by the eval transform: size / 0.875 (224 -> 256)."""
    return int(image_size / ratio)


def sidecar_path(model_path):
    """`dir/model.ms` -> `dir/model.json`."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"
