"""Eval preprocessing driven only by ModelMeta, bit-identical to MindSpore's eval pipeline.

    Decode -> Resize(meta.resize) -> CenterCrop(meta.image_size) -> Normalize(mean, std) -> HWC2CHW

Each step reproduces `mindspore.dataset.vision` exactly (max abs difference 0.0, checked by
tests/test_preprocess_parity.py against MindSpore's own pipeline):

- Resize(n) scales the shorter side to n and the longer side to floor(long * n / short), with
  cv2.INTER_LINEAR (INTER_LINEAR_EXACT or PIL bilinear differ);
- CenterCrop(s) takes offset floor((H - s) / 2), floor((W - s) / 2);
- Normalize computes (x - mean) / std in float32 (multiplying by 1/std differs in the last bit);
- the result is laid out NCHW or NHWC, whichever the model's input takes.

It is the one eval transform of the project: the device, `toolkit evaluate`, head-mode feature
extraction and validation during training all call it (toolkit.data.pipeline.eval_batches), so
`spec()` (every parameter plus the decoder's identity) describes exactly what ran, for cache keys.
"""
from .errors import ImageError, MetadataError
from .images import EXIF_POLICIES, MAX_PIXELS, decoder_identity, describe, load_rgb

import cv2  # noqa: E402  (after runtime.images, which bounds OpenCV before it loads)
import numpy as np  # noqa: E402

INTERPOLATIONS = {"linear": cv2.INTER_LINEAR}
LAYOUTS = ("NCHW", "NHWC")


def resized_shape(height, width, size):
    """(h, w) after the shorter side is scaled to `size`, floor rounding for the longer side."""
    if height < width:
        return size, width * size // height
    return height * size // width, size


def resize_shorter(img, size, interpolation=cv2.INTER_LINEAR):
    h, w = img.shape[:2]
    nh, nw = resized_shape(h, w, size)
    return cv2.resize(img, (nw, nh), interpolation=interpolation)


def center_crop(img, size):
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {w}x{h} image")
    top, left = (h - size) // 2, (w - size) // 2
    return img[top:top + size, left:left + size]


def normalize(img, mean, std):
    """(x - mean) / std in float32, in place on one fresh buffer (same bits, half the time)."""
    out = img.astype(np.float32)
    out -= np.asarray(mean, np.float32)
    out /= np.asarray(std, np.float32)
    return out


class Preprocessor:
    """Callable: image (path, bytes, array) -> float32 tensor of one image, CHW or HWC."""

    def __init__(self, meta, layout=None):
        self.meta = meta
        self.layout = layout or meta.layout
        if self.layout not in LAYOUTS:
            raise MetadataError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        self.interpolation = INTERPOLATIONS.get(meta.interpolation)
        if self.interpolation is None:
            raise MetadataError(f"interpolation {meta.interpolation!r} is not supported; "
                                f"known: {', '.join(INTERPOLATIONS)}")
        if meta.exif_orientation not in EXIF_POLICIES:
            raise MetadataError(f"exif_orientation {meta.exif_orientation!r} is not supported; "
                                f"known: {', '.join(EXIF_POLICIES)}")
        if meta.crop != "center":
            raise MetadataError(f"crop {meta.crop!r} is not supported; known: center")
        self.mean = np.asarray(meta.mean, np.float32)
        self.std = np.asarray(meta.std, np.float32)

    def spec(self):
        """Every parameter of this transform and the decoder's identity, as JSON-able data.

        Two Preprocessors with equal specs give the same tensor for the same file; anything that
        changes the output (a metadata field, the decoder or its libraries) changes the spec."""
        m = self.meta
        return {"transform": "runtime.preprocess.Preprocessor",
                "steps": ["decode", "resize_shorter", "center_crop", "channel_order", "normalize",
                          "layout"],
                "image_size": int(m.image_size), "resize": int(m.resize), "crop": m.crop,
                "interpolation": m.interpolation, "mean": [float(v) for v in self.mean],
                "std": [float(v) for v in self.std], "channel_order": m.channel_order,
                "layout": self.layout, "exif_orientation": m.exif_orientation,
                "dtype": "float32", "decoder": decoder_identity()}

    def from_rgb(self, rgb, source="<array>"):
        """Preprocess an already decoded RGB uint8 HWC array."""
        nh, nw = resized_shape(rgb.shape[0], rgb.shape[1], self.meta.resize)
        if nh * nw > MAX_PIXELS:       # a 1x100000 strip would become 20 million pixels wide
            raise ImageError(source, f"aspect ratio {rgb.shape[1]}x{rgb.shape[0]} is too extreme: "
                                     f"resizing would make {nw}x{nh} pixels")
        img = resize_shorter(rgb, self.meta.resize, self.interpolation)
        img = center_crop(img, self.meta.image_size)
        if self.meta.channel_order == "BGR":
            img = img[..., ::-1]
        img = normalize(img, self.mean, self.std)
        if self.layout == "NCHW":
            img = img.transpose(2, 0, 1)
        return np.ascontiguousarray(img)

    def __call__(self, image, order=None):
        return self.from_rgb(load_rgb(image, order, self.meta.exif_orientation), describe(image))

    def batch(self, images, order=None):
        return np.stack([self(im, order) for im in images])
