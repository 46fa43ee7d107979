"""`--verify` on a full-integer `.ms` (precision "int8-full"): the report and its gates.

Until the project's own quantizer writes such files, the official converter's pair stands in:
source tiny_cnn.onnx, quantized tiny_cnn_fq8.ms, and tiny_cnn_fp32.ms as the float `.ms` before
quantization (../shared/golden/ms-official; fq8 is cosine 0.99972 from the source there).
"""
import os

import numpy as np
import pytest

import runtime
from converters.verify import (FULL_MIN_AGREEMENT, FULL_MIN_COSINE, OFFICIAL_INT8_STEPS, image_labels,
                               int8_output_limit, official_check, verify)
from runtime.metadata import ModelMeta
from runtime.msformat.reader import read_ms

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "golden", "ms-official")
CLASSES = [f"c{k}" for k in range(10)]


def golden(name):
    path = os.path.join(GOLDEN, name)
    if not os.path.isfile(path):
        pytest.skip(f"{path} not found (shared/ must sit beside the checkout)")
    return path

def full(**kw):
    kw.setdefault("official", False)
    return verify(golden("tiny_cnn.onnx"), "onnx", golden("tiny_cnn_fq8.ms"), kw.pop("meta", None),
                  precision="int8-full", n=kw.pop("n", 4), **kw)

def float_ms():
    with open(golden("tiny_cnn_fp32.ms"), "rb") as f:
        return f.read()

def test_default_gates_pass_and_both_arithmetics_are_reported():
    r = full(float_ms=float_ms())
    assert r.passed, r.problems
    assert r.thresholds == {"min_top1_agreement": FULL_MIN_AGREEMENT, "min_cosine": FULL_MIN_COSINE}
    assert set(r.modes) == {"fast", "exact"}
    for m in r.modes.values():
        assert m["top1_agreement"] == 1.0 and 0.999 < m["cosine_similarity"] < 1.0
    assert r.modes["fast"]["cosine_similarity"] == r.cosine_similarity       # fast is what deploys
    names = [d["name"] for d in r.worst_layers]
    assert len(names) == 5 and set(names) <= {"conv1", "pool1", "conv2", "pool2", "pool2_post",
                                              "flatten", "fc", "prob"}
    rel = [d["relative_error"] for d in r.worst_layers]
    assert rel == sorted(rel, reverse=True) and rel[0] > 0
    text = "\n".join(r.lines())
    assert "int8 fast" in text and "int8 exact" in text and "worst layers" in text and "PASS" in text

def test_a_cosine_gate_above_the_measurement_fails():
    r = full(min_cosine=0.99999999)
    assert not r.passed
    assert any("cosine similarity" in p and "< 0.99999999" in p for p in r.problems)
    assert r.thresholds["min_cosine"] == 0.99999999
    ok = full(min_cosine=0.999, min_agreement=1.0)
    assert ok.passed, ok.problems

def test_an_agreement_gate_fails_on_a_disagreeing_model(tmp_path):
    """Agreement 100% cannot be beaten, so swap two classes of the quantized model's output: the
    top-1 of almost every input then differs while the cosine stays high."""
    import copy
    from runtime.msformat.writer import write_ms
    model = copy.deepcopy(read_ms(golden("tiny_cnn_fq8.ms")))
    fc = next(n for n in model.nodes if n.name == "fc")
    w = model.tensors[fc.inputs[1]]                        # int8 [10, 1024], per-channel scales
    rows = np.frombuffer(w.data, np.int8).reshape(10, -1)[::-1].copy()
    w.data = rows.tobytes()
    w.quant_params = w.quant_params[::-1]
    b = model.tensors[fc.inputs[2]]
    b.data = np.frombuffer(b.data, np.int32)[::-1].copy().tobytes()
    b.quant_params = b.quant_params[::-1]
    path = tmp_path / "reversed.ms"
    write_ms(model, str(path))
    r = verify(golden("tiny_cnn.onnx"), "onnx", str(path), None, precision="int8-full", n=6,
               official=False)
    assert not r.passed and r.modes["fast"]["top1_agreement"] < FULL_MIN_AGREEMENT
    assert any(p.startswith("int8 fast: top-1 agreement") for p in r.problems)

