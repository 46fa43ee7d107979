"""The decode budget, and OpenCV's own pixel bound set to it before cv2 is first imported.

Budget of decoding one untrusted image (runtime/images.py enforces it before OpenCV runs):
- at most MAX_FILE_BYTES are read from a file (one regular file, opened non-blocking);
- at most MAX_PIXELS pixels are decoded; the size is read from the header first, the way the
  decoder will read it, and a file whose size cannot be read is refused, never decoded blind;
- so one decode peaks at about the file's bytes + 6 bytes per pixel (measured, runtime/images.py):
  at most about 256 MiB + 600 MB; a refused file costs only its bytes.

OpenCV reads `OPENCV_IO_MAX_IMAGE_PIXELS` once, when its library loads (default 2**30 pixels), and
then refuses larger images in every codec. Setting it to MAX_PIXELS here is a second, independent
bound behind the header checks; it only takes effect when this module runs before the first
`import cv2` of the process, which `runtime/__init__.py` arranges for everything under runtime/.
`OPENCV_BOUNDED` records whether that was so (False when the embedding application had already
imported cv2: the header checks still apply). A lower value set by the caller is kept. Child
processes inherit the variable, so workers are bounded too.
"""
import os
import sys

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 100_000_000            # 100 megapixels: ~300 MB as RGB, far above any camera photo
OPENCV_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"


def _bound_opencv():
    try:
        current = int(os.environ.get(OPENCV_PIXELS_ENV, "0"))
    except ValueError:
        current = 0
    if not 0 < current <= MAX_PIXELS:
        os.environ[OPENCV_PIXELS_ENV] = str(MAX_PIXELS)
    return "cv2" not in sys.modules


OPENCV_BOUNDED = _bound_opencv()
