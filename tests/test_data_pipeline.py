"""Input pipelines: the MindSpore loader and the NumPy eval twin must agree exactly on JPEGs."""
import os

import cv2
import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from runtime.metadata import ModelMeta, resize_for  # noqa: E402
from runtime.images import load_rgb as read_rgb  # noqa: E402
from toolkit.data.errors import DatasetError  # noqa: E402
from toolkit.data.folder import Sample  # noqa: E402
from toolkit.data.pipeline import eval_batches, make_loader  # noqa: E402

# odd sizes on purpose: portrait, landscape, square, smaller than the crop, very elongated
SIZES = [(37, 53), (64, 64), (91, 40), (20, 20), (120, 77), (50, 201)]


def _meta(size):
    """The metadata training writes for `size` (toolkit.train.outputs.model_meta)."""
    return ModelMeta(image_size=size, resize=resize_for(size))


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    samples = []
    for i, (h, w) in enumerate(SIZES):
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
        path = str(folder / f"{i}.jpg")
        cv2.imwrite(path, img)
        samples.append(Sample(path, i % 3))
    return samples


def _collect(loader):
    batches = list(loader.create_dict_iterator(output_numpy=True, num_epochs=1))
    return [b["image"] for b in batches], [b["label"] for b in batches]


def test_decode_equals_mindspore_decode_on_jpeg(jpegs):
    from mindspore.dataset import vision
    for path, _ in jpegs:
        assert np.array_equal(read_rgb(path), vision.Decode()(np.fromfile(path, np.uint8)))


@pytest.mark.parametrize("size", [32, 48])
def test_eval_batches_match_the_mindspore_eval_pipeline_exactly(jpegs, size):
    images, labels = _collect(make_loader(jpegs, _meta(size), 4, train=False))
    twin = list(eval_batches(jpegs, _meta(size), 4))
    assert [b.shape for b in images] == [b.shape for b, _ in twin] == [(4, 3, size, size), (2, 3, size, size)]
    assert np.abs(np.concatenate(images) - np.concatenate([b for b, _ in twin])).max() == 0.0
    assert np.array_equal(np.concatenate(labels), np.concatenate([lab for _, lab in twin]))


def test_train_loader_columns_and_seed_determinism(jpegs):
    first, labels = _collect(make_loader(jpegs, _meta(32), 3, train=True, seed=5))
    again, _ = _collect(make_loader(jpegs, _meta(32), 3, train=True, seed=5))
    other, _ = _collect(make_loader(jpegs, _meta(32), 3, train=True, seed=6))
    assert len(first) == 2 and first[0].shape == (3, 3, 32, 32) and first[0].dtype == np.float32
    assert labels[0].dtype == np.int32
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_train_drops_incomplete_last_batch_eval_keeps_it(jpegs):
    assert [b.shape[0] for b in _collect(make_loader(jpegs, _meta(32), 4, train=True))[0]] == [4]
    assert [b.shape[0] for b in _collect(make_loader(jpegs, _meta(32), 4, train=False))[0]] == [4, 2]


@pytest.mark.parametrize("train", [True, False])
def test_dataset_smaller_than_one_batch_gives_one_smaller_batch(jpegs, train, caplog):
    images, _ = _collect(make_loader(jpegs[:3], _meta(32), 16, train=train))
    assert [b.shape[0] for b in images] == [3]
    assert "fewer than the batch size" in caplog.text


def test_sharding_splits_the_samples(jpegs):
    counts = [sum(b.shape[0] for b in _collect(make_loader(jpegs, _meta(32), 1, train=False, num_shards=2,
                                                           shard_id=i))[0]) for i in range(2)]
    assert counts == [3, 3]


def test_odd_images_flow_through_the_loader(tmp_path):
    paths = {"gray.png": np.full((30, 50), 77, np.uint8),
             "rgba.png": np.dstack([np.full((30, 50, 3), 90, np.uint8), np.full((30, 50), 0, np.uint8)]),
             "deep.png": np.full((30, 50, 3), 40000, np.uint16)}
    samples = []
    for name, arr in paths.items():
        cv2.imwrite(str(tmp_path / name), arr)
        samples.append(Sample(str(tmp_path / name), 0))
    images, _ = _collect(make_loader(samples, _meta(32), 3, train=True))
    assert images[0].shape == (3, 3, 32, 32) and np.isfinite(images[0]).all()


