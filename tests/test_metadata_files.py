"""Metadata belongs to one model file: validated once, bound to the file it describes, written with it.

Specification:
- ModelMeta is frozen and every construction path goes through one schema; hostile JSON gives a
  MetadataError naming the file and the key (never a traceback, never letters of a string as labels);
- `model.ms` -> `model.ms.json`, `model.mindir` -> `model.mindir.json`, ONNX inside the file, so files
  of one stem coexist; a sidecar whose hash does not match its model is refused;
- legacy `model.json` sidecars still load (with a warning); a model without metadata still runs;
- model and metadata are replaced as one unit and leftovers of killed writes are cleaned.
"""
import json
import logging
import os
import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

from runtime.errors import MetadataError, ModelFormatError
from runtime.metadata import (MAX_META_BYTES, ModelMeta, find_meta, legacy_sidecar_path, read_labels,
                              save_model, sidecar_path)

BASE = {"image_size": 8, "resize": 10, "class_names": ["a", "b", "c", "d", "e"]}


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


# ----------------------------------------------------------------------------------- one schema

@pytest.mark.parametrize("key, value, needle", [
    ("class_names", {"a": 0}, "list of strings"),
    ("class_names", None, "list of strings"),
    ("class_names", "cat", "list of strings"),          # never split into letters
    ("class_names", ["cat", 3], "entry 1"),
    ("class_names", ["cat", "cat"], "duplicate"),
    ("image_size", "Infinity", "integer"),
    ("image_size", "NaN", "integer"),
    ("image_size", 4, "outside"),
    ("image_size", 224.5, "integer"),
    ("resize", 4, "outside"),
    ("mean", [0, "NaN", 0], "finite"),
    ("mean", [0, 0], "3 numbers"),
    ("std", [1, 0, 1], "value 1"),
    ("std", [1, 1, -2], "value 2"),
    ("softmax", "no", "true or false"),
    ("softmax", 1, "true or false"),
    ("layout", "NCWH", "NCHW, NHWC"),
    ("channel_order", "GBR", "RGB, BGR"),
    ("interpolation", "cubic", "linear"),
    ("crop", "random", "center"),
    ("exif_orientation", "guess", "ignore, apply"),
    ("schema_version", 99, "upgrade"),
    ("width", "Infinity", "finite"),
    ("arch", 7, "string"),
])
def test_hostile_metadata_names_the_file_and_the_key(tmp_path, key, value, needle):
    doc = dict(BASE)
    doc[key] = value
    text = json.dumps(doc).replace('"Infinity"', "Infinity").replace('"NaN"', "NaN")
    path = write(tmp_path / "m.json", text)
    with pytest.raises(MetadataError) as err:
        ModelMeta.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: key {key!r}:") and needle in message, message
    assert err.value.source == path and err.value.key == key


def test_every_construction_path_is_validated_and_nothing_mutates():
    with pytest.raises(MetadataError, match="key 'class_names'"):
        ModelMeta(class_names="abc")
    meta = ModelMeta(**BASE)
    with pytest.raises(MetadataError, match="key 'std'"):
        meta.replace(std=(0.0, 1.0, 1.0))
    with pytest.raises(MetadataError, match="key 'resize'.*smaller than image_size"):
        meta.replace(image_size=64)
    with pytest.raises(FrozenInstanceError):
        meta.softmax = True
    assert meta.class_names == ("a", "b", "c", "d", "e") and meta.num_classes == 5
    assert meta.replace(softmax=True).softmax and not meta.softmax
    assert ModelMeta.from_dict(json.loads(meta.to_json())) == meta


def test_not_an_object_is_refused(tmp_path):
    with pytest.raises(MetadataError, match="m.json: metadata must be a JSON object, not list"):
        ModelMeta.load(write(tmp_path / "m.json", "[1, 2]"))


