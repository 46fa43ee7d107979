"""Classifier: image in, top-k (label, score) out, identical whichever input kind or engine is used,
safe to share between threads, and loud when model and metadata disagree."""
import os
import shutil
import threading

import cv2
import numpy as np
import pytest

from runtime import Classifier
from runtime.engines import is_importable
from runtime.errors import ImageError, MetadataError
from runtime.images import bgr, rgb
from runtime.metadata import ModelMeta
from tiny_models import CLASSES, sample_images

ONNX_ENGINES = [e for e in ("onnxruntime", "opencv") if is_importable({"opencv": "cv2"}.get(e, e))]
SCORE_TOL = 1e-4          # probabilities from float32 engines vs MindSpore on the same MINDIR


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return sample_images(str(tmp_path_factory.mktemp("images")))


@pytest.fixture(scope="module")
def reference(tiny, images):
    """Probabilities from MindSpore running the MINDIR (the exact reference engine)."""
    clf = Classifier(tiny.mindir, engine="mindspore", top_k=len(CLASSES))
    return clf, [dict(p) for p in clf.predict_batch(images)]


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_every_engine_gives_the_reference_scores(tiny, images, reference, engine):
    clf = Classifier(tiny.onnx, engine=engine, top_k=len(CLASSES))
    for got, want in zip(clf.predict_batch(images), reference[1]):
        assert [label for label, _ in got] == sorted(want, key=want.get, reverse=True)
        for label, score in got:
            assert abs(score - want[label]) <= SCORE_TOL


def test_top_k_is_sorted_softmax_over_class_names(tiny, images):
    clf = Classifier(tiny.onnx, top_k=2)
    top = clf.predict(images[0])
    assert len(top) == 2 and all(label in CLASSES for label, _ in top)
    assert top[0][1] >= top[1][1]
    full = clf.predict(images[0], top_k=3)
    assert abs(sum(s for _, s in full) - 1.0) < 1e-9
    assert len({label for label, _ in full}) == 3


def test_the_test_images_are_told_apart(reference):
    tops = {max(p, key=p.get) for p in reference[1]}
    assert len(tops) >= 2, "the tiny model gives every image the same label: tests would be blind"


def test_softmax_is_not_applied_twice_when_the_model_outputs_probabilities(tiny, images):
    raw_meta = ModelMeta.load(os.path.join(tiny.folder, "model.json")).replace(softmax=True)
    raw = Classifier(tiny.onnx, meta=raw_meta, top_k=3).predict(images[0])
    logits = Classifier(tiny.onnx, top_k=3)
    x = logits.preprocess(images[0])[None]
    expected = logits.infer(x)[0]
    assert sorted(s for _, s in raw) == pytest.approx(sorted(expected.astype(np.float64)))


def test_path_bytes_and_arrays_in_either_order_agree(tiny, images):
    clf = Classifier(tiny.onnx, top_k=3)
    path = images[1]
    data = open(path, "rb").read()
    arr_bgr = cv2.imread(path)
    arr_rgb = arr_bgr[..., ::-1].copy()
    expected = clf.predict(path)
    for got in (clf.predict(data), clf.predict(arr_bgr, order="BGR"), clf.predict(arr_rgb, order="RGB"),
                clf.predict(bgr(arr_bgr)), clf.predict(rgb(arr_rgb))):
        assert got == expected


def test_predict_batch_equals_single_predictions(tiny, images):
    clf = Classifier(tiny.onnx)
    assert clf.predict_batch(images) == [clf.predict(im) for im in images]


def test_a_run_folder_is_a_model(tiny, images):
    clf = Classifier(tiny.folder)
    assert clf.model_path.endswith("model.onnx")
    assert clf.labels == CLASSES
    assert clf.predict(images[0]) == Classifier(tiny.onnx).predict(images[0])


