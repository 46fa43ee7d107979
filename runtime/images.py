"""Turn whatever the caller has (a path, encoded bytes, an array) into an 8-bit RGB HWC array.

The decode is the one MindSpore's `dataset.vision.Decode` performs during training, measured
against it (tests/test_preprocess_parity.py), so the runtime sees the same pixels as training:

- files and bytes: `cv2.imdecode(IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION)` then BGR->RGB. That one
  call already converts the odd kinds the way training does: grayscale is replicated to three
  channels, the alpha channel of RGBA/LA images is dropped (no compositing: training never saw a
  background colour), 16-bit samples keep their high byte, palette images are expanded;
- CMYK/YCCK JPEGs: MindSpore converts them with its own integer formula, reproduced here (see
  `_decode_cmyk_jpeg`);
- EXIF orientation: MindSpore's Decode ignores the tag, so the default policy is "ignore"
  (ModelMeta.exif_orientation). "apply" rotates like a photo viewer, for models trained that way;
- arrays follow the same rules; their channel order must be stated ("BGR" or "RGB") because an
  array does not carry it. Floating-point arrays are refused: 0..1 versus 0..255 cannot be guessed.

Untrusted input is bounded: the file size is capped and PNG/JPEG headers are read before decoding,
so a small file that claims a gigapixel image is refused without allocating it.
"""
import logging
import os
import struct

import cv2
import numpy as np

from .errors import ImageError

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 100_000_000            # 100 megapixels: ~300 MB as RGB, far above any camera photo

# exif_orientation policy -> cv2.imdecode flags
EXIF_POLICIES = {
    "ignore": cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
    "apply": cv2.IMREAD_COLOR,
}
CHANNEL_ORDERS = ("RGB", "BGR")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")


class Image:
    """An array tagged with its channel order, so mixed batches can be passed in one list."""

    __slots__ = ("array", "order", "name")

    def __init__(self, array, order, name=None):
        self.array = array
        self.order = order
        self.name = name


def rgb(array, name=None):
    return Image(array, "RGB", name)


def bgr(array, name=None):
    return Image(array, "BGR", name)


def describe(image):
    """A short name for error messages: the path, or the kind of object."""
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, Image):
        return image.name or f"<{image.order} array {getattr(image.array, 'shape', '?')}>"
    if isinstance(image, np.ndarray):
        return f"<array {image.shape} {image.dtype}>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} bytes>"
    return f"<{type(image).__name__}>"


def load_rgb(image, order=None, exif_orientation="ignore"):
    """RGB uint8 (H, W, 3) from a path, encoded bytes, an `Image`, or an array in `order`."""
    if isinstance(image, Image):
        return array_to_rgb(image.array, image.order, describe(image))
    if isinstance(image, (str, os.PathLike)):
        return decode_bytes(read_file(image), os.fspath(image), exif_orientation)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_bytes(image, describe(image), exif_orientation)
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, order, describe(image))
    raise ImageError(describe(image), "expected a path, encoded image bytes or a numpy array")


def read_file(path):
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise ImageError(path, f"file is {size} bytes, more than the {MAX_FILE_BYTES} byte limit")
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageError(path, "is a directory, not an image") from None
    except OSError as e:
        raise ImageError(path, f"cannot read: {e.strerror or e}") from None


