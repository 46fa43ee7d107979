"""Structured mutations of `.ms` files (MindSpore Lite FlatBuffers).

Two levels, so both the reader's bounds checks and everything behind it are reached:

- raw: `walk()` follows the file the way the schema lays it out (root MetaGraph -> CNode, Primitive,
  op table, Tensor, QuantParam, SubGraph) and lists every structural slot with its byte position:
  table->vtable soffsets, vtable sizes and entries, uoffsets, vector lengths, index and dims
  elements, scalars. One slot is then overwritten with a value chosen for its kind (past the end,
  pointing back to make a loop, off by one, huge). The walker is our own, independent of the reader.
- model: the file is read into an MsModel (the project's reader), one semantic element is changed
  (tensor dims, data types, node input/output indices, quantization parameters, op attributes
  such as strides/pads/axes, op types, graph inputs) and written back with the project's writer with
  validation off (`model_to_bytes(check=False)`): a well-formed FlatBuffer carrying hostile content.
"""
import copy
import struct

from . import bytes_ops

# field kinds: ("s",) string, ("t", kind) table, ("vt", kind) vector of tables,
# ("v", size, tag) scalar vector, ("x", size, tag) scalar, ("u",) union type, ("ut",) union value
_META = {0: ("s",), 1: ("s",), 2: ("x", 4, "i32"), 3: ("v", 4, "index"), 4: ("v", 4, "index"),
         6: ("vt", "CNode"), 7: ("vt", "Tensor"), 8: ("vt", "SubGraph")}
_LAYOUTS = {
    "MetaGraph": _META,
    "CNode": {0: ("s",), 2: ("t", "Primitive"), 3: ("v", 4, "index"), 4: ("v", 4, "index"),
              5: ("x", 4, "i32")},
    "Primitive": {0: ("u",), 1: ("ut",)},
    "Tensor": {0: ("x", 4, "i32"), 1: ("x", 4, "dtype"), 2: ("v", 4, "dim"), 3: ("x", 4, "i32"),
               4: ("x", 4, "i32"), 5: ("x", 4, "i32"), 6: ("v", 1, "data"), 7: ("vt", "QuantParam"),
               8: ("v", 4, "f32"), 9: ("s",), 10: ("x", 1, "bool"), 11: ("x", 4, "i32"),
               12: ("vt", "ExternalData")},
    "QuantParam": {0: ("x", 8, "f64"), 1: ("x", 4, "i32"), 2: ("x", 8, "f64"), 3: ("x", 8, "f64"),
                   4: ("x", 1, "bool"), 5: ("x", 4, "bits"), 6: ("x", 1, "bool"), 7: ("x", 4, "f32"),
                   8: ("x", 4, "f32"), 9: ("x", 4, "i32"), 10: ("x", 4, "i32"), 11: ("x", 4, "i32")},
    "SubGraph": {0: ("s",), 1: ("v", 4, "index"), 2: ("v", 4, "index"), 3: ("v", 4, "index"),
                 4: ("v", 4, "index")},
    "ExternalData": {0: ("s",), 1: ("s",), 2: ("x", 8, "i64"), 3: ("x", 8, "i64")},
    "Vec2D": {0: ("vt", "Vec")},
    "Vec": {0: ("v", 8, "i64")},
    "Attribute": {0: ("s",), 1: ("v", 1, "data")},
}
_OP_TOKENS = {"b": ("x", 1, "bool"), "i8": ("x", 1, "i8"), "i32": ("x", 4, "i32"), "i64": ("x", 8, "i64"),
              "f": ("x", 4, "f32"), "s": ("s",), "[i64]": ("v", 8, "i64"), "[f]": ("v", 4, "f32"),
              "[i32]": ("v", 4, "i32"), "vec2d": ("t", "Vec2D"), "[attr]": ("vt", "Attribute")}
MAX_ELEMENT_SLOTS = 64          # elements of one vector listed as slots
MAX_TABLES = 20000