def test_deep_nesting_is_a_typed_error_not_a_recursion_error(tmp_path):
    path = write(tmp_path / "m.json", '{"class_names": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(MetadataError, match="m.json: cannot read metadata: nested 100001 deep"):
        ModelMeta.load(path)


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    doc = dict(BASE, class_names=["[[[[[[[[[[[[", "{{{{{{{{{{{{{{{", "a\\\"[[[[[[[[[", "d", "e"])
    meta = ModelMeta.load(write(tmp_path / "m.json", json.dumps(doc)))
    assert meta.class_names[0] == "[[[[[[[[[[[["


def test_oversized_and_duplicate_key_files_are_refused(tmp_path):
    big = write(tmp_path / "big.json", json.dumps(dict(BASE, pad="x" * MAX_META_BYTES)))
    with pytest.raises(MetadataError, match=f"big.json: cannot read metadata: .*more than the {MAX_META_BYTES} byte limit"):
        ModelMeta.load(big)
    dup = write(tmp_path / "dup.json", '{"softmax": false, "softmax": true}')
    with pytest.raises(MetadataError, match="dup.json: .*duplicate key 'softmax'"):
        ModelMeta.load(dup)


# ----------------------------------------------------------------------- files of one stem

def test_same_stem_files_each_have_their_own_bound_sidecar(tmp_path):
    ms, mindir = str(tmp_path / "model.ms"), str(tmp_path / "model.mindir")
    assert save_model(ms, b"ms bytes", ModelMeta(**BASE, layout="NHWC")) == ms + ".json"
    assert save_model(mindir, b"mindir bytes", ModelMeta(**BASE)) == mindir + ".json"
    assert sorted(os.listdir(tmp_path)) == ["model.mindir", "model.mindir.json", "model.ms", "model.ms.json"]
    assert find_meta(ms) == (ModelMeta(**BASE, layout="NHWC"), ms + ".json")
    assert find_meta(mindir) == (ModelMeta(**BASE), mindir + ".json")
    binding = json.load(open(ms + ".json"))["model_file"]
    assert binding["name"] == "model.ms" and binding["size"] == len(b"ms bytes")


@pytest.mark.parametrize("tamper", [b"ms bytez", b"ms bytes, longer"])
def test_a_sidecar_of_another_version_of_the_model_is_refused(tmp_path, tamper):
    ms = str(tmp_path / "model.ms")
    save_model(ms, b"ms bytes", ModelMeta(**BASE))
    with open(ms, "wb") as f:
        f.write(tamper)
    with pytest.raises(MetadataError, match=r"model.ms.json: key 'model_file': describes a different "
                                            r"version of model .*model.ms.*interrupted write"):
        find_meta(ms)


def test_a_write_killed_between_the_renames_is_detected(tmp_path, monkeypatch):
    """The model is renamed first; dying before the sidecar's rename leaves old metadata beside the
    new model, which the hash binding refuses. The next write cleans the leftover temporary."""
    ms = str(tmp_path / "model.ms")
    save_model(ms, b"version 1", ModelMeta(**BASE))
    real_replace = os.replace

    def dies_before_the_sidecar(src, dst):
        if dst.endswith(".json"):
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", dies_before_the_sidecar)
    with pytest.raises(KeyboardInterrupt):
        save_model(ms, b"version 2", ModelMeta(**BASE, softmax=True))
    monkeypatch.setattr(os, "replace", real_replace)
    assert open(ms, "rb").read() == b"version 2"
    with pytest.raises(MetadataError, match="describes a different version"):
        find_meta(ms)
    save_model(ms, b"version 3", ModelMeta(**BASE))
    assert find_meta(ms)[0] == ModelMeta(**BASE)


def test_leftover_temporaries_of_killed_writes_are_cleaned_on_the_next_write(tmp_path):
    ms = str(tmp_path / "model.ms")
    leftovers = [tmp_path / ".model.ms.a1b2c3d4.tmp", tmp_path / ".model.ms.json.zz_9yx8w.tmp",
                 tmp_path / ".model.ms.q1w2e3r4.tmp.ms"]
    unrelated = [tmp_path / ".model.mindir.a1b2c3d4.tmp", tmp_path / "notes.tmp"]
    for p in leftovers + unrelated:
        p.write_bytes(b"half")
    save_model(ms, b"model", ModelMeta(**BASE))
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in unrelated)


def test_legacy_stem_sidecar_still_loads_with_a_warning(tmp_path, caplog):
    ms = str(tmp_path / "model.ms")
    with open(ms, "wb") as f:
        f.write(b"old model")
    ModelMeta(**BASE).save(legacy_sidecar_path(ms))
    with caplog.at_level(logging.WARNING, logger="runtime.metadata"):
        meta, source = find_meta(ms)
    assert meta == ModelMeta(**BASE) and source == str(tmp_path / "model.json")
    assert "legacy metadata file" in caplog.text and str(tmp_path / "model.json") in caplog.text
    # Once the file has its own metadata, that wins over the legacy file.
    save_model(ms, b"new model", ModelMeta(**BASE, softmax=True))
    assert find_meta(ms) == (ModelMeta(**BASE, softmax=True), sidecar_path(ms))


def test_labels_files_are_bounded_and_checked(tmp_path):
    assert read_labels(write(tmp_path / "l.txt", "cat\n\ndog \n")) == ["cat", "dog"]
    with pytest.raises(MetadataError, match="l2.txt: labels file lists no names"):
        read_labels(write(tmp_path / "l2.txt", "\n\n"))
    with pytest.raises(MetadataError, match="l3.txt: .*duplicate"):
        read_labels(write(tmp_path / "l3.txt", "cat\ncat\n"))


# ------------------------------------------------------------------------------ ONNX, inside

