"""Calibration for full-integer quantization: activation ranges of a float `.ms` model on real images.

The images are preprocessed by the one eval transform (runtime.preprocess.Preprocessor) from the
model's metadata, in the `.ms` input layout, exactly as the device will see them. The float model runs
on the project's `.ms` engine with every activation tensor exposed (MsEngine(expose=...)), one image at
a time, and each tensor keeps:

  min, max          over all images (the "minmax" method, converter_lite's MAX_MIN)
  a sample          SAMPLE_PER_IMAGE values per image drawn at random (seeded), for the "percentile"
                    method: the p-th percentile of each tail instead of the extremes, which a few
                    outliers would otherwise stretch (converter_lite's REMOVAL_OUTLIER is the same idea)
  channel means     mean over every axis but the last (the `.ms` channel axis), for bias correction

Bad calibration data are refused before anything runs, naming the folder or the file: no images, fewer
than MIN_IMAGES, an image that does not decode, a model whose input is not the metadata's image.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from runtime.errors import ImageError, ToolkitError

from .errors import ConversionError

MIN_IMAGES = 4                  # fewer cannot say anything about a range
SAMPLE_PER_IMAGE = 4096
METHODS = ("minmax", "percentile")


@dataclass
class TensorStats:
    lo: float = np.inf
    hi: float = -np.inf
    samples: list = field(default_factory=list)
    channel_sum: Optional[np.ndarray] = None
    count: int = 0
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), repr=False)

    def add(self, value):
        v = np.asarray(value, np.float32)
        if v.size == 0:
            return
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
        flat = v.reshape(-1)
        # a seeded random subset: a fixed stride through NHWC data would be a multiple of the
        # channel count as often as not, and sample one channel only
        pick = self.rng.integers(0, flat.size, SAMPLE_PER_IMAGE) if flat.size > SAMPLE_PER_IMAGE else slice(None)
        self.samples.append(flat[pick].copy())
        per_channel = v.reshape(-1, v.shape[-1]).astype(np.float64) if v.ndim >= 2 else flat[None]
        sums = per_channel.sum(axis=0)
        self.channel_sum = sums if self.channel_sum is None else self.channel_sum + sums
        self.count += per_channel.shape[0]

    def range(self, method, percentile):
        """(lo, hi) of the method, widened to hold 0 (zero must be exact in int8)."""
        if not np.isfinite(self.lo):
            raise ValueError("no values were seen")
        if method == "minmax":
            lo, hi = self.lo, self.hi
        else:
            pooled = np.concatenate(self.samples)
            lo, hi = (float(v) for v in np.percentile(pooled, [100.0 - percentile, percentile]))
        return min(lo, 0.0), max(hi, 0.0)

    def channel_means(self):
        return None if self.channel_sum is None else self.channel_sum / max(self.count, 1)


def calibration_images(folder, count, source):
    """`count` images of `folder` (ImageFolder or flat), evenly spaced over its sorted list so that
    every class folder is represented (the first N would be the first classes only); at least MIN_IMAGES."""
    import os
    from runtime.images import list_images
    if not folder or not os.path.isdir(folder):
        raise ConversionError(f"--calib {folder!r} is not a folder of images", path=source)
    files = list_images([folder])
    if not files:
        raise ConversionError(f"--calib {folder}: no images found (.jpg, .png, ... in the folder or "
                              "its class sub-folders)", path=source)
    if count < len(files):     # spread over the sorted list, so every class folder contributes
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, count).round()]
    if len(files) < MIN_IMAGES:
        raise ConversionError(f"--calib {folder}: {len(files)} image(s); calibration needs at least "
                              f"{MIN_IMAGES} (converter_lite's guidance is 100 or more)", path=source)
    return files


def _preprocessor(model, meta, layout, source):
    from runtime.preprocess import Preprocessor
    dims = tuple(model.tensors[model.inputs[0]].dims)
    if meta is None:
        raise ConversionError("--quant full needs the model's metadata (image size, mean, std) to "
                              "preprocess calibration images; the source has none (give the ONNX "
                              "that `toolkit export` wrote, or its NAME.json)", path=source)
    size = dims[1:3] if layout == "NHWC" else dims[2:4]
    if len(dims) != 4 or dims[0] != 1 or tuple(size) != (meta.image_size, meta.image_size):
        raise ConversionError(f"--quant full calibrates a batch-1 image model of the metadata's size "
                              f"{meta.image_size}; the model input is {list(dims)} ({layout})",
                              path=source)
    return Preprocessor(meta, layout=layout)


def calibrate(model, meta, files, layout, tensors, source="<model>",
              progress: Callable[[int, int], None] = None) -> Dict[int, TensorStats]:
    """{tensor index: TensorStats} for `tensors` (activation indices of the float `model`) and its
    graph input, over the images `files`. Runs on the `.ms` engine (fp32 model)."""
    from runtime.engines.ms_engine import MsEngine
    pre = _preprocessor(model, meta, layout, source)
    wanted = [i for i in dict.fromkeys([model.inputs[0]] + list(tensors)) if i != model.inputs[0]]
    engine = MsEngine.from_model(model, name=f"{source} (float model, calibration)", expose=wanted)
    names = [o.name for o in engine.outputs()]
    order = list(model.outputs) + [i for i in wanted if i not in model.outputs]
    stats = {i: TensorStats() for i in [model.inputs[0]] + order}
    for k, path in enumerate(files):
        try:
            x = pre(path)[None]
        except (ImageError, ToolkitError) as e:
            raise ConversionError(f"--calib: {e}", path=source) from None
        stats[model.inputs[0]].add(x)
        outs = engine.run([x])
        for idx, name in zip(order, names):
            stats[idx].add(outs[name])
        if progress is not None:
            progress(k + 1, len(files))
    return stats
