"""A bounds-checked, budgeted, read-only view of FlatBuffers tables.

Every offset, vtable and vector length is checked against the buffer before it is followed, so a
hostile file can only produce a `FlatError` (turned into ModelFormatError by the reader), never an
IndexError, a huge allocation or a loop. The schema is not recursive, so following offsets always
terminates.

Offsets may legally point many times at one object, so bounds alone do not bound memory: with an
`allowance`, every table, vector and string is charged (see budget.py) each time it is reached and
BEFORE it is materialised; passing the allowance is a FlatError. Byte vectors can be taken as
zero-copy read-only memoryviews of the one buffer (`view`), so shared data costs nothing extra.
"""
import struct

import numpy as np

from . import budget


class FlatError(Exception):
    """The buffer does not hold what the schema says; the message says where."""


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_SCALARS = {"b": ("<B", 1), "u8": ("<B", 1), "i8": ("<b", 1), "i32": ("<i", 4), "u32": ("<I", 4),
            "i64": ("<q", 8), "f": ("<f", 4), "f64": ("<d", 8)}
_VECTOR_DTYPES = {"i64": "<i8", "i32": "<i4", "u32": "<u4", "f": "<f4", "u8": "u1"}


class Buffer:
    """The file bytes (kept immutable: views handed out must never change) and the read budget."""

    def __init__(self, data, allowance=None):
        if not isinstance(data, bytes):
            data = bytes(data)
        self.data = memoryview(data)
        self.size = len(data)
        self.allowance = allowance          # None: unbudgeted (trusted bytes, e.g. our own tests)
        self.used = 0

    def charge(self, cost, what):
        self.used += cost
        if self.allowance is not None and self.used > self.allowance:
            raise FlatError(f"reading {what} passes the read budget of {self.allowance:,} bytes for a "
                            f"{self.size:,}-byte file (tables, vectors or strings referenced over "
                            "and over?)")

    def check(self, pos, n, what):
        if pos < 0 or n < 0 or pos + n > self.size:
            raise FlatError(f"{what} at byte {pos} (+{n}) lies outside the {self.size}-byte buffer")

    def u32(self, pos, what="offset"):
        self.check(pos, 4, what)
        return _U32.unpack_from(self.data, pos)[0]

    def root(self):
        return Table(self, self.u32(0, "root offset"), "root table")

    def identifier(self):
        self.check(4, 4, "file identifier")
        return bytes(self.data[4:8])


class Table:
    """One table: `field(i)` gives the absolute position of field i, or None when absent."""

    __slots__ = ("buf", "pos", "what", "tab_size", "vt", "n_fields")

    def __init__(self, buf, pos, what):
        buf.charge(budget.TABLE_COST, what)
        self.buf = buf
        self.pos = pos
        self.what = what
        buf.check(pos, 4, what)
        vt = pos - _I32.unpack_from(buf.data, pos)[0]
        buf.check(vt, 4, f"vtable of {what}")
        vt_size, self.tab_size = _U16.unpack_from(buf.data, vt)[0], _U16.unpack_from(buf.data, vt + 2)[0]
        if vt_size < 4 or vt_size % 2:
            raise FlatError(f"vtable of {what} has a bad size {vt_size}")
        buf.check(vt, vt_size, f"vtable of {what}")
        buf.check(pos, max(self.tab_size, 4), what)
        self.vt, self.n_fields = vt, (vt_size - 4) // 2

    def field(self, i, size):
        if i >= self.n_fields:
            return None
        off = _U16.unpack_from(self.buf.data, self.vt + 4 + 2 * i)[0]
        if off == 0:
            return None
        if off + size > self.tab_size:
            raise FlatError(f"field {i} of {self.what} lies outside its table")
        return self.pos + off

    def scalar(self, i, typ, default):
        fmt, size = _SCALARS[typ]
        p = self.field(i, size)
        if p is None:
            return default
        value = struct.unpack_from(fmt, self.buf.data, p)[0]
        return bool(value) if typ == "b" else value

    def _target(self, i, what):
        p = self.field(i, 4)
        if p is None:
            return None
        return p + self.buf.u32(p, what)

    def table(self, i, what):
        t = self._target(i, what)
        return None if t is None else Table(self.buf, t, what)

    def _vector(self, i, elem_size, what):
        v = self._target(i, what)
        if v is None:
            return None, 0
        n = self.buf.u32(v, f"length of {what}")
        if n * elem_size > self.buf.size - v - 4:
            raise FlatError(f"{what} claims {n} elements, past the end of the buffer")
        return v + 4, n

    def view(self, i, what):
        """A byte vector as a zero-copy read-only memoryview of the buffer (None when absent)."""
        start, n = self._vector(i, 1, what)
        if start is None:
            return None
        self.buf.charge(budget.VIEW_COST, what)
        return self.buf.data[start:start + n]

    def bytes_(self, i, what):
        start, n = self._vector(i, 1, what)
        if start is None:
            return None
        self.buf.charge(budget.STRING_COST + n, what)
        return bytes(self.buf.data[start:start + n])

    def string(self, i, what, default=""):
        start, n = self._vector(i, 1, what)
        if start is None:
            return default
        self.buf.check(start + n, 1, f"terminator of {what}")
        if self.buf.data[start + n] != 0:
            raise FlatError(f"{what} is not NUL-terminated")
        self.buf.charge(budget.STRING_COST + 2 * n, what)      # the bytes, then the str
        raw = bytes(self.buf.data[start:start + n])
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FlatError(f"{what} is not valid UTF-8") from None

    def numbers(self, i, typ, what):
        dtype = np.dtype(_VECTOR_DTYPES[typ])
        start, n = self._vector(i, dtype.itemsize, what)
        if start is None:
            return ()
        self.buf.charge(budget.VECTOR_COST + budget.NUMBER_COST * n, what)
        arr = np.frombuffer(self.buf.data, dtype=dtype, count=n, offset=start)
        return tuple(arr.tolist())

    def iter_tables(self, i, what):
        """The tables of a vector of tables, each checked (and charged) as it is reached."""
        start, n = self._vector(i, 4, what)
        if start is None:
            return iter(())
        self.buf.charge(budget.VECTOR_COST + 8 * n, what)
        return (Table(self.buf, start + 4 * k + self.buf.u32(start + 4 * k, what), f"{what}[{k}]")
                for k in range(n))

    def tables(self, i, what):
        return list(self.iter_tables(i, what))

    def union_type(self, i):
        return self.scalar(i, "u8", 0)