def test_empty_split_is_refused():
    with pytest.raises(DatasetError, match="empty"):
        make_loader([], _meta(32), 4, train=True)


def test_file_broken_after_scan_names_the_file(tmp_path):
    path = str(tmp_path / "gone.jpg")
    cv2.imwrite(path, np.zeros((40, 40, 3), np.uint8))
    samples = [Sample(path, 0)]
    os.remove(path)
    with pytest.raises(DatasetError, match="gone.jpg"):
        list(eval_batches(samples, _meta(32), 1))


def test_every_number_of_both_recipes_comes_from_the_metadata(jpegs):
    meta = ModelMeta(image_size=40, resize=47, mean=(10.0, 200.0, 99.5), std=(3.0, 70.0, 1.5))
    images, _ = _collect(make_loader(jpegs, meta, 4, train=False))
    twin = list(eval_batches(jpegs, meta, 4))
    assert np.abs(np.concatenate(images) - np.concatenate([b for b, _ in twin])).max() == 0.0
    default = np.concatenate([b for b, _ in eval_batches(jpegs, _meta(40), 4)])
    assert twin[0][0].shape == (4, 3, 40, 40) and not np.allclose(np.concatenate([b for b, _ in twin]), default)
    train, _ = _collect(make_loader(jpegs, meta, 6, train=True, seed=1))
    assert train[0].shape == (6, 3, 40, 40)


def test_eval_batches_lay_out_as_the_metadata_says(jpegs):
    nchw = next(eval_batches(jpegs, _meta(32), 2))[0]
    nhwc = next(eval_batches(jpegs, ModelMeta(image_size=32, resize=36, layout="NHWC"), 2))[0]
    assert np.array_equal(nhwc, nchw.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("field,value", [("layout", "NHWC"), ("channel_order", "BGR"),
                                         ("interpolation", "cubic")])
def test_training_refuses_metadata_its_recipe_does_not_implement(jpegs, field, value):
    from runtime.errors import MetadataError
    with pytest.raises(MetadataError, match=field.replace("_", " ") if field == "interpolation" else field):
        make_loader(jpegs, ModelMeta(image_size=32, resize=36, **{field: value}), 2, train=True)


def test_an_image_size_instead_of_metadata_is_refused(jpegs):
    with pytest.raises(TypeError, match="ModelMeta"):
        list(eval_batches(jpegs, 32, 2))
    with pytest.raises(TypeError, match="ModelMeta"):
        make_loader(jpegs, 32, 2, train=True)


def test_cmyk_jpegs_decode_the_same_in_training_and_on_the_device(tmp_path):
    from PIL import Image as PILImage
    from runtime.preprocess import Preprocessor
    path = str(tmp_path / "cmyk.jpg")
    rgb = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (45, 61, 3), dtype=np.uint8), (5, 5), 0)
    PILImage.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=90)
    samples = [Sample(path, 0)]
    images, _ = _collect(make_loader(samples, _meta(32), 1, train=False))
    assert np.abs(images[0][0] - Preprocessor(_meta(32))(path)).max() == 0.0
    assert np.array_equal(read_rgb(path), vision_decode(path))


def vision_decode(path):
    from mindspore.dataset import vision
    return vision.Decode()(np.fromfile(path, np.uint8))


def test_truncated_jpeg_is_refused_in_training_as_on_the_device(tmp_path):
    path = str(tmp_path / "cut.jpg")
    cv2.imwrite(path, np.full((40, 40, 3), 128, np.uint8))
    data = open(path, "rb").read()
    open(path, "wb").write(data[:len(data) // 2])
    from toolkit.data.pipeline import _Source
    with pytest.raises(DatasetError, match="cut.jpg.*truncated JPEG"):       # the loader's source
        _Source([Sample(path, 0)])[0]
    with pytest.raises(DatasetError, match="cut.jpg.*truncated JPEG"):
        list(eval_batches([Sample(path, 0)], _meta(32), 1))
