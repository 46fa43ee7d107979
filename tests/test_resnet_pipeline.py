"""ResNet-50 (the ModelZoo network of MindSpore's transfer-learning tutorial) through the device side:
export -> convert in every precision -> our engine, the official runtime, predict.

Fast tests use the registry's small member (width 0.25: all 50 layers, 1/16 of the weights) at 64 px;
the full 224 px ResNet-50 path is the slow test at the end and benchmarks/bench_resnet50.py.

Op pattern against the official converter on the same ONNX (test_op_pattern_matches_the_official_
converters): the same 53 Conv2DFusion with the same fused ReLUs, one MaxPoolFusion in SAME mode, 16
residual AddFusion, ReduceFusion(mean, keep_dims) and a MatMulFusion head. Three differences, none
changing results (the official runtime runs our file with our engine's outputs):
- the official converter keeps the global mean in NCHW: it inserts a Transpose after the last residual
  Add, so that Add's ReLU cannot fuse and stays a separate Activation; ours rewrites the mean's axes to
  NHWC, needs no Transpose, and fuses all 16 ReLUs into their Adds;
- ONNX Flatten becomes Flatten there and Reshape (to (N, C)) here, the same operation;
- MaxPoolFusion: both pad_mode SAME (the runtime computes the padding); ours also records the pads
  SAME implies, (0, 1, 0, 1), where the official file writes zeros.
"""
import collections
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

ms = pytest.importorskip("mindspore")
onnx = pytest.importorskip("onnx")

import runtime  # noqa: E402
from _runfolder import make_run  # noqa: E402
from converters import ConvertOptions, convert  # noqa: E402
from runtime.metadata import find_meta  # noqa: E402
from runtime.msformat.reader import read_ms  # noqa: E402
from test_official_runtime_conformance import _assert_official_agrees  # noqa: E402
from toolkit.export import export_run  # noqa: E402

CLASSES = ["dog", "wolf"]
SIZE = 64
PRECISIONS = {"fp32": {}, "fp16": {"fp16": True}, "int8": {"quant": "weight"}}


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """A small ResNet-50 run folder exported (BatchNorm folded) to ONNX and MINDIR."""
    folder = tmp_path_factory.mktemp("resnet")
    run, net = make_run(str(folder / "run"), CLASSES, image_size=SIZE, arch="resnet50", seed=3)
    paths = {}
    for fmt in ("onnx", "mindir"):
        result = export_run(run.path, fmt, out=str(folder / f"resnet.{fmt}"))
        assert result.batchnorm_nodes == 0 and result.max_rel_diff <= 1e-4
        paths[fmt] = result.path
    return net, paths, folder


def _ops(path):
    return [(n.op_type, n.attrs.get("activation_type")) for n in read_ms(path).nodes]


@pytest.mark.parametrize("source", ["onnx", "mindir"])
@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_every_precision_converts_verifies_and_keeps_the_arch(resnet, source, precision, tmp_path):
    net, paths, _ = resnet
    out = str(tmp_path / f"resnet_{precision}.ms")
    result = convert(paths[source], out, ConvertOptions(verify=4, **PRECISIONS[precision]))
    assert result.verify.passed, result.verify.problems
    meta, _ = find_meta(out)
    assert meta.arch == "resnet50" and list(meta.class_names) == CLASSES
    model = runtime.load(out, engine="ms-engine")
    x = np.random.default_rng(0).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
    want = net(ms.Tensor(x)).asnumpy()
    got = list(model.run([x.transpose(0, 2, 3, 1)]).values())[0]
    # fp32: summation order only; fp16/int8 weights: their rounding through 53 convolutions.
    tol = {"fp32": 1e-4, "fp16": 2e-2, "int8": 0.15}[precision]
    assert np.abs(got - want).max() <= tol * np.abs(want).max(), precision


@pytest.fixture(scope="module")
def ours_and_official(resnet, official_converter):
    from official_graphs import convert as official_convert
    _, paths, folder = resnet
    ours = str(folder / "ours.ms")
    convert(paths["onnx"], ours, ConvertOptions())
    theirs = official_convert(official_converter, onnx.load(paths["onnx"]), str(folder), "official")
    return ours, theirs


def test_op_pattern_matches_the_official_converters(ours_and_official):
    """The differences are the three the module docstring explains; everything else is equal."""
    ours, theirs = (_ops(p) for p in ours_and_official)
    count = collections.Counter
    assert count(op for op, _ in ours) == {"Conv2DFusion": 53, "AddFusion": 16, "MaxPoolFusion": 1,
                                           "ReduceFusion": 1, "Reshape": 1, "MatMulFusion": 1}
    assert count(op for op, _ in theirs) == {"Conv2DFusion": 53, "AddFusion": 16, "MaxPoolFusion": 1,
                                             "ReduceFusion": 1, "Flatten": 1, "MatMulFusion": 1,
                                             "Transpose": 1, "Activation": 1}
    relu = 1
    convs = [collections.Counter(a for op, a in seq if op == "Conv2DFusion") for seq in (ours, theirs)]
    # (node order differs: each converter sorts the graph its own way)
    assert convs[0] == convs[1] == {relu: 33, 0: 20}, "ReLU fused into 2 convs of 16 blocks + the stem"
    assert [a for op, a in ours if op == "AddFusion"] == [relu] * 16
    assert [a for op, a in theirs if op == "AddFusion"] == [relu] * 15 + [0]
    assert theirs[-5:] == [("Transpose", None), ("Activation", relu), ("ReduceFusion", None),
                           ("Flatten", None), ("MatMulFusion", 0)]
    assert ours[-3:] == [("ReduceFusion", None), ("Reshape", None), ("MatMulFusion", 0)]
    pools = [[n.attrs for n in read_ms(p).nodes if n.op_type == "MaxPoolFusion"][0]
             for p in ours_and_official]
    same = 1
    for key in ("kernel_size", "strides", "pad_mode", "round_mode"):
        assert pools[0][key] == pools[1][key], key
    assert pools[0]["pad_mode"] == same and pools[0]["pad"] == (0, 1, 0, 1)
    means = [[n.attrs for n in read_ms(p).nodes if n.op_type == "ReduceFusion"][0]
             for p in ours_and_official]
    assert means[0]["mode"] == means[1]["mode"] == 0 and means[0]["keep_dims"] and means[1]["keep_dims"]


