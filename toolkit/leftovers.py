"""Temporaries that an interrupted run leaves behind, recognised only by the names we give them.

`runtime.atomic.atomic_path` writes `.<name>.<8 random chars>.tmp` beside its target (mkstemp's
alphabet: lower-case letters, digits and `_`) and renames it on success; head mode's ONNX export
uses `tempfile.TemporaryDirectory` (`tmp<8 random chars>`) in the feature cache, holding only the
`.onnx` file. A kill -9 skips the clean-up of both. These functions delete such leftovers and
nothing else; the caller makes sure no live process is writing them (toolkit.folder_lock).
"""
import logging
import os
import re
import shutil

log = logging.getLogger(__name__)

ATOMIC_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
EXPORT_TEMP_DIR = re.compile(r"^tmp[a-z0-9_]{8}$")
EXPORT_TEMP_FILES = (".onnx",)


def remove_atomic_temps(folder):
    """Delete `.<name>.<random>.tmp` files directly in `folder`; returns the paths removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if ATOMIC_TEMP.match(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def _is_export_temp(entry):
    if not (EXPORT_TEMP_DIR.match(entry.name) and entry.is_dir(follow_symlinks=False)):
        return False
    inside = list(os.scandir(entry.path))
    return all(e.is_file(follow_symlinks=False) and e.name.endswith(EXPORT_TEMP_FILES) for e in inside)


def remove_export_temp_dirs(folder):
    """Delete `tmp<random>` folders in `folder` that hold only ONNX files; returns those removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if _is_export_temp(entry):
            shutil.rmtree(entry.path)
            removed.append(entry.path)
    return removed


def report(removed):
    for path in removed:
        log.info("removed %s, left by an interrupted run", path)
    return removed