def test_unreadable_image_names_the_file(tiny, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        Classifier(tiny.onnx).predict(str(bad))


def _copy_with_meta(tiny, tmp_path, **changes):
    model = tmp_path / "model.onnx"
    shutil.copy(tiny.onnx, model)
    meta = ModelMeta.load(os.path.join(tiny.folder, "model.json")).replace(**changes)
    meta.save(str(tmp_path / "model.json"))
    return str(model)


@pytest.mark.parametrize("changes,needle", [
    ({"image_size": 96, "resize": 110}, "image_size 96"),
    ({"layout": "NHWC"}, "metadata says NHWC"),
    ({"class_names": ["a", "b"]}, "2 class names"),
])
def test_metadata_that_contradicts_the_model_names_both(tiny, tmp_path, changes, needle):
    model = _copy_with_meta(tiny, tmp_path, **changes)
    with pytest.raises(MetadataError) as err:
        Classifier(model)
    message = str(err.value)
    assert needle in message and model in message and str(tmp_path / "model.json") in message


def test_a_model_without_metadata_runs_on_defaults_and_says_so(tiny, tmp_path, images, caplog):
    """ImageNet preprocessing sized to the input (64 -> shorter side 73) and labels class_0..: the
    tiny model's own metadata is exactly that plus class names, so the scores are the same."""
    import logging
    model = tmp_path / "lonely.onnx"
    shutil.copy(tiny.onnx, model)
    with caplog.at_level(logging.WARNING, logger="runtime.metadata"):
        clf = Classifier(str(model), top_k=3)
    assert str(model) in caplog.text and "lonely.onnx.json" in caplog.text and "labels=" in caplog.text
    named = {f"class_{i}": name for i, name in enumerate(CLASSES)}
    got = [(named[label], score) for label, score in clf.predict(images[0])]
    assert got == Classifier(tiny.onnx, top_k=3).predict(images[0])


@pytest.mark.parametrize("engine", ONNX_ENGINES)
def test_one_classifier_shared_by_threads_gives_sequential_results(tiny, images, engine):
    clf = Classifier(tiny.onnx, engine=engine, top_k=3)
    expected = [clf.predict(im) for im in images]
    results, errors = {}, []
    barrier = threading.Barrier(4)

    def worker(t):
        try:
            barrier.wait()
            for rep in range(3):
                for i in range(len(images)):
                    j = (i + t) % len(images)
                    results[(t, rep, j)] = clf.predict(images[j])
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert len(results) == 4 * 3 * len(images)
    for (_, _, j), got in results.items():
        assert got == expected[j]


def test_the_image_runtime_imports_no_framework():
    import subprocess
    import sys
    code = ("import sys, runtime; runtime.Classifier; import runtime.images, runtime.preprocess, "
            "runtime.classifier, runtime.engines.opencv_engine, runtime.engines.mslite_engine, "
            "runtime.engines.mindspore_engine; print(' '.join(m for m in "
            "('mindspore', 'mindspore_lite', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_model_that_does_not_exist_is_named(tmp_path):
    from runtime.errors import ModelFormatError
    with pytest.raises(ModelFormatError, match="nowhere.onnx"):
        Classifier(str(tmp_path / "nowhere.onnx"))


def test_an_official_nhwc_ms_model_gets_nhwc_input(golden_dir, tmp_path, images):
    """ml_face_isface.ms (official converter, NHWC [1,48,48,3], ends in Softmax) via the .ms engine."""
    if not is_importable("runtime.engines.ms_engine"):
        pytest.skip("the .ms engine is not in this build")
    model = tmp_path / "face.ms"
    shutil.copy(os.path.join(golden_dir, "ml_face_isface.ms"), model)
    ModelMeta(image_size=48, resize=48, layout="NHWC", softmax=True,
              class_names=["face", "not_face"]).save(str(tmp_path / "face.json"))
    clf = Classifier(str(model), top_k=2)
    assert clf.layout == "NHWC"
    x = clf.preprocess(images[0])
    assert x.shape == (48, 48, 3)
    direct = next(iter(clf.engine.run([x[None]]).values())).reshape(-1)
    got = dict(clf.predict(images[0]))
    assert got == pytest.approx({"face": float(direct[0]), "not_face": float(direct[1])}, abs=1e-7)
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-5)


def test_a_run_folder_with_only_exported_models_uses_export(tiny, tmp_path, images):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    shutil.copy(os.path.join(tiny.folder, "model.json"), run / "model.json")
    shutil.copy(tiny.onnx, run / "export" / "model_onnx_bn.onnx")
    shutil.copy(tiny.mindir, run / "export" / "model_mindir_bn.mindir")
    clf = Classifier(str(run))
    assert clf.model_path.endswith("model_onnx_bn.onnx")
    assert clf.predict(images[0]) == Classifier(tiny.onnx).predict(images[0])
    shutil.copy(tiny.onnx, run / "export" / "other.onnx")
    from runtime.errors import ModelFormatError
    with pytest.raises(ModelFormatError, match="several onnx models"):
        Classifier(str(run))
