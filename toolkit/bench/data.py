"""Top-1 accuracy of one row on an ImageFolder (class sub-folders), for `toolkit bench --data`.

Images are preprocessed exactly as the runtime does it for this model (runtime.preprocess.Preprocessor
driven by the model's own metadata; runtime.metadata.default_meta when there is none), then
run through the row's engine at the row's batch. The worker returns the predictions so the harness can
compute agreement with a reference row.
"""
import os

import numpy as np

from runtime.errors import MetadataError, ToolkitError
from runtime.metadata import check_classes, default_meta, output_classes


class BenchDataError(ToolkitError):
    """The --data folder is not a usable ImageFolder."""


def list_image_folder(root):
    """(class names sorted, [(path, class index)]) of an ImageFolder; raises on an empty or odd folder.

    Which names count as images is the runtime's one rule (runtime.images.has_image_suffix)."""
    from runtime.images import IMAGE_SUFFIXES, has_image_suffix
    if not os.path.isdir(root):
        raise BenchDataError(f"{root}: not a folder")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise BenchDataError(f"{root}: no class sub-folders (expected ImageFolder layout root/CLASS/IMAGE)")
    samples = []
    for idx, name in enumerate(classes):
        folder = os.path.join(root, name)
        for fname in sorted(os.listdir(folder)):
            if has_image_suffix(fname):
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
    """The model's metadata, or the runtime's defaults for a model without any
    (runtime.metadata.default_meta: ImageNet preprocessing sized to the model's input)."""
    if meta is not None:
        return meta
    try:
        return default_meta(engine.inputs()[0], engine.path)
    except MetadataError as e:
        raise BenchDataError(f"cannot preprocess images for it: {e}") from None


def preprocessor(meta, layout):
    """The runtime's own metadata-driven preprocessing (runtime.preprocess.Preprocessor)."""
    try:
        from runtime.preprocess import Preprocessor
    except ImportError as e:
        raise BenchDataError(f"--data needs runtime.preprocess, which this build lacks ({e})") from None
    return Preprocessor(meta, layout)


def input_layout(spec, meta):
    """NCHW/NHWC as the model's input really is (runtime.engines.layout.image_layout: its declared
    format, else its channel axis), else the metadata."""
    from runtime.engines.layout import image_layout
    return image_layout(spec) or meta.layout


def evaluate_folder(engine, root, meta, batch):
    """{'images', 'top1', 'predictions', 'labels'} of `engine` on the ImageFolder `root`."""
    classes, samples = list_image_folder(root)
    meta = _meta_for(engine, meta)
    to_model = class_index_map(classes, meta)
    from runtime.engines.batching import fixed_batch, run_batched
    spec = engine.inputs()[0]
    outputs = engine.outputs()
    if outputs:                       # the same model/metadata check as runtime.Classifier
        check_classes(meta, output_classes(outputs[0]), engine.path, "its metadata")
    prep = preprocessor(meta, input_layout(spec, meta))
    chunk = fixed_batch(spec) or batch        # images preprocessed per engine call, not all at once
    preds = []
    for start in range(0, len(samples), chunk):
        part = samples[start:start + chunk]
        x = np.stack([prep(p) for p, _ in part]).astype(spec.dtype)
        out = run_batched(engine, x, max_batch=chunk)     # pads a fixed-batch model's last chunk
        out = out.reshape(len(part), -1)
        check_classes(meta, out.shape[1], engine.path, "its metadata", verb="gives", noun="scores")
        preds.extend(int(i) for i in out.argmax(axis=1))
    labels = [to_model[label] for _, label in samples]
    top1 = float(np.mean([p == t for p, t in zip(preds, labels)]))
    return {"images": len(samples), "top1": top1, "predictions": preds, "labels": labels}


def agreement(preds, reference_preds):
    """Fraction of images on which two rows predict the same class."""
    if len(preds) != len(reference_preds) or not preds:
        return None
    return float(np.mean([a == b for a, b in zip(preds, reference_preds)]))
