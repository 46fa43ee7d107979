"""Malformed `.ms` nodes fail with ModelFormatError naming the file, the node and its op.

Each case takes a valid one-node model of test_ms_engine_ops.CASES and breaks one attribute or
operand the way a corrupt or hostile file could (the mutations found by fuzzing: stride 0, a pad of
a million pixels, a zero dimension in a constant, ...). Translation must refuse it before
onnxruntime allocates anything; a handler's unexpected exception is wrapped, never leaked.
"""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest

from runtime.engines import ms_engine
from runtime.engines.ms_engine import MsEngine
from runtime.engines.ms_onnx import HANDLERS, translate
from runtime.engines.ms_onnx.base import handler
from runtime.errors import ModelFormatError, UnsupportedOpsError
from runtime.msformat.builder import single_node_model
from runtime.msformat.reader import read_ms_bytes
from runtime.msformat.writer import model_to_bytes
from runtime.registry import DuplicateRegistration

from test_ms_engine_ops import CASES

BY_ID = {c.id: c for c in CASES}
TESTS = os.path.dirname(os.path.abspath(__file__))
I32 = np.int32


def broken(case_id, attrs=None, inputs=None, out_shapes=None):
    """The case's model with `attrs` merged in and inputs {index: ("c"|"x", array)} replaced."""
    case = BY_ID[case_id]
    ins = list(case.inputs)
    for k, v in sorted((inputs or {}).items()):
        if k == len(ins):
            ins.append(v)
        else:
            ins[k] = v
    shapes = out_shapes or [np.shape(e) for e in case.expected]
    model, _ = single_node_model(case.op, {**case.attrs, **(attrs or {})}, ins, shapes,
                                 out_dtypes=[np.asarray(e).dtype for e in case.expected])
    return read_ms_bytes(model_to_bytes(model)), case.op


