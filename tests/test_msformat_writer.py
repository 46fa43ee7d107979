"""The `.ms` writer: round trips of every golden file and the official conventions."""
import os

import numpy as np
import pytest

from runtime.errors import ModelFormatError
from runtime.msformat.builder import single_node_model
from runtime.msformat.flatview import Buffer
from runtime.msformat.reader import read_ms, read_ms_bytes
from runtime.msformat.writer import model_to_bytes, write_ms

from test_msformat_reader import GOLDEN_MS


@pytest.mark.parametrize("name", GOLDEN_MS)
def test_round_trip_gives_the_same_model(golden_dir, name, tmp_path):
    path = os.path.join(golden_dir, name)
    model = read_ms(path)
    out = tmp_path / name
    write_ms(model, out)
    assert read_ms(out) == model
    # same conventions as the official converter -> nearly the same size (only padding differs)
    assert abs(out.stat().st_size - os.path.getsize(path)) <= 0.01 * os.path.getsize(path) + 64


def _tables(data):
    root = Buffer(data).root()
    return root, root.tables(6, "nodes"), root.tables(7, "tensors"), root.tables(8, "subgraphs")


def test_written_file_follows_official_conventions():
    x = np.ones((1, 4, 4, 3), np.float32)
    model, _ = single_node_model("Activation", {"activation_type": 1}, [("x", x)], [x.shape])
    data = model_to_bytes(model)
    assert data[4:8] == b"MSL2"
    root, nodes, tensors, subgraphs = _tables(data)
    assert root.string(1, "version") == "MindSpore Lite 2.5.0"
    assert root.field(0, 4) is None and root.field(5, 4) is None        # name, mempoolSize unset
    node = nodes[0]
    assert node.field(1, 4) is None and node.field(6, 4) is None        # nodeType, deviceType
    prim = node.table(2, "primitive")
    act = prim.table(1, "Activation")
    assert act.field(0, 1) is not None                                  # RELU != default
    assert all(act.field(i, 4) is None for i in range(1, 6))            # defaults omitted
    assert len(subgraphs) == 1
    sg = subgraphs[0]
    assert sg.numbers(3, "u32", "nodes") == (0,) and sg.numbers(4, "u32", "tensors") == (0, 1)
    assert sg.numbers(1, "u32", "in") == (0,) and sg.numbers(2, "u32", "out") == (1,)
    assert tensors[0].scalar(0, "i32", 0) == 2 and tensors[0].scalar(1, "i32", 0) == 43


def test_unknown_attribute_is_refused():
    model, _ = single_node_model("Activation", {"activation_typ": 1}, [("x", np.ones(2, np.float32))], [(2,)])
    with pytest.raises(ModelFormatError, match="activation_typ"):
        model_to_bytes(model)


def test_write_is_atomic(tmp_path):
    model, _ = single_node_model("Activation", {}, [("x", np.ones(2, np.float32))], [(2,)])
    target = tmp_path / "m.ms"
    write_ms(model, target)
    before = target.read_bytes()
    model.nodes[0].inputs = [99]                                        # invalid: refused
    with pytest.raises(ModelFormatError):
        write_ms(model, target)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["m.ms"]
    assert read_ms_bytes(before).nodes[0].op_type == "Activation"
