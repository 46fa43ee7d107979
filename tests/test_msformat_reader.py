"""The `.ms` reader: every golden file parses, and hostile bytes give ModelFormatError only."""
import os
import struct

import numpy as np
import pytest

from runtime.errors import ModelFormatError
from runtime.msformat.builder import single_node_model
from runtime.msformat.flatview import Buffer
from runtime.msformat.model import MsNode
from runtime.msformat.reader import read_ms, read_ms_bytes
from runtime.msformat.schema import PRIMITIVE_CODES, PRIMITIVE_NAMES
from runtime.msformat.writer import model_to_bytes

GOLDEN_MS = ["ml_face_isface.ms", "two_add_operators.ms", "mnet.caffemodel.ms", "lenet_tod_infer.ms",
             "parallel.ms"]
# what the golden README states about each file: (version, fmkType, nodes, op that must be present)
EXPECTED = {
    "ml_face_isface.ms": ("MindSpore Lite 1.5.0", 1, 15, "FullConnection"),
    "two_add_operators.ms": ("MindSpore Lite 2.5.0", 2, 2, "AddFusion"),
    "mnet.caffemodel.ms": ("MindSpore Lite 2.0.0", 1, 86, "Conv2dTransposeFusion"),
    "lenet_tod_infer.ms": ("MindSpore Lite 1.5.0", 3, 13, "MatMulFusion"),
    "parallel.ms": ("MindSpore Lite 1.3.0", 4, 12, "Stack"),
}


@pytest.mark.parametrize("name", GOLDEN_MS)
def test_golden_file_parses_with_documented_facts(golden_dir, name):
    model = read_ms(os.path.join(golden_dir, name))
    version, fmk, n_nodes, op = EXPECTED[name]
    assert (model.version, model.fmk_type, len(model.nodes)) == (version, fmk, n_nodes)
    assert op in {n.op_type for n in model.nodes}
    assert model.inputs and model.outputs


def test_schema_codes_match_the_published_union():
    assert len(PRIMITIVE_NAMES) == 221
    facts = {"Activation": 2, "AddFusion": 5, "AvgPoolFusion": 17, "Conv2DFusion": 35,
             "Conv2dTransposeFusion": 36, "FullConnection": 67, "MatMulFusion": 89, "Softmax": 138,
             "Transpose": 162, "Custom": 191}
    assert {k: PRIMITIVE_CODES[k] for k in facts} == facts


def test_schema_defaults_are_applied(golden_dir):
    """lenet's MaxPool omits `pad` and `activation_type`; the reader fills the schema defaults."""
    model = read_ms(os.path.join(golden_dir, "lenet_tod_infer.ms"))
    pool = next(n for n in model.nodes if n.op_type == "MaxPoolFusion")
    assert pool.attrs["pad"] == () and pool.attrs["activation_type"] == 0
    assert pool.attrs["kernel_size"] == (2, 2) and pool.attrs["pad_mode"] == 2


def test_golden_details(golden_dir):
    face = read_ms(os.path.join(golden_dir, "ml_face_isface.ms"))
    x = face.tensors[face.inputs[0]]
    assert (x.name, x.dims, x.format) == ("data", (1, 48, 48, 3), 1)
    conv = face.nodes[0]
    assert conv.op_type == "Conv2DFusion" and conv.attrs["kernel_size"] == (3, 3)
    lenet = read_ms(os.path.join(golden_dir, "lenet_tod_infer.ms"))
    used = {i for n in lenet.nodes for i in n.inputs + n.outputs}
    assert len(set(range(len(lenet.tensors))) - used) == 3        # the 3 dangling tensors


def test_mindir_is_not_a_ms_file(golden_dir):
    with pytest.raises(ModelFormatError, match="identifier"):
        read_ms(os.path.join(golden_dir, "relu.mindir"))


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="no such file"):
        read_ms(tmp_path / "absent.ms")


