"""Input pipelines: MindSpore datasets for training/validation and a NumPy twin of the eval transform.

Images are decoded by the project's policy (`images.read_rgb`: OpenCV, EXIF orientation ignored,
grayscale/RGBA/16-bit normalised to 8-bit RGB) inside a GeneratorDataset source, so odd files never reach
MindSpore's JPEG decoder; for ordinary JPEGs this equals `vision.Decode()` bit for bit. The train recipe
is the ModelZoo one with `RandomCropDecodeResize` split into decode + `RandomResizedCrop` (same scale and
ratio ranges). `eval_batches` reproduces the MindSpore eval transform exactly (tested to 0.0 difference)
so features can be extracted with onnxruntime.
"""
import logging

import cv2
import numpy as np

from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD, resize_for
from runtime.mindspore_import import from_mindspore, import_mindspore

from .errors import DatasetError
from .images import UnreadableImage, read_rgb

log = logging.getLogger(__name__)

SCALE = (0.08, 1.0)
RATIO = (0.75, 1.333)
JITTER = 0.4


class _Source:
    """Random-access source for GeneratorDataset: (RGB uint8 HWC, int32 label)."""

    def __init__(self, samples):
        self.samples = list(samples)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        try:
            return read_rgb(path), np.array(label, np.int32)
        except UnreadableImage as e:   # changed on disk after scan_dataset checked it
            raise DatasetError(f"image became unreadable after the dataset scan: {e}") from None


def _transforms(image_size, train):
    vision = from_mindspore("mindspore.dataset", "vision")
    normalize = [vision.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD)), vision.HWC2CHW()]
    if train:
        return [vision.RandomResizedCrop(image_size, scale=SCALE, ratio=RATIO),
                vision.RandomHorizontalFlip(prob=0.5),
                vision.RandomColorAdjust(brightness=JITTER, contrast=JITTER, saturation=JITTER)] + normalize
    return [vision.Resize(resize_for(image_size)), vision.CenterCrop(image_size)] + normalize


def make_loader(samples, image_size, batch_size, train, seed=0, shuffle=None, num_shards=None,
                shard_id=None, num_workers=1):
    """A batched `mindspore.dataset.Dataset` with columns image (float32 CHW) and label (int32).

    Deterministic for a given seed with num_workers=1 (order and augmentation); pass seed+epoch per
    epoch for a different but reproducible order. A training set smaller than one batch gives one
    smaller batch (announced); otherwise training drops the incomplete last batch, eval keeps it.
    """
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
    data = ds.GeneratorDataset(_Source(samples), column_names=["image", "label"], shuffle=shuffle,
                               num_shards=num_shards, shard_id=shard_id,
                               num_parallel_workers=num_workers, python_multiprocessing=False)
    data = data.map(_transforms(image_size, train), input_columns="image", num_parallel_workers=num_workers)
    data = data.map(transforms.TypeCast(mstype.int32), input_columns="label")
    return data.batch(batch_size, drop_remainder=drop_remainder)


def eval_transform(rgb, image_size):
    """NumPy/OpenCV twin of the eval transform: uint8 RGB HWC -> float32 CHW."""
    resize = resize_for(image_size)
    h, w = rgb.shape[:2]
    if h <= w:
        nh, nw = resize, int(w * resize / h)
    else:
        nh, nw = int(h * resize / w), resize
    img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else rgb
    top, left = (nh - image_size) // 2, (nw - image_size) // 2
    img = img[top:top + image_size, left:left + image_size].astype(np.float32)
    img = (img - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def eval_batches(samples, image_size, batch_size):
    """Yield (float32 NCHW batch, int32 labels) with exactly the eval transform; last batch may be short."""
    samples = list(samples)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        try:
            images = np.stack([eval_transform(read_rgb(p), image_size) for p, _ in chunk])
        except UnreadableImage as e:
            raise DatasetError(f"image became unreadable after the dataset scan: {e}") from None
        yield images, np.array([label for _, label in chunk], np.int32)
