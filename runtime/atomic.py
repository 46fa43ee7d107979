"""Atomic file writes: a temp file in the target's folder, fsync, then rename.

An interrupted run never leaves a half-written model, checkpoint or report behind, and an existing
file is only replaced once the new content is complete.

Temporaries are named `.NAME.XXXXXXXX.tmp` (or `.NAME.XXXXXXXX.tmp.SUFFIX` when a library insists on
a file suffix), next to NAME. A write killed before its rename leaves one behind; the next write to
NAME removes such leftovers first (`remove_stale_temps`). One writer per path at a time: a second
writer to the same path concurrently is not supported (its temporary may be taken for a leftover).

`atomic_paths(a, b)` stages several files and renames them in order only when all are complete:
used for a model and its metadata sidecar (runtime.metadata.save_model). Two renames are not one
atomic step; the sidecar records the model's hash so that a reader detects the window.
"""
import contextlib
import os
import re
import tempfile

_RANDOM = r"[A-Za-z0-9_]{8}"        # tempfile.mkstemp's random part


def _temp_pattern(path):
    return re.compile(r"^\." + re.escape(os.path.basename(path)) + r"\." + _RANDOM + r"\.tmp(\.[A-Za-z0-9]+)?$")


def stale_temps(path):
    """Temporaries of `path` left by killed writes, as paths."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    pattern = _temp_pattern(os.fspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, n) for n in sorted(names) if pattern.match(n)]


def remove_stale_temps(path):
    """Remove the leftovers of killed writes to `path`; returns the removed paths."""
    removed = []
    for tmp in stale_temps(path):
        try:
            os.unlink(tmp)
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


def temp_for(path, suffix=""):
    """A new empty temporary next to `path` with the permissions a plain open() would give."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix,
                               dir=folder)
    os.close(fd)
    umask = os.umask(0)             # mkstemp creates 0600
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_paths(*paths, suffix=""):
    """Yield temporaries for `paths`; when the block succeeds, fsync them all, then rename each onto
    its path in the given order. On failure nothing is renamed and the temporaries are removed."""
    paths = [os.fspath(p) for p in paths]
    for p in paths:
        remove_stale_temps(p)
    tmps = []
    try:
        for p in paths:
            tmps.append(temp_for(p, suffix))
        yield tmps[0] if len(tmps) == 1 else tmps
        for tmp in tmps:
            _fsync_file(tmp)
        for tmp, p in zip(tmps, paths):
            os.replace(tmp, p)
        for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in paths}):
            _fsync_dir(folder)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_path(path, suffix=""):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    return atomic_paths(path, suffix=suffix)


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))
