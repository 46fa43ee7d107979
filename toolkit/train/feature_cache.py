"""On-disk cache of pooled backbone features, keyed by everything the features depend on.

The ModelZoo recipe caches feature maps per batch index and silently reuses stale ones after a
change of batch size, image size or data. Here the key is a hash of the backbone weights (bytes),
every image file (path, label, size, mtime), the class names, the preprocessing rule, the image size
and the architecture, so any change selects a different entry by itself. Entries are written
atomically.

An entry found under the right key can still be damaged or tampered with (a truncated file, an
array of the wrong shape or dtype, NaNs, labels that are not the dataset's). Every array is
checked against what the dataset says it must be before anything is allocated or handed to
MindSpore (where a wrong shape ends in a graph-compilation traceback): `read` raises a
FeatureCacheError naming the file, the array and the problem. `load` turns that into a miss with a
warning carrying the same message, and the entry is extracted again and replaced: the cache is
derived data that can always be rebuilt exactly, so refusing to train would help no one, and the
warning (plus `rejected` in the run's feature info) keeps the fallback from being silent.

Interrupted extractions leave temporaries in the cache folder; `claim()` removes them when no
other process is using the folder (see toolkit.folder_lock, toolkit.leftovers).
"""
import contextlib
import hashlib
import json
import logging
import os
import zipfile

import numpy as np

from runtime.atomic import atomic_path, atomic_write_text
from runtime.errors import ToolkitError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ARRAYS = ("train_x", "train_y", "val_x", "val_y")
FEATURE_DTYPE = np.dtype(np.float32)
LABEL_KINDS = "iu"                      # labels: any integer dtype
MAX_HEADER_BYTES = 65536                # an .npy header is a few hundred bytes


class FeatureCacheError(ToolkitError):
    """A cache entry that is unreadable or does not hold what the dataset says it must."""

    def __init__(self, path, problem, array=None):
        self.path, self.problem, self.array = path, problem, array
        where = f"{path} [{array}]" if array else path
        super().__init__(f"feature cache {where}: {problem}")


def _read_member(zf, path, name, want_shape, kinds):
    """One .npy member of the archive, its header checked before any data is read."""
    member = name + ".npy"
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise FeatureCacheError(path, "array missing", name) from None
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = header(f, max_header_size=MAX_HEADER_BYTES)
        except (ValueError, OSError, EOFError) as e:
            raise FeatureCacheError(path, f"not a NumPy array ({e})", name) from None
        if dtype.hasobject or dtype.kind not in kinds:
            raise FeatureCacheError(path, f"dtype {dtype} (expected {'float32' if kinds == 'f' else 'integer'})",
                                    name)
        if kinds == "f" and dtype != FEATURE_DTYPE:
            raise FeatureCacheError(path, f"dtype {dtype} (expected float32)", name)
        if tuple(shape) != tuple(want_shape):
            raise FeatureCacheError(path, f"shape {tuple(shape)} (expected {tuple(want_shape)})", name)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise FeatureCacheError(path, f"truncated: {len(data)} of {nbytes} data bytes", name)
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def read_entry(path, dim, train_labels, val_labels, num_classes):
    """{train_x, train_y, val_x, val_y} from `path`, each array checked; raises FeatureCacheError.

    dim: the backbone's pooled feature size; *_labels: the dataset's labels in order."""
    want = {"train_x": ((len(train_labels), dim), "f"), "train_y": ((len(train_labels),), LABEL_KINDS),
            "val_x": ((len(val_labels), dim), "f"), "val_y": ((len(val_labels),), LABEL_KINDS)}
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {k: _read_member(zf, path, k, *want[k]) for k in ARRAYS}
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise FeatureCacheError(path, f"unreadable ({e})") from None
    for name in ("train_x", "val_x"):
        bad = np.flatnonzero(~np.isfinite(arrays[name]).all(axis=1))
        if len(bad):
            raise FeatureCacheError(path, f"{len(bad)} row(s) not finite, first row {int(bad[0])}", name)
    for name, labels in (("train_y", train_labels), ("val_y", val_labels)):
        y = arrays[name]
        outside = np.flatnonzero((y < 0) | (y >= num_classes))
        if len(outside):
            raise FeatureCacheError(path, f"label {int(y[outside[0]])} at row {int(outside[0])} is outside "
                                          f"0..{num_classes - 1}", name)
        differ = np.flatnonzero(y != np.asarray(labels, y.dtype))
        if len(differ):
            raise FeatureCacheError(path, f"{len(differ)} label(s) differ from the dataset's, first at "
                                          f"row {int(differ[0])}", name)
        arrays[name] = y.astype(np.int32)
    return arrays


def _file_stamp(path):
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]


def cache_key(backbone_arrays, train, val, class_names, preprocessing, image_size, arch, width):
    """Hex digest over every input of feature extraction.

    backbone_arrays: {name: ndarray}; train/val: samples with `.path` and `.label`;
    preprocessing: a JSON-able description of the eval transform.
    """
    h = hashlib.sha256()
    head = {"format": FORMAT_VERSION, "arch": arch, "width": float(width),
            "image_size": int(image_size), "classes": list(class_names),
            "preprocessing": preprocessing}
    h.update(json.dumps(head, sort_keys=True).encode())
    for name in sorted(backbone_arrays):
        a = np.ascontiguousarray(backbone_arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    for split, samples in (("train", train), ("val", val)):
        h.update(split.encode())
        for s in samples:
            h.update(json.dumps(_file_stamp(s.path) + [int(s.label)]).encode())
    return h.hexdigest()


class FeatureCache:
    """`root/<key>.npz` (arrays) plus `root/<key>.json` (what produced them)."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.rejected = None     # why the last `load` refused an entry

    def _paths(self, key):
        return os.path.join(self.root, key + ".npz"), os.path.join(self.root, key + ".json")

    def path(self, key):
        return self._paths(key)[0]

    def read(self, key, dim, train_labels, val_labels, num_classes):
        """The checked arrays of entry `key`, None if there is none; FeatureCacheError if damaged."""
        npz = self.path(key)
        if not os.path.exists(npz):
            return None
        return read_entry(npz, dim, train_labels, val_labels, num_classes)

    def load(self, key, dim, train_labels, val_labels, num_classes):
        """As `read`, but a damaged entry is a miss (None) with a warning; its reason is kept in
        `self.rejected` for the run's record."""
        self.rejected = None
        try:
            return self.read(key, dim, train_labels, val_labels, num_classes)
        except FeatureCacheError as e:
            self.rejected = str(e)
            log.warning("%s; extracting the features again", e)
            return None

    @contextlib.contextmanager
    def claim(self):
        """Use the cache folder for the block, deleting an interrupted run's temporaries first when
        no other process is using it (a live export's temporary folder is never touched)."""
        from toolkit.folder_lock import shared
        from toolkit.leftovers import remove_atomic_temps, remove_export_temp_dirs, report

        def clean():
            report(remove_atomic_temps(self.root) + remove_export_temp_dirs(self.root))
        with shared(self.root, when_alone=clean):
            yield self

    def info(self, key):
        try:
            with open(self._paths(key)[1], "r", encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save(self, key, arrays, info):
        npz, meta = self._paths(key)
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: arrays[k] for k in ARRAYS})
        atomic_write_text(meta, json.dumps(info, indent=2, sort_keys=True) + "\n")
        return npz
