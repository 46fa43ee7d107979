"""Structured mutations of encoded images: JPEG markers and SOF fields, PNG chunks (CRC fixed so a
decoder gets past the checksum), BMP header fields, PNM header text, plus byte-level mutations."""
import struct
import zlib

from . import bytes_ops

_BIG = (0, 1, 2, 255, 256, 4096, 10000, 40000, 65535)


def jpeg_segments(data):
    """(marker, position, length) of the marker segments before the first scan's data, then SOS."""
    out, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xFF:
            i += 1
            continue
        n = struct.unpack_from(">H", data, i + 2)[0]
        out.append((marker, i, n))
        if marker == 0xDA:
            break
        i += 2 + n
    return out


def _jpeg(rng, data, ops):
    segs = jpeg_segments(data)
    if not segs:
        return bytes_ops.byte_mutation(rng, data, ops)
    sofs = [s for s in segs if 0xC0 <= s[0] <= 0xCF and s[0] not in (0xC4, 0xC8, 0xCC)]
    how = rng.choice(("sof-dims", "sof-dims", "sof-components", "sof-precision", "sof-sampling",
                      "length", "junk-before-marker", "cut-at-marker", "drop-segment", "dup-segment",
                      "no-eoi", "dht-counts"))
    out = bytearray(data)
    if how.startswith("sof") and sofs:
        _, p, _ = sofs[0]
        if how == "sof-dims":
            h, w = rng.choice(_BIG), rng.choice(_BIG)
            struct.pack_into(">HH", out, p + 5, h, w)
            ops.append(f"JPEG SOF dims -> {w}x{h}")
        elif how == "sof-components":
            n = rng.choice((0, 1, 2, 3, 4, 5, 255))
            out[p + 9] = n
            ops.append(f"JPEG SOF component count -> {n}")
        elif how == "sof-precision":
            out[p + 4] = rng.choice((0, 1, 12, 16, 255))
            ops.append(f"JPEG SOF precision -> {out[p + 4]}")
        else:
            k = p + 10 + 3 * rng.randrange(max(out[p + 9], 1)) + 1
            if k < len(out):
                out[k] = rng.choice((0x00, 0x11, 0x44, 0x55, 0xFF, 0x0F))
            ops.append("JPEG SOF sampling factor changed")
        return bytes(out)
    marker, p, n = rng.choice(segs)
    if how == "length":
        v = rng.choice((0, 1, 2, 3, n + 1, max(n - 1, 0), 0xFFFF))
        struct.pack_into(">H", out, p + 2, v)
        ops.append(f"JPEG segment {marker:#x} length {n} -> {v}")
    elif how == "junk-before-marker":
        junk = rng.choice((b"\x00" * 7, b"\xff" * 5, b"junk", bytes(range(1, 40))))
        out[p:p] = junk
        ops.append(f"JPEG {len(junk)} junk bytes before marker {marker:#x}")
    elif how == "cut-at-marker":
        out = out[:p + rng.choice((0, 1, 2, 4, n))]
        ops.append(f"JPEG cut at marker {marker:#x}")
    elif how == "drop-segment":
        del out[p:p + 2 + n]
        ops.append(f"JPEG segment {marker:#x} removed")
    elif how == "dup-segment":
        out[p:p] = data[p:p + 2 + n]
        ops.append(f"JPEG segment {marker:#x} duplicated")
    elif how == "no-eoi":
        out = out[:-2] if out.endswith(b"\xff\xd9") else out
        ops.append("JPEG EOI removed")
    else:
        dhts = [s for s in segs if s[0] == 0xC4]
        if dhts:
            _, q, _ = rng.choice(dhts)
            for k in range(16):
                out[q + 5 + k] = rng.choice((0, 255))
        ops.append("JPEG DHT code counts overwritten")
    return bytes(out)


