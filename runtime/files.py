"""Reading one untrusted file: only regular files, never more than a stated number of bytes.

Every reader of user-supplied files (images, `.ms`, MINDIR, ONNX walks, metadata JSON, label lists)
comes through `read_regular`, so the same three guarantees hold everywhere:

- the path is checked with stat (following links) before it is opened, so no device, FIFO, socket
  or directory is opened at all (a symlink to /dev/zero, whose size reads as 0, is refused; a FIFO
  cannot make the reader wait for ever); the file is then opened with O_NONBLOCK (a FIFO swapped in
  meanwhile cannot block) and checked again with fstat;
- a file larger than `limit` is refused before any byte is read, and the buffer is sized from the
  file, not from the limit (reading `limit + 1` bytes up front would allocate the limit itself);
- at most `limit + 1` bytes are ever read, so a file that grows after the check is still refused.

Errors are the caller's typed error class, built as `error(path, problem)`.
"""
import os
import stat

# st_mode test -> what the file is, for refusals of everything but regular files
_FILE_KINDS = [(stat.S_ISDIR, "is a directory, not a file"),
               (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
               (stat.S_ISCHR, "is a character device, not a regular file"),
               (stat.S_ISBLK, "is a block device, not a regular file"),
               (stat.S_ISSOCK, "is a socket, not a regular file")]
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | \
    getattr(os, "O_BINARY", 0)
_READ_CHUNK = 1 << 20


def kind_problem(mode, path, directory=None):
    """None for a regular file, else what the file is instead (named for error messages)."""
    if stat.S_ISREG(mode):
        return None
    if directory and stat.S_ISDIR(mode):
        problem = directory
    else:
        for test, problem in _FILE_KINDS:
            if test(mode):
                break
        else:
            problem = "is not a regular file"
    return problem + (" (through a symbolic link)" if os.path.islink(path) else "")


def read_regular(path, limit, error, directory=None, what="file"):
    """The bytes of the regular file `path` (at most `limit` bytes); `error(path, problem)` otherwise.
    `directory`: the wording for a directory (e.g. "is a directory, not an image")."""
    path = os.fspath(path)
    try:
        problem = kind_problem(os.stat(path).st_mode, path, directory)
        if problem:
            raise error(path, problem)
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise error(path, "dangling symbolic link" if os.path.islink(path)
                    else "no such file") from None
    except OSError as e:
        raise error(path, f"cannot open: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        problem = kind_problem(st.st_mode, path, directory)
        if problem:
            raise error(path, problem)
        if st.st_size > limit:
            raise error(path, f"{what} is {st.st_size} bytes, more than the {limit} byte limit")
        chunks, total = [], 0
        want = st.st_size + 1                  # one read for a file that does not change
        while total <= limit:
            chunk = os.read(fd, min(max(want - total, _READ_CHUNK), limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise error(path, f"{what} grew past the {limit} byte limit while it was read")
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as e:
        raise error(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
