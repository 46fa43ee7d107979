"""The inputs that prove a model: seeded random batches or preprocessed images, and their labels.

Shared by `--verify`, `--golden` (converters.verify, converters.golden) and `toolkit compare`
(converters.compare), so that every comparison of two models feeds them the same tensors. Images are
preprocessed by runtime.preprocess from the model's metadata; an ImageFolder (class sub-folders named
after the metadata's class_names) also gives labels.
"""
import os

import numpy as np

from .errors import ConversionError


def image_files(images, n, batch):
    """The image files verification uses: the first n batches' worth under `images`, sorted."""
    from runtime.images import list_images
    files = list_images([images])
    if not files:
        raise ConversionError(f"{images}: no images found for --verify")
    return files[:n * batch]


def image_labels(images, files, meta):
    """(class index per file, None) when `images` is an ImageFolder whose class sub-folders are
    names in meta.class_names, else (None, why not)."""
    names = list(getattr(meta, "class_names", ()) or ())
    if not names:
        return None, "the metadata has no class_names, so the images' folders cannot be labels"
    index = {c: k for k, c in enumerate(names)}
    labels = []
    for f in files:
        parts = os.path.relpath(f, images).split(os.sep)
        if len(parts) < 2:
            return None, f"{f} is not in a class sub-folder of {images}: accuracy needs an ImageFolder"
        if parts[0] not in index:
            return None, f"folder {parts[0]!r} of {images} is not one of the metadata's class_names"
        labels.append(index[parts[0]])
    return np.asarray(labels), None


def verification_inputs(meta, shape_nchw, n, images, seed=0):
    """(list of NCHW float32 arrays of `shape_nchw`, description)."""
    batch = shape_nchw[0]
    if images:
        from runtime.preprocess import Preprocessor
        files = image_files(images, n, batch)
        if meta.image_size != shape_nchw[2] or shape_nchw[2] != shape_nchw[3]:
            raise ConversionError(f"model input {list(shape_nchw)} does not match the metadata's "
                                  f"image_size {meta.image_size}")
        pre = Preprocessor(meta, layout="NCHW")
        arrays = [pre(f) for f in files]
        if len(arrays) < batch:
            raise ConversionError(f"{images}: {len(arrays)} image(s), fewer than the batch size {batch}")
        return [np.stack(arrays[i:i + batch]) for i in range(0, len(arrays) - batch + 1, batch)], images
    rng = np.random.default_rng(seed)
    mean = np.asarray(meta.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(meta.std, np.float32).reshape(1, 3, 1, 1)
    out = []
    for _ in range(n):
        pixels = rng.uniform(0, 255, size=shape_nchw).astype(np.float32)
        out.append(((pixels - mean) / std) if shape_nchw[1] == 3 else pixels / 255.0)
    return out, "random"


def model_inputs(ms_shape, meta, n, images, input_layout, source_path, seed=0):
    """The verification inputs for a `.ms` input of `ms_shape`: (NCHW-for-images batches of the
    `.ms` batch size, description, whether it is an image batch). The same inputs serve `--verify`,
    its official cross-check and `--golden`."""
    shape = tuple(ms_shape)
    if any(d is None for d in shape):
        raise ConversionError(f"verification needs a static input shape, got {shape}")
    image = len(shape) == 4
    nchw = shape if input_layout == "NCHW" or not image else (shape[0], shape[3], shape[1], shape[2])
    if image and meta is not None:
        batches, desc = verification_inputs(meta, nchw, n, images, seed)
    elif images:
        raise ConversionError(f"{source_path}: --images needs an image model with metadata; this one "
                              f"takes {list(shape)}" + ("" if image else " (not an image batch)"))
    else:           # no image semantics: standard-normal tensors exercise every input value range
        rng = np.random.default_rng(seed)
        batches, desc = [rng.standard_normal(nchw).astype(np.float32) for _ in range(n)], "random normal"
    return batches, desc, image


def to_ms_layout(x, image, input_layout):
    """NCHW verification arrays in the `.ms` input layout."""
    return x if input_layout == "NCHW" or not image else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
