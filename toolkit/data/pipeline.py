"""Input pipelines: MindSpore datasets for training/validation, and batches of the one eval transform.

Both start from the project's one decoder (`runtime.images.load_rgb`, the device's own: OpenCV, EXIF
policy from the metadata, grayscale/RGBA/16-bit/CMYK normalised to 8-bit RGB, hostile files refused)
inside a GeneratorDataset source, so odd files never reach MindSpore's JPEG decoder; for ordinary
JPEGs this equals `vision.Decode()` bit for bit. Every number comes from the model's metadata
(`runtime.metadata.ModelMeta`, the model.json training writes): the train recipe is the ModelZoo one
with `RandomCropDecodeResize` split into decode + `RandomResizedCrop` (same scale and ratio ranges) at
meta.image_size, normalised with meta.mean/std; the eval recipe is Resize(meta.resize) +
CenterCrop(meta.image_size) + Normalize. `eval_batches` runs the device's `runtime.preprocess.
Preprocessor(meta)` instead of MindSpore, equal to the MindSpore eval recipe (tested to 0.0 difference),
so features can be extracted with any engine and `toolkit evaluate` sees what the device sees.
"""
import logging

import numpy as np

from runtime.errors import ImageError, MetadataError
from runtime.images import load_rgb
from runtime.metadata import ModelMeta
from runtime.mindspore_import import from_mindspore, import_mindspore
from runtime.preprocess import Preprocessor

from .errors import DatasetError

log = logging.getLogger(__name__)

SCALE = (0.08, 1.0)
RATIO = (0.75, 1.333)
JITTER = 0.4


def _require_meta(meta, what):
    if not isinstance(meta, ModelMeta):
        raise TypeError(f"{what} takes the model's runtime.metadata.ModelMeta (the model.json "
                        f"training writes), not {type(meta).__name__}")
    return meta


class _Source:
    """Random-access source for GeneratorDataset: (RGB uint8 HWC, int32 label)."""

    def __init__(self, samples, exif_orientation="ignore"):
        self.samples = list(samples)
        self.exif_orientation = exif_orientation

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            return load_rgb(path, exif_orientation=self.exif_orientation), np.array(label, np.int32)
        except ImageError as e:   # changed on disk after scan_dataset checked it
            raise DatasetError(f"image became unreadable after the dataset scan: {e}") from None


def _mindspore_recipe_check(meta):
    """The metadata values MindSpore's recipe below implements; anything else is refused, not
    approximated (the runtime's Preprocessor refuses the same unknown values)."""
    Preprocessor(meta)                               # interpolation, crop, EXIF policy, layout known
    unsupported = {"layout": (meta.layout, "NCHW"), "channel_order": (meta.channel_order, "RGB")}
    for key, (value, supported) in unsupported.items():
        if value != supported:
            raise MetadataError(f"training networks take {supported} input; metadata {key} "
                                f"{value!r} is not supported by the training pipeline")


def _transforms(meta, train):
    vision = from_mindspore("mindspore.dataset", "vision")
    normalize = [vision.Normalize(mean=list(meta.mean), std=list(meta.std)), vision.HWC2CHW()]
    if train:
        return [vision.RandomResizedCrop(meta.image_size, scale=SCALE, ratio=RATIO),
                vision.RandomHorizontalFlip(prob=0.5),
                vision.RandomColorAdjust(brightness=JITTER, contrast=JITTER, saturation=JITTER)] + normalize
    return [vision.Resize(meta.resize), vision.CenterCrop(meta.image_size)] + normalize


def make_loader(samples, meta, batch_size, train, seed=0, shuffle=None, num_shards=None,
                shard_id=None, num_workers=1):
    """A batched `mindspore.dataset.Dataset` with columns image (float32 CHW) and label (int32).

    `meta`: the model's ModelMeta (toolkit.train.outputs.model_meta), source of every number.

    Deterministic for a given seed with num_workers=1 (order and augmentation); pass seed+epoch per
    epoch for a different but reproducible order. A training set smaller than one batch gives one
    smaller batch (announced); otherwise training drops the incomplete last batch, eval keeps it.
    """
    _mindspore_recipe_check(_require_meta(meta, "make_loader"))
    ds = import_mindspore("mindspore.dataset")
    mstype = from_mindspore("mindspore", "dtype")
    transforms = from_mindspore("mindspore.dataset", "transforms")

    samples = list(samples)
    if not samples:
        raise DatasetError("no images to load (the split is empty)")
    if batch_size < 1:
        raise DatasetError(f"batch size must be >= 1, got {batch_size}")
    shuffle = train if shuffle is None else shuffle
    per_shard = len(samples) // (num_shards or 1)
    drop_remainder = train
    if per_shard < batch_size:
        log.warning("only %d image(s)%s, fewer than the batch size %d: using one batch of %d",
                    per_shard, " per shard" if num_shards else "", batch_size, max(per_shard, 1))
        batch_size, drop_remainder = max(per_shard, 1), False
    ds.config.set_seed(seed)
    data = ds.GeneratorDataset(_Source(samples, meta.exif_orientation), column_names=["image", "label"],
                               shuffle=shuffle, num_shards=num_shards, shard_id=shard_id,
                               num_parallel_workers=num_workers, python_multiprocessing=False)
    data = data.map(_transforms(meta, train), input_columns="image", num_parallel_workers=num_workers)
    data = data.map(transforms.TypeCast(mstype.int32), input_columns="label")
    return data.batch(batch_size, drop_remainder=drop_remainder)


def eval_batches(samples, meta, batch_size):
    """Yield (float32 batch, int32 labels): `runtime.preprocess.Preprocessor(meta)` on each image,
    laid out as meta.layout; the last batch may be short."""
    pre = Preprocessor(_require_meta(meta, "eval_batches"))
    samples = list(samples)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = []
        for path, _ in chunk:
            try:
                rgb = load_rgb(path, exif_orientation=meta.exif_orientation)
            except ImageError as e:
                raise DatasetError(f"image became unreadable after the dataset scan: {e}") from None
            try:
                images.append(pre.from_rgb(rgb, path))
            except ImageError as e:
                raise DatasetError(str(e)) from None
        yield np.stack(images), np.array([label for _, label in chunk], np.int32)
