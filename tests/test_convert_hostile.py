"""`toolkit convert` on hostile input: hand-made ONNX models and mutated MINDIR files.

The contract (issue 13): every case ends either in a successful conversion or in a typed
ToolkitError whose message names the source file: never a library traceback (IndexError,
KeyError, ZeroDivisionError, TypeError, MemoryError ...), never a `.ms` written for a model that
cannot be converted correctly.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from converters import convert
from converters.errors import ConversionError
from runtime.errors import ModelFormatError, ToolkitError, UnsupportedOpsError

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)
W = (RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)


def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(nodes, inputs=None, outputs=None, inits=(), opset=13):
    inputs = [vi("x", [1, 3, 8, 8])] if inputs is None else inputs
    outputs = [vi(nodes[-1].output[0], None)] if outputs is None else outputs
    g = helper.make_graph(nodes, "hostile", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)] if opset else [])
    m.ir_version = 8
    return m


def node(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=f"{op.lower()}_1", **attrs)


def conv(**attrs):
    attrs.setdefault("kernel_shape", [3, 3])
    return model([node("Conv", ["x", "w"], ["y"], **attrs)], inits=[init("w", W)])


def raw_tensor(name, dims, raw=None, dtype=TensorProto.FLOAT, floats=None):
    t = TensorProto()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    if raw is not None:
        t.raw_data = raw
    if floats is not None:
        t.float_data.extend(floats)
    return t


def replace_bytes(m, old, new):
    """Serialised model bytes with the string `old` replaced by same-length `new` (e.g. non-UTF-8)."""
    data = m.SerializeToString()
    assert len(old) == len(new) and old in data
    return data.replace(old, new, 1)


def external(location):
    t = raw_tensor("w", [4, 3, 3, 3])
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    return model([node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])], inits=[t])


def mlp(shape=(2, 8)):
    r = np.random.default_rng(1)
    return model([node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
                  helper.make_node("Relu", ["h"], ["r"], name="relu"),
                  helper.make_node("MatMul", ["r", "w2"], ["l"], name="fc2"),
                  helper.make_node("Softmax", ["l"], ["y"], name="sm", axis=-1)],
                 inputs=[vi("x", list(shape))],
                 inits=[init("w1", r.standard_normal((4, 8)).astype(np.float32)),
                        init("b1", r.standard_normal(4).astype(np.float32)),
                        init("w2", r.standard_normal((4, 3)).astype(np.float32))])


def no_shape_input():
    m = model([node("Relu", ["x"], ["y"])])
    m.graph.input[0].type.tensor_type.ClearField("shape")
    return m


def negative_dim_input():
    m = model([node("Relu", ["x"], ["y"])])
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -3
    return m


def bn(scale=4, inputs=5):
    names = ["y", "s", "b", "m", "v"][:inputs]
    return model([node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3]),
                  node("BatchNormalization", names, ["z"])],
                 inits=[init("w", W), init("s", np.ones(scale, np.float32)),
                        init("b", np.zeros(4, np.float32)), init("m", np.zeros(4, np.float32)),
                        init("v", np.ones(4, np.float32))])


# name -> (model (or serialised bytes) builder, expected error type or None for success, message)
ONNX_CASES = {
    "mlp_gemm_relu_matmul_softmax": (mlp, None, None),
    "mlp_3d_matmul": (lambda: model([node("MatMul", ["x", "w"], ["y"])], inputs=[vi("x", [1, 4, 8])],
                                    inits=[init("w", np.ones((8, 3), np.float32))]),
                      ConversionError, "only 2-D MatMul"),
    "mlp_dynamic_batch": (lambda: mlp(("N", 8)), ConversionError, "give --input-shape"),
    "stride_0": (lambda: conv(strides=[0, 1]), ConversionError, "stride"),
    "dilation_0": (lambda: conv(dilations=[1, 0]), ConversionError, "dilation"),
    "kernel_0": (lambda: conv(kernel_shape=[0, 3]), ConversionError, "kernel"),
    "kernel_3d": (lambda: conv(kernel_shape=[3, 3, 3]), ConversionError, "kernel"),
    "kernel_disagrees_with_weight": (lambda: conv(kernel_shape=[5, 5]), ConversionError, "kernel"),
    "negative_pads": (lambda: conv(pads=[-1, 0, 0, 0]), ConversionError, "pads"),
    "huge_pads": (lambda: conv(pads=[1 << 40] * 4), ConversionError, "pads"),
    "group_0": (lambda: conv(group=0), ConversionError, "group"),
    "group_does_not_divide": (lambda: conv(group=2), ConversionError, "group"),
    "strides_as_floats": (lambda: conv(strides=[1.5, 1.5]), ConversionError, "integer"),
    "unknown_auto_pad": (lambda: conv(auto_pad="SAME_LOWER"), ConversionError, "auto_pad"),
    "conv_one_input": (lambda: model([node("Conv", ["x"], ["y"], kernel_shape=[3, 3])]),
                       ConversionError, "takes 2 to 3 input"),
    "conv_weight_is_computed": (lambda: model([node("Conv", ["x", "x"], ["y"])]),
                                ConversionError, "must be constant"),
    "conv_weight_3d": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                     inits=[init("w", np.ones((4, 3, 3), np.float32))]),
                       ConversionError, "only 2-D convolutions"),
    "conv_weight_wrong_channels": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                                 inits=[init("w", np.ones((4, 5, 3, 3), np.float32))]),
                                   ConversionError, "does not fit an input with 3 channels"),
    "conv_bias_wrong_shape": (lambda: model([node("Conv", ["x", "w", "b"], ["y"])],
                                            inits=[init("w", W), init("b", np.ones(5, np.float32))]),
                              ConversionError, "bias shape"),
    "transpose_bad_perm": (lambda: model([node("Transpose", ["x"], ["y"], perm=[0, 1, 2, 7])]),
                           ConversionError, "permutation"),
    "transpose_repeated_perm": (lambda: model([node("Transpose", ["x"], ["y"], perm=[0, 0, 1, 2])]),
                                ConversionError, "permutation"),
    "transpose_short_perm": (lambda: model([node("Transpose", ["x"], ["y"], perm=[0, 2, 1])]),
                             ConversionError, "permutation"),
    "transpose_without_perm": (lambda: model([node("Transpose", ["x"], ["y"])]),
                               ConversionError, "without perm"),
    "input_without_shape": (no_shape_input, ConversionError, "unknown shape"),
    "input_int64": (lambda: model([node("Relu", ["x"], ["y"])],
                                  inputs=[vi("x", [1, 3, 8, 8], TensorProto.INT64)]),
                    ConversionError, "only FLOAT"),
    "input_negative_dim": (negative_dim_input, ModelFormatError, "negative dimension"),
    "input_zero_dim": (lambda: model([node("Relu", ["x"], ["y"])], inputs=[vi("x", [1, 0, 8, 8])]),
                       ConversionError, "shape"),
    "input_2_40_elements": (lambda: model([node("Relu", ["x"], ["y"])],
                                          inputs=[vi("x", [1, 3, 1 << 20, 1 << 20])]),
                            ConversionError, "elements"),
    "input_rank_9": (lambda: model([node("Relu", ["x"], ["y"])], inputs=[vi("x", [1] * 9)]),
                     ConversionError, "rank 9"),
    "output_not_produced": (lambda: model([node("Relu", ["x"], ["y"])], outputs=[vi("nowhere", None)]),
                            ModelFormatError, "not produced"),
    "reduce_axes_out_of_range": (lambda: model([node("ReduceMean", ["x"], ["y"], axes=[7, 9])]),
                                 ConversionError, "out of range"),
    "reduce_axes_repeated": (lambda: model([node("ReduceMean", ["x"], ["y"], axes=[2, 2])]),
                             ConversionError, "distinct"),
    "gemm_on_4d_input": (lambda: model([node("Gemm", ["x", "w"], ["y"])],
                                       inits=[init("w", np.ones((8, 3), np.float32))]),
                         ConversionError, "only 2-D MatMul"),
    "gemm_inner_sizes_differ": (lambda: mlp((2, 7)), ConversionError, "inner sizes"),
    "gemm_bias_wrong_size": (lambda: model([node("Gemm", ["x", "w", "b"], ["y"])], inputs=[vi("x", [2, 8])],
                                           inits=[init("w", np.ones((8, 3), np.float32)),
                                                  init("b", np.ones(7, np.float32))]),
                             ConversionError, "bias"),
    "gemm_alpha": (lambda: model([node("Gemm", ["x", "w"], ["y"], alpha=2.0)], inputs=[vi("x", [2, 8])],
                                 inits=[init("w", np.ones((8, 3), np.float32))]),
                   ConversionError, "alpha"),
    "reshape_to_negative": (lambda: model([node("Reshape", ["x", "s"], ["y"])],
                                          inits=[init("s", np.array([-2, 96], np.int64))]),
                            ConversionError, "Reshape to"),
    "reshape_two_minus_ones": (lambda: model([node("Reshape", ["x", "s"], ["y"])],
                                             inits=[init("s", np.array([-1, -1], np.int64))]),
                               ConversionError, "at most one -1"),
    "reshape_wrong_total": (lambda: model([node("Reshape", ["x", "s"], ["y"])],
                                          inits=[init("s", np.array([5, 7], np.int64))]),
                            ConversionError, "cannot reshape"),
    "reshape_zero_copies_missing_dim": (lambda: model([node("Reshape", ["x", "s"], ["y"])],
                                                      inits=[init("s", np.zeros(5, np.int64))]),
                                        ConversionError, "0 copies"),
    "reshape_float_shape": (lambda: model([node("Reshape", ["x", "s"], ["y"])],
                                          inits=[init("s", np.array([1.0, 192.0], np.float32))]),
                            ConversionError, "integer"),
    "concat_axis_out_of_range": (lambda: model([node("Concat", ["x", "x"], ["y"], axis=5)]),
                                 ConversionError, "out of range"),
    "concat_shapes_differ": (lambda: model([node("Concat", ["x", "c"], ["y"], axis=1)],
                                           inits=[init("c", np.ones((1, 3, 4, 4), np.float32))]),
                             ConversionError, "differ outside axis"),
    "concat_without_axis": (lambda: model([node("Concat", ["x", "x"], ["y"])]),
                            ConversionError, "axis is missing"),
    "pad_op_with_huge_pads": (lambda: model([node("Pad", ["x", "p"], ["y"])],
                                            inits=[init("p", np.full(8, 1 << 40, np.int64))]),
                              UnsupportedOpsError, "Pad"),
    "avgpool_huge_pads": (lambda: model([node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2],
                                              pads=[1 << 31] * 4)]),
                          ConversionError, "pads"),
    "maxpool_without_kernel": (lambda: model([node("MaxPool", ["x"], ["y"])]),
                               ConversionError, "kernel_shape is missing"),
    "pool_window_larger_than_input": (lambda: model([node("MaxPool", ["x"], ["y"], kernel_shape=[16, 16])]),
                                      ConversionError, "does not fit"),
    "softmax_axis_out_of_range": (lambda: model([node("Softmax", ["x"], ["y"], axis=4)]),
                                  ConversionError, "out of range"),
    "legacy_softmax_over_channels": (lambda: model([node("Softmax", ["x"], ["y"], axis=1)], opset=11),
                                     ConversionError, "flattening"),
    "flatten_axis_out_of_range": (lambda: model([node("Flatten", ["x"], ["y"], axis=9)]),
                                  ConversionError, "out of range"),
    "batchnorm_three_inputs": (lambda: bn(inputs=3), ConversionError, "takes 5 input"),
    "batchnorm_wrong_scale_shape": (lambda: bn(scale=5), ConversionError, "scale has shape"),
    "add_shapes_do_not_broadcast": (lambda: model([node("Add", ["x", "c"], ["y"])],
                                                  inits=[init("c", np.ones(5, np.float32))]),
                                    ConversionError, "broadcast"),
    "cast_to_unknown_type": (lambda: model([node("Cast", ["c"], ["d"], to=999), node("Add", ["x", "d"], ["y"])],
                                           inits=[init("c", np.ones(1, np.float32))]),
                             ConversionError, "Cast to data type"),
    "clip_bound_not_constant": (lambda: model([node("Clip", ["x", "x"], ["y"])]),
                                ConversionError, "must be a constant"),
    "initializer_2_40_elements_16_bytes": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                                         inits=[raw_tensor("w", [1 << 20, 1 << 20], b"\0" * 16)]),
                                           ModelFormatError, "corrupt"),
    "initializer_2_40_elements_4_values": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                                         inits=[raw_tensor("w", [1 << 20, 1 << 20],
                                                                           floats=[1.0] * 4)]),
                                           ModelFormatError, "corrupt"),
    "initializer_claims_more_than_the_file": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                                            inits=[raw_tensor("w", [1 << 20, 1 << 20])]),
                                              ModelFormatError, "corrupt"),
    "initializer_negative_dims": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                                inits=[raw_tensor("w", [-1, 4], b"")]),
                                  ModelFormatError, "negative dims"),
    "initializer_of_strings": (lambda: model([node("Add", ["x", "s"], ["y"])],
                                             inits=[helper.make_tensor("s", TensorProto.STRING, [1], [b"a"])]),
                               ModelFormatError, "STRING is not supported"),
    "initializer_defined_twice": (lambda: model([node("Conv", ["x", "w"], ["y"])],
                                                inits=[init("w", W), init("w", W)]),
                                  ModelFormatError, "defined twice"),
    "external_data_outside_the_folder": (lambda: external("../../../../etc/passwd"),
                                         ModelFormatError, "outside the model's folder"),
    "external_data_missing": (lambda: external("weights.bin"), ModelFormatError, "does not exist"),
    "cyclic_graph": (lambda: model([node("Relu", ["b"], ["a"]),
                                    helper.make_node("Relu", ["a"], ["b"], name="relu_2")]),
                     ModelFormatError, "cycle"),
    "duplicate_output_names": (lambda: model([node("Relu", ["x"], ["a"]),
                                              helper.make_node("Sigmoid", ["x"], ["a"], name="sig")]),
                               ModelFormatError, "duplicate"),
    "duplicate_graph_outputs": (lambda: model([node("Relu", ["x"], ["y"])],
                                              outputs=[vi("y", None), vi("y", None)]),
                                ModelFormatError, "twice"),
    "empty_graph": (lambda: model([], outputs=[vi("x", None)]), ModelFormatError, "no graph, nodes"),
    "no_opset": (lambda: model([node("Relu", ["x"], ["y"])], opset=None), ConversionError, "opset"),
    "unsupported_op": (lambda: model([node("Erf", ["x"], ["y"])]), UnsupportedOpsError, "Erf"),
    "custom_domain_op": (lambda: model([helper.make_node("Gelu", ["x"], ["y"], name="g", domain="com.x")]),
                         UnsupportedOpsError, "com.x::Gelu"),
    # The .ms is one Transpose: NHWC input back to the NCHW the source outputs. A correct model.
    "identity_only_image_model": (lambda: model([node("Identity", ["x"], ["y"])]), None, None),
    "output_is_the_input": (lambda: model([node("Identity", ["x"], ["y"])], inputs=[vi("x", [2, 8])]),
                            ConversionError, "constant or an input"),
    "output_is_a_constant": (lambda: model([node("Add", ["c", "c"], ["y"])],
                                           inits=[init("c", np.ones(3, np.float32))]),
                             ConversionError, "constant or an input"),
    "non_utf8_node_name": (lambda: replace_bytes(model([node("Relu", ["x"], ["y"])]), b"relu_1", b"\xff\xfe\xfdlu1"),
                           ModelFormatError, "UTF-8"),
    "non_utf8_attribute": (lambda: replace_bytes(conv(auto_pad="NOTSET"), b"NOTSET", b"\xffOTSET"),
                           ModelFormatError, "UTF-8"),
    "not_protobuf": (lambda: b"\x0a\xff\xff\xff\xff\x0f" + bytes(range(256)), ModelFormatError, "not a valid ONNX"),
}


def _write(tmp_path, name, built):
    src = tmp_path / f"{name}.onnx"
    src.write_bytes(built if isinstance(built, bytes) else built.SerializeToString())
    return src


def _outcome(src, out, options=None):
    """None on success, else the ToolkitError; anything else propagates and fails the test."""
    try:
        convert(src, out, options)
    except ToolkitError as e:
        return e
    return None


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_hand_made_onnx_converts_or_fails_with_a_typed_error_naming_the_file(tmp_path, name):
    build, expected, message = ONNX_CASES[name]
    src = _write(tmp_path, name, build())
    out = tmp_path / f"{name}_lite.ms"
    err = _outcome(src, out)
    if expected is None:
        assert err is None, str(err)
        assert out.stat().st_size > 0
        return
    assert isinstance(err, expected), f"{type(err).__name__}: {err}"
    assert str(src) in str(err)
    assert message in str(err)
    assert not out.exists()


def test_an_mlp_is_converted_correctly(tmp_path):
    """A non-image model is a legitimate model: the .ms computes what onnxruntime computes."""
    ort = pytest.importorskip("onnxruntime")
    import runtime
    src = _write(tmp_path, "mlp", mlp())
    out = tmp_path / "mlp_lite.ms"
    r = convert(src, out)
    assert r.op_counts == {"MatMulFusion": 2, "Softmax": 1}
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    y = next(iter(runtime.load(str(out), engine="ms-engine").run([x]).values()))
    want = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_errors_carry_the_file_and_the_element(tmp_path):
    src = _write(tmp_path, "stride", conv(strides=[0, 1]))
    err = _outcome(src, tmp_path / "s_lite.ms")
    assert err.path == str(src) and err.element == "node 'conv_1' (Conv2D)"
    src = _write(tmp_path, "unsupported", ONNX_CASES["unsupported_op"][0]())
    err = _outcome(src, tmp_path / "u_lite.ms")
    assert err.path == str(src) and err.ops == [("erf_1", "Erf")]
    src = _write(tmp_path, "weights", ONNX_CASES["initializer_2_40_elements_16_bytes"][0]())
    err = _outcome(src, tmp_path / "w_lite.ms")
    assert type(err) is ModelFormatError and err.element == "initializer 'w'"
    assert "unsupported" not in str(err)


# ---- the pipeline turns a bug escaping any step into a ConversionError naming file and step -----

def test_a_library_error_escaping_a_pass_becomes_a_conversion_error_naming_file_and_pass(tmp_path, monkeypatch):
    import converters.passes as passes

    def broken(graph, options=None):
        return [][1]

    monkeypatch.setattr(passes, "PIPELINE", passes.PIPELINE[:2] + (("merge_bias", broken),))
    src = _write(tmp_path, "mlp", mlp())
    with pytest.raises(ConversionError) as e:
        convert(src, tmp_path / "m_lite.ms")
    assert str(src) in str(e.value) and "pass merge_bias" in str(e.value)
    assert "IndexError" in str(e.value) and isinstance(e.value.__cause__, IndexError)
    assert e.value.stage == "pass merge_bias"
    assert not (tmp_path / "m_lite.ms").exists()


def test_a_failing_pass_stops_the_pipeline_and_names_the_file(tmp_path, monkeypatch):
    import converters.passes as passes
    ran = []

    def failing(graph, options=None):
        raise ConversionError("cannot do this")

    def later(graph, options=None):
        ran.append(1)

    monkeypatch.setattr(passes, "PIPELINE", passes.PIPELINE[:1] + (("failing", failing), ("later", later)))
    src = _write(tmp_path, "mlp", mlp())
    with pytest.raises(ConversionError) as e:
        convert(src, tmp_path / "m_lite.ms")
    assert str(e.value) == f"{src}: cannot do this" and e.value.stage == "pass failing" and not ran


@pytest.mark.parametrize("where", ["front end", "lowering", "memory"])
def test_unexpected_errors_in_other_steps_are_wrapped_too(tmp_path, monkeypatch, where):
    import converters.frontends.onnx_frontend as fe
    import converters.lower as lower
    src = _write(tmp_path, "mlp", mlp())
    if where == "front end":
        monkeypatch.setattr(fe, "load", lambda path: {}["missing"])
        kind = "KeyError"
    elif where == "lowering":
        monkeypatch.setitem(lower.LOWERINGS, "MatMul", lambda b, n: 1 / 0)
        kind = "ZeroDivisionError"
    else:
        def oom(graph, options=None):
            raise MemoryError()
        import converters.passes as passes
        monkeypatch.setattr(passes, "PIPELINE", (("annotate_shapes", oom),))
        kind = "out of memory"
    with pytest.raises(ConversionError) as e:
        convert(src, tmp_path / "m_lite.ms")
    assert str(src) in str(e.value) and kind in str(e.value)


def test_an_invalid_model_handed_to_the_writer_names_source_and_output_not_a_placeholder(tmp_path, monkeypatch):
    import runtime.msformat.writer as writer
    monkeypatch.setattr(writer, "validate", lambda model: ("tensor 3", "has no dims"))
    src = _write(tmp_path, "mlp", mlp())
    out = tmp_path / "m_lite.ms"
    with pytest.raises(ConversionError) as e:
        convert(src, out)
    assert str(src) in str(e.value) and str(out) in str(e.value)
    assert "<model to write>" not in str(e.value) and "tensor 3" in str(e.value) and "has no dims" in str(e.value)


def test_cli_prints_one_error_line_and_no_traceback(tmp_path):
    src = _write(tmp_path, "stride", conv(strides=[0, 1]))
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "toolkit.cli", "convert", str(src), "-o",
                        str(tmp_path / "s_lite.ms")], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert str(src) in r.stderr and "stride" in r.stderr


# ---- allocation: sizes are bounded before anything is allocated (checked under an rlimit) -------

_CAPPED = r"""
import json, resource, sys
import numpy as np, onnx
from converters import ConvertOptions, convert
from runtime.errors import ToolkitError
import runtime.msformat.writer, converters.verify, converters.frontends.onnx_frontend  # noqa
with open("/proc/self/status") as f:
    vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize")][0]
