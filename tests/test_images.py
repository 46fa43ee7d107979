"""Every odd image kind becomes 8-bit RGB the way the training decode does it; bad input says which.

Conventions under test (runtime/images.py): grayscale replicated to 3 channels, alpha dropped (not
composited), 16-bit keeps the high byte, palette expanded, EXIF orientation ignored by default,
arrays must state BGR or RGB.
"""
import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from runtime.errors import ImageError
from runtime.images import (MAX_PIXELS, bgr, header_size, list_images, load_rgb, rgb)

RNG = np.random.default_rng(7)
PHOTO = cv2.GaussianBlur((RNG.random((37, 53, 3)) * 255).astype(np.uint8), (5, 5), 0)   # RGB


def _png(arr_bgr_or_gray):
    return cv2.imencode(".png", arr_bgr_or_gray)[1].tobytes()


def _pil_bytes(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_rgb_png_roundtrips_exactly():
    assert np.array_equal(load_rgb(_png(PHOTO[..., ::-1])), PHOTO)


def test_grayscale_is_replicated_to_three_channels():
    gray = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    out = load_rgb(_png(gray))
    assert out.shape == (37, 53, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], gray)


def test_grayscale_jpeg_decodes_to_three_equal_channels():
    out = load_rgb(_pil_bytes(PILImage.fromarray(PHOTO).convert("L"), "JPEG"))
    assert out.shape == (37, 53, 3)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_rgba_drops_alpha_without_compositing():
    alpha = np.zeros((37, 53), np.uint8)              # fully transparent: compositing would change it
    out = load_rgb(_png(np.dstack([PHOTO[..., ::-1], alpha])))
    assert np.array_equal(out, PHOTO)


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_png_keeps_the_high_byte(channels):
    wide = RNG.integers(0, 65536, (37, 53, 3) if channels == 3 else (37, 53), dtype=np.uint16)
    out = load_rgb(_png(wide if channels == 1 else wide[..., ::-1]))
    expected = (wide >> 8).astype(np.uint8)
    if channels == 1:
        expected = np.repeat(expected[..., None], 3, axis=2)
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("transparency", [None, 0])
def test_palette_png_is_expanded_to_its_colours(transparency):
    pal = PILImage.fromarray(PHOTO).convert("P", palette=PILImage.ADAPTIVE, colors=16)
    kw = {} if transparency is None else {"transparency": transparency}
    out = load_rgb(_pil_bytes(pal, "PNG", **kw))
    assert np.array_equal(out, np.asarray(pal.convert("RGB")))


def _exif_jpeg(orientation):
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return _pil_bytes(PILImage.fromarray(PHOTO), "JPEG", quality=95, exif=exif.tobytes())


def test_cmyk_jpeg_uses_mindspores_integer_conversion():
    data = _pil_bytes(PILImage.fromarray(PHOTO).convert("CMYK"), "JPEG", quality=95)
    cmyk = np.asarray(PILImage.open(io.BytesIO(data))).astype(int)
    expected = (255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) // 255
    out = load_rgb(data)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)
    assert np.abs(out.astype(int) - PHOTO).max() <= 8          # and it is still the same picture


def test_exif_orientation_is_ignored_like_mindspore_decode():
    assert load_rgb(_exif_jpeg(6)).shape == (37, 53, 3)


def test_exif_orientation_can_be_applied_when_the_model_was_trained_so():
    ignored = load_rgb(_exif_jpeg(6))
    applied = load_rgb(_exif_jpeg(6), exif_orientation="apply")
    assert applied.shape == (53, 37, 3)
    assert np.array_equal(applied, np.rot90(ignored, k=-1))


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP"])
def test_other_lossless_containers(fmt):
    kw = {"lossless": True} if fmt == "WEBP" else {}
    assert np.array_equal(load_rgb(_pil_bytes(PILImage.fromarray(PHOTO), fmt, **kw)), PHOTO)


@pytest.mark.parametrize("make,order", [
    (lambda a: a, "RGB"),
    (lambda a: a[..., ::-1], "BGR"),
    (lambda a: np.dstack([a, np.full(a.shape[:2], 9, np.uint8)]), "RGB"),
    (lambda a: np.dstack([a[..., ::-1], np.full(a.shape[:2], 9, np.uint8)]), "BGR"),
    (lambda a: a.astype(np.uint16) * 256 + 255, "RGB"),
])
def test_arrays_in_either_stated_order_give_the_same_rgb(make, order):
    assert np.array_equal(load_rgb(make(PHOTO), order), PHOTO)


def test_tagged_arrays_carry_their_order():
    assert np.array_equal(load_rgb(bgr(PHOTO[..., ::-1])), PHOTO)
    assert np.array_equal(load_rgb(rgb(PHOTO)), PHOTO)


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 1)])
def test_gray_arrays_need_no_order(shape):
    gray = RNG.integers(0, 256, shape, dtype=np.uint8)
    out = load_rgb(gray)
    assert out.shape == (37, 53, 3) and np.array_equal(out[..., 2], gray.reshape(37, 53))


@pytest.mark.parametrize("arr,order,needle", [
    (PHOTO, None, "channel order"),
    (PHOTO.astype(np.float32) / 255, "RGB", "float32"),
    (np.zeros((4, 4, 5), np.uint8), "RGB", "5 channels"),
    (np.zeros((0, 4, 3), np.uint8), "RGB", "empty"),
    (np.zeros((2, 4, 4, 3), np.uint8), "RGB", "not an image"),
])
def test_bad_arrays_raise_image_error(arr, order, needle):
    with pytest.raises(ImageError, match=needle):
        load_rgb(arr, order)


def test_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / "missing.jpg"
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image" * 10)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(_exif_jpeg(1)[:60])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    for path in (missing, garbage, truncated, empty, tmp_path):
        with pytest.raises(ImageError) as err:
            load_rgb(str(path))
        assert str(path) in str(err.value)


def _png_claiming(width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def test_a_small_file_claiming_a_gigapixel_image_is_refused_before_decoding():
    data = _png_claiming(60000, 60000)
    assert header_size(data) == (60000, 60000)
    with pytest.raises(ImageError, match=f"{MAX_PIXELS} pixel limit"):
        load_rgb(data)


def test_jpeg_header_size_is_read_without_decoding():
    assert header_size(_exif_jpeg(1)) == (37, 53)


def test_unsupported_objects_are_refused():
    with pytest.raises(ImageError, match="expected a path"):
        load_rgb(12345)


def test_list_images_walks_folders_in_sorted_order(tmp_path):
    for name in ("b/2.png", "a/1.JPG", "a/notes.txt", "c.png"):
        p = tmp_path / name
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    found = list_images([str(tmp_path / "c.png"), str(tmp_path)])
    rel = [f[len(str(tmp_path)) + 1:] for f in found]
    assert rel == ["c.png", "c.png", "a/1.JPG", "b/2.png"]
