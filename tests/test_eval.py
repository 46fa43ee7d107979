"""`toolkit eval`: accuracy, per-class accuracy and confusion equal an independent computation."""
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

ms = pytest.importorskip("mindspore")

from _runfolder import make_run  # noqa: E402
from runtime.errors import EngineUnavailableError  # noqa: E402
from runtime.metadata import ModelMeta, resize_for  # noqa: E402
from toolkit.cli import main  # noqa: E402
from toolkit.data.errors import DatasetError  # noqa: E402
from toolkit.data.folder import scan_dataset  # noqa: E402
from toolkit.data.pipeline import eval_batches  # noqa: E402
from toolkit.data.synthetic import make_dataset  # noqa: E402
from toolkit.evaluate import evaluate_run, write_report  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    classes = make_dataset(root / "data", classes=3, per_class=8, size=40, seed=0, val_fraction=0.5)
    run, net = make_run(str(root / "run"), classes, image_size=32, seed=5)
    return str(root / "data"), run, net


def _expected_confusion(data, net, split, k):
    index = scan_dataset(data)
    cm = np.zeros((k, k), int)
    meta = ModelMeta(image_size=32, resize=resize_for(32))
    for x, labels in eval_batches(index.split(split), meta, 5):
        for t, p in zip(labels, net(ms.Tensor(x)).asnumpy().argmax(1)):
            cm[t, p] += 1
    return cm


@pytest.mark.parametrize("engine", ["mindspore", "onnxruntime"])
def test_report_equals_an_independent_computation(setup, engine):
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
    data, run, net = setup
    result = evaluate_run(data, run.path, split="val", engine_name=engine, batch_size=5)
    expected = _expected_confusion(data, net, "val", 3)
    assert np.array_equal(np.array(result.confusion), expected)
    assert result.n_images == 12 and result.engine == engine
    assert result.top1 == pytest.approx(np.trace(expected) / 12)
    for j, name in enumerate(result.class_names):
        assert result.per_class[name] == {"accuracy": pytest.approx(expected[j, j] / 4), "count": 4}
    if engine == "onnxruntime":
        assert result.parity_max_rel_diff <= 1e-4
    else:
        assert result.parity_max_rel_diff is None


def test_json_and_png_are_written(setup, tmp_path):
    data, run, _ = setup
    result = evaluate_run(data, run.path, split="all", engine_name="mindspore")
    json_path, png_path = write_report(result, str(tmp_path))
    saved = json.load(open(json_path))
    assert saved["confusion"] == result.confusion and saved["n_images"] == 24 and saved["split"] == "all"
    image = cv2.imread(png_path)
    assert image is not None and image.shape[0] > 100 and image.shape[2] == 3


def test_dataset_with_a_subset_of_the_classes_maps_labels_by_name(setup, tmp_path):
    data, run, net = setup
    import shutil
    keep = sorted(scan_dataset(data).classes)[2]
    shutil.copytree(f"{data}/val/{keep}", tmp_path / "val" / keep)
    shutil.copytree(f"{data}/train/{keep}", tmp_path / "train" / keep)
    result = evaluate_run(str(tmp_path), run.path, engine_name="mindspore")
    cm = np.array(result.confusion)
    assert cm[2].sum() == 4 and cm.sum() == 4
    assert np.array_equal(cm[2], _expected_confusion(data, net, "val", 3)[2])


def test_unknown_class_folder_is_refused(setup, tmp_path):
    _, run, _ = setup
    (tmp_path / "val" / "zebra").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "val" / "zebra" / "z.jpg"), np.zeros((40, 40, 3), np.uint8))
    (tmp_path / "train" / "zebra").mkdir(parents=True)
    with pytest.raises(DatasetError, match="unknown to the model: zebra"):
        evaluate_run(str(tmp_path), run.path, engine_name="mindspore")


def test_missing_engine_is_an_error_not_a_fallback(setup, monkeypatch):
    data, run, _ = setup
    import runtime.engines
    real = runtime.engines.availability.is_importable
    monkeypatch.setattr(runtime.engines.availability, "is_importable", lambda name: name != "onnxruntime" and real(name))
    with pytest.raises(EngineUnavailableError, match="onnxruntime is not available.*available: mindspore"):
        evaluate_run(data, run.path, engine_name="onnxruntime")


def test_cli_prints_accuracy_and_writes_the_report(setup, tmp_path):
    data, run, _ = setup
    result = CliRunner().invoke(main, ["eval", data, "--run", run.path, "--engine", "mindspore",
                                       "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and (tmp_path / "eval.json").exists() and (tmp_path / "confusion.png").exists()


def test_without_val_folder_eval_uses_the_runs_split(setup, tmp_path):
    """The val split of a flat dataset is re-derived with the run's val_fraction and seed (config.json)."""
    data, run, _ = setup
    import shutil
    shutil.copytree(f"{data}/train", tmp_path / "flat")
    shutil.copytree(run.path, tmp_path / "run")
    config = json.load(open(tmp_path / "run" / "config.json"))
    config.update(val_fraction=0.5, seed=3)
    json.dump(config, open(tmp_path / "run" / "config.json", "w"))
    result = evaluate_run(str(tmp_path / "flat"), str(tmp_path / "run"), engine_name="mindspore")
    expected = scan_dataset(str(tmp_path / "flat"), val_fraction=0.5, seed=3).val
    assert result.n_images == len(expected) == 6
