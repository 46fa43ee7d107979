"""Reading one image the way the whole project does (training, eval, export checks, runtime).

Policy, stated once so the device side can match it:
- decode = `cv2.imdecode(bytes, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)` then BGR -> RGB.
  For ordinary JPEGs this equals MindSpore's `vision.Decode()` bit for bit (platform-facts.md).
- EXIF orientation is IGNORED (pixels are used as stored), as `ModelMeta.exif_orientation = "ignore"`.
- grayscale -> the gray value in all three channels; RGBA -> alpha dropped; 16-bit -> 8-bit as OpenCV
  converts it (IMREAD_COLOR); PNG/BMP/TIFF/WebP decode like JPEG.
- a JPEG whose main scan is cut off (no EOI marker after the last SOS) is refused as truncated,
  because OpenCV would otherwise return it grey-filled with only a warning.
"""
import os

import cv2
import numpy as np

MAX_FILE_BYTES = 256 * 1024 * 1024       # refuse absurd files instead of reading them into memory
MAX_PIXELS = 100_000_000                 # refuse decompression bombs (checked on the header)
_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


class UnreadableImage(Exception):
    """One file cannot be used as an image; `reason` says why (used for the skipped-files report)."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _jpeg_truncated(data):
    end = data.rfind(b"\xff\xd9")
    return end < 0 or end < data.rfind(b"\xff\xda")


def header_size(data):
    """(width, height) from a PNG or JPEG header without decoding; None when not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + seg
    return None


def read_bytes(path):
    try:
        size = os.path.getsize(path)
        if size == 0:
            raise UnreadableImage(path, "empty file")
        if size > MAX_FILE_BYTES:
            raise UnreadableImage(path, f"file too large ({size} bytes)")
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UnreadableImage(path, f"cannot read: {e.strerror or e}") from None


def decode_rgb(data, path="<bytes>"):
    """Encoded bytes -> uint8 RGB HWC array, or UnreadableImage with the reason."""
    if data[:2] == b"\xff\xd8" and _jpeg_truncated(data):
        raise UnreadableImage(path, "truncated JPEG (no end-of-image marker after the image data)")
    wh = header_size(data)
    if wh is not None and wh[0] * wh[1] > MAX_PIXELS:
        raise UnreadableImage(path, f"image too large ({wh[0]}x{wh[1]} pixels)")
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, _FLAGS)
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise UnreadableImage(path, "not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_rgb(path):
    """Image file -> uint8 RGB HWC array (the project's decode policy)."""
    return decode_rgb(read_bytes(path), path)
