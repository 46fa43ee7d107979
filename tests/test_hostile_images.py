"""Hostile files cost nothing: each is refused before decoding with an ImageError naming the file
and the problem (runtime/images.py, runtime/image_headers.py); special files never block.

Bombs are hand-made: a real small image whose header is patched to claim a huge size, so without
the header check the decoder would allocate the claimed size (the JPEG one: 30000x29000 pixels,
5.2 GB and 17 s from 2.6 KB, when two junk bytes hid its SOF from the old header walk).
"""
import os
import signal
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from runtime.errors import ImageError
from runtime.image_headers import MAX_JPEG_SCANS, read_header, sniff
from runtime.images import MAX_FILE_BYTES, MAX_PIXELS, header_size, load_rgb, read_file

RNG = np.random.default_rng(3)
PHOTO = cv2.GaussianBlur(RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8), (5, 5), 0)   # BGR


def _jpeg():
    return cv2.imencode(".jpg", PHOTO, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _sof_at(data):
    i = data.find(b"\xff\xc0")
    assert i > 0
    return i


def _with_size(data, height, width):
    """The JPEG with its SOF0 claiming height x width."""
    i = _sof_at(data)
    return data[:i + 5] + struct.pack(">HH", height, width) + data[i + 9:]


def _junk_before_sof(data, junk=b"\x12\x34"):
    i = _sof_at(data)
    return data[:i] + junk + data[i:]


def _refused(tmp_path, name, data, *needles):
    """Write `data` as `name`, decode it, and check the error names the file and the problem."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageError) as err:
        load_rgb(str(path))
    assert err.value.source == str(path) and str(path) in str(err.value)
    for needle in needles:
        assert needle in err.value.problem, err.value.problem
    return err.value


# ---- JPEG -----------------------------------------------------------------------------------------

def test_junk_before_the_sof_does_not_hide_it_the_decoder_skips_it_too():
    data = _junk_before_sof(_jpeg())
    assert header_size(data) == (37, 53)
    assert load_rgb(data).shape == (37, 53, 3)       # libjpeg skipped the junk the same way


def test_jpeg_bomb_with_junk_before_the_sof_is_refused_before_decoding(tmp_path):
    bomb = _junk_before_sof(_with_size(_jpeg(), 30000, 29000))
    assert len(bomb) < 4096
    assert header_size(bomb) == (30000, 29000)
    _refused(tmp_path, "bomb.jpg", bomb, "JPEG header claims 29000x30000 pixels", f"{MAX_PIXELS} pixel")


@pytest.mark.parametrize("junk", [b"\xff\xff\xff", b"\xff\x00\xff\x00", b"\x00" * 100])
def test_fill_bytes_and_stuffed_zeros_before_the_sof_are_walked_like_libjpeg(junk):
    data = _junk_before_sof(_jpeg(), junk)
    assert header_size(data) == (37, 53)
    assert load_rgb(data).shape == (37, 53, 3)


def test_a_jpeg_whose_sof_cannot_be_found_is_refused_not_decoded_blind(tmp_path):
    data = _jpeg()
    i = _sof_at(data)
    length = (data[i + 2] << 8) | data[i + 3]
    no_sof = data[:i] + data[i + 2 + length:]            # frame header removed
    _refused(tmp_path, "nosof.jpg", no_sof, "JPEG", "before any frame header (SOF)", "refused")


@pytest.mark.parametrize("name,make,needle", [
    ("badlen.jpg", lambda d: d[:2] + b"\xff\xe0\x00\x01" + d[2:], "invalid length 1"),
    ("cut.jpg", lambda d: d[:_sof_at(d) + 4], "cut off"),
    ("eoi.jpg", lambda d: d[:2] + b"\xff\xd9" + d[2:], "end-of-image marker before"),
    ("twosoi.jpg", lambda d: d[:2] + b"\xff\xd8" + d[2:], "second start-of-image"),
    ("dnl.jpg", lambda d: _with_size(d, 0, 53), "height 0"),
    ("markers.jpg", lambda d: d[:2] + b"\xff\xfe\x00\x02" * 70000 + d[2:], "marker segments"),
])
def test_malformed_jpeg_headers_are_refused_with_the_reason(tmp_path, name, make, needle):
    _refused(tmp_path, name, make(_jpeg()), needle)


def test_truncated_jpeg_is_refused_not_grey_filled(tmp_path):
    data = _jpeg()
    _refused(tmp_path, "half.jpg", data[:len(data) * 2 // 3], "truncated JPEG")


def test_progressive_scan_bombs_are_refused(tmp_path):
    data = _jpeg()
    eoi = data.rfind(b"\xff\xd9")
    many = data[:eoi] + b"\xff\xda" * (MAX_JPEG_SCANS + 1) + data[eoi:]
    _refused(tmp_path, "scans.jpg", many, f"{MAX_JPEG_SCANS} scan limit")


# ---- other formats: every one OpenCV decodes has its header read first -----------------------------

def _png_claiming(width, height, first=b"IHDR"):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(first, ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _bmp_claiming(width, height, info=40):
    header = struct.pack("<2sIHHI", b"BM", 0, 0, 0, 14 + info)
    if info == 12:
        dib = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        dib = struct.pack("<IiiHHIIiiII", info, width, height, 1, 24, 0, 0, 0, 0, 0, 0)
        dib += b"\0" * (info - len(dib))
    return header + dib + b"\0" * 64


def _tiff_claiming(width, height, endian="<"):
    magic = b"II*\x00" if endian == "<" else b"MM\x00*"
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 200), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 64)]
    ifd = struct.pack(endian + "H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack(endian + ("H" if kind == 3 else "I"), value).ljust(4, b"\0")
        ifd += struct.pack(endian + "HHI", tag, kind, count) + packed
    return (magic + struct.pack(endian + "I", 8) + ifd + b"\0\0\0\0").ljust(264, b"\0")


def _webp_vp8x_claiming(width, height):
    vp8x = struct.pack("<4sI", b"VP8X", 10) + b"\x00\x00\x00\x00" + \
        (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x + b"\0" * 32
    return b"RIFF" + struct.pack("<I", len(body)) + body


BOMBS = {
    "png.png": (_png_claiming(60000, 60000), "PNG header claims 60000x60000"),
    "bmp.bmp": (_bmp_claiming(100000, -100000), "BMP header claims 100000x100000"),
    "os2.bmp": (_bmp_claiming(65535, 65535, info=12), "BMP header claims 65535x65535"),
    "ppm.ppm": (b"P6\n# a comment\n100000 100000\n255\n" + b"\0" * 64, "PNM header claims 100000x100000"),
    "pgm.pgm": (b"P5 20000\t20000 255\n" + b"\0" * 64, "PNM header claims 20000x20000"),
    "pbm.pbm": (b"P4\n30000 30000\n" + b"\0" * 64, "PNM header claims 30000x30000"),
    "pam.pam": (b"P7\nWIDTH 50000\nHEIGHT 50000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + b"\0" * 64,
                "PNM header claims 50000x50000"),
    "tiff_le.tif": (_tiff_claiming(100000, 100000), "TIFF header claims 100000x100000"),
    "tiff_be.tif": (_tiff_claiming(70000, 70000, ">"), "TIFF header claims 70000x70000"),
    "webp.webp": (_webp_vp8x_claiming(16384, 16384), "WebP header claims 16384x16384"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_huge_sizes_in_any_accepted_header_are_refused_before_decoding(tmp_path, name):
    data, needle = BOMBS[name]
    _refused(tmp_path, name, data, needle, f"{MAX_PIXELS} pixel limit")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".ppm", ".pgm", ".tiff", ".webp", ".pbm"])
def test_headers_are_read_as_the_decoder_reads_them(ext):
    img = PHOTO if ext not in (".pgm", ".pbm") else cv2.cvtColor(PHOTO, cv2.COLOR_BGR2GRAY)
    if ext == ".pbm":
        img = (img > 128).astype(np.uint8) * 255
    data = cv2.imencode(ext, img)[1].tobytes()
    assert header_size(data) == (37, 53)
    assert load_rgb(data).shape == (37, 53, 3)


@pytest.mark.parametrize("fmt,kw", [("WEBP", {"quality": 80}), ("WEBP", {"lossless": True}),
                                    ("TIFF", {"compression": "tiff_lzw"}), ("BMP", {}), ("PPM", {})])
def test_pillow_written_files_parse_too(fmt, kw):
    import io
    from PIL import Image as PILImage
    buf = io.BytesIO()
    PILImage.fromarray(PHOTO[..., ::-1]).save(buf, fmt, **kw)
    assert header_size(buf.getvalue()) == (37, 53)
    assert load_rgb(buf.getvalue()).shape == (37, 53, 3)


@pytest.mark.parametrize("name,data,needle", [
    ("j2k.jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\0" * 64, "JPEG 2000 images are not accepted"),
    ("hdr.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 9 +X 9\n" + b"\0" * 64, "Radiance HDR"),
    ("sun.ras", b"\x59\xa6\x6a\x95" + b"\0" * 64, "Sun raster"),
    ("big.tif", b"II+\x00\x08\x00\x00\x00" + b"\0" * 64, "BigTIFF"),
    ("pfm.pfm", b"PF\n9 9\n-1\n" + b"\0" * 64, "PFM"),
    ("noise.bin", b"\x01\x02\x03 not an image" * 4, "not an image in an accepted format"),
    ("late.png", _png_claiming(10, 10, first=b"tEXt"), "PNG without an IHDR chunk first"),
    ("ifd.tif", b"II*\x00\xff\xff\x00\x00" + b"\0" * 64, "first IFD offset"),
    ("pnm.ppm", b"P6\n 12x 7\n255\n" + b"\0" * 64, "expected the height"),
    ("digits.ppm", b"P6\n123456789012 7\n255\n", "12 digits"),
    ("nohdr.pam", b"P7\nWIDTH 3\n" + b"\0" * 64, "no ENDHDR"),
    ("bmpinfo.bmp", _bmp_claiming(10, 10, info=40)[:14] + struct.pack("<I", 20) + b"\0" * 64,
     "20 bytes is not a kind OpenCV reads"),
    ("webpchunk.webp", b"RIFF\x20\0\0\0WEBPABCD" + b"\0" * 32, "is not VP8, VP8L or VP8X"),
])
def test_formats_whose_size_cannot_be_read_are_refused_by_name(tmp_path, name, data, needle):
    _refused(tmp_path, name, data, needle)


def test_sniffing_and_headers_agree_for_every_accepted_format():
    assert sniff(_jpeg()) == "JPEG" and read_header(_jpeg(), "x").components == 3
    assert [sniff(BOMBS[n][0]) for n in ("png.png", "bmp.bmp", "ppm.ppm", "tiff_be.tif", "webp.webp")] \
        == ["PNG", "BMP", "PNM", "TIFF", "WebP"]


# ---- special files --------------------------------------------------------------------------------

class _Alarm:
    """Fail instead of hanging forever if an open() or read() blocks."""

    def __enter__(self):
        def hang(signum, frame):
            raise TimeoutError("blocked on a special file")
        self.previous = signal.signal(signal.SIGALRM, hang)
        signal.alarm(10)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with _Alarm(), pytest.raises(ImageError) as err:
        load_rgb(str(fifo))
    assert str(fifo) in str(err.value) and "FIFO" in err.value.problem


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_symlink_to_dev_zero_is_refused(tmp_path):
    link = tmp_path / "zero.jpg"
    os.symlink("/dev/zero", link)
    with _Alarm(), pytest.raises(ImageError) as err:
        read_file(str(link))
    assert str(link) in str(err.value)
    assert "character device" in err.value.problem and "symbolic link" in err.value.problem


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: os.symlink(p.name, p), "Too many levels of symbolic links"),
    (lambda p: os.symlink(str(p) + ".gone", p), "dangling symbolic link"),
    (lambda p: open(p, "wb").truncate(MAX_FILE_BYTES + 1), f"more than the {MAX_FILE_BYTES} byte limit"),
], ids=["directory", "symlink-loop", "dangling-symlink", "too-large-sparse"])
def test_other_special_paths_are_refused_by_name(tmp_path, make, needle):
    path = tmp_path / "odd.jpg"
    make(path)
    with _Alarm(), pytest.raises(ImageError) as err:
        load_rgb(str(path))
    assert str(path) in str(err.value) and needle in err.value.problem


# ---- OpenCV's own bound, and the memory the bombs cost ----------------------------------------------

def _python(code):
    env = dict(os.environ)
    env.pop("OPENCV_IO_MAX_IMAGE_PIXELS", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_opencv_itself_is_bounded_to_max_pixels_when_runtime_loads_first():
    # 20000x20000 is under OpenCV's default bound (2**30) but over MAX_PIXELS: the header check is
    # bypassed on purpose (cv2.imdecode called directly) to show the second bound holds on its own.
    code = ("import struct, zlib, numpy as np, runtime.images as ri, cv2\n"
            "def chunk(k, d): return struct.pack('>I', len(d)) + k + d + struct.pack('>I', zlib.crc32(k + d))\n"
            "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 20000, 20000, 8, 0, 0, 0, 0))"
            " + chunk(b'IDAT', zlib.compress(b'\\0' * 64)) + chunk(b'IEND', b'')\n"
            "try:\n"
            "    r = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR); print('decoded', r is not None)\n"
            "except cv2.error as e:\n"
            "    print('refused', 'CV_IO_MAX_IMAGE_PIXELS' in str(e))\n"
            "print(ri.opencv_bounded())")
    assert _python(code).split("\n") == ["refused True", "True"]


def test_the_bound_is_reported_missing_when_cv2_was_imported_first():
    assert _python("import cv2, runtime.images as ri; print(ri.opencv_bounded())") == "False"


def test_refusing_every_bomb_costs_almost_no_memory(tmp_path):
    """Peak RSS grows by less than 20 MB over refusing all bombs here (the JPEG one would cost
    5.2 GB if decoded)."""
    folder = tmp_path / "bombs"
    folder.mkdir()
    bombs = dict(BOMBS, **{"jpeg.jpg": (_junk_before_sof(_with_size(_jpeg(), 30000, 29000)), "")})
    for name, (data, _) in bombs.items():
        (folder / name).write_bytes(data)
    code = ("import os, resource, runtime.images as ri\n"
            "from runtime.errors import ImageError\n"
            f"folder = {str(folder)!r}\n"
            "ri.load_rgb(ri.rgb(__import__('numpy').zeros((8, 8, 3), 'uint8')))\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "refused = 0\n"
            "for name in sorted(os.listdir(folder)):\n"
            "    try:\n"
            "        ri.load_rgb(os.path.join(folder, name))\n"
            "    except ImageError:\n"
            "        refused += 1\n"
            "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(refused, after - before)")
    refused, grew_kb = map(int, _python(code).split())
    assert refused == len(bombs)
    assert grew_kb < 20 * 1024