def _schema():
    try:
        from runtime.msformat import schema
        return schema.PRIMITIVE_NAMES, schema.OP_FIELDS
    except (ImportError, AttributeError):  # the schema table moved: op tables are then skipped
        return (), {}


def _op_layout(code):
    names, fields = _schema()
    if not 1 <= code <= len(names):
        return None
    return {i: _OP_TOKENS[typ] for i, (_, typ, _) in enumerate(fields.get(names[code - 1], ()))}


class Walk:
    """Slots found in a buffer: list of (kind, position, detail)."""

    def __init__(self, data):
        self.data = data
        self.slots = []
        self.tables = []          # table positions, for offsets aimed at another table
        self._seen = set()

    def ok(self, pos, n):
        return 0 <= pos and pos + n <= len(self.data)

    def u16(self, p):
        return struct.unpack_from("<H", self.data, p)[0]

    def u32(self, p):
        return struct.unpack_from("<I", self.data, p)[0]

    def table(self, pos, kind):
        if pos in self._seen or len(self._seen) > MAX_TABLES or not self.ok(pos, 4):
            return
        self._seen.add(pos)
        self.tables.append(pos)
        vt = pos - struct.unpack_from("<i", self.data, pos)[0]
        self.slots.append(("soffset", pos, kind))
        if not self.ok(vt, 4):
            return
        vt_size, tab_size = self.u16(vt), self.u16(vt + 2)
        self.slots.append(("vtable-size", vt, kind))
        self.slots.append(("table-size", vt + 2, kind))
        if vt_size < 4 or not self.ok(vt, vt_size):
            return
        layout = _LAYOUTS.get(kind) if not isinstance(kind, dict) else kind
        union_code = None
        fields = {}
        for i in range((vt_size - 4) // 2):
            off = self.u16(vt + 4 + 2 * i)
            if off:
                self.slots.append(("vtable-entry", vt + 4 + 2 * i, f"{_name(kind)}.{i}"))
                fields[i] = pos + off
        for i, p in sorted(fields.items()):
            spec = (layout or {}).get(i)
            if spec is None:
                continue
            what = f"{_name(kind)}.{i}"
            if spec[0] == "x":
                if self.ok(p, spec[1]):
                    self.slots.append(("scalar", p, (spec[1], spec[2], what)))
            elif spec[0] == "u":
                if self.ok(p, 1):
                    union_code = self.data[p]
                    self.slots.append(("union-type", p, what))
            elif spec[0] == "ut":
                continue          # after the loop, once the union type is known
            else:
                self._reference(p, spec, what)
        if union_code is not None and 1 in fields:
            sub = _op_layout(union_code)
            if sub is not None:
                self._reference(fields[1], ("t", sub), f"{_name(kind)}.value")

    def _reference(self, p, spec, what):
        if not self.ok(p, 4):
            return
        self.slots.append(("uoffset", p, what))
        target = p + self.u32(p)
        if spec[0] == "t":
            self.table(target, spec[1])
            return
        if not self.ok(target, 4):
            return
        n = self.u32(target)
        self.slots.append(("vector-length", target, (what, n)))
        start = target + 4
        if spec[0] == "s":
            if n and self.ok(start, n + 1):
                self.slots.append(("string", start, (what, n)))
        elif spec[0] == "vt":
            if not self.ok(start, 4 * n):
                return
            for k in range(n):
                self._reference(start + 4 * k, ("t", spec[1]), f"{what}[{k}]")
        elif spec[0] == "v":
            size, tag = spec[1], spec[2]
            if tag != "data" and self.ok(start, size * n):
                for k in range(min(n, MAX_ELEMENT_SLOTS)):
                    self.slots.append(("scalar", start + size * k, (size, tag, f"{what}[{k}]")))


def _name(kind):
    return kind if isinstance(kind, str) else "op"


def walk(data):
    w = Walk(data)
    if w.ok(0, 8):
        w.table(w.u32(0), "MetaGraph")
    return w


_SCALAR_VALUES = {
    "i32": (0, 1, -1, 2, 3, 7, 255, 0x7FFFFFFF, -0x80000000, 1 << 16),
    "index": (0, 1, 2, 7, 0xFFFFFFFF, 0x7FFFFFFF, 1 << 16),
    "dim": (0, -1, -2, 1, 3, 1 << 16, 0x7FFFFFFF, -0x80000000, 1 << 20),
    "dtype": (0, 1, 30, 32, 33, 34, 35, 37, 38, 39, 40, 42, 43, 44, 45, 99, -1),
    "bits": (0, 1, 2, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, -1, 0x7FFFFFFF),
    "i8": (0, 1, -1, 2, 5, 127, -128),
    "bool": (0, 1, 2, 255),
    "i64": (0, 1, -1, 2, 3, 1 << 31, -(1 << 63), (1 << 63) - 1, 1 << 40),
    "f32": (0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e-45, 3e38),
    "f64": (0.0, -1.0, float("nan"), float("inf"), 5e-324, 1e308),
}
_PACK = {("i32", 4): "<i", ("index", 4): "<I", ("dim", 4): "<i", ("dtype", 4): "<i", ("bits", 4): "<i",
         ("i8", 1): "<b", ("bool", 1): "<B", ("i64", 8): "<q", ("f32", 4): "<f", ("f64", 8): "<d"}


def _put(data, pos, fmt, value):
    out = bytearray(data)
    struct.pack_into(fmt, out, pos, value)
    return bytes(out)


def raw_mutation(rng, data, ops):
    """Overwrite one structural slot found by walk(); falls back to bytes when nothing is found."""
    w = walk(data)
    if not w.slots:
        return bytes_ops.byte_mutation(rng, data, ops)
    kind, pos, detail = rng.choice(w.slots)
    if kind == "scalar":
        size, tag, what = detail
        value = rng.choice(_SCALAR_VALUES[tag])
        ops.append(f"raw {what} @{pos} := {value}")
        return _put(data, pos, _PACK[(tag, size)], value)
    if kind == "union-type":
        value = rng.choice((0, 1, 2, 255, rng.randint(1, 230)))
        ops.append(f"raw {detail} union type @{pos} := {value}")
        return _put(data, pos, "<B", value)
    if kind in ("vtable-size", "table-size", "vtable-entry"):
        cur = w.u16(pos)
        value = rng.choice((0, 1, 2, 3, 4, 0xFFFF, (cur + 2) & 0xFFFF, max(cur - 2, 0), (cur + 4) & 0xFFFF))
        ops.append(f"raw {kind} of {detail} @{pos}: {cur} -> {value}")
        return _put(data, pos, "<H", value)
    if kind == "soffset":
        cur = struct.unpack_from("<i", data, pos)[0]
        value = rng.choice((0, cur + 2, cur - 2, cur + 4, 0x7FFFFFFF, -0x80000000, pos - rng.choice(w.tables)))
        value = max(-0x80000000, min(0x7FFFFFFF, value))
        ops.append(f"raw vtable soffset of {detail} @{pos}: {cur} -> {value}")
        return _put(data, pos, "<i", value)
    if kind == "uoffset":
        cur = w.u32(pos)
        other = rng.choice(w.tables)
        choices = [0, 1, 4, cur + 4, max(cur - 4, 0), 0x7FFFFFFF, 0xFFFFFFFF, len(data) - pos,
                   (other - pos) & 0xFFFFFFFF]
        value = rng.choice(choices) & 0xFFFFFFFF
        ops.append(f"raw uoffset {detail} @{pos}: {cur} -> {value}")
        return _put(data, pos, "<I", value)
    if kind == "vector-length":
        what, cur = detail
        value = rng.choice((0, cur + 1, max(cur - 1, 0), cur * 2, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 20,
                            (len(data) - pos) // 4))
        ops.append(f"raw length of {what} @{pos}: {cur} -> {value}")
        return _put(data, pos, "<I", value & 0xFFFFFFFF)
    if kind == "string":
        what, n = detail
        out = bytearray(data)
        if rng.random() < 0.5:
            out[pos + rng.randrange(n)] = rng.choice((0xFF, 0xC0, 0x80, 0xED))
            ops.append(f"raw {what}: invalid UTF-8 byte")
        else:
            out[pos + n] = 0x41
            ops.append(f"raw {what}: NUL terminator removed")
        return bytes(out)
    raise AssertionError(kind)


# ---- model level --------------------------------------------------------------------------------

_DTYPES = (0, 1, 30, 32, 33, 34, 35, 37, 38, 39, 40, 42, 43, 44, 99)
_I32 = (0, 1, -1, 2, 3, 255, 0x7FFFFFFF, -0x80000000)
_I64 = (0, 1, -1, 2, 3, 1 << 31, (1 << 63) - 1, -(1 << 63), 1 << 40)
_F32 = (0.0, -1.0, 1e-45, 3e38, float("nan"), float("inf"), float("-inf"))


def _vector_value(rng, cur, typ):
    if typ == "[f]":
        return tuple(rng.choice(_F32) for _ in range(rng.choice((0, 1, len(cur) or 1))))
    how = rng.choice(("empty", "zeros", "negative", "huge", "longer", "shorter", "one"))
    cur = list(cur) or [1, 1]
    if how == "empty":
        return ()
    if how == "zeros":
        return tuple(0 for _ in cur)
    if how == "negative":
        return tuple(-abs(v) - 1 for v in cur)
    if how == "huge":
        return tuple(rng.choice(((1 << 31) - 1, 1 << 40, 1 << 20)) for _ in cur)
    if how == "longer":
        return tuple(cur + [rng.choice((0, 1, 7, -1))] * rng.randint(1, 6))
    if how == "shorter":
        return tuple(cur[:-1])
    return (rng.choice((0, 1, -1, 9)),)


def _mutate_attr(rng, node, ops, op_fields):
    fields = op_fields.get(node.op_type, ())
    if not fields:
        return False
    name, typ, default = rng.choice(fields)
    cur = node.attrs.get(name, default)
    if typ == "b":
        value = not bool(cur)
    elif typ == "i8":
        value = rng.choice((-128, -1, 0, 1, 2, 3, 4, 5, 19, 40, 127))
    elif typ == "i32":
        value = rng.choice(_I32)
    elif typ == "i64":
        value = rng.choice(_I64 + (cur + 1, cur - 1, -cur))
        value = max(-(1 << 63), min((1 << 63) - 1, value))
    elif typ == "f":
        value = rng.choice(_F32)
    elif typ == "s":
        value = rng.choice(("", "x" * 1000, "\u00e9\u4e2d", "NCHW"))
    elif typ in ("[i64]", "[i32]", "[f]"):
        value = _vector_value(rng, cur, typ)
        if typ == "[i32]":
            value = tuple(max(-0x80000000, min(0x7FFFFFFF, int(v))) for v in value)
    elif typ == "vec2d":
        value = rng.choice(((), ((0,),), ((1, 2, 3),), ((-1, -1), (1 << 40, 0))))
    elif typ == "[attr]":
        value = ((rng.choice(("", "attr", "\u00ff")), bytes(rng.randrange(256) for _ in range(8))),)
    else:
        return False
    node.attrs[name] = value
    ops.append(f"node {node.name!r} ({node.op_type}) attr {name}: {cur!r} -> {value!r}"[:200])
    return True


def _m_dims(rng, m, ops):
    t = rng.choice(m.tensors)
    dims = list(t.dims)
    how = rng.choice(("set", "append", "drop", "empty", "rank17"))
    if how == "set" and dims:
        k = rng.randrange(len(dims))
        dims[k] = rng.choice((0, -1, -2, 1, 2, 1 << 16, 0x7FFFFFFF, -0x80000000, dims[k] + 1))
    elif how == "append":
        dims.append(rng.choice((1, 2, 0, -1)))
    elif how == "drop" and dims:
        dims.pop(rng.randrange(len(dims)))
    elif how == "rank17":
        dims = [1] * 17
    else:
        dims = []
    ops.append(f"tensor {t.name!r} dims {list(t.dims)} -> {dims}")
    t.dims = tuple(dims)


def _m_dtype(rng, m, ops):
    t = rng.choice(m.tensors)
    value = rng.choice(_DTYPES)
    ops.append(f"tensor {t.name!r} dataType {t.data_type} -> {value}")
    t.data_type = value


def _m_node_type(rng, m, ops):
    t = rng.choice(m.tensors)
    value = rng.choice((0, 1, 2, 3, 7, -1))
    ops.append(f"tensor {t.name!r} nodeType {t.node_type} -> {value}")
    t.node_type = value


def _m_format(rng, m, ops):
    t = rng.choice(m.tensors)
    value = rng.choice((-1, 0, 1, 2, 5, 7, 13, 14, 18, 19, 255))
    ops.append(f"tensor {t.name!r} format {t.format} -> {value}")
    t.format = value


def _m_data(rng, m, ops):
    consts = [t for t in m.tensors if t.data] or m.tensors
    t = rng.choice(consts)
    data = t.data or b""
    how = rng.choice(("truncate", "extend", "none", "garbage", "nan"))
    if how == "truncate":
        t.data = data[:rng.randrange(len(data))] if data else b"\x00"
    elif how == "extend":
        t.data = data + bytes(rng.choice((1, 4, 64)))
    elif how == "none":
        t.data = None
    elif how == "garbage":
        t.data = bytes(rng.randrange(256) for _ in range(min(len(data), 4096))) + data[4096:]
    else:
        t.data = b"\x00\x00\xc0\x7f" * (len(data) // 4) + data[len(data) // 4 * 4:]
    ops.append(f"tensor {t.name!r} data {len(data)} bytes -> {how} ({len(t.data or b'')})")


def _m_quant(rng, m, ops):
    from runtime.msformat.model import QuantParam
    t = rng.choice([t for t in m.tensors if t.quant_params] or [t for t in m.tensors if t.data] or m.tensors)
    if not t.quant_params or rng.random() < 0.25:
        channels = t.dims[0] if t.dims else 1
        count = rng.choice((0, 1, max(channels - 1, 0), channels + 1, channels))
        t.quant_params = [QuantParam(scale=0.01, num_bits=8) for _ in range(min(count, 4096))]
        ops.append(f"tensor {t.name!r} quantParams count -> {len(t.quant_params)}")
        if rng.random() < 0.5:
            t.data_type = rng.choice((32, 37, 34))
            ops.append(f"tensor {t.name!r} dataType -> {t.data_type}")
        if not t.quant_params:
            return
    q = rng.choice(t.quant_params)
    fieldname, values = rng.choice((
        ("num_bits", (0, 1, 2, 4, 7, 8, 9, 15, 16, 17, 32, 64, -1, 0x7FFFFFFF)),
        ("scale", (0.0, -1.0, float("nan"), float("inf"), 5e-324, 1e308)),
        ("zero_point", (-129, 128, 255, 256, 0x7FFFFFFF, -0x80000000)),
        ("min", (float("nan"), float("-inf"), 1e308)), ("max", (float("nan"), float("inf"), -1e308)),
        ("dst_dtype", (0, 8, 16, 32, 99, -1)), ("round_type", (0, 1, 2, 99)),
        ("multiplier", (0, -1, 0x7FFFFFFF)), ("var_corr", (0.0, float("nan"))),
        ("narrow_range", (False, True))))
    old = getattr(q, fieldname)
    setattr(q, fieldname, rng.choice(values))
    ops.append(f"tensor {t.name!r} quant {fieldname} {old} -> {getattr(q, fieldname)}")


def _m_compress(rng, m, ops):
    t = rng.choice([t for t in m.tensors if t.data] or m.tensors)
    how = rng.choice(("huffman", "compress", "clusters"))
    if how == "huffman":
        t.enable_huffman_code = True
    elif how == "compress":
        t.weight_quant_compress_type = rng.choice((1, 2, 3, 4, 5, 6, 99))
        if not t.quant_params:
            from runtime.msformat.model import QuantParam
            t.quant_params = [QuantParam(scale=0.01, num_bits=rng.choice((1, 4, 8, 9, 16)))]
    else:
        t.quant_clusters = [rng.choice(_F32) for _ in range(rng.choice((1, 2, 255, 256, 257)))]
    ops.append(f"tensor {t.name!r} {how}: huffman={t.enable_huffman_code} "
               f"compress={t.weight_quant_compress_type} clusters={len(t.quant_clusters)}")


def _m_external(rng, m, ops):
    t = rng.choice(m.tensors)
    entry = ("", rng.choice(("../../../etc/passwd", "/dev/zero", "missing.bin", "", "\u00e9.bin")),
             rng.choice((0, -1, 1 << 62)), rng.choice((-1, 0, 16, 1 << 40)))
    t.external_data = [entry]
    if rng.random() < 0.5:
        t.data = None
    ops.append(f"tensor {t.name!r} externalData {entry}")


def _bad_index(rng, m, cur):
    n = len(m.tensors)
    return rng.choice((n, n + 5, 0xFFFFFFFF, 0, max(n - 1, 0), cur))


def _m_node_io(rng, m, ops):
    node = rng.choice(m.nodes)
    which = rng.choice(("inputs", "outputs"))
    lst = list(getattr(node, which))
    how = rng.choice(("replace", "drop", "duplicate", "append", "clear", "self-loop"))
    if how == "replace" and lst:
        k = rng.randrange(len(lst))
        lst[k] = _bad_index(rng, m, lst[k])
    elif how == "drop" and lst:
        lst.pop(rng.randrange(len(lst)))
    elif how == "duplicate" and lst:
        lst.append(rng.choice(lst))
    elif how == "append":
        lst.append(rng.randrange(len(m.tensors) + 2))
    elif how == "self-loop" and node.outputs and node.inputs:
        which, lst = "inputs", [node.outputs[0]] + list(node.inputs[1:])
    else:
        lst = []
    ops.append(f"node {node.name!r} ({node.op_type}) {which} {list(getattr(node, which))} -> {lst}"[:200])
    setattr(node, which, lst)


def _m_graph_io(rng, m, ops):
    which = rng.choice(("inputs", "outputs"))
    lst = list(getattr(m, which))
    consts = [i for i, t in enumerate(m.tensors) if t.data]
    how = rng.choice(("clear", "const", "duplicate", "range", "swap"))
    if how == "clear":
        lst = []
    elif how == "const" and consts:
        lst = [rng.choice(consts)] + lst[1:]
    elif how == "duplicate" and lst:
        lst = lst + lst
    elif how == "swap":
        lst = list(m.outputs if which == "inputs" else m.inputs)
    else:
        lst = [_bad_index(rng, m, lst[0] if lst else 0)]
    ops.append(f"graph {which} {list(getattr(m, which))} -> {lst}")
    setattr(m, which, lst)


def _m_op_type(rng, m, ops):
    names, fields = _schema()
    node = rng.choice(m.nodes)
    old = node.op_type
    if not names or rng.random() < 0.15:
        node.op_type, node.attrs = f"UnknownPrimitive{rng.choice((300, 9999, 255))}", {}
    else:
        node.op_type = rng.choice(names)
        node.attrs = {f: d for f, _, d in fields.get(node.op_type, ())}
        for _ in range(rng.randint(0, 2)):
            _mutate_attr(rng, node, [], fields)
    ops.append(f"node {node.name!r} op {old} -> {node.op_type}")


def _m_attr(rng, m, ops):
    _, fields = _schema()
    nodes = [n for n in m.nodes if fields.get(n.op_type)]
    if not nodes:
        return _m_dims(rng, m, ops)
    node = rng.choice(nodes)
    for _ in range(rng.choice((1, 1, 2))):
        _mutate_attr(rng, node, ops, fields)


def _m_quant_type(rng, m, ops):
    node = rng.choice(m.nodes)
    value = rng.choice((0, 1, 2, 3, 4, 5, 6, 99, -1))
    ops.append(f"node {node.name!r} quantType {node.quant_type} -> {value}")
    node.quant_type = value


def _m_version(rng, m, ops):
    value = rng.choice(("", "MindSpore Lite 0.0.1", "MindSpore Lite 1.5.0", "MindSpore Lite 99.0.0",
                        "garbage", "MindSpore Lite x.y"))
    ops.append(f"version {m.version!r} -> {value!r}")
    m.version = value


def _m_subgraphs(rng, m, ops):
    from runtime.msformat.model import MsSubGraph
    n_t, n_n = len(m.tensors), len(m.nodes)
    sgs = [MsSubGraph("main", list(m.inputs), list(m.outputs), list(range(n_n)), list(range(n_t))),
           MsSubGraph("second", [rng.randrange(n_t)], [rng.randrange(n_t)],
                      [rng.choice((0, n_n, n_n - 1))], [rng.choice((0, n_t, n_t - 1))])]
    m.subgraphs = sgs
    ops.append(f"two subgraphs (second refers to node {sgs[1].nodes} tensor {sgs[1].tensors})")


def _m_swap_tensors(rng, m, ops):
    if len(m.tensors) < 2:
        return _m_dims(rng, m, ops)
    a, b = rng.sample(range(len(m.tensors)), 2)
    what = rng.choice(("dims", "data", "quant_params"))
    ta, tb = m.tensors[a], m.tensors[b]
    va, vb = getattr(ta, what), getattr(tb, what)
    setattr(ta, what, vb)
    setattr(tb, what, va)
    ops.append(f"swap {what} of tensors {a} and {b}")


MODEL_MUTATORS = (_m_dims, _m_dims, _m_dtype, _m_node_type, _m_format, _m_data, _m_quant, _m_quant,
                  _m_compress, _m_external, _m_node_io, _m_node_io, _m_graph_io, _m_op_type, _m_attr,
                  _m_attr, _m_attr, _m_quant_type, _m_version, _m_subgraphs, _m_swap_tensors)


def model_mutation(rng, data, ops):
    """Read, change 1-3 semantic elements, write back unvalidated. Falls back to raw on failure."""
    from runtime.errors import ToolkitError
    from runtime.msformat.reader import read_ms_bytes
    from runtime.msformat.writer import model_to_bytes
    try:
        model = read_ms_bytes(data, source="<seed>")
    except ToolkitError:
        return raw_mutation(rng, data, ops)
    if not model.nodes or not model.tensors:
        return raw_mutation(rng, data, ops)
    for attempt in range(5):
        trial = copy.deepcopy(model)
        mine = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            rng.choice(MODEL_MUTATORS)(rng, trial, mine)
        try:
            out = model_to_bytes(trial, check=False)
        except (struct.error, OverflowError, ValueError, TypeError, ToolkitError) as e:
            ops.append(f"(writer refused: {type(e).__name__}; retry)")
            continue
        ops.extend(mine)
        return out
    return raw_mutation(rng, data, ops)


def mutate_ms(rng, data, ops):
    r = rng.random()
    if r < 0.5:
        out = model_mutation(rng, data, ops)
    elif r < 0.85:
        out = raw_mutation(rng, data, ops)
        if rng.random() < 0.3:
            out = raw_mutation(rng, out, ops)
    else:
        out = bytes_ops.byte_mutation(rng, data, ops)
    return out
