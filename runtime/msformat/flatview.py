"""A bounds-checked, read-only view of FlatBuffers tables.

Every offset, vtable and vector length is checked against the buffer before it is followed, so a
hostile file can only produce a `FlatError` (turned into ModelFormatError by the reader), never an
IndexError, a huge allocation or a loop. The schema is not recursive, so following offsets always
terminates.
"""
import struct

import numpy as np


class FlatError(Exception):
    """The buffer does not hold what the schema says; the message says where."""


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_SCALARS = {"b": ("<B", 1), "u8": ("<B", 1), "i8": ("<b", 1), "i32": ("<i", 4), "u32": ("<I", 4),
            "i64": ("<q", 8), "f": ("<f", 4), "f64": ("<d", 8)}
_VECTOR_DTYPES = {"i64": "<i8", "i32": "<i4", "u32": "<u4", "f": "<f4", "u8": "u1"}


class Buffer:
    def __init__(self, data):
        self.data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        self.size = len(data)

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

    def __init__(self, buf, pos, what):
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

    def bytes_(self, i, what):
        start, n = self._vector(i, 1, what)
        return None if start is None else bytes(self.buf.data[start:start + n])

    def string(self, i, what, default=""):
        start, n = self._vector(i, 1, what)
        if start is None:
            return default
        self.buf.check(start + n, 1, f"terminator of {what}")
        if self.buf.data[start + n] != 0:
            raise FlatError(f"{what} is not NUL-terminated")
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
        arr = np.frombuffer(self.buf.data, dtype=dtype, count=n, offset=start)
        return tuple(arr.tolist())

    def tables(self, i, what):
        start, n = self._vector(i, 4, what)
        if start is None:
            return []
        return [Table(self.buf, start + 4 * k + self.buf.u32(start + 4 * k, what), f"{what}[{k}]")
                for k in range(n)]

    def union_type(self, i):
        return self.scalar(i, "u8", 0)
