"""Model metadata that belongs to one model file (like timm's pretrained_cfg), validated once.

`ModelMeta` is frozen and checked by ONE schema (SCHEMA below) in `__post_init__`, so every way of
making one (JSON, code, `meta.replace(...)`) is validated: types, ranges, finiteness, enums, schema
version. Errors are MetadataError naming the file and the key ("m.json: key 'std': ...").

Where a model's metadata lives (one function, `find_meta`, looks in this order):

1. its own sidecar, named after the WHOLE file name: `model.ms` -> `model.ms.json`, `model.mindir` ->
   `model.mindir.json`, so files with one stem (`model.mindir`, `model.onnx`, `model.ms`) coexist.
   The sidecar records the model's size and sha256 (`model_file`); a sidecar whose model does not
   match is refused (it describes another version of the model, e.g. after an interrupted write);
2. for ONNX, inside the file: ModelProto.metadata_props[META_KEY] (runtime.onnx_meta, no onnx import);
3. a legacy sidecar `model.json` next to `model.ms` (written by earlier versions), with a warning;
4. the run folder's `model.json`, when the model was found through a run folder;
5. none: `default_meta` gives ImageNet preprocessing sized to the model's input, with a warning.

Writing: `save_model(path, model_bytes, meta)` replaces model and metadata as one unit. ONNX: the
metadata goes inside, one atomic rename. Other formats: model and sidecar temporaries are written and
fsynced, then the model is renamed, then the sidecar. Between the two renames (or if the process dies
there) the old sidecar sits next to the new model; its recorded hash no longer matches, so a reader
refuses the pair instead of using stale metadata. The next write removes leftover temporaries.

Training writes plain metadata (no model binding) as `model.json` in the run folder (`ModelMeta.save`).
"""
import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from .atomic import atomic_paths, atomic_write_bytes
from .errors import MetadataError
from .files import read_regular
from .jsonfile import read_json
from .onnx_meta import META_KEY, embed_onnx_meta, read_onnx_meta

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = (1,)
MAX_META_BYTES = 1 << 20          # a metadata JSON (sidecar, embedded, --meta file) is at most 1 MiB
MAX_META_DEPTH = 8                # our metadata nests 2 deep
MAX_CLASSES = 100_000
MAX_NAME_CHARS = 1024             # one class name, arch or input name
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 8192
MAX_RESIZE = 4 * MAX_IMAGE_SIZE
BINDING_KEY = "model_file"        # sidecar only: {"name", "size", "sha256"} of the model it describes
RUN_FOLDER_META = "model.json"
ENUMS = {
    "crop": ("center",),
    "interpolation": ("linear",),                 # runtime.preprocess.INTERPOLATIONS
    "channel_order": ("RGB", "BGR"),
    "layout": ("NCHW", "NHWC"),
    "exif_orientation": ("ignore", "apply"),      # runtime.images.EXIF_POLICIES
}


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _name(v, key, empty_ok=False):
    if not isinstance(v, str):
        raise MetadataError("<ModelMeta>", f"must be a string, not {type(v).__name__}", key)
    if (not v and not empty_ok) or len(v) > MAX_NAME_CHARS:
        raise MetadataError("<ModelMeta>", f"must be 1 to {MAX_NAME_CHARS} characters, not {len(v)}", key)
    return v


def _int_in(lo, hi):
    def check(v, key):
        if not isinstance(v, int) or isinstance(v, bool):
            raise MetadataError("<ModelMeta>", f"must be an integer, not {v!r}", key)
        if not lo <= v <= hi:
            raise MetadataError("<ModelMeta>", f"{v} is outside {lo}..{hi}", key)
        return v
    return check


def _positive_float(v, key):
    if not _is_number(v) or not math.isfinite(v) or v <= 0 or v > 100:
        raise MetadataError("<ModelMeta>", f"must be a finite number in (0, 100], not {v!r}", key)
    return float(v)


def _triple(lo, hi, positive):
    def check(v, key):
        if not isinstance(v, (list, tuple)) or len(v) != 3:
            raise MetadataError("<ModelMeta>", f"must be a list of 3 numbers, not {v!r}", key)
        out = []
        for i, x in enumerate(v):
            if not _is_number(x) or not math.isfinite(x):
                raise MetadataError("<ModelMeta>", f"value {i} must be a finite number, not {x!r}", key)
            if (positive and x <= 0) or not lo <= x <= hi:
                bound = f"in (0, {hi}]" if positive else f"in [{lo}, {hi}]"
                raise MetadataError("<ModelMeta>", f"value {i} must be {bound} (0..255 pixel values), "
                                                   f"not {x!r}", key)
            out.append(float(x))
        return tuple(out)
    return check


