"""Our metadata inside an ONNX file, in ModelProto.metadata_props, read and written without `onnx`.

ONNX has a place for it (ultralytics keeps its class names there too): ModelProto field 14,
`repeated StringStringEntryProto metadata_props` with `key = 1` and `value = 2`. Keeping the metadata
inside the model means one file, replaced by one atomic rename, so model and metadata cannot drift
apart. The runtime must read it without importing onnx (the device may not have it), so this module
walks the protobuf wire format itself:

- reading visits only the top-level fields of the ModelProto: each length-delimited field other than
  14 (the graph is one of them) is skipped with a seek, so a 100 MB model costs a few reads; every
  length is checked against the bytes left in the file, and an entry is read into memory only up to
  MAX_ENTRY_BYTES, so nothing is allocated beyond the file or that bound;
- writing appends one serialized field-14 entry to the serialized ModelProto (protobuf parsers merge
  fields in any order: appending is a valid encoding) after dropping any existing entry with our key,
  so the key is never duplicated.
"""
import io
import os

from .errors import MetadataError, ModelFormatError

META_KEY = "ms_edge_toolkit.meta"
METADATA_PROPS = 14                   # ModelProto.metadata_props
MAX_ENTRY_BYTES = (1 << 20) + 4096    # our JSON is bounded by runtime.metadata.MAX_META_BYTES
_KEY_PEEK = 4096                      # bytes of an oversized entry read to learn its key
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5


class _Truncated(Exception):
    pass


def _read_varint(f):
    shift = value = 0
    for _ in range(10):
        b = f.read(1)
        if not b:
            raise _Truncated("varint")
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def _varint_bytes(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(f, end):
    """(field number, wire type, payload start, payload length) of each field from f.tell() to end;
    LEN payloads are not read (the caller reads or skips them), other payloads are skipped."""
    while f.tell() < end:
        start = f.tell()
        tag = _read_varint(f)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError(f"field number 0 at byte {start}")
        if wire == VARINT:
            _read_varint(f)
            continue
        if wire in (I64, I32):
            size = 8 if wire == I64 else 4
        elif wire == LEN:
            size = _read_varint(f)
        else:
            raise ValueError(f"wire type {wire} (groups are not used by ONNX) at byte {start}")
        pos = f.tell()
        if size > end - pos:
            raise _Truncated(f"field {number} at byte {start} claims {size} bytes, {end - pos} left")
        if wire == LEN:
            yield number, pos, size, start
        f.seek(pos + size)


def _entry(data):
    """(key, value) of a serialized StringStringEntryProto (value None when absent)."""
    f = io.BytesIO(data)
    key = value = None
    for number, pos, size, _ in _fields(f, len(data)):
        if number in (1, 2):
            text = data[pos:pos + size].decode("utf-8")
            if number == 1:
                key = text
            else:
                value = text
    return key, value


def _scan(f, end, path):
    """[(start, stop, value)] of the top-level metadata_props entries with our key."""
    found = []
    try:
        for number, pos, size, start in _fields(f, end):
            if number != METADATA_PROPS:
                continue
            if size > MAX_ENTRY_BYTES:
                peek = f.read(min(size, _KEY_PEEK))
                try:
                    key, _ = _entry(peek)
                except (_Truncated, ValueError, UnicodeDecodeError):
                    key = None                      # key not within the peek: not ours (ours is first)
                if key == META_KEY:
                    raise MetadataError(path, f"{size} bytes, more than {MAX_ENTRY_BYTES}",
                                        key=f"metadata_props[{META_KEY}]")
                continue
            data = f.read(size)
            key, value = _entry(data)
            if key == META_KEY:
                found.append((start, pos + size, value))
    except _Truncated as e:
        raise ModelFormatError(path, f"truncated protobuf: {e}", element="ModelProto") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFormatError(path, f"malformed protobuf: {e}", element="ModelProto") from None
    return found


def read_onnx_meta(path):
    """Our metadata JSON text embedded in the ONNX file `path`, or None when it has none."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        end = os.fstat(f.fileno()).st_size
        found = _scan(f, end, path)
    if not found:
        return None
    if len(found) > 1:
        raise MetadataError(path, f"{len(found)} entries with this key; a model has one",
                            key=f"metadata_props[{META_KEY}]")
    value = found[0][2]
    if value is None:
        raise MetadataError(path, "entry has no value", key=f"metadata_props[{META_KEY}]")
    return value


def embed_onnx_meta(model_bytes, text, source="<onnx bytes>"):
    """Serialized ModelProto `model_bytes` with `text` as our metadata_props entry (replacing any)."""
    model_bytes = bytes(model_bytes)
    found = _scan(io.BytesIO(model_bytes), len(model_bytes), source)
    kept, last = [], 0
    for start, stop, _ in found:
        kept.append(model_bytes[last:start])
        last = stop
    kept.append(model_bytes[last:])
    key, value = META_KEY.encode("utf-8"), text.encode("utf-8")
    entry = (b"\x0a" + _varint_bytes(len(key)) + key + b"\x12" + _varint_bytes(len(value)) + value)
    tag = _varint_bytes((METADATA_PROPS << 3) | LEN)
    return b"".join(kept) + tag + _varint_bytes(len(entry)) + entry
