"""Structured mutations of protobuf models (ONNX ModelProto, MINDIR ModelProto), by reflection.

`field_mutation` picks one field anywhere in the message tree (through the descriptors, so it works
for any schema) and changes it by its type: integers to boundary values, floats to NaN/inf, enums
to unknown numbers, strings to empty/long/other names, bytes truncated or extended, repeated fields
shortened, duplicated or emptied, sub-messages cleared. `wire_string_mutation` reaches what the
protobuf API refuses to build: a string field holding invalid UTF-8 (patched into the serialized
bytes with the length prefixes of every enclosing message fixed up).
"""
from google.protobuf.descriptor import FieldDescriptor as FD

_INTS = (0, 1, -1, 2, 3, 7, 255, 256, 1 << 16, (1 << 31) - 1, -(1 << 31), 1 << 40)
_FLOATS = (0.0, -0.0, -1.0, 1e-45, 3e38, float("nan"), float("inf"), float("-inf"))
_INT_TYPES = {FD.TYPE_INT32: (-(1 << 31), (1 << 31) - 1), FD.TYPE_SINT32: (-(1 << 31), (1 << 31) - 1),
              FD.TYPE_SFIXED32: (-(1 << 31), (1 << 31) - 1), FD.TYPE_INT64: (-(1 << 63), (1 << 63) - 1),
              FD.TYPE_SINT64: (-(1 << 63), (1 << 63) - 1), FD.TYPE_SFIXED64: (-(1 << 63), (1 << 63) - 1),
              FD.TYPE_UINT32: (0, (1 << 32) - 1), FD.TYPE_FIXED32: (0, (1 << 32) - 1),
              FD.TYPE_UINT64: (0, (1 << 64) - 1), FD.TYPE_FIXED64: (0, (1 << 64) - 1)}
MAX_SITES = 50000


def _is_repeated(fd):
    return getattr(fd, "is_repeated", None) if hasattr(fd, "is_repeated") else fd.label == FD.LABEL_REPEATED


def sites(msg, path="", out=None):
    """Every (message, field descriptor, index or None, path) that is set, depth first."""
    out = [] if out is None else out
    for fd, value in msg.ListFields():
        if len(out) > MAX_SITES:
            break
        p = f"{path}.{fd.name}"
        if _is_repeated(fd):
            out.append((msg, fd, None, p))
            if fd.type == FD.TYPE_MESSAGE and not (fd.message_type.GetOptions().map_entry):
                for k, sub in enumerate(value):
                    sites(sub, f"{p}[{k}]", out)
            elif len(value) <= 64:
                out.extend((msg, fd, k, f"{p}[{k}]") for k in range(len(value)))
        elif fd.type == FD.TYPE_MESSAGE:
            out.append((msg, fd, None, p))
            sites(value, p, out)
        else:
            out.append((msg, fd, None, p))
    return out


