"""Image in, labels out: metadata-driven preprocessing on whichever engine the device has.

    clf = Classifier("model.ms")                 # reads model.json beside it
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
from .metadata import ModelMeta, sidecar_path
from .preprocess import Preprocessor

RUN_FOLDER_META = "model.json"
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
    """(model file, metadata file) for a model file or a run folder.

    A folder means `model.<onnx|ms|mindir>` in it, else the files `toolkit export` wrote to its
    `export/` subfolder; the first format of RUN_FOLDER_PREFERENCE present wins, and two files of
    that format are ambiguous. Metadata: the model's sidecar, else the folder's model.json.
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
                    side = sidecar_path(files[0])
                    return files[0], side if os.path.isfile(side) else os.path.join(path, RUN_FOLDER_META)
        raise ModelFormatError(path, "folder holds no model.onnx, model.ms or model.mindir and no "
                                     "export/ models; export or convert the run first")
    if not os.path.isfile(path):
        raise ModelFormatError(path, "no such model file or run folder")
    return path, sidecar_path(path)


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
    outputs = engine.outputs()     # may be empty until the first run (MindSpore Lite)
    if problem is None and meta.class_names and outputs:
        out = outputs[0]
        classes = out.shape[-1] if out.shape else None
        if out.shape and len(out.shape) == 4:       # (N, C, 1, 1) heads
            classes = out.shape[1]
        if classes is not None and classes != meta.num_classes:
            problem = (f"output {out.name!r} has {classes} classes but metadata lists "
                       f"{meta.num_classes} class names")
    if problem:
        raise MetadataError(f"model {engine.path} contradicts metadata {meta_source}: {problem}")
    return meta.layout


class Classifier:
    """A model plus its metadata: `predict(image) -> [(label, score), ...]` (top-k)."""

    def __init__(self, path, engine="auto", device="cpu", threads=None, top_k=5, meta=None):
        self.model_path, meta_path = resolve(path)
        if meta is None:
            meta = ModelMeta.load(meta_path)
        elif isinstance(meta, (str, os.PathLike)):
            meta_path = os.fspath(meta)
            meta = ModelMeta.load(meta_path)
        else:
            meta_path = "<ModelMeta given by the caller>"
        self.meta = meta
        self._meta_source = meta_path
        self.top_k = int(top_k)
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        self.engine = load(self.model_path, engine=None if engine == "auto" else engine,
                           device=device, threads=threads)
        self.layout = check_meta(meta, self.engine, meta_path)
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
        if self.meta.class_names and out.shape[1] != self.meta.num_classes:
            raise MetadataError(f"model {self.model_path} gives {out.shape[1]} scores but its "
                                f"metadata {self._meta_source} lists {self.meta.num_classes} "
                                "class names")
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
