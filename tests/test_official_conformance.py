"""The `.ms` engine against the official MindSpore Lite runtime, on files the official converter wrote.

Each ONNX op graph of tests/official_graphs.py (the ops of real classifiers, detectors, segmenters)
is converted by the official `converter_lite` (NHWC input, the default, and `--inputDataFormat=NCHW`),
then run on the same seeded input by our engine and by the official `benchmark`
(benchmark_cli.run_outputs). The golden files (../shared/golden) are compared the same way.

Tolerance for float32: atol 1e-5, rtol 1e-4 (the engines use different kernels; the largest
difference seen on these cases is 5.2e-6 absolute, on mnet's landmark outputs).
"""
import glob
import os

import numpy as np
import pytest

from official_graphs import GRAPHS, convert
from runtime.engines.ms_engine import MsEngine
from runtime.official import benchmark_cli

ATOL, RTOL = 1e-5, 1e-4
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "shared", "golden")


def seeded_inputs(engine, seed=5, uniform=False):
    rng = np.random.default_rng(seed)
    return [(rng.uniform(0, 1, s.shape) if uniform else rng.standard_normal(s.shape)).astype(s.dtype)
            for s in engine.inputs()]


def assert_agrees(engine, official, ms_path, arrays, input_shapes=None):
    """Our outputs equal the official runtime's: same names, order, shapes, values (ATOL, RTOL)."""
    want = benchmark_cli.run_outputs(official, ms_path, arrays, input_shapes=input_shapes)
    got = engine.run(arrays)
    assert [n for n, _ in want] == list(got), "output names or order differ"
    for (name, w), g in zip(want, got.values()):
        assert g.shape == w.shape, f"{name}: shape {g.shape}, official {w.shape}"
        np.testing.assert_allclose(g.astype(np.float32), w, atol=ATOL, rtol=RTOL, err_msg=name)
    return got


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_converted_graph_agrees_with_official_runtime(graph, layout, official_converter,
                                                      official_benchmark, tmp_path):
    model = GRAPHS[graph]()
    ms_path = convert(official_converter, model, str(tmp_path), graph, nchw=layout == "nchw")
    engine = MsEngine(ms_path)
    n, c, h, w = (d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
    assert engine.inputs()[0].shape == ((n, c, h, w) if layout == "nchw" else (n, h, w, c))
    assert_agrees(engine, official_benchmark, ms_path, seeded_inputs(engine))


GOLDEN_FLOAT = sorted(glob.glob(os.path.join(SHARED, "ms", "*.ms"))) + \
    [os.path.join(SHARED, "ms-official", "tiny_cnn_fp32.ms")]


@pytest.mark.parametrize("path", GOLDEN_FLOAT, ids=os.path.basename)
def test_golden_file_agrees_with_official_runtime(path, official_benchmark):
    if not os.path.isfile(path):
        pytest.skip(f"{path} not found (shared/ must sit beside the checkout)")
    engine = MsEngine(path)
    assert_agrees(engine, official_benchmark, path, seeded_inputs(engine, seed=3, uniform=True))
