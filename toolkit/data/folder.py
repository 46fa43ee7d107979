"""ImageFolder datasets: `root/train/<class>/*` and `root/val/<class>/*`, or `root/<class>/*`.

Every file is checked once here, decoded by the project's one decoder (runtime.images, the same the
device uses), so a bad file can never crash an epoch later: unreadable files (not an image, corrupt,
truncated, too large, a FIFO or device, a dangling link) are skipped and reported by name with the
decoder's reason. Only problems that leave nothing to train on, or a folder that cannot be listed
(a symbolic-link loop, no permission), are fatal (DatasetError naming the path).
"""
import logging
import os
from collections import Counter, namedtuple
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from runtime.errors import ImageError
from runtime.images import load_rgb

from .errors import DatasetError

log = logging.getLogger(__name__)

Sample = namedtuple("Sample", "path label")
SPLITS = ("train", "val")
REPORT_MAX_NAMES = 20


@dataclass
class DatasetIndex:
    root: str
    classes: List[str]
    train: List[Sample]
    val: List[Sample]
    skipped: List[Tuple[str, str]] = field(default_factory=list)   # (path, reason)
    warnings: List[str] = field(default_factory=list)
    split_from_train: bool = False          # True when val/ was absent and val was split off

    @property
    def num_classes(self):
        return len(self.classes)

    def split(self, name):
        """Samples of one split: "train", "val" or "all"."""
        if name == "all":
            return self.train + self.val
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; use train, val or all")
        return getattr(self, name)

    def report(self):
        """Human-readable summary lines: sizes, per-class counts, warnings, skipped files."""
        how = "split off train (no val/ folder)" if self.split_from_train else "from val/"
        lines = [f"dataset {self.root}: {self.num_classes} classes, {len(self.train)} train, "
                 f"{len(self.val)} val images ({how})"]
        tc, vc = Counter(s.label for s in self.train), Counter(s.label for s in self.val)
        for i, name in enumerate(self.classes):
            lines.append(f"  {name}: {tc[i]} train, {vc[i]} val")
        lines.extend(f"warning: {w}" for w in self.warnings)
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable file(s):")
            lines.extend(f"  {p}: {r}" for p, r in self.skipped[:REPORT_MAX_NAMES])
            if len(self.skipped) > REPORT_MAX_NAMES:
                lines.append(f"  ... and {len(self.skipped) - REPORT_MAX_NAMES} more")
        return lines


def _entries(path):
    """(DirEntry, is_dir) of the visible entries of `path`; DatasetError naming the entry when one
    cannot be examined (a symbolic-link loop raises ELOOP here) or the folder cannot be listed."""
    try:
        with os.scandir(path) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as e:
        raise DatasetError(path, f"cannot list the folder: {e.strerror or e}") from None
    out = []
    for e in entries:
        try:
            out.append((e, e.is_dir()))
        except OSError as err:
            raise DatasetError(e.path, f"cannot be examined: {err.strerror or err}"
                               + (" (symbolic link loop)" if e.is_symlink() else "")) from None
    return out


def _list_dirs(path):
    return sorted(e.name for e, is_dir in _entries(path) if is_dir)


def _list_files(path):
    """Every visible entry that is not a folder: FIFOs, devices and dangling links included, so the
    decoder refuses them by name in the skipped-files report instead of them vanishing silently."""
    return sorted(e.path for e, is_dir in _entries(path) if not is_dir)


def _check(path):
    try:
        load_rgb(path)
        return path, None
    except ImageError as e:
        return path, e.problem


def _readable(paths, skipped, workers):
    with ThreadPoolExecutor(max_workers=workers) as pool:     # cv2 releases the GIL while decoding
        results = list(pool.map(_check, paths))
    skipped.extend((p, r) for p, r in results if r is not None)
    return [p for p, r in results if r is None]


def _split_val(paths, fraction, rng):
    """Deterministic per-class split: at least one image on each side when there are two or more."""
    n = len(paths)
    k = int(round(n * fraction))
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    order = rng.permutation(n)
    val = sorted(paths[i] for i in order[:k])
    return sorted(paths[i] for i in order[k:]), val


def scan_dataset(root, val_fraction=0.2, seed=0, workers=None):
    """Index an ImageFolder dataset; see the module docstring. Raises DatasetError when unusable."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"{root}: dataset folder not found")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in [0, 1), got {val_fraction}")
    has_train = os.path.isdir(os.path.join(root, "train"))
    has_val = os.path.isdir(os.path.join(root, "val"))
    train_root = os.path.join(root, "train") if has_train else root
    classes = _list_dirs(train_root)
    if not has_train and has_val:
        classes = [c for c in classes if c != "val"]
    if not classes:
        raise DatasetError(f"{train_root}: no class folders (expected {train_root}/<class>/<images>)")
    workers = workers or min(8, os.cpu_count() or 1)
    index = DatasetIndex(root=root, classes=classes, train=[], val=[], split_from_train=not has_val)
    if has_val:
        extra = sorted(set(_list_dirs(os.path.join(root, "val"))) - set(classes))
        if extra:
            index.warnings.append(f"val/ has class folder(s) missing from train: {', '.join(extra)}; "
                                  "ignored")
    for label, name in enumerate(classes):
        files = _readable(_list_files(os.path.join(train_root, name)), index.skipped, workers)
        val_dir = os.path.join(root, "val", name)
        if has_val:
            val_files = _readable(_list_files(val_dir), index.skipped, workers) \
                if os.path.isdir(val_dir) else []
        else:
            files, val_files = _split_val(files, val_fraction, np.random.default_rng([seed, label]))
        index.train.extend(Sample(p, label) for p in files)
        index.val.extend(Sample(p, label) for p in val_files)
        if not files and not val_files:
            index.warnings.append(f"class '{name}' has no readable images")
        elif not files:
            index.warnings.append(f"class '{name}' has no readable training images")
    if not index.train and not index.val:
        n = len(index.skipped)
        raise DatasetError(f"{root}: no readable images in {len(classes)} class folder(s)"
                           + (f" ({n} file(s) skipped, e.g. {index.skipped[0][0]}: "
                              f"{index.skipped[0][1]})" if n else ""))
    for line in index.warnings:
        log.warning("warning: %s", line)
    if index.skipped:
        log.warning("skipped %d unreadable file(s): %s", len(index.skipped),
                    ", ".join(f"{os.path.basename(p)} ({r})" for p, r in index.skipped[:5])
                    + (" ..." if len(index.skipped) > 5 else ""))
    return index
