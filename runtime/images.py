"""The one image decoder of the project: training, evaluation, export checks and the device.

Turns whatever the caller has (a path, encoded bytes, an array) into an 8-bit RGB HWC array. The
decode is the one MindSpore's `dataset.vision.Decode` performs, measured against it
(tests/test_preprocess_parity.py), so the device sees the same pixels as training:

- files and bytes: `cv2.imdecode(IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION)` then BGR->RGB. That one
  call already converts the odd kinds the way training does: grayscale is replicated to three
  channels, the alpha channel of RGBA/LA images is dropped (no compositing: training never saw a
  background colour), 16-bit samples keep their high byte, palette images are expanded;
- CMYK/YCCK JPEGs: MindSpore converts them with its own integer formula, reproduced here (see
  `_decode_cmyk_jpeg`);
- EXIF orientation: MindSpore's Decode ignores the tag, so the default policy is "ignore"
  (ModelMeta.exif_orientation). "apply" rotates like a photo viewer, for models trained that way;
- a JPEG whose last scan has no end-of-image marker after it (a cut-off download) is refused:
  libjpeg would return it with the missing part grey and only a warning;
- arrays follow the same rules; their channel order must be stated ("BGR" or "RGB") because an
  array does not carry it. Floating-point arrays are refused: 0..1 versus 0..255 cannot be guessed.

Untrusted input is bounded (runtime/opencv_limits.py states the budget): only regular files are
read (a FIFO, a device such as a symlink to /dev/zero, a directory are refused; the file is opened
non-blocking and checked with fstat before any read), at most MAX_FILE_BYTES of it; the header of
every accepted format is read first (runtime/image_headers.py) and more than MAX_PIXELS refused
without allocating; a file whose size cannot be read is refused, never decoded blind; OpenCV's own
OPENCV_IO_MAX_IMAGE_PIXELS is set to the same bound. Every refusal is an ImageError naming the file.
Peak memory: a refused file costs its bytes (refusing all the hand-made bombs of
tests/test_hostile_images.py raises peak RSS by 0 MiB); an accepted one its bytes plus about 6 bytes
per pixel inside cv2.imdecode (measured: +143 MiB for a 24-megapixel JPEG, baseline or progressive,
+151 MiB for a PNG), the RGB result reusing that memory (converted in place). At MAX_PIXELS that is
about 600 MB plus the file (at most MAX_FILE_BYTES).
"""
import io
import logging
import os

from . import opencv_limits
from .errors import ImageError
from .files import read_regular
from .image_headers import jpeg_sof, jpeg_truncated, read_header
from .opencv_limits import MAX_FILE_BYTES, MAX_PIXELS  # noqa: F401  (re-exported: the budget)

import cv2  # noqa: E402  (after opencv_limits, which bounds OpenCV before it loads)
import numpy as np  # noqa: E402

# exif_orientation policy -> cv2.imdecode flags
EXIF_POLICIES = {
    "ignore": cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
    "apply": cv2.IMREAD_COLOR,
}
CHANNEL_ORDERS = ("RGB", "BGR")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm",
                  ".pbm", ".pam")
# Bumped whenever this module's decode could give other pixels for the same bytes; with the library
# versions it names what cached results (the feature cache) were computed with.
DECODER_VERSION = 2


def decoder_identity():
    """'runtime.images/2 opencv-4.10.0 pillow-11.0.0': what decoded the pixels (cache keys use it)."""
    try:
        import PIL
        pillow = PIL.__version__
    except ImportError:
        pillow = "absent"
    return f"runtime.images/{DECODER_VERSION} opencv-{cv2.__version__} pillow-{pillow}"


def opencv_bounded():
    """True when OpenCV loaded after its pixel bound was set (see runtime/opencv_limits.py)."""
    return opencv_limits.OPENCV_BOUNDED


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
    """The bytes of one regular image file of at most MAX_FILE_BYTES; ImageError naming it otherwise
    (runtime.files.read_regular: no device, FIFO or directory is ever read)."""
    return read_regular(path, MAX_FILE_BYTES, ImageError, directory="is a directory, not an image")


