"""Head mode's feature cache: keyed by everything features depend on, reused when nothing changed,
and onnxruntime features checked against MindSpore's."""
import os

import numpy as np
import pytest

from runtime.metadata import ModelMeta, resize_for
from toolkit.train.feature_cache import FeatureCache, cache_key
from toolkit.train.features import preprocessing
from train_fixtures import WIDTH, copy_data, image_files, lively
from runtime.mindspore_import import import_mindspore

pytestmark = pytest.mark.mindspore


class S:
    def __init__(self, path, label):
        self.path, self.label = path, label


def _meta(size, **fields):
    """The metadata training writes for `size`, with `fields` changed."""
    return ModelMeta(**dict(dict(image_size=size, resize=resize_for(size)), **fields))


def _key(files, weights=None, size=32, width=WIDTH, classes=("a", "b"), meta=None):
    weights = weights if weights is not None else {"w": np.ones((2, 3), np.float32)}
    samples = [S(p, i % 2) for i, p in enumerate(files)]
    return cache_key(weights, samples[:-1], samples[-1:], classes, preprocessing(meta or _meta(size)),
                     size, "mobilenet_v2", width)


@pytest.fixture
def files(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"img{i}.jpg"
        p.write_bytes(b"x" * (10 + i))
        paths.append(str(p))
    return paths


def test_key_is_stable_when_nothing_changes(files):
    assert _key(files) == _key(list(files))


def test_key_changes_with_a_touched_or_rewritten_file(files):
    before = _key(files)
    st = os.stat(files[0])
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = _key(files)
    with open(files[1], "ab") as f:
        f.write(b"y")
    assert len({before, touched, _key(files)}) == 3


def test_key_changes_with_added_or_relabelled_images(files):
    base = _key(files)
    assert _key(files[:2]) != base
    samples = [S(p, 1) for p in files]
    relabelled = cache_key({"w": np.ones((2, 3), np.float32)}, samples[:-1], samples[-1:], ("a", "b"),
                           preprocessing(_meta(32)), 32, "mobilenet_v2", WIDTH)
    assert relabelled != base


@pytest.mark.parametrize("change", [dict(size=48), dict(width=0.5), dict(classes=("a", "c")),
                                    dict(weights={"w": np.nextafter(np.ones((2, 3), np.float32), 2)})])
def test_key_changes_with_settings_and_backbone_weights(files, change):
    assert _key(files, **change) != _key(files)


def test_preprocessing_description_follows_the_image_size():
    assert preprocessing(_meta(224))["resize"] == 256 and preprocessing(_meta(32))["resize"] == 36


@pytest.mark.parametrize("field,value", [
    ("mean", (0.0, 0.0, 0.0)), ("std", (1.0, 1.0, 1.0)), ("resize", 40), ("channel_order", "BGR"),
    ("layout", "NHWC"), ("exif_orientation", "apply")])
def test_key_changes_with_every_parameter_of_the_transform_that_ran(files, field, value):
    assert _key(files, meta=_meta(32, **{field: value})) != _key(files)


def test_key_changes_with_the_decoder_identity(files, monkeypatch):
    import runtime.images
    before = _key(files)
    monkeypatch.setattr(runtime.images, "DECODER_VERSION", runtime.images.DECODER_VERSION + 1)
    assert _key(files) != before


def test_key_describes_the_transform_eval_batches_runs():
    from runtime.preprocess import Preprocessor
    meta = _meta(32)
    spec = preprocessing(meta)
    assert spec == Preprocessor(meta).spec()
    assert spec["decoder"].startswith("runtime.images/")
    assert spec["mean"] == [float(np.float32(v)) for v in meta.mean]     # the float32 values used


ARRAYS = {"train_x": np.ones((3, 4), np.float32), "train_y": np.array([0, 1, 0], np.int32),
          "val_x": np.zeros((1, 4), np.float32), "val_y": np.zeros(1, np.int32)}
EXPECT = dict(dim=4, train_labels=[0, 1, 0], val_labels=[0], num_classes=2)


def test_store_round_trip_and_damaged_entries_are_misses(tmp_path):
    cache = FeatureCache(tmp_path)
    arrays = ARRAYS
    cache.save("k", arrays, {"engine": "test"})
    got = cache.load("k", **EXPECT)
    assert all(np.array_equal(got[k], arrays[k]) for k in arrays)
    assert cache.info("k") == {"engine": "test"}
    assert cache.load("k", **dict(EXPECT, train_labels=[0, 1, 0, 1])) is None, \
        "a different dataset size is a miss"
    assert "train_x" in cache.rejected and "shape (3, 4) (expected (4, 4))" in cache.rejected
    assert cache.load("other", **EXPECT) is None and cache.rejected is None
    with open(tmp_path / "k.npz", "r+b") as f:
        f.truncate(20)
    assert cache.load("k", **EXPECT) is None, "a truncated entry is a miss, not a crash"
    assert "k.npz" in cache.rejected
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def _tampered(tmp_path, **change):
    path = tmp_path / "k.npz"
    np.savez(path, **dict(ARRAYS, **change))
    return FeatureCache(tmp_path), str(path)


@pytest.mark.parametrize("change, array, problem", [
    (dict(train_x=np.ones((3, 5), np.float32)), "train_x", "shape (3, 5) (expected (3, 4))"),
    (dict(val_x=np.ones((1, 4), np.float64)), "val_x", "dtype float64 (expected float32)"),
    (dict(train_x=np.array([[1, 2, 3, 4], [1, np.nan, 1, 1], [1, 1, 1, np.inf]], np.float32)),
     "train_x", "2 row(s) not finite, first row 1"),
    (dict(train_y=np.array([0, 7, 0], np.int32)), "train_y", "label 7 at row 1 is outside 0..1"),
    (dict(train_y=np.array([0, 0, 0], np.int32)), "train_y", "1 label(s) differ from the dataset's"),
    (dict(val_y=np.zeros(1, np.float32)), "val_y", "expected integer"),
    (dict(train_y=np.array([0, 1, 0], object)), "train_y", "dtype object"),
])
def test_a_tampered_entry_names_the_file_and_the_array(tmp_path, change, array, problem):
    from toolkit.train.feature_cache import FeatureCacheError
    cache, path = _tampered(tmp_path, **change)
    with pytest.raises(FeatureCacheError) as e:
        cache.read("k", **EXPECT)
    assert (e.value.path, e.value.array) == (path, array)
    assert problem in str(e.value) and path in str(e.value)
    assert cache.load("k", **EXPECT) is None and cache.rejected == str(e.value)


def test_a_missing_array_and_a_huge_claimed_shape_are_refused_before_reading(tmp_path):
    import zipfile
    from toolkit.train.feature_cache import FeatureCacheError
    cache, path = _tampered(tmp_path)
    with zipfile.ZipFile(path, "w") as zf:       # only three arrays, one claiming 10**12 rows
        for name in ("train_x", "train_y"):
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, ARRAYS[name])
        with zf.open("val_x.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (10 ** 12, 4)})
    with pytest.raises(FeatureCacheError, match=r"\[val_x\]: shape \(1000000000000, 4\)"):
        cache.read("k", **EXPECT)
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("train_x.npy", "w") as f:
            np.lib.format.write_array(f, ARRAYS["train_x"])
    with pytest.raises(FeatureCacheError, match=r"\[train_y\]: array missing"):
        cache.read("k", **EXPECT)


def _features(data, net, cache_dir, image_size=32):
    from toolkit.data.folder import scan_dataset
    from toolkit.train.config import TrainConfig
    from toolkit.train.features import pooled_features
    from toolkit.train.loop import no_progress
    from toolkit.train.setup import training_context
    cfg = TrainConfig(data=data, out=str(cache_dir), width=WIDTH, image_size=image_size).resolved()
    with training_context("cpu"):
        return pooled_features(cfg, net, scan_dataset(data), str(cache_dir), no_progress)


@pytest.fixture(scope="module")
def net():
    from toolkit.models import build
    return lively(build("mobilenet_v2", 2, width=WIDTH))


def test_second_run_reuses_the_cache(tiny_data, net, tmp_path):
    first, info1 = _features(tiny_data, net, tmp_path)
    second, info2 = _features(tiny_data, net, tmp_path)
    assert (info1["cache"], info2["cache"]) == ("miss", "hit") and info1["key"] == info2["key"]
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert first["train_x"].shape == (10, 1280) and np.abs(first["train_x"]).max() > 0.1
    parity = info1["parity"]       # checked on real images before onnxruntime was used
    assert info1["engine"] == "onnxruntime" and parity["images"] == 4
    assert parity["max_abs_diff"] <= 1e-4 * np.abs(first["train_x"]).max()


@pytest.mark.slow
def test_onnxruntime_features_match_mindspore(tiny_data, net, tmp_path):
    from toolkit.data.pipeline import eval_batches
    from toolkit.data.folder import scan_dataset
    from toolkit.train import extract
    from toolkit.train.setup import training_context
    images = next(eval_batches(scan_dataset(tiny_data).train, _meta(32), 8))[0]
    with training_context("cpu"):
        arrays = extract.backbone_arrays(net)
        ort, info = extract.make_extractor("onnxruntime", "mobilenet_v2", WIDTH, arrays, 32, "cpu",
                                           str(tmp_path), images)
        ms_feats = extract.MindSporeExtractor(extract.build_feature_net("mobilenet_v2", WIDTH,
                                                                        arrays))(images)
    assert info["parity"]["max_abs_diff"] <= 1e-4 * np.abs(ms_feats).max()
    np.testing.assert_allclose(ort(images), ms_feats, rtol=0, atol=1e-4 * np.abs(ms_feats).max())


def test_parity_failure_is_loud():
    from toolkit.train.extract import FeatureParityError, check_parity
    images = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(FeatureParityError, match="differ"):
        check_parity(lambda x: np.ones((2, 4), np.float32) * 1.01, lambda x: np.ones((2, 4), np.float32),
                     images)


@pytest.mark.slow
@pytest.mark.parametrize("change", ["file", "image_size", "weights"])
def test_a_change_invalidates_the_cache(change, tiny_data, tmp_path):
    import cv2
    ms = import_mindspore()

    from toolkit.models import build
    net = lively(build("mobilenet_v2", 2, width=WIDTH))
    data = copy_data(tiny_data, tmp_path / "data")
    before, info = _features(data, net, tmp_path / "cache")
    size = 32
    if change == "file":
        victim = image_files(os.path.join(data, "train"))[0]
        cv2.imwrite(victim, 255 - cv2.imread(victim))
    elif change == "image_size":
        size = 48
    else:
        p = net.backbone.features[0].features[0].weight
        p.set_data(ms.Tensor(p.asnumpy() * 1.5))
    after, info2 = _features(data, net, tmp_path / "cache", image_size=size)
    assert info2["cache"] == "miss" and info2["key"] != info["key"]
    assert not np.array_equal(before["train_x"], after["train_x"])
    assert len([f for f in os.listdir(tmp_path / "cache") if f.endswith(".npz")]) == 2


def test_a_tampered_cache_is_extracted_again_and_nothing_lands_in_the_working_folder(
        tiny_data, pretrained_ckpt, tmp_path):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "run"
    command = [sys.executable, "-m", "toolkit.cli", "train-head", tiny_data, "--out", str(out),
               "--mode", "head", "--pretrained", pretrained_ckpt, "--width", str(WIDTH),
               "--image-size", "32", "--epochs", "1", "--batch-size", "4"]
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    first = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    (entry,) = [p for p in (out / "cache").iterdir() if p.suffix == ".npz"]
    good = dict(np.load(entry))
    np.savez(entry, **dict(good, train_x=good["train_x"][:, :100]))     # as a tampering would
    again = subprocess.run(command + ["--overwrite"], cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"feature cache {entry} [train_x]: shape" in again.stderr and "extracting" in again.stderr
    assert "cache miss (a damaged entry was replaced)" in again.stdout
    assert "Traceback" not in again.stderr
    assert os.listdir(cwd) == [], "nothing (rank_0/om/analyze_fail.ir) in the working folder"
    rebuilt = dict(np.load(entry))
    assert all(np.array_equal(rebuilt[k], good[k]) for k in good)