limit = vm + (512 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    convert(sys.argv[1], sys.argv[2], ConvertOptions(verify=int(sys.argv[3])))
    print(json.dumps({"ok": True}))
except ToolkitError as e:
    print(json.dumps({"ok": False, "type": type(e).__name__, "msg": str(e)}))
"""


@pytest.mark.parametrize("name, build, verify, message", [
    ("batch_2_30_image", lambda: model([node("Relu", ["x"], ["y"])], inputs=[vi("x", [1 << 30, 3, 8, 8])]),
     4, "elements"),
    ("batch_2_30_mlp", lambda: mlp((1 << 22, 8)), 4, "--verify"),
    ("initializer_2_40", lambda: model([node("Conv", ["x", "w"], ["y"])],
                                       inits=[raw_tensor("w", [1 << 20, 1 << 20], b"\0" * 16)]), 0, "corrupt"),
    ("folded_concat_blowup", lambda: model(
        [node("Concat", ["c"] * 64, ["d"], axis=0),
         helper.make_node("Concat", ["d"] * 64, ["e"], name="concat_2", axis=0),
         helper.make_node("ReduceMean", ["e"], ["f"], name="mean", axes=[0], keepdims=1),
         helper.make_node("Add", ["x", "f"], ["y"], name="add")],
        inputs=[vi("x", [1, 1 << 16])], inits=[init("c", np.ones((1, 1 << 16), np.float32))]), 0, None),
])
def test_declared_sizes_are_bounded_before_allocation(tmp_path, name, build, verify, message):
    src = _write(tmp_path, name, build())
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", _CAPPED, str(src), str(tmp_path / f"{name}_lite.ms"),
                        str(verify)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    if message is None:
        assert result["ok"] or str(src) in result["msg"], result
    else:
        assert not result["ok"] and str(src) in result["msg"] and message in result["msg"], result


# ---- mutated MINDIR files ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_mindir(tmp_path_factory):
    """Conv(bias)-BN-ReLU-MaxPool-Flatten-Dense, 8x8 input, exported once to MINDIR."""
    ms = pytest.importorskip("mindspore")
    from mindspore import nn

    class Tiny(nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, pad_mode="pad", padding=1, has_bias=True)
            self.bn = nn.BatchNorm2d(4)
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(2, 2)
            self.flat = nn.Flatten()
            self.fc = nn.Dense(64, 3)

        def construct(self, x):
            return self.fc(self.flat(self.pool(self.relu(self.bn(self.conv(x))))))

    ms.set_seed(0)
    net = Tiny()
    net.set_train(False)
    folder = tmp_path_factory.mktemp("tiny_mindir")
    ms.export(net, ms.Tensor(np.zeros((1, 3, 8, 8), np.float32)), file_name=str(folder / "tiny"),
              file_format="MINDIR")
    path = folder / "tiny.mindir"
    convert(path, folder / "tiny_lite.ms")              # the unmutated file converts
    return path.read_bytes()


def _strings(proto):
    """Every string (node names, inputs, op types, primitive names) in a MINDIR model."""
    out = set()
    for n in proto.graph.node:
        out.update([n.name, n.op_type, *n.input, *n.output])
    for p in proto.primitives:
        out.update([p.name, p.op_type])
    for p in proto.graph.parameter:
        out.add(p.name)
    return sorted(s for s in out if len(s) >= 3)


HOSTILE_INTS = [0, -1, -7, 7, 1 << 31, 1 << 40, 3]


def _mutate(data, seed):
    """A mutated copy of the MINDIR bytes: byte flips, truncation, or one field rewritten."""
    from converters.frontends.mindir import mind_ir_pb2
    r = np.random.default_rng(seed)
    kind = seed % 12
    if kind == 0:                                              # flip a few bytes
        b = bytearray(data)
        for i in r.integers(0, len(b), int(r.integers(1, 8))):
            b[i] ^= int(r.integers(1, 256))
        return bytes(b), "flip"
    if kind == 1:                                              # truncate
        return data[:int(r.integers(0, len(data)))], "truncate"
    pb = mind_ir_pb2()
    m = pb.ModelProto()
    m.ParseFromString(data)
    g = m.graph
    if kind == 2:                                              # a string becomes non-UTF-8
        s = _strings(m)[int(r.integers(0, len(_strings(m))))].encode()
        bad = b"\xff" + s[1:]
        return data.replace(s, bad, 1), "non-utf8"
    if kind == 3:                                              # an int attribute value
        attrs = [a for p in m.primitives for a in p.attribute]
        a = attrs[int(r.integers(0, len(attrs)))]
        v = HOSTILE_INTS[int(r.integers(0, len(HOSTILE_INTS)))]
        targets = list(a.values) or [a]
        t = targets[int(r.integers(0, len(targets)))]
        if len(t.ints):
            t.ints[0] = v
        else:
            t.i = v
        t.type = pb.AttributeProto.AttributeType.Value("INT64")
        return m.SerializeToString(), f"attr {a.name}={v}"
    if kind == 4:                                              # parameter dims
        p = g.parameter[int(r.integers(0, len(g.parameter)))]
        p.dims[int(r.integers(0, len(p.dims)))] = HOSTILE_INTS[int(r.integers(0, len(HOSTILE_INTS)))]
        return m.SerializeToString(), f"dims {p.name}"
    if kind == 5:                                              # parameter data type
        p = g.parameter[int(r.integers(0, len(g.parameter)))]
        p.data_type = int(r.integers(0, 20))
        return m.SerializeToString(), f"dtype {p.name}"
    if kind == 6:                                              # parameter data cut short
        p = g.parameter[int(r.integers(0, len(g.parameter)))]
        p.raw_data = p.raw_data[:int(r.integers(0, len(p.raw_data)))]
        return m.SerializeToString(), f"raw {p.name}"
    if kind == 7:                                              # a node input renamed or dropped
        nodes = [n for n in g.node if len(n.input)]
        n = nodes[int(r.integers(0, len(nodes)))]
        i = int(r.integers(0, len(n.input)))
        if r.integers(0, 2):
            del n.input[i]
        else:
            names = [o for k in g.node for o in (k.output or [k.name])] + ["nowhere"]
            n.input[i] = names[int(r.integers(0, len(names)))]
        return m.SerializeToString(), f"input of {n.name}"
    if kind == 8:                                              # the graph input's dims
        t = g.input[0].tensor[0]
        t.dims[int(r.integers(0, len(t.dims)))] = [0, -1, -5, 1 << 30, 1 << 40, 2][int(r.integers(0, 6))]
        return m.SerializeToString(), "input dims"
    if kind == 9:                                              # a primitive becomes another op
        p = m.primitives[int(r.integers(0, len(m.primitives)))]
        p.op_type = ["Conv2D", "MatMul", "ReLU", "Reshape", "Transpose", "BiasAdd", "MaxPool",
                     "TupleGetItem", "Concat", "Softmax", "BatchNorm"][int(r.integers(0, 11))]
        return m.SerializeToString(), f"op {p.name}->{p.op_type}"
    if kind == 10:                                             # nodes reordered or removed
        i, j = (int(v) for v in r.integers(0, len(g.node), 2))
        if r.integers(0, 2):
            a, b = g.node[i], g.node[j]
            ca, cb = type(a)(), type(b)()
            ca.CopyFrom(a)
            cb.CopyFrom(b)
            g.node[i].CopyFrom(cb)
            g.node[j].CopyFrom(ca)
        else:
            del g.node[i]
        return m.SerializeToString(), "nodes"
    # kind 11: an attribute's type code rewritten
    attrs = [a for p in m.primitives for a in p.attribute]
    a = attrs[int(r.integers(0, len(attrs)))]
    a.type = int(r.integers(0, 40))
    return m.SerializeToString(), f"attr type {a.name}"


@pytest.mark.parametrize("seed", range(100))
def test_mutated_mindir_converts_or_fails_with_a_typed_error_naming_the_file(tiny_mindir, tmp_path, seed):
    data, what = _mutate(tiny_mindir, seed)
    src = tmp_path / "mutated.mindir"
    src.write_bytes(data)
    out = tmp_path / "mutated_lite.ms"
    err = _outcome(src, out)
    if err is None:
        assert out.stat().st_size > 0, what
    else:
        assert str(src) in str(err), f"{what}: {type(err).__name__}: {err}"
        assert not out.exists()