def decode_bytes(data, source, exif_orientation="ignore"):
    """Encoded image bytes -> RGB uint8 (H, W, 3), after the header checks; ImageError naming
    `source` when refused or undecodable."""
    flags = EXIF_POLICIES.get(exif_orientation)
    if flags is None:
        raise ImageError(source, f"unknown exif_orientation policy {exif_orientation!r}; "
                                 f"known: {', '.join(EXIF_POLICIES)}")
    if len(data) == 0:
        raise ImageError(source, "empty file")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(source, f"{len(data)} bytes, more than the {MAX_FILE_BYTES} byte limit")
    if not isinstance(data, bytes):
        data = bytes(data)
    head = read_header(data, source)
    if head.height * head.width > MAX_PIXELS:
        raise ImageError(source, f"{head.format} header claims {head.width}x{head.height} pixels, "
                                 f"more than the {MAX_PIXELS} pixel limit")
    if head.format == "JPEG" and jpeg_truncated(data):
        raise ImageError(source, "truncated JPEG (no end-of-image marker after the image data)")
    out = None
    if head.format == "JPEG" and head.components == 4 and exif_orientation == "ignore":
        out = _decode_cmyk_jpeg(data, source)
    if out is None:
        out = _opencv_decode(data, source, flags)
    expected = (head.height, head.width)
    got = out.shape[:2]
    if got != expected and not (exif_orientation == "apply" and got == expected[::-1]):
        raise ImageError(source, f"decoded {got[1]}x{got[0]} pixels but the {head.format} header "
                                 f"says {head.width}x{head.height}")
    return out


def _opencv_decode(data, source, flags):
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        raise ImageError(source, f"cannot decode: {str(e).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise ImageError(source, "cannot decode: corrupt image data or a variant OpenCV cannot read")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)     # in place: no second image buffer


def _decode_cmyk_jpeg(data, source):
    """CMYK/YCCK JPEG -> RGB exactly as MindSpore's Decode: channel = (255-X)*(255-K) // 255.

    OpenCV converts with `K - ((255-X')*K >> 8)` on the inverted values, one grey level off
    MindSpore on most pixels; libjpeg's raw CMYK is needed to match, which OpenCV does not expose,
    so Pillow decodes these rare files when it is installed (it is, wherever matplotlib is).
    Without Pillow the OpenCV decode is used, logged once, at most 1 grey level off training.
    The header checks above have already bounded the size Pillow will allocate.
    """
    try:
        from PIL import Image as PILImage
    except ImportError:
        if not _CMYK_WARNED:
            _CMYK_WARNED.append(True)
            logging.getLogger(__name__).warning(
                "CMYK JPEG %s decoded by OpenCV (Pillow absent): up to 1 grey level off MindSpore", source)
        return None
    try:
        with PILImage.open(io.BytesIO(data), formats=["JPEG"]) as im:
            if im.mode != "CMYK":
                return None
            cmyk = np.asarray(im, dtype=np.uint16)
    except Exception as e:  # Pillow raises many types on corrupt data
        raise ImageError(source, f"cannot decode CMYK JPEG: {e}") from None
    inv_k = 255 - cmyk[..., 3:4]
    return ((255 - cmyk[..., :3]) * inv_k // 255).astype(np.uint8)


_CMYK_WARNED = []


def header_size(data):
    """(height, width) from the header of any accepted format; None when it cannot be read."""
    try:
        head = read_header(data, "<bytes>")
    except ImageError:
        return None
    return head.height, head.width


def jpeg_components(data):
    """Number of colour components of a JPEG (4 for CMYK/YCCK), None if not a readable JPEG."""
    sof = jpeg_sof(data)
    return None if isinstance(sof, str) else sof[2]


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


def has_image_suffix(name):
    """The one rule for which file names are looked at as images when a folder is listed."""
    return name.lower().endswith(IMAGE_SUFFIXES)


def list_images(paths):
    """Image files under `paths` (files are kept as given, folders walked in sorted order)."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files)
                           if has_image_suffix(f))
        else:
            out.append(p)
    return out
