"""Pruning and input shapes other than the stored ones in the `.ms` engine.

Resize is compared with the official runtime run with `--inputShapes` (atol 1e-5, rtol 1e-4) on a
MobileNetV2-like block converted by the official converter, at batch 2 and at another image size.
"""
import numpy as np
import pytest

import runtime
from official_graphs import GRAPHS, convert
from runtime.engines.ms_engine import MsEngine
from runtime.errors import InputShapeError, UnsupportedOpsError
from runtime.msformat.builder import make_tensor
from runtime.msformat.model import MsModel, MsNode
from runtime.msformat.reader import read_ms_bytes
from runtime.msformat.writer import model_to_bytes
from test_official_conformance import assert_agrees


def _two_branch_model(dead_feeds_output=False):
    """x -> AddFusion(x, c) -> y (output); x -> an op without handler -> dead (or also an output)."""
    tensors = [make_tensor("x", shape=(1, 4)), make_tensor("c", np.ones((1, 4), np.float32)),
               make_tensor("y", shape=(1, 4)), make_tensor("dead", shape=(1, 4))]
    nodes = [MsNode("add", "AddFusion", {}, [0, 1], [2]),
             MsNode("loss", "SoftmaxCrossEntropyWithLogits", {}, [0, 1], [3])]
    outputs = [2, 3] if dead_feeds_output else [2]
    model = MsModel(inputs=[0], outputs=outputs, nodes=nodes, tensors=tensors)
    return read_ms_bytes(model_to_bytes(model))


def test_nodes_no_output_needs_are_pruned_not_reported():
    engine = MsEngine.from_model(_two_branch_model())
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_array_equal(engine.run([x])["y"], x + 1)


def test_an_unsupported_node_that_feeds_an_output_is_still_reported():
    with pytest.raises(UnsupportedOpsError, match="loss") as e:
        MsEngine.from_model(_two_branch_model(dead_feeds_output=True))
    assert e.value.ops == [("loss", "SoftmaxCrossEntropyWithLogits")]


@pytest.fixture(scope="module")
def block(official_converter, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("resize"))
    return {name: convert(official_converter, GRAPHS[name](), folder, name)
            for name in ("mobilenet_block", "matmul", "resize_nearest")}


@pytest.mark.parametrize("shape", [(2, 16, 16, 3), (1, 20, 22, 3), (3, 24, 24, 3)])
def test_resized_block_agrees_with_official_input_shapes(block, official_benchmark, shape):
    engine = MsEngine(block["mobilenet_block"], input_shapes={"x": shape})
    assert engine.inputs()[0].shape == shape and engine.outputs()[0].shape == (shape[0], 5)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    assert_agrees(engine, official_benchmark, block["mobilenet_block"], [x], input_shapes=[shape])


def test_resize_method_and_load_take_other_shapes(block, official_benchmark):
    path = block["resize_nearest"]
    engine = runtime.load(path, engine="ms-engine", input_shapes={"x": (2, 12, 14, 4)})
    assert engine.outputs()[0].shape == (2, 4, 24, 28)         # scale factors follow the input
    engine.resize({"x": (1, 6, 10, 4)})
    assert engine.outputs()[0].shape == (1, 4, 12, 20)
    x = np.random.default_rng(2).standard_normal((1, 6, 10, 4)).astype(np.float32)
    assert_agrees(engine, official_benchmark, path, [x], input_shapes=[(1, 6, 10, 4)])
    engine.resize({"x": (1, 8, 8, 4)})                          # the stored shape again
    assert engine.inputs()[0].shape == (1, 8, 8, 4)


def test_fixed_reshape_target_cannot_take_another_batch(block):
    with pytest.raises(InputShapeError, match=r"matmul\.ms: node 'Reshape\d+' \(Reshape\).*\[1, 4, 64\]"):
        MsEngine(block["matmul"], input_shapes={"x": (2, 8, 8, 4)})


@pytest.mark.parametrize("shapes, words", [
    ({"nope": (1, 8, 8, 4)}, "not inputs of the model"),
    ({"x": (1, 8, 8)}, "stored rank"),
    ({"x": (0, 8, 8, 4)}, "positive"),
    ({"x": (1, 8.5, 8, 4)}, "not a sequence of integers"),
    ({"x": (1, 1 << 15, 1 << 15, 4)}, "more than"),
    ([(1, 8, 8, 4)], "must map input names"),
])
def test_bad_input_shapes_are_typed_errors_naming_the_file(block, shapes, words):
    with pytest.raises(InputShapeError, match=words) as e:
        MsEngine(block["resize_nearest"], input_shapes=shapes)
    assert "resize_nearest.ms" in str(e.value)