def _enum(key):
    def check(v, key=key):
        if v not in ENUMS[key] or not isinstance(v, str):
            raise MetadataError("<ModelMeta>", f"must be one of {', '.join(ENUMS[key])}, not {v!r}", key)
        return v
    return check


def _class_names(v, key):
    if not isinstance(v, (list, tuple)):
        raise MetadataError("<ModelMeta>", f"must be a list of strings, not {type(v).__name__}", key)
    if len(v) > MAX_CLASSES:
        raise MetadataError("<ModelMeta>", f"{len(v)} names, more than {MAX_CLASSES}", key)
    seen = set()
    for i, name in enumerate(v):
        if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
            raise MetadataError("<ModelMeta>", f"entry {i} must be a non-empty string of at most "
                                               f"{MAX_NAME_CHARS} characters, not {name!r}", key)
        if name in seen:
            raise MetadataError("<ModelMeta>", f"entry {i} {name!r} is a duplicate", key)
        seen.add(name)
    return tuple(v)


def _bool(v, key):
    if not isinstance(v, bool):
        raise MetadataError("<ModelMeta>", f"must be true or false, not {v!r}", key)
    return v


def _optional_name(v, key):
    return None if v is None else _name(v, key)


def _schema_version(v, key):
    if not isinstance(v, int) or isinstance(v, bool) or v not in KNOWN_SCHEMA_VERSIONS:
        raise MetadataError("<ModelMeta>", f"version {v!r} is not known to this runtime (known: "
                                           f"{', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}); upgrade it", key)
    return v