def test_official_converters_file_runs_in_our_engine_like_the_official_runtime(ours_and_official,
                                                                               official_tools):
    _assert_official_agrees(ours_and_official[1], official_tools)


@pytest.mark.parametrize("precision,layout", [("fp32", "NHWC"), ("fp32", "NCHW"), ("fp16", "NHWC"),
                                              ("int8", "NHWC")])
def test_our_resnet_runs_in_the_official_runtime_like_our_engine(resnet, precision, layout, tmp_path,
                                                                  official_tools):
    _, paths, _ = resnet
    out = tmp_path / f"resnet_{precision}_{layout}.ms"
    convert(paths["onnx"], str(out), ConvertOptions(input_format=layout, **PRECISIONS[precision]))
    _assert_official_agrees(out, official_tools)


def test_predict_with_grid_on_the_resnet_ms(resnet, ours_and_official, tmp_path):
    from tiny_models import sample_images
    from toolkit.cli import main
    os.makedirs(tmp_path / "raw")
    images = sample_images(str(tmp_path / "raw"), 3)
    grid = tmp_path / "grid.png"
    result = CliRunner().invoke(main, ["predict", ours_and_official[0], *images, "--engine", "ms-engine",
                                       "--json", "--grid", str(grid)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    onnx_model = runtime.Classifier(resnet[1]["onnx"], top_k=1)
    for r in report["results"]:
        assert r["predictions"][0]["label"] == onnx_model.predict(r["image"])[0][0]
        assert r["predictions"][0]["label"] in CLASSES
    assert os.path.getsize(grid) > 0


@pytest.mark.slow
def test_full_resnet50_224_exports_converts_and_agrees_with_the_official_runtime(tmp_path,
                                                                                 official_tools):
    """The full network: 25.6 M weights, 224 px, BatchNorm folded, fp32 and int8 weights."""
    run, net = make_run(str(tmp_path / "run"), CLASSES, width=1.0, image_size=224, arch="resnet50")
    exported = export_run(run.path, "onnx", out=str(tmp_path / "resnet50.onnx"))
    assert exported.batchnorm_nodes == 0 and exported.max_rel_diff <= 1e-4
    for precision in ("fp32", "int8"):
        out = tmp_path / f"resnet50_{precision}.ms"
        result = convert(exported.path, str(out), ConvertOptions(verify=2, **PRECISIONS[precision]))
        assert result.verify.passed, result.verify.problems
        _assert_official_agrees(out, official_tools)


def test_full_int8_resnet_runs_in_the_official_runtime_like_our_exact_engine(resnet, tmp_path,
                                                                            official_benchmark):
    """--quant full on the registry's second architecture: residual Adds (ReLU fused) and the max
    pool stay float, the convs and the head run int8; the official runtime gives the same top-1 and
    at most 3 output quantization steps from our exact engine on all but one calibration image."""
    from runtime.engines.ms_engine import MsEngine
    from runtime.official import benchmark_cli
    from runtime.preprocess import Preprocessor
    from runtime.metadata import find_meta
    from tiny_models import sample_images
    _, paths, _ = resnet
    calib = tmp_path / "calib"
    calib.mkdir()
    files = sample_images(str(calib), 8)
    out = tmp_path / "resnet_int8_full.ms"
    result = convert(paths["onnx"], str(out), ConvertOptions(quant="full", calib=str(calib)))
    model = read_ms(str(out))
    int8_ops = {n.op_type for n in model.nodes if n.quant_type == 5}
    assert int8_ops == {"Conv2DFusion", "MatMulFusion"} and len(result.full_quant.int8_nodes) == 54
    assert {op for _, op, _ in result.full_quant.float_nodes} >= {"AddFusion", "MaxPoolFusion"}
    step = model.tensors[next(n for n in model.nodes if n.name.startswith("Return_")).inputs[0]] \
        .quant_params[0].scale
    engine = MsEngine(str(out), int8="exact")
    pre = Preprocessor(find_meta(paths["onnx"])[0], layout="NHWC")
    within = 0
    for f in files:
        x = pre(f)[None]
        ours = next(iter(engine.run([x]).values())).ravel()
        theirs = benchmark_cli.run_outputs(official_benchmark, str(out), [x])[0][1].ravel()
        assert ours.argmax() == theirs.argmax()
        within += np.abs(ours - theirs).max() <= 3 * step + 1e-6
    # the official int8 conv kernels round a few near-ties differently from their own fixed-point
    # arithmetic (README, "Full-integer models"); a deep net can carry one such LSB to the output
    assert within >= len(files) - 1