MALFORMED = [
    ("conv_valid", dict(attrs={"stride": (0, 1)}), r"stride \[0, 1\]: 0 is outside \[1, 4096\]"),
    ("conv_valid", dict(attrs={"dilation": (1, 0)}), r"dilation .*0 is outside"),
    ("conv_valid", dict(attrs={"kernel_size": (0, 3)}), r"kernel_size .*0 is outside"),
    ("conv_valid", dict(attrs={"pad_list": (1048576, 0, 0, 0)}),
     r"pad_list .*1048576 is outside \[0, 1024\]"),
    ("conv_valid", dict(attrs={"pad_list": (-1, 0, 0, 0)}), r"pad_list .*-1 is outside"),
    ("conv_valid", dict(attrs={"group": 7}), r"group 7 exceeds 6"),
    ("conv_valid", dict(attrs={"kernel_size": (9, 3)},
                        inputs={1: ("c", np.ones((6, 9, 3, 4), np.float32))}),
     r"window of extent 9 .* larger than the padded input h 7"),
    ("deconv", dict(attrs={"output_paddings": (0, 5)}), r"output_paddings \[0, 5\]"),
    ("maxpool_floor", dict(attrs={"strides": (0, 2)}), r"strides \[0, 2\]: 0 is outside"),
    ("maxpool_floor", dict(attrs={"pad": (0, 0, 5000, 0), "pad_mode": 0}), r"pad_list .*5000 is outside"),
    ("transpose", dict(inputs={1: ("c", np.array([0, 0, 1, 2], I32))}),
     r"perm \[0, 0, 1, 2\] is not a permutation"),
    ("transpose", dict(inputs={1: ("c", np.array([0, 2, 1], I32))}), r"perm \[0, 2, 1\] .* 4 axes"),
    ("concat_axis1", dict(attrs={"axis": 7}), r"axis 7 is out of range for a tensor of rank 4"),
    ("softmax_last", dict(attrs={"axis": (5,)}), r"axis 5 is out of range"),
    ("argmax", dict(attrs={"axis": -9}), r"axis -9 is out of range"),
    ("scale_axis2_offset", dict(attrs={"axis": -2147483648}), r"axis -2147483648 is out of range"),
    ("squeeze", dict(attrs={"axis": (1, 1)}), r"axes \[1, 1\] repeat an axis"),
    ("flatten", dict(attrs={"axis": 9}), r"axis 9 is out of range"),
    ("reshape", dict(inputs={1: ("c", np.array([2, -3, 5], I32))}), r"shape \[2, -3, 5\] has a negative"),
    ("reshape", dict(inputs={1: ("c", np.array([1 << 20, 1 << 20, 5], I32))}), r"would hold .* elements"),
    ("split_sizes", dict(attrs={"size_splits": (-3, 7)}), r"size_splits"),
    ("split_sizes", dict(attrs={"size_splits": (1, 1)}), r"do not split axis 2 of length 4"),
    ("crop", dict(attrs={"offsets": (1, -2, 0)}), r"offsets .* negative"),
    ("strided_slice", dict(inputs={3: ("c", np.array([1, 0, 2, -1], I32))}), r"strides .* zero"),
    ("slice", dict(inputs={2: ("c", np.array([-1, 2, -7, 5], I32))}), r"size .* negative"),
    ("pad_constant", dict(inputs={1: ("c", np.array([[0, 0], [1 << 20, 0], [0, 1], [0, 0]], I32))}),
     r"paddings .*1048576 is outside"),
    ("pad_constant", dict(inputs={1: ("c", np.array([1, 2, 3], I32))}), r"paddings hold 3 values"),
    ("pad_reflect", dict(inputs={1: ("c", np.array([[0, 0], [5, 0], [0, 0], [0, 0]], I32))}),
     r"reflect paddings .* beyond the input"),
    ("tile", dict(inputs={1: ("c", np.array([1, 1 << 20, 1, 1 << 10], I32))}), r"tiled output .* elements"),
    ("tile", dict(inputs={1: ("c", np.array([1, -2, 1, 1], I32))}), r"multiples .* negative"),
    ("broadcast_to", dict(attrs={"shape": (3, -4, 3, 4, 5)}), r"shape .* negative"),
    ("broadcast_to", dict(attrs={"shape": (1 << 20, 1 << 20, 3, 4, 5)}), r"would hold .* elements"),
    ("resize_nearest_asymmetric", dict(attrs={"new_height": 1 << 20, "new_width": 1 << 20}),
     r"resized output .* elements"),
    ("resize_nearest_asymmetric", dict(attrs={"new_height": 6, "new_width": -8}),
     r"new_height 6 / new_width -8 is negative"),
    ("depth_to_space", dict(attrs={"block_size": 0}), r"block_size 0 is outside \[1, 4096\]"),
    ("lrn", dict(attrs={"depth_radius": -3}), r"depth_radius -3 is outside"),
    ("clip", dict(inputs={1: ("c", np.zeros(3, np.float32))}), r"min holds 3 values"),
    ("fused_batch_norm", dict(inputs={2: ("c", np.zeros(3, np.float32))}), r"per-channel operands"),
    ("layer_norm", dict(attrs={"begin_norm_axis": 12}), r"begin_norm_axis 12 is out of range"),
    ("gather", dict(inputs={2: ("c", np.array([0, 1], I32))}), r"axis holds 2 values"),
    ("cast", dict(inputs={1: ("c", np.array([1, 43], I32))}), r"target type holds 2 values"),
]


@pytest.mark.parametrize("case_id, change, message", MALFORMED,
                         ids=[f"{c}-{'-'.join(m.get('attrs', {})) or 'input'}-{k}"
                              for k, (c, m, _) in enumerate(MALFORMED)])
def test_malformed_node_raises_model_format_error_naming_the_node(case_id, change, message):
    model, op = broken(case_id, **change)
    with pytest.raises(ModelFormatError, match=message) as info:
        MsEngine.from_model(model, name="bad.ms")
    err = info.value
    assert err.path == "bad.ms"
    assert err.element == f"node {model.nodes[0].name!r} ({op})"
    assert str(err).startswith(f"bad.ms: node {model.nodes[0].name!r} ({op}): ")