# The one schema: key -> check(value, key) returning the normalized value (or raising MetadataError).
SCHEMA = {
    "schema_version": _schema_version,
    "arch": _name,
    "width": _positive_float,
    "image_size": _int_in(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
    "resize": _int_in(MIN_IMAGE_SIZE, MAX_RESIZE),
    "crop": _enum("crop"),
    "interpolation": _enum("interpolation"),
    "mean": _triple(0.0, 255.0, positive=False),
    "std": _triple(0.0, 255.0, positive=True),
    "channel_order": _enum("channel_order"),
    "layout": _enum("layout"),
    "exif_orientation": _enum("exif_orientation"),
    "class_names": _class_names,
    "softmax": _bool,
    "input_name": _optional_name,
}


@dataclass(frozen=True)
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
    class_names: Tuple[str, ...] = ()       # a JSON list of strings; stored as a tuple (immutable)
    softmax: bool = False                   # whether the model output is already probabilities
    input_name: Optional[str] = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        for key, check in SCHEMA.items():
            object.__setattr__(self, key, check(getattr(self, key), key))
        if self.resize < self.image_size:
            raise MetadataError("<ModelMeta>", f"{self.resize} is smaller than image_size "
                                               f"{self.image_size} (the crop must fit)", "resize")

    @property
    def num_classes(self):
        return len(self.class_names)

    def replace(self, **changes):
        """A validated copy with `changes` (ModelMeta is frozen: there is no mutation)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        d = asdict(self)
        d["mean"], d["std"], d["class_names"] = list(self.mean), list(self.std), list(self.class_names)
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, path):
        """Plain metadata (no model binding): the run folder's model.json, or a --meta file."""
        atomic_write_bytes(path, (self.to_json() + "\n").encode("utf-8"))

    @classmethod
    def from_dict(cls, d, source="<dict>"):
        """Validated ModelMeta from a parsed JSON object; errors name `source` and the key.
        Keys this version does not know are ignored (a newer writer may add some)."""
        if not isinstance(d, dict):
            raise MetadataError(source, f"metadata must be a JSON object, not {type(d).__name__}")
        if "schema_version" in d:                 # first, so a newer file says "upgrade", not "bad key"
            try:
                _schema_version(d["schema_version"], "schema_version")
            except MetadataError as e:
                raise MetadataError(source, e.problem, e.key) from None
        kwargs = {k: v for k, v in d.items() if k in SCHEMA}
        if "class_names" in kwargs and not isinstance(kwargs["class_names"], list):
            raise MetadataError(source, "must be a JSON list of strings, not "
                                f"{type(kwargs['class_names']).__name__}", "class_names")
        try:
            return cls(**kwargs)
        except MetadataError as e:
            raise MetadataError(source, e.problem, e.key) from None

    @classmethod
    def load(cls, path):
        return cls.from_dict(read_meta_json(path), source=str(path))


def read_meta_json(path):
    """The parsed JSON of a metadata file, within MAX_META_BYTES / MAX_META_DEPTH."""
    return read_json(path, MetadataError, missing="metadata file not found", what="metadata",
                     max_bytes=MAX_META_BYTES, max_depth=MAX_META_DEPTH)


def resize_for(image_size, ratio=0.875):
    """Shorter-side resize used by the eval transform: size / 0.875 (224 -> 256)."""
    return int(image_size / ratio)


# ---------------------------------------------------------------------------------------------------
# Where a model's metadata lives

def sidecar_path(model_path):
    """The model's own sidecar: `dir/model.ms` -> `dir/model.ms.json` (the whole file name)."""
    return os.fspath(model_path) + ".json"


def legacy_sidecar_path(model_path):
    """The sidecar earlier versions wrote: `dir/model.ms` -> `dir/model.json` (shared by the stem)."""
    return os.path.splitext(os.fspath(model_path))[0] + ".json"


def embeds_meta(model_path):
    """True for formats that carry the metadata inside the file (ONNX)."""
    return os.fspath(model_path).lower().endswith(".onnx")


def file_identity(path):
    """{"size", "sha256"} of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"size": size, "sha256": h.hexdigest()}


def _check_binding(side, model_path, binding):
    if not isinstance(binding, dict) or not isinstance(binding.get("sha256"), str) \
            or not isinstance(binding.get("size"), int) or isinstance(binding.get("size"), bool):
        raise MetadataError(side, 'must be {"name", "size", "sha256"} of the model', BINDING_KEY)
    if not os.path.isfile(model_path):
        raise MetadataError(side, f"describes {model_path}, which does not exist", BINDING_KEY)
    size = os.path.getsize(model_path)
    if size == binding["size"]:
        have = file_identity(model_path)
        if have["sha256"] == binding["sha256"].lower():
            return
    raise MetadataError(side, f"describes a different version of model {model_path} (recorded size "
                              f"{binding['size']}, sha256 {binding['sha256'][:12]}..., the file has "
                              f"{size} bytes and differs); interrupted write? export or convert the "
                              "model again", BINDING_KEY)


def load_sidecar(model_path, side=None):
    """The ModelMeta of the model's own sidecar, after checking that it describes this very file."""
    side = side or sidecar_path(model_path)
    d = read_meta_json(side)
    if isinstance(d, dict) and BINDING_KEY in d:
        _check_binding(side, model_path, d[BINDING_KEY])
    else:
        log.warning("%s records no model hash (hand-written?): using it for %s unchecked", side, model_path)
    return ModelMeta.from_dict(d, source=side)


def load_embedded(model_path):
    """(ModelMeta, source) from the ONNX file's metadata_props, or (None, None) when it has none."""
    from .jsonfile import parse_json_text
    text = read_onnx_meta(model_path)
    if text is None:
        return None, None
    source = f"{model_path} (metadata_props key {META_KEY!r})"
    if len(text.encode("utf-8")) > MAX_META_BYTES:
        raise MetadataError(source, f"larger than {MAX_META_BYTES} bytes")
    d = parse_json_text(text, source, MetadataError, what="metadata", max_depth=MAX_META_DEPTH)
    return ModelMeta.from_dict(d, source=source), source


def find_meta(model_path, run_folder=None):
    """(ModelMeta or None, source) for a model file: its own sidecar, then metadata embedded in it
    (ONNX), then a legacy `stem.json` sidecar, then `run_folder/model.json`; (None, None) when none.
    A sidecar or embedded entry that exists but is wrong raises MetadataError (never skipped)."""
    model_path = os.fspath(model_path)
    own = sidecar_path(model_path)
    if os.path.isfile(own):
        return load_sidecar(model_path, own), own
    if embeds_meta(model_path) and os.path.isfile(model_path):
        meta, source = load_embedded(model_path)
        if meta is not None:
            return meta, source
    legacy = legacy_sidecar_path(model_path)
    if os.path.isfile(legacy):
        log.warning("%s: using the legacy metadata file %s (shared by every file named %s.*); "
                    "export or convert again to give the model its own metadata", model_path, legacy,
                    os.path.basename(os.path.splitext(model_path)[0]))
        return ModelMeta.load(legacy), legacy
    if run_folder is not None:
        run_meta = os.path.join(os.fspath(run_folder), RUN_FOLDER_META)
        if os.path.isfile(run_meta):
            return ModelMeta.load(run_meta), run_meta
    return None, None


def save_model(path, model_bytes, meta):
    """Write a model file and its metadata as one unit (see the module docstring); returns where the
    metadata went: the sidecar path, or "PATH (metadata_props key ...)" for ONNX."""
    path = os.fspath(path)
    if not isinstance(meta, ModelMeta):
        raise TypeError(f"meta must be a ModelMeta, not {type(meta).__name__}")
    text = meta.to_json()
    if embeds_meta(path):
        data = embed_onnx_meta(model_bytes, text, source=path)
        atomic_write_bytes(path, data)
        stale = sidecar_path(path)
        if os.path.isfile(stale):          # it would be looked up first, and describes the old file
            os.unlink(stale)
            log.info("removed %s: %s now carries its metadata inside", stale, path)
        return f"{path} (metadata_props key {META_KEY!r})"
    model_bytes = bytes(model_bytes)
    side = sidecar_path(path)
    binding = {"name": os.path.basename(path), "size": len(model_bytes),
               "sha256": hashlib.sha256(model_bytes).hexdigest()}
    d = meta.to_dict()
    d[BINDING_KEY] = binding
    with atomic_paths(path, side) as (tmp_model, tmp_side):
        with open(tmp_model, "wb") as f:
            f.write(model_bytes)
        with open(tmp_side, "wb") as f:
            f.write((json.dumps(d, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return side


# ---------------------------------------------------------------------------------------------------
# A model without metadata, and a model paired with metadata

def default_meta(spec, model_path, warn=True):
    """Metadata for a model that has none: ImageNet mean/std, shorter side image_size / 0.875, the
    layout and size of its input `spec`, no class names (labels show as class_0, class_1, ...)."""
    from .engines.layout import image_layout
    layout = image_layout(spec) or "NCHW"
    if len(spec.shape) != 4:
        raise MetadataError(model_path, f"has no metadata and its input {spec.name!r} "
                                        f"{list(spec.shape)} is not an image batch")
    hw = spec.shape[2:4] if layout == "NCHW" else spec.shape[1:3]
    if not hw[0] or hw[0] != hw[1]:
        raise MetadataError(model_path, f"has no metadata and its input {spec.name!r} {list(spec.shape)} "
                                        "has no fixed square size; give metadata (Classifier(path, "
                                        "meta=...), toolkit predict --meta FILE)")
    size = int(hw[0])
    if warn:
        log.warning("%s has no metadata (no %s%s): using ImageNet preprocessing for a %dx%d %s input and "
                    "labels class_0, class_1, ...; give it with Classifier(path, meta=...) or "
                    "Classifier(path, labels=[...]), or toolkit predict --meta FILE / --labels FILE",
                    model_path, os.path.basename(sidecar_path(model_path)),
                    ", no embedded metadata_props" if embeds_meta(model_path) else "", size, size, layout)
    return ModelMeta(image_size=size, resize=max(size, resize_for(size)), layout=layout,
                     input_name=spec.name or None)


def output_classes(spec):
    """Number of classes an output spec gives, or None when its shape does not say."""
    if not spec.shape:
        return None
    if len(spec.shape) == 4:                  # (N, C, 1, 1) heads
        return spec.shape[1]
    return spec.shape[-1]


def check_classes(meta, classes, model_path, meta_source, verb="outputs", noun="classes"):
    """The one check that a model and its metadata agree on the number of classes (Classifier at load
    and per call, bench --data rows, convert): raises MetadataError naming both when `classes` (from
    the model) differs from the number of class names. Metadata without class names fits any model."""
    if meta.class_names and classes is not None and int(classes) != meta.num_classes:
        raise MetadataError(f"model {model_path} {verb} {classes} {noun} but its metadata "
                            f"{meta_source} lists {meta.num_classes} class names")


def read_labels(path):
    """Class names from a labels file: one per line (blank lines ignored), at most MAX_META_BYTES."""
    path = os.fspath(path)
    data = read_regular(path, MAX_META_BYTES, MetadataError, what="labels file")
    try:
        names = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as e:
        raise MetadataError(path, f"labels are not UTF-8 text: {e}") from None
    if not names:
        raise MetadataError(path, "labels file lists no names")
    try:
        _class_names(names, "class_names")
    except MetadataError as e:
        raise MetadataError(path, e.problem.replace("entry", "line"), None) from None
    return names
