"""Advisory locks on folders (flock on the folder itself, so no lock file is left behind).

A training run holds its run folder exclusively, so a second run on the same folder is refused
instead of interleaving checkpoints; users of a shared feature cache hold it shared, and only one
holding it alone may delete an interrupted run's temporaries there. The kernel releases the locks
when the process ends, however it ends (kill -9 included), so a lock is never stale.
"""
import contextlib
import fcntl
import os

from runtime.errors import ToolkitError


class FolderBusyError(ToolkitError):
    """Another process is using the folder."""


def _open(folder):
    os.makedirs(folder, exist_ok=True)
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


@contextlib.contextmanager
def exclusive(folder, what="folder"):
    """Hold `folder` alone for the block, or raise FolderBusyError at once."""
    fd = _open(folder)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(f"{folder}: this {what} is in use by another process") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def shared(folder, when_alone=None):
    """Hold `folder` shared for the block. If no other process holds it, `when_alone()` runs first,
    while the folder is still held alone (cleaning up after interrupted users), then the lock is
    shared; otherwise it waits for a shared lock and `when_alone` is skipped."""
    fd = _open(folder)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        if alone and when_alone is not None:
            when_alone()
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield alone
    finally:
        os.close(fd)