def test_flags_add_gates_to_the_float_precisions():
    r = verify(golden("tiny_cnn.onnx"), "onnx", golden("tiny_cnn_fp32.ms"), None, precision="fp32",
               n=2, official=False, min_agreement=1.0, min_cosine=0.999)
    assert r.passed, r.problems
    assert r.thresholds == {"min_top1_agreement": 1.0, "min_cosine": 0.999,
                            "max_abs_diff_relative_to_range": 1e-4}
    plain = verify(golden("tiny_cnn.onnx"), "onnx", golden("tiny_cnn_fp32.ms"), None, precision="fp32",
                   n=2, official=False)
    assert plain.thresholds == {"max_abs_diff_relative_to_range": 1e-4} and plain.modes == {}
    with pytest.raises(Exception, match="min_cosine must be within 0..1"):
        full(min_cosine=1.5)

def _image_folder(root, labelled):
    import cv2
    rng = np.random.default_rng(5)
    for k in range(6):
        folder = root / (f"c{k % 3}" if labelled else "")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"im{k}.png"), rng.integers(0, 255, (36, 36, 3), dtype=np.uint8))
    return str(root)

META = ModelMeta(arch="tiny_cnn", image_size=32, resize=32, class_names=CLASSES, layout="NHWC")

def test_top1_accuracy_on_a_labelled_image_folder(tmp_path):
    images = _image_folder(tmp_path / "val", labelled=True)
    r = full(meta=META, images=images, n=6)
    acc = r.accuracy
    assert acc["labelled"] == 6 and set(acc) == {"labelled", "source", "ms", "ms_exact"}
    # the source's accuracy, recomputed here from the same preprocessing and labels
    from runtime.images import list_images
    from runtime.preprocess import Preprocessor
    files = list_images([images])
    labels, why = image_labels(images, files, META)
    assert why is None and list(labels) == [int(os.path.basename(os.path.dirname(f))[1:]) for f in files]
    x = np.stack([Preprocessor(META, layout="NCHW")(f) for f in files])
    src = runtime.load(golden("tiny_cnn.onnx"), engine="onnxruntime")
    got = np.concatenate([src.run([x[i:i + 1]])["prob"] for i in range(len(x))])
    assert acc["source"] == pytest.approx(np.mean(got.argmax(1) == labels))
    assert "top-1 accuracy" in "\n".join(r.lines())

def test_unlabelled_images_say_why_there_is_no_accuracy(tmp_path):
    r = full(meta=META, images=_image_folder(tmp_path / "flat", labelled=False), n=6)
    assert r.accuracy is None and any("class sub-folder" in n for n in r.notes)
    files = [str(tmp_path / "x" / "dog" / "a.png")]
    labels, why = image_labels(str(tmp_path / "x"), files, META)
    assert labels is None and "'dog'" in why
    assert image_labels("d", ["d/c1/a.png"], ModelMeta())[1].startswith("the metadata has no class_names")

def test_without_the_float_ms_the_report_says_so():
    r = full()
    assert r.worst_layers is None and any("float .ms" in n for n in r.notes)

def test_official_tolerance_is_in_output_quantization_steps():
    mn = read_ms(golden("mnv2s_fq8.ms"))               # output = QuantDTypeCast of int8 '151Gemm'
    gemm = next(t for t in mn.tensors if t.name == "151Gemm")
    bound, rule, top1 = int8_output_limit(mn, np.zeros((1, 1000)))
    assert bound == pytest.approx(OFFICIAL_INT8_STEPS * gemm.quant_params[0].scale) and top1 == 1.0
    assert "'151Gemm'" in rule and "QuantDTypeCast" in rule
    tiny = read_ms(golden("tiny_cnn_fq8.ms"))          # output made by a float Softmax
    bound, rule, _ = int8_output_limit(tiny, np.array([[0.0, 0.5]]))
    assert bound == pytest.approx(0.005) and "Softmax" in rule

def test_official_cross_check_uses_the_exact_arithmetic(official_benchmark):
    r = full(official=True, benchmark=official_benchmark.path, n=2)
    assert r.passed, r.problems
    c = r.official
    assert c.status == "outputs" and c.passed and c.top1_agreement == 1.0
    assert c.max_abs_diff < 1e-5                      # "exact" reproduces the official kernels
    assert "int8='exact'" in c.note and c.thresholds["min_top1_agreement"] == 1.0

def test_official_cross_check_fails_beyond_its_limit(official_benchmark):
    path = golden("tiny_cnn_fq8.ms")
    engine = runtime.load(path, engine="ms-engine", int8="exact")
    x = np.random.default_rng(0).standard_normal((1, 32, 32, 3)).astype(np.float32)
    ours = np.asarray(engine.run([x])["prob"], np.float64) + 0.01      # two steps of 1/255 off
    check = official_check(path, engine, [x], ours, official_benchmark.path,
                           limit=(0.003, "test rule", 1.0))
    assert check.passed is False and check.max_abs_diff == pytest.approx(0.01, abs=1e-4)
    assert "rule: test rule" in check.line()
