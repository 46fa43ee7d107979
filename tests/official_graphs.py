"""Small ONNX graphs of the ops real classifiers, detectors and segmenters use, built with onnx.helper,
and the official converter's command line to turn them into `.ms` files.

Each builder returns an onnx.ModelProto with one float32 NCHW input `x` (seeded weights). Conv nodes
always state strides/dilations: the official 2.0 ONNX parser fails without them
(../shared/golden/README.md).
"""
import os
import subprocess

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
CONVERT_TIMEOUT_S = 300


class Graph:
    """Collects nodes and seeded initializers; `model()` wraps them with input x and the outputs."""

    def __init__(self, shape=(1, 4, 8, 8), seed=0):
        self.shape = tuple(shape)
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self._uid = [], [], 0

    def name(self, hint):
        self._uid += 1
        return f"{hint}{self._uid}"

    def const(self, array, hint="c"):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, *shape, scale=0.5):
        return self.const(self.rng.standard_normal(shape).astype(np.float32) * scale, "w")

    def ints(self, values):
        return self.const(np.asarray(values, np.int64), "i")

    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.name(op_type),
                                           **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k=3, stride=1, pad=1, group=1, dilation=1, bias=True):
        ins = [x, self.weight(cout, cin // group, k, k)] + ([self.weight(cout)] if bias else [])
        return self.op("Conv", ins, kernel_shape=[k, k], strides=[stride, stride],
                       dilations=[dilation, dilation], pads=[pad] * 4, group=group)

    def model(self, outputs, opset=OPSET, shapes=None):
        """`shapes`: the outputs' shapes where ONNX shape inference cannot tell them."""
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        graph = helper.make_graph(
            self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(self.shape))],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 7
        inferred = onnx.shape_inference.infer_shapes(m, data_prop=True).graph.output
        for k, (out, done) in enumerate(zip(m.graph.output, inferred)):   # with their shapes
            out.CopyFrom(done if shapes is None else
                         helper.make_tensor_value_info(out.name, TensorProto.FLOAT, shapes[k]))
        onnx.checker.check_model(m)
        return m


# ---- the graphs ---------------------------------------------------------------------------------
def g_conv():
    g = Graph()
    return g.model(g.conv("x", 4, 6))


def g_conv_stride2_same_relu():
    g = Graph((1, 4, 9, 9))
    ins = ["x", g.weight(6, 4, 3, 3), g.weight(6)]
    y = g.op("Conv", ins, kernel_shape=[3, 3], strides=[2, 2], dilations=[1, 1], auto_pad="SAME_UPPER")
    return g.model(g.op("Relu", [y]))


def g_conv_dilated_nobias():
    g = Graph()
    return g.model(g.conv("x", 4, 4, dilation=2, pad=2, bias=False))


def g_depthwise_relu6():
    g = Graph()
    y = g.conv("x", 4, 4, group=4)
    return g.model(g.op("Clip", [y, g.const(np.float32(0)), g.const(np.float32(6))]))


def g_conv_transpose():
    g = Graph()
    y = g.op("ConvTranspose", ["x", g.weight(4, 3, 2, 2), g.weight(3)], kernel_shape=[2, 2],
             strides=[2, 2], dilations=[1, 1], pads=[0, 0, 0, 0])
    return g.model(y)


def g_conv_transpose_pad():
    g = Graph()
    y = g.op("ConvTranspose", ["x", g.weight(4, 3, 3, 3)], kernel_shape=[3, 3], strides=[2, 2],
             dilations=[1, 1], pads=[1, 1, 1, 1], output_padding=[1, 1])
    return g.model(y)


def g_resize_nearest():
    g = Graph()
    y = g.op("Resize", ["x", "", g.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return g.model(y)


def g_resize_linear_half_pixel():
    g = Graph()
    y = g.op("Resize", ["x", "", "", g.ints([1, 4, 13, 11])], mode="linear",
             coordinate_transformation_mode="half_pixel")
    return g.model(y)


def g_resize_linear_align_corners():
    g = Graph()
    y = g.op("Resize", ["x", "", g.const(np.array([1, 1, 2, 2], np.float32))], mode="linear",
             coordinate_transformation_mode="align_corners")
    return g.model(y)


def g_upsample():
    g = Graph()
    y = g.op("Upsample", ["x", g.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
    return g.model(y, opset=9)


def g_concat_split():
    g = Graph()
    a, b = g.conv("x", 4, 3), g.conv("x", 4, 5, k=1, pad=0)
    c = g.op("Concat", [a, b], axis=1)
    s1, s2 = g.op("Split", [c, g.ints([2, 6])], n_out=2, axis=1)
    return g.model([s1, s2])


def g_slice():
    g = Graph()
    y = g.op("Slice", ["x", g.ints([1, 2]), g.ints([3, 7]), g.ints([1, 3])])
    return g.model(y)


def g_slice_step():
    g = Graph()
    y = g.op("Slice", ["x", g.ints([0, 1]), g.ints([8, 8]), g.ints([2, 3]), g.ints([2, 2])])
    return g.model(y)


def g_gather():
    g = Graph()
    return g.model(g.op("Gather", ["x", g.ints([2, 0])], axis=1))


def g_softmax_head():
    """A classifier head: GlobalAveragePool, Flatten, Gemm, Softmax."""
    g = Graph()
    y = g.op("Flatten", [g.op("GlobalAveragePool", ["x"])], axis=1)
    y = g.op("Gemm", [y, g.weight(10, 4), g.weight(10)], transB=1)
    return g.model(g.op("Softmax", [y], axis=1))


def g_softmax_channels():
    g = Graph()
    return g.model(g.op("Softmax", ["x"], axis=1))


def g_sigmoid_hardswish():
    """HardSwish as torch exports it below opset 14 (the 2.0 converter refuses ONNX HardSwish)."""
    g = Graph()
    hs = g.op("Mul", ["x", g.op("HardSigmoid", ["x"], alpha=1 / 6, beta=0.5)])
    return g.model([g.op("Sigmoid", ["x"]), hs])


def g_hardsigmoid_mul():
    """Squeeze-and-excitation as MobileNetV3 writes it."""
    g = Graph()
    s = g.op("GlobalAveragePool", ["x"])
    s = g.op("Relu", [g.conv(s, 4, 2, k=1, pad=0)])
    s = g.op("HardSigmoid", [g.conv(s, 2, 4, k=1, pad=0)], alpha=1 / 6, beta=0.5)
    return g.model(g.op("Mul", ["x", s]))


def g_arith():
    g = Graph()
    a = g.op("Mul", ["x", g.weight(1, 4, 1, 1)])
    b = g.op("Add", [a, g.weight(4, 1, 1)])
    c = g.op("Sub", [b, g.conv("x", 4, 4)])
    return g.model(g.op("Div", [c, g.const(np.float32(2.0))]))


def g_reduce_mean():
    g = Graph()
    return g.model([g.op("ReduceMean", ["x"], axes=[2, 3], keepdims=1),
                    g.op("ReduceMean", ["x"], axes=[1], keepdims=0)])


def g_pools():
    g = Graph((1, 4, 9, 9))
    a = g.op("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    b = g.op("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2])
    c = g.op("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    return g.model([a, b, c])


def g_transpose_reshape():
    g = Graph()
    y = g.op("Transpose", ["x"], perm=[0, 2, 3, 1])
    return g.model(g.op("Reshape", [y, g.ints([1, 64, 4])]))


def g_matmul():
    g = Graph()
    y = g.op("Reshape", ["x", g.ints([1, 4, 64])])
    return g.model(g.op("MatMul", [y, g.weight(64, 5)]))


def g_leaky_prelu():
    g = Graph()
    a = g.op("LeakyRelu", ["x"], alpha=0.1)
    b = g.op("PRelu", ["x", g.const(np.float32([0.1, 0.2, 0.3, 0.4]).reshape(4, 1, 1))])
    return g.model([a, b])


def g_pad():
    g = Graph()
    a = g.op("Pad", ["x", g.ints([0, 0, 1, 2, 0, 0, 2, 1]), g.const(np.float32(0.5))], mode="constant")
    b = g.op("Pad", ["x", g.ints([0, 0, 1, 1, 0, 0, 1, 1])], mode="reflect")
    return g.model([a, b])


def g_squeeze_unsqueeze():
    g = Graph()
    y = g.op("Squeeze", [g.op("ReduceMean", ["x"], axes=[2, 3], keepdims=1), g.ints([2, 3])])
    return g.model(g.op("Unsqueeze", [y, g.ints([1])]))


def g_shape_reshape():
    """The flatten torch exports: Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]))."""
    g = Graph()
    y = g.conv("x", 4, 4)
    n = g.op("Unsqueeze", [g.op("Gather", [g.op("Shape", [y]), g.const(np.int64(0))], axis=0),
                           g.ints([0])])
    return g.model(g.op("Reshape", [y, g.op("Concat", [n, g.ints([-1])], axis=0)]), shapes=[[1, 256]])


def g_argmax():
    g = Graph()
    y = g.op("ArgMax", ["x"], axis=1, keepdims=0)
    return g.model(g.op("Cast", [y], to=TensorProto.FLOAT))


def g_topk():
    g = Graph()
    y = g.op("Flatten", ["x"], axis=1)
    values, idx = g.op("TopK", [y, g.ints([5])], n_out=2, axis=1)
    return g.model([values, g.op("Cast", [idx], to=TensorProto.FLOAT)])


def g_mobilenet_block():
    """An inverted residual block (expand, depthwise, project, add) with a classifier head."""
    g = Graph((1, 3, 16, 16))
    x = g.op("Clip", [g.conv("x", 3, 8, stride=2), g.const(np.float32(0)), g.const(np.float32(6))])
    e = g.op("Clip", [g.conv(x, 8, 16, k=1, pad=0), g.const(np.float32(0)), g.const(np.float32(6))])
    d = g.op("Clip", [g.conv(e, 16, 16, group=16), g.const(np.float32(0)), g.const(np.float32(6))])
    y = g.op("Add", [x, g.conv(d, 16, 8, k=1, pad=0)])
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y])], axis=1)
    return g.model(g.op("Gemm", [y, g.weight(5, 8), g.weight(5)], transB=1))


GRAPHS = {name[2:]: fn for name, fn in sorted(globals().items()) if name.startswith("g_")}


def convert(tool, model: onnx.ModelProto, folder, name, nchw=False, extra=()):
    """`converter_lite --fmk=ONNX` on `model` (saved as folder/name.onnx); returns the .ms path.
    Raises RuntimeError with the converter's last lines when it fails."""
    src = os.path.join(folder, f"{name}.onnx")
    onnx.save(model, src)
    prefix = os.path.join(folder, name + ("_nchw" if nchw else ""))
    cmd = [tool.path, "--fmk=ONNX", f"--modelFile={src}", f"--outputFile={prefix}"]
    cmd += ["--inputDataFormat=NCHW"] if nchw else []
    cmd += list(extra)
    env = dict(tool.env(), GLOG_v="3")
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env,
                          timeout=CONVERT_TIMEOUT_S, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or not os.path.isfile(prefix + ".ms"):
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"converter_lite failed on {name} ({proc.returncode}): {tail}")
    return prefix + ".ms"