def decode_bytes(data, source, exif_orientation="ignore"):
    flags = EXIF_POLICIES.get(exif_orientation)
    if flags is None:
        raise ImageError(source, f"unknown exif_orientation policy {exif_orientation!r}; "
                                 f"known: {', '.join(EXIF_POLICIES)}")
    if len(data) == 0:
        raise ImageError(source, "empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(source, f"{len(data)} bytes, more than the {MAX_FILE_BYTES} byte limit")
    dims = header_size(data)
    if dims is not None and dims[0] * dims[1] > MAX_PIXELS:
        raise ImageError(source, f"header claims {dims[1]}x{dims[0]} pixels, more than the "
                                 f"{MAX_PIXELS} pixel limit")
    if exif_orientation == "ignore" and jpeg_components(data) == 4:
        rgb_img = _decode_cmyk_jpeg(data, source)
        if rgb_img is not None:
            return rgb_img
    buf = np.frombuffer(data, np.uint8)
    try:
        bgr_img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        raise ImageError(source, f"cannot decode: {str(e).strip().splitlines()[-1]}") from None
    if bgr_img is None or bgr_img.size == 0:
        raise ImageError(source, "cannot decode: not an image, truncated, or a format OpenCV "
                                 "cannot read")
    return cv2.cvtColor(bgr_img, cv2.COLOR_BGR2RGB)


def _decode_cmyk_jpeg(data, source):
    """CMYK/YCCK JPEG -> RGB exactly as MindSpore's Decode: channel = (255-X)*(255-K) // 255.

    OpenCV converts with `K - ((255-X')*K >> 8)` on the inverted values, one grey level off
    MindSpore on most pixels; libjpeg's raw CMYK is needed to match, which OpenCV does not expose,
    so Pillow decodes these rare files when it is installed (it is, wherever matplotlib is).
    Without Pillow the OpenCV decode is used, logged once, at most 1 grey level off training.
    """
    try:
        from PIL import Image as PILImage
    except ImportError:
        if not _CMYK_WARNED:
            _CMYK_WARNED.append(True)
            logging.getLogger(__name__).warning(
                "CMYK JPEG %s decoded by OpenCV (Pillow absent): up to 1 grey level off MindSpore", source)
        return None
    import io
    try:
        with PILImage.open(io.BytesIO(bytes(data))) as im:
            if im.mode != "CMYK":
                return None
            cmyk = np.asarray(im, dtype=np.uint16)
    except Exception as e:  # Pillow raises many types on corrupt data
        raise ImageError(source, f"cannot decode CMYK JPEG: {e}") from None
    inv_k = 255 - cmyk[..., 3:4]
    return ((255 - cmyk[..., :3]) * inv_k // 255).astype(np.uint8)


_CMYK_WARNED = []


def header_size(data):
    """(height, width) from a PNG or JPEG header, None for other formats or unreadable headers."""
    head = bytes(data[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data):
    """(height, width) from the first SOF of a JPEG; None when not found."""
    sof = _jpeg_sof(data)
    return sof[:2] if sof else None


def jpeg_components(data):
    """Number of colour components of a JPEG (4 for CMYK/YCCK), None if not a readable JPEG."""
    sof = _jpeg_sof(data) if bytes(data[:2]) == b"\xff\xd8" else None
    return sof[2] if sof else None


def _jpeg_sof(data):
    """Walk JPEG marker segments to the first SOF; bounded by the data length."""
    mv = memoryview(data)
    i, n = 2, len(mv)
    while i + 4 <= n:
        if mv[i] != 0xFF:
            return None
        marker = mv[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD9:
            i += 2
            continue
        seg_len = (mv[i + 2] << 8) | mv[i + 3]
        if seg_len < 2:
            return None
        if marker in _SOF_MARKERS and i + 10 <= n:
            h = (mv[i + 5] << 8) | mv[i + 6]
            w = (mv[i + 7] << 8) | mv[i + 8]
            return h, w, mv[i + 9]
        i += 2 + seg_len
    return None


def _to_uint8(arr, source):
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        # The high byte, as OpenCV's (and so MindSpore's) decoder does for 16-bit PNGs.
        return (arr >> 8).astype(np.uint8)
    raise ImageError(source, f"array dtype {arr.dtype} is not supported; pass uint8 (0..255) or "
                             "uint16 (0..65535) pixel values")


def _gray(arr, order):
    return cv2.cvtColor(np.ascontiguousarray(arr.reshape(arr.shape[:2])), cv2.COLOR_GRAY2RGB)


def _three(arr, order):
    return np.ascontiguousarray(arr if order == "RGB" else arr[..., ::-1])


def _four(arr, order):
    # Alpha dropped, never composited: the training decode does the same.
    return np.ascontiguousarray(arr[..., :3] if order == "RGB" else arr[..., 2::-1])


# number of channels -> conversion to RGB
_BY_CHANNELS = {1: _gray, 3: _three, 4: _four}


def array_to_rgb(arr, order, source="<array>"):
    arr = np.asarray(arr)
    if arr.ndim == 2:
        channels = 1
    elif arr.ndim == 3:
        channels = arr.shape[2]
    else:
        raise ImageError(source, f"array of shape {arr.shape} is not an image (expected HxW or HxWxC)")
    convert = _BY_CHANNELS.get(channels)
    if convert is None:
        raise ImageError(source, f"{channels} channels are not supported (expected 1, 3 or 4)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(source, f"empty image of shape {arr.shape}")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError(source, f"{arr.shape[1]}x{arr.shape[0]} pixels is more than the "
                                 f"{MAX_PIXELS} pixel limit")
    if channels > 1 and order not in CHANNEL_ORDERS:
        raise ImageError(source, "state the array's channel order: order='RGB' or order='BGR' "
                                 "(or wrap it with runtime.images.rgb()/bgr())")
    return convert(_to_uint8(arr, source), order)


def list_images(paths):
    """Image files under `paths` (files are kept as given, folders walked in sorted order)."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files)
                           if f.lower().endswith(IMAGE_SUFFIXES))
        else:
            out.append(p)
    return out
