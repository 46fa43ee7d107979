"""Top-1 accuracy of one row on an ImageFolder (class sub-folders), for `toolkit bench --data`.

Images are preprocessed exactly as the runtime does it for this model (runtime.preprocess.Preprocessor
driven by the model's sidecar metadata; ImageNet defaults sized to the input when there is none), then
run through the row's engine at the row's batch. The worker returns the predictions so the harness can
compute agreement with a reference row.
"""
import os

import numpy as np

from runtime.errors import ToolkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class BenchDataError(ToolkitError):
    """The --data folder is not a usable ImageFolder."""


def list_image_folder(root):
    """(class names sorted, [(path, class index)]) of an ImageFolder; raises on an empty or odd folder."""
    if not os.path.isdir(root):
        raise BenchDataError(f"{root}: not a folder")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise BenchDataError(f"{root}: no class sub-folders (expected ImageFolder layout root/CLASS/IMAGE)")
    samples = []
    for idx, name in enumerate(classes):
        folder = os.path.join(root, name)
        for fname in sorted(os.listdir(folder)):
            if fname.lower().endswith(IMAGE_SUFFIXES):
                samples.append((os.path.join(folder, fname), idx))
    if not samples:
        raise BenchDataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")
    return classes, samples


def class_index_map(folder_classes, meta):
    """Folder class index -> model output index, through the model's class names when it has them."""
    if meta is None or not meta.class_names:
        return list(range(len(folder_classes)))
    missing = [c for c in folder_classes if c not in meta.class_names]
    if missing:
        raise BenchDataError(f"class folder(s) {', '.join(missing)} are not among the model's classes "
                             f"{', '.join(meta.class_names)}")
    return [meta.class_names.index(c) for c in folder_classes]


def _meta_for(engine, meta):
    """The model's metadata, or defaults sized to the model's input when it has no sidecar."""
    if meta is not None:
        return meta
    from runtime.metadata import ModelMeta, resize_for
    spec = engine.inputs()[0]
    layout = input_layout(spec, ModelMeta())
    size = spec.shape[2] if layout == "NCHW" else spec.shape[1]
    if not size:
        raise BenchDataError(f"{engine.path}: no metadata sidecar and a dynamic input size; cannot "
                             "preprocess images for it")
    return ModelMeta(image_size=size, resize=resize_for(size), layout=layout)


def preprocessor(meta, layout):
    """The runtime's own metadata-driven preprocessing (runtime.preprocess.Preprocessor)."""
    try:
        from runtime.preprocess import Preprocessor
    except ImportError as e:
        raise BenchDataError(f"--data needs runtime.preprocess, which this build lacks ({e})") from None
    return Preprocessor(meta, layout)


def input_layout(spec, meta):
    """NCHW/NHWC as the model's input really is (runtime.engines.layout.image_layout: its declared
    format, else its channel axis), else the metadata (a sidecar shared by several files of one run
    may describe another file's layout)."""
    from runtime.engines.layout import image_layout
    return image_layout(spec) or meta.layout


def evaluate_folder(engine, root, meta, batch):
    """{'images', 'top1', 'predictions', 'labels'} of `engine` on the ImageFolder `root`."""
    classes, samples = list_image_folder(root)
    meta = _meta_for(engine, meta)
    to_model = class_index_map(classes, meta)
    from runtime.engines.batching import fixed_batch, run_batched
    spec = engine.inputs()[0]
    prep = preprocessor(meta, input_layout(spec, meta))
    chunk = fixed_batch(spec) or batch        # images preprocessed per engine call, not all at once
    preds = []
    for start in range(0, len(samples), chunk):
        part = samples[start:start + chunk]
        x = np.stack([prep(p) for p, _ in part]).astype(spec.dtype)
        out = run_batched(engine, x, max_batch=chunk)     # pads a fixed-batch model's last chunk
        preds.extend(int(i) for i in out.reshape(len(part), -1).argmax(axis=1))
    labels = [to_model[label] for _, label in samples]
    top1 = float(np.mean([p == t for p, t in zip(preds, labels)]))
    return {"images": len(samples), "top1": top1, "predictions": preds, "labels": labels}


def agreement(preds, reference_preds):
    """Fraction of images on which two rows predict the same class."""
    if len(preds) != len(reference_preds) or not preds:
        return None
    return float(np.mean([a == b for a, b in zip(preds, reference_preds)]))