@pytest.fixture
def onnx_model(tmp_path):
    pytest.importorskip("onnx")
    from test_bench_flops import tiny_onnx
    return tiny_onnx(tmp_path / "tiny.onnx", size=8, classes=5)


def test_onnx_metadata_round_trips_inside_the_file_and_is_replaced_not_duplicated(onnx_model):
    import onnx
    raw = open(onnx_model, "rb").read()
    save_model(onnx_model, raw, ModelMeta(**BASE))
    save_model(onnx_model, open(onnx_model, "rb").read(), ModelMeta(**BASE, softmax=True))
    assert not os.path.exists(sidecar_path(onnx_model))
    model = onnx.load(onnx_model)
    onnx.checker.check_model(model)
    entries = [e for e in model.metadata_props if e.key == "ms_edge_toolkit.meta"]
    assert len(entries) == 1 and json.loads(entries[0].value)["softmax"] is True
    meta, source = find_meta(onnx_model)
    assert meta == ModelMeta(**BASE, softmax=True) and "metadata_props" in source


def test_onnx_metadata_is_read_without_importing_onnx(onnx_model):
    save_model(onnx_model, open(onnx_model, "rb").read(), ModelMeta(**BASE))
    code = ("import sys; from runtime.metadata import find_meta; m, _ = find_meta(sys.argv[1]); "
            "print(m.class_names, 'onnx' in sys.modules, 'google.protobuf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, onnx_model], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "('a', 'b', 'c', 'd', 'e') False False"


def test_hostile_onnx_metadata_is_a_typed_error(onnx_model, tmp_path):
    from runtime.onnx_meta import embed_onnx_meta
    raw = open(onnx_model, "rb").read()
    bad = str(tmp_path / "bad.onnx")
    with open(bad, "wb") as f:
        f.write(embed_onnx_meta(raw, json.dumps(dict(BASE, std=[1, 0, 1]))))
    with pytest.raises(MetadataError, match="bad.onnx .metadata_props key 'ms_edge_toolkit.meta'.: key 'std'"):
        find_meta(bad)
    twice = embed_onnx_meta(raw, "{}")
    twice = twice + twice[len(raw):]                # a second entry with our key
    with open(bad, "wb") as f:
        f.write(twice)
    with pytest.raises(MetadataError, match="2 entries"):
        find_meta(bad)
    with open(bad, "wb") as f:
        f.write(embed_onnx_meta(raw, "{}")[:-3])       # truncated inside the entry
    with pytest.raises(ModelFormatError, match="bad.onnx: ModelProto: truncated protobuf"):
        find_meta(bad)
    with open(bad, "wb") as f:
        f.write(raw + b"\x72\xff\xff\xff\xff\x0f")      # field 14 claiming 4 GiB
    with pytest.raises(ModelFormatError, match="claims 4294967295 bytes"):
        find_meta(bad)


# ------------------------------------------------------------------- a model without metadata

def test_a_model_without_metadata_runs_on_defaults_with_a_warning(onnx_model, tmp_path, caplog):
    from runtime import Classifier
    image = tmp_path / "im.png"
    import cv2
    import numpy as np
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (20, 24, 3), np.uint8))
    assert find_meta(onnx_model) == (None, None)
    with caplog.at_level(logging.WARNING, logger="runtime.metadata"):
        clf = Classifier(onnx_model, top_k=5)
    assert onnx_model in caplog.text and "Classifier(path, meta=...)" in caplog.text
    assert clf.meta.image_size == 8 and clf.meta.resize == 9 and clf.meta.mean == ModelMeta().mean
    assert sorted(label for label, _ in clf.predict(str(image))) == [f"class_{i}" for i in range(5)]
    labels = write(tmp_path / "labels.txt", "ant\nbee\ncat\ndog\neel\n")
    named = Classifier(onnx_model, labels=labels, top_k=5)
    assert named.labels == ["ant", "bee", "cat", "dog", "eel"]
    assert [s for _, s in named.predict(str(image))] == [s for _, s in clf.predict(str(image))]
    with pytest.raises(MetadataError, match="lists 3 class names"):
        Classifier(onnx_model, labels=["a", "b", "c"])


