"""`toolkit predict`: table, JSON, and a grid whose cells are green when the class folder agrees
with the prediction and red when it does not."""
import json
import os
import shutil

import cv2
import pytest
from click.testing import CliRunner

from runtime import Classifier
from toolkit.cli import main
from toolkit.grid import BORDER, RIGHT, UNKNOWN, WRONG, cell_origin
from tiny_models import CLASSES, sample_images


@pytest.fixture(scope="module")
def val(tiny, tmp_path_factory):
    """Class folders where the first two images sit in their predicted class, the next two do not."""
    root = tmp_path_factory.mktemp("val")
    images = sample_images(str(tmp_path_factory.mktemp("raw")), 4)
    clf = Classifier(tiny.onnx, top_k=1)
    placed = []
    for i, path in enumerate(images):
        predicted = clf.predict(path)[0][0]
        folder = predicted if i < 2 else CLASSES[(CLASSES.index(predicted) + 1) % len(CLASSES)]
        os.makedirs(root / folder, exist_ok=True)
        dest = str(root / folder / f"{i}_{os.path.basename(path)}")
        shutil.copy(path, dest)
        placed.append((dest, i < 2))
    return str(root), placed


def invoke(*args):
    return CliRunner().invoke(main, ["predict", *args], catch_exceptions=False)


def test_json_scores_each_image_against_its_class_folder(tiny, val):
    root, placed = val
    result = invoke(tiny.folder, root, "--json", "--top-k", "2")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == "onnxruntime" and report["device"] == "cpu"
    by_image = {r["image"]: r for r in report["results"]}
    assert set(by_image) == {p for p, _ in placed}
    for path, right in placed:
        r = by_image[path]
        assert len(r["predictions"]) == 2 and r["correct"] is right
        assert r["truth"] == os.path.basename(os.path.dirname(path))
    assert report["accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize("engine", ["opencv", "onnxruntime"])
def test_table_lists_every_image_with_its_top_label(tiny, val, engine):
    root, placed = val
    result = invoke(tiny.onnx, root, "--engine", engine, "--top-k", "1")
    assert result.exit_code == 0, result.stderr
    assert f"on {engine} (cpu)" in result.stdout
    for path, _ in placed:
        assert path in result.stdout
    assert "top-1 accuracy on 4 image(s) from class folders: 50.0%" in result.stdout


def test_grid_colours_right_and_wrong(tiny, val, tmp_path):
    root, placed = val
    out = tmp_path / "grid.png"
    result = invoke(tiny.folder, *[p for p, _ in placed], "--grid", str(out))
    assert result.exit_code == 0, result.stderr
    grid = cv2.imread(str(out))
    assert grid is not None
    columns = 2                                  # ceil(sqrt(4))
    for i, (_, right) in enumerate(placed):
        top, left = cell_origin(i, columns, 160)
        assert tuple(int(v) for v in grid[top + BORDER // 2, left + BORDER // 2]) == (RIGHT if right else WRONG)


def test_images_outside_class_folders_get_grey_cells(tiny, tmp_path):
    images = sample_images(str(tmp_path), 1)
    out = tmp_path / "grid.jpg"
    result = invoke(tiny.onnx, images[0], "--grid", str(out))
    assert result.exit_code == 0, result.stderr
    pixel = cv2.imread(str(out))[1, 1].astype(int)
    assert abs(pixel - UNKNOWN).max() <= 12      # JPEG tolerance


def test_unreadable_images_are_named_and_fail_the_command(tiny, tmp_path):
    good = sample_images(str(tmp_path), 1)[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    result = invoke(tiny.onnx, good, str(bad))
    assert result.exit_code == 1
    assert good in result.stdout
    assert str(bad) in result.stderr and "1 of 2 image(s) could not be read" in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["--grid", "out.txt"], "must end with one of"),
    (["--engine", "tensorrt"], "Invalid value for '--engine'"),
    (["--device", "tpu"], "Invalid value for '--device'"),
    (["--top-k", "0"], "Invalid value for '--top-k'"),
])
def test_bad_options_are_usage_errors(tiny, args, needle):
    result = invoke(tiny.onnx, tiny.folder, *args)
    assert result.exit_code == 2 and needle in result.stderr


def test_absent_device_is_an_error_listing_what_exists(tiny, val):
    result = invoke(tiny.onnx, val[0], "--device", "gpu")
    assert result.exit_code == 1
    assert "gpu" in result.stderr and "available: cpu" in result.stderr


def test_a_folder_without_images_is_a_usage_error(tiny, tmp_path):
    result = invoke(tiny.onnx, str(tmp_path))
    assert result.exit_code == 2 and "no image files found" in result.stderr
