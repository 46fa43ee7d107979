"""Preprocessing steps, each as MindSpore's eval transform defines it (parity with MindSpore itself
is in test_preprocess_parity.py); driven only by ModelMeta."""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import MetadataError
from runtime.metadata import ModelMeta
from runtime.preprocess import Preprocessor, center_crop, normalize, resize_shorter, resized_shape

RNG = np.random.default_rng(3)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(8, 600))
def test_shorter_side_becomes_size_and_longer_side_is_floored(h, w, size):
    nh, nw = resized_shape(h, w, size)
    short, long_ = min(h, w), max(h, w)
    assert min(nh, nw) == size or (h == w and nh == nw == size)
    assert max(nh, nw) == long_ * size // short
    # The shorter input side is the one resized to `size` (flooring may make the other equal).
    assert (nh if h <= w else nw) == size


def test_500x375_resizes_to_341x256_like_mindspore():
    # 500 * 256 / 375 = 341.33 -> 341 (platform-facts.md)
    assert resize_shorter(np.zeros((375, 500, 3), np.uint8), 256).shape == (256, 341, 3)


def test_resize_is_inter_linear():
    img = RNG.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    expected = cv2.resize(img, (48 * 61 // 45, 48), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(resize_shorter(img, 48), expected)


@pytest.mark.parametrize("h,w,top,left", [(10, 10, 3, 3), (11, 10, 3, 3), (10, 13, 3, 4), (9, 4, 2, 0)])
def test_center_crop_uses_floor_offsets(h, w, top, left):
    img = np.arange(h * w).reshape(h, w)
    assert np.array_equal(center_crop(img, 4), img[top:top + 4, left:left + 4])


def test_normalize_divides_in_float32():
    img = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    mean, std = (1.5, 2.5, 3.5), (7.0, 11.0, 13.0)
    expected = (img.astype(np.float32) - np.float32(mean)) / np.float32(std)
    assert np.array_equal(normalize(img, mean, std), expected)


def _meta(**kw):
    base = dict(image_size=16, resize=20, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    base.update(kw)
    return ModelMeta(**base)


def test_nchw_and_nhwc_hold_the_same_values():
    img = RNG.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    chw = Preprocessor(_meta(layout="NCHW"))(img, "RGB")
    hwc = Preprocessor(_meta(layout="NHWC"))(img, "RGB")
    assert chw.shape == (3, 16, 16) and hwc.shape == (16, 16, 3)
    assert np.array_equal(chw, hwc.transpose(2, 0, 1))


def test_bgr_networks_get_bgr_channels_with_mean_in_their_order():
    img = RNG.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    as_rgb = Preprocessor(_meta(mean=(0, 0, 0), std=(1, 1, 1)))(img, "RGB")
    as_bgr = Preprocessor(_meta(mean=(0, 0, 0), std=(1, 1, 1), channel_order="BGR"))(img, "RGB")
    assert np.array_equal(as_bgr, as_rgb[::-1])


def test_preprocessing_reads_every_number_from_metadata():
    img = RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    meta = _meta(image_size=12, resize=30)
    expected = normalize(center_crop(resize_shorter(img, 30), 12), meta.mean, meta.std).transpose(2, 0, 1)
    assert np.array_equal(Preprocessor(meta)(img, "RGB"), expected)


@pytest.mark.parametrize("field,value", [("interpolation", "cubic"), ("crop", "random"),
                                         ("exif_orientation", "guess")])
def test_unknown_preprocessing_in_metadata_is_refused(field, value):
    with pytest.raises(MetadataError, match=value):
        Preprocessor(_meta(**{field: value}))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 90), st.integers(1, 90))
def test_any_image_size_gives_the_model_input_shape(h, w):
    out = Preprocessor(_meta())(np.zeros((h, w, 3), np.uint8), "RGB")
    assert out.shape == (3, 16, 16) and out.dtype == np.float32


def test_extreme_aspect_ratios_are_refused_before_allocating():
    from runtime.errors import ImageError
    with pytest.raises(ImageError, match="too extreme"):
        Preprocessor(_meta(resize=256, image_size=224))(np.zeros((1, 500_000), np.uint8))


# ModelMeta fields that do not change the pixels a Preprocessor produces
NOT_PREPROCESSING = {"arch", "width", "class_names", "softmax", "input_name", "schema_version"}
CHANGED = {"image_size": 70, "resize": 120, "mean": (1.0, 2.0, 3.0), "std": (4.0, 5.0, 6.0),
           "channel_order": "BGR", "layout": "NHWC", "exif_orientation": "apply"}
ONE_SUPPORTED_VALUE = {"crop", "interpolation"}


@pytest.mark.parametrize("field", sorted(set(ModelMeta.__dataclass_fields__) - NOT_PREPROCESSING))
def test_spec_changes_with_every_preprocessing_field_of_the_metadata(field):
    # A new preprocessing field in ModelMeta fails here until spec() describes it (or the field is
    # listed in NOT_PREPROCESSING because it truly does not change the tensor).
    if field in ONE_SUPPORTED_VALUE:       # any other value is refused (see above); spec() says it
        assert Preprocessor(ModelMeta()).spec()[field] == getattr(ModelMeta(), field)
        return
    if field not in CHANGED:
        pytest.fail(f"ModelMeta.{field} is new: give it a changed value here and put it in spec()")
    base = ModelMeta(image_size=64, resize=73)
    other = ModelMeta(**dict(base.__dict__, **{field: CHANGED[field]}))
    assert Preprocessor(other).spec() != Preprocessor(base).spec()
    assert Preprocessor(ModelMeta(image_size=64, resize=73)).spec() == Preprocessor(base).spec()


def test_spec_names_the_decoder_and_its_libraries():
    decoder = Preprocessor(ModelMeta()).spec()["decoder"]
    assert decoder.startswith("runtime.images/") and f"opencv-{cv2.__version__}" in decoder