def test_a_huge_conv_pad_is_refused_before_any_allocation():
    """The fuzzed file that made onnxruntime reach 8 GB: refused in translation, memory flat."""
    model, _ = broken("conv_valid", attrs={"pad_list": (1048576, 1048576, 1048576, 1048576)})
    code = (f"import resource, sys; sys.path.insert(0, {TESTS!r}); "
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from test_ms_engine_errors import broken; from runtime.engines.ms_engine import MsEngine; "
            "from runtime.errors import ModelFormatError\n"
            "try:\n    MsEngine.from_model(broken('conv_valid', attrs={'pad_list': (1 << 20,) * 4})[0])\n"
            "except ModelFormatError as e:\n    print('refused', e.problem)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("refused pad_list"), out.stdout
    assert model.nodes[0].attrs["pad_list"][0] == 1048576       # the reader kept the hostile value


def test_a_constant_with_a_zero_dimension_is_a_format_error_naming_the_tensor():
    """The decoder's own exception (here a reshape to a zero dimension) is wrapped by the driver."""
    model, _ = broken("reduce_sumsquare_to_end")
    model.tensors[1].dims = (0,)          # the axes constant still holds one int32
    with pytest.raises(ModelFormatError, match="constant cannot be decoded") as info:
        MsEngine.from_model(model, name="bad.ms")
    assert info.value.element == "tensor 1 ('const1')"


def test_an_unexpected_handler_exception_is_wrapped_naming_the_node():
    model, _ = broken("conv_valid")
    table = dict(HANDLERS)

    def fails(ctx, node):
        return 1 // 0
    table["Conv2DFusion"] = fails
    with pytest.raises(ModelFormatError, match=r"ZeroDivisionError") as info:
        translate(model, "bad.ms", handlers=table)
    assert info.value.element == "node 'Conv2DFusion_node' (Conv2DFusion)"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_engine_path_wraps_too(monkeypatch):
    """The same through MsEngine, with the shared table patched for this test only."""
    def fails(ctx, node):
        raise KeyError("no such attribute")
    monkeypatch.setitem(HANDLERS, "Conv2DFusion", fails)
    with pytest.raises(ModelFormatError, match=r"Conv2DFusion_node.*KeyError"):
        MsEngine.from_model(broken("conv_valid")[0])


def test_a_valid_but_inexpressible_attribute_stays_unsupported_not_malformed():
    model, _ = broken("pad_constant", attrs={"padding_mode": 2})
    with pytest.raises(UnsupportedOpsError, match="SYMMETRIC"):
        MsEngine.from_model(model)


def test_registering_an_op_twice_is_refused_and_changes_nothing():
    before = HANDLERS["Conv2DFusion"]
    with pytest.raises(DuplicateRegistration, match="Conv2DFusion.*registered twice"):
        @handler("Conv2DFusion")
        def again(ctx, node):
            pass
    assert HANDLERS["Conv2DFusion"] is before


def test_handlers_are_registered_at_import_without_any_call():
    code = ("import runtime.engines.ms_onnx as m; "
            "print(len(m.HANDLERS), 'Conv2DFusion' in m.HANDLERS, 'Resize' in m.HANDLERS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, conv, resize = out.stdout.split()
    assert int(count) == len(HANDLERS) > 70 and conv == resize == "True"


def test_session_errors_keep_only_the_first_line_of_onnxruntime_text(monkeypatch):
    import onnxruntime

    class Refuses:
        def __init__(self, *a, **k):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Load model failed: bad node\n"
                               "  at onnxruntime::InferenceSession::Initialize() session.cc:1234\n"
                               "  at onnxruntime::Graph::Resolve() graph.cc:99")
    monkeypatch.setattr(onnxruntime, "InferenceSession", Refuses)
    ms_engine._CACHE.clear()
    with pytest.raises(ModelFormatError) as info:
        MsEngine.from_model(broken("conv_valid")[0], name="m.ms")
    assert str(info.value) == ("m.ms: onnxruntime cannot build a session for the translated graph: "
                               "[ONNXRuntimeError] : 1 : FAIL : Load model failed: bad node")


def test_a_graph_onnxruntime_refuses_is_a_format_error():
    """Real onnxruntime refusal (float + int32 Add): typed, one line."""
    model, _ = single_node_model("AddFusion", {}, [("x", np.ones((2, 3), np.float32)),
                                                   ("c", np.ones((2, 3), np.int32))], [(2, 3)])
    with pytest.raises(ModelFormatError, match="cannot build a session.*Type Error") as info:
        MsEngine.from_model(copy.deepcopy(model), name="m.ms")
    assert "\n" not in str(info.value)