@pytest.fixture(scope="module")
def small_bytes(golden_dir):
    with open(os.path.join(golden_dir, "two_add_operators.ms"), "rb") as f:
        return f.read()


@pytest.mark.parametrize("cut", [0, 3, 7, 8, 12, 100, 400, 738])
def test_truncated_file(small_bytes, cut):
    with pytest.raises(ModelFormatError):
        read_ms_bytes(small_bytes[:cut], source="cut.ms")


def test_wrong_identifier(small_bytes):
    with pytest.raises(ModelFormatError, match="cut.ms: file identifier is b'MSL1'"):
        read_ms_bytes(small_bytes[:4] + b"MSL1" + small_bytes[8:], source="cut.ms")


def _vector_pos(data, field):
    """Absolute position of the length word of root-table vector `field`."""
    root = Buffer(data).root()
    p = root.field(field, 4)
    return p + struct.unpack_from("<I", data, p)[0]


def test_vector_length_past_the_end(small_bytes):
    pos = _vector_pos(small_bytes, 7)            # allTensors
    bad = bytearray(small_bytes)
    struct.pack_into("<I", bad, pos, 0x3FFFFFFF)
    with pytest.raises(ModelFormatError, match="past the end"):
        read_ms_bytes(bytes(bad), source="huge.ms")


def test_out_of_range_graph_input_index(small_bytes):
    pos = _vector_pos(small_bytes, 3)            # inputIndex
    bad = bytearray(small_bytes)
    struct.pack_into("<I", bad, pos + 4, 1000)
    with pytest.raises(ModelFormatError, match="out of range"):
        read_ms_bytes(bytes(bad), source="index.ms")


def _two_node_model():
    x = np.ones((1, 4), np.float32)
    model, _ = single_node_model("AddFusion", {}, [("x", x), ("x", x)], [(1, 4)])
    return model


def test_out_of_range_node_tensor_index():
    model = _two_node_model()
    model.nodes[0].inputs[1] = 57
    with pytest.raises(ModelFormatError, match="tensor index 57 out of range"):
        read_ms_bytes(model_to_bytes(model, check=False), source="node.ms")


def test_cycle_is_refused():
    model = _two_node_model()
    out = model.nodes[0].outputs[0]
    model.nodes.append(MsNode("loop", "AddFusion", {}, inputs=[out, 0], outputs=[1]))
    with pytest.raises(ModelFormatError, match="cycle"):
        read_ms_bytes(model_to_bytes(model, check=False), source="cycle.ms")
    with pytest.raises(ModelFormatError, match="cycle"):        # the writer refuses it too
        model_to_bytes(model)


@pytest.mark.parametrize("dims,problem", [((1 << 30, 1 << 30, 1 << 30), "absurd"),
                                          ((2, -5), "negative"), (tuple([1] * 40), "rank")])
def test_absurd_dims(dims, problem):
    model = _two_node_model()
    model.tensors[2].dims = dims
    with pytest.raises(ModelFormatError, match=problem):
        read_ms_bytes(model_to_bytes(model, check=False))


def test_constant_data_must_fit_dims():
    model, _ = single_node_model("AddFusion", {}, [("x", np.ones((2, 3), np.float32)),
                                                   ("c", np.ones(3, np.float32))], [(2, 3)])
    model.tensors[1].dims = (4,)
    with pytest.raises(ModelFormatError, match="data bytes"):
        read_ms_bytes(model_to_bytes(model, check=False))


def test_unknown_primitive_code_still_parses_and_is_flagged(small_bytes):
    """A code from a newer schema keeps the node (no attributes) with a recognisable op_type."""
    model = read_ms_bytes(small_bytes)
    model.nodes[0].op_type, model.nodes[0].attrs = "UnknownPrimitive250", {}
    again = read_ms_bytes(model_to_bytes(model))
    assert again.nodes[0].op_type == "UnknownPrimitive250" and again.nodes[0].attrs == {}
