"""Image dimensions read from the header the way OpenCV's decoder will read them, before decoding.

A 2 KB file can claim a gigapixel image; the decoder then allocates it. So every format that
runtime/images.py lets OpenCV decode has a parser here, written after the decoder's own header
reading, and a file whose dimensions cannot be read is refused (ImageError) instead of decoded blind.

Accepted formats and what is read:
- JPEG: markers walked like libjpeg's `next_marker` (bytes that are not 0xFF between segments are
  skipped, runs of 0xFF fill bytes swallowed, FF 00 discarded) up to the first SOFn: height, width,
  components. libjpeg skips junk the same way, so two junk bytes before the SOF cannot hide it.
  No SOF before SOS/EOI/end of data, more than MAX_JPEG_MARKERS segments before it, a height of 0
  (defined later by DNL) or more than MAX_JPEG_SCANS scans (progressive CPU bombs) are refused.
- PNG: the IHDR chunk, which must come first.
- BMP: the info header as OpenCV reads it (12-byte OS/2 header: 16-bit sizes; 36 bytes or more:
  signed 32-bit sizes, a negative height meaning top-down).
- PBM/PGM/PPM (P1-P6): magic, width, height, with '#' comments; PAM (P7): WIDTH/HEIGHT lines.
- TIFF (classic, "II*" / "MM*"): ImageWidth/ImageLength of the first IFD, the page OpenCV decodes.
- WebP: the VP8 frame header, the VP8L header, or the VP8X canvas size.

Everything else OpenCV could decode (JPEG 2000, Radiance HDR, OpenEXR, Sun raster, PFM, BigTIFF,
GDAL formats) is refused by name: its headers are not parsed here, so its size could not be bounded.
"""
import re
import struct
from collections import namedtuple

from .errors import ImageError
from .registry import registrar

Header = namedtuple("Header", "format height width components")

MAX_JPEG_MARKERS = 65536        # segments before the frame header; real files have a few dozen
MAX_JPEG_SCANS = 1000           # progressive JPEGs have about 10; each scan re-walks the image
PNM_HEADER_MAX = 65536          # bytes of a PBM/PGM/PPM/PAM header, comments included
ACCEPTED = ("JPEG", "PNG", "BMP", "PNM", "TIFF", "WebP")

HEADER_PARSERS = {}
header_parser = registrar(HEADER_PARSERS, "image header parser")