def png_chunks(data):
    out, i = [], 8
    while i + 12 <= len(data):
        n = struct.unpack_from(">I", data, i)[0]
        out.append((data[i + 4:i + 8], i, n))
        i += 12 + n
    return out


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(rng, data, ops):
    chunks = png_chunks(data)
    if not chunks:
        return bytes_ops.byte_mutation(rng, data, ops)
    ihdr = [c for c in chunks if c[0] == b"IHDR"]
    how = rng.choice(("ihdr-dims", "ihdr-dims", "ihdr-depth", "ihdr-color", "ihdr-flags", "length",
                      "bomb", "drop-iend", "cut-idat", "critical-unknown", "dup-ihdr"))
    if how.startswith("ihdr") and ihdr:
        _, p, n = ihdr[0]
        body = bytearray(data[p + 8:p + 8 + n])
        if how == "ihdr-dims":
            w, h = rng.choice((0, 1, 2, 7, 10000, 40000, 0x7FFFFFFF, 0xFFFFFFFF)), \
                rng.choice((0, 1, 3, 10000, 65536, 0x7FFFFFFF))
            struct.pack_into(">II", body, 0, w, h)
            ops.append(f"PNG IHDR {w}x{h}")
        elif how == "ihdr-depth":
            body[8] = rng.choice((0, 1, 2, 3, 4, 7, 16, 255))
            ops.append(f"PNG IHDR bit depth {body[8]}")
        elif how == "ihdr-color":
            body[9] = rng.choice((1, 2, 3, 4, 5, 6, 7, 255))
            ops.append(f"PNG IHDR colour type {body[9]}")
        else:
            k = rng.choice((10, 11, 12))
            body[k] = rng.choice((1, 2, 255))
            ops.append(f"PNG IHDR byte {k} -> {body[k]}")
        return data[:p] + _chunk(b"IHDR", bytes(body)) + data[p + 12 + n:]
    kind, p, n = rng.choice(chunks)
    if how == "length":
        v = rng.choice((0, 1, n + 1, max(n - 1, 0), 0x7FFFFFFF, 0xFFFFFFFF))
        ops.append(f"PNG chunk {kind!r} length {n} -> {v}")
        return data[:p] + struct.pack(">I", v) + data[p + 4:]
    if how == "bomb":
        w, h = rng.choice(((9000, 9000), (10000, 10000), (20000, 5000), (3000, 30000)))
        body = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
        raw = zlib.compress(bytes(w + 1) * h, 9)
        ops.append(f"PNG decompression bomb {w}x{h} gray in {len(raw)} bytes")
        return data[:8] + _chunk(b"IHDR", body) + _chunk(b"IDAT", raw) + _chunk(b"IEND", b"")
    if how == "drop-iend":
        ops.append("PNG IEND removed")
        return data[:-12] if data.endswith(_chunk(b"IEND", b"")) else data[:-1]
    if how == "cut-idat":
        idats = [c for c in chunks if c[0] == b"IDAT"]
        _, q, m = rng.choice(idats or chunks)
        ops.append("PNG IDAT cut")
        return data[:q + 8 + rng.randrange(max(m, 1))]
    if how == "critical-unknown":
        ops.append("PNG unknown critical chunk ABCD before IDAT")
        return data[:p] + _chunk(b"ABCD", b"\x00" * 8) + data[p:]
    ops.append("PNG IHDR duplicated")
    first = ihdr[0] if ihdr else chunks[0]
    return data[:first[1]] + data[first[1]:first[1] + 12 + first[2]] * 2 + data[first[1] + 12 + first[2]:]


_BMP_FIELDS = {  # name: (offset, struct format, values)
    "bfSize": (2, "<I", (0, 1, 0xFFFFFFFF)),
    "bfOffBits": (10, "<I", (0, 14, 54, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)),
    "biSize": (14, "<I", (0, 12, 16, 40, 64, 108, 124, 0xFFFF)),
    "biWidth": (18, "<i", (0, 1, -1, 65536, 100000, 0x7FFFFFFF, -0x80000000)),
    "biHeight": (22, "<i", (0, 1, -1, -29, 65536, 100000, 0x7FFFFFFF, -0x80000000)),
    "biPlanes": (26, "<H", (0, 2, 0xFFFF)),
    "biBitCount": (28, "<H", (0, 1, 2, 4, 8, 15, 16, 24, 32, 64, 0xFFFF)),
    "biCompression": (30, "<I", (0, 1, 2, 3, 4, 5, 6, 99)),
    "biSizeImage": (34, "<I", (0, 1, 0xFFFFFFFF)),
    "biClrUsed": (46, "<I", (0, 1, 256, 257, 0x7FFFFFFF)),
}


def _bmp(rng, data, ops):
    if len(data) < 54:
        return bytes_ops.byte_mutation(rng, data, ops)
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 2))):
        name = rng.choice(sorted(_BMP_FIELDS))
        pos, fmt, values = _BMP_FIELDS[name]
        v = rng.choice(values)
        struct.pack_into(fmt, out, pos, v)
        ops.append(f"BMP {name} -> {v}")
    return bytes(out)


def _pnm(rng, data, ops):
    parts = data.split(maxsplit=4) if data[:1] == b"P" else []
    if len(parts) < 5:
        return bytes_ops.byte_mutation(rng, data, ops)
    magic, w, h, maxval, pixels = parts
    choice = (b"0", b"1", b"-1", b"65536", b"100000", b"99999999", b"abc", b"4294967297")
    how = rng.choice(("w", "h", "maxval", "magic", "comment"))
    if how == "w":
        w = rng.choice(choice)
    elif how == "h":
        h = rng.choice(choice)
    elif how == "maxval":
        maxval = rng.choice((b"0", b"1", b"254", b"256", b"65535", b"65536", b"-1"))
    elif how == "magic":
        magic = rng.choice((b"P1", b"P3", b"P4", b"P5", b"P6", b"P7", b"P9"))
    ops.append(f"PNM header {magic!r} {w!r} {h!r} {maxval!r}" + (" + long comment" if how == "comment" else ""))
    comment = b"#" + b"c" * 100000 + b"\n" if how == "comment" else b""
    return magic + b"\n" + comment + w + b" " + h + b"\n" + maxval + b"\n" + pixels


def mutate_image(rng, data, ops):
    if rng.random() < 0.8:
        if data[:2] == b"\xff\xd8":
            out = _jpeg(rng, data, ops)
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            out = _png(rng, data, ops)
        elif data[:2] == b"BM":
            out = _bmp(rng, data, ops)
        else:
            out = _pnm(rng, data, ops)
    else:
        out = bytes_ops.byte_mutation(rng, data, ops)
    if rng.random() < 0.05:
        out = b"\x00junk" + out
        ops.append("junk prefix")
    return out
