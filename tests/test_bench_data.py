"""`toolkit bench --data`: top-1 accuracy per row and agreement with a reference row."""
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from runtime.metadata import ModelMeta
from test_bench_flops import tiny_onnx
from toolkit.bench.data import BenchDataError, class_index_map, list_image_folder
from toolkit.cli import main

pytest.importorskip("onnx")
CLASSES = ["ant", "bee", "cat", "dog", "eel"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchdata")
    model = tiny_onnx(root / "tiny.onnx", size=8, classes=5)
    ModelMeta(image_size=8, resize=10, class_names=CLASSES).save(root / "tiny.json")
    rng = np.random.default_rng(1)
    for name in ("bee", "dog"):                       # a subset of the classes, as in real val sets
        (root / "data" / name).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(root / "data" / name / f"{i}.png"), rng.integers(0, 255, (12, 14, 3), np.uint8))
    return model, str(root / "data")


def expected_top1(model, data):
    import runtime
    from runtime.preprocess import Preprocessor
    eng = runtime.load(model, engine="onnxruntime")
    prep = Preprocessor(ModelMeta.load(model[:-5] + ".json"), "NCHW")
    classes, samples = list_image_folder(data)
    hits = [int(eng.run({"x": prep(p)[None]})["y"].argmax()) == CLASSES.index(classes[c]) for p, c in samples]
    return float(np.mean(hits))


def test_rows_report_accuracy_and_agreement_with_the_reference(setup, tmp_path):
    model, data = setup
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["-q", "bench", model, "--devices", "cpu", "--engines", "opencv,onnxruntime",
                                       "--batch", "1,4", "--iters", "2", "--data", data,
                                       "--reference", "onnxruntime", "--isolation", "inprocess",
                                       "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"] * 4
    want = expected_top1(model, data)
    for r in rows:
        assert r["images"] == 6 and r["top1"] == pytest.approx(want)
        assert r["reference"] == "tiny.onnx onnxruntime cpu b1 t1"
        assert r["agreement"] == 1.0                  # same graph, same preprocessing
    assert "top1" in result.output and "agree" in result.output


def test_folder_classes_map_through_the_model_class_names():
    meta = ModelMeta(image_size=8, resize=10, class_names=["dog", "cat", "fox"])
    assert class_index_map(["cat", "dog"], meta) == [1, 0]
    assert class_index_map(["a", "b"], None) == [0, 1]
    with pytest.raises(BenchDataError, match="emu"):
        class_index_map(["cat", "emu"], meta)


def test_folder_without_classes_or_images_is_an_error(tmp_path):
    with pytest.raises(BenchDataError, match="no class sub-folders"):
        list_image_folder(str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(BenchDataError, match="no images"):
        list_image_folder(str(tmp_path))


@pytest.mark.parametrize("shape,fmt,meta_layout,want", [
    ((1, 3, 8, 8), "", "NHWC", "NCHW"),        # the shape wins over a sidecar written for another file
    ((1, 8, 8, 3), "", "NCHW", "NHWC"),
    ((1, 8, 8, 3), "NCHW", "NHWC", "NCHW"),    # a declared format wins
    ((1, 3, 8, 3), "", "NHWC", "NHWC"),        # ambiguous shape: the metadata decides
])
def test_input_layout_comes_from_the_model_first(shape, fmt, meta_layout, want):
    from runtime.engines.base import TensorSpec
    from toolkit.bench.data import input_layout
    meta = ModelMeta(image_size=8, resize=10, layout=meta_layout)
    assert input_layout(TensorSpec("x", shape, "float32", fmt), meta) == want