# magic -> name, for formats OpenCV decodes but this module does not parse (refused by name)
_REFUSED = [(b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
            (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"),
            (b"\x76\x2f\x31\x01", "OpenEXR"), (b"\x59\xa6\x6a\x95", "Sun raster"),
            (b"PF", "PFM"), (b"Pf", "PFM"), (b"II+\x00", "BigTIFF"), (b"MM\x00+", "BigTIFF"),
            (b"GIF8", "GIF")]


def sniff(data):
    """The accepted format `data` is in, by its first bytes; None when it is none of them."""
    head = bytes(data[:16])
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM"):
        return "BMP"
    if len(head) >= 3 and head[:1] == b"P" and head[1] in b"1234567" and head[2] in b" \t\r\n\x0b\x0c":
        return "PNM"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def read_header(data, source):
    """Header(format, height, width, components) of encoded `data`; ImageError when unreadable."""
    if not isinstance(data, bytes):
        data = bytes(data)
    fmt = sniff(data)
    if fmt is None:
        head = bytes(data[:16])
        for magic, name in _REFUSED:
            if head.startswith(magic):
                raise ImageError(source, f"{name} images are not accepted: their size cannot be "
                                         f"checked before decoding (accepted: {', '.join(ACCEPTED)})")
        raise ImageError(source, f"not an image in an accepted format ({', '.join(ACCEPTED)})")
    h, w, components = HEADER_PARSERS[fmt](data, source)
    if h <= 0 or w <= 0:
        raise ImageError(source, f"{fmt} header gives an empty size {w}x{h}")
    return Header(fmt, h, w, components)


# ---- JPEG -----------------------------------------------------------------------------------------

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NO_LENGTH = {0x01} | set(range(0xD0, 0xD8))          # TEM, RST0-7: markers without a segment
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
# libjpeg's next_marker: skip anything up to a run of 0xFF followed by a byte that is not 0x00
# (FF 00 is stuffed data, discarded) and not 0xFF (fill); that byte is the marker.
_NEXT_MARKER = re.compile(rb"\xff+([^\x00\xff])", re.DOTALL)


@header_parser("JPEG")
def _jpeg(data, source):
    sof = jpeg_sof(data)
    if isinstance(sof, str):
        raise ImageError(source, f"JPEG: {sof}; refused rather than decoded without a known size")
    h, w, nc = sof
    if h == 0:
        raise ImageError(source, "JPEG frame header gives height 0 (defined later by a DNL "
                                 "marker), not accepted")
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise ImageError(source, f"JPEG has {scans} scans, more than the {MAX_JPEG_SCANS} scan limit")
    return h, w, nc


def jpeg_sof(data):
    """(height, width, components) of the first SOFn, or a string saying why it was not found."""
    data = bytes(data) if not isinstance(data, bytes) else data
    n = len(data)
    if data[:2] != b"\xff\xd8":
        return "no start-of-image marker"
    i = 2
    for _ in range(MAX_JPEG_MARKERS):
        m = _NEXT_MARKER.search(data, i)
        if m is None:
            return "no frame header (SOF marker) before the end of the data"
        marker, i = m.group(1)[0], m.end()
        if marker in _SOF:
            if i + 8 > n:
                return "frame header (SOF) cut off by the end of the data"
            precision, h, w, nc = struct.unpack(">BHHB", data[i + 2:i + 8])
            return h, w, nc
        if marker == _SOS:
            return "scan (SOS) before any frame header (SOF)"
        if marker == _EOI:
            return "end-of-image marker before any frame header (SOF)"
        if marker == _SOI:
            return "second start-of-image marker before the frame header"
        if marker in _NO_LENGTH:
            continue
        if i + 2 > n:
            return f"segment 0xFF{marker:02X} cut off by the end of the data"
        length = (data[i] << 8) | data[i + 1]
        if length < 2:
            return f"segment 0xFF{marker:02X} at byte {i - 2} has invalid length {length}"
        i += length
    return f"more than {MAX_JPEG_MARKERS} marker segments before the frame header"


def jpeg_truncated(data):
    """True when the last scan is not followed by an end-of-image marker (a cut-off download).

    libjpeg would decode such a file with the missing part grey and only a warning; refused."""
    data = bytes(data) if not isinstance(data, bytes) else data
    end = data.rfind(b"\xff\xd9")
    return end < 0 or end < data.rfind(b"\xff\xda")


# ---- PNG ------------------------------------------------------------------------------------------

@header_parser("PNG")
def _png(data, source):
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise ImageError(source, "PNG without an IHDR chunk first")
    w, h = struct.unpack(">II", data[16:24])
    return h, w, None


# ---- BMP ------------------------------------------------------------------------------------------

@header_parser("BMP")
def _bmp(data, source):
    if len(data) < 22:
        raise ImageError(source, "BMP header cut off")
    info = struct.unpack("<I", data[14:18])[0]
    if info == 12:
        w, h = struct.unpack("<HH", data[18:22])
    elif info >= 36:
        if len(data) < 26:
            raise ImageError(source, "BMP header cut off")
        w, h = struct.unpack("<ii", data[18:26])
        h = abs(h)                         # negative: rows stored top-down
    else:
        raise ImageError(source, f"BMP info header of {info} bytes is not a kind OpenCV reads")
    return h, w, None


# ---- PBM / PGM / PPM / PAM ------------------------------------------------------------------------

_SPACE = b" \t\r\n\x0b\x0c"


@header_parser("PNM")
def _pnm(data, source):
    head = data[:PNM_HEADER_MAX]
    if head[1:2] == b"7":
        return _pam(head, source)
    numbers, i = [], 2
    while len(numbers) < 2:
        while i < len(head) and (head[i] in _SPACE or head[i] == 0x23):     # 0x23 '#': comment
            if head[i] == 0x23:
                ends = [j for j in (head.find(b"\n", i), head.find(b"\r", i)) if j >= 0]
                i = min(ends) if ends else len(head)
            else:
                i += 1
        j = i
        while j < len(head) and 0x30 <= head[j] <= 0x39:
            j += 1
        if j == i:
            where = "header longer than %d bytes" % PNM_HEADER_MAX if i >= len(head) else f"byte {i}"
            raise ImageError(source, f"P{head[1] - 48} header: expected the "
                                     f"{('width', 'height')[len(numbers)]} at {where}")
        if j - i > 10:
            raise ImageError(source, f"P{head[1] - 48} header: {('width', 'height')[len(numbers)]} "
                                     f"has {j - i} digits")
        numbers.append(int(head[i:j]))
        i = j
    return numbers[1], numbers[0], None


def _pam(head, source):
    end = head.find(b"ENDHDR")
    if end < 0:
        raise ImageError(source, f"PAM header: no ENDHDR in the first {PNM_HEADER_MAX} bytes")
    fields = {}
    for line in head[3:end].splitlines():
        parts = line.split(b"#", 1)[0].split()
        if len(parts) >= 2 and parts[0] in (b"WIDTH", b"HEIGHT"):
            if not parts[1].isdigit() or len(parts[1]) > 10:
                raise ImageError(source, f"PAM header: {parts[0].decode()} {parts[1][:20]!r} is not a size")
            fields[parts[0]] = int(parts[1])
    missing = [k.decode() for k in (b"WIDTH", b"HEIGHT") if k not in fields]
    if missing:
        raise ImageError(source, f"PAM header: no {' or '.join(missing)}")
    return fields[b"HEIGHT"], fields[b"WIDTH"], None


# ---- TIFF -----------------------------------------------------------------------------------------

_TIFF_SHORT, _TIFF_LONG = 3, 4
_TIFF_WIDTH, _TIFF_LENGTH = 256, 257


@header_parser("TIFF")
def _tiff(data, source):
    e = "<" if data[:2] == b"II" else ">"
    n = len(data)
    if n < 8:
        raise ImageError(source, "TIFF header cut off")
    ifd = struct.unpack(e + "I", data[4:8])[0]
    if ifd < 8 or ifd + 2 > n:
        raise ImageError(source, f"TIFF first IFD offset {ifd} is outside the {n}-byte file")
    count = struct.unpack(e + "H", data[ifd:ifd + 2])[0]
    if ifd + 2 + 12 * count > n:
        raise ImageError(source, f"TIFF first IFD ({count} entries) runs past the end of the file")
    sizes = {}
    for k in range(count):
        off = ifd + 2 + 12 * k
        tag, kind, values = struct.unpack(e + "HHI", data[off:off + 8])
        if tag not in (_TIFF_WIDTH, _TIFF_LENGTH) or tag in sizes:
            continue
        name = "ImageWidth" if tag == _TIFF_WIDTH else "ImageLength"
        if values != 1 or kind not in (_TIFF_SHORT, _TIFF_LONG):
            raise ImageError(source, f"TIFF {name} tag has type {kind} x{values}, not one SHORT or LONG")
        fmt = e + ("H" if kind == _TIFF_SHORT else "I")
        sizes[tag] = struct.unpack(fmt, data[off + 8:off + 8 + struct.calcsize(fmt)])[0]
    missing = [name for tag, name in ((_TIFF_WIDTH, "ImageWidth"), (_TIFF_LENGTH, "ImageLength"))
               if tag not in sizes]
    if missing:
        raise ImageError(source, f"TIFF first IFD has no {' or '.join(missing)} tag")
    return sizes[_TIFF_LENGTH], sizes[_TIFF_WIDTH], None


# ---- WebP -----------------------------------------------------------------------------------------

@header_parser("WebP")
def _webp(data, source):
    if len(data) < 30:
        raise ImageError(source, "WebP header cut off")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ImageError(source, "WebP VP8 frame without its start code")
        w, h = struct.unpack("<HH", data[26:30])
        return h & 0x3FFF, w & 0x3FFF, None
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ImageError(source, "WebP VP8L chunk without its signature byte")
        bits = struct.unpack("<I", data[21:25])[0]
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1, None
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return h, w, None
    raise ImageError(source, f"WebP first chunk {chunk!r} is not VP8, VP8L or VP8X")
