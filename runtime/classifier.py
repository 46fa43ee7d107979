"""Image in, labels out: metadata-driven preprocessing on whichever engine the device has.

    clf = Classifier("model.ms")                 # metadata: model.ms.json (runtime.metadata.find_meta)
    clf = Classifier("bare.onnx", labels="labels.txt")   # a model without metadata: defaults + labels
    clf.predict("cat.jpg")                       # [("cat", 0.93), ("dog", 0.05), ...]
    clf.predict(frame, order="BGR")              # arrays state their channel order
    clf.engine                                   # the raw-tensor engine (runtime.engines.base)

Thread safety: preprocessing runs in the calling thread; the engine call is serialised by a lock
unless the engine's runtime.formats.ENGINES entry says `thread_safe` (onnxruntime sessions are;
OpenCV DNN nets and MindSpore cells are not), so one Classifier can be shared by a pool of threads.
"""
import os
import threading

import numpy as np

from .engines import load
from .engines.batching import MAX_BATCH, run_batched
from .engines.layout import image_layout
from .errors import MetadataError, ModelFormatError
from .formats import FORMATS_BY_SUFFIX
from .metadata import (ModelMeta, check_classes, default_meta, find_meta, output_classes,
                       read_labels)
from .preprocess import Preprocessor

# In a run folder with several exported models, the first present is used (fastest engines first).
RUN_FOLDER_PREFERENCE = ("onnx", "ms", "mindir")


def _models_in(folder):
    """Runnable model files in `folder`, by format name."""
    found = {}
    if os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            fmt = FORMATS_BY_SUFFIX.get(os.path.splitext(f)[1].lower())
            if fmt is not None and fmt.name in RUN_FOLDER_PREFERENCE:
                found.setdefault(fmt.name, []).append(os.path.join(folder, f))
    return found