def test_predict_cli_takes_labels_and_meta_files(onnx_model, tmp_path):
    from click.testing import CliRunner

    from toolkit.cli import main
    import cv2
    import numpy as np
    image = str(tmp_path / "im.png")
    cv2.imwrite(image, np.random.default_rng(0).integers(0, 255, (20, 24, 3), np.uint8))
    labels = write(tmp_path / "labels.txt", "ant\nbee\ncat\ndog\neel\n")
    r = CliRunner().invoke(main, ["predict", onnx_model, image, "--labels", labels, "--json", "--top-k", "5"])
    assert r.exit_code == 0, r.output
    assert {p["label"] for p in json.loads(r.stdout)["results"][0]["predictions"]} == set(
        ["ant", "bee", "cat", "dog", "eel"])
    meta = str(tmp_path / "meta.json")
    ModelMeta(image_size=8, resize=10, class_names=list("vwxyz")).save(meta)
    r = CliRunner().invoke(main, ["predict", onnx_model, image, "--meta", meta, "--json", "--top-k", "5"])
    assert r.exit_code == 0, r.output
    assert {p["label"] for p in json.loads(r.stdout)["results"][0]["predictions"]} == set("vwxyz")
    bad = write(tmp_path / "bad.json", json.dumps(dict(BASE, class_names="abcde")))
    r = CliRunner().invoke(main, ["predict", onnx_model, image, "--meta", bad])
    assert r.exit_code == 1 and "bad.json: key 'class_names'" in r.output


# ------------------------------------------- the same-stem workflow, end to end (needs MindSpore)

WORKFLOW_CLASSES = ["ant", "bee", "cat"]
SAME_STEM = ["model.mindir", "model.onnx", "model.ms", "model_fp16.ms"]


def _cli(*args):
    from click.testing import CliRunner

    from toolkit.cli import main
    result = CliRunner().invoke(main, ["-q", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def same_stem(tmp_path_factory):
    """One run exported to model.mindir and model.onnx, and model.mindir converted to model.ms and
    model_fp16.ms, all in ONE folder."""
    pytest.importorskip("mindspore")
    pytest.importorskip("onnxruntime")
    from _runfolder import make_run
    from tiny_models import sample_images
    root = tmp_path_factory.mktemp("same_stem")
    run, _ = make_run(str(root / "run"), WORKFLOW_CLASSES, image_size=32)
    folder = root / "models"
    _cli("export", run.path, "--format", "mindir", "--out", folder / "model.mindir")
    _cli("export", run.path, "--format", "onnx", "--out", folder / "model.onnx")
    _cli("convert", folder / "model.mindir", "-o", folder / "model.ms")
    _cli("convert", folder / "model.mindir", "-o", folder / "model_fp16.ms", "--fp16")
    val = root / "val"
    for i, path in enumerate(sample_images(str(root), count=6)):
        cls = val / WORKFLOW_CLASSES[i % 3]
        cls.mkdir(parents=True, exist_ok=True)
        os.replace(path, cls / os.path.basename(path))
    return folder, val


def test_same_stem_files_coexist_each_with_its_own_metadata(same_stem):
    folder, _ = same_stem
    assert sorted(os.listdir(folder)) == ["model.mindir", "model.mindir.json", "model.ms", "model.ms.json",
                                          "model.onnx", "model_fp16.ms", "model_fp16.ms.json"]
    layouts = {}
    for name in SAME_STEM:
        meta, source = find_meta(folder / name)
        assert source.startswith(str(folder / name)) and list(meta.class_names) == WORKFLOW_CLASSES
        layouts[name] = meta.layout
    assert layouts == {"model.mindir": "NCHW", "model.onnx": "NCHW", "model.ms": "NHWC",
                       "model_fp16.ms": "NHWC"}


def test_each_same_stem_file_predicts_with_its_own_metadata(same_stem):
    from runtime import Classifier
    folder, val = same_stem
    images = sorted(str(p) for p in val.rglob("*.*g"))
    reference = Classifier(str(folder / "model.onnx"), top_k=3)
    want = [reference.predict(im) for im in images]
    for name in SAME_STEM:
        clf = Classifier(str(folder / name), top_k=3)
        assert clf._meta_source.startswith(str(folder / name)) and clf.layout == clf.meta.layout
        tol = 2e-2 if "fp16" in name else 1e-4
        for im, expected in zip(images, want):
            got = dict(clf.predict(im))
            assert set(got) == set(WORKFLOW_CLASSES)
            assert all(abs(got[label] - score) <= tol for label, score in expected), name
        report = json.loads(_cli("predict", folder / name, *images, "--json", "--top-k", "3").stdout)
        assert [[p["label"] for p in r["predictions"]] for r in report["results"]] == [
            [label for label, _ in clf.predict(im)] for im in images]


@pytest.mark.slow
def test_bench_on_every_same_stem_file_agrees(same_stem, tmp_path):
    folder, val = same_stem
    out = tmp_path / "bench.json"
    _cli("bench", *[folder / n for n in SAME_STEM], "--devices", "cpu", "--iters", "2", "--warmup", "0",
         "--engines", "mindspore,onnxruntime,ms-engine", "--data", val, "--reference", "onnxruntime",
         "--json", out)
    rows = json.loads(out.read_text())["rows"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {os.path.basename(r["model"]) for r in ok} == set(SAME_STEM), [(r["model"], r["reason"]) for r in rows]
    for r in ok:
        assert r["images"] == 6 and r["agreement"] == 1.0, r
    assert len({r["top1"] for r in ok}) == 1