def _scalar_value(rng, fd, cur):
    if fd.type in _INT_TYPES:
        lo, hi = _INT_TYPES[fd.type]
        cand = list(_INTS) + ([cur + 1, cur - 1, -cur, cur * 2] if isinstance(cur, int) else [])
        return min(hi, max(lo, rng.choice(cand)))
    if fd.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return rng.choice(_FLOATS)
    if fd.type == FD.TYPE_BOOL:
        return not cur
    if fd.type == FD.TYPE_ENUM:
        known = [v.number for v in fd.enum_type.values]
        value = rng.choice(known + [max(known) + 1, 99, -1, 1 << 20])
        if fd.enum_type.is_closed if hasattr(fd.enum_type, "is_closed") else False:
            value = rng.choice(known)
        return value
    if fd.type == FD.TYPE_STRING:
        return rng.choice(("", "x", "0", "-1", "a" * 5000, "\u00e9\u4e2d", cur + "_", cur[::-1] if cur else "y"))
    if fd.type == FD.TYPE_BYTES:
        if not cur:
            return bytes(rng.choice((1, 3, 4, 8)))
        how = rng.choice(("cut", "extend", "empty", "half"))
        return (cur[:rng.randrange(len(cur))] if how == "cut" else cur + bytes(rng.choice((1, 4, 64)))
                if how == "extend" else b"" if how == "empty" else cur[:len(cur) // 2])
    raise TypeError(fd.type)


def field_mutation(rng, root, ops, pick=None):
    """Mutate one set field of `root` in place; `pick` may filter the candidate paths."""
    candidates = sites(root)
    if pick is not None:
        preferred = [s for s in candidates if pick(s[3])]
        if preferred and rng.random() < 0.7:
            candidates = preferred
    if not candidates:
        ops.append("(no field to mutate)")
        return
    msg, fd, index, path = rng.choice(candidates)
    value = getattr(msg, fd.name)
    if _is_repeated(fd) and index is None:
        n = len(value)
        how = rng.choice(("clear", "drop", "duplicate", "reverse"))
        if how == "clear" or n == 0:
            msg.ClearField(fd.name)
        elif how == "drop":
            del value[rng.randrange(n)]
        elif how == "duplicate":
            k = rng.randrange(n)
            if fd.type == FD.TYPE_MESSAGE:
                value.add().CopyFrom(value[k])
            else:
                value.append(value[k])
        else:
            items = list(value)[::-1]
            if fd.type == FD.TYPE_MESSAGE:
                copies = [type(items[0])() for _ in items]
                for c, it in zip(copies, items):
                    c.CopyFrom(it)
                del value[:]
                for c in copies:
                    value.add().CopyFrom(c)
            else:
                del value[:]
                value.extend(items)
        ops.append(f"{path}: {how} (had {n})")
    elif fd.type == FD.TYPE_MESSAGE:
        msg.ClearField(fd.name)
        ops.append(f"{path}: cleared")
    elif index is not None:
        old = value[index]
        value[index] = _scalar_value(rng, fd, old)
        ops.append(f"{path}: {_short(old)} -> {_short(value[index])}")
    else:
        old = value
        setattr(msg, fd.name, _scalar_value(rng, fd, old))
        ops.append(f"{path}: {_short(old)} -> {_short(getattr(msg, fd.name))}")


def _short(v):
    text = repr(v)
    return text if len(text) < 60 else text[:57] + "..."


# ---- wire level: invalid UTF-8 in a string field ----------------------------------------------

def _varint(data, pos):
    result = shift = 0
    while True:
        b = data[pos]
        result |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return result, pos
        shift += 7


def _encode_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _strings(data, descriptor, start, end, chain, out):
    """Spans of string fields: (value start, value end, chain of enclosing length-prefix spans)."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wt = key >> 3, key & 7
        if wt == 0:
            _, pos = _varint(data, pos)
        elif wt == 1:
            pos += 8
        elif wt == 5:
            pos += 4
        elif wt == 2:
            len_start = pos
            n, pos = _varint(data, pos)
            fd = descriptor.fields_by_number.get(number)
            if fd is not None and fd.type == FD.TYPE_STRING and n:
                out.append((pos, pos + n, chain + [(len_start, pos)]))
            elif fd is not None and fd.type == FD.TYPE_MESSAGE:
                _strings(data, fd.message_type, pos, pos + n, chain + [(len_start, pos)], out)
            pos += n
        else:
            return


def wire_string_mutation(rng, message, ops):
    """Serialized bytes of `message` with one string field's value made invalid UTF-8."""
    data = message.SerializeToString()
    found = []
    _strings(data, message.DESCRIPTOR, 0, len(data), [], found)
    if not found:
        ops.append("(no string field)")
        return data
    vstart, vend, chain = rng.choice(found)
    bad = rng.choice((b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\xfe\xfe\xfe"))
    pos = vstart + rng.randrange(vend - vstart + 1)
    new = data[:pos] + bad + data[pos:]
    # the value grew by len(bad): rewrite the length prefixes from the innermost outwards
    grow = len(bad)
    for len_start, len_end in reversed(chain):
        n, _ = _varint(new, len_start)
        enc = _encode_varint(n + grow)
        new = new[:len_start] + enc + new[len_end:]
        grow += len(enc) - (len_end - len_start)
    ops.append(f"invalid UTF-8 {bad!r} in a string field at byte {pos}")
    return new