def resolve(path):
    """(model file, run folder or None) for a model file or a run folder.

    A folder means `model.<onnx|ms|mindir>` in it, else the files `toolkit export` wrote to its
    `export/` subfolder; the first format of RUN_FOLDER_PREFERENCE present wins, and two files of
    that format are ambiguous. The run folder is returned so that its model.json can serve as the
    metadata of last resort (runtime.metadata.find_meta).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        own = {fmt: [f for f in files if os.path.splitext(os.path.basename(f))[0] == "model"]
               for fmt, files in _models_in(path).items()}
        for candidates in ({k: v for k, v in own.items() if v}, _models_in(os.path.join(path, "export"))):
            for fmt in RUN_FOLDER_PREFERENCE:
                files = candidates.get(fmt, [])
                if len(files) > 1:
                    raise ModelFormatError(path, f"several {fmt} models, name one: {', '.join(files)}")
                if files:
                    return files[0], path
        raise ModelFormatError(path, "folder holds no model.onnx, model.ms or model.mindir and no "
                                     "export/ models; export or convert the run first")
    if not os.path.isfile(path):
        raise ModelFormatError(path, "no such model file or run folder")
    return path, None


def softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_meta(meta, engine, meta_source):
    """The layout to feed; raises MetadataError naming both files when they disagree."""
    inputs = engine.inputs()
    if len(inputs) != 1:
        raise MetadataError(f"{engine.path} takes {len(inputs)} inputs; an image classifier takes one")
    spec = inputs[0]
    problem = None
    if len(spec.shape) != 4:
        problem = f"input {spec.name!r} has shape {list(spec.shape)}, not an image batch"
    else:
        layout = image_layout(spec) or meta.layout
        if layout != meta.layout:
            problem = f"input {spec.name!r} is {layout} {list(spec.shape)} but metadata says {meta.layout}"
        else:
            hw = spec.shape[2:4] if layout == "NCHW" else spec.shape[1:3]
            ch = spec.shape[1] if layout == "NCHW" else spec.shape[3]
            if ch not in (None, 3):
                problem = f"input {spec.name!r} {list(spec.shape)} has {ch} channels, not 3"
            elif any(d not in (None, meta.image_size) for d in hw):
                problem = (f"input {spec.name!r} is {list(spec.shape)} but metadata says "
                           f"image_size {meta.image_size}")
    if problem:
        raise MetadataError(f"model {engine.path} contradicts metadata {meta_source}: {problem}")
    outputs = engine.outputs()     # may be empty until the first run (MindSpore Lite)
    if outputs:
        check_classes(meta, output_classes(outputs[0]), engine.path, meta_source,
                      verb=f"output {outputs[0].name!r} has")
    return meta.layout


def _with_labels(meta, meta_source, labels):
    """`meta` with the class names `labels` (a list of str, or a labels file)."""
    if isinstance(labels, (str, os.PathLike)):
        source = os.fspath(labels)
        names = read_labels(source)
    else:
        source = "<labels given by the caller>"
        if not isinstance(labels, (list, tuple)):
            raise MetadataError(source, f"must be a list of strings, not {type(labels).__name__}",
                                "class_names")
        names = labels
    try:
        meta = meta.replace(class_names=tuple(names))
    except MetadataError as e:
        raise MetadataError(source, e.problem, e.key) from None
    return meta, f"{meta_source} with labels from {source}"


class Classifier:
    """A model plus its metadata: `predict(image) -> [(label, score), ...]` (top-k)."""

    def __init__(self, path, engine="auto", device="cpu", threads=None, top_k=5, meta=None, labels=None):
        """`meta`: a ModelMeta or a metadata JSON file, instead of the model's own (see
        runtime.metadata.find_meta); `labels`: class names (a list, or a file with one per line)
        replacing the metadata's. A model without any metadata runs on defaults sized to its input
        (runtime.metadata.default_meta), with a warning."""
        self.model_path, run_folder = resolve(path)
        if meta is None:
            meta, meta_source = find_meta(self.model_path, run_folder)
        elif isinstance(meta, (str, os.PathLike)):
            meta_source = os.fspath(meta)
            meta = ModelMeta.load(meta_source)
        elif isinstance(meta, ModelMeta):
            meta_source = "<ModelMeta given by the caller>"
        else:
            raise TypeError(f"meta must be a ModelMeta or a path, not {type(meta).__name__}")
        self.top_k = int(top_k)
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        self.engine = load(self.model_path, engine=None if engine == "auto" else engine,
                           device=device, threads=threads)
        if meta is None:
            inputs = self.engine.inputs()
            if len(inputs) != 1:
                raise MetadataError(f"{self.model_path} takes {len(inputs)} inputs; an image classifier "
                                    "takes one")
            meta = default_meta(inputs[0], self.model_path)
            meta_source = f"defaults for {self.model_path} (it has no metadata)"
        if labels is not None:
            meta, meta_source = _with_labels(meta, meta_source, labels)
        self.meta = meta
        self._meta_source = meta_source
        self.layout = check_meta(meta, self.engine, meta_source)
        self.preprocess = Preprocessor(meta, self.layout)
        spec = self.engine.inputs()[0]
        self._input = spec
        self._batch_dim = spec.shape[0]
        self._lock = None if self.engine.thread_safe else threading.Lock()

    @property
    def device(self):
        return self.engine.device

    @property
    def labels(self):
        return list(self.meta.class_names)

    def label(self, index):
        names = self.meta.class_names
        return names[index] if index < len(names) else f"class_{index}"

    def infer(self, batch):
        """Raw scores (N, classes) for a preprocessed batch; fixed batch sizes are padded."""
        out = run_batched(self.engine, batch, MAX_BATCH, lock=self._lock)
        out = out.reshape(len(batch), -1)
        check_classes(self.meta, out.shape[1], self.model_path, self._meta_source,
                      verb="gives", noun="scores")
        return out

    def probabilities(self, batch):
        scores = self.infer(batch)
        return scores.astype(np.float64) if self.meta.softmax else softmax(scores)

    def top(self, probs, k=None):
        k = min(k or self.top_k, probs.shape[-1])
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.label(int(i)), float(probs[i])) for i in order]

    def predict(self, image, order=None, top_k=None):
        return self.predict_batch([image], order, top_k)[0]

    def predict_decoded(self, rgb, top_k=None, source="<array>"):
        """Top-k for an image already decoded to RGB uint8 (runtime.images.load_rgb)."""
        return self.top(self.probabilities(self.preprocess.from_rgb(rgb, source)[None])[0], top_k)

    def predict_batch(self, images, order=None, top_k=None):
        results = []
        step = self._batch_dim or MAX_BATCH
        for i in range(0, len(images), step):
            batch = self.preprocess.batch(images[i:i + step], order)
            results.extend(self.top(p, top_k) for p in self.probabilities(batch))
        return results

    def __repr__(self):
        return (f"<Classifier {self.model_path} on {type(self.engine).__name__}/{self.device}, "
                f"{self.meta.num_classes} classes, {self.layout}>")
