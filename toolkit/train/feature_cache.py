"""On-disk cache of pooled backbone features, keyed by everything the features depend on.

The ModelZoo recipe caches feature maps per batch index and silently reuses stale ones after a
change of batch size, image size or data. Here the key is a hash of the backbone weights (bytes),
every image file (path, label, size, mtime), the class names, the preprocessing rule, the image size
and the architecture, so any change selects a different entry by itself. Entries are written
atomically; an unreadable or inconsistent entry is treated as a miss and rebuilt.
"""
import hashlib
import json
import logging
import os
import zipfile

import numpy as np

from runtime.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
ARRAYS = ("train_x", "train_y", "val_x", "val_y")


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

    def _paths(self, key):
        return os.path.join(self.root, key + ".npz"), os.path.join(self.root, key + ".json")

    def load(self, key, n_train, n_val):
        """The cached arrays, or None on a miss or a damaged entry."""
        npz, meta = self._paths(key)
        if not os.path.exists(npz):
            return None
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ARRAYS}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            log.warning("feature cache %s is unreadable (%s); extracting again", npz, e)
            return None
        if len(arrays["train_x"]) != n_train or len(arrays["val_x"]) != n_val or \
                len(arrays["train_y"]) != n_train or len(arrays["val_y"]) != n_val:
            log.warning("feature cache %s does not match the dataset; extracting again", npz)
            return None
        return arrays

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
