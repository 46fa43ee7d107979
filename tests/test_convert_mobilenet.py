"""A converted MobileNetV2 uses the official converter's op set and conventions (ms-format.md)."""
import numpy as np
import pytest

from converters import convert
from runtime.msformat.model import FORMAT_NHWC, TYPE_FLOAT32, TYPE_INT32
from runtime.msformat.reader import read_ms

pytest.importorskip("onnx")
RELU6, NO_ACTIVATION, REDUCE_MEAN = 3, 0, 0


@pytest.fixture(scope="module", params=["mindir", "onnx"])
def converted(request, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnv2") / "mnv2.ms"
    convert(getattr(tiny, request.param), out)
    return request.param, read_ms(out), tiny


def test_op_set_is_the_official_one(converted):
    _, m, _ = converted
    counts = {}
    for n in m.nodes:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    # BatchNorm folded, ReLU6 fused, residual adds, global mean + dense head; nothing else.
    assert counts == {"Conv2DFusion": 52, "AddFusion": 10, "ReduceFusion": 1, "MatMulFusion": 1}


def test_container_conventions(converted):
    fmt, m, tiny = converted
    assert m.version == "MindSpore Lite 2.5.0"
    assert m.fmk_type == {"mindir": 3, "onnx": 2}[fmt]
    size = tiny.x.shape[2]
    inp = m.tensors[m.inputs[0]]
    assert tuple(inp.dims) == (1, size, size, 3) and inp.format == FORMAT_NHWC and not inp.is_const
    assert tuple(m.tensors[m.outputs[0]].dims) == (1, len(tiny.meta.class_names))


def test_conv2dfusion_conventions(converted):
    fmt, m, _ = converted
    convs = [n for n in m.nodes if n.op_type == "Conv2DFusion"]
    acts = [n.attrs["activation_type"] for n in convs]
    assert acts.count(RELU6) == 35 and acts.count(NO_ACTIVATION) == 17
    for n in convs:
        a = n.attrs
        w, b = m.tensors[n.inputs[1]], m.tensors[n.inputs[2]]
        assert a["format"] == FORMAT_NHWC and w.format == FORMAT_NHWC
        assert a.get("mode", 0) == (1 if fmt == "mindir" else 0)
        kh, kw = a["kernel_size"]
        assert len(a["pad_list"]) == 4 and len(a["stride"]) == 2 and len(a["dilation"]) == 2
        if a["group"] > 1:                                      # depthwise: [C, kh, kw, 1]
            assert a["group"] == a["in_channel"] == a["out_channel"]
            assert tuple(w.dims) == (a["group"], kh, kw, 1)
        else:                                                   # [out, kh, kw, in]
            assert tuple(w.dims) == (a["out_channel"], kh, kw, a["in_channel"])
        assert b.is_const and tuple(b.dims) == (a["out_channel"],) and b.data_type == TYPE_FLOAT32
    first = convs[0]
    assert first.attrs["stride"] == (2, 2) and first.attrs["pad_list"] == (1, 1, 1, 1)


def test_residual_adds_are_addfusion_without_activation(converted):
    _, m, _ = converted
    adds = [n for n in m.nodes if n.op_type == "AddFusion"]
    assert all(n.attrs.get("activation_type", 0) == NO_ACTIVATION and len(n.inputs) == 2 for n in adds)
    producers = {o: n.op_type for n in m.nodes for o in n.outputs}
    assert all(producers.get(i) in ("Conv2DFusion", "AddFusion") for n in adds for i in n.inputs)


def test_head_is_reducefusion_mean_and_matmulfusion_with_bias(converted):
    _, m, tiny = converted
    red = next(n for n in m.nodes if n.op_type == "ReduceFusion")
    axes = m.tensors[red.inputs[1]]
    assert red.attrs["mode"] == REDUCE_MEAN and not red.attrs.get("keep_dims")
    assert axes.data_type == TYPE_INT32 and list(np.frombuffer(axes.data, "<i4")) == [1, 2]
    mm = next(n for n in m.nodes if n.op_type == "MatMulFusion")
    assert mm.attrs["transpose_b"] and len(mm.inputs) == 3
    classes = len(tiny.meta.class_names)
    assert m.tensors[mm.inputs[1]].dims[0] == classes and tuple(m.tensors[mm.inputs[2]].dims) == (classes,)
